#include "modeenvoy/context/window.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
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

// (salt, encoding name, message): two salts give the two halves of the 128-bit key.
struct Hashed {
  uint64_t salt;
  std::string_view encoding;
  const Message* message;
  template <typename H>
  friend H AbslHashValue(H h, const Hashed& k) {
    h = H::combine(std::move(h), k.salt, k.encoding);
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

Key KeyOf(const Encoding& encoding, const Message& message) {
  const std::string_view name = encoding.name();
  return Key{absl::Hash<Hashed>{}(Hashed{0x6d6f6465656e766fULL, name, &message}),
             absl::Hash<Hashed>{}(Hashed{0x79636f6e74657874ULL, name, &message})};
}

constexpr size_t kShards = 16;

}  // namespace

class MessageTokenCache::Impl {
 public:
  explicit Impl(const MessageTokenCacheOptions& options)
      : per_shard_(std::max<size_t>(1, options.max_entries / kShards)) {}

  int64_t Count(const Encoding& encoding, const Message& message) {
    const Key key = KeyOf(encoding, message);
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
    const int64_t tokens = CountMessageTokens(encoding, message).prompt_tokens;
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
int64_t MessageTokenCache::Count(const Encoding& encoding, const Message& message) {
  return impl_->Count(encoding, message);
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

}  // namespace

absl::StatusOr<WindowResult> FitContext(const std::vector<HistoryEntry>& history,
                                        const std::vector<Message>& new_messages,
                                        const Encoding& encoding, const WindowOptions& options,
                                        MessageTokenCache* cache) {
  auto count = [&](const Message& m) {
    return cache != nullptr ? cache->Count(encoding, m)
                            : CountMessageTokens(encoding, m).prompt_tokens;
  };
  const size_t n = history.size();
  std::vector<int64_t> tokens(n);
  std::vector<Keep> keep(n);
  for (size_t i = 0; i < n; ++i) {
    const HistoryEntry& e = history[i];
    tokens[i] = count(e.message);
    keep[i] = e.summary                          ? Keep::kSummary
              : e.pinned || IsSystem(e.message) ? Keep::kAlways
                                                : Keep::kTurn;
  }

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
  int64_t fixed = 0, total = 0;
  for (const Message& m : new_messages) fixed += count(m);
  for (size_t i = 0; i < n; ++i) {
    if (keep[i] == Keep::kAlways) {
      fixed += tokens[i];
    } else {
      total += tokens[i];
    }
  }
  total += fixed;
  if (fixed > options.budget_tokens) {
    return WithErrorCode(
        InvalidFieldError(
            "messages",
            absl::StrCat("the new messages with the conversation's system and pinned messages "
                         "need ",
                         fixed, " tokens, more than the ", options.budget_tokens,
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
  while (total > options.budget_tokens && dropped_units < units) {
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
  for (size_t i = 0; i < n && total > options.budget_tokens; ++i) {
    if (keep[i] == Keep::kSummary) {
      dropped[i] = true;
      total -= tokens[i];
    }
  }

  WindowResult out;
  out.messages.reserve(n + new_messages.size());
  for (size_t i = 0; i < n; ++i) {
    if (dropped[i]) {
      out.dropped.push_back(i);
    } else {
      out.messages.push_back(history[i].message);
    }
  }
  out.messages.insert(out.messages.end(), new_messages.begin(), new_messages.end());
  out.tokens = total;
  return out;
}

}  // namespace modeenvoy
