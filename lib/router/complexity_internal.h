// lib/router/complexity_internal.h: the byte-by-byte reference of ScorePromptComplexity
// (the public one scans 16 bytes at a time with SSE2); tests compare the two.
#ifndef MODEENVOY_LIB_ROUTER_COMPLEXITY_INTERNAL_H_
#define MODEENVOY_LIB_ROUTER_COMPLEXITY_INTERNAL_H_

#include <string_view>

#include "modeenvoy/router/complexity.h"

namespace modeenvoy::router_internal {
PromptComplexity ScorePromptComplexityScalar(std::string_view text);
}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_COMPLEXITY_INTERNAL_H_
