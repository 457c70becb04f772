// lib/context/gateway/routing.cc: the "context" routing policy: a route whose target
// depends on the conversation's metadata (published by the context filter as
// "context.metadata.<key>" before routing).
//   {"match": {"model": "assistant"}, "policy": "context",
//    "rules": [{"when": {"domain": "medical"}, "target": "med-model", "fallbacks": ["gpt"]}],
//    "default": {"target": "gpt"}}
// The first rule whose `when` entries all equal the request's context metadata plans the
// request; `default` plans the others. Each rule's keys besides `when`, and `default`, are
// the built-in "weighted" policy's (target/targets, fallbacks, retry_on, max_attempts),
// built by that policy's own registered builder.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/context/gateway/internal.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"

namespace modeenvoy::context_internal {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

struct Rule {
  std::vector<std::pair<std::string, std::string>> when;  // "context.metadata.<k>" -> value
  std::unique_ptr<RoutingPolicy> policy;
};

class ContextPolicy final : public RoutingPolicy {
 public:
  ContextPolicy(std::vector<Rule> rules, std::unique_ptr<RoutingPolicy> otherwise)
      : rules_(std::move(rules)), default_(std::move(otherwise)) {}

  absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(const RoutingRequest& request) const override {
    if (request.metadata != nullptr) {
      for (const Rule& rule : rules_) {
        bool match = true;
        for (const auto& [key, value] : rule.when) {
          auto it = request.metadata->find(key);
          if (it == request.metadata->end() || it->second != value) {
            match = false;
            break;
          }
        }
        if (match) return rule.policy->Plan(request);
      }
    }
    if (default_ == nullptr) {
      return WithErrorCode(
          absl::NotFoundError(absl::StrFormat(
              "The model `%s` has no target for this conversation's context metadata.",
              request.model)),
          "model_not_found");
    }
    return default_->Plan(request);
  }

 private:
  std::vector<Rule> rules_;
  std::unique_ptr<RoutingPolicy> default_;
};

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildWeighted(const Json& options,
                                                             std::string_view path,
                                                             const RouteBuildContext& context) {
  std::optional<RoutingPolicyBuilder> weighted = BuiltinRegistry().routing().Find("weighted");
  if (!weighted.has_value()) return absl::InternalError("the \"weighted\" policy is missing");
  absl::StatusOr<std::unique_ptr<RoutingPolicy>> policy = (*weighted)(options.dump(), context);
  if (!policy.ok()) return core_internal::PrefixFieldError(policy.status(), path);
  return policy;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildContextRoutingPolicy(
    std::string_view options_json, const RouteBuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"rules", "default"}));
  MODEENVOY_ASSIGN_OR_RETURN(const Json* rules_json, r.OptionalArray("rules"));
  if (rules_json == nullptr || rules_json->empty()) {
    return InvalidFieldError("rules", "is required (a non-empty array)");
  }
  std::vector<Rule> rules;
  for (size_t i = 0; i < rules_json->size(); ++i) {
    std::string path = IndexPath("rules", i);
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader entry, ObjectReader::Make((*rules_json)[i], path));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> when, entry.OptionalObject("when"));
    if (!when.has_value() || when->json().empty()) {
      return InvalidFieldError(entry.PathOf("when"), "is required (metadata key -> value)");
    }
    Rule rule;
    for (auto it = when->json().begin(); it != when->json().end(); ++it) {
      if (!it.value().is_string()) {
        return InvalidFieldError(when->PathOf(it.key()), "must be a string");
      }
      rule.when.emplace_back(absl::StrFormat("%s%s", kMetadataPrefix, it.key()),
                             it.value().get<std::string>());
    }
    Json rest = Json::object();
    for (auto it = entry.json().begin(); it != entry.json().end(); ++it) {
      if (it.key() != "when") rest[it.key()] = it.value();
    }
    MODEENVOY_ASSIGN_OR_RETURN(rule.policy, BuildWeighted(rest, path, context));
    rules.push_back(std::move(rule));
  }
  std::unique_ptr<RoutingPolicy> otherwise;
  if (const Json* fallback = r.Find("default")) {
    if (!fallback->is_object()) return InvalidFieldError("default", "must be an object");
    MODEENVOY_ASSIGN_OR_RETURN(otherwise, BuildWeighted(*fallback, "default", context));
  }
  return std::unique_ptr<RoutingPolicy>(
      std::make_unique<ContextPolicy>(std::move(rules), std::move(otherwise)));
}

}  // namespace modeenvoy::context_internal
