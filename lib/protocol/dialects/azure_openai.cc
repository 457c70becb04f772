// lib/protocol/dialects/azure_openai.cc: the "azure_openai" dialect: Azure OpenAI (Azure AI
// Foundry) Chat Completions. The body is OpenAI's (openai_compat.h); what differs is the
// URL (a deployment and an api-version, or the v1 API), the key header ("api-key", or a
// bearer token from Entra ID) and the extras Azure adds (prompt_filter_results,
// content_filter_results), which pass through.
//   options: {"deployment": "gpt-4o-prod",   // default: the call's model name
//             "api_version": "2024-10-21",   // default kDefaultApiVersion
//             "auth": "api-key" | "bearer",  // default "api-key"
//             "api_style": "deployments" | "v1",
//             "stream_usage": true}
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/embeddings.h"
#include "lib/protocol/dialects/openai_compat.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

// The latest GA data-plane version of the deployments API.
constexpr std::string_view kDefaultApiVersion = "2024-10-21";
constexpr std::string_view kDeploymentsPrefix = "/openai/deployments/";
constexpr std::string_view kV1Path = "/openai/v1/chat/completions";

struct AzureOptions {
  std::string deployment;  // empty: the call's model
  std::string api_version;
  bool bearer = false;
  bool v1 = false;
  bool stream_usage = true;
};

// Percent-encodes what is not unreserved (RFC 3986) in a path segment or query value.
void AppendEscaped(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out->push_back(c);
    } else {
      out->push_back('%');
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    }
  }
}

class SseEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    out->append(EncodeSseEvent(SerializeChatCompletionChunk(chunk)));
    return absl::OkStatus();
  }
  void EncodeError(const absl::Status& error, std::string* out) override {
    out->append(EncodeSseEvent(OpenAiErrorBody(error)));
  }
  absl::Status Finish(std::string* out) override {
    out->append(kSseDoneEvent);
    return absl::OkStatus();
  }
};

// The value of query parameter `name` in `target`, if present.
std::optional<std::string_view> QueryParam(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

class AzureOpenAiDialect final : public Dialect {
 public:
  explicit AzureOpenAiDialect(AzureOptions options) : options_(std::move(options)) {}

  std::string_view name() const override { return "azure_openai"; }
  // Every resource has its own endpoint (https://{resource}.openai.azure.com).
  std::string_view default_base_url() const override { return {}; }
  ApiKeyHeader api_key_header() const override {
    if (options_.bearer) return {};
    return {.name = "api-key", .prefix = ""};
  }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    out->method = "POST";
    if (options_.v1) {
      out->target = kV1Path;
      if (!options_.api_version.empty()) {
        out->target += "?api-version=";
        AppendEscaped(&out->target, options_.api_version);
      }
    } else {
      std::string_view deployment = options_.deployment;
      if (deployment.empty()) deployment = call.model.empty() ? chat.model : call.model;
      if (deployment.empty()) return InvalidFieldError("model", "is required (the deployment)");
      out->target = kDeploymentsPrefix;
      AppendEscaped(&out->target, deployment);
      out->target += "/chat/completions?api-version=";
      AppendEscaped(&out->target, options_.api_version);
    }
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
    MODEENVOY_ASSIGN_OR_RETURN(out->body,
                               OpenAiRequestBody(chat, call.model, call.stream,
                                                 options_.stream_usage, call.stream_usage));
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  // Azure's body is OpenAI's plus prompt_filter_results / content_filter_results (kept).
  absl::Status DecodeResponse(std::string* body) const override {
    return DecodeOpenAiResponse(body);
  }
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return NewOpenAiStreamDecoder();
  }

  // Embeddings: OpenAI's body to the deployment's /embeddings (or the v1 API's).
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    std::string target;
    if (options_.v1) {
      target = "/openai/v1/embeddings";
      if (!options_.api_version.empty()) {
        target += "?api-version=";
        AppendEscaped(&target, options_.api_version);
      }
    } else {
      std::string_view deployment = options_.deployment;
      if (deployment.empty()) deployment = EmbeddingsModel(request, call);
      if (deployment.empty()) return InvalidFieldError("model", "is required (the deployment)");
      target = kDeploymentsPrefix;
      AppendEscaped(&target, deployment);
      target += "/embeddings?api-version=";
      AppendEscaped(&target, options_.api_version);
    }
    return EncodeOpenAiEmbeddings(request, EmbeddingsModel(request, call), std::move(target),
                                  out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& /*call*/) const override {
    return DecodeOpenAiEmbeddings(body, request);
  }

  // Ingress: the deployment comes from the path (it names the model when the body has
  // none); api-version is required on the deployments API, as Azure requires it.
  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override {
    std::string_view target = request.target;
    std::string_view path = target.substr(0, target.find('?'));
    std::string deployment;
    if (path.substr(0, kDeploymentsPrefix.size()) == kDeploymentsPrefix) {
      std::string_view rest = path.substr(kDeploymentsPrefix.size());
      size_t slash = rest.find('/');
      if (slash == std::string_view::npos || rest.substr(slash) != "/chat/completions") {
        return WithHttpStatus(absl::NotFoundError("Resource not found"), 404);
      }
      deployment = std::string(rest.substr(0, slash));
      std::optional<std::string_view> version = QueryParam(target, "api-version");
      if (!version.has_value() || version->empty()) {
        return WithHttpStatus(absl::NotFoundError("Resource not found"), 404);
      }
    } else if (path != kV1Path) {
      return WithHttpStatus(absl::NotFoundError("Resource not found"), 404);
    }
    MODEENVOY_ASSIGN_OR_RETURN(ChatRequest chat,
                               ParseChatRequest(request.body, {.validate = false}));
    if (chat.model.empty()) chat.model = deployment;
    MODEENVOY_RETURN_IF_ERROR(ValidateChatRequest(chat));
    return chat;
  }
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override {
    return SerializeChatCompletion(completion);
  }
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<SseEncoder>();
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    return OpenAiErrorBody(status);
  }

 private:
  const AzureOptions options_;
};

absl::StatusOr<std::string> OneOf(const core_internal::ObjectReader& r, std::string_view key,
                                  std::string_view fallback,
                                  std::initializer_list<std::string_view> allowed) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> value, r.OptionalString(key));
  if (!value.has_value()) return std::string(fallback);
  for (std::string_view a : allowed) {
    if (*value == a) return *value;
  }
  std::string list;
  for (std::string_view a : allowed) {
    if (!list.empty()) list += ", ";
    list += "\"" + std::string(a) + "\"";
  }
  return InvalidFieldError(r.PathOf(key), "must be one of " + list);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewAzureOpenAiDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader r,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(
      r.RejectUnknown({"deployment", "api_version", "auth", "api_style", "stream_usage"}));
  AzureOptions options;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> deployment,
                             r.OptionalString("deployment"));
  if (deployment.has_value()) options.deployment = std::move(*deployment);
  // Compared in place: moving these short strings out of the StatusOr trips GCC 12's
  // -Wmaybe-uninitialized (a false positive on the small-string buffer).
  absl::StatusOr<std::string> auth = OneOf(r, "auth", "api-key", {"api-key", "bearer"});
  if (!auth.ok()) return auth.status();
  options.bearer = *auth == "bearer";
  absl::StatusOr<std::string> style = OneOf(r, "api_style", "deployments", {"deployments", "v1"});
  if (!style.ok()) return style.status();
  options.v1 = *style == "v1";
  if (options.v1 && !options.deployment.empty()) {
    return InvalidFieldError("deployment", "does not apply to api_style \"v1\" (the model "
                                           "names the deployment in the body)");
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> version, r.OptionalString("api_version"));
  if (version.has_value()) {
    options.api_version = std::move(*version);
  } else if (!options.v1) {
    options.api_version = std::string(kDefaultApiVersion);
  }
  if (const core_internal::Json* v = r.Find("stream_usage")) {
    if (!v->is_boolean()) return InvalidFieldError(r.PathOf("stream_usage"), "must be a boolean");
    options.stream_usage = v->get<bool>();
  }
  return std::make_unique<AzureOpenAiDialect>(std::move(options));
}

}  // namespace modeenvoy::protocol_internal
