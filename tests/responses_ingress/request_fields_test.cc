// tests/responses_ingress/request_fields_test.cc: the Responses request members that are
// OpenAI-only hints or the client's bookkeeping (include, client_metadata, stream_options,
// truncation, prompt_cache_retention, background) as POST /v1/responses parses them: valid
// values never reach a provider's body (ChatRequest::extra), invalid ones are a 400 naming
// the field. Accepted values are the OpenAI Responses API reference's (the openai SDK's
// ResponseIncludable and ResponseCreateParams), not the code's.
#include <string>

#include "gtest/gtest.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/status.h"

namespace modeenvoy {
namespace {

absl::StatusOr<ChatRequest> Parse(const std::string& members) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/responses";
  r.body = R"({"model":"m","input":"x",)" + members + "}";
  return OpenAiResponsesCodec()->ParseRequest(r);
}

bool InExtra(const ChatRequest& chat, const std::string& key) {
  for (const auto& [k, v] : chat.extra) {
    if (k == key) return true;
  }
  return false;
}

// The message of a failed parse, which must be a 400.
std::string ParseError(const std::string& members) {
  absl::StatusOr<ChatRequest> chat = Parse(members);
  if (chat.ok()) return "(parsed)";
  EXPECT_EQ(HttpStatusForStatus(chat.status()), 400) << chat.status();
  return std::string(chat.status().message());
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

TEST(ResponsesRequestFields, KnownIncludeValuesAreAcceptedAndNotForwarded) {
  // Every value of the reference's ResponseIncludable.
  absl::StatusOr<ChatRequest> chat = Parse(
      R"("include":["reasoning.encrypted_content","message.output_text.logprobs",)"
      R"("file_search_call.results","web_search_call.results",)"
      R"("web_search_call.action.sources","message.input_image.image_url",)"
      R"("computer_call_output.output.image_url","code_interpreter_call.outputs"])");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "include"));
  chat = Parse(R"("include":null)");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "include"));
}

TEST(ResponsesRequestFields, AnUnknownIncludeValueIsA400NamingIt) {
  const std::string m =
      ParseError(R"("include":["reasoning.encrypted_content","reasoning.plain_content"])");
  EXPECT_TRUE(StartsWith(m, "include[1]:")) << m;
  EXPECT_NE(m.find("reasoning.plain_content"), std::string::npos) << m;
  EXPECT_TRUE(StartsWith(ParseError(R"("include":[3])"), "include[0]:"));
  EXPECT_TRUE(StartsWith(ParseError(R"("include":"reasoning.encrypted_content")"), "include:"));
}

TEST(ResponsesRequestFields, ClientMetadataIsTheClientsAndNotForwarded) {
  absl::StatusOr<ChatRequest> chat =
      Parse(R"("client_metadata":{"x-codex-installation-id":"abc"})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "client_metadata"));
  EXPECT_TRUE(StartsWith(ParseError(R"("client_metadata":[1])"), "client_metadata:"));
}

TEST(ResponsesRequestFields, StreamOptionsAreValidatedAndNotForwarded) {
  absl::StatusOr<ChatRequest> chat =
      Parse(R"("stream":true,"stream_options":{"include_obfuscation":false})");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "stream_options"));
  // The gateway still asks the provider for usage (the final response reports it).
  ASSERT_TRUE(chat->stream_options.has_value());
  EXPECT_TRUE(chat->stream_options->include_usage.value_or(false));
  EXPECT_TRUE(StartsWith(ParseError(R"("stream_options":{"include_usage":true})"),
                         "stream_options.include_usage:"));
  EXPECT_TRUE(StartsWith(ParseError(R"("stream_options":{"include_obfuscation":1})"),
                         "stream_options.include_obfuscation:"));
}

TEST(ResponsesRequestFields, TruncationAutoGoesOnlyToAResponsesProvider) {
  absl::StatusOr<ChatRequest> chat = Parse(R"("truncation":"disabled")");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "truncation"));
  std::shared_ptr<const IngressCodec> codec = OpenAiResponsesCodec();
  EXPECT_TRUE(codec->CheckAttempt(*chat, "anthropic").ok());

  chat = Parse(R"("truncation":"auto")");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_TRUE(codec->CheckAttempt(*chat, "openai_responses").ok());
  for (const char* type : {"anthropic", "openai", "gemini"}) {
    absl::Status s = codec->CheckAttempt(*chat, type);
    EXPECT_EQ(HttpStatusForStatus(s), 400) << type;
    EXPECT_TRUE(StartsWith(std::string(s.message()), "truncation:")) << s;
  }
  EXPECT_TRUE(StartsWith(ParseError(R"("truncation":"sometimes")"), "truncation:"));
}

TEST(ResponsesRequestFields, PromptCacheRetentionIsACacheHint) {
  absl::StatusOr<ChatRequest> chat = Parse(R"("prompt_cache_retention":"24h")");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "prompt_cache_retention"));
  EXPECT_TRUE(
      StartsWith(ParseError(R"("prompt_cache_retention":"1w")"), "prompt_cache_retention:"));
}

TEST(ResponsesRequestFields, BackgroundRunsAreRefused) {
  absl::StatusOr<ChatRequest> chat = Parse(R"("background":false)");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_FALSE(InExtra(*chat, "background"));
  EXPECT_TRUE(StartsWith(ParseError(R"("background":true)"), "background:"));
}

TEST(ResponsesRequestFields, HintsWithAUnifiedCounterpartMapToIt) {
  absl::StatusOr<ChatRequest> chat = Parse(
      R"("prompt_cache_key":"k1","safety_identifier":"s1","user":"u1",)"
      R"("service_tier":"auto")");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->prompt_cache_key, "k1");
  EXPECT_EQ(chat->safety_identifier, "s1");
  EXPECT_EQ(chat->user, "u1");
  EXPECT_EQ(chat->service_tier, "auto");
  EXPECT_TRUE(chat->extra.empty());
}

TEST(ResponsesRequestFields, MembersTheApiDoesNotHaveStayForTheProviderToRefuse) {
  absl::StatusOr<ChatRequest> chat = Parse(R"("frobnicate":1)");
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_TRUE(InExtra(*chat, "frobnicate"));
}

}  // namespace
}  // namespace modeenvoy
