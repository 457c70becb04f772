// Gemini generateContent, as Google AI Studio (generativelanguage.googleapis.com/v1beta) and
// Vertex AI (.../v1/projects/P/locations/L/publishers/google/models/M) put it on the wire:
// shaped after the recordings in shared/data/provider-fixtures (vercel-ai google, Kong
// gemini and its streaming-chunk-formats), written independently of lib/protocol's
// translator so that end-to-end tests are not circular.
//
// Routes: POST {/v1beta,/v1}/models/{m}:generateContent | :streamGenerateContent (SSE with
// ?alt=sse, else one JSON array); the same under /v1/projects/.../publishers/.../models/{m}
// (Vertex); GET /v1beta/models (ListModels). Auth: x-goog-api-key or ?key= (AI Studio),
// Authorization: Bearer (Vertex).
#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Gemini's documented cost of one image in the prompt.
constexpr int64_t kImageTokens = 258;

std::string Pretty(const ojson& j) {
  return j.dump(2, ' ', false, ojson::error_handler_t::replace);
}
std::string Compact(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

// google.rpc.Code names by HTTP status.
std::string StatusName(int status) {
  switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 500: return "INTERNAL";
    case 501: return "UNIMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default: return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
  }
}

ApiError Error(int status, std::string message) {
  ApiError e;
  e.status = status;
  e.type = StatusName(status);
  e.message = std::move(message);
  return e;
}

ApiError Invalid(std::string message) { return Error(400, std::move(message)); }

ApiError UnknownName(const std::string& name, const std::string& at) {
  return Invalid(at.empty()
                     ? absl::StrFormat("Invalid JSON payload received. Unknown name \"%s\": "
                                       "Cannot find field.",
                                       name)
                     : absl::StrFormat("Invalid JSON payload received. Unknown name \"%s\" at "
                                       "'%s': Cannot find field.",
                                       name, at));
}

// proto JSON: "generation_config" and "generationConfig" name the same field.
std::string Camel(const std::string& key) {
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '_' && i + 1 < key.size() && key[i + 1] >= 'a' && key[i + 1] <= 'z') {
      out.push_back(static_cast<char>(key[++i] - 'a' + 'A'));
    } else {
      out.push_back(key[i]);
    }
  }
  return out;
}

// Checks that every member of `obj` is in `known` (camelCase names; snake_case accepted),
// returning the object with camelCase keys. `at` is the snake_case path Google reports.
std::variant<json, ApiError> Members(const json& obj, std::initializer_list<const char*> known,
                                     const std::string& at) {
  if (!obj.is_object()) {
    return Invalid(absl::StrFormat("Invalid JSON payload received. Expected an object at '%s'.",
                                   at));
  }
  json out = json::object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    std::string camel = Camel(it.key());
    if (std::none_of(known.begin(), known.end(), [&](const char* k) { return camel == k; })) {
      return UnknownName(it.key(), at);
    }
    out[camel] = it.value();
  }
  return out;
}

// A repeated field: a list, or (proto JSON) one element.
json List(const json& v) { return v.is_array() ? v : json::array({v}); }

std::string Extra(const ScriptedReply& r, const std::string& key, std::string fallback = "") {
  auto it = r.extra.find(key);
  return it == r.extra.end() ? fallback : it->second;
}

std::string FinishReason(const std::string& unified) {
  if (unified == "length") return "MAX_TOKENS";
  if (unified == "content_filter") return "SAFETY";
  return "STOP";  // stop, tool_calls, function_call
}

// As Gemini reports it: candidatesTokenCount excludes the thoughts, totalTokenCount
// includes everything, cachedContentTokenCount is part of promptTokenCount.
ojson UsageMetadata(const ScriptedReply& r) {
  ojson u = {{"promptTokenCount", r.prompt_tokens},
             {"candidatesTokenCount", r.completion_tokens - r.reasoning_tokens},
             {"totalTokenCount", r.prompt_tokens + r.completion_tokens}};
  if (r.cached_tokens > 0) u["cachedContentTokenCount"] = r.cached_tokens;
  u["promptTokensDetails"] =
      ojson::array({{{"modality", "TEXT"}, {"tokenCount", r.prompt_tokens}}});
  if (r.reasoning_tokens > 0) u["thoughtsTokenCount"] = r.reasoning_tokens;
  return u;
}

struct Target {
  bool ok = false;
  bool vertex = false;
  bool stream = false;
  bool sse = false;
  bool embed = false;  // models/{m}:batchEmbedContents (Gemini API only)
  std::string model;
};

Target ParseTarget(const Request& req) {
  Target t;
  std::string_view path = req.path;
  size_t colon = path.rfind(':');
  if (colon == std::string_view::npos) return t;
  std::string_view method = path.substr(colon + 1);
  std::string_view head = path.substr(0, colon);
  if (method == "batchEmbedContents") {
    t.embed = true;
  } else if (method == "generateContent") {
    t.stream = false;
  } else if (method == "streamGenerateContent") {
    t.stream = true;
  } else {
    return t;
  }
  size_t models = head.rfind("/models/");
  if (models == std::string_view::npos) return t;
  std::string_view prefix = head.substr(0, models);
  t.model = std::string(head.substr(models + 8));
  if (t.model.empty() || t.model.find('/') != std::string::npos) return t;
  if (prefix == "/v1beta" || prefix == "/v1") {
    t.vertex = false;
  } else if ((prefix.rfind("/v1/projects/", 0) == 0 ||
              prefix.rfind("/v1beta1/projects/", 0) == 0) &&
             prefix.find("/locations/") != std::string_view::npos &&
             prefix.find("/publishers/") != std::string_view::npos) {
    t.vertex = true;
  } else {
    return t;
  }
  std::string_view query = req.target.size() > req.path.size()
                               ? std::string_view(req.target).substr(req.path.size())
                               : std::string_view();
  t.sse = query.find("alt=sse") != std::string_view::npos;
  if (t.embed && t.vertex) return t;  // Vertex AI embeds through :predict
  t.ok = true;
  return t;
}

std::string QueryKey(const Request& req) {
  std::string_view target = req.target;
  size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view kv = query.substr(0, amp);
    if (kv.substr(0, 4) == "key=") return std::string(kv.substr(4));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

class GeminiDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "gemini"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST") {
      Target t = ParseTarget(req);
      if (t.ok) return t.embed ? Route::kEmbeddings : Route::kGenerate;
    }
    if (req.method == "GET" && req.path == "/v1beta/models") return Route::kListModels;
    return Route::kNone;
  }

  std::string ApiKey(const Request& req) const override {
    if (ParseTarget(req).vertex) {
      std::string_view auth = req.Header("authorization");
      if (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ") {
        return std::string(auth.substr(7));
      }
      return "";
    }
    std::string_view key = req.Header("x-goog-api-key");
    return key.empty() ? QueryKey(req) : std::string(key);
  }

  std::string Model(const Request& req) const override { return ParseTarget(req).model; }

  // batchEmbedContents as the Gemini API validates it: every request names the URL's model
  // as "models/{m}", content.parts hold text, taskType is one of the API's values and
  // unknown fields are 400s. Gemini reports no token count. Width: gemini-embedding-001
  // 3072, others (text-embedding-004) 768, or outputDimensionality.
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& /*ctx*/) const override {
    static constexpr std::string_view kTaskTypes[] = {
        "TASK_TYPE_UNSPECIFIED", "RETRIEVAL_QUERY",    "RETRIEVAL_DOCUMENT", "SEMANTIC_SIMILARITY",
        "CLASSIFICATION",        "CLUSTERING",         "QUESTION_ANSWERING", "FACT_VERIFICATION",
        "CODE_RETRIEVAL_QUERY"};
    const Target t = ParseTarget(req);
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Invalid("Invalid JSON payload received. Unexpected token.");
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "requests") return UnknownName(key, "");
    }
    if (!body.contains("requests") || !body["requests"].is_array() || body["requests"].empty()) {
      return Invalid("* BatchEmbedContentsRequest.requests: contents is not specified\n");
    }
    EmbeddingsAsk ask;
    ask.model = t.model;
    const int64_t width = t.model.find("gemini-embedding") != std::string::npos ? 3072 : 768;
    std::optional<int64_t> dims;
    const json& requests = body["requests"];
    for (size_t i = 0; i < requests.size(); ++i) {
      const json& r = requests[i];
      const std::string at = absl::StrFormat("requests[%d]", i);
      if (!r.is_object()) return Invalid(absl::StrFormat("Invalid value at '%s'", at));
      for (const auto& [key, value] : r.items()) {
        if (key != "model" && key != "content" && key != "taskType" && key != "title" &&
            key != "outputDimensionality") {
          return UnknownName(key, at);
        }
      }
      if (!r.contains("model") || !r["model"].is_string()) {
        return Invalid(absl::StrFormat("* BatchEmbedContentsRequest.%s.model: model is not "
                                       "specified\n", at));
      }
      if (r["model"].get<std::string>() != "models/" + t.model) {
        return Invalid(absl::StrFormat("Model name in requests[%d] (%s) does not match the "
                                       "model in the URL (models/%s).",
                                       i, r["model"].get<std::string>(), t.model));
      }
      if (r.contains("taskType")) {
        const json& task = r["taskType"];
        bool known = false;
        for (std::string_view k : kTaskTypes) known = known || (task.is_string() && task == k);
        if (!known) {
          return Invalid(absl::StrFormat("Invalid value at '%s.task_type' "
                                         "(type.googleapis.com/google.ai.generativelanguage.v1beta."
                                         "TaskType), %s", at, task.dump()));
        }
      }
      if (r.contains("outputDimensionality")) {
        const json& d = r["outputDimensionality"];
        if (!d.is_number_integer() || d.get<int64_t>() < 1 || d.get<int64_t>() > width) {
          return Invalid(absl::StrFormat("* BatchEmbedContentsRequest.%s.output_dimensionality: "
                                         "must be between 1 and %d\n", at, width));
        }
        if (dims.has_value() && *dims != d.get<int64_t>()) {
          return Invalid("emulator: every request of a batch must ask for the same "
                         "outputDimensionality");
        }
        dims = d.get<int64_t>();
      }
      const json* parts = nullptr;
      if (r.contains("content") && r["content"].is_object() && r["content"].contains("parts")) {
        parts = &r["content"]["parts"];
      }
      if (parts == nullptr || !parts->is_array() || parts->empty()) {
        return Invalid(absl::StrFormat("* BatchEmbedContentsRequest.%s.content.parts: contents "
                                       "is not specified\n", at));
      }
      std::string text;
      for (const json& part : *parts) {
        if (!part.is_object() || !part.contains("text") || !part["text"].is_string()) {
          return Invalid(absl::StrFormat("* BatchEmbedContentsRequest.%s.content.parts: only "
                                         "text parts can be embedded\n", at));
        }
        text += part["text"].get<std::string>();
      }
      ask.texts.push_back(std::move(text));
    }
    ask.dimensions = dims.value_or(width);
    return ask;
  }

  std::string RenderEmbeddings(const EmbeddingsAsk& /*ask*/,
                               const std::vector<std::vector<float>>& vectors) const override {
    std::string out = "{\n  \"embeddings\": [";
    for (size_t i = 0; i < vectors.size(); ++i) {
      out += i == 0 ? "\n    {\n      \"values\": " : ",\n    {\n      \"values\": ";
      out += FloatArrayJson(vectors[i]);
      out += "\n    }";
    }
    out += "\n  ]\n}\n";
    return out;
  }

  // Gemini's calls carry no id; this one only keys the neutral reply.
  std::string ToolCallId(uint64_t seed) const override { return MakeId("call_", 16, seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    try {
      return ParseOrThrow(req, ctx);
    } catch (const json::exception& e) {
      // A member of the wrong JSON type (the reads below assume the documented types).
      return Invalid(absl::StrFormat("Invalid JSON payload received. %s", e.what()));
    }
  }

  std::variant<ParsedRequest, ApiError> ParseOrThrow(const Request& req,
                                                     const ScriptContext& ctx) const {
    const Target target = ParseTarget(req);
    json raw = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (raw.is_discarded()) {
      return Invalid("Invalid JSON payload received. Unexpected token.");
    }
    auto top = Members(raw, {"contents", "systemInstruction", "tools", "toolConfig",
                             "generationConfig", "safetySettings", "cachedContent", "labels"},
                       "");
    if (auto* e = std::get_if<ApiError>(&top)) return *e;
    const json& body = std::get<json>(top);
    if (!body.contains("contents") || List(body["contents"]).empty()) {
      return Invalid("* GenerateContentRequest.contents: contents is not specified\n");
    }
    ParsedRequest out;
    const TextCounter& counter = ctx.counter;

    // systemInstruction: {parts: [{text}]}
    if (body.contains("systemInstruction")) {
      auto si = Members(body["systemInstruction"], {"parts", "role"}, "system_instruction");
      if (auto* e = std::get_if<ApiError>(&si)) return *e;
      for (const json& p : List(std::get<json>(si).value("parts", json::array()))) {
        auto part = Members(p, {"text"}, "system_instruction.parts[0]");
        if (auto* e = std::get_if<ApiError>(&part)) return *e;
        out.prompt_tokens += counter.Count(std::get<json>(part).value("text", ""));
      }
    }

    // contents
    const json contents = List(body["contents"]);
    size_t pending_calls = 0;  // function calls of the last model turn, to be answered
    std::string last_role;
    for (size_t i = 0; i < contents.size(); ++i) {
      const std::string at = absl::StrFormat("contents[%d]", i);
      auto c = Members(contents[i], {"role", "parts"}, at);
      if (auto* e = std::get_if<ApiError>(&c)) return *e;
      const json& content = std::get<json>(c);
      const std::string role = content.value("role", std::string("user"));
      if (role != "user" && role != "model") {
        return Invalid("Please use a valid role: user, model.");
      }
      const json parts = List(content.value("parts", json::array()));
      if (parts.empty()) {
        return Invalid(absl::StrFormat(
            "* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty.\n",
            i));
      }
      size_t calls = 0, responses = 0;
      std::string text;
      std::string response_text;
      for (size_t k = 0; k < parts.size(); ++k) {
        const std::string pat = absl::StrFormat("%s.parts[%d]", at, k);
        auto pm = Members(parts[k], {"text", "inlineData", "fileData", "functionCall",
                                     "functionResponse", "thought", "thoughtSignature",
                                     "executableCode", "codeExecutionResult", "videoMetadata"},
                          pat);
        if (auto* e = std::get_if<ApiError>(&pm)) return *e;
        const json& part = std::get<json>(pm);
        if (part.contains("text")) {
          if (!part["text"].is_string()) {
            return Invalid(absl::StrFormat("Invalid value at '%s.text' (TYPE_STRING)", pat));
          }
          if (!text.empty()) text += "\n";
          text += part["text"].get<std::string>();
          out.prompt_tokens += counter.Count(part["text"].get<std::string>());
        } else if (part.contains("inlineData") || part.contains("fileData")) {
          const bool inline_data = part.contains("inlineData");
          auto d = Members(inline_data ? part["inlineData"] : part["fileData"],
                           {"mimeType", "data", "fileUri", "displayName"},
                           pat + (inline_data ? ".inline_data" : ".file_data"));
          if (auto* e = std::get_if<ApiError>(&d)) return *e;
          const json& data = std::get<json>(d);
          if (!data.contains("mimeType")) {
            return Invalid(absl::StrFormat("* GenerateContentRequest.%s.%s.mime_type: "
                                           "mime_type is not specified\n",
                                           pat, inline_data ? "inline_data" : "file_data"));
          }
          if (inline_data ? !data.contains("data") : !data.contains("fileUri")) {
            return Invalid(absl::StrFormat("* GenerateContentRequest.%s: %s is required\n", pat,
                                           inline_data ? "data" : "file_uri"));
          }
          out.prompt_tokens += kImageTokens;
        } else if (part.contains("functionCall")) {
          if (role != "model") {
            return Invalid("Please ensure that function call turns come from the model.");
          }
          auto f = Members(part["functionCall"], {"name", "args", "id"}, pat + ".function_call");
          if (auto* e = std::get_if<ApiError>(&f)) return *e;
          const json& fc = std::get<json>(f);
          if (!fc.contains("name") || !fc["name"].is_string()) {
            return Invalid(absl::StrFormat(
                "* GenerateContentRequest.%s.function_call.name: Name cannot be empty.\n", pat));
          }
          if (fc.contains("args") && !fc["args"].is_object()) {
            return Invalid(absl::StrFormat(
                "Invalid value at '%s.function_call.args' (type.googleapis.com/"
                "google.protobuf.Struct)",
                pat));
          }
          out.prompt_tokens += counter.Count(fc["name"].get<std::string>()) +
                               counter.Count(fc.value("args", json::object()).dump());
          ++calls;
        } else if (part.contains("functionResponse")) {
          auto f = Members(part["functionResponse"], {"name", "response", "id"},
                           pat + ".function_response");
          if (auto* e = std::get_if<ApiError>(&f)) return *e;
          const json& fr = std::get<json>(f);
          if (!fr.contains("name") || !fr["name"].is_string()) {
            return Invalid(absl::StrFormat(
                "* GenerateContentRequest.%s.function_response.name: Name cannot be empty.\n",
                pat));
          }
          if (!fr.contains("response") || !fr["response"].is_object()) {
            return Invalid(absl::StrFormat(
                "Invalid value at '%s.function_response.response' (type.googleapis.com/"
                "google.protobuf.Struct)",
                pat));
          }
          out.prompt_tokens += counter.Count(fr["name"].get<std::string>()) +
                               counter.Count(fr["response"].dump());
          if (!response_text.empty()) response_text += "\n";
          response_text += fr["response"].dump();
          ++responses;
        }
      }
      if (responses > 0) {
        if (pending_calls == 0) {
          return Invalid(
              "Please ensure that function response turn comes immediately after a function "
              "call turn.");
        }
        if (responses != pending_calls) {
          return Invalid(
              "Please ensure that the number of function response parts is equal to the number "
              "of function call parts of the function call turn.");
        }
      }
      pending_calls = role == "model" ? calls : 0;
      last_role = role;
      // The echo: the last user turn's text, or its function responses.
      if (role == "user") out.echo = responses > 0 ? response_text : text;
      if (i + 1 == contents.size()) {
        if (role == "user" && responses == 0) {
          out.last_user = text;
          out.directive_param = absl::StrFormat("contents[%d].parts", i);
          absl::StatusOr<std::optional<std::string>> directive = TakeDirective(&out.last_user);
          absl::Status bad = directive.status();
          if (bad.ok() && directive->has_value()) {
            absl::StatusOr<std::shared_ptr<const Script>> script = ParseScript(**directive);
            if (script.ok()) out.directive = *std::move(script);
            bad = script.status();
          }
          if (!bad.ok()) {
            return Invalid(absl::StrFormat("%s: @emulator directive: %s", out.directive_param,
                                           bad.message()));
          }
          out.echo = out.last_user;
        }
      }
    }
    if (last_role == "model") {
      return Invalid("Please ensure that multiturn requests end with a user role or a function "
                     "response.");
    }

    // tools
    if (body.contains("tools")) {
      const json tools = List(body["tools"]);
      for (size_t i = 0; i < tools.size(); ++i) {
        const std::string at = absl::StrFormat("tools[%d]", i);
        auto t = Members(tools[i], {"functionDeclarations", "googleSearch", "codeExecution",
                                    "urlContext", "googleSearchRetrieval"},
                         at);
        if (auto* e = std::get_if<ApiError>(&t)) return *e;
        const json decls = List(std::get<json>(t).value("functionDeclarations", json::array()));
        for (size_t k = 0; k < decls.size(); ++k) {
          const std::string dat = absl::StrFormat("%s.function_declarations[%d]", at, k);
          auto d = Members(decls[k], {"name", "description", "parameters",
                                      "parametersJsonSchema", "response", "responseJsonSchema",
                                      "behavior"},
                           dat);
          if (auto* e = std::get_if<ApiError>(&d)) return *e;
          const json& decl = std::get<json>(d);
          if (!decl.contains("name") || !decl["name"].is_string() ||
              decl["name"].get<std::string>().empty()) {
            return Invalid(absl::StrFormat(
                "* GenerateContentRequest.%s.name: Name cannot be empty.\n", dat));
          }
          if (decl.contains("parameters") && decl.contains("parametersJsonSchema")) {
            return Invalid(absl::StrFormat(
                "* GenerateContentRequest.%s: parameters and parameters_json_schema are "
                "mutually exclusive\n",
                dat));
          }
          // The OpenAPI subset of "parameters" refuses JSON Schema keywords it lacks.
          if (decl.contains("parameters")) {
            for (const char* kw : {"additionalProperties", "$schema", "$ref", "$defs"}) {
              if (decl["parameters"].is_object() && decl["parameters"].contains(kw)) {
                return UnknownName(kw, dat + ".parameters");
              }
            }
          }
          out.tool_names.push_back(decl["name"].get<std::string>());
          const json* schema = decl.contains("parametersJsonSchema") ? &decl["parametersJsonSchema"]
                               : decl.contains("parameters")         ? &decl["parameters"]
                                                                     : nullptr;
          out.tool_schemas.push_back(schema != nullptr ? schema->dump() : std::string());
          out.prompt_tokens += counter.Count(decl["name"].get<std::string>()) +
                               counter.Count(decl.value("description", std::string())) +
                               (schema != nullptr ? counter.Count(schema->dump()) : 0);
        }
      }
    }
    if (body.contains("toolConfig")) {
      auto tc = Members(body["toolConfig"], {"functionCallingConfig", "retrievalConfig"},
                        "tool_config");
      if (auto* e = std::get_if<ApiError>(&tc)) return *e;
      auto fcc = Members(std::get<json>(tc).value("functionCallingConfig", json::object()),
                         {"mode", "allowedFunctionNames"}, "tool_config.function_calling_config");
      if (auto* e = std::get_if<ApiError>(&fcc)) return *e;
      const json& f = std::get<json>(fcc);
      std::string mode = f.value("mode", std::string("AUTO"));
      if (mode == "NONE") {
        out.tool_choice = ToolChoice::kNone;
      } else if (mode == "ANY") {
        out.tool_choice = ToolChoice::kRequired;
        json allowed = f.value("allowedFunctionNames", json::array());
        for (const json& n : allowed) {
          if (!n.is_string() || std::find(out.tool_names.begin(), out.tool_names.end(),
                                          n.get<std::string>()) == out.tool_names.end()) {
            return Invalid(absl::StrFormat(
                "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_"
                "names: %s is not a declared function\n",
                n.dump()));
          }
        }
        if (allowed.size() == 1) {
          out.tool_choice = ToolChoice::kNamed;
          out.named_tool = allowed[0].get<std::string>();
        }
      } else if (mode == "AUTO" || mode == "VALIDATED") {
        out.tool_choice = ToolChoice::kAuto;
      } else {
        return Invalid(absl::StrFormat(
            "Invalid value at 'tool_config.function_calling_config.mode' "
            "(type.googleapis.com/google.ai.generativelanguage.v1beta.FunctionCallingConfig."
            "Mode), \"%s\"",
            mode));
      }
      if (f.contains("allowedFunctionNames") && mode != "ANY") {
        return Invalid("* GenerateContentRequest.tool_config.function_calling_config.allowed_"
                       "function_names: allowed_function_names can only be set when mode is ANY\n");
      }
    }

    // generationConfig
    if (body.contains("generationConfig")) {
      auto g = Members(body["generationConfig"],
                       {"stopSequences", "responseMimeType", "responseSchema",
                        "responseJsonSchema", "candidateCount", "maxOutputTokens", "temperature",
                        "topP", "topK", "seed", "presencePenalty", "frequencyPenalty",
                        "responseLogprobs", "logprobs", "thinkingConfig", "responseModalities",
                        "mediaResolution", "speechConfig", "enableEnhancedCivicAnswers"},
                       "generation_config");
      if (auto* e = std::get_if<ApiError>(&g)) return *e;
      const json& gen = std::get<json>(g);
      if (gen.contains("temperature")) {
        if (!gen["temperature"].is_number() || gen["temperature"].get<double>() < 0 ||
            gen["temperature"].get<double>() > 2) {
          return Invalid("* GenerateContentRequest.generation_config.temperature: temperature "
                         "must be in the range [0.0, 2.0]\n");
        }
      }
      if (gen.contains("topP") &&
          (!gen["topP"].is_number() || gen["topP"].get<double>() < 0 ||
           gen["topP"].get<double>() > 1)) {
        return Invalid("* GenerateContentRequest.generation_config.top_p: top_p must be in the "
                       "range [0.0, 1.0]\n");
      }
      if (gen.contains("candidateCount")) {
        if (!gen["candidateCount"].is_number_integer() ||
            gen["candidateCount"].get<int64_t>() < 1 ||
            gen["candidateCount"].get<int64_t>() > 8) {
          return Invalid("* GenerateContentRequest.generation_config.candidate_count: "
                         "candidate_count must be in the range [1, 8]\n");
        }
        out.choices = static_cast<int>(gen["candidateCount"].get<int64_t>());
      }
      if (gen.contains("maxOutputTokens")) {
        if (!gen["maxOutputTokens"].is_number_integer() ||
            gen["maxOutputTokens"].get<int64_t>() < 1) {
          return Invalid("* GenerateContentRequest.generation_config.max_output_tokens: "
                         "max_output_tokens must be positive\n");
        }
        out.max_tokens = gen["maxOutputTokens"].get<int64_t>();
      }
      if (gen.contains("stopSequences") && List(gen["stopSequences"]).size() > 5) {
        return Invalid("* GenerateContentRequest.generation_config.stop_sequences: at most 5 "
                       "stop sequences are allowed\n");
      }
      if (gen.contains("thinkingConfig")) {
        auto t = Members(gen["thinkingConfig"], {"includeThoughts", "thinkingBudget",
                                                 "thinkingLevel"},
                         "generation_config.thinking_config");
        if (auto* e = std::get_if<ApiError>(&t)) return *e;
        out.extra["include_thoughts"] =
            std::get<json>(t).value("includeThoughts", false) ? "1" : "0";
      }
      const std::string mime = gen.value("responseMimeType", std::string("text/plain"));
      if (gen.contains("responseSchema") && gen.contains("responseJsonSchema")) {
        return Invalid("* GenerateContentRequest.generation_config: response_schema and "
                       "response_json_schema are mutually exclusive\n");
      }
      const json* schema = gen.contains("responseJsonSchema") ? &gen["responseJsonSchema"]
                           : gen.contains("responseSchema")  ? &gen["responseSchema"]
                                                             : nullptr;
      if (schema != nullptr && mime != "application/json" && mime != "text/x.enum") {
        return Invalid("* GenerateContentRequest.generation_config.response_mime_type: "
                       "response_mime_type must be application/json when a response schema is "
                       "set\n");
      }
      if (mime == "application/json") {
        out.format = schema != nullptr ? OutputFormat::kJsonSchema : OutputFormat::kJsonObject;
        if (schema != nullptr) out.format_schema = schema->dump();
      }
    }

    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = MakeId("", 23, out.seed);  // responseId: 23 base62 characters, as recorded
    out.model = target.model;
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.stream = target.stream;
    out.include_usage = true;  // Gemini always reports usageMetadata
    out.extra["framing"] = target.sse ? "sse" : "array";
    out.extra["vertex"] = target.vertex ? "1" : "0";
    out.extra["create_time"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", ctx.clock.Now(),
                                                absl::UTCTimeZone());
    return out;
  }

  // One candidate's parts: thoughts (only when asked for), text, whole function calls.
  static ojson Parts(const ScriptedReply& r) {
    ojson parts = ojson::array();
    if (!r.reasoning.empty() && Extra(r, "include_thoughts", "0") == "1") {
      parts.push_back({{"text", r.reasoning}, {"thought", true}});
    }
    if (r.refusal.has_value()) parts.push_back({{"text", *r.refusal}});
    if (!r.text.empty()) parts.push_back({{"text", r.text}});
    for (const ToolCall& c : r.tool_calls) {
      ojson args = ojson::parse(c.arguments, nullptr, false);
      if (!args.is_object()) args = ojson::object();
      parts.push_back({{"functionCall", {{"name", c.name}, {"args", std::move(args)}}}});
    }
    if (parts.empty()) parts.push_back({{"text", ""}});
    return parts;
  }

  ojson Element(const ScriptedReply& r, ojson candidates, bool usage) const {
    ojson e = {{"candidates", std::move(candidates)}};
    if (usage) {
      e["usageMetadata"] = UsageMetadata(r);
    } else {
      e["usageMetadata"] = {{"promptTokenCount", r.prompt_tokens},
                            {"totalTokenCount", r.prompt_tokens}};
    }
    e["modelVersion"] = r.model;
    if (Extra(r, "vertex") == "1") e["createTime"] = Extra(r, "create_time");
    e["responseId"] = r.id;
    return e;
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson candidates = ojson::array();
    for (int i = 0; i < r.choices; ++i) {
      candidates.push_back({{"content", {{"parts", Parts(r)}, {"role", "model"}}},
                            {"finishReason", FinishReason(r.finish_reason)},
                            {"index", i}});
    }
    return Pretty(Element(r, std::move(candidates), /*usage=*/true));
  }

  // Elements per candidate: thought pieces, text pieces, the function calls (Gemini sends
  // each call whole), then a last element per candidate with finishReason; the very last
  // element carries the final usageMetadata (earlier ones the prompt's count only).
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<ojson> elements;
    auto one = [&](int index, ojson parts, const std::string& finish = "") {
      ojson c = {{"content", {{"parts", std::move(parts)}, {"role", "model"}}}};
      if (!finish.empty()) c["finishReason"] = finish;
      c["index"] = index;
      elements.push_back(Element(r, ojson::array({std::move(c)}), false));
    };
    const bool thoughts = Extra(r, "include_thoughts", "0") == "1";
    for (int i = 0; i < r.choices; ++i) {
      if (thoughts) {
        for (const std::string& piece : r.reasoning_pieces) {
          one(i, ojson::array({{{"text", piece}, {"thought", true}}}));
        }
      }
      for (const std::string& piece : r.refusal_pieces) one(i, ojson::array({{{"text", piece}}}));
      for (const std::string& piece : r.text_pieces) one(i, ojson::array({{{"text", piece}}}));
      for (const ToolCall& c : r.tool_calls) {
        ojson args = ojson::parse(c.arguments, nullptr, false);
        if (!args.is_object()) args = ojson::object();
        one(i, ojson::array({{{"functionCall", {{"name", c.name}, {"args", std::move(args)}}}}}));
      }
      one(i, ojson::array({{{"text", ""}}}), FinishReason(r.finish_reason));
    }
    elements.back()["usageMetadata"] = UsageMetadata(r);
    if (r.interrupt.has_value()) {
      elements.resize(std::min(elements.size(), static_cast<size_t>(r.interrupt->after_chunks)));
    }
    const bool sse = Extra(r, "framing") == "sse";
    std::vector<std::string> events;
    for (size_t k = 0; k < elements.size(); ++k) {
      if (sse) {
        events.push_back("data: " + Compact(elements[k]) + "\r\n\r\n");
      } else {
        events.push_back((k == 0 ? "[" : "\n,\r\n") + Pretty(elements[k]));
      }
    }
    if (r.interrupt.has_value()) {
      if (r.interrupt->reset) return events;
      // A failure after the stream started: Google's error object as the next element.
      const ScriptedError& se = r.interrupt->error;
      ApiError e = DefaultError(se.status, r.model);
      if (se.message) e.message = *se.message;
      if (se.type) e.type = *se.type;
      ojson error = ErrorJson(e);
      if (sse) {
        events.push_back("data: " + Compact(error) + "\r\n\r\n");
      } else {
        events.push_back((events.empty() ? "[" : "\n,\r\n") + Pretty(error) + "]");
      }
      return events;
    }
    if (!sse) events.push_back("]");
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson list = ojson::array();
    for (const std::string& m : models) {
      list.push_back({{"name", "models/" + m},
                      {"version", "001"},
                      {"displayName", m},
                      {"inputTokenLimit", 1048576},
                      {"outputTokenLimit", 65536},
                      {"supportedGenerationMethods",
                       {"generateContent", "countTokens", "streamGenerateContent"}}});
    }
    return Pretty(ojson{{"models", std::move(list)}});
  }

  static ApiError DefaultError(int status, const std::string& model) {
    switch (status) {
      case 400: return Invalid("Request contains an invalid argument.");
      case 403: return Error(403, "The caller does not have permission");
      case 404:
        return Error(404, absl::StrFormat("models/%s is not found for API version v1beta, or is "
                                          "not supported for generateContent. Call ListModels "
                                          "to see the list of available models and their "
                                          "supported methods.",
                                          model));
      case 429:
        return Error(429, "You exceeded your current quota, please check your plan and billing "
                          "details. For more information on this error, head to: "
                          "https://ai.google.dev/gemini-api/docs/rate-limits.");
      case 500:
        return Error(500, "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting");
      case 503: return Error(503, "The model is overloaded. Please try again later.");
      default: return Error(status, absl::StrFormat("Emulated error with HTTP status %d.", status));
    }
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    switch (cause) {
      case ErrorCause::kUnknownRoute:
        return Error(404, absl::StrFormat("The requested URL %s was not found on this server.",
                                          req.path));
      case ErrorCause::kBodyTooLarge:
        return Error(413, "Request payload size exceeds the limit: 20971520 bytes.");
      case ErrorCause::kBadHttp: return Invalid("Bad Request");
      case ErrorCause::kUnauthorized:
        if (ParseTarget(req).vertex) {
          return Error(401, "Request had invalid authentication credentials. Expected OAuth 2 "
                            "access token, login cookie or other valid authentication "
                            "credential. See https://developers.google.com/identity/sign-in/"
                            "web/devconsole-project.");
        }
        if (ApiKey(req).empty()) {
          return Error(403, "Method doesn't allow unregistered callers (callers without "
                            "established identity). Please use API Key or other form of API "
                            "consumer identity to call this API.");
        }
        return Invalid("API key not valid. Please pass a valid API key.");
      case ErrorCause::kInjected:
        break;
    }
    std::string model = Model(req);
    return DefaultError(status, model.empty() ? "gemini-2.5-flash" : model);
  }

  static ojson ErrorJson(const ApiError& e) {
    // type: a google.rpc status name when a script or control set one, else the status's.
    std::string status = e.type;
    if (status.empty() || status.find_first_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos) {
      status = StatusName(e.status);
    }
    ojson error = {{"code", e.status}, {"message", e.message}, {"status", status}};
    ojson details = ojson::array();
    if (e.status == 429) {
      details.push_back({{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
                         {"violations",
                          ojson::array({{{"quotaMetric",
                                          "generativelanguage.googleapis.com/"
                                          "generate_content_free_tier_requests"},
                                         {"quotaId", "GenerateRequestsPerMinutePerProjectPerModel-"
                                                     "FreeTier"}}})}});
      for (const auto& [name, value] : e.headers) {
        if (name == "retry-after") {
          details.push_back({{"@type", "type.googleapis.com/google.rpc.RetryInfo"},
                             {"retryDelay", value + "s"}});
        }
      }
    }
    if (e.message.rfind("API key not valid", 0) == 0) {
      details.push_back({{"@type", "type.googleapis.com/google.rpc.ErrorInfo"},
                         {"reason", "API_KEY_INVALID"},
                         {"domain", "googleapis.com"}});
    }
    if (!details.empty()) error["details"] = std::move(details);
    return ojson{{"error", std::move(error)}};
  }

  std::string RenderError(const ApiError& e) const override { return Pretty(ErrorJson(e)); }

  Headers ResponseHeaders(uint64_t sequence) const override {
    return {{"server", "scaffolding on HTTPServer2"},
            {"x-goog-request-id", MakeId("", 16, sequence * 0x9E3779B97F4A7C15ULL + 7)},
            {"vary", "Origin, X-Origin, Referer"}};
  }

  std::string_view whole_content_type() const override {
    return "application/json; charset=UTF-8";
  }
  std::string_view stream_content_type() const override { return "text/event-stream"; }
  std::string StreamContentType(const ScriptedReply& r) const override {
    return Extra(r, "framing") == "sse" ? "text/event-stream" : "application/json; charset=UTF-8";
  }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewGeminiDialect() { return std::make_unique<GeminiDialect>(); }

}  // namespace modeenvoy::emulator
