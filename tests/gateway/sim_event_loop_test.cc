// tests/gateway/sim_event_loop_test.cc
#include "modeenvoy/gateway/sim_event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;

constexpr absl::Time kStart = absl::FromUnixSeconds(1700000000);

absl::Time At(int64_t ms) { return kStart + absl::Milliseconds(ms); }

class SimEventLoopTest : public ::testing::Test {
 protected:
  FakeClock clock_{kStart};
  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop(&clock_);
};

// Two ends of a connected AF_UNIX stream socket, closed at the end of the test.
class SocketPair {
 public:
  SocketPair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0); }
  ~SocketPair() {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  int a() const { return fds_[0]; }
  int b() const { return fds_[1]; }
  void CloseB() {
    close(fds_[1]);
    fds_[1] = -1;
  }

 private:
  int fds_[2] = {-1, -1};
};

TEST_F(SimEventLoopTest, ClockIsTheInjectedOneOrItsOwn) {
  EXPECT_EQ(&loop_->clock(), &clock_);
  EXPECT_EQ(&loop_->fake_clock(), &clock_);
  std::unique_ptr<SimEventLoop> own = NewSimEventLoop();
  EXPECT_NE(&own->clock(), &clock_);
  EXPECT_EQ(own->clock().Now(), FakeClock().Now());
  own->AdvanceBy(absl::Seconds(3));
  EXPECT_EQ(own->clock().Now(), FakeClock().Now() + absl::Seconds(3));
  EXPECT_EQ(clock_.Now(), kStart);
}

TEST_F(SimEventLoopTest, PostsRunInOrderAndNeverInline) {
  std::vector<int> order;
  for (int i = 0; i < 5; ++i) loop_->Post([&order, i] { order.push_back(i); });
  EXPECT_TRUE(order.empty());
  EXPECT_EQ(loop_->pending_posts(), 5u);
  EXPECT_EQ(loop_->RunUntilIdle(), 5);
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(loop_->pending_posts(), 0u);
  EXPECT_EQ(loop_->RunUntilIdle(), 0);
  EXPECT_EQ(clock_.Now(), kStart);  // running never moves time
}

TEST_F(SimEventLoopTest, NestedPostsRunAfterThoseAlreadyQueued) {
  std::vector<std::string> order;
  loop_->Post([&] {
    order.push_back("a");
    loop_->Post([&] {
      order.push_back("a1");
      loop_->Post([&] { order.push_back("a2"); });
    });
  });
  loop_->Post([&] { order.push_back("b"); });
  EXPECT_EQ(loop_->RunOnce(), 2);  // a round runs what was queued when it began
  EXPECT_THAT(order, ElementsAre("a", "b"));
  EXPECT_EQ(loop_->pending_posts(), 1u);
  EXPECT_EQ(loop_->RunUntilIdle(), 2);
  EXPECT_THAT(order, ElementsAre("a", "b", "a1", "a2"));
}

TEST_F(SimEventLoopTest, PostsFromOtherThreadsRunOnTheLoopThreadInEachSendersOrder) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  std::vector<std::pair<int, int>> seen;  // (thread, sequence), appended on the loop thread
  std::vector<std::thread::id> ran_on;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        loop_->Post([&, t, i] {
          seen.emplace_back(t, i);
          ran_on.push_back(std::this_thread::get_id());
        });
      }
    });
  }
  for (std::thread& s : senders) s.join();
  EXPECT_EQ(loop_->pending_posts(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(loop_->RunUntilIdle(), kThreads * kPerThread);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kThreads * kPerThread));
  std::vector<int> next(kThreads, 0);
  for (const auto& [t, i] : seen) EXPECT_EQ(i, next[t]++) << "thread " << t;
  for (std::thread::id id : ran_on) EXPECT_EQ(id, std::this_thread::get_id());
}

TEST_F(SimEventLoopTest, TimersFireByDeadlineThenArmingOrderWithTheClockAtTheirDeadline) {
  std::vector<std::pair<std::string, absl::Time>> fired;
  auto record = [&](std::string name) {
    return [&, name] { fired.emplace_back(name, clock_.Now()); };
  };
  std::unique_ptr<Timer> t30 = loop_->NewTimer(), t10a = loop_->NewTimer(),
                         t10b = loop_->NewTimer(), t20 = loop_->NewTimer();
  t30->Arm(absl::Milliseconds(30), record("t30"));
  t10a->Arm(absl::Milliseconds(10), record("t10a"));
  t10b->Arm(absl::Milliseconds(10), record("t10b"));
  t20->Arm(absl::Milliseconds(20), record("t20"));
  EXPECT_EQ(loop_->pending_timers(), 4u);
  EXPECT_EQ(loop_->NextTimerDeadline(), At(10));
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(50)), 4);
  EXPECT_THAT(fired, ElementsAre(std::pair<std::string, absl::Time>("t10a", At(10)),
                                 std::pair<std::string, absl::Time>("t10b", At(10)),
                                 std::pair<std::string, absl::Time>("t20", At(20)),
                                 std::pair<std::string, absl::Time>("t30", At(30))));
  EXPECT_EQ(clock_.Now(), At(50));
  EXPECT_EQ(loop_->pending_timers(), 0u);
  EXPECT_EQ(loop_->NextTimerDeadline(), std::nullopt);
}

TEST_F(SimEventLoopTest, TimerWaitsForItsDeadlineExactly) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  int fired = 0;
  timer->Arm(absl::Milliseconds(100), [&] { ++fired; });
  EXPECT_EQ(loop_->RunUntilIdle(), 0);
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(99)), 0);
  EXPECT_EQ(fired, 0);
  EXPECT_EQ(loop_->NextTimerDeadline(), At(100));
  EXPECT_EQ(loop_->AdvanceTo(At(100)), 1);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(loop_->AdvanceBy(absl::Hours(1)), 0);  // one-shot
  EXPECT_EQ(fired, 1);
}

TEST_F(SimEventLoopTest, ZeroAndNegativeDelaysFireOnALaterRoundNotInline) {
  std::unique_ptr<Timer> zero = loop_->NewTimer(), negative = loop_->NewTimer();
  std::vector<std::string> order;
  zero->Arm(absl::ZeroDuration(), [&] { order.push_back("zero"); });
  negative->Arm(absl::Milliseconds(-5), [&] { order.push_back("negative"); });
  EXPECT_TRUE(order.empty());
  // Both are due now; the earlier-armed one first, the clock where it was.
  EXPECT_EQ(loop_->RunOnce(), 2);
  EXPECT_THAT(order, ElementsAre("zero", "negative"));
  EXPECT_EQ(clock_.Now(), kStart);
}

TEST_F(SimEventLoopTest, ZeroDelayTimerArmedInACallbackWaitsForTheNextRound) {
  std::unique_ptr<Timer> first = loop_->NewTimer(), second = loop_->NewTimer();
  std::vector<std::string> order;
  first->Arm(absl::ZeroDuration(), [&] {
    order.push_back("first");
    second->Arm(absl::ZeroDuration(), [&] { order.push_back("second"); });
    loop_->Post([&] { order.push_back("post"); });
  });
  EXPECT_EQ(loop_->RunOnce(), 1);
  EXPECT_THAT(order, ElementsAre("first"));
  EXPECT_EQ(loop_->RunOnce(), 2);  // posts come before timers within a round
  EXPECT_THAT(order, ElementsAre("first", "post", "second"));
}

TEST_F(SimEventLoopTest, RearmDropsTheEarlierCallback) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  std::vector<std::pair<std::string, absl::Time>> fired;
  timer->Arm(absl::Milliseconds(10), [&] { fired.emplace_back("old", clock_.Now()); });
  timer->Arm(absl::Milliseconds(20), [&] { fired.emplace_back("new", clock_.Now()); });
  EXPECT_EQ(loop_->pending_timers(), 1u);
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(30)), 1);
  EXPECT_THAT(fired, ElementsAre(std::pair<std::string, absl::Time>("new", At(20))));
}

TEST_F(SimEventLoopTest, TimerRearmedInItsCallbackFiresAgainWithinTheSameAdvance) {
  std::unique_ptr<Timer> tick = loop_->NewTimer();
  std::vector<absl::Time> ticks;
  std::function<void()> on_tick = [&] {
    ticks.push_back(clock_.Now());
    tick->Arm(absl::Milliseconds(10), on_tick);
  };
  tick->Arm(absl::Milliseconds(10), on_tick);
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(35)), 3);
  EXPECT_THAT(ticks, ElementsAre(At(10), At(20), At(30)));
  EXPECT_EQ(loop_->NextTimerDeadline(), At(40));
  EXPECT_EQ(clock_.Now(), At(35));
}

TEST_F(SimEventLoopTest, CancelInsideACallbackStopsATimerDueAtTheSameTime) {
  std::unique_ptr<Timer> canceller = loop_->NewTimer(), same_time = loop_->NewTimer(),
                         later = loop_->NewTimer();
  std::vector<std::string> order;
  canceller->Arm(absl::Milliseconds(10), [&] {
    order.push_back("canceller");
    same_time->Cancel();
    later->Cancel();
    canceller->Cancel();  // its own, no longer pending: a no-op
  });
  same_time->Arm(absl::Milliseconds(10), [&] { order.push_back("same_time"); });
  later->Arm(absl::Milliseconds(20), [&] { order.push_back("later"); });
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(30)), 1);
  EXPECT_THAT(order, ElementsAre("canceller"));
  EXPECT_EQ(loop_->pending_timers(), 0u);
  // A cancelled timer can be armed again.
  later->Arm(absl::Milliseconds(5), [&] { order.push_back("later again"); });
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(5)), 1);
  EXPECT_THAT(order, ElementsAre("canceller", "later again"));
}

TEST_F(SimEventLoopTest, TimerDestroyedInsideItsOwnCallbackAndAnotherPendingOne) {
  std::unique_ptr<Timer> self = loop_->NewTimer(), other = loop_->NewTimer();
  std::vector<std::string> order;
  std::string captured = "state the callback still reads";
  self->Arm(absl::Milliseconds(10), [&, captured] {
    self.reset();
    other.reset();
    order.push_back(captured);  // the callback outlives its timer
  });
  other->Arm(absl::Milliseconds(10), [&] { order.push_back("other"); });
  EXPECT_EQ(loop_->AdvanceBy(absl::Milliseconds(20)), 1);
  EXPECT_THAT(order, ElementsAre("state the callback still reads"));
  EXPECT_EQ(loop_->pending_timers(), 0u);
}

TEST_F(SimEventLoopTest, DestroyingAnArmedTimerCancelsIt) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  bool fired = false;
  timer->Arm(absl::Milliseconds(1), [&] { fired = true; });
  timer.reset();
  EXPECT_EQ(loop_->pending_timers(), 0u);
  EXPECT_EQ(loop_->AdvanceBy(absl::Seconds(1)), 0);
  EXPECT_FALSE(fired);
}

TEST_F(SimEventLoopTest, TimeNeverGoesBackwards) {
  // AdvanceTo an earlier time runs what is runnable and leaves the clock alone.
  loop_->AdvanceBy(absl::Seconds(10));
  bool ran = false;
  loop_->Post([&] { ran = true; });
  EXPECT_EQ(loop_->AdvanceTo(At(5000)), 1);
  EXPECT_TRUE(ran);
  EXPECT_EQ(clock_.Now(), At(10000));
  EXPECT_EQ(loop_->AdvanceBy(absl::Seconds(-1)), 0);
  EXPECT_EQ(loop_->RunFor(absl::Seconds(-1)), 0);
  EXPECT_EQ(clock_.Now(), At(10000));

  // Seeded random timers, re-armed from callbacks with delays from -5ms to 50ms: every
  // callback sees a clock no earlier than the previous one and equal to its own deadline.
  std::mt19937 rng(8);
  std::uniform_int_distribution<int> delay_ms(-5, 50);
  std::vector<std::unique_ptr<Timer>> timers;
  absl::Time last_seen = clock_.Now();
  int fired = 0;
  std::function<void(size_t, absl::Time)> arm = [&](size_t i, absl::Time now) {
    const int d = delay_ms(rng);
    const absl::Time deadline = now + absl::Milliseconds(d < 0 ? 0 : d);
    timers[i]->Arm(absl::Milliseconds(d), [&, i, deadline] {
      EXPECT_GE(clock_.Now(), last_seen);
      EXPECT_EQ(clock_.Now(), deadline);
      last_seen = clock_.Now();
      if (++fired < 2000) arm(i, clock_.Now());
    });
  };
  for (size_t i = 0; i < 20; ++i) {
    timers.push_back(loop_->NewTimer());
    arm(i, clock_.Now());
  }
  loop_->AdvanceBy(absl::Hours(1));
  EXPECT_GE(fired, 2000);
  EXPECT_EQ(clock_.Now(), At(10000) + absl::Hours(1));
}

TEST_F(SimEventLoopTest, RunForEndsAtTheLastDeadlineReached) {
  // A retry with doubling backoff: attempts at 0, +100ms, +300ms, +700ms, then success.
  std::unique_ptr<Timer> backoff = loop_->NewTimer();
  std::vector<absl::Time> attempts;
  absl::Duration wait = absl::Milliseconds(100);
  std::function<void()> attempt = [&] {
    attempts.push_back(clock_.Now());
    if (attempts.size() == 4) return;
    backoff->Arm(wait, attempt);
    wait *= 2;
  };
  loop_->Post(attempt);
  EXPECT_EQ(loop_->RunFor(absl::Seconds(10)), 4);
  EXPECT_THAT(attempts, ElementsAre(At(0), At(100), At(300), At(700)));
  EXPECT_EQ(clock_.Now(), At(700));  // AdvanceBy would have gone on to +10s

  // A timer beyond the horizon stays pending and the clock does not move.
  backoff->Arm(absl::Seconds(5), [] {});
  EXPECT_EQ(loop_->RunFor(absl::Seconds(1)), 0);
  EXPECT_EQ(clock_.Now(), At(700));
  EXPECT_EQ(loop_->pending_timers(), 1u);
  // An infinite horizon runs every timer.
  EXPECT_EQ(loop_->RunFor(absl::InfiniteDuration()), 1);
  EXPECT_EQ(clock_.Now(), At(5700));
}

TEST_F(SimEventLoopTest, AdvanceToInfinityFiresEveryTimerAndKeepsAFiniteClock) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  int fired = 0;
  timer->Arm(absl::Hours(48), [&] { ++fired; });
  EXPECT_EQ(loop_->AdvanceTo(absl::InfiniteFuture()), 1);
  EXPECT_EQ(fired, 1);
  EXPECT_EQ(clock_.Now(), kStart + absl::Hours(48));
}

TEST_F(SimEventLoopTest, TimeMovedByHandMakesTimersDueAtTheNextRun) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  absl::Time fired_at;
  timer->Arm(absl::Seconds(2), [&] { fired_at = clock_.Now(); });
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(loop_->RunUntilIdle(), 1);
  EXPECT_EQ(fired_at, At(3000));  // late, as on a loop that was busy
}

TEST_F(SimEventLoopTest, RunMethodsCalledFromACallbackRunNothing) {
  std::vector<int> nested;
  bool inner_ran = false;
  loop_->Post([&] {
    loop_->Post([&] { inner_ran = true; });
    nested.push_back(loop_->RunOnce());
    nested.push_back(loop_->RunUntilIdle());
    nested.push_back(loop_->AdvanceBy(absl::Seconds(1)));
    nested.push_back(loop_->RunFor(absl::Seconds(1)));
  });
  EXPECT_EQ(loop_->RunUntilIdle(), 2);
  EXPECT_THAT(nested, ElementsAre(0, 0, 0, 0));
  EXPECT_TRUE(inner_ran);
  EXPECT_EQ(clock_.Now(), kStart);
}

TEST_F(SimEventLoopTest, WatchReportsReadableForAsLongAsDataRemains) {
  SocketPair s;
  std::vector<char> got;
  std::unique_ptr<FdWatch> watch = loop_->WatchFd(s.a(), kIoRead, [&](uint32_t ready) {
    EXPECT_EQ(ready, kIoRead);
    char c;
    ASSERT_EQ(read(s.a(), &c, 1), 1);  // one byte per callback: level-triggered
    got.push_back(c);
  });
  EXPECT_EQ(loop_->active_watches(), 1u);
  EXPECT_EQ(loop_->RunUntilIdle(), 0);  // nothing to read: idle, not blocked
  ASSERT_EQ(write(s.b(), "xyz", 3), 3);
  EXPECT_EQ(loop_->RunUntilIdle(), 3);
  EXPECT_THAT(got, ElementsAre('x', 'y', 'z'));
  EXPECT_EQ(clock_.Now(), kStart);
}

TEST_F(SimEventLoopTest, WatchRoundTripOnALoopbackSocketWithTimersInterleaved) {
  // An echo exchange driven by a timer: the request goes out at +50ms, the reply is read
  // in the same AdvanceBy, and a 200ms timeout set alongside is cancelled by it.
  SocketPair s;
  std::unique_ptr<Timer> send = loop_->NewTimer(), timeout = loop_->NewTimer();
  std::unique_ptr<FdWatch> server, client;
  std::string reply;
  absl::Time replied_at;
  bool timed_out = false;
  server = loop_->WatchFd(s.b(), kIoRead, [&](uint32_t) {
    char buf[16];
    const ssize_t n = read(s.b(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    ASSERT_EQ(write(s.b(), buf, static_cast<size_t>(n)), n);
  });
  client = loop_->WatchFd(s.a(), kIoRead, [&](uint32_t) {
    char buf[16];
    const ssize_t n = read(s.a(), buf, sizeof buf);
    ASSERT_GT(n, 0);
    reply.append(buf, static_cast<size_t>(n));
    replied_at = clock_.Now();
    timeout->Cancel();
  });
  send->Arm(absl::Milliseconds(50), [&] {
    ASSERT_EQ(write(s.a(), "ping", 4), 4);
    timeout->Arm(absl::Milliseconds(200), [&] { timed_out = true; });
  });
  loop_->AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(reply, "ping");
  EXPECT_EQ(replied_at, At(50));
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(loop_->pending_timers(), 0u);
}

TEST_F(SimEventLoopTest, AlwaysWritableWatchIsDrivenByRunOnceAndParkedWithSetEvents) {
  SocketPair s;
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(s.a(), kIoWrite, [&](uint32_t ready) {
    EXPECT_EQ(ready, kIoWrite);
    if (++calls == 3) watch->SetEvents(kIoNone);
  });
  EXPECT_EQ(loop_->RunOnce(), 1);
  EXPECT_EQ(loop_->RunOnce(), 1);
  EXPECT_EQ(loop_->RunUntilIdle(), 1);  // the third call parks it, so the loop goes idle
  EXPECT_EQ(calls, 3);
  watch->SetEvents(kIoRead | kIoWrite);
  EXPECT_EQ(loop_->RunOnce(), 1);
  EXPECT_EQ(calls, 4);
}

TEST_F(SimEventLoopTest, PeerHangUpIsReportedAsReadable) {
  SocketPair s;
  uint32_t seen = kIoNone;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(s.a(), kIoRead, [&](uint32_t ready) {
    seen = ready;
    char c;
    EXPECT_EQ(read(s.a(), &c, 1), 0);  // end of stream
    watch.reset();                     // destroyed inside its own callback
  });
  s.CloseB();
  EXPECT_EQ(loop_->RunUntilIdle(), 1);
  EXPECT_TRUE(seen & kIoRead);
  EXPECT_EQ(loop_->active_watches(), 0u);
}

TEST_F(SimEventLoopTest, WatchDestroyedByAnEarlierCallbackOfTheSameRoundDoesNotRun) {
  SocketPair one, two;
  std::unique_ptr<FdWatch> first, second;
  int second_calls = 0;
  first = loop_->WatchFd(one.a(), kIoWrite, [&](uint32_t) {
    second.reset();
    first->SetEvents(kIoNone);
  });
  second = loop_->WatchFd(two.a(), kIoWrite, [&](uint32_t) { ++second_calls; });
  EXPECT_EQ(loop_->RunUntilIdle(), 1);
  EXPECT_EQ(second_calls, 0);
  EXPECT_EQ(loop_->active_watches(), 1u);
}

TEST_F(SimEventLoopTest, TimersAndWatchesOutlivingTheLoopAreInert) {
  SocketPair s;
  std::unique_ptr<Timer> armed = loop_->NewTimer(), idle = loop_->NewTimer();
  bool fired = false;
  armed->Arm(absl::Milliseconds(1), [&] { fired = true; });
  std::unique_ptr<FdWatch> watch = loop_->WatchFd(s.a(), kIoWrite, [&](uint32_t) {});
  loop_.reset();
  idle->Arm(absl::Milliseconds(1), [&] { fired = true; });
  armed->Cancel();
  watch->SetEvents(kIoRead);
  armed.reset();
  idle.reset();
  watch.reset();
  EXPECT_FALSE(fired);
}

}  // namespace
}  // namespace modeenvoy
