// bindings/python/status_py.h: the one absl::Status -> modeenvoy.Error mapping.
#ifndef MODEENVOY_BINDINGS_PYTHON_STATUS_PY_H_
#define MODEENVOY_BINDINGS_PYTHON_STATUS_PY_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace modeenvoy::python {

// Raises modeenvoy.Error(message, code=<absl code name>, status_code=<HTTP status>,
// param=<field path or None>). REQUIRES: !status.ok(). Call with the GIL held.
[[noreturn]] void ThrowStatus(const absl::Status& status);

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
