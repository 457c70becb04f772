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
//   POST /admin/reload     loopback clients only; body = new config JSON, or empty to
//                          re-read --config (or rebuild the default); 400 names the field
//   GET  /admin/config     loopback clients only; generation and served models
// Signals: SIGHUP reloads like an empty POST /admin/reload; SIGTERM/SIGINT stop accepting
// and let requests in flight finish (a second one exits at once).

#include <utility>  // before Asio (Boost 1.74 + g++ 12)

#include <atomic>
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
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "examples/common/asio_event_loop.h"
#include "examples/common/process.h"
#include "examples/emulator/emulator.h"
#include "examples/proxy/default_config.h"
#include "examples/proxy/http_server.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::proxy {
namespace {

namespace asio = boost::asio;

constexpr char kUsage[] =
    "usage: modeenvoy-gateway [--config FILE] [--address ADDR] [--port N] [--threads N]\n"
    "                         [--port-file FILE] [--print-default-config]\n"
    "  --config FILE           gateway configuration (JSON); default: the embedded one\n"
    "  --address ADDR          listen address (overrides listen.address)\n"
    "  --port N                listen port, 0 = any free port (overrides listen.port)\n"
    "  --threads N             worker threads, each with its own loop (default 1)\n"
    "  --port-file FILE        write the bound port to FILE once listening\n"
    "  --print-default-config  print the embedded default configuration and exit\n";

// Idle upstream connections each worker keeps for reuse (all providers together).
constexpr int64_t kUpstreamIdleConnections = 256;

struct Flags {
  std::string config_path;
  std::string address;
  int port = -1;
  int threads = 1;
  std::string port_file;
  bool print_default_config = false;
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
    absl::MutexLock lock(&mu_);
    if (emulator_ == nullptr) {
      emulator::EmulatorOptions options;
      options.models = {"demo"};
      // Paced like a real model, so a streamed demo reply visibly arrives piece by piece.
      options.defaults.chunk_interval = absl::Milliseconds(30);
      auto started = emulator::Emulator::Start(io_, std::move(options));
      if (!started.ok()) return started.status();
      emulator_ = std::move(*started);
      work_ = std::make_unique<WorkGuard>(asio::make_work_guard(io_));
      thread_ = std::thread([this] { io_.run(); });
    }
    return absl::StrCat("http://127.0.0.1:", emulator_->port());
  }

  bool running() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return emulator_ != nullptr;
  }

  void Stop() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    if (emulator_ == nullptr) return;
    asio::post(io_, [this] { emulator_->Stop(); });
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

class App {
 public:
  explicit App(Flags flags) : flags_(std::move(flags)) {}

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

  absl::Status Reload(std::string_view override_text) {
    auto text = ConfigText(override_text);
    if (!text.ok()) return text.status();
    absl::Status st = CheckListenUnchanged(*text);
    if (st.ok()) st = store_.Reload(*text);
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
    auto text = ConfigText();
    if (!text.ok()) return Fail(text.status());
    if (absl::Status st = store_.Load(*text); !st.ok()) return Fail(st);
    auto snapshot = store_.Current();
    listen_ = snapshot->listen();

    HttpServer::Options server_options;
    server_options.address = flags_.address.empty() ? snapshot->listen().address : flags_.address;
    server_options.port = flags_.port >= 0 ? static_cast<uint16_t>(flags_.port)
                                           : snapshot->listen().port;
    server_options.max_body_bytes = snapshot->listen().max_body_bytes;
    server_options.reuse_port = flags_.threads > 1;

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
        (void)Reload({});
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

  // The listener is bound once; a reload that would change it is refused rather than
  // accepted and silently ignored.
  absl::Status CheckListenUnchanged(const std::string& text) const {
    auto candidate = LoadConfig(text);
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
        absl::Status st = Reload(req.body);
        if (!st.ok()) {
          ReplyError(sink, st);
        } else {
          Reply(sink, 200, absl::StrCat(R"({"status":"reloaded","config_generation":)",
                                        store_.generation(), "}"));
        }
        return nullptr;
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
      asio::post(w->io, [this, w] {
        w->server->Shutdown([this, w] {
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
  ConfigStore store_;
  ListenConfig listen_;  // as loaded at start; fixed for the process's life
  BuiltinEmulator emulator_;
  std::vector<std::unique_ptr<Worker>> workers_;
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
