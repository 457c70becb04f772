// tests/tokenizer/reference_bpe.h: tiktoken's byte pair merge written out the plain way, the
// oracle for both encoders in lib/tokenizer (tests and tests/fuzz/bpe_fuzzer.cc).
#ifndef MODEENVOY_TESTS_TOKENIZER_REFERENCE_BPE_H_
#define MODEENVOY_TESTS_TOKENIZER_REFERENCE_BPE_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "lib/tokenizer/vocab.h"

namespace modeenvoy::tokenizer_internal {

// tiktoken's _byte_pair_merge as specified: start from single bytes; repeatedly merge the
// adjacent pair whose concatenated bytes have the lowest rank, the leftmost on ties; stop when
// no adjacent concatenation is a token. O(n^2): for pieces of a few kilobytes at most.
inline std::vector<uint32_t> ReferenceMerge(const Vocab& v, std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  std::vector<size_t> starts;  // part i is [starts[i], starts[i+1])
  for (size_t i = 0; i <= s.size(); ++i) starts.push_back(i);
  for (;;) {
    uint32_t best = kNoRank;
    size_t at = 0;
    for (size_t i = 0; i + 2 < starts.size(); ++i) {
      const uint32_t r = v.Find(p + starts[i], starts[i + 2] - starts[i]);
      if (r < best) {
        best = r;
        at = i;
      }
    }
    if (best == kNoRank) break;
    starts.erase(starts.begin() + static_cast<ptrdiff_t>(at) + 1);
  }
  std::vector<uint32_t> out;
  for (size_t i = 0; i + 1 < starts.size(); ++i) {
    out.push_back(v.Find(p + starts[i], starts[i + 1] - starts[i]));
  }
  return out;
}

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_TESTS_TOKENIZER_REFERENCE_BPE_H_
