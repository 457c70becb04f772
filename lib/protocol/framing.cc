// lib/protocol/framing.cc: frame parsers over SseParser, a line splitter for NDJSON and the
// EventStream parser of eventstream.cc.
#include "modeenvoy/protocol/framing.h"

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/protocol/eventstream.h"
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
    for (SseEvent& e : events_) frames->push_back({std::move(e.event), std::move(e.data)});
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

}  // namespace

std::string_view FramingName(Framing framing) {
  switch (framing) {
    case Framing::kJson: return "json";
    case Framing::kSse: return "sse";
    case Framing::kNdjson: return "ndjson";
    case Framing::kEventStream: return "eventstream";
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
    case Framing::kJson: break;
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("framing \"%s\" is not a stream", FramingName(framing)));
}

}  // namespace modeenvoy
