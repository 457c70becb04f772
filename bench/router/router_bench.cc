// bench/router/router_bench.cc: the cost of one routing decision and of one Report().
//   build-rel/bench/router/router_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only
// BM_Decision: Plan() (configuration load, pool lookup among 60 names and wildcards, health
// and capacity checks, the policy's pick, capacity reservation) + Next() + dropping the plan.
// BM_DecisionAndReport: the same plus Report() of a success with a time to first token
// (outlier bookkeeping under the deployment's lock, peak-EWMA update); Report() alone is the
// difference of the two.
// BM_TieredDecision: BM_Decision on a pool with five tiered rules that all get evaluated
// (prompt tokens, key tier, time of day, remaining budget, and last the complexity score of
// a 1 KB prompt, which the request does not match, so the asked pool's pick follows).
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "modeenvoy/router/complexity.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy {
namespace {

const char* const kPolicies[] = {"round_robin", "weighted_round_robin", "least_request",
                                 "peak_ewma",   "ring_hash",            "maglev"};

std::unique_ptr<Router> MakeBenchRouter(const std::string& policy) {
  std::string pools;
  for (int p = 0; p < 50; ++p) {
    absl::StrAppend(&pools, R"({"name": "other-)", p, R"(", "aliases": ["vendor-)", p,
                    R"(/*"], "deployments": [{"id": "o)", p, R"(", "provider": "p", "model": "m"}]},)");
  }
  std::string json = absl::StrCat(R"({"pools": [)", pools, R"({"name": "gpt-4o", "aliases": ["gpt-4o*", "openai/gpt-4o"],
      "lb": {"policy": ")", policy, R"(", "balance_factor": 1.25},
      "deployments": [
        {"id": "a", "provider": "p", "model": "m", "weight": 1, "context_window": 128000, "max_in_flight": 1000},
        {"id": "b", "provider": "p", "model": "m", "weight": 2, "context_window": 128000, "max_in_flight": 1000},
        {"id": "c", "provider": "p", "model": "m", "weight": 3, "context_window": 128000, "rpm": 100000000},
        {"id": "d", "provider": "p", "model": "m", "weight": 4, "context_window": 128000},
        {"id": "e", "provider": "q", "model": "m", "tier": 1}]}]})");
  auto config = ParseRouterConfig(json);
  if (!config.ok()) std::abort();
  auto router = NewRouter({.seed = 1});
  if (!router->Update(*config).ok()) std::abort();
  return router;
}

RouteRequest Request(uint64_t i) {
  RouteRequest r;
  r.model = "gpt-4o-2024-08-06";  // the wildcard: exact lookup misses first
  r.session_id = "conversation-7f3a9c21";
  r.prompt_tokens = 1200;
  r.max_tokens = 512;
  r.draw = i * 0x9e3779b97f4a7c15ULL;
  return r;
}

// One iteration each, out of line so that callgrind can count their instructions alone
// (--toggle-collect='*RouteOnce*'), without the setup.
__attribute__((noinline)) void RouteOnce(const Router& router, uint64_t i) {
  auto plan = router.Plan(Request(i));
  auto attempt = (*plan)->Next();
  benchmark::DoNotOptimize(attempt);
}

__attribute__((noinline)) void RouteAndReportOnce(const Router& router, uint64_t i,
                                                  const AttemptResult& result) {
  auto plan = router.Plan(Request(i));
  auto attempt = (*plan)->Next();
  (*plan)->Report(*attempt, result);
  benchmark::DoNotOptimize(attempt);
}

void BM_Decision(benchmark::State& state) {
  static std::unique_ptr<Router> router;
  if (state.thread_index() == 0) router = MakeBenchRouter(kPolicies[state.range(0)]);
  state.SetLabel(kPolicies[state.range(0)]);
  uint64_t i = state.thread_index() * 1000003;
  for (auto _ : state) RouteOnce(*router, ++i);
}
BENCHMARK(BM_Decision)->DenseRange(0, 5)->Threads(1);
BENCHMARK(BM_Decision)->DenseRange(0, 5)->Threads(2);

void BM_DecisionAndReport(benchmark::State& state) {
  static std::unique_ptr<Router> router;
  if (state.thread_index() == 0) router = MakeBenchRouter(kPolicies[state.range(0)]);
  state.SetLabel(kPolicies[state.range(0)]);
  uint64_t i = state.thread_index() * 1000003;
  AttemptResult ok;
  ok.time_to_first_token = absl::Milliseconds(150);
  ok.latency = absl::Seconds(2);
  for (auto _ : state) RouteAndReportOnce(*router, ++i, ok);
}
BENCHMARK(BM_DecisionAndReport)->DenseRange(0, 5)->Threads(1);
BENCHMARK(BM_DecisionAndReport)->DenseRange(0, 5)->Threads(2);

std::unique_ptr<Router> MakeTieredRouter() {
  std::string json = R"({"pools": [
    {"name": "gpt-4o", "aliases": ["gpt-4o*"],
     "rules": [
       {"name": "long", "to": "long", "prompt_tokens": {"min": 100000}},
       {"name": "free", "to": "mini", "key_tiers": ["free", "trial"]},
       {"name": "night", "to": "mini", "time_of_day": {"from": "23:59", "to": "00:00"}},
       {"name": "broke", "to": "mini", "remaining_budget": {"max": 1}},
       {"name": "simple", "to": "mini", "complexity": {"max": 0.2}}],
     "deployments": [
        {"id": "a", "provider": "p", "model": "m", "weight": 1, "context_window": 128000},
        {"id": "b", "provider": "p", "model": "m", "weight": 2, "context_window": 128000}]},
    {"name": "mini", "deployments": [{"id": "c", "provider": "p", "model": "m"}]},
    {"name": "long", "deployments": [{"id": "d", "provider": "p", "model": "m"}]}]})";
  auto config = ParseRouterConfig(json);
  if (!config.ok()) std::abort();
  auto router = NewRouter({.seed = 1});
  if (!router->Update(*config).ok()) std::abort();
  return router;
}

// About 1 KB of a realistic prompt: prose with a question, a list and a code fence.
std::string KilobytePrompt() {
  std::string p =
      "I am migrating our billing service from a cron-driven batch job to an event-driven "
      "design. Today a job runs every night, reads all usage rows from Postgres, aggregates "
      "them per customer and writes invoices. We want near-real-time usage totals.\n"
      "1. Propose an architecture using Kafka or a similar log, covering idempotency and "
      "exactly-once aggregation.\n2. Explain how to backfill historical data.\n"
      "3. Describe how to roll back if the new pipeline miscounts.\n"
      "Here is the current aggregation query:\n```sql\nSELECT customer_id, date_trunc('day', "
      "ts) AS day, sum(units) FROM usage WHERE ts >= now() - interval '1 day' GROUP BY 1, 2;"
      "\n```\nWhat are the main risks, and which metrics should we alert on? Keep the answer "
      "practical: we are a team of four engineers with limited on-call capacity and we cannot "
      "afford a second database cluster this year.";
  while (p.size() < 1024) p += " Please also note any trade-offs.";
  return p.substr(0, 1024);
}

void BM_TieredDecision(benchmark::State& state) {
  auto router = MakeTieredRouter();
  const std::string prompt = KilobytePrompt();
  uint64_t i = 0;
  for (auto _ : state) {
    RouteRequest r;
    r.model = "gpt-4o";
    r.prompt = prompt;
    r.prompt_tokens = 260;
    r.max_tokens = 512;
    r.key_tier = "pro";
    r.remaining_budget = 50;
    r.draw = ++i * 0x9e3779b97f4a7c15ULL;
    auto plan = router->Plan(r);
    auto attempt = (*plan)->Next();
    benchmark::DoNotOptimize(attempt);
  }
}
BENCHMARK(BM_TieredDecision);

// The score alone on the same prompt.
void BM_PromptComplexity1KB(benchmark::State& state) {
  const std::string prompt = KilobytePrompt();
  for (auto _ : state) benchmark::DoNotOptimize(ScorePromptComplexity(prompt));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 1024);
}
BENCHMARK(BM_PromptComplexity1KB);

}  // namespace
}  // namespace modeenvoy
