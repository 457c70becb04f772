// lib/protocol/eventstream.cc: AWS EventStream (application/vnd.amazon.eventstream).
// Wire format of one message, all integers big-endian:
//   total_length u32 | headers_length u32 | prelude_crc u32     (the 12-byte prelude)
//   headers: { name_len u8 | name | type u8 | value }*          (headers_length bytes)
//   payload                                                     (the rest)
//   message_crc u32: CRC-32 of everything before it, prelude included
// The parser checks the prelude CRC before trusting the lengths, and the message CRC before
// reading a header, so a flipped bit is reported as the CRC it breaks.
#include "lib/protocol/eventstream.h"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "modeenvoy/protocol/framing.h"

namespace modeenvoy {
namespace protocol_internal {
namespace {

constexpr size_t kPreludeBytes = 12;
constexpr size_t kMinMessageBytes = 16;  // prelude + message CRC, no headers, no payload

// Slice-by-8 tables: kCrcTables[0] is the bytewise CRC-32 table; kCrcTables[k][i] is the
// CRC of byte i followed by k zero bytes, so eight bytes fold in with eight lookups and no
// dependency between them (about 4x the bytewise loop on a ~200-byte Bedrock message).
using CrcTables = std::array<std::array<uint32_t, 256>, 8>;
constexpr CrcTables MakeCrcTables() {
  CrcTables t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  for (size_t k = 1; k < 8; ++k) {
    for (uint32_t i = 0; i < 256; ++i) t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFF];
  }
  return t;
}
constexpr CrcTables kCrcTables = MakeCrcTables();

inline uint32_t LoadLe32(const unsigned char* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

uint32_t ReadU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

void AppendU32(std::string* out, uint32_t v) {
  const char bytes[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                         static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(bytes, 4);
}

// Checks the 12-byte prelude at `p`; returns the message's total length.
absl::StatusOr<uint32_t> CheckPrelude(const char* p, size_t max_message_bytes) {
  const uint32_t total = ReadU32(p);
  const uint32_t headers = ReadU32(p + 4);
  const uint32_t want = ReadU32(p + 8);
  const uint32_t got = Crc32(std::string_view(p, 8));
  if (got != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eventstream: prelude crc mismatch (computed 0x%08x, message says 0x%08x)", got, want));
  }
  if (total < kMinMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("eventstream: total length %u is below the minimum of 16", total));
  }
  if (total > max_message_bytes) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "eventstream: message of %u bytes exceeds %u bytes", total, max_message_bytes));
  }
  if (headers > total - kMinMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eventstream: headers length %u does not fit in a message of %u bytes", headers, total));
  }
  return total;
}

int64_t ReadSigned(const unsigned char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | p[i];
  if (n < 8 && (p[0] & 0x80) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
  return static_cast<int64_t>(v);
}

// Walks the headers in `in`, calling fn(name, type, raw) for each in wire order: raw is the
// value's bytes as sent (a string's or bytes' content, the big-endian bytes of a number or
// timestamp, the 16 bytes of a uuid, nothing for a bool). Views point into `in`.
template <typename Fn>
absl::Status WalkHeaders(std::string_view in, Fn&& fn) {
  size_t count = 0;
  auto error = [&](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("eventstream: header ", count, ": ",
                                                   absl::string_view(what.data(), what.size())));
  };
  while (!in.empty()) {
    const auto* u = reinterpret_cast<const unsigned char*>(in.data());
    const size_t name_len = u[0];
    if (name_len == 0) return error("empty name");
    if (in.size() < 1 + name_len + 1) return error("truncated name");
    const std::string_view name = in.substr(1, name_len);
    const uint8_t type = u[1 + name_len];
    in.remove_prefix(2 + name_len);
    u = reinterpret_cast<const unsigned char*>(in.data());
    size_t fixed = 0;
    std::string_view raw;
    switch (type) {
      case 0: case 1: break;
      case 2: fixed = 1; break;
      case 3: fixed = 2; break;
      case 4: fixed = 4; break;
      case 5: case 8: fixed = 8; break;
      case 9: fixed = 16; break;
      case 6: case 7: {
        if (in.size() < 2) return error("truncated value length");
        const size_t len = (size_t{u[0]} << 8) | u[1];
        if (in.size() < 2 + len) return error("value overruns the headers");
        raw = in.substr(2, len);
        in.remove_prefix(2 + len);
        break;
      }
      default:
        return error(absl::StrCat("unknown value type ", static_cast<int>(type)));
    }
    if (fixed != 0) {
      if (in.size() < fixed) return error("value overruns the headers");
      raw = in.substr(0, fixed);
      in.remove_prefix(fixed);
    }
    fn(name, type, raw);
    ++count;
  }
  return absl::OkStatus();
}

// A header's value as EventStreamHeader::value spells it (framing.h).
std::string HeaderValue(uint8_t type, std::string_view raw) {
  switch (type) {
    case 0: return "true";
    case 1: return "false";
    case 6: case 7: case 9: return std::string(raw);
    default:
      return absl::StrCat(
          ReadSigned(reinterpret_cast<const unsigned char*>(raw.data()), raw.size()));
  }
}

absl::Status ParseHeaders(std::string_view in, std::vector<EventStreamHeader>* out) {
  return WalkHeaders(in, [&](std::string_view name, uint8_t type, std::string_view raw) {
    EventStreamHeader h;
    h.name.assign(name.data(), name.size());
    h.type = static_cast<EventStreamHeaderType>(type);
    h.value = HeaderValue(type, raw);
    out->push_back(std::move(h));
  });
}

// Checks the message CRC of one whole message whose prelude CheckPrelude accepted.
absl::Status CheckMessageCrc(std::string_view bytes) {
  const uint32_t want = ReadU32(bytes.data() + bytes.size() - 4);
  const uint32_t got = Crc32(bytes.substr(0, bytes.size() - 4));
  if (got != want) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eventstream: message crc mismatch (computed 0x%08x, message says 0x%08x)", got, want));
  }
  return absl::OkStatus();
}

// Decodes one whole message whose prelude CheckPrelude accepted.
absl::Status DecodeChecked(std::string_view bytes, EventStreamMessage* message) {
  absl::Status s = CheckMessageCrc(bytes);
  if (!s.ok()) return s;
  const uint32_t headers_len = ReadU32(bytes.data() + 4);
  s = ParseHeaders(bytes.substr(kPreludeBytes, headers_len), &message->headers);
  if (!s.ok()) return s;
  const size_t payload_at = kPreludeBytes + headers_len;
  message->payload.assign(bytes.data() + payload_at, bytes.size() - 4 - payload_at);
  return absl::OkStatus();
}

// One whole message whose prelude CheckPrelude accepted, as the StreamFrame documented in
// framing.h, read in place: only the headers that mapping names are looked at (the first of
// each name, as EventStreamMessage::FindHeader finds it), and the frame's two strings are
// the only copies made.
absl::Status FrameOfMessage(std::string_view bytes, StreamFrame* frame) {
  absl::Status s = CheckMessageCrc(bytes);
  if (!s.ok()) return s;
  struct Found {
    bool seen = false;
    uint8_t type = 0;
    std::string_view raw;
    std::string Value() const { return HeaderValue(type, raw); }
  };
  Found message_type, event_type, exception_type, error_code, error_message;
  const uint32_t headers_len = ReadU32(bytes.data() + 4);
  s = WalkHeaders(bytes.substr(kPreludeBytes, headers_len),
                  [&](std::string_view name, uint8_t type, std::string_view raw) {
                    Found* f = name == ":message-type"     ? &message_type
                               : name == ":event-type"     ? &event_type
                               : name == ":exception-type" ? &exception_type
                               : name == ":error-code"     ? &error_code
                               : name == ":error-message"  ? &error_message
                                                           : nullptr;
                    if (f != nullptr && !f->seen) *f = Found{true, type, raw};
                  });
  if (!s.ok()) return s;
  const size_t payload_at = kPreludeBytes + headers_len;
  const std::string_view payload = bytes.substr(payload_at, bytes.size() - 4 - payload_at);
  const std::string type = message_type.seen ? message_type.Value() : std::string();
  if (!message_type.seen || type == "event") {
    if (event_type.seen) frame->event = event_type.Value();
    frame->data.assign(payload.data(), payload.size());
  } else if (type == "exception") {
    frame->event = absl::StrCat("exception:", exception_type.seen ? exception_type.Value() : "");
    frame->data.assign(payload.data(), payload.size());
  } else if (type == "error") {
    frame->event = absl::StrCat("error:", error_code.seen ? error_code.Value() : "");
    if (error_message.seen) {
      frame->data = error_message.Value();
    } else {
      frame->data.assign(payload.data(), payload.size());
    }
  } else {
    frame->event = absl::StrCat(type, ":");
    frame->data.assign(payload.data(), payload.size());
  }
  return absl::OkStatus();
}

// Holds at most one message's bytes: a read is consumed straight from its buffer when it
// holds whole messages, and copied only for the message it ends inside.
class EventStreamFrameParser final : public FrameParser {
 public:
  explicit EventStreamFrameParser(size_t max) : max_(max) {}

  absl::Status Feed(std::string_view bytes, std::vector<StreamFrame>* frames) override {
    if (!failed_.ok()) return failed_;
    while (!bytes.empty()) {
      if (pending_.empty() && bytes.size() >= kPreludeBytes) {
        absl::StatusOr<uint32_t> total = CheckPrelude(bytes.data(), max_);
        if (!total.ok()) return Fail(total.status());
        if (bytes.size() >= *total) {  // a whole message in this read: no copy
          absl::Status s = Emit(bytes.substr(0, *total), frames);
          if (!s.ok()) return Fail(std::move(s));
          bytes.remove_prefix(*total);
          continue;
        }
        expected_ = *total;
      }
      const size_t need = (expected_ == 0 ? kPreludeBytes : expected_) - pending_.size();
      const size_t take = std::min(need, bytes.size());
      pending_.append(bytes.data(), take);
      bytes.remove_prefix(take);
      if (take < need) break;
      if (expected_ == 0) {
        absl::StatusOr<uint32_t> total = CheckPrelude(pending_.data(), max_);
        if (!total.ok()) return Fail(total.status());
        expected_ = *total;
        continue;
      }
      absl::Status s = Emit(pending_, frames);
      if (!s.ok()) return Fail(std::move(s));
      pending_.clear();
      expected_ = 0;
    }
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<StreamFrame>* frames) override {
    if (!failed_.ok()) return failed_;
    if (!pending_.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrFormat(
          "eventstream: stream ends inside a message (%u of %s bytes)", pending_.size(),
          expected_ == 0 ? std::string("a 12-byte prelude's") : absl::StrCat(expected_))));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status Emit(std::string_view bytes, std::vector<StreamFrame>* frames) {
    StreamFrame frame;
    absl::Status s = FrameOfMessage(bytes, &frame);
    if (s.ok()) frames->push_back(std::move(frame));
    return s;
  }
  absl::Status Fail(absl::Status s) {
    failed_ = std::move(s);
    pending_.clear();
    pending_.shrink_to_fit();
    return failed_;
  }

  const size_t max_;
  std::string pending_;   // bytes of the message being assembled
  size_t expected_ = 0;   // its total length once the prelude is checked, else 0
  absl::Status failed_;
};

}  // namespace

uint32_t Crc32(std::string_view bytes, uint32_t crc) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size();
  crc = ~crc;
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t lo = LoadLe32(p) ^ crc;
    const uint32_t hi = LoadLe32(p + 4);
    crc = kCrcTables[7][lo & 0xFF] ^ kCrcTables[6][(lo >> 8) & 0xFF] ^
          kCrcTables[5][(lo >> 16) & 0xFF] ^ kCrcTables[4][lo >> 24] ^
          kCrcTables[3][hi & 0xFF] ^ kCrcTables[2][(hi >> 8) & 0xFF] ^
          kCrcTables[1][(hi >> 16) & 0xFF] ^ kCrcTables[0][hi >> 24];
  }
  for (; n > 0; ++p, --n) crc = kCrcTables[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::unique_ptr<FrameParser> NewEventStreamFrameParser(size_t max_message_bytes) {
  return std::make_unique<EventStreamFrameParser>(max_message_bytes);
}

}  // namespace protocol_internal

const std::string* EventStreamMessage::FindHeader(std::string_view name) const {
  for (const EventStreamHeader& h : headers) {
    if (h.name == name) return &h.value;
  }
  return nullptr;
}

absl::StatusOr<EventStreamMessage> DecodeEventStreamMessage(std::string_view bytes,
                                                            size_t max_message_bytes) {
  if (bytes.size() < protocol_internal::kMinMessageBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eventstream: %u bytes is shorter than the minimum message of 16", bytes.size()));
  }
  absl::StatusOr<uint32_t> total =
      protocol_internal::CheckPrelude(bytes.data(), max_message_bytes);
  if (!total.ok()) return total.status();
  if (*total != bytes.size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "eventstream: total length %u differs from the %u bytes given", *total, bytes.size()));
  }
  EventStreamMessage message;
  absl::Status s = protocol_internal::DecodeChecked(bytes, &message);
  if (!s.ok()) return s;
  return message;
}

std::string EncodeEventStreamMessage(
    const std::vector<std::pair<std::string, std::string>>& string_headers,
    std::string_view payload) {
  std::string headers;
  for (const auto& [name, value] : string_headers) {
    headers.push_back(static_cast<char>(name.size()));
    headers.append(name);
    headers.push_back(static_cast<char>(EventStreamHeaderType::kString));
    headers.push_back(static_cast<char>(value.size() >> 8));
    headers.push_back(static_cast<char>(value.size()));
    headers.append(value);
  }
  const size_t total = protocol_internal::kMinMessageBytes + headers.size() + payload.size();
  std::string out;
  out.reserve(total);
  protocol_internal::AppendU32(&out, static_cast<uint32_t>(total));
  protocol_internal::AppendU32(&out, static_cast<uint32_t>(headers.size()));
  protocol_internal::AppendU32(&out, protocol_internal::Crc32(out));
  out.append(headers);
  out.append(payload);
  protocol_internal::AppendU32(&out, protocol_internal::Crc32(out));
  return out;
}

}  // namespace modeenvoy
