// tests/gateway/bedrock_provider_test.cc: the bedrock provider type's host side
// (lib/gateway/providers/bedrock.cc): credentials and region from the entry or the
// environment, SigV4 in Sign() with the injected clock, Bedrock API keys as bearer tokens.
// The "bedrock" dialect lives on another branch, so the signing wrapper is exercised around
// the "openai" dialect: signing does not depend on the body's dialect.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::gateway_internal {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kUrl[] =
    "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1"
    "%3A0/converse";
constexpr char kBody[] = R"({"messages":[{"role":"user","content":[{"text":"hi"}]}]})";
const AwsCredentials kCredentials{"AKIAIOSFODNN7EXAMPLE",
                                  "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                  "FwoGZXIvYXdzEXAMPLE"};

// Values of every header named `name` (any case).
std::vector<std::string> HeaderValues(const HttpHeaders& headers, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, absl::string_view(name.data(), name.size()))) out.push_back(v);
  }
  return out;
}

struct Env {
  std::map<std::string, std::string, std::less<>> vars;
  EnvLookup lookup = [this](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
};

class BedrockProviderTest : public ::testing::Test {
 protected:
  BuildContext Context() {
    return BuildContext{.type = "bedrock", .name = "aws", .path = "providers.aws",
                        .env_lookup = &env_.lookup, .services = &services_};
  }
  absl::StatusOr<BedrockSettings> Read(std::string_view options, std::string api_key = "",
                                       std::string base_url = "") {
    ProviderConfig common;
    common.api_key = std::move(api_key);
    common.base_url = std::move(base_url);
    return ReadBedrockSettings(common, options, Context());
  }
  std::unique_ptr<ProviderDialect> Wrap(BedrockAuth auth, std::string base_url = "") {
    ProviderConfig common;
    common.name = "aws";
    common.type = "bedrock";
    common.base_url = std::move(base_url);
    absl::StatusOr<std::unique_ptr<Dialect>> dialect = NewDialect("openai", "{}");
    EXPECT_TRUE(dialect.ok()) << dialect.status();
    absl::StatusOr<std::unique_ptr<ProviderDialect>> p =
        WrapWithAwsAuth(common, *std::move(dialect), std::move(auth), &clock_);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  // 2026-03-14T15:09:26Z.
  FakeClock clock_{absl::FromUnixSeconds(1773500966)};
  Services services_{ServicesOptions{.clock = &clock_}};
  Env env_;
};

// The expected Authorization values are botocore's (1.43, SigV4Auth("bedrock",
// "us-east-1")) for this request: botocore.auth.get_current_datetime pinned to
// 2026-03-14 15:09:26 (then :31), AWSRequest(method="POST", url=kUrl,
// headers={"content-type": "application/json", "x-filter": "added"}, data=kBody), the
// credentials of kCredentials, then add_auth(request) and request.headers["Authorization"].
TEST_F(BedrockProviderTest, SignMatchesBotocoreAtTheClocksTimeAndResignsOnRetry) {
  std::unique_ptr<ProviderDialect> provider =
      Wrap({.region = "us-east-1", .credentials = kCredentials, .bearer_token = ""});
  ASSERT_NE(provider, nullptr);
  UpstreamRequest request;
  request.url = kUrl;
  request.headers = {{"content-type", "application/json"}, {"x-filter", "added"}};
  request.body = kBody;
  ASSERT_TRUE(provider->Sign(&request).ok());
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-date"),
              ::testing::ElementsAre("20260314T150926Z"));
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-security-token"),
              ::testing::ElementsAre("FwoGZXIvYXdzEXAMPLE"));
  EXPECT_THAT(HeaderValues(request.headers, "authorization"),
              ::testing::ElementsAre(
                  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260314/us-east-1/bedrock/"
                  "aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;"
                  "x-filter, Signature=25b70287ccc9bb85e72134ab99560af64e664c2cd100cf9f9b0231602"
                  "bed105a"));

  // A retry five seconds later signs the same request again: the previous signature's
  // headers are replaced, not signed or duplicated.
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(provider->Sign(&request).ok());
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-date"),
              ::testing::ElementsAre("20260314T150931Z"));
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-security-token"), ::testing::SizeIs(1));
  EXPECT_THAT(HeaderValues(request.headers, "authorization"),
              ::testing::ElementsAre(HasSubstr(
                  "Signature=cd2350ef645c9ed12006e7d12aafcd541d51a2658e3841a6ce9a4d85108e6427")));
}

TEST_F(BedrockProviderTest, BuiltRequestIsSignedOverWhatIsSent) {
  std::unique_ptr<ProviderDialect> provider =
      Wrap({.region = "eu-west-3", .credentials = {"AKID", "SECRET", ""}, .bearer_token = ""},
           "https://bedrock-runtime.eu-west-3.amazonaws.com");
  ASSERT_NE(provider, nullptr);
  absl::StatusOr<ChatRequest> chat =
      ParseChatRequest(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  UpstreamRequest request;
  ASSERT_TRUE(provider->BuildRequest(*chat, {.stream = false, .upstream_model = "m"}, &request)
                  .ok());
  EXPECT_THAT(HeaderValues(request.headers, "authorization"), IsEmpty());  // not yet
  request.headers.emplace_back("x-edited-by-filter", "1");  // an edit before Sign
  ASSERT_TRUE(provider->Sign(&request).ok());

  // Recompute from the request as sent, minus what signing added.
  HttpHeaders unsigned_headers;
  for (const auto& h : request.headers) {
    if (h.first != "authorization" && h.first != "x-amz-date") unsigned_headers.push_back(h);
  }
  absl::StatusOr<SigV4Signature> want = SignSigV4(
      {.method = "POST", .url = request.url, .headers = &unsigned_headers, .body = request.body},
      {"AKID", "SECRET", ""},
      {.region = "eu-west-3", .service = "bedrock", .time = absl::FromUnixSeconds(1773500966)});
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_THAT(HeaderValues(request.headers, "authorization"),
              ::testing::ElementsAre(want->headers.back().second));
  EXPECT_THAT(want->headers.back().second,
              HasSubstr("/20260314/eu-west-3/bedrock/aws4_request, SignedHeaders="));
  EXPECT_THAT(want->headers.back().second, HasSubstr(";x-edited-by-filter,"));
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-security-token"), IsEmpty());
}

TEST_F(BedrockProviderTest, ApiKeyIsABearerTokenAndNothingIsSigned) {
  absl::StatusOr<BedrockSettings> s = Read(R"({"region":"us-west-2"})", "br-key");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->auth.bearer_token, "br-key");
  std::unique_ptr<ProviderDialect> provider =
      Wrap(s->auth, "https://bedrock-runtime.us-west-2.amazonaws.com");
  ASSERT_NE(provider, nullptr);
  absl::StatusOr<ChatRequest> chat =
      ParseChatRequest(R"({"model":"m","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(chat.ok());
  UpstreamRequest request;
  ASSERT_TRUE(provider->BuildRequest(*chat, {.stream = true, .upstream_model = "m"}, &request)
                  .ok());
  ASSERT_TRUE(provider->Sign(&request).ok());
  EXPECT_THAT(HeaderValues(request.headers, "authorization"),
              ::testing::ElementsAre("Bearer br-key"));
  EXPECT_THAT(HeaderValues(request.headers, "x-amz-date"), IsEmpty());
}

TEST_F(BedrockProviderTest, ConfiguredCredentialsAndEnvNamesAndDialectOptions) {
  env_.vars = {{"MY_KEY", "AKIDENV"}, {"MY_SECRET", "SECRETENV"}, {"AWS_REGION", "ap-south-1"}};
  absl::StatusOr<BedrockSettings> s = Read(
      R"({"access_key_id_env":"MY_KEY","secret_access_key_env":"MY_SECRET",
          "session_token":"tok","guardrail":{"id":"g"}})");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->auth.region, "ap-south-1");
  EXPECT_EQ(s->auth.credentials.access_key_id, "AKIDENV");
  EXPECT_EQ(s->auth.credentials.secret_access_key, "SECRETENV");
  EXPECT_EQ(s->auth.credentials.session_token, "tok");
  EXPECT_TRUE(s->auth.bearer_token.empty());
  // Ours are removed; the rest, and the resolved region, go to the dialect.
  EXPECT_EQ(nlohmann::json::parse(s->dialect_options_json),
            nlohmann::json::parse(R"({"guardrail":{"id":"g"},"region":"ap-south-1"})"));
}

TEST_F(BedrockProviderTest, StandardEnvironmentIsTheFallback) {
  env_.vars = {{"AWS_DEFAULT_REGION", "us-east-2"},
               {"AWS_ACCESS_KEY_ID", "AKIDSTD"},
               {"AWS_SECRET_ACCESS_KEY", "SECRETSTD"},
               {"AWS_SESSION_TOKEN", "TOKSTD"}};
  absl::StatusOr<BedrockSettings> s = Read("{}");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->auth.region, "us-east-2");
  EXPECT_EQ(s->auth.credentials.access_key_id, "AKIDSTD");
  EXPECT_EQ(s->auth.credentials.session_token, "TOKSTD");
  // AWS_REGION wins over AWS_DEFAULT_REGION, an explicit region over both.
  env_.vars["AWS_REGION"] = "us-west-1";
  EXPECT_EQ(Read("{}")->auth.region, "us-west-1");
  EXPECT_EQ(Read(R"({"region":"eu-central-1"})")->auth.region, "eu-central-1");
  // An API key in the entry wins over environment credentials.
  EXPECT_EQ(Read("{}", "br")->auth.bearer_token, "br");
  // With no AWS keys at all, AWS_BEARER_TOKEN_BEDROCK.
  env_.vars = {{"AWS_REGION", "us-west-1"}, {"AWS_BEARER_TOKEN_BEDROCK", "envbr"}};
  EXPECT_EQ(Read("{}")->auth.bearer_token, "envbr");
}

TEST_F(BedrockProviderTest, ConfigErrorsNameTheFieldAndNeverTheSecret) {
  auto error = [&](std::string_view options, std::string api_key = "") {
    absl::StatusOr<BedrockSettings> s = Read(options, std::move(api_key));
    EXPECT_FALSE(s.ok()) << options;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << options;
    EXPECT_THAT(std::string(s.status().message()), ::testing::Not(HasSubstr("SECRETVALUE")));
    return std::string(s.status().message());
  };
  EXPECT_THAT(error(R"({"access_key_id":"A","secret_access_key":"SECRETVALUE"})"),
              HasSubstr("region: is required"));
  env_.vars = {{"AWS_REGION", "us-east-1"}};
  EXPECT_THAT(error("{}"), HasSubstr("no AWS credentials"));
  EXPECT_THAT(error(R"({"access_key_id":"A"})"), HasSubstr("secret_access_key: is required"));
  EXPECT_THAT(error(R"({"secret_access_key":"SECRETVALUE"})"),
              HasSubstr("access_key_id: is required"));
  EXPECT_THAT(error(R"({"access_key_id":"A","secret_access_key":"SECRETVALUE"})", "br"),
              HasSubstr("access_key_id: cannot be combined with api_key"));
  EXPECT_THAT(error(R"({"access_key_id":"A","access_key_id_env":"X",
                        "secret_access_key":"SECRETVALUE"})"),
              HasSubstr("access_key_id_env: cannot be combined with access_key_id"));
  EXPECT_THAT(error(R"({"access_key_id_env":"UNSET","secret_access_key":"SECRETVALUE"})"),
              HasSubstr("access_key_id_env: environment variable UNSET is not set"));
  EXPECT_THAT(error(R"({"access_key_id":7})"), HasSubstr("access_key_id: must be a string"));
  env_.vars["AWS_ACCESS_KEY_ID"] = "A";
  EXPECT_THAT(error("{}"), HasSubstr("AWS_SECRET_ACCESS_KEY is not"));
  // A bearer token to the public endpoint still needs the region that names it.
  env_.vars.clear();
  EXPECT_THAT(error("{}", "br"), HasSubstr("region: is required"));
}

TEST_F(BedrockProviderTest, BearerTokenToAConfiguredBaseUrlNeedsNoRegion) {
  absl::StatusOr<BedrockSettings> s = Read("{}", "br", "http://127.0.0.1:9/");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->auth.bearer_token, "br");
  EXPECT_EQ(s->dialect_options_json, "{}");
  // SigV4 always needs one.
  EXPECT_FALSE(Read(R"({"access_key_id":"A","secret_access_key":"S"})", "", "http://h/").ok());
}

TEST_F(BedrockProviderTest, RegisteredOnlyWithABedrockDialect) {
  const bool have_dialect = absl::c_linear_search(DialectNames(), "bedrock");
  EXPECT_EQ(BuiltinRegistry().providers().Contains("bedrock"), have_dialect);
}

}  // namespace
}  // namespace modeenvoy::gateway_internal
