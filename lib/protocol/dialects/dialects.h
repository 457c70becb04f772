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
// "azure_openai": Azure OpenAI deployments and its v1 API (azure_openai.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewAzureOpenAiDialect(std::string_view options_json);
// "anthropic": the Anthropic Messages API (anthropic.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewAnthropicDialect(std::string_view options_json);
// "bedrock": Amazon Bedrock Runtime Converse / ConverseStream (bedrock.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewBedrockDialect(std::string_view options_json);
// "ollama": Ollama's native /api/chat, NDJSON streams (ollama.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewOllamaDialect(std::string_view options_json);
// "cohere": Cohere's v2 chat API, POST /v2/chat, SSE streams (cohere.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewCohereDialect(std::string_view options_json);
// "kserve": Triton / TorchServe / KServe models, Open Inference Protocol v2 or Triton's
// generate extension (kserve.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewKserveDialect(std::string_view options_json);
// "gemini" (Google AI Studio) and "vertex" (Vertex AI): generateContent (gemini.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewGeminiDialect(std::string_view options_json);
absl::StatusOr<std::unique_ptr<Dialect>> NewVertexDialect(std::string_view options_json);
// "openai_responses": OpenAI's Responses API, POST /v1/responses (openai_responses.cc).
absl::StatusOr<std::unique_ptr<Dialect>> NewOpenAiResponsesDialect(std::string_view options_json);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_DIALECTS_H_
