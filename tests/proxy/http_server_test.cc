#include "examples/proxy/http_server.h"

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace modeenvoy::proxy {
namespace {

namespace asio = boost::asio;

// Raw blocking client with a receive timeout, so a test never hangs.
class RawClient {
 public:
  // With `connect` false only the socket is made; Connect() later needs no new descriptor.
  explicit RawClient(uint16_t port, bool connect = true) : port_(port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (connect) Connect();
  }
  ~RawClient() { Close(); }
  bool Connect() {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port_);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    return connected_;
  }
  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Closes with a reset (RST) instead of an orderly FIN.
  void Reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    Close();
  }
  // Half-close: no more bytes from us; the server can still answer.
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  // Sends `bytes` one at a time, `gap` apart, and stops early once the server sends
  // anything or closes. Returns true if it did (the server cut the trickle short).
  bool Trickle(std::string_view bytes, std::chrono::milliseconds gap) {
    for (char c : bytes) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(gap.count())) > 0) return true;
      if (::send(fd_, &c, 1, MSG_NOSIGNAL) != 1) return true;
    }
    return false;
  }
  void Send(std::string_view bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // Reads until `pred(received)` holds, EOF, or 10 s pass. Returns what was read.
  std::string ReadUntil(const std::function<bool(const std::string&)>& pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!pred(buffer_) && !eof_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        eof_ = true;
        break;
      }
      buffer_.append(buf, static_cast<size_t>(n));
    }
    return buffer_;
  }
  std::string ReadToEof() {
    return ReadUntil([](const std::string&) { return false; });
  }
  bool eof() const { return eof_; }
  void Consume(size_t n) { buffer_.erase(0, n); }

 private:
  uint16_t port_;
  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string buffer_;
};

bool HasCompleteResponse(const std::string& s) {
  size_t head_end = s.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  std::string head = s.substr(0, head_end);
  size_t cl = head.find("Content-Length: ");
  if (cl != std::string::npos) {
    size_t len = 0;
    std::string digits = head.substr(cl + 16, head.find("\r\n", cl) - cl - 16);
    if (!absl::SimpleAtoi(digits, &len)) return false;
    return s.size() >= head_end + 4 + len;
  }
  return s.find("\r\n0\r\n\r\n", head_end) != std::string::npos;
}

// Lowers this process's descriptor limit and takes every descriptor left below it, so that
// the server's accept() fails with EMFILE; Release() (or destruction) gives them back.
class DescriptorExhaustion {
 public:
  DescriptorExhaustion() {
    ::getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit low = saved_;
    low.rlim_cur = std::min<rlim_t>(saved_.rlim_cur, 512);  // keeps the filling cheap
    ::setrlimit(RLIMIT_NOFILE, &low);
    fds_.reserve(512);
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        exhausted_ = errno == EMFILE;
        break;
      }
      fds_.push_back(fd);
    }
  }
  ~DescriptorExhaustion() { Release(); }
  bool exhausted() const { return exhausted_; }
  void Release() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }

 private:
  rlimit saved_{};
  std::vector<int> fds_;
  bool exhausted_ = false;
};

// A request the test controls by hand.
class ManualRequest : public ActiveRequest {
 public:
  explicit ManualRequest(ResponseSink* sink) : sink_(sink) {}
  ~ManualRequest() override { *destroyed_ = true; }
  void OnSinkDrained() override { ++drained_; }
  bool done() const override { return done_; }

  ResponseSink* sink_;
  bool done_ = false;
  int drained_ = 0;
  std::shared_ptr<std::atomic<bool>> destroyed_ = std::make_shared<std::atomic<bool>>(false);
};

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServer::Options options, RequestHandler handler) {
    options.port = 0;
    std::promise<uint16_t> port;
    thread_ = std::thread([&] {
      auto server = HttpServer::Start(io_, options, std::move(handler));
      ASSERT_TRUE(server.ok()) << server.status();
      server_ = std::move(*server);
      port.set_value(server_->port());
      io_.run();
      server_.reset();
    });
    port_ = port.get_future().get();
  }

  // Runs `fn` on the server's loop and waits for it.
  template <typename Fn>
  auto OnLoop(Fn fn) {
    std::packaged_task<decltype(fn())()> task(std::move(fn));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }

  void TearDown() override {
    work_.reset();
    asio::post(io_, [this] { server_.reset(); io_.stop(); });
    if (thread_.joinable()) thread_.join();
  }

  // Polls `pred` on the server's loop until it holds or 10 s pass; returns its last value.
  template <typename Pred>
  bool WaitOnLoop(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!OnLoop(pred)) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return true;
  }
  HttpServer::Stats Stats() {
    return OnLoop([&] { return server_->stats(); });
  }

  static std::unique_ptr<ActiveRequest> Echo(HttpRequest req, ResponseSink* sink) {
    sink->SendHeaders(200, {{"Content-Type", "text/plain"}, {"Content-Length", "999"}}, false);
    sink->SendBody(absl::StrCat(req.method, " ", req.path, " ", req.body));
    sink->Finish(true);
    return nullptr;
  }

  asio::io_context io_;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_ =
      std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
          asio::make_work_guard(io_));
  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, ServesKeepAliveRequestsOnOneConnection) {
  StartServer({}, &Echo);
  RawClient client(port_);
  ASSERT_TRUE(client.connected());
  client.Send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  std::string first = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::StartsWith(first, "HTTP/1.1 200 OK\r\n")) << first;
  // The handler's own Content-Length is replaced by the real one.
  EXPECT_TRUE(absl::StrContains(first, "Content-Length: 13\r\n")) << first;
  EXPECT_TRUE(absl::StrContains(first, "Connection: keep-alive")) << first;
  EXPECT_TRUE(absl::EndsWith(first, "POST /a hello")) << first;
  client.Consume(first.size());
  client.Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string second = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(second, "GET /b ")) << second;
  EXPECT_FALSE(client.eof());
}

// The connection's timeouts take turns on one timer: each must still fire after the others
// were armed (idle after the accept, head/body after a request started, idle after a reply).
TEST_F(HttpServerTest, StalledBodyAfterAKeptAliveRequestGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Milliseconds(50);
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(first, "GET /a ")) << first;
  client.Consume(first.size());
  // The head arrives, the body never does.
  client.Send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  std::string second = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(second, "HTTP/1.1 408 ")) << second;
}

TEST_F(HttpServerTest, StalledBodyOnAFreshConnectionGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Milliseconds(50);
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send("POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 ")) << got;
}

TEST_F(HttpServerTest, IdleConnectionIsClosedAfterAReply) {
  HttpServer::Options options;
  options.idle_timeout = absl::Milliseconds(50);
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::EndsWith(got, "GET /a ")) << got;
  EXPECT_TRUE(client.eof());
}

TEST_F(HttpServerTest, PipelinedRequestsAreAnsweredInOrder) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send(
      "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string all = client.ReadToEof();
  size_t one = all.find("GET /1 ");
  size_t two = all.find("GET /2 ");
  ASSERT_NE(one, std::string::npos) << all;
  ASSERT_NE(two, std::string::npos) << all;
  EXPECT_LT(one, two);
}

TEST_F(HttpServerTest, ChunkedRequestBodyIsDecoded) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send(
      "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  std::string resp = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(resp, "POST /c abcde")) << resp;
}

TEST_F(HttpServerTest, TransferEncodingNotEndingInChunkedIsRejected) {
  bool called = false;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) { called = true; return Echo({}, sink); });
  RawClient client(port_);
  client.Send(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n");
  std::string resp = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 400 ")) << resp;
  EXPECT_TRUE(absl::StrContains(resp, "transfer-encoding must end with chunked")) << resp;
  EXPECT_TRUE(absl::StrContains(resp, "\"type\":\"invalid_request_error\"")) << resp;
  EXPECT_FALSE(OnLoop([&] { return called; }));
}

TEST_F(HttpServerTest, TransferEncodingWithContentLengthIsRejected) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
      "0\r\n\r\n");
  std::string resp = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 400 ")) << resp;
}

TEST_F(HttpServerTest, ObsoleteLineFoldingIsRejected) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n");
  std::string resp = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 400 ")) << resp;
  EXPECT_TRUE(absl::StrContains(resp, "line folding")) << resp;
}

TEST_F(HttpServerTest, BodyOverLimitGets413) {
  HttpServer::Options options;
  options.max_body_bytes = 10;
  StartServer(options, &Echo);
  {
    RawClient client(port_);
    client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890");
    std::string resp = client.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 413 ")) << resp;
  }
  {
    RawClient client(port_);  // chunked bodies are counted as they arrive
    client.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                "6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n");
    std::string resp = client.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 413 ")) << resp;
  }
}

TEST_F(HttpServerTest, HeaderBlockOverLimitGets431) {
  HttpServer::Options options;
  options.max_header_bytes = 1024;
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send(absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Big: ", std::string(2000, 'a'), "\r\n\r\n"));
  std::string resp = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(resp, "HTTP/1.1 431 ")) << resp;
}

TEST_F(HttpServerTest, ExpectContinueGetsInterimResponse) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  std::string interim = client.ReadUntil(
      [](const std::string& s) { return absl::StrContains(s, "100 Continue\r\n\r\n"); });
  ASSERT_TRUE(absl::StartsWith(interim, "HTTP/1.1 100 Continue\r\n\r\n")) << interim;
  client.Send("xyz");
  std::string resp = client.ReadUntil([](const std::string& s) {
    return absl::StrContains(s, "POST /e xyz");
  });
  EXPECT_TRUE(absl::StrContains(resp, "HTTP/1.1 200 OK")) << resp;
}

TEST_F(HttpServerTest, StreamingResponseIsChunkedAndFlushedPerPiece) {
  ManualRequest* active = nullptr;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    active = req.get();
    sink->SendHeaders(200, {{"Content-Type", "text/event-stream"}}, true);
    return req;
  });
  RawClient client(port_);
  client.Send("POST /s HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
  std::string head = client.ReadUntil(
      [](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  EXPECT_TRUE(absl::StrContains(head, "Transfer-Encoding: chunked")) << head;
  // Each piece reaches the client before the next is produced.
  OnLoop([&] { return active->sink_->SendBody("data: 1\n\n"); });
  std::string got = client.ReadUntil(
      [](const std::string& s) { return absl::StrContains(s, "9\r\ndata: 1\n\n\r\n"); });
  EXPECT_TRUE(absl::StrContains(got, "9\r\ndata: 1\n\n\r\n")) << got;
  OnLoop([&] {
    active->sink_->SendBody("data: 2\n\n");
    active->sink_->Finish(true);
    active->done_ = true;
    return true;
  });
  got = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "9\r\ndata: 2\n\n\r\n0\r\n\r\n")) << got;
}

TEST_F(HttpServerTest, StreamCutShortClosesWithoutTerminatingChunk) {
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    sink->SendHeaders(200, {{"Content-Type", "text/event-stream"}}, true);
    sink->SendBody("data: partial\n\n");
    sink->Finish(false);
    return nullptr;
  });
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StrContains(got, "data: partial")) << got;
  EXPECT_FALSE(absl::StrContains(got, "\r\n0\r\n\r\n")) << got;
  EXPECT_TRUE(client.eof());
}

TEST_F(HttpServerTest, ExpectContinueWithoutBodyGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Milliseconds(100);
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 408 ")) << got;
}

TEST_F(HttpServerTest, StalledHeadGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Milliseconds(100);
  StartServer(options, &Echo);
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 ")) << got;
}

TEST_F(HttpServerTest, RepeatedChunkedCodingIsRejected) {
  StartServer({}, &Echo);
  RawClient client(port_);
  client.Send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
              "3\r\nabc\r\n0\r\n\r\n");
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 400 ")) << got;
  // One response only: the chunk bytes were never taken for a second request.
  EXPECT_EQ(got.find("HTTP/1.1", 1), std::string::npos) << got;
}

TEST_F(HttpServerTest, Http11RequestNeedsExactlyOneHost) {
  StartServer({}, &Echo);
  {
    RawClient client(port_);
    client.Send("GET / HTTP/1.1\r\n\r\n");
    std::string got = client.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 400 ")) << got;
    EXPECT_TRUE(absl::StrContains(got, "missing host header")) << got;
  }
  {
    RawClient client(port_);
    client.Send("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    std::string got = client.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 400 ")) << got;
  }
}

TEST_F(HttpServerTest, ClientSendingAnOversizedBodyReadsThe413) {
  // The server answers before reading the body; without a lingering close the unread
  // bytes make the kernel reset the connection and the client never sees the answer.
  HttpServer::Options options;
  options.max_body_bytes = 1 << 20;
  StartServer(options, &Echo);
  RawClient client(port_);
  const size_t body_size = 8 << 20;
  client.Send(absl::StrCat("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ", body_size,
                           "\r\n\r\n"));
  client.Send(std::string(body_size, 'b'));
  std::string got = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 413 ")) << got.substr(0, 200);
}

TEST_F(HttpServerTest, BackpressureSignalsFullAndThenDrained) {
  HttpServer::Options options;
  options.high_watermark = 64 << 10;
  options.low_watermark = 16 << 10;
  ManualRequest* active = nullptr;
  StartServer(options, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    active = req.get();
    sink->SendHeaders(200, {}, true);
    return req;
  });
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  client.ReadUntil([](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  // The client does not read. SendBody reports a full queue; the kernel's socket buffer may
  // still absorb it (a drain), so keep producing until a full queue stays full.
  const std::string piece(32 << 10, 'x');
  size_t sent = 0;
  int drained_seen = 0;
  for (int round = 0; round < 500; ++round) {
    // Bounded: 100000 pieces is far beyond any socket buffer plus the high-water mark.
    bool full = OnLoop([&] {
      for (int i = 0; i < 100000; ++i) {
        ++sent;
        if (!active->sink_->SendBody(piece)) return true;
      }
      return false;
    });
    ASSERT_TRUE(full) << "SendBody never reported a full queue";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let writes complete
    int drained = OnLoop([&] { return active->drained_; });
    if (drained == drained_seen) break;  // still full: the client's window is closed
    drained_seen = drained;
  }
  // Reading everything lets the queue drain, and the producer hears about it.
  const size_t expected = sent * piece.size();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (OnLoop([&] { return active->drained_; }) == drained_seen &&
         std::chrono::steady_clock::now() < deadline) {
    client.ReadUntil([&](const std::string& s) { return s.size() >= expected; });
  }
  EXPECT_GT(OnLoop([&] { return active->drained_; }), drained_seen);
}

TEST_F(HttpServerTest, ClientResetDestroysActiveRequest) {
  std::shared_ptr<std::atomic<bool>> destroyed;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    destroyed = req->destroyed_;
    sink->SendHeaders(200, {}, true);
    return req;
  });
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  client.ReadUntil([](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  ASSERT_NE(OnLoop([&] { return destroyed; }), nullptr);
  EXPECT_FALSE(*destroyed);
  client.Reset();
  EXPECT_TRUE(WaitOnLoop([&] { return destroyed->load(); }));
  EXPECT_EQ(OnLoop([&] { return server_->requests_in_flight(); }), 0u);
}

// A client that closed (FIN) cannot be told from one that only half-closed until a write to
// it fails; a streamed response finds out at its next pieces.
TEST_F(HttpServerTest, ClosedClientIsNoticedByTheStreamsNextWrites) {
  ManualRequest* active = nullptr;
  std::shared_ptr<std::atomic<bool>> destroyed;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    active = req.get();
    destroyed = req->destroyed_;
    sink->SendHeaders(200, {}, true);
    return req;
  });
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  client.ReadUntil([](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  ASSERT_TRUE(WaitOnLoop([&] { return active != nullptr; }));
  client.Close();
  EXPECT_TRUE(WaitOnLoop([&] {
    if (!*destroyed) active->sink_->SendBody("data: more\n\n");
    return destroyed->load();
  }));
  EXPECT_EQ(OnLoop([&] { return server_->requests_in_flight(); }), 0u);
}

TEST_F(HttpServerTest, ShutdownLetsRequestInFlightFinish) {
  ManualRequest* active = nullptr;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    active = req.get();
    sink->SendHeaders(200, {}, true);
    return req;
  });
  RawClient busy(port_);
  busy.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  busy.ReadUntil([](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  RawClient idle(port_);
  ASSERT_TRUE(idle.connected());
  // Make sure the idle connection was accepted before shutting down.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (OnLoop([&] { return server_->connections(); }) < 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::atomic<bool> drained{false};
  OnLoop([&] {
    server_->Shutdown([&] { drained = true; });
    return true;
  });
  idle.ReadToEof();
  EXPECT_TRUE(idle.eof());  // idle connections close at once
  EXPECT_FALSE(drained);
  OnLoop([&] {
    active->sink_->SendBody("last words");
    active->sink_->Finish(true);
    return true;
  });
  std::string got = busy.ReadToEof();
  busy.Close();  // ends the server's lingering close at once
  EXPECT_TRUE(absl::StrContains(got, "last words")) << got;
  // The head went out before the shutdown began; the connection closes after the body.
  EXPECT_TRUE(absl::StrContains(got, "Connection: keep-alive")) << got;
  EXPECT_TRUE(busy.eof());
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!drained && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(drained);
}

}  // namespace
}  // namespace modeenvoy::proxy

namespace modeenvoy::proxy {
namespace {

TEST_F(HttpServerTest, ConnectionsOverTheLimitGet503WithRetryAfter) {
  HttpServer::Options options;
  options.max_connections = 1;
  options.retry_after = absl::Seconds(2);
  StartServer(options, &Echo);
  RawClient first(port_);
  ASSERT_TRUE(first.connected());
  ASSERT_TRUE(WaitOnLoop([&] { return server_->connections() == 1; }));
  {
    RawClient second(port_);
    ASSERT_TRUE(second.connected());
    second.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string got = second.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 503 ")) << got;
    EXPECT_TRUE(absl::StrContains(got, "\r\nRetry-After: 2\r\n")) << got;
    EXPECT_TRUE(absl::StrContains(got, R"("type":"server_error")")) << got;
    EXPECT_TRUE(absl::StrContains(got, "too many connections")) << got;
    EXPECT_TRUE(second.eof());
  }
  EXPECT_EQ(Stats().connections_rejected, 1u);
  // The connection that was in first is still served.
  first.Send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(absl::EndsWith(first.ReadUntil(HasCompleteResponse), "GET /first ")) << "";
  // A slot freed is a slot usable again.
  first.Close();
  ASSERT_TRUE(WaitOnLoop([&] { return server_->connections() == 0; }));
  RawClient third(port_);
  third.Send("GET /third HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = third.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "GET /third ")) << got;
}

TEST_F(HttpServerTest, RequestsOverTheLimitGet503WithRetryAfter) {
  HttpServer::Options options;
  options.max_requests_in_flight = 1;
  ManualRequest* held = nullptr;
  StartServer(options, [&](HttpRequest req, ResponseSink* sink) -> std::unique_ptr<ActiveRequest> {
    if (req.path != "/hold") return Echo(std::move(req), sink);
    auto active = std::make_unique<ManualRequest>(sink);
    held = active.get();
    sink->SendHeaders(200, {}, true);
    return active;
  });
  RawClient busy(port_);
  busy.Send("GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  busy.ReadUntil([](const std::string& s) { return absl::StrContains(s, "\r\n\r\n"); });
  RawClient other(port_);
  other.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = other.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 503 ")) << got;
  EXPECT_TRUE(absl::StrContains(got, "\r\nRetry-After: 1\r\n")) << got;
  EXPECT_TRUE(absl::StrContains(got, R"({"error":{"message":"too many requests in flight)")) << got;
  EXPECT_TRUE(absl::StrContains(got, R"("type":"server_error")")) << got;
  EXPECT_EQ(Stats().requests_rejected, 1u);
  other.Consume(got.size());
  // The request was read whole, so the connection stays usable; once the held request is
  // done the next one is served.
  OnLoop([&] {
    held->sink_->Finish(true);
    held->done_ = true;
    return true;
  });
  ASSERT_TRUE(WaitOnLoop([&] { return server_->requests_in_flight() == 0; }));
  other.Send("GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  got = other.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "GET /b ")) << got;
}

// Measured before the backoff: with the descriptors used up, the acceptor retried at once,
// forever (100% CPU). Now every failed accept is followed by a pause, and the connections
// already open are served meanwhile.
TEST_F(HttpServerTest, AcceptOutOfDescriptorsBacksOffAndKeepsServing) {
  HttpServer::Options options;
  options.accept_backoff_initial = absl::Milliseconds(2);
  options.accept_backoff_max = absl::Milliseconds(20);
  StartServer(options, &Echo);
  RawClient existing(port_);
  // Everything this test and the server run below runs once first: while descriptors are
  // out, UBSan's vptr check cannot verify a type it meets for the first time (it probes
  // memory through a pipe) and reports it as invalid.
  existing.Send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string warm = existing.ReadUntil(HasCompleteResponse);
  ASSERT_TRUE(absl::EndsWith(warm, "GET /warm ")) << warm;
  existing.Consume(warm.size());
  ASSERT_EQ(Stats().accept_errors, 0u);
  RawClient pending(port_, /*connect=*/false);
  {
    DescriptorExhaustion exhaustion;
    ASSERT_TRUE(exhaustion.exhausted());
    ASSERT_TRUE(pending.Connect());  // completes in the listen queue; accept() cannot take it
    HttpServer::Stats stats;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((stats = Stats()).accept_backoffs < 4 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    stats = Stats();
    EXPECT_GE(stats.accept_backoffs, 4u);
    // Never an accept() retried without a pause before it.
    EXPECT_EQ(stats.accept_errors, stats.accept_backoffs);
    existing.Send("GET /existing HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string got = existing.ReadUntil(HasCompleteResponse);
    EXPECT_TRUE(absl::EndsWith(got, "GET /existing ")) << got;
  }
  // Descriptors are back: the queued connection is accepted and served.
  pending.Send("GET /pending HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = pending.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "GET /pending ")) << got;
}

// Measured before the deadline: one header byte every 3 s kept a connection open for ever,
// since each byte restarted the header timer.
TEST_F(HttpServerTest, HeadTricklingPastItsDeadlineGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Seconds(30);
  options.head_deadline = absl::Milliseconds(300);
  options.min_receive_rate = 0;
  StartServer(options, &Echo);
  RawClient client(port_);
  // 10 s of trickle at most; the deadline cuts it long before.
  EXPECT_TRUE(client.Trickle(absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                                          std::string(500, 'a')),
                             std::chrono::milliseconds(20)));
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 ")) << got;
  EXPECT_TRUE(client.eof());
  EXPECT_EQ(Stats().requests_timed_out, 1u);
}

// The head's end is searched for only in bytes not searched before; "\r\n\r\n" split
// over many reads must still be found. Sent after an empty line, which is skipped.
TEST_F(HttpServerTest, HeadArrivingByteByByteIsServed) {
  StartServer({}, &Echo);
  RawClient client(port_);
  int one = 1;
  ::setsockopt(client.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  EXPECT_FALSE(client.Trickle("\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
                              std::chrono::milliseconds(2)));
  std::string got = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "GET /slow ")) << got;
  EXPECT_EQ(Stats().requests_timed_out, 0u);
}

TEST_F(HttpServerTest, HeadSlowerThanTheMinimumRateGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Seconds(30);
  options.head_deadline = absl::Seconds(60);
  options.min_receive_rate = 200;  // bytes per second; the trickle below sends 50
  options.receive_rate_grace = absl::Milliseconds(200);
  StartServer(options, &Echo);
  RawClient client(port_);
  EXPECT_TRUE(client.Trickle(absl::StrCat("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ",
                                          std::string(500, 'a')),
                             std::chrono::milliseconds(20)));
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 ")) << got;
  EXPECT_TRUE(absl::StrContains(got, "request head not received in time")) << got;
}

TEST_F(HttpServerTest, BodyTricklingPastItsDeadlineGets408) {
  HttpServer::Options options;
  options.header_timeout = absl::Seconds(30);
  options.body_deadline = absl::Milliseconds(300);
  options.min_receive_rate = 0;
  bool called = false;
  StartServer(options, [&](HttpRequest req, ResponseSink* sink) {
    called = true;
    return Echo(std::move(req), sink);
  });
  RawClient client(port_);
  client.Send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n");
  EXPECT_TRUE(client.Trickle(std::string(500, 'b'), std::chrono::milliseconds(20)));
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 408 ")) << got;
  EXPECT_TRUE(absl::StrContains(got, "request body not received in time")) << got;
  EXPECT_FALSE(OnLoop([&] { return called; }));
}

// Beast 1.74 takes two equal Content-Length lines, and a list of equal values, as one
// length; a next hop may not. Both, and a conflict, are refused before the handler.
TEST_F(HttpServerTest, RepeatedOrListedContentLengthIsRejected) {
  int calls = 0;
  StartServer({}, [&](HttpRequest req, ResponseSink* sink) {
    ++calls;
    return Echo(std::move(req), sink);
  });
  for (const char* lengths : {"Content-Length: 3\r\nContent-Length: 3\r\n",
                              "Content-Length: 3, 3\r\n",
                              "Content-Length: 3\r\nContent-Length: 4\r\n",
                              "Content-Length: +3\r\n"}) {
    RawClient client(port_);
    client.Send(absl::StrCat("POST / HTTP/1.1\r\nHost: x\r\n", lengths, "\r\nabcd"));
    std::string got = client.ReadToEof();
    EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 400 ")) << lengths << got;
    EXPECT_TRUE(absl::StrContains(got, "content-length")) << lengths << got;
  }
  EXPECT_EQ(OnLoop([&] { return calls; }), 0);
}

TEST_F(HttpServerTest, HopByHopHeadersAndTheOnesConnectionNamesAreNotPassedOn) {
  HttpHeaders seen;
  StartServer({}, [&](HttpRequest req, ResponseSink* sink) {
    seen = req.headers;
    return Echo(std::move(req), sink);
  });
  RawClient client(port_);
  client.Send(
      "POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
      "Keep-Alive: timeout=5\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nhi");
  std::string got = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::EndsWith(got, "POST / hi")) << got;
  HttpHeaders headers = OnLoop([&] { return seen; });
  EXPECT_EQ(FindHeader(headers, "x-kept"), "k");
  EXPECT_EQ(FindHeader(headers, "host"), "x");
  for (const char* name : {"x-secret", "connection", "keep-alive", "content-length"}) {
    EXPECT_FALSE(FindHeader(headers, name).has_value()) << name;
  }
}

TEST_F(HttpServerTest, HalfClosedClientStillGetsTheResponse) {
  ManualRequest* active = nullptr;
  std::shared_ptr<std::atomic<bool>> destroyed;
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    auto req = std::make_unique<ManualRequest>(sink);
    active = req.get();
    destroyed = req->destroyed_;
    return req;
  });
  RawClient client(port_);
  client.Send("GET /h HTTP/1.1\r\nHost: x\r\n\r\n");
  client.ShutdownWrite();
  ASSERT_TRUE(WaitOnLoop([&] { return active != nullptr; }));
  // Give the loop turns to read the client's EOF (it was sent before the request was
  // dispatched, so it is there to be read).
  for (int i = 0; i < 3; ++i) OnLoop([] { return true; });
  OnLoop([&] {
    if (*destroyed) return false;  // cancelled: the bug
    active->sink_->SendHeaders(200, {{"Content-Type", "text/plain"}}, false);
    active->sink_->SendBody("still here");
    active->sink_->Finish(true);
    active->done_ = true;
    return true;
  });
  std::string got = client.ReadToEof();
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 200 ")) << got;
  EXPECT_TRUE(absl::StrContains(got, "Connection: close\r\n")) << got;
  EXPECT_TRUE(absl::EndsWith(got, "still here")) << got;
}

TEST_F(HttpServerTest, HeadersThatCouldSplitTheResponseAreNeverWritten) {
  StartServer({}, [&](HttpRequest, ResponseSink* sink) {
    sink->SendHeaders(200,
                      {{"X-Evil", "a\r\nSet-Cookie: session=stolen"},
                       {"X-Lf", "a\nSet-Cookie: b=1"},
                       {"X-Nul", std::string("a\0b", 3)},
                       {"Bad Name", "v"},
                       {"X-Split\r\nSet-Cookie", "c=1"},
                       {"", "empty name"},
                       {"X-Good", "ok"}},
                      false);
    sink->SendBody("body");
    sink->Finish(true);
    return nullptr;
  });
  RawClient client(port_);
  client.Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string got = client.ReadUntil(HasCompleteResponse);
  EXPECT_TRUE(absl::StartsWith(got, "HTTP/1.1 200 ")) << got;
  EXPECT_TRUE(absl::StrContains(got, "\r\nX-Good: ok\r\n")) << got;
  EXPECT_TRUE(absl::EndsWith(got, "\r\n\r\nbody")) << got;
  for (const char* absent : {"Set-Cookie", "X-Evil", "X-Lf", "X-Nul", "Bad Name", "X-Split",
                             "empty name"}) {
    EXPECT_FALSE(absl::StrContains(got, absent)) << absent << "\n" << got;
  }
}

TEST(HttpServerOptionsTest, BadLimitsAreRefused) {
  asio::io_context io;
  auto start = [&](HttpServer::Options o) {
    o.port = 0;
    return HttpServer::Start(io, o, [](HttpRequest, ResponseSink*) { return nullptr; }).status();
  };
  HttpServer::Options o;
  o.max_connections = 0;
  EXPECT_EQ(start(o).code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.max_requests_in_flight = 0;
  EXPECT_EQ(start(o).code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.head_deadline = absl::ZeroDuration();
  EXPECT_EQ(start(o).code(), absl::StatusCode::kInvalidArgument);
  o = {};
  o.accept_backoff_max = absl::Milliseconds(1);  // below the initial pause
  EXPECT_EQ(start(o).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(start({}).ok());
}

}  // namespace
}  // namespace modeenvoy::proxy
