// examples/proxy/main.cc: modeenvoy-gateway, the example proxy.
//
//   modeenvoy-gateway                       # embedded default config, 127.0.0.1:8080
//   modeenvoy-gateway --config gw.json --port 0 --port-file /tmp/port --threads 2
//
// Every worker thread runs its own io_context with an HTTP server (SO_REUSEPORT), a libcurl
// upstream client and a Gateway engine; they share one ConfigStore. A configuration that
// mentions ${EMULATOR_BASE_URL} gets the in-process provider emulator (OpenAI wire format)
// started on a free loopback port, which is how the default configuration works offline.
//
// Endpoints besides the engine's (/v1/chat/completions, /v1/models):
//   GET  /healthz          {"status":"ok","config_generation":N}
//   POST /admin/reload     loopback clients only; empty body = re-read --config (or rebuild
//                          the default); a body = new config JSON, which also needs
//                          "Authorization: Bearer <admin token>" and may name only the
//                          environment variables the operator's configuration uses or
//                          --allow-env lists (docs/proxy.md); 400 names the field
//   GET  /admin/config     loopback clients only; generation and served models
//   GET  /admin/upstreams  loopback clients only; the router's pools and deployments (health,
//                          in flight, latency, attempts: include/modeenvoy/router/gateway.h)
// Reloads are parsed, validated and built on a thread of their own, never on a loop that
// serves clients. Signals: SIGHUP reloads like an empty POST /admin/reload; SIGTERM/SIGINT
// stop accepting and let requests in flight finish (a second one exits at once).

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <atomic>
#include <deque>
#include <optional>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "examples/common/asio_event_loop.h"
#include "examples/common/process.h"
#include "examples/emulator/emulator.h"
#include "examples/proxy/default_config.h"
#include "examples/proxy/http_server.h"
#include "examples/proxy/usage_estimator.h"
// TSan cannot see Debian's prebuilt absl::Mutex; these locks tell it.
#include "lib/core/mutex.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/router/gateway.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::proxy {
namespace {

namespace asio = boost::asio;

constexpr char kUsage[] =
    "usage: modeenvoy-gateway [--config FILE] [--address ADDR] [--port N] [--threads N]\n"
    "                         [--max-connections N] [--max-requests N]\n"
    "                         [--admin-token-file FILE] [--allow-env NAME[,NAME...]]\n"
    "                         [--port-file FILE] [--print-default-config]\n"
    "  --config FILE           gateway configuration (JSON); default: the embedded one\n"
    "  --address ADDR          listen address (overrides listen.address)\n"
    "  --port N                listen port, 0 = any free port (overrides listen.port)\n"
    "  --threads N             worker threads, each with its own loop (default 1)\n"
    "  --max-connections N     client connections per worker thread; beyond: 503\n"
    "                          (default 10000)\n"
    "  --max-requests N        requests in flight per worker thread; beyond: 503\n"
    "                          (default 4096)\n"
    "  --admin-token-file FILE token that POST /admin/reload with a body must present as\n"
    "                          \"Authorization: Bearer TOKEN\" (or MODEENVOY_ADMIN_TOKEN);\n"
    "                          without one, only empty-body reloads are accepted\n"
    "  --allow-env NAMES       environment variables a posted configuration may name\n"
    "                          besides those the operator's configuration uses\n"
    "  --port-file FILE        write the bound port to FILE once listening\n"
    "  --print-default-config  print the embedded default configuration and exit\n";

// An admin token shorter than this is refused at start: it would be guessable.
constexpr size_t kMinAdminTokenBytes = 16;

// Idle upstream connections each worker keeps for reuse (all providers together).
constexpr int64_t kUpstreamIdleConnections = 256;

struct Flags {
  std::string config_path;
  std::string address;
  int port = -1;
  int threads = 1;
  std::string port_file;
  bool print_default_config = false;
  size_t max_connections = HttpServer::Options().max_connections;
  size_t max_requests = HttpServer::Options().max_requests_in_flight;
  std::string admin_token_file;
  std::vector<std::string> allow_env;
};

absl::StatusOr<Flags> ParseFlags(int argc, char** argv) {
  Flags flags;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](absl::string_view name) -> absl::StatusOr<std::string> {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat(name, ": needs a value"));
      return std::string(argv[++i]);
    };
    if (arg == "--config") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      flags.config_path = *v;
    } else if (arg == "--address") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      flags.address = *v;
    } else if (arg == "--port") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      if (!absl::SimpleAtoi(*v, &flags.port) || flags.port < 0 || flags.port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("--port: not a port number: ", *v));
      }
    } else if (arg == "--threads") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      if (!absl::SimpleAtoi(*v, &flags.threads) || flags.threads < 1 || flags.threads > 256) {
        return absl::InvalidArgumentError(absl::StrCat("--threads: must be 1..256, got ", *v));
      }
    } else if (arg == "--max-connections" || arg == "--max-requests") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      size_t n = 0;
      if (!absl::SimpleAtoi(*v, &n) || n < 1 || n > 10'000'000) {
        return absl::InvalidArgumentError(absl::StrCat(arg, ": must be 1..10000000, got ", *v));
      }
      (arg == "--max-connections" ? flags.max_connections : flags.max_requests) = n;
    } else if (arg == "--admin-token-file") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      flags.admin_token_file = *v;
    } else if (arg == "--allow-env") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      for (absl::string_view name : absl::StrSplit(*v, ',', absl::SkipWhitespace())) {
        flags.allow_env.emplace_back(absl::StripAsciiWhitespace(name));
      }
    } else if (arg == "--port-file") {
      auto v = value(arg);
      if (!v.ok()) return v.status();
      flags.port_file = *v;
    } else if (arg == "--print-default-config") {
      flags.print_default_config = true;
    } else if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown argument: ", arg));
    }
  }
  return flags;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open config file ", path));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::optional<std::string> GetEnv(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

// The admin token: --admin-token-file wins over MODEENVOY_ADMIN_TOKEN; empty when neither
// is given. Surrounding whitespace (a trailing newline) is not part of it.
absl::StatusOr<std::string> LoadAdminToken(const Flags& flags) {
  std::string token;
  std::string source;
  if (!flags.admin_token_file.empty()) {
    auto text = ReadFile(flags.admin_token_file);
    if (!text.ok()) {
      return absl::NotFoundError(absl::StrCat("--admin-token-file: cannot read ",
                                              flags.admin_token_file));
    }
    token = std::string(absl::StripAsciiWhitespace(*text));
    source = "--admin-token-file";
  } else if (auto env = GetEnv("MODEENVOY_ADMIN_TOKEN")) {
    token = std::string(absl::StripAsciiWhitespace(*env));
    source = "MODEENVOY_ADMIN_TOKEN";
  } else {
    return std::string();
  }
  if (token.size() < kMinAdminTokenBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": the admin token must be at least ", kMinAdminTokenBytes, " bytes"));
  }
  return token;
}

// Compares a presented secret with the expected one in time that depends on the expected
// one's length only, so a client cannot find it byte by byte from response times.
bool ConstantTimeEquals(std::string_view presented, std::string_view expected) {
  unsigned char diff = presented.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    const char p = i < presented.size() ? presented[i] : '\0';
    diff |= static_cast<unsigned char>(p ^ expected[i]);
  }
  return diff == 0;
}

// Loopback clients only for /admin: "127.x.y.z:port" or "::1" forms.
bool IsLoopback(absl::string_view remote) {
  return absl::StartsWith(remote, "127.") || absl::StartsWith(remote, "::1") ||
         absl::StartsWith(remote, "[::1]") || absl::StartsWith(remote, "::ffff:127.");
}

// Answers one request without the engine.
void Reply(ResponseSink* sink, int status, std::string body) {
  sink->SendHeaders(status, {{"Content-Type", "application/json"}}, false);
  sink->SendBody(body);
  sink->Finish(true);
}

void ReplyError(ResponseSink* sink, const absl::Status& status) {
  Reply(sink, HttpStatusForStatus(status), OpenAiErrorBody(status));
}

std::string JsonString(std::string_view s) {
  // Model names and paths: escape what JSON requires.
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppend(&out, "\\u00", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
        } else {
          out += c;
        }
    }
  }
  out += "\"";
  return out;
}

// The in-process emulator, started on first use on a thread of its own.
class BuiltinEmulator {
 public:
  ~BuiltinEmulator() { Stop(); }

  // Returns the base URL ("http://127.0.0.1:PORT"), starting the emulator if needed.
  absl::StatusOr<std::string> BaseUrl() ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (emulator_ == nullptr) {
      emulator::EmulatorOptions options;
      options.models = {"demo"};
      // Paced like a real model, so a streamed demo reply visibly arrives piece by piece.
      options.defaults.chunk_interval = absl::Milliseconds(30);
      // The deployments of demo-resilient (default_config.cc): /faults/flaky/ answers 30%
      // 5xx and 10% resets, /faults/ratelimited/ 429 bursts (3 of every 10) with
      // Retry-After: 1; seeded, so every run sees the same faults.
      options.fault_profiles["flaky"] = {.server_error = 0.3, .reset = 0.1, .seed = 11};
      options.fault_profiles["ratelimited"] = {.burst = 3, .burst_period = 10,
                                               .retry_after_seconds = 1, .seed = 12};
      auto started = emulator::Emulator::Start(io_, std::move(options));
      if (!started.ok()) return started.status();
      emulator_ = std::move(*started);
      work_ = std::make_unique<WorkGuard>(asio::make_work_guard(io_));
      thread_ = std::thread([this] { io_.run(); });
    }
    return absl::StrCat("http://127.0.0.1:", emulator_->port());
  }

  bool running() ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    return emulator_ != nullptr;
  }

  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (emulator_ == nullptr) return;
    // Runs on the emulator's thread while this one holds mu_ and waits in join().
    asio::post(io_, [emulator = emulator_.get()] { emulator->Stop(); });
    work_.reset();
    thread_.join();
    emulator_.reset();
  }

 private:
  using WorkGuard = asio::executor_work_guard<asio::io_context::executor_type>;
  absl::Mutex mu_;
  asio::io_context io_;
  std::unique_ptr<emulator::Emulator> emulator_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<WorkGuard> work_ ABSL_GUARDED_BY(mu_);
  std::thread thread_ ABSL_GUARDED_BY(mu_);
};

// Runs reload jobs one at a time, in order, on a thread of its own: parsing, validating
// and building a configuration (and starting the emulator it may need) must not stall a
// loop that serves clients. The thread starts with the first job: a second thread makes
// glibc take its multi-threaded path on every socket call of a --threads 1 proxy (about
// 30 instructions each), so a proxy that is never reloaded does not pay for one.
// Thread safety: thread-safe.
class Reloader {
 public:
  Reloader() = default;
  // Jobs not started yet are dropped.
  ~Reloader() {
    std::thread thread;
    {
      core_internal::MutexLock lock(&mu_);
      stop_ = true;
      thread = std::move(thread_);
    }
    if (thread.joinable()) thread.join();
  }

  void Post(absl::AnyInvocable<void()> job) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (stop_) return;
    jobs_.push_back(std::move(job));
    if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_) {
    for (;;) {
      absl::AnyInvocable<void()> job;
      {
        core_internal::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stop_ || !jobs_.empty();
        };
        core_internal::AwaitWithTimeout(&mu_, ready, absl::InfiniteDuration());
        if (stop_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();  // never under the lock
    }
  }

  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_ ABSL_GUARDED_BY(mu_);  // started by the first Post
};

// An admin request answered later, from the Reloader. The reply state is touched on the
// request's loop only; the reload job just carries it there.
class PendingAdminReply final : public ActiveRequest {
 public:
  struct State {
    ResponseSink* sink;  // null once the client is gone
    bool done = false;
  };
  explicit PendingAdminReply(ResponseSink* sink)
      : state_(std::make_shared<State>(State{sink})) {}
  ~PendingAdminReply() override { state_->sink = nullptr; }
  void OnSinkDrained() override {}
  bool done() const override { return state_->done; }
  const std::shared_ptr<State>& state() const { return state_; }

 private:
  std::shared_ptr<State> state_;
};

class App {
 public:
  explicit App(Flags flags)
      : flags_(std::move(flags)),
        env_allowed_(flags_.allow_env.begin(), flags_.allow_env.end()),
        store_(StoreOptions()) {}

  // Reads the configuration text (file or default) and fills in ${EMULATOR_BASE_URL}.
  absl::StatusOr<std::string> ConfigText(std::string_view override_text = {}) {
    std::string text;
    if (!override_text.empty()) {
      text = std::string(override_text);
    } else if (!flags_.config_path.empty()) {
      auto file = ReadFile(flags_.config_path);
      if (!file.ok()) return file.status();
      text = std::move(*file);
    } else {
      text = DefaultConfig(GetEnv("OPENAI_API_KEY").has_value());
    }
    if (absl::StrContains(text, kEmulatorPlaceholder)) {
      auto url = emulator_.BaseUrl();
      if (!url.ok()) return url.status();
      text = absl::StrReplaceAll(text, {{kEmulatorPlaceholder, *url}});
    }
    return text;
  }

  // Reloads the operator's configuration (`posted` empty: --config or the default) or a
  // configuration posted to /admin/reload, which may read only the environment variables
  // in env_allowed_. Runs on the Reloader's thread.
  absl::Status Reload(std::optional<std::string> posted) {
    SetEnvMode(posted.has_value() ? EnvMode::kPosted : EnvMode::kOperator);
    absl::Status st = ReloadText(posted.has_value() ? std::string_view(*posted) : std::string_view());
    SetEnvMode(EnvMode::kOperator);
    if (st.ok()) {
      std::fprintf(stderr, "modeenvoy-gateway: configuration reloaded (generation %llu)\n",
                   static_cast<unsigned long long>(store_.generation()));
    } else {
      std::fprintf(stderr, "modeenvoy-gateway: reload rejected, keeping generation %llu: %s\n",
                   static_cast<unsigned long long>(store_.generation()),
                   std::string(st.message()).c_str());
    }
    return st;
  }

  int Run() {
    auto token = LoadAdminToken(flags_);
    if (!token.ok()) return Fail(token.status());
    admin_token_ = std::move(*token);
    auto text = ConfigText();
    if (!text.ok()) return Fail(text.status());
    if (absl::Status st = store_.Load(*text); !st.ok()) return Fail(st);
    auto snapshot = store_.Current();
    listen_ = snapshot->listen();
    reloader_ = std::make_unique<Reloader>();

    HttpServer::Options server_options;
    server_options.address = flags_.address.empty() ? snapshot->listen().address : flags_.address;
    server_options.port = flags_.port >= 0 ? static_cast<uint16_t>(flags_.port)
                                           : snapshot->listen().port;
    server_options.max_body_bytes = snapshot->listen().max_body_bytes;
    server_options.reuse_port = flags_.threads > 1;
    server_options.max_connections = flags_.max_connections;
    server_options.max_requests_in_flight = flags_.max_requests;

    // Usage of streams that end without it: counted with the tokenizer when its rank files
    // load, else in words (the usage then says "estimation_method": "word_count").
    usage_estimator_ = NewTokenizerUsageEstimator();
    for (int i = 0; i < flags_.threads; ++i) {
      auto worker = std::make_unique<Worker>();
      if (absl::Status st = StartWorker(*worker, server_options); !st.ok()) return Fail(st);
      // Later workers join the port the first one bound (port 0 picks it once).
      server_options.port = worker->server->port();
      workers_.push_back(std::move(worker));
    }
    const uint16_t port = workers_.front()->server->port();
    if (!flags_.port_file.empty()) {
      if (absl::Status st = examples::WritePortFile(flags_.port_file, port); !st.ok()) {
        return Fail(st);
      }
    }

    Worker& main = *workers_.front();
    auto stop_signals = examples::OnStopSignals(main.io, [this](int signo) { OnStopSignal(); });
    asio::signal_set hangup(main.io, SIGHUP);
    std::function<void()> wait_hangup = [&] {
      hangup.async_wait([&](const boost::system::error_code& ec, int) {
        if (ec) return;
        reloader_->Post([this] { (void)Reload(std::nullopt); });
        wait_hangup();
      });
    };
    wait_hangup();

    PrintBanner(server_options.address, port);

    for (size_t i = 1; i < workers_.size(); ++i) {
      Worker* w = workers_[i].get();
      w->thread = std::thread([w] { w->io.run(); });
    }
    main.io.run();
    for (size_t i = 1; i < workers_.size(); ++i) workers_[i]->thread.join();
    hangup.cancel();
    stop_signals.reset();
    reloader_.reset();  // before the loops its replies are posted to go away
    // Stores bound to a worker's loop (Redis) go before their loop does.
    for (auto& w : workers_) ReleaseContextStores(store_.services(), *w->loop);
    workers_.clear();
    emulator_.Stop();
    std::fprintf(stderr, "modeenvoy-gateway: stopped\n");
    return 0;
  }

 private:
  struct Worker {
    // Destroyed in reverse: connections (and their requests) first, the io_context last.
    asio::io_context io{1};
    std::unique_ptr<EventLoop> loop;
    std::unique_ptr<UpstreamClient> upstream;
    std::unique_ptr<Gateway> gateway;
    std::unique_ptr<HttpServer> server;
    std::thread thread;
  };

  int Fail(const absl::Status& st) {
    std::fprintf(stderr, "modeenvoy-gateway: %s\n", std::string(st.message()).c_str());
    return 1;
  }

  absl::Status StartWorker(Worker& w, const HttpServer::Options& options) {
    w.loop = examples::NewAsioEventLoop(w.io);
    // curl's default pool holds 4 idle connections per transfer in flight at the moment one
    // ends, so a burst that ebbs closes connections the next burst opens again (a fifth of
    // streamed requests paid a new upstream connection at 32 clients). Keep a fixed pool.
    CurlUpstreamOptions upstream_options;
    upstream_options.max_idle_connections = kUpstreamIdleConnections;
    auto upstream = NewCurlUpstreamClient(w.loop.get(), upstream_options);
    if (!upstream.ok()) return upstream.status();
    w.upstream = std::move(*upstream);
    GatewayOptions gateway_options;
    gateway_options.config = &store_;
    gateway_options.loop = w.loop.get();
    gateway_options.upstream = w.upstream.get();
    gateway_options.usage_estimator = usage_estimator_;
    auto gateway = NewGateway(std::move(gateway_options));
    if (!gateway.ok()) return gateway.status();
    w.gateway = std::move(*gateway);
    Worker* wp = &w;
    auto server = HttpServer::Start(w.io, options, [this, wp](HttpRequest req, ResponseSink* sink) {
      return Route(*wp, std::move(req), sink);
    });
    if (!server.ok()) return server.status();
    w.server = std::move(*server);
    return absl::OkStatus();
  }

  // Which environment variables a configuration being loaded may read: kOperator (start,
  // SIGHUP, empty-body reload) reads any and adds its names to env_allowed_; kPosted reads
  // only those and records the names it was refused.
  enum class EnvMode { kOperator, kPosted };

  // The engine's built-ins plus the components this proxy serves: the context protocol
  // (section, filter, routing policy and /v1/sessions endpoints).
  static const Registry* ProxyRegistry() {
    static const Registry* const registry = [] {
      auto* r = new Registry();
      if (absl::Status st = RegisterContextComponent(r); !st.ok()) {
        std::fprintf(stderr, "modeenvoy-gateway: %s\n", std::string(st.message()).c_str());
      }
      if (absl::Status st = RegisterAnthropicIngressComponent(r); !st.ok()) {
        std::fprintf(stderr, "modeenvoy-gateway: %s\n", std::string(st.message()).c_str());
      }
      if (absl::Status st = RegisterResponsesIngressComponent(r); !st.ok()) {
        std::fprintf(stderr, "modeenvoy-gateway: %s\n", std::string(st.message()).c_str());
      }
      if (absl::Status st = RegisterRouterGatewayComponent(r); !st.ok()) {
        std::fprintf(stderr, "modeenvoy-gateway: %s\n", std::string(st.message()).c_str());
      }
      return r;
    }();
    return registry;
  }

  ConfigLoadOptions StoreOptions() {
    ConfigLoadOptions options;
    options.registry = ProxyRegistry();
    options.env_lookup = [this](std::string_view name) { return LookupEnv(name); };
    return options;
  }

  void SetEnvMode(EnvMode mode) ABSL_LOCKS_EXCLUDED(env_mu_) {
    core_internal::MutexLock lock(&env_mu_);
    env_mode_ = mode;
    env_denied_.clear();
  }

  std::optional<std::string> LookupEnv(std::string_view name) ABSL_LOCKS_EXCLUDED(env_mu_) {
    std::string key(name);
    {
      core_internal::MutexLock lock(&env_mu_);
      if (env_mode_ == EnvMode::kOperator) {
        env_allowed_.insert(key);
      } else if (!env_allowed_.contains(key)) {
        env_denied_.push_back(key);
        return std::nullopt;
      }
    }
    return GetEnv(key.c_str());
  }

  absl::Status ReloadText(std::string_view posted) {
    auto text = ConfigText(posted);
    if (!text.ok()) return text.status();
    absl::Status st = CheckListenUnchanged(*text);
    // A refused variable surfaces as "not set" (or not at all, where a variable is
    // optional); say what really happened, and never publish such a configuration.
    if (absl::Status denied = DeniedEnv(); !denied.ok()) return denied;
    if (st.ok()) st = store_.Reload(*text);
    return st;
  }

  absl::Status DeniedEnv() ABSL_LOCKS_EXCLUDED(env_mu_) {
    core_internal::MutexLock lock(&env_mu_);
    if (env_denied_.empty()) return absl::OkStatus();
    return absl::PermissionDeniedError(absl::StrCat(
        "a configuration posted to /admin/reload may name only environment variables the "
        "operator's configuration uses or --allow-env lists; refused: ",
        absl::StrJoin(env_denied_, ", ")));
  }

  // The listener is bound once; a reload that would change it is refused rather than
  // accepted and silently ignored.
  absl::Status CheckListenUnchanged(const std::string& text) {
    auto candidate = LoadConfig(text, StoreOptions());
    if (!candidate.ok()) return candidate.status();
    const ListenConfig& next = (*candidate)->listen();
    if (next.address != listen_.address || next.port != listen_.port ||
        next.max_body_bytes != listen_.max_body_bytes) {
      return FieldError(absl::StatusCode::kFailedPrecondition, "listen",
                        "cannot change while the gateway runs; restart it to apply");
    }
    return absl::OkStatus();
  }

  // Admin endpoints change what the gateway does, so beyond a loopback peer they refuse
  // what a web page in a local browser could send: a request with an Origin (cross-site
  // fetch), a Host that is not a loopback name (DNS rebinding), or a body that is not
  // declared JSON (a no-preflight text/plain form post).
  static absl::Status CheckAdminRequest(const HttpRequest& req) {
    if (!IsLoopback(req.remote_address)) {
      return absl::PermissionDeniedError("admin endpoints accept loopback clients only");
    }
    if (FindHeader(req.headers, "origin").has_value()) {
      return absl::PermissionDeniedError("admin endpoints refuse browser (Origin) requests");
    }
    absl::string_view host;
    if (auto h = FindHeader(req.headers, "host")) host = absl::string_view(h->data(), h->size());
    if (absl::StartsWith(host, "[")) {
      host = host.substr(0, host.find(']') + 1);
    } else {
      host = host.substr(0, host.find(':'));
    }
    if (host != "localhost" && host != "[::1]" && !absl::StartsWith(host, "127.")) {
      return absl::PermissionDeniedError("admin endpoints need a loopback Host header");
    }
    if (!req.body.empty()) {
      auto type = FindHeader(req.headers, "content-type");
      if (!type || !absl::StartsWith(absl::string_view(type->data(), type->size()),
                                     "application/json")) {
        return WithHttpStatus(
            absl::InvalidArgumentError("admin request bodies must be Content-Type: application/json"),
            415);
      }
    }
    return absl::OkStatus();
  }

  // A posted configuration can point the gateway at any upstream, so beyond the loopback
  // checks it needs the admin token; without one configured, posting is off.
  absl::Status CheckAdminToken(const HttpRequest& req) const {
    if (admin_token_.empty()) {
      return absl::PermissionDeniedError(
          "posting a configuration to /admin/reload needs an admin token: start the gateway "
          "with --admin-token-file or MODEENVOY_ADMIN_TOKEN (an empty body re-reads --config)");
    }
    std::string_view presented;
    if (auto auth = FindHeader(req.headers, "authorization")) {
      absl::string_view v(auth->data(), auth->size());
      if (v.size() > 7 && absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
        v = absl::StripLeadingAsciiWhitespace(v.substr(7));
        presented = std::string_view(v.data(), v.size());
      }
    }
    if (!ConstantTimeEquals(presented, admin_token_)) {
      return absl::UnauthenticatedError(
          "posting a configuration to /admin/reload needs \"Authorization: Bearer <admin token>\"");
    }
    return absl::OkStatus();
  }

  // Hands the reload to the Reloader and answers on this worker's loop when it is done.
  std::unique_ptr<ActiveRequest> StartReload(Worker& w, std::string body, ResponseSink* sink) {
    auto pending = std::make_unique<PendingAdminReply>(sink);
    std::optional<std::string> posted;
    if (!body.empty()) posted = std::move(body);
    reloader_->Post([this, io = &w.io, state = pending->state(), posted = std::move(posted)]() mutable {
      absl::Status st = Reload(std::move(posted));
      asio::post(*io, [this, state, st = std::move(st)] {
        if (state->sink == nullptr) return;  // the client left
        state->done = true;
        if (!st.ok()) {
          ReplyError(state->sink, st);
        } else {
          Reply(state->sink, 200, absl::StrCat(R"({"status":"reloaded","config_generation":)",
                                               store_.generation(), "}"));
        }
      });
    });
    return pending;
  }

  std::unique_ptr<ActiveRequest> Route(Worker& w, HttpRequest req, ResponseSink* sink) {
    absl::string_view path = req.path;
    if (size_t q = path.find('?'); q != absl::string_view::npos) path = path.substr(0, q);
    if (path == "/healthz") {
      Reply(sink, 200, absl::StrCat(R"({"status":"ok","config_generation":)", store_.generation(), "}"));
      return nullptr;
    }
    if (absl::StartsWith(path, "/admin/")) {
      if (absl::Status st = CheckAdminRequest(req); !st.ok()) {
        ReplyError(sink, st);
        return nullptr;
      }
      if (path == "/admin/reload" && req.method == "POST") {
        if (!req.body.empty()) {
          if (absl::Status st = CheckAdminToken(req); !st.ok()) {
            ReplyError(sink, st);
            return nullptr;
          }
        }
        return StartReload(w, std::move(req.body), sink);
      }
      if (path == "/admin/upstreams" && req.method == "GET") {
        return w.gateway->Handle(std::move(req), sink);  // the router component's endpoint
      }
      if (path == "/admin/config" && req.method == "GET") {
        auto snap = store_.Current();
        std::vector<std::string> names;
        for (const auto& name : snap->ServedModelNames()) names.push_back(JsonString(name));
        Reply(sink, 200, absl::StrCat(R"({"config_generation":)", snap->generation(),
                                      R"(,"models":[)", absl::StrJoin(names, ","), "]}"));
        return nullptr;
      }
      ReplyError(sink, absl::NotFoundError(absl::StrCat("no admin endpoint ", req.method, " ", path)));
      return nullptr;
    }
    return w.gateway->Handle(std::move(req), sink);
  }

  void OnStopSignal() {
    if (stopping_.exchange(true)) {
      std::fprintf(stderr, "modeenvoy-gateway: second stop signal, exiting now\n");
      std::_Exit(1);
    }
    std::fprintf(stderr, "modeenvoy-gateway: stopping; letting requests in flight finish\n");
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::post(w->io, [w] {
        w->server->Shutdown([w] {
          // Nothing of ours is left on this loop; let its run() return.
          w->io.stop();
        });
      });
    }
  }

  void PrintBanner(const std::string& address, uint16_t port) {
    auto snap = store_.Current();
    std::string host = absl::StrContains(address, ':') ? absl::StrCat("[", address, "]") : address;
    if (address == "0.0.0.0") host = "127.0.0.1";
    std::string base = absl::StrCat("http://", host, ":", port);
    std::printf("modeenvoy-gateway listening on %s (%d worker thread%s, config generation %llu)\n",
                base.c_str(), flags_.threads, flags_.threads == 1 ? "" : "s",
                static_cast<unsigned long long>(snap->generation()));
    std::printf("  config: %s\n", flags_.config_path.empty() ? "embedded default"
                                                              : flags_.config_path.c_str());
    std::printf("  models: %s\n", absl::StrJoin(snap->ServedModelNames(), ", ").c_str());
    if (emulator_.running()) {
      auto url = emulator_.BaseUrl();
      std::printf("  built-in provider emulator (OpenAI wire format) at %s\n",
                  url.ok() ? url->c_str() : "?");
    }
    std::string model = snap->ServedModelNames().empty() ? "demo" : snap->ServedModelNames()[0];
    for (const auto& name : snap->ServedModelNames()) {
      if (name == "demo") model = name;
    }
    std::printf(
        "\nTry it:\n"
        "  curl -s %s/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        "    -d '{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello!\"}]}'\n"
        "  curl -sN %s/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        "    -d '{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Stream this reply\"}]}'\n"
        "  python3 -c \"from openai import OpenAI; c = OpenAI(base_url='%s/v1', api_key='unused'); "
        "print(c.chat.completions.create(model='%s', messages=[{'role': 'user', 'content': 'Hello!'}]).choices[0].message.content)\"\n\n",
        base.c_str(), model.c_str(), base.c_str(), model.c_str(), base.c_str(), model.c_str());
    std::fflush(stdout);
  }

  Flags flags_;
  absl::Mutex env_mu_;
  absl::flat_hash_set<std::string> env_allowed_ ABSL_GUARDED_BY(env_mu_);
  EnvMode env_mode_ ABSL_GUARDED_BY(env_mu_) = EnvMode::kOperator;
  std::vector<std::string> env_denied_ ABSL_GUARDED_BY(env_mu_);
  std::string admin_token_;  // empty: posting a configuration is refused
  ConfigStore store_;
  ListenConfig listen_;  // as loaded at start; fixed for the process's life
  BuiltinEmulator emulator_;
  std::vector<std::unique_ptr<Worker>> workers_;
  // After workers_, so it is joined first: its jobs post replies to the workers' loops.
  std::unique_ptr<Reloader> reloader_;
  std::shared_ptr<const UsageEstimator> usage_estimator_;  // shared by every worker
  std::atomic<bool> stopping_{false};
};

}  // namespace
}  // namespace modeenvoy::proxy

int main(int argc, char** argv) {
  auto flags = modeenvoy::proxy::ParseFlags(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "modeenvoy-gateway: %s\n%s", std::string(flags.status().message()).c_str(),
                 modeenvoy::proxy::kUsage);
    return 2;
  }
  if (flags->print_default_config) {
    std::fputs(modeenvoy::proxy::DefaultConfig(std::getenv("OPENAI_API_KEY") != nullptr).c_str(),
               stdout);
    return 0;
  }
  modeenvoy::proxy::App app(*std::move(flags));
  return app.Run();
}
