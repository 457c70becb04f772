// lib/tokenizer/bpe.h: tiktoken's byte pair merge loop (MergeSmall for short pieces,
// MergeLarge for any length), where encoded tokens go (sinks), and a per-thread memo of
// encoded pieces. The linear-time backtracking encoder, used for most pieces, is in
// backtrack.h; encoding.cc's EncodePiece picks one per piece.
// Sinks receive the resulting ranks in order: TokenSink appends them, CountSink counts them.
#ifndef MODEENVOY_LIB_TOKENIZER_BPE_H_
#define MODEENVOY_LIB_TOKENIZER_BPE_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "lib/tokenizer/vocab.h"
#include "modeenvoy/export.h"

namespace modeenvoy::tokenizer_internal {

struct TokenSink {
  std::vector<uint32_t>* out;
  void Push(uint32_t t) { out->push_back(t); }
};

struct CountSink {
  size_t count = 0;
  void Push(uint32_t) { ++count; }
};

// The longest piece MergeSmall takes. Which pieces it gets is EncodePiece's choice
// (encoding.cc): ASCII pieces of up to 12 bytes; the backtracking encoder (backtrack.h) the rest.
inline constexpr size_t kSmallPieceMax = 32;

// tiktoken's merge loop on a short piece: arrays on the stack, a linear scan over the live
// parts for the lowest-ranked pair per merge. O(n^2), but for a few bytes it mostly touches
// the small rank tables (byte pairs, 3-4 byte keys) that stay in cache, where the
// backtracking encoder walks a trie of megabytes.
template <class Sink>
void MergeSmall(const Vocab& vocab, const uint8_t* p, size_t n, Sink& sink) {
  // REQUIRES: 2 <= n <= kSmallPieceMax. Parts are named by their start offset, so offset
  // order is left-to-right order (ties go leftmost); part i spans [i, next[i]). A merged-away
  // part is unlinked rather than shifted out, and the minimum is searched over live parts.
  uint8_t next[kSmallPieceMax + 1];
  uint8_t prev[kSmallPieceMax + 1];
  uint32_t pair[kSmallPieceMax + 1];
  uint32_t tok[kSmallPieceMax + 1];
  for (size_t i = 0; i < n; ++i) {
    next[i] = static_cast<uint8_t>(i + 1);
    prev[i] = static_cast<uint8_t>(i - 1);
    tok[i] = vocab.ByteRank(p[i]);
  }
  for (size_t i = 0; i + 1 < n; ++i) pair[i] = vocab.PairRank(p[i], p[i + 1]);
  pair[n - 1] = kNoRank;
  const uint32_t end = static_cast<uint32_t>(n);
  for (;;) {
    // The lowest (rank, offset): lowest rank, leftmost on ties. Branch-free: which pair wins
    // is data, and a mispredicted compare per part cost more than the whole lookup.
    uint64_t min = ~uint64_t{0};
    for (uint32_t i = 0; i < end; i = next[i]) min = std::min(min, uint64_t{pair[i]} << 32 | i);
    const auto best = static_cast<uint32_t>(min >> 32);
    const auto bi = static_cast<uint32_t>(min);
    if (best == kNoRank) break;
    const uint32_t j = next[bi];
    const uint32_t k = next[j];
    tok[bi] = best;
    next[bi] = static_cast<uint8_t>(k);
    if (k < end) {
      prev[k] = static_cast<uint8_t>(bi);
      pair[bi] = vocab.Find(p + bi, next[k] - bi);
    } else {
      pair[bi] = kNoRank;
    }
    if (bi > 0) {
      const uint32_t h = prev[bi];
      pair[h] = vocab.Find(p + h, k - h);
    }
  }
  for (uint32_t i = 0; i < end; i = next[i]) sink.Push(tok[i]);
}

// The same loop for pieces of any length, for vocabularies the backtracking encoder cannot
// serve (BacktrackEncoder::usable()): a doubly linked list of parts plus a tournament tree of
// (rank, offset) minima, O(n log n) (bpe.cc).

// Counts elementary steps of MergeLarge (rank lookups + tree node updates); tests use it to
// prove near-linear work on long pieces without timing anything.
struct BpeWork {
  size_t steps = 0;
};

// Scratch space reused across calls on one thread.
struct LargeMergeScratch {
  std::vector<uint32_t> next, prev, tok;
  std::vector<uint64_t> tree;
};

// MODEENVOY_EXPORT here: private to lib/, but exported from a shared build for the tests,
// benchmarks and fuzzers.
MODEENVOY_EXPORT void MergeLargeImpl(const Vocab& vocab, const uint8_t* p, size_t n,
                                     LargeMergeScratch& s, BpeWork* work);

template <class Sink>
void MergeLarge(const Vocab& vocab, const uint8_t* p, size_t n, Sink& sink,
                BpeWork* work = nullptr) {
  thread_local LargeMergeScratch scratch;
  MergeLargeImpl(vocab, p, n, scratch, work);
  for (size_t i = 0; i < n; i = scratch.next[i]) sink.Push(scratch.tok[i]);
  // 28 to 44 bytes per input byte: keep it for pieces up to 64 KiB, but do not let one huge
  // unsplit input pin hundreds of megabytes to a thread for its lifetime.
  if (n > (size_t{1} << 16)) scratch = LargeMergeScratch();
}

// Collects the tokens of a piece of up to kMaxPiece bytes on the stack.
struct ArraySink {
  static constexpr size_t kMaxPiece = 64;
  uint32_t tokens[kMaxPiece];
  size_t count = 0;
  void Push(uint32_t t) { tokens[count++] = t; }
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_BPE_H_
