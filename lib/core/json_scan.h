// lib/core/json_scan.h: finding member keys in JSON text without parsing it (private). The
// stream paths look at every chunk for a few keys ("usage", "tool_calls", ...) and parse
// only the chunks that have one; these helpers make that look cheap (no call per byte or
// per quote).
//
//   QuoteScanner quotes(data.data(), end, 'u');
//   for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
//     if (const char* v = MemberValue(p, end, "usage"); v != nullptr && *v == '{') ...
//   }
//
// Why a quote scan finds keys and never a key name inside a string: the content of a JSON
// string cannot hold an unescaped '"', so a match of `"name"` followed by ':' either is a
// member key or the text is not valid JSON (after a string value comes ',', '}' or ']').
// A caller that acts on a match in invalid JSON only reaches its slow path (a parse that
// then refuses the text).
#ifndef MODEENVOY_LIB_CORE_JSON_SCAN_H_
#define MODEENVOY_LIB_CORE_JSON_SCAN_H_

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cstddef>
#include <cstring>
#include <string_view>

namespace modeenvoy::core_internal {

inline bool IsJsonSpaceByte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Visits the positions just after each '"' in a text (where a key's name would start): one
// bit mask per 16 bytes (an SSE2 compare), then a bit per quote, so a scan that stops
// at every quote costs a few instructions per quote, not a library call. With `first` set,
// only quotes followed by that byte (or by `second` or `third`, when set) are visited: a
// scan for a few keys skips the others and every value not starting with those letters,
// which also spares a branch (often mispredicted) per skipped quote.
// The text must outlive the scanner. Thread-compatible.
class QuoteScanner {
 public:
  QuoteScanner(const char* p, const char* end, char first = '\0', char second = '\0',
               char third = '\0')
      : begin_(p),
        end_(end),
        first_(first),
        second_(first != '\0' && second != '\0' ? second : first),
        third_(first != '\0' && third != '\0' ? third : first) {
    Load(p);
  }

  // The position just after the next visited '"', or end when there is none.
  const char* Next() {
    while (mask_ == 0) {
      if (end_ - block_ <= kBlock) return end_;
      Load(block_ + kBlock);
    }
    const int i = __builtin_ctz(mask_);
    mask_ &= mask_ - 1;
    return block_ + i + 1;
  }

  // Continues the scan at p (quotes before p are not visited), e.g. after a value the
  // caller read itself.
  void SkipTo(const char* p) { Load(p < end_ ? p : end_); }

 private:
  static constexpr int kBlock = 16;

  // The mask of the block at p (fewer than 16 bytes at the end).
  void Load(const char* p) {
    block_ = p;
#if defined(__SSE2__)
    if (end_ - p > kBlock) {  // p[16] is readable: the `first` compare may look at it
      mask_ = Mask(p);
      return;
    }
    if (end_ - begin_ > kBlock) {
      // The last block: the 17 bytes ending at end_ are the scanner's, so the mask of the
      // 16 quotes before the last byte (a quote there starts nothing), shifted to p.
      const char* q = end_ - (kBlock + 1);
      mask_ = Mask(q) >> (p - q);
      return;
    }
#endif
    mask_ = 0;
    const char* limit = end_ - p < kBlock ? end_ : p + kBlock;
    for (const char* q = p; q < limit; ++q) {
      if (*q == '"' && (first_ == '\0' || (q + 1 < end_ && Follows(q[1])))) {
        mask_ |= 1u << (q - p);
      }
    }
  }

#if defined(__SSE2__)
  // Bit i: p[i] is a '"' (followed by one of the set bytes, when set). Reads p[0..16].
  unsigned Mask(const char* p) const {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    unsigned m = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('"'))));
    if (first_ != '\0' && m != 0) {
      const __m128i w = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 1));
      __m128i follows = _mm_cmpeq_epi8(w, _mm_set1_epi8(first_));
      if (second_ != first_) follows = _mm_or_si128(follows, _mm_cmpeq_epi8(w, _mm_set1_epi8(second_)));
      if (third_ != first_) follows = _mm_or_si128(follows, _mm_cmpeq_epi8(w, _mm_set1_epi8(third_)));
      m &= static_cast<unsigned>(_mm_movemask_epi8(follows));
    }
    return m;
  }
#endif

  bool Follows(char c) const { return c == first_ || c == second_ || c == third_; }

  const char* begin_;  // the start of the text: bytes from here to end_ may be read
  const char* block_ = nullptr;
  const char* end_;
  unsigned mask_ = 0;
  // The bytes a visited quote must be followed by; unset ones repeat first_ ('\0': any).
  char first_;
  char second_;
  char third_;
};

// When [p, end) starts with `name` followed by '"', optional whitespace, ':' and optional
// whitespace: the start of the member's value (never end). Else nullptr. Always inlined:
// with `name` a constant the comparison is a few loads, and scans call it at many quotes
// (GCC stops inlining it once a scan has enough call sites, which cost ~370 instructions
// per chunk in the openai-compatible decoder).
[[gnu::always_inline]] inline const char* MemberValue(const char* p, const char* end,
                                                     std::string_view name) {
  if (static_cast<size_t>(end - p) <= name.size() || p[name.size()] != '"' ||
      std::memcmp(p, name.data(), name.size()) != 0) {
    return nullptr;
  }
  const char* v = p + name.size() + 1;
  while (v < end && IsJsonSpaceByte(*v)) ++v;
  if (v == end || *v != ':') return nullptr;
  ++v;
  while (v < end && IsJsonSpaceByte(*v)) ++v;
  return v < end ? v : nullptr;
}

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_JSON_SCAN_H_
