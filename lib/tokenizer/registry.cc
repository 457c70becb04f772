// The built-in encodings, rank file discovery and the process-wide registry. The files are
// read by ReadWholeFile (vocab.cc), and TempDir() checks which temp directory exists: the
// tokenizer's only I/O.

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/tokenizer/vocab.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

struct BuiltinEncoding {
  const char* name;
  const char* file_stem;  // <stem>.tiktoken, as published by OpenAI
  const char* url_sha1;   // tiktoken cache file name: sha1 of the download URL
  const char* sha256;     // tiktoken's expected_hash
  SplitPattern pattern;
  uint32_t explicit_n_vocab;
};

constexpr const char kR50kSha1[] = "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4";
constexpr const char kP50kSha1[] = "ec7223a39ce59f226a68acc30dc1af2788490e15";
constexpr const char kCl100kSha1[] = "9b5ad71b2ce5302211f9c61530b329a4922fc6a4";
constexpr const char kO200kSha1[] = "fb374d419588a4632f3f557e76b4b70aebbca790";
constexpr const char kR50kSha256[] =
    "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930";
constexpr const char kP50kSha256[] =
    "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069";
constexpr const char kCl100kSha256[] =
    "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7";
constexpr const char kO200kSha256[] =
    "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d";

// Same order as tiktoken_ext/openai_public.py's ENCODING_CONSTRUCTORS.
constexpr BuiltinEncoding kBuiltins[] = {
    {"gpt2", "r50k_base", kR50kSha1, kR50kSha256, SplitPattern::kR50k, 50257},
    {"r50k_base", "r50k_base", kR50kSha1, kR50kSha256, SplitPattern::kR50k, 50257},
    {"p50k_base", "p50k_base", kP50kSha1, kP50kSha256, SplitPattern::kR50k, 50281},
    {"p50k_edit", "p50k_base", kP50kSha1, kP50kSha256, SplitPattern::kR50k, 0},
    {"cl100k_base", "cl100k_base", kCl100kSha1, kCl100kSha256, SplitPattern::kCl100k, 0},
    {"o200k_base", "o200k_base", kO200kSha1, kO200kSha256, SplitPattern::kO200k, 0},
    {"o200k_harmony", "o200k_base", kO200kSha1, kO200kSha256, SplitPattern::kO200k, 0},
};

constexpr char kEndOfText[] = "<|endoftext|>";
constexpr char kFimPrefix[] = "<|fim_prefix|>";
constexpr char kFimMiddle[] = "<|fim_middle|>";
constexpr char kFimSuffix[] = "<|fim_suffix|>";
constexpr char kEndOfPrompt[] = "<|endofprompt|>";

const BuiltinEncoding* FindBuiltin(std::string_view name) {
  for (const BuiltinEncoding& b : kBuiltins) {
    if (name == b.name) return &b;
  }
  return nullptr;
}

std::vector<std::pair<std::string, Token>> SpecialTokensOf(std::string_view name) {
  if (name == "gpt2" || name == "r50k_base" || name == "p50k_base") return {{kEndOfText, 50256}};
  if (name == "p50k_edit") {
    return {{kEndOfText, 50256}, {kFimPrefix, 50281}, {kFimMiddle, 50282}, {kFimSuffix, 50283}};
  }
  if (name == "cl100k_base") {
    return {{kEndOfText, 100257},
            {kFimPrefix, 100258},
            {kFimMiddle, 100259},
            {kFimSuffix, 100260},
            {kEndOfPrompt, 100276}};
  }
  if (name == "o200k_base") return {{kEndOfText, 199999}, {kEndOfPrompt, 200018}};
  if (name == "o200k_harmony") {
    // tiktoken builds this dict as o200k_base's specials | named ones | reserved ids
    // 200013..201087; "<|reserved_200018|>" shares id 200018 with "<|endofprompt|>".
    std::vector<std::pair<std::string, Token>> s = {
        {kEndOfText, 199999},          {kEndOfPrompt, 200018},
        {"<|startoftext|>", 199998},   {"<|reserved_200000|>", 200000},
        {"<|reserved_200001|>", 200001}, {"<|return|>", 200002},
        {"<|constrain|>", 200003},     {"<|reserved_200004|>", 200004},
        {"<|channel|>", 200005},       {"<|start|>", 200006},
        {"<|end|>", 200007},           {"<|message|>", 200008},
        {"<|reserved_200009|>", 200009}, {"<|reserved_200010|>", 200010},
        {"<|reserved_200011|>", 200011}, {"<|call|>", 200012}};
    for (Token i = 200013; i < 201088; ++i) s.emplace_back(absl::StrCat("<|reserved_", i, "|>"), i);
    return s;
  }
  return {};
}

std::string EnvOrEmpty(const char* var) {
  const char* v = std::getenv(var);
  return v == nullptr ? std::string() : std::string(v);
}

// Python's tempfile.gettempdir() on POSIX (where tiktoken's default cache lives): the first
// usable directory of $TMPDIR, $TEMP, $TMP, /tmp, /var/tmp, /usr/tmp and the working
// directory. Python tries to create a file there; a writable, searchable directory is the
// same test without the write.
std::string TempDir() {
  std::vector<std::string> dirs;
  for (const char* var : {"TMPDIR", "TEMP", "TMP"}) {
    std::string v = EnvOrEmpty(var);
    if (!v.empty()) dirs.push_back(std::move(v));
  }
  for (const char* d : {"/tmp", "/var/tmp", "/usr/tmp"}) dirs.emplace_back(d);
  for (const std::string& d : dirs) {
    struct stat st;
    if (::stat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && ::access(d.c_str(), W_OK | X_OK) == 0) {
      return d;
    }
  }
  return ".";
}

std::string JoinPath(std::string_view dir, std::string_view file) {
  std::string out(dir);
  if (!out.empty() && out.back() != '/') out.push_back('/');
  out.append(file);
  return out;
}

constexpr char kTokenizerDirVar[] = "MODEENVOY_TOKENIZER_DIR";

// $MODEENVOY_TOKENIZER_DIR must name a directory. kFailedPrecondition otherwise: the
// environment, not the request, needs fixing.
absl::Status CheckTokenizerDirVar(const std::string& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s=%s: %s", kTokenizerDirVar, dir,
        err == ENOENT ? "no such directory" : std::strerror(err)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s=%s: not a directory", kTokenizerDirVar, dir));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Encoding>> LoadBuiltin(const BuiltinEncoding& b,
                                                      const EncodingOptions& options) {
  EncodingSpec spec;
  spec.name = b.name;
  spec.pattern = b.pattern;
  spec.special_tokens = SpecialTokensOf(b.name);
  spec.explicit_n_vocab = b.explicit_n_vocab;
  if (options.verify_sha256) spec.expected_sha256 = b.sha256;

  std::vector<std::string> candidates;
  if (!options.rank_file.empty()) {
    candidates.push_back(options.rank_file);
  } else {
    std::string dir = options.tokenizer_dir;
    if (dir.empty()) {
      dir = EnvOrEmpty(kTokenizerDirVar);
      // Whoever set the variable meant those files; a typo must not silently yield
      // whatever tiktoken's cache holds instead.
      if (!dir.empty()) MODEENVOY_RETURN_IF_ERROR(CheckTokenizerDirVar(dir));
    }
    if (!dir.empty()) candidates.push_back(JoinPath(dir, absl::StrCat(b.file_stem, ".tiktoken")));
    std::string cache = options.tiktoken_cache_dir;
    if (cache.empty()) cache = EnvOrEmpty("TIKTOKEN_CACHE_DIR");
    if (cache.empty()) cache = EnvOrEmpty("DATA_GYM_CACHE_DIR");
    if (cache.empty()) cache = JoinPath(TempDir(), "data-gym-cache");
    candidates.push_back(JoinPath(cache, b.url_sha1));
  }
  for (const std::string& path : candidates) {
    absl::StatusOr<std::string> data = tokenizer_internal::ReadWholeFile(path);
    if (absl::IsNotFound(data.status())) continue;
    if (!data.ok()) return data.status();
    spec.name = b.name;
    absl::StatusOr<std::unique_ptr<Encoding>> enc = Encoding::Create(spec, *data);
    if (!enc.ok()) {
      return absl::Status(enc.status().code(), absl::StrCat(path, ": ", enc.status().message()));
    }
    return enc;
  }
  if (!options.rank_file.empty()) {
    return absl::NotFoundError(
        absl::StrFormat("rank file for %s not found: %s", b.name, options.rank_file));
  }
  return absl::NotFoundError(absl::StrFormat(
      "no rank file for %s (%s.tiktoken); tried %s. Set MODEENVOY_TOKENIZER_DIR to a directory "
      "holding %s.tiktoken, or TIKTOKEN_CACHE_DIR to tiktoken's cache",
      b.name, b.file_stem, absl::StrJoin(candidates, ", "), b.file_stem));
}

class Registry {
 public:
  absl::StatusOr<std::shared_ptr<const Encoding>> Get(const BuiltinEncoding& b,
                                                      const EncodingOptions& options)
      ABSL_LOCKS_EXCLUDED(mu_) {
    const std::string key = absl::StrCat(b.name, "\n", options.rank_file, "\n", options.tokenizer_dir,
                                         "\n", options.tiktoken_cache_dir, "\n",
                                         options.verify_sha256 ? "1" : "0");
    std::shared_ptr<Slot> slot;
    {
      core_internal::MutexLock lock(&mu_);
      std::shared_ptr<Slot>& s = slots_[key];
      if (s == nullptr) s = std::make_shared<Slot>();
      slot = s;
    }
    core_internal::MutexLock lock(&slot->mu);
    if (slot->encoding != nullptr) return slot->encoding;
    MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Encoding> enc, LoadBuiltin(b, options));
    slot->encoding = std::shared_ptr<const Encoding>(std::move(enc));
    return slot->encoding;
  }

 private:
  struct Slot {
    absl::Mutex mu;
    std::shared_ptr<const Encoding> encoding ABSL_GUARDED_BY(mu);
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Slot>> slots_ ABSL_GUARDED_BY(mu_);
};

Registry& GlobalRegistry() {
  static Registry* registry = new Registry();  // never destroyed: safe at exit
  return *registry;
}

// tiktoken's pat_str of each pattern (tiktoken_ext/openai_public.py, tiktoken 0.14).
constexpr char kR50kRegex[] =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)";
constexpr char kCl100kRegex[] =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s)";
constexpr char kO200kRegex[] =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
    R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// cl100k's original 2023 form (Llama 3's tokenizer).
constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*)"
    R"(|\s*[\r\n]+|\s+(?!\S)|\s+)";

}  // namespace

std::string_view SplitPatternRegex(SplitPattern pattern) {
  switch (pattern) {
    case SplitPattern::kR50k:
      return kR50kRegex;
    case SplitPattern::kCl100k:
      return kCl100kRegex;
    case SplitPattern::kO200k:
      return kO200kRegex;
    case SplitPattern::kLlama3:
      return kLlama3Regex;
    case SplitPattern::kRegex:
      break;
  }
  return {};
}

SplitPattern BuiltinSplitPattern(std::string_view regex) {
  for (SplitPattern p : {SplitPattern::kR50k, SplitPattern::kCl100k, SplitPattern::kO200k,
                         SplitPattern::kLlama3}) {
    if (regex == SplitPatternRegex(p)) return p;
  }
  return SplitPattern::kRegex;
}

std::vector<std::string> ListEncodingNames() {
  std::vector<std::string> names;
  for (const BuiltinEncoding& b : kBuiltins) names.emplace_back(b.name);
  return names;
}

absl::StatusOr<EncodingSpec> GetEncodingSpec(std::string_view name) {
  const BuiltinEncoding* b = FindBuiltin(name);
  if (b == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown encoding '%s'; known: %s",
                                                      ToAbsl(name),
                                                      absl::StrJoin(ListEncodingNames(), ", ")));
  }
  EncodingSpec spec;
  spec.name = b->name;
  spec.pattern = b->pattern;
  spec.special_tokens = SpecialTokensOf(b->name);
  spec.explicit_n_vocab = b->explicit_n_vocab;
  spec.expected_sha256 = b->sha256;
  return spec;
}

absl::StatusOr<std::shared_ptr<const Encoding>> GetEncoding(std::string_view name,
                                                            const EncodingOptions& options) {
  const BuiltinEncoding* b = FindBuiltin(name);
  if (b == nullptr) {
    return absl::InvalidArgumentError(absl::StrFormat("unknown encoding '%s'; known: %s",
                                                      ToAbsl(name),
                                                      absl::StrJoin(ListEncodingNames(), ", ")));
  }
  return GlobalRegistry().Get(*b, options);
}

absl::StatusOr<std::unique_ptr<Encoding>> LoadEncodingFromFile(EncodingSpec spec,
                                                               std::string_view path) {
  const std::string p(path);
  absl::StatusOr<std::string> data = tokenizer_internal::ReadWholeFile(p);
  if (!data.ok()) return data.status();
  absl::StatusOr<std::unique_ptr<Encoding>> enc = Encoding::Create(std::move(spec), *data);
  if (!enc.ok()) return absl::Status(enc.status().code(), absl::StrCat(p, ": ", enc.status().message()));
  return enc;
}

}  // namespace modeenvoy
