// The pool's bounded overflow queue ("queue"): a request finding every tier at capacity waits
// in FIFO order for a freed slot, up to max_depth waiters and timeout_ms each, on the injected
// clock. Expected orders, counts and waits are derived by hand in the comments.
#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/router/router.h"
#include "tests/router/router_test_util.h"

namespace modeenvoy {
namespace {

using router_test::MakeRouter;

// One pool "chat": "local" (tier 0, `local_cap` in flight) and, when cloud_cap > 0, "cloud"
// (tier 1, `cloud_cap` in flight); `queue` is the pool's "queue" value (empty: none).
std::string Config(int local_cap, int cloud_cap, const std::string& queue) {
  std::string deps = absl::StrCat(R"({"id": "local", "provider": "vllm", "model": "llama",
      "max_in_flight": )", local_cap, "}");
  if (cloud_cap > 0) {
    absl::StrAppend(&deps, R"(, {"id": "cloud", "provider": "openai", "model": "gpt", "tier": 1,
        "max_in_flight": )", cloud_cap, "}");
  }
  return absl::StrCat(R"({"pools": [{"name": "chat", "lb": {"policy": "round_robin"}, )",
                      queue.empty() ? "" : absl::StrCat(R"("queue": )", queue, ", "),
                      R"("deployments": [)", deps, "]}]}");
}

AttemptResult Ok() { return AttemptResult{}; }

TEST(RouterQueueConfigTest, FieldsAreStrictWithPaths) {
  struct Case {
    std::string queue;
    std::string message;
  } cases[] = {
      {R"({"max_depth": 0})", "pools[0].queue.max_depth"},
      {R"({"max_depth": "4"})", "pools[0].queue.max_depth"},
      {R"({"timeout_ms": 0})", "pools[0].queue.timeout_ms"},
      {R"({"timeout_ms": -5})", "pools[0].queue.timeout_ms"},
      {R"({"depth": 4})", "pools[0].queue.depth"},
      {R"(true)", "pools[0].queue"},
  };
  for (const Case& c : cases) {
    auto config = ParseRouterConfig(Config(1, 0, c.queue));
    ASSERT_FALSE(config.ok()) << c.queue;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.queue;
    EXPECT_NE(config.status().message().find(c.message), std::string_view::npos)
        << c.queue << ": " << config.status();
  }
  EXPECT_TRUE(ParseRouterConfig(Config(1, 0, R"({"max_depth": 3, "timeout_ms": 250})")).ok());
  EXPECT_TRUE(ParseRouterConfig(Config(1, 0, "{}")).ok());  // both defaulted
}

TEST(RouterQueueTest, OffByDefaultAFullPoolIsExhaustedWithoutHint) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, ""), &clock);
  auto first = router->Plan({.model = "chat"});
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE((*first)->waiting());
  EXPECT_TRUE((*first)->Poll());
  auto second = router->Plan({.model = "chat"});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RouterRetryAfter(second.status()), std::nullopt);
}

TEST(RouterQueueTest, DefaultsAreDepth64AndFiveSeconds) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, "{}"), &clock);
  auto holder = router->Plan({.model = "chat"});
  ASSERT_TRUE(holder.ok());
  std::vector<std::unique_ptr<RoutePlan>> waiters;
  for (int i = 0; i < 64; ++i) {
    auto w = router->Plan({.model = "chat"});
    ASSERT_TRUE(w.ok()) << i << ": " << w.status();
    ASSERT_TRUE((*w)->waiting());
    waiters.push_back(*std::move(w));
  }
  EXPECT_EQ(waiters[0]->wait_deadline(), clock.MonotonicNow() + absl::Seconds(5));
  auto full = router->Plan({.model = "chat"});
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RouterRetryAfter(full.status()), absl::Seconds(5));
}

// A waiter with a wake counter.
struct Waiter {
  int wakes = 0;
  std::unique_ptr<RoutePlan> plan;
};

std::unique_ptr<Waiter> Queue(Router& router) {
  auto w = std::make_unique<Waiter>();
  RouteRequest request{.model = "chat"};
  Waiter* raw = w.get();
  request.on_queue_wake = [raw] { ++raw->wakes; };
  auto plan = router.Plan(request);
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (plan.ok()) w->plan = *std::move(plan);
  return w;
}

TEST(RouterQueueTest, WaitersTakeFreedSlotsInArrivalOrder) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 3, "timeout_ms": 1000})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  ASSERT_TRUE(holder.ok());
  auto held = (*holder)->Next();
  ASSERT_TRUE(held);
  std::vector<std::unique_ptr<Waiter>> w;
  for (int i = 0; i < 3; ++i) {
    w.push_back(Queue(*router));
    ASSERT_TRUE(w[i]->plan->waiting());
    EXPECT_FALSE(w[i]->plan->Poll());  // nothing is free
  }
  EXPECT_EQ(w[0]->wakes, 0);

  // The slot frees: only the head is woken, and only the head can take it.
  (*holder)->Report(*held, Ok());
  EXPECT_EQ(w[0]->wakes, 1);
  EXPECT_EQ(w[1]->wakes, 0);
  EXPECT_FALSE(w[2]->plan->Poll());
  EXPECT_FALSE(w[1]->plan->Poll());
  EXPECT_TRUE(w[0]->plan->Poll());
  EXPECT_FALSE(w[0]->plan->waiting());
  // Leaving the head wakes the next (spuriously here: the one slot is taken again).
  EXPECT_EQ(w[1]->wakes, 1);
  EXPECT_FALSE(w[1]->plan->Poll());

  // Served in order 0, 1, 2: each Report wakes the next head.
  for (int i = 0; i < 3; ++i) {
    if (i > 0) {
      EXPECT_TRUE(w[i]->plan->Poll()) << i;
    }
    auto attempt = w[i]->plan->Next();
    ASSERT_TRUE(attempt) << i << ": " << w[i]->plan->final_status();
    EXPECT_EQ(attempt->deployment->id, "local");
    if (i + 1 < 3) {
      EXPECT_FALSE(w[i + 1]->plan->Poll()) << i;
    }
    w[i]->plan->Report(*attempt, Ok());
    EXPECT_TRUE(w[i]->plan->final_status().ok());
  }
  EXPECT_GE(w[2]->wakes, 1);
}

TEST(RouterQueueTest, NewcomersQueueBehindWaitersEvenWhenASlotIsFree) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 4})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto held = (*holder)->Next();
  auto first = Queue(*router);
  (*holder)->Report(*held, Ok());  // free, but `first` has not polled yet
  auto late = Queue(*router);
  EXPECT_TRUE(late->plan->waiting());
  EXPECT_TRUE(first->plan->Poll());
  EXPECT_FALSE(late->plan->Poll());
}

TEST(RouterQueueTest, DepthIsBoundedAndAFullQueueCarriesTheRetryAfterHint) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 2, "timeout_ms": 750})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto a = Queue(*router);
  auto b = Queue(*router);
  auto full = router->Plan({.model = "chat"});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.status().message().find("queue is full (2 waiting)"), std::string_view::npos)
      << full.status();
  EXPECT_EQ(RouterRetryAfter(full.status()), absl::Milliseconds(750));
  // A waiter that leaves (its plan destroyed) makes room.
  b->plan.reset();
  auto c = Queue(*router);
  EXPECT_TRUE(c->plan != nullptr && c->plan->waiting());
}

TEST(RouterQueueTest, AWaitEndsAtTheQueueTimeout) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 2, "timeout_ms": 500})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  absl::Time start = clock.MonotonicNow();
  auto w = Queue(*router);
  EXPECT_EQ(w->plan->wait_deadline(), start + absl::Milliseconds(500));
  clock.Advance(absl::Milliseconds(499));
  EXPECT_FALSE(w->plan->Poll());
  clock.Advance(absl::Milliseconds(1));
  EXPECT_TRUE(w->plan->Poll());
  EXPECT_FALSE(w->plan->waiting());
  EXPECT_EQ(w->plan->Next(), std::nullopt);
  absl::Status status = w->plan->final_status();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted) << status;
  EXPECT_NE(status.message().find("500 ms"), std::string_view::npos) << status;
  EXPECT_EQ(RouterRetryAfter(status), absl::Milliseconds(500));
}

TEST(RouterQueueTest, TheRequestDeadlineEndsAWaitFirst) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 2, "timeout_ms": 500})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  absl::Time deadline = clock.MonotonicNow() + absl::Milliseconds(200);
  auto plan = router->Plan({.model = "chat", .deadline = deadline});
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ((*plan)->wait_deadline(), deadline);
  clock.Advance(absl::Milliseconds(200));
  EXPECT_TRUE((*plan)->Poll());
  EXPECT_EQ((*plan)->final_status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ((*plan)->Next(), std::nullopt);
}

TEST(RouterQueueTest, AReportWakesTheHeadOnceAndItGetsTheSlot) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 2})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto held = (*holder)->Next();
  auto w = Queue(*router);
  clock.Advance(absl::Milliseconds(40));
  EXPECT_EQ(w->wakes, 0);
  (*holder)->Report(*held, Ok());
  EXPECT_EQ(w->wakes, 1);
  ASSERT_TRUE(w->plan->Poll());
  auto attempt = w->plan->Next();
  ASSERT_TRUE(attempt);
  EXPECT_EQ(attempt->deployment->id, "local");
  EXPECT_EQ(router->Health()[0].in_flight, 1);
}

TEST(RouterQueueTest, ACancelledHeadLeavesAndWakesTheNext) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 3})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto held = (*holder)->Next();
  auto a = Queue(*router);
  auto b = Queue(*router);
  a->plan.reset();  // the client went away while waiting
  EXPECT_EQ(b->wakes, 1);
  EXPECT_FALSE(b->plan->Poll());  // b is the head now, but the slot is still held
  (*holder)->Report(*held, Ok());
  EXPECT_EQ(b->wakes, 2);
  EXPECT_TRUE(b->plan->Poll());
  EXPECT_TRUE(b->plan->Next().has_value());
}

TEST(RouterQueueTest, NextWhileWaitingGivesUpThePlace) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 1, "timeout_ms": 300})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto w = Queue(*router);
  EXPECT_EQ(w->plan->Next(), std::nullopt);
  EXPECT_FALSE(w->plan->waiting());
  EXPECT_EQ(w->plan->final_status().code(), absl::StatusCode::kResourceExhausted);
  auto again = Queue(*router);  // the place (depth 1) is free again
  EXPECT_TRUE(again->plan != nullptr && again->plan->waiting());
}

// Saturation: a slow local deployment (capacity 4, 300 ms a request), a cloud overflow tier
// (capacity 2, 100 ms), a queue of depth 3; N = 12 requests arrive at once. An event-driven
// host on the fake clock: wakes are recorded and polled after each event.
struct SimResult {
  std::map<std::string, int> served;   // deployment id -> requests
  std::vector<int64_t> waits_ms;       // queue waits of queued requests that were served
  int rejected_full = 0;               // Plan(): queue full
  int timed_out = 0;                   // waited until timeout_ms
};

SimResult Simulate(int n, absl::Duration local_time, absl::Duration cloud_time,
                   const std::string& queue) {
  FakeClock clock;
  auto router = MakeRouter(Config(4, 2, queue), &clock);
  const absl::Time t0 = clock.MonotonicNow();
  SimResult result;
  struct Request {
    std::unique_ptr<RoutePlan> plan;
    std::optional<PlannedAttempt> attempt;
    absl::Time ends;
    bool queued = false;
    bool done = false;
  };
  std::vector<Request> requests(n);
  std::deque<int> woken;
  auto start = [&](int i) {
    Request& r = requests[i];
    r.attempt = r.plan->Next();
    if (!r.attempt) {
      r.done = true;
      ++result.timed_out;
      EXPECT_EQ(r.plan->final_status().code(), absl::StatusCode::kResourceExhausted);
      return;
    }
    const std::string& id = r.attempt->deployment->id;
    ++result.served[id];
    if (r.queued) result.waits_ms.push_back(absl::ToInt64Milliseconds(clock.MonotonicNow() - t0));
    r.ends = clock.MonotonicNow() + (id == "local" ? local_time : cloud_time);
  };
  auto drain = [&] {
    while (!woken.empty()) {
      int i = woken.front();
      woken.pop_front();
      if (requests[i].plan != nullptr && requests[i].plan->waiting() && requests[i].plan->Poll()) {
        start(i);
      }
    }
  };
  for (int i = 0; i < n; ++i) {
    RouteRequest request{.model = "chat"};
    request.on_queue_wake = [&woken, i] { woken.push_back(i); };
    auto plan = router->Plan(request);
    if (!plan.ok()) {
      EXPECT_EQ(plan.status().code(), absl::StatusCode::kResourceExhausted);
      ++result.rejected_full;
      requests[i].done = true;
      continue;
    }
    requests[i].plan = *std::move(plan);
    requests[i].queued = requests[i].plan->waiting();
    if (!requests[i].queued) start(i);
    drain();
  }
  for (int step = 0; step < 10 * n; ++step) {  // bounded: every step ends or starts something
    absl::Time next = absl::InfiniteFuture();
    for (const Request& r : requests) {
      if (r.done || r.plan == nullptr) continue;
      next = std::min(next, r.plan->waiting() ? r.plan->wait_deadline() : r.ends);
    }
    if (next == absl::InfiniteFuture()) break;
    clock.Set(next);
    for (int i = 0; i < n; ++i) {
      Request& r = requests[i];
      if (r.done || r.plan == nullptr) continue;
      if (r.plan->waiting()) {
        if (r.plan->wait_deadline() <= next && r.plan->Poll()) start(i);
      } else if (r.attempt && r.ends <= next) {
        r.plan->Report(*r.attempt, Ok());
        r.done = true;
      }
      drain();
    }
  }
  for (const Request& r : requests) EXPECT_TRUE(r.done);
  return result;
}

TEST(RouterQueueTest, SaturationOverflowsToCloudThenQueuesInOrder) {
  // t=0: requests 0-3 take local (capacity 4), 4-5 overflow to cloud (capacity 2), 6-8 queue
  // (depth 3), 9-11 find the queue full. t=100: both cloud attempts end: 6 and 7 take cloud
  // (local is busy until 300). t=200: 6 and 7 end: 8 takes cloud. So local serves 4, cloud
  // 2 + 3 = 5 (the overflowed share: 5 of the 9 served), waits 100, 100, 200 ms.
  SimResult r = Simulate(12, absl::Milliseconds(300), absl::Milliseconds(100),
                         R"({"max_depth": 3, "timeout_ms": 1000})");
  EXPECT_EQ(r.served["local"], 4);
  EXPECT_EQ(r.served["cloud"], 5);
  EXPECT_EQ(r.rejected_full, 3);
  EXPECT_EQ(r.timed_out, 0);
  EXPECT_EQ(r.waits_ms, (std::vector<int64_t>{100, 100, 200}));
}

TEST(RouterQueueTest, SaturationWaitersTimeOutWhenNothingFreesInTime) {
  // Cloud now takes 200 ms and the queue waits 150 ms: nothing frees before t=150, so the
  // three queued requests end at their timeout; 4 local + 2 cloud are served.
  SimResult r = Simulate(12, absl::Milliseconds(300), absl::Milliseconds(200),
                         R"({"max_depth": 3, "timeout_ms": 150})");
  EXPECT_EQ(r.served["local"], 4);
  EXPECT_EQ(r.served["cloud"], 2);
  EXPECT_EQ(r.rejected_full, 3);
  EXPECT_EQ(r.timed_out, 3);
  EXPECT_TRUE(r.waits_ms.empty());
}

TEST(RouterQueueTest, WaitersSurviveAConfigurationSwapInOrder) {
  FakeClock clock;
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 2})"), &clock);
  auto holder = router->Plan({.model = "chat"});
  auto held = (*holder)->Next();
  auto old_waiter = Queue(*router);
  auto config = ParseRouterConfig(Config(1, 0, R"({"max_depth": 2})"));
  ASSERT_TRUE(config.ok());
  ASSERT_TRUE(router->Update(*config).ok());
  auto new_waiter = Queue(*router);  // same pool name: the same queue, behind old_waiter
  EXPECT_TRUE(new_waiter->plan->waiting());
  (*holder)->Report(*held, Ok());
  EXPECT_FALSE(new_waiter->plan->Poll());
  EXPECT_TRUE(old_waiter->plan->Poll());
}

// Two threads share one slot through the queue (for ThreadSanitizer): every request is served
// once, wakes arrive from the other thread, and no slot or place is left behind.
TEST(RouterQueueTest, ThreadsShareOneSlotThroughTheQueue) {
  FakeClock clock;  // never advanced: no wait times out
  auto router = MakeRouter(Config(1, 0, R"({"max_depth": 4})"), &clock);
  constexpr int kPerThread = 200;
  std::atomic<int> served{0}, wakes{0};
  auto work = [&] {
    for (int i = 0; i < kPerThread; ++i) {
      RouteRequest request{.model = "chat"};
      request.on_queue_wake = [&wakes] { wakes.fetch_add(1); };
      auto plan = router->Plan(request);
      ASSERT_TRUE(plan.ok()) << plan.status();
      while (!(*plan)->Poll()) std::this_thread::yield();  // the other thread frees the slot
      auto attempt = (*plan)->Next();
      ASSERT_TRUE(attempt) << (*plan)->final_status();
      served.fetch_add(1);
      (*plan)->Report(*attempt, Ok());
    }
  };
  std::thread other(work);
  work();
  other.join();
  EXPECT_EQ(served.load(), 2 * kPerThread);
  EXPECT_EQ(router->Health()[0].in_flight, 0);
  auto after = router->Plan({.model = "chat"});  // the queue is empty: served at once
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE((*after)->waiting());
}

}  // namespace
}  // namespace modeenvoy
