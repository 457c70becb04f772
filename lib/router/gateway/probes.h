// lib/router/gateway/probes.h: active health probes of the "router" policy's deployments,
// sent on the background I/O a gateway lends to its services (services.h: BackgroundIo).
//
// The router schedules (Router::DueProbes / NextProbeDue) and judges (ReportProbe: the
// thresholds, ejection and return); the runner builds each probe through the deployment's
// provider dialect like a real call (URL, authentication, signing), sends it with the lent
// upstream client, bounds it by the check's timeout on a timer of the lent loop, and
// reports the result. A probe is
//   "probe": "chat" (the default)  a one-token, non-streaming chat completion of the
//                                  deployment's upstream model; a 2xx answer is a success;
//   "probe": "get"                 GET `path` (default "/v1/models") at the origin
//                                  (scheme://host:port) of the dialect's chat URL, with the
//                                  dialect's authentication headers; a 2xx answer is a success.
// Lifetime: one runner per RouterState (Services named state), so probe records and the
// router's probe state survive reloads; a reload's deployments take effect for probes when
// the router applies that configuration (its first planned request). Probes run while
// background I/O is attached: detaching it (the gateway destroyed) abandons the probes in
// flight (Router::AbandonProbe) and stops the timer; the next attachment starts again after
// a jittered delay. Destroying the runner stops everything on the loop.
#ifndef MODEENVOY_LIB_ROUTER_GATEWAY_PROBES_H_
#define MODEENVOY_LIB_ROUTER_GATEWAY_PROBES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy::router_gateway_internal {

// What a deployment's probe calls, copied out of the snapshot that configured it.
struct ProbeTarget {
  std::string provider;        // the provider's name (for messages)
  std::string upstream_model;
  std::shared_ptr<const ProviderDialect> dialect;
  UpstreamTimeouts timeouts;   // the provider's; connect kept, the rest bounded by the check
  bool get = false;            // "probe": "get" (else a one-token chat)
  std::string path;            // for "get": the check's path
  absl::Duration jitter;       // the check's jitter (bounds the runner's start delay)
};
// By deployment id.
using ProbeTable = absl::flat_hash_map<std::string, ProbeTarget>;

// The last probe of one deployment, for GET /admin/upstreams. Times on the clock's
// MonotonicNow() scale.
struct ProbeRecord {
  int64_t sent = 0;        // probes finished (success or failure) over the runner's life
  absl::Time last_at = absl::InfinitePast();  // when the last one finished
  bool last_ok = false;
  std::string last_error;  // why the last one failed; empty after a success
};

// Thread safety: thread-safe. Loop work runs on the attached loop's thread.
class ProbeRunner {
 public:
  // `router` must outlive the runner; `services` too (the ConfigStore's).
  ProbeRunner(Router* router, Services* services);
  ~ProbeRunner();
  ProbeRunner(const ProbeRunner&) = delete;
  ProbeRunner& operator=(const ProbeRunner&) = delete;

  // The probe targets of the configuration the router was just updated to; wakes the
  // schedule (on the loop).
  void SetTargets(std::shared_ptr<const ProbeTable> targets);
  // The record of deployment `id`; nullopt when the targets have no probe for it (a record
  // with `sent` 0 before its first probe finished).
  std::optional<ProbeRecord> Record(std::string_view id) const;

 private:
  class Core;
  std::shared_ptr<Core> core_;
  std::unique_ptr<IoWatch> watch_;
};

}  // namespace modeenvoy::router_gateway_internal

#endif  // MODEENVOY_LIB_ROUTER_GATEWAY_PROBES_H_
