// lib/gateway/providers/openai_chat_codec.cc: the OpenAI ingress codecs, Chat Completions
// (POST /v1/chat/completions) and embeddings (POST /v1/embeddings). The unified forms are
// these APIs, so rendering is the identity.
#include <memory>
#include <string>

#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {
namespace {

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

class OpenAiEmbeddings final : public IngressCodec {
 public:
  ModelOperation operation() const override { return ModelOperation::kEmbeddings; }
  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& /*request*/) const override {
    return absl::UnimplementedError("the embeddings endpoint takes embeddings requests");
  }
  absl::StatusOr<EmbeddingsRequest> ParseEmbeddingsRequest(
      const HttpRequest& request) const override {
    return modeenvoy::ParseEmbeddingsRequest(request.body);
  }
  absl::Status RenderResponse(std::string* /*body*/) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override { return nullptr; }
  std::string ErrorBody(const absl::Status& status) const override {
    return OpenAiErrorBody(status);
  }
};

}  // namespace

absl::StatusOr<EmbeddingsRequest> IngressCodec::ParseEmbeddingsRequest(
    const HttpRequest& /*request*/) const {
  return absl::UnimplementedError("this endpoint does not take embeddings requests");
}

SseEvent IngressCodec::StreamErrorEvent(const absl::Status& status) const {
  SseEvent e;
  e.data = ErrorBody(status);
  return e;
}

std::vector<SseEvent> IngressCodec::StreamErrorEvents(const absl::Status& status,
                                                     const RequestContext& /*ctx*/) const {
  return {StreamErrorEvent(status)};
}

std::shared_ptr<const IngressCodec> IngressCodec::ForRequest(const HttpRequest& /*request*/,
                                                             const ChatRequest& /*chat*/) const {
  return nullptr;
}

absl::Status IngressCodec::CheckAttempt(const ChatRequest& /*chat*/,
                                        std::string_view /*provider_type*/) const {
  return absl::OkStatus();
}

std::shared_ptr<const IngressCodec> OpenAiEmbeddingsCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec =
      new std::shared_ptr<const IngressCodec>(std::make_shared<OpenAiEmbeddings>());
  return *codec;
}

std::shared_ptr<const IngressCodec> OpenAiChatCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec =
      new std::shared_ptr<const IngressCodec>(std::make_shared<OpenAiChat>());
  return *codec;
}

}  // namespace modeenvoy
