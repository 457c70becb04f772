// lib/context/redis_client.cc: hiredis 0.14's asynchronous API on an EventLoop.
//
// hiredis asks for readiness through the redisAsyncContext's ev hooks (addRead, delRead,
// addWrite, delWrite, cleanup); here they set the events of one FdWatch. hiredis runs each
// reply callback exactly once, in order, and with a null reply for every command still
// pending when the context is freed (connection lost, or freed by us). Teardown always ends
// in the cleanup hook, which is where a node moves to backoff and schedules its reconnect.
#include "lib/context/redis_client.h"

#include <hiredis/async.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/core/status_macros.h"

namespace modeenvoy::context_internal {
namespace {

using core_internal::ToAbsl;

constexpr int kMaxRedirects = 5;
constexpr int kSlots = 16384;

std::string_view ReplyText(const redisReply* r) {
  return r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}

absl::Status BadField(std::string_view field, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrFormat("%s: %s", field, what));
}

}  // namespace

// ---- addresses and URLs ------------------------------------------------------------------

std::string RedisAddress::ToString() const {
  if (!unix_path.empty()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return absl::StrFormat("[%s]:%d", host, port);
  return absl::StrFormat("%s:%d", host, port);
}

absl::StatusOr<RedisAddress> ParseHostPort(std::string_view text, std::string_view field) {
  RedisAddress address;
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return BadField(field, "unterminated '[' in host");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return BadField(field, "expected ':' after ']'");
      port = rest.substr(1);
    }
  } else {
    size_t colon = text.rfind(':');
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) port = text.substr(colon + 1);
  }
  if (host.empty()) return BadField(field, "missing host");
  address.host = std::string(host);
  address.port = 6379;
  if (!port.empty()) {
    int value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535) {
      return BadField(field, absl::StrCat("port must be 1..65535, got '", ToAbsl(port), "'"));
    }
    address.port = value;
  }
  return address;
}

absl::StatusOr<RedisUrl> ParseRedisUrl(std::string_view url, std::string_view field) {
  RedisUrl out;
  if (absl::StartsWith(ToAbsl(url), "unix://")) {
    std::string_view path = url.substr(7);
    if (path.empty() || path.front() != '/') {
      return BadField(field, "unix:// needs an absolute path (unix:///path/to/redis.sock)");
    }
    out.address.unix_path = std::string(path);
    return out;
  }
  if (absl::StartsWith(ToAbsl(url), "rediss://")) {
    return BadField(field, "rediss:// (TLS) is not supported; use redis:// (plain TCP, e.g. "
                           "through a local TLS tunnel) or unix://");
  }
  if (!absl::StartsWith(ToAbsl(url), "redis://")) {
    return BadField(field, absl::StrCat("must start with redis:// or unix://, got '",
                                        ToAbsl(url), "'"));
  }
  std::string_view rest = url.substr(8);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view db = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      // "redis://secret@host": the password alone, as redis-cli reads it.
      out.password = std::string(userinfo);
    } else {
      out.user = std::string(userinfo.substr(0, colon));
      out.password = std::string(userinfo.substr(colon + 1));
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(out.address, ParseHostPort(authority, field));
  if (!db.empty()) {
    int value = 0;
    auto [end, ec] = std::from_chars(db.data(), db.data() + db.size(), value);
    if (ec != std::errc() || end != db.data() + db.size() || value < 0) {
      return BadField(field, absl::StrCat("database must be a number >= 0, got '",
                                          ToAbsl(db), "'"));
    }
    out.db = value;
  }
  return out;
}

// ---- CRC16 and SHA-1 --------------------------------------------------------------------

uint16_t RedisKeySlot(std::string_view key) {
  size_t open = key.find('{');
  if (open != std::string_view::npos) {
    size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  // CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the cluster spec says.
  uint16_t crc = 0;
  for (unsigned char c : key) {
    crc ^= static_cast<uint16_t>(c) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc % kSlots;
}

std::string Sha1Hex(std::string_view data) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  auto rotl = [](uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  std::string msg(data);
  const uint64_t bits = static_cast<uint64_t>(data.size()) * 8;
  msg.push_back(static_cast<char>(0x80));
  while (msg.size() % 64 != 56) msg.push_back('\0');
  for (int i = 7; i >= 0; --i) msg.push_back(static_cast<char>((bits >> (i * 8)) & 0xff));
  for (size_t chunk = 0; chunk < msg.size(); chunk += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + chunk + i * 4);
      w[i] = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
    }
    for (int i = 16; i < 80; ++i) w[i] = rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f, k;
      if (i < 20) {
        f = (b & c) | (~b & d), k = 0x5A827999;
      } else if (i < 40) {
        f = b ^ c ^ d, k = 0x6ED9EBA1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
      } else {
        f = b ^ c ^ d, k = 0xCA62C1D6;
      }
      uint32_t t = rotl(a, 5) + f + e + k + w[i];
      e = d, d = c, c = rotl(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
  }
  return absl::StrFormat("%08x%08x%08x%08x%08x", h[0], h[1], h[2], h[3], h[4]);
}

// ---- commands ------------------------------------------------------------------------------

class RedisCommand {
 public:
  std::vector<std::string> args;
  std::string key;
  RedisReplyFn done;
  const RedisScript* script = nullptr;  // set for EVALSHA: the body to send on NOSCRIPT
  bool cancelled = false;
  bool finished = false;
  int redirects = 0;
  uint64_t attempt = 0;  // replies to an earlier attempt (before a redirect) are dropped
};

RedisCommandHandle& RedisCommandHandle::operator=(RedisCommandHandle&& other) {
  if (this != &other) {
    Cancel();
    command_ = std::move(other.command_);
  }
  return *this;
}

void RedisCommandHandle::Cancel() {
  if (command_ == nullptr) return;
  command_->cancelled = true;
  command_->done = nullptr;
  command_.reset();
}

// One write of a command to one node: hiredis's privdata for its reply.
struct RedisAttempt {
  std::shared_ptr<RedisCommand> command;
  uint64_t attempt = 0;
  RedisNode* node = nullptr;
  bool asking = false;
  bool Stale() const {
    return command->cancelled || command->finished || attempt != command->attempt;
  }
};

// ---- one node ------------------------------------------------------------------------------

class RedisNode {
 public:
  RedisNode(RedisClient* client, RedisAddress address)
      : client_(client), address_(std::move(address)), name_(address_.ToString()),
        timer_(client->loop()->NewTimer()) {
    Connect();
  }

  ~RedisNode() {
    timer_.reset();
    if (ac_ != nullptr) {
      last_error_ = "client closed";
      redisAsyncFree(ac_);  // runs the pending callbacks (dropped: the client is going)
    }
    waiting_.clear();
  }

  const std::string& name() const { return name_; }
  const RedisAddress& address() const { return address_; }

  // Writes `attempt` now, or queues it behind max_pipelined commands in flight. Fails at
  // once while the node waits to reconnect.
  absl::Status Send(std::unique_ptr<RedisAttempt> attempt) {
    if (ac_ == nullptr) return Down();
    if (in_flight_ >= client_->options().max_pipelined) {
      waiting_.push_back(std::move(attempt));
      return absl::OkStatus();
    }
    return Write(std::move(attempt));
  }

 private:
  absl::Status Down() const {
    absl::Duration left = retry_at_ - client_->options().clock->MonotonicNow();
    if (left < absl::ZeroDuration()) left = absl::ZeroDuration();
    return absl::UnavailableError(
        absl::StrFormat("redis %s: %s; reconnecting in %dms", name_, last_error_,
                        absl::ToInt64Milliseconds(left)));
  }

  absl::Status Write(std::unique_ptr<RedisAttempt> attempt) {
    if (attempt->asking) redisAsyncCommand(ac_, nullptr, nullptr, "ASKING");
    const std::vector<std::string>& args = attempt->command->args;
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAsyncCommandArgv(ac_, &RedisNode::OnReply, attempt.get(),
                              static_cast<int>(argv.size()), argv.data(),
                              lens.data()) != REDIS_OK) {
      return absl::UnavailableError(
          absl::StrFormat("redis %s: %s", name_,
                          ac_->errstr != nullptr ? ac_->errstr : "connection is closing"));
    }
    attempt.release();
    ++in_flight_;
    return absl::OkStatus();
  }

  void Pump() {
    while (!waiting_.empty() && ac_ != nullptr && !dying_ &&
           in_flight_ < client_->options().max_pipelined) {
      std::unique_ptr<RedisAttempt> next = std::move(waiting_.front());
      waiting_.pop_front();
      if (next->Stale()) continue;
      std::shared_ptr<RedisCommand> command = next->command;
      absl::Status status = Write(std::move(next));
      if (!status.ok()) client_->Finish(command, status);
    }
  }

  void Connect() {
    dying_ = false;
    connected_ = false;
    redisAsyncContext* ac = address_.unix_path.empty()
                                ? redisAsyncConnect(address_.host.c_str(), address_.port)
                                : redisAsyncConnectUnix(address_.unix_path.c_str());
    if (ac == nullptr) {
      last_error_ = "out of memory creating the connection";
      ScheduleReconnect();
      return;
    }
    if (ac->err != 0) {
      last_error_ = ac->errstr != nullptr ? ac->errstr : "connect failed";
      redisAsyncFree(ac);
      ScheduleReconnect();
      return;
    }
    ac_ = ac;
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<RedisNode*>(p)->SetEvent(kIoRead, true); };
    ac->ev.delRead = [](void* p) { static_cast<RedisNode*>(p)->SetEvent(kIoRead, false); };
    ac->ev.addWrite = [](void* p) { static_cast<RedisNode*>(p)->SetEvent(kIoWrite, true); };
    ac->ev.delWrite = [](void* p) { static_cast<RedisNode*>(p)->SetEvent(kIoWrite, false); };
    ac->ev.cleanup = [](void* p) { static_cast<RedisNode*>(p)->OnCleanup(); };
    events_ = kIoRead | kIoWrite;
    watch_ = client_->loop()->WatchFd(ac->c.fd, events_, [this](uint32_t ready) {
      redisAsyncContext* current = ac_;
      if (current == nullptr) return;
      if (ready & (kIoRead | kIoError)) redisAsyncHandleRead(current);
      // The read may have torn the connection down (ac_ is then null).
      if (ac_ == current && (ready & kIoWrite)) redisAsyncHandleWrite(current);
    });
    redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
      auto* node = static_cast<RedisNode*>(c->data);
      if (status == REDIS_OK) {
        node->connected_ = true;
        node->MaybeReady();
      }
    });
    // AUTH and SELECT go first; the commands sent while connecting queue behind them.
    if (!client_->options().password.empty()) {
      ++handshake_pending_;
      if (client_->options().user.empty()) {
        redisAsyncCommand(ac, &RedisNode::OnHandshake, this, "AUTH %b",
                          client_->options().password.data(),
                          client_->options().password.size());
      } else {
        redisAsyncCommand(ac, &RedisNode::OnHandshake, this, "AUTH %b %b",
                          client_->options().user.data(), client_->options().user.size(),
                          client_->options().password.data(),
                          client_->options().password.size());
      }
    }
    if (client_->options().db != 0) {
      ++handshake_pending_;
      std::string db = absl::StrCat(client_->options().db);
      redisAsyncCommand(ac, &RedisNode::OnHandshake, this, "SELECT %b", db.data(), db.size());
    }
    timer_->Arm(client_->options().connect_timeout, [this] {
      if (ac_ == nullptr || ready_) return;
      last_error_ = absl::StrFormat(
          "connect timed out after %dms%s",
          absl::ToInt64Milliseconds(client_->options().connect_timeout),
          connected_ ? " (no reply to AUTH/SELECT)" : "");
      redisAsyncFree(ac_);  // not inside hiredis: frees now, ending in OnCleanup
    });
  }

  void MaybeReady() {
    if (!connected_ || handshake_pending_ > 0 || ready_) return;
    ready_ = true;
    failures_ = 0;
    timer_->Cancel();
  }

  static void OnHandshake(redisAsyncContext* ac, void* r, void* privdata) {
    auto* node = static_cast<RedisNode*>(privdata);
    auto* reply = static_cast<redisReply*>(r);
    if (reply == nullptr) return;  // the connection is going; OnCleanup reports it
    --node->handshake_pending_;
    if (reply->type == REDIS_REPLY_ERROR) {
      node->last_error_ = absl::StrCat("handshake refused: ", ToAbsl(ReplyText(reply)));
      node->dying_ = true;
      redisAsyncFree(ac);  // inside a callback: hiredis frees once it returns
      return;
    }
    node->MaybeReady();
  }

  static void OnReply(redisAsyncContext* ac, void* r, void* privdata) {
    std::unique_ptr<RedisAttempt> attempt(static_cast<RedisAttempt*>(privdata));
    RedisNode* node = attempt->node;
    auto* reply = static_cast<redisReply*>(r);
    --node->in_flight_;
    std::string lost;
    if (reply == nullptr) {
      node->dying_ = true;
      lost = ac->c.err != 0 && ac->c.errstr[0] != '\0' ? std::string(ac->c.errstr)
                                                        : node->last_error_;
      if (lost.empty()) lost = "connection closed";
    }
    RedisClient* client = node->client_;
    if (client->destroying_ || attempt->Stale()) {
      if (reply != nullptr) node->Pump();
      return;
    }
    client->OnReply(attempt->command, node, reply, lost);
    if (reply != nullptr) node->Pump();
  }

  void SetEvent(uint32_t bit, bool on) {
    events_ = on ? (events_ | bit) : (events_ & ~bit);
    if (watch_ != nullptr) watch_->SetEvents(events_);
  }

  // hiredis's cleanup hook: the context is being freed (after its pending callbacks ran).
  void OnCleanup() {
    if (ac_ == nullptr) return;  // hiredis may call it twice
    redisAsyncContext* ac = ac_;
    if (ac->c.err != 0 && ac->c.errstr[0] != '\0') last_error_ = ac->c.errstr;
    if (last_error_.empty()) last_error_ = "connection closed";
    ac_ = nullptr;
    watch_.reset();
    ready_ = false;
    connected_ = false;
    handshake_pending_ = 0;
    in_flight_ = 0;
    if (client_->destroying_) return;
    ScheduleReconnect();
    // Commands still waiting for a slot fail now: the node is in backoff.
    std::deque<std::unique_ptr<RedisAttempt>> waiting;
    waiting.swap(waiting_);
    for (auto& attempt : waiting) {
      if (attempt->Stale()) continue;
      client_->Finish(attempt->command, Down());
    }
  }

  void ScheduleReconnect() {
    const RedisClientOptions& o = client_->options();
    ++failures_;
    absl::Duration delay = o.backoff_min;
    for (int i = 1; i < failures_ && delay < o.backoff_max; ++i) delay *= 2;
    delay = std::min(delay, o.backoff_max);
    // Uniform in [delay/2, delay]: nodes and gateways that failed together spread out.
    int64_t half_us = absl::ToInt64Microseconds(delay) / 2;
    int64_t jitter_us = half_us > 0 ? static_cast<int64_t>(o.random() % (half_us + 1)) : 0;
    delay = absl::Microseconds(half_us + jitter_us);
    retry_at_ = o.clock->MonotonicNow() + delay;
    timer_->Arm(delay, [this] { Connect(); });
  }

  RedisClient* const client_;
  const RedisAddress address_;
  const std::string name_;
  std::unique_ptr<Timer> timer_;  // connect timeout, then reconnect backoff
  redisAsyncContext* ac_ = nullptr;
  std::unique_ptr<FdWatch> watch_;
  uint32_t events_ = 0;
  bool connected_ = false;
  bool ready_ = false;
  bool dying_ = false;  // a null reply arrived: the context is being freed
  int handshake_pending_ = 0;
  int failures_ = 0;
  std::string last_error_;
  absl::Time retry_at_;
  size_t in_flight_ = 0;
  std::deque<std::unique_ptr<RedisAttempt>> waiting_;
};

// ---- the client ----------------------------------------------------------------------------

RedisClient::RedisClient(EventLoop* loop, RedisClientOptions options)
    : loop_(loop), options_(std::move(options)), refresh_timer_(loop->NewTimer()) {
  for (const RedisAddress& seed : options_.seeds) NodeAt(seed.ToString());
  if (options_.cluster) {
    slot_owner_.assign(kSlots, -1);
    RefreshSlots();
  }
}

RedisClient::~RedisClient() {
  destroying_ = true;
  refresh_.Cancel();
  refresh_timer_.reset();
  nodes_.clear();
}

RedisNode* RedisClient::NodeAt(const std::string& address_text) {
  for (auto& node : nodes_) {
    if (node->name() == address_text) return node.get();
  }
  // Seeds come parsed; addresses from MOVED/ASK/CLUSTER SLOTS are "host:port".
  RedisAddress address;
  for (const RedisAddress& seed : options_.seeds) {
    if (seed.ToString() == address_text) address = seed;
  }
  if (address.host.empty() && address.unix_path.empty()) {
    absl::StatusOr<RedisAddress> parsed = ParseHostPort(address_text, "address");
    if (!parsed.ok()) return nullptr;
    address = *std::move(parsed);
  }
  nodes_.push_back(std::make_unique<RedisNode>(this, std::move(address)));
  return nodes_.back().get();
}

RedisNode* RedisClient::NodeFor(const RedisCommand& command) {
  if (!options_.cluster || command.key.empty()) return nodes_[next_seed_ % nodes_.size()].get();
  int owner = slot_owner_[RedisKeySlot(command.key)];
  if (owner >= 0) return nodes_[owner].get();
  // Unknown slot: a seed answers with MOVED if it is not the owner.
  RefreshSlots();
  return nodes_[next_seed_ % nodes_.size()].get();
}

RedisCommandHandle RedisClient::Command(std::vector<std::string> args, std::string key,
                                        RedisReplyFn done) {
  auto command = std::make_shared<RedisCommand>();
  command->args = std::move(args);
  command->key = std::move(key);
  command->done = std::move(done);
  RedisCommandHandle handle(command);
  Dispatch(command, NodeFor(*command), /*asking=*/false);
  return handle;
}

RedisCommandHandle RedisClient::Eval(const RedisScript& script, std::vector<std::string> keys,
                                     std::vector<std::string> args, RedisReplyFn done) {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.push_back("EVALSHA");
  argv.push_back(script.sha());
  argv.push_back(absl::StrCat(keys.size()));
  std::string route = keys.empty() ? std::string() : keys.front();
  for (std::string& k : keys) argv.push_back(std::move(k));
  for (std::string& a : args) argv.push_back(std::move(a));
  auto command = std::make_shared<RedisCommand>();
  command->args = std::move(argv);
  command->key = std::move(route);
  command->done = std::move(done);
  command->script = &script;
  RedisCommandHandle handle(command);
  Dispatch(command, NodeFor(*command), /*asking=*/false);
  return handle;
}

void RedisClient::Dispatch(const std::shared_ptr<RedisCommand>& command, RedisNode* node,
                           bool asking) {
  auto attempt = std::make_unique<RedisAttempt>();
  attempt->command = command;
  attempt->attempt = ++command->attempt;
  attempt->node = node;
  attempt->asking = asking;
  absl::Status status = node->Send(std::move(attempt));
  if (!status.ok()) Finish(command, status);
}

void RedisClient::Finish(const std::shared_ptr<RedisCommand>& command,
                         absl::StatusOr<const redisReply*> result) {
  if (command->finished || command->cancelled) return;
  command->finished = true;
  RedisReplyFn done = std::move(command->done);
  if (done) done(std::move(result));
}

void RedisClient::OnReply(const std::shared_ptr<RedisCommand>& command, RedisNode* node,
                          const redisReply* reply, const std::string& lost_reason) {
  if (reply == nullptr) {
    Finish(command, absl::UnavailableError(
                        absl::StrFormat("redis %s: %s", node->name(), lost_reason)));
    return;
  }
  if (reply->type != REDIS_REPLY_ERROR) {
    Finish(command, reply);
    return;
  }
  std::string_view text = ReplyText(reply);
  absl::string_view atext = ToAbsl(text);
  bool moved = absl::StartsWith(atext, "MOVED ");
  bool ask = absl::StartsWith(atext, "ASK ");
  if (moved || ask) {
    // "MOVED <slot> <host>:<port>" / "ASK <slot> <host>:<port>"
    std::vector<std::string> parts = absl::StrSplit(atext, ' ');
    int slot = -1;
    RedisNode* target = nullptr;
    if (parts.size() == 3 && absl::SimpleAtoi(parts[1], &slot) && slot >= 0 && slot < kSlots) {
      std::string where = parts[2];
      // An empty host ("MOVED 1 :6380") means the node that answered.
      if (!where.empty() && where.front() == ':') where = node->address().host + where;
      target = NodeAt(where);
    }
    if (target == nullptr) {
      Finish(command, absl::InternalError(absl::StrFormat(
                          "redis %s: unreadable redirection '%s'", node->name(), text)));
      return;
    }
    if (++command->redirects > kMaxRedirects) {
      Finish(command, absl::UnavailableError(absl::StrFormat(
                          "redis %s: more than %d cluster redirections (last: %s)",
                          node->name(), kMaxRedirects, text)));
      return;
    }
    if (moved && !slot_owner_.empty()) {
      for (size_t i = 0; i < nodes_.size(); ++i) {
        if (nodes_[i].get() == target) slot_owner_[slot] = static_cast<int>(i);
      }
      RefreshSlots();
    }
    Dispatch(command, target, /*asking=*/ask);
    return;
  }
  if (absl::StartsWith(atext, "NOSCRIPT") && command->script != nullptr &&
      command->args.size() >= 2 && command->args[0] == "EVALSHA") {
    // The node lost its script cache (restart, failover, a node new to the cluster): EVAL
    // sends the body, which also caches it again.
    command->args[0] = "EVAL";
    command->args[1] = command->script->body();
    Dispatch(command, node, /*asking=*/false);
    return;
  }
  static constexpr std::array<std::string_view, 7> kTransient = {
      "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "NOREPLICAS"};
  for (std::string_view prefix : kTransient) {
    if (absl::StartsWith(atext, ToAbsl(prefix))) {
      Finish(command, absl::UnavailableError(
                          absl::StrFormat("redis %s: %s", node->name(), text)));
      return;
    }
  }
  Finish(command,
         absl::InternalError(absl::StrFormat("redis %s: %s", node->name(), text)));
}

void RedisClient::RefreshSlots() {
  if (!options_.cluster || refresh_in_flight_) return;
  refresh_in_flight_ = true;
  RedisNode* node = nodes_[next_seed_ % nodes_.size()].get();
  auto command = std::make_shared<RedisCommand>();
  command->args = {"CLUSTER", "SLOTS"};
  command->done = [this, node](absl::StatusOr<const redisReply*> reply) {
    refresh_in_flight_ = false;
    refresh_timer_->Cancel();
    if (reply.ok()) {
      OnSlots(*reply, node);
    } else {
      ++next_seed_;  // ask another node next time
    }
  };
  refresh_ = RedisCommandHandle(command);
  Dispatch(command, node, /*asking=*/false);
  if (refresh_in_flight_) {
    refresh_timer_->Arm(options_.refresh_timeout, [this] {
      refresh_.Cancel();
      refresh_in_flight_ = false;
      ++next_seed_;
    });
  }
}

void RedisClient::OnSlots(const redisReply* reply, RedisNode* from) {
  if (reply->type != REDIS_REPLY_ARRAY) return;
  // [[start, end, [host, port, id], replica...], ...]
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* range = reply->element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) continue;
    const redisReply* start = range->element[0];
    const redisReply* end = range->element[1];
    const redisReply* master = range->element[2];
    if (start->type != REDIS_REPLY_INTEGER || end->type != REDIS_REPLY_INTEGER ||
        master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
        master->element[0]->type != REDIS_REPLY_STRING ||
        master->element[1]->type != REDIS_REPLY_INTEGER) {
      continue;
    }
    std::string host(ReplyText(master->element[0]));
    if (host.empty() || host == "?") host = from->address().host;
    RedisAddress address;
    address.host = host;
    address.port = static_cast<int>(master->element[1]->integer);
    RedisNode* node = NodeAt(address.ToString());
    int index = -1;
    for (size_t n = 0; n < nodes_.size(); ++n) {
      if (nodes_[n].get() == node) index = static_cast<int>(n);
    }
    for (long long s = std::max(0LL, start->integer);
         s <= std::min<long long>(kSlots - 1, end->integer); ++s) {
      slot_owner_[s] = index;
    }
  }
}

}  // namespace modeenvoy::context_internal
