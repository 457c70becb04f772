// examples/common/asio_event_loop.h: modeenvoy::EventLoop over a Boost.Asio io_context.
//
// The example programs (proxy, emulator) run on one io_context; the library's I/O edges
// (the libcurl multi upstream client) run on the same loop through this adapter:
//   boost::asio::io_context io;
//   std::unique_ptr<modeenvoy::EventLoop> loop = modeenvoy::examples::NewAsioEventLoop(io);
//   auto client = modeenvoy::NewCurlUpstreamClient(loop.get(), {});
//   io.run();
// Only a forward declaration of io_context is needed here: includers do not pull in Asio.
#ifndef MODEENVOY_EXAMPLES_COMMON_ASIO_EVENT_LOOP_H_
#define MODEENVOY_EXAMPLES_COMMON_ASIO_EVENT_LOOP_H_

#include <memory>

#include "modeenvoy/event_loop.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeenvoy::examples {

// Returns an EventLoop whose callbacks run on the threads that run `io` (the examples run
// it on exactly one thread, which is what EventLoop's contract calls "the loop thread").
//   - Post() is asio::post: thread-safe, never inline.
//   - NewTimer(): a steady_timer. Arm() replaces a pending callback, Cancel() drops it, and
//     destroying the timer guarantees the callback never runs afterwards.
//   - WatchFd(): level-triggered readiness on a descriptor the caller keeps owning (never
//     closed by the watch). While requested events stay set and the condition lasts, the
//     callback keeps being called (once per loop turn), as curl_multi_socket_action expects.
//     Read and write readiness are reported separately. A hang-up or socket error completes
//     the requested direction(s) as ready (the next read or write returns EOF or the
//     error); kIoError is reported only for a descriptor that cannot be watched at all.
//     No poll() per wait: every Asio wait starts with EPOLL_CTL_MOD, which reports a
//     descriptor that is ready at that moment.
// The loop and every timer or watch it made must be destroyed before `io`, on the loop
// thread (or while `io` is not running).
std::unique_ptr<modeenvoy::EventLoop> NewAsioEventLoop(boost::asio::io_context& io);

}  // namespace modeenvoy::examples

#endif  // MODEENVOY_EXAMPLES_COMMON_ASIO_EVENT_LOOP_H_
