// bench/protocol/messages_ingress_bench.cc: the Anthropic Messages ingress (POST /v1/messages,
// modeenvoy/ingress/anthropic.h). Issue 11's targets, one core: <= 5 us to translate a 1 KB
// Messages request, <= 1 us per streamed event; the native pass-through does no JSON round trip.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=Messages
// BM_MessagesParseRequest/<KB>: the client's Messages body -> unified ChatRequest.
// BM_MessagesTranslatedRequest/<KB>: parse + re-encode for an Anthropic provider (the path
//   without pass-through: a JSON round trip through the unified model).
// BM_MessagesNativeRequest/<KB>: the pass-through request: the client's bytes with the model
//   spliced (EncodeNativeRequest); compare with the translated path.
// BM_MessagesRenderEvent: one unified chunk -> Anthropic's events (per event).
// BM_MessagesRenderResponse: a unified chat.completion -> an Anthropic message.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

// A Messages request of about `kb` KB: system blocks with cache_control, a tool, a
// tool_use / tool_result turn and text turns (what an agent sends).
std::string MessagesRequest(int kb) {
  std::string text;
  std::string turns;
  int i = 0;
  auto turn = [&](const char* role, const std::string& content) {
    if (!turns.empty()) turns += ',';
    turns += std::string(R"({"role":")") + role + R"(","content":)" + content + "}";
  };
  turn("user", R"("What is the weather in Paris and in Rome today?")");
  turn("assistant",
       R"([{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Paris"}}])");
  turn("user",
       R"([{"type":"tool_result","tool_use_id":"toolu_01A","content":[{"type":"text","text":"sunny, 21 C"}]}])");
  std::string body;
  do {
    turn(i % 2 == 0 ? "assistant" : "user",
         "\"The gateway routes each request to a model and returns tokens for every turn " +
             std::to_string(i) + ".\"");
    ++i;
    body = R"({"model":"claude-sonnet-4-5","max_tokens":1024,"system":[{"type":"text","text":"You are a helpful assistant.","cache_control":{"type":"ephemeral"}}],"tools":[{"name":"get_weather","description":"Weather for a city","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],"tool_choice":{"type":"auto"},"metadata":{"user_id":"u-1"},"messages":[)" +
           turns + "]}";
  } while (body.size() < static_cast<size_t>(kb) * 1024 - 64 || i % 2 == 0);
  return body;
}

HttpRequest Post(int kb) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/messages";
  r.body = MessagesRequest(kb);
  return r;
}

void BM_MessagesParseRequest(benchmark::State& state) {
  const HttpRequest request = Post(static_cast<int>(state.range(0)));
  const std::shared_ptr<const IngressCodec> codec = AnthropicMessagesCodec();
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = codec->ParseRequest(request);
    if (!chat.ok()) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(chat);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.body.size()));
}
BENCHMARK(BM_MessagesParseRequest)->Arg(1)->Arg(8);

void BM_MessagesTranslatedRequest(benchmark::State& state) {
  const HttpRequest request = Post(static_cast<int>(state.range(0)));
  const std::shared_ptr<const IngressCodec> codec = AnthropicMessagesCodec();
  std::unique_ptr<Dialect> anthropic = std::move(NewDialect("anthropic")).value();
  DialectCall call;
  call.model = "claude-sonnet-4-5-20250929";
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = codec->ParseRequest(request);
    WireRequest wire;
    if (!chat.ok() || !anthropic->EncodeRequest(*chat, call, &wire).ok()) {
      state.SkipWithError("translation failed");
    }
    benchmark::DoNotOptimize(wire);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.body.size()));
}
BENCHMARK(BM_MessagesTranslatedRequest)->Arg(1)->Arg(8);

void BM_MessagesNativeRequest(benchmark::State& state) {
  const HttpRequest request = Post(static_cast<int>(state.range(0)));
  std::unique_ptr<Dialect> anthropic = std::move(NewDialect("anthropic")).value();
  DialectCall call;
  call.model = "claude-sonnet-4-5-20250929";
  for (auto _ : state) {
    WireRequest wire;
    if (!anthropic->EncodeNativeRequest(request.body, call, &wire).ok()) {
      state.SkipWithError("splice failed");
    }
    benchmark::DoNotOptimize(wire);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(request.body.size()));
}
BENCHMARK(BM_MessagesNativeRequest)->Arg(1)->Arg(8);

void BM_MessagesRenderEvent(benchmark::State& state) {
  // A text delta, as every provider's decoder emits them.
  const std::string chunk =
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":" tokens for"},"finish_reason":null}]})";
  std::unique_ptr<StreamTranslator> renderer = AnthropicMessagesCodec()->NewStreamRenderer();
  std::vector<SseEvent> out;
  for (auto _ : state) {
    out.clear();
    if (!renderer->Translate(StreamFrame{"", chunk}, &out).ok()) state.SkipWithError("failed");
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_MessagesRenderEvent);

void BM_MessagesRenderResponse(benchmark::State& state) {
  const std::string unified =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"The gateway routes each request to a model and returns tokens.","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}})";
  const std::shared_ptr<const IngressCodec> codec = AnthropicMessagesCodec();
  for (auto _ : state) {
    std::string body = unified;
    if (!codec->RenderResponse(&body).ok()) state.SkipWithError("render failed");
    benchmark::DoNotOptimize(body);
  }
}
BENCHMARK(BM_MessagesRenderResponse);

}  // namespace
}  // namespace modeenvoy
