#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/bad_upstream.h"

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/core/status_payloads.h"
#include "lib/protocol/error_internal.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {
namespace {

using core_internal::GetPayload;
using core_internal::kParamPayload;
using core_internal::ToAbsl;
using core_internal::ToStd;
using protocol_internal::AppendJsonString;
using protocol_internal::CodeForErrorType;
using protocol_internal::JsonReader;
using protocol_internal::JsonType;

// The upstream's own error type, reused by OpenAiErrorBody(). The other payloads are the
// core's (modeenvoy/status.h).
constexpr std::string_view kErrorTypePayload = "modeenvoy/protocol.error_type";
// The error code of BadUpstreamResponse().
constexpr std::string_view kBadUpstreamResponseCode = "bad_upstream_response";
// Present on statuses that carry a provider's own error (MarkProviderError).
constexpr std::string_view kProviderErrorPayload = "modeenvoy/protocol.provider_error";

constexpr size_t kMaxUpstreamMessageBytes = 1024;

absl::StatusCode CodeForHttpStatus(int http_status) {
  switch (http_status) {
    case 400:
    case 413:
    case 422:
      return absl::StatusCode::kInvalidArgument;
    case 401: return absl::StatusCode::kUnauthenticated;
    case 403: return absl::StatusCode::kPermissionDenied;
    case 404: return absl::StatusCode::kNotFound;
    case 408: return absl::StatusCode::kDeadlineExceeded;
    case 409: return absl::StatusCode::kAborted;
    case 429: return absl::StatusCode::kResourceExhausted;
    case 499: return absl::StatusCode::kCancelled;
    case 501: return absl::StatusCode::kUnimplemented;
    case 504: return absl::StatusCode::kDeadlineExceeded;
    default: break;
  }
  if (http_status >= 400 && http_status < 500) return absl::StatusCode::kFailedPrecondition;
  if (http_status >= 500 && http_status < 600) return absl::StatusCode::kUnavailable;
  return absl::StatusCode::kUnknown;
}

}  // namespace

// For errors that arrive without an error HTTP status (e.g. an error event inside a 200
// stream): the code named by the body's type (Anthropic, OpenAI) or status (Gemini).
// Shared with the dialects that read such errors themselves (error_internal.h).
absl::StatusCode protocol_internal::CodeForErrorType(std::string_view type) {
  static constexpr std::pair<std::string_view, absl::StatusCode> kTypes[] = {
      {"invalid_request_error", absl::StatusCode::kInvalidArgument},
      {"request_too_large", absl::StatusCode::kInvalidArgument},
      {"authentication_error", absl::StatusCode::kUnauthenticated},
      {"permission_error", absl::StatusCode::kPermissionDenied},
      {"not_found_error", absl::StatusCode::kNotFound},
      {"rate_limit_error", absl::StatusCode::kResourceExhausted},
      {"insufficient_quota", absl::StatusCode::kResourceExhausted},
      {"tokens", absl::StatusCode::kResourceExhausted},
      {"requests", absl::StatusCode::kResourceExhausted},
      {"api_error", absl::StatusCode::kUnavailable},
      {"server_error", absl::StatusCode::kUnavailable},
      {"overloaded_error", absl::StatusCode::kUnavailable},
      {"timeout_error", absl::StatusCode::kDeadlineExceeded},
      // Gemini / google.rpc status names.
      {"INVALID_ARGUMENT", absl::StatusCode::kInvalidArgument},
      {"FAILED_PRECONDITION", absl::StatusCode::kFailedPrecondition},
      {"OUT_OF_RANGE", absl::StatusCode::kOutOfRange},
      {"UNAUTHENTICATED", absl::StatusCode::kUnauthenticated},
      {"PERMISSION_DENIED", absl::StatusCode::kPermissionDenied},
      {"NOT_FOUND", absl::StatusCode::kNotFound},
      {"ALREADY_EXISTS", absl::StatusCode::kAlreadyExists},
      {"ABORTED", absl::StatusCode::kAborted},
      {"RESOURCE_EXHAUSTED", absl::StatusCode::kResourceExhausted},
      {"CANCELLED", absl::StatusCode::kCancelled},
      {"UNIMPLEMENTED", absl::StatusCode::kUnimplemented},
      {"UNAVAILABLE", absl::StatusCode::kUnavailable},
      {"DEADLINE_EXCEEDED", absl::StatusCode::kDeadlineExceeded},
      {"INTERNAL", absl::StatusCode::kUnavailable},
      {"DATA_LOSS", absl::StatusCode::kUnavailable},
  };
  for (const auto& [name, code] : kTypes) {
    if (name == type) return code;
  }
  return absl::StatusCode::kUnknown;
}

namespace {

std::string_view TypeForStatus(const absl::Status& status,
                               const std::optional<std::string>& error_code) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kUnimplemented:
      return "invalid_request_error";
    case absl::StatusCode::kUnauthenticated: return "authentication_error";
    case absl::StatusCode::kPermissionDenied: return "permission_error";
    case absl::StatusCode::kNotFound: return "not_found_error";
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return "conflict_error";
    case absl::StatusCode::kResourceExhausted:
      if (error_code.has_value() && *error_code == "insufficient_quota") {
        return "insufficient_quota";
      }
      return "rate_limit_error";
    case absl::StatusCode::kCancelled: return "request_cancelled";
    default: return "server_error";
  }
}

// Keeps at most `max` bytes of `s`, not cutting a UTF-8 sequence.
std::string_view TruncateUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// What an upstream error body said, as far as it could be understood.
struct UpstreamError {
  std::optional<std::string> message;
  std::optional<std::string> type;    // OpenAI/Anthropic "type"
  std::optional<std::string> status;  // Gemini "status" (a google.rpc code name)
  std::optional<std::string> code;   // OpenAI "code" (string, or a number as text)
  std::optional<std::string> param;
};

// Reads a string member value; other JSON types are skipped (numbers become text when
// `numbers_as_text`). Returns false only on a syntax error.
bool ReadLooseString(JsonReader& reader, std::optional<std::string>* out,
                     bool numbers_as_text) {
  JsonType type;
  if (!reader.Peek(&type)) return false;
  if (type == JsonType::kString) {
    std::string value;
    if (!reader.ReadString(&value)) return false;
    *out = std::move(value);
    return true;
  }
  if (type == JsonType::kNumber && numbers_as_text) {
    std::string_view text;
    if (!reader.ReadNumber(&text)) return false;
    *out = std::string(text);
    return true;
  }
  return reader.SkipValue();
}

// The members of an "error" object (OpenAI, Anthropic, Gemini, vLLM shapes).
bool ReadErrorObject(JsonReader& reader, UpstreamError* error) {
  if (!reader.BeginObject()) return false;
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "message") {
      ok = ReadLooseString(reader, &error->message, false);
    } else if (key == "type") {
      ok = ReadLooseString(reader, &error->type, false);
    } else if (key == "status") {
      ok = ReadLooseString(reader, &error->status, false);
    } else if (key == "code") {
      ok = ReadLooseString(reader, &error->code, true);
    } else if (key == "param") {
      ok = ReadLooseString(reader, &error->param, false);
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return false;
  }
  return reader.status().ok();
}

bool ReadTopLevel(JsonReader& reader, UpstreamError* error, bool allow_array) {
  JsonType type;
  if (!reader.Peek(&type)) return false;
  if (type == JsonType::kArray && allow_array) {
    // Gemini sometimes wraps the error object in an array; use the first element.
    if (!reader.BeginArray()) return false;
    bool first = true, has = false;
    if (!reader.NextElement(&first, &has)) return false;
    if (has && !ReadTopLevel(reader, error, false)) return false;
    while (has) {
      if (!reader.NextElement(&first, &has)) return false;
      if (has && !reader.SkipValue()) return false;
    }
    return true;
  }
  if (type != JsonType::kObject) return reader.SkipValue();
  if (!reader.BeginObject()) return false;
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  std::optional<std::string> top_message, top_type, top_code, detail;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "error") {
      JsonType t;
      if (!reader.Peek(&t)) return false;
      if (t == JsonType::kObject) {
        ok = ReadErrorObject(reader, error);
      } else {
        ok = ReadLooseString(reader, &error->message, false);  // {"error": "text"}
      }
    } else if (key == "message") {
      ok = ReadLooseString(reader, &top_message, false);
    } else if (key == "type") {
      ok = ReadLooseString(reader, &top_type, false);
    } else if (key == "code") {
      ok = ReadLooseString(reader, &top_code, true);
    } else if (key == "detail") {
      JsonType t;
      if (!reader.Peek(&t)) return false;
      if (t == JsonType::kString) {
        ok = ReadLooseString(reader, &detail, false);
      } else {
        std::string raw;  // FastAPI validation errors: a list of objects
        ok = reader.CaptureValue(&raw);
        detail = std::move(raw);
      }
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return false;
  }
  if (!reader.status().ok()) return false;
  // vLLM-style {"object":"error","message":...,"type":...,"code":400}; Anthropic's
  // top-level "type" is just "error".
  if (!error->message.has_value()) error->message = top_message ? top_message : detail;
  if (!error->type.has_value() && top_type.has_value() && *top_type != "error") {
    error->type = top_type;
  }
  if (!error->code.has_value()) error->code = top_code;
  return true;
}

// Providers that say "the prompt does not fit" without OpenAI's code, by their messages
// (lower-cased substrings): Anthropic ("prompt is too long: 210000 tokens > 200000
// maximum", "input length and `max_tokens` exceed context limit"), Bedrock ("Input is too
// long for requested model", "too many input tokens"), Gemini ("The input token count (N)
// exceeds the maximum number of tokens allowed (M)"), vLLM and other OpenAI-compatible
// servers ("This model's maximum context length is N tokens"), Mistral ("... too large for
// model with N maximum context length"), Cohere ("too many tokens: ... cannot exceed").
bool SaysContextLengthExceeded(std::string_view message) {
  static constexpr std::string_view kPhrases[] = {
      "prompt is too long",
      "exceed context limit",
      "input is too long",
      "too many input tokens",
      "exceeds the maximum number of tokens",
      "maximum context length",
      "context length exceeded",
      "context_length_exceeded",
      "context window",
      "too many tokens",
  };
  std::string lower(message.substr(0, 2048));
  absl::AsciiStrToLower(&lower);
  for (std::string_view phrase : kPhrases) {
    if (lower.find(phrase) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

std::string OpenAiErrorBody(const absl::Status& status) {
  if (status.ok()) {
    return R"({"error":{"message":"internal error: an OK status was reported as an error",)"
           R"("type":"server_error","param":null,"code":null}})";
  }
  const std::optional<std::string> param = ErrorParam(status);
  const std::optional<std::string> code = ErrorCode(status);
  const std::optional<std::string> upstream_type = GetPayload(status, kErrorTypePayload);
  std::string out;
  out.reserve(status.message().size() + 96);
  out.append(R"({"error":{"message":)");
  AppendJsonString(&out, ToStd(status.message()));
  out.append(R"(,"type":)");
  AppendJsonString(&out, upstream_type.has_value() ? std::string_view(*upstream_type)
                                                   : TypeForStatus(status, code));
  out.append(R"(,"param":)");
  if (param.has_value()) {
    AppendJsonString(&out, *param);
  } else {
    out.append("null");
  }
  out.append(R"(,"code":)");
  if (code.has_value()) {
    AppendJsonString(&out, *code);
  } else {
    out.append("null");
  }
  out.append("}}");
  return out;
}

absl::Status StatusFromUpstreamError(int http_status, std::string_view body) {
  UpstreamError error;
  std::string_view trimmed = ToStd(absl::StripAsciiWhitespace(ToAbsl(body)));
  if (!trimmed.empty() && (trimmed.front() == '{' || trimmed.front() == '[')) {
    JsonReader reader(trimmed, kMaxJsonDepth);
    UpstreamError candidate;
    if (ReadTopLevel(reader, &candidate, /*allow_array=*/true) && reader.ExpectEnd()) {
      error = std::move(candidate);
    }
  }

  absl::StatusCode code = CodeForHttpStatus(http_status);
  if (code == absl::StatusCode::kUnknown) {
    // No error HTTP status (e.g. an error event inside a 200 stream): use the body.
    for (const std::optional<std::string>* hint : {&error.type, &error.status, &error.code}) {
      if (code != absl::StatusCode::kUnknown || !hint->has_value()) continue;
      int number = 0;
      const std::string& text = **hint;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
      code = (ec == std::errc() && ptr == text.data() + text.size())
                 ? CodeForHttpStatus(number)
                 : CodeForErrorType(text);
    }
  }

  std::string message;
  if (error.message.has_value() && !error.message->empty()) {
    message = std::string(TruncateUtf8(*error.message, 4 * kMaxUpstreamMessageBytes));
  } else if (!trimmed.empty()) {
    // Plain text, HTML, or JSON in a shape we do not know: show the body itself.
    message = std::string(TruncateUtf8(trimmed, kMaxUpstreamMessageBytes));
  } else {
    message = absl::StrCat("upstream returned HTTP ", http_status);
  }

  absl::Status status(code, message);
  if (error.param.has_value() && !error.param->empty()) {
    status.SetPayload(ToAbsl(kParamPayload), absl::Cord(*error.param));
  }
  // One code for "the prompt does not fit" whichever provider said it: what clients
  // (OpenAI's) and the router's context_length fallback look for. A provider's own code wins,
  // unless it is only a number (Gemini's and vLLM's repeat the HTTP status).
  const bool has_code = error.code.has_value() && !error.code->empty();
  const bool numeric_code =
      has_code && error.code->find_first_not_of("0123456789") == std::string::npos;
  if ((!has_code || numeric_code) &&
      (http_status == 400 || http_status == 413 || http_status == 422) &&
      SaysContextLengthExceeded(message)) {
    status = WithErrorCode(std::move(status), "context_length_exceeded");
  } else if (has_code) {
    status = WithErrorCode(std::move(status), *error.code);
  }
  if (error.type.has_value() && !error.type->empty()) {
    status.SetPayload(ToAbsl(kErrorTypePayload), absl::Cord(*error.type));
  }
  if (http_status >= 400 && http_status <= 599) {
    status = WithHttpStatus(std::move(status), http_status);
  }
  return MarkProviderError(std::move(status));
}

absl::Status MarkProviderError(absl::Status status) {
  if (!status.ok()) status.SetPayload(ToAbsl(kProviderErrorPayload), absl::Cord("1"));
  return status;
}

bool IsProviderError(const absl::Status& status) {
  return !status.ok() && status.GetPayload(ToAbsl(kProviderErrorPayload)).has_value();
}

absl::Status BadUpstreamResponse(std::string_view message) {
  return WithErrorCode(WithHttpStatus(absl::UnavailableError(ToAbsl(message)), 502),
                       kBadUpstreamResponseCode);
}

absl::Status AsBadUpstreamResponse(absl::Status status) {
  if (status.ok() || IsProviderError(status)) return status;
  if (std::optional<std::string> code = ErrorCode(status);
      code.has_value() && *code == kBadUpstreamResponseCode) {
    return status;
  }
  absl::Status mapped = BadUpstreamResponse(
      absl::StrCat("the upstream's answer could not be read: ", status.message()));
  if (auto param = status.GetPayload(ToAbsl(kParamPayload)); param.has_value()) {
    mapped.SetPayload(ToAbsl(kParamPayload), *std::move(param));
  }
  return mapped;
}

}  // namespace modeenvoy
