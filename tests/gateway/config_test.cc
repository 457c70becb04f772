// tests/gateway/config_test.cc: the configuration document, snapshots and ConfigStore.
#include "modeenvoy/gateway/config.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// The example from config.h, without the // notes.
constexpr char kExample[] = R"({
  "listen": {"address": "127.0.0.1", "port": 8080, "max_body_bytes": 1048576},
  "providers": {
    "openai": {
      "type": "openai",
      "base_url": "https://api.openai.com/v1/",
      "api_key_env": "OPENAI_API_KEY",
      "headers": {"OpenAI-Organization": "org-123"},
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 60000, "idle_ms": 30000,
                   "total_ms": 0}
    },
    "local": {"type": "openai", "base_url": "http://127.0.0.1:8000/v1"}
  },
  "models": {
    "gpt-4o-mini": {"provider": "openai"},
    "llama": {"provider": "local", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"}
  },
  "routes": [
    {"match": {"model": "smart"},
     "targets": [{"model": "gpt-4o-mini", "weight": 90}, {"model": "llama", "weight": 10}]},
    {"match": {"model": "default"}, "target": "gpt-4o-mini"}
  ],
  "filters": [
    {"type": "api_key_auth", "name": "auth",
     "config": {"keys": [{"name": "team-a", "key": "sk-a", "models": ["smart"]},
                         {"name": "ops", "key_env": "OPS_KEY"}]}},
    {"type": "headers",
     "config": {"request": {"set": {"x-team": "a"}, "remove": ["x-debug"]},
                "response": {"add": {"x-served-by": "modeenvoy"}}}}
  ]
})";

ConfigLoadOptions FakeEnv(std::map<std::string, std::string> vars = {
                              {"OPENAI_API_KEY", "sk-openai"}, {"OPS_KEY", "sk-ops"}}) {
  return {.env_lookup = [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  }};
}

class ConfigTest : public ::testing::Test {
 protected:
  // The error message LoadConfig gives for `json`, or "OK".
  static std::string ErrorOf(const std::string& json) {
    absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s = LoadConfig(json, FakeEnv());
    if (s.ok()) return "OK";
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.status().message());
  }
  // A config with one valid provider "p" and model "m", plus `extra` top-level members.
  static std::string With(const std::string& providers, const std::string& models = "{}",
                          const std::string& extra = "") {
    return R"({"providers": )" + providers + R"(, "models": )" + models + extra + "}";
  }
  static constexpr char kP[] = R"({"p": {"type": "openai", "base_url": "http://h/v1"}})";
};

TEST_F(ConfigTest, LoadsTheDocumentedExample) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s = LoadConfig(kExample, FakeEnv());
  ASSERT_TRUE(s.ok()) << s.status();
  const ConfigSnapshot& c = **s;
  EXPECT_EQ(c.generation(), 0u);
  EXPECT_EQ(c.listen().address, "127.0.0.1");
  EXPECT_EQ(c.listen().port, 8080);
  EXPECT_EQ(c.listen().max_body_bytes, 1048576u);

  const ProviderConfig* openai = c.FindProvider("openai");
  ASSERT_NE(openai, nullptr);
  EXPECT_EQ(openai->base_url, "https://api.openai.com/v1");  // trailing '/' dropped
  EXPECT_EQ(openai->api_key, "sk-openai");
  EXPECT_THAT(openai->headers, ElementsAre(Pair("OpenAI-Organization", "org-123")));
  EXPECT_EQ(openai->timeouts.connect, absl::Seconds(2));
  EXPECT_EQ(openai->timeouts.first_byte, absl::Minutes(1));
  EXPECT_EQ(openai->timeouts.idle, absl::Seconds(30));
  EXPECT_EQ(openai->timeouts.total, absl::InfiniteDuration());  // 0 disables
  EXPECT_EQ(c.FindProvider("local")->api_key, "");
  EXPECT_EQ(c.FindProvider("local")->timeouts.connect, UpstreamTimeouts{}.connect);

  EXPECT_EQ(c.FindModel("gpt-4o-mini")->upstream_model, "gpt-4o-mini");
  EXPECT_EQ(c.FindModel("llama")->upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(c.FindRoute("smart")->policy, "weighted");  // the default policy
  EXPECT_THAT(c.ServedModelNames(), ElementsAre("default", "gpt-4o-mini", "llama", "smart"));

  ASSERT_EQ(c.filters().size(), 2u);
  EXPECT_EQ(c.filters()[0].name, "auth");
  EXPECT_EQ(c.filters()[1].name, "headers");  // defaults to the type
  EXPECT_EQ(c.filters()[1].config_json,
            R"({"request":{"set":{"x-team":"a"},"remove":["x-debug"]},)"
            R"("response":{"add":{"x-served-by":"modeenvoy"}}})");
  EXPECT_EQ(c.CreateFilters().size(), 2u);
}

TEST_F(ConfigTest, EmptyDocumentIsValidAndServesNothing) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s = LoadConfig("{}");
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->ServedModelNames().empty());
  EXPECT_EQ((*s)->listen().port, 8080);
}

TEST_F(ConfigTest, ResolvePicksWeightedTargetsByDraw) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s = LoadConfig(kExample, FakeEnv());
  ASSERT_TRUE(s.ok());
  const ConfigSnapshot& c = **s;
  // Weights 90/10: draws 0..89 (mod 100) pick the first target, 90..99 the second.
  EXPECT_EQ(c.Resolve("smart", 0)->model->name, "gpt-4o-mini");
  EXPECT_EQ(c.Resolve("smart", 89)->model->name, "gpt-4o-mini");
  EXPECT_EQ(c.Resolve("smart", 90)->model->name, "llama");
  EXPECT_EQ(c.Resolve("smart", 199)->model->name, "llama");
  EXPECT_EQ(c.Resolve("smart", 90)->provider->name, "local");
  EXPECT_EQ(c.Resolve("smart", 0)->route, c.FindRoute("smart"));
  EXPECT_EQ(c.Resolve("llama", 5)->route, nullptr);
  absl::StatusOr<ResolvedRoute> missing = c.Resolve("gpt-9", 0);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrorCode(missing.status()), "model_not_found");
}

TEST_F(ConfigTest, SyntaxErrorsAndShape) {
  EXPECT_EQ(ErrorOf("{"),
            "invalid JSON at byte 2: syntax error while parsing object key - unexpected end "
            "of input; expected string literal");
  EXPECT_EQ(ErrorOf("[]"), "config must be a JSON object");
  EXPECT_EQ(ErrorOf(R"({"provider": {}})"), "provider: unknown field");
  EXPECT_EQ(ErrorOf(R"({"models": {}, "models": {}})"), "models: duplicate key");
  EXPECT_EQ(ErrorOf(R"({"providers": {"p": {"type": "openai", "type": "openai"}}})"),
            "providers.p.type: duplicate key");
  EXPECT_EQ(ErrorOf(R"({"routes": {}})"), "routes: must be an array");
}

TEST_F(ConfigTest, ListenRules) {
  EXPECT_EQ(ErrorOf(R"({"listen": {"prot": 1}})"), "listen.prot: unknown field");
  EXPECT_EQ(ErrorOf(R"({"listen": {"port": 70000}})"), "listen.port: must be <= 65535");
  EXPECT_EQ(ErrorOf(R"({"listen": {"port": "80"}})"), "listen.port: must be an integer");
  EXPECT_EQ(ErrorOf(R"({"listen": {"port": 1.5}})"), "listen.port: must be an integer");
  EXPECT_EQ(ErrorOf(R"({"listen": {"address": ""}})"), "listen.address: must not be empty");
  EXPECT_EQ(ErrorOf(R"({"listen": {"max_body_bytes": 0}})"),
            "listen.max_body_bytes: must be >= 1");
  EXPECT_EQ(ErrorOf(R"({"listen": []})"), "listen: must be an object");
}

TEST_F(ConfigTest, ProviderWithoutBaseUrlUsesTheDialectsPublicEndpoint) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s =
      LoadConfig(With(R"({"o": {"type": "openai", "api_key": "sk-1"}})"), FakeEnv());
  ASSERT_TRUE(s.ok()) << s.status();
  const ProviderConfig* o = (*s)->FindProvider("o");
  ASSERT_NE(o, nullptr);
  EXPECT_EQ(o->base_url, "");  // the entry named none
  ChatRequest chat;
  chat.model = "gpt-4o";
  chat.messages.push_back(MakeMessage(Role::kUser, "hi"));
  UpstreamRequest req;
  ASSERT_TRUE(o->dialect->BuildRequest(chat, {.upstream_model = "gpt-4o"}, &req).ok());
  EXPECT_EQ(req.url, "https://api.openai.com/v1/chat/completions");
  EXPECT_EQ(FindHeader(req.headers, "authorization").value_or(""), "Bearer sk-1");
}

TEST_F(ConfigTest, ProviderRules) {
  EXPECT_EQ(ErrorOf(With(R"({"openai": {"type": "openai", "base_url": "ftp://x"}})")),
            "providers.openai.base_url: must start with http:// or https://");
  EXPECT_EQ(ErrorOf(With(R"({"openai": {"base_url": "http://h"}})")),
            "providers.openai.type: is required");
  // The known list grows with every registered dialect; its head is what is stable.
  EXPECT_THAT(ErrorOf(With(R"({"a": {"type": "nosuch", "base_url": "http://h"}})")),
              ::testing::StartsWith(
                  "providers.a.type: unknown provider type \"nosuch\" (known: "));
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://"}})")),
            "providers.a.base_url: must name a host");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h/v1?x=1"}})")),
            "providers.a.base_url: must not contain a query or fragment");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h", "key": "k"}})")),
            "providers.a.key: unknown field");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "api_key": "k", "api_key_env": "OPS_KEY"}})")),
            "providers.a.api_key_env: cannot be combined with api_key");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "api_key_env": "MISSING"}})")),
            "providers.a.api_key_env: environment variable \"MISSING\" is not set");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "headers": {"x-a": 1}}})")),
            "providers.a.headers.x-a: must be a string");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "headers": {"x:a": "1"}}})")),
            "providers.a.headers.x:a: invalid header name");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "timeouts": {"idle_ms": -1}}})")),
            "providers.a.timeouts.idle_ms: must be >= 0");
  EXPECT_EQ(ErrorOf(With(R"({"a": {"type": "openai", "base_url": "http://h",
                                   "timeouts": {"read_ms": 5}}})")),
            "providers.a.timeouts.read_ms: unknown field");
  EXPECT_EQ(ErrorOf(With(R"({"a.b": {"type": "openai", "base_url": "h"}})")),
            "providers[\"a.b\"].base_url: must start with http:// or https://");
}

TEST_F(ConfigTest, ModelRules) {
  EXPECT_EQ(ErrorOf(With(kP, R"({"demo": {"provider": "x"}})")),
            "models.demo.provider: unknown provider \"x\"");
  EXPECT_EQ(ErrorOf(With(kP, R"({"demo": {}})")), "models.demo.provider: is required");
  EXPECT_EQ(ErrorOf(With(kP, R"({"demo": {"provider": "p", "upstream_model": ""}})")),
            "models.demo.upstream_model: must not be empty");
  EXPECT_EQ(ErrorOf(With(kP, R"({"demo": {"provider": "p", "upstream": "x"}})")),
            "models.demo.upstream: unknown field");
  EXPECT_EQ(ErrorOf(With(kP, R"({"demo": "p"})")), "models.demo: must be an object");
}

TEST_F(ConfigTest, RouteRules) {
  const std::string models = R"({"m": {"provider": "p"}})";
  auto routes = [&](const std::string& r) { return ErrorOf(With(kP, models, ", \"routes\": " + r)); };
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "target": "m"}])"), "OK");
  EXPECT_EQ(routes(R"([{"target": "m"}])"), "routes[0].match: is required");
  EXPECT_EQ(routes(R"([{"match": {}, "target": "m"}])"), "routes[0].match.model: is required");
  EXPECT_EQ(routes(R"([{"match": {"model": "a", "user": "u"}, "target": "m"}])"),
            "routes[0].match.user: unknown field");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}}])"),
            "routes[0]: exactly one of \"target\" or \"targets\" is required");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "target": "x"}])"),
            "routes[0].target: unknown model \"x\"");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "targets": []}])"),
            "routes[0].targets: must not be empty");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "targets": [{"model": "m"}, {"model": "y"}]}])"),
            "routes[0].targets[1].model: unknown model \"y\"");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "targets": [{"model": "m", "weight": -1}]}])"),
            "routes[0].targets[0].weight: must be >= 0");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "targets": [{"model": "m", "weight": 0}]}])"),
            "routes[0].targets: weights must not all be 0");
  EXPECT_EQ(routes(R"([{"match": {"model": "a"}, "target": "m"},
                       {"match": {"model": "a"}, "target": "m"}])"),
            "routes[1].match.model: duplicate route for \"a\"");
}

TEST_F(ConfigTest, FilterRules) {
  auto filters = [&](const std::string& f) { return ErrorOf(R"({"filters": )" + f + "}"); };
  EXPECT_EQ(filters(R"([{"type": "headers"}, {"type": "foo"}])"),
            "filters[1].type: unknown filter type \"foo\"");
  EXPECT_EQ(filters(R"([{"name": "x"}])"), "filters[0].type: is required");
  EXPECT_EQ(filters(R"([{"type": "headers", "conf": {}}])"), "filters[0].conf: unknown field");
  EXPECT_EQ(filters(R"([{"type": "headers", "config": []}])"),
            "filters[0].config: must be an object");
  EXPECT_EQ(filters(R"([{"type": "headers", "name": "h"}, {"type": "headers", "name": "h"}])"),
            "filters[1].name: duplicate filter name \"h\"");
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> two =
      LoadConfig(R"({"filters": [{"type": "headers"}, {"type": "headers"}]})");
  ASSERT_TRUE(two.ok());
  EXPECT_EQ((*two)->filters()[1].name, "headers#2");
}

TEST_F(ConfigTest, ErrorsCarryTheirPathAsParam) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> s =
      LoadConfig(With(kP, R"({"demo": {"provider": "x"}})"));
  EXPECT_EQ(ErrorParam(s.status()), "models.demo.provider");
}

// ---------------------------------------------------------------------------------------

TEST(ConfigStoreTest, LoadPublishesAndCountsGenerations) {
  ConfigStore store(FakeEnv());
  EXPECT_EQ(store.Current(), nullptr);
  EXPECT_EQ(store.generation(), 0u);
  EXPECT_EQ(store.Reload("{}").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(store.Load(kExample).ok());
  EXPECT_EQ(store.generation(), 1u);
  EXPECT_EQ(store.Current()->generation(), 1u);
  ASSERT_TRUE(store.Reload("{}").ok());
  EXPECT_EQ(store.generation(), 2u);
  EXPECT_EQ(store.Current()->generation(), 2u);
}

TEST(ConfigStoreTest, FailedReloadKeepsTheCurrentSnapshot) {
  ConfigStore store(FakeEnv());
  ASSERT_TRUE(store.Load(kExample).ok());
  std::shared_ptr<const ConfigSnapshot> before = store.Current();
  absl::Status s = store.Reload(R"({"models": {"x": {"provider": "nope"}}})");
  EXPECT_EQ(s.message(), "models.x.provider: unknown provider \"nope\"");
  EXPECT_EQ(store.Current(), before);
  EXPECT_EQ(store.generation(), 1u);
}

TEST(ConfigStoreTest, SwapLeavesSnapshotsHeldByRequestsIntact) {
  ConfigStore store(FakeEnv());
  ASSERT_TRUE(store.Load(kExample).ok());
  // A request in flight holds the snapshot it started with...
  std::shared_ptr<const ConfigSnapshot> held = store.Current();
  const ModelConfig* model = held->FindModel("llama");
  ASSERT_NE(model, nullptr);
  // ...while a reload replaces the store's snapshot with one that lacks that model.
  ASSERT_TRUE(store
                  .Reload(R"({"providers": {"p": {"type": "openai", "base_url": "http://h"}},
                              "models": {"other": {"provider": "p"}}})")
                  .ok());
  EXPECT_EQ(store.Current()->FindModel("llama"), nullptr);
  EXPECT_NE(store.Current(), held);
  // The held snapshot, and pointers into it, are untouched.
  EXPECT_EQ(model->upstream_model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(held->Resolve("llama", 0)->provider->base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(held->generation(), 1u);
  EXPECT_EQ(held->CreateFilters().size(), 2u);
}

}  // namespace
}  // namespace modeenvoy
