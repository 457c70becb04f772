// tests/fuzz/tokenizer_fuzzer.cc: arbitrary bytes through every encoding.
//   MODEENVOY_TOKENIZER_DIR=.data/tokenizers tokenizer_fuzzer -max_total_time=60
// Checks, for any input (valid or invalid UTF-8): DecodeBytes(Encode(x)) == x, counts equal
// encoded lengths, every id decodes, Decode never fails on our own ids, and with all special
// tokens allowed the round trip still holds, and that the piece cache never changes a result:
// the ids with the default cache (warm with earlier inputs, again, and after another encoding
// filled it with its tokens of the same pieces) and, for one input in eight, with caching off
// and with a cache of one set (evicting all the time) are the same. Without the rank files it
// fuzzes a small synthetic vocabulary instead (and says so once). The pre-tokenizer: every
// input is cut into pieces by each pattern's per-character splitter and by the block-mask
// splitter with each classifier (scalar, SSE2, AVX2 where the CPU has it); the pieces must
// be the same.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/tokenizer/pretokenize.h"
#include "lib/tokenizer/pretokenize_simd.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/rank_file.h"

namespace {

std::vector<std::shared_ptr<const modeenvoy::Encoding>>* Encodings() {
  static auto* encs = [] {
    auto* v = new std::vector<std::shared_ptr<const modeenvoy::Encoding>>();
    for (const char* name : {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"}) {
      auto enc = modeenvoy::GetEncoding(name);
      if (enc.ok()) v->push_back(*enc);
    }
    if (v->empty()) {
      std::fprintf(stderr, "tokenizer_fuzzer: no rank files (set MODEENVOY_TOKENIZER_DIR); "
                           "fuzzing a synthetic vocabulary\n");
      const std::string file = modeenvoy::tokenizer_test::SmallRankFile(
          {"ab", "abab", "  ", "\n\n", "th", "the", "\xe6\xbc", "\xe6\xbc\xa2"});
      for (auto pattern : {modeenvoy::SplitPattern::kCl100k, modeenvoy::SplitPattern::kO200k,
                           modeenvoy::SplitPattern::kR50k, modeenvoy::SplitPattern::kLlama3}) {
        modeenvoy::EncodingSpec spec;
        spec.name = "synthetic";
        spec.pattern = pattern;
        spec.special_tokens = {{"<|endoftext|>", 1000}};
        auto enc = modeenvoy::Encoding::Create(spec, file);
        if (!enc.ok()) std::abort();
        v->push_back(std::shared_ptr<const modeenvoy::Encoding>(std::move(*enc)));
      }
    }
    return v;
  }();
  return encs;
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzzer: check failed: %s\n", what);
    std::abort();
  }
}

namespace ti = modeenvoy::tokenizer_internal;

// The piece ends of `text` under kPattern, cut by the per-character splitter (classify ==
// nullptr) or by the block-mask splitter with `classify`.
template <modeenvoy::SplitPattern kPattern>
void PieceEnds(std::string_view text, ti::ClassifyFn classify, std::vector<size_t>* out) {
  out->clear();
  const auto* const begin = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* p = begin;
  const uint8_t* const end = p + text.size();
  ti::MaskSplitter<kPattern> masks(classify);
  while (p < end) {
    const uint8_t* q;
    if (classify != nullptr) {
      q = masks.Next(p, end);
    } else if constexpr (kPattern == modeenvoy::SplitPattern::kCl100k) {
      q = ti::NextCl100kPiece<true>(p, end);
    } else if constexpr (kPattern == modeenvoy::SplitPattern::kLlama3) {
      q = ti::NextCl100kPiece<false>(p, end);
    } else if constexpr (kPattern == modeenvoy::SplitPattern::kO200k) {
      q = ti::NextO200kPiece(p, end);
    } else {
      q = ti::NextR50kPiece(p, end);
    }
    Check(q > p && q <= end, "pre-tokenizer makes progress");
    out->push_back(static_cast<size_t>(q - begin));
    p = q;
  }
}

template <modeenvoy::SplitPattern kPattern>
void CheckSplitters(std::string_view text) {
  static const std::vector<ti::ClassifyFn> classifiers = [] {
    std::vector<ti::ClassifyFn> v;
    for (auto mode : {ti::PretokenizeMode::kMasksScalar, ti::PretokenizeMode::kMasksSse2,
                      ti::PretokenizeMode::kMasksAvx2}) {
      // ClassifierFor gives the scalar classifier for modes this build lacks; SetPretokenizeMode
      // is not used here because it is global.
      const ti::ClassifyFn f = ti::ClassifierFor(mode);
#if defined(__x86_64__) || defined(__i386__)
      if (mode == ti::PretokenizeMode::kMasksAvx2 && !__builtin_cpu_supports("avx2")) continue;
#endif
      v.push_back(f);
    }
    return v;
  }();
  std::vector<size_t> want, got;
  PieceEnds<kPattern>(text, nullptr, &want);
  for (ti::ClassifyFn f : classifiers) {
    PieceEnds<kPattern>(text, f, &got);
    Check(got == want, "block-mask pieces == per-character pieces");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& encs = *Encodings();
  if (size == 0) return 0;
  const modeenvoy::Encoding& enc = *encs[data[0] % encs.size()];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  // One pattern per input (chosen by the last byte, so the fuzzer reaches all four with any
  // encoding), to keep the rate: four splits of the text, no vocabulary lookups.
  switch (data[size - 1] % 4) {
    case 0:
      CheckSplitters<modeenvoy::SplitPattern::kCl100k>(text);
      break;
    case 1:
      CheckSplitters<modeenvoy::SplitPattern::kLlama3>(text);
      break;
    case 2:
      CheckSplitters<modeenvoy::SplitPattern::kO200k>(text);
      break;
    default:
      CheckSplitters<modeenvoy::SplitPattern::kR50k>(text);
      break;
  }

  // The piece cache. Every input is encoded with the default cache, warm with the pieces of
  // the inputs before it (of every encoding), twice, and after another encoding saw the same
  // text. One input in eight is also encoded with caching off and with a tiny cache (one
  // set, constant eviction) and all must agree: those checks reallocate the thread's cache
  // (the default bound), so doing them on every input would cut the rate roughly by ten.
  const std::vector<modeenvoy::Token> ids = enc.EncodeOrdinary(text);
  Check(enc.EncodeOrdinary(text) == ids, "default cache, warm == first");
  const modeenvoy::Encoding& other = *encs[(data[0] + 1u) % encs.size()];
  other.EncodeOrdinary(text);
  Check(enc.EncodeOrdinary(text) == ids, "default cache after another encoding == first");
  if ((data[0] / encs.size()) % 8 == 0) {
    modeenvoy::SetPieceCacheBytes(0);
    const std::vector<modeenvoy::Token> uncached = enc.EncodeOrdinary(text);
    Check(ids == uncached, "default cache == uncached");
    modeenvoy::SetPieceCacheBytes(512);
    Check(enc.EncodeOrdinary(text) == uncached, "tiny cache == uncached");
    Check(enc.EncodeOrdinary(text) == uncached, "tiny cache, again == uncached");
    // Restored so the remaining checks and the next inputs run as production does.
    modeenvoy::SetPieceCacheBytes(modeenvoy::kDefaultPieceCacheBytes);
  }
  auto bytes = enc.DecodeBytes(ids);
  Check(bytes.ok() && *bytes == text, "DecodeBytes(EncodeOrdinary(x)) == x");
  Check(enc.CountOrdinary(text) == ids.size(), "CountOrdinary == size");
  Check(enc.Decode(ids).ok(), "Decode of own ids");
  for (modeenvoy::Token t : ids) Check(t < enc.n_vocab(), "id < n_vocab");

  auto with_special = enc.Encode(text, modeenvoy::SpecialTokenSet::All());
  Check(with_special.ok(), "Encode with all specials allowed");
  auto back = enc.DecodeBytes(*with_special);
  Check(back.ok() && *back == text, "round trip with specials");
  auto count = enc.Count(text, modeenvoy::SpecialTokenSet::All());
  Check(count.ok() && *count == with_special->size(), "Count == size with specials");
  // Disallowed specials: either an error or identical to the ordinary encoding.
  auto strict = enc.Encode(text);
  Check(!strict.ok() || *strict == ids, "default Encode == EncodeOrdinary when it succeeds");
  return 0;
}
