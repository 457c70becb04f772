// The Anthropic Messages API (POST /v1/messages), as the real API puts it on the wire:
// shapes taken from the recordings in shared/data/provider-fixtures (vercel-ai anthropic,
// kong ai-proxy/anthropic). Written on its own, not with lib/protocol's anthropic
// translator, so that gateway tests through it are not circular.
#include <algorithm>
#include <set>
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

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

std::string Event(std::string_view type, const ojson& data) {
  return absl::StrFormat("event: %s\ndata: %s\n\n", type, Dump(data));
}

ApiError Invalid(std::string message) {
  return ApiError{400, "invalid_request_error", std::move(message), std::nullopt, std::nullopt, {}};
}

// Text of a content value: a string, or the text blocks of an array (tool_result blocks
// contribute their own content's text).
std::string ContentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const json& block : content) {
    if (!block.is_object()) continue;
    std::string piece;
    if (block.value("type", "") == "text" && block.contains("text") && block["text"].is_string()) {
      piece = block["text"].get<std::string>();
    } else if (block.value("type", "") == "tool_result" && block.contains("content")) {
      piece = ContentText(block["content"]);
    }
    if (piece.empty()) continue;
    if (!out.empty()) out += "\n";
    out += piece;
  }
  return out;
}

std::string_view StopReason(const ScriptedReply& r) {
  if (r.refusal.has_value()) return "refusal";  // Anthropic's refusals end the turn this way
  const std::string& finish_reason = r.finish_reason;
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

class AnthropicDialect final : public ProviderDialect {
 public:
  std::string_view name() const override { return "anthropic"; }

  Route Match(const Request& req) const override {
    if (req.method == "POST" && req.path == "/v1/messages") return Route::kGenerate;
    return Route::kNone;  // GET /v1/models is the OpenAI dialect's (same path)
  }

  // x-api-key, as the API documents it; the official Python SDK (2.x) sends the key as
  // `Authorization: Bearer` instead, which the API accepts too.
  std::string ApiKey(const Request& req) const override {
    if (req.HasHeader("x-api-key")) return std::string(req.Header("x-api-key"));
    std::string_view auth = req.Header("authorization");
    constexpr std::string_view kBearer = "Bearer ";
    if (auth.substr(0, kBearer.size()) == kBearer) return std::string(auth.substr(kBearer.size()));
    return "";
  }

  std::string Model(const Request& req) const override {
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_object()) {
      if (auto m = body.find("model"); m != body.end() && m->is_string()) return *m;
    }
    return "";
  }

  std::string ToolCallId(uint64_t seed) const override { return MakeId("toolu_01", 22, seed); }

  std::variant<ParsedRequest, ApiError> Parse(const Request& req,
                                              const ScriptContext& ctx) const override {
    if (!req.HasHeader("anthropic-version")) {
      return Invalid("anthropic-version: header is required");
    }
    json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) {
      return Invalid("There was an error parsing the body of your request. Please check that "
                     "it is valid JSON.");
    }
    if (!body.is_object()) return Invalid("Input should be an object");

    static const std::set<std::string> kKnown = {
        "model",          "messages",      "max_tokens",  "system",     "metadata",
        "stop_sequences", "stream",        "temperature", "top_p",      "top_k",
        "tools",          "tool_choice",   "thinking",    "service_tier", "output_config",
        "container",      "context_management", "mcp_servers"};
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (!kKnown.count(it.key())) {
        return Invalid(absl::StrFormat("%s: Extra inputs are not permitted", it.key()));
      }
    }
    auto require = [&](const char* key) -> const json* {
      auto it = body.find(key);
      return it == body.end() ? nullptr : &*it;
    };
    const json* model = require("model");
    if (model == nullptr) return Invalid("model: Field required");
    if (!model->is_string()) return Invalid("model: Input should be a valid string");
    const json* max_tokens = require("max_tokens");
    if (max_tokens == nullptr) return Invalid("max_tokens: Field required");
    if (!max_tokens->is_number_integer()) {
      return Invalid("max_tokens: Input should be a valid integer");
    }
    if (max_tokens->get<int64_t>() < 1) {
      return Invalid("max_tokens: Input should be greater than or equal to 1");
    }
    const json* messages = require("messages");
    if (messages == nullptr) return Invalid("messages: Field required");
    if (!messages->is_array()) return Invalid("messages: Input should be a valid list");
    if (messages->empty()) return Invalid("messages: at least one message is required");

    bool stream = false;
    if (const json* s = require("stream")) {
      if (!s->is_boolean()) return Invalid("stream: Input should be a valid boolean");
      stream = s->get<bool>();
    }
    if (const json* t = require("temperature")) {
      if (!t->is_number()) return Invalid("temperature: Input should be a valid number");
      if (t->get<double>() < 0 || t->get<double>() > 1) {
        return Invalid("temperature: Input should be less than or equal to 1");
      }
    }
    if (const json* t = require("top_p")) {
      if (!t->is_number() || t->get<double>() < 0 || t->get<double>() > 1) {
        return Invalid("top_p: Input should be a number between 0 and 1");
      }
    }
    if (const json* t = require("top_k")) {
      if (!t->is_number_integer() || t->get<int64_t>() < 0) {
        return Invalid("top_k: Input should be a valid integer");
      }
    }
    if (const json* s = require("stop_sequences")) {
      if (!s->is_array()) return Invalid("stop_sequences: Input should be a valid list");
      for (size_t i = 0; i < s->size(); ++i) {
        if (!(*s)[i].is_string()) {
          return Invalid(absl::StrFormat("stop_sequences.%d: Input should be a valid string", i));
        }
      }
    }
    if (const json* m = require("metadata")) {
      if (!m->is_object()) return Invalid("metadata: Input should be a valid dictionary");
      for (auto it = m->begin(); it != m->end(); ++it) {
        if (it.key() != "user_id") {
          return Invalid(absl::StrFormat("metadata.%s: Extra inputs are not permitted", it.key()));
        }
      }
    }

    ParsedRequest out;
    // system
    std::string counted;  // the prompt text Anthropic bills as input tokens
    auto count = [&](const std::string& text) {
      if (text.empty()) return;
      if (!counted.empty()) counted += "\n";
      counted += text;
    };
    if (const json* system = require("system")) {
      if (system->is_string()) {
        count(system->get<std::string>());
      } else if (system->is_array()) {
        for (size_t i = 0; i < system->size(); ++i) {
          const json& b = (*system)[i];
          if (!b.is_object() || b.value("type", "") != "text" || !b.contains("text") ||
              !b["text"].is_string()) {
            return Invalid(absl::StrFormat("system.%d: Input should be a text block", i));
          }
          count(b["text"].get<std::string>());
        }
      } else {
        return Invalid("system: Input should be a valid string or a list of text blocks");
      }
    }

    // tools
    std::set<std::string> tool_name_set;
    if (const json* tools = require("tools")) {
      if (!tools->is_array()) return Invalid("tools: Input should be a valid list");
      for (size_t i = 0; i < tools->size(); ++i) {
        const json& t = (*tools)[i];
        if (!t.is_object()) return Invalid(absl::StrFormat("tools.%d: Input should be an object", i));
        const std::string type = t.value("type", "custom");
        if (!t.contains("name") || !t["name"].is_string() || t["name"].get<std::string>().empty()) {
          return Invalid(absl::StrFormat("tools.%d.name: Field required", i));
        }
        const std::string name = t["name"];
        if (!tool_name_set.insert(name).second) {
          return Invalid(absl::StrFormat("tools: Tool names must be unique. Duplicate: %s", name));
        }
        if (type == "custom") {
          if (!t.contains("input_schema")) {
            return Invalid(absl::StrFormat("tools.%d.custom.input_schema: Field required", i));
          }
          if (!t["input_schema"].is_object() ||
              t["input_schema"].value("type", "") != "object") {
            return Invalid(absl::StrFormat(
                "tools.%d.custom.input_schema.type: Input should be 'object'", i));
          }
          for (auto it = t.begin(); it != t.end(); ++it) {
            static const std::set<std::string> kToolKeys = {
                "type", "name", "description", "input_schema", "cache_control", "strict"};
            if (!kToolKeys.count(it.key())) {
              return Invalid(absl::StrFormat("tools.%d.custom.%s: Extra inputs are not permitted",
                                             i, it.key()));
            }
          }
          out.tool_names.push_back(name);
          out.tool_schemas.push_back(t["input_schema"].dump());
          count(name);
          count(t.value("description", ""));
          count(t["input_schema"].dump());
        }
        // Server tools (web_search_..., code_execution_...) are accepted; the emulator never
        // runs them.
      }
    }
    if (const json* choice = require("tool_choice")) {
      if (!choice->is_object() || !choice->contains("type")) {
        return Invalid("tool_choice: Input should be an object with a type");
      }
      const std::string type = choice->value("type", "");
      if (type == "auto") {
        out.tool_choice = ToolChoice::kAuto;
      } else if (type == "any") {
        out.tool_choice = ToolChoice::kRequired;
      } else if (type == "none") {
        out.tool_choice = ToolChoice::kNone;
      } else if (type == "tool") {
        out.tool_choice = ToolChoice::kNamed;
        out.named_tool = choice->value("name", "");
        if (!tool_name_set.count(out.named_tool)) {
          return Invalid(absl::StrFormat("tool_choice.tool.name: Tool '%s' not found in tools",
                                         out.named_tool));
        }
      } else {
        return Invalid(absl::StrFormat(
            "tool_choice: Input tag '%s' found using 'type' does not match any of the expected "
            "tags: 'auto', 'any', 'tool', 'none'",
            type));
      }
      if (type != "auto" && type != "none" && tool_name_set.empty()) {
        return Invalid("tool_choice: tools must be provided when tool_choice is any or tool");
      }
    }
    if (const json* thinking = require("thinking")) {
      const std::string type = thinking->is_object() ? thinking->value("type", "") : "";
      if (type == "enabled") {
        if (!(*thinking).contains("budget_tokens") ||
            !(*thinking)["budget_tokens"].is_number_integer()) {
          return Invalid("thinking.enabled.budget_tokens: Field required");
        }
        int64_t budget = (*thinking)["budget_tokens"];
        if (budget < 1024) {
          return Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal "
                         "to 1024");
        }
        if (budget >= max_tokens->get<int64_t>()) {
          return Invalid("`max_tokens` must be greater than `thinking.budget_tokens`.");
        }
      } else if (type != "disabled" && type != "adaptive") {
        return Invalid("thinking: Input tag found using 'type' does not match any of the expected "
                       "tags: 'enabled', 'disabled', 'adaptive'");
      }
    }
    if (const json* oc = require("output_config")) {
      if (!oc->is_object()) return Invalid("output_config: Input should be an object");
      if (oc->contains("format")) {
        const json& f = (*oc)["format"];
        if (!f.is_object() || f.value("type", "") != "json_schema" || !f.contains("schema") ||
            !f["schema"].is_object()) {
          return Invalid("output_config.format: Input should be {\"type\": \"json_schema\", "
                         "\"schema\": {...}}");
        }
        out.format = OutputFormat::kJsonSchema;
        out.format_schema = f["schema"].dump();
      }
    }

    // messages
    std::vector<std::string> pending_tool_uses;  // ids the next user turn must answer
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      if (!m.is_object()) return Invalid(absl::StrFormat("messages.%d: Input should be an object", i));
      for (auto it = m.begin(); it != m.end(); ++it) {
        if (it.key() != "role" && it.key() != "content") {
          return Invalid(absl::StrFormat("messages.%d.%s: Extra inputs are not permitted", i,
                                         it.key()));
        }
      }
      const std::string role = m.value("role", "");
      if (role != "user" && role != "assistant") {
        return Invalid(absl::StrFormat(
            "messages.%d.role: Input should be 'user' or 'assistant'", i));
      }
      if (!m.contains("content")) {
        return Invalid(absl::StrFormat("messages.%d.content: Field required", i));
      }
      const json& content = m["content"];
      std::vector<std::string> answered;
      if (content.is_string()) {
        if (content.get<std::string>().empty() && !(role == "assistant" && i + 1 == messages->size())) {
          return Invalid(absl::StrFormat(
              "messages.%d: text content blocks must be non-empty", i));
        }
        count(content.get<std::string>());
      } else if (content.is_array()) {
        if (content.empty() && !(role == "assistant" && i + 1 == messages->size())) {
          return Invalid(absl::StrFormat(
              "messages.%d: all messages must have non-empty content except for the optional "
              "final assistant message",
              i));
        }
        for (size_t k = 0; k < content.size(); ++k) {
          const json& b = content[k];
          const std::string path = absl::StrFormat("messages.%d.content.%d", i, k);
          if (!b.is_object() || !b.contains("type") || !b["type"].is_string()) {
            return Invalid(path + ": Input should be a content block with a type");
          }
          const std::string type = b["type"];
          if (type == "text") {
            if (!b.contains("text") || !b["text"].is_string()) {
              return Invalid(path + ".text.text: Field required");
            }
            if (b["text"].get<std::string>().empty()) {
              return Invalid(path + ": text content blocks must be non-empty");
            }
            count(b["text"].get<std::string>());
          } else if (type == "image" || type == "document") {
            if (role != "user") return Invalid(path + ": " + type + " blocks are user content");
            const json& src = b.value("source", json());
            const std::string st = src.is_object() ? src.value("type", "") : "";
            if (st == "base64") {
              static const std::set<std::string> kImageTypes = {"image/jpeg", "image/png",
                                                                "image/gif", "image/webp"};
              std::string media = src.value("media_type", "");
              if (type == "image" && !kImageTypes.count(media)) {
                return Invalid(path + ".image.source.base64.media_type: Input should be "
                                      "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'");
              }
              if (!src.contains("data") || !src["data"].is_string()) {
                return Invalid(path + ".source.base64.data: Field required");
              }
            } else if (st == "url") {
              if (!src.contains("url") || !src["url"].is_string()) {
                return Invalid(path + ".source.url.url: Field required");
              }
            } else if (!(type == "document" && (st == "file" || st == "text"))) {
              return Invalid(path + ".source: Input tag does not match any of the expected "
                                    "tags: 'base64', 'url'");
            }
            count("image");  // a fixed small cost per image
          } else if (type == "tool_use") {
            if (role != "assistant") return Invalid(path + ": tool_use blocks are assistant content");
            if (!b.contains("id") || !b["id"].is_string() || !b.contains("name") ||
                !b["name"].is_string() || !b.contains("input") || !b["input"].is_object()) {
              return Invalid(path + ".tool_use: id, name and an object input are required");
            }
            pending_tool_uses.push_back(b["id"]);
            count(b["name"].get<std::string>());
            count(b["input"].dump());
          } else if (type == "tool_result") {
            if (role != "user") return Invalid(path + ": tool_result blocks are user content");
            if (!b.contains("tool_use_id") || !b["tool_use_id"].is_string()) {
              return Invalid(path + ".tool_result.tool_use_id: Field required");
            }
            answered.push_back(b["tool_use_id"]);
            if (b.contains("content")) count(ContentText(b["content"]));
          } else if (type == "thinking" || type == "redacted_thinking") {
            if (role != "assistant") return Invalid(path + ": thinking blocks are assistant content");
            if (type == "thinking" && (!b.contains("signature") || !b["signature"].is_string())) {
              return Invalid(path + ".thinking.signature: Field required");
            }
          } else if (type == "server_tool_use" || type.find("_tool_result") != std::string::npos) {
            // Sent back from an earlier answer; nothing to check.
          } else {
            return Invalid(absl::StrFormat(
                "%s.type: Input tag '%s' found using 'type' does not match any of the expected "
                "tags",
                path, type));
          }
        }
      } else {
        return Invalid(absl::StrFormat("messages.%d.content: Input should be a valid string or list", i));
      }
      // Each tool_use must be answered by a tool_result in the very next (user) message.
      if (role == "user" && !pending_tool_uses.empty()) {
        for (const std::string& id : pending_tool_uses) {
          if (std::find(answered.begin(), answered.end(), id) == answered.end()) {
            return Invalid(absl::StrFormat(
                "messages.%d: `tool_use` ids were found without `tool_result` blocks "
                "immediately after: %s. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message.",
                i - 1, id));
          }
        }
        pending_tool_uses.clear();
      } else if (role == "user" && !answered.empty()) {
        return Invalid(absl::StrFormat(
            "messages.%d.content: unexpected `tool_use_id` found in `tool_result` blocks: %s. "
            "Each `tool_result` block must have a corresponding `tool_use` block in the "
            "previous message.",
            i, answered.front()));
      }
    }

    // The last message, when it is the user's: "call" lines and the @emulator directive.
    const size_t last_index = messages->size() - 1;
    const json& last = messages->back();
    if (last["role"] == "user") {
      out.last_user = ContentText(last["content"]);
      out.directive_param = absl::StrFormat("messages.%d.content", last_index);
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
    } else {
      for (auto it = messages->rbegin(); it != messages->rend(); ++it) {
        if ((*it)["role"] == "user") {
          out.echo = ContentText((*it)["content"]);
          break;
        }
      }
    }

    // Anthropic bills every token of the prompt (system, messages, tool definitions); it
    // publishes no per-message framing, so none is added.
    out.prompt_tokens = ctx.counter.Count(counted);
    out.seed = HashBytes(req.body, ctx.sequence);
    out.id = MakeId("msg_01", 22, out.seed);
    out.model = model->get<std::string>();
    out.created = absl::ToUnixSeconds(ctx.clock.Now());
    out.choices = 1;
    out.stream = stream;
    out.include_usage = false;  // Anthropic always reports usage
    out.max_tokens = max_tokens->get<int64_t>();
    return out;
  }

  // Anthropic splits the prompt into uncached input, cache reads and cache writes.
  static ojson UsageJson(const ScriptedReply& r, bool with_details) {
    ojson u = {{"input_tokens", r.prompt_tokens - r.cached_tokens},
               {"cache_creation_input_tokens", 0},
               {"cache_read_input_tokens", r.cached_tokens}};
    if (with_details) {
      u["cache_creation"] = {{"ephemeral_5m_input_tokens", 0}, {"ephemeral_1h_input_tokens", 0}};
    }
    u["output_tokens"] = r.completion_tokens;
    // Newer models report their thinking apart (recorded: anthropic-claude-opus-5-*).
    if (r.reasoning_tokens > 0) u["output_tokens_details"] = {{"thinking_tokens", r.reasoning_tokens}};
    if (with_details) u["service_tier"] = "standard";
    return u;
  }

  static std::string Signature(const ScriptedReply& r) {
    return MakeId("Eq", 64, r.seed ^ 0x7369676EULL);
  }

  std::string RenderWhole(const ScriptedReply& r) const override {
    ojson content = ojson::array();
    if (!r.reasoning.empty()) {
      content.push_back({{"type", "thinking"}, {"thinking", r.reasoning}, {"signature", Signature(r)}});
    }
    if (!r.text.empty()) content.push_back({{"type", "text"}, {"text", r.text}});
    if (r.refusal.has_value() && !r.refusal->empty()) {
      content.push_back({{"type", "text"}, {"text", *r.refusal}});
    }
    for (const ToolCall& c : r.tool_calls) {
      content.push_back({{"type", "tool_use"},
                         {"id", c.id},
                         {"name", c.name},
                         {"input", ojson::parse(c.arguments)}});
    }
    ojson out = {{"model", r.model},
                 {"id", r.id},
                 {"type", "message"},
                 {"role", "assistant"},
                 {"content", std::move(content)},
                 {"stop_reason", StopReason(r)},
                 {"stop_sequence", nullptr},
                 {"usage", UsageJson(r, true)}};
    return Dump(out);
  }

  // As recorded: message_start (usage with output_tokens 1), then per block
  // content_block_start / deltas / content_block_stop (a ping after the first start),
  // thinking before text before tool_use blocks, then message_delta (stop_reason, usage)
  // and message_stop.
  std::vector<std::string> RenderStream(const ScriptedReply& r) const override {
    std::vector<std::string> events;
    ScriptedReply start = r;
    start.completion_tokens = 1;
    events.push_back(Event(
        "message_start",
        ojson{{"type", "message_start"},
              {"message",
               {{"model", r.model},
                {"id", r.id},
                {"type", "message"},
                {"role", "assistant"},
                {"content", ojson::array()},
                {"stop_reason", nullptr},
                {"stop_sequence", nullptr},
                {"usage", UsageJson(start, true)}}}}));
    int index = 0;
    bool pinged = false;
    auto block_start = [&](ojson block) {
      events.push_back(Event("content_block_start", ojson{{"type", "content_block_start"},
                                                          {"index", index},
                                                          {"content_block", std::move(block)}}));
      if (!pinged) {
        events.push_back(Event("ping", ojson{{"type", "ping"}}));
        pinged = true;
      }
    };
    auto delta = [&](ojson d) {
      events.push_back(Event("content_block_delta", ojson{{"type", "content_block_delta"},
                                                          {"index", index},
                                                          {"delta", std::move(d)}}));
    };
    auto block_stop = [&]() {
      events.push_back(
          Event("content_block_stop", ojson{{"type", "content_block_stop"}, {"index", index}}));
      ++index;
    };
    if (!r.reasoning_pieces.empty()) {
      block_start({{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
      for (const std::string& piece : r.reasoning_pieces) {
        delta({{"type", "thinking_delta"}, {"thinking", piece}});
      }
      delta({{"type", "signature_delta"}, {"signature", Signature(r)}});
      block_stop();
    }
    const std::vector<std::string>& pieces =
        r.refusal.has_value() ? r.refusal_pieces : r.text_pieces;
    if (!pieces.empty()) {
      block_start({{"type", "text"}, {"text", ""}});
      for (const std::string& piece : pieces) delta({{"type", "text_delta"}, {"text", piece}});
      block_stop();
    }
    for (const ToolCall& c : r.tool_calls) {
      block_start({{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", ojson::object()}});
      delta({{"type", "input_json_delta"}, {"partial_json", ""}});
      for (const std::string& frag : SplitFragments(c.arguments, 8)) {
        delta({{"type", "input_json_delta"}, {"partial_json", frag}});
      }
      block_stop();
    }
    ojson usage = UsageJson(r, false);
    events.push_back(Event("message_delta",
                           ojson{{"type", "message_delta"},
                                 {"delta", {{"stop_reason", StopReason(r)},
                                            {"stop_sequence", nullptr}}},
                                 {"usage", std::move(usage)}}));
    events.push_back(Event("message_stop", ojson{{"type", "message_stop"}}));
    if (r.interrupt.has_value()) {
      // Cut after `after_chunks` events; Anthropic reports a failure inside a started stream
      // as an `error` event, then ends the body.
      events.resize(std::min(events.size(), static_cast<size_t>(r.interrupt->after_chunks)));
      if (!r.interrupt->reset) {
        const ScriptedError& se = r.interrupt->error;
        ApiError e = DefaultError(se.status);
        if (se.type) e.type = *se.type;
        if (se.message) e.message = *se.message;
        events.push_back(Event("error", ojson{{"type", "error"},
                                              {"error", {{"type", e.type}, {"message", e.message}}}}));
      }
    }
    return events;
  }

  std::string RenderModels(const std::vector<std::string>& models) const override {
    ojson data = ojson::array();
    for (const std::string& m : models) {
      data.push_back({{"type", "model"},
                      {"id", m},
                      {"display_name", m},
                      {"created_at", "2025-01-01T00:00:00Z"}});
    }
    return Dump(ojson{{"data", data},
                      {"has_more", false},
                      {"first_id", models.empty() ? ojson(nullptr) : ojson(models.front())},
                      {"last_id", models.empty() ? ojson(nullptr) : ojson(models.back())}});
  }

  ApiError MakeError(ErrorCause cause, int status, const Request& req) const override {
    ApiError e = DefaultError(status);
    switch (cause) {
      case ErrorCause::kUnknownRoute:
        e.type = "not_found_error";
        e.message = "Not Found";
        break;
      case ErrorCause::kBodyTooLarge:
        e.type = "request_too_large";
        e.message = "Request exceeds the maximum allowed number of bytes.";
        break;
      case ErrorCause::kBadHttp:
        e.message = "Could not parse the HTTP request.";
        break;
      case ErrorCause::kUnauthorized:
        e.message = ApiKey(req).empty() ? "x-api-key header is required" : "invalid x-api-key";
        break;
      case ErrorCause::kInjected:
        break;
    }
    return e;
  }

  // Anthropic's error type and message for an HTTP status.
  static ApiError DefaultError(int status) {
    ApiError e;
    e.status = status;
    switch (status) {
      case 400: e.type = "invalid_request_error"; e.message = "Invalid request"; break;
      case 401: e.type = "authentication_error"; e.message = "invalid x-api-key"; break;
      case 402: e.type = "billing_error"; e.message = "Your credit balance is too low."; break;
      case 403:
        e.type = "permission_error";
        e.message = "Your API key does not have permission to use the specified resource.";
        break;
      case 404: e.type = "not_found_error"; e.message = "Not Found"; break;
      case 413:
        e.type = "request_too_large";
        e.message = "Request exceeds the maximum allowed number of bytes.";
        break;
      case 429:
        e.type = "rate_limit_error";
        e.message = "This request would exceed the rate limit for your organization of 50 "
                    "requests per minute. Please try again later.";
        break;
      case 500: e.type = "api_error"; e.message = "Internal server error"; break;
      case 504: e.type = "timeout_error"; e.message = "Request timed out"; break;
      case 529: e.type = "overloaded_error"; e.message = "Overloaded"; break;
      default:
        e.type = status >= 500 ? "api_error" : "invalid_request_error";
        e.message = absl::StrFormat("Emulated error with HTTP status %d.", status);
        break;
    }
    return e;
  }

  std::string RenderError(const ApiError& e) const override {
    ojson error = {{"type", e.type}, {"message", e.message}};
    return Dump(ojson{{"type", "error"}, {"error", std::move(error)},
                      {"request_id", MakeId("req_011", 21, std::hash<std::string>{}(e.message))}});
  }

  Headers ResponseHeaders(uint64_t sequence) const override {
    return {{"request-id", MakeId("req_011", 21, sequence * 0x9E3779B97F4A7C15ULL + 7)},
            {"anthropic-organization-id", "00000000-0000-0000-0000-000000000000"}};
  }

  std::string_view stream_content_type() const override { return "text/event-stream; charset=utf-8"; }
};

}  // namespace

std::unique_ptr<ProviderDialect> NewAnthropicDialect() {
  return std::make_unique<AnthropicDialect>();
}

}  // namespace modeenvoy::emulator
