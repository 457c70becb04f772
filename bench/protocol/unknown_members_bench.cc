// bench/protocol/unknown_members_bench.cc: parse and validate cost of a chat request whose
// top-level object carries many short unknown members (issue 8). Every unknown member is
// kept in ChatRequest::extra and checked against the earlier ones for a repeat, before
// auth has run; the cost per byte must not grow with the body.
//   build/bench/protocol/protocol_bench --benchmark_filter=UnknownMembers
// Bodies go from 1 KiB to 1 MiB (about 100k members); the reported BigO fit and the flat
// bytes_per_second across sizes show linear growth.
#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {
namespace {

// A valid request padded to about `target` bytes with members "k0":0, "k1":0, ... in base
// 36 (at most 4 characters up to 1.6M members, so about 10 bytes each). Sets *members to
// the number of unknown members.
std::string UnknownMembersBody(size_t target, int64_t* members) {
  std::string body = R"({"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}])";
  int64_t n = 0;
  std::string key;
  while (body.size() + 1 < target) {
    key.clear();
    for (int64_t v = n; ; v /= 36) {
      key.push_back("0123456789abcdefghijklmnopqrstuvwxyz"[v % 36]);
      if (v < 36) break;
    }
    absl::StrAppend(&body, ",\"k", key, "\":0");
    ++n;
  }
  body.push_back('}');
  *members = n;
  return body;
}

void BM_ParseUnknownMembers(benchmark::State& state) {
  int64_t members = 0;
  const std::string body = UnknownMembersBody(static_cast<size_t>(state.range(0)), &members);
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
    if (!r.ok() || static_cast<int64_t>(r->extra.size()) != members) {
      state.SkipWithError("unexpected parse result");
      break;
    }
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations() * members);
  state.SetComplexityN(members);
  state.counters["members"] = static_cast<double>(members);
}
BENCHMARK(BM_ParseUnknownMembers)
    ->RangeMultiplier(4)
    ->Range(1 << 10, 1 << 20)
    ->Unit(benchmark::kMicrosecond)
    ->Complexity();

// ValidateChatRequest() on the parsed request: it checks `extra` for repeats again (the
// object may have been built or edited by hand).
void BM_ValidateUnknownMembers(benchmark::State& state) {
  int64_t members = 0;
  const std::string body = UnknownMembersBody(static_cast<size_t>(state.range(0)), &members);
  absl::StatusOr<ChatRequest> r = ParseChatRequest(body);
  if (!r.ok()) {
    state.SkipWithError("parse failed");
    return;
  }
  for (auto _ : state) {
    absl::Status s = ValidateChatRequest(*r);
    if (!s.ok()) {
      state.SkipWithError("unexpected validation result");
      break;
    }
    benchmark::DoNotOptimize(s);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations() * members);
  state.SetComplexityN(members);
}
BENCHMARK(BM_ValidateUnknownMembers)
    ->RangeMultiplier(4)
    ->Range(1 << 10, 1 << 20)
    ->Unit(benchmark::kMicrosecond)
    ->Complexity();

}  // namespace
}  // namespace modeenvoy
