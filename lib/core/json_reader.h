// lib/core/json_reader.h: strict reading of JSON configuration with field-path errors.
// Private to lib/; the one JSON reader for configuration (see docs/architecture.md).
#ifndef MODEENVOY_LIB_CORE_JSON_READER_H_
#define MODEENVOY_LIB_CORE_JSON_READER_H_

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::core_internal {

// Exported (MODEENVOY_EXPORT) because other component libraries call these: in a shared
// build they would otherwise be hidden inside libmodeenvoy_core.

// Keeps document order, so "the first error" is the first one a reader of the file meets.
using Json = nlohmann::ordered_json;

// Parses `text`. Errors: kInvalidArgument "invalid JSON at byte N: <reason>", or, for a
// repeated member name, "<path>: duplicate key" (with the path as ErrorParam).
MODEENVOY_EXPORT absl::StatusOr<Json> ParseStrictJson(std::string_view text);

// Path helpers: ChildPath("providers", "openai") == "providers.openai"; keys that would be
// ambiguous in a dotted path are quoted: ChildPath("models", "a.b") == "models[\"a.b\"]".
MODEENVOY_EXPORT std::string ChildPath(std::string_view parent, std::string_view key);
MODEENVOY_EXPORT std::string IndexPath(std::string_view parent, size_t index);

// A JSON object being read, with its path for error messages.
class MODEENVOY_EXPORT ObjectReader {
 public:
  // Errors: "<path>: must be an object".
  static absl::StatusOr<ObjectReader> Make(const Json& value, std::string path);

  // Errors: "<path>.<key>: unknown field" for the first key not in `known`.
  absl::Status RejectUnknown(std::initializer_list<std::string_view> known) const;

  const Json* Find(std::string_view key) const;
  bool Has(std::string_view key) const { return Find(key) != nullptr; }
  std::string PathOf(std::string_view key) const { return ChildPath(path_, key); }
  const std::string& path() const { return path_; }
  const Json& json() const { return *value_; }

  // Absent gives nullopt. Errors: "must be a string", "must not be empty" (non_empty).
  absl::StatusOr<std::optional<std::string>> OptionalString(std::string_view key,
                                                            bool non_empty = true) const;
  // Errors: as OptionalString, plus "is required".
  absl::StatusOr<std::string> RequiredString(std::string_view key, bool non_empty = true) const;
  // Absent gives nullopt. Errors: "must be an integer", "must be >= min", "must be <= max".
  absl::StatusOr<std::optional<int64_t>> OptionalInt(std::string_view key, int64_t min,
                                                     int64_t max) const;
  // Absent gives nullopt. Errors: "must be an object".
  absl::StatusOr<std::optional<ObjectReader>> OptionalObject(std::string_view key) const;
  // Absent gives nullptr. Errors: "must be an array".
  absl::StatusOr<const Json*> OptionalArray(std::string_view key) const;

 private:
  ObjectReader(const Json* value, std::string path) : value_(value), path_(std::move(path)) {}
  const Json* value_;
  std::string path_;
};

// Checks an HTTP header name (RFC 9110 token) and value (no CR, LF or NUL).
// Errors: "<path>: invalid header name" / "<path>: header value must not contain CR, LF or NUL".
MODEENVOY_EXPORT absl::Status ValidateHeader(std::string_view path, std::string_view name,
                                             std::string_view value);

// Prefixes the field path of a builder's error: "keys[0].key: x" under prefix
// "filters[2].config" becomes "filters[2].config.keys[0].key: x"; an error without a path
// becomes "filters[2].config: <message>". Keeps the code.
MODEENVOY_EXPORT absl::Status PrefixFieldError(const absl::Status& status,
                                              std::string_view prefix);

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_JSON_READER_H_
