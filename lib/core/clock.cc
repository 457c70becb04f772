#include "modeenvoy/clock.h"

#include <chrono>

namespace modeenvoy {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  absl::Time MonotonicNow() const override {
    // absl::Now() follows the wall clock; durations need a clock that never steps back.
    const auto since_epoch = std::chrono::steady_clock::now().time_since_epoch();
    return absl::UnixEpoch() + absl::FromChrono(since_epoch);
  }
};

}  // namespace

const Clock& SystemClock() {
  static const RealClock* const clock = new RealClock();
  return *clock;
}

}  // namespace modeenvoy
