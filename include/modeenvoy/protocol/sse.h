// include/modeenvoy/protocol/sse.h: incremental Server-Sent Events parsing and encoding
// (the WHATWG "text/event-stream" format that streaming LLM APIs use).
//   modeenvoy::SseParser parser;
//   std::vector<modeenvoy::SseEvent> events;
//   for (std::string_view read : network_reads) {       // any split, even mid-line
//     if (absl::Status s = parser.Feed(read, &events); !s.ok()) return s;
//     for (const auto& e : events) {
//       if (e.data == modeenvoy::kSseDoneData) break;   // OpenAI's end marker
//       Handle(e.event, e.data);
//     }
//     events.clear();
//   }
//   if (absl::Status s = parser.Finish(&events); !s.ok()) return s;  // unterminated tail
//
//   out += modeenvoy::EncodeSseEvent(chunk_json);       // "data: {...}\n\n"
//   out += modeenvoy::kSseDoneEvent;                    // "data: [DONE]\n\n"
#ifndef MODEENVOY_PROTOCOL_SSE_H_
#define MODEENVOY_PROTOCOL_SSE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// The data payload with which OpenAI-compatible APIs end a stream.
inline constexpr std::string_view kSseDoneData = "[DONE]";
// That payload as a complete encoded event.
inline constexpr std::string_view kSseDoneEvent = "data: [DONE]\n\n";

// One dispatched event.
struct SseEvent {
  // The "event" field; empty when the event had none (a browser calls that "message").
  std::string event;
  // The "data" fields of the event joined with "\n" (no trailing newline).
  std::string data;
  // The "id" field if this event carried one (an id containing U+0000 is ignored, as the
  // spec says). SseParser::last_event_id() keeps the spec's persistent value.
  std::optional<std::string> id;
  // The "retry" field (milliseconds) if this event carried a valid one (ASCII digits).
  std::optional<int64_t> retry;

  bool operator==(const SseEvent&) const = default;
};

struct SseParserOptions {
  // Upper bound on the bytes of one event (its data, event, id and pending line),
  // protecting memory against a peer that never sends a blank line. REQUIRES: > 0.
  size_t max_event_bytes = 8 << 20;
};

// SseParser turns a byte stream into events, following the WHATWG event-stream
// interpretation: lines end in "\r\n", "\n" or "\r"; a UTF-8 BOM at the very start is
// skipped; lines starting with ':' are comments; "field" without a colon is a field with
// an empty value; one space after the colon is removed; unknown fields are ignored; a
// blank line dispatches the pending event if any "data" field was seen (otherwise it
// only resets "event"). Input may be split at any byte, including inside "\r\n" or the
// BOM. Bytes are not UTF-8 validated; data is passed through as received.
// Thread safety: thread-compatible (one stream per parser). Performs no I/O.
class MODEENVOY_EXPORT SseParser {
 public:
  explicit SseParser(const SseParserOptions& options = {});

  // Consumes `bytes` and appends every event completed by them to `*events` (which is
  // not cleared). REQUIRES: events != nullptr.
  // Errors: kResourceExhausted if an event grows beyond max_event_bytes; the parser then
  // stays failed and every later call returns the same error.
  absl::Status Feed(std::string_view bytes, std::vector<SseEvent>* events);

  // Ends the stream. A pending event (data seen, even if its last line lacks a line
  // ending) is appended to `*events`: upstream servers often omit the final blank line,
  // so unlike a browser this does not discard it. The parser is then reset for a new
  // stream (last_event_id() and retry() are kept). Errors: as Feed.
  absl::Status Finish(std::vector<SseEvent>* events);

  // The spec's last event ID: the most recent valid "id" field, persisting across events.
  const std::string& last_event_id() const { return last_event_id_; }
  // The most recent valid "retry" value in milliseconds, if any.
  std::optional<int64_t> retry() const { return retry_; }
  // Total bytes consumed by Feed() so far.
  uint64_t bytes_consumed() const { return bytes_consumed_; }

 private:
  absl::Status Consume(std::string_view bytes, std::vector<SseEvent>* events);
  absl::Status ProcessLine(std::string_view line, std::vector<SseEvent>* events);
  absl::Status CheckSize(size_t line_bytes);
  void Dispatch(std::vector<SseEvent>* events);

  SseParserOptions options_;
  std::string line_;           // incomplete line carried between Feed() calls
  std::string bom_prefix_;     // up to 2 bytes of a possible BOM split across calls
  bool at_stream_start_ = true;
  bool skip_lf_ = false;       // previous line ended in '\r'; a leading '\n' belongs to it
  bool has_data_ = false;
  SseEvent pending_;
  std::string last_event_id_;
  std::optional<int64_t> retry_;
  uint64_t bytes_consumed_ = 0;
  absl::Status status_;
};

// Encodes one event: "event: <event>\n" when `event` is non-empty, then one
// "data: <line>\n" per line of `data` (split at "\r\n", "\n" or "\r", so any payload
// survives framing; empty data gives one "data: \n"), then a blank line.
// REQUIRES: `event` contains no line break.
MODEENVOY_EXPORT std::string EncodeSseEvent(std::string_view data, std::string_view event = {});

// Encodes `event` including its id and retry fields, in the order event, id, retry, data.
// REQUIRES: event.event and event.id contain no line break.
MODEENVOY_EXPORT std::string EncodeSseEvent(const SseEvent& event);

}  // namespace modeenvoy

#endif  // MODEENVOY_PROTOCOL_SSE_H_
