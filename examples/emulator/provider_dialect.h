// examples/emulator/provider_dialect.h: one provider wire format, as the emulator speaks it.
// Private to the emulator. Adding a provider (Anthropic, Gemini, Bedrock) is one
// <provider>_dialect.cc implementing ProviderDialect plus a line in DefaultDialects().
//
// The server owns HTTP, pacing and failure injection; a dialect only maps bytes to bytes:
//   Match(request)           which of its routes, if any, a request is
//   Script(request, ctx)     the provider-neutral reply (text, tool calls, usage) or the
//                            provider's own rejection of the request (ApiError)
//   RenderWhole/RenderStream the reply in the provider's format, whole or as stream events
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

#include "examples/emulator/emulator.h"
#include "modeenvoy/clock.h"

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

// What the model "says", independent of any wire format.
struct ScriptedReply {
  std::string id;
  std::string model;
  int64_t created = 0;  // unix seconds
  int choices = 1;
  std::string text;                     // may be empty when there are tool calls
  std::vector<std::string> text_pieces;  // stream deltas; concatenated they are `text`
  std::vector<ToolCall> tool_calls;
  std::string finish_reason;  // "stop", "length" or "tool_calls"
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool stream = false;
  bool include_usage = false;               // streamed: a final usage event
  std::string system_fingerprint;
  std::map<std::string, std::string> extra;  // dialect-private values, Script -> Render
};

// What a dialect needs besides the request.
struct ScriptContext {
  const ReplyControls& controls;
  const TokenCounter& count_tokens;  // never empty
  const Clock& clock;
  uint64_t sequence = 0;  // request number on this emulator; seeds ids
  std::string_view system_fingerprint;
};

enum class Route { kNone, kGenerate, kListModels };

// Why the server (not the dialect's Script) produces an error.
enum class ErrorCause { kInjected, kUnauthorized, kUnknownRoute, kBodyTooLarge, kBadHttp };

// Thread safety: implementations are immutable and thread-safe.
class ProviderDialect {
 public:
  virtual ~ProviderDialect() = default;
  virtual std::string_view name() const = 0;
  virtual Route Match(const Request& request) const = 0;
  // The API key the request presents, "" when none.
  virtual std::string ApiKey(const Request& request) const = 0;
  virtual std::variant<ScriptedReply, ApiError> Script(const Request& request,
                                                       const ScriptContext& ctx) const = 0;
  // Whole response body (Content-Type: whole_content_type()).
  virtual std::string RenderWhole(const ScriptedReply& reply) const = 0;
  // Streamed response body, one element per event; each is written and flushed on its own.
  virtual std::vector<std::string> RenderStream(const ScriptedReply& reply) const = 0;
  virtual std::string RenderModels(const std::vector<std::string>& models) const = 0;
  // The provider's error for `cause` with HTTP `status` (type, message, code filled in).
  virtual ApiError MakeError(ErrorCause cause, int status, const Request& request) const = 0;
  virtual std::string RenderError(const ApiError& error) const = 0;
  // Headers the provider sends with every response (request id, version).
  virtual Headers ResponseHeaders(uint64_t sequence) const = 0;
  virtual std::string_view whole_content_type() const { return "application/json"; }
  virtual std::string_view stream_content_type() const = 0;
};

std::unique_ptr<ProviderDialect> NewOpenAiDialect();

// Every dialect the emulator serves, in match order.
std::vector<std::unique_ptr<ProviderDialect>> DefaultDialects();

}  // namespace modeenvoy::emulator

#endif  // MODEENVOY_EXAMPLES_EMULATOR_PROVIDER_DIALECT_H_
