#include "lib/core/json_pull.h"

#include <charconv>
#include <cmath>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstring>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "lib/core/utf8.h"
#include "modeenvoy/status.h"

namespace modeenvoy::core_internal {
namespace {

constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHighs = 0x8080808080808080ULL;

inline uint64_t Load64(const char* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// Nonzero iff some byte of `w` is '"', '\\', below 0x20 or at least 0x80: the bytes a
// string scanner (reading or writing) must look at one by one.
inline uint64_t SpecialBytes(uint64_t w) {
  const uint64_t quote = w ^ (kOnes * '"');
  const uint64_t backslash = w ^ (kOnes * '\\');
  return ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) |
         (w - kOnes * 0x20) | w;
}
inline bool HasSpecialByte(uint64_t w) { return (SpecialBytes(w) & kHighs) != 0; }

// Returns the first byte in [p, end) that is '"', '\\', below 0x20 or at least 0x80, or
// end: the bytes string scanning (reading or writing) must look at one by one. Strings
// are most of a chat request, so this loop is most of the parse time.
inline const char* FindSpecialByte(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i space = _mm_set1_epi8(0x20);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    // Signed compare: bytes >= 0x80 are negative, so "< 0x20" catches them too.
    const __m128i special = _mm_or_si128(
        _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
        _mm_cmplt_epi8(v, space));
    const int mask = _mm_movemask_epi8(special);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (end - p >= 8 && !HasSpecialByte(Load64(p))) p += 8;
  while (p < end) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) return p;
    ++p;
  }
  return end;
}

inline bool IsWhitespace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Length of the valid UTF-8 sequence starting at p (p < end, *p >= 0x80), or 0. Inline:
// the string scanners call it for every non-ASCII character (a call each was ~10% of
// writing text with some).
[[gnu::always_inline]] inline size_t Utf8SequenceLength(const unsigned char* p,
                                                       const unsigned char* end) {
  const unsigned char c = p[0];
  const size_t avail = static_cast<size_t>(end - p);
  auto cont = [](unsigned char b) { return b >= 0x80 && b <= 0xBF; };
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (avail >= 2 && cont(p[1])) ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3) return 0;
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && cont(p[2])) ? 3 : 0;
  }
  if (c < 0xF5) {
    if (avail < 4) return 0;
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;
    return (p[1] >= lo && p[1] <= hi && cont(p[2]) && cont(p[3])) ? 4 : 0;
  }
  return 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads 4 hex digits at p (REQUIRES: 4 bytes available). -1 if any is not hex.
int Hex4(const char* p) {
  int v = 0;
  for (int i = 0; i < 4; ++i) {
    const int h = HexValue(p[i]);
    if (h < 0) return -1;
    v = (v << 4) | h;
  }
  return v;
}

constexpr char kReplacementCharacter[] = "\xEF\xBF\xBD";

}  // namespace

std::string_view JsonTypeName(JsonType type) {
  switch (type) {
    case JsonType::kNull: return "null";
    case JsonType::kBool: return "boolean";
    case JsonType::kNumber: return "number";
    case JsonType::kString: return "string";
    case JsonType::kArray: return "array";
    case JsonType::kObject: return "object";
  }
  return "value";
}

JsonReader::JsonReader(std::string_view input, int max_depth)
    : begin_(input.data()),
      p_(input.data()),
      end_(input.data() + input.size()),
      max_depth_(max_depth) {
  // RFC 8259 lets parsers ignore a leading byte order mark; some clients send one.
  if (input.size() >= 3 && std::memcmp(p_, "\xEF\xBB\xBF", 3) == 0) p_ += 3;
}

bool JsonReader::FailAt(const char* at, std::string_view reason) {
  if (!failed_) {
    failed_ = true;
    status_ = InvalidFieldError(
        "body", absl::StrCat("invalid JSON at byte ", at - begin_, ": ",
                             core_internal::ToAbsl(reason)));
  }
  return false;
}

bool JsonReader::Fail(std::string_view reason) { return FailAt(p_, reason); }

bool JsonReader::FailUnexpected() {
  if (p_ >= end_) return Fail("unexpected end of input");
  const unsigned char c = static_cast<unsigned char>(*p_);
  if (c >= 0x21 && c < 0x7F) return Fail(absl::StrFormat("unexpected character '%c'", c));
  return Fail(absl::StrFormat("unexpected byte 0x%02x", c));
}

void JsonReader::SkipWhitespaceSlow() {
  const char* start = p_;
  const char* p = p_;
  while (p < end_ && IsWhitespace(*p)) ++p;
  p_ = p;
  if (capture_ != nullptr && p_ != start) {
    capture_->append(segment_, static_cast<size_t>(start - segment_));
    segment_ = p_;
  }
}

bool JsonReader::FailTooDeep() {
  return Fail(absl::StrCat("nesting deeper than ", max_depth_, " levels"));
}

bool JsonReader::Peek(JsonType* type) {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_) return Fail("unexpected end of input");
  switch (*p_) {
    case '{': *type = JsonType::kObject; return true;
    case '[': *type = JsonType::kArray; return true;
    case '"': *type = JsonType::kString; return true;
    case 't':
    case 'f': *type = JsonType::kBool; return true;
    case 'n': *type = JsonType::kNull; return true;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
      *type = JsonType::kNumber;
      return true;
    default:
      return FailUnexpected();
  }
}

bool JsonReader::ReadNull() {
  if (failed_) return false;
  SkipWhitespace();
  if (end_ - p_ >= 4 && std::memcmp(p_, "null", 4) == 0) {
    p_ += 4;
    return true;
  }
  return FailUnexpected();
}

bool JsonReader::ReadBool(bool* value) {
  if (failed_) return false;
  SkipWhitespace();
  if (end_ - p_ >= 4 && std::memcmp(p_, "true", 4) == 0) {
    p_ += 4;
    *value = true;
    return true;
  }
  if (end_ - p_ >= 5 && std::memcmp(p_, "false", 5) == 0) {
    p_ += 5;
    *value = false;
    return true;
  }
  return FailUnexpected();
}

bool JsonReader::ReadNumber(std::string_view* text) {
  if (failed_) return false;
  SkipWhitespace();
  const char* start = p_;
  if (p_ < end_ && *p_ == '-') ++p_;
  if (p_ >= end_) return Fail("invalid number");
  if (*p_ == '0') {
    ++p_;
  } else if (*p_ >= '1' && *p_ <= '9') {
    while (p_ < end_ && IsDigit(*p_)) ++p_;
  } else {
    return Fail("invalid number");
  }
  if (p_ < end_ && *p_ == '.') {
    ++p_;
    if (p_ >= end_ || !IsDigit(*p_)) return Fail("invalid number: expected a digit after '.'");
    while (p_ < end_ && IsDigit(*p_)) ++p_;
  }
  bool exponent = false;
  if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
    exponent = true;
    ++p_;
    if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
    if (p_ >= end_ || !IsDigit(*p_)) return Fail("invalid number: expected an exponent digit");
    while (p_ < end_ && IsDigit(*p_)) ++p_;
  }
  *text = std::string_view(start, static_cast<size_t>(p_ - start));
  // Numbers beyond the double range (1e400) are rejected, as nlohmann and most JSON
  // libraries do, so raw values we pass on parse everywhere. Only an exponent or a very
  // long mantissa can get there.
  if (exponent || text->size() > 300) {
    double ignored;
    if (!NumberToDouble(*text, &ignored)) return FailAt(start, "number out of range");
  }
  return true;
}

bool JsonReader::ScanString(std::string* decoded, bool* has_escape) {
  ++p_;  // opening quote
  const char* run = p_;  // start of bytes not yet copied to *decoded
  *has_escape = false;
  while (true) {
    p_ = FindSpecialByte(p_, end_);
    if (p_ >= end_) return Fail("unterminated string");
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      if (decoded != nullptr && *has_escape) decoded->append(run, static_cast<size_t>(p_ - run));
      ++p_;
      return true;
    }
    if (c == '\\') {
      if (decoded != nullptr) {
        if (!*has_escape) {
          // Room for the text so far and as much again: a long text with escapes (quotes,
          // newlines) would otherwise regrow the copy from 15 bytes up, once per doubling.
          decoded->clear();
          decoded->reserve(2 * static_cast<size_t>(p_ - run) + 32);
        }
        decoded->append(run, static_cast<size_t>(p_ - run));
      }
      *has_escape = true;
      const char* esc = p_;
      if (end_ - p_ < 2) return Fail("unterminated string");
      const char e = p_[1];
      p_ += 2;
      char simple = 0;
      switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': {
          if (end_ - p_ < 4) return FailAt(esc, "invalid \\u escape");
          int cp = Hex4(p_);
          if (cp < 0) return FailAt(esc, "invalid \\u escape");
          p_ += 4;
          uint32_t code_point = static_cast<uint32_t>(cp);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate needs a following \uDC00-\uDFFF; alone it is replaced.
            if (end_ - p_ >= 6 && p_[0] == '\\' && p_[1] == 'u') {
              const int lo = Hex4(p_ + 2);
              if (lo < 0) return FailAt(p_, "invalid \\u escape");
              if (lo >= 0xDC00 && lo <= 0xDFFF) {
                code_point = 0x10000 + ((static_cast<uint32_t>(cp) - 0xD800) << 10) +
                             (static_cast<uint32_t>(lo) - 0xDC00);
                p_ += 6;
              } else {
                code_point = 0xFFFD;
              }
            } else {
              code_point = 0xFFFD;
            }
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            code_point = 0xFFFD;
          }
          if (decoded != nullptr) AppendUtf8(decoded, code_point);
          break;
        }
        default:
          return FailAt(esc, "invalid escape in string");
      }
      if (simple != 0 && decoded != nullptr) decoded->push_back(simple);
      run = p_;
      continue;
    }
    if (c < 0x20) return Fail("unescaped control character in string");
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(reinterpret_cast<const unsigned char*>(p_),
                                          reinterpret_cast<const unsigned char*>(end_));
      if (n == 0) return Fail("invalid UTF-8 in string");
      p_ += n;
      continue;
    }
    ++p_;
  }
}

bool JsonReader::ReadString(std::string_view* out, std::string* scratch) {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_ || *p_ != '"') return FailUnexpected();
  const char* start = p_ + 1;
  bool has_escape = false;
  if (!ScanString(scratch, &has_escape)) return false;
  if (has_escape) {
    *out = *scratch;
  } else {
    *out = std::string_view(start, static_cast<size_t>(p_ - 1 - start));
  }
  return true;
}

bool JsonReader::ReadString(std::string* out) {
  std::string_view view;
  std::string scratch;
  if (!ReadString(&view, &scratch)) return false;
  if (view.data() == scratch.data()) {
    *out = std::move(scratch);
  } else {
    out->assign(view.data(), view.size());
  }
  return true;
}

bool JsonReader::BeginObject() {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_ || *p_ != '{') return FailUnexpected();
  if (!Enter()) return false;
  ++p_;
  return true;
}

bool JsonReader::NextMember(bool* first, std::string_view* key, std::string* scratch,
                            bool* has) {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_) return Fail("unexpected end of input");
  if (*p_ == '}') {
    ++p_;
    --depth_;
    *has = false;
    return true;
  }
  if (!*first) {
    if (*p_ != ',') return Fail("expected ',' or '}'");
    ++p_;
    SkipWhitespace();
  }
  if (p_ >= end_ || *p_ != '"') {
    if (p_ >= end_) return Fail("unexpected end of input");
    return Fail("expected a member name in double quotes");
  }
  if (key != nullptr) {
    // Most keys are short ASCII without escapes: their bytes are the key, read in place.
    const char* start = p_ + 1;
    const char* q = FindSpecialByte(start, end_);
    if (q < end_ && *q == '"') {
      *key = std::string_view(start, static_cast<size_t>(q - start));
      p_ = q + 1;
    } else if (!ReadString(key, scratch)) {
      return false;
    }
  } else {
    bool has_escape;
    if (!ScanString(nullptr, &has_escape)) return false;
  }
  SkipWhitespace();
  if (p_ >= end_ || *p_ != ':') return Fail("expected ':'");
  ++p_;
  *first = false;
  *has = true;
  return true;
}

bool JsonReader::BeginArray() {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_ || *p_ != '[') return FailUnexpected();
  if (!Enter()) return false;
  ++p_;
  return true;
}

bool JsonReader::NextElement(bool* first, bool* has) {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ >= end_) return Fail("unexpected end of input");
  if (*p_ == ']') {
    ++p_;
    --depth_;
    *has = false;
    return true;
  }
  if (!*first) {
    if (*p_ != ',') return Fail("expected ',' or ']'");
    ++p_;
  }
  *first = false;
  *has = true;
  return true;
}

bool JsonReader::CaptureInner() {
  JsonType type;
  if (!Peek(&type)) return false;
  switch (type) {
    case JsonType::kNull:
      return ReadNull();
    case JsonType::kBool: {
      bool b;
      return ReadBool(&b);
    }
    case JsonType::kNumber: {
      std::string_view text;
      return ReadNumber(&text);
    }
    case JsonType::kString: {
      bool has_escape;
      return ScanString(nullptr, &has_escape);
    }
    case JsonType::kArray: {
      if (!BeginArray()) return false;
      bool first = true, has = false;
      while (true) {
        if (!NextElement(&first, &has)) return false;
        if (!has) return true;
        if (!CaptureInner()) return false;
      }
    }
    case JsonType::kObject: {
      if (!BeginObject()) return false;
      bool first = true, has = false;
      while (true) {
        if (!NextMember(&first, nullptr, nullptr, &has)) return false;
        if (!has) return true;
        if (!CaptureInner()) return false;
      }
    }
  }
  return Fail("unknown value");
}

bool JsonReader::CaptureValue(std::string* out) {
  if (failed_) return false;
  SkipWhitespace();
  capture_ = out;
  segment_ = p_;
  const bool ok = CaptureInner();
  if (out != nullptr && ok) out->append(segment_, static_cast<size_t>(p_ - segment_));
  capture_ = nullptr;
  return ok;
}

bool JsonReader::ExpectEnd() {
  if (failed_) return false;
  SkipWhitespace();
  if (p_ != end_) return Fail("unexpected data after the JSON value");
  return true;
}

bool MemberNameSet::Insert(std::string_view name) {
  if (names_.empty()) {
    for (const std::string& seen : small_) {
      ++comparisons_;
      if (seen == name) return false;
    }
    if (small_.size() < kScanLimit) {
      small_.emplace_back(name);
      return true;
    }
    // The scan above found no match, so every name moves over unchanged.
    names_.reserve(2 * kScanLimit);
    for (std::string& seen : small_) names_.insert(std::move(seen));
    small_.clear();
  }
  return names_.emplace(name).second;
}

namespace {
thread_local const BodyMemberObserver* current_body_member_observer = nullptr;
}  // namespace

ScopedBodyMemberObserver::ScopedBodyMemberObserver(const BodyMemberObserver* observer)
    : previous_(current_body_member_observer) {
  current_body_member_observer = observer;
}

ScopedBodyMemberObserver::~ScopedBodyMemberObserver() {
  current_body_member_observer = previous_;
}

const BodyMemberObserver* CurrentBodyMemberObserver() { return current_body_member_observer; }

bool NumberToDouble(std::string_view text, double* value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  if (ec != std::errc() || ptr != end) {
    // from_chars reports underflow as out of range; a tiny value is still a number.
    if (ec == std::errc::result_out_of_range && ptr == end) {
      size_t e = text.find_first_of("eE");
      if (e != std::string_view::npos && e + 1 < text.size() && text[e + 1] == '-') {
        *value = (text[0] == '-') ? -0.0 : 0.0;
        return true;
      }
    }
    return false;
  }
  return std::isfinite(*value);
}

bool NumberToInt64(std::string_view text, int64_t* value) {
  if (text.find_first_of(".eE") == std::string_view::npos) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, *value);
    return ec == std::errc() && ptr == end;
  }
  double d;
  if (!NumberToDouble(text, &d)) return false;
  if (std::trunc(d) != d || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
    return false;
  }
  *value = static_cast<int64_t>(d);
  return true;
}

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    while (end - p >= 8 && (Load64(reinterpret_cast<const char*>(p)) & kHighs) == 0) p += 8;
    if (p >= end) break;
    if (*p < 0x80) {
      ++p;
      continue;
    }
    const size_t n = Utf8SequenceLength(p, end);
    if (n == 0) return false;
    p += n;
  }
  return true;
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  const char* p = s.data();
  const char* end = p + s.size();
  const char* run = p;
  while (true) {
    p = FindSpecialByte(p, end);
    if (p >= end) break;
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x80) {
      const size_t n = Utf8SequenceLength(reinterpret_cast<const unsigned char*>(p),
                                          reinterpret_cast<const unsigned char*>(end));
      if (n != 0) {
        p += n;
        continue;
      }
      out->append(run, static_cast<size_t>(p - run));
      out->append(kReplacementCharacter, 3);
      ++p;
      run = p;
      continue;
    }
    if (c != '"' && c != '\\' && c >= 0x20) {
      ++p;
      continue;
    }
    out->append(run, static_cast<size_t>(p - run));
    // Two-byte escapes by push_back (inline), not a call to append each.
    char short_escape = 0;
    switch (c) {
      case '"': short_escape = '"'; break;
      case '\\': short_escape = '\\'; break;
      case '\b': short_escape = 'b'; break;
      case '\f': short_escape = 'f'; break;
      case '\n': short_escape = 'n'; break;
      case '\r': short_escape = 'r'; break;
      case '\t': short_escape = 't'; break;
      default: break;
    }
    if (short_escape != 0) {
      out->push_back('\\');
      out->push_back(short_escape);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out->append(esc, 6);
    }
    ++p;
    run = p;
  }
  out->append(run, static_cast<size_t>(end - run));
  out->push_back('"');
}

void AppendJsonInt(std::string* out, int64_t value) {
  char buf[24];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, static_cast<size_t>(ptr - buf));
}

void AppendJsonDouble(std::string* out, double value) {
  if (!std::isfinite(value)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, static_cast<size_t>(ptr - buf));
}

}  // namespace modeenvoy::core_internal
