// examples/emulator/emulator.h: a wire-faithful LLM provider emulator (HTTP/1.1 on Asio).
//
// Speaks OpenAI's Chat Completions wire format exactly (POST /v1/chat/completions, whole
// and SSE-streamed; GET /v1/models), with deterministic replies and per-server or
// per-request controls for latency, chunk pacing, injected errors, resets and stalls.
// Other providers' formats plug in as one ProviderDialect each (see provider_dialect.h).
//   boost::asio::io_context io;
//   auto emu = modeenvoy::emulator::Emulator::Start(io, {.port = 0});
//   if (!emu.ok()) return emu.status();
//   std::printf("listening on 127.0.0.1:%u\n", (*emu)->port());
//   io.run();                       // elsewhere: (*emu)->Stop();
// Per-request controls are request headers (x-emulator-*); see README.md beside this file.
// Beast stays in emulator.cc; this header only forward-declares Asio.
#ifndef MODEENVOY_EXAMPLES_EMULATOR_EMULATOR_H_
#define MODEENVOY_EXAMPLES_EMULATOR_EMULATOR_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeenvoy::emulator {

struct Script;  // a parsed x-emulator-script / @emulator directive (provider_dialect.h)

// How a response goes wrong on purpose (x-emulator-fail).
enum class FailMode {
  kNone,
  kReset,           // "reset": abort the connection (TCP RST) before any response byte
  kResetMid,        // "reset-mid": send the head and half the body/events, then RST
  kStall,           // "stall": send the head, then nothing for `stall`, then the rest
  kStallMid,        // "stall-mid": send the head and half the events, stall, then the rest
  kStallFirstByte,  // "stall-first-byte": send nothing for `stall`, then the response
};

// What a response does; server-wide defaults in EmulatorOptions::defaults, each field
// overridable per request by the header named in its comment.
struct ReplyControls {
  // Delay before the first response byte (x-emulator-latency-ms).
  absl::Duration first_byte_latency = absl::ZeroDuration();
  // Content pieces a streamed text reply is cut into (x-emulator-chunks). 0 means one per
  // word (OpenAI sends about one token per chunk). Capped by the reply's code points.
  int chunks = 0;
  // Delay between two streamed events (x-emulator-chunk-interval-ms).
  absl::Duration chunk_interval = absl::ZeroDuration();
  // Fixed reply text (x-emulator-reply). Unset: echo of the last user message.
  std::optional<std::string> reply{};
  // Injected HTTP error status, 400..599 (x-emulator-status); 0 answers normally. The body
  // is the dialect's error object; type/message/code default per status and can be set by
  // x-emulator-error-type, x-emulator-error-message, x-emulator-error-code.
  int status = 0;
  std::string error_type{};
  std::string error_message{};
  std::string error_code{};
  // Retry-After seconds sent with an injected 429 or 503 (x-emulator-retry-after).
  int retry_after_seconds = 1;
  FailMode fail = FailMode::kNone;
  // How long a stall lasts (x-emulator-stall-ms). Infinite: until the client closes or
  // the emulator stops.
  absl::Duration stall = absl::InfiniteDuration();
  // What to answer, scripted (x-emulator-script; README.md "Scripts"). Its fields win over
  // the controls above. Null: the built-in rules.
  std::shared_ptr<const Script> script{};
};

// Server-side faults drawn per provider request from a seeded generator, so a run
// repeats: for resilience tests and demos where the client sends nothing special. A
// request's own controls (headers, queued controls, scripts) win over a drawn fault.
// Spec form (ParseFaultProfile, flag --fault): "5xx=0.3,reset=0.1,timeout=0.05,
// 429=5/20,retry_after=1,seed=7" — any subset, comma-separated.
// The n-th provider request of a profile (n from 0; POST /emulator/reset restarts it) is a
// 429 when burst_period > 0 and n % burst_period < burst; otherwise u = the top 53 bits of
// SplitMix64(seed + (n + 1) * 0x9E3779B97F4A7C15) / 2^53 picks: u < 5xx → 500, then
// u < 5xx + reset → reset, then u < 5xx + reset + timeout → stalled forever, else normal.
struct FaultProfile {
  double server_error = 0;  // "5xx": share answered 500 (OpenAI's server_error body)
  double reset = 0;         // "reset": share closed with a TCP RST before any byte
  double timeout = 0;       // "timeout": share that sends nothing until the client gives up
  // "429=B/P": of every P provider requests, the first B answer 429 with Retry-After
  // (a burst); 0/0 = none.
  int burst = 0;
  int burst_period = 0;
  int retry_after_seconds = 1;  // "retry_after": Retry-After of the 429s
  uint64_t seed = 1;            // "seed"
  bool enabled() const {
    return server_error > 0 || reset > 0 || timeout > 0 || burst > 0;
  }
};

// Parses the spec above. Errors: kInvalidArgument naming the bad item ("5xx=2: a share
// must be in [0, 1]", shares summing above 1, "429=3/2: B must be <= P").
absl::StatusOr<FaultProfile> ParseFaultProfile(std::string_view spec);

// How `usage` is counted.
enum class UsageCountingMode {
  // The tokenizer when its rank files are found (o200k_base loads), else words.
  kAuto,
  // The tokenizer, as OpenAI counts (chat overhead included); Start() fails without it.
  kTokenizer,
  // Whitespace-separated words, no per-message overhead: easy to predict by hand.
  kWords,
};

struct EmulatorOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0 picks a free port; see Emulator::port()
  // When non-empty, requests must carry it (OpenAI: "Authorization: Bearer <key>") or get
  // the dialect's 401.
  std::string api_key{};
  // Larger request bodies are answered 413.
  size_t max_body_bytes = 8 << 20;
  // Listed by GET /v1/models. Requests may name any model; it is echoed back.
  std::vector<std::string> models = {"gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "o3-mini"};
  // Reported as system_fingerprint.
  std::string system_fingerprint = "fp_emu0000001";
  // Time source for `created`. Not owned; must outlive the emulator. Null: system clock.
  const Clock* clock = nullptr;
  // Token counting for usage, and where the tokenizer's rank files are: empty fields of
  // `encoding` mean $MODEENVOY_TOKENIZER_DIR, then tiktoken's cache (encoding.h).
  UsageCountingMode usage_counting = UsageCountingMode::kAuto;
  EncodingOptions encoding{};
  ReplyControls defaults{};
  // Faults for every provider request (flag --fault).
  FaultProfile faults{};
  // Faults by name, served under the path prefix /faults/<name>/ (the rest of the path is
  // the provider route: /faults/flaky/v1/chat/completions), so one emulator stands in for
  // several deployments of different health (flag --fault-profile NAME=SPEC). A request
  // under an unknown name is a 404. Names: [A-Za-z0-9_-]+.
  std::map<std::string, FaultProfile> fault_profiles{};
};

// One request as received, for tests that check what a gateway sent upstream.
struct RecordedRequest {
  std::string method;
  std::string target;                                        // path and query
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
};

struct EmulatorStats {
  uint64_t connections = 0;  // TCP connections accepted
  uint64_t requests = 0;     // requests received, /emulator/* endpoints excluded
  uint64_t aborted = 0;      // responses cut short: client gone, reset or stopped mid-way
  std::vector<RecordedRequest> recent;  // last kMaxRecent requests, oldest first
  static constexpr size_t kMaxRecent = 32;
};

// Thread safety: Start() and every method are thread-safe; handlers run on the threads
// that run `io`. REQUIRES: `io` is run by one thread.
class Emulator {
 public:
  virtual ~Emulator() = default;  // Stop()s

  // Binds `options.host:options.port`, listens, and serves on `io`.
  // Errors: kInvalidArgument for a bad host or options, kUnavailable if the address
  // cannot be bound; with UsageCountingMode::kTokenizer, GetEncoding's error when
  // o200k_base cannot be loaded.
  static absl::StatusOr<std::unique_ptr<Emulator>> Start(boost::asio::io_context& io,
                                                         EmulatorOptions options);

  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;

  // "words" or "tokenizer": how usage is counted (UsageCountingMode::kAuto resolved).
  virtual std::string_view usage_counter() const = 0;

  // Stops accepting and closes every connection, responses in flight included (counted as
  // aborted). Idempotent. Once the handlers finish, `io.run()` has nothing left of ours.
  virtual void Stop() = 0;

  // Snapshot of the counters and recent requests (also served as GET /emulator/stats).
  virtual EmulatorStats stats() const = 0;

  // Clears counters, recent requests and script sequence positions (also
  // POST /emulator/reset).
  virtual void ResetStats() = 0;

  // Applies `headers` (x-emulator-* controls, as a request would carry them) to the next
  // `times` provider requests, ahead of their own headers. For scripting retries and
  // fallbacks: "the next 2 calls fail with 503". Also POST /emulator/next with
  // {"times": 2, "headers": {"x-emulator-status": "503"}}.
  virtual void QueueControls(std::vector<std::pair<std::string, std::string>> headers,
                             int times) = 0;
};

}  // namespace modeenvoy::emulator

#endif  // MODEENVOY_EXAMPLES_EMULATOR_EMULATOR_H_
