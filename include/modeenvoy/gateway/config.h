// include/modeenvoy/gateway/config.h: the declarative gateway configuration.
//
// One JSON document describes where the gateway listens, the providers it calls, the public
// model names it serves, routes over them and the ordered filter chain. It is validated as a
// whole (errors name the field path and reason), compiled into an immutable ConfigSnapshot,
// and published through a ConfigStore that swaps snapshots atomically:
//   modeenvoy::ConfigStore store;
//   if (absl::Status s = store.Load(json_text); !s.ok()) return s;  // "models.x.provider: ..."
//   std::shared_ptr<const modeenvoy::ConfigSnapshot> snap = store.Current();
//   absl::Status r = store.Reload(new_text);  // on error the old snapshot stays current
// Requests keep the snapshot they started with, so a reload never disturbs them.
//
// Complete example (every key shown; the // notes are not part of the document):
//   {
//     "listen": {"address": "127.0.0.1", "port": 8080, "max_body_bytes": 1048576},
//     // Components add top-level sections through ConfigSectionRegistry ("context": ...).
//     "providers": {
//       "openai": {
//         "type": "openai",                         // required; a registered dialect
//                                                   // (provider.h); its own keys go beside
//         "base_url": "https://api.openai.com/v1",  // required; "/chat/completions" is appended
//         "api_key_env": "OPENAI_API_KEY",          // or "api_key": "sk-..."; neither = no auth
//         "headers": {"OpenAI-Organization": "org-123"},
//         "timeouts": {"connect_ms": 2000, "first_byte_ms": 60000, "idle_ms": 30000,
//                      "total_ms": 600000}           // 0 disables a limit
//       },
//       "local": {"type": "openai", "base_url": "http://127.0.0.1:8000/v1"}
//     },
//     "models": {
//       "gpt-4o-mini": {"provider": "openai",        // provider required
//                       "context_window": 128000, "max_output_tokens": 16384,
//                       "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.6,
//                                   "cached_input_per_mtok": 0.075}},
//       "llama": {"provider": "local", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"}
//     },
//     "routes": [
//       {"match": {"model": "smart"},
//        "targets": [{"model": "gpt-4o-mini", "weight": 90}, {"model": "llama", "weight": 10}]},
//       {"match": {"model": "default"}, "target": "gpt-4o-mini",
//        "fallbacks": ["llama"], "retry_on": ["429", "5xx", "timeout", "connect"]}
//     ],
//     "filters": [
//       {"type": "api_key_auth", "name": "auth",
//        "config": {"keys": [{"name": "team-a", "key": "sk-a", "models": ["smart"]},
//                            {"name": "ops", "key_env": "OPS_KEY"}]}},
//       {"type": "headers",
//        "config": {"request": {"set": {"x-team": "a"}, "remove": ["x-debug"]},
//                   "response": {"add": {"x-served-by": "modeenvoy"}}}}
//     ]
//   }
#ifndef MODEENVOY_GATEWAY_CONFIG_H_
#define MODEENVOY_GATEWAY_CONFIG_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/gateway/registry_base.h"
#include "modeenvoy/gateway/routing.h"
#include "modeenvoy/gateway/upstream.h"

namespace modeenvoy {

class Filter;            // filter.h
class EndpointTable;     // endpoint.h
class ProviderDialect;   // provider.h
class Registry;          // registry.h
class Services;          // services.h

// Base of what a registered configuration parser produces: a top-level section
// ("context": {...}) or a key of a model entry ("context_window"). Components downcast to
// their own type (std::static_pointer_cast), which they know from the name they registered.
class MODEENVOY_EXPORT ConfigSection {
 public:
  virtual ~ConfigSection() = default;
};

// Parses one section or key. `json` is its value as JSON text (any JSON type); errors are
// InvalidFieldError(path, reason) relative to the value ("" for the value itself), reported
// with the value's own path in front ("context.ttl_s: must be > 0").
using ConfigSectionBuilder = std::function<absl::StatusOr<std::shared_ptr<const ConfigSection>>(
    std::string_view json, const BuildContext& context)>;

// Registered top-level sections and model keys. A key nobody registered is an error
// ("models.x.context_windw: unknown field"), never silently ignored.
// Thread safety: thread-safe.
class MODEENVOY_EXPORT ConfigSectionRegistry {
 public:
  ConfigSectionRegistry() : sections_("config section"), model_keys_("model key") {}
  // Top-level keys besides listen, providers, models, routes and filters.
  NamedRegistry<ConfigSectionBuilder>& sections() { return sections_; }
  const NamedRegistry<ConfigSectionBuilder>& sections() const { return sections_; }
  // Keys of `models.<name>` besides provider and upstream_model.
  NamedRegistry<ConfigSectionBuilder>& model_keys() { return model_keys_; }
  const NamedRegistry<ConfigSectionBuilder>& model_keys() const { return model_keys_; }

 private:
  NamedRegistry<ConfigSectionBuilder> sections_;
  NamedRegistry<ConfigSectionBuilder> model_keys_;
};

// `listen`: where a host serving this config accepts clients. The engine itself does not
// listen; hosts (the example proxy) read these values.
struct ListenConfig {
  std::string address = "127.0.0.1";
  uint16_t port = 8080;          // 0 lets the host pick a free port
  uint64_t max_body_bytes = 1 << 20;  // request bodies above this get 413 from the host
};

// `providers.<name>`: one upstream API endpoint.
struct ProviderConfig {
  std::string name;      // the key under `providers`
  std::string type;      // registered dialect name, e.g. "openai"
  // Without trailing '/', e.g. "https://api.openai.com/v1"; empty when the entry names none
  // (the dialect's builder then uses the provider's public endpoint, or refuses).
  std::string base_url;
  std::string api_key;   // resolved from api_key or api_key_env; empty = no credentials
  HttpHeaders headers;   // extra headers on every upstream request, in config order
  UpstreamTimeouts timeouts;
  std::string options_json;  // the entry's dialect-specific keys, as a JSON object
  // Built from the above by the registered dialect; never null in a snapshot.
  std::shared_ptr<const ProviderDialect> dialect;
};

// `models.<name>`: a public model name and where it is served.
struct ModelConfig {
  std::string name;            // public name (the key under `models`)
  std::string provider;        // key under `providers`
  std::string upstream_model;  // name sent to the provider; defaults to `name`
  // Registered keys present in the entry (ConfigSectionRegistry::model_keys()).
  absl::flat_hash_map<std::string, std::shared_ptr<const ConfigSection>> extensions;

  // The parsed value of registered key `key`, or null when the entry does not set it.
  const ConfigSection* extension(std::string_view key) const {
    auto it = extensions.find(absl::string_view(key.data(), key.size()));
    return it == extensions.end() ? nullptr : it->second.get();
  }
};

// Built-in model keys (registered by every Registry with builtins):
//   "context_window", "max_output_tokens": positive token counts -> ModelTokenLimit
//   "pricing": {"input_per_mtok", "output_per_mtok", "cached_input_per_mtok",
//               "cache_write_per_mtok"} (USD per million tokens, >= 0) -> ModelPricing
struct ModelTokenLimit final : ConfigSection {
  int64_t tokens = 0;
};
struct ModelPricing final : ConfigSection {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
  std::optional<double> cached_input_per_mtok;
  std::optional<double> cache_write_per_mtok;
};

// `routes[i]`: requests for `match_model` are planned by a routing policy.
struct RouteConfig {
  std::string match_model;    // `match.model`: the name clients ask for
  std::string policy;         // `policy`; "weighted" when absent
  std::string options_json;   // the route's other keys, as a JSON object
  std::shared_ptr<const RoutingPolicy> routing;  // never null in a snapshot
};

// `filters[i]`: one entry of the ordered filter chain.
struct FilterConfig {
  std::string type;         // registered filter type, e.g. "api_key_auth"
  std::string name;         // unique in the chain; defaults to `type` (then `type#i`)
  std::string config_json;  // the `config` object as JSON text ("{}" when absent)
};

// Where one attempt goes. Pointers refer into the snapshot that produced it and live as
// long as that snapshot.
struct ResolvedRoute {
  const ModelConfig* model = nullptr;        // the target model
  const ProviderConfig* provider = nullptr;  // its provider
  const RouteConfig* route = nullptr;        // the route used; null for a direct model
};

// ConfigSnapshot is one validated configuration with its components built.
// Immutable once published. Thread safety: thread-safe (all methods are const).
class MODEENVOY_EXPORT ConfigSnapshot {
 public:
  virtual ~ConfigSnapshot() = default;

  virtual const ListenConfig& listen() const = 0;
  // Sorted by name.
  virtual const std::vector<ProviderConfig>& providers() const = 0;
  virtual const std::vector<ModelConfig>& models() const = 0;
  // In config order.
  virtual const std::vector<RouteConfig>& routes() const = 0;
  virtual const std::vector<FilterConfig>& filters() const = 0;
  // 1 for the first snapshot a ConfigStore published, +1 per successful (re)load;
  // 0 for a snapshot built directly by LoadConfig.
  virtual uint64_t generation() const = 0;

  // Null when absent. The pointer lives as long as the snapshot.
  virtual const ProviderConfig* FindProvider(std::string_view name) const = 0;
  virtual const ModelConfig* FindModel(std::string_view name) const = 0;
  virtual const RouteConfig* FindRoute(std::string_view match_model) const = 0;

  // Every name a client may ask for: the models plus the routes' match names, sorted,
  // without duplicates.
  virtual std::vector<std::string> ServedModelNames() const = 0;

  // The attempt plan for `request.model`: the route's policy when a route matches (a
  // route wins over a model of the same name), else one attempt on the model.
  // Errors: kNotFound with code "model_not_found" if neither exists.
  virtual absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(
      const RoutingRequest& request) const = 0;

  // The first attempt the plan for `model` makes with random value `draw` (for the
  // built-in weighted policy: target i when draw % total_weight falls in its share).
  // Errors: as Plan.
  absl::StatusOr<ResolvedRoute> Resolve(std::string_view model, uint64_t draw) const;

  // Creates one request's filter instances, in chain order. Thread-safe.
  virtual std::vector<std::unique_ptr<Filter>> CreateFilters() const = 0;

  // The parsed top-level section `name` (registered through ConfigSectionRegistry), or
  // null when the document does not have it.
  virtual const ConfigSection* Section(std::string_view name) const = 0;

  // The endpoints this snapshot serves (the registry's, frozen at load time).
  virtual const EndpointTable& endpoints() const = 0;
};

struct ConfigLoadOptions {
  // Resolves `api_key_env` (and filters' `*_env` settings). Null reads the process
  // environment (getenv). Tests inject a map so they never touch the real environment.
  EnvLookup env_lookup;
  // Filter types, dialects, routing policies, sections and endpoints available to the
  // document. Not owned; must outlive every snapshot loaded with it. Null means the
  // built-in registry (BuiltinRegistry()).
  const Registry* registry = nullptr;
  // Given to every builder. Not owned; must outlive every snapshot loaded with it. Null
  // makes a ConfigStore create its own (and LoadConfig a fresh one per call).
  Services* services = nullptr;
};

// Parses and validates `json` and builds its components.
// Errors: kInvalidArgument with "<path>: <reason>", e.g.
//   "providers.openai.base_url: must start with http:// or https://"
//   "models.demo.provider: unknown provider \"x\""
//   "filters[1].type: unknown filter type \"foo\""
//   "listen.prot: unknown field"
// The first error found is reported; error.h's ErrorParam() returns its path.
MODEENVOY_EXPORT absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> LoadConfig(
    std::string_view json, const ConfigLoadOptions& options = {});

// ConfigStore publishes the current snapshot and swaps it atomically on reload.
// Thread safety: thread-safe. Current() is cheap (a shared_ptr copy under a reader lock).
class MODEENVOY_EXPORT ConfigStore {
 public:
  explicit ConfigStore(ConfigLoadOptions options = {});
  ~ConfigStore();
  ConfigStore(const ConfigStore&) = delete;
  ConfigStore& operator=(const ConfigStore&) = delete;

  // Validates `json` and, on success, publishes it as the current snapshot with the next
  // generation. On failure the current snapshot (if any) is kept. Errors: as LoadConfig.
  absl::Status Load(std::string_view json) ABSL_LOCKS_EXCLUDED(mu_);

  // As Load(), for replacing a configuration that is already loaded.
  // Errors: as LoadConfig; kFailedPrecondition if nothing was loaded yet.
  absl::Status Reload(std::string_view json) ABSL_LOCKS_EXCLUDED(mu_);

  // As Reload(), with `env_lookup` resolving this document's `*_env` settings instead of
  // the store's own lookup (a host narrowing what a remotely supplied document may read).
  absl::Status ReloadWithEnv(std::string_view json, EnvLookup env_lookup)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The current snapshot; null before the first successful Load.
  std::shared_ptr<const ConfigSnapshot> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  // Generation of the current snapshot; 0 before the first successful Load.
  uint64_t generation() const ABSL_LOCKS_EXCLUDED(mu_);

  // The services every snapshot of this store is built with.
  Services& services() const { return *services_; }

 private:
  absl::Status LoadInternal(std::string_view json, bool require_loaded, const EnvLookup* env)
      ABSL_LOCKS_EXCLUDED(mu_);

  ConfigLoadOptions options_;
  std::unique_ptr<Services> owned_services_;
  Services* services_;
  absl::Mutex load_mu_;  // one load at a time, so generations follow load order
  mutable absl::Mutex mu_;
  std::shared_ptr<const ConfigSnapshot> current_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_CONFIG_H_
