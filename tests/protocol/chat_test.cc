#include "modeenvoy/protocol/chat.h"

#include <cmath>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/protocol/chat_serialize.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

constexpr std::string_view kMinimal =
    R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]})";

ChatRequest ParseOk(std::string_view json, bool validate = true) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(json, {.validate = validate});
  EXPECT_TRUE(r.ok()) << r.status() << "\n" << json;
  return r.ok() ? *std::move(r) : ChatRequest();
}

// The message of the error from parsing `json`, or "OK".
std::string ParseError(std::string_view json, bool validate = true) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(json, {.validate = validate});
  if (r.ok()) return "OK";
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(r.status().message());
}

// `members` spliced into the minimal request after "messages".
std::string With(std::string_view members) {
  std::string json(kMinimal);
  json.pop_back();
  json += ",";
  json += members;
  json += "}";
  return json;
}

// A request whose only message is `message`.
std::string WithMessage(std::string_view message) {
  return std::string(R"({"model":"m","messages":[)") + std::string(message) + "]}";
}

// Parse, serialize, parse again: the parses must agree and serialization must be a fixed
// point.
void ExpectRoundTrip(std::string_view json, bool validate = false) {
  ChatRequest first = ParseOk(json, validate);
  std::string wire = SerializeChatRequest(first);
  ChatRequest second = ParseOk(wire, validate);
  EXPECT_EQ(first, second) << wire;
  EXPECT_EQ(SerializeChatRequest(second), wire);
}

// --- parsing ------------------------------------------------------------------------------

TEST(ParseChatRequestTest, ParsesMinimalRequest) {
  ChatRequest r = ParseOk(kMinimal);
  EXPECT_EQ(r.model, "gpt-4o");
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, Role::kUser);
  EXPECT_EQ(std::get<std::string>(*r.messages[0].content), "hi");
  EXPECT_FALSE(r.stream.has_value());
  EXPECT_TRUE(r.extra.empty());
}

TEST(ParseChatRequestTest, ParsesEveryModeledTopLevelField) {
  ChatRequest r = ParseOk(With(R"(
    "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false},
    "temperature": 0.7, "top_p": 0.9, "n": 2, "max_tokens": 100,
    "max_completion_tokens": 200, "stop": ["\n\n", "END"], "presence_penalty": -1.5,
    "frequency_penalty": 1.25, "logit_bias": {"50256": -100}, "logprobs": true,
    "top_logprobs": 5, "seed": -42, "user": "u-1",
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
    "tools": [{"type": "function", "function": {"name": "f", "description": "d",
               "parameters": {"type": "object"}, "strict": true}}],
    "tool_choice": {"type": "function", "function": {"name": "f"}},
    "parallel_tool_calls": false, "reasoning_effort": "low", "verbosity": "high",
    "service_tier": "flex", "store": true, "metadata": {"k": "v"},
    "modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "x"},
    "web_search_options": {"search_context_size": "low"}, "prompt_cache_key": "pck",
    "safety_identifier": "sid"
  )"));
  EXPECT_EQ(r.stream, true);
  ASSERT_TRUE(r.stream_options.has_value());
  EXPECT_EQ(r.stream_options->include_usage, true);
  EXPECT_EQ(r.stream_options->include_obfuscation, false);
  EXPECT_EQ(r.temperature, 0.7);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.max_tokens, 100);
  EXPECT_EQ(r.max_completion_tokens, 200);
  EXPECT_EQ(std::get<std::vector<std::string>>(*r.stop),
            (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(r.presence_penalty, -1.5);
  EXPECT_EQ(r.frequency_penalty, 1.25);
  EXPECT_EQ(r.logit_bias, R"({"50256":-100})");
  EXPECT_EQ(r.logprobs, true);
  EXPECT_EQ(r.top_logprobs, 5);
  EXPECT_EQ(r.seed, -42);
  EXPECT_EQ(r.user, "u-1");
  EXPECT_EQ(r.response_format,
            R"({"type":"json_schema","json_schema":{"name":"x","schema":{}}})");
  ASSERT_EQ(r.tools.size(), 1u);
  EXPECT_EQ(r.tools[0].type, "function");
  ASSERT_TRUE(r.tools[0].function.has_value());
  EXPECT_EQ(r.tools[0].function->name, "f");
  EXPECT_EQ(r.tools[0].function->description, "d");
  EXPECT_EQ(r.tools[0].function->parameters, R"({"type":"object"})");
  EXPECT_EQ(r.tools[0].function->strict, true);
  ASSERT_TRUE(r.tool_choice.has_value());
  EXPECT_EQ(r.tool_choice->mode, "");
  EXPECT_EQ(r.tool_choice->object, R"({"type":"function","function":{"name":"f"}})");
  EXPECT_EQ(r.parallel_tool_calls, false);
  EXPECT_EQ(r.reasoning_effort, "low");
  EXPECT_EQ(r.verbosity, "high");
  EXPECT_EQ(r.service_tier, "flex");
  EXPECT_EQ(r.store, true);
  EXPECT_EQ(r.metadata, R"({"k":"v"})");
  EXPECT_EQ(r.modalities, (std::vector<std::string>{"text", "audio"}));
  EXPECT_EQ(r.audio, R"({"voice":"alloy","format":"wav"})");
  EXPECT_EQ(r.prediction, R"({"type":"content","content":"x"})");
  EXPECT_EQ(r.web_search_options, R"({"search_context_size":"low"})");
  EXPECT_EQ(r.prompt_cache_key, "pck");
  EXPECT_EQ(r.safety_identifier, "sid");
  EXPECT_TRUE(r.extra.empty());
}

TEST(ParseChatRequestTest, ParsesDeprecatedFunctionFields) {
  ChatRequest r = ParseOk(With(
      R"("functions":[{"name":"f","parameters":{}}],"function_call":{"name":"f"})"));
  EXPECT_EQ(r.functions, R"([{"name":"f","parameters":{}}])");
  EXPECT_EQ(r.function_call, R"({"name":"f"})");
  EXPECT_EQ(ParseOk(With(R"("functions":[],"function_call":"auto")")).function_call,
            R"("auto")");
}

TEST(ParseChatRequestTest, ParsesEveryMessageShape) {
  ChatRequest r = ParseOk(R"({"model":"m","messages":[
    {"role":"developer","content":"be brief"},
    {"role":"system","content":[{"type":"text","text":"sys"}],"name":"s"},
    {"role":"user","content":[
      {"type":"text","text":"look"},
      {"type":"image_url","image_url":{"url":"https://x/y.png","detail":"low"}},
      {"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}},
      {"type":"file","file":{"file_data":"ZGF0YQ==","filename":"a.pdf"}},
      {"type":"file","file":{"file_id":"file-1"}}]},
    {"role":"assistant","content":null,"refusal":"no","tool_calls":[
      {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]},
    {"role":"assistant","content":[{"type":"text","text":"a"},{"type":"refusal","refusal":"r"}]},
    {"role":"tool","tool_call_id":"call_1","content":"42"},
    {"role":"function","name":"f","content":"old"}]})");
  ASSERT_EQ(r.messages.size(), 7u);
  EXPECT_EQ(r.messages[0].role, Role::kDeveloper);
  EXPECT_EQ(r.messages[1].name, "s");
  const auto& parts = std::get<std::vector<ContentPart>>(*r.messages[2].content);
  ASSERT_EQ(parts.size(), 5u);
  EXPECT_EQ(parts[0].type, ContentPartType::kText);
  EXPECT_EQ(parts[0].text, "look");
  EXPECT_EQ(parts[1].type, ContentPartType::kImageUrl);
  EXPECT_EQ(parts[1].image_url->url, "https://x/y.png");
  EXPECT_EQ(parts[1].image_url->detail, "low");
  EXPECT_EQ(parts[2].input_audio->data, "AAAA");
  EXPECT_EQ(parts[2].input_audio->format, "wav");
  EXPECT_EQ(parts[3].file->file_data, "ZGF0YQ==");
  EXPECT_EQ(parts[3].file->filename, "a.pdf");
  EXPECT_EQ(parts[4].file->file_id, "file-1");
  const Message& assistant = r.messages[3];
  EXPECT_FALSE(assistant.content.has_value());
  EXPECT_EQ(assistant.refusal, "no");
  ASSERT_EQ(assistant.tool_calls.size(), 1u);
  EXPECT_EQ(assistant.tool_calls[0].id, "call_1");
  EXPECT_EQ(assistant.tool_calls[0].function->name, "f");
  EXPECT_EQ(assistant.tool_calls[0].function->arguments, R"({"a":1})");
  const auto& assistant_parts = std::get<std::vector<ContentPart>>(*r.messages[4].content);
  EXPECT_EQ(assistant_parts[1].type, ContentPartType::kRefusal);
  EXPECT_EQ(assistant_parts[1].refusal, "r");
  EXPECT_EQ(r.messages[5].tool_call_id, "call_1");
  EXPECT_EQ(r.messages[6].role, Role::kFunction);
  ExpectRoundTrip(SerializeChatRequest(r), true);
}

TEST(ParseChatRequestTest, NullMeansAbsent) {
  ChatRequest r = ParseOk(With(
      R"("temperature":null,"stop":null,"tools":null,"tool_choice":null,"user":null,)"
      R"("logit_bias":null,"stream_options":null,"modalities":null,"seed":null)"));
  EXPECT_EQ(r, ParseOk(kMinimal));
}

TEST(ParseChatRequestTest, StopKeepsItsForm) {
  EXPECT_EQ(std::get<std::string>(*ParseOk(With(R"("stop":"x")")).stop), "x");
  EXPECT_TRUE(std::get<std::vector<std::string>>(*ParseOk(With(R"("stop":[])")).stop).empty());
  EXPECT_THAT(SerializeChatRequest(ParseOk(With(R"("stop":"x")"))), HasSubstr(R"("stop":"x")"));
  EXPECT_THAT(SerializeChatRequest(ParseOk(With(R"("stop":["x"])"))),
              HasSubstr(R"("stop":["x"])"));
}

TEST(ParseChatRequestTest, ToolChoiceStringOrObject) {
  ChatRequest r = ParseOk(With(
      R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required")"));
  EXPECT_EQ(r.tool_choice->mode, "required");
  EXPECT_EQ(r.tool_choice->object, "");
  EXPECT_EQ(ParseError(With(R"("tool_choice":3)")), "tool_choice: expected string or object, got number");
}

TEST(ParseChatRequestTest, IntegralNumberWithFractionIsAnInteger) {
  EXPECT_EQ(ParseOk(With(R"("max_tokens":100.0)")).max_tokens, 100);
  EXPECT_EQ(ParseOk(With(R"("max_tokens":1e3)")).max_tokens, 1000);
  EXPECT_EQ(ParseOk(With(R"("seed":-9223372036854775808)")).seed,
            std::numeric_limits<int64_t>::min());
}

TEST(ParseChatRequestTest, DecodesEscapesAndUnicode) {
  ChatRequest r = ParseOk(WithMessage(
      R"({"role":"user","content":"a\"b\\c\/d\b\f\n\r\t\u00e9\u4e2d\ud83d\ude00 é"})"));
  EXPECT_EQ(std::get<std::string>(*r.messages[0].content),
            "a\"b\\c/d\b\f\n\r\t\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80 \xC3\xA9");
}

TEST(ParseChatRequestTest, UnpairedSurrogateBecomesReplacementCharacter) {
  ChatRequest r = ParseOk(WithMessage(R"({"role":"user","content":"a\ud83db\ude00c\ud800\ud800"})"));
  EXPECT_EQ(std::get<std::string>(*r.messages[0].content),
            "a\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ParseChatRequestTest, ContentPartTypeMayComeAfterItsPayload) {
  ChatRequest r = ParseOk(WithMessage(
      R"({"role":"user","content":[{"image_url":{"url":"u"},"x":1,"type":"image_url"},)"
      R"({"text":"t","type":"text"}]})"));
  const auto& parts = std::get<std::vector<ContentPart>>(*r.messages[0].content);
  EXPECT_EQ(parts[0].type, ContentPartType::kImageUrl);
  EXPECT_EQ(parts[0].image_url->url, "u");
  EXPECT_THAT(parts[0].extra, ElementsAre(Pair("x", "1")));
  EXPECT_EQ(parts[1].text, "t");
  EXPECT_EQ(ParseError(WithMessage(
                R"({"role":"user","content":[{"image_url":{"url":7},"type":"image_url"}]})")),
            "messages[0].content[0].image_url.url: expected string, got number");
}

TEST(ParseChatRequestTest, StrayPayloadOfAnotherPartTypeIsKeptAsExtra) {
  for (std::string_view part : {
           R"({"type":"text","text":"t","image_url":{"url":"u"}})",
           R"({"image_url":{"url":"u"},"type":"text","text":"t"})",
       }) {
    SCOPED_TRACE(part);
    ChatRequest r = ParseOk(WithMessage(
        std::string(R"({"role":"user","content":[)") + std::string(part) + "]}"));
    const ContentPart& p = std::get<std::vector<ContentPart>>(*r.messages[0].content)[0];
    EXPECT_EQ(p.type, ContentPartType::kText);
    EXPECT_EQ(p.text, "t");
    EXPECT_FALSE(p.image_url.has_value());
    EXPECT_THAT(p.extra, ElementsAre(Pair("image_url", R"({"url":"u"})")));
    ExpectRoundTrip(SerializeChatRequest(r), true);
  }
}

TEST(ParseChatRequestTest, KeepsUnknownFieldsAtEveryLevel) {
  ChatRequest r = ParseOk(R"({
    "model": "m", "x_top": {"nested": [1, 2.50, "s", null, true]},
    "messages": [{"role": "user", "x_msg": 1, "content": [
      {"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}},
      {"type": "image_url", "image_url": {"url": "u", "x_img": "i"}},
      {"type": "input_audio", "input_audio": {"data": "d", "format": "mp3", "x_aud": []}},
      {"type": "file", "file": {"file_id": "f", "x_file": {}}}]},
      {"role": "assistant", "reasoning_content": "hmm", "tool_calls": [
        {"id": "c", "type": "function", "x_call": 2,
         "function": {"name": "f", "arguments": "{}", "x_fn": 3}}]}],
    "tools": [{"type": "function", "x_tool": "t",
               "function": {"name": "f", "x_def": false}}],
    "stream": true, "stream_options": {"include_usage": true, "x_so": 1},
    "x_last": -1.0e-5
  })");
  EXPECT_THAT(r.extra, ElementsAre(Pair("x_top", R"({"nested":[1,2.50,"s",null,true]})"),
                                   Pair("x_last", "-1.0e-5")));
  const Message& user = r.messages[0];
  EXPECT_THAT(user.extra, ElementsAre(Pair("x_msg", "1")));
  const auto& parts = std::get<std::vector<ContentPart>>(*user.content);
  EXPECT_THAT(parts[0].extra, ElementsAre(Pair("cache_control", R"({"type":"ephemeral"})")));
  EXPECT_THAT(parts[1].image_url->extra, ElementsAre(Pair("x_img", R"("i")")));
  EXPECT_THAT(parts[2].input_audio->extra, ElementsAre(Pair("x_aud", "[]")));
  EXPECT_THAT(parts[3].file->extra, ElementsAre(Pair("x_file", "{}")));
  const Message& assistant = r.messages[1];
  EXPECT_THAT(assistant.extra, ElementsAre(Pair("reasoning_content", R"("hmm")")));
  EXPECT_THAT(assistant.tool_calls[0].extra, ElementsAre(Pair("x_call", "2")));
  EXPECT_THAT(assistant.tool_calls[0].function->extra, ElementsAre(Pair("x_fn", "3")));
  EXPECT_THAT(r.tools[0].extra, ElementsAre(Pair("x_tool", R"("t")")));
  EXPECT_THAT(r.tools[0].function->extra, ElementsAre(Pair("x_def", "false")));
  EXPECT_THAT(r.stream_options->extra, ElementsAre(Pair("x_so", "1")));

  // Every unknown member reaches the wire unchanged.
  const std::string wire = SerializeChatRequest(r);
  for (std::string_view expected :
       {R"("x_top":{"nested":[1,2.50,"s",null,true]})", R"("x_last":-1.0e-5)",
        R"("x_msg":1)", R"("cache_control":{"type":"ephemeral"})", R"("x_img":"i")",
        R"("x_aud":[])", R"("x_file":{})", R"("reasoning_content":"hmm")", R"("x_call":2)",
        R"("x_fn":3)", R"("x_tool":"t")", R"("x_def":false)", R"("x_so":1)"}) {
    EXPECT_THAT(wire, HasSubstr(std::string(expected)));
  }
  ExpectRoundTrip(wire, true);
}

TEST(ParseChatRequestTest, RawValuesAreCompactedButTokensKeptExactly) {
  ChatRequest r = ParseOk(With(
      "\"x\" : {\n\t\"a b\" : [ 1.50E+2 , \"\\u00e9 \\n\" ,\r\n {} , [ ] ] }"));
  EXPECT_THAT(r.extra, ElementsAre(Pair("x", R"({"a b":[1.50E+2,"\u00e9 \n",{},[]]})")));
}

TEST(ParseChatRequestTest, UnknownKeyWithEscapesIsDecodedAndReEncoded) {
  ChatRequest r = ParseOk(With(R"("x\"y\u00e9":1)"));
  EXPECT_THAT(r.extra, ElementsAre(Pair("x\"y\xC3\xA9", "1")));
  EXPECT_THAT(SerializeChatRequest(r), HasSubstr("\"x\\\"y\xC3\xA9\":1"));
}

// --- parse errors ---------------------------------------------------------------------------

struct ErrorCase {
  std::string json;
  std::string message;
};

TEST(ParseChatRequestTest, WrongTypesNameThePath) {
  const std::vector<ErrorCase> cases = {
      {R"({"model":1,"messages":[]})", "model: expected string, got number"},
      {R"({"model":null,"messages":[]})", "model: expected string, got null"},
      {R"({"model":"m","messages":{}})", "messages: expected array, got object"},
      {R"({"model":"m","messages":null})", "messages: expected array, got null"},
      {R"({"model":"m","messages":[1]})", "messages[0]: expected object, got number"},
      {With(R"("stream":"yes")"), "stream: expected boolean, got string"},
      {With(R"("stream_options":[])"), "stream_options: expected object, got array"},
      {With(R"("stream_options":{"include_usage":1})"),
       "stream_options.include_usage: expected boolean, got number"},
      {With(R"("temperature":"hot")"), "temperature: expected number, got string"},
      {With(R"("top_p":true)"), "top_p: expected number, got boolean"},
      {With(R"("n":[])"), "n: expected integer, got array"},
      {With(R"("max_tokens":"x")"), "max_tokens: expected integer, got string"},
      {With(R"("max_tokens":1.5)"), "max_tokens: expected integer, got 1.5"},
      {With(R"("max_tokens":1e300)"), "max_tokens: expected integer, got 1e300"},
      {With(R"("seed":9223372036854775808)"),
       "seed: expected integer, got 9223372036854775808"},
      {With(R"("max_completion_tokens":{})"),
       "max_completion_tokens: expected integer, got object"},
      {With(R"("stop":1)"), "stop: expected string or array, got number"},
      {With(R"("stop":["a",2])"), "stop[1]: expected string, got number"},
      {With(R"("presence_penalty":"0")"), "presence_penalty: expected number, got string"},
      {With(R"("frequency_penalty":[])"), "frequency_penalty: expected number, got array"},
      {With(R"("logit_bias":[])"), "logit_bias: expected object, got array"},
      {With(R"("logprobs":0)"), "logprobs: expected boolean, got number"},
      {With(R"("top_logprobs":"1")"), "top_logprobs: expected integer, got string"},
      {With(R"("user":5)"), "user: expected string, got number"},
      {With(R"("response_format":"json")"), "response_format: expected object, got string"},
      {With(R"("tools":{})"), "tools: expected array, got object"},
      {With(R"("tools":[[]])"), "tools[0]: expected object, got array"},
      {With(R"("tools":[{"type":1}])"), "tools[0].type: expected string, got number"},
      {With(R"("tools":[{"type":"function","function":[]}])"),
       "tools[0].function: expected object, got array"},
      {With(R"("tools":[{"type":"function","function":{"name":"f","parameters":"{}"}}])"),
       "tools[0].function.parameters: expected object, got string"},
      {With(R"("tools":[{"type":"function","function":{"name":"f","strict":"yes"}}])"),
       "tools[0].function.strict: expected boolean, got string"},
      {With(R"("tools":[{"type":"function","function":{"name":"f","description":1}}])"),
       "tools[0].function.description: expected string, got number"},
      {With(R"("tools":[{"type":"function","function":{"description":"d"}}])"),
       "tools[0].function.name: required"},
      {With(R"("parallel_tool_calls":"no")"),
       "parallel_tool_calls: expected boolean, got string"},
      {With(R"("store":null,"metadata":1)"), "metadata: expected object, got number"},
      {With(R"("modalities":"text")"), "modalities: expected array, got string"},
      {With(R"("modalities":[1])"), "modalities[0]: expected string, got number"},
      {With(R"("audio":"alloy")"), "audio: expected object, got string"},
      {With(R"("prediction":[])"), "prediction: expected object, got array"},
      {With(R"("web_search_options":1)"), "web_search_options: expected object, got number"},
      {With(R"("functions":{})"), "functions: expected array, got object"},
      {With(R"("reasoning_effort":1)"), "reasoning_effort: expected string, got number"},
      {With(R"("tool_choice":"")"), "tool_choice: must not be empty"},
      {WithMessage(R"({"content":"x"})"), "messages[0].role: required"},
      {WithMessage(R"({"role":"bot","content":"x"})"), "messages[0].role: unknown role \"bot\""},
      {WithMessage(R"({"role":null,"content":"x"})"), "messages[0].role: expected string, got null"},
      {WithMessage(R"({"role":"user","content":1})"),
       "messages[0].content: expected string or array, got number"},
      {WithMessage(R"({"role":"user","content":[1]})"),
       "messages[0].content[0]: expected object, got number"},
      {WithMessage(R"({"role":"user","content":"x","name":1})"),
       "messages[0].name: expected string, got number"},
      {WithMessage(R"({"role":"tool","content":"x","tool_call_id":1})"),
       "messages[0].tool_call_id: expected string, got number"},
      {WithMessage(R"({"role":"assistant","refusal":1})"),
       "messages[0].refusal: expected string, got number"},
      {WithMessage(R"({"role":"assistant","tool_calls":{}})"),
       "messages[0].tool_calls: expected array, got object"},
      {WithMessage(R"({"role":"assistant","tool_calls":[{"id":1}]})"),
       "messages[0].tool_calls[0].id: expected string, got number"},
      {WithMessage(R"({"role":"assistant","tool_calls":[{"id":"c","function":{"name":"f","arguments":{}}}]})"),
       "messages[0].tool_calls[0].function.arguments: expected string, got object"},
      {WithMessage(R"({"role":"user","content":[{"type":"foo"}]})"),
       "messages[0].content[0].type: unknown content part type \"foo\""},
      {WithMessage(R"({"role":"user","content":[{"text":"x"},{"type":"text","text":"y"}]})"),
       "messages[0].content[0].type: required"},
      {WithMessage(R"({"role":"user","content":[{"type":7}]})"),
       "messages[0].content[0].type: expected string, got number"},
      {WithMessage(R"({"role":"user","content":[{"type":"text"}]})"),
       "messages[0].content[0].text: required"},
      {WithMessage(R"({"role":"user","content":[{"type":"text","text":null}]})"),
       "messages[0].content[0].text: expected string, got null"},
      {WithMessage(R"({"role":"user","content":[{"type":"image_url","image_url":"u"}]})"),
       "messages[0].content[0].image_url: expected object, got string"},
      {WithMessage(R"({"role":"user","content":[{"type":"image_url","image_url":{}}]})"),
       "messages[0].content[0].image_url.url: required"},
      {WithMessage(R"({"role":"user","content":[{"type":"image_url","image_url":{"url":"u","detail":1}}]})"),
       "messages[0].content[0].image_url.detail: expected string, got number"},
      {WithMessage(R"({"role":"user","content":[{"type":"input_audio","input_audio":{"data":"d"}}]})"),
       "messages[0].content[0].input_audio.format: required"},
      {WithMessage(R"({"role":"user","content":[{"type":"file","file":{"file_id":2}}]})"),
       "messages[0].content[0].file.file_id: expected string, got number"},
      {WithMessage(R"({"role":"assistant","content":[{"type":"refusal"}]})"),
       "messages[0].content[0].refusal: required"},
      {R"([])", "body: expected a JSON object, got array"},
      {R"("x")", "body: expected a JSON object, got string"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(ParseError(c.json, /*validate=*/false), c.message) << c.json;
  }
}

TEST(ParseChatRequestTest, ErrorsCarryThePathAsParam) {
  absl::StatusOr<ChatRequest> r = ParseChatRequest(
      WithMessage(R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"foo"}]})"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(ErrorParam(r.status()), "messages[0].content[1].type");
  EXPECT_EQ(HttpStatusForStatus(r.status()), 400);
}

TEST(ParseChatRequestTest, DuplicateKeysAreRejected) {
  const std::vector<ErrorCase> cases = {
      {R"({"model":"a","model":"b","messages":[]})", "model: duplicate key"},
      {With(R"("x":1,"x":2)"), "x: duplicate key"},
      {WithMessage(R"({"role":"user","role":"user","content":"x"})"),
       "messages[0].role: duplicate key"},
      {WithMessage(R"({"role":"user","content":[{"type":"text","text":"a","type":"text"}]})"),
       "messages[0].content[0].type: duplicate key"},
      {WithMessage(R"({"role":"user","content":[{"text":"a","text":"b","type":"text"}]})"),
       "messages[0].content[0].text: duplicate key"},
      {With(R"("tools":[{"type":"function","function":{"name":"f","name":"g"}}])"),
       "tools[0].function.name: duplicate key"},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(ParseError(c.json, /*validate=*/false), c.message) << c.json;
  }
}

TEST(ParseChatRequestTest, InvalidJsonNamesTheByteOffset) {
  const std::vector<ErrorCase> cases = {
      {"", "body: invalid JSON at byte 0: unexpected end of input"},
      {"   ", "body: invalid JSON at byte 3: unexpected end of input"},
      {"{", "body: invalid JSON at byte 1: unexpected end of input"},
      {R"({"model":"m",})", "body: invalid JSON at byte 13: expected a member name in double quotes"},
      {R"({"model" "m"})", "body: invalid JSON at byte 9: expected ':'"},
      {R"({"model":"m" "messages":[]})", "body: invalid JSON at byte 13: expected ',' or '}'"},
      {R"({"model":"m","messages":[}])", "body: invalid JSON at byte 25: unexpected character '}'"},
      {R"({"model":"m","x":[1,]})", "body: invalid JSON at byte 20: unexpected character ']'"},
      {R"({"model":"m","x":[1 2]})", "body: invalid JSON at byte 20: expected ',' or ']'"},
      {R"({"model":'m'})", "body: invalid JSON at byte 9: unexpected character '''"},
      {R"({"model":"m"} x)", "body: invalid JSON at byte 14: unexpected data after the JSON value"},
      {R"({"model":"m"}{})", "body: invalid JSON at byte 13: unexpected data after the JSON value"},
      {R"({"x":01})", "body: invalid JSON at byte 6: expected ',' or '}'"},
      {R"({"x":-})", "body: invalid JSON at byte 6: invalid number"},
      {R"({"x":1.})", "body: invalid JSON at byte 7: invalid number: expected a digit after '.'"},
      {R"({"x":1e})", "body: invalid JSON at byte 7: invalid number: expected an exponent digit"},
      {R"({"x":+1})", "body: invalid JSON at byte 5: unexpected character '+'"},
      {R"({"x":[1e999]})", "body: invalid JSON at byte 6: number out of range"},
      {R"({"temperature":-1E+400})", "body: invalid JSON at byte 15: number out of range"},
      {R"({"x":.5})", "body: invalid JSON at byte 5: unexpected character '.'"},
      {R"({"x":NaN})", "body: invalid JSON at byte 5: unexpected character 'N'"},
      {R"({"x":tru})", "body: invalid JSON at byte 5: unexpected character 't'"},
      {R"({"x":nul})", "body: invalid JSON at byte 5: unexpected character 'n'"},
      {R"({"x":"a\x"})", "body: invalid JSON at byte 7: invalid escape in string"},
      {R"({"x":"\u12"})", "body: invalid JSON at byte 6: invalid \\u escape"},
      {R"({"x":"\u12G4"})", "body: invalid JSON at byte 6: invalid \\u escape"},
      {R"({"x":"abc)", "body: invalid JSON at byte 9: unterminated string"},
      {std::string("{\"x\":\"a\nb\"}"), "body: invalid JSON at byte 7: unescaped control character in string"},
      {std::string("{\"x\":\"a\0b\"}", 11), "body: invalid JSON at byte 7: unescaped control character in string"},
      {std::string("\xEF\xBB{}"), "body: invalid JSON at byte 0: unexpected byte 0xef"},
      {std::string("{}\xEF\xBB\xBF"), "body: invalid JSON at byte 2: unexpected data after the JSON value"},
      {R"({model:"m"})", "body: invalid JSON at byte 1: expected a member name in double quotes"},
      {R"({"model":"m",/*c*/"messages":[]})", "body: invalid JSON at byte 13: expected a member name in double quotes"},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<ChatRequest> r = ParseChatRequest(c.json, {.validate = false});
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().message(), c.message) << c.json;
    EXPECT_EQ(ErrorParam(r.status()), "body");
  }
}

TEST(ParseChatRequestTest, IgnoresALeadingByteOrderMark) {
  EXPECT_EQ(ParseOk(std::string("\xEF\xBB\xBF") + std::string(kMinimal)), ParseOk(kMinimal));
}

TEST(ParseChatRequestTest, RejectsInvalidUtf8Anywhere) {
  for (std::string_view bad : {"\x80", "\xC0\xAF", "\xC3", "\xE0\x80\xAF", "\xED\xA0\x80",
                               "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF"}) {
    const std::string in_value = WithMessage(
        std::string(R"({"role":"user","content":"ok)") + std::string(bad) + "\"}");
    EXPECT_THAT(ParseError(in_value), HasSubstr("invalid UTF-8 in string")) << in_value;
    const std::string in_raw = With(std::string(R"("x":["a)") + std::string(bad) + "\"]");
    EXPECT_THAT(ParseError(in_raw), HasSubstr("invalid UTF-8 in string"));
    const std::string in_key = With(std::string(R"(")") + std::string(bad) + "\":1");
    EXPECT_THAT(ParseError(in_key), HasSubstr("invalid UTF-8 in string"));
  }
  // The longest valid sequences are fine.
  ParseOk(WithMessage("{\"role\":\"user\",\"content\":\"\xF4\x8F\xBF\xBF\xEF\xBF\xBF\xDF\xBF\"}"));
}

TEST(ParseChatRequestTest, NestingIsBounded) {
  auto nested = [](int depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  // The request object itself is one level.
  ParseOk(With("\"x\":" + nested(kMaxJsonDepth - 1)));
  EXPECT_THAT(ParseError(With("\"x\":" + nested(kMaxJsonDepth))),
              HasSubstr("nesting deeper than 128 levels"));
  EXPECT_THAT(ParseError(With("\"x\":" + nested(100000))),
              HasSubstr("nesting deeper than 128 levels"));
}

TEST(ParseChatRequestTest, ValidationCanBeTurnedOff) {
  const std::string no_model = R"({"messages":[{"role":"user","content":"hi"}]})";
  EXPECT_EQ(ParseError(no_model), "model: must be a non-empty string");
  ChatRequest r = ParseOk(no_model, /*validate=*/false);
  EXPECT_EQ(r.model, "");
  // Type errors are reported either way.
  EXPECT_EQ(ParseError(R"({"messages":5})", false), "messages: expected array, got number");
}

// --- validation -----------------------------------------------------------------------------

TEST(ValidateChatRequestTest, AcceptsValidRequests) {
  EXPECT_TRUE(ValidateChatRequest(ParseOk(kMinimal)).ok());
  ChatRequest r = ParseOk(kMinimal);
  r.temperature = 0;
  r.top_p = 1;
  r.presence_penalty = -2;
  r.frequency_penalty = 2;
  r.n = 1;
  r.max_tokens = 1;
  r.logprobs = true;
  r.top_logprobs = 20;
  EXPECT_TRUE(ValidateChatRequest(r).ok());
}

TEST(ValidateChatRequestTest, SemanticErrorsNameThePath) {
  const std::vector<ErrorCase> cases = {
      {R"({"model":"","messages":[{"role":"user","content":"x"}]})",
       "model: must be a non-empty string"},
      {R"({"model":"m","messages":[]})", "messages: must not be empty"},
      {With(R"("temperature":3.5)"), "temperature: must be between 0 and 2, got 3.5"},
      {With(R"("temperature":-0.1)"), "temperature: must be between 0 and 2, got -0.1"},
      {With(R"("top_p":1.5)"), "top_p: must be between 0 and 1, got 1.5"},
      {With(R"("presence_penalty":-2.5)"), "presence_penalty: must be between -2 and 2, got -2.5"},
      {With(R"("frequency_penalty":2.01)"), "frequency_penalty: must be between -2 and 2, got 2.01"},
      {With(R"("n":0)"), "n: must be >= 1, got 0"},
      {With(R"("max_tokens":0)"), "max_tokens: must be >= 1, got 0"},
      {With(R"("max_completion_tokens":-5)"), "max_completion_tokens: must be >= 1, got -5"},
      {With(R"("logprobs":true,"top_logprobs":21)"), "top_logprobs: must be between 0 and 20, got 21"},
      {With(R"("top_logprobs":2)"), "top_logprobs: requires logprobs to be true"},
      {With(R"("stream_options":{"include_usage":true})"),
       "stream_options: only allowed when stream is true"},
      {With(R"("stop":"")"), "stop: must not be empty"},
      {With(R"("stop":["a",""])"), "stop[1]: must not be empty"},
      {With(R"("tool_choice":"auto")"), "tool_choice: only allowed when tools are specified"},
      {With(R"("tool_choice":{"type":"function","function":{"name":"f"}})"),
       "tool_choice: only allowed when tools are specified"},
      {With(R"("tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"any")"),
       "tool_choice: must be \"none\", \"auto\", \"required\" or an object, got \"any\""},
      {With(R"("parallel_tool_calls":true)"),
       "parallel_tool_calls: only allowed when tools are specified"},
      {With(R"("tools":[{"type":"function"}])"), "tools[0].function: required for type \"function\""},
      {With(R"("tools":[{"type":""}])"), "tools[0].type: must not be empty"},
      {With(R"("tools":[{"type":"function","function":{"name":""}}])"),
       "tools[0].function.name: must not be empty"},
      {With(R"("modalities":[""])"), "modalities[0]: must not be empty"},
      {WithMessage(R"({"role":"system"})"), "messages[0].content: required in system messages"},
      {WithMessage(R"({"role":"developer","content":null})"),
       "messages[0].content: required in developer messages"},
      {WithMessage(R"({"role":"user"})"), "messages[0].content: required in user messages"},
      {WithMessage(R"({"role":"assistant"})"),
       "messages[0].content: required in assistant messages without tool_calls"},
      {WithMessage(R"({"role":"tool","content":"x"})"),
       "messages[0].tool_call_id: required in tool messages"},
      {WithMessage(R"({"role":"tool","content":"x","tool_call_id":""})"),
       "messages[0].tool_call_id: required in tool messages"},
      {WithMessage(R"({"role":"user","content":"x","tool_call_id":"c"})"),
       "messages[0].tool_call_id: only allowed in tool messages"},
      {WithMessage(R"({"role":"function","content":"x"})"),
       "messages[0].name: required in function messages"},
      {WithMessage(R"({"role":"user","content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]})"),
       "messages[0].tool_calls: only allowed in assistant messages"},
      {WithMessage(R"({"role":"user","content":"x","refusal":"r"})"),
       "messages[0].refusal: only allowed in assistant messages"},
      {WithMessage(R"({"role":"assistant","tool_calls":[{"id":"","type":"function","function":{"name":"f","arguments":"{}"}}]})"),
       "messages[0].tool_calls[0].id: must not be empty"},
      {WithMessage(R"({"role":"assistant","tool_calls":[{"id":"c","type":"function"}]})"),
       "messages[0].tool_calls[0].function: required for type \"function\""},
      {WithMessage(R"({"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"","arguments":"{}"}}]})"),
       "messages[0].tool_calls[0].function.name: must not be empty"},
      {WithMessage(R"({"role":"system","content":[{"type":"image_url","image_url":{"url":"u"}}]})"),
       "messages[0].content[0].type: \"image_url\" parts are not allowed in system messages"},
      {WithMessage(R"({"role":"tool","tool_call_id":"c","content":[{"type":"input_audio","input_audio":{"data":"d","format":"wav"}}]})"),
       "messages[0].content[0].type: \"input_audio\" parts are not allowed in tool messages"},
      {WithMessage(R"({"role":"user","content":[{"type":"refusal","refusal":"r"}]})"),
       "messages[0].content[0].type: \"refusal\" parts are not allowed in user messages"},
      {WithMessage(R"({"role":"assistant","content":[{"type":"file","file":{"file_id":"f"}}]})"),
       "messages[0].content[0].type: \"file\" parts are not allowed in assistant messages"},
      {WithMessage(R"({"role":"user","content":[{"type":"image_url","image_url":{"url":""}}]})"),
       "messages[0].content[0].image_url.url: must not be empty"},
      {WithMessage(R"({"role":"user","content":[{"type":"image_url","image_url":{"url":"u","detail":"ultra"}}]})"),
       "messages[0].content[0].image_url.detail: must be one of \"auto\", \"low\", \"high\", got \"ultra\""},
      {WithMessage(R"({"role":"user","content":[{"type":"input_audio","input_audio":{"data":"","format":"wav"}}]})"),
       "messages[0].content[0].input_audio.data: must not be empty"},
      {WithMessage(R"({"role":"user","content":[{"type":"input_audio","input_audio":{"data":"d","format":"ogg"}}]})"),
       "messages[0].content[0].input_audio.format: must be one of \"wav\", \"mp3\", got \"ogg\""},
      {WithMessage(R"({"role":"user","content":[{"type":"file","file":{"filename":"a"}}]})"),
       "messages[0].content[0].file: needs \"file_data\" or \"file_id\""},
  };
  for (const ErrorCase& c : cases) {
    EXPECT_EQ(ParseError(c.json), c.message) << c.json;
    // The same check through ValidateChatRequest on the unvalidated parse.
    absl::StatusOr<ChatRequest> r = ParseChatRequest(c.json, {.validate = false});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(ValidateChatRequest(*r).message(), c.message);
  }
}

TEST(ValidateChatRequestTest, AssistantMayCarryOnlyToolCallsOrFunctionCall) {
  ParseOk(WithMessage(R"({"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]})"));
  ParseOk(WithMessage(R"({"role":"assistant","function_call":{"name":"f","arguments":"{}"}})"));
  ParseOk(WithMessage(R"({"role":"assistant","content":null,"audio":{"id":"a1"}})"));
  ParseOk(WithMessage(R"({"role":"assistant","tool_calls":[{"id":"c","type":"custom","custom":{"name":"x","input":"y"}}]})"));
  ParseOk(With(R"("tools":[{"type":"custom","custom":{"name":"x"}}],"tool_choice":"required")"));
  ParseOk(With(R"("tool_choice":"none")"));
}

TEST(ValidateChatRequestTest, NonFiniteNumbersAreOutOfRange) {
  ChatRequest r = ParseOk(kMinimal);
  r.temperature = std::nan("");
  EXPECT_EQ(ValidateChatRequest(r).message(), "temperature: must be between 0 and 2, got nan");
  r.temperature = std::numeric_limits<double>::infinity();
  EXPECT_EQ(ValidateChatRequest(r).message(), "temperature: must be between 0 and 2, got inf");
}

TEST(ValidateChatRequestTest, ChecksHandBuiltRawJsonAndExtra) {
  ChatRequest base = ParseOk(kMinimal);
  struct Case {
    void (*mutate)(ChatRequest&);
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](ChatRequest& r) { r.response_format = "{not json"; }, "response_format: not valid JSON"},
      {[](ChatRequest& r) { r.response_format = "[]"; },
       "response_format: expected object, got array"},
      {[](ChatRequest& r) { r.logit_bias = ""; }, "logit_bias: not valid JSON"},
      {[](ChatRequest& r) { r.metadata = "{} {}"; }, "metadata: not valid JSON"},
      {[](ChatRequest& r) { r.functions = "{}"; }, "functions: expected array, got object"},
      {[](ChatRequest& r) { r.extra.emplace_back("model", "\"x\""); },
       "model: extra member duplicates a modeled field"},
      {[](ChatRequest& r) { r.extra.emplace_back("x", "1"); r.extra.emplace_back("x", "2"); },
       "x: duplicate key"},
      {[](ChatRequest& r) { r.extra.emplace_back("x", "nope"); }, "x: not valid JSON"},
      {[](ChatRequest& r) { r.messages[0].extra.emplace_back("content", "\"x\""); },
       "messages[0].content: extra member duplicates a modeled field"},
      {[](ChatRequest& r) {
         r.tools.push_back(Tool{});
         r.tools[0].function.emplace().name = "f";
         r.tools[0].function->parameters = "[1]";
       },
       "tools[0].function.parameters: expected object, got array"},
      {[](ChatRequest& r) {
         r.tools.push_back(Tool{});
         r.tools[0].function.emplace().name = "f";
         r.tool_choice = ToolChoice{.mode = "", .object = "\"f\""};
       },
       "tool_choice: expected object, got string"},
      {[](ChatRequest& r) { r.tool_choice = ToolChoice{}; },
       "tool_choice: has neither a mode nor an object"},
      {[](ChatRequest& r) {
         ContentPart part;
         part.type = ContentPartType::kText;
         part.text = "t";
         part.image_url.emplace().url = "u";
         r.messages[0].content = std::vector<ContentPart>{part};
       },
       "messages[0].content[0].image_url: not allowed in a \"text\" part"},
      {[](ChatRequest& r) {
         ContentPart part;
         part.type = ContentPartType::kImageUrl;
         r.messages[0].content = std::vector<ContentPart>{part};
       },
       "messages[0].content[0].image_url: required"},
      {[](ChatRequest& r) {
         ContentPart part;
         part.type = ContentPartType::kOther;
         r.messages[0].content = std::vector<ContentPart>{part};
       },
       "messages[0].content[0].type: unknown content part type"},
      {[](ChatRequest& r) {
         ContentPart part;
         part.text = "t";
         part.extra.emplace_back("text", "\"u\"");
         r.messages[0].content = std::vector<ContentPart>{part};
       },
       "messages[0].content[0].text: extra member duplicates a modeled field"},
  };
  for (const Case& c : cases) {
    ChatRequest r = base;
    c.mutate(r);
    EXPECT_EQ(ValidateChatRequest(r).message(), c.message);
  }
}

// --- serialization --------------------------------------------------------------------------

TEST(SerializeChatRequestTest, WritesCompactJsonInCanonicalOrder) {
  ChatRequest r = ParseOk(R"({ "zz": 1, "temperature": 0.5, "stream": true,
      "messages": [ { "content": "hi", "role": "user" } ], "model": "m" })");
  EXPECT_EQ(SerializeChatRequest(r),
            R"({"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,)"
            R"("temperature":0.5,"zz":1})");
}

TEST(SerializeChatRequestTest, BuildsFromStructs) {
  ChatRequest r;
  r.model = "gpt-4o-mini";
  r.messages.push_back(MakeMessage(Role::kSystem, "be terse"));
  r.messages.push_back(MakeMessage(Role::kUser, "2+2?"));
  r.max_completion_tokens = 16;
  r.stop = "\n";
  r.extra.emplace_back("x_gateway", R"({"route":"a"})");
  ASSERT_TRUE(ValidateChatRequest(r).ok()) << ValidateChatRequest(r);
  EXPECT_EQ(SerializeChatRequest(r),
            R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"be terse"},)"
            R"({"role":"user","content":"2+2?"}],"max_completion_tokens":16,"stop":"\n",)"
            R"("x_gateway":{"route":"a"}})");
}

TEST(SerializeChatRequestTest, EscapesStringsAndReplacesInvalidUtf8) {
  ChatRequest r;
  r.model = "m";
  r.messages.push_back(MakeMessage(
      Role::kUser, std::string("q\"b\\s/\x01\x1f\x7f\n\t\xC3\xA9 bad:\xFF\xC3 end")));
  const std::string wire = SerializeChatRequest(r);
  EXPECT_THAT(wire, HasSubstr("\"q\\\"b\\\\s/\\u0001\\u001f\x7f\\n\\t\xC3\xA9 bad:"
                              "\xEF\xBF\xBD\xEF\xBF\xBD end\""));
  ParseOk(wire);
}

TEST(SerializeChatRequestTest, DoublesRoundTripExactly) {
  for (double v : {0.0, 0.1, 0.7, 1.0, 1.9999999999999998, 1e-300, 5e-324, 123456789.125}) {
    ChatRequest r = ParseOk(kMinimal);
    r.temperature = v;
    ChatRequest back = ParseOk(SerializeChatRequest(r), /*validate=*/false);
    EXPECT_EQ(back.temperature, v);
  }
  ChatRequest r = ParseOk(kMinimal);
  r.temperature = std::numeric_limits<double>::quiet_NaN();
  EXPECT_THAT(SerializeChatRequest(r), HasSubstr(R"("temperature":null)"));
}

TEST(SerializeChatRequestTest, EmptyArraysReadBackAsAbsent) {
  ChatRequest r = ParseOk(With(R"("tools":[])"));
  EXPECT_TRUE(r.tools.empty());
  EXPECT_THAT(SerializeChatRequest(r), Not(HasSubstr("tools")));
  ChatRequest c = ParseOk(WithMessage(R"({"role":"user","content":[]})"));
  EXPECT_TRUE(std::get<std::vector<ContentPart>>(*c.messages[0].content).empty());
  EXPECT_THAT(SerializeChatRequest(c), HasSubstr(R"("content":[])"));
}

TEST(SerializeChatRequestTest, RoundTripsAssortedRequests) {
  for (std::string_view json : {
           kMinimal,
           std::string_view(R"({"model":"m","messages":[{"role":"user","content":""}],"n":1})"),
           std::string_view(R"({"model":"m","messages":[{"role":"assistant","content":[]}]})"),
           std::string_view(R"({"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"allowed_tools","allowed_tools":{"mode":"auto","tools":[]}}})"),
           std::string_view(R"({"model":"m","messages":[{"role":"user","content":[{"b":2,"type":"text","a":1,"text":"t"}]}],"stop":[]})"),
       }) {
    SCOPED_TRACE(json);
    ExpectRoundTrip(json);
  }
}

// --- responses ------------------------------------------------------------------------------

TEST(ChatCompletionTest, ParsesAndSerializesACompletion) {
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(R"({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o", "system_fingerprint": "fp_1", "service_tier": "default",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi",
                 "refusal": null, "annotations": []}, "logprobs": null,
                 "finish_reason": "stop", "content_filter_results": {}},
                {"index": 1, "message": {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "c", "type": "function",
                   "function": {"name": "f", "arguments": "{}"}}]},
                 "logprobs": {"content": []}, "finish_reason": "tool_calls"}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
              "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0,
                 "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 1,
                 "x_detail": 9}, "x_usage": 1},
    "x_top": "t"
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->id, "chatcmpl-1");
  EXPECT_EQ(c->created, 1700000000);
  EXPECT_EQ(c->system_fingerprint, "fp_1");
  EXPECT_EQ(c->service_tier, "default");
  ASSERT_EQ(c->choices.size(), 2u);
  EXPECT_EQ(c->choices[0].message.role, Role::kAssistant);
  EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content), "hi");
  EXPECT_THAT(c->choices[0].message.extra, ElementsAre(Pair("annotations", "[]")));
  EXPECT_THAT(c->choices[0].extra, ElementsAre(Pair("content_filter_results", "{}")));
  EXPECT_EQ(c->choices[0].finish_reason, "stop");
  EXPECT_FALSE(c->choices[0].logprobs.has_value());
  EXPECT_EQ(c->choices[1].logprobs, R"({"content":[]})");
  EXPECT_EQ(c->choices[1].message.tool_calls[0].function->name, "f");
  ASSERT_TRUE(c->usage.has_value());
  EXPECT_EQ(c->usage->prompt_tokens, 10);
  EXPECT_EQ(c->usage->total_tokens, 15);
  EXPECT_EQ(c->usage->prompt_tokens_details->cached_tokens, 4);
  EXPECT_EQ(c->usage->completion_tokens_details->reasoning_tokens, 2);
  EXPECT_EQ(c->usage->completion_tokens_details->rejected_prediction_tokens, 1);
  EXPECT_THAT(c->usage->completion_tokens_details->extra, ElementsAre(Pair("x_detail", "9")));
  EXPECT_THAT(c->usage->extra, ElementsAre(Pair("x_usage", "1")));
  EXPECT_THAT(c->extra, ElementsAre(Pair("x_top", R"("t")")));

  const std::string wire = SerializeChatCompletion(*c);
  EXPECT_THAT(wire, HasSubstr(R"("message":{"role":"assistant","content":null,"tool_calls")"));
  EXPECT_THAT(wire, HasSubstr(R"("logprobs":null,"finish_reason":"stop")"));
  absl::StatusOr<ChatCompletion> back = ParseChatCompletion(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, *c);
}

TEST(ChatCompletionTest, MissingMembersKeepDefaults) {
  absl::StatusOr<ChatCompletion> c =
      ParseChatCompletion(R"({"choices":[{"message":{"content":"x"}}],"id":null})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->object, "chat.completion");
  EXPECT_EQ(c->id, "");
  EXPECT_EQ(c->choices[0].message.role, Role::kAssistant);
  EXPECT_FALSE(c->usage.has_value());
}

TEST(ChatCompletionTest, KeepsUnknownContentPartTypesInResponses) {
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(R"({"choices":[{"message":{
      "role":"assistant","content":[{"thinking":[{"type":"text","text":"hmm"}],"type":"thinking"},
      {"type":"text","text":"4"}]}}]})");
  ASSERT_TRUE(c.ok()) << c.status();
  const auto& parts = std::get<std::vector<ContentPart>>(*c->choices[0].message.content);
  EXPECT_EQ(parts[0].type, ContentPartType::kOther);
  EXPECT_THAT(parts[0].extra, ElementsAre(Pair("type", R"("thinking")"),
                                          Pair("thinking", R"([{"type":"text","text":"hmm"}])")));
  EXPECT_EQ(parts[1].text, "4");
  absl::StatusOr<ChatCompletion> back = ParseChatCompletion(SerializeChatCompletion(*c));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, *c);
}

TEST(ChatCompletionTest, TypeErrorsNameThePath) {
  const std::vector<ErrorCase> cases = {
      {R"({"created":"now"})", "created: expected integer, got string"},
      {R"({"choices":[{"index":"0"}]})", "choices[0].index: expected integer, got string"},
      {R"({"choices":[{"message":{"role":"robot"}}]})",
       "choices[0].message.role: unknown role \"robot\""},
      {R"({"choices":[{"message":{"content":5}}]})",
       "choices[0].message.content: expected string or array, got number"},
      {R"({"usage":{"prompt_tokens":1.5}})", "usage.prompt_tokens: expected integer, got 1.5"},
      {R"({"usage":{"prompt_tokens_details":{"cached_tokens":"1"}}})",
       "usage.prompt_tokens_details.cached_tokens: expected integer, got string"},
      {R"({"choices":[{"finish_reason":1}]})",
       "choices[0].finish_reason: expected string, got number"},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<ChatCompletion> r = ParseChatCompletion(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(ChatCompletionChunkTest, ParsesAndSerializesChunks) {
  absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(
      R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",)"
      R"("choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null,)"
      R"("tool_calls":[{"index":0,"id":"call","type":"function","function":{"name":"f","arguments":""}},)"
      R"({"index":1,"function":{"arguments":"{\"a\""}}],"reasoning_content":"r"},)"
      R"("logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"abc"})");
  ASSERT_TRUE(c.ok()) << c.status();
  const ChunkChoice& choice = c->choices[0];
  EXPECT_EQ(choice.delta.role, Role::kAssistant);
  EXPECT_EQ(choice.delta.content, "");
  EXPECT_FALSE(choice.delta.refusal.has_value());
  ASSERT_EQ(choice.delta.tool_calls.size(), 2u);
  EXPECT_EQ(choice.delta.tool_calls[0].id, "call");
  EXPECT_EQ(choice.delta.tool_calls[0].function->name, "f");
  EXPECT_EQ(choice.delta.tool_calls[1].index, 1);
  EXPECT_FALSE(choice.delta.tool_calls[1].id.has_value());
  EXPECT_EQ(choice.delta.tool_calls[1].function->arguments, "{\"a\"");
  EXPECT_THAT(choice.delta.extra, ElementsAre(Pair("reasoning_content", R"("r")")));
  EXPECT_FALSE(c->usage.has_value());
  EXPECT_THAT(c->extra, ElementsAre(Pair("obfuscation", R"("abc")")));
  const std::string wire = SerializeChatCompletionChunk(*c);
  EXPECT_EQ(wire,
            R"({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",)"
            R"("choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[)"
            R"({"index":0,"id":"call","type":"function","function":{"name":"f","arguments":""}},)"
            R"({"index":1,"function":{"arguments":"{\"a\""}}],"reasoning_content":"r"},)"
            R"("logprobs":null,"finish_reason":null}],"obfuscation":"abc"})");
  EXPECT_EQ(*ParseChatCompletionChunk(wire), *c);
}

TEST(ChatCompletionChunkTest, UsageChunkHasNoChoices) {
  absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(
      R"({"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->choices.empty());
  EXPECT_EQ(c->usage->total_tokens, 7);
  EXPECT_THAT(SerializeChatCompletionChunk(*c),
              HasSubstr(R"("choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})"));
}

TEST(ChatCompletionChunkTest, NonStringDeltaContentIsKeptVerbatim) {
  const std::string json =
      R"({"id":"x","choices":[{"index":0,"delta":{"content":[{"type":"thinking","thinking":[]}]}}]})";
  absl::StatusOr<ChatCompletionChunk> c = ParseChatCompletionChunk(json);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->choices[0].delta.content.has_value());
  EXPECT_THAT(c->choices[0].delta.extra,
              ElementsAre(Pair("content", R"([{"type":"thinking","thinking":[]}])")));
  EXPECT_EQ(*ParseChatCompletionChunk(SerializeChatCompletionChunk(*c)), *c);
  EXPECT_EQ(ParseChatCompletionChunk(
                R"({"choices":[{"delta":{"content":"a","content":[]}}]})").status().message(),
            "choices[0].delta.content: duplicate key");
}

TEST(ChatCompletionChunkTest, TypeErrorsNameThePath) {
  const std::vector<ErrorCase> cases = {
      {R"({"choices":{}})", "choices: expected array, got object"},
      {R"({"choices":[{"delta":{"role":"x"}}]})", "choices[0].delta.role: unknown role \"x\""},
      {R"({"choices":[{"delta":{"tool_calls":[{"index":"0"}]}}]})",
       "choices[0].delta.tool_calls[0].index: expected integer, got string"},
      {R"({"choices":[{"delta":{"tool_calls":[{"function":{"arguments":{}}}]}}]})",
       "choices[0].delta.tool_calls[0].function.arguments: expected string, got object"},
      {R"({"usage":[]})", "usage: expected object, got array"},
      {R"(null)", "body: expected a JSON object, got null"},
  };
  for (const ErrorCase& c : cases) {
    absl::StatusOr<ChatCompletionChunk> r = ParseChatCompletionChunk(c.json);
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_EQ(r.status().message(), c.message);
  }
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role role : {Role::kSystem, Role::kDeveloper, Role::kUser, Role::kAssistant, Role::kTool,
                    Role::kFunction}) {
    EXPECT_EQ(RoleFromName(RoleName(role)), role);
  }
  EXPECT_FALSE(RoleFromName("User").has_value());
  EXPECT_EQ(ContentPartTypeName(ContentPartType::kInputAudio), "input_audio");
  EXPECT_EQ(ContentPartTypeName(ContentPartType::kOther), "");
}

// Single messages, as a stored conversation holds them: written as SerializeChatRequest
// writes each element of "messages", read back equal, unknown part types kept.
TEST(MessageJsonTest, OneMessageRoundTripsAsRequestsWriteIt) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"assistant","content":[{"type":"thinking","thinking":"hm"},)"
      R"({"type":"text","text":"caf\u00e9"}],"tool_calls":[{"id":"c1","type":"function",)"
      R"("function":{"name":"f","arguments":"{}"}}],"x_extra":1e3}]})";
  const std::string message =
      R"({"role":"assistant","content":[{"type":"thinking","thinking":"hm"},)"
      R"({"type":"text","text":"caf\u00e9"}],"tool_calls":[{"id":"c1","type":"function",)"
      R"("function":{"name":"f","arguments":"{}"}}],"x_extra":1e3})";
  absl::StatusOr<Message> m = ParseMessage(message);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(std::get<std::vector<ContentPart>>(*m->content)[0].type, ContentPartType::kOther);
  EXPECT_EQ(m->extra, (ExtraFields{{"x_extra", "1e3"}}));
  std::string out;
  AppendMessageJson(&out, *m);
  ChatRequest request;
  request.model = "m";
  request.messages = {*m};
  EXPECT_EQ(SerializeChatRequest(request),
            absl::StrCat(R"({"model":"m","messages":[)", out, "]}"));
  EXPECT_EQ(*ParseMessage(out), *m);
  // A request body's messages reject the unknown part type; a stored message keeps it.
  EXPECT_FALSE(ParseChatRequest(body).ok());
}

TEST(MessageJsonTest, ErrorsCarryTheGivenPath) {
  absl::StatusOr<Message> m = ParseMessage(R"({"content":"hi"})", "history[3].message");
  EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.status().message(), "history[3].message.role: required");
  m = ParseMessage(R"({"role":"user","content":7})", "history[0].message");
  EXPECT_EQ(m.status().message(),
            "history[0].message.content: expected string or array, got number");
  EXPECT_EQ(ParseMessage("[]").status().message(), "message: expected object, got array");
}

TEST(UsageJsonTest, RoundTripsAndNamesThePath) {
  const std::string json =
      R"({"prompt_tokens":10,"completion_tokens":2,"total_tokens":12,)"
      R"("prompt_tokens_details":{"cached_tokens":4,"x":0.50},"cost":1.5e-4})";
  absl::StatusOr<Usage> u = ParseUsage(json);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->prompt_tokens, 10);
  EXPECT_EQ(u->prompt_tokens_details->cached_tokens, 4);
  std::string out;
  AppendUsageJson(&out, *u);
  EXPECT_EQ(out, json);
  EXPECT_EQ(ParseUsage(R"({"prompt_tokens":"x"})", "model_choices[0].usage").status().message(),
            "model_choices[0].usage.prompt_tokens: expected integer, got string");
}

// A message or usage object inside a larger document: read where it starts, and nothing past
// its closing brace.
TEST(MessageJsonTest, PrefixReadsOneObjectAndSaysHowFarItRead) {
  const std::string message = R"({"role":"user","content":"hi","x_extra":{ "a" : 1e3 }})";
  const std::string doc = "  \n" + message + R"( ,{"role":)";  // then whatever follows
  size_t consumed = 0;
  absl::StatusOr<Message> m = ParseMessagePrefix(doc, "history[0].message", &consumed);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(consumed, 3 + message.size());  // the whitespace before it and the object
  EXPECT_EQ(*m, *ParseMessage(message));
  EXPECT_EQ(m->extra, (ExtraFields{{"x_extra", R"({"a":1e3})"}}));
  // Errors as ParseMessage's, with the given path; syntax errors count bytes from the start.
  EXPECT_EQ(ParseMessagePrefix(R"({"content":"hi"},1)", "history[3].message", &consumed)
                .status()
                .message(),
            "history[3].message.role: required");
  const std::string_view bad = R"(  {"role":"user" "content":"hi"})";  // no comma
  EXPECT_EQ(ParseMessagePrefix(bad, "m", &consumed).status().message(),
            absl::StrCat("body: invalid JSON at byte ", bad.find("\"content"),
                         ": expected ',' or '}'"));
  EXPECT_EQ(ParseMessagePrefix("7", "history[1]", &consumed).status().message(),
            "history[1]: expected object, got number");
}

TEST(UsageJsonTest, PrefixReadsOneObjectAndSaysHowFarItRead) {
  const std::string usage = R"({"prompt_tokens":10,"completion_tokens":2,"total_tokens":12})";
  size_t consumed = 0;
  absl::StatusOr<Usage> u = ParseUsagePrefix(usage + R"(,"usage_estimated":true})",
                                             "model_choices[0].usage", &consumed);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(consumed, usage.size());
  EXPECT_EQ(u->total_tokens, 12);
  EXPECT_EQ(ParseUsagePrefix(R"({"total_tokens":1.5}])", "model_choices[2].usage", &consumed)
                .status()
                .message(),
            "model_choices[2].usage.total_tokens: expected integer, got 1.5");
}

// The overrides a provider call applies (upstream model, stream_options) write exactly what
// serializing a modified copy of the request writes, for every combination.
TEST(SerializeChatRequestTest, OverridesWriteWhatAModifiedCopyWrites) {
  const char* const bodies[] = {
      R"({"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true})",
      R"({"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true,)"
      R"("stream_options":{"include_usage":false,"include_obfuscation":true,"x":[1]},"top_p":0.5})",
      R"({"model":"public","messages":[{"role":"user","content":"hi"}],"stream":true,)"
      R"("stream_options":{"include_usage":true},"user":"u","extra_member":{"a":1}})",
  };
  for (const char* body : bodies) {
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
    ASSERT_TRUE(chat.ok()) << chat.status();
    for (int model = 0; model < 2; ++model) {
      for (int drop = 0; drop < 2; ++drop) {
        for (int usage = 0; usage < 2; ++usage) {
          if (drop == 1 && usage == 1) continue;  // never both (openai_compat.cc)
          SCOPED_TRACE(absl::StrCat(body, " model ", model, " drop ", drop, " usage ", usage));
          protocol_internal::ChatRequestOverrides o;
          ChatRequest copy = *chat;
          if (model == 1) {
            o.model = "upstream-model-name";
            copy.model = "upstream-model-name";
          }
          o.drop_stream_options = drop == 1;
          if (drop == 1) copy.stream_options.reset();
          o.include_usage = usage == 1;
          if (usage == 1) {
            if (!copy.stream_options.has_value()) copy.stream_options.emplace();
            copy.stream_options->include_usage = true;
          }
          EXPECT_EQ(protocol_internal::SerializeChatRequest(*chat, o), SerializeChatRequest(copy));
        }
      }
    }
  }
}

}  // namespace
}  // namespace modeenvoy
