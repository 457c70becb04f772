#include "modeenvoy/router/router.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/router/config.h"
#include "lib/router/hash.h"
#include "lib/router/hedge.h"
#include "lib/router/rules.h"
#include "lib/router/state.h"

namespace modeenvoy {

namespace {
constexpr std::pair<UpstreamFailure, std::string_view> kFailureNames[] = {
    {UpstreamFailure::kNone, "none"},
    {UpstreamFailure::kRateLimited, "429"},
    {UpstreamFailure::kServerError, "5xx"},
    {UpstreamFailure::kTimeout, "timeout"},
    {UpstreamFailure::kConnect, "connect"},
    {UpstreamFailure::kReset, "reset"},
    {UpstreamFailure::kContextLength, "context_length"},
    {UpstreamFailure::kContentFilter, "content_filter"},
    {UpstreamFailure::kClientError, "4xx"},
    {UpstreamFailure::kCancelled, "cancelled"},
};
}  // namespace

std::string_view UpstreamFailureName(UpstreamFailure failure) {
  for (const auto& [f, name] : kFailureNames) {
    if (f == failure) return name;
  }
  return "unknown";
}

std::optional<UpstreamFailure> UpstreamFailureFromName(std::string_view name) {
  for (const auto& [f, n] : kFailureNames) {
    if (n == name) return f;
  }
  return std::nullopt;
}

namespace {
constexpr std::string_view kRetryAfterPayload = "modeenvoy.router/retry_after_ms";

absl::Status WithRetryAfterHint(absl::Status status, absl::Duration retry_after) {
  status.SetPayload(core_internal::ToAbsl(kRetryAfterPayload),
                    absl::Cord(absl::StrCat(absl::ToInt64Milliseconds(retry_after))));
  return status;
}
}  // namespace

std::optional<absl::Duration> RouterRetryAfter(const absl::Status& status) {
  auto payload = status.GetPayload(core_internal::ToAbsl(kRetryAfterPayload));
  int64_t ms = 0;
  if (!payload || !absl::SimpleAtoi(std::string(*payload), &ms)) return std::nullopt;
  return absl::Milliseconds(ms);
}

namespace router_internal {

void DeploymentState::Roll(int64_t now_ns) {
  int64_t m = now_ns / kNanosPerMinute;
  if (minute.load(std::memory_order_acquire) == m) return;
  core_internal::MutexLock lock(&mu);
  int64_t old = minute.load(std::memory_order_relaxed);
  if (old == m) return;
  int64_t req = requests_current.exchange(0), tok = tokens_current.exchange(0);
  requests_previous.store(m == old + 1 ? req : 0);
  tokens_previous.store(m == old + 1 ? tok : 0);
  minute.store(m, std::memory_order_release);
}

namespace {

int64_t Nanos(absl::Time t) { return absl::ToUnixNanos(t); }

// Per-pool runtime state of one snapshot.
struct PoolRuntime {
  std::atomic<uint64_t> counter{0};  // round robin / smooth WRR position
  absl::Mutex eject_mu;              // serialises ejection decisions (max ejected share)
};

// A pool's overflow queue (Pool::queue): waiters in arrival order. Only the head may take a
// freed slot. Carried across Update() by pool name, so waiters of an older configuration
// and newer ones share one order. Thread-safe: every member under `mu_`, wake callbacks
// called outside it.
class WaitQueue {
 public:
  using Wake = std::shared_ptr<const std::function<void()>>;

  // Appends a waiter; false when `max_depth` are waiting already.
  bool Push(Wake wake, int max_depth, uint64_t* id) {
    core_internal::MutexLock lock(&mu_);
    if (static_cast<int>(entries_.size()) >= max_depth) return false;
    *id = ++last_id_;
    entries_.push_back({*id, std::move(wake)});
    size_.store(static_cast<int>(entries_.size()), std::memory_order_relaxed);
    return true;
  }
  bool IsHead(uint64_t id) const {
    core_internal::MutexLock lock(&mu_);
    return !entries_.empty() && entries_.front().id == id;
  }
  // Removes waiter `id`; when it was the head, the new head is woken (it may fit now).
  void Leave(uint64_t id) {
    Wake wake;
    {
      core_internal::MutexLock lock(&mu_);
      for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->id != id) continue;
        bool head = it == entries_.begin();
        entries_.erase(it);
        size_.store(static_cast<int>(entries_.size()), std::memory_order_relaxed);
        if (head && !entries_.empty()) wake = entries_.front().wake;
        break;
      }
    }
    if (wake != nullptr && *wake) (*wake)();
  }
  // A slot of the pool was freed: the head may take it.
  void WakeHead() {
    if (size_.load(std::memory_order_relaxed) == 0) return;
    Wake wake;
    {
      core_internal::MutexLock lock(&mu_);
      if (!entries_.empty()) wake = entries_.front().wake;
    }
    if (wake != nullptr && *wake) (*wake)();
  }
  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }

 private:
  struct Entry {
    uint64_t id;
    Wake wake;
  };
  mutable absl::Mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<int> size_{0};
};

struct Snapshot {
  std::shared_ptr<const ConfigImpl> config;
  std::vector<std::shared_ptr<DeploymentState>> states;  // parallel to config->deployments()
  std::vector<uint64_t> id_hash;                         // Murmur64 of each id
  std::unique_ptr<PoolRuntime[]> pools;
  // Latency of each pool's successes (hedge delay), carried across Update() by pool name.
  std::vector<std::shared_ptr<LatencySketch>> sketches;  // parallel to config->pools()
  // Overflow queues, parallel to config->pools(); null for a pool without "queue".
  std::vector<std::shared_ptr<WaitQueue>> queues;
};

class RouterImpl;

// One entry of a thread's snapshot cache (RouterImpl::SnapshotSlot).
struct SnapshotCache {
  uint64_t slot = 0;  // the router's slot id; 0: empty (ids start at 1)
  uint64_t generation = 0;
  std::shared_ptr<const Snapshot> snap;
};
inline constexpr int kSnapshotCaches = 4;

// Why a choice found nothing, for the error the caller sees.
struct ChoiceMiss {
  bool capacity = false;  // something fit but was at capacity
  bool context = false;   // something was too small for the prompt
};

class PlanImpl final : public RoutePlan {
 public:
  PlanImpl(const RouterImpl* router, std::shared_ptr<const Snapshot> snap, int pool,
           const RouteRequest& request, uint64_t draw);
  ~PlanImpl() override;

  std::optional<PlannedAttempt> Next() override;
  std::optional<PlannedAttempt> Hedge() override;
  bool waiting() const override { return waiting_; }
  absl::Time wait_deadline() const override {
    return waiting_ ? wait_deadline_ : absl::InfiniteFuture();
  }
  bool Poll() override;
  void Report(const PlannedAttempt& attempt, const AttemptResult& result) override;
  absl::Status final_status() const override { return final_; }
  std::string_view matched_rule() const override { return matched_rule_; }
  // `name` lives in the snapshot's configuration, which the plan keeps alive.
  void set_matched_rule(std::string_view name) { matched_rule_ = name; }

  // Chooses and reserves the first attempt, or starts waiting in the pool's queue. Errors as
  // Router::Plan().
  absl::Status Start(std::function<void()> on_queue_wake);

 private:
  // Picks the best deployment from `pools` in order (tiers in order within each), skipping
  // tried ones and those whose context window is <= min_context. -1 when none.
  int Choose(int64_t now, std::initializer_list<int> pools, const std::vector<int>* more,
             int64_t min_context, int* chosen_pool, bool* panic, ChoiceMiss* miss);
  int PickInTier(int pool, int tier, uint64_t mask, int64_t now_ns);
  int WeightedDraw(const Pool& pool, int begin, uint64_t mask) {
    return WeightedDraw(pool, begin, mask, MaskWeight(pool, begin, mask));
  }
  // A draw by weight among `mask`'s deployments, whose weights sum to `total`.
  int WeightedDraw(const Pool& pool, int begin, uint64_t mask, int64_t total);
  int64_t MaskWeight(const Pool& pool, int begin, uint64_t mask) const;
  uint64_t NextDraw() { return draw_ = router_internal::SplitMix(draw_); }
  bool Tried(int d) const { return std::find(tried_.begin(), tried_.end(), d) != tried_.end(); }
  void Reserve(int deployment, int pool, bool panic, absl::Duration delay, int64_t now_ns);
  void Release();
  // The overflow queue of pool `p`, null when it has none.
  WaitQueue* QueueOf(int p) const { return snap_->queues[p].get(); }
  // Takes a place in the queue of pool_; `viable`: a deployment is free right now.
  absl::Status Enqueue(absl::Time now, bool viable, std::function<void()> on_queue_wake);
  void LeaveQueue();
  absl::Status MissStatus(const ChoiceMiss& miss, std::string_view after) const;
  void RecordHealth(int deployment, const Pool& pool, const AttemptResult& result,
                    int64_t now_ns);

  const RouterImpl* router_;
  std::shared_ptr<const Snapshot> snap_;
  int pool_;
  int64_t prompt_total_;
  absl::Time deadline_;
  uint64_t draw_;
  uint64_t key_hash_ = 0;
  bool has_key_ = false;
  absl::InlinedVector<int, 4> tried_;
  // The reserved attempt (returned by Next(), or waiting to be).
  int current_ = -1;
  int current_pool_ = -1;
  bool current_panic_ = false;
  bool current_is_retry_ = false;
  bool handed_out_ = false;
  absl::Duration current_delay_;
  int index_ = -1;          // the last index handed out (attempts and hedges)
  int primary_index_ = -1;  // the index of the attempt current_ holds
  // Hedging: whether the request may be hedged, the hedge's reserved deployment (-1: none
  // out), its pool and index; `won_` once either attempt succeeded.
  bool hedgeable_ = false;
  bool hedged_ = false;
  int hedge_ = -1;
  bool hedge_is_retry_ = false;  // the hedge holds a retry-budget share
  int hedge_pool_ = -1;
  int hedge_index_ = -1;
  bool won_ = false;
  absl::Status final_;
  std::string_view matched_rule_;
  // Overflow queue: waiting for a slot, since when, until when, and the place's id.
  bool waiting_ = false;
  absl::Time wait_start_;
  absl::Time wait_deadline_;
  uint64_t wait_id_ = 0;
};

class RouterImpl final : public Router {
 public:
  explicit RouterImpl(const RouterOptions& options)
      : clock_(ClockOrSystem(options.clock)), seed_(options.seed) {}

  absl::Status Update(std::shared_ptr<const RouterConfig> config) override {
    if (config == nullptr) return absl::InvalidArgumentError("config: must not be null");
    auto impl = std::dynamic_pointer_cast<const ConfigImpl>(config);
    if (impl == nullptr) {
      return absl::InvalidArgumentError("config: not made by ParseRouterConfig()");
    }
    core_internal::MutexLock lock(&update_mu_);
    auto snap = std::make_shared<Snapshot>();
    std::shared_ptr<const Snapshot> old = snapshot_.load();
    absl::flat_hash_map<std::string_view, std::shared_ptr<DeploymentState>> previous;
    if (old != nullptr) {
      for (size_t i = 0; i < old->states.size(); ++i) {
        previous.emplace(old->config->deployments()[i].id, old->states[i]);
      }
    }
    for (const RouterDeployment& d : impl->deployments()) {
      auto it = previous.find(d.id);
      snap->id_hash.push_back(Murmur64(d.id, 0x5eed));
      snap->states.push_back(it != previous.end()
                                 ? it->second
                                 : std::make_shared<DeploymentState>(
                                       SplitMix(seed_ ^ snap->id_hash.back())));
    }
    snap->pools = std::make_unique<PoolRuntime[]>(impl->pools().size());
    absl::flat_hash_map<std::string_view, std::shared_ptr<LatencySketch>> old_sketches;
    if (old != nullptr) {
      for (size_t p = 0; p < old->sketches.size(); ++p) {
        old_sketches.emplace(old->config->pools()[p].name, old->sketches[p]);
      }
    }
    for (const Pool& pool : impl->pools()) {
      auto it = old_sketches.find(pool.name);
      snap->sketches.push_back(it != old_sketches.end() ? it->second
                                                        : std::make_shared<LatencySketch>());
    }
    absl::flat_hash_map<std::string_view, std::shared_ptr<WaitQueue>> old_queues;
    if (old != nullptr) {
      for (size_t p = 0; p < old->queues.size(); ++p) {
        if (old->queues[p] != nullptr) old_queues.emplace(old->config->pools()[p].name, old->queues[p]);
      }
    }
    for (const Pool& pool : impl->pools()) {
      if (!pool.queue) {
        snap->queues.push_back(nullptr);
        continue;
      }
      auto it = old_queues.find(pool.name);
      snap->queues.push_back(it != old_queues.end() ? it->second : std::make_shared<WaitQueue>());
    }
    snap->config = std::move(impl);
    snapshot_.store(std::move(snap));
    return absl::OkStatus();
  }

  absl::StatusOr<std::unique_ptr<RoutePlan>> Plan(const RouteRequest& request) const override {
    std::shared_ptr<const Snapshot> snap = snapshot_.load();  // a copy for the plan
    if (snap == nullptr) {
      return absl::FailedPreconditionError("router: no configuration yet (call Update first)");
    }
    int pool = snap->config->FindPool(request.model);
    if (pool < 0) {
      return absl::NotFoundError(absl::StrCat("model_not_found: no pool serves model \"",
                                              core_internal::ToAbsl(request.model), "\""));
    }
    const Rule* matched = nullptr;
    if (const Pool& asked = snap->config->pools()[pool]; !asked.rules.empty()) {
      // Tiered rules: the first whose conditions hold moves the request to its pool (whose
      // own rules are not applied: one step, no chains or loops).
      RuleInputs inputs(request, clock_.Now());
      for (const Rule& rule : asked.rules) {
        if (RuleMatches(rule, inputs)) {
          matched = &rule;
          pool = rule.target;
          break;
        }
      }
    }
    uint64_t draw = request.draw ? *request.draw
                                 : SplitMix(seed_ + draws_.fetch_add(1, std::memory_order_relaxed));
    auto plan = std::make_unique<PlanImpl>(this, std::move(snap), pool, request, draw);
    if (matched != nullptr) plan->set_matched_rule(matched->name);
    MODEENVOY_RETURN_IF_ERROR(plan->Start(request.on_queue_wake));
    return plan;
  }

  std::vector<DeploymentHealth> Health() const override {
    std::vector<DeploymentHealth> out;
    std::shared_ptr<const Snapshot> snap = snapshot_.load();
    if (snap == nullptr) return out;
    int64_t now = Nanos(clock_.MonotonicNow());
    for (size_t i = 0; i < snap->states.size(); ++i) {
      DeploymentState& s = *snap->states[i];
      DeploymentHealth h;
      h.id = snap->config->deployments()[i].id;
      h.in_flight = s.in_flight.load();
      int64_t ej = s.ejected_until_ns.load(), cd = s.cooldown_until_ns.load();
      h.ejected = ej > now;
      h.ejected_until = ej > now ? absl::FromUnixNanos(ej) : absl::InfinitePast();
      h.cooldown_until = cd > now ? absl::FromUnixNanos(cd) : absl::InfinitePast();
      h.ttft_ewma_ms = s.ewma_ms.load();
      h.probe_unhealthy = s.probe_unhealthy.load();
      {
        core_internal::MutexLock lock(&s.mu);
        h.decode_ms_per_token = s.DecodeMsLocked();
        h.ejections = s.ejections;
        h.consecutive_failures = s.consecutive_failures;
        h.window_requests = s.window_requests;
        h.window_failures = s.window_failures;
        h.probe_successes = s.probe_successes;
        h.probe_failures = s.probe_failures;
        h.probe_in_flight = s.probe_in_flight;
      }
      out.push_back(std::move(h));
    }
    return out;
  }

  std::vector<HealthProbe> DueProbes(absl::Time now) override {
    std::vector<HealthProbe> due;
    std::shared_ptr<const Snapshot> snap = snapshot_.load();
    if (snap == nullptr) return due;
    int64_t now_ns = Nanos(now);
    const auto& deps = snap->config->deployments();
    for (size_t i = 0; i < deps.size(); ++i) {
      if (!deps[i].health_check) continue;
      DeploymentState& s = *snap->states[i];
      core_internal::MutexLock lock(&s.mu);
      if (s.probe_in_flight || s.next_probe_ns > now_ns) continue;
      s.probe_in_flight = true;
      due.push_back({deps[i].id, deps[i].provider, *deps[i].health_check});
    }
    return due;
  }

  absl::Status ReportProbe(std::string_view deployment_id, bool ok) override {
    return EndProbe(deployment_id, ok, /*abandoned=*/false);
  }
  absl::Status AbandonProbe(std::string_view deployment_id) override {
    return EndProbe(deployment_id, false, /*abandoned=*/true);
  }

  absl::Status EndProbe(std::string_view deployment_id, bool ok, bool abandoned) {
    std::shared_ptr<const Snapshot> snap = snapshot_.load();
    const auto* deps = snap == nullptr ? nullptr : &snap->config->deployments();
    size_t i = 0;
    while (deps != nullptr && i < deps->size() && (*deps)[i].id != deployment_id) ++i;
    if (deps == nullptr || i == deps->size()) {
      return absl::NotFoundError(absl::StrCat("ReportProbe: no deployment \"",
                                              core_internal::ToAbsl(deployment_id), "\""));
    }
    const RouterDeployment& d = (*deps)[i];
    DeploymentState& s = *snap->states[i];
    core_internal::MutexLock lock(&s.mu);
    if (!s.probe_in_flight) {
      return absl::FailedPreconditionError(absl::StrCat(
          "ReportProbe: no probe of \"", d.id, "\" is in flight"));
    }
    s.probe_in_flight = false;
    if (!d.health_check) return absl::OkStatus();  // a reload removed its health check
    const RouterHealthCheck& check = *d.health_check;
    if (abandoned) {
      // Nothing learnt.
    } else if (ok) {
      ++s.probe_successes;
      s.probe_failures = 0;
      if (s.probe_successes >= check.healthy_threshold) s.probe_unhealthy.store(false);
    } else {
      ++s.probe_failures;
      s.probe_successes = 0;
      if (s.probe_failures >= check.unhealthy_threshold) s.probe_unhealthy.store(true);
    }
    s.rng = SplitMix(s.rng);
    absl::Duration wait = check.interval + check.jitter * UnitInterval(s.rng);
    s.next_probe_ns = Nanos(clock_.MonotonicNow()) + absl::ToInt64Nanoseconds(wait);
    return absl::OkStatus();
  }

  absl::Time NextProbeDue() const override {
    std::shared_ptr<const Snapshot> snap = snapshot_.load();
    if (snap == nullptr) return absl::InfiniteFuture();
    int64_t next = std::numeric_limits<int64_t>::max();
    const auto& deps = snap->config->deployments();
    for (size_t i = 0; i < deps.size(); ++i) {
      if (!deps[i].health_check) continue;
      DeploymentState& s = *snap->states[i];
      core_internal::MutexLock lock(&s.mu);
      if (!s.probe_in_flight) next = std::min(next, s.next_probe_ns);
    }
    if (next == std::numeric_limits<int64_t>::max()) return absl::InfiniteFuture();
    return next == kNever ? absl::InfinitePast() : absl::FromUnixNanos(next);
  }

  const Clock& clock() const { return clock_; }
  // Retry budget: retries in flight may not exceed max(min, percent of active requests).
  bool TryStartRetry(const ConfigImpl& config) const {
    int64_t active = active_requests_.load(std::memory_order_relaxed);
    int64_t allowed = std::max<int64_t>(config.retry_budget_min(),
                                        active * config.retry_budget_percent() / 100);
    int64_t retries = active_retries_.fetch_add(1, std::memory_order_relaxed);
    if (retries < allowed) return true;
    active_retries_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void EndRetry() const { active_retries_.fetch_sub(1, std::memory_order_relaxed); }
  void RequestStarted() const { active_requests_.fetch_add(1, std::memory_order_relaxed); }
  void RequestEnded() const { active_requests_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  const Clock& clock_;
  const uint64_t seed_;
  absl::Mutex update_mu_;
  // The current snapshot. Not std::atomic<std::shared_ptr>: libstdc++ 12 guards that with a
  // lock bit ThreadSanitizer cannot see (it reported every Plan/Update pair as a race).
  // Instead every thread caches the snapshot it last read together with the generation it
  // belongs to; a read compares that generation with `generation_` (one acquire load) and
  // takes the reader lock only when an Update() moved it. A thread's cache holds its last
  // snapshot alive until that thread plans again on this router or exits (the memory of one
  // configuration per idle thread, never a dangling pointer).
  class SnapshotSlot {
   public:
    SnapshotSlot() : id_(next_id_.fetch_add(1, std::memory_order_relaxed)) {}

    // The current snapshot (a reference to this thread's cache: valid until this thread's
    // next load() on any router).
    const std::shared_ptr<const Snapshot>& load() const {
      uint64_t generation = generation_.load(std::memory_order_acquire);
      Cache* cache = nullptr;
      for (Cache& c : caches_) {
        if (c.slot == id_) {
          if (c.generation == generation) return c.snap;
          cache = &c;
          break;
        }
      }
      if (cache == nullptr) {
        // Few routers per thread: evict round robin among a handful of entries.
        cache = &caches_[next_evict_++ % kCaches];
        cache->slot = id_;
      }
      core_internal::ReaderMutexLock lock(&mu_);
      cache->snap = snap_;
      cache->generation = generation_.load(std::memory_order_relaxed);
      return cache->snap;
    }
    void store(std::shared_ptr<const Snapshot> snap) {
      std::shared_ptr<const Snapshot> old;
      {
        core_internal::MutexLock lock(&mu_);
        old = std::move(snap_);
        snap_ = std::move(snap);
        generation_.fetch_add(1, std::memory_order_release);
      }
      // `old` is released here, outside the lock (or later by the last thread caching it).
    }

   private:
    using Cache = SnapshotCache;
    static constexpr int kCaches = kSnapshotCaches;
    static inline std::atomic<uint64_t> next_id_{1};
    static inline thread_local Cache caches_[kCaches];
    static inline thread_local unsigned next_evict_ = 0;

    const uint64_t id_;  // never reused, unlike the router's address
    mutable absl::Mutex mu_;
    std::shared_ptr<const Snapshot> snap_ ABSL_GUARDED_BY(mu_);
    // Moves (under mu_) with every store(); a reader's cache is current while it matches.
    std::atomic<uint64_t> generation_{1};
  };
  SnapshotSlot snapshot_;
  mutable std::atomic<uint64_t> draws_{0};
  mutable std::atomic<int64_t> active_requests_{0};
  mutable std::atomic<int64_t> active_retries_{0};
};

PlanImpl::PlanImpl(const RouterImpl* router, std::shared_ptr<const Snapshot> snap, int pool,
                   const RouteRequest& request, uint64_t draw)
    : router_(router),
      snap_(std::move(snap)),
      pool_(pool),
      prompt_total_(request.prompt_tokens > 0 ? request.prompt_tokens + request.max_tokens : 0),
      deadline_(request.deadline),
      draw_(draw) {
  router_->RequestStarted();
  hedgeable_ = !request.streaming && snap_->config->pools()[pool].hedge.has_value();
  const LbConfig& lb = snap_->config->pools()[pool].lb;
  if (lb.sticky || lb.kind == LbKind::kRingHash || lb.kind == LbKind::kMaglev) {
    if (lb.hash_key == HashKey::kSession && !request.session_id.empty()) {
      key_hash_ = Murmur64(request.session_id, 0);
      has_key_ = true;
    } else if (lb.hash_key == HashKey::kTenantPrompt &&
               !(request.tenant.empty() && request.system_prompt.empty())) {
      key_hash_ = Murmur64(request.system_prompt, Murmur64(request.tenant, 0));
      has_key_ = true;
    } else if (lb.hash_key == HashKey::kTenant && !request.tenant.empty()) {
      key_hash_ = Murmur64(request.tenant, 0);
      has_key_ = true;
    }
  }
}

PlanImpl::~PlanImpl() {
  if (waiting_) LeaveQueue();
  Release();
  if (hedge_ >= 0) {
    snap_->states[hedge_]->in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (hedge_is_retry_) router_->EndRetry();
    if (WaitQueue* q = QueueOf(hedge_pool_)) q->WakeHead();
  }
  router_->RequestEnded();
}

absl::Status PlanImpl::Start(std::function<void()> on_queue_wake) {
  absl::Time now_time = router_->clock().MonotonicNow();
  if (deadline_ <= now_time) {
    final_ = absl::DeadlineExceededError("the request deadline has already passed");
    return final_;
  }
  int64_t now = Nanos(now_time);
  int chosen_pool = -1;
  bool panic = false;
  ChoiceMiss miss;
  int d = Choose(now, {pool_}, nullptr, 0, &chosen_pool, &panic, &miss);
  if (QueueOf(pool_) != nullptr) {
    // FIFO: with requests already waiting a newcomer queues behind them even when a slot is
    // free (the head has been woken for it and takes it on its Poll()).
    if ((d < 0 && miss.capacity) || (d >= 0 && !QueueOf(pool_)->empty())) {
      return Enqueue(now_time, d >= 0, std::move(on_queue_wake));
    }
  }
  if (d < 0) {
    final_ = MissStatus(miss, "");
    return final_;
  }
  Reserve(d, chosen_pool, panic, absl::ZeroDuration(), now);
  return absl::OkStatus();
}

absl::Status PlanImpl::Enqueue(absl::Time now, bool viable, std::function<void()> on_queue_wake) {
  const Pool& pool = snap_->config->pools()[pool_];
  WaitQueue& q = *QueueOf(pool_);
  auto wake = std::make_shared<const std::function<void()>>(std::move(on_queue_wake));
  if (!q.Push(std::move(wake), pool.queue->max_depth, &wait_id_)) {
    final_ = WithRetryAfterHint(
        absl::ResourceExhaustedError(absl::StrCat(
            "every deployment of pool \"", pool.name, "\" is at capacity and its queue is full (",
            pool.queue->max_depth, " waiting)")),
        pool.queue->timeout);
    return final_;
  }
  waiting_ = true;
  wait_start_ = now;
  wait_deadline_ = std::min(now + pool.queue->timeout, deadline_);
  final_ = absl::UnavailableError(absl::StrCat("waiting in the queue of pool \"", pool.name, "\""));
  if (viable) q.WakeHead();  // a slot is free now: whoever is first takes it
  return absl::OkStatus();
}

void PlanImpl::LeaveQueue() {
  waiting_ = false;
  QueueOf(pool_)->Leave(wait_id_);
}

bool PlanImpl::Poll() {
  if (!waiting_) return true;
  absl::Time now_time = router_->clock().MonotonicNow();
  const Pool& pool = snap_->config->pools()[pool_];
  if (now_time >= wait_deadline_) {
    LeaveQueue();
    std::string waited = absl::StrCat(absl::ToInt64Milliseconds(now_time - wait_start_));
    if (wait_deadline_ >= deadline_) {
      final_ = absl::DeadlineExceededError(absl::StrCat(
          "the request deadline passed after ", waited, " ms in the queue of pool \"", pool.name,
          "\""));
    } else {
      final_ = WithRetryAfterHint(
          absl::ResourceExhaustedError(absl::StrCat(
              "every deployment of pool \"", pool.name, "\" stayed at capacity for ", waited,
              " ms in its queue (timeout_ms ", absl::ToInt64Milliseconds(pool.queue->timeout),
              ")")),
          pool.queue->timeout);
    }
    return true;
  }
  if (!QueueOf(pool_)->IsHead(wait_id_)) return false;
  int64_t now = Nanos(now_time);
  int chosen_pool = -1;
  bool panic = false;
  ChoiceMiss miss;
  int d = Choose(now, {pool_}, nullptr, 0, &chosen_pool, &panic, &miss);
  if (d < 0) return false;
  Reserve(d, chosen_pool, panic, absl::ZeroDuration(), now);
  final_ = absl::OkStatus();
  LeaveQueue();  // wakes the next waiter: another slot may be free as well
  return true;
}

absl::Status PlanImpl::MissStatus(const ChoiceMiss& miss, std::string_view after) const {
  const std::string& name = snap_->config->pools()[pool_].name;
  std::string prefix = after.empty() ? "" : absl::StrCat("after ", core_internal::ToAbsl(after), ": ");
  if (miss.capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat(prefix, "every deployment of pool \"", name, "\" is at capacity"));
  }
  if (miss.context) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "prompt_tokens + max_tokens = ", prompt_total_,
                     " fits no context window of pool \"", name, "\""));
  }
  return absl::UnavailableError(
      absl::StrCat(prefix, "no deployment of pool \"", name, "\" is left to try"));
}

int PlanImpl::Choose(int64_t now, std::initializer_list<int> pools, const std::vector<int>* more,
                     int64_t min_context, int* chosen_pool, bool* panic, ChoiceMiss* miss) {
  const ConfigImpl& config = *snap_->config;
  auto try_pool = [&](int p) -> int {
    const Pool& pool = config.pools()[p];
    const auto& deps = config.deployments();
    // Panic mode: when every deployment of the pool is ejected or cooling down, health is
    // ignored (better a likely failure than a certain one).
    bool any_healthy = false;
    for (int d : pool.deployments) {
      if (snap_->states[d]->Available(now)) {
        any_healthy = true;
        break;
      }
    }
    for (size_t t = 0; t + 1 < pool.tier_begin.size(); ++t) {
      uint64_t mask = 0;
      int b = pool.tier_begin[t];
      for (int i = b; i < pool.tier_begin[t + 1]; ++i) {
        int d = pool.deployments[i];
        const RouterDeployment& dep = deps[d];
        const DeploymentState& s = *snap_->states[d];
        if (!tried_.empty() && Tried(d)) continue;
        if (any_healthy && !s.Available(now)) continue;
        if (dep.context_window > 0 &&
            ((prompt_total_ > 0 && dep.context_window < prompt_total_) ||
             dep.context_window <= min_context)) {
          miss->context = true;
          continue;
        }
        if ((dep.max_in_flight > 0 &&
             s.in_flight.load(std::memory_order_relaxed) >= dep.max_in_flight) ||
            (dep.rpm > 0 && s.RequestsPerMinute(now) + 1 > static_cast<double>(dep.rpm)) ||
            (dep.tpm > 0 && s.TokensPerMinute(now) >= static_cast<double>(dep.tpm))) {
          miss->capacity = true;  // overflow: the next tier is tried
          continue;
        }
        mask |= uint64_t{1} << (i - b);
      }
      if (mask != 0) {
        *panic = !any_healthy;
        return PickInTier(p, static_cast<int>(t), mask, now);
      }
    }
    return -1;
  };
  for (int p : pools) {
    if (p < 0) continue;
    if (int d = try_pool(p); d >= 0) {
      *chosen_pool = p;
      return d;
    }
  }
  if (more != nullptr) {
    for (int p : *more) {
      if (int d = try_pool(p); d >= 0) {
        *chosen_pool = p;
        return d;
      }
    }
  }
  return -1;
}

int64_t PlanImpl::MaskWeight(const Pool& pool, int begin, uint64_t mask) const {
  const auto& deps = snap_->config->deployments();
  int64_t total = 0;
  for (uint64_t m = mask; m != 0; m &= m - 1) {
    total += deps[pool.deployments[begin + __builtin_ctzll(m)]].weight;
  }
  return total;
}

int PlanImpl::WeightedDraw(const Pool& pool, int begin, uint64_t mask, int64_t total) {
  const auto& deps = snap_->config->deployments();
  int64_t r = static_cast<int64_t>(Below(NextDraw(), static_cast<uint64_t>(total)));
  for (uint64_t m = mask; m != 0; m &= m - 1) {
    int i = __builtin_ctzll(m);
    r -= deps[pool.deployments[begin + i]].weight;
    if (r < 0) return i;
  }
  return 63 - __builtin_clzll(mask);
}

int PlanImpl::PickInTier(int p, int t, uint64_t mask, int64_t now) {
  const Pool& pool = snap_->config->pools()[p];
  const Pool::Tier& tier = pool.tiers[t];
  const auto& deps = snap_->config->deployments();
  const int b = pool.tier_begin[t];
  const int n = pool.tier_begin[t + 1] - b;
  auto state = [&](int i) -> const DeploymentState& { return *snap_->states[pool.deployments[b + i]]; };
  auto eligible = [&](int i) { return (mask >> i) & 1; };
  int pick = -1;

  if (has_key_ && (pool.lb.kind == LbKind::kRingHash || pool.lb.kind == LbKind::kMaglev)) {
    // Bounded load (Mirrokni et al.): a deployment takes a key only while its in-flight
    // count stays under ceil(c * (total + 1) * weight / total weight).
    int64_t total_load = 0, total_weight = 0;
    for (int i = 0; i < n; ++i) {
      total_load += state(i).in_flight.load(std::memory_order_relaxed);
      total_weight += deps[pool.deployments[b + i]].weight;
    }
    auto fits = [&](int i) {
      if (!eligible(i)) return false;
      if (pool.lb.balance_factor <= 0) return true;
      double cap = std::ceil(pool.lb.balance_factor * static_cast<double>(total_load + 1) *
                             deps[pool.deployments[b + i]].weight / total_weight);
      return state(i).in_flight.load(std::memory_order_relaxed) + 1 <= cap;
    };
    if (pool.lb.kind == LbKind::kRingHash) {
      size_t start = RingIndex(tier.ring, key_hash_);
      for (size_t k = 0; k < tier.ring.size() && pick < 0; ++k) {
        int i = tier.ring[(start + k) % tier.ring.size()].second;
        if (fits(i)) pick = i;
      }
    } else {
      size_t size = tier.maglev.size();
      size_t start = key_hash_ % size;
      for (size_t k = 0; k < size && pick < 0; ++k) {
        int i = tier.maglev[(start + k) % size];
        if (fits(i)) pick = i;
      }
    }
    if (pick >= 0) return pool.deployments[b + pick];
  }
  if (has_key_ && pool.lb.sticky && pick < 0) {
    // Weighted rendezvous hashing: stable per key, shares in proportion to weight.
    double best = 0;
    for (uint64_t m = mask; m != 0; m &= m - 1) {
      int i = __builtin_ctzll(m);
      int d = pool.deployments[b + i];
      double u = UnitInterval(SplitMix(key_hash_ ^ snap_->id_hash[d]));
      double score = -std::log1p(-u) / deps[d].weight;  // Exp(weight); smallest wins
      if (pick < 0 || score < best) {
        best = score;
        pick = i;
      }
    }
    return pool.deployments[b + pick];
  }
  switch (pool.lb.kind) {
    case LbKind::kRoundRobin: {
      uint64_t c = snap_->pools[p].counter.fetch_add(1, std::memory_order_relaxed);
      int start = static_cast<int>(c % static_cast<uint64_t>(n));
      uint64_t rotated = (mask >> start) | (start == 0 ? 0 : mask << (n - start));
      rotated &= n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1;
      pick = (start + __builtin_ctzll(rotated)) % n;
      break;
    }
    case LbKind::kWeightedRoundRobin: {
      uint64_t c = snap_->pools[p].counter.fetch_add(1, std::memory_order_relaxed);
      int i = tier.swrr[c % tier.swrr.size()];
      pick = eligible(i) ? i : WeightedDraw(pool, b, mask);
      break;
    }
    case LbKind::kLeastRequest:
    case LbKind::kPeakEwma: {
      // Power of two choices, each drawn by weight; the lower cost wins, ties the first.
      const int64_t total = MaskWeight(pool, b, mask);
      const int a = WeightedDraw(pool, b, mask, total), c = WeightedDraw(pool, b, mask, total);
      pick = a;
      if (a == c) break;
      // Weights act through the draws: dividing the load by the weight as well would count
      // them twice and starve light deployments.
      const double load_a = state(a).in_flight.load(std::memory_order_relaxed) + 1;
      const double load_c = state(c).in_flight.load(std::memory_order_relaxed) + 1;
      if (pool.lb.kind == LbKind::kLeastRequest) {
        if (load_c < load_a) pick = c;
        break;
      }
      // cost = EWMA decayed to now (DeploymentState::EwmaAt; 1 ms without a sample) × load.
      // Both decay with the same time constant, so comparing them needs one exp() of the
      // gap between their idle times, not one per candidate.
      const double tau = pool.lb.ewma_decay_ms;
      double va = state(a).ewma_ms.load(std::memory_order_relaxed);
      double vc = state(c).ewma_ms.load(std::memory_order_relaxed);
      auto idle = [&](int i) {
        double ms = static_cast<double>(
                        now - state(i).ewma_stamp_ns.load(std::memory_order_relaxed)) / 1e6;
        return ms > 0 ? ms : 0.0;
      };
      double cost_a = load_a, cost_c = load_c;
      if (va > 0 && vc > 0) {
        cost_a *= va;
        cost_c *= vc * std::exp((idle(a) - idle(c)) / tau);
      } else if (va > 0) {
        cost_a *= va * std::exp(-idle(a) / tau);
      } else if (vc > 0) {
        cost_c *= vc * std::exp(-idle(c) / tau);
      }
      if (cost_c < cost_a) pick = c;
      break;
    }
    case LbKind::kRingHash:
    case LbKind::kMaglev:
      // No key in this request (or every keyed choice was full): spread by weight.
      pick = WeightedDraw(pool, b, mask);
      break;
  }
  return pool.deployments[b + pick];
}

void PlanImpl::Reserve(int deployment, int pool, bool panic, absl::Duration delay,
                       int64_t now_ns) {
  DeploymentState& s = *snap_->states[deployment];
  s.in_flight.fetch_add(1, std::memory_order_relaxed);
  if (snap_->config->deployments()[deployment].rpm > 0) {  // counted only where limited
    s.Roll(now_ns);
    s.requests_current.fetch_add(1, std::memory_order_relaxed);
  }
  current_ = deployment;
  current_pool_ = pool;
  current_panic_ = panic;
  current_delay_ = delay;
  handed_out_ = false;
  tried_.push_back(deployment);
}

void PlanImpl::Release() {
  if (current_ < 0) return;
  snap_->states[current_]->in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (current_is_retry_) router_->EndRetry();
  current_ = -1;
  current_is_retry_ = false;
  if (WaitQueue* q = QueueOf(current_pool_)) q->WakeHead();
}

std::optional<PlannedAttempt> PlanImpl::Next() {
  if (waiting_ && !Poll()) {
    LeaveQueue();
    final_ = WithRetryAfterHint(
        absl::ResourceExhaustedError(absl::StrCat(
            "Next() called while waiting in the queue of pool \"",
            snap_->config->pools()[pool_].name, "\" (call it after Poll() returned true)")),
        snap_->config->pools()[pool_].queue->timeout);
    return std::nullopt;
  }
  if (current_ < 0 || won_) return std::nullopt;
  if (handed_out_) {
    Release();
    final_ = absl::FailedPreconditionError("Next() called before Report() of attempt " +
                                           std::to_string(index_));
    return std::nullopt;
  }
  handed_out_ = true;
  primary_index_ = ++index_;
  PlannedAttempt a;
  a.deployment = &snap_->config->deployments()[current_];
  a.index = index_;
  a.delay = current_delay_;
  a.panic = current_panic_;
  a.timeout = snap_->config->pools()[current_pool_].retry.per_try_timeout;
  if (hedgeable_ && index_ == 0 && current_pool_ == pool_) {
    a.hedge_after = snap_->sketches[pool_]->HedgeDelay(*snap_->config->pools()[pool_].hedge);
  }
  if (deadline_ != absl::InfiniteFuture()) {
    a.timeout = std::min(a.timeout, deadline_ - (router_->clock().MonotonicNow() + a.delay));
  }
  return a;
}

std::optional<PlannedAttempt> PlanImpl::Hedge() {
  if (!hedgeable_ || hedged_ || won_ || current_ < 0 || !handed_out_ || index_ != 0 ||
      current_pool_ != pool_) {
    return std::nullopt;
  }
  const HedgeConfig& config = *snap_->config->pools()[pool_].hedge;
  if (snap_->sketches[pool_]->HedgeDelay(config) == absl::InfiniteDuration()) {
    return std::nullopt;
  }
  int64_t now = Nanos(router_->clock().MonotonicNow());
  int chosen_pool = -1;
  bool panic = false;
  ChoiceMiss miss;
  int d = Choose(now, {pool_}, nullptr, 0, &chosen_pool, &panic, &miss);
  if (d < 0) return std::nullopt;
  // A hedge is a second attempt in flight: it takes a share of the retry budget.
  if (!router_->TryStartRetry(*snap_->config)) return std::nullopt;
  hedged_ = true;
  hedge_is_retry_ = true;
  DeploymentState& s = *snap_->states[d];
  s.in_flight.fetch_add(1, std::memory_order_relaxed);
  if (snap_->config->deployments()[d].rpm > 0) {
    s.Roll(now);
    s.requests_current.fetch_add(1, std::memory_order_relaxed);
  }
  tried_.push_back(d);
  hedge_ = d;
  hedge_pool_ = chosen_pool;
  hedge_index_ = ++index_;
  PlannedAttempt a;
  a.deployment = &snap_->config->deployments()[d];
  a.index = hedge_index_;
  a.panic = panic;
  a.hedge = true;
  a.timeout = snap_->config->pools()[chosen_pool].retry.per_try_timeout;
  if (deadline_ != absl::InfiniteFuture()) {
    a.timeout = std::min(a.timeout, deadline_ - router_->clock().MonotonicNow());
  }
  return a;
}

// peak_ewma's sample of one attempt (docs/routing.md), learning the deployment's decode
// time on the way; nullopt: the attempt says nothing about how fast the deployment starts.
// A streamed attempt's first token is the sample. A whole answer has none (its head comes
// after its last token), so its latency would make long answers look slow: the decode time
// of its output_tokens - 1 later tokens is taken off, floored at latency / output_tokens
// (a first token is never quicker than the answer's mean time per token, since prefill is
// never quicker than one decode step).
std::optional<double> LatencySample(DeploymentState& s, double decay_ms,
                                    const AttemptResult& result, int64_t now) {
  const bool ok = result.failure == UpstreamFailure::kNone;
  const double latency_ms = absl::ToDoubleMilliseconds(result.latency);
  const int64_t tokens = result.output_tokens;
  if (result.time_to_first_token.has_value() && *result.time_to_first_token > absl::ZeroDuration()) {
    const double ttft_ms = absl::ToDoubleMilliseconds(*result.time_to_first_token);
    if (ok && tokens >= 2 && latency_ms > ttft_ms) {
      double decode = (latency_ms - ttft_ms) / static_cast<double>(tokens - 1);
      core_internal::MutexLock lock(&s.mu);
      if (s.stream_decode_ms > 0) {
        double idle = static_cast<double>(now - s.stream_decode_stamp_ns) / 1e6;
        double w = std::exp(-std::max(idle, 0.0) / decay_ms);
        decode = s.stream_decode_ms * w + decode * (1 - w);
      }
      s.stream_decode_ms = decode;
      s.stream_decode_stamp_ns = now;
    }
    return ttft_ms;
  }
  if (!ok || latency_ms <= 0) return std::nullopt;
  if (tokens < 2) return latency_ms;  // unknown usage, or nothing after the first token
  double decode = 0;
  {
    core_internal::MutexLock lock(&s.mu);
    s.fit.Add(static_cast<double>(tokens), latency_ms, now, decay_ms);
    decode = s.DecodeMsLocked();
  }
  const double n = static_cast<double>(tokens);
  return std::max(latency_ms / n, latency_ms - decode * (n - 1));
}

void PlanImpl::RecordHealth(int d, const Pool& pool, const AttemptResult& result,
                            int64_t now) {
  DeploymentState& s = *snap_->states[d];
  const OutlierConfig& o = pool.outlier;
  if (snap_->config->deployments()[d].tpm > 0 &&
      result.input_tokens + result.output_tokens > 0) {
    s.Roll(now);
    s.tokens_current.fetch_add(result.input_tokens + result.output_tokens,
                               std::memory_order_relaxed);
  }
  if (std::optional<double> sample = LatencySample(s, pool.lb.ewma_decay_ms, result, now)) {
    // Peak EWMA: a slower sample is taken at once, a faster one blended in.
    double prev = s.EwmaAt(now, pool.lb.ewma_decay_ms);
    double next = *sample;
    if (prev > 0 && *sample < prev) {
      double idle = static_cast<double>(now - s.ewma_stamp_ns.load(std::memory_order_relaxed)) / 1e6;
      double w = std::exp(-std::max(idle, 0.0) / pool.lb.ewma_decay_ms);
      next = prev * w + *sample * (1 - w);
    }
    s.ewma_ms.store(next, std::memory_order_relaxed);
    s.ewma_stamp_ns.store(now, std::memory_order_relaxed);
  }
  switch (result.failure) {
    case UpstreamFailure::kRateLimited: {
      // A 429 is the upstream asking for time, not a sick deployment: cool down for its
      // Retry-After outside the outlier schedule.
      absl::Duration d = result.retry_after.value_or(o.rate_limit_cooldown);
      int64_t until = now + absl::ToInt64Nanoseconds(d);
      int64_t prev = s.cooldown_until_ns.load(std::memory_order_relaxed);
      while (prev < until && !s.cooldown_until_ns.compare_exchange_weak(prev, until)) {
      }
      return;
    }
    case UpstreamFailure::kNone:
    case UpstreamFailure::kServerError:
    case UpstreamFailure::kTimeout:
    case UpstreamFailure::kConnect:
    case UpstreamFailure::kReset:
      break;
    default:
      return;  // 4xx, context length, content filter, cancelled: say nothing about health
  }
  bool failed = result.failure != UpstreamFailure::kNone;
  core_internal::MutexLock lock(&s.mu);
  if (s.window_start_ns == kNever || now - s.window_start_ns >= absl::ToInt64Nanoseconds(o.window)) {
    s.window_start_ns = now;
    s.window_requests = 0;
    s.window_failures = 0;
  }
  ++s.window_requests;
  if (!failed) {
    s.consecutive_failures = 0;
    return;
  }
  ++s.window_failures;
  ++s.consecutive_failures;
  bool eject = (o.consecutive_failures > 0 && s.consecutive_failures >= o.consecutive_failures) ||
               (o.failure_percentage > 0 && s.window_requests >= o.min_requests &&
                s.window_failures * 100 >= o.failure_percentage * s.window_requests);
  if (!eject || s.ejected_until_ns.load(std::memory_order_relaxed) > now) return;
  {
    // Max ejected share: ejecting this one may not take the pool's ejected count over
    // max_ejected_percent (at least one may always go when the percentage is not 0).
    core_internal::MutexLock pool_lock(&snap_->pools[&pool - snap_->config->pools().data()].eject_mu);
    int n = static_cast<int>(pool.deployments.size()), ejected = 0;
    for (int other : pool.deployments) {
      ejected += snap_->states[other]->ejected_until_ns.load(std::memory_order_relaxed) > now;
    }
    int limit = o.max_ejected_percent == 0 ? 0 : std::max(1, n * o.max_ejected_percent / 100);
    if (ejected >= limit) return;
    // Doubling with each ejection, jittered, capped. An ejection long after the last one
    // (more than max_ejection since it ended) starts the schedule again.
    int64_t last_end = s.ejected_until_ns.load(std::memory_order_relaxed);
    if (last_end != kNever && now - last_end > absl::ToInt64Nanoseconds(o.max_ejection)) {
      s.ejections = 0;
    }
    absl::Duration base = o.base_ejection * static_cast<double>(uint64_t{1} << std::min(s.ejections, 20));
    s.rng = SplitMix(s.rng);
    absl::Duration jitter = o.ejection_jitter * UnitInterval(s.rng);
    absl::Duration d = std::min(o.max_ejection, base + jitter);
    s.ejected_until_ns.store(now + absl::ToInt64Nanoseconds(d), std::memory_order_relaxed);
  }
  ++s.ejections;
  s.consecutive_failures = 0;
  s.window_start_ns = kNever;
}

void PlanImpl::Report(const PlannedAttempt& attempt, const AttemptResult& result) {
  const ConfigImpl& config = *snap_->config;
  int64_t now = Nanos(router_->clock().MonotonicNow());
  if (hedge_ >= 0 && attempt.index == hedge_index_ && attempt.hedge) {
    // The hedged attempt.
    int d = hedge_;
    snap_->states[d]->in_flight.fetch_sub(1, std::memory_order_relaxed);
    if (hedge_is_retry_) router_->EndRetry();
    hedge_is_retry_ = false;
    hedge_ = -1;
    if (WaitQueue* q = QueueOf(hedge_pool_)) q->WakeHead();
    RecordHealth(d, config.pools()[hedge_pool_], result, now);
    if (result.failure == UpstreamFailure::kNone) {
      snap_->sketches[hedge_pool_]->Add(result.latency, *config.pools()[hedge_pool_].hedge);
      won_ = true;
      final_ = absl::OkStatus();
    }
    return;  // a failed or cancelled hedge leaves the first attempt to carry the request
  }
  if (current_ < 0 || !handed_out_ || attempt.index != primary_index_) return;
  int failed = current_;
  const Pool& failed_pool = config.pools()[current_pool_];
  Release();
  RecordHealth(failed, failed_pool, result, now);
  if (result.failure == UpstreamFailure::kNone && hedgeable_ && current_pool_ == pool_) {
    snap_->sketches[pool_]->Add(result.latency, *config.pools()[pool_].hedge);
  }
  if (won_) return;  // the hedge answered first; this one was cancelled (or lost anyway)
  if (hedge_ >= 0 && result.failure != UpstreamFailure::kNone) {
    // The hedge is still out: it becomes the request's attempt (no retry planned now).
    current_ = hedge_;
    current_pool_ = hedge_pool_;
    current_panic_ = false;
    handed_out_ = true;
    primary_index_ = hedge_index_;
    current_is_retry_ = hedge_is_retry_;  // its budget share moves with it
    hedge_is_retry_ = false;
    hedge_ = -1;
    return;
  }

  std::string_view name = UpstreamFailureName(result.failure);
  switch (result.failure) {
    case UpstreamFailure::kNone:
      final_ = absl::OkStatus();
      return;
    case UpstreamFailure::kCancelled:
      final_ = absl::CancelledError("the request was cancelled");
      return;
    case UpstreamFailure::kClientError:
      final_ = absl::InvalidArgumentError("the upstream rejected the request (4xx); not retried");
      return;
    default:
      break;
  }
  const Pool& primary = config.pools()[pool_];
  if ((primary.retry.retry_on & FailureBit(result.failure)) == 0) {
    final_ = absl::UnavailableError(
        absl::StrCat("attempt failed with ", core_internal::ToAbsl(name), " (not in retry_on)"));
    return;
  }
  if (index_ + 1 >= primary.retry.max_attempts) {
    final_ = absl::UnavailableError(absl::StrCat("attempt failed with ", core_internal::ToAbsl(name),
                                                 "; max_attempts ", primary.retry.max_attempts,
                                                 " reached"));
    return;
  }
  int chosen_pool = -1;
  bool panic = false;
  ChoiceMiss miss;
  int next = -1;
  if (result.failure == UpstreamFailure::kContentFilter) {
    next = Choose(now, {primary.content_pool}, nullptr, 0, &chosen_pool, &panic, &miss);
  } else if (result.failure == UpstreamFailure::kContextLength) {
    // Only a larger window can help; an unknown window (0) rules out nothing.
    int64_t window = config.deployments()[failed].context_window;
    next = Choose(now, {pool_, primary.context_pool}, &primary.fallback_pools, window, &chosen_pool,
                  &panic, &miss);
  } else {
    next = Choose(now, {pool_}, &primary.fallback_pools, 0, &chosen_pool, &panic, &miss);
  }
  if (next < 0) {
    final_ = MissStatus(miss, name);
    return;
  }
  // Full-jitter exponential backoff; a deployment still cooling down (panic) is waited for.
  absl::Duration cap = std::min(primary.retry.backoff_max,
                                primary.retry.backoff_base * static_cast<double>(uint64_t{1} << std::min(index_, 20)));
  absl::Duration delay = cap * UnitInterval(NextDraw());
  int64_t cooldown = snap_->states[next]->cooldown_until_ns.load(std::memory_order_relaxed);
  if (cooldown > now) delay = std::max(delay, absl::Nanoseconds(cooldown - now));
  if (deadline_ != absl::InfiniteFuture() &&
      router_->clock().MonotonicNow() + delay >= deadline_) {
    final_ = absl::DeadlineExceededError(
        absl::StrCat("attempt failed with ", core_internal::ToAbsl(name),
                     "; the request deadline leaves no time for another attempt"));
    return;
  }
  if (!router_->TryStartRetry(config)) {
    final_ = absl::UnavailableError(absl::StrCat("attempt failed with ", core_internal::ToAbsl(name),
                                                 "; retry budget exhausted"));
    return;
  }
  Reserve(next, chosen_pool, panic, delay, now);
  current_is_retry_ = true;
}

}  // namespace
}  // namespace router_internal

std::unique_ptr<Router> NewRouter(const RouterOptions& options) {
  return std::make_unique<router_internal::RouterImpl>(options);
}

}  // namespace modeenvoy
