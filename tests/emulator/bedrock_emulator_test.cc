// The emulator's Bedrock Converse dialect over real HTTP: shapes, strict validation, auth
// (bearer API key or a SigV4-shaped Authorization), EventStream streaming and scripts.
#include <curl/curl.h>

#include <cctype>
#include <string>
#include <thread>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "examples/emulator/emulator.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/framing.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

struct Reply {
  long status = 0;
  std::string headers, body;
  json Json() const { return json::parse(body); }
  std::vector<StreamFrame> Frames() const {
    std::vector<StreamFrame> frames;
    auto parser = NewFrameParser(Framing::kEventStream);
    EXPECT_TRUE(parser.ok());
    EXPECT_TRUE((*parser)->Feed(body, &frames).ok());
    EXPECT_TRUE((*parser)->Finish(&frames).ok());
    return frames;
  }
};

size_t OnData(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

constexpr char kBearer[] = "Authorization: Bearer bedrock-api-key-test";

class BedrockEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EmulatorOptions options;
    options.usage_counting = UsageCountingMode::kWords;
    auto started = Emulator::Start(io_, options);
    ASSERT_TRUE(started.ok()) << started.status();
    emulator_ = std::move(*started);
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    emulator_->Stop();
    work_.reset();
    thread_.join();
  }

  Reply Post(const std::string& path, const json& body, std::vector<std::string> headers = {kBearer}) {
    Reply r;
    CURL* curl = curl_easy_init();
    const std::string url = "http://127.0.0.1:" + std::to_string(emulator_->port()) + path;
    const std::string text = body.dump();
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const std::string& h : headers) list = curl_slist_append(list, h.c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(text.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnData);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    EXPECT_EQ(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return r;
  }

  static json Converse(const std::string& text) {
    return {{"system", {{{"text", "Be brief."}}}},
            {"messages", {{{"role", "user"}, {"content", {{{"text", text}}}}}}}};
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::thread thread_;
  std::unique_ptr<Emulator> emulator_;
};

TEST_F(BedrockEmulatorTest, ConverseAnswersInBedrocksShapeWithUsage) {
  Reply r = Post("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse", Converse("hello there"));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["output"]["message"]["role"], "assistant");
  EXPECT_EQ(j["output"]["message"]["content"][0]["text"], "hello there");
  EXPECT_EQ(j["stopReason"], "end_turn");
  // Words: "Be brief." (2) + "hello there" (2); the reply's 2 words.
  EXPECT_EQ(j["usage"]["inputTokens"], 4);
  EXPECT_EQ(j["usage"]["outputTokens"], 2);
  EXPECT_EQ(j["usage"]["totalTokens"], 6);
  EXPECT_NE(r.headers.find("x-amzn-requestid:"), std::string::npos);
}

TEST_F(BedrockEmulatorTest, ConverseStreamIsBinaryEventStream) {
  Reply r = Post("/model/m/converse-stream", Converse("one two three"));
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.headers.find("application/vnd.amazon.eventstream"), std::string::npos);
  std::vector<StreamFrame> frames = r.Frames();
  ASSERT_GE(frames.size(), 5u);
  EXPECT_EQ(frames.front().event, "messageStart");
  std::string text;
  for (const StreamFrame& f : frames) {
    json p = json::parse(f.data);
    EXPECT_TRUE(p.contains("p"));  // padding, as the real service adds
    if (f.event == "contentBlockDelta") text += p["delta"]["text"];
  }
  EXPECT_EQ(text, "one two three");
  EXPECT_EQ(frames[frames.size() - 2].event, "messageStop");
  EXPECT_EQ(frames.back().event, "metadata");
  EXPECT_EQ(json::parse(frames.back().data)["usage"]["outputTokens"], 3);
}

TEST_F(BedrockEmulatorTest, ToolCallsStreamAsToolUseBlocks) {
  json req = Converse("call get_weather {\"city\": \"Paris\"}");
  req["toolConfig"] = json::parse(R"({"tools":[{"toolSpec":{"name":"get_weather",
      "inputSchema":{"json":{"type":"object","properties":{"city":{"type":"string"}}}}}}]})");
  Reply r = Post("/model/m/converse-stream", req);
  ASSERT_EQ(r.status, 200) << r.body;
  std::string input, id;
  for (const StreamFrame& f : r.Frames()) {
    json p = json::parse(f.data);
    if (f.event == "contentBlockStart") id = p["start"]["toolUse"]["toolUseId"];
    if (f.event == "contentBlockDelta") input += p["delta"]["toolUse"]["input"];
    if (f.event == "messageStop") {
      EXPECT_EQ(p["stopReason"], "tool_use");
    }
  }
  EXPECT_EQ(id.rfind("tooluse_", 0), 0u);
  EXPECT_EQ(json::parse(input), json::parse(R"({"city":"Paris"})"));
}

TEST_F(BedrockEmulatorTest, ValidationIsStrict) {
  json starts_with_assistant = {{"messages", {{{"role", "assistant"}, {"content", {{{"text", "x"}}}}}}}};
  Reply r = Post("/model/m/converse", starts_with_assistant);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.Json()["message"].get<std::string>().find("must start with a user message"), std::string::npos);
  EXPECT_NE(r.headers.find("x-amzn-errortype: ValidationException"), std::string::npos);

  json not_alternating = {{"messages", {{{"role", "user"}, {"content", {{{"text", "a"}}}}},
                                        {{"role", "user"}, {"content", {{{"text", "b"}}}}}}}};
  EXPECT_EQ(Post("/model/m/converse", not_alternating).status, 400);
  json tool_without_config = {{"messages", {{{"role", "user"}, {"content", {{{"toolResult", {{"toolUseId", "x"}, {"content", json::array()}}}}}}}}}};
  EXPECT_EQ(Post("/model/m/converse", tool_without_config).status, 400);
  json unknown = Converse("x");
  unknown["temperature"] = 0.5;
  EXPECT_EQ(Post("/model/m/converse", unknown).status, 400);
  json hot = Converse("x");
  hot["inferenceConfig"] = {{"temperature", 1.5}};
  EXPECT_EQ(Post("/model/m/converse", hot).status, 400);
}

TEST_F(BedrockEmulatorTest, AuthIsABearerKeyOrASigV4Signature) {
  EXPECT_EQ(Post("/model/m/converse", Converse("x"), {}).status, 403);
  const std::string sigv4 =
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/"
      "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=" +
      std::string(64, 'a');
  EXPECT_EQ(Post("/model/m/converse", Converse("x"), {sigv4, "X-Amz-Date: 20250101T000000Z"}).status, 200);
  Reply wrong_service = Post(
      "/model/m/converse", Converse("x"),
      {"Authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/s3/aws4_request, "
       "SignedHeaders=host;x-amz-date, Signature=" + std::string(64, 'a'),
       "X-Amz-Date: 20250101T000000Z"});
  EXPECT_EQ(wrong_service.status, 403);
  EXPECT_NE(wrong_service.headers.find("InvalidSignatureException"), std::string::npos);
}

TEST_F(BedrockEmulatorTest, ScriptedErrorsUseBedrockShapes) {
  Reply r = Post("/model/m/converse", Converse("x"),
                 {kBearer, R"(x-emulator-script: {"error": {"status": 429}})"});
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Json()["message"], "Too many requests, please wait before trying again.");
  EXPECT_NE(r.headers.find("x-amzn-errortype: ThrottlingException"), std::string::npos);
  EXPECT_NE(r.headers.find("retry-after:"), std::string::npos);

  Reply mid = Post("/model/m/converse-stream", Converse("a b c d"),
                   {kBearer, R"(x-emulator-script: {"interrupt": {"after_chunks": 2, "error": {"status": 503}}})"});
  ASSERT_EQ(mid.status, 200);
  std::vector<StreamFrame> frames = mid.Frames();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames.back().event, "exception:serviceUnavailableException");
  EXPECT_EQ(json::parse(frames.back().data)["message"], "Bedrock is unable to process your request.");
}

TEST_F(BedrockEmulatorTest, DirectiveScriptsReasoning) {
  Reply r = Post("/model/m/converse",
                 Converse("q\n@emulator {\"reasoning\": \"think hard\", \"reply\": \"42\"}"));
  ASSERT_EQ(r.status, 200) << r.body;
  json content = r.Json()["output"]["message"]["content"];
  EXPECT_EQ(content[0]["reasoningContent"]["reasoningText"]["text"], "think hard");
  EXPECT_EQ(content[1]["text"], "42");
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// InvokeModel with an embedding model reports the input token count in
// X-Amzn-Bedrock-Input-Token-Count, as Bedrock does: Titan (also inputTextTokenCount in the
// body) and Cohere (no count in the body). The emulator counts words here.
TEST_F(BedrockEmulatorTest, EmbeddingsSendTheInputTokenCountHeader) {
  Reply titan = Post("/model/amazon.titan-embed-text-v2%3A0/invoke",
                     {{"inputText", "three short words"}});
  ASSERT_EQ(titan.status, 200) << titan.body;
  EXPECT_NE(Lower(titan.headers).find("x-amzn-bedrock-input-token-count: 3\r\n"),
            std::string::npos)
      << titan.headers;
  EXPECT_EQ(titan.Json()["inputTextTokenCount"], 3);

  Reply cohere = Post("/model/cohere.embed-english-v3/invoke",
                      {{"texts", {"one two", "three four five"}},
                       {"input_type", "search_document"}});
  ASSERT_EQ(cohere.status, 200) << cohere.body;
  EXPECT_NE(Lower(cohere.headers).find("x-amzn-bedrock-input-token-count: 5\r\n"),
            std::string::npos)
      << cohere.headers;
  EXPECT_FALSE(cohere.Json().contains("meta"));
}

}  // namespace
}  // namespace modeenvoy::emulator
