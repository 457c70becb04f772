// bench/gateway/gateway_bench.cc: the in-process decision path of one chat request, no I/O.
//
//   build-rel/bench/gateway/gateway_bench --benchmark_min_time=1
//
// BM_DecisionPath is the budgeted number (DESIGN.md: "a few microseconds per request"):
// parse the body, run the filter chain (api_key_auth + headers), resolve the route, build
// the upstream request body. BM_GatewayHandle drives the same through Gateway::Handle with
// an upstream client that only records the call. The rest break the path down.
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "benchmark/benchmark.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy {
namespace {

constexpr char kConfig[] = R"({
  "providers": {"openai": {"type": "openai", "base_url": "https://api.openai.com/v1",
                           "api_key": "sk-upstream"}},
  "models": {"gpt-4o-mini": {"provider": "openai"},
             "llama": {"provider": "openai", "upstream_model": "meta-llama/Llama-3.1-8B"}},
  "routes": [{"match": {"model": "smart"},
              "targets": [{"model": "gpt-4o-mini", "weight": 9}, {"model": "llama", "weight": 1}]}],
  "filters": [
    {"type": "api_key_auth", "config": {"keys": [
      {"name": "a", "key": "sk-team-a-0000000001", "models": ["smart", "gpt-4o-mini"]},
      {"name": "b", "key": "sk-team-b-0000000002"}]}},
    {"type": "headers", "config": {"request": {"set": {"x-team": "a"}},
                                   "response": {"set": {"x-served-by": "modeenvoy"}}}}
  ]
})";

// A typical small chat request (system + user turn, a tool, sampling options).
constexpr char kBody[] = R"({"model":"smart","messages":[
  {"role":"system","content":"You are a helpful assistant. Answer briefly."},
  {"role":"user","content":"What is the weather like in Paris today, and should I bring an umbrella?"}],
  "temperature":0.2,"max_tokens":256,"stream":true,"stream_options":{"include_usage":true},
  "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather",
  "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
  "user":"u-123","vendor_extension":{"priority":"high"}})";

const HttpHeaders kHeaders = {{"host", "gateway.local"},
                              {"content-type", "application/json"},
                              {"authorization", "Bearer sk-team-a-0000000001"},
                              {"user-agent", "OpenAI/Python 1.40.0"}};

std::shared_ptr<const ConfigSnapshot> Snapshot() {
  static const auto* snapshot = new std::shared_ptr<const ConfigSnapshot>(*LoadConfig(kConfig));
  return *snapshot;
}

void BM_DecisionPath(benchmark::State& state) {
  std::shared_ptr<const ConfigSnapshot> snapshot = Snapshot();
  std::unique_ptr<PollEventLoop> loop = NewPollEventLoop();
  uint64_t draw = 0;
  for (auto _ : state) {
    RequestContext ctx;
    ctx.request.method = "POST";
    ctx.request.path = "/v1/chat/completions";
    ctx.request.headers = kHeaders;
    ctx.snapshot = snapshot.get();
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(kBody);
    ctx.chat = &*chat;
    ctx.route = *snapshot->Resolve(chat->model, ++draw);
    FilterChain chain(snapshot->CreateFilters(), &ctx, loop.get());
    bool allowed = false;
    chain.RunRequest([&](std::optional<LocalReply> reply) { allowed = !reply.has_value(); });
    std::string model = std::move(chat->model);
    chat->model = ctx.route.model->upstream_model;
    std::string upstream_body = SerializeChatRequest(*chat);
    benchmark::DoNotOptimize(allowed);
    benchmark::DoNotOptimize(upstream_body.data());
  }
}
BENCHMARK(BM_DecisionPath);

void BM_ParseChatRequest(benchmark::State& state) {
  for (auto _ : state) {
    absl::StatusOr<ChatRequest> chat = ParseChatRequest(kBody);
    benchmark::DoNotOptimize(chat->messages.data());
  }
  state.SetBytesProcessed(state.iterations() * (sizeof(kBody) - 1));
}
BENCHMARK(BM_ParseChatRequest);

void BM_FilterChain(benchmark::State& state) {
  std::shared_ptr<const ConfigSnapshot> snapshot = Snapshot();
  std::unique_ptr<PollEventLoop> loop = NewPollEventLoop();
  ChatRequest chat = *ParseChatRequest(kBody);
  RequestContext ctx;
  ctx.request.headers = kHeaders;
  ctx.chat = &chat;
  ctx.snapshot = snapshot.get();
  for (auto _ : state) {
    ctx.metadata.clear();
    ctx.upstream_header_mutations.clear();
    FilterChain chain(snapshot->CreateFilters(), &ctx, loop.get());
    bool allowed = false;
    chain.RunRequest([&](std::optional<LocalReply> reply) { allowed = !reply.has_value(); });
    ResponseHead head{200, {{"content-type", "text/event-stream"}}, true};
    chain.RunResponseHeaders(head, [] {});
    benchmark::DoNotOptimize(allowed);
  }
}
BENCHMARK(BM_FilterChain);

void BM_Resolve(benchmark::State& state) {
  std::shared_ptr<const ConfigSnapshot> snapshot = Snapshot();
  uint64_t draw = 0;
  for (auto _ : state) {
    absl::StatusOr<ResolvedRoute> r = snapshot->Resolve("smart", ++draw);
    benchmark::DoNotOptimize(r->model);
  }
}
BENCHMARK(BM_Resolve);

void BM_SerializeUpstreamBody(benchmark::State& state) {
  ChatRequest chat = *ParseChatRequest(kBody);
  for (auto _ : state) {
    std::string body = SerializeChatRequest(chat);
    benchmark::DoNotOptimize(body.data());
  }
}
BENCHMARK(BM_SerializeUpstreamBody);

// Records the call instead of making it.
class NullUpstream : public UpstreamClient {
 public:
  class Call : public UpstreamCall {
   public:
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }
  };
  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler*) override {
    benchmark::DoNotOptimize(request.body.data());
    return std::make_unique<Call>();
  }
};

class NullSink : public ResponseSink {
 public:
  void SendHeaders(int status, const HttpHeaders&, bool) override { last_status = status; }
  bool SendBody(std::string_view) override { return true; }
  void Finish(bool) override {}
  int last_status = 0;
};

// The whole engine on one request per iteration, through to the (null) upstream or a local
// reply; `expected_status` is what the sink must have seen (0: no local reply).
void RunGatewayHandle(benchmark::State& state, const HttpHeaders& headers, int expected_status,
                      const char* unexpected) {
  ConfigStore store;
  if (!store.Load(kConfig).ok()) {
    state.SkipWithError("config");
    return;
  }
  std::unique_ptr<PollEventLoop> loop = NewPollEventLoop();
  NullUpstream upstream;
  auto gateway = *NewGateway({.config = &store, .loop = loop.get(), .upstream = &upstream});
  NullSink sink;
  for (auto _ : state) {
    HttpRequest request{.method = "POST", .path = "/v1/chat/completions", .headers = headers,
                        .body = kBody, .remote_address = "127.0.0.1:5000"};
    std::unique_ptr<ActiveRequest> active = gateway->Handle(std::move(request), &sink);
    benchmark::DoNotOptimize(active.get());
  }
  if (sink.last_status != expected_status) state.SkipWithError(unexpected);
}

void BM_GatewayHandle(benchmark::State& state) {
  RunGatewayHandle(state, kHeaders, 0, "request was answered locally");
}
BENCHMARK(BM_GatewayHandle);

void BM_GatewayHandleRejected(benchmark::State& state) {
  HttpHeaders headers = kHeaders;
  headers[2].second = "Bearer sk-wrong-key-000000000";
  RunGatewayHandle(state, headers, 401, "expected 401");
}
BENCHMARK(BM_GatewayHandleRejected);

}  // namespace
}  // namespace modeenvoy
