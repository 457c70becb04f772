// lib/protocol/framing.cc: frame parsers over SseParser, a line splitter for NDJSON, the
// EventStream parser of eventstream.cc and a bracket scanner for a streamed JSON array.
#include "modeenvoy/protocol/framing.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/protocol/eventstream.h"
#include "modeenvoy/protocol/chat.h"  // kMaxJsonDepth
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

class SseFrameParser final : public FrameParser {
 public:
  explicit SseFrameParser(size_t max) : parser_(SseParserOptions{.max_event_bytes = max}) {}

  absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) override {
    absl::Status s = parser_.Feed(bytes, &events_);
    Move(frames);
    return s;
  }
  absl::Status Finish(std::vector<StreamFrame>* frames) override {
    absl::Status s = parser_.Finish(&events_);
    Move(frames);
    return s;
  }

 private:
  void Move(std::vector<StreamFrame>* frames) {
    for (SseEvent& e : events_) {  // built in place: no temporary frame to move and destroy
      StreamFrame& frame = frames->emplace_back();
      frame.event = std::move(e.event);
      frame.data = std::move(e.data);
    }
    events_.clear();
  }
  SseParser parser_;
  std::vector<SseEvent> events_;
};

// Lines end in "\n" (a preceding "\r" is dropped); blank lines are skipped.
class NdjsonFrameParser final : public FrameParser {
 public:
  explicit NdjsonFrameParser(size_t max) : max_(max) {}

  absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) override {
    if (!failed_.ok()) return failed_;
    while (!bytes.empty()) {
      size_t nl = bytes.find('\n');
      std::string_view piece = nl == std::string_view::npos ? bytes : bytes.substr(0, nl);
      if (line_.size() + piece.size() > max_) {
        failed_ = absl::ResourceExhaustedError(
            absl::StrFormat("NDJSON line exceeds %d bytes", max_));
        return failed_;
      }
      line_.append(piece);
      if (nl == std::string_view::npos) break;
      Emit(frames);
      bytes.remove_prefix(nl + 1);
    }
    return absl::OkStatus();
  }
  absl::Status Finish(std::vector<StreamFrame>* frames) override {
    if (!failed_.ok()) return failed_;
    Emit(frames);
    return absl::OkStatus();
  }

 private:
  void Emit(std::vector<StreamFrame>* frames) {
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    bool blank = line_.find_first_not_of(" \t") == std::string::npos;
    if (!blank) frames->push_back({std::string(), std::move(line_)});
    line_.clear();
  }
  const size_t max_;
  std::string line_;
  absl::Status failed_;
};

// The elements of one JSON array, each emitted when its closing bracket arrives. The state
// survives any split: inside a string (an escape's backslash included) or a UTF-8 sequence
// (whose bytes are all >= 0x80, so never structural). Memory: the current element only.
class JsonArrayFrameParser final : public FrameParser {
 public:
  explicit JsonArrayFrameParser(size_t max) : max_(max) {}

  absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) override {
    if (!failed_.ok()) return failed_;
    size_t i = 0;
    const size_t n = bytes.size();
    while (i < n) {
      if (state_ == State::kInElement) {
        // Scan to the end of the element or of this read, then copy the run at once.
        const size_t begin = i;
        bool closed = false;
        for (; i < n; ++i) {
          const char c = bytes[i];
          if (in_string_) {
            if (escape_) {
              escape_ = false;
            } else if (c == '\\') {
              escape_ = true;
            } else if (c == '"') {
              in_string_ = false;
            }
            continue;
          }
          if (c == '"') {
            in_string_ = true;
          } else if (c == '{' || c == '[') {
            if (depth_ >= kMaxJsonDepth) {
              return Fail(absl::InvalidArgumentError(absl::StrFormat(
                  "JSON array stream: element %d nests deeper than %d", index_, kMaxJsonDepth)));
            }
            SetOpen(depth_++, c == '{');
          } else if (c == '}' || c == ']') {
            if (IsObject(--depth_) != (c == '}')) {
              return Fail(absl::InvalidArgumentError(absl::StrFormat(
                  "JSON array stream: element %d: mismatched '%c' at byte %d", index_, c,
                  consumed_ + i)));
            }
            if (depth_ == 0) {
              ++i;
              closed = true;
              break;
            }
          }
        }
        if (element_.size() + (i - begin) > max_) {
          return Fail(absl::ResourceExhaustedError(absl::StrFormat(
              "JSON array stream: element %d exceeds %d bytes", index_, max_)));
        }
        element_.append(bytes.data() + begin, i - begin);
        if (closed) {
          frames->push_back({std::string(), std::move(element_)});
          element_.clear();
          ++index_;
          state_ = State::kAfterElement;
        }
        continue;
      }
      const char c = bytes[i];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++i;
        continue;
      }
      switch (state_) {
        case State::kStart:
          if (c != '[') return Unexpected(c, consumed_ + i, "'['");
          state_ = State::kFirstElement;
          break;
        case State::kFirstElement:
          if (c == ']') {
            state_ = State::kDone;
            break;
          }
          [[fallthrough]];
        case State::kElement:
          if (c != '{' && c != '[') return Unexpected(c, consumed_ + i, "an object or array");
          state_ = State::kInElement;
          continue;  // the bracket is the element's first byte
        case State::kAfterElement:
          if (c == ',') {
            state_ = State::kElement;
          } else if (c == ']') {
            state_ = State::kDone;
          } else {
            return Unexpected(c, consumed_ + i, "',' or ']'");
          }
          break;
        case State::kDone:
          return Unexpected(c, consumed_ + i, "the end of the body");
        case State::kInElement:
          break;  // handled above
      }
      ++i;
    }
    consumed_ += n;
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<StreamFrame>* /*frames*/) override {
    if (!failed_.ok()) return failed_;
    if (state_ == State::kDone) return absl::OkStatus();
    return Fail(absl::InvalidArgumentError(
        state_ == State::kStart
            ? std::string("JSON array stream: empty body (expected '[')")
            : absl::StrFormat("JSON array stream: body ended before the closing ']' (%d "
                              "elements read%s)",
                              index_, state_ == State::kInElement ? ", one cut short" : "")));
  }

 private:
  enum class State { kStart, kFirstElement, kElement, kInElement, kAfterElement, kDone };

  absl::Status Fail(absl::Status status) {
    failed_ = std::move(status);
    return failed_;
  }
  absl::Status Unexpected(char c, size_t at, std::string_view expected) {
    return Fail(absl::InvalidArgumentError(absl::StrFormat(
        "JSON array stream: expected %s at byte %d, got %s", expected, at,
        (c >= 0x20 && c < 0x7f) ? absl::StrFormat("'%c'", c)
                                : absl::StrFormat("byte 0x%02x", static_cast<uint8_t>(c)))));
  }
  // One bit per open bracket: 1 for '{'.
  void SetOpen(int level, bool object) {
    uint64_t bit = uint64_t{1} << (level % 64);
    uint64_t& word = open_[level / 64];
    word = object ? (word | bit) : (word & ~bit);
  }
  bool IsObject(int level) const {
    return (open_[level / 64] >> (level % 64)) & 1;
  }

  const size_t max_;
  State state_ = State::kStart;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  uint64_t open_[(kMaxJsonDepth + 63) / 64] = {};
  std::string element_;
  size_t index_ = 0;     // elements emitted so far
  size_t consumed_ = 0;  // bytes of earlier reads, for offsets in errors
  absl::Status failed_;
};

}  // namespace

std::string_view FramingName(Framing framing) {
  switch (framing) {
    case Framing::kJson: return "json";
    case Framing::kSse: return "sse";
    case Framing::kNdjson: return "ndjson";
    case Framing::kEventStream: return "eventstream";
    case Framing::kJsonArray: return "json_array";
  }
  return "unknown";
}

absl::StatusOr<std::unique_ptr<FrameParser>> NewFrameParser(Framing framing,
                                                            const FrameParserOptions& options) {
  if (options.max_frame_bytes == 0) {
    return absl::InvalidArgumentError("max_frame_bytes must be > 0");
  }
  switch (framing) {
    case Framing::kSse: return std::make_unique<SseFrameParser>(options.max_frame_bytes);
    case Framing::kNdjson: return std::make_unique<NdjsonFrameParser>(options.max_frame_bytes);
    case Framing::kEventStream:
      return protocol_internal::NewEventStreamFrameParser(options.max_frame_bytes);
    case Framing::kJsonArray:
      return std::make_unique<JsonArrayFrameParser>(options.max_frame_bytes);
    case Framing::kJson: break;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("framing \"%s\" is not a stream", FramingName(framing)));
}

}  // namespace modeenvoy
