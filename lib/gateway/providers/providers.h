// lib/gateway/providers/providers.h: builders of the built-in provider dialects (private).
// One file per dialect in this folder, one line here and one registration in registry.cc.
#ifndef MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
#define MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_

#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/gateway/provider.h"

namespace modeenvoy::gateway_internal {

// "openai": POST {base_url}/chat/completions; no options of its own.
absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildOpenAiDialect(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context);

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_PROVIDERS_PROVIDERS_H_
