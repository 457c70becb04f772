#include "lib/router/rules.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/router/complexity.h"

namespace modeenvoy::router_internal {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

absl::Status FieldError(const std::string& path, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", core_internal::ToAbsl(message)));
}

// {"min": a, "max": b}, at least one of them, min < max, both within [lo, hi].
absl::StatusOr<std::optional<Range>> ParseRange(const ObjectReader& parent, std::string_view key,
                                                double lo, double hi) {
  if (!parent.Has(key)) return std::nullopt;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> r, parent.OptionalObject(key));
  MODEENVOY_RETURN_IF_ERROR(r->RejectUnknown({"min", "max"}));
  Range range;
  for (std::string_view bound : {"min", "max"}) {
    const Json* v = r->Find(bound);
    if (v == nullptr) continue;
    if (!v->is_number()) return FieldError(r->PathOf(bound), "must be a number");
    double d = v->get<double>();
    if (!std::isfinite(d) || d < lo || d > hi) {
      return FieldError(r->PathOf(bound), absl::StrCat("must be in [", lo, ", ", hi, "]"));
    }
    (bound == "min" ? range.min : range.max) = d;
  }
  if (!range.min && !range.max) {
    return FieldError(parent.PathOf(key), "needs \"min\", \"max\" or both");
  }
  if (range.min && range.max && *range.min >= *range.max) {
    return FieldError(r->PathOf("max"), "must be > min");
  }
  return range;
}

// "HH:MM" (00:00..24:00) as minutes since midnight.
absl::StatusOr<int> ParseClock(const ObjectReader& r, std::string_view key) {
  MODEENVOY_ASSIGN_OR_RETURN(std::string text, r.RequiredString(key));
  auto digit = [&](size_t i) { return text[i] >= '0' && text[i] <= '9'; };
  if (text.size() != 5 || text[2] != ':' || !digit(0) || !digit(1) || !digit(3) || !digit(4)) {
    return FieldError(r.PathOf(key), absl::StrCat("\"", text, "\" is not HH:MM"));
  }
  int h = (text[0] - '0') * 10 + (text[1] - '0'), m = (text[3] - '0') * 10 + (text[4] - '0');
  if (h > 24 || m > 59 || (h == 24 && m != 0)) {
    return FieldError(r.PathOf(key), absl::StrCat("\"", text, "\" is not a time of day"));
  }
  return h * 60 + m;
}

}  // namespace

absl::StatusOr<std::vector<Rule>> ParseRules(const Json& rules, const std::string& path) {
  if (!rules.is_array()) return FieldError(path, "must be an array");
  std::vector<Rule> out;
  for (size_t i = 0; i < rules.size(); ++i) {
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(rules[i], IndexPath(path, i)));
    MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"name", "to", "prompt_tokens", "complexity",
                                               "key_tiers", "time_of_day",
                                               "remaining_budget"}));
    Rule rule;
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> name, r.OptionalString("name"));
    rule.name = name.value_or(IndexPath("rules", i));
    MODEENVOY_ASSIGN_OR_RETURN(rule.to, r.RequiredString("to"));
    rule.to_path = r.PathOf("to");
    MODEENVOY_ASSIGN_OR_RETURN(rule.prompt_tokens, ParseRange(r, "prompt_tokens", 0, 1e12));
    MODEENVOY_ASSIGN_OR_RETURN(rule.complexity, ParseRange(r, "complexity", 0, 1));
    MODEENVOY_ASSIGN_OR_RETURN(rule.remaining_budget,
                               ParseRange(r, "remaining_budget", -1e15, 1e15));
    MODEENVOY_ASSIGN_OR_RETURN(const Json* tiers, r.OptionalArray("key_tiers"));
    if (tiers != nullptr) {
      if (tiers->empty()) return FieldError(r.PathOf("key_tiers"), "must not be empty");
      for (size_t t = 0; t < tiers->size(); ++t) {
        const Json& e = (*tiers)[t];
        if (!e.is_string() || e.get_ref<const std::string&>().empty()) {
          return FieldError(IndexPath(r.PathOf("key_tiers"), t), "must be a non-empty string");
        }
        rule.key_tiers.push_back(e.get<std::string>());
      }
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> time, r.OptionalObject("time_of_day"));
    if (time) {
      MODEENVOY_RETURN_IF_ERROR(time->RejectUnknown({"from", "to", "utc_offset_minutes"}));
      MODEENVOY_ASSIGN_OR_RETURN(rule.from_minute, ParseClock(*time, "from"));
      MODEENVOY_ASSIGN_OR_RETURN(rule.to_minute, ParseClock(*time, "to"));
      rule.from_minute %= 24 * 60;
      rule.to_minute %= 24 * 60;
      if (rule.from_minute == rule.to_minute) {
        return FieldError(time->PathOf("to"),
                          "must differ from \"from\" (leave time_of_day out for all day)");
      }
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> offset,
                                 time->OptionalInt("utc_offset_minutes", -14 * 60, 14 * 60));
      rule.utc_offset_minutes = static_cast<int>(offset.value_or(0));
      rule.has_time = true;
    }
    if (!rule.prompt_tokens && !rule.complexity && rule.key_tiers.empty() && !rule.has_time &&
        !rule.remaining_budget) {
      return FieldError(IndexPath(path, i),
                        "needs a condition (prompt_tokens, complexity, key_tiers, time_of_day, "
                        "remaining_budget)");
    }
    out.push_back(std::move(rule));
  }
  return out;
}

std::optional<double> RuleInputs::complexity() {
  if (!scored_) {
    scored_ = true;
    if (request_.complexity) {
      complexity_ = request_.complexity;
    } else if (!request_.prompt.empty()) {
      complexity_ = ScorePromptComplexity(request_.prompt).score;
    }
  }
  return complexity_;
}

bool RuleMatches(const Rule& rule, RuleInputs& inputs) {
  const RouteRequest& request = inputs.request();
  if (rule.prompt_tokens &&
      (request.prompt_tokens <= 0 ||
       !rule.prompt_tokens->Contains(static_cast<double>(request.prompt_tokens)))) {
    return false;
  }
  if (!rule.key_tiers.empty() &&
      std::find(rule.key_tiers.begin(), rule.key_tiers.end(), request.key_tier) ==
          rule.key_tiers.end()) {
    return false;  // an empty key tier is never listed (the parser rejects "")
  }
  if (rule.remaining_budget &&
      (!request.remaining_budget || !rule.remaining_budget->Contains(*request.remaining_budget))) {
    return false;
  }
  if (rule.has_time) {
    int64_t minutes = absl::ToUnixSeconds(inputs.wall_now()) / 60 + rule.utc_offset_minutes;
    int local = static_cast<int>(((minutes % 1440) + 1440) % 1440);
    bool inside = rule.from_minute < rule.to_minute
                      ? local >= rule.from_minute && local < rule.to_minute
                      : local >= rule.from_minute || local < rule.to_minute;
    if (!inside) return false;
  }
  // Last: the only condition that may cost a pass over the prompt.
  if (rule.complexity) {
    std::optional<double> c = inputs.complexity();
    if (!c || !rule.complexity->Contains(*c)) return false;
  }
  return true;
}

}  // namespace modeenvoy::router_internal
