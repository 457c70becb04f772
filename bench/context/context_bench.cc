// The context component's per-request cost in memory: load the session, fit it into the
// window, append the turn.
//   MODEENVOY_DATA_DIR=.data build-release/bench/context/context_bench
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true  (one command line)
// Tokenizing the new text is excluded by construction: every iteration sends the same new
// message, whose count the MessageTokenCache holds after the first iteration (the
// benchmark checks that the cache misses no more after warm-up), so what is measured is
// the store, the window's bookkeeping and the lookups of what is not counted yet.
// A request as the gateway should make it: Get shares the stored record, FitContext reads
// the counts kept with it (WindowOptions::history_counts) and leaves the messages in the
// record (copy_messages = false: the provider request is serialized from the history less
// the dropped entries), and the record is released before the Append, which then extends
// it in place. BM_LoadWindowAppendHeld is the same request holding the record across the
// Append (copied on write) and copying the window's messages: the gateway's context filter
// until it released the record before its Append; BM_LoadWindowAppendCopied is the filter's
// path now (the window's messages copied into the provider request, the record released
// before the Append). BM_FitContextOnly windows a history without kept counts (a record
// read from Redis), hashing every message.
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace {

using modeenvoy::ContextAppend;
using modeenvoy::HistoryEntry;
using modeenvoy::MakeMessage;
using modeenvoy::Role;
using modeenvoy::StoredContext;

std::shared_ptr<const modeenvoy::Encoding> O200k() {
  modeenvoy::EncodingOptions options;
  if (std::getenv("MODEENVOY_TOKENIZER_DIR") == nullptr) {
    const char* d = std::getenv("MODEENVOY_DATA_DIR");
    options.tokenizer_dir = std::string(d != nullptr ? d : ".data") + "/tokenizers";
  }
  auto enc = modeenvoy::GetEncoding("o200k_base", options);
  return enc.ok() ? *enc : nullptr;
}

// A session of `turns` turns: a system prompt, then a user question (~15 words) and an
// assistant answer (~40 words) per turn.
ContextAppend Session(int turns) {
  ContextAppend a;
  a.owner = "team-a";
  a.entries.push_back({.message = MakeMessage(Role::kSystem, "You are a concise assistant."),
                       .turn = 1, .pinned = false, .summary = false});
  for (int t = 1; t <= turns; ++t) {
    a.entries.push_back(
        {.message = MakeMessage(Role::kUser, absl::StrCat("Question ", t,
                                                          ": how does the window keep the most "
                                                          "recent turns of a long conversation?")),
         .turn = t, .pinned = false, .summary = false});
    a.entries.push_back(
        {.message = MakeMessage(
             Role::kAssistant,
             absl::StrCat("Answer ", t,
                          ": it counts every message once, caches the count by a hash of the "
                          "message, and drops the oldest whole turns first, keeping system "
                          "prompts and pinned messages in place and tool calls with their "
                          "results, until the rest fits the budget.")),
         .turn = t, .pinned = false, .summary = false});
  }
  a.turns = turns;
  return a;
}

template <typename T>
T Sync(auto&& start) {
  std::optional<T> out;
  start([&](T v) { out = std::move(v); });
  return *std::move(out);
}

std::optional<StoredContext> Load(modeenvoy::ContextStore& store) {
  return *Sync<absl::StatusOr<std::optional<StoredContext>>>(
      [&](auto cb) { store.Get("s-1", std::move(cb)); });
}

// Get + FitContext + Append of one new user message and the reply, on a 20-turn session.
// Every 16 requests the session is put back to 20 turns (timing paused), so it holds 20 to
// 36 turns while measured.
void LoadWindowAppend(benchmark::State& state, bool hold, bool copy) {
  auto enc = O200k();
  if (enc == nullptr) return state.SkipWithError("o200k_base not found (run scripts/setup.sh)");
  const int turns = static_cast<int>(state.range(0));
  auto store = modeenvoy::NewMemoryContextStore({});
  modeenvoy::MessageTokenCache cache({});
  ContextAppend initial = Session(turns);
  const std::vector<HistoryEntry> initial_entries = initial.entries;
  if (!Sync<absl::StatusOr<uint64_t>>(
           [&](auto cb) { store->Append("s-1", 0, std::move(initial), std::move(cb)); })
           .ok()) {
    return state.SkipWithError("creating the session failed");
  }
  const std::vector<modeenvoy::Message> fresh = {MakeMessage(Role::kUser, "And one more?")};
  const modeenvoy::Message reply = MakeMessage(Role::kAssistant, "One more.");
  uint64_t warm_misses = 0;
  int n = 0;
  for (auto _ : state) {
    std::optional<StoredContext> got = Load(*store);
    absl::StatusOr<modeenvoy::WindowResult> w = modeenvoy::FitContext(
        got->record->history, fresh, *enc,
        {.budget_tokens = 128000 - 4096, .history_counts = got->token_counts.get(),
         .copy_messages = copy},
        &cache);
    benchmark::DoNotOptimize(w->tokens);
    ContextAppend a;
    const int64_t turn = got->record->turn_count + 1;
    const uint64_t version = got->version;
    if (!hold) got.reset();
    a.entries.push_back({.message = fresh[0], .turn = turn, .pinned = false, .summary = false});
    a.entries.push_back({.message = reply, .turn = turn, .pinned = false, .summary = false});
    a.turns = 1;
    auto v = Sync<absl::StatusOr<uint64_t>>(
        [&](auto cb) { store->Append("s-1", version, std::move(a), std::move(cb)); });
    if (!v.ok()) return state.SkipWithError("append failed");
    if (++n == 1) warm_misses = cache.misses();
    if (n % 16 == 0) {
      state.PauseTiming();
      modeenvoy::ContextRecord r = *Load(*store)->record;
      r.history = initial_entries;
      r.turn_count = turns;
      if (!Sync<absl::StatusOr<uint64_t>>(
               [&](auto cb) { store->Replace("s-1", *v, std::move(r), std::move(cb)); })
               .ok()) {
        return state.SkipWithError("resetting the session failed");
      }
      // A Replace starts the session's counts afresh: count its entries again here, as the
      // session's first window after a real Replace (a summary) would, not in the next
      // measured request.
      std::optional<StoredContext> again = Load(*store);
      benchmark::DoNotOptimize(modeenvoy::FitContext(
          again->record->history, fresh, *enc,
          {.budget_tokens = 128000 - 4096, .history_counts = again->token_counts.get()},
          &cache));
      state.ResumeTiming();
    }
  }
  // After the first request every count is a cache hit: no new text was tokenized.
  if (cache.misses() > warm_misses + 1) {  // +1: the reply, first seen in the second request
    state.SkipWithError(absl::StrCat("cache missed after warm-up: ", cache.misses()).c_str());
  }
}
void BM_LoadWindowAppend(benchmark::State& state) { LoadWindowAppend(state, false, false); }
BENCHMARK(BM_LoadWindowAppend)->Arg(20);
void BM_LoadWindowAppendHeld(benchmark::State& state) { LoadWindowAppend(state, true, true); }
BENCHMARK(BM_LoadWindowAppendHeld)->Arg(20);
void BM_LoadWindowAppendCopied(benchmark::State& state) { LoadWindowAppend(state, false, true); }
BENCHMARK(BM_LoadWindowAppendCopied)->Arg(20);

// A session's next request (Get + FitContext, counts kept): 20 turns vs 200.
void BM_NextRequest(benchmark::State& state) {
  const int64_t budget = state.range(1);
  auto enc = O200k();
  if (enc == nullptr) return state.SkipWithError("o200k_base not found (run scripts/setup.sh)");
  auto store = modeenvoy::NewMemoryContextStore({});
  modeenvoy::MessageTokenCache cache({});
  if (!Sync<absl::StatusOr<uint64_t>>([&](auto cb) {
         store->Append("s-1", 0, Session(static_cast<int>(state.range(0))), std::move(cb));
       }).ok()) {
    return state.SkipWithError("creating the session failed");
  }
  const std::vector<modeenvoy::Message> fresh = {MakeMessage(Role::kUser, "And one more?")};
  for (auto _ : state) {
    std::optional<StoredContext> got = Load(*store);
    absl::StatusOr<modeenvoy::WindowResult> w = modeenvoy::FitContext(
        got->record->history, fresh, *enc,
        {.budget_tokens = budget, .history_counts = got->token_counts.get(),
         .copy_messages = false},
        &cache);
    benchmark::DoNotOptimize(w->tokens);
  }
}
// Everything fits (a 128k window), and a window of 2000 tokens that drops most turns.
BENCHMARK(BM_NextRequest)->Args({20, 128000 - 4096})->Args({200, 128000 - 4096})
    ->Args({20, 2000})->Args({200, 2000});

// The window alone on an already loaded 20- or 200-turn history (no store copy).
void BM_FitContextOnly(benchmark::State& state) {
  auto enc = O200k();
  if (enc == nullptr) return state.SkipWithError("o200k_base not found (run scripts/setup.sh)");
  modeenvoy::MessageTokenCache cache({});
  const std::vector<HistoryEntry> history = Session(static_cast<int>(state.range(0))).entries;
  const std::vector<modeenvoy::Message> fresh = {MakeMessage(Role::kUser, "And one more?")};
  for (auto _ : state) {
    absl::StatusOr<modeenvoy::WindowResult> w = modeenvoy::FitContext(
        history, fresh, *enc, {.budget_tokens = 128000 - 4096}, &cache);
    benchmark::DoNotOptimize(w->tokens);
  }
}
BENCHMARK(BM_FitContextOnly)->Arg(20)->Arg(200);

}  // namespace
