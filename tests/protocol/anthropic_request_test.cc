// tests/protocol/anthropic_request_test.cc: the two readers of Messages request bodies
// (lib/protocol/dialects/anthropic_request.h). The checked reader is the reference: the
// one-pass reader must read every body it accepts into the same ChatRequest, and give up
// on every body the checked reader refuses, so that the dialect's DecodeRequest reports the
// checked reader's error. The mapping's values themselves are pinned by
// anthropic_dialect_test.cc and tests/anthropic_ingress (through DecodeRequest, which now
// runs the one-pass reader first).
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/protocol/dialects/anthropic_request.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

using protocol_internal::DecodeMessagesRequestChecked;
using protocol_internal::DecodeMessagesRequestOnePass;

std::unique_ptr<Dialect> Anthropic() {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("anthropic");
  EXPECT_TRUE(d.ok()) << d.status();
  return std::move(*d);
}

absl::StatusOr<ChatRequest> Decode(const std::string& body) {
  WireRequest wire;
  wire.method = "POST";
  wire.target = "/v1/messages";
  wire.body = body;
  return Anthropic()->DecodeRequest(wire);
}

// Bodies clients send, in the member orders they use and in others: each is read in one
// pass into what the checked reader reads.
const char* const kReadInOnePass[] = {
    R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]})",
    // Whitespace, a byte order mark, escapes in values.
    "\xEF\xBB\xBF { \"model\" : \"m\\u00e9\" , \"max_tokens\" : 7 ,\n \"messages\" : [ { \"role\""
    " : \"user\" , \"content\" : [ { \"type\" : \"text\" , \"text\" : \"a\\nb\\\"\" , "
    "\"cache_control\" : { \"type\" : \"ephemeral\" } } ] } ] , \"top_k\" : [ 1 , 2 ] } ",
    // System after the turns, as a string and as blocks; the turns' role after content.
    R"({"messages":[{"content":"hi","role":"user"},{"content":[{"type":"text","text":"a"},)"
    R"({"type":"text","text":"b"}],"role":"assistant"}],"system":"s","max_tokens":5,"model":"m"})",
    R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":5,)"
    R"("system":[{"type":"text","text":"s1"},{"text":"s2","cache_control":{"type":"ephemeral"},"type":"text"}]})",
    // Every block kind, "type" first and last.
    R"({"model":"m","max_tokens":5,"system":[{"type":"text","text":"be brief"}],"messages":[)"
    R"({"role":"user","content":[{"type":"text","text":"see","citations":null},)"
    R"({"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"},"cache_control":{"type":"ephemeral"}},)"
    R"({"source":{"url":"https://x/y.png","type":"url"},"type":"image"},)"
    R"({"type":"document","title":"doc","source":{"type":"base64","media_type":"application/pdf","data":"JVBE"},"context":"c"},)"
    R"({"type":"document","title":null,"source":{"type":"file","file_id":"file_1","extra":1}},)"
    R"({"source":{"data":"JVBE","media_type":"application/pdf","type":"base64"},"title":"t","type":"document"}]},)"
    R"({"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"sig"},)"
    R"({"type":"redacted_thinking","data":"xyz"},{"type":"text","text":"I will."},)"
    R"({"type":"tool_use","id":"t1","name":"f","input":{"a":[1, 2]},"cache_control":{"type":"ephemeral"}},)"
    R"({"input":{},"name":"g","id":"t2","type":"tool_use"},{"signature":"s2","thinking":"x","type":"thinking"}]},)"
    R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,)"
    R"("content":[{"type":"text","text":"failed"},{"type":"image","source":{"type":"url","url":"u"}}]},)"
    R"({"cache_control":{"type":"ephemeral"},"content":"ok","is_error":false,"tool_use_id":"t2","type":"tool_result"},)"
    R"({"type":"tool_result","tool_use_id":"t3","other":1},{"type":"text","text":"and?"}]},)"
    R"({"role":"assistant","content":[{"type":"tool_use","id":"t4","name":"h"}]},)"
    R"({"role":"user","content":[{"type":"tool_result","tool_use_id":"t4","content":[]}]},)"
    R"({"role":"user","content":[]},{"role":"assistant","content":[]}]})",
    // The other members: tools (custom, server), tool_choice, metadata, stop sequences,
    // sampling, output_config, extras.
    R"({"model":"m","max_tokens":5,"stream":true,"temperature":0.5,"top_p":1e-1,"top_k":3,)"
    R"("stop_sequences":["END","\n\nHuman:"],"metadata":{"user_id":"u-1"},)"
    R"("tools":[{"name":"f","description":"d","input_schema":{"type":"object"},"cache_control":{"type":"ephemeral"},"strict":true},)"
    R"({"type":"custom","name":"g","input_schema":{}},{"input_schema":{},"name":"h","type":"custom"},)"
    R"({"type":"web_search_20250305","name":"web_search","max_uses":5}],)"
    R"("tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true,"x":1},)"
    R"("thinking":{"type":"enabled","budget_tokens":2048},)"
    R"("output_config":{"format":{"type":"json_schema","schema":{"type":"object"}},"effort":"low"},)"
    R"("messages":[{"role":"user","content":"hi","x":1}],"service_tier":"auto"})",
    R"({"model":"m","max_tokens":5,"metadata":{"user_id":null},"tool_choice":{"name":3,"type":"auto"},"tools":[{"name":"f","input_schema":{}}],)"
    R"("output_config":{"effort":"low"},"stop_sequences":[],"temperature":0,"messages":[{"role":"user","content":"x"}]})",
    R"({"model":"m","max_tokens":5,"tool_choice":{"type":"tool","name":"f"},"tools":[{"name":"f","input_schema":{}}],"output_config":{"format":{"type":"json_schema"}},)"
    R"("messages":[{"role":"user","content":"x"}],"metadata":{}})",
    R"({"model":"m","max_tokens":5,"output_config":{"format":{"type":"text"}},"messages":[{"role":"user","content":"x"}]})",
    R"({"model":"m","max_tokens":5,"output_config":{"format":5},"tool_choice":{"type":"none","disable_parallel_tool_use":false},"messages":[{"role":"user","content":"x"}]})",
    R"({"model":"m","max_tokens":5,"output_config":"x","tool_choice":{"type":"any"},"messages":[{"role":"user","content":"x"}],"tools":[{"type":"bash_20250124","name":"bash"}]})",
};

TEST(AnthropicRequestTest, OnePassReadsWhatTheCheckedReaderReads) {
  for (const char* body : kReadInOnePass) {
    SCOPED_TRACE(body);
    absl::StatusOr<ChatRequest> checked = DecodeMessagesRequestChecked(body);
    ASSERT_TRUE(checked.ok()) << checked.status();
    ChatRequest one_pass;
    ASSERT_TRUE(DecodeMessagesRequestOnePass(body, &one_pass));
    EXPECT_EQ(SerializeChatRequest(one_pass), SerializeChatRequest(*checked));
    EXPECT_TRUE(one_pass == *checked);
  }
}

TEST(AnthropicRequestTest, OnePassReadsTheRecordedRequest) {
  std::optional<std::filesystem::path> dir = protocol_test::FixturesDir();
  if (!dir) GTEST_SKIP() << "provider fixtures not found";
  const std::string body = protocol_test::ReadFile(
      *dir / "kong/spec/fixtures/ai-proxy/unit/expected-requests/anthropic/llm-v1-chat.json");
  absl::StatusOr<ChatRequest> checked = DecodeMessagesRequestChecked(body);
  ASSERT_TRUE(checked.ok()) << checked.status();
  ChatRequest one_pass;
  ASSERT_TRUE(DecodeMessagesRequestOnePass(body, &one_pass));
  EXPECT_TRUE(one_pass == *checked);
}

// Bodies the one-pass reader gives up on although they are good: the checked reader reads
// them, and DecodeRequest returns its request.
TEST(AnthropicRequestTest, BodiesReadByTheCheckedReaderAlone) {
  std::string many = R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}])";
  for (int i = 0; i < 40; ++i) many += ",\"x" + std::to_string(i) + "\":" + std::to_string(i);
  many += "}";
  const std::string bodies[] = {
      // A member name with escapes.
      R"({"model":"m","max_t\u006fkens":5,"messages":[{"role":"user","content":"x"}]})",
      // A server tool whose "type" is not its first member.
      R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"web_search","type":"web_search_20250305"}]})",
      // More than 32 unmodeled members in one object.
      many,
  };
  for (const std::string& body : bodies) {
    SCOPED_TRACE(body);
    absl::StatusOr<ChatRequest> checked = DecodeMessagesRequestChecked(body);
    ASSERT_TRUE(checked.ok()) << checked.status();
    ChatRequest one_pass;
    EXPECT_FALSE(DecodeMessagesRequestOnePass(body, &one_pass));
    absl::StatusOr<ChatRequest> decoded = Decode(body);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_TRUE(*decoded == *checked);
  }
}

// Bad bodies: the one-pass reader gives up on each, and DecodeRequest reports the checked
// reader's error. Bodies with several errors report the one first in the checked reader's
// order (repeated names of an object, then model, max_tokens, messages, system, the turns,
// then the other members in document order), not the first in document order.
TEST(AnthropicRequestTest, BadBodiesReportTheCheckedReadersFirstError) {
  struct Case {
    const char* body;
    const char* path;  // the first error's field path, from the order above
  };
  const Case cases[] = {
      {R"({"model":"m","max_tokens":5,"messages":[})", "body"},
      {R"([1])", "body"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"model":"n"})", "model"},
      {R"({"model":5,"max_tokens":5,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":"m","max_tokens":1.0,"messages":[{"role":"user","content":"x"}]})", "max_tokens"},
      {R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})", "max_tokens"},
      {R"({"model":"m","max_tokens":5})", "messages"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":5})", "system"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":[{"type":"image","source":{"type":"url","url":"u"}}]})",
       "system[0].type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"bot","content":"x"}]})",
       "messages[0].role"},
      {R"({"model":"m","max_tokens":5,"messages":[{"content":"x"}]})", "messages[0].role"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":5}]})",
       "messages[0].content"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"text":"x"}]}]})",
       "messages[0].content[0].type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}]}]})",
       "messages[0].content[0].text"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"x"}}]}]})",
       "messages[0].content[0].source.media_type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","content":"x"}]}]})",
       "messages[0].content[0].tool_use_id"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"tool_result","tool_use_id":"u"}]}]}]})",
       "messages[0].content[0].content[0].type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t"}]}]})",
       "messages[0].content[0].name"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"image"}]}]})",
       "messages[0].content[0].type"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"temperature":1.5})", "temperature"},
      // What the unified request refuses is refused here too, in the client's terms.
      {R"({"model":"","max_tokens":5,"messages":[{"role":"user","content":"x"}]})", "model"},
      {R"({"model":"m","max_tokens":5,"messages":[]})", "messages"},
      {R"({"model":"m","max_tokens":5,"system":"s","messages":[]})", "messages"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"top_p":1.5})", "top_p"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"top_p":-0.1})", "top_p"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"","input_schema":{}}]})",
       "tools[0].name"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"","name":"f","input":{}}]}]})",
       "messages[0].content[0].id"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"","input":{}}]}]})",
       "messages[0].content[0].name"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"","content":"x"}]}]})",
       "messages[0].content[0].tool_use_id"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","input_schema":{}}],"tool_choice":{"type":"tool"}})",
       "tool_choice.name"},
      // An unknown member named like a field of the unified request would be read as that
      // field: refused, except service_tier, which both APIs have (as a string).
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"verbosity":true})",
       "verbosity"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"n":2})", "n"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"service_tier":5})",
       "service_tier"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"web_search_20250305","name":"web_search","function":5}]})",
       "tools[0].function"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"stop_sequences":["a",1]})",
       "stop_sequences[1]"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":{"user_id":"u","x":1}})",
       "metadata.x"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f"}]})",
       "tools[0].input_schema"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"f","description":null,"input_schema":{}}]})",
       "tools[0].description"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"tool","name":null}})",
       "tool_choice.name"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"auto","disable_parallel_tool_use":1}})",
       "tool_choice.disable_parallel_tool_use"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"a","type":"text"}]}]})",
       "messages[0].content[0].type"},
      // A tool choice needs tools (as in the unified request), checked after the members.
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"any"}})", "tool_choice"},
      {R"({"model":"m","max_tokens":5,"tool_choice":{"type":"tool","name":"f"},"tools":[],"messages":[{"role":"user","content":"x"}]})",
       "tool_choice"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"none","disable_parallel_tool_use":true}})",
       "tool_choice.disable_parallel_tool_use"},
      {R"({"tool_choice":{"type":"auto"},"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"top_p":"x"})",
       "top_p"},
      // Several errors: not the first in document order.
      {R"({"tools":[5],"messages":[{"role":"user","content":5}],"max_tokens":0,"model":"m"})",
       "max_tokens"},
      {R"({"tools":[5],"model":"m","max_tokens":5,"messages":[{"content":[{"type":"text"}],"role":"bot"}]})",
       "messages[0].role"},
      {R"({"metadata":{"x":1},"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"system":[{"type":"text"}]})",
       "system[0].text"},
      {R"({"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text"}],"role":"user"}]})",
       "messages[0].role"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    ChatRequest one_pass;
    EXPECT_FALSE(DecodeMessagesRequestOnePass(c.body, &one_pass));
    absl::StatusOr<ChatRequest> decoded = Decode(c.body);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    std::optional<std::string> param = ErrorParam(decoded.status());
    ASSERT_TRUE(param.has_value()) << decoded.status();
    EXPECT_EQ(*param, c.path) << decoded.status();
    EXPECT_EQ(decoded.status(), DecodeMessagesRequestChecked(c.body).status());
  }
}

}  // namespace
}  // namespace modeenvoy
