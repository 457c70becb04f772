// lib/context/gateway/access.cc: the context store and windowing for other components
// (include/modeenvoy/context/gateway.h: ContextStoreForSnapshot, ContextOwnerOf,
// FitHistoryToRequestModel), and the window resolution the context filter shares.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/context/gateway/internal.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace modeenvoy {
namespace context_internal {

// Attempts of a plan looked at to find the smallest context window.
constexpr int kMaxPlanAttempts = 8;

void ResolveContextWindow(const RequestContext& ctx, uint64_t draw, int64_t* window,
                          std::shared_ptr<const Encoding>* encoding) {
  *window = 0;
  encoding->reset();
  RoutingRequest request;
  request.model = ctx.chat->model;
  request.chat = ctx.chat;
  request.headers = &ctx.request.headers;
  request.metadata = &ctx.metadata;
  request.draw = draw;
  absl::StatusOr<std::unique_ptr<AttemptPlan>> plan = ctx.snapshot->Plan(request);
  if (!plan.ok()) return;  // the engine answers the unknown model after the filters
  std::string first_upstream;
  for (int i = 0; i < kMaxPlanAttempts; ++i) {
    std::optional<Attempt> attempt = (*plan)->Next();
    if (!attempt.has_value()) break;
    if (first_upstream.empty()) first_upstream = attempt->model->upstream_model;
    // The configured window, else the published one of the upstream model, else unknown.
    int64_t tokens = 0;
    if (const auto* limit = static_cast<const ModelTokenLimit*>(
            attempt->model->extension("context_window"))) {
      tokens = limit->tokens;
    } else if (absl::StatusOr<int64_t> known =
                   ContextWindowForModel(attempt->model->upstream_model);
               known.ok()) {
      tokens = *known;
    }
    if (tokens > 0 && (*window == 0 || tokens < *window)) *window = tokens;
    // Walk the fallbacks as if this attempt failed.
    AttemptOutcome failed;
    failed.status = absl::UnavailableError("planning the context window");
    failed.failure = FailureClass::kServerError;
    (*plan)->Report(*attempt, failed);
  }
  // GetEncoding loads a rank file on its first use in the process (the example proxy has
  // loaded o200k and cl100k at start for its usage estimator); unavailable: no windowing.
  absl::StatusOr<std::string> name = EncodingNameForModel(first_upstream);
  absl::StatusOr<std::shared_ptr<const Encoding>> loaded =
      GetEncoding(name.ok() ? std::string_view(*name) : std::string_view("o200k_base"));
  if (loaded.ok()) *encoding = *std::move(loaded);
}

}  // namespace context_internal

absl::StatusOr<std::optional<ContextStoreAccess>> ContextStoreForSnapshot(
    const ConfigSnapshot& snapshot, EventLoop& loop) {
  const context_internal::ContextConfig* config = context_internal::EnabledSection(&snapshot);
  if (config == nullptr) return std::nullopt;
  absl::StatusOr<std::shared_ptr<ContextStore>> store = config->stores->For(loop);
  if (!store.ok()) {
    return WithErrorCode(
        WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                           "The conversation store is unavailable: %s",
                           store.status().message())),
                       503),
        "context_unavailable");
  }
  ContextStoreAccess access;
  access.store = *std::move(store);
  access.timeout = config->store_timeout;
  access.reserve_output_tokens = config->reserve_output_tokens;
  access.log = config->log;
  return access;
}

std::string ContextOwnerOf(const RequestContext& ctx) { return context_internal::OwnerOf(ctx); }

absl::StatusOr<std::vector<Message>> FitHistoryToRequestModel(
    const RequestContext& ctx, uint64_t draw, const std::vector<HistoryEntry>& history,
    const std::vector<Message>& new_messages, int64_t reserve_output_tokens) {
  int64_t window = 0;
  std::shared_ptr<const Encoding> encoding;
  if (!history.empty()) context_internal::ResolveContextWindow(ctx, draw, &window, &encoding);
  if (window <= 0 || encoding == nullptr) {
    std::vector<Message> all;
    all.reserve(history.size() + new_messages.size());
    for (const HistoryEntry& e : history) all.push_back(e.message);
    all.insert(all.end(), new_messages.begin(), new_messages.end());
    return all;
  }
  // What the request spends outside its messages: tools and the reply priming.
  ChatRequest outside = *ctx.chat;
  outside.messages.clear();
  ChatTokenOptions count_options;
  count_options.model = outside.model;
  const int64_t overhead = CountChatTokens(*encoding, outside, count_options).prompt_tokens;
  const int64_t reserve =
      ctx.chat->max_completion_tokens.value_or(ctx.chat->max_tokens.value_or(reserve_output_tokens));
  WindowOptions options;
  options.budget_tokens = window - reserve - overhead;
  options.counting.model = outside.model;
  const context_internal::ContextConfig* config = context_internal::EnabledSection(ctx.snapshot);
  MessageTokenCache* cache = config != nullptr ? config->token_cache.get() : nullptr;
  absl::StatusOr<WindowResult> fitted =
      FitContext(history, new_messages, *encoding, options, cache);
  if (!fitted.ok()) return fitted.status();
  return std::move(fitted->messages);
}

}  // namespace modeenvoy
