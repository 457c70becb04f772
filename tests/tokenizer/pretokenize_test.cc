#include "lib/tokenizer/pretokenize.h"

#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/tokenizer/unicode.h"

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
    EXPECT_GT(q, p);
    if (q <= p) break;
    out.emplace_back(reinterpret_cast<const char*>(p), static_cast<size_t>(q - p));
    p = q;
  }
  return out;
}
Pieces Cl100k(std::string_view t) { return Split(t, NextCl100kPiece<true>); }
Pieces Llama3(std::string_view t) { return Split(t, NextCl100kPiece<false>); }
Pieces O200k(std::string_view t) { return Split(t, NextO200kPiece); }
Pieces R50k(std::string_view t) { return Split(t, NextR50kPiece); }

// Expected pieces below are what Python's `regex` module returns for tiktoken's pat_str.

TEST(PretokenizeTest, Cl100kMatchesRegex) {
  EXPECT_EQ(Cl100k("a\n  "), (Pieces{"a", "\n  "}));  // \s++$
  EXPECT_EQ(Cl100k("hello  world"), (Pieces{"hello", " ", " world"}));
  EXPECT_EQ(Cl100k("it's IT'S"), (Pieces{"it", "'s", " IT", "'S"}));
  EXPECT_EQ(Cl100k("x'\u017fa"), (Pieces{"x", "'\u017f", "a"}));  // long s folds to s
  EXPECT_EQ(Cl100k("\u0301AB1"), (Pieces{"\u0301AB", "1"}));
  EXPECT_EQ(Cl100k("1234567 x"), (Pieces{"123", "456", "7", " x"}));
  EXPECT_EQ(Cl100k("  \n\n  x"), (Pieces{"  \n\n", " ", " x"}));
  EXPECT_EQ(Cl100k("a/b//\n"), (Pieces{"a", "/b", "//\n"}));
  EXPECT_EQ(Cl100k("\u3000hi \u0085x"), (Pieces{"\u3000hi", " ", "\u0085x"}));
}

TEST(PretokenizeTest, Llama3DiffersOnlyInTrailingWhitespace) {
  EXPECT_EQ(Llama3("a\n  "), (Pieces{"a", "\n", "  "}));
  EXPECT_EQ(Llama3("hello  world"), Cl100k("hello  world"));
  EXPECT_EQ(Llama3("it's IT'S"), Cl100k("it's IT'S"));
}

TEST(PretokenizeTest, O200kMatchesRegex) {
  EXPECT_EQ(O200k("a\n  "), (Pieces{"a", "\n", "  "}));
  EXPECT_EQ(O200k("it's IT'S"), (Pieces{"it's", " IT'S"}));
  EXPECT_EQ(O200k("x'\u017fa"), (Pieces{"x'\u017f", "a"}));
  // A mark may be the optional prefix, and is in both case classes: backtracking leaves it
  // alone when the capitals after it have no lowercase letter.
  EXPECT_EQ(O200k("\u0301AB1"), (Pieces{"\u0301", "AB", "1"}));
  EXPECT_EQ(O200k("HelloWorld ABCdef"), (Pieces{"Hello", "World", " ABCdef"}));
  EXPECT_EQ(O200k("don't"), (Pieces{"don't"}));
  EXPECT_EQ(O200k("a/b//\n"), (Pieces{"a", "/b", "//\n"}));
  EXPECT_EQ(O200k("  \n\n  x"), (Pieces{"  \n\n", " ", " x"}));
}

TEST(PretokenizeTest, R50kMatchesRegex) {
  EXPECT_EQ(R50k("a\n  "), (Pieces{"a", "\n  "}));
  EXPECT_EQ(R50k("it's IT'S"), (Pieces{"it", "'s", " IT", "'", "S"}));
  EXPECT_EQ(R50k("x'\u017fa"), (Pieces{"x", "'", "\u017fa"}));
  EXPECT_EQ(R50k("1234567 x"), (Pieces{"1234567", " x"}));
  EXPECT_EQ(R50k("  \n\n  x"), (Pieces{"  \n\n ", " x"}));
  EXPECT_EQ(R50k("a/b//\n"), (Pieces{"a", "/", "b", "//", "\n"}));
  EXPECT_EQ(R50k("\u3000hi \u0085x"), (Pieces{"\u3000", "hi", " ", "\u0085", "x"}));
}

TEST(PretokenizeTest, InvalidUtf8BytesAreSingleNonLetterCharacters) {
  EXPECT_EQ(Cl100k("ab\x80" "cd"), (Pieces{"ab", "\x80" "cd"}));
  EXPECT_EQ(O200k("\xff\xfe"), (Pieces{"\xff\xfe"}));
  EXPECT_EQ(R50k("\xe6\xbc"), (Pieces{"\xe6\xbc"}));  // truncated sequence
  EXPECT_EQ(Cl100k("\xed\xa0\x80"), (Pieces{"\xed\xa0\x80"}));  // encoded surrogate
}

TEST(UnicodeTablesTest, AsciiFastPathAgreesWithTables) {
  for (uint32_t c = 0; c < 128; ++c) {
    EXPECT_EQ(kAsciiFlags.flags[c], CodePointFlags(c)) << c;
  }
}

TEST(UnicodeTablesTest, WhitespaceIsTheWhiteSpaceProperty) {
  for (uint32_t cp : {0x09u, 0x0au, 0x0bu, 0x0cu, 0x0du, 0x20u, 0x85u, 0xa0u, 0x1680u, 0x2000u,
                      0x200au, 0x2028u, 0x2029u, 0x202fu, 0x205fu, 0x3000u}) {
    EXPECT_TRUE(CodePointFlags(cp) & kFlagWs) << std::hex << cp;
  }
  for (uint32_t cp : {0x180eu, 0x200bu, 0xfeffu, 0x1cu, 0x1fu}) {
    EXPECT_FALSE(CodePointFlags(cp) & kFlagWs) << std::hex << cp;
  }
}

TEST(UnicodeTablesTest, TablesAreUnicode16) {
  EXPECT_STREQ(kUnicodeVersion, "16.0.0");
  EXPECT_EQ(CodePointFlags(0x1c89), kFlagL | kFlagUpper);            // new in 16.0 (Lu)
  EXPECT_EQ(CodePointFlags(0x11380), kFlagL | kFlagUpper | kFlagLower);  // new in 16.0 (Lo)
  EXPECT_EQ(CodePointFlags(0xa7ce), 0);                              // new in 17.0
  EXPECT_EQ(CodePointFlags(0x0295), kFlagL | kFlagLower);            // Ll until 17.0 (Lo)
  EXPECT_EQ(CodePointFlags(0x0301), kFlagM | kFlagUpper | kFlagLower);
  EXPECT_EQ(CodePointFlags(0x0661), kFlagN);
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
