// tests/core/json_scan_test.cc: the key scan of lib/core/json_scan.h, at every position
// relative to its 16-byte blocks, against positions counted byte by byte here.
#include "lib/core/json_scan.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace modeenvoy::core_internal {
namespace {

// Offsets just after each '"' (followed by one of `firsts`, when not empty), counted one
// byte at a time.
std::vector<size_t> Expected(const std::string& text, std::string_view firsts) {
  std::vector<size_t> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '"') continue;
    if (!firsts.empty() &&
        (i + 1 >= text.size() || firsts.find(text[i + 1]) == std::string_view::npos)) {
      continue;
    }
    if (i + 1 < text.size()) out.push_back(i + 1);  // a quote at the very end starts nothing
  }
  return out;
}
std::vector<size_t> Expected(const std::string& text, char first) {
  return Expected(text, first == '\0' ? std::string_view() : std::string_view(&first, 1));
}

// `firsts`: up to three bytes, given to the scanner as first, second and third.
std::vector<size_t> Scanned(const std::string& text, std::string_view firsts) {
  // A copy in its own allocation, so a read past the end shows under ASan.
  std::vector<char> bytes(text.begin(), text.end());
  const char* begin = bytes.data();
  const char* end = begin + bytes.size();
  std::vector<size_t> out;
  auto at = [&](size_t i) { return i < firsts.size() ? firsts[i] : '\0'; };
  QuoteScanner quotes(begin, end, at(0), at(1), at(2));
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
    out.push_back(static_cast<size_t>(p - begin));
  }
  return out;
}

std::vector<size_t> Scanned(const std::string& text, char first) {
  return Scanned(text, first == '\0' ? std::string_view() : std::string_view(&first, 1));
}

TEST(QuoteScannerTest, VisitsEveryQuoteAtEveryOffsetAndLength) {
  for (size_t len = 0; len <= 70; ++len) {
    for (size_t a = 0; a < len; ++a) {
      for (size_t b : {a, a + 1, a + 15, a + 16, a + 17, a + 31}) {
        std::string text(len, 'x');
        text[a] = '"';
        if (b < len) text[b] = '"';
        if (a + 1 < len) text[a + 1] = 'u';
        for (char first : {'\0', 'u', 'x'}) {
          EXPECT_EQ(Scanned(text, first), Expected(text, first))
              << "len " << len << " quotes at " << a << "," << b << " first " << first;
        }
      }
    }
  }
}

// Two or three following bytes: a quote followed by any of them is visited, at every
// position relative to the blocks (a quote's follower may sit in the next block).
TEST(QuoteScannerTest, VisitsQuotesFollowedByAnyOfTheSetBytes) {
  for (size_t len = 0; len <= 40; ++len) {
    for (size_t a = 0; a < len; ++a) {
      for (size_t b : {a + 1, a + 2, a + 15, a + 16, a + 17}) {
        std::string text(len, 'x');
        text[a] = '"';
        if (a + 1 < len) text[a + 1] = 'c';
        if (b < len) text[b] = '"';
        if (b + 1 < len) text[b + 1] = 's';
        for (std::string_view firsts : {"cs", "sc", "ces", "esc", "ex", "qe", "cse"}) {
          EXPECT_EQ(Scanned(text, firsts), Expected(text, firsts))
              << "len " << len << " quotes at " << a << "," << b << " firsts " << firsts;
        }
      }
    }
  }
  // A key scan's use: the keys starting with c, e or s (offsets counted by hand).
  const std::string text = R"({"choices":[],"service_tier":"x","error":1})";
  EXPECT_EQ(Scanned(text, "ces"), (std::vector<size_t>{2, 15, 34}));
  // Without a first byte, second and third do not narrow the scan: every quote is visited.
  const char* end = text.data() + text.size();
  QuoteScanner quotes(text.data(), end, '\0', 'c', 'e');
  size_t visited = 0;
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) ++visited;
  EXPECT_EQ(visited, 8u);
}

TEST(QuoteScannerTest, DenseQuotesAndSkipTo) {
  const std::string text(std::string(40, '"') + "\"usage\":{}");
  EXPECT_EQ(Scanned(text, '\0'), Expected(text, '\0'));
  EXPECT_EQ(Scanned(text, 'u'), (std::vector<size_t>{41}));
  // SkipTo: quotes before the new position are not visited.
  const char* begin = text.data();
  const char* end = begin + text.size();
  QuoteScanner quotes(begin, end);
  EXPECT_EQ(quotes.Next(), begin + 1);
  quotes.SkipTo(begin + 39);
  EXPECT_EQ(quotes.Next(), begin + 40);
  EXPECT_EQ(quotes.Next(), begin + 41);
  EXPECT_EQ(quotes.Next(), begin + 47);  // the quote after usage
  quotes.SkipTo(end);
  EXPECT_EQ(quotes.Next(), end);
}

TEST(MemberValueTest, FindsTheValueAfterTheKeyOnly) {
  auto value = [](const std::string& s, std::string_view name) -> std::string {
    const char* v = MemberValue(s.data(), s.data() + s.size(), name);
    return v == nullptr ? "<none>" : std::string(v, s.data() + s.size());
  };
  EXPECT_EQ(value("usage\":{}", "usage"), "{}");
  EXPECT_EQ(value("usage\" \t\r\n: \n{}", "usage"), "{}");
  EXPECT_EQ(value("usage\":", "usage"), "<none>");      // no value
  EXPECT_EQ(value("usage\"", "usage"), "<none>");
  EXPECT_EQ(value("usages\":{}", "usage"), "<none>");   // a longer key
  EXPECT_EQ(value("usage\",{}", "usage"), "<none>");    // a string value, not a key
  EXPECT_EQ(value("usag", "usage"), "<none>");
}

}  // namespace
}  // namespace modeenvoy::core_internal
