// lib/gateway/provider.cc: the default error mapping of provider dialects.
#include "modeenvoy/gateway/provider.h"

#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {

namespace gateway_internal {

absl::Status KeepBackoffHeaders(absl::Status status, const HttpHeaders& upstream_headers) {
  // What a client needs to back off correctly survives the translation.
  HttpHeaders keep;
  for (const auto& [name, value] : upstream_headers) {
    absl::string_view n = core_internal::ToAbsl(name);
    if (absl::EqualsIgnoreCase(n, "retry-after") || absl::EqualsIgnoreCase(n, "retry-after-ms") ||
        absl::StartsWithIgnoreCase(n, "x-ratelimit-")) {
      keep.emplace_back(name, value);
    }
  }
  return keep.empty() ? status : WithErrorHeaders(std::move(status), keep);
}

}  // namespace gateway_internal

absl::Status ProviderDialect::TranslateError(int http_status, const HttpHeaders& headers,
                                             std::string_view body) const {
  return gateway_internal::KeepBackoffHeaders(StatusFromUpstreamError(http_status, body), headers);
}

absl::Status ProviderDialect::BuildEmbeddingsRequest(const EmbeddingsRequest& /*request*/,
                                                     const ProviderCall& /*call*/,
                                                     UpstreamRequest* /*out*/) const {
  return absl::UnimplementedError("embeddings: not supported by this provider type");
}

absl::StatusOr<EmbeddingsResponse> ProviderDialect::TranslateEmbeddingsResponse(
    const EmbeddingsRequest& /*request*/, const ProviderCall& /*call*/,
    const HttpHeaders& /*headers*/, std::string_view /*body*/) const {
  return absl::UnimplementedError("embeddings: not supported by this provider type");
}

absl::StatusOr<bool> ProviderDialect::BuildNativeRequest(std::string_view /*dialect*/,
                                                         std::string_view /*body*/,
                                                         const ProviderCall& /*call*/,
                                                         UpstreamRequest* /*out*/) const {
  return false;
}

size_t ProviderDialect::MaxEmbeddingInputsPerCall(const EmbeddingsRequest& /*request*/,
                                                  const ProviderCall& /*call*/) const {
  return kMaxEmbeddingInputs;
}

}  // namespace modeenvoy
