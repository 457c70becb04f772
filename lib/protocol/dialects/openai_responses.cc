// lib/protocol/dialects/openai_responses.cc: the "openai_responses" dialect: OpenAI's
// Responses API (POST /v1/responses), both ways.
//
//   ingress (a client speaking Responses to the gateway)
//     DecodeRequest    `input` (a string, or items: messages with input_text / input_image /
//                      input_file / output_text / refusal parts, function_call,
//                      function_call_output; reasoning items are accepted and not forwarded:
//                      Chat Completions providers take no reasoning input), `instructions`
//                      (a system message first), function and custom tools (hosted tools are
//                      kept as tools of their type, for the host to refuse or pass on),
//                      tool_choice, text.format (-> response_format), text.verbosity,
//                      reasoning.effort (-> reasoning_effort), max_output_tokens
//                      (-> max_completion_tokens), temperature, top_p, top_logprobs,
//                      parallel_tool_calls, metadata, user, safety_identifier,
//                      prompt_cache_key, service_tier, stream; `store` goes to
//                      ChatRequest::store and `previous_response_id` stays in `extra` (the
//                      Responses endpoint of the gateway takes both out); any other member
//                      stays in `extra`.
//     EncodeResponse   a `response` object: output items reasoning, message (output_text,
//                      refusal), function_call; status completed, or incomplete for
//                      finish_reason length (max_output_tokens) and content_filter.
//     NewStreamEncoder the semantic event sequence with monotonic sequence_numbers.
//     EncodeErrorBody  OpenAI's error object.
//   egress (the gateway calling a Responses upstream): the same mapping the other way.
//
// Ids: the response id is the completion's id when it starts with "resp_", else "resp_" +
// that id; items are "msg_<base>", "rs_<base>" and "fc_<call_id>" (deterministic, so a
// replayed stream gives the same bytes).
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/thinking.h"
#include "lib/protocol/dialects/unified_out.h"
#include "lib/protocol/dialects/unified_parts.h"
#include "lib/protocol/error_internal.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

constexpr std::string_view kName = "openai_responses";
// The smallest max_output_tokens the Responses API takes ("Expected a value >= 16").
constexpr int64_t kMinOutputTokens = 16;

std::string Idx(std::string_view parent, size_t i) {
  std::string s(parent);
  s += '[';
  s += std::to_string(i);
  s += ']';
  return s;
}
std::string Dot(std::string_view parent, std::string_view key) {
  std::string s(parent);
  s += '.';
  s += key;
  return s;
}

absl::Status NotSupported(std::string_view path, std::string_view why) {
  return InvalidFieldError(path, std::string(why));
}

// A bad stream from the provider: the client sees a 502.
absl::Status BadStream(std::string_view what) {
  return WithHttpStatus(
      absl::InvalidArgumentError(absl::StrCat("openai_responses stream: ",
                                              core_internal::ToAbsl(what))),
      502);
}

// ---------------------------------------------------------------------------------------
// Typed pull reads over one document; every error names its field path.

// A field path, spelled out only when an error needs it: the reader of a 1 KB request visits
// dozens of members and array elements and reports an error on none of them, so building
// "input[3].content[0]" as a heap string for each was most of its allocations.
struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // a member name; empty for an array index or the top
  int64_t index = -1;    // an array index when >= 0

  Path Member(std::string_view name) const { return Path{this, name, -1}; }
  Path Index(size_t i) const { return Path{this, {}, static_cast<int64_t>(i)}; }

  std::string ToString() const {
    std::string out;
    AppendTo(&out);
    return out;
  }
  void AppendTo(std::string* out) const {
    if (parent != nullptr) parent->AppendTo(out);
    if (index >= 0) {
      out->push_back('[');
      out->append(std::to_string(index));
      out->push_back(']');
    } else if (!key.empty()) {
      if (!out->empty()) out->push_back('.');
      out->append(key);
    }
  }
};
// A path that names the member `key` of `parent`, without a Path for it.
inline std::string Dot(const Path& parent, std::string_view key) {
  return parent.Member(key).ToString();
}
// Whether a member name is `name` (a literal): the length first, then a compare of a
// constant size, inline. (The reader compares each name against a dozen literals; GCC
// called string_view's compare out of line for each.)
template <size_t N>
[[gnu::always_inline]] inline bool Is(std::string_view key, const char (&name)[N]) {
  return key.size() == N - 1 && std::memcmp(key.data(), name, N - 1) == 0;
}

inline std::string PathStr(std::string_view path) { return std::string(path); }
inline std::string PathStr(const Path& path) { return path.ToString(); }

// The member names of one object, for the duplicate check: views into the input while they
// are few and unescaped (a scan of a few pointers and lengths, no copy), else a
// MemberNameSet (a name read through an escape lives only until the next member is read;
// many names would make the scan quadratic).
class SeenKeys {
 public:
  explicit SeenKeys(std::string_view input) : input_(input) {}

  // False when `key` was inserted before.
  bool Insert(std::string_view key) {
    const bool in_input = key.data() >= input_.data() &&
                          key.data() + key.size() <= input_.data() + input_.size();
    if (!set_.has_value()) {
      for (size_t i = 0; i < count_; ++i) {
        if (views_[i].size() == key.size() &&
            std::memcmp(views_[i].data(), key.data(), key.size()) == 0) {
          return false;
        }
      }
      if (in_input && count_ < kViews) {
        views_[count_++] = key;
        return true;
      }
      set_.emplace();
      for (size_t i = 0; i < count_; ++i) set_->Insert(views_[i]);
    }
    return set_->Insert(key);
  }

 private:
  static constexpr size_t kViews = 16;
  std::string_view input_;
  std::string_view views_[kViews];
  size_t count_ = 0;
  std::optional<MemberNameSet> set_;
};

class Pull {
 public:
  explicit Pull(std::string_view text) : text_(text), r_(text, kMaxJsonDepth) {}

  absl::Status Syntax() const { return r_.status(); }
  JsonReader& reader() { return r_; }

  absl::Status Type(JsonType* type) {
    if (!r_.Peek(type)) return r_.status();
    return absl::OkStatus();
  }
  template <typename P>
  absl::Status String(const P& path, std::string* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t != JsonType::kString) return WrongType(PathStr(path), "string", t);
    if (!r_.ReadString(out)) return r_.status();
    return absl::OkStatus();
  }
  // null reads as absent.
  template <typename P>
  absl::Status OptString(const P& path, std::optional<std::string>* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t == JsonType::kNull) return Null(out);
    std::string s;
    MODEENVOY_RETURN_IF_ERROR(String(path, &s));
    *out = std::move(s);
    return absl::OkStatus();
  }
  template <typename P>
  absl::Status OptDouble(const P& path, std::optional<double>* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t == JsonType::kNull) return Null(out);
    if (t != JsonType::kNumber) return WrongType(PathStr(path), "number", t);
    std::string_view text;
    if (!r_.ReadNumber(&text)) return r_.status();
    double v = 0;
    if (!NumberToDouble(text, &v)) return InvalidFieldError(PathStr(path), "number out of range");
    *out = v;
    return absl::OkStatus();
  }
  template <typename P>
  absl::Status OptInt(const P& path, std::optional<int64_t>* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t == JsonType::kNull) return Null(out);
    if (t != JsonType::kNumber) return WrongType(PathStr(path), "integer", t);
    std::string_view text;
    if (!r_.ReadNumber(&text)) return r_.status();
    int64_t v = 0;
    if (!NumberToInt64(text, &v)) {
      return InvalidFieldError(PathStr(path), "expected integer, got " + std::string(text));
    }
    *out = v;
    return absl::OkStatus();
  }
  template <typename P>
  absl::Status OptBool(const P& path, std::optional<bool>* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t == JsonType::kNull) return Null(out);
    if (t != JsonType::kBool) return WrongType(PathStr(path), "boolean", t);
    bool v = false;
    if (!r_.ReadBool(&v)) return r_.status();
    *out = v;
    return absl::OkStatus();
  }
  // The compact text of the next value, which must be of type `want`.
  template <typename P>
  absl::Status Raw(const P& path, JsonType want, std::string* out) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t != want) return WrongType(PathStr(path), JsonTypeName(want), t);
    out->clear();
    if (!r_.CaptureValue(out)) return r_.status();
    return absl::OkStatus();
  }
  absl::Status Capture(std::string* out) {
    out->clear();
    if (!r_.CaptureValue(out)) return r_.status();
    return absl::OkStatus();
  }
  absl::Status Skip() {
    if (!r_.SkipValue()) return r_.status();
    return absl::OkStatus();
  }
  // Calls on_member(key) for each member (which must consume the value); a repeated name is
  // an error naming it. The key view stays valid for the whole call (nested objects read
  // their names into their own scratch).
  template <typename P, typename F>
  absl::Status Object(const P& path, F&& on_member) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t != JsonType::kObject) return WrongType(PathStr(path), "object", t);
    if (!r_.BeginObject()) return r_.status();
    SeenKeys names(text_);
    bool first = true;
    std::string scratch;
    for (;;) {
      std::string_view key;
      bool has = false;
      if (!r_.NextMember(&first, &key, &scratch, &has)) return r_.status();
      if (!has) return absl::OkStatus();
      if (!names.Insert(key)) {
        return InvalidFieldError(PathStr(path) + "." + std::string(key), "duplicate key");
      }
      MODEENVOY_RETURN_IF_ERROR(on_member(key));
    }
  }
  template <typename P, typename F>
  absl::Status Array(const P& path, F&& on_element) {
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(Type(&t));
    if (t != JsonType::kArray) return WrongType(PathStr(path), "array", t);
    if (!r_.BeginArray()) return r_.status();
    bool first = true;
    for (size_t i = 0;; ++i) {
      bool has = false;
      if (!r_.NextElement(&first, &has)) return r_.status();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(on_element(i));
    }
  }
  absl::Status End() {
    if (!r_.ExpectEnd()) return r_.status();
    return absl::OkStatus();
  }

 private:
  template <typename T>
  absl::Status Null(std::optional<T>* out) {
    out->reset();
    if (!r_.ReadNull()) return r_.status();
    return absl::OkStatus();
  }
  std::string_view text_;
  JsonReader r_;
};

// The decoded text of a raw JSON string value ("\"a\\nb\"" -> "a\nb"); empty for other
// values.
std::string RawStringValue(std::string_view raw) {
  JsonReader r(raw, kMaxJsonDepth);
  std::string out;
  JsonType t;
  if (!r.Peek(&t) || t != JsonType::kString || !r.ReadString(&out)) return {};
  return out;
}

const std::string* FindExtra(const ExtraFields& extra, std::string_view name) {
  for (const auto& [key, value] : extra) {
    if (key == name) return &value;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Ingress: a Responses request -> the unified request.

// One content part of an input message, read member by member into `*part` (an element
// the caller made in place).
absl::Status ReadInputPart(Pull& p, const Path& path, ContentPart* part) {
  std::string type;
  std::optional<std::string> text, image_url, file_id, detail, file_data, filename, file_url,
      refusal;
  MODEENVOY_RETURN_IF_ERROR(p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    if (Is(key, "type")) return p.String(at, &type);
    if (Is(key, "text")) return p.OptString(at, &text);
    if (Is(key, "image_url")) return p.OptString(at, &image_url);
    if (Is(key, "file_id")) return p.OptString(at, &file_id);
    if (Is(key, "detail")) return p.OptString(at, &detail);
    if (Is(key, "file_data")) return p.OptString(at, &file_data);
    if (Is(key, "filename")) return p.OptString(at, &filename);
    if (Is(key, "file_url")) return p.OptString(at, &file_url);
    if (Is(key, "refusal")) return p.OptString(at, &refusal);
    if (Is(key, "annotations") || Is(key, "logprobs")) return p.Skip();  // output_text history
    return p.Capture(&part->extra.emplace_back(std::string(key), std::string()).second);
  }));
  if (type == "input_text" || type == "output_text" || type == "text") {
    if (!text) return InvalidFieldError(Dot(path, "text"), "Field required");
    part->type = ContentPartType::kText;
    part->text = std::move(*text);
  } else if (type == "input_image") {
    if (!image_url) {
      if (file_id) {
        return NotSupported(Dot(path, "file_id"),
                            "uploaded file ids are not supported here; send image_url "
                            "(an https or data: URL)");
      }
      return InvalidFieldError(Dot(path, "image_url"), "Field required");
    }
    part->type = ContentPartType::kImageUrl;
    ImageUrl& image = part->image_url.emplace();
    image.url = std::move(*image_url);
    if (detail) {
      if (*detail != "auto" && *detail != "low" && *detail != "high") {
        return InvalidFieldError(Dot(path, "detail"), "must be auto, low or high");
      }
      image.detail = std::move(*detail);
    }
  } else if (type == "input_file") {
    if (file_url) {
      return NotSupported(Dot(path, "file_url"), "file URLs are not supported; send file_data");
    }
    if (!file_data && !file_id) {
      return InvalidFieldError(Dot(path, "file_data"), "Field required (or file_id)");
    }
    part->type = ContentPartType::kFile;
    FileInput& file = part->file.emplace();
    file.file_data = std::move(file_data);
    file.file_id = std::move(file_id);
    file.filename = std::move(filename);
  } else if (type == "refusal") {
    if (!refusal) return InvalidFieldError(Dot(path, "refusal"), "Field required");
    part->type = ContentPartType::kRefusal;
    part->refusal = std::move(*refusal);
  } else if (type.empty()) {
    return InvalidFieldError(Dot(path, "type"), "Field required");
  } else {
    return InvalidFieldError(Dot(path, "type"), "unsupported content type \"" + type + "\"");
  }
  return absl::OkStatus();
}

// A message's or a function_call_output's content: a string or an array of parts, read
// into `*out` in place.
absl::Status ReadContent(Pull& p, const Path& path, MessageContent* out) {
  JsonType t;
  MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
  if (t == JsonType::kString) return p.String(path, &out->emplace<std::string>());
  if (t != JsonType::kArray) return WrongType(path.ToString(), "string or array", t);
  std::vector<ContentPart>& parts = out->emplace<std::vector<ContentPart>>();
  return p.Array(path, [&](size_t i) {
    return ReadInputPart(p, path.Index(i), &parts.emplace_back());
  });
}

// Text-only content (system, developer, assistant, tool output) as one string; a part of
// another type is refused by path.
absl::Status TextOnly(const Path& path, MessageContent& content, bool allow_refusal,
                      std::string* text, std::string* refusal) {
  if (auto* s = std::get_if<std::string>(&content)) {
    *text = std::move(*s);
    return absl::OkStatus();
  }
  auto& parts = std::get<std::vector<ContentPart>>(content);
  for (size_t i = 0; i < parts.size(); ++i) {
    // The first text is moved, not copied (the content is spent): one part is the usual.
    if (parts[i].type == ContentPartType::kText) {
      if (text->empty()) {
        *text = std::move(parts[i].text);
      } else {
        *text += parts[i].text;
      }
    } else if (parts[i].type == ContentPartType::kRefusal && allow_refusal) {
      if (refusal->empty()) {
        *refusal = std::move(parts[i].refusal);
      } else {
        *refusal += parts[i].refusal;
      }
    } else {
      return InvalidFieldError(path.Index(i).Member("type").ToString(),
                               "only text parts are allowed here");
    }
  }
  return absl::OkStatus();
}

struct InputItem {
  std::string type;
  std::optional<std::string> role, call_id, name, arguments;
  std::optional<MessageContent> content, output;
};

absl::Status ReadInputItem(Pull& p, const Path& path, InputItem* item) {
  return p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    if (Is(key, "type")) return p.String(at, &item->type);
    if (Is(key, "role")) return p.OptString(at, &item->role);
    if (Is(key, "call_id")) return p.OptString(at, &item->call_id);
    if (Is(key, "name")) return p.OptString(at, &item->name);
    if (Is(key, "arguments")) return p.OptString(at, &item->arguments);
    if (Is(key, "content")) {
      JsonType t;
      MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
      if (t == JsonType::kNull) return p.Skip();
      return ReadContent(p, at, &item->content.emplace());
    }
    if (Is(key, "output")) return ReadContent(p, at, &item->output.emplace());
    // id, status, phase, summary, encrypted_content, ...: item bookkeeping with no place in
    // a chat message.
    return p.Skip();
  });
}

// Appends the unified message(s) for one input item to `*messages`, built in place.
absl::Status AddInputItem(const Path& path, InputItem& item, std::vector<Message>* messages) {
  std::string_view type = item.type;
  if (type.empty() && item.role) type = "message";
  if (type == "message") {
    if (!item.role) return InvalidFieldError(Dot(path, "role"), "Field required");
    std::optional<Role> role = RoleFromName(*item.role);
    if (!role || *role == Role::kTool || *role == Role::kFunction) {
      return InvalidFieldError(Dot(path, "role"),
                               "must be user, assistant, system or developer");
    }
    if (!item.content) return InvalidFieldError(Dot(path, "content"), "Field required");
    Message& m = messages->emplace_back();
    m.role = *role;
    if (*role == Role::kUser) {
      m.content = std::move(*item.content);
    } else {
      std::string text, refusal;
      MODEENVOY_RETURN_IF_ERROR(TextOnly(path.Member("content"), *item.content,
                                         *role == Role::kAssistant, &text, &refusal));
      if (!refusal.empty()) m.refusal = std::move(refusal);
      if (!text.empty() || !m.refusal) m.content = std::move(text);
    }
    return absl::OkStatus();
  }
  if (type == "function_call") {
    if (!item.call_id || item.call_id->empty()) {
      return InvalidFieldError(Dot(path, "call_id"), "Field required");
    }
    if (!item.name || item.name->empty()) {
      return InvalidFieldError(Dot(path, "name"), "Field required");
    }
    // Calls made in one turn are one assistant message (with its text, if any).
    if (messages->empty() || messages->back().role != Role::kAssistant) {
      messages->emplace_back().role = Role::kAssistant;
    }
    ToolCall& call = messages->back().tool_calls.emplace_back();
    call.id = std::move(*item.call_id);
    FunctionCall& f = call.function.emplace();
    f.name = std::move(*item.name);
    f.arguments = item.arguments ? std::move(*item.arguments) : std::string("{}");
    return absl::OkStatus();
  }
  if (type == "function_call_output") {
    if (!item.call_id || item.call_id->empty()) {
      return InvalidFieldError(Dot(path, "call_id"), "Field required");
    }
    if (!item.output) return InvalidFieldError(Dot(path, "output"), "Field required");
    std::string text, refusal;
    MODEENVOY_RETURN_IF_ERROR(
        TextOnly(path.Member("output"), *item.output, false, &text, &refusal));
    Message& m = messages->emplace_back();
    m.role = Role::kTool;
    m.tool_call_id = std::move(*item.call_id);
    m.content = std::move(text);
    return absl::OkStatus();
  }
  if (type == "reasoning") return absl::OkStatus();  // see the file comment
  if (type == "item_reference") {
    return NotSupported(Dot(path, "type"),
                        "item_reference is not supported; send the items, or continue with "
                        "previous_response_id");
  }
  if (type.empty()) return InvalidFieldError(Dot(path, "type"), "Field required");
  return InvalidFieldError(Dot(path, "type"),
                           "unsupported input item type \"" + std::string(type) + "\"");
}

absl::Status ReadTool(Pull& p, const Path& path, Tool* tool) {
  std::string type;
  std::optional<std::string> name, description, parameters;
  std::optional<bool> strict;
  ExtraFields other;
  MODEENVOY_RETURN_IF_ERROR(p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    if (Is(key, "type")) return p.String(at, &type);
    if (Is(key, "name")) return p.OptString(at, &name);
    if (Is(key, "description")) return p.OptString(at, &description);
    if (Is(key, "strict")) return p.OptBool(at, &strict);
    if (Is(key, "parameters")) {
      JsonType t;
      MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
      if (t == JsonType::kNull) return p.Skip();
      return p.Raw(at, JsonType::kObject, &parameters.emplace());
    }
    return p.Capture(&other.emplace_back(std::string(key), std::string()).second);
  }));
  if (type.empty()) return InvalidFieldError(Dot(path, "type"), "Field required");
  if (type == "function") {
    if (!name || name->empty()) return InvalidFieldError(Dot(path, "name"), "Field required");
    tool->type = "function";
    FunctionDefinition& f = tool->function.emplace();
    f.name = std::move(*name);
    f.description = std::move(description);
    f.parameters = std::move(parameters);
    f.strict = strict;
    f.extra = std::move(other);
    return absl::OkStatus();
  }
  if (type == "custom") {
    if (!name || name->empty()) return InvalidFieldError(Dot(path, "name"), "Field required");
    std::string custom = "{\"name\":";
    AppendJsonString(&custom, *name);
    if (description) {
      custom += ",\"description\":";
      AppendJsonString(&custom, *description);
    }
    for (const auto& [k, v] : other) {
      custom += ',';
      AppendJsonString(&custom, k);
      custom += ':';
      custom += v;
    }
    custom += '}';
    tool->type = "custom";
    tool->extra.emplace_back("custom", std::move(custom));
    return absl::OkStatus();
  }
  // A hosted tool (web_search, file_search, ...): kept with its members for a host that
  // passes it to OpenAI, or refuses it naming tools[i].type.
  tool->type = std::move(type);
  if (name) {
    std::string raw;  // a JSON text, as every member in `extra`
    AppendJsonString(&raw, *name);
    tool->extra.emplace_back("name", std::move(raw));
  }
  tool->extra.insert(tool->extra.end(), other.begin(), other.end());
  return absl::OkStatus();
}

absl::Status ReadToolChoice(Pull& p, ToolChoice* choice) {
  JsonType t;
  MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
  if (t == JsonType::kString) {
    MODEENVOY_RETURN_IF_ERROR(p.String("tool_choice", &choice->mode));
    if (choice->mode != "none" && choice->mode != "auto" && choice->mode != "required") {
      return InvalidFieldError("tool_choice", "must be none, auto or required, or an object");
    }
    return absl::OkStatus();
  }
  std::string raw;
  MODEENVOY_RETURN_IF_ERROR(p.Raw("tool_choice", JsonType::kObject, &raw));
  Pull inner(raw);
  std::string type;
  std::optional<std::string> name;
  MODEENVOY_RETURN_IF_ERROR(inner.Object("tool_choice", [&](std::string_view key) {
    if (Is(key, "type")) return inner.String("tool_choice.type", &type);
    if (Is(key, "name")) return inner.OptString("tool_choice.name", &name);
    return inner.Skip();
  }));
  if (type == "function") {
    if (!name || name->empty()) return InvalidFieldError("tool_choice.name", "Field required");
    choice->object = "{\"type\":\"function\",\"function\":{\"name\":";
    AppendJsonString(&choice->object, *name);
    choice->object += "}}";
    return absl::OkStatus();
  }
  if (type == "custom") {
    if (!name || name->empty()) return InvalidFieldError("tool_choice.name", "Field required");
    choice->object = "{\"type\":\"custom\",\"custom\":{\"name\":";
    AppendJsonString(&choice->object, *name);
    choice->object += "}}";
    return absl::OkStatus();
  }
  if (type == "allowed_tools") {
    return NotSupported("tool_choice.type", "allowed_tools is not supported");
  }
  if (type.empty()) return InvalidFieldError("tool_choice.type", "Field required");
  choice->object = std::move(raw);  // a hosted tool's choice, as the tools are kept
  return absl::OkStatus();
}

// text.format -> response_format; text.verbosity -> verbosity.
absl::Status ReadText(Pull& p, ChatRequest* chat) {
  return p.Object("text", [&](std::string_view key) -> absl::Status {
    if (Is(key, "verbosity")) return p.OptString("text.verbosity", &chat->verbosity);
    if (!Is(key, "format")) {
      std::string raw;
      MODEENVOY_RETURN_IF_ERROR(p.Capture(&raw));
      return InvalidFieldError("text." + std::string(key), "unknown field");
    }
    std::string type;
    std::optional<std::string> name, description, schema;
    std::optional<bool> strict;
    MODEENVOY_RETURN_IF_ERROR(p.Object("text.format", [&](std::string_view k) -> absl::Status {
      const Path text_path{nullptr, "text", -1};
      const Path format_path = text_path.Member("format");  // `at` points at it
      const Path at = format_path.Member(k);
      if (Is(k, "type")) return p.String(at, &type);
      if (Is(k, "name")) return p.OptString(at, &name);
      if (Is(k, "description")) return p.OptString(at, &description);
      if (Is(k, "strict")) return p.OptBool(at, &strict);
      if (Is(k, "schema")) {
        std::string raw;
        MODEENVOY_RETURN_IF_ERROR(p.Raw(at, JsonType::kObject, &raw));
        schema = std::move(raw);
        return absl::OkStatus();
      }
      return InvalidFieldError(at.ToString(), "unknown field");
    }));
    if (type == "text") return absl::OkStatus();
    if (type == "json_object") {
      chat->response_format = R"({"type":"json_object"})";
      return absl::OkStatus();
    }
    if (type != "json_schema") {
      return InvalidFieldError("text.format.type", "must be text, json_schema or json_object");
    }
    if (!name || name->empty()) return InvalidFieldError("text.format.name", "Field required");
    if (!schema) return InvalidFieldError("text.format.schema", "Field required");
    std::string rf = R"({"type":"json_schema","json_schema":{"name":)";
    AppendJsonString(&rf, *name);
    if (description) {
      rf += ",\"description\":";
      AppendJsonString(&rf, *description);
    }
    rf += ",\"schema\":";
    rf += *schema;
    if (strict) rf += *strict ? ",\"strict\":true" : ",\"strict\":false";
    rf += "}}";
    chat->response_format = std::move(rf);
    return absl::OkStatus();
  });
}

// `on_member`, when non-null, gets each top-level member's name and value text once read
// (core_internal::ScopedBodyMemberObserver).
absl::StatusOr<ChatRequest> DecodeResponsesRequest(
    std::string_view body, const core_internal::BodyMemberObserver* on_member) {
  Pull p(body);
  ChatRequest chat;
  std::optional<std::string> instructions;
  bool have_input = false;
  // The input's messages go straight into chat.messages, after the system message of
  // `instructions` when that came first (as clients send it); else it is inserted first at
  // the end.
  bool system_placed = false;
  auto read_member = [&](std::string_view key) -> absl::Status {
    if (Is(key, "model")) return p.String("model", &chat.model);
    if (Is(key, "instructions")) {
      MODEENVOY_RETURN_IF_ERROR(p.OptString("instructions", &instructions));
      if (!have_input && instructions && !instructions->empty()) {
        chat.messages.push_back(MakeMessage(Role::kSystem, std::move(*instructions)));
        system_placed = true;
      }
      return absl::OkStatus();
    }
    if (Is(key, "input")) {
      have_input = true;
      JsonType t;
      MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
      if (t == JsonType::kString) {
        Message& m = chat.messages.emplace_back();
        m.role = Role::kUser;
        return p.String("input", &m.content.emplace().emplace<std::string>());
      }
      const Path input{nullptr, "input", -1};
      // The count is not known before the walk; a start that spares the first regrowths.
      chat.messages.reserve(chat.messages.size() + 8);
      return p.Array(input, [&](size_t i) {
        const Path at = input.Index(i);
        InputItem item;
        MODEENVOY_RETURN_IF_ERROR(ReadInputItem(p, at, &item));
        return AddInputItem(at, item, &chat.messages);
      });
    }
    if (Is(key, "tools")) {
      const Path tools{nullptr, "tools", -1};
      return p.Array(tools, [&](size_t i) {
        return ReadTool(p, tools.Index(i), &chat.tools.emplace_back());
      });
    }
    if (Is(key, "tool_choice")) {
      ToolChoice choice;
      MODEENVOY_RETURN_IF_ERROR(ReadToolChoice(p, &choice));
      chat.tool_choice = std::move(choice);
      return absl::OkStatus();
    }
    if (Is(key, "text")) return ReadText(p, &chat);
    if (Is(key, "reasoning")) {
      return p.Object("reasoning", [&](std::string_view k) -> absl::Status {
        if (Is(k, "effort")) return p.OptString("reasoning.effort", &chat.reasoning_effort);
        // summary / generate_summary: the unified form has no summary switch; a provider
        // that reasons reports its reasoning text as it does.
        if (Is(k, "summary") || Is(k, "generate_summary")) return p.Skip();
        return InvalidFieldError("reasoning." + std::string(k), "unknown field");
      });
    }
    if (Is(key, "max_output_tokens")) return p.OptInt(key, &chat.max_completion_tokens);
    if (Is(key, "temperature")) return p.OptDouble(key, &chat.temperature);
    if (Is(key, "top_p")) return p.OptDouble(key, &chat.top_p);
    if (Is(key, "top_logprobs")) {
      MODEENVOY_RETURN_IF_ERROR(p.OptInt(key, &chat.top_logprobs));
      if (chat.top_logprobs) chat.logprobs = true;
      return absl::OkStatus();
    }
    if (Is(key, "stream")) return p.OptBool(key, &chat.stream);
    if (Is(key, "parallel_tool_calls")) return p.OptBool(key, &chat.parallel_tool_calls);
    if (Is(key, "store")) return p.OptBool(key, &chat.store);
    if (Is(key, "user")) return p.OptString(key, &chat.user);
    if (Is(key, "safety_identifier")) return p.OptString(key, &chat.safety_identifier);
    if (Is(key, "prompt_cache_key")) return p.OptString(key, &chat.prompt_cache_key);
    if (Is(key, "service_tier")) return p.OptString(key, &chat.service_tier);
    if (Is(key, "metadata")) {
      JsonType t;
      MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
      if (t == JsonType::kNull) return p.Skip();
      std::string raw;
      MODEENVOY_RETURN_IF_ERROR(p.Raw(key, JsonType::kObject, &raw));
      chat.metadata = std::move(raw);
      return absl::OkStatus();
    }
    // previous_response_id, include, truncation, ...: kept for the host.
    std::string raw;
    MODEENVOY_RETURN_IF_ERROR(p.Capture(&raw));
    chat.extra.emplace_back(key, std::move(raw));
    return absl::OkStatus();
  };
  if (on_member == nullptr) {
    MODEENVOY_RETURN_IF_ERROR(p.Object("body", read_member));
  } else {
    MODEENVOY_RETURN_IF_ERROR(p.Object("body", [&](std::string_view key) -> absl::Status {
      const char* start = p.reader().remaining().data();
      MODEENVOY_RETURN_IF_ERROR(read_member(key));
      (*on_member)(key, std::string_view(start, static_cast<size_t>(
                                                    p.reader().remaining().data() - start)));
      return absl::OkStatus();
    }));
  }
  MODEENVOY_RETURN_IF_ERROR(p.End());
  if (chat.model.empty()) return InvalidFieldError("model", "Field required");
  if (!have_input && FindExtra(chat.extra, "previous_response_id") == nullptr) {
    return InvalidFieldError("input", "Field required");
  }
  if (chat.temperature && (*chat.temperature < 0 || *chat.temperature > 2)) {
    return InvalidFieldError("temperature", "must be between 0 and 2");
  }
  if (chat.top_p && (*chat.top_p < 0 || *chat.top_p > 1)) {
    return InvalidFieldError("top_p", "must be between 0 and 1");
  }
  if (chat.max_completion_tokens && *chat.max_completion_tokens < 1) {
    return InvalidFieldError("max_output_tokens", "must be >= 1");
  }
  if (chat.top_logprobs && (*chat.top_logprobs < 0 || *chat.top_logprobs > 20)) {
    return InvalidFieldError("top_logprobs", "must be between 0 and 20");
  }
  if (!system_placed && instructions && !instructions->empty()) {
    chat.messages.insert(chat.messages.begin(),
                         MakeMessage(Role::kSystem, std::move(*instructions)));
  }
  return chat;
}

// ---------------------------------------------------------------------------------------
// Ingress: the unified answer -> Responses output.

std::string ResponseId(std::string_view id) {
  if (id.substr(0, 5) == "resp_") return std::string(id);
  return "resp_" + std::string(id);
}
// The part of the response id that item ids repeat.
std::string_view IdBase(std::string_view response_id) { return response_id.substr(5); }

// Incomplete reason for a finish_reason; empty when the response is complete.
std::string_view IncompleteReason(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_output_tokens";
  if (finish_reason == "content_filter") return "content_filter";
  return {};
}

void AppendResponsesUsage(std::string* out, const Usage& u) {
  int64_t cached = 0, reasoning = 0, cache_write = 0;
  if (u.prompt_tokens_details) cached = u.prompt_tokens_details->cached_tokens.value_or(0);
  if (u.completion_tokens_details) {
    reasoning = u.completion_tokens_details->reasoning_tokens.value_or(0);
  }
  if (const std::string* w = FindExtra(u.extra, "cache_creation_input_tokens")) {
    NumberToInt64(*w, &cache_write);
  }
  out->append("{\"input_tokens\":");
  AppendJsonInt(out, u.prompt_tokens);
  out->append(",\"input_tokens_details\":{\"cached_tokens\":");
  AppendJsonInt(out, cached);
  out->append(",\"cache_write_tokens\":");
  AppendJsonInt(out, cache_write);
  out->append("},\"output_tokens\":");
  AppendJsonInt(out, u.completion_tokens);
  out->append(",\"output_tokens_details\":{\"reasoning_tokens\":");
  AppendJsonInt(out, reasoning);
  out->append("},\"total_tokens\":");
  AppendJsonInt(out, u.total_tokens);
  out->append("}");
}

// The response object. `output` is the items' JSON joined by commas; `status` is
// "in_progress", "completed", "incomplete" or "failed"; `tail` is appended raw before the
// closing brace (",\"usage\":...", ",\"error\":..." etc.).
void AppendResponseObject(std::string* out, std::string_view id, int64_t created,
                          std::string_view model, std::string_view status,
                          std::string_view incomplete_reason, std::string_view output,
                          std::string_view usage_json, std::string_view error_json) {
  out->append("{\"id\":");
  AppendJsonString(out, id);
  out->append(",\"object\":\"response\",\"created_at\":");
  AppendJsonInt(out, created);
  out->append(",\"status\":\"");
  out->append(status);
  out->append("\",\"error\":");
  out->append(error_json.empty() ? std::string_view("null") : error_json);
  out->append(",\"incomplete_details\":");
  if (incomplete_reason.empty()) {
    out->append("null");
  } else {
    out->append("{\"reason\":\"");
    out->append(incomplete_reason);
    out->append("\"}");
  }
  out->append(",\"instructions\":null,\"metadata\":{},\"model\":");
  AppendJsonString(out, model);
  out->append(",\"output\":[");
  out->append(output);
  out->append("],\"parallel_tool_calls\":true,\"temperature\":null,\"tool_choice\":\"auto\","
              "\"tools\":[],\"top_p\":null,\"usage\":");
  out->append(usage_json.empty() ? std::string_view("null") : usage_json);
  out->append("}");
}

void AppendMessageItem(std::string* out, std::string_view id, std::string_view status,
                       const std::optional<std::string>& text,
                       const std::optional<std::string>& refusal) {
  out->append("{\"id\":");
  AppendJsonString(out, id);
  out->append(",\"type\":\"message\",\"status\":\"");
  out->append(status);
  out->append("\",\"role\":\"assistant\",\"content\":[");
  if (text) {
    out->append("{\"type\":\"output_text\",\"text\":");
    AppendJsonString(out, *text);
    out->append(",\"annotations\":[],\"logprobs\":[]}");
  }
  if (refusal) {
    if (text) out->push_back(',');
    out->append("{\"type\":\"refusal\",\"refusal\":");
    AppendJsonString(out, *refusal);
    out->append("}");
  }
  out->append("]}");
}

void AppendFunctionCallItem(std::string* out, std::string_view call_id, std::string_view name,
                            std::string_view arguments, std::string_view status) {
  out->append("{\"id\":");
  AppendJsonString(out, absl::StrCat("fc_", core_internal::ToAbsl(call_id)));
  out->append(",\"type\":\"function_call\",\"status\":\"");
  out->append(status);
  out->append("\",\"call_id\":");
  AppendJsonString(out, call_id);
  out->append(",\"name\":");
  AppendJsonString(out, name);
  out->append(",\"arguments\":");
  AppendJsonString(out, arguments);
  out->append("}");
}

void AppendReasoningItem(std::string* out, std::string_view id, const std::string* text) {
  out->append("{\"id\":");
  AppendJsonString(out, id);
  out->append(",\"type\":\"reasoning\",\"summary\":[]");
  if (text != nullptr) {
    out->append(",\"content\":[{\"type\":\"reasoning_text\",\"text\":");
    AppendJsonString(out, *text);
    out->append("}]");
  }
  out->append("}");
}

// The reasoning text a unified message or delta carries ("reasoning_content", or the
// "reasoning" of some OpenAI-compatible servers), decoded; nullopt when there is none.
std::optional<std::string> ReasoningOf(const ExtraFields& extra) {
  const std::string* raw = FindExtra(extra, "reasoning_content");
  if (raw == nullptr) raw = FindExtra(extra, "reasoning");
  if (raw == nullptr || raw->empty() || (*raw)[0] != '"') return std::nullopt;
  return RawStringValue(*raw);
}

// Text and thinking of content given as an array of parts (Mistral's reasoning models:
// [{"type":"thinking","thinking":[{"type":"text","text":...}]},{"type":"text","text":...}]),
// appended to *text and *reasoning. Parts of other types carry neither.
void AppendPartsText(std::string_view raw_array, std::string* text, std::string* reasoning) {
  core_internal::Json parts =
      core_internal::Json::parse(raw_array, nullptr, /*allow_exceptions=*/false);
  if (!parts.is_array()) return;
  auto text_of = [](const core_internal::Json& part, std::string* out) {
    if (part.is_object() && part.contains("text") && part["text"].is_string()) {
      *out += part["text"].get<std::string>();
    }
  };
  for (const core_internal::Json& part : parts) {
    if (!part.is_object()) continue;
    const std::string type = part.value("type", "");
    if (type == "text") text_of(part, text);
    if (type == "thinking" && part.contains("thinking")) {
      const core_internal::Json& thinking = part["thinking"];
      if (thinking.is_string()) *reasoning += thinking.get<std::string>();
      if (thinking.is_array()) {
        for (const core_internal::Json& t : thinking) text_of(t, reasoning);
      }
    }
  }
}

// The same for the parts of a parsed message: kText parts are text, kOther parts (kept with
// every member in `extra`) are read as above.
void AppendPartsText(const std::vector<ContentPart>& parts, std::string* text,
                     std::string* reasoning) {
  for (const ContentPart& part : parts) {
    if (part.type == ContentPartType::kText) {
      *text += part.text;
    } else if (part.type == ContentPartType::kOther) {
      std::string raw = "[{";
      for (size_t i = 0; i < part.extra.size(); ++i) {
        if (i > 0) raw += ',';
        AppendJsonString(&raw, part.extra[i].first);
        raw += ':';
        raw += part.extra[i].second;
      }
      raw += "}]";
      AppendPartsText(raw, text, reasoning);
    }
  }
}

absl::StatusOr<std::string> EncodeResponsesBody(const ChatCompletion& completion) {
  if (completion.choices.size() > 1) {
    return InvalidFieldError("choices", "a Responses answer carries one choice");
  }
  const std::string id = ResponseId(completion.id);
  const std::string base(IdBase(id));
  std::string output;
  std::string_view reason;
  if (!completion.choices.empty()) {
    const ChatChoice& choice = completion.choices.front();
    const Message& m = choice.message;
    reason = IncompleteReason(choice.finish_reason.value_or(""));
    auto next = [&]() -> std::string* {
      if (!output.empty()) output.push_back(',');
      return &output;
    };
    std::optional<std::string> reasoning = ReasoningOf(m.extra);
    std::optional<std::string> text;
    if (m.content) {
      if (const auto* s = std::get_if<std::string>(&*m.content)) {
        text = *s;
      } else {
        std::string joined, thinking;
        AppendPartsText(std::get<std::vector<ContentPart>>(*m.content), &joined, &thinking);
        text = std::move(joined);
        if (!thinking.empty()) reasoning = reasoning.value_or("") + thinking;
      }
      if (text->empty() && !m.tool_calls.empty()) text.reset();
    }
    if (reasoning) AppendReasoningItem(next(), "rs_" + base, &*reasoning);
    std::optional<std::string> refusal = m.refusal;
    if (text || refusal) {
      AppendMessageItem(next(), "msg_" + base, reason.empty() ? "completed" : "incomplete",
                        text, refusal);
    }
    for (size_t i = 0; i < m.tool_calls.size(); ++i) {
      const ToolCall& tc = m.tool_calls[i];
      if (!tc.function) {
        return InvalidFieldError(Dot(Idx("choices[0].message.tool_calls", i), "type"),
                                 "only function calls have a Responses item here");
      }
      AppendFunctionCallItem(next(), tc.id, tc.function->name, tc.function->arguments,
                             "completed");
    }
  }
  std::string usage;
  if (completion.usage) AppendResponsesUsage(&usage, *completion.usage);
  std::string out;
  out.reserve(output.size() + usage.size() + 400);
  AppendResponseObject(&out, id, completion.created, completion.model,
                       reason.empty() ? "completed" : "incomplete", reason, output, usage, {});
  return out;
}

// response.error.code for a status (the SDK's closed list of codes).
std::string_view ResponseErrorCode(const absl::Status& status) {
  const int http = HttpStatusForStatus(status);
  if (http == 429) return "rate_limit_exceeded";
  if (http >= 400 && http < 500) return "invalid_prompt";
  return "server_error";
}

// The unified chunks of one stream -> the Responses event sequence.
class ResponsesStreamEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    // Azure's prompt-filter chunk does not start the response (unified_parts.h).
    if (!started_ && IsUnnamedEmptyChunk(chunk)) return absl::OkStatus();
    if (!started_) Start(chunk.id, chunk.created, chunk.model, out);
    if (chunk.usage) {
      usage_.clear();
      AppendResponsesUsage(&usage_, *chunk.usage);
    }
    for (const ChunkChoice& choice : chunk.choices) {
      if (choice.index != 0) {
        return InvalidFieldError("choices", "a Responses stream carries one choice");
      }
      const ChatDelta& d = choice.delta;
      if (std::optional<std::string> reasoning = ReasoningOf(d.extra)) {
        if (!reasoning->empty()) Reasoning(*reasoning, out);
      }
      if (const std::string* parts = FindExtra(d.extra, "content")) {  // an array of parts
        std::string text, thinking;
        AppendPartsText(*parts, &text, &thinking);
        if (!thinking.empty()) Reasoning(thinking, out);
        if (!text.empty()) Text(text, /*refusal=*/false, out);
      }
      if (d.content && !d.content->empty()) Text(*d.content, /*refusal=*/false, out);
      if (d.refusal && !d.refusal->empty()) Text(*d.refusal, /*refusal=*/true, out);
      for (const ToolCallDelta& tc : d.tool_calls) {
        MODEENVOY_RETURN_IF_ERROR(ToolDelta(tc, out));
      }
      if (choice.finish_reason) finish_reason_ = *choice.finish_reason;
    }
    return absl::OkStatus();
  }

  void EncodeError(const absl::Status& error, std::string* out) override {
    if (!started_) Start("", 0, "", out);
    std::string err = "{\"code\":\"";
    err += ResponseErrorCode(error);
    err += "\",\"message\":";
    AppendJsonString(&err, core_internal::ToStd(error.message()));
    err += "}";
    std::string response;
    AppendResponseObject(&response, id_, created_, model_, "failed", {}, output_, {}, err);
    Event("response.failed", [&](std::string* e) {
      e->append(",\"response\":");
      e->append(response);
    }, out);
  }

  absl::Status Finish(std::string* out) override {
    if (!started_) Start("", 0, "", out);
    CloseAll(out);
    const std::string_view reason = IncompleteReason(finish_reason_);
    std::string response;
    AppendResponseObject(&response, id_, created_, model_,
                         reason.empty() ? "completed" : "incomplete", reason, output_, usage_, {});
    Event(reason.empty() ? "response.completed" : "response.incomplete", [&](std::string* e) {
      e->append(",\"response\":");
      e->append(response);
    }, out);
    return absl::OkStatus();
  }

 private:
  enum class Kind { kNone, kReasoning, kText, kRefusal };

  struct Call {
    int64_t index;  // the unified tool-call index
    int64_t output_index;
    std::string call_id, item_id, name, arguments;
  };

  // Writes one SSE event: `fill` appends the members after type and sequence_number.
  template <typename F>
  void Event(std::string_view type, F&& fill, std::string* out) {
    scratch_.assign("{\"type\":\"");
    scratch_.append(type);
    scratch_.append("\",\"sequence_number\":");
    AppendJsonInt(&scratch_, sequence_++);
    fill(&scratch_);
    scratch_.push_back('}');
    out->append("event: ");
    out->append(type);
    out->append("\ndata: ");
    out->append(scratch_);
    out->append("\n\n");
  }
  void ItemRef(std::string* e, std::string_view item_id, int64_t output_index) {
    e->append(",\"item_id\":");
    AppendJsonString(e, item_id);
    e->append(",\"output_index\":");
    AppendJsonInt(e, output_index);
  }

  void Start(std::string_view id, int64_t created, std::string_view model, std::string* out) {
    started_ = true;
    id_ = ResponseId(id);
    base_ = std::string(IdBase(id_));
    created_ = created;
    model_ = std::string(model);
    std::string response;
    AppendResponseObject(&response, id_, created_, model_, "in_progress", {}, {}, {}, {});
    for (std::string_view type : {"response.created", "response.in_progress"}) {
      Event(type, [&](std::string* e) {
        e->append(",\"response\":");
        e->append(response);
      }, out);
    }
  }

  void AddOutput(const std::string& item) {
    if (!output_.empty()) output_.push_back(',');
    output_.append(item);
  }

  void Reasoning(const std::string& delta, std::string* out) {
    if (kind_ != Kind::kReasoning) {
      CloseAll(out);
      kind_ = Kind::kReasoning;
      item_id_ = "rs_" + base_;
      if (reasoning_items_++ > 0) absl::StrAppend(&item_id_, "_", reasoning_items_);
      output_index_ = next_output_index_++;
      text_.clear();
      std::string item;
      AppendReasoningItem(&item, item_id_, nullptr);
      Event("response.output_item.added", [&](std::string* e) {
        e->append(",\"output_index\":");
        AppendJsonInt(e, output_index_);
        e->append(",\"item\":");
        e->append(item);
      }, out);
      Event("response.content_part.added", [&](std::string* e) {
        ItemRef(e, item_id_, output_index_);
        e->append(",\"content_index\":0,\"part\":{\"type\":\"reasoning_text\",\"text\":\"\"}");
      }, out);
    }
    text_ += delta;
    Event("response.reasoning_text.delta", [&](std::string* e) {
      ItemRef(e, item_id_, output_index_);
      e->append(",\"content_index\":0,\"delta\":");
      AppendJsonString(e, delta);
    }, out);
  }

  void Text(const std::string& delta, bool refusal, std::string* out) {
    const Kind want = refusal ? Kind::kRefusal : Kind::kText;
    if (kind_ != Kind::kText && kind_ != Kind::kRefusal) {
      CloseAll(out);
      item_id_ = "msg_" + base_;
      if (messages_++ > 0) absl::StrAppend(&item_id_, "_", messages_);
      output_index_ = next_output_index_++;
      content_index_ = -1;
      message_text_.reset();
      message_refusal_.reset();
      std::string item;
      AppendMessageItem(&item, item_id_, "in_progress", std::nullopt, std::nullopt);
      Event("response.output_item.added", [&](std::string* e) {
        e->append(",\"output_index\":");
        AppendJsonInt(e, output_index_);
        e->append(",\"item\":");
        e->append(item);
      }, out);
    } else if (kind_ != want) {
      ClosePart(out);
    }
    if (kind_ != want) {
      kind_ = want;
      ++content_index_;
      text_.clear();
      Event("response.content_part.added", [&](std::string* e) {
        ItemRef(e, item_id_, output_index_);
        e->append(",\"content_index\":");
        AppendJsonInt(e, content_index_);
        e->append(refusal ? ",\"part\":{\"type\":\"refusal\",\"refusal\":\"\"}"
                          : ",\"part\":{\"type\":\"output_text\",\"text\":\"\","
                            "\"annotations\":[],\"logprobs\":[]}");
      }, out);
    }
    text_ += delta;
    Event(refusal ? "response.refusal.delta" : "response.output_text.delta", [&](std::string* e) {
      ItemRef(e, item_id_, output_index_);
      e->append(",\"content_index\":");
      AppendJsonInt(e, content_index_);
      e->append(",\"delta\":");
      AppendJsonString(e, delta);
      if (!refusal) e->append(",\"logprobs\":[]");
    }, out);
  }

  absl::Status ToolDelta(const ToolCallDelta& tc, std::string* out) {
    Call* call = nullptr;
    for (Call& c : calls_) {
      if (c.index == tc.index) call = &c;
    }
    if (call == nullptr) {
      if (!tc.id || tc.id->empty() || !tc.function || !tc.function->name) {
        return InvalidFieldError("choices[0].delta.tool_calls",
                                 "a tool call's first delta needs its id and name");
      }
      // Text or reasoning before the call ends there; calls stay open together (a provider
      // may interleave their arguments) until something else comes or the stream ends.
      CloseSingle(out);
      calls_.push_back(Call{tc.index, next_output_index_++, *tc.id, "fc_" + *tc.id,
                            *tc.function->name, {}});
      call = &calls_.back();
      std::string item;
      AppendFunctionCallItem(&item, call->call_id, call->name, "", "in_progress");
      const int64_t output_index = call->output_index;
      Event("response.output_item.added", [&](std::string* e) {
        e->append(",\"output_index\":");
        AppendJsonInt(e, output_index);
        e->append(",\"item\":");
        e->append(item);
      }, out);
    }
    if (tc.function && tc.function->arguments && !tc.function->arguments->empty()) {
      const std::string& delta = *tc.function->arguments;
      call->arguments += delta;
      Event("response.function_call_arguments.delta", [&](std::string* e) {
        ItemRef(e, call->item_id, call->output_index);
        e->append(",\"delta\":");
        AppendJsonString(e, delta);
      }, out);
    }
    return absl::OkStatus();
  }

  // Ends the open content part of the message.
  void ClosePart(std::string* out) {
    const bool refusal = kind_ == Kind::kRefusal;
    Event(refusal ? "response.refusal.done" : "response.output_text.done", [&](std::string* e) {
      ItemRef(e, item_id_, output_index_);
      e->append(",\"content_index\":");
      AppendJsonInt(e, content_index_);
      e->append(refusal ? ",\"refusal\":" : ",\"text\":");
      AppendJsonString(e, text_);
      if (!refusal) e->append(",\"logprobs\":[]");
    }, out);
    Event("response.content_part.done", [&](std::string* e) {
      ItemRef(e, item_id_, output_index_);
      e->append(",\"content_index\":");
      AppendJsonInt(e, content_index_);
      if (refusal) {
        e->append(",\"part\":{\"type\":\"refusal\",\"refusal\":");
        AppendJsonString(e, text_);
        e->append("}");
      } else {
        e->append(",\"part\":{\"type\":\"output_text\",\"text\":");
        AppendJsonString(e, text_);
        e->append(",\"annotations\":[],\"logprobs\":[]}");
      }
    }, out);
    (refusal ? message_refusal_ : message_text_) = std::move(text_);
    text_.clear();
  }

  void ItemDone(const std::string& item, int64_t output_index, std::string* out) {
    Event("response.output_item.done", [&](std::string* e) {
      e->append(",\"output_index\":");
      AppendJsonInt(e, output_index);
      e->append(",\"item\":");
      e->append(item);
    }, out);
    AddOutput(item);
  }

  // Ends the open reasoning or message item, if any.
  void CloseSingle(std::string* out) {
    if (kind_ == Kind::kReasoning) {
      Event("response.reasoning_text.done", [&](std::string* e) {
        ItemRef(e, item_id_, output_index_);
        e->append(",\"content_index\":0,\"text\":");
        AppendJsonString(e, text_);
      }, out);
      Event("response.content_part.done", [&](std::string* e) {
        ItemRef(e, item_id_, output_index_);
        e->append(",\"content_index\":0,\"part\":{\"type\":\"reasoning_text\",\"text\":");
        AppendJsonString(e, text_);
        e->append("}");
      }, out);
      std::string item;
      AppendReasoningItem(&item, item_id_, &text_);
      ItemDone(item, output_index_, out);
    } else if (kind_ == Kind::kText || kind_ == Kind::kRefusal) {
      ClosePart(out);
      std::string item;
      AppendMessageItem(&item, item_id_,
                        IncompleteReason(finish_reason_).empty() ? "completed" : "incomplete",
                        message_text_, message_refusal_);
      ItemDone(item, output_index_, out);
    }
    kind_ = Kind::kNone;
  }

  void CloseAll(std::string* out) {
    CloseSingle(out);
    for (const Call& c : calls_) {
      Event("response.function_call_arguments.done", [&](std::string* e) {
        ItemRef(e, c.item_id, c.output_index);
        e->append(",\"arguments\":");
        AppendJsonString(e, c.arguments);
      }, out);
      std::string item;
      AppendFunctionCallItem(&item, c.call_id, c.name, c.arguments, "completed");
      ItemDone(item, c.output_index, out);
    }
    calls_.clear();
  }

  bool started_ = false;
  int64_t sequence_ = 0;
  std::string id_, base_, model_;
  int64_t created_ = 0;
  std::string output_;  // finished items, comma-separated
  std::string usage_;   // the response's usage JSON once reported
  std::string finish_reason_;
  int64_t next_output_index_ = 0;
  Kind kind_ = Kind::kNone;
  std::string item_id_;  // the open reasoning or message item
  int64_t output_index_ = 0;
  int64_t content_index_ = 0;
  std::string text_;  // the open part's text
  std::optional<std::string> message_text_, message_refusal_;
  int reasoning_items_ = 0, messages_ = 0;
  std::vector<Call> calls_;
  std::string scratch_;
};

// ---------------------------------------------------------------------------------------
// Egress: the unified request -> a Responses request.

// A content part's unknown members (kept by the ingress side, e.g. a provider's
// cache_control) written after its own, as the part's other members.
void AppendPartExtra(std::string* out, const ExtraFields& extra) {
  for (const auto& [k, v] : extra) {
    out->push_back(',');
    AppendJsonString(out, k);
    out->push_back(':');
    out->append(v);
  }
}

absl::Status EncodeResponsesRequest(const ChatRequest& chat, const DialectCall& call,
                                    WireRequest* out) {
  auto refuse = [](std::string_view path) {
    return InvalidFieldError(path, "not supported by openai_responses");
  };
  if (chat.n && *chat.n > 1) return refuse("n");
  if (chat.stop) return refuse("stop");
  if (chat.presence_penalty) return refuse("presence_penalty");
  if (chat.frequency_penalty) return refuse("frequency_penalty");
  if (chat.logit_bias) return refuse("logit_bias");
  if (chat.seed) return refuse("seed");
  if (chat.audio) return refuse("audio");
  if (chat.prediction) return refuse("prediction");
  if (chat.web_search_options) return refuse("web_search_options");
  if (chat.functions) return refuse("functions");
  if (chat.function_call) return refuse("function_call");
  if (chat.modalities) {
    for (const std::string& m : *chat.modalities) {
      if (m != "text") return InvalidFieldError("modalities", "openai_responses answers in text");
    }
  }
  std::string& b = out->body;
  b.clear();
  b.reserve(256);
  JsonObjectWriter w(&b);
  w.Key("model");
  AppendJsonString(&b, call.model.empty() ? std::string_view(chat.model) : call.model);
  w.Key("input");
  b.push_back('[');
  bool first = true;
  auto next = [&]() {
    if (!first) b.push_back(',');
    first = false;
  };
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const Message& m = chat.messages[i];
    const std::string path = Idx("messages", i);
    if (m.role == Role::kFunction) return refuse(Dot(path, "role"));
    if (m.role == Role::kTool) {
      next();
      b.append("{\"type\":\"function_call_output\",\"call_id\":");
      AppendJsonString(&b, m.tool_call_id.value_or(""));
      b.append(",\"output\":");
      std::string text;
      if (m.content) {
        if (const auto* s = std::get_if<std::string>(&*m.content)) {
          text = *s;
        } else {
          for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
            text += p.text;
          }
        }
      }
      AppendJsonString(&b, text);
      b.push_back('}');
      continue;
    }
    const bool assistant = m.role == Role::kAssistant;
    if (m.content || m.refusal) {
      next();
      b.append("{\"type\":\"message\",\"role\":");
      AppendJsonString(&b, RoleName(m.role));
      b.append(",\"content\":");
      if (m.content && std::holds_alternative<std::string>(*m.content) && !m.refusal) {
        AppendJsonString(&b, std::get<std::string>(*m.content));
      } else {
        b.push_back('[');
        bool first_part = true;
        auto part_sep = [&]() {
          if (!first_part) b.push_back(',');
          first_part = false;
        };
        if (m.content) {
          if (const auto* s = std::get_if<std::string>(&*m.content)) {
            part_sep();
            b.append(assistant ? "{\"type\":\"output_text\",\"text\":"
                               : "{\"type\":\"input_text\",\"text\":");
            AppendJsonString(&b, *s);
            b.push_back('}');
          } else {
            const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
            for (size_t k = 0; k < parts.size(); ++k) {
              const ContentPart& p = parts[k];
              const std::string ppath = Idx(Dot(path, "content"), k);
              part_sep();
              switch (p.type) {
                case ContentPartType::kText:
                  b.append(assistant ? "{\"type\":\"output_text\",\"text\":"
                                     : "{\"type\":\"input_text\",\"text\":");
                  AppendJsonString(&b, p.text);
                  AppendPartExtra(&b, p.extra);
                  b.push_back('}');
                  break;
                case ContentPartType::kRefusal:
                  b.append("{\"type\":\"refusal\",\"refusal\":");
                  AppendJsonString(&b, p.refusal);
                  b.push_back('}');
                  break;
                case ContentPartType::kImageUrl:
                  if (!p.image_url) return InvalidFieldError(ppath, "image_url required");
                  b.append("{\"type\":\"input_image\",\"image_url\":");
                  AppendJsonString(&b, p.image_url->url);
                  if (p.image_url->detail) {
                    b.append(",\"detail\":");
                    AppendJsonString(&b, *p.image_url->detail);
                  }
                  AppendPartExtra(&b, p.extra);
                  b.push_back('}');
                  break;
                case ContentPartType::kFile: {
                  if (!p.file) return InvalidFieldError(ppath, "file required");
                  JsonObjectWriter f(&b);
                  f.Key("type");
                  b.append("\"input_file\"");
                  if (p.file->file_data) {
                    f.Key("file_data");
                    AppendJsonString(&b, *p.file->file_data);
                  }
                  if (p.file->file_id) {
                    f.Key("file_id");
                    AppendJsonString(&b, *p.file->file_id);
                  }
                  if (p.file->filename) {
                    f.Key("filename");
                    AppendJsonString(&b, *p.file->filename);
                  }
                  AppendPartExtra(&b, p.extra);
                  f.End();
                  break;
                }
                default:
                  return refuse(Dot(ppath, "type"));
              }
            }
          }
        }
        if (m.refusal) {
          part_sep();
          b.append("{\"type\":\"refusal\",\"refusal\":");
          AppendJsonString(&b, *m.refusal);
          b.push_back('}');
        }
        b.push_back(']');
      }
      b.push_back('}');
    }
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const ToolCall& tc = m.tool_calls[k];
      if (!tc.function) return refuse(Dot(Idx(Dot(path, "tool_calls"), k), "type"));
      next();
      b.append("{\"type\":\"function_call\",\"call_id\":");
      AppendJsonString(&b, tc.id);
      b.append(",\"name\":");
      AppendJsonString(&b, tc.function->name);
      b.append(",\"arguments\":");
      AppendJsonString(&b, tc.function->arguments);
      b.push_back('}');
    }
  }
  b.push_back(']');
  if (!chat.tools.empty()) {
    w.Key("tools");
    b.push_back('[');
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const Tool& t = chat.tools[i];
      if (i > 0) b.push_back(',');
      JsonObjectWriter tw(&b);
      tw.Key("type");
      AppendJsonString(&b, t.type);
      if (t.type == "function") {
        if (!t.function) return InvalidFieldError(Dot(Idx("tools", i), "function"), "required");
        tw.Key("name");
        AppendJsonString(&b, t.function->name);
        if (t.function->description) {
          tw.Key("description");
          AppendJsonString(&b, *t.function->description);
        }
        if (t.function->parameters) {
          tw.Key("parameters");
          b.append(*t.function->parameters);
        }
        if (t.function->strict) {
          tw.Key("strict");
          b.append(*t.function->strict ? "true" : "false");
        }
      } else if (t.type == "custom") {
        // {"custom":{name, description, format}} -> flat members.
        const std::string* custom = FindExtra(t.extra, "custom");
        if (custom == nullptr || custom->size() < 2 || (*custom)[0] != '{') {
          return InvalidFieldError(Dot(Idx("tools", i), "custom"), "required");
        }
        if (custom->size() > 2) {
          b.push_back(',');
          b.append(std::string_view(*custom).substr(1, custom->size() - 2));
        }
      } else {
        for (const auto& [k, v] : t.extra) {
          tw.Key(k);
          b.append(v);
        }
      }
      tw.End();
    }
    b.push_back(']');
  }
  if (chat.tool_choice) {
    w.Key("tool_choice");
    if (!chat.tool_choice->mode.empty()) {
      AppendJsonString(&b, chat.tool_choice->mode);
    } else {
      // {"type":"function","function":{"name":N}} -> {"type":"function","name":N}.
      absl::StatusOr<core_internal::Json> o = core_internal::ParseStrictJson(chat.tool_choice->object);
      if (!o.ok() || !o->is_object()) return InvalidFieldError("tool_choice", "not an object");
      const std::string type = o->value("type", "");
      const char* inner = type == "function" ? "function" : type == "custom" ? "custom" : nullptr;
      if (inner != nullptr && o->contains(inner) && (*o)[inner].is_object() &&
          (*o)[inner].contains("name") && (*o)[inner]["name"].is_string()) {
        b.append("{\"type\":");
        AppendJsonString(&b, type);
        b.append(",\"name\":");
        AppendJsonString(&b, (*o)[inner]["name"].get<std::string>());
        b.push_back('}');
      } else {
        b.append(chat.tool_choice->object);
      }
    }
  }
  if (chat.response_format || chat.verbosity) {
    w.Key("text");
    JsonObjectWriter tw(&b);
    if (chat.response_format) {
      absl::StatusOr<core_internal::Json> rf = core_internal::ParseStrictJson(*chat.response_format);
      if (!rf.ok() || !rf->is_object()) return InvalidFieldError("response_format", "not an object");
      const std::string type = rf->value("type", "");
      tw.Key("format");
      if (type == "json_schema") {
        const core_internal::Json& js = rf->value("json_schema", core_internal::Json::object());
        if (!js.is_object()) return InvalidFieldError("response_format.json_schema", "not an object");
        core_internal::Json f = core_internal::Json::object();
        f["type"] = "json_schema";
        for (auto it = js.begin(); it != js.end(); ++it) f[it.key()] = it.value();
        b.append(f.dump());
      } else if (type == "json_object" || type == "text") {
        b.append("{\"type\":");
        AppendJsonString(&b, type);
        b.push_back('}');
      } else {
        return InvalidFieldError("response_format.type", "must be text, json_schema or json_object");
      }
    }
    if (chat.verbosity) {
      tw.Key("verbosity");
      AppendJsonString(&b, *chat.verbosity);
    }
    tw.End();
  }
  // Anthropic's thinking (Claude Code) is reasoning.effort here, as reasoning_effort for
  // the OpenAI family (thinking.h), unless the client gave an effort itself.
  MODEENVOY_ASSIGN_OR_RETURN(const std::optional<ThinkingSetting> thinking,
                             ReadThinking(chat.extra));
  std::optional<std::string_view> effort;
  if (chat.reasoning_effort) {
    effort = *chat.reasoning_effort;
  } else if (thinking.has_value()) {
    effort = ThinkingEffort(*thinking);
  }
  if (effort) {
    w.Key("reasoning");
    b.append("{\"effort\":");
    AppendJsonString(&b, *effort);
    b.push_back('}');
  }
  const std::optional<int64_t> max_tokens =
      chat.max_completion_tokens ? chat.max_completion_tokens : chat.max_tokens;
  // The Responses API refuses max_output_tokens below 16 (a 400 "integer_below_min_value"),
  // where Chat Completions and Messages take 1: refused before the call, naming the field
  // the client's value came in, not a max_output_tokens it never sent.
  if (max_tokens && *max_tokens < kMinOutputTokens) {
    return InvalidFieldError(
        chat.max_completion_tokens ? "max_completion_tokens" : "max_tokens",
        absl::StrCat("must be >= ", kMinOutputTokens,
                     " for an openai_responses provider (the Responses API's minimum "
                     "max_output_tokens), got ",
                     *max_tokens));
  }
  if (max_tokens) {
    w.Key("max_output_tokens");
    AppendJsonInt(&b, *max_tokens);
  }
  auto dbl = [&](std::string_view key, const std::optional<double>& v) {
    if (!v) return;
    w.Key(key);
    AppendJsonDouble(&b, *v);
  };
  auto str = [&](std::string_view key, const std::optional<std::string>& v) {
    if (!v) return;
    w.Key(key);
    AppendJsonString(&b, *v);
  };
  auto boolean = [&](std::string_view key, const std::optional<bool>& v) {
    if (!v) return;
    w.Key(key);
    b.append(*v ? "true" : "false");
  };
  dbl("temperature", chat.temperature);
  dbl("top_p", chat.top_p);
  if (chat.top_logprobs) {
    w.Key("top_logprobs");
    AppendJsonInt(&b, *chat.top_logprobs);
  }
  boolean("parallel_tool_calls", chat.parallel_tool_calls);
  boolean("store", chat.store);
  if (chat.metadata) {
    w.Key("metadata");
    b.append(*chat.metadata);
  }
  str("user", chat.user);
  str("safety_identifier", chat.safety_identifier);
  str("prompt_cache_key", chat.prompt_cache_key);
  str("service_tier", chat.service_tier);
  if (call.stream) {
    w.Key("stream");
    b.append("true");
  }
  for (const auto& [k, v] : chat.extra) {
    // thinking: mapped above; context_management: Anthropic's alone (thinking.h).
    if (k == "stream" || k == "thinking" || IsAnthropicOnlyMember(k)) continue;
    w.Key(k);
    b.append(v);
  }
  w.End();
  out->method = "POST";
  out->target = "/responses";
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Egress: a Responses answer -> unified.

// A response.error object, or a stream "error" event, as the provider's status. Two groups
// of the API's codes are this dialect's: rate_limit_exceeded (429) and the prompt's or an
// image's fault, invalid* and image* (400). Any other code picks the status by the table
// every dialect reads an error without an HTTP status by (CodeForErrorType, as the openai
// dialect does for an error inside its stream): insufficient_quota is then a 429 and
// server_error a retryable 503. A code that table does not know is a retryable 500.
absl::Status ResponseErrorStatus(std::string_view code, std::string_view message,
                                 std::string_view param) {
  int http = 0;  // none: StatusFromUpstreamError takes the code from the body
  if (code == "rate_limit_exceeded") {
    http = 429;
  } else if (code.substr(0, 7) == "invalid" || code.substr(0, 5) == "image") {
    http = 400;
  } else if (CodeForErrorType(code) == absl::StatusCode::kUnknown) {
    http = 500;
  }
  std::string body = "{\"error\":{\"message\":";
  AppendJsonString(&body, message.empty() ? std::string_view("response failed") : message);
  if (!code.empty()) {
    body += ",\"code\":";
    AppendJsonString(&body, code);
  }
  if (!param.empty()) {
    body += ",\"param\":";
    AppendJsonString(&body, param);
  }
  body += "}}";
  return StatusFromUpstreamError(http, body);
}

// What the unified answer needs from one response object (or one output item).
struct OutputItem {
  std::string type, id, call_id, name, arguments;
  std::string text, refusal, reasoning;
};

struct ResponseFacts {
  std::string id, model, status, incomplete_reason;
  int64_t created = 0;
  std::vector<OutputItem> output;
  std::optional<Usage> usage;
  bool has_error = false;
  std::string error_code, error_message;
};

absl::Status ReadTextParts(Pull& p, const Path& path, OutputItem* item) {
  return p.Array(path, [&](size_t i) {
    const Path at = path.Index(i);
    std::string type, text, refusal;
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
    if (t != JsonType::kObject) return p.Skip();  // a hosted tool's content
    MODEENVOY_RETURN_IF_ERROR(p.Object(at, [&](std::string_view key) -> absl::Status {
      JsonType vt;
      MODEENVOY_RETURN_IF_ERROR(p.Type(&vt));
      if (vt != JsonType::kString) return p.Skip();
      if (Is(key, "type")) return p.String(at.Member(key), &type);
      if (Is(key, "text")) return p.String(at.Member(key), &text);
      if (Is(key, "refusal")) return p.String(at.Member(key), &refusal);
      return p.Skip();
    }));
    if (type == "output_text" || type == "reasoning_text" || type == "summary_text") {
      item->text += text;
    } else if (type == "refusal") {
      item->refusal += refusal;
    }
    return absl::OkStatus();
  });
}

absl::Status ReadOutputItem(Pull& p, const Path& path, OutputItem* item) {
  std::string summary;
  // Hosted tools' items use the same names for other types (tool_search's arguments are an
  // object): only a function_call needs them as strings, which is checked once its type is
  // known.
  std::string not_string;
  MODEENVOY_RETURN_IF_ERROR(p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
    if (t == JsonType::kNull) return p.Skip();
    if (Is(key, "type")) return p.String(at, &item->type);
    std::string* field = Is(key, "id")          ? &item->id
                         : Is(key, "call_id")   ? &item->call_id
                         : Is(key, "name")      ? &item->name
                         : Is(key, "arguments") ? &item->arguments
                                              : nullptr;
    if (field != nullptr) {
      if (t == JsonType::kString) return p.String(at, field);
      if (not_string.empty()) not_string = at.ToString();
      return p.Skip();
    }
    if (t != JsonType::kArray) return p.Skip();
    if (Is(key, "content")) return ReadTextParts(p, at, item);
    if (Is(key, "summary")) {
      OutputItem s;
      MODEENVOY_RETURN_IF_ERROR(ReadTextParts(p, at, &s));
      summary = std::move(s.text);
      return absl::OkStatus();
    }
    return p.Skip();
  }));
  if (item->type == "function_call" && !not_string.empty()) {
    return InvalidFieldError(not_string, "expected string");
  }
  if (item->type == "reasoning") {
    item->reasoning = item->text.empty() ? std::move(summary) : std::move(item->text);
    item->text.clear();
  }
  return absl::OkStatus();
}

absl::Status ReadUsage(Pull& p, const Path& path, Usage* u) {
  std::optional<int64_t> input, output, total, cached, reasoning, cache_write;
  MODEENVOY_RETURN_IF_ERROR(p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    if (Is(key, "input_tokens")) return p.OptInt(at, &input);
    if (Is(key, "output_tokens")) return p.OptInt(at, &output);
    if (Is(key, "total_tokens")) return p.OptInt(at, &total);
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
    if (t != JsonType::kObject) return p.Skip();
    if (Is(key, "input_tokens_details")) {
      return p.Object(at, [&](std::string_view k) -> absl::Status {
        if (Is(k, "cached_tokens")) return p.OptInt(at.Member(k), &cached);
        if (Is(k, "cache_write_tokens")) return p.OptInt(at.Member(k), &cache_write);
        return p.Skip();
      });
    }
    if (Is(key, "output_tokens_details")) {
      return p.Object(at, [&](std::string_view k) -> absl::Status {
        if (Is(k, "reasoning_tokens")) return p.OptInt(at.Member(k), &reasoning);
        return p.Skip();
      });
    }
    return p.Skip();
  }));
  u->prompt_tokens = input.value_or(0);
  u->completion_tokens = output.value_or(0);
  u->total_tokens = total.value_or(u->prompt_tokens + u->completion_tokens);
  if (cached) u->prompt_tokens_details = PromptTokensDetails{cached, std::nullopt, {}};
  if (reasoning) {
    CompletionTokensDetails d;
    d.reasoning_tokens = reasoning;
    u->completion_tokens_details = std::move(d);
  }
  if (cache_write && *cache_write > 0) {
    u->extra.emplace_back("cache_creation_input_tokens", std::to_string(*cache_write));
  }
  return absl::OkStatus();
}

// Reads a response object from `p` (positioned at it). `path` names it in errors: empty
// for a whole body (its members then named alone), "response" in an event.
absl::Status ReadResponseObject(Pull& p, const Path& path, ResponseFacts* f) {
  return p.Object(path, [&](std::string_view key) -> absl::Status {
    const Path at = path.Member(key);
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(p.Type(&t));
    if (t == JsonType::kNull) return p.Skip();
    if (Is(key, "id")) return p.String(at, &f->id);
    if (Is(key, "model")) return p.String(at, &f->model);
    if (Is(key, "status")) return p.String(at, &f->status);
    if (Is(key, "created_at")) {
      std::optional<double> v;
      MODEENVOY_RETURN_IF_ERROR(p.OptDouble(at, &v));
      // Seconds since the epoch; whole seconds of a fractional value. Outside int64's range
      // the conversion would be undefined: no real answer says that, so it is an error.
      const double seconds = v.value_or(0);
      if (!(seconds >= -9.2233720368547758e18 && seconds < 9.2233720368547758e18)) {
        return InvalidFieldError(at.ToString(), "timestamp out of range");
      }
      f->created = static_cast<int64_t>(seconds);
      return absl::OkStatus();
    }
    if (Is(key, "incomplete_details")) {
      return p.Object(at, [&](std::string_view k) -> absl::Status {
        if (Is(k, "reason")) {
          std::optional<std::string> r;
          MODEENVOY_RETURN_IF_ERROR(p.OptString(at.Member(k), &r));
          f->incomplete_reason = r.value_or("");
          return absl::OkStatus();
        }
        return p.Skip();
      });
    }
    if (Is(key, "error")) {
      f->has_error = true;
      return p.Object(at, [&](std::string_view k) -> absl::Status {
        std::optional<std::string> v;
        if (!Is(k, "code") && !Is(k, "message")) return p.Skip();
        MODEENVOY_RETURN_IF_ERROR(p.OptString(at.Member(k), &v));
        (Is(k, "code") ? f->error_code : f->error_message) = v.value_or("");
        return absl::OkStatus();
      });
    }
    if (Is(key, "output")) {
      return p.Array(at, [&](size_t i) {
        return ReadOutputItem(p, at.Index(i), &f->output.emplace_back());
      });
    }
    if (Is(key, "usage")) return ReadUsage(p, at, &f->usage.emplace());
    return p.Skip();
  });
}

std::string_view FinishReasonOf(const ResponseFacts& f, bool has_calls) {
  if (f.status == "incomplete") {
    if (f.incomplete_reason == "content_filter") return "content_filter";
    return "length";
  }
  return has_calls ? "tool_calls" : "stop";
}

absl::Status DecodeResponsesBody(std::string* body) {
  ResponseFacts f;
  {
    Pull p(*body);
    absl::Status s = ReadResponseObject(p, Path{}, &f);
    if (s.ok()) s = p.End();
    if (!s.ok()) {
      return WithHttpStatus(absl::InvalidArgumentError(absl::StrCat(
                                "openai_responses response: ", s.message())),
                            502);
    }
  }
  if (f.has_error || f.status == "failed") {
    return ResponseErrorStatus(f.error_code, f.error_message, {});
  }
  ChatCompletion c;
  c.id = f.id;
  c.created = f.created;
  c.model = f.model;
  ChatChoice choice;
  std::string text, refusal, reasoning;
  bool has_text = false;
  for (OutputItem& item : f.output) {
    if (item.type == "message") {
      text += item.text;
      refusal += item.refusal;
      has_text = true;
    } else if (item.type == "function_call") {
      ToolCall call;
      call.id = item.call_id;
      call.function = FunctionCall{item.name, item.arguments, {}};
      choice.message.tool_calls.push_back(std::move(call));
    } else if (item.type == "reasoning") {
      reasoning += item.reasoning;
    }
    // Hosted tools' items (web_search_call, ...) ran at the provider; their results are in
    // the message text.
  }
  if (has_text || choice.message.tool_calls.empty()) choice.message.content = std::move(text);
  if (!refusal.empty()) choice.message.refusal = std::move(refusal);
  if (!reasoning.empty()) {
    std::string raw;
    AppendJsonString(&raw, reasoning);
    choice.message.extra.emplace_back("reasoning_content", std::move(raw));
  }
  choice.finish_reason = std::string(FinishReasonOf(f, !choice.message.tool_calls.empty()));
  c.choices.push_back(std::move(choice));
  c.usage = std::move(f.usage);
  *body = SerializeChatCompletion(c);
  return absl::OkStatus();
}

// What the stream decoder does with an event, by its type.
enum class EventKind {
  kOther,           // *.done, content_part.*, hosted tools' progress, ...: nothing
  kTextDelta,       // response.output_text.delta
  kReasoningDelta,  // response.reasoning_text.delta, response.reasoning_summary_text.delta
  kRefusalDelta,    // response.refusal.delta
  kArgumentsDelta,  // response.function_call_arguments.delta
  kItemAdded,       // response.output_item.added
  kStarted,         // response.created, response.in_progress
  kEnded,           // response.completed, response.incomplete
  kFailed,          // response.failed
  kError,           // error
};

EventKind KindOf(std::string_view type) {
  if (type == "response.output_text.delta") return EventKind::kTextDelta;
  if (type == "response.function_call_arguments.delta") return EventKind::kArgumentsDelta;
  if (type == "response.reasoning_text.delta" ||
      type == "response.reasoning_summary_text.delta") {
    return EventKind::kReasoningDelta;
  }
  if (type == "response.refusal.delta") return EventKind::kRefusalDelta;
  if (type == "response.output_item.added") return EventKind::kItemAdded;
  if (type == "response.created" || type == "response.in_progress") return EventKind::kStarted;
  if (type == "response.completed" || type == "response.incomplete") return EventKind::kEnded;
  if (type == "response.failed") return EventKind::kFailed;
  if (type == "error") return EventKind::kError;
  return EventKind::kOther;
}

bool CarriesResponse(EventKind kind) {
  return kind == EventKind::kStarted || kind == EventKind::kEnded || kind == EventKind::kFailed;
}

// The members of one event the decoder uses. Views point into the event's data or into the
// scratch strings.
struct EventFields {
  EventKind kind = EventKind::kOther;
  std::string_view type;
  std::string_view delta;
  std::optional<int64_t> output_index;
  std::string_view code, message, param;
  // `item` and `response`: read in place when `type` came first (OpenAI sends it first), so
  // the kind was known; else captured, and read once the kind is known.
  OutputItem item;
  ResponseFacts response;
  std::string item_raw, response_raw;
  std::string type_scratch, delta_scratch, code_scratch, message_scratch, param_scratch;
  // An `error` event's fields nested in an object ({"type":"error","error":{"code",
  // "message","param"}}, as recorded streams send them), when not at the top level.
  std::string error_raw, nested_code, nested_message, nested_param;
};

// The members the decoder reads, each a bit of the duplicate check; others are skipped
// unread (their names unchecked: nothing of theirs is used).
uint32_t EventMemberBit(std::string_view key) {
  switch (key.size()) {
    case 4:
      if (Is(key, "type")) return 1u << 0;
      if (Is(key, "item")) return 1u << 1;
      if (Is(key, "code")) return 1u << 2;
      return 0;
    case 5:
      if (Is(key, "delta")) return 1u << 3;
      if (Is(key, "param")) return 1u << 4;
      if (Is(key, "error")) return 1u << 8;
      return 0;
    case 7:
      return Is(key, "message") ? 1u << 5 : 0;
    case 8:
      return Is(key, "response") ? 1u << 6 : 0;
    case 12:
      return Is(key, "output_index") ? 1u << 7 : 0;
    default:
      return 0;
  }
}

// Reads a string member's value as a view (into the data, or `*scratch` when escaped).
absl::Status EventString(JsonReader& r, JsonType t, std::string_view name,
                         std::string_view* out, std::string* scratch) {
  if (t != JsonType::kString) return WrongType(name, "string", t);
  if (!r.ReadString(out, scratch)) return r.status();
  return absl::OkStatus();
}

// Reads the event `data` (one JSON object) into `*ev`, in document order; ev->kind says what
// it is. When `type` is the first member and names an event the decoder does nothing with,
// the rest is not read (*ignored set): the *.done events repeat the whole text, which would
// otherwise be scanned again, as would every hosted tool's progress event. Errors: the
// event's syntax, a duplicate or mistyped member as BadStream (502); a bad `item` or
// `response` as the status of its read (as when it was read from captured text).
absl::Status ReadEvent(std::string_view data, std::string_view frame_event, EventFields* ev,
                       bool* ignored) {
  *ignored = false;
  Pull p(data);
  JsonReader& r = p.reader();
  JsonType t;
  if (!r.Peek(&t)) return BadStream(core_internal::ToStd(r.status().message()));
  if (t != JsonType::kObject) {
    return BadStream(core_internal::ToStd(WrongType("event", "object", t).message()));
  }
  if (!r.BeginObject()) return BadStream(core_internal::ToStd(r.status().message()));
  EventKind kind = EventKind::kOther;
  bool kind_known = false;
  bool item_read = false, response_read = false;
  uint32_t seen = 0;
  bool first = true;
  std::string scratch;
  // A failed read: the reader's syntax error, or `field` (a member's type) as a bad stream.
  auto bad = [&](const absl::Status& field) {
    return BadStream(core_internal::ToStd(r.status().ok() ? field.message()
                                                          : r.status().message()));
  };
  for (;;) {
    const bool at_first = first;
    std::string_view key;
    bool has = false;
    if (!r.NextMember(&first, &key, &scratch, &has)) return bad(r.status());
    if (!has) break;
    const uint32_t bit = EventMemberBit(key);
    if (bit == 0) {
      if (!r.SkipValue()) return bad(r.status());
      continue;
    }
    if ((seen & bit) != 0) {
      return bad(InvalidFieldError("event." + std::string(key), "duplicate key"));
    }
    seen |= bit;
    if (!r.Peek(&t)) return bad(r.status());
    if (t == JsonType::kNull) {
      if (!r.ReadNull()) return bad(r.status());
      continue;
    }
    absl::Status s;
    switch (bit) {
      case 1u << 0:  // type
        s = EventString(r, t, "type", &ev->type, &ev->type_scratch);
        if (s.ok() && at_first && !ev->type.empty()) {
          kind = KindOf(ev->type);
          kind_known = true;
          if (kind == EventKind::kOther) {
            ev->kind = kind;
            *ignored = true;
            return absl::OkStatus();
          }
        }
        break;
      case 1u << 3:  // delta: a hosted tool's structured delta (shell calls) is skipped
        if (t == JsonType::kString) {
          s = EventString(r, t, "delta", &ev->delta, &ev->delta_scratch);
        } else if (!r.SkipValue()) {
          s = r.status();
        }
        break;
      case 1u << 7:  // output_index
        s = p.OptInt("output_index", &ev->output_index);
        break;
      case 1u << 1:  // item
        if (!kind_known) {
          s = p.Capture(&ev->item_raw);
        } else if (kind == EventKind::kItemAdded) {
          s = ReadOutputItem(p, Path{nullptr, "item", -1}, &ev->item);
          if (!s.ok() && r.status().ok()) return s;
          item_read = true;
        } else if (!r.SkipValue()) {
          s = r.status();
        }
        break;
      case 1u << 6:  // response
        if (!kind_known) {
          s = p.Capture(&ev->response_raw);
        } else if (CarriesResponse(kind)) {
          s = ReadResponseObject(p, Path{nullptr, "response", -1}, &ev->response);
          if (!s.ok() && r.status().ok()) return s;
          response_read = true;
        } else if (!r.SkipValue()) {
          s = r.status();
        }
        break;
      case 1u << 2:  // code
        s = EventString(r, t, "code", &ev->code, &ev->code_scratch);
        break;
      case 1u << 5:  // message
        s = EventString(r, t, "message", &ev->message, &ev->message_scratch);
        break;
      case 1u << 4:  // param
        s = EventString(r, t, "param", &ev->param, &ev->param_scratch);
        break;
      case 1u << 8:  // error: kept for an error event whose fields are nested
        if (t == JsonType::kObject) {
          s = p.Capture(&ev->error_raw);
        } else if (!r.SkipValue()) {
          s = r.status();
        }
        break;
    }
    if (!s.ok()) return bad(s);
  }
  if (!r.ExpectEnd()) return bad(r.status());
  if (!ev->error_raw.empty() && ev->code.empty() && ev->message.empty()) {
    JsonReader er(ev->error_raw, kMaxJsonDepth);
    const auto bad_error = [&] {
      return BadStream("event.error: " + std::string(core_internal::ToStd(er.status().message())));
    };
    if (!er.BeginObject()) return bad_error();
    bool efirst = true;
    std::string escratch;
    for (;;) {
      std::string_view k;
      bool has = false;
      if (!er.NextMember(&efirst, &k, &escratch, &has)) return bad_error();
      if (!has) break;
      std::string* dst = k == "code"      ? &ev->nested_code
                         : k == "message" ? &ev->nested_message
                         : k == "param"   ? &ev->nested_param
                                          : nullptr;
      JsonType et;
      if (!er.Peek(&et)) return bad_error();
      if (dst != nullptr && et == JsonType::kString) {
        if (!er.ReadString(dst)) return bad_error();
      } else if (!er.SkipValue()) {
        return bad_error();
      }
    }
    ev->code = ev->nested_code;
    ev->message = ev->nested_message;
    if (ev->param.empty()) ev->param = ev->nested_param;
  }
  if (ev->type.empty()) ev->type = frame_event;
  if (!kind_known) kind = KindOf(ev->type);
  ev->kind = kind;
  // What was not read in place (`type` came later, or the member is absent or null) is read
  // from its captured text, empty when absent: an absent item or response is an error.
  if (kind == EventKind::kItemAdded && !item_read) {
    Pull ip(ev->item_raw);
    return ReadOutputItem(ip, Path{nullptr, "item", -1}, &ev->item);
  }
  if (CarriesResponse(kind) && !response_read) {
    Pull rp(ev->response_raw);
    return ReadResponseObject(rp, Path{nullptr, "response", -1}, &ev->response);
  }
  return absl::OkStatus();
}

// Responses events -> unified chunks.
class ResponsesStreamDecoder final : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    std::string_view data = frame.data;
    if (data.empty() || data == "[DONE]") return absl::OkStatus();
    EventFields ev;
    bool ignored = false;
    MODEENVOY_RETURN_IF_ERROR(ReadEvent(data, frame.event, &ev, &ignored));
    // Every other event (*.done, content_part.*, hosted tools' progress, ...) repeats what
    // the deltas said or has no unified counterpart.
    if (ignored) return absl::OkStatus();

    switch (ev.kind) {
      case EventKind::kOther:
        return absl::OkStatus();
      case EventKind::kTextDelta:
        return Delta("{\"content\":", ev.delta, out);
      case EventKind::kReasoningDelta:
        return Delta("{\"reasoning_content\":", ev.delta, out);
      case EventKind::kRefusalDelta:
        return Delta("{\"refusal\":", ev.delta, out);
      case EventKind::kArgumentsDelta: {
        const int64_t index = CallIndex(ev.output_index.value_or(-1));
        if (index < 0) return BadStream("arguments delta for an unknown function_call item");
        std::string& chunk = StartChunk(ev.delta.size() + 60, out);
        chunk += "{\"tool_calls\":[{\"index\":";
        AppendJsonInt(&chunk, index);
        chunk += ",\"function\":{\"arguments\":";
        AppendJsonString(&chunk, ev.delta);
        chunk += "}}]}";
        AppendDeltaChunkTail({}, &chunk);
        return absl::OkStatus();
      }
      case EventKind::kItemAdded: {
        const OutputItem& item = ev.item;
        if (item.type != "function_call") return absl::OkStatus();
        const int64_t index = static_cast<int64_t>(calls_.size());
        calls_.emplace_back(ev.output_index.value_or(-1), index);
        std::string d = "{\"tool_calls\":[{\"index\":";
        AppendJsonInt(&d, index);
        d += ",\"id\":";
        AppendJsonString(&d, item.call_id);
        d += ",\"type\":\"function\",\"function\":{\"name\":";
        AppendJsonString(&d, item.name);
        d += ",\"arguments\":";
        AppendJsonString(&d, item.arguments);
        d += "}}]}";
        return Emit(d, {}, out);
      }
      case EventKind::kStarted: {
        if (head_set_) return absl::OkStatus();
        const ResponseFacts& f = ev.response;
        SetHead(ChunkHead{f.id, f.created, f.model});
        return Emit("{\"role\":\"assistant\",\"content\":\"\"}", {}, out);
      }
      case EventKind::kEnded: {
        const ResponseFacts& f = ev.response;
        if (!head_set_) SetHead(ChunkHead{f.id, f.created, f.model});
        bool has_calls = !calls_.empty();
        for (const OutputItem& item : f.output) has_calls |= item.type == "function_call";
        MODEENVOY_RETURN_IF_ERROR(Emit("{}", FinishReasonOf(f, has_calls), out));
        if (f.usage) {
          std::string usage;
          AppendUsageJson(&usage, *f.usage);
          std::string chunk;
          AppendUsageChunk(head_, usage, &chunk);
          out->push_back(SseEvent{{}, std::move(chunk), {}, {}});
        }
        out->push_back(SseEvent{{}, std::string(kSseDoneData), {}, {}});
        done_ = true;
        return absl::OkStatus();
      }
      case EventKind::kFailed:
        done_ = true;
        return ResponseErrorStatus(ev.response.error_code, ev.response.error_message, {});
      case EventKind::kError:
        done_ = true;
        return ResponseErrorStatus(ev.code, ev.message, ev.param);
    }
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<SseEvent>* /*out*/) override {
    if (done_) return absl::OkStatus();
    return BadStream("the stream ended before response.completed");
  }

  bool KeepsUsagePromise() const override { return true; }

 private:
  int64_t CallIndex(int64_t output_index) const {
    for (const auto& [oi, index] : calls_) {
      if (oi == output_index) return index;
    }
    return calls_.size() == 1 && output_index < 0 ? calls_.front().second : -1;
  }
  void SetHead(ChunkHead head) {
    head_ = std::move(head);
    head_set_ = true;
    prefix_.clear();
  }
  // Appends a new chunk event to `*out` and returns its data, written up to "delta": (the
  // stream's fixed head, kept as text after the first chunk). `delta_size` is a reserve
  // hint for the rest.
  std::string& StartChunk(size_t delta_size, std::vector<SseEvent>* out) {
    if (prefix_.empty()) AppendDeltaChunkHead(head_, &prefix_);
    std::string& chunk = out->emplace_back().data;
    chunk.reserve(prefix_.size() + delta_size + 48);
    chunk = prefix_;
    return chunk;
  }
  // A text delta: `open` is the delta object's text up to its member's value.
  absl::Status Delta(std::string_view open, std::string_view delta,
                     std::vector<SseEvent>* out) {
    if (delta.empty()) return absl::OkStatus();
    std::string& chunk = StartChunk(open.size() + delta.size() + 8, out);
    chunk += open;
    AppendJsonString(&chunk, delta);
    chunk += '}';
    AppendDeltaChunkTail({}, &chunk);
    return absl::OkStatus();
  }
  absl::Status Emit(std::string_view delta_json, std::string_view finish,
                    std::vector<SseEvent>* out) {
    std::string& chunk = StartChunk(delta_json.size() + finish.size(), out);
    chunk += delta_json;
    AppendDeltaChunkTail(finish, &chunk);
    return absl::OkStatus();
  }

  ChunkHead head_;
  std::string prefix_;  // AppendDeltaChunkHead of head_, once written
  bool head_set_ = false;
  bool done_ = false;
  std::vector<std::pair<int64_t, int64_t>> calls_;  // (output_index, unified index)
};

class OpenAiResponsesDialect final : public Dialect {
 public:
  std::string_view name() const override { return kName; }
  std::string_view default_base_url() const override { return "https://api.openai.com/v1"; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    return EncodeResponsesRequest(chat, call, out);
  }
  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status DecodeResponse(std::string* body) const override {
    return DecodeResponsesBody(body);
  }
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<ResponsesStreamDecoder>();
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override {
    return DecodeResponsesRequest(request.body, core_internal::CurrentBodyMemberObserver());
  }
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override {
    return EncodeResponsesBody(completion);
  }
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<ResponsesStreamEncoder>();
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    return OpenAiErrorBody(status);
  }
};

}  // namespace

std::optional<std::string> UnifiedReasoningText(const ExtraFields& extra) {
  return ReasoningOf(extra);
}

absl::StatusOr<std::unique_ptr<Dialect>> NewOpenAiResponsesDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({}));
  return std::make_unique<OpenAiResponsesDialect>();
}

}  // namespace modeenvoy::protocol_internal
