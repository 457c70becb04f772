// include/modeenvoy/gateway/routing.h: where a model call goes, attempt by attempt.
//
// A route (`routes[i]`) names a routing policy that turns each request into an ordered plan
// of attempts. The engine asks the plan for an attempt, calls it, reports the outcome and
// asks again: a failed attempt may be retried or fall back to another model, across
// providers (translation included), as long as no byte of the response reached the client.
// Policies are registered by name; `routes[i].policy` picks one ("weighted" by default):
//   registry.routing().Register("my_policy", [](std::string_view options_json,
//                                                const modeenvoy::RouteBuildContext& ctx)
//       -> absl::StatusOr<std::unique_ptr<modeenvoy::RoutingPolicy>> { ... });
//
// Built-in "weighted" (the route keys besides "match" and "policy"):
//   {"target": "gpt-4o-mini"}                              one model
//   {"targets": [{"model": "a", "weight": 90}, {"model": "b", "weight": 10}]}
//   "fallbacks": ["c", "d"]         tried in order after the picked target fails
//   "retry_on": ["429", "5xx", "timeout", "connect", "reset"]   failure classes that move on
//                                   to the next attempt (default: these five; see FailureClass)
//   "max_attempts": 3               bound on attempts per request (default: 1 + fallbacks)
// A model name without a route is served by a single attempt on that model.
#ifndef MODEENVOY_GATEWAY_ROUTING_H_
#define MODEENVOY_GATEWAY_ROUTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry_base.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"

namespace modeenvoy {

struct ModelConfig;     // config.h
struct ProviderConfig;  // config.h

// One call to one model. Pointers refer into the snapshot that planned it.
struct Attempt {
  const ModelConfig* model = nullptr;
  const ProviderConfig* provider = nullptr;
  int index = 0;  // 0 for the first attempt of a request
  // Wait this long before calling (a policy's backoff); the engine waits on a timer of the
  // request's loop, so a client that leaves during the wait cancels the attempt.
  absl::Duration delay = absl::ZeroDuration();
  // Hedging (a policy's opt-in; whole chat answers and single embeddings calls, never a
  // stream or a split embeddings request): when this attempt has not
  // answered after `hedge_after` (counted from its start, after `delay`), the engine asks
  // AttemptPlan::Hedge() for a concurrent second attempt. InfiniteDuration: never.
  absl::Duration hedge_after = absl::InfiniteDuration();
  bool hedge = false;  // this is the hedged (second, concurrent) attempt Hedge() returned
  // The plan reads this attempt's AttemptOutcome::usage (e.g. the router's `tpm`): the
  // engine then reads the answer's token usage for it (a whole chat answer's `usage`; a
  // stream's reported usage, or an estimate when the stream reported none), one narrow
  // parse per answer. Off: the outcome carries usage only when a response filter reads it.
  bool wants_usage = false;
  // Per-try timeout (a policy's, e.g. the router's `retry.per_try_timeout_ms`), counted from
  // the call's start (after `delay`). It covers the attempt until its answer is handed to the
  // client's response phase: the whole body of a non-streamed answer, the 2xx response head
  // of a stream (after which no other attempt is possible, so a long generation is never cut
  // by it). When it passes first, the engine cancels the call (destroys it) and reports the
  // attempt as failed with kDeadlineExceeded (FailureClass kTimeout, an HTTP 504 for the
  // client should no other attempt follow); Next() follows as after any failure. A hedged
  // attempt (Hedge()) gets no per-try timer: it is bounded by `deadline` alone.
  // InfiniteDuration: none.
  absl::Duration timeout = absl::InfiniteDuration();
  // The request's deadline (the router policy's `request_timeout_ms`), a time of the
  // gateway's Clock::MonotonicNow() (GatewayOptions::clock; a policy that plans with
  // Services::clock() relies on it being the same clock), the same for every attempt of a
  // request. When it passes while an attempt is out or waits its delay, before the client
  // got anything, the engine cancels what is out (both legs of a hedge), reports it
  // (kDeadlineExceeded, kTimeout) and answers 504 (no Next()); when it passes during a
  // stream the client already gets, the stream ends with an error event (the attempt is
  // reported as a stream that failed after its first byte). A whole answer already in the
  // response phase is not affected. InfiniteFuture: none.
  absl::Time deadline = absl::InfiniteFuture();
  // The budget `deadline` came from (now + request_timeout at planning), named in the 504.
  absl::Duration request_timeout = absl::InfiniteDuration();
};

// Why an attempt failed, as routing decisions need it.
enum class FailureClass {
  kNone,             // succeeded
  kRateLimited,      // HTTP 429 ("429")
  kServerError,      // HTTP 5xx ("5xx")
  kTimeout,          // an upstream timeout ("timeout")
  kConnect,          // connection refused, DNS or TLS failure: nothing sent ("connect")
  kContextLength,    // the prompt does not fit the model ("context_length")
  kContentFilter,    // the provider refused the content ("content_filter")
  kClientError,      // another 4xx: the request itself is wrong ("4xx")
  kProtocol,         // the answer could not be read or translated ("protocol")
  kReset,            // the connection was lost after the request went out, before the
                     // whole answer (IsConnectionReset; "reset")
};

// "429", "5xx", "timeout", ... as above; nullopt for an unknown name.
MODEENVOY_EXPORT std::optional<FailureClass> FailureClassFromName(std::string_view name);
MODEENVOY_EXPORT std::string_view FailureClassName(FailureClass failure);

// Classifies an attempt's final status: OK; a transport error from UpstreamClient
// (`upstream_http_status` 0: kDeadlineExceeded is a timeout, kUnavailable a connect
// failure, or a reset when IsConnectionReset, anything else a protocol failure); or an upstream HTTP error mapped by the
// dialect (by its error code "context_length_exceeded" / "content_filter" /
// "content_policy_violation", then by status: 429, 5xx, other 4xx).
MODEENVOY_EXPORT FailureClass ClassifyFailure(const absl::Status& status,
                                              int upstream_http_status);

// The delay an upstream asked for in "retry-after-ms" or "retry-after" (seconds, or an
// HTTP date relative to `now`); nullopt when absent or unreadable.
MODEENVOY_EXPORT std::optional<absl::Duration> RetryAfter(const HttpHeaders& headers,
                                                          absl::Time now);

struct AttemptOutcome {
  absl::Status status;  // OK or the error the client would see
  FailureClass failure = FailureClass::kNone;
  int http_status = 0;  // upstream status, 0 when no response arrived
  // The upstream's Retry-After, when it sent one.
  std::optional<absl::Duration> retry_after;
  absl::Duration latency;          // start to completion
  absl::Duration first_byte_time;  // zero when no byte arrived
  // The engine cancelled the attempt because the other attempt of a hedged pair answered
  // first (status kCancelled, failure kNone): not a failure of its target.
  bool cancelled = false;
  // The answer's token usage, for an attempt that succeeded: always when the attempt asked
  // (Attempt::wants_usage), else when a response filter reads usage; nullopt when the
  // answer reported none and none could be estimated (embeddings: prompt tokens only).
  std::optional<Usage> usage;
  bool usage_estimated = false;  // `usage` was counted by the gateway, not reported
};

// The plan of one request. Thread safety: thread-hostile (one request).
class MODEENVOY_EXPORT AttemptPlan {
 public:
  virtual ~AttemptPlan() = default;
  // The next attempt, or nullopt when the plan is exhausted. The first call never follows
  // a Report(); each later call follows the Report() of the previous attempt.
  virtual std::optional<Attempt> Next() = 0;
  // The outcome of the attempt Next() returned last, at most once per attempt: a failure
  // before any byte reached the client (Next() follows), or the end of the attempt whose
  // answer the client got (success, or a stream that failed after its first byte; no Next()
  // follows). An attempt the client abandoned (disconnect) is never reported: the plan is
  // destroyed instead. An attempt the engine cancelled for its Attempt::timeout or the
  // request's Attempt::deadline is reported as a failure (kDeadlineExceeded, kTimeout); after
  // the deadline no Next() follows.
  virtual void Report(const Attempt& attempt, const AttemptOutcome& outcome) = 0;
  // Hedging. Called by the engine at most once per request, `hedge_after` after the start
  // of an attempt with a finite Attempt::hedge_after that has not answered yet (never for a
  // streamed request): a second attempt to run concurrently with it (Attempt::hedge true),
  // or nullopt (the default: no hedge; the first attempt simply goes on). With a hedge out
  // the engine reports both attempts, each exactly once, in the order they end:
  //   - the first complete 2xx answer wins: the client gets it, that attempt is reported
  //     as above, and the other is cancelled (upstream call destroyed) and reported with
  //     `cancelled` true (before the winner's report when the hedge won, after it when
  //     the first attempt did);
  //   - a failed one is reported as a failure while the other is still out; the other then
  //     carries the request alone (no Next() follows that report);
  //   - when both failed, Next() follows the second failure's report (fallback as planned).
  // A client that leaves cancels both; neither is reported (the plan is destroyed).
  // The returned Attempt's pointers refer into the snapshot, as Next()'s do; its `delay` is
  // ignored (the hedge starts at once).
  virtual std::optional<Attempt> Hedge() { return std::nullopt; }
  // Waiting for capacity (the "router" policy's overflow queue): the engine calls Wait()
  // before each Next(), on the request's loop. It returns ZeroDuration when Next() may be
  // called now (the default: never waits); a positive duration while the plan waits for a
  // slot, the longest it may still wait: the engine arms a timer of the request's loop for
  // it and calls Wait() again when that timer fires or when RoutingRequest::make_wake's function runs,
  // whichever comes first (a wake may be spurious: Wait() then returns a duration again);
  // an error when the wait ended without a slot (e.g. kResourceExhausted, 429 with
  // retry-after, after the queue's timeout; kDeadlineExceeded, 504): the engine answers the
  // client with it and never calls Next(). A client that leaves while the plan waits
  // destroys the plan, which gives up its place.
  virtual absl::StatusOr<absl::Duration> Wait() { return absl::ZeroDuration(); }
};

// What a policy sees of a request.
struct RoutingRequest {
  std::string_view model;                 // the public model name asked for
  const ChatRequest* chat = nullptr;      // null outside chat calls
  const EmbeddingsRequest* embeddings = nullptr;  // null outside embeddings calls
  const HttpHeaders* headers = nullptr;   // the client's headers; may be null
  const absl::flat_hash_map<std::string, std::string>* metadata = nullptr;  // may be null
  uint64_t draw = 0;  // a uniform random value for this request
  // The engine's wake for a plan that may wait (AttemptPlan::Wait): make_wake() returns a
  // function that makes the engine call the plan's Wait() again. Call make_wake() during
  // Plan() only, and only for a plan that may wait (it allocates; requests that never wait
  // pay nothing). The function it returns is callable from any thread, any number of times,
  // also after the request ended (it then does nothing): it only posts to the request's loop
  // (EventLoop::Post), which must outlive every call; a plan may keep it. Empty when the
  // caller never waits (Wait() is not called): a policy then answers a wait as its
  // capacity error.
  std::function<std::function<void()>()> make_wake;
};

// Built per configured route. Thread safety: thread-safe.
class MODEENVOY_EXPORT RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  // Errors: kNotFound with code "model_not_found" when nothing can serve the request.
  virtual absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(
      const RoutingRequest& request) const = 0;
};

struct RouteBuildContext : BuildContext {
  // Looks up a model of the snapshot being built; null when unknown.
  std::function<const ModelConfig*(std::string_view name)> find_model;
  // The provider of a model returned by find_model; never null for such a model.
  std::function<const ProviderConfig*(const ModelConfig& model)> provider_of;
};

// Builds a policy from a route entry's keys other than "match" and "policy" (a JSON
// object), read strictly; errors are relative to the route ("targets[1].weight: ...").
using RoutingPolicyBuilder = std::function<absl::StatusOr<std::unique_ptr<RoutingPolicy>>(
    std::string_view options_json, const RouteBuildContext& context)>;

class MODEENVOY_EXPORT RoutingPolicyRegistry : public NamedRegistry<RoutingPolicyBuilder> {
 public:
  RoutingPolicyRegistry() : NamedRegistry("routing policy") {}
};

// A plan of one attempt on `model` (what a model without a route gets).
MODEENVOY_EXPORT std::unique_ptr<AttemptPlan> SingleAttemptPlan(const ModelConfig* model,
                                                                const ProviderConfig* provider);

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_ROUTING_H_
