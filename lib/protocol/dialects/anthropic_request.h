// lib/protocol/dialects/anthropic_request.h: the Messages request (POST /v1/messages) -> the
// unified ChatRequest, as AnthropicDialect::DecodeRequest reads it (private). Two readers:
// a one-pass reader for the bodies clients send, and the checked reader that reports the
// first error of a bad body. DecodeRequest runs the first and, when it gives up, the second;
// they are declared here so that tests and the fuzzer can compare them.
#ifndef MODEENVOY_LIB_PROTOCOL_DIALECTS_ANTHROPIC_REQUEST_H_
#define MODEENVOY_LIB_PROTOCOL_DIALECTS_ANTHROPIC_REQUEST_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::protocol_internal {

// Reads a Messages request body in one pass, in document order: values are decoded when
// they are reached, members the unified form does not model are kept as compact text, and
// no field path is built. Returns false when it gives up, with *chat in an unspecified
// state: on any error (syntax, a type, a missing or repeated member, a value the mapping
// refuses) and on the bodies it does not read in one pass (a member name written with
// escapes, more than 32 unmodeled members in one object, a server tool whose "type" is not
// its first member). The caller then reads the body with DecodeMessagesRequestChecked().
// When it returns true, *chat is equal to what DecodeMessagesRequestChecked() returns.
// `*chat` must be default-constructed. `body` is only read during the call.
// Thread-safe (no shared state).
MODEENVOY_EXPORT bool DecodeMessagesRequestOnePass(std::string_view body, ChatRequest* chat);

// Reads a Messages request body and reports its first error, kInvalidArgument with the
// field path ("messages[1].content[0].source.type: ..."), in a fixed order whatever the
// member order: syntax (the whole body), repeated names of the top-level object, then
// model, max_tokens, messages, system, each turn (its repeated names, role, content, its
// blocks in order), then the other members in document order, then a tool choice without
// tools; within each object its repeated names first. Thread-safe (no shared state).
MODEENVOY_EXPORT absl::StatusOr<ChatRequest> DecodeMessagesRequestChecked(std::string_view body);

}  // namespace modeenvoy::protocol_internal

#endif  // MODEENVOY_LIB_PROTOCOL_DIALECTS_ANTHROPIC_REQUEST_H_
