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

#include "modeenvoy/context/record.h"
#include "modeenvoy/export.h"

namespace modeenvoy::context_internal {

// MODEENVOY_EXPORT: private to lib/ (not installed), exported from a shared build so that
// benchmarks (bench/context/record_bench.cc) link against them.

// Appends `text` as a JSON string; invalid UTF-8 becomes U+FFFD (as the protocol writer).
MODEENVOY_EXPORT void AppendJsonString(std::string* out, std::string_view text);

// `{"schema_version":2,...,"metadata":{...},` (the part before "history").
MODEENVOY_EXPORT void AppendRecordHead(std::string* out, const ContextRecord& record);
MODEENVOY_EXPORT void AppendHistoryEntry(std::string* out, const HistoryEntry& entry);
MODEENVOY_EXPORT void AppendToolInvocation(std::string* out, const ToolInvocation& invocation);
MODEENVOY_EXPORT void AppendModelChoice(std::string* out, const ModelChoice& choice);

// Serialized bytes of a record whose head is `head_bytes` long and whose three arrays hold
// `n_*` elements of `*_bytes` summed bytes: exactly SerializeContextRecord(record).size().
size_t SerializedSize(size_t head_bytes, size_t history_bytes, size_t n_history,
                      size_t tool_bytes, size_t n_tools, size_t choice_bytes,
                      size_t n_choices);

}  // namespace modeenvoy::context_internal

#endif  // MODEENVOY_LIB_CONTEXT_RECORD_INTERNAL_H_
