// lib/protocol/dialects/kserve.cc: the "kserve" dialect: custom models behind Triton,
// TorchServe or KServe, in one of two protocols (option "protocol"):
//  - "v2": the Open Inference Protocol (KServe V2), POST /v2/models/{m}[/versions/{v}]/infer,
//    text in and out as BYTES tensors. Followed: kserve.github.io "Open Inference Protocol
//    (V2 Inference Protocol)", HTTP/REST section (request, response and error objects).
//  - "generate": Triton's generate extension, POST .../generate and .../generate_stream (SSE).
//    Followed: triton-inference-server/server docs/protocol/extension_generate.md.
// The default tensor names and datatypes are those of the TensorRT-LLM backend's ensemble
// model (NVIDIA/TensorRT-LLM triton_backend/all_models/inflight_batcher_llm/ensemble/
// config.pbtxt): text_input BYTES, max_tokens INT32 (required there), stop_words BYTES[-1],
// temperature/top_p/presence_penalty/frequency_penalty FP32, seed UINT64, stream BOOL; output
// text_output BYTES. docs/providers.md "## kserve" is the user-facing mapping.
//
// Chat messages become one prompt string through a template; the protocols have no place for
// tools, images or structured output, so those are refused by field path. These servers report
// no token counts unless a model adds num_input_tokens/num_output_tokens outputs (TensorRT-LLM
// and vLLM backends can), so usage is only set when those are present.
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

using core_internal::Json;
using core_internal::ObjectReader;

enum class Protocol { kV2, kGenerate };

// ---- Generation parameters ----------------------------------------------------------------

enum class ParamKind { kInt, kFloat, kStrings, kBool };

// The unified fields sent to the model, in this order. Index constants below.
struct ParamSpec {
  std::string_view key;       // the option key and the unified field
  std::string_view name;      // default tensor / field name
  std::string_view datatype;  // default v2 datatype
  ParamKind kind;
};
constexpr ParamSpec kParamSpecs[] = {
    {"max_tokens", "max_tokens", "INT32", ParamKind::kInt},
    {"temperature", "temperature", "FP32", ParamKind::kFloat},
    {"top_p", "top_p", "FP32", ParamKind::kFloat},
    {"stop", "stop_words", "BYTES", ParamKind::kStrings},
    {"seed", "seed", "UINT64", ParamKind::kInt},
    {"presence_penalty", "presence_penalty", "FP32", ParamKind::kFloat},
    {"frequency_penalty", "frequency_penalty", "FP32", ParamKind::kFloat},
    {"stream", "stream", "BOOL", ParamKind::kBool},
};
constexpr size_t kParamCount = std::size(kParamSpecs);
enum ParamIndex : size_t {
  kMaxTokens, kTemperature, kTopP, kStop, kSeed, kPresencePenalty, kFrequencyPenalty, kStream
};

// Where one parameter goes.
struct ParamInput {
  bool enabled = true;
  std::string name;
  std::string datatype;       // v2 input tensor datatype
  bool as_parameter = false;  // a request "parameters" member instead of an input / field
};

bool DatatypeFits(ParamKind kind, std::string_view datatype) {
  switch (kind) {
    case ParamKind::kInt:
      return datatype == "INT32" || datatype == "INT64" || datatype == "UINT32" ||
             datatype == "UINT64";
    case ParamKind::kFloat:
      return datatype == "FP16" || datatype == "FP32" || datatype == "FP64";
    case ParamKind::kStrings:
      return datatype == "BYTES";
    case ParamKind::kBool:
      return datatype == "BOOL";
  }
  return false;
}

// ---- Prompt templates ---------------------------------------------------------------------

// A per-message template cut at its {{role}} and {{content}} placeholders. The prompt is every
// message rendered in turn, then the assistant's turn rendered up to {{content}}.
struct PromptTemplate {
  enum class Kind { kText, kRole, kContent };
  struct Segment {
    Kind kind;
    std::string text;
  };
  std::vector<Segment> segments;
  std::string name;  // "chatml", "llama3", "plain" or "custom"

  void Render(std::string_view role, std::string_view content, bool open,
              std::string* out) const {
    for (const Segment& s : segments) {
      switch (s.kind) {
        case Kind::kText: out->append(s.text); break;
        case Kind::kRole: out->append(role); break;
        case Kind::kContent:
          if (open) return;
          out->append(content);
          break;
      }
    }
  }
};

constexpr std::string_view kChatMl = "<|im_start|>{{role}}\n{{content}}<|im_end|>\n";
constexpr std::string_view kLlama3 =
    "<|start_header_id|>{{role}}<|end_header_id|>\n\n{{content}}<|eot_id|>";
constexpr std::string_view kPlain = "{{role}}: {{content}}\n";

absl::StatusOr<PromptTemplate> ParseTemplate(std::string_view text, std::string name) {
  PromptTemplate t;
  t.name = std::move(name);
  int contents = 0;
  std::string literal;
  size_t i = 0;
  while (i < text.size()) {
    if (text.compare(i, 8, "{{role}}") == 0) {
      if (!literal.empty()) t.segments.push_back({PromptTemplate::Kind::kText, std::move(literal)});
      literal.clear();
      t.segments.push_back({PromptTemplate::Kind::kRole, {}});
      i += 8;
    } else if (text.compare(i, 11, "{{content}}") == 0) {
      if (!literal.empty()) t.segments.push_back({PromptTemplate::Kind::kText, std::move(literal)});
      literal.clear();
      t.segments.push_back({PromptTemplate::Kind::kContent, {}});
      ++contents;
      i += 11;
    } else {
      literal.push_back(text[i++]);
    }
  }
  if (!literal.empty()) t.segments.push_back({PromptTemplate::Kind::kText, std::move(literal)});
  if (contents != 1) {
    return InvalidFieldError("prompt_template",
                             "a custom template must hold {{content}} exactly once "
                             "(or name one of chatml, llama3, plain)");
  }
  return t;
}

// ---- Options ------------------------------------------------------------------------------

struct KserveOptions {
  Protocol protocol = Protocol::kV2;
  std::string version;
  PromptTemplate prompt;
  std::string input_tensor = "text_input";
  std::string output_tensor = "text_output";
  bool batch_dim = false;
  int64_t default_max_tokens = 512;
  std::array<ParamInput, kParamCount> params;
};

absl::Status ReadParamInputs(const ObjectReader& options, KserveOptions* out) {
  for (size_t i = 0; i < kParamCount; ++i) {
    out->params[i].name = std::string(kParamSpecs[i].name);
    out->params[i].datatype = std::string(kParamSpecs[i].datatype);
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> inputs,
                             options.OptionalObject("parameter_inputs"));
  if (!inputs.has_value()) return absl::OkStatus();
  for (const auto& [key, value] : inputs->json().items()) {
    size_t index = kParamCount;
    for (size_t i = 0; i < kParamCount; ++i) {
      if (kParamSpecs[i].key == key) index = i;
    }
    const std::string path = inputs->PathOf(key);
    if (index == kParamCount) return InvalidFieldError(path, "unknown field");
    ParamInput& param = out->params[index];
    if (value.is_null()) {
      param.enabled = false;
      continue;
    }
    MODEENVOY_ASSIGN_OR_RETURN(ObjectReader entry, ObjectReader::Make(value, path));
    MODEENVOY_RETURN_IF_ERROR(entry.RejectUnknown({"name", "datatype", "in"}));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> name, entry.OptionalString("name"));
    if (name.has_value()) param.name = *std::move(name);
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> datatype,
                               entry.OptionalString("datatype"));
    if (datatype.has_value()) {
      if (!DatatypeFits(kParamSpecs[index].kind, *datatype)) {
        return InvalidFieldError(entry.PathOf("datatype"),
                                 absl::StrCat("\"", *datatype, "\" cannot hold ",
                                              core_internal::ToAbsl(kParamSpecs[index].key)));
      }
      param.datatype = *std::move(datatype);
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> in, entry.OptionalString("in"));
    if (in.has_value()) {
      if (*in != "inputs" && *in != "parameters") {
        return InvalidFieldError(entry.PathOf("in"), "must be \"inputs\" or \"parameters\"");
      }
      param.as_parameter = *in == "parameters";
      if (param.as_parameter && kParamSpecs[index].kind == ParamKind::kStrings) {
        return InvalidFieldError(entry.PathOf("in"),
                                 "stop sequences are a list; request parameters hold scalars");
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KserveOptions> ReadOptions(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader options, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown(
      {"protocol", "version", "prompt_template", "input_tensor", "output_tensor", "batch_dim",
       "default_max_tokens", "parameter_inputs"}));
  KserveOptions out;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> protocol,
                             options.OptionalString("protocol"));
  if (protocol.has_value()) {
    if (*protocol == "generate") {
      out.protocol = Protocol::kGenerate;
    } else if (*protocol != "v2") {
      return InvalidFieldError("protocol", "must be \"v2\" or \"generate\"");
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> version, options.OptionalString("version"));
  if (version.has_value()) out.version = *std::move(version);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> prompt,
                             options.OptionalString("prompt_template"));
  std::string name = prompt.value_or("chatml");
  if (name == "chatml") {
    MODEENVOY_ASSIGN_OR_RETURN(out.prompt, ParseTemplate(kChatMl, name));
  } else if (name == "llama3") {
    MODEENVOY_ASSIGN_OR_RETURN(out.prompt, ParseTemplate(kLlama3, name));
  } else if (name == "plain") {
    MODEENVOY_ASSIGN_OR_RETURN(out.prompt, ParseTemplate(kPlain, name));
  } else {
    MODEENVOY_ASSIGN_OR_RETURN(out.prompt, ParseTemplate(name, "custom"));
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> input,
                             options.OptionalString("input_tensor"));
  if (input.has_value()) out.input_tensor = *std::move(input);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> output,
                             options.OptionalString("output_tensor"));
  if (output.has_value()) out.output_tensor = *std::move(output);
  if (const Json* batch = options.Find("batch_dim"); batch != nullptr) {
    if (!batch->is_boolean()) return InvalidFieldError("batch_dim", "must be a boolean");
    out.batch_dim = batch->get<bool>();
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens,
                             options.OptionalInt("default_max_tokens", 0,
                                                 std::numeric_limits<int32_t>::max()));
  if (max_tokens.has_value()) out.default_max_tokens = *max_tokens;
  MODEENVOY_RETURN_IF_ERROR(ReadParamInputs(options, &out));
  return out;
}

// ---- Egress helpers -----------------------------------------------------------------------

absl::Status Unsupported(std::string_view path, std::string_view why) {
  return InvalidFieldError(path, absl::StrCat("not supported by kserve (",
                                              core_internal::ToAbsl(why), ")"));
}

// RFC 3986 unreserved characters stay; every other byte is percent-encoded (a model name is
// one path segment).
void AppendPathSegment(std::string* out, std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : segment) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    }
  }
}

std::string_view TemplateRole(Role role) {
  switch (role) {
    case Role::kSystem:
    case Role::kDeveloper:
      return "system";
    case Role::kAssistant:
      return "assistant";
    default:
      return "user";
  }
}

constexpr std::string_view kNoTools = "the protocol carries one prompt string: no tools";

// Renders the messages into `*prompt`.
absl::Status RenderPrompt(const ChatRequest& chat, const PromptTemplate& tmpl,
                          std::string* prompt) {
  std::string text;
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const Message& m = chat.messages[i];
    const std::string path = absl::StrCat("messages[", i, "]");
    if (m.role == Role::kTool || m.role == Role::kFunction) {
      return Unsupported(path + ".role", kNoTools);
    }
    if (!m.tool_calls.empty()) return Unsupported(path + ".tool_calls", kNoTools);
    if (m.name.has_value()) {
      return Unsupported(path + ".name", "the prompt template has no place for names");
    }
    if (!m.extra.empty()) {
      return Unsupported(absl::StrCat(path, ".", m.extra.front().first), "unknown to kserve");
    }
    text.clear();
    if (!m.content.has_value()) {
      if (!m.refusal.has_value()) return InvalidFieldError(path + ".content", "is required");
      text = *m.refusal;
    } else if (const auto* s = std::get_if<std::string>(&*m.content)) {
      text = *s;
    } else {
      const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
      for (size_t j = 0; j < parts.size(); ++j) {
        const ContentPart& part = parts[j];
        const std::string part_path = absl::StrCat(path, ".content[", j, "]");
        std::string_view piece;
        switch (part.type) {
          case ContentPartType::kText: piece = part.text; break;
          case ContentPartType::kRefusal: piece = part.refusal; break;
          case ContentPartType::kImageUrl:
            return Unsupported(part_path + ".image_url", "the prompt is text only");
          case ContentPartType::kInputAudio:
            return Unsupported(part_path + ".input_audio", "the prompt is text only");
          case ContentPartType::kFile:
            return Unsupported(part_path + ".file", "the prompt is text only");
          case ContentPartType::kOther:
            return Unsupported(part_path + ".type", "the prompt is text only");
        }
        if (j > 0) text.push_back('\n');
        text.append(piece);
      }
    }
    tmpl.Render(TemplateRole(m.role), text, /*open=*/false, prompt);
  }
  tmpl.Render("assistant", {}, /*open=*/true, prompt);
  return absl::OkStatus();
}

// Unified fields the protocol has no place for.
absl::Status RejectInexpressible(const ChatRequest& chat) {
  if (!chat.tools.empty()) return Unsupported("tools", kNoTools);
  // "none" asks for what this protocol does anyway.
  if (chat.tool_choice.has_value() && chat.tool_choice->mode != "none") {
    return Unsupported("tool_choice", kNoTools);
  }
  if (chat.parallel_tool_calls.has_value()) return Unsupported("parallel_tool_calls", kNoTools);
  if (chat.functions.has_value()) return Unsupported("functions", kNoTools);
  if (chat.function_call.has_value()) return Unsupported("function_call", kNoTools);
  if (chat.response_format.has_value()) {
    return Unsupported("response_format", "the protocol has no structured-output setting");
  }
  if (chat.n.has_value() && *chat.n > 1) return Unsupported("n", "one sequence per request");
  if (chat.logprobs.value_or(false)) return Unsupported("logprobs", "no log probabilities");
  if (chat.top_logprobs.has_value()) return Unsupported("top_logprobs", "no log probabilities");
  if (chat.logit_bias.has_value()) return Unsupported("logit_bias", "no token biases");
  if (chat.audio.has_value()) return Unsupported("audio", "text output only");
  if (chat.modalities.has_value()) {
    for (const std::string& m : *chat.modalities) {
      if (m != "text") return Unsupported("modalities", "text output only");
    }
  }
  if (chat.prediction.has_value()) return Unsupported("prediction", "no predicted outputs");
  if (chat.web_search_options.has_value()) return Unsupported("web_search_options", "no search");
  if (chat.reasoning_effort.has_value()) {
    return Unsupported("reasoning_effort", "no reasoning controls");
  }
  if (chat.verbosity.has_value()) return Unsupported("verbosity", "no verbosity control");
  return absl::OkStatus();
}

// One parameter value, from the unified request.
struct ParamValue {
  bool present = false;
  std::string_view field;  // unified path for errors
  int64_t integer = 0;
  double number = 0;
  bool boolean = false;
  std::vector<std::string_view> strings;
};

ParamValue IntValue(std::string_view field, int64_t v) {
  ParamValue out;
  out.present = true;
  out.field = field;
  out.integer = v;
  return out;
}
ParamValue NumberValue(std::string_view field, double v) {
  ParamValue out;
  out.present = true;
  out.field = field;
  out.number = v;
  return out;
}

absl::Status CheckIntRange(const ParamValue& v, const ParamInput& input) {
  int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  if (input.datatype == "INT32") {
    lo = std::numeric_limits<int32_t>::min();
    hi = std::numeric_limits<int32_t>::max();
  } else if (input.datatype == "UINT32") {
    lo = 0;
    hi = std::numeric_limits<uint32_t>::max();
  } else if (input.datatype == "UINT64") {
    lo = 0;
  }
  if (v.integer < lo || v.integer > hi) {
    return InvalidFieldError(v.field, absl::StrCat(v.integer, " does not fit the model's ",
                                                   input.datatype, " input \"", input.name,
                                                   "\""));
  }
  return absl::OkStatus();
}

void AppendParamJson(std::string* out, ParamKind kind, const ParamValue& v) {
  switch (kind) {
    case ParamKind::kInt: AppendJsonInt(out, v.integer); break;
    case ParamKind::kFloat: AppendJsonDouble(out, v.number); break;
    case ParamKind::kBool: out->append(v.boolean ? "true" : "false"); break;
    case ParamKind::kStrings: {
      out->push_back('[');
      for (size_t i = 0; i < v.strings.size(); ++i) {
        if (i > 0) out->push_back(',');
        AppendJsonString(out, v.strings[i]);
      }
      out->push_back(']');
      break;
    }
  }
}

// ---- Decoding helpers ---------------------------------------------------------------------

// "stop" unless the server's reason says the length limit ended it.
std::string_view MapFinishReason(std::string_view reason) {
  return reason.find("length") != std::string_view::npos || reason == "max_tokens" ? "length"
                                                                                    : "stop";
}

// Deterministic ids (FNV-1a of the body or the first stream event): the protocols carry
// none unless the request sent one, and a sans-I/O translator reads no clock or randomness.
std::string NewCompletionId(std::string_view seed) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : seed) h = (h ^ c) * 1099511628211ULL;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "chatcmpl-kserve-";
  for (int shift = 60; shift >= 0; shift -= 4) id.push_back(kHex[(h >> shift) & 15]);
  return id;
}

// What a response object (v2 infer, generate, or one generate_stream event) said.
struct ModelOutput {
  std::string model;
  std::string id;
  std::vector<std::string> texts;  // one per sequence
  bool has_text = false;
  std::optional<std::string> finish_reason;
  std::optional<int64_t> input_tokens;
  std::optional<int64_t> output_tokens;
  bool error = false;
};

// Reads a value that is a string, a number or a (nested) array of them, appending strings to
// `*strings` and the first number to `*number`.
bool ReadTensorData(JsonReader& reader, std::vector<std::string>* strings,
                    std::optional<int64_t>* number) {
  JsonType type;
  if (!reader.Peek(&type)) return false;
  switch (type) {
    case JsonType::kString: {
      std::string s;
      if (!reader.ReadString(&s)) return false;
      if (strings != nullptr) strings->push_back(std::move(s));
      return true;
    }
    case JsonType::kNumber: {
      std::string_view text;
      if (!reader.ReadNumber(&text)) return false;
      int64_t v;
      if (number != nullptr && !number->has_value() && NumberToInt64(text, &v)) *number = v;
      return true;
    }
    case JsonType::kArray: {
      if (!reader.BeginArray()) return false;
      bool first = true, has = false;
      while (reader.NextElement(&first, &has) && has) {
        if (!ReadTensorData(reader, strings, number)) return false;
      }
      return reader.status().ok();
    }
    default:
      return reader.SkipValue();
  }
}

enum class OutputKind { kNone, kText, kFinish, kInputTokens, kOutputTokens };

OutputKind KindOfOutput(std::string_view name, std::string_view text_name) {
  if (name == text_name) return OutputKind::kText;
  if (name == "finish_reason") return OutputKind::kFinish;
  if (name == "num_input_tokens") return OutputKind::kInputTokens;
  if (name == "num_output_tokens") return OutputKind::kOutputTokens;
  return OutputKind::kNone;
}

bool ReadOutputValue(JsonReader& reader, OutputKind kind, ModelOutput* out) {
  switch (kind) {
    case OutputKind::kText:
      out->has_text = true;
      return ReadTensorData(reader, &out->texts, nullptr);
    case OutputKind::kFinish: {
      std::vector<std::string> reasons;
      if (!ReadTensorData(reader, &reasons, nullptr)) return false;
      if (!reasons.empty()) out->finish_reason = std::move(reasons.front());
      return true;
    }
    case OutputKind::kInputTokens:
      return ReadTensorData(reader, nullptr, &out->input_tokens);
    case OutputKind::kOutputTokens:
      return ReadTensorData(reader, nullptr, &out->output_tokens);
    case OutputKind::kNone:
      break;
  }
  return reader.SkipValue();
}

// One element of a v2 "outputs" array. Its members come in any order, so "data" is kept raw
// until "name" is known.
bool ReadV2Output(JsonReader& reader, std::string_view text_name, ModelOutput* out) {
  if (!reader.BeginObject()) return false;
  bool first = true, has = false;
  std::string scratch, name, data;
  std::string_view key;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "name") {
      ok = reader.ReadString(&name);
    } else if (key == "data") {
      ok = reader.CaptureValue(&data);
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return false;
  }
  if (!reader.status().ok()) return false;
  OutputKind kind = KindOfOutput(name, text_name);
  if (kind == OutputKind::kNone || data.empty()) return true;
  JsonReader inner(data, kMaxJsonDepth);
  return ReadOutputValue(inner, kind, out);
}

// Reads a whole response object: v2 ({"model_name","id","outputs":[...]}) or generate
// ({"model_name","text_output",...}); {"error": ...} sets out->error.
absl::Status ReadModelOutput(std::string_view body, Protocol protocol,
                             std::string_view text_name, ModelOutput* out) {
  JsonReader reader(body, kMaxJsonDepth);
  if (!reader.BeginObject()) return reader.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (reader.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "error") {
      out->error = true;
      ok = reader.SkipValue();
    } else if (key == "model_name") {
      JsonType type;
      ok = reader.Peek(&type) &&
           (type == JsonType::kString ? reader.ReadString(&out->model) : reader.SkipValue());
    } else if (key == "id" && protocol == Protocol::kV2) {
      JsonType type;
      ok = reader.Peek(&type) &&
           (type == JsonType::kString ? reader.ReadString(&out->id) : reader.SkipValue());
    } else if (key == "outputs" && protocol == Protocol::kV2) {
      ok = reader.BeginArray();
      bool first_output = true, more = false;
      while (ok && reader.NextElement(&first_output, &more) && more) {
        ok = ReadV2Output(reader, text_name, out);
      }
      ok = ok && reader.status().ok();
    } else if (protocol == Protocol::kGenerate) {
      ok = ReadOutputValue(reader, KindOfOutput(key, text_name), out);
    } else {
      ok = reader.SkipValue();
    }
    if (!ok) return reader.status();
  }
  if (!reader.ExpectEnd()) return reader.status();
  return reader.status();
}

void AppendUsage(std::string* out, const ModelOutput& o) {
  JsonObjectWriter usage(out);
  usage.Key("prompt_tokens");
  AppendJsonInt(out, *o.input_tokens);
  usage.Key("completion_tokens");
  AppendJsonInt(out, *o.output_tokens);
  usage.Key("total_tokens");
  AppendJsonInt(out, *o.input_tokens + *o.output_tokens);
  usage.End();
}

void AppendChunkHead(std::string* out, std::string_view id, int64_t created,
                     std::string_view model) {
  out->append("{\"id\":");
  AppendJsonString(out, id);
  out->append(",\"object\":\"chat.completion.chunk\",\"created\":");
  AppendJsonInt(out, created);
  out->append(",\"model\":");
  AppendJsonString(out, model);
}

// generate_stream events -> unified chunks. State: the id, model and what the last events
// reported (finish reason, token counts): bounded.
class GenerateStreamDecoder final : public StreamTranslator {
 public:
  // Its usage-only chunk comes right before "[DONE]", out of the same call, and no other
  // chunk it writes has a usage member.
  bool KeepsUsagePromise() const override { return true; }

  explicit GenerateStreamDecoder(std::string text_name) : text_name_(std::move(text_name)) {}

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    ModelOutput o;
    absl::Status read = ReadModelOutput(frame.data, Protocol::kGenerate, text_name_, &o);
    if (!read.ok()) {
      return InvalidFieldError("stream", absl::StrCat("unreadable generate_stream event: ",
                                                      read.message()));
    }
    // Triton reports a failure after the 200 status as an event holding {"error": "..."}.
    if (o.error) return StatusFromUpstreamError(500, frame.data);
    Start(frame.data, o.model);
    if (o.finish_reason.has_value()) finish_reason_ = MapFinishReason(*o.finish_reason);
    if (o.input_tokens.has_value()) input_tokens_ = o.input_tokens;
    if (o.output_tokens.has_value()) output_tokens_ = o.output_tokens;
    std::string text;
    for (const std::string& t : o.texts) text += t;
    if (text.empty() && sent_role_) return absl::OkStatus();
    SseEvent event;
    std::string& data = event.data;
    AppendChunkHead(&data, id_, created_, model_);
    data.append(",\"choices\":[{\"index\":0,\"delta\":{");
    if (!sent_role_) data.append("\"role\":\"assistant\",");
    data.append("\"content\":");
    AppendJsonString(&data, text);
    data.append("},\"logprobs\":null,\"finish_reason\":null}]}");
    sent_role_ = true;
    out->push_back(std::move(event));
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<SseEvent>* out) override {
    Start("", "");
    SseEvent finish;
    AppendChunkHead(&finish.data, id_, created_, model_);
    finish.data.append(",\"choices\":[{\"index\":0,\"delta\":");
    finish.data.append(sent_role_ ? "{}" : "{\"role\":\"assistant\",\"content\":\"\"}");
    finish.data.append(",\"logprobs\":null,\"finish_reason\":");
    AppendJsonString(&finish.data, finish_reason_);
    finish.data.append("}]}");
    out->push_back(std::move(finish));
    if (input_tokens_.has_value() && output_tokens_.has_value()) {
      ModelOutput o;
      o.input_tokens = input_tokens_;
      o.output_tokens = output_tokens_;
      SseEvent usage;
      AppendChunkHead(&usage.data, id_, created_, model_);
      usage.data.append(",\"choices\":[],\"usage\":");
      AppendUsage(&usage.data, o);
      usage.data.push_back('}');
      out->push_back(std::move(usage));
    }
    SseEvent done;
    done.data = std::string(kSseDoneData);
    out->push_back(std::move(done));
    return absl::OkStatus();
  }

 private:
  void Start(std::string_view seed, std::string_view model) {
    if (!id_.empty()) return;
    id_ = NewCompletionId(seed);
    model_ = std::string(model);
  }

  const std::string text_name_;
  std::string id_;
  int64_t created_ = 0;  // the protocols carry no time
  std::string model_;
  bool sent_role_ = false;
  std::string_view finish_reason_ = "stop";
  std::optional<int64_t> input_tokens_;
  std::optional<int64_t> output_tokens_;
};

// ---- Ingress helpers ----------------------------------------------------------------------

// Unified chunks -> generate_stream events (the server's own shape; no terminator).
class GenerateStreamEncoder final : public StreamEncoder {
 public:
  explicit GenerateStreamEncoder(std::string text_name) : text_name_(std::move(text_name)) {}

  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    for (size_t i = 0; i < chunk.choices.size(); ++i) {
      const ChunkChoice& choice = chunk.choices[i];
      if (!choice.delta.tool_calls.empty()) {
        return Unsupported(absl::StrCat("choices[", i, "].delta.tool_calls"), kNoTools);
      }
      if (choice.index != 0) {
        return Unsupported(absl::StrCat("choices[", i, "].index"), "one sequence per request");
      }
      std::string text = choice.delta.content.value_or("");
      if (choice.delta.refusal.has_value()) text += *choice.delta.refusal;
      if (text.empty()) continue;
      Json event = {{"model_name", chunk.model}, {"model_version", "1"}, {text_name_, text}};
      out->append(EncodeSseEvent(event.dump(-1, ' ', false, Json::error_handler_t::replace)));
    }
    return absl::OkStatus();
  }
  void EncodeError(const absl::Status& error, std::string* out) override {
    Json event = {{"error", std::string(error.message())}};
    out->append(EncodeSseEvent(event.dump(-1, ' ', false, Json::error_handler_t::replace)));
  }
  absl::Status Finish(std::string* /*out*/) override { return absl::OkStatus(); }

 private:
  const std::string text_name_;
};

// Splits "/v2/models/{m}[/versions/{v}]/{verb}" (query ignored). False if not of that form.
bool SplitTarget(std::string_view target, std::string* model, std::string* verb) {
  target = target.substr(0, target.find('?'));
  constexpr std::string_view kPrefix = "/v2/models/";
  if (target.substr(0, kPrefix.size()) != kPrefix) return false;
  target.remove_prefix(kPrefix.size());
  size_t slash = target.find('/');
  if (slash == std::string_view::npos || slash == 0) return false;
  std::string_view raw_model = target.substr(0, slash);
  std::string_view rest = target.substr(slash + 1);
  constexpr std::string_view kVersions = "versions/";
  if (rest.substr(0, kVersions.size()) == kVersions) {
    rest.remove_prefix(kVersions.size());
    size_t v = rest.find('/');
    if (v == std::string_view::npos || v == 0) return false;
    rest.remove_prefix(v + 1);
  }
  *verb = std::string(rest);
  model->clear();
  for (size_t i = 0; i < raw_model.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (raw_model[i] == '%' && i + 2 < raw_model.size() && hex(raw_model[i + 1]) >= 0 &&
        hex(raw_model[i + 2]) >= 0) {
      model->push_back(static_cast<char>(hex(raw_model[i + 1]) * 16 + hex(raw_model[i + 2])));
      i += 2;
    } else {
      model->push_back(raw_model[i]);
    }
  }
  return true;
}

// Sets the unified field of parameter `index` from a JSON value, checking its type as the
// model's config would.
absl::Status SetParamFromJson(size_t index, const Json& value, const std::string& path,
                              ChatRequest* chat) {
  const ParamKind kind = kParamSpecs[index].kind;
  // v2 data arrays hold one element for scalar inputs.
  const Json* v = &value;
  if (kind != ParamKind::kStrings && v->is_array()) {
    if (v->size() != 1) return InvalidFieldError(path, "expected one element");
    v = &(*v)[0];
  }
  switch (kind) {
    case ParamKind::kInt:
      if (!v->is_number_integer()) return InvalidFieldError(path, "expected an integer");
      if (index == kMaxTokens) chat->max_tokens = v->get<int64_t>();
      if (index == kSeed) chat->seed = v->get<int64_t>();
      return absl::OkStatus();
    case ParamKind::kFloat: {
      if (!v->is_number()) return InvalidFieldError(path, "expected a number");
      double d = v->get<double>();
      if (index == kTemperature) chat->temperature = d;
      if (index == kTopP) chat->top_p = d;
      if (index == kPresencePenalty) chat->presence_penalty = d;
      if (index == kFrequencyPenalty) chat->frequency_penalty = d;
      return absl::OkStatus();
    }
    case ParamKind::kBool:
      if (!v->is_boolean()) return InvalidFieldError(path, "expected a boolean");
      return absl::OkStatus();  // the stream flag: the URL decides
    case ParamKind::kStrings: {
      std::vector<std::string> stops;
      const Json list = v->is_array() ? *v : Json::array({*v});
      for (const Json& s : list) {
        if (!s.is_string()) return InvalidFieldError(path, "expected strings");
        if (!s.get<std::string>().empty()) stops.push_back(s.get<std::string>());
      }
      if (!stops.empty()) chat->stop = std::move(stops);
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

// ---- The dialect --------------------------------------------------------------------------

class KserveDialect final : public Dialect {
 public:
  explicit KserveDialect(KserveOptions options) : o_(std::move(options)) {}

  std::string_view name() const override { return "kserve"; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    MODEENVOY_RETURN_IF_ERROR(RejectInexpressible(chat));
    if (call.stream && o_.protocol == Protocol::kV2) {
      return Unsupported("stream",
                         "the v2 infer protocol answers whole; configure protocol \"generate\" "
                         "for generate_stream");
    }
    std::array<ParamValue, kParamCount> values;
    MODEENVOY_RETURN_IF_ERROR(CollectParams(chat, call.stream, &values));

    std::string_view model = call.model.empty() ? std::string_view(chat.model) : call.model;
    out->method = "POST";
    out->target = "/v2/models/";
    AppendPathSegment(&out->target, model);
    if (!o_.version.empty()) {
      out->target += "/versions/";
      AppendPathSegment(&out->target, o_.version);
    }
    if (o_.protocol == Protocol::kV2) {
      out->target += "/infer";
    } else {
      out->target += call.stream ? "/generate_stream" : "/generate";
    }
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");

    std::string prompt;
    MODEENVOY_RETURN_IF_ERROR(RenderPrompt(chat, o_.prompt, &prompt));
    std::string& body = out->body;
    body.clear();
    body.reserve(prompt.size() + 256);
    if (o_.protocol == Protocol::kV2) {
      MODEENVOY_RETURN_IF_ERROR(WriteInferBody(chat, prompt, values, &body));
    } else {
      MODEENVOY_RETURN_IF_ERROR(WriteGenerateBody(chat, prompt, values, &body));
    }
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }

  absl::Status DecodeResponse(std::string* body) const override {
    ModelOutput o;
    absl::Status read = ReadModelOutput(*body, o_.protocol, o_.output_tensor, &o);
    if (!read.ok()) return read;
    if (o.error) return StatusFromUpstreamError(500, *body);
    if (!o.has_text) {
      return InvalidFieldError(o_.protocol == Protocol::kV2 ? "outputs" : o_.output_tensor,
                               absl::StrCat("the response has no output \"", o_.output_tensor,
                                            "\""));
    }
    if (o.texts.empty()) o.texts.emplace_back();
    std::string id = o.id.empty() ? NewCompletionId(*body) : "chatcmpl-" + o.id;
    std::string_view finish = MapFinishReason(o.finish_reason.value_or("stop"));
    std::string out;
    out.reserve(body->size() + 256);
    out.append("{\"id\":");
    AppendJsonString(&out, id);
    // The protocols carry no time, and the translator reads no clock.
    out.append(",\"object\":\"chat.completion\",\"created\":0");
    out.append(",\"model\":");
    AppendJsonString(&out, o.model);
    out.append(",\"choices\":[");
    for (size_t i = 0; i < o.texts.size(); ++i) {
      if (i > 0) out.push_back(',');
      out.append("{\"index\":");
      AppendJsonInt(&out, static_cast<int64_t>(i));
      out.append(",\"message\":{\"role\":\"assistant\",\"content\":");
      AppendJsonString(&out, o.texts[i]);
      out.append("},\"logprobs\":null,\"finish_reason\":");
      AppendJsonString(&out, finish);
      out.push_back('}');
    }
    out.push_back(']');
    if (o.input_tokens.has_value() && o.output_tokens.has_value()) {
      out.append(",\"usage\":");
      AppendUsage(&out, o);
    }
    out.push_back('}');
    *body = std::move(out);
    return absl::OkStatus();
  }

  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<GenerateStreamDecoder>(o_.output_tensor);
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override {
    std::string model, verb;
    if (!SplitTarget(request.target, &model, &verb)) {
      return absl::NotFoundError(absl::StrCat("unknown target \"", request.target, "\""));
    }
    const bool v2 = o_.protocol == Protocol::kV2;
    if (v2 ? verb != "infer" : verb != "generate" && verb != "generate_stream") {
      return absl::NotFoundError(absl::StrCat("unknown target \"", request.target, "\""));
    }
    absl::StatusOr<Json> parsed = core_internal::ParseStrictJson(request.body);
    if (!parsed.ok()) return InvalidFieldError("body", std::string(parsed.status().message()));
    if (!parsed->is_object()) return InvalidFieldError("body", "must be an object");
    ChatRequest chat;
    chat.model = model;
    if (verb == "generate_stream") chat.stream = true;
    std::optional<std::string> prompt;
    if (v2) {
      MODEENVOY_RETURN_IF_ERROR(ReadInferRequest(*parsed, &chat, &prompt));
    } else {
      MODEENVOY_RETURN_IF_ERROR(ReadGenerateRequest(*parsed, &chat, &prompt));
    }
    if (!prompt.has_value()) {
      return InvalidFieldError(v2 ? "inputs" : o_.input_tensor,
                               absl::StrCat("the input \"", o_.input_tensor, "\" is required"));
    }
    chat.messages.push_back(MakeMessage(Role::kUser, *std::move(prompt)));
    return chat;
  }

  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override {
    Json texts = Json::array();
    for (size_t i = 0; i < completion.choices.size(); ++i) {
      const Message& m = completion.choices[i].message;
      if (!m.tool_calls.empty()) {
        return Unsupported(absl::StrCat("choices[", i, "].message.tool_calls"), kNoTools);
      }
      std::string text;
      if (m.content.has_value()) {
        if (const auto* s = std::get_if<std::string>(&*m.content)) {
          text = *s;
        } else {
          for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
            text += p.type == ContentPartType::kRefusal ? p.refusal : p.text;
          }
        }
      } else if (m.refusal.has_value()) {
        text = *m.refusal;
      }
      texts.push_back(std::move(text));
    }
    Json out = {{"model_name", completion.model},
                {"model_version", o_.version.empty() ? "1" : o_.version}};
    if (o_.protocol == Protocol::kV2) {
      out["id"] = completion.id;
      Json shape = o_.batch_dim ? Json::array({1, texts.size()}) : Json::array({texts.size()});
      out["outputs"] = Json::array({Json{{"name", o_.output_tensor},
                                         {"datatype", "BYTES"},
                                         {"shape", std::move(shape)},
                                         {"data", std::move(texts)}}});
    } else if (texts.size() == 1) {
      out[o_.output_tensor] = std::move(texts[0]);
    } else {
      out[o_.output_tensor] = std::move(texts);
    }
    return out.dump(-1, ' ', false, Json::error_handler_t::replace);
  }

  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<GenerateStreamEncoder>(o_.output_tensor);
  }

  std::string EncodeErrorBody(const absl::Status& status) const override {
    Json out = {{"error", std::string(status.message())}};
    return out.dump(-1, ' ', false, Json::error_handler_t::replace);
  }

 private:
  absl::Status CollectParams(const ChatRequest& chat, bool stream,
                             std::array<ParamValue, kParamCount>* values) const {
    auto& v = *values;
    if (chat.max_completion_tokens.has_value()) {
      v[kMaxTokens] = IntValue("max_completion_tokens", *chat.max_completion_tokens);
    } else if (chat.max_tokens.has_value()) {
      v[kMaxTokens] = IntValue("max_tokens", *chat.max_tokens);
    }
    if (chat.temperature.has_value()) {
      v[kTemperature] = NumberValue("temperature", *chat.temperature);
    }
    if (chat.top_p.has_value()) v[kTopP] = NumberValue("top_p", *chat.top_p);
    if (chat.stop.has_value()) {
      v[kStop].present = true;
      v[kStop].field = "stop";
      if (const auto* one = std::get_if<std::string>(&*chat.stop)) {
        v[kStop].strings.push_back(*one);
      } else {
        for (const std::string& s : std::get<std::vector<std::string>>(*chat.stop)) {
          v[kStop].strings.push_back(s);
        }
      }
      if (v[kStop].strings.empty()) v[kStop].present = false;
    }
    if (chat.seed.has_value()) v[kSeed] = IntValue("seed", *chat.seed);
    if (chat.presence_penalty.has_value()) {
      v[kPresencePenalty] = NumberValue("presence_penalty", *chat.presence_penalty);
    }
    if (chat.frequency_penalty.has_value()) {
      v[kFrequencyPenalty] = NumberValue("frequency_penalty", *chat.frequency_penalty);
    }
    for (size_t i = 0; i < kParamCount; ++i) {
      if (v[i].present && !o_.params[i].enabled) {
        return InvalidFieldError(v[i].field,
                                 absl::StrCat("not sent: the kserve option parameter_inputs.",
                                              core_internal::ToAbsl(kParamSpecs[i].key),
                                              " is null"));
      }
    }
    // The TensorRT-LLM ensemble requires max_tokens: a documented default when absent.
    if (!v[kMaxTokens].present && o_.params[kMaxTokens].enabled && o_.default_max_tokens > 0) {
      v[kMaxTokens] = IntValue("max_tokens", o_.default_max_tokens);
    }
    // TensorRT-LLM streams token by token only when asked to.
    if (stream && o_.params[kStream].enabled) {
      v[kStream].present = true;
      v[kStream].field = "stream";
      v[kStream].boolean = true;
    }
    for (size_t i = 0; i < kParamCount; ++i) {
      if (v[i].present && kParamSpecs[i].kind == ParamKind::kInt) {
        MODEENVOY_RETURN_IF_ERROR(CheckIntRange(v[i], o_.params[i]));
      }
    }
    return absl::OkStatus();
  }

  void AppendShape(std::string* out, size_t n) const {
    out->append(o_.batch_dim ? "[1," : "[");
    AppendJsonInt(out, static_cast<int64_t>(n));
    out->push_back(']');
  }

  // {"inputs":[prompt tensor, parameter tensors...],"parameters":{...}?,"outputs":[{...}]}
  absl::Status WriteInferBody(const ChatRequest& chat, std::string_view prompt,
                              const std::array<ParamValue, kParamCount>& values,
                              std::string* body) const {
    body->append("{\"inputs\":[{\"name\":");
    AppendJsonString(body, o_.input_tensor);
    body->append(",\"shape\":");
    AppendShape(body, 1);
    body->append(",\"datatype\":\"BYTES\",\"data\":[");
    AppendJsonString(body, prompt);
    body->append("]}");
    for (size_t i = 0; i < kParamCount; ++i) {
      const ParamInput& input = o_.params[i];
      if (!values[i].present || input.as_parameter) continue;
      const ParamKind kind = kParamSpecs[i].kind;
      body->append(",{\"name\":");
      AppendJsonString(body, input.name);
      body->append(",\"shape\":");
      AppendShape(body, kind == ParamKind::kStrings ? values[i].strings.size() : 1);
      body->append(",\"datatype\":");
      AppendJsonString(body, input.datatype);
      body->append(",\"data\":");
      if (kind == ParamKind::kStrings) {
        AppendParamJson(body, kind, values[i]);
      } else {
        body->push_back('[');
        AppendParamJson(body, kind, values[i]);
        body->push_back(']');
      }
      body->push_back('}');
    }
    body->push_back(']');
    bool open = false;
    auto key = [&](std::string_view name) {
      body->append(open ? "," : ",\"parameters\":{");
      open = true;
      AppendJsonString(body, name);
      body->push_back(':');
    };
    for (size_t i = 0; i < kParamCount; ++i) {
      if (!values[i].present || !o_.params[i].as_parameter) continue;
      key(o_.params[i].name);
      AppendParamJson(body, kParamSpecs[i].kind, values[i]);
    }
    // Unknown unified fields (top_k, repetition_penalty, ...) ride as request parameters,
    // which hold scalars only.
    for (const auto& [name, raw] : chat.extra) {
      JsonType type;
      if (!IsValidJson(raw, &type) || type == JsonType::kArray || type == JsonType::kObject ||
          type == JsonType::kNull) {
        return InvalidFieldError(name, "not supported by kserve (v2 request parameters hold "
                                       "a string, a number or a boolean)");
      }
      key(name);
      body->append(raw);
    }
    if (open) body->push_back('}');
    body->append(",\"outputs\":[{\"name\":");
    AppendJsonString(body, o_.output_tensor);
    body->append("}]}");
    return absl::OkStatus();
  }

  // {"text_input": prompt, "max_tokens": 512, ..., "parameters": {...}?}
  absl::Status WriteGenerateBody(const ChatRequest& chat, std::string_view prompt,
                                 const std::array<ParamValue, kParamCount>& values,
                                 std::string* body) const {
    JsonObjectWriter w(body);
    w.Key(o_.input_tensor);
    AppendJsonString(body, prompt);
    bool has_parameters = false;
    for (size_t i = 0; i < kParamCount; ++i) {
      if (!values[i].present) continue;
      if (o_.params[i].as_parameter) {
        has_parameters = true;
        continue;
      }
      w.Key(o_.params[i].name);
      AppendParamJson(body, kParamSpecs[i].kind, values[i]);
    }
    // Unknown unified fields pass as fields: Triton maps them to inputs or parameters.
    for (const auto& [name, raw] : chat.extra) {
      bool clash = name == o_.input_tensor || name == "parameters";
      for (size_t i = 0; i < kParamCount; ++i) {
        clash = clash || (values[i].present && name == o_.params[i].name);
      }
      if (clash) return InvalidFieldError(name, "clashes with a field the dialect writes");
      w.Key(name);
      body->append(raw);
    }
    if (has_parameters) {
      w.Key("parameters");
      JsonObjectWriter p(body);
      for (size_t i = 0; i < kParamCount; ++i) {
        if (!values[i].present || !o_.params[i].as_parameter) continue;
        p.Key(o_.params[i].name);
        AppendParamJson(body, kParamSpecs[i].kind, values[i]);
      }
      p.End();
    }
    w.End();
    return absl::OkStatus();
  }

  // The parameter read from a tensor or field named `name` (in or out of "parameters").
  std::optional<size_t> ParamNamed(std::string_view name, bool in_parameters) const {
    for (size_t i = 0; i < kParamCount; ++i) {
      if (o_.params[i].enabled && o_.params[i].name == name &&
          o_.params[i].as_parameter == in_parameters) {
        return i;
      }
    }
    return std::nullopt;
  }

  absl::Status ReadParameters(const Json& parameters, ChatRequest* chat) const {
    if (!parameters.is_object()) return InvalidFieldError("parameters", "must be an object");
    for (const auto& [name, value] : parameters.items()) {
      const std::string path = core_internal::ChildPath("parameters", name);
      if (value.is_object() || value.is_array()) {
        return InvalidFieldError(path, "must be a string, a number or a boolean");
      }
      if (std::optional<size_t> i = ParamNamed(name, true)) {
        MODEENVOY_RETURN_IF_ERROR(SetParamFromJson(*i, value, path, chat));
      } else {
        chat->extra.emplace_back(name, value.dump());
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadInferRequest(const Json& body, ChatRequest* chat,
                                std::optional<std::string>* prompt) const {
    for (const auto& [key, value] : body.items()) {
      if (key == "id" || key == "outputs") continue;
      if (key == "parameters") {
        MODEENVOY_RETURN_IF_ERROR(ReadParameters(value, chat));
      } else if (key != "inputs") {
        return InvalidFieldError(key, "unknown field");
      }
    }
    const auto inputs = body.find("inputs");
    if (inputs == body.end() || !inputs->is_array() || inputs->empty()) {
      return InvalidFieldError("inputs", "must be a non-empty array");
    }
    for (size_t k = 0; k < inputs->size(); ++k) {
      const Json& input = (*inputs)[k];
      const std::string path = core_internal::IndexPath("inputs", k);
      MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(input, path));
      MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"name", "shape", "datatype", "data",
                                                 "parameters"}));
      MODEENVOY_ASSIGN_OR_RETURN(std::string name, r.RequiredString("name"));
      MODEENVOY_ASSIGN_OR_RETURN(std::string datatype, r.RequiredString("datatype"));
      if (!r.Has("shape") || !r.Find("shape")->is_array()) {
        return InvalidFieldError(r.PathOf("shape"), "must be an array");
      }
      const Json* data = r.Find("data");
      if (data == nullptr) return InvalidFieldError(r.PathOf("data"), "is required");
      std::string expected;
      if (name == o_.input_tensor) {
        expected = "BYTES";
      } else if (std::optional<size_t> i = ParamNamed(name, false)) {
        expected = o_.params[*i].datatype;
      } else {
        return InvalidFieldError(r.PathOf("name"),
                                 absl::StrCat("unexpected inference input \"", name, "\""));
      }
      if (datatype != expected) {
        return InvalidFieldError(r.PathOf("datatype"),
                                 absl::StrCat("input \"", name, "\" has datatype ", expected,
                                              ", got ", datatype));
      }
      if (name == o_.input_tensor) {
        const Json* text = data;
        while (text->is_array() && text->size() == 1) text = &(*text)[0];
        if (!text->is_string()) {
          return InvalidFieldError(r.PathOf("data"), "expected one string");
        }
        *prompt = text->get<std::string>();
      } else {
        MODEENVOY_RETURN_IF_ERROR(SetParamFromJson(*ParamNamed(name, false), *data,
                                                   r.PathOf("data"), chat));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadGenerateRequest(const Json& body, ChatRequest* chat,
                                   std::optional<std::string>* prompt) const {
    for (const auto& [key, value] : body.items()) {
      if (key == o_.input_tensor) {
        if (!value.is_string()) return InvalidFieldError(key, "must be a string");
        *prompt = value.get<std::string>();
      } else if (key == "parameters") {
        MODEENVOY_RETURN_IF_ERROR(ReadParameters(value, chat));
      } else if (std::optional<size_t> i = ParamNamed(key, false)) {
        MODEENVOY_RETURN_IF_ERROR(SetParamFromJson(*i, value, key, chat));
      } else {
        chat->extra.emplace_back(key, value.dump());
      }
    }
    return absl::OkStatus();
  }

  const KserveOptions o_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewKserveDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(KserveOptions options, ReadOptions(options_json));
  return std::make_unique<KserveDialect>(std::move(options));
}

}  // namespace modeenvoy::protocol_internal
