// lib/gateway/poll_events.h: the kIo* <-> poll(2) event-mask mapping PollEventLoop and
// SimEventLoop share.
#ifndef MODEENVOY_LIB_GATEWAY_POLL_EVENTS_H_
#define MODEENVOY_LIB_GATEWAY_POLL_EVENTS_H_

#include <poll.h>

#include <cstdint>

#include "modeenvoy/event_loop.h"

namespace modeenvoy {
namespace gateway_internal {

// The poll(2) `events` that wait for the kIoRead/kIoWrite bits of `io`.
inline short ToPollEvents(uint32_t io) {
  short ev = 0;
  if (io & kIoRead) ev |= POLLIN;
  if (io & kIoWrite) ev |= POLLOUT;
  return ev;
}

// The kIo* readiness that poll(2) `revents` report: hang-up reads (as EOF), errors are kIoError.
inline uint32_t FromPollRevents(short revents) {
  uint32_t ready = kIoNone;
  if (revents & (POLLIN | POLLHUP)) ready |= kIoRead;
  if (revents & POLLOUT) ready |= kIoWrite;
  if (revents & (POLLERR | POLLNVAL)) ready |= kIoError;
  return ready;
}

}  // namespace gateway_internal
}  // namespace modeenvoy

#endif  // MODEENVOY_LIB_GATEWAY_POLL_EVENTS_H_
