// tests/tokenizer/test_util.h: helpers shared by the tokenizer tests.
#ifndef MODEENVOY_TESTS_TOKENIZER_TEST_UTIL_H_
#define MODEENVOY_TESTS_TOKENIZER_TEST_UTIL_H_

#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/rank_file.h"  // SmallRankFile

namespace modeenvoy::tokenizer_test {

// Directory with the verified .tiktoken files, or "" if the environment has none.
inline std::string TokenizerDir() {
  const char* dir = std::getenv("MODEENVOY_TOKENIZER_DIR");
  return dir == nullptr ? std::string() : std::string(dir);
}

// Loads a built-in encoding from MODEENVOY_TOKENIZER_DIR; on failure *skip_reason says why.
inline std::shared_ptr<const Encoding> LoadForTest(const std::string& name,
                                                   std::string* skip_reason) {
  const std::string dir = TokenizerDir();
  if (dir.empty()) {
    *skip_reason = "MODEENVOY_TOKENIZER_DIR is not set; run scripts/setup.sh";
    return nullptr;
  }
  EncodingOptions options;
  options.tokenizer_dir = dir;
  auto enc = GetEncoding(name, options);
  if (!enc.ok()) {
    *skip_reason = absl::StrCat("tokenizer data missing: ", enc.status().ToString());
    return nullptr;
  }
  return *enc;
}

#define MODEENVOY_LOAD_OR_SKIP(var, name)                                  \
  std::string var##_skip_reason;                                           \
  std::shared_ptr<const ::modeenvoy::Encoding> var =                       \
      ::modeenvoy::tokenizer_test::LoadForTest(name, &var##_skip_reason);  \
  if (var == nullptr) GTEST_SKIP() << var##_skip_reason

}  // namespace modeenvoy::tokenizer_test

#endif  // MODEENVOY_TESTS_TOKENIZER_TEST_UTIL_H_
