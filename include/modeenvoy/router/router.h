// include/modeenvoy/router/router.h: model name -> pool of deployments -> ordered attempts.
//
// The router decides where each model call goes and learns from what happened. It does no
// I/O, so any host that makes its own upstream calls (the modeenvoy gateway, Envoy, nginx, a
// Go proxy) can drive it: Plan() a request, ask the plan for attempts, Report() each outcome.
//
//   #include "modeenvoy/router/router.h"
//   absl::Status Serve(modeenvoy::Router& router, std::string_view model) {
//     modeenvoy::RouteRequest request;
//     request.model = model;
//     request.session_id = "conversation-42";   // consistent hashing / sticky splits
//     request.prompt_tokens = 1200;             // context-window fit
//     request.max_tokens = 512;
//     auto plan = router.Plan(request);
//     if (!plan.ok()) return plan.status();     // kNotFound, kResourceExhausted
//     while (auto attempt = (*plan)->Next()) {
//       // wait attempt->delay, then call attempt->deployment->provider /
//       // ->upstream_model in ->dialect, giving up after attempt->timeout.
//       modeenvoy::AttemptResult result;
//       result.failure = modeenvoy::UpstreamFailure::kNone;   // or what went wrong
//       result.time_to_first_token = absl::Milliseconds(180);
//       result.latency = absl::Milliseconds(900);
//       (*plan)->Report(*attempt, result);
//       if (result.failure == modeenvoy::UpstreamFailure::kNone) return absl::OkStatus();
//     }
//     return (*plan)->final_status();           // why no attempt is left
//   }
//   // Setting up: built once, swapped whole when the configuration changes.
//   auto config = modeenvoy::ParseRouterConfig(json_text);      // strict, field paths
//   auto router = modeenvoy::NewRouter({.seed = 7});
//   if (config.ok()) router->Update(*std::move(config));
//
// docs/routing.md documents the JSON (pools, load-balancing policies, outlier detection,
// retries, fallbacks) with every default.
#ifndef MODEENVOY_ROUTER_ROUTER_H_
#define MODEENVOY_ROUTER_ROUTER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// An active health check of one deployment ("health_check" in its configuration). The
// router schedules probes and keeps their state; the host sends them (Router::DueProbes,
// Router::ReportProbe). A deployment starts healthy; `unhealthy_threshold` consecutive failed
// probes mark it unhealthy (Plan() skips it as if ejected, panic mode included) and
// `healthy_threshold` consecutive successes bring it back.
struct RouterHealthCheck {
  std::string path = "/v1/models";  // what to request; the host picks method and host name
  std::string body;                 // request body; empty = none (a GET)
  absl::Duration interval = absl::Seconds(10);
  absl::Duration timeout = absl::Seconds(2);   // the host reports a probe past it as failed
  absl::Duration jitter = absl::Seconds(1);    // a uniform [0, jitter) added to each interval
  int healthy_threshold = 2;
  int unhealthy_threshold = 3;
};

// One upstream that can serve a pool's model. Strings are opaque to the router: the host
// knows what provider "openai-east" and dialect "anthropic" mean.
struct RouterDeployment {
  std::string id;              // unique in the configuration; keys health across Update()
  std::string provider;        // the host's name for the upstream (endpoint, credentials)
  std::string upstream_model;  // the model name the upstream is called with
  std::string dialect;         // the wire protocol the upstream speaks
  std::string region;          // a tag; empty when not configured
  int weight = 1;              // relative share within its tier, >= 1
  int tier = 0;                // priority: lower tiers are used first, overflow goes up
  int64_t context_window = 0;  // tokens; 0 = unknown (never skipped for size)
  int max_in_flight = 0;       // concurrent attempts; 0 = unbounded
  int64_t rpm = 0;             // requests per minute; 0 = unbounded
  int64_t tpm = 0;             // tokens per minute (reported usage); 0 = unbounded
  double input_price_per_mtok = 0;   // price per million input tokens
  double output_price_per_mtok = 0;  // price per million output tokens
  std::optional<RouterHealthCheck> health_check;  // none: passive checks only
};

// A parsed, validated, immutable configuration. Built by ParseRouterConfig(); shared by the
// router and every plan made from it, so swapping it never invalidates a plan in flight.
// Thread safety: immutable, thread-safe.
class MODEENVOY_EXPORT RouterConfig {
 public:
  virtual ~RouterConfig() = default;
  // Every deployment of every pool, in configuration order.
  virtual const std::vector<RouterDeployment>& deployments() const = 0;
  // The pool serving `model` (exact name, then alias, then the longest wildcard prefix), or
  // nullopt. Pool names are returned as configured.
  virtual std::optional<std::string> PoolFor(std::string_view model) const = 0;
};

// Parses the router's JSON configuration (docs/routing.md). Strict: unknown keys and bad
// values are errors. Errors: kInvalidArgument naming the field path and the value, e.g.
// "pools[1].deployments[0].weight: must be >= 1".
MODEENVOY_EXPORT absl::StatusOr<std::shared_ptr<const RouterConfig>> ParseRouterConfig(
    std::string_view json);

// Why an attempt failed, as routing needs it. The host classifies its own errors.
enum class UpstreamFailure {
  kNone,           // succeeded
  kRateLimited,    // HTTP 429: the deployment cools down for its Retry-After
  kServerError,    // HTTP 5xx: counts towards outlier ejection
  kTimeout,        // no (complete) answer in time: counts towards outlier ejection
  kConnect,        // connect/DNS/TLS failure: counts towards outlier ejection
  kReset,          // connection reset before the answer: counts towards outlier ejection
  kContextLength,  // the prompt does not fit: falls back to a larger context window
  kContentFilter,  // the provider refused the content: falls back to the configured pool
  kClientError,    // another 4xx: the request is wrong, nothing is retried
  kCancelled,      // the client went away: neither health nor retries are affected
};

// "none", "429", "5xx", "timeout", "connect", "reset", "context_length", "content_filter",
// "4xx", "cancelled" (the names of "retry_on" in the configuration).
MODEENVOY_EXPORT std::string_view UpstreamFailureName(UpstreamFailure failure);
MODEENVOY_EXPORT std::optional<UpstreamFailure> UpstreamFailureFromName(std::string_view name);

// What the router sees of a request. Views are borrowed for the Plan() call only.
struct RouteRequest {
  std::string_view model;       // the public model name asked for
  std::string_view session_id = {};  // hash key for "hash_key": "session"; may be empty
  std::string_view tenant = {};      // hash key for "tenant" (with system_prompt: "tenant_prompt")
  std::string_view system_prompt = {};
  // Prompt size (counted by the host) and the completion bound; deployments whose context
  // window cannot hold their sum are skipped. 0 = unknown (nothing is skipped).
  int64_t prompt_tokens = 0;
  int64_t max_tokens = 0;
  // The end of the whole request across attempts, on the router clock's MonotonicNow()
  // scale; InfiniteFuture = only per-try timeouts.
  absl::Time deadline = absl::InfiniteFuture();
  // A uniform random value for this request (load-balancing draws, backoff jitter). Absent:
  // the router draws one from its seeded generator.
  std::optional<uint64_t> draw = std::nullopt;
  // Inputs of the pool's tiered rules ("rules", docs/routing.md); a rule whose input is
  // absent does not match. The text scored for "complexity" (e.g. the last user message;
  // the router never tokenizes), or the host's own score in [0, 1] which wins over it:
  std::string_view prompt = {};
  std::optional<double> complexity = std::nullopt;
  std::string_view key_tier = {};                       // the API key's tier, e.g. "free"
  std::optional<double> remaining_budget = std::nullopt;  // the key's budget left, host units
  // A streamed request is never hedged (its first byte may already be with the client).
  bool streaming = false;
  // Overflow queue (pools with "queue", docs/routing.md): called when a waiting plan
  // (RoutePlan::waiting()) may get a slot now, i.e. an attempt of the pool ended (Report() or
  // a plan's destruction), the waiter ahead of it left, or a newer request saw a free slot.
  // Copied into the plan. Called with no router lock held, inside the router call that
  // noticed it (Report(), a plan's destructor, Poll(), Next() or Plan(), on whichever thread
  // made it): a multi-threaded host posts RoutePlan::Poll() to the plan's own thread; a
  // single-threaded host may call Poll() from the callback. Wakes can be spurious (Poll()
  // then returns false). Empty: the host only polls (at least at wait_deadline()).
  std::function<void()> on_queue_wake = nullptr;
};

// One call to make. `deployment` points into the RouterConfig that planned it, which the
// plan keeps alive.
struct PlannedAttempt {
  const RouterDeployment* deployment = nullptr;
  int index = 0;                                 // 0 for the first attempt of the request
  absl::Duration delay = absl::ZeroDuration();   // wait this long before calling (backoff)
  absl::Duration timeout = absl::InfiniteDuration();  // per-try timeout (and the deadline)
  bool panic = false;  // chosen while every deployment of the pool was ejected
  // Hedging (pools with "hedge", non-streaming requests, first attempt only): when this
  // attempt has not answered after `hedge_after` (the pool's observed p95 latency, or its
  // configured "delay_ms"), the host may call RoutePlan::Hedge() for a concurrent second
  // attempt. InfiniteDuration: never.
  absl::Duration hedge_after = absl::InfiniteDuration();
  bool hedge = false;  // this is the hedged (second, concurrent) attempt
};

// The outcome of one attempt.
struct AttemptResult {
  UpstreamFailure failure = UpstreamFailure::kNone;
  // The upstream's Retry-After, when it sent one (429 cool-down length; backoff floor).
  std::optional<absl::Duration> retry_after = std::nullopt;
  // Time to the first token, when one was observed: a streamed answer's first chunk (or an
  // error's response head). nullopt (or a value <= 0) when none was: a whole (non-streamed)
  // answer, whose head only comes after the last token, or a failure before any byte.
  // peak_ewma's sample (docs/routing.md): this time when present; for a success without
  // it, `latency` less the deployment's learnt decode time of output_tokens - 1 tokens
  // (the whole latency while none is learnt); a failure without it adds no sample.
  std::optional<absl::Duration> time_to_first_token = std::nullopt;
  absl::Duration latency = absl::ZeroDuration();  // start to completion
  // Usage, for tokens-per-minute capacity; output_tokens also teaches peak_ewma the
  // deployment's decode time per token (0 = unknown).
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
};

// The attempts of one request. Each attempt Next() returns holds a capacity slot (in-flight
// count) on its deployment until Report() or the plan's destruction (which reports nothing).
// Thread safety: thread-compatible (one request; the host serialises its calls).
class MODEENVOY_EXPORT RoutePlan {
 public:
  virtual ~RoutePlan() = default;
  // The next attempt, or nullopt when none is left (see final_status()). Call it first
  // without a Report(), then after each Report(). Calling it while an attempt is
  // outstanding ends the plan (nullopt, kFailedPrecondition).
  virtual std::optional<PlannedAttempt> Next() = 0;
  // Feeds the outcome of the attempt Next() returned last into health, latency and capacity
  // state and decides what Next() does. A report for another attempt is ignored.
  virtual void Report(const PlannedAttempt& attempt, const AttemptResult& result) = 0;
  // Why Next() returned nullopt: OK after a success; kUnavailable when the failure was
  // retriable but no deployment, budget or attempt is left; kDeadlineExceeded; kResourceExhausted
  // when every deployment is at capacity; kInvalidArgument for a non-retriable failure.
  virtual absl::Status final_status() const = 0;
  // The name of the tiered rule that moved this request to another pool, empty when none
  // matched. Valid as long as the plan.
  virtual std::string_view matched_rule() const { return {}; }
  // A second attempt, concurrent with the outstanding first one, on another deployment of
  // the same pool (after the first attempt's hedge_after). nullopt when the attempt
  // outstanding has no finite hedge_after, a hedge was already made, or no other deployment
  // is free, or the retry budget has no share left (a hedge in flight holds one, as a retry
  // does). Report() both: the first success wins (final_status() OK, Next() nullopt); the
  // host cancels the other and reports it as kCancelled (not a failure). When one fails
  // while the other is still out, the other simply continues as the request's attempt.
  virtual std::optional<PlannedAttempt> Hedge() { return std::nullopt; }

  // Overflow queue (pools with "queue"). When every deployment of the pool's tiers is at
  // capacity (or earlier requests are already waiting: the queue is FIFO, nobody overtakes),
  // Plan() returns a waiting plan: it holds a place in the pool's queue, no capacity slot.
  // The host calls Poll() when RouteRequest::on_queue_wake fires and at wait_deadline() (a
  // timer); Poll() returns false while the plan still waits, true once it stopped waiting:
  // then Next() gives the reserved attempt, or nullopt with final_status()
  // kResourceExhausted (waited until the queue's timeout; RouterRetryAfter() holds a hint)
  // or kDeadlineExceeded (the request's deadline came first). Next() while still waiting
  // gives up the place (nullopt, kResourceExhausted). Destroying a waiting plan leaves the
  // queue. Not waiting: Poll() returns true and does nothing.
  virtual bool waiting() const { return false; }
  // When a waiting plan stops waiting at the latest (router clock's MonotonicNow() scale):
  // min(enqueue time + the queue's timeout_ms, RouteRequest::deadline). InfiniteFuture when
  // not waiting.
  virtual absl::Time wait_deadline() const { return absl::InfiniteFuture(); }
  virtual bool Poll() { return true; }
};

// The Retry-After hint a capacity error of the router carries (a full overflow queue from
// Plan(), a queue wait that timed out from final_status()): the queue's timeout_ms. nullopt
// for other statuses.
MODEENVOY_EXPORT std::optional<absl::Duration> RouterRetryAfter(const absl::Status& status);

struct RouterOptions {
  // Time source. Not owned; must outlive the router. Null means the system clock.
  const Clock* clock = nullptr;
  // Seeds every random choice the router makes itself (ejection jitter, draws when a request
  // brings none), so runs repeat.
  uint64_t seed = 0x6d6f6465656e766fULL;
};

// Per-deployment state, for inspection (tests, /admin pages). Times are on the router
// clock's MonotonicNow() scale.
struct DeploymentHealth {
  std::string id;
  int in_flight = 0;
  bool ejected = false;            // outlier-ejected now
  absl::Time ejected_until;        // InfinitePast when not ejected
  absl::Time cooldown_until;       // 429 cool-down end; InfinitePast when none
  int ejections = 0;               // ejections so far (drives the growing ejection time)
  int consecutive_failures = 0;
  double ttft_ewma_ms = 0;         // peak-EWMA of time to first token, 0 before a sample
  // The decode time per output token peak_ewma subtracts from a whole answer's latency:
  // learnt from streamed attempts, else fitted over whole answers; 0 while none is known.
  double decode_ms_per_token = 0;
  bool probe_unhealthy = false;    // marked unhealthy by active health checks
  int probe_successes = 0;         // consecutive successful probes (active health checks)
  int probe_failures = 0;          // consecutive failed probes
  bool probe_in_flight = false;    // a probe is out (DueProbes returned it, not reported)
  // The outlier detector's current failure-percentage window (outlier.window_ms): attempts
  // and server-side failures counted in it so far.
  int window_requests = 0;
  int window_failures = 0;
};

// A probe for the host to send now (Router::DueProbes).
struct HealthProbe {
  std::string deployment_id;
  std::string provider;        // the deployment's provider, as configured
  RouterHealthCheck check;     // path, body, timeout
};

// Routes requests over the configuration given to Update().
// Thread safety: thread-safe. Plan() and Report() may run on many threads at once: Plan()
// reads the configuration through a per-thread cache checked against an atomic generation
// (one acquire load; a reader lock only on the first Plan() after an Update(), which holds
// the lock for the pointer swap alone; an idle thread's cache keeps its last configuration
// alive until that thread plans again or exits), reads deployment state with atomic loads
// and counts with atomic increments; Report() locks only
// the reported deployment's state (and the pool's ejection lock when it ejects). No method
// blocks or does I/O.
class MODEENVOY_EXPORT Router {
 public:
  virtual ~Router() = default;

  // Makes `config` the configuration of later Plan() calls; plans in flight keep theirs.
  // Health, in-flight counts and latency of deployments whose id is in both the old and the
  // new configuration carry over. Errors: kInvalidArgument for a null config.
  virtual absl::Status Update(std::shared_ptr<const RouterConfig> config) = 0;

  // Plans `request`. Errors: kFailedPrecondition before the first Update(); kNotFound when
  // no pool serves request.model; kResourceExhausted when every deployment that could take
  // it is at capacity and its pool has no queue or a full one (RouterRetryAfter() then holds
  // a hint); kInvalidArgument when no deployment's context window holds
  // prompt_tokens + max_tokens; kDeadlineExceeded when request.deadline has passed. With a
  // queue, the plan may start out waiting (RoutePlan::waiting()).
  virtual absl::StatusOr<std::unique_ptr<RoutePlan>> Plan(const RouteRequest& request) const = 0;

  // State of every deployment of the current configuration, in configuration order.
  virtual std::vector<DeploymentHealth> Health() const = 0;

  // Active health checks, driven by the host's timer. DueProbes() returns the probes due at
  // `now` (router clock's MonotonicNow() scale) and marks them in flight: a deployment has at
  // most one probe out, and is not due again until ReportProbe() (which the host must call
  // for every probe, with ok = false after its timeout). The next one is due an interval
  // plus jitter after the report. NextProbeDue() is when the host's timer should fire next
  // (InfinitePast: due now; InfiniteFuture when no probe is configured or all are in
  // flight). Probe state is kept per deployment id across Update() like the rest of its
  // health.
  // Errors: ReportProbe: kNotFound for an id not in the current configuration,
  // kFailedPrecondition when no probe of it is in flight.
  virtual std::vector<HealthProbe> DueProbes(absl::Time now) {
    (void)now;
    return {};
  }
  virtual absl::Status ReportProbe(std::string_view deployment_id, bool ok) {
    (void)deployment_id;
    (void)ok;
    return absl::UnimplementedError("ReportProbe: this router has no active health checks");
  }
  virtual absl::Time NextProbeDue() const { return absl::InfiniteFuture(); }
  // A probe DueProbes() handed out that the host gives up without a result (it is shutting
  // down, or its I/O went away): no longer in flight, nothing counted, the next one due an
  // interval plus jitter later. Errors: as ReportProbe.
  virtual absl::Status AbandonProbe(std::string_view deployment_id) {
    (void)deployment_id;
    return absl::UnimplementedError("AbandonProbe: this router has no active health checks");
  }
};

MODEENVOY_EXPORT std::unique_ptr<Router> NewRouter(const RouterOptions& options = {});

}  // namespace modeenvoy

#endif  // MODEENVOY_ROUTER_ROUTER_H_
