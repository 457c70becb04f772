// A host driving the router without the gateway: the example of router.h's file comment,
// compiled and run; and Plan()/Report() from many threads at once.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy {
namespace {

// --- copied from include/modeenvoy/router/router.h (keep the two in step) ---------------
absl::Status Serve(modeenvoy::Router& router, std::string_view model) {
  modeenvoy::RouteRequest request;
  request.model = model;
  request.session_id = "conversation-42";   // consistent hashing / sticky splits
  request.prompt_tokens = 1200;             // context-window fit
  request.max_tokens = 512;
  auto plan = router.Plan(request);
  if (!plan.ok()) return plan.status();     // kNotFound, kResourceExhausted
  while (auto attempt = (*plan)->Next()) {
    // wait attempt->delay, then call attempt->deployment->provider /
    // ->upstream_model in ->dialect, giving up after attempt->timeout.
    modeenvoy::AttemptResult result;
    result.failure = modeenvoy::UpstreamFailure::kNone;   // or what went wrong
    result.time_to_first_token = absl::Milliseconds(180);
    result.latency = absl::Milliseconds(900);
    (*plan)->Report(*attempt, result);
    if (result.failure == modeenvoy::UpstreamFailure::kNone) return absl::OkStatus();
  }
  return (*plan)->final_status();           // why no attempt is left
}
// ------------------------------------------------------------------------------------------

constexpr char kConfig[] = R"({"pools": [{"name": "gpt-4o", "aliases": ["gpt-4o*"],
    "lb": {"policy": "peak_ewma"},
    "outlier": {"consecutive_failures": 3, "max_ejected_percent": 50},
    "deployments": [
      {"id": "east", "provider": "openai-east", "model": "gpt-4o", "context_window": 128000},
      {"id": "west", "provider": "azure-west", "model": "gpt-4o", "dialect": "azure", "context_window": 128000},
      {"id": "local", "provider": "vllm", "model": "llama", "tier": 1, "max_in_flight": 4}]}]})";

TEST(RouterHostTest, TheHeaderExampleServesARequest) {
  auto config = ParseRouterConfig(kConfig);
  ASSERT_TRUE(config.ok()) << config.status();
  auto router = NewRouter({.seed = 7});
  ASSERT_TRUE(router->Update(*std::move(config)).ok());
  EXPECT_TRUE(Serve(*router, "gpt-4o-2024-08-06").ok());
  EXPECT_EQ(Serve(*router, "claude").code(), absl::StatusCode::kNotFound);
}

TEST(RouterHostTest, ManyThreadsPlanAndReportWhileTheConfigurationIsSwapped) {
  FakeClock clock;
  auto router = NewRouter({.clock = &clock, .seed = 3});
  ASSERT_TRUE(router->Update(*ParseRouterConfig(kConfig)).ok());
  std::atomic<int> served{0}, failed_plans{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        RouteRequest request{.model = "gpt-4o", .draw = uint64_t(t) * 100000 + i};
        auto plan = router->Plan(request);
        if (!plan.ok()) {
          ++failed_plans;
          continue;
        }
        while (auto attempt = (*plan)->Next()) {
          AttemptResult r;
          // Every 7th attempt fails: ejections and retries happen under contention.
          r.failure = i % 7 == 0 ? UpstreamFailure::kServerError : UpstreamFailure::kNone;
          r.time_to_first_token = absl::Milliseconds(50 + i % 100);
          (*plan)->Report(*attempt, r);
        }
        if ((*plan)->final_status().ok()) ++served;
      }
    });
  }
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(router->Update(*ParseRouterConfig(kConfig)).ok());
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed_plans.load(), 0);
  EXPECT_GT(served.load(), 0);
  // Every capacity slot was given back.
  for (const auto& h : router->Health()) EXPECT_EQ(h.in_flight, 0) << h.id;
}

}  // namespace
}  // namespace modeenvoy
