// include/modeenvoy/ingress/responses.h: the OpenAI Responses API in front of every provider
// (issue 11).
//
// One registration call adds, through the engine's registries (no engine edit):
//   POST /v1/responses ("responses", model call): the client speaks OpenAI Responses; the
//     request is read by the "openai_responses" dialect's ingress side into the unified chat
//     model, routed to any provider, and the answer is rendered back as a `response` object,
//     or as the Responses event stream (response.created, response.in_progress,
//     response.output_item.added, ..., response.completed / response.incomplete; a
//     response.failed event when the stream fails, after response.created and
//     response.in_progress when it fails before its first chunk). The response object
//     echoes the request's instructions, tools, tool_choice, temperature, top_p, metadata
//     and parallel_tool_calls. Errors are OpenAI error objects.
//     Hosted tools (any tool type but "function" and "custom": web_search, file_search,
//     code_interpreter, ...) go only to a provider of an OpenAI dialect ("openai",
//     "azure_openai", "openai_responses"); for any other provider the attempt fails with a
//     400 naming `tools[i].type`.
//     `store` and `metadata` are the gateway's (the response object echoes them), never
//     forwarded; `previous_response_id` is never forwarded upstream either.
//     Ids: every response gets the gateway's id, "resp_" + 32 hex digits drawn from the
//     ConfigStore's Services::Random(), never the provider's (for OpenAI too: chained
//     requests always go through the unified model; docs/providers.md says why).
//   State, on the store of the snapshot's "context" section (include/modeenvoy/context/
//   gateway.h; the request-scoped part is the endpoint's own filter, EndpointSpec::filter,
//   so no `filters` entry is needed):
//     `store: true` (the default) keeps the response, its input and the conversation before
//     it as one record named by the response id and owned by the caller ("api_key.name", else
//     "anonymous"), written before the answer's final bytes go out (a failed write is logged
//     and the answer still sent); `previous_response_id` loads the chain, windowed to the
//     target model, and sends it before the new input (404 naming the field for an unknown,
//     deleted, unstored or other owner's id). Without a "context" section, answers work but
//     nothing is kept and `previous_response_id` is a 400 naming the field.
//   GET /v1/responses/{id}, DELETE /v1/responses/{id} ({"id","object":"response",
//     "deleted":true}), GET /v1/responses/{id}/input_items (OpenAI's list shape; `limit`,
//     `order`, `after`): the caller's stored responses; anyone else's are a 404.
//   modeenvoy::Registry registry;
//   if (absl::Status s = modeenvoy::RegisterResponsesIngressComponent(&registry); !s.ok()) ...
//   modeenvoy::ConfigStore store({.registry = &registry});
// The mapping, and what other providers cannot express, is in docs/providers.md
// ("OpenAI Responses").
#ifndef MODEENVOY_INGRESS_RESPONSES_H_
#define MODEENVOY_INGRESS_RESPONSES_H_

#include <memory>

#include "absl/status/status.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/registry.h"

namespace modeenvoy {

// The Responses API as an IngressCodec (POST /v1/responses). Shared and immutable; never
// null. Thread safety: thread-safe (IngressCodec's contract); the per-request codecs it
// returns from ForRequest are used by one request at a time.
MODEENVOY_EXPORT std::shared_ptr<const IngressCodec> OpenAiResponsesCodec();

// Registers the component's endpoints on `registry`.
// Errors: kAlreadyExists when one of them is registered already (e.g. a second call).
MODEENVOY_EXPORT absl::Status RegisterResponsesIngressComponent(Registry* registry);

}  // namespace modeenvoy

#endif  // MODEENVOY_INGRESS_RESPONSES_H_
