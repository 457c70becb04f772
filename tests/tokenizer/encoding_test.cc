#include "modeenvoy/tokenizer/encoding.h"

#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(EncodingTest, KnownIdsForEveryEncoding) {
  // Reference ids from tiktoken 0.14.
  struct Case {
    const char* encoding;
    const char* text;
    std::vector<Token> ids;
  };
  const Case cases[] = {
      {"cl100k_base", "hello world", {15339, 1917}},
      {"o200k_base", "hello world", {24912, 2375}},
      {"r50k_base", "hello world", {31373, 995}},
      {"p50k_base", "hello world", {31373, 995}},
      {"cl100k_base", "a\n  ", {64, 198, 256}},
  };
  for (const Case& c : cases) {
    MODEENVOY_LOAD_OR_SKIP(enc, c.encoding);
    EXPECT_EQ(enc->EncodeOrdinary(c.text), c.ids) << c.encoding << " " << c.text;
  }
}

TEST(EncodingTest, VocabularySizesMatchTiktoken) {
  MODEENVOY_LOAD_OR_SKIP(cl100k, "cl100k_base");
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  MODEENVOY_LOAD_OR_SKIP(p50k, "p50k_base");
  MODEENVOY_LOAD_OR_SKIP(r50k, "r50k_base");
  EXPECT_EQ(cl100k->n_vocab(), 100277u);
  EXPECT_EQ(o200k->n_vocab(), 200019u);
  EXPECT_EQ(p50k->n_vocab(), 50281u);
  EXPECT_EQ(r50k->n_vocab(), 50257u);
}

TEST(EncodingTest, DisallowedSpecialTokenIsAnErrorNamingIt) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  auto r = enc->Encode("hi <|endoftext|> there");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("'<|endoftext|>' at byte 3"));
  EXPECT_FALSE(enc->Count("<|fim_prefix|>").ok());
  // Allowing one token leaves the others disallowed ("all" minus allowed).
  auto partial = enc->Encode("<|endoftext|><|fim_prefix|>", {"<|endoftext|>"});
  ASSERT_FALSE(partial.ok());
  EXPECT_THAT(partial.status().message(), HasSubstr("<|fim_prefix|>"));
}

TEST(EncodingTest, AllowedSpecialTokensBecomeTheirIds) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  auto r = enc->Encode("hi <|endoftext|> there", SpecialTokenSet::All());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<Token>{6151, 220, 100257, 1070}));
  // The text before a special token is its own haystack: "hi " ends with a lone space.
  EXPECT_EQ(*enc->Count("hi <|endoftext|> there", SpecialTokenSet::All()), r->size());
  auto only = enc->Encode("<|fim_prefix|>x<|endoftext|>", {"<|fim_prefix|>"}, SpecialTokenSet());
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(only->front(), 100258u);
  EXPECT_EQ(only->size(), 1u + enc->EncodeOrdinary("x<|endoftext|>").size());
}

TEST(EncodingTest, EmptyDisallowedEncodesSpecialTextAsOrdinaryText) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  auto r = enc->Encode("<|endoftext|>", SpecialTokenSet(), SpecialTokenSet());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, enc->EncodeOrdinary("<|endoftext|>"));
  EXPECT_GT(r->size(), 1u);
  // Custom disallowed strings are checked too, as tiktoken's regex does.
  EXPECT_FALSE(enc->Encode("forbidden word", {}, SpecialTokenSet({"word"})).ok());
}

TEST(EncodingTest, CountEqualsEncodedLength) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  std::mt19937 rng(7);
  const std::vector<std::string> pool = {"a", "Hello", " ", "\n", "漢字", "'s", "😀", "123456",
                                         "\u0301", "Ω", "\t", "<|endoftext|>", "ÀB", "\xff"};
  for (int i = 0; i < 500; ++i) {
    std::string text;
    for (int k = 0; k < 30; ++k) text += pool[rng() % pool.size()];
    EXPECT_EQ(enc->CountOrdinary(text), enc->EncodeOrdinary(text).size());
    EXPECT_EQ(*enc->Count(text, SpecialTokenSet::All()),
              enc->Encode(text, SpecialTokenSet::All())->size());
  }
}

TEST(EncodingTest, DecodeBytesRoundTripsArbitraryBytes) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    std::string bytes(rng() % 200, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    const std::vector<Token> ids = enc->EncodeOrdinary(bytes);
    auto back = enc->DecodeBytes(ids);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, bytes);
  }
}

TEST(EncodingTest, DecodeReplacesInvalidUtf8LikePython) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  // Byte tokens: the rank of a single byte b is its own token in cl100k_base.
  auto ids_of = [&](std::string_view bytes) { return enc->EncodeOrdinary(bytes); };
  // Python: b"a\xe2\x82b\xf0\x80\xed\xa0\x80\xff".decode("utf-8", "replace")
  //   == 'a\ufffdb\ufffd\ufffd\ufffd\ufffd\ufffd\ufffd'
  const std::string in = "a\xe2\x82" "b\xf0\x80\xed\xa0\x80\xff";
  auto text = enc->Decode(ids_of(in));
  ASSERT_TRUE(text.ok());
  const std::string r = "\xef\xbf\xbd";
  EXPECT_EQ(*text, "a" + r + "b" + r + r + r + r + r + r);
  EXPECT_EQ(*enc->DecodeBytes(ids_of(in)), in);
  EXPECT_EQ(*enc->Decode(ids_of("h\xc3\xa9llo \xf0\x9f\x98\x80")), "h\xc3\xa9llo \xf0\x9f\x98\x80");
}

TEST(EncodingTest, UnknownTokenIsAnError) {
  MODEENVOY_LOAD_OR_SKIP(enc, "p50k_base");
  EXPECT_EQ(enc->DecodeBytes({15339, 9999999}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(enc->DecodeBytes({50256}).value(), "<|endoftext|>");
  EXPECT_FALSE(enc->DecodeSingleTokenBytes(50300).ok());
  EXPECT_EQ(*enc->EncodeSingleToken("<|endoftext|>"), 50256u);
  EXPECT_EQ(*enc->EncodeSingleToken("hello"), 31373u);
  EXPECT_EQ(enc->EncodeSingleToken("hello world").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(enc->IsSpecialToken(50256));
  EXPECT_FALSE(enc->IsSpecialToken(31373));
}

TEST(EncodingTest, InvalidUtf8IsTokenizedBytewiseAsNonLetters) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  // A stray continuation byte splits "ab\x80cd" like a punctuation character would.
  const std::vector<Token> ids = enc->EncodeOrdinary("ab\x80" "cd");
  EXPECT_EQ(*enc->DecodeBytes(ids), "ab\x80" "cd");
  EXPECT_EQ(ids.front(), enc->EncodeOrdinary("ab").front());
}

TEST(EncodingTest, SharedEncodingIsThreadSafe) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  std::vector<std::string> texts;
  std::mt19937 rng(3);
  for (int i = 0; i < 64; ++i) {
    std::string t;
    for (int k = 0; k < 200; ++k) t += "word漢 12'S\n😀"[rng() % 12];
    texts.push_back(t + std::string(300 + i, 'q'));  // also exercises the long-piece path
  }
  std::vector<std::vector<Token>> expected;
  for (const auto& t : texts) expected.push_back(enc->EncodeOrdinary(t));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int w = 0; w < 8; ++w) {
    threads.emplace_back([&, w] {
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (enc->EncodeOrdinary(texts[i]) != expected[i]) ++mismatches[w];
          if (enc->CountOrdinary(texts[i]) != expected[i].size()) ++mismatches[w];
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(EncodingTest, BatchMatchesSequentialAndReportsTheFailingText) {
  MODEENVOY_LOAD_OR_SKIP(enc, "cl100k_base");
  std::vector<std::string> owned;
  for (int i = 0; i < 100; ++i) owned.push_back("text number " + std::to_string(i) + " 漢字");
  std::vector<std::string_view> texts(owned.begin(), owned.end());
  auto batch = enc->EncodeBatch(texts, {}, SpecialTokenSet::All(), 4);
  ASSERT_TRUE(batch.ok());
  auto ordinary = enc->EncodeOrdinaryBatch(texts, 3);
  auto counts = enc->CountOrdinaryBatch(texts, 2);
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ((*batch)[i], enc->EncodeOrdinary(texts[i]));
    EXPECT_EQ(ordinary[i], (*batch)[i]);
    EXPECT_EQ(counts[i], (*batch)[i].size());
  }
  owned[42] += "<|endoftext|>";
  texts[42] = owned[42];
  auto failed = enc->EncodeBatch(texts, {}, SpecialTokenSet::All(), 4);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(), HasSubstr("texts[42]"));
  EXPECT_TRUE(enc->EncodeOrdinaryBatch({}, 4).empty());
}

TEST(EncodingTest, HarmonySpecialTokens) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_harmony");
  auto ids = enc->Encode("<|start|>user<|message|>hi<|end|><|reserved_201087|>",
                         SpecialTokenSet::All());
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids->front(), 200006u);
  EXPECT_EQ(ids->back(), 201087u);
  EXPECT_EQ(enc->n_vocab(), 201088u);
}

TEST(EncodingTest, RankFilesWhereAPartRanksAboveItsTokenStillEncodeLikeTiktoken) {
  // "yz" (257) ranks above "xyz" (256): tiktoken's loop merges y+z, then x+yz. The
  // backtracking encoder cannot serve this vocabulary; the merge loop takes over, on short
  // and long pieces alike.
  EncodingSpec spec;
  spec.name = "inverted";
  spec.pattern = SplitPattern::kCl100k;
  auto enc = Encoding::Create(spec, tokenizer_test::SmallRankFile({"xyz", "yz", "ab"}));
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_THAT((*enc)->EncodeOrdinary("axyzb"), ElementsAre('a', 256, 'b'));
  EXPECT_THAT((*enc)->EncodeOrdinary("yzxyz"), ElementsAre(257, 256));
  std::string long_piece;
  std::vector<Token> expected;
  for (int i = 0; i < 40; ++i) {
    long_piece += "abxyz";
    expected.push_back(258);
    expected.push_back(256);
  }
  EXPECT_EQ((*enc)->EncodeOrdinary(long_piece), expected);
  EXPECT_EQ((*enc)->CountOrdinary(long_piece), expected.size());
}

TEST(EncodingTest, MemoryUsageIsReported) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  EXPECT_GT(enc->MemoryUsage(), 4u << 20);
  EXPECT_LT(enc->MemoryUsage(), 64u << 20);
}

// Issue 13's bound: a loaded o200k_base takes at most 16 MiB (the piece cache is separate
// and has its own configured bound).
TEST(EncodingTest, O200kFitsInSixteenMebibytes) {
  MODEENVOY_LOAD_OR_SKIP(enc, "o200k_base");
  EXPECT_LE(enc->MemoryUsage(), size_t{16} << 20);
}

}  // namespace
}  // namespace modeenvoy
