// include/modeenvoy/tokenizer/chat_tokens.h: prompt tokens of a whole chat request, before
// the call, following OpenAI's documented counting rules.
//   absl::StatusOr<modeenvoy::ChatTokenCount> n = modeenvoy::CountChatTokens(request);
//   if (n.ok() && n->prompt_tokens > budget) ...   // admit or reject before the call
//
// Rules (OpenAI cookbook "How to count tokens with tiktoken" and its tools section):
//  - every message costs 3 tokens (4 for gpt-3.5-turbo-0301) plus the tokens of each of its
//    string fields (role, content, name, tool_call_id, refusal); a name costs 1 more (-1 on
//    gpt-3.5-turbo-0301); every request adds 3 for the reply priming
//    (<|start|>assistant<|message|>);
//  - content parts: text and refusal parts are counted as text; image parts follow OpenAI's
//    vision pricing (low detail: 85; high/auto: 85 + 170 per 512-px tile after scaling to fit
//    2048x2048 and then 768 px on the short side; gpt-4o-mini: 2833 + 5667 per tile) using
//    the size read from a data: URL's PNG/JPEG/GIF header, or options.assumed_image_* for
//    remote URLs; audio and file parts cannot be counted without decoding them and add 0.
//    Any image, audio or file part marks the result `estimated`;
//  - assistant tool calls count their function name and arguments text;
//  - tool definitions: 7 tokens per function for o200k models (10 for cl100k), then
//    "name:description", 3 for a non-empty properties object, 3 per property plus
//    "key:type:description", enum lists -3 + 3 per item plus the item, and 12 at the end.
// OpenAI does not publish the server-side formula; these rules reproduce its reported
// prompt_tokens for plain messages and approximate it for tools and images.
#ifndef MODEENVOY_TOKENIZER_CHAT_TOKENS_H_
#define MODEENVOY_TOKENIZER_CHAT_TOKENS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy {

struct ChatTokenCount {
  // Everything the request sends as input, including reply priming and tools.
  int64_t prompt_tokens = 0;
  // The part of prompt_tokens spent on tool definitions.
  int64_t tool_tokens = 0;
  // The part of prompt_tokens spent on images (estimated).
  int64_t image_tokens = 0;
  // True when images, audio or files were present, whose cost is an estimate.
  bool estimated = false;
};

struct ChatTokenOptions {
  // Model whose rules apply; empty means request.model.
  std::string model;
  // Size assumed for images given by remote URL (their bytes are never fetched).
  int assumed_image_width = 1024;
  int assumed_image_height = 1024;
};

// Counts `request` with `encoding`. Never fails on content: malformed tool parameter JSON is
// counted as plain text. Thread safety: thread-safe.
MODEENVOY_EXPORT ChatTokenCount CountChatTokens(const Encoding& encoding,
                                                const ChatRequest& request,
                                                const ChatTokenOptions& options = {});

// Tokens a request adds for the reply priming (<|start|>assistant<|message|>).
inline constexpr int64_t kReplyPrimingTokens = 3;

// One message's share of CountChatTokens: its per-message overhead and fields, without the
// reply priming and tools, so that for every request
//   CountChatTokens(enc, r, o).prompt_tokens ==
//       sum of CountMessageTokens(enc, m, o').prompt_tokens over r.messages
//       + kReplyPrimingTokens + CountChatTokens(enc, r, o).tool_tokens
// where o' is o with model set to the model CountChatTokens used. prompt_tokens is the
// message's count, image_tokens and estimated as for a request; tool_tokens is 0. An empty
// options.model applies the default rules (3 tokens per message, gpt-4o image pricing).
// Thread safety: thread-safe.
MODEENVOY_EXPORT ChatTokenCount CountMessageTokens(const Encoding& encoding,
                                                   const Message& message,
                                                   const ChatTokenOptions& options = {});

// The rules CountMessageTokens(encoding, m, options) applies, as an opaque key: two
// (encoding, options) pairs with equal keys give every message the same count. Model names
// sharing one rule set share a key (gpt-4o and gpt-4o-2024-08-06 do; gpt-3.5-turbo-0301 and
// gpt-4o-mini each have their own), so caches of per-message counts (context/window.h) key
// on it instead of the model name. Thread safety: thread-safe.
MODEENVOY_EXPORT std::string MessageCountingRules(const Encoding& encoding,
                                                  const ChatTokenOptions& options = {});

// Picks the encoding from the model (options.model, else request.model) and counts.
// Errors: kNotFound for a model without a known encoding; loading errors as GetEncoding.
MODEENVOY_EXPORT absl::StatusOr<ChatTokenCount> CountChatTokens(
    const ChatRequest& request, const ChatTokenOptions& options = {},
    const EncodingOptions& encoding_options = {});

}  // namespace modeenvoy

#endif  // MODEENVOY_TOKENIZER_CHAT_TOKENS_H_
