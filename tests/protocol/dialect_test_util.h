// tests/protocol/dialect_test_util.h: drive a dialect's stream decoder over raw upstream
// bytes split in different ways, for the "any chunking gives identical output" checks every
// dialect's tests make.
#ifndef MODEENVOY_TESTS_PROTOCOL_DIALECT_TEST_UTIL_H_
#define MODEENVOY_TESTS_PROTOCOL_DIALECT_TEST_UTIL_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_test {

enum class Split { kWhole, kByteByByte, kRandom };

// What a decoded stream produced: every unified event's data (in order), and the status
// that ended it (OK, or the first error of the frame parser or the decoder).
struct DecodedStream {
  std::vector<std::string> events;
  absl::Status status;
};

// Feeds `bytes` through the dialect's framing and stream decoder, cut per `split`
// (kRandom: pieces of 1..64 bytes from a generator seeded with `seed`).
inline DecodedStream DecodeStream(const Dialect& dialect, std::string_view bytes, Split split,
                                  uint32_t seed = 1) {
  DecodedStream result;
  absl::StatusOr<std::unique_ptr<FrameParser>> parser =
      NewFrameParser(dialect.ResponseFraming(/*stream=*/true));
  if (!parser.ok()) {
    result.status = parser.status();
    return result;
  }
  std::unique_ptr<StreamTranslator> decoder = dialect.NewStreamDecoder();
  std::vector<SseEvent> events;
  auto take = [&](std::vector<StreamFrame>& frames) -> absl::Status {
    for (StreamFrame& frame : frames) {
      absl::Status s = decoder->Translate(std::move(frame), &events);
      if (!s.ok()) return s;
    }
    frames.clear();
    return absl::OkStatus();
  };
  std::mt19937 random(seed);
  std::vector<StreamFrame> frames;
  size_t at = 0;
  while (at < bytes.size() && result.status.ok()) {
    size_t n = bytes.size() - at;
    if (split == Split::kByteByByte) n = 1;
    if (split == Split::kRandom) {
      n = std::min<size_t>(n, std::uniform_int_distribution<size_t>(1, 64)(random));
    }
    result.status = (*parser)->Feed(bytes.substr(at, n), &frames);
    if (result.status.ok()) result.status = take(frames);
    at += n;
  }
  if (result.status.ok()) result.status = (*parser)->Finish(&frames);
  if (result.status.ok()) result.status = take(frames);
  if (result.status.ok()) result.status = decoder->Finish(&events);
  for (const SseEvent& e : events) result.events.push_back(e.data);
  return result;
}

// "data: <line>\n\n" for each line; with `with_event_type`, an "event: <type>" line first,
// <type> being the line's "type" member (Anthropic's and the Responses API's framing).
// (The "type" member is found textually: the first "type":"..." in the line.)
inline std::string SseBodyFromChunkLines(const std::vector<std::string>& lines,
                                         bool with_event_type) {
  std::string body;
  for (const std::string& line : lines) {
    if (with_event_type) {
      constexpr std::string_view kKey = "\"type\":\"";
      size_t at = line.find(kKey);
      if (at != std::string::npos) {
        size_t begin = at + kKey.size();
        size_t end = line.find('"', begin);
        body += "event: " + line.substr(begin, end - begin) + "\n";
      }
    }
    body += "data: " + line + "\n\n";
  }
  return body;
}

// What StreamTranslator::KeepsUsagePromise() claims, checked over `bytes` fed whole (one
// Translate call per frame, then Finish): the decoder says it keeps the promise, and every
// event with a usage is a usage-only chunk ("choices":[]) followed by "[DONE]" in the
// output of the same call. `broken` says what broke it (empty: kept); `usage_chunks`
// counts the usage chunks seen.
struct UsagePromiseCheck {
  std::string broken;
  int usage_chunks = 0;
};
inline UsagePromiseCheck CheckUsagePromise(const Dialect& dialect, std::string_view bytes) {
  UsagePromiseCheck check;
  absl::StatusOr<std::unique_ptr<FrameParser>> parser =
      NewFrameParser(dialect.ResponseFraming(/*stream=*/true));
  if (!parser.ok()) return {std::string(parser.status().message())};
  std::unique_ptr<StreamTranslator> decoder = dialect.NewStreamDecoder();
  if (!decoder->KeepsUsagePromise()) return {"KeepsUsagePromise() is false"};
  std::vector<StreamFrame> frames;
  absl::Status s = (*parser)->Feed(bytes, &frames);
  if (s.ok()) s = (*parser)->Finish(&frames);
  if (!s.ok()) return {std::string(s.message())};
  for (size_t call = 0; call <= frames.size() && check.broken.empty(); ++call) {
    std::vector<SseEvent> out;
    s = call < frames.size() ? decoder->Translate(std::move(frames[call]), &out)
                             : decoder->Finish(&out);
    if (!s.ok()) return {std::string(s.message())};
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].data == kSseDoneData) continue;
      absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(out[i].data);
      if (!chunk.ok()) {
        check.broken = "not a chunk: " + out[i].data;
      } else if (chunk->usage.has_value()) {
        ++check.usage_chunks;
        if (!chunk->choices.empty()) check.broken = "usage on a chunk with choices: " + out[i].data;
        if (i + 1 == out.size() || out[i + 1].data != kSseDoneData) {
          check.broken = "usage not followed by [DONE] in its call: " + out[i].data;
        }
      }
    }
  }
  return check;
}

}  // namespace modeenvoy::protocol_test

#endif  // MODEENVOY_TESTS_PROTOCOL_DIALECT_TEST_UTIL_H_
