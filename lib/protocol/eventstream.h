// lib/protocol/eventstream.h: the AWS EventStream frame parser behind
// NewFrameParser(Framing::kEventStream), and the CRC-32 both its checks use.
#ifndef MODEENVOY_LIB_PROTOCOL_EVENTSTREAM_H_
#define MODEENVOY_LIB_PROTOCOL_EVENTSTREAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "modeenvoy/export.h"
#include "modeenvoy/protocol/framing.h"

namespace modeenvoy::protocol_internal {

// CRC-32/IEEE (zlib's crc32, polynomial 0xEDB88320 reflected) of `bytes`, continuing from
// `crc` (0 to start). The project links no zlib of its own, so this is a table-driven copy.
MODEENVOY_EXPORT uint32_t Crc32(std::string_view bytes, uint32_t crc = 0);

// REQUIRES: max_message_bytes > 0.
std::unique_ptr<FrameParser> NewEventStreamFrameParser(size_t max_message_bytes);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_EVENTSTREAM_H_
