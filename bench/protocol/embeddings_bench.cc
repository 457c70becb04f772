// bench/protocol/embeddings_bench.cc: embeddings translation costs per embedding dialect
// (protocol/embeddings.h, Dialect::EncodeEmbeddingsRequest / DecodeEmbeddingsResponse), for
// 1 and 100 inputs of ~1 KB each.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=Embeddings
// BM_EmbeddingsParseRequest/<n>: the client's OpenAI body -> EmbeddingsRequest (once per
//   request, whatever the provider).
// BM_EmbeddingsEncodeRequest/<dialect>/<n>: EmbeddingsRequest -> the provider's body (per
//   attempt).
// BM_EmbeddingsDecodeResponse/<dialect>/<n>: the provider's 2xx body (n vectors of 1024
//   floats, written as the provider writes them) -> EmbeddingsResponse -> the client's body
//   (floats, or base64 for "/base64"): everything the gateway does with an answer.
// bedrock runs Titan for 1 input (one inputText per call) and Cohere-on-Bedrock for 100.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/embeddings.h"

namespace modeenvoy {
namespace {

constexpr int kWidth = 1024;

std::string Text(size_t bytes, uint32_t seed) {
  static const char* const kWords[] = {"the", "gateway", "embeds", "each", "document", "for",
                                       "search", "café", "\"quoted\"", "line\n", "日本語", "and"};
  std::string out;
  uint32_t x = seed * 2654435761u + 1;
  while (out.size() < bytes) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out += kWords[x % (sizeof(kWords) / sizeof(kWords[0]))];
    out += ' ';
  }
  return out;
}

std::string ClientBody(int n) {
  std::string body = R"({"model":"bench-embed","input":[)";
  for (int i = 0; i < n; ++i) {
    if (i != 0) body += ",";
    body += "\"";
    for (char c : Text(1000, i + 1)) {
      if (c == '"') {
        body += "\\\"";
      } else if (c == '\n') {
        body += "\\n";
      } else {
        body += c;
      }
    }
    body += "\"";
  }
  body += "]}";
  return body;
}

// Float text as providers write it (float32, ~9 significant digits).
std::string Vector(uint32_t seed) {
  std::string out = "[";
  uint32_t x = seed * 2654435761u + 7;
  for (int i = 0; i < kWidth; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    if (i != 0) out += ",";
    const float v = (static_cast<float>(x % 2000001) - 1000000.0f) / 23456789.0f;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", v);
    out += buf;
  }
  out += "]";
  return out;
}

std::string VectorList(int n) {
  std::string out = "[";
  for (int i = 0; i < n; ++i) {
    if (i != 0) out += ",";
    out += Vector(i + 1);
  }
  return out + "]";
}

// The provider's answer for n inputs.
std::string ProviderBody(const std::string& dialect, int n) {
  if (dialect == "openai" || dialect == "azure_openai") {
    std::string data;
    for (int i = 0; i < n; ++i) {
      if (i != 0) data += ",";
      data += R"({"object":"embedding","index":)" + std::to_string(i) + R"(,"embedding":)" +
              Vector(i + 1) + "}";
    }
    return R"({"object":"list","data":[)" + data +
           R"(],"model":"bench-embed","usage":{"prompt_tokens":25000,"total_tokens":25000}})";
  }
  if (dialect == "gemini") {
    std::string out = R"({"embeddings":[)";
    for (int i = 0; i < n; ++i) {
      if (i != 0) out += ",";
      out += R"({"values":)" + Vector(i + 1) + "}";
    }
    return out + "]}";
  }
  if (dialect == "bedrock") {
    if (n == 1) return R"({"embedding":)" + Vector(1) + R"(,"inputTextTokenCount":250})";
    return R"({"embeddings":)" + VectorList(n) +
           R"(,"id":"x","response_type":"embeddings_floats","texts":[]})";
  }
  if (dialect == "cohere") {
    return R"({"id":"x","embeddings":{"float":)" + VectorList(n) +
           R"(},"texts":[],"meta":{"billed_units":{"input_tokens":25000}},)"
           R"("response_type":"embeddings_by_type"})";
  }
  return R"({"model":"bench-embed","embeddings":)" + VectorList(n) +  // ollama
         R"(,"total_duration":1,"load_duration":1,"prompt_eval_count":25000})";
}

std::string Options(const std::string& dialect) {
  if (dialect == "bedrock") return R"({"region":"us-east-1"})";
  return "{}";
}

std::string ProviderModel(const std::string& dialect, int n) {
  if (dialect == "bedrock") return n == 1 ? "amazon.titan-embed-text-v2:0" : "cohere.embed-v4:0";
  return "bench-embed";
}

void BM_EmbeddingsParseRequest(benchmark::State& state, int n) {
  const std::string body = ClientBody(n);
  for (auto _ : state) {
    absl::StatusOr<EmbeddingsRequest> r = ParseEmbeddingsRequest(body);
    if (!r.ok()) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(r);
  }
  state.counters["body_bytes"] = static_cast<double>(body.size());
}

void BM_EmbeddingsEncodeRequest(benchmark::State& state, std::string dialect, int n) {
  auto d = NewDialect(dialect, Options(dialect));
  absl::StatusOr<EmbeddingsRequest> request = ParseEmbeddingsRequest(ClientBody(n));
  if (!d.ok() || !request.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string model = ProviderModel(dialect, n);
  size_t bytes = 0;
  for (auto _ : state) {
    WireRequest wire;
    absl::Status s = (*d)->EncodeEmbeddingsRequest(*request, {.model = model}, &wire);
    if (!s.ok()) state.SkipWithError(std::string(s.message()).c_str());
    bytes = wire.body.size();
    benchmark::DoNotOptimize(wire);
  }
  state.counters["native_bytes"] = static_cast<double>(bytes);
}

void BM_EmbeddingsDecodeResponse(benchmark::State& state, std::string dialect, int n,
                                 EmbeddingEncoding encoding) {
  auto d = NewDialect(dialect, Options(dialect));
  absl::StatusOr<EmbeddingsRequest> request = ParseEmbeddingsRequest(ClientBody(n));
  if (!d.ok() || !request.ok()) {
    state.SkipWithError("setup failed");
    return;
  }
  const std::string model = ProviderModel(dialect, n);
  const std::string body = ProviderBody(dialect, n);
  size_t out_bytes = 0;
  for (auto _ : state) {
    absl::StatusOr<EmbeddingsResponse> r =
        (*d)->DecodeEmbeddingsResponse(body, *request, {.model = model});
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
    std::string out = SerializeEmbeddingsResponse(*r, encoding);
    out_bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.counters["native_bytes"] = static_cast<double>(body.size());
  state.counters["client_bytes"] = static_cast<double>(out_bytes);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}

const bool kRegistered = [] {
  for (int n : {1, 100}) {
    std::string parse = "BM_EmbeddingsParseRequest/";
    parse.append(std::to_string(n));
    benchmark::RegisterBenchmark(parse.c_str(), BM_EmbeddingsParseRequest, n);
  }
  for (const char* name : {"openai", "azure_openai", "gemini", "bedrock", "cohere", "ollama"}) {
    const std::string dialect(name);
    for (int n : {1, 100}) {
      std::string encode = "BM_EmbeddingsEncodeRequest/";
      encode.append(dialect).append("/").append(std::to_string(n));
      benchmark::RegisterBenchmark(encode.c_str(), BM_EmbeddingsEncodeRequest, dialect, n);
      std::string decode = "BM_EmbeddingsDecodeResponse/";
      decode.append(dialect).append("/").append(std::to_string(n));
      benchmark::RegisterBenchmark(decode.c_str(), BM_EmbeddingsDecodeResponse, dialect, n,
                                   EmbeddingEncoding::kFloat);
      std::string b64 = decode;
      b64.append("/base64");
      benchmark::RegisterBenchmark(b64.c_str(), BM_EmbeddingsDecodeResponse, dialect, n,
                                   EmbeddingEncoding::kBase64);
    }
  }
  return true;
}();

}  // namespace
}  // namespace modeenvoy
