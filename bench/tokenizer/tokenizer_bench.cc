// bench/tokenizer/tokenizer_bench.cc: tokenizer throughput (bytes/s) on the corpus that
// scripts/make_tokenizer_corpus.py writes to $MODEENVOY_DATA_DIR/tokenizer-corpus.
//   python3 scripts/make_tokenizer_corpus.py
//   MODEENVOY_DATA_DIR=$PWD/.data build/bench/tokenizer/tokenizer_bench
// Side-by-side numbers against tiktoken come from bench/tokenizer_vs_tiktoken.py.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

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
  const std::string path = DataDir() + "/tokenizer-corpus/" + file;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return nullptr;
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  std::fclose(f);
  return &cache->emplace(file, std::move(data)).first->second;
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

void Register() {
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
    benchmark::RegisterBenchmark((std::string("CountBatch4k/") + enc).c_str(), BM_EncodeBatch, std::string(enc))
        ->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("Load/") + enc).c_str(), BM_Load, std::string(enc))
        ->Unit(benchmark::kMillisecond)->Iterations(3);
  }
}

const int kRegistered = (Register(), 0);

}  // namespace
