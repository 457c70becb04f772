#include "lib/protocol/json.h"

#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::protocol_internal {

bool IsValidJson(std::string_view text, JsonType* type) {
  JsonReader reader(text, kMaxJsonDepth);
  if (!reader.Peek(type)) return false;
  return reader.SkipValue() && reader.ExpectEnd();
}

}  // namespace modeenvoy::protocol_internal
