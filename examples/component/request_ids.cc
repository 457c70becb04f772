// examples/component/request_ids.cc: see request_ids.h. Public headers only, so the same
// file builds against an installed modeenvoy.
#include "examples/component/request_ids.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::examples {
namespace {

// The parsed "request_ids" section.
struct RequestIdsSection final : ConfigSection {
  std::string header = "x-request-id";
  std::string prefix = "req-";
};

// Named state: survives reloads because every new snapshot's factory asks for it by name.
struct Counter {
  std::atomic<uint64_t> issued{0};
};

absl::StatusOr<std::shared_ptr<const ConfigSection>> ParseSection(std::string_view json,
                                                                  const BuildContext&) {
  nlohmann::json value = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!value.is_object()) return InvalidFieldError("", "must be an object");
  auto section = std::make_shared<RequestIdsSection>();
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) return InvalidFieldError(it.key(), "must be a string");
    if (it.key() == "header") {
      section->header = it.value().get<std::string>();
      if (!IsValidHeaderName(section->header)) {
        return InvalidFieldError("header", "invalid header name");
      }
    } else if (it.key() == "prefix") {
      section->prefix = it.value().get<std::string>();
    } else {
      return InvalidFieldError(it.key(), "unknown field");
    }
  }
  return section;
}

class RequestIdFilter final : public Filter {
 public:
  explicit RequestIdFilter(std::shared_ptr<Counter> counter) : counter_(std::move(counter)) {}

  FilterStatus OnResponseHeaders(RequestContext& ctx, ResponseHead& head,
                                 FilterCallbacks&) override {
    RequestIdsSection defaults;
    const auto* section =
        static_cast<const RequestIdsSection*>(ctx.snapshot->Section("request_ids"));
    if (section == nullptr) section = &defaults;
    const uint64_t n = counter_->issued.fetch_add(1) + 1;
    head.headers.emplace_back(section->header, absl::StrCat(section->prefix, n));
    return FilterStatus::kContinue;
  }

 private:
  std::shared_ptr<Counter> counter_;
};

class RequestIdFactory final : public FilterFactory {
 public:
  explicit RequestIdFactory(std::shared_ptr<Counter> counter) : counter_(std::move(counter)) {}
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<RequestIdFilter>(counter_);
  }

 private:
  std::shared_ptr<Counter> counter_;
};

// GET /v1/request-ids/{name}: how many ids the filter entry `name` issued.
class StatsHandler final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override {
    const std::string name(PathParam(ctx.path_params, "name"));
    std::shared_ptr<Counter> counter = callbacks.services().State<Counter>(
        "request_ids." + name, [] { return std::make_shared<Counter>(); });
    LocalReply reply;
    reply.body = nlohmann::json{{"name", name}, {"issued", counter->issued.load()}}.dump();
    return FilterResult::Reply(std::move(reply));
  }
};

}  // namespace

absl::Status RegisterRequestIds(Registry* registry) {
  if (absl::Status s = registry->config().sections().Register("request_ids", ParseSection);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = registry->filters().Register(
          "request_ids",
          [](std::string_view config_json, const BuildContext& context)
              -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
            if (config_json != "{}") return InvalidFieldError("", "takes no configuration");
            std::shared_ptr<Counter> counter = context.services->State<Counter>(
                "request_ids." + std::string(context.name),
                [] { return std::make_shared<Counter>(); });
            return std::make_unique<RequestIdFactory>(std::move(counter));
          });
      !s.ok()) {
    return s;
  }
  EndpointSpec stats;
  stats.kind = "request_ids.stats";
  stats.method = "GET";
  stats.pattern = "/v1/request-ids/{name}";
  stats.local = MakeFilterFactory<StatsHandler>();
  return registry->endpoints().Register(std::move(stats));
}

}  // namespace modeenvoy::examples
