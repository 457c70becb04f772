#include "modeenvoy/context/window.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"

namespace modeenvoy {
namespace {

using core_internal::MutexLock;

// ---------------------------------------------------------------------------------------
// The cache key: every field of the message in a fixed order, each length-framed by
// absl::Hash (what the message's canonical JSON holds, without building it: serializing
// each history message on every request would cost more than counting short ones).

template <typename H>
H HashPart(H h, const ContentPart& p) {
  h = H::combine(std::move(h), static_cast<int>(p.type), p.text, p.refusal, p.extra,
                 p.image_url.has_value(), p.input_audio.has_value(), p.file.has_value());
  if (p.image_url) {
    h = H::combine(std::move(h), p.image_url->url, p.image_url->detail, p.image_url->extra);
  }
  if (p.input_audio) {
    h = H::combine(std::move(h), p.input_audio->data, p.input_audio->format,
                   p.input_audio->extra);
  }
  if (p.file) {
    h = H::combine(std::move(h), p.file->file_data, p.file->file_id, p.file->filename,
                   p.file->extra);
  }
  return h;
}

template <typename H>
H HashMessage(H h, const Message& m) {
  h = H::combine(std::move(h), static_cast<int>(m.role), m.content.has_value());
  if (m.content.has_value()) {
    if (const auto* s = std::get_if<std::string>(&*m.content)) {
      h = H::combine(std::move(h), 0, *s);
    } else {
      const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
      h = H::combine(std::move(h), 1, parts.size());
      for (const ContentPart& p : parts) h = HashPart(std::move(h), p);
    }
  }
  h = H::combine(std::move(h), m.name, m.tool_call_id, m.refusal, m.extra, m.tool_calls.size());
  for (const ToolCall& c : m.tool_calls) {
    h = H::combine(std::move(h), c.id, c.type, c.extra, c.function.has_value());
    if (c.function) {
      h = H::combine(std::move(h), c.function->name, c.function->arguments, c.function->extra);
    }
  }
  return h;
}

// (salt, counting rules, message): two salts give the two halves of the 128-bit key.
struct Hashed {
  uint64_t salt;
  std::string_view rules;
  const Message* message;
  template <typename H>
  friend H AbslHashValue(H h, const Hashed& k) {
    h = H::combine(std::move(h), k.salt, k.rules);
    return HashMessage(std::move(h), *k.message);
  }
};

struct Key {
  uint64_t hi = 0;
  uint64_t lo = 0;
  bool operator==(const Key&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.lo);
  }
};

Key KeyOf(std::string_view rules, const Message& message) {
  return Key{absl::Hash<Hashed>{}(Hashed{0x6d6f6465656e766fULL, rules, &message}),
             absl::Hash<Hashed>{}(Hashed{0x79636f6e74657874ULL, rules, &message})};
}

constexpr size_t kShards = 16;

}  // namespace

class MessageTokenCache::Impl {
 public:
  explicit Impl(const MessageTokenCacheOptions& options)
      : per_shard_(std::max<size_t>(1, options.max_entries / kShards)) {}

  int64_t Count(const Encoding& encoding, const Message& message, const ChatTokenOptions& options,
                std::string_view rules) {
    const Key key = KeyOf(rules, message);
    Shard& s = shards_[key.hi % kShards];
    {
      MutexLock lock(&s.mu);
      if (auto it = s.map.find(key); it != s.map.end()) {
        s.lru.splice(s.lru.begin(), s.lru, it->second);
        hits_.fetch_add(1, std::memory_order_relaxed);
        return it->second->second;
      }
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    const int64_t tokens = CountMessageTokens(encoding, message, options).prompt_tokens;
    MutexLock lock(&s.mu);
    if (s.map.contains(key)) return tokens;  // another thread counted it meanwhile
    s.lru.emplace_front(key, tokens);
    s.map.emplace(key, s.lru.begin());
    while (s.map.size() > per_shard_) {
      s.map.erase(s.lru.back().first);
      s.lru.pop_back();
    }
    return tokens;
  }

  size_t size() const {
    size_t n = 0;
    for (Shard& s : shards_) {
      MutexLock lock(&s.mu);
      n += s.map.size();
    }
    return n;
  }
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    absl::Mutex mu;
    std::list<std::pair<Key, int64_t>> lru ABSL_GUARDED_BY(mu);  // front: most recent
    absl::flat_hash_map<Key, std::list<std::pair<Key, int64_t>>::iterator> map
        ABSL_GUARDED_BY(mu);
  };
  const size_t per_shard_;
  mutable std::array<Shard, kShards> shards_;
  std::atomic<uint64_t> hits_{0};
  std::atomic<uint64_t> misses_{0};
};

MessageTokenCache::MessageTokenCache(const MessageTokenCacheOptions& options)
    : impl_(new Impl(options)) {}
MessageTokenCache::~MessageTokenCache() { delete impl_; }
int64_t MessageTokenCache::Count(const Encoding& encoding, const Message& message,
                                 const ChatTokenOptions& options) {
  return impl_->Count(encoding, message, options, MessageCountingRules(encoding, options));
}
int64_t MessageTokenCache::Count(const Encoding& encoding, const Message& message,
                                 const ChatTokenOptions& options, std::string_view rules) {
  return impl_->Count(encoding, message, options, rules);
}
size_t MessageTokenCache::size() const { return impl_->size(); }
uint64_t MessageTokenCache::hits() const { return impl_->hits(); }
uint64_t MessageTokenCache::misses() const { return impl_->misses(); }

namespace {

enum class Keep : uint8_t {
  kAlways,   // system, developer, pinned, and tool calls/results tied to kept messages
  kTurn,     // dropped with its turn, oldest first
  kSummary,  // dropped only when dropping every turn was not enough
};

bool IsSystem(const Message& m) { return m.role == Role::kSystem || m.role == Role::kDeveloper; }

Keep BaseKeep(const HistoryEntry& e) {
  return e.summary                          ? Keep::kSummary
         : e.pinned || IsSystem(e.message) ? Keep::kAlways
                                           : Keep::kTurn;
}

constexpr uint32_t kNoUnit = UINT32_MAX;

// What windowing knows of a history without its new messages: each entry's class after the
// history's own tool call/result links, and the units (runs of droppable entries of one
// turn) with the running sum of their tokens, so the cut for a budget is a binary search.
// Built whole by Analyze, or extended entry by entry as the history grows.
struct Analysis {
  std::vector<int64_t> tokens;
  std::vector<Keep> keep;
  std::vector<uint32_t> unit;  // kNoUnit unless keep == kTurn
  // Per unit: tokens of the droppable entries of units [0, u]; one past its last entry;
  // whether dropping may stop after it (no call/result link spans the boundary).
  std::vector<int64_t> drop_sum;
  std::vector<size_t> unit_end;
  std::vector<uint8_t> can_stop;
  int64_t all = 0;  // every entry
  int64_t last_turn = 0;
  // A tool message that also calls tools: links may chain beyond call -> results, which
  // FitCounted settles in its own passes; the fast path leaves such histories to it.
  bool chained = false;
  // tool_call id -> the latest entry calling it (what a later result links to).
  absl::flat_hash_map<std::string, size_t> call_at;

  size_t size() const { return keep.size(); }
  size_t units() const { return drop_sum.size(); }

  void ClearClasses() {
    keep.clear();
    unit.clear();
    drop_sum.clear();
    unit_end.clear();
    can_stop.clear();
    all = 0;
    last_turn = 0;
    chained = false;
    call_at.clear();
  }

  // Entry i's class is final: give it its unit and add its tokens.
  void Place(const std::vector<HistoryEntry>& history, size_t i) {
    all += tokens[i];
    if (keep[i] != Keep::kTurn) {
      unit[i] = kNoUnit;
      return;
    }
    if (drop_sum.empty() || history[i].turn != last_turn) {
      drop_sum.push_back(drop_sum.empty() ? 0 : drop_sum.back());
      unit_end.push_back(i + 1);
      can_stop.push_back(1);
    }
    unit[i] = static_cast<uint32_t>(drop_sum.size() - 1);
    drop_sum.back() += tokens[i];
    unit_end.back() = i + 1;
    last_turn = history[i].turn;
  }

  void Span(size_t call, size_t result) {
    if (keep[call] != Keep::kTurn || keep[result] != Keep::kTurn) return;
    const uint32_t a = std::min(unit[call], unit[result]), b = std::max(unit[call], unit[result]);
    for (uint32_t u = a; u < b; ++u) can_stop[u] = 0;
  }

  // Classifies history[0, tokens.size()) from scratch (FitContext's rules without new
  // messages).
  void Analyze(const std::vector<HistoryEntry>& history) {
    ClearClasses();
    const size_t n = tokens.size();
    keep.resize(n);
    unit.resize(n);
    std::vector<std::pair<size_t, size_t>> links;
    for (size_t i = 0; i < n; ++i) {
      const Message& m = history[i].message;
      keep[i] = BaseKeep(history[i]);
      if (m.role == Role::kTool && !m.tool_calls.empty()) chained = true;
      for (const ToolCall& c : m.tool_calls) call_at[c.id] = i;
      if (m.role == Role::kTool && m.tool_call_id.has_value()) {
        if (auto it = call_at.find(*m.tool_call_id); it != call_at.end()) {
          links.emplace_back(it->second, i);
        }
      }
    }
    // A kept result keeps its call, a kept call its results (so one kept result keeps the
    // call's other results too).
    for (const auto& [call, result] : links) {
      if (keep[result] == Keep::kAlways) keep[call] = Keep::kAlways;
    }
    for (const auto& [call, result] : links) {
      if (keep[call] == Keep::kAlways) keep[result] = Keep::kAlways;
    }
    for (size_t i = 0; i < n; ++i) Place(history, i);
    for (const auto& [call, result] : links) Span(call, result);
  }

  // Classifies the entries from size() to tokens.size(), appended since: the same result as
  // Analyze unless a new entry changes an older one's class (a pinned tool result whose
  // call may be dropped), in which case it runs Analyze.
  void Extend(const std::vector<HistoryEntry>& history) {
    const size_t from = size(), n = tokens.size();
    keep.resize(n);
    unit.resize(n);
    for (size_t i = from; i < n; ++i) {
      const Message& m = history[i].message;
      keep[i] = BaseKeep(history[i]);
      if (m.role == Role::kTool && !m.tool_calls.empty()) chained = true;
      for (const ToolCall& c : m.tool_calls) call_at[c.id] = i;
      size_t call = SIZE_MAX;
      if (m.role == Role::kTool && m.tool_call_id.has_value()) {
        if (auto it = call_at.find(*m.tool_call_id); it != call_at.end()) call = it->second;
      }
      if (call != SIZE_MAX && call != i) {
        if (keep[call] == Keep::kAlways) {
          keep[i] = Keep::kAlways;
        } else if (keep[i] == Keep::kAlways) {
          return Analyze(history);  // the older call (and its other results) become kept
        }
      }
      Place(history, i);
      if (call != SIZE_MAX) Span(call, i);
    }
  }
};

// FitContext's rules over counted entries: `tokens[i]` is history[i]'s count, new_tokens
// the new messages' total. Fills `dropped` and returns the window's tokens.
absl::StatusOr<int64_t> FitCounted(const std::vector<HistoryEntry>& history,
                                   const int64_t* tokens, const std::vector<Message>& new_messages,
                                   int64_t new_tokens, int64_t budget,
                                   std::vector<size_t>* dropped_out) {
  const size_t n = history.size();
  std::vector<Keep> keep(n);
  for (size_t i = 0; i < n; ++i) keep[i] = BaseKeep(history[i]);

  // Tool calls and the tool messages answering them: (call entry, result entry), with
  // SIZE_MAX for a result among the new messages (which are always kept).
  std::vector<std::pair<size_t, size_t>> links;
  absl::flat_hash_map<std::string_view, size_t> call_at;
  for (size_t i = 0; i < n; ++i) {
    const Message& m = history[i].message;
    for (const ToolCall& c : m.tool_calls) call_at[c.id] = i;
    if (m.role == Role::kTool && m.tool_call_id.has_value()) {
      if (auto it = call_at.find(*m.tool_call_id); it != call_at.end()) {
        links.emplace_back(it->second, i);
      }
    }
  }
  if (!call_at.empty()) {
    for (const Message& m : new_messages) {
      if (m.role != Role::kTool || !m.tool_call_id.has_value()) continue;
      if (auto it = call_at.find(*m.tool_call_id); it != call_at.end()) {
        links.emplace_back(it->second, SIZE_MAX);
      }
    }
  }
  // A call kept for any reason keeps its results, and a kept result its call (and so the
  // call's other results): two passes settle call -> results -> call.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& [call, result] : links) {
      if (result == SIZE_MAX || keep[result] == Keep::kAlways) keep[call] = Keep::kAlways;
    }
    for (const auto& [call, result] : links) {
      if (result != SIZE_MAX && keep[call] == Keep::kAlways) keep[result] = Keep::kAlways;
    }
  }

  // fixed: what is kept whatever the budget; total: what the window holds so far.
  int64_t fixed = new_tokens, total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (keep[i] == Keep::kAlways) {
      fixed += tokens[i];
    } else {
      total += tokens[i];
    }
  }
  total += fixed;
  if (fixed > budget) {
    return WithErrorCode(
        InvalidFieldError(
            "messages",
            absl::StrCat("the new messages with the conversation's system and pinned messages "
                         "need ",
                         fixed, " tokens, more than the ", budget,
                         " the model's context window leaves for them")),
        "context_length_exceeded");
  }

  // Units: runs of droppable entries of one turn, merged so that a tool call and its results
  // go together. can_stop[u]: dropping may stop after unit u.
  std::vector<size_t> unit(n, SIZE_MAX);
  size_t units = 0;
  int64_t last_turn = 0;
  for (size_t i = 0; i < n; ++i) {
    if (keep[i] != Keep::kTurn) continue;
    if (units == 0 || history[i].turn != last_turn) ++units;
    unit[i] = units - 1;
    last_turn = history[i].turn;
  }
  std::vector<bool> can_stop(units, true);
  for (const auto& [call, result] : links) {
    if (result == SIZE_MAX || keep[call] != Keep::kTurn || keep[result] != Keep::kTurn) continue;
    const size_t a = std::min(unit[call], unit[result]), b = std::max(unit[call], unit[result]);
    for (size_t u = a; u < b; ++u) can_stop[u] = false;
  }

  std::vector<bool> dropped(n, false);
  size_t next = 0;  // the oldest history entry not yet considered
  size_t dropped_units = 0;
  while (total > budget && dropped_units < units) {
    // Drop units up to the next point where dropping may stop.
    size_t last = dropped_units;
    while (last + 1 < units && !can_stop[last]) ++last;
    for (; next < n; ++next) {
      if (keep[next] != Keep::kTurn) continue;
      if (unit[next] > last) break;
      dropped[next] = true;
      total -= tokens[next];
    }
    dropped_units = last + 1;
  }
  for (size_t i = 0; i < n && total > budget; ++i) {
    if (keep[i] == Keep::kSummary) {
      dropped[i] = true;
      total -= tokens[i];
    }
  }
  for (size_t i = 0; i < n; ++i) {
    if (dropped[i]) dropped_out->push_back(i);
  }
  return total;
}

// The fast path over an up-to-date analysis of the whole history: nullopt when its answer
// could differ from FitCounted's (a cut reaching a call the new messages answer, summaries
// to drop, an error), which then decides.
std::optional<int64_t> FitAnalyzed(const Analysis& a, const std::vector<Message>& new_messages,
                                   int64_t new_tokens, int64_t budget,
                                   std::vector<size_t>* dropped_out) {
  const int64_t total = a.all + new_tokens;
  if (total <= budget) return total;
  if (a.chained) return std::nullopt;
  // Units from the first one holding a call the new messages answer are never cut here.
  size_t first_answered = SIZE_MAX;
  if (!a.call_at.empty()) {
    for (const Message& m : new_messages) {
      if (m.role != Role::kTool || !m.tool_call_id.has_value()) continue;
      auto it = a.call_at.find(*m.tool_call_id);
      if (it == a.call_at.end()) continue;
      switch (a.keep[it->second]) {
        case Keep::kAlways:
          break;
        case Keep::kTurn:
          first_answered = std::min<size_t>(first_answered, a.unit[it->second]);
          break;
        case Keep::kSummary:
          return std::nullopt;
      }
    }
  }
  const size_t units = a.units();
  auto cut = std::lower_bound(a.drop_sum.begin(), a.drop_sum.end(), total - budget);
  if (cut == a.drop_sum.end()) return std::nullopt;  // summaries must go too, or no fit
  size_t u = static_cast<size_t>(cut - a.drop_sum.begin());
  while (u + 1 < units && !a.can_stop[u]) ++u;
  if (u >= first_answered) return std::nullopt;
  for (size_t i = 0; i < a.unit_end[u]; ++i) {
    if (a.keep[i] == Keep::kTurn) dropped_out->push_back(i);
  }
  return total - a.drop_sum[u];
}

}  // namespace

class HistoryTokenCounts::Impl {
 public:
  struct PerRules {
    std::string rules;
    Analysis analysis;
  };
  mutable absl::Mutex mu;
  // One per counting rules used with this history (usually one).
  std::vector<std::unique_ptr<PerRules>> by_rules ABSL_GUARDED_BY(mu);

  PerRules& ForLocked(std::string_view rules) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    for (auto& p : by_rules) {
      if (p->rules == rules) return *p;
    }
    by_rules.push_back(std::make_unique<PerRules>());
    by_rules.back()->rules = std::string(rules);
    return *by_rules.back();
  }
};

HistoryTokenCounts::HistoryTokenCounts() : impl_(new Impl) {}
HistoryTokenCounts::~HistoryTokenCounts() { delete impl_; }

std::vector<int64_t> HistoryTokenCounts::Counts(std::string_view rules) const {
  MutexLock lock(&impl_->mu);
  for (const auto& p : impl_->by_rules) {
    if (p->rules == rules) return p->analysis.tokens;
  }
  return {};
}

class HistoryTokenCountsAccess {
 public:
  static HistoryTokenCounts::Impl& Of(HistoryTokenCounts& c) { return *c.impl_; }
};

absl::StatusOr<WindowResult> FitContext(const std::vector<HistoryEntry>& history,
                                        const std::vector<Message>& new_messages,
                                        const Encoding& encoding, const WindowOptions& options,
                                        MessageTokenCache* cache) {
  const std::string rules = MessageCountingRules(encoding, options.counting);
  auto count = [&](const Message& m) {
    return cache != nullptr ? cache->Count(encoding, m, options.counting, rules)
                            : CountMessageTokens(encoding, m, options.counting).prompt_tokens;
  };
  int64_t new_tokens = 0;
  for (const Message& m : new_messages) new_tokens += count(m);

  WindowResult out;
  absl::StatusOr<int64_t> total;
  if (options.history_counts == nullptr) {
    std::vector<int64_t> tokens(history.size());
    for (size_t i = 0; i < history.size(); ++i) tokens[i] = count(history[i].message);
    total = FitCounted(history, tokens.data(), new_messages, new_tokens, options.budget_tokens,
                       &out.dropped);
  } else {
    auto& counts = HistoryTokenCountsAccess::Of(*options.history_counts);
    MutexLock lock(&counts.mu);
    Analysis& a = counts.ForLocked(rules).analysis;
    if (history.size() < a.tokens.size()) {
      // An older version of a history whose counts a newer one extended: the counts of
      // its entries are there, the sums are the newer one's.
      total = FitCounted(history, a.tokens.data(), new_messages, new_tokens,
                         options.budget_tokens, &out.dropped);
    } else {
      for (size_t i = a.tokens.size(); i < history.size(); ++i) {
        a.tokens.push_back(count(history[i].message));
      }
      if (a.size() < a.tokens.size()) a.Extend(history);
      std::optional<int64_t> fast =
          FitAnalyzed(a, new_messages, new_tokens, options.budget_tokens, &out.dropped);
      if (fast.has_value()) {
        total = *fast;
      } else {
        out.dropped.clear();
        total = FitCounted(history, a.tokens.data(), new_messages, new_tokens,
                           options.budget_tokens, &out.dropped);
      }
    }
  }
  if (!total.ok()) return total.status();
  out.tokens = *total;
  if (options.copy_messages) {
    out.messages.reserve(history.size() - out.dropped.size() + new_messages.size());
    size_t d = 0;
    for (size_t i = 0; i < history.size(); ++i) {
      if (d < out.dropped.size() && out.dropped[d] == i) {
        ++d;
      } else {
        out.messages.push_back(history[i].message);
      }
    }
    out.messages.insert(out.messages.end(), new_messages.begin(), new_messages.end());
  }
  return out;
}

}  // namespace modeenvoy
