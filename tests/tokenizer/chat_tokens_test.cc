#include "modeenvoy/tokenizer/chat_tokens.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
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

// The first 24 bytes of a w x h PNG (signature and IHDR): all the size reader needs.
std::string PngHeader(uint32_t w, uint32_t h) {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", 16);
  for (uint32_t v : {w, h}) {
    for (int shift = 24; shift >= 0; shift -= 8) png.push_back(static_cast<char>(v >> shift));
  }
  return png;
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
  const std::string png = PngHeader(2048, 4096);
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

// A user message holding one image given as a data: URL of `bytes`, with `detail`.
ChatRequest ImageRequest(const std::string& model, const std::string& bytes, const char* mime,
                         std::optional<std::string> detail = std::nullopt) {
  ChatRequest r;
  r.model = model;
  Message m;
  m.role = Role::kUser;
  std::vector<ContentPart> parts(1);
  parts[0].type = ContentPartType::kImageUrl;
  parts[0].image_url =
      ImageUrl{absl::StrCat("data:", mime, ";base64,", absl::Base64Escape(bytes)), detail, {}};
  m.content = parts;
  r.messages.push_back(m);
  return r;
}

TEST(CountChatTokensTest, ModelPrefixesKeepTheirModelsImageAndMessageRules) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  const std::string png = PngHeader(1024, 1024);  // 4 tiles at high detail
  for (const char* model : {"gpt-4o-mini", "openai/gpt-4o-mini",
                            "ft:gpt-4o-mini-2024-07-18:org::abc"}) {
    EXPECT_EQ(CountChatTokens(*o200k, ImageRequest(model, png, "image/png")).image_tokens,
              2833 + 5667 * 4)
        << model;
    EXPECT_EQ(CountChatTokens(*o200k, ImageRequest(model, png, "image/png", "low")).image_tokens,
              2833)
        << model;
  }
  EXPECT_EQ(CountChatTokens(*o200k, ImageRequest("gpt-4o", png, "image/png")).image_tokens,
            85 + 170 * 4);
  // Azure's name for the 0301 snapshot counts messages as that snapshot does.
  EXPECT_EQ(CountChatTokens(*cl100k, CookbookRequest("gpt-35-turbo-0301")).prompt_tokens, 127);
  EXPECT_EQ(CountChatTokens(*cl100k, CookbookRequest("azure/gpt-35-turbo-0301")).prompt_tokens, 127);
}

TEST(CountChatTokensTest, PatchModelsBillThirtyTwoPixelPatches) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  auto image = [&](const char* model, uint32_t w, uint32_t h, const char* detail = nullptr) {
    std::optional<std::string> d;
    if (detail != nullptr) d = detail;
    return CountChatTokens(*o200k, ImageRequest(model, PngHeader(w, h), "image/png", d))
        .image_tokens;
  };
  // OpenAI's vision guide: 1024x1024 is 1024 patches; 1800x2400 is scaled to 1452 patches
  // (33 x 44); the multipliers are 1.62, 2.46 and 1.72, rounded up here.
  EXPECT_EQ(image("gpt-4.1-mini", 1024, 1024), 1659);   // 1024 * 1.62 = 1658.88
  EXPECT_EQ(image("gpt-4.1-mini", 2400, 1800), 2353);   // 1452 * 1.62 = 2352.24
  EXPECT_EQ(image("gpt-4.1-mini", 1800, 2400), 2353);
  EXPECT_EQ(image("gpt-4.1-nano-2025-04-14", 128, 64), 20);  // 8 * 2.46 = 19.68
  EXPECT_EQ(image("o4-mini", 128, 64), 14);                  // 8 * 1.72 = 13.76
  // "low" detail changes nothing for these models; at most 1536 patches are billed.
  EXPECT_EQ(image("gpt-4.1-mini", 1024, 1024, "low"), 1659);
  EXPECT_EQ(image("gpt-4.1-mini", 6000, 6000), static_cast<int64_t>(std::ceil(1521 * 1.62)));
  // A strip thinner than a patch once scaled still costs at least its one column.
  EXPECT_GT(image("gpt-4.1-mini", 40, 65535), 0);
  EXPECT_LE(image("gpt-4.1-mini", 40, 65535), static_cast<int64_t>(std::ceil(1536 * 1.62)));
}

TEST(CountChatTokensTest, ImageSizesFromWebPAndFromLateJpegHeaders) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  auto tokens = [&](const std::string& bytes, const char* mime) {
    return CountChatTokens(*o200k, ImageRequest("gpt-4o", bytes, mime)).image_tokens;
  };
  // 300x300 fits one tile (85 + 170); an unknown size would be assumed 1024x1024 (765).
  std::string lossy("RIFF\0\0\0\0WEBPVP8 \0\0\0\0\0\0\0\x9d\x01\x2a", 26);
  lossy += std::string("\x2c\x01\x2c\x01", 4);  // 300, 300 (14 bits each)
  EXPECT_EQ(tokens(lossy, "image/webp"), 255);
  std::string lossless("RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f", 21);
  const uint32_t bits = (300 - 1) | (300 - 1) << 14;
  for (int i = 0; i < 4; ++i) lossless.push_back(static_cast<char>(bits >> (8 * i)));
  lossless.append(5, '\0');
  EXPECT_EQ(tokens(lossless, "image/webp"), 255);
  std::string extended("RIFF\0\0\0\0WEBPVP8X\0\0\0\0\0\0\0\0", 24);
  extended += std::string("\x2b\x01\0\x2b\x01\0", 6);  // 299 + 1, 299 + 1
  EXPECT_EQ(tokens(extended, "image/webp"), 255);
  // A JPEG whose frame header comes after 60 kB of metadata (beyond the first 64 KiB of
  // base64 text).
  std::string jpeg("\xff\xd8", 2);
  for (int i = 0; i < 2; ++i) {
    jpeg += std::string("\xff\xe1\x75\x30", 4);  // APP1, length 30000
    jpeg.append(30000 - 2, 'x');
  }
  jpeg += std::string("\xff\xc0\0\x11\x08\x01\x2c\x01\x2c\x03", 10);  // 300x300
  jpeg.append(16, '\0');
  EXPECT_EQ(tokens(jpeg, "image/jpeg"), 255);
}

TEST(CountChatTokensTest, DeprecatedFunctionsCountAsTools) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  const char* params = R"({"type":"object","properties":{
      "location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},
      "unit":{"type":"string","enum":["celsius","fahrenheit"]}}})";
  ChatRequest with_tools;
  with_tools.model = "gpt-4o";
  with_tools.messages.push_back(MakeMessage(Role::kUser, "weather?"));
  Tool tool;
  tool.function = FunctionDefinition{};
  tool.function->name = "get_current_weather";
  tool.function->description = "Get the current weather in a given location";
  tool.function->parameters = params;
  with_tools.tools.push_back(tool);
  ChatRequest with_functions = with_tools;
  with_functions.tools.clear();
  with_functions.functions = absl::StrCat(
      R"([{"name":"get_current_weather","description":"Get the current weather in a given location","parameters":)",
      params, "}]");
  const ChatTokenCount a = CountChatTokens(*o200k, with_tools);
  const ChatTokenCount b = CountChatTokens(*o200k, with_functions);
  EXPECT_GT(a.tool_tokens, 12);
  EXPECT_EQ(b.tool_tokens, a.tool_tokens);
  EXPECT_EQ(b.prompt_tokens, a.prompt_tokens);
  // An assistant's deprecated function_call counts its name and arguments, as a tool call.
  Message call;
  call.role = Role::kAssistant;
  call.extra.emplace_back("function_call", R"({"name":"get_weather","arguments":"{\"city\":\"Paris\"}"})");
  ChatRequest r;
  r.model = "gpt-4o";
  r.messages = {call};
  const auto n = [&](std::string_view s) { return static_cast<int64_t>(o200k->CountOrdinary(s)); };
  EXPECT_EQ(CountChatTokens(*o200k, r).prompt_tokens,
            3 + n("assistant") + n("get_weather") + n(R"({"city":"Paris"})") + 3);
}

TEST(CountChatTokensTest, UnknownModelIsNotFound) {
  ChatRequest r;
  r.model = "mystery-model";
  EXPECT_EQ(CountChatTokens(r).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace modeenvoy

namespace modeenvoy {
namespace {

// Per-message counts plus the reply priming and tools are the request's count, for many
// requests drawn from messages of every kind and for models with different rules.
TEST(CountMessageTokensTest, SummedWithPrimingAndToolsEqualsTheRequestCount) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  std::vector<Message> pool = CookbookRequest("gpt-4o").messages;
  Message call = MakeMessage(Role::kAssistant);
  ToolCall tc;
  tc.id = "call_1";
  tc.function = FunctionCall{.name = "get_weather", .arguments = R"({"city":"Paris"})", .extra = {}};
  call.tool_calls = {tc};
  pool.push_back(call);
  Message result = MakeMessage(Role::kTool, "18 degrees and sunny");
  result.tool_call_id = "call_1";
  pool.push_back(result);
  Message image = MakeMessage(Role::kUser);
  ContentPart text;
  text.text = "what is this?";
  ContentPart img;
  img.type = ContentPartType::kImageUrl;
  img.image_url = ImageUrl{.url = "https://example.com/x.png", .detail = std::nullopt, .extra = {}};
  image.content = std::vector<ContentPart>{text, img};
  pool.push_back(image);
  Message legacy = MakeMessage(Role::kAssistant);
  legacy.extra = {{"function_call", R"({"name":"f","arguments":"{\"a\":1}"})"}};
  pool.push_back(legacy);
  Message refusal = MakeMessage(Role::kAssistant);
  refusal.refusal = "I can't help with that.";
  refusal.name = "bot";
  pool.push_back(refusal);

  Tool tool;
  tool.function = FunctionDefinition{.name = "get_weather", .description = "Weather.",
                                     .parameters = R"({"type":"object","properties":{"city":{"type":"string"}}})",
                                     .strict = std::nullopt, .extra = {}};
  uint64_t state = 42;  // a fixed linear congruential sequence picks the messages
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<size_t>(state >> 33);
  };
  int checked = 0;
  for (const char* model : {"gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "gpt-4", "gpt-3.5-turbo-0301"}) {
    const Encoding& enc = std::string_view(model).find("gpt-4o") == 0 ||
                                  std::string_view(model).find("gpt-4.1") == 0
                              ? *o200k
                              : *cl100k;
    for (int i = 0; i < 60; ++i) {
      ChatRequest r;
      r.model = model;
      const size_t n = 1 + next() % 8;
      for (size_t k = 0; k < n; ++k) r.messages.push_back(pool[next() % pool.size()]);
      if (i % 3 == 0) r.tools = {tool};
      const ChatTokenCount whole = CountChatTokens(enc, r);
      int64_t sum = kReplyPrimingTokens + whole.tool_tokens;
      int64_t images = 0;
      bool estimated = false;
      for (const Message& m : r.messages) {
        const ChatTokenCount one = CountMessageTokens(enc, m, {.model = model});
        sum += one.prompt_tokens;
        images += one.image_tokens;
        estimated = estimated || one.estimated;
      }
      EXPECT_EQ(sum, whole.prompt_tokens) << model << " request " << i;
      EXPECT_EQ(images, whole.image_tokens);
      EXPECT_EQ(estimated, whole.estimated);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 300);
}

TEST(CountMessageTokensTest, DefaultRulesAreThreeTokensPerMessage) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  // "user" and "hello" are one token each in o200k_base.
  EXPECT_EQ(o200k->CountOrdinary("user"), 1u);
  EXPECT_EQ(o200k->CountOrdinary("hello"), 1u);
  EXPECT_EQ(CountMessageTokens(*o200k, MakeMessage(Role::kUser, "hello")).prompt_tokens, 5);
}

// Keys of per-message count caches: equal keys count every message alike, models with
// different per-message rules (or another encoding, or another assumed image size) differ.
TEST(MessageCountingRulesTest, EqualKeysCountAlikeAndRulesThatDifferDiffer) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  auto key = [&](const Encoding& enc, const char* model) {
    return MessageCountingRules(enc, {.model = model});
  };
  EXPECT_EQ(key(*o200k, "gpt-4o"), key(*o200k, "gpt-4o-2024-08-06"));
  EXPECT_EQ(key(*o200k, "gpt-4o"), key(*o200k, ""));
  EXPECT_EQ(key(*o200k, "gpt-4o-mini"), key(*o200k, "openai/gpt-4o-mini-2024-07-18"));
  EXPECT_NE(key(*o200k, "gpt-4o"), key(*o200k, "gpt-4o-mini"));          // image pricing
  EXPECT_NE(key(*cl100k, "gpt-4"), key(*cl100k, "gpt-3.5-turbo-0301"));  // 4 per message
  EXPECT_NE(key(*o200k, "gpt-4o"), key(*cl100k, "gpt-4o"));              // the encoding
  ChatTokenOptions wide;
  wide.assumed_image_width = 4096;
  EXPECT_NE(MessageCountingRules(*o200k, wide), MessageCountingRules(*o200k));

  // gpt-3.5-turbo-0301: 4 per message and -1 for a name, so the keys must differ.
  Message named = MakeMessage(Role::kUser, "hello");
  named.name = "ana";
  EXPECT_NE(CountMessageTokens(*cl100k, named, {.model = "gpt-3.5-turbo-0301"}).prompt_tokens,
            CountMessageTokens(*cl100k, named, {.model = "gpt-4"}).prompt_tokens);
  EXPECT_EQ(CountMessageTokens(*o200k, named, {.model = "gpt-4o"}).prompt_tokens,
            CountMessageTokens(*o200k, named, {.model = "gpt-4o-2024-08-06"}).prompt_tokens);
}

}  // namespace
}  // namespace modeenvoy
