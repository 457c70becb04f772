// lib/responses_ingress/internal.h: the Responses component's parts shared by its files
// (private): the echoed request members, stored-response rendering, the state filter and
// the stored-response endpoints.
#ifndef MODEENVOY_LIB_RESPONSES_INGRESS_INTERNAL_H_
#define MODEENVOY_LIB_RESPONSES_INGRESS_INTERNAL_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "lib/core/json_reader.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy::responses_internal {

// Metadata keys of a stored response's record (ContextRecord::metadata). A record without
// kCompletionKey is not a stored response (a context session): the endpoints answer 404.
inline constexpr std::string_view kCompletionKey = "response.completion";  // unified JSON
inline constexpr std::string_view kEchoKey = "response.echo";              // JSON object
inline constexpr std::string_view kPreviousKey = "response.previous";      // id or absent
// How many entries of the record's last turn are the response's input (the rest of that
// turn is its output), as decimal text.
inline constexpr std::string_view kInputCountKey = "response.inputs";

// The request metadata key the state filter publishes the gateway's response id under.
inline constexpr std::string_view kResponseIdKey = "responses.id";

// The members of the request a response object repeats (instructions, metadata, tools,
// ..., previous_response_id, store), each with the value the API reports when the request
// leaves it out. `body` is the request body (a JSON object; anything else: all defaults).
core_internal::Json EchoOf(const core_internal::Json& body);

// Sets the echoed members on the response object `response` (a JSON object).
void PatchEcho(const core_internal::Json& echo, core_internal::Json* response);

// The response object of a stored response: `completion_json` (unified "chat.completion")
// rendered by the openai_responses dialect with `echo_json`'s members set.
// Errors: kDataLoss when either does not parse (a corrupt record).
absl::StatusOr<std::string> RenderStoredResponse(std::string_view completion_json,
                                                 std::string_view echo_json);

// The Responses items (input_items) of the unified messages `messages`: messages,
// function_call and function_call_output items as the openai_responses dialect writes them,
// each message's content as a list of typed parts, every item with an id
// ("<prefix>_<base>_in<i>") and status "completed" for messages.
absl::StatusOr<core_internal::Json> InputItems(const std::vector<Message>& messages,
                                               std::string_view response_id);

// The endpoint filter of POST /v1/responses (EndpointSpec::filter): issues the gateway's
// response id, loads `previous_response_id`'s conversation, stores the answer when `store`.
std::shared_ptr<const FilterFactory> NewStateFilterFactory();

// GET /v1/responses/{id}, DELETE /v1/responses/{id}, GET /v1/responses/{id}/input_items.
absl::Status RegisterStoredResponseEndpoints(EndpointRegistry* endpoints);

}  // namespace modeenvoy::responses_internal

#endif  // MODEENVOY_LIB_RESPONSES_INGRESS_INTERNAL_H_
