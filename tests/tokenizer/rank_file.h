// tests/tokenizer/rank_file.h: synthetic .tiktoken rank files for the tokenizer tests and
// fuzzers (no test framework, so the libFuzzer targets can use it too).
#ifndef MODEENVOY_TESTS_TOKENIZER_RANK_FILE_H_
#define MODEENVOY_TESTS_TOKENIZER_RANK_FILE_H_

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace modeenvoy::tokenizer_test {

// A small rank file: the 256 single bytes (byte b has rank b), then `merges` in order from
// rank 256. With late_byte in [0, 256), that byte leaves its place and comes last, ranked
// above every merge: a vocabulary where a byte ranks above the tokens made of it.
inline std::string SmallRankFile(const std::vector<std::string>& merges, int late_byte = -1) {
  std::string out;
  auto line = [&](const std::string& bytes, int rank) {
    out += absl::StrCat(absl::Base64Escape(bytes), " ", rank, "\n");
  };
  for (int b = 0; b < 256; ++b) {
    if (b != late_byte) line(std::string(1, static_cast<char>(b)), b);
  }
  int rank = 256;
  for (const std::string& m : merges) line(m, rank++);
  if (late_byte >= 0 && late_byte < 256) line(std::string(1, static_cast<char>(late_byte)), rank);
  return out;
}

}  // namespace modeenvoy::tokenizer_test

#endif  // MODEENVOY_TESTS_TOKENIZER_RANK_FILE_H_
