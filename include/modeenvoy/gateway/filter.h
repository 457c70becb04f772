// include/modeenvoy/gateway/filter.h: the request/response filter chain.
//
// Every gateway step (auth, rate limits, guardrails, caching, header edits) is a Filter in
// an ordered chain, as in Envoy's HTTP filter chain. On the way in a filter may continue,
// answer by itself (401, 429, a cached reply) or pause for an asynchronous lookup and resume
// later; on the way out it sees the response status and headers once, then the whole body
// or each event of a stream, and may modify, drop or append, and pause at each step (a
// store write, a remote check). Last comes OnResponseComplete with the outcome (usage,
// error, bytes sent); the response's final bytes are released only after every filter
// continued from it, so a filter can make the end of a response wait for its write.
// The chain runs for every registered endpoint (endpoint.h), for errors and local replies
// too, so logging and metrics see every response.
//
// Adding a filter type needs no change to the chain: register a builder under a type name
// and list it in the config's `filters`:
//   class DenyAll : public modeenvoy::Filter {
//     modeenvoy::FilterResult OnRequest(modeenvoy::RequestContext& ctx,
//                                       modeenvoy::FilterCallbacks& cb) override {
//       return modeenvoy::FilterResult::Error(absl::PermissionDeniedError("closed"));
//     }
//   };
//   modeenvoy::Registry registry;  // holds the built-in types too (registry.h)
//   registry.filters().Register("deny_all", [](std::string_view config_json,
//                                              const modeenvoy::BuildContext&)
//       -> absl::StatusOr<std::unique_ptr<modeenvoy::FilterFactory>> {
//     return modeenvoy::MakeFilterFactory<DenyAll>();
//   });
//   modeenvoy::ConfigStore store({.registry = &registry});
//   store.Load(R"({"filters": [{"type": "deny_all"}]})");
//
// Built-in types:
//   "api_key_auth" {"keys": [{"key": "sk-..." | "key_env": "VAR", "name": "team-a",
//                             "models": ["gpt-4o-mini", ...], "tier": "free"}]}
//     Accepts "Authorization: Bearer <key>" or "x-api-key: <key>", compared in constant
//     time (keys are looked up by their SHA-256 digest). Missing or wrong key:
//     401 (code "invalid_api_key"); a key scoped by "models" asking for another model: 403
//     (code "model_not_allowed"). Sets metadata "api_key.name" to the key's name and, for
//     a key with a "tier" (any string, e.g. "free"; the "router" policy's key tier rules
//     read it), "api_key.tier" to it.
//   "headers" {"request": {"set": {..}, "add": {..}, "remove": [..]},
//              "response": {"set": {..}, "add": {..}, "remove": [..]}}
//     Edits the headers sent upstream and the headers sent to the client.
#ifndef MODEENVOY_GATEWAY_FILTER_H_
#define MODEENVOY_GATEWAY_FILTER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry_base.h"
#include "modeenvoy/gateway/routing.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {

class Services;  // services.h

// A response produced inside the gateway (by a filter, an endpoint handler or the engine)
// instead of upstream: a whole body, or, when `events` is set, a stream of events (a cached
// stream replayed) sent as text/event-stream.
struct LocalReply {
  int status = 200;
  HttpHeaders headers;  // "content-type: application/json" is added when absent
  std::string body;     // ignored when `events` is set
  std::optional<std::vector<SseEvent>> events;
};

// The OpenAI-style error reply for a non-OK `status`: HttpStatusForStatus(status) and
// OpenAiErrorBody(status) from protocol/error.h, content-type application/json, plus a
// Retry-After header when the status carries one (WithRetryAfter).
MODEENVOY_EXPORT LocalReply LocalReplyForError(const absl::Status& status);

// Attaches the headers an error should reach the client with (an upstream's retry-after
// and x-ratelimit-* headers); LocalReplyForError adds them to its reply. Replaces any
// previously attached list. An OK status is returned unchanged.
MODEENVOY_EXPORT absl::Status WithErrorHeaders(absl::Status status, const HttpHeaders& headers);
// The headers attached by WithErrorHeaders (empty when none).
MODEENVOY_EXPORT HttpHeaders ErrorHeaders(const absl::Status& status);

// One edit of a header list. Names compare ASCII case-insensitively.
struct HeaderMutation {
  enum class Op {
    kSet,     // replace every header `name` by one with `value` (appends when absent)
    kAdd,     // append `name: value`, keeping existing ones
    kRemove,  // drop every header `name`; `value` is ignored
  };
  Op op = Op::kSet;
  std::string name;
  std::string value;
};

// Applies `mutation` to `*headers`. A mutation whose name is not a valid header name or
// whose value holds CR, LF or NUL is not applied (returns false), so no edit can split a
// header block. REQUIRES: headers != nullptr.
MODEENVOY_EXPORT bool ApplyHeaderMutation(const HeaderMutation& mutation, HttpHeaders* headers);

// The models a client's credentials may use, as an access filter decided (api_key_auth's
// per-key "models"). Immutable once published on a RequestContext.
struct ModelScope {
  // Who is scoped, as error messages name it, e.g. `API key "team-a"`.
  std::string principal;
  // Public model names (models and routes' match names) the principal may use.
  absl::flat_hash_set<std::string> models;
};

// Per-request state shared by the filters of one request. Owned by the engine; lives until
// after every filter's OnDestroy.
struct RequestContext {
  // The endpoint the request addresses; never null while filters run.
  const EndpointSpec* endpoint = nullptr;
  // Parameters of the endpoint's path pattern ("{id}" -> value).
  PathParams path_params;
  // The client request as received. Filters may edit its headers (e.g. to hide
  // credentials from later filters); client headers are never forwarded upstream as such.
  HttpRequest request;
  // The parsed request on model-call endpoints (null otherwise). Filters may modify it;
  // the engine plans attempts from `chat->model` after the request phase and serializes it
  // per attempt, unknown fields included.
  ChatRequest* chat = nullptr;
  // The parsed request on embeddings endpoints (IngressCodec::operation() kEmbeddings),
  // where `chat` is null; null otherwise. Filters may modify it as `chat`.
  EmbeddingsRequest* embeddings = nullptr;
  // The attempt in progress, or the last one made (empty during the request phase). A
  // filter that sets `route.model` and `route.provider` during the request phase replaces
  // the routing policy's plan by one attempt on that model.
  ResolvedRoute route;
  // Attempts made so far.
  int attempts = 0;
  // Edits applied, in order, to the upstream request headers after the dialect built them
  // (before the dialect's signing step).
  std::vector<HeaderMutation> upstream_header_mutations;
  // Free-form per-request values filters pass to each other and to logs, e.g.
  // "api_key.name".
  absl::flat_hash_map<std::string, std::string> metadata;
  // The configuration this request runs under. Never null while filters run.
  const ConfigSnapshot* snapshot = nullptr;
  // Time source for the request. Never null while filters run.
  const Clock* clock = nullptr;
  // The client's model scope, set by the access filter that authenticated it; null: every
  // model. One rule for every endpoint: the access filter refuses a model call outside the
  // scope itself, and a local endpoint that acts on a model (count_tokens) asks
  // CheckModelAccess before using it, one that lists models (GET /v1/models) lists only
  // those CheckModelAccess allows.
  std::shared_ptr<const ModelScope> model_scope;

  // The model the client asked for: chat->model or embeddings->model; "" on other
  // endpoints.
  std::string_view model() const {
    if (chat != nullptr) return chat->model;
    if (embeddings != nullptr) return embeddings->model;
    return {};
  }

  // OK when `model` (a name the client asked for) is within model_scope (or no scope is
  // set); otherwise kPermissionDenied (HTTP 403, code "model_not_allowed") naming the
  // principal and the model, the error a model call outside the scope gets.
  MODEENVOY_EXPORT absl::Status CheckModelAccess(std::string_view model) const;

  // endpoint->kind, or "" before the endpoint is known.
  std::string_view endpoint_kind() const {
    return endpoint != nullptr ? std::string_view(endpoint->kind) : std::string_view();
  }
};

// The response status line and headers, as filters see them once per response.
struct ResponseHead {
  int status = 200;
  HttpHeaders headers;
  // True for a stream: the body then arrives through OnResponseEvents. Read-only.
  bool streaming = false;
};

// How a response ended, given to OnResponseComplete.
struct ResponseOutcome {
  // The status line sent (or about to be sent) to the client; 0 if none was.
  int status = 0;
  // OK, or why the response failed: the error the client received, a stream cut short
  // (the upstream's error), or kCancelled when the client went away.
  absl::Status error;
  bool streaming = false;
  // Usage reported by the provider (a stream's usage chunk or the body's "usage"), when
  // it reported one and the chain has filters. A stream that ended (cleanly, cut short, or
  // by the client leaving) without usage gets one estimated by GatewayOptions::
  // usage_estimator (gateway/usage.h), with usage_estimated set.
  std::optional<Usage> usage;
  bool usage_estimated = false;
  // Body bytes handed to the host so far (the final bytes still held back excluded).
  uint64_t bytes_sent = 0;
  // Upstream attempts made (0 for local replies).
  int attempts = 0;
};

// What a filter's request phase decided.
class MODEENVOY_EXPORT FilterResult {
 public:
  // Go on with the next filter.
  static FilterResult Continue() { return FilterResult(Kind::kContinue); }
  // Stop here until FilterCallbacks::Continue() or SendLocalReply() is called.
  static FilterResult Pause() { return FilterResult(Kind::kPause); }
  // Answer the client with `reply`; later filters and the upstream are skipped.
  static FilterResult Reply(LocalReply reply) {
    FilterResult r(Kind::kReply);
    r.reply_ = std::move(reply);
    return r;
  }
  // Reply(LocalReplyForError(status)). REQUIRES: !status.ok().
  static FilterResult Error(const absl::Status& status) { return Reply(LocalReplyForError(status)); }

  bool is_continue() const { return kind_ == Kind::kContinue; }
  bool is_pause() const { return kind_ == Kind::kPause; }
  bool is_reply() const { return kind_ == Kind::kReply; }
  // REQUIRES: is_reply().
  LocalReply& reply() { return *reply_; }

 private:
  enum class Kind { kContinue, kPause, kReply };
  explicit FilterResult(Kind kind) : kind_(kind) {}
  Kind kind_;
  std::optional<LocalReply> reply_;
};

// What a response hook decided: go on, or hold the response until
// FilterCallbacks::Continue(). While held, the objects the hook received stay valid and may
// still be modified; a stream's upstream is paused (backpressure) and its later events wait.
enum class FilterStatus { kContinue, kPause };

// Lets a filter that paused finish its step later, and reach the request's loop.
// Thread safety: thread-hostile; loop thread only. Valid until the filter's OnDestroy.
class MODEENVOY_EXPORT FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Resumes the chain after a pause, in either phase. The chain continues on a later loop
  // iteration, never inline, so the caller may keep using its state afterwards. Only the
  // first of Continue()/SendLocalReply() per pause counts; calls when not paused are
  // ignored.
  virtual void Continue() = 0;
  // Request phase: ends it with `reply`, delivered on a later loop iteration. In the
  // response phase nothing was sent yet only for whole responses before the status line:
  // there the reply replaces the response (its own headers and body then run through the
  // remaining filters); elsewhere it acts as Continue().
  virtual void SendLocalReply(LocalReply reply) = 0;
  // The loop the request runs on, for the filter's own timers and watches.
  virtual EventLoop& event_loop() = 0;
  // The upstream client of this loop (e.g. for a side call to a summarizer model).
  virtual UpstreamClient& upstream() = 0;
  // The services of the configuration store (clock, randomness, named state).
  virtual Services& services() = 0;
};

// One filter instance serves one request (FilterFactory::CreateFilter makes a fresh one
// per request), so it may keep per-request state in members.
// Thread safety: thread-hostile; every method runs on the loop thread. An exception thrown
// by a filter ends that request with a 500 and never unwinds into the host.
class MODEENVOY_EXPORT Filter {
 public:
  virtual ~Filter() = default;

  // Request phase, in chain order. Returning Pause() keeps the request waiting until
  // `callbacks` is used (see FilterCallbacks); `callbacks` stays valid until OnDestroy.
  // A request phase still paused after GatewayOptions::request_phase_timeout ends with 504.
  virtual FilterResult OnRequest(RequestContext& /*ctx*/, FilterCallbacks& /*callbacks*/) {
    return FilterResult::Continue();
  }

  // Response phase, in reverse chain order, only for filters whose OnRequest returned
  // Continue (so a filter that replied by itself, and those after it, are skipped).
  // Status and headers, once per response (upstream responses, errors and local replies).
  // For whole responses the status line is not committed before OnResponseBody ran, so
  // OnResponseBody may still change `head`.
  virtual FilterStatus OnResponseHeaders(RequestContext& /*ctx*/, ResponseHead& /*head*/,
                                         FilterCallbacks& /*callbacks*/) {
    return FilterStatus::kContinue;
  }

  // The whole body of a non-streaming response, with its head. May be rewritten freely.
  virtual FilterStatus OnResponseBody(RequestContext& /*ctx*/, ResponseHead& /*head*/,
                                      std::string& /*body*/, FilterCallbacks& /*callbacks*/) {
    return FilterStatus::kContinue;
  }

  // For a streaming response, once per upstream event (the final "[DONE]" event included):
  // `events` holds what the filters after this one produced from it (first exactly that
  // event). Modify elements, erase them to drop, insert to append.
  virtual FilterStatus OnResponseEvents(RequestContext& /*ctx*/, std::vector<SseEvent>& /*events*/,
                                        FilterCallbacks& /*callbacks*/) {
    return FilterStatus::kContinue;
  }

  // The response is complete (or failed) and its final bytes are held back until every
  // filter continued: a whole response's body, or a stream's terminal events ("[DONE]")
  // and the end of the stream. Runs once per request that produced a response, in reverse
  // chain order. When the client went away (outcome.error kCancelled) it runs just before
  // OnDestroy and a Pause is not honoured.
  virtual FilterStatus OnResponseComplete(RequestContext& /*ctx*/,
                                          const ResponseOutcome& /*outcome*/,
                                          FilterCallbacks& /*callbacks*/) {
    return FilterStatus::kContinue;
  }

  // The request is over (response finished or failed, or the client left), possibly while
  // this filter is paused: cancel pending work here. Runs exactly once, last; FilterCallbacks
  // must not be used afterwards.
  virtual void OnDestroy() {}
};

// Creates the filter instances of one configured chain entry. Built once per config load.
// Thread safety: CreateFilter is thread-safe (snapshots are shared across loop threads).
class MODEENVOY_EXPORT FilterFactory {
 public:
  virtual ~FilterFactory() = default;
  // Returns a new filter for one request. Never null.
  virtual std::unique_ptr<Filter> CreateFilter() const = 0;
};

// A FilterFactory that creates `F` copy-constructed from a prototype (or default-built).
template <typename F>
class PrototypeFilterFactory final : public FilterFactory {
 public:
  explicit PrototypeFilterFactory(F prototype) : prototype_(std::move(prototype)) {}
  std::unique_ptr<Filter> CreateFilter() const override { return std::make_unique<F>(prototype_); }

 private:
  const F prototype_;
};

template <typename F>
std::unique_ptr<FilterFactory> MakeFilterFactory(F prototype = F()) {
  return std::make_unique<PrototypeFilterFactory<F>>(std::move(prototype));
}

// What a filter builder gets besides its `config` JSON.
using FilterBuildContext = BuildContext;

// Turns a chain entry's `config` (a JSON object as text) into a factory. Errors should be
// InvalidFieldError(path, reason) with `path` relative to the config object ("keys[0].key");
// the loader reports them as "filters[<i>].config.<path>: <reason>".
using FilterFactoryBuilder = std::function<absl::StatusOr<std::unique_ptr<FilterFactory>>(
    std::string_view config_json, const BuildContext& context)>;

// FilterRegistry maps filter type names to builders.
// Thread safety: thread-safe. Builders run without the registry's lock held.
class MODEENVOY_EXPORT FilterRegistry : public NamedRegistry<FilterFactoryBuilder> {
 public:
  // A registry holding the built-in types ("api_key_auth", "headers") unless
  // `with_builtins` is false.
  explicit FilterRegistry(bool with_builtins = true);

  // Registered type names, sorted (names()).
  std::vector<std::string> types() const { return names(); }

  // Runs the builder of `context.type`. Errors: kNotFound if the type is not registered;
  // otherwise whatever the builder returns (a null factory becomes kInternal).
  absl::StatusOr<std::unique_ptr<FilterFactory>> Build(std::string_view config_json,
                                                       const BuildContext& context) const;
};

// FilterChain runs one request's filters: the request phase in order, the response phase
// in reverse order, each step able to pause and resume. The engine drives it; hosts that
// embed only the policy part (a host gateway doing its own proxying) may drive it too.
// Thread safety: thread-hostile; loop thread only.
class MODEENVOY_EXPORT FilterChain {
 public:
  // `ctx` and `callbacks_env` are not owned and must outlive the chain.
  struct Environment {
    EventLoop* loop = nullptr;          // required
    UpstreamClient* upstream = nullptr;  // may be null for hosts without one
    Services* services = nullptr;        // may be null for hosts without one
  };
  FilterChain(std::vector<std::unique_ptr<Filter>> filters, RequestContext* ctx,
              Environment env);
  FilterChain(std::vector<std::unique_ptr<Filter>> filters, RequestContext* ctx,
              EventLoop* loop)
      : FilterChain(std::move(filters), ctx, Environment{.loop = loop}) {}
  // Calls Destroy().
  ~FilterChain();
  FilterChain(const FilterChain&) = delete;
  FilterChain& operator=(const FilterChain&) = delete;

  // Runs the request phase from the first filter. `done` runs exactly once: with nullopt
  // when every filter continued, or with the local reply that ended the phase. It runs
  // inline when no filter pauses, otherwise on a later loop iteration; never after
  // Destroy(). The chain may be destroyed from inside `done`. A filter that throws ends the
  // phase with a 500 reply. REQUIRES: called once.
  void RunRequest(absl::AnyInvocable<void(std::optional<LocalReply>)> done);

  // Ends a request phase that is paused (a filter that never resumed) with `reply`, as if
  // the paused filter had sent it; that filter's later Continue() is ignored. No-op when
  // the phase is not paused.
  void AbortRequest(LocalReply reply);

  // Response steps over the filters that continued (all of them if the request phase
  // completed; none if it never ran), last to first. `done` runs once every filter
  // continued: inline when none paused, otherwise on a later loop iteration; never after
  // Destroy(). The arguments must stay valid until `done` ran. A filter that throws is
  // skipped for the rest of the request (it continued), and `failed()` reports it.
  // REQUIRES: no other step in progress (in_progress() is false).
  void RunResponseHeaders(ResponseHead& head, absl::AnyInvocable<void()> done);
  void RunResponseBody(ResponseHead& head, std::string& body, absl::AnyInvocable<void()> done);
  void RunResponseEvents(std::vector<SseEvent>& events, absl::AnyInvocable<void()> done);
  void RunResponseComplete(const ResponseOutcome& outcome, absl::AnyInvocable<void()> done);
  // Runs OnResponseComplete synchronously ignoring pauses (the client left).
  void RunResponseCompleteNow(const ResponseOutcome& outcome);

  // A local reply a filter sent during a whole response's headers/body step (see
  // FilterCallbacks::SendLocalReply); taken once.
  std::optional<LocalReply> TakeResponseReply();

  // Calls every filter's OnDestroy (once) and cancels a pending resume. Idempotent.
  void Destroy();

  size_t size() const { return filters_.size(); }
  // Filters whose request phase continued: the ones the response phase runs.
  size_t continued() const { return continued_; }
  // True while a filter holds the request phase paused.
  bool paused() const;
  // True while a response step waits for a paused filter.
  bool in_progress() const { return response_done_ != nullptr; }
  // The first exception a filter threw, as an internal error (OK when none did).
  const absl::Status& failed() const { return failed_; }

 private:
  class Callbacks;
  enum class State { kIdle, kRunning, kPaused, kResuming, kDone, kDestroyed };
  enum class Step { kHeaders, kBody, kEvents, kComplete };
  void RunFrom(size_t index);
  void OnResume(size_t index, std::optional<LocalReply> reply);
  void ScheduleResume(std::optional<LocalReply> reply);
  void Finish(std::optional<LocalReply> reply);
  void StartResponse(Step step, absl::AnyInvocable<void()> done);
  void ResponseFrom(size_t end);
  FilterStatus CallResponse(size_t i);
  void OnResponseResume(size_t index, std::optional<LocalReply> reply);
  void NoteException(const char* what);

  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<Callbacks> callbacks_;  // one per filter; reserved up front, never moved
  RequestContext* const ctx_;
  Environment env_;
  std::unique_ptr<Timer> resume_timer_;  // created on the first pause
  absl::AnyInvocable<void(std::optional<LocalReply>)> done_;
  State state_ = State::kIdle;
  size_t current_ = 0;    // filter running or paused
  size_t continued_ = 0;  // filters whose OnRequest continued; the response phase runs these
  // Continue()/SendLocalReply() called from inside the running OnRequest: nullopt inside
  // means Continue.
  std::optional<std::optional<LocalReply>> early_;
  std::vector<bool> broken_;  // filters that threw: skipped from then on
  absl::Status failed_;

  // Response step in progress.
  Step step_ = Step::kHeaders;
  ResponseHead* head_ = nullptr;
  std::string* body_ = nullptr;
  std::vector<SseEvent>* events_ = nullptr;
  const ResponseOutcome* outcome_ = nullptr;
  absl::AnyInvocable<void()> response_done_;
  size_t response_index_ = 0;   // filter paused in the response step (index + 1 = next end)
  bool response_paused_ = false;
  bool response_running_ = false;
  bool response_early_ = false;  // resumed from inside the running hook
  std::optional<LocalReply> response_reply_;
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_FILTER_H_
