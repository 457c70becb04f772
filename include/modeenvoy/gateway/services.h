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
// FilterCallbacks (event_loop(), upstream()), not through Services.
#ifndef MODEENVOY_GATEWAY_SERVICES_H_
#define MODEENVOY_GATEWAY_SERVICES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

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

 private:
  std::shared_ptr<void> StateImpl(std::string_view name, std::type_index type,
                                  absl::FunctionRef<std::shared_ptr<void>()> create)
      ABSL_LOCKS_EXCLUDED(mu_);

  struct Entry {
    std::type_index type = std::type_index(typeid(void));
    std::weak_ptr<void> state;
  };
  const Clock* clock_;
  std::function<uint64_t()> random_;
  mutable absl::Mutex mu_;
  uint64_t random_state_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Entry> states_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_SERVICES_H_
