// lib/core/utf8.h: private UTF-8 encoding helper shared by the JSON string decoders
// (json_pull.cc's reader, lib/gateway/stream_usage.cc's stream text scan).
#ifndef MODEENVOY_LIB_CORE_UTF8_H_
#define MODEENVOY_LIB_CORE_UTF8_H_

#include <cstdint>
#include <string>

namespace modeenvoy::core_internal {

// Appends the UTF-8 encoding of code point `cp`. REQUIRES: cp <= 0x10FFFF and not a
// surrogate (callers map those to U+FFFD first); out != nullptr.
inline void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_UTF8_H_
