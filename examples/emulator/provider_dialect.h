// examples/emulator/provider_dialect.h: one provider wire format, as the emulator speaks it.
// Private to the emulator. Adding a provider (Anthropic, Gemini, Bedrock) is one
// <provider>_dialect.cc implementing ProviderDialect plus a line in DefaultDialects().
//
// The server owns HTTP, pacing and failure injection, and scripting.cc composes the
// provider-neutral reply; a dialect only maps bytes to bytes:
//   Match(request)           which of its routes, if any, a request is
//   Parse(request, ctx)      the request reduced to a neutral ParsedRequest (prompt tokens
//                            counted as the provider counts) or the provider's rejection
//   RenderWhole/RenderStream the neutral reply in the provider's format, whole or streamed
//   MakeError/RenderError    error objects in the provider's format
#ifndef MODEENVOY_EXAMPLES_EMULATOR_PROVIDER_DIALECT_H_
#define MODEENVOY_EXAMPLES_EMULATOR_PROVIDER_DIALECT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "examples/emulator/emulator.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy::emulator {

using Headers = std::vector<std::pair<std::string, std::string>>;

// An HTTP request as the emulator received it.
struct Request {
  std::string method;
  std::string target;  // path and query, as received
  std::string path;    // target without the query
  Headers headers;     // names lower-cased, order kept
  std::string body;

  // Value of the first header named `lower_name`, or "" when absent.
  std::string_view Header(std::string_view lower_name) const;
  bool HasHeader(std::string_view lower_name) const;
};

// A provider error response.
struct ApiError {
  int status = 400;
  std::string type;                  // OpenAI: "invalid_request_error", "server_error", ...
  std::string message;
  std::optional<std::string> param;  // null when unset
  std::optional<std::string> code;   // null when unset
  Headers headers;                   // extra response headers (retry-after)
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text
};

// ---- Scripts (parsed by ParseScript, scripting.h; fields documented in README.md) ----

// An error a script asks for: HTTP status and the provider's error fields. Unset fields
// take the dialect's defaults for the status.
struct ScriptedError {
  int status = 500;
  std::optional<std::string> type;
  std::optional<std::string> message;
  std::optional<std::string> code;
  std::optional<std::string> param;
  std::optional<int> retry_after_seconds;  // a retry-after header
};

// A stream cut short after `after_chunks` events: by a connection reset, or by the
// provider's in-stream error event (then the stream ends without its terminator).
struct StreamInterrupt {
  int64_t after_chunks = 0;
  bool reset = false;
  ScriptedError error;  // when !reset
};

struct ScriptedToolCall {
  std::string name;
  std::string arguments;  // compact JSON object text
  std::optional<std::string> id;
};

// One scripted answer. Unset fields follow the built-in rules and the controls.
struct ScriptStep {
  std::optional<std::string> reply;
  std::optional<int64_t> reply_tokens;  // long output: that many tokens of LongText()
  std::optional<std::vector<ScriptedToolCall>> tool_calls;
  std::optional<std::string> refusal;
  std::optional<std::string> reasoning;
  std::optional<int64_t> reasoning_tokens;
  std::optional<int64_t> cached_tokens;
  std::optional<std::string> finish_reason;
  std::optional<ScriptedError> error;
  std::optional<StreamInterrupt> interrupt;
  std::optional<absl::Duration> latency;         // before the first response byte
  std::optional<absl::Duration> chunk_interval;  // between two streamed events
  std::optional<int> chunks;
  std::vector<std::pair<std::string, std::string>> headers;  // extra response headers
};

struct Script {
  std::string id;  // keys the attempt counter of `steps`; empty for a single step
  std::vector<ScriptStep> steps;  // never empty
};

// ---- Token counting ----

// Counts text for one request: with `encoding` (tiktoken-exact) or, when it is null, in
// whitespace-separated words.
struct TextCounter {
  std::shared_ptr<const Encoding> encoding;

  int64_t Count(std::string_view text) const;
  // Longest prefix of `text` that counts <= max_tokens: cut at a token boundary (never
  // inside a UTF-8 code point) with an encoding, at a word boundary without one.
  // max_tokens < 0: `text` unchanged.
  std::string Truncate(std::string_view text, int64_t max_tokens) const;
  // "o200k_base", ..., or "words".
  std::string name() const;
};

// ---- A request reduced to what the answer depends on (filled by ProviderDialect::Parse) ----

enum class ToolChoice { kAuto, kNone, kRequired, kNamed };
enum class OutputFormat { kText, kJsonObject, kJsonSchema };

struct ParsedRequest {
  std::string id;  // the reply's id, in the provider's format
  int64_t created = 0;
  std::string system_fingerprint;
  std::string model;
  bool stream = false;
  bool include_usage = false;  // streamed: a final usage event
  int choices = 1;
  // Text of the last user or tool message (the echo), and of the last message when it is
  // the user's ("call" lines and the @emulator directive), "" otherwise. The directive
  // line is already removed from both.
  std::string echo;
  std::string last_user;
  std::shared_ptr<const Script> directive;  // from an @emulator line, or null
  std::string directive_param;  // where that line is, for errors: "messages[2].content"
  std::vector<std::string> tool_names;
  std::vector<std::string> tool_schemas;  // JSON text, "" when a tool has none
  ToolChoice tool_choice = ToolChoice::kAuto;
  std::string named_tool;  // kNamed
  int64_t max_tokens = -1;  // -1: no limit
  OutputFormat format = OutputFormat::kText;
  std::string format_schema;  // kJsonSchema: the schema's JSON text
  int64_t prompt_tokens = 0;  // counted by the dialect, as the provider counts
  uint64_t seed = 0;  // seeds ids
  std::map<std::string, std::string> extra;  // dialect-private values, Parse -> Render
  Headers headers;  // sent with the answer (Bedrock's X-Amzn-Bedrock-Input-Token-Count)
};

// What the model "says", independent of any wire format.
struct ScriptedReply {
  std::string id;
  std::string model;
  int64_t created = 0;  // unix seconds
  int choices = 1;
  std::string text;                     // may be empty when there are tool calls
  std::vector<std::string> text_pieces;  // stream deltas; concatenated they are `text`
  std::vector<ToolCall> tool_calls;
  std::optional<std::string> refusal;     // set: a refusal instead of text and calls
  std::vector<std::string> refusal_pieces;
  std::string reasoning;                  // surfaced reasoning text (may be empty)
  std::vector<std::string> reasoning_pieces;
  std::string finish_reason;  // "stop", "length", "tool_calls", "content_filter", ...
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;       // of prompt_tokens
  int64_t completion_tokens = 0;   // reasoning included
  int64_t reasoning_tokens = 0;    // of completion_tokens
  bool stream = false;
  bool include_usage = false;               // streamed: a final usage event
  std::optional<StreamInterrupt> interrupt;  // streamed: cut after some events
  std::string system_fingerprint;
  uint64_t seed = 0;
  std::map<std::string, std::string> extra;  // dialect-private values, Parse -> Render
  Headers headers;  // sent with the answer (Bedrock's X-Amzn-Bedrock-Input-Token-Count)
};

// What a dialect needs besides the request.
struct ScriptContext {
  const TextCounter& counter;
  const Clock& clock;
  uint64_t sequence = 0;  // request number on this emulator; seeds ids
  std::string_view system_fingerprint;
};

enum class Route { kNone, kGenerate, kListModels, kEmbeddings };

// An embeddings request reduced to what the answer depends on (ProviderDialect::
// ParseEmbeddings). Vectors are EmulatedEmbedding(texts[i], dimensions) (scripting.h).
struct EmbeddingsAsk {
  std::string model;
  std::vector<std::string> texts;  // token-id inputs as "1 2 3" (their ids, space-separated)
  int64_t dimensions = 0;          // length of every vector, > 0
  bool base64 = false;             // OpenAI encoding_format "base64"
  int64_t prompt_tokens = 0;       // counted as the provider counts (0: it reports none)
  std::map<std::string, std::string> extra;  // dialect-private values, Parse -> Render
  Headers headers;  // sent with the answer (Bedrock's X-Amzn-Bedrock-Input-Token-Count)
};

// Why the server (not the dialect's Parse) produces an error.
enum class ErrorCause { kInjected, kUnauthorized, kUnknownRoute, kBodyTooLarge, kBadHttp };

// Thread safety: implementations are thread-safe; all but the Responses dialect (which
// keeps its answers for previous_response_id, under a lock) are immutable.
class ProviderDialect {
 public:
  virtual ~ProviderDialect() = default;
  virtual std::string_view name() const = 0;
  virtual Route Match(const Request& request) const = 0;
  // The API key the request presents, "" when none.
  virtual std::string ApiKey(const Request& request) const = 0;
  // The model named by the request ("" when none can be read), which picks the counter.
  virtual std::string Model(const Request& request) const = 0;
  // Validates the request as the provider does and reduces it to a ParsedRequest,
  // prompt tokens counted with ctx.counter as the provider counts them, and an @emulator
  // directive taken out of the last user message (TakeDirective, ParseScript). Errors:
  // the provider's rejection; a bad directive is a 400 naming the message.
  virtual std::variant<ParsedRequest, ApiError> Parse(const Request& request,
                                                      const ScriptContext& ctx) const = 0;
  // A tool call id in the provider's format, derived from `seed`.
  virtual std::string ToolCallId(uint64_t seed) const = 0;
  // Whole response body (Content-Type: whole_content_type()).
  virtual std::string RenderWhole(const ScriptedReply& reply) const = 0;
  // Streamed response body, one element per event; each is written and flushed on its own.
  // With reply.interrupt: the first after_chunks events, then (unless it is a reset) the
  // provider's in-stream error event; no terminator.
  virtual std::vector<std::string> RenderStream(const ScriptedReply& reply) const = 0;
  virtual std::string RenderModels(const std::vector<std::string>& models) const = 0;
  // The body for a Route::kListModels request; providers whose listing and metadata routes
  // depend on the path (KServe's /v2/models/{m}, /v2/health/ready) override it.
  virtual std::string RenderModelsFor(const Request& /*request*/,
                                      const std::vector<std::string>& models) const {
    return RenderModels(models);
  }
  // Embeddings (Route::kEmbeddings): validates the request as the provider does and
  // reduces it. Errors: the provider's rejection. The default (a dialect without an
  // embeddings route) is the provider's 404 for an unknown route.
  virtual std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& request,
                                                                const ScriptContext& ctx) const {
    (void)ctx;
    return MakeError(ErrorCause::kUnknownRoute, 404, request);
  }
  // The provider's embeddings body for `ask` with `vectors` (one per text).
  virtual std::string RenderEmbeddings(const EmbeddingsAsk& /*ask*/,
                                       const std::vector<std::vector<float>>& /*vectors*/) const {
    return "{}";
  }

  // The provider's error for `cause` with HTTP `status` (type, message, code filled in).
  virtual ApiError MakeError(ErrorCause cause, int status, const Request& request) const = 0;
  virtual std::string RenderError(const ApiError& error) const = 0;
  // Headers the provider sends with every response (request id, version).
  virtual Headers ResponseHeaders(uint64_t sequence) const = 0;
  virtual std::string_view whole_content_type() const { return "application/json"; }
  virtual std::string_view stream_content_type() const = 0;
  // The content type of the streamed `reply` (Gemini: SSE or one JSON array, by request).
  virtual std::string StreamContentType(const ScriptedReply& /*reply*/) const {
    return std::string(stream_content_type());
  }
};

std::unique_ptr<ProviderDialect> NewOpenAiDialect();
std::unique_ptr<ProviderDialect> NewAnthropicDialect();  // POST /v1/messages
// POST /v1/responses; keeps answered responses for previous_response_id.
std::unique_ptr<ProviderDialect> NewOpenAiResponsesDialect();
std::unique_ptr<ProviderDialect> NewBedrockDialect();  // bedrock_dialect.cc
std::unique_ptr<ProviderDialect> NewOllamaDialect();  // POST /api/chat, NDJSON
std::unique_ptr<ProviderDialect> NewCohereDialect();  // POST /v2/chat, SSE events
// KServe v2 infer and Triton's generate extension (kserve_dialect.cc).
std::unique_ptr<ProviderDialect> NewKserveDialect();
std::unique_ptr<ProviderDialect> NewAzureDialect();  // azure_dialect.cc
std::unique_ptr<ProviderDialect> NewGeminiDialect();  // AI Studio and Vertex AI paths

// Every dialect the emulator serves, in match order.
std::vector<std::unique_ptr<ProviderDialect>> DefaultDialects();

}  // namespace modeenvoy::emulator

#endif  // MODEENVOY_EXAMPLES_EMULATOR_PROVIDER_DIALECT_H_
