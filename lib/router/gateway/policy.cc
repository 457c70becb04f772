// lib/router/gateway/policy.cc: the "router" routing policy: the engine's RoutingRequest
// planned by a modeenvoy::Router, its AttemptOutcome reported back as the router's
// AttemptResult.
#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/router/gateway/internal.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/model.h"

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
  // In a peak_ewma pool: its attempts ask for usage, whose output tokens teach the router
  // the deployment's decode time (AttemptResult::output_tokens).
  bool wants_usage = false;
};

// "select" entry: a request carrying every header value and metadata value listed is planned
// for `model` (another pool) instead of the model it asked for.
struct Selector {
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::string model;
};

// How a pool's requests are counted for the router's prompt_tokens: with the encoding of its
// first deployment's upstream model, by that model's chat rules. Only pools whose rules look
// at prompt_tokens, or whose deployments (or rule targets' deployments) have a context
// window, have one: requests to other pools are never tokenized.
struct TokenCounting {
  std::shared_ptr<const Encoding> encoding;
  std::string model;  // ChatTokenOptions::model
};

struct PolicyConfig {
  std::vector<Selector> selectors;
  const Clock* clock = nullptr;  // the router's (Services') clock
  // "request_timeout_ms": the request's deadline across the queue wait and every attempt.
  absl::Duration request_timeout = absl::InfiniteDuration();
  absl::flat_hash_map<std::string, TokenCounting> counting;  // by pool name
  bool queues = false;  // a pool has a "queue": plans get the engine's wake
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
    case FailureClass::kReset: return UpstreamFailure::kReset;
    case FailureClass::kContextLength: return UpstreamFailure::kContextLength;
    case FailureClass::kContentFilter: return UpstreamFailure::kContentFilter;
    case FailureClass::kClientError: return UpstreamFailure::kClientError;
    // An answer that could not be read or translated is the upstream's fault.
    case FailureClass::kProtocol: return UpstreamFailure::kServerError;
  }
  return UpstreamFailure::kServerError;
}

// The client's answer for a router status that is not a plan: capacity (a full pool or
// queue, a queue wait that timed out) is a 429 whose retry-after is the router's hint
// rounded up to whole seconds (1 without one); the request's deadline is a 504.
absl::Status ClientStatus(const absl::Status& status, std::string_view model,
                          const RouterState& state) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return WithErrorCode(
          absl::NotFoundError(absl::StrFormat(
              "The model `%s` has no pool in the router of route state \"%s\".", model,
              state.name())),
          "model_not_found");
    case absl::StatusCode::kResourceExhausted: {
      int64_t seconds = 1;
      if (std::optional<absl::Duration> hint = RouterRetryAfter(status)) {
        seconds = std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(*hint, absl::Seconds(1))));
      }
      return WithErrorHeaders(
          WithHttpStatus(absl::ResourceExhaustedError(absl::StrFormat(
                             "Every deployment of `%s` is at capacity (%s); retry shortly.",
                             model, status.message())),
                         429),
          {{"retry-after", absl::StrFormat("%d", seconds)}});
    }
    case absl::StatusCode::kDeadlineExceeded:
      return WithHttpStatus(absl::DeadlineExceededError(absl::StrFormat(
                                "The request for `%s` ran out of time: %s.", model,
                                status.message())),
                            504);
    default:
      return status;
  }
}

class RouterAttemptPlan final : public AttemptPlan {
 public:
  RouterAttemptPlan(std::shared_ptr<const PolicyConfig> config, std::unique_ptr<RoutePlan> plan,
                    std::string model, absl::Time deadline, bool streaming)
      : config_(std::move(config)),
        plan_(std::move(plan)),
        model_(std::move(model)),
        deadline_(deadline),
        streaming_(streaming) {}

  // The router's overflow queue: Poll() on every wake and at the wait's end.
  absl::StatusOr<absl::Duration> Wait() override {
    if (!plan_->waiting()) return absl::ZeroDuration();
    if (!plan_->Poll()) {
      return std::max(plan_->wait_deadline() - config_->clock->MonotonicNow(),
                      absl::Nanoseconds(1));
    }
    if (absl::Status s = plan_->final_status(); !s.ok()) {
      return ClientStatus(s, model_, *config_->state);
    }
    return absl::ZeroDuration();
  }

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
      attempt.wants_usage = planned->deployment->tpm > 0 || it->second.wants_usage;
      SetTimeouts(*planned, &attempt);
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
    // A stream's response head comes with its first token (or is an error's head); a whole
    // answer's head comes after its last token, so it has no first token to report.
    if (streaming_ && outcome.first_byte_time > absl::ZeroDuration()) {
      result.time_to_first_token = outcome.first_byte_time;
    }
    if (outcome.usage.has_value()) {  // tpm, peak_ewma's decode time (Attempt::wants_usage)
      result.input_tokens = std::max<int64_t>(outcome.usage->prompt_tokens, 0);
      result.output_tokens = std::max<int64_t>(outcome.usage->completion_tokens, 0);
    }
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
    attempt.wants_usage = planned->deployment->tpm > 0 || it->second.wants_usage;
    SetTimeouts(*planned, &attempt);
    return attempt;
  }

 private:
  std::shared_ptr<const PolicyConfig> config_;
  std::unique_ptr<RoutePlan> plan_;
  std::string model_;  // the public model asked for, for error messages
  std::optional<PlannedAttempt> last_;
  const Target* target_ = nullptr;
  std::optional<PlannedAttempt> hedge_;  // the hedged attempt while it is out
  const Target* hedge_target_ = nullptr;
  absl::Time deadline_;  // RouteRequest::deadline (InfiniteFuture: none)
  const bool streaming_;  // RouteRequest::streaming

  // The router's per-try timeout (already bounded by the deadline) and the deadline itself.
  void SetTimeouts(const PlannedAttempt& planned, Attempt* attempt) const {
    attempt->timeout = planned.timeout;
    attempt->deadline = deadline_;
    attempt->request_timeout = config_->request_timeout;
  }
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
    if (request.metadata != nullptr) {
      auto it = request.metadata->find("api_key.tier");
      if (it != request.metadata->end()) route.key_tier = it->second;
      // The key's budget left, published by a budget filter (a host's, or a component's)
      // as a decimal number; anything else leaves it unknown (no remaining_budget rule
      // matches).
      it = request.metadata->find("budget.remaining");
      double remaining = 0;
      if (it != request.metadata->end() &&
          absl::SimpleAtod(it->second, &remaining) &&
          std::isfinite(remaining)) {
        route.remaining_budget = remaining;
      }
    }
    std::string prompt;  // the last user message's text, when it has parts
    if (request.chat != nullptr) {
      const ChatRequest& chat = *request.chat;
      for (const Message& m : chat.messages) {
        if (m.role != Role::kSystem || !m.content.has_value()) continue;
        if (const auto* text = std::get_if<std::string>(&*m.content)) route.system_prompt = *text;
        break;
      }
      const std::optional<int64_t>& bound = chat.max_completion_tokens.has_value()
                                                ? chat.max_completion_tokens
                                                : chat.max_tokens;
      route.max_tokens = bound.value_or(0);
      route.streaming = chat.stream.value_or(false);
      // The complexity score's text: the last user message.
      for (auto m = chat.messages.rbegin(); m != chat.messages.rend(); ++m) {
        if (m->role != Role::kUser || !m->content.has_value()) continue;
        if (const auto* text = std::get_if<std::string>(&*m->content)) {
          route.prompt = *text;
        } else {
          for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m->content)) {
            if (part.type != ContentPartType::kText) continue;
            if (!prompt.empty()) prompt += '\n';
            prompt += part.text;
          }
          route.prompt = prompt;
        }
        break;
      }
      if (!config_->counting.empty()) {
        if (std::optional<std::string> pool = config_->router_config->PoolFor(route.model)) {
          auto it = config_->counting.find(*pool);
          if (it != config_->counting.end()) {
            ChatTokenOptions options;
            options.model = it->second.model;
            route.prompt_tokens = CountChatTokens(*it->second.encoding, chat, options).prompt_tokens;
          }
        }
      }
    }
    if (config_->request_timeout != absl::InfiniteDuration()) {
      route.deadline = config_->clock->MonotonicNow() + config_->request_timeout;
    }
    if (config_->queues && request.make_wake) route.on_queue_wake = request.make_wake();
    absl::StatusOr<std::unique_ptr<RoutePlan>> plan = state.router().Plan(route);
    // A caller that cannot wait (no make_wake) gets a waiting plan answered as a full pool; the
    // plan's destruction leaves the queue.
    if (plan.ok() && (*plan)->waiting() && !request.make_wake) {
      plan = absl::ResourceExhaustedError("the caller cannot wait in the pool's queue");
    }
    if (!plan.ok()) return ClientStatus(plan.status(), request.model, state);
    return std::make_unique<RouterAttemptPlan>(config_, *std::move(plan),
                                               std::string(request.model), route.deadline,
                                               route.streaming);
  }

 private:
  std::shared_ptr<const PolicyConfig> config_;
};

// Which pools count prompt tokens (TokenCounting), from the router JSON the parser accepted:
// a pool with a rule on "prompt_tokens", with a deployment that has a context window, or
// with a rule whose target pool has one (context fit applies on the target).
absl::Status PlanTokenCounting(const Json& json, const RouterConfig& config,
                               absl::flat_hash_map<std::string, TokenCounting>* out) {
  const Json* pools = json.contains("pools") ? &json["pools"] : nullptr;
  if (pools == nullptr) return absl::OkStatus();
  auto has_window = [](const Json& pool) {
    for (const Json& d : pool["deployments"]) {
      if (d.value("context_window", int64_t{0}) > 0) return true;
    }
    return false;
  };
  absl::flat_hash_map<std::string, const Json*> by_name;
  for (const Json& pool : *pools) by_name[pool["name"].get<std::string>()] = &pool;
  for (size_t i = 0; i < pools->size(); ++i) {
    const Json& pool = (*pools)[i];
    bool needed = has_window(pool);
    if (pool.contains("rules")) {
      for (const Json& rule : pool["rules"]) {
        if (rule.contains("prompt_tokens")) needed = true;
        if (std::optional<std::string> to = config.PoolFor(rule.value("to", std::string()))) {
          auto it = by_name.find(*to);
          if (it != by_name.end() && has_window(*it->second)) needed = true;
        }
      }
    }
    if (!needed || pool["deployments"].empty()) continue;
    TokenCounting counting;
    counting.model = pool["deployments"][0]["model"].get<std::string>();
    absl::StatusOr<std::string> name = EncodingNameForModel(counting.model);
    const std::string encoding = name.ok() ? *name : std::string("o200k_base");
    absl::StatusOr<std::shared_ptr<const Encoding>> loaded = GetEncoding(encoding);
    if (!loaded.ok()) {
      return InvalidFieldError(
          IndexPath("pools", i),
          absl::StrFormat("counting prompt tokens (rules on prompt_tokens, context windows) "
                          "needs the tokenizer encoding \"%s\": %s",
                          encoding, loaded.status().message()));
    }
    counting.encoding = *std::move(loaded);
    (*out)[pool["name"].get<std::string>()] = std::move(counting);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildRouterPolicy(
    std::string_view options_json, const RouteBuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(json, ""));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> state_name, r.OptionalString("state"));
  json.erase("state");
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> request_timeout_ms,
                             r.OptionalInt("request_timeout_ms", 1, int64_t{86400000}));
  json.erase("request_timeout_ms");
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
      const bool peak_ewma = pool.contains("lb") && pool["lb"].is_object() &&
                             pool["lb"].value("policy", std::string()) == "peak_ewma";
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
        // The model's configured context window, unless the deployment sets its own.
        if (!d.contains("context_window")) {
          if (const auto* limit = static_cast<const ModelTokenLimit*>(
                  model->extension("context_window"))) {
            d["context_window"] = limit->tokens;
          }
        }
        pl.members.push_back({id, name, provider->name});
        // A repeated id is the router parser's error; keep the first here.
        config->targets.try_emplace(id, Target{model, provider, nullptr, peak_ewma});
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
  MODEENVOY_RETURN_IF_ERROR(PlanTokenCounting(json, *config->router_config, &config->counting));
  if (json.contains("pools")) {
    for (const Json& pool : json["pools"]) config->queues |= pool.contains("queue");
  }
  if (request_timeout_ms.has_value()) {
    config->request_timeout = absl::Milliseconds(*request_timeout_ms);
  }
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
  config->clock = &services.clock();
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
