// include/modeenvoy/gateway/registry.h: every extension point of the engine in one object.
//
// A component adds itself with one registration call that fills the registries it needs:
//   void RegisterMyComponent(modeenvoy::Registry* r) {
//     (void)r->filters().Register("my_filter", BuildMyFilter);
//     (void)r->config().sections().Register("my_section", ParseMySection);
//     (void)r->endpoints().Register({.kind = "my.get", .method = "GET",
//                                    .pattern = "/v1/my/{id}", .local = ...});
//   }
//   modeenvoy::Registry registry;                 // built-ins included
//   RegisterMyComponent(&registry);
//   modeenvoy::ConfigStore store({.registry = &registry});
// docs/architecture.md ("Adding a component") walks through a complete example.
#ifndef MODEENVOY_GATEWAY_REGISTRY_H_
#define MODEENVOY_GATEWAY_REGISTRY_H_

#include "modeenvoy/export.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/routing.h"

namespace modeenvoy {

// Thread safety: thread-safe (each registry locks itself). Registering while snapshots
// are loaded is allowed; endpoints registered later are served from the next (re)load.
class MODEENVOY_EXPORT Registry {
 public:
  // With `with_builtins`: filters "api_key_auth", "headers"; provider type "openai";
  // routing policy "weighted"; model keys "context_window", "max_output_tokens",
  // "pricing"; endpoints POST /v1/chat/completions, POST /v1/embeddings and GET /v1/models.
  explicit Registry(bool with_builtins = true);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  FilterRegistry& filters() { return filters_; }
  const FilterRegistry& filters() const { return filters_; }
  EndpointRegistry& endpoints() { return endpoints_; }
  const EndpointRegistry& endpoints() const { return endpoints_; }
  ProviderDialectRegistry& providers() { return providers_; }
  const ProviderDialectRegistry& providers() const { return providers_; }
  RoutingPolicyRegistry& routing() { return routing_; }
  const RoutingPolicyRegistry& routing() const { return routing_; }
  ConfigSectionRegistry& config() { return config_; }
  const ConfigSectionRegistry& config() const { return config_; }

 private:
  FilterRegistry filters_;
  EndpointRegistry endpoints_;
  ProviderDialectRegistry providers_;
  RoutingPolicyRegistry routing_;
  ConfigSectionRegistry config_;
};

// The process-wide registry of built-ins, used when ConfigLoadOptions names none.
MODEENVOY_EXPORT const Registry& BuiltinRegistry();

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_REGISTRY_H_
