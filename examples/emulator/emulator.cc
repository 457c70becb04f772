// The emulator's HTTP/1.1 server: Beast parses requests, responses are written as planned
// bytes (scripting.h) so pacing, stalls and resets can fall at any byte. The only Beast TU.
#include "examples/emulator/emulator.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without including it
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
// TSan cannot see Debian's prebuilt absl::Mutex; these locks tell it (make test-tsan).
#include "lib/core/mutex.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace modeenvoy::emulator {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kMaxHeaderBytes = 64 << 10;
// A reset right behind data can overtake it in the client's kernel queue handling; a short
// pause lets what was sent be read first, so "half the response, then a reset" is what the
// client sees.
constexpr absl::Duration kBeforeReset = absl::Milliseconds(10);

std::string Lower(beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

Request ToRequest(http::request<http::string_body>&& req) {
  Request r;
  r.method = std::string(req.method_string());
  r.target = std::string(req.target());
  r.path = r.target.substr(0, r.target.find('?'));
  for (const auto& field : req) {
    r.headers.emplace_back(Lower(field.name_string()), std::string(field.value()));
  }
  r.body = std::move(req.body());
  return r;
}

// One step of writing a response.
struct Step {
  enum Kind { kWrite, kDelay, kReset } kind;
  std::string bytes;       // kWrite
  absl::Duration delay;    // kDelay; infinite waits until the client or Stop() ends it
};

// `chunked` is false for HTTP/1.0 clients: a streamed body then ends when the connection does.
std::string Head(const ResponsePlan& plan, size_t content_length, bool keep_alive,
                 bool chunked) {
  beast::string_view reason = http::obsolete_reason(http::int_to_status(plan.status));
  std::string head = absl::StrFormat("HTTP/1.1 %d %s\r\n", plan.status,
                                     std::string_view(reason.data(), reason.size()));
  for (const auto& [name, value] : plan.headers) {
    absl::StrAppendFormat(&head, "%s: %s\r\n", name, value);
  }
  if (plan.streaming) {
    if (chunked) head += "transfer-encoding: chunked\r\n";
  } else {
    absl::StrAppendFormat(&head, "content-length: %d\r\n", content_length);
  }
  head += keep_alive ? "connection: keep-alive\r\n\r\n" : "connection: close\r\n\r\n";
  return head;
}

std::vector<Step> BuildSteps(const ResponsePlan& p, bool keep_alive, bool chunked) {
  std::vector<Step> steps;
  auto write = [&](std::string bytes) { steps.push_back({Step::kWrite, std::move(bytes), {}}); };
  auto delay = [&](absl::Duration d) {
    if (d > absl::ZeroDuration()) steps.push_back({Step::kDelay, {}, d});
  };
  auto reset = [&] { steps.push_back({Step::kReset, {}, {}}); };

  if (p.fail == FailMode::kStallFirstByte) delay(p.stall);
  delay(p.first_byte_latency);
  if (p.fail == FailMode::kReset) {
    reset();
    return steps;
  }
  if (!p.streaming) {
    std::string body;
    for (const std::string& part : p.parts) body += part;
    std::string head = Head(p, body.size(), keep_alive, chunked);
    const size_t half = body.size() / 2;
    switch (p.fail) {
      case FailMode::kResetMid:
        write(head + body.substr(0, half));
        delay(kBeforeReset);
        reset();
        break;
      case FailMode::kStall:
        write(std::move(head));
        delay(p.stall);
        write(std::move(body));
        break;
      case FailMode::kStallMid:
        write(head + body.substr(0, half));
        delay(p.stall);
        write(body.substr(half));
        break;
      default:
        write(head + body);
        break;
    }
    return steps;
  }
  write(Head(p, 0, keep_alive, chunked));  // the head leaves first, as a real server flushes it
  if (p.fail == FailMode::kStall) delay(p.stall);
  const size_t mid = p.fail_at.value_or(p.parts.size() / 2);
  for (size_t i = 0; i < p.parts.size(); ++i) {
    if (i == mid && p.fail == FailMode::kResetMid) {
      delay(kBeforeReset);
      reset();
      return steps;
    }
    if (i == mid && p.fail == FailMode::kStallMid) delay(p.stall);
    if (i > 0) delay(p.part_interval);
    if (!chunked) {
      write(p.parts[i]);
      continue;
    }
    std::string frame = absl::StrFormat("%x\r\n", p.parts[i].size()) + p.parts[i] + "\r\n";
    if (i + 1 == p.parts.size() && !(p.fail == FailMode::kResetMid && mid >= p.parts.size())) {
      frame += "0\r\n\r\n";  // last event and end of body together
    }
    write(std::move(frame));
  }
  if (mid >= p.parts.size() && p.fail == FailMode::kResetMid) {
    delay(kBeforeReset);  // every planned event went out; the body never ends
    reset();
    return steps;
  }
  if (p.parts.empty() && chunked) write("0\r\n\r\n");
  return steps;
}

class Session;

class Server : public std::enable_shared_from_this<Server> {
 public:
  Server(asio::io_context& io, EmulatorOptions options, UsageCounting counting)
      : io_(io),
        options_(std::move(options)),
        dialects_(DefaultDialects()),
        counting_(std::move(counting)),
        acceptor_(io) {}

  absl::Status Listen() {
    error_code ec;
    std::string host = options_.host == "localhost" ? "127.0.0.1" : options_.host;
    asio::ip::address address = asio::ip::make_address(host, ec);
    if (ec) {
      return absl::InvalidArgumentError(
          absl::StrFormat("host: '%s' is not an IP address", options_.host));
    }
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrFormat("listen on %s:%d: %s", host, options_.port, ec.message()));
    }
    port_ = acceptor_.local_endpoint(ec).port();
    asio::post(io_, [self = shared_from_this()] { self->Accept(); });
    return absl::OkStatus();
  }

  uint16_t port() const { return port_; }
  const EmulatorOptions& options() const { return options_; }
  const UsageCounting& counting() const { return counting_; }
  const std::vector<std::unique_ptr<ProviderDialect>>& dialects() const { return dialects_; }

  void Stop() {
    asio::dispatch(io_, [self = shared_from_this()] { self->StopOnLoop(); });
  }

  // Answers one request (loop thread).
  ResponsePlan Handle(const Request& request);
  // As Handle, with the fault profile its path prefix chose (`name` "" = server-wide).
  ResponsePlan HandleWithFaults(const Request& request, const FaultProfile& faults,
                                const std::string& name);

  void CountConnection() {
    core_internal::MutexLock lock(&mu_);
    ++stats_.connections;
  }
  void CountAborted() {
    core_internal::MutexLock lock(&mu_);
    ++stats_.aborted;
  }
  void Record(const Request& request) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    RecordLocked(request);
  }

  EmulatorStats Stats() const ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    return stats_;
  }
  void ResetStats() ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    stats_ = EmulatorStats();
    attempts_.clear();
    fault_draws_.clear();
  }
  // The attempt number of the next use of script `id` (0-based), counted.
  uint64_t NextAttempt(std::string_view id) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    return attempts_[std::string(id)]++;
  }
  void Queue(Headers headers, int times) ABSL_LOCKS_EXCLUDED(mu_) {
    if (times <= 0) return;
    core_internal::MutexLock lock(&mu_);
    queued_.push_back({std::move(headers), times});
  }

  void Register(Session* s, std::weak_ptr<Session> w) { sessions_[s] = std::move(w); }
  void Unregister(Session* s) { sessions_.erase(s); }
  bool stopped() const { return stopped_; }

 private:
  void Accept();
  void StopOnLoop();

  void RecordLocked(const Request& request) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++stats_.requests;
    stats_.recent.push_back({request.method, request.target, request.headers, request.body});
    if (stats_.recent.size() > EmulatorStats::kMaxRecent) {
      stats_.recent.erase(stats_.recent.begin());
    }
  }

  asio::io_context& io_;
  const EmulatorOptions options_;
  const std::vector<std::unique_ptr<ProviderDialect>> dialects_;
  const UsageCounting counting_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  // Loop thread only.
  bool stopped_ = false;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;

  mutable absl::Mutex mu_;
  EmulatorStats stats_ ABSL_GUARDED_BY(mu_);
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::pair<Headers, int>> queued_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, uint64_t> attempts_ ABSL_GUARDED_BY(mu_);  // per script id
  // Provider requests drawn against each fault profile so far (by profile name).
  std::unordered_map<std::string, uint64_t> fault_draws_ ABSL_GUARDED_BY(mu_);
};

// One client connection: read a request, write its planned response, repeat.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Server> server, tcp::socket socket)
      : server_(std::move(server)), socket_(std::move(socket)), timer_(socket_.get_executor()) {}
  ~Session() { server_->Unregister(this); }

  void Start() {
    server_->Register(this, weak_from_this());
    ReadHeader();
  }

  // Closes at once; a response in flight counts as aborted.
  void Abort() {
    if (closed_) return;
    if (responding_) server_->CountAborted();
    Close();
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(kMaxHeaderBytes);
    parser_->body_limit(server_->options().max_body_bytes);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](error_code ec, size_t) {
                              self->OnHeader(ec);
                            });
  }

  void OnHeader(error_code ec) {
    if (ec) return OnReadError(ec);
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    http11_ = req.version() >= 11;
    if (auto length = parser_->content_length();
        length && *length > server_->options().max_body_bytes) {
      return RejectBeforeBody(ErrorCause::kBodyTooLarge, 413);
    }
    beast::string_view expect = req[http::field::expect];
    if (Lower(expect) == "100-continue") {
      // curl sends it for large or chunked bodies and would otherwise wait a second.
      auto interim = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(socket_, asio::buffer(*interim),
                        [self = shared_from_this(), interim](error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](error_code ec, size_t) {
                       self->OnRequest(ec);
                     });
  }

  void OnRequest(error_code ec) {
    if (ec == http::error::body_limit) return RejectBeforeBody(ErrorCause::kBodyTooLarge, 413);
    if (ec) return OnReadError(ec);
    Request request = ToRequest(parser_->release());
    Respond(server_->Handle(request));
  }

  void OnReadError(error_code ec) {
    if (ec == http::error::header_limit) return RejectBeforeBody(ErrorCause::kBadHttp, 431);
    // Beast checks Content-Length against body_limit while parsing the header.
    if (ec == http::error::body_limit) return RejectBeforeBody(ErrorCause::kBodyTooLarge, 413);
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == http::error::partial_message || ec == asio::error::operation_aborted ||
        ec == asio::error::connection_reset || closed_) {
      return Close();
    }
    RejectBeforeBody(ErrorCause::kBadHttp, 400);
  }

  // Answers without (the rest of) the body and closes; the request still counts.
  void RejectBeforeBody(ErrorCause cause, int status) {
    Request request;
    if (parser_.has_value() && parser_->is_header_done()) {
      auto& header = parser_->get();
      request.method = std::string(header.method_string());
      request.target = std::string(header.target());
      request.path = request.target.substr(0, request.target.find('?'));
      for (const auto& f : header) {
        request.headers.emplace_back(Lower(f.name_string()), std::string(f.value()));
      }
      server_->Record(request);
    }
    Respond(PlanHttpError(cause, status, request, server_->dialects()));
  }

  void Respond(ResponsePlan plan) {
    if (plan.close || (plan.streaming && !http11_)) keep_alive_ = false;
    steps_ = BuildSteps(plan, keep_alive_, /*chunked=*/http11_);
    next_step_ = 0;
    responding_ = true;
    ++response_generation_;
    WatchPeer();
    RunSteps();
  }

  void RunSteps() {
    if (closed_) return;
    if (next_step_ == steps_.size()) return FinishResponse();
    Step& step = steps_[next_step_++];
    switch (step.kind) {
      case Step::kWrite:
        asio::async_write(socket_, asio::buffer(step.bytes),
                          [self = shared_from_this()](error_code ec, size_t) {
                            if (ec) return self->Abort();  // client gone
                            self->RunSteps();
                          });
        return;
      case Step::kDelay:
        if (step.delay == absl::InfiniteDuration()) return;  // until client close or Stop()
        timer_.expires_after(absl::ToChronoNanoseconds(step.delay));
        timer_.async_wait([self = shared_from_this()](error_code ec) {
          if (!ec) self->RunSteps();
        });
        return;
      case Step::kReset: {
        error_code ignored;
        socket_.set_option(asio::socket_base::linger(true, 0), ignored);  // close sends RST
        Abort();
        return;
      }
    }
  }

  void FinishResponse() {
    responding_ = false;
    ++response_generation_;
    error_code ignored;
    socket_.cancel(ignored);  // the peer watch; nothing else is pending now
    steps_.clear();
    if (keep_alive_ && !server_->stopped()) return ReadHeader();
    LingerClose();
  }

  // Whether the client closed its end: peeks without consuming (data = a pipelined request).
  enum class Peer { kOpen, kData, kGone };
  Peer PeekPeer() {
    char c;
    ssize_t n = ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return Peer::kData;
    if (n == 0) return Peer::kGone;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? Peer::kOpen
                                                                         : Peer::kGone;
  }

  // While a response is being written (or stalled), notices a client that goes away.
  void WatchPeer() {
    switch (PeekPeer()) {
      case Peer::kGone:
        return asio::post(socket_.get_executor(),
                          [self = shared_from_this(), gen = response_generation_] {
                            if (gen == self->response_generation_) self->Abort();
                          });
      case Peer::kData:
        return;  // a pipelined request follows; the write path will notice a close
      case Peer::kOpen:
        break;
    }
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this(),
                                                gen = response_generation_](error_code ec) {
      if (ec || self->closed_ || gen != self->response_generation_) return;
      self->WatchPeer();
    });
  }

  // Half-closes, then discards what the client still sends for a while before closing, so
  // an unread request body does not turn our final response into a connection reset.
  void LingerClose() {
    error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    timer_.expires_after(std::chrono::seconds(2));
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->Close();
    });
    Drain();
  }
  void Drain() {
    auto sink = std::make_shared<std::array<char, 16384>>();
    socket_.async_read_some(asio::buffer(*sink), [self = shared_from_this(), sink](
                                                     error_code ec, size_t) {
      if (ec) return self->Close();
      self->Drain();
    });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    responding_ = false;
    error_code ignored;
    timer_.cancel();
    socket_.close(ignored);
  }

  std::shared_ptr<Server> server_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::vector<Step> steps_;
  size_t next_step_ = 0;
  bool keep_alive_ = true;
  bool http11_ = true;
  bool responding_ = false;
  bool closed_ = false;
  uint64_t response_generation_ = 0;
};

void Server::Accept() {
  if (stopped_) return;
  acceptor_.async_accept([self = shared_from_this()](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || self->stopped_) return;
    if (!ec) {
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // else small SSE events wait ~40 ms
      self->CountConnection();
      std::make_shared<Session>(self, std::move(socket))->Start();
    }
    self->Accept();
  });
}

void Server::StopOnLoop() {
  if (stopped_) return;
  stopped_ = true;
  error_code ignored;
  acceptor_.close(ignored);
  std::vector<std::shared_ptr<Session>> live;
  for (auto& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) live.push_back(std::move(s));
  }
  for (auto& s : live) s->Abort();
}

// The controls of the fault drawn for the `n`-th request of `faults`; empty: none.
Headers DrawFault(const FaultProfile& faults, uint64_t n) {
  if (faults.burst_period > 0 &&
      n % static_cast<uint64_t>(faults.burst_period) < static_cast<uint64_t>(faults.burst)) {
    return {{"x-emulator-status", "429"},
            {"x-emulator-retry-after", absl::StrCat(faults.retry_after_seconds)}};
  }
  // SplitMix64 of seed and n: a uniform draw in [0, 1) per request, the same every run.
  uint64_t z = faults.seed + (n + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 11) * 0x1.0p-53;
  if (u < faults.server_error) return {{"x-emulator-status", "500"}};
  if (u < faults.server_error + faults.reset) return {{"x-emulator-fail", "reset"}};
  if (u < faults.server_error + faults.reset + faults.timeout) {
    return {{"x-emulator-fail", "stall-first-byte"}, {"x-emulator-stall-ms", "forever"}};
  }
  return {};
}

bool CarriesControls(const Request& request) {
  for (const auto& h : request.headers) {
    if (h.first.rfind("x-emulator-", 0) == 0) return true;
  }
  return false;
}

ResponsePlan Server::Handle(const Request& request) {
  constexpr std::string_view kFaults = "/faults/";
  if (request.path.rfind(kFaults, 0) != 0) return HandleWithFaults(request, options_.faults, "");
  const size_t slash = request.path.find('/', kFaults.size());
  std::string name = request.path.substr(
      kFaults.size(), slash == std::string::npos ? std::string::npos : slash - kFaults.size());
  auto it = options_.fault_profiles.find(name);
  if (it == options_.fault_profiles.end() || slash == std::string::npos) {
    Record(request);
    return PlanJson(404, "{\"error\": {\"message\": \"no such fault profile (--fault-profile)\"}}");
  }
  Request inner = request;
  inner.path = request.path.substr(slash);
  inner.target = request.target.substr(slash);
  return HandleWithFaults(inner, it->second, name);
}

ResponsePlan Server::HandleWithFaults(const Request& request, const FaultProfile& faults,
                                      const std::string& fault_name) {
  if (request.path.rfind("/emulator/", 0) == 0) {
    if (request.method == "GET" && request.path == "/emulator/stats") {
      return PlanJson(200, RenderStatsJson(Stats()));
    }
    if (request.method == "POST" && request.path == "/emulator/reset") {
      ResetStats();
      return PlanJson(200, "{\"ok\": true}");
    }
    if (request.method == "POST" && request.path == "/emulator/next") {
      Headers headers;
      int times = 1;
      absl::Status s = ParseQueuedControls(request.body, &headers, &times);
      if (!s.ok()) {
        std::string message(s.message().data(), s.message().size());
        return PlanJson(400, absl::StrFormat("{\"error\": {\"message\": \"%s\"}}", message));
      }
      Queue(std::move(headers), times);
      return PlanJson(200, absl::StrFormat("{\"queued\": %d}", times));
    }
    return PlanJson(404, "{\"error\": {\"message\": \"unknown emulator endpoint\"}}");
  }
  Headers queued;
  uint64_t sequence;
  {
    core_internal::MutexLock lock(&mu_);
    RecordLocked(request);
    sequence = ++sequence_;
    const bool provider_request = FindDialect(request, dialects_) != nullptr;
    if (!queued_.empty() && provider_request) {
      queued = queued_.front().first;
      if (--queued_.front().second == 0) queued_.pop_front();
    } else if (provider_request && faults.enabled() && !CarriesControls(request)) {
      queued = DrawFault(faults, fault_draws_[fault_name]++);
    }
  }
  emulator::NextAttempt next_attempt = [this](std::string_view id) { return NextAttempt(id); };
  PlanContext ctx{dialects_, options_, counting_, next_attempt, ClockOrSystem(options_.clock)};
  try {
    return PlanResponse(request, ctx, queued, sequence);
  } catch (const std::exception& e) {
    // A request the planner did not foresee (its JSON library throws on a type it did not
    // check) must not take the process down: answer 500 and keep serving.
    ApiError error = dialects_.front()->MakeError(ErrorCause::kInjected, 500, request);
    error.message = absl::StrFormat("emulator: internal error planning the response: %s",
                                    e.what());
    ResponsePlan plan;
    plan.status = 500;
    plan.headers.emplace_back("content-type", "application/json");
    plan.parts.push_back(dialects_.front()->RenderError(error));
    return plan;
  }
}

class EmulatorImpl final : public Emulator {
 public:
  explicit EmulatorImpl(std::shared_ptr<Server> server) : server_(std::move(server)) {}
  ~EmulatorImpl() override { server_->Stop(); }

  uint16_t port() const override { return server_->port(); }
  std::string_view usage_counter() const override {
    return server_->counting().words() ? "words" : "tokenizer";
  }
  void Stop() override { server_->Stop(); }
  EmulatorStats stats() const override { return server_->Stats(); }
  void ResetStats() override { server_->ResetStats(); }
  void QueueControls(std::vector<std::pair<std::string, std::string>> headers,
                     int times) override {
    for (auto& h : headers) h.first = Lower(h.first);
    server_->Queue(std::move(headers), times);
  }

 private:
  std::shared_ptr<Server> server_;
};

}  // namespace

absl::StatusOr<FaultProfile> ParseFaultProfile(std::string_view spec) {
  FaultProfile out;
  for (absl::string_view item : absl::StrSplit(absl::string_view(spec.data(), spec.size()), ',',
                                               absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    const std::string quoted = absl::StrCat("\"", item, "\"");
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(quoted, ": expected NAME=VALUE"));
    }
    auto share = [&](double* field) -> absl::Status {
      if (!absl::SimpleAtod(kv.second, field) || !(*field >= 0 && *field <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat(quoted, ": a share must be in [0, 1]"));
      }
      return absl::OkStatus();
    };
    absl::Status st;
    if (kv.first == "5xx") {
      st = share(&out.server_error);
    } else if (kv.first == "reset") {
      st = share(&out.reset);
    } else if (kv.first == "timeout") {
      st = share(&out.timeout);
    } else if (kv.first == "429") {
      std::pair<absl::string_view, absl::string_view> bp = absl::StrSplit(kv.second, '/');
      if (!absl::SimpleAtoi(bp.first, &out.burst) || !absl::SimpleAtoi(bp.second, &out.burst_period) ||
          out.burst < 1 || out.burst_period < 1 || out.burst_period > 1000000) {
        return absl::InvalidArgumentError(
            absl::StrCat(quoted, ": expected 429=B/P with 1 <= B <= P <= 1000000"));
      }
      if (out.burst > out.burst_period) {
        return absl::InvalidArgumentError(absl::StrCat(quoted, ": B must be <= P"));
      }
    } else if (kv.first == "retry_after") {
      if (!absl::SimpleAtoi(kv.second, &out.retry_after_seconds) ||
          out.retry_after_seconds < 0 || out.retry_after_seconds > 86400) {
        return absl::InvalidArgumentError(absl::StrCat(quoted, ": seconds in [0, 86400]"));
      }
    } else if (kv.first == "seed") {
      if (!absl::SimpleAtoi(kv.second, &out.seed)) {
        return absl::InvalidArgumentError(absl::StrCat(quoted, ": an unsigned integer"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          quoted, ": unknown fault (5xx, reset, timeout, 429, retry_after, seed)"));
    }
    if (!st.ok()) return st;
  }
  if (out.server_error + out.reset + out.timeout > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", std::string(spec), "\": 5xx + reset + timeout must not exceed 1"));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Emulator>> Emulator::Start(boost::asio::io_context& io,
                                                          EmulatorOptions options) {
  if (options.max_body_bytes == 0) {
    return absl::InvalidArgumentError("max_body_bytes: must be > 0");
  }
  ReplyControls probe = options.defaults;
  if (probe.status != 0 && (probe.status < 400 || probe.status > 599)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("defaults.status: must be 0 or in [400, 599], got %d", probe.status));
  }
  if (probe.chunks < 0) return absl::InvalidArgumentError("defaults.chunks: must be >= 0");
  absl::StatusOr<UsageCounting> counting =
      UsageCounting::Resolve(options.usage_counting, options.encoding);
  if (!counting.ok()) {
    return absl::Status(counting.status().code(),
                        absl::StrFormat("usage_counting: tokenizer unavailable: %s",
                                        counting.status().message()));
  }
  auto server = std::make_shared<Server>(io, std::move(options), *std::move(counting));
  absl::Status listening = server->Listen();
  if (!listening.ok()) return listening;
  return std::unique_ptr<Emulator>(std::make_unique<EmulatorImpl>(std::move(server)));
}

}  // namespace modeenvoy::emulator
