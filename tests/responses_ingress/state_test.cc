// tests/responses_ingress/state_test.cc: the Responses API's stored state inside the engine,
// on virtual time (SimEventLoop) with the memory context store: the gateway's id from the
// injected randomness in the object and in every stream event, a chain continued by
// previous_response_id (what the provider receives, windowed to a small context window),
// the stored-response endpoints, ownership, store:false, and a gateway without a context
// section. The provider is a fake OpenAI-compatible UpstreamClient that echoes the last user
// message. Expected values come from the Responses API reference and the documented id and
// windowing rules (include/modeenvoy/ingress/responses.h, context/window.h), not from the
// code under test.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/sse.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// Every draw of the injected randomness: the response id is "resp_" + two draws as 16 hex
// digits each.
constexpr uint64_t kDraw = 0x0123456789abcdefULL;
constexpr char kExpectedId[] = "resp_0123456789abcdef0123456789abcdef";

// A last user message that makes EchoUpstream's stream fail before its first chunk.
constexpr char kFailFirst[] = "fail before the first chunk";

// An OpenAI-compatible provider on the test's loop that answers each request with the text
// of its last user message (whole, or streamed in two content chunks plus a usage chunk;
// kFailFirst: a stream whose only event is OpenAI's error object).
class EchoUpstream final : public UpstreamClient {
 public:
  explicit EchoUpstream(SimEventLoop* loop) : loop_(loop) {}
  std::vector<Json> bodies;

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler* handler) override {
    Json body = Json::parse(request.body);
    bodies.push_back(body);
    std::string text;
    for (const Json& m : body["messages"]) {
      if (m["role"] == "user" && m["content"].is_string()) text = m["content"];
    }
    auto call = std::make_unique<Call>(loop_, handler, body.value("stream", false), text);
    Call* raw = call.get();
    call->timer->Arm(absl::Seconds(1), [raw] { raw->Begin(); });
    return call;
  }

 private:
  static std::string Chunk(const Json& delta, const Json& finish) {
    return Json{{"id", "chatcmpl-up"}, {"object", "chat.completion.chunk"}, {"created", 7},
                {"model", "m"},
                {"choices", Json::array({{{"index", 0}, {"delta", delta},
                                          {"finish_reason", finish}}})}}
        .dump();
  }

  class Call final : public UpstreamCall {
   public:
    Call(SimEventLoop* loop, UpstreamHandler* handler, bool stream, std::string text)
        : loop(loop), handler(handler), stream(stream), text(std::move(text)),
          timer(loop->NewTimer()), life(std::make_shared<bool>(true)) {}
    void Pause() override { paused = true; }
    void Resume() override {
      if (!paused) return;
      paused = false;
      Schedule();
    }
    UpstreamCallStats stats() const override { return {}; }

    void Begin() {
      handler->OnHeaders(200, {{"content-type", stream ? "text/event-stream"
                                                       : "application/json"}});
      if (!stream) {
        Json completion = {
            {"id", "chatcmpl-up"}, {"object", "chat.completion"}, {"created", 7},
            {"model", "m"},
            {"choices", Json::array({{{"index", 0},
                                      {"message", {{"role", "assistant"}, {"content", text}}},
                                      {"finish_reason", "stop"}}})},
            {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}}};
        handler->OnData(completion.dump());
        handler->OnComplete(absl::OkStatus());
        return;
      }
      if (text == kFailFirst) {  // the provider's in-stream error before any chunk
        events = {R"({"error":{"message":"over quota","type":"insufficient_quota",)"
                  R"("param":null,"code":"insufficient_quota"}})"};
        Schedule();
        return;
      }
      const size_t half = text.size() / 2;
      events = {Chunk({{"role", "assistant"}, {"content", text.substr(0, half)}}, nullptr),
                Chunk({{"content", text.substr(half)}}, "stop"),
                R"({"id":"chatcmpl-up","object":"chat.completion.chunk","created":7,)"
                R"("model":"m","choices":[],"usage":{"prompt_tokens":3,)"
                R"("completion_tokens":2,"total_tokens":5}})",
                "[DONE]"};
      Schedule();
    }
    void Schedule() {
      std::weak_ptr<bool> alive = life;
      loop->Post([this, alive] {
        if (alive.expired() || paused) return;
        if (next == events.size()) {
          handler->OnComplete(absl::OkStatus());
          return;
        }
        handler->OnData(absl::StrFormat("data: %s\n\n", events[next++]));
        if (!alive.expired()) Schedule();
      });
    }

    SimEventLoop* loop;
    UpstreamHandler* handler;
    bool stream;
    std::string text;
    std::unique_ptr<Timer> timer;
    std::shared_ptr<bool> life;
    std::vector<std::string> events;
    bool paused = false;
    size_t next = 0;
  };

  SimEventLoop* loop_;
};

std::vector<SseEvent> ParseSseEvents(std::string_view body) {
  SseParser parser;
  std::vector<SseEvent> events;
  EXPECT_TRUE(parser.Feed(body, &events).ok());
  EXPECT_TRUE(parser.Finish(&events).ok());
  return events;
}

struct Exchange {
  RecordingSink sink{/*check_order=*/false};
  std::unique_ptr<ActiveRequest> active;
  Json json() const { return Json::parse(sink.body, nullptr, false); }
};

HttpRequest Request(std::string method, std::string path, std::string key, std::string body) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers.emplace_back("authorization", "Bearer " + key);
  if (!body.empty()) r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  r.remote_address = "127.0.0.1:1";
  return r;
}

// "role:text" of each message an upstream request carried.
std::vector<std::string> Sent(const Json& body) {
  std::vector<std::string> out;
  for (const Json& m : body["messages"]) {
    out.push_back(m["role"].get<std::string>() + ":" +
                  (m["content"].is_string() ? m["content"].get<std::string>() : "-"));
  }
  return out;
}

class ResponsesStateTest : public ::testing::Test {
 protected:
  // `context`: the context section's JSON, or empty for none. `demo_keys`: more members of
  // the model "demo".
  // `fixed_draws`: every draw is kDraw (every response gets kExpectedId, so only one may be
  // stored); else draws count up (ids differ, and are read from the answers).
  void SetUpWith(std::string_view context, std::string_view demo_keys = "",
                 bool fixed_draws = true) {
    gateway_.reset();
    config_.reset();
    registry_ = std::make_unique<Registry>();
    std::function<uint64_t()> random = [] { return kDraw; };
    if (!fixed_draws) random = [n = uint64_t{0}]() mutable { return ++n; };
    services_ = std::make_unique<Services>(
        ServicesOptions{.clock = &loop_->fake_clock(), .random = std::move(random)});
    ASSERT_TRUE(RegisterContextComponent(registry_.get()).ok());
    ASSERT_TRUE(RegisterResponsesIngressComponent(registry_.get()).ok());
    ConfigLoadOptions load;
    load.registry = registry_.get();
    load.services = services_.get();
    config_ = std::make_unique<ConfigStore>(load);
    std::string doc = absl::StrFormat(R"({
      "providers": {"up": {"type": "openai", "base_url": "http://upstream.test/v1"}},
      "models": {"demo": {"provider": "up"%s}},
      %s
      "filters": [{"type": "api_key_auth",
                   "config": {"keys": [{"name": "team-a", "key": "sk-a"},
                                       {"name": "team-b", "key": "sk-b"}]}}]})",
                                      demo_keys,
                                      context.empty() ? std::string()
                                                      : absl::StrFormat(R"("context": %s,)",
                                                                        context));
    absl::Status loaded = config_->Load(doc);
    ASSERT_TRUE(loaded.ok()) << loaded;
    GatewayOptions options;
    options.config = config_.get();
    options.loop = loop_.get();
    options.upstream = &upstream_;
    auto gateway = NewGateway(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
  }
  void SetUp() override { SetUpWith(R"({"store": {"type": "memory"}})"); }

  std::unique_ptr<Exchange> Send(HttpRequest request) {
    auto ex = std::make_unique<Exchange>();
    ex->active = gateway_->Handle(std::move(request), &ex->sink);
    loop_->RunFor(absl::Minutes(1));
    EXPECT_TRUE(ex->sink.finished.has_value());
    return ex;
  }
  std::unique_ptr<Exchange> Create(Json body, std::string key = "sk-a") {
    if (!body.contains("model")) body["model"] = "demo";
    return Send(Request("POST", "/v1/responses", std::move(key), body.dump()));
  }

  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  EchoUpstream upstream_{loop_.get()};
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(ResponsesStateTest, TheIdIsTheGatewaysFromTheInjectedRandomness) {
  std::unique_ptr<Exchange> whole = Create({{"input", "hello"}});
  ASSERT_EQ(whole->sink.status, 200) << whole->sink.body;
  EXPECT_EQ(whole->json()["id"], kExpectedId);
  EXPECT_EQ(whole->json()["output"][0]["content"][0]["text"], "hello");

  std::unique_ptr<Exchange> streamed = Create({{"input", "hello"}, {"stream", true}});
  ASSERT_EQ(streamed->sink.status, 200);
  int with_response = 0;
  for (const SseEvent& e : ParseSseEvents(streamed->sink.body)) {
    Json data = Json::parse(e.data, nullptr, false);
    if (!data.contains("response")) continue;
    ++with_response;
    EXPECT_EQ(data["response"]["id"], kExpectedId) << e.event;
  }
  EXPECT_EQ(with_response, 3);  // created, in_progress, completed
}

// Issue 11: a provider stream that fails before its first chunk still reaches the client
// as a well-formed Responses stream: response.created, response.in_progress, then
// response.failed, numbered from 0, each with the gateway's id.
TEST_F(ResponsesStateTest, AStreamFailingBeforeItsFirstChunkCarriesTheGatewaysId) {
  std::unique_ptr<Exchange> streamed = Create({{"input", kFailFirst}, {"stream", true}});
  ASSERT_EQ(streamed->sink.status, 200) << streamed->sink.body;
  std::vector<std::string> names;
  std::vector<Json> data;
  for (const SseEvent& e : ParseSseEvents(streamed->sink.body)) {
    names.push_back(e.event);
    data.push_back(Json::parse(e.data, nullptr, false));
  }
  ASSERT_EQ(names, (std::vector<std::string>{"response.created", "response.in_progress",
                                             "response.failed"}))
      << streamed->sink.body;
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(data[i]["sequence_number"], i);
    EXPECT_EQ(data[i]["response"]["id"], kExpectedId) << names[i];
    EXPECT_GE(data[i]["response"]["created_at"], 1700000000) << names[i];
  }
  EXPECT_EQ(data[2]["response"]["error"]["code"], "rate_limit_exceeded");
  EXPECT_EQ(data[2]["response"]["error"]["message"], "over quota");
}

TEST_F(ResponsesStateTest, AChainSendsTheEarlierTurnsAndNeverThePreviousId) {
  SetUpWith(R"({"store": {"type": "memory"}})", "", /*fixed_draws=*/false);
  std::unique_ptr<Exchange> r1 = Create({{"input", "one"}, {"instructions", "Be brief."}});
  ASSERT_EQ(r1->sink.status, 200) << r1->sink.body;
  const std::string id1 = r1->json()["id"];
  std::unique_ptr<Exchange> r2 =
      Create({{"input", "two"}, {"previous_response_id", id1}, {"stream", true}});
  ASSERT_EQ(r2->sink.status, 200) << r2->sink.body;
  std::string id2;
  for (const SseEvent& e : ParseSseEvents(r2->sink.body)) {
    if (e.event == "response.completed") id2 = Json::parse(e.data)["response"]["id"];
  }
  ASSERT_FALSE(id2.empty());
  EXPECT_NE(id1, id2);
  std::unique_ptr<Exchange> r3 = Create({{"input", "three"}, {"previous_response_id", id2}});
  ASSERT_EQ(r3->sink.status, 200) << r3->sink.body;
  EXPECT_EQ(r3->json()["previous_response_id"], id2);

  ASSERT_EQ(upstream_.bodies.size(), 3u);
  EXPECT_THAT(Sent(upstream_.bodies[0]), ElementsAre("system:Be brief.", "user:one"));
  // The streamed answer was assembled and kept; instructions are not carried over.
  EXPECT_THAT(Sent(upstream_.bodies[2]),
              ElementsAre("user:one", "assistant:one", "user:two", "assistant:two",
                          "user:three"));
  for (const Json& body : upstream_.bodies) {
    EXPECT_FALSE(body.contains("previous_response_id"));
    EXPECT_FALSE(body.contains("store"));
  }
}

TEST_F(ResponsesStateTest, TheChainIsWindowedToTheTargetModel) {
  // Messages of ~62 tokens (a word, then " hello" 60 times: one token each in o200k) in a
  // 250-token window with 10 reserved for the reply (~237 left after the priming): turn 2
  // sends turn 1 (2 messages) and its input, ~186; turn 3 would send ~310 with both earlier
  // turns, so the oldest turn is dropped (~186).
  if (!GetEncoding("o200k_base").ok()) GTEST_SKIP() << "tokenizer rank files not installed";
  SetUpWith(R"({"store": {"type": "memory"}})", R"(, "context_window": 250)",
            /*fixed_draws=*/false);
  auto text = [](std::string_view first) {
    std::string t(first);
    for (int i = 0; i < 60; ++i) t += " hello";
    return t;
  };
  std::string previous;
  for (const char* word : {"one", "two", "three"}) {
    Json body = {{"input", text(word)}, {"max_output_tokens", 10}};
    if (!previous.empty()) body["previous_response_id"] = previous;
    std::unique_ptr<Exchange> r = Create(body);
    ASSERT_EQ(r->sink.status, 200) << r->sink.body;
    previous = r->json()["id"];
  }
  ASSERT_EQ(upstream_.bodies.size(), 3u);
  EXPECT_THAT(Sent(upstream_.bodies[1]),
              ElementsAre("user:" + text("one"), "assistant:" + text("one"),
                          "user:" + text("two")));
  EXPECT_THAT(Sent(upstream_.bodies[2]),
              ElementsAre("user:" + text("two"), "assistant:" + text("two"),
                          "user:" + text("three")));
}

TEST_F(ResponsesStateTest, StoredResponseEndpointsAndOwnership) {
  std::unique_ptr<Exchange> r = Create({{"input", "keep me"}, {"metadata", {{"k", "v"}}}});
  ASSERT_EQ(r->sink.status, 200);
  const Json answered = r->json();

  std::unique_ptr<Exchange> got = Send(Request("GET", absl::StrFormat("/v1/responses/%s",
                                                                      kExpectedId), "sk-a", ""));
  ASSERT_EQ(got->sink.status, 200) << got->sink.body;
  EXPECT_EQ(got->json(), answered);  // the object as answered

  std::unique_ptr<Exchange> items = Send(Request(
      "GET", absl::StrFormat("/v1/responses/%s/input_items", kExpectedId), "sk-a", ""));
  ASSERT_EQ(items->sink.status, 200) << items->sink.body;
  Json list = items->json();
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 1u);
  EXPECT_EQ(list["data"][0]["role"], "user");
  EXPECT_EQ(list["data"][0]["content"][0]["text"], "keep me");
  EXPECT_EQ(list["first_id"], list["data"][0]["id"]);
  EXPECT_EQ(list["has_more"], false);

  for (const char* method : {"GET", "DELETE"}) {
    std::unique_ptr<Exchange> other = Send(Request(
        method, absl::StrFormat("/v1/responses/%s", kExpectedId), "sk-b", ""));
    EXPECT_EQ(other->sink.status, 404) << method;
  }
  std::unique_ptr<Exchange> steal =
      Create({{"input", "x"}, {"previous_response_id", kExpectedId}}, "sk-b");
  EXPECT_EQ(steal->sink.status, 404);
  EXPECT_EQ(steal->json()["error"]["param"], "previous_response_id");

  std::unique_ptr<Exchange> del = Send(
      Request("DELETE", absl::StrFormat("/v1/responses/%s", kExpectedId), "sk-a", ""));
  ASSERT_EQ(del->sink.status, 200);
  EXPECT_EQ(del->json(), (Json{{"id", kExpectedId}, {"object", "response"}, {"deleted", true}}));
  std::unique_ptr<Exchange> gone = Send(
      Request("GET", absl::StrFormat("/v1/responses/%s", kExpectedId), "sk-a", ""));
  EXPECT_EQ(gone->sink.status, 404);
}

// A stored response is the object as answered, byte for byte, and its echo keeps the
// request's text (a number no double holds, in a tool's schema).
TEST_F(ResponsesStateTest, AStoredResponseIsTheAnsweredBytesWithTheRequestsText) {
  constexpr char kTools[] =
      R"([{"type":"function","name":"f","parameters":{"type":"object","properties":)"
      R"({"n":{"type":"integer","maximum":18446744073709551617}}}}])";
  std::unique_ptr<Exchange> r = Send(Request(
      "POST", "/v1/responses", "sk-a",
      std::string(R"({"model":"demo","input":"keep me","tools":)") + kTools + "}"));
  ASSERT_EQ(r->sink.status, 200) << r->sink.body;
  EXPECT_NE(r->sink.body.find(std::string(R"("tools":)") + kTools), std::string::npos)
      << r->sink.body;

  std::unique_ptr<Exchange> got = Send(Request("GET", absl::StrFormat("/v1/responses/%s",
                                                                      kExpectedId), "sk-a", ""));
  ASSERT_EQ(got->sink.status, 200) << got->sink.body;
  EXPECT_EQ(got->sink.body, r->sink.body);
}

// `instructions` becomes the system message first only when it has text (the dialect adds
// none for ""); the stored input then keeps the client's own system message, which an empty
// `instructions` must not take out.
TEST_F(ResponsesStateTest, EmptyInstructionsKeepTheInputsSystemMessage) {
  std::unique_ptr<Exchange> r =
      Create({{"instructions", ""},
              {"input", Json::array({{{"role", "system"}, {"content", "Be exact."}},
                                     {{"role", "user"}, {"content", "keep me"}}})}});
  ASSERT_EQ(r->sink.status, 200) << r->sink.body;
  std::unique_ptr<Exchange> items = Send(Request(
      "GET", absl::StrFormat("/v1/responses/%s/input_items?order=asc", kExpectedId), "sk-a",
      ""));
  ASSERT_EQ(items->sink.status, 200) << items->sink.body;
  const Json list = items->json();
  ASSERT_EQ(list["data"].size(), 2u) << list.dump();
  EXPECT_EQ(list["data"][0]["role"], "system");
  EXPECT_EQ(list["data"][0]["content"][0]["text"], "Be exact.");
  EXPECT_EQ(list["data"][1]["role"], "user");
}

TEST_F(ResponsesStateTest, StoreFalseIsAnsweredButNotKept) {
  std::unique_ptr<Exchange> r = Create({{"input", "forget"}, {"store", false}});
  ASSERT_EQ(r->sink.status, 200);
  EXPECT_EQ(r->json()["store"], false);
  std::unique_ptr<Exchange> got = Send(
      Request("GET", absl::StrFormat("/v1/responses/%s", kExpectedId), "sk-a", ""));
  EXPECT_EQ(got->sink.status, 404);
}

TEST_F(ResponsesStateTest, WithoutAContextSectionAnswersWorkAndContinuationsAre400) {
  SetUpWith("");
  std::unique_ptr<Exchange> r = Create({{"input", "hi"}});
  ASSERT_EQ(r->sink.status, 200) << r->sink.body;
  EXPECT_EQ(r->json()["id"], kExpectedId);
  std::unique_ptr<Exchange> next = Create({{"input", "more"}, {"previous_response_id", kExpectedId}});
  EXPECT_EQ(next->sink.status, 400);
  EXPECT_EQ(next->json()["error"]["param"], "previous_response_id");
  EXPECT_THAT(next->json()["error"]["message"].get<std::string>(), HasSubstr("no response store"));
  std::unique_ptr<Exchange> got = Send(
      Request("GET", absl::StrFormat("/v1/responses/%s", kExpectedId), "sk-a", ""));
  EXPECT_EQ(got->sink.status, 404);
}

}  // namespace
}  // namespace modeenvoy
