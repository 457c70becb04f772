// lib/gateway/providers/openai.cc: the "openai" provider dialect (OpenAI and every
// OpenAI-compatible server) and the OpenAI Chat Completions ingress codec.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/status_macros.h"
#include "lib/core/json_reader.h"
#include "lib/gateway/providers/providers.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

// Frames of an OpenAI stream are already unified events.
class PassThroughEvents final : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    SseEvent event;
    event.event = std::move(frame.event);
    event.data = std::move(frame.data);
    out->push_back(std::move(event));
    return absl::OkStatus();
  }
  absl::Status Finish(std::vector<SseEvent>* /*out*/) override { return absl::OkStatus(); }
};

class OpenAiDialect final : public ProviderDialect {
 public:
  explicit OpenAiDialect(const ProviderConfig& config)
      : url_(config.base_url + "/chat/completions"),
        authorization_(config.api_key.empty() ? std::string() : "Bearer " + config.api_key),
        headers_(config.headers) {}

  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                            UpstreamRequest* out) const override {
    out->method = "POST";
    out->url = url_;
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
    if (!authorization_.empty()) out->headers.emplace_back("authorization", authorization_);
    for (const auto& [name, value] : headers_) {
      ApplyHeaderMutation({HeaderMutation::Op::kSet, name, value}, &out->headers);
    }
    out->body = SerializeChatRequest(chat);
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }

  absl::Status TranslateResponse(std::string* /*body*/) const override {
    return absl::OkStatus();
  }

  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return std::make_unique<PassThroughEvents>();
  }

 private:
  const std::string url_;
  const std::string authorization_;
  const HttpHeaders headers_;
};

class OpenAiChat final : public IngressCodec {
 public:
  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const override {
    return ParseChatRequest(request.body);
  }
  absl::Status RenderResponse(std::string* /*body*/) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override { return nullptr; }
  std::string ErrorBody(const absl::Status& status) const override {
    return OpenAiErrorBody(status);
  }
};

}  // namespace

std::shared_ptr<const IngressCodec> OpenAiChatCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec =
      new std::shared_ptr<const IngressCodec>(std::make_shared<OpenAiChat>());
  return *codec;
}

namespace gateway_internal {

using core_internal::Json;
using core_internal::ObjectReader;
using core_internal::ParseStrictJson;

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildOpenAiDialect(
    const ProviderConfig& common, std::string_view options_json, const BuildContext& /*ctx*/) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader options, ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({}));
  return std::make_unique<OpenAiDialect>(common);
}

}  // namespace gateway_internal
}  // namespace modeenvoy
