// include/modeenvoy/context/window.h: fitting a conversation into a model's context window.
//
// A provider request is built as history + the client's new messages, fitted to the
// model's context window minus the tokens reserved for the reply:
//  - the new messages are always kept (when they alone do not fit: kInvalidArgument,
//    code context_length_exceeded, naming `messages`);
//  - system messages and pinned entries are always kept, in their places;
//  - the oldest turns are dropped first, a whole turn at a time, and an assistant tool
//    call is never separated from the tool results answering it;
//  - a summary entry (HistoryEntry::summary) is kept while it fits, as the oldest history.
// Counting follows the tokenizer's chat rules (tokenizer/chat_tokens.h) of the model in
// WindowOptions::counting. Per-message counts are cached by a hash of (counting rules,
// message), so a long session costs the tokens of its new text, not of its whole history;
// a stored history also carries its entries' counts (HistoryTokenCounts, from the store's
// StoredContext), so windowing it again sums integers and finds the cut by binary search
// instead of hashing every message:
//   modeenvoy::MessageTokenCache cache({});                 // shared, thread-safe
//   absl::StatusOr<modeenvoy::WindowResult> w = modeenvoy::FitContext(
//       stored.record->history, new_messages, *encoding,
//       {.budget_tokens = 128000 - 4096, .counting = {.model = "gpt-4o"},
//        .history_counts = stored.token_counts.get()}, &cache);
//   request.messages = std::move(w->messages);
#ifndef MODEENVOY_CONTEXT_WINDOW_H_
#define MODEENVOY_CONTEXT_WINDOW_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy {

struct MessageTokenCacheOptions {
  // Entries kept (least recently used evicted beyond it).
  size_t max_entries = 1 << 20;
};

// Token counts of single messages, keyed by a 128-bit hash of the counting rules
// (MessageCountingRules: the encoding's name and the model's rules) and the message's
// content. Thread safety: thread-safe.
class MODEENVOY_EXPORT MessageTokenCache {
 public:
  explicit MessageTokenCache(const MessageTokenCacheOptions& options);
  ~MessageTokenCache();
  MessageTokenCache(const MessageTokenCache&) = delete;
  MessageTokenCache& operator=(const MessageTokenCache&) = delete;

  // Tokens `message` costs in a chat request counted with `encoding` under the rules of
  // options.model (its share of the chat rules, CountMessageTokens: per-message overhead
  // included, reply priming excluded). Contract change (ctx-core2): `options` was missing,
  // so per-model rules (gpt-3.5-turbo-0301's overhead, image pricing) were ignored.
  int64_t Count(const Encoding& encoding, const Message& message,
                const ChatTokenOptions& options = {});
  // As above with `rules` == MessageCountingRules(encoding, options), computed once by a
  // caller counting many messages.
  int64_t Count(const Encoding& encoding, const Message& message,
                const ChatTokenOptions& options, std::string_view rules);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  class Impl;
  Impl* impl_;
};

// The token counts of one history's entries, kept beside it (a memory store keeps one per
// stored session: StoredContext::token_counts) so that windowing the history again costs
// its new entries only. Per counting rules it holds each entry's count, computed the first
// time a window needs it (through the MessageTokenCache, so a message already counted
// elsewhere is not tokenized again), and running sums by which FitContext finds the cut.
// It describes the history it was first used with and that history extended by appends:
// the store shares it between the versions an Append derives from one another and starts a
// new one on Replace. Thread safety: thread-safe (FitContext calls on one object serialize).
class MODEENVOY_EXPORT HistoryTokenCounts {
 public:
  HistoryTokenCounts();
  ~HistoryTokenCounts();
  HistoryTokenCounts(const HistoryTokenCounts&) = delete;
  HistoryTokenCounts& operator=(const HistoryTokenCounts&) = delete;

  // The counts kept so far under `rules` (MessageCountingRules), one per history entry from
  // the first; empty when no window used these rules yet. For tests and diagnostics.
  std::vector<int64_t> Counts(std::string_view rules) const;

 private:
  friend class HistoryTokenCountsAccess;
  class Impl;
  Impl* impl_;
};

struct WindowOptions {
  // Tokens the fitted messages may use: the model's context window minus the reserved
  // output tokens minus what the request spends outside messages (tools, reply priming).
  int64_t budget_tokens = 0;
  // Whose counting rules apply: model (per-model overheads and image pricing) and the size
  // assumed for remote images, as for CountChatTokens. Empty model: the default rules.
  ChatTokenOptions counting = {};
  // Counts kept with `history` (StoredContext::token_counts), or null. REQUIRES: describes
  // `history` (came with it from the store, or was only ever used with this history and
  // earlier versions of it that `history` extends by appended entries).
  HistoryTokenCounts* history_counts = nullptr;
  // False: WindowResult::messages is left empty and the caller reads the window from
  // `history` without the dropped entries, then the new messages, when it serializes the
  // provider request (no copy of the messages).
  bool copy_messages = true;
};

struct WindowResult {
  // The fitted history followed by the new messages (empty when !copy_messages).
  std::vector<Message> messages;
  // Indices into the history of the entries left out, ascending (what a summarizer folds).
  std::vector<size_t> dropped;
  // Tokens of `messages` by the cache's counts.
  int64_t tokens = 0;
};

// Fits `history` + `new_messages` into options.budget_tokens (rules in the file comment).
// `cache` may be null (every message not in options.history_counts counted afresh). With
// history_counts, a history whose entries were counted before costs O(new messages + log
// entries) plus the list of dropped indices (tool results among the new messages answering
// calls the cut reaches, summaries to drop, and errors take the full O(entries) pass, still
// without recounting).
// Errors: kInvalidArgument (code context_length_exceeded) when the new messages, system
// messages and pinned entries alone exceed the budget.
MODEENVOY_EXPORT absl::StatusOr<WindowResult> FitContext(const std::vector<HistoryEntry>& history,
                                                         const std::vector<Message>& new_messages,
                                                         const Encoding& encoding,
                                                         const WindowOptions& options,
                                                         MessageTokenCache* cache);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_WINDOW_H_
