// Cohere's v2 chat API (POST /v2/chat) as Cohere puts it on the wire, shaped after the
// vercel-ai recordings (shared/data/provider-fixtures: vercel-ai/packages/cohere): whole
// answers {"id","message":{"role","content":[...],"tool_plan","tool_calls"},
// "finish_reason","usage":{"billed_units","tokens","cached_tokens"}}; streams of SSE events
// message-start, content-start/-delta/-end, tool-plan-delta, tool-call-start/-delta/-end,
// message-end. Errors {"id","message"}. Written apart from lib/protocol's translator.
//
// Validation is strict as Cohere's: unknown fields, roles, content part types, tool_choice
// other than REQUIRED/NONE, p outside 0.01..0.99, k outside 0..500, penalties outside 0..1,
// more than 5 stop sequences are 400s. Usage as Cohere counts it: billed_units.input_tokens
// are the tokens of the messages' text (and tool calls); tokens.input_tokens add Cohere's
// system preamble (kPreambleTokens, as the recordings show ~495) and are what the model
// processed; output tokens are every generated token; cached_tokens as scripted.
// A failure inside a started stream is a message-end event with finish_reason "ERROR" and
// the error text in delta.error.
#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int64_t kPreambleTokens = 495;

std::string Uuid(uint64_t seed) {
  std::string hex;
  for (int i = 0; i < 2; ++i) {
    hex += absl::StrFormat("%016x", HashBytes("cohere", seed + static_cast<uint64_t>(i)));
  }
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-4" + hex.substr(13, 3) + "-a" +
         hex.substr(17, 3) + "-" + hex.substr(20, 12);
}

ApiError CohereError(int status, std::string message) {
  ApiError e;
  e.status = status;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  e.message = std::move(message);
  return e;
}

ApiError Invalid(std::string what) { return CohereError(400, "invalid request: " + what); }

// Text of a content value: a string, or its text parts joined by newlines.
std::string ContentText(const json& content) {
  if (content.is_string()) return content;
  std::string out;
  if (!content.is_array()) return out;
  for (const json& p : content) {
    if (p.is_object() && p.value("type", "") == "text" && p.contains("text") &&
        p["text"].is_string()) {
      if (!out.empty()) out += "\n";
      out += p["text"].get<std::string>();
    }
  }
  return out;
}

std::string Sse(const ojson& j) {
  return "event: " + j.value("type", std::string()) + "\ndata: " +
         j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n\n";
}

std::string CohereFinish(const std::string& openai) {
  if (openai == "length") return "MAX_TOKENS";
  if (openai == "tool_calls") return "TOOL_CALL";
  if (openai == "content_filter") return "ERROR";
  return "COMPLETE";
}

class CohereDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "cohere"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && req.path == "/v2/chat") return Route::kGenerate;
    if (req.method == "POST" && req.path == "/v2/embed") return Route::kEmbeddings;
    return Route::kNone;  // GET /v1/models belongs to the OpenAI dialect here
  }

  // POST /v2/embed as Cohere validates it: model, texts, input_type (required by the v3+
  // models) and embedding_types are required; unknown fields are refused; output_dimension
  // only on embed-v4.0 (256, 512, 1024, 1536). Billed units: the texts' tokens.
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return Invalid("invalid json body");
    for (const auto& [key, value] : body.items()) {
      if (key != "model" && key != "texts" && key != "input_type" && key != "embedding_types" &&
          key != "truncate" && key != "output_dimension" && key != "max_tokens") {
        return Invalid(absl::StrFormat("unknown field: parameter %s is not a valid field", key));
      }
    }
    EmbeddingsAsk ask;
    if (!body.contains("model") || !body["model"].is_string() ||
        body["model"].get<std::string>().empty()) {
      return Invalid("model is required");
    }
    ask.model = body["model"];
    if (!body.contains("texts") || !body["texts"].is_array() || body["texts"].empty()) {
      return Invalid("one of texts, images or inputs must be provided");
    }
    if (body["texts"].size() > 96) return Invalid("texts must have at most 96 elements");
    for (const json& t : body["texts"]) {
      if (!t.is_string()) return Invalid("texts must be an array of strings");
      ask.texts.push_back(t);
      ask.prompt_tokens += ctx.counter.Count(ask.texts.back());
    }
    if (!body.contains("input_type")) {
      return Invalid("valid input_type must be provided with the provided model");
    }
    const json& type = body["input_type"];
    if (type != "search_document" && type != "search_query" && type != "classification" &&
        type != "clustering" && type != "image") {
      return Invalid(absl::StrFormat("invalid input_type %s", type.dump()));
    }
    if (!body.contains("embedding_types") || !body["embedding_types"].is_array() ||
        body["embedding_types"].empty()) {
      return Invalid("embedding_types is required");
    }
    for (const json& t : body["embedding_types"]) {
      if (t != "float") {
        return Invalid(absl::StrFormat("embedding_types %s: the emulator answers \"float\" only",
                                       t.dump()));
      }
    }
    const bool v4 = ask.model.rfind("embed-v4", 0) == 0;
    ask.dimensions = v4 ? 1536 : 1024;
    if (body.contains("output_dimension")) {
      const json& d = body["output_dimension"];
      if (!v4) return Invalid("output_dimension is only supported for embed-v4.0 and newer models");
      if (!d.is_number_integer() || (d.get<int64_t>() != 256 && d.get<int64_t>() != 512 &&
                                     d.get<int64_t>() != 1024 && d.get<int64_t>() != 1536)) {
        return Invalid("output_dimension must be one of 256, 512, 1024, 1536");
      }
      ask.dimensions = d.get<int64_t>();
    }
    ask.extra["id"] = Uuid(HashBytes(req.body));
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
    return absl::StrFormat(
        "{\"id\":%s,\"embeddings\":{\"float\":%s},\"texts\":%s,\"meta\":{\"api_version\":"
        "{\"version\":\"2\"},\"billed_units\":{\"input_tokens\":%d}},"
        "\"response_type\":\"embeddings_by_type\"}",
        json(ask.extra.at("id")).dump(), list,
        json(ask.texts).dump(-1, ' ', false, json::error_handler_t::replace), ask.prompt_tokens);
  }

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

  std::string ToolCallId(uint64_t seed) const override {
    // Cohere's ids are "<tool name>_<12 characters>"; the name is not known here.
    return "call_" + absl::AsciiStrToLower(MakeId("", 12, seed));
  }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) {
      return Invalid("invalid json: the request body is not a JSON object");
    }
    static const char* const kKnown[] = {
        "model", "messages", "stream", "tools", "strict_tools", "tool_choice",
        "response_format", "stop_sequences", "temperature", "p", "k", "max_tokens", "seed",
        "frequency_penalty", "presence_penalty", "thinking", "documents", "citation_options",
        "safety_mode", "priority", "logprobs"};
    for (const auto& [key, value] : body.items()) {
      if (std::none_of(std::begin(kKnown), std::end(kKnown),
                       [&](const char* k) { return key == k; })) {
        return Invalid(absl::StrFormat("unknown field: parameter %s is not a valid field", key));
      }
    }
    if (!body.contains("model") || !body["model"].is_string() ||
        body["model"].get<std::string>().empty()) {
      return Invalid("model must be a non-empty string");
    }
    if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
      return Invalid("messages must be a non-empty array");
    }
    ParsedRequest out;
    out.model = body["model"];
    if (body.contains("stream")) {
      if (!body["stream"].is_boolean()) return Invalid("stream must be a boolean");
      out.stream = body["stream"];
    }
    const json& messages = body["messages"];
    int64_t billed = 0;
    std::vector<std::string> texts;
    for (size_t i = 0; i < messages.size(); ++i) {
      const json& m = messages[i];
      const std::string at = absl::StrFormat("messages[%d]", i);
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
        return Invalid(at + ".role is required");
      }
      const std::string role = m["role"];
      if (role != "system" && role != "user" && role != "assistant" && role != "tool") {
        return Invalid(absl::StrFormat("%s.role: '%s' is not one of system, user, assistant, "
                                       "tool", at, role));
      }
      const bool has_content = m.contains("content") && !m["content"].is_null();
      const bool has_calls = m.contains("tool_calls") && m["tool_calls"].is_array() &&
                             !m["tool_calls"].empty();
      if (!has_content && !(role == "assistant" && has_calls)) {
        return Invalid(at + ".content is required");
      }
      if (has_content) {
        const json& c = m["content"];
        if (!c.is_string() && !c.is_array()) {
          return Invalid(at + ".content must be a string or an array of content items");
        }
        if (c.is_array()) {
          for (size_t k = 0; k < c.size(); ++k) {
            const json& p = c[k];
            const std::string type = p.is_object() ? p.value("type", "") : "";
            const bool ok = type == "text" || (type == "image_url" && role == "user") ||
                            (type == "thinking" && role == "assistant") ||
                            (type == "document" && role == "tool");
            if (!ok) {
              return Invalid(absl::StrFormat("%s.content[%d].type: '%s' is not valid for role "
                                             "%s", at, k, type, role));
            }
            if (type == "image_url") {
              if (!p.contains("image_url") || !p["image_url"].is_object() ||
                  !p["image_url"].contains("url") || !p["image_url"]["url"].is_string()) {
                return Invalid(absl::StrFormat("%s.content[%d].image_url.url is required", at, k));
              }
              billed += 256;  // an image's tokens (a fixed cost here)
            }
          }
        }
      }
      if (role == "tool" && (!m.contains("tool_call_id") || !m["tool_call_id"].is_string())) {
        return Invalid(at + ".tool_call_id is required");
      }
      if (has_calls) {
        if (role != "assistant") return Invalid(at + ".tool_calls is only valid for assistant");
        for (const json& c : m["tool_calls"]) {
          if (!c.is_object() || !c.contains("id") || !c.contains("function") ||
              !c["function"].is_object() || !c["function"].contains("name")) {
            return Invalid(at + ".tool_calls: id and function.name are required");
          }
          const json args = c["function"].value("arguments", json(""));
          if (!args.is_string()) return Invalid(at + ".tool_calls.function.arguments must be a string");
          billed += ctx.counter.Count(c["function"]["name"].get<std::string>()) +
                    ctx.counter.Count(args.get<std::string>());
        }
      }
      std::string text = has_content ? ContentText(m["content"]) : "";
      if (m.contains("tool_plan") && m["tool_plan"].is_string()) {
        billed += ctx.counter.Count(m["tool_plan"].get<std::string>());
      }
      billed += ctx.counter.Count(text);
      texts.push_back(std::move(text));
    }
    auto range = [&](const char* key, double lo, double hi) -> std::optional<ApiError> {
      if (!body.contains(key)) return std::nullopt;
      if (!body[key].is_number() || body[key].get<double>() < lo || body[key].get<double>() > hi) {
        return Invalid(absl::StrFormat("%s must be a number between %g and %g", key, lo, hi));
      }
      return std::nullopt;
    };
    for (auto check : {range("p", 0.01, 0.99), range("k", 0, 500), range("temperature", 0, 1e9),
                       range("frequency_penalty", 0, 1), range("presence_penalty", 0, 1)}) {
      if (check.has_value()) return *check;
    }
    if (body.contains("max_tokens")) {
      if (!body["max_tokens"].is_number_integer() || body["max_tokens"].get<int64_t>() < 1) {
        return Invalid("max_tokens must be a positive integer");
      }
      out.max_tokens = body["max_tokens"];
    }
    if (body.contains("stop_sequences")) {
      if (!body["stop_sequences"].is_array() || body["stop_sequences"].size() > 5) {
        return Invalid("stop_sequences must be an array of at most 5 strings");
      }
    }
    if (body.contains("tools")) {
      if (!body["tools"].is_array()) return Invalid("tools must be an array");
      for (const json& t : body["tools"]) {
        if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
            !t["function"].is_object() || !t["function"].contains("name") ||
            !t["function"]["name"].is_string()) {
          return Invalid("tools: each tool needs type \"function\" and function.name");
        }
        out.tool_names.push_back(t["function"]["name"]);
        out.tool_schemas.push_back(t["function"].contains("parameters")
                                       ? t["function"]["parameters"].dump()
                                       : std::string());
        billed += ctx.counter.Count(t.dump());
      }
    }
    if (body.contains("tool_choice")) {
      const json& tc = body["tool_choice"];
      if (tc == "REQUIRED") {
        out.tool_choice = ToolChoice::kRequired;
      } else if (tc == "NONE") {
        out.tool_choice = ToolChoice::kNone;
      } else {
        return Invalid("tool_choice must be one of REQUIRED, NONE");
      }
      if (out.tool_names.empty()) return Invalid("tool_choice requires tools");
    }
    if (body.contains("response_format")) {
      const json& rf = body["response_format"];
      const std::string type = rf.is_object() ? rf.value("type", "") : "";
      if (type == "json_object") {
        out.format = rf.contains("json_schema") ? OutputFormat::kJsonSchema
                                                : OutputFormat::kJsonObject;
        if (rf.contains("json_schema")) out.format_schema = rf["json_schema"].dump();
      } else if (type != "text") {
        return Invalid("response_format.type must be one of text, json_object");
      }
    }
    if (body.contains("thinking")) {
      const json& th = body["thinking"];
      if (!th.is_object() || (th.value("type", "") != "enabled" && th.value("type", "") != "disabled")) {
        return Invalid("thinking.type must be one of enabled, disabled");
      }
    }
    const json& last = messages.back();
    if (last["role"] == "user") {
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
        return Invalid(absl::StrFormat("%s: @emulator directive: %s", out.directive_param,
                                       bad.message()));
      }
    }
    for (size_t i = messages.size(); i-- > 0;) {
      const std::string role = messages[i]["role"];
      if (role == "user" || role == "tool") {
        out.echo = i + 1 == messages.size() && role == "user" ? out.last_user : texts[i];
        break;
      }
    }
    out.prompt_tokens = billed + kPreambleTokens;
    out.extra["billed_input"] = std::to_string(billed);
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = Uuid(out.seed);
    out.include_usage = true;
    return out;
  }

  static ojson Usage(const ScriptedReply& r) {
    int64_t billed_in = r.prompt_tokens - kPreambleTokens;
    if (auto it = r.extra.find("billed_input"); it != r.extra.end()) {
      billed_in = std::stoll(it->second);
    }
    ojson u = {{"billed_units",
                {{"input_tokens", billed_in}, {"output_tokens", r.completion_tokens}}},
               {"tokens",
                {{"input_tokens", r.prompt_tokens}, {"output_tokens", r.completion_tokens}}}};
    if (r.cached_tokens > 0) u["cached_tokens"] = r.cached_tokens;
    return u;
  }

  // With tool calls, the text before them is Cohere's tool_plan.
  static std::string Plan(const ScriptedReply& r) {
    if (r.tool_calls.empty()) return "";
    if (!r.text.empty()) return r.text;
    return absl::StrFormat("I will use the %s tool.", r.tool_calls.front().name);
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson message = {{"role", "assistant"}};
    ojson content = ojson::array();
    if (!r.reasoning.empty()) content.push_back({{"type", "thinking"}, {"thinking", r.reasoning}});
    if (r.tool_calls.empty()) {
      content.push_back({{"type", "text"}, {"text", r.refusal.value_or(r.text)}});
    } else {
      message["tool_plan"] = Plan(r);
      ojson calls = ojson::array();
      for (const ToolCall& c : r.tool_calls) {
        calls.push_back({{"id", c.id},
                         {"type", "function"},
                         {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      }
      message["tool_calls"] = std::move(calls);
    }
    if (!content.empty()) message["content"] = std::move(content);
    ojson out = {{"id", r.id},
                 {"message", std::move(message)},
                 {"finish_reason", CohereFinish(r.finish_reason)},
                 {"usage", Usage(r)}};
    return out.dump(2, ' ', false, ojson::error_handler_t::replace);
  }

  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    events.push_back(Sse({{"id", r.id},
                          {"type", "message-start"},
                          {"delta",
                           {{"message",
                             {{"role", "assistant"},
                              {"content", ojson::array()},
                              {"tool_plan", ""},
                              {"tool_calls", ojson::array()},
                              {"citations", ojson::array()}}}}}}));
    int index = 0;
    auto block = [&](const char* kind, const std::vector<std::string>& pieces) {
      events.push_back(Sse({{"type", "content-start"},
                            {"index", index},
                            {"delta", {{"message", {{"content", {{"type", kind}, {kind, ""}}}}}}}}));
      for (const std::string& p : pieces) {
        events.push_back(Sse({{"type", "content-delta"},
                              {"index", index},
                              {"delta", {{"message", {{"content", {{kind, p}}}}}}}}));
      }
      events.push_back(Sse({{"type", "content-end"}, {"index", index}}));
      ++index;
    };
    if (!r.reasoning_pieces.empty()) block("thinking", r.reasoning_pieces);
    if (r.tool_calls.empty()) {
      const auto& pieces = r.refusal.has_value() ? r.refusal_pieces : r.text_pieces;
      if (!pieces.empty()) block("text", pieces);
    } else {
      std::vector<std::string> plan = r.text.empty() ? SplitPieces(Plan(r), 0) : r.text_pieces;
      for (const std::string& p : plan) {
        events.push_back(
            Sse({{"type", "tool-plan-delta"}, {"delta", {{"message", {{"tool_plan", p}}}}}}));
      }
      for (size_t k = 0; k < r.tool_calls.size(); ++k) {
        const ToolCall& c = r.tool_calls[k];
        events.push_back(Sse(
            {{"type", "tool-call-start"},
             {"index", k},
             {"delta",
              {{"message",
                {{"tool_calls",
                  {{"id", c.id},
                   {"type", "function"},
                   {"function", {{"name", c.name}, {"arguments", ""}}}}}}}}}}));
        for (const std::string& frag : SplitFragments(c.arguments, 6)) {
          events.push_back(Sse(
              {{"type", "tool-call-delta"},
               {"index", k},
               {"delta", {{"message", {{"tool_calls", {{"function", {{"arguments", frag}}}}}}}}}}));
        }
        events.push_back(Sse({{"type", "tool-call-end"}, {"index", k}}));
      }
    }
    events.push_back(Sse({{"type", "message-end"},
                          {"delta",
                           {{"finish_reason", CohereFinish(r.finish_reason)},
                            {"usage", Usage(r)}}}}));
    if (r.interrupt.has_value()) {
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        events.push_back(Sse({{"type", "message-end"},
                              {"delta",
                               {{"finish_reason", "ERROR"},
                                {"error", se.message.value_or(DefaultMessage(se.status, r.model,
                                                                             r.seed))}}}}));
      }
    }
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson list = ojson::array();
    for (const std::string& m : models) {
      list.push_back({{"name", m}, {"endpoints", {"chat"}}, {"context_length", 128000}});
    }
    return ojson{{"models", std::move(list)}}.dump();
  }

  static std::string DefaultMessage(int status, const std::string& model, uint64_t seed) {
    switch (status) {
      case 400:
        return "invalid request";
      case 401:
        return "invalid api token";
      case 404:
        return absl::StrFormat("model '%s' not found, make sure the correct model ID was used "
                               "and that you have access to the model.",
                               model);
      case 429:
        return "You are using a Trial key, which is limited to 20 API calls / minute. You can "
               "continue to use the Trial key for free or upgrade to a Production key with "
               "higher rate limits at 'https://dashboard.cohere.com/api-keys'.";
      case 500:
        return "internal server error, this has been reported to our developers. id " +
               Uuid(seed);
      case 503:
        return "service unavailable";
      default:
        return absl::StrFormat("emulated error with HTTP status %d", status);
    }
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    switch (cause) {
      case ErrorCause::kUnknownRoute:
        return CohereError(status, "not found");
      case ErrorCause::kBodyTooLarge:
        return CohereError(status, "request body too large");
      case ErrorCause::kBadHttp:
        return CohereError(status, "bad request");
      case ErrorCause::kUnauthorized:
        return CohereError(status, DefaultMessage(401, "", 0));
      case ErrorCause::kInjected:
        break;
    }
    std::string model = Model(req);
    return CohereError(status, DefaultMessage(status, model.empty() ? "command-a-03-2025" : model,
                                              HashBytes(req.body)));
  }

  std::string RenderError(const ApiError& e) const override {
    return ojson{{"id", Uuid(HashBytes(e.message))}, {"message", e.message}}.dump(
        -1, ' ', false, ojson::error_handler_t::replace);
  }

  Headers ResponseHeaders(uint64_t sequence) const override {
    return {{"x-debug-trace-id", MakeId("", 32, sequence * 0x9E3779B97F4A7C15ULL + 7)}};
  }
  std::string_view stream_content_type() const override { return "text/event-stream"; }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewCohereDialect() { return std::make_unique<CohereDialect>(); }

}  // namespace modeenvoy::emulator
