// lib/gateway/routing_internal.h: the built-in routing policy's builder and the engine's
// reading of transport failures (private).
#ifndef MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_
#define MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_

#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/gateway/routing.h"

namespace modeenvoy::gateway_internal {

// "weighted": see routing.h for its keys.
absl::StatusOr<std::unique_ptr<RoutingPolicy>> BuildWeightedPolicy(
    std::string_view options_json, const RouteBuildContext& context);

// The error a client sees for an attempt whose upstream call failed without an HTTP answer
// (UpstreamHandler::OnComplete's `status`): 504 for a timeout, else 502, naming the
// provider; a connection reset stays marked (IsConnectionReset) so routing classes it.
absl::Status UpstreamTransportError(std::string_view provider_name, const absl::Status& status);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_ROUTING_INTERNAL_H_
