// tests/protocol/sigv4_test.cc: SigV4 against AWS's published signing test suite
// (awslabs/aws-c-auth tests/aws-signing-test-suite/v4: credentials AKIDEXAMPLE, 2015-08-30
// 12:36:00 UTC, us-east-1, service "service"), and the canonical forms Bedrock needs.
// tests/python/test_sigv4_botocore.py compares with botocore itself.
#include "modeenvoy/protocol/sigv4.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

const AwsCredentials kSuiteCredentials{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                       ""};
const char kEmptySha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

absl::Time SuiteTime() {
  return absl::FromCivil(absl::CivilSecond(2015, 8, 30, 12, 36, 0), absl::UTCTimeZone());
}

SigV4Signature Sign(std::string_view method, std::string_view url, const Headers& headers,
                    std::string_view body = "",
                    const AwsCredentials& credentials = kSuiteCredentials,
                    std::string_view service = "service") {
  absl::StatusOr<SigV4Signature> s =
      SignSigV4({.method = method, .url = url, .headers = &headers, .body = body}, credentials,
                {.region = "us-east-1", .service = service, .time = SuiteTime()});
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : SigV4Signature{};
}

std::string Authorization(const SigV4Signature& s) {
  for (const auto& [name, value] : s.headers) {
    if (name == "authorization") return value;
  }
  return "";
}

std::string SuiteAuthorization(std::string_view signed_headers, std::string_view signature) {
  return absl::StrCat("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/",
                      "aws4_request, SignedHeaders=", std::string(signed_headers),
                      ", Signature=", std::string(signature));
}

TEST(SigV4Test, GetVanilla) {
  SigV4Signature s = Sign("GET", "https://example.amazonaws.com/",
                          {{"Host", "example.amazonaws.com"}});
  EXPECT_EQ(s.canonical_request,
            absl::StrCat("GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                         "host;x-amz-date\n",
                         kEmptySha256));
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_THAT(s.headers,
              ElementsAre(Pair("x-amz-date", "20150830T123600Z"),
                          Pair("authorization",
                               SuiteAuthorization("host;x-amz-date",
                                                  "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956"
                                                  "d9b8aae1d763fbf31"))));
}

TEST(SigV4Test, HostComesFromTheUrlWhenAbsent) {
  EXPECT_EQ(Authorization(Sign("GET", "https://Example.AmazonAWS.com:443/", {})),
            Authorization(Sign("GET", "https://example.amazonaws.com/",
                               {{"Host", "example.amazonaws.com"}})));
  EXPECT_THAT(Sign("GET", "http://localhost:8080/x", {}).canonical_request,
              HasSubstr("\nhost:localhost:8080\n"));
}

TEST(SigV4Test, GetVanillaWithSessionToken) {
  AwsCredentials credentials = kSuiteCredentials;
  credentials.session_token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
  SigV4Signature s = Sign("GET", "https://example.amazonaws.com/",
                          {{"Host", "example.amazonaws.com"}}, "", credentials);
  EXPECT_THAT(
      s.headers,
      ElementsAre(Pair("x-amz-date", "20150830T123600Z"),
                  Pair("x-amz-security-token", credentials.session_token),
                  Pair("authorization",
                       SuiteAuthorization("host;x-amz-date;x-amz-security-token",
                                          "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c"
                                          "66dd9f74e7f8"))));
}

TEST(SigV4Test, GetUtf8Path) {
  EXPECT_EQ(Authorization(Sign("GET", "https://example.amazonaws.com/\xe1\x88\xb4",
                               {{"Host", "example.amazonaws.com"}})),
            SuiteAuthorization("host;x-amz-date", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f25"
                                                  "5a891fd03141be5d85"));
}

TEST(SigV4Test, GetVanillaQueryOrderKeyCase) {
  SigV4Signature s = Sign("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1",
                          {{"Host", "example.amazonaws.com"}});
  EXPECT_THAT(s.canonical_request, HasSubstr("\n/\nParam1=value1&Param2=value2\n"));
  EXPECT_EQ(Authorization(s),
            SuiteAuthorization("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646ef"
                                                  "d99d3219ec94cdf2500"));
}

TEST(SigV4Test, GetHeaderValueTrim) {
  SigV4Signature s = Sign("GET", "https://example.amazonaws.com/",
                          {{"Host", "example.amazonaws.com"},
                           {"My-Header1", " value1"},
                           {"My-Header2", " \"a   b   c\""}});
  EXPECT_THAT(s.canonical_request, HasSubstr("\nmy-header1:value1\nmy-header2:\"a b c\"\n"));
  EXPECT_EQ(Authorization(s),
            SuiteAuthorization("host;my-header1;my-header2;x-amz-date",
                               "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"));
}

TEST(SigV4Test, BedrockModelIdIsEncodedOnceMore) {
  // The wire path carries the model id percent-encoded (':' -> %3A, '/' -> %2F); the
  // canonical path encodes it again, as botocore does for every non-S3 service.
  SigV4Signature s = Sign(
      "POST",
      "https://bedrock-runtime.us-east-1.amazonaws.com/model/"
      "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic."
      "claude-3-5-sonnet-20241022-v2%3A0/converse-stream",
      {{"Content-Type", "application/json"}}, "{}", kSuiteCredentials, "bedrock");
  EXPECT_THAT(s.canonical_request,
              HasSubstr("\n/model/arn%253Aaws%253Abedrock%253Aus-east-1%253A123456789012%253A"
                        "inference-profile%252Fus.anthropic.claude-3-5-sonnet-20241022-v2%253A0/"
                        "converse-stream\n\n"));
  EXPECT_THAT(s.canonical_request,
              HasSubstr("content-type;host;x-amz-date\n"
                        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"));
  EXPECT_THAT(Authorization(s), HasSubstr("/20150830/us-east-1/bedrock/aws4_request, "));
}

TEST(SigV4Test, PathDotSegmentsAndEmptySegmentsAreRemoved) {
  EXPECT_THAT(Sign("GET", "https://h.example/a/./b/../c//d/", {}).canonical_request,
              HasSubstr("GET\n/a/c/d/\n"));
  EXPECT_THAT(Sign("GET", "https://h.example", {}).canonical_request, HasSubstr("GET\n/\n"));
}

TEST(SigV4Test, UnsignedAndStaleHeadersAreLeftOut) {
  SigV4Signature s = Sign("POST", "https://h.example/",
                          {{"User-Agent", "x"},
                           {"Authorization", "stale"},
                           {"X-Amz-Date", "19990101T000000Z"},
                           {"Accept", "a"},
                           {"accept", "b"}});
  EXPECT_THAT(s.canonical_request, HasSubstr("\naccept:a,b\nhost:h.example\n"));
  EXPECT_THAT(Authorization(s), HasSubstr("SignedHeaders=accept;host;x-amz-date,"));
}

TEST(SigV4Test, GivenPayloadHashIsUsed) {
  SigV4Signature s = Sign("PUT", "https://h.example/", {{"X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD"}},
                          "body");
  EXPECT_THAT(s.canonical_request,
              HasSubstr("host;x-amz-content-sha256;x-amz-date\nUNSIGNED-PAYLOAD"));
}

TEST(SigV4Test, MissingInputsAreInvalidArguments) {
  Headers none;
  SigV4Scope scope{.region = "us-east-1", .service = "bedrock", .time = SuiteTime()};
  EXPECT_EQ(SignSigV4({.url = "https://h/", .headers = nullptr, .body = ""}, {"", "s", ""}, scope).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SignSigV4({.url = "h/x", .headers = nullptr, .body = ""}, kSuiteCredentials, scope).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SignSigV4({.url = "https:///x", .headers = nullptr, .body = ""}, kSuiteCredentials, scope).status().code(),
            absl::StatusCode::kInvalidArgument);
  scope.region = "";
  EXPECT_EQ(SignSigV4({.url = "https://h/", .headers = nullptr, .body = ""}, kSuiteCredentials, scope).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
