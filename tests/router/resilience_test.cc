// Outlier detection, 429 cool-downs, retries, fallbacks, capacity overflow. Time is a
// FakeClock; every draw is seeded, so each run is the same.
#include <memory>
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

// Runs one attempt on the request and reports `failure`; returns the deployment id.
std::string OneAttempt(const Router& router, UpstreamFailure failure, uint64_t draw = 0,
                       std::optional<absl::Duration> retry_after = std::nullopt) {
  auto plan = router.Plan({.model = "m", .draw = draw});
  if (!plan.ok()) return "error";
  auto attempt = (*plan)->Next();
  (*plan)->Report(*attempt, {.failure = failure, .retry_after = retry_after});
  return attempt->deployment->id;
}

std::string Pool(const std::string& extra, int deployments) {
  std::string deps;
  for (int i = 0; i < deployments; ++i) {
    absl::StrAppend(&deps, i ? "," : "", R"({"id": "d)", i, R"(", "provider": "p", "model": "m"})");
  }
  return absl::StrCat(R"({"pools": [{"name": "m", "lb": {"policy": "round_robin"}, )", extra,
                      R"("retry": {"max_attempts": 1}, "deployments": [)", deps, "]}]}");
}

TEST(OutlierDetectionTest, ConsecutiveServerErrorsEject) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 3, "ejection_jitter_ms": 0,
      "base_ejection_ms": 30000},)", 1), &clock);
  OneAttempt(*router, UpstreamFailure::kServerError);
  OneAttempt(*router, UpstreamFailure::kTimeout);
  EXPECT_FALSE(router->Health()[0].ejected);
  OneAttempt(*router, UpstreamFailure::kReset);
  auto h = router->Health()[0];
  EXPECT_TRUE(h.ejected);
  EXPECT_EQ(h.ejected_until, clock.MonotonicNow() + absl::Seconds(30));
  clock.Advance(absl::Seconds(30));
  EXPECT_FALSE(router->Health()[0].ejected);
}

TEST(OutlierDetectionTest, ASuccessResetsTheConsecutiveCount) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 2},)", 1), &clock);
  OneAttempt(*router, UpstreamFailure::kServerError);
  OneAttempt(*router, UpstreamFailure::kNone);
  OneAttempt(*router, UpstreamFailure::kServerError);
  EXPECT_FALSE(router->Health()[0].ejected);
  EXPECT_EQ(router->Health()[0].consecutive_failures, 1);
}

TEST(OutlierDetectionTest, ClientErrorsContextLengthAndContentFilterNeverCount) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 1, "failure_percentage": 1,
      "min_requests": 1},)", 1), &clock);
  for (int i = 0; i < 20; ++i) {
    OneAttempt(*router, UpstreamFailure::kClientError);
    OneAttempt(*router, UpstreamFailure::kContextLength);
    OneAttempt(*router, UpstreamFailure::kContentFilter);
    OneAttempt(*router, UpstreamFailure::kCancelled);
  }
  EXPECT_FALSE(router->Health()[0].ejected);
  EXPECT_EQ(router->Health()[0].consecutive_failures, 0);
}

TEST(OutlierDetectionTest, FailurePercentageNeedsTheMinimumRequestCount) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 0, "failure_percentage": 50,
      "min_requests": 10, "window_ms": 10000},)", 1), &clock);
  // 4 failures in 8 requests: 50% but under the minimum.
  for (int i = 0; i < 4; ++i) {
    OneAttempt(*router, UpstreamFailure::kNone);
    OneAttempt(*router, UpstreamFailure::kServerError);
  }
  EXPECT_FALSE(router->Health()[0].ejected);
  OneAttempt(*router, UpstreamFailure::kNone);         // 9 requests, 4 failed
  OneAttempt(*router, UpstreamFailure::kServerError);  // 10 requests, 5 failed: 50%
  EXPECT_TRUE(router->Health()[0].ejected);
}

TEST(OutlierDetectionTest, TheWindowForgetsOldRequests) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 0, "failure_percentage": 50,
      "min_requests": 4, "window_ms": 10000},)", 1), &clock);
  OneAttempt(*router, UpstreamFailure::kServerError);
  OneAttempt(*router, UpstreamFailure::kServerError);
  OneAttempt(*router, UpstreamFailure::kServerError);
  clock.Advance(absl::Seconds(11));  // a new window: the three failures are gone
  OneAttempt(*router, UpstreamFailure::kServerError);
  EXPECT_FALSE(router->Health()[0].ejected);
}

TEST(OutlierDetectionTest, EjectionTimeDoublesJitteredAndCapped) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 1, "base_ejection_ms": 1000,
      "max_ejection_ms": 5000, "ejection_jitter_ms": 100},)", 1), &clock);
  // Expected base per ejection: 1 s, 2 s, 4 s, then the 5 s cap; jitter adds [0, 100 ms).
  const absl::Duration bases[] = {absl::Seconds(1), absl::Seconds(2), absl::Seconds(4),
                                  absl::Seconds(5), absl::Seconds(5)};
  for (absl::Duration base : bases) {
    OneAttempt(*router, UpstreamFailure::kServerError);
    auto h = router->Health()[0];
    ASSERT_TRUE(h.ejected);
    absl::Duration d = h.ejected_until - clock.MonotonicNow();
    EXPECT_GE(d, base);
    EXPECT_LE(d, std::min(base + absl::Milliseconds(100), absl::Seconds(5)));
    clock.Advance(d);  // served its time; the next failure ejects again at once
  }
}

TEST(OutlierDetectionTest, MaxEjectedShareAndPanicMode) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 1, "max_ejected_percent": 50},)", 4),
                           &clock);
  // Round robin: d0, d1, d2 fail; only two of four (50%) may be ejected.
  for (uint64_t i = 0; i < 3; ++i) OneAttempt(*router, UpstreamFailure::kServerError);
  int ejected = 0;
  for (const auto& h : router->Health()) ejected += h.ejected;
  EXPECT_EQ(ejected, 2);

  auto all = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 1, "max_ejected_percent": 100},)", 2),
                        &clock);
  OneAttempt(*all, UpstreamFailure::kServerError);
  OneAttempt(*all, UpstreamFailure::kServerError);
  EXPECT_TRUE(all->Health()[0].ejected);
  EXPECT_TRUE(all->Health()[1].ejected);
  // Everything ejected: panic mode uses all of them rather than failing.
  auto plan = all->Plan({.model = "m"});
  ASSERT_TRUE(plan.ok()) << plan.status();
  auto attempt = (*plan)->Next();
  ASSERT_TRUE(attempt.has_value());
  EXPECT_TRUE(attempt->panic);
}

TEST(OutlierDetectionTest, RateLimitCoolsDownForRetryAfterNotTheOutlierSchedule) {
  FakeClock clock;
  auto router = MakeRouter(Pool(R"("outlier": {"consecutive_failures": 1},)", 2), &clock);
  std::string limited = OneAttempt(*router, UpstreamFailure::kRateLimited, 0, absl::Seconds(7));
  auto h = *FindHealth(router->Health(), limited);
  EXPECT_FALSE(h.ejected);
  EXPECT_EQ(h.ejections, 0);
  EXPECT_EQ(h.cooldown_until, clock.MonotonicNow() + absl::Seconds(7));
  for (int i = 0; i < 6; ++i) EXPECT_NE(FirstPick(*router, {.model = "m"}), limited);
  clock.Advance(absl::Seconds(7));
  bool back = false;
  for (int i = 0; i < 4; ++i) back |= FirstPick(*router, {.model = "m"}) == limited;
  EXPECT_TRUE(back);
}

constexpr char kRetryPools[] = R"({
  "retry_budget": {"percent": 20, "min_concurrency": 100},
  "pools": [
    {"name": "m", "lb": {"policy": "round_robin"},
     "retry": {"max_attempts": 4, "backoff_base_ms": 100, "backoff_max_ms": 400},
     "fallbacks": ["backup"], "context_length_fallback": "long", "content_filter_fallback": "lenient",
     "deployments": [{"id": "a", "provider": "p", "model": "m", "context_window": 8000},
                     {"id": "b", "provider": "p", "model": "m", "context_window": 8000}]},
    {"name": "backup", "deployments": [{"id": "z", "provider": "q", "model": "z", "context_window": 8000}]},
    {"name": "long", "deployments": [{"id": "big", "provider": "q", "model": "l", "context_window": 1000000}]},
    {"name": "lenient", "deployments": [{"id": "ok", "provider": "r", "model": "o"}]}
  ]})";

// Drives a plan through `failures` and returns the deployments it tried.
std::vector<std::string> Drive(RoutePlan& plan, std::vector<UpstreamFailure> failures,
                               std::vector<absl::Duration>* delays = nullptr) {
  std::vector<std::string> tried;
  size_t i = 0;
  while (auto attempt = plan.Next()) {
    tried.push_back(attempt->deployment->id);
    if (delays) delays->push_back(attempt->delay);
    plan.Report(*attempt, {.failure = i < failures.size() ? failures[i] : UpstreamFailure::kNone});
    ++i;
  }
  return tried;
}

TEST(RetryTest, ServerErrorsMoveAcrossThePoolThenToFallbacks) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  ASSERT_TRUE(plan.ok());
  std::vector<absl::Duration> delays;
  auto tried = Drive(**plan, {UpstreamFailure::kServerError, UpstreamFailure::kTimeout},
                     &delays);
  EXPECT_EQ(tried, (std::vector<std::string>{"a", "b", "z"}));
  EXPECT_TRUE((*plan)->final_status().ok());
  // Full jitter: the first retry waits in [0, 100 ms], the second in [0, 200 ms].
  EXPECT_EQ(delays[0], absl::ZeroDuration());
  EXPECT_LE(delays[1], absl::Milliseconds(100));
  EXPECT_LE(delays[2], absl::Milliseconds(200));
}

TEST(RetryTest, BackoffIsFullJitterUnderTheCap) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  // Over many requests the first retry's delay spreads over [0, 100 ms]: both halves occur.
  int low = 0, high = 0;
  for (uint64_t i = 0; i < 200; ++i) {
    auto plan = router->Plan({.model = "m", .draw = i * 2654435761u});
    std::vector<absl::Duration> delays;
    Drive(**plan, {UpstreamFailure::kServerError}, &delays);
    ASSERT_EQ(delays.size(), 2u);
    ASSERT_LE(delays[1], absl::Milliseconds(100));
    (delays[1] < absl::Milliseconds(50) ? low : high)++;
  }
  EXPECT_GT(low, 50);
  EXPECT_GT(high, 50);
}

TEST(RetryTest, RetryAfterIsWaitedForWhenOnlyTheCoolingDeploymentIsLeft) {
  FakeClock clock;
  auto router = MakeRouter(R"({"pools": [{"name": "m", "retry": {"max_attempts": 2, "backoff_base_ms": 10,
      "backoff_max_ms": 10}, "deployments": [{"id": "a", "provider": "p", "model": "m"}]},
      {"name": "n", "fallbacks": ["m"], "deployments": [{"id": "b", "provider": "p", "model": "m"}]}]})",
                           &clock);
  // "a" is cooling for 3 s after a 429; a request to "n" fails on "b" and falls back to "a":
  // panic for pool m (its only deployment is cooling), so the attempt waits out Retry-After.
  OneAttempt(*router, UpstreamFailure::kRateLimited, 0, absl::Seconds(3));
  auto plan = router->Plan({.model = "n"});
  ASSERT_TRUE(plan.ok());
  std::vector<absl::Duration> delays;
  auto tried = Drive(**plan, {UpstreamFailure::kServerError}, &delays);
  ASSERT_EQ(tried, (std::vector<std::string>{"b", "a"}));
  EXPECT_EQ(delays[1], absl::Seconds(3));
}

TEST(RetryTest, ContextLengthFallsBackToALargerWindow) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto tried = Drive(**plan, {UpstreamFailure::kContextLength});
  // "b" and "z" have the same 8000-token window as "a", so only "big" can help.
  EXPECT_EQ(tried, (std::vector<std::string>{"a", "big"}));
}

TEST(RetryTest, ContentFilterFallsBackToTheConfiguredPool) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto tried = Drive(**plan, {UpstreamFailure::kContentFilter});
  EXPECT_EQ(tried, (std::vector<std::string>{"a", "ok"}));
}

TEST(RetryTest, ClientErrorsAreNotRetried) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto tried = Drive(**plan, {UpstreamFailure::kClientError});
  EXPECT_EQ(tried.size(), 1u);
  EXPECT_EQ((*plan)->final_status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RetryTest, MaxAttemptsBoundsThePlan) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto tried = Drive(**plan, std::vector<UpstreamFailure>(10, UpstreamFailure::kServerError));
  EXPECT_EQ(tried.size(), 3u);  // a, b, z: no deployment left before max_attempts 4
  EXPECT_EQ((*plan)->final_status().code(), absl::StatusCode::kUnavailable);
}

TEST(RetryTest, DeadlineStopsRetries) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m", .deadline = clock.MonotonicNow() + absl::Seconds(2)});
  auto first = (*plan)->Next();
  EXPECT_EQ(first->timeout, absl::Seconds(2));
  clock.Advance(absl::Seconds(2));
  (*plan)->Report(*first, {.failure = UpstreamFailure::kTimeout});
  EXPECT_FALSE((*plan)->Next().has_value());
  EXPECT_EQ((*plan)->final_status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(RetryTest, APassedDeadlineFailsThePlan) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m", .deadline = clock.MonotonicNow()});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kDeadlineExceeded);
  for (const auto& h : router->Health()) EXPECT_EQ(h.in_flight, 0) << h.id;
}

TEST(RetryTest, RetryBudgetBoundsConcurrentRetries) {
  FakeClock clock;
  // Budget: max(1, 20% of active requests). With 10 requests active, 2 retries may run.
  auto router = MakeRouter(R"({"retry_budget": {"percent": 20, "min_concurrency": 1},
      "pools": [{"name": "m", "lb": {"policy": "round_robin"},
      "deployments": [{"id": "a", "provider": "p", "model": "m"}, {"id": "b", "provider": "p", "model": "m"}]}]})",
                           &clock);
  std::vector<std::unique_ptr<RoutePlan>> plans;
  for (int i = 0; i < 10; ++i) plans.push_back(*router->Plan({.model = "m"}));
  int retries = 0, refused = 0;
  for (auto& plan : plans) {
    auto first = plan->Next();
    plan->Report(*first, {.failure = UpstreamFailure::kServerError});
    if (plan->Next().has_value()) {
      ++retries;  // kept in flight: the retry holds budget
    } else {
      ++refused;
      EXPECT_EQ(plan->final_status().code(), absl::StatusCode::kUnavailable);
    }
  }
  EXPECT_EQ(retries, 2);
  EXPECT_EQ(refused, 8);
}

TEST(RetryTest, NextBeforeReportEndsThePlanAndGivesTheSlotBack) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto first = (*plan)->Next();
  ASSERT_TRUE(first.has_value());
  EXPECT_FALSE((*plan)->Next().has_value());
  EXPECT_EQ((*plan)->final_status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FindHealth(router->Health(), first->deployment->id)->in_flight, 0);
}

TEST(RetryTest, AReportForAnotherAttemptIsIgnored) {
  FakeClock clock;
  auto router = MakeRouter(kRetryPools, &clock);
  auto plan = router->Plan({.model = "m"});
  auto first = (*plan)->Next();
  PlannedAttempt stale = *first;
  stale.index = 5;
  (*plan)->Report(stale, {.failure = UpstreamFailure::kServerError});
  EXPECT_EQ(FindHealth(router->Health(), first->deployment->id)->in_flight, 1);
  EXPECT_EQ(FindHealth(router->Health(), first->deployment->id)->consecutive_failures, 0);
  (*plan)->Report(*first, {});
  EXPECT_TRUE((*plan)->final_status().ok());
}

TEST(RetryTest, FailureNamesRoundTrip) {
  for (const char* name : {"none", "429", "5xx", "timeout", "connect", "reset", "context_length",
                           "content_filter", "4xx", "cancelled"}) {
    auto f = UpstreamFailureFromName(name);
    ASSERT_TRUE(f.has_value()) << name;
    EXPECT_EQ(UpstreamFailureName(*f), name);
  }
  EXPECT_FALSE(UpstreamFailureFromName("503").has_value());
}

TEST(CapacityTest, OverflowsToTheNextTierAtMaxInFlight) {
  FakeClock clock;
  auto router = MakeRouter(R"({"pools": [{"name": "m", "deployments": [
      {"id": "local", "provider": "vllm", "model": "m", "max_in_flight": 4},
      {"id": "cloud", "provider": "p", "model": "m", "tier": 1, "max_in_flight": 2}]}]})", &clock);
  std::vector<std::unique_ptr<RoutePlan>> held;
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    auto plan = router->Plan({.model = "m"});
    ASSERT_TRUE(plan.ok()) << i << plan.status();
    ids.push_back((*plan)->Next()->deployment->id);
    held.push_back(*std::move(plan));
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"local", "local", "local", "local", "cloud", "cloud"}));
  auto full = router->Plan({.model = "m"});
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  held.erase(held.begin());  // a local slot frees (the plan ends without a report)
  EXPECT_EQ(FirstPick(*router, {.model = "m"}), "local");
}

TEST(CapacityTest, RequestsPerMinuteLimit) {
  FakeClock clock(absl::FromUnixSeconds(1700000040));  // a whole minute: ...040 = 28333334 min
  auto router = MakeRouter(R"({"pools": [{"name": "m", "deployments": [
      {"id": "a", "provider": "p", "model": "m", "rpm": 3},
      {"id": "b", "provider": "p", "model": "m", "tier": 1}]}]})", &clock);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(OneAttempt(*router, UpstreamFailure::kNone));
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "a", "a", "b"}));
  clock.Advance(absl::Minutes(2));  // both buckets are old
  EXPECT_EQ(OneAttempt(*router, UpstreamFailure::kNone), "a");
}

TEST(CapacityTest, DeploymentsTooSmallForThePromptAreSkipped) {
  FakeClock clock;
  auto router = MakeRouter(R"({"pools": [{"name": "m", "deployments": [
      {"id": "small", "provider": "p", "model": "m", "context_window": 8192},
      {"id": "large", "provider": "p", "model": "m", "context_window": 131072, "tier": 1}]}]})",
                           &clock);
  EXPECT_EQ(FirstPick(*router, {.model = "m", .prompt_tokens = 8000, .max_tokens = 100}), "small");
  EXPECT_EQ(FirstPick(*router, {.model = "m", .prompt_tokens = 8000, .max_tokens = 500}), "large");
  auto none = router->Plan({.model = "m", .prompt_tokens = 200000});
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
