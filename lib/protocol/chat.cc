#include "modeenvoy/protocol/chat.h"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/chat_serialize.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;
using protocol_internal::AppendJsonDouble;
using protocol_internal::AppendJsonInt;
using protocol_internal::AppendJsonString;
using protocol_internal::JsonObjectWriter;
using protocol_internal::JsonReader;
using protocol_internal::JsonType;
using protocol_internal::JsonTypeName;
using protocol_internal::MemberNameSet;

// ---------------------------------------------------------------------------------------
// Field paths, built only when an error is reported.

struct Path {
  const Path* parent = nullptr;
  std::string_view key;  // member name; empty for an array index or the root
  int64_t index = -1;    // array index when >= 0

  Path Member(std::string_view name) const { return Path{this, name, -1}; }
  Path Index(int64_t i) const { return Path{this, {}, i}; }

  std::string ToString() const {
    std::string out;
    AppendTo(&out);
    return out;
  }

  void AppendTo(std::string* out) const {
    if (parent != nullptr) parent->AppendTo(out);
    if (index >= 0) {
      absl::StrAppend(out, "[", index, "]");
    } else if (!key.empty()) {
      if (!out->empty()) out->push_back('.');
      out->append(key.data(), key.size());
    }
  }
};

absl::Status Invalid(const Path& path, std::string_view reason) {
  return InvalidFieldError(path.ToString(), reason);
}

// A value quoted for an error message, shortened so hostile input cannot bloat logs.
std::string Quote(std::string_view value) {
  constexpr size_t kMax = 64;
  std::string out;
  if (value.size() > kMax) {
    size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(value[n]) & 0xC0) == 0x80) --n;
    AppendJsonString(&out, value.substr(0, n));
    out.insert(out.size() - 1, "...");
  } else {
    AppendJsonString(&out, value);
  }
  return out;
}

std::string_view Shorten(std::string_view text) {
  return text.size() > 40 ? text.substr(0, 40) : text;
}

// ---------------------------------------------------------------------------------------
// Parsing.

class Parser {
 public:
  explicit Parser(std::string_view json) : reader_(json, kMaxJsonDepth) {}

  JsonReader& reader() { return reader_; }
  absl::Status Syntax() const { return reader_.status(); }

  absl::Status TypeError(const Path& path, std::string_view expected, JsonType got) {
    return Invalid(path, absl::StrCat("expected ", ToAbsl(expected), ", got ",
                                      ToAbsl(JsonTypeName(got))));
  }

  // Reads the type of the next value; on null consumes it and sets *is_null.
  absl::Status PeekNonNull(JsonType* type, bool* is_null) {
    if (!reader_.Peek(type)) return Syntax();
    *is_null = *type == JsonType::kNull;
    if (*is_null && !reader_.ReadNull()) return Syntax();
    return absl::OkStatus();
  }

  // A required string; null is a type error unless `null_keeps` (then *out is kept).
  absl::Status String(const Path& path, std::string* out, bool null_keeps = false) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null && null_keeps) return absl::OkStatus();
    if (type != JsonType::kString) return TypeError(path, "string", type);
    if (!reader_.ReadString(out)) return Syntax();
    return absl::OkStatus();
  }

  absl::Status OptString(const Path& path, std::optional<std::string>* out) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null) {
      out->reset();
      return absl::OkStatus();
    }
    if (type != JsonType::kString) return TypeError(path, "string", type);
    if (!reader_.ReadString(&out->emplace())) return Syntax();
    return absl::OkStatus();
  }

  absl::Status OptBool(const Path& path, std::optional<bool>* out) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null) {
      out->reset();
      return absl::OkStatus();
    }
    if (type != JsonType::kBool) return TypeError(path, "boolean", type);
    bool value;
    if (!reader_.ReadBool(&value)) return Syntax();
    *out = value;
    return absl::OkStatus();
  }

  // An integer; null resets an optional or keeps a plain value.
  absl::Status IntValue(const Path& path, int64_t* out, bool* is_null) {
    JsonType type;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, is_null));
    if (*is_null) return absl::OkStatus();
    if (type != JsonType::kNumber) return TypeError(path, "integer", type);
    std::string_view text;
    if (!reader_.ReadNumber(&text)) return Syntax();
    if (!protocol_internal::NumberToInt64(text, out)) {
      return Invalid(path, absl::StrCat("expected integer, got ", ToAbsl(Shorten(text))));
    }
    return absl::OkStatus();
  }
  absl::Status OptInt(const Path& path, std::optional<int64_t>* out) {
    int64_t value = 0;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(IntValue(path, &value, &is_null));
    if (is_null) {
      out->reset();
    } else {
      *out = value;
    }
    return absl::OkStatus();
  }
  absl::Status Int(const Path& path, int64_t* out) {
    bool is_null;
    int64_t value = 0;
    MODEENVOY_RETURN_IF_ERROR(IntValue(path, &value, &is_null));
    if (!is_null) *out = value;
    return absl::OkStatus();
  }

  absl::Status OptDouble(const Path& path, std::optional<double>* out) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null) {
      out->reset();
      return absl::OkStatus();
    }
    if (type != JsonType::kNumber) return TypeError(path, "number", type);
    std::string_view text;
    if (!reader_.ReadNumber(&text)) return Syntax();
    double value;
    if (!protocol_internal::NumberToDouble(text, &value)) {
      return Invalid(path, absl::StrCat("number out of range: ", ToAbsl(Shorten(text))));
    }
    *out = value;
    return absl::OkStatus();
  }

  // Raw JSON text of any value except null (null resets), checked to be of type `want`
  // unless `want` is nullopt.
  absl::Status OptRaw(const Path& path, std::optional<std::string>* out,
                      std::optional<JsonType> want) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null) {
      out->reset();
      return absl::OkStatus();
    }
    if (want.has_value() && type != *want) return TypeError(path, JsonTypeName(*want), type);
    if (!reader_.CaptureValue(&out->emplace())) return Syntax();
    return absl::OkStatus();
  }

  absl::Status Opt(const Path& path, std::optional<std::string>* out) {
    return OptString(path, out);
  }
  absl::Status Opt(const Path& path, std::optional<bool>* out) { return OptBool(path, out); }
  absl::Status Opt(const Path& path, std::optional<int64_t>* out) { return OptInt(path, out); }
  absl::Status Opt(const Path& path, std::optional<double>* out) {
    return OptDouble(path, out);
  }

  absl::Status Raw(std::string* out) {
    if (!reader_.CaptureValue(out)) return Syntax();
    return absl::OkStatus();
  }

  // Iterates an object's members: fn(key, member_path) must consume the value.
  template <typename F>
  absl::Status Object(const Path& path, F&& fn) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kObject) return TypeError(path, "object", type);
    if (!reader_.BeginObject()) return Syntax();
    std::string scratch;
    std::string_view key;
    bool first = true, has = false;
    while (true) {
      if (!reader_.NextMember(&first, &key, &scratch, &has)) return Syntax();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(fn(key, path.Member(key)));
    }
  }

  // Iterates an array's elements: fn(index, element_path) must consume the element.
  // With `null_ok`, null is accepted as an empty array.
  template <typename F>
  absl::Status Array(const Path& path, bool null_ok, F&& fn) {
    JsonType type;
    bool is_null;
    MODEENVOY_RETURN_IF_ERROR(PeekNonNull(&type, &is_null));
    if (is_null && null_ok) return absl::OkStatus();
    if (type != JsonType::kArray) return TypeError(path, "array", type);
    if (!reader_.BeginArray()) return Syntax();
    bool first = true, has = false;
    for (int64_t i = 0;; ++i) {
      if (!reader_.NextElement(&first, &has)) return Syntax();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(fn(i, path.Index(i)));
    }
  }

  absl::Status StringArray(const Path& path, std::vector<std::string>* out) {
    out->clear();
    return Array(path, false, [&](int64_t, const Path& at) {
      return String(at, &out->emplace_back());
    });
  }

  absl::Status OptRole(const Path& path, std::optional<Role>* out) {
    std::optional<std::string> name;
    MODEENVOY_RETURN_IF_ERROR(OptString(path, &name));
    if (!name.has_value()) {
      out->reset();
      return absl::OkStatus();
    }
    *out = RoleFromName(*name);
    if (!out->has_value()) return Invalid(path, absl::StrCat("unknown role ", Quote(*name)));
    return absl::OkStatus();
  }

  // Top level: the document must be exactly one object.
  template <typename F>
  absl::Status Document(F&& parse_root) {
    const Path root;
    MODEENVOY_RETURN_IF_ERROR(parse_root(root));
    if (!reader_.ExpectEnd()) return Syntax();
    return absl::OkStatus();
  }

 private:
  JsonReader reader_;
};

absl::Status Duplicate(const Path& path) { return Invalid(path, "duplicate key"); }

// Table-driven members of one struct. Members not in the table go to `extra`.
template <typename T>
struct MemberSpec {
  std::string_view name;
  absl::Status (*parse)(Parser&, const Path&, T*);
};

// Appends a member to `extra` with its value captured as sent.
absl::Status AppendExtra(Parser& p, std::string_view key, ExtraFields* extra) {
  auto& entry = extra->emplace_back(std::string(key), std::string());
  return p.Raw(&entry.second);
}

// Adds an unknown member to `extra`, rejecting a name already in `names` (the unknown
// names of the same object: a set, so 100k unknown members are not 5e9 comparisons).
absl::Status AddExtra(Parser& p, std::string_view key, const Path& at, ExtraFields* extra,
                      MemberNameSet* names) {
  if (!names->Insert(key)) return Duplicate(at);
  return AppendExtra(p, key, extra);
}

template <typename T, size_t N>
absl::Status ParseMembers(Parser& p, const Path& path, const MemberSpec<T> (&members)[N],
                          T* out, ExtraFields* extra, uint64_t* seen_out = nullptr) {
  static_assert(N <= 64, "seen bitmask");
  uint64_t seen = 0;
  MemberNameSet extra_names;
  absl::Status status = p.Object(path, [&](std::string_view key, const Path& at) {
    for (size_t i = 0; i < N; ++i) {
      if (members[i].name == key) {
        const uint64_t bit = uint64_t{1} << i;
        if (seen & bit) return Duplicate(at);
        seen |= bit;
        return members[i].parse(p, at, out);
      }
    }
    return AddExtra(p, key, at, extra, &extra_names);
  });
  if (seen_out != nullptr) *seen_out = seen;
  return status;
}

template <typename T, size_t N>
bool IsMemberName(const MemberSpec<T> (&members)[N], std::string_view name) {
  for (const auto& m : members) {
    if (m.name == name) return true;
  }
  return false;
}

// Member parsers for the tables below, by the member's type.
template <typename M>
struct MemberTraits;
template <typename C, typename V>
struct MemberTraits<V C::*> {
  using Class = C;
};
template <auto M>
using ClassOf = typename MemberTraits<decltype(M)>::Class;

// A std::optional<string/bool/int64/double> member; null means absent.
template <auto M>
absl::Status Opt(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.Opt(at, &(o->*M));
}
// A required std::string member (null is a type error).
template <auto M>
absl::Status Str(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.String(at, &(o->*M));
}
// A std::string member of a response: null keeps the default.
template <auto M>
absl::Status StrOrNull(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.String(at, &(o->*M), /*null_keeps=*/true);
}
// An int64_t member of a response: null keeps the default.
template <auto M>
absl::Status Int(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.Int(at, &(o->*M));
}
// Raw JSON members: of a required JSON type, or any.
template <auto M>
absl::Status RawObject(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.OptRaw(at, &(o->*M), JsonType::kObject);
}
template <auto M>
absl::Status RawArray(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.OptRaw(at, &(o->*M), JsonType::kArray);
}
template <auto M>
absl::Status RawAny(Parser& p, const Path& at, ClassOf<M>* o) {
  return p.OptRaw(at, &(o->*M), std::nullopt);
}

template <typename T, size_t N>
absl::Status ParseOptObject(Parser& p, const Path& at, const MemberSpec<T> (&members)[N],
                            std::optional<T>* out);
// A std::optional<struct> member parsed with the member table `kMembers`.
template <auto M, const auto& kMembers>
absl::Status OptObject(Parser& p, const Path& at, ClassOf<M>* o) {
  return ParseOptObject(p, at, kMembers, &(o->*M));
}

// --- request members --------------------------------------------------------------------

absl::Status ParseImageUrl(Parser& p, const Path& path, ImageUrl* out);
absl::Status ParseInputAudio(Parser& p, const Path& path, InputAudio* out);
absl::Status ParseFileInput(Parser& p, const Path& path, FileInput* out);

constexpr MemberSpec<ImageUrl> kImageUrlMembers[] = {
    {"url", &Str<&ImageUrl::url>},
    {"detail", &Opt<&ImageUrl::detail>},
};

absl::Status ParseImageUrl(Parser& p, const Path& path, ImageUrl* out) {
  uint64_t seen = 0;
  MODEENVOY_RETURN_IF_ERROR(ParseMembers(p, path, kImageUrlMembers, out, &out->extra, &seen));
  if (!(seen & 1)) return Invalid(path.Member("url"), "required");
  return absl::OkStatus();
}

constexpr MemberSpec<InputAudio> kInputAudioMembers[] = {
    {"data", &Str<&InputAudio::data>},
    {"format", &Str<&InputAudio::format>},
};

absl::Status ParseInputAudio(Parser& p, const Path& path, InputAudio* out) {
  uint64_t seen = 0;
  MODEENVOY_RETURN_IF_ERROR(
      ParseMembers(p, path, kInputAudioMembers, out, &out->extra, &seen));
  if (!(seen & 1)) return Invalid(path.Member("data"), "required");
  if (!(seen & 2)) return Invalid(path.Member("format"), "required");
  return absl::OkStatus();
}

constexpr MemberSpec<FileInput> kFileInputMembers[] = {
    {"file_data", &Opt<&FileInput::file_data>},
    {"file_id", &Opt<&FileInput::file_id>},
    {"filename", &Opt<&FileInput::filename>},
};

absl::Status ParseFileInput(Parser& p, const Path& path, FileInput* out) {
  return ParseMembers(p, path, kFileInputMembers, out, &out->extra);
}

constexpr std::string_view kContentPartTypeNames[] = {"text", "image_url", "input_audio",
                                                      "file", "refusal"};

std::optional<ContentPartType> ContentPartTypeFromName(std::string_view name) {
  for (size_t i = 0; i < std::size(kContentPartTypeNames); ++i) {
    if (kContentPartTypeNames[i] == name) return static_cast<ContentPartType>(i);
  }
  return std::nullopt;
}

// Parses the member of a content part that holds its payload (the member named like
// the type).
absl::Status ParsePartPayload(Parser& p, const Path& at, ContentPartType type,
                              ContentPart* out) {
  switch (type) {
    case ContentPartType::kOther: break;
    case ContentPartType::kText: return p.String(at, &out->text);
    case ContentPartType::kRefusal: return p.String(at, &out->refusal);
    case ContentPartType::kImageUrl: return ParseImageUrl(p, at, &out->image_url.emplace());
    case ContentPartType::kInputAudio:
      return ParseInputAudio(p, at, &out->input_audio.emplace());
    case ContentPartType::kFile: return ParseFileInput(p, at, &out->file.emplace());
  }
  return absl::InternalError("unreachable content part type");
}

// A content part is a tagged union: only the member named by "type" is modeled; the
// other payload members a client sends along go to `extra` untouched. "type" usually
// comes first; payload members seen before it are captured and parsed afterwards.
// `allow_other`: keep an unknown type as kOther (responses) instead of failing.
absl::Status ParseContentPart(Parser& p, const Path& path, ContentPart* out,
                              bool allow_other) {
  std::optional<ContentPartType> type;
  uint32_t seen = 0;  // bit 0: type; bit 1 + i: payload member i
  std::vector<std::pair<size_t, std::string>> deferred;  // (payload index, raw JSON)
  MemberNameSet extra_names;  // the names AddExtra takes; "type" and payloads have bits
  MODEENVOY_RETURN_IF_ERROR(p.Object(path, [&](std::string_view key, const Path& at) {
    if (key == "type") {
      if (seen & 1) return Duplicate(at);
      seen |= 1;
      std::string name;
      MODEENVOY_RETURN_IF_ERROR(p.String(at, &name));
      type = ContentPartTypeFromName(name);
      if (!type.has_value()) {
        if (!allow_other) {
          return Invalid(at, absl::StrCat("unknown content part type ", Quote(name)));
        }
        type = ContentPartType::kOther;
        std::string raw;
        AppendJsonString(&raw, name);
        out->extra.emplace(out->extra.begin(), "type", std::move(raw));
      }
      return absl::OkStatus();
    }
    for (size_t i = 0; i < std::size(kContentPartTypeNames); ++i) {
      if (kContentPartTypeNames[i] != key) continue;
      const uint32_t bit = 2u << i;
      if (seen & bit) return Duplicate(at);
      seen |= bit;
      if (!type.has_value()) {
        auto& entry = deferred.emplace_back(i, std::string());
        return p.Raw(&entry.second);
      }
      if (static_cast<size_t>(*type) == i) return ParsePartPayload(p, at, *type, out);
      return AppendExtra(p, key, &out->extra);  // a repeat was refused by its bit above
    }
    return AddExtra(p, key, at, &out->extra, &extra_names);
  }));
  if (!type.has_value()) return Invalid(path.Member("type"), "required");
  out->type = *type;
  for (auto& [index, raw] : deferred) {
    const std::string_view name = kContentPartTypeNames[index];
    if (static_cast<size_t>(*type) == index) {
      Parser sub(raw);
      MODEENVOY_RETURN_IF_ERROR(
          sub.Document([&](const Path&) {
            return ParsePartPayload(sub, path.Member(name), *type, out);
          }));
    } else {
      out->extra.emplace_back(std::string(name), std::move(raw));
    }
  }
  if (*type != ContentPartType::kOther && !(seen & (2u << static_cast<size_t>(*type)))) {
    return Invalid(path.Member(kContentPartTypeNames[static_cast<size_t>(*type)]),
                   "required");
  }
  return absl::OkStatus();
}

absl::Status ParseContent(Parser& p, const Path& at, std::optional<MessageContent>* out,
                          bool allow_other_parts) {
  JsonType type;
  bool is_null;
  MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
  if (is_null) {
    out->reset();
    return absl::OkStatus();
  }
  if (type == JsonType::kString) {
    std::string text;
    if (!p.reader().ReadString(&text)) return p.Syntax();
    *out = std::move(text);
    return absl::OkStatus();
  }
  if (type != JsonType::kArray) return p.TypeError(at, "string or array", type);
  auto& parts = out->emplace().emplace<std::vector<ContentPart>>();
  return p.Array(at, false, [&](int64_t, const Path& element) {
    return ParseContentPart(p, element, &parts.emplace_back(), allow_other_parts);
  });
}

constexpr MemberSpec<FunctionCall> kFunctionCallMembers[] = {
    {"name", &Str<&FunctionCall::name>},
    {"arguments", &Str<&FunctionCall::arguments>},
};

constexpr MemberSpec<ToolCall> kToolCallMembers[] = {
    {"id", &Str<&ToolCall::id>},
    {"type", &Str<&ToolCall::type>},
    {"function",
     [](Parser& p, const Path& at, ToolCall* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) {
         o->function.reset();
         return absl::OkStatus();
       }
       FunctionCall& call = o->function.emplace();
       return ParseMembers(p, at, kFunctionCallMembers, &call, &call.extra);
     }},
};

absl::Status ParseToolCalls(Parser& p, const Path& at, std::vector<ToolCall>* out) {
  out->clear();
  return p.Array(at, true, [&](int64_t, const Path& element) {
    ToolCall& call = out->emplace_back();
    return ParseMembers(p, element, kToolCallMembers, &call, &call.extra);
  });
}

constexpr MemberSpec<Message> kMessageMembers[] = {
    {"role",
     [](Parser& p, const Path& at, Message* o) {
       std::optional<Role> role;
       MODEENVOY_RETURN_IF_ERROR(p.OptRole(at, &role));
       if (!role.has_value()) return Invalid(at, "expected string, got null");
       o->role = *role;
       return absl::OkStatus();
     }},
    {"content",
     [](Parser& p, const Path& at, Message* o) {
       return ParseContent(p, at, &o->content, false);
     }},
    {"name", &Opt<&Message::name>},
    {"tool_calls",
     [](Parser& p, const Path& at, Message* o) {
       return ParseToolCalls(p, at, &o->tool_calls);
     }},
    {"tool_call_id", &Opt<&Message::tool_call_id>},
    {"refusal", &Opt<&Message::refusal>},
};

// The same members in a response message: the role defaults to assistant and unknown
// content part types are kept.
constexpr MemberSpec<Message> kResponseMessageMembers[] = {
    kMessageMembers[0],
    {"content",
     [](Parser& p, const Path& at, Message* o) {
       return ParseContent(p, at, &o->content, true);
     }},
    kMessageMembers[2],
    kMessageMembers[3],
    kMessageMembers[4],
    kMessageMembers[5],
};

absl::Status ParseRequestMessage(Parser& p, const Path& path, Message* out) {
  uint64_t seen = 0;
  MODEENVOY_RETURN_IF_ERROR(ParseMembers(p, path, kMessageMembers, out, &out->extra, &seen));
  if (!(seen & 1)) return Invalid(path.Member("role"), "required");
  return absl::OkStatus();
}

constexpr MemberSpec<FunctionDefinition> kFunctionDefinitionMembers[] = {
    {"name", &Str<&FunctionDefinition::name>},
    {"description", &Opt<&FunctionDefinition::description>},
    {"parameters", &RawObject<&FunctionDefinition::parameters>},
    {"strict", &Opt<&FunctionDefinition::strict>},
};

constexpr MemberSpec<Tool> kToolMembers[] = {
    {"type", &Str<&Tool::type>},
    {"function",
     [](Parser& p, const Path& at, Tool* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) {
         o->function.reset();
         return absl::OkStatus();
       }
       FunctionDefinition& fn = o->function.emplace();
       uint64_t seen = 0;
       MODEENVOY_RETURN_IF_ERROR(
           ParseMembers(p, at, kFunctionDefinitionMembers, &fn, &fn.extra, &seen));
       if (!(seen & 1)) return Invalid(at.Member("name"), "required");
       return absl::OkStatus();
     }},
};

constexpr MemberSpec<StreamOptions> kStreamOptionsMembers[] = {
    {"include_usage", &Opt<&StreamOptions::include_usage>},
    {"include_obfuscation", &Opt<&StreamOptions::include_obfuscation>},
};

absl::Status ParseStop(Parser& p, const Path& at, std::optional<StopSequences>* out) {
  JsonType type;
  bool is_null;
  MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
  if (is_null) {
    out->reset();
    return absl::OkStatus();
  }
  if (type == JsonType::kString) {
    std::string stop;
    if (!p.reader().ReadString(&stop)) return p.Syntax();
    *out = std::move(stop);
    return absl::OkStatus();
  }
  if (type != JsonType::kArray) return p.TypeError(at, "string or array", type);
  return p.StringArray(at, &out->emplace().emplace<std::vector<std::string>>());
}

absl::Status ParseToolChoice(Parser& p, const Path& at, std::optional<ToolChoice>* out) {
  JsonType type;
  bool is_null;
  MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
  if (is_null) {
    out->reset();
    return absl::OkStatus();
  }
  ToolChoice& choice = out->emplace();
  if (type == JsonType::kString) {
    if (!p.reader().ReadString(&choice.mode)) return p.Syntax();
    if (choice.mode.empty()) return Invalid(at, "must not be empty");
    return absl::OkStatus();
  }
  if (type != JsonType::kObject) return p.TypeError(at, "string or object", type);
  return p.Raw(&choice.object);
}

constexpr MemberSpec<ChatRequest> kRequestMembers[] = {
    {"model", &Str<&ChatRequest::model>},
    {"messages",
     [](Parser& p, const Path& at, ChatRequest* o) {
       o->messages.clear();
       return p.Array(at, false, [&](int64_t, const Path& element) {
         return ParseRequestMessage(p, element, &o->messages.emplace_back());
       });
     }},
    {"stream", &Opt<&ChatRequest::stream>},
    {"stream_options",
     [](Parser& p, const Path& at, ChatRequest* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) {
         o->stream_options.reset();
         return absl::OkStatus();
       }
       StreamOptions& so = o->stream_options.emplace();
       return ParseMembers(p, at, kStreamOptionsMembers, &so, &so.extra);
     }},
    {"temperature", &Opt<&ChatRequest::temperature>},
    {"top_p", &Opt<&ChatRequest::top_p>},
    {"n", &Opt<&ChatRequest::n>},
    {"max_tokens", &Opt<&ChatRequest::max_tokens>},
    {"max_completion_tokens", &Opt<&ChatRequest::max_completion_tokens>},
    {"stop",
     [](Parser& p, const Path& at, ChatRequest* o) {
       return ParseStop(p, at, &o->stop);
     }},
    {"presence_penalty", &Opt<&ChatRequest::presence_penalty>},
    {"frequency_penalty", &Opt<&ChatRequest::frequency_penalty>},
    {"logit_bias", &RawObject<&ChatRequest::logit_bias>},
    {"logprobs", &Opt<&ChatRequest::logprobs>},
    {"top_logprobs", &Opt<&ChatRequest::top_logprobs>},
    {"seed", &Opt<&ChatRequest::seed>},
    {"user", &Opt<&ChatRequest::user>},
    {"response_format", &RawObject<&ChatRequest::response_format>},
    {"tools",
     [](Parser& p, const Path& at, ChatRequest* o) {
       o->tools.clear();
       return p.Array(at, true, [&](int64_t, const Path& element) {
         Tool& tool = o->tools.emplace_back();
         return ParseMembers(p, element, kToolMembers, &tool, &tool.extra);
       });
     }},
    {"tool_choice",
     [](Parser& p, const Path& at, ChatRequest* o) {
       return ParseToolChoice(p, at, &o->tool_choice);
     }},
    {"parallel_tool_calls", &Opt<&ChatRequest::parallel_tool_calls>},
    {"reasoning_effort", &Opt<&ChatRequest::reasoning_effort>},
    {"verbosity", &Opt<&ChatRequest::verbosity>},
    {"service_tier", &Opt<&ChatRequest::service_tier>},
    {"store", &Opt<&ChatRequest::store>},
    {"metadata", &RawObject<&ChatRequest::metadata>},
    {"modalities",
     [](Parser& p, const Path& at, ChatRequest* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) {
         o->modalities.reset();
         return absl::OkStatus();
       }
       return p.StringArray(at, &o->modalities.emplace());
     }},
    {"audio", &RawObject<&ChatRequest::audio>},
    {"prediction", &RawObject<&ChatRequest::prediction>},
    {"web_search_options", &RawObject<&ChatRequest::web_search_options>},
    {"prompt_cache_key", &Opt<&ChatRequest::prompt_cache_key>},
    {"safety_identifier", &Opt<&ChatRequest::safety_identifier>},
    {"functions", &RawArray<&ChatRequest::functions>},
    {"function_call", &RawAny<&ChatRequest::function_call>},
};

// --- response members -------------------------------------------------------------------

constexpr MemberSpec<PromptTokensDetails> kPromptTokensDetailsMembers[] = {
    {"cached_tokens", &Opt<&PromptTokensDetails::cached_tokens>},
    {"audio_tokens", &Opt<&PromptTokensDetails::audio_tokens>},
};

constexpr MemberSpec<CompletionTokensDetails> kCompletionTokensDetailsMembers[] = {
    {"reasoning_tokens", &Opt<&CompletionTokensDetails::reasoning_tokens>},
    {"audio_tokens", &Opt<&CompletionTokensDetails::audio_tokens>},
    {"accepted_prediction_tokens", &Opt<&CompletionTokensDetails::accepted_prediction_tokens>},
    {"rejected_prediction_tokens", &Opt<&CompletionTokensDetails::rejected_prediction_tokens>},
};

template <typename T, size_t N>
absl::Status ParseOptObject(Parser& p, const Path& at, const MemberSpec<T> (&members)[N],
                            std::optional<T>* out) {
  JsonType type;
  bool is_null;
  MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
  if (is_null) {
    out->reset();
    return absl::OkStatus();
  }
  T& value = out->emplace();
  return ParseMembers(p, at, members, &value, &value.extra);
}

constexpr MemberSpec<Usage> kUsageMembers[] = {
    {"prompt_tokens", &Int<&Usage::prompt_tokens>},
    {"completion_tokens", &Int<&Usage::completion_tokens>},
    {"total_tokens", &Int<&Usage::total_tokens>},
    {"prompt_tokens_details",
     &OptObject<&Usage::prompt_tokens_details, kPromptTokensDetailsMembers>},
    {"completion_tokens_details",
     &OptObject<&Usage::completion_tokens_details, kCompletionTokensDetailsMembers>},
};

constexpr MemberSpec<ChatChoice> kChoiceMembers[] = {
    {"index", &Int<&ChatChoice::index>},
    {"message",
     [](Parser& p, const Path& at, ChatChoice* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) return absl::OkStatus();
       return ParseMembers(p, at, kResponseMessageMembers, &o->message, &o->message.extra);
     }},
    {"finish_reason", &Opt<&ChatChoice::finish_reason>},
    {"logprobs", &RawAny<&ChatChoice::logprobs>},
};

constexpr MemberSpec<ChatCompletion> kCompletionMembers[] = {
    {"id", &StrOrNull<&ChatCompletion::id>},
    {"object", &StrOrNull<&ChatCompletion::object>},
    {"created", &Int<&ChatCompletion::created>},
    {"model", &StrOrNull<&ChatCompletion::model>},
    {"system_fingerprint", &Opt<&ChatCompletion::system_fingerprint>},
    {"service_tier", &Opt<&ChatCompletion::service_tier>},
    {"choices",
     [](Parser& p, const Path& at, ChatCompletion* o) {
       o->choices.clear();
       return p.Array(at, true, [&](int64_t, const Path& element) {
         ChatChoice& choice = o->choices.emplace_back();
         return ParseMembers(p, element, kChoiceMembers, &choice, &choice.extra);
       });
     }},
    {"usage", &OptObject<&ChatCompletion::usage, kUsageMembers>},
};

constexpr MemberSpec<FunctionCallDelta> kFunctionCallDeltaMembers[] = {
    {"name", &Opt<&FunctionCallDelta::name>},
    {"arguments", &Opt<&FunctionCallDelta::arguments>},
};

constexpr MemberSpec<ToolCallDelta> kToolCallDeltaMembers[] = {
    {"index", &Int<&ToolCallDelta::index>},
    {"id", &Opt<&ToolCallDelta::id>},
    {"type", &Opt<&ToolCallDelta::type>},
    {"function", &OptObject<&ToolCallDelta::function, kFunctionCallDeltaMembers>},
};

constexpr MemberSpec<ChatDelta> kDeltaMembers[] = {
    {"role",
     [](Parser& p, const Path& at, ChatDelta* o) {
       return p.OptRole(at, &o->role);
     }},
    {"content",
     [](Parser& p, const Path& at, ChatDelta* o) {
       JsonType type;
       if (!p.reader().Peek(&type)) return p.Syntax();
       if (type == JsonType::kString || type == JsonType::kNull) {
         return p.OptString(at, &o->content);
       }
       // e.g. Mistral's array of parts. A repeated "content" is refused by its seen bit.
       return AppendExtra(p, "content", &o->extra);
     }},
    {"refusal", &Opt<&ChatDelta::refusal>},
    {"tool_calls",
     [](Parser& p, const Path& at, ChatDelta* o) {
       o->tool_calls.clear();
       return p.Array(at, true, [&](int64_t, const Path& element) {
         ToolCallDelta& call = o->tool_calls.emplace_back();
         return ParseMembers(p, element, kToolCallDeltaMembers, &call, &call.extra);
       });
     }},
};

constexpr MemberSpec<ChunkChoice> kChunkChoiceMembers[] = {
    {"index", &Int<&ChunkChoice::index>},
    {"delta",
     [](Parser& p, const Path& at, ChunkChoice* o) {
       JsonType type;
       bool is_null;
       MODEENVOY_RETURN_IF_ERROR(p.PeekNonNull(&type, &is_null));
       if (is_null) return absl::OkStatus();
       return ParseMembers(p, at, kDeltaMembers, &o->delta, &o->delta.extra);
     }},
    {"finish_reason", &Opt<&ChunkChoice::finish_reason>},
    {"logprobs", &RawAny<&ChunkChoice::logprobs>},
};

constexpr MemberSpec<ChatCompletionChunk> kChunkMembers[] = {
    {"id", &StrOrNull<&ChatCompletionChunk::id>},
    {"object", &StrOrNull<&ChatCompletionChunk::object>},
    {"created", &Int<&ChatCompletionChunk::created>},
    {"model", &StrOrNull<&ChatCompletionChunk::model>},
    {"system_fingerprint", &Opt<&ChatCompletionChunk::system_fingerprint>},
    {"service_tier", &Opt<&ChatCompletionChunk::service_tier>},
    {"choices",
     [](Parser& p, const Path& at, ChatCompletionChunk* o) {
       o->choices.clear();
       return p.Array(at, true, [&](int64_t, const Path& element) {
         ChunkChoice& choice = o->choices.emplace_back();
         return ParseMembers(p, element, kChunkChoiceMembers, &choice, &choice.extra);
       });
     }},
    {"usage", &OptObject<&ChatCompletionChunk::usage, kUsageMembers>},
};

template <typename T, size_t N>
absl::StatusOr<T> ParseDocument(std::string_view json, const MemberSpec<T> (&members)[N]) {
  Parser p(json);
  T out;
  MODEENVOY_RETURN_IF_ERROR(p.Document([&](const Path& root) {
    JsonType type;
    if (!p.reader().Peek(&type)) return p.Syntax();
    if (type != JsonType::kObject) {
      return InvalidFieldError("body", absl::StrCat("expected a JSON object, got ",
                                                    ToAbsl(JsonTypeName(type))));
    }
    return ParseMembers(p, root, members, &out, &out.extra);
  }));
  return out;
}

// ---------------------------------------------------------------------------------------
// Serialization.

void AppendRaw(std::string* out, const std::string& raw) {
  // An empty raw value can only come from a hand-built struct; keep the output JSON.
  if (raw.empty()) {
    out->append("null");
  } else {
    out->append(raw);
  }
}

class Writer {
 public:
  explicit Writer(std::string* out) : w_(out) {}
  std::string* out() { return w_.out(); }

  void String(std::string_view name, std::string_view value) {
    w_.Key(name);
    AppendJsonString(out(), value);
  }
  void OptString(std::string_view name, const std::optional<std::string>& value) {
    if (value.has_value()) String(name, *value);
  }
  void StringOrNull(std::string_view name, const std::optional<std::string>& value) {
    w_.Key(name);
    if (value.has_value()) {
      AppendJsonString(out(), *value);
    } else {
      out()->append("null");
    }
  }
  void Int(std::string_view name, int64_t value) {
    w_.Key(name);
    AppendJsonInt(out(), value);
  }
  void OptInt(std::string_view name, const std::optional<int64_t>& value) {
    if (value.has_value()) Int(name, *value);
  }
  void OptDouble(std::string_view name, const std::optional<double>& value) {
    if (!value.has_value()) return;
    w_.Key(name);
    AppendJsonDouble(out(), *value);
  }
  void OptBool(std::string_view name, const std::optional<bool>& value) {
    if (!value.has_value()) return;
    w_.Key(name);
    out()->append(*value ? "true" : "false");
  }
  void OptRaw(std::string_view name, const std::optional<std::string>& value) {
    if (!value.has_value()) return;
    w_.Key(name);
    AppendRaw(out(), *value);
  }
  void RawOrNull(std::string_view name, const std::optional<std::string>& value) {
    w_.Key(name);
    if (value.has_value()) {
      AppendRaw(out(), *value);
    } else {
      out()->append("null");
    }
  }
  void Key(std::string_view name) { w_.Key(name); }
  void Extra(const ExtraFields& extra) {
    for (const auto& [name, value] : extra) {
      w_.Key(name);
      AppendRaw(out(), value);
    }
  }
  void End() { w_.End(); }

 private:
  JsonObjectWriter w_;
};

void WriteStringArray(std::string* out, const std::vector<std::string>& values) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, values[i]);
  }
  out->push_back(']');
}

template <typename T, typename F>
void WriteArray(std::string* out, const std::vector<T>& values, F&& write_one) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out->push_back(',');
    write_one(values[i]);
  }
  out->push_back(']');
}

void WriteContentPart(std::string* out, const ContentPart& part) {
  Writer w(out);
  // A kOther part keeps its "type" in extra with everything else.
  if (part.type != ContentPartType::kOther) w.String("type", ContentPartTypeName(part.type));
  switch (part.type) {
    case ContentPartType::kOther:
      break;
    case ContentPartType::kText:
      w.String("text", part.text);
      break;
    case ContentPartType::kRefusal:
      w.String("refusal", part.refusal);
      break;
    case ContentPartType::kImageUrl:
      if (part.image_url.has_value()) {
        w.Key("image_url");
        Writer iw(out);
        iw.String("url", part.image_url->url);
        iw.OptString("detail", part.image_url->detail);
        iw.Extra(part.image_url->extra);
        iw.End();
      }
      break;
    case ContentPartType::kInputAudio:
      if (part.input_audio.has_value()) {
        w.Key("input_audio");
        Writer aw(out);
        aw.String("data", part.input_audio->data);
        aw.String("format", part.input_audio->format);
        aw.Extra(part.input_audio->extra);
        aw.End();
      }
      break;
    case ContentPartType::kFile:
      if (part.file.has_value()) {
        w.Key("file");
        Writer fw(out);
        fw.OptString("file_data", part.file->file_data);
        fw.OptString("file_id", part.file->file_id);
        fw.OptString("filename", part.file->filename);
        fw.Extra(part.file->extra);
        fw.End();
      }
      break;
  }
  w.Extra(part.extra);
  w.End();
}

void WriteToolCall(std::string* out, const ToolCall& call) {
  Writer w(out);
  w.String("id", call.id);
  w.String("type", call.type);
  if (call.function.has_value()) {
    w.Key("function");
    Writer fw(out);
    fw.String("name", call.function->name);
    fw.String("arguments", call.function->arguments);
    fw.Extra(call.function->extra);
    fw.End();
  }
  w.Extra(call.extra);
  w.End();
}

// `content_null`: write an absent content as null (response messages always carry it).
void WriteMessage(std::string* out, const Message& message, bool content_null) {
  Writer w(out);
  w.String("role", RoleName(message.role));
  if (message.content.has_value()) {
    w.Key("content");
    if (const auto* text = std::get_if<std::string>(&*message.content)) {
      AppendJsonString(out, *text);
    } else {
      WriteArray(out, std::get<std::vector<ContentPart>>(*message.content),
                 [&](const ContentPart& part) { WriteContentPart(out, part); });
    }
  } else if (content_null) {
    w.Key("content");
    out->append("null");
  }
  w.OptString("name", message.name);
  if (!message.tool_calls.empty()) {
    w.Key("tool_calls");
    WriteArray(out, message.tool_calls, [&](const ToolCall& c) { WriteToolCall(out, c); });
  }
  w.OptString("tool_call_id", message.tool_call_id);
  w.OptString("refusal", message.refusal);
  w.Extra(message.extra);
  w.End();
}

void WriteTool(std::string* out, const Tool& tool) {
  Writer w(out);
  w.String("type", tool.type);
  if (tool.function.has_value()) {
    const FunctionDefinition& fn = *tool.function;
    w.Key("function");
    Writer fw(out);
    fw.String("name", fn.name);
    fw.OptString("description", fn.description);
    fw.OptRaw("parameters", fn.parameters);
    fw.OptBool("strict", fn.strict);
    fw.Extra(fn.extra);
    fw.End();
  }
  w.Extra(tool.extra);
  w.End();
}

void WriteUsage(std::string* out, const Usage& usage) {
  Writer w(out);
  w.Int("prompt_tokens", usage.prompt_tokens);
  w.Int("completion_tokens", usage.completion_tokens);
  w.Int("total_tokens", usage.total_tokens);
  if (usage.prompt_tokens_details.has_value()) {
    const PromptTokensDetails& d = *usage.prompt_tokens_details;
    w.Key("prompt_tokens_details");
    Writer dw(out);
    dw.OptInt("cached_tokens", d.cached_tokens);
    dw.OptInt("audio_tokens", d.audio_tokens);
    dw.Extra(d.extra);
    dw.End();
  }
  if (usage.completion_tokens_details.has_value()) {
    const CompletionTokensDetails& d = *usage.completion_tokens_details;
    w.Key("completion_tokens_details");
    Writer dw(out);
    dw.OptInt("reasoning_tokens", d.reasoning_tokens);
    dw.OptInt("audio_tokens", d.audio_tokens);
    dw.OptInt("accepted_prediction_tokens", d.accepted_prediction_tokens);
    dw.OptInt("rejected_prediction_tokens", d.rejected_prediction_tokens);
    dw.Extra(d.extra);
    dw.End();
  }
  w.Extra(usage.extra);
  w.End();
}

// Rough output size, to allocate once: the text members dominate real requests.
size_t EstimateSize(const ChatRequest& request) {
  size_t n = 256 + request.model.size();
  for (const Message& m : request.messages) {
    n += 48;
    if (m.content.has_value()) {
      if (const auto* text = std::get_if<std::string>(&*m.content)) {
        n += text->size() + text->size() / 16;
      } else {
        for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
          n += 64 + part.text.size() + (part.image_url ? part.image_url->url.size() : 0) +
               (part.input_audio ? part.input_audio->data.size() : 0) +
               (part.file && part.file->file_data ? part.file->file_data->size() : 0);
        }
      }
    }
    for (const ToolCall& c : m.tool_calls) {
      n += 96 + (c.function ? c.function->arguments.size() : 0);
    }
  }
  for (const Tool& t : request.tools) {
    n += 96 + (t.function && t.function->parameters ? t.function->parameters->size() : 0) +
         (t.function && t.function->description ? t.function->description->size() : 0);
  }
  for (const auto& [name, value] : request.extra) n += name.size() + value.size() + 4;
  return n;
}

// ---------------------------------------------------------------------------------------
// Validation.

absl::Status CheckRawJson(const Path& path, const std::string& raw,
                          std::optional<JsonType> want) {
  JsonType type;
  if (!protocol_internal::IsValidJson(raw, &type)) return Invalid(path, "not valid JSON");
  if (want.has_value() && type != *want) {
    return Invalid(path, absl::StrCat("expected ", ToAbsl(JsonTypeName(*want)), ", got ",
                                      ToAbsl(JsonTypeName(type))));
  }
  return absl::OkStatus();
}

absl::Status CheckOptRawJson(const Path& path, const std::optional<std::string>& raw,
                             std::optional<JsonType> want) {
  if (!raw.has_value()) return absl::OkStatus();
  return CheckRawJson(path, *raw, want);
}

// `base` is the path of the object holding `extra`; `is_modeled(name)` says whether a
// member of that name is modeled (and so may not also appear in extra).
template <typename F>
absl::Status CheckExtra(const Path& base, const ExtraFields& extra, F&& is_modeled) {
  MemberNameSet names;
  for (size_t i = 0; i < extra.size(); ++i) {
    const std::string& name = extra[i].first;
    const Path path = base.Member(name);
    if (is_modeled(std::string_view(name))) {
      return Invalid(path, "extra member duplicates a modeled field");
    }
    if (!names.Insert(name)) return Invalid(path, "duplicate key");
    MODEENVOY_RETURN_IF_ERROR(CheckRawJson(path, extra[i].second, std::nullopt));
  }
  return absl::OkStatus();
}

template <typename T, size_t N>
absl::Status CheckExtraFor(const Path& base, const ExtraFields& extra,
                           const MemberSpec<T> (&members)[N]) {
  return CheckExtra(base, extra,
                    [&](std::string_view name) { return IsMemberName(members, name); });
}

absl::Status CheckRange(std::string_view path, const std::optional<double>& value, double lo,
                        double hi) {
  if (!value.has_value()) return absl::OkStatus();
  if (!(*value >= lo && *value <= hi)) {  // also rejects NaN
    std::string shown;
    AppendJsonDouble(&shown, *value);
    if (!std::isfinite(*value)) shown = std::isnan(*value) ? "nan" : "inf";
    return InvalidFieldError(path, absl::StrCat("must be between ", lo, " and ", hi, ", got ",
                                                shown));
  }
  return absl::OkStatus();
}

absl::Status CheckMin(std::string_view path, const std::optional<int64_t>& value, int64_t min) {
  if (value.has_value() && *value < min) {
    return InvalidFieldError(path, absl::StrCat("must be >= ", min, ", got ", *value));
  }
  return absl::OkStatus();
}

absl::Status NotAllowedIn(const Path& member, std::string_view part_type) {
  return Invalid(member, absl::StrCat("not allowed in a \"", ToAbsl(part_type), "\" part"));
}

bool PartAllowed(Role role, ContentPartType type) {
  switch (role) {
    case Role::kSystem:
    case Role::kDeveloper:
    case Role::kTool:
    case Role::kFunction:
      return type == ContentPartType::kText;
    case Role::kUser:
      return type != ContentPartType::kRefusal;
    case Role::kAssistant:
      return type == ContentPartType::kText || type == ContentPartType::kRefusal;
  }
  return false;
}

absl::Status ValidateContentPart(const Path& path, Role role, const ContentPart& part,
                                 bool check_raw) {
  const std::string_view type_name = ContentPartTypeName(part.type);
  if (part.type == ContentPartType::kOther) {
    return Invalid(path.Member("type"), "unknown content part type");
  }
  if (!PartAllowed(role, part.type)) {
    return Invalid(path.Member("type"),
                             absl::StrCat("\"", ToAbsl(type_name), "\" parts are not allowed in ",
                                          ToAbsl(RoleName(role)), " messages"));
  }
  // Only the member matching the type is serialized; anything else would be lost.
  if (part.type != ContentPartType::kText && !part.text.empty()) {
    return NotAllowedIn(path.Member("text"), type_name);
  }
  if (part.type != ContentPartType::kRefusal && !part.refusal.empty()) {
    return NotAllowedIn(path.Member("refusal"), type_name);
  }
  if (part.type != ContentPartType::kImageUrl && part.image_url.has_value()) {
    return NotAllowedIn(path.Member("image_url"), type_name);
  }
  if (part.type != ContentPartType::kInputAudio && part.input_audio.has_value()) {
    return NotAllowedIn(path.Member("input_audio"), type_name);
  }
  if (part.type != ContentPartType::kFile && part.file.has_value()) {
    return NotAllowedIn(path.Member("file"), type_name);
  }
  switch (part.type) {
    case ContentPartType::kText:
    case ContentPartType::kRefusal:
    case ContentPartType::kOther:
      break;
    case ContentPartType::kImageUrl: {
      const Path ip = path.Member("image_url");
      if (!part.image_url.has_value()) return Invalid(ip, "required");
      if (part.image_url->url.empty()) return Invalid(ip.Member("url"), "must not be empty");
      if (part.image_url->detail.has_value()) {
        const std::string& d = *part.image_url->detail;
        if (d != "auto" && d != "low" && d != "high") {
          return Invalid(ip.Member("detail"),
                         absl::StrCat("must be one of \"auto\", \"low\", \"high\", got ",
                                      Quote(d)));
        }
      }
      if (check_raw) {
        MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(ip, part.image_url->extra, kImageUrlMembers));
      }
      break;
    }
    case ContentPartType::kInputAudio: {
      const Path ap = path.Member("input_audio");
      if (!part.input_audio.has_value()) return Invalid(ap, "required");
      if (part.input_audio->data.empty()) return Invalid(ap.Member("data"), "must not be empty");
      const std::string& f = part.input_audio->format;
      if (f != "wav" && f != "mp3") {
        return Invalid(ap.Member("format"),
                                 absl::StrCat("must be one of \"wav\", \"mp3\", got ", Quote(f)));
      }
      if (check_raw) {
        MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(ap, part.input_audio->extra, kInputAudioMembers));
      }
      break;
    }
    case ContentPartType::kFile: {
      const Path fp = path.Member("file");
      if (!part.file.has_value()) return Invalid(fp, "required");
      const bool has_data = part.file->file_data.has_value() && !part.file->file_data->empty();
      const bool has_id = part.file->file_id.has_value() && !part.file->file_id->empty();
      if (!has_data && !has_id) {
        return Invalid(fp, "needs \"file_data\" or \"file_id\"");
      }
      if (check_raw) {
        MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(fp, part.file->extra, kFileInputMembers));
      }
      break;
    }
  }
  // A part's extra may hold payload members of other types (passed through as sent).
  if (!check_raw) return absl::OkStatus();
  return CheckExtra(path, part.extra, [&](std::string_view name) {
    return name == "type" || name == type_name;
  });
}

bool HasExtra(const ExtraFields& extra, std::string_view name) {
  for (const auto& [key, value] : extra) {
    if (key == name && value != "null") return true;
  }
  return false;
}

absl::Status ValidateMessage(const Path& path, const Message& m, bool check_raw) {
  const Role role = m.role;
  const std::string_view role_name = RoleName(role);
  if (role_name.empty()) return Invalid(path.Member("role"), "unknown role");
  const bool has_content = m.content.has_value();
  switch (role) {
    case Role::kSystem:
    case Role::kDeveloper:
    case Role::kUser:
    case Role::kTool:
      if (!has_content) {
        return Invalid(path.Member("content"),
                                 absl::StrCat("required in ", ToAbsl(role_name), " messages"));
      }
      break;
    case Role::kAssistant:
      if (!has_content && m.tool_calls.empty() && !HasExtra(m.extra, "function_call") &&
          !HasExtra(m.extra, "audio")) {
        return Invalid(path.Member("content"),
                                 "required in assistant messages without tool_calls");
      }
      break;
    case Role::kFunction:
      break;
  }
  if (role == Role::kTool && (!m.tool_call_id.has_value() || m.tool_call_id->empty())) {
    return Invalid(path.Member("tool_call_id"), "required in tool messages");
  }
  if (role != Role::kTool && m.tool_call_id.has_value()) {
    return Invalid(path.Member("tool_call_id"), "only allowed in tool messages");
  }
  if (role == Role::kFunction && (!m.name.has_value() || m.name->empty())) {
    return Invalid(path.Member("name"), "required in function messages");
  }
  if (!m.tool_calls.empty() && role != Role::kAssistant) {
    return Invalid(path.Member("tool_calls"), "only allowed in assistant messages");
  }
  if (m.refusal.has_value() && role != Role::kAssistant) {
    return Invalid(path.Member("refusal"), "only allowed in assistant messages");
  }
  if (has_content) {
    if (const auto* parts = std::get_if<std::vector<ContentPart>>(&*m.content)) {
      for (size_t j = 0; j < parts->size(); ++j) {
        const Path content = path.Member("content");
        MODEENVOY_RETURN_IF_ERROR(ValidateContentPart(content.Index(static_cast<int64_t>(j)),
                                                      role, (*parts)[j], check_raw));
      }
    }
  }
  for (size_t j = 0; j < m.tool_calls.size(); ++j) {
    const ToolCall& call = m.tool_calls[j];
    const Path calls = path.Member("tool_calls");
    const Path cp = calls.Index(static_cast<int64_t>(j));
    if (call.id.empty()) return Invalid(cp.Member("id"), "must not be empty");
    if (call.type.empty()) return Invalid(cp.Member("type"), "must not be empty");
    if (call.type == "function") {
      if (!call.function.has_value()) {
        return Invalid(cp.Member("function"), "required for type \"function\"");
      }
      if (call.function->name.empty()) {
        return Invalid(cp.Member("function.name"), "must not be empty");
      }
    }
    if (check_raw && call.function.has_value()) {
      MODEENVOY_RETURN_IF_ERROR(
          CheckExtraFor(cp.Member("function"), call.function->extra, kFunctionCallMembers));
    }
    if (check_raw) MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(cp, call.extra, kToolCallMembers));
  }
  if (!check_raw) return absl::OkStatus();
  return CheckExtraFor(path, m.extra, kMessageMembers);
}

absl::Status ValidateChatRequestImpl(const ChatRequest& r, bool check_raw) {
  const Path root;
  const Path messages = root.Member("messages");
  if (r.model.empty()) return InvalidFieldError("model", "must be a non-empty string");
  if (r.messages.empty()) return InvalidFieldError("messages", "must not be empty");
  for (size_t i = 0; i < r.messages.size(); ++i) {
    MODEENVOY_RETURN_IF_ERROR(
        ValidateMessage(messages.Index(static_cast<int64_t>(i)), r.messages[i], check_raw));
  }
  MODEENVOY_RETURN_IF_ERROR(CheckRange("temperature", r.temperature, 0, 2));
  MODEENVOY_RETURN_IF_ERROR(CheckRange("top_p", r.top_p, 0, 1));
  MODEENVOY_RETURN_IF_ERROR(CheckRange("presence_penalty", r.presence_penalty, -2, 2));
  MODEENVOY_RETURN_IF_ERROR(CheckRange("frequency_penalty", r.frequency_penalty, -2, 2));
  MODEENVOY_RETURN_IF_ERROR(CheckMin("n", r.n, 1));
  MODEENVOY_RETURN_IF_ERROR(CheckMin("max_tokens", r.max_tokens, 1));
  MODEENVOY_RETURN_IF_ERROR(CheckMin("max_completion_tokens", r.max_completion_tokens, 1));
  if (r.top_logprobs.has_value()) {
    if (*r.top_logprobs < 0 || *r.top_logprobs > 20) {
      return InvalidFieldError("top_logprobs",
                               absl::StrCat("must be between 0 and 20, got ", *r.top_logprobs));
    }
    if (!r.logprobs.value_or(false)) {
      return InvalidFieldError("top_logprobs", "requires logprobs to be true");
    }
  }
  if (r.stream_options.has_value() && !r.stream.value_or(false)) {
    return InvalidFieldError("stream_options", "only allowed when stream is true");
  }
  if (r.stop.has_value()) {
    if (const auto* one = std::get_if<std::string>(&*r.stop)) {
      if (one->empty()) return InvalidFieldError("stop", "must not be empty");
    } else {
      const auto& all = std::get<std::vector<std::string>>(*r.stop);
      for (size_t i = 0; i < all.size(); ++i) {
        if (all[i].empty()) {
          return InvalidFieldError(absl::StrCat("stop[", i, "]"), "must not be empty");
        }
      }
    }
  }
  const Path tools = root.Member("tools");
  for (size_t i = 0; i < r.tools.size(); ++i) {
    const Tool& tool = r.tools[i];
    const Path tp = tools.Index(static_cast<int64_t>(i));
    if (tool.type.empty()) return Invalid(tp.Member("type"), "must not be empty");
    if (tool.type == "function" && !tool.function.has_value()) {
      return Invalid(tp.Member("function"), "required for type \"function\"");
    }
    if (tool.function.has_value()) {
      const Path fp = tp.Member("function");
      if (tool.function->name.empty()) return Invalid(fp.Member("name"), "must not be empty");
      if (check_raw) {
        MODEENVOY_RETURN_IF_ERROR(CheckOptRawJson(fp.Member("parameters"),
                                                  tool.function->parameters, JsonType::kObject));
        MODEENVOY_RETURN_IF_ERROR(
            CheckExtraFor(fp, tool.function->extra, kFunctionDefinitionMembers));
      }
    }
    if (check_raw) MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(tp, tool.extra, kToolMembers));
  }
  const bool has_tools = !r.tools.empty() || r.functions.has_value();
  if (r.tool_choice.has_value()) {
    const ToolChoice& tc = *r.tool_choice;
    if (!tc.mode.empty()) {
      if (!tc.object.empty()) {
        return InvalidFieldError("tool_choice", "has both a mode and an object");
      }
      if (tc.mode != "none" && tc.mode != "auto" && tc.mode != "required") {
        return InvalidFieldError("tool_choice",
                                 absl::StrCat("must be \"none\", \"auto\", \"required\" or an "
                                              "object, got ",
                                              Quote(tc.mode)));
      }
    } else if (tc.object.empty()) {
      return InvalidFieldError("tool_choice", "has neither a mode nor an object");
    } else if (check_raw) {
      MODEENVOY_RETURN_IF_ERROR(
          CheckRawJson(root.Member("tool_choice"), tc.object, JsonType::kObject));
    }
    if (tc.mode != "none" && !has_tools) {
      return InvalidFieldError("tool_choice", "only allowed when tools are specified");
    }
  }
  if (r.parallel_tool_calls.has_value() && !has_tools) {
    return InvalidFieldError("parallel_tool_calls", "only allowed when tools are specified");
  }
  if (r.modalities.has_value()) {
    for (size_t i = 0; i < r.modalities->size(); ++i) {
      if ((*r.modalities)[i].empty()) {
        return InvalidFieldError(absl::StrCat("modalities[", i, "]"), "must not be empty");
      }
    }
  }
  if (check_raw) {
    const std::pair<std::string_view, const std::optional<std::string>*> kObjects[] = {
        {"logit_bias", &r.logit_bias}, {"response_format", &r.response_format},
        {"metadata", &r.metadata},     {"audio", &r.audio},
        {"prediction", &r.prediction}, {"web_search_options", &r.web_search_options},
    };
    for (const auto& [name, raw] : kObjects) {
      MODEENVOY_RETURN_IF_ERROR(CheckOptRawJson(root.Member(name), *raw, JsonType::kObject));
    }
    MODEENVOY_RETURN_IF_ERROR(
        CheckOptRawJson(root.Member("functions"), r.functions, JsonType::kArray));
    MODEENVOY_RETURN_IF_ERROR(
        CheckOptRawJson(root.Member("function_call"), r.function_call, std::nullopt));
    if (r.stream_options.has_value()) {
      MODEENVOY_RETURN_IF_ERROR(
          CheckExtraFor(root.Member("stream_options"), r.stream_options->extra,
                        kStreamOptionsMembers));
    }
    MODEENVOY_RETURN_IF_ERROR(CheckExtraFor(root, r.extra, kRequestMembers));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kDeveloper: return "developer";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
    case Role::kFunction: return "function";
  }
  return "";
}

std::optional<Role> RoleFromName(std::string_view name) {
  static constexpr std::pair<std::string_view, Role> kRoles[] = {
      {"user", Role::kUser},           {"assistant", Role::kAssistant},
      {"system", Role::kSystem},       {"tool", Role::kTool},
      {"developer", Role::kDeveloper}, {"function", Role::kFunction},
  };
  for (const auto& [role_name, role] : kRoles) {
    if (role_name == name) return role;
  }
  return std::nullopt;
}

std::string_view ContentPartTypeName(ContentPartType type) {
  const size_t i = static_cast<size_t>(type);
  return i < std::size(kContentPartTypeNames) ? kContentPartTypeNames[i] : "";
}

bool protocol_internal::IsChatRequestMember(std::string_view name) {
  return IsMemberName(kRequestMembers, name);
}

absl::StatusOr<ChatRequest> ParseChatRequest(std::string_view json,
                                             const ChatParseOptions& options) {
  MODEENVOY_ASSIGN_OR_RETURN(ChatRequest request, ParseDocument(json, kRequestMembers));
  if (options.validate) {
    // Raw members come from the parser and are valid JSON by construction.
    MODEENVOY_RETURN_IF_ERROR(ValidateChatRequestImpl(request, /*check_raw=*/false));
  }
  return request;
}

absl::Status ValidateChatRequest(const ChatRequest& request) {
  return ValidateChatRequestImpl(request, /*check_raw=*/true);
}

std::string SerializeChatRequest(const ChatRequest& r) {
  return protocol_internal::SerializeChatRequest(r, protocol_internal::ChatRequestOverrides{});
}

std::string protocol_internal::SerializeChatRequest(
    const ChatRequest& r, const protocol_internal::ChatRequestOverrides& o) {
  std::string out;
  out.reserve(EstimateSize(r) + (o.model.has_value() ? o.model->size() : 0));
  Writer w(&out);
  w.String("model", o.model.has_value() ? *o.model : std::string_view(r.model));
  w.Key("messages");
  WriteArray(&out, r.messages, [&](const Message& m) { WriteMessage(&out, m, false); });
  w.OptBool("stream", r.stream);
  if (!o.drop_stream_options && (r.stream_options.has_value() || o.include_usage)) {
    w.Key("stream_options");
    Writer sw(&out);
    if (o.include_usage) {
      sw.OptBool("include_usage", true);
    } else {
      sw.OptBool("include_usage", r.stream_options->include_usage);
    }
    if (r.stream_options.has_value()) {
      sw.OptBool("include_obfuscation", r.stream_options->include_obfuscation);
      sw.Extra(r.stream_options->extra);
    }
    sw.End();
  }
  w.OptDouble("temperature", r.temperature);
  w.OptDouble("top_p", r.top_p);
  w.OptInt("n", r.n);
  w.OptInt("max_tokens", r.max_tokens);
  w.OptInt("max_completion_tokens", r.max_completion_tokens);
  if (r.stop.has_value()) {
    w.Key("stop");
    if (const auto* one = std::get_if<std::string>(&*r.stop)) {
      AppendJsonString(&out, *one);
    } else {
      WriteStringArray(&out, std::get<std::vector<std::string>>(*r.stop));
    }
  }
  w.OptDouble("presence_penalty", r.presence_penalty);
  w.OptDouble("frequency_penalty", r.frequency_penalty);
  w.OptRaw("logit_bias", r.logit_bias);
  w.OptBool("logprobs", r.logprobs);
  w.OptInt("top_logprobs", r.top_logprobs);
  w.OptInt("seed", r.seed);
  w.OptString("user", r.user);
  w.OptRaw("response_format", r.response_format);
  if (!r.tools.empty()) {
    w.Key("tools");
    WriteArray(&out, r.tools, [&](const Tool& t) { WriteTool(&out, t); });
  }
  if (r.tool_choice.has_value()) {
    w.Key("tool_choice");
    if (!r.tool_choice->object.empty()) {
      out.append(r.tool_choice->object);
    } else {
      AppendJsonString(&out, r.tool_choice->mode);
    }
  }
  w.OptBool("parallel_tool_calls", r.parallel_tool_calls);
  w.OptString("reasoning_effort", r.reasoning_effort);
  w.OptString("verbosity", r.verbosity);
  w.OptString("service_tier", r.service_tier);
  w.OptBool("store", r.store);
  w.OptRaw("metadata", r.metadata);
  if (r.modalities.has_value()) {
    w.Key("modalities");
    WriteStringArray(&out, *r.modalities);
  }
  w.OptRaw("audio", r.audio);
  w.OptRaw("prediction", r.prediction);
  w.OptRaw("web_search_options", r.web_search_options);
  w.OptString("prompt_cache_key", r.prompt_cache_key);
  w.OptString("safety_identifier", r.safety_identifier);
  w.OptRaw("functions", r.functions);
  w.OptRaw("function_call", r.function_call);
  w.Extra(r.extra);
  w.End();
  return out;
}

absl::StatusOr<ChatCompletion> ParseChatCompletion(std::string_view json) {
  return ParseDocument(json, kCompletionMembers);
}

absl::StatusOr<ChatCompletionChunk> ParseChatCompletionChunk(std::string_view json) {
  return ParseDocument(json, kChunkMembers);
}

std::string SerializeChatCompletion(const ChatCompletion& c) {
  std::string out;
  size_t estimate = 256;
  for (const ChatChoice& choice : c.choices) {
    estimate += 128;
    if (choice.message.content.has_value()) {
      if (const auto* text = std::get_if<std::string>(&*choice.message.content)) {
        estimate += text->size() + text->size() / 16;
      }
    }
  }
  out.reserve(estimate);
  Writer w(&out);
  w.String("id", c.id);
  w.String("object", c.object);
  w.Int("created", c.created);
  w.String("model", c.model);
  w.Key("choices");
  WriteArray(&out, c.choices, [&](const ChatChoice& choice) {
    Writer cw(&out);
    cw.Int("index", choice.index);
    cw.Key("message");
    WriteMessage(&out, choice.message, /*content_null=*/true);
    cw.RawOrNull("logprobs", choice.logprobs);
    cw.StringOrNull("finish_reason", choice.finish_reason);
    cw.Extra(choice.extra);
    cw.End();
  });
  if (c.usage.has_value()) {
    w.Key("usage");
    WriteUsage(&out, *c.usage);
  }
  w.OptString("service_tier", c.service_tier);
  w.OptString("system_fingerprint", c.system_fingerprint);
  w.Extra(c.extra);
  w.End();
  return out;
}

std::string SerializeChatCompletionChunk(const ChatCompletionChunk& c) {
  std::string out;
  out.reserve(256);
  Writer w(&out);
  w.String("id", c.id);
  w.String("object", c.object);
  w.Int("created", c.created);
  w.String("model", c.model);
  w.OptString("service_tier", c.service_tier);
  w.OptString("system_fingerprint", c.system_fingerprint);
  w.Key("choices");
  WriteArray(&out, c.choices, [&](const ChunkChoice& choice) {
    Writer cw(&out);
    cw.Int("index", choice.index);
    cw.Key("delta");
    {
      const ChatDelta& d = choice.delta;
      Writer dw(&out);
      if (d.role.has_value()) dw.String("role", RoleName(*d.role));
      dw.OptString("content", d.content);
      dw.OptString("refusal", d.refusal);
      if (!d.tool_calls.empty()) {
        dw.Key("tool_calls");
        WriteArray(&out, d.tool_calls, [&](const ToolCallDelta& call) {
          Writer tw(&out);
          tw.Int("index", call.index);
          tw.OptString("id", call.id);
          tw.OptString("type", call.type);
          if (call.function.has_value()) {
            tw.Key("function");
            Writer fw(&out);
            fw.OptString("name", call.function->name);
            fw.OptString("arguments", call.function->arguments);
            fw.Extra(call.function->extra);
            fw.End();
          }
          tw.Extra(call.extra);
          tw.End();
        });
      }
      dw.Extra(d.extra);
      dw.End();
    }
    cw.RawOrNull("logprobs", choice.logprobs);
    cw.StringOrNull("finish_reason", choice.finish_reason);
    cw.Extra(choice.extra);
    cw.End();
  });
  if (c.usage.has_value()) {
    w.Key("usage");
    WriteUsage(&out, *c.usage);
  }
  w.Extra(c.extra);
  w.End();
  return out;
}

void AppendMessageJson(std::string* out, const Message& message) {
  WriteMessage(out, message, /*content_null=*/false);
}

namespace {

// One message object at the parser's position (ParseMessage, ParseMessagePrefix).
absl::Status ReadMessage(Parser& p, std::string_view path, Message* out) {
  const Path at{nullptr, path, -1};
  uint64_t seen = 0;
  MODEENVOY_RETURN_IF_ERROR(ParseMembers(p, at, kResponseMessageMembers, out, &out->extra,
                                         &seen));
  if (!(seen & 1)) return Invalid(at.Member("role"), "required");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Message> ParseMessage(std::string_view json, std::string_view path) {
  Parser p(json);
  Message out;
  MODEENVOY_RETURN_IF_ERROR(ReadMessage(p, path, &out));
  if (!p.reader().ExpectEnd()) return p.Syntax();
  return out;
}

absl::StatusOr<Message> ParseMessagePrefix(std::string_view json, std::string_view path,
                                           size_t* consumed) {
  Parser p(json);
  Message out;
  MODEENVOY_RETURN_IF_ERROR(ReadMessage(p, path, &out));
  *consumed = p.reader().offset();
  return out;
}

void AppendUsageJson(std::string* out, const Usage& usage) { WriteUsage(out, usage); }

absl::StatusOr<Usage> ParseUsage(std::string_view json, std::string_view path) {
  Parser p(json);
  Usage out;
  const Path at{nullptr, path, -1};
  MODEENVOY_RETURN_IF_ERROR(ParseMembers(p, at, kUsageMembers, &out, &out.extra));
  if (!p.reader().ExpectEnd()) return p.Syntax();
  return out;
}

absl::StatusOr<Usage> ParseUsagePrefix(std::string_view json, std::string_view path,
                                       size_t* consumed) {
  Parser p(json);
  Usage out;
  const Path at{nullptr, path, -1};
  MODEENVOY_RETURN_IF_ERROR(ParseMembers(p, at, kUsageMembers, &out, &out.extra));
  *consumed = p.reader().offset();
  return out;
}

}  // namespace modeenvoy
