#include "lib/tokenizer/vocab.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy::tokenizer_internal {
namespace {

using ::testing::HasSubstr;
using tokenizer_test::SmallRankFile;

TEST(VocabTest, FindsEveryTokenByItsBytes) {
  auto vocab = Vocab::Parse(SmallRankFile({"ab", "abc", "0123456789abcdef", "xyz"}), "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  for (uint32_t r = 0; r <= (*vocab)->max_rank(); ++r) {
    std::string_view b = (*vocab)->Bytes(r);
    EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(b.data()), b.size()), r);
  }
  const std::string missing = "abcd";
  EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(missing.data()), missing.size()),
            kNoRank);
  EXPECT_EQ((*vocab)->PairRank('a', 'b'), 256u);
  EXPECT_EQ((*vocab)->PairRank('b', 'a'), kNoRank);
  EXPECT_EQ((*vocab)->size(), 260u);
}

TEST(VocabTest, LongKeysCompareAllBytes) {
  const std::string a = "0123456789abcdefXYZ", b = "0123456789abcdefXYW";
  // Same first and last 8 bytes and length (what the main table's slot holds), different
  // middle: the middle is compared from the pool.
  const std::string c = "01234567MIDDLE!!89abcdef", d = "01234567MIDDLE?!89abcdef";
  // 9 to 16 bytes: first and last 8 bytes overlap and cover the key.
  const std::string e = "abcdefghijkl", f = "abcdefghijkm", g = "abcdeXghijkl";
  auto vocab = Vocab::Parse(SmallRankFile({a, c, e}), "t");
  ASSERT_TRUE(vocab.ok());
  auto find = [&](const std::string& s) {
    return (*vocab)->Find(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(find(a), 256u);
  EXPECT_EQ(find(b), kNoRank);
  EXPECT_EQ(find(c), 257u);
  EXPECT_EQ(find(d), kNoRank);
  EXPECT_EQ(find(e), 258u);
  EXPECT_EQ(find(f), kNoRank);
  EXPECT_EQ(find(g), kNoRank);
}

// Keys of 5 to 8 bytes are stored whole, zero padded, with their length: keys that differ
// only by trailing zero bytes are different tokens, and the one that is not a token misses.
TEST(VocabTest, MidKeysDifferingOnlyByTrailingZerosAreDistinct) {
  const std::string five("abcde", 5), six("abcde\0", 6), eight("abcde\0\0\0", 8);
  const std::string seven("abcde\0\0", 7), other("abcdf\0", 6);
  auto vocab = Vocab::Parse(SmallRankFile({five, six, eight}), "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  auto find = [&](const std::string& s) {
    return (*vocab)->Find(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_EQ(find(five), 256u);
  EXPECT_EQ(find(six), 257u);
  EXPECT_EQ(find(eight), 258u);
  EXPECT_EQ(find(seven), kNoRank);
  EXPECT_EQ(find(other), kNoRank);
}

// Thousands of keys of every length class fill the tables past their first probes (and
// around the end of the slot arrays, whose sizes are not powers of two); every token is
// found by its bytes and keys one byte off are not.
TEST(VocabTest, ManyKeysOfEveryLengthAreFoundAndNeighboursMiss) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 3000; ++i) {
    const std::string digits = std::to_string(100000 + i);  // 6 distinct digits
    tokens.push_back(digits.substr(0, 3 + i % 12) + std::string(i % 12 > 3 ? i % 12 - 3 : 0, 'q'));
  }
  // Drop repeats (short prefixes recur) so each token has one rank: its position + 256.
  std::vector<std::string> unique;
  for (const std::string& t : tokens) {
    if (std::find(unique.begin(), unique.end(), t) == unique.end()) unique.push_back(t);
  }
  auto vocab = Vocab::Parse(SmallRankFile(unique), "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  for (size_t i = 0; i < unique.size(); ++i) {
    const std::string& t = unique[i];
    EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(t.data()), t.size()), 256 + i) << t;
    std::string off = t;
    off.back() = '!';  // no token contains '!'
    EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(off.data()), off.size()), kNoRank)
        << off;
  }
}

// The encoder's keyed lookups: a key built by one masked 8-byte load (the bytes after the
// piece are other text and must not count), then FindKeyed, which for 3-4 byte keys indexes by
// MakeKey's product instead of hashing again. Each token's rank is its position + 256, as
// SmallRankFile assigns; the bytes after a piece are 'z' (a token of its own) or '\0'.
TEST(VocabTest, KeyedLookupsOfPiecesInsideLongerTextFindTheSameRanks) {
  std::vector<std::string> tokens;
  for (int i = 0; i < 2000; ++i) {
    const std::string digits = std::to_string(100000 + i);
    tokens.push_back(digits.substr(0, 2 + i % 8) + std::string(i % 8 > 4 ? i % 8 - 4 : 0, 'q'));
  }
  tokens.push_back(std::string("abcde", 5));
  tokens.push_back(std::string("abcde\0", 6));
  std::vector<std::string> unique;
  for (const std::string& t : tokens) {
    if (std::find(unique.begin(), unique.end(), t) == unique.end()) unique.push_back(t);
  }
  auto vocab = Vocab::Parse(SmallRankFile(unique), "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  const Vocab& v = **vocab;
  // readable8: the one-load key where the encoder uses it (pieces of up to 8 bytes).
  auto keyed = [&](const std::string& text, size_t len, bool readable8) {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    const Vocab::Key key =
        readable8 && len <= 8 ? Vocab::MakeKeyReadable8(p, len) : Vocab::MakeKey(p, len);
    return v.FindKeyed(p, len, key);
  };
  for (size_t i = 0; i < unique.size(); ++i) {
    const std::string& t = unique[i];
    for (char after : {'z', '\0'}) {
      const std::string text = t + std::string(8, after);
      EXPECT_EQ(keyed(text, t.size(), /*readable8=*/true), 256 + i) << t;
      EXPECT_EQ(keyed(text, t.size(), /*readable8=*/false), 256 + i) << t;
      std::string off = text;
      off[t.size() - 1] = '!';  // no token ends in '!'
      EXPECT_EQ(keyed(off, t.size(), true), kNoRank) << off;
    }
  }
  // One and two bytes come from the direct arrays.
  const std::string text = "z!" + std::string(8, 'z');
  EXPECT_EQ(keyed(text, 1, true), v.ByteRank('z'));
  EXPECT_EQ(keyed(text, 2, true), kNoRank);
  // "abcde" followed by zero bytes is the five-byte token, not "abcde\0".
  const std::string five = std::string("abcde", 5) + std::string(8, '\0');
  const auto five_rank = static_cast<uint32_t>(
      std::find(unique.begin(), unique.end(), std::string("abcde", 5)) - unique.begin() + 256);
  EXPECT_EQ(keyed(five, 5, true), five_rank);
  EXPECT_EQ(keyed(five, 6, true), five_rank + 1);
  EXPECT_EQ(keyed(five, 7, true), kNoRank);
}

TEST(VocabTest, MalformedLineIsDataLossNamingTheLine) {
  std::string file = SmallRankFile({});
  file += "YWJj 256\n";
  file += "not base64! 257\n";
  auto vocab = Vocab::Parse(file, "bad.tiktoken");
  ASSERT_FALSE(vocab.ok());
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(vocab.status().message(), HasSubstr("bad.tiktoken: line 258"));
}

TEST(VocabTest, RejectsBadRanksDuplicatesAndMissingBytes) {
  EXPECT_THAT(Vocab::Parse(SmallRankFile({}) + "YWJj x\n", "t").status().message(),
              HasSubstr("line 257: rank is not a decimal number"));
  EXPECT_THAT(Vocab::Parse(SmallRankFile({}) + "YWJj 5\n", "t").status().message(),
              HasSubstr("rank 5 appears twice"));
  EXPECT_THAT(Vocab::Parse(SmallRankFile({"ab"}) + "YWI= 900\n", "t").status().message(),
              HasSubstr("duplicates the one of rank 256"));
  EXPECT_THAT(Vocab::Parse("YQ== 0\n", "t").status().message(),
              HasSubstr("no token for the single byte 0x00"));
  EXPECT_EQ(Vocab::Parse("", "t").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Vocab::Parse(SmallRankFile({}) + "YWJj 99999999\n", "t").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Vocab::Parse(SmallRankFile({}) + "YWJ 300\n", "t").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(VocabTest, AcceptsCrlfAndBlankLines) {
  std::string file = SmallRankFile({"ab"});
  std::string crlf;
  for (char c : file) {
    if (c == '\n') crlf += "\r\n";
    else crlf += c;
  }
  crlf += "\n\n";
  auto vocab = Vocab::Parse(crlf, "t");
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ((*vocab)->PairRank('a', 'b'), 256u);
}

TEST(VocabTest, RankGapsDecodeAsMissing) {
  std::string file = SmallRankFile({}) + "YWI= 300\n";
  auto vocab = Vocab::Parse(file, "t");
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ((*vocab)->max_rank(), 300u);
  EXPECT_TRUE((*vocab)->Bytes(280).empty());
  EXPECT_EQ((*vocab)->Bytes(300), "ab");
  EXPECT_TRUE((*vocab)->Bytes(5000).empty());
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
