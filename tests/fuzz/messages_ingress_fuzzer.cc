// tests/fuzz/messages_ingress_fuzzer.cc: libFuzzer target for the Anthropic Messages ingress
// (POST /v1/messages, modeenvoy/ingress/anthropic.h): what a client controls.
//   build-fuzz/tests/fuzz/messages_ingress_fuzzer -max_total_time=60
// Checks, for any input:
//  - the one-pass reader of Messages bodies either gives up or reads the request the
//    checked reader reads (lib/protocol/dialects/anthropic_request.h);
//  - ParseRequest never crashes; a request it returns serializes and parses back as a
//    unified request, and re-encodes for an Anthropic provider without crashing;
//  - the native pass-through splice (EncodeNativeRequest) never crashes, and when it
//    succeeds the body differs from the input only in the model value;
//  - the input as a unified response body, when it parses, renders without crashing, and
//    as unified stream events (one per line) renders without crashing;
//  - an error body for any message is valid JSON of Anthropic's shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lib/core/json_pull.h"
#include "lib/protocol/dialects/anthropic_request.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/http.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/sse.h"

namespace {

const modeenvoy::Dialect& Anthropic() {
  static const auto* d = modeenvoy::NewDialect("anthropic")->release();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const modeenvoy::IngressCodec& codec = *modeenvoy::AnthropicMessagesCodec();

  modeenvoy::ChatRequest one_pass;
  if (modeenvoy::protocol_internal::DecodeMessagesRequestOnePass(input, &one_pass)) {
    absl::StatusOr<modeenvoy::ChatRequest> checked =
        modeenvoy::protocol_internal::DecodeMessagesRequestChecked(input);
    if (!checked.ok() || !(*checked == one_pass)) std::abort();
  }

  modeenvoy::HttpRequest request;
  request.method = "POST";
  request.path = "/v1/messages";
  request.body = input;
  absl::StatusOr<modeenvoy::ChatRequest> chat = codec.ParseRequest(request);
  if (chat.ok()) {
    if (!modeenvoy::ParseChatRequest(modeenvoy::SerializeChatRequest(*chat)).ok()) std::abort();
    modeenvoy::WireRequest wire;
    (void)Anthropic().EncodeRequest(*chat, {.stream = chat->stream.value_or(false)}, &wire);
  }

  modeenvoy::WireRequest native;
  constexpr std::string_view kModel = "fuzz-model";
  if (Anthropic().EncodeNativeRequest(input, {.model = kModel}, &native).ok()) {
    // Only the model value may differ: the input and the output share a prefix and a suffix
    // that cover everything but it.
    size_t prefix = 0;
    while (prefix < input.size() && prefix < native.body.size() &&
           input[prefix] == native.body[prefix]) {
      ++prefix;
    }
    size_t suffix = 0;
    while (suffix < input.size() - prefix && suffix < native.body.size() - prefix &&
           input[input.size() - 1 - suffix] == native.body[native.body.size() - 1 - suffix]) {
      ++suffix;
    }
    if (native.body.size() - prefix - suffix > kModel.size() + 2) std::abort();
  }

  std::string body = input;
  if (modeenvoy::ParseChatCompletion(body).ok()) (void)codec.RenderResponse(&body);

  std::unique_ptr<modeenvoy::StreamTranslator> renderer = codec.NewStreamRenderer();
  std::vector<modeenvoy::SseEvent> events;
  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    if (end > start) {
      modeenvoy::StreamFrame frame;
      frame.data = input.substr(start, end - start);
      if (!renderer->Translate(std::move(frame), &events).ok()) break;
    }
    start = end + 1;
  }
  (void)renderer->Finish(&events);

  std::string error = codec.ErrorBody(absl::InvalidArgumentError(input));
  modeenvoy::core_internal::JsonReader reader(error, 64);
  if (!reader.SkipValue() || !reader.ExpectEnd()) std::abort();
  return 0;
}
