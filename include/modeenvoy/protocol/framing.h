// include/modeenvoy/protocol/framing.h: how a provider frames a response body, and one
// incremental parser per framing, so the engine never guesses from content-type.
//   auto parser = modeenvoy::NewFrameParser(modeenvoy::Framing::kNdjson);
//   std::vector<modeenvoy::StreamFrame> frames;
//   for (std::string_view read : network_reads) {            // any split, even mid-line
//     if (absl::Status s = (*parser)->Feed(read, &frames); !s.ok()) return s;
//   }
//   if (absl::Status s = (*parser)->Finish(&frames); !s.ok()) return s;
#ifndef MODEENVOY_PROTOCOL_FRAMING_H_
#define MODEENVOY_PROTOCOL_FRAMING_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

enum class Framing {
  kJson,    // one whole JSON document (non-streaming responses)
  kSse,     // text/event-stream (OpenAI, Anthropic, Gemini with alt=sse, ...)
  kNdjson,  // one JSON document per line (Ollama's native /api/chat)
  // One JSON array whose elements arrive over time (Gemini's streamGenerateContent without
  // alt=sse: "[{...}\n,\r\n{...}]", pretty-printed, split anywhere). Each element, an object
  // or an array, is one frame: its JSON text, byte-exact, without the separators. The
  // parser checks the array's structure (brackets, commas, strings); the tokens inside an
  // element are left to whoever parses the frame. A scalar element, a missing '[' or a
  // body ending before the closing ']' is kInvalidArgument.
  kJsonArray,
};

// "json", "sse", "ndjson", "json_array".
MODEENVOY_EXPORT std::string_view FramingName(Framing framing);

// One frame of a streamed body, whatever its framing.
struct StreamFrame {
  std::string event;  // SSE "event" field; empty for NDJSON and for SSE events without one
  std::string data;   // SSE data (lines joined by "\n"); one NDJSON line without its newline
  bool operator==(const StreamFrame&) const = default;
};

struct FrameParserOptions {
  // Upper bound on one frame's bytes, so a peer that never ends a frame cannot exhaust
  // memory. REQUIRES: > 0.
  size_t max_frame_bytes = 8 << 20;
};

// Splits a byte stream into frames. Input may be split at any byte.
// Thread safety: thread-compatible (one stream per parser). Performs no I/O.
class MODEENVOY_EXPORT FrameParser {
 public:
  virtual ~FrameParser() = default;
  // Consumes `bytes`, appending each completed frame to `*frames` (not cleared).
  // Errors: kResourceExhausted when a frame exceeds max_frame_bytes; the parser then stays
  // failed. REQUIRES: frames != nullptr.
  virtual absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) = 0;
  // End of the stream: appends a final unterminated frame if any. Errors: as Feed.
  virtual absl::Status Finish(std::vector<StreamFrame>* frames) = 0;
};

// A parser for a streaming framing. Errors: kInvalidArgument for kJson (not a stream) or
// max_frame_bytes == 0.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<FrameParser>> NewFrameParser(
    Framing framing, const FrameParserOptions& options = {});

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_FRAMING_H_
