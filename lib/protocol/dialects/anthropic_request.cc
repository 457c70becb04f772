// lib/protocol/dialects/anthropic_request.cc: the one-pass reader of Messages request
// bodies (see anthropic_request.h). The mapping is the checked reader's, in
// lib/protocol/dialects/anthropic.cc ("---- Ingress ----"), field by field; this reader only
// reads it differently: one JsonReader walks the body once, each value is decoded where it
// is reached, extras are captured compact as the walk passes them. The checked reader reads
// each object twice (its members' texts first, then in the order of its checks), which is
// what a fixed first error needs but costs about five passes over the bytes. Here nothing is
// reported: on any doubt the reader gives up and the checked reader runs, so every error,
// its message and its path, is the checked reader's.
//
// Member order: the checked reader maps a member the same whatever its position. Where a
// member's meaning depends on another one (a block's members on its "type", a turn's
// content on its "role"), the members before it are kept as byte spans and read with
// readers of their own once it is known; clients send "type" and "role" first, so that is
// rare. The system prompt goes before the turns whatever its position.
#include "lib/protocol/dialects/anthropic_request.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "lib/protocol/chat_serialize.h"
#include "lib/protocol/json.h"

namespace modeenvoy::protocol_internal {
namespace {

// The names of one object read so far, to give up on a repeat (the checked reader reports
// it): the names a reader models as bits, the others in a short list of views into the
// body (names with escapes make the reader give up, so views suffice). Past kMaxOthers
// unmodeled names the reader gives up too (the checked reader hashes them).
class SeenNames {
 public:
  bool Bit(int bit) {
    const uint32_t mask = uint32_t{1} << bit;
    if ((bits_ & mask) != 0) return false;
    bits_ |= mask;
    return true;
  }
  bool Other(std::string_view name) {
    if (others_.size() >= kMaxOthers) return false;
    for (std::string_view seen : others_) {
      if (seen == name) return false;
    }
    others_.push_back(name);
    return true;
  }

 private:
  static constexpr size_t kMaxOthers = 32;
  uint32_t bits_ = 0;
  absl::InlinedVector<std::string_view, 4> others_;
};

// A value's text in the body, for a member read later by a reader of its own.
struct PendingMember {
  std::string_view name;
  std::string_view text;
};

// The kinds of blocks this reader maps (as the checked reader's ReadPart,
// ReadUserBlocks and ReadAssistantBlocks do).
enum class BlockKind { kText, kImage, kDocument, kToolResult, kToolUse, kThinking };

// Where a block may appear: system (text only), user content and tool_result content
// (text, image, document; tool_result in user content only), assistant content.
enum class BlockPlace { kSystem, kToolResult, kUser, kAssistant };

// The members of an image or document "source" object.
struct Source {
  std::optional<std::string> type, url, media_type, data, file_id;
};

class OnePassReader {
 public:
  explicit OnePassReader(ChatRequest* chat) : chat_(chat) {}

  bool Body(std::string_view body);

 private:
  // The next member's name; false to give up (syntax, or a name with escapes).
  bool Name(JsonReader& r, bool* first, std::string_view* name, bool* has) {
    if (!r.NextMember(first, name, &scratch_, has)) return false;
    return !*has || name->data() != scratch_.data();
  }
  // A string value into *out (replaced); false when not a string.
  static bool String(JsonReader& r, std::string* out) {
    JsonType type;
    return r.Peek(&type) && type == JsonType::kString && r.ReadString(out);
  }
  // A string value, or nothing (and the value skipped) for any other type.
  static bool StringOrSkip(JsonReader& r, std::optional<std::string>* out) {
    JsonType type;
    if (!r.Peek(&type)) return false;
    if (type != JsonType::kString) return r.SkipValue();
    return r.ReadString(&out->emplace());
  }
  // The value's text (whitespace included), skipped.
  static bool Span(JsonReader& r, std::string_view* text) {
    JsonType type;
    if (!r.Peek(&type)) return false;
    const char* start = r.remaining().data();
    if (!r.SkipValue()) return false;
    *text = std::string_view(start, static_cast<size_t>(r.remaining().data() - start));
    return true;
  }
  // Appends (name, compact value) to `extra`.
  static bool Extra(JsonReader& r, std::string_view name, ExtraFields* extra) {
    extra->emplace_back(std::string(name), std::string());
    return r.CaptureValue(&extra->back().second);
  }

  // An object whose members depend on its "type" (a string member): on_type(type) once it
  // is known, then on_member(name, reader) for every other member in document order (the
  // ones before "type" from their spans). False to give up, also when "type" is absent.
  template <typename OnType, typename OnMember>
  bool TypedObject(JsonReader& r, OnType on_type, OnMember on_member);

  bool ReadTurns(JsonReader& r);
  bool ReadTurn(JsonReader& r);
  bool Content(JsonReader& r, Role role);
  bool ReadSystem(JsonReader& r, Message* system);
  // The blocks of a content array at `place`, appended to `parts` (text, image, document)
  // and to the request's messages (tool results, in order).
  bool Blocks(JsonReader& r, BlockPlace place, std::vector<ContentPart>* parts);
  bool Block(JsonReader& r, BlockPlace place, std::vector<ContentPart>* parts);
  bool ReadSource(JsonReader& r, Source* source);
  bool AssistantBlocks(JsonReader& r, Message* a);
  bool ReadTools(JsonReader& r);
  bool ReadTool(JsonReader& r, modeenvoy::Tool* tool);
  bool ReadToolChoice(JsonReader& r);
  bool ReadMetadata(JsonReader& r);
  bool ReadStops(JsonReader& r);
  bool ReadOutputConfig(JsonReader& r);

  ChatRequest* chat_;
  std::string scratch_;  // member names with escapes (the reader then gives up)
};

template <typename OnType, typename OnMember>
bool OnePassReader::TypedObject(JsonReader& r, OnType on_type, OnMember on_member) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  absl::InlinedVector<PendingMember, 4> pending;
  bool typed = false;
  bool first = true;
  for (;;) {
    std::string_view name;
    bool has = false;
    if (!Name(r, &first, &name, &has)) return false;
    if (!has) break;
    if (name == "type") {
      std::string_view value;
      std::string value_scratch;
      JsonType t;
      if (typed || !r.Peek(&t) || t != JsonType::kString || !r.ReadString(&value, &value_scratch) ||
          !on_type(value)) {
        return false;
      }
      typed = true;
      for (const PendingMember& m : pending) {
        JsonReader sub(m.text, kMaxJsonDepth);
        if (!on_member(m.name, sub)) return false;
      }
      continue;
    }
    if (typed) {
      if (!on_member(name, r)) return false;
      continue;
    }
    PendingMember& m = pending.emplace_back();
    m.name = name;
    if (!Span(r, &m.text)) return false;
  }
  return typed;
}

bool OnePassReader::Body(std::string_view body) {
  JsonReader r(body, kMaxJsonDepth);
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  SeenNames seen;
  std::optional<Message> system;
  bool has_model = false;
  bool turns_read = false;
  bool first = true;
  for (;;) {
    std::string_view name;
    bool has = false;
    if (!Name(r, &first, &name, &has)) return false;
    if (!has) break;
    bool ok = false;
    if (name == "model") {
      ok = seen.Bit(0) && String(r, &chat_->model) && !chat_->model.empty();
      has_model = true;
    } else if (name == "max_tokens") {
      // An integer literal (no fraction or exponent), >= 1.
      std::string_view text;
      int64_t max = 0;
      ok = seen.Bit(1) && r.Peek(&type) && type == JsonType::kNumber && r.ReadNumber(&text) &&
           text.find_first_of(".eE") == std::string_view::npos && NumberToInt64(text, &max) &&
           max >= 1;
      chat_->max_tokens = max;
    } else if (name == "messages") {
      ok = seen.Bit(2) && ReadTurns(r);
      turns_read = true;
    } else if (name == "system") {
      ok = seen.Bit(3) && ReadSystem(r, &system.emplace());
      if (ok && !turns_read) {
        chat_->messages.push_back(std::move(*system));
        system.reset();
      }
    } else if (name == "stream") {
      bool value = false;
      ok = seen.Bit(4) && r.Peek(&type) && type == JsonType::kBool && r.ReadBool(&value);
      chat_->stream = value;
    } else if (name == "temperature" || name == "top_p") {
      const bool temperature = name == "temperature";
      std::string_view text;
      double number = 0;
      ok = seen.Bit(temperature ? 5 : 6) && r.Peek(&type) && type == JsonType::kNumber &&
           r.ReadNumber(&text) && NumberToDouble(text, &number) && number >= 0 && number <= 1;
      (temperature ? chat_->temperature : chat_->top_p) = number;
    } else if (name == "stop_sequences") {
      ok = seen.Bit(7) && ReadStops(r);
    } else if (name == "metadata") {
      ok = seen.Bit(8) && ReadMetadata(r);
    } else if (name == "tools") {
      ok = seen.Bit(9) && ReadTools(r);
    } else if (name == "tool_choice") {
      ok = seen.Bit(10) && ReadToolChoice(r);
    } else if (name == "output_config") {
      ok = seen.Bit(11) && ReadOutputConfig(r);
    } else {
      // top_k, thinking, ...; a name the unified request models (only service_tier, a
      // string, is also a Messages member) is the checked reader's to refuse.
      ok = seen.Other(name) &&
           (!IsChatRequestMember(name) ||
            (name == "service_tier" && r.Peek(&type) && type == JsonType::kString)) &&
           Extra(r, name, &chat_->extra);
    }
    if (!ok) return false;
  }
  if (!r.ExpectEnd() || !has_model || !chat_->max_tokens.has_value() || !turns_read) return false;
  // A tool choice needs tools (the checked reader reports it).
  if (chat_->tools.empty() &&
      ((chat_->tool_choice.has_value() && chat_->tool_choice->mode != "none") ||
       chat_->parallel_tool_calls.has_value())) {
    return false;
  }
  if (system.has_value()) chat_->messages.insert(chat_->messages.begin(), std::move(*system));
  return true;
}

bool OnePassReader::ReadSystem(JsonReader& r, Message* system) {
  system->role = Role::kSystem;
  JsonType type;
  if (!r.Peek(&type)) return false;
  if (type == JsonType::kString) return r.ReadString(&system->content.emplace().emplace<0>());
  if (type != JsonType::kArray) return false;
  std::vector<ContentPart>& parts = system->content.emplace().emplace<1>();
  return Blocks(r, BlockPlace::kSystem, &parts);
}

bool OnePassReader::ReadTurns(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kArray || !r.BeginArray()) return false;
  // The count is not known before the walk; a start that spares the first regrowths.
  chat_->messages.reserve(chat_->messages.size() + 8);
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return false;
    if (!has) return !first;  // at least one turn (the checked reader reports none)
    if (!ReadTurn(r)) return false;
  }
}

bool OnePassReader::ReadTurn(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  SeenNames seen;
  std::optional<Role> role;
  std::optional<std::string_view> pending_content;  // content before role
  bool content = false;
  bool first = true;
  for (;;) {
    std::string_view name;
    bool has = false;
    if (!Name(r, &first, &name, &has)) return false;
    if (!has) break;
    if (name == "role") {
      std::string_view value;
      std::string value_scratch;
      if (!seen.Bit(0) || !r.Peek(&type) || type != JsonType::kString ||
          !r.ReadString(&value, &value_scratch)) {
        return false;
      }
      if (value == "user") {
        role = Role::kUser;
      } else if (value == "assistant") {
        role = Role::kAssistant;
      } else {
        return false;
      }
    } else if (name == "content") {
      if (!seen.Bit(1)) return false;
      content = true;
      if (role.has_value()) {
        if (!Content(r, *role)) return false;
      } else if (!Span(r, &pending_content.emplace())) {
        return false;
      }
    } else if (!seen.Other(name) || !r.SkipValue()) {
      return false;
    }
  }
  if (!role.has_value() || !content) return false;
  if (pending_content.has_value()) {
    JsonReader sub(*pending_content, kMaxJsonDepth);
    return Content(sub, *role);
  }
  return true;
}

bool OnePassReader::Content(JsonReader& r, Role role) {
  JsonType type;
  if (!r.Peek(&type)) return false;
  if (type == JsonType::kString) {
    Message& m = chat_->messages.emplace_back();
    m.role = role;
    return r.ReadString(&m.content.emplace().emplace<0>());
  }
  if (type != JsonType::kArray) return false;
  if (role == Role::kAssistant) {
    Message& a = chat_->messages.emplace_back();
    a.role = Role::kAssistant;
    return AssistantBlocks(r, &a);
  }
  // Tool results become tool messages, the other blocks one user message after them.
  std::vector<ContentPart> parts;
  if (!Blocks(r, BlockPlace::kUser, &parts)) return false;
  if (!parts.empty()) {
    Message& user = chat_->messages.emplace_back();
    user.role = Role::kUser;
    user.content.emplace(std::move(parts));
  }
  return true;
}

bool OnePassReader::Blocks(JsonReader& r, BlockPlace place, std::vector<ContentPart>* parts) {
  if (!r.BeginArray()) return false;
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return false;
    if (!has) return true;
    if (!Block(r, place, parts)) return false;
  }
}

bool OnePassReader::ReadSource(JsonReader& r, Source* source) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  SeenNames seen;
  bool first = true;
  for (;;) {
    std::string_view name;
    bool has = false;
    if (!Name(r, &first, &name, &has)) return false;
    if (!has) break;
    bool ok = false;
    if (name == "type") {
      ok = seen.Bit(0) && String(r, &source->type.emplace());
    } else if (name == "url") {
      ok = seen.Bit(1) && StringOrSkip(r, &source->url);
    } else if (name == "media_type") {
      ok = seen.Bit(2) && StringOrSkip(r, &source->media_type);
    } else if (name == "data") {
      ok = seen.Bit(3) && StringOrSkip(r, &source->data);
    } else if (name == "file_id") {
      ok = seen.Bit(4) && StringOrSkip(r, &source->file_id);
    } else {
      ok = seen.Other(name) && r.SkipValue();
    }
    if (!ok) return false;
  }
  return source->type.has_value();
}

bool OnePassReader::Block(JsonReader& r, BlockPlace place, std::vector<ContentPart>* parts) {
  BlockKind kind = BlockKind::kText;
  SeenNames seen;
  ContentPart part;
  bool text = false;
  std::optional<Source> source;
  std::optional<std::string> title;
  // tool_result
  std::optional<std::string> tool_use_id;
  std::optional<MessageContent> tool_content;
  std::optional<std::string> is_error, cache_control;

  auto on_type = [&](std::string_view type) {
    const bool media = place != BlockPlace::kSystem;
    if (type == "text") {
      kind = BlockKind::kText;
    } else if (type == "image" && media) {
      kind = BlockKind::kImage;
    } else if (type == "document" && media) {
      kind = BlockKind::kDocument;
    } else if (type == "tool_result" && place == BlockPlace::kUser) {
      kind = BlockKind::kToolResult;
    } else {
      return false;
    }
    return true;
  };
  auto on_member = [&](std::string_view name, JsonReader& vr) -> bool {
    switch (kind) {
      case BlockKind::kText:
        if (name == "text") return seen.Bit(0) && (text = true) && String(vr, &part.text);
        break;
      case BlockKind::kImage:
        if (name == "source") return seen.Bit(0) && ReadSource(vr, &source.emplace());
        break;
      case BlockKind::kDocument:
        if (name == "source") return seen.Bit(0) && ReadSource(vr, &source.emplace());
        if (name == "title") {
          JsonType t;
          if (!seen.Bit(1) || !vr.Peek(&t)) return false;
          if (t == JsonType::kNull) return vr.ReadNull();
          return String(vr, &title.emplace());
        }
        break;
      case BlockKind::kToolResult: {
        if (name == "tool_use_id") return seen.Bit(0) && String(vr, &tool_use_id.emplace());
        if (name == "content") {
          JsonType t;
          if (!seen.Bit(1) || !vr.Peek(&t)) return false;
          if (t == JsonType::kString) {
            return vr.ReadString(&tool_content.emplace().emplace<0>());
          }
          if (t != JsonType::kArray) return false;
          return Blocks(vr, BlockPlace::kToolResult, &tool_content.emplace().emplace<1>());
        }
        if (name == "is_error") {
          return seen.Bit(2) && vr.CaptureValue(&is_error.emplace());
        }
        if (name == "cache_control") {
          return seen.Bit(3) && vr.CaptureValue(&cache_control.emplace());
        }
        // Other members of a tool_result are not kept (as the checked reader).
        return seen.Other(name) && vr.SkipValue();
      }
      default:
        return false;
    }
    // Members of a part other than the modeled ones travel as part extras.
    return seen.Other(name) && Extra(vr, name, &part.extra);
  };
  if (!TypedObject(r, on_type, on_member)) return false;

  switch (kind) {
    case BlockKind::kText:
      if (!text) return false;
      part.type = ContentPartType::kText;
      break;
    case BlockKind::kImage: {
      if (!source.has_value()) return false;
      ImageUrl& image = part.image_url.emplace();
      if (*source->type == "url") {
        if (!source->url.has_value()) return false;
        image.url = std::move(*source->url);
      } else if (*source->type == "base64") {
        if (!source->media_type.has_value() || !source->data.has_value()) return false;
        image.url = absl::StrCat("data:", *source->media_type, ";base64,", *source->data);
      } else {
        return false;
      }
      part.type = ContentPartType::kImageUrl;
      break;
    }
    case BlockKind::kDocument: {
      if (!source.has_value()) return false;
      FileInput& file = part.file.emplace();
      if (*source->type == "base64") {
        if (!source->media_type.has_value() || !source->data.has_value()) return false;
        file.file_data = absl::StrCat("data:", *source->media_type, ";base64,", *source->data);
      } else if (*source->type == "file") {
        if (!source->file_id.has_value()) return false;
        file.file_id = std::move(*source->file_id);
      } else {
        return false;
      }
      file.filename = std::move(title);
      part.type = ContentPartType::kFile;
      break;
    }
    case BlockKind::kToolResult: {
      if (!tool_use_id.has_value() || tool_use_id->empty()) return false;
      Message& tool = chat_->messages.emplace_back();
      tool.role = Role::kTool;
      tool.tool_call_id = std::move(tool_use_id);
      tool.content = tool_content.has_value() ? std::move(*tool_content) : MessageContent();
      if (is_error.has_value()) tool.extra.emplace_back("is_error", std::move(*is_error));
      if (cache_control.has_value()) {
        tool.extra.emplace_back("cache_control", std::move(*cache_control));
      }
      return true;
    }
    default:
      return false;
  }
  parts->push_back(std::move(part));
  return true;
}

bool OnePassReader::AssistantBlocks(JsonReader& r, Message* a) {
  if (!r.BeginArray()) return false;
  std::string text;
  bool has_text = false;
  std::string thinking;  // a JSON array's members, compact
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return false;
    if (!has) break;
    JsonType type;
    if (!r.Peek(&type)) return false;
    const char* start = r.remaining().data();
    BlockKind kind = BlockKind::kText;
    SeenNames seen;
    bool block_text = false;
    std::optional<std::string> id, name;
    std::optional<std::string> input;
    auto on_type = [&](std::string_view t) {
      if (t == "text") {
        kind = BlockKind::kText;
      } else if (t == "tool_use") {
        kind = BlockKind::kToolUse;
      } else if (t == "thinking" || t == "redacted_thinking") {
        kind = BlockKind::kThinking;
      } else {
        return false;
      }
      return true;
    };
    auto on_member = [&](std::string_view member, JsonReader& vr) -> bool {
      if (kind == BlockKind::kText && member == "text") {
        std::string_view value;
        std::string value_scratch;
        JsonType t;
        if (!seen.Bit(0) || !vr.Peek(&t) || t != JsonType::kString ||
            !vr.ReadString(&value, &value_scratch)) {
          return false;
        }
        text.append(value);
        block_text = true;
        return true;
      }
      if (kind == BlockKind::kToolUse) {
        if (member == "id") return seen.Bit(0) && String(vr, &id.emplace());
        if (member == "name") return seen.Bit(1) && String(vr, &name.emplace());
        if (member == "input") return seen.Bit(2) && vr.CaptureValue(&input.emplace());
      }
      // Other members of text and tool_use blocks are not kept (as the checked reader);
      // thinking blocks are kept whole below.
      return seen.Other(member) && vr.SkipValue();
    };
    if (!TypedObject(r, on_type, on_member)) return false;
    switch (kind) {
      case BlockKind::kText:
        if (!block_text) return false;
        has_text = true;
        break;
      case BlockKind::kToolUse: {
        if (!id.has_value() || !name.has_value() || id->empty() || name->empty()) return false;
        ToolCall& call = a->tool_calls.emplace_back();
        call.id = std::move(*id);
        FunctionCall& f = call.function.emplace();
        f.name = std::move(*name);
        f.arguments = input.has_value() ? std::move(*input) : std::string("{}");
        break;
      }
      case BlockKind::kThinking: {
        // The block verbatim (compact), signature included.
        thinking.push_back(thinking.empty() ? '[' : ',');
        const std::string_view block(start, static_cast<size_t>(r.remaining().data() - start));
        JsonReader sub(block, kMaxJsonDepth);
        if (!sub.CaptureValue(&thinking)) return false;
        break;
      }
      default:
        return false;
    }
  }
  if (has_text || a->tool_calls.empty()) a->content = std::move(text);
  if (!thinking.empty()) {
    thinking.push_back(']');
    a->extra.emplace_back("thinking_blocks", std::move(thinking));
  }
  return true;
}

bool OnePassReader::ReadTools(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kArray || !r.BeginArray()) return false;
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return false;
    if (!has) return true;
    if (!ReadTool(r, &chat_->tools.emplace_back())) return false;
  }
}

bool OnePassReader::ReadTool(JsonReader& r, modeenvoy::Tool* tool) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  SeenNames seen;
  bool server = false;  // a server tool: "type" first and not "custom"
  std::optional<std::string> name, description, parameters, cache_control;
  bool first = true;
  for (;;) {
    std::string_view member;
    bool has = false;
    const bool first_member = first;
    if (!Name(r, &first, &member, &has)) return false;
    if (!has) break;
    if (member == "type") {
      std::string value;
      if (!seen.Bit(0) || !String(r, &value)) return false;
      if (value == "custom") continue;
      // A server tool, kept as is. Its "type" must come first: the members before it were
      // read as a custom tool's (the checked reader then reads it).
      if (!first_member) return false;
      server = true;
      tool->type = std::move(value);
      continue;
    }
    bool ok = false;
    if (server) {
      // "function" is the unified tool's own member: the checked reader refuses it.
      ok = member != "function" && seen.Other(member) && Extra(r, member, &tool->extra);
    } else if (member == "name") {
      ok = seen.Bit(1) && String(r, &name.emplace());
    } else if (member == "description") {
      ok = seen.Bit(2) && String(r, &description.emplace());
    } else if (member == "input_schema") {
      ok = seen.Bit(3) && r.CaptureValue(&parameters.emplace());
    } else if (member == "cache_control") {
      ok = seen.Bit(4) && r.CaptureValue(&cache_control.emplace());
    } else {
      ok = seen.Other(member) && r.SkipValue();  // not kept (as the checked reader)
    }
    if (!ok) return false;
  }
  if (server) return true;
  if (!name.has_value() || name->empty() || !parameters.has_value()) return false;
  FunctionDefinition& f = tool->function.emplace();
  f.name = std::move(*name);
  f.description = std::move(description);
  f.parameters = std::move(parameters);
  if (cache_control.has_value()) {
    tool->extra.emplace_back("cache_control", std::move(*cache_control));
  }
  return true;
}

bool OnePassReader::ReadToolChoice(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  SeenNames seen;
  std::optional<std::string> choice_type;
  std::optional<std::string> name;
  bool name_not_string = false;
  bool disable = false;
  bool first = true;
  for (;;) {
    std::string_view member;
    bool has = false;
    if (!Name(r, &first, &member, &has)) return false;
    if (!has) break;
    bool ok = false;
    if (member == "type") {
      ok = seen.Bit(0) && String(r, &choice_type.emplace());
    } else if (member == "name") {
      // Read only for type "tool", where it must be a string.
      ok = seen.Bit(1) && r.Peek(&type);
      if (ok && type == JsonType::kString) {
        ok = r.ReadString(&name.emplace());
      } else if (ok) {
        name_not_string = true;
        ok = r.SkipValue();
      }
    } else if (member == "disable_parallel_tool_use") {
      ok = seen.Bit(2) && r.Peek(&type) && type == JsonType::kBool && r.ReadBool(&disable);
    } else {
      ok = seen.Other(member) && r.SkipValue();  // not kept (as the checked reader)
    }
    if (!ok) return false;
  }
  if (!choice_type.has_value()) return false;
  modeenvoy::ToolChoice& choice = chat_->tool_choice.emplace();
  if (*choice_type == "auto") {
    choice.mode = "auto";
  } else if (*choice_type == "any") {
    choice.mode = "required";
  } else if (*choice_type == "none") {
    choice.mode = "none";
  } else if (*choice_type == "tool") {
    if (name_not_string || !name.has_value() || name->empty()) return false;
    std::string object = R"({"function":{"name":)";
    AppendJsonString(&object, name.has_value() ? *name : std::string());
    object += R"(},"type":"function"})";
    choice.object = std::move(object);
  } else {
    return false;
  }
  if (disable) chat_->parallel_tool_calls = false;
  return true;
}

bool OnePassReader::ReadMetadata(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kObject || !r.BeginObject()) return false;
  bool seen_user = false;
  bool first = true;
  for (;;) {
    std::string_view member;
    bool has = false;
    if (!Name(r, &first, &member, &has)) return false;
    if (!has) return true;
    // Only user_id (Anthropic refuses the others), once.
    if (member != "user_id" || seen_user || !r.Peek(&type)) return false;
    seen_user = true;
    if (type == JsonType::kNull) {
      if (!r.ReadNull()) return false;
    } else if (!String(r, &chat_->user.emplace())) {
      return false;
    }
  }
}

bool OnePassReader::ReadStops(JsonReader& r) {
  JsonType type;
  if (!r.Peek(&type) || type != JsonType::kArray || !r.BeginArray()) return false;
  std::vector<std::string>& stops = chat_->stop.emplace().emplace<1>();
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return false;
    if (!has) return true;
    if (!String(r, &stops.emplace_back())) return false;
  }
}

bool OnePassReader::ReadOutputConfig(JsonReader& r) {
  // Rare: captured, then read from the capture. output_config.format of type json_schema
  // becomes the unified response_format (the other members of output_config are then not
  // kept, as the checked reader); any other output_config travels as an extra.
  std::string config;
  if (!r.CaptureValue(&config)) return false;
  JsonReader c(config, kMaxJsonDepth);
  JsonType type;
  std::optional<std::string> format_type, schema;
  bool json_schema = false;
  if (c.Peek(&type) && type == JsonType::kObject) {
    if (!c.BeginObject()) return false;
    SeenNames seen;
    bool first = true;
    for (;;) {
      std::string_view member;
      bool has = false;
      if (!Name(c, &first, &member, &has)) return false;
      if (!has) break;
      if (member != "format") {
        if (!seen.Other(member) || !c.SkipValue()) return false;
        continue;
      }
      if (!seen.Bit(0) || !c.Peek(&type)) return false;
      if (type != JsonType::kObject) {
        if (!c.SkipValue()) return false;
        continue;
      }
      if (!c.BeginObject()) return false;
      SeenNames format_seen;
      bool format_first = true;
      for (;;) {
        std::string_view fm;
        bool fhas = false;
        if (!Name(c, &format_first, &fm, &fhas)) return false;
        if (!fhas) break;
        bool ok = false;
        if (fm == "type") {
          ok = format_seen.Bit(0) && StringOrSkip(c, &format_type);
        } else if (fm == "schema") {
          ok = format_seen.Bit(1) && c.CaptureValue(&schema.emplace());
        } else {
          ok = format_seen.Other(fm) && c.SkipValue();
        }
        if (!ok) return false;
      }
      json_schema = format_type.has_value() && *format_type == "json_schema";
    }
  }
  if (!json_schema) {
    chat_->extra.emplace_back("output_config", std::move(config));
    return true;
  }
  std::string rf = R"({"json_schema":{"name":"output","schema":)";
  rf += schema.has_value() ? *schema : std::string("{}");
  rf += R"(},"type":"json_schema"})";
  chat_->response_format = std::move(rf);
  return true;
}

}  // namespace

bool DecodeMessagesRequestOnePass(std::string_view body, ChatRequest* chat) {
  return OnePassReader(chat).Body(body);
}

}  // namespace modeenvoy::protocol_internal
