// lib/router/hedge.h: hedged requests. A pool with "hedge" keeps a bounded latency sketch
// of its successful attempts; the first attempt of a non-streaming request carries "hedge
// after D" with D the sketch's quantile (p95 by default), and RoutePlan::Hedge() plans the
// second, concurrent attempt on another deployment.
#ifndef MODEENVOY_LIB_ROUTER_HEDGE_H_
#define MODEENVOY_LIB_ROUTER_HEDGE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/core/mutex.h"

namespace modeenvoy::router_internal {

struct HedgeConfig {
  double quantile = 0.95;
  int min_samples = 20;  // no hedging before the sketch holds this many samples
  absl::Duration min_delay = absl::Milliseconds(10);
  absl::Duration max_delay = absl::Seconds(30);
  // "delay_ms": a fixed hedge delay instead of the quantile (hedging from the first request).
  std::optional<absl::Duration> delay;
};

// A log-bucketed latency histogram (bucket b holds [2^(b/4), 2^((b+1)/4)) ms: 19% wide, from
// 1 ms to ~ 2^(63/4) ms ≈ 55 s, the last bucket open-ended). Bounded memory and bounded
// memory of the past: when `window` samples are held, every count is halved, so old traffic
// fades. The quantile is recomputed on each Add() and read by Plan() as one atomic load.
// Thread safety: thread-safe.
class LatencySketch {
 public:
  static constexpr int kBuckets = 64;
  static constexpr uint32_t kWindow = 1024;

  // `config` comes from the snapshot that reports (the sketch outlives configurations).
  void Add(absl::Duration latency, const HedgeConfig& config) ABSL_LOCKS_EXCLUDED(mu_) {
    double ms = absl::ToDoubleMilliseconds(latency);
    if (!(ms > 0)) return;
    int b = ms < 1 ? 0 : static_cast<int>(std::floor(std::log2(ms) * 4));
    if (b >= kBuckets) b = kBuckets - 1;
    core_internal::MutexLock lock(&mu_);
    ++counts_[b];
    if (++total_ >= kWindow) {
      total_ = 0;
      for (uint32_t& c : counts_) total_ += c /= 2;
    }
    double q = 0;
    if (total_ >= static_cast<uint32_t>(config.min_samples)) {
      // The upper edge of the bucket holding the quantile: never below the true value.
      double rank = config.quantile * total_;
      uint32_t seen = 0;
      for (int i = 0; i < kBuckets; ++i) {
        seen += counts_[i];
        if (seen >= rank) {
          q = std::exp2((i + 1) / 4.0);
          break;
        }
      }
    }
    quantile_ms_.store(q, std::memory_order_relaxed);
  }

  // The hedge delay: the configured one, else the quantile (InfiniteDuration before
  // min_samples).
  absl::Duration HedgeDelay(const HedgeConfig& config) const {
    if (config.delay.has_value()) return *config.delay;
    double q = quantile_ms_.load(std::memory_order_relaxed);
    if (q <= 0) return absl::InfiniteDuration();
    absl::Duration d = absl::Milliseconds(q);
    return std::min(config.max_delay, std::max(config.min_delay, d));
  }

 private:
  mutable absl::Mutex mu_;
  std::array<uint32_t, kBuckets> counts_ ABSL_GUARDED_BY(mu_) = {};
  uint32_t total_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<double> quantile_ms_{0};
};

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_HEDGE_H_
