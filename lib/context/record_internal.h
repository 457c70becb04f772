// lib/context/record_internal.h: pieces of the record codec the stores share.
//
// SerializeContextRecord writes
//   <head>"history":[e1,e2,...],"tool_calls":[t1,...],"model_choices":[m1,...]}
// where <head> is everything before "history" (schema_version, ids, times, turn_count,
// metadata) and each element is written by the functions below. The memory store keeps a
// record's serialized size current without reserializing its history: it sizes only what
// an append adds (SerializedSize below).
#ifndef MODEENVOY_LIB_CONTEXT_RECORD_INTERNAL_H_
#define MODEENVOY_LIB_CONTEXT_RECORD_INTERNAL_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "modeenvoy/context/record.h"

namespace modeenvoy::context_internal {

// Appends `text` as a JSON string; invalid UTF-8 becomes U+FFFD (as the protocol writer).
void AppendJsonString(std::string* out, std::string_view text);

// `t` as the record writes times: RFC 3339 in UTC with nine fractional digits.
std::string Rfc3339(absl::Time t);

// `{"schema_version":2,...,"metadata":{...},` (the part before "history").
void AppendRecordHead(std::string* out, const ContextRecord& record);
void AppendHistoryEntry(std::string* out, const HistoryEntry& entry);
void AppendToolInvocation(std::string* out, const ToolInvocation& invocation);
void AppendModelChoice(std::string* out, const ModelChoice& choice);

// Serialized bytes of a record whose head is `head_bytes` long and whose three arrays hold
// `n_*` elements of `*_bytes` summed bytes: exactly SerializeContextRecord(record).size().
size_t SerializedSize(size_t head_bytes, size_t history_bytes, size_t n_history,
                      size_t tool_bytes, size_t n_tools, size_t choice_bytes,
                      size_t n_choices);

}  // namespace modeenvoy::context_internal

#endif  // MODEENVOY_LIB_CONTEXT_RECORD_INTERNAL_H_
