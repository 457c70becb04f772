// include/modeenvoy/gateway/provider.h: provider dialects, the engine's one way to talk to
// a model provider.
//
// A dialect owns every provider-specific decision: the upstream URL (with its query), the
// authentication (a header, a bearer token, or a signing step that runs after every header
// edit, as SigV4 needs), the translation of the unified request (OpenAI Chat Completions,
// protocol/chat.h) into the provider's body, the framing of the response (declared, never
// guessed from content-type), and the translation of responses, stream frames and errors
// back into the unified form. The engine names no provider; `providers.<name>.type` picks
// a dialect registered here:
//   modeenvoy::Registry registry;                       // built-in dialects included
//   registry.providers().Register("my_llm", [](const modeenvoy::ProviderConfig& common,
//                                              std::string_view options_json,
//                                              const modeenvoy::BuildContext& ctx)
//       -> absl::StatusOr<std::unique_ptr<modeenvoy::ProviderDialect>> { ... });
// Built-in types: every dialect of the protocol component (protocol/dialect.h,
// DialectNames(): "openai", ...), each wrapped by one adapter that adds the base URL
// (`base_url`, or the dialect's public endpoint when the entry names none), the API key in
// the dialect's header, and the entry's `headers`; the entry's other keys are the
// dialect's options.
#ifndef MODEENVOY_GATEWAY_PROVIDER_H_
#define MODEENVOY_GATEWAY_PROVIDER_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry_base.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"  // StreamTranslator
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {

struct ProviderConfig;  // config.h

// What an attempt knows when a dialect builds its request.
struct ProviderCall {
  bool stream = false;  // the client asked for a stream
  // The provider's name for the model (models.<name>.upstream_model).
  std::string_view upstream_model;
  // The client's request headers (a dialect forwards a few, e.g. anthropic-beta). May be
  // null.
  const HttpHeaders* client_headers = nullptr;
  // Someone reads a streamed answer's usage: a filter that declares kResponseCompleteHook
  // (filter_hooks.h; the outcome's usage), or the client asked for it. False: the dialect
  // leaves out what it adds only to have usage reported (DialectCall::stream_usage).
  bool stream_usage = true;
};

// One configured provider's dialect. Built at config load; shared by every request of that
// snapshot. Thread safety: thread-safe (all methods are const).
class MODEENVOY_EXPORT ProviderDialect {
 public:
  virtual ~ProviderDialect() = default;

  // Fills `*out` (method, URL with query, headers including authentication, body) for
  // `chat`, whose `model` the engine already set to call.upstream_model. Timeouts are
  // preset from the provider's config. Errors: kInvalidArgument naming the field that this
  // provider cannot express (never a silent drop); kUnimplemented for a feature not mapped.
  virtual absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                                    UpstreamRequest* out) const = 0;

  // Runs after the engine applied every header edit (filters' upstream_header_mutations)
  // and immediately before the request is sent: a signing step (SigV4) goes here.
  virtual absl::Status Sign(UpstreamRequest* /*request*/) const { return absl::OkStatus(); }

  // How the body of a 2xx answer to a request with `stream` is framed.
  virtual Framing ResponseFraming(bool stream) const = 0;

  // Translates a whole 2xx body into a unified "chat.completion" JSON body (in place).
  // Errors: kInvalidArgument / an upstream error status when the body is unusable.
  virtual absl::Status TranslateResponse(std::string* body) const = 0;

  // A translator for one streamed answer. Never null.
  virtual std::unique_ptr<StreamTranslator> NewStreamTranslator() const = 0;

  // Native pass-through (IngressCodec::native_dialect): when this provider's API is the
  // protocol dialect named `dialect`, fills `*out` for the client's own request `body`
  // (sent as is, the model set to call.upstream_model by a byte splice) and returns true;
  // the answer then comes back to the client as the provider sent it. False (the default):
  // the request goes through the unified model. Errors: as BuildRequest.
  virtual absl::StatusOr<bool> BuildNativeRequest(std::string_view dialect,
                                                  std::string_view body,
                                                  const ProviderCall& call,
                                                  UpstreamRequest* out) const;

  // Maps a non-2xx answer to a status in the unified error model (message, param, code,
  // HTTP status kept). The default reads OpenAI, Anthropic and Gemini error bodies
  // (StatusFromUpstreamError). Used for embeddings calls too.
  virtual absl::Status TranslateError(int http_status, const HttpHeaders& headers,
                                      std::string_view body) const;

  // ---- embeddings (POST /v1/embeddings) ----
  // Fills `*out` for `request`, whose `model` the engine already set to call.upstream_model
  // (call.stream is false). The answer is one JSON body; Sign() runs on this request too.
  // Errors: kInvalidArgument naming the field this provider cannot express; kUnimplemented
  // (the default) when the provider has no embeddings API.
  virtual absl::Status BuildEmbeddingsRequest(const EmbeddingsRequest& request,
                                              const ProviderCall& call,
                                              UpstreamRequest* out) const;
  // The unified response for the 2xx `body` of that call, whose response headers are
  // `headers` (a provider that reports its token count in a header, as Bedrock's
  // X-Amzn-Bedrock-Input-Token-Count, fills usage from it). Usage absent when the provider
  // reports none: the engine counts it then. Errors: kInvalidArgument when the body is
  // unusable; kUnimplemented (the default).
  virtual absl::StatusOr<EmbeddingsResponse> TranslateEmbeddingsResponse(
      const EmbeddingsRequest& request, const ProviderCall& call, const HttpHeaders& headers,
      std::string_view body) const;
  // Most inputs one call may carry for `request` (whose model is call.upstream_model): the
  // engine splits a request with more into consecutive slices of at most this many, one
  // call each (built, signed, run at most 8 at a time), and merges the answers in input
  // order (usage summed); the first failing call fails the attempt with its error.
  // Default kMaxEmbeddingInputs (never split).
  virtual size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                           const ProviderCall& call) const;
};

// Builds a dialect for one `providers.<name>` entry. `common` holds the keys the engine
// reads for every provider (type, base_url, api_key/api_key_env, headers, timeouts);
// `options_json` is a JSON object with the entry's other keys, which the builder must
// read strictly (an unknown key is an error naming it, relative to the entry:
// InvalidFieldError("deployment", ...)).
using ProviderDialectBuilder = std::function<absl::StatusOr<std::unique_ptr<ProviderDialect>>(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context)>;

// Thread safety: thread-safe.
class MODEENVOY_EXPORT ProviderDialectRegistry : public NamedRegistry<ProviderDialectBuilder> {
 public:
  ProviderDialectRegistry() : NamedRegistry("provider type") {}
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_PROVIDER_H_
