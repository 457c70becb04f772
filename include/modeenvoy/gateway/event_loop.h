// include/modeenvoy/gateway/event_loop.h: the host's event loop moved to the core component
// (modeenvoy/event_loop.h) so that components other than the gateway (the context store's
// Redis client) run on it too. This header stays for code that includes it here.
#ifndef MODEENVOY_GATEWAY_EVENT_LOOP_H_
#define MODEENVOY_GATEWAY_EVENT_LOOP_H_

#include "modeenvoy/event_loop.h"  // IWYU pragma: export

#endif  // MODEENVOY_GATEWAY_EVENT_LOOP_H_
