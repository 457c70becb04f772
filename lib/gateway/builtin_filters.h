// lib/gateway/builtin_filters.h: the filter types every FilterRegistry starts with.
#ifndef MODEENVOY_LIB_GATEWAY_BUILTIN_FILTERS_H_
#define MODEENVOY_LIB_GATEWAY_BUILTIN_FILTERS_H_

#include "modeenvoy/gateway/filter.h"

namespace modeenvoy::gateway_internal {

// Registers "api_key_auth" and "headers" (see filter.h for their configuration).
void RegisterBuiltinFilters(FilterRegistry* registry);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_BUILTIN_FILTERS_H_
