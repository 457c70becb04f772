// tests/gateway/poll_event_loop_test.cc
#include "modeenvoy/gateway/poll_event_loop.h"

#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;

class PollEventLoopTest : public ::testing::Test {
 protected:
  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
};

TEST_F(PollEventLoopTest, PostedTaskRunsOnLaterIterationNotInline) {
  bool ran = false;
  loop_->Post([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_TRUE(loop_->RunUntil([&] { return ran; }, kTestWait));
}

TEST_F(PollEventLoopTest, PostFromAnotherThreadWakesTheLoop) {
  std::atomic<bool> ran{false};
  std::thread poster([&] { loop_->Post([&] { ran = true; }); });
  EXPECT_TRUE(loop_->RunUntil([&] { return ran.load(); }, kTestWait));
  poster.join();
}

TEST_F(PollEventLoopTest, TimerFiresOnceAndOnlyOnce) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  int fired = 0;
  timer->Arm(absl::Milliseconds(1), [&] { ++fired; });
  EXPECT_TRUE(loop_->RunUntil([&] { return fired > 0; }, kTestWait));
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(fired, 1);
}

TEST_F(PollEventLoopTest, RearmReplacesThePendingCallback) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  int first = 0, second = 0;
  timer->Arm(absl::ZeroDuration(), [&] { ++first; });
  timer->Arm(absl::ZeroDuration(), [&] { ++second; });
  EXPECT_TRUE(loop_->RunUntil([&] { return second > 0; }, kTestWait));
  EXPECT_EQ(first, 0);
}

TEST_F(PollEventLoopTest, CancelledOrDestroyedTimerNeverFires) {
  std::unique_ptr<Timer> cancelled = loop_->NewTimer();
  std::unique_ptr<Timer> destroyed = loop_->NewTimer();
  std::unique_ptr<Timer> witness = loop_->NewTimer();
  bool bad = false, done = false;
  cancelled->Arm(absl::ZeroDuration(), [&] { bad = true; });
  destroyed->Arm(absl::ZeroDuration(), [&] { bad = true; });
  witness->Arm(absl::Milliseconds(2), [&] { done = true; });
  cancelled->Cancel();
  destroyed.reset();
  EXPECT_TRUE(loop_->RunUntil([&] { return done; }, kTestWait));
  EXPECT_FALSE(bad);
}

TEST_F(PollEventLoopTest, TimerArmedByATimerCallbackWaitsForTheNextIteration) {
  std::unique_ptr<Timer> timer = loop_->NewTimer();
  int fired = 0;
  std::function<void()> rearm = [&] {
    ++fired;
    timer->Arm(absl::ZeroDuration(), rearm);
  };
  timer->Arm(absl::ZeroDuration(), rearm);
  loop_->RunUntil([&] { return fired > 0; }, kTestWait);
  int before = fired;
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(fired, before + 1);  // one per iteration, no spinning inside RunOnce
}

TEST_F(PollEventLoopTest, WatchReportsReadableAndMayDestroyItselfInItsCallback) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  std::unique_ptr<FdWatch> watch;
  uint32_t seen = kIoNone;
  watch = loop_->WatchFd(fds[0], kIoRead, [&](uint32_t ready) {
    seen = ready;
    watch.reset();
  });
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  EXPECT_TRUE(loop_->RunUntil([&] { return watch == nullptr; }, kTestWait));
  EXPECT_TRUE(seen & kIoRead);
  close(fds[0]);
  close(fds[1]);
}

TEST_F(PollEventLoopTest, PausedWatchReportsNothing) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  int calls = 0;
  std::unique_ptr<FdWatch> watch = loop_->WatchFd(fds[0], kIoRead, [&](uint32_t) { ++calls; });
  watch->SetEvents(kIoNone);
  ASSERT_EQ(write(fds[1], "x", 1), 1);
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_EQ(calls, 0);
  watch->SetEvents(kIoRead);
  EXPECT_TRUE(loop_->RunUntil([&] { return calls > 0; }, kTestWait));
  watch.reset();
  close(fds[0]);
  close(fds[1]);
}

TEST_F(PollEventLoopTest, StopEndsRun) {
  loop_->Post([&] { loop_->Stop(); });
  loop_->Run();  // returns
  SUCCEED();
}

}  // namespace
}  // namespace modeenvoy
