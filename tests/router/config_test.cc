#include <string>

#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::FindHealth;
using router_test::FirstPick;
using router_test::MakeRouter;

constexpr char kPools[] = R"({
  "pools": [
    {"name": "gpt-4o", "aliases": ["gpt4o", "gpt-4o*"],
     "deployments": [{"id": "oai", "provider": "openai", "model": "gpt-4o-2024-08-06"}]},
    {"name": "gpt-4o-mini",
     "deployments": [{"id": "mini", "provider": "openai", "model": "gpt-4o-mini"}]},
    {"name": "claude", "aliases": ["anthropic/*", "anthropic/claude-3*"],
     "deployments": [{"id": "ant", "provider": "anthropic", "model": "claude-3-5-sonnet",
                      "dialect": "anthropic", "region": "us", "weight": 3, "tier": 1,
                      "context_window": 200000, "max_in_flight": 8, "rpm": 100, "tpm": 1000,
                      "input_price_per_mtok": 3, "output_price_per_mtok": 15.5}]},
    {"name": "claude-haiku", "aliases": ["anthropic/claude-3-haiku*"],
     "deployments": [{"id": "haiku", "provider": "anthropic", "model": "claude-3-haiku"}]}
  ]})";

TEST(RouterConfigTest, ExactAliasAndWildcardNamesFindTheirPools) {
  auto config = ParseRouterConfig(kPools);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ((*config)->PoolFor("gpt-4o"), "gpt-4o");
  EXPECT_EQ((*config)->PoolFor("gpt4o"), "gpt-4o");
  EXPECT_EQ((*config)->PoolFor("gpt-4o-2024-11-20"), "gpt-4o");  // wildcard gpt-4o*
  EXPECT_EQ((*config)->PoolFor("gpt-4o-mini"), "gpt-4o-mini");   // exact beats wildcard
  EXPECT_EQ((*config)->PoolFor("anthropic/claude-3-opus"), "claude");
  // The longest wildcard prefix wins.
  EXPECT_EQ((*config)->PoolFor("anthropic/claude-3-haiku-20240307"), "claude-haiku");
  EXPECT_EQ((*config)->PoolFor("anthropic/x"), "claude");
  EXPECT_EQ((*config)->PoolFor("gpt-4"), std::nullopt);
}

TEST(RouterConfigTest, DeploymentFieldsAreRead) {
  auto config = ParseRouterConfig(kPools);
  ASSERT_TRUE(config.ok()) << config.status();
  const RouterDeployment* ant = nullptr;
  for (const auto& d : (*config)->deployments()) {
    if (d.id == "ant") ant = &d;
  }
  ASSERT_NE(ant, nullptr);
  EXPECT_EQ(ant->provider, "anthropic");
  EXPECT_EQ(ant->upstream_model, "claude-3-5-sonnet");
  EXPECT_EQ(ant->dialect, "anthropic");
  EXPECT_EQ(ant->region, "us");
  EXPECT_EQ(ant->weight, 3);
  EXPECT_EQ(ant->tier, 1);
  EXPECT_EQ(ant->context_window, 200000);
  EXPECT_EQ(ant->max_in_flight, 8);
  EXPECT_EQ(ant->rpm, 100);
  EXPECT_EQ(ant->tpm, 1000);
  EXPECT_DOUBLE_EQ(ant->input_price_per_mtok, 3);
  EXPECT_DOUBLE_EQ(ant->output_price_per_mtok, 15.5);
  EXPECT_EQ((*config)->deployments()[0].dialect, "openai");  // the default
}

struct BadConfig {
  const char* json;
  const char* message;
};

class RouterConfigErrorTest : public testing::TestWithParam<BadConfig> {};

TEST_P(RouterConfigErrorTest, NamesTheFieldPath) {
  auto config = ParseRouterConfig(GetParam().json);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(config.status().message(), GetParam().message);
}

#define DEP R"({"id": "a", "provider": "p", "model": "m"})"
INSTANTIATE_TEST_SUITE_P(
    All, RouterConfigErrorTest,
    testing::Values(
        BadConfig{R"({"pools": []})", "pools: at least one pool is required"},
        BadConfig{R"({"pool": []})", "pool: unknown field"},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [)" DEP R"(], "extra": 1}]})",
                  "pools[0].extra: unknown field"},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [{"id": "a", "provider": "p",
                   "model": "m", "weight": 0}]}]})",
                  "pools[0].deployments[0].weight: must be >= 1"},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [{"id": "a", "provider": "p"}]}]})",
                  "pools[0].deployments[0].model: is required"},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [{"id": "a", "provider": "p",
                   "model": "m", "input_price_per_mtok": "1"}]}]})",
                  "pools[0].deployments[0].input_price_per_mtok: must be a number"},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [)" DEP "," DEP R"(]}]})",
                  "pools[0].deployments[1].id: duplicate deployment id \"a\""},
        BadConfig{R"({"pools": [{"name": "x", "aliases": ["a*b"], "deployments": [)" DEP R"(]}]})",
                  "pools[0].aliases[0]: \"a*b\": only a trailing '*' is supported"},
        BadConfig{R"({"pools": [{"name": "x", "lb": {"policy": "random"}, "deployments": [)" DEP R"(]}]})",
                  "pools[0].lb.policy: unknown policy \"random\" (round_robin, "
                  "weighted_round_robin, least_request, peak_ewma, ring_hash, maglev)"},
        BadConfig{R"({"pools": [{"name": "x", "lb": {"maglev_table_size": 100}, "deployments": [)" DEP R"(]}]})",
                  "pools[0].lb.maglev_table_size: must be prime"},
        BadConfig{R"({"pools": [{"name": "x", "lb": {"balance_factor": 1}, "deployments": [)" DEP R"(]}]})",
                  "pools[0].lb.balance_factor: must be > 1"},
        BadConfig{R"({"pools": [{"name": "x", "retry": {"retry_on": ["5xx", "4xx"]}, "deployments": [)" DEP R"(]}]})",
                  "pools[0].retry.retry_on[1]: \"4xx\" is not a retriable failure (429, 5xx, "
                  "timeout, connect, reset, context_length, content_filter)"},
        BadConfig{R"({"pools": [{"name": "x", "outlier": {"base_ejection_ms": 5000, "max_ejection_ms": 10}, "deployments": [)" DEP R"(]}]})",
                  "pools[0].outlier.max_ejection_ms: must be >= base_ejection_ms"},
        BadConfig{R"({"pools": [{"name": "x", "fallbacks": ["nope"], "deployments": [)" DEP R"(]}]})",
                  "pools[0].fallbacks[0]: no pool serves \"nope\""},
        BadConfig{R"({"pools": [{"name": "x", "deployments": [)" DEP R"(]},
                   {"name": "y", "aliases": ["x"], "deployments": [{"id": "b", "provider": "p", "model": "m"}]}]})",
                  "pools[1].aliases[0]: \"x\" is served by another pool"}));
#undef DEP

TEST(RouterConfigTest, UnknownModelIsNotFound) {
  auto router = MakeRouter(kPools);
  auto plan = router->Plan({.model = "llama"});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kNotFound);
}

TEST(RouterConfigTest, PlanBeforeUpdateFails) {
  auto router = NewRouter();
  EXPECT_EQ(router->Plan({.model = "x"}).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(router->Update(nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST(RouterConfigTest, HealthOfUnchangedDeploymentsSurvivesASwap) {
  FakeClock clock;
  constexpr char kBefore[] = R"({"pools": [{"name": "m",
      "outlier": {"consecutive_failures": 1, "max_ejected_percent": 100},
      "retry": {"max_attempts": 1},
      "deployments": [{"id": "a", "provider": "p", "model": "m"},
                      {"id": "b", "provider": "p", "model": "m"}]}]})";
  constexpr char kAfter[] = R"({"pools": [{"name": "m",
      "deployments": [{"id": "a", "provider": "p", "model": "m"},
                      {"id": "c", "provider": "p", "model": "m"}]}]})";
  auto router = MakeRouter(kBefore, &clock);
  // Eject whichever deployment the first attempt goes to, and keep a plan in flight.
  auto plan = router->Plan({.model = "m", .draw = 1});
  ASSERT_TRUE(plan.ok());
  auto attempt = (*plan)->Next();
  std::string ejected = attempt->deployment->id;
  (*plan)->Report(*attempt, {.failure = UpstreamFailure::kServerError});
  auto in_flight = router->Plan({.model = "m", .draw = 2});
  ASSERT_TRUE(in_flight.ok());
  auto held = (*in_flight)->Next();
  ASSERT_TRUE(held.has_value());
  std::string held_id = held->deployment->id;

  auto after = ParseRouterConfig(kAfter);
  ASSERT_TRUE(after.ok());
  ASSERT_TRUE(router->Update(*after).ok());
  auto health = router->Health();
  ASSERT_EQ(health.size(), 2u);
  if (ejected == "a") {
    EXPECT_TRUE(FindHealth(health, "a")->ejected);
  } else {
    EXPECT_FALSE(FindHealth(health, "a")->ejected);
  }
  EXPECT_FALSE(FindHealth(health, "c")->ejected);
  EXPECT_EQ(FindHealth(health, "a")->in_flight, held_id == "a" ? 1 : 0);
  // The plan made before the swap still reports into its own configuration.
  EXPECT_EQ(held->deployment->id, held_id);
  (*in_flight)->Report(*held, {});
  EXPECT_TRUE((*in_flight)->final_status().ok());
  EXPECT_EQ(FindHealth(router->Health(), "a")->in_flight, 0);
}

}  // namespace
}  // namespace modeenvoy
