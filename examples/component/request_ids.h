// examples/component/request_ids.h: a complete toy component, the worked example of
// docs/engine.md ("Adding a component"). It adds, without touching the engine:
//   - a config section   "request_ids": {"header": "x-request-id", "prefix": "req-"}
//   - a filter type      "request_ids": stamps every response (errors and local replies
//                        too) with a sequential id, counting in named state that survives
//                        reloads
//   - an endpoint        GET /v1/request-ids/{name} -> {"name": ..., "issued": N}
//   modeenvoy::Registry registry;
//   if (absl::Status s = modeenvoy::examples::RegisterRequestIds(&registry); !s.ok()) ...
//   modeenvoy::ConfigStore store({.registry = &registry});
#ifndef MODEENVOY_EXAMPLES_COMPONENT_REQUEST_IDS_H_
#define MODEENVOY_EXAMPLES_COMPONENT_REQUEST_IDS_H_

#include "absl/status/status.h"
#include "modeenvoy/gateway/registry.h"

namespace modeenvoy::examples {

// Registers the section, the filter type and the endpoint.
// Errors: kAlreadyExists when called twice on one registry.
absl::Status RegisterRequestIds(Registry* registry);

}  // namespace modeenvoy::examples

#endif  // MODEENVOY_EXAMPLES_COMPONENT_REQUEST_IDS_H_
