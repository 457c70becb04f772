// tests/protocol/json_array_framing_test.cc: Framing::kJsonArray (Gemini's
// streamGenerateContent without alt=sse) under every chunking, on Kong's recorded captures
// and on hand-made edge cases.
#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/framing.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr std::string_view kKongCases =
    "kong/spec/fixtures/ai-proxy/unit/streaming-chunk-formats";

std::unique_ptr<FrameParser> Parser(FrameParserOptions options = {}) {
  absl::StatusOr<std::unique_ptr<FrameParser>> parser =
      NewFrameParser(Framing::kJsonArray, options);
  EXPECT_TRUE(parser.ok()) << parser.status();
  return parser.ok() ? std::move(*parser) : nullptr;
}

struct Parsed {
  std::vector<std::string> frames;
  absl::Status feed;    // first error of Feed, if any
  absl::Status finish;  // Finish's status (not called after a Feed error)
};

Parsed ParsePieces(const std::vector<std::string>& pieces) {
  Parsed out;
  std::unique_ptr<FrameParser> parser = Parser();
  if (parser == nullptr) return out;
  std::vector<StreamFrame> frames;
  for (const std::string& piece : pieces) {
    out.feed = parser->Feed(piece, &frames);
    if (!out.feed.ok()) break;
  }
  if (out.feed.ok()) out.finish = parser->Finish(&frames);
  for (StreamFrame& f : frames) {
    EXPECT_EQ(f.event, "");
    out.frames.push_back(std::move(f.data));
  }
  return out;
}

std::vector<std::string> Cut(std::string_view input, size_t min, size_t max, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<size_t> len(min, max);
  std::vector<std::string> out;
  for (size_t pos = 0; pos < input.size();) {
    size_t n = std::min(len(gen), input.size() - pos);
    out.emplace_back(input.substr(pos, n));
    pos += n;
  }
  return out;
}

// The splits every case is run under: the given reads, whole, byte by byte, and random
// pieces (0..7 and 1..64 bytes).
std::vector<std::vector<std::string>> Splits(const std::vector<std::string>& reads) {
  std::string whole;
  for (const std::string& r : reads) whole += r;
  std::vector<std::vector<std::string>> out = {reads, {whole}, Cut(whole, 1, 1, 0)};
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    out.push_back(Cut(whole, 0, 7, seed));
    out.push_back(Cut(whole, 1, 64, seed));
  }
  return out;
}

void ExpectFramesUnderAnySplit(const std::vector<std::string>& reads,
                               const std::vector<std::string>& expected) {
  for (const auto& pieces : Splits(reads)) {
    Parsed p = ParsePieces(pieces);
    ASSERT_TRUE(p.feed.ok()) << p.feed;
    ASSERT_TRUE(p.finish.ok()) << p.finish;
    ASSERT_EQ(p.frames, expected) << pieces.size() << " pieces";
  }
}

TEST(JsonArrayFramingTest, NameIsJsonArray) {
  EXPECT_EQ(FramingName(Framing::kJsonArray), "json_array");
  EXPECT_EQ(NewFrameParser(Framing::kJsonArray, {.max_frame_bytes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(JsonArrayFramingTest, ElementsAreFramesWithTheirExactText) {
  const std::string a = "{\n  \"a\": [1, {\"b\": \"}]\\\"\"}],\n  \"c\": \"\\\\\"\n}";
  const std::string b = "[\"x\", {}]";
  const std::string c = "{\"t\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 [{\"}";
  ExpectFramesUnderAnySplit({"[" + a + "\n,\r\n" + b + " , " + c + "\n]\n"}, {a, b, c});
}

TEST(JsonArrayFramingTest, EmptyArrayHasNoFrames) {
  ExpectFramesUnderAnySplit({" \n[ \n ] \n"}, {});
}

TEST(JsonArrayFramingTest, MalformedStructureIsInvalidArgument) {
  for (std::string_view bad : {
           "{\"a\":1}",        // no array
           "[1]",              // scalar element
           "[\"s\"]",          // scalar element
           "[{}{}]",           // missing comma
           "[{},]",            // element expected after the comma
           "[,{}]",            // comma first
           "[{\"a\":[}]",      // mismatched bracket
           "[{}] x",           // bytes after the array
           "[{}]]",            // a second closing bracket
       }) {
    for (const auto& pieces : Splits({std::string(bad)})) {
      Parsed p = ParsePieces(pieces);
      absl::Status s = p.feed.ok() ? p.finish : p.feed;
      EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad << ": " << s;
    }
  }
}

TEST(JsonArrayFramingTest, BodyEndingBeforeTheClosingBracketIsInvalidArgument) {
  for (std::string_view cut : {"", "[", "[{}", "[{},", "[{\"a\":\"}", "[{\"a\":\"\\"}) {
    Parsed p = ParsePieces({std::string(cut)});
    ASSERT_TRUE(p.feed.ok()) << cut << ": " << p.feed;
    EXPECT_EQ(p.finish.code(), absl::StatusCode::kInvalidArgument) << cut;
  }
  // The complete elements before the cut were delivered.
  EXPECT_THAT(ParsePieces({"[{\"a\":1},{\"b\""}).frames, ElementsAre("{\"a\":1}"));
}

TEST(JsonArrayFramingTest, ElementAboveTheLimitIsResourceExhaustedAndStaysFailed) {
  std::unique_ptr<FrameParser> parser = Parser({.max_frame_bytes = 8});
  ASSERT_NE(parser, nullptr);
  std::vector<StreamFrame> frames;
  ASSERT_TRUE(parser->Feed("[{\"a\":12}", &frames).ok());  // 8 bytes: at the limit
  ASSERT_TRUE(parser->Feed(",{\"a\":", &frames).ok());
  EXPECT_EQ(parser->Feed("123}", &frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser->Feed("]", &frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser->Finish(&frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(frames, ElementsAre(StreamFrame{"", "{\"a\":12}"}));
}

TEST(JsonArrayFramingTest, NestingBeyondTheJsonDepthLimitIsInvalidArgument) {
  std::string deep = "[" + std::string(kMaxJsonDepth + 1, '[');
  Parsed p = ParsePieces({deep});
  EXPECT_EQ(p.feed.code(), absl::StatusCode::kInvalidArgument) << p.feed;
}

// ---- Kong's captures of Gemini streams (unit/streaming-chunk-formats/partial-json-*) ----

std::vector<std::string> Reads(const std::filesystem::path& dir) {
  std::vector<std::string> reads;
  if (std::filesystem::exists(dir / "input.bin")) {
    reads.push_back(protocol_test::ReadFile(dir / "input.bin"));
  }
  for (int i = 1; std::filesystem::exists(dir / ("input-" + std::to_string(i) + ".bin")); ++i) {
    reads.push_back(protocol_test::ReadFile(dir / ("input-" + std::to_string(i) + ".bin")));
  }
  return reads;
}

std::vector<std::string> ExpectedData(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  const nlohmann::json expected =
      nlohmann::json::parse(protocol_test::ReadFile(dir / "expected-output.json"));
  for (const auto& e : expected) {
    out.push_back(e.at("data").get<std::string>());
  }
  return out;
}

// Text of every candidate part of every frame, concatenated.
std::string Text(const std::vector<std::string>& frames) {
  std::string text;
  for (const std::string& f : frames) {
    const nlohmann::json element = nlohmann::json::parse(f);
    for (const auto& c : element.at("candidates")) {
      for (const auto& part : c.at("content").at("parts")) text += part.value("text", "");
    }
  }
  return text;
}

class KongPartialJsonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
    if (!root) GTEST_SKIP() << "provider fixtures not found";
    dir_ = *root / kKongCases;
    if (!std::filesystem::is_directory(dir_)) GTEST_SKIP() << dir_ << " not found";
  }
  std::filesystem::path dir_;
};

// A capture of a whole stream's reads: "[", the elements, "]".
TEST_F(KongPartialJsonTest, SplitCapturesGiveTheRecordedText) {
  for (std::string name : {"partial-json-split", "partial-json-split-three-parts"}) {
    std::vector<std::string> reads = Reads(dir_ / name);
    ASSERT_GE(reads.size(), 2u) << name;
    std::string expected_text = protocol_test::ReadFile(dir_ / name / "expected-output.bin");
    for (const auto& pieces : Splits(reads)) {
      Parsed p = ParsePieces(pieces);
      ASSERT_TRUE(p.feed.ok()) << name << ": " << p.feed;
      // These captures stop after a few elements, before the closing ']'.
      EXPECT_EQ(p.finish.code(), absl::StatusCode::kInvalidArgument) << name;
      EXPECT_EQ(Text(p.frames), expected_text) << name;
      EXPECT_EQ(p.frames.size(), 4u) << name;
    }
  }
}

// The stream's first elements, cut before the closing ']'.
TEST_F(KongPartialJsonTest, BeginningCaptureGivesTheExpectedFrames) {
  std::vector<std::string> reads = Reads(dir_ / "partial-json-beginning");
  std::vector<std::string> expected = ExpectedData(dir_ / "partial-json-beginning");
  ASSERT_EQ(expected.size(), 4u);
  for (const auto& pieces : Splits(reads)) {
    Parsed p = ParsePieces(pieces);
    ASSERT_TRUE(p.feed.ok()) << p.feed;
    EXPECT_EQ(p.finish.code(), absl::StatusCode::kInvalidArgument);  // no closing ']'
    ASSERT_EQ(p.frames, expected);
  }
}

// The stream's last elements: the capture starts at a "," between elements. The parser
// needs the array's opening, so the test gives it one element before the capture.
TEST_F(KongPartialJsonTest, EndCaptureGivesTheExpectedFrames) {
  std::vector<std::string> reads = Reads(dir_ / "partial-json-end");
  ASSERT_EQ(reads.size(), 1u);
  ASSERT_EQ(reads[0].substr(0, 1), ",");
  std::vector<std::string> expected = ExpectedData(dir_ / "partial-json-end");
  // Kong's parser marks the array's end with a synthetic "[DONE]"; ours ends the stream.
  ASSERT_EQ(expected.size(), 3u);
  ASSERT_EQ(expected.back(), "[DONE]");
  expected.pop_back();
  expected.insert(expected.begin(), "{\"head\":0}");
  reads.insert(reads.begin(), "[{\"head\":0}");
  ExpectFramesUnderAnySplit(reads, expected);
}

}  // namespace
}  // namespace modeenvoy
