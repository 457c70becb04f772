// The context record codec (record.h): what every store pays per Get and per write.
//   build-rel/bench/context/record_bench --benchmark_repetitions=5
//       --benchmark_report_aggregates_only=true  (one command line)
// Records of 20 and 200 turns as the gateway keeps them: a pinned system prompt; per turn a
// user question and the assistant's answer, every third turn a tool call and its result
// between them, every fifth question with an image part; metadata; one model choice with
// usage per turn. bytes_per_second is the record's JSON size per unit of CPU time.
#include <cstdint>
#include <string_view>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/protocol/chat.h"

namespace {

using modeenvoy::ContentPart;
using modeenvoy::ContentPartType;
using modeenvoy::ContextRecord;
using modeenvoy::MakeMessage;
using modeenvoy::Message;
using modeenvoy::Role;

constexpr char kAnswer[] =
    "The window counts every message once, caches the count by a hash of the message, and "
    "drops the oldest whole turns first, keeping system prompts and pinned messages in place "
    "and tool calls with their results, until the rest fits the budget. \"Quoted\" text and "
    "caf\xC3\xA9 are kept as written.";

ContextRecord Record(int turns) {
  ContextRecord r;
  r.session_id = "9f1c2a7e-5b3d-4e8f-a6c1-2d7b9e0f4a31";
  r.owner = "team-checkout";
  r.created = absl::FromUnixNanos(1764770000123456789);
  r.updated = r.created + absl::Seconds(37 * turns);
  r.turn_count = turns;
  r.metadata = {{"language", "en"}, {"tier", "gold"}, {"source_app", "support-widget"}};
  r.history.push_back({.message = MakeMessage(Role::kSystem,
                                              "You are a concise support assistant for an "
                                              "online shop. Answer in the user's language."),
                       .turn = 1, .pinned = true, .summary = false});
  for (int t = 1; t <= turns; ++t) {
    Message user = MakeMessage(
        Role::kUser, absl::StrCat("Question ", t, ": where is my order #", 40000 + t,
                                  " and when will it arrive at the Berlin address?"));
    if (t % 5 == 0) {
      ContentPart text;
      text.text = std::get<std::string>(*user.content);
      ContentPart image;
      image.type = ContentPartType::kImageUrl;
      image.image_url = modeenvoy::ImageUrl{
          .url = absl::StrCat("https://cdn.example.com/uploads/receipt-", t, ".png"),
          .detail = "low", .extra = {}};
      user.content = std::vector<ContentPart>{text, image};
    }
    r.history.push_back({.message = user, .turn = t, .pinned = false, .summary = false});
    if (t % 3 == 0) {
      const std::string id = absl::StrCat("call_", t, "_a8Hq2x");
      const std::string args =
          absl::StrCat(R"({"order_id":")", 40000 + t, R"(","fields":["status","eta"]})");
      Message call = MakeMessage(Role::kAssistant);
      modeenvoy::ToolCall tc;
      tc.id = id;
      tc.function = modeenvoy::FunctionCall{.name = "lookup_order", .arguments = args,
                                            .extra = {}};
      call.tool_calls = {tc};
      Message result = MakeMessage(
          Role::kTool, absl::StrCat(R"({"status":"shipped","eta":"2026-12-0)", t % 9 + 1,
                                    R"(","carrier":"DHL","tracking":"JD0146000032)", t, "\"}"));
      result.tool_call_id = id;
      r.history.push_back({.message = call, .turn = t, .pinned = false, .summary = false});
      r.history.push_back({.message = result, .turn = t, .pinned = false, .summary = false});
      r.tool_calls.push_back({.turn = t, .id = id, .name = "lookup_order", .arguments = args,
                              .result = std::get<std::string>(*result.content)});
    }
    r.history.push_back({.message = MakeMessage(Role::kAssistant, absl::StrCat(t, ". ", kAnswer)),
                         .turn = t, .pinned = false, .summary = false});
    modeenvoy::Usage usage;
    usage.prompt_tokens = 180 + 95 * t;
    usage.completion_tokens = 64;
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    usage.prompt_tokens_details = modeenvoy::PromptTokensDetails{
        .cached_tokens = 128 * (t / 2), .audio_tokens = {}, .extra = {}};
    r.model_choices.push_back({.turn = t, .model = "gpt-4o", .provider = "openai",
                               .upstream_model = "gpt-4o-2024-08-06", .usage = usage,
                               .usage_estimated = false});
  }
  return r;
}

void BM_SerializeContextRecord(benchmark::State& state) {
  const ContextRecord record = Record(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    std::string json = modeenvoy::SerializeContextRecord(record);
    bytes = json.size();
    benchmark::DoNotOptimize(json.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["record_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_SerializeContextRecord)->Arg(20)->Arg(200);

void BM_ParseContextRecord(benchmark::State& state) {
  const ContextRecord record = Record(static_cast<int>(state.range(0)));
  const std::string json = modeenvoy::SerializeContextRecord(record);
  absl::StatusOr<ContextRecord> check = modeenvoy::ParseContextRecord(json);
  if (!check.ok() || !(*check == record)) {
    return state.SkipWithError("the record does not read back equal");
  }
  for (auto _ : state) {
    absl::StatusOr<ContextRecord> r = modeenvoy::ParseContextRecord(json);
    benchmark::DoNotOptimize(r->history.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
  state.counters["record_bytes"] = static_cast<double>(json.size());
}
BENCHMARK(BM_ParseContextRecord)->Arg(20)->Arg(200);

// The array elements and the head of a record's JSON, as the Redis store keeps them
// (each element as SerializeContextRecord writes it inside the record; record_internal.h):
// taken apart here through the public writer, one single-element record per part.
struct Parts {
  std::string head;  // `{"schema_version":2,...,"turn_count":N,` (before "metadata")
  std::string metadata;
  std::vector<std::string> history, tool_calls, model_choices;
};

std::string_view Between(std::string_view json, std::string_view open, std::string_view close) {
  const size_t from = json.find(open) + open.size();
  return json.substr(from, json.find(close, from) - from);
}

Parts Split(const ContextRecord& record) {
  Parts p;
  ContextRecord skeleton = record;
  skeleton.history.clear();
  skeleton.tool_calls.clear();
  skeleton.model_choices.clear();
  const std::string json = modeenvoy::SerializeContextRecord(skeleton);
  p.head = json.substr(0, json.find("\"metadata\":"));
  p.metadata = std::string(Between(json, "\"metadata\":", ",\"history\":["));
  ContextRecord one;
  for (const auto& e : record.history) {
    one.history = {e};
    p.history.emplace_back(Between(modeenvoy::SerializeContextRecord(one), "\"history\":[",
                                   "],\"tool_calls\":["));
  }
  one.history.clear();
  for (const auto& t : record.tool_calls) {
    one.tool_calls = {t};
    p.tool_calls.emplace_back(Between(modeenvoy::SerializeContextRecord(one),
                                      "\"tool_calls\":[", "],\"model_choices\":["));
  }
  one.tool_calls.clear();
  for (const auto& c : record.model_choices) {
    one.model_choices = {c};
    const std::string j = modeenvoy::SerializeContextRecord(one);
    constexpr std::string_view kOpen = "\"model_choices\":[";
    const size_t from = j.find(kOpen) + kOpen.size();
    p.model_choices.emplace_back(j.substr(from, j.size() - 2 - from));  // before "]}"
  }
  return p;
}

// What the Redis store does with a Get's reply (lib/context/redis_store.cc Assemble): the
// stored parts joined around the record's head, then ParseContextRecord. Redis I/O excluded.
void BM_ParseRedisParts(benchmark::State& state) {
  const ContextRecord record = Record(static_cast<int>(state.range(0)));
  const Parts parts = Split(record);
  auto join = [](std::string* out, const std::vector<std::string>& elements) {
    for (size_t i = 0; i < elements.size(); ++i) {
      if (i > 0) out->push_back(',');
      out->append(elements[i]);
    }
  };
  auto assemble = [&] {
    std::string json = parts.head;
    absl::StrAppend(&json, "\"metadata\":", parts.metadata, ",\"history\":[");
    join(&json, parts.history);
    json.append("],\"tool_calls\":[");
    join(&json, parts.tool_calls);
    json.append("],\"model_choices\":[");
    join(&json, parts.model_choices);
    json.append("]}");
    return json;
  };
  if (assemble() != modeenvoy::SerializeContextRecord(record)) {
    return state.SkipWithError("the parts do not assemble to the record");
  }
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string json = assemble();
    bytes = json.size();
    absl::StatusOr<ContextRecord> r = modeenvoy::ParseContextRecord(json, record.session_id);
    if (!r.ok()) return state.SkipWithError(std::string(r.status().message()).c_str());
    benchmark::DoNotOptimize(r->history.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["record_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_ParseRedisParts)->Arg(20)->Arg(200);

// A version-1 record (messages only, no schema_version member first): the migration path.
void BM_ParseVersion1Record(benchmark::State& state) {
  const ContextRecord record = Record(static_cast<int>(state.range(0)));
  std::string json = R"({"session_id":")" + record.session_id + R"(","owner":")" +
                     record.owner + R"(","history":[)";
  for (size_t i = 0; i < record.history.size(); ++i) {
    if (i > 0) json.push_back(',');
    modeenvoy::AppendMessageJson(&json, record.history[i].message);
  }
  json += "]}";
  absl::StatusOr<ContextRecord> check = modeenvoy::ParseContextRecord(json);
  if (!check.ok() || check->history.size() != record.history.size()) {
    return state.SkipWithError("the version-1 record does not read");
  }
  for (auto _ : state) {
    absl::StatusOr<ContextRecord> r = modeenvoy::ParseContextRecord(json);
    benchmark::DoNotOptimize(r->history.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * json.size()));
  state.counters["record_bytes"] = static_cast<double>(json.size());
}
BENCHMARK(BM_ParseVersion1Record)->Arg(20)->Arg(200);

}  // namespace
