#include "lib/tokenizer/bpe.h"

#include <algorithm>

namespace modeenvoy::tokenizer_internal {

// Parts are identified by the byte offset where they start; part i spans [i, next[i]).
// pair[i] is the rank of part i concatenated with its successor (kNoRank if none), and the
// heap holds (rank << 32 | i) entries; an entry is stale when part i is gone or its pair
// rank changed. The pair string of a surviving part only grows, so a stale entry can never
// look current again.
void MergeLargeImpl(const Vocab& vocab, const uint8_t* p, size_t n, LargeMergeScratch& s,
                    BpeWork* work) {
  s.next.resize(n);
  s.prev.resize(n);
  s.pair.resize(n);
  s.tok.resize(n);
  s.heap.clear();
  size_t steps = 0;
  for (size_t i = 0; i < n; ++i) {
    s.next[i] = static_cast<uint32_t>(i + 1);
    s.prev[i] = static_cast<uint32_t>(i - 1);  // wraps for i == 0; never read there
    s.tok[i] = vocab.ByteRank(p[i]);
    s.pair[i] = i + 1 < n ? vocab.PairRank(p[i], p[i + 1]) : kNoRank;
    if (s.pair[i] != kNoRank) s.heap.push_back((uint64_t{s.pair[i]} << 32) | i);
  }
  // Comparisons are the unit of work the linearity test counts.
  auto cmp = [&steps](uint64_t a, uint64_t b) {
    ++steps;
    return a > b;
  };
  std::make_heap(s.heap.begin(), s.heap.end(), cmp);
  const uint32_t end = static_cast<uint32_t>(n);
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), cmp);
    const uint64_t top = s.heap.back();
    s.heap.pop_back();
    const uint32_t i = static_cast<uint32_t>(top);
    const uint32_t rank = static_cast<uint32_t>(top >> 32);
    if (s.pair[i] != rank) continue;  // stale (merged away parts have pair == kNoRank)
    // Merge part i with its successor j.
    const uint32_t j = s.next[i];
    const uint32_t k = s.next[j];
    s.tok[i] = rank;
    s.pair[j] = kNoRank;
    s.next[i] = k;
    if (k < end) s.prev[k] = i;
    if (k < end) {
      s.pair[i] = vocab.Find(p + i, s.next[k] - i);
      ++steps;
      if (s.pair[i] != kNoRank) {
        s.heap.push_back((uint64_t{s.pair[i]} << 32) | i);
        std::push_heap(s.heap.begin(), s.heap.end(), cmp);
      }
    } else {
      s.pair[i] = kNoRank;
    }
    if (i > 0) {
      const uint32_t h = s.prev[i];
      s.pair[h] = vocab.Find(p + h, k - h);
      ++steps;
      if (s.pair[h] != kNoRank) {
        s.heap.push_back((uint64_t{s.pair[h]} << 32) | h);
        std::push_heap(s.heap.begin(), s.heap.end(), cmp);
      }
    }
  }
  if (work != nullptr) work->steps += steps;
}

}  // namespace modeenvoy::tokenizer_internal
