// include/modeenvoy/context/gateway.h: the Model Context Protocol inside the gateway engine.
//
// One registration call adds, through the engine's registries (no engine edit):
//   - the config section "context" (store, headers, bounds, concurrency, failure mode,
//     guardrails; docs/context.md has the reference),
//   - the filter type "context" (list it in `filters` after any authentication filter):
//     loads the session named by X-Session-Id (or the body's metadata.session_id), sends
//     the provider history + the client's new messages fitted to the model's context
//     window, and appends the turn (user messages, the assembled reply, tool calls and
//     results, the model choice) before the response's final bytes are released,
//   - the endpoints GET /v1/sessions/{id}, DELETE /v1/sessions/{id}, GET /v1/sessions,
//   - the routing policy "context" (routes that pick a target by context metadata).
//   modeenvoy::Registry registry;
//   if (absl::Status s = modeenvoy::RegisterContextComponent(&registry); !s.ok()) ...
//   modeenvoy::ConfigStore store({.registry = &registry});
//   store.Load(R"({"context": {"store": {"type": "memory"}},
//                  "filters": [{"type": "context"}], ...})");
// Owners: a session belongs to the request's "api_key.name" metadata (set by the
// api_key_auth filter) or, without one, to "anonymous"; anyone else gets 404 for it.
#ifndef MODEENVOY_CONTEXT_GATEWAY_H_
#define MODEENVOY_CONTEXT_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {

struct ContextComponentOptions {
  // Supplies the store for requests running on `loop` instead of the `context.store`
  // section (a host's own store, a test's fault-injecting wrapper). Called on the loop's
  // thread the first time a request of that loop needs a store while a snapshot built
  // with this option is current; the result is kept per loop until the section that
  // asked is released (or ReleaseContextStores). Null: the configured store (memory: one
  // store shared by every loop; redis: one per loop, created on that loop's thread).
  std::function<absl::StatusOr<std::shared_ptr<ContextStore>>(EventLoop& loop)> store;
  // Receives one line per failed store operation ("context: append to session s-1
  // failed: ..."). Null writes it to stderr. Called on loop threads; must be thread-safe.
  std::function<void(std::string_view line)> log;
};

// Registers the "context" section, filter type, routing policy and the session endpoints.
// Errors: kAlreadyExists when one of them is registered already (e.g. a second call).
MODEENVOY_EXPORT absl::Status RegisterContextComponent(Registry* registry,
                                                       ContextComponentOptions options = {});

// Destroys the stores bound to `loop` (a "redis" store is one per loop) that snapshots
// of `services` made, so that none outlives its loop. Call it before destroying a loop that
// served requests, on that loop's thread or once nothing runs it any more; requests of
// that loop must be over. A later request on the loop makes a new store. Thread-safe.
MODEENVOY_EXPORT void ReleaseContextStores(Services& services, EventLoop& loop);

// Counters of the context filter and endpoints, summed over every snapshot and loop that
// used `services` (one ConfigStore). For metrics exporters.
struct ContextMetrics {
  uint64_t sessions_loaded = 0;   // requests that ran with a stored context
  uint64_t turns_appended = 0;    // appends acknowledged by the store
  uint64_t append_conflicts = 0;  // compare-and-set conflicts retried
  uint64_t failed_writes = 0;     // appends and summaries that failed or timed out (logged)
  uint64_t failed_reads = 0;      // loads that failed or timed out
  uint64_t fail_open = 0;         // requests sent on without context (failure_mode open)
  uint64_t busy_rejected = 0;     // 409 session_busy (reject mode, or a full queue)
  uint64_t queue_timeouts = 0;    // requests that waited queue_timeout for their session
  uint64_t summaries = 0;         // dropped turns folded into a stored summary
  // Turns stored under a later number than the X-Session-Turn their response announced
  // (another writer appended between the load and the append: a lease lost; logged).
  uint64_t turns_renumbered = 0;
  // Lease renewals during a request that failed or found the lease taken (logged).
  uint64_t lease_renewal_failures = 0;
};

// Reads the counters. Thread-safe; all zero when the component never ran with `services`.
MODEENVOY_EXPORT ContextMetrics ReadContextMetrics(Services& services);

// ---- The context store for other components (the Responses API's stored responses) ----
// A component that keeps its own records in the conversation store (lib/responses_ingress
// keeps each stored response as a record named by the response id) reaches the store the
// snapshot's "context" section configured through these, without the section's internals:
//   absl::StatusOr<std::optional<modeenvoy::ContextStoreAccess>> access =
//       modeenvoy::ContextStoreForSnapshot(*ctx.snapshot, callbacks.event_loop());
//   if (!access.ok()) return FilterResult::Error(access.status());   // 503
//   if (!access->has_value()) ...                                    // no context section
//   (*access)->store->Get(id, ...);  // bound the wait by (*access)->timeout
// Records written this way share the store (and its byte bound, TTL and eviction) with the
// sessions of the context filter: GET /v1/sessions of their owner lists them too.

// The store of one snapshot's enabled "context" section, for one loop.
struct ContextStoreAccess {
  // Never null. Shared with the section (and the context filter): a memory store serves
  // every loop, a Redis store is bound to the loop it was asked for and is used on that
  // loop's thread only (ContextStore's contract). Holding it past the snapshot is allowed
  // but ReleaseContextStores still drops the section's reference for that loop.
  std::shared_ptr<ContextStore> store;
  // The section's store_timeout: how long a request should wait for one store operation.
  absl::Duration timeout = absl::Seconds(2);
  // The section's reserve_output_tokens (what windowing keeps free for the reply when the
  // request names no max tokens).
  int64_t reserve_output_tokens = 4096;
  // Where the section logs failed store operations (ContextComponentOptions::log, else
  // stderr). Never null in a returned access. Thread-safe.
  std::function<void(std::string_view line)> log;
};

// The store `snapshot`'s "context" section configured, for requests running on `loop`
// (made on first use, as for the context filter: ContextComponentOptions::store, else the
// section's `store`). Returns nullopt when the snapshot has no "context" section or it is
// disabled (`"enabled": false`). Errors: kUnavailable (code context_unavailable, HTTP 503)
// when the store cannot be made (e.g. Redis unreachable at connect time), with the reason.
// REQUIRES: called on `loop`'s thread. Thread-safe otherwise (the section's store set is).
MODEENVOY_EXPORT absl::StatusOr<std::optional<ContextStoreAccess>> ContextStoreForSnapshot(
    const ConfigSnapshot& snapshot, EventLoop& loop);

// The owner a request acts as, by the rule of the session endpoints and the context filter:
// the request's "api_key.name" metadata (set by api_key_auth), else "anonymous". A record
// whose owner differs must be answered as missing (404). Pure; thread-safe.
MODEENVOY_EXPORT std::string ContextOwnerOf(const RequestContext& ctx);

// Fits `history` + `new_messages` to the context window of the model `ctx.chat` asks for,
// as the context filter does: the smallest window (configured `context_window` extension,
// else the published window of the upstream model) among the first targets of its route,
// minus the reply's reserve (the request's max tokens, else `reserve_output_tokens`) and
// what the request spends outside its messages (tools, priming); counted with the upstream
// model's tokenizer. Returns the messages to send: the kept history, then `new_messages`.
// When no window or tokenizer is known the whole history is kept. `draw` is the random
// draw routing plans with (Services::Random()). Errors: kInvalidArgument (code
// context_length_exceeded) when the new messages alone do not fit.
// REQUIRES: ctx.chat and ctx.snapshot are not null. Thread-safe (the token cache is).
MODEENVOY_EXPORT absl::StatusOr<std::vector<Message>> FitHistoryToRequestModel(
    const RequestContext& ctx, uint64_t draw, const std::vector<HistoryEntry>& history,
    const std::vector<Message>& new_messages, int64_t reserve_output_tokens);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_GATEWAY_H_
