// include/modeenvoy/protocol/bad_upstream.h: the status for a 2xx answer the gateway cannot
// read. A provider that answers a chat call 2xx with a body that is no answer (not JSON, no
// "choices", a body its dialect cannot translate) has failed, not the client: the client
// gets 502 with error code "bad_upstream_response", never a 400 that blames its request.
//   absl::Status s = dialect.DecodeResponse(&body);
//   s = modeenvoy::AsBadUpstreamResponse(std::move(s));
//   // an unreadable body: HttpStatusForStatus(s) == 502,
//   // *ErrorCode(s) == "bad_upstream_response", OpenAiErrorBody's type "server_error"
//
// Pure functions over absl::Status values: thread-safe, never throw.
#ifndef MODEENVOY_PROTOCOL_BAD_UPSTREAM_H_
#define MODEENVOY_PROTOCOL_BAD_UPSTREAM_H_

#include <string_view>

#include "absl/status/status.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// The status for a 2xx answer that cannot be read as one: kUnavailable (the upstream
// failed; retryable on another provider) with HTTP 502 and error code
// "bad_upstream_response". `message` says what was wrong, with the field path in it when
// there is one. Not a provider error (IsProviderError is false: the provider said nothing).
MODEENVOY_EXPORT absl::Status BadUpstreamResponse(std::string_view message);

// A failed translation of a whole 2xx answer (Dialect::DecodeResponse, a provider's
// TranslateResponse) as a client must see it: OK, the provider's own error carried in the
// answer (IsProviderError) and a status that already is a BadUpstreamResponse() are
// returned unchanged; any other failure (the dialects say kInvalidArgument with the field
// path) means the answer could not be read: BadUpstreamResponse("the upstream's answer
// could not be read: " + its message), its field path (ErrorParam) kept.
MODEENVOY_EXPORT absl::Status AsBadUpstreamResponse(absl::Status status);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_BAD_UPSTREAM_H_
