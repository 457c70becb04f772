// lib/protocol/dialects/embeddings.cc: the embeddings APIs of openai/azure_openai, gemini,
// bedrock (Titan and Cohere models), cohere and ollama, mapped to and from the unified
// OpenAI /v1/embeddings model (embeddings.h beside this file says the rules).
// Request bodies are written directly; response bodies are pulled (JsonWalk), never built
// into a DOM: a 100-input answer holds 100k+ numbers.
#include "lib/protocol/dialects/embeddings.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/embeddings_json.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::protocol_internal {
namespace {

using core_internal::ToAbsl;

// RFC 3986 unreserved characters stay; the rest is percent-encoded (Bedrock model ids hold
// ':' and ARNs '/').
std::string EncodePathSegment(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

void JsonHeaders(WireRequest* out) {
  out->method = "POST";
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back("accept", "application/json");
}

// The members of request.extra a provider consumes (`consumed`, read as strings into
// `values` in the same order) or passes through raw (`passed`, appended to `*passthrough`
// as ,"name":value). Any other member: kInvalidArgument naming it.
absl::Status SplitExtra(const EmbeddingsRequest& request, std::string_view provider,
                        std::initializer_list<std::string_view> consumed,
                        std::vector<std::string>* values,
                        std::initializer_list<std::string_view> passed,
                        std::string* passthrough) {
  values->assign(consumed.size(), std::string());
  for (const auto& [name, raw] : request.extra) {
    size_t i = 0;
    bool done = false;
    for (std::string_view c : consumed) {
      if (name == c) {
        JsonWalk w(raw);
        absl::Status s = w.String(name, &(*values)[i]);
        if (!s.ok() || (*values)[i].empty()) {
          return InvalidFieldError(name, "must be a non-empty string");
        }
        done = true;
        break;
      }
      ++i;
    }
    for (std::string_view p : passed) {
      if (!done && name == p) {
        passthrough->push_back(',');
        AppendJsonString(passthrough, name);
        passthrough->push_back(':');
        passthrough->append(raw);
        done = true;
      }
    }
    if (!done) {
      return InvalidFieldError(name, absl::StrCat("not supported by ", ToAbsl(provider),
                                                  " embeddings"));
    }
  }
  return absl::OkStatus();
}

absl::Status CountMismatch(std::string_view member, size_t want, size_t got) {
  return InvalidFieldError(member, absl::StrCat("expected ", want, " embeddings (one per "
                                                "input), got ", got));
}

// `vectors` as the unified response's data, in order.
EmbeddingsResponse FromVectors(std::vector<std::vector<float>> vectors, std::string_view model) {
  EmbeddingsResponse r;
  r.model = std::string(model);
  r.data.resize(vectors.size());
  for (size_t i = 0; i < vectors.size(); ++i) {
    r.data[i].index = static_cast<int64_t>(i);
    r.data[i].embedding = std::move(vectors[i]);
  }
  return r;
}

void SetUsage(EmbeddingsResponse* r, int64_t tokens) {
  EmbeddingsUsage& u = r->usage.emplace();
  u.prompt_tokens = tokens;
  u.total_tokens = tokens;
}

void AppendTexts(std::string* out, const std::vector<std::string>& texts) {
  out->push_back('[');
  for (size_t i = 0; i < texts.size(); ++i) {
    if (i != 0) out->push_back(',');
    AppendJsonString(out, texts[i]);
  }
  out->push_back(']');
}

absl::Status ReadVectorList(JsonWalk& w, std::string_view path,
                            std::vector<std::vector<float>>* out) {
  return w.Array(path, [&](int64_t i) {
    return w.Floats(IndexPath(path, i), &out->emplace_back());
  });
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A Bedrock model id without a cross-region inference profile prefix ("us.", "eu.",
// "apac.", "global.") or an ARN's path: what identifies the model family.
std::string_view BedrockBaseModel(std::string_view id) {
  if (size_t slash = id.rfind('/'); slash != std::string_view::npos) id.remove_prefix(slash + 1);
  for (std::string_view p : {"us.", "eu.", "apac.", "global.", "us-gov."}) {
    if (StartsWith(id, p)) return id.substr(p.size());
  }
  return id;
}

}  // namespace

// ---- openai / azure_openai ------------------------------------------------------------

absl::Status EncodeOpenAiEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    std::string target, WireRequest* out) {
  JsonHeaders(out);
  out->target = std::move(target);
  if (model == request.model) {
    out->body = SerializeEmbeddingsRequest(request);
  } else {
    EmbeddingsRequest copy = request;
    copy.model = std::string(model);
    out->body = SerializeEmbeddingsRequest(copy);
  }
  return absl::OkStatus();
}

absl::StatusOr<EmbeddingsResponse> DecodeOpenAiEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request) {
  MODEENVOY_ASSIGN_OR_RETURN(EmbeddingsResponse r, ParseEmbeddingsResponse(body));
  if (r.data.size() != request.input_count()) {
    return CountMismatch("data", request.input_count(), r.data.size());
  }
  return r;
}

// ---- gemini -----------------------------------------------------------------------------

absl::Status EncodeGeminiEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out) {
  constexpr std::string_view kProvider = "gemini";
  if (StartsWith(model, "models/")) model.remove_prefix(7);
  if (model.empty() || model.find_first_of("/?#:% \t\r\n") != std::string_view::npos) {
    return InvalidFieldError("model", absl::StrCat("\"", ToAbsl(model),
                                                   "\" is not a gemini model name"));
  }
  MODEENVOY_RETURN_IF_ERROR(RequireTextInput(request, kProvider));
  MODEENVOY_RETURN_IF_ERROR(RejectUser(request, kProvider));
  std::vector<std::string> consumed;
  std::string unused;
  MODEENVOY_RETURN_IF_ERROR(
      SplitExtra(request, kProvider, {"task_type"}, &consumed, {}, &unused));
  JsonHeaders(out);
  out->target = absl::StrCat("/models/", ToAbsl(model), ":batchEmbedContents");
  std::string& b = out->body;
  b.clear();
  size_t reserve = 32;
  for (const std::string& t : request.texts) reserve += t.size() + model.size() + 96;
  b.reserve(reserve);
  b.append("{\"requests\":[");
  for (size_t i = 0; i < request.texts.size(); ++i) {
    if (i != 0) b.push_back(',');
    b.append("{\"model\":");
    AppendJsonString(&b, absl::StrCat("models/", ToAbsl(model)));
    b.append(",\"content\":{\"parts\":[{\"text\":");
    AppendJsonString(&b, request.texts[i]);
    b.append("}]}");
    if (!consumed[0].empty()) {
      b.append(",\"taskType\":");
      AppendJsonString(&b, consumed[0]);
    }
    if (request.dimensions.has_value()) {
      b.append(",\"outputDimensionality\":");
      AppendJsonInt(&b, *request.dimensions);
    }
    b.push_back('}');
  }
  b.append("]}");
  return absl::OkStatus();
}

absl::StatusOr<EmbeddingsResponse> DecodeGeminiEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model) {
  std::vector<std::vector<float>> vectors;
  bool has = false;
  MODEENVOY_RETURN_IF_ERROR(WalkObject(
      body, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
        if (key != "embeddings") return w.Skip();
        has = true;
        return w.Array(path, [&](int64_t i) {
          const std::string at = IndexPath(path, i);
          bool has_values = false;
          MODEENVOY_RETURN_IF_ERROR(
              w.Object(at, [&](std::string_view k, std::string_view p) -> absl::Status {
                if (k != "values") return w.Skip();
                has_values = true;
                return w.Floats(p, &vectors.emplace_back());
              }));
          if (!has_values) return InvalidFieldError(absl::StrCat(at, ".values"), "is required");
          return absl::OkStatus();
        });
      }));
  if (!has) return InvalidFieldError("embeddings", "is required");
  if (vectors.size() != request.input_count()) {
    return CountMismatch("embeddings", request.input_count(), vectors.size());
  }
  if (StartsWith(model, "models/")) model.remove_prefix(7);
  return FromVectors(std::move(vectors), model);  // Gemini reports no token count
}

// ---- bedrock ------------------------------------------------------------------------------

absl::Status EncodeBedrockEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                     WireRequest* out) {
  constexpr std::string_view kProvider = "bedrock";
  if (model.empty()) return InvalidFieldError("model", "is required");
  MODEENVOY_RETURN_IF_ERROR(RequireTextInput(request, kProvider));
  MODEENVOY_RETURN_IF_ERROR(RejectUser(request, kProvider));
  const std::string_view base = BedrockBaseModel(model);
  std::string& b = out->body;
  b.clear();
  if (StartsWith(base, "amazon.titan-embed")) {
    MODEENVOY_RETURN_IF_ERROR(RejectExtra(request, "bedrock titan"));
    if (request.texts.size() != 1) {
      return InvalidFieldError(
          "input", absl::StrCat(ToAbsl(base), " embeds one text per call (InvokeModel takes "
                                              "one inputText); send one input, got ",
                                request.texts.size()));
    }
    const bool v2 = StartsWith(base, "amazon.titan-embed-text-v2");
    if (request.dimensions.has_value()) {
      if (!v2) {
        return InvalidFieldError("dimensions", absl::StrCat("not supported by ", ToAbsl(base),
                                                            " (fixed size)"));
      }
      const int64_t d = *request.dimensions;
      if (d != 256 && d != 512 && d != 1024) {
        return InvalidFieldError("dimensions", absl::StrCat("must be 256, 512 or 1024 for ",
                                                            ToAbsl(base), ", got ", d));
      }
    }
    b.reserve(request.texts[0].size() + 48);
    b.append("{\"inputText\":");
    AppendJsonString(&b, request.texts[0]);
    if (request.dimensions.has_value()) {
      b.append(",\"dimensions\":");
      AppendJsonInt(&b, *request.dimensions);
    }
    b.push_back('}');
  } else if (StartsWith(base, "cohere.embed")) {
    std::vector<std::string> consumed;
    std::string passed;
    MODEENVOY_RETURN_IF_ERROR(SplitExtra(request, "bedrock cohere", {"input_type"}, &consumed,
                                         {"truncate"}, &passed));
    if (request.dimensions.has_value() && !StartsWith(base, "cohere.embed-v4")) {
      return InvalidFieldError("dimensions", absl::StrCat("not supported by ", ToAbsl(base),
                                                          " (fixed size)"));
    }
    size_t reserve = 96 + passed.size();
    for (const std::string& t : request.texts) reserve += t.size() + 4;
    b.reserve(reserve);
    b.append("{\"texts\":");
    AppendTexts(&b, request.texts);
    b.append(",\"input_type\":");
    AppendJsonString(&b, consumed[0].empty() ? std::string_view("search_document")
                                             : std::string_view(consumed[0]));
    if (request.dimensions.has_value()) {
      b.append(",\"output_dimension\":");
      AppendJsonInt(&b, *request.dimensions);
    }
    b.append(passed);
    b.push_back('}');
  } else {
    return InvalidFieldError(
        "model", absl::StrCat("bedrock embeddings serve amazon.titan-embed-* and "
                              "cohere.embed-* models, not \"",
                              ToAbsl(model), "\""));
  }
  JsonHeaders(out);
  out->target = absl::StrCat("/model/", EncodePathSegment(model), "/invoke");
  return absl::OkStatus();
}

absl::StatusOr<EmbeddingsResponse> DecodeBedrockEmbeddings(std::string_view body,
                                                           const EmbeddingsRequest& request,
                                                           std::string_view model) {
  const std::string_view base = BedrockBaseModel(model);
  std::vector<std::vector<float>> vectors;
  std::optional<int64_t> tokens;
  if (StartsWith(base, "amazon.titan-embed")) {
    bool has = false;
    MODEENVOY_RETURN_IF_ERROR(WalkObject(
        body, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
          if (key == "embedding") {
            has = true;
            return w.Floats(path, &vectors.emplace_back());
          }
          if (key == "inputTextTokenCount") return w.Int(path, &tokens.emplace());
          return w.Skip();  // embeddingsByType repeats the vector
        }));
    if (!has) return InvalidFieldError("embedding", "is required");
  } else {
    // Cohere on Bedrock: "embeddings" is [[...]] (response_type "embeddings_floats") or
    // {"float": [[...]]} ("embeddings_by_type", when embedding_types was sent).
    bool has = false;
    MODEENVOY_RETURN_IF_ERROR(WalkObject(
        body, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
          if (key != "embeddings") return w.Skip();
          has = true;
          JsonType t;
          MODEENVOY_RETURN_IF_ERROR(w.Peek(&t));
          if (t == JsonType::kArray) return ReadVectorList(w, path, &vectors);
          return w.Object(path, [&](std::string_view k, std::string_view p) {
            return k == "float" ? ReadVectorList(w, p, &vectors) : w.Skip();
          });
        }));
    if (!has) return InvalidFieldError("embeddings", "is required");
  }
  if (vectors.size() != request.input_count()) {
    return CountMismatch("embeddings", request.input_count(), vectors.size());
  }
  EmbeddingsResponse r = FromVectors(std::move(vectors), model);
  if (tokens.has_value()) SetUsage(&r, *tokens);
  return r;
}

// ---- cohere -------------------------------------------------------------------------------

absl::Status EncodeCohereEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out) {
  constexpr std::string_view kProvider = "cohere";
  if (model.empty()) return InvalidFieldError("model", "is required");
  MODEENVOY_RETURN_IF_ERROR(RequireTextInput(request, kProvider));
  MODEENVOY_RETURN_IF_ERROR(RejectUser(request, kProvider));
  std::vector<std::string> consumed;
  std::string passed;
  MODEENVOY_RETURN_IF_ERROR(
      SplitExtra(request, kProvider, {"input_type"}, &consumed, {"truncate"}, &passed));
  JsonHeaders(out);
  out->target = "/v2/embed";
  std::string& b = out->body;
  b.clear();
  size_t reserve = 128 + model.size() + passed.size();
  for (const std::string& t : request.texts) reserve += t.size() + 4;
  b.reserve(reserve);
  b.append("{\"model\":");
  AppendJsonString(&b, model);
  b.append(",\"texts\":");
  AppendTexts(&b, request.texts);
  b.append(",\"input_type\":");
  AppendJsonString(&b, consumed[0].empty() ? std::string_view("search_document")
                                           : std::string_view(consumed[0]));
  b.append(",\"embedding_types\":[\"float\"]");
  if (request.dimensions.has_value()) {
    b.append(",\"output_dimension\":");
    AppendJsonInt(&b, *request.dimensions);
  }
  b.append(passed);
  b.push_back('}');
  return absl::OkStatus();
}

absl::StatusOr<EmbeddingsResponse> DecodeCohereEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model) {
  std::vector<std::vector<float>> vectors;
  std::optional<int64_t> tokens;
  bool has_float = false;
  MODEENVOY_RETURN_IF_ERROR(WalkObject(
      body, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
        if (key == "embeddings") {
          return w.Object(path, [&](std::string_view k, std::string_view p) -> absl::Status {
            if (k != "float") return w.Skip();
            has_float = true;
            return ReadVectorList(w, p, &vectors);
          });
        }
        if (key == "meta") {
          return w.Object(path, [&](std::string_view k, std::string_view p) -> absl::Status {
            if (k != "billed_units") return w.Skip();
            return w.Object(p, [&](std::string_view u, std::string_view up) -> absl::Status {
              if (u != "input_tokens") return w.Skip();
              // Cohere writes billed units as numbers that may carry a fraction (10.0).
              return w.Int(up, &tokens.emplace());
            });
          });
        }
        return w.Skip();
      }));
  if (!has_float) return InvalidFieldError("embeddings.float", "is required");
  if (vectors.size() != request.input_count()) {
    return CountMismatch("embeddings.float", request.input_count(), vectors.size());
  }
  EmbeddingsResponse r = FromVectors(std::move(vectors), model);
  if (tokens.has_value()) SetUsage(&r, *tokens);
  return r;
}

// ---- ollama -------------------------------------------------------------------------------

absl::Status EncodeOllamaEmbeddings(const EmbeddingsRequest& request, std::string_view model,
                                    WireRequest* out) {
  constexpr std::string_view kProvider = "ollama";
  if (model.empty()) return InvalidFieldError("model", "is required");
  MODEENVOY_RETURN_IF_ERROR(RequireTextInput(request, kProvider));
  MODEENVOY_RETURN_IF_ERROR(RejectUser(request, kProvider));
  std::vector<std::string> consumed;
  std::string passed;
  MODEENVOY_RETURN_IF_ERROR(SplitExtra(request, kProvider, {}, &consumed,
                                       {"truncate", "keep_alive", "options"}, &passed));
  JsonHeaders(out);
  out->target = "/api/embed";
  std::string& b = out->body;
  b.clear();
  size_t reserve = 64 + model.size() + passed.size();
  for (const std::string& t : request.texts) reserve += t.size() + 4;
  b.reserve(reserve);
  b.append("{\"model\":");
  AppendJsonString(&b, model);
  b.append(",\"input\":");
  if (request.input_kind == EmbeddingInputKind::kText) {
    AppendJsonString(&b, request.texts[0]);
  } else {
    AppendTexts(&b, request.texts);
  }
  if (request.dimensions.has_value()) {
    b.append(",\"dimensions\":");
    AppendJsonInt(&b, *request.dimensions);
  }
  b.append(passed);
  b.push_back('}');
  return absl::OkStatus();
}

absl::StatusOr<EmbeddingsResponse> DecodeOllamaEmbeddings(std::string_view body,
                                                          const EmbeddingsRequest& request,
                                                          std::string_view model) {
  std::vector<std::vector<float>> vectors;
  std::optional<int64_t> tokens;
  std::string reported_model;
  bool has = false;
  MODEENVOY_RETURN_IF_ERROR(WalkObject(
      body, [&](JsonWalk& w, std::string_view key, std::string_view path) -> absl::Status {
        if (key == "embeddings") {
          has = true;
          return ReadVectorList(w, path, &vectors);
        }
        if (key == "prompt_eval_count") return w.Int(path, &tokens.emplace());
        if (key == "model") return w.String(path, &reported_model);
        return w.Skip();
      }));
  if (!has) return InvalidFieldError("embeddings", "is required");
  if (vectors.size() != request.input_count()) {
    return CountMismatch("embeddings", request.input_count(), vectors.size());
  }
  EmbeddingsResponse r =
      FromVectors(std::move(vectors), reported_model.empty() ? model : reported_model);
  if (tokens.has_value()) SetUsage(&r, *tokens);
  return r;
}

}  // namespace modeenvoy::protocol_internal
