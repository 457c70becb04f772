// examples/proxy/event_loop.h: the EventLoop the proxy's workers give the libcurl client.
//
// examples::NewAsioEventLoop (Post, timers) with a leaner fd watch. The shared watch checks
// readiness with a poll() before every wait and after every wake-up; Asio already re-arms
// each wait with EPOLL_CTL_MOD, which reports a descriptor that is ready at that moment, so
// those two poll() calls per upstream readiness event are redundant. They were a tenth of
// the proxy's system calls.
//   boost::asio::io_context io;
//   auto loop = modeenvoy::proxy::NewProxyEventLoop(io);
//   auto client = modeenvoy::NewCurlUpstreamClient(loop.get(), {});
#ifndef MODEENVOY_EXAMPLES_PROXY_EVENT_LOOP_H_
#define MODEENVOY_EXAMPLES_PROXY_EVENT_LOOP_H_

#include <memory>

#include "modeenvoy/gateway/event_loop.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeenvoy::proxy {

// As examples::NewAsioEventLoop (same threading rules and lifetime: destroy the loop and
// everything it made before `io`, on the loop thread), except for WatchFd():
//   - level-triggered as required: while a requested condition lasts, the callback keeps
//     being called, once per loop turn;
//   - read and write readiness are reported separately (two calls when both hold);
//   - a hang-up or socket error completes the waits as readiness of the requested
//     direction(s): the next read or write returns EOF or the error. kIoError is reported
//     only when the descriptor cannot be watched at all (not pollable, or closed).
std::unique_ptr<EventLoop> NewProxyEventLoop(boost::asio::io_context& io);

}  // namespace modeenvoy::proxy

#endif  // MODEENVOY_EXAMPLES_PROXY_EVENT_LOOP_H_
