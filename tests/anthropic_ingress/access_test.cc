// tests/anthropic_ingress/access_test.cc: the api_key_auth filter's per-key model scope on
// the Anthropic ingress's local endpoints, through the engine (issue 11): count_tokens and
// the model lists answer a key only for the models /v1/messages would serve it.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/ingress/anthropic.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;
using Json = nlohmann::json;

// A provider that records every call and answers 200 with `body` on the next loop round.
class RecordingUpstream final : public UpstreamClient {
 public:
  explicit RecordingUpstream(SimEventLoop* loop) : loop_(loop) {}

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler* handler) override {
    urls.push_back(request.url);
    auto call = std::make_unique<Call>();
    std::weak_ptr<bool> alive = call->life;
    loop_->Post([handler, alive, body = body] {
      if (alive.expired()) return;
      handler->OnHeaders(200, {{"content-type", "application/json"}});
      handler->OnData(body);
      handler->OnComplete(absl::OkStatus());
    });
    return call;
  }

  std::vector<std::string> urls;
  std::string body = R"({"input_tokens":4321})";

 private:
  struct Call final : UpstreamCall {
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }
    std::shared_ptr<bool> life = std::make_shared<bool>(true);
  };
  SimEventLoop* loop_;
};

ConfigLoadOptions MakeLoadOptions(const Registry* registry) {
  ConfigLoadOptions options;
  options.registry = registry;
  return options;
}

constexpr char kScopedKey[] = "sk-scoped-000001";
constexpr char kOpenKey[] = "sk-open-00000001";

class AnthropicIngressAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterAnthropicIngressComponent(&registry_).ok());
    absl::Status loaded = config_.Load(R"({
      "providers": {"ant": {"type": "anthropic", "base_url": "http://anthropic.test",
                            "api_key": "sk-ant-gateway"},
                    "oai": {"type": "openai", "base_url": "http://openai.test/v1",
                            "api_key": "sk-oai-gateway"}},
      "models": {"claude": {"provider": "ant", "upstream_model": "claude-sonnet-4-5"},
                 "gpt": {"provider": "oai", "upstream_model": "gpt-4o-mini"}},
      "routes": [{"match": {"model": "claude-alias"}, "target": "claude"}],
      "filters": [{"type": "api_key_auth", "config": {"keys": [
        {"name": "scoped", "key": "sk-scoped-000001", "models": ["gpt"]},
        {"name": "open", "key": "sk-open-00000001"}]}}]})");
    ASSERT_TRUE(loaded.ok()) << loaded;
    GatewayOptions options;
    options.config = &config_;
    options.loop = loop_.get();
    options.upstream = &upstream_;
    absl::StatusOr<std::unique_ptr<Gateway>> gateway = NewGateway(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
  }

  struct Answer {
    int status = 0;
    Json body;
  };

  Answer Send(std::string method, std::string path, std::string_view key, std::string body,
              bool anthropic_version = true) {
    HttpRequest request;
    request.method = std::move(method);
    request.path = std::move(path);
    request.headers = {{"x-api-key", std::string(key)}, {"content-type", "application/json"}};
    if (anthropic_version) request.headers.emplace_back("anthropic-version", "2023-06-01");
    request.body = std::move(body);
    request.remote_address = "127.0.0.1:1";
    RecordingSink sink;
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(std::move(request), &sink);
    loop_->RunFor(absl::Minutes(1));
    EXPECT_TRUE(sink.finished.has_value());
    return {sink.status, Json::parse(sink.body, nullptr, false)};
  }

  static std::string Body(std::string_view model, bool max_tokens) {
    Json body = {{"model", model},
                 {"messages", Json::array({{{"role", "user"}, {"content", "hello there"}}})}};
    if (max_tokens) body["max_tokens"] = 16;
    return body.dump();
  }

  static std::vector<std::string> Ids(const Json& list) {
    std::vector<std::string> ids;
    if (!list.is_object() || !list.contains("data")) return {"no list: " + list.dump()};
    for (const Json& m : list["data"]) ids.push_back(m.value("id", ""));
    return ids;
  }

  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  RecordingUpstream upstream_{loop_.get()};
  Registry registry_;
  ConfigStore config_{MakeLoadOptions(&registry_)};
  std::unique_ptr<Gateway> gateway_;
};

TEST_F(AnthropicIngressAccessTest, CountTokensRefusesAModelOutsideTheKeysScopeAsMessagesDoes) {
  for (std::string_view model : {"claude", "claude-alias"}) {
    SCOPED_TRACE(model);
    const Answer messages = Send("POST", "/v1/messages", kScopedKey, Body(model, true));
    const Answer count =
        Send("POST", "/v1/messages/count_tokens", kScopedKey, Body(model, false));
    // Anthropic's shape for a 403 (its API reference: permission_error).
    EXPECT_EQ(messages.status, 403);
    ASSERT_TRUE(messages.body.is_object()) << messages.body;
    EXPECT_EQ(messages.body.value("type", ""), "error") << messages.body;
    EXPECT_EQ(messages.body.value("error", Json::object()).value("type", ""), "permission_error")
        << messages.body;
    EXPECT_EQ(count.status, messages.status);
    EXPECT_EQ(count.body, messages.body);
  }
  // Neither reached the provider: the gateway's Anthropic credentials were not used.
  EXPECT_THAT(upstream_.urls, ElementsAre());
}

TEST_F(AnthropicIngressAccessTest, CountTokensServesTheModelsInScope) {
  const Answer estimate = Send("POST", "/v1/messages/count_tokens", kScopedKey,
                               Body("gpt", false));
  EXPECT_EQ(estimate.status, 200);
  EXPECT_TRUE(estimate.body.is_object() && estimate.body.contains("input_tokens"))
      << estimate.body;
  const Answer forwarded = Send("POST", "/v1/messages/count_tokens", kOpenKey,
                                Body("claude", false));
  EXPECT_EQ(forwarded.status, 200);
  EXPECT_EQ(forwarded.body, Json::parse(upstream_.body));
  EXPECT_THAT(upstream_.urls, ElementsAre("http://anthropic.test/v1/messages/count_tokens"));
}

TEST_F(AnthropicIngressAccessTest, ModelListsShowAKeyOnlyTheModelsItMayUse) {
  // The served names are the models and the routes' names (ServedModelNames).
  EXPECT_THAT(Ids(Send("GET", "/v1/models", kScopedKey, "").body), ElementsAre("gpt"));
  EXPECT_THAT(Ids(Send("GET", "/v1/models", kScopedKey, "", false).body), ElementsAre("gpt"));
  EXPECT_THAT(Ids(Send("GET", "/v1/models", kOpenKey, "").body),
              UnorderedElementsAre("claude", "claude-alias", "gpt"));
  EXPECT_THAT(Ids(Send("GET", "/v1/models", kOpenKey, "", false).body),
              UnorderedElementsAre("claude", "claude-alias", "gpt"));
}

}  // namespace
}  // namespace modeenvoy
