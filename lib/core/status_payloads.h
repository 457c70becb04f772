// lib/core/status_payloads.h: the absl::Status payload URLs behind modeenvoy/status.h, for
// the few places that attach or read a payload directly (lib/protocol/error.cc sets an
// upstream's "param" without rewriting the message). Private to lib/.
#ifndef MODEENVOY_LIB_CORE_STATUS_PAYLOADS_H_
#define MODEENVOY_LIB_CORE_STATUS_PAYLOADS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/types/optional.h"
#include "lib/core/status_macros.h"

namespace modeenvoy::core_internal {

// Payload type URLs; the values are plain UTF-8 text. The URLs predate the move of these
// helpers into the core and stay as they are: statuses may cross library versions.
inline constexpr std::string_view kParamPayload = "modeenvoy/protocol.param";
inline constexpr std::string_view kHttpStatusPayload = "modeenvoy/protocol.http_status";
inline constexpr std::string_view kErrorCodePayload = "modeenvoy/protocol.error_code";

// The payload under `url` as text, or nullopt.
inline std::optional<std::string> GetPayload(const absl::Status& status, std::string_view url) {
  absl::optional<absl::Cord> payload = status.GetPayload(ToAbsl(url));
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_STATUS_PAYLOADS_H_
