// include/modeenvoy/gateway/endpoint.h: the endpoints the engine serves, registered.
//
// A component registers method + path pattern (segments are literals or "{param}") and how
// the endpoint is handled; the filter chain runs for every registered endpoint, with the
// endpoint visible to filters (RequestContext::endpoint). A path that matches no pattern is
// a 404; a path that matches with another method is a 405 with an Allow header.
//   modeenvoy::Registry registry;
//   registry.endpoints().Register({.kind = "sessions.get", .method = "GET",
//                                  .pattern = "/v1/sessions/{id}",
//                                  .local = modeenvoy::MakeFilterFactory<GetSession>()});
//   // GetSession::OnRequest reads ctx.path_params.at("id") and replies (or pauses, then
//   // replies through FilterCallbacks::SendLocalReply).
//
// Two ways to handle an endpoint:
//   model call  the body is parsed into the unified chat model by an IngressCodec (the
//               client's API dialect), routed, sent to providers through their dialects, and
//               the unified answer is rendered back by the same codec.
//   local       a Filter built per request by `local` runs after the chain and must answer
//               with a local reply (a whole body or a stream of events).
// A model call is one operation: chat (the body is a ChatRequest, RequestContext::chat) or
// embeddings (an EmbeddingsRequest, RequestContext::embeddings), as the codec says; both go
// through the same filters, routing, retries and error mapping.
// Built-in endpoints: POST /v1/chat/completions ("chat_completions", model call, OpenAI
// Chat Completions), POST /v1/embeddings ("embeddings", model call, OpenAI embeddings) and
// GET /v1/models ("models", local, OpenAI list format).
#ifndef MODEENVOY_GATEWAY_ENDPOINT_H_
#define MODEENVOY_GATEWAY_ENDPOINT_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {

class FilterFactory;    // filter.h
struct LocalReply;      // filter.h
struct RequestContext;  // filter.h

// What a model-call endpoint asks a provider for.
enum class ModelOperation {
  kChat,        // chat completions: ParseRequest, RequestContext::chat
  kEmbeddings,  // embeddings: ParseEmbeddingsRequest, RequestContext::embeddings
};

// The client-facing API dialect of a model-call endpoint.
// Thread safety: thread-safe (all methods const).
class MODEENVOY_EXPORT IngressCodec {
 public:
  virtual ~IngressCodec() = default;
  // Which parse method the engine calls. Default kChat.
  virtual ModelOperation operation() const { return ModelOperation::kChat; }
  // Parses the client's request into the unified model. Errors: kInvalidArgument with the
  // field path, which reaches the client through ErrorBody().
  virtual absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const = 0;
  // For operation() kEmbeddings: the client's request as a unified embeddings request.
  // Errors: as ParseRequest; the default is kUnimplemented.
  virtual absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(
      const HttpRequest& request) const;
  // Renders a unified body ("chat.completion", or an OpenAI embeddings "list" for
  // kEmbeddings) in the client's dialect (in place).
  virtual absl::Status RenderResponse(std::string* body) const = 0;
  // Renders unified stream events ("chat.completion.chunk" data, then "[DONE]") as the
  // client's events. Null when the client's events are the unified ones (OpenAI Chat
  // Completions): the engine then writes them as they are, with no per-event call.
  virtual std::unique_ptr<StreamTranslator> NewStreamRenderer() const = 0;
  // The error body for `status` in the client's dialect (content-type application/json).
  virtual std::string ErrorBody(const absl::Status& status) const = 0;
  // The protocol dialect (protocol/dialect.h) whose API this codec speaks, for native
  // pass-through, or empty (the default: always through the unified model). When the
  // attempt's provider takes that dialect natively (ProviderDialect::BuildNativeRequest)
  // and no filter changed the parsed request, the engine sends the client's body as is
  // (model spliced) and relays the provider's answer bytes unchanged; filters still see
  // the unified request, body and events (translated for them), and usage is read as
  // for any provider.
  virtual std::string_view native_dialect() const { return {}; }
  // The event that ends a stream which failed after its first byte, in the client's
  // dialect: what the default StreamErrorEvents sends. Default: an unnamed event whose data
  // is ErrorBody(status).
  virtual SseEvent StreamErrorEvent(const absl::Status& status) const;
  // The events that end a stream which failed after its first byte, in order: what the
  // engine sends (Finish is not called then). A dialect whose stream must open before it
  // can fail (the Responses API's response.created) returns the opening events too when
  // nothing was rendered yet. `ctx` is the request's context as the filters left it (e.g.
  // a value an endpoint filter put in `metadata`); valid for the call only. Default: the
  // one event StreamErrorEvent(status).
  virtual std::vector<SseEvent> StreamErrorEvents(const absl::Status& status,
                                                  const RequestContext& ctx) const;
  // A codec for one request, called once after ParseRequest succeeded with `chat` parsed
  // from `request`: the engine then uses the returned codec for everything else about that
  // request (rendering, errors, stream events), so a codec can answer with what the client
  // sent (e.g. echo request fields in the response). Null (the default): this codec. The
  // returned codec is used by one request at a time.
  virtual std::shared_ptr<const IngressCodec> ForRequest(const HttpRequest& request,
                                                         const ChatRequest& chat) const;
  // Called per attempt, before the provider's request is built: whether `chat` may go to a
  // provider of dialect `provider_type` (ProviderConfig::type). An error fails the attempt
  // as one the provider could not express (kInvalidArgument naming the field: a 400 unless
  // another attempt succeeds). Default: OK.
  virtual absl::Status CheckAttempt(const ChatRequest& chat,
                                    std::string_view provider_type) const;
};

// OpenAI Chat Completions: the unified model itself (no translation).
MODEENVOY_EXPORT std::shared_ptr<const IngressCodec> OpenAiChatCodec();
// OpenAI embeddings (POST /v1/embeddings), operation() kEmbeddings: the unified model
// itself.
MODEENVOY_EXPORT std::shared_ptr<const IngressCodec> OpenAiEmbeddingsCodec();

struct EndpointSpec {
  // Name filters and logs see, e.g. "chat_completions". Required.
  std::string kind;
  // "GET", "POST", ... Required.
  std::string method;
  // Absolute path; segments are literals or "{name}" (a whole segment). Required.
  std::string pattern;
  // Exactly one of the two.
  std::shared_ptr<const IngressCodec> model_call;
  std::shared_ptr<const FilterFactory> local;
  // Model calls only, optional: the endpoint's own filter, run for every request of the
  // endpoint after the configured `filters` (last in the request phase, so it sees the
  // caller named by an auth filter; first in the response phase, so it sees the unified
  // answer before any configured filter). For state an API keeps itself (the Responses
  // API's stored responses) with no configuration entry to forget.
  std::shared_ptr<const FilterFactory> filter;
  // A request header name (case-insensitive), or empty. When set, the endpoint serves only
  // requests carrying that header (any value), and wins over the endpoint of the same
  // method and pattern registered without one: two APIs can share a path and be told apart
  // by what their clients send (GET /v1/models: Anthropic's list for clients sending
  // anthropic-version, OpenAI's otherwise).
  std::string header;
};

using PathParams = std::vector<std::pair<std::string, std::string>>;

// The value of path parameter `name`, or an empty view.
MODEENVOY_EXPORT std::string_view PathParam(const PathParams& params, std::string_view name);

// What the path of a request resolved to.
struct EndpointMatch {
  const EndpointSpec* endpoint = nullptr;  // null: not found or wrong method
  PathParams params;
  // When endpoint is null but the path matched other methods: those methods, sorted
  // (the Allow header of a 405).
  std::vector<std::string> allowed_methods;
};

// An immutable, lock-free copy of the registered endpoints (snapshots keep one).
class MODEENVOY_EXPORT EndpointTable {
 public:
  explicit EndpointTable(std::vector<EndpointSpec> specs);
  // Matches `path` (query and fragment ignored; percent-encoded bytes stay encoded in
  // params). Literal segments win over parameters at the same position; at equal rank an
  // endpoint whose header condition (EndpointSpec::header) `headers` meet wins over one
  // without a condition. Endpoints with a condition are left out when `headers` is null
  // or lacks their header.
  EndpointMatch Match(std::string_view method, std::string_view path,
                      const HttpHeaders* headers = nullptr) const;
  const std::vector<EndpointSpec>& specs() const { return specs_; }

 private:
  std::vector<EndpointSpec> specs_;
  bool has_conditional_ = false;  // some spec has a header condition
  std::vector<std::vector<std::string>> segments_;  // per spec, split pattern
};

// Thread safety: thread-safe.
class MODEENVOY_EXPORT EndpointRegistry {
 public:
  EndpointRegistry() = default;
  EndpointRegistry(const EndpointRegistry&) = delete;
  EndpointRegistry& operator=(const EndpointRegistry&) = delete;

  // Errors: kInvalidArgument for a missing field, a pattern that is not an absolute path
  // of literal and "{name}" segments, both/neither of model_call and local, or an invalid
  // header name; kAlreadyExists for a method + pattern (parameter names ignored) + header
  // (case-insensitive) already registered.
  absl::Status Register(EndpointSpec spec) ABSL_LOCKS_EXCLUDED(mu_);

  // The registered endpoints as an immutable table.
  std::shared_ptr<const EndpointTable> Table() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::vector<EndpointSpec> specs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_ENDPOINT_H_
