// include/modeenvoy/router/gateway.h: the router (router.h) inside the modeenvoy engine.
//
// Registers the routing policy "router" and the endpoint GET /admin/upstreams:
//   modeenvoy::Registry registry;
//   if (absl::Status s = modeenvoy::RegisterRouterGatewayComponent(&registry); !s.ok()) ...
//   // config: a route whose model a pool serves; deployments name configured models.
//   {"routes": [{"match": {"model": "demo-resilient"}, "policy": "router",
//                "retry_budget": {"percent": 20, "min_concurrency": 3},
//                "pools": [{"name": "demo-resilient", "lb": {"policy": "least_request"},
//                           "deployments": [{"id": "east", "model": "gpt-east"},
//                                           {"id": "west", "model": "claude-west"}]}]}]}
// The route's keys besides "match" and "policy" are the router's configuration
// (docs/routing.md) with one difference: a deployment's "model" names a model of the
// gateway's `models`, whose provider, upstream model name and dialect (the provider's type)
// the deployment takes; "provider" and "dialect" are therefore not keys here. "state" (a
// string, default: the route's model) names the router's health state in Services: routes
// and reloads naming the same state share one router, so the health, in-flight counts and
// latency of unchanged deployment ids survive a reload. "select" picks another pool by the
// request's headers and metadata (tenant or tier set by an auth filter, context metadata):
//   "select": [{"header": {"x-modeenvoy-route": "canary"}, "model": "assistant-canary"},
//              {"metadata": {"api_key.name": "team-gold"}, "model": "assistant-gold"}]
// The first entry whose every header (name case-insensitive, value exact) and metadata value
// match plans the request with its "model" (which a pool must serve); otherwise the
// requested model is planned.
//
// Per request: the router plans the pool of the requested model; session id from the
// x-session-id header (consistent hashing, sticky splits), tenant from the api_key.name
// metadata, the system prompt and max_tokens from the chat request; for the tiered rules the
// prompt's token count (pools with prompt_tokens rules or context windows only), the last
// user message (complexity) and the key tier (api_key.tier metadata); the deadline from the
// route's "request_timeout_ms". A pool's overflow queue is waited in on the request's loop
// (AttemptPlan::Wait, woken through RoutingRequest::make_wake): queue timeout 429, deadline 504,
// a client that leaves gives up its place. Each attempt's backoff
// delay is waited on the request's loop; every outcome is reported back (failure class,
// Retry-After, latency, time to the first byte); a client that leaves cancels the attempt
// in flight and gives its capacity slot back.
//
// Hedging: a pool with "hedge" gets a second, concurrent attempt on another deployment for a
// non-streaming chat request whose first attempt has not answered after the pool's observed
// p95 latency (or its "delay_ms"); the first 2xx answer wins, the other is cancelled and
// counted as cancelled, not failed (AttemptPlan::Hedge, routing.h).
// Active health checks: a deployment with "health_check" is probed on the background I/O
// a gateway lends its Services ("probe": "chat", a one-token chat built by the dialect, or
// "get" with "path"), its state kept with the router state across reloads; see
// docs/routing.md.
//
// GET /admin/upstreams answers, for every live router state, each pool and deployment:
// health (ejected until, 429 cool-down, consecutive failures, the failure window), in
// flight, peak-EWMA time to first token, probe state, attempts, successes, hedges and
// cancelled attempts. The endpoint has no guard
// of its own: the host restricts /admin/ paths (the example proxy: loopback clients only,
// as for its other /admin endpoints).
#ifndef MODEENVOY_ROUTER_GATEWAY_H_
#define MODEENVOY_ROUTER_GATEWAY_H_

#include "absl/status/status.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/registry.h"

namespace modeenvoy {

// Adds the "router" routing policy and GET /admin/upstreams to `registry`.
// Errors: kAlreadyExists when either is registered already. Thread safety: as Registry.
MODEENVOY_EXPORT absl::Status RegisterRouterGatewayComponent(Registry* registry);

}  // namespace modeenvoy

#endif  // MODEENVOY_ROUTER_GATEWAY_H_
