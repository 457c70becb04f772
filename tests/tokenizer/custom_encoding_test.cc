// Encodings built from mergeable ranks (Encoding::CreateFromRanks), custom pre-tokenization
// regexes through PCRE2 (SplitPattern::kRegex) and tiktoken's _encode_bytes (EncodeBytes).
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Every byte b has rank b; then "ab" 256, "cd" 257, "abcd" 258.
std::vector<std::pair<std::string, Token>> TinyRanks() {
  std::vector<std::pair<std::string, Token>> ranks;
  for (int b = 0; b < 256; ++b) ranks.emplace_back(std::string(1, static_cast<char>(b)), b);
  ranks.emplace_back("ab", 256);
  ranks.emplace_back("cd", 257);
  ranks.emplace_back("abcd", 258);
  return ranks;
}

EncodingSpec RegexSpec(std::string regex) {
  EncodingSpec spec;
  spec.name = "tiny";
  spec.pattern = SplitPattern::kRegex;
  spec.regex = std::move(regex);
  return spec;
}

TEST(CustomEncodingTest, BuiltinPatternStringsAreTiktokens) {
  // r50k_base's pat_str from tiktoken_ext/openai_public.py (tiktoken 0.14).
  EXPECT_EQ(SplitPatternRegex(SplitPattern::kR50k),
            R"('(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s)");
  for (SplitPattern p : {SplitPattern::kR50k, SplitPattern::kCl100k, SplitPattern::kO200k,
                         SplitPattern::kLlama3}) {
    EXPECT_EQ(BuiltinSplitPattern(SplitPatternRegex(p)), p);
  }
  EXPECT_EQ(BuiltinSplitPattern("\\w+"), SplitPattern::kRegex);
  EXPECT_THAT(SplitPatternRegex(SplitPattern::kRegex), IsEmpty());
}

TEST(CustomEncodingTest, RegexPiecesAreMergedAndTextBetweenMatchesIsDropped) {
  auto enc = Encoding::CreateFromRanks(RegexSpec("[a-z]+|[0-9]"), TinyRanks());
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->pattern(), SplitPattern::kRegex);
  EXPECT_EQ((*enc)->regex(), "[a-z]+|[0-9]");
  // Pieces "abcd", "abc", "7", "cdab": the spaces and '!' match nothing (tiktoken's find_iter).
  EXPECT_THAT((*enc)->EncodeOrdinary("abcd abc!7 cdab"),
              ElementsAre(258, 256, 'c', '7', 257, 256));
  EXPECT_EQ((*enc)->CountOrdinary("abcd abc!7 cdab"), 6u);
}

TEST(CustomEncodingTest, EmptyMatchesProduceNoPiece) {
  auto enc = Encoding::CreateFromRanks(RegexSpec("b*"), TinyRanks());
  ASSERT_TRUE(enc.ok()) << enc.status();
  // Matches: "" at 0, "b" at 1, "" at 2, "bb" at 3: two pieces.
  EXPECT_THAT((*enc)->EncodeOrdinary("abcbb"), ElementsAre('b', 'b', 'b'));
}

TEST(CustomEncodingTest, RegexSeesUnicodeProperties) {
  auto enc = Encoding::CreateFromRanks(RegexSpec("\\p{L}+"), TinyRanks());
  ASSERT_TRUE(enc.ok()) << enc.status();
  // "é" (C3 A9) is a letter, "1" and " " are not.
  EXPECT_THAT((*enc)->EncodeOrdinary("1 \xc3\xa9"), ElementsAre(0xc3, 0xa9));
}

TEST(CustomEncodingTest, SpecialTokensOnCustomRanks) {
  EncodingSpec spec = RegexSpec("[a-z]+");
  spec.special_tokens = {{"<|x|>", 1000}};
  auto enc = Encoding::CreateFromRanks(std::move(spec), TinyRanks());
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->n_vocab(), 1001u);
  auto ids = (*enc)->Encode("ab<|x|>cd", SpecialTokenSet::All());
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(256, 1000, 257));
  EXPECT_FALSE((*enc)->Encode("ab<|x|>").ok());
}

TEST(CustomEncodingTest, BadInputIsAnError) {
  auto bad_regex = Encoding::CreateFromRanks(RegexSpec("(ab"), TinyRanks());
  ASSERT_FALSE(bad_regex.ok());
  EXPECT_EQ(bad_regex.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_regex.status().message(), HasSubstr("pat_str: regex does not compile at offset 3"));

  auto ranks = TinyRanks();
  ranks.erase(ranks.begin() + 'q');
  auto missing_byte = Encoding::CreateFromRanks(RegexSpec("a"), std::move(ranks));
  ASSERT_FALSE(missing_byte.ok());
  EXPECT_EQ(missing_byte.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(missing_byte.status().message(), HasSubstr("no token for the single byte 0x71"));

  EncodingSpec spec = RegexSpec("a");
  spec.special_tokens = {{"<|x|>", 256}};
  auto clash = Encoding::CreateFromRanks(std::move(spec), TinyRanks());
  ASSERT_FALSE(clash.ok());
  EXPECT_EQ(clash.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(clash.status().message(), HasSubstr("'<|x|>' has id 256, which is a mergeable rank"));

  auto big_rank = TinyRanks();
  big_rank.emplace_back("zz", 1u << 24);
  auto too_big = Encoding::CreateFromRanks(RegexSpec("a"), std::move(big_rank));
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kDataLoss);
}

// The ranks of a loaded encoding, as tiktoken's _mergeable_ranks.
std::vector<std::pair<std::string, Token>> RanksOf(const Encoding& enc) {
  std::vector<std::pair<std::string, Token>> ranks;
  for (Token t = 0; t <= enc.max_token_value(); ++t) {
    if (enc.IsSpecialToken(t)) continue;
    auto bytes = enc.DecodeSingleTokenBytes(t);
    if (bytes.ok()) ranks.emplace_back(std::string(*bytes), t);
  }
  return ranks;
}

const char* const kSample[] = {
    "Hello, world! It's 2026; they've 12345 items.\n\n  indented\tcode()  \n",
    "Grüße aus Köln — 東京タワー, Привет мир! I'M HERE'S\r\n x   ",
    "def f(x):\n    return x**2  # trailing   ",
    "   ",
};

TEST(CustomEncodingTest, BuiltinPatStrTakesTheHandWrittenSplitter) {
  MODEENVOY_LOAD_OR_SKIP(base, "cl100k_base");
  EncodingSpec spec;
  spec.name = "cl100k_custom";
  spec.pattern = SplitPattern::kRegex;
  spec.regex = std::string(SplitPatternRegex(SplitPattern::kCl100k));
  spec.special_tokens = {{"<|im_start|>", 100264}};
  auto enc = Encoding::CreateFromRanks(std::move(spec), RanksOf(*base));
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->pattern(), SplitPattern::kCl100k);
  for (const char* text : kSample) EXPECT_EQ((*enc)->EncodeOrdinary(text), base->EncodeOrdinary(text));
  auto ids = (*enc)->Encode("<|im_start|>hi", SpecialTokenSet::All());
  ASSERT_TRUE(ids.ok());
  EXPECT_THAT(*ids, ElementsAre(100264, 6151));  // "hi" is 6151 in cl100k_base (tiktoken)
}

TEST(CustomEncodingTest, Pcre2RunOfABuiltinPatternAgreesWithTheHandWrittenSplitter) {
  // o200k_base's regex through PCRE2 is checked against tiktoken in
  // tests/python/test_tokenizer_custom.py (building a 200k-rank vocabulary again here cost
  // 20 s under ASan).
  for (const char* name : {"cl100k_base", "r50k_base"}) {
    MODEENVOY_LOAD_OR_SKIP(base, name);
    // The same regex in a group: not character-equal, so PCRE2 runs it.
    auto enc = Encoding::CreateFromRanks(
        RegexSpec("(?:" + std::string(SplitPatternRegex(base->pattern())) + ")"), RanksOf(*base));
    ASSERT_TRUE(enc.ok()) << enc.status();
    ASSERT_EQ((*enc)->pattern(), SplitPattern::kRegex);
    for (const char* text : kSample) {
      EXPECT_EQ((*enc)->EncodeOrdinary(text), base->EncodeOrdinary(text)) << name << ": " << text;
    }
  }
}

TEST(CustomEncodingTest, EncodeBytesMatchesTiktoken) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  // tiktoken 0.14's tests/test_encoding.py::test_encode_bytes.
  EXPECT_THAT(enc->EncodeBytes(" \xec\x8b\xa4\xed"), ElementsAre(62085));
  for (int i = 0; i < 10; ++i) {
    const std::string bytes(static_cast<size_t>(i), '\x80');
    auto decoded = enc->DecodeBytes(enc->EncodeBytes(bytes));
    ASSERT_TRUE(decoded.ok());
    EXPECT_EQ(*decoded, bytes);
  }
  EXPECT_EQ(enc->EncodeBytes("hello world"), enc->EncodeOrdinary("hello world"));
  // Whitespace tokens before the last piece are merged again with the tail (ids from
  // tiktoken 0.14's _encode_bytes).
  EXPECT_THAT(enc->EncodeBytes("a  \n\xe2\x82"), ElementsAre(64, 2355, 16275));
}

}  // namespace
}  // namespace modeenvoy
