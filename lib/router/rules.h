// lib/router/rules.h: tiered routing rules. A pool's rules send a request to another pool by
// its prompt size, prompt complexity, key tier, the time of day and the remaining budget.
// Parsed with the configuration (strict, field paths); evaluated by Plan() before the pick.
#ifndef MODEENVOY_LIB_ROUTER_RULES_H_
#define MODEENVOY_LIB_ROUTER_RULES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lib/core/json_reader.h"
#include "modeenvoy/router/router.h"

namespace modeenvoy::router_internal {

// A half-open range [min, max); an absent bound is open.
struct Range {
  std::optional<double> min, max;
  bool Contains(double v) const { return (!min || v >= *min) && (!max || v < *max); }
};

struct Rule {
  std::string name;         // for RoutePlan::matched_rule(); "rules[i]" when not configured
  std::string to;           // the target pool's name (or alias), resolved to `target`
  std::string to_path;      // field path of "to", for the resolution error
  int target = -1;
  std::optional<Range> prompt_tokens;
  std::optional<Range> complexity;
  std::vector<std::string> key_tiers;  // empty: any
  // Local time of day in minutes, [from, to) wrapping past midnight when from > to.
  bool has_time = false;
  int from_minute = 0, to_minute = 0;
  int utc_offset_minutes = 0;
  std::optional<Range> remaining_budget;
};

// Parses a pool's "rules" array (path e.g. "pools[2].rules"). Targets stay unresolved.
absl::StatusOr<std::vector<Rule>> ParseRules(const core_internal::Json& rules,
                                             const std::string& path);

// The inputs a rule looks at; the complexity score is computed on first use only.
class RuleInputs {
 public:
  RuleInputs(const RouteRequest& request, absl::Time wall_now)
      : request_(request), wall_now_(wall_now) {}
  const RouteRequest& request() const { return request_; }
  absl::Time wall_now() const { return wall_now_; }
  // nullopt when the request carries neither a score nor a prompt.
  std::optional<double> complexity();

 private:
  const RouteRequest& request_;
  absl::Time wall_now_;
  bool scored_ = false;
  std::optional<double> complexity_;
};

// Whether every condition of `rule` holds. A condition on an input the request does not
// carry (0 prompt tokens, no prompt, no key tier, no budget) does not hold.
bool RuleMatches(const Rule& rule, RuleInputs& inputs);

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_RULES_H_
