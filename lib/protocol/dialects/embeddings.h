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

// A Bedrock model id (or ARN, inference profile id) as one URL path segment: RFC 3986
// unreserved characters stay, everything else (':' and '/' included) is percent-encoded, as
// the AWS SDKs encode the modelId label. Converse (bedrock.cc) and InvokeModel use it.
std::string EncodeBedrockModelId(std::string_view model_id);

// Bedrock InvokeModel (POST /model/{id}/invoke), by model id: amazon.titan-embed-* (one
// inputText per call: more than one input is a 400 naming `input`; the gateway splits a
// batch first, BedrockEmbeddingInputsPerCall) or cohere.embed-* ({texts, input_type});
// other ids are a 400 naming `model`. The token count of a Cohere answer is only in the
// X-Amzn-Bedrock-Input-Token-Count response header, which the gateway's bedrock provider
// reads (lib/gateway/providers/bedrock.cc).
absl::Status EncodeBedrockEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                     WireRequest* out);
// Inputs per InvokeModel call: 1 for amazon.titan-embed-*, 96 for cohere.embed-* (Bedrock's
// Cohere limit), kMaxEmbeddingInputs for other ids (which EncodeBedrockEmbeddings refuses).
size_t BedrockEmbeddingInputsPerCall(std::string_view model);
absl::StatusOr<EmbeddingsResponse> DecodeBedrockEmbeddings(std::string_view body,
                                                           const EmbeddingsRequest& request,
                                                           std::string_view model);

// Gemini batchEmbedContents and Cohere v2 /v2/embed: most texts per call.
inline constexpr size_t kGeminiEmbeddingInputsPerCall = 100;
inline constexpr size_t kCohereEmbeddingInputsPerCall = 96;

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
