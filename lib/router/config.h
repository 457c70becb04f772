// lib/router/config.h: the parsed router configuration and the tables built from it once
// (smooth weighted round-robin sequence, hash ring, Maglev table), read lock-free by Plan().
#ifndef MODEENVOY_LIB_ROUTER_CONFIG_H_
#define MODEENVOY_LIB_ROUTER_CONFIG_H_

#include <array>
#include <atomic>
#include <bitset>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/router/hedge.h"
#include "lib/router/rules.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy::router_internal {

enum class LbKind { kRoundRobin, kWeightedRoundRobin, kLeastRequest, kPeakEwma, kRingHash,
                    kMaglev };
enum class HashKey { kSession, kTenantPrompt, kTenant };

// A pool holds at most this many deployments (eligibility is a 64-bit mask).
inline constexpr int kMaxDeployments = 64;

struct LbConfig {
  LbKind kind = LbKind::kWeightedRoundRobin;
  HashKey hash_key = HashKey::kSession;
  // Sticky weighted split for the non-hash policies: with a hash key present, the first
  // choice is a weighted rendezvous hash of the key instead of the policy's own pick.
  bool sticky = false;
  double ewma_decay_ms = 10000;  // peak-EWMA time constant
  double balance_factor = 0;     // bounded load c (> 1) for ring_hash/maglev; 0 = unbounded
  int vnodes = 100;              // ring entries per unit of weight (ring_hash)
  int maglev_table_size = 65537; // prime (maglev)
};

struct OutlierConfig {
  int consecutive_failures = 5;        // 0 disables
  int failure_percentage = 50;         // 0 disables; needs min_requests in the window
  int min_requests = 10;
  absl::Duration window = absl::Seconds(10);
  absl::Duration base_ejection = absl::Seconds(30);
  absl::Duration max_ejection = absl::Seconds(300);
  absl::Duration ejection_jitter = absl::Seconds(1);
  int max_ejected_percent = 50;
  absl::Duration rate_limit_cooldown = absl::Seconds(5);  // 429 without Retry-After
};

struct RetryConfig {
  int max_attempts = 3;
  uint32_t retry_on = 0;  // bit per UpstreamFailure
  absl::Duration backoff_base = absl::Milliseconds(25);
  absl::Duration backoff_max = absl::Milliseconds(250);
  absl::Duration per_try_timeout = absl::InfiniteDuration();
};

// The pool's bounded FIFO wait queue ("queue"): a request that finds every deployment of the
// pool's tiers at capacity waits up to `timeout` for a slot, at most `max_depth` at once.
struct QueueConfig {
  int max_depth = 64;
  absl::Duration timeout = absl::Seconds(5);
};

inline uint32_t FailureBit(UpstreamFailure f) { return 1u << static_cast<int>(f); }

struct DeploymentState;

struct Pool {
  std::string name;
  std::vector<int> deployments;  // indexes into ConfigImpl::deployments(), tier-sorted
  std::vector<int> tier_begin;   // tier t spans [tier_begin[t], tier_begin[t+1]) of the above
  LbConfig lb;
  OutlierConfig outlier;
  RetryConfig retry;
  std::vector<std::string> fallbacks;           // pool names tried after this pool
  std::optional<std::string> context_fallback;  // for kContextLength
  std::optional<std::string> content_fallback;  // for kContentFilter
  // Resolved after parsing: pool indexes for the names above (-1 when absent).
  std::vector<int> fallback_pools;
  std::optional<HedgeConfig> hedge;  // hedged requests; none: off
  std::optional<QueueConfig> queue;  // overflow wait queue; none: off
  // Tiered rules, first match wins (targets resolved after parsing).
  std::vector<Rule> rules;
  int context_pool = -1;
  int content_pool = -1;

  // Per tier (positions within `deployments`): smooth WRR sequence, ring, Maglev table.
  struct Tier {
    std::vector<uint8_t> swrr;                          // one period of nginx smooth WRR
    std::vector<std::pair<uint64_t, uint8_t>> ring;     // (hash, position) sorted by hash
    std::vector<uint8_t> maglev;                        // table_size entries
    std::vector<int> weight_prefix;                     // cumulative weights
  };
  std::vector<Tier> tiers;
};

class ConfigImpl final : public RouterConfig {
 public:
  const std::vector<RouterDeployment>& deployments() const override { return deployments_; }
  std::optional<std::string> PoolFor(std::string_view model) const override;

  // -1 when no pool serves `model`.
  int FindPool(std::string_view model) const;
  const std::vector<Pool>& pools() const { return pools_; }
  int retry_budget_percent() const { return retry_budget_percent_; }
  int retry_budget_min() const { return retry_budget_min_; }

 private:
  friend absl::StatusOr<std::shared_ptr<const RouterConfig>> modeenvoy::ParseRouterConfig(
      std::string_view json);
  std::vector<RouterDeployment> deployments_;
  std::vector<Pool> pools_;
  absl::flat_hash_map<std::string, int> exact_;             // names and aliases
  // Lengths of the names in exact_ (a length past the set always probes): a model name of
  // another length is a miss without hashing it.
  std::bitset<256> exact_lengths_;
  std::vector<std::pair<std::string, int>> prefixes_;       // wildcards, longest first
  // The same wildcards grouped by prefix length, longest first: a lookup costs one hash
  // probe per distinct length instead of a compare per wildcard, and none for a length
  // whose prefixes all differ from the model's in the first or the last byte. A group of
  // at most kFewPrefixes is compared in place (cheaper than hashing the model's prefix).
  static constexpr size_t kFewPrefixes = 4;
  struct PrefixGroup {
    size_t length = 0;
    std::bitset<256> first, last;  // bytes [0] and [length - 1] of the group's prefixes
    std::vector<std::pair<std::string, int>> few;  // all of them, when <= kFewPrefixes
    absl::flat_hash_map<std::string, int> names;   // all of them, otherwise
  };
  std::vector<PrefixGroup> prefixes_by_length_;
  int retry_budget_percent_ = 20;
  int retry_budget_min_ = 3;
};

// Table builders (exposed for tests).
std::vector<uint8_t> SmoothWrrSequence(const std::vector<int>& weights);
std::vector<std::pair<uint64_t, uint8_t>> BuildRing(const std::vector<std::string>& ids,
                                                    const std::vector<int>& weights, int vnodes);
std::vector<uint8_t> BuildMaglev(const std::vector<std::string>& ids,
                                 const std::vector<int>& weights, int table_size);
// Position on `ring` owning `hash` (first entry with entry.hash >= hash, wrapping).
size_t RingIndex(const std::vector<std::pair<uint64_t, uint8_t>>& ring, uint64_t hash);

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_CONFIG_H_
