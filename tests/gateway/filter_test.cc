// tests/gateway/filter_test.cc: FilterChain, FilterRegistry and the built-in filters.
#include "modeenvoy/gateway/filter.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/protocol/error.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Records what happens to it and acts as scripted.
struct Script {
  std::vector<std::string>* log = nullptr;
  std::string name;
  enum class Action { kContinue, kReply, kPause } action = Action::kContinue;
  // For kPause: receives the callbacks so the test can resume later.
  FilterCallbacks** callbacks_out = nullptr;
};

class ScriptedFilter : public Filter {
 public:
  explicit ScriptedFilter(Script s) : s_(std::move(s)) {}

  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override {
    s_.log->push_back(s_.name + ".request");
    ctx.metadata[s_.name] = "seen";
    switch (s_.action) {
      case Script::Action::kContinue:
        return FilterResult::Continue();
      case Script::Action::kReply:
        return FilterResult::Reply(LocalReply{429, {}, "slow down"});
      case Script::Action::kPause:
        *s_.callbacks_out = &callbacks;
        return FilterResult::Pause();
    }
    return FilterResult::Continue();
  }
  FilterStatus OnResponseHeaders(RequestContext&, ResponseHead& head,
                                 FilterCallbacks&) override {
    s_.log->push_back(s_.name + ".headers");
    head.headers.emplace_back("x-" + s_.name, "1");
    return FilterStatus::kContinue;
  }
  FilterStatus OnResponseBody(RequestContext&, ResponseHead&, std::string& body,
                              FilterCallbacks&) override {
    s_.log->push_back(s_.name + ".body");
    body += "|" + s_.name;
    return FilterStatus::kContinue;
  }
  void OnDestroy() override { s_.log->push_back(s_.name + ".destroy"); }

 private:
  Script s_;
};

class FilterChainTest : public ::testing::Test {
 protected:
  std::unique_ptr<FilterChain> MakeChain(std::vector<Script> scripts) {
    std::vector<std::unique_ptr<Filter>> filters;
    for (auto& s : scripts) {
      s.log = &log_;
      filters.push_back(std::make_unique<ScriptedFilter>(std::move(s)));
    }
    return std::make_unique<FilterChain>(std::move(filters), &ctx_, loop_.get());
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  RequestContext ctx_;
  std::vector<std::string> log_;
};

TEST_F(FilterChainTest, AllFiltersContinueAndDoneRunsInline) {
  auto chain = MakeChain({{.name = "a"}, {.name = "b"}});
  bool done = false;
  std::optional<LocalReply> result;
  chain->RunRequest([&](std::optional<LocalReply> r) {
    done = true;
    result = std::move(r);
  });
  EXPECT_TRUE(done);
  EXPECT_FALSE(result.has_value());
  EXPECT_THAT(log_, ElementsAre("a.request", "b.request"));
  EXPECT_EQ(ctx_.metadata["a"], "seen");
  EXPECT_EQ(ctx_.metadata["b"], "seen");
}

TEST_F(FilterChainTest, LocalReplyStopsTheChainAndSkipsLaterFiltersInResponsePhase) {
  auto chain = MakeChain({{.name = "a"}, {.name = "b", .action = Script::Action::kReply},
                          {.name = "c"}});
  std::optional<LocalReply> result;
  chain->RunRequest([&](std::optional<LocalReply> r) { result = std::move(r); });
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status, 429);

  ResponseHead head{result->status, {}, false};
  std::string body = result->body;
  chain->RunResponseHeaders(head, [] {});
  chain->RunResponseBody(head, body, [] {});
  // Only "a" continued, so only "a" sees the response; "c" never ran.
  EXPECT_THAT(log_, ElementsAre("a.request", "b.request", "a.headers", "a.body"));
  EXPECT_EQ(body, "slow down|a");
}

TEST_F(FilterChainTest, ResponsePhaseRunsInReverseOrder) {
  auto chain = MakeChain({{.name = "a"}, {.name = "b"}});
  chain->RunRequest([](std::optional<LocalReply>) {});
  log_.clear();
  ResponseHead head;
  std::string body = "x";
  chain->RunResponseHeaders(head, [] {});
  chain->RunResponseBody(head, body, [] {});
  EXPECT_THAT(log_, ElementsAre("b.headers", "a.headers", "b.body", "a.body"));
  EXPECT_EQ(body, "x|b|a");
  EXPECT_THAT(head.headers, ElementsAre(Pair("x-b", "1"), Pair("x-a", "1")));
}

TEST_F(FilterChainTest, PausedFilterResumesOnALaterIterationWithTheNextFilter) {
  FilterCallbacks* callbacks = nullptr;
  auto chain = MakeChain(
      {{.name = "a", .action = Script::Action::kPause, .callbacks_out = &callbacks},
       {.name = "b"}});
  bool done = false;
  chain->RunRequest([&](std::optional<LocalReply> r) {
    EXPECT_FALSE(r.has_value());
    done = true;
  });
  EXPECT_FALSE(done);
  EXPECT_TRUE(chain->paused());
  ASSERT_NE(callbacks, nullptr);
  // The "asynchronous lookup" completes later, on the loop.
  loop_->Post([&] { callbacks->Continue(); });
  loop_->RunOnce(absl::ZeroDuration());
  EXPECT_FALSE(done);  // Continue() never resumes inline
  EXPECT_TRUE(loop_->RunUntil([&] { return done; }, kTestWait));
  EXPECT_THAT(log_, ElementsAre("a.request", "b.request"));
}

TEST_F(FilterChainTest, PausedFilterMayAnswerWithALocalReply) {
  FilterCallbacks* callbacks = nullptr;
  auto chain = MakeChain(
      {{.name = "a", .action = Script::Action::kPause, .callbacks_out = &callbacks},
       {.name = "b"}});
  std::optional<LocalReply> result;
  bool done = false;
  chain->RunRequest([&](std::optional<LocalReply> r) {
    result = std::move(r);
    done = true;
  });
  callbacks->SendLocalReply(LocalReply{401, {}, "no"});
  callbacks->Continue();  // a second resolution of the same pause is ignored
  EXPECT_TRUE(loop_->RunUntil([&] { return done; }, kTestWait));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status, 401);
  EXPECT_THAT(log_, ElementsAre("a.request"));
}

TEST_F(FilterChainTest, DestroyWhilePausedCallsOnDestroyAndNeverCompletes) {
  FilterCallbacks* callbacks = nullptr;
  auto chain = MakeChain(
      {{.name = "a", .action = Script::Action::kPause, .callbacks_out = &callbacks},
       {.name = "b"}});
  bool done = false;
  chain->RunRequest([&](std::optional<LocalReply>) { done = true; });
  callbacks->Continue();  // resume already scheduled when the client leaves
  chain.reset();
  EXPECT_THAT(log_, ElementsAre("a.request", "a.destroy", "b.destroy"));
  for (int i = 0; i < 5; ++i) loop_->RunOnce(absl::ZeroDuration());
  EXPECT_FALSE(done);
}

TEST_F(FilterChainTest, ChainMayBeDestroyedFromInsideDone) {
  FilterCallbacks* callbacks = nullptr;
  auto chain = MakeChain(
      {{.name = "a", .action = Script::Action::kPause, .callbacks_out = &callbacks}});
  bool done = false;
  chain->RunRequest([&](std::optional<LocalReply>) {
    chain.reset();
    done = true;
  });
  callbacks->Continue();
  EXPECT_TRUE(loop_->RunUntil([&] { return done; }, kTestWait));
  EXPECT_THAT(log_, ElementsAre("a.request", "a.destroy"));
}

// Upper-cases every event's data, drops "drop-me" and appends a marker before [DONE].
class EventRewriter : public Filter {
 public:
  FilterStatus OnResponseEvents(RequestContext&, std::vector<SseEvent>& events,
                                FilterCallbacks&) override {
    std::vector<SseEvent> out;
    for (SseEvent& e : events) {
      if (e.data == "drop-me") continue;
      if (e.data == kSseDoneData) out.push_back(SseEvent{.data = "appended"});
      for (char& c : e.data) c = static_cast<char>(std::toupper(c));
      out.push_back(std::move(e));
    }
    events = std::move(out);
    return FilterStatus::kContinue;
  }
};

class Duplicator : public Filter {
 public:
  FilterStatus OnResponseEvents(RequestContext&, std::vector<SseEvent>& events,
                                FilterCallbacks&) override {
    std::vector<SseEvent> copy = events;
    events.insert(events.end(), copy.begin(), copy.end());
    return FilterStatus::kContinue;
  }
};

TEST_F(FilterChainTest, ResponseEventsCanBeModifiedDroppedAndAppended) {
  std::vector<std::unique_ptr<Filter>> filters;
  filters.push_back(std::make_unique<EventRewriter>());  // runs second (reverse order)
  filters.push_back(std::make_unique<Duplicator>());     // runs first
  FilterChain chain(std::move(filters), &ctx_, loop_.get());
  chain.RunRequest([](std::optional<LocalReply>) {});

  std::vector<SseEvent> events{SseEvent{.data = "hello"}};
  chain.RunResponseEvents(events, [] {});
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "HELLO");
  EXPECT_EQ(events[1].data, "HELLO");

  events = {SseEvent{.data = "drop-me"}};
  chain.RunResponseEvents(events, [] {});
  EXPECT_TRUE(events.empty());

  events = {SseEvent{.data = std::string(kSseDoneData)}};
  chain.RunResponseEvents(events, [] {});
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].data, "appended");
  EXPECT_EQ(events[1].data, "[DONE]");
}

TEST(HeaderMutationTest, SetAddRemoveAreCaseInsensitive) {
  HttpHeaders h{{"X-A", "1"}, {"x-b", "2"}, {"x-a", "3"}};
  ApplyHeaderMutation({HeaderMutation::Op::kSet, "x-a", "9"}, &h);
  EXPECT_THAT(h, ElementsAre(Pair("x-a", "9"), Pair("x-b", "2")));
  ApplyHeaderMutation({HeaderMutation::Op::kAdd, "X-B", "4"}, &h);
  EXPECT_THAT(h, ElementsAre(Pair("x-a", "9"), Pair("x-b", "2"), Pair("X-B", "4")));
  ApplyHeaderMutation({HeaderMutation::Op::kRemove, "x-B", ""}, &h);
  EXPECT_THAT(h, ElementsAre(Pair("x-a", "9")));
  ApplyHeaderMutation({HeaderMutation::Op::kSet, "x-new", "v"}, &h);
  EXPECT_THAT(h, ElementsAre(Pair("x-a", "9"), Pair("x-new", "v")));
}

TEST(LocalReplyForErrorTest, UsesOpenAiErrorBodyAndStatus) {
  LocalReply r = LocalReplyForError(InvalidFieldError("messages", "must not be empty"));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.headers, ElementsAre(Pair("content-type", "application/json")));
  EXPECT_THAT(r.body, HasSubstr("\"param\":\"messages\""));
}

// ---------------------------------------------------------------------------------------

class Marker : public Filter {
 public:
  explicit Marker(std::string value) : value_(std::move(value)) {}
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks&) override {
    ctx.metadata["marker"] = value_;
    return FilterResult::Continue();
  }

 private:
  std::string value_;
};

TEST(FilterRegistryTest, UserTypesPlugInWithoutChangingTheChain) {
  Registry full;
  FilterRegistry& registry = full.filters();
  EXPECT_TRUE(registry.Contains("api_key_auth"));
  EXPECT_TRUE(registry.Contains("headers"));
  ASSERT_TRUE(registry
                  .Register("marker",
                            [](std::string_view config, const FilterBuildContext& ctx)
                                -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                              if (config != "{\"value\":\"v1\"}") {
                                return InvalidFieldError("value", "unexpected");
                              }
                              return MakeFilterFactory(Marker(std::string(ctx.name)));
                            })
                  .ok());
  EXPECT_EQ(registry.Register("marker", nullptr).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry
                .Register("headers",
                          [](std::string_view, const FilterBuildContext&)
                              -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                            return nullptr;
                          })
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(registry.types(), ElementsAre("api_key_auth", "headers", "marker"));

  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> snap = LoadConfig(
      R"({"filters": [{"type": "marker", "name": "m1", "config": {"value": "v1"}}]})",
      {.registry = &full});
  ASSERT_TRUE(snap.ok()) << snap.status();
  std::vector<std::unique_ptr<Filter>> filters = (*snap)->CreateFilters();
  ASSERT_EQ(filters.size(), 1u);
  RequestContext ctx;
  auto loop = NewPollEventLoop();
  FilterChain chain(std::move(filters), &ctx, loop.get());
  chain.RunRequest([](std::optional<LocalReply>) {});
  EXPECT_EQ(ctx.metadata["marker"], "m1");

  absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> bad = LoadConfig(
      R"({"filters": [{"type": "marker", "config": {"value": "v2"}}]})",
      {.registry = &full});
  EXPECT_EQ(bad.status().message(), "filters[0].config.value: unexpected");
  EXPECT_EQ(ErrorParam(bad.status()), "filters[0].config.value");
}

TEST(FilterRegistryTest, UnknownTypeIsNotFound) {
  FilterRegistry registry(/*with_builtins=*/false);
  EXPECT_FALSE(registry.Contains("headers"));
  absl::StatusOr<std::unique_ptr<FilterFactory>> f =
      registry.Build("{}", {.type = "headers", .name = "h"});
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------------------
// Built-in filters, built through the config loader as users would.

class BuiltinFilterTest : public ::testing::Test {
 protected:
  // Runs the request phase of a one-filter chain configured with `filter_json`.
  std::optional<LocalReply> Run(const std::string& filter_json, HttpHeaders headers,
                                std::string model = "gpt") {
    absl::StatusOr<std::shared_ptr<const ConfigSnapshot>> snap = LoadConfig(
        R"({"filters": [)" + filter_json + "]}",
        {.env_lookup = [](std::string_view name) -> std::optional<std::string> {
          if (name == "TEAM_KEY") return "sk-from-env-0001";
          return std::nullopt;
        }});
    EXPECT_TRUE(snap.ok()) << snap.status();
    if (!snap.ok()) return LocalReply{-1, {}, ""};
    snapshot_ = *snap;
    chat_.model = std::move(model);
    ctx_ = RequestContext{};
    ctx_.request.headers = std::move(headers);
    ctx_.chat = &chat_;
    ctx_.snapshot = snapshot_.get();
    chain_ = std::make_unique<FilterChain>(snapshot_->CreateFilters(), &ctx_, loop_.get());
    std::optional<LocalReply> result;
    bool done = false;
    chain_->RunRequest([&](std::optional<LocalReply> r) {
      result = std::move(r);
      done = true;
    });
    EXPECT_TRUE(done);  // built-ins never pause
    return result;
  }

  static constexpr char kAuth[] = R"({"type": "api_key_auth", "config": {"keys": [
      {"name": "admin", "key": "sk-admin-0000000001"},
      {"name": "team", "key_env": "TEAM_KEY", "models": ["gpt"], "tier": "free"}]}})";

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::shared_ptr<const ConfigSnapshot> snapshot_;
  ChatRequest chat_;
  RequestContext ctx_;
  std::unique_ptr<FilterChain> chain_;
};

TEST_F(BuiltinFilterTest, ApiKeyAuthAcceptsBearerToken) {
  EXPECT_FALSE(Run(kAuth, {{"Authorization", "Bearer sk-admin-0000000001"}}).has_value());
  EXPECT_EQ(ctx_.metadata["api_key.name"], "admin");
  EXPECT_FALSE(ctx_.metadata.contains("api_key.tier"));  // the key has no tier
}

TEST_F(BuiltinFilterTest, ApiKeyAuthAcceptsXApiKeyAndKeyFromInjectedEnv) {
  EXPECT_FALSE(Run(kAuth, {{"x-api-key", "sk-from-env-0001"}}).has_value());
  EXPECT_EQ(ctx_.metadata["api_key.name"], "team");
  EXPECT_EQ(ctx_.metadata["api_key.tier"], "free");
}

TEST_F(BuiltinFilterTest, ApiKeyAuthRejectsMissingKeyWith401) {
  std::optional<LocalReply> r = Run(kAuth, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  EXPECT_THAT(r->body, HasSubstr("\"code\":\"invalid_api_key\""));
  EXPECT_THAT(r->body, HasSubstr("You didn't provide an API key"));
}

TEST_F(BuiltinFilterTest, ApiKeyAuthRejectsWrongKeyWith401AndMasksIt) {
  std::optional<LocalReply> r = Run(kAuth, {{"authorization", "Bearer sk-wrong-123456789"}});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 401);
  EXPECT_THAT(r->body, HasSubstr("Incorrect API key provided: sk-***6789."));
  EXPECT_THAT(r->body, ::testing::Not(HasSubstr("sk-wrong-123456789")));
}

TEST_F(BuiltinFilterTest, ApiKeyAuthRejectsScopedKeyForOtherModelWith403) {
  std::optional<LocalReply> r = Run(kAuth, {{"x-api-key", "sk-from-env-0001"}}, "other");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 403);
  EXPECT_THAT(r->body, HasSubstr("\"code\":\"model_not_allowed\""));
  EXPECT_THAT(r->body, HasSubstr("not allowed to use model \\\"other\\\""));
}

TEST_F(BuiltinFilterTest, ApiKeyAuthConfigErrorsNameTheirPath) {
  auto load = [](const std::string& config) {
    return std::string(
        LoadConfig(R"({"filters": [{"type": "api_key_auth", "config": )" + config + "}]}",
                   {.env_lookup = [](std::string_view) { return std::nullopt; }})
            .status()
            .message());
  };
  EXPECT_EQ(load("{}"), "filters[0].config.keys: is required");
  EXPECT_EQ(load(R"({"keys": []})"), "filters[0].config.keys: must not be empty");
  EXPECT_EQ(load(R"({"keys": [{"name": "x"}]})"),
            "filters[0].config.keys[0]: exactly one of \"key\" or \"key_env\" is required");
  EXPECT_EQ(load(R"({"keys": [{"key_env": "NOPE"}]})"),
            "filters[0].config.keys[0].key_env: environment variable \"NOPE\" is not set");
  EXPECT_EQ(load(R"({"keys": [{"key": "a", "models": [1]}]})"),
            "filters[0].config.keys[0].models[0]: must be a string");
  EXPECT_EQ(load(R"({"keys": [{"key": "a", "tier": 3}]})"),
            "filters[0].config.keys[0].tier: must be a string");
  EXPECT_EQ(load(R"({"keys": [{"key": "a"}, {"key": "a"}]})"),
            "filters[0].config.keys[1]: duplicate key");
  EXPECT_EQ(load(R"({"keys": [{"key": "a", "scope": 1}]})"),
            "filters[0].config.keys[0].scope: unknown field");
}

TEST_F(BuiltinFilterTest, HeadersFilterEditsUpstreamAndResponseHeaders) {
  constexpr char kHeaders[] = R"({"type": "headers", "config": {
      "request": {"remove": ["x-debug"], "set": {"x-team": "a"}, "add": {"x-tag": "t"}},
      "response": {"set": {"x-served-by": "modeenvoy"}, "remove": ["server"]}}})";
  EXPECT_FALSE(Run(kHeaders, {}).has_value());
  ASSERT_EQ(ctx_.upstream_header_mutations.size(), 3u);
  HttpHeaders upstream{{"x-debug", "1"}, {"x-team", "old"}};
  for (const HeaderMutation& m : ctx_.upstream_header_mutations) ApplyHeaderMutation(m, &upstream);
  EXPECT_THAT(upstream, ElementsAre(Pair("x-team", "a"), Pair("x-tag", "t")));

  ResponseHead head{200, {{"server", "up"}, {"content-type", "application/json"}}, false};
  chain_->RunResponseHeaders(head, [] {});
  EXPECT_THAT(head.headers, ElementsAre(Pair("content-type", "application/json"),
                                        Pair("x-served-by", "modeenvoy")));
}

TEST_F(BuiltinFilterTest, HeadersFilterConfigErrorsNameTheirPath) {
  auto load = [](const std::string& config) {
    return std::string(
        LoadConfig(R"({"filters": [{"type": "headers", "config": )" + config + "}]}")
            .status()
            .message());
  };
  EXPECT_EQ(load(R"({"request": {"set": {"bad name": "v"}}})"),
            "filters[0].config.request.set[\"bad name\"]: invalid header name");
  EXPECT_EQ(load(R"({"response": {"set": {"content-length": "1"}}})"),
            "filters[0].config.response.set.content-length: cannot be modified");
  EXPECT_EQ(load(R"({"request": {"add": {"x": "a\nb"}}})"),
            "filters[0].config.request.add.x: header value must not contain CR, LF or NUL");
  EXPECT_EQ(load(R"({"request": {"rename": {}}})"),
            "filters[0].config.request.rename: unknown field");
}

}  // namespace
}  // namespace modeenvoy
