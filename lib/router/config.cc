#include "lib/router/config.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/router/hash.h"

namespace modeenvoy {
namespace router_internal {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

absl::Status FieldError(const std::string& path, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", core_internal::ToAbsl(message)));
}

absl::StatusOr<std::optional<double>> OptionalNumber(const ObjectReader& r, std::string_view key,
                                                     double min, double max) {
  const Json* v = r.Find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return FieldError(r.PathOf(key), "must be a number");
  double d = v->get<double>();
  if (!std::isfinite(d) || d < min) {
    return FieldError(r.PathOf(key), absl::StrCat("must be >= ", min));
  }
  if (d > max) return FieldError(r.PathOf(key), absl::StrCat("must be <= ", max));
  return d;
}

absl::StatusOr<std::optional<bool>> OptionalBool(const ObjectReader& r, std::string_view key) {
  const Json* v = r.Find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return FieldError(r.PathOf(key), "must be a boolean");
  return v->get<bool>();
}

// Reads an integer field into *out when present.
template <typename T>
absl::Status ReadInt(const ObjectReader& r, std::string_view key, int64_t min, int64_t max,
                     T* out) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> v, r.OptionalInt(key, min, max));
  if (v) *out = static_cast<T>(*v);
  return absl::OkStatus();
}

absl::Status ReadMs(const ObjectReader& r, std::string_view key, int64_t min,
                    absl::Duration* out) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> v,
                             r.OptionalInt(key, min, int64_t{24} * 3600 * 1000));
  if (v) *out = absl::Milliseconds(*v);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> StringList(const ObjectReader& r, std::string_view key) {
  std::vector<std::string> out;
  MODEENVOY_ASSIGN_OR_RETURN(const Json* arr, r.OptionalArray(key));
  if (arr == nullptr) return out;
  for (size_t i = 0; i < arr->size(); ++i) {
    const Json& e = (*arr)[i];
    std::string path = IndexPath(r.PathOf(key), i);
    if (!e.is_string()) return FieldError(path, "must be a string");
    if (e.get_ref<const std::string&>().empty()) return FieldError(path, "must not be empty");
    out.push_back(e.get<std::string>());
  }
  return out;
}

absl::StatusOr<RouterDeployment> ParseDeployment(const ObjectReader& r) {
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown(
      {"id", "provider", "model", "dialect", "region", "weight", "tier", "context_window",
       "max_in_flight", "rpm", "tpm", "input_price_per_mtok", "output_price_per_mtok",
       "health_check"}));
  RouterDeployment d;
  MODEENVOY_ASSIGN_OR_RETURN(d.id, r.RequiredString("id"));
  MODEENVOY_ASSIGN_OR_RETURN(d.provider, r.RequiredString("provider"));
  MODEENVOY_ASSIGN_OR_RETURN(d.upstream_model, r.RequiredString("model"));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> dialect, r.OptionalString("dialect"));
  d.dialect = dialect.value_or("openai");
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> region, r.OptionalString("region"));
  d.region = region.value_or("");
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "weight", 1, 1000, &d.weight));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "tier", 0, 7, &d.tier));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "context_window", 0, int64_t{1} << 40, &d.context_window));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "max_in_flight", 0, 1 << 30, &d.max_in_flight));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "rpm", 0, int64_t{1} << 40, &d.rpm));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "tpm", 0, int64_t{1} << 50, &d.tpm));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> in,
                             OptionalNumber(r, "input_price_per_mtok", 0, 1e9));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> out,
                             OptionalNumber(r, "output_price_per_mtok", 0, 1e9));
  d.input_price_per_mtok = in.value_or(0);
  d.output_price_per_mtok = out.value_or(0);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> hc, r.OptionalObject("health_check"));
  if (hc) {
    MODEENVOY_RETURN_IF_ERROR(hc->RejectUnknown({"path", "body", "interval_ms", "timeout_ms",
                                                 "jitter_ms", "healthy_threshold",
                                                 "unhealthy_threshold"}));
    RouterHealthCheck check;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> path, hc->OptionalString("path"));
    if (path) {
      if (path->empty() || (*path)[0] != '/') {
        return FieldError(hc->PathOf("path"), "must start with '/'");
      }
      check.path = *path;
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> body, hc->OptionalString("body"));
    check.body = body.value_or("");
    MODEENVOY_RETURN_IF_ERROR(ReadMs(*hc, "interval_ms", 100, &check.interval));
    MODEENVOY_RETURN_IF_ERROR(ReadMs(*hc, "timeout_ms", 1, &check.timeout));
    MODEENVOY_RETURN_IF_ERROR(ReadMs(*hc, "jitter_ms", 0, &check.jitter));
    MODEENVOY_RETURN_IF_ERROR(ReadInt(*hc, "healthy_threshold", 1, 100, &check.healthy_threshold));
    MODEENVOY_RETURN_IF_ERROR(
        ReadInt(*hc, "unhealthy_threshold", 1, 100, &check.unhealthy_threshold));
    if (check.timeout > check.interval) {
      return FieldError(hc->PathOf("timeout_ms"), "must be <= interval_ms");
    }
    d.health_check = std::move(check);
  }
  return d;
}

absl::Status ParseLb(const ObjectReader& r, LbConfig* lb) {
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"policy", "hash_key", "sticky", "ewma_decay_ms",
                                             "balance_factor", "vnodes",
                                             "maglev_table_size"}));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> policy, r.OptionalString("policy"));
  if (policy) {
    static constexpr std::pair<std::string_view, LbKind> kNames[] = {
        {"round_robin", LbKind::kRoundRobin}, {"weighted_round_robin", LbKind::kWeightedRoundRobin},
        {"least_request", LbKind::kLeastRequest}, {"peak_ewma", LbKind::kPeakEwma},
        {"ring_hash", LbKind::kRingHash}, {"maglev", LbKind::kMaglev}};
    auto it = std::find_if(std::begin(kNames), std::end(kNames),
                           [&](const auto& e) { return e.first == *policy; });
    if (it == std::end(kNames)) {
      return FieldError(r.PathOf("policy"),
                        absl::StrCat("unknown policy \"", *policy,
                                     "\" (round_robin, weighted_round_robin, least_request, "
                                     "peak_ewma, ring_hash, maglev)"));
    }
    lb->kind = it->second;
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> key, r.OptionalString("hash_key"));
  if (key) {
    if (*key == "session") {
      lb->hash_key = HashKey::kSession;
    } else if (*key == "tenant_prompt") {
      lb->hash_key = HashKey::kTenantPrompt;
    } else if (*key == "tenant") {
      lb->hash_key = HashKey::kTenant;
    } else {
      return FieldError(r.PathOf("hash_key"), absl::StrCat("unknown hash key \"", *key,
                                                           "\" (session, tenant_prompt, tenant)"));
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<bool> sticky, OptionalBool(r, "sticky"));
  lb->sticky = sticky.value_or(false);
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "ewma_decay_ms", 1, 3600 * 1000, &lb->ewma_decay_ms));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> factor,
                             OptionalNumber(r, "balance_factor", 1.0, 100.0));
  if (factor) {
    if (*factor <= 1.0) return FieldError(r.PathOf("balance_factor"), "must be > 1");
    lb->balance_factor = *factor;
  }
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "vnodes", 1, 10000, &lb->vnodes));
  MODEENVOY_RETURN_IF_ERROR(
      ReadInt(r, "maglev_table_size", 7, 1 << 20, &lb->maglev_table_size));
  int m = lb->maglev_table_size;
  for (int p = 2; p * p <= m; ++p) {
    if (m % p == 0) return FieldError(r.PathOf("maglev_table_size"), "must be prime");
  }
  return absl::OkStatus();
}

absl::Status ParseOutlier(const ObjectReader& r, OutlierConfig* o) {
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown(
      {"consecutive_failures", "failure_percentage", "min_requests", "window_ms",
       "base_ejection_ms", "max_ejection_ms", "ejection_jitter_ms", "max_ejected_percent",
       "rate_limit_cooldown_ms"}));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "consecutive_failures", 0, 1000, &o->consecutive_failures));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "failure_percentage", 0, 100, &o->failure_percentage));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "min_requests", 1, 1 << 20, &o->min_requests));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "window_ms", 1, &o->window));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "base_ejection_ms", 1, &o->base_ejection));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "max_ejection_ms", 1, &o->max_ejection));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "ejection_jitter_ms", 0, &o->ejection_jitter));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "max_ejected_percent", 0, 100, &o->max_ejected_percent));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "rate_limit_cooldown_ms", 0, &o->rate_limit_cooldown));
  if (o->max_ejection < o->base_ejection) {
    return FieldError(r.PathOf("max_ejection_ms"), "must be >= base_ejection_ms");
  }
  return absl::OkStatus();
}

absl::Status ParseRetry(const ObjectReader& r, RetryConfig* c) {
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown(
      {"max_attempts", "retry_on", "backoff_base_ms", "backoff_max_ms", "per_try_timeout_ms"}));
  MODEENVOY_RETURN_IF_ERROR(ReadInt(r, "max_attempts", 1, 16, &c->max_attempts));
  if (r.Has("retry_on")) {
    MODEENVOY_ASSIGN_OR_RETURN(std::vector<std::string> names, StringList(r, "retry_on"));
    c->retry_on = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      std::optional<UpstreamFailure> f = UpstreamFailureFromName(names[i]);
      if (!f || *f == UpstreamFailure::kNone || *f == UpstreamFailure::kClientError ||
          *f == UpstreamFailure::kCancelled) {
        return FieldError(IndexPath(r.PathOf("retry_on"), i),
                          absl::StrCat("\"", names[i],
                                       "\" is not a retriable failure (429, 5xx, timeout, "
                                       "connect, reset, context_length, content_filter)"));
      }
      c->retry_on |= FailureBit(*f);
    }
  }
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "backoff_base_ms", 0, &c->backoff_base));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "backoff_max_ms", 0, &c->backoff_max));
  MODEENVOY_RETURN_IF_ERROR(ReadMs(r, "per_try_timeout_ms", 1, &c->per_try_timeout));
  if (c->backoff_max < c->backoff_base) {
    return FieldError(r.PathOf("backoff_max_ms"), "must be >= backoff_base_ms");
  }
  return absl::OkStatus();
}

uint32_t DefaultRetryOn() {
  uint32_t bits = 0;
  for (UpstreamFailure f :
       {UpstreamFailure::kRateLimited, UpstreamFailure::kServerError, UpstreamFailure::kTimeout,
        UpstreamFailure::kConnect, UpstreamFailure::kReset, UpstreamFailure::kContextLength,
        UpstreamFailure::kContentFilter}) {
    bits |= FailureBit(f);
  }
  return bits;
}

bool IsWildcard(std::string_view name) { return !name.empty() && name.back() == '*'; }

}  // namespace

std::vector<uint8_t> SmoothWrrSequence(const std::vector<int>& weights) {
  // nginx's smooth weighted round robin: every pick adds each weight to its current value,
  // takes the largest and subtracts the total from it. The sequence repeats after
  // total / gcd picks, so one period is the whole policy.
  int g = 0;
  int64_t total = 0;
  for (int w : weights) {
    g = std::gcd(g, w);
    total += w;
  }
  std::vector<uint8_t> seq;
  if (total == 0) return seq;
  std::vector<int64_t> reduced(weights.size()), current(weights.size(), 0);
  int64_t period = total / g;
  for (size_t i = 0; i < weights.size(); ++i) reduced[i] = weights[i] / g;
  seq.reserve(period);
  for (int64_t n = 0; n < period; ++n) {
    size_t best = 0;
    for (size_t i = 0; i < reduced.size(); ++i) {
      current[i] += reduced[i];
      if (current[i] > current[best]) best = i;
    }
    current[best] -= period;
    seq.push_back(static_cast<uint8_t>(best));
  }
  return seq;
}

std::vector<std::pair<uint64_t, uint8_t>> BuildRing(const std::vector<std::string>& ids,
                                                    const std::vector<int>& weights, int vnodes) {
  std::vector<std::pair<uint64_t, uint8_t>> ring;
  for (size_t i = 0; i < ids.size(); ++i) {
    // A deployment's entries depend on its own weight only, never on the others': scaling
    // them to a total ring size would move keys between deployments that stayed whenever
    // one joins or leaves.
    int64_t n = int64_t{vnodes} * weights[i];
    for (int64_t k = 0; k < n; ++k) {
      std::string key = absl::StrCat(ids[i], "_", k);
      ring.emplace_back(Murmur64(key, 0), static_cast<uint8_t>(i));
    }
  }
  std::sort(ring.begin(), ring.end());
  return ring;
}

size_t RingIndex(const std::vector<std::pair<uint64_t, uint8_t>>& ring, uint64_t hash) {
  auto it = std::lower_bound(ring.begin(), ring.end(), hash,
                             [](const auto& e, uint64_t h) { return e.first < h; });
  return it == ring.end() ? 0 : static_cast<size_t>(it - ring.begin());
}

std::vector<uint8_t> BuildMaglev(const std::vector<std::string>& ids,
                                 const std::vector<int>& weights, int table_size) {
  // Maglev (Eisenbud et al., NSDI 2016) with weights as Envoy does it: each round a
  // deployment claims its next preferred free slot only while its claims stay in proportion
  // to its weight.
  const uint64_t m = static_cast<uint64_t>(table_size);
  struct Entry {
    uint64_t offset, skip, next = 0;
    double weight, target = 0;
  };
  int max_weight = *std::max_element(weights.begin(), weights.end());
  std::vector<Entry> entries;
  for (size_t i = 0; i < ids.size(); ++i) {
    uint64_t h1 = Murmur64(ids[i], 0xcafef00dULL), h2 = Murmur64(ids[i], 0xdeadbeefULL);
    entries.push_back({h1 % m, h2 % (m - 1) + 1, 0,
                       static_cast<double>(weights[i]) / max_weight, 0});
  }
  std::vector<int> table(m, -1);
  uint64_t filled = 0;
  for (uint64_t iteration = 1; filled < m; ++iteration) {
    for (size_t i = 0; i < entries.size() && filled < m; ++i) {
      Entry& e = entries[i];
      if (e.weight * iteration < e.target) continue;
      e.target += 1.0;
      uint64_t c = (e.offset + e.skip * e.next) % m;
      while (table[c] >= 0) {
        ++e.next;
        c = (e.offset + e.skip * e.next) % m;
      }
      table[c] = static_cast<int>(i);
      ++e.next;
      ++filled;
    }
  }
  return std::vector<uint8_t>(table.begin(), table.end());
}

int ConfigImpl::FindPool(std::string_view model) const {
  if (model.size() >= exact_lengths_.size() || exact_lengths_[model.size()]) {
    if (auto it = exact_.find(core_internal::ToAbsl(model)); it != exact_.end()) return it->second;
  }
  for (const PrefixGroup& group : prefixes_by_length_) {
    const size_t length = group.length;
    if (model.size() < length) continue;
    if (length > 0 && (!group.first[static_cast<unsigned char>(model[0])] ||
                       !group.last[static_cast<unsigned char>(model[length - 1])])) {
      continue;
    }
    const std::string_view prefix = model.substr(0, length);
    if (group.names.empty()) {
      for (const auto& [name, pool] : group.few) {
        if (name == prefix) return pool;
      }
    } else if (auto it = group.names.find(core_internal::ToAbsl(prefix));
               it != group.names.end()) {
      return it->second;
    }
  }
  return -1;
}

std::optional<std::string> ConfigImpl::PoolFor(std::string_view model) const {
  int p = FindPool(model);
  if (p < 0) return std::nullopt;
  return pools_[p].name;
}

}  // namespace router_internal

absl::StatusOr<std::shared_ptr<const RouterConfig>> ParseRouterConfig(std::string_view json) {
  using core_internal::IndexPath;
  using core_internal::Json;
  using core_internal::ObjectReader;
  using namespace router_internal;  // NOLINT: the builder's own types

  MODEENVOY_ASSIGN_OR_RETURN(Json doc, core_internal::ParseStrictJson(json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader root, ObjectReader::Make(doc, ""));
  MODEENVOY_RETURN_IF_ERROR(root.RejectUnknown({"pools", "retry_budget"}));
  auto config = std::make_shared<ConfigImpl>();

  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> budget, root.OptionalObject("retry_budget"));
  if (budget) {
    MODEENVOY_RETURN_IF_ERROR(budget->RejectUnknown({"percent", "min_concurrency"}));
    MODEENVOY_RETURN_IF_ERROR(ReadInt(*budget, "percent", 0, 1000, &config->retry_budget_percent_));
    MODEENVOY_RETURN_IF_ERROR(
        ReadInt(*budget, "min_concurrency", 0, 1 << 20, &config->retry_budget_min_));
  }

  MODEENVOY_ASSIGN_OR_RETURN(const Json* pools, root.OptionalArray("pools"));
  if (pools == nullptr || pools->empty()) {
    return absl::InvalidArgumentError("pools: at least one pool is required");
  }
  absl::flat_hash_set<std::string> ids;
  // Fallback names are resolved once every pool (and alias) is known.
  std::vector<std::vector<std::pair<std::string, std::string>>> fallback_paths(pools->size());
  for (size_t p = 0; p < pools->size(); ++p) {
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r,
                               ObjectReader::Make((*pools)[p], IndexPath("pools", p)));
    MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"name", "aliases", "lb", "outlier", "retry",
                                               "fallbacks", "context_length_fallback",
                                               "content_filter_fallback", "deployments",
                                               "rules", "hedge", "queue"}));
    Pool pool;
    MODEENVOY_ASSIGN_OR_RETURN(pool.name, r.RequiredString("name"));
    if (pool.name.find('*') != std::string::npos) {
      return FieldError(r.PathOf("name"), "must not contain '*' (use aliases for wildcards)");
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::vector<std::string> aliases, StringList(r, "aliases"));
    std::vector<std::string> names = {pool.name};
    names.insert(names.end(), aliases.begin(), aliases.end());
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      std::string path = i == 0 ? r.PathOf("name") : IndexPath(r.PathOf("aliases"), i - 1);
      size_t star = name.find('*');
      if (star != std::string::npos && star != name.size() - 1) {
        return FieldError(path, absl::StrCat("\"", name, "\": only a trailing '*' is supported"));
      }
      bool taken = false;
      if (IsWildcard(name)) {
        std::string prefix = name.substr(0, name.size() - 1);
        for (const auto& [other, idx] : config->prefixes_) taken |= other == prefix;
        if (!taken) config->prefixes_.emplace_back(prefix, static_cast<int>(p));
      } else {
        taken = !config->exact_.emplace(name, static_cast<int>(p)).second;
        if (name.size() < config->exact_lengths_.size()) config->exact_lengths_.set(name.size());
      }
      if (taken) return FieldError(path, absl::StrCat("\"", name, "\" is served by another pool"));
    }

    if (auto lb = r.OptionalObject("lb"); !lb.ok()) {
      return lb.status();
    } else if (*lb) {
      MODEENVOY_RETURN_IF_ERROR(ParseLb(**lb, &pool.lb));
    }
    if (auto o = r.OptionalObject("outlier"); !o.ok()) {
      return o.status();
    } else if (*o) {
      MODEENVOY_RETURN_IF_ERROR(ParseOutlier(**o, &pool.outlier));
    }
    pool.retry.retry_on = DefaultRetryOn();
    if (auto rt = r.OptionalObject("retry"); !rt.ok()) {
      return rt.status();
    } else if (*rt) {
      MODEENVOY_RETURN_IF_ERROR(ParseRetry(**rt, &pool.retry));
    }
    MODEENVOY_ASSIGN_OR_RETURN(pool.fallbacks, StringList(r, "fallbacks"));
    for (size_t i = 0; i < pool.fallbacks.size(); ++i) {
      fallback_paths[p].emplace_back(IndexPath(r.PathOf("fallbacks"), i), pool.fallbacks[i]);
    }
    MODEENVOY_ASSIGN_OR_RETURN(pool.context_fallback, r.OptionalString("context_length_fallback"));
    MODEENVOY_ASSIGN_OR_RETURN(pool.content_fallback, r.OptionalString("content_filter_fallback"));
    if (pool.context_fallback) {
      fallback_paths[p].emplace_back(r.PathOf("context_length_fallback"), *pool.context_fallback);
    }
    if (pool.content_fallback) {
      fallback_paths[p].emplace_back(r.PathOf("content_filter_fallback"), *pool.content_fallback);
    }

    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> hedge, r.OptionalObject("hedge"));
    if (hedge) {
      MODEENVOY_RETURN_IF_ERROR(hedge->RejectUnknown({"quantile", "min_samples", "min_delay_ms",
                                                      "max_delay_ms", "delay_ms"}));
      HedgeConfig h;
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<double> q, OptionalNumber(*hedge, "quantile", 0.5, 0.999));
      h.quantile = q.value_or(h.quantile);
      MODEENVOY_RETURN_IF_ERROR(ReadInt(*hedge, "min_samples", 1, 1000, &h.min_samples));
      MODEENVOY_RETURN_IF_ERROR(ReadMs(*hedge, "min_delay_ms", 0, &h.min_delay));
      MODEENVOY_RETURN_IF_ERROR(ReadMs(*hedge, "max_delay_ms", 1, &h.max_delay));
      if (h.max_delay < h.min_delay) {
        return FieldError(hedge->PathOf("max_delay_ms"), "must be >= min_delay_ms");
      }
      if (hedge->Has("delay_ms")) {
        absl::Duration fixed;
        MODEENVOY_RETURN_IF_ERROR(ReadMs(*hedge, "delay_ms", 1, &fixed));
        h.delay = fixed;
      }
      pool.hedge = h;
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> queue, r.OptionalObject("queue"));
    if (queue) {
      MODEENVOY_RETURN_IF_ERROR(queue->RejectUnknown({"max_depth", "timeout_ms"}));
      QueueConfig q;
      MODEENVOY_RETURN_IF_ERROR(ReadInt(*queue, "max_depth", 1, 100000, &q.max_depth));
      MODEENVOY_RETURN_IF_ERROR(ReadMs(*queue, "timeout_ms", 1, &q.timeout));
      pool.queue = q;
    }
    if (const Json* rules = r.Find("rules"); rules != nullptr) {
      MODEENVOY_ASSIGN_OR_RETURN(pool.rules, ParseRules(*rules, r.PathOf("rules")));
    }

    MODEENVOY_ASSIGN_OR_RETURN(const Json* deps, r.OptionalArray("deployments"));
    if (deps == nullptr || deps->empty()) {
      return FieldError(r.PathOf("deployments"), "at least one deployment is required");
    }
    if (deps->size() > static_cast<size_t>(kMaxDeployments)) {
      return FieldError(r.PathOf("deployments"),
                        absl::StrCat("at most ", kMaxDeployments, " deployments per pool"));
    }
    std::vector<int> mine;
    for (size_t d = 0; d < deps->size(); ++d) {
      MODEENVOY_ASSIGN_OR_RETURN(
          ObjectReader dr, ObjectReader::Make((*deps)[d], IndexPath(r.PathOf("deployments"), d)));
      MODEENVOY_ASSIGN_OR_RETURN(RouterDeployment dep, ParseDeployment(dr));
      if (!ids.insert(dep.id).second) {
        return FieldError(dr.PathOf("id"), absl::StrCat("duplicate deployment id \"", dep.id, "\""));
      }
      mine.push_back(static_cast<int>(config->deployments_.size()));
      config->deployments_.push_back(std::move(dep));
    }
    std::stable_sort(mine.begin(), mine.end(), [&](int a, int b) {
      return config->deployments_[a].tier < config->deployments_[b].tier;
    });
    pool.deployments = mine;
    for (size_t i = 0; i < mine.size(); ++i) {
      if (i == 0 || config->deployments_[mine[i]].tier != config->deployments_[mine[i - 1]].tier) {
        pool.tier_begin.push_back(static_cast<int>(i));
      }
    }
    pool.tier_begin.push_back(static_cast<int>(mine.size()));
    for (size_t t = 0; t + 1 < pool.tier_begin.size(); ++t) {
      std::vector<std::string> tier_ids;
      std::vector<int> weights;
      for (int i = pool.tier_begin[t]; i < pool.tier_begin[t + 1]; ++i) {
        tier_ids.push_back(config->deployments_[mine[i]].id);
        weights.push_back(config->deployments_[mine[i]].weight);
      }
      Pool::Tier tier;
      tier.swrr = SmoothWrrSequence(weights);
      std::partial_sum(weights.begin(), weights.end(), std::back_inserter(tier.weight_prefix));
      if (pool.lb.kind == LbKind::kRingHash) {
        int64_t entries = 0;
        for (int w : weights) entries += int64_t{pool.lb.vnodes} * w;
        if (entries > (int64_t{1} << 22)) {
          return FieldError(r.PathOf("lb"), absl::StrCat("vnodes x weights = ", entries,
                                                         " ring entries; at most 4194304"));
        }
        tier.ring = BuildRing(tier_ids, weights, pool.lb.vnodes);
      } else if (pool.lb.kind == LbKind::kMaglev) {
        tier.maglev = BuildMaglev(tier_ids, weights, pool.lb.maglev_table_size);
      }
      pool.tiers.push_back(std::move(tier));
    }
    config->pools_.push_back(std::move(pool));
  }
  std::stable_sort(config->prefixes_.begin(), config->prefixes_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& [prefix, pool] : config->prefixes_) {
    if (config->prefixes_by_length_.empty() ||
        config->prefixes_by_length_.back().length != prefix.size()) {
      config->prefixes_by_length_.emplace_back().length = prefix.size();
    }
    ConfigImpl::PrefixGroup& group = config->prefixes_by_length_.back();
    if (!prefix.empty()) {
      group.first.set(static_cast<unsigned char>(prefix.front()));
      group.last.set(static_cast<unsigned char>(prefix.back()));
    }
    if (group.names.empty() && group.few.size() < ConfigImpl::kFewPrefixes) {
      group.few.emplace_back(prefix, pool);
    } else {
      if (group.names.empty()) {
        group.names.insert(group.few.begin(), group.few.end());
        group.few.clear();
      }
      group.names.emplace(prefix, pool);
    }
  }

  for (size_t p = 0; p < config->pools_.size(); ++p) {
    Pool& pool = config->pools_[p];
    for (const auto& [path, name] : fallback_paths[p]) {
      int target = config->FindPool(name);
      if (target < 0) {
        return FieldError(path, absl::StrCat("no pool serves \"", name, "\""));
      }
      if (target == static_cast<int>(p)) {
        return FieldError(path, absl::StrCat("\"", name, "\" is this pool itself"));
      }
    }
    for (Rule& rule : pool.rules) {
      rule.target = config->FindPool(rule.to);
      if (rule.target < 0) {
        return FieldError(rule.to_path, absl::StrCat("no pool serves \"", rule.to, "\""));
      }
      if (rule.target == static_cast<int>(p)) {
        return FieldError(rule.to_path, absl::StrCat("\"", rule.to, "\" is this pool itself"));
      }
    }
    for (const std::string& name : pool.fallbacks) pool.fallback_pools.push_back(config->FindPool(name));
    if (pool.context_fallback) pool.context_pool = config->FindPool(*pool.context_fallback);
    if (pool.content_fallback) pool.content_pool = config->FindPool(*pool.content_fallback);
  }
  return std::shared_ptr<const RouterConfig>(std::move(config));
}

}  // namespace modeenvoy
