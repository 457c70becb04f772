#include "lib/tokenizer/pretokenize_simd.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "lib/tokenizer/pretokenize.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy::tokenizer_internal {
namespace {

using Pieces = std::vector<std::string>;

template <class Next>
Pieces Split(std::string_view text, Next next) {
  Pieces out;
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* end = p + text.size();
  while (p < end) {
    const uint8_t* q = next(p, end);
    if (q <= p || q > end) {
      ADD_FAILURE() << "no progress";
      break;
    }
    out.emplace_back(reinterpret_cast<const char*>(p), static_cast<size_t>(q - p));
    p = q;
  }
  return out;
}

Pieces Reference(SplitPattern pattern, std::string_view t) {
  switch (pattern) {
    case SplitPattern::kCl100k:
      return Split(t, NextCl100kPiece<true>);
    case SplitPattern::kLlama3:
      return Split(t, NextCl100kPiece<false>);
    case SplitPattern::kO200k:
      return Split(t, NextO200kPiece);
    case SplitPattern::kR50k:
      return Split(t, NextR50kPiece);
    case SplitPattern::kRegex:  // custom patterns never take the mask splitter
      break;
  }
  ADD_FAILURE() << "no reference splitter for this pattern";
  return {};
}

template <SplitPattern kPattern>
Pieces WithMasks(ClassifyFn classify, std::string_view t) {
  MaskSplitter<kPattern> s(classify);
  return Split(t, [&s](const uint8_t* a, const uint8_t* b) { return s.Next(a, b); });
}

Pieces Masks(SplitPattern pattern, ClassifyFn classify, std::string_view t) {
  switch (pattern) {
    case SplitPattern::kCl100k:
      return WithMasks<SplitPattern::kCl100k>(classify, t);
    case SplitPattern::kLlama3:
      return WithMasks<SplitPattern::kLlama3>(classify, t);
    case SplitPattern::kO200k:
      return WithMasks<SplitPattern::kO200k>(classify, t);
    case SplitPattern::kR50k:
      return WithMasks<SplitPattern::kR50k>(classify, t);
    case SplitPattern::kRegex:  // custom patterns never take the mask splitter
      break;
  }
  ADD_FAILURE() << "no mask splitter for this pattern";
  return {};
}

constexpr SplitPattern kPatterns[] = {SplitPattern::kCl100k, SplitPattern::kLlama3,
                                      SplitPattern::kO200k, SplitPattern::kR50k};

// Every classifier this build has, with its name (those the CPU lacks are left out).
std::vector<std::pair<const char*, ClassifyFn>> Classifiers() {
  std::vector<std::pair<const char*, ClassifyFn>> out = {{"scalar", &ClassifyScalar}};
#if defined(__x86_64__) || defined(__i386__)
  out.emplace_back("sse2", &ClassifySse2);
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) out.emplace_back("avx2", &ClassifyAvx2);
#endif
  return out;
}

TEST(PretokenizeSimdTest, MasksOfAKnownBlock) {
  // Byte k of the input sets bit k; the expected masks are written out by hand.
  const std::string s = "Ab9 \n\t/\xc3\xa9\r'";
  //                     0123 4 5 6 7   8   9 10
  for (const auto& [name, classify] : Classifiers()) {
    SCOPED_TRACE(name);
    BlockMasks m;
    classify(reinterpret_cast<const uint8_t*>(s.data()), static_cast<int>(s.size()), &m);
    EXPECT_EQ(m.upper, 0b1u);
    EXPECT_EQ(m.lower, 0b10u);
    EXPECT_EQ(m.digit, 0b100u);
    EXPECT_EQ(m.space, (1u << 3) | (1u << 4) | (1u << 5) | (1u << 9));
    EXPECT_EQ(m.newline, (1u << 4) | (1u << 9));
    EXPECT_EQ(m.slash, 1u << 6);
    EXPECT_EQ(m.nonascii, (1u << 7) | (1u << 8));
  }
}

TEST(PretokenizeSimdTest, ClassifiersAgreeOnEveryByteAndLength) {
  std::mt19937 rng(13);
  std::vector<uint8_t> block(64);
  for (int round = 0; round < 2000; ++round) {
    for (auto& b : block) b = static_cast<uint8_t>(rng());
    if (round < 4) {  // every byte value at every position at least once
      for (int k = 0; k < 64; ++k) block[k] = static_cast<uint8_t>(64 * round + k);
    }
    const int n = 1 + static_cast<int>(rng() % 64);
    BlockMasks want;
    ClassifyScalar(block.data(), n, &want);
    for (const auto& [name, classify] : Classifiers()) {
      BlockMasks got;
      classify(block.data(), n, &got);
      ASSERT_EQ(got.upper, want.upper) << name << " n=" << n;
      ASSERT_EQ(got.lower, want.lower) << name;
      ASSERT_EQ(got.digit, want.digit) << name;
      ASSERT_EQ(got.space, want.space) << name;
      ASSERT_EQ(got.newline, want.newline) << name;
      ASSERT_EQ(got.slash, want.slash) << name;
      ASSERT_EQ(got.nonascii, want.nonascii) << name;
    }
  }
}

// Texts built from fragments that exercise every branch: contractions of both cases, runs of
// capitals, digits, whitespace of every ASCII kind and non-ASCII whitespace, punctuation
// followed by CR/LF or '/', letters, marks and digits outside ASCII, invalid bytes.
std::string RandomText(std::mt19937& rng, size_t pieces) {
  static const char* const kFragments[] = {
      "the", " quick", " Brown", "FOX", "'s", "'S", "'ll", "'Re", "'ve", "'d", "'", "'x",
      "\xc5\xbf", "123", "4567", "9", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", " \n ",
      "\v\f", ".", ",", "!?", "//", "/", "->", "(", ")", "{", "}", ";", "\"", "-", "_", "#",
      "\xc3\xa9", "caf\xc3\xa9", "\xd0\x9f\xd1\x80\xd0\xb8", "\xe4\xb8\xad\xe6\x96\x87",
      "\xcc\x81", "\xc2\xa0", "\xc2\x85", "\xe3\x80\x80", "\xc2\xb2", "\xd9\xa3", "\xff",
      "\xe2\x80\x8b", "ABCdef", "aBC", "HTTPServer", "x1", "\x01", "\x7f", "~", "'\xc3\xa9",
      " \xc3\xa9", "\xf0\x9f\x98\x80", "ALLCAPS", "lowercase_words_run_long_enough_to_cross"};
  constexpr size_t kN = sizeof(kFragments) / sizeof(kFragments[0]);
  std::string s;
  for (size_t k = 0; k < pieces; ++k) s += kFragments[rng() % kN];
  return s;
}

TEST(PretokenizeSimdTest, MaskSplitterCutsTheReferencePiecesOnRandomMixtures) {
  std::mt19937 rng(2026);
  std::vector<std::string> texts = {
      "", "a", " ", "\n", "'", "it's", "IT'S", "a\n  ", "hello  world\n\n", "x  ",
      std::string(200, 'a'), std::string(200, ' '), std::string(70, '\n'),
      "abc" + std::string(61, ' ') + "'re",  // contraction across the window end
      std::string(62, 'x') + "'ll", std::string(60, '.') + "\r\n/\n",
  };
  for (int k = 0; k < 3000; ++k) texts.push_back(RandomText(rng, 1 + rng() % 60));
  for (SplitPattern pattern : kPatterns) {
    for (const auto& [name, classify] : Classifiers()) {
      for (const std::string& t : texts) {
        ASSERT_EQ(Masks(pattern, classify, t), Reference(pattern, t))
            << name << " pattern " << static_cast<int>(pattern) << " text '" << t << "'";
      }
    }
  }
}

// The corpus files of scripts/make_tokenizer_corpus.py, when $MODEENVOY_DATA_DIR (or .data)
// has them: every piece of the benchmark texts, each classifier and pattern.
TEST(PretokenizeSimdTest, MaskSplitterCutsTheReferencePiecesOnTheCorpus) {
  const char* dir = std::getenv("MODEENVOY_DATA_DIR");
  const std::string base = std::string(dir != nullptr ? dir : ".data") + "/tokenizer-corpus/";
  size_t files = 0, bytes = 0;
  for (const char* file : {"bench_prose.txt", "bench_code.txt", "bench_multilingual.txt"}) {
    std::ifstream in(base + file, std::ios::binary);
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    ++files;
    bytes += text.size();
    for (SplitPattern pattern : kPatterns) {
      const Pieces want = Reference(pattern, text);
      for (const auto& [name, classify] : Classifiers()) {
        const Pieces got = Masks(pattern, classify, text);
        ASSERT_EQ(got.size(), want.size()) << file << " " << name;
        for (size_t i = 0; i < got.size(); ++i) {
          ASSERT_EQ(got[i], want[i]) << file << " " << name << " piece " << i;
        }
      }
    }
  }
  if (files == 0) GTEST_SKIP() << "no corpus in " << base << ": run scripts/make_tokenizer_corpus.py";
  std::printf("compared the pieces of %zu files, %zu bytes\n", files, bytes);
}

TEST(PretokenizeSimdTest, ModesSwitchAndGiveTheSameIds) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  std::mt19937 rng(7);
  std::vector<std::string> texts;
  for (int k = 0; k < 300; ++k) texts.push_back(RandomText(rng, 1 + rng() % 80));
  const std::string before = PretokenizerMode();
  ASSERT_TRUE(SetPretokenizerMode("off").ok());
  EXPECT_EQ(PretokenizerMode(), "off");
  std::vector<std::vector<Token>> want;
  for (const std::string& t : texts) want.push_back(enc->EncodeOrdinary(t));
  for (const char* mode : {"scalar", "sse2", "avx2", "auto"}) {
    auto set = SetPretokenizerMode(mode);
    ASSERT_TRUE(set.ok()) << mode;
    for (size_t i = 0; i < texts.size(); ++i) {
      ASSERT_EQ(enc->EncodeOrdinary(texts[i]), want[i]) << *set << " text '" << texts[i] << "'";
      ASSERT_EQ(enc->CountOrdinary(texts[i]), want[i].size());
    }
  }
  EXPECT_FALSE(SetPretokenizerMode("neon").ok());
  ASSERT_TRUE(SetPretokenizerMode(before).ok());
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
