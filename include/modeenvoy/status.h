// include/modeenvoy/status.h: field paths, HTTP statuses and error codes carried by
// absl::Status, for every component (config readers, parsers, filters, the gateway).
//   absl::Status s = modeenvoy::InvalidFieldError("routes[2].weight", "must be >= 0");
//   // s.message() == "routes[2].weight: must be >= 0"
//   // *modeenvoy::ErrorParam(s) == "routes[2].weight"
//   int http = modeenvoy::HttpStatusForStatus(s);                      // 400
//   absl::Status busy = modeenvoy::WithHttpStatus(absl::UnavailableError("busy"), 529);
//   // modeenvoy::HttpStatusForStatus(busy) == 529
//   absl::Status quota = modeenvoy::WithErrorCode(
//       absl::ResourceExhaustedError("monthly quota used up"), "insufficient_quota");
//   // *modeenvoy::ErrorCode(quota) == "insufficient_quota"
//
// Everything here is a pure function over absl::Status values; all functions are
// thread-safe and never throw. The extra information travels as absl::Status payloads, so it
// survives copying and returning the status unchanged up the stack. The OpenAI error body and
// the reading of provider error bodies are protocol-specific: modeenvoy/protocol/error.h.
#ifndef MODEENVOY_STATUS_H_
#define MODEENVOY_STATUS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// Returns a status with `code` and message "<path>: <reason>", with `path` also attached
// as a payload so ErrorParam() recovers it. `path` names a JSON field the way a user
// wrote it: "model", "messages[2].content[0].type", "routes[1].weight". An empty `path`
// gives the message `reason` alone and no payload. If `code` is kOk the result is OK.
MODEENVOY_EXPORT absl::Status FieldError(absl::StatusCode code, std::string_view path,
                                         std::string_view reason);

// FieldError(absl::StatusCode::kInvalidArgument, path, reason).
MODEENVOY_EXPORT absl::Status InvalidFieldError(std::string_view path,
                                                std::string_view reason);

// Returns the field path attached by FieldError() (or by StatusFromUpstreamError() from
// an upstream body's "param"), or nullopt if there is none (including for OK).
MODEENVOY_EXPORT std::optional<std::string> ErrorParam(const absl::Status& status);

// Returns `status` with an explicit HTTP status attached, which HttpStatusForStatus()
// then reports instead of the code-derived one (e.g. to pass an upstream 429 or 529
// through). Replaces any previously attached value. An OK `status` is returned unchanged.
// REQUIRES: 100 <= http_status <= 599; other values are ignored.
MODEENVOY_EXPORT absl::Status WithHttpStatus(absl::Status status, int http_status);

// Returns the HTTP status a client should receive for `status`: the value attached by
// WithHttpStatus() if any, else by code: OK 200; InvalidArgument, OutOfRange,
// FailedPrecondition 400; Unauthenticated 401; PermissionDenied 403; NotFound 404;
// AlreadyExists, Aborted 409; ResourceExhausted 429; Cancelled 499; Unimplemented 501;
// Unavailable 503; DeadlineExceeded 504; Internal, Unknown, DataLoss (and anything else)
// 500.
MODEENVOY_EXPORT int HttpStatusForStatus(const absl::Status& status);

// Returns `status` with an OpenAI-style machine-readable error code attached (the
// "code" member of an error body: "invalid_api_key", "insufficient_quota",
// "context_length_exceeded", "rate_limit_exceeded", ...). Replaces any previous code.
// An OK `status` is returned unchanged.
MODEENVOY_EXPORT absl::Status WithErrorCode(absl::Status status, std::string_view code);

// Returns the code attached by WithErrorCode() or StatusFromUpstreamError(), if any.
MODEENVOY_EXPORT std::optional<std::string> ErrorCode(const absl::Status& status);

}  // namespace modeenvoy

#endif  // MODEENVOY_STATUS_H_
