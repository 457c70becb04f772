// tests/gateway/curl_upstream_test.cc: the libcurl multi client against a loopback server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/upstream.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;
using gateway_testing::TestConnection;
using gateway_testing::TestHttpServer;
using gateway_testing::UnusedPort;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class Recorder : public UpstreamHandler {
 public:
  void OnHeaders(int s, const HttpHeaders& h) override {
    ++header_calls;
    status = s;
    headers = h;
    if (on_headers) on_headers();
  }
  void OnData(std::string_view chunk) override {
    EXPECT_FALSE(result.has_value()) << "OnData after OnComplete";
    chunks.emplace_back(chunk);
    body.append(chunk);
    if (on_data) on_data(chunk);
  }
  void OnComplete(absl::Status s) override {
    EXPECT_FALSE(result.has_value()) << "OnComplete twice";
    result = std::move(s);
  }

  int header_calls = 0;
  int status = 0;
  HttpHeaders headers;
  std::vector<std::string> chunks;
  std::string body;
  std::optional<absl::Status> result;
  std::function<void()> on_headers;
  std::function<void(std::string_view)> on_data;
};

// A server that starts a chunked reply, sends one chunk, then reports whether the client
// closed the connection ("client closed") or kept it ("client stayed").
void OneChunkThenReportClose(TestConnection& c) {
  c.StartChunked(200, {});
  c.SendChunk("a");
  c.Signal(c.WaitForPeerClose() ? "client closed" : "client stayed");
}

class CurlUpstreamClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  static UpstreamRequest Post(std::string url, std::string body = R"({"x":1})") {
    UpstreamRequest r;
    r.url = std::move(url);
    r.body = std::move(body);
    r.headers = {{"content-type", "application/json"}, {"x-test", "yes"}};
    return r;
  }

  bool RunUntil(std::function<bool()> done) {
    return loop_->RunUntil([&] { return done(); }, kTestWait);
  }
  // Runs the loop for a while without a goal (to show that nothing happens).
  void RunIdle(absl::Duration d = absl::Milliseconds(50)) {
    loop_->RunUntil([] { return false; }, d);
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
};

TEST_F(CurlUpstreamClientTest, WholeBodyWithContentLength) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(200, {{"content-type", "application/json"}, {"x-upstream", "1"}},
                   R"({"ok":true})");
  });
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/v1/chat/completions"), R"({"q":"hi"})"), &rec);
  EXPECT_FALSE(rec.result.has_value());  // never inline
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok()) << *rec.result;
  EXPECT_EQ(rec.status, 200);
  EXPECT_EQ(FindHeader(rec.headers, "X-Upstream"), "1");
  EXPECT_EQ(rec.body, R"({"ok":true})");
  EXPECT_EQ(call->stats().body_bytes, rec.body.size());
  EXPECT_EQ(call->stats().new_connections, 1);

  std::vector<gateway_testing::ReceivedRequest> got = server.requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].path, "/v1/chat/completions");
  EXPECT_EQ(got[0].body, R"({"q":"hi"})");
  EXPECT_EQ(FindHeader(got[0].headers, "x-test"), "yes");
  EXPECT_EQ(FindHeader(got[0].headers, "content-type"), "application/json");
  EXPECT_EQ(FindHeader(got[0].headers, "user-agent"), "modeenvoy/0.1");
  EXPECT_FALSE(FindHeader(got[0].headers, "expect").has_value());
}

TEST_F(CurlUpstreamClientTest, LargeBodyIsSentWithoutExpectContinue) {
  TestHttpServer server([](TestConnection& c) { c.SendResponse(200, {}, c.request().body); });
  Recorder rec;
  std::string big(200000, 'a');
  auto call = client_->Start(Post(server.Url("/echo"), big), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok()) << *rec.result;
  EXPECT_EQ(rec.body, big);
}

TEST_F(CurlUpstreamClientTest, ChunkedStreamDeliversEachChunkAsItArrives) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk("data: 1\n\n");
    c.WaitGate("second");
    c.SendChunk("data: 2\n\n");
    c.WaitGate("end");
    c.EndChunked();
  });
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  EXPECT_EQ(rec.header_calls, 1);
  EXPECT_EQ(rec.chunks[0], "data: 1\n\n");
  EXPECT_FALSE(rec.result.has_value());
  server.OpenGate("second");
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 2; }));
  EXPECT_EQ(rec.chunks[1], "data: 2\n\n");
  EXPECT_FALSE(rec.result.has_value());
  server.OpenGate("end");
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok());
  EXPECT_THAT(rec.chunks, ElementsAre("data: 1\n\n", "data: 2\n\n"));
}

TEST_F(CurlUpstreamClientTest, SequentialCallsReuseOneConnection) {
  TestHttpServer server([](TestConnection& c) { c.SendResponse(200, {}, "ok"); });
  for (int i = 0; i < 3; ++i) {
    Recorder rec;
    auto call = client_->Start(Post(server.Url("/r")), &rec);
    ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
    ASSERT_TRUE(rec.result->ok()) << *rec.result;
    // CURLINFO_NUM_CONNECTS: only the first call had to connect.
    EXPECT_EQ(call->stats().new_connections, i == 0 ? 1 : 0) << "call " << i;
  }
  EXPECT_EQ(server.connections_accepted(), 1);
  std::vector<gateway_testing::ReceivedRequest> got = server.requests();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].connection, 1);
}

// Pooled connections keep their loop watch between calls; a socket curl closes must take
// its watch along, or the next socket, which usually gets the same descriptor number, would
// never be reported ready.
TEST_F(CurlUpstreamClientTest, ConnectionsClosedByTheServerAreReplaced) {
  TestHttpServer server([](TestConnection& c) {
    if (c.request().path == "/announced") {
      c.SendResponse(200, {{"connection", "close"}}, "ok");  // curl closes at once
    } else {
      c.SendResponse(200, {}, "ok");  // curl finds it dead when it tries to reuse it
    }
    c.Close();
  });
  for (int i = 0; i < 6; ++i) {
    Recorder rec;
    auto call = client_->Start(Post(server.Url(i % 2 == 0 ? "/announced" : "/silent")), &rec);
    ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); })) << "call " << i;
    ASSERT_TRUE(rec.result->ok()) << "call " << i << ": " << *rec.result;
    EXPECT_EQ(rec.body, "ok");
  }
  EXPECT_EQ(server.connections_accepted(), 6);
}

TEST_F(CurlUpstreamClientTest, ConnectionRefusedIsUnavailableWithCurlsText) {
  Recorder rec;
  auto call = client_->Start(
      Post(absl::StrFormat("http://127.0.0.1:%d/v1/chat/completions", UnusedPort())), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(rec.result->message(), HasSubstr("upstream request failed: Failed to connect"));
  EXPECT_FALSE(IsConnectionReset(*rec.result)) << "no connection was ever made";
  EXPECT_EQ(rec.header_calls, 0);
}

// The peer took the request and reset the connection before answering: a reset, not a
// connect failure (the router treats the two classes apart: "connect" vs "reset").
TEST_F(CurlUpstreamClientTest, ServerResetBeforeAnsweringIsAConnectionReset) {
  TestHttpServer server([](TestConnection& c) { c.Reset(); });
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/v1/chat/completions")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kUnavailable) << *rec.result;
  EXPECT_TRUE(IsConnectionReset(*rec.result)) << *rec.result;
  EXPECT_EQ(rec.header_calls, 0);
}

TEST_F(CurlUpstreamClientTest, FirstByteTimeout) {
  TestHttpServer server([](TestConnection& c) { c.WaitGate("never"); });
  Recorder rec;
  UpstreamRequest req = Post(server.Url("/slow"));
  req.timeouts.first_byte = absl::Milliseconds(100);
  auto call = client_->Start(std::move(req), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(rec.result->message(), "upstream first byte timeout after 100ms");
}

// A listener whose accept queue is full: the kernel drops further SYNs, so a connect hangs.
class FullListener {
 public:
  FullListener() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listen_fd_, 0);
    socklen_t len = sizeof addr;
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    for (int& fd : fillers_) {  // enough to fill the queue whatever its rounding
      fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
  }
  ~FullListener() {
    for (int fd : fillers_) close(fd);
    close(listen_fd_);
  }
  uint16_t port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int fillers_[4] = {-1, -1, -1, -1};
  uint16_t port_ = 0;
};

TEST_F(CurlUpstreamClientTest, ConnectTimeout) {
  FullListener listener;
  Recorder rec;
  UpstreamRequest req = Post(absl::StrFormat("http://127.0.0.1:%d/x", listener.port()));
  req.timeouts.connect = absl::Milliseconds(100);
  auto call = client_->Start(std::move(req), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kDeadlineExceeded) << *rec.result;
  EXPECT_THAT(rec.result->message(), HasSubstr("upstream connect timeout after 100ms"));
}

TEST_F(CurlUpstreamClientTest, IdleTimeoutBetweenChunks) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("a");
    c.WaitGate("never");
  });
  Recorder rec;
  UpstreamRequest req = Post(server.Url("/stall"));
  req.timeouts.idle = absl::Milliseconds(100);
  auto call = client_->Start(std::move(req), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(rec.result->message(), "upstream idle timeout after 100ms");
  EXPECT_THAT(rec.chunks, ElementsAre("a"));
}

TEST_F(CurlUpstreamClientTest, TotalTimeout) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("a");
    c.WaitGate("never");
  });
  Recorder rec;
  UpstreamRequest req = Post(server.Url("/stall"));
  req.timeouts.idle = absl::InfiniteDuration();
  req.timeouts.total = absl::Milliseconds(150);
  auto call = client_->Start(std::move(req), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(rec.result->message(), HasSubstr("upstream total timeout after 150ms"));
}

TEST_F(CurlUpstreamClientTest, CancelMidStreamClosesTheConnectionAndSilencesTheHandler) {
  TestHttpServer server(OneChunkThenReportClose);
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  call.reset();
  EXPECT_TRUE(server.WaitForEvent("client closed"));
  RunIdle();
  EXPECT_FALSE(rec.result.has_value());
  EXPECT_EQ(rec.chunks.size(), 1u);
}

TEST_F(CurlUpstreamClientTest, HandleDestroyedInsideOnHeadersStopsEverything) {
  TestHttpServer server(OneChunkThenReportClose);
  Recorder rec;
  std::unique_ptr<UpstreamCall> call;
  rec.on_headers = [&] { call.reset(); };
  call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return call == nullptr; }));
  EXPECT_TRUE(server.WaitForEvent("client closed"));
  RunIdle();
  EXPECT_TRUE(rec.chunks.empty());
  EXPECT_FALSE(rec.result.has_value());
}

TEST_F(CurlUpstreamClientTest, PauseHoldsDataUntilResume) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("1");
    c.WaitGate("send 2");
    c.SendChunk("2");
    c.Signal("sent 2");
    c.WaitGate("end");
    c.EndChunked();
  });
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  call->Pause();
  server.OpenGate("send 2");
  ASSERT_TRUE(server.WaitForEvent("sent 2"));
  RunIdle();
  EXPECT_EQ(rec.chunks.size(), 1u);  // "2" is on the socket, but the consumer is full
  call->Resume();
  EXPECT_EQ(rec.chunks.size(), 1u);  // never inline
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 2; }));
  EXPECT_EQ(rec.chunks[1], "2");
  server.OpenGate("end");
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok());
}

TEST_F(CurlUpstreamClientTest, PauseInsideOnDataHoldsTheNextChunk) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("1");
    c.WaitGate("send 2");
    c.SendChunk("2");
    c.EndChunked();
    c.Signal("sent all");
  });
  Recorder rec;
  std::unique_ptr<UpstreamCall> call;
  rec.on_data = [&](std::string_view) { call->Pause(); };  // like a full client socket
  call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  server.OpenGate("send 2");
  ASSERT_TRUE(server.WaitForEvent("sent all"));
  RunIdle();
  EXPECT_EQ(rec.chunks.size(), 1u);
  EXPECT_FALSE(rec.result.has_value());
  rec.on_data = nullptr;
  call->Resume();
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok());
  EXPECT_EQ(rec.body, "12");
}

TEST_F(CurlUpstreamClientTest, PausedCallDoesNotHitTheIdleTimeout) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("1");
    c.WaitGate("send 2");
    c.SendChunk("2");
    c.EndChunked();
  });
  Recorder rec;
  UpstreamRequest req = Post(server.Url("/stream"));
  req.timeouts.idle = absl::Milliseconds(300);
  auto call = client_->Start(std::move(req), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  call->Pause();
  RunIdle(absl::Milliseconds(600));  // longer than the idle limit, but the consumer is the one holding things up
  EXPECT_FALSE(rec.result.has_value());
  server.OpenGate("send 2");
  call->Resume();
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_TRUE(rec.result->ok()) << *rec.result;
  EXPECT_EQ(rec.body, "12");
}

TEST_F(CurlUpstreamClientTest, ServerResetMidStreamIsUnavailable) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {});
    c.SendChunk("a");
    c.Reset();
  });
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(IsConnectionReset(*rec.result)) << *rec.result;
  EXPECT_THAT(rec.chunks, ElementsAre("a"));
}

TEST(ConnectionResetMarkTest, MarksOnlyUnavailableAndSurvivesAMessageChange) {
  absl::Status reset = MarkConnectionReset(absl::UnavailableError("Recv failure"));
  EXPECT_TRUE(IsConnectionReset(reset));
  EXPECT_EQ(reset.message(), "Recv failure");
  EXPECT_FALSE(IsConnectionReset(absl::UnavailableError("Recv failure")));
  // Other codes are left as they are: a timeout stays a timeout.
  EXPECT_FALSE(IsConnectionReset(MarkConnectionReset(absl::DeadlineExceededError("t"))));
  EXPECT_TRUE(MarkConnectionReset(absl::OkStatus()).ok());
}

TEST_F(CurlUpstreamClientTest, MalformedUrlFailsAsynchronously) {
  Recorder rec;
  auto call = client_->Start(Post("ftp://example.com/x"), &rec);
  EXPECT_FALSE(rec.result.has_value());
  ASSERT_TRUE(RunUntil([&] { return rec.result.has_value(); }));
  EXPECT_EQ(rec.result->code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CurlUpstreamClientTest, DestroyingTheClientAbortsCallsWithoutCallbacks) {
  TestHttpServer server(OneChunkThenReportClose);
  Recorder rec;
  auto call = client_->Start(Post(server.Url("/stream")), &rec);
  ASSERT_TRUE(RunUntil([&] { return rec.chunks.size() == 1; }));
  client_.reset();
  EXPECT_TRUE(server.WaitForEvent("client closed"));
  call->Pause();  // inert
  call.reset();   // no-op
  RunIdle();
  EXPECT_FALSE(rec.result.has_value());
}

TEST_F(CurlUpstreamClientTest, RejectsNullLoop) {
  EXPECT_EQ(NewCurlUpstreamClient(nullptr).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
