// tests/context/redis_server.cc: see redis_server.h.
#include "tests/context/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace modeenvoy::testing {
namespace {

// Runs `args` (argv[0] looked up on PATH) and waits for it to exit. Returns its exit code
// (or -1 when it could not run) and, in `output`, what it wrote to stdout and stderr.
int RunProgram(const std::vector<std::string>& args, const std::string& output_file) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A daemon is re-parented; where nobody reaps it, it lingers as a zombie after exiting.
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

// Whether redis-server could listen on `port` now: with SO_REUSEADDR, as it does, so the
// TIME_WAIT connections a stopped server leaves behind do not count.
bool PortFree(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

void Flatten(const redisReply* r, RedisCallResult* out) {
  switch (r->type) {
    case REDIS_REPLY_ARRAY:
      for (size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY) {
          Flatten(e, out);
        } else if (e->type == REDIS_REPLY_INTEGER) {
          out->items.push_back(absl::StrCat(e->integer));
        } else if (e->type == REDIS_REPLY_NIL) {
          out->items.push_back("(nil)");
        } else {
          out->items.emplace_back(e->str, e->len);
        }
      }
      break;
    case REDIS_REPLY_INTEGER:
      out->integer = r->integer;
      out->text = absl::StrCat(r->integer);
      break;
    case REDIS_REPLY_NIL:
      out->text = "(nil)";
      break;
    case REDIS_REPLY_ERROR:
      out->is_error = true;
      [[fallthrough]];
    default:
      out->text.assign(r->str, r->len);
  }
}

}  // namespace

int FreePort(bool with_bus) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    if (port == 0) continue;
    if (!with_bus) return port;
    if (port + 10000 <= 65535 && PortFree(port + 10000)) return port;
  }
  return 0;
}

bool RedisServer::Installed() {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return false;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty()) continue;
    if (access(absl::StrCat(dir, "/redis-server").c_str(), X_OK) == 0) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(
    int port, std::vector<std::string> extra_args) {
  std::unique_ptr<RedisServer> server(new RedisServer());
  server->port_ = port != 0 ? port : FreePort();
  if (server->port_ == 0) return absl::UnavailableError("no free port");
  char tmpl[] = "/tmp/modeenvoy-redis-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return absl::UnavailableError("mkdtemp failed");
  server->dir_ = tmpl;
  server->extra_args_ = std::move(extra_args);
  absl::Status launched = server->Launch();
  if (!launched.ok()) return launched;
  return server;
}

absl::Status RedisServer::Launch() {
  std::vector<std::string> args = {"redis-server", "--port", absl::StrCat(port_),
                                   "--bind", "127.0.0.1", "--daemonize", "yes",
                                   "--save", "", "--appendonly", "no",
                                   "--dir", dir_, "--pidfile", dir_ + "/redis.pid",
                                   "--logfile", dir_ + "/redis.log"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::string out = dir_ + "/launch.out";
  int rc = RunProgram(args, out);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("redis-server exited with ", rc, ": ",
                                               ReadFile(out), ReadFile(dir_ + "/redis.log")));
  }
  // Ready when it answers PING (and the pidfile is written).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string pid_text(absl::StripAsciiWhitespace(ReadFile(dir_ + "/redis.pid")));
    int pid = 0;
    if (absl::SimpleAtoi(pid_text, &pid) && pid > 0) {
      absl::StatusOr<RedisCallResult> pong = Call({"PING"});
      if (pong.ok() && (pong->text == "PONG" || absl::StartsWith(pong->text, "NOAUTH"))) {
        pid_ = pid;
        return absl::OkStatus();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::UnavailableError(absl::StrCat("redis-server on port ", port_,
                                             " did not answer PING: ",
                                             ReadFile(dir_ + "/redis.log")));
}

RedisServer::~RedisServer() {
  Stop().IgnoreError();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_); }

absl::Status RedisServer::Stop() {
  if (pid_ == 0) return absl::OkStatus();
  pid_t pid = pid_;
  pid_ = 0;
  kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!ProcessGone(pid)) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      return absl::DeadlineExceededError(absl::StrCat("redis-server ", pid, " ignored SIGTERM"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // The port is free once the listener is closed; wait for that before a restart.
  while (!PortFree(port_) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::OkStatus();
}

absl::Status RedisServer::Restart() {
  absl::Status stopped = Stop();
  if (!stopped.ok()) return stopped;
  return Launch();
}

absl::StatusOr<RedisCallResult> RedisServer::Call(const std::vector<std::string>& args) const {
  timeval timeout{5, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, timeout);
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(why);
  }
  redisSetTimeout(c, timeout);
  if (!password_.empty()) {
    auto* auth = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password_.c_str()));
    if (auth != nullptr) freeReplyObject(auth);
  }
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  if (reply == nullptr) {
    std::string why = c->errstr;
    redisFree(c);
    return absl::UnavailableError(why);
  }
  RedisCallResult result;
  Flatten(reply, &result);
  freeReplyObject(reply);
  redisFree(c);
  return result;
}

absl::StatusOr<std::unique_ptr<RedisCluster>> RedisCluster::Start() {
  auto cluster = std::make_unique<RedisCluster>();
  std::vector<std::string> create = {"redis-cli", "--cluster", "create"};
  for (int i = 0; i < 3; ++i) {
    int port = FreePort(/*with_bus=*/true);
    if (port == 0) return absl::UnavailableError("no free port pair for a cluster node");
    absl::StatusOr<std::unique_ptr<RedisServer>> node = RedisServer::Start(
        port, {"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", "5000"});
    if (!node.ok()) return node.status();
    create.push_back(absl::StrCat("127.0.0.1:", port));
    cluster->nodes_.push_back(*std::move(node));
  }
  create.insert(create.end(), {"--cluster-replicas", "0", "--cluster-yes"});
  std::string out = cluster->nodes_[0]->dir() + "/cluster-create.out";
  if (RunProgram(create, out) != 0) {
    return absl::UnavailableError(absl::StrCat("redis-cli --cluster create failed: ",
                                               ReadFile(out)));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (auto& node : cluster->nodes_) {
    while (true) {
      absl::StatusOr<RedisCallResult> info = node->Call({"CLUSTER", "INFO"});
      if (info.ok() && info->text.find("cluster_state:ok") != std::string::npos) break;
      if (std::chrono::steady_clock::now() > deadline) {
        return absl::UnavailableError("the cluster did not reach cluster_state:ok");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return cluster;
}

absl::StatusOr<std::string> RedisCluster::NodeId(RedisServer* node) {
  absl::StatusOr<RedisCallResult> id = node->Call({"CLUSTER", "MYID"});
  if (!id.ok()) return id.status();
  return id->text;
}

absl::StatusOr<RedisServer*> RedisCluster::NodeForSlot(int slot) {
  absl::StatusOr<RedisCallResult> slots = nodes_[0]->Call({"CLUSTER", "SLOTS"});
  if (!slots.ok()) return slots.status();
  // Flattened: start, end, host, port, id, start, end, host, port, id, ...
  const std::vector<std::string>& f = slots->items;
  for (size_t i = 0; i + 4 < f.size(); i += 5) {
    int start = 0, end = 0, port = 0;
    if (!absl::SimpleAtoi(f[i], &start) || !absl::SimpleAtoi(f[i + 1], &end) ||
        !absl::SimpleAtoi(f[i + 3], &port)) {
      break;
    }
    if (slot < start || slot > end) continue;
    for (auto& node : nodes_) {
      if (node->port() == port) return node.get();
    }
  }
  return absl::NotFoundError(absl::StrCat("no node serves slot ", slot));
}

}  // namespace modeenvoy::testing
