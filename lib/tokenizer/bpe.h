// lib/tokenizer/bpe.h: byte pair merging of one pre-tokenized piece, identical to tiktoken.
//
// tiktoken's rule (src/lib.rs, _byte_pair_merge): start from single bytes; repeatedly merge
// the adjacent pair whose concatenated bytes have the lowest rank, the leftmost on ties; stop
// when no adjacent concatenation is a token. Two implementations of the same rule:
//  - MergeSmall: arrays on the stack, a linear scan for the minimum per merge (O(n^2), but n
//    is small and the scan is cache-resident); what tiktoken does for every piece.
//  - MergeLarge: a doubly linked list of parts plus a min-heap of (rank, position) with lazy
//    deletion, O(n log n); position order equals left-to-right order, so ties go leftmost.
// Sinks receive the resulting ranks in order: TokenSink appends them, CountSink counts them.
#ifndef MODEENVOY_LIB_TOKENIZER_BPE_H_
#define MODEENVOY_LIB_TOKENIZER_BPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lib/tokenizer/vocab.h"

namespace modeenvoy::tokenizer_internal {

// Pieces up to this many bytes use MergeSmall.
inline constexpr size_t kSmallPieceMax = 128;

struct TokenSink {
  std::vector<uint32_t>* out;
  void Push(uint32_t t) { out->push_back(t); }
};

struct CountSink {
  size_t count = 0;
  void Push(uint32_t) { ++count; }
};

// Counts elementary steps of MergeLarge (rank lookups + heap comparisons); tests use it to
// prove near-linear work on long pieces without timing anything.
struct BpeWork {
  size_t steps = 0;
};

template <class Sink>
void MergeSmall(const Vocab& vocab, const uint8_t* p, size_t n, Sink& sink) {
  // REQUIRES: 2 <= n <= kSmallPieceMax.
  uint32_t start[kSmallPieceMax + 1];
  uint32_t pair[kSmallPieceMax + 1];
  uint32_t tok[kSmallPieceMax + 1];
  for (size_t i = 0; i < n; ++i) {
    start[i] = static_cast<uint32_t>(i);
    tok[i] = vocab.ByteRank(p[i]);
  }
  start[n] = static_cast<uint32_t>(n);
  for (size_t i = 0; i + 1 < n; ++i) pair[i] = vocab.PairRank(p[i], p[i + 1]);
  pair[n - 1] = kNoRank;
  size_t m = n;  // number of parts; start[m] is the end sentinel
  for (;;) {
    uint32_t best = kNoRank;
    size_t bi = 0;
    for (size_t i = 0; i + 1 < m; ++i) {
      if (pair[i] < best) {
        best = pair[i];
        bi = i;
      }
    }
    if (best == kNoRank) break;
    tok[bi] = best;
    // Remove part bi + 1.
    std::memmove(start + bi + 1, start + bi + 2, (m - bi - 1) * sizeof(uint32_t));
    std::memmove(pair + bi + 1, pair + bi + 2, (m - bi - 2) * sizeof(uint32_t));
    std::memmove(tok + bi + 1, tok + bi + 2, (m - bi - 2) * sizeof(uint32_t));
    --m;
    pair[bi] = bi + 1 < m ? vocab.Find(p + start[bi], start[bi + 2] - start[bi]) : kNoRank;
    if (bi > 0) pair[bi - 1] = vocab.Find(p + start[bi - 1], start[bi + 1] - start[bi - 1]);
  }
  for (size_t i = 0; i < m; ++i) sink.Push(tok[i]);
}

// Scratch space reused across calls on one thread.
struct LargeMergeScratch {
  std::vector<uint32_t> next, prev, pair, tok;
  std::vector<uint64_t> heap;
};

void MergeLargeImpl(const Vocab& vocab, const uint8_t* p, size_t n, LargeMergeScratch& s,
                    BpeWork* work);

template <class Sink>
void MergeLarge(const Vocab& vocab, const uint8_t* p, size_t n, Sink& sink,
                BpeWork* work = nullptr) {
  thread_local LargeMergeScratch scratch;
  MergeLargeImpl(vocab, p, n, scratch, work);
  for (size_t i = 0; i < n; i = scratch.next[i]) sink.Push(scratch.tok[i]);
}

// Encodes one piece that is not itself a token. REQUIRES: n >= 2.
template <class Sink>
inline void BytePairEncode(const Vocab& vocab, const uint8_t* p, size_t n, Sink& sink) {
  if (n <= kSmallPieceMax) {
    MergeSmall(vocab, p, n, sink);
  } else {
    MergeLarge(vocab, p, n, sink);
  }
}

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_BPE_H_
