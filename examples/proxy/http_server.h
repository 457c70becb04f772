// examples/proxy/http_server.h: the example proxy's HTTP/1.1 front end.
//
// A small, strict HTTP/1.1 server on Boost.Asio (Beast parses requests) that turns every
// request into a modeenvoy::HttpRequest and writes the answer that comes back through a
// modeenvoy::ResponseSink: Content-Length bodies, or chunked bodies flushed chunk by chunk
// for SSE, with backpressure (SendBody returns false above the high-water mark and
// ActiveRequest::OnSinkDrained() is called once the queue drains below the low-water mark).
// It defends itself: connection and in-flight limits (503), head/body deadlines and a
// minimum receive rate (408), a paused acceptor when descriptors run out, hop-by-hop
// headers stripped from requests, and response headers that could split the response
// dropped (docs/proxy.md).
//   HttpServer::Options opts{.port = 8080};
//   auto server = HttpServer::Start(io, opts, [&](HttpRequest req, ResponseSink* sink) {
//     return gateway->Handle(std::move(req), sink);
//   });
//   ...; (*server)->Shutdown([&] { io.stop(); });  // lets requests in flight finish
// Beast stays inside http_server.cc; this header only forward-declares Asio.
#ifndef MODEENVOY_EXAMPLES_PROXY_HTTP_SERVER_H_
#define MODEENVOY_EXAMPLES_PROXY_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/gateway/http.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeenvoy::proxy {

// Produces the response for one request. May answer synchronously (then the returned
// request, if any, is already done()) or keep the returned ActiveRequest alive until it
// finishes. Destroying the returned object cancels the request (client gone).
using RequestHandler =
    std::function<std::unique_ptr<ActiveRequest>(HttpRequest request, ResponseSink* sink)>;

// Thread safety: thread-hostile; everything runs on the io_context's thread.
class HttpServer {
 public:
  struct Options {
    std::string address = "127.0.0.1";
    uint16_t port = 8080;                     // 0 picks a free port; see port()
    bool reuse_port = false;                  // SO_REUSEPORT, for one server per thread
    size_t max_header_bytes = 64 << 10;       // larger header block -> 431
    size_t max_body_bytes = 8 << 20;          // larger body -> 413

    // Load limits (per server, i.e. per worker thread). A connection beyond
    // max_connections gets 503 and is closed; a request beyond max_requests_in_flight gets
    // 503 on its connection. Both answers carry Retry-After (whole seconds, at least 1) and
    // an OpenAI error body of type "server_error". REQUIRES: both > 0.
    size_t max_connections = 10000;
    size_t max_requests_in_flight = 4096;
    absl::Duration retry_after = absl::Seconds(1);

    // Receiving a request. A head or body that stops (no byte for header_timeout), takes
    // longer than its deadline in total, or arrives slower than min_receive_rate once
    // receive_rate_grace has passed gets 408 and the connection is closed. The rate rule
    // works like Apache's mod_reqtimeout: each phase (head from its first byte, body from
    // the end of the head) may take receive_rate_grace plus one second per
    // min_receive_rate bytes received so far, up to its deadline. 0 disables the rate rule.
    absl::Duration header_timeout = absl::Seconds(30);   // gap between bytes of a request
    absl::Duration head_deadline = absl::Seconds(30);    // whole request head
    absl::Duration body_deadline = absl::Seconds(300);   // whole request body
    uint64_t min_receive_rate = 1024;                    // bytes per second
    absl::Duration receive_rate_grace = absl::Seconds(10);

    absl::Duration idle_timeout = absl::Seconds(60);     // idle keep-alive connection
    absl::Duration write_stall_timeout = absl::Seconds(60);  // client stops reading
    absl::Duration drain_timeout = absl::Seconds(30);    // graceful shutdown bound
    size_t high_watermark = 1 << 20;          // queued response bytes before backpressure
    size_t low_watermark = 256 << 10;

    // After a failed accept() (out of descriptors: EMFILE/ENFILE, or out of memory) the
    // acceptor pauses instead of retrying at once, which would spin: the pending connection
    // stays queued and the listener stays readable. The pause starts at
    // accept_backoff_initial, doubles with each failure in a row up to accept_backoff_max,
    // and resets after a successful accept. Connections already open are served meanwhile.
    absl::Duration accept_backoff_initial = absl::Milliseconds(10);
    absl::Duration accept_backoff_max = absl::Seconds(1);
  };

  // Counters since Start(), for monitoring and tests.
  struct Stats {
    uint64_t accept_errors = 0;         // accept() calls that failed
    uint64_t accept_backoffs = 0;       // pauses of the acceptor after a failure
    uint64_t connections_rejected = 0;  // over max_connections (503, or closed at once)
    uint64_t requests_rejected = 0;     // over max_requests_in_flight (503)
    uint64_t requests_timed_out = 0;    // head or body too slow (408 or closed)
  };

  virtual ~HttpServer() = default;

  // Binds, listens and starts accepting on `io`. Errors: kUnavailable if the address cannot
  // be bound, kInvalidArgument for a bad address or options that break a REQUIRES.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                           const Options& options,
                                                           RequestHandler handler);

  // The bound port (useful with Options::port == 0).
  virtual uint16_t port() const = 0;

  // Number of open client connections and of requests being answered.
  virtual size_t connections() const = 0;
  virtual size_t requests_in_flight() const = 0;
  virtual Stats stats() const = 0;

  // Stops accepting, closes idle connections, lets responses in flight finish (each
  // connection then closes), and calls `on_drained` once every connection is gone or
  // drain_timeout passed (remaining connections are then closed hard).
  virtual void Shutdown(absl::AnyInvocable<void()> on_drained) = 0;
};

}  // namespace modeenvoy::proxy

#endif  // MODEENVOY_EXAMPLES_PROXY_HTTP_SERVER_H_
