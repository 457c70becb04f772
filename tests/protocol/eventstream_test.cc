// tests/protocol/eventstream_test.cc: the AWS EventStream codec and frame parser
// (Framing::kEventStream) on Kong's recorded Bedrock ConverseStream bytes and on hand-built
// messages: every chunking gives the same frames, every CRC-covered bit is checked.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/protocol/eventstream.h"
#include "modeenvoy/protocol/framing.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using ::modeenvoy::protocol_internal::Crc32;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

struct Result {
  std::vector<StreamFrame> frames;
  absl::Status status;
};

// Feeds `pieces` in order (stopping at the first error), then finishes.
Result Parse(const std::vector<std::string>& pieces, size_t max_frame_bytes = 8 << 20) {
  Result r;
  absl::StatusOr<std::unique_ptr<FrameParser>> parser =
      NewFrameParser(Framing::kEventStream, {.max_frame_bytes = max_frame_bytes});
  if (!parser.ok()) {
    r.status = parser.status();
    return r;
  }
  for (const std::string& piece : pieces) {
    r.status = (*parser)->Feed(piece, &r.frames);
    if (!r.status.ok()) return r;
  }
  r.status = (*parser)->Finish(&r.frames);
  return r;
}

std::vector<std::string> ByteByByte(std::string_view input) {
  std::vector<std::string> out;
  for (char c : input) out.emplace_back(1, c);
  return out;
}

// Random cut points (empty pieces included) from a seeded generator; pieces up to 40 bytes
// so that cuts fall in preludes, headers, payloads and CRCs alike.
std::vector<std::string> RandomSplits(std::string_view input, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<size_t> len(0, 40);
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < input.size()) {
    size_t n = std::min(len(gen), input.size() - pos);
    out.emplace_back(input.substr(pos, n));
    pos += n;
  }
  return out;
}

std::string Join(const std::vector<std::string>& reads) {
  std::string all;
  for (const std::string& r : reads) all += r;
  return all;
}

// The same frames whole, as the recorded reads, byte by byte and under 50 random splits.
void ExpectSameUnderAnyChunking(const std::vector<std::string>& reads,
                                const std::vector<StreamFrame>& expected) {
  const std::string all = Join(reads);
  Result r = Parse({all});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.frames, expected) << "whole";
  r = Parse(reads);
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.frames, expected) << "as recorded";
  r = Parse(ByteByByte(all));
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.frames, expected) << "byte by byte";
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    r = Parse(RandomSplits(all, seed));
    ASSERT_TRUE(r.status.ok()) << r.status << " seed " << seed;
    EXPECT_EQ(r.frames, expected) << "seed " << seed;
  }
}

// Splits a stream into its messages by their declared total lengths (big-endian u32).
std::vector<std::string> SplitMessages(std::string_view all) {
  std::vector<std::string> out;
  while (all.size() >= 4) {
    const auto* u = reinterpret_cast<const unsigned char*>(all.data());
    const size_t total = (size_t{u[0]} << 24) | (size_t{u[1]} << 16) | (size_t{u[2]} << 8) | u[3];
    if (total < 4 || total > all.size()) break;
    out.emplace_back(all.substr(0, total));
    all.remove_prefix(total);
  }
  return out;
}

void PutU32(std::string* s, size_t at, uint32_t v) {
  (*s)[at] = static_cast<char>(v >> 24);
  (*s)[at + 1] = static_cast<char>(v >> 16);
  (*s)[at + 2] = static_cast<char>(v >> 8);
  (*s)[at + 3] = static_cast<char>(v);
}

// Recomputes both CRCs of a single message after an edit.
void Reseal(std::string* m) {
  PutU32(m, 8, Crc32(std::string_view(*m).substr(0, 8)));
  PutU32(m, m->size() - 4, Crc32(std::string_view(*m).substr(0, m->size() - 4)));
}

std::string Event(std::string_view type, std::string_view payload) {
  return EncodeEventStreamMessage({{":event-type", std::string(type)},
                                   {":content-type", "application/json"},
                                   {":message-type", "event"}},
                                  payload);
}

TEST(EventStreamTest, Crc32IsZlibs) {
  EXPECT_EQ(Crc32("123456789"), 0xCBF43926u);  // the CRC-32/ISO-HDLC check value
  EXPECT_EQ(Crc32(""), 0u);
  EXPECT_EQ(Crc32("6789", Crc32("12345")), 0xCBF43926u);
}

// The bit-at-a-time definition (reflected polynomial 0xEDB88320), independent of the
// table-driven code under test.
uint32_t BitwiseCrc32(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
  }
  return ~crc;
}

// Every length from 0 to 70 (whole 8-byte blocks plus every tail), at every alignment, and
// continued from every split point.
TEST(EventStreamTest, Crc32MatchesTheBitwiseDefinitionAtEveryLengthAndSplit) {
  std::string data;
  uint32_t x = 12345;
  for (int i = 0; i < 80; ++i) {
    x = x * 1103515245u + 12345u;
    data.push_back(static_cast<char>(x >> 24));
  }
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t len = 0; len + offset <= 70; ++len) {
      const std::string_view s = std::string_view(data).substr(offset, len);
      const uint32_t want = BitwiseCrc32(s);
      ASSERT_EQ(Crc32(s), want) << "offset " << offset << " length " << len;
      for (size_t cut = 0; cut <= len; cut += 3) {
        ASSERT_EQ(Crc32(s.substr(cut), Crc32(s.substr(0, cut))), want)
            << "offset " << offset << " length " << len << " cut " << cut;
      }
    }
  }
}

TEST(EventStreamTest, FramingHasAName) {
  EXPECT_EQ(FramingName(Framing::kEventStream), "eventstream");
}

TEST(EventStreamTest, KongAwsStreamMatchesItsExpectedOutput) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root) GTEST_SKIP() << "provider fixtures not found";
  const std::filesystem::path dir =
      *root / "kong/spec/fixtures/ai-proxy/unit/streaming-chunk-formats/aws";
  const std::string input = protocol_test::ReadFile(dir / "input.bin");
  const nlohmann::json expected =
      nlohmann::json::parse(protocol_test::ReadFile(dir / "expected-output.json"));
  ASSERT_FALSE(input.empty());
  ASSERT_EQ(expected.size(), 6u);

  std::vector<StreamFrame> want;
  std::vector<std::map<std::string, std::string>> want_headers;
  for (const nlohmann::json& item : expected) {
    const nlohmann::json frame = nlohmann::json::parse(item.at("data").get<std::string>());
    want_headers.push_back(frame.at("headers").get<std::map<std::string, std::string>>());
    want.push_back(
        StreamFrame{want_headers.back().at(":event-type"), frame.at("body").get<std::string>()});
  }
  ExpectSameUnderAnyChunking({input}, want);

  // Every header, through the single-message decoder.
  std::vector<std::string> messages = SplitMessages(input);
  ASSERT_EQ(messages.size(), want_headers.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    absl::StatusOr<EventStreamMessage> m = DecodeEventStreamMessage(messages[i]);
    ASSERT_TRUE(m.ok()) << m.status();
    std::map<std::string, std::string> got;
    for (const EventStreamHeader& h : m->headers) {
      EXPECT_EQ(h.type, EventStreamHeaderType::kString);
      got[h.name] = h.value;
    }
    EXPECT_EQ(got, want_headers[i]) << "message " << i;
    EXPECT_EQ(m->payload, want[i].data);
  }
}

TEST(EventStreamTest, KongBedrockToolUseChunksUnderAnyChunking) {
  std::optional<std::filesystem::path> root = protocol_test::FixturesDir();
  if (!root) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::string> reads;
  for (int i = 1; i <= 3; ++i) {
    const std::string b64 = protocol_test::ReadFile(
        *root / ("kong/spec/fixtures/ai-proxy/bedrock/chunks/chunk-" + std::to_string(i) + ".txt"));
    std::string bytes;
    ASSERT_TRUE(absl::Base64Unescape(b64, &bytes)) << "chunk " << i;
    reads.push_back(std::move(bytes));
  }
  Result whole = Parse({Join(reads)});
  ASSERT_TRUE(whole.status.ok()) << whole.status;
  ExpectSameUnderAnyChunking(reads, whole.frames);

  // What the recording holds (read from its decoded bytes): a tool call whose input arrives
  // in five deltas, then the stop and the usage metadata.
  std::vector<std::string> events;
  std::string input;
  for (const StreamFrame& f : whole.frames) {
    events.push_back(f.event);
    const nlohmann::json body = nlohmann::json::parse(f.data);
    if (f.event == "contentBlockDelta") input += body.at("delta").at("toolUse").at("input");
    if (f.event == "messageStop") {
      EXPECT_EQ(body.at("stopReason"), "tool_use");
    }
    if (f.event == "metadata") {
      EXPECT_EQ(body.at("usage").at("inputTokens"), 478);
    }
  }
  EXPECT_THAT(events, ElementsAre("messageStart", "contentBlockStart", "contentBlockDelta",
                                  "contentBlockDelta", "contentBlockDelta", "contentBlockDelta",
                                  "contentBlockDelta", "contentBlockStop", "messageStop",
                                  "metadata"));
  EXPECT_EQ(input, "{\"a\": 2, \"b\": 12}");
}

TEST(EventStreamTest, EncodedMessagesRoundTrip) {
  const std::string a = Event("messageStart", "{\"role\":\"assistant\"}");
  const std::string b = Event("metadata", "");  // empty payload
  const std::string c = EncodeEventStreamMessage({}, "");  // the 16-byte minimum
  EXPECT_EQ(c.size(), 16u);
  ExpectSameUnderAnyChunking({a + b + c},
                             {StreamFrame{"messageStart", "{\"role\":\"assistant\"}"},
                              StreamFrame{"metadata", ""}, StreamFrame{"", ""}});
  absl::StatusOr<EventStreamMessage> m = DecodeEventStreamMessage(a);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_NE(m->FindHeader(":content-type"), nullptr);
  EXPECT_EQ(*m->FindHeader(":content-type"), "application/json");
  EXPECT_EQ(m->FindHeader(":nope"), nullptr);
}

TEST(EventStreamTest, ExceptionsAndErrorsAreRecognisable) {
  const std::string exception = EncodeEventStreamMessage(
      {{":exception-type", "throttlingException"},
       {":content-type", "application/json"},
       {":message-type", "exception"}},
      "{\"message\":\"Too many requests\"}");
  const std::string error = EncodeEventStreamMessage(
      {{":message-type", "error"}, {":error-code", "InternalFailure"},
       {":error-message", "boom"}},
      "");
  const std::string other =
      EncodeEventStreamMessage({{":message-type", "initial-response"}}, "{}");
  ExpectSameUnderAnyChunking(
      {Event("messageStart", "{}") + exception + error + other},
      {StreamFrame{"messageStart", "{}"},
       StreamFrame{"exception:throttlingException", "{\"message\":\"Too many requests\"}"},
       StreamFrame{"error:InternalFailure", "boom"}, StreamFrame{"initial-response:", "{}"}});
}

TEST(EventStreamTest, EveryHeaderTypeDecodes) {
  std::string headers;
  auto add = [&](std::string_view name, uint8_t type, std::string_view value) {
    headers.push_back(static_cast<char>(name.size()));
    headers.append(name);
    headers.push_back(static_cast<char>(type));
    headers.append(value);
  };
  const std::string uuid("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
  add("t", 0, "");
  add("f", 1, "");
  add("b", 2, std::string("\xff", 1));
  add("s", 3, std::string("\x80\x00", 2));
  add("i", 4, std::string("\x00\x01\x00\x00", 4));
  add("l", 5, std::string("\xff\xff\xff\xff\xff\xff\xff\xfe", 8));
  add("y", 6, std::string("\x00\x03\x00\x01\x02", 5));
  add("str", 7, std::string("\x00\x02hi", 4));
  add("ts", 8, std::string("\x00\x00\x01\x8b\xcf\xe5\x68\x00", 8));
  add("u", 9, uuid);
  std::string m(12, '\0');
  m += headers;
  m += "payload";
  m += std::string(4, '\0');
  PutU32(&m, 0, static_cast<uint32_t>(m.size()));
  PutU32(&m, 4, static_cast<uint32_t>(headers.size()));
  Reseal(&m);
  absl::StatusOr<EventStreamMessage> got = DecodeEventStreamMessage(m);
  ASSERT_TRUE(got.ok()) << got.status();
  using T = EventStreamHeaderType;
  EXPECT_THAT(got->headers,
              ElementsAre(EventStreamHeader{"t", T::kBoolTrue, "true"},
                          EventStreamHeader{"f", T::kBoolFalse, "false"},
                          EventStreamHeader{"b", T::kByte, "-1"},
                          EventStreamHeader{"s", T::kShort, "-32768"},
                          EventStreamHeader{"i", T::kInt, "65536"},
                          EventStreamHeader{"l", T::kLong, "-2"},
                          EventStreamHeader{"y", T::kBytes, std::string("\x00\x01\x02", 3)},
                          EventStreamHeader{"str", T::kString, "hi"},
                          EventStreamHeader{"ts", T::kTimestamp, "1700000000000"},
                          EventStreamHeader{"u", T::kUuid, uuid}));
  EXPECT_EQ(got->payload, "payload");
}

// Flips one bit in every byte of the middle message in turn: bytes 0..11 (lengths and the
// prelude CRC) break the prelude CRC; headers, payload and the message CRC break the message
// CRC. Whole and byte by byte, the first message still comes out and nothing after it.
TEST(EventStreamTest, AFlippedBitAnywhereIsTheRightCrcError) {
  const std::string first = Event("messageStart", "{}");
  const std::string middle = Event("contentBlockDelta", "{\"delta\":{\"text\":\"hi\"}}");
  const std::string last = Event("messageStop", "{}");
  const size_t headers_end = 12 + (middle.size() - 16 - 25);
  for (size_t i = 0; i < middle.size(); ++i) {
    for (int bit : {0, 7}) {
      std::string bad = middle;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      const std::string stream = first + bad + last;
      const char* want = i < 12 ? "prelude crc mismatch" : "message crc mismatch";
      for (bool bytewise : {false, true}) {
        Result r = Parse(bytewise ? ByteByByte(stream) : std::vector<std::string>{stream});
        EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument)
            << "byte " << i << " bit " << bit;
        EXPECT_THAT(std::string(r.status.message()), HasSubstr(want))
            << "byte " << i << " (headers end at " << headers_end << ")";
        EXPECT_THAT(r.frames, ElementsAre(StreamFrame{"messageStart", "{}"}));
      }
    }
  }
}

TEST(EventStreamTest, ParserStaysFailedAfterAnError) {
  std::string bad = Event("messageStart", "{}");
  bad[20] ^= 1;
  absl::StatusOr<std::unique_ptr<FrameParser>> parser = NewFrameParser(Framing::kEventStream);
  ASSERT_TRUE(parser.ok());
  std::vector<StreamFrame> frames;
  EXPECT_EQ((*parser)->Feed(bad, &frames).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*parser)->Feed(Event("a", "{}"), &frames).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*parser)->Finish(&frames).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(frames.empty());
}

TEST(EventStreamTest, ATruncatedStreamFailsAtFinish) {
  const std::string first = Event("messageStart", "{}");
  const std::string second = Event("messageStop", "{\"stopReason\":\"end_turn\"}");
  for (size_t n = 1; n < second.size(); ++n) {
    Result r = Parse({first, second.substr(0, n)});
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_THAT(std::string(r.status.message()), HasSubstr("ends inside a message")) << n;
    EXPECT_THAT(r.frames, ElementsAre(StreamFrame{"messageStart", "{}"})) << n;
  }
}

TEST(EventStreamTest, DeclaredLengthBelowTheMinimumIsRefused) {
  for (uint32_t total : {0u, 12u, 15u}) {
    std::string m = EncodeEventStreamMessage({}, "");
    PutU32(&m, 0, total);
    PutU32(&m, 4, 0);
    Reseal(&m);
    Result r = Parse({m});
    EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument) << total;
    EXPECT_THAT(std::string(r.status.message()), HasSubstr("below the minimum")) << total;
    EXPECT_FALSE(DecodeEventStreamMessage(m).ok());
  }
}

TEST(EventStreamTest, HeadersLongerThanTheMessageAreRefused) {
  std::string m = Event("messageStart", "{}");
  PutU32(&m, 4, static_cast<uint32_t>(m.size()));  // more than total - 16
  Reseal(&m);
  Result r = Parse({m});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("headers length"));
}

TEST(EventStreamTest, MalformedHeadersWithValidCrcsAreRefused) {
  // A string header whose declared length runs past the headers section.
  std::string m = EncodeEventStreamMessage({{":event-type", "messageStart"}}, "{}");
  m[12 + 1 + 11 + 1 + 1] = 0x40;  // low byte of the value length: 12 -> 64
  Reseal(&m);
  Result r = Parse({m});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("overruns"));
  // An unknown value type.
  m = EncodeEventStreamMessage({{":event-type", "messageStart"}}, "{}");
  m[12 + 1 + 11] = 10;
  Reseal(&m);
  r = Parse({m});
  EXPECT_EQ(r.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status.message()), HasSubstr("unknown value type 10"));
}

TEST(EventStreamTest, MessageAboveTheLimitIsResourceExhausted) {
  const std::string m = Event("contentBlockDelta", std::string(100, 'x'));
  Result ok = Parse({m}, m.size());  // exactly at the limit
  EXPECT_TRUE(ok.status.ok()) << ok.status;
  // Refused from the prelude alone, before the body is buffered.
  Result r = Parse({m.substr(0, 12)}, m.size() - 1);
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  // A declared length of 4 GiB - 1 is refused the same way under the default limit.
  std::string huge = m.substr(0, 16);
  PutU32(&huge, 0, 0xFFFFFFFFu);
  PutU32(&huge, 8, Crc32(std::string_view(huge).substr(0, 8)));
  r = Parse(ByteByByte(huge));
  EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(DecodeEventStreamMessage(m, m.size() - 1).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(EventStreamTest, DecodeWantsExactlyOneMessage) {
  const std::string m = Event("messageStart", "{}");
  EXPECT_TRUE(DecodeEventStreamMessage(m).ok());
  EXPECT_EQ(DecodeEventStreamMessage(m + "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEventStreamMessage(m.substr(0, m.size() - 1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeEventStreamMessage("short").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
