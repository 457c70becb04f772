// include/modeenvoy/gateway/gateway.h: the gateway engine, one HTTP request at a time.
//
// A host (the example proxy, or another gateway embedding modeenvoy) parses HTTP itself and
// hands each request to Gateway::Handle with a ResponseSink that writes back to the client.
// The engine runs the config's filter chain, resolves the model to a provider, calls it
// through the UpstreamClient and relays the answer (SSE streams chunk by chunk):
//   modeenvoy::ConfigStore store;
//   MODEENVOY_RETURN_IF_ERROR(store.Load(config_json));
//   auto client = modeenvoy::NewCurlUpstreamClient(&loop);         // same loop as the host
//   auto gateway = modeenvoy::NewGateway(
//       {.config = &store, .loop = &loop, .upstream = client->get()});
//   // per client request, on the loop thread:
//   std::unique_ptr<modeenvoy::ActiveRequest> active = (*gateway)->Handle(std::move(req), &sink);
//   // host's socket writable again after sink.SendBody returned false:
//   active->OnSinkDrained();
//   // client disconnected before the response finished:
//   active.reset();  // aborts the upstream call; the sink is not called again
//
// Served endpoints:
//   POST /v1/chat/completions  OpenAI Chat Completions, streaming ("stream": true) or not
//   GET  /v1/models            the snapshot's served model names, OpenAI list format
//   anything else              404 with an OpenAI-style error body
#ifndef MODEENVOY_GATEWAY_GATEWAY_H_
#define MODEENVOY_GATEWAY_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/event_loop.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/upstream.h"

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
  // Uniform random draws for weighted routes. Null means an internal absl::BitGen.
  std::function<uint64_t()> random;
  // Non-streaming upstream bodies (which the engine holds whole so filters can see them)
  // above this size fail the request with 502. REQUIRES: > 0.
  uint64_t max_upstream_body_bytes = 64 << 20;
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
  // (StatusFromUpstreamError). A failure after a stream began ends it with Finish(false).
  virtual std::unique_ptr<ActiveRequest> Handle(HttpRequest request, ResponseSink* sink) = 0;

  // Requests started by this gateway that have not finished yet.
  virtual size_t active_requests() const = 0;
};

// Creates a gateway. The gateway may be destroyed while requests it started are still in
// flight; they complete normally. Errors: kInvalidArgument if a required option is null or
// max_upstream_body_bytes is 0.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<Gateway>> NewGateway(GatewayOptions options);

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_GATEWAY_H_
