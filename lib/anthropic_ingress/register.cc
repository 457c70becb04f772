// lib/anthropic_ingress/register.cc: RegisterAnthropicIngressComponent, the component's one
// entry into the engine's registries.
#include <utility>

#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/ingress/anthropic.h"

namespace modeenvoy {

absl::Status RegisterAnthropicIngressComponent(Registry* registry) {
  EndpointSpec messages;
  messages.kind = "messages";
  messages.method = "POST";
  messages.pattern = "/v1/messages";
  messages.model_call = AnthropicMessagesCodec();
  MODEENVOY_RETURN_IF_ERROR(registry->endpoints().Register(std::move(messages)));
  return absl::OkStatus();
}

}  // namespace modeenvoy
