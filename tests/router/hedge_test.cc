// Hedged requests: the per-pool latency sketch behind hedge_after, RoutePlan::Hedge(), the
// first success winning, the loser reported as cancelled without touching health.
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::FindHealth;
using router_test::MakeRouter;

std::string Config(const std::string& hedge, int deployments = 2) {
  std::string deps;
  for (int i = 0; i < deployments; ++i) {
    absl::StrAppend(&deps, i ? "," : "", R"({"id": "d)", i, R"(", "provider": "p", "model": "x"})");
  }
  return absl::StrCat(R"({"pools": [{"name": "m", "lb": {"policy": "round_robin"},
      "outlier": {"consecutive_failures": 1, "max_ejected_percent": 100}, "hedge": )",
                      hedge, R"(, "deployments": [)", deps, "]}]}");
}

// Serves one request whose single attempt succeeds after `latency`; returns its hedge_after.
absl::Duration Serve(Router& router, absl::Duration latency) {
  auto plan = router.Plan({.model = "m"});
  EXPECT_TRUE(plan.ok()) << plan.status();
  auto attempt = (*plan)->Next();
  AttemptResult ok;
  ok.latency = latency;
  (*plan)->Report(*attempt, ok);
  return attempt->hedge_after;
}

// The sketch's buckets are 2^(1/4) wide in milliseconds and a quantile is reported as the
// upper edge of its bucket: the smallest 2^(k/4) ms above the sample.
absl::Duration UpperEdge(double ms) {
  int k = 0;
  while (std::exp2(k / 4.0) <= ms) ++k;
  return absl::Milliseconds(std::exp2(k / 4.0));
}

TEST(RouterHedgeTest, HedgeAfterIsThePoolsObservedP95) {
  auto router = MakeRouter(Config(R"({"min_samples": 20, "min_delay_ms": 1})"));
  // Before min_samples successes: no hedging.
  for (int i = 0; i < 18; ++i) {
    EXPECT_EQ(Serve(*router, absl::Milliseconds(10)), absl::InfiniteDuration()) << i;
  }
  EXPECT_EQ(Serve(*router, absl::Seconds(1)), absl::InfiniteDuration());
  EXPECT_EQ(Serve(*router, absl::Seconds(1)), absl::InfiniteDuration());
  // 18 x 10 ms and 2 x 1000 ms: the 95th percentile (rank 19 of 20) is a 1000 ms sample.
  EXPECT_EQ(Serve(*router, absl::Milliseconds(10)), UpperEdge(1000));
  // 20 more fast ones: 39 x 10 ms and 2 x 1000 ms, rank 38.95 of 41 is in the 10 ms bucket.
  for (int i = 0; i < 20; ++i) Serve(*router, absl::Milliseconds(10));
  EXPECT_EQ(Serve(*router, absl::Milliseconds(10)), UpperEdge(10));
}

TEST(RouterHedgeTest, TheDelayIsClampedToTheConfiguredBounds) {
  auto router = MakeRouter(Config(R"({"min_samples": 1, "min_delay_ms": 50, "max_delay_ms": 400})"));
  Serve(*router, absl::Milliseconds(2));
  EXPECT_EQ(Serve(*router, absl::Milliseconds(2)), absl::Milliseconds(50));
  for (int i = 0; i < 50; ++i) Serve(*router, absl::Seconds(5));
  EXPECT_EQ(Serve(*router, absl::Seconds(5)), absl::Milliseconds(400));
}

TEST(RouterHedgeTest, TheHedgeWinsAndTheCancelledFirstAttemptIsNoFailure) {
  auto router = MakeRouter(Config(R"({"min_samples": 1})"));
  Serve(*router, absl::Milliseconds(100));
  auto plan = router->Plan({.model = "m"});
  ASSERT_TRUE(plan.ok());
  auto first = (*plan)->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->hedge_after, absl::InfiniteDuration());
  auto hedge = (*plan)->Hedge();
  ASSERT_TRUE(hedge.has_value());
  EXPECT_TRUE(hedge->hedge);
  EXPECT_NE(hedge->deployment->id, first->deployment->id);
  EXPECT_FALSE((*plan)->Hedge().has_value());  // one hedge per request
  for (const auto& h : router->Health()) EXPECT_EQ(h.in_flight, 1) << h.id;

  AttemptResult ok;
  ok.latency = absl::Milliseconds(150);
  (*plan)->Report(*hedge, ok);
  EXPECT_TRUE((*plan)->final_status().ok());
  EXPECT_FALSE((*plan)->Next().has_value());
  AttemptResult cancelled;
  cancelled.failure = UpstreamFailure::kCancelled;
  (*plan)->Report(*first, cancelled);
  EXPECT_TRUE((*plan)->final_status().ok());
  auto health = router->Health();
  const DeploymentHealth* loser = FindHealth(health, first->deployment->id);
  ASSERT_NE(loser, nullptr);
  EXPECT_EQ(loser->consecutive_failures, 0);  // consecutive_failures 1 would have ejected it
  EXPECT_FALSE(loser->ejected);
  for (const auto& h : health) EXPECT_EQ(h.in_flight, 0) << h.id;
}

TEST(RouterHedgeTest, WhenTheFirstAttemptFailsTheHedgeCarriesTheRequest) {
  auto router = MakeRouter(Config(R"({"min_samples": 1})", 3));
  Serve(*router, absl::Milliseconds(100));
  auto plan = router->Plan({.model = "m"});
  auto first = (*plan)->Next();
  auto hedge = (*plan)->Hedge();
  ASSERT_TRUE(first && hedge);
  AttemptResult failed;
  failed.failure = UpstreamFailure::kServerError;
  (*plan)->Report(*first, failed);
  // The first attempt counted as a failure (and, with consecutive_failures 1, is ejected).
  auto health = router->Health();
  EXPECT_TRUE(FindHealth(health, first->deployment->id)->ejected);
  AttemptResult ok;
  (*plan)->Report(*hedge, ok);
  EXPECT_TRUE((*plan)->final_status().ok());
  EXPECT_FALSE((*plan)->Next().has_value());
}

TEST(RouterHedgeTest, NoHedgeForStreamingRequestsOrWithoutAnotherDeployment) {
  auto router = MakeRouter(Config(R"({"min_samples": 1})"));
  Serve(*router, absl::Milliseconds(100));
  auto streamed = router->Plan({.model = "m", .streaming = true});
  auto attempt = (*streamed)->Next();
  EXPECT_EQ(attempt->hedge_after, absl::InfiniteDuration());
  EXPECT_FALSE((*streamed)->Hedge().has_value());

  auto single = MakeRouter(Config(R"({"min_samples": 1})", 1));
  Serve(*single, absl::Milliseconds(100));
  auto plan = single->Plan({.model = "m"});
  auto only = (*plan)->Next();
  EXPECT_NE(only->hedge_after, absl::InfiniteDuration());
  EXPECT_FALSE((*plan)->Hedge().has_value());
}

TEST(RouterHedgeTest, AConfiguredDelayHedgesFromTheFirstRequest) {
  auto router = MakeRouter(Config(R"({"delay_ms": 75})"));
  // No sample yet (min_samples 20 by default): the configured delay applies at once.
  EXPECT_EQ(Serve(*router, absl::Seconds(2)), absl::Milliseconds(75));
  auto plan = router->Plan({.model = "m"});
  auto first = (*plan)->Next();
  EXPECT_EQ(first->hedge_after, absl::Milliseconds(75));
  EXPECT_TRUE((*plan)->Hedge().has_value());
}

// Hedges and retries share the retry budget: with min_concurrency 1 and no percentage, one
// hedge in flight leaves no share for a second request's hedge (nor a retry) until it ends.
TEST(RouterHedgeTest, AHedgeInFlightTakesAShareOfTheRetryBudget) {
  std::string config = Config(R"({"delay_ms": 10})", 4);
  config.insert(1, R"("retry_budget": {"percent": 0, "min_concurrency": 1}, )");
  auto router = MakeRouter(config);
  auto p1 = router->Plan({.model = "m"});
  auto p2 = router->Plan({.model = "m"});
  ASSERT_TRUE(p1.ok() && p2.ok());
  auto a1 = (*p1)->Next();
  auto a2 = (*p2)->Next();
  auto h1 = (*p1)->Hedge();
  ASSERT_TRUE(h1.has_value());
  EXPECT_FALSE((*p2)->Hedge().has_value());  // the budget's one share is taken by h1
  AttemptResult ok;
  (*p1)->Report(*h1, ok);  // the hedge ends: its share comes back
  AttemptResult cancelled;
  cancelled.failure = UpstreamFailure::kCancelled;
  (*p1)->Report(*a1, cancelled);
  auto p3 = router->Plan({.model = "m"});
  auto a3 = (*p3)->Next();
  EXPECT_TRUE((*p3)->Hedge().has_value());
  (void)a2;
  (void)a3;
}

TEST(RouterHedgeTest, StrictConfiguration) {
  struct Case {
    std::string hedge;
    std::string error;
  };
  const Case cases[] = {
      {R"({"quantile": 0.3})", "pools[0].hedge.quantile: must be >= 0.5"},
      {R"({"colour": 1})", "pools[0].hedge.colour: unknown field"},
      {R"({"min_delay_ms": 100, "max_delay_ms": 50})", "pools[0].hedge.max_delay_ms: must be >= min_delay_ms"},
      {R"({"min_samples": 0})", "pools[0].hedge.min_samples"},
      {R"({"delay_ms": 0})", "pools[0].hedge.delay_ms"},
  };
  for (const Case& c : cases) {
    auto config = ParseRouterConfig(Config(c.hedge));
    ASSERT_FALSE(config.ok()) << c.hedge;
    EXPECT_NE(config.status().message().find(c.error), std::string::npos)
        << c.hedge << "\n  got: " << config.status().message();
  }
}

}  // namespace
}  // namespace modeenvoy
