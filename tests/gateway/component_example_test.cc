// tests/gateway/component_example_test.cc: the worked example of docs/engine.md runs
// through the engine with no engine change: its section, filter type and endpoint.
#include <memory>
#include <optional>
#include <string>

#include "examples/component/request_ids.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/gateway/gateway.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/gateway/registry.h"
#include "modeenvoy/gateway/services.h"
#include "nlohmann/json.hpp"
#include "tests/gateway/recording_sink.h"

namespace modeenvoy {
namespace {

using gateway_testing::RecordingSink;

class ComponentExampleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(examples::RegisterRequestIds(&registry_).ok());
    auto client = NewCurlUpstreamClient(loop_.get());
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  RecordingSink Get(Gateway& gateway, std::string path) {
    RecordingSink sink(/*check_order=*/false);
    HttpRequest request;
    request.method = "GET";
    request.path = std::move(path);
    std::unique_ptr<ActiveRequest> active = gateway.Handle(std::move(request), &sink);
    EXPECT_TRUE(loop_->RunUntil([&] { return sink.finished.has_value(); }, absl::Seconds(10)));
    return sink;
  }

  Registry registry_;
  std::unique_ptr<PollEventLoop> loop_ = NewPollEventLoop();
  std::unique_ptr<UpstreamClient> client_;
};

TEST_F(ComponentExampleTest, SectionFilterAndEndpointWorkAcrossAReload) {
  ConfigStore store({.registry = &registry_});
  ASSERT_TRUE(store
                  .Load(R"({"request_ids": {"header": "x-req", "prefix": "r"},
                            "filters": [{"type": "request_ids", "name": "ids"}]})")
                  .ok());
  auto gateway = NewGateway({.config = &store, .loop = loop_.get(), .upstream = client_.get()});
  ASSERT_TRUE(gateway.ok());

  RecordingSink first = Get(**gateway, "/v1/models");
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(FindHeader(first.headers, "x-req"), "r1");

  // A reload keeps the counter (named state) and applies the new section.
  ASSERT_TRUE(store
                  .Reload(R"({"request_ids": {"prefix": "n"},
                              "filters": [{"type": "request_ids", "name": "ids"}]})")
                  .ok());
  RecordingSink second = Get(**gateway, "/v1/request-ids/ids");
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(FindHeader(second.headers, "x-request-id"), "n2");
  // The endpoint read the counter before the response phase stamped this response.
  EXPECT_EQ(nlohmann::json::parse(second.body)["issued"], 1);
}

TEST_F(ComponentExampleTest, BadSectionIsAConfigErrorWithItsPath) {
  ConfigStore store({.registry = &registry_});
  absl::Status s = store.Load(R"({"request_ids": {"header": "bad header"}})");
  EXPECT_EQ(s.message(), "request_ids.header: invalid header name");
  s = store.Load(R"({"request_ids": {"colour": "x"}})");
  EXPECT_EQ(s.message(), "request_ids.colour: unknown field");
  s = store.Load(R"({"filters": [{"type": "request_ids", "config": {"x": 1}}]})");
  EXPECT_EQ(s.message(), "filters[0].config: takes no configuration");
}

}  // namespace
}  // namespace modeenvoy
