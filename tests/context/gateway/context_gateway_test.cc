// tests/context/gateway/context_gateway_test.cc: the context component inside the engine, on
// virtual time (SimEventLoop): the filter (history in, turn out, headers, validation,
// concurrency modes, failure modes, store timeouts, ownership, final bytes held until the
// append is acknowledged, stream assembly with tool calls, compare-and-set retries), the
// session endpoints, contextual routing and guardrails. Providers are a fake UpstreamClient
// on the same loop; the store is a FaultyStore over the memory store.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "nlohmann/json.hpp"
#include "tests/context/gateway/faulty_store.h"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using context_testing::FaultyStore;
using gateway_testing::RecordingSink;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// What the fake provider answers one request with.
struct Scripted {
  int status = 200;
  // Whole body (status != 200 or not streaming), or SSE events' data (streaming).
  std::string body;
  std::vector<std::string> events;
  bool hang = false;  // never answers
};

// An OpenAI-compatible provider on the test's loop: answers after `delay`, a stream one
// event per loop round, honouring Pause/Resume.
class FakeUpstream final : public UpstreamClient {
 public:
  explicit FakeUpstream(SimEventLoop* loop) : loop_(loop) {}

  // Builds the answer for a request body; default: "reply <n>" (n counts requests from 1).
  std::function<Scripted(const Json& body, int n)> script;
  absl::Duration delay = absl::Seconds(1);
  std::vector<Json> bodies;

  static Scripted Reply(const Json& body, std::string_view text) {
    Scripted s;
    if (body.value("stream", false)) {
      std::string half1(text.substr(0, text.size() / 2));
      std::string half2(text.substr(text.size() / 2));
      s.events = {Chunk(Json{{"role", "assistant"}, {"content", half1}}),
                  Chunk(Json{{"content", half2}}),
                  R"({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",)"
                  R"("choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,)"
                  R"("total_tokens":5}})",
                  "[DONE]"};
    } else {
      Json completion = {
          {"id", "chatcmpl-1"}, {"object", "chat.completion"}, {"created", 1},
          {"model", body.value("model", "")},
          {"choices", Json::array({{{"index", 0},
                                    {"message", {{"role", "assistant"}, {"content", text}}},
                                    {"finish_reason", "stop"}}})},
          {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}, {"total_tokens", 5}}}};
      s.body = completion.dump();
    }
    return s;
  }

  static std::string Chunk(const Json& delta, const char* finish = nullptr) {
    Json chunk = {{"id", "c"}, {"object", "chat.completion.chunk"}, {"created", 1},
                  {"model", "m"},
                  {"choices", Json::array({{{"index", 0}, {"delta", delta},
                                            {"finish_reason", finish ? Json(finish) : Json()}}})}};
    return chunk.dump();
  }

  std::unique_ptr<UpstreamCall> Start(UpstreamRequest request, UpstreamHandler* handler) override {
    Json body = Json::parse(request.body);
    bodies.push_back(body);
    const int n = static_cast<int>(bodies.size());
    Scripted s = script ? script(body, n) : Reply(body, absl::StrFormat("reply %d", n));
    auto call = std::make_unique<Call>(loop_, handler, std::move(s), body.value("stream", false));
    if (!call->script.hang) {
      Call* raw = call.get();
      call->timer->Arm(delay, [raw] { raw->Begin(); });
    }
    return call;
  }

 private:
  class Call final : public UpstreamCall {
   public:
    Call(SimEventLoop* loop, UpstreamHandler* handler, Scripted s, bool stream)
        : loop(loop), handler(handler), script(std::move(s)), stream(stream),
          timer(loop->NewTimer()), life(std::make_shared<bool>(true)) {}
    void Pause() override { paused = true; }
    void Resume() override {
      if (!paused) return;
      paused = false;
      Schedule();
    }
    UpstreamCallStats stats() const override { return {}; }

    void Begin() {
      const bool sse = stream && script.status == 200;
      handler->OnHeaders(script.status, {{"content-type", sse ? "text/event-stream"
                                                                : "application/json"}});
      if (!sse) {
        handler->OnData(script.body);
        handler->OnComplete(absl::OkStatus());
        return;
      }
      Schedule();
    }
    // One event per loop round, so filters and the sink see them one by one.
    void Schedule() {
      std::weak_ptr<bool> alive = life;
      loop->Post([this, alive] {
        if (alive.expired() || paused) return;
        if (next == script.events.size()) {
          handler->OnComplete(absl::OkStatus());
          return;
        }
        std::string frame = absl::StrFormat("data: %s\n\n", script.events[next++]);
        handler->OnData(frame);
        if (!alive.expired()) Schedule();
      });
    }

    SimEventLoop* loop;
    UpstreamHandler* handler;
    Scripted script;
    bool stream;
    std::unique_ptr<Timer> timer;
    std::shared_ptr<bool> life;
    bool paused = false;
    size_t next = 0;
  };

  SimEventLoop* loop_;
};

HttpRequest Chat(const Json& body, HttpHeaders headers) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v1/chat/completions";
  r.headers = std::move(headers);
  r.headers.emplace_back("content-type", "application/json");
  r.body = body.dump();
  r.remote_address = "127.0.0.1:1";
  return r;
}

HttpRequest Local(std::string method, std::string path, std::string key) {
  HttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers.emplace_back("authorization", "Bearer " + key);
  r.remote_address = "127.0.0.1:1";
  return r;
}

Json UserTurn(std::string_view text, bool stream = false) {
  Json body = {{"model", "demo"},
               {"messages", Json::array({{{"role", "user"}, {"content", text}}})}};
  if (stream) body["stream"] = true;
  return body;
}

std::optional<std::string> Header(const HttpHeaders& headers, std::string_view name) {
  std::optional<std::string_view> v = FindHeader(headers, name);
  if (!v.has_value()) return std::nullopt;
  return std::string(*v);
}

// The (role, content) pairs of an upstream request's messages.
std::vector<std::string> Roles(const Json& body) {
  std::vector<std::string> out;
  for (const Json& m : body["messages"]) {
    out.push_back(m["role"].get<std::string>() + ":" +
                  (m.contains("content") && m["content"].is_string()
                       ? m["content"].get<std::string>()
                       : std::string("-")));
  }
  return out;
}

struct Exchange {
  RecordingSink sink{/*check_order=*/false};
  std::unique_ptr<ActiveRequest> active;
  int status() const { return sink.status; }
  Json json() const { return Json::parse(sink.body, nullptr, false); }
};

class ContextGatewayTest : public ::testing::Test {
 protected:
  void SetUp() override { SetUpWith(R"({"store": {"type": "memory"}})"); }

  void SetUpWith(std::string_view context_section, std::string_view routes = "[]",
                 std::string_view demo_keys = "") {
    gateway_.reset();
    store_ = nullptr;
    registry_ = std::make_unique<Registry>();
    services_ = std::make_unique<Services>(ServicesOptions{
        .clock = &loop_->fake_clock(), .random = [n = uint64_t{0}]() mutable { return ++n; }});
    ContextComponentOptions options;
    options.store = [this](EventLoop&) -> absl::StatusOr<std::shared_ptr<ContextStore>> {
      if (store_ == nullptr) {
        MemoryContextStoreOptions memory;
        memory.clock = &loop_->fake_clock();
        store_ = std::make_shared<FaultyStore>(NewMemoryContextStore(memory));
      }
      return std::shared_ptr<ContextStore>(store_);
    };
    options.log = [this](std::string_view line) { log_.emplace_back(line); };
    ASSERT_TRUE(RegisterContextComponent(registry_.get(), std::move(options)).ok());
    config_ = std::make_unique<ConfigStore>(
        ConfigLoadOptions{.registry = registry_.get(), .services = services_.get()});
    std::string doc = absl::StrFormat(R"({
      "providers": {"up": {"type": "openai", "base_url": "http://upstream.test/v1"}},
      "models": {"demo": {"provider": "up"%s},
                 "med": {"provider": "up", "upstream_model": "med-upstream"}},
      "routes": %s,
      "context": %s,
      "filters": [{"type": "api_key_auth",
                   "config": {"keys": [{"name": "team-a", "key": "sk-a"},
                                       {"name": "team-b", "key": "sk-b"}]}},
                  {"type": "context"}]})",
                                      demo_keys, routes, context_section);
    absl::Status loaded = config_->Load(doc);
    ASSERT_TRUE(loaded.ok()) << loaded;
    GatewayOptions gateway_options;
    gateway_options.config = config_.get();
    gateway_options.loop = loop_.get();
    gateway_options.upstream = &upstream_;
    auto gateway = NewGateway(std::move(gateway_options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = std::move(*gateway);
  }

  std::unique_ptr<Exchange> Start(HttpRequest request) {
    auto ex = std::make_unique<Exchange>();
    ex->active = gateway_->Handle(std::move(request), &ex->sink);
    return ex;
  }
  // Sends one request and runs the loop until it is answered.
  std::unique_ptr<Exchange> Send(HttpRequest request) {
    std::unique_ptr<Exchange> ex = Start(std::move(request));
    loop_->RunFor(absl::Minutes(5));
    EXPECT_TRUE(ex->sink.finished.has_value());
    return ex;
  }
  std::unique_ptr<Exchange> Turn(std::string_view session, std::string_view text,
                                 std::string_view key = "sk-a", bool stream = false) {
    return Send(Chat(UserTurn(text, stream),
                     {{"authorization", "Bearer " + std::string(key)},
                      {"X-Session-Id", std::string(session)}}));
  }

  std::optional<StoredContext> Stored(std::string_view session) {
    std::optional<StoredContext> out;
    store_->inner().Get(session, [&](absl::StatusOr<std::optional<StoredContext>> got) {
      ASSERT_TRUE(got.ok()) << got.status();
      out = std::move(*got);
    });
    return out;
  }

  std::vector<std::string> StoredHistory(std::string_view session) {
    std::vector<std::string> out;
    std::optional<StoredContext> s = Stored(session);
    if (!s.has_value()) return out;
    for (const HistoryEntry& e : s->record->history) {
      std::string content = "-";
      if (e.message.content.has_value()) {
        if (const auto* t = std::get_if<std::string>(&*e.message.content)) content = *t;
      }
      out.push_back(absl::StrFormat("%d %s:%s", e.turn, RoleName(e.message.role), content));
    }
    return out;
  }

  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  FakeUpstream upstream_{loop_.get()};
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Services> services_;
  std::unique_ptr<ConfigStore> config_;
  std::unique_ptr<Gateway> gateway_;
  std::shared_ptr<FaultyStore> store_;
  std::vector<std::string> log_;
};

TEST_F(ContextGatewayTest, SecondTurnCarriesTheHistoryAndEachTurnIsStored) {
  auto first = Turn("s-1", "hello");
  ASSERT_EQ(first->status(), 200) << first->sink.body;
  EXPECT_EQ(Header(first->sink.headers, "x-session-id"), "s-1");
  EXPECT_EQ(Header(first->sink.headers, "x-session-turn"), "1");
  auto second = Turn("s-1", "and again");
  ASSERT_EQ(second->status(), 200);
  EXPECT_EQ(Header(second->sink.headers, "x-session-turn"), "2");
  ASSERT_EQ(upstream_.bodies.size(), 2u);
  EXPECT_THAT(Roles(upstream_.bodies[0]), ElementsAre("user:hello"));
  EXPECT_THAT(Roles(upstream_.bodies[1]),
              ElementsAre("user:hello", "assistant:reply 1", "user:and again"));
  EXPECT_THAT(StoredHistory("s-1"), ElementsAre("1 user:hello", "1 assistant:reply 1",
                                                "2 user:and again", "2 assistant:reply 2"));
  std::optional<StoredContext> s = Stored("s-1");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->record->owner, "team-a");
  EXPECT_EQ(s->record->turn_count, 2);
  ASSERT_EQ(s->record->model_choices.size(), 2u);
  EXPECT_EQ(s->record->model_choices[1].turn, 2);
  EXPECT_EQ(s->record->model_choices[1].model, "demo");
  EXPECT_EQ(s->record->model_choices[1].provider, "up");
  EXPECT_EQ(s->record->model_choices[1].upstream_model, "demo");
  ASSERT_TRUE(s->record->model_choices[1].usage.has_value());
  EXPECT_EQ(s->record->model_choices[1].usage->total_tokens, 5);
  EXPECT_EQ(ReadContextMetrics(*services_).turns_appended, 2u);
}

TEST_F(ContextGatewayTest, StreamedRepliesAreAssembledAndStored) {
  auto first = Turn("s-2", "stream me", "sk-a", /*stream=*/true);
  ASSERT_EQ(first->status(), 200);
  EXPECT_THAT(first->sink.body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(Header(first->sink.headers, "x-session-turn"), "1");
  auto second = Turn("s-2", "more", "sk-a", /*stream=*/true);
  EXPECT_THAT(Roles(upstream_.bodies[1]),
              ElementsAre("user:stream me", "assistant:reply 1", "user:more"));
  EXPECT_THAT(StoredHistory("s-2"), ElementsAre("1 user:stream me", "1 assistant:reply 1",
                                                "2 user:more", "2 assistant:reply 2"));
}

TEST_F(ContextGatewayTest, RequestWithoutSessionPassesUntouched) {
  Json body = UserTurn("plain");
  body["metadata"] = {{"context", "{\"a\":\"b\"}"}, {"keep", "x"}};
  auto ex = Send(Chat(body, {{"authorization", "Bearer sk-a"}}));
  ASSERT_EQ(ex->status(), 200);
  EXPECT_FALSE(Header(ex->sink.headers, "x-session-id").has_value());
  EXPECT_FALSE(Header(ex->sink.headers, "x-session-turn").has_value());
  ASSERT_EQ(upstream_.bodies.size(), 1u);
  EXPECT_EQ(upstream_.bodies[0]["metadata"], (Json{{"context", "{\"a\":\"b\"}"}, {"keep", "x"}}));
  EXPECT_EQ(store_, nullptr) << "no store was needed";
}

TEST_F(ContextGatewayTest, BodyMetadataNamesTheSessionAndIsNotSentUpstream) {
  Json body = UserTurn("via body");
  body["metadata"] = {{"session_id", "s-body"}, {"context", {{"domain", "law"}}}, {"keep", "x"}};
  auto ex = Send(Chat(body, {{"authorization", "Bearer sk-a"}}));
  ASSERT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_EQ(Header(ex->sink.headers, "x-session-id"), "s-body");
  EXPECT_EQ(upstream_.bodies[0]["metadata"], (Json{{"keep", "x"}}));
  std::optional<StoredContext> s = Stored("s-body");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->record->metadata, (std::map<std::string, std::string>{{"domain", "law"}}));
}

TEST_F(ContextGatewayTest, HeaderMetadataIsStoredAndJsonTextInTheBodyIsAccepted) {
  Json body = UserTurn("hi");
  body["metadata"] = {{"context", R"({"tier":"gold"})"}};
  auto ex = Send(Chat(body, {{"authorization", "Bearer sk-a"},
                             {"X-Session-Id", "s-m"},
                             {"X-Session-Metadata", R"({"lang":"de"})"}}));
  ASSERT_EQ(ex->status(), 200) << ex->sink.body;
  EXPECT_FALSE(upstream_.bodies[0].contains("metadata"));
  EXPECT_EQ(Stored("s-m")->record->metadata,
            (std::map<std::string, std::string>{{"lang", "de"}, {"tier", "gold"}}));
}

TEST_F(ContextGatewayTest, BadInputGets400NamingTheField) {
  auto long_id = Send(Chat(UserTurn("x"), {{"authorization", "Bearer sk-a"},
                                           {"X-Session-Id", std::string(129, 'a')}}));
  EXPECT_EQ(long_id->status(), 400);
  EXPECT_EQ(long_id->json()["error"]["param"], "X-Session-Id");
  EXPECT_THAT(long_id->json()["error"]["message"].get<std::string>(), HasSubstr("at most 128"));

  auto bad_meta = Send(Chat(UserTurn("x"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "s"},
                                            {"X-Session-Metadata", "{not json"}}));
  EXPECT_EQ(bad_meta->status(), 400);
  EXPECT_EQ(bad_meta->json()["error"]["param"], "X-Session-Metadata");

  auto not_strings = Send(Chat(UserTurn("x"), {{"authorization", "Bearer sk-a"},
                                               {"X-Session-Id", "s"},
                                               {"X-Session-Metadata", R"({"n": 1})"}}));
  EXPECT_EQ(not_strings->status(), 400);
  EXPECT_EQ(not_strings->json()["error"]["param"], "X-Session-Metadata.n");

  Json body = UserTurn("x");
  body["metadata"] = {{"session_id", "s"}, {"context", "[1]"}};
  auto body_meta = Send(Chat(body, {{"authorization", "Bearer sk-a"}}));
  EXPECT_EQ(body_meta->status(), 400);
  EXPECT_EQ(body_meta->json()["error"]["param"], "metadata.context");
  EXPECT_TRUE(upstream_.bodies.empty());
}

// `session_header_aliases` (e.g. Claude Code's X-Claude-Code-Session-Id) name the session when
// `session_header` is absent: the second turn carries the first one's history, the answer
// names the session in X-Session-Id, and a bad alias value is a 400 naming that header.
TEST_F(ContextGatewayTest, AnAliasHeaderNamesTheSession) {
  SetUpWith(R"({"store": {"type": "memory"},
                "session_header_aliases": ["X-Other-Id", "X-Claude-Code-Session-Id"]})");
  auto turn = [&](std::string_view text, HttpHeaders ids) {
    ids.emplace_back("authorization", "Bearer sk-a");
    return Send(Chat(UserTurn(text), std::move(ids)));
  };
  auto first = turn("hello", {{"x-claude-code-session-id", "cc-1"}});
  ASSERT_EQ(first->status(), 200) << first->sink.body;
  EXPECT_EQ(Header(first->sink.headers, "x-session-id"), "cc-1");
  EXPECT_EQ(Header(first->sink.headers, "x-session-turn"), "1");
  auto second = turn("and again", {{"X-Claude-Code-Session-Id", "cc-1"}});
  ASSERT_EQ(second->status(), 200) << second->sink.body;
  ASSERT_EQ(upstream_.bodies.size(), 2u);
  EXPECT_THAT(Roles(upstream_.bodies[1]),
              ElementsAre("user:hello", "assistant:reply 1", "user:and again"));
  EXPECT_THAT(StoredHistory("cc-1"), ElementsAre("1 user:hello", "1 assistant:reply 1",
                                                 "2 user:and again", "2 assistant:reply 2"));

  // session_header first, then the aliases in their listed order.
  auto both = turn("primary", {{"X-Claude-Code-Session-Id", "cc-1"}, {"X-Session-Id", "p-1"},
                               {"X-Other-Id", "o-1"}});
  ASSERT_EQ(both->status(), 200);
  EXPECT_EQ(Header(both->sink.headers, "x-session-id"), "p-1");
  auto aliases = turn("other", {{"X-Claude-Code-Session-Id", "cc-1"}, {"X-Other-Id", "o-1"}});
  ASSERT_EQ(aliases->status(), 200);
  EXPECT_EQ(Header(aliases->sink.headers, "x-session-id"), "o-1");
  EXPECT_EQ(Stored("cc-1")->record->turn_count, 2);

  auto bad = turn("x", {{"X-Claude-Code-Session-Id", "has space"}});
  EXPECT_EQ(bad->status(), 400);
  EXPECT_EQ(bad->json()["error"]["param"], "X-Claude-Code-Session-Id");
  EXPECT_EQ(upstream_.bodies.size(), 4u);
}

// Without `session_header_aliases` another header names no session: the request passes.
TEST_F(ContextGatewayTest, AnUnlistedHeaderNamesNoSession) {
  auto sent = Send(Chat(UserTurn("hello"), {{"authorization", "Bearer sk-a"},
                                            {"X-Claude-Code-Session-Id", "cc-2"}}));
  ASSERT_EQ(sent->status(), 200);
  EXPECT_EQ(Header(sent->sink.headers, "x-session-id"), std::nullopt);
  // The store is made by the first request that names a session: none did.
  EXPECT_EQ(store_, nullptr);
}

TEST_F(ContextGatewayTest, HistoryOverItsByteBoundGets400) {
  SetUpWith(R"({"max_history_bytes": 40})");
  auto first = Turn("s-big", std::string(20, 'x'));  // 20 bytes + "reply 1" (7)
  ASSERT_EQ(first->status(), 200);
  auto second = Turn("s-big", std::string(14, 'y'));  // 27 + 14 = 41 > 40
  EXPECT_EQ(second->status(), 400);
  EXPECT_EQ(second->json()["error"]["param"], "messages");
  EXPECT_THAT(second->json()["error"]["message"].get<std::string>(),
              HasSubstr("max_history_bytes"));
  auto fits = Turn("s-big", std::string(13, 'y'));  // 40
  EXPECT_EQ(fits->status(), 200);
}

TEST_F(ContextGatewayTest, QueueModeServesOneSessionInArrivalOrder) {
  std::vector<std::unique_ptr<Exchange>> all;
  for (const char* text : {"one", "two", "three"}) {
    all.push_back(Start(Chat(UserTurn(text), {{"authorization", "Bearer sk-a"},
                                              {"X-Session-Id", "q"}})));
  }
  loop_->RunFor(absl::Minutes(1));
  for (auto& ex : all) EXPECT_EQ(ex->status(), 200) << ex->sink.body;
  ASSERT_EQ(upstream_.bodies.size(), 3u);
  EXPECT_THAT(Roles(upstream_.bodies[2]),
              ElementsAre("user:one", "assistant:reply 1", "user:two", "assistant:reply 2",
                          "user:three"));
  EXPECT_THAT(StoredHistory("q"),
              ElementsAre("1 user:one", "1 assistant:reply 1", "2 user:two",
                          "2 assistant:reply 2", "3 user:three", "3 assistant:reply 3"));
  // One at a time: each upstream call started after the previous answer (1 s apart).
  EXPECT_EQ(Header(all[2]->sink.headers, "x-session-turn"), "3");
}

TEST_F(ContextGatewayTest, OtherSessionsDoNotWait) {
  auto a = Start(Chat(UserTurn("a"), {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "x"}}));
  auto b = Start(Chat(UserTurn("b"), {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "y"}}));
  loop_->RunUntilIdle();
  EXPECT_EQ(upstream_.bodies.size(), 2u) << "both upstream calls started at once";
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(a->status(), 200);
  EXPECT_EQ(b->status(), 200);
}

TEST_F(ContextGatewayTest, RejectModeAnswers409SessionBusy) {
  SetUpWith(R"({"concurrency": {"mode": "reject"}})");
  auto first = Start(Chat(UserTurn("one"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "r"}}));
  auto second = Start(Chat(UserTurn("two"), {{"authorization", "Bearer sk-a"},
                                             {"X-Session-Id", "r"}}));
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(first->status(), 200);
  EXPECT_EQ(second->status(), 409);
  EXPECT_EQ(second->json()["error"]["code"], "session_busy");
  EXPECT_EQ(ReadContextMetrics(*services_).busy_rejected, 1u);
  // Once the first finished, the session is free again.
  EXPECT_EQ(Turn("r", "three")->status(), 200);
}

TEST_F(ContextGatewayTest, QueuedRequestGives409AfterQueueTimeout) {
  SetUpWith(R"({"concurrency": {"mode": "queue", "queue_timeout_ms": 3000}})");
  upstream_.script = [](const Json& body, int n) {
    Scripted s = FakeUpstream::Reply(body, "r");
    s.hang = n == 1;  // the first request holds the session for good
    return s;
  };
  auto first = Start(Chat(UserTurn("one"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "t"}}));
  auto second = Start(Chat(UserTurn("two"), {{"authorization", "Bearer sk-a"},
                                             {"X-Session-Id", "t"}}));
  loop_->RunUntilIdle();
  loop_->AdvanceBy(absl::Milliseconds(2999));
  EXPECT_EQ(second->status(), 0);
  loop_->AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(second->status(), 409);
  EXPECT_EQ(second->json()["error"]["code"], "session_busy");
  EXPECT_EQ(ReadContextMetrics(*services_).queue_timeouts, 1u);
  EXPECT_EQ(upstream_.bodies.size(), 1u);
}

TEST_F(ContextGatewayTest, QueueBeyondMaxQueueIsRejected) {
  SetUpWith(R"({"concurrency": {"max_queue": 1}})");
  std::vector<std::unique_ptr<Exchange>> all;
  for (int i = 0; i < 3; ++i) {
    all.push_back(Start(Chat(UserTurn("m"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "mq"}})));
  }
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(all[0]->status(), 200);
  EXPECT_EQ(all[1]->status(), 200);
  EXPECT_EQ(all[2]->status(), 409);
}

TEST_F(ContextGatewayTest, ASessionLeasedByAnotherProcessIsWaitedForInQueueMode) {
  ASSERT_EQ(Turn("lease", "first")->status(), 200);
  // Another gateway process sharing the store holds the session.
  bool locked = false;
  store_->inner().TryLock("lease", "other-process", absl::Minutes(1),
                          [&](absl::StatusOr<bool> got) { locked = got.ok() && *got; });
  ASSERT_TRUE(locked);
  auto ex = Start(Chat(UserTurn("second"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "lease"}}));
  loop_->AdvanceBy(absl::Seconds(5));
  EXPECT_EQ(upstream_.bodies.size(), 1u) << "waits for the other process's lease";
  store_->inner().Unlock("lease", "other-process", [](absl::StatusOr<bool>) {});
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(ex->status(), 200);
  EXPECT_THAT(Roles(upstream_.bodies[1]),
              ElementsAre("user:first", "assistant:reply 1", "user:second"));
}

TEST_F(ContextGatewayTest, ASessionLeasedByAnotherProcessIs409InRejectMode) {
  SetUpWith(R"({"concurrency": {"mode": "reject"}})");
  ASSERT_EQ(Turn("lease-r", "first")->status(), 200);
  store_->inner().TryLock("lease-r", "other-process", absl::Minutes(1), [](absl::StatusOr<bool>) {});
  auto ex = Turn("lease-r", "second");
  EXPECT_EQ(ex->status(), 409);
  EXPECT_EQ(ex->json()["error"]["code"], "session_busy");
  EXPECT_EQ(upstream_.bodies.size(), 1u);
}

TEST_F(ContextGatewayTest, FailOpenSendsTheRequestWithoutContextAndSaysSo) {
  ASSERT_EQ(Turn("fo", "first")->status(), 200);
  store_->fail_get = absl::UnavailableError("connection refused");
  auto ex = Turn("fo", "second");
  ASSERT_EQ(ex->status(), 200);
  EXPECT_EQ(Header(ex->sink.headers, "x-context-status"), "unavailable");
  EXPECT_FALSE(Header(ex->sink.headers, "x-session-turn").has_value());
  EXPECT_THAT(Roles(upstream_.bodies[1]), ElementsAre("user:second"));
  ContextMetrics m = ReadContextMetrics(*services_);
  EXPECT_EQ(m.fail_open, 1u);
  EXPECT_EQ(m.failed_reads, 1u);
  ASSERT_EQ(log_.size(), 1u);
  EXPECT_THAT(log_[0], HasSubstr("connection refused"));
  // Recovery: the store answers again, the history is intact (the failed turn not in it).
  store_->fail_get = absl::OkStatus();
  auto third = Turn("fo", "third");
  EXPECT_EQ(Header(third->sink.headers, "x-session-turn"), "2");
  EXPECT_THAT(Roles(upstream_.bodies[2]),
              ElementsAre("user:first", "assistant:reply 1", "user:third"));
}

TEST_F(ContextGatewayTest, FailClosedAnswers503) {
  SetUpWith(R"({"failure_mode": "closed"})");
  ASSERT_EQ(Turn("fc", "first")->status(), 200);
  store_->fail_lock = absl::UnavailableError("connection refused");
  auto ex = Turn("fc", "second");
  EXPECT_EQ(ex->status(), 503);
  EXPECT_EQ(ex->json()["error"]["code"], "context_unavailable");
  EXPECT_EQ(upstream_.bodies.size(), 1u);
}

TEST_F(ContextGatewayTest, SlowStoreIsCutOffAtTheStoreTimeout) {
  SetUpWith(R"({"store_timeout_ms": 2000})");
  ASSERT_EQ(Turn("slow", "first")->status(), 200);
  store_->hang_get = true;
  auto ex = Start(Chat(UserTurn("second"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "slow"}}));
  loop_->RunUntilIdle();
  loop_->AdvanceBy(absl::Milliseconds(1999));
  EXPECT_EQ(upstream_.bodies.size(), 1u) << "waiting for the store";
  loop_->AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(upstream_.bodies.size(), 2u) << "sent on without context";
  EXPECT_EQ(store_->cancelled, 1) << "the store call was cancelled";
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(Header(ex->sink.headers, "x-context-status"), "unavailable");
}

TEST_F(ContextGatewayTest, AnotherOwnersSessionIsNotFound) {
  ASSERT_EQ(Turn("own", "mine", "sk-a")->status(), 200);
  auto other = Turn("own", "let me in", "sk-b");
  EXPECT_EQ(other->status(), 404);
  EXPECT_EQ(other->json()["error"]["code"], "session_not_found");
  EXPECT_EQ(upstream_.bodies.size(), 1u);
  EXPECT_EQ(Send(Local("GET", "/v1/sessions/own", "sk-b"))->status(), 404);
  EXPECT_EQ(Send(Local("DELETE", "/v1/sessions/own", "sk-b"))->status(), 404);
  auto listed = Send(Local("GET", "/v1/sessions", "sk-b"));
  EXPECT_EQ(listed->status(), 200);
  EXPECT_TRUE(listed->json()["data"].empty());
  // A missing session looks exactly the same.
  auto missing = Send(Local("GET", "/v1/sessions/nope", "sk-b"));
  EXPECT_EQ(missing->json()["error"]["code"], "session_not_found");
  EXPECT_EQ(Stored("own")->record->history.size(), 2u);
}

TEST_F(ContextGatewayTest, SessionEndpointsGetListAndDelete) {
  ASSERT_EQ(Turn("e-1", "one")->status(), 200);
  ASSERT_EQ(Turn("e-2", "two")->status(), 200);
  ASSERT_EQ(Turn("e-3", "three")->status(), 200);
  auto got = Send(Local("GET", "/v1/sessions/e-1", "sk-a"));
  ASSERT_EQ(got->status(), 200);
  absl::StatusOr<ContextRecord> record = ParseContextRecord(got->sink.body);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->session_id, "e-1");
  EXPECT_EQ(record->history.size(), 2u);

  auto page1 = Send(Local("GET", "/v1/sessions?limit=2", "sk-a"));
  ASSERT_EQ(page1->status(), 200);
  Json p1 = page1->json();
  EXPECT_EQ(p1["object"], "list");
  ASSERT_EQ(p1["data"].size(), 2u);
  EXPECT_EQ(p1["data"][0]["id"], "e-1");
  EXPECT_EQ(p1["data"][1]["id"], "e-2");
  EXPECT_EQ(p1["data"][0]["turn_count"], 1);
  EXPECT_EQ(p1["has_more"], true);
  EXPECT_EQ(p1["last_id"], "e-2");
  auto page2 = Send(Local("GET", "/v1/sessions?limit=2&after=e-2", "sk-a"));
  Json p2 = page2->json();
  ASSERT_EQ(p2["data"].size(), 1u);
  EXPECT_EQ(p2["data"][0]["id"], "e-3");
  EXPECT_EQ(p2["has_more"], false);

  auto bad_limit = Send(Local("GET", "/v1/sessions?limit=0", "sk-a"));
  EXPECT_EQ(bad_limit->status(), 400);
  EXPECT_EQ(bad_limit->json()["error"]["param"], "limit");

  auto deleted = Send(Local("DELETE", "/v1/sessions/e-1", "sk-a"));
  ASSERT_EQ(deleted->status(), 200);
  EXPECT_EQ(deleted->json(), (Json{{"id", "e-1"}, {"object", "session.deleted"}, {"deleted", true}}));
  EXPECT_EQ(Send(Local("GET", "/v1/sessions/e-1", "sk-a"))->status(), 404);
  EXPECT_FALSE(Stored("e-1").has_value());
}

TEST_F(ContextGatewayTest, FinalBytesOfAWholeResponseWaitForTheAppend) {
  ASSERT_EQ(Turn("hold", "warm up")->status(), 200);
  store_->hold_appends = true;
  auto ex = Start(Chat(UserTurn("second"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "hold"}}));
  loop_->AdvanceBy(absl::Milliseconds(1500));  // the provider answered at 1 s
  ASSERT_EQ(store_->held(), 1u);
  EXPECT_FALSE(ex->sink.finished.has_value());
  EXPECT_TRUE(ex->sink.body.empty()) << "the body is the final bytes of a whole response";
  store_->ReleaseHeld();
  loop_->RunUntilIdle();
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ex->sink.finished, true);
  EXPECT_EQ(StoredHistory("hold").size(), 4u);
}

TEST_F(ContextGatewayTest, DoneOfAStreamWaitsForTheAppend) {
  ASSERT_EQ(Turn("hold-s", "warm up")->status(), 200);
  store_->hold_appends = true;
  auto ex = Start(Chat(UserTurn("second", /*stream=*/true),
                       {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "hold-s"}}));
  loop_->AdvanceBy(absl::Seconds(2));
  ASSERT_EQ(store_->held(), 1u);
  EXPECT_THAT(ex->sink.body, HasSubstr("\"content\":\"rep\""));  // first half of "reply 2"
  EXPECT_THAT(ex->sink.body, ::testing::Not(HasSubstr("[DONE]")));
  EXPECT_FALSE(ex->sink.finished.has_value());
  store_->ReleaseHeld();
  loop_->RunUntilIdle();
  EXPECT_THAT(ex->sink.body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(ex->sink.finished, true);
}

TEST_F(ContextGatewayTest, AnAppendThatNeverAnswersReleasesTheResponseAtTheTimeout) {
  SetUpWith(R"({"store_timeout_ms": 2000})");
  ASSERT_EQ(Turn("lost", "warm up")->status(), 200);
  store_->hang_append = true;
  auto ex = Start(Chat(UserTurn("second"), {{"authorization", "Bearer sk-a"},
                                            {"X-Session-Id", "lost"}}));
  loop_->AdvanceBy(absl::Seconds(1));  // the provider answers; the append starts
  loop_->RunUntilIdle();
  loop_->AdvanceBy(absl::Milliseconds(1999));
  EXPECT_FALSE(ex->sink.finished.has_value());
  loop_->AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(ex->sink.finished, true);
  EXPECT_EQ(ex->status(), 200);
  EXPECT_EQ(ReadContextMetrics(*services_).failed_writes, 1u);
  ASSERT_FALSE(log_.empty());
  EXPECT_THAT(log_.back(), HasSubstr("append to session \"lost\" (turn 2) failed"));
  // The head went out before the append: it named the turn the append would have stored.
  EXPECT_EQ(Header(ex->sink.headers, "x-session-turn"), "2");
}

TEST_F(ContextGatewayTest, StreamedToolCallsAreAssembledByIndexAndResultsAttached) {
  upstream_.script = [](const Json& body, int n) {
    if (n != 1) return FakeUpstream::Reply(body, "done");
    Scripted s;
    s.events = {
        FakeUpstream::Chunk({{"role", "assistant"},
                             {"tool_calls", Json::array({{{"index", 0}, {"id", "call_a"},
                                                          {"type", "function"},
                                                          {"function", {{"name", "weather"},
                                                                        {"arguments", ""}}}}})}}),
        FakeUpstream::Chunk({{"tool_calls", Json::array({{{"index", 1}, {"id", "call_b"},
                                                          {"type", "function"},
                                                          {"function", {{"name", "time"},
                                                                        {"arguments", "{\"tz\""}}}}})}}),
        FakeUpstream::Chunk({{"tool_calls", Json::array({{{"index", 0},
                                                          {"function", {{"arguments", "{\"city\":"}}}}})}}),
        FakeUpstream::Chunk({{"tool_calls", Json::array({{{"index", 0},
                                                          {"function", {{"arguments", "\"Oslo\"}"}}}}})}}),
        FakeUpstream::Chunk({{"tool_calls", Json::array({{{"index", 1},
                                                          {"function", {{"arguments", ":\"UTC\"}"}}}}})}},
                            "tool_calls"),
        "[DONE]"};
    return s;
  };
  auto first = Turn("tools", "weather and time?", "sk-a", /*stream=*/true);
  ASSERT_EQ(first->status(), 200);
  std::optional<StoredContext> s = Stored("tools");
  ASSERT_TRUE(s.has_value());
  const Message& reply = s->record->history.back().message;
  ASSERT_EQ(reply.tool_calls.size(), 2u);
  EXPECT_EQ(reply.tool_calls[0].id, "call_a");
  EXPECT_EQ(reply.tool_calls[0].function->name, "weather");
  EXPECT_EQ(reply.tool_calls[0].function->arguments, "{\"city\":\"Oslo\"}");
  EXPECT_EQ(reply.tool_calls[1].id, "call_b");
  EXPECT_EQ(reply.tool_calls[1].function->arguments, "{\"tz\":\"UTC\"}");
  ASSERT_EQ(s->record->tool_calls.size(), 2u);
  EXPECT_EQ(s->record->tool_calls[1].name, "time");
  EXPECT_FALSE(s->record->tool_calls[0].result.has_value());

  // The client answers both calls; only the new tool messages are sent.
  Json body = {{"model", "demo"},
               {"messages", Json::array({{{"role", "tool"}, {"tool_call_id", "call_a"},
                                          {"content", "sunny"}},
                                         {{"role", "tool"}, {"tool_call_id", "call_b"},
                                          {"content", "12:00"}}})}};
  auto second = Send(Chat(body, {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "tools"}}));
  ASSERT_EQ(second->status(), 200) << second->sink.body;
  const Json& sent = upstream_.bodies[1];
  ASSERT_EQ(sent["messages"].size(), 4u);
  EXPECT_EQ(sent["messages"][1]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Oslo\"}");
  EXPECT_EQ(sent["messages"][2]["tool_call_id"], "call_a");
  s = Stored("tools");
  EXPECT_EQ(s->record->tool_calls[0].result, "sunny");
  EXPECT_EQ(s->record->tool_calls[1].result, "12:00");
}

TEST_F(ContextGatewayTest, ConflictingWriterIsReadAgainAndTheTurnAppendedOnceAfterIt) {
  ASSERT_EQ(Turn("cas", "first")->status(), 200);
  int injected = 0;
  store_->before_append = [&](std::string_view id) {
    if (injected++ > 0) return;
    // Another gateway process wrote a turn between this request's read and its append.
    std::optional<StoredContext> now = Stored(id);
    ContextAppend other;
    HistoryEntry& entry = other.entries.emplace_back();  // not a braced temporary: GCC 12
    entry.message = MakeMessage(Role::kUser, "from elsewhere");  // -O2 warns on its move
    entry.turn = 2;
    other.turns = 1;
    store_->inner().Append(id, now->version, std::move(other),
                           [](absl::StatusOr<uint64_t> v) { ASSERT_TRUE(v.ok()); });
  };
  auto ex = Turn("cas", "second");
  ASSERT_EQ(ex->status(), 200);
  EXPECT_THAT(StoredHistory("cas"),
              ElementsAre("1 user:first", "1 assistant:reply 1", "2 user:from elsewhere",
                          "3 user:second", "3 assistant:reply 2"));
  EXPECT_EQ(ReadContextMetrics(*services_).append_conflicts, 1u);
  EXPECT_EQ(Stored("cas")->record->turn_count, 3);
  // X-Session-Turn promised turn 2 (the head went out before the append); the turn was
  // stored as 3, after the other writer's: counted and logged, not silent.
  EXPECT_EQ(Header(ex->sink.headers, "x-session-turn"), "2");
  EXPECT_EQ(ReadContextMetrics(*services_).turns_renumbered, 1u);
  ASSERT_FALSE(log_.empty());
  EXPECT_THAT(log_.back(), HasSubstr("session \"cas\": turn 2 (X-Session-Turn) stored as turn 3"));
}

TEST_F(ContextGatewayTest, XSessionTurnIsTheNumberTheAppendGetsWhenItSucceeds) {
  // A conflict from a writer that did not add a turn (a summary's Replace) keeps the number.
  ASSERT_EQ(Turn("num", "first")->status(), 200);
  int injected = 0;
  store_->before_append = [&](std::string_view id) {
    if (injected++ > 0) return;
    std::optional<StoredContext> now = Stored(id);
    ContextRecord folded = *now->record;
    store_->inner().Replace(id, now->version, std::move(folded),
                            [](absl::StatusOr<uint64_t> v) { ASSERT_TRUE(v.ok()); });
  };
  auto ex = Turn("num", "second");
  ASSERT_EQ(ex->status(), 200);
  EXPECT_EQ(Header(ex->sink.headers, "x-session-turn"), "2");
  EXPECT_EQ(Stored("num")->record->turn_count, 2);
  EXPECT_EQ(Stored("num")->record->history.back().turn, 2);
  EXPECT_EQ(ReadContextMetrics(*services_).append_conflicts, 1u);
  EXPECT_EQ(ReadContextMetrics(*services_).turns_renumbered, 0u);
  // An error response stores nothing: the header says the count before it.
  upstream_.script = [](const Json&, int) { return Scripted{.status = 500, .body = "{}"}; };
  auto failed = Turn("num", "third");
  EXPECT_EQ(Header(failed->sink.headers, "x-session-turn"), "2");
  EXPECT_EQ(Stored("num")->record->turn_count, 2);
}

TEST_F(ContextGatewayTest, TheLoadedRecordIsReleasedBeforeTheAppendWhichExtendsItInPlace) {
  ASSERT_EQ(Turn("inplace", "first")->status(), 200);
  const ContextRecord* before = Stored("inplace")->record.get();  // not held past this line
  ASSERT_EQ(Turn("inplace", "second")->status(), 200);
  std::optional<StoredContext> after = Stored("inplace");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->record->history.size(), 4u);
  // The memory store copies a record a reader still holds (store.h): the same record means
  // the filter had let go of it, and the turn cost what it added, not a copy of the history.
  EXPECT_EQ(after->record.get(), before);
}

TEST_F(ContextGatewayTest, TheLeaseIsRenewedWhileALongRequestHoldsTheSession) {
  SetUpWith(R"({"lease_ttl_ms": 3000})");
  upstream_.delay = absl::Seconds(20);  // the reply outlives the lease's TTL several times
  auto ex = Start(Chat(UserTurn("long", /*stream=*/true),
                       {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "renew"}}));
  for (int second = 1; second <= 19; ++second) {
    loop_->AdvanceBy(absl::Seconds(1));
    // Another gateway process sharing the store wants the session meanwhile.
    std::optional<bool> other;
    store_->inner().TryLock("renew", "other-process", absl::Minutes(1),
                            [&](absl::StatusOr<bool> got) { other = got.ok() && *got; });
    ASSERT_EQ(other, false) << "the lease lapsed at " << second << " s while the request held it";
  }
  loop_->RunFor(absl::Minutes(1));
  EXPECT_EQ(ex->status(), 200);
  EXPECT_THAT(ex->sink.body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(ReadContextMetrics(*services_).lease_renewal_failures, 0u);
  // Released with the request: the other process gets it now, and a request of this
  // process now waits for that process (serialized, never interleaved).
  bool other = false;
  store_->inner().TryLock("renew", "other-process", absl::Minutes(1),
                          [&](absl::StatusOr<bool> got) { other = got.ok() && *got; });
  EXPECT_TRUE(other);
}

TEST_F(ContextGatewayTest, ContextMetadataRoutesAndGuardrailsApply) {
  SetUpWith(R"({"guardrails": [{"match": {"domain": "medical"},
                                "system_prompt": "Be careful.",
                                "disclaimer": "Not medical advice."}]})",
            R"([{"match": {"model": "assistant"}, "policy": "context",
                 "rules": [{"when": {"domain": "medical"}, "target": "med"}],
                 "default": {"target": "demo"}}])");
  Json body = UserTurn("my knee hurts");
  body["model"] = "assistant";
  auto medical = Send(Chat(body, {{"authorization", "Bearer sk-a"},
                                  {"X-Session-Id", "doc"},
                                  {"X-Session-Metadata", R"({"domain":"medical"})"}}));
  ASSERT_EQ(medical->status(), 200) << medical->sink.body;
  EXPECT_EQ(upstream_.bodies[0]["model"], "med-upstream");
  EXPECT_THAT(Roles(upstream_.bodies[0]), ElementsAre("system:Be careful.", "user:my knee hurts"));
  EXPECT_EQ(medical->json()["choices"][0]["message"]["content"], "Not medical advice.\n\nreply 1");
  // The stored metadata keeps routing later turns that do not repeat it.
  body["messages"][0]["content"] = "and now?";
  ASSERT_EQ(Send(Chat(body, {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "doc"}}))->status(), 200);
  EXPECT_EQ(upstream_.bodies[1]["model"], "med-upstream");
  EXPECT_THAT(StoredHistory("doc"), ElementsAre("1 user:my knee hurts", "1 assistant:reply 1",
                                                "2 user:and now?", "2 assistant:reply 2"));
  body["messages"][0]["content"] = "hello";
  ASSERT_EQ(Send(Chat(body, {{"authorization", "Bearer sk-a"}, {"X-Session-Id", "gen"}}))->status(),
            200);
  EXPECT_EQ(upstream_.bodies.back()["model"], "demo");
  EXPECT_THAT(Roles(upstream_.bodies.back()), ElementsAre("user:hello"));
}

TEST_F(ContextGatewayTest, HistoryIsFittedToTheModelsContextWindow) {
  if (!GetEncoding("o200k_base").ok()) GTEST_SKIP() << "tokenizer rank files not installed";
  SetUpWith(R"({"reserve_output_tokens": 0})", "[]", R"(, "context_window": 60)");
  const std::string words = "alpha beta gamma delta epsilon zeta eta theta";
  for (int i = 1; i <= 4; ++i) {
    ASSERT_EQ(Turn("w", absl::StrFormat("%d %s", i, words))->status(), 200);
  }
  ASSERT_EQ(upstream_.bodies.size(), 4u);
  std::vector<std::string> last = Roles(upstream_.bodies[3]);
  ASSERT_LT(last.size(), 7u) << "older turns were dropped";
  ASSERT_GE(last.size(), 3u) << "the previous turn fits";
  EXPECT_EQ(last.size() % 2, 1u) << "whole turns: (user, assistant) pairs + the new message";
  EXPECT_EQ(last.front().substr(0, 5), "user:");
  EXPECT_EQ(last.back(), absl::StrFormat("user:4 %s", words));
  EXPECT_EQ(last[last.size() - 2], "assistant:reply 3");
  EXPECT_EQ(StoredHistory("w").size(), 8u) << "the store keeps everything";

  // New messages that cannot fit at all are the client's error.
  std::string huge;
  for (int i = 0; i < 40; ++i) huge += words + " ";
  auto too_big = Turn("w", huge);
  EXPECT_EQ(too_big->status(), 400);
  EXPECT_EQ(too_big->json()["error"]["code"], "context_length_exceeded");
}

TEST_F(ContextGatewayTest, DroppedTurnsAreFoldedIntoASummaryByTheSummarizerModel) {
  if (!GetEncoding("o200k_base").ok()) GTEST_SKIP() << "tokenizer rank files not installed";
  SetUpWith(R"({"reserve_output_tokens": 0,
                "summarizer": {"model": "med", "trigger": {"min_dropped": 2}}})",
            "[]", R"(, "context_window": 60)");
  int replies = 0;
  std::vector<Json> summary_calls;
  upstream_.script = [&](const Json& body, int) {
    if (body["model"] == "med-upstream") {
      summary_calls.push_back(body);
      return FakeUpstream::Reply(body, "SUMMARY");
    }
    return FakeUpstream::Reply(body, absl::StrFormat("reply %d", ++replies));
  };
  const std::string words = "alpha beta gamma delta epsilon zeta eta theta";
  for (int i = 1; i <= 5; ++i) {
    ASSERT_EQ(Turn("sum", absl::StrFormat("%d %s", i, words))->status(), 200);
    loop_->RunFor(absl::Minutes(1));  // let a summary started by this turn finish
  }
  ASSERT_FALSE(summary_calls.empty());
  const Json& call = summary_calls.front();
  ASSERT_EQ(call["messages"].size(), 2u);
  EXPECT_EQ(call["messages"][0]["role"], "system");
  EXPECT_THAT(call["messages"][1]["content"].get<std::string>(),
              HasSubstr(absl::StrFormat("user: 1 %s\nassistant: reply 1\n", words)));
  std::optional<StoredContext> s = Stored("sum");
  ASSERT_TRUE(s.has_value());
  ASSERT_FALSE(s->record->history.empty());
  EXPECT_TRUE(s->record->history.front().summary);
  EXPECT_EQ(s->record->history.front().message.role, Role::kSystem);
  EXPECT_EQ(std::get<std::string>(*s->record->history.front().message.content),
            "Summary of the earlier conversation: SUMMARY");
  // The rest: whole turns, in order, ending with the last one; nothing twice.
  std::vector<std::string> rest = StoredHistory("sum");
  rest.erase(rest.begin());
  ASSERT_GE(rest.size(), 2u);
  EXPECT_EQ(rest.size() % 2, 0u);
  EXPECT_EQ(rest.back(), "5 assistant:reply 5");
  for (size_t i = 2; i < rest.size(); i += 2) EXPECT_LT(rest[i - 2], rest[i]);
  EXPECT_GE(ReadContextMetrics(*services_).summaries, 1u);
  EXPECT_EQ(s->record->turn_count, 5);
  // The next request carries the summary as its oldest history.
  ASSERT_EQ(Turn("sum", "6 more")->status(), 200);
  const Json* next = nullptr;
  for (const Json& b : upstream_.bodies) {
    if (b["model"] == "demo") next = &b;  // the last conversation call (not a summary call)
  }
  ASSERT_NE(next, nullptr);
  EXPECT_EQ((*next)["messages"][0]["content"], "Summary of the earlier conversation: SUMMARY");
  EXPECT_EQ((*next)["messages"].back()["content"], "6 more");
}

TEST(ContextConfigTest, SectionIsReadStrictlyWithPaths) {
  Registry registry;
  ASSERT_TRUE(RegisterContextComponent(&registry).ok());
  auto load = [&](std::string_view section) {
    ConfigStore store({.registry = &registry});
    return store.Load(absl::StrFormat(R"({"context": %s})", section));
  };
  EXPECT_TRUE(load(R"({"store": {"type": "memory", "ttl_s": 60}})").ok());
  EXPECT_THAT(load(R"({"stor": {}})").message(), HasSubstr("context.stor: unknown field"));
  EXPECT_TRUE(load(R"({"store": {"type": "redis", "url": "redis://127.0.0.1:1/0"}})").ok());
  EXPECT_THAT(load(R"({"store": {"type": "redis"}})").message(),
              HasSubstr("context.store.url: is required"));
  EXPECT_THAT(load(R"({"store": {"type": "redis", "url": "http://x"}})").message(),
              HasSubstr("context.store.url: must be redis://"));
  EXPECT_THAT(load(R"({"store": {"type": "redis", "url": "redis://h:1", "key_prefix": "a{"}})")
                  .message(),
              HasSubstr("context.store.key_prefix: must not contain"));
  EXPECT_THAT(load(R"({"store": {"type": "redis", "url": "redis://h:1", "max_bytes": 5}})")
                  .message(),
              HasSubstr("context.store.max_bytes: unknown field"));
  EXPECT_THAT(load(R"({"store": {"type": "memcached"}})").message(),
              HasSubstr("context.store.type: unknown store type \"memcached\""));
  EXPECT_THAT(load(R"({"concurrency": {"mode": "later"}})").message(),
              HasSubstr("context.concurrency.mode: must be \"queue\" or \"reject\""));
  EXPECT_THAT(load(R"({"concurrency": {"mode": "reject", "max_queue": 3}})").message(),
              HasSubstr("context.concurrency.max_queue: applies to mode \"queue\" only"));
  EXPECT_THAT(load(R"({"failure_mode": "maybe"})").message(),
              HasSubstr("context.failure_mode: must be \"open\" or \"closed\""));
  EXPECT_THAT(load(R"({"max_session_id_bytes": 1000})").message(),
              HasSubstr("context.max_session_id_bytes: must be <= 256"));
  EXPECT_THAT(load(R"({"guardrails": [{"match": {"a": "b"}}]})").message(),
              HasSubstr("context.guardrails[0]: needs \"system_prompt\" or \"disclaimer\""));
  EXPECT_THAT(load(R"({"summarizer": {"trigger": {}}})").message(),
              HasSubstr("context.summarizer.model: is required"));
  EXPECT_THAT(load(R"({"summarizer": {"model": "m", "trigger": {"min_dropped": 0}}})").message(),
              HasSubstr("context.summarizer.trigger.min_dropped: must be >= 1"));
  EXPECT_THAT(load(R"({"session_header": "bad header"})").message(),
              HasSubstr("context.session_header"));
  EXPECT_TRUE(load(R"({"session_header_aliases": []})").ok());
  EXPECT_THAT(load(R"({"session_header_aliases": "X-Claude-Code-Session-Id"})").message(),
              HasSubstr("context.session_header_aliases: must be an array"));
  EXPECT_THAT(load(R"({"session_header_aliases": ["X-A", 3]})").message(),
              HasSubstr("context.session_header_aliases[1]: must be a string"));
  EXPECT_THAT(load(R"({"session_header_aliases": ["bad header"]})").message(),
              HasSubstr("context.session_header_aliases[0]: invalid header name"));
  EXPECT_THAT(load(R"({"session_header_aliases": ["x-session-id"]})").message(),
              HasSubstr("context.session_header_aliases[0]: repeats session_header"));
  EXPECT_THAT(load(R"({"session_header_aliases": ["X-A", "x-a"]})").message(),
              HasSubstr("context.session_header_aliases[1]: repeats"));
  EXPECT_THAT(load(R"({"session_header_aliases": ["X-Session-Metadata"]})").message(),
              HasSubstr("context.session_header_aliases[0]: must differ from metadata_header"));
}

// Every Redis option is checked when the configuration loads (not when a loop first makes
// the store), each error naming the field's path.
TEST(ContextConfigTest, RedisOptionsAreValidatedAtLoadWithPaths) {
  Registry registry;
  ASSERT_TRUE(RegisterContextComponent(&registry).ok());
  auto load = [&](std::string_view store_keys) {
    ConfigStore store({.registry = &registry});
    return store.Load(absl::StrFormat(R"({"context": {"store": {"type": "redis", %s}}})",
                                      store_keys));
  };
  EXPECT_TRUE(load(R"("url": "redis://:pw@127.0.0.1:6380/3", "key_prefix": "t:")").ok());
  EXPECT_TRUE(load(R"("url": "unix:///run/redis.sock")").ok());
  EXPECT_TRUE(load(R"("url": "redis://10.0.0.1:7000", "cluster": true,
                      "cluster_seed_nodes": ["10.0.0.2:7000", "[::1]:7001"])")
                  .ok());
  struct Case {
    const char* keys;
    const char* error;
  };
  const Case cases[] = {
      {R"("url": "redis://")", "context.store.url: missing host"},
      {R"("url": "redis://h:0")", "context.store.url: port must be 1..65535, got '0'"},
      {R"("url": "redis://h:99999")", "context.store.url: port must be 1..65535"},
      {R"("url": "redis://h:6379/x")", "context.store.url: database must be a number"},
      {R"("url": "unix://relative.sock")", "context.store.url: unix:// needs an absolute path"},
      {R"("url": "rediss://h:6380")", "context.store.url: rediss:// (TLS) is not supported"},
      {R"("url": 5)", "context.store.url"},
      {R"("url": "redis://h:1/2", "cluster": true)",
       "context.store.url: a cluster has only database 0"},
      {R"("url": "redis://h:1", "cluster": true, "cluster_seed_nodes": ["h:1", "h:x"])",
       "context.store.cluster_seed_nodes[1]: port must be 1..65535"},
      {R"("url": "redis://h:1", "cluster_seed_nodes": ["h:2"])",
       "context.store.cluster_seed_nodes: set without cluster"},
      {R"("url": "redis://h:1", "key_prefix": "t}")", "context.store.key_prefix: must not contain"},
      {R"("url": "redis://h:1", "connect_timeout_ms": 0)", "context.store.connect_timeout_ms"},
      {R"("url": "redis://h:1", "operation_timeout_ms": -5)",
       "context.store.operation_timeout_ms"},
      {R"("url": "redis://h:1", "reconnect_backoff_min_ms": 0)",
       "context.store.reconnect_backoff_min_ms"},
      {R"("url": "redis://h:1", "reconnect_backoff_min_ms": 50, "reconnect_backoff_max_ms": 10)",
       "context.store.reconnect_backoff_max_ms: must be >= reconnect_backoff_min_ms"},
      {R"("url": "redis://h:1", "max_pipelined": 0)", "context.store.max_pipelined"},
      {R"("url": "redis://h:1", "max_record_bytes": 10)", "context.store.max_record_bytes"},
      {R"("url": "redis://h:1", "ttl_s": -1)", "context.store.ttl_s"},
      {R"("url": "redis://h:1", "timeout_ms": 5)", "context.store.timeout_ms: unknown field"},
      {R"("url": "redis://h:1", "cluster": "yes")", "context.store.cluster: must be a boolean"},
  };
  for (const Case& c : cases) {
    absl::Status st = load(c.keys);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.keys;
    EXPECT_THAT(st.message(), HasSubstr(c.error)) << c.keys;
  }
}

TEST(ContextConfigTest, ContextFilterTakesNoConfigOfItsOwn) {
  Registry registry;
  ASSERT_TRUE(RegisterContextComponent(&registry).ok());
  ConfigStore store({.registry = &registry});
  absl::Status st = store.Load(R"({"filters": [{"type": "context", "config": {"ttl": 1}}]})");
  EXPECT_THAT(st.message(), HasSubstr("filters[0].config.ttl: unknown field"));
}

TEST(ContextConfigTest, ContextRoutingPolicyErrorsNameTheRule) {
  Registry registry;
  ASSERT_TRUE(RegisterContextComponent(&registry).ok());
  ConfigStore store({.registry = &registry});
  absl::Status st = store.Load(R"({
      "providers": {"up": {"type": "openai", "base_url": "http://x/v1"}},
      "models": {"demo": {"provider": "up"}},
      "routes": [{"match": {"model": "a"}, "policy": "context",
                  "rules": [{"when": {"d": "m"}, "target": "nope"}]}]})");
  EXPECT_THAT(st.message(), HasSubstr("routes[0].rules[0].target"));
}

TEST(ContextConfigTest, RegisteringTwiceIsAnError) {
  Registry registry;
  ASSERT_TRUE(RegisterContextComponent(&registry).ok());
  EXPECT_EQ(RegisterContextComponent(&registry).code(), absl::StatusCode::kAlreadyExists);
}

}  // namespace
}  // namespace modeenvoy
