// include/modeenvoy/gateway/services.h: what every component builder receives.
//
// Filters, endpoints, provider dialects, routing policies and config sections are built
// when a configuration is loaded (on whatever thread loads it), and rebuilt on every
// reload. Services gives them the process-wide parts: the clock, randomness, and named
// long-lived state that survives a reload (a Redis connection pool, a circuit breaker's
// health table, a cache), found again by name when the factories are rebuilt:
//   struct Health { absl::Mutex mu; ... };                       // the component's own type
//   std::shared_ptr<Health> health = services.State<Health>(
//       "router.health", [] { return std::make_shared<Health>(); });
// The loop and the upstream client are per worker thread, so they reach a request through
// FilterCallbacks (event_loop(), upstream()), not through Services. Work that belongs to no
// request (the router's active health probes) runs on the background I/O a gateway lends
// (AttachIo / WatchIo below).
#ifndef MODEENVOY_GATEWAY_SERVICES_H_
#define MODEENVOY_GATEWAY_SERVICES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

class EventLoop;       // modeenvoy/event_loop.h
class UpstreamClient;  // modeenvoy/gateway/upstream.h

// The loop and upstream client a component may use for calls that belong to no request.
struct BackgroundIo {
  EventLoop* loop = nullptr;            // null: no background I/O attached
  UpstreamClient* upstream = nullptr;   // bound to `loop`
};

// Ends a Services::WatchIo watch when destroyed (no call of its callback runs after the
// destructor returned). Must not be destroyed from inside that callback.
class MODEENVOY_EXPORT IoWatch {
 public:
  virtual ~IoWatch() = default;
};

struct ServicesOptions {
  // Not owned; must outlive the services. Null means SystemClock().
  const Clock* clock = nullptr;
  // Uniform 64-bit draws (weighted routing, jitter). Must be thread-safe. Null means an
  // internal generator seeded from std::random_device.
  std::function<uint64_t()> random;
};

// Services is shared by every snapshot of one ConfigStore.
// Thread safety: thread-safe.
class MODEENVOY_EXPORT Services {
 public:
  explicit Services(ServicesOptions options = {});
  ~Services();
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

  const Clock& clock() const { return *clock_; }
  // A uniformly distributed 64-bit value.
  uint64_t Random();

  // Returns the state named `name`, creating it with `create` when no live object of that
  // name exists. State lives as long as somebody (typically a factory in a snapshot) holds
  // the returned pointer: a reload that asks for the same name while the old snapshot is
  // still current gets the same object; a name no snapshot asks for any more is released.
  // Asking for an existing name with another type T is a programming error: returns null.
  // `create` runs without the services' lock and must not return null.
  template <typename T>
  std::shared_ptr<T> State(std::string_view name, absl::FunctionRef<std::shared_ptr<T>()> create) {
    std::shared_ptr<void> state = StateImpl(
        name, std::type_index(typeid(T)),
        [&]() -> std::shared_ptr<void> { return create(); });
    return std::static_pointer_cast<T>(std::move(state));
  }

  // Number of live named states (for tests and diagnostics).
  size_t live_states() const ABSL_LOCKS_EXCLUDED(mu_);

  // Background I/O. NewGateway attaches its loop and upstream client to its ConfigStore's
  // services and detaches them when destroyed; with several attached (one gateway per
  // worker thread) the earliest still attached is the one in use. AttachIo returns a token
  // for DetachIo. REQUIRES: io.loop and io.upstream non-null and valid until DetachIo; a
  // detach runs on io.loop's thread (or after that loop stopped running).
  uint64_t AttachIo(BackgroundIo io) ABSL_LOCKS_EXCLUDED(io_mu_);
  void DetachIo(uint64_t token) ABSL_LOCKS_EXCLUDED(io_mu_);
  // The background I/O in use now (loop null when none).
  BackgroundIo io() const ABSL_LOCKS_EXCLUDED(io_mu_);
  // Calls `on_change` with the I/O in use now (at once, on this thread) and again whenever
  // it changes (on the thread attaching or detaching, before AttachIo/DetachIo returns: a
  // watcher drops its timers and calls on a detached loop inside that call; it must not use
  // a newly attached loop's thread-hostile parts from there, only Post() to it). Calls are
  // serialised under the services' I/O lock: `on_change` must not call AttachIo, DetachIo,
  // io() or WatchIo, nor destroy an IoWatch. Never null.
  std::unique_ptr<IoWatch> WatchIo(std::function<void(BackgroundIo)> on_change)
      ABSL_LOCKS_EXCLUDED(io_mu_);

 private:
  std::shared_ptr<void> StateImpl(std::string_view name, std::type_index type,
                                  absl::FunctionRef<std::shared_ptr<void>()> create)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Entry {
    std::type_index type = std::type_index(typeid(void));
    std::weak_ptr<void> state;
  };
  class IoWatchImpl;
  void Unwatch(uint64_t id) ABSL_LOCKS_EXCLUDED(io_mu_);
  // The first attached I/O, or none; io_mu_ held.
  BackgroundIo CurrentIo() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);
  void NotifyIo(BackgroundIo before) ABSL_EXCLUSIVE_LOCKS_REQUIRED(io_mu_);

  const Clock* clock_;
  std::function<uint64_t()> random_;
  mutable absl::Mutex io_mu_;
  uint64_t next_io_id_ ABSL_GUARDED_BY(io_mu_) = 0;
  std::vector<std::pair<uint64_t, BackgroundIo>> attached_ ABSL_GUARDED_BY(io_mu_);
  std::vector<std::pair<uint64_t, std::function<void(BackgroundIo)>>> watchers_
      ABSL_GUARDED_BY(io_mu_);
  mutable absl::Mutex mu_;
  uint64_t random_state_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_SERVICES_H_
