// tests/gateway/engine_deadline_test.cc: the engine's own deadlines on virtual time
// (SimEventLoop): a filter that never resumes, in either phase, ends the request instead of
// holding it forever. Nothing sleeps; the clock moves only when the test says so.
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/sim_event_loop.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;
using ::testing::HasSubstr;

// Never asked for anything in these tests: every request is answered locally.
class NoUpstream final : public UpstreamClient {
 public:
  std::unique_ptr<UpstreamCall> Start(UpstreamRequest, UpstreamHandler*) override {
    ADD_FAILURE() << "no upstream call expected";
    return nullptr;
  }
};

// Pauses in the phase it is told to and never resumes.
class Stuck final : public Filter {
 public:
  enum class Where { kRequest, kHeaders, kComplete };
  explicit Stuck(Where where) : where_(where) {}
  FilterResult OnRequest(RequestContext&, FilterCallbacks&) override {
    return where_ == Where::kRequest ? FilterResult::Pause() : FilterResult::Continue();
  }
  FilterStatus OnResponseHeaders(RequestContext&, ResponseHead&, FilterCallbacks&) override {
    return where_ == Where::kHeaders ? FilterStatus::kPause : FilterStatus::kContinue;
  }
  FilterStatus OnResponseComplete(RequestContext&, const ResponseOutcome&,
                                  FilterCallbacks&) override {
    return where_ == Where::kComplete ? FilterStatus::kPause : FilterStatus::kContinue;
  }
  void OnDestroy() override { ++destroyed; }
  static inline int destroyed = 0;

 private:
  Where where_;
};

class EngineDeadlineTest : public ::testing::Test {
 protected:
  std::unique_ptr<Gateway> Make(Stuck::Where where) {
    (void)registry_.filters().Register(
        "stuck", [where](std::string_view, const BuildContext&)
                     -> absl::StatusOr<std::unique_ptr<FilterFactory>> {
          return MakeFilterFactory(Stuck(where));
        });
    EXPECT_TRUE(store_.Load(R"({"filters": [{"type": "stuck"}]})").ok());
    GatewayOptions options;
    options.config = &store_;
    options.loop = loop_.get();
    options.upstream = &upstream_;
    options.request_phase_timeout = absl::Seconds(5);
    options.response_step_timeout = absl::Seconds(7);
    auto gateway = NewGateway(std::move(options));
    EXPECT_TRUE(gateway.ok()) << gateway.status();
    return std::move(*gateway);
  }

  static HttpRequest ListModels() {
    HttpRequest r;
    r.method = "GET";
    r.path = "/v1/models";
    return r;
  }

  std::unique_ptr<SimEventLoop> loop_ = NewSimEventLoop();
  NoUpstream upstream_;
  Registry registry_;
  ConfigStore store_{{.registry = &registry_}};
};

TEST_F(EngineDeadlineTest, RequestPhaseThatNeverResumesEndsWith504AtItsDeadline) {
  Stuck::destroyed = 0;
  std::unique_ptr<Gateway> gateway = Make(Stuck::Where::kRequest);
  RecordingSink sink(/*check_order=*/false);
  std::unique_ptr<ActiveRequest> active = gateway->Handle(ListModels(), &sink);
  loop_->RunUntilIdle();
  loop_->AdvanceBy(absl::Seconds(5) - absl::Milliseconds(1));
  EXPECT_EQ(sink.status, 0) << "answered before the deadline";
  loop_->AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(sink.status, 504);
  EXPECT_EQ(sink.finished, true);
  EXPECT_THAT(nlohmann::json::parse(sink.body)["error"]["message"].get<std::string>(),
              HasSubstr("did not finish within 5s"));
  EXPECT_EQ(Stuck::destroyed, 1);
  EXPECT_EQ(gateway->active_requests(), 0u);
}

TEST_F(EngineDeadlineTest, ResponseStepThatNeverResumesEndsWith504BeforeTheStatusLine) {
  std::unique_ptr<Gateway> gateway = Make(Stuck::Where::kHeaders);
  RecordingSink sink(/*check_order=*/false);
  std::unique_ptr<ActiveRequest> active = gateway->Handle(ListModels(), &sink);
  loop_->RunUntilIdle();
  EXPECT_EQ(sink.status, 0);
  loop_->AdvanceBy(absl::Seconds(7));
  EXPECT_EQ(sink.status, 504);
  EXPECT_EQ(sink.finished, true);
}

TEST_F(EngineDeadlineTest, CompleteHookHoldsTheBodyUntilItsDeadline) {
  std::unique_ptr<Gateway> gateway = Make(Stuck::Where::kComplete);
  RecordingSink sink(/*check_order=*/false);
  std::unique_ptr<ActiveRequest> active = gateway->Handle(ListModels(), &sink);
  loop_->RunUntilIdle();
  // The final bytes (here: the whole body and its status line) wait for the hook.
  EXPECT_EQ(sink.status, 0);
  EXPECT_TRUE(sink.body.empty());
  loop_->AdvanceBy(absl::Seconds(7));
  EXPECT_EQ(sink.status, 504);
  EXPECT_EQ(sink.finished, true);
}

}  // namespace
}  // namespace modeenvoy
