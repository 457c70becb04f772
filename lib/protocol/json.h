// lib/protocol/json.h: private JSON reading and writing for the protocol layer.
//
// The pull parser and the writers live in lib/core/json_pull.h (so that lib/context reads
// stored records with the same parser); this header gives them their protocol_internal
// names and adds what depends on the protocol's limits.
#ifndef MODEENVOY_LIB_PROTOCOL_JSON_H_
#define MODEENVOY_LIB_PROTOCOL_JSON_H_

#include <string_view>

#include "lib/core/json_pull.h"
#include "modeenvoy/export.h"

namespace modeenvoy::protocol_internal {

using core_internal::AppendJsonDouble;
using core_internal::AppendJsonInt;
using core_internal::AppendJsonString;
using core_internal::IsValidUtf8;
using core_internal::JsonObjectWriter;
using core_internal::JsonReader;
using core_internal::JsonType;
using core_internal::JsonTypeName;
using core_internal::MemberNameSet;
using core_internal::NumberToDouble;
using core_internal::NumberToInt64;

// True if `text` is exactly one JSON value (surrounding whitespace allowed, nesting bounded
// by kMaxJsonDepth); `*type` receives its type.
MODEENVOY_EXPORT bool IsValidJson(std::string_view text, JsonType* type);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_JSON_H_
