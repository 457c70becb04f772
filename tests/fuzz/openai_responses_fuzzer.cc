// tests/fuzz/openai_responses_fuzzer.cc: libFuzzer target for the "openai_responses" dialect:
// its Responses request parser (what a client controls) and its readers of a Responses
// upstream's bytes (what a provider controls).
//   build/tests/fuzz/openai_responses_fuzzer -max_total_time=60
// Checks, for any input:
//  - DecodeRequest never crashes; a request it returns encodes back as a Responses request
//    that it reads again (the round trip keeps the messages);
//  - for a request DecodeRequest accepts, the Responses ingress's echo (EchoOf, which passes
//    over the members it does not keep by quotes and brackets alone) captures what a
//    validating read of the same members does, and so does the echo the codec's
//    ParseRequest collects from the members DecodeRequest reports (EchoCollector);
//  - DecodeResponse never crashes, and when it succeeds its output parses as a
//    chat.completion;
//  - the input read as an SSE stream (each line one event's data, with its "type" as the
//    event name) gives the same events and status whole and byte by byte, and every event
//    but "[DONE]" parses as a chat.completion.chunk.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/core/json_pull.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "tests/protocol/dialect_test_util.h"

namespace {

// The echo of an accepted request body, read with the validating reader: each echoed
// member's compact text, or its default when absent or null.
modeenvoy::responses_internal::Echo CheckedEcho(std::string_view body) {
  using modeenvoy::responses_internal::kEchoed;
  using modeenvoy::responses_internal::kEchoedCount;
  modeenvoy::responses_internal::Echo echo;
  modeenvoy::core_internal::JsonReader r(body, modeenvoy::kMaxJsonDepth);
  if (!r.BeginObject()) std::abort();  // the dialect accepted it: an object
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    size_t i = 0;
    while (i < kEchoedCount && kEchoed[i].first != key) ++i;
    if (i == kEchoedCount) {
      if (!r.SkipValue()) std::abort();
      continue;
    }
    std::string value;
    if (!r.CaptureValue(&value)) std::abort();
    if (value != "null") echo[i] = std::move(value);
  }
  for (size_t i = 0; i < kEchoedCount; ++i) {
    if (echo[i].empty()) echo[i] = std::string(kEchoed[i].second);
  }
  return echo;
}

const modeenvoy::Dialect& Responses() {
  static const auto* d = modeenvoy::NewDialect("openai_responses")->release();
  return *d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using modeenvoy::protocol_test::DecodeStream;
  using modeenvoy::protocol_test::Split;
  const std::string input(reinterpret_cast<const char*>(data), size);
  const modeenvoy::Dialect& d = Responses();

  modeenvoy::WireRequest request;
  request.target = "/v1/responses";
  request.body = input;
  modeenvoy::responses_internal::EchoCollector collector;
  auto add = [&collector](std::string_view name, std::string_view text) {
    collector.Add(name, text);
  };
  const modeenvoy::core_internal::BodyMemberObserver observer(add);
  absl::StatusOr<modeenvoy::ChatRequest> chat;
  {
    const modeenvoy::core_internal::ScopedBodyMemberObserver scope(&observer);
    chat = d.DecodeRequest(request);
  }
  if (chat.ok()) {
    const modeenvoy::responses_internal::Echo checked = CheckedEcho(input);
    if (modeenvoy::responses_internal::EchoOf(input) != checked) std::abort();
    if (collector.Take() != checked) std::abort();
    modeenvoy::WireRequest wire;
    if (d.EncodeRequest(*chat, {}, &wire).ok()) {
      modeenvoy::WireRequest again;
      again.body = wire.body;
      auto reread = d.DecodeRequest(again);
      if (!reread.ok() || reread->messages != chat->messages) std::abort();
    }
  }

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
  return 0;
}
