// lib/core/json_reader.cc
#include "lib/core/json_reader.h"

#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/status.h"

namespace modeenvoy::core_internal {
namespace {

bool NeedsQuoting(std::string_view key) {
  if (key.empty()) return true;
  for (char c : key) {
    if (c == '.' || c == '[' || c == ']' || c == '"' || c == ' ' ||
        static_cast<unsigned char>(c) < 0x20) {
      return true;
    }
  }
  return false;
}

std::string QuoteKey(std::string_view key) {
  std::string out = "[\"";
  for (char c : key) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out += "\"]";
  return out;
}

// Tracks where the parser is, so a duplicate key can be reported with its path.
struct Frame {
  bool array = false;
  std::string key;       // object: the member being read
  int64_t index = -1;    // array: the element being read
  std::set<std::string> keys;
};

std::string FramesPath(const std::vector<Frame>& frames) {
  std::string path;
  for (const Frame& f : frames) {
    if (f.array) {
      if (f.index >= 0) path = IndexPath(path, static_cast<size_t>(f.index));
    } else {
      path = ChildPath(path, f.key);
    }
  }
  return path;
}

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

}  // namespace

std::string ChildPath(std::string_view parent, std::string_view key) {
  if (NeedsQuoting(key)) return absl::StrCat(core_internal::ToAbsl(parent), QuoteKey(key));
  if (parent.empty()) return std::string(key);
  return absl::StrCat(core_internal::ToAbsl(parent), ".", core_internal::ToAbsl(key));
}

std::string IndexPath(std::string_view parent, size_t index) {
  return absl::StrFormat("%s[%d]", parent, index);
}

absl::StatusOr<Json> ParseStrictJson(std::string_view text) {
  std::vector<Frame> frames;
  std::optional<std::string> duplicate;
  auto callback = [&](int /*depth*/, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    auto begin_element = [&] {
      if (!frames.empty() && frames.back().array) ++frames.back().index;
    };
    switch (event) {
      case E::object_start:
        begin_element();
        frames.push_back(Frame{});
        break;
      case E::array_start:
        begin_element();
        frames.emplace_back();
        frames.back().array = true;
        break;
      case E::object_end:
      case E::array_end:
        if (!frames.empty()) frames.pop_back();
        break;
      case E::key: {
        if (frames.empty()) break;
        Frame& f = frames.back();
        f.key = parsed.get<std::string>();
        if (!f.keys.insert(f.key).second && !duplicate.has_value()) {
          duplicate = FramesPath(frames);
        }
        break;
      }
      case E::value:
        begin_element();
        break;
    }
    return true;
  };
  try {
    Json json = Json::parse(text.begin(), text.end(), callback);
    if (duplicate.has_value()) return InvalidFieldError(*duplicate, "duplicate key");
    return json;
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: ...".
    std::string_view what = e.what();
    size_t colon = what.find(": ");
    std::string_view reason = colon == std::string_view::npos ? what : what.substr(colon + 2);
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid JSON at byte %d: %s", e.byte, reason));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("invalid JSON: %s", e.what()));
  }
}

absl::StatusOr<ObjectReader> ObjectReader::Make(const Json& value, std::string path) {
  if (!value.is_object()) return InvalidFieldError(path, "must be an object");
  return ObjectReader(&value, std::move(path));
}

absl::Status ObjectReader::RejectUnknown(std::initializer_list<std::string_view> known) const {
  for (auto it = value_->begin(); it != value_->end(); ++it) {
    bool found = false;
    for (std::string_view k : known) {
      if (it.key() == k) {
        found = true;
        break;
      }
    }
    if (!found) return InvalidFieldError(PathOf(it.key()), "unknown field");
  }
  return absl::OkStatus();
}

const Json* ObjectReader::Find(std::string_view key) const {
  auto it = value_->find(key);
  if (it == value_->end()) return nullptr;
  return &*it;
}

absl::StatusOr<std::optional<std::string>> ObjectReader::OptionalString(std::string_view key,
                                                                        bool non_empty) const {
  const Json* v = Find(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return InvalidFieldError(PathOf(key), "must be a string");
  std::string s = v->get<std::string>();
  if (non_empty && s.empty()) return InvalidFieldError(PathOf(key), "must not be empty");
  return std::optional<std::string>(std::move(s));
}

absl::StatusOr<std::string> ObjectReader::RequiredString(std::string_view key,
                                                         bool non_empty) const {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> s, OptionalString(key, non_empty));
  if (!s.has_value()) return InvalidFieldError(PathOf(key), "is required");
  return std::move(*s);
}

absl::StatusOr<std::optional<int64_t>> ObjectReader::OptionalInt(std::string_view key,
                                                                 int64_t min,
                                                                 int64_t max) const {
  const Json* v = Find(key);
  if (v == nullptr) return std::nullopt;
  int64_t n = 0;
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      return InvalidFieldError(PathOf(key), absl::StrFormat("must be <= %d", max));
    }
    n = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    n = v->get<int64_t>();
  } else {
    return InvalidFieldError(PathOf(key), "must be an integer");
  }
  if (n < min) return InvalidFieldError(PathOf(key), absl::StrFormat("must be >= %d", min));
  if (n > max) return InvalidFieldError(PathOf(key), absl::StrFormat("must be <= %d", max));
  return std::optional<int64_t>(n);
}

absl::StatusOr<std::optional<ObjectReader>> ObjectReader::OptionalObject(
    std::string_view key) const {
  const Json* v = Find(key);
  if (v == nullptr) return std::nullopt;
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, Make(*v, PathOf(key)));
  return std::optional<ObjectReader>(std::move(r));
}

absl::StatusOr<const Json*> ObjectReader::OptionalArray(std::string_view key) const {
  const Json* v = Find(key);
  if (v == nullptr) return nullptr;
  if (!v->is_array()) return InvalidFieldError(PathOf(key), "must be an array");
  return v;
}

absl::Status ValidateHeader(std::string_view path, std::string_view name,
                            std::string_view value) {
  if (name.empty()) return InvalidFieldError(path, "invalid header name");
  for (char c : name) {
    if (!IsTokenChar(c)) return InvalidFieldError(path, "invalid header name");
  }
  for (char c : value) {
    if (c == '\r' || c == '\n' || c == '\0') {
      return InvalidFieldError(path, "header value must not contain CR, LF or NUL");
    }
  }
  return absl::OkStatus();
}

absl::Status PrefixFieldError(const absl::Status& status, std::string_view prefix) {
  if (status.ok()) return status;
  std::string_view message = core_internal::ToStd(status.message());
  std::optional<std::string> param = ErrorParam(status);
  if (param.has_value() && !param->empty()) {
    std::string head = *param + ": ";
    if (absl::StartsWith(core_internal::ToAbsl(message), head)) message.remove_prefix(head.size());
    std::string joined = (*param)[0] == '[' ? absl::StrCat(core_internal::ToAbsl(prefix), *param)
                                            : absl::StrCat(core_internal::ToAbsl(prefix), ".", *param);
    return FieldError(status.code(), joined, message);
  }
  return FieldError(status.code(), prefix, message);
}

}  // namespace modeenvoy::core_internal
