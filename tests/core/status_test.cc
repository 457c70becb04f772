// The status helpers every component uses (include/modeenvoy/status.h).
#include "modeenvoy/status.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

TEST(FieldErrorTest, PrefixesThePathAndAttachesIt) {
  absl::Status s = FieldError(absl::StatusCode::kNotFound, "routes[2].model", "no such model");
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "routes[2].model: no such model");
  EXPECT_EQ(ErrorParam(s), "routes[2].model");
}

TEST(FieldErrorTest, InvalidFieldErrorIsInvalidArgument) {
  absl::Status s = InvalidFieldError("temperature", "must be between 0 and 2, got 3.5");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "temperature: must be between 0 and 2, got 3.5");
  EXPECT_EQ(ErrorParam(s), "temperature");
}

TEST(FieldErrorTest, EmptyPathGivesNoParam) {
  absl::Status s = InvalidFieldError("", "bad");
  EXPECT_EQ(s.message(), "bad");
  EXPECT_FALSE(ErrorParam(s).has_value());
}

TEST(FieldErrorTest, OkCodeGivesOk) {
  EXPECT_TRUE(FieldError(absl::StatusCode::kOk, "x", "y").ok());
  EXPECT_FALSE(ErrorParam(absl::OkStatus()).has_value());
  EXPECT_FALSE(ErrorParam(absl::InternalError("x")).has_value());
}

TEST(FieldErrorTest, PayloadsSurviveCopiesAndEachOther) {
  absl::Status s = WithErrorCode(WithHttpStatus(InvalidFieldError("a.b", "c"), 422), "bad_thing");
  absl::Status copy = s;
  EXPECT_EQ(ErrorParam(copy), "a.b");
  EXPECT_EQ(HttpStatusForStatus(copy), 422);
  EXPECT_EQ(ErrorCode(copy), "bad_thing");
  EXPECT_EQ(copy.message(), "a.b: c");
}

TEST(HttpStatusForStatusTest, MapsEveryCode) {
  const std::vector<std::pair<absl::StatusCode, int>> table = {
      {absl::StatusCode::kOk, 200},
      {absl::StatusCode::kInvalidArgument, 400},
      {absl::StatusCode::kOutOfRange, 400},
      {absl::StatusCode::kFailedPrecondition, 400},
      {absl::StatusCode::kUnauthenticated, 401},
      {absl::StatusCode::kPermissionDenied, 403},
      {absl::StatusCode::kNotFound, 404},
      {absl::StatusCode::kAlreadyExists, 409},
      {absl::StatusCode::kAborted, 409},
      {absl::StatusCode::kResourceExhausted, 429},
      {absl::StatusCode::kCancelled, 499},
      {absl::StatusCode::kUnimplemented, 501},
      {absl::StatusCode::kUnavailable, 503},
      {absl::StatusCode::kDeadlineExceeded, 504},
      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnknown, 500},
      {absl::StatusCode::kDataLoss, 500},
  };
  for (const auto& [code, http] : table) {
    EXPECT_EQ(HttpStatusForStatus(absl::Status(code, "x")), http) << absl::StatusCodeToString(code);
  }
}

TEST(HttpStatusForStatusTest, ExplicitStatusWins) {
  absl::Status s = WithHttpStatus(absl::UnavailableError("overloaded"), 529);
  EXPECT_EQ(HttpStatusForStatus(s), 529);
  EXPECT_EQ(HttpStatusForStatus(WithHttpStatus(s, 502)), 502);  // replaced
}

TEST(HttpStatusForStatusTest, OutOfRangeExplicitStatusIsIgnored) {
  EXPECT_EQ(HttpStatusForStatus(WithHttpStatus(absl::NotFoundError("x"), 42)), 404);
  EXPECT_EQ(HttpStatusForStatus(WithHttpStatus(absl::NotFoundError("x"), 600)), 404);
  EXPECT_TRUE(WithHttpStatus(absl::OkStatus(), 500).ok());
}

}  // namespace
}  // namespace modeenvoy
