// tests/protocol/ollama_dialect_test.cc: the "ollama" dialect (native /api/chat) against
// Kong's Ollama recordings and hand-built NDJSON streams of the same shapes.
#include <memory>
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

using nlohmann::json;
using protocol_test::DecodeStream;
using protocol_test::DecodedStream;
using protocol_test::FixturesDir;
using protocol_test::ReadFile;
using protocol_test::Split;

constexpr const char* kKong = "kong/spec/fixtures/ai-proxy/";

WireRequest BodyOnly(std::string body) {
  WireRequest wire;
  wire.body = std::move(body);
  return wire;
}

std::unique_ptr<Dialect> Ollama(std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("ollama", options);
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

ChatRequest Req(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return *chat;
}

json Encode(const ChatRequest& chat, bool stream = false, std::string_view model = {}) {
  WireRequest wire;
  absl::Status s = Ollama()->EncodeRequest(chat, {.stream = stream, .model = model}, &wire);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(wire.target, "/api/chat");
  return json::parse(wire.body);
}

absl::Status EncodeError(std::string_view body) {
  WireRequest wire;
  return Ollama()->EncodeRequest(Req(body), {}, &wire);
}

// Concatenated content / reasoning / tool arguments of unified chunks, and the usage.
struct Reassembled {
  std::string content, reasoning;
  std::vector<std::string> call_ids, call_names, call_args;
  std::string finish;
  std::optional<Usage> usage;
  bool done = false;
};

Reassembled Reassemble(const std::vector<std::string>& events) {
  Reassembled r;
  for (const std::string& e : events) {
    if (e == "[DONE]") {
      r.done = true;
      continue;
    }
    absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(e);
    EXPECT_TRUE(c.ok()) << c.status() << " in " << e;
    if (!c.ok()) continue;
    if (c->usage.has_value()) r.usage = c->usage;
    for (const ChunkChoice& ch : c->choices) {
      if (ch.delta.content) r.content += *ch.delta.content;
      for (const auto& [k, v] : ch.delta.extra) {
        if (k == "reasoning_content") r.reasoning += json::parse(v).get<std::string>();
      }
      for (const ToolCallDelta& t : ch.delta.tool_calls) {
        if (t.index >= static_cast<int64_t>(r.call_args.size())) {
          r.call_args.resize(t.index + 1);
          r.call_ids.resize(t.index + 1);
          r.call_names.resize(t.index + 1);
        }
        if (t.id) r.call_ids[t.index] = *t.id;
        if (t.function && t.function->name) r.call_names[t.index] += *t.function->name;
        if (t.function && t.function->arguments) r.call_args[t.index] += *t.function->arguments;
      }
      if (ch.finish_reason) r.finish = *ch.finish_reason;
    }
  }
  return r;
}

TEST(OllamaDialectTest, HasNoDefaultBaseUrlAndSendsAKeyAsBearer) {
  std::unique_ptr<Dialect> d = Ollama();
  EXPECT_EQ(d->default_base_url(), "");
  EXPECT_EQ(d->api_key_header().name, "authorization");
  EXPECT_EQ(d->api_key_header().prefix, "Bearer ");
  EXPECT_EQ(d->ResponseFraming(true), Framing::kNdjson);
  EXPECT_EQ(d->ResponseFraming(false), Framing::kJson);
}

TEST(OllamaDialectTest, UnknownOptionIsRefusedByName) {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("ollama", R"({"host":"x"})");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "host: unknown field");
}

// Kong's request fixture, with the max_tokens and temperature its test config adds, must
// become Kong's expected Ollama request.
TEST(OllamaDialectTest, KongChatRequestBecomesTheExpectedOllamaRequest) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  for (const char* model : {"llama2", "mistral"}) {
    json in = json::parse(ReadFile(*dir / kKong / "unit/requests/llm-v1-chat.json"));
    json expected = json::parse(ReadFile(
        *dir / kKong / (std::string("unit/expected-requests/") + model + "/ollama/llm-v1-chat.json")));
    in["model"] = "public";
    in["max_tokens"] = 512;
    in["temperature"] = 0.5;
    std::string upstream = expected["model"];
    EXPECT_EQ(Encode(Req(in.dump()), false, upstream), expected) << model;
  }
}

TEST(OllamaDialectTest, KongRecordedResponsesTranslate) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  for (const char* path : {"unit/real-responses/llama2/ollama/llm-v1-chat.json",
                           "unit/real-responses/mistral/ollama/llm-v1-chat.json"}) {
    std::string body = ReadFile(*dir / kKong / path);
    json recorded = json::parse(body);
    ASSERT_TRUE(Ollama()->DecodeResponse(&body).ok()) << path;
    absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
    ASSERT_TRUE(c.ok()) << c.status();
    ASSERT_EQ(c->choices.size(), 1u);
    EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content),
              recorded["message"]["content"].get<std::string>());
    EXPECT_EQ(c->choices[0].finish_reason, "stop");
    EXPECT_EQ(c->model, recorded["model"].get<std::string>());
    EXPECT_EQ(c->created, 1705306418);  // 2024-01-15T08:13:38Z
    ASSERT_TRUE(c->usage.has_value());
    // The recording's counts (Kong's expected file has made-up ones).
    EXPECT_EQ(c->usage->prompt_tokens, recorded["prompt_eval_count"].get<int64_t>());
    EXPECT_EQ(c->usage->completion_tokens, recorded["eval_count"].get<int64_t>());
    EXPECT_EQ(c->usage->total_tokens, c->usage->prompt_tokens + c->usage->completion_tokens);
    json out = json::parse(body);
    EXPECT_EQ(out["total_duration"], recorded["total_duration"]);
    EXPECT_EQ(out["eval_duration"], recorded["eval_duration"]);
    EXPECT_TRUE(c->id.rfind("chatcmpl-ollama-", 0) == 0) << c->id;
  }
}

TEST(OllamaDialectTest, GenerateAnswerIsRefusedByName) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  std::string body = ReadFile(*dir / kKong / "unit/real-responses/llama2/ollama/llm-v1-completions.json");
  absl::Status s = Ollama()->DecodeResponse(&body);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("/api/generate"), std::string::npos) << s;
}

// The recorded answer cut into the NDJSON lines Ollama streams: one word per line, then
// the final line with the counts.
std::string StreamOfRecording(const json& recorded, std::string* text) {
  std::string content = recorded["message"]["content"];
  std::string body;
  size_t at = 0;
  while (at < content.size()) {
    size_t next = content.find(' ', at + 1);
    if (next == std::string::npos) next = content.size();
    json line = {{"model", recorded["model"]},
                 {"created_at", recorded["created_at"]},
                 {"message", {{"role", "assistant"}, {"content", content.substr(at, next - at)}}},
                 {"done", false}};
    body += line.dump() + "\n";
    at = next;
  }
  json last = recorded;
  last["message"]["content"] = "";
  last["done_reason"] = "stop";
  body += last.dump() + "\n";
  *text = content;
  return body;
}

TEST(OllamaDialectTest, StreamOfTheRecordingIsIdenticalUnderAnySplit) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  json recorded =
      json::parse(ReadFile(*dir / kKong / "unit/real-responses/llama2/ollama/llm-v1-chat.json"));
  std::string text;
  const std::string body = StreamOfRecording(recorded, &text);
  std::unique_ptr<Dialect> d = Ollama();
  DecodedStream whole = DecodeStream(*d, body, Split::kWhole);
  ASSERT_TRUE(whole.status.ok()) << whole.status;
  // The gateway reads usage only right before [DONE] (KeepsUsagePromise).
  protocol_test::UsagePromiseCheck promise = protocol_test::CheckUsagePromise(*d, body);
  EXPECT_EQ(promise.broken, "");
  EXPECT_EQ(promise.usage_chunks, 1);
  for (Split split : {Split::kByteByByte, Split::kRandom}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      DecodedStream got = DecodeStream(*d, body, split, seed);
      ASSERT_TRUE(got.status.ok()) << got.status;
      EXPECT_EQ(got.events, whole.events);
    }
  }
  Reassembled r = Reassemble(whole.events);
  EXPECT_EQ(r.content, text);
  EXPECT_EQ(r.finish, "stop");
  EXPECT_TRUE(r.done);
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_EQ(r.usage->prompt_tokens, recorded["prompt_eval_count"].get<int64_t>());
  EXPECT_EQ(r.usage->completion_tokens, recorded["eval_count"].get<int64_t>());
  // The first chunk carries the role; the last but one is usage-only.
  absl::StatusOr<ChatCompletionChunk> first = ParseChatCompletionChunk(whole.events.front());
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->choices[0].delta.role, Role::kAssistant);
  absl::StatusOr<ChatCompletionChunk> usage =
      ParseChatCompletionChunk(whole.events[whole.events.size() - 2]);
  ASSERT_TRUE(usage.ok());
  EXPECT_TRUE(usage->choices.empty());
}

TEST(OllamaDialectTest, StreamedToolCallsAndThinkingGetStableIdsAndStringArguments) {
  const std::string body =
      R"({"model":"qwen3","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","thinking":"Let me check."},"done":false})"
      "\n"
      R"({"model":"qwen3","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}},{"function":{"name":"now","arguments":{}}}]},"done":false})"
      "\n"
      R"({"model":"qwen3","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":7})"
      "\n";
  std::unique_ptr<Dialect> d = Ollama();
  DecodedStream a = DecodeStream(*d, body, Split::kWhole);
  ASSERT_TRUE(a.status.ok()) << a.status;
  DecodedStream b = DecodeStream(*d, body, Split::kByteByByte);
  EXPECT_EQ(a.events, b.events);
  Reassembled r = Reassemble(a.events);
  EXPECT_EQ(r.reasoning, "Let me check.");
  ASSERT_EQ(r.call_args.size(), 2u);
  EXPECT_EQ(r.call_names[0], "get_weather");
  EXPECT_EQ(r.call_args[0], R"({"city":"Paris"})");
  EXPECT_EQ(r.call_args[1], "{}");
  EXPECT_NE(r.call_ids[0], r.call_ids[1]);
  EXPECT_TRUE(r.call_ids[0].rfind("call_", 0) == 0);
  EXPECT_EQ(r.finish, "tool_calls");

  // The same calls in a whole answer get the same ids.
  std::string whole =
      R"({"model":"qwen3","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}},{"function":{"name":"now","arguments":{}}}]},"done":true,"done_reason":"stop","prompt_eval_count":12,"eval_count":7})";
  ASSERT_TRUE(d->DecodeResponse(&whole).ok());
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(whole);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->choices[0].message.tool_calls.size(), 2u);
  EXPECT_EQ(c->choices[0].message.tool_calls[0].id, r.call_ids[0]);
  EXPECT_EQ(c->choices[0].message.tool_calls[1].id, r.call_ids[1]);
  EXPECT_FALSE(c->choices[0].message.content.has_value());
  EXPECT_EQ(c->choices[0].finish_reason, "tool_calls");
}

TEST(OllamaDialectTest, ErrorLineMidStreamIsAnErrorAndATruncatedStreamToo) {
  std::unique_ptr<Dialect> d = Ollama();
  const std::string head =
      R"({"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false})"
      "\n";
  DecodedStream err = DecodeStream(*d, head + R"({"error":"an error was encountered while running the model"})" "\n",
                                   Split::kRandom);
  EXPECT_FALSE(err.status.ok());
  EXPECT_EQ(HttpStatusForStatus(err.status), 500);
  EXPECT_NE(err.status.message().find("an error was encountered"), std::string::npos);
  DecodedStream cut = DecodeStream(*d, head, Split::kWhole);
  EXPECT_EQ(cut.status.code(), absl::StatusCode::kUnavailable) << cut.status;
}

TEST(OllamaDialectTest, LengthIsMappedAndErrorsKeepTheirStatus) {
  std::string body =
      R"({"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"a b"},"done":true,"done_reason":"length","prompt_eval_count":3,"eval_count":2})";
  ASSERT_TRUE(Ollama()->DecodeResponse(&body).ok());
  EXPECT_EQ(ParseChatCompletion(body)->choices[0].finish_reason, "length");
  absl::Status s = Ollama()->DecodeError(404, R"({"error":"model \"x\" not found, try pulling it first"})");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "model \"x\" not found, try pulling it first");
  absl::Status busy = Ollama()->DecodeError(429, R"({"error":"server busy"})");
  EXPECT_EQ(HttpStatusForStatus(busy), 429);
}

TEST(OllamaDialectTest, RequestMapsImagesToolsFormatThinkAndOptions) {
  json body = Encode(Req(R"({"model":"llava","messages":[
      {"role":"developer","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"text","text":"Answer in French."},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"look","arguments":"{\"x\":1}"}},
                                                      {"id":"call_2","type":"function","function":{"name":"noargs","arguments":""}}]},
      {"role":"tool","tool_call_id":"call_1","content":"a cat"}],
    "tools":[{"type":"function","function":{"name":"look","parameters":{"type":"object"}}}],
    "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object","properties":{"a":{"type":"string"}}}}},
    "reasoning_effort":"high","temperature":0.2,"top_p":0.9,"seed":7,"stop":"END","max_completion_tokens":64,
    "presence_penalty":0.5,"frequency_penalty":-0.5,"top_k":40,"keep_alive":"5m","user":"u1"})"),
                     /*stream=*/true);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["messages"][0], json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(body["messages"][1]["content"], "What is this?\nAnswer in French.");
  EXPECT_EQ(body["messages"][1]["images"], json::array({"iVBORw0KGgo="}));
  EXPECT_EQ(body["messages"][2]["content"], "");
  EXPECT_EQ(body["messages"][2]["tool_calls"][0]["function"]["arguments"], json({{"x", 1}}));
  EXPECT_EQ(body["messages"][2]["tool_calls"][1]["function"]["arguments"], json::object());
  EXPECT_EQ(body["messages"][3]["tool_name"], "look");
  EXPECT_EQ(body["tools"][0]["function"]["name"], "look");
  EXPECT_EQ(body["format"], json::parse(R"({"type":"object","properties":{"a":{"type":"string"}}})"));
  EXPECT_EQ(body["think"], "high");
  EXPECT_EQ(body["keep_alive"], "5m");
  EXPECT_EQ(body["options"], json::parse(R"({"temperature":0.2,"top_p":0.9,"seed":7,"stop":["END"],
      "num_predict":64,"presence_penalty":0.5,"frequency_penalty":-0.5,"top_k":40})"));
  json plain = Encode(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_object"},"reasoning_effort":"none"})"));
  EXPECT_EQ(plain["format"], "json");
  EXPECT_EQ(plain["think"], false);
  EXPECT_EQ(plain["stream"], false);
  EXPECT_FALSE(plain.contains("options"));
}

TEST(OllamaDialectTest, WhatOllamaCannotExpressIsRefusedByPath) {
  absl::Status s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}]})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ErrorParam(s), "messages[0].content[1].image_url.url");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":[
      {"type":"input_audio","input_audio":{"data":"AAA=","format":"wav"}}]}]})");
  EXPECT_EQ(s.message(), "messages[0].content[0].input_audio: not supported by ollama");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})");
  EXPECT_EQ(ErrorParam(s), "n");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"})");
  EXPECT_EQ(ErrorParam(s), "tool_choice");
  s = EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"mirostat_x":1})");
  EXPECT_EQ(s.message(), "mirostat_x: not supported by ollama");
  s = EncodeError(R"({"model":"m","messages":[{"role":"assistant","tool_calls":[
      {"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]})");
  EXPECT_EQ(ErrorParam(s), "messages[0].tool_calls[0].function.arguments");
  // tool_choice "none": the tools are not offered.
  json none = Encode(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none"})"));
  EXPECT_FALSE(none.contains("tools"));
}

TEST(OllamaDialectTest, ThinkLevelsOptionSendsBooleans) {
  std::unique_ptr<Dialect> d = Ollama(R"({"think_levels":false})");
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "reasoning_effort":"low"})"), {}, &wire).ok());
  EXPECT_EQ(json::parse(wire.body)["think"], true);
}

// Claude Code's Messages `thinking` (a unified extra) becomes Ollama's think.
TEST(OllamaDialectTest, AnthropicThinkingIsThink) {
  auto think = [](std::string_view thinking) -> json {
    json body = Encode(Req(std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"thinking":)") +
                           std::string(thinking) + "}"));
    EXPECT_FALSE(body.contains("thinking")) << body.dump();
    return body.contains("think") ? body["think"] : json();
  };
  EXPECT_EQ(think(R"({"type":"enabled","budget_tokens":2048})"), true);
  EXPECT_EQ(think(R"({"type":"adaptive"})"), true);
  EXPECT_EQ(think(R"({"type":"disabled"})"), false);
  const std::string head = R"({"model":"m","messages":[{"role":"user","content":"x"}],)";
  absl::Status s = EncodeError(head + R"("thinking":{"type":"enabled","budget_tokens":2048},"reasoning_effort":"low"})");
  EXPECT_EQ(ErrorParam(s), "thinking") << s;
  s = EncodeError(head + R"("thinking":{"type":"disabled"},"think":true})");
  EXPECT_EQ(ErrorParam(s), "thinking") << s;
  s = EncodeError(head + R"("thinking":{"type":"enabled"}})");
  EXPECT_EQ(ErrorParam(s), "thinking.budget_tokens") << s;
  s = EncodeError(head + R"("thinking":{"type":"on"}})");
  EXPECT_EQ(ErrorParam(s), "thinking.type") << s;
}

// Claude Code's context_management (Anthropic's server-side context editing) is left out.
TEST(OllamaDialectTest, AnthropicContextManagementIsLeftOut) {
  json body = Encode(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})"));
  EXPECT_FALSE(body.contains("context_management")) << body.dump();
  EXPECT_FALSE(body.contains("options")) << body.dump();
}

TEST(OllamaDialectTest, IngressReadsWhatEgressWritesAndEncodesOllamaShapes) {
  std::unique_ptr<Dialect> d = Ollama();
  ChatRequest chat = Req(R"({"model":"m","messages":[{"role":"system","content":"s"},
      {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
      {"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
      {"role":"tool","tool_call_id":"x","content":"r"}],"temperature":0.5,"max_tokens":9,"stop":["s"],
      "response_format":{"type":"json_object"}})");
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(chat, {.stream = true, .model = {}}, &wire).ok());
  absl::StatusOr<ChatRequest> back = d->DecodeRequest(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(ValidateChatRequest(*back).ok()) << ValidateChatRequest(*back);
  EXPECT_EQ(back->stream, true);
  EXPECT_EQ(back->temperature, 0.5);
  EXPECT_EQ(back->max_tokens, 9);
  ASSERT_EQ(back->messages.size(), 4u);
  EXPECT_EQ(back->messages[1].content, chat.messages[1].content);
  EXPECT_EQ(back->messages[2].tool_calls[0].function->arguments, R"({"a":1})");
  EXPECT_EQ(back->messages[3].tool_call_id, back->messages[2].tool_calls[0].id);
  EXPECT_EQ(back->response_format, R"({"type":"json_object"})");
  // Ollama's default is to stream.
  absl::StatusOr<ChatRequest> dflt =
      d->DecodeRequest(BodyOnly(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"));
  ASSERT_TRUE(dflt.ok());
  EXPECT_EQ(dflt->stream, true);
  EXPECT_FALSE(d->DecodeRequest(BodyOnly(R"({"messages":[]})")).ok());

  // Encoder: unified chunks -> NDJSON that the decoder reads back.
  std::unique_ptr<StreamEncoder> enc = d->NewStreamEncoder();
  std::string ndjson;
  for (const char* c :
       {R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[{"index":0,"delta":{"content":"lo"}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":2}"}}]}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1735689600,"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})"}) {
    ASSERT_TRUE(enc->Encode(*ParseChatCompletionChunk(c), &ndjson).ok());
  }
  ASSERT_TRUE(enc->Finish(&ndjson).ok());
  DecodedStream round = DecodeStream(*d, ndjson, Split::kByteByByte);
  ASSERT_TRUE(round.status.ok()) << round.status << "\n" << ndjson;
  Reassembled r = Reassemble(round.events);
  EXPECT_EQ(r.content, "Hello");
  ASSERT_EQ(r.call_args.size(), 1u);
  EXPECT_EQ(r.call_args[0], R"({"a":2})");
  EXPECT_EQ(r.usage->prompt_tokens, 4);
  EXPECT_EQ(r.usage->completion_tokens, 3);
  EXPECT_NE(ndjson.find("\"created_at\":\"2025-01-01T00:00:00Z\""), std::string::npos) << ndjson;

  EXPECT_EQ(d->EncodeErrorBody(absl::NotFoundError("model \"m\" not found")),
            R"({"error":"model \"m\" not found"})");
}

}  // namespace
}  // namespace modeenvoy
