// lib/protocol/dialects/bedrock.cc: the "bedrock" dialect: Amazon Bedrock Runtime's Converse
// API (POST /model/{modelId}/converse, and /converse-stream answered as binary AWS
// EventStream). docs/providers.md "## bedrock" has the field-by-field mapping; the choices
// that are not obvious are commented where they are made.
//
// Egress (EncodeRequest, DecodeResponse, the stream decoder) writes JSON directly and reads
// with the pull parser (lib/protocol/json.h): they are on the per-request hot path.
// Ingress (DecodeRequest, EncodeResponse, the stream encoder) uses nlohmann.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/embeddings.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

using core_internal::ToAbsl;

// response_format has no Converse counterpart that every model honours, so it becomes a
// tool the model is made to call (the approach the AI SDK's Bedrock provider takes; see
// vercel's "json-tool" recordings). Answers decode this tool's input back into message
// text, so a client sees JSON content, as OpenAI returns it. The name is reserved: a
// client tool with it is refused.
constexpr std::string_view kJsonToolName = "modeenvoy_json_response";

// Converse request members other than messages/system/inferenceConfig/toolConfig that a
// unified request may carry in `extra` (passed through at the top level). Any other
// unknown member goes into additionalModelRequestFields (model-specific: top_k, thinking).
constexpr std::string_view kConverseTopLevel[] = {
    "guardrailConfig",    "performanceConfig", "promptVariables",
    "additionalModelResponseFieldPaths",       "requestMetadata", "serviceTier",
    "outputConfig"};

bool IsConverseTopLevel(std::string_view name) {
  return std::find(std::begin(kConverseTopLevel), std::end(kConverseTopLevel), name) !=
         std::end(kConverseTopLevel);
}

std::string Path(std::string_view prefix, size_t index) {
  return absl::StrCat(ToAbsl(prefix), "[", index, "]");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> DecodePathSegment(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

// "png" for "image/png", ... ; nullopt for a type Converse does not take.
std::optional<std::string_view> ImageFormat(std::string_view mime) {
  if (mime == "image/png") return "png";
  if (mime == "image/jpeg" || mime == "image/jpg") return "jpeg";
  if (mime == "image/gif") return "gif";
  if (mime == "image/webp") return "webp";
  return std::nullopt;
}

std::optional<std::string_view> DocumentFormat(std::string_view mime) {
  if (mime == "application/pdf") return "pdf";
  if (mime == "text/csv") return "csv";
  if (mime == "application/msword") return "doc";
  if (mime == "application/vnd.openxmlformats-officedocument.wordprocessingml.document") {
    return "docx";
  }
  if (mime == "application/vnd.ms-excel") return "xls";
  if (mime == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet") {
    return "xlsx";
  }
  if (mime == "text/html") return "html";
  if (mime == "text/plain") return "txt";
  if (mime == "text/markdown") return "md";
  return std::nullopt;
}

// A base64 data: URL split into its media type and payload.
struct DataUrl {
  std::string_view mime;
  std::string_view base64;
};
std::optional<DataUrl> ParseDataUrl(std::string_view url) {
  constexpr std::string_view kData = "data:";
  if (url.substr(0, kData.size()) != kData) return std::nullopt;
  size_t comma = url.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  std::string_view meta = url.substr(kData.size(), comma - kData.size());
  constexpr std::string_view kBase64 = ";base64";
  if (meta.size() < kBase64.size() || meta.substr(meta.size() - kBase64.size()) != kBase64) {
    return std::nullopt;
  }
  meta.remove_suffix(kBase64.size());
  return DataUrl{meta.substr(0, meta.find(';')), url.substr(comma + 1)};
}

// Converse document names allow letters, digits, single spaces, '-', '(', ')', '[', ']'.
std::string DocumentName(std::string_view filename, size_t index) {
  std::string_view stem = filename.substr(0, filename.rfind('.'));
  std::string out;
  for (char c : stem) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '(' || c == ')' || c == '[' || c == ']';
    if (ok) {
      out.push_back(c);
    } else if (!out.empty() && out.back() != ' ') {
      out.push_back(' ');
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (out.empty()) out = absl::StrCat("document-", index);
  return out;
}

// ---------------------------------------------------------------------------------------
// Egress: the request.

// Appends the blocks of one turn, opening and closing turns as the role changes, so that
// consecutive tool results and a following user message share one user turn (Converse
// requires user and assistant turns to alternate).
class TurnWriter {
 public:
  explicit TurnWriter(std::string* out) : out_(out) {}
  // Starts a block in a turn of `role` ("user" or "assistant").
  void Block(std::string_view role) {
    if (role_ != role) {
      if (!role_.empty()) out_->append("]}");
      if (turns_++ > 0) out_->push_back(',');
      out_->append("{\"role\":\"").append(role).append("\",\"content\":[");
      role_ = role;
      first_block_ = true;
    }
    if (!first_block_) out_->push_back(',');
    first_block_ = false;
  }
  void Close() {
    if (!role_.empty()) out_->append("]}");
    role_ = {};
  }
  std::string* out() const { return out_; }

 private:
  std::string* out_;
  std::string_view role_;
  size_t turns_ = 0;
  bool first_block_ = true;
};

void AppendCachePoint(TurnWriter& turns, std::string_view role) {
  turns.Block(role);
  turns.out()->append(R"({"cachePoint":{"type":"default"}})");
}

bool HasExtra(const ExtraFields& extra, std::string_view name) {
  for (const auto& [key, value] : extra) {
    if (key == name) return true;
  }
  return false;
}

const std::string* FindExtra(const ExtraFields& extra, std::string_view name) {
  for (const auto& [key, value] : extra) {
    if (key == name) return &value;
  }
  return nullptr;
}

// A raw JSON string value's content, or nullopt when `raw` is not a JSON string.
std::optional<std::string> RawString(const std::string& raw) {
  JsonReader reader(raw, kMaxJsonDepth);
  std::string out;
  if (!reader.ReadString(&out) || !reader.ExpectEnd()) return std::nullopt;
  return out;
}

absl::Status AppendUserPart(const ContentPart& part, const std::string& path, size_t index,
                            TurnWriter& turns) {
  std::string* out = turns.out();
  switch (part.type) {
    case ContentPartType::kText:
      if (part.text.empty()) return absl::OkStatus();  // Converse refuses blank text blocks
      turns.Block("user");
      out->append("{\"text\":");
      AppendJsonString(out, part.text);
      out->push_back('}');
      break;
    case ContentPartType::kImageUrl: {
      const std::string& url = part.image_url->url;
      std::optional<DataUrl> data = ParseDataUrl(url);
      if (!data.has_value()) {
        return InvalidFieldError(
            path + ".image_url.url",
            "bedrock takes images as bytes: send a base64 data: URL (the gateway does not "
            "fetch image URLs)");
      }
      std::optional<std::string_view> format = ImageFormat(data->mime);
      if (!format.has_value()) {
        return InvalidFieldError(
            path + ".image_url.url",
            absl::StrFormat("image type \"%s\" not supported by bedrock (png, jpeg, gif, webp)",
                            data->mime));
      }
      turns.Block("user");
      out->append("{\"image\":{\"format\":\"").append(*format).append(
          "\",\"source\":{\"bytes\":");
      AppendJsonString(out, data->base64);
      out->append("}}}");
      break;
    }
    case ContentPartType::kFile: {
      const FileInput& file = *part.file;
      std::optional<DataUrl> data =
          file.file_data.has_value() ? ParseDataUrl(*file.file_data) : std::nullopt;
      if (!data.has_value()) {
        return InvalidFieldError(
            path + ".file",
            "bedrock takes documents as bytes: send file_data as a base64 data: URL (file ids "
            "are not supported)");
      }
      std::optional<std::string_view> format = DocumentFormat(data->mime);
      if (!format.has_value()) {
        return InvalidFieldError(
            path + ".file.file_data",
            absl::StrFormat("document type \"%s\" not supported by bedrock", data->mime));
      }
      turns.Block("user");
      out->append("{\"document\":{\"format\":\"").append(*format).append("\",\"name\":");
      AppendJsonString(out, DocumentName(file.filename.value_or(""), index));
      out->append(",\"source\":{\"bytes\":");
      AppendJsonString(out, data->base64);
      out->append("}}}");
      break;
    }
    case ContentPartType::kInputAudio:
      return InvalidFieldError(path + ".input_audio", "not supported by bedrock");
    default:
      return InvalidFieldError(path + ".type", "not supported by bedrock in user messages");
  }
  if (HasExtra(part.extra, "cache_control")) AppendCachePoint(turns, "user");
  return absl::OkStatus();
}

// The text of a system/developer/tool/assistant content: the string, or its text parts.
absl::Status ForEachText(const std::optional<MessageContent>& content, const std::string& path,
                         const std::function<void(const std::string&, bool cache)>& fn) {
  if (!content.has_value()) return absl::OkStatus();
  if (const auto* text = std::get_if<std::string>(&*content)) {
    fn(*text, false);
    return absl::OkStatus();
  }
  const auto& parts = std::get<std::vector<ContentPart>>(*content);
  for (size_t j = 0; j < parts.size(); ++j) {
    const ContentPart& part = parts[j];
    if (part.type == ContentPartType::kText) {
      fn(part.text, HasExtra(part.extra, "cache_control"));
    } else if (part.type == ContentPartType::kRefusal) {
      fn(part.refusal, false);
    } else {
      return InvalidFieldError(Path(path + ".content", j) + ".type",
                               "not supported by bedrock in this message");
    }
  }
  return absl::OkStatus();
}

absl::Status AppendAssistant(const Message& m, const std::string& path, TurnWriter& turns) {
  std::string* out = turns.out();
  // Reasoning first, as the model produced it (a signed block must be sent back unchanged
  // for Claude's extended thinking to continue across tool calls).
  const std::string* reasoning = FindExtra(m.extra, "reasoning_content");
  const std::string* signature = FindExtra(m.extra, "reasoning_signature");
  if (reasoning != nullptr || signature != nullptr) {
    std::optional<std::string> text = reasoning ? RawString(*reasoning) : std::string();
    std::optional<std::string> sig = signature ? RawString(*signature) : std::nullopt;
    if (!text.has_value() || (signature != nullptr && !sig.has_value())) {
      return InvalidFieldError(path + (reasoning && !text ? ".reasoning_content"
                                                          : ".reasoning_signature"),
                               "expected a string");
    }
    turns.Block("assistant");
    out->append("{\"reasoningContent\":{\"reasoningText\":{\"text\":");
    AppendJsonString(out, *text);
    if (sig.has_value()) {
      out->append(",\"signature\":");
      AppendJsonString(out, *sig);
    }
    out->append("}}}");
  }
  if (const std::string* redacted = FindExtra(m.extra, "redacted_reasoning")) {
    JsonReader reader(*redacted, kMaxJsonDepth);
    bool first = true, has = false;
    if (!reader.BeginArray()) {
      return InvalidFieldError(path + ".redacted_reasoning", "expected an array of strings");
    }
    while (reader.NextElement(&first, &has) && has) {
      std::string data;
      if (!reader.ReadString(&data)) {
        return InvalidFieldError(path + ".redacted_reasoning", "expected an array of strings");
      }
      turns.Block("assistant");
      out->append("{\"reasoningContent\":{\"redactedContent\":");
      AppendJsonString(out, data);
      out->append("}}");
    }
  }
  MODEENVOY_RETURN_IF_ERROR(ForEachText(m.content, path, [&](const std::string& text, bool cache) {
    if (text.empty()) return;
    turns.Block("assistant");
    out->append("{\"text\":");
    AppendJsonString(out, text);
    out->push_back('}');
    if (cache) AppendCachePoint(turns, "assistant");
  }));
  if (m.refusal.has_value() && !m.refusal->empty()) {
    turns.Block("assistant");
    out->append("{\"text\":");
    AppendJsonString(out, *m.refusal);
    out->push_back('}');
  }
  for (size_t k = 0; k < m.tool_calls.size(); ++k) {
    const ToolCall& call = m.tool_calls[k];
    const std::string call_path = Path(path + ".tool_calls", k);
    if (call.type != "function" || !call.function.has_value()) {
      return InvalidFieldError(call_path + ".type",
                               absl::StrFormat("\"%s\" tool calls are not supported by bedrock",
                                               call.type));
    }
    const std::string& args = call.function->arguments;
    JsonType type = JsonType::kObject;
    const bool empty = args.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!empty && (!IsValidJson(args, &type) || type != JsonType::kObject)) {
      return InvalidFieldError(call_path + ".function.arguments",
                               "bedrock needs a JSON object (toolUse.input)");
    }
    turns.Block("assistant");
    out->append("{\"toolUse\":{\"toolUseId\":");
    AppendJsonString(out, call.id);
    out->append(",\"name\":");
    AppendJsonString(out, call.function->name);
    out->append(",\"input\":");
    if (empty) {
      out->append("{}");
    } else {
      JsonReader reader(args, kMaxJsonDepth);
      reader.CaptureValue(out);  // compact
    }
    out->append("}}");
  }
  return absl::OkStatus();
}

absl::Status AppendToolResult(const Message& m, const std::string& path, TurnWriter& turns) {
  std::string* out = turns.out();
  turns.Block("user");
  out->append("{\"toolResult\":{\"toolUseId\":");
  AppendJsonString(out, m.tool_call_id.value_or(""));
  out->append(",\"content\":[");
  bool first = true;
  MODEENVOY_RETURN_IF_ERROR(ForEachText(m.content, path, [&](const std::string& text, bool) {
    if (!first) out->push_back(',');
    first = false;
    out->append("{\"text\":");
    AppendJsonString(out, text);
    out->push_back('}');
  }));
  if (first) out->append(R"({"text":""})");
  out->push_back(']');
  // A tool message may say how the call went: {"status": "error"} in its extra, or
  // Anthropic's tool_result "is_error": true.
  if (const std::string* status = FindExtra(m.extra, "status")) {
    out->append(",\"status\":").append(*status);
  } else if (const std::string* failed = FindExtra(m.extra, "is_error");
             failed != nullptr && *failed == "true") {
    out->append(",\"status\":\"error\"");
  }
  out->append("}}");
  return absl::OkStatus();
}

// The name in a tool_choice object {"type":"function","function":{"name":"f"}}.
std::optional<std::string> NamedToolChoice(const std::string& object) {
  JsonReader reader(object, kMaxJsonDepth);
  std::optional<std::string> name;
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return std::nullopt;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    if (key != "function") {
      reader.SkipValue();
      continue;
    }
    bool first2 = true, has2 = false;
    std::string_view key2;
    std::string scratch2;
    if (!reader.BeginObject()) return std::nullopt;
    while (reader.NextMember(&first2, &key2, &scratch2, &has2) && has2) {
      if (key2 == "name") {
        std::string value;
        if (!reader.ReadString(&value)) return std::nullopt;
        name = std::move(value);
      } else {
        reader.SkipValue();
      }
    }
  }
  if (!reader.status().ok()) return std::nullopt;
  return name;
}

// response_format reduced to the schema the forced tool takes; nullopt for "text".
absl::StatusOr<std::optional<std::pair<std::string, std::string>>> ResponseFormatTool(
    const std::string& raw) {
  JsonReader reader(raw, kMaxJsonDepth);
  std::string type, schema, description;
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return InvalidFieldError("response_format", "expected an object");
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    if (key == "type") {
      if (!reader.ReadString(&type)) break;
    } else if (key == "json_schema") {
      bool f2 = true, h2 = false;
      std::string_view k2;
      std::string s2;
      if (!reader.BeginObject()) break;
      while (reader.NextMember(&f2, &k2, &s2, &h2) && h2) {
        if (k2 == "schema") {
          reader.CaptureValue(&schema);
        } else if (k2 == "description") {
          reader.ReadString(&description);
        } else {
          reader.SkipValue();
        }
      }
    } else {
      reader.SkipValue();
    }
  }
  if (!reader.status().ok()) return InvalidFieldError("response_format", "invalid JSON");
  if (type == "text") return std::nullopt;
  if (type == "json_object") {
    return std::make_pair(std::string(R"({"type":"object"})"),
                          std::string("Respond with a JSON object."));
  }
  if (type == "json_schema") {
    if (schema.empty()) return InvalidFieldError("response_format.json_schema.schema", "required");
    if (description.empty()) description = "Respond with JSON matching this schema.";
    return std::make_pair(std::move(schema), std::move(description));
  }
  return InvalidFieldError("response_format.type",
                           absl::StrFormat("\"%s\" not supported by bedrock", type));
}

// Unified fields with no Converse counterpart: refused, never dropped.
// True when Converse's requestMetadata takes `text` as a value (AWS: 0..256 characters of
// [a-zA-Z0-9\s._:/=+$@-]; a key is the same, 1..256).
bool IsRequestMetadataValue(std::string_view text) {
  if (text.size() > 256) return false;
  for (const char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
                    std::string_view("._:/=+$@-").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// The requestMetadata entries of the unified user: {"user": user}; or, for a user that is a
// JSON object of strings (Claude Code 2.1's metadata.user_id: {"device_id":...,
// "account_uuid":...,"session_id":...}, which the map cannot hold whole), one entry
// "user.<member>" per member.
// Errors: kInvalidArgument naming `user` when neither fits Converse's map.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> UserMetadata(
    const std::string& user) {
  std::vector<std::pair<std::string, std::string>> entries;
  if (IsRequestMetadataValue(user)) {
    entries.emplace_back("user", user);
    return entries;
  }
  JsonReader reader(user, kMaxJsonDepth);
  JsonType type = JsonType::kNull;
  bool ok = reader.Peek(&type) && type == JsonType::kObject && reader.BeginObject();
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  while (ok && reader.NextMember(&first, &key, &scratch, &has) && has) {
    std::string name = "user." + std::string(key);
    std::string value;
    ok = reader.Peek(&type) && type == JsonType::kString && reader.ReadString(&value) &&
         IsRequestMetadataValue(name) && IsRequestMetadataValue(value);
    if (ok) entries.emplace_back(std::move(name), std::move(value));
  }
  if (!ok || !reader.status().ok() || !reader.ExpectEnd() || entries.empty()) {
    return InvalidFieldError(
        "user", "bedrock sends it in requestMetadata, whose values are up to 256 of a-z A-Z "
                "0-9, whitespace and ._:/=+$@- (or a JSON object of such strings, sent as "
                "user.<member> entries)");
  }
  return entries;
}

// requestMetadata: the client's own map (`map`: OpenAI's metadata or a requestMetadata
// member; null: none) with the unified user's entries (UserMetadata) added, but for a key
// the map has already, whose value wins.
absl::Status AppendRequestMetadata(const std::string* map, std::string_view map_path,
                                   const std::optional<std::string>& user, std::string* body) {
  std::vector<std::pair<std::string, std::string>> entries;
  if (user.has_value()) {
    MODEENVOY_ASSIGN_OR_RETURN(entries, UserMetadata(*user));
  }
  size_t members = 0;
  std::string_view text = "{}";
  if (map != nullptr) {
    JsonReader reader(*map, kMaxJsonDepth);
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    if (!reader.BeginObject()) return InvalidFieldError(map_path, "must be an object");
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      ++members;
      std::erase_if(entries, [&](const auto& entry) { return entry.first == key; });
      if (!reader.SkipValue()) break;
    }
    if (!reader.status().ok() || !reader.ExpectEnd()) {
      return InvalidFieldError(map_path, "must be an object");
    }
    text = *map;
    while (!text.empty() && text.back() != '}') text.remove_suffix(1);
  }
  if (entries.empty()) {
    body->append(map != nullptr ? std::string_view(*map) : text);
    return absl::OkStatus();
  }
  text.remove_suffix(1);  // the closing brace
  body->append(text);
  for (const auto& [key, value] : entries) {
    if (members++ > 0) body->push_back(',');
    AppendJsonString(body, key);
    body->push_back(':');
    AppendJsonString(body, value);
  }
  body->push_back('}');
  return absl::OkStatus();
}

absl::Status RejectInexpressible(const ChatRequest& chat) {
  auto reject = [](std::string_view field, std::string_view why = "not supported by bedrock") {
    return InvalidFieldError(field, why);
  };
  if (chat.n.has_value() && *chat.n != 1) {
    return reject("n", "bedrock returns one choice (Converse has no n)");
  }
  if (chat.presence_penalty.has_value()) return reject("presence_penalty");
  if (chat.frequency_penalty.has_value()) return reject("frequency_penalty");
  if (chat.logit_bias.has_value()) return reject("logit_bias");
  if (chat.logprobs.value_or(false)) return reject("logprobs");
  if (chat.top_logprobs.has_value()) return reject("top_logprobs");
  if (chat.seed.has_value()) return reject("seed");
  if (chat.safety_identifier.has_value()) return reject("safety_identifier");
  if (chat.prompt_cache_key.has_value()) {
    return reject("prompt_cache_key",
                  "not supported by bedrock (mark parts with cache_control for cachePoint)");
  }
  if (chat.store.value_or(false)) return reject("store");
  if (chat.verbosity.has_value()) return reject("verbosity");
  if (chat.reasoning_effort.has_value()) {
    return reject("reasoning_effort",
                  "not supported by bedrock (model-specific: send e.g. \"thinking\" or "
                  "\"reasoningConfig\", passed as additionalModelRequestFields)");
  }
  if (chat.service_tier.has_value() && *chat.service_tier != "auto" &&
      *chat.service_tier != "default") {
    return reject("service_tier");
  }
  if (chat.modalities.has_value() &&
      (chat.modalities->size() != 1 || chat.modalities->front() != "text")) {
    return reject("modalities", "bedrock Converse answers with text only");
  }
  if (chat.audio.has_value()) return reject("audio");
  if (chat.prediction.has_value()) return reject("prediction");
  if (chat.web_search_options.has_value()) return reject("web_search_options");
  if (chat.functions.has_value()) return reject("functions", "use tools");
  if (chat.function_call.has_value()) return reject("function_call", "use tool_choice");
  if (chat.parallel_tool_calls.has_value() && !*chat.parallel_tool_calls) {
    return reject("parallel_tool_calls", "bedrock cannot turn parallel tool calls off");
  }
  if (chat.temperature.has_value() && *chat.temperature > 1) {
    return reject("temperature", "must be <= 1 for bedrock (Converse takes 0..1)");
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Egress: answers.

std::string_view FinishReason(std::string_view stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded") {
    return "length";
  }
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "guardrail_intervened" || stop_reason == "content_filtered") {
    return "content_filter";
  }
  return "stop";
}

// Converse usage. inputTokens counts neither cache reads nor cache writes (totalTokens adds
// all four), while OpenAI's prompt_tokens includes cached tokens: so prompt_tokens is
// inputTokens + cacheReadInputTokens + cacheWriteInputTokens.
struct BedrockUsage {
  bool seen = false;
  int64_t input = 0, output = 0, cache_read = 0, cache_write = 0;
  bool has_cache_read = false, has_cache_write = false;

  void Append(std::string* out) const {
    const int64_t prompt = input + cache_read + cache_write;
    JsonObjectWriter w(out);
    w.Key("prompt_tokens");
    AppendJsonInt(out, prompt);
    w.Key("completion_tokens");
    AppendJsonInt(out, output);
    w.Key("total_tokens");
    AppendJsonInt(out, prompt + output);
    w.Key("prompt_tokens_details");
    out->append("{\"cached_tokens\":");
    AppendJsonInt(out, cache_read);
    out->push_back('}');
    if (has_cache_write) {
      w.Key("cache_creation_input_tokens");
      AppendJsonInt(out, cache_write);
    }
    w.End();
  }
};

bool ReadInt(JsonReader& reader, int64_t* value) {
  std::string_view text;
  JsonType type;
  if (!reader.Peek(&type)) return false;
  if (type != JsonType::kNumber) return reader.SkipValue();
  return reader.ReadNumber(&text) && NumberToInt64(text, value);
}

bool ReadUsage(JsonReader& reader, BedrockUsage* usage) {
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return false;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok = true;
    if (key == "inputTokens") {
      ok = ReadInt(reader, &usage->input);
      usage->seen = true;
    } else if (key == "outputTokens") {
      ok = ReadInt(reader, &usage->output);
      usage->seen = true;
    } else if (key == "cacheReadInputTokens") {
      ok = ReadInt(reader, &usage->cache_read);
      usage->has_cache_read = true;
    } else if (key == "cacheWriteInputTokens") {
      ok = ReadInt(reader, &usage->cache_write);
      usage->has_cache_write = true;
    } else {
      ok = reader.SkipValue();  // totalTokens (recomputed), *Count aliases, serverToolUsage
    }
    if (!ok) return false;
  }
  return reader.status().ok();
}

// Reads a string member value, accepting null as absent.
bool ReadOptString(JsonReader& reader, std::string* out) {
  JsonType type;
  if (!reader.Peek(&type)) return false;
  if (type == JsonType::kNull) return reader.ReadNull();
  if (type != JsonType::kString) return reader.SkipValue();
  return reader.ReadString(out);
}

// Deterministic ids: Converse answers carry none in the body (the request id is a header).
std::string MakeId(std::string_view seed) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : seed) h = (h ^ c) * 1099511628211ULL;
  return absl::StrFormat("chatcmpl-bedrock-%016x", h);
}

absl::Status BadBody(const JsonReader& reader, std::string_view what) {
  if (!reader.status().ok()) return reader.status();
  return InvalidFieldError(what, "unexpected value in the bedrock answer");
}

// One content block of output.message.content, folded into the unified message.
struct DecodedMessage {
  std::string text;
  bool has_text = false;
  std::string reasoning;
  bool has_reasoning = false;
  std::string signature;
  std::vector<std::string> redacted;
  std::string tool_calls;  // JSON array members, comma separated
  int tools = 0;
  bool json_tool = false;
  std::string other_blocks;  // raw blocks this model does not map
};

bool ReadToolUse(JsonReader& reader, DecodedMessage* m) {
  std::string id, name, input;
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return false;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok = true;
    if (key == "toolUseId") {
      ok = reader.ReadString(&id);
    } else if (key == "name") {
      ok = reader.ReadString(&name);
    } else if (key == "input") {
      ok = reader.CaptureValue(&input);
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return false;
  }
  if (!reader.status().ok()) return false;
  if (input.empty()) input = "{}";
  if (name == kJsonToolName) {
    m->text += input;
    m->has_text = true;
    m->json_tool = true;
    return true;
  }
  std::string* out = &m->tool_calls;
  if (m->tools++ > 0) out->push_back(',');
  out->append("{\"id\":");
  AppendJsonString(out, id);
  out->append(",\"type\":\"function\",\"function\":{\"name\":");
  AppendJsonString(out, name);
  out->append(",\"arguments\":");
  AppendJsonString(out, input);
  out->append("}}");
  return true;
}

bool ReadReasoning(JsonReader& reader, DecodedMessage* m) {
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return false;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok = true;
    if (key == "reasoningText") {
      bool f2 = true, h2 = false;
      std::string_view k2;
      std::string s2;
      if (!reader.BeginObject()) return false;
      while (reader.NextMember(&f2, &k2, &s2, &h2) && h2) {
        if (k2 == "text") {
          std::string text;
          ok = reader.ReadString(&text);
          m->reasoning += text;
          m->has_reasoning = true;
        } else if (k2 == "signature") {
          ok = reader.ReadString(&m->signature);
        } else {
          ok = reader.SkipValue();
        }
        if (!ok) return false;
      }
    } else if (key == "redactedContent") {
      std::string data;
      ok = reader.ReadString(&data);
      m->redacted.push_back(std::move(data));
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return false;
  }
  return reader.status().ok();
}

bool ReadContentBlock(JsonReader& reader, DecodedMessage* m) {
  // Blocks have one member naming their kind; the AI SDK's recordings add "type":"text".
  std::string raw;
  bool first = true, has = false, known = false;
  std::string_view key;
  std::string scratch;
  JsonType peek;
  if (!reader.Peek(&peek) || peek != JsonType::kObject) return reader.SkipValue();
  if (!reader.BeginObject()) return false;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok = true;
    if (key == "text") {
      std::string text;
      ok = reader.ReadString(&text);
      m->text += text;
      m->has_text = true;
      known = true;
    } else if (key == "toolUse") {
      ok = ReadToolUse(reader, m);
      known = true;
    } else if (key == "reasoningContent") {
      ok = ReadReasoning(reader, m);
      known = true;
    } else if (key == "type") {
      ok = reader.SkipValue();
    } else {
      // image, document, citationsContent, guardContent, ...: kept raw in the message's
      // "bedrock_content" extra.
      if (!raw.empty()) raw.push_back(',');
      AppendJsonString(&raw, key);
      raw.push_back(':');
      ok = reader.CaptureValue(&raw);
    }
    if (!ok) return false;
  }
  if (!known && !raw.empty()) {
    if (!m->other_blocks.empty()) m->other_blocks.push_back(',');
    m->other_blocks.append("{").append(raw).append("}");
  }
  return reader.status().ok();
}

bool ReadOutput(JsonReader& reader, DecodedMessage* m) {
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return false;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    if (key != "message") {
      if (!reader.SkipValue()) return false;
      continue;
    }
    bool f2 = true, h2 = false;
    std::string_view k2;
    std::string s2;
    if (!reader.BeginObject()) return false;
    while (reader.NextMember(&f2, &k2, &s2, &h2) && h2) {
      if (k2 != "content") {
        if (!reader.SkipValue()) return false;
        continue;
      }
      bool f3 = true, h3 = false;
      if (!reader.BeginArray()) return false;
      while (reader.NextElement(&f3, &h3) && h3) {
        if (!ReadContentBlock(reader, m)) return false;
      }
    }
  }
  return reader.status().ok();
}

// The reasoning members of a unified message or delta.
void AppendReasoningExtras(JsonObjectWriter& w, const DecodedMessage& m) {
  std::string* out = w.out();
  if (m.has_reasoning) {
    w.Key("reasoning_content");
    AppendJsonString(out, m.reasoning);
  }
  if (!m.signature.empty()) {
    w.Key("reasoning_signature");
    AppendJsonString(out, m.signature);
  }
  if (!m.redacted.empty()) {
    w.Key("redacted_reasoning");
    out->push_back('[');
    for (size_t i = 0; i < m.redacted.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendJsonString(out, m.redacted[i]);
    }
    out->push_back(']');
  }
}

// ---------------------------------------------------------------------------------------
// Egress: the stream.

// Converse exceptions, in the stream (EventStream messages of type "exception") and as
// x-amzn-errortype of error answers, with the HTTP status Bedrock documents for each.
int ExceptionHttpStatus(std::string_view type) {
  // Event types are lowerCamel in the stream, UpperCamel in headers; compare from the 2nd.
  auto is = [&](std::string_view name) {
    return type.size() == name.size() && type.substr(1) == name.substr(1) &&
           (type[0] | 0x20) == (name[0] | 0x20);
  };
  if (is("throttlingException") || is("serviceQuotaExceededException") ||
      is("modelNotReadyException")) {
    return 429;
  }
  if (is("validationException")) return 400;
  if (is("accessDeniedException")) return 403;
  if (is("resourceNotFoundException")) return 404;
  if (is("modelTimeoutException")) return 408;
  if (is("serviceUnavailableException")) return 503;
  // internalServerException, modelStreamErrorException (the model failed mid-answer; AWS
  // says 424, which clients do not retry, while a new attempt usually succeeds), others.
  return 500;
}

// The failure a frame stands for: EventStream "exception" and "error" messages arrive as
// events "exception:<type>" / "error:<code>" (framing.h); an event type has no ':'.
std::optional<std::string_view> ExceptionType(const StreamFrame& frame) {
  const size_t colon = frame.event.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::string_view(frame.event).substr(colon + 1);
}

absl::Status ExceptionStatus(std::string_view type, std::string_view payload) {
  absl::Status status = StatusFromUpstreamError(ExceptionHttpStatus(type), payload);
  return WithErrorCode(std::move(status), type);
}

class BedrockStreamDecoder final : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    if (std::optional<std::string_view> type = ExceptionType(frame)) {
      return ExceptionStatus(*type, frame.data);
    }
    if (id_.empty()) id_ = MakeId(absl::StrCat(ToAbsl(frame.event), ToAbsl(frame.data)));
    const std::string_view event = frame.event;
    JsonReader reader(frame.data, kMaxJsonDepth);
    if (event == "messageStart") {
      if (!reader.SkipValue()) return reader.status();
      EmitRoleChunk(out);
      return absl::OkStatus();
    }
    if (event == "contentBlockStart") return OnBlockStart(reader, out);
    if (event == "contentBlockDelta") return OnBlockDelta(reader, out);
    if (event == "contentBlockStop") return OnBlockStop(reader, out);
    if (event == "messageStop") return OnMessageStop(reader, out);
    if (event == "metadata") return OnMetadata(reader, out);
    return absl::OkStatus();  // an event type added later: nothing to say in unified form
  }

  absl::Status Finish(std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    if (!stopped_) {
      return WithHttpStatus(absl::UnavailableError("bedrock stream ended before messageStop"),
                            502);
    }
    if (usage_.seen && !usage_sent_) EmitUsage(out);
    done_ = true;
    SseEvent done;
    done.data = "[DONE]";
    out->push_back(std::move(done));
    return absl::OkStatus();
  }

 private:
  // Bytes of a delta chunk besides its id and its delta's value (with room for escapes),
  // reserved up front so a chunk is written without regrowing its buffer.
  static constexpr size_t kChunkOverhead = 224;

  enum class Kind : uint8_t { kText, kTool, kJsonTool };
  struct Block {
    int64_t index;
    Kind kind;
    int tool_index;
    bool has_input;
  };

  Block* FindBlock(int64_t index) {
    for (Block& b : blocks_) {
      if (b.index == index) return &b;
    }
    return nullptr;
  }

  // Chunk prefix up to the delta's opening brace.
  void Begin(std::string* data) {
    data->append("{\"id\":\"").append(id_).append(
        "\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"\",\"choices\":[{"
        "\"index\":0,\"delta\":{");
    if (!role_sent_) {
      data->append("\"role\":\"assistant\",");
      role_sent_ = true;
    }
  }
  void End(std::string* data, std::vector<SseEvent>* out, std::string_view finish = {}) {
    if (data->back() == ',') data->pop_back();
    data->append("},\"finish_reason\":");
    if (finish.empty()) {
      data->append("null");
    } else {
      data->push_back('"');
      data->append(finish);
      data->push_back('"');
    }
    data->append("}]}");
    SseEvent event;
    event.data = std::move(*data);
    out->push_back(std::move(event));
  }

  void EmitRoleChunk(std::vector<SseEvent>* out) {
    if (role_sent_) return;
    std::string data;
    Begin(&data);
    data.append("\"content\":\"\"");
    End(&data, out);
  }

  void EmitContent(std::string_view key, std::string_view text, std::vector<SseEvent>* out) {
    std::string data;
    data.reserve(kChunkOverhead + id_.size() + key.size() + text.size());
    Begin(&data);
    AppendJsonString(&data, key);
    data.push_back(':');
    AppendJsonString(&data, text);
    End(&data, out);
  }

  void EmitArguments(int tool_index, std::string_view arguments, std::vector<SseEvent>* out) {
    std::string data;
    data.reserve(kChunkOverhead + id_.size() + arguments.size());
    Begin(&data);
    data.append("\"tool_calls\":[{\"index\":");
    AppendJsonInt(&data, tool_index);
    data.append(",\"function\":{\"arguments\":");
    AppendJsonString(&data, arguments);
    data.append("}}]");
    End(&data, out);
  }

  void EmitUsage(std::vector<SseEvent>* out) {
    std::string data;
    data.append("{\"id\":\"").append(id_).append(
        "\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"\",\"choices\":[],"
        "\"usage\":");
    usage_.Append(&data);
    data.push_back('}');
    SseEvent event;
    event.data = std::move(data);
    out->push_back(std::move(event));
    usage_sent_ = true;
  }

  absl::Status Bad(std::string_view event, const JsonReader& reader) {
    if (!reader.status().ok()) {
      return InvalidFieldError(event, std::string(reader.status().message()));
    }
    return InvalidFieldError(event, "unexpected bedrock stream event");
  }

  absl::Status OnBlockStart(JsonReader& reader, std::vector<SseEvent>* out) {
    int64_t index = -1;
    std::string id, name;
    bool tool = false;
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    if (!reader.BeginObject()) return Bad("contentBlockStart", reader);
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      bool ok = true;
      if (key == "contentBlockIndex") {
        ok = ReadInt(reader, &index);
      } else if (key == "start") {
        bool f2 = true, h2 = false;
        std::string_view k2;
        std::string s2;
        ok = reader.BeginObject();
        while (ok && reader.NextMember(&f2, &k2, &s2, &h2) && h2) {
          if (k2 == "toolUse") {
            tool = true;
            bool f3 = true, h3 = false;
            std::string_view k3;
            std::string s3;
            ok = reader.BeginObject();
            while (ok && reader.NextMember(&f3, &k3, &s3, &h3) && h3) {
              if (k3 == "toolUseId") {
                ok = reader.ReadString(&id);
              } else if (k3 == "name") {
                ok = reader.ReadString(&name);
              } else {
                ok = reader.SkipValue();
              }
            }
          } else {
            ok = reader.SkipValue();
          }
        }
      } else {
        ok = reader.SkipValue();
      }
      if (!ok) return Bad("contentBlockStart", reader);
    }
    if (!reader.status().ok()) return Bad("contentBlockStart", reader);
    if (!tool) return absl::OkStatus();  // a text or reasoning block: deltas say it all
    if (name == kJsonToolName) {
      blocks_.push_back({index, Kind::kJsonTool, -1, false});
      return absl::OkStatus();
    }
    const int tool_index = tools_++;
    blocks_.push_back({index, Kind::kTool, tool_index, false});
    std::string data;
    Begin(&data);
    data.append("\"tool_calls\":[{\"index\":");
    AppendJsonInt(&data, tool_index);
    data.append(",\"id\":");
    AppendJsonString(&data, id);
    data.append(",\"type\":\"function\",\"function\":{\"name\":");
    AppendJsonString(&data, name);
    data.append(",\"arguments\":\"\"}}]");
    End(&data, out);
    return absl::OkStatus();
  }

  absl::Status OnBlockDelta(JsonReader& reader, std::vector<SseEvent>* out) {
    int64_t index = -1;
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    // The delta comes before or after contentBlockIndex: keep its pieces until both are read
    // (in members, so their buffers are reused from one delta to the next).
    std::string& text = text_;
    std::string& input = input_;
    std::string& reasoning = reasoning_;
    std::string& signature = signature_;
    std::string& redacted = redacted_;
    text.clear();
    input.clear();
    reasoning.clear();
    signature.clear();
    redacted.clear();
    bool has_text = false, has_input = false, has_reasoning = false;
    if (!reader.BeginObject()) return Bad("contentBlockDelta", reader);
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      bool ok = true;
      if (key == "contentBlockIndex") {
        ok = ReadInt(reader, &index);
      } else if (key == "delta") {
        bool f2 = true, h2 = false;
        std::string_view k2;
        std::string s2;
        ok = reader.BeginObject();
        while (ok && reader.NextMember(&f2, &k2, &s2, &h2) && h2) {
          if (k2 == "text") {
            ok = reader.ReadString(&text);
            has_text = true;
          } else if (k2 == "toolUse" || k2 == "reasoningContent") {
            const bool is_tool = k2 == "toolUse";
            bool f3 = true, h3 = false;
            std::string_view k3;
            std::string s3;
            ok = reader.BeginObject();
            while (ok && reader.NextMember(&f3, &k3, &s3, &h3) && h3) {
              if (is_tool && k3 == "input") {
                ok = reader.ReadString(&input);
                has_input = true;
              } else if (!is_tool && k3 == "text") {
                ok = reader.ReadString(&reasoning);
                has_reasoning = true;
              } else if (!is_tool && k3 == "signature") {
                ok = reader.ReadString(&signature);
              } else if (!is_tool && k3 == "redactedContent") {
                ok = reader.ReadString(&redacted);
              } else {
                ok = reader.SkipValue();
              }
            }
          } else {
            ok = reader.SkipValue();  // citation, toolResult of server tools: no unified form
          }
        }
      } else {
        ok = reader.SkipValue();
      }
      if (!ok) return Bad("contentBlockDelta", reader);
    }
    if (!reader.status().ok()) return Bad("contentBlockDelta", reader);
    if (has_text && !text.empty()) EmitContent("content", text, out);
    if (has_reasoning && !reasoning.empty()) EmitContent("reasoning_content", reasoning, out);
    if (!signature.empty()) EmitContent("reasoning_signature", signature, out);
    if (!redacted.empty()) EmitContent("redacted_reasoning", redacted, out);
    if (has_input) {
      Block* block = FindBlock(index);
      if (block == nullptr) {
        return InvalidFieldError("contentBlockDelta.delta.toolUse",
                                 "tool input for a block that did not start as a tool use");
      }
      if (input.empty()) return absl::OkStatus();
      block->has_input = true;
      if (block->kind == Kind::kJsonTool) {
        EmitContent("content", input, out);
      } else {
        EmitArguments(block->tool_index, input, out);
      }
    }
    return absl::OkStatus();
  }

  absl::Status OnBlockStop(JsonReader& reader, std::vector<SseEvent>* out) {
    int64_t index = -1;
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    if (!reader.BeginObject()) return Bad("contentBlockStop", reader);
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      bool ok = key == "contentBlockIndex" ? ReadInt(reader, &index) : reader.SkipValue();
      if (!ok) return Bad("contentBlockStop", reader);
    }
    if (!reader.status().ok()) return Bad("contentBlockStop", reader);
    Block* block = FindBlock(index);
    // A tool without arguments streams an empty input; OpenAI clients parse the arguments
    // as JSON, so it gets "{}" (what the whole answer's "input": {} says).
    if (block != nullptr && !block->has_input) {
      if (block->kind == Kind::kTool) EmitArguments(block->tool_index, "{}", out);
      if (block->kind == Kind::kJsonTool) EmitContent("content", "{}", out);
      block->has_input = true;
    }
    return absl::OkStatus();
  }

  absl::Status OnMessageStop(JsonReader& reader, std::vector<SseEvent>* out) {
    std::string stop_reason;
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    if (!reader.BeginObject()) return Bad("messageStop", reader);
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      bool ok = key == "stopReason" ? ReadOptString(reader, &stop_reason) : reader.SkipValue();
      if (!ok) return Bad("messageStop", reader);
    }
    if (!reader.status().ok()) return Bad("messageStop", reader);
    std::string_view finish = FinishReason(stop_reason);
    if (finish == "tool_calls" && tools_ == 0) finish = "stop";  // only the response_format tool
    std::string data;
    Begin(&data);
    End(&data, out, finish);
    stopped_ = true;
    if (usage_.seen && !usage_sent_) EmitUsage(out);
    return absl::OkStatus();
  }

  absl::Status OnMetadata(JsonReader& reader, std::vector<SseEvent>* out) {
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    if (!reader.BeginObject()) return Bad("metadata", reader);
    while (reader.NextMember(&first, &key, &scratch, &has) && has) {
      bool ok = key == "usage" ? ReadUsage(reader, &usage_) : reader.SkipValue();
      if (!ok) return Bad("metadata", reader);
    }
    if (!reader.status().ok()) return Bad("metadata", reader);
    // Bedrock sends metadata after messageStop; a stream that sends it first gets its usage
    // chunk after the finish chunk all the same.
    if (stopped_ && usage_.seen && !usage_sent_) EmitUsage(out);
    return absl::OkStatus();
  }

  std::string id_;
  bool role_sent_ = false;
  bool stopped_ = false;
  bool usage_sent_ = false;
  bool done_ = false;
  int tools_ = 0;
  BedrockUsage usage_;
  std::vector<Block> blocks_;  // tool blocks only: a few per answer
  std::string text_, input_, reasoning_, signature_, redacted_;  // OnBlockDelta's pieces
};

// ---------------------------------------------------------------------------------------
// The dialect.

class BedrockDialect final : public Dialect {
 public:
  explicit BedrockDialect(std::string region)
      : region_(std::move(region)),
        base_url_(region_.empty()
                      ? std::string()
                      : absl::StrCat("https://bedrock-runtime.", region_, ".amazonaws.com")) {}

  std::string_view name() const override { return "bedrock"; }
  std::string_view default_base_url() const override { return base_url_; }
  // Bedrock API keys are bearer tokens; SigV4 signing is the gateway builder's.
  ApiKeyHeader api_key_header() const override { return {}; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override;
  Framing ResponseFraming(bool stream) const override;
  absl::Status DecodeResponse(std::string* body) const override;
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<BedrockStreamDecoder>();
  }
  absl::Status DecodeError(int http_status, std::string_view body) const override;

  // InvokeModel with a Titan or Cohere embedding model (embeddings.h).
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    return EncodeBedrockEmbeddings(request, EmbeddingsModel(request, call), out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& call) const override {
    return DecodeBedrockEmbeddings(body, request, EmbeddingsModel(request, call));
  }
  size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                   const DialectCall& call) const override {
    return BedrockEmbeddingInputsPerCall(EmbeddingsModel(request, call));
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override;
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override;
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override;
  std::string EncodeErrorBody(const absl::Status& status) const override;

 private:
  const std::string region_;
  const std::string base_url_;
};

absl::Status BedrockDialect::EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                                           WireRequest* out) const {
  MODEENVOY_RETURN_IF_ERROR(RejectInexpressible(chat));
  const std::string_view model = call.model.empty() ? std::string_view(chat.model) : call.model;
  if (model.empty()) return InvalidFieldError("model", "required");
  out->method = "POST";
  out->target = absl::StrCat("/model/", EncodeBedrockModelId(model),
                             call.stream ? "/converse-stream" : "/converse");
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back(
      "accept", call.stream ? "application/vnd.amazon.eventstream" : "application/json");

  std::string& body = out->body;
  body.clear();
  body.reserve(256 + chat.messages.size() * 128);
  JsonObjectWriter top(&body);

  // system / developer messages, wherever they are, in order.
  bool any_system = false;
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const Message& m = chat.messages[i];
    if (m.role != Role::kSystem && m.role != Role::kDeveloper) continue;
    MODEENVOY_RETURN_IF_ERROR(ForEachText(
        m.content, Path("messages", i), [&](const std::string& text, bool cache) {
          if (!any_system) {
            top.Key("system");
            body.push_back('[');
          } else {
            body.push_back(',');
          }
          any_system = true;
          body.append("{\"text\":");
          AppendJsonString(&body, text);
          body.push_back('}');
          if (cache) body.append(R"(,{"cachePoint":{"type":"default"}})");
        }));
  }
  if (any_system) body.push_back(']');

  top.Key("messages");
  body.push_back('[');
  TurnWriter turns(&body);
  bool has_tool_blocks = false;
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const Message& m = chat.messages[i];
    const std::string path = Path("messages", i);
    switch (m.role) {
      case Role::kSystem:
      case Role::kDeveloper:
        break;
      case Role::kUser:
        if (!m.content.has_value()) break;
        if (const auto* text = std::get_if<std::string>(&*m.content)) {
          turns.Block("user");
          body.append("{\"text\":");
          AppendJsonString(&body, *text);
          body.push_back('}');
        } else if (m.content.has_value()) {
          const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
          for (size_t j = 0; j < parts.size(); ++j) {
            MODEENVOY_RETURN_IF_ERROR(
                AppendUserPart(parts[j], Path(path + ".content", j), j, turns));
          }
        }
        break;
      case Role::kAssistant:
        has_tool_blocks = has_tool_blocks || !m.tool_calls.empty();
        MODEENVOY_RETURN_IF_ERROR(AppendAssistant(m, path, turns));
        break;
      case Role::kTool:
        has_tool_blocks = true;
        MODEENVOY_RETURN_IF_ERROR(AppendToolResult(m, path, turns));
        break;
      case Role::kFunction:
        return InvalidFieldError(path + ".role", "\"function\" not supported by bedrock (use tool)");
    }
  }
  turns.Close();
  body.push_back(']');

  // inferenceConfig
  const std::optional<int64_t> max_tokens =
      chat.max_completion_tokens.has_value() ? chat.max_completion_tokens : chat.max_tokens;
  if (max_tokens || chat.temperature || chat.top_p || chat.stop) {
    top.Key("inferenceConfig");
    JsonObjectWriter inference(&body);
    if (max_tokens) {
      inference.Key("maxTokens");
      AppendJsonInt(&body, *max_tokens);
    }
    if (chat.temperature) {
      inference.Key("temperature");
      AppendJsonDouble(&body, *chat.temperature);
    }
    if (chat.top_p) {
      inference.Key("topP");
      AppendJsonDouble(&body, *chat.top_p);
    }
    if (chat.stop) {
      inference.Key("stopSequences");
      body.push_back('[');
      if (const auto* one = std::get_if<std::string>(&*chat.stop)) {
        AppendJsonString(&body, *one);
      } else {
        const auto& many = std::get<std::vector<std::string>>(*chat.stop);
        for (size_t i = 0; i < many.size(); ++i) {
          if (i > 0) body.push_back(',');
          AppendJsonString(&body, many[i]);
        }
      }
      body.push_back(']');
    }
    inference.End();
  }

  // toolConfig
  std::optional<std::pair<std::string, std::string>> format_tool;
  if (chat.response_format.has_value()) {
    MODEENVOY_ASSIGN_OR_RETURN(format_tool, ResponseFormatTool(*chat.response_format));
  }
  const std::string mode = chat.tool_choice ? chat.tool_choice->mode : std::string("auto");
  std::optional<std::string> named;
  if (chat.tool_choice && !chat.tool_choice->object.empty()) {
    named = NamedToolChoice(chat.tool_choice->object);
    if (!named.has_value()) {
      return InvalidFieldError("tool_choice", "expected {\"type\":\"function\",\"function\":"
                                              "{\"name\":...}} for bedrock");
    }
  }
  // Converse has no "none": the tools are left out. It requires toolConfig whenever the
  // conversation holds toolUse/toolResult blocks, so "none" cannot be said then.
  const bool send_tools = !chat.tools.empty() && mode != "none";
  if (mode == "none" && !chat.tools.empty() && has_tool_blocks) {
    return InvalidFieldError(
        "tool_choice",
        "\"none\" cannot be expressed by bedrock once the conversation holds tool calls "
        "(Converse has no \"none\" and needs the tools then)");
  }
  if (format_tool.has_value() && named.has_value()) {
    return InvalidFieldError("response_format",
                             "bedrock cannot force a named tool and a response format together "
                             "(the format is itself a forced tool)");
  }
  if (send_tools || format_tool.has_value()) {
    top.Key("toolConfig");
    body.append("{\"tools\":[");
    bool first = true;
    if (send_tools) {
      for (size_t t = 0; t < chat.tools.size(); ++t) {
        const Tool& tool = chat.tools[t];
        const std::string path = Path("tools", t);
        if (tool.type != "function" || !tool.function.has_value()) {
          return InvalidFieldError(path + ".type", absl::StrFormat(
                                                       "\"%s\" tools are not supported by bedrock",
                                                       tool.type));
        }
        const FunctionDefinition& fn = *tool.function;
        if (fn.name == kJsonToolName) {
          return InvalidFieldError(path + ".function.name",
                                   "reserved by the gateway for response_format");
        }
        if (!first) body.push_back(',');
        first = false;
        body.append("{\"toolSpec\":{\"name\":");
        AppendJsonString(&body, fn.name);
        if (fn.description.has_value()) {
          body.append(",\"description\":");
          AppendJsonString(&body, *fn.description);
        }
        // inputSchema is required; a function without parameters takes an empty object.
        body.append(",\"inputSchema\":{\"json\":");
        body.append(fn.parameters.has_value() ? *fn.parameters
                                              : R"({"type":"object","properties":{}})");
        body.append("}}}");
        if (HasExtra(tool.extra, "cache_control")) {
          body.append(R"(,{"cachePoint":{"type":"default"}})");
        }
      }
    }
    if (format_tool.has_value()) {
      if (!first) body.push_back(',');
      body.append("{\"toolSpec\":{\"name\":\"").append(kJsonToolName).append(
          "\",\"description\":");
      AppendJsonString(&body, format_tool->second);
      body.append(",\"inputSchema\":{\"json\":").append(format_tool->first).append("}}}");
    }
    body.append("],\"toolChoice\":");
    if (format_tool.has_value()) {
      // With client tools the model must call one of them or answer through the format.
      if (send_tools) {
        body.append(R"({"any":{}})");
      } else {
        body.append("{\"tool\":{\"name\":\"").append(kJsonToolName).append("\"}}");
      }
    } else if (named.has_value()) {
      body.append("{\"tool\":{\"name\":");
      AppendJsonString(&body, *named);
      body.append("}}");
    } else if (mode == "required") {
      body.append(R"({"any":{}})");
    } else {
      body.append(R"({"auto":{}})");
    }
    body.push_back('}');
  }

  // metadata -> requestMetadata; unknown members: Converse's own top-level members as they
  // are, everything else into additionalModelRequestFields.
  // The unified user joins it as "user" (bedrock has no other end-user field).
  const std::string* request_metadata = FindExtra(chat.extra, "requestMetadata");
  const bool write_metadata = chat.metadata.has_value() || chat.user.has_value();
  if (write_metadata) {
    if (chat.metadata.has_value() && request_metadata != nullptr) {
      return InvalidFieldError("metadata", "given twice (also as requestMetadata)");
    }
    top.Key("requestMetadata");
    MODEENVOY_RETURN_IF_ERROR(AppendRequestMetadata(
        chat.metadata.has_value() ? &*chat.metadata : request_metadata,
        chat.metadata.has_value() ? "metadata" : "requestMetadata", chat.user, &body));
  }
  bool any_additional = false;
  for (const auto& [key, value] : chat.extra) {
    if (!IsConverseTopLevel(key)) {
      any_additional = true;
      continue;
    }
    if (write_metadata && key == "requestMetadata") continue;  // written above
    top.Key(key);
    body.append(value);
  }
  if (any_additional) {
    top.Key("additionalModelRequestFields");
    body.push_back('{');
    bool first = true;
    auto member = [&](std::string_view key, std::string_view value) {
      if (!first) body.push_back(',');
      first = false;
      AppendJsonString(&body, key);
      body.push_back(':');
      body.append(value);
    };
    for (const auto& [key, value] : chat.extra) {
      if (IsConverseTopLevel(key)) continue;
      if (key != "additionalModelRequestFields") {
        member(key, value);
        continue;
      }
      // An explicit additionalModelRequestFields object: its members, merged.
      JsonReader reader(value, kMaxJsonDepth);
      bool f = true, h = false;
      std::string_view k;
      std::string s;
      if (!reader.BeginObject()) {
        return InvalidFieldError("additionalModelRequestFields", "expected an object");
      }
      while (reader.NextMember(&f, &k, &s, &h) && h) {
        std::string key_copy(k);
        std::string raw;
        if (!reader.CaptureValue(&raw)) break;
        member(key_copy, raw);
      }
    }
    body.push_back('}');
  }
  top.End();
  return absl::OkStatus();
}

Framing BedrockDialect::ResponseFraming(bool stream) const {
  return stream ? Framing::kEventStream : Framing::kJson;
}

absl::Status BedrockDialect::DecodeResponse(std::string* body) const {
  DecodedMessage m;
  BedrockUsage usage;
  std::string stop_reason;
  JsonReader reader(*body, kMaxJsonDepth);
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  if (!reader.BeginObject()) return BadBody(reader, "body");
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok = true;
    if (key == "output") {
      ok = ReadOutput(reader, &m);
    } else if (key == "stopReason") {
      ok = ReadOptString(reader, &stop_reason);
    } else if (key == "usage") {
      ok = ReadUsage(reader, &usage);
    } else {
      ok = reader.SkipValue();  // metrics, trace, additionalModelResponseFields
    }
    if (!ok) return BadBody(reader, std::string(key));
  }
  if (!reader.status().ok() || !reader.ExpectEnd()) return BadBody(reader, "body");

  std::string finish(FinishReason(stop_reason));
  if (finish == "tool_calls" && m.tools == 0) finish = "stop";  // the response_format tool

  std::string out;
  out.reserve(body->size() + 256);
  JsonObjectWriter top(&out);
  top.Key("id");
  AppendJsonString(&out, MakeId(*body));
  top.Key("object");
  out.append("\"chat.completion\"");
  // Converse answers name neither the model nor a time; the request named the model.
  top.Key("created");
  out.push_back('0');
  top.Key("model");
  out.append("\"\"");
  top.Key("choices");
  out.append("[{\"index\":0,\"message\":");
  {
    JsonObjectWriter msg(&out);
    msg.Key("role");
    out.append("\"assistant\"");
    msg.Key("content");
    if (m.has_text || m.tools == 0) {
      AppendJsonString(&out, m.text);
    } else {
      out.append("null");
    }
    if (m.tools > 0) {
      msg.Key("tool_calls");
      out.push_back('[');
      out.append(m.tool_calls);
      out.push_back(']');
    }
    AppendReasoningExtras(msg, m);
    if (!m.other_blocks.empty()) {
      msg.Key("bedrock_content");
      out.push_back('[');
      out.append(m.other_blocks);
      out.push_back(']');
    }
    msg.End();
  }
  out.append(",\"logprobs\":null,\"finish_reason\":");
  AppendJsonString(&out, finish);
  out.append("}]");
  if (usage.seen) {
    top.Key("usage");
    usage.Append(&out);
  }
  top.End();
  *body = std::move(out);
  return absl::OkStatus();
}

absl::Status BedrockDialect::DecodeError(int http_status, std::string_view body) const {
  // Bedrock's error bodies are {"message": "..."} (some front ends write "Message"); the
  // exception's name travels in the x-amzn-errortype header, which this call does not get,
  // so the HTTP status picks the code.
  if (body.find("\"Message\"") != std::string_view::npos &&
      body.find("\"message\"") == std::string_view::npos) {
    std::string copy(body);
    copy.replace(copy.find("\"Message\""), 9, "\"message\"");
    return StatusFromUpstreamError(http_status, copy);
  }
  return StatusFromUpstreamError(http_status, body);
}

// ---------------------------------------------------------------------------------------
// Ingress (nlohmann: not on the gateway's per-request path).

using core_internal::Json;

absl::Status TypeError(std::string_view path, std::string_view expected) {
  return InvalidFieldError(path, absl::StrCat("expected ", ToAbsl(expected)));
}

absl::StatusOr<std::string> StringAt(const Json& object, std::string_view key,
                                     const std::string& path, bool required = true) {
  auto it = object.find(std::string(key));
  if (it == object.end()) {
    if (required) return InvalidFieldError(path + "." + std::string(key), "required");
    return std::string();
  }
  if (!it->is_string()) return TypeError(path + "." + std::string(key), "a string");
  return it->get<std::string>();
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

absl::StatusOr<ChatRequest> BedrockDialect::DecodeRequest(const WireRequest& request) const {
  ChatRequest chat;
  // Target: /model/{modelId}/converse or /converse-stream.
  std::string_view target = std::string_view(request.target).substr(0, request.target.find('?'));
  constexpr std::string_view kModel = "/model/";
  size_t slash = target.rfind('/');
  if (target.substr(0, kModel.size()) != kModel || slash < kModel.size()) {
    return InvalidFieldError("target", "expected /model/{modelId}/converse[-stream]");
  }
  std::string_view action = target.substr(slash + 1);
  if (action != "converse" && action != "converse-stream") {
    return InvalidFieldError("target", "expected /model/{modelId}/converse[-stream]");
  }
  std::optional<std::string> model =
      DecodePathSegment(target.substr(kModel.size(), slash - kModel.size()));
  if (!model.has_value() || model->empty()) return InvalidFieldError("modelId", "invalid");
  chat.model = *model;
  if (action == "converse-stream") chat.stream = true;

  MODEENVOY_ASSIGN_OR_RETURN(Json body, core_internal::ParseStrictJson(request.body));
  if (!body.is_object()) return TypeError("body", "an object");
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& key = it.key();
    const Json& value = it.value();
    if (key == "messages" || key == "system" || key == "inferenceConfig" ||
        key == "toolConfig") {
      continue;
    }
    if (key == "additionalModelRequestFields") {
      if (!value.is_object()) return TypeError(key, "an object");
      for (auto f = value.begin(); f != value.end(); ++f) {
        chat.extra.emplace_back(f.key(), Dump(f.value()));
      }
      continue;
    }
    if (key == "requestMetadata") {
      if (!value.is_object()) return TypeError(key, "an object");
      chat.metadata = Dump(value);
      continue;
    }
    if (!IsConverseTopLevel(key)) return InvalidFieldError(key, "unknown field");
    chat.extra.emplace_back(key, Dump(value));
  }

  if (auto system = body.find("system"); system != body.end()) {
    if (!system->is_array()) return TypeError("system", "an array");
    for (size_t i = 0; i < system->size(); ++i) {
      const Json& block = (*system)[i];
      const std::string path = Path("system", i);
      if (!block.is_object()) return TypeError(path, "an object");
      if (block.contains("cachePoint")) continue;
      MODEENVOY_ASSIGN_OR_RETURN(std::string text, StringAt(block, "text", path));
      chat.messages.push_back(MakeMessage(Role::kSystem, std::move(text)));
    }
  }

  auto messages = body.find("messages");
  if (messages == body.end()) return InvalidFieldError("messages", "required");
  if (!messages->is_array()) return TypeError("messages", "an array");
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& turn = (*messages)[i];
    const std::string path = Path("messages", i);
    if (!turn.is_object()) return TypeError(path, "an object");
    MODEENVOY_ASSIGN_OR_RETURN(std::string role, StringAt(turn, "role", path));
    if (role != "user" && role != "assistant") {
      return InvalidFieldError(path + ".role", "must be \"user\" or \"assistant\"");
    }
    auto content = turn.find("content");
    if (content == turn.end()) return InvalidFieldError(path + ".content", "required");
    if (!content->is_array()) return TypeError(path + ".content", "an array");
    Message msg = MakeMessage(role == "user" ? Role::kUser : Role::kAssistant);
    std::vector<ContentPart> parts;
    std::string text, reasoning, signature;
    bool has_reasoning = false;
    Json redacted = Json::array();
    for (size_t j = 0; j < content->size(); ++j) {
      const Json& block = (*content)[j];
      const std::string bpath = Path(path + ".content", j);
      if (!block.is_object() || block.size() != 1) {
        return InvalidFieldError(bpath, "expected an object with exactly one member");
      }
      const std::string& kind = block.begin().key();
      const Json& v = block.begin().value();
      if (kind == "text") {
        if (!v.is_string()) return TypeError(bpath + ".text", "a string");
        ContentPart part;
        part.text = v.get<std::string>();
        text += part.text;
        parts.push_back(std::move(part));
      } else if (kind == "cachePoint") {
        if (!parts.empty()) parts.back().extra.emplace_back("cache_control",
                                                            R"({"type":"ephemeral"})");
      } else if (kind == "image" && role == "user") {
        if (!v.is_object()) return TypeError(bpath + ".image", "an object");
        MODEENVOY_ASSIGN_OR_RETURN(std::string format, StringAt(v, "format", bpath + ".image"));
        auto source = v.find("source");
        if (source == v.end() || !source->is_object() || !source->contains("bytes") ||
            !(*source)["bytes"].is_string()) {
          return InvalidFieldError(bpath + ".image.source.bytes", "required");
        }
        if (format != "png" && format != "jpeg" && format != "gif" && format != "webp") {
          return InvalidFieldError(bpath + ".image.format", "must be png, jpeg, gif or webp");
        }
        ContentPart part;
        part.type = ContentPartType::kImageUrl;
        part.image_url = ImageUrl{
            absl::StrCat("data:image/", format, ";base64,",
                         (*source)["bytes"].get<std::string>()),
            std::nullopt,
            {}};
        parts.push_back(std::move(part));
      } else if (kind == "toolUse" && role == "assistant") {
        if (!v.is_object()) return TypeError(bpath + ".toolUse", "an object");
        ToolCall call;
        MODEENVOY_ASSIGN_OR_RETURN(call.id, StringAt(v, "toolUseId", bpath + ".toolUse"));
        FunctionCall fn;
        MODEENVOY_ASSIGN_OR_RETURN(fn.name, StringAt(v, "name", bpath + ".toolUse"));
        auto input = v.find("input");
        fn.arguments = input == v.end() ? "{}" : Dump(*input);
        call.function = std::move(fn);
        msg.tool_calls.push_back(std::move(call));
      } else if (kind == "toolResult" && role == "user") {
        if (!v.is_object()) return TypeError(bpath + ".toolResult", "an object");
        Message tool = MakeMessage(Role::kTool);
        MODEENVOY_ASSIGN_OR_RETURN(std::string id,
                                   StringAt(v, "toolUseId", bpath + ".toolResult"));
        tool.tool_call_id = std::move(id);
        std::string result;
        if (auto rc = v.find("content"); rc != v.end()) {
          if (!rc->is_array()) return TypeError(bpath + ".toolResult.content", "an array");
          for (const Json& item : *rc) {
            if (item.contains("text") && item["text"].is_string()) {
              result += item["text"].get<std::string>();
            } else if (item.contains("json")) {
              result += Dump(item["json"]);
            } else {
              return InvalidFieldError(bpath + ".toolResult.content",
                                       "only text and json results can be translated");
            }
          }
        }
        tool.content = std::move(result);
        if (auto status = v.find("status"); status != v.end()) {
          tool.extra.emplace_back("status", Dump(*status));
        }
        chat.messages.push_back(std::move(tool));
      } else if (kind == "reasoningContent" && role == "assistant") {
        if (v.contains("reasoningText") && v["reasoningText"].is_object()) {
          const Json& rt = v["reasoningText"];
          if (rt.contains("text") && rt["text"].is_string()) {
            reasoning += rt["text"].get<std::string>();
            has_reasoning = true;
          }
          if (rt.contains("signature") && rt["signature"].is_string()) {
            signature = rt["signature"].get<std::string>();
          }
        } else if (v.contains("redactedContent") && v["redactedContent"].is_string()) {
          redacted.push_back(v["redactedContent"]);
        }
      } else {
        return InvalidFieldError(bpath, absl::StrFormat("\"%s\" blocks in %s turns cannot be "
                                                        "translated", kind, role));
      }
    }
    if (role == "assistant") {
      if (!text.empty() || msg.tool_calls.empty()) msg.content = text;
      if (has_reasoning) msg.extra.emplace_back("reasoning_content", Dump(Json(reasoning)));
      if (!signature.empty()) msg.extra.emplace_back("reasoning_signature", Dump(Json(signature)));
      if (!redacted.empty()) msg.extra.emplace_back("redacted_reasoning", Dump(redacted));
      chat.messages.push_back(std::move(msg));
    } else if (!parts.empty()) {
      const bool plain = std::all_of(parts.begin(), parts.end(), [](const ContentPart& p) {
        return p.type == ContentPartType::kText && p.extra.empty();
      });
      if (plain && parts.size() == 1) {
        msg.content = std::move(parts.front().text);
      } else {
        msg.content = std::move(parts);
      }
      chat.messages.push_back(std::move(msg));
    }
  }

  if (auto inference = body.find("inferenceConfig"); inference != body.end()) {
    if (!inference->is_object()) return TypeError("inferenceConfig", "an object");
    for (auto it = inference->begin(); it != inference->end(); ++it) {
      const std::string path = "inferenceConfig." + it.key();
      const Json& v = it.value();
      if (it.key() == "maxTokens") {
        if (!v.is_number_integer() || v.get<int64_t>() < 1) return TypeError(path, "an integer >= 1");
        chat.max_tokens = v.get<int64_t>();
      } else if (it.key() == "temperature") {
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1) {
          return TypeError(path, "a number in [0, 1]");
        }
        chat.temperature = v.get<double>();
      } else if (it.key() == "topP") {
        if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1) {
          return TypeError(path, "a number in [0, 1]");
        }
        chat.top_p = v.get<double>();
      } else if (it.key() == "stopSequences") {
        if (!v.is_array()) return TypeError(path, "an array of strings");
        std::vector<std::string> stops;
        for (const Json& s : v) {
          if (!s.is_string()) return TypeError(path, "an array of strings");
          stops.push_back(s.get<std::string>());
        }
        if (!stops.empty()) chat.stop = std::move(stops);
      } else {
        return InvalidFieldError(path, "unknown field");
      }
    }
  }

  if (auto config = body.find("toolConfig"); config != body.end()) {
    if (!config->is_object()) return TypeError("toolConfig", "an object");
    auto tools = config->find("tools");
    if (tools == config->end() || !tools->is_array() || tools->empty()) {
      return InvalidFieldError("toolConfig.tools", "required (a non-empty array)");
    }
    for (size_t t = 0; t < tools->size(); ++t) {
      const Json& entry = (*tools)[t];
      const std::string path = Path("toolConfig.tools", t);
      if (!entry.is_object()) return TypeError(path, "an object");
      if (entry.contains("cachePoint")) {
        if (!chat.tools.empty()) {
          chat.tools.back().extra.emplace_back("cache_control", R"({"type":"ephemeral"})");
        }
        continue;
      }
      auto spec = entry.find("toolSpec");
      if (spec == entry.end() || !spec->is_object()) {
        return InvalidFieldError(path + ".toolSpec", "required");
      }
      Tool tool;
      FunctionDefinition fn;
      MODEENVOY_ASSIGN_OR_RETURN(fn.name, StringAt(*spec, "name", path + ".toolSpec"));
      if (spec->contains("description")) {
        MODEENVOY_ASSIGN_OR_RETURN(fn.description,
                                   StringAt(*spec, "description", path + ".toolSpec"));
      }
      if (auto schema = spec->find("inputSchema"); schema != spec->end()) {
        if (!schema->is_object() || !schema->contains("json")) {
          return InvalidFieldError(path + ".toolSpec.inputSchema.json", "required");
        }
        fn.parameters = Dump((*schema)["json"]);
      }
      tool.function = std::move(fn);
      chat.tools.push_back(std::move(tool));
    }
    if (auto choice = config->find("toolChoice"); choice != config->end()) {
      if (!choice->is_object() || choice->size() != 1) {
        return InvalidFieldError("toolConfig.toolChoice", "expected one of auto, any, tool");
      }
      const std::string& kind = choice->begin().key();
      ToolChoice tc;
      if (kind == "auto") {
        tc.mode = "auto";
      } else if (kind == "any") {
        tc.mode = "required";
      } else if (kind == "tool") {
        MODEENVOY_ASSIGN_OR_RETURN(std::string name,
                                   StringAt(choice->begin().value(), "name",
                                            "toolConfig.toolChoice.tool"));
        Json object = {{"type", "function"}, {"function", {{"name", name}}}};
        tc.object = Dump(object);
      } else {
        return InvalidFieldError("toolConfig.toolChoice", "expected one of auto, any, tool");
      }
      chat.tool_choice = std::move(tc);
    }
  }
  return chat;
}

std::string_view StopReasonFor(std::string_view finish) {
  if (finish == "length") return "max_tokens";
  if (finish == "tool_calls" || finish == "function_call") return "tool_use";
  if (finish == "content_filter") return "content_filtered";
  return "end_turn";
}

// Converse content blocks for one unified message (ingress answers).
Json ContentBlocks(const Message& m) {
  Json blocks = Json::array();
  for (const auto& [key, value] : m.extra) {
    if (key != "reasoning_content") continue;
    Json rt = {{"text", Json::parse(value, nullptr, false)}};
    if (const std::string* sig = FindExtra(m.extra, "reasoning_signature")) {
      rt["signature"] = Json::parse(*sig, nullptr, false);
    }
    blocks.push_back({{"reasoningContent", {{"reasoningText", rt}}}});
  }
  std::string text;
  if (m.content.has_value()) {
    if (const auto* s = std::get_if<std::string>(&*m.content)) {
      text = *s;
    } else {
      for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
        text += p.type == ContentPartType::kRefusal ? p.refusal : p.text;
      }
    }
  }
  if (m.refusal.has_value()) text += *m.refusal;
  if (!text.empty()) blocks.push_back({{"text", text}});
  for (const ToolCall& call : m.tool_calls) {
    if (!call.function.has_value()) continue;
    Json input = Json::parse(call.function->arguments, nullptr, false);
    if (input.is_discarded() || !input.is_object()) input = Json::object();
    blocks.push_back({{"toolUse",
                       {{"toolUseId", call.id}, {"name", call.function->name}, {"input", input}}}});
  }
  return blocks;
}

Json UsageJson(const Usage& u) {
  int64_t cached = 0, write = 0;
  if (u.prompt_tokens_details && u.prompt_tokens_details->cached_tokens) {
    cached = *u.prompt_tokens_details->cached_tokens;
  }
  if (const std::string* w = FindExtra(u.extra, "cache_creation_input_tokens")) {
    Json parsed = Json::parse(*w, nullptr, false);
    if (parsed.is_number_integer()) write = parsed.get<int64_t>();
  }
  const int64_t input = std::max<int64_t>(0, u.prompt_tokens - cached - write);
  return Json{{"inputTokens", input},
              {"outputTokens", u.completion_tokens},
              {"totalTokens", input + u.completion_tokens + cached + write},
              {"cacheReadInputTokens", cached},
              {"cacheWriteInputTokens", write}};
}

absl::StatusOr<std::string> BedrockDialect::EncodeResponse(
    const ChatCompletion& completion) const {
  if (completion.choices.size() > 1) {
    return InvalidFieldError("choices", "bedrock answers with one message");
  }
  Json out = Json::object();
  out["metrics"] = {{"latencyMs", 0}};
  Json content = Json::array();
  std::string finish = "stop";
  if (!completion.choices.empty()) {
    content = ContentBlocks(completion.choices[0].message);
    finish = completion.choices[0].finish_reason.value_or("stop");
  }
  out["output"] = {{"message", {{"content", content}, {"role", "assistant"}}}};
  out["stopReason"] = StopReasonFor(finish);
  if (completion.usage.has_value()) out["usage"] = UsageJson(*completion.usage);
  return Dump(out);
}

std::string BedrockDialect::EncodeErrorBody(const absl::Status& status) const {
  return Dump(Json{{"message", std::string(status.message())}});
}

// Unified chunks -> ConverseStream events. A chunk's pieces open content blocks as they
// come: text, reasoning and each tool call get their own contentBlockIndex.
class BedrockStreamEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    if (chunk.choices.size() > 1 || (!chunk.choices.empty() && chunk.choices[0].index != 0)) {
      return InvalidFieldError("choices", "bedrock streams one message");
    }
    if (!started_) {
      Event(out, "messageStart", Json{{"role", "assistant"}});
      started_ = true;
    }
    if (!chunk.choices.empty()) {
      const ChunkChoice& choice = chunk.choices[0];
      const ChatDelta& d = choice.delta;
      if (const std::string* r = FindExtra(d.extra, "reasoning_content")) {
        Json text = Json::parse(*r, nullptr, false);
        if (text.is_string() && !text.get<std::string>().empty()) {
          Open(out, kReasoning, -1, Json());
          Delta(out, Json{{"reasoningContent", {{"text", text}}}});
        }
      }
      if (const std::string* s = FindExtra(d.extra, "reasoning_signature")) {
        Json sig = Json::parse(*s, nullptr, false);
        if (sig.is_string()) {
          Open(out, kReasoning, -1, Json());
          Delta(out, Json{{"reasoningContent", {{"signature", sig}}}});
        }
      }
      std::string text = d.content.value_or("") + d.refusal.value_or("");
      if (!text.empty()) {
        Open(out, kText, -1, Json());
        Delta(out, Json{{"text", text}});
      }
      for (const ToolCallDelta& t : d.tool_calls) {
        if (t.id.has_value() || open_kind_ != kTool || open_tool_ != t.index) {
          Json start = {{"toolUse",
                         {{"toolUseId", t.id.value_or("")},
                          {"name", t.function && t.function->name ? *t.function->name : ""}}}};
          Open(out, kTool, t.index, start);
        }
        if (t.function && t.function->arguments && !t.function->arguments->empty()) {
          Delta(out, Json{{"toolUse", {{"input", *t.function->arguments}}}});
        }
      }
      if (choice.finish_reason.has_value()) {
        CloseBlock(out);
        Event(out, "messageStop", Json{{"stopReason", StopReasonFor(*choice.finish_reason)}});
        stopped_ = true;
      }
    }
    if (chunk.usage.has_value()) {
      Event(out, "metadata", Json{{"metrics", {{"latencyMs", 0}}},
                                  {"usage", UsageJson(*chunk.usage)}});
    }
    return absl::OkStatus();
  }

  void EncodeError(const absl::Status& error, std::string* out) override {
    std::string type = "internalServerException";
    switch (HttpStatusForStatus(error)) {
      case 400: type = "validationException"; break;
      case 429: type = "throttlingException"; break;
      case 503: type = "serviceUnavailableException"; break;
      default: break;
    }
    out->append(EncodeEventStreamMessage(
        {{":message-type", "exception"}, {":exception-type", type},
         {":content-type", "application/json"}},
        Dump(Json{{"message", std::string(error.message())}})));
  }

  absl::Status Finish(std::string* out) override {
    if (!stopped_) {
      CloseBlock(out);
      Event(out, "messageStop", Json{{"stopReason", "end_turn"}});
      stopped_ = true;
    }
    return absl::OkStatus();
  }

 private:
  enum Kind { kNone, kText, kReasoning, kTool };

  void Event(std::string* out, std::string_view type, const Json& payload) {
    out->append(EncodeEventStreamMessage({{":event-type", std::string(type)},
                                          {":content-type", "application/json"},
                                          {":message-type", "event"}},
                                         Dump(payload)));
  }
  void CloseBlock(std::string* out) {
    if (open_kind_ == kNone) return;
    Event(out, "contentBlockStop", Json{{"contentBlockIndex", index_}});
    open_kind_ = kNone;
    ++index_;
  }
  void Open(std::string* out, Kind kind, int64_t tool, const Json& start) {
    if (open_kind_ == kind && (kind != kTool || open_tool_ == tool)) return;
    CloseBlock(out);
    open_kind_ = kind;
    open_tool_ = tool;
    if (!start.is_null()) {
      Event(out, "contentBlockStart", Json{{"contentBlockIndex", index_}, {"start", start}});
    }
  }
  void Delta(std::string* out, const Json& delta) {
    Event(out, "contentBlockDelta", Json{{"contentBlockIndex", index_}, {"delta", delta}});
  }

  bool started_ = false;
  bool stopped_ = false;
  Kind open_kind_ = kNone;
  int64_t open_tool_ = -1;
  int64_t index_ = 0;
};

std::unique_ptr<StreamEncoder> BedrockDialect::NewStreamEncoder() const {
  return std::make_unique<BedrockStreamEncoder>();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewBedrockDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({"region"}));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> region,
                             options.OptionalString("region"));
  if (region.has_value()) {
    for (char c : *region) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
        return InvalidFieldError("region", absl::StrFormat("\"%s\" is not an AWS region", *region));
      }
    }
  }
  return std::make_unique<BedrockDialect>(region.value_or(""));
}

}  // namespace modeenvoy::protocol_internal
