#include "modeenvoy/context/record.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/context/record_internal.h"
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
using core_internal::Json;
using core_internal::ObjectReader;
using core_internal::ToAbsl;

// ---------------------------------------------------------------------------------------
// Byte spans of values inside a document that ParseStrictJson already accepted. Messages
// and usage objects are handed to the protocol codec as the exact text stored: a DOM round
// trip would rewrite the raw JSON members they keep verbatim ("\u00e9" -> "é", 1e3 ->
// 1000.0), so a record would not read back equal to what was written.

size_t SkipWs(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

size_t StringEnd(std::string_view s, size_t i) {  // s[i] == '"'
  for (++i; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] == '\\') ++i;
  }
  return i + 1;
}

size_t ValueEnd(std::string_view s, size_t i) {
  if (s[i] == '"') return StringEnd(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = StringEnd(s, i);
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) return i + 1;
      ++i;
    }
    return i;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' &&
         s[i] != '\t' && s[i] != '\n' && s[i] != '\r') {
    ++i;
  }
  return i;
}

// Members of the object `s` (which starts with '{'), keys decoded, in document order.
std::vector<std::pair<std::string, std::string_view>> ObjectSpans(std::string_view s) {
  std::vector<std::pair<std::string, std::string_view>> out;
  size_t i = SkipWs(s, 1);
  while (i < s.size() && s[i] == '"') {
    const size_t key_end = StringEnd(s, i);
    const std::string_view raw_key = s.substr(i, key_end - i);
    std::string key(raw_key.substr(1, raw_key.size() - 2));
    if (key.find('\\') != std::string::npos) {
      key = nlohmann::json::parse(raw_key, nullptr, false).get<std::string>();
    }
    i = SkipWs(s, SkipWs(s, key_end) + 1);  // past ':'
    const size_t end = ValueEnd(s, i);
    out.emplace_back(std::move(key), s.substr(i, end - i));
    i = SkipWs(s, end);
    if (i < s.size() && s[i] == ',') i = SkipWs(s, i + 1);
  }
  return out;
}

// Elements of the array `s` (which starts with '[').
std::vector<std::string_view> ArraySpans(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = SkipWs(s, 1);
  while (i < s.size() && s[i] != ']') {
    const size_t end = ValueEnd(s, i);
    out.push_back(s.substr(i, end - i));
    i = SkipWs(s, end);
    if (i < s.size() && s[i] == ',') i = SkipWs(s, i + 1);
  }
  return out;
}

std::string_view SpanOf(const std::vector<std::pair<std::string, std::string_view>>& spans,
                        std::string_view key) {
  for (const auto& [k, v] : spans) {
    if (k == key) return v;
  }
  return {};
}

// ---------------------------------------------------------------------------------------
// Reading.

absl::Status Corrupt(std::string_view session, std::string_view message) {
  return absl::DataLossError(absl::StrCat(
      "session ", session.empty() ? "(unknown id)" : ToAbsl(session), ": ", ToAbsl(message)));
}

absl::Status FieldProblem(const std::string& path, std::string_view reason) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", ToAbsl(reason)));
}

absl::StatusOr<bool> OptionalBool(const ObjectReader& o, std::string_view key) {
  const Json* v = o.Find(key);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_boolean()) return FieldProblem(o.PathOf(key), "must be a boolean");
  return v->get<bool>();
}

absl::StatusOr<absl::Time> TimeField(const ObjectReader& o, std::string_view key) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> text, o.OptionalString(key));
  if (!text.has_value()) return absl::UnixEpoch();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, *text, &t, &err)) {
    return FieldProblem(o.PathOf(key), absl::StrCat("not an RFC 3339 time: ", err));
  }
  return t;
}

absl::StatusOr<std::string> StringField(const ObjectReader& o, std::string_view key) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> s, o.OptionalString(key, false));
  return s.value_or("");
}

absl::StatusOr<int64_t> IntField(const ObjectReader& o, std::string_view key) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> n,
                             o.OptionalInt(key, 0, std::numeric_limits<int64_t>::max()));
  return n.value_or(0);
}

// The elements of an optional array member with their spans (both in document order).
struct ArrayMember {
  const Json* json = nullptr;  // null when absent
  std::vector<std::string_view> spans;
};

absl::StatusOr<ArrayMember> ArrayField(
    const ObjectReader& o, const std::vector<std::pair<std::string, std::string_view>>& spans,
    std::string_view key) {
  ArrayMember out;
  MODEENVOY_ASSIGN_OR_RETURN(out.json, o.OptionalArray(key));
  if (out.json != nullptr) out.spans = ArraySpans(SpanOf(spans, key));
  return out;
}

absl::StatusOr<Message> MessageAt(std::string_view span, const std::string& path) {
  absl::StatusOr<Message> m = ParseMessage(span, path);
  if (!m.ok()) return absl::InvalidArgumentError(m.status().message());
  return m;
}

absl::Status ReadMetadata(const ObjectReader& root, ContextRecord* r) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> meta, root.OptionalObject("metadata"));
  if (!meta.has_value()) return absl::OkStatus();
  for (auto it = meta->json().begin(); it != meta->json().end(); ++it) {
    if (!it->is_string()) return FieldProblem(meta->PathOf(it.key()), "must be a string");
    r->metadata.emplace(it.key(), it->get<std::string>());
  }
  return absl::OkStatus();
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

// Version 1: the history was messages only. Turns are numbered by user messages (what
// precedes the first user message belongs to turn 1); tool calls come from the assistant
// messages and the tool messages answering them.
absl::Status ReadVersion1(const ObjectReader& root,
                          const std::vector<std::pair<std::string, std::string_view>>& spans,
                          ContextRecord* r) {
  MODEENVOY_RETURN_IF_ERROR(root.RejectUnknown(
      {"schema_version", "session_id", "owner", "history", "metadata", "created", "updated"}));
  MODEENVOY_ASSIGN_OR_RETURN(ArrayMember history, ArrayField(root, spans, "history"));
  int64_t users = 0;
  for (size_t i = 0; i < history.spans.size(); ++i) {
    const std::string path = IndexPath("history", i);
    MODEENVOY_ASSIGN_OR_RETURN(Message m, MessageAt(history.spans[i], path));
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
  }
  return absl::OkStatus();
}

absl::Status ReadVersion2(const ObjectReader& root,
                          const std::vector<std::pair<std::string, std::string_view>>& spans,
                          ContextRecord* r) {
  MODEENVOY_RETURN_IF_ERROR(root.RejectUnknown(
      {"schema_version", "session_id", "owner", "history", "metadata", "created", "updated",
       "turn_count", "tool_calls", "model_choices"}));
  MODEENVOY_ASSIGN_OR_RETURN(r->turn_count, IntField(root, "turn_count"));
  MODEENVOY_ASSIGN_OR_RETURN(ArrayMember history, ArrayField(root, spans, "history"));
  for (size_t i = 0; i < history.spans.size(); ++i) {
    const std::string path = IndexPath("history", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader e, ObjectReader::Make((*history.json)[i], path));
    MODEENVOY_RETURN_IF_ERROR(e.RejectUnknown({"message", "turn", "pinned", "summary"}));
    if (!e.Has("message")) return FieldProblem(e.PathOf("message"), "is required");
    HistoryEntry& entry = r->history.emplace_back();
    MODEENVOY_ASSIGN_OR_RETURN(
        entry.message,
        MessageAt(SpanOf(ObjectSpans(history.spans[i]), "message"), e.PathOf("message")));
    MODEENVOY_ASSIGN_OR_RETURN(entry.turn, IntField(e, "turn"));
    MODEENVOY_ASSIGN_OR_RETURN(entry.pinned, OptionalBool(e, "pinned"));
    MODEENVOY_ASSIGN_OR_RETURN(entry.summary, OptionalBool(e, "summary"));
  }
  MODEENVOY_ASSIGN_OR_RETURN(ArrayMember tools, ArrayField(root, spans, "tool_calls"));
  for (size_t i = 0; tools.json != nullptr && i < tools.json->size(); ++i) {
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader t,
                               ObjectReader::Make((*tools.json)[i], IndexPath("tool_calls", i)));
    MODEENVOY_RETURN_IF_ERROR(t.RejectUnknown({"turn", "id", "name", "arguments", "result"}));
    ToolInvocation& inv = r->tool_calls.emplace_back();
    MODEENVOY_ASSIGN_OR_RETURN(inv.turn, IntField(t, "turn"));
    MODEENVOY_ASSIGN_OR_RETURN(inv.id, StringField(t, "id"));
    MODEENVOY_ASSIGN_OR_RETURN(inv.name, StringField(t, "name"));
    MODEENVOY_ASSIGN_OR_RETURN(inv.arguments, StringField(t, "arguments"));
    MODEENVOY_ASSIGN_OR_RETURN(inv.result, t.OptionalString("result", false));
  }
  MODEENVOY_ASSIGN_OR_RETURN(ArrayMember choices, ArrayField(root, spans, "model_choices"));
  for (size_t i = 0; i < choices.spans.size(); ++i) {
    MODEENVOY_ASSIGN_OR_RETURN(
        ObjectReader c, ObjectReader::Make((*choices.json)[i], IndexPath("model_choices", i)));
    MODEENVOY_RETURN_IF_ERROR(c.RejectUnknown(
        {"turn", "model", "provider", "upstream_model", "usage", "usage_estimated"}));
    ModelChoice& choice = r->model_choices.emplace_back();
    MODEENVOY_ASSIGN_OR_RETURN(choice.turn, IntField(c, "turn"));
    MODEENVOY_ASSIGN_OR_RETURN(choice.model, StringField(c, "model"));
    MODEENVOY_ASSIGN_OR_RETURN(choice.provider, StringField(c, "provider"));
    MODEENVOY_ASSIGN_OR_RETURN(choice.upstream_model, StringField(c, "upstream_model"));
    MODEENVOY_ASSIGN_OR_RETURN(choice.usage_estimated, OptionalBool(c, "usage_estimated"));
    if (const Json* usage = c.Find("usage"); usage != nullptr && !usage->is_null()) {
      absl::StatusOr<Usage> u =
          ParseUsage(SpanOf(ObjectSpans(choices.spans[i]), "usage"), c.PathOf("usage"));
      if (!u.ok()) return absl::InvalidArgumentError(u.status().message());
      choice.usage = *std::move(u);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ContextRecord> ParseRecord(std::string_view json, std::string* session) {
  MODEENVOY_ASSIGN_OR_RETURN(Json doc, core_internal::ParseStrictJson(json));
  if (doc.is_object()) {
    if (auto it = doc.find("session_id"); it != doc.end() && it->is_string() &&
                                          !it->get_ref<const std::string&>().empty()) {
      *session = it->get<std::string>();
    }
  }
  if (!doc.is_object()) return FieldProblem("record", "must be a JSON object");
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(doc, ""));
  int64_t version = 1;  // the first schema did not always write its version
  if (const Json* v = root.Find("schema_version"); v != nullptr) {
    if (!v->is_number_integer() || v->get<int64_t>() < 1) {
      return FieldProblem("schema_version", "must be a positive integer");
    }
    version = v->get<int64_t>();
  }
  if (version > kContextSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "schema_version ", version, " is newer than this gateway reads (",
        kContextSchemaVersion, ")"));
  }
  ContextRecord r;
  MODEENVOY_ASSIGN_OR_RETURN(r.session_id, root.RequiredString("session_id"));
  MODEENVOY_ASSIGN_OR_RETURN(r.owner, root.RequiredString("owner"));
  MODEENVOY_ASSIGN_OR_RETURN(r.created, TimeField(root, "created"));
  MODEENVOY_ASSIGN_OR_RETURN(r.updated, TimeField(root, "updated"));
  MODEENVOY_RETURN_IF_ERROR(ReadMetadata(root, &r));
  // Skip a byte order mark, as ParseStrictJson did.
  if (json.substr(0, 3) == "\xEF\xBB\xBF") json.remove_prefix(3);
  const auto spans = ObjectSpans(json.substr(SkipWs(json, 0)));
  if (version == 1) {
    MODEENVOY_RETURN_IF_ERROR(ReadVersion1(root, spans, &r));
  } else {
    MODEENVOY_RETURN_IF_ERROR(ReadVersion2(root, spans, &r));
  }
  r.schema_version = kContextSchemaVersion;
  return r;
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
  std::string session(session_id);
  absl::StatusOr<ContextRecord> r = ParseRecord(json, &session);
  if (r.ok()) return r;
  if (r.status().code() == absl::StatusCode::kFailedPrecondition) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", ToAbsl(session), ": ", r.status().message()));
  }
  return Corrupt(session, core_internal::ToStd(r.status().message()));
}

std::vector<Message> HistoryMessages(const ContextRecord& record) {
  std::vector<Message> out;
  out.reserve(record.history.size());
  for (const HistoryEntry& e : record.history) out.push_back(e.message);
  return out;
}

}  // namespace modeenvoy
