// lib/protocol/embeddings_json.h: strict pull reading of embeddings bodies (private).
//
// Embedding responses are mostly float arrays (100 inputs x 1536 floats is 150k numbers),
// so they are read with the zero-copy JsonReader, never through a DOM. JsonWalk adds field
// paths (built only when an error is reported), duplicate-member checks and the typed
// reads the dialects' embeddings mappings need.
#ifndef MODEENVOY_LIB_PROTOCOL_EMBEDDINGS_JSON_H_
#define MODEENVOY_LIB_PROTOCOL_EMBEDDINGS_JSON_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/json.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::protocol_internal {

// "parent.key" / "parent[i]"; the root's children have no leading dot.
inline std::string MemberPath(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return absl::StrCat(core_internal::ToAbsl(parent), ".", core_internal::ToAbsl(key));
}
inline std::string IndexPath(std::string_view parent, int64_t index) {
  return absl::StrCat(core_internal::ToAbsl(parent), "[", index, "]");
}

// Thread-compatible; `body` must outlive the walker.
class MODEENVOY_EXPORT JsonWalk {
 public:
  explicit JsonWalk(std::string_view body) : reader_(body, kMaxJsonDepth) {}

  // Iterates an object's members: fn(key, path) must consume the value. A repeated member
  // name is an error "<path>.<key>: duplicate key".
  template <typename F>
  absl::Status Object(std::string_view path, F&& fn) {
    MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kObject, "object"));
    if (!reader_.BeginObject()) return reader_.status();
    MemberNameSet seen;
    std::string scratch;
    std::string_view key;
    bool first = true, has = false;
    while (true) {
      if (!reader_.NextMember(&first, &key, &scratch, &has)) return reader_.status();
      if (!has) return absl::OkStatus();
      const std::string child = MemberPath(path, key);
      if (!seen.Insert(key)) return InvalidFieldError(child, "duplicate key");
      MODEENVOY_RETURN_IF_ERROR(fn(std::string_view(key), std::string_view(child)));
    }
  }

  // Iterates an array's elements: fn(index) must consume the element (paths are built by
  // the callback, with IndexPath, only when it reports an error).
  template <typename F>
  absl::Status Array(std::string_view path, F&& fn) {
    MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kArray, "array"));
    if (!reader_.BeginArray()) return reader_.status();
    bool first = true, has = false;
    for (int64_t i = 0;; ++i) {
      if (!reader_.NextElement(&first, &has)) return reader_.status();
      if (!has) return absl::OkStatus();
      MODEENVOY_RETURN_IF_ERROR(fn(i));
    }
  }

  absl::Status String(std::string_view path, std::string* out);
  absl::Status Int(std::string_view path, int64_t* out);
  absl::Status Bool(std::string_view path, bool* out);
  // An array of numbers, each rounded to the nearest float; appended to *out.
  absl::Status Floats(std::string_view path, std::vector<float>* out);
  // The value's compact text (for `extra`).
  absl::Status Raw(std::string* out);
  absl::Status Skip();
  // True (and the null consumed) when the next value is null.
  absl::Status TakeNull(bool* was_null);
  // The type of the next value.
  absl::Status Peek(JsonType* type);
  // Only whitespace may remain.
  absl::Status End();

  // "<path>: expected <what>, got <type>".
  static absl::Status TypeError(std::string_view path, std::string_view what, JsonType got);

 private:
  absl::Status Expect(std::string_view path, JsonType want, std::string_view what);

  JsonReader reader_;
};

// Parses `body` as one JSON object, calling fn(key, path) for every member.
template <typename F>
absl::Status WalkObject(std::string_view body, F&& fn) {
  JsonWalk w(body);
  MODEENVOY_RETURN_IF_ERROR(w.Object("", [&](std::string_view key, std::string_view path) {
    return fn(w, key, path);
  }));
  return w.End();
}

// Appends a float the way OpenAI writes one: the fewest digits that read back as it
// (non-finite values as 0, which no provider sends).
MODEENVOY_EXPORT void AppendJsonFloat(std::string* out, float value);
// Appends `[v0,v1,...]`.
MODEENVOY_EXPORT void AppendJsonFloats(std::string* out, const std::vector<float>& values);

// kInvalidArgument "input: <provider> takes text input, not token ids" when `request`
// carries token arrays (every provider but OpenAI's family).
MODEENVOY_EXPORT absl::Status RequireTextInput(const EmbeddingsRequest& request,
                                               std::string_view provider);
// kInvalidArgument naming `user` when it is set: an end-user id only OpenAI's family takes.
MODEENVOY_EXPORT absl::Status RejectUser(const EmbeddingsRequest& request,
                                         std::string_view provider);
// The first member of `request.extra`, as kInvalidArgument "<name>: not supported by
// <provider> embeddings" (unknown fields pass only to OpenAI-compatible targets).
MODEENVOY_EXPORT absl::Status RejectExtra(const EmbeddingsRequest& request,
                                          std::string_view provider);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_EMBEDDINGS_JSON_H_
