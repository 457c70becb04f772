#include "lib/tokenizer/bpe.h"

namespace modeenvoy::tokenizer_internal {

// Parts are identified by the byte offset where they start; part i spans [i, next[i]).
// The minimum over all adjacent pairs is kept in a tournament tree (a segment tree of
// minima) whose leaf i holds (pair rank << 32 | i) for live part i and kNone otherwise, so
// the root is the lowest rank and, among equal ranks, the leftmost pair: tiktoken's choice.
// A merge changes three leaves (the merged-away part and the two pairs next to the merged
// part), each a walk towards the root that stops at the first unchanged node: O(log n) at
// worst, usually a few levels; no stale entries, no rescans.
void MergeLargeImpl(const Vocab& vocab, const uint8_t* p, size_t n, LargeMergeScratch& s,
                    BpeWork* work) {
  constexpr uint64_t kNone = ~uint64_t{0};
  size_t size = 1;
  while (size < n) size <<= 1;
  s.next.resize(n);
  s.prev.resize(n);
  s.tok.resize(n);
  s.tree.assign(2 * size, kNone);
  uint64_t* const tree = s.tree.data();
  for (size_t i = 0; i < n; ++i) {
    s.next[i] = static_cast<uint32_t>(i + 1);
    s.prev[i] = static_cast<uint32_t>(i - 1);  // wraps for i == 0; never read there
    s.tok[i] = vocab.ByteRank(p[i]);
    const uint32_t rank = i + 1 < n ? vocab.PairRank(p[i], p[i + 1]) : kNoRank;
    if (rank != kNoRank) tree[size + i] = (uint64_t{rank} << 32) | i;
  }
  for (size_t v = size - 1; v >= 1; --v) tree[v] = std::min(tree[2 * v], tree[2 * v + 1]);
  size_t visits = 0;
  auto update = [&](size_t pos, uint32_t rank) {
    size_t v = size + pos;
    tree[v] = rank == kNoRank ? kNone : (uint64_t{rank} << 32) | pos;
    // An unchanged node leaves all its ancestors unchanged.
    for (v >>= 1; v >= 1; v >>= 1) {
      ++visits;
      const uint64_t m = std::min(tree[2 * v], tree[2 * v + 1]);
      if (tree[v] == m) break;
      tree[v] = m;
    }
  };
  const uint32_t end = static_cast<uint32_t>(n);
  size_t finds = 0;
  while (tree[1] != kNone) {
    const uint64_t top = tree[1];
    const uint32_t i = static_cast<uint32_t>(top);
    const uint32_t j = s.next[i];
    const uint32_t k = s.next[j];
    s.tok[i] = static_cast<uint32_t>(top >> 32);
    s.next[i] = k;
    update(j, kNoRank);
    if (k < end) {
      s.prev[k] = i;
      update(i, vocab.Find(p + i, s.next[k] - i));
      ++finds;
    } else {
      update(i, kNoRank);
    }
    if (i > 0) {
      const uint32_t h = s.prev[i];
      update(h, vocab.Find(p + h, k - h));
      ++finds;
    }
  }
  if (work != nullptr) work->steps += n + size + visits + finds;
}

}  // namespace modeenvoy::tokenizer_internal
