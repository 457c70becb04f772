// lib/core/status_macros.h: private helpers for propagating absl::Status.
#ifndef MODEENVOY_LIB_CORE_STATUS_MACROS_H_
#define MODEENVOY_LIB_CORE_STATUS_MACROS_H_

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace modeenvoy::core_internal {

// Debian's Abseil 20220623 keeps absl::string_view distinct from std::string_view.
inline absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view ToStd(absl::string_view s) { return std::string_view(s.data(), s.size()); }

}  // namespace modeenvoy::core_internal

#define MODEENVOY_STATUS_CONCAT_INNER_(a, b) a##b
#define MODEENVOY_STATUS_CONCAT_(a, b) MODEENVOY_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define MODEENVOY_RETURN_IF_ERROR(expr)                \
  do {                                                 \
    const ::absl::Status modeenvoy_status_ = (expr);   \
    if (!modeenvoy_status_.ok()) return modeenvoy_status_; \
  } while (0)

// MODEENVOY_ASSIGN_OR_RETURN(auto x, MakeX()); declares/assigns the value or returns the error.
#define MODEENVOY_ASSIGN_OR_RETURN(lhs, rexpr)                                         \
  MODEENVOY_ASSIGN_OR_RETURN_IMPL_(MODEENVOY_STATUS_CONCAT_(statusor_, __LINE__), lhs, \
                                   rexpr)
#define MODEENVOY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                     \
  if (!statusor.ok()) return std::move(statusor).status();     \
  lhs = std::move(statusor).value()

#endif  // MODEENVOY_LIB_CORE_STATUS_MACROS_H_
