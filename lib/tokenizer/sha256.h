// lib/tokenizer/sha256.h: SHA-256 (FIPS 180-4), to verify rank files against tiktoken's
// published hashes without a crypto library dependency.
#ifndef MODEENVOY_LIB_TOKENIZER_SHA256_H_
#define MODEENVOY_LIB_TOKENIZER_SHA256_H_

#include <string>
#include <string_view>

namespace modeenvoy::tokenizer_internal {

// Lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_SHA256_H_
