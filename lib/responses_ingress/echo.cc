// lib/responses_ingress/echo.cc: the request members a response object repeats, read from
// the request body and set on rendered response objects with the pull reader, one pass each
// (no DOM): these run for every response object the ingress renders, in the whole body and in
// every stream event that carries one, and for every stored response read back.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/core/json_pull.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::responses_internal {
namespace {

using core_internal::AppendJsonString;
using core_internal::JsonReader;
using core_internal::JsonType;

// The end of the string whose content starts at p (after its opening quote): just after
// the closing quote, or nullptr when the text ends first. The text is valid JSON (see
// ValidValueSize), so only '"' and '\\' matter: 16 bytes per compare where SSE2 is there.
const char* ValidStringEnd(const char* p, const char* end) {
  for (;;) {
#if defined(__SSE2__)
    while (end - p >= 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const unsigned m = static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(
          _mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')))));
      if (m != 0) {
        p += __builtin_ctz(m);
        break;
      }
      p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') ++p;
    if (p >= end) return nullptr;
    if (*p == '"') return p + 1;
    p += 2;  // a backslash and the byte it escapes (\uXXXX's digits are not special)
  }
}

// The size of the JSON value at the start of `text` (leading whitespace included), which
// must be valid JSON: the codec read the request body before the echo is taken from it, so
// the values the echo leaves out (the input, most of the body) are passed over by their
// quotes and brackets alone, not parsed again. 0 when the text ends first, which valid JSON
// never does; bytes past `text` are never read.
size_t ValidValueSize(std::string_view text) {
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  const char* p = begin;
  int depth = 0;
  while (p < end) {
    const char c = *p;
    if (c == '"') {
      p = ValidStringEnd(p + 1, end);
      if (p == nullptr) return 0;
      if (depth == 0) return static_cast<size_t>(p - begin);
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth <= 0) return depth == 0 ? static_cast<size_t>(p + 1 - begin) : 0;
    } else if (depth == 0 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      // A number or literal: up to the next delimiter.
      while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
             *p != '\n' && *p != '\r') {
        ++p;
      }
      return static_cast<size_t>(p - begin);
    }
    ++p;
  }
  return 0;
}

// Appends the valid JSON value `valid` without the whitespace between its tokens (the
// compact text CaptureValue writes), by its quotes alone: strings are copied as they are,
// nothing is checked again.
void AppendCompactValid(std::string* out, std::string_view valid) {
  const char* p = valid.data();
  const char* const end = p + valid.size();
  const char* run = p;
  while (p < end) {
    const char c = *p;
    if (c == '"') {
      p = ValidStringEnd(p + 1, end);
      if (p == nullptr) break;  // cannot happen for valid JSON; copy what is left
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      out->append(run, static_cast<size_t>(p - run));
      while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
      run = p;
      continue;
    }
    ++p;
  }
  out->append(run, static_cast<size_t>(end - run));
}

// kEchoed's index of `key`, or kEchoedCount.
size_t EchoIndex(std::string_view key) {
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (kEchoed[i].first == key) return i;
  }
  return kEchoedCount;
}

// Reads an object from `r` and appends it to `out` with the echo's members set: replaced
// where the object has them, appended after its members where not; a member whose echo text
// is empty keeps the object's value. False when `r` fails.
bool PatchObject(JsonReader& r, const Echo& echo, std::string* out) {
  if (!r.BeginObject()) return false;
  out->push_back('{');
  bool seen[kEchoedCount] = {};
  bool first = true;
  bool wrote = false;
  std::string scratch;
  for (;;) {
    std::string_view key;
    bool has = false;
    if (!r.NextMember(&first, &key, &scratch, &has)) return false;
    if (!has) break;
    if (wrote) out->push_back(',');
    wrote = true;
    AppendJsonString(out, key);
    out->push_back(':');
    const size_t i = EchoIndex(key);
    if (i == kEchoedCount || echo[i].empty()) {
      if (!r.CaptureValue(out)) return false;
      continue;
    }
    if (!r.SkipValue()) return false;
    out->append(echo[i]);
    seen[i] = true;
  }
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (seen[i] || echo[i].empty()) continue;
    if (wrote) out->push_back(',');
    wrote = true;
    AppendJsonString(out, kEchoed[i].first);
    out->push_back(':');
    out->append(echo[i]);
  }
  out->push_back('}');
  return true;
}

// Reads the object `text` and captures the values of its kEchoed members into `echo`
// (members it does not have are left as they are). An explicit null is skipped when
// `null_is_absent`. With `validated` (a request body the codec read), the other members'
// values are passed over unchecked (ValidValueSize). False when `text` is not a JSON object.
bool CaptureEchoed(std::string_view text, bool null_is_absent, bool validated, Echo* echo) {
  JsonReader r(text, kMaxJsonDepth);
  if (!r.BeginObject()) return false;
  bool first = true;
  std::string scratch;
  for (;;) {
    std::string_view key;
    bool has = false;
    if (!r.NextMember(&first, &key, &scratch, &has)) return false;
    if (!has) return r.ExpectEnd();
    const size_t i = EchoIndex(key);
    if (i == kEchoedCount) {
      if (!validated) {
        if (!r.SkipValue()) return false;
        continue;
      }
      const size_t n = ValidValueSize(r.remaining());
      if (n == 0) return false;
      r.Advance(n);
      continue;
    }
    std::string value;
    if (validated) {
      // A value of a body the codec read: copied compact by its quotes, not parsed again.
      const size_t n = ValidValueSize(r.remaining());
      if (n == 0) return false;
      AppendCompactValid(&value, r.remaining().substr(0, n));
      r.Advance(n);
    } else if (!r.CaptureValue(&value)) {
      return false;
    }
    if (null_is_absent && value == "null") continue;
    (*echo)[i] = std::move(value);
  }
}

// The echo of a request whose members `read` holds (empty where absent or null): each
// member's default where the request has no value. `ok` false: all defaults.
Echo WithDefaults(Echo& read, bool ok) {
  Echo echo;
  for (size_t i = 0; i < kEchoedCount; ++i) {
    echo[i] = ok && !read[i].empty() ? std::move(read[i]) : std::string(kEchoed[i].second);
  }
  return echo;
}

}  // namespace

Echo EchoOf(std::string_view body) {
  // An explicit null reports the API's default (for instructions that is null too).
  Echo read;
  const bool ok = CaptureEchoed(body, /*null_is_absent=*/true, /*validated=*/true, &read);
  return WithDefaults(read, ok);
}

void EchoCollector::Add(std::string_view name, std::string_view text) {
  const size_t i = EchoIndex(name);
  if (i == kEchoedCount) return;
  // As CaptureEchoed reads a validated body: compact by its quotes; null is absent.
  std::string value;
  AppendCompactValid(&value, text);
  if (value == "null") return;
  read_[i] = std::move(value);
}

Echo EchoCollector::Take() { return WithDefaults(read_, /*ok=*/true); }

StateMembers StateMembersOf(const Echo& echo) {
  StateMembers m;
  for (size_t i = 0; i < kEchoedCount; ++i) {
    const std::string_view name = kEchoed[i].first;
    const std::string& text = echo[i];
    if (name == "store") {
      m.store = text != "false";
    } else if (name == "previous_response_id") {
      if (text.empty() || text.front() != '"') continue;
      JsonReader r(text, kMaxJsonDepth);
      std::string value;
      if (r.ReadString(&value)) m.previous_response_id = std::move(value);
    } else if (name == "instructions") {
      // A JSON string of at least one character: more than its two quotes.
      m.instructions = text.size() > 2 && text.front() == '"';
    }
  }
  return m;
}

std::string EchoJson(const Echo& echo) {
  std::string out = "{";
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (echo[i].empty()) continue;
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(&out, kEchoed[i].first);
    out.push_back(':');
    out.append(echo[i]);
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<Echo> EchoFromJson(std::string_view json) {
  Echo echo;
  if (!CaptureEchoed(json, /*null_is_absent=*/false, /*validated=*/false, &echo)) {
    return absl::DataLossError("stored response: the record's echo does not parse");
  }
  return echo;
}

absl::Status PatchEcho(const Echo& echo, bool in_event, std::string* data) {
  JsonReader r(*data, kMaxJsonDepth);
  JsonType type = JsonType::kNull;
  if (!r.Peek(&type) || type != JsonType::kObject) {
    return absl::InternalError("responses: rendered a non-object");
  }
  std::string out;
  out.reserve(data->size() + 128);
  bool ok = true;
  if (!in_event) {
    ok = PatchObject(r, echo, &out);
  } else {
    // An event: its "response" member (when an object) is the response object.
    ok = r.BeginObject();
    out.push_back('{');
    bool first = true;
    std::string scratch;
    while (ok) {
      std::string_view key;
      bool has = false;
      ok = r.NextMember(&first, &key, &scratch, &has);
      if (!ok || !has) break;
      if (out.size() > 1) out.push_back(',');
      AppendJsonString(&out, key);
      out.push_back(':');
      JsonType member = JsonType::kNull;
      ok = r.Peek(&member);
      if (!ok) break;
      ok = key == "response" && member == JsonType::kObject ? PatchObject(r, echo, &out)
                                                           : r.CaptureValue(&out);
    }
    out.push_back('}');
  }
  if (ok) ok = r.ExpectEnd();
  if (!ok) {
    return absl::InternalError(
        absl::StrCat("responses: rendered invalid JSON: ", r.status().ToString()));
  }
  *data = std::move(out);
  return absl::OkStatus();
}

}  // namespace modeenvoy::responses_internal
