// include/modeenvoy/protocol/embeddings.h: the unified embeddings model. OpenAI's
// POST /v1/embeddings is the canonical form; every dialect that serves embeddings maps it
// to and from its provider's API (Dialect::EncodeEmbeddingsRequest /
// DecodeEmbeddingsResponse, dialect.h).
//   absl::StatusOr<modeenvoy::EmbeddingsRequest> req = modeenvoy::ParseEmbeddingsRequest(body);
//   if (!req.ok()) return req.status();     // "input[2]: expected string, got integer"
//   // ... a dialect's DecodeEmbeddingsResponse gives an EmbeddingsResponse ...
//   std::string out = modeenvoy::SerializeEmbeddingsResponse(
//       response, req->encoding_format.value_or(modeenvoy::EmbeddingEncoding::kFloat));
//
// Model conventions (as chat.h): field names are the wire names; std::optional is an
// absent (or null) member; `extra` keeps unknown members (name, compact raw JSON) in input
// order and is written back after the known ones, so an OpenAI-compatible upstream receives
// them. Parsing is strict: invalid JSON, duplicate members and wrong types are
// kInvalidArgument errors carrying the field path (error.h), e.g. `input[1]: expected
// string, got integer`, `encoding_format: must be "float" or "base64", got "hex"`.
// Vectors are float32, as every provider computes them: a JSON number is rounded to the
// nearest float, and a float is written with the fewest digits that read back as that
// float (what OpenAI writes). "base64" is the float32 values little-endian, base64-encoded
// (OpenAI's encoding; the Python SDK asks for it by default).
// Thread safety: all functions are pure and thread-safe; structs are plain values.
#ifndef MODEENVOY_PROTOCOL_EMBEDDINGS_H_
#define MODEENVOY_PROTOCOL_EMBEDDINGS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"  // ExtraFields

namespace modeenvoy {

// Most inputs one request may carry (OpenAI's limit).
inline constexpr size_t kMaxEmbeddingInputs = 2048;

// The four shapes of `input`.
enum class EmbeddingInputKind {
  kText,         // "text"                 -> texts has one element
  kTexts,        // ["a", "b"]             -> texts
  kTokens,       // [1, 2, 3]              -> tokens has one element
  kTokenArrays,  // [[1, 2], [3]]          -> tokens
};

enum class EmbeddingEncoding { kFloat, kBase64 };

// "float", "base64".
MODEENVOY_EXPORT std::string_view EmbeddingEncodingName(EmbeddingEncoding encoding);

struct EmbeddingsRequest {
  std::string model;  // required, non-empty
  EmbeddingInputKind input_kind = EmbeddingInputKind::kText;
  // kText / kTexts: the texts, each non-empty. kTokens / kTokenArrays: the token ids
  // (each >= 0), each array non-empty. The other member is empty. At least one input and
  // at most kMaxEmbeddingInputs.
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> tokens;
  std::optional<EmbeddingEncoding> encoding_format;
  std::optional<int64_t> dimensions;  // >= 1
  std::optional<std::string> user;
  ExtraFields extra;

  // Number of inputs (texts.size() or tokens.size()).
  size_t input_count() const { return is_text() ? texts.size() : tokens.size(); }
  bool is_text() const {
    return input_kind == EmbeddingInputKind::kText || input_kind == EmbeddingInputKind::kTexts;
  }
  bool operator==(const EmbeddingsRequest&) const = default;
};

// One vector. `embedding` holds float values, or the base64 text an upstream sent when it
// was asked for base64 (kept as is; SerializeEmbeddingsResponse converts when needed).
struct Embedding {
  int64_t index = 0;
  std::variant<std::vector<float>, std::string> embedding;
  ExtraFields extra;
  bool operator==(const Embedding&) const = default;
};

struct EmbeddingsUsage {
  int64_t prompt_tokens = 0;
  int64_t total_tokens = 0;
  // e.g. "estimated": true and "estimation_method" when the gateway counted (usage.h).
  ExtraFields extra;
  bool operator==(const EmbeddingsUsage&) const = default;
};

struct EmbeddingsResponse {
  std::string model;
  std::vector<Embedding> data;  // in index order
  std::optional<EmbeddingsUsage> usage;
  ExtraFields extra;  // unknown top-level members (the "object" member is always "list")
  bool operator==(const EmbeddingsResponse&) const = default;
};

// Parses and validates an OpenAI /v1/embeddings request body. Errors: kInvalidArgument
// with the field path: a missing or empty `model` / `input`, an empty string or token
// array, a mixed array, a negative token id, more than kMaxEmbeddingInputs inputs,
// `encoding_format` other than "float"/"base64", `dimensions` < 1.
MODEENVOY_EXPORT absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(std::string_view json);

// The OpenAI request body, `extra` included. Parse(Serialize(x)) == x for every parsed x.
MODEENVOY_EXPORT std::string SerializeEmbeddingsRequest(const EmbeddingsRequest& request);

// Parses an OpenAI /v1/embeddings response body: "embedding" as an array of numbers or a
// base64 string (checked: valid base64 of whole float32 values). Errors: kInvalidArgument
// with the field path.
MODEENVOY_EXPORT absl::StatusOr<EmbeddingsResponse> ParseEmbeddingsResponse(
    std::string_view json);

// The OpenAI response body with every vector in `encoding` (float values written as
// numbers, or base64 of float32 little-endian; a base64 vector asked for as floats is
// decoded). `usage` is written when present.
MODEENVOY_EXPORT std::string SerializeEmbeddingsResponse(const EmbeddingsResponse& response,
                                                         EmbeddingEncoding encoding);

// base64 (RFC 4648, padded) of `values` as float32 little-endian.
MODEENVOY_EXPORT std::string EncodeEmbeddingBase64(const std::vector<float>& values);
// The inverse. Errors: kInvalidArgument when `text` is not padded base64 of a multiple of
// 4 bytes.
MODEENVOY_EXPORT absl::StatusOr<std::vector<float>> DecodeEmbeddingBase64(std::string_view text);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_EMBEDDINGS_H_
