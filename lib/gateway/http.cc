// lib/gateway/http.cc: helpers declared in include/modeenvoy/gateway/http.h.
#include "modeenvoy/gateway/http.h"

#include <optional>
#include <string_view>

#include "absl/strings/match.h"
#include "lib/core/status_macros.h"

namespace modeenvoy {

std::optional<std::string_view> FindHeader(const HttpHeaders& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(core_internal::ToAbsl(key), core_internal::ToAbsl(name))) {
      return std::string_view(value);
    }
  }
  return std::nullopt;
}

}  // namespace modeenvoy
