// lib/tokenizer/pretokenize.h: hand-written equivalents of tiktoken's pre-tokenization regexes.
//
// Each Next*Piece(p, end) returns the end of the regex match that starts at p (REQUIRES:
// p < end). Matches of these patterns are contiguous (every character starts a match), so
// repeated calls split the text exactly as tiktoken's `regex.find_iter` does. The comments
// quote the alternative being reproduced; the order of the checks is the alternation order,
// and where an alternative can backtrack, the code finds the match a backtracking
// (leftmost-first) engine reports. `end` is the end of the haystack: tiktoken runs the regex
// on each segment between allowed special tokens, so `$` and the lookahead see that end.
#ifndef MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_H_
#define MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_H_

#include <cstdint>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "lib/tokenizer/unicode.h"

namespace modeenvoy::tokenizer_internal {

// Advances over characters whose flags intersect `mask`.
inline const uint8_t* ScanAny(const uint8_t* p, const uint8_t* end, uint8_t mask) {
  while (p < end) {
    if (*p < 0x80) {
      if (!(kAsciiFlags.flags[*p] & mask)) break;
      ++p;
    } else {
      const Char c = DecodeChar(p, end);
      if (!(c.flags & mask)) break;
      p += c.len;
    }
  }
  return p;
}

// Advances over characters whose flags do not intersect `mask`.
inline const uint8_t* ScanNone(const uint8_t* p, const uint8_t* end, uint8_t mask) {
  while (p < end) {
    if (*p < 0x80) {
      if (kAsciiFlags.flags[*p] & mask) break;
      ++p;
    } else {
      const Char c = DecodeChar(p, end);
      if (c.flags & mask) break;
      p += c.len;
    }
  }
  return p;
}

// The first position in [p, end) whose byte is outside [lo, lo + span] (`fold` is OR-ed into
// each byte first: 0x20 makes [a-z] match both cases), or end. Sixteen bytes per step where
// SSE2 exists: word lengths are unpredictable, and a byte loop mispredicts at every exit.
inline const uint8_t* SkipByteRange(const uint8_t* p, const uint8_t* end, uint8_t lo,
                                    uint8_t span, uint8_t fold) {
#if defined(__SSE2__)
  const __m128i vlo = _mm_set1_epi8(static_cast<char>(lo));
  const __m128i vspan = _mm_set1_epi8(static_cast<char>(span));
  const __m128i vfold = _mm_set1_epi8(static_cast<char>(fold));
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i t = _mm_sub_epi8(_mm_or_si128(x, vfold), vlo);
    // t <= span, unsigned: min(t, span) == t.
    const __m128i in = _mm_cmpeq_epi8(_mm_min_epu8(t, vspan), t);
    const unsigned out = ~static_cast<unsigned>(_mm_movemask_epi8(in)) & 0xffffu;
    if (out != 0) return p + __builtin_ctz(out);
    p += 16;
  }
#endif
  while (p < end && static_cast<uint8_t>((*p | fold) - lo) <= span) ++p;
  return p;
}

inline bool IsAsciiLower(uint8_t c) { return static_cast<uint8_t>(c - 'a') < 26; }
inline bool IsAsciiUpper(uint8_t c) { return static_cast<uint8_t>(c - 'A') < 26; }

inline bool IsLowerAscii(uint8_t c, char lower) { return (c | 0x20) == static_cast<uint8_t>(lower); }

// (?i:'s|'t|'re|'ve|'m|'ll|'d) at p: the end of the contraction, or nullptr. Case
// insensitivity is Unicode simple case folding, under which only U+017F LATIN SMALL LETTER
// LONG S (C5 BF) joins the ASCII letters (it folds to 's').
inline const uint8_t* MatchContractionCaseless(const uint8_t* p, const uint8_t* end) {
  if (end - p < 2 || p[0] != '\'') return nullptr;
  const uint8_t c1 = p[1];
  if (IsLowerAscii(c1, 's') || IsLowerAscii(c1, 't') || IsLowerAscii(c1, 'm') ||
      IsLowerAscii(c1, 'd')) {
    return p + 2;
  }
  if (c1 == 0xc5 && end - p >= 3 && p[2] == 0xbf) return p + 3;
  if (end - p >= 3) {
    const uint8_t c2 = p[2];
    if ((IsLowerAscii(c1, 'r') && IsLowerAscii(c2, 'e')) ||
        (IsLowerAscii(c1, 'v') && IsLowerAscii(c2, 'e')) ||
        (IsLowerAscii(c1, 'l') && IsLowerAscii(c2, 'l'))) {
      return p + 3;
    }
  }
  return nullptr;
}

// The whitespace alternatives shared by all patterns, applied at a whitespace character p.
//   trailing_rule:  \s++$                (cl100k current form, r50k/p50k current form)
//   newline_rule:   \s*[\r\n]  /  \s*[\r\n]+   (cl100k, o200k, llama3)
//   then            \s+(?!\S)  and  \s  /  \s+
inline const uint8_t* WhitespacePiece(const uint8_t* p, const uint8_t* end, bool trailing_rule,
                                      bool newline_rule) {
  const uint8_t* q = p;
  const uint8_t* last_nl = nullptr;
  const uint8_t* last_start = p;
  int count = 0;
  while (q < end) {
    Char c;
    if (*q < 0x80) {
      c = Char{kAsciiFlags.flags[*q], 1};
    } else {
      c = DecodeChar(q, end);
    }
    if (!(c.flags & kFlagWs)) break;
    if (c.flags & kFlagNl) last_nl = q;
    last_start = q;
    q += c.len;
    ++count;
  }
  if (q == end && trailing_rule) return end;          // \s++$
  if (newline_rule && last_nl != nullptr) return last_nl + 1;  // \s*[\r\n]+
  if (q == end) return end;                           // \s+(?!\S) at the end
  if (count >= 2) return last_start;                  // \s+(?!\S): leave one for the next piece
  return q;                                           // \s
}

// cl100k_base, current upstream form:
//   '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+
//   |\s++$|\s*[\r\n]|\s+(?!\S)|\s
// With trailing_rule = false it is Llama 3's (= cl100k's original) form:
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
//   |\s*[\r\n]+|\s+(?!\S)|\s+
template <bool kTrailingRule>
[[gnu::always_inline]] inline const uint8_t* NextCl100kPiece(const uint8_t* p, const uint8_t* end) {
  const uint8_t b = *p;
  if (b < 0x80) {
    const uint8_t f = kAsciiFlags.flags[b];
    // Fast path for all-ASCII words: [prefix]? [A-Za-z]+ ended by an ASCII byte (a non-ASCII
    // byte could be a letter continuing the run: general path). Not for "'", which may
    // start a contraction.
    if (b != '\'') {
      const uint8_t* q = (f & (kFlagL | kFlagN | kFlagNl)) ? p : p + 1;
      const uint8_t* r = SkipByteRange(q, end, 'a', 25, 0x20);
      if (r > q && (r == end || *r < 0x80)) return r;
    }
    if (f & kFlagL) return ScanAny(p + 1, end, kFlagL);
    if (b == '\'') {
      if (const uint8_t* q = MatchContractionCaseless(p, end)) return q;
    }
    if (f & kFlagN) {
      const uint8_t* q = p + 1;
      for (int k = 0; k < 2 && q < end; ++k) {
        const Char c = DecodeChar(q, end);
        if (!(c.flags & kFlagN)) break;
        q += c.len;
      }
      return q;
    }
    if (!(f & kFlagNl) && p + 1 < end) {  // [^\r\n\p{L}\p{N}]?+\p{L}++
      const Char c = DecodeChar(p + 1, end);
      if (c.flags & kFlagL) return ScanAny(p + 1 + c.len, end, kFlagL);
    }
    if (!(f & kFlagWs)) {  // ?[^\s\p{L}\p{N}]++[\r\n]*+ without the space
      const uint8_t* q = ScanNone(p + 1, end, kFlagWs | kFlagL | kFlagN);
      while (q < end && (*q == '\r' || *q == '\n')) ++q;
      return q;
    }
    if (b == ' ' && p + 1 < end) {  // the space of " ?[^\s\p{L}\p{N}]++"
      const Char c = DecodeChar(p + 1, end);
      if (!(c.flags & (kFlagWs | kFlagL | kFlagN))) {
        const uint8_t* q = ScanNone(p + 1 + c.len, end, kFlagWs | kFlagL | kFlagN);
        while (q < end && (*q == '\r' || *q == '\n')) ++q;
        return q;
      }
    }
    return WhitespacePiece(p, end, kTrailingRule, true);
  }
  const Char c = DecodeChar(p, end);
  if (c.flags & kFlagL) return ScanAny(p + c.len, end, kFlagL);
  if (c.flags & kFlagN) {
    const uint8_t* q = p + c.len;
    for (int k = 0; k < 2 && q < end; ++k) {
      const Char d = DecodeChar(q, end);
      if (!(d.flags & kFlagN)) break;
      q += d.len;
    }
    return q;
  }
  // Non-ASCII: never \r or \n, so it may prefix letters.
  if (p + c.len < end) {
    const Char d = DecodeChar(p + c.len, end);
    if (d.flags & kFlagL) return ScanAny(p + c.len + d.len, end, kFlagL);
  }
  if (!(c.flags & kFlagWs)) {
    const uint8_t* q = ScanNone(p + c.len, end, kFlagWs | kFlagL | kFlagN);
    while (q < end && (*q == '\r' || *q == '\n')) ++q;
    return q;
  }
  return WhitespacePiece(p, end, kTrailingRule, true);
}

// o200k_base helpers. U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], W = [\p{Ll}\p{Lm}\p{Lo}\p{M}].
// U* W+ C? starting at q: U* is greedy and backtracks until W+ can match; when the character
// after the U run is not in W, W+ ends up as the last W character inside the run. Returns
// nullptr when no split exists (the run holds only Lu/Lt and no W follows).
inline const uint8_t* MatchUpperStarLowerPlus(const uint8_t* q, const uint8_t* end) {
  const uint8_t* r = q;
  const uint8_t* last_lower_end = nullptr;
  while (r < end) {
    const Char c = DecodeChar(r, end);
    if (!(c.flags & kFlagUpper)) {
      if (c.flags & kFlagLower) {
        r = ScanAny(r + c.len, end, kFlagLower);
        const uint8_t* k = MatchContractionCaseless(r, end);
        return k != nullptr ? k : r;
      }
      break;
    }
    r += c.len;
    if (c.flags & kFlagLower) last_lower_end = r;
  }
  if (last_lower_end == nullptr) return nullptr;
  const uint8_t* k = MatchContractionCaseless(last_lower_end, end);
  return k != nullptr ? k : last_lower_end;
}

// U+ W* C? starting at q, or nullptr if q does not start with a U character.
inline const uint8_t* MatchUpperPlusLowerStar(const uint8_t* q, const uint8_t* end) {
  const uint8_t* r = ScanAny(q, end, kFlagUpper);
  if (r == q) return nullptr;
  r = ScanAny(r, end, kFlagLower);
  const uint8_t* k = MatchContractionCaseless(r, end);
  return k != nullptr ? k : r;
}

// o200k_base (also o200k_harmony):
//   [^\r\n\p{L}\p{N}]?[U]*[W]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//   |[^\r\n\p{L}\p{N}]?[U]+[W]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//   |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Note \p{M} is not \p{L}: a mark may be the optional prefix and is also in U and W.
[[gnu::always_inline]] inline const uint8_t* NextO200kPiece(const uint8_t* p, const uint8_t* end) {
  const uint8_t b = *p;
  if (b < 0x80) {
    const uint8_t f = kAsciiFlags.flags[b];
    // Fast path for all-ASCII words: [prefix]? [A-Z]* [a-z]* followed by an ASCII byte.
    // ASCII letters are only Lu or Ll, so both letter alternatives end right after the
    // lowercase run (alternative 1 when it is non-empty, else alternative 2); a non-ASCII
    // byte after the run could continue it (marks, other letters), so that case takes the
    // general path below.
    {
      const uint8_t* q = p;
      if (!(f & (kFlagL | kFlagN | kFlagNl))) ++q;  // the optional prefix
      const uint8_t* r = q;
      if (r < end && IsAsciiUpper(*r)) r = SkipByteRange(r + 1, end, 'A', 25, 0);
      r = SkipByteRange(r, end, 'a', 25, 0);
      if (r > q && (r == end || *r < 0x80)) {
        const uint8_t* k = MatchContractionCaseless(r, end);
        return k != nullptr ? k : r;
      }
    }
    if (f & kFlagLower) {  // ASCII lowercase: [W]+ then maybe a contraction.
      const uint8_t* r = ScanAny(p + 1, end, kFlagLower);
      const uint8_t* k = MatchContractionCaseless(r, end);
      return k != nullptr ? k : r;
    }
    if (f & kFlagUpper) {  // ASCII uppercase
      if (const uint8_t* r = MatchUpperStarLowerPlus(p, end)) return r;
      return MatchUpperPlusLowerStar(p, end);
    }
    if (f & kFlagN) {
      const uint8_t* q = p + 1;
      for (int k = 0; k < 2 && q < end; ++k) {
        const Char c = DecodeChar(q, end);
        if (!(c.flags & kFlagN)) break;
        q += c.len;
      }
      return q;
    }
    if (!(f & kFlagNl) && p + 1 < end) {  // the optional prefix, then a letter run
      if (const uint8_t* r = MatchUpperStarLowerPlus(p + 1, end)) return r;
      if (const uint8_t* r = MatchUpperPlusLowerStar(p + 1, end)) return r;
    }
    if (!(f & kFlagWs)) {  // ?[^\s\p{L}\p{N}]+[\r\n/]* without the space
      const uint8_t* q = ScanNone(p + 1, end, kFlagWs | kFlagL | kFlagN);
      while (q < end && (*q == '\r' || *q == '\n' || *q == '/')) ++q;
      return q;
    }
    if (b == ' ' && p + 1 < end) {
      const Char c = DecodeChar(p + 1, end);
      if (!(c.flags & (kFlagWs | kFlagL | kFlagN))) {
        const uint8_t* q = ScanNone(p + 1 + c.len, end, kFlagWs | kFlagL | kFlagN);
        while (q < end && (*q == '\r' || *q == '\n' || *q == '/')) ++q;
        return q;
      }
    }
    return WhitespacePiece(p, end, false, true);
  }
  const Char c = DecodeChar(p, end);
  const bool prefix = !(c.flags & (kFlagL | kFlagN));  // non-ASCII is never \r or \n
  const bool letterish = (c.flags & (kFlagUpper | kFlagLower)) != 0;
  // First alternative: with the prefix taken, then without it.
  if (prefix) {
    if (const uint8_t* r = MatchUpperStarLowerPlus(p + c.len, end)) return r;
  }
  if (letterish) {
    if (const uint8_t* r = MatchUpperStarLowerPlus(p, end)) return r;
  }
  // Second alternative.
  if (prefix) {
    if (const uint8_t* r = MatchUpperPlusLowerStar(p + c.len, end)) return r;
  }
  if (letterish) {
    if (const uint8_t* r = MatchUpperPlusLowerStar(p, end)) return r;
  }
  if (c.flags & kFlagN) {
    const uint8_t* q = p + c.len;
    for (int k = 0; k < 2 && q < end; ++k) {
      const Char d = DecodeChar(q, end);
      if (!(d.flags & kFlagN)) break;
      q += d.len;
    }
    return q;
  }
  if (!(c.flags & kFlagWs)) {
    const uint8_t* q = ScanNone(p + c.len, end, kFlagWs | kFlagL | kFlagN);
    while (q < end && (*q == '\r' || *q == '\n' || *q == '/')) ++q;
    return q;
  }
  return WhitespacePiece(p, end, false, true);
}

// r50k_base / p50k_base / gpt2, current upstream form (case-sensitive contractions):
//   '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
inline const uint8_t* NextR50kPiece(const uint8_t* p, const uint8_t* end) {
  if (*p == '\'' && end - p >= 2) {
    const uint8_t c1 = p[1];
    if (c1 == 's' || c1 == 'd' || c1 == 'm' || c1 == 't') return p + 2;
    if (end - p >= 3) {
      const uint8_t c2 = p[2];
      if ((c1 == 'l' && c2 == 'l') || (c1 == 'v' && c2 == 'e') || (c1 == 'r' && c2 == 'e')) {
        return p + 3;
      }
    }
  }
  const uint8_t* q = (*p == ' ' && p + 1 < end) ? p + 1 : p;
  const Char c = DecodeChar(q, end);
  if (c.flags & kFlagL) return ScanAny(q + c.len, end, kFlagL);
  if (c.flags & kFlagN) return ScanAny(q + c.len, end, kFlagN);
  if (!(c.flags & kFlagWs)) return ScanNone(q + c.len, end, kFlagWs | kFlagL | kFlagN);
  return WhitespacePiece(p, end, true, false);
}

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_H_
