// tests/gateway/embeddings_fanout_test.cc: an embeddings request with more inputs than the
// provider takes per call (lib/gateway/embeddings_fanout.h) through the engine, against an
// in-process upstream client the test answers by hand, in any order: one signed call per
// slice, at most 8 at a time, the answer in input order with usage summed, the first error
// failing the request (429's retry-after kept) and cancelling the rest, a client abort
// cancelling every call; and Bedrock's X-Amzn-Bedrock-Input-Token-Count read as usage.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "lib/gateway/embeddings_fanout.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/gateway/usage.h"
#include "modeenvoy/protocol/embeddings.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"
#include "tests/gateway/test_http_server.h"  // kTestWait

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;
using gateway_testing::RecordingSink;
using Json = nlohmann::json;

// Upstream calls the test answers itself. Every Start is recorded; a call is live until the
// test answers it or the engine cancels it (destroys its handle).
class FakeUpstream final : public UpstreamClient {
 public:
  struct Call {
    UpstreamRequest request;
    UpstreamHandler* handler = nullptr;
    bool cancelled = false;
    bool answered = false;
  };

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request,
                                      UpstreamHandler* handler) override {
    calls_.push_back(std::make_unique<Call>(Call{std::move(request), handler}));
    max_live_ = std::max(max_live_, live());
    return std::make_unique<Handle>(calls_.back().get());
  }

  // Answers call `i` (from the test body, never inside Start, as upstream.h requires).
  void Answer(size_t i, int status, const HttpHeaders& headers, std::string_view body) {
    Call& c = *calls_.at(i);
    ASSERT_FALSE(c.cancelled) << "call " << i << " was cancelled";
    ASSERT_FALSE(c.answered);
    c.answered = true;
    UpstreamHandler* h = c.handler;
    h->OnHeaders(status, headers);
    h->OnData(body);
    h->OnComplete(absl::OkStatus());
  }

  size_t live() const {
    size_t n = 0;
    for (const auto& c : calls_) n += !c->cancelled && !c->answered;
    return n;
  }
  const std::vector<std::unique_ptr<Call>>& calls() const { return calls_; }
  size_t max_live() const { return max_live_; }

 private:
  class Handle final : public UpstreamCall {
   public:
    explicit Handle(Call* call) : call_(call) {}
    ~Handle() override {
      if (!call_->answered) call_->cancelled = true;
    }
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }

   private:
    Call* call_;
  };

  std::vector<std::unique_ptr<Call>> calls_;
  size_t max_live_ = 0;
};

// Counts 10 tokens per text, so an estimate is told apart from any provider's count.
class TenPerText final : public UsageEstimator {
 public:
  std::string_view method() const override { return "ten"; }
  int64_t PromptTokens(const ChatRequest&, std::string_view) const override { return 10; }
  int64_t CompletionTokens(std::string_view, std::string_view) const override { return 10; }
};

HttpRequest PostEmbeddings(std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/embeddings";
  r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  r.remote_address = "127.0.0.1:1";
  return r;
}

// {"model":"m","input":["t0","t1",...]} plus `more` members.
std::string Texts(size_t n, std::string_view more = "") {
  Json input = Json::array();
  for (size_t i = 0; i < n; ++i) input.push_back(absl::StrFormat("t%d", i));
  return absl::StrFormat(R"({"model":"m","input":%s%s})", input.dump(), more);
}

const HttpHeaders kJson = {{"content-type", "application/json"}};

class EmbeddingsFanOutTest : public ::testing::Test {
 protected:
  void Start(std::string_view provider, std::string_view upstream_model) {
    const std::string config = absl::StrFormat(
        R"({"providers": {"p": %s}, "models": {"m": {"provider": "p", "upstream_model": "%s"}}})",
        provider, upstream_model);
    store_ = std::make_unique<ConfigStore>(ConfigLoadOptions{.registry = &registry_});
    absl::Status s = store_->Load(config);
    ASSERT_TRUE(s.ok()) << s;
    GatewayOptions options;
    options.config = store_.get();
    options.loop = loop_.get();
    options.upstream = &upstream_;
    options.usage_estimator = std::make_shared<TenPerText>();
    absl::StatusOr<std::unique_ptr<Gateway>> gw = NewGateway(std::move(options));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = std::move(*gw);
  }
  void StartTitan() {
    Start(R"({"type": "bedrock", "base_url": "http://bedrock.test", "region": "us-east-1",
              "api_key": "br-key"})",
          "amazon.titan-embed-text-v2:0");
  }

  // Sends `body`; the request stays live in active_ until Finish().
  void Send(std::string body) {
    active_ = gateway_->Handle(PostEmbeddings(std::move(body)), &sink_);
  }
  void Finish() {
    EXPECT_TRUE(loop_->RunUntil([&] { return sink_.finished.has_value(); }, kTestWait));
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  FakeUpstream upstream_;
  Registry registry_;
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<Gateway> gateway_;
  RecordingSink sink_;
  std::unique_ptr<ActiveRequest> active_;
};

// Titan's answer for a text: a vector that names the call, and its token count.
std::string TitanBody(float first, int tokens) {
  return absl::StrFormat(R"({"embedding":[%g,0.5],"inputTextTokenCount":%d})", first, tokens);
}

TEST_F(EmbeddingsFanOutTest, TitanBatchIsOneSignedCallPerInputMergedInInputOrder) {
  StartTitan();
  Send(Texts(5));
  ASSERT_EQ(upstream_.calls().size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    const UpstreamRequest& r = upstream_.calls()[i]->request;
    EXPECT_EQ(r.url, "http://bedrock.test/model/amazon.titan-embed-text-v2%3A0/invoke");
    const Json want = {{"inputText", absl::StrFormat("t%d", i)}};
    EXPECT_EQ(Json::parse(r.body), want);
    const auto auth = std::find_if(r.headers.begin(), r.headers.end(),
                                   [](const auto& h) { return h.first == "authorization"; });
    ASSERT_NE(auth, r.headers.end());
    EXPECT_EQ(auth->second, "Bearer br-key");
  }
  // Answered out of order: 4, 2, 0, 3, 1; call i embeds as [i + 1, 0.5] with i + 1 tokens.
  for (size_t i : {4, 2, 0, 3, 1}) {
    upstream_.Answer(i, 200, kJson,
                     TitanBody(static_cast<float>(i + 1), static_cast<int>(i + 1)));
  }
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  Json out = Json::parse(sink_.body);
  ASSERT_EQ(out["data"].size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(out["data"][i]["index"], i);
    EXPECT_EQ(out["data"][i]["embedding"], Json::parse(absl::StrFormat("[%d,0.5]", i + 1)));
  }
  EXPECT_EQ(out["usage"], Json::parse(R"({"prompt_tokens":15,"total_tokens":15})"));  // 1+..+5
}

TEST_F(EmbeddingsFanOutTest, Base64AnswerIsInInputOrder) {
  StartTitan();
  Send(Texts(2, R"(,"encoding_format":"base64")"));
  ASSERT_EQ(upstream_.calls().size(), 2u);
  upstream_.Answer(1, 200, kJson, TitanBody(0.5f, 1));   // 0.5 = 00 00 00 3f
  upstream_.Answer(0, 200, kJson, TitanBody(0.25f, 1));  // 0.25 = 00 00 80 3e
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  Json out = Json::parse(sink_.body);
  // [0.25, 0.5] and [0.5, 0.5] as float32 little-endian, base64 by hand.
  EXPECT_EQ(out["data"][0]["embedding"], "AACAPgAAAD8=");
  EXPECT_EQ(out["data"][1]["embedding"], "AAAAPwAAAD8=");
}

TEST_F(EmbeddingsFanOutTest, AtMostEightCallsRunAtOnce) {
  StartTitan();
  Send(Texts(20));
  EXPECT_EQ(upstream_.calls().size(), 8u);
  // Each answer lets one more call start, in input order.
  for (size_t i = 0; i < 20; ++i) {
    upstream_.Answer(i, 200, kJson, TitanBody(static_cast<float>(i), 1));
    EXPECT_EQ(upstream_.calls().size(), std::min<size_t>(20, 9 + i));
  }
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  EXPECT_EQ(upstream_.max_live(), 8u);
  for (size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(Json::parse(upstream_.calls()[i]->request.body)["inputText"],
              absl::StrFormat("t%d", i));
  }
  EXPECT_EQ(Json::parse(sink_.body)["data"][19]["embedding"], Json::parse("[19,0.5]"));
}

TEST_F(EmbeddingsFanOutTest, FirstErrorFailsTheRequestKeepsRetryAfterAndCancelsTheRest) {
  StartTitan();
  Send(Texts(5));
  ASSERT_EQ(upstream_.calls().size(), 5u);
  upstream_.Answer(0, 200, kJson, TitanBody(1, 1));
  upstream_.Answer(3, 429, {{"content-type", "application/json"}, {"retry-after", "7"}},
                   R"({"message":"Too many requests, please wait before trying again."})");
  Finish();
  EXPECT_EQ(sink_.status, 429) << sink_.body;
  EXPECT_NE(sink_.body.find("Too many requests"), std::string::npos) << sink_.body;
  const auto ra = std::find_if(sink_.headers.begin(), sink_.headers.end(),
                               [](const auto& h) { return h.first == "retry-after"; });
  ASSERT_NE(ra, sink_.headers.end());
  EXPECT_EQ(ra->second, "7");
  for (size_t i : {1, 2, 4}) EXPECT_TRUE(upstream_.calls()[i]->cancelled) << i;
  EXPECT_EQ(upstream_.calls().size(), 5u);  // nothing started after the error
}

TEST_F(EmbeddingsFanOutTest, ClientAbortCancelsEveryCall) {
  StartTitan();
  Send(Texts(12));
  ASSERT_EQ(upstream_.calls().size(), 8u);
  upstream_.Answer(2, 200, kJson, TitanBody(1, 1));
  ASSERT_EQ(upstream_.calls().size(), 9u);
  active_.reset();  // the client went away
  EXPECT_EQ(upstream_.live(), 0u);
  for (size_t i = 0; i < 9; ++i) {
    if (i != 2) {
      EXPECT_TRUE(upstream_.calls()[i]->cancelled) << i;
    }
  }
  EXPECT_EQ(upstream_.calls().size(), 9u);
}

TEST_F(EmbeddingsFanOutTest, GeminiSplitsAtOneHundredAndEstimatesUsage) {
  Start(R"({"type": "gemini", "base_url": "http://gemini.test/v1beta", "api_key": "k"})",
        "gemini-embedding-001");
  Send(Texts(150));
  ASSERT_EQ(upstream_.calls().size(), 2u);
  Json first = Json::parse(upstream_.calls()[0]->request.body);
  Json second = Json::parse(upstream_.calls()[1]->request.body);
  ASSERT_EQ(first["requests"].size(), 100u);
  ASSERT_EQ(second["requests"].size(), 50u);
  EXPECT_EQ(first["requests"][99]["content"]["parts"][0]["text"], "t99");
  EXPECT_EQ(second["requests"][0]["content"]["parts"][0]["text"], "t100");
  auto answer = [](size_t n, int base) {
    Json e = Json::array();
    for (size_t i = 0; i < n; ++i) {
      e.push_back(Json{{"values", Json::array({base + static_cast<int>(i)})}});
    }
    return Json{{"embeddings", e}}.dump();
  };
  upstream_.Answer(1, 200, kJson, answer(50, 100));
  upstream_.Answer(0, 200, kJson, answer(100, 0));
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  Json out = Json::parse(sink_.body);
  ASSERT_EQ(out["data"].size(), 150u);
  for (int i = 0; i < 150; ++i) {
    ASSERT_EQ(out["data"][i]["index"], i);
    ASSERT_EQ(out["data"][i]["embedding"], Json::array({i}));
  }
  // Gemini counts nothing: 10 per text (TenPerText) for all 150, marked.
  EXPECT_EQ(out["usage"]["prompt_tokens"], 1500);
  EXPECT_EQ(out["usage"]["estimated"], true);
}

TEST_F(EmbeddingsFanOutTest, OpenAiBatchIsOneCall) {
  Start(R"({"type": "openai", "base_url": "http://openai.test/v1", "api_key": "k"})",
        "text-embedding-3-small");
  Send(Texts(300));
  ASSERT_EQ(upstream_.calls().size(), 1u);
  EXPECT_EQ(Json::parse(upstream_.calls()[0]->request.body)["input"].size(), 300u);
}

// Cohere on Bedrock: {"embeddings": [[...]]} and the count only in the header.
std::string BedrockCohereBody(size_t n) {
  Json e = Json::array();
  for (size_t i = 0; i < n; ++i) e.push_back(Json::array({0.5}));
  return Json{{"embeddings", e}, {"id", "x"}, {"response_type", "embeddings_floats"}}.dump();
}

TEST_F(EmbeddingsFanOutTest, BedrockCohereUsageComesFromTheTokenCountHeader) {
  Start(R"({"type": "bedrock", "base_url": "http://bedrock.test", "region": "us-east-1",
            "api_key": "br-key"})",
        "cohere.embed-english-v3");
  Send(Texts(2));
  ASSERT_EQ(upstream_.calls().size(), 1u);
  upstream_.Answer(0, 200,
                   {{"content-type", "application/json"},
                    {"X-Amzn-Bedrock-Input-Token-Count", "7"}},
                   BedrockCohereBody(2));
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  EXPECT_EQ(Json::parse(sink_.body)["usage"],
            Json::parse(R"({"prompt_tokens":7,"total_tokens":7})"));
}

TEST_F(EmbeddingsFanOutTest, BedrockCohereSplitsAtNinetySixAndSumsTheHeaderCounts) {
  Start(R"({"type": "bedrock", "base_url": "http://bedrock.test", "region": "us-east-1",
            "api_key": "br-key"})",
        "cohere.embed-english-v3");
  Send(Texts(100));
  ASSERT_EQ(upstream_.calls().size(), 2u);
  EXPECT_EQ(Json::parse(upstream_.calls()[0]->request.body)["texts"].size(), 96u);
  EXPECT_EQ(Json::parse(upstream_.calls()[1]->request.body)["texts"].size(), 4u);
  upstream_.Answer(0, 200, {{"x-amzn-bedrock-input-token-count", "200"}}, BedrockCohereBody(96));
  upstream_.Answer(1, 200, {{"x-amzn-bedrock-input-token-count", "9"}}, BedrockCohereBody(4));
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  Json out = Json::parse(sink_.body);
  EXPECT_EQ(out["data"].size(), 100u);
  EXPECT_EQ(out["usage"], Json::parse(R"({"prompt_tokens":209,"total_tokens":209})"));
}

TEST_F(EmbeddingsFanOutTest, BedrockCohereWithoutTheHeaderIsEstimated) {
  Start(R"({"type": "bedrock", "base_url": "http://bedrock.test", "region": "us-east-1",
            "api_key": "br-key"})",
        "cohere.embed-english-v3");
  Send(Texts(1));
  upstream_.Answer(0, 200, kJson, BedrockCohereBody(1));
  Finish();
  ASSERT_EQ(sink_.status, 200) << sink_.body;
  EXPECT_EQ(Json::parse(sink_.body)["usage"]["estimated"], true);
}

TEST(EmbeddingsSliceTest, SliceKeepsEverythingButTheOtherInputs) {
  absl::StatusOr<EmbeddingsRequest> r = ParseEmbeddingsRequest(
      R"({"model":"m","input":["a","b","c"],"dimensions":8,"user":"u","x":1})");
  ASSERT_TRUE(r.ok()) << r.status();
  EmbeddingsRequest s = gateway_internal::SliceEmbeddingsRequest(*r, 1, 2);
  absl::StatusOr<EmbeddingsRequest> want =
      ParseEmbeddingsRequest(R"({"model":"m","input":["b","c"],"dimensions":8,"user":"u","x":1})");
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(s, *want);
  absl::StatusOr<EmbeddingsRequest> tokens =
      ParseEmbeddingsRequest(R"({"model":"m","input":[[1],[2,3]]})");
  ASSERT_TRUE(tokens.ok());
  EmbeddingsRequest t = gateway_internal::SliceEmbeddingsRequest(*tokens, 1, 1);
  EXPECT_EQ(t.input_kind, EmbeddingInputKind::kTokenArrays);
  EXPECT_EQ(t.tokens, (std::vector<std::vector<int64_t>>{{2, 3}}));
}

TEST(EmbeddingsSliceTest, MergeSumsUsageOnlyWhenEveryPartHasIt) {
  auto part = [](std::vector<float> v, std::optional<int64_t> tokens) {
    EmbeddingsResponse r;
    r.model = "m";
    r.data.push_back(Embedding{.index = 0, .embedding = std::move(v)});
    if (tokens.has_value()) r.usage = EmbeddingsUsage{*tokens, *tokens, {}};
    return r;
  };
  EmbeddingsResponse both = gateway_internal::MergeEmbeddingsResponses(
      {part({1}, 3), part({2}, 4)});
  ASSERT_EQ(both.data.size(), 2u);
  EXPECT_EQ(both.data[1].index, 1);
  EXPECT_EQ(std::get<std::vector<float>>(both.data[1].embedding), std::vector<float>{2});
  ASSERT_TRUE(both.usage.has_value());
  EXPECT_EQ(both.usage->prompt_tokens, 7);
  EmbeddingsResponse one = gateway_internal::MergeEmbeddingsResponses(
      {part({1}, 3), part({2}, std::nullopt)});
  EXPECT_FALSE(one.usage.has_value());
}

}  // namespace
}  // namespace modeenvoy
