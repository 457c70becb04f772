#include "examples/proxy/default_config.h"

#include "absl/strings/str_cat.h"

namespace modeenvoy::proxy {

std::string DefaultConfig(bool with_openai) {
  std::string providers = R"(
    "builtin-emulator": {
      "type": "openai",
      "base_url": "${EMULATOR_BASE_URL}/v1",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-anthropic": {
      "type": "anthropic",
      "base_url": "${EMULATOR_BASE_URL}",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-bedrock": {
      "type": "bedrock",
      "base_url": "${EMULATOR_BASE_URL}",
      "api_key": "demo-bedrock-api-key",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-ollama": {
      "type": "ollama",
      "base_url": "${EMULATOR_BASE_URL}",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-cohere": {
      "type": "cohere",
      "base_url": "${EMULATOR_BASE_URL}",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-kserve": {
      "type": "kserve",
      "base_url": "${EMULATOR_BASE_URL}",
      "protocol": "generate",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-azure": {
      "type": "azure_openai",
      "base_url": "${EMULATOR_BASE_URL}",
      "api_version": "2024-10-21",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-gemini": {
      "type": "gemini",
      "base_url": "${EMULATOR_BASE_URL}/v1beta",
      "api_key": "demo-key",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 30000, "idle_ms": 30000, "total_ms": 300000}
    },
    "builtin-emulator-flaky": {
      "type": "openai",
      "base_url": "${EMULATOR_BASE_URL}/faults/flaky/v1",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 5000, "idle_ms": 5000, "total_ms": 60000}
    },
    "builtin-emulator-ratelimited": {
      "type": "anthropic",
      "base_url": "${EMULATOR_BASE_URL}/faults/ratelimited",
      "timeouts": {"connect_ms": 2000, "first_byte_ms": 5000, "idle_ms": 5000, "total_ms": 60000}
    })";
  std::string models = R"(
    "demo": {"provider": "builtin-emulator", "upstream_model": "demo"},
    "demo-bedrock": {"provider": "builtin-emulator-bedrock", "upstream_model": "demo"},
    "demo-ollama": {"provider": "builtin-emulator-ollama", "upstream_model": "llama3.2"},
    "demo-cohere": {"provider": "builtin-emulator-cohere", "upstream_model": "command-a-03-2025"},
    "demo-kserve": {"provider": "builtin-emulator-kserve", "upstream_model": "ensemble"},
    "demo-anthropic": {"provider": "builtin-emulator-anthropic", "upstream_model": "demo"},
    "demo-azure": {"provider": "builtin-emulator-azure", "upstream_model": "demo"},
    "demo-gemini": {"provider": "builtin-emulator-gemini", "upstream_model": "gemini-2.5-flash"},
    "demo-embed": {"provider": "builtin-emulator", "upstream_model": "text-embedding-3-small"},
    "demo-resilient-flaky": {"provider": "builtin-emulator-flaky", "upstream_model": "demo"},
    "demo-resilient-ratelimited": {"provider": "builtin-emulator-ratelimited", "upstream_model": "demo"})";
  if (with_openai) {
    absl::StrAppend(&providers, R"(,
    "openai": {
      "type": "openai",
      "base_url": "https://api.openai.com/v1",
      "api_key_env": "OPENAI_API_KEY",
      "timeouts": {"connect_ms": 10000, "first_byte_ms": 120000, "idle_ms": 60000, "total_ms": 600000}
    })");
    for (const char* model : {"gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini",
                              "gpt-4.1-nano", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini"}) {
      absl::StrAppend(&models, ",\n    \"", model, R"(": {"provider": "openai"})");
    }
  }
  return absl::StrCat(R"({
  "listen": {"address": "127.0.0.1", "port": 8080, "max_body_bytes": 8388608},
  "providers": {)", providers, R"(
  },
  "models": {)", models, R"(
  },
  "routes": [
    {"match": {"model": "demo-resilient"}, "policy": "router",
     "retry_budget": {"percent": 50, "min_concurrency": 10},
     "pools": [{"name": "demo-resilient", "lb": {"policy": "least_request"},
                "retry": {"max_attempts": 3},
                "deployments": [
                  {"id": "flaky", "model": "demo-resilient-flaky"},
                  {"id": "ratelimited", "model": "demo-resilient-ratelimited"},
                  {"id": "healthy", "model": "demo-gemini"}]}]}
  ],
  "context": {"store": {"type": "memory"}},
  "filters": [{"type": "context"}]
}
)");
}

}  // namespace modeenvoy::proxy
