// tests/gateway/test_http_server.h: a scripted loopback HTTP/1.1 server for upstream tests.
//
// Each accepted connection runs on its own thread; for every request read from it the
// handler decides what to send, how fast, and whether to stall, close or reset:
//   TestHttpServer server([](TestConnection& c) {
//     c.StartChunked(200, {{"content-type", "text/event-stream"}});
//     c.SendChunk("data: 1\n\n");
//     c.WaitGate("second");          // the test calls server.OpenGate("second")
//     c.SendChunk("data: 2\n\n");
//     c.EndChunked();
//   });
//   std::string url = server.Url("/v1/chat/completions");
// Waits are bounded (default 10 s) and end early when the server is destroyed, so a broken
// test fails instead of hanging.
#ifndef MODEENVOY_TESTS_GATEWAY_TEST_HTTP_SERVER_H_
#define MODEENVOY_TESTS_GATEWAY_TEST_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "modeenvoy/gateway/http.h"

namespace modeenvoy::gateway_testing {

inline constexpr absl::Duration kTestWait = absl::Seconds(10);

struct ReceivedRequest {
  std::string method;
  std::string path;
  HttpHeaders headers;
  std::string body;
  int connection = 0;  // 1-based index of the connection it arrived on
};

class TestHttpServer;

// One request on one connection, as seen by the handler (on the connection's thread).
class TestConnection {
 public:
  const ReceivedRequest& request() const { return request_; }

  // Writes bytes as they are. Returns false once the peer is gone.
  bool WriteRaw(std::string_view bytes);
  // A complete response with Content-Length.
  bool SendResponse(int status, const HttpHeaders& headers, std::string_view body);
  // A chunked response: headers, then any number of chunks, then the terminator.
  bool StartChunked(int status, const HttpHeaders& headers);
  bool SendChunk(std::string_view data);
  bool EndChunked();

  // Blocks until the test opens `gate` (TestHttpServer::OpenGate), the server stops, or
  // `timeout` passes. Returns true only if the gate was opened.
  bool WaitGate(std::string_view gate, absl::Duration timeout = kTestWait);
  // Records `event` for TestHttpServer::WaitForEvent.
  void Signal(std::string_view event);
  // Blocks until the client closes the connection (read returns EOF or an error) or
  // `timeout` passes. Returns true if the client closed it.
  bool WaitForPeerClose(absl::Duration timeout = kTestWait);

  // Ends the connection after this request: Close() with FIN, Reset() with RST.
  void Close();
  void Reset();

 private:
  friend class TestHttpServer;
  TestConnection(TestHttpServer* server, int fd, ReceivedRequest request)
      : server_(server), fd_(fd), request_(std::move(request)) {}

  TestHttpServer* server_;
  int fd_;
  ReceivedRequest request_;
  bool close_ = false;
  bool reset_ = false;
};

using TestHandler = std::function<void(TestConnection&)>;

class TestHttpServer {
 public:
  // Binds 127.0.0.1 on a free port and starts accepting.
  explicit TestHttpServer(TestHandler handler);
  // Stops accepting, wakes every waiting handler and joins all threads.
  ~TestHttpServer();

  uint16_t port() const { return port_; }
  std::string Url(std::string_view path) const;

  void OpenGate(std::string_view gate) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits (bounded) for a handler to Signal(event). Returns true if it did.
  bool WaitForEvent(std::string_view event, absl::Duration timeout = kTestWait)
      ABSL_LOCKS_EXCLUDED(mu_);

  int connections_accepted() const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<ReceivedRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class TestConnection;
  void AcceptLoop();
  void ServeConnection(int fd, int index);
  // Reads one request; false on EOF, error or stop.
  bool ReadRequest(int fd, std::string* buffer, ReceivedRequest* out);
  // Waits until `fd` is readable or the server stops; false on stop or timeout.
  bool WaitReadable(int fd, absl::Duration timeout);
  bool stopping() const ABSL_LOCKS_EXCLUDED(mu_);

  TestHandler handler_;
  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::thread acceptor_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<ReceivedRequest> requests_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> gates_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> events_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> connection_threads_ ABSL_GUARDED_BY(mu_);
};

// A port on 127.0.0.1 with nothing listening (bound then closed), for "connection refused".
uint16_t UnusedPort();

}  // namespace modeenvoy::gateway_testing

#endif  // MODEENVOY_TESTS_GATEWAY_TEST_HTTP_SERVER_H_
