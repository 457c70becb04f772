// tests/gateway/stream_usage_test.cc: usage in streamed responses, whatever the provider
// does: the client's stream has exactly one usage chunk before [DONE] when it asked
// (stream_options.include_usage) and none when it did not; OnResponseComplete always gets
// the usage, estimated (and marked so) when the upstream stream ended without one.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/filter_hooks.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/gateway/usage.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"
#include "lib/gateway/stream_usage.h"
#include "tests/gateway/chat_test_util.h"
#include "tests/gateway/recording_sink.h"
#include "tests/gateway/test_http_server.h"

namespace modeenvoy {
namespace {

using gateway_testing::kTestWait;
using gateway_testing::Post;
using gateway_testing::RecordingSink;
using gateway_testing::TestConnection;
using gateway_testing::TestHttpServer;
using Json = nlohmann::json;

std::string Chunk(std::string_view content, std::string_view usage = "") {
  return absl::StrFormat(
      R"({"id":"c1","object":"chat.completion.chunk","created":7,"model":"m",)"
      R"("choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":null}]%s})",
      content, usage.empty() ? "" : absl::StrFormat(R"(,"usage":%s)", usage));
}
std::string UsageOnly(std::string_view usage) {
  return absl::StrFormat(
      R"({"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices":[],"usage":%s})",
      usage);
}
std::string Sse(std::string_view data) { return absl::StrFormat("data: %s\n\n", data); }
constexpr std::string_view kUsage = R"({"prompt_tokens":3,"completion_tokens":4,"total_tokens":7})";

// The client's request: streamed, asking for usage or not.
std::string Request(bool include_usage) {
  return absl::StrFormat(
      R"({"model":"demo","messages":[{"role":"user","content":"say hello world"}],"stream":true%s})",
      include_usage ? R"(,"stream_options":{"include_usage":true})" : "");
}

// Keeps the outcome OnResponseComplete saw.
struct Seen {
  std::optional<ResponseOutcome> outcome;
};
class OutcomeFilter : public Filter {
 public:
  explicit OutcomeFilter(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  FilterStatus OnResponseComplete(RequestContext&, const ResponseOutcome& outcome,
                                  FilterCallbacks&) override {
    seen_->outcome = outcome;
    return FilterStatus::kContinue;
  }

 private:
  std::shared_ptr<Seen> seen_;
};
class OutcomeFactory : public FilterFactory {
 public:
  explicit OutcomeFactory(std::shared_ptr<Seen> seen) : seen_(std::move(seen)) {}
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<OutcomeFilter>(seen_);
  }

 private:
  std::shared_ptr<Seen> seen_;
};

// Declares its headers hook only, and counts the calls of every response hook.
struct HookCalls {
  int headers = 0;
  int events = 0;
  int complete = 0;
};
class HeadersOnlyFilter : public Filter, public DeclaresResponseHooks {
 public:
  explicit HeadersOnlyFilter(std::shared_ptr<HookCalls> calls) : calls_(std::move(calls)) {}
  FilterStatus OnResponseHeaders(RequestContext&, ResponseHead& head, FilterCallbacks&) override {
    ++calls_->headers;
    head.headers.emplace_back("x-only", "1");
    return FilterStatus::kContinue;
  }
  FilterStatus OnResponseEvents(RequestContext&, std::vector<SseEvent>&,
                                FilterCallbacks&) override {
    ++calls_->events;
    return FilterStatus::kContinue;
  }
  FilterStatus OnResponseComplete(RequestContext&, const ResponseOutcome&,
                                  FilterCallbacks&) override {
    ++calls_->complete;
    return FilterStatus::kContinue;
  }
  uint32_t response_hooks() const override { return kResponseHeadersHook; }

 private:
  std::shared_ptr<HookCalls> calls_;
};

// Counts characters, to see that the injected estimator is the one used.
class CharCount : public UsageEstimator {
 public:
  std::string_view method() const override { return "chars"; }
  int64_t PromptTokens(const ChatRequest& chat, std::string_view model) const override {
    EXPECT_EQ(model, "upstream-demo");
    return static_cast<int64_t>(std::get<std::string>(*chat.messages[0].content).size());
  }
  int64_t CompletionTokens(std::string_view text, std::string_view) const override {
    return static_cast<int64_t>(text.size());
  }
};

// A provider type whose stream translator passes frames as they come (usage wherever the
// server put it, possibly several times): the engine's own stripping is what remains.
class RawSseDialect : public ProviderDialect {
 public:
  explicit RawSseDialect(std::string url) : url_(std::move(url)) {}
  absl::Status BuildRequest(const ChatRequest& chat, const ProviderCall&,
                            UpstreamRequest* out) const override {
    out->url = url_ + "/chat/completions";
    out->headers.emplace_back("content-type", "application/json");
    out->body = SerializeChatRequest(chat);
    return absl::OkStatus();
  }
  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status TranslateResponse(std::string*) const override { return absl::OkStatus(); }
  std::unique_ptr<StreamTranslator> NewStreamTranslator() const override {
    class Raw : public StreamTranslator {
      absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
        out->push_back(SseEvent{.event = std::move(frame.event), .data = std::move(frame.data)});
        return absl::OkStatus();
      }
      absl::Status Finish(std::vector<SseEvent>*) override { return absl::OkStatus(); }
    };
    return std::make_unique<Raw>();
  }

 private:
  std::string url_;
};

class StreamUsageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<UpstreamClient>> client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
    ASSERT_TRUE(registry_.filters()
                    .Register("outcome",
                              [this](std::string_view, const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                                return std::make_unique<OutcomeFactory>(seen_);
                              })
                    .ok());
    ASSERT_TRUE(registry_.filters()
                    .Register("headers_only",
                              [this](std::string_view, const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
                                return MakeFilterFactory(HeadersOnlyFilter(hook_calls_));
                              })
                    .ok());
    ASSERT_TRUE(registry_.providers()
                    .Register("raw_sse",
                              [](const ProviderConfig& common, std::string_view,
                                 const BuildContext&)
                                  -> absl::StatusOr<std::unique_ptr<ProviderDialect>> {
                                return std::make_unique<RawSseDialect>(common.base_url);
                              })
                    .ok());
  }

  // Serves one request against a provider of `type` at `server`, with the outcome filter.
  RecordingSink Serve(const TestHttpServer& server, std::string body,
                      std::shared_ptr<const UsageEstimator> estimator = nullptr,
                      std::string_view options = "", std::string_view type = "openai") {
    store_ = std::make_unique<ConfigStore>(ConfigLoadOptions{.registry = &registry_});
    absl::Status s = store_->Load(absl::StrFormat(
        R"({"providers": {"up": {"type": "%s", "base_url": "%s"%s}},
            "models": {"demo": {"provider": "up", "upstream_model": "upstream-demo"}},
            "filters": [%s%s%s]})",
        type, server.Url("/v1"), options, with_outcome_filter_ ? R"({"type": "outcome"})" : "",
        with_outcome_filter_ && !extra_filters_.empty() ? ", " : "", extra_filters_));
    EXPECT_TRUE(s.ok()) << s;
    GatewayOptions gw_options;
    gw_options.config = store_.get();
    gw_options.loop = loop_.get();
    gw_options.upstream = client_.get();
    gw_options.usage_estimator = std::move(estimator);
    absl::StatusOr<std::unique_ptr<Gateway>> gw = NewGateway(std::move(gw_options));
    EXPECT_TRUE(gw.ok()) << gw.status();
    RecordingSink sink;
    std::unique_ptr<ActiveRequest> active = (*gw)->Handle(Post(std::move(body)), &sink);
    EXPECT_TRUE(loop_->RunUntil([&] { return sink.finished.has_value(); }, kTestWait));
    active.reset();
    return sink;
  }

  // Data payloads of the client's stream.
  static std::vector<std::string> Events(const std::string& body) {
    std::vector<std::string> out;
    for (std::string_view rest = body; !rest.empty();) {
      size_t end = rest.find("\n\n");
      std::string_view event = rest.substr(0, end);
      if (event.substr(0, 6) == "data: ") out.emplace_back(event.substr(6));
      if (end == std::string_view::npos) break;
      rest.remove_prefix(end + 2);
    }
    return out;
  }
  static int UsageChunks(const std::vector<std::string>& events) {
    int n = 0;
    for (const std::string& e : events) {
      if (e == "[DONE]") continue;
      Json j = Json::parse(e);
      if (j.contains("usage") && !j["usage"].is_null()) ++n;
    }
    return n;
  }

  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
  Registry registry_;
  std::shared_ptr<Seen> seen_ = std::make_shared<Seen>();
  std::unique_ptr<ConfigStore> store_;
  bool with_outcome_filter_ = true;  // Serve() configures the outcome filter
  std::string extra_filters_;        // more chain entries after it (JSON objects)
  std::shared_ptr<HookCalls> hook_calls_ = std::make_shared<HookCalls>();
};

// vLLM with continuous usage stats: usage on every chunk, then a usage-only chunk.
void UsageEverywhere(TestConnection& c) {
  c.StartChunked(200, {{"content-type", "text/event-stream"}});
  c.SendChunk(Sse(Chunk("hello", R"({"prompt_tokens":3,"completion_tokens":1,"total_tokens":4})")));
  c.SendChunk(Sse(Chunk(" world", kUsage)));
  c.SendChunk(Sse(UsageOnly(kUsage)));
  c.SendChunk("data: [DONE]\n\n");
  c.EndChunked();
}

TEST_F(StreamUsageTest, ClientThatDidNotAskGetsNoUsageButTheOutcomeHasIt) {
  TestHttpServer server(UsageEverywhere);
  RecordingSink sink = Serve(server, Request(false));
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.finished, true);
  std::vector<std::string> events = Events(sink.body);
  EXPECT_EQ(UsageChunks(events), 0) << sink.body;
  ASSERT_EQ(events.size(), 3u) << sink.body;
  EXPECT_EQ(events.back(), "[DONE]");
  // The provider was asked for usage all the same.
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(Json::parse(server.requests()[0].body)["stream_options"]["include_usage"], true);
  ASSERT_TRUE(seen_->outcome.has_value());
  ASSERT_TRUE(seen_->outcome->usage.has_value());
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, 4);
  EXPECT_FALSE(seen_->outcome->usage_estimated);
}

TEST_F(StreamUsageTest, AnyDialectsUsageIsTakenOutOfContentChunksAndGivenBackOnce) {
  TestHttpServer server(UsageEverywhere);
  for (bool asked : {false, true}) {
    RecordingSink sink = Serve(server, Request(asked), nullptr, "", "raw_sse");
    std::vector<std::string> events = Events(sink.body);
    ASSERT_EQ(events.size(), asked ? 4u : 3u) << sink.body;
    EXPECT_EQ(UsageChunks(events), asked ? 1 : 0) << sink.body;
    // The content chunks keep their text, without their usage.
    EXPECT_EQ(Json::parse(events[0])["choices"][0]["delta"]["content"], "hello");
    EXPECT_EQ(Json::parse(events[1])["choices"][0]["delta"]["content"], " world");
    if (asked) {
      EXPECT_EQ(Json::parse(events[2])["usage"], Json::parse(kUsage));
    }
    EXPECT_EQ(events.back(), "[DONE]");
    ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
    EXPECT_EQ(seen_->outcome->usage->total_tokens, 7);
  }
}

// Nobody reads the usage (no response filter, the client did not ask): the engine drops the
// usage-only chunks without reading them, and still strips usage from content chunks.
TEST_F(StreamUsageTest, WithoutAReaderUsageChunksAreDroppedAndContentChunksStripped) {
  with_outcome_filter_ = false;
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("hello", kUsage)));
    c.SendChunk(Sse(
        R"({"id":"c1","object":"chat.completion.chunk","created":7,"model":"m","choices": [ ] ,"usage": {"total_tokens":7}})"));
    c.SendChunk(Sse(Chunk(" world")));
    c.SendChunk(Sse(UsageOnly(kUsage)));
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
  });
  for (std::string_view type : {"raw_sse", "openai"}) {
    RecordingSink sink = Serve(server, Request(false), nullptr, "", type);
    EXPECT_EQ(sink.status, 200);
    std::vector<std::string> events = Events(sink.body);
    ASSERT_EQ(events.size(), 3u) << type << "\n" << sink.body;
    EXPECT_EQ(UsageChunks(events), 0) << sink.body;
    EXPECT_EQ(Json::parse(events[0])["choices"][0]["delta"]["content"], "hello");
    EXPECT_EQ(Json::parse(events[1])["choices"][0]["delta"]["content"], " world");
    EXPECT_EQ(events.back(), "[DONE]");
    EXPECT_FALSE(seen_->outcome.has_value());
  }
}

// Nobody reads the usage (no filter declares OnResponseComplete, the client did not ask):
// the provider is not asked for it, which saves its usage-only chunk. A client that asked
// still has its own stream_options sent.
TEST_F(StreamUsageTest, WithoutAUsageReaderTheProviderIsNotAskedForUsage) {
  with_outcome_filter_ = false;
  TestHttpServer server(UsageEverywhere);
  for (std::string_view filters : {"", R"({"type": "headers_only"})"}) {
    extra_filters_ = std::string(filters);
    RecordingSink sink = Serve(server, Request(false));
    EXPECT_EQ(sink.status, 200);
    ASSERT_FALSE(server.requests().empty());
    EXPECT_FALSE(Json::parse(server.requests().back().body).contains("stream_options"))
        << filters << "\n" << server.requests().back().body;
    EXPECT_EQ(UsageChunks(Events(sink.body)), 0) << sink.body;
  }
  RecordingSink sink = Serve(server, Request(true));
  EXPECT_EQ(Json::parse(server.requests().back().body)["stream_options"]["include_usage"], true);
  EXPECT_EQ(UsageChunks(Events(sink.body)), 1) << sink.body;
}

// An event whose data spans lines (several "data:" lines upstream, joined by '\n') goes to
// the client as several "data:" lines again, wherever the line break is; one-line events
// stay one line (AppendSseEvent's short path).
TEST_F(StreamUsageTest, MultiLineEventDataIsSentAsSeveralDataLines) {
  with_outcome_filter_ = false;
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk("data: ab\ndata: 0123456789abcdefghijklmnopqrstuvwxyz0123\n\n");  // in a block
    c.SendChunk("data: 0123456789abcdefghij\ndata: k\n\n");  // in the tail
    c.SendChunk("data: 0123456789abcdefghijklmnopqrstuvwxyz\n\n");
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
  });
  RecordingSink sink = Serve(server, Request(false), nullptr, "", "raw_sse");
  EXPECT_EQ(sink.status, 200);
  EXPECT_EQ(sink.body,
            "data: ab\ndata: 0123456789abcdefghijklmnopqrstuvwxyz0123\n\n"
            "data: 0123456789abcdefghij\ndata: k\n\n"
            "data: 0123456789abcdefghijklmnopqrstuvwxyz\n\n"
            "data: [DONE]\n\n");
}

TEST_F(StreamUsageTest, ClientThatAskedGetsExactlyOneUsageChunkRightBeforeDone) {
  TestHttpServer server(UsageEverywhere);
  RecordingSink sink = Serve(server, Request(true));
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 4u) << sink.body;
  EXPECT_EQ(UsageChunks(events), 1) << sink.body;
  EXPECT_EQ(Json::parse(events[2])["usage"], Json::parse(kUsage));
  EXPECT_TRUE(Json::parse(events[2])["choices"].empty());
  EXPECT_EQ(events[3], "[DONE]");
}

// A server that never reports usage (it ignores stream_options).
void NoUsage(TestConnection& c) {
  c.StartChunked(200, {{"content-type", "text/event-stream"}});
  c.SendChunk(Sse(Chunk("hello")));
  c.SendChunk(Sse(Chunk(" world")));
  c.SendChunk("data: [DONE]\n\n");
  c.EndChunked();
}

TEST_F(StreamUsageTest, StreamWithoutUsageGetsAnEstimateMarkedAsSuch) {
  TestHttpServer server(NoUsage);
  RecordingSink sink = Serve(server, Request(true), std::make_shared<CharCount>());
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 4u) << sink.body;
  Json usage = Json::parse(events[2])["usage"];
  EXPECT_EQ(usage["prompt_tokens"], std::string("say hello world").size());
  EXPECT_EQ(usage["completion_tokens"], std::string("hello world").size());
  EXPECT_EQ(usage["total_tokens"], 15 + 11);
  EXPECT_EQ(usage["estimated"], true);
  EXPECT_EQ(usage["estimation_method"], "chars");
  EXPECT_EQ(Json::parse(events[2])["id"], "c1");
  ASSERT_TRUE(seen_->outcome.has_value());
  ASSERT_TRUE(seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, 11);

  // A client that did not ask gets no usage; the outcome still has the estimate.
  seen_->outcome.reset();
  sink = Serve(server, Request(false), std::make_shared<CharCount>());
  EXPECT_EQ(UsageChunks(Events(sink.body)), 0);
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
}

TEST_F(StreamUsageTest, TheEstimateCountsDecodedTextReasoningAndToolCalls) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("ab")));
    // Escapes and a \u escape pair decode before counting (CharCount counts bytes).
    c.SendChunk(Sse(
        R"({"id":"c1","choices":[{"index":0,"delta":{"content":"h\u00e9 \"q\"\n\ud83d\ude00","reasoning_content":"rr"}}]})"));
    c.SendChunk(Sse(
        R"({"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]})"));
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
  });
  Serve(server, Request(false), std::make_shared<CharCount>());
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
  const std::string generated = std::string("ab") + "h\xc3\xa9 \"q\"\n\xf0\x9f\x98\x80" + "rr" +
                                "f " + "{\"a\":1}";
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, static_cast<int64_t>(generated.size()));
}

// The chunk right before [DONE] (where a translator that keeps the usage promise may put
// usage, so the engine reads it apart from the others) counts once in the estimate, also
// when both come in one read; and its own usage, when it has some, wins.
TEST_F(StreamUsageTest, TheChunkBeforeDoneCountsOnceForTheEstimate) {
  TestHttpServer no_usage([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("hello")));
    c.SendChunk(Sse(Chunk(" world")) + "data: [DONE]\n\n");
    c.EndChunked();
  });
  TestHttpServer usage_last([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("hello")));
    c.SendChunk(Sse(UsageOnly(kUsage)) + "data: [DONE]\n\n");
    c.EndChunked();
  });
  for (std::string_view type : {"openai", "raw_sse"}) {
    for (bool asked : {false, true}) {
      seen_->outcome.reset();
      RecordingSink sink =
          Serve(no_usage, Request(asked), std::make_shared<CharCount>(), "", type);
      std::vector<std::string> events = Events(sink.body);
      ASSERT_EQ(events.size(), asked ? 4u : 3u) << type << "\n" << sink.body;
      ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value()) << type;
      EXPECT_TRUE(seen_->outcome->usage_estimated);
      EXPECT_EQ(seen_->outcome->usage->completion_tokens, 11) << type;  // "hello world"
      if (asked) {
        EXPECT_EQ(Json::parse(events[2])["usage"]["completion_tokens"], 11) << type;
      }

      seen_->outcome.reset();
      sink = Serve(usage_last, Request(asked), std::make_shared<CharCount>(), "", type);
      events = Events(sink.body);
      ASSERT_EQ(events.size(), asked ? 3u : 2u) << type << "\n" << sink.body;
      EXPECT_EQ(UsageChunks(events), asked ? 1 : 0) << sink.body;
      ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value()) << type;
      EXPECT_FALSE(seen_->outcome->usage_estimated);
      EXPECT_EQ(seen_->outcome->usage->total_tokens, 7) << type;
    }
  }
}

TEST_F(StreamUsageTest, WithoutAnEstimatorWordsAreCountedAndSaidSo) {
  TestHttpServer server(NoUsage);
  RecordingSink sink = Serve(server, Request(true));
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 4u) << sink.body;
  Json usage = Json::parse(events[2])["usage"];
  EXPECT_EQ(usage["completion_tokens"], 2);  // "hello world"
  EXPECT_EQ(usage["estimation_method"], "word_count");
}

TEST_F(StreamUsageTest, StreamCutShortGetsAnEstimatedUsageForTheOutcome) {
  TestHttpServer server([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("hello")));
    c.Reset();
  });
  RecordingSink sink = Serve(server, Request(true), std::make_shared<CharCount>());
  EXPECT_EQ(sink.finished, true);  // ended by its error event
  std::vector<std::string> events = Events(sink.body);
  EXPECT_EQ(UsageChunks(events), 0) << sink.body;  // the client learns of the error instead
  ASSERT_FALSE(events.empty());
  EXPECT_TRUE(Json::parse(events.back()).contains("error")) << sink.body;
  ASSERT_TRUE(seen_->outcome.has_value());
  EXPECT_FALSE(seen_->outcome->error.ok());
  ASSERT_TRUE(seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, 5);  // "hello"
}

// A translator that keeps the usage promise lets the engine keep the events' bytes and read
// their text only when the stream ended without usage: the text is still read in the order
// it came (the word counter sees "a b", two words, not "ab " or " ab"), whichever way it
// ends, for both kinds of translator.
TEST_F(StreamUsageTest, TheEstimateReadsTheTextInTheOrderItCame) {
  TestHttpServer ended([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("a")));
    c.SendChunk(Sse(Chunk(" ")));
    c.SendChunk(Sse(Chunk("b")));
    c.SendChunk("data: [DONE]\n\n");
    c.EndChunked();
  });
  TestHttpServer cut([](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    c.SendChunk(Sse(Chunk("a")));
    c.SendChunk(Sse(Chunk(" ")));
    c.SendChunk(Sse(Chunk("b")));
    c.Reset();
  });
  for (std::string_view type : {"openai", "raw_sse"}) {
    for (const TestHttpServer* server : {&ended, &cut}) {
      seen_->outcome.reset();
      Serve(*server, Request(false), nullptr, "", type);
      ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value()) << type;
      EXPECT_TRUE(seen_->outcome->usage_estimated);
      EXPECT_EQ(seen_->outcome->usage->completion_tokens, 2) << type;
    }
  }
}

// A long stream without usage: the bytes kept for the estimate are bounded (read and
// dropped past StreamUsage::kKeptBytesBound) and every chunk's text still counts once.
TEST_F(StreamUsageTest, ALongStreamWithoutUsageCountsEveryChunkOnce) {
  constexpr int kChunks = 3000;  // about 390 KB of chunks, past the 256 KiB bound
  TestHttpServer server([&](TestConnection& c) {
    c.StartChunked(200, {{"content-type", "text/event-stream"}});
    std::string batch;
    for (int i = 0; i < kChunks; ++i) {
      batch += Sse(Chunk(absl::StrFormat("w%04d ", i)));
      if (batch.size() > 16000) {
        c.SendChunk(batch);
        batch.clear();
      }
    }
    c.SendChunk(batch + "data: [DONE]\n\n");
    c.EndChunked();
  });
  Serve(server, Request(false), std::make_shared<CharCount>());
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, kChunks * 6);  // "wNNNN " each
  static_assert(kChunks * 100 > gateway_internal::StreamUsage::kKeptBytesBound);
}

TEST_F(StreamUsageTest, ProviderOptionStreamUsageFalseSendsNoStreamOptions) {
  TestHttpServer server(NoUsage);
  Serve(server, Request(false), nullptr, R"(, "stream_usage": false)");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_FALSE(Json::parse(server.requests()[0].body).contains("stream_options"));
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_TRUE(seen_->outcome->usage_estimated);
}

// A chain whose filters do not read the outcome (the "headers" filter declares its headers
// hook only) and a client that did not ask: the client's stream is what it is without
// filters (usage chunks dropped unread), the filter's header included.
TEST_F(StreamUsageTest, AHeadersOnlyFilterLeavesTheStreamAsWithoutFilters) {
  with_outcome_filter_ = false;
  extra_filters_ = R"({"type": "headers", "config": {"response": {"set": {"x-gw": "1"}}}})";
  TestHttpServer server(UsageEverywhere);
  for (bool with_filter : {true, false}) {
    if (!with_filter) extra_filters_.clear();
    RecordingSink sink = Serve(server, Request(false));
    EXPECT_EQ(sink.status, 200);
    EXPECT_EQ(FindHeader(sink.headers, "x-gw").has_value(), with_filter);
    std::vector<std::string> events = Events(sink.body);
    ASSERT_EQ(events.size(), 3u) << sink.body;
    EXPECT_EQ(UsageChunks(events), 0) << sink.body;
    EXPECT_EQ(Json::parse(events[0])["choices"][0]["delta"]["content"], "hello");
    EXPECT_EQ(Json::parse(events[1])["choices"][0]["delta"]["content"], " world");
    EXPECT_EQ(events[2], "[DONE]");
  }
}

// The client asked and no filter reads the outcome: the client still gets the one usage
// chunk before [DONE].
TEST_F(StreamUsageTest, AClientThatAskedStillGetsUsageWithoutOutcomeReaders) {
  with_outcome_filter_ = false;
  extra_filters_ = R"({"type": "headers", "config": {"response": {"set": {"x-gw": "1"}}}})";
  TestHttpServer server(UsageEverywhere);
  RecordingSink sink = Serve(server, Request(true));
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 4u) << sink.body;
  EXPECT_EQ(UsageChunks(events), 1) << sink.body;
  EXPECT_EQ(Json::parse(events[2])["usage"], Json::parse(kUsage));
  EXPECT_EQ(events[3], "[DONE]");
}

// A filter that reads the outcome next to one that does not: the provider is asked for usage
// and the outcome carries it, as with the outcome filter alone.
TEST_F(StreamUsageTest, AnOutcomeReaderBesideAHeadersOnlyFilterStillGetsTheUsage) {
  extra_filters_ = R"({"type": "headers", "config": {"response": {"set": {"x-gw": "1"}}}})";
  TestHttpServer server(UsageEverywhere);
  RecordingSink sink = Serve(server, Request(false));
  EXPECT_EQ(FindHeader(sink.headers, "x-gw"), "1");
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 3u) << sink.body;
  EXPECT_EQ(UsageChunks(events), 0) << sink.body;
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(Json::parse(server.requests()[0].body)["stream_options"]["include_usage"], true);
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, 4);
  EXPECT_FALSE(seen_->outcome->usage_estimated);
}

// The engine runs no step for a hook no filter declares: a filter declaring its headers hook
// only gets that one, and the stream reaches the client as without filters.
TEST_F(StreamUsageTest, AFilterGetsNoEventOrCompleteStepItDidNotDeclare) {
  with_outcome_filter_ = false;
  extra_filters_ = R"({"type": "headers_only"})";
  TestHttpServer server(UsageEverywhere);
  RecordingSink sink = Serve(server, Request(true));
  EXPECT_EQ(FindHeader(sink.headers, "x-only"), "1");
  EXPECT_EQ(hook_calls_->headers, 1);
  EXPECT_EQ(hook_calls_->events, 0);
  EXPECT_EQ(hook_calls_->complete, 0);
  std::vector<std::string> events = Events(sink.body);
  ASSERT_EQ(events.size(), 4u) << sink.body;
  EXPECT_EQ(UsageChunks(events), 1) << sink.body;
  EXPECT_EQ(Json::parse(events[2])["usage"], Json::parse(kUsage));
  EXPECT_EQ(events[3], "[DONE]");

  // Beside a filter that declares nothing (so every hook), the outcome reaches the chain
  // again: that filter gets the usage.
  with_outcome_filter_ = true;
  RecordingSink both = Serve(server, Request(false));
  EXPECT_EQ(both.status, 200);
  EXPECT_EQ(UsageChunks(Events(both.body)), 0) << both.body;
  ASSERT_TRUE(seen_->outcome.has_value() && seen_->outcome->usage.has_value());
  EXPECT_EQ(seen_->outcome->usage->completion_tokens, 4);
}

}  // namespace
}  // namespace modeenvoy
