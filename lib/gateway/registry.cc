// lib/gateway/registry.cc: the registry bundle and the built-ins every Registry starts with.
#include "modeenvoy/gateway/registry.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/builtin_filters.h"
#include "lib/core/json_reader.h"
#include "lib/gateway/providers/providers.h"
#include "lib/gateway/routing_internal.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

using core_internal::Json;
using core_internal::ObjectReader;

// GET /v1/models: the snapshot's served names the client may use, in OpenAI's list format.
class ListModels final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& /*callbacks*/) override {
    nlohmann::ordered_json data = nlohmann::ordered_json::array();
    for (const std::string& name : ctx.snapshot->ServedModelNames()) {
      // A scoped key sees the models it may use (the rule model calls follow).
      if (!ctx.CheckModelAccess(name).ok()) continue;
      const ModelConfig* model = ctx.snapshot->FindModel(name);
      data.push_back({{"id", name},
                      {"object", "model"},
                      {"created", 0},
                      {"owned_by", model != nullptr ? model->provider : std::string("modeenvoy")}});
    }
    nlohmann::ordered_json body = {{"object", "list"}, {"data", std::move(data)}};
    LocalReply reply;
    reply.headers.emplace_back("content-type", "application/json");
    reply.body = body.dump();
    return FilterResult::Reply(std::move(reply));
  }
};

absl::StatusOr<std::shared_ptr<const ConfigSection>> ParseTokenLimit(std::string_view json,
                                                                     const BuildContext&) {
  MODEENVOY_ASSIGN_OR_RETURN(Json value, core_internal::ParseStrictJson(json));
  if (!value.is_number_integer() || value.get<int64_t>() < 1 ||
      value.get<int64_t>() > (int64_t{1} << 40)) {
    return InvalidFieldError("", "must be a positive integer (tokens)");
  }
  auto limit = std::make_shared<ModelTokenLimit>();
  limit->tokens = value.get<int64_t>();
  return limit;
}

absl::StatusOr<std::shared_ptr<const ConfigSection>> ParsePricing(std::string_view json,
                                                                  const BuildContext&) {
  MODEENVOY_ASSIGN_OR_RETURN(Json value, core_internal::ParseStrictJson(json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(value, ""));
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown(
      {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok"}));
  auto price = [&](std::string_view key, bool required) -> absl::StatusOr<std::optional<double>> {
    const Json* v = r.Find(key);
    if (v == nullptr) {
      if (required) return InvalidFieldError(r.PathOf(key), "is required");
      return std::nullopt;
    }
    if (!v->is_number() || v->get<double>() < 0) {
      return InvalidFieldError(r.PathOf(key), "must be a number >= 0 (USD per million tokens)");
    }
    return v->get<double>();
  };
  auto pricing = std::make_shared<ModelPricing>();
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> input, price("input_per_mtok", true));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> output, price("output_per_mtok", true));
  pricing->input_per_mtok = *input;
  pricing->output_per_mtok = *output;
  MODEENVOY_ASSIGN_OR_RETURN(pricing->cached_input_per_mtok,
                             price("cached_input_per_mtok", false));
  MODEENVOY_ASSIGN_OR_RETURN(pricing->cache_write_per_mtok, price("cache_write_per_mtok", false));
  return pricing;
}

}  // namespace

Registry::~Registry() = default;

Registry::Registry(bool with_builtins) : filters_(with_builtins) {
  if (!with_builtins) return;
  // Registrations into fresh registries cannot collide. A dialect with its own builder
  // registers first; the generic registration below then leaves it (kAlreadyExists).
  (void)providers_.Register("gemini", gateway_internal::BuildGeminiProvider);
  (void)providers_.Register("vertex", gateway_internal::BuildVertexProvider);
  for (std::string_view type : DialectNames()) {
    // A dialect whose provider needs the host (credentials, signing) has its own builder.
    ProviderDialectBuilder builder = gateway_internal::BuildDialectProvider;
    if (type == "bedrock") builder = gateway_internal::BuildBedrockProvider;
    (void)providers_.Register(type, std::move(builder));
  }
  (void)routing_.Register("weighted", gateway_internal::BuildWeightedPolicy);
  (void)config_.model_keys().Register("context_window", ParseTokenLimit);
  (void)config_.model_keys().Register("max_output_tokens", ParseTokenLimit);
  (void)config_.model_keys().Register("pricing", ParsePricing);
  EndpointSpec chat;
  chat.kind = "chat_completions";
  chat.method = "POST";
  chat.pattern = "/v1/chat/completions";
  chat.model_call = OpenAiChatCodec();
  (void)endpoints_.Register(std::move(chat));
  EndpointSpec embeddings;
  embeddings.kind = "embeddings";
  embeddings.method = "POST";
  embeddings.pattern = "/v1/embeddings";
  embeddings.model_call = OpenAiEmbeddingsCodec();
  (void)endpoints_.Register(std::move(embeddings));
  EndpointSpec models;
  models.kind = "models";
  models.method = "GET";
  models.pattern = "/v1/models";
  models.local = MakeFilterFactory<ListModels>();
  (void)endpoints_.Register(std::move(models));
}

const Registry& BuiltinRegistry() {
  static const Registry* const registry = new Registry(/*with_builtins=*/true);
  return *registry;
}

}  // namespace modeenvoy
