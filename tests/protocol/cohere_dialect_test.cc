// tests/protocol/cohere_dialect_test.cc: the "cohere" dialect (v2 chat) against vercel-ai's
// Cohere v2 recordings; Kong's Cohere files are v1 (refused by name) except its error bodies.
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
using protocol_test::ChunkLines;
using protocol_test::DecodeStream;
using protocol_test::DecodedStream;
using protocol_test::FixturesDir;
using protocol_test::ListFiles;
using protocol_test::ReadFile;
using protocol_test::SseBodyFromChunkLines;
using protocol_test::Split;

constexpr const char* kVercel = "vercel-ai/packages/cohere/src/__fixtures__";
constexpr const char* kKong = "kong/spec/fixtures/ai-proxy/";

WireRequest BodyOnly(std::string body) {
  WireRequest wire;
  wire.body = std::move(body);
  return wire;
}

std::unique_ptr<Dialect> Cohere() { return std::move(*NewDialect("cohere")); }

ChatRequest Req(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return *chat;
}

json Encode(const ChatRequest& chat, bool stream = false) {
  WireRequest wire;
  absl::Status s = Cohere()->EncodeRequest(chat, {.stream = stream, .model = "command-a"}, &wire);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(wire.target, "/v2/chat");
  return json::parse(wire.body);
}

absl::Status EncodeError(std::string_view body) {
  WireRequest wire;
  return Cohere()->EncodeRequest(Req(body), {}, &wire);
}

struct Reassembled {
  std::string content, reasoning, tool_plan;
  std::vector<std::string> ids, names, args;
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
        if (k == "tool_plan") r.tool_plan += json::parse(v).get<std::string>();
      }
      for (const ToolCallDelta& t : ch.delta.tool_calls) {
        if (t.index >= static_cast<int64_t>(r.args.size())) {
          r.args.resize(t.index + 1);
          r.ids.resize(t.index + 1);
          r.names.resize(t.index + 1);
        }
        if (t.id) r.ids[t.index] = *t.id;
        if (t.function && t.function->name) r.names[t.index] += *t.function->name;
        if (t.function && t.function->arguments) r.args[t.index] += *t.function->arguments;
      }
      if (ch.finish_reason) r.finish = *ch.finish_reason;
    }
  }
  return r;
}

std::string ExpectedFinish(const std::string& cohere) {
  if (cohere == "MAX_TOKENS") return "length";
  if (cohere == "TOOL_CALL") return "tool_calls";
  return "stop";
}

TEST(CohereDialectTest, EndpointAuthAndFraming) {
  std::unique_ptr<Dialect> d = Cohere();
  EXPECT_EQ(d->default_base_url(), "https://api.cohere.com");
  EXPECT_EQ(d->api_key_header().name, "authorization");
  EXPECT_EQ(d->api_key_header().prefix, "Bearer ");
  EXPECT_EQ(d->ResponseFraming(true), Framing::kSse);
  EXPECT_FALSE(NewDialect("cohere", R"({"x":1})").ok());
}

// Every whole v2 chat recording: text, thinking, tool_plan, tool calls, citations,
// finish reason and usage (tokens, cached, billed units) as recorded.
TEST(CohereDialectTest, EveryRecordedWholeAnswerTranslates) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  auto files = ListFiles(*dir / kVercel, ".json", {"embedding"});
  ASSERT_EQ(files.size(), 6u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.filename().string());
    std::string body = ReadFile(path);
    json rec = json::parse(body);
    absl::Status s = Cohere()->DecodeResponse(&body);
    ASSERT_TRUE(s.ok()) << s;
    absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->id, rec["id"].get<std::string>());
    const Message& m = c->choices.at(0).message;
    std::string text, thinking;
    for (const json& part : rec["message"].value("content", json::array())) {
      if (part["type"] == "text") text += part["text"].get<std::string>();
      if (part["type"] == "thinking") thinking += part["thinking"].get<std::string>();
    }
    json out = json::parse(body);
    if (rec["message"].contains("tool_calls")) {
      ASSERT_EQ(m.tool_calls.size(), rec["message"]["tool_calls"].size());
      for (size_t i = 0; i < m.tool_calls.size(); ++i) {
        const json& rc = rec["message"]["tool_calls"][i];
        EXPECT_EQ(m.tool_calls[i].id, rc["id"].get<std::string>());
        EXPECT_EQ(m.tool_calls[i].function->name, rc["function"]["name"].get<std::string>());
        std::string args = rc["function"]["arguments"];
        EXPECT_EQ(m.tool_calls[i].function->arguments, args == "null" ? "{}" : args);
      }
      EXPECT_EQ(out["choices"][0]["message"]["tool_plan"], rec["message"]["tool_plan"]);
    } else {
      EXPECT_EQ(std::get<std::string>(*m.content), text);
    }
    if (!thinking.empty()) {
      EXPECT_EQ(out["choices"][0]["message"]["reasoning_content"], thinking);
    }
    if (rec["message"].contains("citations")) {
      EXPECT_EQ(out["choices"][0]["message"]["citations"], rec["message"]["citations"]);
    }
    EXPECT_EQ(c->choices[0].finish_reason, ExpectedFinish(rec["finish_reason"]));
    const json& u = rec["usage"];
    ASSERT_TRUE(c->usage.has_value());
    EXPECT_EQ(c->usage->prompt_tokens, u["tokens"]["input_tokens"].get<int64_t>());
    EXPECT_EQ(c->usage->completion_tokens, u["tokens"]["output_tokens"].get<int64_t>());
    EXPECT_EQ(c->usage->total_tokens, c->usage->prompt_tokens + c->usage->completion_tokens);
    EXPECT_EQ(c->usage->prompt_tokens_details->cached_tokens, u["cached_tokens"].get<int64_t>());
    EXPECT_EQ(out["usage"]["billed_units"], u["billed_units"]);
  }
}

// Every streamed recording, fed whole, byte by byte and in random pieces.
TEST(CohereDialectTest, EveryRecordedStreamTranslatesIdenticallyUnderAnySplit) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  auto files = ListFiles(*dir / kVercel, ".chunks.txt");
  ASSERT_EQ(files.size(), 4u);
  std::unique_ptr<Dialect> d = Cohere();
  for (const auto& path : files) {
    SCOPED_TRACE(path.filename().string());
    std::vector<std::string> lines = ChunkLines(ReadFile(path));
    const std::string body = SseBodyFromChunkLines(lines, /*with_event_type=*/true);
    DecodedStream whole = DecodeStream(*d, body, Split::kWhole);
    ASSERT_TRUE(whole.status.ok()) << whole.status;
    // The gateway reads usage only right before [DONE] (KeepsUsagePromise).
    protocol_test::UsagePromiseCheck promise = protocol_test::CheckUsagePromise(*d, body);
    EXPECT_EQ(promise.broken, "");
    EXPECT_LE(promise.usage_chunks, 1);
    for (Split split : {Split::kByteByByte, Split::kRandom}) {
      DecodedStream got = DecodeStream(*d, body, split, 7);
      ASSERT_TRUE(got.status.ok()) << got.status;
      EXPECT_EQ(got.events, whole.events);
    }
    // Expected values from the recording itself.
    std::string text, thinking, plan, finish;
    std::vector<std::string> ids, names, args;
    json usage;
    for (const std::string& line : lines) {
      json e = json::parse(line);
      const std::string type = e["type"];
      if (type == "content-start" || type == "content-delta") {
        const json& c = e["delta"]["message"]["content"];
        if (c.contains("text")) text += c["text"].get<std::string>();
        if (c.contains("thinking")) thinking += c["thinking"].get<std::string>();
      } else if (type == "tool-plan-delta") {
        plan += e["delta"]["message"]["tool_plan"].get<std::string>();
      } else if (type == "tool-call-start") {
        const json& c = e["delta"]["message"]["tool_calls"];
        ids.push_back(c["id"]);
        names.push_back(c["function"]["name"]);
        args.push_back(c["function"]["arguments"]);
      } else if (type == "tool-call-delta") {
        args.back() += e["delta"]["message"]["tool_calls"]["function"]["arguments"].get<std::string>();
      } else if (type == "message-end") {
        finish = e["delta"]["finish_reason"];
        usage = e["delta"]["usage"];
      }
    }
    Reassembled r = Reassemble(whole.events);
    EXPECT_TRUE(r.done);
    EXPECT_EQ(r.content, text);
    EXPECT_EQ(r.reasoning, thinking);
    EXPECT_EQ(r.tool_plan, plan);
    EXPECT_EQ(r.ids, ids);
    EXPECT_EQ(r.names, names);
    for (std::string& a : args) {
      if (a.empty()) a = "{}";  // a call without arguments
    }
    EXPECT_EQ(r.args, args);
    EXPECT_EQ(r.finish, ExpectedFinish(finish));
    ASSERT_TRUE(r.usage.has_value());
    EXPECT_EQ(r.usage->prompt_tokens, usage["tokens"]["input_tokens"].get<int64_t>());
    EXPECT_EQ(r.usage->completion_tokens, usage["tokens"]["output_tokens"].get<int64_t>());
    EXPECT_EQ(r.usage->prompt_tokens_details->cached_tokens, usage["cached_tokens"].get<int64_t>());
    // The first chunk says who speaks; the id is the stream's.
    absl::StatusOr<ChatCompletionChunk> first = ParseChatCompletionChunk(whole.events.front());
    EXPECT_EQ(first->choices[0].delta.role, Role::kAssistant);
    EXPECT_EQ(first->id, json::parse(lines.front())["id"].get<std::string>());
  }
}

TEST(CohereDialectTest, KongV1AnswersAreRefusedAndItsErrorBodiesRead) {
  auto dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "no fixtures";
  for (const char* path : {"unit/real-responses/cohere/llm-v1-chat.json",
                           "cohere/llm-v1-chat/responses/good.json",
                           "cohere/request-transformer/response-in-json.json"}) {
    std::string body = ReadFile(*dir / kKong / path);
    absl::Status s = Cohere()->DecodeResponse(&body);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_NE(s.message().find("v1"), std::string::npos) << s;
  }
  // v1 NDJSON stream lines (complete-json, real-stream-frames) as v2 SSE data: refused.
  std::string v1 = ReadFile(*dir / kKong / "unit/real-stream-frames/cohere/llm-v1-chat.txt");
  DecodedStream got = DecodeStream(*Cohere(), "data: " + v1 + "\n\n", Split::kWhole);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kInvalidArgument);

  absl::Status bad = Cohere()->DecodeError(
      400, ReadFile(*dir / kKong / "cohere/llm-v1-chat/responses/bad_request.json"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.message(), "bad request");
  absl::Status auth = Cohere()->DecodeError(
      401, ReadFile(*dir / kKong / "cohere/llm-v1-chat/responses/unauthorized.json"));
  EXPECT_EQ(auth.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth.message(), "invalid api token");
  absl::Status html = Cohere()->DecodeError(
      500, ReadFile(*dir / kKong / "cohere/llm-v1-chat/responses/internal_server_error.html"));
  EXPECT_EQ(HttpStatusForStatus(html), 500);
  std::string weird = ReadFile(*dir / kKong / "cohere/llm-v1-chat/responses/bad_upstream_response.json");
  EXPECT_FALSE(Cohere()->DecodeResponse(&weird).ok());
}

TEST(CohereDialectTest, ErrorFinishMidStreamIsAnError) {
  const std::string body = SseBodyFromChunkLines(
      {R"({"id":"x","type":"message-start","delta":{"message":{"role":"assistant"}}})",
       R"({"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}})",
       R"({"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"Hi"}}}})",
       R"({"type":"message-end","delta":{"finish_reason":"ERROR","error":"internal failure"}})"},
      true);
  DecodedStream got = DecodeStream(*Cohere(), body, Split::kRandom);
  EXPECT_EQ(got.status.message(), "internal failure");
  EXPECT_EQ(HttpStatusForStatus(got.status), 500);
  DecodedStream cut = DecodeStream(*Cohere(), body.substr(0, body.rfind("event:")), Split::kWhole);
  EXPECT_EQ(cut.status.code(), absl::StatusCode::kUnavailable);
  absl::Status rate = Cohere()->DecodeError(429, R"({"id":"a","message":"You are using a Trial key"})");
  EXPECT_EQ(HttpStatusForStatus(rate), 429);
  EXPECT_EQ(rate.message(), "You are using a Trial key");
}

TEST(CohereDialectTest, RequestMapsMessagesToolsFormatAndSampling) {
  json b = Encode(Req(R"({"model":"public","messages":[
      {"role":"system","content":"Be brief."},
      {"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}}]},
      {"role":"assistant","content":null,"tool_plan":"I will look.","tool_calls":[{"id":"look_1","type":"function","function":{"name":"look","arguments":"{\"x\":1}"}}]},
      {"role":"tool","tool_call_id":"look_1","content":"a cat"}],
    "tools":[{"type":"function","function":{"name":"look","description":"d","parameters":{"type":"object"},"strict":true}},
             {"type":"function","function":{"name":"other"}}],
    "tool_choice":{"type":"function","function":{"name":"look"}},
    "response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"}}},
    "stop":["END"],"temperature":0.3,"top_p":1,"max_tokens":100,"seed":5,"frequency_penalty":0.1,
    "presence_penalty":0.2,"top_k":40,"reasoning_effort":"none"})"),
                  true);
  EXPECT_EQ(b["model"], "command-a");
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["messages"][0], json({{"role", "system"}, {"content", "Be brief."}}));
  EXPECT_EQ(b["messages"][1]["content"][1],
            json::parse(R"({"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"low"}})"));
  EXPECT_EQ(b["messages"][2]["tool_plan"], "I will look.");
  EXPECT_EQ(b["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
  EXPECT_FALSE(b["messages"][2].contains("content"));
  EXPECT_EQ(b["messages"][3], json({{"role", "tool"}, {"content", "a cat"}, {"tool_call_id", "look_1"}}));
  // A named tool: only that tool, and a call required.
  ASSERT_EQ(b["tools"].size(), 1u);
  EXPECT_EQ(b["tools"][0]["function"]["name"], "look");
  EXPECT_EQ(b["tool_choice"], "REQUIRED");
  EXPECT_EQ(b["strict_tools"], true);
  EXPECT_EQ(b["response_format"], json::parse(R"({"type":"json_object","json_schema":{"type":"object"}})"));
  EXPECT_EQ(b["stop_sequences"], json::array({"END"}));
  EXPECT_EQ(b["p"], 0.99);
  EXPECT_EQ(b["k"], 40);
  EXPECT_EQ(b["max_tokens"], 100);
  EXPECT_EQ(b["seed"], 5);
  EXPECT_EQ(b["thinking"], json({{"type", "disabled"}}));
  json auto_choice = Encode(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"auto","response_format":{"type":"json_object"}})"));
  EXPECT_FALSE(auto_choice.contains("tool_choice"));
  EXPECT_EQ(auto_choice["response_format"], json({{"type", "json_object"}}));
  EXPECT_EQ(auto_choice["stream"], false);
}

TEST(CohereDialectTest, WhatCohereCannotExpressIsRefusedByPath) {
  EXPECT_EQ(ErrorParam(EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":3})")), "n");
  EXPECT_EQ(ErrorParam(EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"frequency_penalty":-1})")),
            "frequency_penalty");
  EXPECT_EQ(EncodeError(R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]})").message(),
            "messages[0].content[0].input_audio: not supported by cohere");
  EXPECT_EQ(EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e","f"]})").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(EncodeError(R"({"model":"m","messages":[{"role":"user","content":"x"}],"foo":1})").message(),
            "foo: not supported by cohere");
}

// Claude Code's Messages `thinking` (a unified extra) becomes Cohere's thinking, whose
// budget member is token_budget.
TEST(CohereDialectTest, AnthropicThinkingIsCohereThinking) {
  auto thinking = [](std::string_view value) -> json {
    json body = Encode(Req(std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"thinking":)") +
                           std::string(value) + "}"));
    return body.contains("thinking") ? body["thinking"] : json();
  };
  EXPECT_EQ(thinking(R"({"type":"enabled","budget_tokens":2048})"),
            json::parse(R"({"type":"enabled","token_budget":2048})"));
  EXPECT_EQ(thinking(R"({"type":"adaptive"})"), json::parse(R"({"type":"enabled"})"));
  EXPECT_EQ(thinking(R"({"type":"disabled"})"), json::parse(R"({"type":"disabled"})"));
  const std::string head = R"({"model":"m","messages":[{"role":"user","content":"x"}],)";
  absl::Status s = EncodeError(head + R"("thinking":{"type":"enabled","budget_tokens":2048},"reasoning_effort":"low"})");
  EXPECT_EQ(ErrorParam(s), "thinking") << s;
  s = EncodeError(head + R"("thinking":{"type":"enabled","budget_tokens":-1}})");
  EXPECT_EQ(ErrorParam(s), "thinking.budget_tokens") << s;
  s = EncodeError(head + R"("thinking":[]})");
  EXPECT_EQ(ErrorParam(s), "thinking") << s;
}

// Claude Code's context_management (Anthropic's server-side context editing) is left out.
TEST(CohereDialectTest, AnthropicContextManagementIsLeftOut) {
  json body = Encode(Req(R"({"model":"m","messages":[{"role":"user","content":"x"}],"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})"));
  EXPECT_FALSE(body.contains("context_management")) << body.dump();
}

TEST(CohereDialectTest, IngressAndEncodersRoundTripThroughTheDecoders) {
  std::unique_ptr<Dialect> d = Cohere();
  ChatRequest chat = Req(R"({"model":"m","messages":[{"role":"system","content":"s"},
      {"role":"user","content":"hi"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"x","content":"r"}],
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required",
      "temperature":0.5,"max_tokens":9})");
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(chat, {.stream = true, .model = {}}, &wire).ok());
  absl::StatusOr<ChatRequest> back = d->DecodeRequest(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(ValidateChatRequest(*back).ok()) << ValidateChatRequest(*back);
  EXPECT_EQ(back->messages, chat.messages);
  EXPECT_EQ(back->tool_choice->mode, "required");
  EXPECT_EQ(back->max_tokens, 9);
  EXPECT_FALSE(d->DecodeRequest(BodyOnly(R"({"model":"m","messages":[{"role":"user","content":"x"}],"bogus":1})")).ok());

  // Whole answer: encode, then decode back.
  absl::StatusOr<ChatCompletion> cc = ParseChatCompletion(
      R"({"id":"r1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})");
  absl::StatusOr<std::string> body = d->EncodeResponse(*cc);
  ASSERT_TRUE(body.ok());
  std::string decoded = *body;
  ASSERT_TRUE(d->DecodeResponse(&decoded).ok()) << *body;
  absl::StatusOr<ChatCompletion> again = ParseChatCompletion(decoded);
  EXPECT_EQ(std::get<std::string>(*again->choices[0].message.content), "Hi");
  EXPECT_EQ(again->choices[0].finish_reason, "length");
  EXPECT_EQ(again->usage->prompt_tokens, 3);

  // Stream encoder -> decoder.
  std::unique_ptr<StreamEncoder> enc = d->NewStreamEncoder();
  std::string sse;
  for (const char* c :
       {R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"hmm"}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"lo"}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\""}}]}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":2}"}}]}}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
        R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":3,"total_tokens":7}})"}) {
    ASSERT_TRUE(enc->Encode(*ParseChatCompletionChunk(c), &sse).ok());
  }
  ASSERT_TRUE(enc->Finish(&sse).ok());
  DecodedStream round = DecodeStream(*d, sse, Split::kByteByByte);
  ASSERT_TRUE(round.status.ok()) << round.status << "\n" << sse;
  Reassembled r = Reassemble(round.events);
  EXPECT_EQ(r.reasoning, "hmm");
  EXPECT_EQ(r.content, "Hello");
  ASSERT_EQ(r.args.size(), 1u);
  EXPECT_EQ(r.args[0], R"({"a":2})");
  EXPECT_EQ(r.finish, "tool_calls");
  EXPECT_EQ(r.usage->completion_tokens, 3);
  std::string err;
  d->NewStreamEncoder()->EncodeError(absl::UnavailableError("boom"), &err);
  DecodedStream failed = DecodeStream(*d, err, Split::kWhole);
  EXPECT_EQ(failed.status.message(), "boom");
  EXPECT_NE(d->EncodeErrorBody(absl::InvalidArgumentError("bad")).find("\"message\":\"bad\""),
            std::string::npos);
}

}  // namespace
}  // namespace modeenvoy
