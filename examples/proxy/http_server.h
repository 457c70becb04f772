// examples/proxy/http_server.h: the example proxy's HTTP/1.1 front end.
//
// A small, strict HTTP/1.1 server on Boost.Asio (Beast parses requests) that turns every
// request into a modeenvoy::HttpRequest and writes the answer that comes back through a
// modeenvoy::ResponseSink: Content-Length bodies, or chunked bodies flushed chunk by chunk
// for SSE, with backpressure (SendBody returns false above the high-water mark and
// ActiveRequest::OnSinkDrained() is called once the queue drains below the low-water mark).
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
    absl::Duration header_timeout = absl::Seconds(30);   // slow request head -> 408/close
    absl::Duration idle_timeout = absl::Seconds(60);     // idle keep-alive connection
    absl::Duration write_stall_timeout = absl::Seconds(60);  // client stops reading
    absl::Duration drain_timeout = absl::Seconds(30);    // graceful shutdown bound
    size_t high_watermark = 1 << 20;          // queued response bytes before backpressure
    size_t low_watermark = 256 << 10;
  };

  virtual ~HttpServer() = default;

  // Binds, listens and starts accepting on `io`. Errors: kUnavailable if the address cannot
  // be bound, kInvalidArgument for a bad address.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(boost::asio::io_context& io,
                                                           const Options& options,
                                                           RequestHandler handler);

  // The bound port (useful with Options::port == 0).
  virtual uint16_t port() const = 0;

  // Number of open client connections and of requests being answered.
  virtual size_t connections() const = 0;
  virtual size_t requests_in_flight() const = 0;

  // Stops accepting, closes idle connections, lets responses in flight finish (each
  // connection then closes), and calls `on_drained` once every connection is gone or
  // drain_timeout passed (remaining connections are then closed hard).
  virtual void Shutdown(absl::AnyInvocable<void()> on_drained) = 0;
};

}  // namespace modeenvoy::proxy

#endif  // MODEENVOY_EXAMPLES_PROXY_HTTP_SERVER_H_
