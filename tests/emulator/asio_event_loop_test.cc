#include "examples/common/asio_event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)
#include <vector>

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "modeenvoy/gateway/upstream.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy::examples {
namespace {

// Runs the io_context until `done()` or a generous bound; never asserts on timing.
template <typename Pred>
bool RunUntil(boost::asio::io_context& io, Pred done,
              std::chrono::milliseconds bound = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(5));
  }
  return done();
}

class AsioEventLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = NewAsioEventLoop(io_);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  boost::asio::io_context io_;
  std::unique_ptr<EventLoop> loop_;
  int fds_[2] = {-1, -1};
};

TEST_F(AsioEventLoopTest, PostRunsOnLoopNeverInline) {
  bool ran = false;
  loop_->Post([&] { ran = true; });
  EXPECT_FALSE(ran);
  EXPECT_TRUE(RunUntil(io_, [&] { return ran; }));
}

TEST_F(AsioEventLoopTest, PostAcceptsMoveOnlyCallbacks) {
  auto value = std::make_unique<int>(7);
  int seen = 0;
  loop_->Post([&seen, v = std::move(value)] { seen = *v; });
  EXPECT_TRUE(RunUntil(io_, [&] { return seen == 7; }));
}

TEST_F(AsioEventLoopTest, TimersFireInDeadlineOrder) {
  std::vector<int> order;
  auto t1 = loop_->NewTimer();
  auto t2 = loop_->NewTimer();
  auto t3 = loop_->NewTimer();
  t3->Arm(absl::Milliseconds(30), [&] { order.push_back(3); });
  t1->Arm(absl::Milliseconds(1), [&] { order.push_back(1); });
  t2->Arm(absl::Milliseconds(15), [&] { order.push_back(2); });
  EXPECT_TRUE(RunUntil(io_, [&] { return order.size() == 3; }));
  EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(AsioEventLoopTest, ZeroDelayFiresOnNextIterationNotInline) {
  bool fired = false;
  auto t = loop_->NewTimer();
  t->Arm(absl::ZeroDuration(), [&] { fired = true; });
  EXPECT_FALSE(fired);
  EXPECT_TRUE(RunUntil(io_, [&] { return fired; }));
}

TEST_F(AsioEventLoopTest, CancelDropsCallback) {
  bool fired = false, sentinel = false;
  auto t = loop_->NewTimer();
  auto s = loop_->NewTimer();
  t->Arm(absl::Milliseconds(1), [&] { fired = true; });
  t->Cancel();
  s->Arm(absl::Milliseconds(20), [&] { sentinel = true; });
  EXPECT_TRUE(RunUntil(io_, [&] { return sentinel; }));
  EXPECT_FALSE(fired);
}

TEST_F(AsioEventLoopTest, RearmReplacesPendingCallback) {
  int which = 0;
  auto t = loop_->NewTimer();
  t->Arm(absl::Milliseconds(1), [&] { which = 1; });
  t->Arm(absl::Milliseconds(2), [&] { which = 2; });
  EXPECT_TRUE(RunUntil(io_, [&] { return which != 0; }));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(which, 2);
}

TEST_F(AsioEventLoopTest, TimerCanRearmItselfFromItsCallback) {
  int count = 0;
  auto t = loop_->NewTimer();
  std::function<void()> tick = [&] {
    if (++count < 3) t->Arm(absl::Milliseconds(1), tick);
  };
  t->Arm(absl::Milliseconds(1), tick);
  EXPECT_TRUE(RunUntil(io_, [&] { return count == 3; }));
}

TEST_F(AsioEventLoopTest, DestroyedTimerNeverCallsBack) {
  bool fired = false, sentinel = false;
  auto t = loop_->NewTimer();
  t->Arm(absl::ZeroDuration(), [&] { fired = true; });
  t.reset();
  auto s = loop_->NewTimer();
  s->Arm(absl::Milliseconds(10), [&] { sentinel = true; });
  EXPECT_TRUE(RunUntil(io_, [&] { return sentinel; }));
  EXPECT_FALSE(fired);
}

TEST_F(AsioEventLoopTest, TimerDestroyedAfterExpiryButBeforeItsTurnNeverCallsBack) {
  // Both expire in the same loop turn: whichever runs first destroys the other, whose
  // completion is then already queued. Exactly one callback may run.
  int fired = 0;
  std::unique_ptr<Timer> a = loop_->NewTimer();
  std::unique_ptr<Timer> b = loop_->NewTimer();
  a->Arm(absl::Milliseconds(2), [&] {
    ++fired;
    b.reset();
  });
  b->Arm(absl::Milliseconds(2), [&] {
    ++fired;
    a.reset();
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return fired >= 1; }));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(fired, 1);
}

TEST_F(AsioEventLoopTest, CallbackMayDestroyItsOwnTimer) {
  bool fired = false;
  std::unique_ptr<Timer> t = loop_->NewTimer();
  t->Arm(absl::Milliseconds(1), [&] {
    fired = true;
    t.reset();
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return fired; }));
  EXPECT_EQ(t, nullptr);
}

TEST_F(AsioEventLoopTest, FdWatchReportsReadLevelTriggered) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  uint32_t seen = 0;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t ready) {
    ++calls;
    seen |= ready;
  });
  EXPECT_EQ(calls, 0);  // never inline
  // The byte is never read: level-triggered means the callback keeps coming.
  EXPECT_TRUE(RunUntil(io_, [&] { return calls >= 3; }));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoRead));
}

TEST_F(AsioEventLoopTest, FdWatchWakesForDataArrivingLater) {
  int calls = 0;
  std::string got;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t ready) {
    ASSERT_TRUE(ready & kIoRead);
    char buf[16];
    ssize_t n = ::read(fds_[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    ++calls;
  });
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 0);
  auto writer = loop_->NewTimer();
  writer->Arm(absl::Milliseconds(5), [&] { ASSERT_EQ(::write(fds_[1], "hello", 5), 5); });
  EXPECT_TRUE(RunUntil(io_, [&] { return got == "hello"; }));
  // Drained: no more callbacks until new data.
  int after = calls;
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, after);
  ASSERT_EQ(::write(fds_[1], "!", 1), 1);
  EXPECT_TRUE(RunUntil(io_, [&] { return got == "hello!"; }));
}

TEST_F(AsioEventLoopTest, SetEventsNonePausesAndResumeReportsAgain) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) {
    ++calls;
    watch->SetEvents(kIoNone);
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 1);  // paused although the byte is still unread
  watch->SetEvents(kIoRead);
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 2; }));
}

TEST_F(AsioEventLoopTest, FdWatchReportsWriteReadiness) {
  uint32_t seen = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoWrite, [&](uint32_t ready) {
    seen = ready;
    watch->SetEvents(kIoNone);
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return seen != 0; }));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoWrite));
}

TEST_F(AsioEventLoopTest, DestroyedWatchNeverCallsBackAndLeavesFdOpen) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) { ++calls; });
  watch.reset();
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 0);
  char c;
  EXPECT_EQ(::read(fds_[0], &c, 1), 1);  // still open and owned by us
}

TEST_F(AsioEventLoopTest, CallbackMayDestroyItsWatch) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) {
    ++calls;
    watch.reset();
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 1);
}

TEST_F(AsioEventLoopTest, PeerCloseIsReportedAsReadable) {
  uint32_t seen = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t ready) {
    seen = ready;
    watch->SetEvents(kIoNone);
  });
  ::shutdown(fds_[1], SHUT_RDWR);
  EXPECT_TRUE(RunUntil(io_, [&] { return seen != 0; }));
  EXPECT_TRUE(seen & kIoRead);
  char c;
  EXPECT_EQ(::read(fds_[0], &c, 1), 0);  // EOF
}

TEST_F(AsioEventLoopTest, DataThatArrivedWhilePausedIsReportedOnResume) {
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) {
    ++calls;
    watch->SetEvents(kIoNone);
  });
  watch->SetEvents(kIoNone);
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 0);
  watch->SetEvents(kIoRead);  // the edge is long gone: the re-armed wait still sees the level
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(calls, 1);
  watch->SetEvents(kIoRead);
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 2; }));
}

TEST_F(AsioEventLoopTest, ReportsWriteReadinessAndBothDirectionsSeparately) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  uint32_t seen = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoWrite, [&](uint32_t ready) { seen |= ready; });
  EXPECT_TRUE(RunUntil(io_, [&] { return seen != 0; }));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoWrite));
  watch->SetEvents(kIoRead | kIoWrite);  // adding read keeps the write wait
  EXPECT_TRUE(RunUntil(io_, [&] { return seen == (kIoRead | kIoWrite); }));
  seen = 0;
  watch->SetEvents(kIoRead);  // dropping write
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  seen = 0;
  io_.restart();
  io_.run_for(std::chrono::milliseconds(20));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoRead));
}

TEST_F(AsioEventLoopTest, UnwatchableDescriptorIsReportedAsError) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  ::close(pipe_fds[1]);
  int closed = pipe_fds[0];
  ::close(closed);  // a descriptor number that is not open
  uint32_t seen = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(closed, kIoRead, [&](uint32_t ready) {
    seen = ready;
    watch->SetEvents(kIoNone);
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return seen != 0; }));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoError));
}

// A socket curl closes must take its watch along: the next socket usually gets the same
// descriptor number, and a stale epoll-backed watch would never report it ready.

// A socket curl closes must take its watch along: the next socket usually gets the same
// descriptor number, and a stale epoll-backed watch would never report it ready.
TEST_F(AsioEventLoopTest, CurlClientReplacesConnectionsTheServerClosed) {
  gateway_testing::TestHttpServer server([](gateway_testing::TestConnection& c) {
    if (c.request().path == "/announced") {
      c.SendResponse(200, {{"connection", "close"}}, "ok");  // curl closes at once
    } else {
      c.SendResponse(200, {}, "ok");  // curl finds it dead when it tries to reuse it
    }
    c.Close();
  });
  struct Handler : UpstreamHandler {
    void OnHeaders(int, const HttpHeaders&) override {}
    void OnData(std::string_view chunk) override { body.append(chunk); }
    void OnComplete(absl::Status s) override { result = std::move(s); }
    std::string body;
    std::optional<absl::Status> result;
  };
  absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < 6; ++i) {
    Handler h;
    UpstreamRequest req;
    req.url = server.Url(i % 2 == 0 ? "/announced" : "/silent");
    req.body = "{}";
    req.headers = {{"content-type", "application/json"}};
    std::unique_ptr<UpstreamCall> call = (*client)->Start(std::move(req), &h);
    ASSERT_TRUE(RunUntil(io_, [&] { return h.result.has_value(); })) << "call " << i;
    EXPECT_TRUE(h.result->ok()) << "call " << i << ": " << *h.result;
    EXPECT_EQ(h.body, "ok");
  }
  EXPECT_EQ(server.connections_accepted(), 6);
}

}  // namespace
}  // namespace modeenvoy::examples
