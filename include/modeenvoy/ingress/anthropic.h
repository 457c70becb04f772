// include/modeenvoy/ingress/anthropic.h: the Anthropic Messages API in front of every
// provider (issue 11).
//
// One registration call adds, through the engine's registries (no engine edit):
//   POST /v1/messages ("messages", model call): the client speaks Anthropic Messages; the
//     request is read by the "anthropic" dialect's ingress side into the unified chat model,
//     routed to any provider, and the answer is rendered back as an Anthropic message, or
//     as Anthropic's event stream (message_start, ping, content_block_start / delta / stop,
//     message_delta, message_stop; `event: error` when the stream fails after its start).
//     Errors have Anthropic's shape {"type":"error","error":{"type":...,"message":...}}.
//   POST /v1/messages/count_tokens ("messages.count_tokens", local): {"input_tokens": N}
//     for a request of Anthropic's count_tokens shape (model, messages, system, tools,
//     tool_choice, thinking). The route's first target decides: a provider that takes the
//     Messages API natively (ProviderDialect::BuildNativeRequest) gets the client's body
//     (model spliced) at its .../messages/count_tokens URL and its answer is passed
//     through; for any other provider the gateway counts the prompt with the target
//     model's tiktoken encoding (o200k_base when unknown; words when no rank file loads),
//     by the rules the emulator bills Anthropic input with, and marks the answer
//     "x-modeenvoy-token-count: estimate" (x-modeenvoy-token-count-method: tokenizer or
//     word_count). Errors in Anthropic's shape (unknown model: 404 not_found_error).
//   GET /v1/models ("models.anthropic", local, only for requests carrying anthropic-version;
//     others get the built-in OpenAI list): the served model names in Anthropic's list shape
//     {"data":[{"type":"model","id","display_name","created_at"}],"has_more","first_id",
//     "last_id"}, paged by limit (default 20) / after_id / before_id.
//   modeenvoy::Registry registry;
//   if (absl::Status s = modeenvoy::RegisterAnthropicIngressComponent(&registry); !s.ok()) ...
//   modeenvoy::ConfigStore store({.registry = &registry});
// The mapping, and what other providers cannot express, is in docs/providers.md
// ("Anthropic Messages ingress").
#ifndef MODEENVOY_INGRESS_ANTHROPIC_H_
#define MODEENVOY_INGRESS_ANTHROPIC_H_

#include <memory>

#include "absl/status/status.h"
#include "modeenvoy/export.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/registry.h"

namespace modeenvoy {

// The Messages API as an IngressCodec (POST /v1/messages). Shared and immutable; never null.
// Thread safety: thread-safe (IngressCodec's contract).
MODEENVOY_EXPORT std::shared_ptr<const IngressCodec> AnthropicMessagesCodec();

// Registers the component's endpoints on `registry`.
// Errors: kAlreadyExists when one of them is registered already (e.g. a second call).
MODEENVOY_EXPORT absl::Status RegisterAnthropicIngressComponent(Registry* registry);

}  // namespace modeenvoy

#endif  // MODEENVOY_INGRESS_ANTHROPIC_H_
