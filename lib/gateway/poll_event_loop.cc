// lib/gateway/poll_event_loop.cc: PollEventLoop over poll(2) and a self-pipe for Post().
#include "modeenvoy/gateway/poll_event_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
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

absl::Time MonotonicNow() {
  return absl::FromUnixNanos(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now().time_since_epoch())
                                 .count());
}

class PollLoop;

class PollTimer final : public Timer, public gateway_internal::TimerEntry {
 public:
  explicit PollTimer(PollLoop* loop) : loop_(loop) {}
  ~PollTimer() override;
  void Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) override;
  void Cancel() override;

 private:
  friend class PollLoop;
  PollLoop* loop_;  // null once the loop is gone
};

class PollWatch final : public FdWatch {
 public:
  using Callback = absl::AnyInvocable<void(uint32_t)>;
  PollWatch(PollLoop* loop, uint64_t id, int fd, uint32_t events, Callback cb)
      : loop_(loop), id_(id), fd_(fd), events_(events),
        on_ready_(std::make_shared<Callback>(std::move(cb))) {}
  ~PollWatch() override;
  void SetEvents(uint32_t events) override { events_ = events & (kIoRead | kIoWrite); }

 private:
  friend class PollLoop;
  PollLoop* loop_;
  const uint64_t id_;
  const int fd_;
  uint32_t events_;
  // Shared so a callback that destroys its own watch keeps running on a live object.
  std::shared_ptr<Callback> on_ready_;
};

class PollLoop final : public PollEventLoop {
 public:
  explicit PollLoop(const Clock* clock) : clock_(ClockOrSystem(clock)) {
    if (pipe(wake_) == 0) {
      for (int fd : wake_) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
      }
    } else {
      wake_[0] = wake_[1] = -1;  // Post() still works; cross-thread wake-up is then delayed
    }
  }

  ~PollLoop() override {
    timers_.ForEach([](PollTimer* timer) { timer->loop_ = nullptr; });
    for (auto& [id, watch] : watches_) watch->loop_ = nullptr;
    for (int fd : wake_) {
      if (fd >= 0) close(fd);
    }
  }

  void Post(absl::AnyInvocable<void()> fn) override ABSL_LOCKS_EXCLUDED(mu_) {
    {
      core_internal::MutexLock lock(&mu_);
      posted_.push_back(std::move(fn));
    }
    Wake();
  }

  std::unique_ptr<Timer> NewTimer() override { return std::make_unique<PollTimer>(this); }

  std::unique_ptr<FdWatch> WatchFd(int fd, uint32_t events,
                                   absl::AnyInvocable<void(uint32_t)> on_ready) override {
    auto watch = std::make_unique<PollWatch>(this, next_watch_id_++, fd,
                                             events & (kIoRead | kIoWrite), std::move(on_ready));
    watches_[watch->id_] = watch.get();
    return watch;
  }

  const Clock& clock() const override { return clock_; }

  int RunOnce(absl::Duration max_wait) override ABSL_LOCKS_EXCLUDED(mu_) {
    // Timers armed by any callback of this iteration wait for the next one, so a callback
    // re-arming a zero-delay timer cannot keep RunOnce from returning.
    const uint64_t seq_limit = timers_.next_seq();
    absl::Duration wait = max_wait < absl::ZeroDuration() ? absl::ZeroDuration() : max_wait;
    {
      core_internal::MutexLock lock(&mu_);
      if (!posted_.empty()) wait = absl::ZeroDuration();
    }
    if (std::optional<absl::Time> next = timers_.NextDeadline()) {
      absl::Duration until = *next - MonotonicNow();
      if (until < wait) wait = until < absl::ZeroDuration() ? absl::ZeroDuration() : until;
    }

    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;
    fds.reserve(watches_.size() + 1);
    ids.reserve(watches_.size() + 1);
    if (wake_[0] >= 0) {
      fds.push_back({wake_[0], POLLIN, 0});
      ids.push_back(0);
    }
    for (const auto& [id, watch] : watches_) {
      if (watch->events_ == kIoNone) continue;
      fds.push_back({watch->fd_, gateway_internal::ToPollEvents(watch->events_), 0});
      ids.push_back(id);
    }
    // Round up so a timer due in 0.3ms does not spin with a zero timeout.
    int timeout_ms = wait == absl::InfiniteDuration()
                         ? -1
                         : static_cast<int>(absl::ToInt64Milliseconds(
                               wait + absl::Microseconds(999)));
    int n = poll(fds.data(), fds.size(), timeout_ms);
    int ran = 0;
    if (n < 0 && errno != EINTR) n = 0;

    // Posted tasks first: they were queued before anything this iteration produces.
    std::vector<absl::AnyInvocable<void()>> tasks;
    {
      core_internal::MutexLock lock(&mu_);
      tasks.swap(posted_);
    }
    for (auto& task : tasks) {
      task();
      ++ran;
    }

    if (n > 0) {
      for (size_t i = 0; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        if (ids[i] == 0) {
          DrainWake();
          continue;
        }
        auto it = watches_.find(ids[i]);
        if (it == watches_.end()) continue;  // destroyed by an earlier callback
        PollWatch* watch = it->second;
        uint32_t ready = gateway_internal::FromPollRevents(fds[i].revents);
        // Report only what is still wanted (an earlier callback may have changed it).
        ready &= watch->events_ | kIoError;
        if (ready == kIoNone) continue;
        std::shared_ptr<PollWatch::Callback> cb = watch->on_ready_;
        (*cb)(ready);
        ++ran;
      }
    }

    // Timers due now; ones armed by these callbacks wait for the next iteration.
    ran += timers_.RunDue(MonotonicNow(), seq_limit);
    return ran;
  }

  bool RunUntil(absl::FunctionRef<bool()> done, absl::Duration timeout) override {
    const absl::Time deadline = MonotonicNow() + timeout;
    bool result = done();
    while (!result && !stop_.load(std::memory_order_acquire)) {
      absl::Duration left = deadline - MonotonicNow();
      if (left <= absl::ZeroDuration()) break;
      RunOnce(left);
      result = done();
    }
    stop_.store(false, std::memory_order_release);
    return result;
  }

  void Run() override {
    while (!stop_.load(std::memory_order_acquire)) RunOnce(absl::InfiniteDuration());
    stop_.store(false, std::memory_order_release);
  }

  void Stop() override {
    stop_.store(true, std::memory_order_release);
    Wake();
  }

 private:
  friend class PollTimer;
  friend class PollWatch;

  void Wake() {
    if (wake_[1] < 0) return;
    char byte = 1;
    // A full pipe already guarantees a wake-up; nothing to do on EAGAIN.
    [[maybe_unused]] ssize_t r = write(wake_[1], &byte, 1);
  }

  void DrainWake() {
    char buf[256];
    while (read(wake_[0], buf, sizeof buf) > 0) {
    }
  }

  void AddTimer(PollTimer* timer, absl::Duration delay) {
    if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
    timers_.Add(timer, MonotonicNow() + delay);
  }

  void RemoveTimer(PollTimer* timer) { timers_.Remove(timer); }

  const Clock& clock_;
  int wake_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::vector<absl::AnyInvocable<void()>> posted_ ABSL_GUARDED_BY(mu_);
  gateway_internal::TimerQueue<PollTimer> timers_;
  std::map<uint64_t, PollWatch*> watches_;
  uint64_t next_watch_id_ = 1;
};

PollTimer::~PollTimer() {
  if (loop_ != nullptr) loop_->RemoveTimer(this);
}

void PollTimer::Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) {
  if (loop_ == nullptr) return;
  loop_->RemoveTimer(this);
  this->fn = std::move(fn);
  loop_->AddTimer(this, delay);
}

void PollTimer::Cancel() {
  if (loop_ != nullptr) loop_->RemoveTimer(this);
  fn = nullptr;
}

PollWatch::~PollWatch() {
  if (loop_ != nullptr) loop_->watches_.erase(id_);
}

}  // namespace

std::unique_ptr<PollEventLoop> NewPollEventLoop(const Clock* clock) {
  return std::make_unique<PollLoop>(clock);
}

}  // namespace modeenvoy
