// lib/protocol/dialects/unified_parts.h: what the ingress encoders (anthropic.cc,
// openai_responses.cc) read the same way from a unified answer (private).
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_PARTS_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_PARTS_H_

#include <optional>
#include <string>

#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::protocol_internal {

// The reasoning text a unified message or delta carries ("reasoning_content", or the
// "reasoning" of some OpenAI-compatible servers: Groq, newer vLLM), decoded; nullopt when
// there is none (defined in openai_responses.cc).
std::optional<std::string> UnifiedReasoningText(const ExtraFields& extra);

// A stream's chunk that names nothing and carries nothing (Azure's prompt-filter chunk,
// first in its streams, with an empty id and model): an encoder starts its message at the
// first chunk that is not one, so the message gets a real id and model.
inline bool IsUnnamedEmptyChunk(const ChatCompletionChunk& chunk) {
  return chunk.choices.empty() && !chunk.usage.has_value() && chunk.id.empty() &&
         chunk.model.empty();
}

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_PARTS_H_
