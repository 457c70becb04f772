// lib/router/gateway/register.cc: RegisterRouterGatewayComponent, the component's one entry
// into the engine's registries.
#include "lib/core/status_macros.h"
#include "lib/router/gateway/internal.h"
#include "modeenvoy/router/gateway.h"

namespace modeenvoy {

absl::Status RegisterRouterGatewayComponent(Registry* registry) {
  MODEENVOY_RETURN_IF_ERROR(
      registry->routing().Register("router", router_gateway_internal::BuildRouterPolicy));
  return router_gateway_internal::RegisterUpstreamsEndpoint(&registry->endpoints());
}

}  // namespace modeenvoy
