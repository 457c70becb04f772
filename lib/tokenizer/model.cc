#include "modeenvoy/tokenizer/model.h"

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
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

struct WindowEntry {
  const char* prefix;
  int64_t tokens;
};

// Longest matching prefix wins (the sources are in model.h).
constexpr WindowEntry kWindows[] = {
    {"gpt-5", 400000},
    {"gpt-4.1", 1047576},
    {"gpt-4.5", 128000},
    {"gpt-4o", 128000},
    {"chatgpt-4o", 128000},
    {"gpt-4-turbo", 128000},
    {"gpt-4-1106", 128000},
    {"gpt-4-0125", 128000},
    {"gpt-4-vision", 128000},
    {"gpt-4-32k", 32768},
    {"gpt-4", 8192},
    {"gpt-3.5-turbo", 16385},
    {"gpt-3.5-turbo-0613", 4096},
    {"gpt-3.5-turbo-0301", 4096},
    {"gpt-3.5-turbo-instruct", 4096},
    {"gpt-35-turbo", 16385},
    {"o1", 200000},
    {"o1-mini", 128000},
    {"o1-preview", 128000},
    {"o3", 200000},
    {"o4-mini", 200000},
    {"claude-3", 200000},
    {"claude-sonnet-4", 200000},
    {"claude-opus-4", 200000},
    {"claude-haiku-4", 200000},
    {"claude-4", 200000},
    {"claude-2.1", 200000},
    {"claude-2.0", 100000},
    {"claude-2", 100000},
    {"claude-instant", 100000},
    {"gemini-1.5-pro", 2097152},
    {"gemini-1.5-flash", 1048576},
    {"gemini-2.0", 1048576},
    {"gemini-2.5", 1048576},
};

std::optional<int64_t> LookupWindow(std::string_view model) {
  std::optional<int64_t> best;
  size_t best_len = 0;
  for (const WindowEntry& e : kWindows) {
    const std::string_view prefix = e.prefix;
    if (prefix.size() <= best_len || model.substr(0, prefix.size()) != prefix) continue;
    // A prefix is a whole name part: "gpt-4" does not match "gpt-4o".
    if (model.size() > prefix.size() &&
        std::string_view("-.:@").find(model[prefix.size()]) == std::string_view::npos) {
      continue;
    }
    best = e.tokens;
    best_len = prefix.size();
  }
  return best;
}

}  // namespace

absl::StatusOr<int64_t> ContextWindowForModel(std::string_view model) {
  std::string_view name = model;
  if (const size_t slash = name.rfind('/'); slash != std::string_view::npos) {
    name.remove_prefix(slash + 1);
  }
  if (absl::StartsWith(ToAbsl(name), "ft:")) {
    name.remove_prefix(3);
    name = name.substr(0, name.find(':'));
  }
  if (std::optional<int64_t> w = LookupWindow(name)) return *w;
  // Bedrock ids: "anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-...".
  for (std::string_view family : {"claude-", "gemini-"}) {
    const size_t at = name.find(family);
    if (at != std::string_view::npos && at > 0 && name[at - 1] == '.') {
      if (std::optional<int64_t> w = LookupWindow(name.substr(at))) return *w;
    }
  }
  return absl::NotFoundError(absl::StrFormat(
      "no known context window for model '%s'; configure it explicitly", ToAbsl(model)));
}

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
