// lib/core/json_pull.h: private JSON reading and writing for the hot paths (request and
// response bodies in lib/protocol, which names these through lib/protocol/json.h; stored
// context records in lib/context).
//
// The wire models need three things a DOM parser does not give cheaply: the compact text
// of values they do not interpret (kept losslessly), byte offsets for error messages, and
// no intermediate tree. JsonReader is a pull parser over the input (RFC 8259, UTF-8
// validated, nesting bounded by the caller's max_depth); the writer helpers append compact
// JSON. (lib/core/json_reader.h is the other reader: configuration, a DOM, read once.)
#ifndef MODEENVOY_LIB_CORE_JSON_PULL_H_
#define MODEENVOY_LIB_CORE_JSON_PULL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "modeenvoy/export.h"

namespace modeenvoy::core_internal {

// Declarations marked MODEENVOY_EXPORT stay private to lib/ (the header is not installed) but
// are exported from a shared build, so that tests, benchmarks and fuzzers link against it.

enum class JsonType { kNull, kBool, kNumber, kString, kArray, kObject };

// "null", "boolean", "number", "string", "array", "object".
MODEENVOY_EXPORT std::string_view JsonTypeName(JsonType type);

// Pull parser. Every method returns false after a syntax error, which status() then
// describes as `body: invalid JSON at byte N: reason` (N is the 0-based offset of the
// offending byte in the whole input). Once failed, every method returns false. A UTF-8
// byte order mark at the start of the input is skipped.
// Thread-compatible; `input` must outlive the reader.
class MODEENVOY_EXPORT JsonReader {
 public:
  explicit JsonReader(std::string_view input, int max_depth);

  // Skips whitespace and reports the type of the next value (without consuming it).
  bool Peek(JsonType* type);

  bool ReadNull();
  bool ReadBool(bool* value);
  // The exact text of a number (grammar-checked).
  bool ReadNumber(std::string_view* text);
  // A decoded string. `*out` either points into the input (no escapes) or into `*scratch`.
  bool ReadString(std::string_view* out, std::string* scratch);
  bool ReadString(std::string* out);

  // Objects: BeginObject() consumes '{'; then call NextMember() until *has is false.
  // `*first` must be true before the first call. The key view is valid until the next
  // call that reads (it may point into `*scratch`).
  bool BeginObject();
  bool NextMember(bool* first, std::string_view* key, std::string* scratch, bool* has);
  // Arrays likewise.
  bool BeginArray();
  bool NextElement(bool* first, bool* has);

  // Consumes the next value, appending its compact text (insignificant whitespace
  // removed, tokens byte-exact) to `*out` when out is non-null.
  bool CaptureValue(std::string* out);
  bool SkipValue() { return CaptureValue(nullptr); }

  // Requires that only whitespace remains.
  bool ExpectEnd();

  // The input not read yet. With Advance(), a value can be read by another reader (a
  // codec that takes text, such as ParseMessagePrefix in protocol/chat.h) in the same pass.
  std::string_view remaining() const {
    return std::string_view(p_, static_cast<size_t>(end_ - p_));
  }
  // Moves past the first `n` bytes of remaining(), which another reader consumed: whole
  // values, so the nesting depth is unchanged. REQUIRES: n <= remaining().size(), not
  // failed, not inside CaptureValue().
  void Advance(size_t n) { p_ += n; }

  const absl::Status& status() const { return status_; }
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

 private:
  bool Fail(std::string_view reason);
  bool FailAt(const char* at, std::string_view reason);
  bool FailUnexpected();
  // Compact JSON has no whitespace between tokens, so the common case (a token byte next)
  // stays inline: this runs before every token.
  void SkipWhitespace() {
    if (p_ < end_ && static_cast<unsigned char>(*p_) > ' ') return;
    SkipWhitespaceSlow();
  }
  void SkipWhitespaceSlow();
  bool Enter() {
    if (depth_ >= max_depth_) return FailTooDeep();
    ++depth_;
    return true;
  }
  bool FailTooDeep();
  // p_ at the opening quote; leaves p_ after the closing one. When the string has
  // escapes and `decoded` is non-null, *decoded receives the decoded content.
  bool ScanString(std::string* decoded, bool* has_escape);
  bool CaptureInner();

  const char* begin_;
  const char* p_;
  const char* end_;
  int depth_ = 0;
  int max_depth_;
  bool failed_ = false;
  absl::Status status_;
  std::string* capture_ = nullptr;  // non-null while CaptureValue() is collecting
  const char* segment_ = nullptr;   // start of the not yet copied captured bytes
};

// The member names of one JSON object read so far, so a repeated name can be refused.
// Most objects have a few members, so up to kScanLimit names are kept in an inline array and
// scanned (no allocation, no hashing); past that they move to a hash set. An object of n
// members then costs O(n) expected comparisons, not the O(n^2) of scanning every earlier
// name, which a body of 100k short unknown members would otherwise spend before auth runs.
// Names are copied, so the caller's views may die after Insert().
// Thread-compatible. Not movable: the set's equality counts into this object.
class MODEENVOY_EXPORT MemberNameSet {
 public:
  static constexpr size_t kScanLimit = 8;

  MemberNameSet() : names_(0, NameHash(), CountingEq{&comparisons_}) {}
  MemberNameSet(const MemberNameSet&) = delete;
  MemberNameSet& operator=(const MemberNameSet&) = delete;

  // Adds `name`. Returns false, and adds nothing, if the set already holds it.
  bool Insert(std::string_view name);

  size_t size() const { return small_.size() + names_.size(); }

  // Name comparisons made so far (scan steps plus hash-set equality checks): what a test
  // watches to see that the cost per name stays bounded.
  uint64_t comparisons() const { return comparisons_; }

 private:
  struct NameHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return absl::HashOf(s); }
  };
  struct CountingEq {
    using is_transparent = void;
    uint64_t* count;
    bool operator()(std::string_view a, std::string_view b) const {
      ++*count;
      return a == b;
    }
  };

  uint64_t comparisons_ = 0;
  absl::InlinedVector<std::string, kScanLimit> small_;  // used while names_ is empty
  absl::flat_hash_set<std::string, NameHash, CountingEq> names_;
};

// Receives the top-level members of a request body a reader read: each member's name and
// its value's bytes as sent (whitespace inside kept, any between the ':' and the value
// included), once the value is read. Both views live only during the call.
using BodyMemberObserver = absl::FunctionRef<void(std::string_view name, std::string_view text)>;

// Installs `observer` on this thread for the scope's life (the previous one comes back
// after): a request reader that supports it (the "openai_responses" dialect's
// DecodeRequest) reports the members of the body it reads to CurrentBodyMemberObserver().
// For a caller that needs a few members as sent besides the decoded request (the Responses
// ingress's echo) without a second pass over the body, across the dialect interface.
// Only the read that runs in the scope on this thread reports; one that fails may have
// reported some members. Not copyable; `observer` must outlive the scope.
class MODEENVOY_EXPORT ScopedBodyMemberObserver {
 public:
  explicit ScopedBodyMemberObserver(const BodyMemberObserver* observer);
  ~ScopedBodyMemberObserver();
  ScopedBodyMemberObserver(const ScopedBodyMemberObserver&) = delete;
  ScopedBodyMemberObserver& operator=(const ScopedBodyMemberObserver&) = delete;

 private:
  const BodyMemberObserver* previous_;
};
// The observer installed on this thread, or nullptr.
MODEENVOY_EXPORT const BodyMemberObserver* CurrentBodyMemberObserver();

// Parses a number's text as a double. False if not finite.
MODEENVOY_EXPORT bool NumberToDouble(std::string_view text, double* value);
// Parses a number's text as an int64; accepts an integral value written with fraction
// or exponent (2.0, 1e3). False if not integral or out of range.
MODEENVOY_EXPORT bool NumberToInt64(std::string_view text, int64_t* value);

// True if `s` is valid UTF-8 (no overlongs, surrogates or values above U+10FFFF).
MODEENVOY_EXPORT bool IsValidUtf8(std::string_view s);

// Appends `s` as a quoted JSON string. Bytes that are not valid UTF-8 become U+FFFD.
MODEENVOY_EXPORT void AppendJsonString(std::string* out, std::string_view s);
MODEENVOY_EXPORT void AppendJsonInt(std::string* out, int64_t value);
// Shortest text that reads back as the same double; non-finite values as null.
MODEENVOY_EXPORT void AppendJsonDouble(std::string* out, double value);

// Writes the members of one object: w.Key("name"); AppendJsonString(w.out(), ...); ...
class JsonObjectWriter {
 public:
  explicit JsonObjectWriter(std::string* out) : out_(out) { out_->push_back('{'); }
  // `name` is written escaped. A name of printable ASCII that needs no escape (nearly every
  // one) is copied as it is, inline: AppendJsonString's call and scan cost more than the
  // short names themselves.
  void Key(std::string_view name) {
    if (!first_) out_->push_back(',');
    first_ = false;
    for (const char ch : name) {
      const unsigned char c = static_cast<unsigned char>(ch);
      if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
        AppendJsonString(out_, name);
        out_->push_back(':');
        return;
      }
    }
    out_->push_back('"');
    out_->append(name);
    out_->append("\":", 2);
  }
  void End() { out_->push_back('}'); }
  std::string* out() const { return out_; }

 private:
  std::string* out_;
  bool first_ = true;
};

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_JSON_PULL_H_
