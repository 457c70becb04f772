// include/modeenvoy/tokenizer/encoding.h: tiktoken-exact byte pair encodings.
//   auto enc = modeenvoy::GetEncoding("o200k_base");
//   if (!enc.ok()) return enc.status();
//   std::vector<modeenvoy::Token> ids = (*enc)->EncodeOrdinary("hello world");
//   size_t n = (*enc)->CountOrdinary(text);                 // never builds the id vector
//   auto with_specials = (*enc)->Encode(text, modeenvoy::SpecialTokenSet::All());
//   absl::StatusOr<std::string> bytes = (*enc)->DecodeBytes(ids);
//
// Output is identical to OpenAI's tiktoken (PyPI 0.14) for cl100k_base, o200k_base,
// o200k_harmony, p50k_base, p50k_edit, r50k_base and gpt2: same pre-tokenization (the
// regexes are reimplemented by hand over Unicode 16.0 tables, the version tiktoken's regex
// engine uses) and the same merge order. Input is bytes: well-formed UTF-8 tokenizes exactly
// as tiktoken does for the same str; ill-formed sequences are tokenized byte by byte as
// non-letter characters (tiktoken cannot receive them) and still round-trip through
// DecodeBytes.
#ifndef MODEENVOY_TOKENIZER_ENCODING_H_
#define MODEENVOY_TOKENIZER_ENCODING_H_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "modeenvoy/export.h"

namespace modeenvoy {
namespace tokenizer_internal {
class Vocab;
}  // namespace tokenizer_internal

// A token id: a mergeable rank or a special token's id.
using Token = uint32_t;

// The pre-tokenization rule of an encoding (tiktoken's `pat_str`).
enum class SplitPattern {
  kR50k,    // r50k_base, p50k_base, p50k_edit, gpt2
  kCl100k,  // cl100k_base (current upstream form, with \s++$)
  kO200k,   // o200k_base, o200k_harmony
  kLlama3,  // cl100k's original 2023 form, as used by Meta's Llama 3 tokenizer
  // Any other regex (EncodingSpec::regex), run by PCRE2: see BuiltinSplitPattern.
  kRegex,
};

// tiktoken's pat_str of a built-in pattern, character for character as in
// tiktoken_ext/openai_public.py (empty for kRegex).
MODEENVOY_EXPORT std::string_view SplitPatternRegex(SplitPattern pattern);
// The built-in pattern whose pat_str is exactly `regex`, or kRegex if there is none.
MODEENVOY_EXPORT SplitPattern BuiltinSplitPattern(std::string_view regex);

// A set of special-token strings, or "all" of an encoding's special tokens; the C++ form of
// tiktoken's `allowed_special` / `disallowed_special` arguments.
class MODEENVOY_EXPORT SpecialTokenSet {
 public:
  // The empty set (tiktoken's `set()`).
  SpecialTokenSet() = default;
  SpecialTokenSet(std::initializer_list<std::string_view> tokens);
  explicit SpecialTokenSet(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}
  // tiktoken's "all".
  static SpecialTokenSet All() {
    SpecialTokenSet s;
    s.all_ = true;
    return s;
  }
  static SpecialTokenSet None() { return SpecialTokenSet(); }

  bool all() const { return all_; }
  // The listed strings; empty when all() is true.
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  bool all_ = false;
  std::vector<std::string> tokens_;
};

// Everything that defines an encoding except its rank file.
struct EncodingSpec {
  std::string name;
  SplitPattern pattern = SplitPattern::kCl100k;
  // With pattern == kRegex: the pre-tokenization regex (tiktoken's pat_str). A regex equal
  // to a built-in pattern's (SplitPatternRegex) takes that pattern's hand-written splitter;
  // any other runs through PCRE2 with its JIT: matches are tiktoken's find_iter pieces,
  // text between matches produces no tokens, ill-formed UTF-8 never matches, and PCRE2's
  // Unicode tables (14.0 in Debian bookworm's 10.42) are older than tiktoken's (16.0), so
  // characters assigned since have no \p{L}/\p{N} property (docs/tokenizer.md). Ignored
  // for the other patterns.
  std::string regex;
  // Special token strings and ids. Ids must not collide with mergeable ranks.
  std::vector<std::pair<std::string, Token>> special_tokens;
  // If non-zero, n_vocab must equal this (tiktoken's explicit_n_vocab).
  uint32_t explicit_n_vocab = 0;
  // If non-empty, the rank file's SHA-256 (lowercase hex) must equal this.
  std::string expected_sha256;
};

// A loaded encoding: immutable after construction.
// Thread safety: thread-safe; share one instance between all threads. No method performs I/O
// except EncodeBatch/EncodeOrdinaryBatch/CountOrdinaryBatch, which start worker threads.
class MODEENVOY_EXPORT Encoding {
 public:
  // Builds an encoding from the contents of a .tiktoken rank file (one "base64 rank" per
  // line). Performs no I/O.
  // Errors: kDataLoss if the contents are malformed (message names the line) or do not match
  // spec.expected_sha256; kInvalidArgument if the spec is inconsistent (a special id equal
  // to a mergeable rank, explicit_n_vocab mismatch).
  static absl::StatusOr<std::unique_ptr<Encoding>> Create(EncodingSpec spec,
                                                          std::string_view rank_file_contents);
  // Builds an encoding from mergeable ranks given as (token bytes, rank) pairs, as
  // tiktoken's Encoding(mergeable_ranks=...): custom ranks and special tokens on a built-in
  // pattern (spec.pattern) or on any regex (spec.regex with kRegex). spec.expected_sha256
  // is ignored. Every single byte must have a rank.
  // Errors: kDataLoss for malformed ranks (duplicates, a missing single byte, a rank of
  // 2^24 or more); kInvalidArgument as Create's, or a regex that does not compile (offset
  // and PCRE2's message); kUnimplemented for a custom regex in a build without PCRE2.
  static absl::StatusOr<std::unique_ptr<Encoding>> CreateFromRanks(
      EncodingSpec spec, std::vector<std::pair<std::string, Token>> ranks);
  ~Encoding();
  Encoding(const Encoding&) = delete;
  Encoding& operator=(const Encoding&) = delete;

  const std::string& name() const { return spec_.name; }
  SplitPattern pattern() const { return spec_.pattern; }
  // The pre-tokenization regex: SplitPatternRegex(pattern()), or the custom one.
  std::string_view regex() const;
  // Largest token id + 1, as tiktoken's n_vocab.
  uint32_t n_vocab() const { return max_token_value_ + 1; }
  Token max_token_value() const { return max_token_value_; }
  // Special tokens in the order of the spec.
  const std::vector<std::pair<std::string, Token>>& special_tokens() const {
    return spec_.special_tokens;
  }
  bool IsSpecialToken(Token token) const;
  // Bytes of loaded data structures, for capacity planning.
  size_t MemoryUsage() const;

  // Encodes `text` ignoring special tokens (they are encoded as ordinary text).
  std::vector<Token> EncodeOrdinary(std::string_view text) const;
  // Appends the tokens of `text` to `*out`.
  void EncodeOrdinaryInto(std::string_view text, std::vector<Token>* out) const;
  // Number of tokens EncodeOrdinary would return, computed without storing them.
  size_t CountOrdinary(std::string_view text) const;
  // tiktoken's private _encode_bytes(): well-formed UTF-8 is EncodeOrdinary(bytes). Else
  // the longest well-formed prefix is encoded, and the tokens of its last piece (extended
  // back over whole-whitespace tokens, as tiktoken does) are merged again together with
  // the remaining bytes, so truncated UTF-8 at the end tokenizes as tiktoken's does. The
  // result always decodes back to `bytes`.
  std::vector<Token> EncodeBytes(std::string_view bytes) const;

  // tiktoken's encode(): occurrences of special tokens in `allowed_special` become their
  // ids; text matching any string of `disallowed_special` is an error. "All" for
  // disallowed means every special token not allowed.
  // Errors: kInvalidArgument naming the first disallowed special token found in `text`.
  absl::StatusOr<std::vector<Token>> Encode(
      std::string_view text, const SpecialTokenSet& allowed_special = SpecialTokenSet::None(),
      const SpecialTokenSet& disallowed_special = SpecialTokenSet::All()) const;
  // Number of tokens Encode would return, computed without storing them. Same errors.
  absl::StatusOr<size_t> Count(
      std::string_view text, const SpecialTokenSet& allowed_special = SpecialTokenSet::None(),
      const SpecialTokenSet& disallowed_special = SpecialTokenSet::All()) const;

  // Encodes many texts on up to `num_threads` threads (<= 1: the calling thread only).
  // Result i belongs to texts[i]. Errors: as Encode, for the first failing text.
  absl::StatusOr<std::vector<std::vector<Token>>> EncodeBatch(
      absl::Span<const std::string_view> texts,
      const SpecialTokenSet& allowed_special = SpecialTokenSet::None(),
      const SpecialTokenSet& disallowed_special = SpecialTokenSet::All(),
      int num_threads = 8) const;
  std::vector<std::vector<Token>> EncodeOrdinaryBatch(absl::Span<const std::string_view> texts,
                                                      int num_threads = 8) const;
  std::vector<size_t> CountOrdinaryBatch(absl::Span<const std::string_view> texts,
                                         int num_threads = 8) const;

  // Concatenated bytes of `tokens` (any bytes; not necessarily UTF-8).
  // Errors: kInvalidArgument naming the first token that is neither a rank nor a special id.
  absl::StatusOr<std::string> DecodeBytes(absl::Span<const Token> tokens) const;
  // DecodeBytes, then ill-formed UTF-8 replaced by U+FFFD exactly as Python's
  // bytes.decode("utf-8", errors="replace") does (tiktoken's decode()). Same errors.
  absl::StatusOr<std::string> Decode(absl::Span<const Token> tokens) const;
  // Bytes of one token. The view lives as long as the Encoding.
  // Errors: kInvalidArgument if `token` is unknown.
  absl::StatusOr<std::string_view> DecodeSingleTokenBytes(Token token) const;
  // The token whose bytes are exactly `bytes` (a rank or a special token).
  // Errors: kNotFound if there is none.
  absl::StatusOr<Token> EncodeSingleToken(std::string_view bytes) const;

 private:
  struct Impl;
  explicit Encoding(EncodingSpec spec);
  static absl::StatusOr<std::unique_ptr<Encoding>> Finish(
      EncodingSpec spec, std::unique_ptr<tokenizer_internal::Vocab> vocab);
  template <class Sink>
  void EncodeOrdinaryTo(std::string_view text, Sink& sink) const;
  template <class Sink>
  void EncodeRegexTo(std::string_view text, Sink& sink) const;
  // Calls f(begin, end) for each piece of `text` (byte offsets), in order.
  template <class F>
  void ForEachPiece(std::string_view text, const F& f) const;
  template <class Sink>
  absl::Status EncodeTo(std::string_view text, const SpecialTokenSet& allowed,
                        const SpecialTokenSet& disallowed, Sink& sink) const;

  EncodingSpec spec_;
  Token max_token_value_ = 0;
  std::unique_ptr<Impl> impl_;
};

// Where GetEncoding looks for rank files. Empty fields take the environment's value.
struct EncodingOptions {
  // Explicit rank file path; when set, nothing else is searched.
  std::string rank_file;
  // Directory holding <name>.tiktoken. Empty: $MODEENVOY_TOKENIZER_DIR, which must then
  // name a directory if set (a directory without the file falls through to the cache).
  std::string tokenizer_dir;
  // tiktoken's cache directory, whose files are named by the SHA-1 of their download URL.
  // Empty: $TIKTOKEN_CACHE_DIR, else $DATA_GYM_CACHE_DIR, else <tmp>/data-gym-cache, where
  // <tmp> is $TMPDIR, $TEMP, $TMP or /tmp (as Python's tempfile.gettempdir()).
  std::string tiktoken_cache_dir;
  // Check the file's SHA-256 against the published value (the built-in encodings only).
  bool verify_sha256 = true;
};

// The names GetEncoding knows, as tiktoken.list_encoding_names().
MODEENVOY_EXPORT std::vector<std::string> ListEncodingNames();

// The built-in definition of `name` (pattern, special tokens, expected hash).
// Errors: kInvalidArgument if the name is unknown.
MODEENVOY_EXPORT absl::StatusOr<EncodingSpec> GetEncodingSpec(std::string_view name);

// Returns the process-wide shared instance of the built-in encoding `name`, loading it on
// first use: from options.rank_file if set, else <tokenizer_dir>/<name>.tiktoken, else the
// tiktoken cache file. Each distinct (name, options) loads once; concurrent first calls wait
// for the one load. Failed loads are not cached (a later call retries).
// Errors: kInvalidArgument for an unknown name; kNotFound naming every path tried;
// kDataLoss for a corrupt file or a SHA-256 mismatch; kUnavailable if a file exists but
// cannot be read; kFailedPrecondition, naming the variable and its value, if
// $MODEENVOY_TOKENIZER_DIR is consulted and names no directory.
// Thread safety: thread-safe.
MODEENVOY_EXPORT absl::StatusOr<std::shared_ptr<const Encoding>> GetEncoding(
    std::string_view name, const EncodingOptions& options = {});

// Reads `path` and builds an encoding from it (not cached). Errors: as GetEncoding and
// Encoding::Create.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<Encoding>> LoadEncodingFromFile(
    EncodingSpec spec, std::string_view path);

// The piece cache. Encoding a piece of text that is not itself a token needs byte pair
// merges; the tokens of such pieces of up to 54 bytes are remembered in a cache per thread
// (CLOCK replacement), so a word seen again costs one probe. The cache never changes a
// result. Its bound is per thread, in bytes, counting everything the cache allocates, and
// is shared by all encodings; default kDefaultPieceCacheBytes (2 MiB: about 27,000 pieces,
// the working set of natural text in 18 languages; English prose and code need a quarter of
// it), 0 disables caching. A thread picks up a new bound on its next encode call (dropping
// what it cached); the memory is touched only as entries are written.
// Thread safety: SetPieceCacheBytes/PieceCacheBytes are thread-safe; the stats functions
// read and reset the calling thread's own counters.
inline constexpr size_t kDefaultPieceCacheBytes = size_t{2} << 20;
struct PieceCacheStats {
  uint64_t hits = 0;       // pieces answered from the cache
  uint64_t misses = 0;     // pieces looked up and merged
  uint64_t inserts = 0;    // pieces stored
  uint64_t evictions = 0;  // stored pieces that replaced another
};
MODEENVOY_EXPORT void SetPieceCacheBytes(size_t bytes);
MODEENVOY_EXPORT size_t PieceCacheBytes();
// The calling thread's counters since its cache was created or last reset, and the bytes
// that cache allocates (0 before the thread's first encode call or when disabled).
MODEENVOY_EXPORT PieceCacheStats ThisThreadPieceCacheStats(size_t* memory_bytes = nullptr);
MODEENVOY_EXPORT void ResetThisThreadPieceCacheStats();

// The pre-tokenizer. By default ASCII text is cut into pieces from bit masks of 64-byte
// blocks classified with AVX2 or SSE2 (chosen at run time); every choice cuts exactly the same
// pieces, so this only exists to test and measure each path. `mode`: "auto" (the best the
// CPU has), "avx2", "sse2", "scalar" (the block masks computed byte by byte) or "off" (the
// per-character splitter). A SIMD mode the CPU lacks falls back to the next one it has. The
// environment variable MODEENVOY_TOKENIZER_SIMD, read once, sets the initial mode the same
// way. Returns the name of the mode in effect. Thread safety: thread-safe; calls already
// running keep the mode they started with.
// Errors: kInvalidArgument for another name.
MODEENVOY_EXPORT absl::StatusOr<std::string> SetPretokenizerMode(std::string_view mode);
// The name of the pre-tokenizer mode in effect ("avx2", "sse2", "scalar" or "off").
MODEENVOY_EXPORT std::string PretokenizerMode();

}  // namespace modeenvoy

#endif  // MODEENVOY_TOKENIZER_ENCODING_H_
