// lib/context/gateway/internal.h: the context component's gateway parts, shared by its
// files (private): the parsed `context` section, the per-loop store set, the in-process
// session gate and the counters.
#ifndef MODEENVOY_LIB_CONTEXT_GATEWAY_INTERNAL_H_
#define MODEENVOY_LIB_CONTEXT_GATEWAY_INTERNAL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/routing.h"
#include "modeenvoy/gateway/services.h"

namespace modeenvoy::context_internal {

// Counters behind ContextMetrics (Services state "context.metrics").
struct Counters {
  std::atomic<uint64_t> sessions_loaded{0};
  std::atomic<uint64_t> turns_appended{0};
  std::atomic<uint64_t> append_conflicts{0};
  std::atomic<uint64_t> failed_writes{0};
  std::atomic<uint64_t> failed_reads{0};
  std::atomic<uint64_t> fail_open{0};
  std::atomic<uint64_t> busy_rejected{0};
  std::atomic<uint64_t> queue_timeouts{0};
  std::atomic<uint64_t> summaries{0};
  std::atomic<uint64_t> turns_renumbered{0};
  std::atomic<uint64_t> lease_renewal_failures{0};
};
std::shared_ptr<Counters> CountersOf(Services& services);

// One request waiting for (or holding) a session in this process.
// `on_grant` runs on `loop`'s thread; the gate never touches a waiter's filter otherwise.
struct GateWaiter {
  EventLoop* loop = nullptr;
  // Loop thread only: cleared by the filter when it stops wanting the session.
  absl::AnyInvocable<void()> on_grant;
  enum class State { kQueued, kGranted, kAbandoned };
  State state = State::kQueued;  // guarded by the gate's mutex
};

// Serializes the requests of one session inside this process, in arrival order, across
// every loop thread (the store's lease serializes processes). Thread-safe.
class SessionGate {
 public:
  enum class Admit {
    kGranted,  // the caller holds the session now
    kQueued,   // waiter->on_grant runs on waiter->loop once it holds it
    kBusy,     // held, and the caller asked not to wait (reject mode)
    kFull,     // held, and max_queue requests wait already
  };
  Admit Acquire(const std::string& session_id, const std::shared_ptr<GateWaiter>& waiter,
                bool wait, size_t max_queue) ABSL_LOCKS_EXCLUDED(mu_);
  // The holder `waiter` gives the session up; the next waiter (if any) is granted it.
  // A queued waiter is removed instead. Idempotent per waiter.
  void Release(const std::string& session_id, const std::shared_ptr<GateWaiter>& waiter)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Sessions with a holder or waiters (tests).
  size_t active_sessions() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Entry {
    std::shared_ptr<GateWaiter> holder;
    std::deque<std::shared_ptr<GateWaiter>> queue;
  };
  void GrantNextLocked(const std::string& session_id, Entry& entry,
                       std::vector<std::shared_ptr<GateWaiter>>* granted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> sessions_ ABSL_GUARDED_BY(mu_);
};

// Store operations nobody waits for (a lease release) kept until they completed, and
// destroyed before their store. Keep and Done: loop thread only, and only stores bound to
// one loop return operations to keep (a shared, inline store's handles are null).
class DetachedOps {
 public:
  // Keeps `op` (may be null: completed inline) until Done(id) or destruction.
  uint64_t Add() { return next_.fetch_add(1) + 1; }
  void Keep(uint64_t id, StoreHandle op) {
    if (op != nullptr) ops_[id] = std::move(op);
  }
  void Done(uint64_t id) { ops_.erase(id); }

 private:
  std::atomic<uint64_t> next_{0};
  std::map<uint64_t, StoreHandle> ops_;
};

// A loop's store and its detached operations (destroyed first).
struct LoopStore {
  std::shared_ptr<ContextStore> store;
  std::shared_ptr<DetachedOps> detached = std::make_shared<DetachedOps>();
  ~LoopStore() { detached.reset(); }
};

// Where the sessions live: one store for every loop (memory) or one per loop (a store
// bound to its loop, e.g. Redis). Thread-safe.
class StoreSet {
 public:
  using Factory =
      std::function<absl::StatusOr<std::shared_ptr<ContextStore>>(EventLoop& loop)>;
  // `per_loop` false: the factory runs once and its store serves every loop.
  StoreSet(Factory factory, bool per_loop)
      : factory_(std::move(factory)), per_loop_(per_loop) {}
  absl::StatusOr<std::shared_ptr<ContextStore>> For(EventLoop& loop) ABSL_LOCKS_EXCLUDED(mu_) {
    absl::StatusOr<std::shared_ptr<LoopStore>> entry = EntryFor(loop);
    if (!entry.ok()) return entry.status();
    return (*entry)->store;
  }
  absl::StatusOr<std::shared_ptr<LoopStore>> EntryFor(EventLoop& loop) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the store of `loop` (per-loop sets only); the next request of that loop makes a
  // new one.
  void Release(EventLoop& loop) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const Factory factory_;
  const bool per_loop_;
  absl::Mutex mu_;
  absl::flat_hash_map<EventLoop*, std::shared_ptr<LoopStore>> stores_ ABSL_GUARDED_BY(mu_);
};

// Every StoreSet made with one Services (state "context.store_sets"), for
// ReleaseContextStores. Thread-safe.
struct StoreSetIndex {
  absl::Mutex mu;
  std::vector<std::weak_ptr<StoreSet>> sets ABSL_GUARDED_BY(mu);
};

enum class ConcurrencyMode { kQueue, kReject };
enum class FailureMode { kOpen, kClosed };

struct Guardrail {
  std::map<std::string, std::string> match;  // every key must have this value
  std::string system_prompt;                 // sent first (not stored); may be empty
  std::string disclaimer;                    // put before the reply's text; may be empty
};

struct SummarizerConfig {
  std::string model;                // a public model of the snapshot (`summarizer.model`)
  size_t min_dropped_entries = 1;   // `summarizer.trigger.min_dropped`
};

// The `context` section.
struct ContextConfig final : ConfigSection {
  bool enabled = true;
  std::string store_type = "memory";
  std::string session_header = "X-Session-Id";
  // Further headers naming the session when `session_header` is absent, in this order
  // (`session_header_aliases`, e.g. Claude Code's X-Claude-Code-Session-Id).
  std::vector<std::string> session_header_aliases;
  std::string metadata_header = "X-Session-Metadata";
  size_t max_session_id_bytes = 128;
  size_t max_metadata_bytes = 4096;
  size_t max_history_bytes = size_t{1} << 20;
  int64_t reserve_output_tokens = 4096;
  ConcurrencyMode concurrency = ConcurrencyMode::kQueue;
  size_t max_queue = 16;
  // Below the engine's request_phase_timeout (30 s by default), so a wait ends in 409, not 504.
  absl::Duration queue_timeout = absl::Seconds(20);
  FailureMode failure_mode = FailureMode::kOpen;
  absl::Duration store_timeout = absl::Seconds(2);
  absl::Duration lease_ttl = absl::Minutes(5);
  std::vector<Guardrail> guardrails;
  std::optional<SummarizerConfig> summarizer;

  std::shared_ptr<StoreSet> stores;
  std::shared_ptr<StoreSetIndex> store_index;  // keeps the index alive with the section
  std::shared_ptr<SessionGate> gate;
  std::shared_ptr<Counters> counters;
  std::shared_ptr<MessageTokenCache> token_cache;
  // This process's lease token (random per ConfigStore, kept across reloads).
  std::string lease_token;
  std::function<void(std::string_view)> log;
};

// The section's parser; `options` as given to RegisterContextComponent.
absl::StatusOr<std::shared_ptr<const ConfigSection>> ParseContextSection(
    std::string_view json, const BuildContext& context, const ContextComponentOptions& options);

// The snapshot's enabled context section, or null.
const ContextConfig* EnabledSection(const ConfigSnapshot* snapshot);

// The "context" filter's builder (its `config` must be empty or {}).
absl::StatusOr<std::unique_ptr<FilterFactory>> BuildContextFilter(std::string_view config_json,
                                                                 const BuildContext& context);

// The session endpoints.
absl::Status RegisterSessionEndpoints(EndpointRegistry* endpoints);

// The "context" routing policy's builder.
absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildContextRoutingPolicy(
    std::string_view options_json, const RouteBuildContext& context);

// One summarization: fold history entries `dropped` of the session at `version` into one
// summary entry, asking `model` (served by `provider` as `upstream_model`).
struct SummaryRequest {
  EventLoop* loop = nullptr;
  std::shared_ptr<ContextStore> store;
  std::shared_ptr<Counters> counters;
  std::function<void(std::string_view)> log;
  std::string session_id;
  uint64_t version = 0;
  std::vector<size_t> dropped;
  std::string model;
  std::string upstream_model;
  ProviderConfig provider;  // a copy: the job may outlive the request's snapshot
};
// Runs the summarization on the loop of `request.loop` (the caller's), on its own: the
// job keeps itself alive until it finished. REQUIRES: called on that loop's thread;
// `upstream` belongs to that loop.
void StartSummary(UpstreamClient& upstream, SummaryRequest request);

// The context window of the model `ctx.chat` asks for (the smallest among the first
// targets of its plan; 0 when none is known) and the tokenizer of its first upstream model
// (null when it cannot be loaded). `draw` as RoutingRequest::draw.
void ResolveContextWindow(const RequestContext& ctx, uint64_t draw, int64_t* window,
                          std::shared_ptr<const Encoding>* encoding);

// The owner requests of `ctx` act as ("api_key.name" metadata, else "anonymous").
std::string OwnerOf(const RequestContext& ctx);

// Metadata key prefix the filter publishes context metadata under.
inline constexpr std::string_view kMetadataPrefix = "context.metadata.";
inline constexpr std::string_view kSessionIdKey = "context.session_id";

}  // namespace modeenvoy::context_internal

#endif  // MODEENVOY_LIB_CONTEXT_GATEWAY_INTERNAL_H_
