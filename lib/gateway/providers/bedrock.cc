// lib/gateway/providers/bedrock.cc: the "bedrock" provider type's host side: AWS
// credentials and region from the entry or the environment, and SigV4 signing of every
// upstream request (or a Bedrock API key as a bearer token). The wire translation is the
// protocol dialect "bedrock"; this file only resolves credentials and signs.
#include <algorithm>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sigv4.h"

namespace modeenvoy::gateway_internal {
namespace {

using core_internal::Json;
using core_internal::ObjectReader;

// Bedrock Runtime's SigV4 signing name (the endpoint host says bedrock-runtime).
constexpr std::string_view kSigningService = "bedrock";

bool SameName(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(core_internal::ToAbsl(a), core_internal::ToAbsl(b));
}

void RemoveHeader(std::string_view name, HttpHeaders* headers) {
  std::erase_if(*headers, [&](const auto& h) { return SameName(h.first, name); });
}

// The wrapped provider, plus SigV4 in Sign() or a bearer token on every request.
class AwsAuthProvider final : public ProviderDialect {
 public:
  AwsAuthProvider(std::unique_ptr<ProviderDialect> inner, BedrockAuth auth, const Clock* clock)
      : inner_(std::move(inner)), auth_(std::move(auth)), clock_(clock) {}

  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                            UpstreamRequest* out) const override {
    MODEENVOY_RETURN_IF_ERROR(inner_->BuildRequest(chat, call, out));
    if (!auth_.bearer_token.empty()) {
      RemoveHeader("authorization", &out->headers);
      out->headers.emplace_back("authorization", absl::StrCat("Bearer ", auth_.bearer_token));
    }
    return absl::OkStatus();
  }

  absl::Status BuildEmbeddingsRequest(const EmbeddingsRequest& request, const ProviderCall& call,
                                      UpstreamRequest* out) const override {
    MODEENVOY_RETURN_IF_ERROR(inner_->BuildEmbeddingsRequest(request, call, out));
    if (!auth_.bearer_token.empty()) {
      RemoveHeader("authorization", &out->headers);
      out->headers.emplace_back("authorization", absl::StrCat("Bearer ", auth_.bearer_token));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<EmbeddingsResponse> TranslateEmbeddingsResponse(
      const EmbeddingsRequest& request, const ProviderCall& call,
      std::string_view body) const override {
    return inner_->TranslateEmbeddingsResponse(request, call, body);
  }

  // Last step before sending, after every filter's header edit: what is signed is what is
  // sent. A retry signs again with the time of that attempt.
  absl::Status Sign(UpstreamRequest* request) const override {
    MODEENVOY_RETURN_IF_ERROR(inner_->Sign(request));
    if (!auth_.bearer_token.empty()) return absl::OkStatus();
    for (std::string_view name : {"authorization", "x-amz-date", "x-amz-security-token"}) {
      RemoveHeader(name, &request->headers);
    }
    absl::StatusOr<SigV4Signature> signature =
        SignSigV4({.method = request->method, .url = request->url,
                   .headers = &request->headers, .body = request->body},
                  auth_.credentials,
                  {.region = auth_.region, .service = kSigningService, .time = clock_->Now()});
    if (!signature.ok()) {
      return absl::Status(signature.status().code(),
                          absl::StrCat("bedrock: signing failed: ", signature.status().message()));
    }
    for (auto& header : signature->headers) request->headers.push_back(std::move(header));
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override { return inner_->ResponseFraming(stream); }
  absl::Status TranslateResponse(std::string* body) const override {
    return inner_->TranslateResponse(body);
  }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return inner_->NewStreamTranslator();
  }
  absl::Status TranslateError(int http_status, const HttpHeaders& headers,
                              std::string_view body) const override {
    return inner_->TranslateError(http_status, headers, body);
  }

 private:
  const std::unique_ptr<ProviderDialect> inner_;
  const BedrockAuth auth_;
  const Clock* const clock_;
};

std::optional<std::string> Env(const BuildContext& context, std::string_view name) {
  std::optional<std::string> value = (*context.env_lookup)(name);
  if (value.has_value() && value->empty()) return std::nullopt;
  return value;
}

// `key` or `key_env` (naming an environment variable); nullopt when neither is set.
absl::StatusOr<std::optional<std::string>> Setting(const ObjectReader& r, std::string_view key,
                                                   const BuildContext& context) {
  const std::string env_key = absl::StrCat(core_internal::ToAbsl(key), "_env");
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> value, r.OptionalString(key));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> env_name, r.OptionalString(env_key));
  if (value.has_value() && env_name.has_value()) {
    return InvalidFieldError(r.PathOf(env_key),
                             absl::StrFormat("cannot be combined with %s", key));
  }
  if (!env_name.has_value()) return value;
  std::optional<std::string> from_env = Env(context, *env_name);
  if (!from_env.has_value()) {
    return InvalidFieldError(r.PathOf(env_key), absl::StrFormat("environment variable %s is "
                                                                "not set or empty",
                                                                *env_name));
  }
  return from_env;
}

}  // namespace

absl::StatusOr<BedrockSettings> ReadBedrockSettings(const ProviderConfig& common,
                                                    std::string_view options_json,
                                                    const BuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json options, core_internal::ParseStrictJson(
                                               options_json.empty() ? "{}" : options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(options, ""));
  BedrockSettings out;

  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> region, Setting(r, "region", context));
  if (!region.has_value()) region = Env(context, "AWS_REGION");
  if (!region.has_value()) region = Env(context, "AWS_DEFAULT_REGION");
  out.auth.region = region.value_or("");

  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key_id,
                             Setting(r, "access_key_id", context));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> secret,
                             Setting(r, "secret_access_key", context));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> token,
                             Setting(r, "session_token", context));
  const bool configured = key_id.has_value() || secret.has_value() || token.has_value();
  if (configured) {
    if (!common.api_key.empty()) {
      return InvalidFieldError(key_id.has_value()   ? "access_key_id"
                               : secret.has_value() ? "secret_access_key"
                                                    : "session_token",
                               "cannot be combined with api_key (a Bedrock API key)");
    }
    if (!key_id.has_value()) return InvalidFieldError("access_key_id", "is required");
    if (!secret.has_value()) return InvalidFieldError("secret_access_key", "is required");
    out.auth.credentials = {*key_id, *secret, token.value_or("")};
  } else if (!common.api_key.empty()) {
    out.auth.bearer_token = common.api_key;
  } else if (std::optional<std::string> env_key = Env(context, "AWS_ACCESS_KEY_ID")) {
    std::optional<std::string> env_secret = Env(context, "AWS_SECRET_ACCESS_KEY");
    if (!env_secret.has_value()) {
      return InvalidFieldError("secret_access_key",
                               "is required (AWS_ACCESS_KEY_ID is set, "
                               "AWS_SECRET_ACCESS_KEY is not)");
    }
    out.auth.credentials = {*env_key, *env_secret,
                            Env(context, "AWS_SESSION_TOKEN").value_or("")};
  } else if (std::optional<std::string> bearer = Env(context, "AWS_BEARER_TOKEN_BEDROCK")) {
    out.auth.bearer_token = *bearer;
  } else {
    return InvalidFieldError(
        "access_key_id",
        "no AWS credentials: set access_key_id and secret_access_key (or their *_env), "
        "api_key, or the environment's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  }

  // SigV4 signs for a region; the dialect's public endpoint names one. Only a bearer token
  // sent to a configured base_url (a gateway, the emulator) goes without.
  if (out.auth.region.empty() && (out.auth.bearer_token.empty() || common.base_url.empty())) {
    return InvalidFieldError("region", "is required (or set AWS_REGION / AWS_DEFAULT_REGION)");
  }

  // What the dialect reads: every other key, plus the resolved region.
  Json dialect_options = Json::object();
  for (const auto& [key, value] : options.items()) {
    static constexpr std::string_view kOurs[] = {
        "region", "region_env", "access_key_id", "access_key_id_env", "secret_access_key",
        "secret_access_key_env", "session_token", "session_token_env"};
    if (std::find(std::begin(kOurs), std::end(kOurs), key) == std::end(kOurs)) {
      dialect_options[key] = value;
    }
  }
  if (!out.auth.region.empty()) dialect_options["region"] = out.auth.region;
  out.dialect_options_json = dialect_options.dump();
  return out;
}

absl::StatusOr<std::unique_ptr<ProviderDialect>> WrapWithAwsAuth(
    const ProviderConfig& common, std::unique_ptr<Dialect> dialect, BedrockAuth auth,
    const Clock* clock) {
  // The API key never goes into the dialect's own key header: bearer auth is ours.
  ProviderConfig without_key = common;
  without_key.api_key.clear();
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<ProviderDialect> inner,
                             WrapDialect(without_key, std::move(dialect)));
  return std::make_unique<AwsAuthProvider>(std::move(inner), std::move(auth),
                                           clock != nullptr ? clock : &SystemClock());
}

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildBedrockProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(BedrockSettings settings,
                             ReadBedrockSettings(common, options_json, context));
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Dialect> dialect,
                             NewDialect("bedrock", settings.dialect_options_json));
  return WrapWithAwsAuth(common, std::move(dialect), std::move(settings.auth),
                         &context.services->clock());
}

}  // namespace modeenvoy::gateway_internal
