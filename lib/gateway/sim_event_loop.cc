// lib/gateway/sim_event_loop.cc: SimEventLoop, timers on a FakeClock and descriptors polled
// with a zero timeout.
#include "modeenvoy/gateway/sim_event_loop.h"

#include <poll.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "lib/core/mutex.h"
#include "lib/gateway/poll_events.h"
#include "lib/gateway/timer_queue.h"

namespace modeenvoy {
namespace {

class SimLoop;

// Shared by a loop and everything it created; the loop clears it when destroyed, so a Timer
// or FdWatch that outlives the loop does nothing instead of reaching a dead one.
struct LoopRef {
  SimLoop* loop;
};

class SimTimer final : public Timer, public gateway_internal::TimerEntry {
 public:
  explicit SimTimer(std::shared_ptr<const LoopRef> ref) : ref_(std::move(ref)) {}
  ~SimTimer() override;
  void Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) override;
  void Cancel() override;

 private:
  friend class SimLoop;
  std::shared_ptr<const LoopRef> ref_;
};

class SimWatch final : public FdWatch {
 public:
  using Callback = absl::AnyInvocable<void(uint32_t)>;
  SimWatch(std::shared_ptr<const LoopRef> ref, uint64_t id, int fd, uint32_t events,
           Callback cb)
      : ref_(std::move(ref)), id_(id), fd_(fd), events_(events & (kIoRead | kIoWrite)),
        on_ready_(std::make_shared<Callback>(std::move(cb))) {}
  ~SimWatch() override;
  void SetEvents(uint32_t events) override { events_ = events & (kIoRead | kIoWrite); }

 private:
  friend class SimLoop;
  std::shared_ptr<const LoopRef> ref_;
  const uint64_t id_;
  const int fd_;
  uint32_t events_;
  // Shared so a callback that destroys its own watch keeps running on a live object.
  std::shared_ptr<Callback> on_ready_;
};

class SimLoop final : public SimEventLoop {
 public:
  explicit SimLoop(FakeClock* clock)
      : owned_clock_(clock == nullptr ? std::make_unique<FakeClock>() : nullptr),
        clock_(clock == nullptr ? owned_clock_.get() : clock),
        ref_(std::make_shared<LoopRef>(LoopRef{this})) {}

  ~SimLoop() override {
    ref_->loop = nullptr;
    timers_.ForEach([](SimTimer* timer) { timer->armed = false; });
  }

  void Post(absl::AnyInvocable<void()> fn) override ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    posted_.push_back(std::move(fn));
  }

  std::unique_ptr<Timer> NewTimer() override {
    return std::make_unique<SimTimer>(ref_);
  }

  std::unique_ptr<FdWatch> WatchFd(int fd, uint32_t events,
                                   absl::AnyInvocable<void(uint32_t)> on_ready) override {
    auto watch = std::make_unique<SimWatch>(ref_, next_watch_id_++, fd, events,
                                            std::move(on_ready));
    watches_[watch->id_] = watch.get();
    return watch;
  }

  const Clock& clock() const override { return *clock_; }
  FakeClock& fake_clock() const override { return *clock_; }

  int RunOnce() override {
    if (running_) return 0;
    Running scope(this);
    return Round();
  }

  int RunUntilIdle() override {
    if (running_) return 0;
    Running scope(this);
    return Idle();
  }

  int AdvanceTo(absl::Time t) override {
    if (running_) return 0;
    Running scope(this);
    int ran = Idle();
    ran += FireTimersThrough(t);
    // InfiniteFuture: every timer has fired; a clock at infinity would be of no use.
    if (t > clock_->Now() && t != absl::InfiniteFuture()) {
      clock_->Set(t);
      ran += Idle();
    }
    return ran;
  }

  int AdvanceBy(absl::Duration d) override { return AdvanceTo(clock_->Now() + d); }

  int RunFor(absl::Duration d) override {
    if (running_) return 0;
    Running scope(this);
    const absl::Time horizon =
        clock_->Now() + (d > absl::ZeroDuration() ? d : absl::ZeroDuration());
    int ran = Idle();
    ran += FireTimersThrough(horizon);
    return ran;
  }

  size_t pending_timers() const override { return timers_.size(); }

  size_t pending_posts() const override ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    return posted_.size();
  }

  size_t active_watches() const override { return watches_.size(); }

  std::optional<absl::Time> NextTimerDeadline() const override {
    return timers_.NextDeadline();
  }

 private:
  friend class SimTimer;
  friend class SimWatch;

  // Marks the loop as running for a scope, so a Run method called from a callback is a no-op.
  class Running {
   public:
    explicit Running(SimLoop* loop) : loop_(loop) { loop_->running_ = true; }
    ~Running() { loop_->running_ = false; }
    Running(const Running&) = delete;
    Running& operator=(const Running&) = delete;

   private:
    SimLoop* loop_;
  };

  // One round at the current time: the posts queued now, ready descriptors, due timers.
  int Round() ABSL_LOCKS_EXCLUDED(mu_) {
    int ran = 0;
    // Timers armed from here on (zero-delay ones too) wait for the next round, as posts do.
    const uint64_t seq_limit = timers_.next_seq();
    std::vector<absl::AnyInvocable<void()>> tasks;
    {
      core_internal::MutexLock lock(&mu_);
      tasks.swap(posted_);
    }
    for (auto& task : tasks) {
      task();
      ++ran;
    }
    ran += PollDescriptors();

    ran += timers_.RunDue(clock_->Now(), seq_limit);
    return ran;
  }

  int Idle() {
    int ran = 0;
    for (int n; (n = Round()) > 0;) ran += n;
    return ran;
  }

  // Steps the clock forward to each timer deadline up to `limit` and runs until idle there.
  int FireTimersThrough(absl::Time limit) {
    int ran = 0;
    for (std::optional<absl::Time> next; (next = timers_.NextDeadline()).has_value();) {
      if (*next > limit) break;
      if (*next > clock_->Now()) clock_->Set(*next);
      ran += Idle();
    }
    return ran;
  }

  int PollDescriptors() {
    if (watches_.empty()) return 0;
    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;
    fds.reserve(watches_.size());
    ids.reserve(watches_.size());
    for (const auto& [id, watch] : watches_) {
      if (watch->events_ == kIoNone) continue;
      fds.push_back({watch->fd_, gateway_internal::ToPollEvents(watch->events_), 0});
      ids.push_back(id);
    }
    if (fds.empty()) return 0;
    int n;
    do {
      n = poll(fds.data(), fds.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return 0;
    int ran = 0;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto it = watches_.find(ids[i]);
      if (it == watches_.end()) continue;  // destroyed by an earlier callback
      SimWatch* watch = it->second;
      uint32_t ready = gateway_internal::FromPollRevents(fds[i].revents);
      // Report only what is still wanted (an earlier callback may have changed it).
      ready &= watch->events_ | kIoError;
      if (ready == kIoNone || watch->events_ == kIoNone) continue;
      std::shared_ptr<SimWatch::Callback> cb = watch->on_ready_;
      (*cb)(ready);
      ++ran;
    }
    return ran;
  }

  void AddTimer(SimTimer* timer, absl::Duration delay) {
    if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
    timers_.Add(timer, clock_->Now() + delay);
  }

  void RemoveTimer(SimTimer* timer) { timers_.Remove(timer); }

  std::unique_ptr<FakeClock> owned_clock_;
  FakeClock* const clock_;
  const std::shared_ptr<LoopRef> ref_;
  bool running_ = false;
  mutable absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
  gateway_internal::TimerQueue<SimTimer> timers_;
  std::map<uint64_t, SimWatch*> watches_;
  uint64_t next_watch_id_ = 1;
};

SimTimer::~SimTimer() {
  if (ref_->loop != nullptr) ref_->loop->RemoveTimer(this);
}

void SimTimer::Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  if (ref_->loop == nullptr) return;
  ref_->loop->RemoveTimer(this);
  this->fn = std::move(fn);
  ref_->loop->AddTimer(this, delay);
}

void SimTimer::Cancel() {
  if (ref_->loop != nullptr) ref_->loop->RemoveTimer(this);
  fn = nullptr;
}

SimWatch::~SimWatch() {
  if (ref_->loop != nullptr) ref_->loop->watches_.erase(id_);
}

}  // namespace

std::unique_ptr<SimEventLoop> NewSimEventLoop(FakeClock* clock) {
  return std::make_unique<SimLoop>(clock);
}

}  // namespace modeenvoy
