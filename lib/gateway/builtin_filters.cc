// lib/gateway/builtin_filters.cc: "api_key_auth" and "headers".
#include "lib/gateway/builtin_filters.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/core/sha256.h"
#include "modeenvoy/gateway/filter_hooks.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::gateway_internal {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;
using core_internal::ParseStrictJson;
using core_internal::ToAbsl;
using core_internal::ToStd;
using core_internal::ValidateHeader;

// ---------------------------------------------------------------------------------------
// api_key_auth

struct ApiKey {
  std::string name;
  std::string tier;  // "tier": the key's tier (metadata api_key.tier); empty when none
  std::shared_ptr<const ModelScope> scope;  // null: every model allowed
};

// Keyed by the SHA-256 digest of the key, never by the key itself: a lookup then compares
// digests of the presented key, so how long a rejection takes tells nothing about how
// much of a real key was guessed (a map keyed by the secret compares secret bytes).
using KeyTable = absl::flat_hash_map<std::string, ApiKey>;

std::string KeyDigest(std::string_view key) { return core_internal::Sha256Hex(key); }

// "sk-abc...wxyz" style, never enough of the key to be useful to someone reading logs.
std::string MaskKey(std::string_view key) {
  if (key.size() < 12) return "***";
  return absl::StrFormat("%s***%s", key.substr(0, 3), key.substr(key.size() - 4));
}

std::optional<std::string_view> PresentedKey(const HttpHeaders& headers) {
  if (std::optional<std::string_view> auth = FindHeader(headers, "authorization")) {
    absl::string_view v = absl::StripAsciiWhitespace(ToAbsl(*auth));
    constexpr absl::string_view kBearer = "bearer";
    if (v.size() > kBearer.size() && absl::StartsWithIgnoreCase(v, kBearer) &&
        (v[kBearer.size()] == ' ' || v[kBearer.size()] == '\t')) {
      absl::string_view token = absl::StripLeadingAsciiWhitespace(v.substr(kBearer.size()));
      if (!token.empty()) return ToStd(token);
    }
  }
  if (std::optional<std::string_view> key = FindHeader(headers, "x-api-key")) {
    absl::string_view v = absl::StripAsciiWhitespace(ToAbsl(*key));
    if (!v.empty()) return ToStd(v);
  }
  return std::nullopt;
}

class ApiKeyAuthFilter final : public Filter, public DeclaresResponseHooks {
 public:
  explicit ApiKeyAuthFilter(std::shared_ptr<const KeyTable> keys) : keys_(std::move(keys)) {}

  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& /*callbacks*/) override {
    std::optional<std::string_view> presented = PresentedKey(ctx.request.headers);
    if (!presented.has_value()) {
      return FilterResult::Error(WithErrorCode(
          absl::UnauthenticatedError(
              "You didn't provide an API key. You need to provide your API key in an "
              "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY) "
              "or in an x-api-key header."),
          "invalid_api_key"));
    }
    auto it = keys_->find(KeyDigest(*presented));
    if (it == keys_->end()) {
      return FilterResult::Error(WithErrorCode(
          absl::UnauthenticatedError(
              absl::StrFormat("Incorrect API key provided: %s.", MaskKey(*presented))),
          "invalid_api_key"));
    }
    const ApiKey& key = it->second;
    // Local endpoints that act on or list models check the scope themselves
    // (RequestContext::CheckModelAccess); every model-call operation names its model
    // (chat and embeddings alike) and is checked here.
    ctx.model_scope = key.scope;
    if (ctx.chat != nullptr || ctx.embeddings != nullptr) {
      if (absl::Status allowed = ctx.CheckModelAccess(ctx.model()); !allowed.ok()) {
        return FilterResult::Error(std::move(allowed));
      }
    }
    ctx.metadata["api_key.name"] = key.name;
    if (!key.tier.empty()) ctx.metadata["api_key.tier"] = key.tier;
    return FilterResult::Continue();
  }

  // Request phase only.
  uint32_t response_hooks() const override { return 0; }

 private:
  std::shared_ptr<const KeyTable> keys_;
};

absl::StatusOr<std::unique_ptr<FilterFactory>> BuildApiKeyAuth(
    std::string_view config_json, const BuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, ParseStrictJson(config_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(root.RejectUnknown({"keys"}));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* keys, root.OptionalArray("keys"));
  if (keys == nullptr) return InvalidFieldError("keys", "is required");
  if (keys->empty()) return InvalidFieldError("keys", "must not be empty");

  auto table = std::make_shared<KeyTable>();
  for (size_t i = 0; i < keys->size(); ++i) {
    std::string path = IndexPath("keys", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader entry, ObjectReader::Make((*keys)[i], path));
    MODEENVOY_RETURN_IF_ERROR(entry.RejectUnknown({"key", "key_env", "name", "models", "tier"}));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> literal, entry.OptionalString("key"));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> env, entry.OptionalString("key_env"));
    if (literal.has_value() == env.has_value()) {
      return InvalidFieldError(path, "exactly one of \"key\" or \"key_env\" is required");
    }
    std::string secret;
    if (literal.has_value()) {
      secret = std::move(*literal);
    } else {
      std::optional<std::string> value = (*context.env_lookup)(*env);
      if (!value.has_value() || value->empty()) {
        return InvalidFieldError(entry.PathOf("key_env"),
                                 absl::StrFormat("environment variable \"%s\" is not set", *env));
      }
      secret = std::move(*value);
    }
    ApiKey key;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> name, entry.OptionalString("name"));
    key.name = name.has_value() ? std::move(*name) : path;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> tier, entry.OptionalString("tier"));
    if (tier.has_value()) key.tier = std::move(*tier);
    MODEENVOY_ASSIGN_OR_RETURN(const Json* models, entry.OptionalArray("models"));
    if (models != nullptr) {
      auto scope = std::make_shared<ModelScope>();
      scope->principal = absl::StrFormat("API key \"%s\"", key.name);
      for (size_t m = 0; m < models->size(); ++m) {
        const Json& model = (*models)[m];
        std::string model_path = IndexPath(entry.PathOf("models"), m);
        if (!model.is_string()) return InvalidFieldError(model_path, "must be a string");
        if (model.get_ref<const std::string&>().empty()) {
          return InvalidFieldError(model_path, "must not be empty");
        }
        scope->models.insert(model.get<std::string>());
      }
      key.scope = std::move(scope);
    }
    if (!table->try_emplace(KeyDigest(secret), std::move(key)).second) {
      return InvalidFieldError(path, "duplicate key");
    }
  }
  return MakeFilterFactory(ApiKeyAuthFilter(std::move(table)));
}

// ---------------------------------------------------------------------------------------
// headers

struct HeaderRules {
  std::vector<HeaderMutation> request;   // appended to RequestContext::upstream_header_mutations
  std::vector<HeaderMutation> response;  // applied to the client response headers
};

class HeadersFilter final : public Filter, public DeclaresResponseHooks {
 public:
  explicit HeadersFilter(std::shared_ptr<const HeaderRules> rules) : rules_(std::move(rules)) {}

  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& /*callbacks*/) override {
    ctx.upstream_header_mutations.insert(ctx.upstream_header_mutations.end(),
                                         rules_->request.begin(), rules_->request.end());
    return FilterResult::Continue();
  }

  FilterStatus OnResponseHeaders(RequestContext& /*ctx*/, ResponseHead& head,
                                 FilterCallbacks& /*callbacks*/) override {
    for (const HeaderMutation& m : rules_->response) ApplyHeaderMutation(m, &head.headers);
    return FilterStatus::kContinue;
  }

  uint32_t response_hooks() const override { return kResponseHeadersHook; }

 private:
  std::shared_ptr<const HeaderRules> rules_;
};

// Reads {"remove": [...], "set": {...}, "add": {...}}; applied in that order.
absl::Status ReadHeaderRules(const ObjectReader& side, std::vector<HeaderMutation>* out) {
  MODEENVOY_RETURN_IF_ERROR(side.RejectUnknown({"set", "add", "remove"}));
  auto check_name = [&](const std::string& path, const std::string& name,
                        const std::string& value) -> absl::Status {
    MODEENVOY_RETURN_IF_ERROR(ValidateHeader(path, name, value));
    if (IsHopByHopHeader(name)) return InvalidFieldError(path, "cannot be modified");
    return absl::OkStatus();
  };
  MODEENVOY_ASSIGN_OR_RETURN(const Json* remove, side.OptionalArray("remove"));
  if (remove != nullptr) {
    for (size_t i = 0; i < remove->size(); ++i) {
      std::string path = IndexPath(side.PathOf("remove"), i);
      if (!(*remove)[i].is_string()) return InvalidFieldError(path, "must be a string");
      std::string name = (*remove)[i].get<std::string>();
      MODEENVOY_RETURN_IF_ERROR(check_name(path, name, ""));
      out->push_back({HeaderMutation::Op::kRemove, std::move(name), ""});
    }
  }
  for (auto [key, op] : {std::pair<std::string_view, HeaderMutation::Op>{"set", HeaderMutation::Op::kSet},
                         {"add", HeaderMutation::Op::kAdd}}) {
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> map, side.OptionalObject(key));
    if (!map.has_value()) continue;
    for (auto it = map->json().begin(); it != map->json().end(); ++it) {
      std::string path = map->PathOf(it.key());
      if (!it.value().is_string()) return InvalidFieldError(path, "must be a string");
      std::string value = it.value().get<std::string>();
      MODEENVOY_RETURN_IF_ERROR(check_name(path, it.key(), value));
      out->push_back({op, it.key(), std::move(value)});
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FilterFactory>> BuildHeaders(
    std::string_view config_json, const BuildContext& /*context*/) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, ParseStrictJson(config_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(root.RejectUnknown({"request", "response"}));
  auto rules = std::make_shared<HeaderRules>();
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> request, root.OptionalObject("request"));
  if (request.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadHeaderRules(*request, &rules->request));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> response,
                             root.OptionalObject("response"));
  if (response.has_value()) {
    MODEENVOY_RETURN_IF_ERROR(ReadHeaderRules(*response, &rules->response));
  }
  return MakeFilterFactory(HeadersFilter(std::move(rules)));
}

}  // namespace

void RegisterBuiltinFilters(FilterRegistry* registry) {
  // Registration into a fresh registry cannot collide.
  (void)registry->Register("api_key_auth", BuildApiKeyAuth);
  (void)registry->Register("headers", BuildHeaders);
}

}  // namespace modeenvoy::gateway_internal
