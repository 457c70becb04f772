// The emulator's Azure OpenAI routes over real HTTP: deployments and v1 paths, api-version,
// the api-key header, Azure's content filter annotations and errors, streams and scripts.
#include <curl/curl.h>

#include <string>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "examples/emulator/emulator.h"
#include "gtest/gtest.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string headers;
  std::string body;
  std::vector<std::string> Events() const {
    std::vector<std::string> out;
    for (size_t pos = 0, end; (end = body.find("\n\n", pos)) != std::string::npos; pos = end + 2) {
      std::string event = body.substr(pos, end - pos);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      out.push_back(event.substr(6));
    }
    return out;
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->body.append(data, size * n);
  return size * n;
}
size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->headers.append(data, size * n);
  return size * n;
}

constexpr char kPath[] = "/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21";

json Request(std::string text, bool stream = false) {
  json req = {{"messages", json::array({{{"role", "user"}, {"content", std::move(text)}}})}};
  if (stream) req["stream"] = true;
  return req;
}

class AzureEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { curl_ = curl_easy_init(); }
  void TearDown() override {
    if (emulator_ != nullptr) emulator_->Stop();
    emulator_.reset();
    work_.reset();
    if (thread_.joinable()) thread_.join();
    curl_easy_cleanup(curl_);
  }
  void Start() {
    EmulatorOptions options;
    options.api_key = "az-key";
    options.usage_counting = UsageCountingMode::kWords;
    auto started = Emulator::Start(io_, std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
  }
  Reply Call(const std::string& path, const json& body,
             std::vector<std::string> headers = {"api-key: az-key"}) {
    Reply r;
    headers.push_back("Content-Type: application/json");
    curl_slist* list = nullptr;
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    const std::string url = "http://127.0.0.1:" + std::to_string(emulator_->port()) + path;
    const std::string data = body.is_null() ? "" : body.dump();
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    if (body.is_null()) {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, data.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(data.size()));
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    r.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    return r;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<Emulator> emulator_;
  CURL* curl_ = nullptr;
};

TEST_F(AzureEmulatorTest, DeploymentRouteAnswersWithAzureFilterResults) {
  Start();
  Reply r = Call(kPath, Request("hello there azure"));
  ASSERT_EQ(r.status, 200) << r.body;
  json body = json::parse(r.body);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "gpt-4o-prod");  // the deployment names the model
  EXPECT_FALSE(body.contains("service_tier"));
  EXPECT_EQ(body["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"],
            false);
  EXPECT_EQ(body["choices"][0]["content_filter_results"]["violence"]["severity"], "safe");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 3);  // words
  EXPECT_NE(r.headers.find("apim-request-id"), std::string::npos);
}

TEST_F(AzureEmulatorTest, ApiVersionIsRequiredOnDeployments) {
  Start();
  Reply r = Call("/openai/deployments/gpt-4o-prod/chat/completions", Request("hi"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(json::parse(r.body)["error"]["message"], "Resource not found");
}

TEST_F(AzureEmulatorTest, ApiKeyHeaderOrBearerIsChecked) {
  Start();
  Reply wrong = Call(kPath, Request("hi"), {"api-key: nope"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(json::parse(wrong.body)["error"]["code"], "401");
  EXPECT_EQ(Call(kPath, Request("hi"), {"Authorization: Bearer az-key"}).status, 200);
}

TEST_F(AzureEmulatorTest, StreamStartsWithPromptFiltersAndHonoursIncludeUsage) {
  Start();
  json req = Request("one two three", true);
  req["stream_options"] = {{"include_usage", true}};
  Reply r = Call(kPath, req);
  ASSERT_EQ(r.status, 200);
  std::vector<std::string> events = r.Events();
  ASSERT_GE(events.size(), 5u);
  json first = json::parse(events[0]);
  EXPECT_TRUE(first["choices"].empty());
  EXPECT_TRUE(first.contains("prompt_filter_results"));
  EXPECT_FALSE(first.contains("usage"));
  std::string text;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    json chunk = json::parse(events[i]);
    ASSERT_EQ(chunk["choices"].size(), 1u) << events[i];
    EXPECT_TRUE(chunk["choices"][0].contains("content_filter_results"));
    text += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, "one two three");  // the echo
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["completion_tokens"], 3);
  EXPECT_EQ(events.back(), "[DONE]");
}

TEST_F(AzureEmulatorTest, V1RouteTakesTheModelFromTheBody) {
  Start();
  json req = Request("hi");
  req["model"] = "my-deployment";
  Reply r = Call("/openai/v1/chat/completions", req);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["model"], "my-deployment");
}

TEST_F(AzureEmulatorTest, ContentFilterErrorsAndFinishReasons) {
  Start();
  Reply blocked = Call(kPath, Request("hi"),
                       {"api-key: az-key",
                        R"(x-emulator-script: {"error": {"status": 400, "code": "content_filter", "message": "filtered"}})"});
  EXPECT_EQ(blocked.status, 400);
  json error = json::parse(blocked.body)["error"];
  EXPECT_EQ(error["code"], "content_filter");
  EXPECT_EQ(error["param"], "prompt");
  EXPECT_EQ(error["innererror"]["code"], "ResponsibleAIPolicyViolation");

  Reply filtered = Call(kPath, Request("hi"),
                        {"api-key: az-key",
                         R"(x-emulator-script: {"reply": "partial", "finish_reason": "content_filter"})"});
  ASSERT_EQ(filtered.status, 200) << filtered.body;
  json choice = json::parse(filtered.body)["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "content_filter");
  EXPECT_EQ(choice["content_filter_results"]["hate"]["filtered"], true);
}

TEST_F(AzureEmulatorTest, ScriptedRateLimitKeepsRetryAfter) {
  Start();
  Reply r = Call(kPath, Request("hi"),
                 {"api-key: az-key", R"(x-emulator-script: {"error": {"status": 429, "retry_after": 7}})"});
  EXPECT_EQ(r.status, 429);
  EXPECT_NE(r.headers.find("retry-after: 7"), std::string::npos) << r.headers;
  EXPECT_EQ(json::parse(r.body)["error"]["code"], "429");
}

TEST_F(AzureEmulatorTest, ScriptedMidStreamErrorAndReset) {
  Start();
  Reply error = Call(kPath, Request("a b c d e f", true),
                     {"api-key: az-key", R"(x-emulator-script: {"interrupt": {"after_chunks": 2, "error": {}}})"});
  ASSERT_EQ(error.code, CURLE_OK);
  std::vector<std::string> events = error.Events();
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(json::parse(events.back()).contains("error"));
  EXPECT_EQ(error.body.find("[DONE]"), std::string::npos);

  Reply reset = Call(kPath, Request("a b c d e f", true),
                     {"api-key: az-key", R"(x-emulator-script: {"interrupt": {"after_chunks": 3, "reset": true}})"});
  EXPECT_NE(reset.code, CURLE_OK);
  EXPECT_EQ(reset.body.find("[DONE]"), std::string::npos);
}

TEST_F(AzureEmulatorTest, ModelsAreListed) {
  Start();
  Reply r = Call("/openai/models", json());
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["object"], "list");
}

}  // namespace
}  // namespace modeenvoy::emulator
