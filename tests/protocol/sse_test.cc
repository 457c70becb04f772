#include "modeenvoy/protocol/sse.h"

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;

SseEvent Data(std::string data, std::string event = {}) {
  SseEvent e;
  e.data = std::move(data);
  e.event = std::move(event);
  return e;
}

// Feeds `input` in pieces of the given sizes (the rest in one final piece), then Finish().
std::vector<SseEvent> ParseInPieces(std::string_view input, const std::vector<size_t>& sizes,
                                    const SseParserOptions& options = {}) {
  SseParser parser(options);
  std::vector<SseEvent> events;
  size_t pos = 0;
  for (size_t n : sizes) {
    n = std::min(n, input.size() - pos);
    EXPECT_TRUE(parser.Feed(input.substr(pos, n), &events).ok());
    pos += n;
  }
  EXPECT_TRUE(parser.Feed(input.substr(pos), &events).ok());
  EXPECT_TRUE(parser.Finish(&events).ok());
  return events;
}

std::vector<SseEvent> ParseAll(std::string_view input) { return ParseInPieces(input, {}); }

std::vector<SseEvent> ParseByteByByte(std::string_view input) {
  return ParseInPieces(input, std::vector<size_t>(input.size(), 1));
}

// Every way of splitting `input` in two must give the same events as one piece.
void ExpectSplitInvariant(std::string_view input) {
  const std::vector<SseEvent> whole = ParseAll(input);
  for (size_t k = 0; k <= input.size(); ++k) {
    ASSERT_EQ(ParseInPieces(input, {k}), whole) << "split at " << k;
  }
  ASSERT_EQ(ParseByteByByte(input), whole);
}

TEST(SseParserTest, ParsesDataEvents) {
  EXPECT_THAT(ParseAll("data: a\n\ndata: b\n\n"), ElementsAre(Data("a"), Data("b")));
}

TEST(SseParserTest, JoinsMultiLineData) {
  EXPECT_THAT(ParseAll("data: a\ndata:b\ndata\ndata:  c\n\n"), ElementsAre(Data("a\nb\n\n c")));
}

TEST(SseParserTest, HandlesEveryLineEnding) {
  const std::vector<SseEvent> expected = {Data("x\ny", "e"), Data("z")};
  for (std::string_view input : {
           "event: e\ndata: x\ndata: y\n\ndata: z\n\n",
           "event: e\r\ndata: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n",
           "event: e\rdata: x\rdata: y\r\rdata: z\r\r",
           "event: e\r\ndata: x\rdata: y\n\r\ndata: z\n\r",
       }) {
    EXPECT_EQ(ParseAll(input), expected) << input;
    ExpectSplitInvariant(input);
  }
}

TEST(SseParserTest, CrLfSplitAcrossFeedsIsOneLineEnding) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("data: a\r", &events).ok());
  ASSERT_TRUE(parser.Feed("\n\r", &events).ok());
  EXPECT_EQ(events.size(), 1u);
  ASSERT_TRUE(parser.Feed("\ndata: b\r\n\r\n", &events).ok());
  EXPECT_THAT(events, ElementsAre(Data("a"), Data("b")));
}

TEST(SseParserTest, SkipsCommentsAndUnknownFields) {
  EXPECT_THAT(ParseAll(": keep-alive\n:\nfoo: bar\ndata: x\n: mid\n\n"), ElementsAre(Data("x")));
}

TEST(SseParserTest, FieldWithoutColonHasEmptyValue) {
  std::vector<SseEvent> events = ParseAll("event\ndata\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "");
  EXPECT_EQ(events[0].data, "");
}

TEST(SseParserTest, OnlyOneLeadingSpaceIsRemoved) {
  EXPECT_THAT(ParseAll("data:   x \n\n"), ElementsAre(Data("  x ")));
  EXPECT_THAT(ParseAll("data:x:y\n\n"), ElementsAre(Data("x:y")));
}

TEST(SseParserTest, BlankLineWithoutDataDispatchesNothing) {
  EXPECT_TRUE(ParseAll("\n\n\nevent: ping\n\nid: 1\n\n").empty());
  // ...and resets the event name for the next event.
  EXPECT_THAT(ParseAll("event: ping\n\ndata: x\n\n"), ElementsAre(Data("x")));
}

TEST(SseParserTest, EmptyDataLineDispatchesAnEmptyEvent) {
  EXPECT_THAT(ParseAll("data:\n\n"), ElementsAre(Data("")));
}

TEST(SseParserTest, IdAndRetry) {
  SseParser parser;
  std::vector<SseEvent> events;
  static constexpr char kInput[] =
      "id: 7\nretry: 1500\ndata: a\n\ndata: b\n\nid: x\0y\nretry: 1s\n"
      "retry: -1\ndata: c\n\nid\ndata: d\n\n";
  ASSERT_TRUE(parser.Feed(std::string_view(kInput, sizeof(kInput) - 1), &events).ok());
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].id, "7");
  EXPECT_EQ(events[0].retry, 1500);
  EXPECT_FALSE(events[1].id.has_value());  // not repeated in the event...
  EXPECT_FALSE(events[1].retry.has_value());
  EXPECT_FALSE(events[2].id.has_value());  // an id with U+0000 is ignored
  EXPECT_FALSE(events[2].retry.has_value());
  EXPECT_EQ(events[3].id, "");             // "id" alone clears the last event id
  EXPECT_EQ(parser.last_event_id(), "");
  EXPECT_EQ(parser.retry(), 1500);
}

TEST(SseParserTest, LastEventIdPersists) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("id: 42\ndata: a\n\ndata: b\n\n", &events).ok());
  EXPECT_EQ(parser.last_event_id(), "42");
}

TEST(SseParserTest, StripsByteOrderMarkAtStreamStartOnly) {
  const std::string input = "\xEF\xBB\xBF" "data: a\n\ndata: \xEF\xBB\xBF" "b\n\n";
  EXPECT_THAT(ParseAll(input), ElementsAre(Data("a"), Data("\xEF\xBB\xBF" "b")));
  ExpectSplitInvariant(input);
  // A BOM-like prefix that is not a BOM is content.
  EXPECT_THAT(ParseAll("\xEF\xBB" "data: a\n\n"), ElementsAre());
  EXPECT_THAT(ParseByteByByte("\xEF" "\ndata: a\n\n"), ElementsAre(Data("a")));
  // A stream that ends inside a BOM prefix.
  EXPECT_TRUE(ParseAll("\xEF\xBB").empty());
}

TEST(SseParserTest, FinishDispatchesAnUnterminatedEvent) {
  EXPECT_THAT(ParseAll("data: a\n\ndata: b"), ElementsAre(Data("a"), Data("b")));
  EXPECT_THAT(ParseAll("data: a\ndata: b\n"), ElementsAre(Data("a\nb")));
  EXPECT_THAT(ParseAll("event: e\n"), ElementsAre());
}

TEST(SseParserTest, FinishResetsForANewStream) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("data: a", &events).ok());
  ASSERT_TRUE(parser.Finish(&events).ok());
  ASSERT_TRUE(parser.Feed("\xEF\xBB\xBF" "data: b\n\n", &events).ok());
  EXPECT_THAT(events, ElementsAre(Data("a"), Data("b")));
}

TEST(SseParserTest, EventSizeLimit) {
  SseParserOptions options;
  options.max_event_bytes = 16;
  SseParser parser(options);
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("data: 0123456789\n\n", &events).ok());  // 10 bytes of data
  absl::Status s = parser.Feed("data: 0123456789\ndata: 0123456789\n\n", &events);
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(), "sse: event exceeds the limit of 16 bytes");
  EXPECT_EQ(parser.Feed("data: x\n\n", &events), s);  // stays failed
  EXPECT_EQ(parser.Finish(&events), s);
  EXPECT_EQ(events.size(), 1u);
}

TEST(SseParserTest, EventSizeLimitCountsAnUnterminatedLine) {
  SseParserOptions options;
  options.max_event_bytes = 8;
  SseParser parser(options);
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("data", &events).ok());
  ASSERT_TRUE(parser.Feed(": 12", &events).ok());
  EXPECT_EQ(parser.Feed("3456789", &events).code(), absl::StatusCode::kResourceExhausted);
  // A long comment counts too: the parser cannot know it is one until the line ends.
  SseParser comments(options);
  EXPECT_EQ(comments.Feed(": a very long comment\n", &events).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(SseParserTest, CountsBytes) {
  SseParser parser;
  std::vector<SseEvent> events;
  ASSERT_TRUE(parser.Feed("data: a\n", &events).ok());
  ASSERT_TRUE(parser.Feed("\n", &events).ok());
  EXPECT_EQ(parser.bytes_consumed(), 9u);
}

TEST(EncodeSseEventTest, EncodesDataAndEvent) {
  EXPECT_EQ(EncodeSseEvent(R"({"a":1})"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(EncodeSseEvent("x", "message_start"), "event: message_start\ndata: x\n\n");
  EXPECT_EQ(EncodeSseEvent(""), "data: \n\n");
  EXPECT_EQ(kSseDoneEvent, "data: [DONE]\n\n");
  EXPECT_EQ(EncodeSseEvent(kSseDoneData), kSseDoneEvent);
}

TEST(EncodeSseEventTest, SplitsLinesSoAnyPayloadSurvives) {
  EXPECT_EQ(EncodeSseEvent("a\nb\r\nc\rd\n"), "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
  for (std::string_view payload : {"", "a", "a\nb", "\n", "\n\n", " lead", "x\ny\n", ": not a comment"}) {
    EXPECT_THAT(ParseAll(EncodeSseEvent(payload, "e")), ElementsAre(Data(std::string(payload), "e")))
        << payload;
  }
}

TEST(EncodeSseEventTest, EncodesFullEvents) {
  SseEvent e = Data("line1\nline2", "update");
  e.id = "17";
  e.retry = 3000;
  const std::string wire = EncodeSseEvent(e);
  EXPECT_EQ(wire, "event: update\nid: 17\nretry: 3000\ndata: line1\ndata: line2\n\n");
  EXPECT_THAT(ParseAll(wire), ElementsAre(e));
}

TEST(SseParserTest, RandomChunkingMatchesWholeInput) {
  std::string input;
  const std::string_view endings[] = {"\n", "\r\n", "\r"};
  for (int i = 0; i < 200; ++i) {
    const std::string eol(endings[i % 3]);
    if (i % 4 == 0) input += "event: e" + std::to_string(i) + eol;
    input += ": comment" + eol;
    input += "data: {\"i\":" + std::to_string(i) + "}" + eol;
    if (i % 2 == 0) input += "data: more" + eol;
    input += eol;
  }
  const std::vector<SseEvent> whole = ParseAll(input);
  EXPECT_EQ(whole.size(), 200u);
  std::mt19937 rng(12345);
  for (int round = 0; round < 50; ++round) {
    std::vector<size_t> sizes;
    for (size_t total = 0; total < input.size();) {
      const size_t n = std::uniform_int_distribution<size_t>(0, 40)(rng);
      sizes.push_back(n);
      total += n;
    }
    ASSERT_EQ(ParseInPieces(input, sizes), whole) << "round " << round;
  }
}

// The recorded streams, re-framed as the provider sent them, fed at every split.
class SseFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = protocol_test::FixturesDir();
    if (!dir_) GTEST_SKIP() << "fixtures not found (set MODEENVOY_FIXTURES_DIR)";
  }
  std::optional<std::filesystem::path> dir_;
};

// `line_ending` frames each payload the way a server might ("\n", "\r\n" or "\r").
std::string Reframe(const std::vector<std::string>& payloads, std::string_view line_ending,
                    bool with_event_type) {
  std::string out;
  for (const std::string& p : payloads) {
    if (with_event_type) {
      const size_t t = p.find("\"type\":\"");
      if (t != std::string::npos) {
        const size_t start = t + 8;
        out += "event: " + p.substr(start, p.find('"', start) - start);
        out += line_ending;
      }
    }
    out += "data: " + p;
    out += line_ending;
    out += line_ending;
  }
  return out;
}

TEST_F(SseFixtureTest, OpenAiStreamsAtEverySplit) {
  const std::vector<std::string> files = {
      "vercel-ai/packages/openai/src/chat/__fixtures__/azure-model-router.1.chunks.txt",
      "vercel-ai/packages/mistral/src/__fixtures__/mistral-text.chunks.txt",
      "vercel-ai/packages/groq/src/__fixtures__/groq-tool-call.chunks.txt",
  };
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    const std::vector<std::string> payloads =
        protocol_test::ChunkLines(protocol_test::ReadFile(*dir_ / file));
    ASSERT_FALSE(payloads.empty());
    for (std::string_view eol : {"\n", "\r\n", "\r"}) {
      const std::string body = Reframe(payloads, eol, false) + std::string(kSseDoneEvent);
      const std::vector<SseEvent> whole = ParseAll(body);
      ASSERT_EQ(whole.size(), payloads.size() + 1);
      for (size_t i = 0; i < payloads.size(); ++i) {
        ASSERT_EQ(whole[i].data, payloads[i]);
        ASSERT_TRUE(ParseChatCompletionChunk(whole[i].data).ok());
      }
      EXPECT_EQ(whole.back().data, kSseDoneData);
      ExpectSplitInvariant(body);
    }
  }
}

TEST_F(SseFixtureTest, LargeStreamsByteByByteAndInRandomReads) {
  const std::vector<std::pair<std::string, bool>> files = {
      {"vercel-ai/packages/openai/src/chat/__fixtures__/openai-text.chunks.txt", false},
      {"vercel-ai/packages/anthropic/src/__fixtures__/anthropic-json-tool.1.chunks.txt", true},
      {"vercel-ai/packages/openai/src/responses/__fixtures__/openai-web-search-tool.1.chunks.txt", true},
  };
  std::mt19937 rng(7);
  for (const auto& [file, typed] : files) {
    const std::filesystem::path path = *dir_ / file;
    if (!std::filesystem::exists(path)) continue;
    SCOPED_TRACE(file);
    const std::vector<std::string> payloads =
        protocol_test::ChunkLines(protocol_test::ReadFile(path));
    const std::string body = Reframe(payloads, "\r\n", typed);
    const std::vector<SseEvent> whole = ParseAll(body);
    ASSERT_EQ(whole.size(), payloads.size());
    for (size_t i = 0; i < payloads.size(); ++i) ASSERT_EQ(whole[i].data, payloads[i]);
    if (typed) {
      EXPECT_FALSE(whole[0].event.empty());
    }
    EXPECT_EQ(ParseByteByByte(body), whole);
    for (int round = 0; round < 10; ++round) {
      std::vector<size_t> sizes;
      for (size_t total = 0; total < body.size();) {
        sizes.push_back(std::uniform_int_distribution<size_t>(1, 1500)(rng));
        total += sizes.back();
      }
      ASSERT_EQ(ParseInPieces(body, sizes), whole);
    }
  }
}

TEST_F(SseFixtureTest, RecordedSseFiles) {
  // A real text/event-stream body (OpenAI-compatible proxy in front of Anthropic).
  const std::filesystem::path sse =
      *dir_ / "vercel-ai/packages/openai-compatible/src/chat/__fixtures__/anthropic-fallback-tool-call.sse";
  if (std::filesystem::exists(sse)) {
    const std::string body = protocol_test::ReadFile(sse);
    const std::vector<SseEvent> events = ParseAll(body);
    ASSERT_FALSE(events.empty());
    for (const SseEvent& e : events) {
      if (e.data == kSseDoneData) continue;
      EXPECT_TRUE(ParseChatCompletionChunk(e.data).ok()) << e.data;
    }
    ExpectSplitInvariant(body);
  }
  // Kong's de-framing vectors: raw upstream bytes and the payloads a parser must yield.
  const std::filesystem::path kong =
      *dir_ / "kong/spec/fixtures/ai-proxy/unit/streaming-chunk-formats/text-event-stream";
  if (std::filesystem::exists(kong / "input.bin")) {
    const std::string body = protocol_test::ReadFile(kong / "input.bin");
    const std::string expected = protocol_test::ReadFile(kong / "expected-output.json");
    const nlohmann::json expected_events = nlohmann::json::parse(expected);
    // The body ends in "data: [DONE]" without a line ending: Kong's vector expects the
    // events before it, which is what Feed() gives; Finish() then adds the [DONE].
    SseParser parser;
    std::vector<SseEvent> events;
    ASSERT_TRUE(parser.Feed(body, &events).ok());
    ASSERT_EQ(events.size(), expected_events.size());
    ASSERT_TRUE(parser.Finish(&events).ok());
    ASSERT_EQ(events.size(), expected_events.size() + 1);
    EXPECT_EQ(events.back().data, kSseDoneData);
    events.pop_back();
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(events[i].data, expected_events[i]["data"].get<std::string>());
      if (events[i].data != kSseDoneData) {
        EXPECT_TRUE(ParseChatCompletionChunk(events[i].data).ok()) << events[i].data;
      }
    }
    ExpectSplitInvariant(body);
  }
}

}  // namespace
}  // namespace modeenvoy
