// include/modeenvoy/protocol/chat.h: the unified chat model. OpenAI Chat Completions
// (POST /v1/chat/completions) is the canonical form; translators to other providers map
// to and from these structs.
//   absl::StatusOr<modeenvoy::ChatRequest> req = modeenvoy::ParseChatRequest(body);
//   if (!req.ok()) return req.status();   // "messages[1].content[0].type: unknown ..."
//   req->temperature = 0.2;
//   for (const modeenvoy::Message& m : req->messages) Inspect(m);
//   std::string upstream_body = modeenvoy::SerializeChatRequest(*req);
//
//   absl::StatusOr<modeenvoy::ChatCompletionChunk> chunk =
//       modeenvoy::ParseChatCompletionChunk(sse_event.data);
//
// Model conventions, for every struct below:
//  - Field names are the wire names. std::optional means the field may be absent; a JSON
//    null is read as absent. A std::vector that is empty is not written (an empty array on
//    the wire therefore reads back as absent).
//  - Members documented as "raw JSON" hold the compact JSON text of a value whose inner
//    structure this layer does not interpret (tool parameter schemas, response_format,
//    logit_bias, ...). Compact means insignificant whitespace is removed; strings and
//    numbers keep their exact bytes. Serialization writes the text back unchanged.
//  - `extra` keeps, in input order, every member of that object this model does not know:
//    (field name, raw JSON value). Serialization writes them after the known members, so
//    an OpenAI-compatible upstream receives them. No name in `extra` may equal a modeled
//    field name of the same object (ValidateChatRequest checks), except in the two
//    response-side cases documented at ContentPartType::kOther and ChatDelta::content.
//  - Strings are UTF-8. Parsing rejects invalid UTF-8, duplicate member names (at the
//    levels modeled here), numbers beyond the double range and nesting deeper than
//    kMaxJsonDepth; it skips a leading byte order mark. An unpaired UTF-16 surrogate
//    escape in a modeled string decodes to U+FFFD. Integer members accept an integral
//    number written with a fraction or exponent (2.0, 1e3).
//  - Every parse error is kInvalidArgument carrying the field path (see error.h), e.g.
//    `messages[2].content[0].type: unknown content part type "foo"`,
//    `max_tokens: expected integer, got string`, `body: invalid JSON at byte 17: ...`.
//  - Round trip: Parse(Serialize(x)) == x for every x that Parse returned.
// Thread safety: all functions are pure and thread-safe; structs are plain values.
#ifndef MODEENVOY_PROTOCOL_CHAT_H_
#define MODEENVOY_PROTOCOL_CHAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// Maximum nesting of arrays and objects accepted in any parsed document.
inline constexpr int kMaxJsonDepth = 128;

// Unknown members of one JSON object: (name, raw JSON value), in input order.
using ExtraFields = std::vector<std::pair<std::string, std::string>>;

// ----------------------------------------------------------------------------------------
// Request side.

enum class Role { kSystem, kDeveloper, kUser, kAssistant, kTool, kFunction };

// "system", "developer", "user", "assistant", "tool", "function".
MODEENVOY_EXPORT std::string_view RoleName(Role role);
// The inverse of RoleName(); nullopt for any other string.
MODEENVOY_EXPORT std::optional<Role> RoleFromName(std::string_view name);

struct ImageUrl {
  std::string url;                    // https URL or data: URL. Required.
  std::optional<std::string> detail;  // "auto", "low" or "high".
  ExtraFields extra;
  bool operator==(const ImageUrl&) const = default;
};

struct InputAudio {
  std::string data;    // base64 audio. Required.
  std::string format;  // "wav" or "mp3". Required.
  ExtraFields extra;
  bool operator==(const InputAudio&) const = default;
};

struct FileInput {
  std::optional<std::string> file_data;  // base64 file content.
  std::optional<std::string> file_id;    // id of an uploaded file.
  std::optional<std::string> filename;
  ExtraFields extra;
  bool operator==(const FileInput&) const = default;
};

// kOther stands for a part type this model does not know. Requests reject such parts;
// responses keep them (e.g. Mistral's "thinking" parts) with every member, "type"
// included, in ContentPart::extra.
enum class ContentPartType { kText, kImageUrl, kInputAudio, kFile, kRefusal, kOther };

// "text", "image_url", "input_audio", "file", "refusal"; "" for kOther.
MODEENVOY_EXPORT std::string_view ContentPartTypeName(ContentPartType type);

// One element of an array-valued message content. Exactly the member matching `type`
// is meaningful: `text` (kText), `image_url`, `input_audio`, `file`, `refusal`; only it
// is serialized. Payload members of other types sent along are kept in `extra`. An
// unknown "type" is a parse error in requests and kOther in responses.
struct ContentPart {
  ContentPartType type = ContentPartType::kText;
  std::string text;                       // kText. Required.
  std::optional<ImageUrl> image_url;      // kImageUrl. Required.
  std::optional<InputAudio> input_audio;  // kInputAudio. Required.
  std::optional<FileInput> file;          // kFile. Required.
  std::string refusal;                    // kRefusal. Required.
  ExtraFields extra;                      // e.g. "cache_control" of some providers
  bool operator==(const ContentPart&) const = default;
};

// Message content: a plain string, or an array of parts.
using MessageContent = std::variant<std::string, std::vector<ContentPart>>;

struct FunctionCall {
  std::string name;
  std::string arguments;  // the model's arguments: a string holding JSON, kept verbatim
  ExtraFields extra;
  bool operator==(const FunctionCall&) const = default;
};

// A tool call made by the assistant.
struct ToolCall {
  std::string id;
  std::string type = "function";        // "function" or, for custom tools, "custom"
  std::optional<FunctionCall> function;  // present for type "function"
  ExtraFields extra;                     // e.g. "custom": {"name","input"}
  bool operator==(const ToolCall&) const = default;
};

struct Message {
  Role role = Role::kUser;
  std::optional<MessageContent> content;
  std::optional<std::string> name;
  std::vector<ToolCall> tool_calls;         // assistant only
  std::optional<std::string> tool_call_id;  // tool only; required there
  std::optional<std::string> refusal;       // assistant only
  ExtraFields extra;  // e.g. "audio", "function_call", "annotations", "reasoning_content"
  bool operator==(const Message&) const = default;
};

// Returns a message with `role` and, when `text` is given, that string as content.
inline Message MakeMessage(Role role, std::optional<std::string> text = std::nullopt) {
  Message message;
  message.role = role;
  if (text.has_value()) message.content = std::move(*text);
  return message;
}

struct FunctionDefinition {
  std::string name;  // Required.
  std::optional<std::string> description;
  std::optional<std::string> parameters;  // raw JSON (a JSON Schema object)
  std::optional<bool> strict;
  ExtraFields extra;
  bool operator==(const FunctionDefinition&) const = default;
};

struct Tool {
  std::string type = "function";              // "function" or "custom"
  std::optional<FunctionDefinition> function; // required for type "function"
  ExtraFields extra;                          // e.g. "custom": {...}
  bool operator==(const Tool&) const = default;
};

// "tool_choice": either a string mode or an object, kept raw.
struct ToolChoice {
  // "none", "auto" or "required" when the wire value is a string; empty for an object.
  std::string mode;
  // Raw JSON of an object value, e.g. {"type":"function","function":{"name":"f"}};
  // empty when `mode` is set.
  std::string object;
  bool operator==(const ToolChoice&) const = default;
};

struct StreamOptions {
  std::optional<bool> include_usage;
  std::optional<bool> include_obfuscation;
  ExtraFields extra;
  bool operator==(const StreamOptions&) const = default;
};

// "stop": one sequence or an array of them; the form read is the form written.
using StopSequences = std::variant<std::string, std::vector<std::string>>;

struct ChatRequest {
  std::string model;
  std::vector<Message> messages;
  std::optional<bool> stream;
  std::optional<StreamOptions> stream_options;
  std::optional<double> temperature;        // 0..2
  std::optional<double> top_p;              // 0..1
  std::optional<int64_t> n;                 // >= 1
  std::optional<int64_t> max_tokens;        // >= 1 (legacy)
  std::optional<int64_t> max_completion_tokens;  // >= 1
  std::optional<StopSequences> stop;
  std::optional<double> presence_penalty;   // -2..2
  std::optional<double> frequency_penalty;  // -2..2
  std::optional<std::string> logit_bias;    // raw JSON object: token id -> bias
  std::optional<bool> logprobs;
  std::optional<int64_t> top_logprobs;      // 0..20, needs logprobs=true
  std::optional<int64_t> seed;
  std::optional<std::string> user;
  std::optional<std::string> response_format;  // raw JSON object
  std::vector<Tool> tools;
  std::optional<ToolChoice> tool_choice;
  std::optional<bool> parallel_tool_calls;
  std::optional<std::string> reasoning_effort;  // "minimal", "low", "medium", "high", ...
  std::optional<std::string> verbosity;         // "low", "medium", "high"
  std::optional<std::string> service_tier;      // "auto", "default", "flex", ...
  std::optional<bool> store;
  std::optional<std::string> metadata;          // raw JSON object
  std::optional<std::vector<std::string>> modalities;  // ["text"], ["text","audio"]
  std::optional<std::string> audio;             // raw JSON object {voice, format}
  std::optional<std::string> prediction;        // raw JSON object
  std::optional<std::string> web_search_options;  // raw JSON object
  std::optional<std::string> prompt_cache_key;
  std::optional<std::string> safety_identifier;
  std::optional<std::string> functions;         // raw JSON array (deprecated by tools)
  std::optional<std::string> function_call;     // raw JSON (deprecated by tool_choice)
  ExtraFields extra;  // anything else, passed through upstream
  bool operator==(const ChatRequest&) const = default;
};

struct ChatParseOptions {
  // Run ValidateChatRequest() after decoding. Turn off to accept e.g. a request without
  // "model" whose route supplies one; syntax and type errors are reported either way.
  bool validate = true;
};

// Parses a Chat Completions request body and, unless options.validate is false, checks it
// with ValidateChatRequest(). `json` is only read during the call.
// Errors: kInvalidArgument with the field path (see the conventions above).
MODEENVOY_EXPORT absl::StatusOr<ChatRequest> ParseChatRequest(
    std::string_view json, const ChatParseOptions& options = {});

// Semantic checks, each failing with kInvalidArgument and a field path:
//  - model non-empty; messages non-empty;
//  - per message: system/developer/user/tool need content; assistant needs content,
//    tool_calls, or a "function_call"/"audio" extra; tool needs a non-empty tool_call_id;
//    function needs a name; tool_calls only on assistant; tool_call_id only on tool;
//    parts allowed by role (system, developer, tool: text; user: text, image_url,
//    input_audio, file; assistant: text, refusal); image_url.url non-empty, detail one of
//    auto/low/high; input_audio data non-empty, format wav/mp3; file has file_data or
//    file_id; tool calls have an id and, for type "function", a function with a name;
//  - temperature 0..2, top_p 0..1, presence/frequency_penalty -2..2, n >= 1,
//    max_tokens and max_completion_tokens >= 1, top_logprobs 0..20 and only with
//    logprobs true; stream_options only with stream true; stop sequences non-empty;
//  - tools: type non-empty; type "function" needs a function with a non-empty name;
//    tool_choice mode one of none/auto/required, or an object; tool_choice other than
//    "none" and parallel_tool_calls need tools (or the deprecated "functions");
//  - structure a hand-built struct could break: raw JSON members and `extra` values are
//    valid JSON (objects where the wire needs objects), no `extra` name repeats or equals
//    a modeled field, content part members match their type.
MODEENVOY_EXPORT absl::Status ValidateChatRequest(const ChatRequest& request);

// Serializes `request` as compact JSON. Known members come first in a fixed order, then
// `extra` in order. Does not validate: an invalid struct gives output OpenAI would
// reject, and raw JSON members are written unchanged (REQUIRES: valid JSON for a valid
// result). Non-finite doubles are written as null. Invalid UTF-8 becomes U+FFFD.
MODEENVOY_EXPORT std::string SerializeChatRequest(const ChatRequest& request);

// ----------------------------------------------------------------------------------------
// Single messages, for documents other than a request body that embed them (a stored
// conversation: context/record.h). Added with the context component so that it reads and
// writes messages with this codec instead of a second one.

// Appends `message` to *out as compact JSON, exactly as SerializeChatRequest writes each
// element of "messages" (content omitted when absent). Same REQUIRES as SerializeChatRequest.
MODEENVOY_EXPORT void AppendMessageJson(std::string* out, const Message& message);

// Parses one message object. Members are read as in a request, except that a content part
// of unknown type is kept as ContentPartType::kOther (as in a response: a stored assistant
// reply may carry one); "role" is required. Only syntax and types are checked (as with
// ChatParseOptions::validate = false). `path` prefixes the field paths of errors, e.g.
// "history[2].message" gives "history[2].message.content[0].type: expected string, got
// number". Round trip: ParseMessage(AppendMessageJson(m)) == m for every parsed m.
// Errors: kInvalidArgument with the field path; syntax errors as ParseChatRequest.
MODEENVOY_EXPORT absl::StatusOr<Message> ParseMessage(std::string_view json,
                                                      std::string_view path = "message");

// Parses the message object at the start of `json` (after any whitespace) as ParseMessage
// does, reads nothing past its closing brace, and sets *consumed to the bytes read: for a
// document that embeds messages among other values and reads them in its own single pass
// (context/record.h). Byte offsets of syntax errors count from the start of `json`.
// REQUIRES: consumed != nullptr. Errors: as ParseMessage, but text after the object is
// not looked at.
MODEENVOY_EXPORT absl::StatusOr<Message> ParseMessagePrefix(std::string_view json,
                                                            std::string_view path,
                                                            size_t* consumed);

// ----------------------------------------------------------------------------------------
// Response side.

struct PromptTokensDetails {
  std::optional<int64_t> cached_tokens;
  std::optional<int64_t> audio_tokens;
  ExtraFields extra;
  bool operator==(const PromptTokensDetails&) const = default;
};

struct CompletionTokensDetails {
  std::optional<int64_t> reasoning_tokens;
  std::optional<int64_t> audio_tokens;
  std::optional<int64_t> accepted_prediction_tokens;
  std::optional<int64_t> rejected_prediction_tokens;
  ExtraFields extra;
  bool operator==(const CompletionTokensDetails&) const = default;
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  int64_t total_tokens = 0;
  std::optional<PromptTokensDetails> prompt_tokens_details;
  std::optional<CompletionTokensDetails> completion_tokens_details;
  ExtraFields extra;
  bool operator==(const Usage&) const = default;
};

struct ChatChoice {
  int64_t index = 0;
  Message message = MakeMessage(Role::kAssistant);  // content written as null when absent
  // "stop", "length", "tool_calls", "content_filter", "function_call"; written as null
  // when absent.
  std::optional<std::string> finish_reason;
  std::optional<std::string> logprobs;  // raw JSON; written as null when absent
  ExtraFields extra;                    // e.g. Azure "content_filter_results"
  bool operator==(const ChatChoice&) const = default;
};

// A non-streaming response (object "chat.completion").
struct ChatCompletion {
  std::string id;
  std::string object = "chat.completion";
  int64_t created = 0;  // Unix seconds
  std::string model;
  std::optional<std::string> system_fingerprint;
  std::optional<std::string> service_tier;
  std::vector<ChatChoice> choices;  // always written, possibly as []
  std::optional<Usage> usage;
  ExtraFields extra;
  bool operator==(const ChatCompletion&) const = default;
};

// Incremental tool call in a stream: later chunks with the same index append to the
// arguments of the call started by the first one (which carries id, type and name).
struct FunctionCallDelta {
  std::optional<std::string> name;
  std::optional<std::string> arguments;
  ExtraFields extra;
  bool operator==(const FunctionCallDelta&) const = default;
};

struct ToolCallDelta {
  int64_t index = 0;
  std::optional<std::string> id;
  std::optional<std::string> type;
  std::optional<FunctionCallDelta> function;
  ExtraFields extra;
  bool operator==(const ToolCallDelta&) const = default;
};

struct ChatDelta {
  std::optional<Role> role;
  // Text content. A non-string content (Mistral streams arrays of parts) is kept
  // verbatim in `extra` under "content" instead, the one case where `extra` holds a
  // modeled name.
  std::optional<std::string> content;
  std::optional<std::string> refusal;
  std::vector<ToolCallDelta> tool_calls;
  ExtraFields extra;  // e.g. "reasoning_content", "function_call"
  bool operator==(const ChatDelta&) const = default;
};

struct ChunkChoice {
  int64_t index = 0;
  ChatDelta delta;
  std::optional<std::string> finish_reason;  // written as null when absent
  std::optional<std::string> logprobs;       // raw JSON; written as null when absent
  ExtraFields extra;
  bool operator==(const ChunkChoice&) const = default;
};

// One streamed event (object "chat.completion.chunk"). With
// stream_options.include_usage the last chunk has no choices and carries `usage`.
struct ChatCompletionChunk {
  std::string id;
  std::string object = "chat.completion.chunk";
  int64_t created = 0;
  std::string model;
  std::optional<std::string> system_fingerprint;
  std::optional<std::string> service_tier;
  std::vector<ChunkChoice> choices;  // always written, possibly as []
  std::optional<Usage> usage;        // absent or null on the wire: nullopt
  ExtraFields extra;                 // e.g. "obfuscation"
  bool operator==(const ChatCompletionChunk&) const = default;
};

// Parse a response body / one stream event's data. Only syntax and types are checked
// (upstreams vary): a missing member keeps the struct's default (a message without
// "role" is an assistant message). Errors: kInvalidArgument with the field path.
MODEENVOY_EXPORT absl::StatusOr<ChatCompletion> ParseChatCompletion(std::string_view json);
MODEENVOY_EXPORT absl::StatusOr<ChatCompletionChunk> ParseChatCompletionChunk(
    std::string_view json);

// Compact JSON; same rules as SerializeChatRequest.
MODEENVOY_EXPORT std::string SerializeChatCompletion(const ChatCompletion& completion);
MODEENVOY_EXPORT std::string SerializeChatCompletionChunk(const ChatCompletionChunk& chunk);

// One usage object, as SerializeChatCompletion writes "usage" / as ParseChatCompletion
// reads it (for documents that store usage: context/record.h). `path` prefixes the field
// paths of errors. Errors: kInvalidArgument with the field path.
MODEENVOY_EXPORT void AppendUsageJson(std::string* out, const Usage& usage);
MODEENVOY_EXPORT absl::StatusOr<Usage> ParseUsage(std::string_view json,
                                                  std::string_view path = "usage");
// The usage object at the start of `json`, as ParseMessagePrefix reads a message.
MODEENVOY_EXPORT absl::StatusOr<Usage> ParseUsagePrefix(std::string_view json,
                                                        std::string_view path,
                                                        size_t* consumed);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_CHAT_H_
