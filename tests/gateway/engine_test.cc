// tests/gateway/engine_test.cc: the engine's extension points end to end through NewGateway
// with a custom Registry: registered endpoints, provider dialects, the pausable response
// phase, attempt plans, config sections, services and limits. Providers are loopback
// TestHttpServers (or, where the order of upstream bytes must be exact, a fake client).
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/chat_test_util.h"
#include "tests/gateway/recording_sink.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::ChatBody;
using gateway_testing::CompletionJson;
using gateway_testing::kTestWait;
using gateway_testing::Post;
using gateway_testing::ReceivedRequest;
using gateway_testing::RecordingSink;
using gateway_testing::TestConnection;
using gateway_testing::TestHttpServer;
using gateway_testing::UnusedPort;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Json = nlohmann::json;

// absl::StrCat for std::string_view pieces (absl's string_view is its own type here).
template <typename... Pieces>
std::string Cat(const Pieces&... pieces) {
  std::string out;
  (out.append(std::string_view(pieces)), ...);
  return out;
}

// Unified chunk JSON carrying `content`.
std::string ChunkJson(std::string_view content) {
  return absl::StrFormat(
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)"
      R"("choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]})",
      content);
}

std::string UsageChunkJson(int prompt, int completion) {
  return absl::StrFormat(
      R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m",)"
      R"("choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}})",
      prompt, completion, prompt + completion);
}

std::string Sse(std::string_view data) { return Cat("data: ", data, "\n\n"); }

const std::string kStreamBody =
    Sse(ChunkJson("t1")) + Sse(ChunkJson("t2")) + Sse(UsageChunkJson(3, 4));
const std::string kDone = "data: [DONE]\n\n";

// An OpenAI-compatible provider. Model "fail-503" answers 503; streams send two content
// chunks, a usage chunk and [DONE] in one go.
void Provider(TestConnection& c) {
  Json req = Json::parse(c.request().body, nullptr, false);
  if (req.is_discarded()) {
    c.SendResponse(400, {{"content-type", "application/json"}}, R"({"error":"bad json"})");
    return;
  }
  const std::string model = req.value("model", "");
  if (model == "fail-503") {
    c.SendResponse(503, {{"content-type", "application/json"}},
                   R"({"error":{"message":"overloaded","type":"server_error"}})");
    return;
  }
  if (req.value("stream", false)) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(kStreamBody);
    c.SendChunk(kDone);
    c.EndChunked();
    return;
  }
  c.SendResponse(200, {{"content-type", "application/json"}}, CompletionJson(model));
}

HttpRequest Get(std::string path, std::string method = "GET") {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.remote_address = "127.0.0.1:1";
  return r;
}

std::vector<std::string> UpstreamModels(const TestHttpServer& server) {
  std::vector<std::string> out;
  for (const ReceivedRequest& r : server.requests()) {
    out.push_back(Json::parse(r.body).value("model", ""));
  }
  return out;
}

// What a scripted filter does at each step; unset steps continue. Each call is logged as
// "<name>:<step>".
struct Script {
  std::string name;
  std::vector<std::string>* log = nullptr;
  std::function<FilterResult(RequestContext&, FilterCallbacks&)> on_request;
  std::function<FilterStatus(RequestContext&, ResponseHead&, FilterCallbacks&)> on_headers;
  std::function<FilterStatus(RequestContext&, ResponseHead&, std::string&, FilterCallbacks&)>
      on_body;
  std::function<FilterStatus(RequestContext&, std::vector<SseEvent>&, FilterCallbacks&)>
      on_events;
  std::function<FilterStatus(RequestContext&, const ResponseOutcome&, FilterCallbacks&)>
      on_complete;
  FilterCallbacks* callbacks = nullptr;  // of the latest request
  std::optional<ResponseOutcome> outcome;
  int destroyed = 0;
};

class ScriptFilter : public Filter {
 public:
  explicit ScriptFilter(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& cb) override {
    Note("request", cb);
    return s_->on_request ? s_->on_request(ctx, cb) : FilterResult::Continue();
  }
  FilterStatus OnResponseHeaders(RequestContext& ctx, ResponseHead& head,
                                 FilterCallbacks& cb) override {
    Note("headers", cb);
    return s_->on_headers ? s_->on_headers(ctx, head, cb) : FilterStatus::kContinue;
  }
  FilterStatus OnResponseBody(RequestContext& ctx, ResponseHead& head, std::string& body,
                              FilterCallbacks& cb) override {
    Note("body", cb);
    return s_->on_body ? s_->on_body(ctx, head, body, cb) : FilterStatus::kContinue;
  }
  FilterStatus OnResponseEvents(RequestContext& ctx, std::vector<SseEvent>& events,
                                FilterCallbacks& cb) override {
    Note("events", cb);
    return s_->on_events ? s_->on_events(ctx, events, cb) : FilterStatus::kContinue;
  }
  FilterStatus OnResponseComplete(RequestContext& ctx, const ResponseOutcome& outcome,
                                  FilterCallbacks& cb) override {
    Note("complete", cb);
    s_->outcome = outcome;
    return s_->on_complete ? s_->on_complete(ctx, outcome, cb) : FilterStatus::kContinue;
  }
  void OnDestroy() override { ++s_->destroyed; }

 private:
  void Note(std::string_view step, FilterCallbacks& cb) {
    s_->callbacks = &cb;
    if (s_->log != nullptr) s_->log->push_back(Cat(s_->name, ":", step));
  }
  std::shared_ptr<Script> s_;
};

class ScriptFactory : public FilterFactory {
 public:
  explicit ScriptFactory(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<ScriptFilter>(s_);
  }

 private:
  std::shared_ptr<Script> s_;
};

// A local endpoint handler from a function; `timer` is the handler's own, cancelled on
// OnDestroy.
class FnHandler : public Filter {
 public:
  using Fn = std::function<FilterResult(FnHandler&, RequestContext&, FilterCallbacks&)>;
  explicit FnHandler(Fn fn) : fn_(std::move(fn)) {}
  FnHandler(const FnHandler& other) : Filter(), fn_(other.fn_) {}
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& cb) override {
    return fn_(*this, ctx, cb);
  }
  void OnDestroy() override { timer.reset(); }
  std::unique_ptr<Timer> timer;

 private:
  Fn fn_;
};

std::shared_ptr<const FilterFactory> Handler(FnHandler::Fn fn) {
  return MakeFilterFactory<FnHandler>(FnHandler(std::move(fn)));
}

LocalReply JsonReply(int status, std::string body) {
  LocalReply r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
    ASSERT_TRUE(registry_.filters()
                    .Register("script",
                              [this](std::string_view config_json, const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                                Json c = Json::parse(config_json);
                                auto it = scripts_.find(c.value("name", ""));
                                if (it == scripts_.end()) {
                                  return InvalidFieldError("name", "no such script");
                                }
                                return std::make_unique<ScriptFactory>(it->second);
                              })
                    .ok());
  }

  Script& AddScript(const std::string& name) {
    auto s = std::make_shared<Script>();
    s->name = name;
    s->log = &log_;
    scripts_[name] = s;
    return *s;
  }

  // A `filters` array of script filters, in order.
  static std::string Scripts(const std::vector<std::string>& names) {
    std::vector<std::string> entries;
    for (const std::string& n : names) {
      entries.push_back(absl::StrFormat(
          R"({"type": "script", "name": "%s", "config": {"name": "%s"}})", n, n));
    }
    return Cat("[", absl::StrJoin(entries, ", "), "]");
  }

  // Provider "up" at `base`; models demo -> upstream-demo, demo2 -> up-2, bad -> fail-503,
  // bad2 -> fail-503.
  static std::string Config(const std::string& base, const std::string& filters = "[]",
                            const std::string& routes = "[]") {
    return absl::StrFormat(
        R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
            "models": {"demo": {"provider": "up", "upstream_model": "upstream-demo"},
                       "demo2": {"provider": "up", "upstream_model": "up-2"},
                       "bad": {"provider": "up", "upstream_model": "fail-503"},
                       "bad2": {"provider": "up", "upstream_model": "fail-503"}},
            "routes": %s, "filters": %s})",
        base, routes, filters);
  }

  void Start(const std::string& config, GatewayOptions options = {},
             UpstreamClient* upstream = nullptr) {
    store_ = std::make_unique<ConfigStore>(ConfigLoadOptions{.registry = &registry_});
    absl::Status s = store_->Load(config);
    ASSERT_TRUE(s.ok()) << s;
    options.config = store_.get();
    options.loop = loop_.get();
    options.upstream = upstream != nullptr ? upstream : client_.get();
    absl::StatusOr<std::unique_ptr<Gateway>> gw = NewGateway(std::move(options));
    ASSERT_TRUE(gw.ok()) << gw.status();
    gateway_ = std::move(*gw);
  }

  bool RunUntil(std::function<bool()> done) {
    return loop_->RunUntil([&] { return done(); }, kTestWait);
  }
  void RunIdle() { loop_->RunUntil([] { return false; }, absl::Milliseconds(50)); }

  std::unique_ptr<ActiveRequest> Serve(HttpRequest request, RecordingSink* sink) {
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(std::move(request), sink);
    EXPECT_TRUE(RunUntil([&] { return sink->finished.has_value(); }));
    return active;
  }

  // Starts the gateway with the script filters `filters` in front of `server` and serves one
  // chat request for "demo" (streamed if `stream`) to completion.
  RecordingSink ServeDemoChat(const TestHttpServer& server,
                              const std::vector<std::string>& filters, bool stream = false,
                              GatewayOptions options = {}) {
    RecordingSink sink;
    Start(Config(server.Url("/v1"), Scripts(filters)), std::move(options));
    if (gateway_ != nullptr) Serve(Post(ChatBody("demo", stream)), &sink);
    return sink;
  }

  // Starts the gateway with the script filters `filters` in front of `server`, sends one chat
  // request for "demo" into `sink` and runs until `paused` holds, then a little longer so
  // that whatever a pause fails to hold reaches `sink`. False if `paused` never held.
  bool HandleUntilPaused(const TestHttpServer& server, const std::vector<std::string>& filters,
                         bool stream, RecordingSink* sink, std::function<bool()> paused,
                         std::unique_ptr<ActiveRequest>* active) {
    Start(Config(server.Url("/v1"), Scripts(filters)));
    if (gateway_ == nullptr) return false;
    *active = gateway_->Handle(Post(ChatBody("demo", stream)), sink);
    if (!RunUntil(std::move(paused))) return false;
    RunIdle();
    return true;
  }

  static Json ErrorOf(const RecordingSink& sink) {
    Json j = Json::parse(sink.body, nullptr, false);
    return j.is_discarded() ? Json() : j["error"];
  }

  bool Seen(const std::string& entry) const {
    return std::find(log_.begin(), log_.end(), entry) != log_.end();
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
  Registry registry_;
  std::map<std::string, std::shared_ptr<Script>> scripts_;
  std::vector<std::string> log_;
  std::unique_ptr<ConfigStore> store_;
  std::unique_ptr<Gateway> gateway_;
};

// ---------------------------------------------------------------------------------------
// Endpoints

TEST_F(EngineTest, LocalEndpointWithParameterAnswersAndFiltersSeeIt) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "sessions.get", .method = "GET",
                             .pattern = "/v1/sessions/{id}",
                             .local = Handler([](FnHandler&, RequestContext& ctx,
                                                 FilterCallbacks&) {
                               return FilterResult::Reply(JsonReply(
                                   200, Cat(R"({"id":")", PathParam(ctx.path_params, "id"),
                                                     R"("})")));
                             })})
                  .ok());
  std::string kind, id;
  AddScript("a").on_request = [&](RequestContext& ctx, FilterCallbacks&) {
    kind = std::string(ctx.endpoint_kind());
    id = std::string(PathParam(ctx.path_params, "id"));
    return FilterResult::Continue();
  };
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = Serve(Get("/v1/sessions/abc?verbose=1"), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body, R"({"id":"abc"})");
  EXPECT_EQ(FindHeader(sink.headers, "content-type"), "application/json");
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(kind, "sessions.get");
  EXPECT_EQ(id, "abc");
  // The endpoint's reply passes the filter's response hooks.
  EXPECT_THAT(log_, ElementsAre("a:request", "a:headers", "a:body", "a:complete"));
}

TEST_F(EngineTest, LocalEndpointMayAnswerLaterThroughSendLocalReply) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "slow", .method = "GET", .pattern = "/v1/slow/{id}",
                             .local = Handler([](FnHandler& self, RequestContext& ctx,
                                                 FilterCallbacks& cb) {
                               std::string id(PathParam(ctx.path_params, "id"));
                               self.timer = cb.event_loop().NewTimer();
                               self.timer->Arm(absl::Milliseconds(1), [&cb, id] {
                                 cb.SendLocalReply(JsonReply(201, Cat("later ", id)));
                               });
                               return FilterResult::Pause();
                             })})
                  .ok());
  Start(Config("http://127.0.0.1:1/v1"));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Get("/v1/slow/7"), &sink);
  EXPECT_FALSE(active->done());
  EXPECT_EQ(sink.header_calls, 0);
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_TRUE(active->done());
  EXPECT_EQ(sink.status, 201);
  EXPECT_EQ(sink.body, "later 7");
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, LiteralSegmentWinsOverAParameter) {
  auto answer = [](std::string text) {
    return Handler([text](FnHandler&, RequestContext& ctx, FilterCallbacks&) {
      return FilterResult::Reply(
          JsonReply(200, Cat(text, ":", PathParam(ctx.path_params, "id"))));
    });
  };
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "by_id", .method = "GET", .pattern = "/v1/items/{id}",
                             .local = answer("param")})
                  .ok());
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "latest", .method = "GET", .pattern = "/v1/items/latest",
                             .local = answer("literal")})
                  .ok());
  Start(Config("http://127.0.0.1:1/v1"));
  RecordingSink latest, other, encoded;
  Serve(Get("/v1/items/latest"), &latest);
  Serve(Get("/v1/items/later"), &other);
  Serve(Get("/v1/items/a%2Fb"), &encoded);
  EXPECT_EQ(latest.body, "literal:");
  EXPECT_EQ(other.body, "param:later");
  EXPECT_EQ(encoded.body, "param:a%2Fb");  // percent-encoded bytes stay encoded
}

TEST_F(EngineTest, UnknownPathIs404AndWrongMethodIs405ListingEveryMethod) {
  auto ok = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
    return FilterResult::Reply(JsonReply(200, "{}"));
  });
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "get", .method = "GET", .pattern = "/v1/things/{id}",
                             .local = ok})
                  .ok());
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "delete", .method = "DELETE",
                             .pattern = "/v1/things/{name}", .local = ok})
                  .ok());
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "post", .method = "POST", .pattern = "/v1/things/special",
                             .local = ok})
                  .ok());
  AddScript("a");
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})));

  RecordingSink put;
  Serve(Get("/v1/things/special", "PUT"), &put);
  EXPECT_EQ(put.status, 405);
  EXPECT_EQ(FindHeader(put.headers, "allow"), "DELETE, GET, POST");
  RecordingSink put_other;
  Serve(Get("/v1/things/x", "PUT"), &put_other);
  EXPECT_EQ(put_other.status, 405);
  EXPECT_EQ(FindHeader(put_other.headers, "allow"), "DELETE, GET");

  RecordingSink deeper, empty_param;
  Serve(Get("/v1/things/x/y"), &deeper);
  EXPECT_EQ(deeper.status, 404);
  EXPECT_EQ(ErrorOf(deeper)["message"], "Invalid URL (GET /v1/things/x/y)");
  Serve(Get("/v1/things/"), &empty_param);  // a parameter never matches an empty segment
  EXPECT_EQ(empty_param.status, 404);
  EXPECT_THAT(log_, IsEmpty());  // no endpoint: filters never ran
}

TEST_F(EngineTest, EndpointRegisterRejectsBadSpecs) {
  EndpointRegistry endpoints;
  auto local = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
    return FilterResult::Reply(JsonReply(200, "{}"));
  });
  auto spec = [&](std::string method, std::string pattern) {
    return EndpointSpec{.kind = "k", .method = std::move(method), .pattern = std::move(pattern),
                        .local = local};
  };
  for (const char* bad : {"", "v1/x", "/v1/{id", "/v1/{}", "/v1/a{id}", "/v1/{i-d}",
                          "/v1/x?y=1", "/v1/x#f"}) {
    EXPECT_EQ(endpoints.Register(spec("GET", bad)).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(endpoints.Register(spec("", "/v1/x")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(endpoints.Register({.method = "GET", .pattern = "/v1/x", .local = local}).code(),
            absl::StatusCode::kInvalidArgument);  // no kind
  EXPECT_EQ(endpoints.Register({.kind = "k", .method = "GET", .pattern = "/v1/x"}).code(),
            absl::StatusCode::kInvalidArgument);  // neither handler
  EXPECT_EQ(endpoints
                .Register({.kind = "k", .method = "GET", .pattern = "/v1/x",
                           .model_call = OpenAiChatCodec(), .local = local})
                .code(),
            absl::StatusCode::kInvalidArgument);  // both

  ASSERT_TRUE(endpoints.Register(spec("GET", "/v1/x/{id}")).ok());
  EXPECT_EQ(endpoints.Register(spec("GET", "/v1/x/{other}")).code(),
            absl::StatusCode::kAlreadyExists);  // same shape, another parameter name
  EXPECT_TRUE(endpoints.Register(spec("DELETE", "/v1/x/{id}")).ok());
  EXPECT_TRUE(endpoints.Register(spec("GET", "/v1/x/literal")).ok());
  EXPECT_EQ(endpoints.Table()->specs().size(), 3u);

  // The built-in chat endpoint is taken in a registry with built-ins.
  EXPECT_EQ(registry_.endpoints()
                .Register({.kind = "mine", .method = "POST", .pattern = "/v1/chat/completions",
                           .model_call = OpenAiChatCodec()})
                .code(),
            absl::StatusCode::kAlreadyExists);
}

// EndpointSpec::filter: a model-call endpoint's own filter runs for its requests only,
// after the configured filters on the way in and before them on the way out.
TEST_F(EngineTest, EndpointFilterRunsLastInAndFirstOutForItsEndpointOnly) {
  auto own = std::make_shared<Script>();
  own->name = "own";
  own->log = &log_;
  own->on_request = [](RequestContext& ctx, FilterCallbacks&) {
    ctx.chat->model = "demo2";  // what the endpoint's filter sets goes upstream
    return FilterResult::Continue();
  };
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "mine", .method = "POST", .pattern = "/v1/mine",
                             .model_call = OpenAiChatCodec(),
                             .filter = std::make_shared<ScriptFactory>(own)})
                  .ok());
  AddScript("a");
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), Scripts({"a"})));
  HttpRequest mine = Post(ChatBody("demo", false));
  mine.path = "/v1/mine";
  RecordingSink sink;
  Serve(std::move(mine), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_THAT(log_, ElementsAre("a:request", "own:request", "own:headers", "a:headers",
                                "own:body", "a:body", "own:complete", "a:complete"));
  EXPECT_THAT(UpstreamModels(server), ElementsAre("up-2"));

  log_.clear();
  RecordingSink chat;
  Serve(Post(ChatBody("demo", false)), &chat);  // another endpoint: not there
  EXPECT_EQ(chat.status, 200);
  EXPECT_THAT(log_, ElementsAre("a:request", "a:headers", "a:body", "a:complete"));

  // Only model calls take one.
  EndpointRegistry endpoints;
  EXPECT_EQ(endpoints
                .Register({.kind = "k", .method = "GET", .pattern = "/v1/x",
                           .local = std::make_shared<ScriptFactory>(own),
                           .filter = std::make_shared<ScriptFactory>(own)})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, LocalReplyWithEventsStreamsThroughOnResponseEvents) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "feed", .method = "GET", .pattern = "/v1/feed",
                             .local = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
                               LocalReply r;
                               r.events = std::vector<SseEvent>{SseEvent{.data = "one"},
                                                                SseEvent{.event = "e",
                                                                         .data = "two"}};
                               return FilterResult::Reply(std::move(r));
                             })})
                  .ok());
  AddScript("a").on_events = [](RequestContext&, std::vector<SseEvent>& events,
                                FilterCallbacks&) {
    for (SseEvent& e : events) e.data = absl::AsciiStrToUpper(e.data);
    events.push_back(SseEvent{.data = "extra"});
    return FilterStatus::kContinue;
  };
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})));
  RecordingSink sink;
  Serve(Get("/v1/feed"), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_TRUE(sink.streaming);
  EXPECT_EQ(FindHeader(sink.headers, "content-type"), "text/event-stream");
  EXPECT_EQ(sink.body, "data: ONE\n\ndata: extra\n\nevent: e\ndata: TWO\n\ndata: extra\n\n");
  EXPECT_EQ(sink.finished, true);
  EXPECT_EQ(std::count(log_.begin(), log_.end(), "a:events"), 2);
}

// A client dialect: {"model": "...", "prompt": "...", "stream": bool} in,
// {"text": "..."} out; streams as "text" events ending with an "end" event.
class PromptCodec : public IngressCodec {
 public:
  absl::StatusOr<ChatRequest> ParseRequest(const HttpRequest& request) const override {
    Json in = Json::parse(request.body, nullptr, false);
    if (!in.is_object() || !in.contains("prompt")) {
      return InvalidFieldError("prompt", "is required");
    }
    Json chat = {{"model", in.value("model", "")},
                 {"messages", Json::array({{{"role", "user"}, {"content", in["prompt"]}}})}};
    if (in.value("stream", false)) chat["stream"] = true;
    return ParseChatRequest(chat.dump());
  }
  absl::Status RenderResponse(std::string* body) const override {
    Json completion = Json::parse(*body);
    *body = Json{{"text", completion["choices"][0]["message"]["content"]}}.dump();
    return absl::OkStatus();
  }
  std::unique_ptr<StreamTranslator> NewStreamRenderer() const override {
    class Renderer : public StreamTranslator {
      absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
        if (frame.data == "[DONE]") {
          out->push_back(SseEvent{.event = "end", .data = "."});
          return absl::OkStatus();
        }
        Json chunk = Json::parse(frame.data);
        if (chunk["choices"].empty()) return absl::OkStatus();  // the usage chunk
        out->push_back(SseEvent{.event = "text",
                                .data = chunk["choices"][0]["delta"].value("content", "")});
        return absl::OkStatus();
      }
      absl::Status Finish(std::vector<SseEvent>*) override { return absl::OkStatus(); }
    };
    return std::make_unique<Renderer>();
  }
  std::string ErrorBody(const absl::Status& status) const override {
    return Json{{"failure", std::string(status.message())}}.dump();
  }
};

TEST_F(EngineTest, ModelCallEndpointWithItsOwnClientDialect) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "generate", .method = "POST", .pattern = "/v1/generate",
                             .model_call = std::make_shared<PromptCodec>()})
                  .ok());
  std::string kind;
  std::vector<std::string> models;
  AddScript("a").on_request = [&](RequestContext& ctx, FilterCallbacks&) {
    kind = std::string(ctx.endpoint_kind());
    models.push_back(ctx.chat != nullptr ? ctx.chat->model : "<no chat>");
    return FilterResult::Continue();
  };
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), Scripts({"a"})));
  auto generate = [](std::string body) {
    HttpRequest r = Post(std::move(body));
    r.path = "/v1/generate";
    return r;
  };

  RecordingSink whole;
  Serve(generate(R"({"model": "demo", "prompt": "hi"})"), &whole);
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(whole.body, R"({"text":"Hello!"})");
  EXPECT_EQ(kind, "generate");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(Json::parse(server.requests()[0].body)["messages"][0]["content"], "hi");

  RecordingSink stream;
  Serve(generate(R"({"model": "demo", "prompt": "hi", "stream": true})"), &stream);
  EXPECT_EQ(stream.body, "event: text\ndata: t1\n\nevent: text\ndata: t2\n\n"
                         "event: end\ndata: .\n\n");
  EXPECT_EQ(stream.finished, true);

  RecordingSink unknown;
  Serve(generate(R"({"model": "nope", "prompt": "hi"})"), &unknown);
  EXPECT_EQ(unknown.status, 404);
  EXPECT_THAT(Json::parse(unknown.body).value("failure", ""), HasSubstr("`nope`"))
      << unknown.body;
  EXPECT_THAT(models, ElementsAre("demo", "demo", "nope"));  // filters see the parsed request

  RecordingSink invalid;
  Serve(generate(R"({"model": "demo"})"), &invalid);
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(invalid.body, R"({"failure":"prompt: is required"})");
}

// PromptCodec with a codec per request (IngressCodec::ForRequest) that repeats the client's
// prompt in its answers, and a per-attempt check (CheckAttempt) that refuses prompts
// starting with "secret" for providers of type "openai".
class EchoingPromptCodec : public PromptCodec {
 public:
  explicit EchoingPromptCodec(std::string prompt = "") : prompt_(std::move(prompt)) {}
  std::shared_ptr<const IngressCodec> ForRequest(const HttpRequest& request,
                                                 const ChatRequest& /*chat*/) const override {
    return std::make_shared<EchoingPromptCodec>(
        Json::parse(request.body)["prompt"].get<std::string>());
  }
  absl::Status RenderResponse(std::string* body) const override {
    if (absl::Status s = PromptCodec::RenderResponse(body); !s.ok()) return s;
    Json out = Json::parse(*body);
    out["prompt"] = prompt_;
    *body = out.dump();
    return absl::OkStatus();
  }
  absl::Status CheckAttempt(const ChatRequest& chat,
                            std::string_view provider_type) const override {
    const MessageContent& content = *chat.messages[0].content;
    if (provider_type == "openai" && std::get<std::string>(content).rfind("secret", 0) == 0) {
      return InvalidFieldError("prompt", "not for this provider");
    }
    return absl::OkStatus();
  }

 private:
  std::string prompt_;
};

TEST_F(EngineTest, ModelCallCodecPerRequestAndPerAttemptCheck) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "generate", .method = "POST", .pattern = "/v1/generate",
                             .model_call = std::make_shared<EchoingPromptCodec>()})
                  .ok());
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1")));
  auto generate = [](std::string body) {
    HttpRequest r = Post(std::move(body));
    r.path = "/v1/generate";
    return r;
  };
  RecordingSink whole;
  Serve(generate(R"({"model": "demo", "prompt": "hi"})"), &whole);
  EXPECT_EQ(whole.status, 200);
  EXPECT_EQ(Json::parse(whole.body), Json::parse(R"({"text":"Hello!","prompt":"hi"})"));

  RecordingSink refused;
  Serve(generate(R"({"model": "demo", "prompt": "secret plan"})"), &refused);
  EXPECT_EQ(refused.status, 400);
  EXPECT_EQ(refused.body, R"({"failure":"prompt: not for this provider"})");
  EXPECT_EQ(server.requests().size(), 1u);  // the refused attempt sent nothing
}

TEST_F(EngineTest, LocalStreamOnAModelCallEndpointIsRenderedInTheClientsDialect) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "generate", .method = "POST", .pattern = "/v1/generate",
                             .model_call = std::make_shared<PromptCodec>()})
                  .ok());
  // A cache replaying a stored stream: unified chunks, answered before any upstream.
  AddScript("cache").on_request = [](RequestContext&, FilterCallbacks&) {
    LocalReply r;
    r.events = std::vector<SseEvent>{SseEvent{.data = ChunkJson("cached")},
                                     SseEvent{.data = "[DONE]"}};
    return FilterResult::Reply(std::move(r));
  };
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), Scripts({"cache"})));
  HttpRequest r = Post(R"({"model": "demo", "prompt": "hi", "stream": true})");
  r.path = "/v1/generate";
  RecordingSink sink;
  Serve(std::move(r), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_TRUE(sink.streaming);
  EXPECT_EQ(sink.body, "event: text\ndata: cached\n\nevent: end\ndata: .\n\n");
  EXPECT_EQ(sink.finished, true);
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(EngineTest, EndpointRegisteredLaterIsServedFromTheNextReload) {
  const std::string config = Config("http://127.0.0.1:1/v1");
  Start(config);
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "late", .method = "GET", .pattern = "/v1/late",
                             .local = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
                               return FilterResult::Reply(JsonReply(200, "here"));
                             })})
                  .ok());
  RecordingSink before;
  Serve(Get("/v1/late"), &before);
  EXPECT_EQ(before.status, 404);
  ASSERT_TRUE(store_->Reload(config).ok());
  RecordingSink after;
  Serve(Get("/v1/late"), &after);
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "here");
}

TEST_F(EngineTest, LocalHandlerThatNeverAnswersEndsWith504) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "stuck", .method = "GET", .pattern = "/v1/stuck",
                             .local = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
                               return FilterResult::Pause();
                             })})
                  .ok());
  Start(Config("http://127.0.0.1:1/v1"), {.request_phase_timeout = absl::Milliseconds(20)});
  RecordingSink sink;
  Serve(Get("/v1/stuck"), &sink);
  EXPECT_EQ(sink.status, 504);
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, LocalHandlerThatContinuesWithoutAnsweringIs500) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "mute", .method = "GET", .pattern = "/v1/mute",
                             .local = Handler([](FnHandler&, RequestContext&, FilterCallbacks&) {
                               return FilterResult::Continue();
                             })})
                  .ok());
  Start(Config("http://127.0.0.1:1/v1"));
  RecordingSink sink;
  Serve(Get("/v1/mute"), &sink);
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("mute"));
}

// ---------------------------------------------------------------------------------------
// Provider dialects

// "signed_llm": {"deployment": "..."} required; URL with a query; Sign() puts the sorted
// x-* headers it finally sees into x-signature.
class SignedDialect : public ProviderDialect {
 public:
  SignedDialect(std::string base, std::string deployment)
      : base_(std::move(base)), deployment_(std::move(deployment)) {}
  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall& call,
                            UpstreamRequest* out) const override {
    out->method = "POST";
    out->url = Cat(base_, "/deployments/", deployment_,
                            "/chat?api-version=2024-06-01&model=", call.upstream_model);
    out->headers.emplace_back("content-type", "application/json");
    out->headers.emplace_back("x-dialect", "1");
    out->body = SerializeChatRequest(chat);
    return absl::OkStatus();
  }
  absl::Status Sign(UpstreamRequest* request) const override {
    std::vector<std::string> parts;
    for (const auto& [name, value] : request->headers) {
      std::string lower = absl::AsciiStrToLower(name);
      if (absl::StartsWith(lower, "x-")) parts.push_back(Cat(lower, "=", value));
    }
    std::sort(parts.begin(), parts.end());
    request->headers.emplace_back("x-signature", absl::StrJoin(parts, ","));
    return absl::OkStatus();
  }
  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status TranslateResponse(std::string*) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return std::make_unique<PassThrough>();
  }

 private:
  class PassThrough : public StreamTranslator {
    absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
      out->push_back(SseEvent{.event = std::move(frame.event), .data = std::move(frame.data)});
      return absl::OkStatus();
    }
    absl::Status Finish(std::vector<SseEvent>*) override { return absl::OkStatus(); }
  };
  std::string base_;
  std::string deployment_;
};

absl::StatusOr<std::unique_ptr<ProviderDialect>> BuildSignedDialect(
    const ProviderConfig& common, std::string_view options_json, const BuildContext&) {
  Json options = Json::parse(options_json);
  for (auto it = options.begin(); it != options.end(); ++it) {
    if (it.key() != "deployment") return InvalidFieldError(it.key(), "unknown field");
  }
  if (!options.contains("deployment") || !options["deployment"].is_string()) {
    return InvalidFieldError("deployment", "is required");
  }
  return std::make_unique<SignedDialect>(common.base_url, options["deployment"]);
}

TEST_F(EngineTest, CustomDialectBuildsItsUrlAndSignsAfterFilterHeaderEdits) {
  ASSERT_TRUE(registry_.providers().Register("signed_llm", BuildSignedDialect).ok());
  AddScript("a").on_request = [](RequestContext& ctx, FilterCallbacks&) {
    ctx.upstream_header_mutations.push_back({HeaderMutation::Op::kSet, "x-team", "blue"});
    ctx.upstream_header_mutations.push_back({HeaderMutation::Op::kSet, "X-Dialect", "2"});
    return FilterResult::Continue();
  };
  TestHttpServer server(Provider);
  Start(absl::StrFormat(
      R"({"providers": {"az": {"type": "signed_llm", "base_url": "%s", "deployment": "dep-1"}},
          "models": {"demo": {"provider": "az", "upstream_model": "upstream-demo"}},
          "filters": %s})",
      server.Url("/v1"), Scripts({"a"})));
  RecordingSink sink;
  Serve(Post(ChatBody("demo")), &sink);
  EXPECT_EQ(sink.status, 200);
  ASSERT_EQ(server.requests().size(), 1u);
  const ReceivedRequest got = server.requests()[0];
  EXPECT_EQ(got.path, "/v1/deployments/dep-1/chat?api-version=2024-06-01&model=upstream-demo");
  EXPECT_EQ(FindHeader(got.headers, "x-team"), "blue");
  // The signature covers the filter's edits: it ran after them.
  EXPECT_EQ(FindHeader(got.headers, "x-signature"), "x-dialect=2,x-team=blue");
}

TEST_F(EngineTest, UnknownDialectOptionIsAConfigErrorNamingItsPath) {
  ASSERT_TRUE(registry_.providers().Register("signed_llm", BuildSignedDialect).ok());
  auto load = [&](std::string_view provider) {
    ConfigStore store({.registry = &registry_});
    return store.Load(Cat(R"({"providers": {"az": )", provider, "}}"));
  };
  absl::Status unknown = load(
      R"({"type": "signed_llm", "base_url": "http://h", "deployment": "d", "colour": 1})");
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.message(), "providers.az.colour: unknown field");
  EXPECT_EQ(ErrorParam(unknown), "providers.az.colour");
  EXPECT_EQ(load(R"({"type": "signed_llm", "base_url": "http://h"})").message(),
            "providers.az.deployment: is required");
  // The built-in dialect reads its options strictly too.
  EXPECT_EQ(load(R"({"type": "openai", "base_url": "http://h", "deployment": "d"})").message(),
            "providers.az.deployment: unknown field");
  EXPECT_THAT(std::string(load(R"({"type": "nope", "base_url": "http://h"})").message()),
              HasSubstr("providers.az.type: unknown provider type \"nope\""));
}

// "ndjson_llm": streams one JSON object per line: {"text": "..."} then
// {"done": true, "in": N, "out": M}; the translator turns them into unified chunks.
class NdjsonTranslator : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    Json line = Json::parse(frame.data, nullptr, false);
    if (line.is_discarded()) return absl::InvalidArgumentError("bad line: " + frame.data);
    if (line.value("done", false)) {
      done_ = true;
      out->push_back(SseEvent{.data = UsageChunkJson(line["in"], line["out"])});
      out->push_back(SseEvent{.data = "[DONE]"});
      return absl::OkStatus();
    }
    out->push_back(SseEvent{.data = ChunkJson(line.value("text", ""))});
    return absl::OkStatus();
  }
  absl::Status Finish(std::vector<SseEvent>*) override {
    return done_ ? absl::OkStatus() : absl::DataLossError("stream ended without done");
  }

 private:
  bool done_ = false;
};

class NdjsonDialect : public ProviderDialect {
 public:
  explicit NdjsonDialect(std::string base) : base_(std::move(base)) {}
  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall&,
                            UpstreamRequest* out) const override {
    out->url = base_ + "/api/chat";
    out->headers.emplace_back("content-type", "application/json");
    out->body = SerializeChatRequest(chat);
    return absl::OkStatus();
  }
  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kNdjson : Framing::kJson;
  }
  absl::Status TranslateResponse(std::string*) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return std::make_unique<NdjsonTranslator>();
  }

 private:
  std::string base_;
};

TEST_F(EngineTest, NdjsonDialectStreamIsTranslatedIntoChunksWhateverTheSplits) {
  ASSERT_TRUE(registry_.providers()
                  .Register("ndjson_llm",
                            [](const ProviderConfig& common, std::string_view,
                               const BuildContext&)
                                -> absl::StatusOr<std::unique_ptr<ProviderDialect>> {
                              return std::make_unique<NdjsonDialect>(common.base_url);
                            })
                  .ok());
  TestHttpServer server([](TestConnection& c) {
    // The content-type is deliberately misleading: framing is declared, not guessed.
    c.StartChunked(200, {{"content-type", "application/json"}});
    c.SendChunk("{\"text\":\"He");
    c.SendChunk("llo\"}\n{\"te");
    c.SendChunk("xt\":\" world\"}\r\n\n{\"done\":true,");
    c.SendChunk("\"in\":3,\"out\":4}");
    c.SendChunk("\n");
    c.EndChunked();
  });
  Script& a = AddScript("a");
  Start(absl::StrFormat(
      R"({"providers": {"ol": {"type": "ndjson_llm", "base_url": "%s"}},
          "models": {"llama": {"provider": "ol"}}, "filters": %s})",
      server.Url(""), Scripts({"a"})));
  RecordingSink sink;
  Serve(Post(ChatBody("llama", true)), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_TRUE(sink.streaming);
  EXPECT_EQ(FindHeader(sink.headers, "content-type"), "text/event-stream");
  EXPECT_EQ(sink.body, Sse(ChunkJson("Hello")) + Sse(ChunkJson(" world")) +
                           Sse(UsageChunkJson(3, 4)) + kDone);
  EXPECT_EQ(sink.finished, true);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].path, "/api/chat");
  ASSERT_TRUE(a.outcome.has_value());
  ASSERT_TRUE(a.outcome->usage.has_value());
  EXPECT_EQ(a.outcome->usage->prompt_tokens, 3);
  EXPECT_EQ(a.outcome->usage->completion_tokens, 4);
}

TEST_F(EngineTest, UpstreamRateLimitHeadersReachTheClientOnTheErrorReply) {
  TestHttpServer server([](TestConnection& c) {
    c.SendResponse(429,
                   {{"content-type", "application/json"},
                    {"retry-after", "7"},
                    {"x-ratelimit-remaining-requests", "0"},
                    {"x-ratelimit-reset-tokens", "6m0s"},
                    {"x-internal-trace", "secret"}},
                   R"({"error":{"message":"slow down","type":"requests",)"
                   R"("code":"rate_limit_exceeded"}})");
  });
  Start(Config(server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("demo")), &sink);
  EXPECT_EQ(sink.status, 429);
  EXPECT_EQ(ErrorOf(sink)["message"], "slow down");
  EXPECT_EQ(FindHeader(sink.headers, "retry-after"), "7");
  EXPECT_EQ(FindHeader(sink.headers, "x-ratelimit-remaining-requests"), "0");
  EXPECT_EQ(FindHeader(sink.headers, "x-ratelimit-reset-tokens"), "6m0s");
  EXPECT_FALSE(FindHeader(sink.headers, "x-internal-trace").has_value());
}

// "throwing": a dialect whose code throws at the step named by its "where" option, or
// refuses the request ("where": "refuse") as a dialect that cannot express a field does.
class ThrowingDialect : public ProviderDialect {
 public:
  ThrowingDialect(std::string base, std::string where)
      : base_(std::move(base)), where_(std::move(where)) {}
  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall&,
                            UpstreamRequest* out) const override {
    if (where_ == "build") throw std::runtime_error("dialect build broke");
    if (where_ == "refuse") return InvalidFieldError("temperature", "not supported here");
    out->url = base_ + "/chat/completions";
    out->headers.emplace_back("content-type", "application/json");
    out->body = SerializeChatRequest(chat);
    return absl::OkStatus();
  }
  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status TranslateResponse(std::string*) const override {
    if (where_ == "response") throw std::runtime_error("dialect response broke");
    return absl::OkStatus();
  }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    return std::make_unique<Exploding>();
  }

 private:
  class Exploding : public StreamTranslator {
    absl::Status Translate(StreamFrame, std::vector<SseEvent>*) override {
      throw std::runtime_error("translator broke");
    }
    absl::Status Finish(std::vector<SseEvent>*) override { return absl::OkStatus(); }
  };
  std::string base_;
  std::string where_;
};

class DialectFailureTest : public EngineTest {
 protected:
  void StartWith(const TestHttpServer& server, std::string_view where) {
    ASSERT_TRUE(registry_.providers()
                    .Register("throwing",
                              [](const ProviderConfig& common, std::string_view options,
                                 const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<ProviderDialect>> {
                                return std::make_unique<ThrowingDialect>(
                                    common.base_url, Json::parse(options).value("where", ""));
                              })
                    .ok());
    Start(absl::StrFormat(
        R"({"providers": {"t": {"type": "throwing", "base_url": "%s", "where": "%s"}},
            "models": {"m": {"provider": "t"}}})",
        server.Url("/v1"), where));
  }
};

TEST_F(DialectFailureTest, ThrowingBuildRequestGives500) {
  TestHttpServer server(Provider);
  StartWith(server, "build");
  RecordingSink sink;
  Serve(Post(ChatBody("m")), &sink);
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("dialect build broke"));
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(DialectFailureTest, ThrowingTranslateResponseGives500) {
  TestHttpServer server(Provider);
  StartWith(server, "response");
  RecordingSink sink;
  Serve(Post(ChatBody("m")), &sink);
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("dialect response broke"));
}

TEST_F(DialectFailureTest, ThrowingStreamTranslatorCutsTheStream) {
  TestHttpServer server(Provider);
  StartWith(server, "stream");
  RecordingSink sink;
  Serve(Post(ChatBody("m", true)), &sink);
  EXPECT_EQ(sink.finished, false);
  EXPECT_FALSE(absl::StrContains(sink.body, kDone));
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(DialectFailureTest, RequestTheDialectCannotExpressIs400NamingTheField) {
  TestHttpServer server(Provider);
  StartWith(server, "refuse");
  RecordingSink sink;
  Serve(Post(ChatBody("m")), &sink);
  EXPECT_EQ(sink.status, 400);
  EXPECT_EQ(ErrorOf(sink)["param"], "temperature");
  EXPECT_TRUE(server.requests().empty());
}

// ---------------------------------------------------------------------------------------
// Response phase

TEST_F(EngineTest, HeadersPauseHoldsTheStatusLineUntilContinue) {
  TestHttpServer server(Provider);
  bool headers_seen = false;
  AddScript("a").on_headers = [&](RequestContext&, ResponseHead& head, FilterCallbacks&) {
    headers_seen = true;
    head.headers.emplace_back("x-checked", "yes");
    return FilterStatus::kPause;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a"}, /*stream=*/false, &sink,
                                [&] { return headers_seen; }, &active));
  EXPECT_EQ(sink.header_calls, 0);
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(FindHeader(sink.headers, "x-checked"), "yes");
  EXPECT_EQ(sink.body, CompletionJson("upstream-demo"));
}

TEST_F(EngineTest, BodyPauseMayRewriteTheBodyAndStatusBeforeCommit) {
  TestHttpServer server(Provider);
  bool body_seen = false;
  AddScript("a").on_body = [&](RequestContext&, ResponseHead&, std::string&,
                               FilterCallbacks&) {
    body_seen = true;
    return FilterStatus::kPause;
  };
  // Runs before "a" (reverse order): rewrites at once.
  AddScript("b").on_body = [](RequestContext&, ResponseHead& head, std::string& body,
                              FilterCallbacks&) {
    head.status = 203;
    body = R"({"rewritten":true})";
    return FilterStatus::kContinue;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a", "b"}, /*stream=*/false, &sink,
                                [&] { return body_seen; }, &active));
  EXPECT_EQ(sink.header_calls, 0);
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.status, 203);
  EXPECT_EQ(sink.body, R"({"rewritten":true})");
  EXPECT_THAT(log_, ElementsAre("a:request", "b:request", "b:headers", "a:headers", "b:body",
                                "a:body", "b:complete", "a:complete"));
}

TEST_F(EngineTest, EventsPauseHoldsLaterEventsUntilContinue) {
  TestHttpServer server(Provider);
  int events_seen = 0;
  AddScript("a").on_events = [&](RequestContext&, std::vector<SseEvent>&, FilterCallbacks&) {
    return ++events_seen == 1 ? FilterStatus::kPause : FilterStatus::kContinue;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a"}, /*stream=*/true, &sink,
                                [&] { return events_seen == 1; }, &active));
  EXPECT_EQ(events_seen, 1);
  EXPECT_EQ(sink.status, 200);  // the status line went out before the first event
  EXPECT_THAT(sink.body, IsEmpty());
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.body, kStreamBody + kDone);
  EXPECT_EQ(events_seen, 4);  // two chunks, the usage chunk, [DONE]
}

TEST_F(EngineTest, CompletePauseHoldsTheWholeBody) {
  TestHttpServer server(Provider);
  bool complete_seen = false;
  AddScript("a").on_complete = [&](RequestContext&, const ResponseOutcome&, FilterCallbacks&) {
    complete_seen = true;
    return FilterStatus::kPause;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a"}, /*stream=*/false, &sink,
                                [&] { return complete_seen; }, &active));
  EXPECT_THAT(sink.body, IsEmpty());
  EXPECT_FALSE(sink.finished.has_value());
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.body, CompletionJson("upstream-demo"));
  ASSERT_TRUE(a.outcome.has_value());
  EXPECT_EQ(a.outcome->status, 200);
  EXPECT_TRUE(a.outcome->error.ok());
  EXPECT_FALSE(a.outcome->streaming);
  EXPECT_EQ(a.outcome->attempts, 1);
  EXPECT_EQ(a.outcome->bytes_sent, 0u);  // the whole body is the held final bytes
  ASSERT_TRUE(a.outcome->usage.has_value());
  EXPECT_EQ(a.outcome->usage->prompt_tokens, 5);
  EXPECT_EQ(a.outcome->usage->completion_tokens, 2);
  EXPECT_EQ(a.outcome->usage->total_tokens, 7);
}

TEST_F(EngineTest, CompletePauseHoldsTheStreamsDoneEvent) {
  TestHttpServer server(Provider);
  bool complete_seen = false;
  AddScript("a").on_complete = [&](RequestContext&, const ResponseOutcome&, FilterCallbacks&) {
    complete_seen = true;
    return FilterStatus::kPause;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a"}, /*stream=*/true, &sink,
                                [&] { return complete_seen; }, &active));
  EXPECT_EQ(sink.body, kStreamBody);
  EXPECT_FALSE(sink.finished.has_value());
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.body, kStreamBody + kDone);
  EXPECT_EQ(sink.finished, true);
  ASSERT_TRUE(a.outcome.has_value());
  EXPECT_TRUE(a.outcome->streaming);
  EXPECT_EQ(a.outcome->attempts, 1);
  EXPECT_EQ(a.outcome->bytes_sent, kStreamBody.size());
  ASSERT_TRUE(a.outcome->usage.has_value());
  EXPECT_EQ(a.outcome->usage->prompt_tokens, 3);
  EXPECT_EQ(a.outcome->usage->completion_tokens, 4);
  EXPECT_EQ(a.outcome->usage->total_tokens, 7);
}

TEST_F(EngineTest, LocalReplyPassesOnlyTheResponseHooksOfEarlierFilters) {
  TestHttpServer server(Provider);
  AddScript("a");
  AddScript("b").on_request = [](RequestContext&, FilterCallbacks&) {
    return FilterResult::Reply(JsonReply(418, R"({"teapot":true})"));
  };
  AddScript("c");
  RecordingSink sink = ServeDemoChat(server, {"a", "b", "c"});
  EXPECT_EQ(sink.status, 418);
  EXPECT_EQ(sink.body, R"({"teapot":true})");
  EXPECT_THAT(log_, ElementsAre("a:request", "b:request", "a:headers", "a:body", "a:complete"));
  ASSERT_TRUE(scripts_["a"]->outcome.has_value());
  EXPECT_EQ(scripts_["a"]->outcome->status, 418);
  EXPECT_EQ(scripts_["a"]->outcome->attempts, 0);
  EXPECT_TRUE(server.requests().empty());
  EXPECT_FALSE(scripts_["c"]->outcome.has_value());
  EXPECT_EQ(scripts_["c"]->destroyed, 1);  // every filter gets its OnDestroy
}

TEST_F(EngineTest, RoutingErrorPassesTheResponseHooksOfEveryFilter) {
  TestHttpServer server(Provider);
  AddScript("a");
  AddScript("b");
  Start(Config(server.Url("/v1"), Scripts({"a", "b"})));
  RecordingSink sink;
  Serve(Post(ChatBody("no-such-model")), &sink);
  EXPECT_EQ(sink.status, 404);
  EXPECT_EQ(ErrorOf(sink)["code"], "model_not_found");
  EXPECT_THAT(log_, ElementsAre("a:request", "b:request", "b:headers", "a:headers", "b:body",
                                "a:body", "b:complete", "a:complete"));
  ASSERT_TRUE(scripts_["a"]->outcome.has_value());
  EXPECT_EQ(scripts_["a"]->outcome->status, 404);
  EXPECT_EQ(scripts_["a"]->outcome->error.code(), absl::StatusCode::kNotFound);
}

TEST_F(EngineTest, ThrowingOnRequestGives500) {
  TestHttpServer server(Provider);
  AddScript("a");
  AddScript("b").on_request = [](RequestContext&, FilterCallbacks&) -> FilterResult {
    throw std::runtime_error("boom");
  };
  RecordingSink sink = ServeDemoChat(server, {"a", "b"});
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("boom"));
  EXPECT_TRUE(server.requests().empty());
  EXPECT_EQ(scripts_["a"]->destroyed, 1);
  EXPECT_EQ(scripts_["b"]->destroyed, 1);
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, ThrowingLocalHandlerGives500) {
  ASSERT_TRUE(registry_.endpoints()
                  .Register({.kind = "bad", .method = "GET", .pattern = "/v1/bad",
                             .local = Handler([](FnHandler&, RequestContext&,
                                                 FilterCallbacks&) -> FilterResult {
                               throw std::runtime_error("handler broke");
                             })})
                  .ok());
  Start(Config("http://127.0.0.1:1/v1"));
  RecordingSink sink;
  Serve(Get("/v1/bad"), &sink);
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("handler broke"));
}

TEST_F(EngineTest, ThrowingOnResponseHeadersGives500) {
  TestHttpServer server(Provider);
  AddScript("a").on_headers = [](RequestContext&, ResponseHead&,
                                 FilterCallbacks&) -> FilterStatus {
    throw std::runtime_error("headers broke");
  };
  RecordingSink sink = ServeDemoChat(server, {"a"});
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("headers broke"));
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, ThrowingOnResponseBodyGives500) {
  TestHttpServer server(Provider);
  AddScript("a").on_body = [](RequestContext&, ResponseHead&, std::string&,
                              FilterCallbacks&) -> FilterStatus {
    throw std::runtime_error("body broke");
  };
  RecordingSink sink = ServeDemoChat(server, {"a"});
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("body broke"));
}

TEST_F(EngineTest, ThrowingOnResponseCompleteOfAWholeResponseGives500) {
  TestHttpServer server(Provider);
  AddScript("a").on_complete = [](RequestContext&, const ResponseOutcome&,
                                  FilterCallbacks&) -> FilterStatus {
    throw std::runtime_error("complete broke");
  };
  RecordingSink sink = ServeDemoChat(server, {"a"});
  EXPECT_EQ(sink.status, 500);
  EXPECT_THAT(std::string(ErrorOf(sink)["message"]), HasSubstr("complete broke"));
}

TEST_F(EngineTest, ThrowingOnResponseEventsCutsTheStream) {
  TestHttpServer server(Provider);
  AddScript("a").on_events = [](RequestContext&, std::vector<SseEvent>&,
                                FilterCallbacks&) -> FilterStatus {
    throw std::runtime_error("events broke");
  };
  RecordingSink sink = ServeDemoChat(server, {"a"}, /*stream=*/true);
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.finished, false);
  EXPECT_FALSE(absl::StrContains(sink.body, kDone));
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, RequestPhasePausedForeverEndsWith504) {
  TestHttpServer server(Provider);
  AddScript("a");
  AddScript("b").on_request = [](RequestContext&, FilterCallbacks&) {
    return FilterResult::Pause();
  };
  RecordingSink sink = ServeDemoChat(server, {"a", "b"}, /*stream=*/false,
                                     {.request_phase_timeout = absl::Milliseconds(20)});
  EXPECT_EQ(sink.status, 504);
  EXPECT_TRUE(server.requests().empty());
  EXPECT_TRUE(Seen("a:headers"));  // the 504 passes the earlier filter's hooks
  EXPECT_EQ(scripts_["b"]->destroyed, 1);
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, ContinueCalledInsideAPausingResponseHookResumes) {
  TestHttpServer server(Provider);
  AddScript("a").on_headers = [](RequestContext&, ResponseHead&, FilterCallbacks& cb) {
    cb.Continue();  // e.g. a lookup that completed synchronously
    return FilterStatus::kPause;
  };
  RecordingSink sink = ServeDemoChat(server, {"a"});
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body, CompletionJson("upstream-demo"));
}

TEST_F(EngineTest, StreamHeadersPauseHoldsTheStatusLineAndEvents) {
  TestHttpServer server(Provider);
  bool headers_seen = false;
  AddScript("a").on_headers = [&](RequestContext&, ResponseHead& head, FilterCallbacks&) {
    headers_seen = true;
    EXPECT_TRUE(head.streaming);
    return FilterStatus::kPause;
  };
  Script& a = *scripts_["a"];
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active;
  ASSERT_TRUE(HandleUntilPaused(server, {"a"}, /*stream=*/true, &sink,
                                [&] { return headers_seen; }, &active));
  EXPECT_EQ(sink.header_calls, 0);
  EXPECT_FALSE(Seen("a:events"));
  a.callbacks->Continue();
  ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); }));
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body, kStreamBody + kDone);
  EXPECT_EQ(sink.finished, true);
}

TEST_F(EngineTest, ResponseStepPausedForeverEndsWith504BeforeTheStatusLine) {
  TestHttpServer server(Provider);
  AddScript("a").on_body = [](RequestContext&, ResponseHead&, std::string&, FilterCallbacks&) {
    return FilterStatus::kPause;
  };
  RecordingSink sink = ServeDemoChat(server, {"a"}, /*stream=*/false,
                                     {.response_step_timeout = absl::Milliseconds(20)});
  EXPECT_EQ(sink.status, 504);
  EXPECT_EQ(scripts_["a"]->destroyed, 1);
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, ResponseStepPausedForeverCutsAStream) {
  TestHttpServer server(Provider);
  AddScript("a").on_events = [](RequestContext&, std::vector<SseEvent>&, FilterCallbacks&) {
    return FilterStatus::kPause;
  };
  RecordingSink sink = ServeDemoChat(server, {"a"}, /*stream=*/true,
                                     {.response_step_timeout = absl::Milliseconds(20)});
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.finished, false);
  EXPECT_THAT(sink.body, IsEmpty());
}

TEST_F(EngineTest, LocalReplyFromAResponseHookReplacesTheResponseForEarlierFilters) {
  TestHttpServer server(Provider);
  int a_status = 0;
  std::string a_body;
  AddScript("a").on_body = [&](RequestContext&, ResponseHead& head, std::string& body,
                               FilterCallbacks&) {
    a_status = head.status;
    a_body = body;
    return FilterStatus::kContinue;
  };
  // "b" runs first on the way out and refuses the answer after a (paused) check.
  AddScript("b").on_headers = [](RequestContext&, ResponseHead&, FilterCallbacks& cb) {
    cb.SendLocalReply(JsonReply(451, R"({"error":{"message":"withheld"}})"));
    return FilterStatus::kPause;
  };
  RecordingSink sink = ServeDemoChat(server, {"a", "b"});
  EXPECT_EQ(sink.status, 451);
  EXPECT_EQ(sink.body, R"({"error":{"message":"withheld"}})");
  // The filter before "b" sees the reply, not the upstream's answer.
  EXPECT_EQ(a_status, 451);
  EXPECT_EQ(a_body, R"({"error":{"message":"withheld"}})");
  ASSERT_TRUE(scripts_["a"]->outcome.has_value());
  EXPECT_EQ(scripts_["a"]->outcome->status, 451);
}

TEST_F(EngineTest, LocalReplyFromABodyHookReplacesTheBodyForEarlierFilters) {
  TestHttpServer server(Provider);
  int a_status = 0;
  std::string a_body;
  AddScript("a").on_body = [&](RequestContext&, ResponseHead& head, std::string& body,
                               FilterCallbacks&) {
    a_status = head.status;
    a_body = body;
    return FilterStatus::kContinue;
  };
  AddScript("b").on_body = [](RequestContext&, ResponseHead&, std::string&,
                              FilterCallbacks& cb) {
    cb.SendLocalReply(JsonReply(502, "replaced"));
    return FilterStatus::kPause;
  };
  RecordingSink sink = ServeDemoChat(server, {"a", "b"});
  EXPECT_EQ(sink.status, 502);
  EXPECT_EQ(sink.body, "replaced");
  EXPECT_EQ(a_status, 502);
  EXPECT_EQ(a_body, "replaced");
}

TEST_F(EngineTest, ClientLeavingMidStreamGivesACancelledOutcomeOnce) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(ChunkJson("t1")));
    c.WaitForPeerClose();
  });
  Script& a = AddScript("a");
  Start(Config(server.Url("/v1"), Scripts({"a"})));
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", true)), &sink);
  ASSERT_TRUE(RunUntil([&] { return !sink.writes.empty(); }));
  active.reset();
  ASSERT_TRUE(a.outcome.has_value());
  EXPECT_EQ(a.outcome->error.code(), absl::StatusCode::kCancelled);
  EXPECT_TRUE(a.outcome->streaming);
  EXPECT_EQ(a.outcome->bytes_sent, Sse(ChunkJson("t1")).size());
  EXPECT_EQ(std::count(log_.begin(), log_.end(), "a:complete"), 1);
  EXPECT_EQ(a.destroyed, 1);
  EXPECT_FALSE(sink.finished.has_value());
  EXPECT_EQ(gateway_->active_requests(), 0u);
}

TEST_F(EngineTest, UpstreamErrorOutcomeCarriesTheErrorAndAttempts) {
  TestHttpServer server(Provider);
  Script& a = AddScript("a");
  Start(Config(server.Url("/v1"), Scripts({"a"}),
               R"([{"match": {"model": "smart"}, "target": "bad", "fallbacks": ["bad2"]}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 503);
  ASSERT_TRUE(a.outcome.has_value());
  EXPECT_EQ(a.outcome->status, 503);
  EXPECT_FALSE(a.outcome->error.ok());
  EXPECT_EQ(a.outcome->error.message(), "overloaded");
  EXPECT_EQ(a.outcome->attempts, 2);
  EXPECT_FALSE(a.outcome->usage.has_value());
}

// ---------------------------------------------------------------------------------------
// Attempts

TEST_F(EngineTest, FallbackServesTheClientAfterA503) {
  TestHttpServer server(Provider);
  Script& a = AddScript("a");
  Start(Config(server.Url("/v1"), Scripts({"a"}),
               R"([{"match": {"model": "smart"}, "target": "bad", "fallbacks": ["demo2"]}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body, CompletionJson("up-2"));
  EXPECT_THAT(UpstreamModels(server), ElementsAre("fail-503", "up-2"));
  ASSERT_TRUE(a.outcome.has_value());
  EXPECT_EQ(a.outcome->attempts, 2);
}

TEST_F(EngineTest, RetryOnWithout5xxSendsThe503ToTheClient) {
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), "[]",
               R"([{"match": {"model": "smart"}, "target": "bad", "fallbacks": ["demo2"],
                    "retry_on": ["429", "timeout"]}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 503);
  EXPECT_EQ(ErrorOf(sink)["message"], "overloaded");
  EXPECT_THAT(UpstreamModels(server), ElementsAre("fail-503"));
}

TEST_F(EngineTest, MaxAttemptsBoundsTheFallbacks) {
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), "[]",
               R"([{"match": {"model": "smart"}, "target": "bad",
                    "fallbacks": ["bad2", "demo"], "max_attempts": 2}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 503);
  EXPECT_THAT(UpstreamModels(server), ElementsAre("fail-503", "fail-503"));
}

TEST_F(EngineTest, StreamFailingAfterItsFirstEventIsNotRetried) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(ChunkJson("t1")));
    c.Reset();
  });
  Start(Config(server.Url("/v1"), "[]",
               R"([{"match": {"model": "smart"}, "target": "demo", "fallbacks": ["demo2"]}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart", true)), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.finished, true);  // ended by its error event
  EXPECT_TRUE(absl::StartsWith(sink.body, Sse(ChunkJson("t1")))) << sink.body;
  EXPECT_NE(sink.body.find("\"error\""), std::string::npos) << sink.body;
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(EngineTest, StreamedRequestFallsBackWhenTheFirstTargetAnswers503) {
  TestHttpServer server(Provider);
  Start(Config(server.Url("/v1"), "[]",
               R"([{"match": {"model": "smart"}, "target": "bad", "fallbacks": ["demo2"]}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart", true)), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_TRUE(sink.streaming);
  EXPECT_EQ(sink.body, kStreamBody + kDone);
  EXPECT_EQ(sink.finished, true);
  EXPECT_THAT(UpstreamModels(server), ElementsAre("fail-503", "up-2"));
}

TEST_F(EngineTest, FilterChosenRouteReplacesThePlan) {
  TestHttpServer server(Provider);
  AddScript("a").on_request = [](RequestContext& ctx, FilterCallbacks&) {
    ctx.route.model = ctx.snapshot->FindModel("demo2");
    ctx.route.provider = ctx.snapshot->FindProvider("up");
    return FilterResult::Continue();
  };
  Start(Config(server.Url("/v1"), Scripts({"a"}),
               R"([{"match": {"model": "smart"}, "target": "bad"}])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_THAT(UpstreamModels(server), ElementsAre("up-2"));
}

TEST_F(EngineTest, UpstreamTimeoutFallsBackUnlessRetryOnExcludesIt) {
  TestHttpServer slow([](TestConnection& c) { c.WaitGate("never"); });
  TestHttpServer server(Provider);
  auto config = [&](std::string_view retry_on) {
    return absl::StrFormat(
        R"({"providers": {"slow": {"type": "openai", "base_url": "%s",
                                   "timeouts": {"first_byte_ms": 30}},
                          "up": {"type": "openai", "base_url": "%s"}},
            "models": {"sleepy": {"provider": "slow"},
                       "demo": {"provider": "up", "upstream_model": "upstream-demo"}},
            "routes": [{"match": {"model": "smart"}, "target": "sleepy",
                        "fallbacks": ["demo"], "retry_on": %s}]})",
        slow.Url("/v1"), server.Url("/v1"), retry_on);
  };
  Start(config(R"(["timeout"])"));
  RecordingSink fell_back;
  Serve(Post(ChatBody("smart")), &fell_back);
  EXPECT_EQ(fell_back.status, 200);
  EXPECT_THAT(UpstreamModels(server), ElementsAre("upstream-demo"));

  ASSERT_TRUE(store_->Reload(config(R"(["5xx"])")).ok());
  RecordingSink timed_out;
  Serve(Post(ChatBody("smart")), &timed_out);
  EXPECT_EQ(timed_out.status, 504);
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST_F(EngineTest, ConnectFailureFallsBackToAnotherProvider) {
  TestHttpServer server(Provider);
  Start(absl::StrFormat(
      R"({"providers": {"dead": {"type": "openai", "base_url": "http://127.0.0.1:%d/v1"},
                        "up": {"type": "openai", "base_url": "%s"}},
          "models": {"gone": {"provider": "dead"},
                     "demo": {"provider": "up", "upstream_model": "upstream-demo"}},
          "routes": [{"match": {"model": "smart"}, "target": "gone", "fallbacks": ["demo"]}]})",
      UnusedPort(), server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body, CompletionJson("upstream-demo"));
  EXPECT_THAT(UpstreamModels(server), ElementsAre("upstream-demo"));
}

// "ordered": tries "targets" in order while attempts fail, recording what it is given.
struct PolicyLog {
  std::string model;
  std::optional<std::string> header;
  std::optional<std::string> metadata;
  uint64_t draw = 0;
  std::vector<AttemptOutcome> outcomes;
};

class OrderedPlan : public AttemptPlan {
 public:
  OrderedPlan(std::vector<Attempt> attempts, PolicyLog* log)
      : attempts_(std::move(attempts)), log_(log) {}
  std::optional<Attempt> Next() override {
    if (next_ >= attempts_.size() || (next_ > 0 && failed_ == FailureClass::kNone)) {
      return std::nullopt;
    }
    Attempt a = attempts_[next_];
    a.index = static_cast<int>(next_++);
    return a;
  }
  void Report(const Attempt&, const AttemptOutcome& outcome) override {
    failed_ = outcome.failure;
    log_->outcomes.push_back(outcome);
  }

 private:
  std::vector<Attempt> attempts_;
  PolicyLog* log_;
  size_t next_ = 0;
  FailureClass failed_ = FailureClass::kNone;
};

class OrderedPolicy : public RoutingPolicy {
 public:
  OrderedPolicy(std::vector<Attempt> attempts, PolicyLog* log)
      : attempts_(std::move(attempts)), log_(log) {}
  absl::StatusOr<std::unique_ptr<AttemptPlan>> Plan(
      const RoutingRequest& request) const override {
    log_->model = std::string(request.model);
    if (request.headers != nullptr) {
      if (auto h = FindHeader(*request.headers, "x-tenant")) log_->header = std::string(*h);
    }
    if (request.metadata != nullptr) {
      auto it = request.metadata->find("tier");
      if (it != request.metadata->end()) log_->metadata = it->second;
    }
    log_->draw = request.draw;
    return std::make_unique<OrderedPlan>(attempts_, log_);
  }

 private:
  std::vector<Attempt> attempts_;
  PolicyLog* log_;
};

// Registers "ordered" (OrderedPolicy over the route's "targets", logging into `log`).
void RegisterOrdered(Registry& registry, PolicyLog* log) {
  ASSERT_TRUE(registry.routing()
                  .Register("ordered",
                            [log](std::string_view options, const RouteBuildContext& ctx)
                                -> absl::StatusOr<std::unique_ptr<RoutingPolicy>> {
                              std::vector<Attempt> attempts;
                              Json o = Json::parse(options);
                              for (size_t i = 0; i < o["targets"].size(); ++i) {
                                const ModelConfig* m =
                                    ctx.find_model(o["targets"][i].get<std::string>());
                                if (m == nullptr) {
                                  return InvalidFieldError(Cat("targets[", std::to_string(i), "]"),
                                                           "unknown model");
                                }
                                attempts.push_back(Attempt{m, ctx.provider_of(*m), 0});
                              }
                              return std::make_unique<OrderedPolicy>(std::move(attempts),
                                                                     log);
                            })
                  .ok());
}

TEST_F(EngineTest, CustomRoutingPolicyGetsTheRequestAndEachOutcome) {
  PolicyLog policy_log;
  RegisterOrdered(registry_, &policy_log);
  TestHttpServer server([](TestConnection& c) {
    if (Json::parse(c.request().body)["model"] == "upstream-demo") {
      c.SendResponse(429, {{"content-type", "application/json"}, {"retry-after", "7"}},
                     R"({"error":{"message":"slow down","type":"requests"}})");
      return;
    }
    Provider(c);
  });
  AddScript("a").on_request = [](RequestContext& ctx, FilterCallbacks&) {
    ctx.metadata["tier"] = "gold";
    return FilterResult::Continue();
  };
  Start(Config(server.Url("/v1"), Scripts({"a"}),
               R"([{"match": {"model": "smart"}, "policy": "ordered",
                    "targets": ["demo", "demo2"]}])"),
        {.random = [] { return uint64_t{42}; }});
  RecordingSink sink;
  HttpRequest request = Post(ChatBody("smart"));
  request.headers.emplace_back("x-tenant", "t-1");
  Serve(std::move(request), &sink);
  EXPECT_EQ(sink.status, 200);
  EXPECT_THAT(UpstreamModels(server), ElementsAre("upstream-demo", "up-2"));
  EXPECT_EQ(policy_log.model, "smart");
  EXPECT_EQ(policy_log.header, "t-1");
  EXPECT_EQ(policy_log.metadata, "gold");
  EXPECT_EQ(policy_log.draw, 42u);
  // Both attempts are reported (routing.h: AttemptPlan::Report), the answered one too.
  ASSERT_EQ(policy_log.outcomes.size(), 2u);
  EXPECT_EQ(policy_log.outcomes[0].failure, FailureClass::kRateLimited);
  EXPECT_EQ(policy_log.outcomes[0].http_status, 429);
  EXPECT_EQ(policy_log.outcomes[0].retry_after, absl::Seconds(7));
  EXPECT_EQ(policy_log.outcomes[1].failure, FailureClass::kNone);
  EXPECT_EQ(policy_log.outcomes[1].http_status, 200);
  EXPECT_TRUE(policy_log.outcomes[1].status.ok());

  ConfigStore bad({.registry = &registry_});
  EXPECT_EQ(bad.Load(Config(server.Url("/v1"), "[]",
                            R"([{"match": {"model": "smart"}, "policy": "ordered",
                                 "targets": ["demo", "zz"]}])"))
                .message(),
            "routes[0].targets[1]: unknown model");
}

// A connection the upstream resets after taking the request is reported to the routing
// policy as kReset, a refused one as kConnect: a policy can tell a crashed server (maybe
// after doing the work) from one that never took the request.
TEST_F(EngineTest, ResetAndRefusedConnectionsAreReportedApart) {
  PolicyLog policy_log;
  RegisterOrdered(registry_, &policy_log);
  TestHttpServer server([](TestConnection& c) {
    if (Json::parse(c.request().body)["model"] == "upstream-demo") {
      c.Reset();
      return;
    }
    Provider(c);
  });
  const int dead_port = UnusedPort();
  Start(absl::StrFormat(
      R"({"providers": {"dead": {"type": "openai", "base_url": "http://127.0.0.1:%d/v1"},
                        "up": {"type": "openai", "base_url": "%s"}},
          "models": {"gone": {"provider": "dead"},
                     "demo": {"provider": "up", "upstream_model": "upstream-demo"},
                     "demo2": {"provider": "up", "upstream_model": "up-2"}},
          "routes": [{"match": {"model": "smart"}, "policy": "ordered",
                      "targets": ["gone", "demo", "demo2"]}]})",
      dead_port, server.Url("/v1")));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 200) << sink.body;
  ASSERT_EQ(policy_log.outcomes.size(), 3u);
  EXPECT_EQ(policy_log.outcomes[0].failure, FailureClass::kConnect)
      << policy_log.outcomes[0].status;
  EXPECT_EQ(policy_log.outcomes[1].failure, FailureClass::kReset) << policy_log.outcomes[1].status;
  EXPECT_EQ(policy_log.outcomes[1].http_status, 0);
  EXPECT_EQ(policy_log.outcomes[2].failure, FailureClass::kNone);
  EXPECT_EQ(FailureClassName(FailureClass::kReset), "reset");
  EXPECT_EQ(FailureClassFromName("reset"), FailureClass::kReset);
}

// The "weighted" policy retries a reset by default, as it did when resets were classed
// "connect"; a "retry_on" list without "reset" leaves it with the client.
void ResettingProvider(TestConnection& c) {
  if (Json::parse(c.request().body)["model"] == "upstream-demo") {
    c.Reset();
    return;
  }
  Provider(c);
}

std::string ResetRouteConfig(const std::string& base_url, const std::string& route_extra) {
  return absl::StrFormat(
      R"({"providers": {"up": {"type": "openai", "base_url": "%s"}},
          "models": {"demo": {"provider": "up", "upstream_model": "upstream-demo"},
                     "demo2": {"provider": "up", "upstream_model": "up-2"}},
          "routes": [{"match": {"model": "smart"}, "target": "demo", "fallbacks": ["demo2"]%s}]})",
      base_url, route_extra);
}

TEST_F(EngineTest, WeightedPolicyRetriesAResetByDefault) {
  TestHttpServer server(ResettingProvider);
  Start(ResetRouteConfig(server.Url("/v1"), ""));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 200) << sink.body;
  EXPECT_EQ(sink.body, CompletionJson("up-2"));
}

TEST_F(EngineTest, WeightedPolicyLeavesAResetWithTheClientWhenRetryOnOmitsIt) {
  TestHttpServer server(ResettingProvider);
  Start(ResetRouteConfig(server.Url("/v1"), R"(, "retry_on": ["connect"])"));
  RecordingSink sink;
  Serve(Post(ChatBody("smart")), &sink);
  EXPECT_EQ(sink.status, 502) << sink.body;
  EXPECT_THAT(UpstreamModels(server), ElementsAre("upstream-demo"));
}

// ---------------------------------------------------------------------------------------
// Config

struct ContextSection final : ConfigSection {
  int ttl_s = 0;
};

absl::StatusOr<std::shared_ptr<const ConfigSection>> ParseContext(std::string_view json,
                                                                  const BuildContext&) {
  Json j = Json::parse(json);
  if (!j.is_object()) return InvalidFieldError("", "must be an object");
  auto section = std::make_shared<ContextSection>();
  section->ttl_s = j.value("ttl_s", 60);
  if (section->ttl_s <= 0) return InvalidFieldError("ttl_s", "must be > 0");
  return section;
}

TEST_F(EngineTest, RegisteredSectionIsParsedAndVisibleFromTheSnapshot) {
  ASSERT_TRUE(registry_.config().sections().Register("context", ParseContext).ok());
  ConfigLoadOptions options{.registry = &registry_};
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> snap =
      LoadConfig(R"({"context": {"ttl_s": 90}})", options);
  ASSERT_TRUE(snap.ok()) << snap.status();
  const ConfigSection* section = (*snap)->Section("context");
  ASSERT_NE(section, nullptr);
  EXPECT_EQ(static_cast<const ContextSection*>(section)->ttl_s, 90);
  EXPECT_EQ((*snap)->Section("other"), nullptr);

  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> absent = LoadConfig("{}", options);
  ASSERT_TRUE(absent.ok());
  EXPECT_EQ((*absent)->Section("context"), nullptr);

  absl::Status bad = LoadConfig(R"({"context": {"ttl_s": 0}})", options).status();
  EXPECT_EQ(bad.message(), "context.ttl_s: must be > 0");
  EXPECT_EQ(ErrorParam(bad), "context.ttl_s");
  EXPECT_EQ(LoadConfig(R"({"context": 3})", options).status().message(),
            "context: must be an object");
}

TEST_F(EngineTest, UnregisteredTopLevelAndModelKeysAreErrorsNamingThePath) {
  ConfigLoadOptions options{.registry = &registry_};
  absl::Status top = LoadConfig(R"({"contxt": {}})", options).status();
  EXPECT_EQ(top.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(top.message(), "contxt: unknown field");
  absl::Status model = LoadConfig(
      R"({"providers": {"p": {"type": "openai", "base_url": "http://h"}},
          "models": {"m": {"provider": "p", "context_windw": 10}}})",
      options).status();
  EXPECT_EQ(model.message(), "models.m.context_windw: unknown field");
  EXPECT_EQ(ErrorParam(model), "models.m.context_windw");
}

std::string ModelWith(std::string_view keys) {
  return Cat(R"({"providers": {"p": {"type": "openai", "base_url": "http://h"}},
                          "models": {"m": {"provider": "p", )",
                      keys, "}}}");
}

TEST_F(EngineTest, ContextWindowAndPricingParse) {
  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> snap = LoadConfig(
      ModelWith(R"("context_window": 128000, "max_output_tokens": 16384,
                   "pricing": {"input_per_mtok": 0.15, "output_per_mtok": 0.6,
                               "cached_input_per_mtok": 0.075})"),
      {.registry = &registry_});
  ASSERT_TRUE(snap.ok()) << snap.status();
  const ModelConfig* m = (*snap)->FindModel("m");
  ASSERT_NE(m, nullptr);
  ASSERT_NE(m->extension("context_window"), nullptr);
  EXPECT_EQ(static_cast<const ModelTokenLimit*>(m->extension("context_window"))->tokens, 128000);
  EXPECT_EQ(static_cast<const ModelTokenLimit*>(m->extension("max_output_tokens"))->tokens,
            16384);
  const auto* pricing = static_cast<const ModelPricing*>(m->extension("pricing"));
  ASSERT_NE(pricing, nullptr);
  EXPECT_DOUBLE_EQ(pricing->input_per_mtok, 0.15);
  EXPECT_DOUBLE_EQ(pricing->output_per_mtok, 0.6);
  EXPECT_EQ(pricing->cached_input_per_mtok, 0.075);
  EXPECT_FALSE(pricing->cache_write_per_mtok.has_value());
  EXPECT_EQ(m->extension("other"), nullptr);
}

TEST_F(EngineTest, ContextWindowAndPricingErrorsNameTheirPath) {
  auto error = [&](std::string_view keys) {
    return std::string(LoadConfig(ModelWith(keys), {.registry = &registry_}).status().message());
  };
  EXPECT_EQ(error(R"("context_window": 0)"),
            "models.m.context_window: must be a positive integer (tokens)");
  EXPECT_EQ(error(R"("context_window": "big")"),
            "models.m.context_window: must be a positive integer (tokens)");
  EXPECT_EQ(error(R"("max_output_tokens": 1.5)"),
            "models.m.max_output_tokens: must be a positive integer (tokens)");
  EXPECT_EQ(error(R"("pricing": {"input_per_mtok": 1})"),
            "models.m.pricing.output_per_mtok: is required");
  EXPECT_EQ(error(R"("pricing": {"input_per_mtok": -1, "output_per_mtok": 1})"),
            "models.m.pricing.input_per_mtok: must be a number >= 0 (USD per million tokens)");
  EXPECT_EQ(error(R"("pricing": {"input_per_mtok": 1, "output_per_mtok": 1, "per_image": 2})"),
            "models.m.pricing.per_image: unknown field");
}

TEST_F(EngineTest, WeightedRouteErrorsNameTheirPath) {
  auto error = [&](std::string_view route) {
    return std::string(
        LoadConfig(Cat(R"({"providers": {"p": {"type": "openai", "base_url": "http://h"}},
                                    "models": {"a": {"provider": "p"}, "b": {"provider": "p"}},
                                    "routes": [)",
                                route, "]}"),
                   {.registry = &registry_})
            .status()
            .message());
  };
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "target": "a", "fallbacks": ["b", "zz"]})"),
            "routes[0].fallbacks[1]: unknown model \"zz\"");
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "target": "a", "fallbacks": [3]})"),
            "routes[0].fallbacks[0]: must be a string");
  EXPECT_THAT(error(R"({"match": {"model": "r"}, "target": "a", "retry_on": ["5xx", "oops"]})"),
              HasSubstr("routes[0].retry_on[1]: must be one of"));
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "target": "a", "fallbacks": ["b"],
                      "max_attempts": 3})"),
            "routes[0].max_attempts: must be <= 2");
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "target": "a", "max_attempts": 0})"),
            "routes[0].max_attempts: must be >= 1");
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "target": "a", "retries": 1})"),
            "routes[0].retries: unknown field");
  EXPECT_EQ(error(R"({"match": {"model": "r"}, "targets": [{"model": "a", "weight": -1}]})"),
            "routes[0].targets[0].weight: must be >= 0");
  EXPECT_THAT(error(R"({"match": {"model": "r"}, "policy": "nope", "target": "a"})"),
              HasSubstr("routes[0].policy: unknown routing policy \"nope\""));
}

// ---------------------------------------------------------------------------------------
// Services

struct Counter {
  int value = 0;
};

TEST_F(EngineTest, NamedStateSurvivesReloadAndIsReleasedWhenNoLongerAsked) {
  std::vector<Counter*> seen;
  ASSERT_TRUE(registry_.filters()
                  .Register("counting",
                            [&seen](std::string_view, const BuildContext& ctx)
                                -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                              std::shared_ptr<Counter> c = ctx.services->State<Counter>(
                                  "test.counter", [] { return std::make_shared<Counter>(); });
                              ++c->value;
                              seen.push_back(c.get());
                              // The factory holds the state as long as its snapshot lives.
                              struct Holder : FilterFactory {
                                std::shared_ptr<Counter> state;
                                std::unique_ptr<Filter> CreateFilter() const override {
                                  return std::make_unique<Filter>();
                                }
                              };
                              auto f = std::make_unique<Holder>();
                              f->state = std::move(c);
                              return f;
                            })
                  .ok());
  ConfigStore store({.registry = &registry_});
  const std::string with = R"({"filters": [{"type": "counting"}]})";
  ASSERT_TRUE(store.Load(with).ok());
  EXPECT_EQ(store.services().live_states(), 1u);
  ASSERT_TRUE(store.Reload(with).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0], seen[1]);
  EXPECT_EQ(seen[1]->value, 2);  // the same object, counted twice

  std::shared_ptr<const ConfigSnapshot> old = store.Current();
  ASSERT_TRUE(store.Reload("{}").ok());
  EXPECT_EQ(store.services().live_states(), 1u);  // `old` still holds it
  old.reset();
  EXPECT_EQ(store.services().live_states(), 0u);

  // Asked for again later: a fresh object.
  ASSERT_TRUE(store.Reload(with).ok());
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[2]->value, 1);
  EXPECT_EQ(store.services().live_states(), 1u);
}

TEST_F(EngineTest, NamedStateOfAnotherTypeIsNull) {
  Services services;
  std::shared_ptr<Counter> c = services.State<Counter>("x", [] { return std::make_shared<Counter>(); });
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(services.State<std::string>("x", [] { return std::make_shared<std::string>(); }),
            nullptr);
  EXPECT_EQ(services.State<Counter>("x", [] { return std::make_shared<Counter>(); }), c);
}

// ---------------------------------------------------------------------------------------
// Limits

TEST_F(EngineTest, RequestsBeyondMaxInFlightGet503WithRetryAfter) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(ChunkJson("t1")));
    if (!c.WaitGate("finish")) return;
    c.SendChunk(kDone);
    c.EndChunked();
  });
  Start(Config(server.Url("/v1")), {.max_requests_in_flight = 1});
  RecordingSink first;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", true)), &first);
  ASSERT_TRUE(RunUntil([&] { return !first.writes.empty(); }));
  RecordingSink second;
  std::unique_ptr<ActiveRequest> rejected = gateway_->Handle(Post(ChatBody("demo")), &second);
  EXPECT_TRUE(rejected->done());
  EXPECT_EQ(second.status, 503);
  EXPECT_EQ(FindHeader(second.headers, "retry-after"), "1");
  server.OpenGate("finish");
  ASSERT_TRUE(RunUntil([&] { return first.finished.has_value(); }));
  EXPECT_EQ(first.finished, true);
  EXPECT_EQ(server.requests().size(), 1u);
  // Capacity is back once the first request ended.
  RecordingSink third;
  server.OpenGate("finish");
  Serve(Post(ChatBody("demo", true)), &third);
  EXPECT_EQ(third.status, 200);
}

// An upstream client the test drives by hand, so the order of upstream bytes across
// requests is exact.
class FakeUpstream : public UpstreamClient {
 public:
  struct Call {
    UpstreamRequest request;
    UpstreamHandler* handler = nullptr;
    bool cancelled = false;
  };
  class FakeCall : public UpstreamCall {
   public:
    explicit FakeCall(std::shared_ptr<Call> call) : call_(std::move(call)) {}
    ~FakeCall() override { call_->cancelled = true; }
    void Pause() override {}
    void Resume() override {}
    UpstreamCallStats stats() const override { return {}; }

   private:
    std::shared_ptr<Call> call_;
  };
  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request,
                                      UpstreamHandler* handler) override {
    auto call = std::make_shared<Call>();
    call->request = std::move(request);
    call->handler = handler;
    calls.push_back(call);
    return std::make_unique<FakeCall>(call);
  }
  std::vector<std::shared_ptr<Call>> calls;
};

// A Chat Completions answer of exactly `size` bytes (>= 26), padded in its id. Whole 2xx
// bodies are read (a body that is no answer is a 502), so byte-counting tests send answers.
std::string AnswerOfSize(size_t size) {
  const std::string frame = R"({"id":"","choices":[]})";
  std::string answer = R"({"id":")" + std::string(size - frame.size(), 'x') + R"(","choices":[]})";
  EXPECT_EQ(answer.size(), size);
  return answer;
}

TEST_F(EngineTest, BufferedUpstreamBytesBeyondTheLimitGive503) {
  FakeUpstream upstream;
  Start(Config("http://127.0.0.1:1/v1"),
        {.max_upstream_body_bytes = 100, .max_buffered_upstream_bytes = 100}, &upstream);
  RecordingSink a, b;
  std::unique_ptr<ActiveRequest> ra = gateway_->Handle(Post(ChatBody("demo")), &a);
  std::unique_ptr<ActiveRequest> rb = gateway_->Handle(Post(ChatBody("demo")), &b);
  ASSERT_EQ(upstream.calls.size(), 2u);
  const std::string answer = AnswerOfSize(61);
  const std::string half = answer.substr(0, 60);
  upstream.calls[0]->handler->OnHeaders(200, {{"content-type", "application/json"}});
  upstream.calls[0]->handler->OnData(half);
  upstream.calls[1]->handler->OnHeaders(200, {{"content-type", "application/json"}});
  upstream.calls[1]->handler->OnData(half);  // 120 bytes held in all
  RunIdle();
  EXPECT_EQ(b.status, 503);
  EXPECT_EQ(FindHeader(b.headers, "retry-after"), "1");
  EXPECT_TRUE(upstream.calls[1]->cancelled);
  EXPECT_FALSE(a.finished.has_value());
  // The first request is within the limit and completes.
  upstream.calls[0]->handler->OnData(answer.substr(60));
  upstream.calls[0]->handler->OnComplete(absl::OkStatus());
  ASSERT_TRUE(RunUntil([&] { return a.finished.has_value(); }));
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, answer);
}

// No OpenAI-compatible server answers a chat call 2xx with a body that is not an answer:
// such a body (Kong's recorded mock of a broken upstream, or not JSON) is the upstream's
// failure, and the client gets a 502 with an OpenAI error body, not the body as an answer.
TEST_F(EngineTest, A2xxBodyThatIsNoAnswerGives502BadUpstreamResponse) {
  FakeUpstream upstream;
  Start(Config("http://127.0.0.1:1/v1"), {}, &upstream);
  for (const std::string& sent :
       {std::string(R"({"nothing_object":{"not_interesting_tag_names":"bad string"}})"),
        std::string("<html>oops</html>")}) {
    RecordingSink sink;
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo")), &sink);
    ASSERT_FALSE(upstream.calls.empty());
    upstream.calls.back()->handler->OnHeaders(200, {{"content-type", "application/json"}});
    upstream.calls.back()->handler->OnData(sent);
    upstream.calls.back()->handler->OnComplete(absl::OkStatus());
    ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); })) << sent;
    EXPECT_EQ(sink.status, 502) << sent;
    nlohmann::json error = nlohmann::json::parse(sink.body, nullptr, false)["error"];
    EXPECT_EQ(error["code"], "bad_upstream_response") << sink.body;
    EXPECT_EQ(error["type"], "server_error") << sink.body;
    EXPECT_NE(error["message"].get<std::string>().find("not a Chat Completions answer"),
              std::string::npos)
        << sink.body;
  }
}

// The same for every dialect family: a 2xx chat answer its dialect cannot read is the
// upstream's failure, so the client gets 502 "bad_upstream_response" (the dialects report
// an unreadable body as kInvalidArgument, which alone would be a 400 blaming the client).
TEST_F(EngineTest, EveryDialectsUnreadable2xxAnswerGives502BadUpstreamResponse) {
  FakeUpstream upstream;
  Start(R"({"providers": {
      "openai": {"type": "openai", "base_url": "http://127.0.0.1:1/v1"},
      "azure_openai": {"type": "azure_openai", "base_url": "http://127.0.0.1:1",
                       "api_key": "k", "api_version": "2024-10-21"},
      "anthropic": {"type": "anthropic", "base_url": "http://127.0.0.1:1", "api_key": "k"},
      "gemini": {"type": "gemini", "base_url": "http://127.0.0.1:1/v1beta", "api_key": "k"},
      "bedrock": {"type": "bedrock", "base_url": "http://127.0.0.1:1", "api_key": "k"},
      "cohere": {"type": "cohere", "base_url": "http://127.0.0.1:1", "api_key": "k"},
      "ollama": {"type": "ollama", "base_url": "http://127.0.0.1:1"},
      "kserve": {"type": "kserve", "base_url": "http://127.0.0.1:1"}},
    "models": {
      "openai": {"provider": "openai"}, "azure_openai": {"provider": "azure_openai"},
      "anthropic": {"provider": "anthropic"}, "gemini": {"provider": "gemini"},
      "bedrock": {"provider": "bedrock"}, "cohere": {"provider": "cohere"},
      "ollama": {"provider": "ollama"}, "kserve": {"provider": "kserve"}}})",
        {}, &upstream);
  for (const char* model :
       {"openai", "azure_openai", "anthropic", "gemini", "bedrock", "cohere", "ollama", "kserve"}) {
    RecordingSink sink;
    const size_t before = upstream.calls.size();
    std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody(model)), &sink);
    ASSERT_EQ(upstream.calls.size(), before + 1) << model;
    upstream.calls.back()->handler->OnHeaders(200, {{"content-type", "application/json"}});
    upstream.calls.back()->handler->OnData("<html>upstream proxy says hello</html>");
    upstream.calls.back()->handler->OnComplete(absl::OkStatus());
    ASSERT_TRUE(RunUntil([&] { return sink.finished.has_value(); })) << model;
    EXPECT_EQ(sink.status, 502) << model << " " << sink.body;
    nlohmann::json error = nlohmann::json::parse(sink.body, nullptr, false)["error"];
    EXPECT_EQ(error["code"], "bad_upstream_response") << model << " " << sink.body;
    EXPECT_EQ(error["type"], "server_error") << model << " " << sink.body;
  }
}

TEST_F(EngineTest, StreamEventsHeldBeforeTheStatusLineCountAgainstTheBufferLimit) {
  FakeUpstream upstream;
  AddScript("a").on_headers = [](RequestContext&, ResponseHead&, FilterCallbacks&) {
    return FilterStatus::kPause;  // holds the status line, so events queue up
  };
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})),
        {.max_upstream_body_bytes = 100, .max_buffered_upstream_bytes = 100}, &upstream);
  RecordingSink sink;
  std::unique_ptr<ActiveRequest> active = gateway_->Handle(Post(ChatBody("demo", true)), &sink);
  ASSERT_EQ(upstream.calls.size(), 1u);
  upstream.calls[0]->handler->OnHeaders(200, {{"content-type", "text/event-stream"}});
  upstream.calls[0]->handler->OnData(Sse(std::string(60, 'a')));
  EXPECT_EQ(sink.header_calls, 0);
  upstream.calls[0]->handler->OnData(Sse(std::string(60, 'b')));
  ASSERT_TRUE(sink.finished.has_value());
  EXPECT_EQ(sink.status, 503);
  EXPECT_EQ(FindHeader(sink.headers, "retry-after"), "1");
  EXPECT_TRUE(upstream.calls[0]->cancelled);
}

TEST_F(EngineTest, FinishedRequestsReturnTheirBufferedBytes) {
  FakeUpstream upstream;
  AddScript("a");
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})),
        {.max_upstream_body_bytes = 100, .max_buffered_upstream_bytes = 100}, &upstream);
  // A stream, a whole response and a failed attempt, one after the other, each holding
  // up to 90 bytes: none may leak into the next one's budget.
  RecordingSink stream;  // not asking for usage: no estimated usage chunk joins the 90 bytes
  std::unique_ptr<ActiveRequest> a =
      gateway_->Handle(Post(ChatBody("demo", false, R"(,"stream":true)")), &stream);
  ASSERT_EQ(upstream.calls.size(), 1u);
  upstream.calls[0]->handler->OnHeaders(200, {{"content-type", "text/event-stream"}});
  upstream.calls[0]->handler->OnData(Sse(std::string(80, 's')));
  upstream.calls[0]->handler->OnData(kDone);
  upstream.calls[0]->handler->OnComplete(absl::OkStatus());
  ASSERT_TRUE(RunUntil([&] { return stream.finished.has_value(); }));
  EXPECT_EQ(stream.finished, true);

  RecordingSink failed;
  std::unique_ptr<ActiveRequest> b = gateway_->Handle(Post(ChatBody("demo")), &failed);
  ASSERT_EQ(upstream.calls.size(), 2u);
  upstream.calls[1]->handler->OnHeaders(500, {{"content-type", "application/json"}});
  upstream.calls[1]->handler->OnData(std::string(90, ' '));
  upstream.calls[1]->handler->OnComplete(absl::OkStatus());
  ASSERT_TRUE(RunUntil([&] { return failed.finished.has_value(); }));
  EXPECT_EQ(failed.status, 500);

  for (int i = 0; i < 2; ++i) {
    RecordingSink whole;
    std::unique_ptr<ActiveRequest> c = gateway_->Handle(Post(ChatBody("demo")), &whole);
    ASSERT_EQ(upstream.calls.size(), 3u + i);
    upstream.calls.back()->handler->OnHeaders(200, {{"content-type", "application/json"}});
    upstream.calls.back()->handler->OnData(AnswerOfSize(90));
    upstream.calls.back()->handler->OnComplete(absl::OkStatus());
    ASSERT_TRUE(RunUntil([&] { return whole.finished.has_value(); }));
    EXPECT_EQ(whole.status, 200) << i;
    EXPECT_EQ(whole.body, AnswerOfSize(90));
  }
}

TEST_F(EngineTest, HeaderValuesWithLineBreaksNeverReachTheSink) {
  TestHttpServer server(Provider);
  AddScript("a").on_headers = [](RequestContext&, ResponseHead& head, FilterCallbacks&) {
    head.headers.emplace_back("x-evil", "v\r\nset-cookie: stolen");
    head.headers.emplace_back("x-fine", "ok");
    return FilterStatus::kContinue;
  };
  AddScript("b").on_request = [](RequestContext& ctx, FilterCallbacks&) {
    ctx.upstream_header_mutations.push_back(
        {HeaderMutation::Op::kSet, "x-up-evil", "a\nb: c"});
    ctx.upstream_header_mutations.push_back({HeaderMutation::Op::kSet, "x-up-fine", "1"});
    return FilterResult::Continue();
  };
  RecordingSink sink = ServeDemoChat(server, {"a", "b"});
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(FindHeader(sink.headers, "x-fine"), "ok");
  EXPECT_FALSE(FindHeader(sink.headers, "x-evil").has_value());
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(FindHeader(server.requests()[0].headers, "x-up-fine"), "1");
  EXPECT_FALSE(FindHeader(server.requests()[0].headers, "x-up-evil").has_value());
}

TEST_F(EngineTest, LocalReplyHeaderValuesWithLineBreaksNeverReachTheSink) {
  AddScript("a").on_request = [](RequestContext&, FilterCallbacks&) {
    LocalReply r = JsonReply(401, R"({"error":{"message":"no"}})");
    r.headers = {{"x-bad", "a\rb"}, {"x-nul", std::string("a\0b", 3)}, {"x-good", "g"}};
    return FilterResult::Reply(std::move(r));
  };
  Start(Config("http://127.0.0.1:1/v1", Scripts({"a"})));
  RecordingSink sink;
  Serve(Post(ChatBody("demo")), &sink);
  EXPECT_EQ(sink.status, 401);
  EXPECT_EQ(FindHeader(sink.headers, "x-good"), "g");
  EXPECT_FALSE(FindHeader(sink.headers, "x-bad").has_value());
  EXPECT_FALSE(FindHeader(sink.headers, "x-nul").has_value());
  for (const auto& [name, value] : sink.headers) {
    EXPECT_EQ(value.find_first_of(std::string("\r\n\0", 3)), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace modeenvoy
