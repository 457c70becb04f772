// tests/fuzz/chat_request_fuzzer.cc: libFuzzer target for the chat model parser.
//   build/tests/fuzz/chat_request_fuzzer -max_total_time=60 -dict=... corpus/
// Checks, for any input:
//  - ParseChatRequest / ParseChatCompletion / ParseChatCompletionChunk never crash;
//  - when a parse succeeds, Serialize -> Parse succeeds, gives an equal struct, and
//    serializing again gives the same bytes; ValidateChatRequest never crashes;
//  - the private JSON reader accepts exactly what nlohmann accepts, except where the two
//    knowingly differ (unpaired \u surrogate escapes, nesting beyond kMaxJsonDepth, NUL
//    bytes, which nlohmann reads as the end of input);
//  - the SSE parser gives the same events whatever the split of the input;
//  - StatusFromUpstreamError + OpenAiErrorBody always give valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"

namespace {

using namespace modeenvoy;  // NOLINT

#define FUZZ_CHECK(cond)                                                  \
  do {                                                                    \
    if (!(cond)) {                                                        \
      __builtin_fprintf(stderr, "check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                       \
    }                                                                     \
  } while (0)

template <typename T, typename ParseFn, typename SerializeFn>
void CheckRoundTrip(std::string_view input, ParseFn parse, SerializeFn serialize) {
  absl::StatusOr<T> first = parse(input);
  if (!first.ok()) {
    FUZZ_CHECK(first.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(ErrorParam(first.status()).has_value());
    return;
  }
  const std::string wire = serialize(*first);
  FUZZ_CHECK(nlohmann::json::accept(wire) || wire.find("\\ud") != std::string::npos ||
             wire.find("\\uD") != std::string::npos);
  absl::StatusOr<T> second = parse(wire);
  FUZZ_CHECK(second.ok());
  FUZZ_CHECK(*first == *second);
  FUZZ_CHECK(serialize(*second) == wire);
}

// True if `s` holds a \u escape of a UTF-16 surrogate (which nlohmann rejects when
// unpaired, and we decode to U+FFFD).
bool HasSurrogateEscape(std::string_view s) {
  for (size_t i = 0; i + 3 < s.size(); ++i) {
    if (s[i] == '\\' && s[i + 1] == 'u' && (s[i + 2] == 'd' || s[i + 2] == 'D')) {
      const char c = s[i + 3];
      if ((c >= '8' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
        return true;
      }
    }
  }
  return false;
}

void CheckJsonReader(std::string_view input) {
  protocol_internal::JsonReader reader(input, kMaxJsonDepth);
  std::string compact;
  const bool ours = reader.CaptureValue(&compact) && reader.ExpectEnd();
  const bool theirs = nlohmann::json::accept(input.begin(), input.end());
  if (ours != theirs) {
    const bool too_deep =
        !ours && reader.status().message().find("nesting deeper") != absl::string_view::npos;
    // nlohmann's lexer takes a NUL byte for the end of the input.
    const bool has_nul = input.find('\0') != std::string_view::npos;
    FUZZ_CHECK(too_deep || has_nul || HasSurrogateEscape(input));
  }
  if (ours && theirs) {
    // Compaction keeps the value.
    FUZZ_CHECK(nlohmann::json::parse(compact) == nlohmann::json::parse(input.begin(), input.end()));
  }
}

void CheckSse(std::string_view input) {
  if (input.empty()) return;
  std::vector<SseEvent> whole;
  {
    SseParser parser;
    FUZZ_CHECK(parser.Feed(input, &whole).ok());
    FUZZ_CHECK(parser.Finish(&whole).ok());
  }
  std::vector<SseEvent> pieces;
  SseParser parser;
  const size_t step = 1 + static_cast<unsigned char>(input[0]) % 7;
  for (size_t pos = 0; pos < input.size(); pos += step) {
    FUZZ_CHECK(parser.Feed(input.substr(pos, step), &pieces).ok());
  }
  FUZZ_CHECK(parser.Finish(&pieces).ok());
  FUZZ_CHECK(whole == pieces);
  for (const SseEvent& e : whole) {
    // Re-encoding an event and parsing it gives the event back (ids/events from the
    // input cannot hold line breaks).
    std::vector<SseEvent> again;
    SseParser p;
    FUZZ_CHECK(p.Feed(EncodeSseEvent(e), &again).ok());
    FUZZ_CHECK(again.size() == 1 && again[0] == e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  CheckRoundTrip<ChatRequest>(
      input, [](std::string_view s) { return ParseChatRequest(s, {.validate = false}); },
      [](const ChatRequest& r) { return SerializeChatRequest(r); });
  absl::StatusOr<ChatRequest> validated = ParseChatRequest(input);
  if (validated.ok()) FUZZ_CHECK(ValidateChatRequest(*validated).ok());
  if (absl::StatusOr<ChatRequest> r = ParseChatRequest(input, {.validate = false}); r.ok()) {
    (void)ValidateChatRequest(*r);
  }

  CheckRoundTrip<ChatCompletion>(
      input, [](std::string_view s) { return ParseChatCompletion(s); },
      [](const ChatCompletion& c) { return SerializeChatCompletion(c); });
  CheckRoundTrip<ChatCompletionChunk>(
      input, [](std::string_view s) { return ParseChatCompletionChunk(s); },
      [](const ChatCompletionChunk& c) { return SerializeChatCompletionChunk(c); });

  CheckJsonReader(input);
  CheckSse(input);

  const absl::Status upstream = StatusFromUpstreamError(400 + (size % 200), input);
  FUZZ_CHECK(!upstream.ok());
  FUZZ_CHECK(nlohmann::json::accept(OpenAiErrorBody(upstream)));
  return 0;
}
