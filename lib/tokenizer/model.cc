#include "modeenvoy/tokenizer/model.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

struct ModelEntry {
  const char* model;
  const char* encoding;
};

// tiktoken 0.14 MODEL_TO_ENCODING, then the exact names it lacks.
constexpr ModelEntry kExact[] = {
    // chat
    {"o1", "o200k_base"},
    {"o3", "o200k_base"},
    {"o4-mini", "o200k_base"},
    {"gpt-5", "o200k_base"},
    {"gpt-4.1", "o200k_base"},
    {"gpt-4o", "o200k_base"},
    {"gpt-4", "cl100k_base"},
    {"gpt-3.5-turbo", "cl100k_base"},
    {"gpt-3.5", "cl100k_base"},
    {"gpt-35-turbo", "cl100k_base"},
    // base
    {"davinci-002", "cl100k_base"},
    {"babbage-002", "cl100k_base"},
    // embeddings
    {"text-embedding-ada-002", "cl100k_base"},
    {"text-embedding-3-small", "cl100k_base"},
    {"text-embedding-3-large", "cl100k_base"},
    // DEPRECATED MODELS
    {"text-davinci-003", "p50k_base"},
    {"text-davinci-002", "p50k_base"},
    {"text-davinci-001", "r50k_base"},
    {"text-curie-001", "r50k_base"},
    {"text-babbage-001", "r50k_base"},
    {"text-ada-001", "r50k_base"},
    {"davinci", "r50k_base"},
    {"curie", "r50k_base"},
    {"babbage", "r50k_base"},
    {"ada", "r50k_base"},
    {"code-davinci-002", "p50k_base"},
    {"code-davinci-001", "p50k_base"},
    {"code-cushman-002", "p50k_base"},
    {"code-cushman-001", "p50k_base"},
    {"davinci-codex", "p50k_base"},
    {"cushman-codex", "p50k_base"},
    {"text-davinci-edit-001", "p50k_edit"},
    {"code-davinci-edit-001", "p50k_edit"},
    {"text-similarity-davinci-001", "r50k_base"},
    {"text-similarity-curie-001", "r50k_base"},
    {"text-similarity-babbage-001", "r50k_base"},
    {"text-similarity-ada-001", "r50k_base"},
    {"text-search-davinci-doc-001", "r50k_base"},
    {"text-search-curie-doc-001", "r50k_base"},
    {"text-search-babbage-doc-001", "r50k_base"},
    {"text-search-ada-doc-001", "r50k_base"},
    {"code-search-babbage-code-001", "r50k_base"},
    {"code-search-ada-code-001", "r50k_base"},
    {"gpt2", "gpt2"},
    {"gpt-2", "gpt2"},
    // Not in tiktoken 0.14's exact table (its prefixes already cover the o1-, o3- and
    // chatgpt-4o- names; the others it does not map at all).
    {"o1-mini", "o200k_base"},
    {"o1-preview", "o200k_base"},
    {"o1-pro", "o200k_base"},
    {"o3-mini", "o200k_base"},
    {"o3-pro", "o200k_base"},
    {"gpt-4.5", "o200k_base"},
    {"chatgpt-4o-latest", "o200k_base"},
    {"codex-mini-latest", "o200k_base"},
    {"computer-use-preview", "o200k_base"},
    {"omni-moderation-latest", "o200k_base"},
};

// tiktoken 0.14 MODEL_PREFIX_TO_ENCODING, then the prefixes it lacks. The longest matching
// prefix wins (tiktoken takes the first in its order, which for its own entries is the same
// answer): "ft:gpt-4.1-mini-..." is o200k_base, not "ft:gpt-4"'s cl100k_base, which tiktoken
// 0.14 returns for it.
constexpr ModelEntry kPrefix[] = {
    {"o1-", "o200k_base"},
    {"o3-", "o200k_base"},
    {"o4-mini-", "o200k_base"},
    // chat
    {"gpt-5", "o200k_base"},
    {"gpt-4.5-", "o200k_base"},
    {"gpt-4.1-", "o200k_base"},
    {"chatgpt-4o-", "o200k_base"},
    {"gpt-4o-", "o200k_base"},
    {"gpt-4-", "cl100k_base"},
    {"gpt-3.5-turbo-", "cl100k_base"},
    {"gpt-35-turbo-", "cl100k_base"},
    {"gpt-oss-", "o200k_harmony"},
    // fine-tuned
    {"ft:gpt-4o", "o200k_base"},
    {"ft:gpt-4", "cl100k_base"},
    {"ft:gpt-3.5-turbo", "cl100k_base"},
    {"ft:davinci-002", "cl100k_base"},
    {"ft:babbage-002", "cl100k_base"},
    // Not in tiktoken: later families and Azure-style names.
    {"ft:gpt-4.1", "o200k_base"},
    {"ft:gpt-4.5", "o200k_base"},
    {"ft:o4-mini", "o200k_base"},
    {"ft:gpt-5", "o200k_base"},
    {"o4-", "o200k_base"},
    {"omni-moderation-", "o200k_base"},
    {"gpt-realtime", "o200k_base"},
    {"gpt-audio", "o200k_base"},
    {"gpt-image-", "o200k_base"},
};

const char* Lookup(std::string_view model) {
  for (const ModelEntry& e : kExact) {
    if (model == e.model) return e.encoding;
  }
  const char* best = nullptr;
  size_t best_len = 0;
  for (const ModelEntry& e : kPrefix) {
    const std::string_view prefix = e.model;
    if (prefix.size() > best_len && model.substr(0, prefix.size()) == prefix) {
      best = e.encoding;
      best_len = prefix.size();
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<std::string> EncodingNameForModel(std::string_view model) {
  if (const char* enc = Lookup(model)) return std::string(enc);
  // "openai/gpt-4o", "azure/gpt-4o": the provider prefix does not change the tokenizer.
  const size_t slash = model.rfind('/');
  if (slash != std::string_view::npos && slash + 1 < model.size()) {
    if (const char* enc = Lookup(model.substr(slash + 1))) return std::string(enc);
  }
  return absl::NotFoundError(absl::StrFormat(
      "could not map model '%s' to an encoding; choose an encoding by name instead "
      "(o200k_base for current OpenAI models)", ToAbsl(model)));
}

absl::StatusOr<std::shared_ptr<const Encoding>> EncodingForModel(std::string_view model,
                                                                 const EncodingOptions& options) {
  MODEENVOY_ASSIGN_OR_RETURN(std::string name, EncodingNameForModel(model));
  return GetEncoding(name, options);
}

}  // namespace modeenvoy
