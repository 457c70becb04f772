// lib/protocol/dialects/unified_out.h: writing unified (OpenAI Chat Completions) output
// directly as JSON text, and typed reads with JsonReader, for the dialects that translate a
// provider's answers (ollama.cc, cohere.cc). Private to lib/protocol/dialects.
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_OUT_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_OUT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::protocol_internal {

// The fixed head of every chunk of one stream.
struct ChunkHead {
  std::string id;
  int64_t created = 0;
  std::string model;
};

// Appends {"id",...,"choices":[{"index":0,"delta":<delta_json>,"logprobs":null,
// "finish_reason":<finish or null>}]} as one whole chunk.
// Its two halves, for a caller that writes the delta in between itself:
// AppendDeltaChunkHead ends with "delta":, AppendDeltaChunkTail starts with ,"logprobs".
inline void AppendDeltaChunkHead(const ChunkHead& head, std::string* out) {
  out->append("{\"id\":");
  AppendJsonString(out, head.id);
  out->append(",\"object\":\"chat.completion.chunk\",\"created\":");
  AppendJsonInt(out, head.created);
  out->append(",\"model\":");
  AppendJsonString(out, head.model);
  out->append(",\"choices\":[{\"index\":0,\"delta\":");
}
inline void AppendDeltaChunkTail(std::string_view finish_reason, std::string* out) {
  out->append(",\"logprobs\":null,\"finish_reason\":");
  if (finish_reason.empty()) {
    out->append("null");
  } else {
    AppendJsonString(out, finish_reason);
  }
  out->append("}]}");
}
inline void AppendDeltaChunk(const ChunkHead& head, std::string_view delta_json,
                             std::string_view finish_reason, std::string* out) {
  AppendDeltaChunkHead(head, out);
  out->append(delta_json);
  AppendDeltaChunkTail(finish_reason, out);
}

// The usage-only chunk that closes a translated stream: "choices":[] and `usage_json`.
inline void AppendUsageChunk(const ChunkHead& head, std::string_view usage_json,
                             std::string* out) {
  out->append("{\"id\":");
  AppendJsonString(out, head.id);
  out->append(",\"object\":\"chat.completion.chunk\",\"created\":");
  AppendJsonInt(out, head.created);
  out->append(",\"model\":");
  AppendJsonString(out, head.model);
  out->append(",\"choices\":[],\"usage\":");
  out->append(usage_json);
  out->append("}");
}

// OpenAI's usage object. `cached` (part of `prompt`) becomes
// prompt_tokens_details.cached_tokens; `extra_members` (",\"name\":value..." text, may be
// empty) is appended inside the object.
inline void AppendUsage(int64_t prompt, int64_t completion, std::optional<int64_t> cached,
                        std::string_view extra_members, std::string* out) {
  out->append("{\"prompt_tokens\":");
  AppendJsonInt(out, prompt);
  out->append(",\"completion_tokens\":");
  AppendJsonInt(out, completion);
  out->append(",\"total_tokens\":");
  AppendJsonInt(out, prompt + completion);
  if (cached.has_value()) {
    out->append(",\"prompt_tokens_details\":{\"cached_tokens\":");
    AppendJsonInt(out, *cached);
    out->append("}");
  }
  out->append(extra_members);
  out->append("}");
}

// ---- typed pull reads: a wrong type is an error naming `path` ----

inline absl::Status WrongType(std::string_view path, std::string_view want, JsonType got) {
  return InvalidFieldError(path, std::string("expected ") + std::string(want) + ", got " +
                                     std::string(JsonTypeName(got)));
}

// Reads a string, or null as "" (absent). False with *status set on failure.
inline bool PullString(JsonReader& r, std::string_view path, std::string* out,
                       absl::Status* status) {
  JsonType type;
  if (!r.Peek(&type)) {
    *status = r.status();
    return false;
  }
  if (type == JsonType::kNull) {
    out->clear();
    if (!r.ReadNull()) *status = r.status();
    return status->ok();
  }
  if (type != JsonType::kString) {
    *status = WrongType(path, "string", type);
    return false;
  }
  if (!r.ReadString(out)) {
    *status = r.status();
    return false;
  }
  return true;
}

// Reads an integer, or null as absent.
inline bool PullInt(JsonReader& r, std::string_view path, std::optional<int64_t>* out,
                    absl::Status* status) {
  JsonType type;
  if (!r.Peek(&type)) {
    *status = r.status();
    return false;
  }
  if (type == JsonType::kNull) {
    out->reset();
    if (!r.ReadNull()) *status = r.status();
    return status->ok();
  }
  std::string_view text;
  if (type != JsonType::kNumber) {
    *status = WrongType(path, "integer", type);
    return false;
  }
  if (!r.ReadNumber(&text)) {
    *status = r.status();
    return false;
  }
  int64_t value = 0;
  if (!NumberToInt64(text, &value)) {
    *status = InvalidFieldError(path, "expected integer, got " + std::string(text));
    return false;
  }
  *out = value;
  return true;
}

// Peeks the next value's type, requiring `want` (null allowed when `null_ok`, reported as
// *is_null).
inline bool PullExpect(JsonReader& r, std::string_view path, JsonType want, bool* is_null,
                       absl::Status* status) {
  JsonType type;
  if (!r.Peek(&type)) {
    *status = r.status();
    return false;
  }
  *is_null = type == JsonType::kNull;
  if (*is_null) {
    if (!r.ReadNull()) *status = r.status();
    return status->ok();
  }
  if (type != want) {
    *status = WrongType(path, JsonTypeName(want), type);
    return false;
  }
  return true;
}

// FNV-1a, for ids derived from content (deterministic across runs).
inline uint64_t Fnv1a(std::string_view bytes, uint64_t seed = 0) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

inline std::string Hex64(uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<size_t>(i)] = kDigits[v & 15];
  return s;
}

// The unified request fields that a provider answering one text choice (ollama, cohere)
// has no place for, each refused with a 400 naming the field: n > 1, logit_bias, logprobs,
// top_logprobs, audio, prediction, web_search_options, the deprecated functions and
// function_call, verbosity, modalities other than "text", and parallel_tool_calls: false.
// `provider` is the dialect's name, as the messages say it.
inline absl::Status RejectOneTextChoiceFields(const ChatRequest& chat, std::string_view provider) {
  const std::string name(provider);
  auto not_supported = [&](std::string_view path) {
    return InvalidFieldError(path, "not supported by " + name);
  };
  if (chat.n.has_value() && *chat.n > 1) {
    return InvalidFieldError("n", name + " returns one choice; n > 1 is not supported");
  }
  if (chat.logit_bias.has_value()) return not_supported("logit_bias");
  if (chat.logprobs.value_or(false)) return not_supported("logprobs");
  if (chat.top_logprobs.has_value()) return not_supported("top_logprobs");
  if (chat.audio.has_value()) return not_supported("audio");
  if (chat.prediction.has_value()) return not_supported("prediction");
  if (chat.web_search_options.has_value()) return not_supported("web_search_options");
  if (chat.functions.has_value()) return not_supported("functions");
  if (chat.function_call.has_value()) return not_supported("function_call");
  if (chat.verbosity.has_value()) return not_supported("verbosity");
  if (chat.modalities.has_value()) {
    for (const std::string& m : *chat.modalities) {
      if (m != "text") return InvalidFieldError("modalities", name + " answers in text only");
    }
  }
  if (chat.parallel_tool_calls.has_value() && !*chat.parallel_tool_calls) {
    return InvalidFieldError("parallel_tool_calls",
                             name + " cannot be told to make at most one tool call");
  }
  return absl::OkStatus();
}

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_UNIFIED_OUT_H_
