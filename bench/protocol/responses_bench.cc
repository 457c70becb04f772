// bench/protocol/responses_bench.cc: the "openai_responses" dialect's ingress costs (issue 11's
// targets, one core: <= 5 us to translate a 1 KB Responses request, <= 1 us per streamed
// event). The egress side (encode a request, decode a Responses stream) runs in
// dialect_bench.cc with every other dialect.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=Responses
// BM_ResponsesDecodeRequest/<KB>: a Responses request body (instructions, message items, a
//   function call and its output, a function tool, text.format) -> the unified ChatRequest.
// BM_ResponsesEncodeStream: 64 text chunks, the finish and the usage chunk -> the Responses
//   event sequence (created, in_progress, item and part added, 64 deltas, the done events,
//   completed); reported per event written (per_event).
// BM_ResponsesEncodeResponse: a whole unified answer (text and a tool call) -> the response
//   object.
// BM_ResponsesIngressParseRequest/<KB>: what the engine does per request at POST
//   /v1/responses (modeenvoy/ingress/responses.h): ParseRequest, then ForRequest (the echoed
//   request members read for the response objects).
// BM_ResponsesTranslatedRequest/<KB>/<provider>: that, then the request written for an openai
//   (0) or anthropic (1) provider: the whole per-attempt translation.
// BM_ResponsesIngressRenderStream: the bound codec's stream renderer over the unified chunks
//   of BM_ResponsesEncodeStream, echoed members patched into the events carrying the response
//   object; reported per event rendered (per_event).
// BM_ResponsesStateRead/<KB>: what the endpoint's state filter (lib/responses_ingress/state.cc)
//   reads of each request body: the echo (EchoOf) and, from it, store, previous_response_id
//   and instructions (StateMembersOf).
// BM_ResponsesStateReadDom/<KB>: the read the filter no longer does (until session 9 it
//   parsed the body with nlohmann for those three members, besides the echo): kept as the
//   reference that the figures in docs/benchmarks.md compare with.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

std::string Words(size_t bytes, uint32_t seed) {
  static const char* const kWords[] = {"the", "gateway", "routes", "each", "request", "to",
                                       "a", "model", "and", "returns", "tokens", "café",
                                       "\\\"quoted\\\"", "line\\n", "日本語", "for", "every"};
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

// A Responses request body of about `bytes`.
std::string RequestBody(size_t bytes) {
  std::string items;
  auto message = [&](const char* role, uint32_t seed) {
    items += std::string(R"({"type":"message","role":")") + role +
             R"(","content":[{"type":"input_text","text":")" + Words(150, seed) + R"("}]},)";
  };
  std::string tail =
      R"({"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},)"
      R"({"type":"function_call_output","call_id":"call_1","output":"sunny, 21 C"}],)"
      R"("tools":[{"type":"function","name":"get_weather","description":"Weather for a city",)"
      R"("parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],)"
      R"("text":{"format":{"type":"json_schema","name":"answer","schema":{"type":"object"}}},)"
      R"("max_output_tokens":512,"temperature":0.7,"store":true,"stream":true})";
  std::string head = R"({"model":"bench-model","instructions":")" + Words(100, 1) +
                     R"(","input":[)";
  uint32_t seed = 2;
  while (head.size() + items.size() + tail.size() < bytes) {
    message(seed % 2 == 0 ? "user" : "assistant", seed);
    ++seed;
  }
  return head + items + tail;
}

void BM_ResponsesDecodeRequest(benchmark::State& state) {
  std::unique_ptr<Dialect> dialect = *NewDialect("openai_responses");
  WireRequest wire;
  wire.target = "/v1/responses";
  wire.body = RequestBody(static_cast<size_t>(state.range(0)) * 1024);
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = dialect->DecodeRequest(wire);
    if (!chat.ok()) {
      state.SkipWithError(std::string(chat.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(chat->messages.data());
  }
  state.counters["body_bytes"] = static_cast<double>(wire.body.size());
}
BENCHMARK(BM_ResponsesDecodeRequest)->Arg(1)->Arg(4);

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

void BM_ResponsesEncodeStream(benchmark::State& state) {
  std::unique_ptr<Dialect> dialect = *NewDialect("openai_responses");
  const std::vector<ChatCompletionChunk> chunks = Answer();
  std::string out;
  size_t events = 0;
  for (auto _ : state) {
    std::unique_ptr<StreamEncoder> encoder = dialect->NewStreamEncoder();
    out.clear();
    for (const ChatCompletionChunk& c : chunks) {
      if (!encoder->Encode(c, &out).ok()) {
        state.SkipWithError("encode failed");
        return;
      }
    }
    (void)encoder->Finish(&out);
    benchmark::DoNotOptimize(out.data());
    if (events == 0) {
      for (size_t at = out.find("\n\n"); at != std::string::npos; at = out.find("\n\n", at + 2)) {
        ++events;
      }
    }
  }
  state.counters["events"] = static_cast<double>(events);
  state.counters["per_event"] = benchmark::Counter(
      static_cast<double>(events) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ResponsesEncodeStream);

void BM_ResponsesEncodeResponse(benchmark::State& state) {
  std::unique_ptr<Dialect> dialect = *NewDialect("openai_responses");
  ChatCompletion c;
  c.id = "chatcmpl-bench";
  c.created = 1700000000;
  c.model = "bench-model";
  ChatChoice& choice = c.choices.emplace_back();
  choice.message.content = Words(1000, 3);
  ToolCall call;
  call.id = "call_1";
  call.function = FunctionCall{"get_weather", R"({"city":"Paris"})", {}};
  choice.message.tool_calls.push_back(call);
  choice.finish_reason = "tool_calls";
  c.usage.emplace();
  c.usage->prompt_tokens = 100;
  c.usage->completion_tokens = 250;
  c.usage->total_tokens = 350;
  for (auto _ : state) {
    absl::StatusOr<std::string> body = dialect->EncodeResponse(c);
    benchmark::DoNotOptimize(body->data());
  }
}
BENCHMARK(BM_ResponsesEncodeResponse);

void BM_ResponsesIngressParseRequest(benchmark::State& state) {
  HttpRequest request;
  request.method = "POST";
  request.path = "/v1/responses";
  request.body = RequestBody(static_cast<size_t>(state.range(0)) * 1024);
  const std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = codec->ParseRequest(request);
    if (!chat.ok()) {
      state.SkipWithError(std::string(chat.status().message()).c_str());
      break;
    }
    std::shared_ptr<const IngressCodec> bound = codec->ForRequest(request, *chat);
    benchmark::DoNotOptimize(bound.get());
  }
  state.counters["body_bytes"] = static_cast<double>(request.body.size());
}
BENCHMARK(BM_ResponsesIngressParseRequest)->Arg(1)->Arg(4);

// What translating a Responses request costs end to end: BM_ResponsesIngressParseRequest, then
// the unified request written for the attempt's provider (arg 2: 0 openai, 1 anthropic), as
// the engine does for every attempt of POST /v1/responses.
void BM_ResponsesTranslatedRequest(benchmark::State& state) {
  HttpRequest request;
  request.method = "POST";
  request.path = "/v1/responses";
  request.body = RequestBody(static_cast<size_t>(state.range(0)) * 1024);
  const std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  const bool anthropic = state.range(1) == 1;
  std::unique_ptr<Dialect> provider = *NewDialect(anthropic ? "anthropic" : "openai");
  DialectCall call;
  call.model = anthropic ? "claude-sonnet-4-5-20250929" : "gpt-4o";
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = codec->ParseRequest(request);
    if (!chat.ok()) {
      state.SkipWithError(std::string(chat.status().message()).c_str());
      break;
    }
    std::shared_ptr<const IngressCodec> bound = codec->ForRequest(request, *chat);
    WireRequest wire;
    absl::Status s = provider->EncodeRequest(*chat, call, &wire);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(bound.get());
    benchmark::DoNotOptimize(wire.body.data());
  }
  state.counters["body_bytes"] = static_cast<double>(request.body.size());
}
BENCHMARK(BM_ResponsesTranslatedRequest)->Args({1, 0})->Args({1, 1})->Args({4, 0})->Args({4, 1});

void BM_ResponsesIngressRenderStream(benchmark::State& state) {
  HttpRequest request;
  request.method = "POST";
  request.path = "/v1/responses";
  request.body = RequestBody(1024);
  const std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  absl::StatusOr<ChatRequest> chat = codec->ParseRequest(request);
  if (!chat.ok()) {
    state.SkipWithError("parse failed");
    return;
  }
  const std::shared_ptr<const IngressCodec> bound = codec->ForRequest(request, *chat);
  std::vector<std::string> frames;
  for (const ChatCompletionChunk& c : Answer()) frames.push_back(SerializeChatCompletionChunk(c));
  frames.emplace_back(kSseDoneData);
  std::vector<SseEvent> out;
  size_t events = 0;
  for (auto _ : state) {
    std::unique_ptr<StreamTranslator> renderer = bound->NewStreamRenderer();
    out.clear();
    for (const std::string& data : frames) {
      if (!renderer->Translate(StreamFrame{"", data}, &out).ok()) {
        state.SkipWithError("render failed");
        return;
      }
    }
    benchmark::DoNotOptimize(out.data());
    events = out.size();
  }
  state.counters["events"] = static_cast<double>(events);
  state.counters["per_event"] = benchmark::Counter(
      static_cast<double>(events) * static_cast<double>(state.iterations()),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ResponsesIngressRenderStream);

void BM_ResponsesStateRead(benchmark::State& state) {
  const std::string body = RequestBody(static_cast<size_t>(state.range(0)) * 1024);
  for (auto _ : state) {
    const responses_internal::Echo echo = responses_internal::EchoOf(body);
    responses_internal::StateMembers m = responses_internal::StateMembersOf(echo);
    benchmark::DoNotOptimize(m.store);
    benchmark::DoNotOptimize(echo.data());
  }
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_ResponsesStateRead)->Arg(1)->Arg(4);

void BM_ResponsesStateReadDom(benchmark::State& state) {
  const std::string body = RequestBody(static_cast<size_t>(state.range(0)) * 1024);
  for (auto _ : state) {
    nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    bool store = true;
    std::string previous;
    if (auto it = doc.find("store"); it != doc.end() && it->is_boolean()) store = it->get<bool>();
    if (auto it = doc.find("previous_response_id"); it != doc.end() && it->is_string()) {
      previous = it->get<std::string>();
    }
    const bool instructions = doc.contains("instructions") && doc["instructions"].is_string();
    benchmark::DoNotOptimize(store);
    benchmark::DoNotOptimize(previous.data());
    benchmark::DoNotOptimize(instructions);
  }
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_ResponsesStateReadDom)->Arg(1)->Arg(4);

}  // namespace
}  // namespace modeenvoy
