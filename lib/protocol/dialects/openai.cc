// lib/protocol/dialects/openai.cc: the "openai" dialect: OpenAI Chat Completions, which is
// also the unified form, and every OpenAI-compatible server (Mistral, vLLM, Ollama's /v1,
// TGI, DeepSeek, Groq, xAI, OpenRouter). Requests and answers pass through: fields the
// gateway does not know reach the server untouched. Streamed calls ask for usage
// (stream_options.include_usage, option "stream_usage", default true) and the stream decoder
// irons out the family's quirks (openai_compat.h).
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

class OpenAiDialect final : public Dialect {
 public:
  explicit OpenAiDialect(bool stream_usage) : stream_usage_(stream_usage) {}
  std::string_view name() const override { return "openai"; }
  std::string_view default_base_url() const override { return "https://api.openai.com/v1"; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    out->method = "POST";
    out->target = "/chat/completions";
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
    MODEENVOY_ASSIGN_OR_RETURN(out->body,
                               OpenAiRequestBody(chat, call.model, call.stream, stream_usage_,
                                                 call.stream_usage));
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status DecodeResponse(std::string* body) const override {
    return DecodeOpenAiResponse(body);
  }
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return NewOpenAiStreamDecoder();
  }

  // Embeddings pass through (/embeddings, unknown members and encoding_format included).
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    return EncodeOpenAiEmbeddings(request, EmbeddingsModel(request, call), "/embeddings", out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& /*call*/) const override {
    return DecodeOpenAiEmbeddings(body, request);
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override {
    return ParseChatRequest(request.body);
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
  const bool stream_usage_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewOpenAiDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({"stream_usage"}));
  bool stream_usage = true;
  if (const core_internal::Json* v = options.Find("stream_usage")) {
    if (!v->is_boolean()) return InvalidFieldError(options.PathOf("stream_usage"), "must be a boolean");
    stream_usage = v->get<bool>();
  }
  return std::make_unique<OpenAiDialect>(stream_usage);
}

}  // namespace modeenvoy::protocol_internal
