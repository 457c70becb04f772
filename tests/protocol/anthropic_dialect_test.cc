// tests/protocol/anthropic_dialect_test.cc: the "anthropic" dialect (Anthropic Messages API)
// on the recorded fixtures (vercel-ai anthropic, kong ai-proxy anthropic) and on hand-built
// requests. Expected values are read from the recordings, not from the code's output.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <functional>
#include <memory>
#include <random>
#include <string>
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

using json = nlohmann::json;
using protocol_test::ChunkLines;
using protocol_test::DecodeStream;
using protocol_test::DecodedStream;
using protocol_test::FixturesDir;
using protocol_test::ListFiles;
using protocol_test::ReadFile;
using protocol_test::SseBodyFromChunkLines;
using protocol_test::Split;

constexpr char kVercelDir[] = "vercel-ai/packages/anthropic/src/__fixtures__";
constexpr char kKongDir[] = "kong/spec/fixtures/ai-proxy";

std::unique_ptr<Dialect> Anthropic(std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("anthropic", options);
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

ChatRequest Chat(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *chat : ChatRequest{};
}

// Encodes `body` (a unified request) and returns the Anthropic body as JSON.
json Encode(std::string_view body, DialectCall call = {}, WireRequest* wire_out = nullptr) {
  WireRequest wire;
  absl::Status s = Anthropic()->EncodeRequest(Chat(body), call, &wire);
  EXPECT_TRUE(s.ok()) << s;
  if (wire_out != nullptr) *wire_out = wire;
  return s.ok() ? json::parse(wire.body) : json();
}

absl::Status EncodeError(std::string_view body) {
  WireRequest wire;
  return Anthropic()->EncodeRequest(Chat(body), {}, &wire);
}

std::string Header(const WireRequest& wire, std::string_view name) {
  for (const auto& [k, v] : wire.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

// ---- What a recorded stream says, read straight from its events ----

struct Expected {
  std::string text;
  std::string reasoning;
  struct Call {
    std::string id, name, arguments;
    bool whole = false;  // given whole in a start event (compare as JSON values)
  };
  std::vector<Call> calls;
  int64_t input = 0, output = 0, cache_read = 0, cache_creation = 0;
  std::optional<int64_t> thinking;
  std::string stop_reason;
};

Expected ExpectedFromEvents(const std::vector<std::string>& lines) {
  Expected e;
  std::map<int64_t, size_t> tool_of_block;
  auto take_usage = [&](const json& u) {
    if (u.contains("input_tokens") && u["input_tokens"].is_number()) e.input = u["input_tokens"];
    if (u.contains("output_tokens") && u["output_tokens"].is_number()) {
      e.output = u["output_tokens"];
    }
    if (u.contains("cache_read_input_tokens") && u["cache_read_input_tokens"].is_number()) {
      e.cache_read = u["cache_read_input_tokens"];
    }
    if (u.contains("cache_creation_input_tokens") &&
        u["cache_creation_input_tokens"].is_number()) {
      e.cache_creation = u["cache_creation_input_tokens"];
    }
    if (u.contains("output_tokens_details")) {
      e.thinking = u["output_tokens_details"]["thinking_tokens"].get<int64_t>();
    }
  };
  for (const std::string& line : lines) {
    json ev = json::parse(line);
    std::string type = ev["type"];
    if (type == "message_start") {
      take_usage(ev["message"]["usage"]);
      if (ev["message"]["stop_reason"].is_string()) e.stop_reason = ev["message"]["stop_reason"];
      for (const json& b : ev["message"]["content"]) {
        if (b["type"] == "tool_use") {
          e.calls.push_back({b["id"], b["name"], b["input"].dump(), true});
        } else if (b["type"] == "text" && !b.contains("citations")) {
          e.text += b["text"].get<std::string>();
        }
      }
    } else if (type == "content_block_start") {
      const json& b = ev["content_block"];
      if (b["type"] == "tool_use") {
        tool_of_block[ev["index"]] = e.calls.size();
        std::string input = b["input"].dump();
        e.calls.push_back({b["id"], b["name"], input == "{}" ? "" : input, input != "{}"});
      } else if (b["type"] == "text") {
        e.text += b["text"].get<std::string>();
      }
    } else if (type == "content_block_delta") {
      const json& d = ev["delta"];
      if (d["type"] == "text_delta") e.text += d["text"].get<std::string>();
      if (d["type"] == "thinking_delta") e.reasoning += d["thinking"].get<std::string>();
      if (d["type"] == "input_json_delta" && tool_of_block.count(ev["index"])) {
        e.calls[tool_of_block[ev["index"]]].arguments += d["partial_json"].get<std::string>();
      }
    } else if (type == "content_block_stop") {
      if (tool_of_block.count(ev["index"])) {
        std::string& args = e.calls[tool_of_block[ev["index"]]].arguments;
        if (args.empty()) args = "{}";
        tool_of_block.erase(ev["index"]);
      }
    } else if (type == "message_delta") {
      if (ev.contains("usage")) take_usage(ev["usage"]);
      if (ev["delta"]["stop_reason"].is_string()) e.stop_reason = ev["delta"]["stop_reason"];
    }
  }
  return e;
}

// What the unified events say, reassembled as a client would.
struct Reassembled {
  std::string text, reasoning;
  std::map<int64_t, Expected::Call> calls;
  std::optional<Usage> usage;
  std::string finish_reason;
  bool done = false;
  int usage_chunks = 0;
};

Reassembled Reassemble(const std::vector<std::string>& events) {
  Reassembled r;
  for (const std::string& data : events) {
    EXPECT_FALSE(r.done) << "event after [DONE]: " << data;
    if (data == "[DONE]") {
      r.done = true;
      continue;
    }
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(data);
    EXPECT_TRUE(chunk.ok()) << chunk.status() << "\n" << data;
    if (!chunk.ok()) continue;
    if (chunk->usage) {
      r.usage = chunk->usage;
      ++r.usage_chunks;
    }
    for (const ChunkChoice& c : chunk->choices) {
      EXPECT_EQ(c.index, 0);
      if (c.delta.content) r.text += *c.delta.content;
      for (const auto& [k, v] : c.delta.extra) {
        if (k == "reasoning_content") r.reasoning += json::parse(v).get<std::string>();
      }
      for (const ToolCallDelta& t : c.delta.tool_calls) {
        Expected::Call& call = r.calls[t.index];
        if (t.id) {
          EXPECT_TRUE(call.id.empty()) << "second id for tool call " << t.index;
          call.id = *t.id;
        }
        if (t.function && t.function->name) call.name = *t.function->name;
        if (t.function && t.function->arguments) call.arguments += *t.function->arguments;
      }
      if (c.finish_reason) r.finish_reason = *c.finish_reason;
    }
  }
  return r;
}

std::string Finish(const std::string& stop_reason) {
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "tool_use") return "tool_calls";
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "refusal") return "content_filter";
  return "stop";
}

// A recording of several HTTP responses (multi-step exchanges are stored in one file, one
// message after another) split into one stream per message.
std::vector<std::vector<std::string>> SplitMessages(const std::vector<std::string>& lines) {
  std::vector<std::vector<std::string>> out(1);
  for (const std::string& line : lines) {
    out.back().push_back(line);
    if (json::parse(line)["type"] == "message_stop") out.emplace_back();
  }
  if (out.back().empty()) out.pop_back();
  return out;
}

bool IsBroken(const std::filesystem::path& p) {
  std::string name = p.filename().string();
  return name == "duplicate-message-start.chunks.txt" ||
         name == "spliced-message-start.chunks.txt";
}

TEST(AnthropicDialectTest, EveryRecordedStreamTranslatesIdenticallyUnderAnySplit) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::filesystem::path> files = ListFiles(*dir / kVercelDir, ".chunks.txt");
  ASSERT_EQ(files.size(), 31u);
  std::unique_ptr<Dialect> d = Anthropic();
  int streams = 0;
  int usage_chunks = 0;
  for (const auto& file : files) {
    if (IsBroken(file)) continue;
    int part = 0;
    for (const std::vector<std::string>& lines : SplitMessages(ChunkLines(ReadFile(file)))) {
      SCOPED_TRACE(file.filename().string() + " message " + std::to_string(part++));
      ++streams;
      const std::string body = SseBodyFromChunkLines(lines, /*with_event_type=*/true);
      DecodedStream whole = DecodeStream(*d, body, Split::kWhole);
      ASSERT_TRUE(whole.status.ok()) << whole.status;
      // The gateway reads usage only right before [DONE] (KeepsUsagePromise).
      protocol_test::UsagePromiseCheck promise = protocol_test::CheckUsagePromise(*d, body);
      EXPECT_EQ(promise.broken, "");
      EXPECT_LE(promise.usage_chunks, 1);
      usage_chunks += promise.usage_chunks;
      DecodedStream bytes = DecodeStream(*d, body, Split::kByteByByte);
      ASSERT_TRUE(bytes.status.ok()) << bytes.status;
      EXPECT_EQ(bytes.events, whole.events);
      for (uint32_t seed : {1u, 7u, 42u}) {
        DecodedStream random = DecodeStream(*d, body, Split::kRandom, seed);
        ASSERT_TRUE(random.status.ok()) << random.status;
        EXPECT_EQ(random.events, whole.events);
      }

      const Expected want = ExpectedFromEvents(lines);
      const Reassembled got = Reassemble(whole.events);
      EXPECT_TRUE(got.done);
      EXPECT_EQ(got.text, want.text);
      EXPECT_EQ(got.reasoning, want.reasoning);
      ASSERT_EQ(got.calls.size(), want.calls.size());
      for (size_t i = 0; i < want.calls.size(); ++i) {
        ASSERT_TRUE(got.calls.count(static_cast<int64_t>(i))) << "tool index " << i;
        const Expected::Call& call = got.calls.at(static_cast<int64_t>(i));
        EXPECT_EQ(call.id, want.calls[i].id);
        EXPECT_EQ(call.name, want.calls[i].name);
        if (want.calls[i].whole) {
          EXPECT_EQ(json::parse(call.arguments), json::parse(want.calls[i].arguments));
        } else {
          EXPECT_EQ(call.arguments, want.calls[i].arguments);  // byte for byte
        }
        EXPECT_TRUE(json::accept(call.arguments)) << call.arguments;
      }
      EXPECT_EQ(got.finish_reason, Finish(want.stop_reason));
      ASSERT_TRUE(got.usage.has_value());
      EXPECT_EQ(got.usage_chunks, 1);
      EXPECT_EQ(got.usage->prompt_tokens, want.input + want.cache_read + want.cache_creation);
      EXPECT_EQ(got.usage->completion_tokens, want.output);
      EXPECT_EQ(got.usage->total_tokens, got.usage->prompt_tokens + want.output);
      ASSERT_TRUE(got.usage->prompt_tokens_details.has_value());
      EXPECT_EQ(got.usage->prompt_tokens_details->cached_tokens.value_or(-1), want.cache_read);
      if (want.thinking) {
        ASSERT_TRUE(got.usage->completion_tokens_details.has_value());
        EXPECT_EQ(got.usage->completion_tokens_details->reasoning_tokens, want.thinking);
      }
    }
  }
  EXPECT_EQ(streams, 49);  // 29 files; multi-step recordings hold up to 15 messages
  EXPECT_GT(usage_chunks, 0);
}

TEST(AnthropicDialectTest, ServerToolBlocksAreKeptAsRawEvents) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::string> lines =
      ChunkLines(ReadFile(*dir / kVercelDir / "anthropic-web-search-tool.1.chunks.txt"));
  // Every content block of a type the unified form has no field for, and every delta of
  // such a block or of a citation, comes out verbatim in delta.anthropic_event.
  std::vector<std::string> want;
  std::map<int64_t, std::string> type_of;
  for (const std::string& line : lines) {
    json ev = json::parse(line);
    if (ev["type"] == "content_block_start") {
      type_of[ev["index"]] = ev["content_block"]["type"];
    }
    if (!ev.contains("index")) continue;
    const std::string& t = type_of[ev["index"]];
    bool modeled = t == "text" || t == "tool_use" || t == "thinking";
    bool raw = !modeled || (ev["type"] == "content_block_delta" &&
                            ev["delta"]["type"] == "citations_delta");
    if (raw) want.push_back(ev.dump());
  }
  ASSERT_FALSE(want.empty());
  DecodedStream got = DecodeStream(*Anthropic(), SseBodyFromChunkLines(lines, true), Split::kWhole);
  ASSERT_TRUE(got.status.ok()) << got.status;
  std::vector<std::string> raw;
  for (const std::string& data : got.events) {
    if (data == "[DONE]") continue;
    json chunk = json::parse(data);
    for (const json& c : chunk["choices"]) {
      if (c["delta"].contains("anthropic_event")) raw.push_back(c["delta"]["anthropic_event"].dump());
    }
  }
  EXPECT_EQ(raw, want);
}

TEST(AnthropicDialectTest, MessageDeltaMembersAreKeptOnTheFinishChunk) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::string> lines =
      ChunkLines(ReadFile(*dir / kVercelDir / "anthropic-clear-thinking.1.chunks.txt"));
  json recorded;
  for (const std::string& line : lines) {
    json ev = json::parse(line);
    if (ev["type"] == "message_delta") recorded = ev;
  }
  ASSERT_TRUE(recorded.contains("context_management"));
  DecodedStream got = DecodeStream(*Anthropic(), SseBodyFromChunkLines(lines, true), Split::kWhole);
  ASSERT_TRUE(got.status.ok()) << got.status;
  json finish;
  for (const std::string& data : got.events) {
    if (data == "[DONE]") continue;
    json chunk = json::parse(data);
    if (!chunk["choices"].empty() && chunk["choices"][0]["finish_reason"].is_string()) {
      finish = chunk["choices"][0];
    }
  }
  EXPECT_EQ(finish["delta"]["context_management"], recorded["context_management"]);
}

TEST(AnthropicDialectTest, BrokenStreamsFailClearly) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  for (const char* name : {"duplicate-message-start.chunks.txt", "spliced-message-start.chunks.txt"}) {
    SCOPED_TRACE(name);
    std::string body =
        SseBodyFromChunkLines(ChunkLines(ReadFile(*dir / kVercelDir / name)), true);
    for (Split split : {Split::kWhole, Split::kByteByByte}) {
      DecodedStream got = DecodeStream(*Anthropic(), body, split);
      ASSERT_FALSE(got.status.ok());
      EXPECT_EQ(HttpStatusForStatus(got.status), 502);
      EXPECT_NE(got.status.message().find("message_start"), std::string::npos) << got.status;
      for (const std::string& e : got.events) EXPECT_NE(e, "[DONE]");
    }
  }
}

// Damaged recordings (events dropped, repeated, cut, bytes changed; seeded) either translate or
// fail with a status, identically under any split, and whatever they emit parses.
TEST(AnthropicDialectTest, DamagedStreamsFailCleanlyAndDeterministically) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::unique_ptr<Dialect> d = Anthropic();
  std::mt19937 random(20261203);
  int failed = 0, passed = 0;
  for (const char* name : {"anthropic-text.chunks.txt", "anthropic-tool-no-args.chunks.txt",
                           "anthropic-clear-thinking.1.chunks.txt", "anthropic-mcp.1.chunks.txt",
                           "anthropic-json-tool.2.chunks.txt"}) {
    const std::vector<std::string> lines = ChunkLines(ReadFile(*dir / kVercelDir / name));
    for (int round = 0; round < 60; ++round) {
      std::vector<std::string> damaged = lines;
      const size_t at = std::uniform_int_distribution<size_t>(0, damaged.size() - 1)(random);
      switch (round % 4) {
        case 0: damaged.erase(damaged.begin() + static_cast<std::ptrdiff_t>(at)); break;
        case 1: damaged.insert(damaged.begin() + static_cast<std::ptrdiff_t>(at), damaged[at]); break;
        case 2: damaged.resize(at); break;
        case 3: {
          std::string& line = damaged[at];
          line[std::uniform_int_distribution<size_t>(0, line.size() - 1)(random)] =
              static_cast<char>(std::uniform_int_distribution<int>(32, 126)(random));
          break;
        }
      }
      const std::string body = SseBodyFromChunkLines(damaged, true);
      DecodedStream whole = DecodeStream(*d, body, Split::kWhole);
      DecodedStream bytes = DecodeStream(*d, body, Split::kByteByByte);
      EXPECT_EQ(whole.status, bytes.status) << name << " round " << round;
      EXPECT_EQ(whole.events, bytes.events) << name << " round " << round;
      for (const std::string& e : whole.events) {
        if (e != "[DONE]") {
          EXPECT_TRUE(ParseChatCompletionChunk(e).ok()) << e;
        }
      }
      (whole.status.ok() ? passed : failed)++;
    }
  }
  EXPECT_GT(failed, 0);
  EXPECT_GT(passed, 0);
}

TEST(AnthropicDialectTest, EveryRecordedBodyTranslates) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::filesystem::path> files = ListFiles(*dir / kVercelDir, ".json");
  ASSERT_EQ(files.size(), 31u);
  std::unique_ptr<Dialect> d = Anthropic();
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string original = ReadFile(file);
    json rec = json::parse(original);
    std::string body = original;
    absl::Status s = d->DecodeResponse(&body);
    ASSERT_TRUE(s.ok()) << s;
    absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
    ASSERT_TRUE(c.ok()) << c.status() << "\n" << body;
    EXPECT_EQ(c->id, rec["id"]);
    EXPECT_EQ(c->model, rec["model"]);
    ASSERT_EQ(c->choices.size(), 1u);
    const Message& m = c->choices[0].message;
    std::string text, reasoning;
    std::vector<json> tools;
    bool unmodeled = false;
    for (const json& b : rec["content"]) {
      if (b["type"] == "text") {
        text += b["text"].get<std::string>();
        if (b.contains("citations") && !b["citations"].is_null()) unmodeled = true;
      } else if (b["type"] == "tool_use") {
        tools.push_back(b);
      } else if (b["type"] == "thinking") {
        reasoning += b["thinking"].get<std::string>();
      } else if (b["type"] != "redacted_thinking") {
        unmodeled = true;
      }
    }
    if (m.content) {
      EXPECT_EQ(std::get<std::string>(*m.content), text);
    } else {
      EXPECT_TRUE(text.empty());
    }
    ASSERT_EQ(m.tool_calls.size(), tools.size());
    for (size_t i = 0; i < tools.size(); ++i) {
      EXPECT_EQ(m.tool_calls[i].id, tools[i]["id"]);
      EXPECT_EQ(m.tool_calls[i].function->name, tools[i]["name"]);
      EXPECT_EQ(json::parse(m.tool_calls[i].function->arguments), tools[i]["input"]);
    }
    std::map<std::string, std::string> extra(m.extra.begin(), m.extra.end());
    if (!reasoning.empty()) {
      EXPECT_EQ(json::parse(extra["reasoning_content"]), reasoning);
      json blocks = json::parse(extra["thinking_blocks"]);
      ASSERT_FALSE(blocks.empty());
      EXPECT_TRUE(blocks[0].contains("signature"));
    }
    EXPECT_EQ(extra.count("anthropic_content") == 1, unmodeled);
    if (unmodeled) {
      EXPECT_EQ(json::parse(extra["anthropic_content"]), rec["content"]);
    }
    EXPECT_EQ(c->choices[0].finish_reason.value_or(""), Finish(rec["stop_reason"]));
    const json& u = rec["usage"];
    int64_t read = u.value("cache_read_input_tokens", 0);
    int64_t creation = u.value("cache_creation_input_tokens", 0);
    ASSERT_TRUE(c->usage.has_value());
    EXPECT_EQ(c->usage->prompt_tokens, u["input_tokens"].get<int64_t>() + read + creation);
    EXPECT_EQ(c->usage->completion_tokens, u["output_tokens"].get<int64_t>());
    EXPECT_EQ(c->usage->prompt_tokens_details->cached_tokens.value_or(-1), read);
    if (u.contains("output_tokens_details")) {
      ASSERT_TRUE(c->usage->completion_tokens_details.has_value());
      EXPECT_EQ(c->usage->completion_tokens_details->reasoning_tokens,
                u["output_tokens_details"]["thinking_tokens"].get<int64_t>());
    } else {
      EXPECT_FALSE(c->usage->completion_tokens_details.has_value());
    }
  }
}

TEST(AnthropicDialectTest, KongResponsesTranslateAsKongExpectsWhereTheMappingAgrees) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  const std::filesystem::path unit = *dir / kKongDir / "unit";
  std::string body = ReadFile(unit / "real-responses/anthropic/llm-v1-chat.json");
  ASSERT_TRUE(Anthropic()->DecodeResponse(&body).ok());
  json got = json::parse(body);
  json want = json::parse(ReadFile(unit / "expected-responses/anthropic/llm-v1-chat.json"));
  EXPECT_EQ(got["model"], want["model"]);
  EXPECT_EQ(got["object"], want["object"]);
  EXPECT_EQ(got["choices"][0]["message"]["content"], want["choices"][0]["message"]["content"]);
  EXPECT_EQ(got["choices"][0]["message"]["role"], want["choices"][0]["message"]["role"]);
  // Deliberate difference: Kong passes stop_sequence through as the finish reason; OpenAI's
  // clients know "stop" only.
  EXPECT_EQ(want["choices"][0]["finish_reason"], "stop_sequence");
  EXPECT_EQ(got["choices"][0]["finish_reason"], "stop");

  // Kong's mock-server bodies.
  const std::filesystem::path mock = *dir / kKongDir / "anthropic/llm-v1-chat/responses";
  body = ReadFile(mock / "good.json");
  ASSERT_TRUE(Anthropic()->DecodeResponse(&body).ok());
  EXPECT_EQ(json::parse(body)["choices"][0]["message"]["content"], "The sum of 1 + 1 is 2.");
  body = ReadFile(mock / "no_usage_response.json");
  ASSERT_TRUE(Anthropic()->DecodeResponse(&body).ok());
  EXPECT_FALSE(json::parse(body).contains("usage"));
  body = ReadFile(mock / "malformed_usage_response.json");
  ASSERT_TRUE(Anthropic()->DecodeResponse(&body).ok());
  EXPECT_EQ(json::parse(body)["usage"]["prompt_tokens"], 0);
  body = ReadFile(mock / "bad_upstream_response.json");
  absl::Status bad = Anthropic()->DecodeResponse(&body);
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(HttpStatusForStatus(bad), 502);

  absl::Status s = Anthropic()->DecodeError(401, ReadFile(mock / "unauthorized.json"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(s.message(), "Invalid API Key");
  json err = json::parse(OpenAiErrorBody(s));
  EXPECT_EQ(err["error"]["type"], "authentication_error");
  s = Anthropic()->DecodeError(400, ReadFile(mock / "bad_request.json"));
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  s = Anthropic()->DecodeError(500, ReadFile(mock / "internal_server_error.html"));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusForStatus(s), 500);
}

TEST(AnthropicDialectTest, KongRequestEncodesAsKongExpectsWhereTheMappingAgrees) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  const std::filesystem::path unit = *dir / kKongDir / "unit";
  json request = json::parse(ReadFile(unit / "requests/llm-v1-chat.json"));
  json want = json::parse(ReadFile(unit / "expected-requests/anthropic/llm-v1-chat.json"));
  // Kong's plugin config supplies model, max_tokens and temperature; give the same.
  request["model"] = "claude-2.1";
  request["max_tokens"] = 512;
  request["temperature"] = 0.5;
  json got = Encode(request.dump());
  EXPECT_EQ(got["system"], want["system"]);
  EXPECT_EQ(got["messages"], want["messages"]);
  EXPECT_EQ(got["model"], want["model"]);
  EXPECT_EQ(got["max_tokens"], want["max_tokens"]);
  EXPECT_EQ(got["temperature"], want["temperature"]);
  // Deliberate difference: "stream" is written only when true (false is the default).
  EXPECT_FALSE(got.contains("stream"));
  EXPECT_EQ(want["stream"], false);
}

TEST(AnthropicDialectTest, KongMockRequestsAndOtherResponsesTranslate) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  const std::filesystem::path root = *dir / kKongDir / "anthropic";
  for (const char* name : {"good.json", "good-stream.json", "good_own_model.json"}) {
    SCOPED_TRACE(name);
    json request = json::parse(ReadFile(root / "llm-v1-chat/requests" / name));
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(request.dump(), {.validate = false});
    ASSERT_TRUE(chat.ok()) << chat.status();
    WireRequest wire;
    const bool stream = request.value("stream", false);
    ASSERT_TRUE(Anthropic()
                    ->EncodeRequest(*chat, {.stream = stream, .model = "claude-2.1", .client_headers = nullptr},
                                    &wire)
                    .ok());
    json body = json::parse(wire.body);
    EXPECT_EQ(body["model"], "claude-2.1");  // the route's model wins over the client's
    EXPECT_EQ(body["system"], request["messages"][0]["content"]);
    EXPECT_EQ(body["messages"], json::array({request["messages"][1]}));
    EXPECT_EQ(body.value("stream", false), stream);
  }
  // bad_request.json has no "messages": the unified parser refuses it before any dialect.
  EXPECT_FALSE(ParseChatRequest(ReadFile(root / "llm-v1-chat/requests/bad_request.json")).ok());

  std::string body = ReadFile(root / "request-transformer/response-in-json.json");
  json recorded = json::parse(body);
  ASSERT_TRUE(Anthropic()->DecodeResponse(&body).ok());
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content),
            recorded["content"][0]["text"]);
  EXPECT_EQ(c->usage->prompt_tokens, 10);
  EXPECT_EQ(c->usage->completion_tokens, 25);

  // The legacy Text Completions API (llm-v1-completions) is not the Messages API: a clear
  // error, not a guess.
  body = ReadFile(root / "llm-v1-completions/responses/good.json");
  absl::Status s = Anthropic()->DecodeResponse(&body);
  EXPECT_EQ(HttpStatusForStatus(s), 502);
}

// ---- Requests ----

TEST(AnthropicDialectTest, RequestHasPathHeadersAndDefaultMaxTokens) {
  WireRequest wire;
  json body = Encode(R"({"model":"claude","messages":[{"role":"user","content":"hi"}]})",
                     {.stream = true, .model = "claude-sonnet-4-5"}, &wire);
  EXPECT_EQ(wire.method, "POST");
  EXPECT_EQ(wire.target, "/v1/messages");
  EXPECT_EQ(Header(wire, "anthropic-version"), "2023-06-01");
  EXPECT_EQ(Header(wire, "accept"), "text/event-stream");
  EXPECT_EQ(Header(wire, "anthropic-beta"), "<absent>");
  EXPECT_EQ(body, json::parse(R"({"model":"claude-sonnet-4-5","max_tokens":4096,
      "messages":[{"role":"user","content":"hi"}],"stream":true})"));
  EXPECT_EQ(Anthropic()->default_base_url(), "https://api.anthropic.com");
  EXPECT_EQ(Anthropic()->api_key_header().name, "x-api-key");
  EXPECT_EQ(Anthropic()->api_key_header().prefix, "");
}

TEST(AnthropicDialectTest, OptionsSetVersionBetaAndDefaultMaxTokens) {
  std::unique_ptr<Dialect> d = Anthropic(
      R"({"version":"2024-01-01","beta":["b2","b3"],"default_max_tokens":100})");
  WireHeaders client = {{"anthropic-beta", "b1, b2"}, {"x-other", "1"}};
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(Chat(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"),
                               {.stream = false, .model = {}, .client_headers = &client}, &wire)
                  .ok());
  EXPECT_EQ(Header(wire, "anthropic-version"), "2024-01-01");
  EXPECT_EQ(Header(wire, "anthropic-beta"), "b1,b2,b3");
  EXPECT_EQ(json::parse(wire.body)["max_tokens"], 100);

  absl::StatusOr<std::unique_ptr<Dialect>> bad = NewDialect("anthropic", R"({"versoin":"x"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "versoin: unknown field");
  bad = NewDialect("anthropic", R"({"default_max_tokens":0})");
  EXPECT_FALSE(bad.ok());
  bad = NewDialect("anthropic", R"({"beta":[""]})");
  EXPECT_FALSE(bad.ok());
}

TEST(AnthropicDialectTest, SystemMessagesBecomeTheTopLevelSystem) {
  json body = Encode(R"({"model":"m","messages":[{"role":"system","content":"be brief"},
      {"role":"user","content":"hi"}]})");
  EXPECT_EQ(body["system"], "be brief");
  body = Encode(R"({"model":"m","messages":[{"role":"system","content":"a"},
      {"role":"developer","content":[{"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]},
      {"role":"user","content":"hi"}]})");
  EXPECT_EQ(body["system"], json::parse(R"([{"type":"text","text":"a"},
      {"type":"text","text":"b","cache_control":{"type":"ephemeral"}}])"));
  EXPECT_EQ(body["messages"].size(), 1u);
}

TEST(AnthropicDialectTest, ImagesMapToUrlAndBase64Sources) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"text","text":"what?"},
      {"type":"image_url","image_url":{"url":"https://x.test/a.png"}},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA","detail":"auto"},
       "cache_control":{"type":"ephemeral"}}]}]})");
  EXPECT_EQ(body["messages"][0]["content"], json::parse(R"([{"type":"text","text":"what?"},
      {"type":"image","source":{"type":"url","url":"https://x.test/a.png"}},
      {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"},
       "cache_control":{"type":"ephemeral"}}])"));

  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"image_url","image_url":{"url":"http://x.test/a.png"}}]}]})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ErrorParam(s), "messages[0].content[0].image_url.url");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"image_url","image_url":{"url":"data:image/bmp;base64,AA"}}]}]})");
  EXPECT_EQ(*ErrorParam(s), "messages[0].content[0].image_url.url");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"input_audio","input_audio":{"data":"AA","format":"wav"}}]}]})");
  EXPECT_EQ(s.message(), "messages[0].content[0].input_audio: not supported by anthropic");
}

TEST(AnthropicDialectTest, ToolsChoicesCallsAndResultsMap) {
  json body = Encode(R"({"model":"m","messages":[
      {"role":"user","content":"weather?"},
      {"role":"assistant","content":"","tool_calls":[
        {"id":"t1","type":"function","function":{"name":"get","arguments":"{\"city\": \"Paris\"}"}},
        {"id":"t2","type":"function","function":{"name":"now","arguments":""}}]},
      {"role":"tool","tool_call_id":"t1","content":"sunny"},
      {"role":"tool","tool_call_id":"t2","content":[{"type":"text","text":"noon"}]},
      {"role":"user","content":"thanks"}],
    "tools":[{"type":"function","function":{"name":"get","description":"d",
      "parameters":{"type":"object","properties":{"city":{"type":"string"}}}},
      "cache_control":{"type":"ephemeral"}},
      {"type":"function","function":{"name":"now"}}],
    "tool_choice":"required","parallel_tool_calls":false})");
  EXPECT_EQ(body["messages"], json::parse(R"([
      {"role":"user","content":"weather?"},
      {"role":"assistant","content":[
        {"type":"tool_use","id":"t1","name":"get","input":{"city":"Paris"}},
        {"type":"tool_use","id":"t2","name":"now","input":{}}]},
      {"role":"user","content":[
        {"type":"tool_result","tool_use_id":"t1","content":"sunny"},
        {"type":"tool_result","tool_use_id":"t2","content":[{"type":"text","text":"noon"}]}]},
      {"role":"user","content":"thanks"}])"));
  EXPECT_EQ(body["tools"], json::parse(R"([
      {"name":"get","description":"d","input_schema":{"type":"object","properties":{"city":{"type":"string"}}},
       "cache_control":{"type":"ephemeral"}},
      {"name":"now","input_schema":{"type":"object","properties":{}}}])"));
  EXPECT_EQ(body["tool_choice"], json::parse(R"({"type":"any","disable_parallel_tool_use":true})"));

  const std::string base = R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":)";
  EXPECT_EQ(Encode(base + R"("auto"})")["tool_choice"], json::parse(R"({"type":"auto"})"));
  EXPECT_EQ(Encode(base + R"("none"})")["tool_choice"], json::parse(R"({"type":"none"})"));
  EXPECT_EQ(Encode(base + R"({"type":"function","function":{"name":"f"}}})")["tool_choice"],
            json::parse(R"({"type":"tool","name":"f"})"));

  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"},
      {"role":"assistant","tool_calls":[{"id":"a","type":"function",
        "function":{"name":"f","arguments":"[1]"}}]}]})");
  EXPECT_EQ(*ErrorParam(s), "messages[1].tool_calls[0].function.arguments");
}

TEST(AnthropicDialectTest, AnthropicServerToolsPassThrough) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}]})");
  EXPECT_EQ(body["tools"],
            json::parse(R"([{"type":"web_search_20250305","name":"web_search","max_uses":3}])"));
}

TEST(AnthropicDialectTest, SamplingStopAndLimits) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "temperature":0.3,"top_p":0.9,"stop":["END","##"],"max_completion_tokens":77,
      "top_k":5,"user":"u1"})");
  EXPECT_EQ(body["temperature"], 0.3);
  EXPECT_EQ(body["top_p"], 0.9);
  EXPECT_EQ(body["top_k"], 5);
  EXPECT_EQ(body["stop_sequences"], json::parse(R"(["END","##"])"));
  EXPECT_EQ(body["max_tokens"], 77);
  EXPECT_EQ(body["metadata"], json::parse(R"({"user_id":"u1"})"));
  EXPECT_EQ(Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":"S",
      "max_tokens":9})")["stop_sequences"], json::parse(R"(["S"])"));

  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "temperature":1.5})");
  EXPECT_EQ(*ErrorParam(s), "temperature");
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})");
  EXPECT_EQ(*ErrorParam(s), "n");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"seed":1})");
  EXPECT_EQ(*ErrorParam(s), "seed");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "presence_penalty":0.5})");
  EXPECT_EQ(*ErrorParam(s), "presence_penalty");
  // Neutral values lose nothing and pass.
  Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],"presence_penalty":0,
      "frequency_penalty":0,"n":1,"logprobs":false,"store":false,"modalities":["text"]})");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x","name":"bob"}]})");
  EXPECT_EQ(*ErrorParam(s), "messages[0].name");
}

// prompt_cache_key is OpenAI's cache-routing hint: Anthropic caches by cache_control marks,
// and the answer is the same without it, so it is not sent (and not refused).
TEST(AnthropicDialectTest, PromptCacheKeyIsACacheHintAndNotSent) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "prompt_cache_key":"codex-session-1"})");
  EXPECT_FALSE(body.contains("prompt_cache_key"));
  EXPECT_EQ(body["messages"], json::parse(R"([{"role":"user","content":"x"}])"));
}

TEST(AnthropicDialectTest, ReasoningEffortBecomesAThinkingBudget) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "reasoning_effort":"medium"})");
  EXPECT_EQ(body["thinking"], json::parse(R"({"type":"enabled","budget_tokens":4096})"));
  EXPECT_EQ(body["max_tokens"], 4096 + 4096);
  body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "thinking":{"type":"enabled","budget_tokens":2000},"max_tokens":3000})");
  EXPECT_EQ(body["thinking"], json::parse(R"({"type":"enabled","budget_tokens":2000})"));
  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "reasoning_effort":"high","max_tokens":1000})");
  EXPECT_EQ(*ErrorParam(s), "max_tokens");
}

TEST(AnthropicDialectTest, ThinkingBlocksAndVerbatimContentGoBackOnAssistantTurns) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":"ok","reasoning_content":"hmm",
       "thinking_blocks":[{"type":"thinking","thinking":"hmm","signature":"sig"}]},
      {"role":"user","content":"more","cache_control":{"type":"ephemeral"}}]})");
  EXPECT_EQ(body["messages"][1]["content"], json::parse(R"([
      {"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"text","text":"ok"}])"));
  EXPECT_EQ(body["messages"][2]["content"], json::parse(R"([
      {"type":"text","text":"more","cache_control":{"type":"ephemeral"}}])"));
  body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"},
      {"role":"assistant","content":"ignored",
       "anthropic_content":[{"type":"server_tool_use","id":"s","name":"web_search","input":{}}]}]})");
  EXPECT_EQ(body["messages"][1]["content"], json::parse(R"([
      {"type":"server_tool_use","id":"s","name":"web_search","input":{}}])"));
}

TEST(AnthropicDialectTest, JsonSchemaBecomesOutputFormat) {
  json body = Encode(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,
        "schema":{"type":"object","properties":{"a":{"type":"string"}},"required":["a"],
                  "additionalProperties":false}}}})");
  EXPECT_EQ(body["output_config"], json::parse(R"({"format":{"type":"json_schema","schema":
      {"type":"object","properties":{"a":{"type":"string"}},"required":["a"],
       "additionalProperties":false}}})"));
  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_object"}})");
  EXPECT_EQ(*ErrorParam(s), "response_format.type");
}

// ---- Responses and streams by hand ----

TEST(AnthropicDialectTest, MidStreamErrorIsTheUnifiedError) {
  const std::string body =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
      "\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"
      "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
      "\"message\":\"Overloaded\"}}\n\n";
  DecodedStream got = DecodeStream(*Anthropic(), body, Split::kByteByByte);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusForStatus(got.status), 529);
  EXPECT_EQ(got.status.message(), "Overloaded");
  json err = json::parse(OpenAiErrorBody(got.status));
  EXPECT_EQ(err["error"]["type"], "overloaded_error");
}

TEST(AnthropicDialectTest, StreamCutShortIsAnError) {
  const std::string body =
      "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
      "\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n";
  DecodedStream got = DecodeStream(*Anthropic(), body, Split::kWhole);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kUnavailable);
}

TEST(AnthropicDialectTest, ErrorBodyKeepsStatusAndType) {
  absl::Status s = Anthropic()->DecodeError(
      429, R"({"type":"error","error":{"type":"rate_limit_error","message":"slow"}})");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusForStatus(s), 429);
  s = Anthropic()->DecodeError(
      529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_EQ(HttpStatusForStatus(s), 529);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
}

// ---- Ingress ----

TEST(AnthropicDialectTest, DecodeRequestIsStrictAndMapsBack) {
  std::unique_ptr<Dialect> d = Anthropic();
  WireRequest wire;
  wire.target = "/v1/messages";
  wire.body = R"({"model":"c","messages":[{"role":"user","content":"hi"}]})";
  absl::StatusOr<ChatRequest> bad = d->DecodeRequest(wire);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(*ErrorParam(bad.status()), "max_tokens");

  wire.body = R"({"model":"c","max_tokens":10,"system":"s","top_k":3,
      "stop_sequences":["x"],"tool_choice":{"type":"any","disable_parallel_tool_use":true},
      "tools":[{"name":"f","input_schema":{"type":"object"}}],
      "messages":[{"role":"user","content":"hi"},
        {"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f","input":{"a":1}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"},
                                  {"type":"text","text":"and?"}]}]})";
  absl::StatusOr<ChatRequest> chat = d->DecodeRequest(wire);
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_TRUE(ValidateChatRequest(*chat).ok()) << ValidateChatRequest(*chat);
  ASSERT_EQ(chat->messages.size(), 5u);
  EXPECT_EQ(chat->messages[0].role, Role::kSystem);
  EXPECT_EQ(chat->messages[2].tool_calls[0].function->arguments, R"({"a":1})");
  EXPECT_EQ(chat->messages[3].role, Role::kTool);
  EXPECT_EQ(chat->tool_choice->mode, "required");
  EXPECT_EQ(chat->parallel_tool_calls, false);
  // And back: the request the dialect would send upstream says the same.
  WireRequest again;
  ASSERT_TRUE(d->EncodeRequest(*chat, {}, &again).ok());
  json original = json::parse(wire.body);
  json round = json::parse(again.body);
  EXPECT_EQ(round["messages"][0], original["messages"][0]);
  EXPECT_EQ(round["messages"][1], original["messages"][1]);
  EXPECT_EQ(round["tool_choice"], original["tool_choice"]);
  EXPECT_EQ(round["top_k"], 3);
}

TEST(AnthropicDialectTest, StreamEncoderOutputDecodesBackToTheSameChunks) {
  std::unique_ptr<Dialect> d = Anthropic();
  std::unique_ptr<StreamEncoder> enc = d->NewStreamEncoder();
  std::vector<std::string> unified = {
      R"({"id":"m1","object":"chat.completion.chunk","created":0,"model":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]})",
      R"({"id":"m1","object":"chat.completion.chunk","created":0,"model":"c","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]})",
      R"({"id":"m1","object":"chat.completion.chunk","created":0,"model":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}]})",
      R"({"id":"m1","object":"chat.completion.chunk","created":0,"model":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"tool_calls"}]})",
      R"({"id":"m1","object":"chat.completion.chunk","created":0,"model":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}})",
  };
  std::string bytes;
  for (const std::string& u : unified) {
    ASSERT_TRUE(enc->Encode(*ParseChatCompletionChunk(u), &bytes).ok());
  }
  ASSERT_TRUE(enc->Finish(&bytes).ok());
  DecodedStream back = DecodeStream(*d, bytes, Split::kRandom, 3);
  ASSERT_TRUE(back.status.ok()) << back.status << "\n" << bytes;
  Reassembled r = Reassemble(back.events);
  EXPECT_EQ(r.text, "Hello");
  ASSERT_EQ(r.calls.size(), 1u);
  EXPECT_EQ(r.calls[0].arguments, R"({"a":1})");
  EXPECT_EQ(r.finish_reason, "tool_calls");
  EXPECT_EQ(r.usage->prompt_tokens, 5);
  EXPECT_EQ(r.usage->completion_tokens, 3);

  std::string err;
  enc = d->NewStreamEncoder();
  enc->EncodeError(WithHttpStatus(absl::UnavailableError("busy"), 529), &err);
  EXPECT_EQ(err, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
                 "\"overloaded_error\",\"message\":\"busy\"}}\n\n");
}

TEST(AnthropicDialectTest, EncodeResponseAndDecodeResponseAgree) {
  std::unique_ptr<Dialect> d = Anthropic();
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(R"({"id":"m","object":"chat.completion",
      "created":0,"model":"c","choices":[{"index":0,"message":{"role":"assistant","content":"hi",
      "tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},
      "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":2,
      "total_tokens":12,"prompt_tokens_details":{"cached_tokens":4}}})");
  ASSERT_TRUE(c.ok());
  absl::StatusOr<std::string> body = d->EncodeResponse(*c);
  ASSERT_TRUE(body.ok()) << body.status();
  json a = json::parse(*body);
  EXPECT_EQ(a["stop_reason"], "tool_use");
  EXPECT_EQ(a["usage"]["input_tokens"], 6);
  EXPECT_EQ(a["usage"]["cache_read_input_tokens"], 4);
  std::string text = *body;
  ASSERT_TRUE(d->DecodeResponse(&text).ok());
  absl::StatusOr<ChatCompletion> back = ParseChatCompletion(text);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->choices[0].message.tool_calls, c->choices[0].message.tool_calls);
  EXPECT_EQ(back->usage->prompt_tokens, 10);
  EXPECT_EQ(d->EncodeErrorBody(absl::InvalidArgumentError("bad")),
            R"({"type":"error","error":{"type":"invalid_request_error","message":"bad"}})");
}

// The encoder writes a field path only when it reports an error (no string per message,
// block and tool call): the paths at every depth, from the request's structure.
TEST(AnthropicDialectTest, EncodeErrorsNameTheFieldAtEveryDepth) {
  auto text_part = [](std::string text) {
    ContentPart p;
    p.text = std::move(text);
    return p;
  };
  auto base = [&]() {
    ChatRequest chat;
    chat.model = "m";
    chat.messages.push_back(MakeMessage(Role::kSystem, "s"));
    chat.messages.push_back(MakeMessage(Role::kUser, "hi"));
    Message a = MakeMessage(Role::kAssistant);
    ToolCall call;
    call.id = "t1";
    call.function.emplace().name = "f";
    call.function->arguments = "{}";
    a.tool_calls.push_back(call);
    chat.messages.push_back(std::move(a));
    Message tool = MakeMessage(Role::kTool, "r");
    tool.tool_call_id = "t1";
    chat.messages.push_back(std::move(tool));
    Tool t;
    t.function.emplace().name = "f";
    chat.tools.push_back(t);
    return chat;
  };
  struct Case {
    std::function<void(ChatRequest&)> change;
    std::string path;
  };
  const std::vector<Case> cases = {
      {[&](ChatRequest& c) {
         ContentPart image;
         image.type = ContentPartType::kImageUrl;
         image.image_url.emplace().url = "https://x.test/a.png";
         image.image_url->detail = "low";
         c.messages[1].content = std::vector<ContentPart>{text_part("a"), image};
       },
       "messages[1].content[1].image_url.detail"},
      {[&](ChatRequest& c) {
         ContentPart part = text_part("a");
         part.extra.emplace_back("text", "\"b\"");
         c.messages[1].content = std::vector<ContentPart>{part};
       },
       "messages[1].content[0].text"},
      {[](ChatRequest& c) { c.messages[1].extra.emplace_back("foo", "1"); }, "messages[1].foo"},
      {[&](ChatRequest& c) {
         // (A lone system string is written as is; as blocks, each message is checked.)
         c.messages[0].content = std::vector<ContentPart>{text_part("s")};
         c.messages[0].name = "n";
       },
       "messages[0].name"},
      {[](ChatRequest& c) { c.messages[0].extra.emplace_back("foo", "1"); }, "messages[0].foo"},
      {[](ChatRequest& c) {
         ToolCall& custom = c.messages[2].tool_calls.emplace_back();
         custom.id = "t2";
         custom.type = "custom";
       },
       "messages[2].tool_calls[1].type"},
      {[](ChatRequest& c) { c.messages[2].tool_calls[0].extra.emplace_back("x", "1"); },
       "messages[2].tool_calls[0].x"},
      {[](ChatRequest& c) { c.messages[2].tool_calls[0].function->arguments = "[1]"; },
       "messages[2].tool_calls[0].function.arguments"},
      {[&](ChatRequest& c) {
         ContentPart image;
         image.type = ContentPartType::kImageUrl;
         image.image_url.emplace().url = "https://x.test/a.png";
         c.messages[2].content = std::vector<ContentPart>{text_part("a"), image};
       },
       "messages[2].content[1].type"},
      {[](ChatRequest& c) {
         ContentPart audio;
         audio.type = ContentPartType::kInputAudio;
         audio.input_audio.emplace();
         c.messages[3].content = std::vector<ContentPart>{audio};
       },
       "messages[3].content[0].input_audio"},
      {[](ChatRequest& c) { c.messages[3].extra.emplace_back("foo", "1"); }, "messages[3].foo"},
      {[](ChatRequest& c) { c.tools.emplace_back().type = "custom"; }, "tools[1].type"},
      {[](ChatRequest& c) { c.tools[0].function->extra.emplace_back("name", "\"g\""); },
       "tools[0].function.name"},
      {[](ChatRequest& c) { c.tools[0].extra.emplace_back("type", "\"x\""); }, "tools[0].type"},
  };
  {
    WireRequest wire;
    ASSERT_TRUE(Anthropic()->EncodeRequest(base(), {}, &wire).ok());
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.path);
    ChatRequest chat = base();
    c.change(chat);
    WireRequest wire;
    absl::Status s = Anthropic()->EncodeRequest(chat, {}, &wire);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ErrorParam(s), c.path) << s;
    EXPECT_EQ(std::string(s.message()).rfind(c.path + ": ", 0), 0u) << s;
  }
}

}  // namespace
}  // namespace modeenvoy
