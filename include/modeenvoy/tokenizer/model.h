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

}  // namespace modeenvoy

#endif  // MODEENVOY_TOKENIZER_MODEL_H_
