// lib/gateway/providers/providers.h: the provider types built on the protocol dialects
// (private). Every dialect of protocol/dialect.h is a provider type through
// BuildDialectProvider; a dialect that needs the host's help (credentials from the
// environment, a token file, request signing) has its own builder file here that ends in
// WrapDialect, and a registration in registry.cc.
#ifndef MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
#define MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/dialect.h"

namespace modeenvoy::gateway_internal {

// The protocol dialect named context.type, with `options_json` as its options.
absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildDialectProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context);

// `dialect` as a provider: URL = base_url (or the dialect's default_base_url(); an error
// naming "base_url" when there is neither) + the dialect's target; the API key in the
// dialect's header; then the entry's headers.
absl::StatusOr<std::unique_ptr<ProviderDialect>> WrapDialect(const ProviderConfig& common,
                                                             std::unique_ptr<Dialect> dialect);

// "gemini" and "vertex" (vertex.cc): RetryInfo as retry-after; vertex's token_file.
absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildGeminiProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context);
absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildVertexProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context);

// `status` with the upstream's back-off headers (retry-after, retry-after-ms,
// x-ratelimit-*) attached as error headers, so they reach the client.
absl::Status KeepBackoffHeaders(absl::Status status, const HttpHeaders& upstream_headers);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
