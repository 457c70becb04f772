// The in-process context store: sharded, byte-bounded LRU with TTL, compare-and-set
// versions from one store-wide counter (a session deleted and created again never reuses a
// version, so a writer holding a version from before the delete cannot overwrite the new
// session), leases, and an owner index for List. Every callback runs inline, after the
// shard's lock is released.
// Records are shared, not copied: Get hands out the stored record itself (immutable while
// anyone holds it), with the session's HistoryTokenCounts. An Append extends a record no
// reader holds in place and copies one that is still held (copy on write), so a request
// that loads, windows and appends costs what it adds, not what the session holds.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/context/record_internal.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/status.h"

namespace modeenvoy {
namespace {

using core_internal::MutexLock;
using core_internal::ToAbsl;

constexpr size_t kMaxListLimit = 1000;

absl::Status CheckId(std::string_view field, std::string_view value) {
  if (value.empty()) return InvalidFieldError(field, "must not be empty");
  if (value.size() > kMaxSessionIdBytes) {
    return InvalidFieldError(field, absl::StrCat("longer than ", kMaxSessionIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Serialized sizes of the parts of a record, kept so that an append costs the size of
// what it adds, not a reserialization of the history.
struct Sizes {
  size_t head = 0;
  size_t history = 0;
  size_t tools = 0;
  size_t choices = 0;
};

size_t HeadBytes(const ContextRecord& r) {
  std::string out;
  context_internal::AppendRecordHead(&out, r);
  return out.size();
}
size_t EntryBytes(const HistoryEntry& e) {
  std::string out;
  context_internal::AppendHistoryEntry(&out, e);
  return out.size();
}
size_t ToolBytes(const ToolInvocation& t) {
  std::string out;
  context_internal::AppendToolInvocation(&out, t);
  return out.size();
}
size_t ChoiceBytes(const ModelChoice& c) {
  std::string out;
  context_internal::AppendModelChoice(&out, c);
  return out.size();
}

size_t TotalBytes(const Sizes& s, const ContextRecord& r) {
  return context_internal::SerializedSize(s.head, s.history, r.history.size(), s.tools,
                                          r.tool_calls.size(), s.choices,
                                          r.model_choices.size());
}

Sizes MeasureRecord(const ContextRecord& r) {
  Sizes s;
  s.head = HeadBytes(r);
  for (const HistoryEntry& e : r.history) s.history += EntryBytes(e);
  for (const ToolInvocation& t : r.tool_calls) s.tools += ToolBytes(t);
  for (const ModelChoice& c : r.model_choices) s.choices += ChoiceBytes(c);
  return s;
}

class MemoryContextStore final : public ContextStore {
 public:
  explicit MemoryContextStore(const MemoryContextStoreOptions& options)
      : options_(options), clock_(ClockOrSystem(options.clock)) {
    const int n = std::max(1, options.shards);
    shard_capacity_ = std::max<size_t>(1, options.max_bytes / static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) shards_.push_back(std::make_unique<Shard>());
  }

  StoreHandle Get(std::string_view session_id,
                  StoreCallback<std::optional<StoredContext>> done) override {
    done(GetNow(session_id));
    return nullptr;
  }

  StoreHandle Append(std::string_view session_id, uint64_t expected_version,
                     ContextAppend append, StoreCallback<uint64_t> done) override {
    done(AppendNow(session_id, expected_version, std::move(append)));
    return nullptr;
  }

  StoreHandle Replace(std::string_view session_id, uint64_t expected_version,
                      ContextRecord record, StoreCallback<uint64_t> done) override {
    done(ReplaceNow(session_id, expected_version, std::move(record)));
    return nullptr;
  }

  StoreHandle Delete(std::string_view session_id, StoreCallback<bool> done) override {
    done(DeleteNow(session_id));
    return nullptr;
  }

  StoreHandle List(std::string_view owner, std::string_view cursor, size_t limit,
                   StoreCallback<SessionPage> done) override {
    done(ListNow(owner, cursor, limit));
    return nullptr;
  }

  StoreHandle TryLock(std::string_view session_id, std::string_view token, absl::Duration ttl,
                      StoreCallback<bool> done) override {
    done(TryLockNow(session_id, token, ttl));
    return nullptr;
  }

  StoreHandle Unlock(std::string_view session_id, std::string_view token,
                     StoreCallback<bool> done) override {
    done(UnlockNow(session_id, token));
    return nullptr;
  }

  std::string_view kind() const override { return "memory"; }

 private:
  // One version of a record, shared with the readers Get handed it to.
  struct Holder {
    ContextRecord record;
    // StoredContexts handed out and not yet released: while non-zero the record is frozen.
    // Incremented under the shard's lock; the release decrement pairs with the acquire
    // load that lets a writer change the record in place.
    std::atomic<int64_t> readers{0};
  };
  // The deleter of a reader's shared_ptr<const ContextRecord>.
  struct ReleaseReader {
    std::shared_ptr<Holder> holder;
    void operator()(const ContextRecord*) const {
      holder->readers.fetch_sub(1, std::memory_order_release);
    }
  };
  struct Entry {
    std::shared_ptr<Holder> holder;
    std::shared_ptr<HistoryTokenCounts> counts;
    uint64_t version = 0;
    absl::Time written;  // by the store's clock, for the TTL
    Sizes sizes;
    size_t bytes = 0;
    std::list<std::string>::iterator lru;
  };
  struct Lease {
    std::string token;
    absl::Time expires;
  };
  struct Shard {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, Entry> entries ABSL_GUARDED_BY(mu);
    std::list<std::string> lru ABSL_GUARDED_BY(mu);  // front: most recently used
    size_t bytes ABSL_GUARDED_BY(mu) = 0;
    absl::flat_hash_map<std::string, Lease> leases ABSL_GUARDED_BY(mu);
  };

  Shard& ShardFor(std::string_view session_id) {
    const size_t h = absl::Hash<std::string_view>{}(session_id);
    return *shards_[h % shards_.size()];
  }

  bool Expired(const Entry& e, absl::Time now) const {
    return options_.ttl != absl::InfiniteDuration() && now - e.written >= options_.ttl;
  }

  // The live entry for `id`, erasing it first when it has expired.
  Entry* FindLocked(Shard& s, std::string_view id, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    auto it = s.entries.find(ToAbsl(id));
    if (it == s.entries.end()) return nullptr;
    if (Expired(it->second, now)) {
      EraseLocked(s, it);
      return nullptr;
    }
    return &it->second;
  }

  void EraseLocked(Shard& s, absl::flat_hash_map<std::string, Entry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    UnindexOwner(it->second.holder->record.owner, it->first);
    s.bytes -= it->second.bytes;
    s.lru.erase(it->second.lru);
    s.entries.erase(it);
  }

  void TouchLocked(Shard& s, Entry& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    s.lru.splice(s.lru.begin(), s.lru, e.lru);
  }

  // Evicts least recently used sessions other than `keep` until the shard fits.
  void EvictLocked(Shard& s, std::string_view keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(s.mu) {
    auto next = s.lru.end();  // the node after the candidate; erasing the candidate keeps it
    while (s.bytes > shard_capacity_ && next != s.lru.begin()) {
      auto victim = std::prev(next);
      if (*victim == keep) {
        next = victim;
        continue;
      }
      EraseLocked(s, s.entries.find(*victim));
    }
  }

  // The bound a record must fit: the per-record bound and the shard's share.
  absl::Status CheckBound(std::string_view id, size_t bytes) const {
    const size_t bound = std::min(options_.max_record_bytes, shard_capacity_);
    if (bytes <= bound) return absl::OkStatus();
    return absl::ResourceExhaustedError(absl::StrCat(
        "session ", ToAbsl(id), ": the record would be ", bytes,
        " bytes, over the memory store's bound of ", bound, " bytes per session"));
  }

  static absl::Status Conflict(std::string_view id, uint64_t expected, uint64_t stored) {
    return absl::AbortedError(absl::StrCat("session ", ToAbsl(id), ": expected version ",
                                           expected, ", stored version ", stored,
                                           stored == 0 ? " (no such session)" : ""));
  }

  absl::StatusOr<std::optional<StoredContext>> GetNow(std::string_view id) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    std::shared_ptr<Holder> holder;
    StoredContext out;
    {
      MutexLock lock(&s.mu);
      Entry* e = FindLocked(s, id, now);
      if (e == nullptr) return std::optional<StoredContext>();
      TouchLocked(s, *e);
      e->holder->readers.fetch_add(1, std::memory_order_relaxed);
      holder = e->holder;
      out.version = e->version;
      out.token_counts = e->counts;
    }
    const ContextRecord* record = &holder->record;
    out.record = std::shared_ptr<const ContextRecord>(record, ReleaseReader{std::move(holder)});
    return std::optional<StoredContext>(std::move(out));
  }

  // The entry's record, made writable: in place when no reader holds it, else a copy that
  // replaces it (the readers keep the old one).
  static ContextRecord& WritableLocked(Entry& e) {
    if (e.holder->readers.load(std::memory_order_acquire) != 0) {
      auto fresh = std::make_shared<Holder>();
      fresh->record = e.holder->record;
      e.holder = std::move(fresh);
    }
    return e.holder->record;
  }

  absl::StatusOr<uint64_t> AppendNow(std::string_view id, uint64_t expected, ContextAppend a) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    if (expected == 0) MODEENVOY_RETURN_IF_ERROR(CheckId("owner", a.owner));
    // Sizing what is added costs the new text only, and happens outside the lock.
    size_t added_history = 0, added_tools = 0;
    for (const HistoryEntry& e : a.entries) added_history += EntryBytes(e);
    for (const ToolInvocation& t : a.tool_calls) added_tools += ToolBytes(t);
    const size_t added_choice = a.model_choice.has_value() ? ChoiceBytes(*a.model_choice) : 0;

    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    Entry* e = FindLocked(s, id, now);
    const uint64_t stored = e == nullptr ? 0 : e->version;
    if (stored != expected) return Conflict(id, expected, stored);

    const ContextRecord* old = e == nullptr ? nullptr : &e->holder->record;
    const size_t old_tools = old == nullptr ? 0 : old->tool_calls.size();
    for (size_t i = 0; i < a.tool_results.size(); ++i) {
      if (a.tool_results[i].first >= old_tools) {
        return InvalidFieldError(
            absl::StrCat("tool_results[", i, "]"),
            absl::StrCat("index ", a.tool_results[i].first, " out of range (session ",
                         ToAbsl(id), " has ", old_tools, " tool calls)"));
      }
    }

    // The head after the append (ids, times, turn count, merged metadata).
    ContextRecord head;
    head.session_id = std::string(id);
    head.owner = old == nullptr ? a.owner : old->owner;
    head.created = old == nullptr ? a.now : old->created;
    head.updated = a.now;
    head.turn_count = (old == nullptr ? 0 : old->turn_count) + a.turns;
    if (old != nullptr) head.metadata = old->metadata;
    for (const auto& [key, value] : a.metadata) head.metadata[key] = value;

    Sizes sizes = e == nullptr ? Sizes{} : e->sizes;
    sizes.head = HeadBytes(head);
    sizes.history += added_history;
    sizes.choices += added_choice;
    // Tool results rewrite invocations already stored: size them as rewritten.
    std::map<size_t, ToolInvocation> rewritten;
    for (const auto& [index, result] : a.tool_results) {
      auto [it, inserted] = rewritten.try_emplace(index, old->tool_calls[index]);
      it->second.result = result;
    }
    for (const auto& [index, inv] : rewritten) {
      sizes.tools = sizes.tools - ToolBytes(old->tool_calls[index]) + ToolBytes(inv);
    }
    sizes.tools += added_tools;
    const size_t n_history = (old == nullptr ? 0 : old->history.size()) + a.entries.size();
    const size_t n_tools = old_tools + a.tool_calls.size();
    const size_t n_choices =
        (old == nullptr ? 0 : old->model_choices.size()) + (a.model_choice ? 1 : 0);
    const size_t bytes = context_internal::SerializedSize(
        sizes.head, sizes.history, n_history, sizes.tools, n_tools, sizes.choices, n_choices);
    MODEENVOY_RETURN_IF_ERROR(CheckBound(id, bytes));

    if (e == nullptr) {
      auto [it, inserted] = s.entries.try_emplace(std::string(id));
      e = &it->second;
      e->holder = std::make_shared<Holder>();
      e->counts = std::make_shared<HistoryTokenCounts>();
      s.lru.push_front(it->first);
      e->lru = s.lru.begin();
      IndexOwner(head.owner, it->first);
    } else {
      TouchLocked(s, *e);
    }
    // The history only grows: the counts kept for its entries stay true.
    ContextRecord& r = WritableLocked(*e);
    r.schema_version = kContextSchemaVersion;
    r.session_id = std::move(head.session_id);
    r.owner = std::move(head.owner);
    r.created = head.created;
    r.updated = head.updated;
    r.turn_count = head.turn_count;
    r.metadata = std::move(head.metadata);
    for (auto& [index, inv] : rewritten) r.tool_calls[index] = std::move(inv);
    for (HistoryEntry& entry : a.entries) r.history.push_back(std::move(entry));
    for (ToolInvocation& inv : a.tool_calls) r.tool_calls.push_back(std::move(inv));
    if (a.model_choice.has_value()) r.model_choices.push_back(std::move(*a.model_choice));
    e->version = ++last_version_;
    e->written = now;
    e->sizes = sizes;
    s.bytes = s.bytes - e->bytes + bytes;
    e->bytes = bytes;
    const uint64_t version = e->version;
    EvictLocked(s, id);
    return version;
  }

  absl::StatusOr<uint64_t> ReplaceNow(std::string_view id, uint64_t expected,
                                      ContextRecord record) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    if (record.session_id.empty()) record.session_id = std::string(id);
    if (record.session_id != id) {
      return InvalidFieldError("record.session_id",
                               absl::StrCat("\"", record.session_id,
                                            "\" does not match the session replaced (\"",
                                            ToAbsl(id), "\")"));
    }
    MODEENVOY_RETURN_IF_ERROR(CheckId("record.owner", record.owner));
    record.schema_version = kContextSchemaVersion;
    const Sizes sizes = MeasureRecord(record);
    const size_t bytes = TotalBytes(sizes, record);

    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    Entry* e = FindLocked(s, id, now);
    if (e == nullptr) {
      return absl::NotFoundError(absl::StrCat("session ", ToAbsl(id), ": no such session"));
    }
    if (e->version != expected) return Conflict(id, expected, e->version);
    MODEENVOY_RETURN_IF_ERROR(CheckBound(id, bytes));
    if (record.owner != e->holder->record.owner) {
      UnindexOwner(e->holder->record.owner, *e->lru);
      IndexOwner(record.owner, *e->lru);
    }
    // A new record (readers keep the old one) and new counts: the history may differ anywhere.
    e->holder = std::make_shared<Holder>();
    e->holder->record = std::move(record);
    e->counts = std::make_shared<HistoryTokenCounts>();
    e->version = ++last_version_;
    e->written = now;
    e->sizes = sizes;
    s.bytes = s.bytes - e->bytes + bytes;
    e->bytes = bytes;
    TouchLocked(s, *e);
    const uint64_t version = e->version;
    EvictLocked(s, id);
    return version;
  }

  absl::StatusOr<bool> DeleteNow(std::string_view id) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    if (auto lease = s.leases.find(ToAbsl(id)); lease != s.leases.end()) s.leases.erase(lease);
    if (FindLocked(s, id, now) == nullptr) return false;
    EraseLocked(s, s.entries.find(ToAbsl(id)));
    return true;
  }

  absl::StatusOr<SessionPage> ListNow(std::string_view owner, std::string_view cursor,
                                      size_t limit) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("owner", owner));
    if (limit < 1 || limit > kMaxListLimit) {
      return InvalidFieldError("limit", absl::StrCat("must be between 1 and ", kMaxListLimit,
                                                     ", got ", limit));
    }
    SessionPage page;
    std::string after(cursor);
    // Ids come from the index in batches (its lock is not held while a shard's is taken:
    // the lock order is shard, then index); a session that expired or went away since is
    // skipped. One live session past a full page decides whether there is a next page.
    while (true) {
      std::vector<std::string> batch = IndexBatch(owner, after, limit + 1);
      if (batch.empty()) break;
      for (const std::string& id : batch) {
        after = id;
        std::optional<SessionSummary> summary = Summary(id, owner);
        if (!summary.has_value()) continue;
        if (page.sessions.size() == limit) {
          page.next_cursor = page.sessions.back().session_id;
          return page;
        }
        page.sessions.push_back(*std::move(summary));
      }
    }
    return page;
  }

  std::optional<SessionSummary> Summary(const std::string& id, std::string_view owner) {
    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    Entry* e = FindLocked(s, id, now);
    if (e == nullptr) return std::nullopt;
    const ContextRecord& r = e->holder->record;
    if (r.owner != owner) return std::nullopt;
    return SessionSummary{id, r.turn_count, r.created, r.updated};
  }

  absl::StatusOr<bool> TryLockNow(std::string_view id, std::string_view token,
                                  absl::Duration ttl) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    MODEENVOY_RETURN_IF_ERROR(CheckId("token", token));
    if (ttl <= absl::ZeroDuration()) return InvalidFieldError("ttl", "must be positive");
    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    auto it = s.leases.find(ToAbsl(id));
    if (it != s.leases.end() && it->second.token != token && now < it->second.expires) {
      return false;
    }
    Lease& lease = it != s.leases.end() ? it->second : s.leases[std::string(id)];
    lease.token = std::string(token);
    lease.expires = now + ttl;
    return true;
  }

  absl::StatusOr<bool> UnlockNow(std::string_view id, std::string_view token) {
    MODEENVOY_RETURN_IF_ERROR(CheckId("session_id", id));
    MODEENVOY_RETURN_IF_ERROR(CheckId("token", token));
    Shard& s = ShardFor(id);
    const absl::Time now = clock_.Now();
    MutexLock lock(&s.mu);
    auto it = s.leases.find(ToAbsl(id));
    if (it == s.leases.end()) return false;
    const bool held = it->second.token == token && now < it->second.expires;
    // An expired lease is nobody's: drop it whoever asks.
    if (held || now >= it->second.expires) s.leases.erase(it);
    return held;
  }

  // --- owner index (lock order: a shard's mu, then index_mu_) ---
  void IndexOwner(const std::string& owner, const std::string& id) ABSL_LOCKS_EXCLUDED(index_mu_) {
    MutexLock lock(&index_mu_);
    by_owner_[owner].insert(id);
  }
  void UnindexOwner(const std::string& owner, const std::string& id)
      ABSL_LOCKS_EXCLUDED(index_mu_) {
    MutexLock lock(&index_mu_);
    auto it = by_owner_.find(owner);
    if (it == by_owner_.end()) return;
    it->second.erase(id);
    if (it->second.empty()) by_owner_.erase(it);
  }
  // Up to `n` session ids of `owner` after `after`, ascending.
  std::vector<std::string> IndexBatch(std::string_view owner, const std::string& after,
                                      size_t n) ABSL_LOCKS_EXCLUDED(index_mu_) {
    std::vector<std::string> out;
    MutexLock lock(&index_mu_);
    auto it = by_owner_.find(owner);
    if (it == by_owner_.end()) return out;
    for (auto id = it->second.upper_bound(after); id != it->second.end() && out.size() < n;
         ++id) {
      out.push_back(*id);
    }
    return out;
  }

  const MemoryContextStoreOptions options_;
  const Clock& clock_;
  size_t shard_capacity_ = 0;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> last_version_{0};
  absl::Mutex index_mu_;
  std::map<std::string, std::set<std::string>, std::less<>> by_owner_
      ABSL_GUARDED_BY(index_mu_);
};

}  // namespace

std::unique_ptr<ContextStore> NewMemoryContextStore(const MemoryContextStoreOptions& options) {
  return std::make_unique<MemoryContextStore>(options);
}

}  // namespace modeenvoy
