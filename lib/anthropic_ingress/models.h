// lib/anthropic_ingress/models.h: GET /v1/models in Anthropic's list shape (private).
#ifndef MODEENVOY_LIB_ANTHROPIC_INGRESS_MODELS_H_
#define MODEENVOY_LIB_ANTHROPIC_INGRESS_MODELS_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy::anthropic_ingress_internal {

// Anthropic's list parameters.
struct ModelsPage {
  int64_t limit = 20;  // 1..1000
  std::optional<std::string> after_id;
  std::optional<std::string> before_id;
};

// Reads limit, after_id and before_id from the query of `target` (a request path);
// other parameters are ignored. Errors: kInvalidArgument naming the parameter for a limit
// outside 1..1000 or after_id together with before_id.
absl::StatusOr<ModelsPage> ParseModelsQuery(std::string_view target);

// {"data":[{"type":"model","id","display_name","created_at"}...],"has_more","first_id",
// "last_id"} for one page of `names` (sorted, as ServedModelNames()). display_name is the
// id; created_at is the epoch (served names carry no date); first_id / last_id are null on
// an empty page.
std::string RenderModelsPage(const std::vector<std::string>& names, const ModelsPage& page);

// The local endpoint's filter factory.
std::shared_ptr<const FilterFactory> ModelsEndpoint();

}  // namespace modeenvoy::anthropic_ingress_internal

#endif  // MODEENVOY_LIB_ANTHROPIC_INGRESS_MODELS_H_
