// tests/gateway/embeddings_engine_test.cc: POST /v1/embeddings through the engine (NewGateway)
// against loopback providers: the filters see the embeddings request (and no chat), routing
// and fallbacks work as for chat, the provider's model name goes upstream, usage is counted
// when the provider reports none, base64 is the gateway's own encoding, and model scopes of
// api_key_auth bind embeddings too.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
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
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;
using gateway_testing::RecordingSink;
using gateway_testing::TestConnection;
using gateway_testing::TestHttpServer;
using Json = nlohmann::json;

HttpRequest PostEmbeddings(std::string body, HttpHeaders headers = {}) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/embeddings";
  r.headers = std::move(headers);
  r.headers.emplace_back("content-type", "application/json");
  r.body = std::move(body);
  r.remote_address = "127.0.0.1:1";
  return r;
}

// What a filter saw of one request.
struct Seen {
  bool chat = false;
  std::string embeddings_model;
  std::string model;
  std::optional<Usage> usage;
  bool usage_estimated = false;
};

class Recorder final : public Filter {
 public:
  explicit Recorder(Seen* seen) : seen_(seen) {}
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks&) override {
    seen_->chat = ctx.chat != nullptr;
    if (ctx.embeddings != nullptr) seen_->embeddings_model = ctx.embeddings->model;
    seen_->model = std::string(ctx.model());
    return FilterResult::Continue();
  }
  FilterStatus OnResponseComplete(RequestContext&, const ResponseOutcome& outcome,
                                  FilterCallbacks&) override {
    seen_->usage = outcome.usage;
    seen_->usage_estimated = outcome.usage_estimated;
    return FilterStatus::kContinue;
  }

 private:
  Seen* seen_;
};

// Counts 10 tokens per text, so an estimate is told apart from any provider's count.
class TenPerText final : public UsageEstimator {
 public:
  std::string_view method() const override { return "ten"; }
  int64_t PromptTokens(const ChatRequest&, std::string_view) const override { return 10; }
  int64_t CompletionTokens(std::string_view, std::string_view) const override { return 10; }
};

std::string OpenAiEmbeddingsJson(std::string_view model, int n, int tokens) {
  std::string data;
  for (int i = 0; i < n; ++i) {
    if (i != 0) data += ",";
    data += absl::StrFormat(R"({"object":"embedding","index":%d,"embedding":[%d.5,-1]})", i, i);
  }
  return absl::StrFormat(
      R"({"object":"list","data":[%s],"model":"%s","usage":{"prompt_tokens":%d,"total_tokens":%d}})",
      data, model, tokens, tokens);
}

class EmbeddingsEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
    ASSERT_TRUE(registry_.filters()
                    .Register("recorder",
                              [this](std::string_view, const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                                return MakeFilterFactory<Recorder>(Recorder(&seen_));
                              })
                    .ok());
  }

  void Start(const std::string& config) {
    store_ = std::make_unique<ConfigStore>(ConfigLoadOptions{.registry = &registry_});
    absl::Status s = store_->Load(config);
    ASSERT_TRUE(s.ok()) << s;
    GatewayOptions options;
    options.config = store_.get();
    options.loop = loop_.get();
    options.upstream = client_.get();
    options.usage_estimator = std::make_shared<TenPerText>();
    absl::StatusOr<std::unique_ptr<Gateway>> gw = NewGateway(std::move(options));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = std::move(*gw);
  }

  RecordingSink Serve(HttpRequest request) {
    RecordingSink sink;
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(std::move(request), &sink);
    EXPECT_TRUE(loop_->RunUntil([&] { return sink.finished.has_value(); }, kTestWait));
    return sink;
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
  Registry registry_;
  Seen seen_;
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(EmbeddingsEngineTest, FiltersSeeTheEmbeddingsRequestAndTheProviderModelGoesUpstream) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(200, {{"content-type", "application/json"}},
                   OpenAiEmbeddingsJson("text-embedding-3-small", 2, 4));
  });
  Start(absl::StrFormat(
      R"({"providers": {"up": {"type": "openai", "base_url": "%s", "api_key": "sk-up"}},
          "models": {"emb": {"provider": "up", "upstream_model": "text-embedding-3-small"}},
          "filters": [{"type": "recorder"}]})",
      server.Url("/v1")));
  RecordingSink sink = Serve(PostEmbeddings(R"({"model":"emb","input":["a","b"],"x":1})"));
  ASSERT_EQ(sink.status, 200) << sink.body;
  EXPECT_FALSE(seen_.chat);
  EXPECT_EQ(seen_.embeddings_model, "emb");
  EXPECT_EQ(seen_.model, "emb");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].path, "/v1/embeddings");
  EXPECT_EQ(Json::parse(server.requests()[0].body),
            Json::parse(R"({"model":"text-embedding-3-small","input":["a","b"],"x":1})"));
  Json out = Json::parse(sink.body);
  EXPECT_EQ(out["data"][1]["embedding"], Json::parse("[1.5,-1]"));
  ASSERT_TRUE(seen_.usage.has_value());
  EXPECT_EQ(seen_.usage->prompt_tokens, 4);
  EXPECT_FALSE(seen_.usage_estimated);
}

TEST_F(EmbeddingsEngineTest, FallsBackToTheNextModelAfterA503) {
  TestHttpServer server([](TestConnection& c) {
    Json body = Json::parse(c.request().body);
    if (body["model"] == "broken") {
      c.SendResponse(503, {{"content-type", "application/json"}},
                     R"({"error":{"message":"down","type":"server_error"}})");
      return;
    }
    c.SendResponse(200, {{"content-type", "application/json"}},
                   OpenAiEmbeddingsJson(body["model"].get<std::string>(), 1, 1));
  });
  Start(absl::StrFormat(
      R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
          "models": {"first": {"provider": "up", "upstream_model": "broken"},
                     "second": {"provider": "up", "upstream_model": "works"}},
          "routes": [{"match": {"model": "first"}, "target": "first",
                      "fallbacks": ["second"]}]})",
      server.Url("/v1")));
  RecordingSink sink = Serve(PostEmbeddings(R"({"model":"first","input":"a"})"));
  ASSERT_EQ(sink.status, 200) << sink.body;
  EXPECT_EQ(Json::parse(sink.body)["model"], "works");
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST_F(EmbeddingsEngineTest, UsageIsCountedAndMarkedWhenTheProviderReportsNone) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(200, {{"content-type", "application/json"}},
                   R"({"embeddings":[{"values":[0.25,0.5]},{"values":[1,2]}]})");
  });
  Start(absl::StrFormat(
      R"({"providers": {"g": {"type": "gemini", "base_url": "%s", "api_key": "k"}},
          "models": {"emb": {"provider": "g", "upstream_model": "gemini-embedding-001"}},
          "filters": [{"type": "recorder"}]})",
      server.Url("/v1beta")));
  RecordingSink sink =
      Serve(PostEmbeddings(R"({"model":"emb","input":["a","b"],"encoding_format":"base64"})"));
  ASSERT_EQ(sink.status, 200) << sink.body;
  EXPECT_EQ(server.requests()[0].path, "/v1beta/models/gemini-embedding-001:batchEmbedContents");
  Json out = Json::parse(sink.body);
  // 0.25 = 00 00 80 3e, 0.5 = 00 00 00 3f: base64 "AACAPgAAAD8=" (by hand).
  EXPECT_EQ(out["data"][0]["embedding"], "AACAPgAAAD8=");
  EXPECT_EQ(out["usage"], Json::parse(R"({"prompt_tokens":20,"total_tokens":20,
                                          "estimated":true,"estimation_method":"ten"})"));
  ASSERT_TRUE(seen_.usage.has_value());
  EXPECT_EQ(seen_.usage->prompt_tokens, 20);
  EXPECT_TRUE(seen_.usage_estimated);
}

TEST_F(EmbeddingsEngineTest, ProviderWithoutEmbeddingsIs400NamingModelAndProvider) {
  TestHttpServer server([](TestConnection& c) { c.SendResponse(500, {}, "unexpected"); });
  Start(absl::StrFormat(
      R"({"providers": {"claude": {"type": "anthropic", "base_url": "%s", "api_key": "k"}},
          "models": {"sonnet": {"provider": "claude", "upstream_model": "claude-sonnet-4-5"}}})",
      server.Url("")));
  RecordingSink sink = Serve(PostEmbeddings(R"({"model":"sonnet","input":"a"})"));
  EXPECT_EQ(sink.status, 400);
  Json error = Json::parse(sink.body)["error"];
  EXPECT_EQ(error["param"], "model");
  const std::string message = error["message"];
  EXPECT_NE(message.find("sonnet"), std::string::npos) << message;
  EXPECT_NE(message.find("anthropic"), std::string::npos) << message;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(EmbeddingsEngineTest, BadBodyIs400WithTheFieldPath) {
  TestHttpServer server([](TestConnection& c) { c.SendResponse(500, {}, "unexpected"); });
  Start(absl::StrFormat(R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
                            "models": {"emb": {"provider": "up"}}})",
                        server.Url("/v1")));
  RecordingSink sink = Serve(PostEmbeddings(R"({"model":"emb","input":["a",3]})"));
  EXPECT_EQ(sink.status, 400);
  EXPECT_EQ(Json::parse(sink.body)["error"]["param"], "input[1]");
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(EmbeddingsEngineTest, ScopedApiKeyCannotEmbedWithAnotherModel) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(200, {{"content-type", "application/json"}},
                   OpenAiEmbeddingsJson("m", 1, 1));
  });
  Start(absl::StrFormat(
      R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
          "models": {"allowed": {"provider": "up"}, "other": {"provider": "up"}},
          "filters": [{"type": "api_key_auth", "config": {"keys": [
              {"key": "sk-team", "name": "team", "models": ["allowed"]}]}}]})",
      server.Url("/v1")));
  RecordingSink denied = Serve(PostEmbeddings(R"({"model":"other","input":"a"})",
                                              {{"authorization", "Bearer sk-team"}}));
  EXPECT_EQ(denied.status, 403) << denied.body;
  EXPECT_EQ(Json::parse(denied.body)["error"]["code"], "model_not_allowed");
  RecordingSink allowed = Serve(PostEmbeddings(R"({"model":"allowed","input":"a"})",
                                               {{"authorization", "Bearer sk-team"}}));
  EXPECT_EQ(allowed.status, 200) << allowed.body;
  EXPECT_EQ(server.requests().size(), 1u);
}

}  // namespace
}  // namespace modeenvoy
