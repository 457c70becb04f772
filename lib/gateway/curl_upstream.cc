// lib/gateway/curl_upstream.cc: UpstreamClient on libcurl's multi_socket interface, driven by
// the host's EventLoop (curl's sockets through WatchFd, its timeout through one Timer).
//
// Re-entrancy model: handler methods run from inside curl callbacks (header/write) or right
// after curl returned (OnComplete). A handler may destroy its call handle there; the easy
// handle then cannot be removed from the multi handle while curl is on the stack, so the
// transfer is marked cancelled (its callbacks return 0, which makes curl abort it) and
// removed once curl returned. `depth_` counts the curl calls on the stack.
#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/upstream.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;
using core_internal::ToStd;

absl::Status GlobalInit() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return absl::InternalError(
        absl::StrFormat("curl_global_init failed: %s", curl_easy_strerror(result)));
  }
  return absl::OkStatus();
}

bool Limited(absl::Duration d) { return d > absl::ZeroDuration() && d < absl::InfiniteDuration(); }

int64_t Millis(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

// Timers run on real monotonic time whatever clock the loop reports (see EventLoop), so
// deadlines that re-arm them are kept on it too.
using SteadyTime = std::chrono::steady_clock::time_point;
SteadyTime SteadyNow() { return std::chrono::steady_clock::now(); }
// Now + d, with d capped at a century (which keeps the sum in range).
SteadyTime SteadyAfter(absl::Duration d) {
  return SteadyNow() + absl::ToChronoNanoseconds(std::min(d, absl::Hours(24 * 365 * 100)));
}

absl::Duration FromMicros(curl_off_t us) { return absl::Microseconds(us); }

class CurlCore;

// One call. Shared by the core (while in flight) and the caller's handle.
struct Transfer {
  CurlCore* core = nullptr;  // null once the client is gone
  CURL* easy = nullptr;      // null once removed from the multi handle
  UpstreamHandler* handler = nullptr;
  UpstreamRequest request;  // owns the body curl sends from
  curl_slist* header_list = nullptr;
  char error[CURL_ERROR_SIZE] = {0};

  bool finished = false;   // OnComplete delivered or the caller cancelled: no more callbacks
  bool cancelled = false;  // cancelled while curl was on the stack; abort from callbacks
  bool connected = false;  // a connection was established or reused (CURLOPT_PREREQFUNCTION)
  bool headers_started = false;  // first response byte seen
  bool headers_delivered = false;
  bool paused = false;       // the consumer asked for Pause()
  bool curl_paused = false;  // we returned CURL_WRITEFUNC_PAUSE and owe curl an unpause
  int status = 0;
  HttpHeaders response_headers;
  std::optional<absl::Status> own_timeout;  // set when one of our timers aborted the call

  absl::Time start;
  UpstreamCallStats stats;
  std::unique_ptr<Timer> first_byte_timer;
  std::unique_ptr<Timer> idle_timer;
  SteadyTime idle_deadline;  // last response byte (or resume) + timeouts.idle
  bool idle_armed = false;   // idle_timer is armed, for idle_deadline or earlier
  std::unique_ptr<Timer> fail_timer;     // delivers a failure found before reaching curl
  std::unique_ptr<Timer> unpause_timer;  // the deferred curl_easy_pause(CONT)

  ~Transfer() {
    if (header_list != nullptr) curl_slist_free_all(header_list);
  }
};

class CurlCore {
 public:
  CurlCore(EventLoop* loop, const CurlUpstreamOptions& options)
      : loop_(loop), options_(options), timer_(loop->NewTimer()) {}

  ~CurlCore() {
    // Abort everything still in flight without calling handlers.
    for (auto& [easy, t] : transfers_) {
      t->finished = true;
      t->handler = nullptr;
      t->core = nullptr;
      ClearTimers(*t);
      curl_multi_remove_handle(multi_, easy);
      curl_easy_cleanup(easy);
      t->easy = nullptr;
    }
    transfers_.clear();
    for (CURL* easy : idle_easy_) curl_easy_cleanup(easy);
    idle_easy_.clear();
    for (auto& t : pending_failures_) {
      t->core = nullptr;
      ClearTimers(*t);
    }
    // curl_multi_cleanup closes pooled connections and may call the socket and timer
    // callbacks, so the watches and the timer go after it.
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    multi_ = nullptr;
    watches_.clear();
    timer_.reset();
  }

  absl::Status Init() {
    multi_ = curl_multi_init();
    if (multi_ == nullptr) return absl::InternalError("curl_multi_init failed");
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlCore::SocketCallback);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlCore::TimerCallback);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    if (options_.max_connections_per_host > 0) {
      curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                        static_cast<long>(options_.max_connections_per_host));
    }
    if (options_.max_idle_connections > 0) {
      curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS,
                        static_cast<long>(options_.max_idle_connections));
    }
    return absl::OkStatus();
  }

  std::shared_ptr<Transfer> Start(UpstreamRequest request, UpstreamHandler* handler);
  void Cancel(const std::shared_ptr<Transfer>& t);
  void Pause(const std::shared_ptr<Transfer>& t);
  void Resume(const std::shared_ptr<Transfer>& t);

 private:
  static int SocketCallback(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp);
  static int TimerCallback(CURLM* multi, long timeout_ms, void* userp);
  void ArmTimer();
  void OnTimer();
  static size_t HeaderCallback(char* data, size_t size, size_t n, void* userp);
  static size_t WriteCallback(char* data, size_t size, size_t n, void* userp);
  static int PrereqCallback(void* userp, char*, char*, int, int);
  static curl_socket_t OpenSocketCallback(void* clientp, curlsocktype purpose,
                                          curl_sockaddr* address);
  static int CloseSocketCallback(void* clientp, curl_socket_t s);

  std::shared_ptr<Transfer> Shared(Transfer* t) {
    auto it = transfers_.find(t->easy);
    return it == transfers_.end() ? nullptr : it->second;
  }
  void SocketAction(curl_socket_t s, int flags);
  void AfterCurl();
  void ProcessCompletions();
  // Removes `t` from curl, fills its stats and delivers OnComplete(status) if still wanted.
  void Complete(const std::shared_ptr<Transfer>& t, absl::Status status);
  void Remove(Transfer& t);
  // Easy handles are reused: creating and destroying one per call cost about as much as
  // the gateway's own work on a request. ReleaseEasy() takes a handle out of the multi's
  // hands (removed or never added) and resets it, so no pointer into a finished Transfer
  // stays behind.
  CURL* NewEasy();
  void ReleaseEasy(CURL* easy);
  absl::Status StatusFromCurl(const Transfer& t, CURLcode code) const;
  void ArmIdle(const std::shared_ptr<Transfer>& t);
  void ArmIdleTimer(const std::shared_ptr<Transfer>& t, absl::Duration delay);
  void FailAsync(const std::shared_ptr<Transfer>& t, absl::Status status);
  void Timeout(const std::shared_ptr<Transfer>& t, std::string_view which, absl::Duration d);
  static void ClearTimers(Transfer& t) {
    t.first_byte_timer.reset();
    t.idle_timer.reset();
    t.idle_armed = false;
    t.fail_timer.reset();
    t.unpause_timer.reset();
  }
  absl::Status Configure(Transfer& t);

  EventLoop* const loop_;
  const CurlUpstreamOptions options_;
  CURLM* multi_ = nullptr;
  std::unique_ptr<Timer> timer_;
  absl::flat_hash_map<curl_socket_t, std::unique_ptr<FdWatch>> watches_;
  // Sockets curl opened through OpenSocketCallback and has not closed yet.
  absl::flat_hash_set<curl_socket_t> connection_sockets_;
  absl::flat_hash_map<CURL*, std::shared_ptr<Transfer>> transfers_;
  std::vector<CURL*> idle_easy_;  // reset handles for the next calls
  static constexpr size_t kMaxIdleEasy = 64;
  std::vector<std::shared_ptr<Transfer>> pending_failures_;  // failed before reaching curl
  std::vector<std::shared_ptr<Transfer>> to_remove_;         // cancelled inside curl
  int depth_ = 0;
  // curl's zero timeout, delivered through EventLoop::Post (see TimerCallback).
  bool timeout_now_ = false;     // curl's current timeout is "now"
  bool timeout_posted_ = false;  // a posted task will deliver it
  // curl's other timeouts, delivered through timer_ (see TimerCallback).
  SteadyTime timeout_at_ = SteadyTime::max();    // curl's current timeout; max() if none
  SteadyTime timer_expiry_ = SteadyTime::max();  // when timer_ fires; max() if not armed
  // Expires with the core; posted tasks check it before touching the core.
  std::shared_ptr<const bool> alive_ = std::make_shared<const bool>(true);
};

absl::Status CurlCore::Configure(Transfer& t) {
  CURL* e = t.easy;
  const UpstreamRequest& r = t.request;
  curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
  curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &CurlCore::HeaderCallback);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &CurlCore::WriteCallback);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &CurlCore::PrereqCallback);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
  // Which sockets are connections (see SocketCallback). Connections outlive transfers:
  // curl keeps the close callback with the connection.
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &CurlCore::OpenSocketCallback);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, this);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &CurlCore::CloseSocketCallback);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);
  // Behind an HTTPS proxy (https_proxy in the environment) curl would otherwise report the
  // proxy's "200 Connection established" as the response head.
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());

  if (r.method == "GET") {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else if (r.method == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else {
    if (r.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    if (r.method == "POST" || !r.body.empty()) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
    }
  }

  bool has_user_agent = false;
  for (const auto& [name, value] : r.headers) {
    if (absl::EqualsIgnoreCase(ToAbsl(name), "user-agent")) has_user_agent = true;
    if (absl::EqualsIgnoreCase(ToAbsl(name), "content-length")) continue;  // curl computes it
    std::string line = value.empty() ? name + ";" : name + ": " + value;
    t.header_list = curl_slist_append(t.header_list, line.c_str());
  }
  // Without this curl sends "Expect: 100-continue" for bodies over 1 KiB and waits a round
  // trip (or a full second for servers that ignore it).
  t.header_list = curl_slist_append(t.header_list, "Expect:");
  if (r.method == "POST" && !FindHeader(r.headers, "content-type").has_value()) {
    t.header_list = curl_slist_append(t.header_list, "Content-Type: application/json");
  }
  if (t.header_list == nullptr) return absl::InternalError("curl_slist_append failed");
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);
  if (!has_user_agent && !options_.user_agent.empty()) {
    curl_easy_setopt(e, CURLOPT_USERAGENT, options_.user_agent.c_str());
  }

  if (Limited(r.timeouts.connect)) {
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(1, Millis(r.timeouts.connect))));
  }
  if (Limited(r.timeouts.total)) {
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(1, Millis(r.timeouts.total))));
  }
  return absl::OkStatus();
}

std::shared_ptr<Transfer> CurlCore::Start(UpstreamRequest request, UpstreamHandler* handler) {
  auto t = std::make_shared<Transfer>();
  t->core = this;
  t->handler = handler;
  t->request = std::move(request);
  t->start = loop_->clock().MonotonicNow();

  absl::string_view url = ToAbsl(t->request.url);
  if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://")) {
    FailAsync(t, absl::InvalidArgumentError(absl::StrFormat(
                     "upstream url \"%s\" must start with http:// or https://", url)));
    return t;
  }
  if (t->request.method.empty()) {
    FailAsync(t, absl::InvalidArgumentError("upstream request method must not be empty"));
    return t;
  }
  t->easy = NewEasy();
  if (t->easy == nullptr) {
    FailAsync(t, absl::InternalError("curl_easy_init failed"));
    return t;
  }
  if (absl::Status s = Configure(*t); !s.ok()) {
    ReleaseEasy(t->easy);
    t->easy = nullptr;
    FailAsync(t, std::move(s));
    return t;
  }
  transfers_[t->easy] = t;
  // Only arms curl's timer (TimerCallback); the transfer starts on a later loop turn.
  CURLMcode mc = curl_multi_add_handle(multi_, t->easy);
  if (mc != CURLM_OK) {
    transfers_.erase(t->easy);
    ReleaseEasy(t->easy);
    t->easy = nullptr;
    FailAsync(t, absl::InternalError(
                     absl::StrFormat("curl_multi_add_handle: %s", curl_multi_strerror(mc))));
    return t;
  }
  if (Limited(t->request.timeouts.first_byte)) {
    t->first_byte_timer = loop_->NewTimer();
    std::weak_ptr<Transfer> weak = t;
    absl::Duration d = t->request.timeouts.first_byte;
    t->first_byte_timer->Arm(d, [this, weak, d] {
      if (auto t = weak.lock()) Timeout(t, "first byte", d);
    });
  }
  return t;
}

void CurlCore::FailAsync(const std::shared_ptr<Transfer>& t, absl::Status status) {
  pending_failures_.push_back(t);
  t->fail_timer = loop_->NewTimer();
  std::weak_ptr<Transfer> weak = t;
  t->fail_timer->Arm(absl::ZeroDuration(), [this, weak, status = std::move(status)] {
    std::shared_ptr<Transfer> t = weak.lock();
    if (t == nullptr) return;
    std::erase(pending_failures_, t);
    if (t->finished) return;
    t->finished = true;
    t->stats.total_time = loop_->clock().MonotonicNow() - t->start;
    UpstreamHandler* h = std::exchange(t->handler, nullptr);
    if (h != nullptr) h->OnComplete(status);
  });
}

void CurlCore::Timeout(const std::shared_ptr<Transfer>& t, std::string_view which,
                       absl::Duration d) {
  if (t->finished || t->easy == nullptr) return;
  Complete(t, absl::DeadlineExceededError(
                  absl::StrFormat("upstream %s timeout after %dms", which, Millis(d))));
}

void CurlCore::ArmIdle(const std::shared_ptr<Transfer>& t) {
  const absl::Duration d = t->request.timeouts.idle;
  if (!Limited(d) || t->finished || t->paused) return;
  // Runs for every response chunk: it moves the deadline, not the timer. An armed timer
  // fires at the earlier deadline and re-arms for what is left, so a stream costs one timer
  // update per idle period rather than one per chunk.
  t->idle_deadline = SteadyAfter(d);
  if (!t->idle_armed) ArmIdleTimer(t, d);
}

void CurlCore::ArmIdleTimer(const std::shared_ptr<Transfer>& t, absl::Duration delay) {
  if (t->idle_timer == nullptr) t->idle_timer = loop_->NewTimer();
  t->idle_armed = true;
  std::weak_ptr<Transfer> weak = t;
  t->idle_timer->Arm(delay, [this, weak] {
    std::shared_ptr<Transfer> t = weak.lock();
    if (t == nullptr) return;
    t->idle_armed = false;
    if (t->finished || t->paused) return;
    const SteadyTime now = SteadyNow();
    if (t->idle_deadline > now) {
      ArmIdleTimer(t, absl::FromChrono(t->idle_deadline - now));
      return;
    }
    Timeout(t, "idle", t->request.timeouts.idle);
  });
}

void CurlCore::Cancel(const std::shared_ptr<Transfer>& t) {
  if (t->finished) return;
  t->finished = true;
  t->handler = nullptr;
  ClearTimers(*t);
  std::erase(pending_failures_, t);
  if (t->easy == nullptr) return;
  if (depth_ > 0) {
    // curl is on the stack (we are inside one of its callbacks): let the callbacks abort
    // the transfer and remove it once curl returned.
    t->cancelled = true;
    to_remove_.push_back(t);
    return;
  }
  Remove(*t);
}

void CurlCore::Pause(const std::shared_ptr<Transfer>& t) {
  if (t->finished || t->paused) return;
  t->paused = true;
  if (t->idle_timer != nullptr) t->idle_timer->Cancel();
  t->idle_armed = false;
  if (t->unpause_timer != nullptr) t->unpause_timer->Cancel();  // a pending unpause is moot
}

void CurlCore::Resume(const std::shared_ptr<Transfer>& t) {
  if (t->finished || !t->paused) return;
  t->paused = false;
  if (t->headers_started) ArmIdle(t);
  if (!t->curl_paused) return;  // nothing was held back; curl keeps reading on its own
  if (t->unpause_timer == nullptr) t->unpause_timer = loop_->NewTimer();
  std::weak_ptr<Transfer> weak = t;
  // curl_easy_pause(CONT) delivers held data synchronously; deferring it keeps OnData out
  // of Resume()'s stack.
  t->unpause_timer->Arm(absl::ZeroDuration(), [this, weak] {
    std::shared_ptr<Transfer> t = weak.lock();
    if (t == nullptr || t->finished || t->paused || !t->curl_paused || t->easy == nullptr) return;
    t->curl_paused = false;
    ++depth_;
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
    --depth_;
    AfterCurl();
  });
}

CURL* CurlCore::NewEasy() {
  if (idle_easy_.empty()) return curl_easy_init();
  CURL* easy = idle_easy_.back();
  idle_easy_.pop_back();
  return easy;
}

void CurlCore::ReleaseEasy(CURL* easy) {
  if (idle_easy_.size() >= kMaxIdleEasy) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);
  idle_easy_.push_back(easy);
}

void CurlCore::Remove(Transfer& t) {
  if (t.easy == nullptr) return;
  CURL* easy = t.easy;
  t.easy = nullptr;
  curl_multi_remove_handle(multi_, easy);
  ReleaseEasy(easy);
  transfers_.erase(easy);  // may drop the last reference to `t`: touch nothing after
}

void CurlCore::Complete(const std::shared_ptr<Transfer>& t, absl::Status status) {
  if (t->easy != nullptr) {
    curl_off_t v = 0;
    long connects = 0;
    if (curl_easy_getinfo(t->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
      t->stats.new_connections = connects;
    }
    if (curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME_T, &v) == CURLE_OK) {
      t->stats.connect_time = FromMicros(v);
    }
    if (curl_easy_getinfo(t->easy, CURLINFO_STARTTRANSFER_TIME_T, &v) == CURLE_OK) {
      t->stats.first_byte_time = FromMicros(v);
    }
  }
  t->stats.total_time = loop_->clock().MonotonicNow() - t->start;
  const bool deliver = !t->finished;
  t->finished = true;
  ClearTimers(*t);
  UpstreamHandler* h = std::exchange(t->handler, nullptr);
  Remove(*t);
  if (deliver && h != nullptr) h->OnComplete(std::move(status));
}

absl::Status CurlCore::StatusFromCurl(const Transfer& t, CURLcode code) const {
  if (code == CURLE_OK) return absl::OkStatus();
  std::string text = t.error[0] != '\0' ? std::string(t.error) : curl_easy_strerror(code);
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT: {
      const UpstreamTimeouts& to = t.request.timeouts;
      bool connect_phase = !t.connected && Limited(to.connect) &&
                           (!Limited(to.total) || to.connect <= to.total);
      if (connect_phase) {
        return absl::DeadlineExceededError(absl::StrFormat(
            "upstream connect timeout after %dms: %s", Millis(to.connect), text));
      }
      return absl::DeadlineExceededError(
          absl::StrFormat("upstream total timeout after %dms: %s", Millis(to.total), text));
    }
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return absl::InvalidArgumentError(absl::StrFormat("upstream request invalid: %s", text));
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_FAILED_INIT:
      return absl::InternalError(absl::StrFormat("upstream client error: %s", text));
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: {
      // The connection was lost after it was made: the upstream may have taken the request.
      absl::Status lost =
          absl::UnavailableError(absl::StrFormat("upstream request failed: %s", text));
      return t.connected ? MarkConnectionReset(std::move(lost)) : lost;
    }
    default:
      // Connection refused, DNS, TLS, malformed responses: retryable.
      return absl::UnavailableError(absl::StrFormat("upstream request failed: %s", text));
  }
}

void CurlCore::SocketAction(curl_socket_t s, int flags) {
  int running = 0;
  ++depth_;
  curl_multi_socket_action(multi_, s, flags, &running);
  --depth_;
  AfterCurl();
}

void CurlCore::AfterCurl() {
  if (depth_ > 0) return;
  std::vector<std::shared_ptr<Transfer>> removals;
  removals.swap(to_remove_);
  for (auto& t : removals) Remove(*t);
  ProcessCompletions();
}

void CurlCore::ProcessCompletions() {
  // Collect first: OnComplete may start or cancel other calls.
  std::vector<std::pair<std::shared_ptr<Transfer>, CURLcode>> done;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    auto it = transfers_.find(msg->easy_handle);
    if (it == transfers_.end()) continue;
    done.emplace_back(it->second, msg->data.result);
  }
  for (auto& [t, code] : done) {
    if (t->easy == nullptr) continue;  // removed by an earlier OnComplete's cancel
    absl::Status status = StatusFromCurl(*t, code);
    Complete(t, std::move(status));
  }
}

int CurlCore::SocketCallback(CURL* /*easy*/, curl_socket_t s, int what, void* userp,
                             void* /*socketp*/) {
  auto* core = static_cast<CurlCore*>(userp);
  if (what == CURL_POLL_REMOVE) {
    auto it = core->watches_.find(s);
    if (it == core->watches_.end()) return 0;
    if (core->connection_sockets_.contains(s)) {
      // A connection socket going back to the pool (or about to be closed): its watch stays,
      // paused, until CloseSocketCallback, so the next request on the pooled connection
      // costs no registration with the loop (epoll ADD, DEL and an ioctl per request).
      it->second->SetEvents(kIoNone);
    } else {
      // Any other descriptor (the threaded resolver's socketpair) may be closed without
      // CloseSocketCallback: a watch kept past that would be inherited by the next socket
      // with the same number, with a kernel registration that died with the old one.
      core->watches_.erase(it);  // the loop tolerates destroying a watch from its callback
    }
    return 0;
  }
  uint32_t events = kIoNone;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= kIoRead;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= kIoWrite;
  auto it = core->watches_.find(s);
  if (it != core->watches_.end()) {
    it->second->SetEvents(events);
  } else {
    core->watches_[s] = core->loop_->WatchFd(s, events, [core, s](uint32_t ready) {
      int flags = 0;
      if (ready & kIoRead) flags |= CURL_CSELECT_IN;
      if (ready & kIoWrite) flags |= CURL_CSELECT_OUT;
      if (ready & kIoError) flags |= CURL_CSELECT_ERR;
      core->SocketAction(s, flags);
    });
  }
  return 0;
}

int CurlCore::TimerCallback(CURLM* /*multi*/, long timeout_ms, void* userp) {
  auto* core = static_cast<CurlCore*>(userp);
  if (core->timer_ == nullptr) return 0;
  // Each call replaces the previous timeout. The host timer is not moved for that: moving
  // it (a timer-queue update that usually reprograms the kernel timer, since curl's is the
  // loop's nearest) cost a system call per request. An armed timer that fires before the
  // current timeout re-arms for it (OnTimer); one that finds none does nothing.
  core->timeout_now_ = false;
  core->timeout_at_ = SteadyTime::max();
  if (timeout_ms < 0) return 0;
  if (timeout_ms == 0) {
    // "As soon as possible", which curl asks for at every curl_multi_add_handle: a posted
    // task, not a zero-delay timer. Arming and firing a timer for it made the host loop
    // reprogram its kernel timer (timerfd_settime) several times per request, a fifth of the
    // example proxy's CPU time under virtualization.
    core->timeout_now_ = true;
    if (!core->timeout_posted_) {
      core->timeout_posted_ = true;
      core->loop_->Post([core, alive = std::weak_ptr<const bool>(core->alive_)] {
        if (alive.expired()) return;  // the core is gone
        core->timeout_posted_ = false;
        if (!std::exchange(core->timeout_now_, false)) return;  // replaced or cancelled since
        core->SocketAction(CURL_SOCKET_TIMEOUT, 0);
      });
    }
    return 0;
  }
  core->timeout_at_ = SteadyAfter(absl::Milliseconds(timeout_ms));
  if (core->timer_expiry_ > core->timeout_at_) core->ArmTimer();
  return 0;
}

void CurlCore::ArmTimer() {
  timer_expiry_ = timeout_at_;
  timer_->Arm(absl::FromChrono(timeout_at_ - SteadyNow()), [this] { OnTimer(); });
}

void CurlCore::OnTimer() {
  timer_expiry_ = SteadyTime::max();
  if (timeout_at_ == SteadyTime::max()) return;  // cancelled, or replaced by "now", since
  if (timeout_at_ > SteadyNow()) {
    ArmTimer();  // moved later since this timer was armed
    return;
  }
  timeout_at_ = SteadyTime::max();
  SocketAction(CURL_SOCKET_TIMEOUT, 0);
}

curl_socket_t CurlCore::OpenSocketCallback(void* clientp, curlsocktype purpose,
                                           curl_sockaddr* address) {
  // As curl does itself; close-on-exec so that a host's children do not inherit it.
  curl_socket_t s =
      ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  // Connection sockets are closed through CloseSocketCallback: only their watches may
  // outlive a CURL_POLL_REMOVE (see SocketCallback).
  if (s != CURL_SOCKET_BAD && purpose == CURLSOCKTYPE_IPCXN) {
    static_cast<CurlCore*>(clientp)->connection_sockets_.insert(s);
  }
  return s;
}

int CurlCore::CloseSocketCallback(void* clientp, curl_socket_t s) {
  // The watch goes first, while `s` still names this socket and not a later one.
  // (The loop tolerates destroying a watch from its own callback.)
  auto* core = static_cast<CurlCore*>(clientp);
  core->watches_.erase(s);
  core->connection_sockets_.erase(s);
  return ::close(s);
}

int CurlCore::PrereqCallback(void* userp, char*, char*, int, int) {
  static_cast<Transfer*>(userp)->connected = true;
  return CURL_PREREQFUNC_OK;
}

size_t CurlCore::HeaderCallback(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  if (t->cancelled || t->finished) return 0;
  CurlCore* core = t->core;
  std::shared_ptr<Transfer> self = core->Shared(t);  // keeps `t` alive below
  if (!t->headers_started) {
    t->headers_started = true;
    if (t->first_byte_timer != nullptr) t->first_byte_timer->Cancel();
    core->ArmIdle(self);
  }
  absl::string_view line(data, len);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new status line: an interim (1xx) response's headers are discarded.
    t->response_headers.clear();
    size_t sp = line.find(' ');
    int code = 0;
    if (sp != absl::string_view::npos && absl::SimpleAtoi(line.substr(sp + 1, 3), &code)) {
      t->status = code;
    }
    return len;
  }
  if (line.empty()) {
    if (t->status >= 200 && !t->headers_delivered) {
      t->headers_delivered = true;
      if (t->handler != nullptr) t->handler->OnHeaders(t->status, t->response_headers);
      if (t->cancelled || t->finished) return 0;
    }
    return len;
  }
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    t->response_headers.emplace_back(
        std::string(absl::StripAsciiWhitespace(line.substr(0, colon))),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return len;
}

size_t CurlCore::WriteCallback(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  if (t->cancelled || t->finished) return 0;
  if (t->paused) {
    t->curl_paused = true;
    return CURL_WRITEFUNC_PAUSE;  // curl keeps the bytes and offers them again on unpause
  }
  CurlCore* core = t->core;
  std::shared_ptr<Transfer> self = core->Shared(t);
  if (!t->headers_delivered) {  // defensive: curl always finishes headers first
    t->headers_delivered = true;
    if (t->handler != nullptr) t->handler->OnHeaders(t->status, t->response_headers);
    if (t->cancelled || t->finished) return 0;
  }
  t->stats.body_bytes += len;
  if (t->handler != nullptr) t->handler->OnData(std::string_view(data, len));
  if (t->cancelled || t->finished) return 0;
  core->ArmIdle(self);
  return len;
}

class CurlCall final : public UpstreamCall {
 public:
  explicit CurlCall(std::shared_ptr<Transfer> t) : t_(std::move(t)) {}
  ~CurlCall() override {
    if (t_->core != nullptr) t_->core->Cancel(t_);
  }
  void Pause() override {
    if (t_->core != nullptr) t_->core->Pause(t_);
  }
  void Resume() override {
    if (t_->core != nullptr) t_->core->Resume(t_);
  }
  UpstreamCallStats stats() const override { return t_->stats; }

 private:
  std::shared_ptr<Transfer> t_;
};

class CurlUpstreamClient final : public UpstreamClient {
 public:
  explicit CurlUpstreamClient(std::unique_ptr<CurlCore> core) : core_(std::move(core)) {}
  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request,
                                      UpstreamHandler* handler) override {
    return std::make_unique<CurlCall>(core_->Start(std::move(request), handler));
  }

 private:
  std::unique_ptr<CurlCore> core_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<UpstreamClient>> NewCurlUpstreamClient(
    EventLoop* loop, const CurlUpstreamOptions& options) {
  if (loop == nullptr) return absl::InvalidArgumentError("loop must not be null");
  if (options.max_connections_per_host < 0) {
    return absl::InvalidArgumentError("max_connections_per_host must be >= 0");
  }
  if (options.max_idle_connections < 0) {
    return absl::InvalidArgumentError("max_idle_connections must be >= 0");
  }
  MODEENVOY_RETURN_IF_ERROR(GlobalInit());
  auto core = std::make_unique<CurlCore>(loop, options);
  MODEENVOY_RETURN_IF_ERROR(core->Init());
  return std::unique_ptr<UpstreamClient>(
      std::make_unique<CurlUpstreamClient>(std::move(core)));
}

constexpr std::string_view kConnectionResetUrl = "modeenvoy.dev/upstream-connection-reset";

absl::Status MarkConnectionReset(absl::Status status) {
  if (status.code() == absl::StatusCode::kUnavailable) {
    status.SetPayload(ToAbsl(kConnectionResetUrl), absl::Cord("1"));
  }
  return status;
}

bool IsConnectionReset(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         status.GetPayload(ToAbsl(kConnectionResetUrl)).has_value();
}

}  // namespace modeenvoy
