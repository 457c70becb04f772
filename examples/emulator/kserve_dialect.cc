// KServe / Triton, as a Triton server hosting a TensorRT-LLM-style "ensemble" model puts it on
// the wire. No traffic was recorded; the shapes follow the public specs: the Open Inference
// Protocol v2 HTTP/REST API (kserve.github.io) for /v2/models/{m}[/versions/{v}]/infer,
// model metadata and health, and Triton's generate extension
// (triton-inference-server/server docs/protocol/extension_generate.md) for /generate and
// /generate_stream. The emulated model's inputs are those of the TensorRT-LLM backend's
// ensemble config.pbtxt, max_batch_size 0 (shapes are the dims as written: [1], stop words
// [n]). Written apart from lib/protocol's translator so end-to-end tests are not circular.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// The emulated model's inputs (name, Triton datatype, dims as written in config.pbtxt;
// -1 = any length), and whether Triton requires them.
struct TensorSpec {
  const char* name;
  const char* datatype;
  int dims;  // 1: [1], -1: [-1]
  bool required;
};
constexpr TensorSpec kInputs[] = {
    {"text_input", "BYTES", 1, true},
    {"max_tokens", "INT32", 1, true},
    {"bad_words", "BYTES", -1, false},
    {"stop_words", "BYTES", -1, false},
    {"end_id", "INT32", 1, false},
    {"pad_id", "INT32", 1, false},
    {"top_k", "INT32", 1, false},
    {"top_p", "FP32", 1, false},
    {"temperature", "FP32", 1, false},
    {"length_penalty", "FP32", 1, false},
    {"repetition_penalty", "FP32", 1, false},
    {"min_tokens", "INT32", 1, false},
    {"presence_penalty", "FP32", 1, false},
    {"frequency_penalty", "FP32", 1, false},
    {"seed", "UINT64", 1, false},
    {"beam_width", "INT32", 1, false},
    {"stream", "BOOL", 1, false},
    {"return_num_input_tokens", "BOOL", 1, false},
    {"return_num_output_tokens", "BOOL", 1, false},
    {"return_finish_reason", "BOOL", 1, false},
};
constexpr TensorSpec kOutputs[] = {
    {"text_output", "BYTES", -1, false},
    {"num_input_tokens", "INT32", 1, false},
    {"num_output_tokens", "INT32", 1, false},
    {"finish_reason", "BYTES", -1, false},
};

const TensorSpec* FindInput(std::string_view name) {
  for (const TensorSpec& t : kInputs) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

// Triton prefixes request errors with the request id ("<id_unknown>" without one).
std::string Prefixed(const std::string& id, const std::string& message) {
  return absl::StrFormat("[request id: %s] %s", id.empty() ? "<id_unknown>" : id, message);
}

ApiError Bad(std::string message) {
  return ApiError{400, "", std::move(message), std::nullopt, std::nullopt, {}};
}

std::string Dump(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

// Where a request goes: /v2/models/{model}[/versions/{version}][/{verb}].
struct Target {
  bool ok = false;
  std::string model;
  std::string version;
  std::string verb;  // "", "infer", "generate", "generate_stream", "ready", "config"
};

Target SplitPath(std::string_view path) {
  Target t;
  constexpr std::string_view kPrefix = "/v2/models/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return t;
  path.remove_prefix(kPrefix.size());
  std::vector<std::string> parts;
  size_t at = 0;
  while (at <= path.size()) {
    size_t slash = path.find('/', at);
    if (slash == std::string_view::npos) slash = path.size();
    parts.emplace_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  if (parts.empty() || parts[0].empty()) return t;
  t.model = parts[0];
  size_t i = 1;
  if (i + 1 < parts.size() && parts[i] == "versions") {
    t.version = parts[i + 1];
    if (t.version.empty()) return t;
    i += 2;
  }
  if (i < parts.size()) t.verb = parts[i++];
  t.ok = i == parts.size();
  return t;
}

// Percent-decoding of a path segment (model names are sent escaped).
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() &&
        std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The last user turn of a prompt in a common chat template (ChatML, Llama 3, "role: text"
// lines), which is what the emulated model "answers"; the whole prompt otherwise.
std::string LastUserTurn(const std::string& prompt) {
  struct Form {
    std::string_view open, close;
  } forms[] = {{"<|im_start|>user\n", "<|im_end|>"},
               {"<|start_header_id|>user<|end_header_id|>\n\n", "<|eot_id|>"}};
  for (const Form& f : forms) {
    size_t at = prompt.rfind(f.open);
    if (at == std::string::npos) continue;
    at += f.open.size();
    size_t end = prompt.find(f.close, at);
    return prompt.substr(at, end == std::string::npos ? std::string::npos : end - at);
  }
  size_t user = prompt.rfind("user: ");
  if (user != std::string::npos && (user == 0 || prompt[user - 1] == '\n')) {
    size_t start = user + 6;
    size_t end = prompt.find("\nassistant:", start);
    return prompt.substr(start, end == std::string::npos ? std::string::npos : end - start);
  }
  return prompt;
}

// Checks one v2 input tensor against the model config as Triton does.
std::optional<std::string> CheckTensor(const json& input, size_t index, const std::string& id,
                                       const std::string& model, std::string* name_out,
                                       json* flat_out) {
  if (!input.is_object() || !input.contains("name") || !input["name"].is_string() ||
      !input.contains("datatype") || !input["datatype"].is_string() ||
      !input.contains("shape") || !input["shape"].is_array() || !input.contains("data")) {
    return Prefixed(id, absl::StrFormat("failed to parse the request JSON buffer: input %d "
                                        "needs 'name', 'shape', 'datatype' and 'data'",
                                        index));
  }
  const std::string name = input["name"];
  *name_out = name;
  const TensorSpec* spec = FindInput(name);
  if (spec == nullptr) {
    return Prefixed(id, absl::StrFormat("unexpected inference input '%s' for model '%s'", name,
                                        model));
  }
  const std::string datatype = input["datatype"];
  if (datatype != spec->datatype) {
    return Prefixed(id, absl::StrFormat("unexpected datatype TYPE_%s for inference input '%s', "
                                        "expecting TYPE_%s",
                                        datatype == "BYTES" ? "STRING" : datatype, name,
                                        std::string(spec->datatype) == "BYTES" ? "STRING"
                                                                                : spec->datatype));
  }
  const json& shape = input["shape"];
  int64_t elements = 1;
  for (const json& d : shape) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) {
      return Prefixed(id, absl::StrFormat("invalid shape for input '%s'", name));
    }
    elements *= d.get<int64_t>();
  }
  const bool shape_ok = shape.size() == 1 && (spec->dims == -1 || shape[0] == spec->dims);
  if (!shape_ok) {
    return Prefixed(id, absl::StrFormat("unexpected shape for input '%s' for model '%s'. "
                                        "Expected [%s], got %s. ",
                                        name, model, spec->dims == -1 ? "-1" : "1",
                                        shape.dump()));
  }
  // "data" is the flattened tensor (nested arrays allowed); it must fill the shape.
  json flat = json::array();
  std::function<bool(const json&)> flatten = [&](const json& v) {
    if (!v.is_array()) {
      flat.push_back(v);
      return true;
    }
    for (const json& e : v) flatten(e);
    return true;
  };
  flatten(input["data"]);
  if (static_cast<int64_t>(flat.size()) != elements) {
    return Prefixed(id, absl::StrFormat("unexpected number of elements %d for inference input "
                                        "'%s', expecting %d",
                                        flat.size(), name, elements));
  }
  for (const json& e : flat) {
    bool ok = datatype == "BYTES"  ? e.is_string()
              : datatype == "BOOL" ? e.is_boolean()
              : datatype == "FP32" ? e.is_number()
                                   : e.is_number_integer() &&
                                         (datatype != "UINT64" || e.get<int64_t>() >= 0);
    if (!ok) {
      return Prefixed(id, absl::StrFormat("unable to parse 'data' of input '%s': expected %s "
                                          "elements, got %s",
                                          name, datatype, e.dump()));
    }
  }
  *flat_out = std::move(flat);
  return std::nullopt;
}

class KserveDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "kserve"; }

  Route Match(const Request& req) const override {
    if (req.method == "GET" && (req.path == "/v2/health/ready" || req.path == "/v2/health/live" ||
                                req.path == "/v2")) {
      return Route::kListModels;
    }
    Target t = SplitPath(req.path);
    if (!t.ok) return Route::kNone;
    if (req.method == "POST" &&
        (t.verb == "infer" || t.verb == "generate" || t.verb == "generate_stream")) {
      return Route::kGenerate;
    }
    if (req.method == "GET" && (t.verb.empty() || t.verb == "ready")) return Route::kListModels;
    return Route::kNone;
  }

  std::string ApiKey(const Request& req) const override {
    std::string_view auth = req.Header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) == kBearer) return std::string(auth.substr(kBearer.size()));
    return "";
  }

  std::string Model(const Request& req) const override {
    Target t = SplitPath(req.path);
    return t.ok ? Unescape(t.model) : "";
  }

  std::string ToolCallId(uint64_t seed) const override { return MakeId("call_", 24, seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    const Target target = SplitPath(req.path);
    const std::string model = Unescape(target.model);
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Bad("failed to parse the request JSON buffer: Invalid value. at 0");
    }
    ParsedRequest out;
    std::string prompt;
    std::map<std::string, json> values;  // input name -> scalar value or list
    if (target.verb == "infer") {
      if (auto id = body.find("id"); id != body.end()) {
        if (!id->is_string()) return Bad("failed to parse the request JSON buffer: 'id' must "
                                         "be a string");
        out.extra["request_id"] = id->get<std::string>();
      }
      const std::string& rid = out.extra["request_id"];
      for (const auto& [key, value] : body.items()) {
        if (key != "id" && key != "inputs" && key != "outputs" && key != "parameters") {
          return Bad(Prefixed(rid, absl::StrFormat("failed to parse the request JSON buffer: "
                                                   "unexpected key '%s'", key)));
        }
      }
      auto inputs = body.find("inputs");
      if (inputs == body.end() || !inputs->is_array()) {
        return Bad(Prefixed(rid, "failed to parse the request JSON buffer: 'inputs' must be an "
                                 "array"));
      }
      for (size_t i = 0; i < inputs->size(); ++i) {
        std::string name;
        json flat;
        if (auto error = CheckTensor((*inputs)[i], i, rid, model, &name, &flat)) {
          return Bad(*error);
        }
        if (values.count(name)) {
          return Bad(Prefixed(rid, absl::StrFormat("input '%s' is specified twice", name)));
        }
        values[name] = FindInput(name)->dims == -1 ? flat : flat.at(0);
      }
      if (auto outputs = body.find("outputs"); outputs != body.end()) {
        if (!outputs->is_array()) {
          return Bad(Prefixed(rid, "failed to parse the request JSON buffer: 'outputs' must be "
                                   "an array"));
        }
        std::string requested;
        for (const json& o : *outputs) {
          std::string name = o.is_object() ? o.value("name", "") : "";
          if (std::none_of(std::begin(kOutputs), std::end(kOutputs),
                           [&](const TensorSpec& s) { return name == s.name; })) {
            return Bad(Prefixed(rid, absl::StrFormat("unexpected inference output '%s' for "
                                                     "model '%s'", name, model)));
          }
          requested += name + ",";
        }
        out.extra["outputs"] = requested;
      }
      out.directive_param = "inputs[0].data";
    } else {
      // generate: JSON fields map to the model's inputs by name (their JSON type must fit
      // the datatype); other fields become request parameters.
      for (const auto& [key, value] : body.items()) {
        if (key == "parameters") {
          if (!value.is_object()) return Bad("parameters must be an object");
          continue;
        }
        const TensorSpec* spec = FindInput(key);
        if (spec == nullptr) continue;
        std::string dt = spec->datatype;
        bool ok = dt == "BYTES"  ? (value.is_string() || (spec->dims == -1 && value.is_array()))
                  : dt == "BOOL" ? value.is_boolean()
                  : dt == "FP32" ? value.is_number()
                                 : value.is_number_integer();
        if (ok && value.is_array()) {
          ok = std::all_of(value.begin(), value.end(), [](const json& e) { return e.is_string(); });
        }
        if (!ok) {
          return Bad(absl::StrFormat("Unable to parse '%s': attempt to access JSON %s as %s",
                                     key, value.type_name(), dt));
        }
        values[key] = value;
      }
      out.directive_param = "text_input";
    }
    for (const TensorSpec& t : kInputs) {
      if (t.required && !values.count(t.name)) {
        return Bad(Prefixed(out.extra["request_id"],
                            absl::StrFormat("expected %d inputs but got %d inputs for model "
                                            "'%s'. Got input(s) %s, but missing required "
                                            "input(s) ['%s']. Please provide all required "
                                            "input(s).",
                                            2, values.size(), model, NamesOf(values), t.name)));
      }
    }
    prompt = values["text_input"].get<std::string>();
    if (values["max_tokens"].get<int64_t>() < 1) {
      return Bad(Prefixed(out.extra["request_id"], "max_tokens must be a positive integer"));
    }
    out.max_tokens = values["max_tokens"].get<int64_t>();
    if (auto s = values.find("stop_words"); s != values.end()) {
      std::string stops;
      for (const json& w : s->second.is_array() ? s->second : json::array({s->second})) {
        stops += w.get<std::string>() + "\x1f";
      }
      out.extra["stop_words"] = stops;
    }
    auto flag = [&](const char* name) {
      auto it = values.find(name);
      return it != values.end() && it->second.is_boolean() && it->second.get<bool>();
    };
    out.extra["stream_flag"] = flag("stream") ? "1" : "0";
    out.extra["num_input_tokens"] = flag("return_num_input_tokens") ? "1" : "0";
    out.extra["num_output_tokens"] = flag("return_num_output_tokens") ? "1" : "0";
    out.extra["finish_reason"] = flag("return_finish_reason") ? "1" : "0";
    out.extra["verb"] = target.verb;
    out.extra["version"] = target.version.empty() ? "1" : target.version;

    // What the model "reads": the last user turn of the prompt, @emulator directive included.
    out.last_user = LastUserTurn(prompt);
    absl::StatusOr<std::optional<std::string>> directive = TakeDirective(&out.last_user);
    absl::Status bad = directive.status();
    if (bad.ok() && directive->has_value()) {
      absl::StatusOr<std::shared_ptr<const Script>> script = ParseScript(**directive);
      if (script.ok()) out.directive = *std::move(script);
      bad = script.status();
    }
    if (!bad.ok()) {
      return Bad(absl::StrFormat("%s: @emulator directive: %s", out.directive_param,
                                 bad.message()));
    }
    out.echo = out.last_user;
    // The server tokenizes the whole prompt string.
    out.prompt_tokens = ctx.counter.Count(prompt);
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = out.extra["request_id"];
    out.model = model;
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.stream = target.verb == "generate_stream";
    return out;
  }

  // The model's text: reasoning as a <think> block (as raw reasoning models print it), the
  // text, or a refusal as text. Tool calls have no place in this protocol and are not sent.
  static std::string FullText(const ScriptedReply& r) {
    std::string text;
    if (!r.reasoning.empty()) text = "<think>" + r.reasoning + "</think>";
    return text + (r.refusal.has_value() ? *r.refusal : r.text);
  }

  static std::string Extra(const ScriptedReply& r, const std::string& key) {
    auto it = r.extra.find(key);
    return it == r.extra.end() ? "" : it->second;
  }

  // Stop words end the text where they first appear (the stop word itself is dropped).
  static std::string ApplyStops(const ScriptedReply& r, std::string text, bool* stopped) {
    std::string stops = Extra(r, "stop_words");
    size_t cut = std::string::npos;
    for (size_t at = 0; at < stops.size();) {
      size_t end = stops.find('\x1f', at);
      std::string word = stops.substr(at, end - at);
      if (!word.empty()) cut = std::min(cut, text.find(word));
      at = end + 1;
    }
    *stopped = cut != std::string::npos;
    if (*stopped) text.resize(cut);
    return text;
  }

  static std::string FinishReason(const ScriptedReply& r, bool stopped) {
    return !stopped && r.finish_reason == "length" ? "length" : "stop";
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    bool stopped = false;
    const std::string text = ApplyStops(r, FullText(r), &stopped);
    const std::string model_version = Extra(r, "version");
    if (Extra(r, "verb") == "infer") {
      ojson outputs = ojson::array();
      std::string wanted = Extra(r, "outputs");
      auto want = [&](const char* name) {
        return wanted.empty() ? std::string(name) == "text_output" ||
                                    Extra(r, std::string(name)) == "1"
                              : wanted.find(std::string(name) + ",") != std::string::npos;
      };
      if (want("text_output")) {
        outputs.push_back({{"name", "text_output"},
                           {"datatype", "BYTES"},
                           {"shape", {1}},
                           {"data", {text}}});
      }
      if (want("num_input_tokens")) {
        outputs.push_back({{"name", "num_input_tokens"}, {"datatype", "INT32"}, {"shape", {1}},
                           {"data", {r.prompt_tokens}}});
      }
      if (want("num_output_tokens")) {
        outputs.push_back({{"name", "num_output_tokens"}, {"datatype", "INT32"}, {"shape", {1}},
                           {"data", {r.completion_tokens}}});
      }
      if (want("finish_reason")) {
        outputs.push_back({{"name", "finish_reason"}, {"datatype", "BYTES"}, {"shape", {1}},
                           {"data", {FinishReason(r, stopped)}}});
      }
      ojson out = {{"model_name", r.model}, {"model_version", model_version}};
      if (!r.id.empty()) out["id"] = r.id;
      out["outputs"] = std::move(outputs);
      return Dump(out);
    }
    ojson out = GenerateObject(r, text);
    AddCounts(r, stopped, &out);
    return Dump(out);
  }

  // generate_stream: with the model's "stream" input true, one event per piece (the
  // TensorRT-LLM ensemble streams deltas); without it, one event with the whole text.
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    bool stopped = false;
    const std::string full = ApplyStops(r, FullText(r), &stopped);
    std::vector<std::string> pieces;
    if (Extra(r, "stream_flag") == "1") {
      if (!r.reasoning.empty()) {
        pieces.push_back("<think>");
        for (const std::string& p : r.reasoning_pieces) pieces.push_back(p);
        pieces.push_back("</think>");
      }
      for (const std::string& p : r.refusal.has_value() ? r.refusal_pieces : r.text_pieces) {
        pieces.push_back(p);
      }
      // Stop words cut the stream where the text was cut.
      size_t budget = full.size();
      for (std::string& p : pieces) {
        if (p.size() > budget) p.resize(budget);
        budget -= p.size();
      }
      pieces.erase(std::remove_if(pieces.begin(), pieces.end(),
                                  [](const std::string& p) { return p.empty(); }),
                   pieces.end());
    } else {
      pieces.push_back(full);
    }
    for (size_t i = 0; i < pieces.size(); ++i) {
      ojson event = GenerateObject(r, pieces[i]);
      if (i + 1 == pieces.size()) AddCounts(r, stopped, &event);
      events.push_back("data: " + Dump(event) + "\n\n");
    }
    if (r.interrupt.has_value()) {
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        // A failure after the 200: an error object as the next event, then the end.
        std::string message = r.interrupt->error.message.value_or(
            "in ensemble 'ensemble', Encountered error for requestId 1: emulated failure");
        events.push_back("data: " + Dump(ojson{{"error", message}}) + "\n\n");
      }
    }
    return events;
  }

  // Server metadata (GET /v2), health (empty 200), model metadata (GET /v2/models/{m}).
  std::string RenderModels(const std::vector<std::string>& /*models*/) const override {
    return Dump(ojson{{"name", "triton"},
                      {"version", "2.51.0"},
                      {"extensions", {"classification", "sequence", "model_repository",
                                      "schedule_policy", "model_configuration",
                                      "system_shared_memory", "cuda_shared_memory",
                                      "binary_tensor_data", "parameters", "statistics",
                                      "trace", "logging", "generate"}}});
  }

  std::string RenderModelsFor(const Request& req,
                              const std::vector<std::string>& models) const override {
    if (req.path == "/v2") return RenderModels(models);
    Target t = SplitPath(req.path);
    if (!t.ok || t.verb == "ready") return "";  // health: 200, empty body
    auto tensors = [](const auto& specs) {
      ojson list = ojson::array();
      for (const TensorSpec& s : specs) {
        list.push_back({{"name", s.name}, {"datatype", s.datatype}, {"shape", {s.dims}}});
      }
      return list;
    };
    return Dump(ojson{{"name", Unescape(t.model)},
                      {"versions", {t.version.empty() ? "1" : t.version}},
                      {"platform", "ensemble"},
                      {"inputs", tensors(kInputs)},
                      {"outputs", tensors(kOutputs)}});
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    ApiError e;
    e.status = status;
    switch (cause) {
      case ErrorCause::kUnknownRoute: e.message = "Not Found"; return e;
      case ErrorCause::kBodyTooLarge:
        e.message = "request body too large";
        return e;
      case ErrorCause::kBadHttp: e.message = "Bad Request"; return e;
      case ErrorCause::kUnauthorized: e.message = "Unauthorized"; return e;
      case ErrorCause::kInjected: break;
    }
    switch (status) {
      case 400: e.message = Prefixed("", "emulated invalid request"); break;
      case 404:
        e.message = absl::StrFormat("Request for unknown model: '%s' is not found", Model(req));
        break;
      case 429: e.message = "Exceeds maximum queue size"; break;
      case 500:
        e.message = "in ensemble 'ensemble', Encountered error for requestId 1: emulated failure";
        break;
      case 503: e.message = "Server not ready"; break;
      default: e.message = absl::StrFormat("emulated error with HTTP status %d", status); break;
    }
    return e;
  }

  std::string RenderError(const ApiError& e) const override {
    return Dump(ojson{{"error", e.message}});
  }

  Headers ResponseHeaders(uint64_t /*sequence*/) const override { return {}; }

  std::string_view stream_content_type() const override {
    return "text/event-stream; charset=utf-8";
  }

 private:
  static std::string NamesOf(const std::map<std::string, json>& values) {
    std::string out = "[";
    for (const auto& [name, value] : values) {
      if (out.size() > 1) out += ", ";
      out += "'" + name + "'";
    }
    return out + "]";
  }

  static ojson GenerateObject(const ScriptedReply& r, const std::string& text) {
    // The TensorRT-LLM ensemble's outputs ride along in every generate response.
    return ojson{{"batch_index", 0},
                 {"context_logits", 0.0},
                 {"cum_log_probs", 0.0},
                 {"generation_logits", 0.0},
                 {"model_name", r.model},
                 {"model_version", Extra(r, "version")},
                 {"output_log_probs", {0.0}},
                 {"sequence_end", false},
                 {"sequence_id", 0},
                 {"sequence_index", 0},
                 {"sequence_start", false},
                 {"text_output", text}};
  }

  static void AddCounts(const ScriptedReply& r, bool stopped, ojson* out) {
    if (Extra(r, "num_input_tokens") == "1") (*out)["num_input_tokens"] = r.prompt_tokens;
    if (Extra(r, "num_output_tokens") == "1") (*out)["num_output_tokens"] = r.completion_tokens;
    if (Extra(r, "finish_reason") == "1") (*out)["finish_reason"] = FinishReason(r, stopped);
  }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewKserveDialect() { return std::make_unique<KserveDialect>(); }

}  // namespace modeenvoy::emulator
