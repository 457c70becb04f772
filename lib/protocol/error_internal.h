// lib/protocol/error_internal.h: what the dialects share of error.cc beyond the public
// modeenvoy/protocol/error.h (private).
#ifndef MODEENVOY_LIB_PROTOCOL_ERROR_INTERNAL_H_
#define MODEENVOY_LIB_PROTOCOL_ERROR_INTERNAL_H_

#include <string_view>

#include "absl/status/status.h"

namespace modeenvoy::protocol_internal {

// The status code an error's type or code names when it came without an error HTTP status
// (an error event inside a 200 stream): the one table StatusFromUpstreamError reads such a
// body by, for every dialect. OpenAI's and Anthropic's types and codes (invalid_request_error,
// rate_limit_error, insufficient_quota, server_error, overloaded_error, ...) and the
// google.rpc status names (RESOURCE_EXHAUSTED, ...); kUnknown for any other text.
absl::StatusCode CodeForErrorType(std::string_view type);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_ERROR_INTERNAL_H_
