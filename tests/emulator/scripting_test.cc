// Sans-I/O parts of the emulator: control headers, text pieces, tool-call rules, and the
// OpenAI dialect's output compared key by key with recorded OpenAI traffic.
#include "examples/emulator/scripting.h"

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "examples/emulator/provider_dialect.h"
#include "gtest/gtest.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

TEST(SplitPiecesTest, OnePiecePerWordWithTheWhitespaceBeforeIt) {
  EXPECT_EQ(SplitPieces("Hello there, world", 0),
            (std::vector<std::string>{"Hello", " there,", " world"}));
  EXPECT_EQ(SplitPieces("a\n\nb", 0), (std::vector<std::string>{"a", "\n\nb"}));
  EXPECT_TRUE(SplitPieces("", 0).empty());
}

TEST(SplitPiecesTest, ChunkCountGroupsWordsEvenly) {
  EXPECT_EQ(SplitPieces("a b c d", 2), (std::vector<std::string>{"a b", " c d"}));
  EXPECT_EQ(SplitPieces("a b c", 3), (std::vector<std::string>{"a", " b", " c"}));
}

TEST(SplitPiecesTest, FewerWordsThanChunksSplitsCodePointsNeverBytes) {
  std::vector<std::string> pieces = SplitPieces("h\xC3\xA9llo", 5);  // "héllo"
  EXPECT_EQ(pieces, (std::vector<std::string>{"h", "\xC3\xA9", "l", "l", "o"}));
  EXPECT_EQ(SplitPieces("ab", 10).size(), 2u);
}

TEST(SplitFragmentsTest, KeepsUtf8Whole) {
  std::vector<std::string> f = SplitFragments("{\"k\":\"\xE2\x82\xAC\"}", 6);
  std::string joined;
  for (const std::string& s : f) {
    joined += s;
    EXPECT_NE(static_cast<unsigned char>(s[0]) & 0xC0, 0x80) << "fragment starts mid code point";
  }
  EXPECT_EQ(joined, "{\"k\":\"\xE2\x82\xAC\"}");
}

TEST(TokenCountTest, WordsAndTruncation) {
  TokenCounter words = CountWords;
  EXPECT_EQ(CountWords("  one two\nthree  "), 3);
  EXPECT_EQ(CountWords(""), 0);
  EXPECT_EQ(TruncateToTokens("one two three", 2, words), "one two");
  EXPECT_EQ(TruncateToTokens("one two three", 5, words), "one two three");
  EXPECT_EQ(TruncateToTokens("one two three", 0, words), "");
}

TEST(ReplyTextTest, EchoIsTrimmedFixedReplyIsVerbatim) {
  ReplyControls c;
  EXPECT_EQ(ReplyText(c, "  hello world \n"), "hello world");
  EXPECT_EQ(ReplyText(c, " \n "), "OK");
  c.reply = " as is ";
  EXPECT_EQ(ReplyText(c, "ignored"), " as is ");
}

TEST(ControlHeadersTest, ParsesEveryControl) {
  ReplyControls c;
  ASSERT_TRUE(ApplyControlHeaders({{"X-Emulator-Latency-Ms", "5"},
                                   {"x-emulator-chunks", "3"},
                                   {"x-emulator-chunk-interval-ms", "7"},
                                   {"x-emulator-reply", "hi"},
                                   {"x-emulator-status", "429"},
                                   {"x-emulator-retry-after", "9"},
                                   {"x-emulator-fail", "stall-mid"},
                                   {"x-emulator-stall-ms", "11"},
                                   {"content-type", "ignored"}},
                                  &c)
                  .ok());
  EXPECT_EQ(c.first_byte_latency, absl::Milliseconds(5));
  EXPECT_EQ(c.chunks, 3);
  EXPECT_EQ(c.chunk_interval, absl::Milliseconds(7));
  EXPECT_EQ(c.reply, "hi");
  EXPECT_EQ(c.status, 429);
  EXPECT_EQ(c.retry_after_seconds, 9);
  EXPECT_EQ(c.fail, FailMode::kStallMid);
  EXPECT_EQ(c.stall, absl::Milliseconds(11));
}

TEST(ControlHeadersTest, BadValuesNameTheHeader) {
  ReplyControls c;
  absl::Status s = ApplyControlHeaders({{"x-emulator-status", "200"}}, &c);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ControlHeaderOf(s), "x-emulator-status");
  EXPECT_FALSE(ApplyControlHeaders({{"x-emulator-fail", "explode"}}, &c).ok());
  EXPECT_FALSE(ApplyControlHeaders({{"x-emulator-typo", "1"}}, &c).ok());
  EXPECT_FALSE(ApplyControlHeaders({{"x-emulator-latency-ms", "-1"}}, &c).ok());
}

TEST(PlanToolCallsTest, FollowsTheDocumentedRule) {
  std::vector<std::string> tools = {"add", "mul"};
  EXPECT_TRUE(PlanToolCalls("call add", {}, ToolChoice::kAuto, "").empty());
  EXPECT_TRUE(PlanToolCalls("call add", tools, ToolChoice::kNone, "").empty());
  EXPECT_TRUE(PlanToolCalls("please add", tools, ToolChoice::kAuto, "").empty());
  EXPECT_TRUE(PlanToolCalls("call unknown", tools, ToolChoice::kAuto, "").empty());

  auto calls = PlanToolCalls("call add {\"a\": 1}\ncall mul", tools, ToolChoice::kAuto, "");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].name, "add");
  EXPECT_EQ(calls[0].arguments, "{\"a\":1}");
  EXPECT_EQ(calls[1].name, "mul");
  EXPECT_FALSE(calls[1].arguments.has_value());

  calls = PlanToolCalls("hello", tools, ToolChoice::kRequired, "");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "add");
  calls = PlanToolCalls("hello", tools, ToolChoice::kNamed, "mul");
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0].name, "mul");
}

TEST(ArgumentsFromSchemaTest, FillsRequiredPropertiesByType) {
  json schema = json::parse(R"({"type": "object", "properties": {
      "s": {"type": "string"}, "i": {"type": "integer"}, "e": {"enum": ["x", "y"]},
      "b": {"type": "boolean"}, "a": {"type": "array"}, "o": {"type": "object",
      "properties": {"n": {"type": "number"}}, "required": ["n"]}, "skip": {"type": "string"}},
      "required": ["s", "i", "e", "b", "a", "o"]})");
  EXPECT_EQ(json::parse(ArgumentsFromSchema(schema)),
            json::parse(R"({"s": "example", "i": 1, "e": "x", "b": true, "a": [],
                            "o": {"n": 1}})"));
  EXPECT_EQ(ArgumentsFromSchema(json::object()), "{}");
}

// --- the OpenAI dialect against recorded traffic ------------------------------------------

// Every key path of a JSON value: "choices[].delta.content". Arrays merge their elements.
void Paths(const json& v, const std::string& prefix, std::set<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      std::string p = prefix.empty() ? k : prefix + "." + k;
      out->insert(p);
      Paths(child, p, out);
    }
  } else if (v.is_array()) {
    for (const json& child : v) Paths(child, prefix + "[]", out);
  }
}
std::set<std::string> Paths(const json& v) {
  std::set<std::string> out;
  Paths(v, "", &out);
  return out;
}

// The kind of a chat.completion.chunk: role, content, finish, usage, tool.
std::string ChunkKind(const json& c) {
  if (c["choices"].empty()) return "usage";
  const json& choice = c["choices"][0];
  if (!choice["finish_reason"].is_null()) return "finish";
  if (choice["delta"].contains("tool_calls")) return "tool";
  if (choice["delta"].contains("role")) return "role";
  return "content";
}

using protocol_test::FixturesDir;

// The recorded fixture at `relative` under the fixtures root. REQUIRES: FixturesDir().
std::string Fixture(const std::string& relative) {
  return protocol_test::ReadFile(*FixturesDir() / relative);
}

class OpenAiDialectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dialects_ = DefaultDialects();
    dialect_ = dialects_.front().get();
    ASSERT_EQ(dialect_->name(), "openai");
  }

  // Runs one request through the dialect as the server would.
  ResponsePlan Plan(const json& body, const Headers& headers = {}) {
    Request req;
    req.method = "POST";
    req.target = req.path = "/v1/chat/completions";
    req.headers = headers;
    req.body = body.dump();
    EmulatorOptions options;
    options.clock = &clock_;
    return PlanResponse(req, dialects_, options, {}, ++sequence_);
  }

  std::vector<json> StreamChunks(const json& body, const Headers& headers = {}) {
    ResponsePlan plan = Plan(body, headers);
    EXPECT_TRUE(plan.streaming);
    std::vector<json> chunks;
    for (const std::string& part : plan.parts) {
      EXPECT_EQ(part.rfind("data: ", 0), 0u);
      EXPECT_EQ(part.substr(part.size() - 2), "\n\n");
      std::string payload = part.substr(6, part.size() - 8);
      if (payload != "[DONE]") chunks.push_back(json::parse(payload));
    }
    EXPECT_EQ(plan.parts.back(), "data: [DONE]\n\n");
    return chunks;
  }

  FakeClock clock_{absl::FromUnixSeconds(1770933892)};
  uint64_t sequence_ = 0;
  std::vector<std::unique_ptr<ProviderDialect>> dialects_;
  const ProviderDialect* dialect_ = nullptr;
};

json TextRequest(bool stream) {
  json req = {{"model", "gpt-4.1-nano-2025-04-14"},
              {"messages", json::array({{{"role", "user"}, {"content", "Invent a holiday."}}})}};
  if (stream) {
    req["stream"] = true;
    req["stream_options"] = {{"include_usage", true}};
  }
  return req;
}

TEST_F(OpenAiDialectTest, WholeResponseHasTheKeysOfARecordedOne) {
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found (MODEENVOY_FIXTURES_DIR)";
  json recorded = json::parse(
      Fixture("vercel-ai/packages/openai/src/chat/__fixtures__/openai-text.json"));
  ResponsePlan plan = Plan(TextRequest(false));
  ASSERT_EQ(plan.status, 200);
  json ours = json::parse(plan.parts[0]);
  EXPECT_EQ(Paths(ours), Paths(recorded));
  // Same key order too (ordered output), and the same value types.
  std::vector<std::string> our_keys, their_keys;
  for (const auto& [k, v] : ours.items()) our_keys.push_back(k);
  for (const auto& [k, v] : recorded.items()) their_keys.push_back(k);
  EXPECT_EQ(our_keys.size(), their_keys.size());
  for (const char* path : {"created", "usage", "choices"}) {
    EXPECT_EQ(ours[path].type(), recorded[path].type()) << path;
  }
  // Kong's OpenAI responses are older recordings: a subset of today's keys.
  for (const char* kong : {"kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/good.json",
                           "kong/spec/fixtures/ai-proxy/unit/real-responses/openai/llm-v1-chat.json"}) {
    std::set<std::string> theirs = Paths(json::parse(Fixture(kong)));
    std::set<std::string> mine = Paths(ours);
    for (const std::string& p : theirs) EXPECT_TRUE(mine.count(p)) << kong << ": " << p;
  }
}

TEST_F(OpenAiDialectTest, StreamChunksHaveTheKeysOfRecordedOnes) {
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found (MODEENVOY_FIXTURES_DIR)";
  std::string recorded_text = Fixture(
      "vercel-ai/packages/openai/src/chat/__fixtures__/openai-text.chunks.txt");
  std::map<std::string, std::set<std::string>> recorded;
  std::vector<std::string> recorded_order;
  std::istringstream lines(recorded_text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    json c = json::parse(line);
    std::string kind = ChunkKind(c);
    if (recorded_order.empty() || recorded_order.back() != kind) recorded_order.push_back(kind);
    std::set<std::string> p = Paths(c);
    recorded[kind].insert(p.begin(), p.end());
  }
  std::map<std::string, std::set<std::string>> ours;
  std::vector<std::string> our_order;
  for (const json& c : StreamChunks(TextRequest(true))) {
    std::string kind = ChunkKind(c);
    if (our_order.empty() || our_order.back() != kind) our_order.push_back(kind);
    std::set<std::string> p = Paths(c);
    ours[kind].insert(p.begin(), p.end());
  }
  EXPECT_EQ(our_order, (std::vector<std::string>{"role", "content", "finish", "usage"}));
  EXPECT_EQ(our_order, recorded_order);
  EXPECT_EQ(ours, recorded);

  // Kong's OpenAI stream frames (no include_usage): their keys are a subset of ours.
  std::string frame = Fixture(
      "kong/spec/fixtures/ai-proxy/unit/real-stream-frames/openai/llm-v1-chat.txt");
  ASSERT_EQ(frame.rfind("data: ", 0), 0u);
  std::set<std::string> theirs = Paths(json::parse(frame.substr(6)));
  std::set<std::string> content_keys;
  for (const json& c : StreamChunks([] {
         json r = TextRequest(false);
         r["stream"] = true;
         return r;
       }())) {
    if (ChunkKind(c) == "content") content_keys = Paths(c);
  }
  for (const std::string& p : theirs) EXPECT_TRUE(content_keys.count(p)) << p;
}

TEST_F(OpenAiDialectTest, ErrorBodyHasTheKeysOfARecordedOne) {
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found (MODEENVOY_FIXTURES_DIR)";
  json recorded = json::parse(Fixture(
      "vercel-ai/packages/openai/src/chat/__fixtures__/reasoning-model-legacy-parameter-error.json"));
  ResponsePlan plan = Plan(json{{"model", "m"}});
  EXPECT_EQ(plan.status, 400);
  EXPECT_EQ(Paths(json::parse(plan.parts[0])), Paths(recorded));
  json kong = json::parse(Fixture(
      "kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/unauthorized.json"));
  Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.headers = {{"authorization", "Bearer wrong-key"}};
  std::string body = dialect_->RenderError(dialect_->MakeError(ErrorCause::kUnauthorized, 401, req));
  EXPECT_EQ(Paths(json::parse(body)), Paths(kong));
  EXPECT_EQ(json::parse(body)["error"]["code"], kong["error"]["code"]);
}

TEST_F(OpenAiDialectTest, ObfuscationCanBeTurnedOff) {
  json req = TextRequest(true);
  req["stream_options"]["include_obfuscation"] = false;
  for (const json& c : StreamChunks(req)) EXPECT_FALSE(c.contains("obfuscation"));
}

TEST_F(OpenAiDialectTest, NChoicesAreAllAnswered) {
  json req = TextRequest(false);
  req["n"] = 2;
  json whole = json::parse(Plan(req).parts[0]);
  ASSERT_EQ(whole["choices"].size(), 2u);
  EXPECT_EQ(whole["choices"][1]["index"], 1);
  req["stream"] = true;
  std::set<int> finished;
  for (const json& c : StreamChunks(req)) {
    if (!c["choices"].empty() && c["choices"][0]["finish_reason"] == "stop") {
      finished.insert(c["choices"][0]["index"].get<int>());
    }
  }
  EXPECT_EQ(finished, (std::set<int>{0, 1}));
}

TEST_F(OpenAiDialectTest, NonAsciiIsEscapedWholeAndRawInStreams) {
  json req = TextRequest(false);
  req["messages"][0]["content"] = "caf\xC3\xA9";
  std::string whole = Plan(req).parts[0];
  EXPECT_NE(whole.find("caf\\u00e9"), std::string::npos) << whole;
  req["stream"] = true;
  std::string streamed;
  for (const std::string& p : Plan(req).parts) streamed += p;
  EXPECT_NE(streamed.find("caf\xC3\xA9"), std::string::npos);
}

TEST_F(OpenAiDialectTest, StructuredOutputRepliesWithJsonOfTheSchema) {
  json req = TextRequest(false);
  req["response_format"] = json::parse(R"({"type": "json_schema", "json_schema": {"name": "x",
      "schema": {"type": "object", "properties": {"city": {"type": "string"}},
      "required": ["city"]}}})");
  json content = json::parse(json::parse(Plan(req).parts[0])["choices"][0]["message"]["content"]
                                 .get<std::string>());
  EXPECT_EQ(content, json::parse(R"({"city": "example"})"));
}

TEST_F(OpenAiDialectTest, RejectsWhatOpenAiRejects) {
  auto error = [&](const json& body) {
    ResponsePlan plan = Plan(body);
    EXPECT_EQ(plan.status, 400) << body;
    return json::parse(plan.parts[0])["error"];
  };
  EXPECT_EQ(error({{"messages", json::array({{{"role", "user"}, {"content", "x"}}})}})["param"],
            "model");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array()}})["code"], "empty_array");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "robot"}}})}})["param"],
            "messages[0].role");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"stream", "yes"}})["param"],
            "stream");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"stream_options", {{"include_usage", true}}}})["param"],
            "stream_options");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"tool_choice", "required"}})["param"],
            "tool_choice");
}

}  // namespace
}  // namespace modeenvoy::emulator
