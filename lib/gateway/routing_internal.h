// lib/gateway/routing_internal.h: the built-in routing policy's builder (private).
#ifndef MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_
#define MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/gateway/routing.h"

namespace modeenvoy::gateway_internal {

// "weighted": see routing.h for its keys.
absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildWeightedPolicy(
    std::string_view options_json, const RouteBuildContext& context);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_
