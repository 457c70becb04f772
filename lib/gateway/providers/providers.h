// lib/gateway/providers/providers.h: the provider types built on the protocol dialects
// (private). Every dialect of protocol/dialect.h is a provider type through
// BuildDialectProvider; a dialect that needs the host's help (credentials from the
// environment, a token file, request signing) has its own builder file here that ends in
// WrapDialect, and a registration in registry.cc (bedrock.cc: AWS credentials and SigV4).
#ifndef MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
#define MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/sigv4.h"

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

// --- bedrock.cc -------------------------------------------------------------------------
// How a bedrock provider authenticates: SigV4 with `credentials`, or, when bearer_token is
// set (a Bedrock API key), "authorization: Bearer <key>" and no signing.
struct BedrockAuth {
  std::string region;
  AwsCredentials credentials;
  std::string bearer_token;
};

struct BedrockSettings {
  BedrockAuth auth;
  std::string dialect_options_json;  // the entry's other keys plus the resolved "region"
};

// Reads a bedrock entry's options: `region` (or AWS_REGION, AWS_DEFAULT_REGION; required
// unless a bearer token goes to a configured base_url);
// `access_key_id`, `secret_access_key`, `session_token`, each also as `<key>_env` naming an
// environment variable; else the entry's api_key as a bearer token; else the environment's
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN; else
// AWS_BEARER_TOKEN_BEDROCK. Errors name the field, relative to the entry, never a value.
absl::StatusOr<BedrockSettings> ReadBedrockSettings(const ProviderConfig& common,
                                                    std::string_view options_json,
                                                    const BuildContext& context);

// `dialect` wrapped as WrapDialect does (the API key left out), then authenticated per
// `auth`; SigV4 runs in Sign() with `clock`'s time (null: the system clock). Any dialect
// works, which is how the tests exercise it before the "bedrock" dialect exists.
absl::StatusOr<std::unique_ptr<ProviderDialect>> WrapWithAwsAuth(
    const ProviderConfig& common, std::unique_ptr<Dialect> dialect, BedrockAuth auth,
    const Clock* clock);

// The "bedrock" provider type: ReadBedrockSettings, NewDialect("bedrock", ...),
// WrapWithAwsAuth with the Services clock. Registered only when the protocol component has
// a "bedrock" dialect.
absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildBedrockProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
