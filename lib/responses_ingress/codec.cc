// lib/responses_ingress/codec.cc: OpenAiResponsesCodec, the Responses API as an IngressCodec.
// Parsing, rendering and error bodies are the "openai_responses" dialect's ingress side (the
// same code the emulator and modeenvoy.translate_* use); this file adapts it to the engine:
// one codec per request (ForRequest) that echoes the request's fields in every response
// object it renders, the dialect's stream bytes read back as events (SseParser), and the
// hosted-tool check per attempt.
#include <array>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/json_pull.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/ingress/responses.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "modeenvoy/status.h"

namespace modeenvoy {
namespace {

using core_internal::AppendJsonString;
using core_internal::JsonReader;
using core_internal::JsonType;

// The members of the request a response object repeats, with the value the API reports
// when the request leaves one out.
constexpr std::pair<std::string_view, std::string_view> kEchoed[] = {
    {"instructions", "null"}, {"metadata", "{}"},          {"parallel_tool_calls", "true"},
    {"temperature", "null"},  {"tool_choice", "\"auto\""}, {"tools", "[]"},
    {"top_p", "null"},
};

// The response events that carry the whole response object.
bool CarriesResponse(std::string_view event) {
  return event == "response.created" || event == "response.in_progress" ||
         event == "response.completed" || event == "response.incomplete" ||
         event == "response.failed";
}

constexpr size_t kEchoedCount = sizeof(kEchoed) / sizeof(kEchoed[0]);

// kEchoed's index of `key`, or kEchoedCount.
size_t EchoIndex(std::string_view key) {
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (kEchoed[i].first == key) return i;
  }
  return kEchoedCount;
}

// What one request's codec and its stream renderer share: the echoed values and the
// encoder of the stream in progress (for the response.failed event).
struct RequestState {
  // The compact JSON value of each kEchoed member, in kEchoed's order.
  std::array<std::string, kEchoedCount> echo;
  std::unique_ptr<StreamEncoder> encoder;
};

// Reads an object from `r` and appends it to `out` with the echoed members set: replaced
// where the object has them, appended after its members where not. False when `r` fails.
bool PatchObject(JsonReader& r, const RequestState& state, std::string* out) {
  if (!r.BeginObject()) return false;
  out->push_back('{');
  std::array<bool, kEchoedCount> seen{};
  bool first = true;
  bool wrote = false;
  std::string scratch;
  for (;;) {
    std::string_view key;
    bool has = false;
    if (!r.NextMember(&first, &key, &scratch, &has)) return false;
    if (!has) break;
    if (wrote) out->push_back(',');
    wrote = true;
    AppendJsonString(out, key);
    out->push_back(':');
    const size_t i = EchoIndex(key);
    if (i == kEchoedCount) {
      if (!r.CaptureValue(out)) return false;
      continue;
    }
    if (!r.SkipValue()) return false;
    out->append(state.echo[i]);
    seen[i] = true;
  }
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (seen[i]) continue;
    if (wrote) out->push_back(',');
    wrote = true;
    AppendJsonString(out, kEchoed[i].first);
    out->push_back(':');
    out->append(state.echo[i]);
  }
  out->push_back('}');
  return true;
}

// `data` (a compact JSON object the dialect rendered: a response object, or an event whose
// "response" member is one) with the echoed members set, in one pass of the pull reader.
absl::Status PatchJson(const RequestState& state, bool in_event, std::string* data) {
  JsonReader r(*data, kMaxJsonDepth);
  JsonType type = JsonType::kNull;
  if (!r.Peek(&type) || type != JsonType::kObject) {
    return absl::InternalError("responses: rendered a non-object");
  }
  std::string out;
  out.reserve(data->size() + 128);
  bool ok = true;
  if (!in_event) {
    ok = PatchObject(r, state, &out);
  } else {
    ok = r.BeginObject();
    out.push_back('{');
    bool first = true;
    std::string scratch;
    while (ok) {
      std::string_view key;
      bool has = false;
      ok = r.NextMember(&first, &key, &scratch, &has);
      if (!ok || !has) break;
      if (out.size() > 1) out.push_back(',');
      AppendJsonString(&out, key);
      out.push_back(':');
      JsonType member = JsonType::kNull;
      ok = r.Peek(&member);
      if (!ok) break;
      ok = key == "response" && member == JsonType::kObject ? PatchObject(r, state, &out)
                                                           : r.CaptureValue(&out);
    }
    out.push_back('}');
  }
  if (!ok) {
    return absl::InternalError(absl::StrCat("responses: rendered invalid JSON: ",
                                            r.status().ToString()));
  }
  *data = std::move(out);
  return absl::OkStatus();
}

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
        MODEENVOY_RETURN_IF_ERROR(PatchJson(*state_, /*in_event=*/true, &e.data));
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
  // Cuts the encoder's bytes ("event: X\ndata: Y\n\n" per event) back into events; they
  // are this process's own, so no event size bound applies (a Responses
  // response.completed event carries the whole answer).
  SseParser events_{SseParserOptions{.max_event_bytes = std::numeric_limits<size_t>::max()}};
  bool done_ = false;
};

class ResponsesCodec final : public IngressCodec {
 public:
  ResponsesCodec(std::shared_ptr<const Dialect> dialect, std::shared_ptr<RequestState> state)
      : dialect_(std::move(dialect)), state_(std::move(state)) {}

  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const override {
    WireRequest wire;
    wire.method = request.method;
    wire.target = request.path;
    wire.body = request.body;
    MODEENVOY_ASSIGN_OR_RETURN(ChatRequest chat, dialect_->DecodeRequest(wire));
    // `store`, `metadata` (tags of the response object, echoed by ForRequest's codec) and
    // `previous_response_id` are the gateway's, never a provider's.
    chat.store.reset();
    chat.metadata.reset();
    for (auto it = chat.extra.begin(); it != chat.extra.end(); ++it) {
      if (it->first != "previous_response_id") continue;
      if (it->second != "null") {
        return WithHttpStatus(
            InvalidFieldError("previous_response_id",
                              "this gateway has no response store configured, so it keeps "
                              "no earlier responses to continue"),
            400);
      }
      chat.extra.erase(it);
      break;
    }
    // The final response object always reports usage: ask every provider for it (OpenAI
    // and the compatible ones report it in a stream only when asked).
    if (chat.stream.value_or(false) && !chat.stream_options.has_value()) {
      chat.stream_options.emplace().include_usage = true;
    }
    return chat;
  }

  std::shared_ptr<const IngressCodec> ForRequest(const HttpRequest& request,
                                                 const ChatRequest& /*chat*/) const override {
    auto state = std::make_shared<RequestState>();
    for (size_t i = 0; i < kEchoedCount; ++i) state->echo[i] = kEchoed[i].second;
    // ParseRequest read this body already (a JSON object): only the echoed members'
    // values are captured, the rest skipped.
    JsonReader r(request.body, kMaxJsonDepth);
    bool first = true;
    std::string scratch;
    bool ok = r.BeginObject();
    while (ok) {
      std::string_view key;
      bool has = false;
      ok = r.NextMember(&first, &key, &scratch, &has) && has;
      if (!ok) break;
      const size_t i = EchoIndex(key);
      if (i == kEchoedCount) {
        ok = r.SkipValue();
        continue;
      }
      std::string value;
      ok = r.CaptureValue(&value);
      // An explicit null reports the API's default, except for instructions (null).
      if (ok && value != "null") state->echo[i] = std::move(value);
    }
    return std::make_shared<ResponsesCodec>(dialect_, std::move(state));
  }

  absl::Status CheckAttempt(const ChatRequest& chat,
                            std::string_view provider_type) const override {
    if (provider_type == "openai" || provider_type == "azure_openai" ||
        provider_type == "openai_responses") {
      return absl::OkStatus();  // OpenAI runs its hosted tools (or answers for itself)
    }
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const std::string& type = chat.tools[i].type;
      if (type == "function" || type == "custom") continue;
      return WithHttpStatus(
          InvalidFieldError(absl::StrCat("tools[", i, "].type"),
                            absl::StrCat("the hosted tool \"", type,
                                         "\" runs only at OpenAI; this request's provider "
                                         "is of type \"",
                                         std::string(provider_type),
                                         "\" (declare a function tool instead)")),
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
    return PatchJson(*state_, /*in_event=*/false, body);
  }

  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override {
    std::shared_ptr<RequestState> state = state_;
    if (state == nullptr) state = std::make_shared<RequestState>();  // not bound: no echo
    state->encoder = dialect_->NewStreamEncoder();
    return std::make_unique<ResponsesStreamRenderer>(std::move(state));
  }

  std::string ErrorBody(const absl::Status& status) const override {
    return dialect_->EncodeErrorBody(status);
  }

  // The stream's last event: response.failed with the response so far and the error.
  SseEvent StreamErrorEvent(const absl::Status& status) const override {
    std::unique_ptr<StreamEncoder> fresh;
    StreamEncoder* encoder = state_ != nullptr ? state_->encoder.get() : nullptr;
    if (encoder == nullptr) {
      fresh = dialect_->NewStreamEncoder();
      encoder = fresh.get();
    }
    std::string bytes;
    encoder->EncodeError(status, &bytes);
    std::vector<SseEvent> events;
    SseParser parser(SseParserOptions{.max_event_bytes = std::numeric_limits<size_t>::max()});
    parser.Feed(bytes, &events).IgnoreError();  // unbounded: it cannot fail
    // EncodeError writes response.created first when the stream had not started: the
    // engine sends one event, so the last one (response.failed) is it.
    SseEvent e = events.empty() ? SseEvent() : std::move(events.back());
    if (state_ != nullptr && !e.data.empty()) {
      PatchJson(*state_, /*in_event=*/true, &e.data).IgnoreError();
    }
    return e;
  }

 private:
  std::shared_ptr<const Dialect> dialect_;
  std::shared_ptr<RequestState> state_;  // null for the shared, unbound codec
};

}  // namespace

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
