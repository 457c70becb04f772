#include "modeenvoy/clock.h"

#include <chrono>

#include "lib/core/mutex.h"

namespace modeenvoy {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Time MonotonicNow() const override {
    // absl::Now() follows the wall clock; durations need a clock that never steps back.
    // Whole nanoseconds through the inline FromUnixNanos (cheaper than Time + Duration).
    const std::chrono::nanoseconds since_epoch = std::chrono::steady_clock::now().time_since_epoch();
    return absl::FromUnixNanos(since_epoch.count());
  }
};

}  // namespace

// Out of line so the locks go through lib/core/mutex.h: with Debian's uninstrumented Abseil,
// a plain absl::MutexLock inlined into a test would look to TSan like no lock at all.
absl::Time FakeClock::Now() const {
  core_internal::MutexLock lock(&mu_);
  return now_;
}

void FakeClock::Advance(absl::Duration d) {
  core_internal::MutexLock lock(&mu_);
  now_ += d;
}

void FakeClock::Set(absl::Time t) {
  core_internal::MutexLock lock(&mu_);
  now_ = t;
}

const Clock& SystemClock() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace modeenvoy
