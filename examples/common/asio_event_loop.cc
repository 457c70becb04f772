// modeenvoy::EventLoop over boost::asio::io_context (see asio_event_loop.h).
#include "examples/common/asio_event_loop.h"

#include <poll.h>

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

// Current readiness of `fd` for `events`, without blocking.
uint32_t PollReady(int fd, uint32_t events) {
  pollfd p{};
  p.fd = fd;
  p.events = static_cast<short>(((events & kIoRead) ? POLLIN : 0) |
                                ((events & kIoWrite) ? POLLOUT : 0));
  if (::poll(&p, 1, 0) <= 0) return kIoNone;  // EINTR: treated as "not ready", we wait
  uint32_t ready = kIoNone;
  if (p.revents & POLLIN) ready |= kIoRead;
  if (p.revents & POLLOUT) ready |= kIoWrite;
  if (p.revents & (POLLERR | POLLNVAL)) ready |= kIoError;
  if (p.revents & POLLHUP) ready |= (events & kIoRead) ? kIoRead : kIoError;
  return ready;
}

// Level-triggered watch. Asio's reactor is edge-triggered (EPOLLET) and a wait started on
// an already-ready descriptor would not complete, so readiness is always checked with a
// zero-timeout poll() first and async_wait is only used to sleep until the next edge.
// Correct when `io` is run by a single thread (the examples' model).
class AsioFdWatch final : public FdWatch {
 public:
  AsioFdWatch(asio::io_context& io, int fd, uint32_t events,
              absl::AnyInvocable<void(uint32_t)> on_ready)
      : state_(std::make_shared<State>(io, fd, std::move(on_ready))) {
    boost::system::error_code ec;
    state_->sd.assign(fd, ec);
    state_->assigned = !ec;
    state_->events = events & (kIoRead | kIoWrite);
    Arm(state_);
  }

  ~AsioFdWatch() override {
    state_->dead = true;
    ++state_->generation;
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
    s.events = events;
    // Stale completions (from cancel or an earlier dispatch) are ignored by generation.
    ++s.generation;
    if (s.assigned && (s.read_wait || s.write_wait)) {
      boost::system::error_code ec;
      s.sd.cancel(ec);
    }
    s.read_wait = s.write_wait = s.dispatch_posted = false;
    Arm(state_);
  }

 private:
  struct State {
    State(asio::io_context& io, int fd_in, absl::AnyInvocable<void(uint32_t)> cb)
        : io(io), fd(fd_in), on_ready(std::move(cb)), sd(io) {}
    asio::io_context& io;
    int fd;
    absl::AnyInvocable<void(uint32_t)> on_ready;
    asio::posix::stream_descriptor sd;
    bool assigned = false;
    bool dead = false;
    uint32_t events = kIoNone;
    uint64_t generation = 0;
    bool read_wait = false;        // an async_wait(wait_read) of this generation is pending
    bool write_wait = false;
    bool dispatch_posted = false;  // a Dispatch of this generation is queued
  };

  // Makes sure the callback will run once the requested condition holds.
  static void Arm(const std::shared_ptr<State>& s) {
    if (s->dead || s->events == kIoNone || s->dispatch_posted) return;
    uint32_t ready = s->assigned ? PollReady(s->fd, s->events) : kIoError;
    if (ready != kIoNone) {
      s->dispatch_posted = true;
      asio::post(s->io, [weak = std::weak_ptr<State>(s), gen = s->generation] {
        std::shared_ptr<State> st = weak.lock();
        if (st == nullptr || st->dead || st->generation != gen) return;
        st->dispatch_posted = false;
        // Re-checked here: what was ready when queued may have been consumed meanwhile.
        Dispatch(st, st->assigned ? PollReady(st->fd, st->events) : kIoError);
      });
      return;
    }
    if ((s->events & kIoRead) && !s->read_wait) {
      s->read_wait = true;
      Wait(s, asio::posix::stream_descriptor::wait_read);
    }
    if ((s->events & kIoWrite) && !s->write_wait) {
      s->write_wait = true;
      Wait(s, asio::posix::stream_descriptor::wait_write);
    }
  }

  static void Wait(const std::shared_ptr<State>& s, asio::posix::descriptor_base::wait_type type) {
    s->sd.async_wait(type, [weak = std::weak_ptr<State>(s), gen = s->generation,
                            type](const boost::system::error_code& ec) {
      std::shared_ptr<State> st = weak.lock();
      if (st == nullptr || st->dead || st->generation != gen) return;
      (type == asio::posix::stream_descriptor::wait_read ? st->read_wait : st->write_wait) = false;
      if (ec == asio::error::operation_aborted) return;
      uint32_t ready = ec ? static_cast<uint32_t>(kIoError) : PollReady(st->fd, st->events);
      if (ready == kIoNone) {
        Arm(st);  // woken without a lasting condition: sleep again
        return;
      }
      if (st->dispatch_posted) return;  // the other direction already queued a report
      Dispatch(st, ready);
    });
  }

  // Runs the callback with `ready` (restricted to what is still requested), then re-arms.
  static void Dispatch(const std::shared_ptr<State>& s, uint32_t ready) {
    ready &= (s->events | kIoError);
    if (ready != kIoNone) {
      s->on_ready(ready);  // may SetEvents() or destroy the watch; `s` keeps State alive
    }
    Arm(s);
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
