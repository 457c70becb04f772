// include/modeenvoy/clock.h: the injected time source.
//   const modeenvoy::Clock& clock = modeenvoy::SystemClock();
//   absl::Time deadline = clock.Now() + absl::Seconds(30);
//   modeenvoy::FakeClock fake(absl::FromUnixSeconds(1700000000));
//   fake.Advance(absl::Seconds(5));  // tests move time by hand; nothing ever sleeps
#ifndef MODEENVOY_CLOCK_H_
#define MODEENVOY_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

// Clock is the only way library code reads time, so tests can inject a fake.
// Thread safety: implementations are thread-safe.
class MODEENVOY_EXPORT Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (for timestamps such as `created` in responses).
  virtual absl::Time Now() const = 0;
  // Monotonic time for measuring durations and deadlines. Never goes backwards.
  // Only differences between two values are meaningful.
  virtual absl::Time MonotonicNow() const = 0;
};

// Returns the process-wide real clock. Never null; lives forever.
MODEENVOY_EXPORT const Clock& SystemClock();

// Returns `clock` if non-null, else SystemClock(). For "null means system clock" options.
inline const Clock& ClockOrSystem(const Clock* clock) {
  return clock != nullptr ? *clock : SystemClock();
}

// FakeClock is a manually advanced clock for tests. Now() and MonotonicNow() move together.
// Thread safety: thread-safe, also as ThreadSanitizer sees it (the methods are defined in
// the library, whose locks TSan is told about even when Abseil is not instrumented).
class MODEENVOY_EXPORT FakeClock final : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1700000000))
      : now_(start) {}

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Time MonotonicNow() const override ABSL_LOCKS_EXCLUDED(mu_) { return Now(); }

  // Moves time forward by `d`. REQUIRES: d >= absl::ZeroDuration().
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the time; unlike Advance, may move it backwards (as a wall clock can step).
  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace modeenvoy

#endif  // MODEENVOY_CLOCK_H_
