// tests/protocol/dialect_test.cc: the dialect table and the "openai" dialect.
#include "modeenvoy/protocol/dialect.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "tests/protocol/dialect_test_util.h"

namespace modeenvoy {
namespace {

using protocol_test::DecodeStream;
using protocol_test::Split;

TEST(DialectTableTest, UnknownNameIsNotFoundAndListsTheKnownOnes) {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("nosuch");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(d.status().message().find("openai"), std::string::npos) << d.status();
}

TEST(DialectTableTest, EveryListedNameBuildsWithDefaultOptionsAndKnowsItsName) {
  std::vector<std::string_view> names = DialectNames();
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names.front(), "openai");
  for (std::string_view name : names) {
    absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect(name);
    ASSERT_TRUE(d.ok()) << name << ": " << d.status();
    EXPECT_EQ((*d)->name(), name);
    EXPECT_NE((*d)->NewStreamDecoder(), nullptr);
    EXPECT_NE((*d)->NewStreamEncoder(), nullptr);
  }
}

TEST(OpenAiDialectTest, UnknownOptionIsRefusedByName) {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("openai", R"({"deployment":"x"})");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "deployment: unknown field");
}

TEST(OpenAiDialectTest, RequestKeepsUnknownFieldsAndUsesTheProviderModelName) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(
      R"({"model":"public","messages":[{"role":"user","content":"hi"}],"top_k":3})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  std::unique_ptr<Dialect> d = *NewDialect("openai");
  WireRequest wire;
  ASSERT_TRUE(d->EncodeRequest(*chat, {.stream = true, .model = "gpt-x"}, &wire).ok());
  EXPECT_EQ(wire.method, "POST");
  EXPECT_EQ(wire.target, "/chat/completions");
  // A streamed call asks for usage (stream_usage defaults to true).
  EXPECT_EQ(wire.body,
            R"({"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true},"top_k":3})");
  auto accept = std::find_if(wire.headers.begin(), wire.headers.end(),
                             [](const auto& h) { return h.first == "accept"; });
  ASSERT_NE(accept, wire.headers.end());
  EXPECT_EQ(accept->second, "text/event-stream");
  EXPECT_EQ(chat->model, "public");  // the caller's request is not changed
}

TEST(OpenAiDialectTest, StreamIsPassedThroughEventByEventUnderAnySplit) {
  std::unique_ptr<Dialect> d = *NewDialect("openai");
  // A chunk needing no fix (an empty-choices chunk is completed with object/created/model).
  const std::string chunk =
      R"({"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"}}]})";
  const std::string body = "data: " + chunk + "\r\n\r\n: keep-alive\n\ndata: [DONE]\n\n";
  for (Split split : {Split::kWhole, Split::kByteByByte, Split::kRandom}) {
    protocol_test::DecodedStream got = DecodeStream(*d, body, split);
    ASSERT_TRUE(got.status.ok()) << got.status;
    EXPECT_EQ(got.events, (std::vector<std::string>{chunk, "[DONE]"}));
  }
}

TEST(OpenAiDialectTest, AnErrorEventInTheStreamIsTheProvidersError) {
  std::unique_ptr<Dialect> d = *NewDialect("openai");
  const std::string chunk =
      R"({"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"}}]})";
  const std::string body =
      "data: " + chunk + "\n\n"
      "data: { \"error\": {\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n";
  protocol_test::DecodedStream got = DecodeStream(*d, body, Split::kByteByByte);
  EXPECT_EQ(got.events, (std::vector<std::string>{chunk}));
  EXPECT_TRUE(IsProviderError(got.status)) << got.status;
  EXPECT_EQ(got.status.message(), "overloaded");
  // A chunk that merely mentions "error" later is not one.
  got = DecodeStream(*d, "data: {\"id\":\"error\",\"choices\":[]}\n\n", Split::kWhole);
  EXPECT_TRUE(got.status.ok()) << got.status;
}

TEST(OpenAiDialectTest, EncoderWritesSseAndEndsWithDone) {
  std::unique_ptr<Dialect> d = *NewDialect("openai");
  std::unique_ptr<StreamEncoder> encoder = d->NewStreamEncoder();
  ChatCompletionChunk chunk;
  chunk.id = "c1";
  std::string out;
  ASSERT_TRUE(encoder->Encode(chunk, &out).ok());
  ASSERT_TRUE(encoder->Finish(&out).ok());
  EXPECT_EQ(out, "data: " + SerializeChatCompletionChunk(chunk) + "\n\ndata: [DONE]\n\n");
}

TEST(OpenAiDialectTest, ErrorsUseTheUnifiedModel) {
  std::unique_ptr<Dialect> d = *NewDialect("openai");
  absl::Status s = d->DecodeError(429, R"({"error":{"message":"slow down","type":"x"}})");
  EXPECT_EQ(HttpStatusForStatus(s), 429);
  EXPECT_EQ(s.message(), "slow down");
  EXPECT_EQ(d->EncodeErrorBody(s), OpenAiErrorBody(s));
}

}  // namespace
}  // namespace modeenvoy
