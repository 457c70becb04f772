// include/modeenvoy/gateway/sim_event_loop.h: an EventLoop on virtual time, for tests of
// timers, timeouts, retries and backoff that must neither sleep nor depend on the machine.
//
// Time is a FakeClock that moves only when the test says so; callbacks run only inside the
// Run/Advance calls below, on the calling thread, in a fixed order.
//   std::unique_ptr<modeenvoy::SimEventLoop> loop = modeenvoy::NewSimEventLoop();
//   const absl::Time t0 = loop->clock().Now();
//   std::unique_ptr<modeenvoy::Timer> timeout = loop->NewTimer();
//   bool timed_out = false;
//   timeout->Arm(absl::Seconds(30), [&] { timed_out = true; });
//   loop->AdvanceBy(absl::Seconds(29));   // nothing fires; clock at t0 + 29s
//   loop->AdvanceBy(absl::Seconds(1));    // fires, seeing loop->clock().Now() == t0 + 30s
//   // Code under test takes the loop like any EventLoop and reads time from loop->clock().
//
// Order, within one round at the current time: the posts queued when the round began (FIFO),
// then callbacks of ready descriptors (by watch creation), then timers due (by deadline, then
// by when they were armed). Anything those callbacks post or arm waits for the next round, so
// nothing ever runs inline from the call that set it up.
#ifndef MODEENVOY_GATEWAY_SIM_EVENT_LOOP_H_
#define MODEENVOY_GATEWAY_SIM_EVENT_LOOP_H_

#include <cstddef>
#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/export.h"
#include "modeenvoy/event_loop.h"

namespace modeenvoy {

// A deterministic EventLoop whose timers run on a FakeClock.
//
// Timers: Arm(delay) sets the deadline clock().Now() + delay (a negative delay counts as
// zero). A timer fires when a run reaches its deadline: AdvanceTo/AdvanceBy/RunFor move the
// clock to each deadline in turn, so a callback sees clock().Now() equal to its timer's
// deadline, and a timer re-armed there fires at its new deadline within the same call.
//
// Descriptors: WatchFd works on real descriptors (pipes, loopback sockets). Each round polls
// the watched descriptors once with poll(2) and a zero timeout, level-triggered as the
// EventLoop contract says; waiting never blocks and never moves the clock. A descriptor that
// stays ready (kIoWrite on a socket with buffer space) keeps every round busy: RunUntilIdle()
// would not return, so pause such a watch with SetEvents(kIoNone) or drive it with RunOnce().
//
// Time never goes backwards through this loop: the Run methods only move the clock forward.
// (The clock is a FakeClock the test may also Set() by hand; deadlines are taken from it as
// it is then.)
//
// Thread safety: Post() and pending_posts() are thread-safe; every other method, and every
// Timer and FdWatch, belongs to the thread that runs the loop. Run methods are not
// reentrant: called from inside a callback they return 0 and run nothing. A Timer or FdWatch
// may outlive its loop; it then never fires and its methods do nothing.
class MODEENVOY_EXPORT SimEventLoop : public EventLoop {
 public:
  // The clock the timers run on (owned by the loop or passed to NewSimEventLoop).
  virtual FakeClock& fake_clock() const = 0;

  // Runs one round at the current time (see the order above). Returns the number of
  // callbacks run; 0 means nothing was runnable.
  virtual int RunOnce() = 0;

  // Runs rounds at the current time until one runs nothing: posts, posts they make, timers
  // due now (including zero-delay ones armed meanwhile), ready descriptors. Never moves the
  // clock. Returns the number of callbacks run.
  virtual int RunUntilIdle() = 0;

  // Moves the clock forward to `t`, stopping at each timer deadline on the way (in deadline
  // order, ties by arming order) to set the clock there and RunUntilIdle(); ends with the
  // clock at `t` and a last RunUntilIdle(). If `t` is not after the current time, the clock
  // stays where it is and only RunUntilIdle() runs. AdvanceTo(absl::InfiniteFuture()) fires
  // every timer, those armed meanwhile too, and leaves the clock at the last deadline.
  // Returns the number of callbacks run.
  virtual int AdvanceTo(absl::Time t) = 0;
  // AdvanceTo(clock().Now() + d).
  virtual int AdvanceBy(absl::Duration d) = 0;

  // Runs as a discrete-event simulation with horizon `d`: like AdvanceBy(d), but the clock
  // moves only to the deadlines of timers that fire, so it ends at the last deadline reached
  // (or stays put if no timer was due within `d`). Use it to learn when a sequence of
  // retries finished: the clock then reads the time of the last attempt.
  // A negative `d` counts as zero. Returns the number of callbacks run.
  virtual int RunFor(absl::Duration d) = 0;

  // Armed timers (armed and neither fired nor cancelled).
  virtual size_t pending_timers() const = 0;
  // Posted callbacks not yet run. Thread-safe.
  virtual size_t pending_posts() const = 0;
  // Watches that exist, paused ones included.
  virtual size_t active_watches() const = 0;
  // The earliest armed deadline, if any timer is armed.
  virtual std::optional<absl::Time> NextTimerDeadline() const = 0;
};

// Creates a loop on `clock` (not owned; must outlive the loop), or, if null, on a FakeClock
// of its own starting at FakeClock's default time. Never null.
MODEENVOY_EXPORT std::unique_ptr<SimEventLoop> NewSimEventLoop(FakeClock* clock = nullptr);

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_SIM_EVENT_LOOP_H_
