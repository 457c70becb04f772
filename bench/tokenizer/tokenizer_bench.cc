// bench/tokenizer/tokenizer_bench.cc: tokenizer throughput (bytes/s) on the corpus that
// scripts/make_tokenizer_corpus.py writes to $MODEENVOY_DATA_DIR/tokenizer-corpus.
//   python3 scripts/make_tokenizer_corpus.py
//   MODEENVOY_DATA_DIR=$PWD/.data build/bench/tokenizer/tokenizer_bench
// Side-by-side numbers against tiktoken come from bench/tokenizer_vs_tiktoken.py.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/tokenizer/backtrack.h"
#include "lib/tokenizer/bpe.h"
#include "lib/tokenizer/pretokenize.h"
#include "lib/tokenizer/vocab.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace {

std::string DataDir() {
  const char* d = std::getenv("MODEENVOY_DATA_DIR");
  return d != nullptr ? d : ".data";
}

const std::string* Corpus(const std::string& file) {
  static auto* cache = new std::map<std::string, std::string>();
  auto it = cache->find(file);
  if (it != cache->end()) return &it->second;
  auto data = modeenvoy::tokenizer_internal::ReadWholeFile(DataDir() + "/tokenizer-corpus/" + file);
  if (!data.ok()) return nullptr;
  return &cache->emplace(file, std::move(*data)).first->second;
}

std::shared_ptr<const modeenvoy::Encoding> Enc(const std::string& name) {
  modeenvoy::EncodingOptions options;
  if (options.tokenizer_dir.empty() && std::getenv("MODEENVOY_TOKENIZER_DIR") == nullptr) {
    options.tokenizer_dir = DataDir() + "/tokenizers";
  }
  auto enc = modeenvoy::GetEncoding(name, options);
  return enc.ok() ? *enc : nullptr;
}

enum Mode { kEncode, kCount };

void BM_Tokenize(benchmark::State& state, const std::string& encoding, const std::string& file,
                 Mode mode) {
  auto enc = Enc(encoding);
  const std::string* text = Corpus(file);
  if (enc == nullptr || text == nullptr) {
    state.SkipWithError("tokenizer data or corpus missing: run scripts/setup.sh and "
                        "scripts/make_tokenizer_corpus.py");
    return;
  }
  size_t tokens = 0;
  for (auto _ : state) {
    if (mode == kEncode) {
      std::vector<modeenvoy::Token> ids = enc->EncodeOrdinary(*text);
      tokens = ids.size();
      benchmark::DoNotOptimize(ids.data());
    } else {
      tokens = enc->CountOrdinary(*text);
      benchmark::DoNotOptimize(tokens);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
  state.counters["tokens"] = static_cast<double>(tokens);
}

void BM_EncodeBatch(benchmark::State& state, const std::string& encoding) {
  auto enc = Enc(encoding);
  const std::string* text = Corpus("bench.txt");
  if (enc == nullptr || text == nullptr) {
    state.SkipWithError("tokenizer data or corpus missing");
    return;
  }
  // 4 kB documents, as a gateway counts many requests.
  std::vector<std::string_view> docs;
  for (size_t i = 0; i + 4096 <= text->size(); i += 4096) docs.push_back(std::string_view(*text).substr(i, 4096));
  for (auto _ : state) {
    auto counts = enc->CountOrdinaryBatch(docs, static_cast<int>(state.range(0)));
    benchmark::DoNotOptimize(counts.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * docs.size() * 4096));
}

// CountOrdinary with the per-thread piece cache bounded at range(0) KiB (0: off). Counters:
// the hit ratio of the first pass over the file from an empty cache (cold_hit_ratio; "hits /
// (hits + misses)" over the pieces that are not single tokens and are short enough to cache),
// of the timed passes after it (warm_hit_ratio), and the bytes the cache allocated.
void BM_PieceCache(benchmark::State& state, const std::string& encoding, const std::string& file) {
  auto enc = Enc(encoding);
  const std::string* text = Corpus(file);
  if (enc == nullptr || text == nullptr) {
    state.SkipWithError("tokenizer data or corpus missing");
    return;
  }
  auto ratio = [](const modeenvoy::PieceCacheStats& s) {
    const double looked_up = static_cast<double>(s.hits + s.misses);
    return looked_up == 0 ? 0.0 : static_cast<double>(s.hits) / looked_up;
  };
  modeenvoy::SetPieceCacheBytes(static_cast<size_t>(state.range(0)) << 10);
  benchmark::DoNotOptimize(enc->CountOrdinary(*text));  // cold pass, untimed
  size_t memory = 0;
  const modeenvoy::PieceCacheStats cold = modeenvoy::ThisThreadPieceCacheStats(&memory);
  modeenvoy::ResetThisThreadPieceCacheStats();
  for (auto _ : state) benchmark::DoNotOptimize(enc->CountOrdinary(*text));
  const modeenvoy::PieceCacheStats warm = modeenvoy::ThisThreadPieceCacheStats();
  modeenvoy::SetPieceCacheBytes(modeenvoy::kDefaultPieceCacheBytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text->size()));
  state.counters["cold_hit_ratio"] = ratio(cold);
  state.counters["warm_hit_ratio"] = ratio(warm);
  state.counters["cold_lookups"] = static_cast<double>(cold.hits + cold.misses);
  state.counters["cache_bytes"] = static_cast<double>(memory);
}

void BM_Load(benchmark::State& state, const std::string& encoding) {
  const std::string path = DataDir() + "/tokenizers/" + encoding + ".tiktoken";
  auto spec = modeenvoy::GetEncodingSpec(encoding);
  for (auto _ : state) {
    auto enc = modeenvoy::LoadEncodingFromFile(*spec, path);
    if (!enc.ok()) {
      state.SkipWithError("rank file missing");
      return;
    }
    state.counters["memory_bytes"] = static_cast<double>((*enc)->MemoryUsage());
  }
}

// The two byte pair encoders on the pieces of bench.txt that are not tokens, by script and
// length: the measurement behind EncodePiece's choice (ASCII up to 12 bytes: scan merge;
// the rest: backtracking). ns per piece = time / pieces.
enum Algo { kScanMerge, kBacktrack };

struct MergeCorpus {
  std::unique_ptr<modeenvoy::tokenizer_internal::Vocab> vocab;
  std::unique_ptr<modeenvoy::tokenizer_internal::BacktrackEncoder> bpe;
  std::map<std::string, std::vector<std::string_view>> pieces;  // "ascii/5-8" -> pieces
};

const MergeCorpus* Merges(const std::string& encoding) {
  using namespace modeenvoy::tokenizer_internal;
  static auto* cache = new std::map<std::string, std::unique_ptr<MergeCorpus>>();
  auto it = cache->find(encoding);
  if (it != cache->end()) return it->second.get();
  const std::string* text = Corpus("bench.txt");
  auto vocab = Vocab::ParseFile(DataDir() + "/tokenizers/" + encoding + ".tiktoken");
  if (text == nullptr || !vocab.ok()) return nullptr;
  auto corpus = std::make_unique<MergeCorpus>();
  corpus->vocab = std::move(*vocab);
  corpus->bpe = BacktrackEncoder::Build(*corpus->vocab);
  const auto* p = reinterpret_cast<const uint8_t*>(text->data());
  const uint8_t* end = p + text->size();
  while (p < end) {
    const uint8_t* q = encoding == "o200k_base" ? NextO200kPiece(p, end) : NextCl100kPiece<true>(p, end);
    const size_t len = static_cast<size_t>(q - p);
    if (len >= 2 && len <= kSmallPieceMax && corpus->vocab->Find(p, len) == kNoRank) {
      bool ascii = true;
      for (size_t i = 0; i < len; ++i) ascii = ascii && p[i] < 0x80;
      const char* bucket = len <= 4 ? "2-4" : len <= 8 ? "5-8" : len <= 12 ? "9-12" : len <= 16 ? "13-16" : "17-32";
      corpus->pieces[std::string(ascii ? "ascii/" : "other/") + bucket].push_back(
          std::string_view(reinterpret_cast<const char*>(p), len));
    }
    p = q;
  }
  return (*cache)[encoding] = std::move(corpus), (*cache)[encoding].get();
}

void BM_Merge(benchmark::State& state, const std::string& encoding, const std::string& bucket,
              Algo algo) {
  const MergeCorpus* corpus = Merges(encoding);
  if (corpus == nullptr || corpus->pieces.count(bucket) == 0) {
    state.SkipWithError("tokenizer data or corpus missing");
    return;
  }
  const auto& pieces = corpus->pieces.at(bucket);
  modeenvoy::tokenizer_internal::CountSink sink;
  for (auto _ : state) {
    for (std::string_view piece : pieces) {
      const auto* p = reinterpret_cast<const uint8_t*>(piece.data());
      if (algo == kScanMerge) {
        modeenvoy::tokenizer_internal::MergeSmall(*corpus->vocab, p, piece.size(), sink);
      } else {
        corpus->bpe->Encode(p, piece.size(), sink);
      }
    }
  }
  benchmark::DoNotOptimize(sink.count);
  state.counters["pieces"] = static_cast<double>(pieces.size());
  state.counters["ns_per_piece"] = benchmark::Counter(
      static_cast<double>(pieces.size()), benchmark::Counter::kIsIterationInvariantRate |
                                              benchmark::Counter::kInvert);
}

void Register() {
  for (const char* enc : {"cl100k_base", "o200k_base"}) {
    for (const char* script : {"ascii/", "other/"}) {
      for (const char* len : {"2-4", "5-8", "9-12", "13-16", "17-32"}) {
        for (Algo algo : {kScanMerge, kBacktrack}) {
          const std::string bucket = std::string(script) + len;
          const std::string name = std::string("Merge/") + (algo == kScanMerge ? "scan/" : "backtrack/") +
                                   enc + "/" + bucket;
          benchmark::RegisterBenchmark(name.c_str(), BM_Merge, std::string(enc), bucket, algo)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  for (const char* enc : {"cl100k_base", "o200k_base"}) {
    for (const char* file : {"bench.txt", "bench_prose.txt", "bench_code.txt",
                             "bench_multilingual.txt", "long_letters.txt", "long_digits.txt",
                             "long_cjk.txt"}) {
      for (Mode mode : {kEncode, kCount}) {
        const std::string name = std::string(mode == kEncode ? "Encode/" : "Count/") + enc + "/" + file;
        benchmark::RegisterBenchmark(name.c_str(), BM_Tokenize, std::string(enc), std::string(file), mode)
            ->Unit(benchmark::kMillisecond);
      }
    }
    for (const char* file : {"bench_prose.txt", "bench_code.txt", "bench_multilingual.txt"}) {
      benchmark::RegisterBenchmark((std::string("PieceCache/") + enc + "/" + file).c_str(),
                                   BM_PieceCache, std::string(enc), std::string(file))
          ->Arg(0)->Arg(256)->Arg(1024)->Arg(2048)->Arg(4096)->Arg(8192)->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark((std::string("CountBatch4k/") + enc).c_str(), BM_EncodeBatch, std::string(enc))
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("Load/") + enc).c_str(), BM_Load, std::string(enc))
        ->Unit(benchmark::kMillisecond)->Iterations(3);
  }
}

const int kRegistered = (Register(), 0);

}  // namespace
