// OpenAI Chat Completions, as the real API puts it on the wire (checked against recorded
// traffic in shared/data/provider-fixtures: vercel-ai openai/chat and kong ai-proxy/openai).
#include <algorithm>
#include <cctype>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "examples/emulator/openai_wire.h"
#include "examples/emulator/provider_dialect.h"
#include "examples/emulator/scripting.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/tokenizer/chat_tokens.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr int64_t kModelCreated = 1686935002;  // `created` of the listed models

// Non-streamed bodies are pretty-printed with non-ASCII escaped (as OpenAI's are); stream
// events are compact UTF-8. Invalid UTF-8 (a raw x-emulator-reply header) is replaced.
std::string DumpWhole(const ojson& j) {
  return j.dump(2, ' ', /*ensure_ascii=*/true, ojson::error_handler_t::replace);
}
std::string DumpEvent(const ojson& j) {
  return "data: " + j.dump(-1, ' ', false, ojson::error_handler_t::replace) + "\n\n";
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

// Text of a message's content: a string, or the text parts of an array.
std::string ContentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const json& part : content) {
    if (!part.is_object()) continue;
    auto text = part.find("text");
    if (text != part.end() && text->is_string()) {
      if (!out.empty()) out += "\n";
      out += text->get<std::string>();
    }
  }
  return out;
}

std::string MaskKey(std::string_view key) {
  if (key.size() <= 5) return "****";
  return absl::StrFormat("%s****%s", key.substr(0, 3), key.substr(key.size() - 2));
}

// As OpenAI reports it: cached_tokens are part of prompt_tokens, reasoning_tokens part of
// completion_tokens.
ojson UsageJson(const ScriptedReply& r) {
  return ojson{{"prompt_tokens", r.prompt_tokens},
               {"completion_tokens", r.completion_tokens},
               {"total_tokens", r.prompt_tokens + r.completion_tokens},
               {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}, {"audio_tokens", 0}}},
               {"completion_tokens_details",
                {{"reasoning_tokens", r.reasoning_tokens},
                 {"audio_tokens", 0},
                 {"accepted_prediction_tokens", 0},
                 {"rejected_prediction_tokens", 0}}}};
}

std::string Extra(const ScriptedReply& r, const std::string& key, std::string fallback = "") {
  auto it = r.extra.find(key);
  return it == r.extra.end() ? fallback : it->second;
}

class OpenAiDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "openai"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && req.path == "/v1/chat/completions") return Route::kGenerate;
    if (req.method == "GET" && req.path == "/v1/models") return Route::kListModels;
    if (req.method == "POST" && req.path == "/v1/embeddings") return Route::kEmbeddings;
    return Route::kNone;
  }

  // POST /v1/embeddings, validated as OpenAI does: unknown arguments, an empty or mixed
  // input, a bad encoding_format or dimensions are 400s naming the parameter; usage counts
  // the inputs' tokens (token-id inputs: their ids).
  std::variant<EmbeddingsAsk, ApiError> ParseEmbeddings(const Request& req,
                                                        const ScriptContext& ctx) const override {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded() || !body.is_object()) {
      return Invalid("We could not parse the JSON body of your request. (HINT: This likely "
                     "means you aren't using your HTTP library correctly. The OpenAI API "
                     "expects a JSON payload, but what was sent was not valid JSON.)",
                     std::nullopt, std::nullopt);
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "model" && key != "input" && key != "encoding_format" && key != "dimensions" &&
          key != "user") {
        return Invalid(absl::StrFormat("Unrecognized request argument supplied: %s", key),
                       std::nullopt, std::nullopt);
      }
    }
    EmbeddingsAsk ask;
    auto model = body.find("model");
    if (model == body.end()) {
      return Invalid("Missing required parameter: 'model'.", "model",
                     "missing_required_parameter");
    }
    if (!model->is_string()) {
      return Invalid(absl::StrFormat("Invalid type for 'model': expected a string, but got %s "
                                     "instead.", TypeName(*model)),
                     "model", "invalid_type");
    }
    ask.model = *model;
    auto input = body.find("input");
    if (input == body.end()) {
      return Invalid("Missing required parameter: 'input'.", "input",
                     "missing_required_parameter");
    }
    const ApiError bad_input = Invalid(
        "'$.input' is invalid. Please check the API reference: "
        "https://platform.openai.com/docs/api-reference.",
        std::nullopt, std::nullopt);
    auto ids_text = [&](const json& ids, std::string* out) {
      if (!ids.is_array() || ids.empty()) return false;
      for (const json& id : ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0) return false;
        if (!out->empty()) out->push_back(' ');
        *out += std::to_string(id.get<int64_t>());
        ++ask.prompt_tokens;
      }
      return true;
    };
    if (input->is_string()) {
      if (input->get<std::string>().empty()) return bad_input;
      ask.texts.push_back(*input);
    } else if (input->is_array() && !input->empty() && input->size() <= 2048) {
      if ((*input)[0].is_number_integer()) {
        if (!ids_text(*input, &ask.texts.emplace_back())) return bad_input;
      } else {
        for (const json& item : *input) {
          if (item.is_string()) {
            if (item.get<std::string>().empty() || !(*input)[0].is_string()) return bad_input;
            ask.texts.push_back(item);
          } else if (!ids_text(item, &ask.texts.emplace_back())) {
            return bad_input;
          }
        }
      }
    } else {
      return bad_input;
    }
    const bool ids = !input->is_string() && !(*input)[0].is_string();
    if (!ids) {
      for (const std::string& t : ask.texts) ask.prompt_tokens += ctx.counter.Count(t);
    }
    if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
      if (!f->is_string() || (*f != "float" && *f != "base64")) {
        return Invalid(absl::StrFormat("Invalid value for 'encoding_format': expected one of "
                                       "'float' or 'base64', but got %s.",
                                       f->dump()),
                       "encoding_format", "invalid_value");
      }
      ask.base64 = *f == "base64";
    }
    // text-embedding-3-large is 3072 wide; -3-small, ada-002 and anything else 1536.
    ask.dimensions = ask.model.find("3-large") != std::string::npos ? 3072 : 1536;
    if (auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
      if (ask.model.find("ada-002") != std::string::npos) {
        return Invalid("This model does not support specifying dimensions.", "dimensions",
                       std::nullopt);
      }
      if (!d->is_number_integer() || d->get<int64_t>() < 1 ||
          d->get<int64_t>() > ask.dimensions) {
        return Invalid(absl::StrFormat("Invalid value for 'dimensions': expected an integer "
                                       "between 1 and %d, but got %s.",
                                       ask.dimensions, d->dump()),
                       "dimensions", "invalid_value");
      }
      ask.dimensions = d->get<int64_t>();
    }
    return ask;
  }

  std::string RenderEmbeddings(const EmbeddingsAsk& ask,
                               const std::vector<std::vector<float>>& vectors) const override {
    std::string out = "{\"object\":\"list\",\"data\":[";
    for (size_t i = 0; i < vectors.size(); ++i) {
      if (i != 0) out += ",";
      out += absl::StrFormat("{\"object\":\"embedding\",\"index\":%d,\"embedding\":", i);
      out += ask.base64 ? "\"" + EncodeEmbeddingBase64(vectors[i]) + "\""
                        : FloatArrayJson(vectors[i]);
      out += "}";
    }
    out += "],\"model\":" + json(ask.model).dump();
    out += absl::StrFormat(",\"usage\":{\"prompt_tokens\":%d,\"total_tokens\":%d}}",
                           ask.prompt_tokens, ask.prompt_tokens);
    return out;
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
    // Required fields and their types, with OpenAI's messages.
    auto model = body.find("model");
    if (model == body.end()) {
      return Invalid("Missing required parameter: 'model'.", "model",
                     "missing_required_parameter");
    }
    if (!model->is_string()) {
      return Invalid(absl::StrFormat("Invalid type for 'model': expected a string, but got %s "
                                     "instead.", TypeName(*model)),
                     "model", "invalid_type");
    }
    auto messages = body.find("messages");
    if (messages == body.end()) {
      return Invalid("Missing required parameter: 'messages'.", "messages",
                     "missing_required_parameter");
    }
    if (!messages->is_array()) {
      return Invalid(absl::StrFormat("Invalid type for 'messages': expected an array of "
                                     "objects, but got %s instead.", TypeName(*messages)),
                     "messages", "invalid_type");
    }
    if (messages->empty()) {
      return Invalid("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                     "but got an empty array instead.",
                     "messages", "empty_array");
    }
    static const char* const kRoles[] = {"system", "developer", "user", "assistant", "tool",
                                         "function"};
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      std::string param = absl::StrFormat("messages[%d]", i);
      if (!m.is_object()) {
        return Invalid(absl::StrFormat("Invalid type for '%s': expected an object, but got %s "
                                       "instead.", param, TypeName(m)),
                       param, "invalid_type");
      }
      auto role = m.find("role");
      if (role == m.end()) {
        return Invalid(absl::StrFormat("Missing required parameter: '%s.role'.", param),
                       param + ".role", "missing_required_parameter");
      }
      if (!role->is_string() ||
          std::none_of(std::begin(kRoles), std::end(kRoles),
                       [&](const char* r) { return role->get<std::string>() == r; })) {
        return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: 'system', "
                                       "'assistant', 'user', 'function', 'tool', and "
                                       "'developer'.",
                                       role->is_string() ? role->get<std::string>() : role->dump()),
                       param + ".role", "invalid_value");
      }
    }
    bool stream = false;
    if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
      if (!s->is_boolean()) {
        return Invalid(absl::StrFormat("Invalid type for 'stream': expected a boolean, but got "
                                       "%s instead.", TypeName(*s)),
                       "stream", "invalid_type");
      }
      stream = s->get<bool>();
    }
    // The project's parser types every field OpenAI types (and keeps the rest), so the
    // reads below meet only the types they expect; the tokenizer's counting rules work on
    // its result.
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(req.body, {.validate = false});
    if (!chat.ok()) {
      return Invalid(std::string(chat.status().message()), ErrorParam(chat.status()),
                     std::nullopt);
    }
    bool include_usage = false, obfuscation = true;
    if (auto so = body.find("stream_options"); so != body.end() && !so->is_null()) {
      if (!stream) {
        return Invalid("The 'stream_options' parameter is only allowed when 'stream' is "
                       "enabled.", "stream_options", std::nullopt);
      }
      if (so->is_object()) {
        include_usage = so->value("include_usage", false);
        obfuscation = so->value("include_obfuscation", true);
      }
    }
    int n = 1;
    if (auto nn = body.find("n"); nn != body.end() && !nn->is_null()) {
      if (!nn->is_number_integer() || nn->get<int64_t>() < 1 || nn->get<int64_t>() > 128) {
        return Invalid(absl::StrFormat("Invalid value for 'n': expected an integer between 1 "
                                       "and 128, got %s.", nn->dump()),
                       "n", "invalid_value");
      }
      n = static_cast<int>(nn->get<int64_t>());
    }

    // Tools and tool_choice.
    std::vector<std::string> tool_names;
    std::vector<std::string> tool_schemas;
    if (auto tools = body.find("tools"); tools != body.end() && tools->is_array()) {
      for (const json& t : *tools) {
        if (!t.is_object() || t.value("type", "function") != "function") continue;
        auto fn = t.find("function");
        if (fn == t.end() || !fn->is_object() || !fn->contains("name") ||
            !(*fn)["name"].is_string()) {
          continue;
        }
        tool_names.push_back((*fn)["name"].get<std::string>());
        auto params = fn->find("parameters");
        tool_schemas.push_back(params != fn->end() ? params->dump() : std::string());
      }
    }
    ToolChoice choice = ToolChoice::kAuto;
    std::string named;
    if (auto tc = body.find("tool_choice"); tc != body.end() && !tc->is_null()) {
      if (tc->is_string()) {
        const std::string& v = tc->get_ref<const std::string&>();
        if (v == "none") choice = ToolChoice::kNone;
        else if (v == "required") choice = ToolChoice::kRequired;
        else if (v == "auto") choice = ToolChoice::kAuto;
        else {
          return Invalid(absl::StrFormat("Invalid value: '%s'. Supported values are: 'none', "
                                         "'auto', and 'required'.", v),
                         "tool_choice", "invalid_value");
        }
      } else if (tc->is_object() && tc->contains("function") && (*tc)["function"].is_object()) {
        choice = ToolChoice::kNamed;
        const json& fn = (*tc)["function"];
        if (auto name = fn.find("name"); name != fn.end() && name->is_string()) {
          named = name->get<std::string>();
        } else {
          return Invalid("Missing required parameter: 'tool_choice.function.name'.",
                         "tool_choice.function.name", "missing_required_parameter");
        }
      }
      if (choice != ToolChoice::kNone && tool_names.empty()) {
        return Invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                       "'tools' are specified.",
                       "tool_choice", std::nullopt);
      }
      if (choice == ToolChoice::kNamed &&
          std::find(tool_names.begin(), tool_names.end(), named) == tool_names.end()) {
        return Invalid(absl::StrFormat("Tool choice '%s' not found in 'tools' parameter.", named),
                       "tool_choice", std::nullopt);
      }
    }

    ParsedRequest out;
    if (ctx.counter.encoding != nullptr) {
      // OpenAI's count: per-message framing, names, tool definitions, reply priming.
      out.prompt_tokens = CountChatTokens(*ctx.counter.encoding, *chat).prompt_tokens;
    } else {
      // Words of every message's text and tool calls, no framing: easy to predict.
      for (const json& m : *messages) {
        out.prompt_tokens += ctx.counter.Count(ContentText(m.value("content", json())));
        if (auto calls = m.find("tool_calls"); calls != m.end() && calls->is_array()) {
          for (const json& c : *calls) {
            if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
              continue;
            }
            // Strings: ParseChatRequest typed them.
            const json& f = c["function"];
            out.prompt_tokens += ctx.counter.Count(f.value("name", "")) +
                                 ctx.counter.Count(f.value("arguments", ""));
          }
        }
      }
    }

    // The last message, when it is the user's: "call" lines and the @emulator directive.
    const size_t last_index = messages->size() - 1;
    const json& last = messages->back();
    if (last["role"] == "user") {
      out.last_user = ContentText(last.value("content", json()));
      out.directive_param = absl::StrFormat("messages[%d].content", last_index);
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
    }
    // The echo source: the last user or tool message (the user's without its directive).
    for (auto it = messages->rbegin(); it != messages->rend(); ++it) {
      std::string role = (*it)["role"].get<std::string>();
      if (role == "user" || role == "tool") {
        out.echo = it == messages->rbegin() && role == "user"
                       ? out.last_user
                       : ContentText(it->value("content", json()));
        break;
      }
    }

    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = MakeId("chatcmpl-", 29, out.seed);
    out.model = model->get<std::string>();
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.system_fingerprint = std::string(ctx.system_fingerprint);
    out.choices = n;
    out.stream = stream;
    out.include_usage = include_usage;
    out.tool_names = std::move(tool_names);
    out.tool_schemas = std::move(tool_schemas);
    out.tool_choice = choice;
    out.named_tool = std::move(named);
    for (const char* key : {"max_completion_tokens", "max_tokens"}) {
      if (auto mt = body.find(key); mt != body.end() && mt->is_number_integer()) {
        out.max_tokens = mt->get<int64_t>();
        break;
      }
    }
    if (auto rf = body.find("response_format"); rf != body.end() && rf->is_object()) {
      auto type_field = rf->find("type");
      std::string type = type_field != rf->end() && type_field->is_string()
                             ? type_field->get<std::string>()
                             : std::string();
      if (type == "json_object") {
        out.format = OutputFormat::kJsonObject;
      } else if (type == "json_schema" && rf->contains("json_schema") &&
                 (*rf)["json_schema"].is_object()) {
        out.format = OutputFormat::kJsonSchema;
        out.format_schema = (*rf)["json_schema"].value("schema", json::object()).dump();
      }
    }
    out.extra["obfuscation"] = obfuscation ? "1" : "0";
    std::string tier = body.value("service_tier", "default");
    if (tier != "flex" && tier != "priority" && tier != "scale") tier = "default";
    out.extra["service_tier"] = tier;
    return out;
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson choices = ojson::array();
    for (int i = 0; i < r.choices; ++i) {
      ojson message = {{"role", "assistant"}};
      message["content"] =
          r.text.empty() && (r.refusal.has_value() || !r.tool_calls.empty()) ? ojson(nullptr)
                                                                              : ojson(r.text);
      if (!r.reasoning.empty()) message["reasoning_content"] = r.reasoning;  // as DeepSeek
      if (!r.tool_calls.empty()) {
        ojson calls = ojson::array();
        for (const ToolCall& c : r.tool_calls) {
          calls.push_back({{"id", c.id},
                           {"type", "function"},
                           {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
        }
        message["tool_calls"] = std::move(calls);
      }
      message["refusal"] = r.refusal.has_value() ? ojson(*r.refusal) : ojson(nullptr);
      message["annotations"] = ojson::array();
      choices.push_back({{"index", i},
                         {"message", std::move(message)},
                         {"logprobs", nullptr},
                         {"finish_reason", r.finish_reason}});
    }
    ojson out = {{"id", r.id},
                 {"object", "chat.completion"},
                 {"created", r.created},
                 {"model", r.model},
                 {"choices", std::move(choices)},
                 {"usage", UsageJson(r)},
                 {"service_tier", Extra(r, "service_tier", "default")},
                 {"system_fingerprint", r.system_fingerprint}};
    return DumpWhole(out);
  }

  // Event order per choice: the role delta; reasoning deltas (DeepSeek's shape:
  // {"content":null,"reasoning_content":...}); content or refusal deltas; tool calls (a head
  // with id and name, then argument fragments); then every choice's finish chunk, the
  // usage chunk when asked for, and [DONE].
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    const bool obfuscate = Extra(r, "obfuscation", "1") == "1";
    const bool reasoning = !r.reasoning_pieces.empty();
    auto chunk = [&](ojson choices, bool usage_chunk = false) {
      ojson c = {{"id", r.id},
                 {"object", "chat.completion.chunk"},
                 {"created", r.created},
                 {"model", r.model},
                 {"service_tier", Extra(r, "service_tier", "default")},
                 {"system_fingerprint", r.system_fingerprint},
                 {"choices", std::move(choices)}};
      if (r.include_usage) c["usage"] = usage_chunk ? UsageJson(r) : ojson(nullptr);
      if (obfuscate) {
        // Random-length padding in the real API; here a deterministic 1..15 characters.
        uint64_t s = (r.seed ^ 0x5DEECE66DULL) + events.size() * 7919;
        c["obfuscation"] = MakeId("", 1 + HashBytes(std::to_string(s)) % 15, s);
      }
      events.push_back(DumpEvent(c));
    };
    auto one = [](int index, ojson delta, ojson finish = nullptr) {
      return ojson::array({ojson{{"index", index},
                                 {"delta", std::move(delta)},
                                 {"logprobs", nullptr},
                                 {"finish_reason", std::move(finish)}}});
    };
    for (int i = 0; i < r.choices; ++i) {
      const bool tools_only = r.text.empty() && !r.tool_calls.empty() && !reasoning;
      if (reasoning) {
        chunk(one(i, {{"role", "assistant"}, {"content", nullptr}, {"reasoning_content", ""}}));
        for (const std::string& piece : r.reasoning_pieces) {
          chunk(one(i, {{"content", nullptr}, {"reasoning_content", piece}}));
        }
      } else if (r.refusal.has_value()) {
        chunk(one(i, {{"role", "assistant"}, {"content", nullptr}, {"refusal", ""}}));
      } else if (!tools_only) {
        chunk(one(i, {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}));
      }
      for (const std::string& piece : r.text_pieces) {
        if (reasoning) {
          chunk(one(i, {{"content", piece}, {"reasoning_content", nullptr}}));
        } else {
          chunk(one(i, {{"content", piece}}));
        }
      }
      for (const std::string& piece : r.refusal_pieces) chunk(one(i, {{"refusal", piece}}));
      for (size_t k = 0; k < r.tool_calls.size(); ++k) {
        const ToolCall& call = r.tool_calls[k];
        ojson head = ojson::array({ojson{{"index", k},
                                         {"id", call.id},
                                         {"type", "function"},
                                         {"function", {{"name", call.name}, {"arguments", ""}}}}});
        if (k == 0 && tools_only) {
          chunk(one(i, {{"role", "assistant"},
                        {"content", nullptr},
                        {"tool_calls", std::move(head)},
                        {"refusal", nullptr}}));
        } else {
          chunk(one(i, {{"tool_calls", std::move(head)}}));
        }
        for (const std::string& frag : SplitFragments(call.arguments, 6)) {
          chunk(one(i, {{"tool_calls", ojson::array({ojson{
                                           {"index", k}, {"function", {{"arguments", frag}}}}})}}));
        }
      }
    }
    for (int i = 0; i < r.choices; ++i) chunk(one(i, ojson::object(), r.finish_reason));
    if (r.include_usage) chunk(ojson::array(), /*usage_chunk=*/true);
    if (r.interrupt.has_value()) {
      // Cut after `after_chunks` events. OpenAI reports a failure inside a started stream
      // as an event holding only an error object, then ends the body without [DONE].
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        ApiError e = OpenAiDefaultError(se.status, r.model);
        if (se.type) e.type = *se.type;
        if (se.message) e.message = *se.message;
        if (se.code) e.code = *se.code;
        if (se.param) e.param = *se.param;
        events.push_back(DumpEvent(ojson{{"error", OpenAiErrorJson(e)}}));
      }
      return events;
    }
    events.push_back("data: [DONE]\n\n");
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson data = ojson::array();
    for (const std::string& m : models) {
      data.push_back(
          {{"id", m}, {"object", "model"}, {"created", kModelCreated}, {"owned_by", "system"}});
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
            {"x-request-id", MakeId("req_", 32, sequence * 0x9E3779B97F4A7C15ULL + 1)}};
  }

  std::string_view stream_content_type() const override {
    return "text/event-stream; charset=utf-8";
  }
};

}  // namespace

// What the Chat Completions and Responses dialects share (openai_wire.h).

std::string OpenAiBearerKey(const Request& req) {
  std::string_view auth = req.Header("authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (auth.size() >= kBearer.size() && std::equal(kBearer.begin(), kBearer.end(), auth.begin(),
                                                  [](char a, char b) {
                                                    return std::tolower(a) == std::tolower(b);
                                                  })) {
    return std::string(auth.substr(kBearer.size()));
  }
  return "";
}

ApiError OpenAiDefaultError(int status, const std::string& model) {
  ApiError e;
  e.status = status;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  switch (status) {
    case 401:
      e.message = "Incorrect API key provided.";
      e.code = "invalid_api_key";
      break;
    case 403:
      e.message = "You are not allowed to access this resource.";
      e.code = "unsupported_country_region_territory";
      break;
    case 404:
      e.message = absl::StrFormat(
          "The model `%s` does not exist or you do not have access to it.", model);
      e.code = "model_not_found";
      break;
    case 429:
      e.type = "requests";
      e.code = "rate_limit_exceeded";
      e.message = absl::StrFormat(
          "Rate limit reached for %s in organization org-emulator on requests per min (RPM): "
          "Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
          "https://platform.openai.com/account/rate-limits to learn more.",
          model);
      break;
    case 500:
      e.message = "The server had an error while processing your request. Sorry about that!";
      break;
    case 503:
      e.message = "The engine is currently overloaded, please try again later";
      break;
    default:
      e.message = absl::StrFormat("Emulated error with HTTP status %d.", status);
      break;
  }
  return e;
}

ApiError OpenAiMakeError(ErrorCause cause, int status, const Request& req,
                         const std::string& model) {
  ApiError e;
  e.status = status;
  e.type = status >= 500 ? "server_error" : "invalid_request_error";
  switch (cause) {
    case ErrorCause::kUnknownRoute:
      e.message = absl::StrFormat("Invalid URL (%s %s)", req.method, req.path);
      return e;
    case ErrorCause::kBodyTooLarge:
      e.message = "Request body too large. Reduce the size of your request and try again.";
      return e;
    case ErrorCause::kBadHttp:
      e.message = "We could not parse your HTTP request.";
      return e;
    case ErrorCause::kUnauthorized:
    case ErrorCause::kInjected:
      break;
  }
  if (status == 401) {
    std::string key = OpenAiBearerKey(req);
    e.code = "invalid_api_key";
    e.message =
        key.empty()
            ? "You didn't provide an API key. You need to provide your API key in an "
              "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            : absl::StrFormat("Incorrect API key provided: %s. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.",
                              MaskKey(key));
    if (key.empty()) e.code = std::nullopt;
    return e;
  }
  return OpenAiDefaultError(status, model.empty() ? "gpt-4o-mini" : model);
}

ojson OpenAiErrorJson(const ApiError& e) {
  return ojson{{"message", e.message},
               {"type", e.type},
               {"param", e.param ? ojson(*e.param) : ojson(nullptr)},
               {"code", e.code ? ojson(*e.code) : ojson(nullptr)}};
}

std::unique_ptr<ProviderDialect> NewOpenAiDialect() { return std::make_unique<OpenAiDialect>(); }

}  // namespace modeenvoy::emulator
