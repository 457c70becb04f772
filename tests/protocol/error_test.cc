#include "modeenvoy/protocol/error.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using ::testing::HasSubstr;

nlohmann::json ParseBody(const std::string& body) {
  EXPECT_TRUE(nlohmann::json::accept(body)) << body;
  return nlohmann::json::parse(body, nullptr, false);
}

TEST(OpenAiErrorBodyTest, HasOpenAiShape) {
  nlohmann::json body = ParseBody(OpenAiErrorBody(
      InvalidFieldError("messages[0].role", "unknown role \"bot\"")));
  EXPECT_EQ(body, nlohmann::json::parse(R"({"error":{
      "message":"messages[0].role: unknown role \"bot\"","type":"invalid_request_error",
      "param":"messages[0].role","code":null}})"));
}

TEST(OpenAiErrorBodyTest, ChoosesTypeFromCode) {
  const std::vector<std::pair<absl::StatusCode, std::string>> table = {
      {absl::StatusCode::kInvalidArgument, "invalid_request_error"},
      {absl::StatusCode::kOutOfRange, "invalid_request_error"},
      {absl::StatusCode::kFailedPrecondition, "invalid_request_error"},
      {absl::StatusCode::kUnimplemented, "invalid_request_error"},
      {absl::StatusCode::kUnauthenticated, "authentication_error"},
      {absl::StatusCode::kPermissionDenied, "permission_error"},
      {absl::StatusCode::kNotFound, "not_found_error"},
      {absl::StatusCode::kAlreadyExists, "conflict_error"},
      {absl::StatusCode::kAborted, "conflict_error"},
      {absl::StatusCode::kResourceExhausted, "rate_limit_error"},
      {absl::StatusCode::kCancelled, "request_cancelled"},
      {absl::StatusCode::kUnavailable, "server_error"},
      {absl::StatusCode::kDeadlineExceeded, "server_error"},
      {absl::StatusCode::kInternal, "server_error"},
      {absl::StatusCode::kUnknown, "server_error"},
      {absl::StatusCode::kDataLoss, "server_error"},
  };
  for (const auto& [code, type] : table) {
    nlohmann::json body = ParseBody(OpenAiErrorBody(absl::Status(code, "m")));
    EXPECT_EQ(body["error"]["type"], type) << absl::StatusCodeToString(code);
    EXPECT_EQ(body["error"]["message"], "m");
    EXPECT_TRUE(body["error"]["param"].is_null());
    EXPECT_TRUE(body["error"]["code"].is_null());
  }
}

TEST(OpenAiErrorBodyTest, InsufficientQuotaHasItsOwnType) {
  nlohmann::json body = ParseBody(OpenAiErrorBody(
      WithErrorCode(absl::ResourceExhaustedError("budget spent"), "insufficient_quota")));
  EXPECT_EQ(body["error"]["type"], "insufficient_quota");
  EXPECT_EQ(body["error"]["code"], "insufficient_quota");
}

TEST(OpenAiErrorBodyTest, EscapesAnyBytes) {
  static constexpr char kMessage[] = "quote\" backslash\\ nl\n nul\0 ctl\x01 bad\xFF\xC3( ok\xC3\xA9";
  static constexpr char kExpected[] =
      "a\"b: quote\" backslash\\ nl\n nul\0 ctl\x01 bad\xEF\xBF\xBD\xEF\xBF\xBD( ok\xC3\xA9";
  const std::string body =
      OpenAiErrorBody(InvalidFieldError("a\"b", std::string_view(kMessage, sizeof(kMessage) - 1)));
  nlohmann::json json = ParseBody(body);
  EXPECT_EQ(json["error"]["message"], std::string(kExpected, sizeof(kExpected) - 1));
  EXPECT_EQ(json["error"]["param"], "a\"b");
}

TEST(OpenAiErrorBodyTest, OkStatusStillGivesValidJson) {
  nlohmann::json body = ParseBody(OpenAiErrorBody(absl::OkStatus()));
  EXPECT_EQ(body["error"]["type"], "server_error");
}

struct UpstreamCase {
  int http;
  std::string body;
  absl::StatusCode code;
  std::string message;
  std::optional<std::string> param;
  std::optional<std::string> error_code;
  std::string openai_type;  // type in the re-encoded body
};

TEST(StatusFromUpstreamErrorTest, MapsBodiesAndStatuses) {
  const std::vector<UpstreamCase> cases = {
      {400,
       R"({"error":{"message":"Unsupported parameter: 'max_tokens'","type":"invalid_request_error","param":"max_tokens","code":"unsupported_parameter"}})",
       absl::StatusCode::kInvalidArgument, "Unsupported parameter: 'max_tokens'", "max_tokens",
       "unsupported_parameter", "invalid_request_error"},
      {401,
       R"({"error":{"code":"invalid_api_key","message":"Incorrect API key","param":null,"type":"invalid_request_error"}})",
       absl::StatusCode::kUnauthenticated, "Incorrect API key", std::nullopt, "invalid_api_key",
       "invalid_request_error"},
      {429,
       R"({"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}})",
       absl::StatusCode::kResourceExhausted, "You exceeded your current quota", std::nullopt,
       "insufficient_quota", "insufficient_quota"},
      {429,
       R"({"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}})",
       absl::StatusCode::kResourceExhausted,
       "Number of request tokens has exceeded your per-minute rate limit", std::nullopt,
       std::nullopt, "rate_limit_error"},
      {529, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       absl::StatusCode::kUnavailable, "Overloaded", std::nullopt, std::nullopt,
       "overloaded_error"},
      {429,
       R"([{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}])",
       absl::StatusCode::kResourceExhausted, "Resource has been exhausted (e.g. check quota).",
       std::nullopt, "429", "rate_limit_error"},
      {404, R"({"error":"model 'llama9' not found"})", absl::StatusCode::kNotFound,
       "model 'llama9' not found", std::nullopt, std::nullopt, "not_found_error"},
      {400, R"({"object":"error","message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400})",
       absl::StatusCode::kInvalidArgument, "max_tokens is too large", std::nullopt, "400",
       "BadRequestError"},
      {422, R"({"detail":[{"loc":["body","messages"],"msg":"field required"}]})",
       absl::StatusCode::kInvalidArgument, R"([{"loc":["body","messages"],"msg":"field required"}])",
       std::nullopt, std::nullopt, "invalid_request_error"},
      {403, R"({"message":"User is not authorized"})", absl::StatusCode::kPermissionDenied,
       "User is not authorized", std::nullopt, std::nullopt, "permission_error"},
      {502, "<html><body>Bad Gateway</body></html>\n", absl::StatusCode::kUnavailable,
       "<html><body>Bad Gateway</body></html>", std::nullopt, std::nullopt, "server_error"},
      {503, "", absl::StatusCode::kUnavailable, "upstream returned HTTP 503", std::nullopt,
       std::nullopt, "server_error"},
      {500, "  \n", absl::StatusCode::kUnavailable, "upstream returned HTTP 500", std::nullopt,
       std::nullopt, "server_error"},
      {500, R"({"error":{"message":"truncated)", absl::StatusCode::kUnavailable,
       R"({"error":{"message":"truncated)", std::nullopt, std::nullopt, "server_error"},
      {504, R"({"unexpected":"shape"})", absl::StatusCode::kDeadlineExceeded,
       R"({"unexpected":"shape"})", std::nullopt, std::nullopt, "server_error"},
      {408, "timeout", absl::StatusCode::kDeadlineExceeded, "timeout", std::nullopt,
       std::nullopt, "server_error"},
      {409, "conflict", absl::StatusCode::kAborted, "conflict", std::nullopt, std::nullopt,
       "conflict_error"},
      {413, "too big", absl::StatusCode::kInvalidArgument, "too big", std::nullopt, std::nullopt,
       "invalid_request_error"},
      {418, "teapot", absl::StatusCode::kFailedPrecondition, "teapot", std::nullopt,
       std::nullopt, "invalid_request_error"},
      {499, "gone", absl::StatusCode::kCancelled, "gone", std::nullopt, std::nullopt,
       "request_cancelled"},
      {501, "nope", absl::StatusCode::kUnimplemented, "nope", std::nullopt, std::nullopt,
       "invalid_request_error"},
      // An error event inside a 200 stream: the body picks the code.
      {200, R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})",
       absl::StatusCode::kUnavailable, "Overloaded", std::nullopt, std::nullopt,
       "overloaded_error"},
      {200, R"({"error":{"code":429,"message":"slow down","status":"RESOURCE_EXHAUSTED"}})",
       absl::StatusCode::kResourceExhausted, "slow down", std::nullopt, "429",
       "rate_limit_error"},
      {200, R"({"error":{"message":"m","code":401}})", absl::StatusCode::kUnauthenticated, "m",
       std::nullopt, "401", "authentication_error"},
      {200, "weird", absl::StatusCode::kUnknown, "weird", std::nullopt, std::nullopt,
       "server_error"},
  };
  for (const UpstreamCase& c : cases) {
    SCOPED_TRACE(c.body);
    absl::Status s = StatusFromUpstreamError(c.http, c.body);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_EQ(s.message(), c.message);
    EXPECT_EQ(ErrorParam(s), c.param);
    EXPECT_EQ(ErrorCode(s), c.error_code);
    EXPECT_EQ(HttpStatusForStatus(s), c.http >= 400 ? c.http : HttpStatusForStatus(absl::Status(c.code, "x")));
    nlohmann::json body = ParseBody(OpenAiErrorBody(s));
    EXPECT_EQ(body["error"]["type"], c.openai_type);
    EXPECT_EQ(body["error"]["message"], c.message);
  }
}

// Providers that say "the prompt does not fit" without OpenAI's code get it, so clients and
// the router's context-length fallback see one code; other errors do not.
TEST(StatusFromUpstreamErrorTest, ContextLengthMessagesGetOpenAisCode) {
  const std::pair<int, const char*> fits_not[] = {
      {400, R"({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}})"},
      {400, R"({"type":"error","error":{"type":"invalid_request_error","message":"input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000"}})"},
      {400, R"({"message":"Input is too long for requested model."})"},
      {400, R"({"message":"The model returned the following errors: too many input tokens"})"},
      {400, R"({"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}})"},
      {400, R"({"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens.","type":"BadRequestError","param":null,"code":400})"},
      {422, R"({"detail":"Prompt contains 40000 tokens and 0 draft tokens, too large for model with 32768 maximum context length"})"},
      {413, "Request entity too large: the prompt exceeds the model's context window"},
  };
  for (const auto& [http, body] : fits_not) {
    SCOPED_TRACE(body);
    absl::Status s = StatusFromUpstreamError(http, body);
    EXPECT_EQ(ErrorCode(s), "context_length_exceeded");
    EXPECT_EQ(HttpStatusForStatus(s), http);
    EXPECT_THAT(OpenAiErrorBody(s), HasSubstr(R"("code":"context_length_exceeded")"));
  }
  const std::pair<int, const char*> others[] = {
      // Another 400, a rate limit that speaks of tokens, a provider's own code kept.
      {400, R"({"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: must be at least 1"}})"},
      {429, R"({"error":{"message":"Request too large: too many tokens per min","type":"tokens"}})"},
      {400, R"({"error":{"message":"maximum context length is 8192 tokens","type":"invalid_request_error","code":"custom_code"}})"},
      {500, R"({"message":"too many tokens in flight"})"},
  };
  for (const auto& [http, body] : others) {
    SCOPED_TRACE(body);
    absl::Status s = StatusFromUpstreamError(http, body);
    EXPECT_NE(ErrorCode(s), "context_length_exceeded");
  }
}

TEST(StatusFromUpstreamErrorTest, TruncatesLongTextAtACharacterBoundary) {
  std::string body(1023, 'a');
  body += "\xC3\xA9 and more";
  absl::Status s = StatusFromUpstreamError(500, body);
  EXPECT_EQ(s.message().size(), 1023u);
  ParseBody(OpenAiErrorBody(s));
}

TEST(StatusFromUpstreamErrorTest, RecordedErrorFixtures) {
  std::optional<std::filesystem::path> dir = protocol_test::FixturesDir();
  if (!dir) GTEST_SKIP() << "fixtures not found (set MODEENVOY_FIXTURES_DIR)";
  struct Fixture {
    std::string path;
    int http;
    absl::StatusCode code;
    std::string message_prefix;
  };
  const std::vector<Fixture> fixtures = {
      {"vercel-ai/packages/openai/src/chat/__fixtures__/reasoning-model-legacy-parameter-error.json",
       400, absl::StatusCode::kInvalidArgument, "Unsupported parameter: 'max_tokens'"},
      {"kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/bad_request.json", 400,
       absl::StatusCode::kInvalidArgument, "'messages' is a required property"},
      {"kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/unauthorized.json", 401,
       absl::StatusCode::kUnauthenticated, "Incorrect API key provided"},
      {"kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/internal_server_error.html", 500,
       absl::StatusCode::kUnavailable, "<!DOCTYPE html>"},
      {"kong/spec/fixtures/ai-proxy/openai/llm-v1-chat/responses/bad_upstream_response.json", 502,
       absl::StatusCode::kUnavailable, "{\n  \"nothing_object\""},
      {"kong/spec/fixtures/ai-proxy/anthropic/llm-v1-chat/responses/bad_request.json", 400,
       absl::StatusCode::kInvalidArgument, "Invalid request"},
      {"kong/spec/fixtures/ai-proxy/anthropic/llm-v1-chat/responses/unauthorized.json", 401,
       absl::StatusCode::kUnauthenticated, "Invalid API Key"},
      {"kong/spec/fixtures/ai-proxy/cohere/llm-v1-chat/responses/unauthorized.json", 401,
       absl::StatusCode::kUnauthenticated, "invalid api token"},
      {"kong/spec/fixtures/ai-proxy/huggingface/llm-v1-chat/responses/bad_response_model_load.json",
       503, absl::StatusCode::kUnavailable, "Model mistralai/Mistral-7B-Instruct-v0.2 is currently loading"},
      {"vercel-ai/packages/google/src/__fixtures__/google-429-retry-info.json", 429,
       absl::StatusCode::kResourceExhausted, "You exceeded your current quota"},
      {"vercel-ai/packages/openai/src/responses/__fixtures__/openai-error.1.json", 429,
       absl::StatusCode::kResourceExhausted, "You exceeded your current quota"},
  };
  for (const Fixture& f : fixtures) {
    const std::filesystem::path path = *dir / f.path;
    if (!std::filesystem::exists(path)) continue;
    SCOPED_TRACE(f.path);
    absl::Status s = StatusFromUpstreamError(f.http, protocol_test::ReadFile(path));
    EXPECT_EQ(s.code(), f.code);
    EXPECT_EQ(HttpStatusForStatus(s), f.http);
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith(f.message_prefix));
    EXPECT_FALSE(s.message().empty());
    ParseBody(OpenAiErrorBody(s));
  }
  absl::Status legacy = StatusFromUpstreamError(
      400, protocol_test::ReadFile(*dir / fixtures[0].path));
  EXPECT_EQ(ErrorParam(legacy), "max_tokens");
  EXPECT_EQ(ErrorCode(legacy), "unsupported_parameter");
  absl::Status quota = StatusFromUpstreamError(
      429, protocol_test::ReadFile(*dir / fixtures.back().path));
  EXPECT_EQ(ErrorCode(quota), "insufficient_quota");
  EXPECT_THAT(OpenAiErrorBody(quota), HasSubstr(R"("type":"insufficient_quota")"));
}

}  // namespace
}  // namespace modeenvoy

namespace modeenvoy {
namespace {

TEST(ProviderErrorMarkTest, UpstreamErrorsAreMarkedAndOwnFailuresAreNot) {
  EXPECT_TRUE(IsProviderError(StatusFromUpstreamError(429, R"({"error":{"message":"x"}})")));
  EXPECT_TRUE(IsProviderError(StatusFromUpstreamError(200, "")));
  EXPECT_FALSE(IsProviderError(InvalidFieldError("choices", "expected array")));
  EXPECT_TRUE(IsProviderError(MarkProviderError(absl::UnavailableError("overloaded"))));
  EXPECT_TRUE(MarkProviderError(absl::OkStatus()).ok());
  EXPECT_FALSE(IsProviderError(absl::OkStatus()));
}

}  // namespace
}  // namespace modeenvoy
