// modeenvoy-emulator: serves the provider emulator until SIGINT/SIGTERM.
//   modeenvoy-emulator --port 0 --port-file /tmp/emu.port --chunk-interval-ms 20
// Prints "listening on <host>:<port>" on stdout once bound. Flags named after a control
// header (--latency-ms for x-emulator-latency-ms, ...) set that control's server default.
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without including it
#include <vector>

#include <boost/asio/io_context.hpp>

#include "examples/common/process.h"
#include "examples/emulator/emulator.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace {

constexpr char kUsage[] =
    "usage: modeenvoy-emulator [flags]\n"
    "  --host ADDR               listen address (default 127.0.0.1)\n"
    "  --port N                  port, 0 picks a free one (default 0)\n"
    "  --port-file PATH          write the bound port to PATH once listening\n"
    "  --api-key KEY             require this API key (OpenAI: Authorization: Bearer KEY)\n"
    "  --max-body-bytes N        larger request bodies get 413 (default 8388608)\n"
    "  --models a,b,c            models listed by GET /v1/models\n"
    "  --system-fingerprint FP   system_fingerprint in replies\n"
    "  --usage-counter MODE      auto (default: the tokenizer if its rank files are found,\n"
    "                            else words), tokenizer (required) or words\n"
    "  --tokenizer-dir DIR       rank files <name>.tiktoken (default: $MODEENVOY_TOKENIZER_DIR,\n"
    "                            then tiktoken's cache)\n"
    "server defaults of the per-request controls (header x-emulator-<name>):\n"
    "  --latency-ms N  --chunks N  --chunk-interval-ms N  --reply TEXT  --status N\n"
    "  --error-type T  --error-message M  --error-code C  --retry-after S\n"
    "  --fail none|reset|reset-mid|stall|stall-mid|stall-first-byte  --stall-ms N|forever\n"
    "  --fault SPEC              seeded server-wide faults per provider request, e.g.\n"
    "                            \"5xx=0.3,reset=0.1,timeout=0.05,429=5/20,retry_after=1,seed=7\"\n"
    "  --fault-profile NAME=SPEC the same under the path prefix /faults/NAME/ (repeatable)\n";

int Fail(const std::string& message) {
  std::fprintf(stderr, "modeenvoy-emulator: %s\n%s", message.c_str(), kUsage);
  return 2;
}

bool ParsePort(std::string_view text, uint16_t* port) {
  char* end = nullptr;
  std::string s(text);
  long v = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || v < 0 || v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  namespace emu = modeenvoy::emulator;
  emu::EmulatorOptions options;
  std::string port_file;
  emu::Headers controls;
  static const char* const kControlFlags[] = {
      "latency-ms", "chunks",        "chunk-interval-ms", "reply",       "status", "error-type",
      "error-message", "error-code", "retry-after",       "fail",        "stall-ms"};

  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::string value;
    if (size_t eq = flag.find('='); eq != std::string_view::npos) {
      value = std::string(flag.substr(eq + 1));
      flag = flag.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Fail(std::string(flag) + ": missing value");
    }
    if (flag.rfind("--", 0) != 0) return Fail("unexpected argument '" + std::string(flag) + "'");
    std::string_view name = flag.substr(2);
    if (name == "host") {
      options.host = value;
    } else if (name == "port") {
      if (!ParsePort(value, &options.port)) return Fail("--port: expected 0..65535");
    } else if (name == "port-file") {
      port_file = value;
    } else if (name == "api-key") {
      options.api_key = value;
    } else if (name == "max-body-bytes") {
      char* end = nullptr;
      unsigned long long v = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || v == 0) return Fail("--max-body-bytes: expected > 0");
      options.max_body_bytes = static_cast<size_t>(v);
    } else if (name == "models") {
      options.models.clear();
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        std::string m = value.substr(start, comma == std::string::npos ? std::string::npos
                                                                       : comma - start);
        if (!m.empty()) options.models.push_back(m);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name == "system-fingerprint") {
      options.system_fingerprint = value;
    } else if (name == "usage-counter") {
      if (value == "auto") {
        options.usage_counting = emu::UsageCountingMode::kAuto;
      } else if (value == "tokenizer") {
        options.usage_counting = emu::UsageCountingMode::kTokenizer;
      } else if (value == "words") {
        options.usage_counting = emu::UsageCountingMode::kWords;
      } else {
        return Fail("--usage-counter: expected auto, tokenizer or words, got '" + value + "'");
      }
    } else if (name == "fault") {
      absl::StatusOr<emu::FaultProfile> faults = emu::ParseFaultProfile(value);
      if (!faults.ok()) return Fail("--fault: " + std::string(faults.status().message()));
      options.faults = *faults;
    } else if (name == "fault-profile") {
      size_t eq = value.find('=');
      std::string profile = value.substr(0, eq);
      bool valid = eq != std::string::npos && !profile.empty();
      for (char c : profile) valid = valid && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-');
      if (!valid) return Fail("--fault-profile: expected NAME=SPEC, NAME of [A-Za-z0-9_-]");
      absl::StatusOr<emu::FaultProfile> faults = emu::ParseFaultProfile(value.substr(eq + 1));
      if (!faults.ok()) return Fail("--fault-profile " + profile + ": " + std::string(faults.status().message()));
      options.fault_profiles[profile] = *faults;
    } else if (name == "tokenizer-dir") {
      if (value.empty()) return Fail("--tokenizer-dir: expected a directory");
      options.encoding.tokenizer_dir = value;
    } else {
      bool known = false;
      for (const char* c : kControlFlags) known = known || name == c;
      if (!known) return Fail("unknown flag " + std::string(flag));
      controls.emplace_back("x-emulator-" + std::string(name), value);
    }
  }
  if (absl::Status s = emu::ApplyControlHeaders(controls, &options.defaults); !s.ok()) {
    return Fail(std::string(s.message()));
  }

  boost::asio::io_context io;
  std::string host = options.host;
  auto emulator = emu::Emulator::Start(io, std::move(options));
  if (!emulator.ok()) {
    std::fprintf(stderr, "modeenvoy-emulator: %s\n", std::string(emulator.status().message()).c_str());
    return 1;
  }
  const uint16_t port = (*emulator)->port();
  std::fprintf(stderr, "modeenvoy-emulator: usage counted in %s\n",
               std::string((*emulator)->usage_counter()).c_str());
  if (!port_file.empty()) {
    if (absl::Status s = modeenvoy::examples::WritePortFile(port_file, port); !s.ok()) {
      std::fprintf(stderr, "modeenvoy-emulator: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  std::unique_ptr<modeenvoy::examples::SignalSubscription> signals;
  signals = modeenvoy::examples::OnStopSignals(io, [&](int signo) {
    std::fprintf(stderr, "modeenvoy-emulator: signal %d, stopping\n", signo);
    (*emulator)->Stop();
    signals.reset();  // nothing of ours is left on `io`, so run() returns
  });
  std::printf("listening on %s:%u\n", host.c_str(), static_cast<unsigned>(port));
  std::fflush(stdout);
  io.run();
  return 0;
}
