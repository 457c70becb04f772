// lib/responses_ingress/internal.h: the Responses component's parts shared by its files
// (private): the echoed request members, stored-response rendering, the state filter and
// the stored-response endpoints.
#ifndef MODEENVOY_LIB_RESPONSES_INGRESS_INTERNAL_H_
#define MODEENVOY_LIB_RESPONSES_INGRESS_INTERNAL_H_

#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// The members of the request a response object repeats, each with the value (JSON text)
// the API reports when the request leaves it out.
inline constexpr std::pair<std::string_view, std::string_view> kEchoed[] = {
    {"instructions", "null"}, {"metadata", "{}"},          {"parallel_tool_calls", "true"},
    {"temperature", "null"},  {"tool_choice", "\"auto\""}, {"tools", "[]"},
    {"top_p", "null"},        {"previous_response_id", "null"}, {"store", "true"},
};
inline constexpr size_t kEchoedCount = sizeof(kEchoed) / sizeof(kEchoed[0]);

// One request's echo: the compact JSON text of each kEchoed member's value, in kEchoed's
// order. An empty text means "not echoed": the rendered object keeps its own value (a stored
// record whose echo lacks the member).
using Echo = std::array<std::string, kEchoedCount>;

// The echo of the request body `body` (one pull-reader pass; values keep the request's text,
// compacted): the request's value of each member, or its default when the request leaves it
// out or sends null. A body that is not a JSON object: all defaults.
// `body` is one the codec's ParseRequest accepted (valid JSON): the members not echoed (the
// input, most of the body) are passed over by their quotes and brackets, not checked again.
// Of text that is not valid JSON, what is captured is unspecified (nothing past `body` is
// read).
Echo EchoOf(std::string_view body);

// EchoOf(body) built from the top-level members of `body` as the codec's read of it passes
// them (Add(name, value text as sent) per member, in the body's order), so the echo costs
// no second pass over the body. Only for a body the codec accepted (valid JSON, no name
// twice). Thread-compatible.
class EchoCollector {
 public:
  void Add(std::string_view name, std::string_view text);
  // The echo; the collector is then spent.
  Echo Take();

 private:
  Echo read_;  // the members seen (compact text), else empty
};

// What the state filter needs of a request: `store` (true unless the request says false),
// `previous_response_id` (the decoded string; absent when the request leaves it out or sends
// null) and whether `instructions` is a non-empty string (the dialect then put its system
// message first). Read from the request's echo (EchoOf), which holds these members' texts:
// no second parse of the body. The codec checked their types (store a boolean,
// previous_response_id a string), so other texts read as absent.
struct StateMembers {
  bool store = true;
  std::optional<std::string> previous_response_id;
  bool instructions = false;
};
StateMembers StateMembersOf(const Echo& echo);

// `echo` as the JSON object text a stored record keeps (kEchoKey): its non-empty members in
// kEchoed's order.
std::string EchoJson(const Echo& echo);

// Reads EchoJson's text back (a JSON object; members it lacks are left empty, other members
// ignored). Errors: kDataLoss when it is not a JSON object (a corrupt record).
absl::StatusOr<Echo> EchoFromJson(std::string_view json);

// Sets the echo's members on `*data`, compact JSON the dialect rendered: a response object,
// or (`in_event`) an event whose "response" member, when an object, is one. Members are
// replaced in place or appended after the object's own; everything else is copied byte for
// byte (one pull-reader pass, no DOM). Errors: kInternal when `*data` is not a JSON object
// (`*data` is then unchanged).
absl::Status PatchEcho(const Echo& echo, bool in_event, std::string* data);

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
