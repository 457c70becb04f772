// tests/anthropic_ingress/codec_test.cc: AnthropicMessagesCodec (POST /v1/messages) on the
// recorded Anthropic fixtures (request, whole responses, streams: Anthropic -> unified ->
// Anthropic again) and on hand-built requests and errors. Expected values come from the
// recordings, read by a small accumulator written from Anthropic's API reference (the
// event grammar and the message fields), not from the code under test.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/dialect_test_util.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using json = nlohmann::json;
using protocol_test::ChunkLines;
using protocol_test::DecodeStream;
using protocol_test::DecodedStream;
using protocol_test::FixturesDir;
using protocol_test::ListFiles;
using protocol_test::ReadFile;
using protocol_test::SseBodyFromChunkLines;
using protocol_test::Split;

constexpr char kVercelDir[] = "vercel-ai/packages/anthropic/src/__fixtures__";
constexpr char kKongRequest[] =
    "kong/spec/fixtures/ai-proxy/unit/expected-requests/anthropic/llm-v1-chat.json";

std::unique_ptr<Dialect> Anthropic() {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("anthropic");
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

HttpRequest Post(std::string body) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/messages";
  r.body = std::move(body);
  return r;
}

// What a Messages response or event stream says, as a client reads it.
struct Message {
  std::string id, model, text, thinking;
  std::vector<std::string> signatures;
  std::vector<json> tool_uses;  // {"id","name","input"}
  std::vector<std::string> other_blocks;  // types of blocks that are none of the above
  json stop_reason, stop_sequence;
  int64_t output_tokens = 0;
};

void AddBlock(const json& block, Message* m) {
  const std::string type = block.value("type", "");
  if (type == "text") {
    m->text += block.value("text", "");
  } else if (type == "thinking") {
    m->thinking += block.value("thinking", "");
    if (!block.value("signature", "").empty()) m->signatures.push_back(block["signature"]);
  } else if (type == "tool_use") {
    m->tool_uses.push_back({{"id", block["id"]}, {"name", block["name"]},
                            {"input", block.value("input", json::object())}});
  } else {
    m->other_blocks.push_back(type);
  }
}

Message FromBody(const json& body) {
  Message m;
  m.id = body.value("id", "");
  m.model = body.value("model", "");
  for (const json& b : body["content"]) AddBlock(b, &m);
  m.stop_reason = body["stop_reason"];
  m.stop_sequence = body.value("stop_sequence", json());
  m.output_tokens = body["usage"].value("output_tokens", 0);
  return m;
}

struct Event {
  std::string name;
  json data;
};

// Reads an event stream as Anthropic's reference describes it; `grammar` adds the checks of
// the order (message_start, then blocks opened and closed by consecutive index, then
// message_delta and message_stop) that a stream written by the codec must meet.
Message FromEvents(const std::vector<Event>& events, bool grammar) {
  Message m;
  // The open block's index, -1 when none (not std::optional: GCC 12 -O2 warns
  // -Wmaybe-uninitialized on its value_or, a false positive).
  int64_t open = -1;
  int64_t next_index = 0;
  std::string open_type, partial;
  json open_block;
  bool delta_seen = false;
  for (size_t i = 0; i < events.size(); ++i) {
    const Event& e = events[i];
    const std::string type = e.data.value("type", "");
    if (grammar) {
      EXPECT_EQ(e.name, type) << "event " << i;
      if (i == 0) {
        EXPECT_EQ(type, "message_start");
      }
      if (i == 1) {
        EXPECT_EQ(type, "ping");
      }
      if (i + 1 == events.size()) {
        EXPECT_EQ(type, "message_stop");
      }
    }
    if (type == "message_start") {
      m.id = e.data["message"].value("id", "");
      m.model = e.data["message"].value("model", "");
      m.output_tokens = e.data["message"]["usage"].value("output_tokens", 0);
      // A resumed message may come complete in message_start (no message_delta follows).
      m.stop_reason = e.data["message"].value("stop_reason", json());
      for (const json& b : e.data["message"].value("content", json::array())) AddBlock(b, &m);
    } else if (type == "content_block_start") {
      if (grammar) {
        EXPECT_EQ(open, -1) << "event " << i;
        EXPECT_EQ(e.data["index"], next_index) << "event " << i;
      }
      open = e.data["index"].get<int64_t>();
      open_block = e.data["content_block"];
      open_type = open_block.value("type", "");
      partial.clear();
    } else if (type == "content_block_delta") {
      if (grammar) {
        EXPECT_EQ(e.data["index"], open) << "event " << i;
      }
      const json& d = e.data["delta"];
      const std::string dt = d.value("type", "");
      if (dt == "text_delta") open_block["text"] = open_block.value("text", "") + d["text"].get<std::string>();
      if (dt == "thinking_delta") {
        open_block["thinking"] = open_block.value("thinking", "") + d["thinking"].get<std::string>();
      }
      if (dt == "signature_delta") open_block["signature"] = d["signature"];
      if (dt == "input_json_delta" && open_type == "tool_use") {
        partial += d["partial_json"].get<std::string>();
      }
    } else if (type == "content_block_stop") {
      if (grammar) {
        EXPECT_EQ(e.data["index"], open) << "event " << i;
      }
      if (open_type == "tool_use" && !partial.empty()) open_block["input"] = json::parse(partial);
      AddBlock(open_block, &m);
      open = -1;
      ++next_index;
    } else if (type == "message_delta") {
      delta_seen = true;
      m.stop_reason = e.data["delta"]["stop_reason"];
      m.stop_sequence = e.data["delta"].value("stop_sequence", json());
      m.output_tokens = e.data["usage"].value("output_tokens", m.output_tokens);
    }
  }
  if (grammar) {
    EXPECT_TRUE(delta_seen);
    EXPECT_EQ(open, -1);
  }
  return m;
}

void ExpectSame(const Message& got, const Message& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.text, want.text);
  EXPECT_EQ(got.thinking, want.thinking);
  EXPECT_EQ(got.signatures, want.signatures);
  EXPECT_EQ(got.tool_uses, want.tool_uses);
  EXPECT_EQ(got.other_blocks, want.other_blocks);
  EXPECT_EQ(got.stop_reason, want.stop_reason);
  EXPECT_EQ(got.stop_sequence.is_null() ? json() : got.stop_sequence,
            want.stop_sequence.is_null() ? json() : want.stop_sequence);
  EXPECT_EQ(got.output_tokens, want.output_tokens);
}

std::vector<Event> Events(const std::vector<SseEvent>& events) {
  std::vector<Event> out;
  for (const SseEvent& e : events) out.push_back({e.event, json::parse(e.data)});
  return out;
}

TEST(AnthropicMessagesCodecTest, RecordedRequestRoundTripsThroughTheUnifiedModel) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  const std::string body = ReadFile(*dir / kKongRequest);
  absl::StatusOr<ChatRequest> chat = AnthropicMessagesCodec()->ParseRequest(Post(body));
  ASSERT_TRUE(chat.ok()) << chat.status();
  WireRequest wire;
  ASSERT_TRUE(Anthropic()->EncodeRequest(*chat, {}, &wire).ok());
  json want = json::parse(body);
  want.erase("stream");  // false is Anthropic's default: the encoder leaves it out
  EXPECT_EQ(json::parse(wire.body), want);
}

TEST(AnthropicMessagesCodecTest, EveryRecordedResponseRendersBackAsItWas) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::filesystem::path> files = ListFiles(*dir / kVercelDir, ".json");
  ASSERT_FALSE(files.empty());
  std::unique_ptr<Dialect> d = Anthropic();
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string original = ReadFile(file);
    std::string body = original;
    ASSERT_TRUE(d->DecodeResponse(&body).ok());
    ASSERT_TRUE(AnthropicMessagesCodec()->RenderResponse(&body).ok()) << body;
    json got = json::parse(body);
    json want = json::parse(original);
    EXPECT_EQ(got["type"], "message");
    EXPECT_EQ(got["role"], "assistant");
    ExpectSame(FromBody(got), FromBody(want));
    EXPECT_EQ(got["usage"]["input_tokens"], want["usage"]["input_tokens"]);
  }
}

TEST(AnthropicMessagesCodecTest, EveryRecordedStreamRendersBackAsItWas) {
  std::optional<std::filesystem::path> dir = FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  std::vector<std::filesystem::path> files = ListFiles(
      *dir / kVercelDir, ".chunks.txt", {"duplicate-message-start", "spliced-message-start"});
  ASSERT_FALSE(files.empty());
  std::unique_ptr<Dialect> d = Anthropic();
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    // Multi-step recordings hold one message after another: one stream per message.
    std::vector<std::vector<std::string>> messages(1);
    for (const std::string& line : ChunkLines(ReadFile(file))) {
      messages.back().push_back(line);
      if (json::parse(line).value("type", "") == "message_stop") messages.emplace_back();
    }
    if (messages.back().empty()) messages.pop_back();
    for (const std::vector<std::string>& lines : messages) {
      std::vector<Event> original;
      for (const std::string& line : lines) {
        json data = json::parse(line);
        original.push_back({data.value("type", ""), data});
      }
      DecodedStream unified = DecodeStream(*d, SseBodyFromChunkLines(lines, true), Split::kWhole);
      ASSERT_TRUE(unified.status.ok()) << unified.status;
      std::unique_ptr<StreamTranslator> renderer = AnthropicMessagesCodec()->NewStreamRenderer();
      ASSERT_NE(renderer, nullptr);
      std::vector<SseEvent> rendered;
      for (std::string& data : unified.events) {
        ASSERT_TRUE(renderer->Translate(StreamFrame{"", data}, &rendered).ok()) << data;
      }
      ASSERT_TRUE(renderer->Finish(&rendered).ok());
      ExpectSame(FromEvents(Events(rendered), /*grammar=*/true),
                 FromEvents(original, /*grammar=*/false));
    }
  }
}

TEST(AnthropicMessagesCodecTest, ErrorsHaveAnthropicsShapeAndTypes) {
  struct Case {
    absl::Status status;
    const char* type;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("messages[0].content: Field required"),
       "invalid_request_error"},
      {absl::UnauthenticatedError("bad key"), "authentication_error"},
      {absl::PermissionDeniedError("no"), "permission_error"},
      {absl::NotFoundError("no model"), "not_found_error"},
      {absl::ResourceExhaustedError("slow down"), "rate_limit_error"},
      {absl::InternalError("boom"), "api_error"},
      {WithHttpStatus(absl::UnavailableError("busy"), 529), "overloaded_error"},
      {WithHttpStatus(absl::UnavailableError("busy"), 503), "overloaded_error"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    json body = json::parse(AnthropicMessagesCodec()->ErrorBody(c.status));
    EXPECT_EQ(body["type"], "error");
    EXPECT_EQ(body["error"]["type"], c.type);
    EXPECT_EQ(body["error"]["message"], std::string(c.status.message()));
    SseEvent e = AnthropicMessagesCodec()->StreamErrorEvent(c.status);
    EXPECT_EQ(e.event, "error");
    EXPECT_EQ(json::parse(e.data), body);
  }
}

TEST(AnthropicMessagesCodecTest, RequestBlocksMapToTheUnifiedModel) {
  json body = {
      {"model", "claude-x"},
      {"max_tokens", 100},
      {"system", json::array({{{"type", "text"}, {"text", "be brief"},
                               {"cache_control", {{"type", "ephemeral"}}}}})},
      {"metadata", {{"user_id", "u-1"}}},
      {"top_k", 5},
      {"stop_sequences", {"END"}},
      {"messages",
       json::array(
           {{{"role", "user"},
             {"content",
              json::array({{{"type", "text"}, {"text", "see"}},
                           {{"type", "image"},
                            {"source", {{"type", "base64"}, {"media_type", "image/png"},
                                        {"data", "AAAA"}}}},
                           {{"type", "document"}, {"title", "doc"},
                            {"source", {{"type", "base64"}, {"media_type", "application/pdf"},
                                        {"data", "JVBE"}}}}})}},
            {{"role", "assistant"},
             {"content", json::array({{{"type", "thinking"}, {"thinking", "hm"},
                                       {"signature", "sig"}},
                                      {{"type", "tool_use"}, {"id", "t1"}, {"name", "f"},
                                       {"input", {{"a", 1}}}}})}},
            {{"role", "user"},
             {"content", json::array({{{"type", "tool_result"}, {"tool_use_id", "t1"},
                                       {"is_error", true},
                                       {"content", json::array({{{"type", "text"},
                                                                 {"text", "failed"}}})}}})}}})}};
  absl::StatusOr<ChatRequest> chat = AnthropicMessagesCodec()->ParseRequest(Post(body.dump()));
  ASSERT_TRUE(chat.ok()) << chat.status();
  json unified = json::parse(SerializeChatRequest(*chat));
  EXPECT_EQ(unified["user"], "u-1");
  EXPECT_EQ(unified["top_k"], 5);
  EXPECT_EQ(unified["stop"], json({"END"}));
  const json& m = unified["messages"];
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0]["role"], "system");
  EXPECT_EQ(m[0]["content"][0]["cache_control"], json({{"type", "ephemeral"}}));
  EXPECT_EQ(m[1]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
  EXPECT_EQ(m[1]["content"][2]["type"], "file");
  EXPECT_EQ(m[1]["content"][2]["file"]["file_data"], "data:application/pdf;base64,JVBE");
  EXPECT_EQ(m[1]["content"][2]["file"]["filename"], "doc");
  EXPECT_EQ(m[2]["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(json::parse(m[2]["tool_calls"][0]["function"]["arguments"].get<std::string>()),
            json({{"a", 1}}));
  EXPECT_EQ(m[2]["thinking_blocks"][0]["signature"], "sig");
  EXPECT_EQ(m[3]["role"], "tool");
  EXPECT_EQ(m[3]["tool_call_id"], "t1");
  EXPECT_EQ(m[3]["is_error"], true);
  EXPECT_EQ(m[3]["content"][0]["text"], "failed");

  // Back to Anthropic: the same blocks (what a native provider receives).
  WireRequest wire;
  ASSERT_TRUE(Anthropic()->EncodeRequest(*chat, {}, &wire).ok());
  json back = json::parse(wire.body);
  EXPECT_EQ(back["system"], body["system"]);
  EXPECT_EQ(back["messages"], body["messages"]);
  EXPECT_EQ(back["metadata"], body["metadata"]);
  EXPECT_EQ(back["top_k"], 5);
}

TEST(AnthropicMessagesCodecTest, BadRequestsNameTheField) {
  struct Case {
    const char* body;
    const char* path;
  };
  const Case cases[] = {
      {R"({"model":"m","messages":[]})", "max_tokens"},
      {R"({"max_tokens":1,"messages":[]})", "model"},
      {R"({"model":"m","max_tokens":1,"messages":[{"role":"user"}]})", "messages[0].content"},
      {R"({"model":"m","max_tokens":1,"metadata":{"user":"x"},"messages":[{"role":"user","content":"x"}]})",
       "metadata.user"},
      {R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"ftp"}}]}]})",
       "messages[0].content[0].source.type"},
      {R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64","media_type":"application/pdf"}}]}]})",
       "messages[0].content[0].source.data"},
      {R"({"model":"m","max_tokens":1,"tool_choice":{"type":"some"},"messages":[{"role":"user","content":"x"}]})",
       "tool_choice.type"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    absl::StatusOr<ChatRequest> chat = AnthropicMessagesCodec()->ParseRequest(Post(c.body));
    ASSERT_FALSE(chat.ok());
    EXPECT_EQ(HttpStatusForStatus(chat.status()), 400);
    json err = json::parse(AnthropicMessagesCodec()->ErrorBody(chat.status()));
    EXPECT_EQ(err["error"]["type"], "invalid_request_error");
    EXPECT_EQ(err["error"]["message"].get<std::string>().rfind(std::string(c.path) + ":", 0), 0u)
        << err;
  }
}

TEST(AnthropicMessagesCodecTest, MemberOrderAndEscapedNamesDoNotChangeTheRequest) {
  // The same request twice: members in another order, a name and a value written with
  // escapes, whitespace between tokens.
  const char* plain =
      R"({"model":"m","max_tokens":5,"top_k":3,"system":"s","messages":[{"role":"user",)"
      R"("content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]},)"
      R"({"role":"assistant","content":[{"type":"tool_use","id":"t","name":"f",)"
      R"("input":{"b":1,"a":[true]}}]}],"stop_sequences":["x"]})";
  const char* shuffled =
      R"({ "stop_sequences" : ["x"], "messages":[{"content":[{"cache_control":)"
      R"({"type":"ephemeral"},"text":"h\u0069","type":"text"}],"role":"user"},)"
      R"({"content":[{"input":{"b":1, "a":[ true ]},"name":"f","id":"t","type":"tool_use"}],)"
      R"("role":"assistant"}], "system":"s", "top_k":3,"max_t\u006fkens":5,"model":"m" })";
  absl::StatusOr<ChatRequest> a = AnthropicMessagesCodec()->ParseRequest(Post(plain));
  absl::StatusOr<ChatRequest> b = AnthropicMessagesCodec()->ParseRequest(Post(shuffled));
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(json::parse(SerializeChatRequest(*a)), json::parse(SerializeChatRequest(*b)));
  EXPECT_EQ(json::parse(a->messages[2].tool_calls[0].function->arguments),
            json({{"a", {true}}, {"b", 1}}));
}

TEST(AnthropicMessagesCodecTest, RepeatedMembersAreRefusedWithTheirPath) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"model":"m","model":"n","max_tokens":1,"messages":[]})", "model"},
      {R"({"model":"m","max_tokens":1,"messages":[{"role":"user","role":"user",)"
       R"("content":"x"}]})",
       "messages[0].role"},
      {R"({"model":"m","max_tokens":1,"messages":[{"role":"user","content":[)"
       R"({"type":"text","text":"a","text":"b"}]}]})",
       "messages[0].content[0].text"},
  };
  for (const auto& [body, path] : cases) {
    SCOPED_TRACE(body);
    absl::StatusOr<ChatRequest> chat = AnthropicMessagesCodec()->ParseRequest(Post(body));
    ASSERT_FALSE(chat.ok());
    EXPECT_EQ(chat.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(*ErrorParam(chat.status()), path);
    EXPECT_THAT(std::string(chat.status().message()), ::testing::HasSubstr("duplicate key"));
  }
}

TEST(AnthropicMessagesCodecTest, StopSequenceIsReported) {
  const char* unified =
      R"({"id":"c1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,)"
      R"("message":{"role":"assistant","content":"hi"},"finish_reason":"stop",)"
      R"("stop_sequence":"END"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}})";
  std::string body = unified;
  ASSERT_TRUE(AnthropicMessagesCodec()->RenderResponse(&body).ok());
  json got = json::parse(body);
  EXPECT_EQ(got["stop_reason"], "stop_sequence");
  EXPECT_EQ(got["stop_sequence"], "END");
  EXPECT_EQ(got["usage"]["input_tokens"], 3);
  EXPECT_EQ(got["usage"]["output_tokens"], 1);
}

TEST(AnthropicMessagesCodecTest, RegistersTheMessagesEndpoint) {
  Registry registry;
  ASSERT_TRUE(RegisterAnthropicIngressComponent(&registry).ok());
  // The match points into the table: keep it alive while the match is read.
  auto table = registry.endpoints().Table();
  EndpointMatch match = table->Match("POST", "/v1/messages");
  ASSERT_NE(match.endpoint, nullptr);
  EXPECT_EQ(match.endpoint->kind, "messages");
  EXPECT_EQ(match.endpoint->model_call, AnthropicMessagesCodec());
  EXPECT_EQ(RegisterAnthropicIngressComponent(&registry).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(AnthropicMessagesCodecTest, ClientVersionAndBetasReachAnAnthropicUpstream) {
  absl::StatusOr<ChatRequest> chat = AnthropicMessagesCodec()->ParseRequest(
      Post(R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})"));
  ASSERT_TRUE(chat.ok()) << chat.status();
  WireHeaders client = {{"Anthropic-Version", "2024-01-01"},
                        {"anthropic-beta", "prompt-caching-2024-07-31, tools-x"},
                        {"x-api-key", "client-secret"}};
  WireRequest wire;
  DialectCall call;
  call.client_headers = &client;
  ASSERT_TRUE(Anthropic()->EncodeRequest(*chat, call, &wire).ok());
  auto header = [&](std::string_view name) -> std::vector<std::string> {
    std::vector<std::string> values;
    for (const auto& [k, v] : wire.headers) {
      if (k == name) values.push_back(v);
    }
    return values;
  };
  EXPECT_EQ(header("anthropic-version"), std::vector<std::string>{"2024-01-01"});
  EXPECT_EQ(header("anthropic-beta"),
            std::vector<std::string>{"prompt-caching-2024-07-31,tools-x"});
  EXPECT_TRUE(header("x-api-key").empty());  // the client's key is the gateway's, never sent
  // Without the client's header, the configured version.
  WireRequest plain;
  ASSERT_TRUE(Anthropic()->EncodeRequest(*chat, {}, &plain).ok());
  bool found = false;
  for (const auto& [k, v] : plain.headers) {
    if (k == "anthropic-version") {
      found = true;
      EXPECT_EQ(v, "2023-06-01");
    }
  }
  EXPECT_TRUE(found);
}

TEST(AnthropicMessagesCodecTest, NativeRequestSplicesOnlyTheModel) {
  EXPECT_EQ(AnthropicMessagesCodec()->native_dialect(), "anthropic");
  // Whitespace, member order, cache_control and an unknown member: all the client's bytes.
  const std::string body =
      "{ \"max_tokens\" : 5,\n \"model\" :  \"public\" , \"messages\":[{\"role\":\"user\","
      "\"content\":[{\"type\":\"text\",\"text\":\"hi\",\"cache_control\":{\"type\":"
      "\"ephemeral\"}}]}], \"future\": [1.50, {\"model\": \"inner\"}] }";
  DialectCall call;
  call.model = "claude-\"quoted\"";
  call.stream = true;
  WireRequest wire;
  ASSERT_TRUE(Anthropic()->EncodeNativeRequest(body, call, &wire).ok());
  std::string want = body;
  want.replace(want.find("\"public\""), 8, "\"claude-\\\"quoted\\\"\"");
  EXPECT_EQ(wire.body, want);
  EXPECT_EQ(wire.target, "/v1/messages");
  bool accept = false;
  for (const auto& [k, v] : wire.headers) accept = accept || (k == "accept" && v == "text/event-stream");
  EXPECT_TRUE(accept);

  // The same model: the bytes as they are.
  call.model = "public";
  WireRequest same;
  ASSERT_TRUE(Anthropic()->EncodeNativeRequest(body, call, &same).ok());
  EXPECT_EQ(same.body, body);

  WireRequest bad;
  EXPECT_EQ(Anthropic()->EncodeNativeRequest(R"({"messages":[]})", call, &bad).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Anthropic()->EncodeNativeRequest(R"({"model":3})", call, &bad).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Anthropic()->EncodeNativeRequest("[1]", call, &bad).code(),
            absl::StatusCode::kInvalidArgument);
  // Another dialect does not take Anthropic's API natively.
  absl::StatusOr<std::unique_ptr<Dialect>> openai = NewDialect("openai");
  ASSERT_TRUE(openai.ok());
  EXPECT_EQ((*openai)->EncodeNativeRequest(body, call, &bad).code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace modeenvoy
