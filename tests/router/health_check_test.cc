// Active health checks: the probe schedule the host drives (DueProbes / ReportProbe /
// NextProbeDue) on an injected clock, thresholds, jitter, the combination with Plan()'s
// health (panic mode included), state across Update(), strict configuration.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::FindHealth;
using router_test::FirstPick;
using router_test::MakeRouter;

std::string Config(const std::string& check_a, const std::string& check_b = "") {
  return absl::StrCat(R"({"pools": [{"name": "m", "lb": {"policy": "round_robin"},
    "deployments": [
      {"id": "a", "provider": "pa", "model": "x")", check_a.empty() ? "" : ", \"health_check\": ",
                      check_a, R"(},
      {"id": "b", "provider": "pb", "model": "x")", check_b.empty() ? "" : ", \"health_check\": ",
                      check_b, R"(}]}]})");
}

constexpr char kCheck[] = R"({"path": "/health", "interval_ms": 1000, "timeout_ms": 200,
    "jitter_ms": 0, "healthy_threshold": 2, "unhealthy_threshold": 2})";

std::vector<std::string> Ids(const std::vector<HealthProbe>& probes) {
  std::vector<std::string> out;
  for (const auto& p : probes) out.push_back(p.deployment_id);
  return out;
}

bool ProbeUnhealthy(const Router& router, const std::string& id) {
  auto all = router.Health();
  const DeploymentHealth* h = FindHealth(all, id);
  return h != nullptr && h->probe_unhealthy;
}

TEST(RouterHealthCheckTest, ScheduleThresholdsAndPlanSkippingAnUnhealthyDeployment) {
  FakeClock clock;
  auto router = MakeRouter(Config(kCheck), &clock);
  EXPECT_EQ(router->NextProbeDue(), absl::InfinitePast());  // never probed: due now
  std::vector<HealthProbe> due = router->DueProbes(clock.MonotonicNow());
  ASSERT_EQ(Ids(due), std::vector<std::string>{"a"});      // b has no health_check
  EXPECT_EQ(due[0].provider, "pa");
  EXPECT_EQ(due[0].check.path, "/health");
  EXPECT_EQ(due[0].check.timeout, absl::Milliseconds(200));
  // In flight: neither due again nor on the timer until reported.
  EXPECT_TRUE(router->DueProbes(clock.MonotonicNow()).empty());
  EXPECT_EQ(router->NextProbeDue(), absl::InfiniteFuture());

  ASSERT_TRUE(router->ReportProbe("a", false).ok());
  EXPECT_FALSE(ProbeUnhealthy(*router, "a"));  // 1 of 2 failures
  EXPECT_EQ(router->NextProbeDue(), clock.MonotonicNow() + absl::Seconds(1));
  EXPECT_TRUE(router->DueProbes(clock.MonotonicNow() + absl::Milliseconds(999)).empty());
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(Ids(router->DueProbes(clock.MonotonicNow())), std::vector<std::string>{"a"});
  ASSERT_TRUE(router->ReportProbe("a", false).ok());
  EXPECT_TRUE(ProbeUnhealthy(*router, "a"));

  // Plan() skips it like an ejected deployment: round robin lands on b every time.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(FirstPick(*router, {.model = "m"}), "b");

  // One success is not enough (healthy_threshold 2); a failure in between restarts the count.
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(router->DueProbes(clock.MonotonicNow()).size(), 1u);
  ASSERT_TRUE(router->ReportProbe("a", true).ok());
  EXPECT_TRUE(ProbeUnhealthy(*router, "a"));
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(router->DueProbes(clock.MonotonicNow()).size(), 1u);
  ASSERT_TRUE(router->ReportProbe("a", true).ok());
  EXPECT_FALSE(ProbeUnhealthy(*router, "a"));
  std::vector<std::string> picks;
  for (int i = 0; i < 2; ++i) picks.push_back(FirstPick(*router, {.model = "m"}));
  EXPECT_NE(std::find(picks.begin(), picks.end(), "a"), picks.end());
}

TEST(RouterHealthCheckTest, AllUnhealthyIsPanicModeAndStateSurvivesAnUpdate) {
  FakeClock clock;
  std::string json = Config(kCheck, kCheck);
  auto router = MakeRouter(json, &clock);
  for (int round = 0; round < 2; ++round) {
    ASSERT_EQ(router->DueProbes(clock.MonotonicNow()).size(), 2u);
    ASSERT_TRUE(router->ReportProbe("a", false).ok());
    ASSERT_TRUE(router->ReportProbe("b", false).ok());
    clock.Advance(absl::Seconds(1));
  }
  ASSERT_TRUE(ProbeUnhealthy(*router, "a"));
  ASSERT_TRUE(ProbeUnhealthy(*router, "b"));
  auto plan = router->Plan({.model = "m"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto attempt = (*plan)->Next();
  ASSERT_TRUE(attempt.has_value());
  EXPECT_TRUE(attempt->panic);

  ASSERT_TRUE(router->Update(*ParseRouterConfig(json)).ok());
  EXPECT_TRUE(ProbeUnhealthy(*router, "a"));
  EXPECT_TRUE(ProbeUnhealthy(*router, "b"));
}

TEST(RouterHealthCheckTest, JitterIsBoundedAndSeeded) {
  constexpr char kJittered[] = R"({"interval_ms": 1000, "timeout_ms": 100, "jitter_ms": 500})";
  std::vector<absl::Duration> first, second;
  for (auto* out : {&first, &second}) {
    FakeClock clock;
    auto router = MakeRouter(Config(kJittered), &clock);  // seed 42 in both
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(router->DueProbes(clock.MonotonicNow()).size(), 1u);
      ASSERT_TRUE(router->ReportProbe("a", true).ok());
      absl::Duration wait = router->NextProbeDue() - clock.MonotonicNow();
      EXPECT_GE(wait, absl::Milliseconds(1000));
      EXPECT_LT(wait, absl::Milliseconds(1500));
      out->push_back(wait);
      clock.Advance(wait);
    }
  }
  EXPECT_EQ(first, second);
  // Jittered: not every wait is the same.
  EXPECT_NE(*std::min_element(first.begin(), first.end()),
            *std::max_element(first.begin(), first.end()));
}

TEST(RouterHealthCheckTest, AnAbandonedProbeCountsNothingAndIsDueAnIntervalLater) {
  FakeClock clock;
  auto router = MakeRouter(Config(kCheck), &clock);
  ASSERT_EQ(Ids(router->DueProbes(clock.MonotonicNow())), std::vector<std::string>{"a"});
  ASSERT_TRUE(router->ReportProbe("a", false).ok());
  clock.Advance(absl::Seconds(1));
  ASSERT_EQ(Ids(router->DueProbes(clock.MonotonicNow())), std::vector<std::string>{"a"});
  ASSERT_TRUE(router->AbandonProbe("a").ok());
  auto all = router->Health();
  const DeploymentHealth* a = FindHealth(all, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->probe_failures, 1);  // the abandoned probe did not count (threshold 2)
  EXPECT_EQ(a->probe_successes, 0);
  EXPECT_FALSE(a->probe_in_flight);
  EXPECT_FALSE(a->probe_unhealthy);
  EXPECT_EQ(router->NextProbeDue(), clock.MonotonicNow() + absl::Seconds(1));
  EXPECT_EQ(router->AbandonProbe("a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(router->AbandonProbe("zz").code(), absl::StatusCode::kNotFound);
}

TEST(RouterHealthCheckTest, ReportProbeErrors) {
  FakeClock clock;
  auto router = MakeRouter(Config(kCheck), &clock);
  EXPECT_EQ(router->ReportProbe("nope", true).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(router->ReportProbe("a", true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(router->ReportProbe("b", true).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RouterHealthCheckTest, StrictConfigurationWithFieldPaths) {
  struct Case {
    std::string check;
    std::string error;
  };
  const Case cases[] = {
      {R"({"colour": 1})", "pools[0].deployments[0].health_check.colour: unknown field"},
      {R"({"path": "health"})", "pools[0].deployments[0].health_check.path: must start with '/'"},
      {R"({"interval_ms": 1000, "timeout_ms": 2000})",
       "pools[0].deployments[0].health_check.timeout_ms: must be <= interval_ms"},
      {R"({"unhealthy_threshold": 0})", "pools[0].deployments[0].health_check.unhealthy_threshold"},
      {R"({"interval_ms": 5})", "pools[0].deployments[0].health_check.interval_ms"},
      {R"([])", "pools[0].deployments[0].health_check"},
  };
  for (const Case& c : cases) {
    auto config = ParseRouterConfig(Config(c.check));
    ASSERT_FALSE(config.ok()) << c.check;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.check;
    EXPECT_NE(config.status().message().find(c.error), std::string::npos)
        << c.check << "\n  got: " << config.status().message();
  }
  // Defaults.
  auto config = ParseRouterConfig(Config("{}"));
  ASSERT_TRUE(config.ok()) << config.status();
  const RouterHealthCheck& check = *(*config)->deployments()[0].health_check;
  EXPECT_EQ(check.path, "/v1/models");
  EXPECT_EQ(check.interval, absl::Seconds(10));
  EXPECT_EQ(check.timeout, absl::Seconds(2));
  EXPECT_EQ(check.jitter, absl::Seconds(1));
  EXPECT_EQ(check.healthy_threshold, 2);
  EXPECT_EQ(check.unhealthy_threshold, 3);
  EXPECT_FALSE((*config)->deployments()[1].health_check.has_value());
}

}  // namespace
}  // namespace modeenvoy
