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
//     "providers": {
//       "openai": {
//         "type": "openai",                         // required; OpenAI-compatible wire format
//         "base_url": "https://api.openai.com/v1",  // required; "/chat/completions" is appended
//         "api_key_env": "OPENAI_API_KEY",          // or "api_key": "sk-..."; neither = no auth
//         "headers": {"OpenAI-Organization": "org-123"},
//         "timeouts": {"connect_ms": 2000, "first_byte_ms": 60000, "idle_ms": 30000,
//                      "total_ms": 600000}           // 0 disables a limit
//       },
//       "local": {"type": "openai", "base_url": "http://127.0.0.1:8000/v1"}
//     },
//     "models": {
//       "gpt-4o-mini": {"provider": "openai"},      // provider required
//       "llama": {"provider": "local", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"}
//     },
//     "routes": [
//       {"match": {"model": "smart"},
//        "targets": [{"model": "gpt-4o-mini", "weight": 90}, {"model": "llama", "weight": 10}]},
//       {"match": {"model": "default"}, "target": "gpt-4o-mini"}
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
#include "modeenvoy/gateway/upstream.h"

namespace modeenvoy {

class Filter;          // filter.h
class FilterFactory;   // filter.h
class FilterRegistry;  // filter.h

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
  std::string type;      // "openai": OpenAI-compatible (OpenAI, vLLM, Ollama, TGI, ...)
  std::string base_url;  // without trailing '/', e.g. "https://api.openai.com/v1"
  std::string api_key;   // resolved from api_key or api_key_env; empty = no Authorization
  HttpHeaders headers;   // extra headers on every upstream request, in config order
  UpstreamTimeouts timeouts;
};

// `models.<name>`: a public model name and where it is served.
struct ModelConfig {
  std::string name;            // public name (the key under `models`)
  std::string provider;        // key under `providers`
  std::string upstream_model;  // name sent to the provider; defaults to `name`
};

// One weighted target of a route.
struct RouteTarget {
  std::string model;    // key under `models`
  uint32_t weight = 1;  // relative share; 0 disables the target
};

// `routes[i]`: requests for `match_model` go to one of `targets`, picked by weight.
struct RouteConfig {
  std::string match_model;  // `match.model`: the name clients ask for
  std::vector<RouteTarget> targets;  // `target` (one, weight 1) or `targets`; sum > 0
  uint64_t total_weight = 0;         // sum of the weights
};

// `filters[i]`: one entry of the ordered filter chain.
struct FilterConfig {
  std::string type;         // registered filter type, e.g. "api_key_auth"
  std::string name;         // unique in the chain; defaults to `type` (then `type#i`)
  std::string config_json;  // the `config` object as JSON text ("{}" when absent)
};

// Where a request for one model goes. Pointers refer into the snapshot that produced it
// and live as long as that snapshot.
struct ResolvedRoute {
  const ModelConfig* model = nullptr;        // the target model
  const ProviderConfig* provider = nullptr;  // its provider
  const RouteConfig* route = nullptr;        // the route used; null for a direct model
};

// ConfigSnapshot is one validated configuration with its filter factories instantiated.
// Immutable once built. Thread safety: thread-safe (all methods are const).
class MODEENVOY_EXPORT ConfigSnapshot {
 public:
  ~ConfigSnapshot();
  ConfigSnapshot(const ConfigSnapshot&) = delete;
  ConfigSnapshot& operator=(const ConfigSnapshot&) = delete;

  const ListenConfig& listen() const { return listen_; }
  // Sorted by name.
  const std::vector<ProviderConfig>& providers() const { return providers_; }
  const std::vector<ModelConfig>& models() const { return models_; }
  // In config order.
  const std::vector<RouteConfig>& routes() const { return routes_; }
  const std::vector<FilterConfig>& filters() const { return filters_; }
  // 1 for the first snapshot a ConfigStore published, +1 per successful (re)load;
  // 0 for a snapshot built directly by LoadConfig.
  uint64_t generation() const { return generation_; }

  // Null when absent. The pointer lives as long as the snapshot.
  const ProviderConfig* FindProvider(std::string_view name) const;
  const ModelConfig* FindModel(std::string_view name) const;
  const RouteConfig* FindRoute(std::string_view match_model) const;

  // Every name a client may ask for: the models plus the routes' match names, sorted,
  // without duplicates.
  std::vector<std::string> ServedModelNames() const;

  // Resolves the model a client asked for. A route matching `model` wins over a model of
  // the same name; its target is chosen by weight from `draw` (any uniformly random value:
  // target i is picked when draw % total_weight falls in its share).
  // Errors: kNotFound if neither a route nor a model has that name.
  absl::StatusOr<ResolvedRoute> Resolve(std::string_view model, uint64_t draw) const;

  // Creates one request's filter instances, in chain order. Thread-safe.
  std::vector<std::unique_ptr<Filter>> CreateFilters() const;

 private:
  friend class ConfigSnapshotBuilder;  // lib/gateway/config.cc
  ConfigSnapshot();

  ListenConfig listen_;
  std::vector<ProviderConfig> providers_;
  std::vector<ModelConfig> models_;
  std::vector<RouteConfig> routes_;
  std::vector<FilterConfig> filters_;
  std::vector<std::unique_ptr<FilterFactory>> filter_factories_;
  absl::flat_hash_map<std::string_view, size_t> provider_index_;
  absl::flat_hash_map<std::string_view, size_t> model_index_;
  absl::flat_hash_map<std::string_view, size_t> route_index_;
  uint64_t generation_ = 0;
};

// Returns the value of the environment variable `name`, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

struct ConfigLoadOptions {
  // Resolves `api_key_env` (and filters' `*_env` settings). Null reads the process
  // environment (getenv). Tests inject a map so they never touch the real environment.
  EnvLookup env_lookup;
  // Filter types available to `filters`. Not owned; must outlive every snapshot loaded
  // with it (factories it built live in the snapshot). Null means the built-in types only.
  const FilterRegistry* filter_registry = nullptr;
};

// Parses and validates `json` and instantiates its filter factories.
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
  ConfigStore(const ConfigStore&) = delete;
  ConfigStore& operator=(const ConfigStore&) = delete;

  // Validates `json` and, on success, publishes it as the current snapshot with the next
  // generation. On failure the current snapshot (if any) is kept. Errors: as LoadConfig.
  absl::Status Load(std::string_view json) ABSL_LOCKS_EXCLUDED(mu_);

  // As Load(), for replacing a configuration that is already loaded.
  // Errors: as LoadConfig; kFailedPrecondition if nothing was loaded yet.
  absl::Status Reload(std::string_view json) ABSL_LOCKS_EXCLUDED(mu_);

  // The current snapshot; null before the first successful Load.
  std::shared_ptr<const ConfigSnapshot> Current() const ABSL_LOCKS_EXCLUDED(mu_);

  // Generation of the current snapshot; 0 before the first successful Load.
  uint64_t generation() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status LoadInternal(std::string_view json, bool require_loaded)
      ABSL_LOCKS_EXCLUDED(mu_);

  const ConfigLoadOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const ConfigSnapshot> current_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_CONFIG_H_
