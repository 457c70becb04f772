#include "lib/tokenizer/bpe.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy::tokenizer_internal {
namespace {

std::vector<uint32_t> Small(const Vocab& v, const std::string& s) {
  std::vector<uint32_t> out;
  TokenSink sink{&out};
  MergeSmall(v, reinterpret_cast<const uint8_t*>(s.data()), s.size(), sink);
  return out;
}

std::vector<uint32_t> Large(const Vocab& v, const std::string& s, BpeWork* work = nullptr) {
  std::vector<uint32_t> out;
  TokenSink sink{&out};
  MergeLarge(v, reinterpret_cast<const uint8_t*>(s.data()), s.size(), sink, work);
  return out;
}

TEST(BpeTest, LowestRankMergesFirstAndTiesGoLeftmost) {
  // ranks: 256 "aa", 257 "ab", 258 "aab"
  auto vocab = Vocab::Parse(tokenizer_test::SmallRankFile({"aa", "ab", "aab"}), "t");
  ASSERT_TRUE(vocab.ok());
  const Vocab& v = **vocab;
  EXPECT_EQ(Small(v, "aaa"), (std::vector<uint32_t>{256, 'a'}));
  EXPECT_EQ(Small(v, "aaaa"), (std::vector<uint32_t>{256, 256}));
  // "aab": "aa"(256) beats "ab"(257), then "aa"+"b" = "aab"(258).
  EXPECT_EQ(Small(v, "aab"), (std::vector<uint32_t>{258}));
  // "aaab": leftmost "aa" first, then "a"+"b" -> "ab".
  EXPECT_EQ(Small(v, "aaab"), (std::vector<uint32_t>{256, 257}));
  for (const char* s : {"aaa", "aaaa", "aab", "aaab", "abababaaab"}) {
    EXPECT_EQ(Large(v, s), Small(v, s)) << s;
  }
}

TEST(BpeTest, HeapMergeEqualsScanMergeOnRealVocabulary) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  (void)enc;
  const std::string dir = tokenizer_test::TokenizerDir();
  // Re-parse the file to reach the private Vocab.
  std::FILE* f = std::fopen((dir + "/cl100k_base.tiktoken").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  std::fclose(f);
  auto vocab = Vocab::Parse(data, "cl100k_base");
  ASSERT_TRUE(vocab.ok());
  std::mt19937 rng(5);
  const std::vector<std::string> atoms = {"a", "e", "th", "in", "er", "漢", "字", "😀", "ing",
                                          "\xff", "1", " ", "Q", "z"};
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    while (s.size() < 2 + rng() % kSmallPieceMax) s += atoms[rng() % atoms.size()];
    if (s.size() > kSmallPieceMax) s.resize(kSmallPieceMax);
    ASSERT_EQ(Large(**vocab, s), Small(**vocab, s)) << s;
  }
}

TEST(BpeTest, LongPiecesStayNearLinear) {
  // Counting work, not time: 10x more input must cost about 10x (n log n), not 100x
  // (tiktoken's quadratic merge).
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  const std::string dir = tokenizer_test::TokenizerDir();
  std::FILE* f = std::fopen((dir + "/o200k_base.tiktoken").c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  std::fclose(f);
  auto vocab = Vocab::Parse(data, "o200k_base");
  ASSERT_TRUE(vocab.ok());
  std::mt19937 rng(9);
  auto letters = [&](size_t len) {
    std::string s;
    for (size_t i = 0; i < len; ++i) s += static_cast<char>('a' + rng() % 26);
    return s;
  };
  auto cjk = [&](size_t len) {
    std::string s;
    while (s.size() < len) {
      const uint32_t cp = 0x4e00 + rng() % 0x5200;
      s += static_cast<char>(0xe0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      s += static_cast<char>(0x80 | (cp & 0x3f));
    }
    return s;
  };
  const std::string inputs_small[] = {letters(10000), cjk(10000), std::string(10000, 'a')};
  const std::string inputs_large[] = {letters(100000), cjk(100000), std::string(100000, 'a')};
  for (int k = 0; k < 3; ++k) {
    BpeWork small, large;
    Large(**vocab, inputs_small[k], &small);
    Large(**vocab, inputs_large[k], &large);
    const double ratio = static_cast<double>(large.steps) / static_cast<double>(small.steps);
    EXPECT_LT(ratio, 16.0) << "input kind " << k << ": " << small.steps << " -> " << large.steps;
    EXPECT_GT(ratio, 5.0);
  }
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
