// The emulator's Gemini dialect over real HTTP: AI Studio and Vertex AI paths, SSE and JSON
// array streams, Google's error shape, strict validation, scripts, usage as Gemini reports it.
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
#include "modeenvoy/clock.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/framing.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

struct Reply {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string headers;
  std::string body;
  json Json() const { return json::parse(body); }
  bool HasHeader(const std::string& line) const { return headers.find(line) != std::string::npos; }
  // SSE data payloads ("data: X\r\n\r\n" each).
  std::vector<json> Events() const {
    std::vector<json> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find("\r\n\r\n", pos);
      if (end == std::string::npos) break;
      std::string event = body.substr(pos, end - pos);
      EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
      out.push_back(json::parse(event.substr(6)));
      pos = end + 4;
    }
    EXPECT_EQ(pos, body.size()) << "trailing bytes";
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

constexpr char kModel[] = "/v1beta/models/gemini-2.5-flash";
constexpr char kVertex[] =
    "/v1/projects/proj/locations/us-central1/publishers/google/models/gemini-2.5-pro";

json Request(const std::string& text) {
  json req = json::parse(R"({"systemInstruction": {"parts": [{"text": "Be brief."}]},
                            "contents": [{"role": "user", "parts": [{"text": ""}]}]})");
  req["contents"][0]["parts"][0]["text"] = text;
  return req;
}

class GeminiEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { curl_ = curl_easy_init(); }
  void TearDown() override {
    if (emulator_ != nullptr) emulator_->Stop();
    emulator_.reset();
    work_.reset();
    if (thread_.joinable()) thread_.join();
    curl_easy_cleanup(curl_);
  }
  void Start(EmulatorOptions options = {}) {
    options.usage_counting = UsageCountingMode::kWords;
    auto started = Emulator::Start(io_, std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
  }
  Reply Call(const std::string& method, const std::string& target, const std::string& body,
             std::vector<std::string> headers = {"x-goog-api-key: k"}) {
    Reply r;
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    std::string url = "http://127.0.0.1:" + std::to_string(emulator_->port()) + target;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    if (method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    } else {
      curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
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
  Reply Generate(const json& body, const std::string& suffix = ":generateContent",
                 std::vector<std::string> headers = {"x-goog-api-key: k"}) {
    return Call("POST", std::string(kModel) + suffix, body.dump(), std::move(headers));
  }

  // The unified events the project's own "gemini" dialect makes of a stream body.
  static std::vector<std::string> Translate(const std::string& body, bool json_array) {
    auto dialect = NewDialect("gemini", json_array ? R"({"stream_framing":"json_array"})" : "{}");
    EXPECT_TRUE(dialect.ok());
    auto parser = NewFrameParser((*dialect)->ResponseFraming(true));
    auto decoder = (*dialect)->NewStreamDecoder();
    std::vector<StreamFrame> frames;
    EXPECT_TRUE((*parser)->Feed(body, &frames).ok());
    EXPECT_TRUE((*parser)->Finish(&frames).ok());
    std::vector<SseEvent> events;
    for (StreamFrame& f : frames) EXPECT_TRUE(decoder->Translate(std::move(f), &events).ok());
    EXPECT_TRUE(decoder->Finish(&events).ok());
    std::vector<std::string> out;
    for (const SseEvent& e : events) out.push_back(e.data);
    return out;
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<Emulator> emulator_;
  CURL* curl_ = nullptr;
};

TEST_F(GeminiEmulatorTest, WholeResponseHasGeminisShapeAndUsage) {
  FakeClock clock(absl::FromUnixSeconds(1770933883));
  Start({.clock = &clock});
  Reply r = Generate(Request("What is one plus one?"));
  ASSERT_EQ(r.code, CURLE_OK);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.HasHeader("content-type: application/json; charset=UTF-8")) << r.headers;
  json j = r.Json();
  const json& c = j["candidates"][0];
  EXPECT_EQ(c["content"]["role"], "model");
  EXPECT_EQ(c["content"]["parts"], json::parse(R"([{"text": "What is one plus one?"}])"));
  EXPECT_EQ(c["finishReason"], "STOP");
  EXPECT_EQ(c["index"], 0);
  // Words: "Be brief." 2 + 5 in; 5 out.
  EXPECT_EQ(j["usageMetadata"]["promptTokenCount"], 7);
  EXPECT_EQ(j["usageMetadata"]["candidatesTokenCount"], 5);
  EXPECT_EQ(j["usageMetadata"]["totalTokenCount"], 12);
  EXPECT_EQ(j["modelVersion"], "gemini-2.5-flash");
  EXPECT_EQ(j["responseId"].get<std::string>().size(), 23u);
  EXPECT_FALSE(j.contains("createTime"));  // AI Studio sends none; Vertex does
}

TEST_F(GeminiEmulatorTest, StreamsAsSseOrAsOneJsonArray) {
  Start();
  json req = Request("one two three");
  Reply sse = Generate(req, ":streamGenerateContent?alt=sse");
  ASSERT_EQ(sse.status, 200) << sse.body;
  EXPECT_TRUE(sse.HasHeader("content-type: text/event-stream")) << sse.headers;
  std::vector<json> events = sse.Events();
  ASSERT_EQ(events.size(), 4u);  // three words, then the finish element
  std::string text;
  for (const json& e : events) text += e["candidates"][0]["content"]["parts"][0]["text"];
  EXPECT_EQ(text, "one two three");
  EXPECT_EQ(events.back()["candidates"][0]["finishReason"], "STOP");
  EXPECT_EQ(events.back()["usageMetadata"]["totalTokenCount"], 2 + 3 + 3);

  Reply array = Generate(req, ":streamGenerateContent");
  ASSERT_EQ(array.status, 200) << array.body;
  EXPECT_TRUE(array.HasHeader("content-type: application/json; charset=UTF-8")) << array.headers;
  json elements = array.Json();
  ASSERT_TRUE(elements.is_array());
  ASSERT_EQ(elements.size(), 4u);
  EXPECT_NE(array.body.find("\n,\r\n"), std::string::npos);  // Google's separator
  // The project's translator reads both the same way.
  std::vector<std::string> a = Translate(sse.body, false);
  std::vector<std::string> b = Translate(array.body, true);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a.back(), "[DONE]");
}

TEST_F(GeminiEmulatorTest, ValidatesLikeTheApi) {
  Start();
  auto expect_400 = [&](const json& body, const std::string& message_part) {
    Reply r = Generate(body);
    EXPECT_EQ(r.status, 400) << body.dump();
    json e = r.Json();
    EXPECT_EQ(e["error"]["code"], 400);
    EXPECT_EQ(e["error"]["status"], "INVALID_ARGUMENT");
    EXPECT_NE(e["error"]["message"].get<std::string>().find(message_part), std::string::npos)
        << e.dump();
  };
  expect_400(json::parse(R"({"contents": []})"), "contents is not specified");
  expect_400(json::parse(R"({"contents": [{"role": "user", "parts": [{"text": "x"}]}], "foo": 1})"),
             "Unknown name \"foo\"");
  expect_400(json::parse(R"({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]})"),
             "valid role");
  expect_400(json::parse(R"({"contents": [{"role": "user", "parts": [{"functionResponse":
             {"name": "f", "response": {}}}]}]})"),
             "function response turn comes immediately after a function call turn");
  expect_400(json::parse(R"({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
             "generationConfig": {"temperature": 3}})"),
             "temperature");
  expect_400(json::parse(R"({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
             "tools": [{"functionDeclarations": [{"name": "f", "parameters":
             {"type": "object", "additionalProperties": false}}]}]})"),
             "additionalProperties");
  // snake_case is proto JSON too.
  Reply ok = Generate(json::parse(R"({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
                                     "generation_config": {"max_output_tokens": 5}})"));
  EXPECT_EQ(ok.status, 200) << ok.body;
}

TEST_F(GeminiEmulatorTest, KeysAndVertexBearerTokens) {
  Start({.api_key = "secret"});
  Reply none = Generate(Request("x"), ":generateContent", {});
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.Json()["error"]["status"], "PERMISSION_DENIED");
  Reply wrong = Generate(Request("x"), ":generateContent", {"x-goog-api-key: nope"});
  EXPECT_EQ(wrong.status, 400);
  EXPECT_EQ(wrong.Json()["error"]["details"][0]["reason"], "API_KEY_INVALID");
  EXPECT_EQ(Generate(Request("x"), ":generateContent", {"x-goog-api-key: secret"}).status, 200);
  Reply query = Call("POST", std::string(kModel) + ":generateContent?key=secret",
                     Request("x").dump(), {});
  EXPECT_EQ(query.status, 200);
  Reply vx = Call("POST", std::string(kVertex) + ":generateContent", Request("x").dump(),
                  {"Authorization: Bearer secret"});
  ASSERT_EQ(vx.status, 200) << vx.body;
  EXPECT_TRUE(vx.Json().contains("createTime"));
  Reply vx_bad = Call("POST", std::string(kVertex) + ":generateContent", Request("x").dump(),
                      {"x-goog-api-key: secret"});
  EXPECT_EQ(vx_bad.status, 401);
  EXPECT_EQ(vx_bad.Json()["error"]["status"], "UNAUTHENTICATED");
}

TEST_F(GeminiEmulatorTest, ScriptsWorkInGeminisFormats) {
  Start();
  // Tool calls from a directive: whole functionCall parts.
  json tools = json::parse(R"([{"functionDeclarations": [{"name": "get_weather",
      "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}]}])");
  json req = Request("Weather?\n@emulator {\"tool_calls\": [{\"name\": \"get_weather\", "
                     "\"arguments\": {\"city\": \"Paris\"}}]}");
  req["tools"] = tools;
  json j = Generate(req).Json();
  EXPECT_EQ(j["candidates"][0]["content"]["parts"][0]["functionCall"],
            json::parse(R"({"name": "get_weather", "args": {"city": "Paris"}})"));
  EXPECT_EQ(j["candidates"][0]["finishReason"], "STOP");

  // A 429 with its retry delay in google.rpc.RetryInfo (and the header).
  Reply limited = Generate(Request("x"), ":generateContent",
                           {"x-goog-api-key: k",
                            R"(x-emulator-script: {"error": {"status": 429, "retry_after": 7}})"});
  EXPECT_EQ(limited.status, 429);
  json err = limited.Json()["error"];
  EXPECT_EQ(err["status"], "RESOURCE_EXHAUSTED");
  bool retry_info = false;
  for (const json& d : err["details"]) {
    if (d["@type"] == "type.googleapis.com/google.rpc.RetryInfo") {
      retry_info = d["retryDelay"] == "7s";
    }
  }
  EXPECT_TRUE(retry_info) << err.dump();

  // A mid-stream error: the elements so far, then Google's error object.
  const std::string interrupt =
      R"(x-emulator-script: {"reply": "a b c d", "interrupt": {"after_chunks": 2, "error": {"status": 503}}})";
  Reply sse = Generate(Request("x"), ":streamGenerateContent?alt=sse", {"x-goog-api-key: k", interrupt});
  std::vector<json> events = sse.Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2]["error"]["code"], 503);
  Reply array = Generate(Request("x"), ":streamGenerateContent", {"x-goog-api-key: k", interrupt});
  json elements = array.Json();
  ASSERT_EQ(elements.size(), 3u) << array.body;
  EXPECT_EQ(elements[2]["error"]["status"], "UNAVAILABLE");

  // Reasoning surfaces as thought parts only when the request asks for thoughts.
  json think = Request("x");
  think["generationConfig"] = {{"thinkingConfig", {{"includeThoughts", true}}}};
  Reply reasoned = Generate(think, ":generateContent",
                            {"x-goog-api-key: k", R"(x-emulator-script: {"reasoning": "hmm yes", "reply": "2"})"});
  json rj = reasoned.Json();
  EXPECT_EQ(rj["candidates"][0]["content"]["parts"][0],
            json::parse(R"({"text": "hmm yes", "thought": true})"));
  EXPECT_EQ(rj["usageMetadata"]["thoughtsTokenCount"], 2);
  EXPECT_EQ(rj["usageMetadata"]["candidatesTokenCount"], 1);
}

TEST_F(GeminiEmulatorTest, FunctionResponsesMustAnswerEveryCall) {
  Start();
  json req = json::parse(R"({"contents": [
    {"role": "user", "parts": [{"text": "weather in Paris and Rome"}]},
    {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"c": "Paris"}}},
                                {"functionCall": {"name": "w", "args": {"c": "Rome"}}}]},
    {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"t": 20}}}]}]})");
  EXPECT_EQ(Generate(req).status, 400);
  req["contents"][2]["parts"].push_back(
      json::parse(R"({"functionResponse": {"name": "w", "response": {"t": 25}}})"));
  Reply ok = Generate(req);
  ASSERT_EQ(ok.status, 200) << ok.body;
  // The echo of a tool turn is its responses.
  EXPECT_NE(ok.Json()["candidates"][0]["content"]["parts"][0]["text"].get<std::string>().find("25"),
            std::string::npos);
}

}  // namespace
}  // namespace modeenvoy::emulator

namespace modeenvoy::emulator {
namespace {

TEST_F(GeminiEmulatorTest, MembersOfTheWrongTypeAre400s) {
  Start();
  for (const char* body : {
           R"({"contents":[{"role":5,"parts":[{"text":"x"}]}]})",
           R"({"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"responseMimeType":7}})",
           R"({"contents":[{"role":"user","parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":1}}})",
       }) {
    Reply r = Call("POST", std::string(kModel) + ":generateContent", body);
    EXPECT_EQ(r.status, 400) << body << "\n" << r.body;
    EXPECT_EQ(r.Json()["error"]["status"], "INVALID_ARGUMENT");
  }
}

}  // namespace
}  // namespace modeenvoy::emulator
