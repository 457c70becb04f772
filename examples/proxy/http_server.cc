#include "examples/proxy/http_server.h"

// Boost 1.74's asio/awaitable.hpp uses std::exchange without including <utility>.
#include <utility>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <deque>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::proxy {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

using SteadyTime = std::chrono::steady_clock::time_point;

std::chrono::steady_clock::duration ToChrono(absl::Duration d) {
  return absl::ToChronoNanoseconds(d);
}

// now + d, saturating: an infinite (or absurdly long) timeout never expires.
SteadyTime DeadlineAfter(SteadyTime now, absl::Duration d) {
  if (d <= absl::ZeroDuration()) return now;
  if (d >= absl::Hours(24 * 365 * 100)) return SteadyTime::max();
  return now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(ToChrono(d));
}

std::string_view View(const beast::flat_buffer& b) {
  auto data = b.data();
  return std::string_view(static_cast<const char*>(data.data()), data.size());
}

// Checks the raw request head for what Beast 1.74 would accept but a proxy must refuse:
// obs-fold continuation lines (unfolded silently by Beast), a Transfer-Encoding whose
// final coding is not "chunked" or that comes with Content-Length, and a Content-Length
// repeated or written as a list (Beast accepts "5, 5" and two equal lines; a next hop that
// takes another reading would see a different body end: request smuggling).
// Returns an error message, or empty when the head is acceptable.
std::string CheckRawHead(std::string_view head) {
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(head.data(), head.size()), "\r\n");
  bool saw_te = false;
  bool saw_cl = false;
  int hosts = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    absl::string_view line = lines[i];
    if (line.empty()) continue;
    if (line[0] == ' ' || line[0] == '\t') return "obsolete line folding in header";
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;  // Beast reports malformed lines itself
    absl::string_view name = line.substr(0, colon);
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
    if (absl::EqualsIgnoreCase(name, "content-length")) {
      if (saw_cl) return "more than one content-length header";
      saw_cl = true;
      if (value.empty() || !std::all_of(value.begin(), value.end(), absl::ascii_isdigit)) {
        return "content-length must be one decimal number";
      }
    }
    if (absl::EqualsIgnoreCase(name, "host")) ++hosts;
    if (absl::EqualsIgnoreCase(name, "transfer-encoding")) {
      // Beast treats a body as chunked only when its first "chunked" coding is the last
      // one, so anything but exactly one "chunked", at the end, in one header line would
      // make us and the next hop disagree on where the body ends.
      if (saw_te) return "more than one transfer-encoding header";
      saw_te = true;
      std::vector<absl::string_view> codings = absl::StrSplit(value, ',');
      for (size_t c = 0; c < codings.size(); ++c) {
        bool chunked = absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(codings[c]), "chunked");
        if (chunked != (c + 1 == codings.size())) {
          return "transfer-encoding must end with chunked, once";
        }
      }
    }
  }
  if (saw_te && saw_cl) return "both transfer-encoding and content-length";
  // RFC 9112 section 3.2: exactly one Host in an HTTP/1.1 request.
  if (absl::StrContains(lines[0], "HTTP/1.1") && hosts != 1) {
    return hosts == 0 ? "missing host header" : "more than one host header";
  }
  return {};
}

// True if a Connection header value names anything besides "close" and "keep-alive",
// i.e. headers that must be removed with it. Most clients send only those two, so the
// common case costs one scan and no allocation.
bool ConnectionNamesHeaders(std::string_view value) {
  for (absl::string_view token :
       absl::StrSplit(absl::string_view(value.data(), value.size()), ',')) {
    token = absl::StripAsciiWhitespace(token);
    if (!token.empty() && !absl::EqualsIgnoreCase(token, "close") &&
        !absl::EqualsIgnoreCase(token, "keep-alive")) {
      return true;
    }
  }
  return false;
}

class ServerImpl;

// One client connection. Owns the socket; lives in ServerImpl::connections_ until closed
// (pending handlers keep it alive a little longer through shared_from_this()).
class Connection final : public std::enable_shared_from_this<Connection>,
                         private ResponseSink {
 public:
  Connection(ServerImpl* server, tcp::socket socket);

  void Start() {
    ArmTimer(options().idle_timeout);
    ReadMore();
  }
  // Answers 503 at once (the server is at max_connections) and closes.
  void Reject();
  bool rejected() const { return rejected_; }
  // Closes the connection now if it is idle between requests; otherwise it closes after the
  // response in flight. Used by graceful shutdown.
  void CloseWhenIdle();
  // Closes immediately, cancelling any request in flight.
  void CloseNow();
  // The server is going away: forget it and close.
  void Detach() {
    server_ = nullptr;
    CloseNow();
  }
  bool responding() const { return state_ == State::kResponding; }

 private:
  // kLingering: the response is sent and our side shut down; input is read and dropped
  // for a while so that unread request bytes do not make the kernel reset the connection
  // (which would destroy the response before the client read it, e.g. a 413).
  enum class State { kReadingHead, kReadingBody, kResponding, kLingering, kClosed };

  // ResponseSink.
  void SendHeaders(int status, const HttpHeaders& headers, bool streaming) override;
  bool SendBody(std::string_view data) override;
  void Finish(bool complete) override;

  void ReadMore();
  void OnRead(beast::error_code ec, size_t n);
  void ProcessInput();
  bool ParseHead();
  bool ReadBodyBytes();
  void Dispatch();
  // Answers `error` as an OpenAI error body with HTTP `status`, outside the handler. Unless
  // `keep_connection` (only at a request boundary), the connection closes afterwards.
  void ReplyError(int status, const absl::Status& error, bool keep_connection = false);
  void Enqueue(std::string bytes);
  void DoWrite();
  void AfterResponse();
  // Sets the connection's one deadline to `d` from now (replacing any other); DisarmTimer()
  // clears it. REQUIRES: `d` is one of the options' connection timeouts.
  void ArmTimer(absl::Duration d) {
    SetDeadline(DeadlineAfter(std::chrono::steady_clock::now(), d));
  }
  // As ArmTimer, for a deadline no later than header_timeout from now.
  void SetDeadline(SteadyTime deadline);
  // While a request head or body arrives: the earliest of header_timeout from now, the
  // phase's `total` deadline and its minimum-rate deadline (see HttpServer::Options).
  void ArmReceiveTimer(absl::Duration total);
  // Starts timing a head or body phase.
  void StartPhase() {
    phase_start_ = std::chrono::steady_clock::now();
    phase_bytes_ = 0;
  }
  void ArmReceiveTimerAt(SteadyTime now, absl::Duration total);
  void DisarmTimer() { deadline_ = SteadyTime::max(); }
  void WaitForDeadline();
  void OnTimer();
  void Close();
  bool ShuttingDown() const;
  const HttpServer::Options& options() const;

  ServerImpl* server_;
  tcp::socket socket_;
  std::string remote_;
  beast::flat_buffer in_;
  std::optional<http::request_parser<http::string_body>> parser_;
  // The idle, head/body and write-stall timeouts share one deadline. The Asio wait behind it
  // is not moved when the deadline moves (that costs a timer-queue update and often a kernel
  // timer reprogram, several per request): it is started to expire no later than the
  // shortest timeout from now, so it never expires after a deadline set later, and when it
  // fires it either acts or waits again for what is left.
  asio::steady_timer timer_;
  SteadyTime deadline_ = SteadyTime::max();
  bool timer_waiting_ = false;
  SteadyTime timer_expiry_ = SteadyTime::max();  // when the pending wait fires
  bool read_pending_ = false;
  State state_ = State::kReadingHead;
  bool rejected_ = false;
  // The client shut down its sending side (EOF) after a complete request: the response is
  // still written, then the connection closes.
  bool input_closed_ = false;

  // The head or body being received: since when, how many bytes so far; head_started_ is
  // set by the head's first byte.
  SteadyTime phase_start_;
  uint64_t phase_bytes_ = 0;
  bool head_started_ = false;
  size_t head_scanned_ = 0;  // leading bytes of in_ known not to hold the head's end

  // Current exchange.
  std::unique_ptr<ActiveRequest> active_;
  bool keep_alive_ = true;
  bool http10_ = false;
  bool head_request_ = false;
  bool headers_sent_ = false;
  bool streaming_ = false;
  bool finished_ = false;
  bool close_after_write_ = false;
  bool close_when_idle_ = false;
  std::string pending_head_;   // non-streaming: head waits for the body length
  std::string pending_body_;

  // Write queue.
  std::deque<std::string> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool backpressured_ = false;
  std::vector<asio::const_buffer> write_bufs_;
  size_t write_count_ = 0;

  // Lingering close: how long and how much input is read and dropped at most.
  static constexpr absl::Duration kLingerTime = absl::Seconds(5);
  static constexpr size_t kMaxLingerBytes = 64 << 20;
  size_t lingered_bytes_ = 0;
};

class ServerImpl final : public HttpServer {
 public:
  ServerImpl(asio::io_context& io, const Options& options, RequestHandler handler)
      : io_(io), options_(options), handler_(std::move(handler)), acceptor_(io),
        accept_timer_(io), drain_timer_(io),
        retry_after_(absl::StrCat(std::max<int64_t>(
            1, absl::ToInt64Seconds(absl::Ceil(options.retry_after, absl::Seconds(1)))))) {}

  ~ServerImpl() override {
    beast::error_code ignored;
    acceptor_.close(ignored);
    auto conns = std::move(connections_);
    connections_.clear();
    for (auto& [ptr, conn] : conns) conn->Detach();
  }

  absl::Status Listen() {
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.address, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("listen address \"", options_.address, "\": ", ec.message()));
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && options_.reuse_port) {
      int one = 1;
      if (::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        ec = beast::error_code(errno, boost::system::system_category());
      }
    }
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.address, ":",
                                                 options_.port, ": ", ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }
  size_t connections() const override { return connections_.size(); }
  size_t requests_in_flight() const override { return in_flight_; }
  Stats stats() const override { return stats_; }

  void Shutdown(absl::AnyInvocable<void()> on_drained) override {
    if (shutting_down_) return;
    shutting_down_ = true;
    on_drained_ = std::move(on_drained);
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_timer_.cancel();
    std::vector<std::shared_ptr<Connection>> conns;
    for (auto& [ptr, conn] : connections_) conns.push_back(conn);
    for (auto& conn : conns) conn->CloseWhenIdle();
    drain_timer_.expires_after(ToChrono(options_.drain_timeout));
    drain_timer_.async_wait([this](beast::error_code ec) {
      if (ec) return;
      std::vector<std::shared_ptr<Connection>> left;
      for (auto& [ptr, conn] : connections_) left.push_back(conn);
      for (auto& conn : left) conn->CloseNow();
      MaybeDrained();
    });
    MaybeDrained();
  }

  // Called by connections.
  const Options& options() const { return options_; }
  bool shutting_down() const { return shutting_down_; }
  asio::io_context& io() { return io_; }
  std::unique_ptr<ActiveRequest> Handle(HttpRequest request, ResponseSink* sink) {
    return handler_(std::move(request), sink);
  }
  void RequestStarted() { ++in_flight_; }
  void RequestEnded() { --in_flight_; }
  // True when one more request would exceed max_requests_in_flight (counted as rejected).
  bool RejectRequest() {
    if (in_flight_ < options_.max_requests_in_flight) return false;
    ++stats_.requests_rejected;
    return true;
  }
  void RequestTimedOut() { ++stats_.requests_timed_out; }
  const std::string& retry_after() const { return retry_after_; }
  void Remove(Connection* conn) {
    auto it = connections_.find(conn);
    if (it == connections_.end()) return;
    if (conn->rejected()) --rejecting_;
    // Keep the object alive until this call stack unwinds.
    std::shared_ptr<Connection> keep = std::move(it->second);
    connections_.erase(it);
    asio::post(io_, [keep] {});
    MaybeDrained();
  }

 private:
  // Connections over max_connections that are being answered 503 at most at once; beyond
  // this, further ones are closed without an answer so that rejecting stays bounded too.
  static constexpr size_t kMaxRejecting = 64;

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) {
        ++stats_.accept_errors;
        // A connection that died in the queue concerns that connection only. Anything else
        // (EMFILE, ENFILE, ENOBUFS, ENOMEM) leaves the connection queued and the listener
        // readable, so retrying at once would spin: pause, longer while it keeps failing.
        if (ec == asio::error::connection_aborted) {
          Accept();
        } else {
          BackOff();
        }
        return;
      }
      accept_backoff_ = absl::ZeroDuration();
      OnAccepted(std::move(socket));
      Accept();
    });
  }

  void BackOff() {
    accept_backoff_ = accept_backoff_ == absl::ZeroDuration()
                          ? options_.accept_backoff_initial
                          : std::min(accept_backoff_ * 2, options_.accept_backoff_max);
    ++stats_.accept_backoffs;
    accept_timer_.expires_after(ToChrono(accept_backoff_));
    accept_timer_.async_wait([this](beast::error_code ec) {
      // Aborted (Shutdown or destruction) must not touch `this`.
      if (ec || !acceptor_.is_open()) return;
      Accept();
    });
  }

  void OnAccepted(tcp::socket socket) {
    if (connections_.size() - rejecting_ >= options_.max_connections) {
      ++stats_.connections_rejected;
      if (rejecting_ >= kMaxRejecting) {
        beast::error_code ignored;
        socket.close(ignored);
        return;
      }
      auto conn = std::make_shared<Connection>(this, std::move(socket));
      connections_.emplace(conn.get(), conn);
      ++rejecting_;
      conn->Reject();
      return;
    }
    beast::error_code ignored;
    // Small SSE chunks on a kept-alive connection otherwise wait ~40 ms for Nagle.
    socket.set_option(tcp::no_delay(true), ignored);
    auto conn = std::make_shared<Connection>(this, std::move(socket));
    connections_.emplace(conn.get(), conn);
    conn->Start();
  }

  void MaybeDrained() {
    if (!shutting_down_ || !connections_.empty() || !on_drained_) return;
    drain_timer_.cancel();
    auto cb = std::move(on_drained_);
    on_drained_ = nullptr;
    asio::post(io_, std::move(cb));
  }

  asio::io_context& io_;
  Options options_;
  RequestHandler handler_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_timer_;
  absl::Duration accept_backoff_ = absl::ZeroDuration();  // zero: the last accept worked
  asio::steady_timer drain_timer_;
  const std::string retry_after_;  // Retry-After value
  uint16_t port_ = 0;
  size_t in_flight_ = 0;
  size_t rejecting_ = 0;  // connections in connections_ being answered 503
  Stats stats_;
  bool shutting_down_ = false;
  absl::AnyInvocable<void()> on_drained_;
  absl::flat_hash_map<Connection*, std::shared_ptr<Connection>> connections_;
};

Connection::Connection(ServerImpl* server, tcp::socket socket)
    : server_(server),
      socket_(std::move(socket)),
      in_(server->options().max_header_bytes + (64 << 10)),
      timer_(server->io()) {
  beast::error_code ec;
  auto ep = socket_.remote_endpoint(ec);
  if (!ec) remote_ = absl::StrCat(ep.address().to_string(), ":", ep.port());
}

const HttpServer::Options& Connection::options() const {
  static const HttpServer::Options kDefaults;
  return server_ != nullptr ? server_->options() : kDefaults;
}

bool Connection::ShuttingDown() const { return server_ == nullptr || server_->shutting_down(); }

void Connection::ReadMore() {
  if (read_pending_ || state_ == State::kClosed) return;
  size_t room = in_.max_size() - in_.size();
  if (room == 0) {
    if (state_ == State::kResponding) return;  // pipelined bytes wait for this response
    ReplyError(431, absl::InvalidArgumentError("request header fields too large"));
    return;
  }
  read_pending_ = true;
  socket_.async_read_some(in_.prepare(std::min<size_t>(room, 16 << 10)),
                          [self = shared_from_this()](beast::error_code ec, size_t n) {
                            self->read_pending_ = false;
                            self->OnRead(ec, n);
                          });
}

void Connection::OnRead(beast::error_code ec, size_t n) {
  if (state_ == State::kClosed) return;
  if (ec) {
    if (ec == asio::error::eof && state_ == State::kResponding) {
      // A half-close after a whole request (shutdown(SHUT_WR), as `nc -N` does): the client
      // still reads, so the response is written and the connection closes after it. A
      // client that is gone altogether is noticed when a write to it fails.
      input_closed_ = true;
      keep_alive_ = false;
      return;
    }
    // EOF or reset. Between requests this is a normal close; a reset during a response
    // means the client went away, so the request in flight is cancelled (its upstream call
    // aborted).
    Close();
    return;
  }
  in_.commit(n);
  if (state_ == State::kLingering) {
    lingered_bytes_ += in_.size();
    in_.consume(in_.size());
    if (lingered_bytes_ > kMaxLingerBytes) {
      Close();
    } else {
      ReadMore();
    }
    return;
  }
  if (state_ == State::kResponding) {
    // Pipelined request bytes (or a client talking early): keep them for later and keep
    // watching for a disconnect.
    ReadMore();
    return;
  }
  ProcessInput();
}

void Connection::ProcessInput() {
  if (state_ == State::kReadingHead) {
    if (!ParseHead()) return;
  }
  if (state_ == State::kReadingBody) {
    if (!ReadBodyBytes()) return;
    if (parser_->is_done()) Dispatch();
  }
}

// Returns true once the head is parsed and state_ moved on.
bool Connection::ParseHead() {
  // Tolerate empty lines before a request line (RFC 9112 section 2.2).
  while (in_.size() >= 2 && View(in_).substr(0, 2) == "\r\n") {
    in_.consume(2);
    head_scanned_ = 0;
  }
  std::string_view buffered = View(in_);
  // Search only what arrived since the last look (and 3 bytes before, for a "\r\n\r\n"
  // split across reads): a head trickled in byte by byte costs linear time, not quadratic.
  size_t end = buffered.find("\r\n\r\n", head_scanned_ > 3 ? head_scanned_ - 3 : 0);
  head_scanned_ = end == std::string_view::npos ? buffered.size() : 0;
  if (end == std::string_view::npos) {
    if (buffered.size() >= options().max_header_bytes) {
      ReplyError(431, absl::InvalidArgumentError("request header fields too large"));
      return false;
    }
    if (!buffered.empty()) {
      if (!head_started_) {
        head_started_ = true;
        StartPhase();
      }
      phase_bytes_ = buffered.size();
      ArmReceiveTimer(options().head_deadline);
    }
    ReadMore();
    return false;
  }
  std::string_view head = buffered.substr(0, end + 4);
  head_started_ = false;
  if (std::string problem = CheckRawHead(head); !problem.empty()) {
    ReplyError(400, absl::InvalidArgumentError(problem));
    return false;
  }
  parser_.emplace();
  parser_->header_limit(static_cast<uint32_t>(options().max_header_bytes));
  parser_->body_limit(options().max_body_bytes);
  beast::error_code ec;
  size_t used = parser_->put(asio::buffer(head.data(), head.size()), ec);
  if (ec || !parser_->is_header_done()) {
    if (ec == http::error::header_limit) {
      ReplyError(431, absl::InvalidArgumentError("request header fields too large"));
    } else if (ec == http::error::body_limit) {
      ReplyError(413, absl::InvalidArgumentError(absl::StrFormat(
                          "request body exceeds the limit of %d bytes", options().max_body_bytes)));
    } else {
      ReplyError(400, absl::InvalidArgumentError(absl::StrCat(
                          "malformed request: ", ec ? ec.message() : "incomplete head")));
    }
    return false;
  }
  in_.consume(used);
  state_ = State::kReadingBody;
  StartPhase();
  ArmReceiveTimerAt(phase_start_, options().body_deadline);
  auto& req = parser_->get();
  http10_ = req.version() < 11;
  if (parser_->content_length() && *parser_->content_length() > options().max_body_bytes) {
    ReplyError(413, absl::InvalidArgumentError(absl::StrFormat(
                        "request body of %d bytes exceeds the limit of %d bytes",
                        *parser_->content_length(), options().max_body_bytes)));
    return false;
  }
  auto expect = req.find(http::field::expect);
  if (expect != req.end() && absl::EqualsIgnoreCase(
                                 absl::string_view(expect->value().data(), expect->value().size()),
                                 "100-continue") &&
      !parser_->is_done() && in_.size() == 0) {
    // Without this, curl and others wait a second before sending the body.
    Enqueue("HTTP/1.1 100 Continue\r\n\r\n");
  }
  return true;
}

// Feeds buffered bytes to the body parser. Returns false when waiting for more input or on
// error (already answered).
bool Connection::ReadBodyBytes() {
  while (!parser_->is_done()) {
    if (in_.size() == 0) {
      ReadMore();
      return false;
    }
    beast::error_code ec;
    size_t used = parser_->put(in_.data(), ec);
    in_.consume(used);
    if (ec == http::error::need_more) {
      ReadMore();
      return false;
    }
    if (ec == http::error::body_limit) {
      ReplyError(413, absl::InvalidArgumentError(absl::StrFormat(
                          "request body exceeds the limit of %d bytes", options().max_body_bytes)));
      return false;
    }
    if (ec) {
      ReplyError(400, absl::InvalidArgumentError(
                          absl::StrCat("malformed request body: ", ec.message())));
      return false;
    }
    if (used == 0) {
      ReadMore();
      return false;
    }
    phase_bytes_ += used;
    ArmReceiveTimer(options().body_deadline);
  }
  return true;
}

void Connection::Dispatch() {
  auto& req = parser_->get();
  HttpRequest request;
  request.method = std::string(req.method_string());
  request.path = std::string(req.target());
  bool names_headers = false;
  request.headers.reserve(std::distance(req.begin(), req.end()));
  for (const auto& field : req) {
    // Framing and other hop-by-hop headers describe this connection, not the request.
    std::string_view name(field.name_string().data(), field.name_string().size());
    std::string_view value(field.value().data(), field.value().size());
    if (field.name() == http::field::connection && ConnectionNamesHeaders(value)) {
      names_headers = true;  // kept for StripHopByHopHeaders below, which drops it
    } else if (IsHopByHopHeader(name)) {
      continue;
    }
    request.headers.emplace_back(std::string(name), std::string(value));
  }
  // Headers the Connection header names are hop-by-hop too (RFC 9110 7.6.1).
  if (names_headers) StripHopByHopHeaders(&request.headers);
  request.body = std::move(req.body());
  request.remote_address = remote_;
  keep_alive_ = req.keep_alive() && !ShuttingDown() && !input_closed_;
  head_request_ = req.method() == http::verb::head;
  parser_.reset();

  if (server_ != nullptr && server_->RejectRequest()) {
    ReplyError(503,
               absl::UnavailableError("too many requests in flight; retry after a moment"),
               /*keep_connection=*/true);
    return;
  }
  state_ = State::kResponding;
  headers_sent_ = streaming_ = finished_ = close_after_write_ = false;
  pending_head_.clear();
  pending_body_.clear();
  DisarmTimer();  // the handler's own timeouts apply while it works
  if (server_ == nullptr) return;
  server_->RequestStarted();
  ReadMore();  // notices a client that disconnects while we answer
  std::unique_ptr<ActiveRequest> active = server_->Handle(std::move(request), this);
  if (state_ == State::kClosed) return;  // closed while handling; `active` dies here
  active_ = std::move(active);
  if (finished_ && !writing_ && queue_.empty()) AfterResponse();
}

void Connection::ReplyError(int status, const absl::Status& error, bool keep_connection) {
  // Errors found before a request is dispatched: answer in OpenAI's error shape and, unless
  // at a request boundary, close, since the rest of the stream cannot be trusted to be one.
  std::string body = OpenAiErrorBody(WithHttpStatus(error, status));
  parser_.reset();
  head_started_ = false;
  head_scanned_ = 0;
  state_ = State::kResponding;
  DisarmTimer();
  if (server_ != nullptr) server_->RequestStarted();
  if (!keep_connection) {
    keep_alive_ = false;
    head_request_ = false;
    http10_ = false;
  }
  headers_sent_ = streaming_ = finished_ = close_after_write_ = false;
  pending_head_.clear();
  pending_body_.clear();
  if (status == 503 && server_ != nullptr) {
    SendHeaders(status,
                {{"Content-Type", "application/json"}, {"Retry-After", server_->retry_after()}},
                false);
  } else {
    SendHeaders(status, {{"Content-Type", "application/json"}}, false);
  }
  SendBody(body);
  Finish(true);
}

void Connection::Reject() {
  rejected_ = true;
  ReplyError(503, absl::UnavailableError("too many connections; retry after a moment"));
  ReadMore();  // notices a client that goes away before the answer is written
}

void Connection::SendHeaders(int status, const HttpHeaders& headers, bool streaming) {
  if (state_ != State::kResponding || headers_sent_) return;
  headers_sent_ = true;
  streaming_ = streaming;
  std::string head = absl::StrCat(
      "HTTP/1.1 ", status, " ",
      absl::string_view(http::obsolete_reason(static_cast<http::status>(status)).data(),
                        http::obsolete_reason(static_cast<http::status>(status)).size()),
      "\r\n");
  for (const auto& [name, value] : headers) {
    // Framing is ours to decide; and a name or value that could end the header line (CR,
    // LF, NUL) or the name would inject headers or a body of the producer's making.
    if (IsHopByHopHeader(name) || !IsValidHeaderName(name) || !IsValidHeaderValue(value)) {
      continue;
    }
    absl::StrAppend(&head, name, ": ", value, "\r\n");
  }
  if (ShuttingDown()) keep_alive_ = false;
  if (streaming_) {
    if (http10_) {
      keep_alive_ = false;  // no chunked encoding in HTTP/1.0: the close ends the body
    } else {
      absl::StrAppend(&head, "Transfer-Encoding: chunked\r\n");
    }
    absl::StrAppend(&head, keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    Enqueue(std::move(head));
  } else {
    pending_head_ = std::move(head);
  }
}

bool Connection::SendBody(std::string_view data) {
  if (state_ != State::kResponding || finished_ || !headers_sent_) return true;
  if (!streaming_) {
    pending_body_.append(data);
    return true;
  }
  if (data.empty() || head_request_) return true;
  if (http10_) {
    Enqueue(std::string(data));
  } else {
    // "<size in hex>\r\n<data>\r\n", in one allocation (a stream sends one per event:
    // StrFormat cost more than the rest of the framing).
    char size[2 * sizeof(size_t)];
    const auto [size_end, ec] = std::to_chars(size, size + sizeof(size), data.size(), 16);
    std::string chunk;
    chunk.reserve(static_cast<size_t>(size_end - size) + data.size() + 4);
    chunk.append(size, size_end).append("\r\n").append(data).append("\r\n");
    Enqueue(std::move(chunk));
  }
  if (queued_bytes_ >= options().high_watermark) backpressured_ = true;
  return !backpressured_;
}

void Connection::Finish(bool complete) {
  if (state_ != State::kResponding || finished_) return;
  finished_ = true;
  if (server_ != nullptr) server_->RequestEnded();
  if (!headers_sent_) {
    // A producer that finishes without headers has failed internally.
    SendHeaders(500, {{"Content-Type", "application/json"}}, false);
    pending_body_ =
        R"({"error":{"message":"internal error: empty response","type":"server_error","param":null,"code":null}})";
  }
  if (!streaming_) {
    std::string out = std::move(pending_head_);
    if (ShuttingDown()) keep_alive_ = false;
    absl::StrAppend(&out, "Content-Length: ", pending_body_.size(), "\r\n",
                    keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n");
    if (!head_request_) out.append(pending_body_);
    pending_body_.clear();
    Enqueue(std::move(out));
  } else if (complete && !http10_) {
    Enqueue("0\r\n\r\n");
  }
  // A stream cut short must not look complete: close without the terminating chunk.
  if (!complete) close_after_write_ = true;
  if (!writing_ && queue_.empty()) {
    // Finish() may run inside Handle() or inside the active request's own callbacks:
    // never destroy it from here.
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kResponding && self->finished_ && !self->writing_ &&
          self->queue_.empty()) {
        self->AfterResponse();
      }
    });
  }
}

void Connection::Enqueue(std::string bytes) {
  if (state_ == State::kClosed || bytes.empty()) return;
  queued_bytes_ += bytes.size();
  queue_.push_back(std::move(bytes));
  DoWrite();
}

void Connection::DoWrite() {
  if (writing_ || queue_.empty() || state_ == State::kClosed) return;
  writing_ = true;
  write_bufs_.clear();
  write_count_ = std::min<size_t>(queue_.size(), 64);
  for (size_t i = 0; i < write_count_; ++i) write_bufs_.push_back(asio::buffer(queue_[i]));
  ArmTimer(options().write_stall_timeout);
  asio::async_write(socket_, write_bufs_,
                    [self = shared_from_this()](beast::error_code ec, size_t) {
                      self->writing_ = false;
                      if (self->state_ == State::kClosed) return;
                      if (ec) {
                        self->Close();
                        return;
                      }
                      for (size_t i = 0; i < self->write_count_; ++i) {
                        self->queued_bytes_ -= self->queue_.front().size();
                        self->queue_.pop_front();
                      }
                      if (self->backpressured_ &&
                          self->queued_bytes_ <= self->options().low_watermark) {
                        self->backpressured_ = false;
                        if (self->active_ && !self->finished_) self->active_->OnSinkDrained();
                        if (self->state_ == State::kClosed) return;
                      }
                      if (!self->queue_.empty()) {
                        self->DoWrite();
                      } else if (self->state_ == State::kReadingBody) {
                        // An interim "100 Continue" went out: the body is still due.
                        self->ArmReceiveTimer(self->options().body_deadline);
                      } else {
                        self->DisarmTimer();
                        if (self->state_ == State::kResponding && self->finished_) {
                          self->AfterResponse();
                        }
                      }
                    });
}

void Connection::AfterResponse() {
  if (state_ != State::kResponding) return;
  active_.reset();
  if (close_after_write_ || !keep_alive_ || close_when_idle_ || ShuttingDown()) {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    state_ = State::kLingering;
    ArmTimer(kLingerTime);
    ReadMore();
    return;
  }
  state_ = State::kReadingHead;
  ArmTimer(options().idle_timeout);
  ProcessInput();
}

void Connection::CloseWhenIdle() {
  close_when_idle_ = true;
  if (state_ == State::kReadingHead && in_.size() == 0) Close();
}

void Connection::CloseNow() { Close(); }

void Connection::ArmReceiveTimer(absl::Duration total) {
  ArmReceiveTimerAt(std::chrono::steady_clock::now(), total);
}

void Connection::ArmReceiveTimerAt(SteadyTime now, absl::Duration total) {
  const HttpServer::Options& o = options();
  SteadyTime deadline = std::min(DeadlineAfter(now, o.header_timeout),
                                 DeadlineAfter(phase_start_, total));
  if (o.min_receive_rate > 0) {
    const absl::Duration earned = absl::Seconds(static_cast<double>(phase_bytes_) /
                                                static_cast<double>(o.min_receive_rate));
    deadline = std::min(deadline, DeadlineAfter(phase_start_, o.receive_rate_grace + earned));
  }
  SetDeadline(deadline);
}

void Connection::SetDeadline(SteadyTime deadline) {
  deadline_ = deadline;
  // A pending wait that expires no later than this deadline re-checks then; one that
  // would expire later (a short linger after a long idle wait) is replaced.
  if (!timer_waiting_ || deadline_ < timer_expiry_) WaitForDeadline();
}

void Connection::WaitForDeadline() {
  if (deadline_ == SteadyTime::max() || state_ == State::kClosed) return;
  const HttpServer::Options& o = options();
  // Every deadline set is at most this far out, except that the minimum-rate rule can set
  // one receive_rate_grace after a phase starts.
  const absl::Duration horizon = std::min(
      {o.idle_timeout, o.header_timeout, o.write_stall_timeout,
       o.min_receive_rate > 0 && o.receive_rate_grace > absl::ZeroDuration()
           ? o.receive_rate_grace
           : absl::InfiniteDuration()});
  const SteadyTime expiry =
      std::min(deadline_, DeadlineAfter(std::chrono::steady_clock::now(), horizon));
  timer_.expires_at(expiry);  // cancels a pending wait; its handler sees operation_aborted
  timer_expiry_ = expiry;
  timer_waiting_ = true;
  timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
    // Aborted: superseded by a newer wait (which owns timer_waiting_) or closed.
    if (ec == asio::error::operation_aborted) return;
    self->timer_waiting_ = false;
    if (ec || self->state_ == State::kClosed) return;
    self->OnTimer();
  });
}

void Connection::OnTimer() {
  if (deadline_ == SteadyTime::max()) return;  // disarmed meanwhile: stop waiting
  if (deadline_ > std::chrono::steady_clock::now()) {
    WaitForDeadline();  // moved on since this wait started
    return;
  }
  DisarmTimer();
  switch (state_) {
    case State::kReadingHead:
      if (in_.size() == 0) {
        Close();  // idle keep-alive connection
      } else {
        if (server_ != nullptr) server_->RequestTimedOut();
        ReplyError(408, absl::InvalidArgumentError("request head not received in time"));
      }
      return;
    case State::kReadingBody:
      if (server_ != nullptr) server_->RequestTimedOut();
      ReplyError(408, absl::InvalidArgumentError("request body not received in time"));
      return;
    case State::kResponding:
      if (writing_) Close();  // the client stopped reading
      return;
    case State::kLingering:
      Close();
      return;
    case State::kClosed:
      return;
  }
}

void Connection::Close() {
  if (state_ == State::kClosed) return;
  bool was_responding = state_ == State::kResponding;
  state_ = State::kClosed;
  beast::error_code ignored;
  timer_.cancel();
  socket_.close(ignored);
  if (was_responding && !finished_ && server_ != nullptr) server_->RequestEnded();
  // Cancels the upstream call of a request still in flight.
  std::unique_ptr<ActiveRequest> active = std::move(active_);
  active.reset();
  queue_.clear();
  queued_bytes_ = 0;
  if (server_ != nullptr) server_->Remove(this);
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(asio::io_context& io,
                                                              const Options& options,
                                                              RequestHandler handler) {
  if (options.low_watermark > options.high_watermark) {
    return absl::InvalidArgumentError("low_watermark: must not exceed high_watermark");
  }
  for (auto [name, d] : {std::pair{"header_timeout", options.header_timeout},
                         std::pair{"head_deadline", options.head_deadline},
                         std::pair{"body_deadline", options.body_deadline},
                         std::pair{"idle_timeout", options.idle_timeout},
                         std::pair{"write_stall_timeout", options.write_stall_timeout}}) {
    if (d <= absl::ZeroDuration()) return absl::InvalidArgumentError(absl::StrCat(name, ": must be > 0"));
  }
  if (options.receive_rate_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("receive_rate_grace: must be >= 0");
  }
  if (options.max_connections == 0) {
    return absl::InvalidArgumentError("max_connections: must be > 0");
  }
  if (options.max_requests_in_flight == 0) {
    return absl::InvalidArgumentError("max_requests_in_flight: must be > 0");
  }
  if (options.accept_backoff_initial <= absl::ZeroDuration() ||
      options.accept_backoff_max < options.accept_backoff_initial) {
    return absl::InvalidArgumentError(
        "accept_backoff_initial: must be > 0 and not exceed accept_backoff_max");
  }
  auto server = std::make_unique<ServerImpl>(io, options, std::move(handler));
  if (absl::Status st = server->Listen(); !st.ok()) return st;
  return server;
}

}  // namespace modeenvoy::proxy
