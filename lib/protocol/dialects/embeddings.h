// lib/protocol/dialects/embeddings.h: each provider's embeddings API, mapped to and from
// the unified OpenAI /v1/embeddings model (private). The dialect classes' Encode/Decode-
// EmbeddingsRequest/Response overrides call these; docs/providers.md ("Embeddings") has the
// field-by-field table.
//
// Common rules: `model` is the provider's model name (DialectCall::model, else
// request.model). encoding_format never reaches a provider that cannot return base64: the
// caller encodes the float32 vectors itself (SerializeEmbeddingsResponse). What a provider
// cannot express is kInvalidArgument naming the unified field (token-id input, `user`,
// an unknown member), never a silent drop. A decoded response has one embedding per input
// in input order (else kInvalidArgument naming the provider's member), the provider's
// token count as usage when it reports one, and no usage when it reports none (the gateway
// then counts and marks it, gateway/usage.h).
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_EMBEDDINGS_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_EMBEDDINGS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/embeddings.h"

namespace modeenvoy::protocol_internal {

// The model a call names: call.model, else request.model.
inline std::string_view EmbeddingsModel(const EmbeddingsRequest& request,
                                        const DialectCall& call) {
  return call.model.empty() ? std::string_view(request.model) : call.model;
}

// OpenAI and its family (openai, azure_openai): the unified body itself with the model
// replaced, to `target`; unknown members and encoding_format pass through.
absl::Status EncodeOpenAiEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    std::string target, WireRequest* out);
absl::StatusOr<EmbeddingsResponse> DecodeOpenAiEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request);

// Gemini API: POST /models/{m}:batchEmbedContents. Member `task_type` (e.g.
// "RETRIEVAL_DOCUMENT") becomes every request's taskType; `dimensions` outputDimensionality.
absl::Status EncodeGeminiEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out);
absl::StatusOr<EmbeddingsResponse> DecodeGeminiEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model);

// Bedrock InvokeModel (POST /model/{id}/invoke), by model id: amazon.titan-embed-* (one
// inputText per call: more than one input is a 400 naming `input`) or cohere.embed-*
// ({texts, input_type}); other ids are a 400 naming `model`.
absl::Status EncodeBedrockEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                     WireRequest* out);
absl::StatusOr<EmbeddingsResponse> DecodeBedrockEmbeddings(std::string_view body,
                                                           const EmbeddingsRequest& request,
                                                           std::string_view model);

// Cohere v2: POST /v2/embed {model, texts, input_type (member `input_type`, default
// "search_document"), embedding_types ["float"], output_dimension}.
absl::Status EncodeCohereEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out);
absl::StatusOr<EmbeddingsResponse> DecodeCohereEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model);

// Ollama: POST /api/embed {model, input, dimensions}; members `truncate`, `keep_alive` and
// `options` pass through.
absl::Status EncodeOllamaEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out);
absl::StatusOr<EmbeddingsResponse> DecodeOllamaEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_EMBEDDINGS_H_
