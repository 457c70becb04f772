// tests/responses_ingress/echo_test.cc: the echo helpers (lib/responses_ingress/internal.h)
// on hand-written JSON. Expected texts are written out from the Responses API reference's
// defaults and the helpers' documented contract (members replaced in place, the missing ones
// appended in kEchoed's order, everything else copied byte for byte), not from their output.
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "lib/responses_ingress/internal.h"

namespace modeenvoy::responses_internal {
namespace {

constexpr char kAllDefaults[] =
    R"({"instructions":null,"metadata":{},"parallel_tool_calls":true,"temperature":null,)"
    R"("tool_choice":"auto","tools":[],"top_p":null,"previous_response_id":null,"store":true})";

TEST(ResponsesEcho, RequestValuesOrTheApiDefaults) {
  // Explicit nulls report the default; values keep the request's text, compacted.
  EXPECT_EQ(EchoJson(EchoOf(R"({"model":"m","input":"x","temperature":null,"top_p": 0.5,)"
                            R"("metadata": {"k" : "v"},"store":false})")),
            R"({"instructions":null,"metadata":{"k":"v"},"parallel_tool_calls":true,)"
            R"("temperature":null,"tool_choice":"auto","tools":[],"top_p":0.5,)"
            R"("previous_response_id":null,"store":false})");
  EXPECT_EQ(EchoJson(EchoOf("[1,2]")), kAllDefaults);
  EXPECT_EQ(EchoJson(EchoOf("")), kAllDefaults);
}

// Pretty-printed members are echoed compact, and only between tokens: whitespace, escaped
// quotes and backslashes inside strings stay as the client wrote them.
TEST(ResponsesEcho, WhitespaceIsDroppedBetweenTokensOnly) {
  const Echo echo = EchoOf(
      "{\n  \"model\": \"m\",\n  \"input\": [ {\"role\" : \"user\", \"content\": \"a  b\"} ],\n"
      "  \"instructions\" :\t\"Say \\\"hi\\\" \\\\ then  stop.\\n\" ,\r\n"
      "  \"tools\": [\n    {\"type\": \"function\", \"name\": \"f\",\n"
      "     \"parameters\": { \"type\" : \"object\", \"required\" : [ ] } }\n  ],\n"
      "  \"temperature\" : 1.5e-1 ,\n  \"store\" : false\n}\n");
  EXPECT_EQ(EchoJson(echo),
            R"({"instructions":"Say \"hi\" \\ then  stop.\n","metadata":{},)"
            R"("parallel_tool_calls":true,"temperature":1.5e-1,"tool_choice":"auto",)"
            R"("tools":[{"type":"function","name":"f","parameters":{"type":"object",)"
            R"("required":[]}}],"top_p":null,"previous_response_id":null,"store":false})");
}

// A record the nlohmann version stored (the same member order and compact form) reads back
// and patches a rendered object the way it did.
TEST(ResponsesEcho, AStoredEchoPatchesTheRenderedObject) {
  absl::StatusOr<Echo> echo = EchoFromJson(
      R"({"instructions":"Be brief.","metadata":{"k":"v"},"parallel_tool_calls":true,)"
      R"("temperature":0.25,"tool_choice":"auto","tools":[],"top_p":null,)"
      R"("previous_response_id":null,"store":true})");
  ASSERT_TRUE(echo.ok()) << echo.status();
  std::string body =
      R"({"id":"resp_1","object":"response","instructions":null,"metadata":{},"output":[]})";
  ASSERT_TRUE(PatchEcho(*echo, /*in_event=*/false, &body).ok());
  EXPECT_EQ(body,
            R"({"id":"resp_1","object":"response","instructions":"Be brief.","metadata":)"
            R"({"k":"v"},"output":[],"parallel_tool_calls":true,"temperature":0.25,)"
            R"("tool_choice":"auto","tools":[],"top_p":null,"previous_response_id":null,)"
            R"("store":true})");
}

TEST(ResponsesEcho, AMissingMemberKeepsTheRenderedValue) {
  absl::StatusOr<Echo> none = EchoFromJson("{}");  // a record stored without an echo
  ASSERT_TRUE(none.ok());
  std::string body = R"({"id":"resp_1","metadata":{"a":"b"},"output_text":"\u00e9"})";
  const std::string rendered = body;
  ASSERT_TRUE(PatchEcho(*none, /*in_event=*/false, &body).ok());
  EXPECT_EQ(body, rendered);

  absl::StatusOr<Echo> partial = EchoFromJson(R"({"store":false})");
  ASSERT_TRUE(partial.ok());
  ASSERT_TRUE(PatchEcho(*partial, /*in_event=*/false, &body).ok());
  EXPECT_EQ(body, R"({"id":"resp_1","metadata":{"a":"b"},"output_text":"\u00e9","store":false})");
}

TEST(ResponsesEcho, EventsPatchOnlyTheirResponseObject) {
  absl::StatusOr<Echo> echo = EchoFromJson(R"({"metadata":{"k":"v"}})");
  ASSERT_TRUE(echo.ok());
  std::string event =
      R"({"type":"response.created","metadata":1,"response":{"id":"r","metadata":{}},)"
      R"("sequence_number":0})";
  ASSERT_TRUE(PatchEcho(*echo, /*in_event=*/true, &event).ok());
  EXPECT_EQ(event, R"({"type":"response.created","metadata":1,"response":{"id":"r","metadata":)"
                   R"({"k":"v"}},"sequence_number":0})");

  std::string no_object = R"({"type":"response.failed","response":null})";
  ASSERT_TRUE(PatchEcho(*echo, /*in_event=*/true, &no_object).ok());
  EXPECT_EQ(no_object, R"({"type":"response.failed","response":null})");
}

TEST(ResponsesEcho, CorruptInputIsAnError) {
  EXPECT_EQ(EchoFromJson("[]").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(EchoFromJson(R"({"store":)").status().code(), absl::StatusCode::kDataLoss);

  const Echo echo = EchoOf("{}");
  for (std::string data : {std::string("[1]"), std::string(R"({"a":1)"),
                           std::string(R"({"a":1} x)")}) {
    const std::string before = data;
    absl::Status s = PatchEcho(echo, /*in_event=*/false, &data);
    EXPECT_EQ(s.code(), absl::StatusCode::kInternal) << before;
    EXPECT_EQ(data, before);
  }
}

// The state filter's members, read from the echo of the request (no second parse): the
// request's values, decoded; a request that leaves them out gets store true, no previous id.
TEST(ResponsesEcho, StateMembersComeFromTheEcho) {
  StateMembers m = StateMembersOf(EchoOf(
      R"({"model":"m","store":false,"previous_response_id":"resp_a\u0062c",)"
      R"("instructions":"Be brief."})"));
  EXPECT_FALSE(m.store);
  EXPECT_EQ(m.previous_response_id, "resp_abc");
  EXPECT_TRUE(m.instructions);

  StateMembers d = StateMembersOf(EchoOf(R"({"model":"m","input":"x"})"));
  EXPECT_TRUE(d.store);
  EXPECT_EQ(d.previous_response_id, std::nullopt);
  EXPECT_FALSE(d.instructions);

  StateMembers n = StateMembersOf(EchoOf(
      R"({"store":null,"previous_response_id":null,"instructions":null})"));
  EXPECT_TRUE(n.store);
  EXPECT_EQ(n.previous_response_id, std::nullopt);
  EXPECT_FALSE(n.instructions);

  // An empty id is a value (the filter refuses it); empty instructions add no system message.
  StateMembers e = StateMembersOf(EchoOf(R"({"previous_response_id":"","instructions":""})"));
  EXPECT_EQ(e.previous_response_id, "");
  EXPECT_FALSE(e.instructions);
}

// The members not echoed are passed over by their quotes and brackets alone: strings
// holding escaped quotes and backslashes, brackets and braces inside strings, a string long
// enough for the 16-byte compares with its quote on a block's edge, nesting, numbers and
// literals, whitespace; the echoed members after them are still found.
TEST(ResponsesEcho, SkippedMembersEndWhereTheirValuesEnd) {
  const std::string long_text(15, 'a');  // the closing quote at byte 16 of the content
  const std::string body =
      R"({ "input" : [ {"role":"user","content":"say \"}]\" and \\"},)"
      R"({"content":[{"type":"input_text","text":")" + long_text + R"("}]},)"
      R"({"content":")" + std::string(40, 'b') + R"(\\\"{[","x":[[1,2],{"a":{}}]}],)"
      R"("max_output_tokens" : 12 ,"stream":true,"model":"m","user":null,)"
      R"("temperature":0.25,"text":{"format":{"type":"text"}},"top_p":1e-1})";
  const Echo echo = EchoOf(body);
  EXPECT_EQ(EchoJson(echo),
            R"({"instructions":null,"metadata":{},"parallel_tool_calls":true,)"
            R"("temperature":0.25,"tool_choice":"auto","tools":[],"top_p":1e-1,)"
            R"("previous_response_id":null,"store":true})");
}

}  // namespace
}  // namespace modeenvoy::responses_internal
