// OpenAI's Responses API (POST /v1/responses), as the real API puts it on the wire: shapes
// taken from the recordings in shared/data/provider-fixtures (vercel-ai
// openai/src/responses: openai-client-tool-search.2 for the response object and a function
// call, openai-reasoning-encrypted-content.1 for messages and reasoning summaries,
// openai-web-search-tool.1 for web_search_call items, openai-error.1 for a failed stream).
// Written on its own, not with lib/protocol's openai_responses dialect, so that gateway
// tests through it are not circular.
//
// Unlike the other dialects it keeps state: answered responses (bounded, in memory) so that
// `previous_response_id` works as OpenAI's does (the chained conversation counts in
// input_tokens; an unknown id is OpenAI's 400).
#include <algorithm>
#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "examples/emulator/openai_wire.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"
#include "lib/core/mutex.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// Responses kept for previous_response_id; the oldest is forgotten first.
constexpr size_t kMaxStoredResponses = 4096;

// Whole bodies pretty-printed (as the recordings are), events compact.
std::string DumpWhole(const ojson& j) {
  return j.dump(2, ' ', /*ensure_ascii=*/false, ojson::error_handler_t::replace);
}
std::string Compact(const ojson& j) {
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

ApiError Invalid(std::string message, std::optional<std::string> param,
                 std::optional<std::string> code) {
  return ApiError{400, "invalid_request_error", std::move(message), std::move(param),
                  std::move(code), {}};
}

std::string TypeName(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a decimal";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

ApiError BadType(const std::string& param, std::string_view expected, const json& got) {
  return Invalid(absl::StrFormat("Invalid type for '%s': expected %s, but got %s instead.", param,
                                 expected, TypeName(got)),
                 param, "invalid_type");
}

// OpenAI's item ids: a prefix and 50 hex digits.
std::string HexId(std::string_view prefix, uint64_t seed) {
  std::string out(prefix);
  uint64_t z = seed;
  while (out.size() < prefix.size() + 50) {
    z = SplitMix64(z + 0x9E3779B97F4A7C15ULL);
    out += absl::StrFormat("%016x", z);
  }
  out.resize(prefix.size() + 50);
  return out;
}

// Text of a message's content: a string, or its text / refusal parts joined.
std::string ContentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const json& part : content) {
    if (!part.is_object()) continue;
    for (const char* key : {"text", "refusal"}) {
      auto t = part.find(key);
      if (t != part.end() && t->is_string()) {
        if (!out.empty()) out += "\n";
        out += t->get<std::string>();
      }
    }
  }
  return out;
}

bool IsWebSearch(std::string_view type) { return type.rfind("web_search", 0) == 0; }

std::string Extra(const ScriptedReply& r, const std::string& key, std::string fallback = "") {
  auto it = r.extra.find(key);
  return it == r.extra.end() ? fallback : it->second;
}

class OpenAiResponsesDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "openai_responses"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && req.path == "/v1/responses") return Route::kGenerate;
    return Route::kNone;
  }

  std::string ApiKey(const Request& req) const override { return OpenAiBearerKey(req); }

  std::string Model(const Request& req) const override {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object()) {
      if (auto m = body.find("model"); m != body.end() && m->is_string()) return *m;
    }
    return "";
  }

  std::string ToolCallId(uint64_t seed) const override { return MakeId("call_", 24, seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Invalid(
          "We could not parse the JSON body of your request. (HINT: This likely means you "
          "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
          "but what was sent was not valid JSON. If you have trouble figuring out how to fix "
          "this, please contact us through our help center at help.openai.com.)",
          std::nullopt, std::nullopt);
    }
    static const std::set<std::string> kKnown = {
        "model",          "input",          "instructions",       "tools",
        "tool_choice",    "text",           "reasoning",          "max_output_tokens",
        "max_tool_calls", "temperature",    "top_p",              "top_logprobs",
        "parallel_tool_calls", "store",     "metadata",           "user",
        "safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier",
        "stream",         "stream_options", "previous_response_id", "include",
        "truncation",     "background",     "conversation",       "prompt"};
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (!kKnown.count(it.key())) {
        return Invalid(absl::StrFormat("Unknown parameter: '%s'.", it.key()), it.key(),
                       "unknown_parameter");
      }
    }
    auto model = body.find("model");
    if (model == body.end()) {
      return Invalid("Missing required parameter: 'model'.", "model",
                     "missing_required_parameter");
    }
    if (!model->is_string()) return BadType("model", "a string", *model);

    bool stream = false;
    if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
      if (!s->is_boolean()) return BadType("stream", "a boolean", *s);
      stream = s->get<bool>();
    }
    bool obfuscation = true;
    if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
      if (!stream) {
        return Invalid("The 'stream_options' parameter is only allowed when 'stream' is "
                       "enabled.",
                       "stream_options", std::nullopt);
      }
      if (!so->is_object()) return BadType("stream_options", "an object", *so);
      for (auto it = so->begin(); it != so->end(); ++it) {
        if (it.key() != "include_obfuscation") {
          return Invalid(absl::StrFormat("Unknown parameter: 'stream_options.%s'.", it.key()),
                         "stream_options." + it.key(), "unknown_parameter");
        }
      }
      obfuscation = so->value("include_obfuscation", true);
    }
    bool store = true;
    if (auto s = body.find("store"); s != body.end() && !s->is_null()) {
      if (!s->is_boolean()) return BadType("store", "a boolean", *s);
      store = s->get<bool>();
    }
    if (auto t = body.find("temperature"); t != body.end() && !t->is_null()) {
      if (!t->is_number()) return BadType("temperature", "a number", *t);
      if (t->get<double>() < 0 || t->get<double>() > 2) {
        return Invalid(absl::StrFormat("Invalid 'temperature': decimal above maximum value. "
                                       "Expected a value <= 2, but got %s instead.",
                                       t->dump()),
                       "temperature", "decimal_above_max_value");
      }
    }
    ParsedRequest out;
    if (auto mt = body.find("max_output_tokens"); mt != body.end() && !mt->is_null()) {
      if (!mt->is_number_integer()) return BadType("max_output_tokens", "an integer", *mt);
      if (mt->get<int64_t>() < 16) {
        return Invalid(absl::StrFormat("Invalid 'max_output_tokens': integer below minimum "
                                       "value. Expected a value >= 16, but got %d instead.",
                                       mt->get<int64_t>()),
                       "max_output_tokens", "integer_below_min_value");
      }
      out.max_tokens = mt->get<int64_t>();
    }

    std::string counted;  // the text OpenAI bills as input (no per-item framing)
    auto count = [&](const std::string& text) {
      if (text.empty()) return;
      if (!counted.empty()) counted += "\n";
      counted += text;
    };
    if (auto ins = body.find("instructions"); ins != body.end() && !ins->is_null()) {
      if (!ins->is_string()) return BadType("instructions", "a string", *ins);
      count(ins->get<std::string>());
    }

    // previous_response_id: the conversation so far, from this emulator's memory.
    int64_t previous_tokens = 0;
    std::set<std::string> known_calls;  // call_ids a function_call_output may answer
    if (auto prev = body.find("previous_response_id"); prev != body.end() && !prev->is_null()) {
      if (!prev->is_string()) return BadType("previous_response_id", "a string", *prev);
      const std::string id = prev->get<std::string>();
      core_internal::MutexLock lock(&mu_);
      auto found = stored_.find(id);
      if (found == stored_.end()) {
        return Invalid(absl::StrFormat("Previous response with id '%s' not found.", id),
                       "previous_response_id", "previous_response_not_found");
      }
      previous_tokens = found->second.conversation_tokens;
      known_calls.insert(found->second.call_ids.begin(), found->second.call_ids.end());
    }

    // input: a string (one user message) or items.
    std::string last_user_param;
    bool last_is_user = false;
    std::vector<std::string> new_calls;
    if (auto input = body.find("input"); input != body.end() && !input->is_null()) {
      if (input->is_string()) {
        out.last_user = input->get<std::string>();
        last_is_user = true;
        last_user_param = "input";
        count(out.last_user);
        out.echo = out.last_user;
      } else if (input->is_array()) {
        static const char* const kRoles[] = {"user", "assistant", "system", "developer"};
        for (size_t i = 0; i < input->size(); ++i) {
          const json& item = (*input)[i];
          const std::string param = absl::StrFormat("input[%d]", i);
          if (!item.is_object()) return BadType(param, "an object", item);
          const std::string type = item.value("type", item.contains("role") ? "message" : "");
          last_is_user = false;
          if (type == "message") {
            auto role = item.find("role");
            if (role == item.end()) {
              return Invalid(absl::StrFormat("Missing required parameter: '%s.role'.", param),
                             param + ".role", "missing_required_parameter");
            }
            if (!role->is_string() ||
                std::none_of(std::begin(kRoles), std::end(kRoles),
                             [&](const char* r) { return role->get<std::string>() == r; })) {
              return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: "
                                             "'assistant', 'system', 'developer', and 'user'.",
                                             role->is_string() ? role->get<std::string>()
                                                               : role->dump()),
                             param + ".role", "invalid_value");
            }
            auto content = item.find("content");
            if (content == item.end()) {
              return Invalid(absl::StrFormat("Missing required parameter: '%s.content'.", param),
                             param + ".content", "missing_required_parameter");
            }
            if (!content->is_string() && !content->is_array()) {
              return BadType(param + ".content", "one of a string or array of objects",
                             *content);
            }
            if (content->is_array()) {
              for (size_t k = 0; k < content->size(); ++k) {
                const json& part = (*content)[k];
                const std::string pparam = absl::StrFormat("%s.content[%d]", param, k);
                static const std::set<std::string> kParts = {
                    "input_text", "output_text", "refusal", "input_image", "input_file",
                    "input_audio", "summary_text", "reasoning_text"};
                if (!part.is_object() || !part.contains("type") || !part["type"].is_string() ||
                    !kParts.count(part["type"].get<std::string>())) {
                  return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: "
                                                 "'input_text', 'input_image', 'output_text', "
                                                 "'refusal', 'input_file', "
                                                 "'computer_screenshot', and 'summary_text'.",
                                                 part.is_object() ? part.value("type", "")
                                                                  : part.dump()),
                                 pparam + ".type", "invalid_value");
                }
              }
            }
            const std::string text = ContentText(*content);
            count(text);
            if (*role == "user") {
              out.echo = text;
              out.last_user = text;
              last_is_user = true;
              last_user_param = param + ".content";
            }
          } else if (type == "function_call") {
            for (const char* key : {"call_id", "name", "arguments"}) {
              if (!item.contains(key) || !item[key].is_string()) {
                return Invalid(absl::StrFormat("Missing required parameter: '%s.%s'.", param,
                                               key),
                               absl::StrFormat("%s.%s", param, key),
                               "missing_required_parameter");
              }
            }
            known_calls.insert(item["call_id"].get<std::string>());
            count(item["name"].get<std::string>());
            count(item["arguments"].get<std::string>());
          } else if (type == "function_call_output") {
            if (!item.contains("call_id") || !item["call_id"].is_string()) {
              return Invalid(absl::StrFormat("Missing required parameter: '%s.call_id'.", param),
                             param + ".call_id", "missing_required_parameter");
            }
            if (!item.contains("output")) {
              return Invalid(absl::StrFormat("Missing required parameter: '%s.output'.", param),
                             param + ".output", "missing_required_parameter");
            }
            const std::string call_id = item["call_id"];
            if (!known_calls.count(call_id)) {
              return Invalid(absl::StrFormat("No tool call found for function call output "
                                             "with call_id %s.",
                                             call_id),
                             "input", std::nullopt);
            }
            out.echo = ContentText(item["output"]);
            count(out.echo);
          } else if (type == "reasoning" || type == "web_search_call" ||
                     type == "item_reference" || type.find("_call") != std::string::npos) {
            // Items of an earlier answer sent back; nothing the echo depends on.
          } else {
            return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: "
                                           "'message', 'function_call', "
                                           "'function_call_output', 'reasoning', ... .",
                                           type),
                           param + ".type", "invalid_value");
          }
        }
      } else {
        return BadType("input", "one of a string or array of input items", *input);
      }
    }

    // Tools: function tools are the client's; hosted tools (web_search, ...) run "here".
    bool web_search = false;
    if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
      if (!tools->is_array()) return BadType("tools", "an array", *tools);
      for (size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        const std::string param = absl::StrFormat("tools[%d]", i);
        if (!t.is_object() || !t.contains("type") || !t["type"].is_string()) {
          return Invalid(absl::StrFormat("Missing required parameter: '%s.type'.", param),
                         param + ".type", "missing_required_parameter");
        }
        const std::string type = t["type"];
        if (type == "function") {
          if (!t.contains("name") || !t["name"].is_string()) {
            return Invalid(absl::StrFormat("Missing required parameter: '%s.name'.", param),
                           param + ".name", "missing_required_parameter");
          }
          if (t.contains("function")) {  // the Chat Completions shape, a common mistake
            return Invalid(absl::StrFormat("Unknown parameter: '%s.function'.", param),
                           param + ".function", "unknown_parameter");
          }
          out.tool_names.push_back(t["name"]);
          out.tool_schemas.push_back(t.contains("parameters") ? t["parameters"].dump() : "");
          count(t["name"].get<std::string>());
          count(t.value("description", ""));
          if (t.contains("parameters")) count(t["parameters"].dump());
        } else if (IsWebSearch(type)) {
          web_search = true;
        }
      }
    }
    if (auto tc = body.find("tool_choice"); tc != body.end() && !tc->is_null()) {
      if (tc->is_string()) {
        const std::string v = *tc;
        if (v == "none") out.tool_choice = ToolChoice::kNone;
        else if (v == "required") out.tool_choice = ToolChoice::kRequired;
        else if (v == "auto") out.tool_choice = ToolChoice::kAuto;
        else {
          return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: 'none', "
                                         "'auto', and 'required'.",
                                         v),
                         "tool_choice", "invalid_value");
        }
      } else if (tc->is_object() && tc->value("type", "") == "function") {
        if (!tc->contains("name") || !(*tc)["name"].is_string()) {
          return Invalid("Missing required parameter: 'tool_choice.name'.", "tool_choice.name",
                         "missing_required_parameter");
        }
        out.tool_choice = ToolChoice::kNamed;
        out.named_tool = (*tc)["name"];
        if (std::find(out.tool_names.begin(), out.tool_names.end(), out.named_tool) ==
            out.tool_names.end()) {
          return Invalid(absl::StrFormat("Tool choice '%s' not found in 'tools' parameter.",
                                         out.named_tool),
                         "tool_choice", std::nullopt);
        }
      }
    }
    if (out.tool_choice == ToolChoice::kNone) web_search = false;
    if (auto text = body.find("text"); text != body.end() && text->is_object()) {
      if (auto f = text->find("format"); f != text->end() && f->is_object()) {
        const std::string type = f->value("type", "");
        if (type == "json_object") {
          out.format = OutputFormat::kJsonObject;
        } else if (type == "json_schema") {
          if (!f->contains("schema") || !(*f)["schema"].is_object()) {
            return Invalid("Missing required parameter: 'text.format.schema'.",
                           "text.format.schema", "missing_required_parameter");
          }
          out.format = OutputFormat::kJsonSchema;
          out.format_schema = (*f)["schema"].dump();
        }
      }
    }

    // The last input item, when it is the user's: "call" lines and the @emulator directive.
    if (last_is_user) {
      out.directive_param = last_user_param;
      absl::StatusOr<std::optional<std::string>> directive = TakeDirective(&out.last_user);
      absl::Status bad = directive.status();
      if (bad.ok() && directive->has_value()) {
        absl::StatusOr<std::shared_ptr<const Script>> script = ParseScript(**directive);
        if (script.ok()) out.directive = *std::move(script);
        bad = script.status();
      }
      if (!bad.ok()) {
        return Invalid(absl::StrFormat("%s: @emulator directive: %s", out.directive_param,
                                       bad.message()),
                       out.directive_param, "invalid_value");
      }
      out.echo = out.last_user;
    } else {
      out.last_user.clear();
    }

    // OpenAI bills the chained conversation again as input of every response continuing it.
    out.prompt_tokens = ctx.counter.Count(counted) + previous_tokens;
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = HexId("resp_", out.seed);
    out.model = model->get<std::string>();
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.stream = stream;
    out.include_usage = true;  // response.completed always carries usage
    out.extra["request"] = body.dump();
    out.extra["store"] = store ? "1" : "0";
    out.extra["obfuscation"] = obfuscation ? "1" : "0";
    if (web_search) {
      // The query the model "searches": the user's words, as a model would phrase them.
      std::string query = out.last_user.empty() ? out.echo : out.last_user;
      query.erase(0, query.find_first_not_of(" \t\r\n"));
      query.erase(query.find_last_not_of(" \t\r\n") + 1);
      out.extra["web_search_query"] = query.empty() ? "latest news" : query;
    }
    return out;
  }

  // ---- Rendering ------------------------------------------------------------------------

  // What the answer's output items are, with their ids, in order.
  struct Plan {
    bool reasoning = false;  // a reasoning item (summary when there is text)
    bool web_search = false;
    bool message = false;
    std::string rs_id, ws_id, msg_id;
    std::vector<std::string> fc_ids;
  };

  static Plan PlanOutput(const ScriptedReply& r) {
    Plan p;
    p.reasoning = !r.reasoning.empty() || r.reasoning_tokens > 0;
    p.web_search = r.extra.count("web_search_query") > 0;
    p.message = r.refusal.has_value() || !r.text.empty() || r.tool_calls.empty();
    p.rs_id = HexId("rs_", r.seed ^ 0x7273ULL);
    p.ws_id = HexId("ws_", r.seed ^ 0x7773ULL);
    p.msg_id = HexId("msg_", r.seed ^ 0x6D7367ULL);
    for (size_t i = 0; i < r.tool_calls.size(); ++i) {
      p.fc_ids.push_back(HexId("fc_", r.seed + 0x6663ULL + i));
    }
    return p;
  }

  static ojson ReasoningItem(const ScriptedReply& r, const Plan& p, bool done) {
    ojson summary = ojson::array();
    if (done && !r.reasoning.empty()) {
      summary.push_back({{"type", "summary_text"}, {"text", r.reasoning}});
    }
    return ojson{{"id", p.rs_id}, {"type", "reasoning"}, {"summary", std::move(summary)}};
  }

  static ojson WebSearchItem(const ScriptedReply& r, const Plan& p, bool done) {
    ojson item = {{"id", p.ws_id}, {"type", "web_search_call"},
                  {"status", done ? "completed" : "in_progress"}};
    if (done) {
      const std::string query = Extra(r, "web_search_query");
      ojson action = {{"type", "search"}, {"query", query}};
      const json request = json::parse(Extra(r, "request", "{}"), nullptr, false);
      bool sources = false;
      if (request.is_object() && request.contains("include") && request["include"].is_array()) {
        for (const json& v : request["include"]) {
          if (v == "web_search_call.action.sources") sources = true;
        }
      }
      if (sources) {
        action["sources"] = ojson::array(
            {ojson{{"type", "url"},
                   {"url", "https://example.com/search?q=" + MakeId("", 8, r.seed)}}});
      }
      item["action"] = std::move(action);
    }
    return item;
  }

  static ojson TextPart(const std::string& text) {
    return ojson{{"type", "output_text"},
                 {"annotations", ojson::array()},
                 {"logprobs", ojson::array()},
                 {"text", text}};
  }

  static ojson MessagePart(const ScriptedReply& r, bool done) {
    if (r.refusal.has_value()) {
      return ojson{{"type", "refusal"}, {"refusal", done ? *r.refusal : std::string()}};
    }
    return TextPart(done ? r.text : std::string());
  }

  static ojson MessageItem(const ScriptedReply& r, const Plan& p, bool done) {
    ojson content = ojson::array();
    if (done) content.push_back(MessagePart(r, true));
    const bool incomplete = r.finish_reason == "length" || r.finish_reason == "content_filter";
    return ojson{{"id", p.msg_id},
                 {"type", "message"},
                 {"status", !done ? "in_progress" : incomplete ? "incomplete" : "completed"},
                 {"content", std::move(content)},
                 {"role", "assistant"}};
  }

  static ojson CallItem(const ToolCall& c, const std::string& id, bool done) {
    return ojson{{"id", id},
                 {"type", "function_call"},
                 {"status", done ? "completed" : "in_progress"},
                 {"arguments", done ? c.arguments : std::string()},
                 {"call_id", c.id},
                 {"name", c.name}};
  }

  static ojson Output(const ScriptedReply& r, const Plan& p) {
    ojson output = ojson::array();
    if (p.reasoning) output.push_back(ReasoningItem(r, p, true));
    if (p.web_search) output.push_back(WebSearchItem(r, p, true));
    if (p.message) output.push_back(MessageItem(r, p, true));
    for (size_t i = 0; i < r.tool_calls.size(); ++i) {
      output.push_back(CallItem(r.tool_calls[i], p.fc_ids[i], true));
    }
    return output;
  }

  static ojson UsageJson(const ScriptedReply& r) {
    return ojson{{"input_tokens", r.prompt_tokens},
                 {"input_tokens_details", {{"cached_tokens", r.cached_tokens}}},
                 {"output_tokens", r.completion_tokens},
                 {"output_tokens_details", {{"reasoning_tokens", r.reasoning_tokens}}},
                 {"total_tokens", r.prompt_tokens + r.completion_tokens}};
  }

  // "completed", "incomplete" (max_output_tokens, content_filter), "in_progress", "failed".
  static std::string FinalStatus(const ScriptedReply& r) {
    return r.finish_reason == "length" || r.finish_reason == "content_filter" ? "incomplete"
                                                                              : "completed";
  }

  // The response object, with the request's settings echoed as OpenAI echoes them.
  // `whole`: the non-streamed body (it carries `billing`, as recorded).
  static ojson ResponseObject(const ScriptedReply& r, const std::string& status, ojson output,
                              ojson usage, ojson error, bool whole) {
    json q = json::parse(Extra(r, "request", "{}"), nullptr, false);
    if (!q.is_object()) q = json::object();
    auto echo = [&](const char* key, ojson fallback) -> ojson {
      auto it = q.find(key);
      if (it == q.end() || it->is_null()) return fallback;
      return ojson::parse(it->dump());
    };
    const bool done = status != "in_progress";
    ojson o = {{"id", r.id}, {"object", "response"}, {"created_at", r.created},
               {"status", status}, {"background", false}};
    if (whole) o["billing"] = {{"payer", "developer"}};
    o["completed_at"] = status == "completed" ? ojson(r.created) : ojson(nullptr);
    o["error"] = std::move(error);
    o["frequency_penalty"] = 0;
    ojson incomplete = nullptr;
    if (status == "incomplete") {
      incomplete = {{"reason", r.finish_reason == "length" ? "max_output_tokens"
                                                           : "content_filter"}};
    }
    o["incomplete_details"] = std::move(incomplete);
    o["instructions"] = echo("instructions", nullptr);
    o["max_output_tokens"] = echo("max_output_tokens", nullptr);
    o["max_tool_calls"] = echo("max_tool_calls", nullptr);
    o["model"] = r.model;
    o["output"] = std::move(output);
    o["parallel_tool_calls"] = echo("parallel_tool_calls", true);
    o["presence_penalty"] = 0;
    o["previous_response_id"] = echo("previous_response_id", nullptr);
    o["prompt_cache_key"] = echo("prompt_cache_key", nullptr);
    o["prompt_cache_retention"] = echo("prompt_cache_retention", nullptr);
    ojson reasoning = {{"effort", nullptr}, {"summary", nullptr}};
    if (q.contains("reasoning") && q["reasoning"].is_object()) {
      for (const char* k : {"effort", "summary"}) {
        if (q["reasoning"].contains(k)) reasoning[k] = ojson::parse(q["reasoning"][k].dump());
      }
    }
    o["reasoning"] = std::move(reasoning);
    o["safety_identifier"] = echo("safety_identifier", nullptr);
    // Asked "auto", a started stream says so; the finished response names the tier used.
    ojson tier = echo("service_tier", "auto");
    if (done && tier == "auto") tier = "default";
    o["service_tier"] = std::move(tier);
    o["store"] = echo("store", true);
    o["temperature"] = echo("temperature", 1);
    ojson text = {{"format", {{"type", "text"}}}, {"verbosity", "medium"}};
    if (q.contains("text") && q["text"].is_object()) {
      for (const char* k : {"format", "verbosity"}) {
        if (q["text"].contains(k)) text[k] = ojson::parse(q["text"][k].dump());
      }
    }
    o["text"] = std::move(text);
    o["tool_choice"] = echo("tool_choice", "auto");
    ojson tools = ojson::array();
    if (q.contains("tools") && q["tools"].is_array()) {
      for (const json& t : q["tools"]) {
        ojson tool = ojson::parse(t.dump());
        const std::string type = t.value("type", "");
        if (type == "function" && !tool.contains("strict")) tool["strict"] = true;
        if (IsWebSearch(type)) {  // the defaults OpenAI fills in (recorded)
          if (!tool.contains("filters")) tool["filters"] = nullptr;
          if (!tool.contains("search_context_size")) tool["search_context_size"] = "medium";
          if (!tool.contains("user_location")) {
            tool["user_location"] = {{"type", "approximate"}, {"city", nullptr},
                                     {"country", "US"},     {"region", nullptr},
                                     {"timezone", nullptr}};
          }
        }
        tools.push_back(std::move(tool));
      }
    }
    o["tools"] = std::move(tools);
    o["top_logprobs"] = echo("top_logprobs", 0);
    o["top_p"] = echo("top_p", 1);
    o["truncation"] = echo("truncation", "disabled");
    o["usage"] = std::move(usage);
    o["user"] = echo("user", nullptr);
    o["metadata"] = echo("metadata", ojson::object());
    return o;
  }

  // Remembers a finished response for previous_response_id (store: true, the default).
  void Remember(const ScriptedReply& r) const {
    if (Extra(r, "store", "1") != "1") return;
    Stored s;
    s.conversation_tokens = r.prompt_tokens + r.completion_tokens;
    for (const ToolCall& c : r.tool_calls) s.call_ids.push_back(c.id);
    core_internal::MutexLock lock(&mu_);
    if (stored_.count(r.id) == 0) order_.push_back(r.id);
    stored_[r.id] = std::move(s);
    while (order_.size() > kMaxStoredResponses) {
      stored_.erase(order_.front());
      order_.pop_front();
    }
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    Remember(r);
    const Plan p = PlanOutput(r);
    return DumpWhole(
        ResponseObject(r, FinalStatus(r), Output(r, p), UsageJson(r), nullptr, /*whole=*/true));
  }

  // As recorded: response.created, response.in_progress, then per output item
  // output_item.added, its own events (a reasoning summary part and its text deltas; web
  // search progress; a content part with text or refusal deltas; argument deltas) and
  // output_item.done; then response.completed (or response.incomplete). Every event is
  // `event: <type>` + `data:` with `type` and a `sequence_number` from 0.
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    const Plan p = PlanOutput(r);
    const bool obfuscate = Extra(r, "obfuscation", "1") == "1";
    std::vector<std::string> events;
    // The newest recordings write `type` first, then the other members in name order
    // (sequence_number among them).
    auto emit = [&](const std::string& type, ojson fields) {
      fields["sequence_number"] = events.size();
      std::vector<std::string> keys;
      for (auto it = fields.begin(); it != fields.end(); ++it) keys.push_back(it.key());
      std::sort(keys.begin(), keys.end());
      ojson e = {{"type", type}};
      for (const std::string& k : keys) e[k] = std::move(fields[k]);
      events.push_back(absl::StrFormat("event: %s\ndata: %s\n\n", type, Compact(e)));
    };
    auto obfuscation = [&](ojson* e) {
      if (!obfuscate) return;
      // Random-length padding in the real API; here a deterministic 1..15 characters.
      uint64_t s = (r.seed ^ 0x5DEECE66DULL) + events.size() * 7919;
      (*e)["obfuscation"] = MakeId("", 1 + HashBytes(std::to_string(s)) % 15, s);
    };
    emit("response.created",
         {{"response", ResponseObject(r, "in_progress", ojson::array(), nullptr, nullptr, false)}});
    emit("response.in_progress",
         {{"response", ResponseObject(r, "in_progress", ojson::array(), nullptr, nullptr, false)}});
    int output_index = 0;
    if (p.reasoning) {
      emit("response.output_item.added",
           {{"output_index", output_index}, {"item", ReasoningItem(r, p, false)}});
      if (!r.reasoning_pieces.empty()) {
        ojson ids = {{"item_id", p.rs_id}, {"output_index", output_index}, {"summary_index", 0}};
        ojson added = ids;
        added["part"] = {{"type", "summary_text"}, {"text", ""}};
        emit("response.reasoning_summary_part.added", std::move(added));
        for (const std::string& piece : r.reasoning_pieces) {
          ojson d = ids;
          d["delta"] = piece;
          obfuscation(&d);
          emit("response.reasoning_summary_text.delta", std::move(d));
        }
        ojson text_done = ids;
        text_done["text"] = r.reasoning;
        emit("response.reasoning_summary_text.done", std::move(text_done));
        ojson part_done = ids;
        part_done["part"] = {{"type", "summary_text"}, {"text", r.reasoning}};
        emit("response.reasoning_summary_part.done", std::move(part_done));
      }
      emit("response.output_item.done",
           {{"output_index", output_index}, {"item", ReasoningItem(r, p, true)}});
      ++output_index;
    }
    if (p.web_search) {
      emit("response.output_item.added",
           {{"output_index", output_index}, {"item", WebSearchItem(r, p, false)}});
      for (const char* phase : {"in_progress", "searching", "completed"}) {
        emit(absl::StrFormat("response.web_search_call.%s", phase),
             {{"output_index", output_index}, {"item_id", p.ws_id}});
      }
      emit("response.output_item.done",
           {{"output_index", output_index}, {"item", WebSearchItem(r, p, true)}});
      ++output_index;
    }
    if (p.message) {
      emit("response.output_item.added",
           {{"output_index", output_index}, {"item", MessageItem(r, p, false)}});
      ojson ids = {{"item_id", p.msg_id}, {"output_index", output_index}, {"content_index", 0}};
      ojson added = ids;
      added["part"] = MessagePart(r, false);
      emit("response.content_part.added", std::move(added));
      if (r.refusal.has_value()) {
        for (const std::string& piece : r.refusal_pieces) {
          ojson d = ids;
          d["delta"] = piece;
          emit("response.refusal.delta", std::move(d));
        }
        ojson done = ids;
        done["refusal"] = *r.refusal;
        emit("response.refusal.done", std::move(done));
      } else {
        for (const std::string& piece : r.text_pieces) {
          ojson d = ids;
          d["delta"] = piece;
          d["logprobs"] = ojson::array();
          obfuscation(&d);
          emit("response.output_text.delta", std::move(d));
        }
        ojson done = ids;
        done["text"] = r.text;
        done["logprobs"] = ojson::array();
        emit("response.output_text.done", std::move(done));
      }
      ojson part_done = ids;
      part_done["part"] = MessagePart(r, true);
      emit("response.content_part.done", std::move(part_done));
      emit("response.output_item.done",
           {{"output_index", output_index}, {"item", MessageItem(r, p, true)}});
      ++output_index;
    }
    for (size_t i = 0; i < r.tool_calls.size(); ++i) {
      const ToolCall& c = r.tool_calls[i];
      emit("response.output_item.added",
           {{"output_index", output_index}, {"item", CallItem(c, p.fc_ids[i], false)}});
      for (const std::string& frag : SplitFragments(c.arguments, 6)) {
        ojson d = {{"item_id", p.fc_ids[i]}, {"output_index", output_index}, {"delta", frag}};
        obfuscation(&d);
        emit("response.function_call_arguments.delta", std::move(d));
      }
      emit("response.function_call_arguments.done",
           {{"item_id", p.fc_ids[i]}, {"output_index", output_index}, {"arguments", c.arguments}});
      emit("response.output_item.done",
           {{"output_index", output_index}, {"item", CallItem(c, p.fc_ids[i], true)}});
      ++output_index;
    }
    const std::string status = FinalStatus(r);
    emit(status == "completed" ? "response.completed" : "response.incomplete",
         {{"response",
           ResponseObject(r, status, Output(r, p), UsageJson(r), nullptr, /*whole=*/false)}});
    if (r.interrupt.has_value()) {
      // Cut after `after_chunks` events. OpenAI reports a failure inside a started stream as
      // an `error` event, then `response.failed` (recorded: openai-error.1.chunks.txt).
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        ApiError e = OpenAiDefaultError(se.status, r.model);
        if (se.type) e.type = *se.type;
        if (se.message) e.message = *se.message;
        if (se.code) e.code = *se.code;
        if (se.param) e.param = *se.param;
        const std::string code = e.code.value_or(e.type);
        emit("error", {{"error", {{"type", e.type},
                                  {"code", code},
                                  {"message", e.message},
                                  {"param", e.param ? ojson(*e.param) : ojson(nullptr)}}}});
        emit("response.failed",
             {{"response", ResponseObject(r, "failed", ojson::array(), nullptr,
                                          ojson{{"code", code}, {"message", e.message}},
                                          /*whole=*/false)}});
      }
      return events;
    }
    Remember(r);
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson data = ojson::array();
    for (const std::string& m : models) {
      data.push_back({{"id", m}, {"object", "model"}, {"created", 1686935002},
                      {"owned_by", "system"}});
    }
    return DumpWhole(ojson{{"object", "list"}, {"data", std::move(data)}});
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    return OpenAiMakeError(cause, status, req, Model(req));
  }

  std::string RenderError(const ApiError& e) const override {
    return DumpWhole(ojson{{"error", OpenAiErrorJson(e)}});
  }

  Headers ResponseHeaders(uint64_t sequence) const override {
    return {{"openai-version", "2020-10-01"},
            {"openai-organization", "emulator"},
            {"openai-processing-ms", "1"},
            {"x-request-id", MakeId("req_", 32, sequence * 0x9E3779B97F4A7C15ULL + 3)}};
  }

  std::string_view stream_content_type() const override {
    return "text/event-stream; charset=utf-8";
  }

 private:
  struct Stored {
    int64_t conversation_tokens = 0;    // its input and output, billed again when continued
    std::vector<std::string> call_ids;  // its function calls, answerable in the next input
  };
  mutable absl::Mutex mu_;
  mutable std::unordered_map<std::string, Stored> stored_ ABSL_GUARDED_BY(mu_);
  mutable std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // oldest first
};

}  // namespace

std::unique_ptr<ProviderDialect> NewOpenAiResponsesDialect() {
  return std::make_unique<OpenAiResponsesDialect>();
}

}  // namespace modeenvoy::emulator
