#include "examples/proxy/http_server.h"

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() { Close(); }
  bool connected() const { return connected_; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
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

TEST_F(HttpServerTest, ClientDisconnectDestroysActiveRequest) {
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
  client.Close();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!*destroyed && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // bounded wait for the loop
  }
  EXPECT_TRUE(*destroyed);
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
