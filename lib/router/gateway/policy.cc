// lib/router/gateway/policy.cc: the "router" routing policy: the engine's RoutingRequest
// planned by a modeenvoy::Router, its AttemptOutcome reported back as the router's
// AttemptResult.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/router/gateway/internal.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"

namespace modeenvoy::router_gateway_internal {

RouterState::RouterState(std::string name, Services* services, uint64_t seed)
    : name_(std::move(name)),
      router_(NewRouter({.clock = &services->clock(), .seed = seed})),
      probes_(std::make_unique<ProbeRunner>(router_.get(), services)) {}

void RouterState::Apply(uint64_t generation, const std::shared_ptr<const RouterConfig>& config,
                        const std::shared_ptr<const std::vector<PoolLayout>>& layout,
                        const std::shared_ptr<const ProbeTable>& probes) {
  core_internal::MutexLock lock(&mu_);
  if (applied_.load(std::memory_order_relaxed) >= generation) return;
  (void)router_->Update(config);  // never null here
  layout_ = layout;
  probes_->SetTargets(probes);
  applied_.store(generation, std::memory_order_release);
}

std::shared_ptr<const std::vector<PoolLayout>> RouterState::layout() const {
  core_internal::MutexLock lock(&mu_);
  return layout_;
}

std::shared_ptr<Counters> RouterState::CountersFor(std::string_view id) {
  core_internal::MutexLock lock(&mu_);
  std::shared_ptr<Counters>& c = counters_[core_internal::ToAbsl(id)];
  if (c == nullptr) c = std::make_shared<Counters>();
  return c;
}

void StateIndex::Add(const std::shared_ptr<RouterState>& state) {
  core_internal::MutexLock lock(&mu_);
  for (auto it = states_.begin(); it != states_.end();) {
    it = it->second.expired() ? states_.erase(it) : std::next(it);
  }
  states_[state->name()] = state;
}

std::map<std::string, std::shared_ptr<RouterState>> StateIndex::Live() const {
  std::map<std::string, std::shared_ptr<RouterState>> out;
  core_internal::MutexLock lock(&mu_);
  for (const auto& [name, weak] : states_) {
    if (std::shared_ptr<RouterState> s = weak.lock()) out.emplace(name, std::move(s));
  }
  return out;
}

namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

// What a deployment id calls, in the snapshot that built the policy.
struct Target {
  const ModelConfig* model = nullptr;
  const ProviderConfig* provider = nullptr;
  std::shared_ptr<Counters> counters;
};

// "select" entry: a request carrying every header value and metadata value listed is planned
// for `model` (another pool) instead of the model it asked for.
struct Selector {
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string model;
};

struct PolicyConfig {
  std::vector<Selector> selectors;
  std::shared_ptr<RouterState> state;
  std::shared_ptr<StateIndex> index;  // keeps the index alive as long as a policy is
  uint64_t generation = 0;
  std::shared_ptr<const RouterConfig> router_config;
  std::shared_ptr<const std::vector<PoolLayout>> layout;
  std::shared_ptr<const ProbeTable> probes;
  absl::flat_hash_map<std::string, Target> targets;  // by deployment id
};

UpstreamFailure ToRouterFailure(FailureClass failure) {
  switch (failure) {
    case FailureClass::kNone: return UpstreamFailure::kNone;
    case FailureClass::kRateLimited: return UpstreamFailure::kRateLimited;
    case FailureClass::kServerError: return UpstreamFailure::kServerError;
    case FailureClass::kTimeout: return UpstreamFailure::kTimeout;
    case FailureClass::kConnect: return UpstreamFailure::kConnect;
    case FailureClass::kContextLength: return UpstreamFailure::kContextLength;
    case FailureClass::kContentFilter: return UpstreamFailure::kContentFilter;
    case FailureClass::kClientError: return UpstreamFailure::kClientError;
    // An answer that could not be read or translated is the upstream's fault.
    case FailureClass::kProtocol: return UpstreamFailure::kServerError;
  }
  return UpstreamFailure::kServerError;
}

class RouterAttemptPlan final : public AttemptPlan {
 public:
  RouterAttemptPlan(std::shared_ptr<const PolicyConfig> config, std::unique_ptr<RoutePlan> plan)
      : config_(std::move(config)), plan_(std::move(plan)) {}

  std::optional<Attempt> Next() override {
    while (std::optional<PlannedAttempt> planned = plan_->Next()) {
      auto it = config_->targets.find(planned->deployment->id);
      if (it == config_->targets.end()) {
        // Planned by a newer configuration (a reload between this request's start and its
        // plan) with a deployment this snapshot does not have: give the slot back, go on.
        AttemptResult skipped;
        skipped.failure = UpstreamFailure::kCancelled;
        plan_->Report(*planned, skipped);
        continue;
      }
      last_ = *planned;
      target_ = &it->second;
      target_->counters->attempts.fetch_add(1, std::memory_order_relaxed);
      Attempt attempt{it->second.model, it->second.provider, planned->index};
      attempt.delay = planned->delay;
      attempt.hedge_after = planned->hedge_after;
      return attempt;
    }
    return std::nullopt;
  }

  void Report(const Attempt& attempt, const AttemptOutcome& outcome) override {
    // The hedged attempt (Hedge()) or the one Next() returned last.
    const bool hedged = attempt.hedge && hedge_.has_value() && attempt.index == hedge_->index;
    std::optional<PlannedAttempt>& planned = hedged ? hedge_ : last_;
    const Target*& target = hedged ? hedge_target_ : target_;
    if (!planned.has_value()) return;
    AttemptResult result;
    result.failure = outcome.cancelled ? UpstreamFailure::kCancelled
                                       : ToRouterFailure(outcome.failure);
    result.retry_after = outcome.retry_after;
    result.latency = outcome.latency;
    result.time_to_first_token = outcome.first_byte_time;
    if (result.failure == UpstreamFailure::kNone) {
      target->counters->successes.fetch_add(1, std::memory_order_relaxed);
    }
    if (outcome.cancelled) target->counters->cancelled.fetch_add(1, std::memory_order_relaxed);
    plan_->Report(*planned, result);
    planned.reset();
    if (!hedged && outcome.failure != FailureClass::kNone && !outcome.cancelled &&
        hedge_.has_value()) {
      // The first attempt failed with the hedge still out: the hedge is the request's
      // attempt now (the router planned it so), reported as Next()'s would be.
      last_ = std::move(hedge_);
      target_ = hedge_target_;
      hedge_.reset();
    }
  }

  std::optional<Attempt> Hedge() override {
    std::optional<PlannedAttempt> planned = plan_->Hedge();
    if (!planned.has_value()) return std::nullopt;
    auto it = config_->targets.find(planned->deployment->id);
    if (it == config_->targets.end()) {
      AttemptResult skipped;
      skipped.failure = UpstreamFailure::kCancelled;
      plan_->Report(*planned, skipped);
      return std::nullopt;
    }
    hedge_ = *planned;
    hedge_target_ = &it->second;
    hedge_target_->counters->attempts.fetch_add(1, std::memory_order_relaxed);
    hedge_target_->counters->hedges.fetch_add(1, std::memory_order_relaxed);
    Attempt attempt{it->second.model, it->second.provider, planned->index};
    attempt.hedge = true;
    return attempt;
  }

 private:
  std::shared_ptr<const PolicyConfig> config_;
  std::unique_ptr<RoutePlan> plan_;
  std::optional<PlannedAttempt> last_;
  const Target* target_ = nullptr;
  std::optional<PlannedAttempt> hedge_;  // the hedged attempt while it is out
  const Target* hedge_target_ = nullptr;
};

bool Selects(const Selector& sel, const RoutingRequest& request) {
  for (const auto& [name, value] : sel.headers) {
    if (request.headers == nullptr) return false;
    std::optional<std::string_view> v = FindHeader(*request.headers, name);
    if (!v.has_value() || *v != value) return false;
  }
  for (const auto& [key, value] : sel.metadata) {
    if (request.metadata == nullptr) return false;
    auto it = request.metadata->find(key);
    if (it == request.metadata->end() || it->second != value) return false;
  }
  return true;
}

// Reads an object of string values at `path` into `out`.
absl::Status ReadStringMap(const Json& value, const std::string& path,
                           std::vector<std::pair<std::string, std::string>>* out) {
  if (!value.is_object()) return InvalidFieldError(path, "must be an object");
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) {
      return InvalidFieldError(core_internal::ChildPath(path, it.key()), "must be a string");
    }
    out->emplace_back(it.key(), it.value().get<std::string>());
  }
  return absl::OkStatus();
}

class RouterPolicy final : public RoutingPolicy {
 public:
  explicit RouterPolicy(std::shared_ptr<const PolicyConfig> config) : config_(std::move(config)) {}

  absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(const RoutingRequest& request) const override {
    RouterState& state = *config_->state;
    if (!state.Applied(config_->generation)) {
      state.Apply(config_->generation, config_->router_config, config_->layout, config_->probes);
    }
    RouteRequest route;
    route.model = request.model;
    for (const Selector& sel : config_->selectors) {
      if (Selects(sel, request)) {
        route.model = sel.model;
        break;
      }
    }
    route.draw = request.draw;
    if (request.headers != nullptr) {
      if (std::optional<std::string_view> s = FindHeader(*request.headers, "x-session-id")) {
        route.session_id = *s;
      }
    }
    if (request.metadata != nullptr) {
      auto it = request.metadata->find("api_key.name");
      if (it != request.metadata->end()) route.tenant = it->second;
    }
    if (request.chat != nullptr) {
      for (const Message& m : request.chat->messages) {
        if (m.role != Role::kSystem || !m.content.has_value()) continue;
        if (const auto* text = std::get_if<std::string>(&*m.content)) route.system_prompt = *text;
        break;
      }
      const std::optional<int64_t>& bound = request.chat->max_completion_tokens.has_value()
                                                ? request.chat->max_completion_tokens
                                                : request.chat->max_tokens;
      route.max_tokens = bound.value_or(0);
      route.streaming = request.chat->stream.value_or(false);
    }
    absl::StatusOr<std::unique_ptr<RoutePlan>> plan = state.router().Plan(route);
    // The engine does not drive the overflow queue: a waiting plan answers as a full pool.
    if (plan.ok() && (*plan)->waiting()) plan = absl::ResourceExhaustedError("queue: waiting");
    if (!plan.ok()) {
      switch (plan.status().code()) {
        case absl::StatusCode::kNotFound:
          return WithErrorCode(
              absl::NotFoundError(absl::StrFormat(
                  "The model `%s` has no pool in the router of route state \"%s\".",
                  request.model, state.name())),
              "model_not_found");
        case absl::StatusCode::kResourceExhausted:
          return WithErrorHeaders(
              WithHttpStatus(absl::ResourceExhaustedError(absl::StrFormat(
                                 "Every deployment of `%s` is at capacity; retry shortly.",
                                 request.model)),
                             429),
              {{"retry-after", "1"}});
        default:
          return plan.status();
      }
    }
    return std::make_unique<RouterAttemptPlan>(config_, *std::move(plan));
  }

 private:
  std::shared_ptr<const PolicyConfig> config_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildRouterPolicy(
    std::string_view options_json, const RouteBuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(json, ""));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> state_name, r.OptionalString("state"));
  json.erase("state");
  MODEENVOY_ASSIGN_OR_RETURN(const Json* select, r.OptionalArray("select"));
  std::vector<Selector> selectors;
  if (select != nullptr) {
    for (size_t i = 0; i < select->size(); ++i) {
      const std::string spath = IndexPath("select", i);
      MODEENVOY_ASSIGN_OR_RETURN(ObjectReader sr, ObjectReader::Make((*select)[i], spath));
      MODEENVOY_RETURN_IF_ERROR(sr.RejectUnknown({"header", "metadata", "model"}));
      Selector& sel = selectors.emplace_back();
      MODEENVOY_ASSIGN_OR_RETURN(sel.model, sr.RequiredString("model"));
      if (const Json* h = sr.Find("header")) {
        MODEENVOY_RETURN_IF_ERROR(ReadStringMap(*h, sr.PathOf("header"), &sel.headers));
        for (const auto& [name, value] : sel.headers) {
          MODEENVOY_RETURN_IF_ERROR(
              core_internal::ValidateHeader(core_internal::ChildPath(sr.PathOf("header"), name),
                                            name, value));
        }
      }
      if (const Json* m = sr.Find("metadata")) {
        MODEENVOY_RETURN_IF_ERROR(ReadStringMap(*m, sr.PathOf("metadata"), &sel.metadata));
      }
      if (sel.headers.empty() && sel.metadata.empty()) {
        return InvalidFieldError(spath, "needs \"header\" or \"metadata\" conditions");
      }
    }
    json.erase("select");
  }
  auto config = std::make_shared<PolicyConfig>();
  auto layout = std::make_shared<std::vector<PoolLayout>>();
  auto probes = std::make_shared<ProbeTable>();
  // Deployments name gateway models: fill in what the router calls "provider", "model" and
  // "dialect" from the model's configuration, then let the router's parser check the rest.
  if (Json* pools = json.contains("pools") ? &json["pools"] : nullptr;
      pools != nullptr && pools->is_array()) {
    for (size_t i = 0; i < pools->size(); ++i) {
      Json& pool = (*pools)[i];
      if (!pool.is_object()) continue;  // the router's parser names the error
      PoolLayout& pl = layout->emplace_back();
      if (pool.contains("name") && pool["name"].is_string()) pl.name = pool["name"].get<std::string>();
      if (!pool.contains("deployments") || !pool["deployments"].is_array()) continue;
      Json& deployments = pool["deployments"];
      for (size_t j = 0; j < deployments.size(); ++j) {
        const std::string dpath = IndexPath(IndexPath("pools", i) + ".deployments", j);
        MODEENVOY_ASSIGN_OR_RETURN(ObjectReader dr, ObjectReader::Make(deployments[j], dpath));
        for (std::string_view key : {"provider", "dialect"}) {
          if (dr.Has(key)) {
            return InvalidFieldError(
                dr.PathOf(key),
                "not a key of the \"router\" policy: it comes from the model's provider");
          }
        }
        MODEENVOY_ASSIGN_OR_RETURN(std::string id, dr.RequiredString("id"));
        MODEENVOY_ASSIGN_OR_RETURN(std::string name, dr.RequiredString("model"));
        const ModelConfig* model = context.find_model(name);
        if (model == nullptr) {
          return InvalidFieldError(dr.PathOf("model"),
                                   absl::StrFormat("unknown model \"%s\" (a key of `models`)", name));
        }
        const ProviderConfig* provider = context.provider_of(*model);
        Json& d = deployments[j];
        // "health_check.probe" is this policy's key (how to probe through the dialect); the
        // router's parser checks the rest of "health_check".
        if (d.contains("health_check") && d["health_check"].is_object()) {
          Json& hc = d["health_check"];
          const std::string hpath = dr.PathOf("health_check");
          if (hc.contains("body")) {
            return InvalidFieldError(
                core_internal::ChildPath(hpath, "body"),
                "not a key of the \"router\" policy: the probe's body comes from the dialect");
          }
          ProbeTarget& probe = (*probes)[id];
          probe.provider = provider->name;
          probe.upstream_model = model->upstream_model;
          probe.dialect = provider->dialect;
          probe.timeouts = provider->timeouts;
          if (hc.contains("probe")) {
            const Json& kind = hc["probe"];
            if (!kind.is_string() || (kind != "chat" && kind != "get")) {
              return InvalidFieldError(core_internal::ChildPath(hpath, "probe"),
                                       "must be \"chat\" or \"get\"");
            }
            probe.get = kind == "get";
            hc.erase("probe");
          }
          if (!probe.get && hc.contains("path")) {
            return InvalidFieldError(core_internal::ChildPath(hpath, "path"),
                                     "only for \"probe\": \"get\"");
          }
        }
        d["provider"] = provider->name;
        d["model"] = model->upstream_model;
        d["dialect"] = provider->type;
        pl.members.push_back({id, name, provider->name});
        // A repeated id is the router parser's error; keep the first here.
        config->targets.try_emplace(id, Target{model, provider, nullptr});
      }
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(config->router_config, ParseRouterConfig(json.dump()));
  if (!config->router_config->PoolFor(context.name).has_value()) {
    return InvalidFieldError("pools", absl::StrFormat("no pool serves the route's model \"%s\"",
                                                      context.name));
  }
  for (size_t i = 0; i < selectors.size(); ++i) {
    if (!config->router_config->PoolFor(selectors[i].model).has_value()) {
      return InvalidFieldError(IndexPath("select", i) + ".model",
                               absl::StrFormat("no pool serves \"%s\"", selectors[i].model));
    }
  }
  config->selectors = std::move(selectors);
  Services& services = *context.services;
  const std::string name = state_name.value_or(std::string(context.name));
  config->state = services.State<RouterState>(
      absl::StrFormat("router_gateway.state.%s", name), [&] {
        return std::make_shared<RouterState>(name, &services, services.Random());
      });
  config->index = services.State<StateIndex>(kIndexName, [] {
    return std::make_shared<StateIndex>();
  });
  if (config->state == nullptr || config->index == nullptr) {
    return absl::InternalError("router_gateway: a Services name is taken by another type");
  }
  config->index->Add(config->state);
  for (auto& [id, target] : config->targets) target.counters = config->state->CountersFor(id);
  config->generation = config->state->NextGeneration();
  config->layout = std::move(layout);
  // Paths and jitter of the probes as the router's parser read them (defaults included).
  for (const RouterDeployment& d : config->router_config->deployments()) {
    auto it = probes->find(d.id);
    if (it == probes->end() || !d.health_check.has_value()) continue;
    it->second.path = d.health_check->path;
    it->second.jitter = d.health_check->jitter;
  }
  config->probes = std::move(probes);
  // The first configuration of a state is applied at once, so its probes start before the
  // first request; later ones when their first request is planned (a load that fails after
  // this route was built must not replace the published configuration's router).
  if (!config->state->Applied(1)) {
    config->state->Apply(config->generation, config->router_config, config->layout,
                         config->probes);
  }
  return std::make_unique<RouterPolicy>(std::move(config));
}

}  // namespace modeenvoy::router_gateway_internal
