// lib/gateway/timer_queue.h: the timer bookkeeping PollEventLoop and SimEventLoop share.
// A loop's Timer type derives from TimerEntry; the loop keeps a TimerQueue<ItsTimer> and
// decides only what "now" is (monotonic clock or FakeClock):
//   const uint64_t seq_limit = timers_.next_seq();   // before this round's callbacks
//   ... run posts and descriptors ...
//   ran += timers_.RunDue(now, seq_limit);
#ifndef MODEENVOY_LIB_GATEWAY_TIMER_QUEUE_H_
#define MODEENVOY_LIB_GATEWAY_TIMER_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"

namespace modeenvoy {
namespace gateway_internal {

// (deadline, arming sequence): the firing order.
using TimerKey = std::pair<absl::Time, uint64_t>;

// The per-timer state a TimerQueue reads and writes.
struct TimerEntry {
  bool armed = false;
  TimerKey key;
  absl::AnyInvocable<void()> fn;
};

// Armed timers in firing order. T derives from TimerEntry. Not owning.
// Thread safety: thread-hostile; the owning loop's thread only.
template <typename T>
class TimerQueue {
 public:
  // Arms `timer` (its `fn` already set) to fire at `deadline`, after every timer armed before
  // it for the same deadline. REQUIRES: `timer` is not armed.
  void Add(T* timer, absl::Time deadline) {
    timer->key = {deadline, next_seq_++};
    timer->armed = true;
    timers_[timer->key] = timer;
  }

  // Disarms `timer`; a no-op when it is not armed. Its `fn` is left as it is.
  void Remove(T* timer) {
    if (!timer->armed) return;
    timers_.erase(timer->key);
    timer->armed = false;
  }

  // The sequence the next Add will take. Timers armed from here on compare >= it.
  uint64_t next_seq() const { return next_seq_; }
  size_t size() const { return timers_.size(); }
  bool empty() const { return timers_.empty(); }
  std::optional<absl::Time> NextDeadline() const {
    if (timers_.empty()) return std::nullopt;
    return timers_.begin()->first.first;
  }

  // Runs, in firing order, the timers due at `now` that were armed before `seq_limit`;
  // the ones armed later (say by these callbacks) stay queued. Returns how many ran.
  int RunDue(absl::Time now, uint64_t seq_limit) {
    int ran = 0;
    while (true) {
      auto due = timers_.begin();
      while (due != timers_.end() && due->first.first <= now && due->first.second >= seq_limit) {
        ++due;
      }
      if (due == timers_.end() || due->first.first > now) break;
      T* timer = due->second;
      timers_.erase(due);
      timer->armed = false;
      // Moved out first: the callback may re-arm, cancel or destroy its own timer.
      absl::AnyInvocable<void()> fn = std::move(timer->fn);
      timer->fn = nullptr;
      fn();
      ++ran;
    }
    return ran;
  }

  // Calls f(T*) for every armed timer (e.g. to detach them from a loop being destroyed).
  template <typename F>
  void ForEach(F f) {
    for (auto& [key, timer] : timers_) f(timer);
  }

 private:
  std::map<TimerKey, T*> timers_;
  uint64_t next_seq_ = 1;
};

}  // namespace gateway_internal
}  // namespace modeenvoy

#endif  // MODEENVOY_LIB_GATEWAY_TIMER_QUEUE_H_
