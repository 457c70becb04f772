// lib/protocol/dialects/thinking.h: the Anthropic-shaped "thinking" request member
// ({"type":"enabled","budget_tokens":N}, {"type":"disabled"}, {"type":"adaptive"}) that
// Claude Code and the other Anthropic-SDK clients send, and that the unified request keeps
// as an extra (the Messages ingress puts it there; Chat Completions clients may send it as
// LiteLLM takes it). Read once here for every encoder that maps it to its provider's own
// reasoning setting: gemini's thinkingConfig, ollama's think, cohere's thinking, the OpenAI
// family's reasoning_effort (private).
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_THINKING_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_THINKING_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::protocol_internal {

struct ThinkingSetting {
  enum class Type { kEnabled, kDisabled, kAdaptive };
  Type type = Type::kEnabled;
  int64_t budget_tokens = 0;  // kEnabled: >= 1; else 0
};

// The "thinking" member of `extra`, read; nullopt when there is none. Members other than
// type and budget_tokens are ignored (a disabled or adaptive budget_tokens too).
// Errors: kInvalidArgument naming `thinking` (not an object), `thinking.type` (absent or not
// enabled, disabled, adaptive) or `thinking.budget_tokens` (enabled without an integer >= 1).
absl::StatusOr<std::optional<ThinkingSetting>> ReadThinking(const ExtraFields& extra);

// The OpenAI reasoning_effort a setting stands for: enabled by budget (< 4096 "low",
// < 16384 "medium", else "high"), adaptive "medium", disabled nullopt (not "none", which
// most reasoning models refuse).
std::optional<std::string_view> ThinkingEffort(const ThinkingSetting& thinking);

// True for a Messages member that only Anthropic's server acts on and that other providers
// can go without: context_management (context editing: clearing old tool results or thinking
// blocks server-side; Claude Code sends {"edits":[{"type":"clear_thinking_20251015",...}]}
// on every request). Encoders of providers without it leave it out rather than refuse the
// request: the model then sees the whole conversation the client sent.
inline bool IsAnthropicOnlyMember(std::string_view name) { return name == "context_management"; }

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_THINKING_H_
