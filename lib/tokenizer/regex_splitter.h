// lib/tokenizer/regex_splitter.h: pre-tokenization by an arbitrary regex (tiktoken's
// `pat_str` when it is none of the built-in patterns), through PCRE2 with its JIT.
//
// tiktoken runs `regex.find_iter` over each segment: the pieces are the successive
// non-overlapping leftmost-first matches, and text between matches produces no tokens.
// PCRE2 is compiled with PCRE2_UTF | PCRE2_UCP (\p{..}, \s, \w and case folding by Unicode
// properties) and PCRE2_MATCH_INVALID_UTF (ill-formed UTF-8 never matches, so it is text
// between matches). Its Unicode tables are those of the PCRE2 release (Debian bookworm's
// 10.42: Unicode 14.0), older than the 16.0 tables of tiktoken's regex engine: characters
// assigned after 14.0 have no letter/number property here (docs/tokenizer.md).
// Empty matches produce no piece; the search then moves on by one character.
//
// Built without PCRE2 (-DMODEENVOY_TOKENIZER_PCRE2=OFF), Compile returns kUnimplemented.
// Thread safety: a compiled splitter is immutable; ForEachMatch may run on many threads.
#ifndef MODEENVOY_LIB_TOKENIZER_REGEX_SPLITTER_H_
#define MODEENVOY_LIB_TOKENIZER_REGEX_SPLITTER_H_

#include <cstddef>
#include <memory>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"

namespace modeenvoy::tokenizer_internal {

class MODEENVOY_EXPORT RegexSplitter {
 public:
  // Errors: kInvalidArgument naming the offset and PCRE2's message if `pattern` does not
  // compile; kUnimplemented if the library was built without PCRE2.
  static absl::StatusOr<std::unique_ptr<RegexSplitter>> Compile(std::string_view pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Calls f(begin, end) for every non-empty match in `text`, left to right (byte offsets).
  // A match that exceeds PCRE2's resource limits (a pattern with catastrophic backtracking)
  // ends the search: the rest of `text` becomes one last piece, so no input is dropped
  // silently where tiktoken would raise an error.
  void ForEachMatch(std::string_view text, absl::FunctionRef<void(size_t, size_t)> f) const;

  // Whether the JIT compiled the pattern (else PCRE2's interpreter runs it).
  bool jit() const { return jit_; }

 private:
  RegexSplitter() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_REGEX_SPLITTER_H_
