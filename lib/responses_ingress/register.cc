// lib/responses_ingress/register.cc: RegisterResponsesIngressComponent, the component's one
// entry into the engine's registries.
#include <utility>

#include "lib/core/status_macros.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/ingress/responses.h"

namespace modeenvoy {

absl::Status RegisterResponsesIngressComponent(Registry* registry) {
  EndpointSpec responses;
  responses.kind = "responses";
  responses.method = "POST";
  responses.pattern = "/v1/responses";
  responses.model_call = OpenAiResponsesCodec();
  responses.filter = responses_internal::NewStateFilterFactory();
  MODEENVOY_RETURN_IF_ERROR(registry->endpoints().Register(std::move(responses)));
  return responses_internal::RegisterStoredResponseEndpoints(&registry->endpoints());
}

}  // namespace modeenvoy
