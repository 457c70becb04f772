// The emulator over real HTTP: started in-process on port 0, driven with libcurl.
#include "examples/emulator/emulator.h"

#include <curl/curl.h>

#include <chrono>
#include <string>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string headers;
  std::string body;
  std::vector<std::pair<Clock::time_point, std::string>> arrivals;  // one per write callback
  Clock::time_point started;
  long new_connections = 0;

  json Json() const { return json::parse(body); }
  // The `data:` payloads of an SSE body, in order.
  std::vector<std::string> Events() const {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find("\n\n", pos);
      if (end == std::string::npos) break;
      std::string event = body.substr(pos, end - pos);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      out.push_back(event.substr(6));
      pos = end + 2;
    }
    EXPECT_EQ(pos, body.size()) << "trailing bytes after the last event";
    return out;
  }
  bool HasHeader(const std::string& line) const {
    return headers.find(line) != std::string::npos;
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  r->body.append(data, size * n);
  r->arrivals.emplace_back(Clock::now(), std::string(data, size * n));
  return size * n;
}
size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  static_cast<Reply*>(user)->headers.append(data, size * n);
  return size * n;
}

json ChatRequest(std::string text, bool stream = false) {
  json req = {{"model", "gpt-4o-mini"},
              {"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                        {{"role", "user"}, {"content", std::move(text)}}})}};
  if (stream) req["stream"] = true;
  return req;
}

json WeatherTool() {
  return json::parse(R"({"type": "function", "function": {"name": "get_weather",
      "description": "Current weather", "parameters": {"type": "object",
      "properties": {"location": {"type": "string"}, "unit": {"type": "string",
      "enum": ["celsius", "fahrenheit"]}}, "required": ["location", "unit"]}}})");
}

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { curl_ = curl_easy_init(); }

  void TearDown() override {
    if (emulator_ != nullptr) {
      emulator_->Stop();
      emulator_.reset();
    }
    work_.reset();
    if (thread_.joinable()) thread_.join();
    curl_easy_cleanup(curl_);
  }

  void Start(EmulatorOptions options = {}) {
    auto started = Emulator::Start(io_, std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
  }

  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(emulator_->port()) + path;
  }

  // One request on the test's curl handle (connections are reused across calls).
  Reply Call(const std::string& method, const std::string& path, const std::string& body,
             const std::vector<std::string>& headers = {}, long timeout_ms = 10000) {
    Reply r;
    curl_slist* list = nullptr;
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl_, CURLOPT_URL, Url(path).c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    } else {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, timeout_ms);
    r.started = Clock::now();
    r.code = curl_easy_perform(curl_);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_getinfo(curl_, CURLINFO_NUM_CONNECTS, &r.new_connections);
    curl_slist_free_all(list);
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
    return r;
  }

  Reply Chat(const json& request, const std::vector<std::string>& headers = {},
             long timeout_ms = 10000) {
    std::vector<std::string> all = {"Content-Type: application/json"};
    all.insert(all.end(), headers.begin(), headers.end());
    return Call("POST", "/v1/chat/completions", request.dump(), all, timeout_ms);
  }

  // Bounded polling on the emulator's counters (no sleeps as synchronization otherwise).
  template <typename Pred>
  bool Eventually(Pred pred) {
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!pred()) {
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return true;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<Emulator> emulator_;
  CURL* curl_ = nullptr;
};

TEST_F(EmulatorTest, NonStreamingCompletionHasEveryOpenAiField) {
  FakeClock clock(absl::FromUnixSeconds(1770933883));
  Start({.system_fingerprint = "fp_test",
         .clock = &clock,
         .usage_counting = UsageCountingMode::kWords});
  Reply r = Chat(ChatRequest("What is 1 + 1?"));
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.HasHeader("content-type: application/json")) << r.headers;
  json j = r.Json();
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["id"].get<std::string>().size(), 9u + 29u);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 1770933883);
  EXPECT_EQ(j["model"], "gpt-4o-mini");
  ASSERT_EQ(j["choices"].size(), 1u);
  const json& choice = j["choices"][0];
  EXPECT_EQ(choice["index"], 0);
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], "What is 1 + 1?");  // echo of the last user message
  EXPECT_TRUE(choice["message"]["refusal"].is_null());
  EXPECT_EQ(choice["message"]["annotations"], json::array());
  EXPECT_FALSE(choice["message"].contains("tool_calls"));
  EXPECT_TRUE(choice["logprobs"].is_null());
  EXPECT_EQ(choice["finish_reason"], "stop");
  const json& usage = j["usage"];
  // Words: 2 + 5 in, 5 out.
  EXPECT_EQ(usage["prompt_tokens"], 7);
  EXPECT_EQ(usage["completion_tokens"], 5);
  EXPECT_EQ(usage["total_tokens"], 12);
  EXPECT_EQ(usage["prompt_tokens_details"],
            json::parse(R"({"cached_tokens": 0, "audio_tokens": 0})"));
  EXPECT_EQ(usage["completion_tokens_details"],
            json::parse(R"({"reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0})"));
  EXPECT_EQ(j["service_tier"], "default");
  EXPECT_EQ(j["system_fingerprint"], "fp_test");
}

TEST_F(EmulatorTest, ReplyIsAFixedFunctionOfTheRequest) {
  Start();
  Reply a = Chat(ChatRequest("same words"));
  Reply b = Chat(ChatRequest("same words"));
  EXPECT_EQ(a.Json()["choices"][0]["message"], b.Json()["choices"][0]["message"]);
  EXPECT_EQ(a.Json()["usage"], b.Json()["usage"]);
  EXPECT_NE(a.Json()["id"], b.Json()["id"]);  // ids stay unique per request
  Reply c = Chat(ChatRequest("ignored"), {"x-emulator-reply: Fixed answer."});
  EXPECT_EQ(c.Json()["choices"][0]["message"]["content"], "Fixed answer.");
}

TEST_F(EmulatorTest, ServerDefaultReplyAndHeaderOverride) {
  EmulatorOptions options;
  options.defaults.reply = "From the server.";
  Start(std::move(options));
  EXPECT_EQ(Chat(ChatRequest("x")).Json()["choices"][0]["message"]["content"], "From the server.");
  EXPECT_EQ(Chat(ChatRequest("x"), {"x-emulator-reply: From the header."})
                .Json()["choices"][0]["message"]["content"],
            "From the header.");
}

TEST_F(EmulatorTest, StreamingFramingFollowsOpenAi) {
  Start();
  Reply r = Chat(ChatRequest("one two three", /*stream=*/true));
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.HasHeader("content-type: text/event-stream; charset=utf-8")) << r.headers;
  EXPECT_TRUE(r.HasHeader("transfer-encoding: chunked")) << r.headers;
  std::vector<std::string> events = r.Events();
  ASSERT_EQ(events.size(), 1u + 3u + 1u + 1u);  // role, 3 words, finish, [DONE]
  EXPECT_EQ(events.back(), "[DONE]");
  std::string id, text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json c = json::parse(events[i]);
    EXPECT_EQ(c["object"], "chat.completion.chunk");
    EXPECT_EQ(c["model"], "gpt-4o-mini");
    EXPECT_FALSE(c.contains("usage")) << "usage appears only with include_usage";
    if (i == 0) id = c["id"];
    EXPECT_EQ(c["id"], id);
    ASSERT_EQ(c["choices"].size(), 1u);
    const json& choice = c["choices"][0];
    EXPECT_TRUE(choice["logprobs"].is_null());
    if (i == 0) {
      EXPECT_EQ(choice["delta"], json::parse(R"({"role":"assistant","content":"","refusal":null})"));
      EXPECT_TRUE(choice["finish_reason"].is_null());
    } else if (i + 2 == events.size()) {
      EXPECT_EQ(choice["delta"], json::object());
      EXPECT_EQ(choice["finish_reason"], "stop");
    } else {
      EXPECT_EQ(choice["delta"].size(), 1u);
      text += choice["delta"]["content"].get<std::string>();
      EXPECT_TRUE(choice["finish_reason"].is_null());
    }
  }
  EXPECT_EQ(text, "one two three");
}

TEST_F(EmulatorTest, UsageChunkOnlyWithIncludeUsage) {
  Start({.usage_counting = UsageCountingMode::kWords});
  json req = ChatRequest("a b", true);
  req["stream_options"] = {{"include_usage", true}};
  std::vector<std::string> events = Chat(req).Events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events.back(), "[DONE]");
  json usage_chunk = json::parse(events[events.size() - 2]);
  EXPECT_EQ(usage_chunk["choices"], json::array());
  EXPECT_EQ(usage_chunk["usage"]["completion_tokens"], 2);
  EXPECT_EQ(usage_chunk["usage"]["total_tokens"],
            usage_chunk["usage"]["prompt_tokens"].get<int>() + 2);
  for (size_t i = 0; i + 2 < events.size(); ++i) {
    json c = json::parse(events[i]);
    ASSERT_TRUE(c.contains("usage"));
    EXPECT_TRUE(c["usage"].is_null());
  }
  req["stream_options"] = {{"include_usage", false}};
  for (const std::string& e : Chat(req).Events()) {
    if (e != "[DONE]") {
      EXPECT_FALSE(json::parse(e).contains("usage"));
    }
  }
}

TEST_F(EmulatorTest, ChunksHeaderSetsTheNumberOfContentDeltas) {
  Start();
  std::vector<std::string> events =
      Chat(ChatRequest("ignored", true), {"x-emulator-reply: abcdef", "x-emulator-chunks: 3"})
          .Events();
  ASSERT_EQ(events.size(), 1u + 3u + 1u + 1u);
  EXPECT_EQ(json::parse(events[1])["choices"][0]["delta"]["content"], "ab");
  EXPECT_EQ(json::parse(events[2])["choices"][0]["delta"]["content"], "cd");
  EXPECT_EQ(json::parse(events[3])["choices"][0]["delta"]["content"], "ef");
}

TEST_F(EmulatorTest, StreamedEventsLeaveTheSocketAsProduced) {
  Start();
  constexpr int kInterval = 40;
  Reply r = Chat(ChatRequest("w1 w2 w3 w4 w5 w6", true),
                 {"x-emulator-chunk-interval-ms: " + std::to_string(kInterval)});
  ASSERT_EQ(r.code, CURLE_OK);
  ASSERT_EQ(r.Events().size(), 9u);
  ASSERT_GE(r.arrivals.size(), 2u);
  using std::chrono::milliseconds;
  // 8 gaps between 9 events: the last byte cannot come before 8 intervals have passed.
  EXPECT_GE(r.arrivals.back().first - r.started, milliseconds(8 * kInterval));
  // Loosely: the first event was not held back until the end.
  EXPECT_GE(r.arrivals.back().first - r.arrivals.front().first, milliseconds(kInterval));
}

TEST_F(EmulatorTest, LatencyDelaysTheFirstByte) {
  Start();
  Reply r = Chat(ChatRequest("x"), {"x-emulator-latency-ms: 80"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_GE(r.arrivals.front().first - r.started, std::chrono::milliseconds(80));
}

TEST_F(EmulatorTest, ToolCallsStreamAsOpenAiDeltas) {
  Start();
  json req = ChatRequest("call get_weather {\"location\": \"Paris\", \"unit\": \"celsius\"}", true);
  req["tools"] = json::array({WeatherTool()});
  std::vector<std::string> events = Chat(req).Events();
  ASSERT_GE(events.size(), 4u);
  json first = json::parse(events[0])["choices"][0]["delta"];
  EXPECT_EQ(first["role"], "assistant");
  EXPECT_TRUE(first["content"].is_null());
  EXPECT_TRUE(first["refusal"].is_null());
  ASSERT_EQ(first["tool_calls"].size(), 1u);
  const json& head = first["tool_calls"][0];
  EXPECT_EQ(head["index"], 0);
  EXPECT_EQ(head["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(head["type"], "function");
  EXPECT_EQ(head["function"]["name"], "get_weather");
  EXPECT_EQ(head["function"]["arguments"], "");
  std::string args;
  for (size_t i = 1; i + 2 < events.size(); ++i) {
    json call = json::parse(events[i])["choices"][0]["delta"]["tool_calls"][0];
    EXPECT_EQ(call["index"], 0);
    EXPECT_FALSE(call.contains("id"));
    args += call["function"]["arguments"].get<std::string>();
  }
  EXPECT_GT(events.size(), 4u) << "arguments come in several fragments";
  EXPECT_EQ(json::parse(args), json::parse(R"({"location": "Paris", "unit": "celsius"})"));
  json last = json::parse(events[events.size() - 2])["choices"][0];
  EXPECT_EQ(last["delta"], json::object());
  EXPECT_EQ(last["finish_reason"], "tool_calls");
}

TEST_F(EmulatorTest, ForcedToolChoiceCallsTheNamedFunctionWithSchemaArguments) {
  Start();
  json req = ChatRequest("What is the weather?");
  req["tools"] = json::array({WeatherTool()});
  req["tool_choice"] = {{"type", "function"}, {"function", {{"name", "get_weather"}}}};
  json j = Chat(req).Json();
  const json& message = j["choices"][0]["message"];
  EXPECT_TRUE(message["content"].is_null());
  ASSERT_EQ(message["tool_calls"].size(), 1u);
  EXPECT_EQ(message["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(message["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            json::parse(R"({"location": "example", "unit": "celsius"})"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(EmulatorTest, ToolsWithoutACallLineAnswerWithText) {
  Start();
  json req = ChatRequest("Just chat.");
  req["tools"] = json::array({WeatherTool()});
  json j = Chat(req).Json();
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Just chat.");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
}

TEST_F(EmulatorTest, MaxTokensCutsTheReplyWithFinishReasonLength) {
  Start({.usage_counting = UsageCountingMode::kWords});
  json req = ChatRequest("one two three four five");
  req["max_completion_tokens"] = 2;
  json j = Chat(req).Json();
  EXPECT_EQ(j["choices"][0]["message"]["content"], "one two");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
}

TEST_F(EmulatorTest, InvalidJsonIs400InvalidRequestError) {
  Start();
  Reply r = Call("POST", "/v1/chat/completions", "{not json", {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 400);
  json e = r.Json()["error"];
  EXPECT_EQ(e["type"], "invalid_request_error");
  EXPECT_TRUE(e.contains("param"));
  EXPECT_TRUE(e.contains("code"));
  EXPECT_NE(e["message"].get<std::string>().find("could not parse the JSON body"),
            std::string::npos);
}

TEST_F(EmulatorTest, MissingMessagesNamesTheParam) {
  Start();
  Reply r = Chat(json{{"model", "gpt-4o-mini"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"]["param"], "messages");
  EXPECT_EQ(r.Json()["error"]["code"], "missing_required_parameter");
}

TEST_F(EmulatorTest, ApiKeyIsCheckedWhenConfigured) {
  Start({.api_key = "sk-test-123"});
  Reply none = Chat(ChatRequest("x"));
  EXPECT_EQ(none.status, 401);
  Reply wrong = Chat(ChatRequest("x"), {"Authorization: Bearer wrong-key"});
  EXPECT_EQ(wrong.status, 401);
  EXPECT_EQ(wrong.Json()["error"]["code"], "invalid_api_key");
  EXPECT_EQ(wrong.Json()["error"]["type"], "invalid_request_error");
  EXPECT_NE(wrong.Json()["error"]["message"].get<std::string>().find("wro****ey"),
            std::string::npos);
  EXPECT_EQ(Chat(ChatRequest("x"), {"Authorization: Bearer sk-test-123"}).status, 200);
}

TEST_F(EmulatorTest, InjectedStatusesUseOpenAiErrorBodies) {
  Start();
  struct Case {
    int status;
    const char* type;
  } cases[] = {{400, "invalid_request_error"}, {401, "invalid_request_error"},
               {429, "requests"}, {500, "server_error"}, {503, "server_error"}};
  for (const Case& c : cases) {
    Reply r = Chat(ChatRequest("x"), {"x-emulator-status: " + std::to_string(c.status)});
    EXPECT_EQ(r.status, c.status);
    json e = r.Json()["error"];
    EXPECT_EQ(e["type"], c.type) << c.status;
    EXPECT_FALSE(e["message"].get<std::string>().empty());
    EXPECT_EQ(r.HasHeader("retry-after: 1"), c.status == 429 || c.status == 503) << r.headers;
  }
  Reply custom = Chat(ChatRequest("x"), {"x-emulator-status: 429", "x-emulator-retry-after: 7",
                                         "x-emulator-error-type: insufficient_quota",
                                         "x-emulator-error-code: insufficient_quota",
                                         "x-emulator-error-message: No credit."});
  EXPECT_TRUE(custom.HasHeader("retry-after: 7"));
  EXPECT_EQ(custom.Json()["error"],
            json::parse(R"({"message": "No credit.", "type": "insufficient_quota",
                            "param": null, "code": "insufficient_quota"})"));
}

TEST_F(EmulatorTest, BadControlHeaderIs400NamingTheHeader) {
  Start();
  Reply r = Chat(ChatRequest("x"), {"x-emulator-chunks: lots"});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"]["param"], "x-emulator-chunks");
}

TEST_F(EmulatorTest, ResetBeforeTheResponseFailsTheTransfer) {
  Start();
  Reply r = Chat(ChatRequest("x"), {"x-emulator-fail: reset"});
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.body.empty());
}

TEST_F(EmulatorTest, ResetMidStreamCutsTheBody) {
  Start();
  Reply r = Chat(ChatRequest("a b c d e f", true), {"x-emulator-fail: reset-mid"});
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("chat.completion.chunk"), std::string::npos);
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  EXPECT_TRUE(Eventually([&] { return emulator_->stats().aborted >= 1; }));
}

TEST_F(EmulatorTest, StallWithDurationThenCompletes) {
  Start();
  Reply r = Chat(ChatRequest("a b", true), {"x-emulator-fail: stall", "x-emulator-stall-ms: 60"});
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.Events().back(), "[DONE]");
  EXPECT_GE(r.arrivals.back().first - r.started, std::chrono::milliseconds(60));
}

TEST_F(EmulatorTest, StallForeverSendsHeadersThenNothingAndNoticesTheClientLeaving) {
  Start();
  Reply r = Chat(ChatRequest("a b", true), {"x-emulator-fail: stall"}, /*timeout_ms=*/300);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  curl_easy_reset(curl_);  // forget the dead connection: closes our end
  curl_easy_cleanup(curl_);
  curl_ = curl_easy_init();
  EXPECT_TRUE(Eventually([&] { return emulator_->stats().aborted >= 1; }));
}

TEST_F(EmulatorTest, StallMidStreamSendsHalfTheEvents) {
  Start();
  Reply r = Chat(ChatRequest("a b c d", true), {"x-emulator-fail: stall-mid"}, 300);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_NE(r.body.find("chat.completion.chunk"), std::string::npos);
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
}

TEST_F(EmulatorTest, StallFirstByteSendsNothing) {
  Start();
  Reply r = Chat(ChatRequest("x"), {"x-emulator-fail: stall-first-byte"}, 300);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.headers.empty());
}

TEST_F(EmulatorTest, StopClosesConnectionsStalledForever) {
  Start();
  std::thread stopper([this] {
    Eventually([&] { return emulator_->stats().requests >= 1; });
    emulator_->Stop();
  });
  Reply r = Chat(ChatRequest("x"), {"x-emulator-fail: stall-first-byte"}, 10000);
  stopper.join();
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_NE(r.code, CURLE_OPERATION_TIMEDOUT);
}

TEST_F(EmulatorTest, ClientLeavingMidStreamIsCountedAsAborted) {
  Start();
  Reply r = Chat(ChatRequest("w w w w w w w w w w", true),
                 {"x-emulator-chunk-interval-ms: 100"}, /*timeout_ms=*/250);
  EXPECT_EQ(r.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_NE(r.body.find("chat.completion.chunk"), std::string::npos);
  curl_easy_cleanup(curl_);  // closes the connection if curl kept it
  curl_ = curl_easy_init();
  EXPECT_TRUE(Eventually([&] { return emulator_->stats().aborted >= 1; }));
}

TEST_F(EmulatorTest, Http10ClientsGetAStreamEndedByClose) {
  Start();
  curl_easy_setopt(curl_, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_0);
  Reply r = Chat(ChatRequest("a b", true));
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_FALSE(r.HasHeader("transfer-encoding")) << r.headers;
  EXPECT_TRUE(r.HasHeader("connection: close")) << r.headers;
  EXPECT_EQ(r.Events().back(), "[DONE]");
}

TEST_F(EmulatorTest, BodyOverTheLimitIs413) {
  Start({.max_body_bytes = 1024});
  std::string big = ChatRequest(std::string(2000, 'x')).dump();
  Reply r = Call("POST", "/v1/chat/completions", big, {"Content-Type: application/json"});
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.Json()["error"]["type"], "invalid_request_error");
  // With Expect: 100-continue the client learns it before sending the body.
  Reply e = Call("POST", "/v1/chat/completions", big,
                 {"Content-Type: application/json", "Expect: 100-continue"});
  EXPECT_EQ(e.status, 413);
}

TEST_F(EmulatorTest, ExpectContinueIsAnswered) {
  Start();
  Reply r = Call("POST", "/v1/chat/completions", ChatRequest("x").dump(),
                 {"Content-Type: application/json", "Expect: 100-continue"});
  EXPECT_EQ(r.status, 200);
  EXPECT_LT(r.arrivals.back().first - r.started, std::chrono::milliseconds(900))
      << "the client waited for its 100-continue timeout";
}

TEST_F(EmulatorTest, KeepAliveReusesTheConnection) {
  Start();
  EXPECT_EQ(Chat(ChatRequest("x")).new_connections, 1);
  EXPECT_EQ(Chat(ChatRequest("x", true)).new_connections, 0);
  EXPECT_EQ(Chat(ChatRequest("x")).new_connections, 0);
  EXPECT_EQ(emulator_->stats().connections, 1u);
}

TEST_F(EmulatorTest, StatsRecordWhatWasForwardedUnknownFieldsIncluded) {
  Start();
  json req = ChatRequest("x");
  req["vendor_extension"] = {{"keep", "me"}};
  Chat(req, {"X-Trace: abc"});
  EmulatorStats stats = emulator_->stats();
  EXPECT_EQ(stats.requests, 1u);
  ASSERT_EQ(stats.recent.size(), 1u);
  EXPECT_EQ(json::parse(stats.recent[0].body)["vendor_extension"]["keep"], "me");
  Reply s = Call("GET", "/emulator/stats", "");
  json j = s.Json();
  EXPECT_EQ(j["requests"], 1);  // /emulator/* is not counted
  EXPECT_EQ(j["last_request"]["target"], "/v1/chat/completions");
  EXPECT_EQ(j["last_request"]["headers"]["x-trace"], "abc");
  EXPECT_EQ(json::parse(j["last_request"]["body"].get<std::string>()), req);
  EXPECT_EQ(Call("POST", "/emulator/reset", "").status, 200);
  EXPECT_EQ(emulator_->stats().requests, 0u);
}

TEST_F(EmulatorTest, QueuedControlsApplyToTheNextRequestsOnly) {
  Start();
  emulator_->QueueControls({{"x-emulator-status", "503"}}, 2);
  EXPECT_EQ(Chat(ChatRequest("x")).status, 503);
  EXPECT_EQ(Chat(ChatRequest("x")).status, 503);
  EXPECT_EQ(Chat(ChatRequest("x")).status, 200);
  Reply queued = Call("POST", "/emulator/next",
                      R"({"times": 1, "headers": {"x-emulator-status": "429"}})");
  EXPECT_EQ(queued.status, 200);
  EXPECT_EQ(Call("GET", "/v1/models", "").status, 429);
  EXPECT_EQ(Chat(ChatRequest("x")).status, 200);
  EXPECT_EQ(Call("POST", "/emulator/next", R"({"headers": {"x-emulator-bogus": "1"}})").status,
            400);
}

TEST_F(EmulatorTest, ModelsListIsOpenAiListFormat) {
  Start({.models = {"gpt-a", "gpt-b"}});
  json j = Call("GET", "/v1/models", "").Json();
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0]["id"], "gpt-a");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_TRUE(j["data"][0]["created"].is_number_integer());
  EXPECT_EQ(j["data"][0]["owned_by"], "system");
}

TEST_F(EmulatorTest, UnknownRouteIs404InvalidUrl) {
  Start();
  Reply r = Call("POST", "/v1/nothing", "{}");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Json()["error"]["message"], "Invalid URL (POST /v1/nothing)");
}

TEST_F(EmulatorTest, StartRejectsABadHost) {
  auto started = Emulator::Start(io_, {.host = "not an address"});
  EXPECT_EQ(started.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EmulatorTest, StartReportsABusyPort) {
  Start();
  auto second = Emulator::Start(io_, {.port = emulator_->port()});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

// --- scripts over HTTP ----------------------------------------------------------------------

std::string ScriptHeader(const std::string& script) { return "x-emulator-script: " + script; }

TEST_F(EmulatorTest, ScriptedSequenceFailsThenSucceedsPerId) {
  Start();
  const std::string script = ScriptHeader(
      R"({"id": "retry-1", "steps": [{"error": {"status": 503, "retry_after": 2}}, )"
      R"({"reply": "recovered"}]})");  // one line: a header value cannot hold a newline
  Reply first = Chat(ChatRequest("x"), {script});
  EXPECT_EQ(first.status, 503);
  EXPECT_TRUE(first.HasHeader("retry-after: 2")) << first.headers;
  EXPECT_EQ(first.Json()["error"]["type"], "server_error");
  Reply second = Chat(ChatRequest("x"), {script});
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.Json()["choices"][0]["message"]["content"], "recovered");
  EXPECT_EQ(Chat(ChatRequest("x"), {script}).status, 200);  // the last step repeats
  // /emulator/reset starts every sequence over.
  EXPECT_EQ(Call("POST", "/emulator/reset", "").status, 200);
  EXPECT_EQ(Chat(ChatRequest("x"), {script}).status, 503);
}

TEST_F(EmulatorTest, ScriptedErrorEventEndsTheStreamWithoutDone) {
  Start();
  Reply r = Chat(ChatRequest("a b c d e f", true),
                 {ScriptHeader(R"({"interrupt": {"after_chunks": 2, "error": {}}})")});
  ASSERT_EQ(r.code, CURLE_OK);  // a well-formed body that ends early
  EXPECT_EQ(r.status, 200);
  std::vector<std::string> events = r.Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(json::parse(events[2])["error"]["type"], "server_error");
}

TEST_F(EmulatorTest, ScriptedResetAfterNChunks) {
  Start();
  Reply r = Chat(ChatRequest("a b c d e f", true),
                 {ScriptHeader(R"({"interrupt": {"after_chunks": 3, "reset": true}})")});
  EXPECT_NE(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  size_t events = 0;
  for (size_t pos = 0; (pos = r.body.find("data: ", pos)) != std::string::npos; pos += 6) {
    ++events;
  }
  EXPECT_EQ(events, 3u);
  EXPECT_EQ(r.body.find("[DONE]"), std::string::npos);
  EXPECT_TRUE(Eventually([&] { return emulator_->stats().aborted >= 1; }));
}

TEST_F(EmulatorTest, ScriptsCanBeQueued) {
  Start();
  json next = {{"times", 1},
               {"headers", {{"x-emulator-script", R"({"refusal": "Not today."})"}}}};
  EXPECT_EQ(Call("POST", "/emulator/next", next.dump()).status, 200);
  EXPECT_EQ(Chat(ChatRequest("x")).Json()["choices"][0]["message"]["refusal"], "Not today.");
  EXPECT_TRUE(Chat(ChatRequest("x")).Json()["choices"][0]["message"]["refusal"].is_null());
  next["headers"]["x-emulator-script"] = R"({"reply": 1})";
  Reply bad = Call("POST", "/emulator/next", next.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.Json()["error"]["message"],
            "x-emulator-script: reply: expected a string, got 1");
}

TEST_F(EmulatorTest, TheCounterInUseIsReported) {
  Start({.usage_counting = UsageCountingMode::kWords});
  EXPECT_EQ(emulator_->usage_counter(), "words");
  EXPECT_TRUE(Chat(ChatRequest("x")).HasHeader("x-emulator-token-counter: words"));
}

TEST_F(EmulatorTest, TokenizerModeNeedsItsRankFiles) {
  EmulatorOptions options;
  options.usage_counting = UsageCountingMode::kTokenizer;
  options.encoding.tokenizer_dir = "/nonexistent/emulator-test";
  options.encoding.tiktoken_cache_dir = "/nonexistent/emulator-test";
  auto started = Emulator::Start(io_, std::move(options));
  EXPECT_EQ(started.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(started.status().message().find("usage_counting: tokenizer unavailable"),
            std::string::npos)
      << started.status();
}

TEST_F(EmulatorTest, TokenizerCountsByDefaultWhenRankFilesAreFound) {
  Start();
  if (emulator_->usage_counter() != "tokenizer") {
    GTEST_SKIP() << "tokenizer rank files not found (MODEENVOY_TOKENIZER_DIR); ctest sets it";
  }
  Reply r = Chat(ChatRequest("What is 1 + 1?"));
  EXPECT_TRUE(r.HasHeader("x-emulator-token-counter: o200k_base")) << r.headers;
  // tiktoken o200k_base with OpenAI's chat overhead: 3 + (1 + 3) + 3 + (1 + 8) + 3.
  EXPECT_EQ(r.Json()["usage"]["prompt_tokens"], 22);
  EXPECT_EQ(r.Json()["usage"]["completion_tokens"], 8);
}


// --- Server-wide seeded fault profiles (EmulatorOptions::faults / fault_profiles) -------

// The draw of emulator.h's FaultProfile comment, written out here from that text.
double FaultDraw(uint64_t seed, uint64_t n) {
  uint64_t z = seed + (n + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) / 9007199254740992.0;  // 2^53
}

TEST_F(EmulatorTest, FaultProfileUnderItsPrefixAnswersTheSeededFaults) {
  EmulatorOptions options;
  options.fault_profiles["flaky"] = {.server_error = 0.5, .reset = 0.25, .seed = 3};
  Start(std::move(options));
  // A fresh connection per request: libcurl silently sends a request again when a reused
  // connection is reset before any byte, which would draw the next fault.
  curl_easy_setopt(curl_, CURLOPT_FORBID_REUSE, 1L);
  int errors = 0, resets = 0, fine = 0;
  for (uint64_t n = 0; n < 24; ++n) {
    Reply r = Call("POST", "/faults/flaky/v1/chat/completions", ChatRequest("x").dump(),
                   {"Content-Type: application/json"});
    const double u = FaultDraw(3, n);
    if (u < 0.5) {
      EXPECT_EQ(r.status, 500) << n;
      EXPECT_EQ(r.Json()["error"]["type"], "server_error");
      ++errors;
    } else if (u < 0.75) {
      EXPECT_NE(r.code, CURLE_OK) << n;
      EXPECT_EQ(r.status, 0) << n;
      ++resets;
    } else {
      EXPECT_EQ(r.status, 200) << n << r.body;
      ++fine;
    }
  }
  // The seed gives each outcome at least once in 24 draws (else the test proves less).
  EXPECT_GT(errors, 0);
  EXPECT_GT(resets, 0);
  EXPECT_GT(fine, 0);
  // The unprefixed routes have no faults; controls a request carries win over a draw.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Chat(ChatRequest("x")).status, 200);
  Reply own = Call("POST", "/faults/flaky/v1/chat/completions", ChatRequest("x").dump(),
                   {"Content-Type: application/json", "x-emulator-status: 418"});
  EXPECT_EQ(own.status, 418);
  // An unknown profile is a 404.
  Reply unknown = Call("POST", "/faults/nope/v1/chat/completions", ChatRequest("x").dump(),
                       {"Content-Type: application/json"});
  EXPECT_EQ(unknown.status, 404);
}

TEST_F(EmulatorTest, ServerWideRateLimitBurstsCarryRetryAfter) {
  EmulatorOptions options;
  options.faults = {.burst = 2, .burst_period = 5, .retry_after_seconds = 3};
  Start(std::move(options));
  // Of every 5 provider requests the first 2 are 429s.
  const int expected[] = {429, 429, 200, 200, 200, 429, 429, 200};
  for (int i = 0; i < 8; ++i) {
    Reply r = Chat(ChatRequest("x"));
    EXPECT_EQ(r.status, expected[i]) << i;
    if (expected[i] == 429) {
      EXPECT_TRUE(r.HasHeader("retry-after: 3")) << r.headers;
      EXPECT_EQ(r.Json()["error"]["code"], "rate_limit_exceeded");
    }
  }
  // /emulator/* is not a provider request and draws nothing; reset restarts the sequence.
  EXPECT_EQ(Call("POST", "/emulator/reset", "").status, 200);
  EXPECT_EQ(Chat(ChatRequest("x")).status, 429);
}

TEST(FaultProfileSpec, ParsesEveryItemAndNamesTheBadOne) {
  absl::StatusOr<FaultProfile> p =
      ParseFaultProfile("5xx=0.3, reset=0.1,timeout=0.05,429=5/20,retry_after=2,seed=9");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_DOUBLE_EQ(p->server_error, 0.3);
  EXPECT_DOUBLE_EQ(p->reset, 0.1);
  EXPECT_DOUBLE_EQ(p->timeout, 0.05);
  EXPECT_EQ(p->burst, 5);
  EXPECT_EQ(p->burst_period, 20);
  EXPECT_EQ(p->retry_after_seconds, 2);
  EXPECT_EQ(p->seed, 9u);
  EXPECT_FALSE(ParseFaultProfile("").value().enabled());
  struct Bad {
    const char* spec;
    const char* message;
  } bad[] = {{"5xx=2", "\"5xx=2\": a share must be in [0, 1]"},
             {"5xx=0.6,reset=0.6", "5xx + reset + timeout must not exceed 1"},
             {"429=3/2", "\"429=3/2\": B must be <= P"},
             {"429=x", "expected 429=B/P"},
             {"slow=1", "\"slow=1\": unknown fault"},
             {"5xx", "\"5xx\": expected NAME=VALUE"}};
  for (const Bad& b : bad) {
    absl::StatusOr<FaultProfile> r = ParseFaultProfile(b.spec);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << b.spec;
    EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr(b.message)) << b.spec;
  }
}

}  // namespace
}  // namespace modeenvoy::emulator
