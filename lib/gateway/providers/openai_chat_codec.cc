// lib/gateway/providers/openai_chat_codec.cc: the OpenAI Chat Completions ingress codec
// (POST /v1/chat/completions). The unified form is this API, so rendering is the identity.
#include <memory>
#include <string>

#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/protocol/chat.h"
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

}  // namespace

std::shared_ptr<const IngressCodec> OpenAiChatCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec =
      new std::shared_ptr<const IngressCodec>(std::make_shared<OpenAiChat>());
  return *codec;
}

}  // namespace modeenvoy
