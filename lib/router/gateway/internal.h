// lib/router/gateway/internal.h: what the "router" policy and GET /admin/upstreams share:
// the router state kept in Services across reloads, and the index of live states.
#ifndef MODEENVOY_LIB_ROUTER_GATEWAY_INTERNAL_H_
#define MODEENVOY_LIB_ROUTER_GATEWAY_INTERNAL_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/gateway/registry.h"
#include "lib/router/gateway/probes.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy::router_gateway_internal {

// Attempts and successes of one deployment id over the state's life (reloads included).
struct Counters {
  std::atomic<int64_t> attempts{0};
  std::atomic<int64_t> successes{0};
  std::atomic<int64_t> hedges{0};     // hedged attempts sent to this deployment
  std::atomic<int64_t> cancelled{0};  // attempts cancelled because the other of a hedge won
};

// Which deployments a configuration groups into which pool, and what they call.
struct PoolLayout {
  std::string name;
  struct Member {
    std::string id;
    std::string model;     // the gateway model it calls
    std::string provider;  // that model's provider
  };
  std::vector<Member> members;
};

// One router with the health of its deployments; found again by name on every reload.
// Thread safety: thread-safe.
class RouterState {
 public:
  // `services` (the ConfigStore's) lends the probes their I/O and must outlive the state.
  RouterState(std::string name, Services* services, uint64_t seed);

  const std::string& name() const { return name_; }
  Router& router() const { return *router_; }
  // A fresh generation number for a policy being built (newer configurations win).
  uint64_t NextGeneration() { return next_generation_.fetch_add(1) + 1; }
  // Makes `config` the router's configuration (and `probes` the probe runner's targets)
  // unless a newer generation is applied already.
  void Apply(uint64_t generation, const std::shared_ptr<const RouterConfig>& config,
             const std::shared_ptr<const std::vector<PoolLayout>>& layout,
             const std::shared_ptr<const ProbeTable>& probes) ABSL_LOCKS_EXCLUDED(mu_);
  bool Applied(uint64_t generation) const {
    return applied_.load(std::memory_order_acquire) >= generation;
  }
  std::shared_ptr<const std::vector<PoolLayout>> layout() const ABSL_LOCKS_EXCLUDED(mu_);
  // The counters of deployment `id`, created on first use; never null.
  std::shared_ptr<Counters> CountersFor(std::string_view id) ABSL_LOCKS_EXCLUDED(mu_);
  // The active health probes of the router's deployments.
  const ProbeRunner& probes() const { return *probes_; }

 private:
  const std::string name_;
  std::unique_ptr<Router> router_;
  std::unique_ptr<ProbeRunner> probes_;  // after router_: stops before the router goes
  std::atomic<uint64_t> next_generation_{0};
  std::atomic<uint64_t> applied_{0};
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<PoolLayout>> layout_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::shared_ptr<Counters>> counters_ ABSL_GUARDED_BY(mu_);
};

// Every live RouterState by name (Services state kIndexName), for GET /admin/upstreams.
class StateIndex {
 public:
  void Add(const std::shared_ptr<RouterState>& state) ABSL_LOCKS_EXCLUDED(mu_);
  // The states still alive, by name.
  std::map<std::string, std::shared_ptr<RouterState>> Live() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::weak_ptr<RouterState>> states_ ABSL_GUARDED_BY(mu_);
};

inline constexpr std::string_view kIndexName = "router_gateway.index";

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildRouterPolicy(std::string_view options_json,
                                                                 const RouteBuildContext& context);

absl::Status RegisterUpstreamsEndpoint(EndpointRegistry* endpoints);

}  // namespace modeenvoy::router_gateway_internal

#endif  // MODEENVOY_LIB_ROUTER_GATEWAY_INTERNAL_H_
