#include "lib/tokenizer/regex_splitter.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"

#if MODEENVOY_TOKENIZER_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

namespace modeenvoy::tokenizer_internal {

#if MODEENVOY_TOKENIZER_PCRE2

namespace {
pcre2_code* Code(void* p) { return static_cast<pcre2_code*>(p); }

// Length of the UTF-8 character at text[i] (1 for a byte that does not start one).
size_t CharLen(std::string_view text, size_t i) {
  const auto b = static_cast<unsigned char>(text[i]);
  size_t n = b < 0xc0 ? 1 : b < 0xe0 ? 2 : b < 0xf0 ? 3 : 4;
  if (n > text.size() - i) n = 1;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) return 1;
  }
  return n;
}
}  // namespace

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Compile(std::string_view pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error,
                                   &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrFormat(
        "pat_str: regex does not compile at offset %d: %s", offset,
        reinterpret_cast<const char*>(message)));
  }
  std::unique_ptr<RegexSplitter> s(new RegexSplitter());
  s->code_ = code;
  s->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return s;
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(Code(code_)); }

void RegexSplitter::ForEachMatch(std::string_view text,
                                 absl::FunctionRef<void(size_t, size_t)> f) const {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  if (md == nullptr) {
    if (!text.empty()) f(0, text.size());
    return;
  }
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t from = 0;
  uint32_t options = 0;
  while (from < text.size() || (options != 0 && from == text.size())) {
    const int rc = pcre2_match(Code(code_), subject, text.size(), from, options, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (options == 0) break;
      // No non-empty match at `from` after an empty one there: move on one character.
      options = 0;
      if (from >= text.size()) break;
      from += CharLen(text, from);
      continue;
    }
    if (rc < 0) {
      f(from, text.size());  // resource limit: see the header
      break;
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t begin = ov[0], end = ov[1];
    if (end > begin) {
      f(begin, end);
      options = 0;
    } else {
      // Empty match: look for a non-empty one at the same place before moving on.
      options = PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED;
    }
    from = end;
  }
  pcre2_match_data_free(md);
}

#else  // !MODEENVOY_TOKENIZER_PCRE2

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Compile(std::string_view) {
  return absl::UnimplementedError(
      "pat_str: custom pre-tokenization regexes need PCRE2; this library was built with "
      "MODEENVOY_TOKENIZER_PCRE2=OFF (the built-in patterns work without it)");
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::ForEachMatch(std::string_view, absl::FunctionRef<void(size_t, size_t)>) const {}

#endif

}  // namespace modeenvoy::tokenizer_internal
