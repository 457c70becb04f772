// lib/gateway/providers/dialect_provider.cc: the adapter that makes every protocol dialect
// (protocol/dialect.h) a provider type: base URL, API key and configured headers around
// the dialect's sans-I/O translation.
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy::gateway_internal {
namespace {

class DialectProvider final : public ProviderDialect {
 public:
  DialectProvider(const ProviderConfig& config, std::string base_url,
                  std::unique_ptr<const Dialect> dialect)
      : dialect_(std::move(dialect)),
        base_url_(std::move(base_url)),
        headers_(config.headers) {
    if (!config.api_key.empty()) {
      ApiKeyHeader key = dialect_->api_key_header();
      api_key_name_ = std::string(key.name);
      api_key_value_ = std::string(key.prefix) + config.api_key;
    }
  }

  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                            UpstreamRequest* out) const override {
    WireRequest wire;
    MODEENVOY_RETURN_IF_ERROR(dialect_->EncodeRequest(
        chat,
        DialectCall{.stream = call.stream, .model = call.upstream_model,
                    .client_headers = call.client_headers, .stream_usage = call.stream_usage},
        &wire));
    Complete(std::move(wire), out);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> BuildNativeRequest(std::string_view dialect, std::string_view body,
                                          const ProviderCall& call,
                                          UpstreamRequest* out) const override {
    if (dialect.empty() || dialect != dialect_->name()) return false;
    WireRequest wire;
    absl::Status s = dialect_->EncodeNativeRequest(
        body,
        DialectCall{.stream = call.stream, .model = call.upstream_model,
                    .client_headers = call.client_headers, .stream_usage = call.stream_usage},
        &wire);
    if (s.code() == absl::StatusCode::kUnimplemented) return false;
    MODEENVOY_RETURN_IF_ERROR(s);
    Complete(std::move(wire), out);
    return true;
  }

  absl::Status BuildEmbeddingsRequest(const EmbeddingsRequest& request, const ProviderCall& call,
                                      UpstreamRequest* out) const override {
    WireRequest wire;
    MODEENVOY_RETURN_IF_ERROR(dialect_->EncodeEmbeddingsRequest(
        request,
        DialectCall{.model = call.upstream_model, .client_headers = call.client_headers},
        &wire));
    Complete(std::move(wire), out);
    return absl::OkStatus();
  }

  absl::StatusOr<EmbeddingsResponse> TranslateEmbeddingsResponse(
      const EmbeddingsRequest& request, const ProviderCall& call,
      const HttpHeaders& /*headers*/, std::string_view body) const override {
    return dialect_->DecodeEmbeddingsResponse(
        body, request,
        DialectCall{.model = call.upstream_model, .client_headers = call.client_headers});
  }

  size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                   const ProviderCall& call) const override {
    return dialect_->MaxEmbeddingInputsPerCall(
        request,
        DialectCall{.model = call.upstream_model, .client_headers = call.client_headers});
  }

  Framing ResponseFraming(bool stream) const override { return dialect_->ResponseFraming(stream); }

  absl::Status TranslateResponse(std::string* body) const override {
    return dialect_->DecodeResponse(body);
  }

  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return dialect_->NewStreamDecoder();
  }

  absl::Status TranslateError(int http_status, const HttpHeaders& headers,
                              std::string_view body) const override {
    return KeepBackoffHeaders(dialect_->DecodeError(http_status, body), headers);
  }

 private:
  // The dialect's request made absolute: base URL, API key, the entry's headers.
  void Complete(WireRequest wire, UpstreamRequest* out) const {
    out->method = std::move(wire.method);
    out->url.reserve(base_url_.size() + wire.target.size());
    out->url.assign(base_url_).append(wire.target);
    if (out->headers.empty()) {
      out->headers = std::move(wire.headers);
    } else {
      for (auto& header : wire.headers) out->headers.push_back(std::move(header));
    }
    if (!api_key_name_.empty()) out->headers.emplace_back(api_key_name_, api_key_value_);
    for (const auto& [name, value] : headers_) {
      ApplyHeaderMutation({HeaderMutation::Op::kSet, name, value}, &out->headers);
    }
    out->body = std::move(wire.body);
  }

  const std::unique_ptr<const Dialect> dialect_;
  const std::string base_url_;
  const HttpHeaders headers_;
  std::string api_key_name_;
  std::string api_key_value_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildDialectProvider(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& context) {
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Dialect> dialect,
                             NewDialect(context.type, options_json));
  return WrapDialect(common, std::move(dialect));
}

absl::StatusOr<std::unique_ptr<ProviderDialect>> WrapDialect(const ProviderConfig& common,
                                                             std::unique_ptr<Dialect> dialect) {
  std::string base_url = common.base_url;
  if (base_url.empty()) {
    if (dialect->default_base_url().empty()) {
      return InvalidFieldError(
          "base_url", absl::StrFormat("is required (provider type \"%s\" has no public endpoint)",
                                      dialect->name()));
    }
    base_url = std::string(dialect->default_base_url());
  }
  return std::make_unique<DialectProvider>(common, std::move(base_url), std::move(dialect));
}

}  // namespace modeenvoy::gateway_internal
