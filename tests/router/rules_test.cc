// Tiered routing rules: prompt tokens, complexity, key tier, time of day, remaining budget;
// first match wins, inputs the request lacks never match, strict configuration errors.
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::MakeRouter;

// "gpt-4o" (deployment "strong") has rules sending requests to "mini" (deployment "cheap")
// or "long" (deployment "big"); every pool has one deployment, so the pick names the pool.
std::string Config(const std::string& rules) {
  return absl::StrCat(R"({"pools": [
    {"name": "gpt-4o", "rules": )", rules, R"(,
     "deployments": [{"id": "strong", "provider": "p", "model": "m", "context_window": 128000}]},
    {"name": "mini", "deployments": [{"id": "cheap", "provider": "p", "model": "m"}]},
    {"name": "long", "aliases": ["long-*"], "deployments": [
      {"id": "big-small-window", "provider": "p", "model": "m", "context_window": 16000},
      {"id": "big", "provider": "p", "model": "m", "context_window": 1000000, "tier": 1}]}]})");
}

struct Routed {
  std::string deployment;
  std::string rule;
};

Routed Route(const Router& router, RouteRequest request) {
  auto plan = router.Plan(request);
  if (!plan.ok()) return {"error: " + std::string(plan.status().message()), ""};
  auto attempt = (*plan)->Next();
  return {attempt ? attempt->deployment->id : "none", std::string((*plan)->matched_rule())};
}

TEST(RouterRulesTest, PromptTokensRouteLongPromptsAndSkipWindowsTooSmall) {
  auto router = MakeRouter(Config(R"([{"name": "long-prompts", "to": "long-context",
                                       "prompt_tokens": {"min": 8000}}])"));
  // 20000 + 1000 tokens: "long"'s tier-0 deployment (16000) cannot hold them, tier 1 can.
  Routed r = Route(*router, {.model = "gpt-4o", .prompt_tokens = 20000, .max_tokens = 1000});
  EXPECT_EQ(r.deployment, "big");
  EXPECT_EQ(r.rule, "long-prompts");
  // 9000 + 1000 fit the 16000 window.
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt_tokens = 9000, .max_tokens = 1000}).deployment,
            "big-small-window");
  // Below the bound, and unknown (0): the asked pool, no rule.
  Routed shorter = Route(*router, {.model = "gpt-4o", .prompt_tokens = 7999});
  EXPECT_EQ(shorter.deployment, "strong");
  EXPECT_EQ(shorter.rule, "");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "strong");
}

TEST(RouterRulesTest, ComplexityRoutesSimplePromptsToTheCheapPool) {
  auto router = MakeRouter(Config(R"([{"name": "simple", "to": "mini",
                                       "complexity": {"max": 0.5}}])"));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt = "What is the capital of France?"}).deployment, "cheap");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt = "Implement a thread-safe LRU cache in C++ with O(1) get "
                                      "and put, explain the design trade-offs, then write unit "
                                      "tests for eviction and concurrent access."})
                .deployment,
            "strong");
  // The host's own score wins over the text.
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt = "hi", .complexity = 0.9}).deployment, "strong");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .complexity = 0.1}).deployment, "cheap");
  // Neither a prompt nor a score: the condition does not hold.
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "strong");
}

TEST(RouterRulesTest, KeyTierAndRemainingBudget) {
  auto router = MakeRouter(Config(R"([
      {"name": "free-keys", "to": "mini", "key_tiers": ["free", "trial"]},
      {"name": "nearly-broke", "to": "mini", "remaining_budget": {"max": 1.0}}])"));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .key_tier = "trial"}).rule, "free-keys");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .key_tier = "pro"}).deployment, "strong");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .key_tier = "pro", .remaining_budget = 0.99}).rule, "nearly-broke");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .key_tier = "pro", .remaining_budget = 1.0}).deployment, "strong");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .remaining_budget = -3}).deployment, "cheap");  // overdrawn
  // First match wins: a free key with little budget left is "free-keys".
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .key_tier = "free", .remaining_budget = 0.5}).rule, "free-keys");
}

TEST(RouterRulesTest, TimeOfDayUsesTheInjectedClockAndTheConfiguredOffset) {
  // 22:00-06:00 local time at UTC+01:00, i.e. 21:00-05:00 UTC.
  FakeClock clock(absl::FromCivil(absl::CivilSecond(2026, 3, 1, 20, 59, 59), absl::UTCTimeZone()));
  auto router = MakeRouter(Config(R"([{"name": "night", "to": "mini",
      "time_of_day": {"from": "22:00", "to": "06:00", "utc_offset_minutes": 60}}])"),
                           &clock);
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "strong");  // 21:59:59 local
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "cheap");   // 22:00 local
  clock.Advance(absl::Hours(7) + absl::Minutes(59));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "cheap");   // 05:59 local, past midnight
  clock.Advance(absl::Minutes(1));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o"}).deployment, "strong");  // 06:00 local
}

TEST(RouterRulesTest, ConditionsOfOneRuleMustAllHold) {
  auto router = MakeRouter(Config(R"([{"name": "free-short", "to": "mini",
      "key_tiers": ["free"], "prompt_tokens": {"max": 1000}}])"));
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt_tokens = 500, .key_tier = "free"}).deployment, "cheap");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt_tokens = 1000, .key_tier = "free"}).deployment, "strong");
  EXPECT_EQ(Route(*router, {.model = "gpt-4o", .prompt_tokens = 500, .key_tier = "pro"}).deployment, "strong");
}

TEST(RouterRulesTest, StrictConfigurationWithFieldPaths) {
  struct Case {
    std::string rules;
    std::string error;
  };
  const Case cases[] = {
      {R"([{"to": "mini", "colour": "red", "key_tiers": ["a"]}])",
       "pools[0].rules[0].colour: unknown field"},
      {R"([{"to": "nowhere", "key_tiers": ["a"]}])", "pools[0].rules[0].to: no pool serves \"nowhere\""},
      {R"([{"to": "gpt-4o", "key_tiers": ["a"]}])", "pools[0].rules[0].to: \"gpt-4o\" is this pool itself"},
      {R"([{"to": "mini"}])", "pools[0].rules[0]: needs a condition"},
      {R"([{"to": "mini", "complexity": {"max": 1.5}}])", "pools[0].rules[0].complexity.max: must be in [0, 1]"},
      {R"([{"to": "mini", "prompt_tokens": {"min": 10, "max": 10}}])",
       "pools[0].rules[0].prompt_tokens.max: must be > min"},
      {R"([{"to": "mini", "prompt_tokens": {}}])", "pools[0].rules[0].prompt_tokens: needs"},
      {R"([{"to": "mini", "key_tiers": [""]}])", "pools[0].rules[0].key_tiers[0]: must be a non-empty string"},
      {R"([{"to": "mini", "time_of_day": {"from": "7:00", "to": "09:00"}}])",
       "pools[0].rules[0].time_of_day.from: \"7:00\" is not HH:MM"},
      {R"([{"to": "mini", "time_of_day": {"from": "25:00", "to": "09:00"}}])",
       "pools[0].rules[0].time_of_day.from: \"25:00\" is not a time of day"},
      {R"([{"to": "mini", "time_of_day": {"from": "09:00", "to": "09:00"}}])",
       "pools[0].rules[0].time_of_day.to: must differ"},
      {R"([{"to": "mini", "time_of_day": {"from": "09:00", "to": "10:00", "utc_offset_minutes": 900}}])",
       "pools[0].rules[0].time_of_day.utc_offset_minutes"},
      {R"({"to": "mini"})", "pools[0].rules: must be an array"},
  };
  for (const Case& c : cases) {
    auto config = ParseRouterConfig(Config(c.rules));
    ASSERT_FALSE(config.ok()) << c.rules;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.rules;
    EXPECT_NE(config.status().message().find(c.error), std::string::npos)
        << c.rules << "\n  got: " << config.status().message();
  }
}

}  // namespace
}  // namespace modeenvoy
