// examples/proxy/default_config.h: the configuration `modeenvoy-gateway` runs without
// --config. It works offline: the model "demo" is served by the built-in provider emulator
// (OpenAI wire format). With OPENAI_API_KEY set it also serves OpenAI's current models.
#ifndef MODEENVOY_EXAMPLES_PROXY_DEFAULT_CONFIG_H_
#define MODEENVOY_EXAMPLES_PROXY_DEFAULT_CONFIG_H_

#include <string>
#include <string_view>

namespace modeenvoy::proxy {

// Replaced, in any configuration the proxy loads, by the base URL of the in-process
// emulator ("http://127.0.0.1:<port>"), which is started the first time it is needed.
inline constexpr char kEmulatorPlaceholder[] = "${EMULATOR_BASE_URL}";

// Returns the embedded default configuration (JSON). `with_openai` adds the "openai"
// provider (key from the OPENAI_API_KEY environment variable) and its models.
std::string DefaultConfig(bool with_openai);

}  // namespace modeenvoy::proxy

#endif  // MODEENVOY_EXAMPLES_PROXY_DEFAULT_CONFIG_H_
