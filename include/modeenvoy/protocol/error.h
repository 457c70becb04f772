// include/modeenvoy/protocol/error.h: the gateway's error model on the wire: OpenAI-style
// error bodies and parsing of upstream provider errors. The field paths, HTTP statuses and
// error codes they carry come from modeenvoy/status.h (core), included here.
//   absl::Status s = modeenvoy::InvalidFieldError("messages[2].role", "unknown role \"bot\"");
//   // s.message() == "messages[2].role: unknown role \"bot\""
//   // *modeenvoy::ErrorParam(s) == "messages[2].role"
//   int http = modeenvoy::HttpStatusForStatus(s);          // 400
//   std::string body = modeenvoy::OpenAiErrorBody(s);      // {"error":{"message":...}}
//
//   // Passing an upstream failure through to the client unchanged in kind:
//   absl::Status up = modeenvoy::StatusFromUpstreamError(429, upstream_body);
//   // up.code() == kResourceExhausted, HttpStatusForStatus(up) == 429
//
// Everything here is a pure function over absl::Status values; all functions are
// thread-safe and never throw. Extra information travels as absl::Status payloads, so it
// survives copying and returning the status unchanged up the stack.
#ifndef MODEENVOY_PROTOCOL_ERROR_H_
#define MODEENVOY_PROTOCOL_ERROR_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "modeenvoy/export.h"
#include "modeenvoy/status.h"  // FieldError, ErrorParam, HttpStatusForStatus, ...

namespace modeenvoy {

// Returns the OpenAI error body for a non-OK `status`:
//   {"error":{"message":"...","type":"...","param":"..."|null,"code":"..."|null}}
// message is status.message(); param is ErrorParam(); code is ErrorCode(). type is the
// upstream's own type when the status came from StatusFromUpstreamError(), else by code:
// invalid_request_error (InvalidArgument, OutOfRange, FailedPrecondition, Unimplemented),
// authentication_error, permission_error, not_found_error, conflict_error (AlreadyExists,
// Aborted), rate_limit_error (ResourceExhausted; insufficient_quota when the error code is
// "insufficient_quota"), request_cancelled, and server_error for the rest. The result is
// always valid UTF-8 JSON: bytes of the message that are not valid UTF-8 become U+FFFD.
// For an OK status returns a server_error body saying so (callers should not do that).
MODEENVOY_EXPORT std::string OpenAiErrorBody(const absl::Status& status);

// Converts an upstream provider's error response into a status carrying the upstream
// message, WithHttpStatus(http_status) when it is 400..599, and the upstream "param" (as
// ErrorParam), "code" (as ErrorCode) and "type" (reused by OpenAiErrorBody) when present.
// Understands OpenAI {"error":{"message","type","param","code"}}, Anthropic
// {"type":"error","error":{"type","message"}}, Gemini {"error":{"code","message",
// "status"}} (also wrapped in an array), vLLM {"object":"error","message",...},
// {"error":"text"}, {"message":...}, {"detail":...}; a message found in the JSON is kept
// up to 4096 bytes. Any other body (plain text, HTML, JSON of another shape) becomes the
// message itself, trimmed and cut to 1024 bytes at a character boundary; an empty body
// gives "upstream returned HTTP <status>".
// The code follows the HTTP status: 400/413/422 InvalidArgument, 401 Unauthenticated,
// 403 PermissionDenied, 404 NotFound, 408 DeadlineExceeded, 409 Aborted,
// 429 ResourceExhausted, 499 Cancelled, 501 Unimplemented, 504 DeadlineExceeded, other
// 4xx FailedPrecondition, other 5xx (500, 502, 503, 529, ...) Unavailable (retryable).
// For any other status (e.g. 200 for an error event inside a stream) the body's type,
// Gemini status or numeric code picks the code, else Unknown. Never returns OK.
// A 400, 413 or 422 without an upstream "code" (or with a numeric one) whose message says
// the prompt does not fit the model's context (Anthropic's "prompt is too long", Bedrock's
// "Input is too long", Gemini's "exceeds the maximum number of tokens", vLLM's "maximum
// context length", ...) gets OpenAI's code "context_length_exceeded", so clients and the
// router's context-length fallback see one code whichever provider answered.
// The result is marked as a provider error (IsProviderError).
MODEENVOY_EXPORT absl::Status StatusFromUpstreamError(int http_status, std::string_view body);

// Marks `status` (not OK) as the provider's own error, as opposed to a failure to read
// what the provider sent: a stream translator returns a marked status for an error event
// the provider put in its stream, so that a host can pass it on in its client's dialect
// (an error event) instead of treating the stream as malformed. Returns OK unchanged.
MODEENVOY_EXPORT absl::Status MarkProviderError(absl::Status status);
// True for a status from StatusFromUpstreamError() or MarkProviderError().
MODEENVOY_EXPORT bool IsProviderError(const absl::Status& status);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_ERROR_H_
