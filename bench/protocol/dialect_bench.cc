// bench/protocol/dialect_bench.cc: provider dialects' translation costs, for every dialect
// the build registers (protocol/dialect.h). Issue 9's targets, one core: <= 5 us to encode a
// 1 KB request, <= 1 us to decode one streamed chunk.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=Dialect
// BM_DialectEncodeRequest/<dialect>/<KB>: unified ChatRequest -> the provider's body (what
//   the gateway does per attempt; the client body's parse is BM_ParseChatRequest's).
// BM_DialectDecodeStream/<dialect>: the provider's stream bytes (framing included) ->
//   unified chunk events; the stream is the dialect's own encoding of a 64-chunk answer, so
//   every dialect decodes the same content. Reported per chunk (per_chunk).
// BM_DialectDecodeResponse/<dialect>: a whole 2xx body -> unified chat.completion.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

std::string Words(size_t bytes, uint32_t seed) {
  static const char* const kWords[] = {"the", "gateway", "routes", "each", "request", "to",
                                       "a", "model", "and", "returns", "tokens", "café",
                                       "\"quoted\"", "line\n", "日本語", "for", "every"};
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

// A text conversation of about `bytes` (every dialect can express it).
ChatRequest Conversation(size_t bytes) {
  ChatRequest r;
  r.model = "bench-model";
  r.messages.push_back(MakeMessage(Role::kSystem, Words(200, 1)));
  r.temperature = 0.7;
  r.max_tokens = 512;
  uint32_t seed = 2;
  while (SerializeChatRequest(r).size() + 300 < bytes) {
    r.messages.push_back(MakeMessage(Role::kUser, Words(250, seed++)));
    r.messages.push_back(MakeMessage(Role::kAssistant, Words(250, seed++)));
  }
  r.messages.push_back(MakeMessage(Role::kUser, Words(200, seed)));
  return r;
}

// Options a dialect needs to encode the benchmark's streamed request: vertex names a project,
// kserve streams through Triton's generate extension (its v2 infer protocol has no streams).
std::string_view BenchOptions(std::string_view name) {
  if (name == "vertex") return R"({"project":"bench-project"})";
  if (name == "kserve") return R"({"protocol":"generate"})";
  return "{}";
}

std::unique_ptr<Dialect> BenchDialect(const std::string& name) {
  return *NewDialect(name, BenchOptions(name));
}

constexpr int kStreamChunks = 64;

std::vector<ChatCompletionChunk> Answer() {
  std::vector<ChatCompletionChunk> chunks;
  auto chunk = [] {
    ChatCompletionChunk c;
    c.id = "chatcmpl-bench";
    c.created = 1700000000;
    c.model = "bench-model";
    return c;
  };
  for (int i = 0; i < kStreamChunks; ++i) {
    ChatCompletionChunk c = chunk();
    ChunkChoice& choice = c.choices.emplace_back();
    if (i == 0) choice.delta.role = Role::kAssistant;
    choice.delta.content = Words(16, static_cast<uint32_t>(i + 7));
    chunks.push_back(std::move(c));
  }
  ChatCompletionChunk end = chunk();
  end.choices.emplace_back().finish_reason = "stop";
  chunks.push_back(std::move(end));
  ChatCompletionChunk usage = chunk();
  usage.usage.emplace();
  usage.usage->prompt_tokens = 100;
  usage.usage->completion_tokens = kStreamChunks * 4;
  usage.usage->total_tokens = 100 + kStreamChunks * 4;
  chunks.push_back(std::move(usage));
  return chunks;
}

void BM_DialectEncodeRequest(benchmark::State& state, std::string name, size_t kb) {
  std::unique_ptr<Dialect> dialect = BenchDialect(name);
  const ChatRequest request = Conversation(kb * 1024);
  const DialectCall call{.stream = true, .model = "bench-model", .client_headers = nullptr};
  for (auto _ : state) {
    WireRequest wire;
    absl::Status s = dialect->EncodeRequest(request, call, &wire);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(wire.body);
  }
  state.counters["unified_bytes"] = static_cast<double>(SerializeChatRequest(request).size());
}

void BM_DialectDecodeStream(benchmark::State& state, std::string name) {
  std::unique_ptr<Dialect> dialect = BenchDialect(name);
  std::unique_ptr<StreamEncoder> encoder = dialect->NewStreamEncoder();
  std::string native;
  for (const ChatCompletionChunk& c : Answer()) {
    if (!encoder->Encode(c, &native).ok()) {
      state.SkipWithError("the dialect cannot encode the benchmark's stream");
      return;
    }
  }
  (void)encoder->Finish(&native);
  std::vector<StreamFrame> frames;
  std::vector<SseEvent> events;
  for (auto _ : state) {
    std::unique_ptr<FrameParser> parser = *NewFrameParser(dialect->ResponseFraming(true));
    std::unique_ptr<StreamTranslator> decoder = dialect->NewStreamDecoder();
    frames.clear();
    events.clear();
    absl::Status s = parser->Feed(native, &frames);
    if (s.ok()) s = parser->Finish(&frames);
    for (StreamFrame& f : frames) {
      if (s.ok()) s = decoder->Translate(std::move(f), &events);
    }
    if (s.ok()) s = decoder->Finish(&events);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(events.data());
  }
  state.counters["native_bytes"] = static_cast<double>(native.size());
  // Seconds of CPU per chunk (printed with a unit, e.g. "146.9ns").
  state.counters["per_chunk"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * (kStreamChunks + 2),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_DialectDecodeResponse(benchmark::State& state, std::string name) {
  std::unique_ptr<Dialect> dialect = BenchDialect(name);
  ChatCompletion completion;
  completion.id = "chatcmpl-bench";
  completion.created = 1700000000;
  completion.model = "bench-model";
  ChatChoice& choice = completion.choices.emplace_back();
  choice.message.content = Words(1000, 3);
  choice.finish_reason = "stop";
  completion.usage.emplace();
  completion.usage->prompt_tokens = 100;
  completion.usage->completion_tokens = 250;
  completion.usage->total_tokens = 350;
  absl::StatusOr<std::string> native = dialect->EncodeResponse(completion);
  if (!native.ok()) {
    state.SkipWithError(std::string(native.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    std::string body = *native;
    absl::Status s = dialect->DecodeResponse(&body);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(body);
  }
}

const bool kRegistered = [] {
  for (std::string_view view : DialectNames()) {
    std::string name(view);
    for (size_t kb : {1, 100}) {
      std::string label = "BM_DialectEncodeRequest/";
      label.append(name).append("/").append(std::to_string(kb)).append("KB");
      benchmark::RegisterBenchmark(label.c_str(), BM_DialectEncodeRequest, name, kb);
    }
    std::string stream_label = "BM_DialectDecodeStream/";
    stream_label.append(name);
    benchmark::RegisterBenchmark(stream_label.c_str(), BM_DialectDecodeStream, name);
    std::string response_label = "BM_DialectDecodeResponse/";
    response_label.append(name);
    benchmark::RegisterBenchmark(response_label.c_str(), BM_DialectDecodeResponse, name);
  }
  return true;
}();

}  // namespace
}  // namespace modeenvoy
