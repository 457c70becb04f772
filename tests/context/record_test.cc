#include "modeenvoy/context/record.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/context/record_internal.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// A record that sets every field, with messages using every part of the message model
// (content parts, raw JSON extras with escapes and exponents, tool calls, a kept unknown
// part type).
ContextRecord FullRecord() {
  ContextRecord r;
  r.session_id = "s-1";
  r.owner = "team-a";
  r.created = absl::FromUnixNanos(1700000000123456789);
  r.updated = absl::FromUnixNanos(1700000100000000001);
  r.turn_count = 3;
  r.metadata = {{"language", "de"}, {"tier", "gold \"quoted\"\n"}};

  Message system = MakeMessage(Role::kSystem, "be brief");
  Message user = MakeMessage(Role::kUser);
  ContentPart text;
  text.text = "what is in the picture, caf\xC3\xA9?";
  text.extra = {{"cache_control", R"({"type":"ephemeral","note":"\u00e9","n":1e3})"}};
  ContentPart image;
  image.type = ContentPartType::kImageUrl;
  image.image_url = ImageUrl{.url = "https://example.com/a.png", .detail = "low", .extra = {}};
  user.content = std::vector<ContentPart>{text, image};
  user.name = "alice";

  Message call = MakeMessage(Role::kAssistant);
  ToolCall weather;
  weather.id = "call_1";
  weather.function = FunctionCall{.name = "get_weather", .arguments = R"({"city":"Paris"})",
                                  .extra = {}};
  ToolCall custom;
  custom.id = "call_2";
  custom.type = "custom";
  custom.extra = {{"custom", R"({"name":"grep","input":"x"})"}};
  call.tool_calls = {weather, custom};
  call.extra = {{"reasoning_content", R"("thinking\/hard")"}};

  Message result = MakeMessage(Role::kTool, "18C");
  result.tool_call_id = "call_1";

  Message reply = MakeMessage(Role::kAssistant);
  ContentPart thinking;  // a part type the model does not know (Mistral's "thinking")
  thinking.type = ContentPartType::kOther;
  thinking.extra = {{"type", R"("thinking")"}, {"thinking", R"([{"type":"text","text":"hm"}])"}};
  ContentPart answer;
  answer.text = "18C in Paris";
  reply.content = std::vector<ContentPart>{thinking, answer};
  reply.refusal = "none";

  Message summary = MakeMessage(Role::kSystem, "earlier: greetings");

  r.history = {
      {.message = summary, .turn = 0, .pinned = false, .summary = true},
      {.message = system, .turn = 1, .pinned = true, .summary = false},
      {.message = user, .turn = 2},
      {.message = call, .turn = 2},
      {.message = result, .turn = 3},
      {.message = reply, .turn = 3},
  };
  r.tool_calls = {
      {.turn = 2, .id = "call_1", .name = "get_weather", .arguments = R"({"city":"Paris"})",
       .result = "18C"},
      {.turn = 2, .id = "call_2", .name = "", .arguments = "x", .result = std::nullopt},
  };
  Usage usage;
  usage.prompt_tokens = 120;
  usage.completion_tokens = 30;
  usage.total_tokens = 150;
  usage.prompt_tokens_details = PromptTokensDetails{.cached_tokens = 64, .audio_tokens = {},
                                                    .extra = {{"x_cost", "1.50e-4"}}};
  usage.extra = {{"cost", "0.000123"}};
  r.model_choices = {
      {.turn = 2, .model = "gpt-4o", .provider = "openai", .upstream_model = "gpt-4o-2024-08-06",
       .usage = usage, .usage_estimated = false},
      {.turn = 3, .model = "fast", .provider = "ollama", .upstream_model = "llama3",
       .usage = std::nullopt, .usage_estimated = true},
  };
  return r;
}

TEST(ContextRecordTest, RoundTripKeepsEveryField) {
  const ContextRecord record = FullRecord();
  const std::string json = SerializeContextRecord(record);
  EXPECT_THAT(json, StartsWith(R"({"schema_version":2,"session_id":"s-1","owner":"team-a",)"));
  // Raw JSON members are stored byte for byte, not normalized.
  EXPECT_THAT(json, HasSubstr(R"("note":"\u00e9","n":1e3)"));
  EXPECT_THAT(json, HasSubstr(R"("created":"2023-11-14T22:13:20.123456789Z")"));
  absl::StatusOr<ContextRecord> back = ParseContextRecord(json);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, record);
  EXPECT_EQ(SerializeContextRecord(*back), json);
}

TEST(ContextRecordTest, WritesTheCurrentVersionWhateverTheRecordSays) {
  ContextRecord record = FullRecord();
  record.schema_version = 1;
  absl::StatusOr<ContextRecord> back = ParseContextRecord(SerializeContextRecord(record));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->schema_version, kContextSchemaVersion);
}

TEST(ContextRecordTest, EmptyRecordRoundTrips) {
  ContextRecord record;
  record.session_id = "s";
  record.owner = "o";
  absl::StatusOr<ContextRecord> back = ParseContextRecord(SerializeContextRecord(record));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, record);
}

TEST(ContextRecordTest, InvalidUtf8IsWrittenAsReplacementCharacter) {
  ContextRecord record;
  record.session_id = "s";
  record.owner = "o";
  record.metadata["k"] = "a\xFF" "b";
  absl::StatusOr<ContextRecord> back = ParseContextRecord(SerializeContextRecord(record));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->metadata["k"], "a\xEF\xBF\xBD" "b");
}

// A version-1 record as the first schema wrote it: messages only.
constexpr char kVersion1[] = R"({
  "schema_version": 1,
  "session_id": "s-old",
  "owner": "team-a",
  "created": "2024-05-01T10:00:00Z",
  "updated": "2024-05-01T10:05:00.5+02:00",
  "metadata": {"language": "fr"},
  "history": [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "weather and time in Paris?"},
    {"role": "assistant", "content": null, "tool_calls": [
      {"id": "c1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
      {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "10:00"}]},
    {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    {"role": "assistant", "content": "18C at 10:00"},
    {"role": "user", "content": "and tomorrow?"},
    {"role": "assistant", "tool_calls": [{"id": "c3", "type": "function",
      "function": {"name": "get_weather", "arguments": "{\"day\":1}"}}]}
  ]
})";

TEST(ContextRecordTest, MigratesVersion1) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord(kVersion1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->schema_version, 2);
  EXPECT_EQ(r->session_id, "s-old");
  EXPECT_EQ(r->owner, "team-a");
  EXPECT_EQ(r->created, absl::FromUnixSeconds(1714557600));
  EXPECT_EQ(r->updated, absl::FromUnixSeconds(1714557600 - 7200 + 300) + absl::Milliseconds(500));
  EXPECT_EQ(r->metadata, (std::map<std::string, std::string>{{"language", "fr"}}));
  // Turns by user message; the system prompt before the first one belongs to turn 1.
  std::vector<int64_t> turns;
  for (const HistoryEntry& e : r->history) {
    turns.push_back(e.turn);
    EXPECT_FALSE(e.pinned);
    EXPECT_FALSE(e.summary);
  }
  EXPECT_EQ(turns, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 2, 2}));
  EXPECT_EQ(r->turn_count, 2);
  EXPECT_EQ(r->history[1].message, MakeMessage(Role::kUser, "weather and time in Paris?"));
  ASSERT_EQ(r->tool_calls.size(), 3u);
  EXPECT_EQ(r->tool_calls[0], (ToolInvocation{.turn = 1, .id = "c1", .name = "get_weather",
                                              .arguments = R"({"city":"Paris"})",
                                              .result = "18C"}));
  EXPECT_EQ(r->tool_calls[1], (ToolInvocation{.turn = 1, .id = "c2", .name = "get_time",
                                              .arguments = "{}", .result = "10:00"}));
  EXPECT_EQ(r->tool_calls[2], (ToolInvocation{.turn = 2, .id = "c3", .name = "get_weather",
                                              .arguments = R"({"day":1})",
                                              .result = std::nullopt}));
  EXPECT_TRUE(r->model_choices.empty());
  // Written again, it is a version-2 record that reads back the same.
  absl::StatusOr<ContextRecord> again = ParseContextRecord(SerializeContextRecord(*r));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *r);
}

TEST(ContextRecordTest, RecordWithoutVersionIsVersion1) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord(
      R"({"session_id":"s","owner":"o","history":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->history.size(), 1u);
  EXPECT_EQ(r->history[0].turn, 1);
  EXPECT_EQ(r->turn_count, 1);
}

TEST(ContextRecordTest, NewerVersionIsAnErrorNamingTheSession) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord(
      R"({"schema_version":3,"session_id":"s-9","owner":"o","history":[],"novel":1})");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "session s-9: schema_version 3 is newer than this gateway reads (2)");
}

struct CorruptCase {
  const char* json;
  const char* message;
};

TEST(ContextRecordTest, CorruptRecordsAreDataLossNamingTheSessionAndField) {
  const CorruptCase cases[] = {
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","history":[{"turn":1}]})",
       "session s-1: history[0].message: is required"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("history":[{"message":{"role":"user","content":"a"}},{"message":{"role":5}}]})",
       "session s-1: history[1].message.role: expected string, got number"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("history":[{"message":{"content":"a"}}]})",
       "session s-1: history[0].message.role: required"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("history":[{"message":{"role":"user","content":"a"},"turn":"1"}]})",
       "session s-1: history[0].turn: must be an integer"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","metadata":{"k":1}})",
       "session s-1: metadata.k: must be a string"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","bogus":[]})",
       "session s-1: bogus: unknown field"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","created":"yesterday"})",
       "session s-1: created: not an RFC 3339 time"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("model_choices":[{"turn":1,"usage":{"prompt_tokens":"ten"}}]})",
       "session s-1: model_choices[0].usage.prompt_tokens: expected integer, got string"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","tool_calls":[{"result":7}]})",
       "session s-1: tool_calls[0].result: must be a string"},
      {R"({"schema_version":"2","session_id":"s-1","owner":"o"})",
       "session s-1: schema_version: must be a positive integer"},
      {R"({"schema_version":2,"session_id":"s-1"})", "session s-1: owner: is required"},
      {R"({"schema_version":1,"session_id":"s-1","owner":"o","history":[{"role":"robot"}]})",
       "session s-1: history[0].role: unknown role \"robot\""},
  };
  for (const CorruptCase& c : cases) {
    absl::StatusOr<ContextRecord> r = ParseContextRecord(c.json, "from-key");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << c.json;
    EXPECT_THAT(std::string(r.status().message()), StartsWith(c.message)) << c.json;
  }
}

TEST(ContextRecordTest, UnreadableRecordIsNamedByTheCallersSessionId) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord("{\"session_id\": \"s-1\"", "s-7");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()), StartsWith("session s-7: invalid JSON"));
  r = ParseContextRecord("[1,2]", "s-8");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), "session s-8: record: must be a JSON object");
}

// The reader reads a record in one pass, in document order; these are the cases where
// that order could change what a whole-document read reported.
TEST(ContextRecordTest, ASyntaxErrorAnywhereIsReportedBeforeASchemaProblem) {
  // The unknown member comes first, the truncation after it: still a syntax error, and
  // (the record being unreadable) named by the caller's id.
  const std::string json =
      R"({"schema_version":2,"bogus":1,"session_id":"s-1","owner":"o","history":[)";
  absl::StatusOr<ContextRecord> r = ParseContextRecord(json, "from-key");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(r.status().message()),
              StartsWith("session from-key: invalid JSON at byte "));
  // Inside a message: the byte is counted in the whole record.
  const std::string bad_message =
      R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
      R"("history":[{"message":{"role":"user","content":tru}}]})";
  r = ParseContextRecord(bad_message, "from-key");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(),
            absl::StrCat("session from-key: invalid JSON at byte ", bad_message.find("tru"),
                         ": unexpected character 't'"));
}

TEST(ContextRecordTest, AProblemBeforeTheSessionIdStillNamesTheRecordsSession) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord(
      R"({"schema_version":2,"bogus":1,"session_id":"s-2","owner":"o"})", "from-key");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(r.status().message(), "session s-2: bogus: unknown field");
}

TEST(ContextRecordTest, SchemaVersionIsHonouredWhereverItStands) {
  // Version 2 members before the version: read as version 2, not refused as version 1.
  absl::StatusOr<ContextRecord> r = ParseContextRecord(
      R"({"session_id":"s","owner":"o","turn_count":4,"history":[)"
      R"({"message":{"role":"user","content":"hi"},"turn":4}],"schema_version":2})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->turn_count, 4);
  ASSERT_EQ(r->history.size(), 1u);
  EXPECT_EQ(r->history[0].turn, 4);
  // A newer version last is still "newer", not an unknown member of this version.
  r = ParseContextRecord(R"({"session_id":"s-9","owner":"o","novel":[],"schema_version":3})");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(),
            "session s-9: schema_version 3 is newer than this gateway reads (2)");
  // Version 1 members only: turn_count belongs to version 2.
  r = ParseContextRecord(R"({"session_id":"s-1","owner":"o","turn_count":1,"schema_version":1})");
  EXPECT_EQ(r.status().message(), "session s-1: turn_count: unknown field");
}

TEST(ContextRecordTest, RepeatedMembersAreDataLoss) {
  const CorruptCase cases[] = {
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","owner":"p"})",
       "session s-1: owner: duplicate key"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o","metadata":{"k":"a","k":"b"}})",
       "session s-1: metadata.k: duplicate key"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("history":[{"message":{"role":"user"},"turn":1,"turn":2}]})",
       "session s-1: history[0].turn: duplicate key"},
      {R"({"schema_version":2,"session_id":"s-1","owner":"o",)"
       R"("history":[{"message":{"role":"user","role":"tool"}}]})",
       "session s-1: history[0].message.role: duplicate key"},
  };
  for (const CorruptCase& c : cases) {
    absl::StatusOr<ContextRecord> r = ParseContextRecord(c.json, "from-key");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << c.json;
    EXPECT_EQ(r.status().message(), c.message) << c.json;
  }
}

TEST(ContextRecordTest, CountsAreNonNegativeIntegers) {
  const CorruptCase cases[] = {
      {"-1", "session s-1: turn_count: must be >= 0"},
      {"1.0", "session s-1: turn_count: must be an integer"},
      {"1e3", "session s-1: turn_count: must be an integer"},
      {"null", "session s-1: turn_count: must be an integer"},
      {"9223372036854775808", "session s-1: turn_count: must be <= 9223372036854775807"},
      {"18446744073709551616", "session s-1: turn_count: must be an integer"},
  };
  for (const CorruptCase& c : cases) {
    const std::string json = absl::StrCat(
        R"({"schema_version":2,"session_id":"s-1","owner":"o","turn_count":)", c.json, "}");
    absl::StatusOr<ContextRecord> r = ParseContextRecord(json, "from-key");
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << c.json;
    EXPECT_EQ(r.status().message(), c.message) << c.json;
  }
  absl::StatusOr<ContextRecord> r = ParseContextRecord(
      R"({"schema_version":2,"session_id":"s","owner":"o","turn_count":9223372036854775807})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->turn_count, std::numeric_limits<int64_t>::max());
}

TEST(ContextRecordTest, WhitespaceAnywhereAndNullFlagsRead) {
  absl::StatusOr<ContextRecord> r = ParseContextRecord(R"(
    { "schema_version" : 2 , "session_id" : "s" , "owner" : "o" ,
      "history" : [ { "message" : { "role" : "user" , "content" : "hi" ,
                                    "x_extra" : { "a" : [ 1 , 2 ] } } ,
                      "turn" : 1 , "pinned" : null } ] ,
      "model_choices" : [ { "turn" : 1 , "usage" : { "total_tokens" : 3 } ,
                            "usage_estimated" : null } , { "turn" : 2 , "usage" : null } ] } )");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->history.size(), 1u);
  Message expected = MakeMessage(Role::kUser, "hi");
  expected.extra = {{"x_extra", R"({"a":[1,2]})"}};
  EXPECT_EQ(r->history[0].message, expected);
  EXPECT_FALSE(r->history[0].pinned);
  ASSERT_EQ(r->model_choices.size(), 2u);
  ASSERT_TRUE(r->model_choices[0].usage.has_value());
  EXPECT_EQ(r->model_choices[0].usage->total_tokens, 3);
  EXPECT_FALSE(r->model_choices[0].usage_estimated);
  EXPECT_FALSE(r->model_choices[1].usage.has_value());
}

// A message as deep as ParseMessage reads stays readable inside a record, and a record
// that holds one reports its real problem, not its depth.
TEST(ContextRecordTest, AMessageAsDeepAsParseMessageReadsIsReadable) {
  const int levels = kMaxJsonDepth - 1;  // the message object is the first level
  const std::string deep = std::string(levels, '[') + std::string(levels, ']');
  const std::string message = absl::StrCat(R"({"role":"user","x_deep":)", deep, "}");
  ASSERT_TRUE(ParseMessage(message).ok());
  const std::string head = R"({"schema_version":2,"session_id":"s-1","owner":"o",)";
  absl::StatusOr<ContextRecord> r =
      ParseContextRecord(absl::StrCat(head, R"("history":[{"message":)", message, "}]}"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->history[0].message.extra[0].second, deep);
  r = ParseContextRecord(
      absl::StrCat(head, R"("history":[{"message":)", message, R"(}],"bogus":1})"));
  EXPECT_EQ(r.status().message(), "session s-1: bogus: unknown field");
}

TEST(ContextRecordTest, HistoryMessagesAreTheMessagesInOrder) {
  const ContextRecord record = FullRecord();
  std::vector<Message> messages = HistoryMessages(record);
  ASSERT_EQ(messages.size(), record.history.size());
  for (size_t i = 0; i < messages.size(); ++i) EXPECT_EQ(messages[i], record.history[i].message);
}

// The record's own time writer gives absl::FormatTime's bytes: around the years it writes
// itself (1000..9999), at their edges, and at times FormatTime writes for it.
TEST(Rfc3339Test, WritesWhatFormatTimeWrites) {
  auto want = [](absl::Time t) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", t, absl::UTCTimeZone());
  };
  std::vector<absl::Time> times = {absl::UnixEpoch(),
                                   absl::FromUnixSeconds(1700000000),
                                   absl::FromUnixNanos(1700000000123456789),
                                   absl::FromUnixSeconds(-1),
                                   absl::FromUnixNanos(-1),
                                   absl::FromUnixSeconds(951782400),  // 2000-02-29
                                   absl::FromUnixSeconds(-30610224000),     // 1000-01-01
                                   absl::FromUnixSeconds(-30610224000) - absl::Nanoseconds(1),
                                   absl::FromUnixSeconds(253402300800),     // 10000-01-01
                                   absl::FromUnixSeconds(253402300800) - absl::Nanoseconds(1),
                                   absl::InfiniteFuture(),
                                   absl::InfinitePast()};
  uint64_t state = 11;  // a fixed linear congruential sequence
  for (int i = 0; i < 20000; ++i) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t s = -31000000000 + static_cast<int64_t>((state >> 20) % 285000000000ULL);
    times.push_back(absl::FromUnixSeconds(s) +
                    absl::Nanoseconds(static_cast<int64_t>(state % 1000000000)));
  }
  for (absl::Time t : times) {
    ASSERT_EQ(context_internal::Rfc3339(t), want(t)) << absl::ToUnixNanos(t);
  }
}

}  // namespace
}  // namespace modeenvoy
