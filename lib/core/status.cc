#include "modeenvoy/status.h"

#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/core/status_payloads.h"

namespace modeenvoy {

using core_internal::GetPayload;
using core_internal::kErrorCodePayload;
using core_internal::kHttpStatusPayload;
using core_internal::kParamPayload;
using core_internal::ToAbsl;

absl::Status FieldError(absl::StatusCode code, std::string_view path, std::string_view reason) {
  if (code == absl::StatusCode::kOk) return absl::OkStatus();
  if (path.empty()) return absl::Status(code, ToAbsl(reason));
  absl::Status status(code, absl::StrCat(ToAbsl(path), ": ", ToAbsl(reason)));
  status.SetPayload(ToAbsl(kParamPayload), absl::Cord(ToAbsl(path)));
  return status;
}

absl::Status InvalidFieldError(std::string_view path, std::string_view reason) {
  return FieldError(absl::StatusCode::kInvalidArgument, path, reason);
}

std::optional<std::string> ErrorParam(const absl::Status& status) {
  return GetPayload(status, kParamPayload);
}

absl::Status WithHttpStatus(absl::Status status, int http_status) {
  if (status.ok() || http_status < 100 || http_status > 599) return status;
  status.SetPayload(ToAbsl(kHttpStatusPayload), absl::Cord(absl::StrCat(http_status)));
  return status;
}

int HttpStatusForStatus(const absl::Status& status) {
  if (std::optional<std::string> explicit_status = GetPayload(status, kHttpStatusPayload)) {
    int value = 0;
    const char* end = explicit_status->data() + explicit_status->size();
    auto [ptr, ec] = std::from_chars(explicit_status->data(), end, value);
    if (ec == std::errc() && ptr == end && value >= 100 && value <= 599) return value;
  }
  switch (status.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kCancelled: return 499;
    case absl::StatusCode::kUnimplemented: return 501;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

absl::Status WithErrorCode(absl::Status status, std::string_view code) {
  if (status.ok()) return status;
  status.SetPayload(ToAbsl(kErrorCodePayload), absl::Cord(ToAbsl(code)));
  return status;
}

std::optional<std::string> ErrorCode(const absl::Status& status) {
  return GetPayload(status, kErrorCodePayload);
}

}  // namespace modeenvoy
