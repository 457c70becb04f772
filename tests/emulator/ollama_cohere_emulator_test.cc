// The emulator's Ollama (/api/chat) and Cohere (/v2/chat) dialects over real HTTP, their
// shapes compared with the recorded provider answers.
#include <curl/curl.h>

#include <algorithm>
#include <string>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "examples/emulator/emulator.h"
#include "gtest/gtest.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

struct Reply {
  long status = 0;
  std::string headers;
  std::string body;
  json Json() const { return json::parse(body); }
  // NDJSON lines.
  std::vector<json> Lines() const {
    std::vector<json> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find('\n', pos);
      EXPECT_NE(end, std::string::npos) << "unterminated line";
      if (end == std::string::npos) break;
      out.push_back(json::parse(body.substr(pos, end - pos)));
      pos = end + 1;
    }
    return out;
  }
  // SSE events as (event, data JSON).
  std::vector<std::pair<std::string, json>> Events() const {
    std::vector<std::pair<std::string, json>> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find("\n\n", pos);
      if (end == std::string::npos) break;
      std::string ev = body.substr(pos, end - pos);
      size_t nl = ev.find('\n');
      EXPECT_EQ(ev.rfind("event: ", 0), 0u) << ev;
      EXPECT_EQ(ev.compare(nl + 1, 6, "data: "), 0) << ev;
      out.emplace_back(ev.substr(7, nl - 7), json::parse(ev.substr(nl + 7)));
      pos = end + 2;
    }
    EXPECT_EQ(pos, body.size());
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

class ProviderEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    curl_ = curl_easy_init();
    EmulatorOptions options;
    options.usage_counting = UsageCountingMode::kWords;
    auto started = Emulator::Start(io_, std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (emulator_ != nullptr) emulator_->Stop();
    emulator_.reset();
    work_.reset();
    if (thread_.joinable()) thread_.join();
    curl_easy_cleanup(curl_);
  }

  Reply Post(const std::string& path, const std::string& body,
             const std::vector<std::string>& headers = {}) {
    Reply r;
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    const std::string url = "http://127.0.0.1:" + std::to_string(emulator_->port()) + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    EXPECT_EQ(curl_easy_perform(curl_), CURLE_OK);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    return r;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<Emulator> emulator_;
  CURL* curl_ = nullptr;
};

json OllamaChat(std::string text) {
  return json{{"model", "llama2"},
              {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", std::move(text)}}})}};
}

std::vector<std::string> Keys(const json& j) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST_F(ProviderEmulatorTest, OllamaWholeAnswerHasTheRecordedShapeAndCounts) {
  json req = OllamaChat("Why can't you divide by zero?");
  req["stream"] = false;
  Reply r = Post("/api/chat", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["message"]["content"], "Why can't you divide by zero?");
  EXPECT_EQ(j["message"]["role"], "assistant");
  EXPECT_EQ(j["done"], true);
  EXPECT_EQ(j["done_reason"], "stop");
  EXPECT_EQ(j["prompt_eval_count"], 2 + 6);  // words of both messages
  EXPECT_EQ(j["eval_count"], 6);
  if (auto dir = protocol_test::FixturesDir()) {
    json rec = json::parse(protocol_test::ReadFile(
        *dir / "kong/spec/fixtures/ai-proxy/unit/real-responses/llama2/ollama/llm-v1-chat.json"));
    rec["done_reason"] = "stop";  // newer Ollama versions add it
    EXPECT_EQ(Keys(j), Keys(rec));
    EXPECT_EQ(Keys(j["message"]), Keys(rec["message"]));
  }
}

TEST_F(ProviderEmulatorTest, OllamaStreamsByDefaultAsNdjsonEndingWithDone) {
  Reply r = Post("/api/chat", OllamaChat("one two three").dump());
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("application/x-ndjson"), std::string::npos);
  std::vector<json> lines = r.Lines();
  ASSERT_EQ(lines.size(), 4u);
  std::string text;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    EXPECT_EQ(lines[i]["done"], false);
    text += lines[i]["message"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, "one two three");
  EXPECT_EQ(lines.back()["done"], true);
  EXPECT_EQ(lines.back()["eval_count"], 3);
}

TEST_F(ProviderEmulatorTest, OllamaToolCallsAreObjectsWithoutIdsAndErrorsAreGoShaped) {
  json req = OllamaChat("weather?\n@emulator {\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]}");
  req["stream"] = false;
  Reply r = Post("/api/chat", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json call = r.Json()["message"]["tool_calls"][0];
  EXPECT_EQ(call, json::parse(R"({"function":{"name":"get_weather","arguments":{"city":"Paris"}}})"));

  json bad = OllamaChat("x");
  bad["messages"][1]["content"] = json::array({{{"type", "text"}, {"text", "x"}}});
  Reply e = Post("/api/chat", bad.dump());
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.Json()["error"],
            "json: cannot unmarshal array into Go struct field ChatRequest.messages.content of "
            "type string");
  Reply m = Post("/api/chat", R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(m.status, 400);
  EXPECT_EQ(m.Json()["error"], "model is required");
  Reply busy = Post("/api/chat", OllamaChat("x").dump(), {"x-emulator-status: 429"});
  EXPECT_EQ(busy.status, 429);
  EXPECT_TRUE(busy.Json()["error"].is_string());
  EXPECT_NE(busy.headers.find("retry-after: 1"), std::string::npos) << busy.headers;
}

TEST_F(ProviderEmulatorTest, OllamaMidStreamErrorIsAnErrorLine) {
  Reply r = Post("/api/chat", OllamaChat("a b c d").dump(),
                 {R"(x-emulator-script: {"interrupt":{"after_chunks":2,"error":{"status":500,"message":"boom"}}})"});
  std::vector<json> lines = r.Lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines.back(), json({{"error", "boom"}}));
}

json CohereChat(std::string text) {
  return json{{"model", "command-a-03-2025"},
              {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", std::move(text)}}})}};
}

TEST_F(ProviderEmulatorTest, CohereWholeAnswerHasTheRecordedShapeAndUsage) {
  Reply r = Post("/v2/chat", CohereChat("The capital of France?").dump());
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["message"]["content"][0], json({{"type", "text"}, {"text", "The capital of France?"}}));
  EXPECT_EQ(j["finish_reason"], "COMPLETE");
  EXPECT_EQ(j["usage"]["billed_units"]["input_tokens"], 2 + 4);
  EXPECT_EQ(j["usage"]["tokens"]["input_tokens"], 2 + 4 + 495);
  EXPECT_EQ(j["usage"]["tokens"]["output_tokens"], 4);
  if (auto dir = protocol_test::FixturesDir()) {
    json rec = json::parse(protocol_test::ReadFile(
        *dir / "vercel-ai/packages/cohere/src/__fixtures__/cohere-text.json"));
    rec["usage"].erase("cached_tokens");  // only when a script sets it
    EXPECT_EQ(Keys(j), Keys(rec));
    EXPECT_EQ(Keys(j["usage"]), Keys(rec["usage"]));
    EXPECT_EQ(Keys(j["message"]), Keys(rec["message"]));
  }
}

TEST_F(ProviderEmulatorTest, CohereStreamsEventsInTheRecordedOrder) {
  json req = CohereChat("weather?\n@emulator {\"tool_calls\":[{\"name\":\"weather\",\"arguments\":{\"location\":\"San Francisco\"}}]}");
  req["stream"] = true;
  req["tools"] = json::parse(R"([{"type":"function","function":{"name":"weather","parameters":{"type":"object"}}}])");
  Reply r = Post("/v2/chat", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = r.Events();
  ASSERT_GT(events.size(), 4u);
  std::vector<std::string> kinds;
  std::string args;
  for (const auto& [event, data] : events) {
    EXPECT_EQ(event, data["type"]);
    if (kinds.empty() || kinds.back() != event) kinds.push_back(event);
    if (event == "tool-call-delta") {
      args += data["delta"]["message"]["tool_calls"]["function"]["arguments"].get<std::string>();
    }
  }
  // As cohere-tool-call.chunks.txt: start, plan, one call, end.
  EXPECT_EQ(kinds, (std::vector<std::string>{"message-start", "tool-plan-delta", "tool-call-start",
                                             "tool-call-delta", "tool-call-end", "message-end"}));
  EXPECT_EQ(json::parse(args), json({{"location", "San Francisco"}}));
  EXPECT_EQ(events.back().second["delta"]["finish_reason"], "TOOL_CALL");
}

TEST_F(ProviderEmulatorTest, CohereValidatesStrictlyAndFailsInItsOwnShapes) {
  json p = CohereChat("x");
  p["p"] = 1.0;
  Reply r = Post("/v2/chat", p.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["message"], "invalid request: p must be a number between 0.01 and 0.99");
  EXPECT_TRUE(r.Json()["id"].is_string());
  json unknown = CohereChat("x");
  unknown["n"] = 2;
  EXPECT_EQ(Post("/v2/chat", unknown.dump()).status, 400);
  json choice = CohereChat("x");
  choice["tool_choice"] = "auto";
  EXPECT_EQ(Post("/v2/chat", choice.dump()).status, 400);

  Reply limited = Post("/v2/chat", CohereChat("x").dump(), {"x-emulator-status: 429"});
  EXPECT_EQ(limited.status, 429);
  EXPECT_NE(limited.Json()["message"].get<std::string>().find("Trial key"), std::string::npos);

  json s = CohereChat("a b c d");
  s["stream"] = true;
  Reply cut = Post("/v2/chat", s.dump(),
                   {R"(x-emulator-script: {"interrupt":{"after_chunks":3,"error":{"status":500,"message":"boom"}}})"});
  auto events = cut.Events();
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events.back().second["delta"], json({{"finish_reason", "ERROR"}, {"error", "boom"}}));
}

}  // namespace
}  // namespace modeenvoy::emulator
