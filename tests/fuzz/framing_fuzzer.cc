// tests/fuzz/framing_fuzzer.cc: the stream frame parsers (SSE, NDJSON, AWS EventStream,
// JSON array) on arbitrary bytes. The first input byte picks the framing (byte % 4: SSE,
// NDJSON, EventStream, JSON array) and a split seed; the rest is the stream.
// scripts/run_fuzzers.sh seeds the corpus with Kong's recorded Bedrock EventStream bytes
// behind a first byte of 2 or 6, and with tests/fuzz/corpus/framing_fuzzer/. Checks: no
// crash or sanitizer report; the frames do not depend on how the stream is split (whole vs
// pieces of seeded random sizes); an error is reported the same way in both runs; no frame
// exceeds the configured bound; a JSON array frame is one bracketed element (opens with '{'
// or '[' and closes with the matching bracket).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <vector>

#include "modeenvoy/protocol/framing.h"

namespace {

constexpr size_t kMaxFrame = 256;
// Recorded EventStream messages run to ~300 bytes; a larger bound lets the seeds parse.
constexpr size_t kMaxEventStreamMessage = 1024;

size_t MaxFrame(modeenvoy::Framing framing) {
  return framing == modeenvoy::Framing::kEventStream ? kMaxEventStreamMessage : kMaxFrame;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

struct Run {
  std::vector<modeenvoy::StreamFrame> frames;
  bool failed = false;
};

Run Parse(modeenvoy::Framing framing, std::string_view data, uint32_t seed) {
  auto parser = modeenvoy::NewFrameParser(framing, {.max_frame_bytes = MaxFrame(framing)});
  Check(parser.ok());
  Run run;
  uint32_t state = seed | 1;
  while (!data.empty() && !run.failed) {
    size_t n = data.size();
    if (seed != 0) {  // xorshift: piece sizes 1..16
      state ^= state << 13;
      state ^= state >> 17;
      state ^= state << 5;
      n = std::min<size_t>(data.size(), 1 + state % 16);
    }
    run.failed = !(*parser)->Feed(data.substr(0, n), &run.frames).ok();
    data.remove_prefix(n);
  }
  if (!run.failed) run.failed = !(*parser)->Finish(&run.frames).ok();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  constexpr modeenvoy::Framing kFramings[] = {
      modeenvoy::Framing::kSse, modeenvoy::Framing::kNdjson, modeenvoy::Framing::kEventStream,
      modeenvoy::Framing::kJsonArray};
  const modeenvoy::Framing framing = kFramings[data[0] % 4];
  const uint32_t seed = 1 + data[0] / 4;
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  Run whole = Parse(framing, stream, 0);
  Run split = Parse(framing, stream, seed);
  Check(whole.failed == split.failed);
  if (!whole.failed) Check(whole.frames == split.frames);
  for (const auto& f : whole.frames) {
    Check(f.data.size() + f.event.size() <= MaxFrame(framing));
    if (framing == modeenvoy::Framing::kJsonArray) {
      Check(f.event.empty() && f.data.size() >= 2);
      Check((f.data.front() == '{' && f.data.back() == '}') ||
            (f.data.front() == '[' && f.data.back() == ']'));
    }
  }
  return 0;
}
