// lib/protocol/dialects/openai_compat.h: the pieces the OpenAI-compatible dialects share
// ("openai", "azure_openai"): the request body with include_usage injected, and the stream
// decoder that irons out the family's stream quirks (private).
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_OPENAI_COMPAT_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_OPENAI_COMPAT_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"

namespace modeenvoy::protocol_internal {

// The Chat Completions body for `chat`: the model replaced by `model` unless empty, and for a
// streamed call with `stream_usage` whose caller reads usage (`usage_read`,
// DialectCall::stream_usage), stream_options.include_usage set to true (so the server
// reports usage; the gateway strips it again for a client that did not ask). Without
// `stream_usage` (a server that rejects stream_options) the body has no stream_options at
// all, the client's included; without `usage_read` the client's stream_options are sent as
// they are.
// An Anthropic-shaped "thinking" extra (thinking.h) is not sent: it becomes reasoning_effort
// (ThinkingEffort) unless the request has one, which wins.
// Errors: kInvalidArgument naming thinking.* for a malformed thinking.
absl::StatusOr<std::string> OpenAiRequestBody(const ChatRequest& chat, std::string_view model,
                                              bool stream, bool stream_usage, bool usage_read);

// The stream decoder of the OpenAI-compatible family. Frames are already unified chunks;
// clean ones pass through untouched (a byte scan decides), the others are parsed and fixed:
//  - `usage` wherever it comes (every chunk with vLLM's continuous usage stats, the finish
//    chunk of DeepSeek, Mistral and Groq, OpenAI's usage-only chunk): removed from content
//    chunks, the last one kept and sent as one usage-only chunk right before "[DONE]";
//    Groq's x_groq.usage stands in when there is no top-level usage;
//  - tool-call deltas: a dense index per choice assigned by id (a new id is a new call) and
//    else by the provider's index or order (servers that send no index); id, type and name
//    sent only on a call's first delta (servers that repeat them, or send name ""); type
//    "function" added to a first delta without it;
//  - finish_reason "" read as null; a second finish_reason for the same choice dropped;
//  - a chunk with empty `choices` and no usage (Azure's prompt_filter_results) passes with
//    its members, written again with "object":"chat.completion.chunk" (the model router
//    sends "") and the id, created and model every client's chunk type requires;
//  - an error event ({"error":{...}} or vLLM's {"object":"error",...}) ends the stream with
//    its status (StatusFromUpstreamError);
//  - a "service_tier" OpenAI does not have and a delta "content" array of text and
//    "thinking" parts, fixed per chunk as DecodeOpenAiResponse fixes them in a whole body
//    (no buffering: each delta's parts become its own content and reasoning_content).
// A stream that ends without "[DONE]" gets it (after the held usage) from Finish().
std::unique_ptr<StreamTranslator> NewOpenAiStreamDecoder();

// Reads a whole 2xx body of the family (the dialects' DecodeResponse), and:
//  - an answer (an object with a "choices" array) passes byte for byte, unless it has one of
//    the quirks OpenAI's clients cannot read, which are fixed (the body then re-serialized):
//    a "service_tier" OpenAI does not have (Groq's "on_demand") moves to the member named
//    for its server ("x_groq_service_tier"; "x_service_tier" for a tier the table does not
//    name), and a message "content" of text and "thinking" parts (Mistral's reasoning models)
//    becomes the content string and "reasoning_content" (content of other parts stays);
//  - an {"error": ...} object without "choices" (some compatible servers answer 200 with
//    one) is the provider's error (StatusFromUpstreamError);
//  - anything else (no "choices" array, not a JSON object, not JSON) is the upstream's
//    failure: BadUpstreamResponse (HTTP 502, error code "bad_upstream_response"), the
//    message naming the field or the JSON error. So is an answer with a quirk that does not
//    parse.
// Most answers are decided by one quote scan (no parse): a top-level "choices" array and no
// "error" key, "content" array, foreign "service_tier" or \u escape. Such a body is not
// otherwise checked to be valid JSON (the client reads it as the upstream sent it).
absl::Status DecodeOpenAiResponse(std::string* body);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_OPENAI_COMPAT_H_
