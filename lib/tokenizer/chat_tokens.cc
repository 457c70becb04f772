#include "modeenvoy/tokenizer/chat_tokens.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
  // Images, "tiles" models: base + tile per 512 px square after the 2048/768 resize.
  int64_t image_base = 85;
  int64_t image_tile = 170;
  // Images, "patches" models (patch_multiplier > 0): 32 px patches, at most 1536, times
  // this; detail "low" changes nothing.
  double patch_multiplier = 0;
};

// The model a counting rule is keyed on: "openai/gpt-4o-mini" and
// "ft:gpt-4o-mini-2024-07-18:org::id" count as gpt-4o-mini does.
std::string_view BaseModel(std::string_view model) {
  if (const size_t slash = model.rfind('/'); slash != std::string_view::npos) {
    model.remove_prefix(slash + 1);
  }
  if (absl::StartsWith(ToAbsl(model), "ft:")) {
    model.remove_prefix(3);
    model = model.substr(0, model.find(':'));
  }
  return model;
}

Rules RulesFor(std::string_view model, const Encoding& encoding) {
  Rules r;
  const std::string_view base = BaseModel(model);
  auto starts = [&](std::string_view prefix) { return absl::StartsWith(ToAbsl(base), ToAbsl(prefix)); };
  if (base == "gpt-3.5-turbo-0301" || base == "gpt-35-turbo-0301") {
    r.per_message = 4;
    r.per_name = -1;
  }
  if (encoding.pattern() != SplitPattern::kO200k) r.func_init = 10;
  // OpenAI's vision guide ("Calculating costs"): gpt-4o-mini bills tiles at 2833 + 5667;
  // gpt-4.1-mini, gpt-4.1-nano and o4-mini bill 32 px patches times 1.62, 2.46, 1.72.
  if (starts("gpt-4o-mini")) {
    r.image_base = 2833;
    r.image_tile = 5667;
  } else if (starts("gpt-4.1-mini")) {
    r.patch_multiplier = 1.62;
  } else if (starts("gpt-4.1-nano")) {
    r.patch_multiplier = 2.46;
  } else if (starts("o4-mini")) {
    r.patch_multiplier = 1.72;
  }
  return r;
}

// Width and height of a PNG, GIF, WebP or JPEG image from its header (a JPEG's size may
// follow metadata of any length, so that one needs the whole image).
std::optional<std::pair<int, int>> ImageSize(std::string_view b) {
  auto u8 = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(b[i])); };
  auto clamp = [](uint32_t v) { return static_cast<int>(std::min<uint32_t>(v, 1 << 20)); };
  if (b.size() >= 24 && b.substr(0, 8) == "\x89PNG\r\n\x1a\n" && b.substr(12, 4) == "IHDR") {
    const uint32_t w = u8(16) << 24 | u8(17) << 16 | u8(18) << 8 | u8(19);
    const uint32_t h = u8(20) << 24 | u8(21) << 16 | u8(22) << 8 | u8(23);
    return std::make_pair(clamp(w), clamp(h));
  }
  if (b.size() >= 10 && (b.substr(0, 6) == "GIF87a" || b.substr(0, 6) == "GIF89a")) {
    return std::make_pair(static_cast<int>(u8(6) | u8(7) << 8), static_cast<int>(u8(8) | u8(9) << 8));
  }
  if (b.size() >= 30 && b.substr(0, 4) == "RIFF" && b.substr(8, 4) == "WEBP") {
    const std::string_view chunk = b.substr(12, 4);
    if (chunk == "VP8 " && u8(23) == 0x9d && u8(24) == 0x01 && u8(25) == 0x2a) {  // lossy
      return std::make_pair(static_cast<int>((u8(26) | u8(27) << 8) & 0x3fff),
                            static_cast<int>((u8(28) | u8(29) << 8) & 0x3fff));
    }
    if (chunk == "VP8L" && u8(20) == 0x2f) {  // lossless: 14-bit width-1, height-1
      const uint32_t bits = u8(21) | u8(22) << 8 | u8(23) << 16 | u8(24) << 24;
      return std::make_pair(static_cast<int>((bits & 0x3fff) + 1),
                            static_cast<int>(((bits >> 14) & 0x3fff) + 1));
    }
    if (chunk == "VP8X") {  // extended: 24-bit canvas width-1, height-1
      return std::make_pair(clamp((u8(24) | u8(25) << 8 | u8(26) << 16) + 1),
                            clamp((u8(27) | u8(28) << 8 | u8(29) << 16) + 1));
    }
    return std::nullopt;
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

// Size of a base64 data: URL's image: the header from the first 64 KiB of text, or, for a
// JPEG whose size comes later, from the whole image.
std::optional<std::pair<int, int>> DataUrlImageSize(std::string_view b64) {
  std::string raw;
  const size_t prefix = std::min<size_t>(b64.size(), 64 * 1024) / 4 * 4;
  if (!absl::Base64Unescape(ToAbsl(b64.substr(0, prefix)), &raw)) return std::nullopt;
  if (auto size = ImageSize(raw)) return size;
  const bool jpeg = raw.size() >= 2 && raw[0] == '\xff' && raw[1] == '\xd8';
  if (!jpeg || prefix == b64.size()) return std::nullopt;
  if (!absl::Base64Unescape(ToAbsl(b64), &raw)) return std::nullopt;
  return ImageSize(raw);
}

// OpenAI's vision token formula for one image.
int64_t ImageTokens(const ImageUrl& image, const Rules& rules, const ChatTokenOptions& options) {
  const bool patches = rules.patch_multiplier > 0;
  if (!patches && image.detail.has_value() && *image.detail == "low") return rules.image_base;
  double w = options.assumed_image_width, h = options.assumed_image_height;
  std::string_view url = image.url;
  if (absl::StartsWith(ToAbsl(url), "data:")) {
    const size_t comma = url.find(',');
    if (comma != std::string_view::npos && url.substr(0, comma).find(";base64") != std::string_view::npos) {
      if (auto size = DataUrlImageSize(url.substr(comma + 1))) {
        w = size->first;
        h = size->second;
      }
    }
  }
  if (w <= 0 || h <= 0) return patches ? 0 : rules.image_base;
  if (patches) {
    // Patches of 32 px covering the image; over 1536, the image is scaled down until at
    // most 1536 cover it, and never more than 1536 are billed.
    constexpr double kPatch = 32, kMaxPatches = 1536;
    // The scaled sides land on whole patches in exact arithmetic; do not let a rounding
    // error of the last bit add a row.
    auto ceil = [](double x) { return std::ceil(x - 1e-9); };
    double count = ceil(w / kPatch) * ceil(h / kPatch);
    if (count > kMaxPatches) {
      double r = std::sqrt(kPatch * kPatch * kMaxPatches / (w * h));
      // (A side under one patch keeps its one patch: a 40x65535 strip is not free.)
      auto whole = [](double x) { return std::max(1.0, std::floor(x)); };
      r *= std::min(whole(w * r / kPatch) / (w * r / kPatch),
                    whole(h * r / kPatch) / (h * r / kPatch));
      count = std::min(kMaxPatches, ceil(w * r / kPatch) * ceil(h * r / kPatch));
    }
    return static_cast<int64_t>(std::ceil(count * rules.patch_multiplier));
  }
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

// The deprecated request field "functions" (a JSON array of function definitions) as the
// equivalent tools: OpenAI renders both the same way.
std::vector<Tool> LegacyFunctions(const std::optional<std::string>& functions) {
  std::vector<Tool> out;
  if (!functions.has_value()) return out;
  const nlohmann::json list = nlohmann::json::parse(*functions, nullptr, false);
  if (!list.is_array()) return out;
  for (const nlohmann::json& f : list) {
    if (!f.is_object()) continue;
    Tool tool;
    tool.function = FunctionDefinition{};
    if (auto it = f.find("name"); it != f.end()) tool.function->name = JsonText(*it);
    if (auto it = f.find("description"); it != f.end()) tool.function->description = JsonText(*it);
    if (auto it = f.find("parameters"); it != f.end()) tool.function->parameters = it->dump();
    out.push_back(std::move(tool));
  }
  return out;
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

// One message's tokens under `rules`; adds its image tokens and estimate flag to *out.
int64_t MessageTokens(const Encoding& enc, const Message& m, const Rules& rules,
                      const ChatTokenOptions& options, ChatTokenCount* out) {
  auto text = [&](std::string_view s) { return static_cast<int64_t>(enc.CountOrdinary(s)); };
  int64_t n = 0;
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
              out->image_tokens += img;
              n += img;
            }
            out->estimated = true;
            break;
          case ContentPartType::kInputAudio:
          case ContentPartType::kFile:
          case ContentPartType::kOther:
            out->estimated = true;
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
  // The deprecated assistant "function_call": {"name", "arguments"}, counted as a tool call.
  for (const auto& [key, value] : m.extra) {
    if (key != "function_call") continue;
    const nlohmann::json call = nlohmann::json::parse(value, nullptr, false);
    if (!call.is_object()) {
      n += text(value);
      continue;
    }
    if (auto it = call.find("name"); it != call.end()) n += text(JsonText(*it));
    if (auto it = call.find("arguments"); it != call.end()) n += text(JsonText(*it));
  }
  return n;
}

}  // namespace

ChatTokenCount CountChatTokens(const Encoding& enc, const ChatRequest& request,
                               const ChatTokenOptions& options) {
  const std::string& model = options.model.empty() ? request.model : options.model;
  const Rules rules = RulesFor(model, enc);
  ChatTokenCount out;
  int64_t n = 0;
  for (const Message& m : request.messages) n += MessageTokens(enc, m, rules, options, &out);
  n += kReplyPrimingTokens;  // <|start|>assistant<|message|>
  std::vector<Tool> legacy = LegacyFunctions(request.functions);
  if (legacy.empty()) {
    out.tool_tokens = ToolTokens(enc, request.tools, rules);
  } else {
    legacy.insert(legacy.begin(), request.tools.begin(), request.tools.end());
    out.tool_tokens = ToolTokens(enc, legacy, rules);
  }
  out.prompt_tokens = n + out.tool_tokens;
  return out;
}

ChatTokenCount CountMessageTokens(const Encoding& enc, const Message& message,
                                  const ChatTokenOptions& options) {
  ChatTokenCount out;
  out.prompt_tokens = MessageTokens(enc, message, RulesFor(options.model, enc), options, &out);
  return out;
}

std::string MessageCountingRules(const Encoding& enc, const ChatTokenOptions& options) {
  // Everything MessageTokens reads besides the message: the encoding (by name), the
  // model's rules (not its name, so model snapshots with one rule set share a key) and the
  // image size assumed for remote URLs. func_init only counts tools, never a message.
  const Rules r = RulesFor(options.model, enc);
  // The multiplier in thousandths: formatting a double costs more than the rest together.
  return absl::StrCat(enc.name(), "|", r.per_message, ",", r.per_name, ",", r.image_base, ",",
                      r.image_tile, ",", std::llround(r.patch_multiplier * 1000), ",",
                      options.assumed_image_width, "x", options.assumed_image_height);
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
