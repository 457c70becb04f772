// lib/anthropic_ingress/codec.cc: AnthropicMessagesCodec, the Messages API as an IngressCodec.
// Parsing, rendering and error bodies are the "anthropic" dialect's ingress side (the same
// code the emulator and modeenvoy.translate_* use); this file adapts it to the engine: the
// whole body in place, and the dialect's stream bytes read back as events (SseParser).
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

// Unified events ("chat.completion.chunk" data, then "[DONE]") -> Anthropic's events.
class MessagesStreamRenderer final : public StreamTranslator {
 public:
  explicit MessagesStreamRenderer(std::unique_ptr<StreamEncoder> encoder)
      : encoder_(std::move(encoder)) {}

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    bytes_.clear();
    if (frame.data == kSseDoneData) {
      done_ = true;
      absl::Status s = encoder_->Finish(&bytes_);
      MODEENVOY_RETURN_IF_ERROR(events_.Feed(bytes_, out));
      return s;
    }
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(frame.data);
    if (!chunk.ok()) return chunk.status();
    absl::Status s = encoder_->Encode(*chunk, &bytes_);
    MODEENVOY_RETURN_IF_ERROR(events_.Feed(bytes_, out));
    return s;
  }

  // A unified stream always ends with "[DONE]"; one that did not ended in an error, which
  // the engine reports as the stream's error event instead of a clean message_stop.
  absl::Status Finish(std::vector<SseEvent>* /*out*/) override { return absl::OkStatus(); }

 private:
  std::unique_ptr<StreamEncoder> encoder_;
  std::string bytes_;
  // Cuts the encoder's bytes ("event: X\ndata: Y\n\n" per event) back into events; they
  // are this process's own, so no event size bound applies (a Responses
  // response.completed event carries the whole answer).
  SseParser events_{SseParserOptions{.max_event_bytes = std::numeric_limits<size_t>::max()}};
  bool done_ = false;
};

class MessagesCodec final : public IngressCodec {
 public:
  explicit MessagesCodec(std::unique_ptr<Dialect> dialect) : dialect_(std::move(dialect)) {}

  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const override {
    WireRequest wire;
    wire.method = request.method;
    wire.target = request.path;
    wire.body = request.body;
    absl::StatusOr<ChatRequest> chat = dialect_->DecodeRequest(wire);
    // Anthropic's message_delta always reports usage: ask every provider for it (OpenAI
    // and the compatible ones report it in a stream only when asked).
    if (chat.ok() && chat->stream.value_or(false) && !chat->stream_options.has_value()) {
      chat->stream_options.emplace().include_usage = true;
    }
    return chat;
  }

  absl::Status RenderResponse(std::string* body) const override {
    absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(*body);
    if (!completion.ok()) return completion.status();
    absl::StatusOr<std::string> rendered = dialect_->EncodeResponse(*completion);
    if (!rendered.ok()) return rendered.status();
    *body = std::move(*rendered);
    return absl::OkStatus();
  }

  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override {
    return std::make_unique<MessagesStreamRenderer>(dialect_->NewStreamEncoder());
  }

  std::string ErrorBody(const absl::Status& status) const override {
    return dialect_->EncodeErrorBody(status);
  }

  // An "anthropic" provider gets the client's body as it is (cache_control, betas and
  // members the unified model does not know survive).
  std::string_view native_dialect() const override { return dialect_->name(); }

  SseEvent StreamErrorEvent(const absl::Status& status) const override {
    SseEvent e;
    e.event = "error";
    e.data = dialect_->EncodeErrorBody(status);
    return e;
  }

 private:
  std::unique_ptr<Dialect> dialect_;
};

}  // namespace

std::shared_ptr<const IngressCodec> AnthropicMessagesCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec = [] {
    absl::StatusOr<std::unique_ptr<Dialect>> dialect = NewDialect("anthropic");
    // The built-in dialect with default options cannot fail; a broken build would.
    return new std::shared_ptr<const IngressCodec>(
        std::make_shared<MessagesCodec>(std::move(dialect).value()));
  }();
  return *codec;
}

}  // namespace modeenvoy
