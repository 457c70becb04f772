// include/modeenvoy/gateway/http.h: the HTTP exchange between a host and the gateway engine.
//
// A host (the example proxy, or another gateway embedding modeenvoy) turns each client
// request into an HttpRequest and implements ResponseSink to write the answer back:
//   modeenvoy::HttpRequest req{.method = "POST", .path = "/v1/chat/completions", ...};
//   auto active = gateway->Handle(std::move(req), &sink);  // destroy `active` = client left
// Bodies are bytes; headers keep their order and case as received.
#ifndef MODEENVOY_GATEWAY_HTTP_H_
#define MODEENVOY_GATEWAY_HTTP_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modeenvoy/export.h"

namespace modeenvoy {

// Ordered header list. Names compare case-insensitively (see FindHeader).
using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Returns the value of the first header named `name` (ASCII case-insensitive), if any.
// The view points into `headers` and lives as long as it is not modified.
MODEENVOY_EXPORT std::optional<std::string_view> FindHeader(const HttpHeaders& headers,
                                                            std::string_view name);

// The project's one list of hop-by-hop headers (RFC 9110 7.6.1 plus the framing headers a
// proxy recomputes): connection, keep-alive, proxy-connection, transfer-encoding, te,
// trailer, upgrade, proxy-authenticate, proxy-authorization, content-length. Such headers
// describe one connection, so neither the engine nor a host forwards them across a hop.
// ASCII case-insensitive.
MODEENVOY_EXPORT bool IsHopByHopHeader(std::string_view name);

// Removes from `headers` every hop-by-hop header (IsHopByHopHeader) and every header named
// in a Connection header's comma-separated list ("Connection: close, x-trace" drops
// "x-trace"), as a proxy must before forwarding (RFC 9110 7.6.1).
// REQUIRES: headers != nullptr.
MODEENVOY_EXPORT void StripHopByHopHeaders(HttpHeaders* headers);

// True if `name` is an RFC 9110 token (the only legal header name) and `value` holds no CR,
// LF or NUL (which would split or truncate a header block when written out).
MODEENVOY_EXPORT bool IsValidHeaderName(std::string_view name);
MODEENVOY_EXPORT bool IsValidHeaderValue(std::string_view value);

struct HttpRequest {
  std::string method;          // "GET", "POST", ...
  std::string path;            // request target as received, query string included
  HttpHeaders headers;
  std::string body;            // whole request body (the host enforces its size limit)
  std::string remote_address;  // "127.0.0.1:53211"; informational
};

// ResponseSink is implemented by the host and receives one response.
// Call order: SendHeaders once, then SendBody any number of times, then Finish once.
// Thread safety: called on the host's loop thread only.
class MODEENVOY_EXPORT ResponseSink {
 public:
  virtual ~ResponseSink() = default;

  // Starts the response. `streaming` is true when the body length is unknown (SSE): the host
  // uses chunked transfer encoding and flushes every SendBody promptly.
  virtual void SendHeaders(int status, const HttpHeaders& headers, bool streaming) = 0;

  // Queues body bytes for the client. Returns false when the host's send buffer is above its
  // high-water mark: the engine then stops producing until the host calls
  // ActiveRequest::OnSinkDrained(). Bytes passed in are always accepted, even when false.
  virtual bool SendBody(std::string_view data) = 0;

  // Ends the response. `complete` is false when the response was cut short with no ending the
  // client can read (the engine itself failed mid-stream: a filter or a translator threw, a
  // response step stalled): the host then closes the connection instead of ending the chunked
  // body. An upstream that fails mid-stream is not that case: the engine writes the client's
  // dialect's terminal error event and ends the body normally (complete true).
  virtual void Finish(bool complete) = 0;
};

// Handle for one request in flight inside the engine. Destroying it before the response
// finished cancels the request (client disconnected): the upstream call is aborted and the
// sink is not called again.
// Thread safety: thread-hostile; loop thread only.
class MODEENVOY_EXPORT ActiveRequest {
 public:
  virtual ~ActiveRequest() = default;
  // The host's send buffer fell below its low-water mark after SendBody returned false.
  virtual void OnSinkDrained() = 0;
  // True once the sink received Finish().
  virtual bool done() const = 0;
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_HTTP_H_
