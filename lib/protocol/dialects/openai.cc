// lib/protocol/dialects/openai.cc: the "openai" dialect: OpenAI Chat Completions, which is
// also the unified form, and every OpenAI-compatible server (Mistral, vLLM, Ollama's /v1,
// TGI, DeepSeek, Groq, xAI, OpenRouter). Requests and answers pass through unchanged:
// fields the gateway does not know reach the server untouched.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

// True when an event's data is an error object ({"error": ...}), which OpenAI-compatible
// servers send mid-stream (OpenAI itself, vLLM, OpenRouter).
bool IsErrorEvent(std::string_view data) {
  size_t i = 0;
  while (i < data.size() && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n')) ++i;
  if (i == data.size() || data[i] != '{') return false;
  ++i;
  while (i < data.size() && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n')) ++i;
  return data.substr(i).starts_with("\"error\"");
}

// Frames of an OpenAI stream are already unified events; an error event is the
// provider's error.
class PassThroughDecoder final : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (IsErrorEvent(frame.data)) return StatusFromUpstreamError(200, frame.data);
    SseEvent event;
    event.event = std::move(frame.event);
    event.data = std::move(frame.data);
    out->push_back(std::move(event));
    return absl::OkStatus();
  }
  absl::Status Finish(std::vector<SseEvent>* /*out*/) override { return absl::OkStatus(); }
};

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
  std::string_view name() const override { return "openai"; }
  std::string_view default_base_url() const override { return "https://api.openai.com/v1"; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    out->method = "POST";
    out->target = "/chat/completions";
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
    if (call.model.empty() || call.model == chat.model) {
      out->body = SerializeChatRequest(chat);
    } else {
      ChatRequest copy = chat;
      copy.model = std::string(call.model);
      out->body = SerializeChatRequest(copy);
    }
    return absl::OkStatus();
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status DecodeResponse(std::string* /*body*/) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<PassThroughDecoder>();
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
};

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewOpenAiDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({}));
  return std::make_unique<OpenAiDialect>();
}

}  // namespace modeenvoy::protocol_internal
