// lib/responses_ingress/request_fields.h: the Responses request members that are OpenAI-only
// hints or the client's bookkeeping and have no counterpart in the unified request
// (docs/providers.md, "OpenAI Responses API as the client's dialect").
//
// The "openai_responses" dialect keeps every member it does not map in ChatRequest::extra,
// which a provider's request then carries (so a member no API has still reaches the
// provider, which refuses it). These functions take the Responses API's own such members
// out: validated, then dropped when no provider needs them, or kept for a Responses
// provider only.
#ifndef MODEENVOY_LIB_RESPONSES_INGRESS_REQUEST_FIELDS_H_
#define MODEENVOY_LIB_RESPONSES_INGRESS_REQUEST_FIELDS_H_

#include <string_view>

#include "absl/status/status.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::responses_ingress_internal {

// Validates and removes from `chat->extra` the members `include` (values of the API's
// ResponseIncludable), `client_metadata` (an object: Codex's), `stream_options`
// (include_obfuscation), `prompt_cache_retention` ("in_memory", "24h"), `background`
// (false; true is refused: the gateway answers within the request) and `truncation`
// ("disabled"; "auto" stays in `extra` for CheckResponsesOnlyFields). Errors: a 400
// kInvalidArgument naming the member (e.g. "include[1]").
absl::Status TakeResponsesOnlyFields(ChatRequest* chat);

// Whether `chat` (after TakeResponsesOnlyFields) may go to a provider of type
// `provider_type`: `truncation: "auto"` (the provider drops the oldest input when it does
// not fit) only to an "openai_responses" provider; else a 400 naming `truncation`.
absl::Status CheckResponsesOnlyFields(const ChatRequest& chat, std::string_view provider_type);

}  // namespace modeenvoy::responses_ingress_internal

#endif  // MODEENVOY_LIB_RESPONSES_INGRESS_REQUEST_FIELDS_H_
