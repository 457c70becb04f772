// tests/gateway/gateway_test.cc: the engine end to end: poll loop + curl client + a loopback
// server playing an OpenAI-compatible provider.
#include "modeenvoy/gateway/gateway.h"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/chat_test_util.h"
#include "tests/gateway/recording_sink.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

// A streamed request that does not ask for usage: the provider here reports none, and the
// engine adds (estimated) usage only for a client that asked (stream_usage_test.cc).
constexpr std::string_view kStreamWithoutUsage = R"(,"stream":true)";

using gateway_testing::ChatBody;
using gateway_testing::CompletionJson;
using gateway_testing::kTestWait;
using gateway_testing::Post;
using gateway_testing::ReceivedRequest;
using gateway_testing::RecordingSink;
using gateway_testing::TestConnection;
using gateway_testing::TestHttpServer;
using gateway_testing::UnusedPort;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string ChunkEvent(int i) {
  return absl::StrFormat(
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
      "\"model\":\"upstream-demo\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d\"},"
      "\"finish_reason\":null}]}\n\n",
      i);
}

// A provider: answers POST .../chat/completions like OpenAI, streaming when asked to.
// Streams wait for gates "chunk 2", "chunk 3" and "done" so tests can pace them.
void OpenAiLike(TestConnection& c) {
  Json req = Json::parse(c.request().body, nullptr, false);
  if (req.is_discarded()) {
    c.SendResponse(400, {{"content-type", "application/json"}}, R"({"error":"bad json"})");
    return;
  }
  if (req.value("stream", false)) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}, {"x-upstream", "sse"}});
    c.SendChunk(ChunkEvent(1));
    if (!c.WaitGate("chunk 2")) return;
    c.SendChunk(ChunkEvent(2));
    if (!c.WaitGate("chunk 3")) return;
    c.SendChunk(ChunkEvent(3));
    if (!c.WaitGate("done")) return;
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
    return;
  }
  c.SendResponse(200, {{"content-type", "application/json"}, {"x-upstream", "json"}},
                 CompletionJson(req.value("model", "")));
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  // A config with provider "up" at `base` and models demo -> upstream-demo, demo2 -> up-2.
  static std::string Config(const std::string& base, const std::string& filters = "[]",
                            const std::string& routes = "[]") {
    return absl::StrFormat(
        R"({"providers": {"up": {"type": "openai", "base_url": "%s", "api_key": "sk-upstream",
                                 "headers": {"x-provider": "p1"}}},
            "models": {"demo": {"provider": "up", "upstream_model": "upstream-demo"},
                       "demo2": {"provider": "up", "upstream_model": "up-2"}},
            "routes": %s, "filters": %s})",
        base, routes, filters);
  }

  void MakeGateway(const std::string& config, std::function<uint64_t()> random = nullptr) {
    absl::Status s = store_.Load(config);
    ASSERT_TRUE(s.ok()) << s;
    absl::StatusOr<std::unique_ptr<Gateway>> gw = NewGateway(
        {.config = &store_, .loop = loop_.get(), .upstream = client_.get(),
         .random = std::move(random)});
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = std::move(*gw);
  }

  bool RunUntil(std::function<bool()> done) {
    return loop_->RunUntil([&] { return done(); }, kTestWait);
  }
  void RunIdle() { loop_->RunUntil([] { return false; }, absl::Milliseconds(50)); }

  // Serves `request` to completion.
  std::unique_ptr<ActiveRequest> Serve(HttpRequest request, RecordingSink* sink) {
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(std::move(request), sink);
    EXPECT_TRUE(RunUntil([&] { return sink->finished.has_value(); }));
    EXPECT_TRUE(active->done());
    return active;
  }

  static Json ErrorOf(const RecordingSink& sink) { return Json::parse(sink.body)["error"]; }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
  ConfigStore store_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(GatewayTest, NonStreamingRelaysStatusHeadersAndBody) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("demo"), {{"authorization", "Bearer client-key"}}), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_FALSE(sink.streaming);
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(sink.body, CompletionJson("upstream-demo"));
  EXPECT_EQ(FindHeader(sink.headers, "x-upstream"), "json");
  EXPECT_FALSE(FindHeader(sink.headers, "content-length").has_value());  // the host frames

  std::vector<ReceivedRequest> got = server.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].path, "/v1/chat/completions");
  EXPECT_EQ(FindHeader(got[0].headers, "authorization"), "Bearer sk-upstream");  // not the client's
  EXPECT_EQ(FindHeader(got[0].headers, "x-provider"), "p1");
  EXPECT_EQ(FindHeader(got[0].headers, "accept"), "application/json");
  Json sent = Json::parse(got[0].body);
  EXPECT_EQ(sent["model"], "upstream-demo");
  EXPECT_EQ(sent["messages"][0]["content"], "hi");
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(GatewayTest, StreamingRelaysEachEventAsItArrives) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", false, kStreamWithoutUsage)), &sink);
  ASSERT_TRUE(RunUntil([&] { return sink.writes.size() == 1; }));
  EXPECT_EQ(sink.status, 200);
  EXPECT_TRUE(sink.streaming);
  EXPECT_EQ(FindHeader(sink.headers, "content-type"), "text/event-stream");
  EXPECT_EQ(sink.writes[0], ChunkEvent(1));
  EXPECT_FALSE(sink.finished.has_value());
  EXPECT_FALSE(active->done());
  EXPECT_EQ(gateway_->active_requests(), 1u);

  server.OpenGate("chunk 2");
  ASSERT_TRUE(RunUntil([&] { return sink.writes.size() == 2; }));
  EXPECT_EQ(sink.writes[1], ChunkEvent(2));
  server.OpenGate("chunk 3");
  server.OpenGate("done");
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(sink.body, ChunkEvent(1) + ChunkEvent(2) + ChunkEvent(3) + "data: [DONE]\n\n");
  EXPECT_TRUE(active->done());
  EXPECT_EQ(FindHeader(server.requests()[0].headers, "accept"), "text/event-stream");
}

// The upstream's hop-by-hop headers, those its Connection header names, and Date stop at
// the gateway; the rest reach the client, for whole and streamed replies alike.
TEST_F(GatewayTest, UpstreamHopByHopHeadersAreNotRelayed) {
  for (const char* connection : {"keep-alive", "Keep-Alive, X-Hop", "close"}) {
    for (bool stream : {false, true}) {
      SCOPED_TRACE(absl::StrCat(connection, stream ? " stream" : " whole"));
      TestHttpServer server([&](TestConnection& c) {
        HttpHeaders headers = {{"content-type", stream ? "text/event-stream" : "application/json"},
                               {"Connection", connection},
                               {"keep-alive", "timeout=5"},
                               {"x-hop", "1"},
                               {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
                               {"x-kept", "2"}};
        if (!stream) {
          c.SendResponse(200, headers, CompletionJson("upstream-demo"));
          return;
        }
        c.StartChunked(200, headers);
        c.SendChunk(ChunkEvent(1));
        c.SendChunk("data: [DONE]\n\n");
        c.EndChunked();
      });
      MakeGateway(Config(server.Url("/v1")));
      RecordingSink sink;
      Serve(Post(ChatBody("demo", stream)), &sink);
      EXPECT_EQ(sink.status, 200);
      EXPECT_EQ(sink.finished, true);
      EXPECT_EQ(FindHeader(sink.headers, "x-kept"), "2");
      EXPECT_EQ(FindHeader(sink.headers, "x-hop").has_value(),
                std::string_view(connection) == "keep-alive" || std::string_view(connection) == "close");
      for (const char* gone : {"connection", "keep-alive", "date", "content-length",
                               "transfer-encoding"}) {
        EXPECT_FALSE(FindHeader(sink.headers, gone).has_value()) << gone;
      }
    }
  }
}

TEST_F(GatewayTest, UpstreamErrorIsMappedToAnOpenAiErrorBody) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(429, {{"content-type", "application/json"}},
                   R"({"error":{"message":"Rate limit reached for requests","type":"requests",)"
                   R"("param":null,"code":"rate_limit_exceeded"}})");
  });
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("demo", /*stream=*/true)), &sink);
  EXPECT_EQ(sink.status, 429);
  EXPECT_FALSE(sink.streaming);
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(FindHeader(sink.headers, "content-type"), "application/json");
  Json error = ErrorOf(sink);
  EXPECT_EQ(error["message"], "Rate limit reached for requests");
  EXPECT_EQ(error["code"], "rate_limit_exceeded");
}

TEST_F(GatewayTest, UnknownFieldsAreForwardedUpstream) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  std::string body =
      R"({"model":"demo","messages":[{"role":"user","content":"hi","x_msg_tag":{"k":[1,2]}}],)"
      R"("vendor_option":{"beam":4,"nested":[true,null]},"temperature":0.5})";
  Serve(Post(body), &sink);
  ASSERT_EQ(sink.status, 200);
  Json sent = Json::parse(server.requests()[0].body);
  EXPECT_EQ(sent["vendor_option"], Json::parse(R"({"beam":4,"nested":[true,null]})"));
  EXPECT_EQ(sent["messages"][0]["x_msg_tag"], Json::parse(R"({"k":[1,2]})"));
  EXPECT_EQ(sent["temperature"], 0.5);
  EXPECT_EQ(sent["model"], "upstream-demo");
}

TEST_F(GatewayTest, ReloadDuringAnOpenStreamFinishesOnTheOldSnapshot) {
  TestHttpServer old_upstream(OpenAiLike);
  TestHttpServer new_upstream(OpenAiLike);
  MakeGateway(Config(old_upstream.Url("/v1")));
  RecordingSink streaming_sink;
  std::unique_ptr<ActiveRequest> active =
      gateway_->Handle(Post(ChatBody("demo", false, kStreamWithoutUsage)), &streaming_sink);
  ASSERT_TRUE(RunUntil([&] { return streaming_sink.writes.size() == 1; }));

  // The new config moves "demo" elsewhere and drops "demo2".
  ASSERT_TRUE(store_
                  .Reload(absl::StrFormat(
                      R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
                          "models": {"demo": {"provider": "up", "upstream_model": "v2"}}})",
                      new_upstream.Url("/v1")))
                  .ok());
  EXPECT_EQ(store_.generation(), 2u);

  // New requests see the new snapshot...
  RecordingSink fresh;
  Serve(Post(ChatBody("demo")), &fresh);
  EXPECT_EQ(fresh.status, 200);
  ASSERT_EQ(new_upstream.requests().size(), 1u);
  EXPECT_EQ(Json::parse(new_upstream.requests()[0].body)["model"], "v2");
  RecordingSink gone;
  Serve(Post(ChatBody("demo2")), &gone);
  EXPECT_EQ(gone.status, 404);

  // ...while the open stream completes against the old one.
  old_upstream.OpenGate("chunk 2");
  old_upstream.OpenGate("chunk 3");
  old_upstream.OpenGate("done");
  ASSERT_TRUE(RunUntil([&] { return streaming_sink.finished.has_value(); }));
  EXPECT_EQ(streaming_sink.finished, true);
  EXPECT_EQ(streaming_sink.body,
            ChunkEvent(1) + ChunkEvent(2) + ChunkEvent(3) + "data: [DONE]\n\n");
  EXPECT_EQ(old_upstream.requests().size(), 1u);
}

TEST_F(GatewayTest, ListsModelsInOpenAiFormat) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1"), "[]",
                     R"([{"match": {"model": "smart"}, "target": "demo"}])"));
  RecordingSink sink;
  Serve(HttpRequest{.method = "GET", .path = "/v1/models"}, &sink);
  EXPECT_EQ(sink.status, 200);
  Json list = Json::parse(sink.body);
  EXPECT_EQ(list["object"], "list");
  ASSERT_EQ(list["data"].size(), 3u);
  EXPECT_EQ(list["data"][0], Json::parse(
      R"({"id":"demo","object":"model","created":0,"owned_by":"up"})"));
  EXPECT_EQ(list["data"][1]["id"], "demo2");
  EXPECT_EQ(list["data"][2]["id"], "smart");
  EXPECT_EQ(list["data"][2]["owned_by"], "modeenvoy");
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(GatewayTest, UnknownPathIs404) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(HttpRequest{.method = "GET", .path = "/v1/chat/nothing?x=1"}, &sink);
  EXPECT_EQ(sink.status, 404);
  EXPECT_EQ(ErrorOf(sink)["message"], "Invalid URL (GET /v1/chat/nothing?x=1)");
}

TEST_F(GatewayTest, KnownPathWithAnotherMethodIs405WithAllow) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(HttpRequest{.method = "GET", .path = "/v1/chat/completions?x=1"}, &sink);
  EXPECT_EQ(sink.status, 405);
  EXPECT_EQ(FindHeader(sink.headers, "allow"), "POST");
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("Method GET is not allowed"));
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(GatewayTest, InvalidRequestIs400WithParam) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink empty_messages;
  Serve(Post(R"({"model":"demo","messages":[]})"), &empty_messages);
  EXPECT_EQ(empty_messages.status, 400);
  EXPECT_EQ(ErrorOf(empty_messages)["param"], "messages");
  EXPECT_EQ(ErrorOf(empty_messages)["type"], "invalid_request_error");

  RecordingSink bad_json;
  Serve(Post("{nope"), &bad_json);
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(GatewayTest, UnknownModelIs404ModelNotFound) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("gpt-9")), &sink);
  EXPECT_EQ(sink.status, 404);
  EXPECT_EQ(ErrorOf(sink)["code"], "model_not_found");
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(GatewayTest, NoConfigurationIs503) {
  ConfigStore empty;
  absl::StatusOr<std::unique_ptr<Gateway>> gw =
      NewGateway({.config = &empty, .loop = loop_.get(), .upstream = client_.get()});
  ASSERT_TRUE(gw.ok());
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = (*gw)->Handle(Post(ChatBody("demo")), &sink);
  EXPECT_TRUE(active->done());  // answered before Handle returned
  EXPECT_EQ(sink.status, 503);
}

TEST_F(GatewayTest, AuthAndHeaderFiltersRunAroundTheUpstreamCall) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1"), R"([
      {"type": "api_key_auth", "config": {"keys": [{"name": "t", "key": "sk-client-000001"}]}},
      {"type": "headers", "config": {"request": {"set": {"x-team": "t"}},
                                     "response": {"set": {"x-served-by": "modeenvoy"}}}}])"));
  RecordingSink denied;
  Serve(Post(ChatBody("demo")), &denied);
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(ErrorOf(denied)["code"], "invalid_api_key");
  // The auth filter answered, so the headers filter after it never ran.
  EXPECT_FALSE(FindHeader(denied.headers, "x-served-by").has_value());
  EXPECT_TRUE(server.requests().empty());

  RecordingSink allowed;
  server.OpenGate("chunk 2");
  server.OpenGate("chunk 3");
  server.OpenGate("done");
  Serve(Post(ChatBody("demo", true), {{"authorization", "Bearer sk-client-000001"}}), &allowed);
  EXPECT_EQ(allowed.status, 200);
  EXPECT_EQ(FindHeader(allowed.headers, "x-served-by"), "modeenvoy");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(FindHeader(server.requests()[0].headers, "x-team"), "t");
  EXPECT_EQ(FindHeader(server.requests()[0].headers, "authorization"), "Bearer sk-upstream");
}

TEST_F(GatewayTest, UnreachableUpstreamIs502) {
  MakeGateway(Config(absl::StrFormat("http://127.0.0.1:%d/v1", UnusedPort())));
  RecordingSink sink;
  Serve(Post(ChatBody("demo")), &sink);
  EXPECT_EQ(sink.status, 502);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]),
              HasSubstr("upstream provider \"up\" failed: upstream request failed"));
}

TEST_F(GatewayTest, UpstreamFailureAfterStreamBeganEndsWithAnErrorEvent) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(ChunkEvent(1));
    c.Reset();
  });
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("demo", true)), &sink);
  EXPECT_EQ(sink.status, 200);
  // What arrived is relayed, then an OpenAI-style error event says why the stream ends, and
  // the body ends there (no [DONE]): never a silent clean end, and no connection cut after
  // the event, which SDKs reading to the end would report as a connection error.
  ASSERT_EQ(sink.body.rfind(ChunkEvent(1), 0), 0u) << sink.body;
  std::string rest = sink.body.substr(ChunkEvent(1).size());
  ASSERT_EQ(rest.rfind("data: ", 0), 0u) << rest;
  Json error = Json::parse(rest.substr(6));
  EXPECT_EQ(error["error"]["type"], "server_error");
  EXPECT_THAT(std::string(error["error"]["message"]), HasSubstr("upstream provider \"up\" failed"));
  EXPECT_EQ(rest.find("[DONE]"), std::string::npos) << rest;
  EXPECT_EQ(sink.finished, true);
}

TEST_F(GatewayTest, SinkBackpressurePausesTheUpstream) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(ChunkEvent(1));
    c.WaitGate("chunk 2");
    c.SendChunk(ChunkEvent(2));
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
    c.Signal("sent all");
  });
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  sink.accept = false;  // the client's socket is full after the first event
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", false, kStreamWithoutUsage)), &sink);
  ASSERT_TRUE(RunUntil([&] { return sink.writes.size() == 1; }));
  server.OpenGate("chunk 2");
  ASSERT_TRUE(server.WaitForEvent("sent all"));
  RunIdle();
  EXPECT_EQ(sink.writes.size(), 1u);  // held upstream while the sink is above high water
  sink.accept = true;
  active->OnSinkDrained();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(sink.body, ChunkEvent(1) + ChunkEvent(2) + "data: [DONE]\n\n");
}

TEST_F(GatewayTest, ClientDisconnectCancelsTheUpstreamCall) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(ChunkEvent(1));
    c.Signal(c.WaitForPeerClose() ? "gateway closed" : "gateway stayed");
  });
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", true)), &sink);
  ASSERT_TRUE(RunUntil([&] { return sink.writes.size() == 1; }));
  active.reset();
  EXPECT_TRUE(server.WaitForEvent("gateway closed"));
  RunIdle();
  EXPECT_FALSE(sink.finished.has_value());
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(GatewayTest, HostMayDestroyTheRequestInsideFinish) {
  TestHttpServer server(OpenAiLike);
  MakeGateway(Config(server.Url("/v1")));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  sink.on_finish = [&] { active.reset(); };
  active = gateway_->Handle(Post(ChatBody("demo")), &sink);
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(active, nullptr);
  EXPECT_EQ(sink.status, 200);
}

TEST_F(GatewayTest, WeightedRouteUsesTheInjectedDraw) {
  TestHttpServer server(OpenAiLike);
  uint64_t draw = 0;
  MakeGateway(Config(server.Url("/v1"), "[]",
                     R"([{"match": {"model": "smart"},
                          "targets": [{"model": "demo", "weight": 1},
                                      {"model": "demo2", "weight": 1}]}])"),
              [&] { return draw; });
  RecordingSink a, b;
  Serve(Post(ChatBody("smart")), &a);
  draw = 1;
  Serve(Post(ChatBody("smart")), &b);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_EQ(Json::parse(server.requests()[0].body)["model"], "upstream-demo");
  EXPECT_EQ(Json::parse(server.requests()[1].body)["model"], "up-2");
}

// A filter that looks something up asynchronously (here: a timer) before continuing, and
// rewrites streamed content on the way out.
class SlowLookupFilter : public Filter {
 public:
  explicit SlowLookupFilter(std::vector<std::string>* log) : log_(log) {}
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override {
    timer_ = callbacks.event_loop().NewTimer();
    timer_->Arm(absl::Milliseconds(1), [&callbacks, &ctx] {
      ctx.chat->model = "demo2";  // e.g. a routing decision from the lookup
      callbacks.Continue();
    });
    return FilterResult::Pause();
  }
  FilterStatus OnResponseEvents(RequestContext&, std::vector<SseEvent>& events,
                                FilterCallbacks&) override {
    for (SseEvent& e : events) {
      absl::StrReplaceAll({{"\"t1\"", "\"T1\""}}, &e.data);
    }
    return FilterStatus::kContinue;
  }
  void OnDestroy() override {
    log_->push_back("destroy");
    timer_.reset();  // cancels a pending lookup
  }

 private:
  std::vector<std::string>* log_;
  std::unique_ptr<Timer> timer_;
};

class SlowLookupFactory : public FilterFactory {
 public:
  explicit SlowLookupFactory(std::vector<std::string>* log) : log_(log) {}
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<SlowLookupFilter>(log_);
  }

 private:
  std::vector<std::string>* log_;
};

TEST_F(GatewayTest, CustomPausingFilterResumesAndRewritesTheStream) {
  TestHttpServer server(OpenAiLike);
  std::vector<std::string> log;
  Registry registry;
  ASSERT_TRUE(registry.filters()
                  .Register("slow_lookup",
                            [&log](std::string_view, const FilterBuildContext&)
                                -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                              return std::make_unique<SlowLookupFactory>(&log);
                            })
                  .ok());
  ConfigStore store({.registry = &registry});
  ASSERT_TRUE(store.Load(Config(server.Url("/v1"), R"([{"type": "slow_lookup"}])")).ok());
  auto gw = NewGateway({.config = &store, .loop = loop_.get(), .upstream = client_.get()});
  ASSERT_TRUE(gw.ok());

  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = (*gw)->Handle(Post(ChatBody("demo", true)), &sink);
  EXPECT_FALSE(active->done());
  server.OpenGate("chunk 2");
  server.OpenGate("chunk 3");
  server.OpenGate("done");
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(Json::parse(server.requests()[0].body)["model"], "up-2");  // re-resolved
  EXPECT_THAT(sink.writes[0], HasSubstr("\"content\":\"T1\""));
  EXPECT_THAT(log, ElementsAre("destroy"));

  // Client leaves while the filter is still paused: OnDestroy cancels the lookup, nothing
  // reaches the upstream or the sink.
  RecordingSink left;
  std::unique_ptr<ActiveRequest> gone = (*gw)->Handle(Post(ChatBody("demo")), &left);
  gone.reset();
  RunIdle();
  EXPECT_THAT(log, ElementsAre("destroy", "destroy"));
  EXPECT_EQ(left.header_calls, 0);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(GatewayTest, RejectsMissingOptions) {
  EXPECT_EQ(NewGateway({}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewGateway({.config = &store_, .loop = loop_.get()}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
