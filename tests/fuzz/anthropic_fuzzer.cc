// tests/fuzz/anthropic_fuzzer.cc: libFuzzer target for the "anthropic" dialect's readers of
// provider bytes (what an upstream, honest or not, controls).
//   build/tests/fuzz/anthropic_fuzzer -max_total_time=60
// Checks, for any input:
//  - DecodeResponse never crashes, and when it succeeds its output parses as a
//    chat.completion;
//  - the input read as an SSE stream (each line one event's data, with its "type" as the
//    event name) gives the same events and status whole and byte by byte, and every event
//    but "[DONE]" parses as a chat.completion.chunk;
//  - DecodeRequest never crashes, and a request it returns re-encodes without crashing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "tests/protocol/dialect_test_util.h"

namespace {

const modeenvoy::Dialect& Anthropic() {
  static const auto* d = modeenvoy::NewDialect("anthropic")->release();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using modeenvoy::protocol_test::DecodeStream;
  using modeenvoy::protocol_test::Split;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const modeenvoy::Dialect& d = Anthropic();

  std::string body = input;
  if (d.DecodeResponse(&body).ok() && !modeenvoy::ParseChatCompletion(body).ok()) std::abort();

  std::vector<std::string> lines;
  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string::npos) end = input.size();
    if (end > start) lines.push_back(input.substr(start, end - start));
    start = end + 1;
  }
  const std::string sse = modeenvoy::protocol_test::SseBodyFromChunkLines(lines, true);
  auto whole = DecodeStream(d, sse, Split::kWhole);
  auto bytes = DecodeStream(d, sse, Split::kByteByByte);
  if (whole.events != bytes.events || whole.status != bytes.status) std::abort();
  for (const std::string& e : whole.events) {
    if (e != "[DONE]" && !modeenvoy::ParseChatCompletionChunk(e).ok()) std::abort();
  }

  modeenvoy::WireRequest request;
  request.target = "/v1/messages";
  request.body = input;
  auto chat = d.DecodeRequest(request);
  if (chat.ok()) {
    modeenvoy::WireRequest wire;
    (void)d.EncodeRequest(*chat, {}, &wire);
  }
  return 0;
}
