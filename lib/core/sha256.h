// lib/core/sha256.h: SHA-256 (FIPS 180-4), to verify rank files against tiktoken's
// published hashes without a crypto library dependency. In the core so that every component
// can use it.
#ifndef MODEENVOY_LIB_CORE_SHA256_H_
#define MODEENVOY_LIB_CORE_SHA256_H_

#include <string>
#include <string_view>

#include "modeenvoy/export.h"

namespace modeenvoy::core_internal {

// Lowercase hex SHA-256 of `data`. Exported for the other component libraries.
MODEENVOY_EXPORT std::string Sha256Hex(std::string_view data);

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_SHA256_H_
