#include "lib/tokenizer/vocab.h"

#include <string>

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
  auto vocab = Vocab::Parse(SmallRankFile({a}), "t");
  ASSERT_TRUE(vocab.ok());
  EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(a.data()), a.size()), 256u);
  EXPECT_EQ((*vocab)->Find(reinterpret_cast<const uint8_t*>(b.data()), b.size()), kNoRank);
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
