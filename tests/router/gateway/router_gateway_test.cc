// tests/router/gateway/router_gateway_test.cc: the "router" routing policy inside the engine
// and GET /admin/upstreams, on virtual time (SimEventLoop): retries on another deployment
// after the plan's backoff (waited on the loop), outcomes reported back (ejection, counts),
// a client that leaves cancels every attempt, a reload keeps the health of unchanged
// deployments without failing requests in flight, the overflow queue driven by the engine
// (wait, wake, queue full, queue timeout, deadline, a waiter that leaves, a wake from another
// thread), the tiered rules' inputs (prompt tokens, key tier), the per-try timeout and the
// request deadline applied to upstream calls, and strict configuration errors.
// Providers are a fake UpstreamClient on the same loop, scripted per upstream model.
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/router/gateway.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// How one upstream model answers.
struct Behaviour {
  int status = 200;       // 200, or an error status with an OpenAI error body
  bool hang = false;      // never answers
  std::string retry_after;  // sent with an error status when not empty
  std::string error_body;   // an error status's body; empty: an OpenAI error body
  // A 200 stream sends its head and first chunk after the call's delay, and the rest (a
  // second chunk, "[DONE]", the end) this much later; zero: all at once.
  absl::Duration stream_rest_after = absl::ZeroDuration();
  // Not OK: the call ends with this transport failure instead of an answer.
  absl::Status transport;
  int completion_tokens = 1;  // the usage a whole (non-streamed) answer reports
  // > 0: a stream with stream_rest_after reports this usage (a usage-only chunk before
  // "[DONE]"); 0: it reports none.
  int stream_completion_tokens = 0;
};

// An OpenAI-compatible provider on the test's loop: answers after `delay`, per upstream
// model as `behaviour` says; records when each call started and how many calls are live.
class FakeUpstream final : public UpstreamClient {
 public:
  explicit FakeUpstream(SimEventLoop* loop) : loop_(loop), live_(std::make_shared<int>(0)) {}

  std::map<std::string, Behaviour> behaviour;
  absl::Duration delay = absl::Milliseconds(100);
  struct Started {
    std::string model;
    absl::Time at;
  };
  std::vector<Started> started;
  int live() const { return *live_; }
  int CallsTo(std::string_view model) const {
    int n = 0;
    for (const Started& s : started) n += s.model == model ? 1 : 0;
    return n;
  }

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler* handler) override {
    Json body = Json::parse(request.body);
    std::string model = body.value("model", "");
    started.push_back({model, loop_->fake_clock().Now()});
    Behaviour b = behaviour[model];
    auto call = std::make_unique<Call>(loop_, handler, b, body.value("stream", false), live_);
    if (!b.hang) {
      Call* raw = call.get();
      call->timer->Arm(delay, [raw] { raw->Answer(); });
    }
    return call;
  }

 private:
  class Call final : public UpstreamCall {
   public:
    Call(SimEventLoop* loop, UpstreamHandler* handler, Behaviour b, bool stream,
         std::shared_ptr<int> live)
        : handler(handler), b(std::move(b)), stream(stream), timer(loop->NewTimer()),
          live(std::move(live)) {
      ++*this->live;
    }
    ~Call() override { --*live; }
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }
    void Answer() {
      if (!b.transport.ok()) {
        handler->OnComplete(b.transport);
        return;
      }
      if (b.status != 200) {
        HttpHeaders headers = {{"content-type", "application/json"}};
        if (!b.retry_after.empty()) headers.emplace_back("retry-after", b.retry_after);
        handler->OnHeaders(b.status, headers);
        handler->OnData(b.error_body.empty()
                            ? R"({"error":{"message":"scripted failure","type":"server_error"}})"
                            : b.error_body);
        handler->OnComplete(absl::OkStatus());
        return;
      }
      if (stream && b.stream_rest_after > absl::ZeroDuration()) {
        handler->OnHeaders(200, {{"content-type", "text/event-stream"}});
        handler->OnData(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
            "\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
            "\"first\"},\"finish_reason\":null}]}\n\n");
        timer->Arm(b.stream_rest_after, [this] {
          std::string usage;
          if (b.stream_completion_tokens > 0) {
            usage = absl::StrFormat(
                "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,"
                "\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
                "\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                b.stream_completion_tokens, 3 + b.stream_completion_tokens);
          }
          handler->OnData(
              "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,"
              "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"last\"},"
              "\"finish_reason\":\"stop\"}]}\n\n" + usage + "data: [DONE]\n\n");
          handler->OnComplete(absl::OkStatus());
        });
        return;
      }
      if (stream) {
        handler->OnHeaders(200, {{"content-type", "text/event-stream"}});
        handler->OnData(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":"
            "\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
            "\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        handler->OnComplete(absl::OkStatus());
        return;
      }
      handler->OnHeaders(200, {{"content-type", "application/json"}});
      handler->OnData(absl::StrFormat(
          R"({"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,)"
          R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],)"
          R"("usage":{"prompt_tokens":3,"completion_tokens":%d,"total_tokens":%d}})",
          b.completion_tokens, 3 + b.completion_tokens));
      handler->OnComplete(absl::OkStatus());
    }
    UpstreamHandler* handler;
    Behaviour b;
    bool stream;
    std::unique_ptr<Timer> timer;
    std::shared_ptr<int> live;
  };
  SimEventLoop* loop_;
  std::shared_ptr<int> live_;
};

struct Exchange {
  RecordingSink sink{/*check_order=*/false};
  std::unique_ptr<ActiveRequest> active;
  int status() const { return sink.status; }
};

// Three models on three providers; the route's router configuration is the test's.
constexpr char kModels[] = R"(
  "providers": {"p-a": {"type": "openai", "base_url": "http://a.test/v1"},
                "p-b": {"type": "openai", "base_url": "http://b.test/v1"},
                "p-c": {"type": "openai", "base_url": "http://c.test/v1"}},
  "models": {"m-a": {"provider": "p-a", "upstream_model": "up-a"},
             "m-b": {"provider": "p-b", "upstream_model": "up-b"},
             "m-c": {"provider": "p-c", "upstream_model": "up-c"}})";

std::string Doc(std::string_view route_keys, std::string_view extra = "",
                std::string_view models = kModels) {
  return absl::StrFormat(
      R"({%s, "routes": [{"match": {"model": "pool"}, "policy": "router", %s}]%s})", models,
      route_keys, extra);
}

// a (always 500) and b (healthy) in one pool, round robin: a is asked first.
constexpr char kTwo[] = R"(
  "pools": [{"name": "pool", "lb": {"policy": "round_robin"},
             "outlier": {"consecutive_failures": 2, "base_ejection_ms": 60000,
                         "ejection_jitter_ms": 1},
             "retry": {"max_attempts": 3, "backoff_base_ms": 200, "backoff_max_ms": 200},
             "deployments": [{"id": "a", "model": "m-a"}, {"id": "b", "model": "m-b"}]}])";

class RouterGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterRouterGatewayComponent(&registry_).ok());
    upstream_.behaviour["up-a"] = {.status = 500};
  }

  absl::Status Load(std::string_view route_keys, std::string_view extra = "") {
    if (config_ == nullptr) {
      config_ = std::make_unique<ConfigStore>(
          ConfigLoadOptions{.registry = &registry_, .services = &services_});
    }
    absl::Status loaded = config_->Load(Doc(route_keys, extra, models_));
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

  std::unique_ptr<Exchange> Start(bool stream = false, std::string model = "pool",
                                  HttpHeaders headers = {}, std::string prompt = "hello") {
    HttpRequest r;
    r.method = "POST";
    r.path = "/v1/chat/completions";
    r.headers = std::move(headers);
    r.headers.emplace_back("content-type", "application/json");
    Json body = {{"model", model},
                 {"messages", Json::array({{{"role", "user"}, {"content", prompt}}})}};
    if (stream) body["stream"] = true;
    r.body = body.dump();
    r.remote_address = "127.0.0.1:1";
    auto ex = std::make_unique<Exchange>();
    ex->active = gateway_->Handle(std::move(r), &ex->sink);
    return ex;
  }

  std::unique_ptr<Exchange> Send(bool stream = false) {
    std::unique_ptr<Exchange> ex = Start(stream);
    loop_->RunFor(absl::Seconds(30));
    EXPECT_TRUE(ex->sink.finished.has_value());
    return ex;
  }

  // GET /admin/upstreams: the deployment `id` of the only router's only pool.
  Json Upstream(std::string_view id) {
    HttpRequest r;
    r.method = "GET";
    r.path = "/admin/upstreams";
    r.remote_address = "127.0.0.1:1";
    Exchange ex;
    ex.active = gateway_->Handle(std::move(r), &ex.sink);
    loop_->RunFor(absl::Milliseconds(1));
    EXPECT_EQ(ex.status(), 200) << ex.sink.body;
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

  std::string models_ = kModels;
  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  FakeUpstream upstream_{loop_.get()};
  Registry registry_;
  Services services_{ServicesOptions{
      .clock = &loop_->fake_clock(),
      .random = [n = uint64_t{0}]() mutable {
        // splitmix64: well-spread draws from a counter
        uint64_t z = (n += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
      }}};
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(RouterGatewayTest, AFailedAttemptIsRetriedOnTheOtherDeploymentAfterItsBackoff) {
  ASSERT_TRUE(Load(kTwo).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  ASSERT_EQ(upstream_.started.size(), 2u);
  EXPECT_EQ(upstream_.started[0].model, "up-a");
  EXPECT_EQ(upstream_.started[1].model, "up-b");
  // a answered its 500 after upstream_.delay; the retry waited a full-jitter backoff drawn
  // from [0, 200 ms) (backoff_base_ms = backoff_max_ms = 200) on the loop's timer.
  const absl::Duration gap = upstream_.started[1].at - upstream_.started[0].at - upstream_.delay;
  EXPECT_GT(gap, absl::ZeroDuration());
  EXPECT_LT(gap, absl::Milliseconds(200));
}

// kTwo with `retry.retry_on` set to `classes` (a JSON array).
std::string TwoRetryingOn(std::string_view classes) {
  const std::string out = absl::StrReplaceAll(
      kTwo, {{R"("retry": {"max_attempts": 3,)",
              std::string(R"("retry": {"max_attempts": 3, "retry_on": )") +
                  std::string(classes) + ","}});
  EXPECT_NE(out, kTwo);
  return out;
}

// A connection lost after the request went out reaches the router as "reset", apart from
// "connect" (nothing sent) and "5xx": retry_on decides for each on its own.
TEST_F(RouterGatewayTest, AResetIsRetriedWhenRetryOnNamesReset) {
  upstream_.behaviour["up-a"] = {
      .transport = MarkConnectionReset(absl::UnavailableError("Recv failure: reset by peer"))};
  ASSERT_TRUE(Load(TwoRetryingOn(R"(["reset"])")).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 1);
}

TEST_F(RouterGatewayTest, AResetIsNotRetriedWhenRetryOnNamesOnlyConnectAnd5xx) {
  upstream_.behaviour["up-a"] = {
      .transport = MarkConnectionReset(absl::UnavailableError("Recv failure: reset by peer"))};
  ASSERT_TRUE(Load(TwoRetryingOn(R"(["connect", "5xx"])")).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 502) << ex->sink.body;
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 0);
}

TEST_F(RouterGatewayTest, ARefusedConnectionIsConnectAndMovesOn) {
  upstream_.behaviour["up-a"] = {.transport = absl::UnavailableError("Failed to connect")};
  ASSERT_TRUE(Load(TwoRetryingOn(R"(["connect"])")).ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 1);
}

// A deployment's `tpm` counts the tokens of its answers (the engine reads the usage of an
// attempt on a deployment with tpm): once a's answers reach it, the pool moves on to the
// next tier until the minute's window frees it.
constexpr char kTpmPool[] = R"(
  "pools": [{"name": "pool",
             "deployments": [{"id": "a", "model": "m-a", "tpm": %d},
                             {"id": "b", "model": "m-b", "tier": 1}]}])";

TEST_F(RouterGatewayTest, TokensPerMinuteCountsEachWholeAnswersUsage) {
  upstream_.behaviour["up-a"] = {};
  ASSERT_TRUE(Load(absl::StrFormat(kTpmPool, 8)).ok());
  // FakeUpstream's whole answer reports 3 + 1 tokens: two answers fill a's 8 a minute.
  for (int i = 0; i < 3; ++i) {
    auto ex = Start();
    loop_->RunFor(absl::Seconds(1));
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  }
  EXPECT_EQ(upstream_.CallsTo("up-a"), 2);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 1);
}

TEST_F(RouterGatewayTest, TokensPerMinuteCountsAStreamsEstimateWhenItReportsNone) {
  upstream_.behaviour["up-a"] = {};
  ASSERT_TRUE(Load(absl::StrFormat(kTpmPool, 1)).ok());
  // FakeUpstream's stream reports no usage: the gateway's estimate (> 0 tokens for a
  // prompt and an answer) is what a's one token a minute is measured against.
  auto streamed = Start(/*stream=*/true);
  loop_->RunFor(absl::Seconds(1));
  EXPECT_EQ(streamed->status(), 200) << streamed->sink.body;
  auto next = Start();
  loop_->RunFor(absl::Seconds(1));
  EXPECT_EQ(next->status(), 200) << next->sink.body;
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 1);
}

TEST_F(RouterGatewayTest, PeakEwmaSamplesAWholeAnswerAsItsLatencyLessItsDecodeTime) {
  // One peak_ewma deployment, no tpm: its attempts still ask for usage (the decode time).
  upstream_.behaviour["up-a"] = {.stream_rest_after = absl::Milliseconds(900),
                                 .stream_completion_tokens = 10};
  upstream_.delay = absl::Milliseconds(100);
  ASSERT_TRUE(Load(R"("pools": [{"name": "pool", "lb": {"policy": "peak_ewma"},
                                 "deployments": [{"id": "a", "model": "m-a"}]}])").ok());
  // A stream: head and first chunk after 100 ms, the rest 900 ms later, 10 tokens reported.
  // Its first token is the sample; 900 ms over the 9 tokens after the first, the decode
  // time per token.
  auto streamed = Start(/*stream=*/true);
  loop_->RunFor(absl::Seconds(2));
  EXPECT_EQ(streamed->status(), 200) << streamed->sink.body;
  Json a = Upstream("a");
  EXPECT_NEAR(a["ttft_ewma_ms"].get<double>(), 100, 1e-6);
  const double decode = 100;
  EXPECT_NEAR(a["decode_ms_per_token"].get<double>(), decode, 1e-6);
  // A whole answer of 3 tokens in 150 + 2 * 100 ms: its head comes with its last token, so
  // the engine reports no first token, and the sample is 350 - 2 * 100 = 150 (slower than
  // the 100 before: taken at once). Reported as the time to its head, the sample would
  // have been the whole 350 ms.
  upstream_.behaviour["up-a"] = {.completion_tokens = 3};
  upstream_.delay = absl::Milliseconds(150) + absl::Milliseconds(2 * decode);
  EXPECT_EQ(Send()->status(), 200);
  a = Upstream("a");
  EXPECT_NEAR(a["ttft_ewma_ms"].get<double>(), 150, 0.01);
}

TEST_F(RouterGatewayTest, OutcomesReachTheRouterAndShowInAdminUpstreams) {
  ASSERT_TRUE(Load(kTwo).ok());
  // Round robin over a, b: each request's first attempt alternates between them; a fails
  // (500) and the request moves to b. Two failures in a row on a eject it (60 s).
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Send(i % 2 == 1)->status(), 200);
  const int calls_a = upstream_.CallsTo("up-a");
  const int calls_b = upstream_.CallsTo("up-b");
  EXPECT_EQ(calls_b, 4);  // every request ended on b
  Json a = Upstream("a");
  Json b = Upstream("b");
  EXPECT_EQ(a["attempts"], calls_a);
  EXPECT_EQ(a["successes"], 0);
  EXPECT_EQ(b["attempts"], calls_b);
  EXPECT_EQ(b["successes"], calls_b);
  EXPECT_EQ(a["ejected"], true);
  EXPECT_EQ(a["healthy"], false);
  EXPECT_EQ(a["ejections"], 1);
  EXPECT_GT(a["ejected_for_ms"].get<int64_t>(), 0);
  EXPECT_EQ(b["healthy"], true);
  EXPECT_EQ(b["in_flight"], 0);
  EXPECT_EQ(b["consecutive_failures"], 0);
  EXPECT_EQ(b["window"]["requests"], calls_b);
  EXPECT_EQ(b["window"]["failures"], 0);
  EXPECT_EQ(a["model"], "m-a");
  EXPECT_EQ(a["provider"], "p-a");
  // While a is ejected, requests go to b only.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Send()->status(), 200);
  EXPECT_EQ(upstream_.CallsTo("up-a"), calls_a);
}

TEST_F(RouterGatewayTest, AClientThatLeavesCancelsTheAttemptInFlight) {
  upstream_.behaviour["up-a"] = {.hang = true};
  ASSERT_TRUE(Load(kTwo).ok());
  auto ex = Start();
  loop_->RunFor(absl::Seconds(1));
  ASSERT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(upstream_.live(), 1);
  EXPECT_EQ(Upstream("a")["in_flight"], 1);
  ex->active.reset();  // the client disconnected
  EXPECT_EQ(upstream_.live(), 0);
  EXPECT_EQ(Upstream("a")["in_flight"], 0);
  loop_->RunFor(absl::Seconds(30));
  EXPECT_EQ(upstream_.started.size(), 1u);  // no other attempt was made
}

TEST_F(RouterGatewayTest, AClientThatLeavesDuringTheBackoffCancelsTheNextAttempt) {
  ASSERT_TRUE(Load(kTwo).ok());
  auto ex = Start();
  loop_->RunFor(upstream_.delay);  // a's 500 arrived; the retry waits its backoff
  ASSERT_EQ(upstream_.started.size(), 1u);
  ex->active.reset();
  loop_->RunFor(absl::Seconds(30));
  EXPECT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(Upstream("b")["in_flight"], 0);
  EXPECT_EQ(Upstream("a")["in_flight"], 0);
}

TEST_F(RouterGatewayTest, AReloadKeepsTheHealthOfUnchangedDeploymentsAndRequestsInFlight) {
  ASSERT_TRUE(Load(kTwo).ok());
  for (int i = 0; i < 4; ++i) ASSERT_EQ(Send()->status(), 200);
  ASSERT_EQ(Upstream("a")["ejected"], true);
  // Requests in flight on b while the configuration changes (c joins the pool).
  upstream_.delay = absl::Seconds(2);
  std::vector<std::unique_ptr<Exchange>> in_flight;
  for (int i = 0; i < 3; ++i) in_flight.push_back(Start(/*stream=*/i == 1));
  loop_->RunFor(absl::Milliseconds(500));
  constexpr char kThree[] = R"(
    "pools": [{"name": "pool", "lb": {"policy": "round_robin"},
               "outlier": {"consecutive_failures": 2, "base_ejection_ms": 60000,
                           "ejection_jitter_ms": 1},
               "deployments": [{"id": "a", "model": "m-a"}, {"id": "b", "model": "m-b"},
                               {"id": "c", "model": "m-c"}]}])";
  ASSERT_TRUE(Load(kThree).ok());
  loop_->RunFor(absl::Seconds(10));
  for (const auto& ex : in_flight) {
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
    EXPECT_EQ(ex->sink.finished, std::optional<bool>(true));
  }
  Json a = Upstream("a");
  EXPECT_EQ(a["ejected"], true);  // kept across the reload
  EXPECT_EQ(a["ejections"], 1);
  const int calls_a = upstream_.CallsTo("up-a");
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Send()->status(), 200);
  EXPECT_EQ(upstream_.CallsTo("up-a"), calls_a);  // still avoided after the reload
  EXPECT_GT(upstream_.CallsTo("up-c"), 0);        // the new deployment takes traffic
}

TEST_F(RouterGatewayTest, RateLimitedAttemptsMoveOnAndCoolTheDeploymentDown) {
  upstream_.behaviour["up-a"] = {.status = 429, .retry_after = "7"};
  ASSERT_TRUE(Load(kTwo).ok());
  EXPECT_EQ(Send()->status(), 200);
  Json a = Upstream("a");
  EXPECT_EQ(a["ejected"], false);  // a 429 cools down, it does not eject
  EXPECT_EQ(a["healthy"], false);
  EXPECT_GT(a["cooldown_for_ms"].get<int64_t>(), 6000);
  EXPECT_LE(a["cooldown_for_ms"].get<int64_t>(), 7000);
}

// A provider that says "the prompt does not fit" in its own words (Anthropic's, without
// OpenAI's code): the attempt is a context-length failure, and the request moves to the
// pool's context_length_fallback instead of failing with the 400.
TEST_F(RouterGatewayTest, AnAnthropicPromptTooLongFallsBackToTheLongContextModel) {
  upstream_.behaviour["up-a"] = {
      .status = 400,
      .error_body = R"({"type":"error","error":{"type":"invalid_request_error",)"
                    R"("message":"prompt is too long: 210000 tokens > 200000 maximum"}})"};
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "context_length_fallback": "long",
               "deployments": [{"id": "a", "model": "m-a"}]},
              {"name": "long", "deployments": [{"id": "b", "model": "m-b"}]}])")
                  .ok());
  auto ex = Send();
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  EXPECT_EQ(upstream_.CallsTo("up-b"), 1);
  EXPECT_EQ(Upstream("a")["healthy"], true);  // a context-length failure never counts
}

// One deployment taking one call at a time, with a queue of one waiter for 2.5 s.
constexpr char kQueued[] = R"(
    "pools": [{"name": "pool", "queue": {"max_depth": 1, "timeout_ms": 2500},
               "deployments": [{"id": "b", "model": "m-b", "max_in_flight": 1}]}])";

TEST_F(RouterGatewayTest, ASecondRequestWaitsInThePoolQueueAndIsServedWhenTheFirstEnds) {
  ASSERT_TRUE(Load(kQueued).ok());
  auto first = Start();
  auto second = Start();
  loop_->RunFor(upstream_.delay / 2);
  EXPECT_EQ(upstream_.started.size(), 1u);
  EXPECT_FALSE(second->sink.finished.has_value());  // waiting, not refused
  loop_->RunFor(absl::Seconds(5));
  EXPECT_EQ(first->status(), 200) << first->sink.body;
  EXPECT_EQ(second->status(), 200) << second->sink.body;
  ASSERT_EQ(upstream_.started.size(), 2u);
  // The second call started the moment the first answered and gave its slot back.
  EXPECT_EQ(upstream_.started[1].at - upstream_.started[0].at, upstream_.delay);
  EXPECT_EQ(Upstream("b")["in_flight"], 0);
}

TEST_F(RouterGatewayTest, AFullQueueIsA429WithTheQueueTimeoutAsRetryAfter) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(kQueued).ok());
  auto holder = Start();
  auto waiter = Start();
  auto refused = Start();
  loop_->RunFor(absl::Milliseconds(10));
  ASSERT_TRUE(refused->sink.finished.has_value());
  EXPECT_EQ(refused->status(), 429) << refused->sink.body;
  EXPECT_THAT(refused->sink.body, HasSubstr("queue is full"));
  // timeout_ms 2500, rounded up to whole seconds.
  EXPECT_EQ(FindHeader(refused->sink.headers, "retry-after"), std::optional<std::string_view>("3"));
  EXPECT_FALSE(waiter->sink.finished.has_value());
  EXPECT_EQ(upstream_.started.size(), 1u);
}

TEST_F(RouterGatewayTest, AWaitThatOutlastsTheQueueTimeoutIsA429) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(kQueued).ok());
  auto holder = Start();
  auto waiter = Start();
  loop_->AdvanceBy(absl::Milliseconds(2499));
  EXPECT_FALSE(waiter->sink.finished.has_value());
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(waiter->sink.finished.has_value());
  EXPECT_EQ(waiter->status(), 429) << waiter->sink.body;
  EXPECT_THAT(waiter->sink.body, HasSubstr("in its queue"));
  EXPECT_EQ(FindHeader(waiter->sink.headers, "retry-after"), std::optional<std::string_view>("3"));
  EXPECT_EQ(upstream_.started.size(), 1u);
}

TEST_F(RouterGatewayTest, TheRequestTimeoutEndsAWaitWithA504) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(absl::StrCat(R"("request_timeout_ms": 400,)", kQueued)).ok());
  auto holder = Start();
  auto waiter = Start();
  loop_->AdvanceBy(absl::Milliseconds(399));
  EXPECT_FALSE(waiter->sink.finished.has_value());
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(waiter->sink.finished.has_value());
  EXPECT_EQ(waiter->status(), 504) << waiter->sink.body;
  EXPECT_THAT(waiter->sink.body, HasSubstr("deadline"));
}

// a and b in one pool, round robin (a first), a per-try timeout of 1 s, a tiny backoff.
constexpr char kPerTry[] = R"(
  "pools": [{"name": "pool", "lb": {"policy": "round_robin"},
             "retry": {"max_attempts": 3, "backoff_base_ms": 1, "backoff_max_ms": 1,
                       "per_try_timeout_ms": 1000},
             "deployments": [{"id": "a", "model": "m-a"}, {"id": "b", "model": "m-b"}]}])";

TEST_F(RouterGatewayTest, APerTryTimeoutCancelsASlowAttemptAndTheNextDeploymentAnswers) {
  upstream_.behaviour["up-a"] = {.hang = true};
  ASSERT_TRUE(Load(kPerTry).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(999));
  EXPECT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(upstream_.live(), 1);
  loop_->AdvanceBy(absl::Milliseconds(1));
  // At 1 s the call to a is destroyed (cancelled) and reported as a timeout.
  EXPECT_EQ(upstream_.CallsTo("up-a"), 1);
  loop_->RunFor(absl::Seconds(5));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  ASSERT_EQ(upstream_.started.size(), 2u);
  EXPECT_EQ(upstream_.started[1].model, "up-b");
  const absl::Duration gap = upstream_.started[1].at - upstream_.started[0].at;
  EXPECT_GE(gap, absl::Milliseconds(1000));
  EXPECT_LT(gap, absl::Milliseconds(1002));  // the per-try timeout, then a backoff < 1 ms
  EXPECT_EQ(upstream_.live(), 0);
  Json a = Upstream("a");
  EXPECT_EQ(a["attempts"], 1);
  EXPECT_EQ(a["successes"], 0);
  EXPECT_EQ(a["in_flight"], 0);
  EXPECT_EQ(a["consecutive_failures"], 1);  // a timeout, not a cancellation
  EXPECT_EQ(a["cancelled"], 0);
  EXPECT_EQ(Upstream("b")["successes"], 1);
}

TEST_F(RouterGatewayTest, WhenEveryAttemptTimesOutTheClientGetsA504NamingThePerTryTimeout) {
  upstream_.behaviour["up-a"] = {.hang = true};
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(kPerTry).ok());
  auto ex = Start();
  loop_->RunFor(absl::Seconds(10));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 504) << ex->sink.body;
  EXPECT_THAT(ex->sink.body, HasSubstr("per-try timeout (1000 ms)"));
  EXPECT_EQ(upstream_.live(), 0);
}

TEST_F(RouterGatewayTest, AStreamWhoseHeadArrivedBeforeThePerTryTimeoutIsNotCutByIt) {
  // a streams its head and first chunk after 100 ms and the rest 3 s later, well past the
  // per-try timeout (1 s): the stream goes on to its end, on a alone.
  upstream_.behaviour["up-a"] = {.stream_rest_after = absl::Seconds(3)};
  ASSERT_TRUE(Load(kPerTry).ok());
  auto ex = Start(/*stream=*/true);
  loop_->RunFor(absl::Seconds(2));
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_EQ(upstream_.live(), 1);
  loop_->RunFor(absl::Seconds(5));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_TRUE(*ex->sink.finished);
  EXPECT_EQ(ex->status(), 200);
  EXPECT_THAT(ex->sink.body, HasSubstr("first"));
  EXPECT_THAT(ex->sink.body, HasSubstr("last"));
  EXPECT_THAT(ex->sink.body, HasSubstr("[DONE]"));
  EXPECT_EQ(upstream_.started.size(), 1u);
  EXPECT_EQ(Upstream("a")["successes"], 1);
}

// One deployment, and a request deadline of 400 ms.
constexpr char kDeadline[] = R"(
  "request_timeout_ms": 400,
  "pools": [{"name": "pool", "deployments": [{"id": "b", "model": "m-b"}]}])";

TEST_F(RouterGatewayTest, TheRequestDeadlineCancelsASlowCallAndAnswers504) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(kDeadline).ok());
  auto ex = Start();
  loop_->AdvanceBy(absl::Milliseconds(399));
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_EQ(upstream_.live(), 1);
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 504) << ex->sink.body;
  Json body = Json::parse(ex->sink.body, nullptr, false);
  ASSERT_TRUE(body.contains("error")) << ex->sink.body;
  EXPECT_THAT(body["error"]["message"].get<std::string>(),
              HasSubstr("request_timeout_ms (400 ms)"));
  EXPECT_EQ(upstream_.live(), 0);  // the call was destroyed
  Json b = Upstream("b");
  EXPECT_EQ(b["in_flight"], 0);
  EXPECT_EQ(b["consecutive_failures"], 1);  // reported as a timeout
  loop_->RunFor(absl::Seconds(5));
  EXPECT_EQ(upstream_.started.size(), 1u);  // no other attempt after the deadline
}

TEST_F(RouterGatewayTest, TheRequestDeadlineEndsAStreamWithAnErrorEvent) {
  upstream_.behaviour["up-b"] = {.stream_rest_after = absl::Seconds(3)};
  ASSERT_TRUE(Load(kDeadline).ok());
  auto ex = Start(/*stream=*/true);
  loop_->AdvanceBy(absl::Milliseconds(399));
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_EQ(ex->status(), 200);
  EXPECT_THAT(ex->sink.body, HasSubstr("first"));
  loop_->AdvanceBy(absl::Milliseconds(1));
  ASSERT_TRUE(ex->sink.finished.has_value());
  EXPECT_TRUE(*ex->sink.finished);  // ended by the error event that says why
  EXPECT_THAT(ex->sink.body, HasSubstr("request_timeout_ms (400 ms)"));
  EXPECT_THAT(ex->sink.body, HasSubstr("\"error\""));
  EXPECT_THAT(ex->sink.body, ::testing::Not(HasSubstr("last")));
  EXPECT_THAT(ex->sink.body, ::testing::Not(HasSubstr("[DONE]")));
  EXPECT_EQ(upstream_.live(), 0);
  EXPECT_EQ(Upstream("b")["in_flight"], 0);
}

TEST_F(RouterGatewayTest, WithoutTimeoutsNoTimerIsArmedAndASlowCallIsWaitedFor) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(R"("pools": [{"name": "pool", "deployments": [{"id": "b", "model": "m-b"}]}])")
                  .ok());
  auto ex = Start();
  loop_->RunFor(absl::Milliseconds(10));
  EXPECT_EQ(upstream_.live(), 1);
  EXPECT_EQ(loop_->pending_timers(), 0u);  // neither a per-try nor a deadline timer
  loop_->RunFor(absl::Minutes(10));
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_EQ(upstream_.live(), 1);
  // The same with a slow (not hanging) answer: it arrives, whenever it does.
  upstream_.behaviour["up-b"] = {};
  upstream_.delay = absl::Minutes(5);
  auto slow = Start();
  loop_->RunFor(absl::Minutes(6));
  ASSERT_TRUE(slow->sink.finished.has_value());
  EXPECT_EQ(slow->status(), 200) << slow->sink.body;
}

TEST_F(RouterGatewayTest, AWaiterThatLeavesGivesItsPlaceToTheNext) {
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool", "queue": {"max_depth": 2, "timeout_ms": 2500},
               "deployments": [{"id": "b", "model": "m-b", "max_in_flight": 1}]}])").ok());
  auto holder = Start();
  auto leaves = Start();
  auto next = Start();
  loop_->RunFor(upstream_.delay / 2);
  leaves->active.reset();  // the client disconnected while waiting
  loop_->RunFor(absl::Seconds(5));
  EXPECT_EQ(holder->status(), 200);
  EXPECT_EQ(next->status(), 200) << next->sink.body;
  EXPECT_FALSE(leaves->sink.finished.has_value());
  ASSERT_EQ(upstream_.started.size(), 2u);  // nobody called for the one that left
  EXPECT_EQ(upstream_.started[1].at - upstream_.started[0].at, upstream_.delay);
  EXPECT_EQ(Upstream("b")["in_flight"], 0);
}

// The slot holder is a host on another thread sharing the router (the same ConfigStore and
// Services): its plan's destruction wakes the engine's waiter from that thread, which posts
// to the waiter's loop while the loop thread runs it.
TEST_F(RouterGatewayTest, AWakeFromAnotherThreadIsPostedToTheRequestsLoop) {
  ASSERT_TRUE(Load(kQueued).ok());
  RoutingRequest request;
  request.model = "pool";
  absl::StatusOr<std::unique_ptr<AttemptPlan>> holder = config_->Current()->Plan(request);
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)->Next().has_value());  // holds b's only slot
  auto waiter = Start();
  loop_->RunFor(absl::Milliseconds(10));
  ASSERT_FALSE(waiter->sink.finished.has_value());
  EXPECT_EQ(upstream_.started.size(), 0u);
  std::atomic<bool> done{false};
  std::thread other([&] {
    holder->reset();  // gives the slot back: the router wakes the waiter on this thread
    done.store(true);
  });
  while (!done.load()) loop_->RunUntilIdle();
  other.join();
  loop_->RunFor(absl::Seconds(5));
  EXPECT_EQ(waiter->status(), 200) << waiter->sink.body;
  EXPECT_EQ(upstream_.started.size(), 1u);
}

// A wake posted for a request that is destroyed before the loop runs it does nothing (the
// request is reached through a weak handle; ASan builds catch a use after free).
TEST_F(RouterGatewayTest, AWakeForARequestDestroyedMeanwhileDoesNothing) {
  ASSERT_TRUE(Load(kQueued).ok());
  RoutingRequest request;
  request.model = "pool";
  absl::StatusOr<std::unique_ptr<AttemptPlan>> holder = config_->Current()->Plan(request);
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE((*holder)->Next().has_value());
  auto waiter = Start();
  loop_->RunFor(absl::Milliseconds(10));
  ASSERT_FALSE(waiter->sink.finished.has_value());
  const size_t posts = loop_->pending_posts();
  holder->reset();  // the router wakes the waiter: a post, not yet run
  ASSERT_EQ(loop_->pending_posts(), posts + 1);
  waiter->active.reset();  // the client left before the loop ran it
  loop_->RunFor(absl::Seconds(5));
  EXPECT_EQ(upstream_.started.size(), 0u);
  EXPECT_FALSE(waiter->sink.finished.has_value());
  EXPECT_EQ(Upstream("b")["in_flight"], 0);
}

// A caller without a wake (a filter planning ahead) is never left waiting: its plan is
// answered as a full pool.
TEST_F(RouterGatewayTest, APlanThatCannotWaitIsAnsweredAsAFullPool) {
  upstream_.behaviour["up-b"] = {.hang = true};
  ASSERT_TRUE(Load(kQueued).ok());
  auto holder = Start();
  loop_->RunFor(absl::Milliseconds(10));
  RoutingRequest request;
  request.model = "pool";
  absl::StatusOr<std::unique_ptr<AttemptPlan>> plan = config_->Current()->Plan(request);
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusForStatus(plan.status()), 429);
}

bool HaveR50k() { return GetEncoding("r50k_base").ok(); }

// Prompt tokens are counted with the tokenizer of the pool's (first) model, here "davinci"'s
// r50k_base (a small rank file, quick to load in a debug build): a prompt that fits tier 0's window
// (the model's "context_window") stays there, a larger one lands on tier 1, and one past the
// rule's bound goes to the long-context pool.
TEST_F(RouterGatewayTest, PromptTokensPickTheTierAndTheLongContextPool) {
  if (!HaveR50k()) GTEST_SKIP() << "r50k_base rank file not found (MODEENVOY_TOKENIZER_DIR)";
  models_ = R"(
    "providers": {"p-a": {"type": "openai", "base_url": "http://a.test/v1"},
                  "p-b": {"type": "openai", "base_url": "http://b.test/v1"},
                  "p-c": {"type": "openai", "base_url": "http://c.test/v1"}},
    "models": {"m-a": {"provider": "p-a", "upstream_model": "davinci", "context_window": 100},
               "m-b": {"provider": "p-b", "upstream_model": "up-b"},
               "m-c": {"provider": "p-c", "upstream_model": "up-c"}})";
  ASSERT_TRUE(Load(R"(
    "pools": [{"name": "pool",
               "rules": [{"name": "long", "to": "large", "prompt_tokens": {"min": 1000}}],
               "deployments": [{"id": "small", "model": "m-a"},
                               {"id": "mid", "model": "m-b", "tier": 1}]},
              {"name": "large", "deployments": [{"id": "c", "model": "m-c"}]}])").ok());
  auto words = [](int n) {
    std::string text;
    for (int i = 0; i < n; ++i) text += "hello ";
    return text;
  };
  auto send = [&](std::string prompt) {
    auto ex = Start(false, "pool", {}, std::move(prompt));
    loop_->RunFor(absl::Seconds(5));
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
    return upstream_.started.empty() ? std::string() : upstream_.started.back().model;
  };
  // Each repeated word is one or two tokens: 200 words are 200..400 tokens (past the
  // 100-token window, under the rule's 1,000); 2,000 words at least 2,000.
  EXPECT_EQ(send("hello"), "davinci");
  EXPECT_EQ(send(words(200)), "up-b");
  EXPECT_EQ(send(words(2000)), "up-c");
}

TEST_F(RouterGatewayTest, AKeysTierPicksThePoolOfItsRule) {
  upstream_.behaviour["up-a"] = {};
  constexpr char kTiers[] = R"(
    "pools": [{"name": "pool", "rules": [{"name": "free", "to": "cheap", "key_tiers": ["free"]}],
               "deployments": [{"id": "a", "model": "m-a"}]},
              {"name": "cheap", "deployments": [{"id": "c", "model": "m-c"}]}])";
  constexpr char kAuth[] = R"(, "filters": [{"type": "api_key_auth", "config": {"keys": [
      {"name": "gold", "key": "sk-gold", "tier": "gold"}, {"name": "trial", "key": "sk-free",
       "tier": "free"}, {"name": "plain", "key": "sk-plain"}]}}])";
  ASSERT_TRUE(Load(kTiers, kAuth).ok());
  auto send = [&](const std::string& key) {
    auto ex = Start(false, "pool", {{"authorization", "Bearer " + key}});
    loop_->RunFor(absl::Seconds(5));
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
    return upstream_.started.back().model;
  };
  EXPECT_EQ(send("sk-gold"), "up-a");
  EXPECT_EQ(send("sk-free"), "up-c");
  EXPECT_EQ(send("sk-plain"), "up-a");
}

// A budget filter's stand-in: publishes the x-test-budget header as "budget.remaining".
class BudgetFilter final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks&) override {
    if (std::optional<std::string_view> v = FindHeader(ctx.request.headers, "x-test-budget")) {
      ctx.metadata["budget.remaining"] = std::string(*v);
    }
    return FilterResult::Continue();
  }
};

// remaining_budget rules read the "budget.remaining" metadata a budget filter publishes.
TEST_F(RouterGatewayTest, TheRemainingBudgetInMetadataPicksThePoolOfItsRule) {
  upstream_.behaviour["up-a"] = {};
  ASSERT_TRUE(registry_.filters()
                  .Register("test_budget",
                            [](std::string_view, const BuildContext&)
                                -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                              return MakeFilterFactory<BudgetFilter>();
                            })
                  .ok());
  constexpr char kBudget[] = R"(
    "pools": [{"name": "pool",
               "rules": [{"name": "nearly-broke", "to": "cheap", "remaining_budget": {"max": 1.0}}],
               "deployments": [{"id": "a", "model": "m-a"}]},
              {"name": "cheap", "deployments": [{"id": "c", "model": "m-c"}]}])";
  ASSERT_TRUE(Load(kBudget, R"(, "filters": [{"type": "test_budget"}])").ok());
  auto send = [&](std::optional<std::string> budget) {
    HttpHeaders headers;
    if (budget.has_value()) headers.emplace_back("x-test-budget", *budget);
    auto ex = Start(false, "pool", std::move(headers));
    loop_->RunFor(absl::Seconds(5));
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
    return upstream_.started.back().model;
  };
  EXPECT_EQ(send("0.25"), "up-c");
  EXPECT_EQ(send("-3"), "up-c");    // overspent
  EXPECT_EQ(send("12.5"), "up-a");
  EXPECT_EQ(send(std::nullopt), "up-a");  // unknown: no match
  EXPECT_EQ(send("lots"), "up-a");        // unreadable: unknown
  EXPECT_EQ(send("nan"), "up-a");
}

TEST_F(RouterGatewayTest, HeaderAndMetadataSelectAnotherPool) {
  upstream_.behaviour["up-a"] = {};
  constexpr char kSelect[] = R"(
    "select": [{"header": {"X-Modeenvoy-Route": "canary"}, "model": "canary"},
               {"metadata": {"api_key.name": "gold"}, "model": "canary"}],
    "pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a"}]},
              {"name": "canary", "deployments": [{"id": "c", "model": "m-c"}]}])";
  constexpr char kAuth[] = R"(, "filters": [{"type": "api_key_auth", "config": {"keys": [
      {"name": "gold", "key": "sk-gold"}, {"name": "basic", "key": "sk-basic"}]}}])";
  ASSERT_TRUE(Load(kSelect, kAuth).ok());
  auto send = [&](HttpHeaders headers) {
    auto ex = Start(false, "pool", std::move(headers));
    loop_->RunFor(absl::Seconds(5));
    EXPECT_EQ(ex->status(), 200) << ex->sink.body;
    return upstream_.started.back().model;
  };
  EXPECT_EQ(send({{"authorization", "Bearer sk-basic"}}), "up-a");
  EXPECT_EQ(send({{"authorization", "Bearer sk-basic"}, {"x-modeenvoy-route", "canary"}}), "up-c");
  EXPECT_EQ(send({{"authorization", "Bearer sk-basic"}, {"x-modeenvoy-route", "other"}}), "up-a");
  EXPECT_EQ(send({{"authorization", "Bearer sk-gold"}}), "up-c");
}

TEST_F(RouterGatewayTest, ConfigurationErrorsNameTheField) {
  absl::Status s = Load(R"("pools": [{"name": "pool", "deployments": [{"id": "a", "model": "nope"}]}])");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].model: unknown model \"nope\""));
  s = Load(R"("pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a", "provider": "p-b"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].provider: not a key"));
  s = Load(R"("pools": [{"name": "other", "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools: no pool serves the route's model \"pool\""));
  s = Load(R"("pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a", "weight": 0}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].pools[0].deployments[0].weight: must be >= 1"));
  s = Load(R"("select": [{"header": {"x-r": "1"}, "model": "nowhere"}],
              "pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].select[0].model: no pool serves \"nowhere\""));
  s = Load(R"("select": [{"model": "pool"}],
              "pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].select[0]: needs \"header\" or \"metadata\""));
  s = Load(R"("select": [{"metadata": {"tier": 1}, "model": "pool"}],
              "pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].select[0].metadata.tier: must be a string"));
  s = Load(R"("request_timeout_ms": 0,
              "pools": [{"name": "pool", "deployments": [{"id": "a", "model": "m-a"}]}])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].request_timeout_ms: must be >= 1"));
  s = Load(R"("state": 3, "pools": [])");
  EXPECT_THAT(s.message(), HasSubstr("routes[0].state: must be a string"));
}

}  // namespace
}  // namespace modeenvoy
