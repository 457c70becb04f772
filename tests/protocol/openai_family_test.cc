// tests/protocol/openai_family_test.cc: the OpenAI-compatible family ("openai" and
// "azure_openai"): the stream quirks fixed on every recorded stream of the family, the
// include_usage injection, and Azure's URL, auth and extras.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/dialect_test_util.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using nlohmann::json;
using protocol_test::DecodedStream;
using protocol_test::DecodeStream;
using protocol_test::Split;

// OpenAI's service tiers, from its API reference (and the openai SDK's ChatCompletion type).
const std::set<std::string> kOpenAiTiers = {"auto", "default", "flex", "scale", "priority"};

std::unique_ptr<Dialect> Make(std::string_view name, std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect(name, options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

// What a stream says, read from raw chunk JSON (the recording's or the unified output).
struct Reading {
  std::map<int, std::string> text;       // choice -> concatenated delta.content strings
  std::map<int, std::string> reasoning;  // choice -> reasoning_content / reasoning
  struct Call {
    std::string id, name, arguments;
  };
  std::map<int, std::vector<Call>> calls;  // choice -> tool calls in order
  std::map<int, std::string> finish;       // choice -> last non-empty finish_reason
  json usage;                              // last usage object seen (null if none)
};

// Mistral's content parts (its API's "ContentChunk"s, as magistral models answer): "text"
// parts are the answer, "thinking" parts hold text parts of reasoning.
void ReadMistralParts(const json& parts, std::string* text, std::string* reasoning) {
  for (const json& part : parts) {
    if (part["type"] == "text") *text += part["text"].get<std::string>();
    if (part["type"] == "thinking") {
      for (const json& inner : part["thinking"]) *reasoning += inner["text"].get<std::string>();
    }
  }
}

// Reads the recording the simple way a person would: a tool-call delta with a new id
// starts a call, one with a known id or with no id continues it (the latest call when no
// id), and the usage is the last usage object (Groq's x_groq.usage when alone).
Reading ReadRecording(const std::vector<std::string>& lines) {
  Reading r;
  std::map<int, std::map<std::string, size_t>> by_id;
  for (const std::string& line : lines) {
    json chunk = json::parse(line);
    if (chunk.contains("usage") && chunk["usage"].is_object()) {
      r.usage = chunk["usage"];
    } else if (chunk.contains("x_groq") && chunk["x_groq"].contains("usage")) {
      r.usage = chunk["x_groq"]["usage"];
    }
    if (!chunk.contains("choices")) continue;
    for (const json& choice : chunk["choices"]) {
      int c = choice.value("index", 0);
      const json& delta = choice.contains("delta") ? choice["delta"] : json::object();
      if (delta.contains("content") && delta["content"].is_string()) {
        r.text[c] += delta["content"].get<std::string>();
      } else if (delta.contains("content") && delta["content"].is_array()) {
        ReadMistralParts(delta["content"], &r.text[c], &r.reasoning[c]);
      }
      for (const char* k : {"reasoning_content", "reasoning"}) {
        if (delta.contains(k) && delta[k].is_string()) r.reasoning[c] += delta[k].get<std::string>();
      }
      if (delta.contains("tool_calls")) {
        for (const json& tc : delta["tool_calls"]) {
          std::vector<Reading::Call>& calls = r.calls[c];
          std::string id = tc.contains("id") && tc["id"].is_string() ? tc["id"].get<std::string>()
                                                                     : "";
          Reading::Call* call = nullptr;
          if (!id.empty() && by_id[c].count(id) == 0) {
            by_id[c][id] = calls.size();
            calls.push_back({id, "", ""});
          }
          if (!id.empty()) {
            call = &calls[by_id[c][id]];
          } else if (!calls.empty()) {
            call = &calls.back();
          } else {
            calls.push_back({"", "", ""});
            call = &calls.back();
          }
          if (tc.contains("function")) {
            const json& f = tc["function"];
            if (f.contains("name") && f["name"].is_string() && call->name.empty()) {
              call->name = f["name"].get<std::string>();
            }
            if (f.contains("arguments") && f["arguments"].is_string()) {
              call->arguments += f["arguments"].get<std::string>();
            }
          }
        }
      }
      if (choice.contains("finish_reason") && choice["finish_reason"].is_string() &&
          !choice["finish_reason"].get<std::string>().empty()) {
        r.finish[c] = choice["finish_reason"].get<std::string>();
      }
    }
  }
  return r;
}

// Reads the unified output strictly: tool calls grouped by index; every index's first delta
// must carry id and name, later ones neither; at most one finish_reason per choice; usage
// only on one usage-only chunk, the last before [DONE].
Reading ReadUnified(const std::vector<std::string>& events) {
  Reading r;
  EXPECT_FALSE(events.empty());
  if (events.empty()) return r;
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(std::count(events.begin(), events.end(), std::string("[DONE]")), 1);
  int usage_chunks = 0;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    absl::StatusOr<ChatCompletionChunk> parsed = ParseChatCompletionChunk(events[i]);
    EXPECT_TRUE(parsed.ok()) << parsed.status() << " in " << events[i];
    if (!parsed.ok()) continue;
    if (parsed->usage.has_value()) {
      ++usage_chunks;
      EXPECT_TRUE(parsed->choices.empty()) << events[i];
      EXPECT_EQ(i + 2, events.size()) << "usage must come right before [DONE]";
      r.usage = json::parse(events[i])["usage"];
    }
    for (const ChunkChoice& choice : parsed->choices) {
      int c = static_cast<int>(choice.index);
      if (choice.delta.content.has_value()) r.text[c] += *choice.delta.content;
      for (const auto& [k, v] : choice.delta.extra) {
        if ((k == "reasoning_content" || k == "reasoning") && v != "null") {
          r.reasoning[c] += json::parse(v).get<std::string>();
        }
      }
      for (const ToolCallDelta& tc : choice.delta.tool_calls) {
        std::vector<Reading::Call>& calls = r.calls[c];
        if (tc.index == static_cast<int64_t>(calls.size())) {
          EXPECT_TRUE(tc.id.has_value()) << events[i];
          EXPECT_EQ(tc.type.value_or(""), "function") << events[i];
          EXPECT_TRUE(tc.function.has_value() && tc.function->name.has_value()) << events[i];
          calls.push_back({tc.id.value_or(""), tc.function ? tc.function->name.value_or("") : "",
                           ""});
        } else {
          EXPECT_LT(tc.index, static_cast<int64_t>(calls.size())) << "index not dense";
          EXPECT_FALSE(tc.id.has_value()) << events[i];
          EXPECT_FALSE(tc.function.has_value() && tc.function->name.has_value()) << events[i];
          if (tc.index < 0 || tc.index >= static_cast<int64_t>(calls.size())) continue;
        }
        if (tc.function.has_value() && tc.function->arguments.has_value()) {
          calls[static_cast<size_t>(tc.index)].arguments += *tc.function->arguments;
        }
      }
      if (choice.finish_reason.has_value()) {
        EXPECT_FALSE(choice.finish_reason->empty());
        EXPECT_EQ(r.finish.count(c), 0u) << "second finish_reason for choice " << c;
        r.finish[c] = *choice.finish_reason;
      }
    }
  }
  EXPECT_LE(usage_chunks, 1);
  return r;
}

void ExpectSameReading(const Reading& want, const Reading& got, const std::string& what) {
  EXPECT_EQ(got.text, want.text) << what;
  EXPECT_EQ(got.reasoning, want.reasoning) << what;
  EXPECT_EQ(got.finish, want.finish) << what;
  EXPECT_EQ(got.usage, want.usage) << what;
  ASSERT_EQ(got.calls.size(), want.calls.size()) << what;
  for (const auto& [choice, calls] : want.calls) {
    ASSERT_EQ(got.calls.at(choice).size(), calls.size()) << what;
    for (size_t i = 0; i < calls.size(); ++i) {
      const Reading::Call& g = got.calls.at(choice)[i];
      EXPECT_EQ(g.id, calls[i].id) << what;
      EXPECT_EQ(g.name, calls[i].name) << what;
      EXPECT_EQ(g.arguments, calls[i].arguments) << what;
    }
  }
}

// Every recorded stream of the family, through both dialects, under every split.
TEST(OpenAiFamilyFixturesTest, EveryRecordedStreamTranslatesTheSameUnderAnySplit) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::pair<std::string, std::vector<std::string>>> streams;  // name, data lines
  for (const std::string& dir : protocol_test::OpenAiChatResponseDirs()) {
    for (const auto& path : protocol_test::ListFiles(*root / dir, ".chunks.txt")) {
      streams.emplace_back(path.string(),
                           protocol_test::ChunkLines(protocol_test::ReadFile(path)));
    }
    // Already SSE (with its [DONE]): the data lines of it.
    for (const auto& path : protocol_test::ListFiles(*root / dir, ".sse")) {
      std::vector<std::string> lines;
      for (const std::string& l : protocol_test::ChunkLines(protocol_test::ReadFile(path))) {
        if (l.rfind("data: ", 0) == 0 && l != "data: [DONE]") lines.push_back(l.substr(6));
      }
      streams.emplace_back(path.string(), std::move(lines));
    }
  }
  const std::filesystem::path kong = *root / "kong/spec/fixtures/ai-proxy/unit";
  {
    std::vector<std::string> lines;
    for (const std::string& l : protocol_test::ChunkLines(protocol_test::ReadFile(
             kong / "real-stream-frames/openai/llm-v1-chat.txt"))) {
      if (l.rfind("data: ", 0) == 0) lines.push_back(l.substr(6));
    }
    streams.emplace_back("kong real-stream-frames/openai/llm-v1-chat.txt", std::move(lines));
    json expected = json::parse(protocol_test::ReadFile(
        kong / "streaming-chunk-formats/text-event-stream/expected-output.json"));
    std::vector<std::string> sse_lines;
    for (const json& e : expected) {
      if (e["data"] != "[DONE]") sse_lines.push_back(e["data"].get<std::string>());
    }
    streams.emplace_back("kong streaming-chunk-formats/text-event-stream", std::move(sse_lines));
  }
  // 17 recorded streams of the six folders, and Kong's two.
  ASSERT_GE(streams.size(), 19u);

  int with_usage = 0, with_tools = 0;
  for (const auto& [name, lines] : streams) {
    SCOPED_TRACE(name);
    ASSERT_FALSE(lines.empty());
    std::vector<std::string> with_done = lines;
    with_done.push_back("[DONE]");
    const std::string body = protocol_test::SseBodyFromChunkLines(with_done, false);
    const Reading want = ReadRecording(lines);
    with_usage += want.usage.is_null() ? 0 : 1;
    with_tools += want.calls.empty() ? 0 : 1;
    for (std::string_view dialect : {"openai", "azure_openai"}) {
      std::unique_ptr<Dialect> d = Make(dialect);
      DecodedStream whole = DecodeStream(*d, body, Split::kWhole);
      ASSERT_TRUE(whole.status.ok()) << whole.status;
      for (Split split : {Split::kByteByByte, Split::kRandom}) {
        for (uint32_t seed : {1u, 2u, 3u}) {
          DecodedStream got = DecodeStream(*d, body, split, seed);
          ASSERT_TRUE(got.status.ok()) << got.status;
          EXPECT_EQ(got.events, whole.events);
          if (split == Split::kByteByByte) break;
        }
      }
      ExpectSameReading(want, ReadUnified(whole.events), std::string(dialect));
      // The recording without its [DONE] (a server that sends none) ends the same way.
      DecodedStream no_done =
          DecodeStream(*d, protocol_test::SseBodyFromChunkLines(lines, false), Split::kRandom);
      ASSERT_TRUE(no_done.status.ok()) << no_done.status;
      EXPECT_EQ(no_done.events, whole.events);
    }
  }
  EXPECT_GE(with_usage, 15);
  EXPECT_GE(with_tools, 5);
}

TEST(OpenAiFamilyFixturesTest, RecordedWholeBodiesPassThroughAndParse) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::filesystem::path> files;
  for (const std::string& dir : protocol_test::OpenAiChatResponseDirs()) {
    for (const auto& p : protocol_test::ListFiles(*root / dir, ".json",
                                                  {"error", "transcription"})) {
      files.push_back(p);
    }
  }
  const std::filesystem::path kong = *root / "kong/spec/fixtures/ai-proxy";
  files.push_back(kong / "unit/real-responses/azure/llm-v1-chat.json");
  files.push_back(kong / "unit/real-responses/openai/llm-v1-chat.json");
  files.push_back(kong / "unit/real-responses/mistral/openai/llm-v1-chat.json");
  files.push_back(kong / "openai/llm-v1-chat/responses/good.json");
  files.push_back(kong / "mistral/llm-v1-chat/responses/good.json");
  files.push_back(kong / "azure/request-transformer/response-in-json.json");
  ASSERT_GE(files.size(), 16u);
  int fixed = 0;
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const std::string original = protocol_test::ReadFile(path);
    json recorded = json::parse(original);
    // What OpenAI's clients cannot read (the SDK's types): a service tier of another server
    // (Groq's "on_demand"), content as an array of parts (Mistral's reasoning models).
    bool quirk = recorded.contains("service_tier") && !recorded["service_tier"].is_null() &&
                 !kOpenAiTiers.contains(recorded["service_tier"].get<std::string>());
    for (const json& choice : recorded["choices"]) {
      quirk = quirk || (choice.contains("message") && choice["message"].contains("content") &&
                        choice["message"]["content"].is_array());
    }
    fixed += quirk ? 1 : 0;
    for (std::string_view dialect : {"openai", "azure_openai"}) {
      std::string body = original;
      ASSERT_TRUE(Make(dialect)->DecodeResponse(&body).ok());
      if (quirk) {
        EXPECT_NE(body, original);  // fixed: the cases below check how
      } else {
        EXPECT_EQ(body, original);  // an answer without quirks passes byte for byte
      }
      absl::StatusOr<ChatCompletion> parsed = ParseChatCompletion(body);
      ASSERT_TRUE(parsed.ok()) << parsed.status();
      if (recorded.contains("usage")) {
        ASSERT_TRUE(parsed->usage.has_value());
        EXPECT_EQ(parsed->usage->prompt_tokens, recorded["usage"]["prompt_tokens"].get<int64_t>());
        EXPECT_EQ(parsed->usage->completion_tokens,
                  recorded["usage"]["completion_tokens"].get<int64_t>());
      }
    }
  }
  EXPECT_EQ(fixed, 4);  // groq-text, groq-reasoning, groq-tool-call, mistral-reasoning
}

TEST(OpenAiFamilyFixturesTest, RecordedErrorBodiesKeepStatusAndMessage) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  const std::string body = protocol_test::ReadFile(
      *root / "vercel-ai/packages/openai/src/chat/__fixtures__/"
              "reasoning-model-legacy-parameter-error.json");
  json recorded = json::parse(body);
  for (std::string_view dialect : {"openai", "azure_openai"}) {
    absl::Status s = Make(dialect)->DecodeError(400, body);
    EXPECT_EQ(HttpStatusForStatus(s), 400);
    EXPECT_EQ(s.message(), recorded["error"]["message"].get<std::string>());
    json out = json::parse(OpenAiErrorBody(s));
    EXPECT_EQ(out["error"]["type"], recorded["error"]["type"]);
    EXPECT_EQ(out["error"]["param"], recorded["error"]["param"]);
    EXPECT_EQ(out["error"]["code"], recorded["error"]["code"]);
  }
}

TEST(OpenAiFamilyFixturesTest, AzureExtrasPassThroughTheStream) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::string> lines = protocol_test::ChunkLines(protocol_test::ReadFile(
      *root / "vercel-ai/packages/openai/src/chat/__fixtures__/azure-model-router.1.chunks.txt"));
  lines.push_back("[DONE]");
  DecodedStream got = DecodeStream(*Make("azure_openai"),
                                   protocol_test::SseBodyFromChunkLines(lines, false),
                                   Split::kRandom);
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_GE(got.events.size(), 2u);
  // The prompt filter results chunk (empty choices, no usage) keeps its members, and the
  // model router's "object":"" becomes the chunk object every OpenAI client requires.
  json first = json::parse(got.events[0]);
  json recorded = json::parse(lines[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["prompt_filter_results"], recorded["prompt_filter_results"]);
  EXPECT_EQ(first["choices"], json::array());
  EXPECT_NE(got.events[2].find("content_filter_results"), std::string::npos);
}

// ---- the quirks, one by one ----

std::vector<std::string> Decode(std::string_view dialect, const std::vector<std::string>& lines) {
  DecodedStream got = DecodeStream(*Make(dialect),
                                   protocol_test::SseBodyFromChunkLines(lines, false),
                                   Split::kRandom, 7);
  EXPECT_TRUE(got.status.ok()) << got.status;
  return got.events;
}

TEST(OpenAiStreamQuirksTest, CleanChunksPassByteForByte) {
  const std::string chunk =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi \"usage\":{"},"logprobs":null,"finish_reason":null}],"usage":null})";
  EXPECT_EQ(Decode("openai", {chunk, "[DONE]"}), (std::vector<std::string>{chunk, "[DONE]"}));
}

// A passed chunk keeps its SSE event name and its bytes, on each way through: scanned,
// matched by the kept shape, and a finish read narrowly.
TEST(OpenAiStreamQuirksTest, PassedChunksKeepTheirEventNameAndBytes) {
  const std::string head =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":")";
  const std::string a = head + R"(a"},"finish_reason":null}]})";
  const std::string b = head + R"(bb"},"finish_reason":null}]})";
  const std::string c = head + R"(c"},"finish_reason":null}]})";
  const std::string stop =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})";
  std::unique_ptr<StreamTranslator> decoder = Make("openai")->NewStreamDecoder();
  std::vector<SseEvent> out;
  for (const std::string& data : {a, b, c, stop}) {
    ASSERT_TRUE(decoder->Translate(StreamFrame{"chunk", data}, &out).ok()) << data;
  }
  ASSERT_TRUE(decoder->Translate(StreamFrame{"", "[DONE]"}, &out).ok());
  ASSERT_EQ(out.size(), 5u);
  const std::vector<std::string> want = {a, b, c, stop};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(out[i].event, "chunk") << i;
    EXPECT_EQ(out[i].data, want[i]) << i;
  }
  EXPECT_EQ(out[4].data, "[DONE]");
}

TEST(OpenAiStreamQuirksTest, ReasoningDeltasPassThrough) {
  const std::string a = R"({"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"r"}}]})";
  const std::string b = R"({"id":"c","choices":[{"index":0,"delta":{"reasoning":"s"}}]})";
  EXPECT_EQ(Decode("openai", {a, b, "[DONE]"}), (std::vector<std::string>{a, b, "[DONE]"}));
}

TEST(OpenAiStreamQuirksTest, ToolCallsWithoutIndexGetOneByIdAndOrder) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":"{\"x\""}},{"id":"b","function":{"name":"g","arguments":""}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"arguments":"{}"}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"function":{"arguments":""}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", "[DONE]"});
  Reading r = ReadUnified(events);
  ASSERT_EQ(r.calls[0].size(), 2u);
  EXPECT_EQ(r.calls[0][0].id, "a");
  EXPECT_EQ(r.calls[0][0].arguments, "{\"x\"");
  EXPECT_EQ(r.calls[0][1].id, "b");
  EXPECT_EQ(r.calls[0][1].name, "g");
  EXPECT_EQ(r.calls[0][1].arguments, "{}");
}

TEST(OpenAiStreamQuirksTest, RepeatedIdAndNameAreSentOnce) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"q\":"}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"1}"}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"type":"function","function":{"name":"","arguments":""}}]}}]})",
       "[DONE]"});
  Reading r = ReadUnified(events);  // checks id and name only on the first delta
  ASSERT_EQ(r.calls[0].size(), 1u);
  EXPECT_EQ(r.calls[0][0].name, "f");
  EXPECT_EQ(r.calls[0][0].arguments, "{\"q\":1}");
}

TEST(OpenAiStreamQuirksTest, ToolIndexesStartingElsewhereAreMadeDense) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"id":"a","type":"function","function":{"name":"f","arguments":""}}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":3,"function":{"arguments":"{}"}}]}}]})",
       "[DONE]"});
  Reading r = ReadUnified(events);
  ASSERT_EQ(r.calls[0].size(), 1u);
  EXPECT_EQ(r.calls[0][0].arguments, "{}");
}

TEST(OpenAiStreamQuirksTest, UsageOnEveryChunkBecomesOneFinalUsageChunk) {
  // vLLM with continuous_usage_stats: cumulative usage on every chunk, then its own.
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
       R"({"id":"c","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
       R"({"id":"c","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
       "[DONE]"});
  ASSERT_EQ(events.size(), 4u);
  Reading r = ReadUnified(events);
  EXPECT_EQ(r.text[0], "ab");
  EXPECT_EQ(r.usage["completion_tokens"], 2);
  // Usage lifted from a content chunk keeps the chunk's envelope.
  events = Decode("openai",
                  {R"({"id":"c","created":5,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})"});
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[1],
            R"({"id":"c","object":"chat.completion.chunk","created":5,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})");
}

TEST(OpenAiStreamQuirksTest, GroqUsageAloneIsLifted) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"queue_time":0.1}}})",
       "[DONE]"});
  Reading r = ReadUnified(events);
  EXPECT_EQ(r.usage["total_tokens"], 3);
  EXPECT_EQ(r.usage["queue_time"], 0.1);
}

TEST(OpenAiStreamQuirksTest, OddFinishReasons) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":""}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", "[DONE]"});
  Reading r = ReadUnified(events);  // checks one finish_reason per choice, none empty
  EXPECT_EQ(r.text[0], "ab");
  EXPECT_EQ(r.finish[0], "stop");
}

TEST(OpenAiStreamQuirksTest, EmptyChoicesWithoutUsagePass) {
  const std::string filter =
      R"({"choices":[],"created":0,"id":"","model":"","object":"chat.completion.chunk","prompt_filter_results":[]})";
  std::vector<std::string> got = Decode("azure_openai", {filter, "[DONE]"});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(json::parse(got[0]), json::parse(filter));
  EXPECT_EQ(got[1], "[DONE]");
}

// Azure's prompt filter chunk comes with "object":"" (model router) or none; OpenAI's SDK
// types require "chat.completion.chunk" on every chunk.
TEST(OpenAiStreamQuirksTest, EmptyChoicesWithoutTheChunkObjectGetIt) {
  for (const std::string& filter :
       {std::string(R"({"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0}]})"),
        std::string(R"({"choices":[],"id":"","prompt_filter_results":[{"prompt_index":0}]})")}) {
    std::vector<std::string> got = Decode("azure_openai", {filter, "[DONE]"});
    ASSERT_EQ(got.size(), 2u) << filter;
    json chunk = json::parse(got[0]);
    EXPECT_EQ(chunk["object"], "chat.completion.chunk") << filter;
    EXPECT_EQ(chunk["id"], "") << filter;
    EXPECT_EQ(chunk["choices"], json::array()) << filter;
    EXPECT_EQ(chunk["prompt_filter_results"], json::parse(R"([{"prompt_index":0}])")) << filter;
  }
}

// The gateway reads usage only where KeepsUsagePromise() says it can be: on one usage-only
// chunk out of the same call as "[DONE]", right before it. Usage on content chunks, a
// usage-only chunk mid-stream and Groq's x_groq usage all end up there, whether the
// provider ends with [DONE] or the stream just ends.
TEST(OpenAiStreamQuirksTest, UsageComesOnlyWithDoneFromOneCall) {
  const std::vector<std::string> lines = {
      R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
      R"({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
      R"({"id":"c","choices":[{"index":0,"delta":{"content":"b"}}]})",
      R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"r","usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}})",
  };
  for (std::string_view name : {"openai", "azure_openai"}) {
    for (bool provider_done : {true, false}) {
      std::unique_ptr<StreamTranslator> decoder = Make(name)->NewStreamDecoder();
      EXPECT_TRUE(decoder->KeepsUsagePromise());
      std::vector<std::string> frames = lines;
      if (provider_done) frames.push_back("[DONE]");
      int usage_chunks = 0;
      // One batch per call, as the gateway sees them; Finish's batch last.
      for (size_t call = 0; call <= frames.size(); ++call) {
        std::vector<SseEvent> out;
        absl::Status s = call < frames.size()
                             ? decoder->Translate(StreamFrame{"", frames[call]}, &out)
                             : decoder->Finish(&out);
        ASSERT_TRUE(s.ok()) << s;
        for (size_t i = 0; i < out.size(); ++i) {
          if (out[i].data == "[DONE]") continue;
          json chunk = json::parse(out[i].data);
          if (!chunk.contains("usage") || chunk["usage"].is_null()) continue;
          ++usage_chunks;
          EXPECT_EQ(chunk["choices"], json::array()) << out[i].data;
          EXPECT_EQ(chunk["usage"]["total_tokens"], 5) << out[i].data;
          ASSERT_LT(i + 1, out.size()) << name << ": usage without [DONE] in call " << call;
          EXPECT_EQ(out[i + 1].data, "[DONE]") << name;
        }
      }
      EXPECT_EQ(usage_chunks, 1) << name << " provider_done " << provider_done;
    }
  }
}

// Chunks repeating a clean chunk's envelope are scanned from their "choices" key on: a quirk
// right after the envelope, an empty choices array, and a chunk whose envelope differs (usage
// before choices, a space before '[') are all still seen.
TEST(OpenAiStreamQuirksTest, QuirksAfterARepeatedEnvelopeAreSeen) {
  const std::string envelope =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[)";
  const std::string usage = R"({"prompt_tokens":3,"completion_tokens":2,"total_tokens":5})";
  std::vector<std::string> events = Decode(
      "openai",
      {envelope + R"({"index":0,"delta":{"content":"a"},"finish_reason":null}]})",
       envelope + R"({"index":0,"delta":{"tool_calls":[{"index":2,"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]}}]})",
       envelope + R"({"index":0,"delta":{"content":"b"},"finish_reason":""}]})",
       envelope + R"(],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
       envelope + R"({"index":0,"delta":{"content":"c"}}],"x":"\"choices\":[]"})",
       R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","usage":)" + usage +
           R"(,"choices":[{"index":0,"delta":{"content":"d"}}]})",
       R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices": [{"index":0,"delta":{},"finish_reason":"stop"}]})",
       envelope + R"({"index":0,"delta":{},"finish_reason":"stop"}]})", "[DONE]"});
  Reading r = ReadUnified(events);  // checks dense tool indexes, one non-empty finish, usage
  EXPECT_EQ(r.text[0], "abcd");
  ASSERT_EQ(r.calls[0].size(), 1u);
  EXPECT_EQ(r.calls[0][0].name, "f");
  EXPECT_EQ(r.finish[0], "stop");
  EXPECT_EQ(r.usage, json::parse(usage));
  // The tool call's index 2 became 0; the chunk holding only usage was held for the end.
  EXPECT_NE(events[1].find(R"("tool_calls":[{"index":0,)"), std::string::npos) << events[1];
  EXPECT_EQ(events.size(), 9u);  // 7 of the 8 chunks, then the usage chunk and [DONE]
}

// A chunk whose only quirk is a finish_reason is read narrowly (index and finish_reason of
// each choice): several choices finishing at once, a second finish later dropped, an index
// out of range refused, as a full read does.
TEST(OpenAiStreamQuirksTest, FinishChunksOfSeveralChoices) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]})",
       R"({"id":"c","choices":[{"delta":{},"finish_reason":"stop","index":1},{"index":0,"delta":{"content":"c"},"finish_reason":null}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"length"},{"index":1,"delta":{},"finish_reason":"stop"}]})",
       "[DONE]"});
  ASSERT_EQ(events.size(), 4u);
  Reading r = ReadUnified(events);  // checks one finish per choice
  EXPECT_EQ(r.text[0], "ac");
  EXPECT_EQ(r.text[1], "b");
  EXPECT_EQ(r.finish[0], "length");
  EXPECT_EQ(r.finish[1], "stop");
  // The chunks that needed nothing pass byte for byte.
  EXPECT_EQ(events[1],
            R"({"id":"c","choices":[{"delta":{},"finish_reason":"stop","index":1},{"index":0,"delta":{"content":"c"},"finish_reason":null}]})");
  // Two finishes of one choice in one chunk: the second goes.
  events = Decode("openai",
                  {R"({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop"},{"index":0,"delta":{},"finish_reason":"stop"}]})",
                   "[DONE]"});
  ReadUnified(events);
  // An index out of range is refused.
  DecodedStream got = DecodeStream(
      *Make("openai"),
      protocol_test::SseBodyFromChunkLines(
          {R"({"id":"c","choices":[{"index":500,"delta":{},"finish_reason":"stop"}]})"}, false),
      Split::kWhole);
  EXPECT_FALSE(got.status.ok());
}

// The usage-only chunk is held as sent without decoding it, when it is one: an empty
// "choices" array elsewhere than at the top, or text that is not JSON, get the full read.
TEST(OpenAiStreamQuirksTest, OnlyATrueUsageOnlyChunkIsHeldAsSent) {
  const std::string usage_only =
      R"({"id":"c","object":"chat.completion.chunk","choices": [ ],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})";
  std::vector<std::string> events = Decode("openai", {usage_only, "[DONE]"});
  EXPECT_EQ(events, (std::vector<std::string>{usage_only, "[DONE]"}));

  events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"choices":[]}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})",
       "[DONE]"});
  ASSERT_EQ(events.size(), 3u);
  Reading r = ReadUnified(events);
  EXPECT_EQ(r.text[0], "a");
  EXPECT_EQ(r.usage["total_tokens"], 4);

  DecodedStream got = DecodeStream(
      *Make("openai"),
      protocol_test::SseBodyFromChunkLines(
          {R"({"id":"c","choices":[],"usage":{"prompt_tokens":3}}})", "[DONE]"}, false),
      Split::kWhole);
  EXPECT_FALSE(got.status.ok());
}

// ---- whole bodies ----

// Some compatible servers answer 200 with an error body; translate_response must not turn
// it into an answer without choices.
TEST(OpenAiFamilyDecodeResponseTest, AnErrorBodyIsTheProvidersError) {
  for (std::string_view dialect : {"openai", "azure_openai"}) {
    std::string body = R"({"error":{"message":"boom","type":"invalid_request_error","param":"max_tokens","code":"x"}})";
    absl::Status s = Make(dialect)->DecodeResponse(&body);
    ASSERT_FALSE(s.ok()) << dialect;
    EXPECT_TRUE(IsProviderError(s)) << dialect << " " << s;
    EXPECT_EQ(s.message(), "boom") << dialect;
    // The member name spelled with escapes, and spaces before the colon, are the same member.
    for (std::string spelled : {std::string(R"({"\u0065rror":{"message":"boom"}})"),
                                std::string(R"({"err\u006Fr":{"message":"boom"}})"),
                                std::string(R"({"id":"x", "error" :{"message":"boom"}})")}) {
      s = Make(dialect)->DecodeResponse(&spelled);
      EXPECT_FALSE(s.ok()) << dialect << " " << spelled;
      EXPECT_EQ(s.message(), "boom") << dialect << " " << spelled;
    }
  }
}

// An answer passes byte for byte (the gateway hands the client what the upstream sent).
TEST(OpenAiFamilyDecodeResponseTest, AnswersPassByteForByte) {
  for (std::string_view dialect : {"openai", "azure_openai"}) {
    for (const std::string& sent :
         {std::string(R"({"id":"c", "choices":[]})"), std::string(R"({"error":null,"choices":[]})"),
          std::string(R"({"choices":[],"error":{"message":"x"}})"),
          std::string(R"({"choices":[{"message":{"content":"a"}}],"service_tier":"flex"})"),
          std::string(R"({"choices":[{"message":{"content":null}},1],"service_tier":null})"),
          // Text that looks like a content array inside a string is text.
          std::string(R"({"choices":[{"message":{"content":"say \"content\": [1] [x]"}}]})"),
          // logprobs' own "content" array is no content parts (a second look says so).
          std::string(R"({"choices":[{"message":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":0,"bytes":[97],"top_logprobs":[]}]}}]})")}) {
      std::string body = sent;
      EXPECT_TRUE(Make(dialect)->DecodeResponse(&body).ok()) << dialect << " " << sent;
      EXPECT_EQ(body, sent);
    }
  }
}

// A 2xx body that is no answer (no "choices" array, no error object; Kong's recorded mock
// of a broken upstream, or not JSON at all) is the upstream's failure: 502 with an OpenAI
// error body whose code is "bad_upstream_response", never an answer without choices. Not
// the provider's own error (it said nothing), so no provider error mark.
TEST(OpenAiFamilyDecodeResponseTest, ABodyThatIsNoAnswerIsABadUpstreamResponse) {
  std::vector<std::string> bodies = {
      R"({"nothing_object":{"a":[1]}})", R"({"id":"x","choices":null})", "[1]", "not json",
      "", R"({"choices":[{"message":{"content":"a"}}])", R"({"choices":[]} x)"};
  if (std::optional<std::filesystem::path> root = protocol_test::FixturesDir()) {
    bodies.push_back(protocol_test::ReadFile(
        *root / "kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/bad_upstream_response.json"));
  }
  for (std::string_view dialect : {"openai", "azure_openai"}) {
    for (const std::string& sent : bodies) {
      std::string body = sent;
      absl::Status s = Make(dialect)->DecodeResponse(&body);
      ASSERT_FALSE(s.ok()) << dialect << " " << sent;
      EXPECT_EQ(HttpStatusForStatus(s), 502) << s;
      EXPECT_EQ(ErrorCode(s), "bad_upstream_response") << s;
      EXPECT_FALSE(IsProviderError(s)) << s;
      EXPECT_NE(s.message().find("not a Chat Completions answer"), std::string_view::npos) << s;
      json error = json::parse(OpenAiErrorBody(s))["error"];
      EXPECT_EQ(error["code"], "bad_upstream_response");
      EXPECT_EQ(error["type"], "server_error");
    }
  }
}

// Groq's service_tier "on_demand" (its recorded answers) is no tier OpenAI's clients can
// read: it moves to "x_groq_service_tier"; everything else stays as recorded.
TEST(OpenAiFamilyDecodeResponseTest, AnotherServersServiceTierMovesToItsOwnMember) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  for (const char* name : {"groq-text.json", "groq-reasoning.json", "groq-tool-call.json"}) {
    SCOPED_TRACE(name);
    const std::string original =
        protocol_test::ReadFile(*root / "vercel-ai/packages/groq/src/__fixtures__" / name);
    json want = json::parse(original);
    ASSERT_EQ(want["service_tier"], "on_demand");
    want["x_groq_service_tier"] = want["service_tier"];
    want.erase("service_tier");
    // Re-serialized: a message without content says "content": null (the same to OpenAI).
    for (json& choice : want["choices"]) {
      if (!choice["message"].contains("content")) choice["message"]["content"] = nullptr;
    }
    for (std::string_view dialect : {"openai", "azure_openai"}) {
      std::string body = original;
      ASSERT_TRUE(Make(dialect)->DecodeResponse(&body).ok());
      json got = json::parse(body);
      EXPECT_FALSE(got.contains("service_tier") && !got["service_tier"].is_null()) << body;
      EXPECT_EQ(got["x_groq_service_tier"], "on_demand");
      EXPECT_EQ(got["choices"], want["choices"]);
      EXPECT_EQ(got["usage"], want["usage"]);
      EXPECT_EQ(got["x_groq"], want["x_groq"]);
      EXPECT_EQ(got["id"], want["id"]);
      EXPECT_EQ(got["model"], want["model"]);
    }
  }
  // A tier no table row names keeps the same rule under a neutral name.
  std::string body = R"({"id":"c","choices":[],"service_tier":"batch-7"})";
  ASSERT_TRUE(Make("openai")->DecodeResponse(&body).ok());
  json got = json::parse(body);
  EXPECT_FALSE(got.contains("service_tier") && !got["service_tier"].is_null()) << body;
  EXPECT_EQ(got["x_service_tier"], "batch-7");
}

// Mistral's reasoning models answer with content parts: "text" parts become the content
// string, "thinking" parts' text the reasoning_content the family uses (DeepSeek, xAI).
TEST(OpenAiFamilyDecodeResponseTest, MistralContentPartsBecomeContentAndReasoning) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root.has_value()) GTEST_SKIP() << "provider fixtures not found";
  const std::string original = protocol_test::ReadFile(
      *root / "vercel-ai/packages/mistral/src/__fixtures__/mistral-reasoning.json");
  json recorded = json::parse(original);
  std::string want_text, want_reasoning;
  ReadMistralParts(recorded["choices"][0]["message"]["content"], &want_text, &want_reasoning);
  ASSERT_FALSE(want_text.empty());
  ASSERT_FALSE(want_reasoning.empty());
  for (std::string_view dialect : {"openai", "azure_openai"}) {
    std::string body = original;
    ASSERT_TRUE(Make(dialect)->DecodeResponse(&body).ok());
    json got = json::parse(body);
    json message = got["choices"][0]["message"];
    EXPECT_EQ(message["content"], want_text);
    EXPECT_EQ(message["reasoning_content"], want_reasoning);
    EXPECT_EQ(message["role"], "assistant");
    EXPECT_EQ(got["choices"][0]["finish_reason"], recorded["choices"][0]["finish_reason"]);
    EXPECT_EQ(got["usage"], recorded["usage"]);
  }
  // Whitespace anywhere JSON allows it.
  std::string spaced =
      "{\"choices\" : [ {\"message\" : {\"content\"\n :\t[ {\"type\":\"text\",\"text\":\"t\"} ] } } ] }";
  ASSERT_TRUE(Make("openai")->DecodeResponse(&spaced).ok());
  EXPECT_EQ(json::parse(spaced)["choices"][0]["message"]["content"], "t") << spaced;
  // Only thinking: no content string (null), the reasoning alone. A part of another kind
  // (here a reference) leaves the content as sent: nothing is dropped.
  std::string body =
      R"({"choices":[{"message":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}}]})";
  ASSERT_TRUE(Make("openai")->DecodeResponse(&body).ok());
  json got = json::parse(body)["choices"][0]["message"];
  EXPECT_TRUE(got["content"].is_null()) << body;
  EXPECT_EQ(got["reasoning_content"], "ab");
  const std::string other =
      R"({"choices":[{"message":{"content":[{"type":"text","text":"a"},{"type":"reference","reference_ids":[1]}]}}]})";
  body = other;
  ASSERT_TRUE(Make("openai")->DecodeResponse(&body).ok());
  EXPECT_EQ(json::parse(body)["choices"][0]["message"]["content"],
            json::parse(other)["choices"][0]["message"]["content"]);
}

// The same in streams, per chunk: a delta's parts become its content and reasoning_content
// (no buffering), and a foreign service tier moves on every chunk that has one.
TEST(OpenAiStreamQuirksTest, MistralContentPartsAndForeignTiersPerChunk) {
  std::vector<std::string> events = Decode(
      "openai",
      {R"({"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"r1"}]}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[{"type":"text","text":"r2"}]},{"type":"text","text":"t1"}]}}]})",
       R"({"id":"c","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"t2"}]}}],"service_tier":"on_demand"})",
       R"({"id":"c","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"service_tier":"default"})",
       "[DONE]"});
  ASSERT_EQ(events.size(), 5u);
  json first = json::parse(events[0])["choices"][0]["delta"];
  EXPECT_EQ(first["role"], "assistant");
  EXPECT_FALSE(first.contains("content") && !first["content"].is_null()) << events[0];
  EXPECT_EQ(first["reasoning_content"], "r1");
  json second = json::parse(events[1])["choices"][0]["delta"];
  EXPECT_EQ(second["content"], "t1");
  EXPECT_EQ(second["reasoning_content"], "r2");
  json third = json::parse(events[2]);
  EXPECT_EQ(third["choices"][0]["delta"]["content"], "t2");
  EXPECT_FALSE(third.contains("service_tier") && !third["service_tier"].is_null()) << events[2];
  EXPECT_EQ(third["x_groq_service_tier"], "on_demand");
  // OpenAI's own tier and a string content: byte for byte.
  EXPECT_EQ(events[3],
            R"({"id":"c","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"service_tier":"default"})");
  Reading r = ReadUnified(events);
  EXPECT_EQ(r.text[0], "t1t2");
  EXPECT_EQ(r.reasoning[0], "r1r2");
}

// A chunk of the latest clean chunk's shape (the same bytes but inside string values) passes
// on one compare: its text may look like keys and usage. A chunk of that shape but for a
// string finish_reason or a usage object where the clean one had null, or with another
// tool call in place of the content, is still seen; so is one after the shape changed (the
// first chunk, with its role, has another shape than the content chunks after it).
TEST(OpenAiStreamQuirksTest, QuirksInAChunkOfACleanChunksShapeAreSeen) {
  const std::string envelope =
      R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[)";
  auto content = [&](const std::string& text, const std::string& finish = "null",
                     const std::string& usage = "null") {
    return envelope + R"({"index":0,"delta":{"content":")" + text +
           R"("},"logprobs":null,"finish_reason":)" + finish + R"(}],"usage":)" + usage +
           R"(,"obfuscation":"xyz"})";
  };
  const std::string usage = R"({"prompt_tokens":3,"completion_tokens":2,"total_tokens":5})";
  const std::string looks_like_keys =
      R"(\"usage\":{\"total_tokens\":1},\"finish_reason\":\"stop\",\"tool_calls\":[)";
  const std::vector<std::string> lines = {
      envelope + R"({"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"q"})",
      content("a", "\"\""),  // the role chunk's shape does not hide this one's quirk
      content("b"),
      content("c"),
      content(looks_like_keys),
      content("d", "\"\""),  // an empty finish_reason is dropped
      content("e", "null", usage),  // usage on a content chunk is held for the end
      content("f") + " ",
      envelope + R"({"index":0,"delta":{"tool_calls":[{"index":3,"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"xyz"})",
      content("", "\"stop\""),
      "[DONE]"};
  std::vector<std::string> events = Decode("openai", lines);
  Reading r = ReadUnified(events);  // checks one non-empty finish per choice, usage once
  EXPECT_EQ(r.text[0],
            R"(abc"usage":{"total_tokens":1},"finish_reason":"stop","tool_calls":[def)");
  ASSERT_EQ(r.calls[0].size(), 1u);
  EXPECT_EQ(r.calls[0][0].name, "f");
  EXPECT_NE(events[8].find(R"("tool_calls":[{"index":0,)"), std::string::npos) << events[8];
  EXPECT_EQ(r.finish[0], "stop");
  EXPECT_EQ(r.usage, json::parse(usage));
  ASSERT_EQ(events.size(), 12u);  // the 10 chunks, the usage chunk, [DONE]
  // Chunks of the shape pass byte for byte, the one that looks like keys included.
  EXPECT_EQ(events[2], lines[2]);
  EXPECT_EQ(events[3], lines[3]);
  EXPECT_EQ(events[4], lines[4]);
  EXPECT_EQ(events[7], lines[7]);
  // The quirks were fixed: no empty finish_reason, no usage on the content chunk.
  EXPECT_EQ(events[1].find(R"("finish_reason":"")"), std::string::npos) << events[1];
  EXPECT_EQ(events[5].find(R"("finish_reason":"")"), std::string::npos) << events[5];
  EXPECT_TRUE(json::parse(events[6])["usage"].is_null()) << events[6];
}

TEST(OpenAiStreamQuirksTest, ErrorEventsEndTheStreamWithTheirStatus) {
  for (const std::string& error :
       {std::string(R"({"error":{"message":"boom","type":"server_error","code":"x"}})"),
        std::string(R"({"object":"error","message":"bad","type":"BadRequestError","code":400})")}) {
    std::vector<std::string> lines = {
        R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"}}]})", error};
    DecodedStream got = DecodeStream(*Make("openai"),
                                     protocol_test::SseBodyFromChunkLines(lines, false),
                                     Split::kWhole);
    EXPECT_FALSE(got.status.ok()) << error;
    EXPECT_EQ(got.events.size(), 1u);
  }
  // An "error" member inside a choice (Azure content filter results) is no error event.
  const std::string fine =
      R"({"id":"c","choices":[{"index":0,"delta":{"content":"a"},"content_filter_results":{"error":{"code":"x","message":"y"}}}]})";
  EXPECT_EQ(Decode("azure_openai", {fine, "[DONE]"}), (std::vector<std::string>{fine, "[DONE]"}));
}

// ---- requests ----

ChatRequest Chat(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *chat : ChatRequest{};
}

// Claude Code's Messages `thinking` (a unified extra) is not forwarded (OpenAI refuses an
// unknown argument): it becomes reasoning_effort by its budget.
TEST(OpenAiFamilyRequestTest, AnthropicThinkingBecomesReasoningEffort) {
  struct Case {
    std::string dialect, thinking;
    std::optional<std::string> effort;  // nullopt: no reasoning_effort member
  } cases[] = {
      {"openai", R"({"type":"enabled","budget_tokens":1024})", "low"},
      {"openai", R"({"type":"enabled","budget_tokens":4095})", "low"},
      {"openai", R"({"type":"enabled","budget_tokens":4096})", "medium"},
      {"openai", R"({"type":"enabled","budget_tokens":16383})", "medium"},
      {"azure_openai", R"({"type":"enabled","budget_tokens":16384})", "high"},
      {"openai", R"({"type":"adaptive"})", "medium"},
      {"openai", R"({"type":"disabled"})", std::nullopt},
  };
  for (const Case& c : cases) {
    for (const bool stream : {false, true}) {
      for (const std::string_view model : {std::string_view(), std::string_view("up")}) {
        ChatRequest chat = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5,"thinking":)" +
                                c.thinking + "}");
        WireRequest wire;
        absl::Status s = Make(c.dialect)->EncodeRequest(chat, {.stream = stream, .model = model}, &wire);
        ASSERT_TRUE(s.ok()) << s;
        json body = json::parse(wire.body);
        EXPECT_FALSE(body.contains("thinking")) << wire.body;
        EXPECT_EQ(body["top_k"], 5) << wire.body;  // other unknown members still go as is
        if (c.effort.has_value()) {
          EXPECT_EQ(body["reasoning_effort"], *c.effort) << c.thinking;
        } else {
          EXPECT_FALSE(body.contains("reasoning_effort")) << wire.body;
        }
        if (!model.empty()) EXPECT_EQ(body["model"], "up");
        EXPECT_EQ(body.contains("stream_options"), stream) << wire.body;
      }
    }
  }
  // The client's own reasoning_effort wins; thinking is dropped.
  ChatRequest both = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],)"
                          R"("reasoning_effort":"minimal","thinking":{"type":"enabled","budget_tokens":30000}})");
  WireRequest wire;
  ASSERT_TRUE(Make("openai")->EncodeRequest(both, {}, &wire).ok());
  json body = json::parse(wire.body);
  EXPECT_EQ(body["reasoning_effort"], "minimal");
  EXPECT_FALSE(body.contains("thinking"));
  // Malformed: refused by path.
  ChatRequest bad = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"thinking":{"type":"enabled"}})");
  absl::Status s = Make("openai")->EncodeRequest(bad, {}, &wire);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorParam(s), "thinking.budget_tokens") << s;
}

// Claude Code's context_management (Anthropic's server-side context editing) is an unknown
// argument to OpenAI: left out, the rest of the body as the client sent it.
TEST(OpenAiFamilyRequestTest, AnthropicContextManagementIsLeftOut) {
  ChatRequest chat = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5,"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})");
  WireRequest wire;
  ASSERT_TRUE(Make("openai")->EncodeRequest(chat, {}, &wire).ok());
  EXPECT_EQ(json::parse(wire.body),
            json::parse(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":5})"));
}

TEST(OpenAiFamilyRequestTest, StreamedCallsAskForUsageUnlessTurnedOff) {
  ChatRequest chat = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})");
  WireRequest wire;
  ASSERT_TRUE(Make("openai")->EncodeRequest(chat, {.stream = true, .model = {}}, &wire).ok());
  EXPECT_EQ(json::parse(wire.body)["stream_options"], json::parse(R"({"include_usage":true})"));
  EXPECT_EQ(json::parse(wire.body)["messages"][0]["content"], "hi");

  wire = {};
  ASSERT_TRUE(Make("openai", R"({"stream_usage":false})")->EncodeRequest(chat, {.stream = true, .model = {}}, &wire).ok());
  EXPECT_FALSE(json::parse(wire.body).contains("stream_options"));
  // Not even the client's own: the server would reject them.
  wire = {};
  ChatRequest asked = Chat(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_TRUE(Make("openai", R"({"stream_usage":false})")->EncodeRequest(asked, {.stream = true, .model = {}}, &wire).ok());
  EXPECT_FALSE(json::parse(wire.body).contains("stream_options"));

  wire = {};
  ChatRequest whole = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(Make("openai")->EncodeRequest(whole, {.stream = false, .model = {}}, &wire).ok());
  EXPECT_FALSE(json::parse(wire.body).contains("stream_options"));

  // A client that said false, with other stream options and another model name.
  wire = {};
  ChatRequest said_no = Chat(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":false}})");
  ASSERT_TRUE(Make("azure_openai")->EncodeRequest(said_no, {.stream = true, .model = "up"}, &wire).ok());
  json body = json::parse(wire.body);
  EXPECT_EQ(body["stream_options"],
            json::parse(R"({"include_usage":true,"include_obfuscation":false})"));
  EXPECT_EQ(body["model"], "up");
  EXPECT_EQ(said_no.stream_options->include_usage, false);  // the caller's request unchanged

  EXPECT_EQ(NewDialect("openai", R"({"stream_usage":1})").status().message(),
            "stream_usage: must be a boolean");
}

// A caller that reads no usage (DialectCall::stream_usage false) gets no injected
// stream_options, so the server sends no usage-only chunk; the client's own are kept.
TEST(OpenAiFamilyRequestTest, NoUsageAskedForWhenTheCallerReadsNone) {
  ChatRequest chat = Chat(R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true})");
  for (std::string_view type : {"openai", "azure_openai"}) {
    WireRequest wire;
    const DialectCall call{
        .stream = true, .model = "up", .client_headers = nullptr, .stream_usage = false};
    ASSERT_TRUE(Make(type)->EncodeRequest(chat, call, &wire).ok());
    json body = json::parse(wire.body);
    EXPECT_FALSE(body.contains("stream_options")) << type << ": " << wire.body;
    EXPECT_EQ(body["model"], "up");
    EXPECT_EQ(body["stream"], true);
  }
  ChatRequest asked = Chat(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}})");
  const DialectCall no_usage{
      .stream = true, .model = {}, .client_headers = nullptr, .stream_usage = false};
  WireRequest wire;
  ASSERT_TRUE(Make("openai")->EncodeRequest(asked, no_usage, &wire).ok());
  EXPECT_EQ(json::parse(wire.body)["stream_options"],
            json::parse(R"({"include_usage":true,"include_obfuscation":false})"));
  ChatRequest said_no = Chat(
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false}})");
  wire = {};
  ASSERT_TRUE(Make("openai")->EncodeRequest(said_no, no_usage, &wire).ok());
  EXPECT_EQ(json::parse(wire.body)["stream_options"], json::parse(R"({"include_usage":false})"));
}

TEST(AzureOpenAiDialectTest, DeploymentUrlApiVersionAndKeyHeader) {
  ChatRequest chat = Chat(R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})");
  WireRequest wire;
  std::unique_ptr<Dialect> d = Make("azure_openai");
  ASSERT_TRUE(d->EncodeRequest(chat, {.stream = false, .model = "prod gpt/4o"}, &wire).ok());
  EXPECT_EQ(wire.target,
            "/openai/deployments/prod%20gpt%2F4o/chat/completions?api-version=2024-10-21");
  EXPECT_EQ(d->api_key_header().name, "api-key");
  EXPECT_EQ(d->api_key_header().prefix, "");
  EXPECT_EQ(d->default_base_url(), "");

  d = Make("azure_openai",
           R"({"deployment":"dep1","api_version":"2025-04-01-preview","auth":"bearer"})");
  wire = {};
  ASSERT_TRUE(d->EncodeRequest(chat, {.stream = true, .model = {}}, &wire).ok());
  EXPECT_EQ(wire.target, "/openai/deployments/dep1/chat/completions?api-version=2025-04-01-preview");
  EXPECT_EQ(d->api_key_header().name, "authorization");
  EXPECT_EQ(d->api_key_header().prefix, "Bearer ");
  EXPECT_EQ(json::parse(wire.body)["stream_options"]["include_usage"], true);

  d = Make("azure_openai", R"({"api_style":"v1"})");
  wire = {};
  ASSERT_TRUE(d->EncodeRequest(chat, {.stream = false, .model = "dep2"}, &wire).ok());
  EXPECT_EQ(wire.target, "/openai/v1/chat/completions");
  EXPECT_EQ(json::parse(wire.body)["model"], "dep2");
}

TEST(AzureOpenAiDialectTest, OptionsAreReadStrictly) {
  EXPECT_EQ(NewDialect("azure_openai", R"({"deployments":"x"})").status().message(),
            "deployments: unknown field");
  EXPECT_EQ(NewDialect("azure_openai", R"({"auth":"token"})").status().message(),
            "auth: must be one of \"api-key\", \"bearer\"");
  EXPECT_FALSE(NewDialect("azure_openai", R"({"api_style":"v1","deployment":"d"})").ok());
  EXPECT_FALSE(NewDialect("azure_openai", R"({"api_version":""})").ok());
}

TEST(AzureOpenAiDialectTest, ContentFilterErrorMapsToA400WithItsCode) {
  const std::string body = R"({"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}})";
  absl::Status s = Make("azure_openai")->DecodeError(400, body);
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  json out = json::parse(OpenAiErrorBody(s));
  EXPECT_EQ(out["error"]["code"], "content_filter");
  EXPECT_EQ(out["error"]["param"], "prompt");
  EXPECT_EQ(out["error"]["type"], "invalid_request_error");
}

TEST(AzureOpenAiDialectTest, IngressReadsTheDeploymentAndRequiresApiVersion) {
  std::unique_ptr<Dialect> d = Make("azure_openai");
  WireRequest req;
  req.target = "/openai/deployments/dep1/chat/completions?api-version=2024-10-21";
  req.body = R"({"messages":[{"role":"user","content":"hi"}]})";
  absl::StatusOr<ChatRequest> chat = d->DecodeRequest(req);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->model, "dep1");
  req.target = "/openai/deployments/dep1/chat/completions";
  EXPECT_EQ(HttpStatusForStatus(d->DecodeRequest(req).status()), 404);
}

}  // namespace
}  // namespace modeenvoy
