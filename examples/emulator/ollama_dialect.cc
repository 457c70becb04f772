// Ollama's native chat API (POST /api/chat, GET /api/tags) as an Ollama server puts it on
// the wire, shaped after Kong's recordings (shared/data/provider-fixtures: kong ai-proxy
// llama2/ollama, mistral/ollama): whole answers as one JSON object, streams as NDJSON lines
// ending with a line carrying done: true, done_reason and the eval counts. Written apart from
// lib/protocol's translator, so gateway tests through it are not circular.
//
// Validation follows Ollama's Go server: wrong JSON types are 400s with Go's decoder
// message; "model is required"; `stream` defaults to true. Usage as Ollama counts it:
// prompt_eval_count is the templated prompt (each message's text + 4 template tokens with a
// tokenizer; words alone with the word counter) less a cached prefix (Ollama reuses its KV
// cache and counts only what it evaluated); eval_count is every generated token.
#include <algorithm>
#include <cctype>
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

constexpr int64_t kTemplateTokensPerMessage = 4;

ApiError OllamaError(int status, std::string message) {
  ApiError e;
  e.status = status;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  e.message = std::move(message);
  return e;
}

std::string GoType(const json& v) {
  if (v.is_string()) return "string";
  if (v.is_boolean()) return "bool";
  if (v.is_number()) return "number";
  if (v.is_array()) return "array";
  if (v.is_object()) return "object";
  return "null";
}

// Go's encoding/json message for a value of the wrong type.
ApiError Unmarshal(const json& v, std::string_view field, std::string_view go_type) {
  return OllamaError(400, absl::StrFormat("json: cannot unmarshal %s into Go struct field %s of "
                                          "type %s",
                                          GoType(v), field, go_type));
}

std::string Rfc3339(int64_t unix_seconds) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", absl::FromUnixSeconds(unix_seconds),
                          absl::UTCTimeZone());
}

bool IsBase64(const std::string& s) {
  if (s.empty() || s.size() % 4 != 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/') continue;
    if (c == '=' && i + 2 >= s.size()) continue;
    return false;
  }
  return true;
}

class OllamaDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "ollama"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && req.path == "/api/chat") return Route::kGenerate;
    if (req.method == "GET" && req.path == "/api/tags") return Route::kListModels;
    if (req.method == "POST" && req.path == "/api/embed") return Route::kEmbeddings;
    return Route::kNone;
  }

  // POST /api/embed as Ollama's server decodes it (Go's encoding/json: unknown fields are
  // ignored, wrong types are unmarshal errors): model required, input a string or an array
  // of strings, dimensions optional. prompt_eval_count: the inputs' tokens. Width 768
  // (nomic-embed-text), 1024 for mxbai-embed-large, or `dimensions`.
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return OllamaError(400, "invalid character in request body");
    if (!body.is_object()) return Unmarshal(body, "EmbedRequest", "api.EmbedRequest");
    if (!body.contains("model") || body["model"].is_null() ||
        (body["model"].is_string() && body["model"].get<std::string>().empty())) {
      return OllamaError(400, "model is required");
    }
    if (!body["model"].is_string()) return Unmarshal(body["model"], "EmbedRequest.model", "string");
    EmbeddingsAsk ask;
    ask.model = body["model"];
    const json input = body.value("input", json());
    if (input.is_string()) {
      ask.texts.push_back(input);
    } else if (input.is_array()) {
      for (const json& t : input) {
        if (!t.is_string()) return OllamaError(400, "invalid input type");
        ask.texts.push_back(t);
      }
    } else if (!input.is_null()) {
      return OllamaError(400, "invalid input type");
    }
    for (const std::string& t : ask.texts) ask.prompt_tokens += ctx.counter.Count(t);
    ask.dimensions = ask.model.find("mxbai-embed-large") != std::string::npos ? 1024 : 768;
    if (body.contains("dimensions") && !body["dimensions"].is_null()) {
      const json& d = body["dimensions"];
      if (!d.is_number_integer()) return Unmarshal(d, "EmbedRequest.dimensions", "int");
      if (d.get<int64_t>() < 1 || d.get<int64_t>() > ask.dimensions) {
        return OllamaError(400, absl::StrFormat("dimensions must be between 1 and %d",
                                                ask.dimensions));
      }
      ask.dimensions = d.get<int64_t>();
    }
    return ask;
  }

  std::string RenderEmbeddings(const EmbeddingsAsk& ask,
                               const std::vector<std::vector<float>>& vectors) const override {
    std::string list = "[";
    for (size_t i = 0; i < vectors.size(); ++i) {
      if (i != 0) list += ",";
      list += FloatArrayJson(vectors[i]);
    }
    list += "]";
    return absl::StrFormat("{\"model\":%s,\"embeddings\":%s,\"total_duration\":14143917,"
                           "\"load_duration\":1019500,\"prompt_eval_count\":%d}",
                           json(ask.model).dump(), list, ask.prompt_tokens);
  }

  // Ollama itself has no keys; a proxy in front of it takes a bearer token.
  std::string ApiKey(const Request& req) const override {
    std::string_view auth = req.Header("authorization");
    if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
      return std::string(auth.substr(7));
    }
    return "";
  }

  std::string Model(const Request& req) const override {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_object() && body.contains("model") && body["model"].is_string()) {
      return body["model"];
    }
    return "";
  }

  std::string ToolCallId(uint64_t seed) const override { return MakeId("call_", 8, seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return OllamaError(400, "invalid character in request body");
    if (!body.is_object()) return Unmarshal(body, "ChatRequest", "api.ChatRequest");
    if (!body.contains("model") || body["model"].is_null() ||
        (body["model"].is_string() && body["model"].get<std::string>().empty())) {
      return OllamaError(400, "model is required");
    }
    if (!body["model"].is_string()) return Unmarshal(body["model"], "ChatRequest.model", "string");
    ParsedRequest out;
    out.model = body["model"];
    out.stream = true;  // Ollama streams unless told not to
    if (body.contains("stream") && !body["stream"].is_null()) {
      if (!body["stream"].is_boolean()) {
        return Unmarshal(body["stream"], "ChatRequest.stream", "bool");
      }
      out.stream = body["stream"];
    }
    json messages = body.value("messages", json::array());
    if (!messages.is_array()) return Unmarshal(messages, "ChatRequest.messages", "[]api.Message");
    if (messages.empty()) return OllamaError(400, "messages: at least one message is required");
    int64_t prompt = 0;
    std::vector<std::string> texts;
    for (size_t i = 0; i < messages.size(); ++i) {
      const json& m = messages[i];
      if (!m.is_object()) return Unmarshal(m, "ChatRequest.messages", "api.Message");
      const json role = m.value("role", json());
      if (!role.is_string()) return Unmarshal(role, "ChatRequest.messages.role", "string");
      const std::string r = role;
      if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
        return OllamaError(400, absl::StrFormat("invalid role: %s", r));
      }
      const json content = m.value("content", json(""));
      if (!content.is_string() && !content.is_null()) {
        return Unmarshal(content, "ChatRequest.messages.content", "string");
      }
      std::string text = content.is_string() ? content.get<std::string>() : "";
      if (m.contains("images") && !m["images"].is_null()) {
        if (!m["images"].is_array()) {
          return Unmarshal(m["images"], "ChatRequest.messages.images", "[]api.ImageData");
        }
        for (const json& img : m["images"]) {
          if (!img.is_string() || !IsBase64(img.get<std::string>())) {
            return OllamaError(400, "illegal base64 data in image");
          }
          prompt += 1;  // an image is one embedding slot in the template
        }
      }
      if (m.contains("tool_calls") && !m["tool_calls"].is_null()) {
        if (!m["tool_calls"].is_array()) {
          return Unmarshal(m["tool_calls"], "ChatRequest.messages.tool_calls", "[]api.ToolCall");
        }
        for (const json& c : m["tool_calls"]) {
          if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
            return OllamaError(400, "invalid tool call");
          }
          const json args = c["function"].value("arguments", json::object());
          if (!args.is_object()) {
            return Unmarshal(args, "ChatRequest.messages.tool_calls.function.arguments",
                             "api.ToolCallFunctionArguments");
          }
          prompt += ctx.counter.Count(c["function"].value("name", "")) +
                    ctx.counter.Count(args.dump());
        }
      }
      prompt += ctx.counter.Count(text);
      if (ctx.counter.encoding != nullptr) prompt += kTemplateTokensPerMessage;
      texts.push_back(std::move(text));
    }
    // Options: Ollama's sampler settings, typed.
    if (body.contains("options") && !body["options"].is_null()) {
      const json& o = body["options"];
      if (!o.is_object()) return Unmarshal(o, "ChatRequest.options", "map[string]interface {}");
      for (const char* key : {"temperature", "top_p", "presence_penalty", "frequency_penalty",
                              "min_p", "repeat_penalty"}) {
        if (o.contains(key) && !o[key].is_number()) {
          return OllamaError(400, absl::StrFormat("option \"%s\" must be of type number", key));
        }
      }
      for (const char* key : {"seed", "num_predict", "top_k", "num_ctx"}) {
        if (o.contains(key) && !o[key].is_number_integer()) {
          return OllamaError(400, absl::StrFormat("option \"%s\" must be of type integer", key));
        }
      }
      if (o.contains("stop") && !o["stop"].is_array()) {
        return OllamaError(400, "option \"stop\" must be of type array");
      }
      if (o.contains("num_predict") && o["num_predict"].get<int64_t>() > 0) {
        out.max_tokens = o["num_predict"];
      }
      if (o.contains("seed")) out.extra["seed"] = std::to_string(o["seed"].get<int64_t>());
    }
    if (body.contains("format") && !body["format"].is_null()) {
      const json& f = body["format"];
      if (f.is_string() && f == "json") {
        out.format = OutputFormat::kJsonObject;
      } else if (f.is_object()) {
        out.format = OutputFormat::kJsonSchema;
        out.format_schema = f.dump();
      } else if (!(f.is_string() && f.get<std::string>().empty())) {
        return OllamaError(400, absl::StrFormat("invalid format: %s", f.dump()));
      }
    }
    if (body.contains("think") && !body["think"].is_null() && !body["think"].is_boolean()) {
      const json& t = body["think"];
      if (!t.is_string() || (t != "low" && t != "medium" && t != "high")) {
        return OllamaError(400, absl::StrFormat("invalid think value: %s", t.dump()));
      }
    }
    if (body.contains("tools") && !body["tools"].is_null()) {
      if (!body["tools"].is_array()) return Unmarshal(body["tools"], "ChatRequest.tools", "api.Tools");
      for (const json& t : body["tools"]) {
        if (!t.is_object() || !t.contains("function") || !t["function"].is_object() ||
            !t["function"].contains("name") || !t["function"]["name"].is_string()) {
          return OllamaError(400, "invalid tool: function.name is required");
        }
        out.tool_names.push_back(t["function"]["name"]);
        out.tool_schemas.push_back(t["function"].contains("parameters")
                                       ? t["function"]["parameters"].dump()
                                       : std::string());
        prompt += ctx.counter.Count(t.dump());  // tool definitions go into the template
      }
    }
    const json& last = messages.back();
    if (last.value("role", "") == "user") {
      out.last_user = texts.back();
      out.directive_param = absl::StrFormat("messages[%d].content", messages.size() - 1);
      absl::StatusOr<std::optional<std::string>> directive = TakeDirective(&out.last_user);
      absl::Status bad = directive.status();
      if (bad.ok() && directive->has_value()) {
        absl::StatusOr<std::shared_ptr<const Script>> script = ParseScript(**directive);
        if (script.ok()) out.directive = *std::move(script);
        bad = script.status();
      }
      if (!bad.ok()) {
        return OllamaError(400, absl::StrFormat("%s: @emulator directive: %s",
                                                out.directive_param, bad.message()));
      }
    }
    for (size_t i = messages.size(); i-- > 0;) {
      const std::string role = messages[i].value("role", "");
      if (role == "user" || role == "tool") {
        out.echo = i + 1 == messages.size() && role == "user" ? out.last_user : texts[i];
        break;
      }
    }
    if (ctx.counter.encoding != nullptr) prompt += 2;  // the assistant turn's opening
    out.prompt_tokens = prompt;
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = MakeId("", 16, out.seed);
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.include_usage = true;
    return out;
  }

  ojson Head(const ScriptedReply& r) const {
    return ojson{{"model", r.model}, {"created_at", Rfc3339(r.created)}};
  }

  ojson Calls(const ScriptedReply& r) const {
    ojson calls = ojson::array();
    for (const ToolCall& c : r.tool_calls) {
      ojson args = ojson::parse(c.arguments, nullptr, false);
      if (!args.is_object()) args = ojson::object();
      calls.push_back({{"function", {{"name", c.name}, {"arguments", std::move(args)}}}});
    }
    return calls;
  }

  // The counts and timings of the final line / whole body (deterministic durations).
  void Finish(const ScriptedReply& r, ojson* j) const {
    (*j)["done_reason"] = r.finish_reason == "length" ? "length" : "stop";
    (*j)["done"] = true;
    const int64_t prompt_eval = r.prompt_tokens - r.cached_tokens;
    (*j)["total_duration"] = 1000000 * (10 + prompt_eval + r.completion_tokens);
    (*j)["load_duration"] = 1000000;
    (*j)["prompt_eval_count"] = prompt_eval;
    (*j)["prompt_eval_duration"] = 1000000 * (1 + prompt_eval);
    (*j)["eval_count"] = r.completion_tokens;
    (*j)["eval_duration"] = 1000000 * (1 + r.completion_tokens);
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson j = Head(r);
    ojson m = {{"role", "assistant"}, {"content", r.refusal.value_or(r.text)}};
    if (!r.reasoning.empty()) m["thinking"] = r.reasoning;
    if (!r.tool_calls.empty()) m["tool_calls"] = Calls(r);
    j["message"] = std::move(m);
    Finish(r, &j);
    return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
  }

  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> lines;
    auto line = [&](ojson message, bool done) {
      ojson j = Head(r);
      j["message"] = std::move(message);
      if (done) {
        Finish(r, &j);
      } else {
        j["done"] = false;
      }
      lines.push_back(j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n");
    };
    for (const std::string& piece : r.reasoning_pieces) {
      line({{"role", "assistant"}, {"content", ""}, {"thinking", piece}}, false);
    }
    for (const std::string& piece : r.refusal.has_value() ? r.refusal_pieces : r.text_pieces) {
      line({{"role", "assistant"}, {"content", piece}}, false);
    }
    // Ollama emits tool calls whole, in one line.
    if (!r.tool_calls.empty()) {
      line({{"role", "assistant"}, {"content", ""}, {"tool_calls", Calls(r)}}, false);
    }
    line({{"role", "assistant"}, {"content", ""}}, true);
    if (r.interrupt.has_value()) {
      lines.resize(std::min(lines.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        std::string message = se.message.value_or(DefaultMessage(se.status, r.model));
        lines.push_back(ojson{{"error", message}}.dump() + "\n");
      }
    }
    return lines;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson list = ojson::array();
    for (const std::string& m : models) {
      std::string name = m.find(':') == std::string::npos ? m + ":latest" : m;
      list.push_back({{"name", name},
                      {"model", name},
                      {"modified_at", "2024-01-15T08:00:00.000000Z"},
                      {"size", 3825819519LL},
                      {"digest", MakeId("", 64, HashBytes(m))},
                      {"details",
                       {{"format", "gguf"},
                        {"family", "llama"},
                        {"parameter_size", "7B"},
                        {"quantization_level", "Q4_0"}}}});
    }
    return ojson{{"models", std::move(list)}}.dump();
  }

  static std::string DefaultMessage(int status, const std::string& model) {
    switch (status) {
      case 400:
        return "invalid request";
      case 401:
        return "unauthorized";
      case 404:
        return absl::StrFormat("model \"%s\" not found, try pulling it first", model);
      case 429:
        return "server busy, please try again.  maximum pending requests exceeded";
      case 500:
        return "an error was encountered while running the model";
      case 503:
        return "server overloaded, please try again later";
      default:
        return absl::StrFormat("emulated error with HTTP status %d", status);
    }
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    switch (cause) {
      case ErrorCause::kUnknownRoute:
        return OllamaError(status, "404 page not found");
      case ErrorCause::kBodyTooLarge:
        return OllamaError(status, "http: request body too large");
      case ErrorCause::kBadHttp:
        return OllamaError(status, "malformed HTTP request");
      case ErrorCause::kUnauthorized:
      case ErrorCause::kInjected:
        break;
    }
    std::string model = Model(req);
    return OllamaError(status, DefaultMessage(status, model.empty() ? "llama3.2" : model));
  }

  std::string RenderError(const ApiError& e) const override {
    return ojson{{"error", e.message}}.dump(-1, ' ', false, ojson::error_handler_t::replace);
  }

  Headers ResponseHeaders(uint64_t /*sequence*/) const override { return {}; }
  std::string_view whole_content_type() const override {
    return "application/json; charset=utf-8";
  }
  std::string_view stream_content_type() const override { return "application/x-ndjson"; }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewOllamaDialect() { return std::make_unique<OllamaDialect>(); }

}  // namespace modeenvoy::emulator
