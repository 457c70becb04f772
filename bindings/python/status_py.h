// bindings/python/status_py.h: the one absl::Status -> modeenvoy.Error mapping.
#ifndef MODEENVOY_BINDINGS_PYTHON_STATUS_PY_H_
#define MODEENVOY_BINDINGS_PYTHON_STATUS_PY_H_

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace modeenvoy::python {

// Raises modeenvoy.Error(message, code=<absl code name>, status_code=<HTTP status>,
// param=<field path or None>, partial_output=b""). REQUIRES: !status.ok(). Call with the GIL
// held.
[[noreturn]] void ThrowStatus(const absl::Status& status);
// The same with partial_output=<the bytes>: what the failing call produced before it failed
// (a stream translator's output for the frames before the bad one), which the caller would
// otherwise lose with the call's return value.
[[noreturn]] void ThrowStatus(const absl::Status& status, std::string_view partial_output);

inline void ThrowIfError(const absl::Status& status) {
  if (!status.ok()) ThrowStatus(status);
}

template <typename T>
T ValueOrThrow(absl::StatusOr<T> value) {
  if (!value.ok()) ThrowStatus(value.status());
  return *std::move(value);
}

}  // namespace modeenvoy::python

#endif  // MODEENVOY_BINDINGS_PYTHON_STATUS_PY_H_
