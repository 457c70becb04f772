// tests/gateway/recording_sink.h: a ResponseSink that records one response for assertions.
//
//   RecordingSink sink;
//   std::unique_ptr<ActiveRequest> active = gateway->Handle(std::move(request), &sink);
//   ASSERT_TRUE(loop->RunUntil([&] { return sink.finished.has_value(); }, kTestWait));
//   EXPECT_EQ(sink.status, 200);
//
// By default it also checks the ResponseSink call order (SendHeaders once, then SendBody, then
// Finish once) as gtest failures; RecordingSink(/*check_order=*/false) only records.
#ifndef MODEENVOY_TESTS_GATEWAY_RECORDING_SINK_H_
#define MODEENVOY_TESTS_GATEWAY_RECORDING_SINK_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/gateway/http.h"

namespace modeenvoy {
namespace gateway_testing {

class RecordingSink : public ResponseSink {
 public:
  explicit RecordingSink(bool check_order = true) : check_order_(check_order) {}

  void SendHeaders(int s, const HttpHeaders& h, bool stream) override {
    ++header_calls;
    if (check_order_) {
      EXPECT_FALSE(finished.has_value());
    }
    status = s;
    headers = h;
    streaming = stream;
  }
  bool SendBody(std::string_view data) override {
    if (check_order_) {
      EXPECT_EQ(header_calls, 1);
      EXPECT_FALSE(finished.has_value());
    }
    writes.emplace_back(data);
    body.append(data);
    return accept;
  }
  void Finish(bool complete) override {
    if (check_order_) {
      EXPECT_FALSE(finished.has_value()) << "Finish twice";
    }
    finished = complete;
    if (on_finish) on_finish();
  }

  int header_calls = 0;
  int status = 0;
  HttpHeaders headers;
  bool streaming = false;
  std::vector<std::string> writes;
  std::string body;
  // Set by Finish to its `complete` argument.
  std::optional<bool> finished;
  // What SendBody returns: false plays a client whose send buffer is full.
  bool accept = true;
  // Runs at the end of Finish (e.g. to destroy the ActiveRequest from inside the call).
  std::function<void()> on_finish;

 private:
  bool check_order_;
};

}  // namespace gateway_testing
}  // namespace modeenvoy

#endif  // MODEENVOY_TESTS_GATEWAY_RECORDING_SINK_H_
