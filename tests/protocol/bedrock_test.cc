// The "bedrock" dialect (Converse / ConverseStream) against the recordings: vercel's Converse
// bodies and decoded ConverseStream events (re-framed as binary EventStream here), Kong's
// real binary EventStream bytes, Kong's translated request and native request. Expected
// values are read from the recordings, never copied from the code's output.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/framing.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/dialect_test_util.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy::protocol_test {
namespace {

using json = nlohmann::json;

constexpr char kVercelDir[] = "vercel-ai/packages/amazon-bedrock/src/__fixtures__";
constexpr char kKongDir[] = "kong/spec/fixtures/ai-proxy";

std::unique_ptr<Dialect> Bedrock(std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("bedrock", options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *std::move(d) : nullptr;
}

std::string Event(const std::string& type, const std::string& payload) {
  return EncodeEventStreamMessage(
      {{":event-type", type}, {":content-type", "application/json"}, {":message-type", "event"}},
      payload);
}

// A vercel line {"<eventType>": {...}} as the EventStream message Bedrock sent.
std::string FrameOfLine(const std::string& line) {
  json j = json::parse(line);
  return Event(j.begin().key(), j.begin().value().dump());
}

// What a unified stream says, reassembled.
struct Reassembled {
  std::string text, reasoning, signature, finish;
  std::vector<std::string> ids, names, arguments;
  json usage;
  int usage_chunks = 0;
  bool done = false;
};

Reassembled Reassemble(const std::vector<std::string>& events) {
  Reassembled r;
  for (const std::string& data : events) {
    EXPECT_FALSE(r.done) << "event after [DONE]";
    if (data == "[DONE]") {
      r.done = true;
      continue;
    }
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(data);
    EXPECT_TRUE(chunk.ok()) << chunk.status() << " " << data;
    json j = json::parse(data);
    if (j.contains("usage") && !j["usage"].is_null()) {
      EXPECT_TRUE(j["choices"].empty());
      r.usage = j["usage"];
      ++r.usage_chunks;
    }
    for (const json& c : j["choices"]) {
      const json& d = c["delta"];
      if (d.contains("content") && d["content"].is_string()) r.text += d["content"];
      if (d.contains("reasoning_content")) r.reasoning += d["reasoning_content"];
      if (d.contains("reasoning_signature")) r.signature += d["reasoning_signature"];
      if (!c["finish_reason"].is_null()) {
        r.finish = c["finish_reason"];
      }
      if (!d.contains("tool_calls")) continue;
      for (const json& t : d["tool_calls"]) {
        size_t index = t["index"];
        if (t.contains("id")) {
          EXPECT_EQ(index, r.ids.size()) << "tool-call indices are dense and in order";
          r.ids.push_back(t["id"]);
          r.names.push_back(t["function"]["name"]);
          r.arguments.emplace_back();
        }
        if (index >= r.arguments.size()) {
          ADD_FAILURE() << "tool-call delta before its head: " << data;
          continue;
        }
        if (t["function"].contains("arguments")) r.arguments[index] += t["function"]["arguments"];
      }
    }
  }
  return r;
}

// The same facts, read from the recording's lines.
Reassembled FromRecording(const std::vector<std::string>& lines) {
  Reassembled r;
  std::map<int, size_t> tool_of_block;
  std::string stop;
  for (const std::string& line : lines) {
    json j = json::parse(line);
    const std::string type = j.begin().key();
    const json& p = j.begin().value();
    if (type == "contentBlockStart" && p["start"].contains("toolUse")) {
      tool_of_block[p["contentBlockIndex"]] = r.ids.size();
      r.ids.push_back(p["start"]["toolUse"]["toolUseId"]);
      r.names.push_back(p["start"]["toolUse"]["name"]);
      r.arguments.emplace_back();
    } else if (type == "contentBlockDelta") {
      const json& d = p["delta"];
      if (d.contains("text")) r.text += d["text"];
      if (d.contains("toolUse")) r.arguments[tool_of_block.at(p["contentBlockIndex"])] += d["toolUse"]["input"];
      if (d.contains("reasoningContent") && d["reasoningContent"].contains("text")) {
        r.reasoning += d["reasoningContent"]["text"];
      }
      if (d.contains("reasoningContent") && d["reasoningContent"].contains("signature")) {
        r.signature += d["reasoningContent"]["signature"];
      }
    } else if (type == "messageStop") {
      stop = p["stopReason"];
    } else if (type == "metadata") {
      r.usage = p["usage"];
    }
  }
  for (std::string& a : r.arguments) {
    if (a.empty()) a = "{}";  // the documented form of a call without arguments
  }
  r.finish = stop == "tool_use" ? "tool_calls" : stop == "max_tokens" ? "length" : "stop";
  return r;
}

class BedrockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dialect_ = Bedrock();
    ASSERT_NE(dialect_, nullptr);
  }
  std::unique_ptr<Dialect> dialect_;
};

TEST_F(BedrockTest, EveryVercelStreamTranslatesIdenticallyUnderAnySplit) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  std::vector<std::filesystem::path> files = ListFiles(*root / kVercelDir, ".chunks.txt");
  ASSERT_EQ(files.size(), 12u);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::vector<std::string> lines = ChunkLines(ReadFile(file));
    std::string bytes;
    for (const std::string& line : lines) bytes += FrameOfLine(line);
    DecodedStream whole = DecodeStream(*dialect_, bytes, Split::kWhole);
    ASSERT_TRUE(whole.status.ok()) << whole.status;
    DecodedStream bytewise = DecodeStream(*dialect_, bytes, Split::kByteByByte);
    ASSERT_TRUE(bytewise.status.ok()) << bytewise.status;
    EXPECT_EQ(bytewise.events, whole.events);
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      DecodedStream random = DecodeStream(*dialect_, bytes, Split::kRandom, seed);
      ASSERT_TRUE(random.status.ok()) << random.status;
      EXPECT_EQ(random.events, whole.events);
    }
    Reassembled got = Reassemble(whole.events);
    Reassembled want = FromRecording(lines);
    EXPECT_TRUE(got.done);
    EXPECT_EQ(got.text, want.text);
    EXPECT_EQ(got.reasoning, want.reasoning);
    EXPECT_EQ(got.signature, want.signature);
    EXPECT_EQ(got.ids, want.ids);
    EXPECT_EQ(got.names, want.names);
    EXPECT_EQ(got.arguments, want.arguments);
    EXPECT_EQ(got.finish, want.finish);
    if (want.usage.is_null()) {
      EXPECT_EQ(got.usage_chunks, 0);
    } else {
      ASSERT_EQ(got.usage_chunks, 1);
      EXPECT_EQ(got.usage["prompt_tokens"], want.usage["inputTokens"]);
      EXPECT_EQ(got.usage["completion_tokens"], want.usage["outputTokens"]);
      EXPECT_EQ(got.usage["total_tokens"], want.usage["totalTokens"]);
    }
  }
}

TEST_F(BedrockTest, EveryVercelBodyTranslates) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  std::vector<std::filesystem::path> files = ListFiles(*root / kVercelDir, ".json");
  ASSERT_EQ(files.size(), 11u);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::string body = ReadFile(file);
    json recorded = json::parse(body);
    ASSERT_TRUE(dialect_->DecodeResponse(&body).ok());
    ASSERT_TRUE(ParseChatCompletion(body).ok()) << body;
    json got = json::parse(body);
    const json& message = got["choices"][0]["message"];
    std::string text, reasoning;
    std::vector<json> calls;
    for (const json& block : recorded["output"]["message"]["content"]) {
      if (block.contains("text")) text += block["text"];
      if (block.contains("toolUse")) calls.push_back(block["toolUse"]);
      if (block.contains("reasoningContent")) {
        reasoning += block["reasoningContent"]["reasoningText"]["text"];
        EXPECT_EQ(message["reasoning_signature"],
                  block["reasoningContent"]["reasoningText"]["signature"]);
      }
    }
    if (calls.empty() || !text.empty()) {
      EXPECT_EQ(message["content"], text);
    } else {
      EXPECT_TRUE(message["content"].is_null());
    }
    if (!reasoning.empty()) {
      EXPECT_EQ(message["reasoning_content"], reasoning);
    }
    ASSERT_EQ(message.value("tool_calls", json::array()).size(), calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      const json& call = message["tool_calls"][i];
      EXPECT_EQ(call["id"], calls[i]["toolUseId"]);
      EXPECT_EQ(call["function"]["name"], calls[i]["name"]);
      EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()), calls[i]["input"]);
    }
    const std::string stop = recorded["stopReason"];
    EXPECT_EQ(got["choices"][0]["finish_reason"], stop == "tool_use" ? "tool_calls" : "stop");
    const json& usage = recorded["usage"];
    EXPECT_EQ(got["usage"]["prompt_tokens"], usage["inputTokens"]);
    EXPECT_EQ(got["usage"]["completion_tokens"], usage["outputTokens"]);
    EXPECT_EQ(got["usage"]["total_tokens"], usage["totalTokens"]);
    EXPECT_EQ(got["usage"]["prompt_tokens_details"]["cached_tokens"],
              usage.value("cacheReadInputTokens", 0));
  }
}

TEST_F(BedrockTest, KongRealResponseTranslatesWithoutItsNonBedrockUsage) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  std::string body =
      ReadFile(*root / kKongDir / "unit/real-responses/bedrock/llm-v1-chat.json");
  json recorded = json::parse(body);
  ASSERT_TRUE(dialect_->DecodeResponse(&body).ok());
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content),
            recorded["output"]["message"]["content"][0]["text"]);
  EXPECT_EQ(c->choices[0].finish_reason, "stop");
  // Kong's mock writes OpenAI-named usage members, which Converse never sends.
  EXPECT_FALSE(c->usage.has_value());
}

// Kong's binary captures: the text of each frame's payload, as Kong's expected output reads.
TEST_F(BedrockTest, KongBinaryStreamsTranslateEndToEnd) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  const std::filesystem::path aws = *root / kKongDir / "unit/streaming-chunk-formats/aws";
  std::string bytes = ReadFile(aws / "input.bin");
  std::string want_text;
  json want_usage;
  for (const json& frame : json::parse(ReadFile(aws / "expected-output.json"))) {
    json outer = json::parse(frame["data"].get<std::string>());
    json payload = json::parse(outer["body"].get<std::string>());
    if (payload.contains("delta")) want_text += payload["delta"]["text"];
    if (payload.contains("usage")) want_usage = payload["usage"];
  }
  for (Split split : {Split::kWhole, Split::kByteByByte, Split::kRandom}) {
    DecodedStream got = DecodeStream(*dialect_, bytes, split, 7);
    ASSERT_TRUE(got.status.ok()) << got.status;
    Reassembled r = Reassemble(got.events);
    EXPECT_EQ(r.text, want_text);
    EXPECT_EQ(r.finish, "stop");
    EXPECT_EQ(r.usage["prompt_tokens"], want_usage["inputTokens"]);
    EXPECT_EQ(r.usage["completion_tokens"], want_usage["outputTokens"]);
    EXPECT_TRUE(r.done);
  }

  // bedrock/chunks: base64 of a real tool-use stream in three reads.
  std::string tool_bytes;
  for (int i = 1; i <= 3; ++i) {
    std::string b64 = ReadFile(*root / kKongDir / ("bedrock/chunks/chunk-" + std::to_string(i) + ".txt"));
    while (!b64.empty() && (b64.back() == '\n' || b64.back() == '\r')) b64.pop_back();
    std::string raw;
    ASSERT_TRUE(absl::Base64Unescape(b64, &raw));
    tool_bytes += raw;
  }
  DecodedStream whole = DecodeStream(*dialect_, tool_bytes, Split::kWhole);
  ASSERT_TRUE(whole.status.ok()) << whole.status;
  EXPECT_EQ(DecodeStream(*dialect_, tool_bytes, Split::kByteByByte).events, whole.events);
  Reassembled r = Reassemble(whole.events);
  // The inputs the capture streams, read from its payloads by eye: "", "{\"", "a\": 2",
  // ", \"b", "\": 12}".
  ASSERT_EQ(r.ids, std::vector<std::string>{"tooluse_UxbKWVKgTqe8cKjPPzopiQ"});
  EXPECT_EQ(r.names, std::vector<std::string>{"add"});
  EXPECT_EQ(r.arguments, std::vector<std::string>{"{\"a\": 2, \"b\": 12}"});
  EXPECT_EQ(r.finish, "tool_calls");
  EXPECT_EQ(r.usage["prompt_tokens"], 478);
  EXPECT_EQ(r.usage["completion_tokens"], 44);
}

TEST_F(BedrockTest, StreamExceptionsBecomeUpstreamStatuses) {
  struct Case {
    std::string type;
    int http;
  } cases[] = {{"throttlingException", 429},     {"validationException", 400},
               {"serviceUnavailableException", 503}, {"internalServerException", 500},
               {"modelStreamErrorException", 500}};
  for (const Case& c : cases) {
    std::string bytes = Event("messageStart", R"({"role":"assistant"})") +
                        Event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"text":"Hi"}})") +
                        EncodeEventStreamMessage({{":message-type", "exception"},
                                                  {":exception-type", c.type},
                                                  {":content-type", "application/json"}},
                                                 R"({"message":"slow down"})");
    DecodedStream got = DecodeStream(*dialect_, bytes, Split::kByteByByte);
    EXPECT_EQ(HttpStatusForStatus(got.status), c.http) << c.type;
    EXPECT_EQ(got.status.message(), "slow down");
    EXPECT_EQ(got.events.size(), 2u);  // the role chunk and "Hi" went out before
  }
}

TEST_F(BedrockTest, StreamCutBeforeMessageStopIsAnError) {
  std::string bytes = Event("messageStart", R"({"role":"assistant"})");
  DecodedStream got = DecodeStream(*dialect_, bytes, Split::kWhole);
  EXPECT_FALSE(got.status.ok());
}

TEST_F(BedrockTest, DecodeErrorKeepsStatusAndMessage) {
  absl::Status s = dialect_->DecodeError(429, R"({"message":"Too many requests"})");
  EXPECT_EQ(HttpStatusForStatus(s), 429);
  EXPECT_EQ(s.message(), "Too many requests");
  s = dialect_->DecodeError(400, R"({"Message":"bad"})");
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  EXPECT_EQ(s.message(), "bad");
}

ChatRequest Request(std::string_view body) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ChatRequest{};
}

json Encode(const Dialect& d, std::string_view unified, bool stream = false,
            WireRequest* wire_out = nullptr) {
  WireRequest wire;
  absl::Status s = d.EncodeRequest(Request(unified), {.stream = stream, .model = {}}, &wire);
  EXPECT_TRUE(s.ok()) << s;
  if (wire_out != nullptr) *wire_out = wire;
  return s.ok() ? json::parse(wire.body) : json();
}

absl::Status EncodeStatus(const Dialect& d, std::string_view unified) {
  WireRequest wire;
  return d.EncodeRequest(Request(unified), {}, &wire);
}

TEST_F(BedrockTest, KongChatRequestTranslatesAsKongExpects) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  json request = json::parse(ReadFile(*root / kKongDir / "unit/requests/llm-v1-chat.json"));
  json expected =
      json::parse(ReadFile(*root / kKongDir / "unit/expected-requests/bedrock/llm-v1-chat.json"));
  // Kong adds its configured model options; state them in the unified request.
  request["model"] = "anthropic.claude-3-sonnet-20240229-v1:0";
  request["max_tokens"] = expected["inferenceConfig"]["maxTokens"];
  request["temperature"] = expected["inferenceConfig"]["temperature"];
  request["top_p"] = expected["inferenceConfig"]["topP"];
  WireRequest wire;
  json got = Encode(*dialect_, request.dump(), false, &wire);
  EXPECT_EQ(got["system"], expected["system"]);
  EXPECT_EQ(got["messages"], expected["messages"]);
  EXPECT_EQ(got["inferenceConfig"], expected["inferenceConfig"]);
  EXPECT_EQ(wire.target, "/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse");
}

TEST_F(BedrockTest, TargetEncodesArnsAndStreams) {
  WireRequest wire;
  Encode(*dialect_, R"({"model":"arn:aws:bedrock:us-east-1:123:inference-profile/us.x","messages":[{"role":"user","content":"hi"}]})",
         true, &wire);
  EXPECT_EQ(wire.target,
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.x/converse-stream");
  EXPECT_EQ(dialect_->ResponseFraming(true), Framing::kEventStream);
  EXPECT_EQ(dialect_->ResponseFraming(false), Framing::kJson);
  EXPECT_EQ(dialect_->default_base_url(), "");
  EXPECT_EQ(Bedrock(R"({"region":"eu-west-1"})")->default_base_url(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com");
  EXPECT_FALSE(NewDialect("bedrock", R"({"regoin":"x"})").ok());
  EXPECT_EQ(dialect_->api_key_header().name, "authorization");
}

TEST_F(BedrockTest, ToolsImagesAndToolResultsMap) {
  json got = Encode(*dialect_, R"({"model":"m","messages":[
    {"role":"system","content":"Be brief."},
    {"role":"user","content":[{"type":"text","text":"What is this?"},
      {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}]},
    {"role":"assistant","content":null,"tool_calls":[
      {"id":"t1","type":"function","function":{"name":"look","arguments":"{\"x\": 1}"}},
      {"id":"t2","type":"function","function":{"name":"noargs","arguments":""}}]},
    {"role":"tool","tool_call_id":"t1","content":"a cat"},
    {"role":"tool","tool_call_id":"t2","content":"no such tool","is_error":true},
    {"role":"user","content":"thanks"}],
    "tools":[{"type":"function","function":{"name":"look","description":"Look.","parameters":{"type":"object","properties":{"x":{"type":"integer"}}}}},
             {"type":"function","function":{"name":"noargs"}}],
    "tool_choice":"required","stop":["END"],"max_completion_tokens":100,"top_k":5})");
  EXPECT_EQ(got["system"], json::parse(R"([{"text":"Be brief."}])"));
  ASSERT_EQ(got["messages"].size(), 3u);  // user, assistant, user (two results + text merged)
  EXPECT_EQ(got["messages"][0]["content"][1],
            json::parse(R"({"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}})"));
  EXPECT_EQ(got["messages"][1]["content"][0],
            json::parse(R"({"toolUse":{"toolUseId":"t1","name":"look","input":{"x":1}}})"));
  EXPECT_EQ(got["messages"][1]["content"][1]["toolUse"]["input"], json::object());
  EXPECT_EQ(got["messages"][2]["role"], "user");
  EXPECT_EQ(got["messages"][2]["content"].size(), 3u);
  EXPECT_EQ(got["messages"][2]["content"][0],
            json::parse(R"({"toolResult":{"toolUseId":"t1","content":[{"text":"a cat"}]}})"));
  // Anthropic's tool_result is_error is Converse's status "error".
  EXPECT_EQ(got["messages"][2]["content"][1],
            json::parse(R"({"toolResult":{"toolUseId":"t2","content":[{"text":"no such tool"}],)"
                        R"("status":"error"}})"));
  EXPECT_EQ(got["toolConfig"]["toolChoice"], json::parse(R"({"any":{}})"));
  EXPECT_EQ(got["toolConfig"]["tools"][1]["toolSpec"]["inputSchema"]["json"]["type"], "object");
  EXPECT_EQ(got["inferenceConfig"], json::parse(R"({"maxTokens":100,"stopSequences":["END"]})"));
  EXPECT_EQ(got["additionalModelRequestFields"], json::parse(R"({"top_k":5})"));
}

TEST_F(BedrockTest, ToolChoiceVariants) {
  const std::string base = R"({"model":"m","messages":[{"role":"user","content":"hi"}],
    "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])";
  EXPECT_EQ(Encode(*dialect_, base + "}")["toolConfig"]["toolChoice"], json::parse(R"({"auto":{}})"));
  EXPECT_EQ(Encode(*dialect_, base + R"(,"tool_choice":{"type":"function","function":{"name":"f"}}})")
                ["toolConfig"]["toolChoice"],
            json::parse(R"({"tool":{"name":"f"}})"));
  EXPECT_FALSE(Encode(*dialect_, base + R"(,"tool_choice":"none"})").contains("toolConfig"));
}

TEST_F(BedrockTest, ResponseFormatIsAForcedToolDecodedBackToText) {
  json got = Encode(*dialect_, R"({"model":"m","messages":[{"role":"user","content":"hi"}],
    "response_format":{"type":"json_schema","json_schema":{"name":"p","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}})");
  ASSERT_EQ(got["toolConfig"]["tools"].size(), 1u);
  const std::string name = got["toolConfig"]["tools"][0]["toolSpec"]["name"];
  EXPECT_EQ(got["toolConfig"]["toolChoice"]["tool"]["name"], name);
  EXPECT_EQ(got["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]["a"]["type"],
            "string");
  // The answer: the forced tool's input becomes the message text.
  std::string body = json{{"output", {{"message", {{"role", "assistant"}, {"content", json::array({
      {{"toolUse", {{"toolUseId", "x"}, {"name", name}, {"input", {{"a", "b"}}}}}}})}}}}},
                          {"stopReason", "tool_use"},
                          {"usage", {{"inputTokens", 3}, {"outputTokens", 4}, {"totalTokens", 7}}}}
                         .dump();
  ASSERT_TRUE(dialect_->DecodeResponse(&body).ok());
  json answer = json::parse(body);
  EXPECT_EQ(answer["choices"][0]["message"]["content"], R"({"a":"b"})");
  EXPECT_FALSE(answer["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(answer["choices"][0]["finish_reason"], "stop");
  // Streamed likewise.
  std::string bytes =
      Event("messageStart", R"({"role":"assistant"})") +
      Event("contentBlockStart", json{{"contentBlockIndex", 0}, {"start", {{"toolUse", {{"toolUseId", "x"}, {"name", name}}}}}}.dump()) +
      Event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\"a\":"}}})") +
      Event("contentBlockDelta", R"({"contentBlockIndex":0,"delta":{"toolUse":{"input":"\"b\"}"}}})") +
      Event("contentBlockStop", R"({"contentBlockIndex":0})") +
      Event("messageStop", R"({"stopReason":"tool_use"})");
  DecodedStream s = DecodeStream(*dialect_, bytes, Split::kRandom, 3);
  ASSERT_TRUE(s.status.ok()) << s.status;
  Reassembled r = Reassemble(s.events);
  EXPECT_EQ(r.text, R"({"a":"b"})");
  EXPECT_TRUE(r.ids.empty());
  EXPECT_EQ(r.finish, "stop");
}

TEST_F(BedrockTest, InexpressibleFieldsAreRefusedByName) {
  const std::string msgs = R"("model":"m","messages":[{"role":"user","content":"hi"}])";
  struct Case {
    std::string body, param;
  } cases[] = {
      {"{" + msgs + R"(,"n":2})", "n"},
      {"{" + msgs + R"(,"presence_penalty":1})", "presence_penalty"},
      {"{" + msgs + R"(,"seed":1})", "seed"},
      {"{" + msgs + R"(,"temperature":1.5})", "temperature"},
      {"{" + msgs + R"(,"reasoning_effort":"low"})", "reasoning_effort"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]})",
       "messages[0].content[0].image_url.url"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AA==","format":"wav"}}]}]})",
       "messages[0].content[0].input_audio"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]})",
       "messages[1].tool_calls[0].function.arguments"},
  };
  for (const Case& c : cases) {
    absl::Status s = EncodeStatus(*dialect_, c.body);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.body;
    EXPECT_EQ(ErrorParam(s), c.param) << s;
  }
}

// The unified user (the Messages metadata.user_id Claude Code sends) goes as Converse's
// requestMetadata "user", merged with the client's own map, whose own keys win.
TEST_F(BedrockTest, UserIsSentAsRequestMetadata) {
  const std::string msgs = R"("model":"m","messages":[{"role":"user","content":"hi"}])";
  json got = Encode(*dialect_, "{" + msgs + R"(,"user":"user_4f2a_account__session_9c1e-77"})");
  EXPECT_EQ(got["requestMetadata"], json::parse(R"({"user":"user_4f2a_account__session_9c1e-77"})"));
  EXPECT_FALSE(got.contains("user"));
  EXPECT_FALSE(got.contains("additionalModelRequestFields")) << got.dump();
  got = Encode(*dialect_, "{" + msgs + R"(,"metadata":{"team":"a b"},"user":"u@x.io"})");
  EXPECT_EQ(got["requestMetadata"], json::parse(R"({"team":"a b","user":"u@x.io"})"));
  got = Encode(*dialect_, "{" + msgs + R"(,"requestMetadata":{"user":"own","k":"v"},"user":"u"})");
  EXPECT_EQ(got["requestMetadata"], json::parse(R"({"user":"own","k":"v"})"));
  got = Encode(*dialect_, "{" + msgs + R"(,"requestMetadata":{"k":"v"},"user":"u"})");
  EXPECT_EQ(got["requestMetadata"], json::parse(R"({"k":"v","user":"u"})"));
  // Claude Code 2.1's user_id is a JSON object in a string, which the map cannot hold whole
  // (quotes, braces, commas): one "user.<member>" entry per member, the client's keys winning.
  const std::string claude_code =
      R"({\"device_id\":\"ec9da21f\",\"account_uuid\":\"\",\"session_id\":\"b26c5d69-557c\"})";
  got = Encode(*dialect_, "{" + msgs + R"(,"metadata":{"user.session_id":"mine"},"user":")" +
                              claude_code + "\"}");
  EXPECT_EQ(got["requestMetadata"],
            json::parse(R"({"user.session_id":"mine","user.device_id":"ec9da21f",)"
                        R"("user.account_uuid":""})"));
  // What Converse's map cannot hold (values: up to 256 of [a-zA-Z0-9 whitespace ._:/=+$@-]).
  for (const std::string& user :
       {std::string(257, 'a'), std::string("caf\u00e9"), std::string(R"(a,b)"),
        std::string(R"({\"n\":1})"), std::string(R"({\"k\":\"a,b\"})"), std::string("{}")}) {
    absl::Status s = EncodeStatus(*dialect_, "{" + msgs + R"(,"user":")" + user + "\"}");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << user;
    EXPECT_EQ(ErrorParam(s), "user") << s;
  }
}

TEST_F(BedrockTest, ReasoningRoundTripsThroughAssistantTurns) {
  json got = Encode(*dialect_, R"({"model":"m","messages":[{"role":"user","content":"q"},
    {"role":"assistant","content":"a","reasoning_content":"think","reasoning_signature":"sig"},
    {"role":"user","content":"q2"}]})");
  EXPECT_EQ(got["messages"][1]["content"][0],
            json::parse(R"({"reasoningContent":{"reasoningText":{"text":"think","signature":"sig"}}})"));
  EXPECT_EQ(got["messages"][1]["content"][1], json::parse(R"({"text":"a"})"));
}

TEST_F(BedrockTest, KongNativeRequestDecodes) {
  std::optional<std::filesystem::path> root = FixturesDir();
  if (!root) GTEST_SKIP() << "no provider fixtures";
  WireRequest wire;
  wire.target = "/model/us.anthropic.claude-3-5-haiku%3A0/converse-stream";
  wire.body = ReadFile(*root / kKongDir / "native/bedrock/request/with-functions-and-chatter.json");
  absl::StatusOr<ChatRequest> chat = dialect_->DecodeRequest(wire);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->model, "us.anthropic.claude-3-5-haiku:0");
  EXPECT_TRUE(chat->stream.value_or(false));
  ASSERT_TRUE(ValidateChatRequest(*chat).ok()) << ValidateChatRequest(*chat);
  // system, user, assistant(+call), tool, user, assistant(+call), tool
  ASSERT_EQ(chat->messages.size(), 7u);
  EXPECT_EQ(chat->messages[0].role, Role::kSystem);
  EXPECT_EQ(chat->messages[2].tool_calls.at(0).id, "tooluse_12j842hSE-_gkri61ab2A");
  EXPECT_EQ(chat->messages[2].tool_calls.at(0).function->arguments, "{}");
  EXPECT_EQ(chat->messages[3].role, Role::kTool);
  EXPECT_EQ(std::get<std::string>(*chat->messages[3].content), R"({"success":true})");
  EXPECT_EQ(chat->tools.size(), 3u);
  // And back: the same turns (the two consecutive user turns merge into one).
  WireRequest again;
  absl::Status encoded = dialect_->EncodeRequest(*chat, {.stream = true, .model = {}}, &again);
  ASSERT_TRUE(encoded.ok()) << encoded;
  json body = json::parse(again.body);
  EXPECT_EQ(body["messages"].size(), 5u);
  EXPECT_EQ(body["toolConfig"]["tools"].size(), 3u);
}

TEST_F(BedrockTest, EncodedAnswersDecodeBack) {
  ChatCompletion c;
  c.choices.emplace_back();
  c.choices[0].message.content = std::string("hello");
  ToolCall call;
  call.id = "t1";
  call.function = FunctionCall{"f", R"({"a":1})", {}};
  c.choices[0].message.tool_calls.push_back(call);
  c.choices[0].finish_reason = "tool_calls";
  c.usage = Usage{10, 5, 15, PromptTokensDetails{4, std::nullopt, {}}, std::nullopt, {}};
  absl::StatusOr<std::string> body = dialect_->EncodeResponse(c);
  ASSERT_TRUE(body.ok());
  std::string decoded = *body;
  ASSERT_TRUE(dialect_->DecodeResponse(&decoded).ok());
  json j = json::parse(decoded);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "hello");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], R"({"a":1})");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 10);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);

  // The stream encoder's bytes through the decoder.
  std::unique_ptr<StreamEncoder> enc = dialect_->NewStreamEncoder();
  std::string bytes;
  auto chunk = [](std::string_view text) {
    absl::StatusOr<ChatCompletionChunk> ch = ParseChatCompletionChunk(text);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return *ch;
  };
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]})"), &bytes).ok());
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]})"), &bytes).ok());
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\""}}]},"finish_reason":null}]})"), &bytes).ok());
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":null}]})"), &bytes).ok());
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})"), &bytes).ok());
  ASSERT_TRUE(enc->Encode(chunk(R"({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}})"), &bytes).ok());
  ASSERT_TRUE(enc->Finish(&bytes).ok());
  DecodedStream s = DecodeStream(*dialect_, bytes, Split::kByteByByte);
  ASSERT_TRUE(s.status.ok()) << s.status;
  Reassembled r = Reassemble(s.events);
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.arguments, std::vector<std::string>{R"({"a":1})"});
  EXPECT_EQ(r.finish, "tool_calls");
  EXPECT_EQ(r.usage["total_tokens"], 5);
}

}  // namespace
}  // namespace modeenvoy::protocol_test
