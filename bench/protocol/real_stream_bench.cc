// bench/protocol/real_stream_bench.cc: each dialect's stream decoder on REAL recorded
// provider streams (the shared provider fixtures, tests/protocol/fixtures.h), reported per
// recorded chunk: issue 9's "<= 1 us to decode one streamed chunk" applies to this number.
//   build-rel/bench/protocol/protocol_bench --benchmark_filter=BM_DialectDecodeRealStream
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// BM_DialectDecodeRealStream/<dialect>: the largest real recording of the dialect's wire
// format, in its framing (SSE, NDJSON, binary EventStream), fed one network read per
// recorded chunk through the dialect's frame parser and stream decoder, parser and decoder
// made anew per stream as the engine does. items_per_second counts recorded chunks, and
// per_chunk is CPU time per recorded chunk. Recordings used:
//   openai        the largest OpenAI-compatible chat stream (groq, deepseek, xai, ...)
//   azure_openai  vercel's Azure model-router chat stream
//   anthropic     the largest vercel Anthropic Messages stream (hand-made ones excluded)
//   gemini        the largest vercel Gemini (AI Studio) stream
//   vertex        the largest vercel Vertex stream
//   bedrock       the largest vercel ConverseStream recording, each decoded event put back
//                 into the binary EventStream message Bedrock sent
//   cohere        the largest vercel Cohere v2 stream
//   ollama        Kong's recorded /api/chat answer cut into the NDJSON lines Ollama
//                 streams, one word per line, then the final line with the counts (no
//                 recorded Ollama stream exists)
//   openai_responses  the largest vercel OpenAI Responses stream that is one answer (one
//                 terminal event, the last; multi-step recordings and the hand-written one
//                 whose JSON does not parse are left out), with its "event:" lines
//   kserve        skipped: no KServe/Triton recording exists
// A dialect whose fixtures are absent is skipped with a message naming what is missing.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

namespace fs = std::filesystem;
using protocol_test::ChunkLines;
using protocol_test::FixturesDir;
using protocol_test::ListFiles;
using protocol_test::ReadFile;

// One recorded stream: each element is the bytes of one recorded chunk in the dialect's
// framing (one network read in the benchmark).
struct Recording {
  std::string file;               // relative to the fixtures root, for the label
  std::vector<std::string> reads;
  std::string missing;            // why there is none (empty when reads is set)
};

// The largest file (by bytes) among `dirs`' *.chunks.txt whose name passes `keep`.
fs::path LargestChunks(const fs::path& root, const std::vector<std::string>& dirs,
                       bool (*keep)(const std::string&)) {
  fs::path best;
  uintmax_t best_size = 0;
  for (const std::string& dir : dirs) {
    for (const fs::path& f : ListFiles(root / dir, ".chunks.txt")) {
      if (!keep(f.filename().string())) continue;
      const uintmax_t size = fs::file_size(f);
      if (size > best_size) {
        best = f;
        best_size = size;
      }
    }
  }
  return best;
}

// "event: <type>\n" (the line's first "type" member) when asked, then "data: <line>\n\n".
std::string SseRead(const std::string& line, bool with_event_type) {
  std::string out;
  if (with_event_type) {
    constexpr std::string_view kKey = "\"type\":\"";
    const size_t at = line.find(kKey);
    if (at != std::string::npos) {
      const size_t begin = at + kKey.size();
      out.append("event: ").append(line, begin, line.find('"', begin) - begin).append("\n");
    }
  }
  out.append("data: ").append(line).append("\n\n");
  return out;
}

bool AnyName(const std::string&) { return true; }
bool RealAnthropic(const std::string& name) {
  // Hand-written or deliberately broken streams (the fixtures README's caveats).
  for (const char* fake : {"anthropic-fallback", "anthropic-refusal", "duplicate-message-start",
                           "spliced-message-start"}) {
    if (name.find(fake) != std::string::npos) return false;
  }
  return true;
}
bool VertexName(const std::string& name) { return name.find("vertex") != std::string::npos; }
bool GeminiName(const std::string& name) { return !VertexName(name); }
bool AzureName(const std::string& name) { return name.find("azure") != std::string::npos; }

Recording SseRecording(const fs::path& root, const std::vector<std::string>& dirs,
                       bool (*keep)(const std::string&), bool with_event_type, bool done) {
  Recording rec;
  const fs::path file = LargestChunks(root, dirs, keep);
  if (file.empty()) {
    rec.missing = "no recorded stream under " + dirs.front();
    return rec;
  }
  rec.file = fs::relative(file, root).string();
  for (const std::string& line : ChunkLines(ReadFile(file))) {
    rec.reads.push_back(SseRead(line, with_event_type));
  }
  if (done) rec.reads.push_back(std::string(kSseDoneEvent));
  return rec;
}

Recording BedrockRecording(const fs::path& root) {
  const std::string dir = "vercel-ai/packages/amazon-bedrock/src/__fixtures__";
  Recording rec;
  const fs::path file = LargestChunks(root, {dir}, AnyName);
  if (file.empty()) {
    rec.missing = "no recorded stream under " + dir;
    return rec;
  }
  rec.file = fs::relative(file, root).string();
  // Each line is {"<eventType>": {...payload...}}: the message Bedrock framed.
  for (const std::string& line : ChunkLines(ReadFile(file))) {
    const nlohmann::json j = nlohmann::json::parse(line);
    rec.reads.push_back(EncodeEventStreamMessage({{":event-type", j.begin().key()},
                                                  {":content-type", "application/json"},
                                                  {":message-type", "event"}},
                                                 j.begin().value().dump()));
  }
  return rec;
}

Recording OllamaRecording(const fs::path& root) {
  const std::string rel = "kong/spec/fixtures/ai-proxy/unit/real-responses/llama2/ollama/llm-v1-chat.json";
  Recording rec;
  if (!fs::exists(root / rel)) {
    rec.missing = "no " + rel;
    return rec;
  }
  rec.file = rel;
  const nlohmann::json recorded = nlohmann::json::parse(ReadFile(root / rel));
  const std::string content = recorded["message"]["content"];
  size_t at = 0;
  while (at < content.size()) {
    size_t next = content.find(' ', at + 1);
    if (next == std::string::npos) next = content.size();
    const nlohmann::json line = {
        {"model", recorded["model"]},
        {"created_at", recorded["created_at"]},
        {"message", {{"role", "assistant"}, {"content", content.substr(at, next - at)}}},
        {"done", false}};
    rec.reads.push_back(line.dump() + "\n");
    at = next;
  }
  nlohmann::json last = recorded;
  last["message"]["content"] = "";
  last["done_reason"] = "stop";
  rec.reads.push_back(last.dump() + "\n");
  return rec;
}

Recording ResponsesRecording(const fs::path& root) {
  const std::string dir = "vercel-ai/packages/openai/src/responses/__fixtures__";
  Recording rec;
  fs::path best;
  uintmax_t best_size = 0;
  for (const fs::path& f : ListFiles(root / dir, ".chunks.txt")) {
    int terminal = 0;
    bool last_terminal = false, parses = true;
    for (const std::string& line : ChunkLines(ReadFile(f))) {
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (!j.is_object()) {
        parses = false;
        break;
      }
      const std::string type = j.value("type", "");
      last_terminal = type == "response.completed" || type == "response.incomplete" ||
                      type == "response.failed" || type == "error";
      terminal += last_terminal ? 1 : 0;
    }
    if (!parses || terminal != 1 || !last_terminal) continue;
    if (const uintmax_t size = fs::file_size(f); size > best_size) {
      best = f;
      best_size = size;
    }
  }
  if (best.empty()) {
    rec.missing = "no recorded one-answer stream under " + dir;
    return rec;
  }
  rec.file = fs::relative(best, root).string();
  for (const std::string& line : ChunkLines(ReadFile(best))) {
    rec.reads.push_back(SseRead(line, /*with_event_type=*/true));
  }
  return rec;
}

Recording RecordingFor(std::string_view dialect) {
  std::optional<fs::path> root = FixturesDir();
  if (!root) return {.file = {}, .reads = {}, .missing = "provider fixtures not found"};
  const std::vector<std::string> openai_dirs = protocol_test::OpenAiChatResponseDirs();
  if (dialect == "openai") return SseRecording(*root, openai_dirs, AnyName, false, true);
  if (dialect == "azure_openai") return SseRecording(*root, openai_dirs, AzureName, false, true);
  if (dialect == "anthropic") {
    return SseRecording(*root, {"vercel-ai/packages/anthropic/src/__fixtures__"},
                        RealAnthropic, true, false);
  }
  if (dialect == "gemini" || dialect == "vertex") {
    return SseRecording(*root, {"vercel-ai/packages/google/src/__fixtures__"},
                        dialect == "vertex" ? VertexName : GeminiName, false, false);
  }
  if (dialect == "cohere") {
    return SseRecording(*root, {"vercel-ai/packages/cohere/src/__fixtures__"}, AnyName, true,
                        false);
  }
  if (dialect == "bedrock") return BedrockRecording(*root);
  if (dialect == "ollama") return OllamaRecording(*root);
  if (dialect == "openai_responses") return ResponsesRecording(*root);
  return {.file = {}, .reads = {}, .missing = "no recorded stream exists for this dialect"};
}

// The options the dialect needs to decode a streamed answer (as dialect_bench.cc's).
std::string_view Options(std::string_view name) {
  if (name == "vertex") return R"({"project":"bench-project"})";
  if (name == "kserve") return R"({"protocol":"generate"})";
  return "{}";
}

void BM_DialectDecodeRealStream(benchmark::State& state, std::string name) {
  const Recording rec = RecordingFor(name);
  if (rec.reads.empty()) {
    state.SkipWithError((name + ": " + rec.missing).c_str());
    return;
  }
  absl::StatusOr<std::unique_ptr<Dialect>> dialect = NewDialect(name, Options(name));
  if (!dialect.ok()) {
    state.SkipWithError(std::string(dialect.status().message()).c_str());
    return;
  }
  const Framing framing = (*dialect)->ResponseFraming(/*stream=*/true);
  std::vector<StreamFrame> frames;
  std::vector<SseEvent> events;
  size_t out_bytes = 0;
  for (auto _ : state) {
    std::unique_ptr<FrameParser> parser = *NewFrameParser(framing);
    std::unique_ptr<StreamTranslator> decoder = (*dialect)->NewStreamDecoder();
    events.clear();
    absl::Status s;
    for (const std::string& read : rec.reads) {
      frames.clear();
      s = parser->Feed(read, &frames);
      for (StreamFrame& f : frames) {
        if (s.ok()) s = decoder->Translate(std::move(f), &events);
      }
      if (!s.ok()) break;
    }
    if (s.ok()) {
      frames.clear();
      s = parser->Finish(&frames);
      for (StreamFrame& f : frames) {
        if (s.ok()) s = decoder->Translate(std::move(f), &events);
      }
    }
    if (s.ok()) s = decoder->Finish(&events);
    if (!s.ok()) {
      state.SkipWithError((rec.file + ": " + std::string(s.message())).c_str());
      break;
    }
    benchmark::DoNotOptimize(events.data());
  }
  for (const SseEvent& e : events) out_bytes += e.data.size();
  size_t in_bytes = 0;
  for (const std::string& read : rec.reads) in_bytes += read.size();
  const double chunks = static_cast<double>(rec.reads.size());
  state.SetLabel(rec.file);
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * rec.reads.size()));
  state.counters["chunks"] = chunks;
  state.counters["bytes_per_chunk"] = static_cast<double>(in_bytes) / chunks;
  state.counters["out_events"] = static_cast<double>(events.size());
  state.counters["out_bytes"] = static_cast<double>(out_bytes);
  // Seconds of CPU per recorded chunk (printed with a unit, e.g. "812ns").
  state.counters["per_chunk"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * chunks,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

const bool kRegistered = [] {
  for (std::string_view view : DialectNames()) {
    std::string name(view);
    std::string label = "BM_DialectDecodeRealStream/";
    label.append(name);
    benchmark::RegisterBenchmark(label.c_str(), BM_DialectDecodeRealStream, name);
  }
  return true;
}();

}  // namespace
}  // namespace modeenvoy
