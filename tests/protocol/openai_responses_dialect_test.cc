// tests/protocol/openai_responses_dialect_test.cc: the "openai_responses" dialect (OpenAI's
// Responses API) both ways. Expected values are written from the API reference
// (platform.openai.com/docs/api-reference/responses: the request's input items, the
// response object, the streaming events) and, for the egress side, read from the recorded
// Responses answers in the fixture tree (vercel-ai openai/src/responses), never from the
// code's output.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "modeenvoy/status.h"
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

constexpr char kFixtureDir[] = "vercel-ai/packages/openai/src/responses/__fixtures__";

std::unique_ptr<Dialect> Responses() {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("openai_responses");
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

absl::StatusOr<ChatRequest> Decode(const std::string& body) {
  WireRequest w;
  w.target = "/v1/responses";
  w.body = body;
  return Responses()->DecodeRequest(w);
}

std::string Text(const Message& m) {
  if (!m.content) return "<none>";
  if (const auto* s = std::get_if<std::string>(&*m.content)) return *s;
  return "<parts>";
}

// ---- ingress: requests ----

TEST(ResponsesRequestTest, StringInputWithInstructionsAndOptions) {
  absl::StatusOr<ChatRequest> chat = Decode(R"({
    "model": "gpt-4.1", "instructions": "Be brief.", "input": "Hi there",
    "max_output_tokens": 64, "temperature": 0.5, "top_p": 0.9,
    "reasoning": {"effort": "low", "summary": "auto"},
    "metadata": {"k": "v"}, "store": false, "previous_response_id": "resp_1",
    "stream": true, "parallel_tool_calls": false, "user": "u1"})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->model, "gpt-4.1");
  ASSERT_EQ(chat->messages.size(), 2u);
  EXPECT_EQ(chat->messages[0].role, Role::kSystem);
  EXPECT_EQ(Text(chat->messages[0]), "Be brief.");
  EXPECT_EQ(chat->messages[1].role, Role::kUser);
  EXPECT_EQ(Text(chat->messages[1]), "Hi there");
  EXPECT_EQ(chat->max_completion_tokens, 64);
  EXPECT_EQ(chat->temperature, 0.5);
  EXPECT_EQ(chat->top_p, 0.9);
  EXPECT_EQ(chat->reasoning_effort, "low");
  EXPECT_EQ(chat->metadata, R"({"k":"v"})");
  EXPECT_EQ(chat->store, false);
  EXPECT_EQ(chat->stream, true);
  EXPECT_EQ(chat->parallel_tool_calls, false);
  EXPECT_EQ(chat->user, "u1");
  ASSERT_EQ(chat->extra.size(), 1u);
  EXPECT_EQ(chat->extra[0].first, "previous_response_id");
  EXPECT_EQ(chat->extra[0].second, R"("resp_1")");
}

TEST(ResponsesRequestTest, ItemsBecomeMessagesToolCallsAndToolResults) {
  absl::StatusOr<ChatRequest> chat = Decode(R"({"model":"m","input":[
    {"role":"developer","content":"rules"},
    {"type":"message","role":"user","content":[
      {"type":"input_text","text":"What is in this image?"},
      {"type":"input_image","image_url":"https://x/cat.png","detail":"low"}]},
    {"type":"message","role":"assistant","id":"msg_1","status":"completed",
     "content":[{"type":"output_text","text":"Let me check.","annotations":[]}]},
    {"type":"function_call","id":"fc_1","call_id":"call_1","name":"lookup",
     "arguments":"{\"q\":\"cat\"}","status":"completed"},
    {"type":"function_call","call_id":"call_2","name":"lookup","arguments":"{}"},
    {"type":"reasoning","id":"rs_1","summary":[]},
    {"type":"function_call_output","call_id":"call_1","output":"a cat"},
    {"type":"function_call_output","call_id":"call_2",
     "output":[{"type":"input_text","text":"two "},{"type":"input_text","text":"parts"}]}]})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->messages.size(), 5u);
  EXPECT_EQ(chat->messages[0].role, Role::kDeveloper);
  EXPECT_EQ(Text(chat->messages[0]), "rules");
  const Message& user = chat->messages[1];
  ASSERT_TRUE(std::holds_alternative<std::vector<ContentPart>>(*user.content));
  const auto& parts = std::get<std::vector<ContentPart>>(*user.content);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].type, ContentPartType::kText);
  EXPECT_EQ(parts[0].text, "What is in this image?");
  EXPECT_EQ(parts[1].type, ContentPartType::kImageUrl);
  EXPECT_EQ(parts[1].image_url->url, "https://x/cat.png");
  EXPECT_EQ(parts[1].image_url->detail, "low");
  // The assistant's text and the two calls that followed it are one assistant turn.
  const Message& assistant = chat->messages[2];
  EXPECT_EQ(assistant.role, Role::kAssistant);
  EXPECT_EQ(Text(assistant), "Let me check.");
  ASSERT_EQ(assistant.tool_calls.size(), 2u);
  EXPECT_EQ(assistant.tool_calls[0].id, "call_1");
  EXPECT_EQ(assistant.tool_calls[0].function->name, "lookup");
  EXPECT_EQ(assistant.tool_calls[0].function->arguments, R"({"q":"cat"})");
  EXPECT_EQ(assistant.tool_calls[1].id, "call_2");
  EXPECT_EQ(chat->messages[3].role, Role::kTool);
  EXPECT_EQ(chat->messages[3].tool_call_id, "call_1");
  EXPECT_EQ(Text(chat->messages[3]), "a cat");
  EXPECT_EQ(chat->messages[4].tool_call_id, "call_2");
  EXPECT_EQ(Text(chat->messages[4]), "two parts");
}

TEST(ResponsesRequestTest, ToolsToolChoiceAndStructuredOutput) {
  absl::StatusOr<ChatRequest> chat = Decode(R"({"model":"m","input":"x",
    "tools":[{"type":"function","name":"get_weather","description":"Weather",
              "parameters":{"type":"object","properties":{"city":{"type":"string"}}},
              "strict":true},
             {"type":"web_search_preview"}],
    "tool_choice":{"type":"function","name":"get_weather"},
    "text":{"format":{"type":"json_schema","name":"answer","strict":true,
                      "schema":{"type":"object"}},"verbosity":"low"}})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->tools.size(), 2u);
  EXPECT_EQ(chat->tools[0].type, "function");
  EXPECT_EQ(chat->tools[0].function->name, "get_weather");
  EXPECT_EQ(chat->tools[0].function->description, "Weather");
  EXPECT_EQ(chat->tools[0].function->parameters,
            R"({"type":"object","properties":{"city":{"type":"string"}}})");
  EXPECT_EQ(chat->tools[0].function->strict, true);
  EXPECT_EQ(chat->tools[1].type, "web_search_preview");
  ASSERT_TRUE(chat->tool_choice.has_value());
  EXPECT_EQ(json::parse(chat->tool_choice->object),
            json::parse(R"({"type":"function","function":{"name":"get_weather"}})"));
  ASSERT_TRUE(chat->response_format.has_value());
  EXPECT_EQ(json::parse(*chat->response_format),
            json::parse(R"({"type":"json_schema","json_schema":{"name":"answer",
                          "schema":{"type":"object"},"strict":true}})"));
  EXPECT_EQ(chat->verbosity, "low");

  absl::StatusOr<ChatRequest> obj =
      Decode(R"({"model":"m","input":"x","text":{"format":{"type":"json_object"}},
                 "tool_choice":"required"})");
  ASSERT_TRUE(obj.ok()) << obj.status();
  EXPECT_EQ(obj->response_format, R"({"type":"json_object"})");
  EXPECT_EQ(obj->tool_choice->mode, "required");
}

TEST(ResponsesRequestTest, BadRequestsNameTheField) {
  struct Case {
    const char* body;
    const char* message;
  } cases[] = {
      {R"({"input":"x"})", "model: Field required"},
      {R"({"model":"m"})", "input: Field required"},
      {R"({"model":"m","input":[{"type":"computer_call_output","call_id":"c"}]})",
       "input[0].type: unsupported input item type \"computer_call_output\""},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_video"}]}]})",
       "input[0].content[0].type: unsupported content type \"input_video\""},
      {R"({"model":"m","input":[{"role":"bot","content":"x"}]})",
       "input[0].role: must be user, assistant, system or developer"},
      {R"({"model":"m","input":[{"type":"function_call","name":"f"}]})",
       "input[0].call_id: Field required"},
      {R"({"model":"m","input":"x","temperature":3})", "temperature: must be between 0 and 2"},
      {R"({"model":"m","input":"x","max_output_tokens":0})", "max_output_tokens: must be >= 1"},
      {R"({"model":"m","input":"x","tools":[{"type":"function"}]})", "tools[0].name: Field required"},
      {R"({"model":"m","input":"x","text":{"format":{"type":"xml"}}})",
       "text.format.type: must be text, json_schema or json_object"},
      {R"({"model":"m","input":"x","input":"y"})", "body.input: duplicate key"},
      {R"({"model":1,"input":"x"})", "model: expected string, got number"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChatRequest> chat = Decode(c.body);
    ASSERT_FALSE(chat.ok()) << c.body;
    EXPECT_EQ(chat.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(chat.status().message(), c.message) << c.body;
  }
  absl::StatusOr<ChatRequest> syntax = Decode(R"({"model":"m",)");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("invalid JSON"), std::string::npos);
}

// A hosted tool keeps its members as JSON texts for a host that passes it to OpenAI: its
// name too, written as a JSON string however it is spelled.
TEST(ResponsesRequestTest, AHostedToolsNameIsKeptAsAJsonString) {
  absl::StatusOr<ChatRequest> chat = Decode(R"({"model":"m","input":"x",
    "tools":[{"type":"mcp","name":"say \"hi\"\\now","server_label":"s"}]})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->tools.size(), 1u);
  EXPECT_EQ(chat->tools[0].type, "mcp");
  std::optional<std::string> name;
  for (const auto& [key, raw] : chat->tools[0].extra) {
    if (key == "name") name = raw;
  }
  ASSERT_TRUE(name.has_value());
  const json parsed = json::parse(*name, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(parsed.is_discarded()) << *name;
  EXPECT_EQ(parsed, "say \"hi\"\\now");
}

// The reader builds field paths only for an error: deep ones still name every level, and a
// repeated name is found however the object is spelled (an escaped name, or past the
// names the reader keeps as views).
TEST(ResponsesRequestTest, DeepErrorsAndRepeatedNamesKeepTheirPaths) {
  std::string many = R"({"model":"m","input":"x")";
  for (int i = 0; i < 20; ++i) many += ",\"k" + std::to_string(i) + "\":" + std::to_string(i);
  many += R"(,"k7":0})";
  struct Case {
    std::string body;
    const char* message;
  } cases[] = {
      {R"({"model":"m","input":[{"role":"user","content":"a"},{"role":"user","content":[
          {"type":"input_text","text":"b"},{"type":"input_text","text":"c"},
          {"type":"input_image"}]}]})",
       "input[1].content[2].image_url: Field required"},
      {R"({"model":"m","input":[{"role":"system","content":[{"type":"input_text","text":"a"},
          {"type":"input_image","image_url":"https://x/y.png"}]}]})",
       "input[0].content[1].type: only text parts are allowed here"},
      {R"({"model":"m","input":[{"type":"function_call_output","call_id":"c","output":[
          {"type":"input_image","image_url":"https://x/y.png"}]}]})",
       "input[0].output[0].type: only text parts are allowed here"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a",
          "type":"input_text"}]}]})",
       "input[0].content[0].type: duplicate key"},
      {R"({"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"a",
          "t\u0065xt":"b"}]}]})",
       "input[0].content[0].text: duplicate key"},
      {R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"},
          {"type":"function","name":"g","parameters":[]}]})",
       "tools[1].parameters: expected object, got array"},
      {R"({"model":"m","input":"x","text":{"format":{"type":"json_schema","nme":"a"}}})",
       "text.format.nme: unknown field"},
      {many, "body.k7: duplicate key"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChatRequest> chat = Decode(c.body);
    ASSERT_FALSE(chat.ok()) << c.body;
    EXPECT_EQ(chat.status().message(), c.message) << c.body;
  }
}

// Messages are read straight into the request: `instructions` is the system message first
// wherever the body has it, and calls after it join the assistant turn as before.
TEST(ResponsesRequestTest, InstructionsAfterTheInputAreStillFirst) {
  absl::StatusOr<ChatRequest> chat = Decode(R"({"model":"m","input":[
    {"type":"function_call","call_id":"call_1","name":"f","arguments":"{}"},
    {"type":"function_call_output","call_id":"call_1","output":"done"},
    {"role":"user","content":"next"}],"instructions":"Be brief."})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  ASSERT_EQ(chat->messages.size(), 4u);
  EXPECT_EQ(chat->messages[0].role, Role::kSystem);
  EXPECT_EQ(Text(chat->messages[0]), "Be brief.");
  EXPECT_EQ(chat->messages[1].role, Role::kAssistant);
  ASSERT_EQ(chat->messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(chat->messages[1].tool_calls[0].id, "call_1");
  EXPECT_EQ(chat->messages[2].role, Role::kTool);
  EXPECT_EQ(Text(chat->messages[3]), "next");

  // Before the input, a call still opens an assistant turn of its own (the system message
  // is not one).
  absl::StatusOr<ChatRequest> first = Decode(R"({"model":"m","instructions":"Be brief.",
    "input":[{"type":"function_call","call_id":"call_1","name":"f"}]})");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->messages.size(), 2u);
  EXPECT_EQ(first->messages[0].role, Role::kSystem);
  EXPECT_EQ(first->messages[1].role, Role::kAssistant);
  EXPECT_EQ(first->messages[1].tool_calls[0].function->arguments, "{}");

  // Empty instructions add no message.
  absl::StatusOr<ChatRequest> empty = Decode(R"({"model":"m","instructions":"","input":"x"})");
  ASSERT_TRUE(empty.ok()) << empty.status();
  ASSERT_EQ(empty->messages.size(), 1u);
  EXPECT_EQ(empty->messages[0].role, Role::kUser);
}

// ---- ingress: whole answers ----

ChatCompletion Completion(const std::string& json_text) {
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(json_text);
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

TEST(ResponsesEncodeTest, TextToolCallAndUsage) {
  ChatCompletion c = Completion(R"({"id":"chatcmpl-9","object":"chat.completion",
    "created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{
      "role":"assistant","content":"Checking.","tool_calls":[{"id":"call_a","type":"function",
      "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
      "finish_reason":"tool_calls"}],
    "usage":{"prompt_tokens":20,"completion_tokens":7,"total_tokens":27,
             "prompt_tokens_details":{"cached_tokens":4},
             "completion_tokens_details":{"reasoning_tokens":2}}})");
  absl::StatusOr<std::string> body = Responses()->EncodeResponse(c);
  ASSERT_TRUE(body.ok()) << body.status();
  json r = json::parse(*body);
  EXPECT_EQ(r["id"], "resp_chatcmpl-9");
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["created_at"], 1700000000);
  EXPECT_EQ(r["status"], "completed");
  EXPECT_EQ(r["model"], "gpt-4o");
  EXPECT_TRUE(r["incomplete_details"].is_null());
  ASSERT_EQ(r["output"].size(), 2u);
  EXPECT_EQ(r["output"][0]["type"], "message");
  EXPECT_EQ(r["output"][0]["role"], "assistant");
  EXPECT_EQ(r["output"][0]["status"], "completed");
  EXPECT_EQ(r["output"][0]["content"][0]["type"], "output_text");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], "Checking.");
  EXPECT_EQ(r["output"][1]["type"], "function_call");
  EXPECT_EQ(r["output"][1]["call_id"], "call_a");
  EXPECT_EQ(r["output"][1]["name"], "get_weather");
  EXPECT_EQ(r["output"][1]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(r["usage"]["input_tokens"], 20);
  EXPECT_EQ(r["usage"]["output_tokens"], 7);
  EXPECT_EQ(r["usage"]["total_tokens"], 27);
  EXPECT_EQ(r["usage"]["input_tokens_details"]["cached_tokens"], 4);
  EXPECT_EQ(r["usage"]["output_tokens_details"]["reasoning_tokens"], 2);
}

TEST(ResponsesEncodeTest, LengthIsIncompleteWithMaxOutputTokensAndReasoningIsAnItem) {
  ChatCompletion c = Completion(R"({"id":"x","created":1,"model":"m","choices":[{"index":0,
    "message":{"role":"assistant","content":"Partial","reasoning_content":"think"},
    "finish_reason":"length"}]})");
  json r = json::parse(*Responses()->EncodeResponse(c));
  EXPECT_EQ(r["status"], "incomplete");
  EXPECT_EQ(r["incomplete_details"]["reason"], "max_output_tokens");
  ASSERT_EQ(r["output"].size(), 2u);
  EXPECT_EQ(r["output"][0]["type"], "reasoning");
  EXPECT_EQ(r["output"][0]["content"][0]["type"], "reasoning_text");
  EXPECT_EQ(r["output"][0]["content"][0]["text"], "think");
  EXPECT_EQ(r["output"][1]["content"][0]["text"], "Partial");
  EXPECT_TRUE(r["usage"].is_null());
}

// ---- ingress: streams ----

std::vector<json> Events(const std::string& bytes) {
  std::vector<json> out;
  SseParser parser;
  std::vector<SseEvent> events;
  EXPECT_TRUE(parser.Feed(bytes, &events).ok());
  EXPECT_TRUE(parser.Finish(&events).ok());
  for (const SseEvent& e : events) {
    json j = json::parse(e.data);
    EXPECT_EQ(e.event, j["type"].get<std::string>());  // "event:" names the type
    out.push_back(std::move(j));
  }
  return out;
}

std::string EncodeChunks(const std::vector<std::string>& chunks, bool error = false) {
  std::unique_ptr<StreamEncoder> enc = Responses()->NewStreamEncoder();
  std::string out;
  for (const std::string& c : chunks) {
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(c);
    EXPECT_TRUE(chunk.ok()) << chunk.status();
    EXPECT_TRUE(enc->Encode(*chunk, &out).ok());
  }
  if (error) {
    enc->EncodeError(WithHttpStatus(absl::ResourceExhaustedError("slow down"), 429), &out);
  } else {
    EXPECT_TRUE(enc->Finish(&out).ok());
  }
  return out;
}

std::vector<std::string> Types(const std::vector<json>& events) {
  std::vector<std::string> types;
  for (const json& e : events) types.push_back(e["type"]);
  return types;
}

constexpr char kHead[] = R"({"id":"c1","object":"chat.completion.chunk","created":5,"model":"m",)";

TEST(ResponsesStreamTest, TextStreamIsTheSemanticEventSequence) {
  std::string bytes = EncodeChunks({
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":"Hel"}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":"lo"}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
      std::string(kHead) + R"("choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})",
  });
  std::vector<json> events = Events(bytes);
  EXPECT_EQ(Types(events), (std::vector<std::string>{
                               "response.created", "response.in_progress",
                               "response.output_item.added", "response.content_part.added",
                               "response.output_text.delta", "response.output_text.delta",
                               "response.output_text.done", "response.content_part.done",
                               "response.output_item.done", "response.completed"}));
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["sequence_number"], i);
  EXPECT_EQ(events[0]["response"]["status"], "in_progress");
  EXPECT_EQ(events[0]["response"]["id"], "resp_c1");
  const std::string item_id = events[2]["item"]["id"];
  EXPECT_EQ(events[2]["item"]["type"], "message");
  EXPECT_EQ(events[2]["output_index"], 0);
  EXPECT_EQ(events[4]["item_id"], item_id);
  EXPECT_EQ(events[4]["content_index"], 0);
  EXPECT_EQ(events[4]["delta"], "Hel");
  EXPECT_EQ(events[5]["delta"], "lo");
  EXPECT_EQ(events[6]["text"], "Hello");
  EXPECT_EQ(events[7]["part"]["text"], "Hello");
  EXPECT_EQ(events[8]["item"]["content"][0]["text"], "Hello");
  const json& done = events[9]["response"];
  EXPECT_EQ(done["status"], "completed");
  EXPECT_EQ(done["output"][0]["content"][0]["text"], "Hello");
  EXPECT_EQ(done["usage"]["input_tokens"], 3);
  EXPECT_EQ(done["usage"]["output_tokens"], 2);
  EXPECT_EQ(done["usage"]["total_tokens"], 5);
}

TEST(ResponsesStreamTest, ToolCallsAreFunctionCallItemsWithArgumentDeltas) {
  std::string bytes = EncodeChunks({
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[
          {"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"tool_calls":[
          {"index":0,"function":{"arguments":"{\"a\":"}}]}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"tool_calls":[
          {"index":0,"function":{"arguments":"1}"}}]}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
  });
  std::vector<json> events = Events(bytes);
  EXPECT_EQ(Types(events), (std::vector<std::string>{
                               "response.created", "response.in_progress",
                               "response.output_item.added",
                               "response.function_call_arguments.delta",
                               "response.function_call_arguments.delta",
                               "response.function_call_arguments.done",
                               "response.output_item.done", "response.completed"}));
  EXPECT_EQ(events[2]["item"]["type"], "function_call");
  EXPECT_EQ(events[2]["item"]["call_id"], "call_1");
  EXPECT_EQ(events[2]["item"]["name"], "f");
  EXPECT_EQ(events[2]["item"]["arguments"], "");
  EXPECT_EQ(events[3]["item_id"], events[2]["item"]["id"]);
  EXPECT_EQ(events[5]["arguments"], R"({"a":1})");
  EXPECT_EQ(events[6]["item"]["arguments"], R"({"a":1})");
  EXPECT_EQ(events[7]["response"]["output"][0]["call_id"], "call_1");
}

TEST(ResponsesStreamTest, LengthEndsIncompleteAndErrorsFail) {
  std::vector<json> events = Events(EncodeChunks({
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":"a"}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{},"finish_reason":"length"}]})"}));
  EXPECT_EQ(events.back()["type"], "response.incomplete");
  EXPECT_EQ(events.back()["response"]["incomplete_details"]["reason"], "max_output_tokens");

  events = Events(EncodeChunks(
      {std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":"a"}}]})"},
      /*error=*/true));
  EXPECT_EQ(events.back()["type"], "response.failed");
  EXPECT_EQ(events.back()["response"]["status"], "failed");
  EXPECT_EQ(events.back()["response"]["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(events.back()["response"]["error"]["message"], "slow down");
}

// Mistral's reasoning models stream content as arrays of parts: thinking parts are the
// reasoning item, text parts the message (Mistral's chat API reference, "ThinkChunk").
TEST(ResponsesStreamTest, ContentPartArraysGiveReasoningThenText) {
  std::vector<json> events = Events(EncodeChunks({
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":[{"type":"thinking",
          "thinking":[{"type":"text","text":"2+2 is 4"}]}]}}]})",
      std::string(kHead) + R"("choices":[{"index":0,"delta":{"content":[{"type":"text",
          "text":"4"}]},"finish_reason":"stop"}]})"}));
  EXPECT_EQ(Types(events), (std::vector<std::string>{
                               "response.created", "response.in_progress",
                               "response.output_item.added", "response.content_part.added",
                               "response.reasoning_text.delta", "response.reasoning_text.done",
                               "response.content_part.done", "response.output_item.done",
                               "response.output_item.added", "response.content_part.added",
                               "response.output_text.delta", "response.output_text.done",
                               "response.content_part.done", "response.output_item.done",
                               "response.completed"}));
  const json& output = events.back()["response"]["output"];
  ASSERT_EQ(output.size(), 2u);
  EXPECT_EQ(output[0]["type"], "reasoning");
  EXPECT_EQ(output[0]["content"][0]["text"], "2+2 is 4");
  EXPECT_EQ(output[1]["content"][0]["text"], "4");
  EXPECT_EQ(events[8]["output_index"], 1);
}

// ---- egress ----

TEST(ResponsesEgressTest, RequestCarriesInputItemsToolsAndFormat) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(R"({"model":"gpt-4.1","messages":[
      {"role":"system","content":"sys"},
      {"role":"user","content":"hi"},
      {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
        "function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"42"}],
    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
    "tool_choice":{"type":"function","function":{"name":"f"}},
    "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}},
    "max_completion_tokens":50,"reasoning_effort":"high","temperature":0.2})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  WireRequest wire;
  ASSERT_TRUE(Responses()->EncodeRequest(*chat, {.stream = true, .model = "gpt-x"}, &wire).ok());
  EXPECT_EQ(wire.target, "/responses");
  json b = json::parse(wire.body);
  EXPECT_EQ(b["model"], "gpt-x");
  EXPECT_EQ(b["stream"], true);
  ASSERT_EQ(b["input"].size(), 4u);
  EXPECT_EQ(b["input"][0], json::parse(R"({"type":"message","role":"system","content":"sys"})"));
  EXPECT_EQ(b["input"][1], json::parse(R"({"type":"message","role":"user","content":"hi"})"));
  EXPECT_EQ(b["input"][2], json::parse(R"({"type":"function_call","call_id":"c1","name":"f",
                                          "arguments":"{}"})"));
  EXPECT_EQ(b["input"][3],
            json::parse(R"({"type":"function_call_output","call_id":"c1","output":"42"})"));
  EXPECT_EQ(b["tools"][0],
            json::parse(R"({"type":"function","name":"f","parameters":{"type":"object"}})"));
  EXPECT_EQ(b["tool_choice"], json::parse(R"({"type":"function","name":"f"})"));
  EXPECT_EQ(b["text"]["format"],
            json::parse(R"({"type":"json_schema","name":"n","schema":{"type":"object"}})"));
  EXPECT_EQ(b["max_output_tokens"], 50);
  EXPECT_EQ(b["reasoning"]["effort"], "high");
  EXPECT_EQ(b["temperature"], 0.2);

  ChatRequest stop = *chat;
  stop.stop = std::string("x");
  absl::Status s = Responses()->EncodeRequest(stop, {}, &wire);
  EXPECT_EQ(s.message(), "stop: not supported by openai_responses");
}

// Claude Code's Anthropic thinking becomes reasoning.effort (by budget: < 4096 low,
// < 16384 medium, else high; adaptive medium; disabled none), the client's own effort wins,
// and context_management (Anthropic's alone) is left out; a bad thinking names its field.
TEST(ResponsesEgressTest, AnthropicThinkingIsReasoningEffort) {
  auto encode = [](std::string_view members) -> absl::StatusOr<json> {
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(
        std::string(R"({"model":"m","messages":[{"role":"user","content":"hi"}],)") +
        std::string(members) + "}");
    if (!chat.ok()) return chat.status();
    WireRequest wire;
    absl::Status s = Responses()->EncodeRequest(*chat, {.model = "gpt-x"}, &wire);
    if (!s.ok()) return s;
    return json::parse(wire.body);
  };
  auto effort = [&](std::string_view members) -> json {
    absl::StatusOr<json> b = encode(members);
    EXPECT_TRUE(b.ok()) << b.status();
    if (!b.ok()) return json();
    EXPECT_FALSE(b->contains("thinking")) << b->dump();
    EXPECT_FALSE(b->contains("context_management")) << b->dump();
    return b->contains("reasoning") ? (*b)["reasoning"]["effort"] : json();
  };
  EXPECT_EQ(effort(R"("thinking":{"type":"enabled","budget_tokens":1024})"), "low");
  EXPECT_EQ(effort(R"("thinking":{"type":"enabled","budget_tokens":8000},)"
                   R"("context_management":{"edits":[]})"),
            "medium");
  EXPECT_EQ(effort(R"("thinking":{"type":"enabled","budget_tokens":31999})"), "high");
  EXPECT_EQ(effort(R"("thinking":{"type":"adaptive"})"), "medium");
  EXPECT_EQ(effort(R"("thinking":{"type":"disabled"})"), json());
  EXPECT_EQ(effort(R"("thinking":{"type":"enabled","budget_tokens":1024},)"
                   R"("reasoning_effort":"high")"),
            "high");
  absl::StatusOr<json> bad = encode(R"("thinking":{"type":"enabled"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("thinking.budget_tokens"), std::string_view::npos)
      << bad.status();
}

TEST(ResponsesEgressTest, RequestRoundTripsThroughTheIngressSide) {
  const std::string body = R"({"model":"m","instructions":"sys","input":[
      {"role":"user","content":"q"},
      {"type":"function_call","call_id":"c","name":"f","arguments":"{\"x\":1}"},
      {"type":"function_call_output","call_id":"c","output":"r"}],
    "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],
    "max_output_tokens":90})";
  absl::StatusOr<ChatRequest> first = Decode(body);
  ASSERT_TRUE(first.ok()) << first.status();
  WireRequest wire;
  ASSERT_TRUE(Responses()->EncodeRequest(*first, {}, &wire).ok());
  absl::StatusOr<ChatRequest> second = Decode(wire.body);
  ASSERT_TRUE(second.ok()) << second.status() << " " << wire.body;
  EXPECT_EQ(first->messages, second->messages);
  EXPECT_EQ(first->tools, second->tools);
  EXPECT_EQ(first->max_completion_tokens, second->max_completion_tokens);
}

// An upstream's events, one data line each, decoded whole.
DecodedStream DecodeLines(const std::vector<std::string>& lines) {
  return DecodeStream(*Responses(), SseBodyFromChunkLines(lines, /*with_event_type=*/false),
                      Split::kWhole);
}

constexpr char kCreated[] =
    R"({"type":"response.created","response":{"id":"resp_1","object":"response",)"
    R"("created_at":1700000000,"model":"gpt-4.1","status":"in_progress","output":[]}})";
constexpr char kCompleted[] =
    R"({"type":"response.completed","response":{"id":"resp_1","object":"response",)"
    R"("created_at":1700000000,"model":"gpt-4.1","status":"completed","output":[]}})";

// The decoder reads an event's type first and only what that type needs: the events it has
// no use for (text done, content parts) are not read past their type, and an event whose
// type comes later is read whole, its item or response once the type is known.
TEST(ResponsesEgressTest, EventsAreReadAsFarAsTheirTypeNeeds) {
  DecodedStream got = DecodeLines({
      kCreated,
      // Not read past the type: what follows is not even looked at.
      R"({"type":"response.output_text.done","text":<the whole text>})",
      R"({"type":"response.output_text.delta","item_id":"msg_1","output_index":0,)"
      R"("content_index":0,"delta":"Hel\u006co","logprobs":[{"token":"x","delta":"no"}]})",
      // `type` last: the captured item is read once the type is known.
      R"({"output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1",)"
      R"("name":"f","arguments":""},"type":"response.output_item.added"})",
      R"({"delta":"{}","output_index":1,"type":"response.function_call_arguments.delta"})",
      kCompleted,
  });
  ASSERT_TRUE(got.status.ok()) << got.status;
  ASSERT_EQ(got.events.size(), 6u);
  json role = json::parse(got.events[0]);
  EXPECT_EQ(role["id"], "resp_1");
  EXPECT_EQ(role["model"], "gpt-4.1");
  EXPECT_EQ(role["created"], 1700000000);
  EXPECT_EQ(role["choices"][0]["delta"]["role"], "assistant");
  json text = json::parse(got.events[1]);
  EXPECT_EQ(text["id"], "resp_1");
  EXPECT_EQ(text["choices"][0]["delta"]["content"], "Hello");
  EXPECT_TRUE(text["choices"][0]["finish_reason"].is_null());
  json call = json::parse(got.events[2]);
  EXPECT_EQ(call["choices"][0]["delta"]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(call["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
  json args = json::parse(got.events[3]);
  EXPECT_EQ(args["choices"][0]["delta"]["tool_calls"][0]["index"], 0);
  EXPECT_EQ(args["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"], "{}");
  EXPECT_EQ(json::parse(got.events[4])["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(got.events[5], "[DONE]");
}

// What the decoder reads is still checked: a repeated or mistyped member and bad JSON in a
// used event are a bad stream (502); a response object read in place reports its own
// field; a started stream without its response is an error.
TEST(ResponsesEgressTest, TheMembersReadAreChecked) {
  struct Case {
    std::vector<std::string> lines;
    const char* message;
  } cases[] = {
      {{kCreated, R"({"type":"response.output_text.delta","delta":"a","delta":"b"})"},
       "openai_responses stream: event.delta: duplicate key"},
      {{kCreated, R"({"type":"response.output_text.delta","delta":"a","type":"x"})"},
       "openai_responses stream: event.type: duplicate key"},
      {{kCreated, R"({"type":"response.output_text.delta","output_index":"0","delta":"a"})"},
       "openai_responses stream: output_index: expected integer, got string"},
      {{R"({"type":3})"}, "openai_responses stream: type: expected string, got number"},
      {{R"(["response.created"])"}, "openai_responses stream: event: expected object, got array"},
      {{R"({"type":"response.created","response":{"id":"r","created_at":1e300}})"},
       "response.created_at: timestamp out of range"},
      {{R"({"response":{"id":"r","created_at":1e300},"type":"response.created"})"},
       "response.created_at: timestamp out of range"},
  };
  for (const Case& c : cases) {
    DecodedStream got = DecodeLines(c.lines);
    ASSERT_FALSE(got.status.ok()) << c.lines.back();
    EXPECT_EQ(got.status.message(), c.message) << c.lines.back();
  }
  // Bad JSON after a used event's type, inside its response or after it: a bad stream.
  for (const char* line :
       {R"({"type":"response.output_text.delta","delta":"a",})",
        R"({"type":"response.created","response":{"id":"r",}})",
        R"({"type":"response.created","response":{"id":"r"}} x)"}) {
    DecodedStream got = DecodeLines({line});
    ASSERT_FALSE(got.status.ok()) << line;
    EXPECT_EQ(HttpStatusForStatus(got.status), 502) << line << ": " << got.status;
    EXPECT_NE(got.status.message().find("invalid JSON"), std::string_view::npos) << got.status;
  }
  DecodedStream no_response = DecodeLines({R"({"type":"response.created"})"});
  EXPECT_FALSE(no_response.status.ok());
}

// Every recorded Responses answer: the unified form says what the recording says (text of
// the message items, function calls, usage), or the recording's error is the status.
TEST(ResponsesEgressTest, RecordedBodiesAndStreams) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "provider fixtures not found";
  const std::filesystem::path dir = *root / kFixtureDir;
  std::vector<std::filesystem::path> files = ListFiles(dir, "");
  if (files.empty()) GTEST_SKIP() << "no Responses recordings at " << dir;
  int bodies = 0, streams = 0;
  for (const std::filesystem::path& path : files) {
    const std::string name = path.filename().string();
    if (name.size() > 11 && name.substr(name.size() - 11) == ".chunks.txt") {
      // A recording of a multi-step exchange holds one stream per step: each ends with
      // response.completed / incomplete / failed (or an error event).
      std::vector<std::vector<std::string>> steps(1);
      bool malformed = false;  // parallel-tool-call-wrapper.1 is hand-written, braces unbalanced
      for (const std::string& line : ChunkLines(ReadFile(path))) {
        steps.back().push_back(line);
        const json e = json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (e.is_discarded()) {
          malformed = true;
          break;
        }
        const std::string type = e.value("type", "");
        if (type == "response.completed" || type == "response.incomplete" ||
            type == "response.failed" || type == "error") {
          steps.emplace_back();
        }
      }
      if (steps.back().empty()) steps.pop_back();
      if (malformed) {  // the stream cannot be read: an error, never an answer
        std::vector<std::string> all = ChunkLines(ReadFile(path));
        DecodedStream got = DecodeStream(*Responses(), SseBodyFromChunkLines(all, true), Split::kWhole);
        EXPECT_FALSE(got.status.ok()) << name;
        EXPECT_FALSE(IsProviderError(got.status)) << name;
        continue;
      }
      for (const std::vector<std::string>& lines : steps) {
      std::string want_text;
      bool failed = false;
      for (const std::string& line : lines) {
        json e = json::parse(line);
        if (e["type"] == "response.output_text.delta") want_text += e["delta"].get<std::string>();
        if (e["type"] == "response.failed" || e["type"] == "error") failed = true;
      }
      for (Split split : {Split::kWhole, Split::kByteByByte, Split::kRandom}) {
        DecodedStream got = DecodeStream(*Responses(), SseBodyFromChunkLines(lines, true), split);
        if (failed) {
          EXPECT_FALSE(got.status.ok()) << name;
          EXPECT_TRUE(IsProviderError(got.status)) << name << ": " << got.status;
          continue;
        }
        ASSERT_TRUE(got.status.ok()) << name << ": " << got.status;
        std::string text;
        for (const std::string& e : got.events) {
          if (e == "[DONE]") continue;
          absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(e);
          ASSERT_TRUE(c.ok()) << name << ": " << c.status();
          for (const ChunkChoice& ch : c->choices) text += ch.delta.content.value_or("");
        }
        EXPECT_EQ(text, want_text) << name;
        EXPECT_EQ(got.events.back(), "[DONE]") << name;
      }
      }
      ++streams;
    } else if (name.size() > 5 && name.substr(name.size() - 5) == ".json") {
      json r = json::parse(ReadFile(path));
      std::string body = r.dump();
      absl::Status s = Responses()->DecodeResponse(&body);
      if (!r.contains("output")) {  // an error body
        EXPECT_FALSE(s.ok()) << name;
        continue;
      }
      ASSERT_TRUE(s.ok()) << name << ": " << s;
      json u = json::parse(body);
      std::string want_text;
      std::vector<std::string> want_calls;
      for (const json& item : r["output"]) {
        if (item["type"] == "message") {
          for (const json& part : item["content"]) {
            if (part["type"] == "output_text") want_text += part["text"].get<std::string>();
          }
        } else if (item["type"] == "function_call") {
          want_calls.push_back(item["call_id"]);
        }
      }
      const json& msg = u["choices"][0]["message"];
      EXPECT_EQ(msg.value("content", json("")).is_null() ? "" : msg.value("content", ""),
                want_text) << name;
      std::vector<std::string> calls;
      for (const json& c : msg.value("tool_calls", json::array())) calls.push_back(c["id"]);
      EXPECT_EQ(calls, want_calls) << name;
      if (r.contains("usage") && !r["usage"].is_null()) {
        EXPECT_EQ(u["usage"]["prompt_tokens"], r["usage"]["input_tokens"]) << name;
        EXPECT_EQ(u["usage"]["completion_tokens"], r["usage"]["output_tokens"]) << name;
      }
      EXPECT_EQ(u["choices"][0]["finish_reason"], want_calls.empty() ? "stop" : "tool_calls")
          << name;
      ++bodies;
    }
  }
  EXPECT_GT(bodies, 10);
  EXPECT_GT(streams, 10);
}

// created_at is seconds since the epoch; a number no int64 holds (found by
// openai_responses_fuzzer: the conversion was undefined) is an error naming the field, and a
// fractional one is read as its whole seconds.
TEST(ResponsesEgressTest, CreatedAtOutOfRangeIsAnErrorNamingTheField) {
  const std::string tail =
      R"(,"status":"completed","output":[{"type":"message","id":"m","role":"assistant",)"
      R"("content":[{"type":"output_text","text":"t"}]}]})";
  for (const char* created : {"1444444444444444444444444444444444444444444444", "-1e300",
                              "9223372036854775808"}) {
    std::string body = std::string(R"({"id":"resp_1","object":"response","created_at":)") +
                       created + tail;
    absl::Status s = Responses()->DecodeResponse(&body);
    ASSERT_FALSE(s.ok()) << created;
    EXPECT_NE(s.message().find("created_at"), std::string_view::npos) << s;
  }
  std::string body =
      std::string(R"({"id":"resp_1","object":"response","created_at":1700000000.75)") + tail;
  ASSERT_TRUE(Responses()->DecodeResponse(&body).ok()) << body;
  EXPECT_EQ(json::parse(body)["created"], 1700000000);
}


// Issue 11: an error inside a Responses stream gets the status the same error gets from
// every other dialect. OpenAI answers insufficient_quota with HTTP 429 when it is not
// streamed (the recorded openai-error.1.json); streamed, the recording
// (openai-error.1.chunks.txt) carries it as an `error` event and in response.failed. The
// codes this dialect maps itself keep their statuses; a code nobody knows is a retryable 500.
TEST(ResponsesEgressTest, InStreamErrorCodesGetTheStatusesOfEveryDialect) {
  struct Case {
    std::string event;
    int http;
    absl::StatusCode code;
  } cases[] = {
      {R"({"type":"error","sequence_number":2,"error":{"type":"insufficient_quota",)"
       R"("code":"insufficient_quota","message":"You exceeded your current quota.","param":null}})",
       429, absl::StatusCode::kResourceExhausted},
      {R"({"type":"response.failed","response":{"id":"resp_1","object":"response",)"
       R"("created_at":1700000000,"model":"gpt-4.1","status":"failed","output":[],)"
       R"("error":{"code":"insufficient_quota","message":"You exceeded your current quota."}}})",
       429, absl::StatusCode::kResourceExhausted},
      {R"({"type":"error","code":"rate_limit_exceeded","message":"slow down","param":null})",
       429, absl::StatusCode::kResourceExhausted},
      {R"({"type":"error","code":"invalid_prompt","message":"no","param":"input"})", 400,
       absl::StatusCode::kInvalidArgument},
      // The API's own server error: retryable, as from every dialect.
      {R"({"type":"error","code":"server_error","message":"oops","param":null})", 0,
       absl::StatusCode::kUnavailable},
      {R"({"type":"error","code":"some_new_code","message":"?","param":null})", 500,
       absl::StatusCode::kUnavailable},
  };
  for (const Case& c : cases) {
    DecodedStream got = DecodeLines({kCreated, c.event});
    ASSERT_FALSE(got.status.ok()) << c.event;
    EXPECT_TRUE(IsProviderError(got.status)) << got.status;
    EXPECT_EQ(got.status.code(), c.code) << c.event << ": " << got.status;
    if (c.http != 0) {
      EXPECT_EQ(HttpStatusForStatus(got.status), c.http) << c.event << ": " << got.status;
    }
  }
  // The same code in a whole failed response object.
  std::string body =
      R"({"id":"resp_1","object":"response","created_at":1700000000,"status":"failed",)"
      R"("output":[],"error":{"code":"insufficient_quota","message":"over quota"}})";
  absl::Status s = Responses()->DecodeResponse(&body);
  EXPECT_EQ(HttpStatusForStatus(s), 429) << s;
}

// Issue 11: the Responses API refuses max_output_tokens below 16 (OpenAI's 400 "integer_
// below_min_value: Expected a value >= 16"), where Chat Completions and Messages take 1. The
// gateway refuses it before the call, naming the unified field the client's value came in
// (max_tokens or max_completion_tokens, the names a Chat Completions or Messages client
// sent) and the provider's minimum; 16 goes out as is.
TEST(ResponsesEgressTest, MaxTokensBelowTheApisMinimumIsRefusedNamingTheField) {
  for (const char* field : {"max_tokens", "max_completion_tokens"}) {
    for (int value : {1, 15}) {
      absl::StatusOr<ChatRequest> chat = ParseChatRequest(
          std::string(R"({"model":"m","messages":[{"role":"user","content":"hi"}],")") +
          field + "\":" + std::to_string(value) + "}");
      ASSERT_TRUE(chat.ok()) << chat.status();
      WireRequest wire;
      absl::Status s = Responses()->EncodeRequest(*chat, {}, &wire);
      ASSERT_FALSE(s.ok()) << field << " " << value;
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      EXPECT_EQ(HttpStatusForStatus(s), 400) << s;
      EXPECT_EQ(ErrorParam(s), field) << s;
      EXPECT_TRUE(absl::StartsWith(s.message(), std::string(field) + ": must be >= 16"))
          << s;
      EXPECT_NE(s.message().find("openai_responses"), std::string_view::npos) << s;
    }
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(
        std::string(R"({"model":"m","messages":[{"role":"user","content":"hi"}],")") + field +
        "\":16}");
    ASSERT_TRUE(chat.ok()) << chat.status();
    WireRequest wire;
    ASSERT_TRUE(Responses()->EncodeRequest(*chat, {}, &wire).ok()) << field;
    EXPECT_EQ(json::parse(wire.body)["max_output_tokens"], 16);
  }
}

}  // namespace
}  // namespace modeenvoy
