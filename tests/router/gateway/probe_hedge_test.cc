// tests/router/gateway/probe_hedge_test.cc: the "router" policy's active health probes and
// hedged attempts inside the engine, on virtual time (SimEventLoop), with a fake upstream
// client on the same loop. Probes: sent on the gateway's loop through the deployment's
// dialect (URL, auth), thresholds eject and return the deployment, a timeout is a failure,
// state shows at GET /admin/upstreams, survives a reload for unchanged deployments, stops
// for removed ones and after the gateway is gone. Hedging: a slow first deployment loses to
// the hedge (cancelled, not a failure), a fast one is never hedged, two failures fall back
// per plan, a stream is never hedged, a client that leaves cancels both, the request deadline
// cancels and reports both legs, a first leg cut by its per-try timeout leaves the hedge.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "modeenvoy/router/gateway.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// How one upstream host answers (keyed by the URL's host, e.g. "a.test").
struct Host {
  int status = 200;
  bool hang = false;
  absl::Duration delay = absl::Milliseconds(100);
};

// Providers on the test's loop: every call to host H answers as hosts[H] says, after its
// delay; a 200 chat answer says which host answered ("content": H).
class FakeUpstream final : public UpstreamClient {
 public:
  explicit FakeUpstream(SimEventLoop* loop) : loop_(loop), live_(std::make_shared<int>(0)) {}

  std::map<std::string, Host> hosts;
  struct Started {
    std::string host;
    UpstreamRequest request;
    absl::Time at;
    bool probe() const { return request.method == "GET" || request.body.find("\"ping\"") != std::string::npos; }
  };
  std::vector<Started> started;
  int live() const { return *live_; }
  int Calls(std::string_view host, bool probes) const {
    int n = 0;
    for (const Started& s : started) n += s.host == host && s.probe() == probes ? 1 : 0;
    return n;
  }

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler* handler) override {
    std::string host = request.url.substr(7, request.url.find('/', 7) - 7);  // http://H/...
    started.push_back({host, request, loop_->fake_clock().Now()});
    Host h = hosts[host];
    const bool embeddings = absl::EndsWith(request.url, "/embeddings");
    auto call = std::make_unique<Call>(loop_, handler, h.status, host, live_, embeddings);
    if (!h.hang) {
      Call* raw = call.get();
      call->timer->Arm(h.delay, [raw] { raw->Answer(); });
    }
    return call;
  }

 private:
  class Call final : public UpstreamCall {
   public:
    Call(SimEventLoop* loop, UpstreamHandler* handler, int status, std::string host,
         std::shared_ptr<int> live, bool embeddings)
        : handler(handler), status(status), host(std::move(host)), timer(loop->NewTimer()),
          live(std::move(live)), embeddings(embeddings) {
      ++*this->live;
    }
    ~Call() override { --*live; }
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }
    void Answer() {
      handler->OnHeaders(status, {{"content-type", "application/json"}});
      if (status != 200) {
        handler->OnData(R"({"error":{"message":"scripted failure","type":"server_error"}})");
      } else if (embeddings) {
        // The vector's one value says which host answered: a.test 1, b.test 2, c.test 3.
        handler->OnData(absl::StrFormat(
            R"({"object":"list","data":[{"object":"embedding","index":0,"embedding":[%d]}],)"
            R"("model":"m","usage":{"prompt_tokens":1,"total_tokens":1}})",
            host[0] - 'a' + 1));
      } else {
        handler->OnData(absl::StrFormat(
            R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[)"
            R"({"index":0,"message":{"role":"assistant","content":"%s"},)"
            R"("finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,)"
            R"("total_tokens":4}})",
            host));
      }
      handler->OnComplete(absl::OkStatus());
    }
    UpstreamHandler* handler;
    int status;
    std::string host;
    std::unique_ptr<Timer> timer;
    std::shared_ptr<int> live;
    bool embeddings;
  };
  SimEventLoop* loop_;
  std::shared_ptr<int> live_;
};

struct Exchange {
  RecordingSink sink{/*check_order=*/false};
  std::unique_ptr<ActiveRequest> active;
  int status() const { return sink.status; }
  // Which host answered (the fake's content).
  std::string answered_by() const {
    Json body = Json::parse(sink.body, nullptr, false);
    if (!body.is_object() || !body.contains("choices")) return "";
    return body["choices"][0]["message"]["content"].get<std::string>();
  }
};

constexpr char kModels[] = R"(
  "providers": {"p-a": {"type": "openai", "base_url": "http://a.test/v1", "api_key": "sk-a"},
                "p-b": {"type": "openai", "base_url": "http://b.test/v1", "api_key": "sk-b"},
                "p-c": {"type": "openai", "base_url": "http://c.test/v1"}},
  "models": {"m-a": {"provider": "p-a", "upstream_model": "up-a"},
             "m-b": {"provider": "p-b", "upstream_model": "up-b"},
             "m-c": {"provider": "p-c", "upstream_model": "up-c"}})";

std::string Doc(std::string_view route_keys) {
  return absl::StrFormat(
      R"({%s, "routes": [{"match": {"model": "pool"}, "policy": "router", %s}]})", kModels,
      route_keys);
}

class ProbeHedgeTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(RegisterRouterGatewayComponent(&registry_).ok()); }

  absl::Status Load(std::string_view route_keys) {
    if (config_ == nullptr) {
      config_ = std::make_unique<ConfigStore>(
          ConfigLoadOptions{.registry = &registry_, .services = &services_});
    }
    absl::Status loaded = config_->Load(Doc(route_keys));
    if (!loaded.ok() || gateway_ != nullptr) return loaded;
    GatewayOptions options;
    options.config = config_.get();
    options.loop = loop_.get();
    options.upstream = &upstream_;
    auto gateway = NewGateway(std::move(options));
    if (!gateway.ok()) return gateway.status();
    gateway_ = std::move(*gateway);
    return absl::OkStatus();
  }

  std::unique_ptr<Exchange> Start(bool stream = false) {
    HttpRequest r;
    r.method = "POST";
    r.path = "/v1/chat/completions";
    r.headers.emplace_back("content-type", "application/json");
    Json body = {{"model", "pool"},
                 {"messages", Json::array({{{"role", "user"}, {"content", "hello"}}})}};
    if (stream) body["stream"] = true;
    r.body = body.dump();
    r.remote_address = "127.0.0.1:1";
    auto ex = std::make_unique<Exchange>();
    ex->active = gateway_->Handle(std::move(r), &ex->sink);
    return ex;
  }

  std::unique_ptr<Exchange> StartEmbeddings() {
    HttpRequest r;
    r.method = "POST";
    r.path = "/v1/embeddings";
    r.headers.emplace_back("content-type", "application/json");
    r.body = R"({"model": "pool", "input": "hello"})";
    r.remote_address = "127.0.0.1:1";
    auto ex = std::make_unique<Exchange>();
    ex->active = gateway_->Handle(std::move(r), &ex->sink);
    return ex;
  }

  std::unique_ptr<Exchange> Send(bool stream = false) {
    std::unique_ptr<Exchange> ex = Start(stream);
    loop_->AdvanceBy(absl::Seconds(5));
    EXPECT_TRUE(ex->sink.finished.has_value());
    return ex;
  }

  // GET /admin/upstreams: deployment `id`.
  Json Upstream(std::string_view id) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/admin/upstreams";
    r.remote_address = "127.0.0.1:1";
    Exchange ex;
    ex.active = gateway_->Handle(std::move(r), &ex.sink);
    loop_->RunUntilIdle();
    Json body = Json::parse(ex.sink.body, nullptr, false);
    for (const Json& router : body["routers"]) {
      for (const Json& pool : router["pools"]) {
        for (const Json& d : pool["deployments"]) {
          if (d["id"] == id) return d;
        }
      }
    }
    ADD_FAILURE() << "no deployment " << id << " in " << ex.sink.body;
    return Json();
  }

  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  FakeUpstream upstream_{loop_.get()};
  Registry registry_;
  Services services_{ServicesOptions{
      .clock = &loop_->fake_clock(),
      .random = [n = uint64_t{0}]() mutable {
        uint64_t z = (n += 0x9e3779b97f4a7c15ULL);  // splitmix64
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
      }}};
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<Gateway> gateway_;
};

// a probed every second (no jitter), 2 failures mark it unhealthy, 2 successes bring it
// back; b has no health check.
constexpr char kProbed[] = R"(
  "pools": [{"name": "pool", "lb": {"policy": "round_robin"},
             "deployments": [
               {"id": "a", "model": "m-a",
                "health_check": {"interval_ms": 1000, "timeout_ms": 300, "jitter_ms": 0,
                                 "unhealthy_threshold": 2, "healthy_threshold": 2}},
               {"id": "b", "model": "m-b"}]}])";

TEST_F(ProbeHedgeTest, ProbesAreBuiltByTheDialectAndSentOnTheGatewaysLoop) {
  ASSERT_TRUE(Load(kProbed).ok());
  loop_->AdvanceBy(absl::Milliseconds(1));  // the jittered start is 0 here (jitter_ms 0)
  ASSERT_EQ(upstream_.started.size(), 1u);
  const FakeUpstream::Started& probe = upstream_.started[0];
  EXPECT_EQ(probe.host, "a.test");
  EXPECT_EQ(probe.request.method, "POST");
  EXPECT_EQ(probe.request.url, "http://a.test/v1/chat/completions");
  EXPECT_EQ(FindHeader(probe.request.headers, "authorization"),
            std::optional<std::string_view>("Bearer sk-a"));
  Json body = Json::parse(probe.request.body);
  EXPECT_EQ(body["model"], "up-a");
  EXPECT_EQ(body["max_tokens"], 1);
  EXPECT_FALSE(body.value("stream", false));
  EXPECT_EQ(probe.request.timeouts.total, absl::Milliseconds(300));
  // Answered after 100 ms; the next one is due an interval after that report.
  loop_->AdvanceBy(absl::Milliseconds(1098));
  EXPECT_EQ(upstream_.started.size(), 1u);
  loop_->AdvanceBy(absl::Milliseconds(2));
  EXPECT_EQ(upstream_.started.size(), 2u);
  EXPECT_EQ(upstream_.Calls("b.test", /*probes=*/true), 0);
  Json a = Upstream("a");
  ASSERT_TRUE(a.contains("probe")) << a.dump();
  EXPECT_EQ(a["probe"]["probes"], 1);
  EXPECT_EQ(a["probe"]["last_ok"], true);
  EXPECT_EQ(a["probe"]["consecutive_successes"], 1);
  EXPECT_EQ(a["probe"]["in_flight"], true);
  EXPECT_FALSE(Upstream("b").contains("probe"));
}

TEST_F(ProbeHedgeTest, TheFirstProbeStartsAfterAJitteredDelayBelowTheLargestJitter) {
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"interval_ms": 1000, "timeout_ms": 300, "jitter_ms": 400}},
      {"id": "b", "model": "m-b", "health_check": {"interval_ms": 1000, "timeout_ms": 300, "jitter_ms": 100}}]}])").ok());
  const absl::Time t0 = loop_->fake_clock().Now();
  loop_->RunUntilIdle();
  EXPECT_EQ(upstream_.started.size(), 0u);  // not at once (a draw of exactly 0 aside)
  loop_->AdvanceBy(absl::Milliseconds(400));
  ASSERT_EQ(upstream_.started.size(), 2u);  // both together, within [0, 400 ms)
  EXPECT_GT(upstream_.started[0].at - t0, absl::ZeroDuration());
  EXPECT_LT(upstream_.started[0].at - t0, absl::Milliseconds(400));
  EXPECT_EQ(upstream_.started[1].at, upstream_.started[0].at);
}

TEST_F(ProbeHedgeTest, FailedProbesEjectTheDeploymentAndPassingOnesBringItBack) {
  upstream_.hosts["a.test"] = {.status = 503};
  ASSERT_TRUE(Load(kProbed).ok());
  // Probes at 0 and 1.1 s fail (503 after 100 ms each): unhealthy from 1.2 s.
  loop_->AdvanceBy(absl::Milliseconds(1250));
  Json a = Upstream("a");
  EXPECT_EQ(a["probe"]["consecutive_failures"], 2);
  EXPECT_EQ(a["probe"]["healthy"], false);
  EXPECT_EQ(a["probe"]["last_error"], "HTTP 503");
  EXPECT_EQ(a["healthy"], false);
  EXPECT_EQ(a["ejected"], false);  // not the outlier detector's doing
  // Requests avoid a while it is unhealthy.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Send()->answered_by(), "b.test");
  EXPECT_EQ(upstream_.Calls("a.test", /*probes=*/false), 0);
  // a recovers: two passing probes later requests reach it again.
  upstream_.hosts["a.test"] = {.status = 200};
  loop_->AdvanceBy(absl::Seconds(3));
  a = Upstream("a");
  EXPECT_EQ(a["probe"]["healthy"], true);
  EXPECT_GE(a["probe"]["consecutive_successes"], 2);
  EXPECT_EQ(a["probe"]["last_error"], "");
  EXPECT_EQ(a["healthy"], true);
  int to_a = 0;
  for (int i = 0; i < 4; ++i) to_a += Send()->answered_by() == "a.test" ? 1 : 0;
  EXPECT_EQ(to_a, 2);  // round robin over both again
}

TEST_F(ProbeHedgeTest, AProbeWithoutAnswerTimesOutAsAFailureAndIsCancelled) {
  upstream_.hosts["a.test"] = {.hang = true};
  ASSERT_TRUE(Load(kProbed).ok());
  loop_->AdvanceBy(absl::Milliseconds(299));
  EXPECT_EQ(upstream_.live(), 1);
  loop_->AdvanceBy(absl::Milliseconds(2));
  EXPECT_EQ(upstream_.live(), 0);  // cancelled at its 300 ms timeout
  Json a = Upstream("a");
  EXPECT_EQ(a["probe"]["consecutive_failures"], 1);
  EXPECT_EQ(a["probe"]["last_error"], "probe timeout after 300ms");
}

TEST_F(ProbeHedgeTest, AGetProbeAsksThePathAtTheProvidersOriginWithItsAuthentication) {
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a",
       "health_check": {"probe": "get", "path": "/v1/models", "jitter_ms": 0}}]}])").ok());
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_EQ(upstream_.started.size(), 1u);
  const UpstreamRequest& r = upstream_.started[0].request;
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://a.test/v1/models");
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(FindHeader(r.headers, "authorization"),
            std::optional<std::string_view>("Bearer sk-a"));
  EXPECT_EQ(FindHeader(r.headers, "content-type"), std::nullopt);
}

TEST_F(ProbeHedgeTest, AReloadKeepsProbeStateOfUnchangedDeploymentsAndStopsRemovedOnes) {
  upstream_.hosts["a.test"] = {.status = 503};
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"interval_ms": 1000, "jitter_ms": 0,
                                                  "timeout_ms": 300, "unhealthy_threshold": 2}},
      {"id": "c", "model": "m-c", "health_check": {"interval_ms": 1000, "jitter_ms": 0,
                                                  "timeout_ms": 300}}]}])").ok());
  loop_->AdvanceBy(absl::Milliseconds(1250));
  ASSERT_EQ(Upstream("a")["probe"]["healthy"], false);
  const int probes_c = upstream_.Calls("c.test", /*probes=*/true);
  ASSERT_EQ(probes_c, 2);
  // c leaves; a stays as it was. The new configuration is applied by its first request.
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"interval_ms": 1000, "jitter_ms": 0,
                                                  "timeout_ms": 300, "unhealthy_threshold": 2}},
      {"id": "b", "model": "m-b"}]}])").ok());
  EXPECT_EQ(Send()->answered_by(), "b.test");  // a is still unhealthy after the reload
  const int probes_c_at_reload = upstream_.Calls("c.test", /*probes=*/true);
  loop_->AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(upstream_.Calls("c.test", /*probes=*/true), probes_c_at_reload);
  Json a = Upstream("a");
  EXPECT_EQ(a["probe"]["healthy"], false);
  EXPECT_GE(a["probe"]["probes"], 6);  // its record went on across the reload
  EXPECT_GE(a["probe"]["consecutive_failures"], 6);
}

TEST_F(ProbeHedgeTest, NoProbeIsSentAfterTheGatewayIsGone) {
  upstream_.hosts["a.test"] = {.hang = true};
  ASSERT_TRUE(Load(kProbed).ok());
  loop_->AdvanceBy(absl::Milliseconds(10));
  ASSERT_EQ(upstream_.live(), 1);
  gateway_.reset();
  EXPECT_EQ(upstream_.live(), 0);  // the probe in flight was cancelled
  const size_t sent = upstream_.started.size();
  loop_->AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(upstream_.started.size(), sent);
}

TEST_F(ProbeHedgeTest, ProbeConfigurationErrorsNameTheField) {
  absl::Status s = Load(R"("pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"probe": "head"}}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].health_check.probe: "
                                     "must be \"chat\" or \"get\""));
  s = Load(R"("pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"body": "{}"}}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].health_check.body: "
                                     "not a key"));
  s = Load(R"("pools": [{"name": "pool", "deployments": [
      {"id": "a", "model": "m-a", "health_check": {"path": "/v1/models"}}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].health_check.path: "
                                     "only for \"probe\": \"get\""));
  s = Load(R"("pools": [{"name": "pool", "hedge": {"delay_ms": 0},
      "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].hedge.delay_ms"));
}

// Three deployments, round robin (a first), hedged after a fixed 50 ms.
constexpr char kHedged[] = R"(
  "pools": [{"name": "pool", "lb": {"policy": "round_robin"}, "hedge": {"delay_ms": 50},
             "retry": {"max_attempts": 3, "backoff_base_ms": 1, "backoff_max_ms": 1},
             "deployments": [{"id": "a", "model": "m-a"}, {"id": "b", "model": "m-b"},
                             {"id": "c", "model": "m-c"}]}])";

TEST_F(ProbeHedgeTest, ASlowFirstDeploymentIsHedgedAndTheHedgeWins) {
  upstream_.hosts["a.test"] = {.delay = absl::Seconds(1)};
  upstream_.hosts["b.test"] = {.delay = absl::Milliseconds(100)};
  upstream_.hosts["c.test"] = {.delay = absl::Milliseconds(100)};
  ASSERT_TRUE(Load(kHedged).ok());
  const absl::Time t0 = loop_->fake_clock().Now();
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(49));
  ASSERT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(upstream_.started[0].host, "a.test");
  loop_->AdvanceBy(absl::Milliseconds(2));
  ASSERT_EQ(upstream_.started.size(), 2u);  // the hedge, 50 ms after the first attempt
  const std::string hedge_host = upstream_.started[1].host;
  EXPECT_NE(hedge_host, "a.test");
  EXPECT_EQ(upstream_.started[1].at - t0, absl::Milliseconds(50));
  loop_->AdvanceBy(absl::Milliseconds(100));  // the hedge answered at 150 ms
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(ex->answered_by(), hedge_host);
  EXPECT_EQ(upstream_.live(), 0);  // a's call was cancelled
  Json a = Upstream("a");
  EXPECT_EQ(a["cancelled"], 1);
  EXPECT_EQ(a["successes"], 0);
  EXPECT_EQ(a["consecutive_failures"], 0);  // a cancelled loser is no failure
  EXPECT_EQ(a["window"]["failures"], 0);
  EXPECT_EQ(a["in_flight"], 0);
  Json h = Upstream(hedge_host == "b.test" ? "b" : "c");
  EXPECT_EQ(h["hedges"], 1);
  EXPECT_EQ(h["successes"], 1);
  EXPECT_EQ(h["in_flight"], 0);
  loop_->AdvanceBy(absl::Seconds(2));
  EXPECT_EQ(upstream_.started.size(), 2u);
}

// An embeddings call is hedged like a whole chat answer: the faster leg's vectors win.
TEST_F(ProbeHedgeTest, ASlowEmbeddingsCallIsHedgedAndTheHedgeWins) {
  upstream_.hosts["a.test"] = {.delay = absl::Seconds(1)};
  upstream_.hosts["b.test"] = {.delay = absl::Milliseconds(100)};
  upstream_.hosts["c.test"] = {.delay = absl::Milliseconds(100)};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = StartEmbeddings();
  loop_->AdvanceBy(absl::Milliseconds(51));
  ASSERT_EQ(upstream_.started.size(), 2u);  // the hedge, 50 ms after the first attempt
  EXPECT_EQ(upstream_.started[0].host, "a.test");
  const std::string hedge_host = upstream_.started[1].host;
  EXPECT_NE(hedge_host, "a.test");
  EXPECT_TRUE(absl::EndsWith(upstream_.started[1].request.url, "/embeddings"))
      << upstream_.started[1].request.url;
  EXPECT_EQ(Json::parse(upstream_.started[1].request.body)["model"],
            hedge_host == "b.test" ? "up-b" : "up-c");
  loop_->AdvanceBy(absl::Milliseconds(100));
  ASSERT_TRUE(ex->sink.finished.has_value());
  ASSERT_EQ(ex->status(), 200) << ex->sink.body;
  Json body = Json::parse(ex->sink.body);
  EXPECT_EQ(body["data"][0]["embedding"][0], hedge_host[0] - 'a' + 1) << ex->sink.body;
  EXPECT_EQ(upstream_.live(), 0);  // a's call was cancelled
  EXPECT_EQ(Upstream("a")["cancelled"], 1);
  EXPECT_EQ(Upstream(hedge_host == "b.test" ? "b" : "c")["hedges"], 1);
}

TEST_F(ProbeHedgeTest, AFastFirstDeploymentIsNotHedged) {
  upstream_.hosts["a.test"] = {.delay = absl::Milliseconds(20)};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ex->answered_by(), "a.test");
  EXPECT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(Upstream("a")["cancelled"], 0);
}

TEST_F(ProbeHedgeTest, WhenBothFailTheRequestFallsBackAsPlanned) {
  upstream_.hosts["a.test"] = {.status = 500, .delay = absl::Milliseconds(200)};
  upstream_.hosts["b.test"] = {.status = 500, .delay = absl::Milliseconds(100)};
  upstream_.hosts["c.test"] = {.status = 500, .delay = absl::Milliseconds(100)};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(60));
  ASSERT_EQ(upstream_.started.size(), 2u);
  const std::string hedge_host = upstream_.started[1].host;
  const std::string third = hedge_host == "b.test" ? "c.test" : "b.test";
  upstream_.hosts[third] = {.status = 200, .delay = absl::Milliseconds(100)};
  // The hedge fails at 150 ms (a still out: nothing planned), a at 200 ms: the plan's next
  // attempt goes to the third deployment after its backoff.
  loop_->AdvanceBy(absl::Milliseconds(100));
  EXPECT_EQ(upstream_.started.size(), 2u);
  loop_->AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(upstream_.started.size(), 3u);
  EXPECT_EQ(upstream_.started[2].host, third);
  EXPECT_GE(upstream_.started[2].at - upstream_.started[0].at, absl::Milliseconds(200));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(ex->answered_by(), third);
  Json a = Upstream("a");
  EXPECT_EQ(a["consecutive_failures"], 1);
  EXPECT_EQ(a["cancelled"], 0);
}

TEST_F(ProbeHedgeTest, WhenTheFirstFailsTheHedgeCarriesTheRequest) {
  upstream_.hosts["a.test"] = {.status = 500, .delay = absl::Milliseconds(80)};
  upstream_.hosts["b.test"] = {.delay = absl::Milliseconds(100)};
  upstream_.hosts["c.test"] = {.delay = absl::Milliseconds(100)};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  ASSERT_EQ(upstream_.started.size(), 2u);  // no retry: the hedge answered
  // The hedge started at 50 ms, before the first attempt's 500 at 80 ms (a retry would
  // have started after it).
  EXPECT_EQ(upstream_.started[1].at - upstream_.started[0].at, absl::Milliseconds(50));
  EXPECT_EQ(ex->answered_by(), upstream_.started[1].host);
  EXPECT_EQ(Upstream("a")["consecutive_failures"], 1);  // its failure counted
}

TEST_F(ProbeHedgeTest, AStreamedRequestIsNeverHedged) {
  upstream_.hosts["a.test"] = {.delay = absl::Seconds(1)};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = Send(/*stream=*/true);
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(upstream_.started.size(), 1u);
}

TEST_F(ProbeHedgeTest, AClientThatLeavesCancelsBothAttempts) {
  upstream_.hosts["a.test"] = {.hang = true};
  upstream_.hosts["b.test"] = {.hang = true};
  upstream_.hosts["c.test"] = {.hang = true};
  ASSERT_TRUE(Load(kHedged).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(100));
  ASSERT_EQ(upstream_.live(), 2);
  ex->active.reset();
  EXPECT_EQ(upstream_.live(), 0);
  for (const char* id : {"a", "b", "c"}) {
    EXPECT_EQ(Upstream(id)["in_flight"], 0) << id;
    EXPECT_EQ(Upstream(id)["consecutive_failures"], 0) << id;
  }
}

TEST_F(ProbeHedgeTest, TheRequestDeadlineCancelsAndReportsBothLegsOfAHedge) {
  upstream_.hosts["a.test"] = {.hang = true};
  upstream_.hosts["b.test"] = {.hang = true};
  upstream_.hosts["c.test"] = {.hang = true};
  ASSERT_TRUE(Load(absl::StrCat(R"("request_timeout_ms": 300,)", kHedged)).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(299));
  ASSERT_EQ(upstream_.live(), 2);  // the first attempt and its hedge
  EXPECT_FALSE(ex->sink.finished.has_value());
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 504) << ex->sink.body;
  EXPECT_THAT(ex->sink.body, HasSubstr("request_timeout_ms (300 ms)"));
  EXPECT_EQ(upstream_.live(), 0);
  const std::string hedge_id = upstream_.started[1].host == "b.test" ? "b" : "c";
  for (const std::string& id : {std::string("a"), hedge_id}) {
    Json d = Upstream(id);
    EXPECT_EQ(d["in_flight"], 0) << id;
    EXPECT_EQ(d["consecutive_failures"], 1) << id;  // reported as timeouts
    EXPECT_EQ(d["cancelled"], 0) << id;
  }
  loop_->AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(upstream_.started.size(), 2u);
}

TEST_F(ProbeHedgeTest, AFirstLegTimedOutPerTryLeavesTheHedgeToCarryTheRequest) {
  upstream_.hosts["a.test"] = {.hang = true};
  upstream_.hosts["b.test"] = {.delay = absl::Milliseconds(300)};
  upstream_.hosts["c.test"] = {.delay = absl::Milliseconds(300)};
  constexpr char kHedgedPerTry[] = R"(
    "pools": [{"name": "pool", "lb": {"policy": "round_robin"}, "hedge": {"delay_ms": 50},
               "retry": {"max_attempts": 3, "backoff_base_ms": 1, "backoff_max_ms": 1,
                         "per_try_timeout_ms": 200},
               "deployments": [{"id": "a", "model": "m-a"}, {"id": "b", "model": "m-b"},
                               {"id": "c", "model": "m-c"}]}])";
  ASSERT_TRUE(Load(kHedgedPerTry).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(200));  // a's per-try timeout; the hedge is out
  EXPECT_EQ(upstream_.live(), 1);
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_EQ(Upstream("a")["consecutive_failures"], 1);
  loop_->AdvanceBy(absl::Milliseconds(200));  // the hedge answers at 350 ms
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(ex->answered_by(), upstream_.started[1].host);
  EXPECT_EQ(upstream_.started.size(), 2u);  // no retry: the hedge carried the request
  EXPECT_EQ(Upstream("a")["cancelled"], 0);
}

}  // namespace
}  // namespace modeenvoy
