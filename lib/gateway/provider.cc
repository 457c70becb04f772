// lib/gateway/provider.cc: the default error mapping of provider dialects.
#include "modeenvoy/gateway/provider.h"

#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {

absl::Status ProviderDialect::TranslateError(int http_status, const HttpHeaders& headers,
                                             std::string_view body) const {
  absl::Status status = StatusFromUpstreamError(http_status, body);
  // What a client needs to back off correctly survives the translation.
  HttpHeaders keep;
  for (const auto& [name, value] : headers) {
    absl::string_view n = core_internal::ToAbsl(name);
    if (absl::EqualsIgnoreCase(n, "retry-after") || absl::EqualsIgnoreCase(n, "retry-after-ms") ||
        absl::StartsWithIgnoreCase(n, "x-ratelimit-")) {
      keep.emplace_back(name, value);
    }
  }
  return keep.empty() ? status : WithErrorHeaders(std::move(status), keep);
}

}  // namespace modeenvoy
