#include "modeenvoy/context/record.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/context/record_internal.h"
#include "lib/core/json_pull.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {
namespace context_internal {
namespace {

constexpr std::string_view kHex = "0123456789abcdef";

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 if it is ill-formed.
size_t Utf8Length(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  const size_t left = s.size() - i;
  auto cont = [&](size_t k) { return (b(i + k) & 0xC0) == 0x80; };
  if (c >= 0xC2 && c <= 0xDF) return left >= 2 && cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (left < 3 || !cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(i + 1) < 0xA0) return 0;  // overlong
    if (c == 0xED && b(i + 1) > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(i + 1) < 0x90) return 0;
    if (c == 0xF4 && b(i + 1) > 0x8F) return 0;
    return 4;
  }
  return 0;
}

// 1000-01-01T00:00:00Z and 10000-01-01T00:00:00Z: the years written with four digits.
constexpr int64_t kYear1000 = -30610224000;
constexpr int64_t kYear10000 = 253402300800;

}  // namespace

std::string Rfc3339(absl::Time t) {
  // absl::FormatTime goes through cctz's general formatter, about a microsecond per call
  // and two calls per stored append; years 1000..9999 (every clock reading a gateway will
  // see) are written here, byte for byte as FormatTime writes them (record_test compares).
  const int64_t s = absl::ToUnixSeconds(t);  // rounds toward the past
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast() || s < kYear1000 ||
      s >= kYear10000) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", t, absl::UTCTimeZone());
  }
  const int64_t nanos = (t - absl::FromUnixSeconds(s)) / absl::Nanoseconds(1);
  int64_t days = s >= 0 ? s / 86400 : (s - 86399) / 86400;
  const int64_t secs = s - days * 86400;
  // Howard Hinnant's civil_from_days (proleptic Gregorian calendar).
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const int64_t month = mp < 10 ? mp + 3 : mp - 9;
  const int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  std::string out(30, '0');  // YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ
  auto put = [&](size_t at, int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10) out[at + static_cast<size_t>(i)] =
        static_cast<char>('0' + value % 10);
  };
  put(0, year, 4);
  out[4] = '-';
  put(5, month, 2);
  out[7] = '-';
  put(8, day, 2);
  out[10] = 'T';
  put(11, secs / 3600, 2);
  out[13] = ':';
  put(14, secs / 60 % 60, 2);
  out[16] = ':';
  put(17, secs % 60, 2);
  out[19] = '.';
  put(20, nanos, 9);
  out[29] = 'Z';
  return out;
}

namespace {

void AppendBool(std::string* out, std::string_view key, bool value) {
  if (!value) return;
  out->push_back(',');
  AppendJsonString(out, key);
  out->append(":true");
}

size_t ArrayBytes(size_t bytes, size_t n) { return bytes + (n > 0 ? n - 1 : 0); }

constexpr std::string_view kHistoryOpen = "\"history\":[";
constexpr std::string_view kToolsOpen = "],\"tool_calls\":[";
constexpr std::string_view kChoicesOpen = "],\"model_choices\":[";
constexpr std::string_view kClose = "]}";

}  // namespace

void AppendJsonString(std::string* out, std::string_view text) {
  out->push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t n = Utf8Length(text, i);
      if (n == 0) {
        out->append("\xEF\xBF\xBD");
        ++i;
      } else {
        out->append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

void AppendRecordHead(std::string* out, const ContextRecord& r) {
  absl::StrAppend(out, "{\"schema_version\":", kContextSchemaVersion, ",\"session_id\":");
  AppendJsonString(out, r.session_id);
  out->append(",\"owner\":");
  AppendJsonString(out, r.owner);
  absl::StrAppend(out, ",\"created\":\"", Rfc3339(r.created), "\",\"updated\":\"",
                  Rfc3339(r.updated), "\",\"turn_count\":", r.turn_count, ",\"metadata\":{");
  bool first = true;
  for (const auto& [key, value] : r.metadata) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(out, key);
    out->push_back(':');
    AppendJsonString(out, value);
  }
  out->append("},");
}

void AppendHistoryEntry(std::string* out, const HistoryEntry& e) {
  out->append("{\"message\":");
  AppendMessageJson(out, e.message);
  absl::StrAppend(out, ",\"turn\":", e.turn);
  AppendBool(out, "pinned", e.pinned);
  AppendBool(out, "summary", e.summary);
  out->push_back('}');
}

void AppendToolInvocation(std::string* out, const ToolInvocation& t) {
  absl::StrAppend(out, "{\"turn\":", t.turn, ",\"id\":");
  AppendJsonString(out, t.id);
  out->append(",\"name\":");
  AppendJsonString(out, t.name);
  out->append(",\"arguments\":");
  AppendJsonString(out, t.arguments);
  if (t.result.has_value()) {
    out->append(",\"result\":");
    AppendJsonString(out, *t.result);
  }
  out->push_back('}');
}

void AppendModelChoice(std::string* out, const ModelChoice& c) {
  absl::StrAppend(out, "{\"turn\":", c.turn, ",\"model\":");
  AppendJsonString(out, c.model);
  out->append(",\"provider\":");
  AppendJsonString(out, c.provider);
  out->append(",\"upstream_model\":");
  AppendJsonString(out, c.upstream_model);
  if (c.usage.has_value()) {
    out->append(",\"usage\":");
    AppendUsageJson(out, *c.usage);
  }
  AppendBool(out, "usage_estimated", c.usage_estimated);
  out->push_back('}');
}

size_t SerializedSize(size_t head_bytes, size_t history_bytes, size_t n_history,
                      size_t tool_bytes, size_t n_tools, size_t choice_bytes,
                      size_t n_choices) {
  return head_bytes + kHistoryOpen.size() + ArrayBytes(history_bytes, n_history) +
         kToolsOpen.size() + ArrayBytes(tool_bytes, n_tools) + kChoicesOpen.size() +
         ArrayBytes(choice_bytes, n_choices) + kClose.size();
}

}  // namespace context_internal

namespace {

using core_internal::ChildPath;
using core_internal::IndexPath;
using core_internal::ToAbsl;
using core_internal::JsonReader;
using core_internal::JsonType;

// ---------------------------------------------------------------------------------------
// Reading: one pass of the pull parser the protocol reads bodies with (lib/core/json_pull.h)
// over the record. Messages and usage objects are read where they stand by the chat codec
// (ParseMessagePrefix, ParseUsagePrefix), which keeps their raw JSON members as the compact
// text stored ("\u00e9" stays "\u00e9", 1e3 stays 1e3), so a record reads back equal to
// what was written; the record's reader then moves past the bytes the codec read. Only a
// record that fails takes a second look (ScanForErrorReport below).

// A message sits three levels deep in a record (root, "history", entry), a usage object
// three (root, "model_choices", choice). The chat codec reads them with readers of their
// own (up to kMaxJsonDepth inside); the error scan reads everything with one reader, so it
// allows three levels more.
constexpr int kRecordMaxDepth = kMaxJsonDepth + 3;

absl::Status Problem(std::string_view path, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(ToAbsl(path), ": ", ToAbsl(reason)));
}

// Where a member sits, for paths built only when an error is reported: the root (`array`
// empty) or element `index` of the root array `array`.
struct At {
  std::string_view array;
  size_t index = 0;
  std::string Path() const { return array.empty() ? std::string() : IndexPath(array, index); }
  std::string Member(std::string_view key) const { return ChildPath(Path(), key); }
};

// The members of each object of the schema, by version. A bit per member finds repeats.
enum class Member : uint8_t {
  kUnknown,
  // root
  kSchemaVersion, kSessionId, kOwner, kHistory, kMetadata, kCreated, kUpdated, kTurnCount,
  kToolCalls, kModelChoices,
  // history entry (version 2)
  kMessage, kTurn, kPinned, kSummary,
  // tool invocation
  kId, kName, kArguments, kResult,
  // model choice
  kModel, kProvider, kUpstreamModel, kUsage, kUsageEstimated,
};

Member RootMember(std::string_view key, int64_t version) {
  if (key == "schema_version") return Member::kSchemaVersion;
  if (key == "session_id") return Member::kSessionId;
  if (key == "owner") return Member::kOwner;
  if (key == "history") return Member::kHistory;
  if (key == "metadata") return Member::kMetadata;
  if (key == "created") return Member::kCreated;
  if (key == "updated") return Member::kUpdated;
  if (version >= 2) {
    if (key == "turn_count") return Member::kTurnCount;
    if (key == "tool_calls") return Member::kToolCalls;
    if (key == "model_choices") return Member::kModelChoices;
  }
  return Member::kUnknown;
}

Member EntryMember(std::string_view key) {
  if (key == "message") return Member::kMessage;
  if (key == "turn") return Member::kTurn;
  if (key == "pinned") return Member::kPinned;
  if (key == "summary") return Member::kSummary;
  return Member::kUnknown;
}

Member ToolMember(std::string_view key) {
  if (key == "turn") return Member::kTurn;
  if (key == "id") return Member::kId;
  if (key == "name") return Member::kName;
  if (key == "arguments") return Member::kArguments;
  if (key == "result") return Member::kResult;
  return Member::kUnknown;
}

Member ChoiceMember(std::string_view key) {
  if (key == "turn") return Member::kTurn;
  if (key == "model") return Member::kModel;
  if (key == "provider") return Member::kProvider;
  if (key == "upstream_model") return Member::kUpstreamModel;
  if (key == "usage") return Member::kUsage;
  if (key == "usage_estimated") return Member::kUsageEstimated;
  return Member::kUnknown;
}

// A non-negative integer's text as the DOM reader judged it: a fraction or an exponent
// (1.0, 1e3) or more than 64 bits made a floating-point number, "must be an integer".
absl::Status CountFromText(std::string_view text, const At& at, std::string_view key,
                           int64_t* out) {
  if (text.find_first_of(".eE") != std::string_view::npos) {
    return Problem(at.Member(key), "must be an integer");
  }
  const bool negative = text[0] == '-';
  uint64_t magnitude = 0;
  const char* first = text.data() + (negative ? 1 : 0);
  const auto [end, ec] = std::from_chars(first, text.data() + text.size(), magnitude);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Problem(at.Member(key), "must be an integer");
  }
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  if (negative) {
    if (magnitude == 0) {
      *out = 0;
      return absl::OkStatus();
    }
    if (magnitude > kMax + 1) return Problem(at.Member(key), "must be an integer");
    return Problem(at.Member(key), "must be >= 0");
  }
  if (magnitude > kMax) return Problem(at.Member(key), absl::StrCat("must be <= ", kMax));
  *out = static_cast<int64_t>(magnitude);
  return absl::OkStatus();
}

// "schema_version": a positive integer (written without fraction or exponent).
absl::StatusOr<int64_t> ReadSchemaVersion(JsonReader& reader) {
  JsonType type;
  if (!reader.Peek(&type)) return reader.status();
  if (type != JsonType::kNumber) return Problem("schema_version", "must be a positive integer");
  std::string_view text;
  if (!reader.ReadNumber(&text)) return reader.status();
  int64_t version = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (ec != std::errc() || end != text.data() + text.size() || version < 1) {
    return Problem("schema_version", "must be a positive integer");
  }
  if (version > kContextSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "schema_version ", version, " is newer than this gateway reads (",
        kContextSchemaVersion, ")"));
  }
  return version;
}

// The record's schema version, read before its members because it decides what they
// mean. The writer puts "schema_version" first, so this reads a few bytes; only a record
// written otherwise (by hand, or version 1 without the member) is scanned up to it.
absl::StatusOr<int64_t> PeekSchemaVersion(std::string_view json) {
  JsonReader reader(json, kRecordMaxDepth);
  JsonType type;
  if (!reader.Peek(&type)) return reader.status();
  if (type != JsonType::kObject) return Problem("record", "must be a JSON object");
  if (!reader.BeginObject()) return reader.status();
  std::string scratch;
  std::string_view key;
  bool first = true, has = false;
  while (true) {
    if (!reader.NextMember(&first, &key, &scratch, &has)) return reader.status();
    if (!has) return 1;  // the first schema did not always write its version
    if (key == "schema_version") return ReadSchemaVersion(reader);
    if (!reader.SkipValue()) return reader.status();
  }
}

// The text of a tool message's content, for ToolInvocation::result.
std::string ContentText(const Message& m) {
  if (!m.content.has_value()) return "";
  if (const auto* s = std::get_if<std::string>(&*m.content)) return *s;
  std::string out;
  for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
    if (part.type == ContentPartType::kText) out += part.text;
  }
  return out;
}

// Reads one record of a known schema version. Errors: kInvalidArgument "<path>: <reason>"
// for a schema violation; a syntax error is the reader's status (then reader().status()
// is not OK). Member problems are found in document order.
class RecordReader {
 public:
  RecordReader(std::string_view json, int64_t version)
      : reader_(json, kRecordMaxDepth), version_(version) {}

  absl::Status Read(ContextRecord* r) {
    if (!reader_.BeginObject()) return Syntax();
    uint32_t seen = 0;
    bool first = true, has = false;
    std::string_view key;
    const At root;
    while (true) {
      if (!reader_.NextMember(&first, &key, &key_scratch_, &has)) return Syntax();
      if (!has) break;
      const Member m = RootMember(key, version_);
      MODEENVOY_RETURN_IF_ERROR(Mark(m, root, key, &seen));
      switch (m) {
        case Member::kSchemaVersion:  // PeekSchemaVersion read it
          if (!reader_.SkipValue()) return Syntax();
          break;
        case Member::kSessionId:
          MODEENVOY_RETURN_IF_ERROR(String(root, "session_id", true, &r->session_id));
          break;
        case Member::kOwner:
          MODEENVOY_RETURN_IF_ERROR(String(root, "owner", true, &r->owner));
          break;
        case Member::kCreated:
          MODEENVOY_RETURN_IF_ERROR(TimeMember("created", &r->created));
          break;
        case Member::kUpdated:
          MODEENVOY_RETURN_IF_ERROR(TimeMember("updated", &r->updated));
          break;
        case Member::kTurnCount:
          MODEENVOY_RETURN_IF_ERROR(Count(root, "turn_count", &r->turn_count));
          break;
        case Member::kMetadata:
          MODEENVOY_RETURN_IF_ERROR(Metadata(&r->metadata));
          break;
        case Member::kHistory:
          MODEENVOY_RETURN_IF_ERROR(version_ == 1 ? HistoryVersion1(r) : History(&r->history));
          break;
        case Member::kToolCalls:
          MODEENVOY_RETURN_IF_ERROR(Elements("tool_calls", [&](const At& at) {
            return ToolInvocationAt(at, &r->tool_calls.emplace_back());
          }));
          break;
        case Member::kModelChoices:
          MODEENVOY_RETURN_IF_ERROR(Elements("model_choices", [&](const At& at) {
            return ModelChoiceAt(at, &r->model_choices.emplace_back());
          }));
          break;
        default:
          return absl::InternalError("record member table out of step");
      }
    }
    if (!reader_.ExpectEnd()) return Syntax();
    if (!(seen & Bit(Member::kSessionId))) return Problem("session_id", "is required");
    if (!(seen & Bit(Member::kOwner))) return Problem("owner", "is required");
    return absl::OkStatus();
  }

 private:
  static uint32_t Bit(Member m) { return uint32_t{1} << static_cast<int>(m); }

  absl::Status Syntax() const { return reader_.status(); }

  // Refuses an unknown or repeated member.
  static absl::Status Mark(Member m, const At& at, std::string_view key, uint32_t* seen) {
    if (m == Member::kUnknown) return Problem(at.Member(key), "unknown field");
    if (*seen & Bit(m)) return Problem(at.Member(key), "duplicate key");
    *seen |= Bit(m);
    return absl::OkStatus();
  }

  // Iterates an object's members; fn(key) must consume the value.
  template <typename F>
  absl::Status Members(F&& fn) {
    if (!reader_.BeginObject()) return Syntax();
    bool first = true, has = false;
    std::string_view key;
    while (true) {
      if (!reader_.NextMember(&first, &key, &key_scratch_, &has)) return Syntax();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(fn(key));
    }
  }

  // The root array `name`: fn(at) reads each element.
  template <typename F>
  absl::Status Elements(std::string_view name, F&& fn) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kArray) return Problem(name, "must be an array");
    if (!reader_.BeginArray()) return Syntax();
    bool first = true, has = false;
    for (size_t i = 0;; ++i) {
      if (!reader_.NextElement(&first, &has)) return Syntax();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(fn(At{name, i}));
    }
  }

  // An element that must be an object.
  absl::Status ElementObject(const At& at) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kObject) return Problem(at.Path(), "must be an object");
    return absl::OkStatus();
  }

  absl::Status String(const At& at, std::string_view key, bool non_empty, std::string* out) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kString) return Problem(at.Member(key), "must be a string");
    if (!reader_.ReadString(out)) return Syntax();
    if (non_empty && out->empty()) return Problem(at.Member(key), "must not be empty");
    return absl::OkStatus();
  }

  absl::Status Count(const At& at, std::string_view key, int64_t* out) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kNumber) return Problem(at.Member(key), "must be an integer");
    std::string_view text;
    if (!reader_.ReadNumber(&text)) return Syntax();
    return CountFromText(text, at, key, out);
  }

  // true/false; null reads as false.
  absl::Status Flag(const At& at, std::string_view key, bool* out) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type == JsonType::kNull) {
      *out = false;
      return reader_.ReadNull() ? absl::OkStatus() : Syntax();
    }
    if (type != JsonType::kBool) return Problem(at.Member(key), "must be a boolean");
    return reader_.ReadBool(out) ? absl::OkStatus() : Syntax();
  }

  absl::Status TimeMember(std::string_view key, absl::Time* out) {
    std::string text;
    MODEENVOY_RETURN_IF_ERROR(String(At{}, key, true, &text));
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, text, out, &err)) {
      return Problem(key, absl::StrCat("not an RFC 3339 time: ", err));
    }
    return absl::OkStatus();
  }

  absl::Status Metadata(std::map<std::string, std::string>* out) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();
    if (type != JsonType::kObject) return Problem("metadata", "must be an object");
    std::string value;
    return Members([&](std::string_view key) -> absl::Status {
      if (!reader_.Peek(&type)) return Syntax();
      if (type != JsonType::kString) return Problem(ChildPath("metadata", key), "must be a string");
      // The key view dies with the next read: copy it first.
      std::string name(key);
      if (out->contains(name)) return Problem(ChildPath("metadata", name), "duplicate key");
      if (!reader_.ReadString(&value)) return Syntax();
      out->emplace(std::move(name), std::move(value));
      return absl::OkStatus();
    });
  }

  // The message at the reader's position, read by the chat codec in place; `path` is
  // built for it per message (it is only read on error, but it is a string_view).
  absl::Status MessageAt(const At& at, std::string_view member, Message* out) {
    JsonType type;
    if (!reader_.Peek(&type)) return Syntax();  // past whitespace: the value starts here
    path_.clear();
    absl::StrAppend(&path_, ToAbsl(at.array), "[", at.index, "]");
    if (!member.empty()) absl::StrAppend(&path_, ".", ToAbsl(member));
    size_t consumed = 0;
    MODEENVOY_ASSIGN_OR_RETURN(*out, ParseMessagePrefix(reader_.remaining(), path_, &consumed));
    reader_.Advance(consumed);
    return absl::OkStatus();
  }

  absl::Status History(std::vector<HistoryEntry>* out) {
    return Elements("history", [&](const At& at) -> absl::Status {
      MODEENVOY_RETURN_IF_ERROR(ElementObject(at));
      HistoryEntry& entry = out->emplace_back();
      uint32_t seen = 0;
      MODEENVOY_RETURN_IF_ERROR(Members([&](std::string_view key) -> absl::Status {
        const Member m = EntryMember(key);
        MODEENVOY_RETURN_IF_ERROR(Mark(m, at, key, &seen));
        switch (m) {
          case Member::kMessage: return MessageAt(at, "message", &entry.message);
          case Member::kTurn: return Count(at, "turn", &entry.turn);
          case Member::kPinned: return Flag(at, "pinned", &entry.pinned);
          case Member::kSummary: return Flag(at, "summary", &entry.summary);
          default: return absl::InternalError("history member table out of step");
        }
      }));
      if (!(seen & Bit(Member::kMessage))) return Problem(at.Member("message"), "is required");
      return absl::OkStatus();
    });
  }

  // Version 1: the history was messages only. Turns are numbered by user messages (what
  // precedes the first user message belongs to turn 1); tool calls come from the
  // assistant messages and the tool messages answering them.
  absl::Status HistoryVersion1(ContextRecord* r) {
    int64_t users = 0;
    return Elements("history", [&](const At& at) -> absl::Status {
      Message m;
      MODEENVOY_RETURN_IF_ERROR(MessageAt(at, "", &m));
      if (m.role == Role::kUser) ++users;
      const int64_t turn = std::max<int64_t>(users, 1);
      for (const ToolCall& call : m.tool_calls) {
        ToolInvocation& inv = r->tool_calls.emplace_back();
        inv.turn = turn;
        inv.id = call.id;
        if (call.function.has_value()) {
          inv.name = call.function->name;
          inv.arguments = call.function->arguments;
        }
      }
      if (m.role == Role::kTool && m.tool_call_id.has_value()) {
        // The latest call with that id not yet answered.
        for (auto it = r->tool_calls.rbegin(); it != r->tool_calls.rend(); ++it) {
          if (it->id == *m.tool_call_id && !it->result.has_value()) {
            it->result = ContentText(m);
            break;
          }
        }
      }
      r->history.push_back(HistoryEntry{.message = std::move(m), .turn = turn});
      r->turn_count = turn;
      return absl::OkStatus();
    });
  }

  absl::Status ToolInvocationAt(const At& at, ToolInvocation* out) {
    MODEENVOY_RETURN_IF_ERROR(ElementObject(at));
    uint32_t seen = 0;
    return Members([&](std::string_view key) -> absl::Status {
      const Member m = ToolMember(key);
      MODEENVOY_RETURN_IF_ERROR(Mark(m, at, key, &seen));
      switch (m) {
        case Member::kTurn: return Count(at, "turn", &out->turn);
        case Member::kId: return String(at, "id", false, &out->id);
        case Member::kName: return String(at, "name", false, &out->name);
        case Member::kArguments: return String(at, "arguments", false, &out->arguments);
        case Member::kResult: return String(at, "result", false, &out->result.emplace());
        default: return absl::InternalError("tool_calls member table out of step");
      }
    });
  }

  absl::Status ModelChoiceAt(const At& at, ModelChoice* out) {
    MODEENVOY_RETURN_IF_ERROR(ElementObject(at));
    uint32_t seen = 0;
    return Members([&](std::string_view key) -> absl::Status {
      const Member m = ChoiceMember(key);
      MODEENVOY_RETURN_IF_ERROR(Mark(m, at, key, &seen));
      switch (m) {
        case Member::kTurn: return Count(at, "turn", &out->turn);
        case Member::kModel: return String(at, "model", false, &out->model);
        case Member::kProvider: return String(at, "provider", false, &out->provider);
        case Member::kUpstreamModel:
          return String(at, "upstream_model", false, &out->upstream_model);
        case Member::kUsageEstimated:
          return Flag(at, "usage_estimated", &out->usage_estimated);
        case Member::kUsage: {
          JsonType type;
          if (!reader_.Peek(&type)) return Syntax();
          if (type == JsonType::kNull) return reader_.ReadNull() ? absl::OkStatus() : Syntax();
          path_ = at.Member("usage");
          size_t consumed = 0;
          MODEENVOY_ASSIGN_OR_RETURN(out->usage,
                                     ParseUsagePrefix(reader_.remaining(), path_, &consumed));
          reader_.Advance(consumed);
          return absl::OkStatus();
        }
        default: return absl::InternalError("model_choices member table out of step");
      }
    });
  }

  JsonReader reader_;
  const int64_t version_;
  std::string key_scratch_;  // member names with escapes, decoded
  std::string path_;         // the path handed to the chat codec
};

// What an error report needs from a record that failed: its first syntax error, which is
// reported before any schema problem (as when the record was parsed whole before being
// read), or else the record's own session id. Only failed reads pay for this scan.
struct ErrorScan {
  absl::Status syntax;
  std::string session_id;
};

ErrorScan ScanForErrorReport(std::string_view json) {
  ErrorScan out;
  JsonReader reader(json, kRecordMaxDepth);
  JsonType type;
  bool ok = reader.Peek(&type);
  if (ok && type == JsonType::kObject) {
    ok = reader.BeginObject();
    std::string scratch;
    std::string_view key;
    bool first = true, has = false;
    while (ok && (ok = reader.NextMember(&first, &key, &scratch, &has)) && has) {
      if (key == "session_id" && out.session_id.empty() && reader.Peek(&type) &&
          type == JsonType::kString) {
        ok = reader.ReadString(&out.session_id);
      } else {
        ok = reader.SkipValue();
      }
    }
  } else if (ok) {
    ok = reader.SkipValue();
  }
  if (ok) ok = reader.ExpectEnd();
  if (!ok) {
    out.syntax = reader.status();
    out.session_id.clear();
  }
  return out;
}

// "body: invalid JSON at byte N: ..." (the protocol reader names the request body) ->
// "invalid JSON at byte N: ...".
std::string_view SyntaxMessage(const absl::Status& status) {
  std::string_view message = core_internal::ToStd(status.message());
  constexpr std::string_view kBody = "body: ";
  if (message.substr(0, kBody.size()) == kBody) message.remove_prefix(kBody.size());
  return message;
}

absl::Status Corrupt(std::string_view session, std::string_view message) {
  return absl::DataLossError(absl::StrCat(
      "session ", session.empty() ? "(unknown id)" : ToAbsl(session), ": ", ToAbsl(message)));
}

absl::Status ReadRecord(std::string_view json, ContextRecord* r) {
  MODEENVOY_ASSIGN_OR_RETURN(const int64_t version, PeekSchemaVersion(json));
  RecordReader reader(json, version);
  MODEENVOY_RETURN_IF_ERROR(reader.Read(r));
  r->schema_version = kContextSchemaVersion;
  return absl::OkStatus();
}

}  // namespace

std::string SerializeContextRecord(const ContextRecord& record) {
  using namespace context_internal;  // NOLINT
  std::string out;
  AppendRecordHead(&out, record);
  out.append(kHistoryOpen);
  for (size_t i = 0; i < record.history.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendHistoryEntry(&out, record.history[i]);
  }
  out.append(kToolsOpen);
  for (size_t i = 0; i < record.tool_calls.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendToolInvocation(&out, record.tool_calls[i]);
  }
  out.append(kChoicesOpen);
  for (size_t i = 0; i < record.model_choices.size(); ++i) {
    if (i > 0) out.push_back(',');
    AppendModelChoice(&out, record.model_choices[i]);
  }
  out.append(kClose);
  return out;
}

absl::StatusOr<ContextRecord> ParseContextRecord(std::string_view json,
                                                 std::string_view session_id) {
  ContextRecord record;
  const absl::Status status = ReadRecord(json, &record);
  if (status.ok()) return record;
  const ErrorScan scan = ScanForErrorReport(json);
  if (!scan.syntax.ok()) return Corrupt(session_id, SyntaxMessage(scan.syntax));
  const std::string_view session = scan.session_id.empty() ? session_id : scan.session_id;
  if (status.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", ToAbsl(session), ": ", status.message()));
  }
  return Corrupt(session, core_internal::ToStd(status.message()));
}

std::vector<Message> HistoryMessages(const ContextRecord& record) {
  std::vector<Message> out;
  out.reserve(record.history.size());
  for (const HistoryEntry& e : record.history) out.push_back(e.message);
  return out;
}

}  // namespace modeenvoy
