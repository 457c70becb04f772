// include/modeenvoy/gateway/poll_event_loop.h: a small poll(2) EventLoop for hosts that have
// none of their own (Python, command-line tools, tests, benchmarks).
//
// Hosts with a loop (Boost.Asio, libuv, Envoy, nginx) implement EventLoop over it instead.
//   std::unique_ptr<modeenvoy::PollEventLoop> loop = modeenvoy::NewPollEventLoop();
//   auto client = modeenvoy::NewCurlUpstreamClient(loop.get());
//   bool finished = false;
//   auto call = (*client)->Start(request, &handler);    // handler sets `finished`
//   loop->RunUntil([&] { return finished; }, absl::Seconds(30));
#ifndef MODEENVOY_GATEWAY_POLL_EVENT_LOOP_H_
#define MODEENVOY_GATEWAY_POLL_EVENT_LOOP_H_

#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"
#include "modeenvoy/event_loop.h"

namespace modeenvoy {

// An EventLoop run by the calling thread. Timers use the monotonic system clock.
// Thread safety: Post() and Stop() are thread-safe; everything else, including the Run
// methods, must be called from one thread at a time, which becomes the loop thread while
// it runs the loop. The loop must outlive every Timer and FdWatch it created.
class MODEENVOY_EXPORT PollEventLoop : public EventLoop {
 public:
  // Runs one iteration: waits up to `max_wait` for a ready descriptor, a due timer or a
  // posted task, then runs what is ready. Returns the number of callbacks run.
  virtual int RunOnce(absl::Duration max_wait) = 0;

  // Runs iterations until `done()` returns true (checked before each iteration and after
  // every callback batch) or `timeout` elapsed or Stop() was called. Returns done().
  virtual bool RunUntil(absl::FunctionRef<bool()> done, absl::Duration timeout) = 0;

  // Runs until Stop() is called.
  virtual void Run() = 0;

  // Makes Run/RunUntil return after the current iteration. The flag is cleared when a Run
  // method returns. Callable from any thread.
  virtual void Stop() = 0;
};

// Creates a loop. `clock` (not owned, must outlive the loop; null = SystemClock()) is what
// clock() returns to components; timers always run on real monotonic time. Never null.
MODEENVOY_EXPORT std::unique_ptr<PollEventLoop> NewPollEventLoop(const Clock* clock = nullptr);

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_POLL_EVENT_LOOP_H_
