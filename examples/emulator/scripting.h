// examples/emulator/scripting.h: provider-neutral parts of the emulator (private).
// Sans-I/O: control headers, reply text and its pieces, token counts, ids, tool-call
// planning, and the ResponsePlan the server executes byte for byte.
#ifndef MODEENVOY_EXAMPLES_EMULATOR_SCRIPTING_H_
#define MODEENVOY_EXAMPLES_EMULATOR_SCRIPTING_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "examples/emulator/emulator.h"
#include "examples/emulator/provider_dialect.h"

namespace modeenvoy::emulator {

// Applies every x-emulator-* header of `headers` to `controls`; other headers are ignored.
// Errors: kInvalidArgument naming the header for an unknown x-emulator-* name or a bad
// value ("x-emulator-chunks: expected an integer in [0, 100000], got 'abc'").
absl::Status ApplyControlHeaders(const Headers& headers, ReplyControls* controls);

// Name of the header the status message of ApplyControlHeaders is about ("" if none).
std::string ControlHeaderOf(const absl::Status& status);

// The default token count: whitespace-separated words.
int64_t CountWords(std::string_view text);

// The reply text: controls.reply if set (verbatim), else `echo` (the last user message)
// without leading and trailing whitespace, else "OK".
std::string ReplyText(const ReplyControls& controls, std::string_view echo);

// Longest prefix of `text`, cut at a word boundary, that counts <= max_tokens.
std::string TruncateToTokens(std::string_view text, int64_t max_tokens,
                             const TokenCounter& count);

// Cuts `text` into stream pieces. chunks == 0: one piece per word, each word with the
// whitespace before it (" world"). chunks > 0: that many pieces of whole words as even as
// possible; with fewer words than chunks, pieces of whole UTF-8 code points; never more
// pieces than code points. Concatenated, the pieces are `text`; empty text gives none.
std::vector<std::string> SplitPieces(std::string_view text, int chunks);

// Cuts JSON text into fragments of about `size` bytes at UTF-8 boundaries (tool-call
// argument deltas).
std::vector<std::string> SplitFragments(std::string_view text, size_t size);

// A deterministic id: `prefix` plus `length` base62 characters derived from `seed`.
std::string MakeId(std::string_view prefix, size_t length, uint64_t seed);
uint64_t HashBytes(std::string_view bytes, uint64_t seed = 0);

// Tool-call rule shared by dialects (README.md):
//  - no tools, or tool_choice "none": no call;
//  - tool_choice naming a function: that function;
//  - tool_choice "required": each "call" line below, else the first tool;
//  - otherwise ("auto"), each line of the last user message of the form
//    `call <name> [<json object>]` whose name is a declared tool.
enum class ToolChoice { kAuto, kNone, kRequired, kNamed };
struct PlannedCall {
  std::string name;
  std::optional<std::string> arguments;  // unset: synthesize from the tool's schema
};
std::vector<PlannedCall> PlanToolCalls(std::string_view last_user_text,
                                       const std::vector<std::string>& tool_names,
                                       ToolChoice choice, std::string_view named);

// Arguments satisfying a JSON schema's required properties with placeholder values:
// enum -> first value, string -> "example", integer/number -> 1, boolean -> true,
// array -> [], object -> recursively; compact JSON text.
std::string ArgumentsFromSchema(const nlohmann::json& schema);

// What the server sends for one request, executed step by step.
struct ResponsePlan {
  int status = 200;
  Headers headers;         // besides framing headers (Content-Length, Transfer-Encoding)
  bool streaming = false;  // chunked; each part written and flushed on its own
  std::vector<std::string> parts;
  absl::Duration first_byte_latency = absl::ZeroDuration();
  absl::Duration part_interval = absl::ZeroDuration();
  FailMode fail = FailMode::kNone;
  absl::Duration stall = absl::InfiniteDuration();
  bool close = false;  // Connection: close after this response
};

// The dialect serving `request`, or null.
const ProviderDialect* FindDialect(const Request& request,
                                   const std::vector<std::unique_ptr<ProviderDialect>>& dialects);

// Plans the answer to a provider request (not /emulator/*). `queued` are controls queued
// with QueueControls for this request; they win over the request's own headers.
// REQUIRES: !dialects.empty().
ResponsePlan PlanResponse(const Request& request,
                          const std::vector<std::unique_ptr<ProviderDialect>>& dialects,
                          const EmulatorOptions& options, const Headers& queued,
                          uint64_t sequence);

// An error the HTTP layer detects itself (413, 431, 400 on unparsable HTTP), in the first
// dialect's format; the connection closes afterwards.
ResponsePlan PlanHttpError(ErrorCause cause, int status, const Request& request,
                           const std::vector<std::unique_ptr<ProviderDialect>>& dialects);

// GET /emulator/stats body.
std::string RenderStatsJson(const EmulatorStats& stats);

// POST /emulator/next body: {"times": N (default 1), "headers": {"x-emulator-...": "v"}}.
// Errors: kInvalidArgument for bad JSON or values.
absl::Status ParseQueuedControls(std::string_view body, Headers* headers, int* times);

// A JSON response plan for the /emulator/* endpoints.
ResponsePlan PlanJson(int status, std::string body);

}  // namespace modeenvoy::emulator

#endif  // MODEENVOY_EXAMPLES_EMULATOR_SCRIPTING_H_
