// include/modeenvoy/protocol/framing.h: how a provider frames a response body, and one
// incremental parser per framing, so the engine never guesses from content-type; plus the
// AWS EventStream message codec (Bedrock's binary stream framing).
//   auto parser = modeenvoy::NewFrameParser(modeenvoy::Framing::kNdjson);
//   std::vector<modeenvoy::StreamFrame> frames;
//   for (std::string_view read : network_reads) {            // any split, even mid-line
//     if (absl::Status s = (*parser)->Feed(read, &frames); !s.ok()) return s;
//   }
//   if (absl::Status s = (*parser)->Finish(&frames); !s.ok()) return s;
#ifndef MODEENVOY_PROTOCOL_FRAMING_H_
#define MODEENVOY_PROTOCOL_FRAMING_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

enum class Framing {
  kJson,    // one whole JSON document (non-streaming responses)
  kSse,     // text/event-stream (OpenAI, Anthropic, Gemini with alt=sse, ...)
  kNdjson,  // one JSON document per line (Ollama's native /api/chat)
  // application/vnd.amazon.eventstream (Bedrock ConverseStream / InvokeModelWithResponseStream):
  // binary messages, each a prelude (total length, headers length, prelude CRC32), typed
  // headers, a payload and a message CRC32. Both CRCs are checked.
  kEventStream,
  // One JSON array whose elements arrive over time (Gemini's streamGenerateContent without
  // alt=sse: "[{...}\n,\r\n{...}]", pretty-printed, split anywhere). Each element, an object
  // or an array, is one frame: its JSON text, byte-exact, without the separators. The
  // parser checks the array's structure (brackets, commas, strings); the tokens inside an
  // element are left to whoever parses the frame. A scalar element, a missing '[' or a
  // body ending before the closing ']' is kInvalidArgument.
  kJsonArray,
};

// "json", "sse", "ndjson", "eventstream", "json_array".
MODEENVOY_EXPORT std::string_view FramingName(Framing framing);

// One frame of a streamed body, whatever its framing.
//
// EventStream messages map by their ":message-type" header (absent means "event"):
//   "event"      event = the ":event-type" header (e.g. "contentBlockDelta"), data = payload.
//   "exception"  event = "exception:" + the ":exception-type" header (e.g.
//                "exception:throttlingException"), data = payload (Bedrock: {"message":...}).
//   "error"      event = "error:" + the ":error-code" header, data = the ":error-message"
//                header (AWS error messages carry no payload).
//   other type   event = "<type>:", data = payload.
// So a consumer recognises a failure by an event containing ':' (event types never do).
struct StreamFrame {
  std::string event;  // SSE "event" field; empty for NDJSON and for SSE events without one
  std::string data;   // SSE data (lines joined by "\n"); one NDJSON line without its newline
  bool operator==(const StreamFrame&) const = default;
};

struct FrameParserOptions {
  // Upper bound on one frame's bytes, so a peer that never ends a frame cannot exhaust
  // memory. For kEventStream it bounds a whole message as declared by its prelude (AWS's own
  // maximum is 16 MiB). REQUIRES: > 0.
  size_t max_frame_bytes = 8 << 20;
};

// Splits a byte stream into frames. Input may be split at any byte.
// Thread safety: thread-compatible (one stream per parser). Performs no I/O.
class MODEENVOY_EXPORT FrameParser {
 public:
  virtual ~FrameParser() = default;
  // Consumes `bytes`, appending each completed frame to `*frames` (not cleared).
  // Errors: kResourceExhausted when a frame exceeds max_frame_bytes; kInvalidArgument for
  // malformed binary framing (kEventStream: a CRC mismatch, naming the prelude or message
  // CRC; a declared length below 16 or inconsistent; a malformed header). After an error the
  // parser stays failed. REQUIRES: frames != nullptr.
  virtual absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) = 0;
  // End of the stream: appends a final unterminated frame if any (text framings).
  // Errors: as Feed; kInvalidArgument for kEventStream when a message is incomplete.
  virtual absl::Status Finish(std::vector<StreamFrame>* frames) = 0;
};

// A parser for a streaming framing. Errors: kInvalidArgument for kJson (not a stream) or
// max_frame_bytes == 0.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<FrameParser>> NewFrameParser(
    Framing framing, const FrameParserOptions& options = {});

// --- AWS EventStream messages ------------------------------------------------------------
// Header value types, numbered as on the wire.
enum class EventStreamHeaderType : uint8_t {
  kBoolTrue = 0,
  kBoolFalse = 1,
  kByte = 2,
  kShort = 3,
  kInt = 4,
  kLong = 5,
  kBytes = 6,
  kString = 7,
  kTimestamp = 8,
  kUuid = 9,
};

struct EventStreamHeader {
  std::string name;
  EventStreamHeaderType type = EventStreamHeaderType::kString;
  // kString/kBytes: the bytes; kBoolTrue/kBoolFalse: "true"/"false"; kByte, kShort, kInt,
  // kLong: signed decimal; kTimestamp: decimal milliseconds since the Unix epoch; kUuid:
  // the 16 raw bytes.
  std::string value;
  bool operator==(const EventStreamHeader&) const = default;
};

struct EventStreamMessage {
  std::vector<EventStreamHeader> headers;  // in wire order
  std::string payload;
  // The value of the first header named `name`, or nullptr. Valid while *this is unchanged.
  const std::string* FindHeader(std::string_view name) const;
};

// Decodes exactly one whole message (`bytes` from its prelude to its message CRC, nothing
// after). Errors: kInvalidArgument for a CRC mismatch (naming which), a total length that
// differs from bytes.size() or is below 16, headers that overrun or have an unknown type;
// kResourceExhausted when the message exceeds `max_message_bytes`.
MODEENVOY_EXPORT absl::StatusOr<EventStreamMessage> DecodeEventStreamMessage(
    std::string_view bytes, size_t max_message_bytes = 16 << 20);

// Encodes one message with string-typed headers (in the given order) and both CRCs, e.g.
// for tests and the emulator: EncodeEventStreamMessage({{":message-type", "event"},
// {":event-type", "messageStart"}, {":content-type", "application/json"}}, payload).
// REQUIRES: each name is 1..255 bytes and each value at most 65535 bytes.
MODEENVOY_EXPORT std::string EncodeEventStreamMessage(
    const std::vector<std::pair<std::string, std::string>>& string_headers,
    std::string_view payload);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_FRAMING_H_
