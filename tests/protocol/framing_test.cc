// tests/protocol/framing_test.cc: SSE and NDJSON frame parsers under every chunking.
#include "modeenvoy/protocol/framing.h"

#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::unique_ptr<FrameParser> Parser(Framing framing, FrameParserOptions options = {}) {
  absl::StatusOr<std::unique_ptr<FrameParser>> parser = NewFrameParser(framing, options);
  EXPECT_TRUE(parser.ok()) << parser.status();
  return parser.ok() ? std::move(*parser) : nullptr;
}

// Feeds `pieces` in order, then finishes; fails the test on any error.
std::vector<StreamFrame> ParsePieces(Framing framing, const std::vector<std::string>& pieces) {
  std::unique_ptr<FrameParser> parser = Parser(framing);
  std::vector<StreamFrame> frames;
  if (parser == nullptr) return frames;
  for (const std::string& piece : pieces) {
    absl::Status s = parser->Feed(piece, &frames);
    EXPECT_TRUE(s.ok()) << s;
  }
  absl::Status s = parser->Finish(&frames);
  EXPECT_TRUE(s.ok()) << s;
  return frames;
}

std::vector<std::string> Whole(std::string_view input) { return {std::string(input)}; }

std::vector<std::string> ByteByByte(std::string_view input) {
  std::vector<std::string> out;
  for (char c : input) out.emplace_back(1, c);
  return out;
}

// Random cut points (empty pieces included) from a seeded generator.
std::vector<std::string> RandomSplits(std::string_view input, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<size_t> len(0, 7);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t n = std::min(len(gen), input.size() - pos);
    out.emplace_back(input.substr(pos, n));
    pos += n;
  }
  return out;
}

// Every chunking of `input` yields `expected`.
void ExpectSameUnderAnyChunking(Framing framing, std::string_view input,
                                const std::vector<StreamFrame>& expected) {
  EXPECT_EQ(ParsePieces(framing, Whole(input)), expected) << "whole";
  EXPECT_EQ(ParsePieces(framing, ByteByByte(input)), expected) << "byte by byte";
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    EXPECT_EQ(ParsePieces(framing, RandomSplits(input, seed)), expected) << "seed " << seed;
  }
}

TEST(FrameParserTest, SseEventsAreTheSameUnderAnyChunking) {
  const std::string input =
      "data: {\"a\":1}\n\n"
      "event: ping\ndata: x\n\n"
      "data: line1\ndata: line2\n\n"
      ": a comment\n\n"
      "data: [DONE]\n\n";
  ExpectSameUnderAnyChunking(Framing::kSse, input,
                             {StreamFrame{"", "{\"a\":1}"}, StreamFrame{"ping", "x"},
                              StreamFrame{"", "line1\nline2"}, StreamFrame{"", "[DONE]"}});
}

TEST(FrameParserTest, SseAcceptsCrlfLineEnds) {
  ExpectSameUnderAnyChunking(Framing::kSse, "event: e\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n",
                             {StreamFrame{"e", "1"}, StreamFrame{"", "2"}});
}

TEST(FrameParserTest, NdjsonLinesAreTheSameUnderAnyChunking) {
  const std::string input = "{\"n\":1}\n{\"n\":2,\"s\":\"a b\"}\n{\"done\":true}\n";
  ExpectSameUnderAnyChunking(
      Framing::kNdjson, input,
      {StreamFrame{"", "{\"n\":1}"}, StreamFrame{"", "{\"n\":2,\"s\":\"a b\"}"},
       StreamFrame{"", "{\"done\":true}"}});
}

TEST(FrameParserTest, NdjsonDropsCarriageReturnsAndSkipsBlankLines) {
  ExpectSameUnderAnyChunking(Framing::kNdjson, "\n{\"n\":1}\r\n\r\n  \t\n{\"n\":2}\n\n",
                             {StreamFrame{"", "{\"n\":1}"}, StreamFrame{"", "{\"n\":2}"}});
}

TEST(FrameParserTest, NdjsonFinishEmitsAnUnterminatedLastLine) {
  ExpectSameUnderAnyChunking(Framing::kNdjson, "{\"n\":1}\n{\"n\":2}",
                             {StreamFrame{"", "{\"n\":1}"}, StreamFrame{"", "{\"n\":2}"}});
}

TEST(FrameParserTest, NdjsonLineAboveTheLimitFailsAndStaysFailed) {
  std::unique_ptr<FrameParser> parser = Parser(Framing::kNdjson, {.max_frame_bytes = 8});
  ASSERT_NE(parser, nullptr);
  std::vector<StreamFrame> frames;
  ASSERT_TRUE(parser->Feed("12345678\n", &frames).ok());  // exactly at the limit
  EXPECT_THAT(frames, ElementsAre(StreamFrame{"", "12345678"}));
  frames.clear();
  ASSERT_TRUE(parser->Feed("12345", &frames).ok());
  EXPECT_EQ(parser->Feed("6789", &frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser->Feed("\n{}\n", &frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser->Finish(&frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(frames, IsEmpty());
}

TEST(FrameParserTest, SseEventAboveTheLimitFails) {
  std::unique_ptr<FrameParser> parser = Parser(Framing::kSse, {.max_frame_bytes = 16});
  ASSERT_NE(parser, nullptr);
  std::vector<StreamFrame> frames;
  absl::Status s = parser->Feed("data: 0123456789\ndata: 0123456789\n\n", &frames);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  // It stays failed: later small events are not parsed.
  EXPECT_EQ(parser->Feed("data: x\n\n", &frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(parser->Finish(&frames).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(frames, IsEmpty());
}

TEST(FrameParserTest, SseEventWithinTheLimitPasses) {
  std::unique_ptr<FrameParser> parser = Parser(Framing::kSse, {.max_frame_bytes = 64});
  ASSERT_NE(parser, nullptr);
  std::vector<StreamFrame> frames;
  ASSERT_TRUE(parser->Feed("data: 0123456789\n\n", &frames).ok());
  EXPECT_THAT(frames, ElementsAre(StreamFrame{"", "0123456789"}));
}

TEST(FrameParserTest, AppendsWithoutClearingTheOutput) {
  std::unique_ptr<FrameParser> parser = Parser(Framing::kNdjson);
  ASSERT_NE(parser, nullptr);
  std::vector<StreamFrame> frames = {StreamFrame{"old", "x"}};
  ASSERT_TRUE(parser->Feed("1\n", &frames).ok());
  EXPECT_THAT(frames, ElementsAre(StreamFrame{"old", "x"}, StreamFrame{"", "1"}));
}

TEST(FrameParserTest, JsonIsNotAStreamFraming) {
  EXPECT_EQ(NewFrameParser(Framing::kJson).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewFrameParser(Framing::kSse, {.max_frame_bytes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NewFrameParser(Framing::kNdjson, {.max_frame_bytes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FrameParserTest, FramingNames) {
  EXPECT_EQ(FramingName(Framing::kJson), "json");
  EXPECT_EQ(FramingName(Framing::kSse), "sse");
  EXPECT_EQ(FramingName(Framing::kNdjson), "ndjson");
}

}  // namespace
}  // namespace modeenvoy
