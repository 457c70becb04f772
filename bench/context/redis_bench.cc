// bench/context/redis_bench.cc: the Redis context store against a local redis-server that
// the benchmark starts (tests/context/redis_server.h) on a free loopback port; skipped when
// redis-server is not installed. One operation at a time on a PollEventLoop: each
// iteration issues the operation and runs the loop until its callback ran, so the time is
// the operation's latency (client encode + round trip + script + decode). Reported per
// operation: the mean (Google Benchmark's time) and, as counters, p50_us and p99_us of the
// individual latencies.
//   build/bench/context/redis_bench --benchmark_repetitions=3
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "modeenvoy/context/redis_store.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "tests/context/redis_server.h"

namespace {

using modeenvoy::ContextAppend;
using modeenvoy::ContextStore;
using modeenvoy::HistoryEntry;
using modeenvoy::MakeMessage;
using modeenvoy::Role;
using modeenvoy::StoreHandle;

struct Fixture {
  std::unique_ptr<modeenvoy::testing::RedisServer> server;
  std::unique_ptr<modeenvoy::PollEventLoop> loop;
  std::unique_ptr<ContextStore> store;
  std::string error;
};

// A function-local static, destroyed at exit: the store first, then the server (stopped by
// pid).
Fixture* Shared() {
  static std::unique_ptr<Fixture> fixture = [] {
    auto f = std::make_unique<Fixture>();
    if (!modeenvoy::testing::RedisServer::Installed()) {
      f->error = "redis-server is not installed";
      return f;
    }
    auto server = modeenvoy::testing::RedisServer::Start();
    if (!server.ok()) {
      f->error = std::string(server.status().message());
      return f;
    }
    f->server = *std::move(server);
    f->loop = modeenvoy::NewPollEventLoop();
    modeenvoy::RedisContextStoreOptions o;
    o.url = f->server->url();
    o.key_prefix = "bench:";
    auto store = modeenvoy::NewRedisContextStore(f->loop.get(), o);
    if (!store.ok()) {
      f->error = std::string(store.status().message());
      return f;
    }
    f->store = *std::move(store);
    return f;
  }();
  return fixture.get();
}

// Runs one operation to completion; returns false (and reports) when it failed.
template <typename T, typename Start>
bool Run(benchmark::State& state, Fixture* f, Start start, std::optional<T>* value = nullptr) {
  bool finished = false;
  absl::Status status;
  StoreHandle h = start([&](absl::StatusOr<T> r) {
    finished = true;
    if (!r.ok()) {
      status = r.status();
    } else if (value != nullptr) {
      *value = *std::move(r);
    }
  });
  f->loop->RunUntil([&] { return finished; }, absl::Seconds(10));
  if (!finished || !status.ok()) {
    state.SkipWithError(finished ? std::string(status.message()).c_str() : "no reply in 10s");
    return false;
  }
  return true;
}

ContextAppend Turn(int turn, std::string owner = "bench-owner") {
  ContextAppend a;
  a.owner = std::move(owner);
  a.entries = {
      HistoryEntry{.message = MakeMessage(Role::kUser, absl::StrCat("question number ", turn,
                                                                    " about the weather")),
                   .turn = turn},
      HistoryEntry{.message = MakeMessage(Role::kAssistant,
                                          absl::StrCat("answer number ", turn, ": it is sunny "
                                                       "with a light breeze from the west")),
                   .turn = turn}};
  a.turns = 1;
  a.now = absl::FromUnixSeconds(1700000000 + turn);
  return a;
}

// Creates `id` with `turns` turns; returns its version (0 on failure).
uint64_t Seed(benchmark::State& state, Fixture* f, const std::string& id, int turns,
              const std::string& owner = "bench-owner") {
  bool deleted_ok = Run<bool>(state, f, [&](auto cb) { return f->store->Delete(id, std::move(cb)); });
  if (!deleted_ok) return 0;
  uint64_t version = 0;
  for (int t = 1; t <= turns; ++t) {
    std::optional<uint64_t> v;
    if (!Run<uint64_t>(state, f,
                       [&](auto cb) {
                         return f->store->Append(id, version, Turn(t, owner), std::move(cb));
                       },
                       &v)) {
      return 0;
    }
    version = *v;
  }
  return version;
}

class Latencies {
 public:
  void Start() { t0_ = std::chrono::steady_clock::now(); }
  void Stop() {
    samples_.push_back(std::chrono::duration<double, std::micro>(
                           std::chrono::steady_clock::now() - t0_)
                           .count());
  }
  void Report(benchmark::State& state) {
    if (samples_.empty()) return;
    std::sort(samples_.begin(), samples_.end());
    state.counters["p50_us"] = samples_[samples_.size() / 2];
    state.counters["p99_us"] = samples_[std::min(samples_.size() - 1, samples_.size() * 99 / 100)];
  }

 private:
  std::chrono::steady_clock::time_point t0_;
  std::vector<double> samples_;
};

void BM_RedisGet20Turns(benchmark::State& state) {
  Fixture* f = Shared();
  if (!f->error.empty()) return state.SkipWithError(f->error.c_str());
  if (Seed(state, f, "get-20", 20) == 0) return;
  Latencies lat;
  for (auto _ : state) {
    lat.Start();
    std::optional<std::optional<modeenvoy::StoredContext>> got;
    if (!Run<std::optional<modeenvoy::StoredContext>>(
            state, f, [&](auto cb) { return f->store->Get("get-20", std::move(cb)); }, &got)) {
      return;
    }
    lat.Stop();
    benchmark::DoNotOptimize(got);
  }
  lat.Report(state);
}
BENCHMARK(BM_RedisGet20Turns)->UseRealTime();

void BM_RedisAppendOneTurn(benchmark::State& state) {
  Fixture* f = Shared();
  if (!f->error.empty()) return state.SkipWithError(f->error.c_str());
  uint64_t version = Seed(state, f, "append", 1);
  if (version == 0) return;
  Latencies lat;
  int turn = 2;
  for (auto _ : state) {
    lat.Start();
    std::optional<uint64_t> v;
    if (!Run<uint64_t>(state, f,
                       [&](auto cb) {
                         return f->store->Append("append", version, Turn(turn), std::move(cb));
                       },
                       &v)) {
      return;
    }
    lat.Stop();
    version = *v;
    ++turn;
    // Keep the session small: a long history would measure the record size, not append.
    if (turn % 200 == 0) {
      state.PauseTiming();
      version = Seed(state, f, "append", 1);
      state.ResumeTiming();
      if (version == 0) return;
    }
  }
  lat.Report(state);
}
BENCHMARK(BM_RedisAppendOneTurn)->UseRealTime();

void BM_RedisList20Sessions(benchmark::State& state) {
  Fixture* f = Shared();
  if (!f->error.empty()) return state.SkipWithError(f->error.c_str());
  for (int i = 0; i < 20; ++i) {
    if (Seed(state, f, absl::StrCat("list-", i), 1, "list-owner") == 0) return;
  }
  Latencies lat;
  for (auto _ : state) {
    lat.Start();
    std::optional<modeenvoy::SessionPage> page;
    if (!Run<modeenvoy::SessionPage>(
            state, f, [&](auto cb) { return f->store->List("list-owner", "", 20, std::move(cb)); },
            &page)) {
      return;
    }
    lat.Stop();
    if (page->sessions.size() != 20) return state.SkipWithError("list: expected 20 sessions");
  }
  lat.Report(state);
}
BENCHMARK(BM_RedisList20Sessions)->UseRealTime();

void BM_RedisTryLock(benchmark::State& state) {
  Fixture* f = Shared();
  if (!f->error.empty()) return state.SkipWithError(f->error.c_str());
  Latencies lat;
  for (auto _ : state) {
    lat.Start();
    std::optional<bool> held;
    if (!Run<bool>(state, f,
                   [&](auto cb) {
                     return f->store->TryLock("lock", "holder", absl::Seconds(30),
                                              std::move(cb));
                   },
                   &held)) {
      return;
    }
    lat.Stop();
    if (!*held) return state.SkipWithError("lease not granted to its holder");
  }
  lat.Report(state);
}
BENCHMARK(BM_RedisTryLock)->UseRealTime();

// Throughput with many operations in flight on the one pipelined connection: `range(0)`
// concurrent Gets of a 20-turn session per batch. Time is per batch; items/s is Gets/s.
void BM_RedisGetPipelined(benchmark::State& state) {
  Fixture* f = Shared();
  if (!f->error.empty()) return state.SkipWithError(f->error.c_str());
  if (Seed(state, f, "get-20", 20) == 0) return;
  const int n = static_cast<int>(state.range(0));
  for (auto _ : state) {
    int done = 0;
    int failed = 0;
    std::vector<StoreHandle> handles;
    handles.reserve(n);
    for (int i = 0; i < n; ++i) {
      handles.push_back(f->store->Get("get-20", [&](auto got) {
        ++done;
        if (!got.ok()) ++failed;
      }));
    }
    f->loop->RunUntil([&] { return done == n; }, absl::Seconds(10));
    if (done != n || failed != 0) return state.SkipWithError("pipelined get failed");
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_RedisGetPipelined)->Arg(64)->UseRealTime();

}  // namespace
