#include "lib/core/status_macros.h"

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError("x: must be even");
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  MODEENVOY_ASSIGN_OR_RETURN(int h, Half(x));
  MODEENVOY_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

absl::Status CheckEven(int x) {
  MODEENVOY_RETURN_IF_ERROR(Half(x).status());
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  absl::StatusOr<int> bad = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "x: must be even");
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsOnlyOnError) {
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_EQ(CheckEven(5).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace modeenvoy
