// lib/anthropic_ingress/register.cc: RegisterAnthropicIngressComponent, the component's one
// entry into the engine's registries.
#include <utility>

#include "lib/anthropic_ingress/count_tokens.h"
#include "lib/anthropic_ingress/models.h"
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
  EndpointSpec count;
  count.kind = "messages.count_tokens";
  count.method = "POST";
  count.pattern = "/v1/messages/count_tokens";
  count.local = anthropic_ingress_internal::CountTokensEndpoint();
  MODEENVOY_RETURN_IF_ERROR(registry->endpoints().Register(std::move(count)));
  // Same path as the built-in OpenAI list; clients sending anthropic-version get this one.
  EndpointSpec models;
  models.kind = "models.anthropic";
  models.method = "GET";
  models.pattern = "/v1/models";
  models.header = "anthropic-version";
  models.local = anthropic_ingress_internal::ModelsEndpoint();
  MODEENVOY_RETURN_IF_ERROR(registry->endpoints().Register(std::move(models)));
  return absl::OkStatus();
}

}  // namespace modeenvoy
