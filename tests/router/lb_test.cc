// Load-balancing policies. Weighted policies are checked with Pearson's chi-square test
// against the configured weights: fixed seeds, so the statistic is reproducible; the bound
// is the critical value at p = 0.001 from a chi-square table (df = 3: 16.266).
#include <cmath>
#include <map>
#include <random>
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

constexpr double kChiSquareDf3P001 = 16.266;  // table value, df = 3, p = 0.001

// Four deployments with weights 1..4 and the given "lb" object.
std::string WeightedPool(const std::string& lb) {
  return absl::StrCat(R"({"pools": [{"name": "m", "lb": )", lb, R"(, "deployments": [
      {"id": "w1", "provider": "p", "model": "m", "weight": 1},
      {"id": "w2", "provider": "p", "model": "m", "weight": 2},
      {"id": "w3", "provider": "p", "model": "m", "weight": 3},
      {"id": "w4", "provider": "p", "model": "m", "weight": 4}]}]})");
}

double ChiSquareAgainstWeights(const std::map<std::string, int>& counts, int total) {
  const std::map<std::string, double> share = {
      {"w1", 0.1}, {"w2", 0.2}, {"w3", 0.3}, {"w4", 0.4}};
  double chi = 0;
  for (const auto& [id, p] : share) {
    double expected = p * total;
    double observed = counts.count(id) ? counts.at(id) : 0;
    chi += (observed - expected) * (observed - expected) / expected;
  }
  return chi;
}

// Picks for `n` requests with random draws (and random session ids when `keyed`).
std::map<std::string, int> Picks(const Router& router, int n, bool keyed, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::map<std::string, int> counts;
  for (int i = 0; i < n; ++i) {
    std::string session = absl::StrCat("session-", rng());
    RouteRequest request{.model = "m", .draw = rng()};
    if (keyed) request.session_id = session;
    ++counts[FirstPick(router, request)];
  }
  return counts;
}

struct WeightedCase {
  const char* name;
  const char* lb;
  bool keyed;
};

class WeightedPolicyTest : public testing::TestWithParam<WeightedCase> {};

TEST_P(WeightedPolicyTest, SharesFollowWeightsByChiSquare) {
  auto router = MakeRouter(WeightedPool(GetParam().lb));
  constexpr int kN = 20000;
  auto counts = Picks(*router, kN, GetParam().keyed, 1234);
  double chi = ChiSquareAgainstWeights(counts, kN);
  EXPECT_LT(chi, kChiSquareDf3P001) << GetParam().name << " w1=" << counts["w1"]
                                    << " w2=" << counts["w2"] << " w3=" << counts["w3"]
                                    << " w4=" << counts["w4"];
}

INSTANTIATE_TEST_SUITE_P(
    All, WeightedPolicyTest,
    testing::Values(
        WeightedCase{"SmoothWeightedRoundRobin", R"({"policy": "weighted_round_robin"})", false},
        // At zero load (no attempt outstanding) both candidates tie and the first, drawn by
        // weight, wins: the shares are the weights.
        WeightedCase{"LeastRequest", R"({"policy": "least_request"})", false},
        WeightedCase{"PeakEwma", R"({"policy": "peak_ewma"})", false},
        WeightedCase{"RingHash", R"({"policy": "ring_hash", "vnodes": 6000})", true},
        WeightedCase{"Maglev", R"({"policy": "maglev"})", true},
        WeightedCase{"StickySplit", R"({"policy": "round_robin", "sticky": true})", true},
        WeightedCase{"HashPolicyWithoutKey", R"({"policy": "maglev"})", false}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(LoadBalancingTest, SmoothWeightedRoundRobinInterleaves) {
  // nginx's smooth WRR on weights 5, 1, 1 gives a a b a c a a (worked by hand from its rule).
  auto router = MakeRouter(R"({"pools": [{"name": "m", "lb": {"policy": "weighted_round_robin"},
      "deployments": [{"id": "a", "provider": "p", "model": "m", "weight": 5},
                      {"id": "b", "provider": "p", "model": "m", "weight": 1},
                      {"id": "c", "provider": "p", "model": "m", "weight": 1}]}]})");
  std::string seq;
  for (int i = 0; i < 7; ++i) seq += FirstPick(*router, {.model = "m"});
  EXPECT_EQ(seq, "aabacaa");
}

TEST(LoadBalancingTest, RoundRobinCyclesIgnoringWeights) {
  auto router = MakeRouter(R"({"pools": [{"name": "m", "lb": {"policy": "round_robin"},
      "deployments": [{"id": "a", "provider": "p", "model": "m", "weight": 9},
                      {"id": "b", "provider": "p", "model": "m"},
                      {"id": "c", "provider": "p", "model": "m"}]}]})");
  std::string seq;
  for (int i = 0; i < 6; ++i) seq += FirstPick(*router, {.model = "m"});
  EXPECT_EQ(seq, "abcabc");
}

TEST(LoadBalancingTest, StickySplitKeepsASessionOnOneDeployment) {
  auto router = MakeRouter(WeightedPool(R"({"policy": "round_robin", "sticky": true})"));
  std::string first = FirstPick(*router, {.model = "m", .session_id = "conv-1"});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(FirstPick(*router, {.model = "m", .session_id = "conv-1", .draw = uint64_t(i)}),
              first);
  }
}

// hash_key "tenant": a split sticky per API key alone (the gateway's tenant is the key's
// name), whatever the session or the system prompt; tenants still spread by weight.
TEST(LoadBalancingTest, StickySplitPerTenantIgnoresSessionAndPrompt) {
  auto router = MakeRouter(
      WeightedPool(R"({"policy": "round_robin", "sticky": true, "hash_key": "tenant"})"));
  std::string first = FirstPick(*router, {.model = "m", .tenant = "team-a"});
  for (int i = 0; i < 20; ++i) {
    const std::string session = "conv-" + std::to_string(i);
    const std::string prompt = "You are assistant " + std::to_string(i);
    EXPECT_EQ(FirstPick(*router, {.model = "m", .session_id = session, .tenant = "team-a",
                                  .system_prompt = prompt, .draw = uint64_t(i)}),
              first);
  }
  std::map<std::string, int> counts;
  for (int i = 0; i < 400; ++i) {
    const std::string tenant = "tenant-" + std::to_string(i);
    ++counts[FirstPick(*router, {.model = "m", .tenant = tenant})];
  }
  EXPECT_EQ(counts.size(), 4u);  // weights 1..4 over 400 tenants: each gets some
  EXPECT_GT(counts["w4"], counts["w1"]);
}

TEST(LoadBalancingTest, UnknownHashKeyNamesTheChoices) {
  auto config = ParseRouterConfig(WeightedPool(R"({"policy": "ring_hash", "hash_key": "user"})"));
  ASSERT_FALSE(config.ok());
  EXPECT_NE(std::string(config.status().message())
                .find("unknown hash key \"user\" (session, tenant_prompt, tenant)"),
            std::string::npos)
      << config.status();
}

TEST(LoadBalancingTest, LeastRequestAvoidsTheBusierDeployment) {
  auto router = MakeRouter(R"({"pools": [{"name": "m", "lb": {"policy": "least_request"},
      "deployments": [{"id": "a", "provider": "p", "model": "m"},
                      {"id": "b", "provider": "p", "model": "m"}]}]})");
  // Hold three attempts on whatever comes; then a pick goes to the busier deployment only
  // when both of its two equally likely draws land there: P = 1/4, 50 of 200 expected
  // (binomial sd 6.1).
  std::vector<std::unique_ptr<RoutePlan>> held;
  for (int i = 0; i < 3; ++i) {
    auto plan = router->Plan({.model = "m", .draw = uint64_t(i) * 7919});
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE((*plan)->Next().has_value());
    held.push_back(*std::move(plan));
  }
  auto health = router->Health();
  int a = FindHealth(health, "a")->in_flight, b = FindHealth(health, "b")->in_flight;
  ASSERT_NE(a, b);  // 3 attempts over 2 deployments
  std::string lighter = a < b ? "a" : "b";
  std::map<std::string, int> counts;
  for (uint64_t i = 0; i < 200; ++i) ++counts[FirstPick(*router, {.model = "m", .draw = i * 104729})];
  std::string busier = lighter == "a" ? "b" : "a";
  EXPECT_GT(counts[busier], 25);
  EXPECT_LT(counts[busier], 75);
}

TEST(LoadBalancingTest, PeakEwmaPrefersTheFasterFirstToken) {
  FakeClock clock;
  auto router = MakeRouter(R"({"pools": [{"name": "m", "lb": {"policy": "peak_ewma"},
      "deployments": [{"id": "slow", "provider": "p", "model": "m"},
                      {"id": "fast", "provider": "p", "model": "m"}]}]})", &clock);
  // Feed samples: slow 2 s to first token, fast 100 ms.
  for (uint64_t i = 0; i < 40; ++i) {
    auto plan = router->Plan({.model = "m", .draw = i * 31337});
    ASSERT_TRUE(plan.ok());
    auto attempt = (*plan)->Next();
    bool slow = attempt->deployment->id == "slow";
    (*plan)->Report(*attempt, {.time_to_first_token = absl::Milliseconds(slow ? 2000 : 100),
                               .latency = absl::Seconds(30)});
  }
  auto health = router->Health();
  EXPECT_DOUBLE_EQ(FindHealth(health, "slow")->ttft_ewma_ms, 2000);
  std::map<std::string, int> counts;
  for (uint64_t i = 0; i < 200; ++i) ++counts[FirstPick(*router, {.model = "m", .draw = i * 7})];
  // Only a draw of "slow" twice picks it: about a quarter; never more than half.
  EXPECT_GT(counts["fast"], 100);
  EXPECT_LT(counts["slow"], 100);
}

// Share of keys whose deployment changes when one of `n` equal deployments leaves.
double Disruption(const std::string& policy, int n) {
  auto pool = [&](int count) {
    std::string deps;
    for (int i = 0; i < count; ++i) {
      absl::StrAppend(&deps, i ? "," : "", R"({"id": "d)", i, R"(", "provider": "p", "model": "m"})");
    }
    return absl::StrCat(R"({"pools": [{"name": "m", "lb": {"policy": ")", policy,
                        R"("}, "deployments": [)", deps, "]}]}");
  };
  auto before = MakeRouter(pool(n));
  auto after = MakeRouter(pool(n - 1));  // d<n-1> left
  constexpr int kKeys = 20000;
  int moved = 0, on_leaver = 0;
  for (int k = 0; k < kKeys; ++k) {
    std::string key = absl::StrCat("key-", k);
    std::string a = FirstPick(*before, {.model = "m", .session_id = key});
    std::string b = FirstPick(*after, {.model = "m", .session_id = key});
    moved += a != b;
    on_leaver += a == absl::StrCat("d", n - 1);
  }
  // Every key of the leaver must move; the rest should stay.
  EXPECT_GE(moved, on_leaver);
  return static_cast<double>(moved) / kKeys;
}

TEST(LoadBalancingTest, RingHashDisruptionIsAboutOneOverN) {
  for (int n : {5, 10}) {
    double d = Disruption("ring_hash", n);
    // Ideal 1/N; the ring's arc lengths vary, so allow 0.6/N .. 1.4/N.
    EXPECT_GT(d, 0.6 / n) << n;
    EXPECT_LT(d, 1.4 / n) << n;
    std::printf("ring_hash: %d deployments, one leaves: %.4f of keys move (1/N = %.4f)\n", n, d,
                1.0 / n);
  }
}

TEST(LoadBalancingTest, MaglevDisruptionIsAboutOneOverN) {
  for (int n : {5, 10}) {
    double d = Disruption("maglev", n);
    // Maglev trades a little extra movement for balance (the paper's few per cent).
    EXPECT_GT(d, 0.6 / n) << n;
    EXPECT_LT(d, 1.5 / n) << n;
    std::printf("maglev: %d deployments, one leaves: %.4f of keys move (1/N = %.4f)\n", n, d,
                1.0 / n);
  }
}

TEST(LoadBalancingTest, BoundedLoadNeverExceedsItsFactor) {
  for (const char* policy : {"ring_hash", "maglev"}) {
    auto router = MakeRouter(absl::StrCat(
        R"({"pools": [{"name": "m", "lb": {"policy": ")", policy,
        R"(", "balance_factor": 1.25}, "deployments": [
          {"id": "a", "provider": "p", "model": "m"}, {"id": "b", "provider": "p", "model": "m"},
          {"id": "c", "provider": "p", "model": "m"}, {"id": "d", "provider": "p", "model": "m"}]}]})"));
    std::vector<std::unique_ptr<RoutePlan>> held;
    std::mt19937_64 rng(9);
    for (int k = 1; k <= 200; ++k) {
      // Skewed keys: half the requests share one hot session.
      std::string key = k % 2 ? "hot" : absl::StrCat("s", rng());
      auto plan = router->Plan({.model = "m", .session_id = key});
      ASSERT_TRUE(plan.ok());
      ASSERT_TRUE((*plan)->Next().has_value());
      held.push_back(*std::move(plan));
      // After the k-th admission no deployment holds more than ceil(1.25 * k / 4).
      int bound = static_cast<int>(std::ceil(1.25 * k / 4));
      for (const auto& h : router->Health()) {
        ASSERT_LE(h.in_flight, bound) << policy << " " << h.id << " after " << k;
      }
    }
  }
}

TEST(LoadBalancingTest, HashKeyFromTenantAndSystemPrompt) {
  auto router = MakeRouter(R"({"pools": [{"name": "m", "lb": {"policy": "maglev", "hash_key": "tenant_prompt"},
      "deployments": [{"id": "a", "provider": "p", "model": "m"}, {"id": "b", "provider": "p", "model": "m"},
                      {"id": "c", "provider": "p", "model": "m"}]}]})");
  std::string first = FirstPick(*router, {.model = "m", .tenant = "acme", .system_prompt = "You are"});
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_EQ(FirstPick(*router, {.model = "m", .tenant = "acme", .system_prompt = "You are", .draw = i}),
              first);
  }
}

}  // namespace
}  // namespace modeenvoy
