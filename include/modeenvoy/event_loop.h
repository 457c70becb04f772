// include/modeenvoy/event_loop.h: the host's event loop, as the library sees it.
//
// The library never owns a thread or a socket loop. A host (the example proxy on Boost.Asio,
// Envoy, nginx, a Go or Rust proxy) implements EventLoop over its own loop, and the I/O edges
// of the library (the libcurl upstream client, store clients) run on it:
//   class MyLoop : public modeenvoy::EventLoop { ... };          // wraps the host loop
//   auto client = modeenvoy::NewCurlUpstreamClient(&my_loop, {});
// Every callback below runs on the loop thread; none runs inline from the call that set it up.
// Part of the core component: components with I/O edges (the gateway's upstream client,
// the context component's Redis store) depend on this interface, not on each other.
#ifndef MODEENVOY_EVENT_LOOP_H_
#define MODEENVOY_EVENT_LOOP_H_

#include <cstdint>
#include <memory>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// Readiness bits for FdWatch.
enum IoEvents : uint32_t {
  kIoNone = 0,
  kIoRead = 1u << 0,
  kIoWrite = 1u << 1,
  kIoError = 1u << 2,  // reported only; never requested
};

// A one-shot timer. Destroying it cancels a pending callback.
// Thread safety: thread-hostile; use on the loop thread only.
class MODEENVOY_EXPORT Timer {
 public:
  virtual ~Timer() = default;
  // (Re)arms the timer: `fn` runs once on the loop thread after `delay`, unless Cancel() or
  // another Arm() comes first (which drops the earlier callback without running it).
  // A zero or negative delay fires on the next loop iteration.
  virtual void Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) = 0;
  // Drops a pending callback. No-op when none is pending.
  virtual void Cancel() = 0;
};

// Level-triggered readiness watch on a file descriptor the caller owns.
// Destroying the watch stops watching; it never closes the descriptor.
// Thread safety: thread-hostile; use on the loop thread only.
class MODEENVOY_EXPORT FdWatch {
 public:
  virtual ~FdWatch() = default;
  // Replaces the set of events (kIoRead | kIoWrite) being watched; kIoNone pauses the watch.
  virtual void SetEvents(uint32_t events) = 0;
};

// EventLoop is implemented by the host. Thread safety: Post() is thread-safe; every other
// method is called on the loop thread only.
class MODEENVOY_EXPORT EventLoop {
 public:
  virtual ~EventLoop() = default;

  // Runs `fn` on the loop thread soon, never inline. Callable from any thread.
  virtual void Post(absl::AnyInvocable<void()> fn) = 0;

  // Creates an unarmed timer bound to this loop. Never null.
  virtual std::unique_ptr<Timer> NewTimer() = 0;

  // Watches `fd` for `events`; `on_ready(ready)` runs on the loop thread with the subset of
  // kIoRead | kIoWrite | kIoError that is ready, for as long as the condition lasts and the
  // watch lives. REQUIRES: fd is open and stays open while the watch exists. Never null.
  virtual std::unique_ptr<FdWatch> WatchFd(int fd, uint32_t events,
                                           absl::AnyInvocable<void(uint32_t ready)> on_ready) = 0;

  // Time source used for deadlines measured by components running on this loop.
  virtual const Clock& clock() const { return SystemClock(); }
};

}  // namespace modeenvoy

#endif  // MODEENVOY_EVENT_LOOP_H_
