// Both byte pair encoders (the backtracking one and the scan merge for short pieces) against
// tiktoken's merge loop, written out the plain way here.
#include "lib/tokenizer/backtrack.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/tokenizer/bpe.h"
#include "tests/tokenizer/reference_bpe.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy::tokenizer_internal {
namespace {

std::vector<uint32_t> Backtrack(const BacktrackEncoder& e, const std::string& s) {
  std::vector<uint32_t> out;
  TokenSink sink{&out};
  e.Encode(reinterpret_cast<const uint8_t*>(s.data()), s.size(), sink);
  return out;
}

std::vector<uint32_t> Scan(const Vocab& v, const std::string& s) {
  std::vector<uint32_t> out;
  TokenSink sink{&out};
  MergeSmall(v, reinterpret_cast<const uint8_t*>(s.data()), s.size(), sink);
  return out;
}

std::unique_ptr<Vocab> ParseFile(const std::string& name) {
  auto vocab = Vocab::ParseFile(tokenizer_test::TokenizerDir() + "/" + name + ".tiktoken");
  return vocab.ok() ? std::move(*vocab) : nullptr;
}

TEST(BacktrackTest, LowestRankMergesFirstAndTiesGoLeftmost) {
  // ranks: 256 "aa", 257 "ab", 258 "aab"
  auto vocab = Vocab::Parse(tokenizer_test::SmallRankFile({"aa", "ab", "aab"}), "t");
  ASSERT_TRUE(vocab.ok());
  auto enc = BacktrackEncoder::Build(**vocab);
  EXPECT_EQ(Backtrack(*enc, "aaa"), (std::vector<uint32_t>{256, 'a'}));
  EXPECT_EQ(Backtrack(*enc, "aaaa"), (std::vector<uint32_t>{256, 256}));
  // "aab": "aa"(256) beats "ab"(257), then "aa"+"b" = "aab"(258).
  EXPECT_EQ(Backtrack(*enc, "aab"), (std::vector<uint32_t>{258}));
  // "aaab": leftmost "aa" first, then "a"+"b" -> "ab"; "aab" never forms.
  EXPECT_EQ(Backtrack(*enc, "aaab"), (std::vector<uint32_t>{256, 257}));
  EXPECT_EQ(enc->Split(258), (std::pair<uint32_t, uint32_t>{256, 'b'}));
  for (const char* s : {"aaa", "aaaa", "aab", "aaab", "abababaaab", "baaabaab"}) {
    EXPECT_EQ(Backtrack(*enc, s), ReferenceMerge(**vocab, s)) << s;
    EXPECT_EQ(Scan(**vocab, s), ReferenceMerge(**vocab, s)) << s;
  }
}

TEST(BacktrackTest, LowerRankedPairAcrossTheBoundaryWins) {
  // "bc"(256) outranks "ab"(257): in "abc", b joins c, and "a"+"bc" is not a token.
  auto vocab = Vocab::Parse(tokenizer_test::SmallRankFile({"bc", "ab", "abc_"}), "t");
  ASSERT_TRUE(vocab.ok());
  auto enc = BacktrackEncoder::Build(**vocab);
  EXPECT_EQ(Backtrack(*enc, "abc"), (std::vector<uint32_t>{'a', 256}));
  EXPECT_EQ(Backtrack(*enc, "abcab"), (std::vector<uint32_t>{'a', 256, 257}));
  EXPECT_EQ(Backtrack(*enc, "abc_"), (std::vector<uint32_t>{'a', 256, '_'}));
}

TEST(BacktrackTest, UnreachableTokensAreNeverProducedByMerging) {
  // "abc" is a token, but no pair of tokens makes it ("ab" and "bc" are not tokens): BPE of
  // "abcd" stays at single bytes. (Only a whole piece "abc" is that token, by lookup.)
  auto vocab = Vocab::Parse(tokenizer_test::SmallRankFile({"abc", "cd"}), "t");
  ASSERT_TRUE(vocab.ok());
  auto enc = BacktrackEncoder::Build(**vocab);
  EXPECT_EQ(enc->unreachable_tokens(), 1u);
  EXPECT_EQ(Backtrack(*enc, "abcd"), (std::vector<uint32_t>{'a', 'b', 257}));
  EXPECT_EQ(Backtrack(*enc, "abcd"), ReferenceMerge(**vocab, "abcd"));
  EXPECT_EQ(Backtrack(*enc, "abcabc"), ReferenceMerge(**vocab, "abcabc"));
}

TEST(BacktrackTest, SingleBytesMayRankAboveTheTokensBuiltFromThem) {
  // The byte 'b' has rank 300, above "ab" (256) and "abc" (257): still a part of both.
  std::string file;
  for (int b = 0; b < 256; ++b) {
    if (b == 'b') continue;
    file += absl::StrCat(absl::Base64Escape(std::string(1, static_cast<char>(b))), " ", b, "\n");
  }
  file += absl::StrCat(absl::Base64Escape("ab"), " 256\n", absl::Base64Escape("abc"), " 257\n",
                       absl::Base64Escape("b"), " 300\n");
  auto vocab = Vocab::Parse(file, "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  auto enc = BacktrackEncoder::Build(**vocab);
  EXPECT_EQ(enc->unreachable_tokens(), 0u);
  EXPECT_EQ(enc->Split(256), (std::pair<uint32_t, uint32_t>{'a', 300}));
  for (const char* s : {"ab", "abc", "xabcab", "bab", "abcabc"}) {
    EXPECT_EQ(Backtrack(*enc, s), ReferenceMerge(**vocab, s)) << s;
  }
  EXPECT_EQ(Backtrack(*enc, "xabcab"), (std::vector<uint32_t>{'x', 257, 256}));
}

TEST(BacktrackTest, RefusesVocabulariesWhereAPartRanksAboveItsToken) {
  // tiktoken builds "xyz" (256) as x + "yz" (257): not from two lower-ranked parts.
  auto inverted = Vocab::Parse(tokenizer_test::SmallRankFile({"xyz", "yz"}), "t");
  ASSERT_TRUE(inverted.ok());
  EXPECT_FALSE(BacktrackEncoder::Build(**inverted)->usable());
  EXPECT_EQ(ReferenceMerge(**inverted, "xyz"), (std::vector<uint32_t>{256}));
  // A token no merge builds is no obstacle (only a whole piece is that token).
  auto unbuildable = Vocab::Parse(tokenizer_test::SmallRankFile({"abc", "cd"}), "t");
  ASSERT_TRUE(unbuildable.ok());
  EXPECT_TRUE(BacktrackEncoder::Build(**unbuildable)->usable());
}

TEST(BacktrackTest, RefusesRanksBeyondWhatItsTrieHolds) {
  // The trie packs ranks into 22 bits; a rank file may use ranks up to 2^24 - 1.
  for (const uint32_t top : {BacktrackEncoder::kMaxRank, BacktrackEncoder::kMaxRank + 1}) {
    std::string file = tokenizer_test::SmallRankFile({"ab"});
    file += absl::StrCat(absl::Base64Escape("abc"), " ", top, "\n");
    auto vocab = Vocab::Parse(file, "t");
    ASSERT_TRUE(vocab.ok()) << vocab.status();
    auto enc = BacktrackEncoder::Build(**vocab);
    EXPECT_EQ(enc->usable(), top == BacktrackEncoder::kMaxRank) << top;
    if (enc->usable()) {
      for (const char* s : {"abc", "abcab", "xabcabc"}) {
        EXPECT_EQ(Backtrack(*enc, s), ReferenceMerge(**vocab, s)) << s;
      }
      EXPECT_EQ(Backtrack(*enc, "abc"), (std::vector<uint32_t>{top}));
    }
  }
}

// Random pieces from atoms that make many near-ties and long merge chains, against the
// reference, for every published vocabulary.
void CheckRandomPieces(const std::string& name, uint32_t seed) {
  auto vocab = ParseFile(name);
  ASSERT_NE(vocab, nullptr);
  auto enc = BacktrackEncoder::Build(*vocab);
  EXPECT_EQ(enc->unreachable_tokens(), 0u) << name;
  EXPECT_TRUE(enc->usable()) << name;
  std::mt19937 rng(seed);
  const std::vector<std::string> atoms = {
      "a", "e", "th", "in", "er", "漢", "字", "😀", "ing", "\xff", "1", " ", "Q", "z", "é",
      "\xcc\x81", "ß", "п", "ри", "ве", "т", "ع", "ر", "ب", " the", "ation", "\xe2\x80", "\x80",
      "=", "  ", "\n", "ं", "क्", "ก", "า", "ี", "ア", "ー", "한", "국", "ο", "ρ", "ί"};
  int compared = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string s;
    const size_t len = 2 + rng() % (i % 50 == 0 ? 600 : 60);
    while (s.size() < len) s += atoms[rng() % atoms.size()];
    const std::vector<uint32_t> expected = ReferenceMerge(*vocab, s);
    ASSERT_EQ(Backtrack(*enc, s), expected) << name << ": " << s;
    if (s.size() <= kSmallPieceMax) {
      ASSERT_EQ(Scan(*vocab, s), expected) << name << ": " << s;
    }
    ++compared;
  }
  // Every token's own bytes encode to itself (a published vocabulary has no unreachable
  // token), and a token followed by a byte agrees with the reference.
  for (uint32_t r = 0; r <= vocab->max_rank(); r += 7) {
    const std::string_view b = vocab->Bytes(r);
    if (b.empty()) continue;
    const std::string s(b);
    ASSERT_EQ(Backtrack(*enc, s), (std::vector<uint32_t>{r})) << name << " rank " << r;
    const std::string t = s + atoms[r % atoms.size()];
    ASSERT_EQ(Backtrack(*enc, t), ReferenceMerge(*vocab, t)) << name << " rank " << r;
    ++compared;
  }
  std::printf("%s: %d pieces agree with the reference merge\n", name.c_str(), compared);
}

TEST(BacktrackTest, AgreesWithReferenceMergeOnCl100k) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  CheckRandomPieces("cl100k_base", 5);
}

TEST(BacktrackTest, AgreesWithReferenceMergeOnO200k) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  CheckRandomPieces("o200k_base", 6);
}

TEST(BacktrackTest, AgreesWithReferenceMergeOnR50kAndP50k) {
  MODEENVOY_LOAD_OR_SKIP(enc, "p50k_base");
  CheckRandomPieces("p50k_base", 7);
  CheckRandomPieces("r50k_base", 8);
}

TEST(BacktrackTest, LongPiecesTakeLinearWork) {
  // Counting work, not time: 10x more input must cost about 10x, not the 100x of tiktoken's
  // quadratic merge.
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  auto vocab = ParseFile("o200k_base");
  ASSERT_NE(vocab, nullptr);
  auto bpe = BacktrackEncoder::Build(*vocab);
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
  auto digits = [&](size_t len) {
    std::string s;
    for (size_t i = 0; i < len; ++i) s += static_cast<char>('0' + rng() % 10);
    return s;
  };
  const std::string small[] = {letters(10000), cjk(10000), std::string(10000, 'a'), digits(10000)};
  const std::string large[] = {letters(100000), cjk(100000), std::string(100000, 'a'),
                               digits(100000)};
  for (int k = 0; k < 4; ++k) {
    size_t small_steps = 0, large_steps = 0;
    std::vector<uint32_t> out;
    bpe->EncodeLong(reinterpret_cast<const uint8_t*>(small[k].data()), small[k].size(), &out,
                    &small_steps);
    bpe->EncodeLong(reinterpret_cast<const uint8_t*>(large[k].data()), large[k].size(), &out,
                    &large_steps);
    const double ratio = static_cast<double>(large_steps) / static_cast<double>(small_steps);
    EXPECT_LT(ratio, 12.0) << "input kind " << k << ": " << small_steps << " -> " << large_steps;
    EXPECT_GT(ratio, 8.0) << "input kind " << k << ": " << small_steps << " -> " << large_steps;
    // The first 2,000 bytes agree with the reference (which is quadratic: no more).
    const std::string head = small[k].substr(0, 2000);
    std::vector<uint32_t> head_out;
    bpe->EncodeLong(reinterpret_cast<const uint8_t*>(head.data()), head.size(), &head_out,
                    nullptr);
    EXPECT_EQ(head_out, ReferenceMerge(*vocab, head)) << "input kind " << k;
  }
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
