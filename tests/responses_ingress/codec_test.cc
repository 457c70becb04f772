// tests/responses_ingress/codec_test.cc: OpenAiResponsesCodec (POST /v1/responses) on
// hand-built requests, unified answers and streams. Expected values come from the Responses
// API reference (the response object's echoed request fields, the stream's event names and
// sequence numbers, response.failed), not from the code under test.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/sse.h"
#include "modeenvoy/status.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

using json = nlohmann::json;

HttpRequest Post(std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/responses";
  r.body = std::move(body);
  return r;
}

// The codec for one request, as the engine gets it (ParseRequest, then ForRequest).
std::shared_ptr<const IngressCodec> Bound(const std::string& body, ChatRequest* chat) {
  std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  absl::StatusOr<ChatRequest> parsed = codec->ParseRequest(Post(body));
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  if (!parsed.ok()) return codec;
  *chat = *parsed;
  std::shared_ptr<const IngressCodec> bound = codec->ForRequest(Post(body), *parsed);
  EXPECT_NE(bound, nullptr);
  return bound != nullptr ? bound : codec;
}

constexpr char kCompletion[] =
    R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"m",)"
    R"("choices":[{"index":0,"message":{"role":"assistant","content":"hi there"},)"
    R"("finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,)"
    R"("total_tokens":7}})";

TEST(ResponsesCodec, ResponseEchoesTheRequestFields) {
  const json tools = json::parse(
      R"([{"type":"function","name":"f","parameters":{"type":"object"},"strict":true}])");
  const json request = {{"model", "m"},          {"input", "hello"},
                        {"instructions", "Be brief."}, {"temperature", 0.25},
                        {"top_p", 0.5},          {"metadata", {{"k", "v"}}},
                        {"tools", tools},        {"tool_choice", "required"},
                        {"parallel_tool_calls", false}};
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec = Bound(request.dump(), &chat);
  std::string body = kCompletion;
  ASSERT_TRUE(codec->RenderResponse(&body).ok());
  const json r = json::parse(body);
  EXPECT_EQ(r["object"], "response");
  EXPECT_EQ(r["instructions"], "Be brief.");
  EXPECT_EQ(r["temperature"], 0.25);
  EXPECT_EQ(r["top_p"], 0.5);
  EXPECT_EQ(r["metadata"], json({{"k", "v"}}));
  EXPECT_EQ(r["tools"], tools);
  EXPECT_EQ(r["tool_choice"], "required");
  EXPECT_EQ(r["parallel_tool_calls"], false);
  EXPECT_EQ(r["output"][0]["content"][0]["text"], "hi there");
}

TEST(ResponsesCodec, DefaultsWhenTheRequestLeavesFieldsOut) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec = Bound(R"({"model":"m","input":"x"})", &chat);
  std::string body = kCompletion;
  ASSERT_TRUE(codec->RenderResponse(&body).ok());
  const json r = json::parse(body);
  // The API reference's values for a request that sets none of them.
  EXPECT_TRUE(r["instructions"].is_null());
  EXPECT_TRUE(r["temperature"].is_null());
  EXPECT_TRUE(r["top_p"].is_null());
  EXPECT_EQ(r["metadata"], json::object());
  EXPECT_EQ(r["tools"], json::array());
  EXPECT_EQ(r["tool_choice"], "auto");
  EXPECT_EQ(r["parallel_tool_calls"], true);
}

TEST(ResponsesCodec, StoreIsTheGatewaysAndStreamsAskForUsage) {
  ChatRequest chat;
  Bound(R"({"model":"m","input":"x","store":true,"stream":true})", &chat);
  EXPECT_FALSE(chat.store.has_value());

  ChatRequest tagged;
  Bound(R"({"model":"m","input":"x","metadata":{"k":"v"}})", &tagged);
  EXPECT_FALSE(tagged.metadata.has_value());  // echoed in the response, not sent upstream
  ASSERT_TRUE(chat.stream_options.has_value());
  EXPECT_EQ(chat.stream_options->include_usage, true);
}

// previous_response_id is the endpoint's state filter's (it reads the body): the codec
// checks its type and keeps it out of the unified request, so no provider ever sees it.
TEST(ResponsesCodec, PreviousResponseIdIsCheckedAndNeverInTheUnifiedRequest) {
  absl::StatusOr<ChatRequest> parsed = OpenAiResponsesCodec()->ParseRequest(
      Post(R"({"model":"m","input":"x","previous_response_id":"resp_1"})"));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  for (const auto& [key, value] : parsed->extra) EXPECT_NE(key, "previous_response_id");

  absl::StatusOr<ChatRequest> bad = OpenAiResponsesCodec()->ParseRequest(
      Post(R"({"model":"m","input":"x","previous_response_id":5})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(HttpStatusForStatus(bad.status()), 400);
  EXPECT_EQ(ErrorParam(bad.status()), "previous_response_id");
}

TEST(ResponsesCodec, HostedToolsGoOnlyToOpenAiDialects) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec = Bound(
      R"({"model":"m","input":"x","tools":[{"type":"function","name":"f",)"
      R"("parameters":{"type":"object"}},{"type":"web_search_preview"}]})",
      &chat);
  EXPECT_TRUE(codec->CheckAttempt(chat, "openai").ok());
  EXPECT_TRUE(codec->CheckAttempt(chat, "openai_responses").ok());
  absl::Status s = codec->CheckAttempt(chat, "anthropic");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(HttpStatusForStatus(s), 400);
  EXPECT_EQ(s.message().substr(0, 14), "tools[1].type:");
  EXPECT_NE(s.message().find("web_search_preview"), std::string::npos);

  ChatRequest functions_only;
  Bound(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f"}]})",
        &functions_only);
  EXPECT_TRUE(codec->CheckAttempt(functions_only, "gemini").ok());
}

std::vector<SseEvent> Render(StreamTranslator& renderer, const std::vector<std::string>& data) {
  std::vector<SseEvent> out;
  for (const std::string& d : data) {
    StreamFrame frame;
    frame.data = d;
    EXPECT_TRUE(renderer.Translate(std::move(frame), &out).ok());
  }
  return out;
}

TEST(ResponsesCodec, StreamEventsEchoAndFailureContinuesTheSequence) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec =
      Bound(R"({"model":"m","input":"x","stream":true,"metadata":{"a":"b"}})", &chat);
  std::unique_ptr<StreamTranslator> renderer = codec->NewStreamRenderer();
  ASSERT_NE(renderer, nullptr);
  std::vector<SseEvent> events = Render(
      *renderer,
      {R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",)"
       R"("choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]})"});
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0].event, "response.created");
  EXPECT_EQ(events[1].event, "response.in_progress");
  for (const SseEvent& e : events) {
    const json j = json::parse(e.data);
    EXPECT_EQ(j["type"], e.event);
    if (j.contains("response")) {
      EXPECT_EQ(j["response"]["metadata"], json({{"a", "b"}}));
    }
  }
  const int64_t last = json::parse(events.back().data)["sequence_number"];
  EXPECT_EQ(last, static_cast<int64_t>(events.size()) - 1);

  SseEvent failed = codec->StreamErrorEvent(
      WithHttpStatus(absl::UnavailableError("upstream broke"), 502));
  EXPECT_EQ(failed.event, "response.failed");
  const json f = json::parse(failed.data);
  EXPECT_EQ(f["type"], "response.failed");
  EXPECT_EQ(f["sequence_number"], last + 1);
  EXPECT_EQ(f["response"]["status"], "failed");
  EXPECT_EQ(f["response"]["error"]["message"], "upstream broke");
  EXPECT_EQ(f["response"]["metadata"], json({{"a", "b"}}));
}

TEST(ResponsesCodec, ErrorBodyIsAnOpenAiErrorObject) {
  const json e = json::parse(OpenAiResponsesCodec()->ErrorBody(
      absl::InvalidArgumentError("temperature: must be between 0 and 2")));
  ASSERT_TRUE(e.contains("error"));
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
}

}  // namespace
}  // namespace modeenvoy
