#include "modeenvoy/protocol/sse.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"

namespace modeenvoy {
namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// Index of the first '\r' or '\n' in `s` at or after `pos`, or npos. (string_view's
// find_first_of tests one byte at a time against the set; this is the hot loop.)
size_t FindLineBreak(std::string_view s, size_t pos) {
  const char* p = s.data() + pos;
  const char* end = s.data() + s.size();
#if defined(__SSE2__)
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const int mask =
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)));
    if (mask != 0) {
      return static_cast<size_t>(p - s.data()) + __builtin_ctz(static_cast<unsigned>(mask));
    }
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    if (*p == '\r' || *p == '\n') return static_cast<size_t>(p - s.data());
  }
  return std::string_view::npos;
}

// Appends one "data: <line>\n" per line of `data`, splitting at any line ending.
void AppendDataLines(std::string* out, std::string_view data) {
  size_t pos = 0;
  while (true) {
    const size_t eol = FindLineBreak(data, pos);
    out->append("data: ");
    out->append(data.substr(pos, eol == std::string_view::npos ? std::string_view::npos
                                                                 : eol - pos));
    out->push_back('\n');
    if (eol == std::string_view::npos) return;
    size_t next = eol + 1;
    if (data[eol] == '\r' && next < data.size() && data[next] == '\n') ++next;
    pos = next;
  }
}

}  // namespace

SseParser::SseParser(const SseParserOptions& options) : options_(options) {
  if (options_.max_event_bytes == 0) options_.max_event_bytes = 1;
}

absl::Status SseParser::Feed(std::string_view bytes, std::vector<SseEvent>* events) {
  if (!status_.ok()) return status_;
  bytes_consumed_ += bytes.size();
  if (at_stream_start_) {
    // Hold back a possible BOM until it is complete or disproved.
    while (!bytes.empty() && bom_prefix_.size() < kBom.size()) {
      bom_prefix_.push_back(bytes.front());
      bytes.remove_prefix(1);
      if (kBom.substr(0, bom_prefix_.size()) != bom_prefix_) break;
    }
    if (bom_prefix_ == kBom) {
      at_stream_start_ = false;
      bom_prefix_.clear();
    } else if (kBom.substr(0, bom_prefix_.size()) != bom_prefix_) {
      at_stream_start_ = false;
      std::string prefix = std::move(bom_prefix_);
      bom_prefix_.clear();
      MODEENVOY_RETURN_IF_ERROR(Consume(prefix, events));
    } else {
      return absl::OkStatus();  // a strict prefix of the BOM, all input used
    }
  }
  return Consume(bytes, events);
}

absl::Status SseParser::CheckSize(size_t line_bytes) {
  const size_t event_bytes = pending_.data.size() + pending_.event.size() +
                             (pending_.id.has_value() ? pending_.id->size() : 0);
  if (event_bytes + line_bytes > options_.max_event_bytes) {
    status_ = absl::ResourceExhaustedError(absl::StrCat(
        "sse: event exceeds the limit of ", options_.max_event_bytes, " bytes"));
    return status_;
  }
  return absl::OkStatus();
}

absl::Status SseParser::Consume(std::string_view bytes, std::vector<SseEvent>* events) {
  size_t pos = 0;
  if (skip_lf_ && !bytes.empty()) {
    if (bytes.front() == '\n') pos = 1;
    skip_lf_ = false;
  }
  while (pos < bytes.size()) {
    const size_t eol = FindLineBreak(bytes, pos);
    if (eol == std::string_view::npos) {
      const std::string_view rest = bytes.substr(pos);
      MODEENVOY_RETURN_IF_ERROR(CheckSize(line_.size() + rest.size()));
      line_.append(rest.data(), rest.size());
      break;
    }
    const std::string_view segment = bytes.substr(pos, eol - pos);
    MODEENVOY_RETURN_IF_ERROR(CheckSize(line_.size() + segment.size()));
    if (line_.empty()) {
      MODEENVOY_RETURN_IF_ERROR(ProcessLine(segment, events));
    } else {
      line_.append(segment.data(), segment.size());
      const std::string line = std::move(line_);
      line_.clear();
      MODEENVOY_RETURN_IF_ERROR(ProcessLine(line, events));
    }
    size_t next = eol + 1;
    if (bytes[eol] == '\r') {
      if (next < bytes.size()) {
        if (bytes[next] == '\n') ++next;
      } else {
        skip_lf_ = true;  // the '\n' of a "\r\n" may start the next read
      }
    }
    pos = next;
  }
  return absl::OkStatus();
}

absl::Status SseParser::ProcessLine(std::string_view line, std::vector<SseEvent>* events) {
  if (line.empty()) {
    Dispatch(events);
    return absl::OkStatus();
  }
  if (line.front() == ':') return absl::OkStatus();  // comment
  std::string_view field = line;
  std::string_view value;
  if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) pending_.data.push_back('\n');
    pending_.data.append(value.data(), value.size());
    has_data_ = true;
  } else if (field == "event") {
    pending_.event.assign(value.data(), value.size());
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) {
      pending_.id = std::string(value);
      last_event_id_.assign(value.data(), value.size());
    }
  } else if (field == "retry") {
    int64_t ms = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, ms);
    if (!value.empty() && value.front() != '-' && ec == std::errc() && ptr == end) {
      pending_.retry = ms;
      retry_ = ms;
    }
  }
  return absl::OkStatus();
}

void SseParser::Dispatch(std::vector<SseEvent>* events) {
  if (has_data_) events->push_back(std::move(pending_));
  pending_ = SseEvent();
  has_data_ = false;
}

absl::Status SseParser::Finish(std::vector<SseEvent>* events) {
  if (!status_.ok()) return status_;
  if (!bom_prefix_.empty()) {
    // The stream ended inside what could have been a BOM: those bytes are content.
    std::string prefix = std::move(bom_prefix_);
    bom_prefix_.clear();
    MODEENVOY_RETURN_IF_ERROR(Consume(prefix, events));
  }
  if (!line_.empty()) {
    const std::string line = std::move(line_);
    line_.clear();
    MODEENVOY_RETURN_IF_ERROR(ProcessLine(line, events));
  }
  Dispatch(events);
  at_stream_start_ = true;
  skip_lf_ = false;
  return absl::OkStatus();
}

std::string EncodeSseEvent(std::string_view data, std::string_view event) {
  std::string out;
  out.reserve(data.size() + event.size() + 16);
  if (!event.empty()) {
    out.append("event: ");
    out.append(event.data(), event.size());
    out.push_back('\n');
  }
  AppendDataLines(&out, data);
  out.push_back('\n');
  return out;
}

std::string EncodeSseEvent(const SseEvent& event) {
  std::string out;
  out.reserve(event.data.size() + event.event.size() + 32);
  if (!event.event.empty()) absl::StrAppend(&out, "event: ", event.event, "\n");
  if (event.id.has_value()) absl::StrAppend(&out, "id: ", *event.id, "\n");
  if (event.retry.has_value()) absl::StrAppend(&out, "retry: ", *event.retry, "\n");
  AppendDataLines(&out, event.data);
  out.push_back('\n');
  return out;
}

}  // namespace modeenvoy
