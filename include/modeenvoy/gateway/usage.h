// include/modeenvoy/gateway/usage.h: estimating usage when a provider's stream ends without
// reporting it (a server that ignores stream_options, a stream cut short).
//
// The gateway wants usage whenever something reads it (a filter's OnResponseComplete, a
// client that asked): OpenAI-compatible providers are then asked for it
// (stream_options.include_usage) and every dialect reports what its provider sent. When a
// stream still ends without usage, the engine counts it itself with the host's estimator:
// prompt tokens from the request, completion tokens from the text, reasoning and tool-call
// arguments the stream carried. Such a usage is marked: ResponseOutcome::usage_estimated,
// and in the usage object the extra members "estimated": true and "estimation_method"
// (the estimator's method(), e.g. "tokenizer" or "word_count").
// The gateway library does not depend on the tokenizer; a host that links it wires one in:
//   class TokenizerEstimator : public modeenvoy::UsageEstimator { ... CountChatTokens ... };
//   options.usage_estimator = std::make_shared<TokenizerEstimator>();
// Without one the engine falls back to WordCountUsageEstimator() (a rough count, marked
// "word_count").
// Embeddings whose provider reports no token count (Gemini; Cohere on Bedrock without its
// X-Amzn-Bedrock-Input-Token-Count header) are counted
// the same way: CompletionTokens() of each input text (token-id inputs: their number of
// ids), marked as above in the response's usage and in ResponseOutcome.
#ifndef MODEENVOY_GATEWAY_USAGE_H_
#define MODEENVOY_GATEWAY_USAGE_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {

// Thread safety: implementations must be thread-safe (one is shared by every loop thread).
// Called on the loop thread at a stream's end: keep it fast, never block.
class MODEENVOY_EXPORT UsageEstimator {
 public:
  virtual ~UsageEstimator() = default;
  // How counts are made, written to the usage as "estimation_method".
  virtual std::string_view method() const = 0;
  // Tokens of the whole request as the provider would count its prompt.
  virtual int64_t PromptTokens(const ChatRequest& chat, std::string_view model) const = 0;
  // Tokens of generated `text` (content, reasoning and tool-call arguments, concatenated).
  virtual int64_t CompletionTokens(std::string_view text, std::string_view model) const = 0;
};

// Counts words (runs of non-space bytes) as tokens, plus 4 per message for the prompt:
// no tokenizer needed, usually low for English and much lower for code or CJK text.
// method() is "word_count".
MODEENVOY_EXPORT std::shared_ptr<const UsageEstimator> WordCountUsageEstimator();

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_USAGE_H_
