#include "modeenvoy/clock.h"

#include "gtest/gtest.h"

namespace modeenvoy {
namespace {

TEST(FakeClockTest, StartsAtGivenTimeAndAdvancesOnlyByHand) {
  FakeClock clock(absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(100));
  EXPECT_EQ(clock.MonotonicNow(), absl::FromUnixSeconds(100));
  clock.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(clock.Now(), absl::FromUnixMillis(101500));
  clock.Set(absl::FromUnixSeconds(7));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(7));
}

TEST(ClockTest, NullOptionMeansSystemClock) {
  FakeClock fake;
  EXPECT_EQ(&ClockOrSystem(&fake), &fake);
  EXPECT_EQ(&ClockOrSystem(nullptr), &SystemClock());
}

TEST(SystemClockTest, MonotonicNeverGoesBackwards) {
  const Clock& clock = SystemClock();
  absl::Time prev = clock.MonotonicNow();
  for (int i = 0; i < 1000; ++i) {
    absl::Time next = clock.MonotonicNow();
    ASSERT_GE(next, prev);
    prev = next;
  }
}

}  // namespace
}  // namespace modeenvoy
