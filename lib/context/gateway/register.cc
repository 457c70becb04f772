// lib/context/gateway/register.cc: RegisterContextComponent, the component's one entry into
// the engine's registries.
#include <memory>
#include <string_view>
#include <utility>

#include "lib/context/gateway/internal.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/gateway.h"

namespace modeenvoy {

absl::Status RegisterContextComponent(Registry* registry, ContextComponentOptions options) {
  auto shared = std::make_shared<const ContextComponentOptions>(std::move(options));
  MODEENVOY_RETURN_IF_ERROR(registry->config().sections().Register(
      "context", [shared](std::string_view json, const BuildContext& context) {
        return context_internal::ParseContextSection(json, context, *shared);
      }));
  MODEENVOY_RETURN_IF_ERROR(
      registry->filters().Register("context", context_internal::BuildContextFilter));
  MODEENVOY_RETURN_IF_ERROR(
      registry->routing().Register("context", context_internal::BuildContextRoutingPolicy));
  return context_internal::RegisterSessionEndpoints(&registry->endpoints());
}

}  // namespace modeenvoy
