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


// Plan() reads the configuration through a per-thread cache checked against a generation:
// every Update() must be seen by the next Plan() on every thread, and routers sharing a
// thread (more of them than the cache has entries) must never see each other's snapshot.
constexpr char kOnlyA[] = R"({"pools": [{"name": "m", "deployments": [
    {"id": "a", "provider": "p", "model": "x"}]}]})";
constexpr char kOnlyB[] = R"({"pools": [{"name": "m", "deployments": [
    {"id": "b", "provider": "p", "model": "x"}]}]})";

std::string Pick(const Router& router) {
  auto plan = router.Plan(RouteRequest{.model = "m"});
  if (!plan.ok()) return std::string(plan.status().message());
  auto attempt = (*plan)->Next();
  return attempt ? attempt->deployment->id : "none";
}

TEST(RouterHostTest, EveryThreadSeesTheNextConfigurationAfterAnUpdate) {
  auto router = NewRouter({.seed = 1});
  ASSERT_TRUE(router->Update(*ParseRouterConfig(kOnlyA)).ok());
  EXPECT_EQ(Pick(*router), "a");
  std::string other_before, other_after;
  std::thread([&] { other_before = Pick(*router); }).join();
  ASSERT_TRUE(router->Update(*ParseRouterConfig(kOnlyB)).ok());
  EXPECT_EQ(Pick(*router), "b");  // this thread had "a" cached
  std::thread([&] { other_after = Pick(*router); }).join();
  EXPECT_EQ(other_before, "a");
  EXPECT_EQ(other_after, "b");
  ASSERT_TRUE(router->Update(*ParseRouterConfig(kOnlyA)).ok());
  EXPECT_EQ(Pick(*router), "a");
}

TEST(RouterHostTest, RoutersSharingAThreadKeepTheirOwnConfigurations) {
  // Six routers on one thread: more than the per-thread cache holds, so entries are evicted
  // and refilled while the routers alternate.
  std::vector<std::unique_ptr<Router>> routers;
  for (int i = 0; i < 6; ++i) {
    routers.push_back(NewRouter({.seed = 1}));
    ASSERT_TRUE(routers.back()->Update(*ParseRouterConfig(i % 2 == 0 ? kOnlyA : kOnlyB)).ok());
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(Pick(*routers[i]), i % 2 == 0 ? "a" : "b") << "router " << i << " round " << round;
    }
  }
  // A router made at the address of a destroyed one starts with no configuration.
  routers[0].reset();
  routers[0] = NewRouter({.seed = 1});
  EXPECT_EQ(Pick(*routers[0]), "router: no configuration yet (call Update first)");
}

}  // namespace
}  // namespace modeenvoy
