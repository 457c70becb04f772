// lib/anthropic_ingress/models.cc: GET /v1/models in Anthropic's list shape, for clients
// that send anthropic-version (Claude Code's model discovery, the SDK's models.list()).
#include "lib/anthropic_ingress/models.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/status.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace anthropic_ingress_internal {
namespace {

// Served names carry no creation date; the epoch says "unknown" in RFC 3339 (OpenAI's list
// says created 0 for the same reason).
constexpr std::string_view kCreatedAt = "1970-01-01T00:00:00Z";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() &&
        HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<ModelsPage> ParseModelsQuery(std::string_view target) {
  ModelsPage page;
  const size_t q = target.find('?');
  if (q == std::string_view::npos) return page;
  std::string_view query = target.substr(q + 1);
  if (size_t hash = query.find('#'); hash != std::string_view::npos) query = query.substr(0, hash);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    const size_t eq = pair.find('=');
    const std::string key = PercentDecode(pair.substr(0, eq));
    const std::string value =
        eq == std::string_view::npos ? std::string() : PercentDecode(pair.substr(eq + 1));
    if (key == "limit") {
      int64_t limit = 0;
      if (!absl::SimpleAtoi(value, &limit) || limit < 1 || limit > 1000) {
        return InvalidFieldError("limit", "must be an integer between 1 and 1000");
      }
      page.limit = limit;
    } else if (key == "after_id") {
      page.after_id = value;
    } else if (key == "before_id") {
      page.before_id = value;
    }
    // Other parameters (the SDK's beta flags) do not change the list.
  }
  if (page.after_id.has_value() && page.before_id.has_value()) {
    return InvalidFieldError("before_id", "cannot be combined with after_id");
  }
  return page;
}

std::string RenderModelsPage(const std::vector<std::string>& names, const ModelsPage& page) {
  // `names` is sorted; a page is `limit` names after after_id, or the `limit` names just
  // before before_id, or the first `limit`.
  size_t begin = 0;
  size_t end = names.size();
  if (page.after_id.has_value()) {
    begin = std::upper_bound(names.begin(), names.end(), *page.after_id) - names.begin();
    end = std::min(names.size(), begin + static_cast<size_t>(page.limit));
  } else if (page.before_id.has_value()) {
    end = std::lower_bound(names.begin(), names.end(), *page.before_id) - names.begin();
    begin = end > static_cast<size_t>(page.limit) ? end - static_cast<size_t>(page.limit) : 0;
  } else {
    end = std::min(names.size(), static_cast<size_t>(page.limit));
  }
  // has_more: names remain in the direction of travel.
  const bool has_more = page.before_id.has_value() ? begin > 0 : end < names.size();
  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  for (size_t i = begin; i < end; ++i) {
    data.push_back({{"type", "model"},
                    {"id", names[i]},
                    {"display_name", names[i]},
                    {"created_at", kCreatedAt}});
  }
  nlohmann::ordered_json body = {{"data", std::move(data)}, {"has_more", has_more}};
  body["first_id"] = begin < end ? nlohmann::ordered_json(names[begin]) : nullptr;
  body["last_id"] = begin < end ? nlohmann::ordered_json(names[end - 1]) : nullptr;
  return body.dump();
}

namespace {

class ListModels final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& /*callbacks*/) override {
    absl::StatusOr<ModelsPage> page = ParseModelsQuery(ctx.request.path);
    if (!page.ok()) {
      LocalReply reply = LocalReplyForError(page.status());
      reply.body = AnthropicMessagesCodec()->ErrorBody(page.status());
      return FilterResult::Reply(std::move(reply));
    }
    LocalReply reply;
    reply.headers.emplace_back("content-type", "application/json");
    // A scoped key sees the models it may use (the rule model calls follow).
    std::vector<std::string> names = ctx.snapshot->ServedModelNames();
    std::erase_if(names,
                  [&](const std::string& name) { return !ctx.CheckModelAccess(name).ok(); });
    reply.body = RenderModelsPage(names, *page);
    return FilterResult::Reply(std::move(reply));
  }
};

}  // namespace

std::shared_ptr<const FilterFactory> ModelsEndpoint() {
  return MakeFilterFactory<ListModels>();
}

}  // namespace anthropic_ingress_internal
}  // namespace modeenvoy
