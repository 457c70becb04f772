// lib/router/gateway/upstreams.cc: GET /admin/upstreams, the state of every router's pools
// and deployments as JSON:
//   {"object": "upstreams", "routers": [{"state": "demo-resilient", "pools": [
//     {"name": "demo-resilient", "deployments": [
//       {"id": "flaky", "model": "emulated-flaky", "provider": "emulator-flaky",
//        "healthy": false, "ejected": true, "ejected_for_ms": 29000, "cooldown_for_ms": 0,
//        "ejections": 1, "consecutive_failures": 5,
//        "window": {"requests": 12, "failures": 7},
//        "in_flight": 0, "ttft_ewma_ms": 12.5, "decode_ms_per_token": 0,
//        "probe": {"healthy": true, "consecutive_successes": 2, "consecutive_failures": 0,
//                  "in_flight": false, "probes": 14, "last_ms_ago": 950, "last_ok": true,
//                  "last_error": ""},
//        "attempts": 40, "successes": 28, "hedges": 3, "cancelled": 2}]}]}]}
// `*_for_ms` count from now (0 when not ejected / not cooling down). "probe" only for a
// deployment with a "health_check" (last_* once a probe finished); "healthy" is false while
// ejected, cooling down or marked unhealthy by its probes. "hedges": hedged attempts sent
// to it; "cancelled": its attempts cancelled because the other attempt of a hedge won.
#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "lib/core/status_macros.h"
#include "lib/router/gateway/internal.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/services.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::router_gateway_internal {
namespace {

using Json = nlohmann::ordered_json;

int64_t MillisUntil(absl::Time until, absl::Time now) {
  if (until <= now) return 0;
  return absl::ToInt64Milliseconds(until - now);
}

Json RouterJson(RouterState& state, absl::Time now) {
  Json router = {{"state", state.name()}, {"pools", Json::array()}};
  std::shared_ptr<const std::vector<PoolLayout>> layout = state.layout();
  if (layout == nullptr) return router;  // built, not yet asked to plan
  absl::flat_hash_map<std::string, DeploymentHealth> health;
  for (DeploymentHealth& h : state.router().Health()) {
    std::string id = h.id;
    health.emplace(std::move(id), std::move(h));
  }
  for (const PoolLayout& pool : *layout) {
    Json deployments = Json::array();
    for (const PoolLayout::Member& m : pool.members) {
      Json d = {{"id", m.id}, {"model", m.model}, {"provider", m.provider}};
      auto it = health.find(m.id);
      if (it != health.end()) {
        const DeploymentHealth& h = it->second;
        const int64_t ejected_ms = MillisUntil(h.ejected_until, now);
        const int64_t cooldown_ms = MillisUntil(h.cooldown_until, now);
        d["healthy"] = ejected_ms == 0 && cooldown_ms == 0 && !h.probe_unhealthy;
        d["ejected"] = ejected_ms > 0;
        d["ejected_for_ms"] = ejected_ms;
        d["cooldown_for_ms"] = cooldown_ms;
        d["ejections"] = h.ejections;
        d["consecutive_failures"] = h.consecutive_failures;
        d["window"] = {{"requests", h.window_requests}, {"failures", h.window_failures}};
        d["in_flight"] = h.in_flight;
        d["ttft_ewma_ms"] = h.ttft_ewma_ms;
        d["decode_ms_per_token"] = h.decode_ms_per_token;
        if (std::optional<ProbeRecord> r = state.probes().Record(m.id)) {
          Json probe = {{"healthy", !h.probe_unhealthy},
                        {"consecutive_successes", h.probe_successes},
                        {"consecutive_failures", h.probe_failures},
                        {"in_flight", h.probe_in_flight},
                        {"probes", r->sent}};
          if (r->sent > 0) {
            probe["last_ms_ago"] = absl::ToInt64Milliseconds(now - r->last_at);
            probe["last_ok"] = r->last_ok;
            probe["last_error"] = r->last_error;
          }
          d["probe"] = std::move(probe);
        }
      }
      std::shared_ptr<Counters> c = state.CountersFor(m.id);
      d["attempts"] = c->attempts.load(std::memory_order_relaxed);
      d["successes"] = c->successes.load(std::memory_order_relaxed);
      d["hedges"] = c->hedges.load(std::memory_order_relaxed);
      d["cancelled"] = c->cancelled.load(std::memory_order_relaxed);
      deployments.push_back(std::move(d));
    }
    router["pools"].push_back({{"name", pool.name}, {"deployments", std::move(deployments)}});
  }
  return router;
}

class UpstreamsHandler final : public Filter {
 public:
  FilterResult OnRequest(RequestContext&, FilterCallbacks& callbacks) override {
    Services& services = callbacks.services();
    std::shared_ptr<StateIndex> index =
        services.State<StateIndex>(kIndexName, [] { return std::make_shared<StateIndex>(); });
    Json body = {{"object", "upstreams"}, {"routers", Json::array()}};
    if (index != nullptr) {
      const absl::Time now = services.clock().MonotonicNow();
      for (const auto& [name, state] : index->Live()) {
        body["routers"].push_back(RouterJson(*state, now));
      }
    }
    LocalReply reply;
    reply.status = 200;
    reply.headers.emplace_back("content-type", "application/json");
    reply.headers.emplace_back("cache-control", "no-store");
    reply.body = body.dump();
    return FilterResult::Reply(std::move(reply));
  }
};

class UpstreamsFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<UpstreamsHandler>();
  }
};

}  // namespace

absl::Status RegisterUpstreamsEndpoint(EndpointRegistry* endpoints) {
  EndpointSpec spec;
  spec.kind = "admin.upstreams";
  spec.method = "GET";
  spec.pattern = "/admin/upstreams";
  spec.local = std::make_shared<UpstreamsFactory>();
  return endpoints->Register(std::move(spec));
}

}  // namespace modeenvoy::router_gateway_internal
