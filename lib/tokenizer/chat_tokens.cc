#include "modeenvoy/tokenizer/chat_tokens.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/tokenizer/model.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

std::string_view RoleText(Role role) {
  switch (role) {
    case Role::kSystem:
      return "system";
    case Role::kDeveloper:
      return "developer";
    case Role::kUser:
      return "user";
    case Role::kAssistant:
      return "assistant";
    case Role::kTool:
      return "tool";
    case Role::kFunction:
      return "function";
  }
  return "user";
}

struct Rules {
  int64_t per_message = 3;
  int64_t per_name = 1;
  int64_t func_init = 7;
  int64_t image_base = 85;
  int64_t image_tile = 170;
};

Rules RulesFor(std::string_view model, const Encoding& encoding) {
  Rules r;
  if (model == "gpt-3.5-turbo-0301") {
    r.per_message = 4;
    r.per_name = -1;
  }
  if (encoding.pattern() != SplitPattern::kO200k) r.func_init = 10;
  if (absl::StartsWith(ToAbsl(model), "gpt-4o-mini")) {
    r.image_base = 2833;
    r.image_tile = 5667;
  }
  return r;
}

// Width and height from the first bytes of a PNG, GIF or JPEG image.
std::optional<std::pair<int, int>> ImageSize(std::string_view b) {
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(b[i])); };
  if (b.size() >= 24 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n" && b.substr(12, 4) == "IHDR") {
    const uint32_t w = u8(16) << 24 | u8(17) << 16 | u8(18) << 8 | u8(19);
    const uint32_t h = u8(20) << 24 | u8(21) << 16 | u8(22) << 8 | u8(23);
    return std::make_pair(static_cast<int>(std::min<uint32_t>(w, 1 << 20)),
                          static_cast<int>(std::min<uint32_t>(h, 1 << 20)));
  }
  if (b.size() >= 10 && (b.substr(0, 6) == "GIF87a" || b.substr(0, 6) == "GIF89a")) {
    return std::make_pair(static_cast<int>(u8(6) | u8(7) << 8), static_cast<int>(u8(8) | u8(9) << 8));
  }
  if (b.size() >= 4 && u8(0) == 0xff && u8(1) == 0xd8) {
    size_t i = 2;
    while (i + 9 < b.size()) {
      if (u8(i) != 0xff) return std::nullopt;
      const uint32_t marker = u8(i + 1);
      if (marker == 0xd8 || marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
        i += 2;
        continue;
      }
      const uint32_t len = u8(i + 2) << 8 | u8(i + 3);
      const bool sof = marker >= 0xc0 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 &&
                       marker != 0xcc;
      if (sof) {
        return std::make_pair(static_cast<int>(u8(i + 7) << 8 | u8(i + 8)),
                              static_cast<int>(u8(i + 5) << 8 | u8(i + 6)));
      }
      i += 2 + len;
    }
  }
  return std::nullopt;
}

// OpenAI's vision token formula for one image.
int64_t ImageTokens(const ImageUrl& image, const Rules& rules, const ChatTokenOptions& options) {
  if (image.detail.has_value() && *image.detail == "low") return rules.image_base;
  double w = options.assumed_image_width, h = options.assumed_image_height;
  std::string_view url = image.url;
  if (absl::StartsWith(ToAbsl(url), "data:")) {
    const size_t comma = url.find(',');
    if (comma != std::string_view::npos && url.substr(0, comma).find(";base64") != std::string_view::npos) {
      // The header sits in the first bytes; decode a prefix (a multiple of 4 characters).
      std::string_view b64 = url.substr(comma + 1);
      b64 = b64.substr(0, std::min<size_t>(b64.size(), 64 * 1024) / 4 * 4);
      std::string raw;
      if (absl::Base64Unescape(ToAbsl(b64), &raw)) {
        if (auto size = ImageSize(raw)) {
          w = size->first;
          h = size->second;
        }
      }
    }
  }
  if (w <= 0 || h <= 0) return rules.image_base;
  if (w > 2048 || h > 2048) {
    const double s = 2048.0 / std::max(w, h);
    w *= s;
    h *= s;
  }
  if (std::min(w, h) > 768) {
    const double s = 768.0 / std::min(w, h);
    w *= s;
    h *= s;
  }
  const int64_t tiles = static_cast<int64_t>(std::ceil(w / 512.0) * std::ceil(h / 512.0));
  return rules.image_base + rules.image_tile * tiles;
}

std::string StripFinalPeriod(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string JsonText(const nlohmann::json& j) {
  return j.is_string() ? j.get<std::string>() : (j.is_null() ? std::string() : j.dump());
}

int64_t ToolTokens(const Encoding& enc, const std::vector<Tool>& tools, const Rules& rules) {
  constexpr int64_t kPropInit = 3, kPropKey = 3, kEnumInit = -3, kEnumItem = 3, kFuncEnd = 12;
  int64_t n = 0;
  bool any = false;
  for (const Tool& tool : tools) {
    if (!tool.function.has_value()) {
      // Custom tools: their definition text, as the closest available measure.
      for (const auto& [key, value] : tool.extra) n += static_cast<int64_t>(enc.CountOrdinary(value));
      any = true;
      continue;
    }
    any = true;
    const FunctionDefinition& f = *tool.function;
    n += rules.func_init;
    n += static_cast<int64_t>(
        enc.CountOrdinary(f.name + ":" + StripFinalPeriod(f.description.value_or(""))));
    if (!f.parameters.has_value()) continue;
    const nlohmann::json params = nlohmann::json::parse(*f.parameters, nullptr, false);
    if (params.is_discarded() || !params.is_object()) {
      n += static_cast<int64_t>(enc.CountOrdinary(*f.parameters));
      continue;
    }
    auto props = params.find("properties");
    if (props == params.end() || !props->is_object() || props->empty()) continue;
    n += kPropInit;
    for (auto it = props->begin(); it != props->end(); ++it) {
      n += kPropKey;
      const nlohmann::json& p = it.value();
      std::string type, desc;
      if (p.is_object()) {
        if (auto t = p.find("type"); t != p.end()) type = JsonText(*t);
        if (auto d = p.find("description"); d != p.end()) desc = JsonText(*d);
        if (auto e = p.find("enum"); e != p.end() && e->is_array()) {
          n += kEnumInit;
          for (const nlohmann::json& item : *e) {
            n += kEnumItem + static_cast<int64_t>(enc.CountOrdinary(JsonText(item)));
          }
        }
      }
      n += static_cast<int64_t>(
          enc.CountOrdinary(it.key() + ":" + type + ":" + StripFinalPeriod(desc)));
    }
  }
  if (any) n += kFuncEnd;
  return n;
}

}  // namespace

ChatTokenCount CountChatTokens(const Encoding& enc, const ChatRequest& request,
                               const ChatTokenOptions& options) {
  const std::string& model = options.model.empty() ? request.model : options.model;
  const Rules rules = RulesFor(model, enc);
  ChatTokenCount out;
  auto text = [&](std::string_view s) { return static_cast<int64_t>(enc.CountOrdinary(s)); };
  int64_t n = 0;
  for (const Message& m : request.messages) {
    n += rules.per_message;
    n += text(RoleText(m.role));
    if (m.content.has_value()) {
      if (const auto* s = std::get_if<std::string>(&*m.content)) {
        n += text(*s);
      } else {
        for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
          switch (part.type) {
            case ContentPartType::kText:
              n += text(part.text);
              break;
            case ContentPartType::kRefusal:
              n += text(part.refusal);
              break;
            case ContentPartType::kImageUrl:
              if (part.image_url.has_value()) {
                const int64_t img = ImageTokens(*part.image_url, rules, options);
                out.image_tokens += img;
                n += img;
              }
              out.estimated = true;
              break;
            case ContentPartType::kInputAudio:
            case ContentPartType::kFile:
            case ContentPartType::kOther:
              out.estimated = true;
              break;
          }
        }
      }
    }
    if (m.name.has_value()) n += text(*m.name) + rules.per_name;
    if (m.tool_call_id.has_value()) n += text(*m.tool_call_id);
    if (m.refusal.has_value()) n += text(*m.refusal);
    for (const ToolCall& call : m.tool_calls) {
      if (call.function.has_value()) {
        n += text(call.function->name) + text(call.function->arguments);
      } else {
        for (const auto& [key, value] : call.extra) n += text(value);
      }
    }
  }
  n += 3;  // <|start|>assistant<|message|>
  out.tool_tokens = ToolTokens(enc, request.tools, rules);
  out.prompt_tokens = n + out.tool_tokens;
  return out;
}

absl::StatusOr<ChatTokenCount> CountChatTokens(const ChatRequest& request,
                                               const ChatTokenOptions& options,
                                               const EncodingOptions& encoding_options) {
  const std::string& model = options.model.empty() ? request.model : options.model;
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<const Encoding> enc,
                             EncodingForModel(model, encoding_options));
  return CountChatTokens(*enc, request, options);
}

}  // namespace modeenvoy
