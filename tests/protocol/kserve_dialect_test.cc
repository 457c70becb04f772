// tests/protocol/kserve_dialect_test.cc: the "kserve" dialect. There are no recorded Triton or
// KServe fixtures, so the expected wire shapes here are written from the public specs:
//  - Open Inference Protocol / KServe V2, HTTP/REST (kserve.github.io, "Open Inference
//    Protocol (V2 Inference Protocol)"): inference request {"id"?, "parameters"?, "inputs":
//    [{"name","shape","datatype","parameters"?,"data"}], "outputs"?: [{"name"}]}, response
//    {"model_name","model_version"?,"id"?,"parameters"?,"outputs":[{"name","shape",
//    "datatype","data"}]}, error {"error": $string};
//  - Triton's generate extension (triton-inference-server/server
//    docs/protocol/extension_generate.md): {"text_input", "parameters"?, ...} answered by
//    {"model_name","model_version","text_output"}; generate_stream sends each response as an
//    SSE "data" event and reports a later failure as an {"error": ...} event;
//  - the TensorRT-LLM backend's ensemble config.pbtxt for the default tensor names/datatypes
//    (text_input BYTES, max_tokens INT32, stop_words BYTES [-1], temperature/top_p FP32,
//    seed UINT64, stream BOOL; extra streamed fields such as sequence_end, cum_log_probs).
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/dialect_test_util.h"

namespace modeenvoy {
namespace {

using json = nlohmann::json;
using protocol_test::DecodeStream;
using protocol_test::Split;

std::unique_ptr<Dialect> Kserve(std::string_view options = "{}") {
  absl::StatusOr<std::unique_ptr<Dialect>> d = NewDialect("kserve", options);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *std::move(d) : nullptr;
}

ChatRequest Chat(std::string_view body) {
  absl::StatusOr<ChatRequest> chat = ParseChatRequest(body);
  EXPECT_TRUE(chat.ok()) << chat.status();
  return chat.ok() ? *chat : ChatRequest{};
}

absl::StatusOr<WireRequest> Encode(const Dialect& d, std::string_view body, bool stream = false,
                                   std::string_view model = {}) {
  WireRequest wire;
  absl::Status s = d.EncodeRequest(Chat(body), {.stream = stream, .model = model}, &wire);
  if (!s.ok()) return s;
  return wire;
}

constexpr std::string_view kHello =
    R"({"model":"ensemble","messages":[{"role":"system","content":"Be brief."},)"
    R"({"role":"user","content":"Hello"}]})";

TEST(KserveDialectTest, OptionsAreReadStrictly) {
  auto unknown = NewDialect("kserve", R"({"protocl":"v2"})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "protocl: unknown field");
  auto protocol = NewDialect("kserve", R"({"protocol":"grpc"})");
  ASSERT_FALSE(protocol.ok());
  EXPECT_EQ(*ErrorParam(protocol.status()), "protocol");
  auto tmpl = NewDialect("kserve", R"({"prompt_template":"{{role}} says"})");
  ASSERT_FALSE(tmpl.ok());
  EXPECT_EQ(*ErrorParam(tmpl.status()), "prompt_template");
  auto datatype =
      NewDialect("kserve", R"({"parameter_inputs":{"temperature":{"datatype":"INT32"}}})");
  ASSERT_FALSE(datatype.ok());
  EXPECT_EQ(*ErrorParam(datatype.status()), "parameter_inputs.temperature.datatype");
  auto param = NewDialect("kserve", R"({"parameter_inputs":{"top_k":{"name":"top_k"}}})");
  ASSERT_FALSE(param.ok());
  EXPECT_EQ(param.status().message(), "parameter_inputs.top_k: unknown field");
}

TEST(KserveDialectTest, V2InferRequestCarriesThePromptAndParametersAsTensors) {
  std::unique_ptr<Dialect> d = Kserve();
  absl::StatusOr<WireRequest> wire = Encode(
      *d,
      R"({"model":"public","messages":[{"role":"system","content":"Be brief."},)"
      R"({"role":"user","content":"Hello"}],"temperature":0.5,"max_tokens":64,)"
      R"("stop":["###","END"],"seed":7,"top_p":0.9})",
      false, "ensemble");
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(wire->method, "POST");
  EXPECT_EQ(wire->target, "/v2/models/ensemble/infer");
  const std::string prompt =
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
      "<|im_start|>assistant\n";
  json expected = {
      {"inputs",
       {{{"name", "text_input"}, {"shape", {1}}, {"datatype", "BYTES"}, {"data", {prompt}}},
        {{"name", "max_tokens"}, {"shape", {1}}, {"datatype", "INT32"}, {"data", {64}}},
        {{"name", "temperature"}, {"shape", {1}}, {"datatype", "FP32"}, {"data", {0.5}}},
        {{"name", "top_p"}, {"shape", {1}}, {"datatype", "FP32"}, {"data", {0.9}}},
        {{"name", "stop_words"}, {"shape", {2}}, {"datatype", "BYTES"},
         {"data", {"###", "END"}}},
        {{"name", "seed"}, {"shape", {1}}, {"datatype", "UINT64"}, {"data", {7}}}}},
      {"outputs", {{{"name", "text_output"}}}}};
  EXPECT_EQ(json::parse(wire->body), expected) << wire->body;
}

TEST(KserveDialectTest, VersionBatchDimAndModelEscaping) {
  std::unique_ptr<Dialect> d = Kserve(R"({"version":"3","batch_dim":true})");
  absl::StatusOr<WireRequest> wire =
      Encode(*d, R"({"model":"my model/x","messages":[{"role":"user","content":"hi"}]})");
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(wire->target, "/v2/models/my%20model%2Fx/versions/3/infer");
  json body = json::parse(wire->body);
  EXPECT_EQ(body["inputs"][0]["shape"], json::array({1, 1}));
  // The ensemble requires max_tokens: the documented default is sent.
  EXPECT_EQ(body["inputs"][1]["name"], "max_tokens");
  EXPECT_EQ(body["inputs"][1]["data"], json::array({512}));
}

TEST(KserveDialectTest, PromptTemplates) {
  const std::string chat =
      R"({"model":"m","messages":[{"role":"developer","content":"Rules."},)"
      R"({"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},)"
      R"({"role":"assistant","content":"c"},{"role":"user","content":"d"}]})";
  struct Case {
    std::string options;
    std::string prompt;
  } cases[] = {
      {R"({"prompt_template":"llama3"})",
       "<|start_header_id|>system<|end_header_id|>\n\nRules.<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\na\nb<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\nc<|eot_id|>"
       "<|start_header_id|>user<|end_header_id|>\n\nd<|eot_id|>"
       "<|start_header_id|>assistant<|end_header_id|>\n\n"},
      {R"({"prompt_template":"plain"})",
       "system: Rules.\nuser: a\nb\nassistant: c\nuser: d\nassistant: "},
      {R"({"prompt_template":"[{{role}}] {{content}}\n"})",
       "[system] Rules.\n[user] a\nb\n[assistant] c\n[user] d\n[assistant] "},
  };
  for (const Case& c : cases) {
    std::unique_ptr<Dialect> d = Kserve(c.options);
    absl::StatusOr<WireRequest> wire = Encode(*d, chat);
    ASSERT_TRUE(wire.ok()) << wire.status();
    EXPECT_EQ(json::parse(wire->body)["inputs"][0]["data"][0], c.prompt) << c.options;
  }
}

TEST(KserveDialectTest, WhatTheProtocolCannotCarryIsRefusedByFieldPath) {
  std::unique_ptr<Dialect> d = Kserve();
  struct Case {
    std::string body;
    std::string param;
  } cases[] = {
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]})",
       "tools"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"https://a/b.png"}}]}]})",
       "messages[0].content[1].image_url"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"response_format":{"type":"json_object"}})",
       "response_format"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"n":2})", "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"logprobs":true})",
       "logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi","name":"bob"}]})",
       "messages[0].name"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]})",
       "messages[1].tool_calls"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3000000000})",
       "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"hi"}],"top_k":[1]})", "top_k"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<WireRequest> wire = Encode(*d, c.body);
    ASSERT_FALSE(wire.ok()) << c.body;
    EXPECT_EQ(wire.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(ErrorParam(wire.status()).value_or(""), c.param) << wire.status();
  }
  // tool_choice "none" asks for nothing the protocol lacks.
  EXPECT_TRUE(Encode(*d, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"tool_choice":"none"})")
                  .ok());
  // v2 infer answers whole: a stream request names the field.
  absl::StatusOr<WireRequest> stream = Encode(*d, kHello, /*stream=*/true);
  ASSERT_FALSE(stream.ok());
  EXPECT_EQ(*ErrorParam(stream.status()), "stream");
}

TEST(KserveDialectTest, ParameterInputsMoveRenameOrDisableFields) {
  std::unique_ptr<Dialect> d = Kserve(
      R"({"parameter_inputs":{"temperature":{"in":"parameters"},"max_tokens":{"name":"request_output_len","datatype":"UINT32"},"seed":null}})");
  absl::StatusOr<WireRequest> wire = Encode(
      *d, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.25,"top_k":5})");
  ASSERT_TRUE(wire.ok()) << wire.status();
  json body = json::parse(wire->body);
  EXPECT_EQ(body["inputs"][1]["name"], "request_output_len");
  EXPECT_EQ(body["inputs"][1]["datatype"], "UINT32");
  EXPECT_EQ(body["parameters"], (json{{"temperature", 0.25}, {"top_k", 5}}));
  absl::StatusOr<WireRequest> seeded =
      Encode(*d, R"({"model":"m","messages":[{"role":"user","content":"hi"}],"seed":1})");
  ASSERT_FALSE(seeded.ok());
  EXPECT_EQ(*ErrorParam(seeded.status()), "seed");
}

TEST(KserveDialectTest, GenerateRequestsUseFieldsAndTheStreamEndpoint) {
  std::unique_ptr<Dialect> d = Kserve(R"({"protocol":"generate","prompt_template":"plain"})");
  absl::StatusOr<WireRequest> whole = Encode(
      *d, R"({"model":"ensemble","messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":20,"stop":"\n","top_k":3})");
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(whole->target, "/v2/models/ensemble/generate");
  EXPECT_EQ(json::parse(whole->body), (json{{"text_input", "user: Hi\nassistant: "},
                                            {"max_tokens", 20},
                                            {"stop_words", {"\n"}},
                                            {"top_k", 3}}));
  absl::StatusOr<WireRequest> stream = Encode(*d, kHello, /*stream=*/true);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ(stream->target, "/v2/models/ensemble/generate_stream");
  json body = json::parse(stream->body);
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["max_tokens"], 512);
}

TEST(KserveDialectTest, V2ResponseBecomesAChatCompletionWithoutUsage) {
  std::unique_ptr<Dialect> d = Kserve();
  // The spec's response shape, as the TensorRT-LLM ensemble fills it (text_output plus
  // outputs that are not asked for when "outputs" names one).
  std::string body = R"({"model_name":"ensemble","model_version":"1","id":"42","outputs":[)"
                     R"({"name":"cum_log_probs","datatype":"FP32","shape":[1],"data":[0.0]},)"
                     R"({"data":["Hello there"],"shape":[1,1],"datatype":"BYTES","name":"text_output"}]})";
  ASSERT_TRUE(d->DecodeResponse(&body).ok()) << body;
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
  ASSERT_TRUE(c.ok()) << c.status() << body;
  EXPECT_EQ(c->id, "chatcmpl-42");
  EXPECT_EQ(c->model, "ensemble");
  ASSERT_EQ(c->choices.size(), 1u);
  EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content), "Hello there");
  EXPECT_EQ(c->choices[0].finish_reason, "stop");
  EXPECT_FALSE(c->usage.has_value());
}

TEST(KserveDialectTest, ReportedFinishReasonAndTokenCountsAreKept) {
  // vLLM's and TensorRT-LLM's Triton backends add these outputs when asked for them.
  std::unique_ptr<Dialect> d = Kserve();
  std::string body = R"({"model_name":"vllm_model","outputs":[)"
                     R"({"name":"text_output","datatype":"BYTES","shape":[1],"data":["a b"]},)"
                     R"({"name":"finish_reason","datatype":"BYTES","shape":[1],"data":["length"]},)"
                     R"({"name":"num_input_tokens","datatype":"INT32","shape":[1],"data":[12]},)"
                     R"({"name":"num_output_tokens","datatype":"INT32","shape":[1],"data":[2]}]})";
  ASSERT_TRUE(d->DecodeResponse(&body).ok()) << body;
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->choices[0].finish_reason, "length");
  ASSERT_TRUE(c->usage.has_value());
  EXPECT_EQ(c->usage->prompt_tokens, 12);
  EXPECT_EQ(c->usage->completion_tokens, 2);
  EXPECT_EQ(c->usage->total_tokens, 14);
}

TEST(KserveDialectTest, GenerateResponseAndMissingOutput) {
  std::unique_ptr<Dialect> d = Kserve(R"({"protocol":"generate"})");
  std::string body =
      R"({"model_name":"mymodel","model_version":"1","text_output":"model output"})";
  ASSERT_TRUE(d->DecodeResponse(&body).ok());
  absl::StatusOr<ChatCompletion> c = ParseChatCompletion(body);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(std::get<std::string>(*c->choices[0].message.content), "model output");
  EXPECT_TRUE(c->id.rfind("chatcmpl-", 0) == 0) << c->id;
  std::string wrong = R"({"model_name":"m","OUTPUT_0":"x"})";
  absl::Status s = d->DecodeResponse(&wrong);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(KserveDialectTest, ErrorsKeepTheStatusAndMessage) {
  std::unique_ptr<Dialect> d = Kserve();
  absl::Status bad = d->DecodeError(
      400, R"({"error":"unexpected datatype FP32 for inference input 'max_tokens', expecting INT32"})");
  EXPECT_EQ(HttpStatusForStatus(bad), 400);
  EXPECT_EQ(bad.message(),
            "unexpected datatype FP32 for inference input 'max_tokens', expecting INT32");
  absl::Status busy = d->DecodeError(429, R"({"error":"too many requests"})");
  EXPECT_EQ(busy.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusForStatus(busy), 429);
  EXPECT_EQ(d->EncodeErrorBody(absl::InvalidArgumentError("x \"y\"")), R"({"error":"x \"y\""})");
}

// A generate_stream body as the TensorRT-LLM ensemble sends it: one SSE "data" event per
// response, deltas in text_output, no terminator.
const std::vector<std::string>& StreamEvents() {
  static const std::vector<std::string> events = {
      R"({"batch_index":0,"context_logits":0.0,"cum_log_probs":0.0,"generation_logits":0.0,"model_name":"ensemble","model_version":"1","output_log_probs":[0.0],"sequence_end":false,"sequence_id":0,"sequence_index":0,"sequence_start":false,"text_output":"Hel"})",
      R"({"model_name":"ensemble","model_version":"1","text_output":"lo, "})",
      R"({"model_name":"ensemble","model_version":"1","text_output":""})",
      R"({"model_name":"ensemble","model_version":"1","text_output":"wörld \"quoted\""})",
  };
  return events;
}

TEST(KserveDialectTest, GenerateStreamTranslatesUnderAnySplit) {
  std::unique_ptr<Dialect> d = Kserve(R"({"protocol":"generate"})");
  const std::string body = protocol_test::SseBodyFromChunkLines(StreamEvents(), false);
  std::string expected_text;
  for (const std::string& e : StreamEvents()) {
    expected_text += json::parse(e)["text_output"].get<std::string>();
  }
  std::vector<std::string> whole;
  for (Split split : {Split::kWhole, Split::kByteByByte, Split::kRandom}) {
    for (uint32_t seed : {1u, 2u, 3u}) {
      protocol_test::DecodedStream got = DecodeStream(*d, body, split, seed);
      ASSERT_TRUE(got.status.ok()) << got.status;
      ASSERT_FALSE(got.events.empty());
      EXPECT_EQ(got.events.back(), "[DONE]");
      std::string text, finish, id;
      bool role = false;
      for (size_t i = 0; i + 1 < got.events.size(); ++i) {
        absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(got.events[i]);
        ASSERT_TRUE(chunk.ok()) << chunk.status() << got.events[i];
        if (id.empty()) id = chunk->id;
        EXPECT_EQ(chunk->id, id);  // one id per stream
        EXPECT_FALSE(chunk->usage.has_value());  // Triton reports no usage here
        ASSERT_EQ(chunk->choices.size(), 1u);
        role = role || chunk->choices[0].delta.role == Role::kAssistant;
        text += chunk->choices[0].delta.content.value_or("");
        if (chunk->choices[0].finish_reason) finish = *chunk->choices[0].finish_reason;
      }
      EXPECT_TRUE(role);
      EXPECT_EQ(text, expected_text);
      EXPECT_EQ(finish, "stop");
      // Ids derive from the stream itself, so the output is byte-identical.
      if (whole.empty()) whole = got.events;
      EXPECT_EQ(got.events, whole);
    }
  }
  // role+content "Hel", "lo, ", "wörld...", finish, [DONE]: the empty event gives nothing.
  EXPECT_EQ(whole.size(), 5u);
}

TEST(KserveDialectTest, StreamedFinishReasonAndCountsEndWithAUsageChunk) {
  std::unique_ptr<Dialect> d = Kserve(R"({"protocol":"generate"})");
  const std::string body = protocol_test::SseBodyFromChunkLines(
      {R"({"model_name":"v","text_output":"a"})",
       R"({"model_name":"v","text_output":" b","finish_reason":["length"],"num_input_tokens":9,"num_output_tokens":2})"},
      false);
  protocol_test::DecodedStream got = DecodeStream(*d, body, Split::kWhole);
  ASSERT_TRUE(got.status.ok()) << got.status;
  // The gateway reads usage only right before [DONE] (KeepsUsagePromise).
  protocol_test::UsagePromiseCheck promise = protocol_test::CheckUsagePromise(*d, body);
  EXPECT_EQ(promise.broken, "");
  EXPECT_EQ(promise.usage_chunks, 1);
  ASSERT_EQ(got.events.size(), 5u);
  EXPECT_EQ(ParseChatCompletionChunk(got.events[2])->choices[0].finish_reason, "length");
  absl::StatusOr<ChatCompletionChunk> usage = ParseChatCompletionChunk(got.events[3]);
  ASSERT_TRUE(usage.ok());
  EXPECT_TRUE(usage->choices.empty());
  ASSERT_TRUE(usage->usage.has_value());
  EXPECT_EQ(usage->usage->prompt_tokens, 9);
  EXPECT_EQ(usage->usage->completion_tokens, 2);
  EXPECT_EQ(usage->usage->total_tokens, 11);
}

TEST(KserveDialectTest, MidStreamErrorEventIsAServerError) {
  std::unique_ptr<Dialect> d = Kserve(R"({"protocol":"generate"})");
  const std::string body = protocol_test::SseBodyFromChunkLines(
      {R"({"model_name":"m","text_output":"part"})",
       R"({"error":"in ensemble 'ensemble', Encountered error for requestId 1: out of memory"})"},
      false);
  for (Split split : {Split::kWhole, Split::kByteByByte}) {
    protocol_test::DecodedStream got = DecodeStream(*d, body, split);
    ASSERT_FALSE(got.status.ok());
    EXPECT_EQ(HttpStatusForStatus(got.status), 500);
    EXPECT_EQ(got.status.message(),
              "in ensemble 'ensemble', Encountered error for requestId 1: out of memory");
    ASSERT_EQ(got.events.size(), 1u);  // the text before the error was delivered
  }
}

TEST(KserveDialectTest, IngressReadsV2RequestsAsTritonWould) {
  std::unique_ptr<Dialect> d = Kserve();
  WireRequest wire;
  wire.target = "/v2/models/ensemble/infer";
  wire.body =
      R"({"inputs":[{"name":"text_input","shape":[1],"datatype":"BYTES","data":["Hi"]},)"
      R"({"name":"max_tokens","shape":[1],"datatype":"INT32","data":[16]},)"
      R"({"name":"temperature","shape":[1],"datatype":"FP32","data":[0.5]}],)"
      R"("parameters":{"top_k":4}})";
  absl::StatusOr<ChatRequest> chat = d->DecodeRequest(wire);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->model, "ensemble");
  ASSERT_EQ(chat->messages.size(), 1u);
  EXPECT_EQ(std::get<std::string>(*chat->messages[0].content), "Hi");
  EXPECT_EQ(chat->max_tokens, 16);
  EXPECT_EQ(chat->temperature, 0.5);
  EXPECT_EQ(chat->extra, (ExtraFields{{"top_k", "4"}}));

  wire.body =
      R"({"inputs":[{"name":"text_input","shape":[1],"datatype":"BYTES","data":["Hi"]},)"
      R"({"name":"max_tokens","shape":[1],"datatype":"FP32","data":[16]}]})";
  absl::StatusOr<ChatRequest> wrong = d->DecodeRequest(wire);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(*ErrorParam(wrong.status()), "inputs[1].datatype");
  wire.body = R"({"inputs":[{"name":"prompt","shape":[1],"datatype":"BYTES","data":["Hi"]}]})";
  EXPECT_EQ(*ErrorParam(d->DecodeRequest(wire).status()), "inputs[0].name");
}

TEST(KserveDialectTest, IngressResponsesRoundTripThroughTheDecoder) {
  std::unique_ptr<Dialect> v2 = Kserve();
  ChatCompletion completion;
  completion.id = "abc";
  completion.model = "ensemble";
  ChatChoice choice;
  choice.message.content = std::string("Hi there");
  choice.finish_reason = "stop";
  completion.choices.push_back(choice);
  absl::StatusOr<std::string> body = v2->EncodeResponse(completion);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(json::parse(*body),
            (json{{"model_name", "ensemble"},
                  {"model_version", "1"},
                  {"id", "abc"},
                  {"outputs",
                   {{{"name", "text_output"}, {"datatype", "BYTES"}, {"shape", {1}},
                     {"data", {"Hi there"}}}}}}));
  ASSERT_TRUE(v2->DecodeResponse(&*body).ok());
  EXPECT_EQ(std::get<std::string>(*ParseChatCompletion(*body)->choices[0].message.content),
            "Hi there");

  std::unique_ptr<Dialect> gen = Kserve(R"({"protocol":"generate"})");
  std::unique_ptr<StreamEncoder> encoder = gen->NewStreamEncoder();
  std::string bytes;
  for (const char* piece : {"Hi", " there"}) {
    ChatCompletionChunk chunk;
    chunk.model = "ensemble";
    ChunkChoice c;
    c.delta.content = std::string(piece);
    chunk.choices.push_back(c);
    ASSERT_TRUE(encoder->Encode(chunk, &bytes).ok());
  }
  ASSERT_TRUE(encoder->Finish(&bytes).ok());
  EXPECT_EQ(bytes,
            "data: {\"model_name\":\"ensemble\",\"model_version\":\"1\",\"text_output\":\"Hi\"}"
            "\n\ndata: {\"model_name\":\"ensemble\",\"model_version\":\"1\",\"text_output\":"
            "\" there\"}\n\n");
  protocol_test::DecodedStream got = DecodeStream(*gen, bytes, Split::kRandom);
  ASSERT_TRUE(got.status.ok());
  EXPECT_EQ(got.events.size(), 4u);  // "Hi", " there", finish, [DONE]
}

}  // namespace
}  // namespace modeenvoy
