// examples/emulator/openai_wire.h: what OpenAI's two APIs (Chat Completions,
// openai_dialect.cc, which defines these; Responses, openai_responses_dialect.cc) answer
// alike: the bearer key, the error for an HTTP status, and the error object.
#ifndef MODEENVOY_EXAMPLES_EMULATOR_OPENAI_WIRE_H_
#define MODEENVOY_EXAMPLES_EMULATOR_OPENAI_WIRE_H_

#include <string>

#include <nlohmann/json.hpp>

#include "examples/emulator/provider_dialect.h"

namespace modeenvoy::emulator {

// The key of an `Authorization: Bearer KEY` header (scheme case-insensitive), or "".
std::string OpenAiBearerKey(const Request& req);

// OpenAI's error type, message and code for an HTTP status (401 aside: it names the key).
ApiError OpenAiDefaultError(int status, const std::string& model);

// ProviderDialect::MakeError for OpenAI's APIs: the routing and HTTP errors, a 401 naming
// the presented key (masked), else OpenAiDefaultError for the request's model.
ApiError OpenAiMakeError(ErrorCause cause, int status, const Request& req,
                         const std::string& model);

// The "error" member of an OpenAI error body.
nlohmann::ordered_json OpenAiErrorJson(const ApiError& e);

}  // namespace modeenvoy::emulator

#endif  // MODEENVOY_EXAMPLES_EMULATOR_OPENAI_WIRE_H_
