// lib/gateway/routing.cc: failure classes, single-attempt plans and the built-in
// "weighted" routing policy.
#include "modeenvoy/gateway/routing.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "lib/core/status_macros.h"
#include "lib/core/json_reader.h"
#include "lib/gateway/routing_internal.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

struct FailureName {
  FailureClass failure;
  std::string_view name;
};
constexpr FailureName kFailureNames[] = {
    {FailureClass::kNone, "none"},
    {FailureClass::kRateLimited, "429"},
    {FailureClass::kServerError, "5xx"},
    {FailureClass::kTimeout, "timeout"},
    {FailureClass::kConnect, "connect"},
    {FailureClass::kContextLength, "context_length"},
    {FailureClass::kContentFilter, "content_filter"},
    {FailureClass::kClientError, "4xx"},
    {FailureClass::kProtocol, "protocol"},
    {FailureClass::kReset, "reset"},
};

class SinglePlan final : public AttemptPlan {
 public:
  explicit SinglePlan(Attempt attempt) : attempt_(attempt) {}
  std::optional<Attempt> Next() override {
    if (used_) return std::nullopt;
    used_ = true;
    return attempt_;
  }
  void Report(const Attempt&, const AttemptOutcome&) override {}

 private:
  Attempt attempt_;
  bool used_ = false;
};

struct WeightedTarget {
  const ModelConfig* model;
  const ProviderConfig* provider;
  uint32_t weight;
};

struct WeightedConfig {
  std::vector<WeightedTarget> targets;
  uint64_t total_weight = 0;
  std::vector<WeightedTarget> fallbacks;  // weight unused
  uint32_t retry_on = 0;                  // bit per FailureClass
  int max_attempts = 1;
};

class WeightedPlan final : public AttemptPlan {
 public:
  WeightedPlan(std::shared_ptr<const WeightedConfig> config, uint64_t draw)
      : config_(std::move(config)) {
    uint64_t point = draw % config_->total_weight;
    for (const WeightedTarget& t : config_->targets) {
      if (point < t.weight) {
        first_ = &t;
        break;
      }
      point -= t.weight;
    }
  }

  std::optional<Attempt> Next() override {
    if (made_ >= config_->max_attempts) return std::nullopt;
    const WeightedTarget* target = nullptr;
    if (made_ == 0) {
      target = first_;
    } else {
      if (!last_failure_.has_value() || *last_failure_ == FailureClass::kNone) return std::nullopt;
      if ((config_->retry_on & (1u << static_cast<int>(*last_failure_))) == 0) return std::nullopt;
      size_t fallback = static_cast<size_t>(made_ - 1);
      if (fallback >= config_->fallbacks.size()) return std::nullopt;
      target = &config_->fallbacks[fallback];
    }
    last_failure_.reset();
    return Attempt{target->model, target->provider, made_++};
  }

  void Report(const Attempt&, const AttemptOutcome& outcome) override {
    last_failure_ = outcome.failure;
  }

 private:
  std::shared_ptr<const WeightedConfig> config_;
  const WeightedTarget* first_ = nullptr;
  int made_ = 0;
  std::optional<FailureClass> last_failure_;
};

class WeightedPolicy final : public RoutingPolicy {
 public:
  explicit WeightedPolicy(std::shared_ptr<const WeightedConfig> config)
      : config_(std::move(config)) {}
  absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(const RoutingRequest& request) const override {
    return std::make_unique<WeightedPlan>(config_, request.draw);
  }

 private:
  std::shared_ptr<const WeightedConfig> config_;
};

absl::StatusOr<WeightedTarget> TargetOf(const RouteBuildContext& context, const std::string& path,
                                        const std::string& name, uint32_t weight) {
  const ModelConfig* model = context.find_model(name);
  if (model == nullptr) return InvalidFieldError(path, absl::StrFormat("unknown model \"%s\"", name));
  return WeightedTarget{model, context.provider_of(*model), weight};
}

}  // namespace

namespace gateway_internal {

absl::Status UpstreamTransportError(std::string_view provider_name, const absl::Status& status) {
  const std::string message = absl::StrFormat("upstream provider \"%s\" failed: %s",
                                              provider_name, status.message());
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return WithHttpStatus(absl::DeadlineExceededError(message), 504);
  }
  absl::Status mapped = WithHttpStatus(absl::UnavailableError(message), 502);
  return IsConnectionReset(status) ? MarkConnectionReset(std::move(mapped)) : mapped;
}

}  // namespace gateway_internal

std::optional<FailureClass> FailureClassFromName(std::string_view name) {
  for (const FailureName& f : kFailureNames) {
    if (f.name == name && f.failure != FailureClass::kNone) return f.failure;
  }
  return std::nullopt;
}

std::string_view FailureClassName(FailureClass failure) {
  for (const FailureName& f : kFailureNames) {
    if (f.failure == failure) return f.name;
  }
  return "unknown";
}

FailureClass ClassifyFailure(const absl::Status& status, int upstream_http_status) {
  if (status.ok()) return FailureClass::kNone;
  if (upstream_http_status == 0) {
    switch (status.code()) {
      case absl::StatusCode::kDeadlineExceeded: return FailureClass::kTimeout;
      case absl::StatusCode::kUnavailable:
        return IsConnectionReset(status) ? FailureClass::kReset : FailureClass::kConnect;
      default: return FailureClass::kProtocol;
    }
  }
  std::optional<std::string> code = ErrorCode(status);
  if (code.has_value()) {
    if (*code == "context_length_exceeded") return FailureClass::kContextLength;
    if (*code == "content_filter" || *code == "content_policy_violation") {
      return FailureClass::kContentFilter;
    }
  }
  if (upstream_http_status == 429) return FailureClass::kRateLimited;
  if (upstream_http_status >= 500) return FailureClass::kServerError;
  if (upstream_http_status >= 400) return FailureClass::kClientError;
  return FailureClass::kProtocol;
}

std::optional<absl::Duration> RetryAfter(const HttpHeaders& headers, absl::Time now) {
  if (std::optional<std::string_view> ms = FindHeader(headers, "retry-after-ms")) {
    double v;
    if (absl::SimpleAtod(core_internal::ToAbsl(*ms), &v) && v >= 0 && v < 1e9) {
      return absl::Milliseconds(v);
    }
  }
  std::optional<std::string_view> ra = FindHeader(headers, "retry-after");
  if (!ra.has_value()) return std::nullopt;
  int64_t seconds;
  if (absl::SimpleAtoi(core_internal::ToAbsl(*ra), &seconds)) {
    if (seconds < 0 || seconds > int64_t{1} << 31) return std::nullopt;
    return absl::Seconds(seconds);
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", std::string(*ra), &when, &err)) {
    return std::max(absl::ZeroDuration(), when - now);
  }
  return std::nullopt;
}

std::unique_ptr<AttemptPlan> SingleAttemptPlan(const ModelConfig* model,
                                               const ProviderConfig* provider) {
  return std::make_unique<SinglePlan>(Attempt{model, provider, 0});
}

namespace gateway_internal {

using core_internal::ParseStrictJson;

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildWeightedPolicy(
    std::string_view options_json, const RouteBuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(
      r.RejectUnknown({"target", "targets", "fallbacks", "retry_on", "max_attempts"}));
  auto config = std::make_shared<WeightedConfig>();
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> target, r.OptionalString("target"));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* targets, r.OptionalArray("targets"));
  if (target.has_value() == (targets != nullptr)) {
    return InvalidFieldError("", "exactly one of \"target\" or \"targets\" is required");
  }
  if (target.has_value()) {
    MODEENVOY_ASSIGN_OR_RETURN(WeightedTarget t, TargetOf(context, "target", *target, 1));
    config->targets.push_back(t);
  } else {
    if (targets->empty()) return InvalidFieldError("targets", "must not be empty");
    for (size_t i = 0; i < targets->size(); ++i) {
      const std::string tpath = IndexPath("targets", i);
      MODEENVOY_ASSIGN_OR_RETURN(ObjectReader tr, ObjectReader::Make((*targets)[i], tpath));
      MODEENVOY_RETURN_IF_ERROR(tr.RejectUnknown({"model", "weight"}));
      MODEENVOY_ASSIGN_OR_RETURN(std::string model, tr.RequiredString("model"));
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> weight,
                                 tr.OptionalInt("weight", 0, 1000000));
      MODEENVOY_ASSIGN_OR_RETURN(
          WeightedTarget t,
          TargetOf(context, tr.PathOf("model"), model,
                   weight.has_value() ? static_cast<uint32_t>(*weight) : 1));
      config->targets.push_back(t);
    }
  }
  for (const WeightedTarget& t : config->targets) config->total_weight += t.weight;
  if (config->total_weight == 0) return InvalidFieldError("targets", "weights must not all be 0");
  MODEENVOY_ASSIGN_OR_RETURN(const Json* fallbacks, r.OptionalArray("fallbacks"));
  if (fallbacks != nullptr) {
    for (size_t i = 0; i < fallbacks->size(); ++i) {
      const std::string fpath = IndexPath("fallbacks", i);
      if (!(*fallbacks)[i].is_string()) return InvalidFieldError(fpath, "must be a string");
      MODEENVOY_ASSIGN_OR_RETURN(
          WeightedTarget t, TargetOf(context, fpath, (*fallbacks)[i].get<std::string>(), 0));
      config->fallbacks.push_back(t);
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(const Json* retry_on, r.OptionalArray("retry_on"));
  if (retry_on == nullptr) {
    for (FailureClass f : {FailureClass::kRateLimited, FailureClass::kServerError,
                           FailureClass::kTimeout, FailureClass::kConnect,
                           FailureClass::kReset}) {
      config->retry_on |= 1u << static_cast<int>(f);
    }
  } else {
    for (size_t i = 0; i < retry_on->size(); ++i) {
      const std::string rpath = IndexPath("retry_on", i);
      const Json& v = (*retry_on)[i];
      std::optional<FailureClass> f =
          v.is_string() ? FailureClassFromName(v.get<std::string>()) : std::nullopt;
      if (!f.has_value()) {
        return InvalidFieldError(rpath, "must be one of \"429\", \"5xx\", \"timeout\", "
                                        "\"connect\", \"reset\", \"context_length\", "
                                        "\"content_filter\", \"4xx\", \"protocol\"");
      }
      config->retry_on |= 1u << static_cast<int>(*f);
    }
  }
  const int64_t planned = 1 + static_cast<int64_t>(config->fallbacks.size());
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> max_attempts,
                             r.OptionalInt("max_attempts", 1, planned));
  config->max_attempts = static_cast<int>(max_attempts.value_or(planned));
  return std::make_unique<WeightedPolicy>(std::move(config));
}

}  // namespace gateway_internal
}  // namespace modeenvoy
