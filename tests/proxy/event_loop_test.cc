// tests/proxy/event_loop_test.cc: the proxy's fd watch keeps the EventLoop contract.
#include "examples/proxy/event_loop.h"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <boost/asio/io_context.hpp>

#include "gtest/gtest.h"
#include "modeenvoy/gateway/upstream.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy::proxy {
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

void RunAWhile(boost::asio::io_context& io) {
  io.restart();
  io.run_for(std::chrono::milliseconds(20));
}

class ProxyEventLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = NewProxyEventLoop(io_);
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    loop_.reset();
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  boost::asio::io_context io_;
  std::unique_ptr<EventLoop> loop_;
  int fds_[2] = {-1, -1};
};

TEST_F(ProxyEventLoopTest, PostAndTimersComeFromTheAsioLoop) {
  bool posted = false, fired = false;
  loop_->Post([&] { posted = true; });
  auto t = loop_->NewTimer();
  t->Arm(absl::Milliseconds(1), [&] { fired = true; });
  EXPECT_FALSE(posted);
  EXPECT_TRUE(RunUntil(io_, [&] { return posted && fired; }));
}

TEST_F(ProxyEventLoopTest, ReadIsLevelTriggered) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  uint32_t seen = 0;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t ready) {
    ++calls;
    seen |= ready;
  });
  EXPECT_EQ(calls, 0);  // never inline
  // The byte is never read: the callback keeps coming.
  EXPECT_TRUE(RunUntil(io_, [&] { return calls >= 3; }));
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoRead));
}

TEST_F(ProxyEventLoopTest, WakesForDataArrivingLaterAndStopsWhenDrained) {
  int calls = 0;
  std::string got;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t ready) {
    ASSERT_TRUE(ready & kIoRead);
    char buf[16];
    ssize_t n = ::read(fds_[0], buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    ++calls;
  });
  RunAWhile(io_);
  EXPECT_EQ(calls, 0);
  auto writer = loop_->NewTimer();
  writer->Arm(absl::Milliseconds(5), [&] { ASSERT_EQ(::write(fds_[1], "hello", 5), 5); });
  EXPECT_TRUE(RunUntil(io_, [&] { return got == "hello"; }));
  int after = calls;
  RunAWhile(io_);
  EXPECT_EQ(calls, after);
  ASSERT_EQ(::write(fds_[1], "!", 1), 1);
  EXPECT_TRUE(RunUntil(io_, [&] { return got == "hello!"; }));
}

TEST_F(ProxyEventLoopTest, DataThatArrivedWhilePausedIsReportedOnResume) {
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) {
    ++calls;
    watch->SetEvents(kIoNone);
  });
  watch->SetEvents(kIoNone);
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  RunAWhile(io_);
  EXPECT_EQ(calls, 0);
  watch->SetEvents(kIoRead);  // the edge is long gone: the re-armed wait still sees the level
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  RunAWhile(io_);
  EXPECT_EQ(calls, 1);
  watch->SetEvents(kIoRead);
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 2; }));
}

TEST_F(ProxyEventLoopTest, ReportsWriteReadinessAndBothDirectionsSeparately) {
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
  RunAWhile(io_);
  seen = 0;
  RunAWhile(io_);
  EXPECT_EQ(seen, static_cast<uint32_t>(kIoRead));
}

TEST_F(ProxyEventLoopTest, DestroyedWatchNeverCallsBackAndLeavesFdOpen) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  auto watch = loop_->WatchFd(fds_[0], kIoRead, [&](uint32_t) { ++calls; });
  watch.reset();
  RunAWhile(io_);
  EXPECT_EQ(calls, 0);
  char c;
  EXPECT_EQ(::read(fds_[0], &c, 1), 1);  // still open and owned by us
}

TEST_F(ProxyEventLoopTest, CallbackMayDestroyItsWatch) {
  ASSERT_EQ(::write(fds_[1], "x", 1), 1);
  int calls = 0;
  std::unique_ptr<FdWatch> watch;
  watch = loop_->WatchFd(fds_[0], kIoRead | kIoWrite, [&](uint32_t) {
    ++calls;
    watch.reset();
  });
  EXPECT_TRUE(RunUntil(io_, [&] { return calls == 1; }));
  RunAWhile(io_);
  EXPECT_EQ(calls, 1);
}

TEST_F(ProxyEventLoopTest, PeerCloseIsReportedAsReadable) {
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

TEST_F(ProxyEventLoopTest, UnwatchableDescriptorIsReportedAsError) {
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

// The libcurl client keeps a pooled connection's watch between calls. A socket curl closes
// must take its watch along: the next socket usually gets the same descriptor number, and
// a stale epoll-backed watch would never report it ready.
TEST_F(ProxyEventLoopTest, CurlClientReplacesConnectionsTheServerClosed) {
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
}  // namespace modeenvoy::proxy
