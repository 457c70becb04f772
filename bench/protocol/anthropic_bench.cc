// bench/protocol/anthropic_bench.cc: the "anthropic" dialect's egress hot paths against the
// budgets of issue 9: <= 5 us per 1 KB request encode, <= 1 us per streamed chunk decode.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=Anthropic
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"

namespace modeenvoy {
namespace {

// About 1 KB of unified request: system prompt, three turns, a tool call round trip, a tool.
constexpr char kRequest[] = R"({"model":"claude-sonnet-4-5","messages":[
{"role":"system","content":"You are a concise assistant for the gateway's operators. Answer in two sentences at most."},
{"role":"user","content":"Which upstream served the last request for the demo model, and how long did it take?"},
{"role":"assistant","content":null,"tool_calls":[{"id":"toolu_01A","type":"function","function":{"name":"search_logs","arguments":"{\"model\":\"demo\",\"limit\":1}"}}]},
{"role":"tool","tool_call_id":"toolu_01A","content":"2026-12-03T10:00:01Z demo -> builtin-emulator 200 in 12 ms, 34 tokens in, 18 out"},
{"role":"assistant","content":"The built-in emulator served it in 12 ms."},
{"role":"user","content":"And before that? Please also tell me whether any request failed over the last hour."}],
"tools":[{"type":"function","function":{"name":"search_logs","description":"Searches the access log.",
"parameters":{"type":"object","properties":{"model":{"type":"string"},"limit":{"type":"integer"}},"required":["model"]}}}],
"temperature":0.2,"max_completion_tokens":512,"stream":true})";

void BM_AnthropicEncodeRequest(benchmark::State& state) {
  std::unique_ptr<Dialect> d = *NewDialect("anthropic");
  const ChatRequest chat = *ParseChatRequest(kRequest);
  const size_t unified_bytes = SerializeChatRequest(chat).size();
  for (auto _ : state) {
    WireRequest wire;
    absl::Status s = d->EncodeRequest(chat, {.stream = true, .model = {}, .client_headers = nullptr},
                                      &wire);
    if (!s.ok()) state.SkipWithError("encode failed");
    benchmark::DoNotOptimize(wire);
  }
  state.counters["unified_bytes"] = static_cast<double>(unified_bytes);
}
BENCHMARK(BM_AnthropicEncodeRequest);

// One text_delta event, as recorded (vercel-ai anthropic-text.chunks.txt).
void BM_AnthropicDecodeChunk(benchmark::State& state) {
  std::unique_ptr<Dialect> d = *NewDialect("anthropic");
  std::unique_ptr<StreamTranslator> decoder = d->NewStreamDecoder();
  std::vector<SseEvent> out;
  (void)decoder->Translate(
      {"message_start",
       R"({"type":"message_start","message":{"model":"claude-sonnet-4-5-20250929","id":"msg_01QC4g3HwBThD4BaNtBckFDJ","type":"message","role":"assistant","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}})"},
      &out);
  (void)decoder->Translate({"content_block_start",
                            R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
                           &out);
  const StreamFrame frame{
      "content_block_delta",
      R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'m doing well, thank you for asking"}})"};
  for (auto _ : state) {
    out.clear();
    absl::Status s = decoder->Translate(frame, &out);
    benchmark::DoNotOptimize(s);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AnthropicDecodeChunk);

}  // namespace
}  // namespace modeenvoy
