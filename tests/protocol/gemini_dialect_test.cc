// tests/protocol/gemini_dialect_test.cc: the "gemini" and "vertex" dialects: request
// encoding, whole responses, streams (SSE and JSON array) on the recorded fixtures, errors,
// options and the ingress direction.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/dialect_test_util.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using json = nlohmann::ordered_json;
using protocol_test::DecodeStream;
using protocol_test::Split;

constexpr std::string_view kVercelDir = "vercel-ai/packages/google/src/__fixtures__";
constexpr std::string_view kKongDir = "kong/spec/fixtures/ai-proxy";

std::unique_ptr<Dialect> Make(std::string_view name, std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect(name, options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? std::move(*d) : nullptr;
}

ChatRequest Chat(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *chat : ChatRequest{};
}

absl::StatusOr<json> Encode(const Dialect& d, std::string_view body, bool stream = false,
                            WireRequest* wire_out = nullptr) {
  WireRequest wire;
  DialectCall call;
  call.stream = stream;
  absl::Status s = d.EncodeRequest(Chat(body), call, &wire);
  if (!s.ok()) return s;
  if (wire_out != nullptr) *wire_out = wire;
  return json::parse(wire.body);
}

// ---------------------------------------------------------------------------------------
// Options, targets, auth.

TEST(GeminiDialectTest, TargetsFramingAndKeyHeader) {
  std::unique_ptr<Dialect> d = Make("gemini");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->default_base_url(), "https://generativelanguage.googleapis.com/v1beta");
  EXPECT_EQ(d->api_key_header().name, "x-goog-api-key");
  EXPECT_EQ(d->api_key_header().prefix, "");
  const std::string body = R"({"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]})";
  WireRequest wire;
  ASSERT_TRUE(Encode(*d, body, false, &wire).ok());
  EXPECT_EQ(wire.target, "/models/gemini-2.5-flash:generateContent");
  ASSERT_TRUE(Encode(*d, body, true, &wire).ok());
  EXPECT_EQ(wire.target, "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_EQ(d->ResponseFraming(true), Framing::kSse);
  EXPECT_EQ(d->ResponseFraming(false), Framing::kJson);

  std::unique_ptr<Dialect> arr = Make("gemini", R"({"stream_framing":"json_array"})");
  ASSERT_TRUE(Encode(*arr, body, true, &wire).ok());
  EXPECT_EQ(wire.target, "/models/gemini-2.5-flash:streamGenerateContent");
  EXPECT_EQ(arr->ResponseFraming(true), Framing::kJsonArray);
  // The provider's model name wins over the request's; a "models/" prefix is accepted.
  WireRequest w2;
  ASSERT_TRUE(d->EncodeRequest(Chat(body), {.model = "models/gemini-pro"}, &w2).ok());
  EXPECT_EQ(w2.target, "/models/gemini-pro:generateContent");
}

TEST(GeminiDialectTest, OptionsAreReadStrictly) {
  EXPECT_EQ(NewDialect("gemini", R"({"project":"p"})").status().message(),
            "project: unknown field");
  EXPECT_EQ(NewDialect("gemini", R"({"stream_framing":"ndjson"})").status().message(),
            "stream_framing: must be \"sse\" or \"json_array\"");
  EXPECT_EQ(NewDialect("gemini", R"({"allow_file_uri":"yes"})").status().message(),
            "allow_file_uri: must be a boolean");
  EXPECT_EQ(NewDialect("vertex", R"({"project":"a/b"})").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(VertexDialectTest, UrlFromProjectLocationAndPublisher) {
  std::unique_ptr<Dialect> d = Make("vertex", R"({"project":"my-proj","location":"europe-west4"})");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->default_base_url(), "https://europe-west4-aiplatform.googleapis.com/v1");
  EXPECT_EQ(d->api_key_header().name, "authorization");
  EXPECT_EQ(d->api_key_header().prefix, "Bearer ");
  const std::string body = R"({"model":"gemini-2.5-pro","messages":[{"role":"user","content":"hi"}]})";
  WireRequest wire;
  ASSERT_TRUE(Encode(*d, body, true, &wire).ok());
  EXPECT_EQ(wire.target,
            "/projects/my-proj/locations/europe-west4/publishers/google/models/"
            "gemini-2.5-pro:streamGenerateContent?alt=sse");
  std::unique_ptr<Dialect> global =
      Make("vertex", R"({"project":"p","location":"global","publisher":"anthropic"})");
  EXPECT_EQ(global->default_base_url(), "https://aiplatform.googleapis.com/v1");
  ASSERT_TRUE(Encode(*global, body, false, &wire).ok());
  EXPECT_EQ(wire.target,
            "/projects/p/locations/global/publishers/anthropic/models/"
            "gemini-2.5-pro:generateContent");
  // Without a project the dialect builds (for listing) but cannot address a model.
  std::unique_ptr<Dialect> bare = Make("vertex");
  absl::StatusOr<json> r = Encode(*bare, body);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ErrorParam(r.status()), "project");
}

// ---------------------------------------------------------------------------------------
// Request mapping.

TEST(GeminiDialectTest, RequestMapsEveryField) {
  std::unique_ptr<Dialect> d = Make("gemini");
  const std::string body = R"({
    "model": "gemini-2.5-flash",
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
      {"role": "user", "content": [
        {"type": "text", "text": "What is here?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.webp"}}]},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"},
         "extra_content": {"google": {"thought_signature": "c2ln"}}},
        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"},
      {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
      {"role": "assistant", "content": "It is 21 C at noon."},
      {"role": "user", "content": "Thanks"}
    ],
    "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                              "required": ["city"], "additionalProperties": false}}},
              {"type": "function", "function": {"name": "time"}}],
    "tool_choice": {"type": "function", "function": {"name": "weather"}},
    "temperature": 0.5, "top_p": 0.9, "n": 2, "max_completion_tokens": 100,
    "stop": ["END", "STOP"], "presence_penalty": 0.1, "frequency_penalty": 0.2, "seed": 7,
    "response_format": {"type": "json_schema", "json_schema": {"name": "r",
                        "schema": {"type": "object", "properties": {"a": {"type": "integer"}}}}},
    "reasoning_effort": "low"
  })";
  absl::StatusOr<json> got = Encode(*d, body);
  ASSERT_TRUE(got.ok()) << got.status();
  json want = json::parse(R"({
    "contents": [
      {"role": "user", "parts": [
        {"text": "What is here?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/cat.webp"}}]},
      {"role": "model", "parts": [
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
        {"functionCall": {"name": "time", "args": {}}}]},
      {"role": "user", "parts": [
        {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
        {"functionResponse": {"name": "time", "response": {"content": "noon"}}}]},
      {"role": "model", "parts": [{"text": "It is 21 C at noon."}]},
      {"role": "user", "parts": [{"text": "Thanks"}]}
    ],
    "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]},
    "tools": [{"functionDeclarations": [
      {"name": "weather", "description": "Weather",
       "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}},
                                "required": ["city"], "additionalProperties": false}},
      {"name": "time"}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
    "generationConfig": {
      "stopSequences": ["END", "STOP"], "temperature": 0.5, "topP": 0.9, "candidateCount": 2,
      "maxOutputTokens": 100, "presencePenalty": 0.1, "frequencyPenalty": 0.2, "seed": 7,
      "responseMimeType": "application/json",
      "responseJsonSchema": {"type": "object", "properties": {"a": {"type": "integer"}}},
      "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}}
  })");
  EXPECT_EQ(*got, want) << got->dump(2);
}

TEST(GeminiDialectTest, ToolChoiceModesAndJsonObjectAndOpenApiSchemas) {
  std::unique_ptr<Dialect> d = Make("gemini", R"({"schema_format":"openapi"})");
  auto mode = [&](std::string_view choice) {
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)"
                                   R"("tools":[{"type":"function","function":{"name":"f",)"
                                   R"("parameters":{"type":"object"}}}],"tool_choice":)") +
                       std::string(choice) + R"(,"response_format":{"type":"json_object"}})";
    absl::StatusOr<json> got = Encode(*d, body);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return std::string();
    EXPECT_EQ((*got)["generationConfig"]["responseMimeType"], "application/json");
    EXPECT_TRUE((*got)["tools"][0]["functionDeclarations"][0].contains("parameters"));
    return (*got)["toolConfig"]["functionCallingConfig"]["mode"].get<std::string>();
  };
  EXPECT_EQ(mode(R"("auto")"), "AUTO");
  EXPECT_EQ(mode(R"("none")"), "NONE");
  EXPECT_EQ(mode(R"("required")"), "ANY");
}

TEST(GeminiDialectTest, ReasoningEffortOnGemini3IsAThinkingLevel) {
  std::unique_ptr<Dialect> d = Make("gemini");
  absl::StatusOr<json> got = Encode(
      *d, R"({"model":"gemini-3-pro-preview","messages":[{"role":"user","content":"x"}],)"
          R"("reasoning_effort":"high"})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["generationConfig"]["thinkingConfig"],
            json::parse(R"({"includeThoughts":true,"thinkingLevel":"high"})"));
  got = Encode(*d, R"({"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],)"
                   R"("reasoning_effort":"none"})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["generationConfig"]["thinkingConfig"], json::parse(R"({"thinkingBudget":0})"));
}

// Claude Code's Messages `thinking` (a unified extra) becomes Gemini's thinkingConfig, not a
// refused unknown member.
TEST(GeminiDialectTest, AnthropicThinkingIsAThinkingConfig) {
  std::unique_ptr<Dialect> d = Make("gemini");
  auto config = [&](std::string_view model, std::string_view thinking) -> json {
    absl::StatusOr<json> got = Encode(
        *d, std::string(R"({"model":")") + std::string(model) +
                R"(","messages":[{"role":"user","content":"x"}],"thinking":)" +
                std::string(thinking) + "}");
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return json();
    EXPECT_FALSE(got->contains("thinking")) << got->dump();
    return (*got)["generationConfig"]["thinkingConfig"];
  };
  EXPECT_EQ(config("gemini-2.5-flash", R"({"type":"enabled","budget_tokens":2048})"),
            json::parse(R"({"includeThoughts":true,"thinkingBudget":2048})"));
  EXPECT_EQ(config("gemini-2.5-flash", R"({"type":"disabled"})"),
            json::parse(R"({"thinkingBudget":0})"));
  EXPECT_EQ(config("gemini-2.5-pro", R"({"type":"adaptive"})"),
            json::parse(R"({"includeThoughts":true,"thinkingBudget":-1})"));
  // Gemini 3 takes a level: the budget's (as for the OpenAI family: < 4096 low, < 16384
  // medium, else high); adaptive is its default, dynamic thinking.
  EXPECT_EQ(config("gemini-3-pro-preview", R"({"type":"enabled","budget_tokens":31999})"),
            json::parse(R"({"includeThoughts":true,"thinkingLevel":"high"})"));
  EXPECT_EQ(config("gemini-3-pro-preview", R"({"type":"enabled","budget_tokens":1024})"),
            json::parse(R"({"includeThoughts":true,"thinkingLevel":"low"})"));
  EXPECT_EQ(config("gemini-3-pro-preview", R"({"type":"adaptive"})"),
            json::parse(R"({"includeThoughts":true})"));
}

// Claude Code's context_management (Anthropic's server-side context editing) is left out,
// not refused: Gemini has no such thing, and the model then sees the whole conversation.
TEST(GeminiDialectTest, AnthropicContextManagementIsLeftOut) {
  std::unique_ptr<Dialect> d = Make("gemini");
  absl::StatusOr<json> got = Encode(
      *d, R"({"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],)"
          R"("context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->contains("context_management")) << got->dump();
  EXPECT_EQ((*got)["contents"][0]["parts"][0]["text"], "x");
}

// What Claude Code sends on every turn after the first, and Gemini has no member for: a
// prompt-caching hint (cache_control on blocks, tools, tool results: Gemini caches by
// itself) and Anthropic's signed thinking blocks (state Gemini cannot take back) are left
// out; a failed tool result (is_error) becomes Gemini's {"error": ...} function response.
TEST(GeminiDialectTest, CachingHintsAndForeignThinkingAreLeftOutAndToolErrorsKept) {
  std::unique_ptr<Dialect> d = Make("gemini");
  absl::StatusOr<json> got = Encode(*d, R"({"model":"gemini-2.5-flash","messages":[
      {"role":"user","content":[{"type":"text","text":"read it",
                                 "cache_control":{"type":"ephemeral"}}]},
      {"role":"assistant","content":null,
       "thinking_blocks":[{"type":"thinking","thinking":"plan","signature":"c2ln"}],
       "tool_calls":[{"id":"t1","type":"function",
                      "function":{"name":"read","arguments":"{\"path\":\"a\"}"}}]},
      {"role":"tool","tool_call_id":"t1","content":"no such file","is_error":true,
       "cache_control":{"type":"ephemeral"}},
      {"role":"assistant","content":null,
       "tool_calls":[{"id":"t2","type":"function",
                      "function":{"name":"read","arguments":"{\"path\":\"b\"}"}}]},
      {"role":"tool","tool_call_id":"t2","content":"{\"lines\":3}","is_error":false}],
    "tools":[{"type":"function","function":{"name":"read","parameters":{"type":"object"}},
              "cache_control":{"type":"ephemeral"}}]})");
  ASSERT_TRUE(got.ok()) << got.status();
  const json& contents = (*got)["contents"];
  ASSERT_EQ(contents.size(), 5u) << got->dump();
  EXPECT_EQ(contents[0]["parts"], json::parse(R"([{"text":"read it"}])"));
  EXPECT_EQ(contents[1]["parts"].size(), 1u) << contents[1].dump();  // the call alone
  EXPECT_EQ(contents[1]["parts"][0]["functionCall"]["name"], "read");
  EXPECT_EQ(contents[2]["parts"][0]["functionResponse"]["response"],
            json::parse(R"({"error":"no such file"})"));
  EXPECT_EQ(contents[4]["parts"][0]["functionResponse"]["response"],
            json::parse(R"({"lines":3})"));
  EXPECT_FALSE((*got)["tools"][0].contains("cache_control")) << got->dump();
  EXPECT_EQ(got->dump().find("cache_control"), std::string::npos) << got->dump();
  EXPECT_EQ(got->dump().find("c2ln"), std::string::npos) << got->dump();
}

TEST(GeminiDialectTest, BadOrConflictingThinkingIsRefusedByPath) {
  std::unique_ptr<Dialect> d = Make("gemini");
  const std::string head = R"({"model":"gemini-2.5-flash","messages":[{"role":"user","content":"x"}],)";
  struct Case {
    std::string body, param;
  } cases[] = {
      {head + R"("thinking":{"type":"enabled","budget_tokens":1024},"reasoning_effort":"low"})",
       "thinking"},
      {head + R"("thinking":"on"})", "thinking"},
      {head + R"("thinking":{"type":"sometimes"}})", "thinking.type"},
      {head + R"("thinking":{"budget_tokens":1024}})", "thinking.type"},
      {head + R"("thinking":{"type":"enabled"}})", "thinking.budget_tokens"},
      {head + R"("thinking":{"type":"enabled","budget_tokens":0}})", "thinking.budget_tokens"},
      {head + R"("thinking":{"type":"enabled","budget_tokens":1.5}})", "thinking.budget_tokens"},
      {head + R"("thinking":{"type":"enabled","budget_tokens":"1024"}})",
       "thinking.budget_tokens"},
      {R"({"model":"gemini-3-pro-preview","messages":[{"role":"user","content":"x"}],)"
       R"("thinking":{"type":"disabled"}})",
       "thinking.type"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<json> got = Encode(*d, c.body);
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ErrorParam(got.status()), c.param) << got.status();
  }
}

TEST(GeminiDialectTest, WhatGeminiCannotExpressIsRefusedByPath) {
  std::unique_ptr<Dialect> d = Make("gemini");
  struct Case {
    std::string body;
    std::string param;
  };
  const std::string user = R"("messages":[{"role":"user","content":"x"}])";
  std::vector<Case> cases = {
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url",)"
       R"("image_url":{"url":"https://example.com/a.png"}}]}]})",
       "messages[0].content[0].image_url.url"},
      {R"({"model":"m",)" + user + R"(,"logit_bias":{"1":2}})", "logit_bias"},
      {R"({"model":"m",)" + user + R"(,"stop":["a","b","c","d","e","f"]})", "stop"},
      {R"({"model":"m",)" + user + R"(,"tools":[{"type":"function","function":{"name":"f"}}],)"
       R"("parallel_tool_calls":false})",
       "parallel_tool_calls"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool",)"
       R"("tool_call_id":"nope","content":"r"}]})",
       "messages[1].tool_call_id"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant",)"
       R"("tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]})",
       "messages[1].tool_calls[0].function.arguments"},
      {R"({"model":"m",)" + user + R"(,"top_k":3})", "top_k"},
      {R"({"model":"m","messages":[{"role":"system","content":"only system"}]})", "messages"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<json> got = Encode(*d, c.body);
    ASSERT_FALSE(got.ok()) << c.body;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << got.status();
    EXPECT_EQ(ErrorParam(got.status()), c.param) << got.status();
  }
  // With allow_file_uri an https image becomes fileData.
  std::unique_ptr<Dialect> allow = Make("gemini", R"({"allow_file_uri":true})");
  absl::StatusOr<json> got = Encode(*allow, cases[0].body);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["contents"][0]["parts"][0],
            json::parse(R"({"fileData":{"mimeType":"image/png","fileUri":"https://example.com/a.png"}})"));
  // Gemini-native members pass through.
  got = Encode(*d, R"({"model":"m",)" + user +
                       R"(,"safetySettings":[{"category":"HARM_CATEGORY_HATE_SPEECH","threshold":"BLOCK_NONE"}]})");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["safetySettings"][0]["threshold"], "BLOCK_NONE");
}

// Kong's translation of the same chat (unit/requests -> unit/expected-requests/gemini):
// contents and systemInstruction match; Kong's generationConfig comes from its own
// defaults, not from the request.
TEST(GeminiDialectTest, KongChatRequestMatchesKongsExpectedContents) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root) GTEST_SKIP() << "provider fixtures not found";
  const auto dir = *root / kKongDir / "unit";
  json request = json::parse(protocol_test::ReadFile(dir / "requests/llm-v1-chat.json"));
  request["model"] = "gemini-pro";
  json expected = json::parse(protocol_test::ReadFile(dir / "expected-requests/gemini/llm-v1-chat.json"));
  absl::StatusOr<json> got = Encode(*Make("gemini"), request.dump());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["contents"], expected["contents"]);
  EXPECT_EQ((*got)["systemInstruction"], expected["systemInstruction"]);
}

// ---------------------------------------------------------------------------------------
// Whole responses.

class GeminiFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
    if (!root) GTEST_SKIP() << "provider fixtures not found";
    root_ = *root;
    if (!std::filesystem::is_directory(root_ / kVercelDir)) GTEST_SKIP() << "no google fixtures";
  }
  std::filesystem::path root_;
};

struct ExpectedCall {
  std::string name;
  json args;
};

// What a recording says, read with nlohmann independently of the dialect.
struct Expected {
  std::string text, reasoning;
  std::vector<ExpectedCall> calls;
  std::optional<json> usage;  // the last usageMetadata with counts
  std::string finish;         // the last finishReason
};

// "$.a.b[2]" -> "/a/b/2"
json::json_pointer Pointer(const std::string& path) {
  std::string p;
  for (size_t i = 1; i < path.size(); ++i) {
    if (path[i] == '.' || path[i] == '[') {
      p += '/';
    } else if (path[i] != ']') {
      p += path[i];
    }
  }
  return json::json_pointer(p);
}

void Accumulate(const json& element, Expected* e) {
  if (element.contains("usageMetadata") && element["usageMetadata"].contains("totalTokenCount")) {
    e->usage = element["usageMetadata"];
  }
  for (const json& c : element.value("candidates", json::array())) {
    if (c.contains("finishReason")) e->finish = c["finishReason"];
    if (!c.contains("content")) continue;
    for (const json& p : c["content"].value("parts", json::array())) {
      if (p.contains("text")) {
        (p.value("thought", false) ? e->reasoning : e->text) += p["text"].get<std::string>();
      }
      if (!p.contains("functionCall")) continue;
      const json& f = p["functionCall"];
      if (f.contains("name")) e->calls.push_back({f["name"], f.value("args", json::object())});
      for (const json& pa : f.value("partialArgs", json::array())) {
        json& target = e->calls.back().args[Pointer(pa["jsonPath"])];
        if (pa.contains("stringValue")) {
          target = (target.is_string() ? target.get<std::string>() : std::string()) +
                   pa["stringValue"].get<std::string>();
        } else if (pa.contains("numberValue")) {
          target = pa["numberValue"];
        } else if (pa.contains("boolValue")) {
          target = pa["boolValue"];
        } else {
          target = nullptr;
        }
      }
    }
  }
}

void ExpectUsage(const json& usage, const json& metadata) {
  const int64_t prompt = metadata.value("promptTokenCount", 0);
  const int64_t completion =
      metadata.value("candidatesTokenCount", 0) + metadata.value("thoughtsTokenCount", 0);
  EXPECT_EQ(usage["prompt_tokens"], prompt);
  EXPECT_EQ(usage["completion_tokens"], completion);
  EXPECT_EQ(usage["total_tokens"], metadata["totalTokenCount"]);
  EXPECT_EQ(usage["completion_tokens_details"]["reasoning_tokens"],
            metadata.value("thoughtsTokenCount", 0));
  EXPECT_EQ(usage["prompt_tokens_details"]["cached_tokens"],
            metadata.value("cachedContentTokenCount", 0));
}

TEST_F(GeminiFixtureTest, WholeResponsesTranslate) {
  std::vector<std::filesystem::path> files =
      protocol_test::ListFiles(root_ / kVercelDir, ".json", {"429", "error"});
  for (const char* kong : {"unit/real-responses/gemini/llm-v1-chat.json",
                           "gemini/llm-v1-chat/responses/good.json",
                           "gemini/llm-v1-chat/responses/fails_safety.json",
                           "gemini/request-transformer/response-in-json.json"}) {
    files.push_back(root_ / kKongDir / kong);
  }
  ASSERT_EQ(files.size(), 9u);
  std::unique_ptr<Dialect> d = Make("gemini");
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::string raw = protocol_test::ReadFile(file);
    Expected e;
    json recorded = json::parse(raw);
    Accumulate(recorded, &e);
    std::string body = raw;
    ASSERT_TRUE(d->DecodeResponse(&body).ok()) << d->DecodeResponse(&body);
    absl::StatusOr<ChatCompletion> parsed = ParseChatCompletion(body);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << body;
    json got = json::parse(body);
    ASSERT_EQ(got["choices"].size(), 1u);
    const json& msg = got["choices"][0]["message"];
    if (e.calls.empty()) {
      EXPECT_EQ(msg["content"], e.text);
    } else {
      ASSERT_EQ(msg["tool_calls"].size(), e.calls.size());
      for (size_t k = 0; k < e.calls.size(); ++k) {
        EXPECT_EQ(msg["tool_calls"][k]["function"]["name"], e.calls[k].name);
        EXPECT_EQ(json::parse(msg["tool_calls"][k]["function"]["arguments"].get<std::string>()),
                  e.calls[k].args);
        EXPECT_FALSE(msg["tool_calls"][k]["id"].get<std::string>().empty());
      }
      EXPECT_EQ(got["choices"][0]["finish_reason"], "tool_calls");
    }
    if (e.finish == "SAFETY") {
      EXPECT_EQ(got["choices"][0]["finish_reason"], "content_filter");
    }
    if (e.finish == "STOP" && e.calls.empty()) {
      EXPECT_EQ(got["choices"][0]["finish_reason"], "stop");
    }
    if (recorded.contains("modelVersion")) {
      EXPECT_EQ(got["model"], recorded["modelVersion"]);
    }
    ASSERT_TRUE(e.usage.has_value());
    ExpectUsage(got["usage"], *e.usage);
  }
}

TEST_F(GeminiFixtureTest, ThoughtSignaturesAreKeptAndGoBack) {
  std::unique_ptr<Dialect> d = Make("gemini");
  std::string raw = protocol_test::ReadFile(root_ / kVercelDir / "google-tool-call.json");
  json recorded = json::parse(raw);
  std::string body = raw;
  ASSERT_TRUE(d->DecodeResponse(&body).ok());
  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(body);
  ASSERT_TRUE(completion.ok()) << completion.status();
  const std::string signature =
      recorded["candidates"][0]["content"]["parts"][0]["thoughtSignature"];
  // Send the answer back as the next turn's history: the signature returns on its call.
  ChatRequest next = Chat(R"({"model":"m","messages":[{"role":"user","content":"weather?"}]})");
  next.messages.push_back(completion->choices[0].message);
  Message tool = MakeMessage(Role::kTool, "{\"temperature\":20}");
  tool.tool_call_id = completion->choices[0].message.tool_calls[0].id;
  next.messages.push_back(tool);
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(next, {}, &wire).ok());
  json sent = json::parse(wire.body);
  EXPECT_EQ(sent["contents"][1]["parts"][0]["thoughtSignature"], signature);
  EXPECT_EQ(sent["contents"][1]["parts"][0]["functionCall"]["args"],
            recorded["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]);
  EXPECT_EQ(sent["contents"][2]["parts"][0]["functionResponse"]["name"], "weather");

  // A text answer's signature goes back on its text part.
  raw = protocol_test::ReadFile(root_ / kVercelDir / "google-text.json");
  body = raw;
  ASSERT_TRUE(d->DecodeResponse(&body).ok());
  completion = ParseChatCompletion(body);
  ASSERT_TRUE(completion.ok());
  ChatRequest again = Chat(R"({"model":"m","messages":[{"role":"user","content":"q"}]})");
  again.messages.push_back(completion->choices[0].message);
  again.messages.push_back(MakeMessage(Role::kUser, "and?"));
  ASSERT_TRUE(d->EncodeRequest(again, {}, &wire).ok());
  sent = json::parse(wire.body);
  EXPECT_EQ(sent["contents"][1]["parts"][0]["thoughtSignature"],
            json::parse(raw)["candidates"][0]["content"]["parts"][0]["thoughtSignature"]);
}

TEST_F(GeminiFixtureTest, RateLimitErrorKeepsStatusAndMessage) {
  std::unique_ptr<Dialect> d = Make("gemini");
  std::string raw = protocol_test::ReadFile(root_ / kVercelDir / "google-429-retry-info.json");
  absl::Status s = d->DecodeError(429, raw);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusForStatus(s), 429);
  EXPECT_EQ(s.message(), json::parse(raw)["error"]["message"].get<std::string>());
  json body = json::parse(OpenAiErrorBody(s));
  EXPECT_EQ(body["error"]["type"], "rate_limit_error");
}

TEST(GeminiDialectTest, BlockedPromptIsA400AndMidStreamErrorsAreStatuses) {
  std::unique_ptr<Dialect> d = Make("gemini");
  std::string body = R"({"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}})";
  absl::Status s = d->DecodeResponse(&body);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  EXPECT_NE(s.message().find("SAFETY"), std::string::npos);
  EXPECT_EQ(ErrorCode(s), "content_filter");
  EXPECT_TRUE(IsProviderError(s));

  const std::string stream =
      "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n"
      "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n";
  protocol_test::DecodedStream out = DecodeStream(*d, stream, Split::kWhole);
  EXPECT_EQ(out.status.code(), absl::StatusCode::kUnavailable) << out.status;
  EXPECT_EQ(HttpStatusForStatus(out.status), 503);
  EXPECT_EQ(out.status.message(), "The model is overloaded.");
  EXPECT_TRUE(IsProviderError(out.status));
  ASSERT_EQ(out.events.size(), 1u);  // the text before the error
}

// ---------------------------------------------------------------------------------------
// Streams.

std::string SseBody(const std::vector<std::string>& lines) {
  std::string body;
  for (const std::string& l : lines) body += "data: " + l + "\r\n\r\n";
  return body;
}

// The same elements as the JSON array Gemini sends without alt=sse (pretty-printed).
std::string ArrayBody(const std::vector<std::string>& lines) {
  std::string body = "[";
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) body += "\n,\r\n";
    body += json::parse(lines[i]).dump(2);
  }
  return body + "]";
}

struct Reassembled {
  std::string text, reasoning;
  std::vector<ExpectedCall> calls;
  std::vector<std::string> ids;
  std::optional<json> usage;
  std::string finish;
  bool done = false;
};

Reassembled Reassemble(const std::vector<std::string>& events) {
  Reassembled r;
  for (const std::string& e : events) {
    if (e == "[DONE]") {
      r.done = true;
      continue;
    }
    EXPECT_FALSE(r.done) << "event after [DONE]";
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(e);
    EXPECT_TRUE(chunk.ok()) << chunk.status() << "\n" << e;
    json j = json::parse(e);
    if (j.contains("usage")) r.usage = j["usage"];
    for (const json& c : j["choices"]) {
      const json& delta = c["delta"];
      if (delta.contains("content")) r.text += delta["content"].get<std::string>();
      if (delta.contains("reasoning_content")) {
        r.reasoning += delta["reasoning_content"].get<std::string>();
      }
      for (const json& t : delta.value("tool_calls", json::array())) {
        size_t index = t["index"];
        if (t.contains("id")) {
          EXPECT_EQ(index, r.calls.size()) << "indices count up from 0";
          r.calls.push_back({t["function"]["name"], json()});
          r.ids.push_back(t["id"]);
          r.calls.back().args = t["function"]["arguments"].get<std::string>();
        } else {
          EXPECT_LT(index, r.calls.size());
          if (index < r.calls.size()) {
            r.calls[index].args = r.calls[index].args.get<std::string>() +
                                  t["function"]["arguments"].get<std::string>();
          }
        }
      }
      if (!c["finish_reason"].is_null()) r.finish = c["finish_reason"];
    }
  }
  return r;
}

void CheckStream(const Dialect& d, const std::string& body, const std::vector<std::string>& lines,
                 const std::string& name) {
  SCOPED_TRACE(name);
  protocol_test::DecodedStream whole = DecodeStream(d, body, Split::kWhole);
  ASSERT_TRUE(whole.status.ok()) << whole.status;
  // The gateway reads usage only right before [DONE] (KeepsUsagePromise).
  protocol_test::UsagePromiseCheck promise = protocol_test::CheckUsagePromise(d, body);
  EXPECT_EQ(promise.broken, "");
  EXPECT_EQ(promise.usage_chunks, 1);
  EXPECT_EQ(DecodeStream(d, body, Split::kByteByByte).events, whole.events);
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    protocol_test::DecodedStream random = DecodeStream(d, body, Split::kRandom, seed);
    ASSERT_TRUE(random.status.ok()) << random.status;
    EXPECT_EQ(random.events, whole.events) << "seed " << seed;
  }
  Expected e;
  for (const std::string& line : lines) Accumulate(json::parse(line), &e);
  Reassembled r = Reassemble(whole.events);
  EXPECT_TRUE(r.done);
  EXPECT_EQ(r.text, e.text);
  EXPECT_EQ(r.reasoning, e.reasoning);
  ASSERT_EQ(r.calls.size(), e.calls.size());
  for (size_t k = 0; k < e.calls.size(); ++k) {
    EXPECT_EQ(r.calls[k].name, e.calls[k].name);
    EXPECT_EQ(json::parse(r.calls[k].args.get<std::string>()), e.calls[k].args)
        << r.calls[k].args;
  }
  std::vector<std::string> unique = r.ids;
  std::sort(unique.begin(), unique.end());
  EXPECT_EQ(std::unique(unique.begin(), unique.end()), unique.end()) << "tool call ids repeat";
  if (!e.finish.empty()) {
    EXPECT_EQ(r.finish, e.calls.empty() ? (e.finish == "STOP" ? "stop" : r.finish) : "tool_calls");
  }
  ASSERT_TRUE(e.usage.has_value());
  ASSERT_TRUE(r.usage.has_value());
  ExpectUsage(*r.usage, *e.usage);
  // The usage chunk is the last before [DONE] and has no choices.
  ASSERT_GE(whole.events.size(), 2u);
  EXPECT_EQ(json::parse(whole.events[whole.events.size() - 2])["choices"], json::array());
}

TEST_F(GeminiFixtureTest, EveryRecordedStreamTranslatesUnderAnySplit) {
  std::vector<std::filesystem::path> files = protocol_test::ListFiles(root_ / kVercelDir, ".chunks.txt");
  ASSERT_EQ(files.size(), 9u);
  std::unique_ptr<Dialect> sse = Make("gemini");
  std::unique_ptr<Dialect> array = Make("vertex", R"({"project":"p","stream_framing":"json_array"})");
  for (const auto& file : files) {
    std::vector<std::string> lines = protocol_test::ChunkLines(protocol_test::ReadFile(file));
    CheckStream(*sse, SseBody(lines), lines, file.filename().string() + " (sse)");
    CheckStream(*array, ArrayBody(lines), lines, file.filename().string() + " (json array)");
  }
}

TEST_F(GeminiFixtureTest, KongJsonArrayCaptureGivesTheRecordedText) {
  const auto dir = root_ / kKongDir / "unit/streaming-chunk-formats/partial-json-split-three-parts";
  std::string body;
  for (int i = 1; i <= 3; ++i) {
    body += protocol_test::ReadFile(dir / ("input-" + std::to_string(i) + ".bin"));
  }
  body += "]";  // the capture stops before the array's end
  std::unique_ptr<Dialect> d = Make("gemini", R"({"stream_framing":"json_array"})");
  for (Split split : {Split::kWhole, Split::kByteByByte, Split::kRandom}) {
    protocol_test::DecodedStream out = DecodeStream(*d, body, split, 3);
    ASSERT_TRUE(out.status.ok()) << out.status;
    Reassembled r = Reassemble(out.events);
    EXPECT_EQ(r.text, protocol_test::ReadFile(dir / "expected-output.bin"));
    ASSERT_TRUE(r.usage.has_value());
    EXPECT_EQ((*r.usage)["total_tokens"], 71);  // the last element's totalTokenCount
  }
}

TEST(GeminiDialectTest, StreamedCallsGetStableIdsAndIndicesAcrossChunks) {
  std::unique_ptr<Dialect> d = Make("gemini");
  const std::string body = SseBody({
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"a","args":{"x":1}}}],"role":"model"},"index":0}],"responseId":"r1"})",
      R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"b"}}],"role":"model"},"index":0}],"responseId":"r1"})",
      R"({"candidates":[{"content":{"parts":[{"text":""}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4,"totalTokenCount":7},"responseId":"r1"})",
  });
  protocol_test::DecodedStream out = DecodeStream(*d, body, Split::kWhole);
  ASSERT_TRUE(out.status.ok()) << out.status;
  Reassembled r = Reassemble(out.events);
  ASSERT_EQ(r.calls.size(), 2u);
  EXPECT_EQ(r.ids, (std::vector<std::string>{"call_r1_0", "call_r1_1"}));
  EXPECT_EQ(r.calls[1].args, "{}");  // a tool with no arguments
  EXPECT_EQ(r.finish, "tool_calls");
}

// ---------------------------------------------------------------------------------------
// Ingress.

TEST(GeminiDialectTest, IngressReadsAGeminiRequestAndWritesGeminiAnswers) {
  std::unique_ptr<Dialect> d = Make("gemini");
  WireRequest request;
  request.target = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
  request.body = R"({"system_instruction":{"parts":{"text":"Be brief."}},
    "contents":[{"role":"user","parts":[{"text":"hi"}]}],
    "generationConfig":{"maxOutputTokens":9,"temperature":0.1}})";
  absl::StatusOr<ChatRequest> chat = d->DecodeRequest(request);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->model, "gemini-2.5-flash");
  EXPECT_EQ(chat->stream, true);
  ASSERT_EQ(chat->messages.size(), 2u);
  EXPECT_EQ(chat->messages[0].role, Role::kSystem);
  EXPECT_EQ(chat->max_completion_tokens, 9);
  EXPECT_TRUE(ValidateChatRequest(*chat).ok());

  request.body = R"({"contents":[],"x":1})";
  EXPECT_EQ(d->DecodeRequest(request).status().message(), "x: unknown field");
  request.body = R"({"contents":[]})";
  EXPECT_EQ(ErrorParam(d->DecodeRequest(request).status()), "contents");

  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(
      R"({"id":"x","object":"chat.completion","created":1,"model":"g","choices":[{"index":0,
      "message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],
      "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})");
  ASSERT_TRUE(completion.ok());
  absl::StatusOr<std::string> encoded = d->EncodeResponse(*completion);
  ASSERT_TRUE(encoded.ok());
  // Round trip through the egress decoder.
  std::string back = *encoded;
  ASSERT_TRUE(d->DecodeResponse(&back).ok()) << back;
  EXPECT_EQ(json::parse(back)["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(json::parse(back)["usage"]["total_tokens"], 5);

  json err = json::parse(d->EncodeErrorBody(absl::ResourceExhaustedError("slow down")));
  EXPECT_EQ(err, json::parse(R"({"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}})"));
}

TEST_F(GeminiFixtureTest, KongNativeRequestsDecode) {
  std::unique_ptr<Dialect> d = Make("gemini");
  for (const char* name : {"basic-chat.json", "basic-multimodal.json"}) {
    WireRequest request;
    request.target = "/v1beta/models/gemini-1.5-flash:generateContent";
    request.body = protocol_test::ReadFile(root_ / kKongDir / "native/gemini/request" / name);
    absl::StatusOr<ChatRequest> chat = d->DecodeRequest(request);
    ASSERT_TRUE(chat.ok()) << name << ": " << chat.status();
    EXPECT_TRUE(ValidateChatRequest(*chat).ok()) << name;
    // And back: the contents Gemini would get equal the native request's (camelCase).
    WireRequest wire;
    ASSERT_TRUE(d->EncodeRequest(*chat, {}, &wire).ok()) << name;
    json sent = json::parse(wire.body);
    json native = json::parse(request.body);
    EXPECT_EQ(sent["contents"].size(), native["contents"].size()) << name;
    EXPECT_EQ(sent["generationConfig"]["maxOutputTokens"],
              native["generationConfig"]["maxOutputTokens"]) << name;
  }
}

TEST(GeminiDialectTest, StreamEncoderWritesSseAndJsonArray) {
  for (bool array : {false, true}) {
    std::unique_ptr<Dialect> d =
        Make("gemini", array ? R"({"stream_framing":"json_array"})" : "{}");
    std::unique_ptr<StreamEncoder> enc = d->NewStreamEncoder();
    std::string bytes;
    for (const char* c : {
             R"({"id":"r","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"role":"assistant","content":"He"},"finish_reason":null}]})",
             R"({"id":"r","object":"chat.completion.chunk","created":1,"model":"g","choices":[{"index":0,"delta":{"content":"llo"},"finish_reason":"stop"}]})",
             R"({"id":"r","object":"chat.completion.chunk","created":1,"model":"g","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})"}) {
      absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(c);
      ASSERT_TRUE(chunk.ok());
      ASSERT_TRUE(enc->Encode(*chunk, &bytes).ok());
    }
    ASSERT_TRUE(enc->Finish(&bytes).ok());
    // Our own decoder reads it back.
    protocol_test::DecodedStream out = DecodeStream(*d, bytes, Split::kByteByByte);
    ASSERT_TRUE(out.status.ok()) << out.status << "\n" << bytes;
    Reassembled r = Reassemble(out.events);
    EXPECT_EQ(r.text, "Hello");
    EXPECT_EQ(r.finish, "stop");
    ASSERT_TRUE(r.usage.has_value());
    EXPECT_EQ((*r.usage)["total_tokens"], 3);
  }
}

}  // namespace
}  // namespace modeenvoy

namespace modeenvoy {
namespace {

TEST(GeminiDialectTest, IngressRefusesMembersOfTheWrongTypeWithoutThrowing) {
  std::unique_ptr<Dialect> d = *NewDialect("gemini");
  WireRequest request;
  request.target = "/v1beta/models/m:generateContent";
  for (const char* body : {
           R"({"contents":[{"role":5,"parts":[{"text":"x"}]}]})",
           R"({"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"temperature":"hot"}})",
           R"({"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"stopSequences":[1]}})",
           R"({"contents":[{"role":"user","parts":[{"text":"x"}]}],"tools":[{"functionDeclarations":[{"name":3}]}]})",
       }) {
    request.body = body;
    absl::StatusOr<ChatRequest> chat = d->DecodeRequest(request);
    EXPECT_EQ(chat.status().code(), absl::StatusCode::kInvalidArgument) << body;
  }
}

}  // namespace
}  // namespace modeenvoy
