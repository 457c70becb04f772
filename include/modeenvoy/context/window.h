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
// Counting follows the tokenizer's chat rules (tokenizer/chat_tokens.h). Per-message counts
// are cached by a hash of (encoding, message), so a long session costs the tokens of its
// new text, not of its whole history:
//   modeenvoy::MessageTokenCache cache({});                 // shared, thread-safe
//   absl::StatusOr<modeenvoy::WindowResult> w = modeenvoy::FitContext(
//       record.history, new_messages, *encoding,
//       {.budget_tokens = 128000 - 4096}, &cache);
//   request.messages = std::move(w->messages);
#ifndef MODEENVOY_CONTEXT_WINDOW_H_
#define MODEENVOY_CONTEXT_WINDOW_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy {

struct MessageTokenCacheOptions {
  // Entries kept (least recently used evicted beyond it).
  size_t max_entries = 1 << 20;
};

// Token counts of single messages, keyed by a 128-bit hash of the encoding name and the
// message's content. Thread safety: thread-safe.
class MODEENVOY_EXPORT MessageTokenCache {
 public:
  explicit MessageTokenCache(const MessageTokenCacheOptions& options);
  ~MessageTokenCache();
  MessageTokenCache(const MessageTokenCache&) = delete;
  MessageTokenCache& operator=(const MessageTokenCache&) = delete;

  // Tokens `message` costs in a chat request counted with `encoding` (its share of the
  // chat rules: per-message overhead included, reply priming excluded).
  int64_t Count(const Encoding& encoding, const Message& message);

  size_t size() const;
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  class Impl;
  Impl* impl_;
};

struct WindowOptions {
  // Tokens the fitted messages may use: the model's context window minus the reserved
  // output tokens minus what the request spends outside messages (tools, reply priming).
  int64_t budget_tokens = 0;
};

struct WindowResult {
  // The fitted history followed by the new messages.
  std::vector<Message> messages;
  // Indices into the history of the entries left out, ascending (what a summarizer folds).
  std::vector<size_t> dropped;
  // Tokens of `messages` by the cache's counts.
  int64_t tokens = 0;
};

// Fits `history` + `new_messages` into options.budget_tokens (rules in the file comment).
// `cache` may be null (every message counted afresh).
// Errors: kInvalidArgument (code context_length_exceeded) when the new messages, system
// messages and pinned entries alone exceed the budget.
MODEENVOY_EXPORT absl::StatusOr<WindowResult> FitContext(const std::vector<HistoryEntry>& history,
                                                         const std::vector<Message>& new_messages,
                                                         const Encoding& encoding,
                                                         const WindowOptions& options,
                                                         MessageTokenCache* cache);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_WINDOW_H_
