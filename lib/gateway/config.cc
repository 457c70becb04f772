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
#include "absl/strings/str_join.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/core/json_reader.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
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

namespace {

// The snapshot as built; the only implementation of ConfigSnapshot.
class SnapshotImpl final : public ConfigSnapshot {
 public:
  const ListenConfig& listen() const override { return listen_; }
  const std::vector<ProviderConfig>& providers() const override { return providers_; }
  const std::vector<ModelConfig>& models() const override { return models_; }
  const std::vector<RouteConfig>& routes() const override { return routes_; }
  const std::vector<FilterConfig>& filters() const override { return filters_; }
  uint64_t generation() const override { return generation_; }

  const ProviderConfig* FindProvider(std::string_view name) const override {
    auto it = provider_index_.find(name);
    return it == provider_index_.end() ? nullptr : &providers_[it->second];
  }
  const ModelConfig* FindModel(std::string_view name) const override {
    auto it = model_index_.find(name);
    return it == model_index_.end() ? nullptr : &models_[it->second];
  }
  const RouteConfig* FindRoute(std::string_view match_model) const override {
    auto it = route_index_.find(match_model);
    return it == route_index_.end() ? nullptr : &routes_[it->second];
  }

  std::vector<std::string> ServedModelNames() const override { return served_; }

  absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(
      const RoutingRequest& request) const override {
    if (const RouteConfig* route = FindRoute(request.model)) return route->routing->Plan(request);
    if (const ModelConfig* model = FindModel(request.model)) {
      return SingleAttemptPlan(model, FindProvider(model->provider));
    }
    return WithErrorCode(
        absl::NotFoundError(absl::StrFormat(
            "The model `%s` does not exist or you do not have access to it.", request.model)),
        "model_not_found");
  }

  std::vector<std::unique_ptr<Filter>> CreateFilters() const override {
    std::vector<std::unique_ptr<Filter>> filters;
    filters.reserve(filter_factories_.size());
    for (const auto& factory : filter_factories_) filters.push_back(factory->CreateFilter());
    return filters;
  }

  const ConfigSection* Section(std::string_view name) const override {
    auto it = sections_.find(core_internal::ToAbsl(name));
    return it == sections_.end() ? nullptr : it->second.get();
  }

  const EndpointTable& endpoints() const override { return *endpoints_; }

  // Filled by Build(); never changed once the snapshot is shared.
  ListenConfig listen_;
  std::vector<ProviderConfig> providers_;
  std::vector<ModelConfig> models_;
  std::vector<RouteConfig> routes_;
  std::vector<FilterConfig> filters_;
  std::vector<std::unique_ptr<FilterFactory>> filter_factories_;
  absl::flat_hash_map<std::string, std::shared_ptr<const ConfigSection>> sections_;
  std::shared_ptr<const EndpointTable> endpoints_;
  absl::flat_hash_map<std::string_view, size_t> provider_index_;
  absl::flat_hash_map<std::string_view, size_t> model_index_;
  absl::flat_hash_map<std::string_view, size_t> route_index_;
  std::vector<std::string> served_;
  uint64_t generation_ = 0;
};

constexpr std::string_view kEngineRootKeys[] = {"listen", "providers", "models", "routes",
                                                "filters"};

// The members of `object` whose names are not in `known`, as a JSON object text.
std::string OtherMembers(const Json& object, std::initializer_list<std::string_view> known) {
  Json out = Json::object();
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool is_known = false;
    for (std::string_view k : known) is_known = is_known || it.key() == k;
    if (!is_known) out[it.key()] = it.value();
  }
  return out.dump();
}

struct BuildEnv {
  const Registry& registry;
  const EnvLookup& env;
  Services* services;
};

absl::Status ReadListen(const ObjectReader& r, ListenConfig* listen) {
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

absl::Status ReadProviders(const ObjectReader& r, const BuildEnv& b, SnapshotImpl* s) {
  for (auto it = r.json().begin(); it != r.json().end(); ++it) {
    const std::string path = r.PathOf(it.key());
    if (it.key().empty()) return InvalidFieldError(path, "provider name must not be empty");
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader p, ObjectReader::Make(it.value(), path));
    ProviderConfig provider;
    provider.name = it.key();
    MODEENVOY_ASSIGN_OR_RETURN(provider.type, p.RequiredString("type"));
    std::optional<ProviderDialectBuilder> dialect = b.registry.providers().Find(provider.type);
    if (!dialect.has_value()) {
      return InvalidFieldError(
          p.PathOf("type"),
          absl::StrFormat("unknown provider type \"%s\" (known: %s)", provider.type,
                          absl::StrJoin(b.registry.providers().names(), ", ")));
    }
    // Absent: the dialect's builder supplies its public endpoint or reports it required.
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> base_url, p.OptionalString("base_url"));
    if (base_url.has_value()) {
      provider.base_url = std::move(*base_url);
      MODEENVOY_RETURN_IF_ERROR(ValidateBaseUrl(p.PathOf("base_url"), &provider.base_url));
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key,
                               p.OptionalString("api_key", /*non_empty=*/false));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key_env, p.OptionalString("api_key_env"));
    if (key.has_value() && key_env.has_value()) {
      return InvalidFieldError(p.PathOf("api_key_env"), "cannot be combined with api_key");
    }
    if (key.has_value()) provider.api_key = std::move(*key);
    if (key_env.has_value()) {
      std::optional<std::string> value = b.env(*key_env);
      if (!value.has_value() || value->empty()) {
        return InvalidFieldError(
            p.PathOf("api_key_env"),
            absl::StrFormat("environment variable \"%s\" is not set", *key_env));
      }
      provider.api_key = std::move(*value);
    }
    if (!IsValidHeaderValue(provider.api_key)) {
      return InvalidFieldError(p.PathOf(key_env.has_value() ? "api_key_env" : "api_key"),
                               "key must not contain CR, LF or NUL");
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
    provider.options_json = OtherMembers(
        p.json(), {"type", "base_url", "api_key", "api_key_env", "headers", "timeouts"});
    BuildContext context{.type = provider.type, .name = provider.name, .path = path,
                         .env_lookup = &b.env, .services = b.services};
    absl::StatusOr<std::unique_ptr<ProviderDialect>> built =
        (*dialect)(provider, provider.options_json, context);
    if (!built.ok()) return core_internal::PrefixFieldError(built.status(), path);
    if (*built == nullptr) {
      return absl::InternalError(
          absl::StrFormat("provider type \"%s\": builder returned no dialect", provider.type));
    }
    provider.dialect = std::move(*built);
    s->providers_.push_back(std::move(provider));
  }
  std::sort(s->providers_.begin(), s->providers_.end(),
            [](const ProviderConfig& a, const ProviderConfig& b) { return a.name < b.name; });
  for (size_t i = 0; i < s->providers_.size(); ++i) {
    s->provider_index_[s->providers_[i].name] = i;
  }
  return absl::OkStatus();
}

absl::Status ReadModels(const ObjectReader& r, const BuildEnv& b, SnapshotImpl* s) {
  for (auto it = r.json().begin(); it != r.json().end(); ++it) {
    const std::string path = r.PathOf(it.key());
    if (it.key().empty()) return InvalidFieldError(path, "model name must not be empty");
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader m, ObjectReader::Make(it.value(), path));
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
    for (auto k = m.json().begin(); k != m.json().end(); ++k) {
      if (k.key() == "provider" || k.key() == "upstream_model") continue;
      const std::string kpath = m.PathOf(k.key());
      std::optional<ConfigSectionBuilder> parse = b.registry.config().model_keys().Find(k.key());
      if (!parse.has_value()) return InvalidFieldError(kpath, "unknown field");
      BuildContext context{.type = k.key(), .name = model.name, .path = kpath,
                           .env_lookup = &b.env, .services = b.services};
      absl::StatusOr<std::shared_ptr<const ConfigSection>> value =
          (*parse)(k.value().dump(), context);
      if (!value.ok()) return core_internal::PrefixFieldError(value.status(), kpath);
      model.extensions[k.key()] = std::move(*value);
    }
    s->models_.push_back(std::move(model));
  }
  std::sort(s->models_.begin(), s->models_.end(),
            [](const ModelConfig& a, const ModelConfig& b) { return a.name < b.name; });
  for (size_t i = 0; i < s->models_.size(); ++i) s->model_index_[s->models_[i].name] = i;
  return absl::OkStatus();
}

absl::Status ReadRoutes(const Json& routes, const BuildEnv& b, SnapshotImpl* s) {
  absl::flat_hash_set<std::string> seen;
  s->routes_.reserve(routes.size());
  for (size_t i = 0; i < routes.size(); ++i) {
    const std::string path = IndexPath("routes", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(routes[i], path));
    RouteConfig route;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> match, r.OptionalObject("match"));
    if (!match.has_value()) return InvalidFieldError(r.PathOf("match"), "is required");
    MODEENVOY_RETURN_IF_ERROR(match->RejectUnknown({"model"}));
    MODEENVOY_ASSIGN_OR_RETURN(route.match_model, match->RequiredString("model"));
    if (!seen.insert(route.match_model).second) {
      return InvalidFieldError(match->PathOf("model"),
                               absl::StrFormat("duplicate route for \"%s\"", route.match_model));
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> policy, r.OptionalString("policy"));
    route.policy = policy.has_value() ? std::move(*policy) : "weighted";
    std::optional<RoutingPolicyBuilder> build = b.registry.routing().Find(route.policy);
    if (!build.has_value()) {
      return InvalidFieldError(
          r.PathOf("policy"),
          absl::StrFormat("unknown routing policy \"%s\" (known: %s)", route.policy,
                          absl::StrJoin(b.registry.routing().names(), ", ")));
    }
    route.options_json = OtherMembers(r.json(), {"match", "policy"});
    RouteBuildContext context;
    context.type = route.policy;
    context.name = route.match_model;
    context.path = path;
    context.env_lookup = &b.env;
    context.services = b.services;
    context.find_model = [s](std::string_view name) { return s->FindModel(name); };
    context.provider_of = [s](const ModelConfig& m) { return s->FindProvider(m.provider); };
    absl::StatusOr<std::unique_ptr<RoutingPolicy>> built = (*build)(route.options_json, context);
    if (!built.ok()) return core_internal::PrefixFieldError(built.status(), path);
    if (*built == nullptr) {
      return absl::InternalError(
          absl::StrFormat("routing policy \"%s\": builder returned no policy", route.policy));
    }
    route.routing = std::move(*built);
    s->routes_.push_back(std::move(route));
  }
  for (size_t i = 0; i < s->routes_.size(); ++i) s->route_index_[s->routes_[i].match_model] = i;
  return absl::OkStatus();
}

absl::Status ReadFilters(const Json& filters, const BuildEnv& b, SnapshotImpl* s) {
  absl::flat_hash_set<std::string> names;
  for (size_t i = 0; i < filters.size(); ++i) {
    const std::string path = IndexPath("filters", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader f, ObjectReader::Make(filters[i], path));
    MODEENVOY_RETURN_IF_ERROR(f.RejectUnknown({"type", "name", "config"}));
    FilterConfig fc;
    MODEENVOY_ASSIGN_OR_RETURN(fc.type, f.RequiredString("type"));
    if (!b.registry.filters().Contains(fc.type)) {
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
    const std::string config_path = f.PathOf("config");
    BuildContext context{.type = fc.type, .name = fc.name, .path = config_path,
                         .env_lookup = &b.env, .services = b.services};
    absl::StatusOr<std::unique_ptr<FilterFactory>> factory =
        b.registry.filters().Build(fc.config_json, context);
    if (!factory.ok()) return core_internal::PrefixFieldError(factory.status(), config_path);
    s->filter_factories_.push_back(std::move(*factory));
    s->filters_.push_back(std::move(fc));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<SnapshotImpl>> Build(std::string_view text,
                                                    const ConfigLoadOptions& options,
                                                    const EnvLookup* env_override,
                                                    Services* services) {
  const EnvLookup env = env_override != nullptr && *env_override ? *env_override
                        : options.env_lookup                       ? options.env_lookup
                                                                   : EnvLookup(ProcessEnv);
  const Registry& registry =
      options.registry != nullptr ? *options.registry : BuiltinRegistry();
  BuildEnv b{registry, env, services};

  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(text));
  if (!json.is_object()) return absl::InvalidArgumentError("config must be a JSON object");
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(json, ""));

  auto s = std::make_shared<SnapshotImpl>();
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> listen, root.OptionalObject("listen"));
  if (listen.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadListen(*listen, &s->listen_));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> providers,
                             root.OptionalObject("providers"));
  if (providers.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadProviders(*providers, b, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> models, root.OptionalObject("models"));
  if (models.has_value()) MODEENVOY_RETURN_IF_ERROR(ReadModels(*models, b, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* routes, root.OptionalArray("routes"));
  if (routes != nullptr) MODEENVOY_RETURN_IF_ERROR(ReadRoutes(*routes, b, s.get()));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* filters, root.OptionalArray("filters"));
  if (filters != nullptr) MODEENVOY_RETURN_IF_ERROR(ReadFilters(*filters, b, s.get()));
  // Registered sections, in document order; a key nobody registered is an error.
  for (auto it = json.begin(); it != json.end(); ++it) {
    bool engine_key = false;
    for (std::string_view k : kEngineRootKeys) engine_key = engine_key || it.key() == k;
    if (engine_key) continue;
    const std::string path = root.PathOf(it.key());
    std::optional<ConfigSectionBuilder> parse = registry.config().sections().Find(it.key());
    if (!parse.has_value()) return InvalidFieldError(path, "unknown field");
    BuildContext context{.type = it.key(), .name = it.key(), .path = path, .env_lookup = &env,
                         .services = services};
    absl::StatusOr<std::shared_ptr<const ConfigSection>> section =
        (*parse)(it.value().dump(), context);
    if (!section.ok()) return core_internal::PrefixFieldError(section.status(), path);
    s->sections_[it.key()] = std::move(*section);
  }
  s->endpoints_ = registry.endpoints().Table();

  s->served_.reserve(s->models_.size() + s->routes_.size());
  for (const ModelConfig& m : s->models_) s->served_.push_back(m.name);
  for (const RouteConfig& r : s->routes_) s->served_.push_back(r.match_model);
  std::sort(s->served_.begin(), s->served_.end());
  s->served_.erase(std::unique(s->served_.begin(), s->served_.end()), s->served_.end());
  return s;
}

}  // namespace

absl::StatusOr<ResolvedRoute> ConfigSnapshot::Resolve(std::string_view model,
                                                      uint64_t draw) const {
  RoutingRequest request;
  request.model = model;
  request.draw = draw;
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<AttemptPlan> plan, Plan(request));
  std::optional<Attempt> first = plan->Next();
  if (!first.has_value()) {
    return WithErrorCode(absl::NotFoundError(absl::StrFormat(
                             "The model `%s` has no target that can serve it.", model)),
                         "model_not_found");
  }
  return ResolvedRoute{first->model, first->provider, FindRoute(model)};
}

absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> LoadConfig(
    std::string_view json, const ConfigLoadOptions& options) {
  std::unique_ptr<Services> owned;
  Services* services = options.services;
  if (services == nullptr) {
    owned = std::make_unique<Services>();
    services = owned.get();
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<SnapshotImpl> s,
                             Build(json, options, nullptr, services));
  if (owned != nullptr) {
    // The snapshot's builders may hold state from these services: keep them alive with it,
    // and destroy the snapshot first (members go in reverse order).
    struct Holder {
      std::unique_ptr<Services> services;
      std::shared_ptr<SnapshotImpl> snapshot;
    };
    auto holder = std::make_shared<Holder>(Holder{std::move(owned), std::move(s)});
    const ConfigSnapshot* raw = holder->snapshot.get();
    return std::shared_ptr<const ConfigSnapshot>(std::move(holder), raw);
  }
  return std::shared_ptr<const ConfigSnapshot>(std::move(s));
}

// ---------------------------------------------------------------------------------------
// ConfigStore

ConfigStore::ConfigStore(ConfigLoadOptions options) : options_(std::move(options)) {
  if (options_.services == nullptr) {
    owned_services_ = std::make_unique<Services>();
    services_ = owned_services_.get();
  } else {
    services_ = options_.services;
  }
}

ConfigStore::~ConfigStore() {
  // Snapshots (and the state their factories hold) go before the services.
  core_internal::MutexLock lock(&mu_);
  current_.reset();
}

absl::Status ConfigStore::Load(std::string_view json) {
  return LoadInternal(json, false, nullptr);
}

absl::Status ConfigStore::Reload(std::string_view json) {
  return LoadInternal(json, true, nullptr);
}

absl::Status ConfigStore::ReloadWithEnv(std::string_view json, EnvLookup env_lookup) {
  return LoadInternal(json, true, &env_lookup);
}

absl::Status ConfigStore::LoadInternal(std::string_view json, bool require_loaded,
                                       const EnvLookup* env) {
  core_internal::MutexLock load_lock(&load_mu_);
  if (require_loaded && Current() == nullptr) {
    return absl::FailedPreconditionError("no configuration loaded yet; use Load()");
  }
  // Built without the snapshot lock: builders are user code, and requests keep reading
  // the current snapshot meanwhile.
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<SnapshotImpl> s,
                             Build(json, options_, env, services_));
  std::shared_ptr<const ConfigSnapshot> old;  // released after the lock
  core_internal::MutexLock lock(&mu_);
  // Nobody else holds `s` yet, so stamping it here keeps snapshots immutable once shared.
  s->generation_ = ++generation_;
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
