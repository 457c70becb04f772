// lib/gateway/config.cc: parsing and validation of the gateway configuration document.
#include "modeenvoy/gateway/config.h"

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {

using core_internal::ChildPath;
using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

namespace {

std::optional<std::string> ProcessEnv(std::string_view name) {
  const char* v = std::getenv(std::string(name).c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

constexpr int64_t kMaxTimeoutMs = int64_t{24} * 3600 * 1000;  // one day

absl::Duration TimeoutFromMs(int64_t ms) {
  return ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(ms);
}

absl::Status ReadTimeouts(const ObjectReader& r, UpstreamTimeouts* t) {
  MODEENVOY_RETURN_IF_ERROR(
      r.RejectUnknown({"connect_ms", "first_byte_ms", "idle_ms", "total_ms"}));
  struct Field {
    std::string_view key;
    absl::Duration* out;
  };
  for (Field f : {Field{"connect_ms", &t->connect}, Field{"first_byte_ms", &t->first_byte},
                  Field{"idle_ms", &t->idle}, Field{"total_ms", &t->total}}) {
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> ms, r.OptionalInt(f.key, 0, kMaxTimeoutMs));
    if (ms.has_value()) *f.out = TimeoutFromMs(*ms);
  }
  return absl::OkStatus();
}

absl::Status ValidateBaseUrl(const std::string& path, std::string* url) {
  absl::string_view u = core_internal::ToAbsl(*url);
  absl::string_view rest;
  if (absl::StartsWith(u, "http://")) {
    rest = u.substr(7);
  } else if (absl::StartsWith(u, "https://")) {
    rest = u.substr(8);
  } else {
    return InvalidFieldError(path, "must start with http:// or https://");
  }
  if (rest.empty() || rest[0] == '/') return InvalidFieldError(path, "must name a host");
  for (char c : u) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return InvalidFieldError(path, "must not contain whitespace or control characters");
    }
  }
  if (u.find_first_of("?#") != absl::string_view::npos) {
    return InvalidFieldError(path, "must not contain a query or fragment");
  }
  while (!url->empty() && url->back() == '/') url->pop_back();
  return absl::OkStatus();
}

}  // namespace

// Builds snapshots; the only code allowed to fill a ConfigSnapshot.
class ConfigSnapshotBuilder {
 public:
  static absl::StatusOr<std::shared_ptr<ConfigSnapshot>> Build(std::string_view text,
                                                               const ConfigLoadOptions& options);
  static void SetGeneration(ConfigSnapshot* snapshot, uint64_t generation) {
    snapshot->generation_ = generation;
  }

 private:
  static absl::Status ReadListen(const ObjectReader& r, ListenConfig* listen);
  static absl::Status ReadProviders(const ObjectReader& r, const EnvLookup& env,
                                    ConfigSnapshot* s);
  static absl::Status ReadModels(const ObjectReader& r, ConfigSnapshot* s);
  static absl::Status ReadRoutes(const Json& routes, ConfigSnapshot* s);
  static absl::Status ReadFilters(const Json& filters, const FilterRegistry& registry,
                                  const EnvLookup& env, ConfigSnapshot* s);
};

absl::Status ConfigSnapshotBuilder::ReadListen(const ObjectReader& r, ListenConfig* listen) {
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"address", "port", "max_body_bytes"}));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> address, r.OptionalString("address"));
  if (address.has_value()) listen->address = std::move(*address);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> port, r.OptionalInt("port", 0, 65535));
  if (port.has_value()) listen->port = static_cast<uint16_t>(*port);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> body,
                             r.OptionalInt("max_body_bytes", 1, int64_t{1} << 40));
  if (body.has_value()) listen->max_body_bytes = static_cast<uint64_t>(*body);
  return absl::OkStatus();
}

absl::Status ConfigSnapshotBuilder::ReadProviders(const ObjectReader& r, const EnvLookup& env,
                                                  ConfigSnapshot* s) {
  for (auto it = r.json().begin(); it != r.json().end(); ++it) {
    const std::string path = r.PathOf(it.key());
    if (it.key().empty()) return InvalidFieldError(path, "provider name must not be empty");
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader p, ObjectReader::Make(it.value(), path));
    MODEENVOY_RETURN_IF_ERROR(
        p.RejectUnknown({"type", "base_url", "api_key", "api_key_env", "headers", "timeouts"}));
    ProviderConfig provider;
    provider.name = it.key();
    MODEENVOY_ASSIGN_OR_RETURN(provider.type, p.RequiredString("type"));
    if (provider.type != "openai") {
      return InvalidFieldError(p.PathOf("type"),
                               absl::StrFormat("unknown provider type \"%s\" (known: openai)",
                                               provider.type));
    }
    MODEENVOY_ASSIGN_OR_RETURN(provider.base_url, p.RequiredString("base_url"));
    MODEENVOY_RETURN_IF_ERROR(ValidateBaseUrl(p.PathOf("base_url"), &provider.base_url));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key,
                               p.OptionalString("api_key", /*non_empty=*/false));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key_env, p.OptionalString("api_key_env"));
    if (key.has_value() && key_env.has_value()) {
      return InvalidFieldError(p.PathOf("api_key_env"), "cannot be combined with api_key");
    }
    if (key.has_value()) provider.api_key = std::move(*key);
    if (key_env.has_value()) {
      std::optional<std::string> value = env(*key_env);
      if (!value.has_value() || value->empty()) {
        return InvalidFieldError(
            p.PathOf("api_key_env"),
            absl::StrFormat("environment variable \"%s\" is not set", *key_env));
      }
      provider.api_key = std::move(*value);
    }
    for (char c : provider.api_key) {
      if (c == '\r' || c == '\n' || c == '\0') {
        return InvalidFieldError(p.PathOf(key_env.has_value() ? "api_key_env" : "api_key"),
                                 "key must not contain CR, LF or NUL");
      }
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> headers, p.OptionalObject("headers"));
    if (headers.has_value()) {
      for (auto h = headers->json().begin(); h != headers->json().end(); ++h) {
        const std::string hpath = headers->PathOf(h.key());
        if (!h.value().is_string()) return InvalidFieldError(hpath, "must be a string");
        std::string value = h.value().get<std::string>();
        MODEENVOY_RETURN_IF_ERROR(core_internal::ValidateHeader(hpath, h.key(), value));
        provider.headers.emplace_back(h.key(), std::move(value));
      }
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> timeouts, p.OptionalObject("timeouts"));
    if (timeouts.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadTimeouts(*timeouts, &provider.timeouts));
    s->providers_.push_back(std::move(provider));
  }
  std::sort(s->providers_.begin(), s->providers_.end(),
            [](const ProviderConfig& a, const ProviderConfig& b) { return a.name < b.name; });
  for (size_t i = 0; i < s->providers_.size(); ++i) {
    s->provider_index_[s->providers_[i].name] = i;
  }
  return absl::OkStatus();
}

absl::Status ConfigSnapshotBuilder::ReadModels(const ObjectReader& r, ConfigSnapshot* s) {
  for (auto it = r.json().begin(); it != r.json().end(); ++it) {
    const std::string path = r.PathOf(it.key());
    if (it.key().empty()) return InvalidFieldError(path, "model name must not be empty");
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader m, ObjectReader::Make(it.value(), path));
    MODEENVOY_RETURN_IF_ERROR(m.RejectUnknown({"provider", "upstream_model"}));
    ModelConfig model;
    model.name = it.key();
    MODEENVOY_ASSIGN_OR_RETURN(model.provider, m.RequiredString("provider"));
    if (s->FindProvider(model.provider) == nullptr) {
      return InvalidFieldError(m.PathOf("provider"),
                               absl::StrFormat("unknown provider \"%s\"", model.provider));
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> upstream,
                               m.OptionalString("upstream_model"));
    model.upstream_model = upstream.has_value() ? std::move(*upstream) : model.name;
    s->models_.push_back(std::move(model));
  }
  std::sort(s->models_.begin(), s->models_.end(),
            [](const ModelConfig& a, const ModelConfig& b) { return a.name < b.name; });
  for (size_t i = 0; i < s->models_.size(); ++i) s->model_index_[s->models_[i].name] = i;
  return absl::OkStatus();
}

absl::Status ConfigSnapshotBuilder::ReadRoutes(const Json& routes, ConfigSnapshot* s) {
  absl::flat_hash_set<std::string> seen;
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::string path = IndexPath("routes", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(routes[i], path));
    MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"match", "target", "targets"}));
    RouteConfig route;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> match, r.OptionalObject("match"));
    if (!match.has_value()) return InvalidFieldError(r.PathOf("match"), "is required");
    MODEENVOY_RETURN_IF_ERROR(match->RejectUnknown({"model"}));
    MODEENVOY_ASSIGN_OR_RETURN(route.match_model, match->RequiredString("model"));
    if (!seen.insert(route.match_model).second) {
      return InvalidFieldError(match->PathOf("model"),
                               absl::StrFormat("duplicate route for \"%s\"", route.match_model));
    }
    auto check_model = [&](const std::string& model_path,
                           const std::string& model) -> absl::Status {
      if (s->FindModel(model) == nullptr) {
        return InvalidFieldError(model_path, absl::StrFormat("unknown model \"%s\"", model));
      }
      return absl::OkStatus();
    };
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> target, r.OptionalString("target"));
    MODEENVOY_ASSIGN_OR_RETURN(const Json* targets, r.OptionalArray("targets"));
    if (target.has_value() == (targets != nullptr)) {
      return InvalidFieldError(path, "exactly one of \"target\" or \"targets\" is required");
    }
    if (target.has_value()) {
      MODEENVOY_RETURN_IF_ERROR(check_model(r.PathOf("target"), *target));
      route.targets.push_back({std::move(*target), 1});
    } else {
      if (targets->empty()) return InvalidFieldError(r.PathOf("targets"), "must not be empty");
      for (size_t t = 0; t < targets->size(); ++t) {
        const std::string tpath = IndexPath(r.PathOf("targets"), t);
        MODEENVOY_ASSIGN_OR_RETURN(ObjectReader tr, ObjectReader::Make((*targets)[t], tpath));
        MODEENVOY_RETURN_IF_ERROR(tr.RejectUnknown({"model", "weight"}));
        RouteTarget rt;
        MODEENVOY_ASSIGN_OR_RETURN(rt.model, tr.RequiredString("model"));
        MODEENVOY_RETURN_IF_ERROR(check_model(tr.PathOf("model"), rt.model));
        MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> weight,
                                   tr.OptionalInt("weight", 0, 1000000));
        rt.weight = weight.has_value() ? static_cast<uint32_t>(*weight) : 1;
        route.targets.push_back(std::move(rt));
      }
    }
    for (const RouteTarget& t : route.targets) route.total_weight += t.weight;
    if (route.total_weight == 0) {
      return InvalidFieldError(r.PathOf("targets"), "weights must not all be 0");
    }
    s->routes_.push_back(std::move(route));
  }
  for (size_t i = 0; i < s->routes_.size(); ++i) s->route_index_[s->routes_[i].match_model] = i;
  return absl::OkStatus();
}

absl::Status ConfigSnapshotBuilder::ReadFilters(const Json& filters,
                                                const FilterRegistry& registry,
                                                const EnvLookup& env, ConfigSnapshot* s) {
  absl::flat_hash_set<std::string> names;
  for (size_t i = 0; i < filters.size(); ++i) {
    const std::string path = IndexPath("filters", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader f, ObjectReader::Make(filters[i], path));
    MODEENVOY_RETURN_IF_ERROR(f.RejectUnknown({"type", "name", "config"}));
    FilterConfig fc;
    MODEENVOY_ASSIGN_OR_RETURN(fc.type, f.RequiredString("type"));
    if (!registry.Contains(fc.type)) {
      return InvalidFieldError(f.PathOf("type"),
                               absl::StrFormat("unknown filter type \"%s\"", fc.type));
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> name, f.OptionalString("name"));
    if (name.has_value()) {
      fc.name = std::move(*name);
      if (!names.insert(fc.name).second) {
        return InvalidFieldError(f.PathOf("name"),
                                 absl::StrFormat("duplicate filter name \"%s\"", fc.name));
      }
    } else {
      fc.name = fc.type;
      for (int n = 2; !names.insert(fc.name).second; ++n) {
        fc.name = absl::StrFormat("%s#%d", fc.type, n);
      }
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> config, f.OptionalObject("config"));
    fc.config_json = config.has_value() ? config->json().dump() : "{}";
    FilterBuildContext context{.type = fc.type, .name = fc.name, .env_lookup = &env};
    absl::StatusOr<std::unique_ptr<FilterFactory>> factory =
        registry.Build(fc.config_json, context);
    if (!factory.ok()) {
      return core_internal::PrefixFieldError(factory.status(), f.PathOf("config"));
    }
    s->filter_factories_.push_back(std::move(*factory));
    s->filters_.push_back(std::move(fc));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<ConfigSnapshot>> ConfigSnapshotBuilder::Build(
    std::string_view text, const ConfigLoadOptions& options) {
  const EnvLookup env = options.env_lookup ? options.env_lookup : EnvLookup(ProcessEnv);
  const FilterRegistry& registry =
      options.filter_registry != nullptr ? *options.filter_registry : BuiltinFilterRegistry();

  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(text));
  if (!json.is_object()) return absl::InvalidArgumentError("config must be a JSON object");
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(
      root.RejectUnknown({"listen", "providers", "models", "routes", "filters"}));

  std::shared_ptr<ConfigSnapshot> s(new ConfigSnapshot());
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> listen, root.OptionalObject("listen"));
  if (listen.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadListen(*listen, &s->listen_));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> providers,
                             root.OptionalObject("providers"));
  if (providers.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadProviders(*providers, env, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> models, root.OptionalObject("models"));
  if (models.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadModels(*models, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* routes, root.OptionalArray("routes"));
  if (routes != nullptr) MODEENVOY_RETURN_IF_ERROR(ReadRoutes(*routes, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* filters, root.OptionalArray("filters"));
  if (filters != nullptr) {
    MODEENVOY_RETURN_IF_ERROR(ReadFilters(*filters, registry, env, s.get()));
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// ConfigSnapshot

ConfigSnapshot::ConfigSnapshot() = default;
ConfigSnapshot::~ConfigSnapshot() = default;

const ProviderConfig* ConfigSnapshot::FindProvider(std::string_view name) const {
  auto it = provider_index_.find(name);
  return it == provider_index_.end() ? nullptr : &providers_[it->second];
}

const ModelConfig* ConfigSnapshot::FindModel(std::string_view name) const {
  auto it = model_index_.find(name);
  return it == model_index_.end() ? nullptr : &models_[it->second];
}

const RouteConfig* ConfigSnapshot::FindRoute(std::string_view match_model) const {
  auto it = route_index_.find(match_model);
  return it == route_index_.end() ? nullptr : &routes_[it->second];
}

std::vector<std::string> ConfigSnapshot::ServedModelNames() const {
  std::vector<std::string> names;
  names.reserve(models_.size() + routes_.size());
  for (const ModelConfig& m : models_) names.push_back(m.name);
  for (const RouteConfig& r : routes_) names.push_back(r.match_model);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

absl::StatusOr<ResolvedRoute> ConfigSnapshot::Resolve(std::string_view model,
                                                      uint64_t draw) const {
  ResolvedRoute resolved;
  std::string_view target = model;
  if (const RouteConfig* route = FindRoute(model)) {
    uint64_t point = draw % route->total_weight;
    for (const RouteTarget& t : route->targets) {
      if (point < t.weight) {
        target = t.model;
        break;
      }
      point -= t.weight;
    }
    resolved.route = route;
  }
  resolved.model = FindModel(target);
  if (resolved.model == nullptr) {
    return WithErrorCode(
        absl::NotFoundError(absl::StrFormat(
            "The model `%s` does not exist or you do not have access to it.", model)),
        "model_not_found");
  }
  resolved.provider = FindProvider(resolved.model->provider);
  if (resolved.provider == nullptr) {  // validation guarantees it; defensive
    return absl::InternalError(
        absl::StrFormat("model \"%s\" has no provider", resolved.model->name));
  }
  return resolved;
}

std::vector<std::unique_ptr<Filter>> ConfigSnapshot::CreateFilters() const {
  std::vector<std::unique_ptr<Filter>> filters;
  filters.reserve(filter_factories_.size());
  for (const auto& factory : filter_factories_) filters.push_back(factory->CreateFilter());
  return filters;
}

absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> LoadConfig(
    std::string_view json, const ConfigLoadOptions& options) {
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<ConfigSnapshot> s,
                             ConfigSnapshotBuilder::Build(json, options));
  return std::shared_ptr<const ConfigSnapshot>(std::move(s));
}

// ---------------------------------------------------------------------------------------
// ConfigStore

ConfigStore::ConfigStore(ConfigLoadOptions options) : options_(std::move(options)) {}

absl::Status ConfigStore::Load(std::string_view json) { return LoadInternal(json, false); }

absl::Status ConfigStore::Reload(std::string_view json) { return LoadInternal(json, true); }

absl::Status ConfigStore::LoadInternal(std::string_view json, bool require_loaded) {
  if (require_loaded && Current() == nullptr) {
    return absl::FailedPreconditionError("no configuration loaded yet; use Load()");
  }
  // Built without the lock: filter builders are user code.
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<ConfigSnapshot> s,
                             ConfigSnapshotBuilder::Build(json, options_));
  std::shared_ptr<const ConfigSnapshot> old;  // released after the lock
  core_internal::MutexLock lock(&mu_);
  // Nobody else holds `s` yet, so stamping it here keeps snapshots immutable once shared.
  ConfigSnapshotBuilder::SetGeneration(s.get(), ++generation_);
  old = std::move(current_);
  current_ = std::move(s);
  return absl::OkStatus();
}

std::shared_ptr<const ConfigSnapshot> ConfigStore::Current() const {
  core_internal::ReaderMutexLock lock(&mu_);
  return current_;
}

uint64_t ConfigStore::generation() const {
  core_internal::ReaderMutexLock lock(&mu_);
  return generation_;
}

}  // namespace modeenvoy
