// tests/responses_ingress/codec_test.cc: OpenAiResponsesCodec (POST /v1/responses) on
// hand-built requests, unified answers and streams. Expected values come from the Responses
// API reference (the response object's echoed request fields, the stream's event names and
// sequence numbers, response.failed), not from the code under test.
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
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

// The response object repeats the request's values as the client wrote them: a number no
// double holds (2^64 + 1, in a tool's schema) and an exponent form keep their text, in the
// whole body and in every stream event that carries the response object.
TEST(ResponsesCodec, EchoedValuesKeepTheRequestsText) {
  constexpr char kTools[] =
      R"([{"type":"function","name":"f","parameters":{"type":"object","properties":)"
      R"({"n":{"type":"integer","maximum":18446744073709551617}}}}])";
  const std::string request = std::string(R"({"model":"m","input":"x","temperature":1E0,)") +
                              R"("tools":)" + kTools + "}";
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec = Bound(request, &chat);
  std::string body = kCompletion;
  ASSERT_TRUE(codec->RenderResponse(&body).ok());
  EXPECT_NE(body.find(std::string(R"("tools":)") + kTools), std::string::npos) << body;
  EXPECT_NE(body.find(R"("temperature":1E0)"), std::string::npos) << body;

  ChatRequest streamed;
  std::shared_ptr<const IngressCodec> stream_codec =
      Bound(request.substr(0, request.size() - 1) + R"(,"stream":true})", &streamed);
  std::unique_ptr<StreamTranslator> renderer = stream_codec->NewStreamRenderer();
  ASSERT_NE(renderer, nullptr);
  std::vector<SseEvent> events;
  for (const char* data :
       {R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",)"
        R"("choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"}}]})",
        R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",)"
        R"("choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
        "[DONE]"}) {
    StreamFrame frame;
    frame.data = data;
    ASSERT_TRUE(renderer->Translate(std::move(frame), &events).ok());
  }
  int carrying = 0;
  for (const SseEvent& e : events) {
    if (json::parse(e.data).contains("response")) {
      ++carrying;
      EXPECT_NE(e.data.find(std::string(R"("tools":)") + kTools), std::string::npos) << e.data;
    }
  }
  EXPECT_EQ(carrying, 3);  // response.created, response.in_progress, response.completed
}

// ParseRequest collects the echo as it reads the body and ForRequest takes it: with
// whitespace around and inside values the echo is still the compact text, and an explicit
// null is the API's default.
TEST(ResponsesCodec, EchoFromTheParseIsCompactAndNullIsTheDefault) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec = Bound(
      "{ \"model\" : \"m\" , \"input\" : \"x\" ,\n  \"instructions\" :  \"Be brief.\" ,\n"
      "  \"metadata\" : { \"k\" : [ 1 , \"a b\" ] } , \"top_p\" : null ,\n"
      "  \"tool_choice\"\t:\t\"none\"\n}\n",
      &chat);
  std::string body = kCompletion;
  ASSERT_TRUE(codec->RenderResponse(&body).ok());
  EXPECT_NE(body.find(R"("instructions":"Be brief.")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("metadata":{"k":[1,"a b"]})"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("tool_choice":"none")"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("top_p":null)"), std::string::npos) << body;
  EXPECT_NE(body.find(R"("temperature":null)"), std::string::npos) << body;  // absent
}

// ForRequest echoes the body it is given, also when the last ParseRequest on the thread
// read another one (the echo ParseRequest collected is only for its own body).
TEST(ResponsesCodec, ForRequestEchoesItsOwnBody) {
  const std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  const std::string a = R"({"model":"m","input":"x","instructions":"From A.","top_p":0.25})";
  const std::string b = R"({"model":"m","input":"x","instructions":"From B.","top_p":0.75})";
  absl::StatusOr<ChatRequest> parsed_a = codec->ParseRequest(Post(a));
  ASSERT_TRUE(parsed_a.ok()) << parsed_a.status();
  absl::StatusOr<ChatRequest> parsed_b = codec->ParseRequest(Post(b));
  ASSERT_TRUE(parsed_b.ok()) << parsed_b.status();
  // Parsed B last, bound to A; then bound to B with nothing parsed in between.
  for (const auto& [request, instructions, top_p] :
       {std::tuple{a, "From A.", 0.25}, std::tuple{b, "From B.", 0.75}}) {
    std::shared_ptr<const IngressCodec> bound = codec->ForRequest(Post(request), *parsed_a);
    ASSERT_NE(bound, nullptr);
    std::string body = kCompletion;
    ASSERT_TRUE(bound->RenderResponse(&body).ok());
    const json r = json::parse(body);
    EXPECT_EQ(r["instructions"], instructions);
    EXPECT_EQ(r["top_p"], top_p);
  }
  // A parse that fails leaves nothing for the next ForRequest to take.
  ASSERT_FALSE(codec->ParseRequest(Post(R"({"model":"m","input":"x","top_p":0.5,"top_p":1})"))
                   .ok());
  std::shared_ptr<const IngressCodec> bound = codec->ForRequest(Post(a), *parsed_a);
  std::string body = kCompletion;
  ASSERT_TRUE(bound->RenderResponse(&body).ok());
  EXPECT_EQ(json::parse(body)["top_p"], 0.25);
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
  EXPECT_TRUE(codec->CheckAttempt(chat, "openai_responses").ok());
  // Chat Completions has no hosted tools (OpenAI refuses them there): refused before the
  // call, with the provider type that runs them.
  for (const char* type : {"openai", "azure_openai"}) {
    absl::Status chat_api = codec->CheckAttempt(chat, type);
    ASSERT_FALSE(chat_api.ok()) << type;
    EXPECT_EQ(HttpStatusForStatus(chat_api), 400);
    EXPECT_EQ(chat_api.message().substr(0, 14), "tools[1].type:") << chat_api;
    EXPECT_NE(chat_api.message().find("\"openai_responses\""), std::string::npos) << chat_api;
  }
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

// Issue 11: a stream that fails before its first unified chunk still opens the response
// (the API's stream always starts with response.created, then response.in_progress), so
// the engine sends three events, numbered from 0, all with the gateway's response id (the
// endpoint filter's, in the request's metadata) and the time the request failed.
TEST(ResponsesCodec, AStreamFailingBeforeItsFirstChunkIsOpenedThenFailed) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec =
      Bound(R"({"model":"m","input":"x","stream":true,"metadata":{"a":"b"}})", &chat);
  std::unique_ptr<StreamTranslator> renderer = codec->NewStreamRenderer();
  ASSERT_NE(renderer, nullptr);
  FakeClock clock(absl::FromUnixSeconds(1700000123));
  RequestContext ctx;
  ctx.clock = &clock;
  ctx.metadata["responses.id"] = "resp_0123456789abcdef0123456789abcdef";
  std::vector<SseEvent> events = codec->StreamErrorEvents(
      WithHttpStatus(absl::ResourceExhaustedError("over quota"), 429), ctx);
  std::vector<std::string> names;
  for (const SseEvent& e : events) names.push_back(e.event);
  ASSERT_EQ(names, (std::vector<std::string>{"response.created", "response.in_progress",
                                             "response.failed"}));
  for (size_t i = 0; i < events.size(); ++i) {
    const json j = json::parse(events[i].data);
    EXPECT_EQ(j["type"], events[i].event);
    EXPECT_EQ(j["sequence_number"], i);
    EXPECT_EQ(j["response"]["id"], "resp_0123456789abcdef0123456789abcdef") << i;
    EXPECT_EQ(j["response"]["created_at"], 1700000123) << i;
    EXPECT_EQ(j["response"]["metadata"], json({{"a", "b"}})) << i;
  }
  const json failed = json::parse(events.back().data);
  EXPECT_EQ(failed["response"]["status"], "failed");
  EXPECT_EQ(failed["response"]["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(failed["response"]["error"]["message"], "over quota");
}

// After the first chunk the response is open: the failure is the one response.failed event,
// continuing the sequence, with the id the chunks carried.
TEST(ResponsesCodec, AStreamFailingAfterItsFirstChunkEndsWithOneEvent) {
  ChatRequest chat;
  std::shared_ptr<const IngressCodec> codec =
      Bound(R"({"model":"m","input":"x","stream":true})", &chat);
  std::unique_ptr<StreamTranslator> renderer = codec->NewStreamRenderer();
  std::vector<SseEvent> rendered = Render(
      *renderer,
      {R"({"id":"resp_0123456789abcdef0123456789abcdef","object":"chat.completion.chunk",)"
       R"("created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant",)"
       R"("content":"Hel"}}]})"});
  ASSERT_GE(rendered.size(), 3u);
  RequestContext ctx;
  ctx.metadata["responses.id"] = "resp_0123456789abcdef0123456789abcdef";
  std::vector<SseEvent> events =
      codec->StreamErrorEvents(absl::UnavailableError("upstream broke"), ctx);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "response.failed");
  const json f = json::parse(events[0].data);
  EXPECT_EQ(f["sequence_number"], rendered.size());
  EXPECT_EQ(f["response"]["id"], "resp_0123456789abcdef0123456789abcdef");
  EXPECT_EQ(f["response"]["created_at"], 1);
}

// The unified request's max_completion_tokens is the client's max_output_tokens (the
// dialect reads it there), so an error naming it, such as an openai_responses provider's
// minimum refused before the call, names the member the client sent.
TEST(ResponsesCodec, ErrorsNamingMaxCompletionTokensNameMaxOutputTokens) {
  const json e = json::parse(OpenAiResponsesCodec()->ErrorBody(InvalidFieldError(
      "max_completion_tokens", "must be >= 16 for an openai_responses provider, got 5")));
  EXPECT_EQ(e["error"]["message"], "max_output_tokens: must be >= 16 for an openai_responses "
                                   "provider, got 5");
  EXPECT_EQ(e["error"]["param"], "max_output_tokens");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  // Other fields keep their names.
  const json t = json::parse(
      OpenAiResponsesCodec()->ErrorBody(InvalidFieldError("temperature", "must be <= 2")));
  EXPECT_EQ(t["error"]["param"], "temperature");
  EXPECT_EQ(t["error"]["message"], "temperature: must be <= 2");
}

TEST(ResponsesCodec, ErrorBodyIsAnOpenAiErrorObject) {
  const json e = json::parse(OpenAiResponsesCodec()->ErrorBody(
      absl::InvalidArgumentError("temperature: must be between 0 and 2")));
  ASSERT_TRUE(e.contains("error"));
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
}

}  // namespace
}  // namespace modeenvoy
