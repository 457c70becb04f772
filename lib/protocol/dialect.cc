// lib/protocol/dialect.cc: the table of built-in dialects.
#include "modeenvoy/protocol/dialect.h"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/protocol/dialects/dialects.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

struct Entry {
  std::string_view name;
  DialectFactory factory;
};

// Registration order is the order DialectNames() lists.
constexpr Entry kDialects[] = {
    {"openai", protocol_internal::NewOpenAiDialect},
    {"azure_openai", protocol_internal::NewAzureOpenAiDialect},
    {"anthropic", protocol_internal::NewAnthropicDialect},
    {"gemini", protocol_internal::NewGeminiDialect},
    {"vertex", protocol_internal::NewVertexDialect},
    {"bedrock", protocol_internal::NewBedrockDialect},
    {"ollama", protocol_internal::NewOllamaDialect},
    {"cohere", protocol_internal::NewCohereDialect},
    {"kserve", protocol_internal::NewKserveDialect},
    {"openai_responses", protocol_internal::NewOpenAiResponsesDialect},
};

}  // namespace

absl::Status Dialect::DecodeError(int http_status, std::string_view body) const {
  return StatusFromUpstreamError(http_status, body);
}

absl::Status Dialect::EncodeNativeRequest(std::string_view /*body*/, const DialectCall& /*call*/,
                                          WireRequest* /*out*/) const {
  return absl::UnimplementedError("native requests: not supported by " + std::string(name()));
}

absl::Status Dialect::EncodeEmbeddingsRequest(const EmbeddingsRequest& /*request*/,
                                              const DialectCall& /*call*/,
                                              WireRequest* /*out*/) const {
  return absl::UnimplementedError("embeddings: not supported by " + std::string(name()));
}

absl::StatusOr<EmbeddingsResponse> Dialect::DecodeEmbeddingsResponse(
    std::string_view /*body*/, const EmbeddingsRequest& /*request*/,
    const DialectCall& /*call*/) const {
  return absl::UnimplementedError("embeddings: not supported by " + std::string(name()));
}

size_t Dialect::MaxEmbeddingInputsPerCall(const EmbeddingsRequest& /*request*/,
                                          const DialectCall& /*call*/) const {
  return kMaxEmbeddingInputs;
}

std::vector<std::string_view> DialectNames() {
  std::vector<std::string_view> names;
  for (const Entry& entry : kDialects) names.push_back(entry.name);
  return names;
}

absl::StatusOr<std::unique_ptr<Dialect>> NewDialect(std::string_view name,
                                                    std::string_view options_json) {
  for (const Entry& entry : kDialects) {
    if (entry.name == name) return entry.factory(options_json);
  }
  std::string known;
  for (const Entry& entry : kDialects) {
    if (!known.empty()) known += ", ";
    known += entry.name;
  }
  return absl::NotFoundError("unknown dialect \"" + std::string(name) + "\" (known: " + known +
                             ")");
}

}  // namespace modeenvoy
