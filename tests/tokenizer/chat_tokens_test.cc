#include "modeenvoy/tokenizer/chat_tokens.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy {
namespace {

// The OpenAI cookbook's example conversation ("How to count tokens with tiktoken"), for
// which the API reports 129 prompt tokens on gpt-4 and 124 on gpt-4o.
ChatRequest CookbookRequest(const std::string& model) {
  ChatRequest r;
  r.model = model;
  auto add = [&](Role role, std::string content, std::optional<std::string> name = std::nullopt) {
    Message m = MakeMessage(role, std::move(content));
    m.name = std::move(name);
    r.messages.push_back(std::move(m));
  };
  add(Role::kSystem,
      "You are a helpful, pattern-following assistant that translates corporate jargon into "
      "plain English.");
  add(Role::kSystem, "New synergies will help drive top-line growth.", "example_user");
  add(Role::kSystem, "Things working well together will increase revenue.", "example_assistant");
  add(Role::kSystem,
      "Let's circle back when we have more bandwidth to touch base on opportunities for "
      "increased leverage.",
      "example_user");
  add(Role::kSystem, "Let's talk later when we're less busy about how to do better.",
      "example_assistant");
  add(Role::kUser,
      "This late pivot means we don't have time to boil the ocean for the client deliverable.");
  return r;
}

EncodingOptions TestOptions() {
  EncodingOptions o;
  o.tokenizer_dir = tokenizer_test::TokenizerDir();
  return o;
}

TEST(CountChatTokensTest, MatchesCookbookCounts) {
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  auto gpt4 = CountChatTokens(CookbookRequest("gpt-4"), {}, TestOptions());
  ASSERT_TRUE(gpt4.ok()) << gpt4.status();
  EXPECT_EQ(gpt4->prompt_tokens, 129);
  EXPECT_FALSE(gpt4->estimated);
  EXPECT_EQ(CountChatTokens(*o200k, CookbookRequest("gpt-4o")).prompt_tokens, 124);
  EXPECT_EQ(CountChatTokens(*cl100k, CookbookRequest("gpt-3.5-turbo-0301")).prompt_tokens, 127);
}

TEST(CountChatTokensTest, ToolDefinitionsFollowTheCookbook) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  ChatRequest r;
  r.model = "gpt-4o";
  Tool tool;
  tool.function = FunctionDefinition{};
  tool.function->name = "get_current_weather";
  tool.function->description = "Get the current weather in a given location";
  tool.function->parameters = R"({"type":"object","properties":{
      "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
      "unit":{"type":"string","description":"The unit of temperature to return",
              "enum":["celsius","fahrenheit"]}},"required":["location"]})";
  r.tools.push_back(tool);
  // Reference values computed with tiktoken and the cookbook's num_tokens_for_tools.
  const ChatTokenCount c = CountChatTokens(*o200k, r);
  EXPECT_EQ(c.tool_tokens, 68);
  EXPECT_EQ(c.prompt_tokens, 68 + 3);
  r.model = "gpt-4";
  EXPECT_EQ(CountChatTokens(*cl100k, r).tool_tokens, 71);
  r.tools[0].function->parameters = "{not json";
  EXPECT_GT(CountChatTokens(*cl100k, r).tool_tokens, 10 + 12);
}

TEST(CountChatTokensTest, ImagesAreEstimatedFromTheirSize) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  ChatRequest r;
  r.model = "gpt-4o";
  Message m;
  m.role = Role::kUser;
  std::vector<ContentPart> parts(3);
  parts[0].type = ContentPartType::kText;
  parts[0].text = "What is in these images?";
  parts[1].type = ContentPartType::kImageUrl;
  parts[1].image_url = ImageUrl{"https://example.com/a.png", std::string("low"), {}};
  // A 2048x4096 PNG header: scaled to 1024x2048, then 768x1536 -> 2x3 tiles.
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x08\0\0\0\x10\0", 24);
  parts[2].type = ContentPartType::kImageUrl;
  parts[2].image_url = ImageUrl{"data:image/png;base64," + absl::Base64Escape(png), std::nullopt, {}};
  m.content = parts;
  r.messages.push_back(m);
  const ChatTokenCount c = CountChatTokens(*o200k, r);
  EXPECT_TRUE(c.estimated);
  EXPECT_EQ(c.image_tokens, 85 + (85 + 170 * 6));
  const int64_t text = static_cast<int64_t>(o200k->CountOrdinary("What is in these images?") +
                                            o200k->CountOrdinary("user"));
  EXPECT_EQ(c.prompt_tokens, 3 + text + c.image_tokens + 3);
  // Remote images use the assumed size (1024x1024 -> 768x768 -> 4 tiles).
  r.messages[0].content = std::vector<ContentPart>{parts[0], parts[2]};
  std::get<std::vector<ContentPart>>(*r.messages[0].content)[1].image_url->url = "https://x/y.jpg";
  EXPECT_EQ(CountChatTokens(*o200k, r).image_tokens, 85 + 170 * 4);
}

TEST(CountChatTokensTest, ToolCallsAndToolResultsCount) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  ChatRequest r;
  r.model = "gpt-4.1";
  Message call;
  call.role = Role::kAssistant;
  ToolCall tc;
  tc.id = "call_1";
  tc.function = FunctionCall{"get_weather", R"({"city":"Paris"})", {}};
  call.tool_calls.push_back(tc);
  Message result = MakeMessage(Role::kTool, "18C and sunny");
  result.tool_call_id = "call_1";
  r.messages = {call, result};
  const auto n = [&](std::string_view s) { return static_cast<int64_t>(o200k->CountOrdinary(s)); };
  const int64_t expected = 3 + n("assistant") + n("get_weather") + n(R"({"city":"Paris"})") +
                           3 + n("tool") + n("18C and sunny") + n("call_1") + 3;
  EXPECT_EQ(CountChatTokens(*o200k, r).prompt_tokens, expected);
}

TEST(CountChatTokensTest, UnknownModelIsNotFound) {
  ChatRequest r;
  r.model = "mystery-model";
  EXPECT_EQ(CountChatTokens(r).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace modeenvoy
