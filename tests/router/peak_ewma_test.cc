// peak_ewma's sample (issue 12): time to first token, and for an attempt without a first
// token (a non-streamed answer) its latency less the deployment's learnt decode time.
// Time is a FakeClock moved by hand; draws are fixed, so every run sees the same picks.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::FindHealth;
using router_test::FirstPick;
using router_test::MakeRouter;

constexpr char kTwoDeployments[] = R"({"pools": [{"name": "m",
    "lb": {"policy": "peak_ewma", "ewma_decay_ms": 1000},
    "deployments": [{"id": "long", "provider": "p", "model": "m"},
                    {"id": "short", "provider": "p", "model": "m"}]}]})";

// How a scripted deployment answers: `start` ms before its first token, then `per_token` ms
// for each further output token.
struct Speed {
  double start_ms;
  double per_token_ms;
};

double LatencyMs(const Speed& speed, int64_t tokens) {
  return speed.start_ms + speed.per_token_ms * static_cast<double>(tokens - 1);
}

// Plans `n` requests 50 ms apart and reports each on whatever deployment was picked, as
// `tokens(id, k)` output tokens (the k-th answer of that deployment) at that deployment's
// speed. Streamed attempts report their first token, non-streamed ones only the latency.
template <typename Tokens>
void Drive(Router& router, FakeClock& clock, int n, const std::map<std::string, Speed>& speeds,
           bool streamed, Tokens tokens) {
  std::map<std::string, int> answered;
  for (int i = 0; i < n; ++i) {
    clock.Advance(absl::Milliseconds(50));
    auto plan = router.Plan({.model = "m", .draw = static_cast<uint64_t>(i) * 2654435761u});
    ASSERT_TRUE(plan.ok()) << plan.status();
    auto attempt = (*plan)->Next();
    ASSERT_TRUE(attempt.has_value());
    const std::string id = attempt->deployment->id;
    const Speed& speed = speeds.at(id);
    int64_t out = tokens(id, answered[id]++);
    AttemptResult result;
    result.latency = absl::Milliseconds(LatencyMs(speed, out));
    if (streamed) result.time_to_first_token = absl::Milliseconds(speed.start_ms);
    result.output_tokens = out;
    (*plan)->Report(*attempt, result);
  }
}

// Picks of 200 fixed draws, at the current time.
std::map<std::string, int> Picks(const Router& router) {
  std::map<std::string, int> counts;
  for (uint64_t i = 0; i < 200; ++i) ++counts[FirstPick(router, {.model = "m", .draw = i * 7})];
  return counts;
}

TEST(PeakEwmaTest, LongNonStreamedAnswersDoNotMakeAFastStartLookSlow) {
  // "long" starts in 200 ms and writes 500-2000 tokens (5-20 s per answer); "short" needs
  // 1 s to start and writes 10-40 tokens (about 1.1-1.4 s). Both decode at 10 ms a token.
  // Nothing is streamed: the router only sees latencies and token counts.
  FakeClock clock;
  auto router = MakeRouter(kTwoDeployments, &clock);
  const std::map<std::string, Speed> speeds = {{"long", {200, 10}}, {"short", {1000, 10}}};
  Drive(*router, clock, 300, speeds, /*streamed=*/false, [](const std::string& id, int k) {
    int64_t step = 1 + k % 4;  // token counts that vary: a slope can be fitted
    return id == "long" ? 500 * step : 10 * step;
  });
  auto health = router->Health();
  const double long_ms = FindHealth(health, "long")->ttft_ewma_ms;
  const double short_ms = FindHealth(health, "short")->ttft_ewma_ms;
  // The fit finds the decode time of the scripted answers, so the samples are the latency
  // less 10 ms for each token after the first: 200 and 1000 (where the EWMA converges once
  // the first samples, whole latencies taken before a slope could be fitted, are forgotten).
  EXPECT_NEAR(FindHealth(health, "long")->decode_ms_per_token, 10, 0.01);
  EXPECT_NEAR(FindHealth(health, "short")->decode_ms_per_token, 10, 0.01);
  EXPECT_NEAR(long_ms, 200, 1);
  EXPECT_NEAR(short_ms, 1000, 1);
  std::map<std::string, int> counts = Picks(*router);
  // Equal loads: the lower EWMA wins unless both draws are the other: "short" about 1/4.
  EXPECT_GT(counts["long"], 120);
  EXPECT_LT(counts["short"], 80);
}

TEST(PeakEwmaTest, ConstantTokenCountsFitNoSlopeAndTheSampleIsTheLatency) {
  // Every answer has 100 tokens: latency = a + b * 100 cannot be split into a and b, so
  // the sample stays the whole latency (no decode estimate, documented fallback).
  FakeClock clock;
  auto router = MakeRouter(kTwoDeployments, &clock);
  const std::map<std::string, Speed> speeds = {{"long", {200, 10}}, {"short", {1000, 1}}};
  Drive(*router, clock, 60, speeds, /*streamed=*/false,
        [](const std::string&, int) { return int64_t{100}; });
  auto health = router->Health();
  EXPECT_EQ(FindHealth(health, "long")->decode_ms_per_token, 0);
  EXPECT_EQ(FindHealth(health, "short")->decode_ms_per_token, 0);
  // 200 + 99 * 10 = 1190 and 1000 + 99 * 1 = 1099: whole latencies, every sample equal.
  EXPECT_NEAR(FindHealth(health, "long")->ttft_ewma_ms, 1190, 1);
  EXPECT_NEAR(FindHealth(health, "short")->ttft_ewma_ms, 1099, 1);
}

TEST(PeakEwmaTest, StreamedDecodeTimeCorrectsLaterNonStreamedSamples) {
  // First streamed traffic (first token and latency known: decode time per token exactly),
  // then non-streamed answers of constant length, where no fit is possible: the streamed
  // estimate alone turns their latency into a first-token equivalent. Between the phases
  // "long" starts faster (400 -> 200 ms) and "short" slower (1000 -> 1500 ms), so the end
  // state shows that the whole answers were sampled, and how.
  FakeClock clock;
  auto router = MakeRouter(kTwoDeployments, &clock);
  Drive(*router, clock, 40, {{"long", {400, 10}}, {"short", {1000, 10}}}, /*streamed=*/true,
        [](const std::string&, int) { return int64_t{50}; });
  auto health = router->Health();
  EXPECT_NEAR(FindHealth(health, "long")->decode_ms_per_token, 10, 1e-6);  // (890 - 400) / 49
  EXPECT_NEAR(FindHealth(health, "long")->ttft_ewma_ms, 400, 1);
  Drive(*router, clock, 200, {{"long", {200, 10}}, {"short", {1500, 10}}}, /*streamed=*/false,
        [](const std::string& id, int) { return id == "long" ? int64_t{2000} : int64_t{20}; });
  health = router->Health();
  EXPECT_NEAR(FindHealth(health, "long")->decode_ms_per_token, 10, 1e-6);
  // 200 + 1999 * 10 - 1999 * 10 = 200 (blended down from 400); 1500 + 19 * 10 - 19 * 10 =
  // 1500 (a slower sample is taken at once).
  EXPECT_NEAR(FindHealth(health, "long")->ttft_ewma_ms, 200, 5);
  EXPECT_NEAR(FindHealth(health, "short")->ttft_ewma_ms, 1500, 1);
  std::map<std::string, int> counts = Picks(*router);
  EXPECT_GT(counts["long"], 120);
}

TEST(PeakEwmaTest, AFailureWithoutAFirstTokenAddsNoSample) {
  FakeClock clock;
  auto router = MakeRouter(kTwoDeployments, &clock);
  auto plan = router->Plan({.model = "m", .draw = 1});
  ASSERT_TRUE(plan.ok());
  auto attempt = (*plan)->Next();
  ASSERT_TRUE(attempt.has_value());
  AttemptResult failed;
  failed.failure = UpstreamFailure::kServerError;
  failed.latency = absl::Seconds(3);
  (*plan)->Report(*attempt, failed);
  auto health = router->Health();
  EXPECT_EQ(FindHealth(health, attempt->deployment->id)->ttft_ewma_ms, 0);
}

}  // namespace
}  // namespace modeenvoy
