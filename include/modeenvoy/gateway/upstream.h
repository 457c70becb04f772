// include/modeenvoy/gateway/upstream.h: asynchronous HTTP calls to model providers.
//
// The gateway talks to providers through UpstreamClient, so a host may supply its own
// (Envoy's async client, a Go http.Client over the C ABI). The built-in client runs libcurl's
// multi interface on the host's EventLoop: non-blocking, connections reused across calls,
// response bytes delivered as they arrive.
//   auto client = modeenvoy::NewCurlUpstreamClient(&loop, {});
//   if (!client.ok()) return client.status();
//   class Printer : public modeenvoy::UpstreamHandler {
//     void OnHeaders(int status, const modeenvoy::HttpHeaders& h) override { ... }
//     void OnData(std::string_view chunk) override { ... }      // once per arriving chunk
//     void OnComplete(absl::Status s) override { ... }          // exactly once
//   } printer;
//   std::unique_ptr<modeenvoy::UpstreamCall> call = (*client)->Start(
//       {.url = "http://127.0.0.1:8000/v1/chat/completions", .body = json}, &printer);
//   call.reset();  // before OnComplete: cancels; no callback runs afterwards
#ifndef MODEENVOY_GATEWAY_UPSTREAM_H_
#define MODEENVOY_GATEWAY_UPSTREAM_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/gateway/http.h"

namespace modeenvoy {

// Limits on one upstream call. A zero or infinite duration disables that limit.
// Each expiry completes the call with kDeadlineExceeded and a message naming the limit:
// "upstream connect timeout after 1000ms", "upstream first byte timeout after ...",
// "upstream idle timeout after ...", "upstream total timeout after ...".
struct UpstreamTimeouts {
  // Name resolution plus TCP (and TLS) connection set-up.
  absl::Duration connect = absl::Seconds(10);
  // From the start of the call to the first byte of the response status line. Covers
  // connecting, sending the request and the provider's time to first token.
  absl::Duration first_byte = absl::Seconds(120);
  // Longest silence between two response chunks once the response started. Time during
  // which the consumer holds the call paused (UpstreamCall::Pause) does not count.
  absl::Duration idle = absl::Seconds(60);
  // Whole call, start to last byte, pauses included.
  absl::Duration total = absl::Minutes(10);
};

// One HTTP request to a provider.
struct UpstreamRequest {
  std::string method = "POST";
  // Absolute http:// or https:// URL.
  std::string url;
  // Sent as given, in order. Content-Length is computed by the client.
  HttpHeaders headers;
  std::string body;
  UpstreamTimeouts timeouts;
};

// Measurements of one call; complete once OnComplete ran.
struct UpstreamCallStats {
  // New connections opened for this call: 0 when a pooled connection was reused.
  int64_t new_connections = 0;
  // Response bytes delivered through OnData.
  uint64_t body_bytes = 0;
  // From the start of the call; zero when the phase was not reached.
  absl::Duration connect_time;
  absl::Duration first_byte_time;
  absl::Duration total_time;
};

// Receives the outcome of one call. Implemented by the caller; must stay valid until
// OnComplete ran or the UpstreamCall handle was destroyed, whichever comes first.
// All methods run on the event loop thread, never inline from UpstreamClient::Start,
// UpstreamCall::Pause or UpstreamCall::Resume. A handler may destroy its UpstreamCall from
// inside any of these methods; no further method then runs.
class MODEENVOY_EXPORT UpstreamHandler {
 public:
  virtual ~UpstreamHandler() = default;

  // The final response status line and headers arrived (interim 1xx responses are skipped).
  // Runs at most once, before any OnData.
  virtual void OnHeaders(int status, const HttpHeaders& headers) = 0;

  // A piece of the response body, in order, as it arrived from the network (transfer
  // encoding already removed). `chunk` is valid only during the call.
  virtual void OnData(std::string_view chunk) = 0;

  // The call ended. Runs exactly once unless the call is cancelled first. OK means the whole
  // response was received (whatever its HTTP status). Errors:
  //   kUnavailable       connection refused or reset, name resolution failed, TLS failed,
  //                      response cut short; the message carries curl's error text. A
  //                      connection lost after it was made (reset or closed before the
  //                      response was complete) is marked: IsConnectionReset() is true.
  //   kDeadlineExceeded  one of UpstreamTimeouts expired; the message names which
  //   kInvalidArgument   the request is malformed (bad URL, unsupported scheme)
  virtual void OnComplete(absl::Status status) = 0;
};

// Marks a kUnavailable `status` as a connection lost after it was made: the peer reset or
// closed it after (part of) the request was sent and before the response was complete, so
// the upstream may have started the work. Routing classes it "reset" (FailureClass::kReset),
// apart from "connect" (no connection made, nothing sent). An UpstreamClient of a host marks
// its own such failures with this. Any other status is returned unchanged.
MODEENVOY_EXPORT absl::Status MarkConnectionReset(absl::Status status);
// True for a status marked by MarkConnectionReset (the mark survives a copy, not a new
// status built from the message).
MODEENVOY_EXPORT bool IsConnectionReset(const absl::Status& status);

// Handle for a call in flight. Destroying it before OnComplete cancels the call: the
// transfer is aborted, its connection closed, and no handler method runs afterwards.
// Destroying it after OnComplete (or after the client is gone) does nothing.
// Thread safety: thread-hostile; loop thread only.
class MODEENVOY_EXPORT UpstreamCall {
 public:
  virtual ~UpstreamCall() = default;

  // Backpressure: stops delivering OnData (and reading from the network) until Resume().
  // Takes effect immediately: no OnData runs after Pause() returns. No-op when paused.
  virtual void Pause() = 0;

  // Restarts delivery after Pause(). Delivery resumes on a later loop iteration, never
  // inline. No-op when not paused.
  virtual void Resume() = 0;

  // Measurements so far; final once OnComplete ran (readable from inside OnComplete).
  virtual UpstreamCallStats stats() const = 0;
};

// Starts asynchronous HTTP calls. Implementations are bound to one EventLoop.
// Thread safety: thread-hostile; loop thread only. REQUIRES: a client is not destroyed from
// inside one of its own handlers' methods.
class MODEENVOY_EXPORT UpstreamClient {
 public:
  virtual ~UpstreamClient() = default;

  // Starts `request`. `handler` is not owned (see UpstreamHandler for its lifetime). Returns
  // the call's handle; never null. Errors, including a malformed request, arrive through
  // handler->OnComplete on a later loop iteration, never inline.
  virtual std::unique_ptr<UpstreamCall> Start(UpstreamRequest request,
                                              UpstreamHandler* handler) = 0;
};

struct CurlUpstreamOptions {
  // Upper bound on simultaneously open connections to one host:port; 0 means no limit.
  // Calls beyond it wait for a free connection.
  int64_t max_connections_per_host = 0;
  // Idle connections kept for reuse (CURLMOPT_MAXCONNECTS); 0 leaves curl's default.
  int64_t max_idle_connections = 0;
  // TLS peer and host name verification. Disable only for tests against self-signed peers.
  bool verify_tls = true;
  // PEM bundle of trusted CAs; empty uses the system store.
  std::string ca_file;
  // Sent as User-Agent unless the request carries its own.
  std::string user_agent = "modeenvoy/0.1";
};

// Creates the libcurl multi-interface client driven by `loop` (curl's sockets are watched
// through EventLoop::WatchFd, its timeouts through EventLoop::NewTimer). One client keeps
// one connection pool: sequential calls to the same host reuse a kept-alive connection.
// `loop` is not owned and must outlive the client. Destroying the client aborts every call
// still in flight without calling its handler; their handles may still be destroyed later.
// curl_global_init runs once per process, thread-safe.
// Errors: kInvalidArgument if `loop` is null or an option is negative; kInternal if libcurl
// cannot be initialized.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<UpstreamClient>> NewCurlUpstreamClient(
    EventLoop* loop, const CurlUpstreamOptions& options = {});

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_UPSTREAM_H_
