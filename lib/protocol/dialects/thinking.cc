// lib/protocol/dialects/thinking.cc: see thinking.h.
#include "lib/protocol/dialects/thinking.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/statusor.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/status.h"

namespace modeenvoy::protocol_internal {

absl::StatusOr<std::optional<ThinkingSetting>> ReadThinking(const ExtraFields& extra) {
  const std::string* raw = nullptr;
  for (const auto& [name, value] : extra) {
    if (name == "thinking") raw = &value;
  }
  if (raw == nullptr) return std::nullopt;
  JsonReader r(*raw, kMaxJsonDepth);
  JsonType top = JsonType::kNull;
  if (!r.Peek(&top) || top != JsonType::kObject || !r.BeginObject()) {
    return InvalidFieldError("thinking", "must be an object");
  }
  std::optional<std::string> type;
  std::optional<std::string_view> budget;  // the number's text; "" when not a number
  std::string scratch;
  std::string_view key;
  bool first = true, has = false;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    JsonType t = JsonType::kNull;
    if (key == "type") {
      std::string value;
      if (!r.Peek(&t) || t != JsonType::kString || !r.ReadString(&value)) {
        return InvalidFieldError("thinking.type", "must be enabled, disabled or adaptive");
      }
      type = std::move(value);
    } else if (key == "budget_tokens") {
      std::string_view text;
      if (r.Peek(&t) && t == JsonType::kNumber) {
        if (!r.ReadNumber(&text)) break;
        budget = text;
      } else {
        if (!r.SkipValue()) break;
        budget = std::string_view();
      }
    } else if (!r.SkipValue()) {
      break;
    }
  }
  if (!r.status().ok()) return InvalidFieldError("thinking", std::string(r.status().message()));
  ThinkingSetting out;
  if (type == "disabled") {
    out.type = ThinkingSetting::Type::kDisabled;
  } else if (type == "adaptive") {
    out.type = ThinkingSetting::Type::kAdaptive;
  } else if (type == "enabled") {
    int64_t n = 0;
    // An integer literal, as Anthropic takes it (no fraction or exponent).
    if (!budget.has_value() || budget->empty() ||
        budget->find_first_of(".eE") != std::string_view::npos ||
        !NumberToInt64(*budget, &n) || n < 1) {
      return InvalidFieldError("thinking.budget_tokens",
                               "must be an integer >= 1 when thinking.type is enabled");
    }
    out.budget_tokens = n;
  } else {
    return InvalidFieldError("thinking.type", "must be enabled, disabled or adaptive");
  }
  return out;
}

std::optional<std::string_view> ThinkingEffort(const ThinkingSetting& thinking) {
  switch (thinking.type) {
    case ThinkingSetting::Type::kDisabled:
      return std::nullopt;
    case ThinkingSetting::Type::kAdaptive:
      return "medium";
    case ThinkingSetting::Type::kEnabled:
      break;
  }
  if (thinking.budget_tokens < 4096) return "low";
  if (thinking.budget_tokens < 16384) return "medium";
  return "high";
}

}  // namespace modeenvoy::protocol_internal
