// lib/protocol/dialects/dialects.h: factories of the built-in dialects (private). One file
// per dialect in this folder; adding one is its file, a line here and a line in the table
// of lib/protocol/dialect.cc.
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_DIALECTS_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_DIALECTS_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/protocol/dialect.h"

namespace modeenvoy::protocol_internal {

// "openai": OpenAI Chat Completions and the OpenAI-compatible family (openai.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewOpenAiDialect(std::string_view options_json);
// "bedrock": Amazon Bedrock Runtime Converse / ConverseStream (bedrock.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewBedrockDialect(std::string_view options_json);
// "gemini" (Google AI Studio) and "vertex" (Vertex AI): generateContent (gemini.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewGeminiDialect(std::string_view options_json);
absl::StatusOr<std::unique_ptr<Dialect>> NewVertexDialect(std::string_view options_json);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_DIALECTS_H_
