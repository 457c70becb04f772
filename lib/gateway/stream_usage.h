// lib/gateway/stream_usage.h: the engine's handling of usage in a unified stream (private).
// Every usage the stream carries is taken out of it and kept: a client that asked
// (stream_options.include_usage) gets exactly one usage-only chunk right before "[DONE]",
// the last reported or, when the stream reported none, an estimated one; a client that did
// not ask gets none. The usage (reported or estimated) is what the outcome carries.
#ifndef MODEENVOY_LIB_GATEWAY_STREAM_USAGE_H_
#define MODEENVOY_LIB_GATEWAY_STREAM_USAGE_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "modeenvoy/gateway/usage.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::gateway_internal {

// Thread-compatible; one per streamed response.
class StreamUsage {
 public:
  // Bytes of events a promised stream keeps unread at most (Start).
  static constexpr size_t kKeptBytesBound = 256 << 10;

  // `chat` (the client's request) and `estimator` must outlive this object. `track`: keep
  // the streamed text so that a missing usage can be estimated (costs a parse per chunk
  // until a usage arrives; on when a client or a filter will read the usage). `promised`:
  // the stream's translator keeps StreamTranslator::KeepsUsagePromise(), so only an event
  // right before "[DONE]" in one Filter call can carry usage and no other is looked at;
  // when tracking, the other events' bytes are then kept as they came (up to
  // kKeptBytesBound, beyond which the kept ones are read and dropped) and their text is
  // read only if the stream ends without usage.
  void Start(const ChatRequest* chat, std::string model, const UsageEstimator* estimator,
             bool track, bool promised = false);
  bool started() const { return chat_ != nullptr; }

  // Rewrites one read's unified events in place: usage-only chunks dropped, `usage`
  // members removed from content chunks, the final usage chunk put before "[DONE]" for a
  // client that asked.
  void Filter(std::vector<SseEvent>* events);

  // The usage for the outcome: the last reported, else (when tracking) an estimate.
  // `*estimated` tells which.
  std::optional<Usage> Final(bool* estimated);

 private:
  void Take(SseEvent& event, std::vector<SseEvent>* out);
  // Keeps `data` for a later text read (promised streams; see Start).
  void Keep(std::string_view data);
  // Appends the kept events' text to text_ and drops them.
  void ReadKept();
  Usage Estimate();

  const ChatRequest* chat_ = nullptr;
  std::string model_;
  const UsageEstimator* estimator_ = nullptr;
  bool wants_ = false;  // the client asked for usage in its stream
  bool track_ = false;
  bool promised_ = false;  // usage only on the event right before "[DONE]" (Start)
  bool done_ = false;
  std::optional<Usage> usage_;
  std::optional<std::string> usage_event_;  // the usage-only chunk for the client
  std::string text_;                        // generated text so far (when tracking)
  // Events whose text was not read yet (promised streams): kept_ holds their data one
  // after the other, kept_ends_ where each ends.
  std::string kept_;
  std::vector<size_t> kept_ends_;
  // Envelope of the latest chunk, for a usage chunk the engine writes.
  std::string id_;
  std::string chunk_model_;
  int64_t created_ = 0;
  std::vector<SseEvent> scratch_;
};

}  // namespace modeenvoy::gateway_internal

#endif  // MODEENVOY_LIB_GATEWAY_STREAM_USAGE_H_
