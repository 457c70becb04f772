// lib/tokenizer/pretokenize_simd.h: block-classified pre-tokenization.
//
// The splitters of pretokenize.h decide each piece byte by byte. This one classifies a
// 64-byte window of the text at once into bit masks (one bit per byte: ASCII letter,
// uppercase, lowercase, digit, whitespace, CR/LF, '/', non-ASCII) and finds the end of an
// ASCII piece with a few shifts and count-trailing-zeros, without a branch per character.
// The classification runs with AVX2 or SSE2 (chosen at run time) or a scalar loop; all three
// give the same masks. Whenever a decision would depend on a byte the masks do not settle
// (a non-ASCII character, an apostrophe, the end of the window or of the text), the piece is
// cut by the pretokenize.h function instead, so the pieces are always exactly that
// function's: `tests/tokenizer/pretokenize_test.cc` and the tokenizer fuzzer compare them.
//
//   tokenizer_internal::MaskSplitter<SplitPattern::kO200k> split(Classifier());
//   while (p < end) { const uint8_t* q = split.Next(p, end); ...; p = q; }
//
// Thread safety: a MaskSplitter is per call (not shared); the classifier choice is a global
// read with relaxed atomics.
#ifndef MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_SIMD_H_
#define MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_SIMD_H_

#include <cstdint>

#include "lib/tokenizer/pretokenize.h"
#include "modeenvoy/export.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy::tokenizer_internal {

// The classes of the 64 bytes at a window's base. Bit k is byte base[k]; bits at and past
// `valid` are zero in every mask.
struct BlockMasks {
  uint64_t upper;     // A-Z
  uint64_t lower;     // a-z
  uint64_t digit;     // 0-9
  uint64_t space;     // \t \n \v \f \r and ' ' (the ASCII White_Space characters)
  uint64_t newline;   // \r \n
  uint64_t slash;     // '/'
  uint64_t nonascii;  // bytes >= 0x80
};

// Fills `m` for the `n` bytes at p (REQUIRES: 1 <= n <= 64; p[0..n) readable).
using ClassifyFn = void (*)(const uint8_t* p, int n, BlockMasks* m);

MODEENVOY_EXPORT void ClassifyScalar(const uint8_t* p, int n, BlockMasks* m);
#if defined(__x86_64__) || defined(__i386__)
MODEENVOY_EXPORT void ClassifySse2(const uint8_t* p, int n, BlockMasks* m);
MODEENVOY_EXPORT void ClassifyAvx2(const uint8_t* p, int n, BlockMasks* m);
#endif

// Which pre-tokenizer the encoders use.
enum class PretokenizeMode {
  kReference,     // pretokenize.h per character (MODEENVOY_TOKENIZER_SIMD=off)
  kMasksScalar,   // MaskSplitter with the scalar classifier (=scalar)
  kMasksSse2,     // MaskSplitter with SSE2 (=sse2)
  kMasksAvx2,     // MaskSplitter with AVX2 (=avx2)
};

// The mode in use: set by SetPretokenizeMode, else from $MODEENVOY_TOKENIZER_SIMD read once
// (off, scalar, sse2, avx2; unset or anything else: the best this CPU has), capped at what
// the CPU supports.
MODEENVOY_EXPORT PretokenizeMode CurrentPretokenizeMode();
// Test hook: forces a mode for every thread (capped at what the CPU supports); returns the
// mode actually in effect.
MODEENVOY_EXPORT PretokenizeMode SetPretokenizeMode(PretokenizeMode mode);
// The classifier of a kMasks* mode (nullptr for kReference).
MODEENVOY_EXPORT ClassifyFn ClassifierFor(PretokenizeMode mode);

// The index of the lowest set bit of x at or above `from`, or 64. REQUIRES: from < 64.
inline int NextSetBit(uint64_t x, int from) {
  const uint64_t y = x >> from;
  return y == 0 ? 64 : from + __builtin_ctzll(y);
}

template <SplitPattern kPattern>
class MaskSplitter {
 public:
  explicit MaskSplitter(ClassifyFn classify) : classify_(classify) {}

  // The end of the piece at p (REQUIRES: p < end), the same as pretokenize.h's function for
  // kPattern. Calls must walk one text in order (p is the previous call's result).
  [[gnu::always_inline]] const uint8_t* Next(const uint8_t* p, const uint8_t* end) {
    if (base_ == nullptr || p - base_ >= kRefill) Refill(p, end);
    const int i = static_cast<int>(p - base_);
    const int r = Piece(i);
    if (r > 0) return base_ + r;
    return Reference(p, end);
  }

 private:
  // A window is reclassified once the cursor passes this offset, so a piece that starts
  // before it has at least 16 classified bytes; a piece that runs past the window takes the
  // reference path. 48 rather than 32: a third fewer classifications per byte of prose
  // (pieces average 4-5 bytes there, so few reach the window's end), measured in
  // docs/benchmarks.md (issue 13, part 5).
  static constexpr int kRefill = 48;

  static const uint8_t* Reference(const uint8_t* p, const uint8_t* end) {
    if constexpr (kPattern == SplitPattern::kCl100k) return NextCl100kPiece<true>(p, end);
    if constexpr (kPattern == SplitPattern::kLlama3) return NextCl100kPiece<false>(p, end);
    if constexpr (kPattern == SplitPattern::kO200k) return NextO200kPiece(p, end);
    if constexpr (kPattern == SplitPattern::kR50k) return NextR50kPiece(p, end);
  }

  void Refill(const uint8_t* p, const uint8_t* end) {
    base_ = p;
    const int64_t avail = end - p;
    valid_ = avail >= 64 ? 64 : static_cast<int>(avail);
    classify_(p, valid_, &m_);
    letter_ = m_.upper | m_.lower;
    // Stops of a punctuation run: whitespace, letters, digits, non-ASCII, or no data.
    const uint64_t beyond = valid_ == 64 ? 0 : ~uint64_t{0} << valid_;
    punct_stop_ = m_.space | letter_ | m_.digit | m_.nonascii | beyond;
  }

  // Whether position k settles a run's end: inside the data and ASCII. A run that stops at
  // a non-ASCII byte might continue with it (a letter, digit, mark or space), and one that
  // stops at the window or text end needs the reference's end-of-text rules.
  bool Settled(int k) const { return k < valid_ && !((m_.nonascii >> k) & 1); }

  // The end offset of the piece at offset i, or 0 when the masks do not settle it.
  [[gnu::always_inline]] int Piece(int i) const {
    const uint64_t bit = uint64_t{1} << i;
    if (m_.nonascii & bit) return 0;
    if constexpr (kPattern == SplitPattern::kR50k) {
      return PieceR50k(i);
    } else {
      const uint8_t b = base_[i];
      if (b == '\'') return 0;  // contractions: the reference
      const bool is_letter = (letter_ & bit) != 0;
      const bool is_digit = (m_.digit & bit) != 0;
      const bool is_newline = (m_.newline & bit) != 0;
      // [^\r\n\p{L}\p{N}]? then letters.
      const int q = (is_letter || is_digit || is_newline) ? i : i + 1;
      if (q >= valid_) return 0;
      int r;
      if constexpr (kPattern == SplitPattern::kO200k) {
        r = NextSetBit(~m_.upper, q);
        if (r < 64) r = NextSetBit(~m_.lower, r);
      } else {
        r = NextSetBit(~letter_, q);
      }
      if (r > q) {
        if (!Settled(r)) return 0;
        if constexpr (kPattern == SplitPattern::kO200k) {
          // A contraction starts with an apostrophe; any other settled byte ends the piece
          // (most words: no call, no window check).
          if (base_[r] != '\'') return r;
          const uint8_t* k = MatchContractionCaseless(base_ + r, base_ + valid_);
          // A contraction may run past the window; the reference sees the whole text.
          if (k == nullptr && r + 3 >= valid_) return 0;
          return k != nullptr ? static_cast<int>(k - base_) : r;
        }
        return r;
      }
      // No letter run at q (so the byte at q is not an ASCII letter).
      if (is_digit) {  // \p{N}{1,3}
        const int run = NextSetBit(~m_.digit, i) - i;
        if (run >= 3) return i + 3;
        return Settled(i + run) ? i + run : 0;
      }
      if (!is_newline && !Settled(i + 1)) return 0;  // a non-ASCII letter could follow
      const bool is_space = (m_.space & bit) != 0;
      int s = -1;  // start of a punctuation run
      if (!is_space) {
        s = i + 1;
      } else if (b == ' ' && i + 1 < valid_ && !((punct_stop_ >> (i + 1)) & 1)) {
        s = i + 2;  // " ?[^\s\p{L}\p{N}]+"
      }
      if (s >= 0) {
        const int stop = s >= 64 ? 64 : NextSetBit(punct_stop_, s);
        if (!Settled(stop)) return 0;
        const uint64_t trail = kPattern == SplitPattern::kO200k ? m_.newline | m_.slash : m_.newline;
        const int t = NextSetBit(~trail, stop);
        return t < valid_ ? t : 0;
      }
      return SpacePiece(i, /*newline_rule=*/true);
    }
  }

  // \s*[\r\n] (with newline_rule), \s+(?!\S), \s at whitespace offset i; 0 when the run
  // reaches the window or text end or a non-ASCII character (which may be whitespace).
  int SpacePiece(int i, bool newline_rule) const {
    const int stop = NextSetBit(~m_.space, i);
    if (!Settled(stop)) return 0;
    if (newline_rule) {
      const uint64_t nl = m_.newline & ((uint64_t{1} << stop) - 1) & (~uint64_t{0} << i);
      if (nl != 0) return 64 - __builtin_clzll(nl);  // after the last CR/LF of the run
    }
    return stop - i >= 2 ? stop - 1 : stop;
  }

  // '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s
  int PieceR50k(int i) const {
    if (base_[i] == '\'') return 0;
    int q = i;
    if (base_[i] == ' ') {
      q = i + 1;
      if (!Settled(q)) return 0;
    }
    const uint64_t qbit = uint64_t{1} << q;
    int stop;
    if (letter_ & qbit) {
      stop = NextSetBit(~letter_, q);
    } else if (m_.digit & qbit) {
      stop = NextSetBit(~m_.digit, q);
    } else if (!(m_.space & qbit)) {
      stop = q + 1 >= 64 ? 64 : NextSetBit(punct_stop_, q + 1);
    } else {
      return SpacePiece(i, /*newline_rule=*/false);
    }
    return Settled(stop) ? stop : 0;
  }

  ClassifyFn classify_;
  const uint8_t* base_ = nullptr;
  int valid_ = 0;
  BlockMasks m_{};
  uint64_t letter_ = 0;
  uint64_t punct_stop_ = 0;
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_PRETOKENIZE_SIMD_H_
