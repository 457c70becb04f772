// include/modeenvoy/context/store.h: where conversation contexts live.
//
// One interface, two stores: in memory (sharded, byte-bounded LRU with TTL; the default) and
// Redis (hiredis, non-blocking on the host's event loop; redis_store.h). Every operation
// completes through a callback, which runs either inline (the memory store) or later on the
// loop the store is bound to (Redis), and can be cancelled:
//   std::unique_ptr<modeenvoy::ContextStore> store = modeenvoy::NewMemoryContextStore({});
//   modeenvoy::StoreHandle h = store->Get("s-1", [&](absl::StatusOr<
//       std::optional<modeenvoy::StoredContext>> got) {
//     if (!got.ok()) return Fail(got.status());        // store unreachable, unreadable record
//     uint64_t version = got->has_value() ? (*got)->version : 0;   // 0: no such session
//     // (*got)->record->history: the shared, immutable record (no copy per Get)
//     modeenvoy::ContextAppend turn;
//     turn.owner = "team-a";
//     turn.entries.push_back({.message = user_message, .turn = 1});
//     store->Append("s-1", version, std::move(turn), [](absl::StatusOr<uint64_t> v) { ... });
//   });
//
// Consistency: every write names the version it expects (compare-and-set): a write whose
// expected version is not the stored one fails with kAborted and changes nothing, so two
// writers can never interleave or lose a turn. Version 0 means "no such session": an Append
// with expected version 0 creates the session. Each successful write returns the new
// version (strictly greater). Leases (TryLock/Unlock) let a gateway hold a session for the
// length of one request across processes sharing a store.
// Errors common to every operation: kUnavailable (store unreachable; the message says
// why), kDeadlineExceeded (the store's operation timeout), kDataLoss (a stored record that
// does not parse; names the session), kInvalidArgument (a session id or owner that is
// empty or longer than kMaxSessionIdBytes, with the field named).
#ifndef MODEENVOY_CONTEXT_STORE_H_
#define MODEENVOY_CONTEXT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// Longest accepted session id and owner, in bytes.
inline constexpr size_t kMaxSessionIdBytes = 256;

class HistoryTokenCounts;  // window.h

// A record as stored, with the version a later write must name.
// Contract change (ctx-core2): `record` is a shared, immutable record (it was a ContextRecord
// copied on every Get, which cost more than the rest of a request): read it as
// `got->record->history`; copy it (`ContextRecord r = *got->record;`) to edit it for Replace.
// A store builds one with std::make_shared<const ContextRecord>(...).
struct StoredContext {
  // Never null in a store's answer. Stays valid and unchanged for as long as it is held,
  // whatever later writes, evictions and deletes do. Holding it is cheap, but a memory
  // store extends a record nobody holds in place and copies one that is still held, so
  // release it (after taking what you need) before you Append to the same session.
  std::shared_ptr<const ContextRecord> record;
  uint64_t version = 0;  // >= 1
  // Token counts of record->history kept with the stored record, so that windowing the
  // same session again costs its new entries only (pass it as WindowOptions::history_counts
  // with record->history). Shared by the versions an Append derives from this one; null
  // when the store keeps none (Redis: the MessageTokenCache then spares the tokenizer, but
  // every message is hashed per request). Thread-safe.
  std::shared_ptr<HistoryTokenCounts> token_counts;
};

// What one turn adds to a session (applied atomically with the version check).
struct ContextAppend {
  // Owner of a session this append creates (expected version 0). Ignored otherwise: the
  // caller checks ownership on the record it read.
  std::string owner;
  // Appended to history, in order.
  std::vector<HistoryEntry> entries;
  // New tool invocations, appended to tool_calls.
  std::vector<ToolInvocation> tool_calls;
  // Results for invocations already stored: (index in tool_calls, result text).
  std::vector<std::pair<size_t, std::string>> tool_results;
  // Appended to model_choices when set.
  std::optional<ModelChoice> model_choice;
  // Merged into metadata (a key present replaces the stored value).
  std::map<std::string, std::string> metadata;
  // Added to turn_count.
  int64_t turns = 0;
  // The time written to `updated` (and `created` when the append creates the session).
  absl::Time now = absl::UnixEpoch();
};

// One session in a listing.
struct SessionSummary {
  std::string session_id;
  int64_t turn_count = 0;
  absl::Time created = absl::UnixEpoch();
  absl::Time updated = absl::UnixEpoch();
  bool operator==(const SessionSummary&) const = default;
};

// A page of List(): sessions ordered by session id (bytewise).
struct SessionPage {
  std::vector<SessionSummary> sessions;
  // Pass to the next List() call; empty when this page is the last.
  std::string next_cursor;
};

template <typename T>
using StoreCallback = absl::AnyInvocable<void(absl::StatusOr<T>)>;

// An operation in progress. Destroying the handle, or Cancel(), before the callback ran
// guarantees it never runs (a write already sent may still take effect at the store).
// After the callback ran both are no-ops. Thread safety: as the store that returned it.
class MODEENVOY_EXPORT StoreOperation {
 public:
  virtual ~StoreOperation() = default;
  virtual void Cancel() = 0;
};
// Null when the operation completed inline (its callback already ran).
using StoreHandle = std::unique_ptr<StoreOperation>;

// Thread safety: documented per implementation. The memory store is thread-safe and
// completes inline; a Redis store is bound to one event loop and is used on its thread only.
class MODEENVOY_EXPORT ContextStore {
 public:
  virtual ~ContextStore() = default;

  // The session's record, or nullopt when there is none (never created, deleted, or
  // expired).
  virtual StoreHandle Get(std::string_view session_id,
                          StoreCallback<std::optional<StoredContext>> done) = 0;

  // Applies `append` if the stored version is `expected_version` (0: the session must not
  // exist, and is created with append.owner). Returns the new version. Errors: kAborted
  // when the stored version differs (nothing written); kResourceExhausted when the record
  // would exceed the store's byte bound (nothing written); kInvalidArgument for a
  // tool_results index out of range.
  virtual StoreHandle Append(std::string_view session_id, uint64_t expected_version,
                             ContextAppend append, StoreCallback<uint64_t> done) = 0;

  // Replaces the whole record (e.g. history with old turns folded into a summary) if the
  // stored version is `expected_version`. Returns the new version. Errors as Append;
  // kNotFound when the session does not exist.
  virtual StoreHandle Replace(std::string_view session_id, uint64_t expected_version,
                              ContextRecord record, StoreCallback<uint64_t> done) = 0;

  // Erases the session (and its lease). Returns whether it existed.
  virtual StoreHandle Delete(std::string_view session_id, StoreCallback<bool> done) = 0;

  // Sessions of `owner`, at most `limit` (1..1000) per page, starting after `cursor` ("" for
  // the first page). Expired and deleted sessions are not listed.
  virtual StoreHandle List(std::string_view owner, std::string_view cursor, size_t limit,
                           StoreCallback<SessionPage> done) = 0;

  // Takes the session's lease for `ttl` when it is free or already held by `token`
  // (which renews it). Returns whether this caller holds it now. A lease outlives a crashed
  // holder by at most `ttl`.
  virtual StoreHandle TryLock(std::string_view session_id, std::string_view token,
                              absl::Duration ttl, StoreCallback<bool> done) = 0;
  // Releases the lease if `token` holds it. Returns whether it did.
  virtual StoreHandle Unlock(std::string_view session_id, std::string_view token,
                             StoreCallback<bool> done) = 0;

  // "memory" or "redis", for logs and response headers.
  virtual std::string_view kind() const = 0;
};

struct MemoryContextStoreOptions {
  // Total bytes of serialized records kept; the least recently used sessions are evicted
  // beyond it. A single record larger than max_record_bytes is refused (kResourceExhausted).
  size_t max_bytes = size_t{256} << 20;
  size_t max_record_bytes = size_t{4} << 20;
  // Sessions not written for this long expire. absl::InfiniteDuration(): never.
  absl::Duration ttl = absl::Hours(24);
  // Independent LRU shards (each with its own lock and max_bytes / shards bytes).
  int shards = 16;
  // Not owned; null means SystemClock(). Used for TTL and lease expiry.
  const Clock* clock = nullptr;
};

// An in-process store. Thread-safe; every callback runs inline (handles are null). Get
// costs O(1) whatever the session's length: it shares the stored record and its
// HistoryTokenCounts (see StoredContext); an Append costs what it adds when no reader still
// holds the record, else it copies the record once. max_bytes counts serialized records,
// not the kept token counts (about 16 bytes per history entry and counting rules used).
MODEENVOY_EXPORT std::unique_ptr<ContextStore> NewMemoryContextStore(
    const MemoryContextStoreOptions& options);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_STORE_H_
