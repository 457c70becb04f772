// bench/protocol/chat_bench.cc: parse/serialize cost of the chat model, which every
// request and streamed chunk passes through.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=ParseSerialize
// nlohmann DOM parse+dump of the same bodies is measured alongside as the reference.
#include <cstdint>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

// Deterministic prose: mostly ASCII words, with the quotes, newlines and non-ASCII
// characters real prompts have now and then (about 1 word in 12).
std::string Prose(size_t bytes, uint32_t seed) {
  static const char* const kWords[] = {
      "the", "gateway", "routes", "each", "request", "to", "a", "model", "and", "returns",
      "tokens", "for", "every", "user", "in", "this", "conversation", "with", "some",
      "context", "about", "their", "account", "please", "summarize", "report", "which",
      "is", "not", "available", "yet", "because", "of", "limits", "on", "that", "service",
      "\"quoted\"", "café", "line\n", "naïve", "日本語"};
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

// A request as a client sends it: system prompt, a few turns, one tool call round trip,
// two tools with JSON Schema parameters, sampling options; about `target` bytes, grown by
// adding conversation turns.
std::string MakeRequest(size_t target) {
  ChatRequest r;
  r.model = "gpt-4o-mini";
  r.messages.push_back(MakeMessage(Role::kSystem, Prose(300, 1)));
  r.temperature = 0.7;
  r.max_completion_tokens = 512;
  r.stream = true;
  r.stream_options.emplace().include_usage = true;
  r.user = "user-1234";
  for (const char* name : {"get_weather", "search_docs"}) {
    Tool& t = r.tools.emplace_back();
    FunctionDefinition& f = t.function.emplace();
    f.name = name;
    f.description = "Looks things up for the assistant.";
    f.parameters =
        R"({"type":"object","properties":{"query":{"type":"string",)"
        R"("description":"What to look up"},"limit":{"type":"integer","minimum":1,)"
        R"("maximum":50}},"required":["query"],"additionalProperties":false})";
  }
  r.tool_choice = ToolChoice{.mode = "auto", .object = ""};
  uint32_t turn = 2;
  while (SerializeChatRequest(r).size() + 600 < target) {
    r.messages.push_back(MakeMessage(Role::kUser, Prose(200, turn++)));
    if (turn % 5 == 0) {
      Message call = MakeMessage(Role::kAssistant);
      ToolCall& c = call.tool_calls.emplace_back();
      c.id = "call_" + std::to_string(turn);
      c.function.emplace().name = "search_docs";
      c.function->arguments = R"({"query":"routing policy","limit":5})";
      r.messages.push_back(call);
      Message result = MakeMessage(Role::kTool, Prose(400, turn++));
      result.tool_call_id = "call_" + std::to_string(turn - 1);
      r.messages.push_back(result);
    }
    r.messages.push_back(MakeMessage(Role::kAssistant, Prose(300, turn++)));
  }
  // The last user turn brings the body to about `target` bytes.
  const size_t size = SerializeChatRequest(r).size();
  r.messages.push_back(
      MakeMessage(Role::kUser, "And what about tomorrow? " +
                                   Prose(size + 64 < target ? target - size - 64 : 8, turn)));
  // Compact, as SDKs send it.
  return SerializeChatRequest(r);
}

const std::string& Request(int64_t kb) {
  static const std::string small = MakeRequest(2 * 1024);
  static const std::string large = MakeRequest(100 * 1024);
  return kb <= 2 ? small : large;
}

void BM_ParseChatRequest(benchmark::State& state) {
  const std::string& body = Request(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
    if (!r.ok()) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_ParseChatRequest)->Arg(2)->Arg(100);

void BM_SerializeChatRequest(benchmark::State& state) {
  const std::string& body = Request(state.range(0));
  const ChatRequest r = *ParseChatRequest(body);
  for (auto _ : state) {
    std::string out = SerializeChatRequest(r);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_SerializeChatRequest)->Arg(2)->Arg(100);

// What a gateway does per request: parse + validate, then write the upstream body.
void BM_ParseSerializeChatRequest(benchmark::State& state) {
  const std::string& body = Request(state.range(0));
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
    std::string out = SerializeChatRequest(*r);
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
  state.counters["body_bytes"] = static_cast<double>(body.size());
}
BENCHMARK(BM_ParseSerializeChatRequest)->Arg(2)->Arg(100);

// Reference: nlohmann DOM parse + dump of the same body (no typed model, no validation).
void BM_NlohmannParseDump(benchmark::State& state) {
  const std::string& body = Request(state.range(0));
  for (auto _ : state) {
    nlohmann::json j = nlohmann::json::parse(body);
    std::string out = j.dump();
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_NlohmannParseDump)->Arg(2)->Arg(100);

void BM_ValidateChatRequest(benchmark::State& state) {
  const ChatRequest r = *ParseChatRequest(Request(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(ValidateChatRequest(r));
}
BENCHMARK(BM_ValidateChatRequest)->Arg(2)->Arg(100);

constexpr char kChunk[] =
    R"({"id":"chatcmpl-D8Z5oo6uDh67AD85p73ksdT1KxhE0","object":"chat.completion.chunk",)"
    R"("created":1770933892,"model":"gpt-4.1-nano-2025-04-14","service_tier":"default",)"
    R"("system_fingerprint":"fp_de604bd877","choices":[{"index":0,"delta":{"content":" Name"},)"
    R"("logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"yoKFv"})";

void BM_ParseSerializeChunk(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(kChunk);
    std::string out = SerializeChatCompletionChunk(*c);
    benchmark::DoNotOptimize(out);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseSerializeChunk);

void BM_SseParse(benchmark::State& state) {
  std::string stream;
  for (int i = 0; i < 300; ++i) stream += EncodeSseEvent(kChunk);
  stream += kSseDoneEvent;
  const size_t read_size = static_cast<size_t>(state.range(0));
  std::vector<SseEvent> events;
  for (auto _ : state) {
    SseParser parser;
    for (size_t pos = 0; pos < stream.size(); pos += read_size) {
      events.clear();
      (void)parser.Feed(std::string_view(stream).substr(pos, read_size), &events);
      benchmark::DoNotOptimize(events);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * stream.size()));
}
BENCHMARK(BM_SseParse)->Arg(1460)->Arg(16384);

}  // namespace
}  // namespace modeenvoy
