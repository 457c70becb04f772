// include/modeenvoy/gateway/filter.h: the request/response filter chain.
//
// Every gateway step (auth, rate limits, guardrails, caching, header edits) is a Filter in
// an ordered chain, as in Envoy's HTTP filter chain. On the way in a filter may continue,
// answer by itself (401, 429, a cached reply) or pause for an asynchronous lookup and resume
// later; on the way out it sees the response status and headers once, then the whole body
// or each SSE event of a stream, and may modify, drop or append.
//
// Adding a filter type needs no change to the chain: register a builder under a type name
// and list it in the config's `filters`:
//   class DenyAll : public modeenvoy::Filter {
//     modeenvoy::FilterResult OnRequest(modeenvoy::RequestContext& ctx,
//                                       modeenvoy::FilterCallbacks& cb) override {
//       return modeenvoy::FilterResult::Error(absl::PermissionDeniedError("closed"));
//     }
//   };
//   modeenvoy::FilterRegistry registry;  // holds the built-in types too
//   registry.Register("deny_all", [](std::string_view config_json,
//                                    const modeenvoy::FilterBuildContext&)
//       -> absl::StatusOr<std::unique_ptr<modeenvoy::FilterFactory>> {
//     return modeenvoy::MakeFilterFactory<DenyAll>();
//   });
//   modeenvoy::ConfigStore store({.filter_registry = &registry});
//   store.Load(R"({"filters": [{"type": "deny_all"}]})");
//
// Built-in types:
//   "api_key_auth" {"keys": [{"key": "sk-..." | "key_env": "VAR", "name": "team-a",
//                             "models": ["gpt-4o-mini", ...]}]}
//     Accepts "Authorization: Bearer <key>" or "x-api-key: <key>". Missing or wrong key:
//     401 (code "invalid_api_key"); a key scoped by "models" asking for another model: 403
//     (code "model_not_allowed"). Sets metadata "api_key.name" to the key's name.
//   "headers" {"request": {"set": {..}, "add": {..}, "remove": [..]},
//              "response": {"set": {..}, "add": {..}, "remove": [..]}}
//     Edits the headers sent upstream and the headers sent to the client.
#ifndef MODEENVOY_GATEWAY_FILTER_H_
#define MODEENVOY_GATEWAY_FILTER_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/event_loop.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {

// A response produced inside the gateway (by a filter or the engine) instead of upstream.
struct LocalReply {
  int status = 200;
  HttpHeaders headers;  // "content-type: application/json" is added when absent
  std::string body;
};

// The OpenAI-style error reply for a non-OK `status`: HttpStatusForStatus(status) and
// OpenAiErrorBody(status) from protocol/error.h, content-type application/json.
MODEENVOY_EXPORT LocalReply LocalReplyForError(const absl::Status& status);

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

// Applies `mutation` to `*headers`. REQUIRES: headers != nullptr.
MODEENVOY_EXPORT void ApplyHeaderMutation(const HeaderMutation& mutation, HttpHeaders* headers);

// The API a request addresses.
enum class Endpoint {
  kChatCompletions,  // POST /v1/chat/completions
  kListModels,       // GET /v1/models
};

// Per-request state shared by the filters of one request. Owned by the engine; lives until
// after every filter's OnDestroy.
struct RequestContext {
  Endpoint endpoint = Endpoint::kChatCompletions;
  // The client request as received. Filters may edit its headers (e.g. to hide
  // credentials from later filters); client headers are never forwarded upstream as such.
  HttpRequest request;
  // The parsed request for kChatCompletions (null for kListModels). Filters may modify it;
  // the engine serializes it after the request phase, unknown fields included. Changing
  // `chat->model` makes the engine resolve the route again after the request phase.
  ChatRequest* chat = nullptr;
  // Where the request goes: resolved from chat->model before the request phase (route.model
  // is null when the name is unknown; the engine answers 404 after the request phase if it
  // still is). A routing filter may set it, pointing into `snapshot`.
  ResolvedRoute route;
  // Edits applied, in order, to the upstream request headers after the engine built them
  // (content-type, authorization, the provider's headers).
  std::vector<HeaderMutation> upstream_header_mutations;
  // Free-form per-request values filters pass to each other and to logs, e.g.
  // "api_key.name".
  absl::flat_hash_map<std::string, std::string> metadata;
  // The configuration this request runs under. Never null while filters run.
  const ConfigSnapshot* snapshot = nullptr;
  // Time source for the request. Never null while filters run.
  const Clock* clock = nullptr;
};

// The response status line and headers, as filters see them once per response.
struct ResponseHead {
  int status = 200;
  HttpHeaders headers;
  // True for an SSE stream: the body then arrives through OnResponseEvents. Read-only.
  bool streaming = false;
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

// Lets a filter that paused finish its request phase later.
// Thread safety: thread-hostile; loop thread only. Valid until the filter's OnDestroy.
class MODEENVOY_EXPORT FilterCallbacks {
 public:
  virtual ~FilterCallbacks() = default;
  // Resumes the chain with the next filter. The chain continues on a later loop iteration,
  // never inline, so the caller may keep using its state afterwards. Only the first of
  // Continue()/SendLocalReply() per pause counts; calls when not paused are ignored.
  virtual void Continue() = 0;
  // Ends the request phase with `reply`, delivered on a later loop iteration.
  virtual void SendLocalReply(LocalReply reply) = 0;
  // The loop the request runs on, for the filter's own timers and watches.
  virtual EventLoop& event_loop() = 0;
};

// One filter instance serves one request (FilterFactory::CreateFilter makes a fresh one
// per request), so it may keep per-request state in members.
// Thread safety: thread-hostile; every method runs on the loop thread.
class MODEENVOY_EXPORT Filter {
 public:
  virtual ~Filter() = default;

  // Request phase, in chain order. Returning Pause() keeps the request waiting until
  // `callbacks` is used (see FilterCallbacks); `callbacks` stays valid until OnDestroy.
  virtual FilterResult OnRequest(RequestContext& /*ctx*/, FilterCallbacks& /*callbacks*/) {
    return FilterResult::Continue();
  }

  // Response phase, in reverse chain order, only for filters whose OnRequest returned
  // Continue (so a filter that replied by itself, and those after it, are skipped).
  // Status and headers, once per response (upstream responses, errors and local replies).
  virtual void OnResponseHeaders(RequestContext& /*ctx*/, ResponseHead& /*head*/) {}

  // The whole body of a non-streaming response. May be rewritten freely.
  virtual void OnResponseBody(RequestContext& /*ctx*/, std::string& /*body*/) {}

  // For a streaming response, once per upstream SSE event (OpenAI's final "[DONE]" event
  // included): `events` holds what the filters after this one produced from it (first
  // exactly that event). Modify elements, erase them to drop, insert to append.
  virtual void OnResponseEvents(RequestContext& /*ctx*/, std::vector<SseEvent>& /*events*/) {}

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

// What a builder gets besides its `config` JSON.
struct FilterBuildContext {
  std::string_view type;  // the registered type name
  std::string_view name;  // the entry's name in the chain
  // Resolves `*_env` settings; never null inside a builder call.
  const EnvLookup* env_lookup = nullptr;
};

// Turns a chain entry's `config` (a JSON object as text) into a factory. Errors should be
// InvalidFieldError(path, reason) with `path` relative to the config object ("keys[0].key");
// the loader reports them as "filters[<i>].config.<path>: <reason>".
using FilterFactoryBuilder = std::function<absl::StatusOr<std::unique_ptr<FilterFactory>>(
    std::string_view config_json, const FilterBuildContext& context)>;

// FilterRegistry maps filter type names to builders.
// Thread safety: thread-safe. Builders run without the registry's lock held.
class MODEENVOY_EXPORT FilterRegistry {
 public:
  // A registry holding the built-in types ("api_key_auth", "headers") unless
  // `with_builtins` is false.
  explicit FilterRegistry(bool with_builtins = true);
  FilterRegistry(const FilterRegistry&) = delete;
  FilterRegistry& operator=(const FilterRegistry&) = delete;

  // Adds a type. Errors: kInvalidArgument if `type` is empty or `builder` is null;
  // kAlreadyExists if `type` is registered.
  absl::Status Register(std::string_view type, FilterFactoryBuilder builder)
      ABSL_LOCKS_EXCLUDED(mu_);

  bool Contains(std::string_view type) const ABSL_LOCKS_EXCLUDED(mu_);

  // Registered type names, sorted.
  std::vector<std::string> types() const ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the builder of `context.type`. Errors: kNotFound if the type is not registered;
  // otherwise whatever the builder returns (a null factory becomes kInternal).
  absl::StatusOr<std::unique_ptr<FilterFactory>> Build(std::string_view config_json,
                                                       const FilterBuildContext& context) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, FilterFactoryBuilder> builders_ ABSL_GUARDED_BY(mu_);
};

// The process-wide registry of built-in types used when ConfigLoadOptions names none.
MODEENVOY_EXPORT const FilterRegistry& BuiltinFilterRegistry();

// FilterChain runs one request's filters: the request phase in order (with pause/resume),
// the response phase in reverse order. The engine drives it; hosts that embed only the
// policy part (a host gateway doing its own proxying) may drive it too.
// Thread safety: thread-hostile; loop thread only.
class MODEENVOY_EXPORT FilterChain {
 public:
  // `ctx` and `loop` are not owned and must outlive the chain.
  FilterChain(std::vector<std::unique_ptr<Filter>> filters, RequestContext* ctx,
              EventLoop* loop);
  // Calls Destroy().
  ~FilterChain();
  FilterChain(const FilterChain&) = delete;
  FilterChain& operator=(const FilterChain&) = delete;

  // Runs the request phase from the first filter. `done` runs exactly once: with nullopt
  // when every filter continued, or with the local reply that ended the phase. It runs
  // inline when no filter pauses, otherwise on a later loop iteration; never after
  // Destroy(). The chain may be destroyed from inside `done`. REQUIRES: called once.
  void RunRequest(absl::AnyInvocable<void(std::optional<LocalReply>)> done);

  // Response phase over the filters that continued (all of them if the request phase
  // completed; none if it never ran), last to first.
  void RunResponseHeaders(ResponseHead& head);
  void RunResponseBody(std::string& body);
  void RunResponseEvents(std::vector<SseEvent>& events);

  // Calls every filter's OnDestroy (once) and cancels a pending resume. Idempotent.
  void Destroy();

  size_t size() const { return filters_.size(); }
  // True while a filter holds the request phase paused.
  bool paused() const;

 private:
  class Callbacks;
  enum class State { kIdle, kRunning, kPaused, kResuming, kDone, kDestroyed };
  void RunFrom(size_t index);
  void OnResume(size_t index, std::optional<LocalReply> reply);
  void ScheduleResume(std::optional<LocalReply> reply);
  void Finish(std::optional<LocalReply> reply);

  std::vector<std::unique_ptr<Filter>> filters_;
  std::vector<Callbacks> callbacks_;  // one per filter; reserved up front, never moved
  RequestContext* const ctx_;
  EventLoop* const loop_;
  std::unique_ptr<Timer> resume_timer_;  // created on the first pause
  absl::AnyInvocable<void(std::optional<LocalReply>)> done_;
  State state_ = State::kIdle;
  size_t current_ = 0;    // filter running or paused
  size_t continued_ = 0;  // filters whose OnRequest continued; the response phase runs these
  // Continue()/SendLocalReply() called from inside the running OnRequest: nullopt inside
  // means Continue.
  std::optional<std::optional<LocalReply>> early_;
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_FILTER_H_
