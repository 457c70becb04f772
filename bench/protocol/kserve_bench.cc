// bench/protocol/kserve_bench.cc: the kserve dialect's egress hot paths against the budgets
// (one core: <= 5 us to encode a 1 KB request, <= 1 us to decode one streamed event).
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

// About 1 KB of request: a system prompt, two turns and sampling parameters.
ChatRequest OneKilobyteChat() {
  std::string words;
  while (words.size() < 700) words += "lorem ipsum dolor sit amet ";
  ChatRequest chat;
  chat.model = "ensemble";
  chat.messages.push_back(MakeMessage(Role::kSystem, "You are a helpful assistant."));
  chat.messages.push_back(MakeMessage(Role::kUser, words));
  chat.messages.push_back(MakeMessage(Role::kAssistant, "Sure, go on."));
  chat.messages.push_back(MakeMessage(Role::kUser, "Summarize the text above in one line."));
  chat.temperature = 0.7;
  chat.top_p = 0.9;
  chat.max_tokens = 256;
  chat.stop = std::vector<std::string>{"###", "</s>"};
  return chat;
}

void BM_KserveEncodeRequest(benchmark::State& state) {
  std::unique_ptr<Dialect> d =
      *NewDialect("kserve", state.range(0) == 0 ? "{}" : R"({"protocol":"generate"})");
  const ChatRequest chat = OneKilobyteChat();
  DialectCall call;
  call.stream = state.range(0) == 1;
  for (auto _ : state) {
    WireRequest wire;
    benchmark::DoNotOptimize(d->EncodeRequest(chat, call, &wire));
    benchmark::DoNotOptimize(wire.body.data());
  }
  state.SetLabel(state.range(0) == 0 ? "v2 infer" : "generate_stream");
}
BENCHMARK(BM_KserveEncodeRequest)->Arg(0)->Arg(1);

// One generate_stream event as the TensorRT-LLM ensemble sends it.
void BM_KserveStreamDecodeEvent(benchmark::State& state) {
  std::unique_ptr<Dialect> d = *NewDialect("kserve", R"({"protocol":"generate"})");
  std::unique_ptr<StreamTranslator> decoder = d->NewStreamDecoder();
  const std::string event =
      R"({"batch_index":0,"context_logits":0.0,"cum_log_probs":0.0,"generation_logits":0.0,)"
      R"("model_name":"ensemble","model_version":"1","output_log_probs":[0.0],)"
      R"("sequence_end":false,"sequence_id":0,"sequence_index":0,"sequence_start":false,)"
      R"("text_output":" token"})";
  std::vector<SseEvent> out;
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(decoder->Translate(StreamFrame{"", event}, &out));
  }
}
BENCHMARK(BM_KserveStreamDecodeEvent);

void BM_KserveDecodeResponse(benchmark::State& state) {
  std::unique_ptr<Dialect> d = *NewDialect("kserve");
  const std::string body =
      R"({"model_name":"ensemble","model_version":"1","outputs":[{"name":"text_output",)"
      R"("datatype":"BYTES","shape":[1],"data":[")" + std::string(400, 'x') + R"("]}]})";
  for (auto _ : state) {
    std::string b = body;
    benchmark::DoNotOptimize(d->DecodeResponse(&b));
  }
}
BENCHMARK(BM_KserveDecodeResponse);

}  // namespace
}  // namespace modeenvoy
