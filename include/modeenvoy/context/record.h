// include/modeenvoy/context/record.h: one conversation's context, kept by the gateway.
//
// A ContextRecord is what the Model Context Protocol (docs/context.md) stores per session:
// the conversation history in the unified chat model (protocol/chat.h), the client's
// metadata, the agent state (every tool invocation and its result), which model served each
// turn, and bookkeeping. Stores (store.h) persist it as versioned JSON:
//   modeenvoy::ContextRecord record;
//   record.session_id = "s-1";
//   record.owner = "team-a";
//   record.history.push_back({.message = modeenvoy::MakeMessage(modeenvoy::Role::kUser, "hi"),
//                             .turn = 1});
//   std::string json = modeenvoy::SerializeContextRecord(record);
//   absl::StatusOr<modeenvoy::ContextRecord> back = modeenvoy::ParseContextRecord(json);
//
// Schema versions (kContextSchemaVersion is the one written):
//   1  session_id, owner, history (messages only), metadata, created/updated times.
//   2  adds per-entry turn numbers, pinned and summary flags, tool_calls (agent state),
//      model_choices, turn_count. A version-1 record is migrated on read: turns are
//      numbered by user messages, tool_calls are rebuilt from the assistant tool calls and
//      the tool messages answering them, model_choices stay empty.
// A record without "schema_version" is read as version 1. A record of a newer version than
// this library knows, or one that does not parse, is an error naming the session, never a
// silently reset conversation. Unknown members are corruption (kDataLoss): a schema change
// takes a new version.
// Thread safety: all functions are pure and thread-safe; structs are plain values.
#ifndef MODEENVOY_CONTEXT_RECORD_H_
#define MODEENVOY_CONTEXT_RECORD_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {

// The schema version SerializeContextRecord writes.
inline constexpr int kContextSchemaVersion = 2;

// One message of the history.
struct HistoryEntry {
  Message message;
  // The turn (1-based: one client request and its reply) that added the message; 0 for a
  // summary of dropped turns.
  int64_t turn = 0;
  // Kept by windowing whatever the budget (system prompts are kept without this flag).
  bool pinned = false;
  // This message summarizes turns that windowing dropped (a system message).
  bool summary = false;
  bool operator==(const HistoryEntry&) const = default;
};

// One tool invocation of the agent state: the assistant's call and, once a later request
// carried it, the tool's result.
struct ToolInvocation {
  int64_t turn = 0;  // the turn whose reply made the call
  std::string id;    // tool_call id
  std::string name;  // function name ("" for custom tools without one)
  std::string arguments;              // the model's arguments text, verbatim
  std::optional<std::string> result;  // the tool message's content, as text
  bool operator==(const ToolInvocation&) const = default;
};

// Which model served one turn.
struct ModelChoice {
  int64_t turn = 0;
  std::string model;           // the public model name the client asked for
  std::string provider;        // providers.<name> that answered
  std::string upstream_model;  // the provider's model name
  std::optional<Usage> usage;  // as reported (or estimated) for that turn
  bool usage_estimated = false;
  bool operator==(const ModelChoice&) const = default;
};

struct ContextRecord {
  int schema_version = kContextSchemaVersion;
  std::string session_id;
  // The API key name or user that created the session; only it may read or extend it.
  std::string owner;
  std::vector<HistoryEntry> history;
  // Client-settable string key/values (language, tier, domain, source app, ...).
  std::map<std::string, std::string> metadata;
  std::vector<ToolInvocation> tool_calls;
  std::vector<ModelChoice> model_choices;
  int64_t turn_count = 0;
  absl::Time created = absl::UnixEpoch();
  absl::Time updated = absl::UnixEpoch();
  bool operator==(const ContextRecord&) const = default;
};

// Writes `record` as compact JSON with "schema_version": kContextSchemaVersion (whatever
// record.schema_version says). Messages are written in OpenAI's wire form (as
// SerializeChatRequest writes them, unknown members included); times as RFC 3339 with
// nanoseconds, UTC.
MODEENVOY_EXPORT std::string SerializeContextRecord(const ContextRecord& record);

// Parses a stored record, migrating older schema versions (see the file comment). The
// result has schema_version == kContextSchemaVersion.
// Errors: kDataLoss "session <id>: ..." with the field path for a record that does not
// parse or violates the schema; kFailedPrecondition "session <id>: schema_version N is
// newer than this gateway reads (K)". `session_id` names the session in errors when the
// record's own id cannot be read.
MODEENVOY_EXPORT absl::StatusOr<ContextRecord> ParseContextRecord(std::string_view json,
                                                                  std::string_view session_id = "");

// The messages of `record.history`, in order (what a provider would be sent before
// windowing).
MODEENVOY_EXPORT std::vector<Message> HistoryMessages(const ContextRecord& record);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_RECORD_H_
