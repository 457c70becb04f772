// Tests of the private JSON reader and writer under the chat model.
#include "lib/protocol/json.h"

#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::protocol_internal {
namespace {

bool Valid(std::string_view text) {
  JsonType type;
  return IsValidJson(text, &type);
}

TEST(JsonReaderTest, AcceptsExactlyWhatARfc8259ParserAccepts) {
  const std::vector<std::string> docs = {
      "0", "-0", "1", "-1", "1.5", "1e5", "1E+5", "1e-5", "-0.0e0", "123456789012345678901234567890",
      "true", "false", "null", "\"\"", "\"a\"", "[]", "{}", "[[]]", "[{}]", " \t\r\n[ 1 , 2 ]\n ",
      "{\"a\":{\"b\":[1,{\"c\":null}]}}", "\"\\u0000\"", "\"\\uD834\\uDD1E\"", "\"\\/\\b\\f\\n\\r\\t\"",
      "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\"",
      // Invalid:
      "", " ", "01", "-", "+1", ".5", "1.", "1e", "1e+", "0x10", "Infinity", "NaN", "tru", "nul",
      "[1,]", "[,1]", "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\" 1}", "{1:2}", "{'a':1}", "[1 2]",
      "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"a\nb\"", "\"\t\"", "[1]]", "{}}", "[] []",
      "\"\x80\"", "\"\xC0\x80\"", "\"\xED\xA0\x80\"", "\"\xF5\x80\x80\x80\"", "\"\xE2\x82\"",
      "/* c */ 1", "1 // c", "[", "{", "{\"a\":", "\xEF\xBB\xBF{}", "1e400", "-1E+309",
      "1e-400", std::string(400, '9'), "[" + std::string(310, '9') + "e-20]",
  };
  for (const std::string& doc : docs) {
    EXPECT_EQ(Valid(doc), nlohmann::json::accept(doc)) << doc;
  }
}

TEST(JsonReaderTest, LoneSurrogateEscapesAreSyntacticallyValid) {
  // RFC 8259 allows them; nlohmann does not. Modeled strings decode them to U+FFFD.
  EXPECT_TRUE(Valid("\"\\ud800\""));
  EXPECT_TRUE(Valid("\"\\udc00x\""));
  JsonReader reader("\"a\\ud800b\\ud800\\u0041\"", 8);
  std::string s;
  ASSERT_TRUE(reader.ReadString(&s));
  EXPECT_EQ(s, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "A");
}

// A value read by another reader in the same pass: remaining() hands it over, Advance()
// moves past what that reader consumed, and the outer reader goes on at the same depth.
TEST(JsonReaderTest, AdvanceSkipsAValueAnotherReaderRead) {
  const std::string_view doc = R"({"a": {"x":[1,2]} , "b":true})";
  JsonReader outer(doc, 2);
  bool first = true, has = false, b = false;
  std::string_view key;
  std::string scratch;
  ASSERT_TRUE(outer.BeginObject());
  ASSERT_TRUE(outer.NextMember(&first, &key, &scratch, &has));
  JsonType type;
  ASSERT_TRUE(outer.Peek(&type));
  ASSERT_EQ(outer.remaining().substr(0, 5), R"({"x":)");
  JsonReader inner(outer.remaining(), 2);
  std::string captured;
  ASSERT_TRUE(inner.CaptureValue(&captured));
  EXPECT_EQ(captured, R"({"x":[1,2]})");
  outer.Advance(inner.offset());
  ASSERT_TRUE(outer.NextMember(&first, &key, &scratch, &has));
  EXPECT_EQ(key, "b");
  ASSERT_TRUE(outer.ReadBool(&b));
  EXPECT_TRUE(b);
  ASSERT_TRUE(outer.NextMember(&first, &key, &scratch, &has));
  EXPECT_FALSE(has);
  EXPECT_TRUE(outer.ExpectEnd());
}

TEST(JsonReaderTest, CaptureRemovesOnlyInsignificantWhitespace) {
  JsonReader reader(" { \"a b\" : [ 1 , \"x  y\\n\" , { } ] , \"c\":\ttrue }  ", 8);
  std::string raw;
  ASSERT_TRUE(reader.CaptureValue(&raw));
  EXPECT_EQ(raw, R"({"a b":[1,"x  y\n",{}],"c":true})");
  EXPECT_TRUE(reader.ExpectEnd());
}

TEST(JsonReaderTest, ReadStringViewPointsIntoInputWithoutEscapes) {
  const std::string input = R"(["plain","esc\"aped"])";
  JsonReader reader(input, 8);
  ASSERT_TRUE(reader.BeginArray());
  bool first = true, has = false;
  std::string scratch;
  std::string_view view;
  ASSERT_TRUE(reader.NextElement(&first, &has) && has);
  ASSERT_TRUE(reader.ReadString(&view, &scratch));
  EXPECT_EQ(view, "plain");
  EXPECT_TRUE(view.data() >= input.data() && view.data() < input.data() + input.size());
  ASSERT_TRUE(reader.NextElement(&first, &has) && has);
  ASSERT_TRUE(reader.ReadString(&view, &scratch));
  EXPECT_EQ(view, "esc\"aped");
  EXPECT_EQ(view.data(), scratch.data());
  ASSERT_TRUE(reader.NextElement(&first, &has));
  EXPECT_FALSE(has);
  EXPECT_TRUE(reader.ExpectEnd());
}

TEST(JsonReaderTest, LongStringsScanAcrossWordBoundaries) {
  // The scanner checks 8 bytes at a time; put every special byte at every offset.
  for (size_t offset = 0; offset < 24; ++offset) {
    for (std::string special : {"\\n", "\\\"", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"}) {
      const std::string body = std::string(offset, 'x') + special + std::string(17, 'y');
      const std::string doc = "\"" + body + "\"";
      JsonReader reader(doc, 8);
      std::string out;
      ASSERT_TRUE(reader.ReadString(&out)) << doc;
      EXPECT_EQ(out, nlohmann::json::parse(doc).get<std::string>());
      std::string written;
      AppendJsonString(&written, out);
      EXPECT_EQ(nlohmann::json::parse(written).get<std::string>(), out);
    }
    const std::string bad = "\"" + std::string(offset, 'x') + "\x01" + std::string(9, 'y') + "\"";
    EXPECT_FALSE(Valid(bad));
  }
}

TEST(JsonReaderTest, DepthLimit) {
  EXPECT_TRUE(Valid(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  EXPECT_FALSE(Valid(std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']')));
  const std::string deep(10, '[');
  JsonReader reader(deep, 3);
  EXPECT_FALSE(reader.SkipValue());
  EXPECT_EQ(reader.status().message(), "body: invalid JSON at byte 3: nesting deeper than 3 levels");
}

TEST(JsonNumberTest, Int64Conversion) {
  int64_t v = 0;
  EXPECT_TRUE(NumberToInt64("0", &v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(NumberToInt64("-9223372036854775808", &v));
  EXPECT_EQ(v, std::numeric_limits<int64_t>::min());
  EXPECT_TRUE(NumberToInt64("9223372036854775807", &v));
  EXPECT_EQ(v, std::numeric_limits<int64_t>::max());
  EXPECT_FALSE(NumberToInt64("9223372036854775808", &v));
  EXPECT_TRUE(NumberToInt64("2.0", &v));
  EXPECT_EQ(v, 2);
  EXPECT_FALSE(NumberToInt64("15e-1", &v));
  EXPECT_TRUE(NumberToInt64("1.5e1", &v));
  EXPECT_EQ(v, 15);
  EXPECT_FALSE(NumberToInt64("1e19", &v));
  EXPECT_FALSE(NumberToInt64("0.5", &v));
}

TEST(JsonNumberTest, DoubleConversion) {
  double d = 0;
  EXPECT_TRUE(NumberToDouble("0.1", &d));
  EXPECT_EQ(d, 0.1);
  EXPECT_TRUE(NumberToDouble("-2.5E+3", &d));
  EXPECT_EQ(d, -2500);
  EXPECT_TRUE(NumberToDouble("1e-400", &d));  // underflow is a tiny number, not an error
  EXPECT_EQ(d, 0);
  EXPECT_FALSE(NumberToDouble("1e400", &d));
}

TEST(JsonWriterTest, DoublesUseTheShortestRoundTrippingForm) {
  const std::vector<std::pair<double, std::string>> cases = {
      {0.1, "0.1"}, {1.0, "1"}, {-0.0, "-0"}, {1e21, "1e+21"}, {0.7, "0.7"},
      {std::numeric_limits<double>::infinity(), "null"}};
  for (const auto& [value, text] : cases) {
    std::string out;
    AppendJsonDouble(&out, value);
    EXPECT_EQ(out, text);
  }
}

TEST(JsonWriterTest, EscapesControlCharactersAndReplacesInvalidUtf8) {
  static constexpr char kInput[] = "a\0b\x1f\"\\\x7f\xC3\xA9\xFF\xE2\x82";
  std::string out;
  AppendJsonString(&out, std::string_view(kInput, sizeof(kInput) - 1));
  EXPECT_EQ(out, "\"a\\u0000b\\u001f\\\"\\\\\x7f\xC3\xA9\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_TRUE(Valid(out));
}

TEST(JsonWriterTest, ObjectWriterSeparatesMembers) {
  std::string out;
  JsonObjectWriter w(&out);
  w.Key("a");
  AppendJsonInt(&out, -7);
  w.Key("b\"");
  out += "[]";
  w.End();
  EXPECT_EQ(out, R"({"a":-7,"b\"":[]})");
}

TEST(Utf8Test, ValidatesStrictly) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii that is longer than eight bytes"));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"));
  for (std::string_view bad : {"\x80", "\xC1\xBF", "\xC2", "\xE0\x9F\xBF", "\xED\xA0\x80",
                               "\xED\xBF\xBF", "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80", "\xFE"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << testing::PrintToString(std::string(bad));
    EXPECT_FALSE(IsValidUtf8(std::string("12345678") + std::string(bad)));
  }
}

// Names "k0", "k1", ...: short and distinct, like the hostile bodies of issue 8.
std::string Name(int i) { return "k" + std::to_string(i); }

TEST(MemberNameSetTest, RefusesARepeatOnlyWhileScanningAndAfterHashing) {
  MemberNameSet names;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(names.Insert(Name(i))) << i;
  EXPECT_FALSE(names.Insert("k1"));
  EXPECT_TRUE(names.Insert("k"));  // a prefix is another name
  EXPECT_TRUE(names.Insert(""));
  EXPECT_FALSE(names.Insert(""));
  EXPECT_EQ(names.size(), 5u);
  // Across the switch from the inline scan to the hash set, every earlier name stays known.
  for (int i = 3; i < 40; ++i) EXPECT_TRUE(names.Insert(Name(i))) << i;
  EXPECT_EQ(names.size(), 42u);
  for (int i = 0; i < 40; ++i) EXPECT_FALSE(names.Insert(Name(i))) << i;
  EXPECT_FALSE(names.Insert("k"));
  EXPECT_FALSE(names.Insert(""));
  EXPECT_TRUE(names.Insert("k40"));
  EXPECT_EQ(names.size(), 43u);
}

TEST(MemberNameSetTest, ViewsPassedInMayDieAfterInsert) {
  MemberNameSet names;
  for (int i = 0; i < 20; ++i) {
    std::string name = Name(i) + std::string(30, 'x');  // beyond the small-string buffer
    EXPECT_TRUE(names.Insert(name));
    name.assign(name.size(), '?');
  }
  EXPECT_FALSE(names.Insert(Name(0) + std::string(30, 'x')));
  EXPECT_FALSE(names.Insert(Name(19) + std::string(30, 'x')));
}

TEST(MemberNameSetTest, AgreesWithStdSetOnRandomNames) {
  // Short names from a 3-letter alphabet, so repeats are frequent on both sides of the
  // switch to hashing; std::set is the reference.
  std::mt19937 rng(8);
  for (int round = 0; round < 50; ++round) {
    MemberNameSet names;
    std::set<std::string> reference;
    const int n = std::uniform_int_distribution<int>(0, 400)(rng);
    for (int i = 0; i < n; ++i) {
      std::string name(std::uniform_int_distribution<size_t>(0, 5)(rng), 'a');
      for (char& c : name) c = static_cast<char>('a' + rng() % 3);
      ASSERT_EQ(names.Insert(name), reference.insert(name).second) << round << " " << name;
      ASSERT_EQ(names.size(), reference.size());
    }
  }
}

TEST(MemberNameSetTest, ComparisonsPerNameStayBoundedAt100kNames) {
  // A scan of every earlier name, as before issue 8, makes n(n-1)/2 = 5e9 comparisons here.
  constexpr int kNames = 100000;
  MemberNameSet names;
  for (int i = 0; i < kNames; ++i) ASSERT_TRUE(names.Insert(Name(i))) << i;
  const uint64_t after_inserts = names.comparisons();
  // The inline scan costs at most kScanLimit^2 / 2; each hashed insert compares only names
  // whose hashes collide, about 1 in 128 per probed slot.
  EXPECT_LE(after_inserts, uint64_t{2} * kNames);
  // A repeat of the last name, and of the first, is found with a handful of comparisons.
  EXPECT_FALSE(names.Insert(Name(kNames - 1)));
  EXPECT_FALSE(names.Insert(Name(0)));
  EXPECT_LE(names.comparisons() - after_inserts, 8u);
  EXPECT_GE(names.comparisons() - after_inserts, 2u);  // each repeat was compared, not guessed
  EXPECT_EQ(names.size(), static_cast<size_t>(kNames));
}

// {"model":"m","messages":[...],"k0":0,...,"k<n-1>":0<tail>}
std::string RequestWithUnknownMembers(int n, std::string_view tail) {
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}])";
  for (int i = 0; i < n; ++i) body += ",\"" + Name(i) + "\":0";
  body += tail;
  body += "}";
  return body;
}

TEST(ChatUnknownMembersTest, HundredThousandUnknownMembersAreKeptInOrder) {
  constexpr int kMembers = 100000;
  absl::StatusOr<ChatRequest> r = ParseChatRequest(RequestWithUnknownMembers(kMembers, ""));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->extra.size(), static_cast<size_t>(kMembers));
  EXPECT_EQ(r->extra.front(), (std::pair<std::string, std::string>("k0", "0")));
  EXPECT_EQ(r->extra[54321].first, "k54321");
  EXPECT_EQ(r->extra.back().first, "k99999");
  EXPECT_TRUE(ValidateChatRequest(*r).ok());
}

TEST(ChatUnknownMembersTest, ARepeatAfterHundredThousandUnknownMembersIsFound) {
  for (const char* repeated : {"k0", "k77777", "k99999"}) {
    const std::string tail = std::string(",\"") + repeated + "\":1";
    absl::StatusOr<ChatRequest> r = ParseChatRequest(RequestWithUnknownMembers(100000, tail));
    ASSERT_FALSE(r.ok()) << repeated;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), ::testing::HasSubstr(std::string(repeated) +
                                                           ": duplicate key"));
  }
}

TEST(ChatUnknownMembersTest, ValidationFindsARepeatAmongHundredThousandExtras) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(RequestWithUnknownMembers(100000, ""));
  ASSERT_TRUE(r.ok()) << r.status();
  r->extra.emplace_back("k31337", "2");  // a caller edited the parsed request
  const absl::Status s = ValidateChatRequest(*r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), ::testing::HasSubstr("k31337: duplicate key"));
}

TEST(ChatUnknownMembersTest, UnknownMembersOfNestedObjectsAreCheckedPerObject) {
  // The same unknown name in two objects is not a repeat; twice in one content part or
  // message is, also past the point where the names move into a hash set.
  std::string part_members, message_members;
  for (int i = 0; i < 20; ++i) {
    part_members += ",\"" + Name(i) + "\":" + std::to_string(i);
    message_members += ",\"" + Name(i) + "\":" + std::to_string(i);
  }
  const std::string ok = R"({"model":"m","messages":[{"role":"user","content":[)"
                         R"({"type":"text","text":"a")" + part_members + R"(}])" +
                         message_members + "}]" + message_members + "}";
  absl::StatusOr<ChatRequest> r = ParseChatRequest(ok);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->extra.size(), 20u);
  EXPECT_EQ(r->messages[0].extra.size(), 20u);
  const std::string bad_part = R"({"model":"m","messages":[{"role":"user","content":[)"
                               R"({"type":"text","text":"a")" + part_members +
                               R"(,"k3":9}]}]})";
  EXPECT_THAT(ParseChatRequest(bad_part).status().message(),
              ::testing::HasSubstr("messages[0].content[0].k3: duplicate key"));
  const std::string bad_message = R"({"model":"m","messages":[{"role":"user","content":"x")" +
                                  message_members + R"(,"k19":9}]})";
  EXPECT_THAT(ParseChatRequest(bad_message).status().message(),
              ::testing::HasSubstr("messages[0].k19: duplicate key"));
}

}  // namespace
}  // namespace modeenvoy::protocol_internal
