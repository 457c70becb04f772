// The emulator's Anthropic Messages dialect, sans I/O (PlanResponse): its bodies and events
// compared key by key with recorded Anthropic traffic, its validation, usage and scripts.
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"
#include "gtest/gtest.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using protocol_test::FixturesDir;

constexpr char kFixtures[] = "vercel-ai/packages/anthropic/src/__fixtures__/";

void KeyPaths(const json& v, const std::string& prefix, std::set<std::string>* out) {
  if (v.is_object()) {
    for (const auto& [k, child] : v.items()) {
      std::string p = prefix.empty() ? k : prefix + "." + k;
      out->insert(p);
      KeyPaths(child, p, out);
    }
  } else if (v.is_array()) {
    for (const json& child : v) KeyPaths(child, prefix + "[]", out);
  }
}
std::set<std::string> KeyPaths(const json& v) {
  std::set<std::string> out;
  KeyPaths(v, "", &out);
  return out;
}

struct Sse {
  std::string event;
  json data;
};

class AnthropicEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { dialects_ = DefaultDialects(); }

  ResponsePlan Plan(const json& body, Headers headers = {{"anthropic-version", "2023-06-01"}},
                    EmulatorOptions options = {}) {
    Request req;
    req.method = "POST";
    req.target = req.path = "/v1/messages";
    req.headers = std::move(headers);
    req.body = body.dump();
    options.clock = &clock_;
    NextAttempt next = [this](std::string_view id) { return attempts_[std::string(id)]++; };
    PlanContext ctx{dialects_, options, counting_, next, clock_};
    return PlanResponse(req, ctx, {}, ++sequence_);
  }

  std::vector<Sse> Events(const ResponsePlan& plan) {
    std::vector<Sse> out;
    for (const std::string& part : plan.parts) {
      EXPECT_EQ(part.rfind("event: ", 0), 0u) << part;
      size_t nl = part.find('\n');
      EXPECT_EQ(part.compare(nl + 1, 6, "data: "), 0) << part;
      EXPECT_EQ(part.substr(part.size() - 2), "\n\n");
      Sse e{part.substr(7, nl - 7), json::parse(part.substr(nl + 7, part.size() - nl - 9))};
      EXPECT_EQ(e.event, e.data["type"]);
      out.push_back(std::move(e));
    }
    return out;
  }

  FakeClock clock_{absl::FromUnixSeconds(1770933892)};
  UsageCounting counting_ = UsageCounting::Words();
  std::map<std::string, uint64_t> attempts_;
  uint64_t sequence_ = 0;
  std::vector<std::unique_ptr<ProviderDialect>> dialects_;
};

json Request(std::string text, bool stream = false) {
  json r = {{"model", "claude-sonnet-4-5"},
            {"max_tokens", 1024},
            {"system", "Be brief."},
            {"messages", json::array({{{"role", "user"}, {"content", std::move(text)}}})}};
  if (stream) r["stream"] = true;
  return r;
}

json WeatherTool() {
  return json::parse(R"({"name":"get_weather","description":"Weather",
      "input_schema":{"type":"object","properties":{"city":{"type":"string"}},
      "required":["city"]}})");
}

TEST_F(AnthropicEmulatorTest, WholeResponseHasTheKeysOfARecordedOne) {
  ResponsePlan plan = Plan(Request("Hello there friend"));
  ASSERT_EQ(plan.status, 200);
  json ours = json::parse(plan.parts[0]);
  EXPECT_EQ(ours["type"], "message");
  EXPECT_EQ(ours["content"], json::parse(R"([{"type":"text","text":"Hello there friend"}])"));
  EXPECT_EQ(ours["stop_reason"], "end_turn");
  // Words: "Be brief." + the prompt = 5 in, 3 out.
  EXPECT_EQ(ours["usage"]["input_tokens"], 5);
  EXPECT_EQ(ours["usage"]["output_tokens"], 3);
  EXPECT_EQ(ours["id"].get<std::string>().rfind("msg_01", 0), 0u);
  EXPECT_EQ(ours["id"].get<std::string>().size(), 28u);
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found";
  json recorded =
      json::parse(protocol_test::ReadFile(*FixturesDir() / kFixtures / "anthropic-text.json"));
  std::set<std::string> theirs = KeyPaths(recorded);
  theirs.erase("usage.inference_geo");  // newer than the SDKs the tests run
  EXPECT_EQ(KeyPaths(ours), theirs);
}

TEST_F(AnthropicEmulatorTest, StreamHasTheEventsOfARecordedOne) {
  std::vector<Sse> ours = Events(Plan(Request("Hello there friend", true)));
  std::vector<std::string> kinds;
  std::string text;
  for (const Sse& e : ours) {
    if (kinds.empty() || kinds.back() != e.event) kinds.push_back(e.event);
    if (e.event == "content_block_delta") text += e.data["delta"]["text"].get<std::string>();
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"message_start", "content_block_start", "ping",
                                             "content_block_delta", "content_block_stop",
                                             "message_delta", "message_stop"}));
  EXPECT_EQ(text, "Hello there friend");
  EXPECT_EQ(ours.back().data, json::parse(R"({"type":"message_stop"})"));
  const json& delta = ours[ours.size() - 2].data;
  EXPECT_EQ(delta["delta"]["stop_reason"], "end_turn");
  EXPECT_EQ(delta["usage"]["output_tokens"], 3);
  EXPECT_EQ(delta["usage"]["input_tokens"], 5);
  if (!FixturesDir()) GTEST_SKIP() << "provider fixtures not found";
  std::map<std::string, std::set<std::string>> theirs, mine;
  std::vector<std::string> lines = protocol_test::ChunkLines(
      protocol_test::ReadFile(*FixturesDir() / kFixtures / "anthropic-text.chunks.txt"));
  for (const std::string& line : lines) {
    json e = json::parse(line);
    std::set<std::string> p = KeyPaths(e);
    theirs[e["type"]].insert(p.begin(), p.end());
  }
  for (const Sse& e : ours) {
    std::set<std::string> p = KeyPaths(e.data);
    mine[e.event].insert(p.begin(), p.end());
  }
  theirs["message_start"].erase("message.usage.inference_geo");
  EXPECT_EQ(mine, theirs);
}

TEST_F(AnthropicEmulatorTest, ToolCallsStreamAsToolUseBlocks) {
  json req = Request("call get_weather {\"city\": \"Paris\"}", true);
  req["tools"] = json::array({WeatherTool()});
  std::vector<Sse> events = Events(Plan(req));
  std::string args;
  std::string id;
  for (const Sse& e : events) {
    if (e.event == "content_block_start" && e.data["content_block"]["type"] == "tool_use") {
      id = e.data["content_block"]["id"];
      EXPECT_EQ(e.data["content_block"]["name"], "get_weather");
      EXPECT_EQ(e.data["content_block"]["input"], json::object());
    }
    if (e.event == "content_block_delta" && e.data["delta"]["type"] == "input_json_delta") {
      args += e.data["delta"]["partial_json"].get<std::string>();
    }
  }
  EXPECT_EQ(id.rfind("toolu_01", 0), 0u);
  EXPECT_EQ(json::parse(args), json::parse(R"({"city":"Paris"})"));
  EXPECT_EQ(events[events.size() - 2].data["delta"]["stop_reason"], "tool_use");

  // The next turn must answer the call; the answer is echoed.
  json next = Request("x");
  next["tools"] = json::array({WeatherTool()});
  next["messages"] = json::parse(R"([{"role":"user","content":"weather?"},
      {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"get_weather",
        "input":{"city":"Paris"}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"}]}])");
  ResponsePlan plan = Plan(next);
  ASSERT_EQ(plan.status, 200) << plan.parts[0];
  EXPECT_EQ(json::parse(plan.parts[0])["content"][0]["text"], "sunny");
  next["messages"][2]["content"][0]["tool_use_id"] = "toolu_2";
  plan = Plan(next);
  EXPECT_EQ(plan.status, 400);
  EXPECT_NE(plan.parts[0].find("without `tool_result`"), std::string::npos) << plan.parts[0];
}

TEST_F(AnthropicEmulatorTest, RejectsWhatAnthropicRejects) {
  auto error_of = [&](const json& body, Headers headers = {{"anthropic-version", "2023-06-01"}}) {
    ResponsePlan plan = Plan(body, std::move(headers));
    EXPECT_EQ(plan.status, 400);
    json e = json::parse(plan.parts[0]);
    EXPECT_EQ(e["type"], "error");
    EXPECT_EQ(e["error"]["type"], "invalid_request_error");
    return e["error"]["message"].get<std::string>();
  };
  json no_max = Request("x");
  no_max.erase("max_tokens");
  EXPECT_EQ(error_of(no_max), "max_tokens: Field required");
  EXPECT_EQ(error_of(Request("x"), {}), "anthropic-version: header is required");
  json extra = Request("x");
  extra["n"] = 2;
  EXPECT_EQ(error_of(extra), "n: Extra inputs are not permitted");
  json hot = Request("x");
  hot["temperature"] = 1.5;
  EXPECT_EQ(error_of(hot), "temperature: Input should be less than or equal to 1");
  json role = Request("x");
  role["messages"][0]["role"] = "system";
  EXPECT_EQ(error_of(role), "messages.0.role: Input should be 'user' or 'assistant'");
  json image = Request("x");
  image["messages"][0]["content"] = json::parse(
      R"([{"type":"image","source":{"type":"base64","media_type":"image/bmp","data":"AA"}}])");
  EXPECT_NE(error_of(image).find("media_type"), std::string::npos);
}

TEST_F(AnthropicEmulatorTest, KeyIsReadFromXApiKey) {
  EmulatorOptions options;
  options.api_key = "k1";
  ResponsePlan plan = Plan(Request("x"), {{"anthropic-version", "2023-06-01"}, {"x-api-key", "k2"}},
                           options);
  EXPECT_EQ(plan.status, 401);
  EXPECT_EQ(json::parse(plan.parts[0])["error"]["type"], "authentication_error");
  plan = Plan(Request("x"), {{"anthropic-version", "2023-06-01"}, {"x-api-key", "k1"}}, options);
  EXPECT_EQ(plan.status, 200);
}

TEST_F(AnthropicEmulatorTest, ScriptsSpeakAnthropic) {
  // Reasoning: a thinking block with a signature, before the text.
  json r = Request("q\n@emulator {\"reasoning\": \"think hard\", \"reply\": \"A\", \"cached_tokens\": 1}");
  json whole = json::parse(Plan(r).parts[0]);
  EXPECT_EQ(whole["content"][0]["type"], "thinking");
  EXPECT_EQ(whole["content"][0]["thinking"], "think hard");
  EXPECT_FALSE(whole["content"][0]["signature"].get<std::string>().empty());
  EXPECT_EQ(whole["content"][1], json::parse(R"({"type":"text","text":"A"})"));
  EXPECT_EQ(whole["usage"]["cache_read_input_tokens"], 1);
  // Prompt "Be brief." + "q" + the directive line (8 words) = 11, one of them read from cache.
  EXPECT_EQ(whole["usage"]["input_tokens"], 10);
  EXPECT_EQ(whole["usage"]["output_tokens"], 3);
  EXPECT_EQ(whole["usage"]["output_tokens_details"], json::parse(R"({"thinking_tokens":2})"));

  // Errors in Anthropic's shape; 529 overloaded.
  ResponsePlan plan = Plan(Request("q\n@emulator {\"error\": {\"status\": 529}}"));
  EXPECT_EQ(plan.status, 529);
  EXPECT_EQ(json::parse(plan.parts[0])["error"]["type"], "overloaded_error");
  plan = Plan(Request("q\n@emulator {\"error\": {\"status\": 429, \"retry_after\": 7}}"));
  EXPECT_EQ(plan.status, 429);
  bool retry_after = false;
  for (const auto& [k, v] : plan.headers) retry_after = retry_after || (k == "retry-after" && v == "7");
  EXPECT_TRUE(retry_after);

  // A mid-stream error: the first events, then an error event, no message_stop.
  std::vector<Sse> events = Events(Plan(Request(
      "q\n@emulator {\"reply\": \"a b c\", \"interrupt\": {\"after_chunks\": 3, \"error\": "
      "{\"status\": 529}}}",
      true)));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.back().event, "error");
  EXPECT_EQ(events.back().data["error"]["type"], "overloaded_error");

  // A reset after two events.
  plan = Plan(Request("q\n@emulator {\"interrupt\": {\"after_chunks\": 2, \"reset\": true}}", true));
  EXPECT_EQ(plan.fail, FailMode::kResetMid);
  EXPECT_EQ(plan.parts.size(), 2u);

  // A refusal: its text, stop_reason "refusal".
  whole = json::parse(Plan(Request("q\n@emulator {\"refusal\": \"I can't help with that.\"}")).parts[0]);
  EXPECT_EQ(whole["content"], json::parse(R"([{"type":"text","text":"I can't help with that."}])"));
  EXPECT_EQ(whole["stop_reason"], "refusal");
}

}  // namespace
}  // namespace modeenvoy::emulator
