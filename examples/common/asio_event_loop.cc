// modeenvoy::EventLoop over boost::asio::io_context (see asio_event_loop.h).
#include "examples/common/asio_event_loop.h"

#include <chrono>
#include <cstdint>
#include <memory>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without including it

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace modeenvoy::examples {
namespace {

namespace asio = boost::asio;
using WaitType = asio::posix::descriptor_base::wait_type;

// Converts to a steady_timer expiry; infinite and overflowing delays never fire.
asio::steady_timer::time_point Deadline(absl::Duration delay) {
  auto now = asio::steady_timer::clock_type::now();
  if (delay <= absl::ZeroDuration()) return now;
  if (delay >= absl::Hours(24 * 365 * 100)) return asio::steady_timer::time_point::max();
  return now + std::chrono::duration_cast<asio::steady_timer::duration>(
                   absl::ToChronoNanoseconds(delay));
}

class AsioTimer final : public Timer {
 public:
  explicit AsioTimer(asio::io_context& io) : timer_(io), state_(std::make_shared<State>()) {}
  ~AsioTimer() override {
    // Handlers hold only a weak reference to state_: once it is gone none can run `fn`.
    state_.reset();
    timer_.cancel();
  }

  void Arm(absl::Duration delay, absl::AnyInvocable<void()> fn) override {
    const uint64_t generation = ++state_->generation;
    state_->fn = std::move(fn);
    timer_.expires_at(Deadline(delay));  // cancels an earlier wait; its handler sees a stale generation
    timer_.async_wait([weak = std::weak_ptr<State>(state_), generation](
                          const boost::system::error_code& ec) {
      std::shared_ptr<State> state = weak.lock();
      if (ec || state == nullptr || state->generation != generation || !state->fn) return;
      absl::AnyInvocable<void()> fn = std::move(state->fn);
      state->fn = nullptr;
      fn();  // may re-arm or destroy the timer; `fn` is a local, `state` is held
    });
  }

  void Cancel() override {
    ++state_->generation;
    state_->fn = nullptr;
    timer_.cancel();
  }

 private:
  struct State {
    uint64_t generation = 0;
    absl::AnyInvocable<void()> fn;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

// Level-triggered watch, one async_wait per requested direction. Asio registers the descriptor edge-triggered but
// starts every wait with EPOLL_CTL_MOD, which queues an event if the descriptor is ready
// right then: a wait started after the callback re-checks the level, so no poll() is needed.
// Correct when `io` is run by a single thread (the proxy's model).
class AsioFdWatch final : public FdWatch {
 public:
  AsioFdWatch(asio::io_context& io, int fd, uint32_t events,
              absl::AnyInvocable<void(uint32_t)> on_ready)
      : state_(std::make_shared<State>(io, std::move(on_ready))) {
    boost::system::error_code ec;
    state_->sd.assign(fd, ec);
    state_->assigned = !ec;
    state_->events = events & (kIoRead | kIoWrite);
    Arm(state_);
  }

  ~AsioFdWatch() override {
    state_->dead = true;
    if (state_->assigned) {
      boost::system::error_code ec;
      state_->sd.cancel(ec);
      state_->sd.release();  // deregisters from the reactor; the caller keeps the fd open
    }
  }

  void SetEvents(uint32_t events) override {
    events &= (kIoRead | kIoWrite);
    State& s = *state_;
    if (events == s.events) return;
    const bool dropped = (s.events & ~events) != 0;
    s.events = events;
    if (dropped) {
      // Asio cancels every wait on the descriptor at once: drop both and re-arm what is
      // still wanted. Completions already queued are recognised as stale by generation.
      ++s.generation;
      if (s.assigned && (s.read_wait || s.write_wait)) {
        boost::system::error_code ec;
        s.sd.cancel(ec);
      }
      s.read_wait = s.write_wait = s.error_posted = false;
    }
    Arm(state_);  // only adds: the pending wait, if any, stays
  }

 private:
  struct State {
    State(asio::io_context& io_in, absl::AnyInvocable<void(uint32_t)> cb)
        : io(io_in), on_ready(std::move(cb)), sd(io_in) {}
    asio::io_context& io;
    absl::AnyInvocable<void(uint32_t)> on_ready;
    asio::posix::stream_descriptor sd;
    bool assigned = false;
    bool dead = false;
    uint32_t events = kIoNone;
    uint64_t generation = 0;
    bool read_wait = false;     // an async_wait(wait_read) of this generation is pending
    bool write_wait = false;
    bool error_posted = false;  // unwatchable descriptor: a kIoError report is queued
  };

  static void Arm(const std::shared_ptr<State>& s) {
    if (s->dead || s->events == kIoNone) return;
    if (!s->assigned) {
      // Not pollable: report the error once per loop turn while the watch wants events.
      if (s->error_posted) return;
      s->error_posted = true;
      asio::post(s->io, [weak = std::weak_ptr<State>(s), gen = s->generation] {
        std::shared_ptr<State> st = weak.lock();
        if (st == nullptr || st->dead || st->generation != gen) return;
        st->error_posted = false;
        if (st->events == kIoNone) return;
        st->on_ready(kIoError);  // may SetEvents() or destroy the watch; `st` is held
        Arm(st);
      });
      return;
    }
    if ((s->events & kIoRead) && !s->read_wait) {
      s->read_wait = true;
      Wait(s, WaitType::wait_read);
    }
    if ((s->events & kIoWrite) && !s->write_wait) {
      s->write_wait = true;
      Wait(s, WaitType::wait_write);
    }
  }

  static void Wait(const std::shared_ptr<State>& s, WaitType type) {
    s->sd.async_wait(type, [weak = std::weak_ptr<State>(s), gen = s->generation,
                            type](const boost::system::error_code& ec) {
      std::shared_ptr<State> st = weak.lock();
      if (st == nullptr || st->dead || st->generation != gen) return;
      const bool read = type == WaitType::wait_read;
      (read ? st->read_wait : st->write_wait) = false;
      if (ec == asio::error::operation_aborted) return;
      uint32_t ready = ec ? static_cast<uint32_t>(kIoError) : (read ? kIoRead : kIoWrite);
      ready &= (st->events | kIoError);
      if (ready != kIoNone) st->on_ready(ready);  // may SetEvents() or destroy the watch
      Arm(st);  // the next wait re-checks the level
    });
  }

  std::shared_ptr<State> state_;
};

class AsioEventLoop final : public EventLoop {
 public:
  explicit AsioEventLoop(asio::io_context& io) : io_(io) {}

  void Post(absl::AnyInvocable<void()> fn) override {
    asio::post(io_, [fn = std::move(fn)]() mutable { fn(); });
  }

  std::unique_ptr<Timer> NewTimer() override { return std::make_unique<AsioTimer>(io_); }

  std::unique_ptr<FdWatch> WatchFd(int fd, uint32_t events,
                                   absl::AnyInvocable<void(uint32_t ready)> on_ready) override {
    return std::make_unique<AsioFdWatch>(io_, fd, events, std::move(on_ready));
  }

 private:
  asio::io_context& io_;
};

}  // namespace

std::unique_ptr<modeenvoy::EventLoop> NewAsioEventLoop(boost::asio::io_context& io) {
  return std::make_unique<AsioEventLoop>(io);
}

}  // namespace modeenvoy::examples
