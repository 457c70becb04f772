// lib/anthropic_ingress/count_tokens.h: POST /v1/messages/count_tokens (private).
#ifndef MODEENVOY_LIB_ANTHROPIC_INGRESS_COUNT_TOKENS_H_
#define MODEENVOY_LIB_ANTHROPIC_INGRESS_COUNT_TOKENS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "lib/core/json_reader.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy::anthropic_ingress_internal {

// On a count the gateway made itself: "estimate" (the provider did not count).
inline constexpr char kTokenCountHeader[] = "x-modeenvoy-token-count";
// How it counted: "tokenizer" (the target model's tiktoken encoding, o200k_base for models
// tiktoken does not know) or "word_count" (no rank file could be loaded).
inline constexpr char kTokenCountMethodHeader[] = "x-modeenvoy-token-count-method";

// The prompt text Anthropic bills, as the emulator counts it: system text, each custom
// tool's name, description and input_schema (compact JSON, sorted keys), then per message
// its text, "image" per image or document, tool_use name and input (compact, sorted),
// tool_result text; pieces joined by "\n", empty ones skipped, thinking blocks not counted.
// `body` is a Messages (or count_tokens) request; members of the wrong type are skipped.
std::string CountedPromptText(const core_internal::Json& body);

struct TokenCount {
  int64_t tokens = 0;
  std::string_view method;  // "tokenizer" or "word_count"
};

// Tokens of CountedPromptText(body) with `model`'s encoding (o200k_base when tiktoken does
// not know the model); runs of non-space bytes when no encoding loads. The first call per
// encoding may read its rank file. Thread safety: thread-safe.
TokenCount CountPromptTokens(const core_internal::Json& body, std::string_view model);

// Runs of non-whitespace bytes in `text`.
int64_t CountWords(std::string_view text);

// The local endpoint's filter factory.
std::shared_ptr<const FilterFactory> CountTokensEndpoint();

}  // namespace modeenvoy::anthropic_ingress_internal

#endif  // MODEENVOY_LIB_ANTHROPIC_INGRESS_COUNT_TOKENS_H_
