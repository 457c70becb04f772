// include/modeenvoy/tokenizer/model.h: which encoding an OpenAI model uses.
//   auto name = modeenvoy::EncodingNameForModel("gpt-4o-mini");   // "o200k_base"
//   auto enc = modeenvoy::EncodingForModel("gpt-4.1");            // shared, loaded once
//
// The table mirrors tiktoken 0.14's tiktoken/model.py (exact names, then prefixes in its
// order, so dated and fine-tuned variants resolve as tiktoken resolves them) and adds the
// current families tiktoken reaches only through prefixes. Names a gateway commonly sees
// with a provider prefix ("openai/gpt-4o", "azure/gpt-4o") resolve by their last segment.
#ifndef MODEENVOY_TOKENIZER_MODEL_H_
#define MODEENVOY_TOKENIZER_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy {

// The encoding name for `model`, e.g. "cl100k_base" for "gpt-4-0613".
// Errors: kNotFound if the model is not known (then pick an encoding explicitly).
MODEENVOY_EXPORT absl::StatusOr<std::string> EncodingNameForModel(std::string_view model);

// GetEncoding(EncodingNameForModel(model), options). Errors: as both.
MODEENVOY_EXPORT absl::StatusOr<std::shared_ptr<const Encoding>> EncodingForModel(
    std::string_view model, const EncodingOptions& options = {});

// The context window (input + output tokens) of `model`, for callers without a configured
// value (e.g. fitting history with modeenvoy.fit_context in Python). Sources, as published
// by the vendors' model pages: OpenAI (gpt-5*: 400,000; gpt-4.1*: 1,047,576; o1, o1-pro,
// o3*, o4-mini: 200,000; o1-mini, o1-preview, gpt-4o*, gpt-4.5, gpt-4-turbo and the
// gpt-4-1106/0125 previews: 128,000; gpt-4-32k: 32,768; gpt-4: 8,192; gpt-3.5-turbo
// (0125/1106, -16k): 16,385; gpt-3.5-turbo-0613/0301/-instruct: 4,096), Anthropic (claude-3,
// 3.5, 3.7, 4 and 4.x, claude-2.1: 200,000; claude-2.0, claude-instant: 100,000) and Google
// (gemini-1.5-pro: 2,097,152; gemini-1.5-flash, gemini-2.0*, gemini-2.5*: 1,048,576).
// Dated and suffixed names resolve by their longest known prefix ("gpt-4o-2024-08-06");
// provider prefixes ("openai/gpt-4o") and Bedrock ids ("us.anthropic.claude-3-5-sonnet-
// 20240620-v1:0") by the model name they contain.
// Errors: kNotFound for a model not in the table (configure the window explicitly).
MODEENVOY_EXPORT absl::StatusOr<int64_t> ContextWindowForModel(std::string_view model);

}  // namespace modeenvoy

#endif  // MODEENVOY_TOKENIZER_MODEL_H_
