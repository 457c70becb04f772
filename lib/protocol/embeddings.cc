// lib/protocol/embeddings.cc: the unified embeddings model (OpenAI /v1/embeddings), its
// float32/base64 encodings, and the pull-reading helpers the dialects' mappings share.
#include "modeenvoy/protocol/embeddings.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/embeddings_json.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace protocol_internal {

using core_internal::ToAbsl;

absl::Status JsonWalk::TypeError(std::string_view path, std::string_view what, JsonType got) {
  return InvalidFieldError(path, absl::StrCat("expected ", ToAbsl(what), ", got ",
                                              ToAbsl(JsonTypeName(got))));
}

absl::Status JsonWalk::Expect(std::string_view path, JsonType want, std::string_view what) {
  JsonType type;
  if (!reader_.Peek(&type)) return reader_.status();
  if (type != want) return TypeError(path, what, type);
  return absl::OkStatus();
}

absl::Status JsonWalk::String(std::string_view path, std::string* out) {
  MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kString, "string"));
  if (!reader_.ReadString(out)) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::Int(std::string_view path, int64_t* out) {
  MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kNumber, "integer"));
  std::string_view text;
  if (!reader_.ReadNumber(&text)) return reader_.status();
  if (!NumberToInt64(text, out)) {
    return InvalidFieldError(path, absl::StrCat("expected integer, got ",
                                                ToAbsl(text.substr(0, 40))));
  }
  return absl::OkStatus();
}

absl::Status JsonWalk::Bool(std::string_view path, bool* out) {
  MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kBool, "boolean"));
  if (!reader_.ReadBool(out)) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::Floats(std::string_view path, std::vector<float>* out) {
  MODEENVOY_RETURN_IF_ERROR(Expect(path, JsonType::kArray, "array"));
  if (!reader_.BeginArray()) return reader_.status();
  bool first = true, has = false;
  for (int64_t i = 0;; ++i) {
    if (!reader_.NextElement(&first, &has)) return reader_.status();
    if (!has) return absl::OkStatus();
    JsonType type;
    if (!reader_.Peek(&type)) return reader_.status();
    if (type != JsonType::kNumber) return TypeError(IndexPath(path, i), "number", type);
    std::string_view text;
    if (!reader_.ReadNumber(&text)) return reader_.status();
    float value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    (void)ptr;  // the reader checked the number's grammar
    if (ec == std::errc::result_out_of_range) {
      // Underflow (a denormal's neighbourhood) rounds to the nearest float; overflow fails.
      double d = 0;
      if (!NumberToDouble(text, &d) || std::fabs(d) >= 1) {
        return InvalidFieldError(IndexPath(path, i),
                                 absl::StrCat("number out of float range: ",
                                              ToAbsl(text.substr(0, 40))));
      }
      value = static_cast<float>(d);
    }
    out->push_back(value);
  }
}

absl::Status JsonWalk::Raw(std::string* out) {
  if (!reader_.CaptureValue(out)) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::Skip() {
  if (!reader_.SkipValue()) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::TakeNull(bool* was_null) {
  JsonType type;
  if (!reader_.Peek(&type)) return reader_.status();
  *was_null = type == JsonType::kNull;
  if (*was_null && !reader_.ReadNull()) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::Peek(JsonType* type) {
  if (!reader_.Peek(type)) return reader_.status();
  return absl::OkStatus();
}

absl::Status JsonWalk::End() {
  if (!reader_.ExpectEnd()) return reader_.status();
  return absl::OkStatus();
}

void AppendJsonFloat(std::string* out, float value) {
  if (!std::isfinite(value)) value = 0;
  char buf[32];
  auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  out->append(buf, ec == std::errc() ? static_cast<size_t>(ptr - buf) : 0);
}

void AppendJsonFloats(std::string* out, const std::vector<float>& values) {
  out->push_back('[');
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out->push_back(',');
    AppendJsonFloat(out, values[i]);
  }
  out->push_back(']');
}

absl::Status RequireTextInput(const EmbeddingsRequest& request, std::string_view provider) {
  if (request.is_text()) return absl::OkStatus();
  return InvalidFieldError("input", absl::StrCat(ToAbsl(provider),
                                                 " takes text input, not token ids"));
}

absl::Status RejectUser(const EmbeddingsRequest& request, std::string_view provider) {
  if (!request.user.has_value()) return absl::OkStatus();
  return InvalidFieldError("user", absl::StrCat("not supported by ", ToAbsl(provider),
                                                " embeddings"));
}

absl::Status RejectExtra(const EmbeddingsRequest& request, std::string_view provider) {
  if (request.extra.empty()) return absl::OkStatus();
  return InvalidFieldError(request.extra.front().first,
                           absl::StrCat("not supported by ", ToAbsl(provider), " embeddings"));
}

}  // namespace protocol_internal

namespace {

using core_internal::ToAbsl;
using protocol_internal::AppendJsonFloats;
using protocol_internal::AppendJsonInt;
using protocol_internal::AppendJsonString;
using protocol_internal::IndexPath;
using protocol_internal::JsonObjectWriter;
using protocol_internal::JsonType;
using protocol_internal::JsonWalk;

constexpr char kBase64Chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

std::string QuoteShort(std::string_view value) {
  std::string out;
  AppendJsonString(&out, value.size() > 32 ? value.substr(0, 32) : value);
  return out;
}

// input: a string, or an array of strings, of integers, or of integer arrays.
absl::Status ParseInput(JsonWalk& w, EmbeddingsRequest* out) {
  JsonType type;
  MODEENVOY_RETURN_IF_ERROR(w.Peek(&type));
  if (type == JsonType::kString) {
    out->input_kind = EmbeddingInputKind::kText;
    MODEENVOY_RETURN_IF_ERROR(w.String("input", &out->texts.emplace_back()));
    return absl::OkStatus();
  }
  if (type != JsonType::kArray) {
    return JsonWalk::TypeError("input", "string or array", type);
  }
  std::optional<JsonType> element;  // the first element's type decides the shape
  MODEENVOY_RETURN_IF_ERROR(w.Array("input", [&](int64_t i) -> absl::Status {
    if (static_cast<size_t>(i) >= kMaxEmbeddingInputs) {
      return InvalidFieldError("input", absl::StrCat("at most ", kMaxEmbeddingInputs,
                                                     " inputs per request"));
    }
    JsonType t;
    MODEENVOY_RETURN_IF_ERROR(w.Peek(&t));
    if (!element.has_value()) {
      if (t != JsonType::kString && t != JsonType::kNumber && t != JsonType::kArray) {
        return JsonWalk::TypeError(IndexPath("input", i), "string, integer or array", t);
      }
      element = t;
    }
    const std::string path = IndexPath("input", i);
    switch (*element) {
      case JsonType::kString:
        if (t != JsonType::kString) return JsonWalk::TypeError(path, "string", t);
        return w.String(path, &out->texts.emplace_back());
      case JsonType::kNumber: {
        if (t != JsonType::kNumber) return JsonWalk::TypeError(path, "integer", t);
        if (out->tokens.empty()) out->tokens.emplace_back();
        int64_t id = 0;
        MODEENVOY_RETURN_IF_ERROR(w.Int(path, &id));
        if (id < 0) return InvalidFieldError(path, "token ids must be >= 0");
        out->tokens.front().push_back(id);
        return absl::OkStatus();
      }
      default: {
        if (t != JsonType::kArray) return JsonWalk::TypeError(path, "array", t);
        std::vector<int64_t>& ids = out->tokens.emplace_back();
        return w.Array(path, [&](int64_t k) -> absl::Status {
          const std::string at = IndexPath(path, k);
          int64_t id = 0;
          MODEENVOY_RETURN_IF_ERROR(w.Int(at, &id));
          if (id < 0) return InvalidFieldError(at, "token ids must be >= 0");
          ids.push_back(id);
          return absl::OkStatus();
        });
      }
    }
  }));
  if (!element.has_value()) return InvalidFieldError("input", "must not be empty");
  out->input_kind = *element == JsonType::kString   ? EmbeddingInputKind::kTexts
                    : *element == JsonType::kNumber ? EmbeddingInputKind::kTokens
                                                    : EmbeddingInputKind::kTokenArrays;
  return absl::OkStatus();
}

absl::Status ValidateInputs(const EmbeddingsRequest& r) {
  if (r.is_text()) {
    for (size_t i = 0; i < r.texts.size(); ++i) {
      if (r.texts[i].empty()) {
        return InvalidFieldError(r.input_kind == EmbeddingInputKind::kText
                                     ? std::string("input")
                                     : IndexPath("input", static_cast<int64_t>(i)),
                                 "must not be an empty string");
      }
    }
    return absl::OkStatus();
  }
  for (size_t i = 0; i < r.tokens.size(); ++i) {
    if (r.tokens[i].empty()) {
      return InvalidFieldError(IndexPath("input", static_cast<int64_t>(i)),
                               "must not be an empty array");
    }
  }
  return absl::OkStatus();
}

void AppendExtra(JsonObjectWriter& w, const ExtraFields& extra) {
  for (const auto& [name, raw] : extra) {
    w.Key(name);
    w.out()->append(raw);
  }
}

}  // namespace

std::string_view EmbeddingEncodingName(EmbeddingEncoding encoding) {
  return encoding == EmbeddingEncoding::kBase64 ? "base64" : "float";
}

absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(std::string_view json) {
  EmbeddingsRequest r;
  bool has_model = false, has_input = false;
  MODEENVOY_RETURN_IF_ERROR(protocol_internal::WalkObject(
      json, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
        bool was_null = false;
        if (key == "model") {
          has_model = true;
          return w.String(path, &r.model);
        }
        if (key == "input") {
          has_input = true;
          return ParseInput(w, &r);
        }
        if (key == "encoding_format") {
          MODEENVOY_RETURN_IF_ERROR(w.TakeNull(&was_null));
          if (was_null) return absl::OkStatus();
          std::string v;
          MODEENVOY_RETURN_IF_ERROR(w.String(path, &v));
          if (v == "float") {
            r.encoding_format = EmbeddingEncoding::kFloat;
          } else if (v == "base64") {
            r.encoding_format = EmbeddingEncoding::kBase64;
          } else {
            return InvalidFieldError(path, absl::StrCat("must be \"float\" or \"base64\", got ",
                                                        QuoteShort(v)));
          }
          return absl::OkStatus();
        }
        if (key == "dimensions") {
          MODEENVOY_RETURN_IF_ERROR(w.TakeNull(&was_null));
          if (was_null) return absl::OkStatus();
          int64_t v = 0;
          MODEENVOY_RETURN_IF_ERROR(w.Int(path, &v));
          if (v < 1) return InvalidFieldError(path, "must be >= 1");
          r.dimensions = v;
          return absl::OkStatus();
        }
        if (key == "user") {
          MODEENVOY_RETURN_IF_ERROR(w.TakeNull(&was_null));
          if (was_null) return absl::OkStatus();
          return w.String(path, &r.user.emplace());
        }
        auto& [name, raw] = r.extra.emplace_back(std::string(key), std::string());
        (void)name;
        return w.Raw(&raw);
      }));
  if (!has_model) return InvalidFieldError("model", "is required");
  if (r.model.empty()) return InvalidFieldError("model", "must not be empty");
  if (!has_input) return InvalidFieldError("input", "is required");
  MODEENVOY_RETURN_IF_ERROR(ValidateInputs(r));
  return r;
}

std::string SerializeEmbeddingsRequest(const EmbeddingsRequest& r) {
  std::string out;
  size_t reserve = 64 + r.model.size();
  for (const std::string& t : r.texts) reserve += t.size() + 4;
  for (const auto& ids : r.tokens) reserve += ids.size() * 7 + 2;
  out.reserve(reserve);
  JsonObjectWriter w(&out);
  w.Key("model");
  AppendJsonString(&out, r.model);
  w.Key("input");
  switch (r.input_kind) {
    case EmbeddingInputKind::kText:
      AppendJsonString(&out, r.texts.empty() ? std::string_view() : r.texts.front());
      break;
    case EmbeddingInputKind::kTexts:
      out.push_back('[');
      for (size_t i = 0; i < r.texts.size(); ++i) {
        if (i != 0) out.push_back(',');
        AppendJsonString(&out, r.texts[i]);
      }
      out.push_back(']');
      break;
    case EmbeddingInputKind::kTokens:
    case EmbeddingInputKind::kTokenArrays: {
      const bool nested = r.input_kind == EmbeddingInputKind::kTokenArrays;
      if (nested) out.push_back('[');
      for (size_t i = 0; i < r.tokens.size(); ++i) {
        if (i != 0) out.push_back(',');
        out.push_back('[');
        for (size_t k = 0; k < r.tokens[i].size(); ++k) {
          if (k != 0) out.push_back(',');
          AppendJsonInt(&out, r.tokens[i][k]);
        }
        out.push_back(']');
        if (!nested) break;
      }
      if (nested) out.push_back(']');
      break;
    }
  }
  if (r.encoding_format.has_value()) {
    w.Key("encoding_format");
    AppendJsonString(&out, EmbeddingEncodingName(*r.encoding_format));
  }
  if (r.dimensions.has_value()) {
    w.Key("dimensions");
    AppendJsonInt(&out, *r.dimensions);
  }
  if (r.user.has_value()) {
    w.Key("user");
    AppendJsonString(&out, *r.user);
  }
  AppendExtra(w, r.extra);
  w.End();
  return out;
}

absl::StatusOr<EmbeddingsResponse> ParseEmbeddingsResponse(std::string_view json) {
  EmbeddingsResponse r;
  bool has_data = false;
  MODEENVOY_RETURN_IF_ERROR(protocol_internal::WalkObject(
      json, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
        if (key == "object") {
          std::string v;
          MODEENVOY_RETURN_IF_ERROR(w.String(path, &v));
          if (v != "list") {
            return InvalidFieldError(path, absl::StrCat("expected \"list\", got ",
                                                        QuoteShort(v)));
          }
          return absl::OkStatus();
        }
        if (key == "model") return w.String(path, &r.model);
        if (key == "data") {
          has_data = true;
          return w.Array(path, [&](int64_t i) -> absl::Status {
            const std::string at = IndexPath(path, i);
            Embedding& e = r.data.emplace_back();
            e.index = i;
            bool has_embedding = false;
            MODEENVOY_RETURN_IF_ERROR(w.Object(at, [&](std::string_view k,
                                                       std::string_view p) -> absl::Status {
              if (k == "object") {
                std::string v;
                MODEENVOY_RETURN_IF_ERROR(w.String(p, &v));
                if (v != "embedding") {
                  return InvalidFieldError(p, absl::StrCat("expected \"embedding\", got ",
                                                           QuoteShort(v)));
                }
                return absl::OkStatus();
              }
              if (k == "index") return w.Int(p, &e.index);
              if (k == "embedding") {
                has_embedding = true;
                JsonType t;
                MODEENVOY_RETURN_IF_ERROR(w.Peek(&t));
                if (t == JsonType::kString) {
                  std::string text;
                  MODEENVOY_RETURN_IF_ERROR(w.String(p, &text));
                  absl::StatusOr<std::vector<float>> decoded = DecodeEmbeddingBase64(text);
                  if (!decoded.ok()) {
                    return InvalidFieldError(p, core_internal::ToStd(decoded.status().message()));
                  }
                  e.embedding = std::move(text);
                  return absl::OkStatus();
                }
                return w.Floats(p, &e.embedding.emplace<std::vector<float>>());
              }
              auto& [name, raw] = e.extra.emplace_back(std::string(k), std::string());
              (void)name;
              return w.Raw(&raw);
            }));
            if (!has_embedding) {
              return InvalidFieldError(absl::StrCat(at, ".embedding"), "is required");
            }
            return absl::OkStatus();
          });
        }
        if (key == "usage") {
          bool was_null = false;
          MODEENVOY_RETURN_IF_ERROR(w.TakeNull(&was_null));
          if (was_null) return absl::OkStatus();
          EmbeddingsUsage& u = r.usage.emplace();
          return w.Object(path, [&](std::string_view k, std::string_view p) -> absl::Status {
            if (k == "prompt_tokens") return w.Int(p, &u.prompt_tokens);
            if (k == "total_tokens") return w.Int(p, &u.total_tokens);
            auto& [name, raw] = u.extra.emplace_back(std::string(k), std::string());
            (void)name;
            return w.Raw(&raw);
          });
        }
        auto& [name, raw] = r.extra.emplace_back(std::string(key), std::string());
        (void)name;
        return w.Raw(&raw);
      }));
  if (!has_data) return InvalidFieldError("data", "is required");
  return r;
}

std::string SerializeEmbeddingsResponse(const EmbeddingsResponse& r, EmbeddingEncoding encoding) {
  std::string out;
  size_t reserve = 128 + r.model.size();
  for (const Embedding& e : r.data) {
    if (const auto* v = std::get_if<std::vector<float>>(&e.embedding)) {
      reserve += 48 + v->size() * (encoding == EmbeddingEncoding::kBase64 ? 6 : 13);
    } else {
      reserve += 48 + std::get<std::string>(e.embedding).size() * 3;
    }
  }
  out.reserve(reserve);
  JsonObjectWriter w(&out);
  w.Key("object");
  out.append("\"list\"");
  w.Key("data");
  out.push_back('[');
  for (size_t i = 0; i < r.data.size(); ++i) {
    const Embedding& e = r.data[i];
    if (i != 0) out.push_back(',');
    JsonObjectWriter ew(&out);
    ew.Key("object");
    out.append("\"embedding\"");
    ew.Key("index");
    AppendJsonInt(&out, e.index);
    ew.Key("embedding");
    const auto* floats = std::get_if<std::vector<float>>(&e.embedding);
    if (encoding == EmbeddingEncoding::kBase64) {
      if (floats != nullptr) {
        out.push_back('"');
        out.append(EncodeEmbeddingBase64(*floats));
        out.push_back('"');
      } else {
        AppendJsonString(&out, std::get<std::string>(e.embedding));
      }
    } else if (floats != nullptr) {
      AppendJsonFloats(&out, *floats);
    } else {
      // Checked when parsed (or produced by a dialect from floats): decodes.
      absl::StatusOr<std::vector<float>> decoded =
          DecodeEmbeddingBase64(std::get<std::string>(e.embedding));
      AppendJsonFloats(&out, decoded.ok() ? *decoded : std::vector<float>());
    }
    AppendExtra(ew, e.extra);
    ew.End();
  }
  out.push_back(']');
  w.Key("model");
  AppendJsonString(&out, r.model);
  if (r.usage.has_value()) {
    w.Key("usage");
    JsonObjectWriter uw(&out);
    uw.Key("prompt_tokens");
    AppendJsonInt(&out, r.usage->prompt_tokens);
    uw.Key("total_tokens");
    AppendJsonInt(&out, r.usage->total_tokens);
    AppendExtra(uw, r.usage->extra);
    uw.End();
  }
  AppendExtra(w, r.extra);
  w.End();
  return out;
}

std::string EncodeEmbeddingBase64(const std::vector<float>& values) {
  const size_t n = values.size() * 4;
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  auto byte = [&](size_t i) -> uint32_t {
    uint32_t bits;
    std::memcpy(&bits, &values[i / 4], 4);
    return (bits >> (8 * (i % 4))) & 0xFF;  // little-endian whatever the host's order
  };
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(kBase64Chars[v >> 18]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(kBase64Chars[(v >> 6) & 63]);
    out.push_back(kBase64Chars[v & 63]);
  }
  if (i < n) {
    const uint32_t v = byte(i) << 16 | (i + 1 < n ? byte(i + 1) << 8 : 0);
    out.push_back(kBase64Chars[v >> 18]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kBase64Chars[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

absl::StatusOr<std::vector<float>> DecodeEmbeddingBase64(std::string_view text) {
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError("invalid base64: length is not a multiple of 4");
  }
  std::string bytes;
  bytes.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      v[k] = pad > 0 ? -1 : Base64Value(c);
      if (v[k] < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid base64: unexpected character at offset ", i + k));
      }
    }
    const uint32_t bits = static_cast<uint32_t>(v[0]) << 18 | static_cast<uint32_t>(v[1]) << 12 |
                          static_cast<uint32_t>(v[2]) << 6 | static_cast<uint32_t>(v[3]);
    bytes.push_back(static_cast<char>(bits >> 16));
    if (pad < 2) bytes.push_back(static_cast<char>((bits >> 8) & 0xFF));
    if (pad < 1) bytes.push_back(static_cast<char>(bits & 0xFF));
  }
  if (bytes.size() % 4 != 0) {
    return absl::InvalidArgumentError("invalid base64: not a whole number of float32 values");
  }
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + 4 * i);
    const uint32_t bits = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 |
                          uint32_t{p[3]} << 24;
    std::memcpy(&out[i], &bits, 4);
  }
  return out;
}

}  // namespace modeenvoy
