// The emulator's KServe / Triton dialect over real HTTP: v2 infer, generate, generate_stream,
// metadata and health, validated as Triton validates an ensemble model's inputs.
#include <curl/curl.h>

#include <string>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "examples/emulator/emulator.h"
#include "gtest/gtest.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

struct Reply {
  long status = 0;
  std::string headers;
  std::string body;
  json Json() const { return json::parse(body); }
  // The `data:` payloads of an SSE body, in order.
  std::vector<json> Events() const {
    std::vector<json> out;
    size_t pos = 0;
    while (pos < body.size()) {
      size_t end = body.find("\n\n", pos);
      if (end == std::string::npos) break;
      EXPECT_EQ(body.compare(pos, 6, "data: "), 0) << body;
      out.push_back(json::parse(body.substr(pos + 6, end - pos - 6)));
      pos = end + 2;
    }
    EXPECT_EQ(pos, body.size()) << "trailing bytes after the last event";
    return out;
  }
};

size_t Append(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

class KserveEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmulatorOptions options;
    options.usage_counting = UsageCountingMode::kWords;
    auto started = Emulator::Start(io_, std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
    curl_ = curl_easy_init();
  }
  void TearDown() override {
    curl_easy_cleanup(curl_);
    emulator_->Stop();
    if (thread_.joinable()) thread_.join();
  }

  Reply Call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::vector<std::string>& headers = {}) {
    Reply r;
    curl_easy_reset(curl_);
    curl_slist* list = nullptr;
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    const std::string url = "http://127.0.0.1:" + std::to_string(emulator_->port()) + path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    if (method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, Append);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, Append);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode code = curl_easy_perform(curl_);
    EXPECT_EQ(code, CURLE_OK) << curl_easy_strerror(code);
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    return r;
  }

  boost::asio::io_context io_;
  std::unique_ptr<Emulator> emulator_;
  std::thread thread_;
  CURL* curl_ = nullptr;
};

std::string ChatMl(const std::string& user) {
  return "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n" + user +
         "<|im_end|>\n<|im_start|>assistant\n";
}

json Tensor(const std::string& name, const std::string& datatype, json data) {
  json shape = json::array({data.size()});
  return {{"name", name}, {"shape", shape}, {"datatype", datatype}, {"data", std::move(data)}};
}

json Infer(const std::string& prompt, int max_tokens = 64) {
  return {{"inputs", {Tensor("text_input", "BYTES", {prompt}),
                      Tensor("max_tokens", "INT32", {max_tokens})}},
          {"outputs", {{{"name", "text_output"}}}}};
}

TEST_F(KserveEmulatorTest, InferAnswersTheLastUserTurnAsAV2Response) {
  json req = Infer(ChatMl("Hello kserve world"));
  req["id"] = "r-1";
  Reply r = Call("POST", "/v2/models/ensemble/infer", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json(), (json{{"model_name", "ensemble"},
                            {"model_version", "1"},
                            {"id", "r-1"},
                            {"outputs",
                             {{{"name", "text_output"}, {"datatype", "BYTES"}, {"shape", {1}},
                               {"data", {"Hello kserve world"}}}}}}));
  Reply versioned = Call("POST", "/v2/models/ensemble/versions/2/infer", Infer("plain").dump());
  ASSERT_EQ(versioned.status, 200) << versioned.body;
  EXPECT_EQ(versioned.Json()["model_version"], "2");
  EXPECT_FALSE(versioned.Json().contains("id"));
}

TEST_F(KserveEmulatorTest, InputsAreValidatedAsTritonDoes) {
  json wrong_type = Infer("x");
  wrong_type["inputs"][1]["datatype"] = "FP32";
  Reply r = Call("POST", "/v2/models/ensemble/infer", wrong_type.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.Json()["error"],
            "[request id: <id_unknown>] unexpected datatype TYPE_FP32 for inference input "
            "'max_tokens', expecting TYPE_INT32");

  json missing = Infer("x");
  missing["inputs"].erase(1);
  r = Call("POST", "/v2/models/ensemble/infer", missing.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.Json()["error"].get<std::string>().find("missing required input(s) ['max_tokens']"),
            std::string::npos) << r.body;

  json unknown = Infer("x");
  unknown["inputs"].push_back(Tensor("prompt", "BYTES", {"y"}));
  r = Call("POST", "/v2/models/ensemble/infer", unknown.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unexpected inference input 'prompt'"), std::string::npos) << r.body;

  json shape = Infer("x");
  shape["inputs"][0]["shape"] = {2};
  r = Call("POST", "/v2/models/ensemble/infer", shape.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("unexpected shape for input 'text_input'"), std::string::npos) << r.body;

  r = Call("POST", "/v2/models/ensemble/infer", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(r.Json()["error"].is_string());

  r = Call("POST", "/v2/models/ensemble/generate", R"({"text_input":"x","max_tokens":"many"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("Unable to parse 'max_tokens'"), std::string::npos) << r.body;
}

TEST_F(KserveEmulatorTest, GenerateAndGenerateStream) {
  json req = {{"text_input", ChatMl("one two three four")}, {"max_tokens", 50}};
  Reply whole = Call("POST", "/v2/models/ensemble/generate", req.dump());
  ASSERT_EQ(whole.status, 200) << whole.body;
  EXPECT_EQ(whole.Json()["text_output"], "one two three four");
  EXPECT_EQ(whole.Json()["model_name"], "ensemble");

  // Without the model's "stream" input, generate_stream sends the whole text at once.
  Reply once = Call("POST", "/v2/models/ensemble/generate_stream", req.dump());
  ASSERT_EQ(once.status, 200);
  EXPECT_NE(once.headers.find("text/event-stream"), std::string::npos);
  ASSERT_EQ(once.Events().size(), 1u);

  req["stream"] = true;
  req["return_num_input_tokens"] = true;
  req["return_num_output_tokens"] = true;
  Reply stream = Call("POST", "/v2/models/ensemble/generate_stream", req.dump());
  ASSERT_EQ(stream.status, 200);
  std::vector<json> events = stream.Events();
  ASSERT_EQ(events.size(), 4u);  // one per word
  std::string text;
  for (const json& e : events) text += e["text_output"].get<std::string>();
  EXPECT_EQ(text, "one two three four");
  // Counts on the last event: the prompt's words, then the reply's.
  EXPECT_EQ(events.back()["num_output_tokens"], 4);
  EXPECT_EQ(events.back()["num_input_tokens"], 9);
  EXPECT_FALSE(events.front().contains("num_output_tokens"));
}

TEST_F(KserveEmulatorTest, MaxTokensAndStopWordsEndTheText) {
  json req = {{"text_input", ChatMl("a b c d e")},
              {"max_tokens", 2},
              {"return_finish_reason", true}};
  Reply r = Call("POST", "/v2/models/ensemble/generate", req.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["text_output"], "a b");
  EXPECT_EQ(r.Json()["finish_reason"], "length");
  req["max_tokens"] = 20;
  req["stop_words"] = {" c"};
  r = Call("POST", "/v2/models/ensemble/generate", req.dump());
  EXPECT_EQ(r.Json()["text_output"], "a b");
  EXPECT_EQ(r.Json()["finish_reason"], "stop");
}

TEST_F(KserveEmulatorTest, ScriptsWorkInTritonsFormats) {
  // A directive inside the prompt's last user turn.
  Reply r = Call("POST", "/v2/models/ensemble/infer",
                 Infer(ChatMl("Hi\n@emulator {\"reply\": \"scripted\"}")).dump());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.Json()["outputs"][0]["data"][0], "scripted");

  r = Call("POST", "/v2/models/ensemble/infer", Infer("x").dump(),
           {R"(x-emulator-script: {"error": {"status": 429, "retry_after": 7}})"});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json(), (json{{"error", "Exceeds maximum queue size"}}));
  EXPECT_NE(r.headers.find("retry-after: 7"), std::string::npos) << r.headers;

  json req = {{"text_input", ChatMl("one two three four")}, {"max_tokens", 50}, {"stream", true}};
  r = Call("POST", "/v2/models/ensemble/generate_stream", req.dump(),
           {R"(x-emulator-script: {"interrupt": {"after_chunks": 2, "error": {"status": 500, "message": "boom"}}})"});
  ASSERT_EQ(r.status, 200);
  std::vector<json> events = r.Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[2], (json{{"error", "boom"}}));

  r = Call("POST", "/v2/models/ensemble/generate", req.dump(),
           {R"(x-emulator-script: {"reasoning": "think", "reply": "done"})"});
  EXPECT_EQ(r.Json()["text_output"], "<think>think</think>done");

  r = Call("POST", "/v2/models/ensemble/generate",
           json{{"text_input", ChatMl("@emulator {\"reply\": 3}")}, {"max_tokens", 5}}.dump());
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("text_input: @emulator directive: reply"), std::string::npos) << r.body;
}

TEST_F(KserveEmulatorTest, MetadataAndHealth) {
  Reply ready = Call("GET", "/v2/health/ready");
  EXPECT_EQ(ready.status, 200);
  EXPECT_EQ(ready.body, "");
  Reply meta = Call("GET", "/v2/models/ensemble");
  ASSERT_EQ(meta.status, 200);
  json m = meta.Json();
  EXPECT_EQ(m["name"], "ensemble");
  EXPECT_EQ(m["platform"], "ensemble");
  EXPECT_EQ(m["inputs"][0], (json{{"name", "text_input"}, {"datatype", "BYTES"}, {"shape", {1}}}));
  EXPECT_EQ(m["outputs"][0]["name"], "text_output");
  EXPECT_EQ(Call("GET", "/v2/models/ensemble/ready").status, 200);
  EXPECT_EQ(Call("GET", "/v2").Json()["name"], "triton");
}

}  // namespace
}  // namespace modeenvoy::emulator
