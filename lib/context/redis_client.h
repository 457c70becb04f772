// lib/context/redis_client.h: a pipelining Redis (and Redis Cluster) client over hiredis's
// asynchronous API, driven by the host's EventLoop. Private to the context component.
//   auto client = RedisClient::Create(loop, options);
//   auto cmd = (*client)->Command({"GET", "k"}, "k", [](absl::StatusOr<const redisReply*> r) {
//     // r points into hiredis's buffer: valid only during this call
//   });
// One connection per node, AUTH/SELECT on connect, reconnect with exponential backoff and
// jitter, MOVED/ASK redirections, EVALSHA with an EVAL fallback on NOSCRIPT.
// Thread safety: thread-hostile (the loop's thread only).
#ifndef MODEENVOY_LIB_CONTEXT_REDIS_CLIENT_H_
#define MODEENVOY_LIB_CONTEXT_REDIS_CLIENT_H_

#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/event_loop.h"

namespace modeenvoy::context_internal {

struct RedisAddress {
  std::string host;  // empty for a Unix socket
  int port = 0;
  std::string unix_path;
  // "host:port" or "unix:<path>", for errors and as the connection's key.
  std::string ToString() const;
};

struct RedisUrl {
  RedisAddress address;
  std::string user;
  std::string password;
  int db = 0;
};

// Parses "redis://[[user]:password@]host[:port][/db]" or "unix:///path". Errors:
// kInvalidArgument "<field>: ..." naming what is wrong.
absl::StatusOr<RedisUrl> ParseRedisUrl(std::string_view url, std::string_view field);
// Parses "host:port" (IPv6 as "[::1]:port"). Errors: kInvalidArgument "<field>: ...".
absl::StatusOr<RedisAddress> ParseHostPort(std::string_view text, std::string_view field);

// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the bytes between the
// first '{' and the next '}', when not empty) or of the whole key, modulo 16384.
uint16_t RedisKeySlot(std::string_view key);

// SHA-1 of `data` as 40 lowercase hex digits (what EVALSHA names a script by).
std::string Sha1Hex(std::string_view data);

// A Lua script and its SHA-1.
class RedisScript {
 public:
  explicit RedisScript(std::string body) : body_(std::move(body)), sha_(Sha1Hex(body_)) {}
  const std::string& body() const { return body_; }
  const std::string& sha() const { return sha_; }

 private:
  std::string body_;
  std::string sha_;
};

struct RedisClientOptions {
  std::vector<RedisAddress> seeds;  // one unless cluster
  bool cluster = false;
  std::string user;
  std::string password;
  int db = 0;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration refresh_timeout = absl::Seconds(2);  // CLUSTER SLOTS
  absl::Duration backoff_min = absl::Milliseconds(50);
  absl::Duration backoff_max = absl::Seconds(5);
  size_t max_pipelined = 1024;
  std::function<uint64_t()> random;  // never null here
  const Clock* clock = nullptr;      // never null here
};

// The reply (borrowed; valid only during the callback) or the failure: kUnavailable
// "redis <address>: <reason>" (no connection, connection lost, a node refusing with
// LOADING/BUSY/CLUSTERDOWN/..., too many redirections), kInternal for any other error reply.
using RedisReplyFn = absl::AnyInvocable<void(absl::StatusOr<const redisReply*>)>;

class RedisCommand;  // one command in flight (redis_client.cc)

// Cancels a command: its callback never runs after Cancel() or destruction. A command
// already written still has its reply read and dropped, in order.
class RedisCommandHandle {
 public:
  RedisCommandHandle() = default;
  explicit RedisCommandHandle(std::shared_ptr<RedisCommand> command)
      : command_(std::move(command)) {}
  RedisCommandHandle(RedisCommandHandle&&) = default;
  RedisCommandHandle& operator=(RedisCommandHandle&& other);
  ~RedisCommandHandle() { Cancel(); }
  void Cancel();

 private:
  std::shared_ptr<RedisCommand> command_;
};

class RedisNode;

class RedisClient {
 public:
  // Starts connecting to the seed(s); never waits. REQUIRES: options as documented.
  RedisClient(EventLoop* loop, RedisClientOptions options);
  ~RedisClient();  // drops every pending callback without running it
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends `args` (args[0] is the command) to the node serving `key` (any node when empty).
  // `done` runs exactly once unless cancelled, possibly inline (a connection known to be
  // down fails at once) or from inside hiredis's reply processing: it must not destroy the
  // client. It may send more commands.
  RedisCommandHandle Command(std::vector<std::string> args, std::string key, RedisReplyFn done);

  // EVALSHA `script` with `keys` and `args`; on NOSCRIPT sends EVAL with the body once.
  // Routed by keys[0]. As Command.
  RedisCommandHandle Eval(const RedisScript& script, std::vector<std::string> keys,
                          std::vector<std::string> args, RedisReplyFn done);

  EventLoop* loop() const { return loop_; }
  const RedisClientOptions& options() const { return options_; }

 private:
  friend class RedisNode;
  friend class RedisCommand;

  RedisNode* NodeFor(const RedisCommand& command);
  RedisNode* NodeAt(const std::string& address_text);
  void Dispatch(const std::shared_ptr<RedisCommand>& command, RedisNode* node, bool asking);
  // A reply (or nullptr: connection lost) for `command` from `node`.
  void OnReply(const std::shared_ptr<RedisCommand>& command, RedisNode* node,
               const redisReply* reply, const std::string& lost_reason);
  void Finish(const std::shared_ptr<RedisCommand>& command,
              absl::StatusOr<const redisReply*> result);
  void RefreshSlots();
  void OnSlots(const redisReply* reply, RedisNode* from);

  EventLoop* const loop_;
  const RedisClientOptions options_;
  std::vector<std::unique_ptr<RedisNode>> nodes_;  // stable pointers; found by address
  std::vector<int> slot_owner_;                    // cluster: slot -> index in nodes_, -1
  size_t next_seed_ = 0;
  RedisCommandHandle refresh_;
  std::unique_ptr<Timer> refresh_timer_;
  bool refresh_in_flight_ = false;
  // Set first in the destructor: replies (nullptr ones from freeing the connections) are
  // dropped from then on.
  bool destroying_ = false;
};

}  // namespace modeenvoy::context_internal

#endif  // MODEENVOY_LIB_CONTEXT_REDIS_CLIENT_H_
