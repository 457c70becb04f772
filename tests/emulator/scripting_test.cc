// Sans-I/O parts of the emulator: control headers, text pieces, tool-call rules, and the
// OpenAI dialect's output compared key by key with recorded OpenAI traffic.
#include "examples/emulator/scripting.h"

#include <cstdlib>
#include <filesystem>
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
  TextCounter words;  // no encoding: words
  EXPECT_EQ(CountWords("  one two\nthree  "), 3);
  EXPECT_EQ(CountWords(""), 0);
  EXPECT_EQ(words.name(), "words");
  EXPECT_EQ(words.Count("one two\nthree"), 3);
  EXPECT_EQ(words.Truncate("one two three", 2), "one two");
  EXPECT_EQ(words.Truncate("one two three", 5), "one two three");
  EXPECT_EQ(words.Truncate("one two three", 0), "");
  EXPECT_EQ(words.Truncate("one two three", -1), "one two three");
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
    return Plan(body.dump(), headers);
  }
  ResponsePlan Plan(const std::string& body, const Headers& headers = {}) {
    Request req;
    req.method = "POST";
    req.target = req.path = "/v1/chat/completions";
    req.headers = headers;
    req.body = body;
    EmulatorOptions options;
    options.clock = &clock_;
    NextAttempt next_attempt = [this](std::string_view id) { return attempts_[std::string(id)]++; };
    PlanContext ctx{dialects_, options, counting_, next_attempt, clock_};
    return PlanResponse(req, ctx, {}, ++sequence_);
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
  UsageCounting counting_ = UsageCounting::Words();
  std::map<std::string, uint64_t> attempts_;
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
  json typed = error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                      {"temperature", "hot"}});
  EXPECT_EQ(typed["param"], "temperature");
  EXPECT_EQ(typed["message"], "temperature: expected number, got string");
  // Wrongly typed members the dialect reads itself are 400s too, never an exception.
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"stream", true}, {"stream_options", {{"include_usage", "yes"}}}})["param"],
            "stream_options.include_usage");
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"tools", json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}})},
                   {"tool_choice", {{"type", "function"}, {"function", {{"name", 5}}}}}})["param"],
            "tool_choice.function.name");
  json bad_tool = {{"type", 5}, {"function", {{"name", "f"}}}};
  EXPECT_EQ(error({{"model", "m"}, {"messages", json::array({{{"role", "user"}}})},
                   {"tools", json::array({bad_tool})}})["param"],
            "tools[0].type");
  EXPECT_EQ(Plan(json{{"model", "m"},
                      {"messages", json::array({{{"role", "user"}, {"content", "x"}}})},
                      {"response_format", {{"type", 5}}}})
                .status,
            200);
}

// --- scripts: parsing -------------------------------------------------------------------

TEST(ParseScriptTest, ReadsEveryField) {
  auto script = ParseScript(R"({"reply": "Hi", "reasoning": "Hmm", "reasoning_tokens": 7,
      "cached_tokens": 2, "finish_reason": "length", "latency_ms": 5, "chunk_interval_ms": 6,
      "chunks": 3, "headers": {"X-RateLimit-Remaining-Requests": "0"},
      "tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "call_1"},
                     {"name": "g", "arguments": "{\"b\": [2]}"}, {"name": "h"}],
      "interrupt": {"after_chunks": 4, "error": {"message": "boom", "code": "c"}}})");
  ASSERT_TRUE(script.ok()) << script.status();
  ASSERT_EQ((*script)->steps.size(), 1u);
  const ScriptStep& s = (*script)->steps[0];
  EXPECT_EQ(s.reply, "Hi");
  EXPECT_EQ(s.reasoning, "Hmm");
  EXPECT_EQ(s.reasoning_tokens, 7);
  EXPECT_EQ(s.cached_tokens, 2);
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_EQ(s.latency, absl::Milliseconds(5));
  EXPECT_EQ(s.chunk_interval, absl::Milliseconds(6));
  EXPECT_EQ(s.chunks, 3);
  EXPECT_EQ(s.headers, (Headers{{"x-ratelimit-remaining-requests", "0"}}));
  ASSERT_TRUE(s.tool_calls.has_value());
  ASSERT_EQ(s.tool_calls->size(), 3u);
  EXPECT_EQ((*s.tool_calls)[0].arguments, R"({"a":1})");
  EXPECT_EQ((*s.tool_calls)[0].id, "call_1");
  EXPECT_EQ((*s.tool_calls)[1].arguments, R"({"b":[2]})");
  EXPECT_EQ((*s.tool_calls)[2].arguments, "{}");
  EXPECT_FALSE((*s.tool_calls)[2].id.has_value());
  ASSERT_TRUE(s.interrupt.has_value());
  EXPECT_EQ(s.interrupt->after_chunks, 4);
  EXPECT_FALSE(s.interrupt->reset);
  EXPECT_EQ(s.interrupt->error.status, 500);
  EXPECT_EQ(s.interrupt->error.message, "boom");
  EXPECT_TRUE((*script)->id.empty());
}

TEST(ParseScriptTest, StepsNeedAnIdAndRepeatTheLastStep) {
  auto script = ParseScript(R"({"id": "r1", "steps": [{"error": {"status": 503,
      "retry_after": 0}}, {"reply": "ok"}]})");
  ASSERT_TRUE(script.ok()) << script.status();
  EXPECT_EQ((*script)->id, "r1");
  EXPECT_EQ(StepFor(**script, 0).error->status, 503);
  EXPECT_EQ(StepFor(**script, 0).error->retry_after_seconds, 0);
  EXPECT_EQ(StepFor(**script, 1).reply, "ok");
  EXPECT_EQ(StepFor(**script, 7).reply, "ok");
}

TEST(ParseScriptTest, BadScriptsNameTheField) {
  struct Case {
    const char* script;
    const char* message;
  } cases[] = {
      {R"([1])", "script: expected a JSON object, got [1]"},
      {R"({"reply": 3})", "reply: expected a string, got 3"},
      {R"({"replay": "x"})", "replay: unknown script field"},
      {R"({"reply_tokens": 0})", "reply_tokens: expected an integer in [1, 100000], got 0"},
      {R"({"finish_reason": "done"})",
       "finish_reason: expected one of stop, length, tool_calls, content_filter, "
       "function_call, got \"done\""},
      {R"({"tool_calls": []})", "tool_calls: expected an array of 1 to 128 tool calls, got []"},
      {R"({"tool_calls": [{"arguments": {}}]})", "tool_calls[0].name: required"},
      {R"({"tool_calls": [{"name": "f", "arguments": "[1]"}]})",
       "tool_calls[0].arguments: expected a JSON object or a string holding one, got \"[1]\""},
      {R"({"tool_calls": [{"name": "f", "args": {}}]})",
       "tool_calls[0].args: unknown script field"},
      {R"({"error": {"type": "x"}})", "error.status: required"},
      {R"({"error": {"status": 200}})", "error.status: expected an integer in [400, 599], got 200"},
      {R"({"error": {"status": 500}, "reply": "x"})",
       "error: cannot be combined with reply (an error answers instead of the model)"},
      {R"({"refusal": "no", "tool_calls": [{"name": "f"}]})",
       "refusal: cannot be combined with tool_calls"},
      {R"({"reply": "a", "reply_tokens": 2})", "reply_tokens: cannot be combined with reply"},
      {R"({"interrupt": {"after_chunks": 1}})",
       "interrupt: needs exactly one of \"reset\": true or \"error\""},
      {R"({"interrupt": {"after_chunks": 1, "reset": false}})",
       "interrupt.reset: expected true, got false"},
      {R"({"interrupt": {"reset": true}})", "interrupt.after_chunks: required"},
      {R"({"headers": {"content-length": "1"}})",
       "headers.content-length: set by the emulator itself; a script cannot"},
      {R"({"headers": {"bad name": "1"}})", "headers.bad name: not a valid header name"},
      {R"({"headers": {"x-a": "1\r\nx-b: 2"}})",
       "headers.x-a: header values cannot hold CR, LF or NUL"},
      {R"({"latency_ms": -1})", "latency_ms: expected an integer in [0, 86400000], got -1"},
      {R"({"steps": [{"reply": "x"}]})", "id: required with steps (it keys the attempt counter)"},
      {R"({"id": "a", "steps": [{"reply": "x"}], "reply": "y"})",
       "reply: belongs inside steps[] when steps is given"},
      {R"({"id": "a", "steps": [{"reply": "x"}, {"chunks": "many"}]})",
       "steps[1].chunks: expected an integer in [0, 100000], got \"many\""},
      {R"({"id": "a", "steps": []})", "steps: expected an array of 1 to 1000 steps, got []"},
  };
  for (const Case& c : cases) {
    auto script = ParseScript(c.script);
    ASSERT_FALSE(script.ok()) << c.script;
    EXPECT_EQ(script.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(script.status().message(), c.message) << c.script;
  }
  EXPECT_EQ(ParseScript("{oops").status().message(), "script: not valid JSON");
}

TEST(ParseScriptTest, TheHeaderFormNamesTheHeaderAndTheField) {
  ReplyControls c;
  absl::Status s = ApplyControlHeaders({{"x-emulator-script", R"({"chunks": -2})"}}, &c);
  EXPECT_EQ(s.message(),
            "x-emulator-script: chunks: expected an integer in [0, 100000], got -2");
  EXPECT_EQ(ControlHeaderOf(s), "x-emulator-script");
  ASSERT_TRUE(ApplyControlHeaders({{"x-emulator-script", R"({"reply": "x"})"}}, &c).ok());
  ASSERT_NE(c.script, nullptr);
  EXPECT_EQ(c.script->steps[0].reply, "x");
}

TEST(TakeDirectiveTest, RemovesTheLineAndReturnsItsJson) {
  std::string text = "Say hi\n  @emulator {\"reply\": \"Hi!\"}\nthanks";
  auto directive = TakeDirective(&text);
  ASSERT_TRUE(directive.ok());
  EXPECT_EQ(*directive, "{\"reply\": \"Hi!\"}");
  EXPECT_EQ(text, "Say hi\nthanks");

  std::string plain = "mail me @emulator.example\n@emulatorish {}";
  directive = TakeDirective(&plain);
  ASSERT_TRUE(directive.ok());
  EXPECT_FALSE(directive->has_value());
  EXPECT_EQ(plain, "mail me @emulator.example\n@emulatorish {}");

  std::string two = "@emulator {}\n@emulator {}";
  EXPECT_EQ(TakeDirective(&two).status().message(), "more than one @emulator directive line");
}

// --- token counting with the tokenizer ---------------------------------------------------

// The tokenizer counter, or null when the rank files are not installed.
std::unique_ptr<UsageCounting> Tokenizer() {
  auto counting = UsageCounting::Resolve(UsageCountingMode::kTokenizer, {});
  if (!counting.ok()) return nullptr;
  return std::make_unique<UsageCounting>(*counting);
}
#define REQUIRE_TOKENIZER()                                                         \
  if (Tokenizer() == nullptr)                                                       \
  GTEST_SKIP() << "tokenizer rank files not found (MODEENVOY_TOKENIZER_DIR); ctest " \
                  "sets it"

TEST(UsageCountingTest, PicksTheEncodingByModelAndO200kForUnknownModels) {
  REQUIRE_TOKENIZER();
  auto counting = Tokenizer();
  EXPECT_EQ(counting->ForModel("gpt-4o-mini")->name(), "o200k_base");
  EXPECT_EQ(counting->ForModel("gpt-4")->name(), "cl100k_base");
  EXPECT_EQ(counting->ForModel("demo")->name(), "o200k_base");
  EXPECT_EQ(counting->ForModel("")->name(), "o200k_base");
  EXPECT_EQ(UsageCounting::Words().ForModel("gpt-4")->name(), "words");
}

TEST(UsageCountingTest, ResolveFallsBackToWordsOnlyInAutoMode) {
  EncodingOptions nowhere;
  nowhere.tokenizer_dir = "/nonexistent/emulator-test";
  nowhere.tiktoken_cache_dir = "/nonexistent/emulator-test";
  auto automatic = UsageCounting::Resolve(UsageCountingMode::kAuto, nowhere);
  ASSERT_TRUE(automatic.ok());
  EXPECT_TRUE(automatic->words());
  EXPECT_EQ(UsageCounting::Resolve(UsageCountingMode::kTokenizer, nowhere).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(TextCounterTest, TruncatesAtATokenBoundary) {
  REQUIRE_TOKENIZER();
  TextCounter o200k = *Tokenizer()->ForModel("gpt-4o");
  // tiktoken o200k_base: "international" "ization" " is" " hard".
  EXPECT_EQ(o200k.Count("internationalization is hard"), 4);
  EXPECT_EQ(o200k.Truncate("internationalization is hard", 1), "international");
  EXPECT_EQ(o200k.Truncate("internationalization is hard", 3), "internationalization is");
  EXPECT_EQ(o200k.Truncate("internationalization is hard", 0), "");
}

TEST(LongTextTest, HasExactlyTheAskedTokens) {
  REQUIRE_TOKENIZER();
  for (const char* model : {"gpt-4o", "gpt-4"}) {
    TextCounter counter = *Tokenizer()->ForModel(model);
    for (int64_t n : {1, 2, 17, 1000}) EXPECT_EQ(counter.Count(LongText(n, counter)), n) << model;
  }
  EXPECT_EQ(CountWords(LongText(50, TextCounter{})), 50);
  EXPECT_EQ(LongText(30, TextCounter{}), LongText(30, TextCounter{}));  // deterministic
}

class OpenAiTokenUsageTest : public OpenAiDialectTest {
 protected:
  void SetUp() override {
    OpenAiDialectTest::SetUp();
    if (Tokenizer() == nullptr) GTEST_SKIP() << "tokenizer rank files not found";
    counting_ = *Tokenizer();
  }
  json Usage(const json& body) {
    ResponsePlan plan = Plan(body);
    EXPECT_EQ(plan.status, 200) << plan.parts[0];
    return json::parse(plan.parts[0])["usage"];
  }
};

json Messages(const std::string& model, std::vector<std::pair<std::string, std::string>> m) {
  json messages = json::array();
  for (auto& [role, content] : m) messages.push_back({{"role", role}, {"content", content}});
  return {{"model", model}, {"messages", messages}};
}

// Expected values below were computed with tiktoken 0.14 and OpenAI's cookbook rules
// (3 per message + role + content, 1 more per name, 3 for the reply priming).
TEST_F(OpenAiTokenUsageTest, PromptTokensIncludeTheChatOverhead) {
  json a = Usage(Messages("gpt-4o-mini", {{"system", "Be brief."}, {"user", "What is 1 + 1?"}}));
  EXPECT_EQ(a["prompt_tokens"], 22);
  EXPECT_EQ(a["completion_tokens"], 8);  // the echo "What is 1 + 1?"
  EXPECT_EQ(a["total_tokens"], 30);
  json named = Messages("gpt-4o-mini", {{"user", "Hello there"}});
  named["messages"][0]["name"] = "alice";
  EXPECT_EQ(Usage(named)["prompt_tokens"], 11);
}

TEST_F(OpenAiTokenUsageTest, TheEncodingFollowsTheModel) {
  const std::string russian = "Привет, как дела?";  // o200k: 6 tokens, cl100k: 8
  json o = Usage(Messages("gpt-4o-mini", {{"user", russian}}));
  EXPECT_EQ(o["prompt_tokens"], 13);
  EXPECT_EQ(o["completion_tokens"], 6);
  json c = Usage(Messages("gpt-4", {{"user", russian}}));
  EXPECT_EQ(c["prompt_tokens"], 15);
  EXPECT_EQ(c["completion_tokens"], 8);
  json demo = Usage(Messages("demo", {{"user", russian}}));
  EXPECT_EQ(demo["prompt_tokens"], 13);
  EXPECT_EQ(demo["completion_tokens"], 6);
}

TEST_F(OpenAiTokenUsageTest, MaxTokensCutsAtTheTokenLimit) {
  json req = Messages("gpt-4o-mini", {{"user", "x"}});
  req["max_completion_tokens"] = 3;
  ResponsePlan plan = Plan(req, {{"x-emulator-reply", "internationalization is hard"}});
  json j = json::parse(plan.parts[0]);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "internationalization is");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);
}

TEST_F(OpenAiTokenUsageTest, TheDirectiveIsCountedAsSentAndLeftOutOfTheEcho) {
  ResponsePlan plan = Plan(Messages("gpt-4o-mini",
                                    {{"user", "Say hi\n@emulator {\"reply\": \"Hi!\"}"}}));
  json j = json::parse(plan.parts[0]);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi!");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 20);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  plan = Plan(Messages("gpt-4o-mini", {{"user", "Say hi\n@emulator {\"chunks\": 1}"}}));
  EXPECT_EQ(json::parse(plan.parts[0])["choices"][0]["message"]["content"], "Say hi");
}

TEST_F(OpenAiTokenUsageTest, ReasoningRefusalAndToolCallsAreCounted) {
  json req = Messages("gpt-4o-mini", {{"user", "x"}});
  // "Let me think about it." is 6 tokens, "Two." 2.
  json j = json::parse(Plan(req, {{"x-emulator-script",
                                   R"({"reasoning": "Let me think about it.", "reply": "Two."})"}})
                           .parts[0]);
  EXPECT_EQ(j["usage"]["completion_tokens"], 8);
  EXPECT_EQ(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 6);
  // "I can't help with that." is 6 tokens.
  j = json::parse(Plan(req, {{"x-emulator-script", R"({"refusal": "I can't help with that."})"}})
                      .parts[0]);
  EXPECT_EQ(j["usage"]["completion_tokens"], 6);
  // "get_weather" 2 tokens, {"city":"Paris"} 5, {"city":"Oslo"} 6.
  j = json::parse(Plan(req, {{"x-emulator-script", R"({"tool_calls": [
      {"name": "get_weather", "arguments": {"city": "Paris"}},
      {"name": "get_weather", "arguments": {"city": "Oslo"}}]})"}})
                      .parts[0]);
  EXPECT_EQ(j["usage"]["completion_tokens"], 2 + 5 + 2 + 6);
}

TEST_F(OpenAiDialectTest, AModelWhoseRankFileIsMissingGetsA500NamingIt) {
  const char* dir = std::getenv("MODEENVOY_TOKENIZER_DIR");
  if (dir == nullptr ||
      !std::filesystem::exists(std::filesystem::path(dir) / "o200k_base.tiktoken")) {
    GTEST_SKIP() << "tokenizer rank files not found (MODEENVOY_TOKENIZER_DIR); ctest sets it";
  }
  // A directory with o200k_base only: gpt-4 needs cl100k_base.
  std::filesystem::path only = std::filesystem::path(::testing::TempDir()) / "emu-o200k-only";
  std::filesystem::create_directories(only);
  std::filesystem::remove(only / "o200k_base.tiktoken");
  std::filesystem::create_symlink(std::filesystem::path(dir) / "o200k_base.tiktoken",
                                  only / "o200k_base.tiktoken");
  EncodingOptions options;
  options.tokenizer_dir = only.string();
  options.tiktoken_cache_dir = (only / "no-cache").string();
  counting_ = UsageCounting::Tokenizer(options);
  EXPECT_EQ(Plan(json{{"model", "gpt-4o"},
                      {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}})
                .status,
            200);
  ResponsePlan plan = Plan(json{{"model", "gpt-4"},
                                {"messages", json::array({{{"role", "user"}, {"content", "x"}}})}});
  EXPECT_EQ(plan.status, 500);
  std::string message = json::parse(plan.parts[0])["error"]["message"];
  EXPECT_NE(message.find("emulator: cannot count tokens for model 'gpt-4'"), std::string::npos)
      << message;
  EXPECT_NE(message.find("cl100k_base"), std::string::npos) << message;
}

// --- scripts through the OpenAI dialect ---------------------------------------------------

json OneUser(const std::string& text, bool stream = false) {
  json req = {{"model", "gpt-4o-mini"},
              {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
  if (stream) req["stream"] = true;
  return req;
}

Headers ScriptHeader(const std::string& script) { return {{"x-emulator-script", script}}; }

TEST_F(OpenAiDialectTest, ScriptedReplyChunksAndFinishReason) {
  ResponsePlan whole = Plan(OneUser("ignored"), ScriptHeader(
      R"({"reply": "alpha beta gamma", "finish_reason": "content_filter"})"));
  json j = json::parse(whole.parts[0]);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "alpha beta gamma");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "content_filter");
  std::vector<json> chunks =
      StreamChunks(OneUser("ignored", true), ScriptHeader(R"({"reply": "abcdef", "chunks": 2})"));
  ASSERT_EQ(chunks.size(), 4u);  // role, 2 pieces, finish
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json::parse(R"({"content": "abc"})"));
  EXPECT_EQ(chunks[2]["choices"][0]["delta"], json::parse(R"({"content": "def"})"));
  chunks = StreamChunks(OneUser("x", true), ScriptHeader(R"({"finish_reason": "length"})"));
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "length");
}

TEST_F(OpenAiDialectTest, ScriptedParallelToolCallsWholeAndStreamed) {
  const std::string script = R"({"tool_calls": [
      {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_fixed"},
      {"name": "get_time", "arguments": "{\"tz\": \"CET\"}"}]})";
  json j = json::parse(Plan(OneUser("x"), ScriptHeader(script)).parts[0]);
  const json& message = j["choices"][0]["message"];
  EXPECT_TRUE(message["content"].is_null());
  ASSERT_EQ(message["tool_calls"].size(), 2u);
  EXPECT_EQ(message["tool_calls"][0]["id"], "call_fixed");
  EXPECT_EQ(message["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(message["tool_calls"][1]["function"]["name"], "get_time");
  EXPECT_EQ(message["tool_calls"][1]["function"]["arguments"], R"({"tz":"CET"})");
  EXPECT_EQ(message["tool_calls"][1]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");

  std::vector<json> chunks = StreamChunks(OneUser("x", true), ScriptHeader(script));
  std::map<int, std::string> args, names;
  for (size_t i = 0; i + 1 < chunks.size(); ++i) {
    const json& delta = chunks[i]["choices"][0]["delta"];
    ASSERT_TRUE(delta.contains("tool_calls")) << delta;
    EXPECT_EQ(delta.contains("role"), i == 0);
    for (const json& call : delta["tool_calls"]) {
      int index = call["index"];
      if (call.contains("id")) names[index] = call["function"]["name"];
      args[index] += call["function"]["arguments"].get<std::string>();
    }
  }
  EXPECT_EQ(names, (std::map<int, std::string>{{0, "get_weather"}, {1, "get_time"}}));
  EXPECT_EQ(args[0], R"({"city":"Paris"})");
  EXPECT_EQ(args[1], R"({"tz":"CET"})");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(OpenAiDialectTest, ScriptedTextBeforeToolCalls) {
  std::vector<json> chunks = StreamChunks(
      OneUser("x", true),
      ScriptHeader(R"({"reply": "Checking.", "tool_calls": [{"name": "f"}]})"));
  ASSERT_GE(chunks.size(), 4u);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"],
            json::parse(R"({"role":"assistant","content":"","refusal":null})"));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"], json::parse(R"({"content":"Checking."})"));
  EXPECT_EQ(chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "f");
  json whole = json::parse(Plan(OneUser("x"), ScriptHeader(
      R"({"reply": "Checking.", "tool_calls": [{"name": "f"}]})")).parts[0]);
  EXPECT_EQ(whole["choices"][0]["message"]["content"], "Checking.");
  EXPECT_EQ(whole["choices"][0]["message"]["tool_calls"].size(), 1u);
}

TEST_F(OpenAiDialectTest, ScriptedRefusalWholeAndStreamed) {
  const Headers script = ScriptHeader(R"({"refusal": "I can't help with that."})");
  json message = json::parse(Plan(OneUser("x"), script).parts[0])["choices"][0]["message"];
  EXPECT_TRUE(message["content"].is_null());
  EXPECT_EQ(message["refusal"], "I can't help with that.");
  std::vector<json> chunks = StreamChunks(OneUser("x", true), script);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"],
            json::parse(R"({"role":"assistant","content":null,"refusal":""})"));
  std::string refusal;
  for (size_t i = 1; i + 1 < chunks.size(); ++i) {
    const json& delta = chunks[i]["choices"][0]["delta"];
    EXPECT_EQ(delta.size(), 1u) << delta;
    refusal += delta["refusal"].get<std::string>();
  }
  EXPECT_EQ(refusal, "I can't help with that.");
  EXPECT_EQ(chunks.back()["choices"][0]["finish_reason"], "stop");
}

TEST_F(OpenAiDialectTest, ScriptedReasoningAsDeepSeekStreamsIt) {
  const Headers script = ScriptHeader(R"({"reasoning": "one two three", "reply": "Done."})");
  json j = json::parse(Plan(OneUser("x"), script).parts[0]);
  EXPECT_EQ(j["choices"][0]["message"]["reasoning_content"], "one two three");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Done.");
  EXPECT_EQ(j["usage"]["completion_tokens"], 4);  // words: 3 reasoning + 1
  EXPECT_EQ(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);
  json req = OneUser("x", true);
  req["stream_options"] = {{"include_usage", true}};
  std::vector<json> chunks = StreamChunks(req, script);
  EXPECT_EQ(chunks[0]["choices"][0]["delta"],
            json::parse(R"({"role":"assistant","content":null,"reasoning_content":""})"));
  EXPECT_EQ(chunks[1]["choices"][0]["delta"],
            json::parse(R"({"content":null,"reasoning_content":"one"})"));
  EXPECT_EQ(chunks[4]["choices"][0]["delta"],
            json::parse(R"({"content":"Done.","reasoning_content":null})"));
  EXPECT_EQ(chunks.back()["usage"]["completion_tokens_details"]["reasoning_tokens"], 3);

  // Hidden reasoning (OpenAI o-series): only the count.
  j = json::parse(Plan(OneUser("x"), ScriptHeader(R"({"reasoning_tokens": 120,
      "reply": "a b"})")).parts[0]);
  EXPECT_FALSE(j["choices"][0]["message"].contains("reasoning_content"));
  EXPECT_EQ(j["usage"]["completion_tokens"], 122);
  EXPECT_EQ(j["usage"]["completion_tokens_details"]["reasoning_tokens"], 120);
}

// The shape of a delta: its keys, with "=null" for null values ("content=null,role,").
std::string DeltaShape(const json& delta) {
  std::string keys;
  for (const auto& [k, v] : delta.items()) keys += k + (v.is_null() ? "=null," : ",");
  return keys;
}

TEST_F(OpenAiDialectTest, ReasoningStreamHasTheDeltaShapesOfRecordedDeepSeek) {
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found (MODEENVOY_FIXTURES_DIR)";
  std::istringstream lines(Fixture(
      "vercel-ai/packages/deepseek/src/chat/__fixtures__/deepseek-reasoning.chunks.txt"));
  std::set<std::string> recorded;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    json c = json::parse(line);
    if (!c["choices"].empty() && c["choices"][0]["finish_reason"].is_null()) {
      recorded.insert(DeltaShape(c["choices"][0]["delta"]));
    }
  }
  std::set<std::string> ours;
  for (const json& c : StreamChunks(OneUser("x", true),
                                    ScriptHeader(R"({"reasoning": "a b", "reply": "c d"})"))) {
    if (c["choices"][0]["finish_reason"].is_null()) {
      ours.insert(DeltaShape(c["choices"][0]["delta"]));
    }
  }
  EXPECT_EQ(ours, recorded);
}

TEST_F(OpenAiDialectTest, ScriptedLongOutput) {
  json j = json::parse(Plan(OneUser("x"), ScriptHeader(R"({"reply_tokens": 500})")).parts[0]);
  EXPECT_EQ(CountWords(j["choices"][0]["message"]["content"].get<std::string>()), 500);
  EXPECT_EQ(j["usage"]["completion_tokens"], 500);
  json capped = OneUser("x");
  capped["max_tokens"] = 100;
  j = json::parse(Plan(capped, ScriptHeader(R"({"reply_tokens": 500})")).parts[0]);
  EXPECT_EQ(j["usage"]["completion_tokens"], 100);
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
}

TEST_F(OpenAiDialectTest, ScriptedErrorWithRateLimitHeaders) {
  ResponsePlan plan = Plan(OneUser("x"), ScriptHeader(R"({"error": {"status": 429,
      "retry_after": 3, "code": "rate_limit_exceeded"}, "headers": {
      "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "3s"}})"));
  EXPECT_EQ(plan.status, 429);
  json e = json::parse(plan.parts[0])["error"];
  EXPECT_EQ(e["type"], "requests");
  EXPECT_EQ(e["code"], "rate_limit_exceeded");
  EXPECT_NE(e["message"].get<std::string>().find("Rate limit reached for gpt-4o-mini"),
            std::string::npos);
  auto has = [&](const std::string& name, const std::string& value) {
    for (const auto& h : plan.headers) {
      if (h.first == name && h.second == value) return true;
    }
    return false;
  };
  EXPECT_TRUE(has("retry-after", "3"));
  EXPECT_TRUE(has("x-ratelimit-remaining-requests", "0"));
  EXPECT_TRUE(has("x-ratelimit-reset-requests", "3s"));

  // A streamed request gets the error as a whole JSON body, before any event.
  plan = Plan(OneUser("x", true), ScriptHeader(R"({"error": {"status": 503}})"));
  EXPECT_EQ(plan.status, 503);
  EXPECT_FALSE(plan.streaming);
  EXPECT_EQ(json::parse(plan.parts[0])["error"]["message"],
            "The engine is currently overloaded, please try again later");

  plan = Plan(OneUser("x"), ScriptHeader(R"({"error": {"status": 400, "type": "t",
      "message": "m", "code": "c", "param": "messages"}})"));
  EXPECT_EQ(json::parse(plan.parts[0]),
            json::parse(R"({"error": {"message": "m", "type": "t", "param": "messages",
                                      "code": "c"}})"));
}

TEST_F(OpenAiDialectTest, InterruptWithAnErrorEventAfterNChunks) {
  ResponsePlan plan = Plan(OneUser("a b c d e", true), ScriptHeader(R"({"interrupt": {
      "after_chunks": 3, "error": {"message": "upstream died", "type": "server_error"}}})"));
  EXPECT_EQ(plan.status, 200);
  ASSERT_EQ(plan.parts.size(), 4u);  // 3 chunks, the error event, no [DONE]
  EXPECT_EQ(json::parse(plan.parts[2].substr(6))["choices"][0]["delta"]["content"], " b");
  EXPECT_EQ(json::parse(plan.parts[3].substr(6)),
            json::parse(R"({"error": {"message": "upstream died", "type": "server_error",
                                      "param": null, "code": null}})"));
  EXPECT_EQ(plan.fail, FailMode::kNone);
  // Not streamed: the error is the answer, HTTP 500 unless the script says otherwise.
  plan = Plan(OneUser("a b"), ScriptHeader(R"({"interrupt": {"after_chunks": 3,
      "error": {"status": 502}}})"));
  EXPECT_EQ(plan.status, 502);
}

TEST_F(OpenAiDialectTest, InterruptWithAResetAfterNChunks) {
  ResponsePlan plan = Plan(OneUser("a b c d e", true),
                           ScriptHeader(R"({"interrupt": {"after_chunks": 2, "reset": true}})"));
  ASSERT_EQ(plan.parts.size(), 2u);
  EXPECT_EQ(plan.fail, FailMode::kResetMid);
  EXPECT_EQ(plan.fail_at, 2u);
}

TEST_F(OpenAiDialectTest, InterruptWithAResetCutsAWholeBodyInHalf) {
  ResponsePlan plan =
      Plan(OneUser("a b"), ScriptHeader(R"({"interrupt": {"after_chunks": 0, "reset": true}})"));
  EXPECT_EQ(plan.status, 200);
  EXPECT_EQ(plan.fail, FailMode::kResetMid);
  EXPECT_FALSE(plan.fail_at.has_value());  // half the body
}

TEST_F(OpenAiDialectTest, ScriptTimingOverridesTheControls) {
  ResponsePlan plan =
      Plan(OneUser("x", true), {{"x-emulator-latency-ms", "5"},
                                {"x-emulator-script", R"({"latency_ms": 70,
                                    "chunk_interval_ms": 9})"}});
  EXPECT_EQ(plan.first_byte_latency, absl::Milliseconds(70));
  EXPECT_EQ(plan.part_interval, absl::Milliseconds(9));
  plan = Plan(OneUser("x"), ScriptHeader(R"({"error": {"status": 500}, "latency_ms": 40})"));
  EXPECT_EQ(plan.first_byte_latency, absl::Milliseconds(40));
}

TEST_F(OpenAiDialectTest, SequencesAdvancePerScriptId) {
  const std::string script = R"({"id": "retry", "steps": [{"error": {"status": 503}},
      {"reply": "second"}]})";
  EXPECT_EQ(Plan(OneUser("x"), ScriptHeader(script)).status, 503);
  EXPECT_EQ(Plan(OneUser("x"), ScriptHeader(R"({"id": "other", "steps": [{"reply": "o"}]})"))
                .status,
            200);
  ResponsePlan second = Plan(OneUser("x"), ScriptHeader(script));
  EXPECT_EQ(json::parse(second.parts[0])["choices"][0]["message"]["content"], "second");
  EXPECT_EQ(json::parse(Plan(OneUser("x"), ScriptHeader(script)).parts[0])["choices"][0]
                ["message"]["content"],
            "second");
}

TEST_F(OpenAiDialectTest, DirectiveScriptsTheReplyAndLeavesTheEcho) {
  std::vector<json> chunks = StreamChunks(OneUser(
      "please\n@emulator {\"tool_calls\": [{\"name\": \"lookup\", \"arguments\": {\"q\": 1}}]}",
      true));
  EXPECT_EQ(chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "lookup");
  // Only the last message, and only a user's, is read for a directive.
  json req = OneUser("@emulator {\"reply\": \"scripted\"}");
  req["messages"].push_back({{"role", "assistant"}, {"content", "earlier"}});
  req["messages"].push_back({{"role", "user"}, {"content", "now"}});
  EXPECT_EQ(json::parse(Plan(req).parts[0])["choices"][0]["message"]["content"], "now");
}

TEST_F(OpenAiDialectTest, BadScriptsAre400sNamingTheField) {
  ResponsePlan plan = Plan(OneUser("x"), ScriptHeader(R"({"tool_calls": [{"name": 1}]})"));
  EXPECT_EQ(plan.status, 400);
  json e = json::parse(plan.parts[0])["error"];
  EXPECT_EQ(e["message"], "x-emulator-script: tool_calls[0].name: expected a string, got 1");
  EXPECT_EQ(e["param"], "x-emulator-script");
  EXPECT_EQ(e["type"], "invalid_request_error");

  json req = OneUser("hi");
  req["messages"].push_back({{"role", "user"}, {"content", "@emulator {\"chunks\": \"x\"}"}});
  plan = Plan(req);
  EXPECT_EQ(plan.status, 400);
  e = json::parse(plan.parts[0])["error"];
  EXPECT_EQ(e["message"], "messages[1].content: @emulator directive: chunks: expected an "
                          "integer in [0, 100000], got \"x\"");
  EXPECT_EQ(e["param"], "messages[1].content");

  plan = Plan(OneUser("@emulator {\"reply\": \"a\"}"), ScriptHeader(R"({"reply": "b"})"));
  EXPECT_EQ(plan.status, 400);
  EXPECT_EQ(json::parse(plan.parts[0])["error"]["param"], "x-emulator-script");

  plan = Plan(OneUser("x"), ScriptHeader(R"({"cached_tokens": 50})"));
  EXPECT_EQ(plan.status, 400);
  EXPECT_EQ(json::parse(plan.parts[0])["error"]["message"],
            "x-emulator-script: cached_tokens: 50 exceeds the request's 1 prompt tokens");
}

TEST_F(OpenAiDialectTest, CachedTokensAreReportedInTheDetails) {
  json j = json::parse(
      Plan(OneUser("one two three"), ScriptHeader(R"({"cached_tokens": 2})")).parts[0]);
  EXPECT_EQ(j["usage"]["prompt_tokens"], 3);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
}

}  // namespace
}  // namespace modeenvoy::emulator
