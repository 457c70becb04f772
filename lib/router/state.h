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
};

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_STATE_H_
