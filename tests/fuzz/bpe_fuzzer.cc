// tests/fuzz/bpe_fuzzer.cc: both byte pair encoders against tiktoken's merge loop.
//   MODEENVOY_TOKENIZER_DIR=.data/tokenizers bpe_fuzzer -max_total_time=60
// Each input (up to 512 bytes, treated as one piece) is encoded by the backtracking encoder
// (where usable()), the scan merge (up to 32 bytes) and the heap merge, and compared with the
// plain O(n^2) merge of tests/tokenizer/reference_bpe.h, over cl100k_base and o200k_base (or,
// without the rank files, two synthetic vocabularies: one full of near-ties with a byte
// ranked above tokens made of it, one that only the merge loop can serve); any difference
// aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/tokenizer/backtrack.h"
#include "lib/tokenizer/bpe.h"
#include "lib/tokenizer/vocab.h"
#include "tests/tokenizer/rank_file.h"
#include "tests/tokenizer/reference_bpe.h"

namespace {

using modeenvoy::tokenizer_internal::BacktrackEncoder;
using modeenvoy::tokenizer_internal::Vocab;

struct Encoder {
  std::unique_ptr<Vocab> vocab;
  std::unique_ptr<BacktrackEncoder> bpe;
};

std::vector<Encoder>* Encoders() {
  static auto* encoders = [] {
    auto* v = new std::vector<Encoder>();
    const char* dir = std::getenv("MODEENVOY_TOKENIZER_DIR");
    for (const char* name : {"cl100k_base", "o200k_base"}) {
      if (dir == nullptr) break;
      auto vocab = Vocab::ParseFile(absl::StrCat(dir, "/", name, ".tiktoken"));
      if (absl::IsNotFound(vocab.status())) continue;
      if (!vocab.ok()) std::abort();
      v->push_back(Encoder{std::move(*vocab), nullptr});
    }
    if (v->empty()) {
      std::fprintf(stderr, "bpe_fuzzer: no rank files (set MODEENVOY_TOKENIZER_DIR); "
                           "fuzzing synthetic vocabularies\n");
      // Near-ties, overlaps, partial UTF-8 sequences: what the backtracking encoder serves.
      // Then one where "yz" ranks above "xyz", which only the merge loop gets right.
      // Both rank 'b' above the tokens made of it.
      using modeenvoy::tokenizer_test::SmallRankFile;
      for (const std::string& f :
           {SmallRankFile({"ab", "aa", "aab", "ba", "bab", "abab", "yz", "xyz", "  ", "   ",
                           "\xe6\xbc", "\xe6\xbc\xa2", "\xbc\xa2\xe6", "aaa", "baa"},
                          'b'),
            SmallRankFile({"ab", "aa", "xyz", "yz", "aab", "zx"}, 'b')}) {
        auto vocab = Vocab::Parse(f, "synthetic");
        if (!vocab.ok()) std::abort();
        v->push_back(Encoder{std::move(*vocab), nullptr});
      }
    }
    for (Encoder& e : *v) e.bpe = BacktrackEncoder::Build(*e.vocab);
    return v;
  }();
  return encoders;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "bpe_fuzzer: %s differs from the reference merge\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > 512) return 0;
  const std::string_view piece(reinterpret_cast<const char*>(data), size);
  for (const Encoder& e : *Encoders()) {
    const std::vector<uint32_t> expected =
        modeenvoy::tokenizer_internal::ReferenceMerge(*e.vocab, piece);
    std::vector<uint32_t> got;
    modeenvoy::tokenizer_internal::TokenSink sink{&got};
    if (e.bpe->usable()) {
      e.bpe->Encode(data, size, sink);
      Check(got == expected, "backtracking encoder");
    }
    if (size >= 2 && size <= modeenvoy::tokenizer_internal::kSmallPieceMax) {
      got.clear();
      modeenvoy::tokenizer_internal::MergeSmall(*e.vocab, data, size, sink);
      Check(got == expected, "scan merge");
    }
    got.clear();
    modeenvoy::tokenizer_internal::MergeLarge(*e.vocab, data, size, sink);
    Check(got == expected, "heap merge");
  }
  return 0;
}
