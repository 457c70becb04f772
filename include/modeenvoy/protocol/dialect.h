// include/modeenvoy/protocol/dialect.h: a model provider's wire format, both ways, without
// I/O. The unified form is OpenAI Chat Completions (protocol/chat.h); a Dialect maps it to
// and from one provider's API:
//
//   egress (the gateway calling the provider)
//     EncodeRequest    unified ChatRequest -> the provider's request (path, headers, body)
//     DecodeResponse   the provider's whole 2xx body -> unified "chat.completion" JSON
//     NewStreamDecoder the provider's stream frames -> unified "chat.completion.chunk" events
//     DecodeError      the provider's error body -> a status in the unified error model
//     EncodeEmbeddingsRequest / DecodeEmbeddingsResponse
//                      unified embeddings (protocol/embeddings.h) <-> the provider's
//                      embeddings API; dialects without one refuse (kUnimplemented)
//   ingress (a client speaking the provider's API, or an emulator of it)
//     DecodeRequest    the provider's request -> unified ChatRequest
//     EncodeResponse   unified ChatCompletion -> the provider's whole body
//     NewStreamEncoder unified chunks -> the provider's stream bytes
//     EncodeErrorBody  a status -> the provider's error body
//
//   absl::StatusOr<std::unique_ptr<modeenvoy::Dialect>> anthropic =
//       modeenvoy::NewDialect("anthropic");               // options: "{}" (defaults)
//   modeenvoy::WireRequest wire;
//   absl::Status s = (*anthropic)->EncodeRequest(chat, {.stream = true,
//                                                       .model = "claude-sonnet-4-5"}, &wire);
//   // wire.path == "/v1/messages", wire.body == {"model":...,"max_tokens":...,...}
//   auto frames = modeenvoy::NewFrameParser((*anthropic)->ResponseFraming(true));
//   auto decoder = (*anthropic)->NewStreamDecoder();
//   for (std::string_view read : network_reads) {
//     std::vector<modeenvoy::StreamFrame> got;
//     (*frames)->Feed(read, &got);
//     for (auto& f : got) decoder->Translate(std::move(f), &events);  // unified chunks
//   }
//
// Authentication is the host's (it holds the secrets): api_key_header() says how an API key
// is presented; signing schemes (SigV4, protocol/sigv4.h) run on the host's final request.
// Thread safety: Dialect is immutable and thread-safe; translators and encoders are
// thread-compatible (one per stream).
#ifndef MODEENVOY_PROTOCOL_DIALECT_H_
#define MODEENVOY_PROTOCOL_DIALECT_H_

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {

// Header (name, value) pairs; names lower-case.
using WireHeaders = std::vector<std::pair<std::string, std::string>>;

// An HTTP request as a dialect sees it: relative to the provider's base URL.
struct WireRequest {
  std::string method = "POST";
  // Path and query, starting with '/', appended to the base URL:
  // "/v1/messages", "/models/gemini-2.5-pro:streamGenerateContent?alt=sse".
  std::string target;
  WireHeaders headers;  // never authentication
  std::string body;
};

// Turns one upstream stream's frames into unified stream events: "chat.completion.chunk"
// JSON in SseEvent::data, ending with the "[DONE]" event. Every dialect closes with one
// usage-only chunk (no choices, `usage` set) right before "[DONE]" when the provider
// reported usage, and puts `usage` on no other chunk.
// Thread safety: thread-compatible (one per upstream call).
class MODEENVOY_EXPORT StreamTranslator {
 public:
  virtual ~StreamTranslator() = default;
  // Appends the events `frame` produces (possibly none) to `*out`.
  // Errors: a provider error carried in the stream, as a status in the unified error model
  // marked IsProviderError() (StatusFromUpstreamError or MarkProviderError, error.h), or
  // kInvalidArgument (not marked) for a frame that cannot be read.
  virtual absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) = 0;
  // The upstream stream ended cleanly; appends any final events (e.g. "[DONE]" for a
  // dialect whose provider sends none). Errors: as Translate (e.g. a stream cut short).
  virtual absl::Status Finish(std::vector<SseEvent>* out) = 0;
  // True when this translator keeps the promise above within one call: its usage-only
  // chunk (if any) comes out of the same Translate or Finish call as "[DONE]", right before
  // it, and no other chunk it emits has a `usage` member. The gateway then reads only that
  // chunk for usage instead of looking at every chunk. Default false (every chunk is looked
  // at), which is always correct; a translator that says true and breaks the promise gets
  // usage passed to clients that did not ask for it and missed in the request's outcome.
  virtual bool KeepsUsagePromise() const { return false; }
};

// Turns unified chunks into one provider's stream bytes (its framing included: SSE lines,
// NDJSON lines, or binary EventStream messages).
// Thread safety: thread-compatible (one per stream).
class MODEENVOY_EXPORT StreamEncoder {
 public:
  virtual ~StreamEncoder() = default;
  // Appends the bytes `chunk` produces (possibly none: a dialect may hold state until a
  // later chunk or Finish) to `*out`. Errors: kInvalidArgument naming the field the
  // dialect cannot express.
  virtual absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) = 0;
  // The stream failed with `error` (not OK): appends the dialect's in-stream error event.
  // Nothing may be encoded after it.
  virtual void EncodeError(const absl::Status& error, std::string* out) = 0;
  // The stream ended cleanly: appends the closing events (e.g. "data: [DONE]").
  virtual absl::Status Finish(std::string* out) = 0;
};

// What a request to the provider depends on besides the unified body.
struct DialectCall {
  bool stream = false;
  // The provider's name for the model; empty means chat.model.
  std::string_view model;
  // The client's request headers, for the few a dialect forwards (anthropic-beta). May be
  // null.
  const WireHeaders* client_headers = nullptr;
  // The caller reads the usage of a streamed answer (e.g. for token accounting). False: a
  // dialect leaves out what it would add to the request only to have usage reported
  // (OpenAI's stream_options.include_usage), which saves the upstream's usage-only chunk.
  // What `chat` itself asks for (the client's own stream_options) is sent either way.
  bool stream_usage = true;
};

// How an API key is presented: `name: prefix + key`.
struct ApiKeyHeader {
  std::string_view name = "authorization";
  std::string_view prefix = "Bearer ";
};

// Thread safety: immutable, thread-safe.
class MODEENVOY_EXPORT Dialect {
 public:
  virtual ~Dialect() = default;

  // The registered name ("anthropic").
  virtual std::string_view name() const = 0;
  // The provider's public endpoint, used when the configuration names none
  // ("https://api.anthropic.com"); empty when there is none (self-hosted servers).
  virtual std::string_view default_base_url() const { return {}; }
  virtual ApiKeyHeader api_key_header() const { return {}; }

  // ---- egress ----

  // Fills `*out` for `chat`. Errors: kInvalidArgument naming the field (its path in the
  // unified request) that the provider cannot express; never a silent drop.
  virtual absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                                     WireRequest* out) const = 0;
  // How the body of a 2xx answer is framed.
  virtual Framing ResponseFraming(bool stream) const = 0;
  // Rewrites a whole 2xx body into unified "chat.completion" JSON, in place.
  // Errors: kInvalidArgument (with a field path) when the body is unusable; a provider
  // error carried in a 2xx body as its unified status.
  virtual absl::Status DecodeResponse(std::string* body) const = 0;
  // Never null.
  virtual std::unique_ptr<StreamTranslator> NewStreamDecoder() const = 0;
  // A non-2xx answer as a status in the unified error model (StatusFromUpstreamError's
  // conventions: HTTP status kept, message, param, code, type). Never OK.
  virtual absl::Status DecodeError(int http_status, std::string_view body) const;

  // ---- embeddings (egress) ----
  // Served by "openai", "azure_openai", "gemini", "bedrock" (Titan and Cohere models),
  // "cohere" and "ollama"; docs/providers.md ("Embeddings") has the mapping.

  // Fills `*out` for `request`; call.model is the provider's model name (empty: request.
  // model) and call.stream is ignored (embeddings never stream). The response comes back as
  // one JSON body (Framing::kJson) and its errors through DecodeError. encoding_format is
  // sent only to providers that can answer base64; for the others the caller encodes
  // (SerializeEmbeddingsResponse). Errors: kInvalidArgument naming the unified field the
  // provider cannot express (token-id input, `user`, `dimensions` out of the model's range,
  // an unknown member; never a silent drop); kUnimplemented "embeddings: not supported by
  // <name>" (the default) for a dialect without an embeddings API.
  virtual absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request,
                                               const DialectCall& call, WireRequest* out) const;
  // Reads the 2xx `body` of the call EncodeEmbeddingsRequest built for `request` / `call`:
  // one embedding per input, in input order; `usage` from the provider's token count, absent
  // when the provider reports none (the caller counts then). Errors: kInvalidArgument with
  // the provider's field path when the body is unusable (a missing vector, a wrong count);
  // kUnimplemented as above.
  virtual absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request, const DialectCall& call) const;
  // Most inputs one call of the provider's embeddings API takes for `request` / `call`
  // (the model decides on Bedrock): Titan 1, Cohere (v2 and on Bedrock) 96, Gemini 100;
  // the default is kMaxEmbeddingInputs (OpenAI's 2048; Ollama documents none). A caller
  // with more inputs splits them into calls of at most this many, in order, and merges the
  // answers (the gateway does). Never 0.
  virtual size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                           const DialectCall& call) const;

  // ---- ingress ----

  // Reads a request in the provider's API (target gives the model and the stream flag where
  // the provider puts them in the URL). Validates as the provider does (Anthropic without
  // max_tokens is an error). Errors: kInvalidArgument with the field path in the provider's
  // body.
  virtual absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const = 0;
  // The provider's whole response body for `completion`.
  virtual absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const = 0;
  // Never null.
  virtual std::unique_ptr<StreamEncoder> NewStreamEncoder() const = 0;
  // The provider's error body for `status` (not OK); the HTTP status is
  // HttpStatusForStatus(status).
  virtual std::string EncodeErrorBody(const absl::Status& status) const = 0;

  // ---- native pass-through ----

  // The request to send for `body`, a request already in this provider's API (from a
  // client that speaks it): the body byte for byte, except the top-level "model" value,
  // replaced by call.model when that is non-empty and differs (a splice of the bytes;
  // nothing is re-serialized), with the target and headers EncodeRequest would send for
  // `call` (the client's anthropic-version / anthropic-beta included). Errors:
  // kInvalidArgument when `body` is not a JSON object with a string "model";
  // kUnimplemented (the default) for a dialect that does not take its API natively.
  virtual absl::Status EncodeNativeRequest(std::string_view body, const DialectCall& call,
                                           WireRequest* out) const;
};

// Builds a dialect from its options: a JSON object whose keys the factory reads strictly
// (an unknown key is an error naming it).
using DialectFactory =
    absl::StatusOr<std::unique_ptr<Dialect>> (*)(std::string_view options_json);

// The built-in dialect names, in registration order: "openai", "azure_openai", "anthropic",
// "gemini", "vertex", "bedrock", "ollama", "cohere", "kserve", "openai_responses" (those
// built so far).
MODEENVOY_EXPORT std::vector<std::string_view> DialectNames();

// A built-in dialect. Errors: kNotFound for an unknown name (the message lists the known
// ones); kInvalidArgument for bad options, with the option's path ("deployment: ...").
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<Dialect>> NewDialect(
    std::string_view name, std::string_view options_json = "{}");

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_DIALECT_H_
