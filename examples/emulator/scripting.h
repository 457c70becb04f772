// examples/emulator/scripting.h: provider-neutral parts of the emulator (private).
// Sans-I/O: control headers, scripts, reply text and its pieces, token counts, ids,
// tool-call planning, composing the neutral reply, and the ResponsePlan the server
// executes byte for byte. Dialects (<provider>_dialect.cc) only parse and render.
#ifndef MODEENVOY_EXAMPLES_EMULATOR_SCRIPTING_H_
#define MODEENVOY_EXAMPLES_EMULATOR_SCRIPTING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/emulator/emulator.h"
#include "examples/emulator/provider_dialect.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy::emulator {

// Applies every x-emulator-* header of `headers` to `controls`; other headers are ignored.
// x-emulator-script is parsed (ParseScript) and kept in controls->script.
// Errors: kInvalidArgument naming the header for an unknown x-emulator-* name or a bad
// value ("x-emulator-chunks: expected an integer in [0, 100000], got 'abc'",
// "x-emulator-script: steps[1].error.status: expected an integer in [400, 599], got 200").
absl::Status ApplyControlHeaders(const Headers& headers, ReplyControls* controls);

// Name of the header the status message of ApplyControlHeaders is about ("" if none).
std::string ControlHeaderOf(const absl::Status& status);

// ---- Scripts ---------------------------------------------------------------------------
// A script tells the emulator what to answer to one request (README.md, "Scripts"):
//   {"reply": "Hi", "chunks": 2}
//   {"id": "retry-1", "steps": [{"error": {"status": 503}}, {"reply": "ok"}]}
// It arrives as the x-emulator-script header or as an `@emulator {...}` line of the
// prompt. Parsing is strict: an unknown field or a bad value is an error naming its path.

// Parses and validates a script. Errors: kInvalidArgument "<path>: <reason>", e.g.
// "steps[0].tool_calls[1].arguments: expected a JSON object or a string holding one".
absl::StatusOr<std::shared_ptr<const Script>> ParseScript(std::string_view json_text);

// Removes the directive line of `*text` (first non-blank characters "@emulator", then a
// blank, "{" or the end of the line) and returns the rest of that line (the script JSON),
// or nullopt, leaving `*text` unchanged, when there is none.
// Errors: kInvalidArgument when there is more than one directive line.
absl::StatusOr<std::optional<std::string>> TakeDirective(std::string* text);

// The step of `script` for its `attempt`-th use (0-based): steps[attempt], the last step
// once the steps are used up.
const ScriptStep& StepFor(const Script& script, uint64_t attempt);

// ---- Token counting --------------------------------------------------------------------

// How usage is counted for requests, chosen once per server (EmulatorOptions).
class UsageCounting {
 public:
  // Whitespace-separated words (no tokenizer).
  static UsageCounting Words();
  // tiktoken encodings by model (EncodingForModel; o200k_base for unknown models), loaded
  // with `options` (empty fields: $MODEENVOY_TOKENIZER_DIR, then tiktoken's cache).
  static UsageCounting Tokenizer(EncodingOptions options);
  // Tokenizer() when o200k_base loads with `options`, else Words(). For kTokenizer, an
  // o200k_base that does not load is an error (kNotFound/kDataLoss from GetEncoding).
  static absl::StatusOr<UsageCounting> Resolve(UsageCountingMode mode,
                                               const EncodingOptions& options);

  // The counter for a request naming `model`.
  // Errors: as GetEncoding when the model's encoding cannot be loaded.
  absl::StatusOr<TextCounter> ForModel(std::string_view model) const;
  bool words() const { return words_; }

 private:
  bool words_ = true;
  EncodingOptions options_;
};

// The default token count: whitespace-separated words.
int64_t CountWords(std::string_view text);

// The reply text: controls.reply if set (verbatim), else `echo` (the last user message)
// without leading and trailing whitespace, else "OK".
std::string ReplyText(const ReplyControls& controls, std::string_view echo);

// `tokens` tokens of deterministic English-looking text ("the of and ..."): every word is
// one token in the tiktoken encodings and one word for the word counter, so
// counter.Count(result) == tokens.
std::string LongText(int64_t tokens, const TextCounter& counter);

// Cuts `text` into stream pieces. chunks == 0: one piece per word, each word with the
// whitespace before it (" world"). chunks > 0: that many pieces of whole words as even as
// possible; with fewer words than chunks, pieces of whole UTF-8 code points; never more
// pieces than code points. Concatenated, the pieces are `text`; empty text gives none.
std::vector<std::string> SplitPieces(std::string_view text, int chunks);

// Cuts JSON text into fragments of about `size` bytes at UTF-8 boundaries (tool-call
// argument deltas).
std::vector<std::string> SplitFragments(std::string_view text, size_t size);

// ---- Embeddings ------------------------------------------------------------------------
// The emulator's vector for `text`, stable across runs and platforms (README.md,
// "Embeddings", gives the recipe so tests can compute it independently):
//   h = HashBytes(text); for i in [0, dims): z = SplitMix64(h + (i + 1) * 0x9E3779B97F4A7C15),
//   x_i = 2 * ((z >> 11) * 2^-53) - 1 (doubles); the vector is float32(x_i / |x|) (unit L2).
std::vector<float> EmulatedEmbedding(std::string_view text, int64_t dims);
uint64_t SplitMix64(uint64_t z);
// `[v0,v1,...]`, each float with the fewest digits that read back as it (as OpenAI writes).
std::string FloatArrayJson(const std::vector<float>& values);

// A deterministic id: `prefix` plus `length` base62 characters derived from `seed`.
std::string MakeId(std::string_view prefix, size_t length, uint64_t seed);
uint64_t HashBytes(std::string_view bytes, uint64_t seed = 0);

// Tool-call rule shared by dialects (README.md):
//  - no tools, or tool_choice "none": no call;
//  - tool_choice naming a function: that function;
//  - tool_choice "required": each "call" line below, else the first tool;
//  - otherwise ("auto"), each line of the last user message of the form
//    `call <name> [<json object>]` whose name is a declared tool.
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
std::string ArgumentsFromSchemaText(std::string_view schema_json);

// The provider-neutral answer to `request` (already parsed by its dialect), following
// `step` when the request is scripted (null: the built-in rules: echo, "call" lines,
// controls). Errors: kInvalidArgument naming the script field the request cannot satisfy
// ("cached_tokens: 50 exceeds the request's 20 prompt tokens").
absl::StatusOr<ScriptedReply> ComposeReply(const ParsedRequest& request,
                                           const ScriptStep* step,
                                           const ReplyControls& controls,
                                           const TextCounter& counter,
                                           const ProviderDialect& dialect);

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
  // Index of the part where kResetMid / kStallMid strike; unset: half of the parts.
  std::optional<size_t> fail_at;
  bool close = false;  // Connection: close after this response
};

// The dialect serving `request`, or null.
const ProviderDialect* FindDialect(const Request& request,
                                   const std::vector<std::unique_ptr<ProviderDialect>>& dialects);

// Returns the 0-based attempt number of the next use of the script with this id, and
// counts the use. Thread-safe when shared between threads.
using NextAttempt = std::function<uint64_t(std::string_view script_id)>;

// What PlanResponse needs from the server besides the request.
struct PlanContext {
  const std::vector<std::unique_ptr<ProviderDialect>>& dialects;  // REQUIRES: non-empty
  const EmulatorOptions& options;
  const UsageCounting& counting;
  const NextAttempt& next_attempt;
  const Clock& clock;
};

// Plans the answer to a provider request (not /emulator/*). `queued` are controls queued
// with QueueControls for this request; they win over the request's own headers.
ResponsePlan PlanResponse(const Request& request, const PlanContext& ctx,
                          const Headers& queued, uint64_t sequence);

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
