// lib/responses_ingress/codec.cc: OpenAiResponsesCodec, the Responses API as an IngressCodec.
// Parsing, rendering and error bodies are the "openai_responses" dialect's ingress side (the
// same code the emulator and modeenvoy.translate_* use); this file adapts it to the engine:
// one codec per request (ForRequest) that echoes the request's fields in every response
// object it renders (echo.cc), the dialect's stream bytes read back as events (SseParser),
// and the hosted-tool check per attempt.
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/core/json_pull.h"
#include "lib/responses_ingress/internal.h"
#include "lib/responses_ingress/request_fields.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "modeenvoy/status.h"

namespace modeenvoy {
namespace {

using core_internal::Json;

using responses_internal::Echo;
using responses_internal::EchoCollector;
using responses_internal::EchoOf;
using responses_internal::PatchEcho;

// The response events that carry the whole response object.
bool CarriesResponse(std::string_view event) {
  return event == "response.created" || event == "response.in_progress" ||
         event == "response.completed" || event == "response.incomplete" ||
         event == "response.failed";
}

// Cuts the stream encoder's bytes ("event: X\ndata: Y\n\n" per event) back into events.
// They are this process's own, so no event size bound applies (a response.completed event
// carries the whole answer), and the parser cannot fail.
SseParser EncodedEventParser() {
  return SseParser(SseParserOptions{.max_event_bytes = std::numeric_limits<size_t>::max()});
}

// `status` in the client's terms: the unified request's max_completion_tokens is the
// client's max_output_tokens (the dialect reads it there), so an error naming it (a
// provider's minimum refused before the call, a provider's own 400) names max_output_tokens.
absl::Status InClientTerms(const absl::Status& status) {
  constexpr std::string_view kUnified = "max_completion_tokens";
  constexpr std::string_view kClient = "max_output_tokens";
  const std::optional<std::string> param = ErrorParam(status);
  if (!param.has_value() || *param != kUnified) return status;
  std::string message(status.message());
  if (message.compare(0, kUnified.size() + 1, "max_completion_tokens:") == 0) {
    message.replace(0, kUnified.size(), kClient);
  }
  // FieldError attaches the path where ErrorParam reads it; the other payloads (HTTP
  // status, error code, ...) are the original's.
  absl::Status renamed(status.code(), message);
  FieldError(status.code(), kClient, "-")
      .ForEachPayload([&](absl::string_view key, const absl::Cord& value) {
        renamed.SetPayload(key, value);
      });
  status.ForEachPayload([&](absl::string_view key, const absl::Cord& value) {
    if (!renamed.GetPayload(key).has_value()) renamed.SetPayload(key, value);
  });
  return renamed;
}

// The echo the last ParseRequest on this thread collected while it read the body, for the
// ForRequest the engine calls right after it with the same request (gateway.cc): the echo
// then costs no second pass over the body. Keyed by the whole body, a copy compared byte
// for byte (the copy ParseRequest hands the dialect), so a ForRequest with any other body
// takes EchoOf's pass. Bodies above kParsedEchoMaxBody are not kept: the thread would hold
// that much.
struct ParsedEcho {
  std::string body;
  Echo echo;
  bool set = false;
};
constexpr size_t kParsedEchoMaxBody = 64 << 10;

ParsedEcho& LastParsedEcho() {
  thread_local ParsedEcho parsed;
  return parsed;
}

// What one request's codec and its stream renderer share: the echoed values and the
// encoder of the stream in progress (for the response.failed event).
struct RequestState {
  Echo echo;  // ForRequest's EchoOf; all empty (nothing echoed) for the unbound codec
  std::unique_ptr<StreamEncoder> encoder;
};

// Unified events ("chat.completion.chunk" data, then "[DONE]") -> the Responses events.
class ResponsesStreamRenderer final : public StreamTranslator {
 public:
  explicit ResponsesStreamRenderer(std::shared_ptr<RequestState> state)
      : state_(std::move(state)) {}

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    bytes_.clear();
    absl::Status s;
    if (frame.data == kSseDoneData) {
      done_ = true;
      s = state_->encoder->Finish(&bytes_);
    } else {
      absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(frame.data);
      if (!chunk.ok()) return chunk.status();
      s = state_->encoder->Encode(*chunk, &bytes_);
    }
    const size_t first = out->size();
    MODEENVOY_RETURN_IF_ERROR(events_.Feed(bytes_, out));
    for (size_t i = first; i < out->size(); ++i) {
      SseEvent& e = (*out)[i];
      if (CarriesResponse(e.event)) {
        MODEENVOY_RETURN_IF_ERROR(PatchEcho(state_->echo, /*in_event=*/true, &e.data));
      }
    }
    return s;
  }

  // A unified stream always ends with "[DONE]"; one that did not ended in an error, which
  // the engine reports as the stream's error event (response.failed).
  absl::Status Finish(std::vector<SseEvent>* /*out*/) override { return absl::OkStatus(); }

 private:
  std::shared_ptr<RequestState> state_;
  std::string bytes_;
  SseParser events_ = EncodedEventParser();
  bool done_ = false;
};

class ResponsesCodec final : public IngressCodec {
 public:
  ResponsesCodec(std::shared_ptr<const Dialect> dialect, std::shared_ptr<RequestState> state)
      : dialect_(std::move(dialect)), state_(std::move(state)) {}

  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const override {
    ParsedEcho& parsed = LastParsedEcho();
    parsed.set = false;
    WireRequest wire;
    wire.method = request.method;
    wire.target = request.path;
    wire.body.swap(parsed.body);  // the copy goes to the thread's buffer: no allocation
    wire.body.assign(request.body);
    // The dialect reports the body's members as it reads them: the echo (ForRequest) is
    // collected in the same read.
    EchoCollector echo;
    auto add = [&echo](std::string_view name, std::string_view text) { echo.Add(name, text); };
    const core_internal::BodyMemberObserver observer(add);
    // Installed until this call returns; nothing after the decode reads a Responses body.
    const core_internal::ScopedBodyMemberObserver scope(&observer);
    MODEENVOY_ASSIGN_OR_RETURN(ChatRequest chat, dialect_->DecodeRequest(wire));
    // include, client_metadata, stream_options, ...: OpenAI-only hints (request_fields.h).
    MODEENVOY_RETURN_IF_ERROR(responses_ingress_internal::TakeResponsesOnlyFields(&chat));
    // `store`, `metadata` (tags of the response object, echoed by ForRequest's codec) and
    // `previous_response_id` are the gateway's, never a provider's.
    // The endpoint's state filter (state.cc) reads `store` and `previous_response_id` from
    // the body; they are checked here and taken out of the unified request.
    chat.store.reset();
    chat.metadata.reset();
    for (auto it = chat.extra.begin(); it != chat.extra.end(); ++it) {
      if (it->first != "previous_response_id") continue;
      if (it->second != "null" && (it->second.empty() || it->second.front() != '"')) {
        return InvalidFieldError("previous_response_id", "must be a string");
      }
      chat.extra.erase(it);
      break;
    }
    // The final response object always reports usage: ask every provider for it (OpenAI
    // and the compatible ones report it in a stream only when asked).
    if (chat.stream.value_or(false) && !chat.stream_options.has_value()) {
      chat.stream_options.emplace().include_usage = true;
    }
    if (wire.body.size() <= kParsedEchoMaxBody) {
      parsed.body = std::move(wire.body);
      parsed.echo = echo.Take();
      parsed.set = true;
    }
    return chat;
  }

  std::shared_ptr<const IngressCodec> ForRequest(const HttpRequest& request,
                                                 const ChatRequest& /*chat*/) const override {
    auto state = std::make_shared<RequestState>();
    ParsedEcho& parsed = LastParsedEcho();
    if (parsed.set && parsed.body == request.body) {
      state->echo = std::move(parsed.echo);
    } else {
      // ParseRequest read this body already (a JSON object).
      state->echo = EchoOf(request.body);
    }
    parsed.set = false;
    return std::make_shared<ResponsesCodec>(dialect_, std::move(state));
  }

  absl::Status CheckAttempt(const ChatRequest& chat,
                            std::string_view provider_type) const override {
    MODEENVOY_RETURN_IF_ERROR(
        responses_ingress_internal::CheckResponsesOnlyFields(chat, provider_type));
    if (provider_type == "openai_responses") {
      return absl::OkStatus();  // OpenAI's Responses API runs its hosted tools
    }
    // openai and azure_openai speak Chat Completions, which has no hosted tools (OpenAI
    // refuses them there): the same 400 as for any other provider, with the way out.
    const bool chat_completions = provider_type == "openai" || provider_type == "azure_openai";
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const std::string& type = chat.tools[i].type;
      if (type == "function" || type == "custom") continue;
      return WithHttpStatus(
          InvalidFieldError(
              absl::StrCat("tools[", i, "].type"),
              absl::StrCat("the hosted tool \"", type,
                           "\" runs only in OpenAI's Responses API; this request's provider "
                           "is of type \"",
                           std::string(provider_type),
                           chat_completions
                               ? "\", which speaks Chat Completions (route the model to a "
                                 "provider of type \"openai_responses\", or declare a "
                                 "function tool instead)"
                               : "\" (declare a function tool instead)")),
          400);
    }
    return absl::OkStatus();
  }

  absl::Status RenderResponse(std::string* body) const override {
    absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(*body);
    if (!completion.ok()) return completion.status();
    absl::StatusOr<std::string> rendered = dialect_->EncodeResponse(*completion);
    if (!rendered.ok()) return rendered.status();
    *body = std::move(*rendered);
    if (state_ == nullptr) return absl::OkStatus();
    return PatchEcho(state_->echo, /*in_event=*/false, body);
  }

  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override {
    std::shared_ptr<RequestState> state = state_;
    if (state == nullptr) state = std::make_shared<RequestState>();  // not bound: no echo
    state->encoder = dialect_->NewStreamEncoder();
    return std::make_unique<ResponsesStreamRenderer>(std::move(state));
  }

  std::string ErrorBody(const absl::Status& status) const override {
    return dialect_->EncodeErrorBody(InClientTerms(status));
  }

  // The stream's last event: response.failed with the response so far and the error.
  SseEvent StreamErrorEvent(const absl::Status& status) const override {
    std::vector<SseEvent> events = StreamErrorEvents(status, RequestContext());
    return events.empty() ? SseEvent() : std::move(events.back());
  }

  // response.failed with the response so far and the error. A stream that failed before
  // its first chunk has no response yet (no chunk brought the gateway's id to the
  // encoder): the encoder opens it first with the gateway's id (the state filter's, in the
  // request's metadata), the time it failed and the client's model, so the client gets
  // response.created, response.in_progress and response.failed, numbered from 0, as from
  // a stream that fails later.
  std::vector<SseEvent> StreamErrorEvents(const absl::Status& status,
                                          const RequestContext& ctx) const override {
    std::unique_ptr<StreamEncoder> fresh;
    StreamEncoder* encoder = state_ != nullptr ? state_->encoder.get() : nullptr;
    if (encoder == nullptr) {
      fresh = dialect_->NewStreamEncoder();
      encoder = fresh.get();
    }
    std::string bytes;
    ChatCompletionChunk open;  // no choices: an encoder already started writes nothing
    if (auto it = ctx.metadata.find(std::string(responses_internal::kResponseIdKey));
        it != ctx.metadata.end()) {
      open.id = it->second;
    }
    if (ctx.clock != nullptr) open.created = absl::ToUnixSeconds(ctx.clock->Now());
    if (ctx.chat != nullptr) open.model = ctx.chat->model;
    encoder->Encode(open, &bytes).IgnoreError();  // a chunk without choices cannot fail
    encoder->EncodeError(status, &bytes);
    std::vector<SseEvent> events;
    EncodedEventParser().Feed(bytes, &events).IgnoreError();  // unbounded: cannot fail
    if (state_ != nullptr) {
      for (SseEvent& e : events) {
        if (CarriesResponse(e.event)) {
          PatchEcho(state_->echo, /*in_event=*/true, &e.data).IgnoreError();
        }
      }
    }
    return events;
  }

 private:
  std::shared_ptr<const Dialect> dialect_;
  std::shared_ptr<RequestState> state_;  // null for the shared, unbound codec
};

const Dialect& ResponsesDialect() {
  static const Dialect* const dialect = NewDialect("openai_responses").value().release();
  return *dialect;
}

}  // namespace

namespace responses_internal {

absl::StatusOr<std::string> RenderStoredResponse(std::string_view completion_json,
                                                 std::string_view echo_json) {
  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(completion_json);
  absl::StatusOr<Echo> echo = EchoFromJson(echo_json);
  if (!completion.ok() || !echo.ok()) {
    return absl::DataLossError("stored response: the record does not parse");
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::string body, ResponsesDialect().EncodeResponse(*completion));
  MODEENVOY_RETURN_IF_ERROR(PatchEcho(*echo, /*in_event=*/false, &body));
  return body;
}

absl::StatusOr<Json> InputItems(const std::vector<Message>& messages,
                                std::string_view response_id) {
  ChatRequest chat;
  chat.model = "m";
  chat.messages = messages;
  WireRequest wire;
  MODEENVOY_RETURN_IF_ERROR(ResponsesDialect().EncodeRequest(chat, DialectCall{}, &wire));
  Json body = Json::parse(wire.body, nullptr, /*allow_exceptions=*/false);
  Json items = body.is_object() && body.contains("input") ? body["input"] : Json::array();
  std::string_view base = response_id;
  if (base.substr(0, 5) == "resp_") base.remove_prefix(5);
  for (size_t i = 0; i < items.size(); ++i) {
    Json& item = items[i];
    if (!item.contains("type")) item["type"] = "message";
    const std::string type = item["type"].is_string() ? item["type"].get<std::string>() : "";
    std::string prefix = "item";
    if (type == "message") {
      prefix = "msg";
      const bool assistant = item.value("role", "") == "assistant";
      if (item.contains("content") && item["content"].is_string()) {
        item["content"] = Json::array({{{"type", assistant ? "output_text" : "input_text"},
                                        {"text", item["content"].get<std::string>()}}});
      }
      if (assistant) {
        for (Json& part : item["content"]) {
          if (part.value("type", "") == "output_text" && !part.contains("annotations")) {
            part["annotations"] = Json::array();
          }
        }
      }
      item["status"] = "completed";
    } else if (type == "function_call") {
      prefix = "fc";
      item["status"] = "completed";
    } else if (type == "function_call_output") {
      prefix = "fco";
      item["status"] = "completed";
    }
    if (!item.contains("id")) {
      std::string id = prefix;
      id += '_';
      id += base;
      id += "_in";
      id += std::to_string(i);
      item["id"] = std::move(id);
    }
  }
  return items;
}

}  // namespace responses_internal

std::shared_ptr<const IngressCodec> OpenAiResponsesCodec() {
  static const std::shared_ptr<const IngressCodec>* const codec = [] {
    absl::StatusOr<std::unique_ptr<Dialect>> dialect = NewDialect("openai_responses");
    // The built-in dialect with default options cannot fail; a broken build would.
    return new std::shared_ptr<const IngressCodec>(std::make_shared<ResponsesCodec>(
        std::shared_ptr<const Dialect>(std::move(dialect).value()), nullptr));
  }();
  return *codec;
}

}  // namespace modeenvoy
