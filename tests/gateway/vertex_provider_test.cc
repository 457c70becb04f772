// tests/gateway/vertex_provider_test.cc: the "gemini" and "vertex" provider types: URL and
// authentication, the token file re-read when it changes, RetryInfo as retry-after.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

absl::StatusOr<std::unique_ptr<ProviderDialect>> Build(std::string_view type,
                                                       const ProviderConfig& config,
                                                       std::string_view options) {
  std::optional<ProviderDialectBuilder> builder = BuiltinRegistry().providers().Find(type);
  if (!builder.has_value()) return absl::NotFoundError("no builder");
  BuildContext ctx;
  ctx.type = type;
  return (*builder)(config, options, ctx);
}

std::string Header(const UpstreamRequest& r, std::string_view name) {
  std::string found;
  int count = 0;
  for (const auto& [n, v] : r.headers) {
    if (n == name) {
      found = v;
      ++count;
    }
  }
  EXPECT_LE(count, 1) << name;
  return found;
}

ChatRequest Chat() {
  absl::StatusOr<ChatRequest> chat =
      ParseChatRequest(R"({"model":"gemini-2.5-flash","messages":[{"role":"user","content":"hi"}]})");
  EXPECT_TRUE(chat.ok());
  return *chat;
}

class TokenFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = std::filesystem::temp_directory_path() /
            ("modeenvoy-vertex-token-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove(path_); }
  void Write(const std::string& text) {
    // Replace atomically, as token refreshers do (a new inode each time).
    std::filesystem::path tmp = path_.string() + ".tmp";
    std::ofstream(tmp, std::ios::binary | std::ios::trunc) << text;
    std::filesystem::rename(tmp, path_);
  }
  std::filesystem::path path_;
};

TEST_F(TokenFileTest, VertexSendsTheTokenAndRereadsTheFileWhenItChanges) {
  Write("ya29.first\n");
  ProviderConfig config;
  config.name = "vx";
  config.type = "vertex";
  absl::StatusOr<std::unique_ptr<ProviderDialect>> p = Build(
      "vertex", config,
      R"({"project":"proj","location":"us-east5","token_file":")" + path_.string() + "\"}");
  ASSERT_TRUE(p.ok()) << p.status();
  UpstreamRequest req;
  ASSERT_TRUE((*p)->BuildRequest(Chat(), {.stream = true, .upstream_model = "gemini-2.5-flash"},
                                 &req)
                  .ok());
  EXPECT_EQ(req.url,
            "https://us-east5-aiplatform.googleapis.com/v1/projects/proj/locations/us-east5/"
            "publishers/google/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
  EXPECT_EQ(Header(req, "authorization"), "Bearer ya29.first");

  Write("ya29.second-token\n");
  UpstreamRequest again;
  ASSERT_TRUE((*p)->BuildRequest(Chat(), {.upstream_model = "gemini-2.5-flash"}, &again).ok());
  EXPECT_EQ(Header(again, "authorization"), "Bearer ya29.second-token");

  // Same size, rewritten in place: the modification time (or inode) tells.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Write("ya29.second-tokeN\n");
  UpstreamRequest third;
  ASSERT_TRUE((*p)->BuildRequest(Chat(), {.upstream_model = "gemini-2.5-flash"}, &third).ok());
  EXPECT_EQ(Header(third, "authorization"), "Bearer ya29.second-tokeN");

  // A vanished file fails the request (retryable), not the process.
  std::filesystem::remove(path_);
  UpstreamRequest gone;
  absl::Status s = (*p)->BuildRequest(Chat(), {.upstream_model = "gemini-2.5-flash"}, &gone);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
}

TEST_F(TokenFileTest, ConfigErrorsNameTheOption) {
  ProviderConfig config;
  config.type = "vertex";
  EXPECT_EQ(ErrorParam(Build("vertex", config, R"({"location":"us-central1"})").status()),
            "project");
  EXPECT_EQ(ErrorParam(Build("vertex", config,
                             R"({"project":"p","token_file":"/nonexistent/modeenvoy/token"})")
                           .status()),
            "token_file");
  Write("t");
  config.api_key = "also-a-token";
  EXPECT_EQ(ErrorParam(Build("vertex", config,
                             R"({"project":"p","token_file":")" + path_.string() + "\"}")
                           .status()),
            "token_file");
  EXPECT_EQ(Build("gemini", config, R"({"token_file":"x"})").status().message(),
            "token_file: unknown field");
}

TEST(GeminiProviderTest, ApiKeyHeaderAndRetryInfoBecomesRetryAfter) {
  ProviderConfig config;
  config.type = "gemini";
  config.api_key = "AIza-test";
  absl::StatusOr<std::unique_ptr<ProviderDialect>> p = Build("gemini", config, "{}");
  ASSERT_TRUE(p.ok()) << p.status();
  UpstreamRequest req;
  ASSERT_TRUE((*p)->BuildRequest(Chat(), {.upstream_model = "gemini-2.5-flash"}, &req).ok());
  EXPECT_EQ(req.url, "https://generativelanguage.googleapis.com/v1beta/models/"
                     "gemini-2.5-flash:generateContent");
  EXPECT_EQ(Header(req, "x-goog-api-key"), "AIza-test");
  EXPECT_EQ(Header(req, "authorization"), "");

  const std::string body = R"({"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED",
    "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34.4s"}]}})";
  absl::Status s = (*p)->TranslateError(429, {}, body);
  EXPECT_EQ(HttpStatusForStatus(s), 429);
  HttpHeaders headers = ErrorHeaders(s);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0], (std::pair<std::string, std::string>{"retry-after", "35"}));
  // The upstream's own header wins.
  s = (*p)->TranslateError(429, {{"Retry-After", "3"}}, body);
  headers = ErrorHeaders(s);
  ASSERT_EQ(headers.size(), 1u);
  EXPECT_EQ(headers[0].second, "3");
}

}  // namespace
}  // namespace modeenvoy
