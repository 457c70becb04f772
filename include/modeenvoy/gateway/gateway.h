// include/modeenvoy/gateway/gateway.h: the gateway engine, one HTTP request at a time.
//
// A host (the example proxy, or another gateway embedding modeenvoy) parses HTTP itself and
// hands each request to Gateway::Handle with a ResponseSink that writes back to the client.
// The request path: endpoint (registered, endpoint.h) -> filters (request phase) -> for a
// model call: routing policy (an ordered plan of attempts, routing.h) -> per attempt the
// provider dialect (URL, auth, body, framing; provider.h) -> upstream client -> the
// dialect's translation back -> filters (response phase, each step may pause) -> the
// client's dialect (IngressCodec) -> the sink. A failed attempt is retried or falls back
// as the plan says, until the first byte reached the client.
//   modeenvoy::ConfigStore store;
//   if (absl::Status s = store.Load(config_json); !s.ok()) return s;
//   auto client = modeenvoy::NewCurlUpstreamClient(&loop);         // same loop as the host
//   if (!client.ok()) return client.status();
//   auto gateway = modeenvoy::NewGateway(
//       {.config = &store, .loop = &loop, .upstream = client->get()});
//   // per client request, on the loop thread:
//   std::unique_ptr<modeenvoy::ActiveRequest> active = (*gateway)->Handle(std::move(req), &sink);
//   // host's socket writable again after sink.SendBody returned false:
//   active->OnSinkDrained();
//   // client disconnected before the response finished:
//   active.reset();  // aborts the upstream call; the sink is not called again
//
// Served endpoints: those of the snapshot's registry (built-ins: POST /v1/chat/completions,
// streaming or not, POST /v1/embeddings and GET /v1/models). Anything else is a 404 with an OpenAI-style error
// body, a known path with another method a 405 with Allow.
#ifndef MODEENVOY_GATEWAY_GATEWAY_H_
#define MODEENVOY_GATEWAY_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/gateway/usage.h"

namespace modeenvoy {

struct GatewayOptions {
  // Source of the configuration; each request takes Current() when it starts and keeps that
  // snapshot to its end. Not owned; must outlive the gateway. Required.
  const ConfigStore* config = nullptr;
  // The loop every request of this gateway runs on. Not owned; must outlive the gateway
  // and every ActiveRequest it returned. Required.
  EventLoop* loop = nullptr;
  // Calls providers. Not owned; must outlive the gateway and every ActiveRequest. Required.
  UpstreamClient* upstream = nullptr;
  // Time source given to filters. Null means loop->clock().
  const Clock* clock = nullptr;
  // Uniform random draws for routing. Null means the config store's Services::Random().
  std::function<uint64_t()> random;
  // Non-streaming upstream bodies (which the engine holds whole so filters can see them)
  // above this size fail the request with 502. REQUIRES: > 0.
  uint64_t max_upstream_body_bytes = 64 << 20;
  // Upstream bytes all requests of this gateway may hold at once (whole bodies, and stream
  // events waiting for a paused filter or a slow client). A request that would go beyond
  // fails with 503 and Retry-After. REQUIRES: >= max_upstream_body_bytes.
  uint64_t max_buffered_upstream_bytes = uint64_t{512} << 20;
  // Requests in flight beyond this get 503 with Retry-After at once. 0 = no limit.
  size_t max_requests_in_flight = 0;
  // A request phase (filters) still paused after this ends with 504; a response step
  // paused this long ends the response (504 before its status line, cut short after).
  absl::Duration request_phase_timeout = absl::Seconds(30);
  absl::Duration response_step_timeout = absl::Seconds(30);
  // Counts usage for a stream that ended without reporting it (usage.h). Null means
  // WordCountUsageEstimator().
  std::shared_ptr<const UsageEstimator> usage_estimator;
};

// Gateway serves requests against the current configuration.
// Thread safety: thread-hostile; all calls on the loop thread of GatewayOptions::loop. Run
// one Gateway per loop thread; they may share one ConfigStore and its snapshots.
class MODEENVOY_EXPORT Gateway {
 public:
  virtual ~Gateway() = default;

  // Starts serving `request`; the answer goes to `sink` (not owned; must stay valid until
  // it received Finish() or the returned handle is destroyed). Never null.
  // The sink may already be called before Handle returns (errors found while parsing,
  // local replies from filters that did not pause); done() then reports true. The host may
  // destroy the returned handle from inside any ResponseSink call (typically in Finish).
  // Failures reach the client as OpenAI-style error bodies: invalid JSON or fields 400 with
  // "param"; unknown model 404; no configuration loaded 503; upstream transport errors 502,
  // upstream timeouts 504; upstream HTTP errors keep the upstream status and message
  // (StatusFromUpstreamError), with their retry-after and x-ratelimit-* headers. A failure
  // after a stream began ends it with an error event in the client's dialect and
  // Finish(false). An exception thrown by a filter, dialect or handler becomes a 500 for
  // that request only.
  virtual std::unique_ptr<ActiveRequest> Handle(HttpRequest request, ResponseSink* sink) = 0;

  // Requests started by this gateway that have not finished yet.
  virtual size_t active_requests() const = 0;
};

// Creates a gateway. The gateway may be destroyed while requests it started are still in
// flight; they complete normally. While it lives, its loop and upstream client are attached
// to the config store's Services as background I/O (services.h: AttachIo; components'
// request-less calls such as the router's active health probes), detached by its
// destructor, which therefore runs on the loop thread or after the loop stopped. Errors: kInvalidArgument if a required option is null or
// a REQUIRES above is broken.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<Gateway>> NewGateway(GatewayOptions options);

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_GATEWAY_H_
