// lib/protocol/chat_serialize.h: SerializeChatRequest with the members a provider call
// changes (the upstream model, stream_options) written in place, so a dialect that sends
// the unified body does not copy the whole request to change them; and the unified
// request's member names, for ingress dialects that keep unknown members as extras.
#ifndef MODEENVOY_LIB_PROTOCOL_CHAT_SERIALIZE_H_
#define MODEENVOY_LIB_PROTOCOL_CHAT_SERIALIZE_H_

#include <optional>
#include <string>
#include <string_view>

#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::protocol_internal {

struct ChatRequestOverrides {
  std::optional<std::string_view> model;  // written instead of request.model
  bool drop_stream_options = false;       // no stream_options member at all
  bool include_usage = false;             // stream_options.include_usage written true
};

// SerializeChatRequest(request) as if `request` had the overrides applied: byte for byte
// what serializing a modified copy writes. Same REQUIRES as SerializeChatRequest.
MODEENVOY_EXPORT std::string SerializeChatRequest(const ChatRequest& request,
                                                  const ChatRequestOverrides& overrides);

// True when `name` is a top-level member the unified request models (model, n, user,
// verbosity, ...): an extra of that name would collide with it when serialized.
MODEENVOY_EXPORT bool IsChatRequestMember(std::string_view name);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_CHAT_SERIALIZE_H_
