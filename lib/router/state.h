// lib/router/state.h: what the router learns about one deployment (health, load, latency).
// Outlives configurations: Router::Update() hands the same object to the next snapshot when
// the deployment id stays. Plan() reads only atomics; Report() writes under `mu`.
#ifndef MODEENVOY_LIB_ROUTER_STATE_H_
#define MODEENVOY_LIB_ROUTER_STATE_H_

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace modeenvoy::router_internal {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kNanosPerMinute = int64_t{60} * 1000 * 1000 * 1000;

// Online weighted least squares of latency = a + b * output tokens over a deployment's whole
// (non-streamed) answers, every sum decayed by exp(-elapsed / decay_ms) before a new point
// is added (the peak EWMA's time constant: old traffic is forgotten at the same pace).
class LatencyFit {
 public:
  void Add(double tokens, double latency_ms, int64_t now_ns, double decay_ms) {
    if (w_ > 0) {
      double idle_ms = static_cast<double>(now_ns - stamp_ns_) / 1e6;
      double f = idle_ms > 0 ? std::exp(-idle_ms / decay_ms) : 1.0;
      w_ *= f, x_ *= f, y_ *= f, xx_ *= f, xy_ *= f;
    }
    w_ += 1, x_ += tokens, y_ += latency_ms, xx_ += tokens * tokens, xy_ += tokens * latency_ms;
    stamp_ns_ = now_ns;
  }
  // The slope b in ms per token, or 0 when the points cannot carry one: fewer than
  // kMinWeight points' worth, token counts spread by less than kMinSpread of their mean
  // (constant lengths say nothing about a and b apart), or a slope that is not positive.
  double Slope() const {
    if (w_ < kMinWeight) return 0;
    double mx = x_ / w_, my = y_ / w_;
    double var = xx_ / w_ - mx * mx;
    if (!(var > 0) || var < kMinSpread * kMinSpread * mx * mx) return 0;
    double b = (xy_ / w_ - mx * my) / var;
    return b > 0 ? b : 0;
  }

  static constexpr double kMinWeight = 3;    // effective points (decayed weights summed)
  static constexpr double kMinSpread = 0.1;  // standard deviation / mean of token counts

 private:
  double w_ = 0, x_ = 0, y_ = 0, xx_ = 0, xy_ = 0;
  int64_t stamp_ns_ = 0;
};

struct DeploymentState {
  explicit DeploymentState(uint64_t seed) : rng(seed) {}

  // Read by Plan() without a lock.
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> ejected_until_ns{kNever};   // monotonic unix nanos
  std::atomic<int64_t> cooldown_until_ns{kNever};  // 429 cool-down
  std::atomic<double> ewma_ms{0};                  // peak-EWMA of time to first token
  std::atomic<int64_t> ewma_stamp_ns{0};
  // Requests and tokens per minute: the current and the previous minute, blended by how far
  // the current minute has gone (a sliding-window estimate without per-request storage).
  std::atomic<int64_t> minute{0};
  std::atomic<int64_t> requests_current{0}, requests_previous{0};
  std::atomic<int64_t> tokens_current{0}, tokens_previous{0};

  bool Available(int64_t now_ns) const {
    return ejected_until_ns.load(std::memory_order_relaxed) <= now_ns &&
           cooldown_until_ns.load(std::memory_order_relaxed) <= now_ns &&
           !probe_unhealthy.load(std::memory_order_relaxed);
  }

  // The peak-EWMA cost as of `now_ns`: the stored value decays towards 0 with the time
  // since the last sample (Finagle's peak EWMA), so a penalised deployment is retried.
  double EwmaAt(int64_t now_ns, double decay_ms) const {
    double v = ewma_ms.load(std::memory_order_relaxed);
    if (v == 0) return 0;
    double idle_ms = static_cast<double>(now_ns - ewma_stamp_ns.load(std::memory_order_relaxed)) / 1e6;
    return idle_ms <= 0 ? v : v * std::exp(-idle_ms / decay_ms);
  }

  // Sliding-minute estimates.
  static double Blend(int64_t now_ns, int64_t minute_index, int64_t current, int64_t previous) {
    int64_t m = now_ns / kNanosPerMinute;
    if (m == minute_index + 1) return static_cast<double>(current) * (1.0 - Frac(now_ns));
    if (m != minute_index) return 0;
    return static_cast<double>(current) + static_cast<double>(previous) * (1.0 - Frac(now_ns));
  }
  static double Frac(int64_t now_ns) {
    return static_cast<double>(now_ns % kNanosPerMinute) / static_cast<double>(kNanosPerMinute);
  }
  double RequestsPerMinute(int64_t now_ns) const {
    return Blend(now_ns, minute.load(std::memory_order_relaxed),
                 requests_current.load(std::memory_order_relaxed),
                 requests_previous.load(std::memory_order_relaxed));
  }
  double TokensPerMinute(int64_t now_ns) const {
    return Blend(now_ns, minute.load(std::memory_order_relaxed),
                 tokens_current.load(std::memory_order_relaxed),
                 tokens_previous.load(std::memory_order_relaxed));
  }
  // Moves the minute buckets to `now_ns`'s minute (rarely: once a minute takes `mu`).
  void Roll(int64_t now_ns) ABSL_LOCKS_EXCLUDED(mu);

  // Active health checks: read by Plan() (Available), written under `mu` by ReportProbe().
  std::atomic<bool> probe_unhealthy{false};

  // Written by Report().
  absl::Mutex mu;
  int consecutive_failures ABSL_GUARDED_BY(mu) = 0;
  int ejections ABSL_GUARDED_BY(mu) = 0;
  int64_t window_start_ns ABSL_GUARDED_BY(mu) = kNever;
  int window_requests ABSL_GUARDED_BY(mu) = 0;
  int window_failures ABSL_GUARDED_BY(mu) = 0;
  uint64_t rng ABSL_GUARDED_BY(mu);
  // Active health-check schedule (DueProbes / ReportProbe).
  int64_t next_probe_ns ABSL_GUARDED_BY(mu) = kNever;  // kNever: due at the first DueProbes
  bool probe_in_flight ABSL_GUARDED_BY(mu) = false;
  int probe_successes ABSL_GUARDED_BY(mu) = 0;  // consecutive
  int probe_failures ABSL_GUARDED_BY(mu) = 0;   // consecutive
  // peak_ewma's decode time per output token (after the first), for the sample of an
  // attempt without a first token: from streamed attempts, (latency - ttft) / (tokens - 1)
  // blended like the EWMA (0: none yet); else the slope of `fit`.
  double stream_decode_ms ABSL_GUARDED_BY(mu) = 0;
  int64_t stream_decode_stamp_ns ABSL_GUARDED_BY(mu) = 0;
  LatencyFit fit ABSL_GUARDED_BY(mu);
  double DecodeMsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return stream_decode_ms > 0 ? stream_decode_ms : fit.Slope();
  }
};

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_STATE_H_
