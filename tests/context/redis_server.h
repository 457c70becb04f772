// tests/context/redis_server.h: real redis-server processes for tests, on free loopback
// ports, started daemonized and stopped by pid.
//   if (!RedisServer::Installed()) GTEST_SKIP() << "redis-server is not installed";
//   absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Start();
//   ASSERT_TRUE(redis.ok()) << redis.status();
//   options.url = (*redis)->url();
//   (*redis)->Call({"DBSIZE"});                // a blocking hiredis call, for checks
// A 3-node Redis Cluster: RedisCluster::Start() (redis-cli --cluster create, 0 replicas).
// Not for the event-loop code under test: Call() blocks.
#ifndef MODEENVOY_TESTS_CONTEXT_REDIS_SERVER_H_
#define MODEENVOY_TESTS_CONTEXT_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace modeenvoy::testing {

// A reply flattened for assertions: strings and integers as text, nil as "(nil)", arrays
// as their elements (nested arrays flattened), errors as "ERR ..." with is_error set.
struct RedisCallResult {
  std::string text;                // the reply when it is not an array
  std::vector<std::string> items;  // the elements of an array reply
  bool is_error = false;
  long long integer = 0;
};

class RedisServer {
 public:
  // Whether redis-server is on PATH (tests skip only when it is not).
  static bool Installed();
  // Starts a server on `port` (0: a free one) with `extra_args` appended to the command
  // line, and waits until it answers PING. Errors: kUnavailable with the server's log.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(
      int port = 0, std::vector<std::string> extra_args = {});
  ~RedisServer();  // stops the server and removes its directory

  int port() const { return port_; }
  std::string url() const;                    // redis://127.0.0.1:<port>
  const std::string& dir() const { return dir_; }

  // Stops the server (SIGTERM to the pid in its pidfile, waits until it is gone).
  absl::Status Stop();
  // Starts it again on the same port with the same arguments.
  absl::Status Restart();
  // One blocking command on a fresh connection (AUTH with `password` when set).
  absl::StatusOr<RedisCallResult> Call(const std::vector<std::string>& args) const;
  void set_password(std::string password) { password_ = std::move(password); }

 private:
  RedisServer() = default;
  absl::Status Launch();

  int port_ = 0;
  std::string dir_;
  std::vector<std::string> extra_args_;
  std::string password_;
  pid_t pid_ = 0;
};

// Three masters on loopback, every slot assigned, cluster_state:ok on every node.
class RedisCluster {
 public:
  static absl::StatusOr<std::unique_ptr<RedisCluster>> Start();
  std::vector<std::unique_ptr<RedisServer>>& nodes() { return nodes_; }
  // The node serving `slot` (by CLUSTER SLOTS) and its node id.
  absl::StatusOr<RedisServer*> NodeForSlot(int slot);
  absl::StatusOr<std::string> NodeId(RedisServer* node);

 private:
  std::vector<std::unique_ptr<RedisServer>> nodes_;
};

// A free loopback TCP port (and, with `with_bus`, port + 10000 free too, for the cluster
// bus). 0 when none was found.
int FreePort(bool with_bus = false);

}  // namespace modeenvoy::testing

#endif  // MODEENVOY_TESTS_CONTEXT_REDIS_SERVER_H_
