// include/modeenvoy/gateway/filter_hooks.h: a filter's declaration of the response hooks it
// implements, so the engine can skip the work behind hooks nobody has (as Envoy's filters
// are decoder, encoder or both: a filter that only edits headers has no per-event or
// end-of-response work).
//   class AddHeader final : public modeenvoy::Filter, public modeenvoy::DeclaresResponseHooks {
//    public:
//     modeenvoy::FilterStatus OnResponseHeaders(modeenvoy::RequestContext&,
//                                               modeenvoy::ResponseHead& head,
//                                               modeenvoy::FilterCallbacks&) override {
//       head.headers.emplace_back("x-gw", "1");
//       return modeenvoy::FilterStatus::kContinue;
//     }
//     uint32_t response_hooks() const override { return modeenvoy::kResponseHeadersHook; }
//   };
#ifndef MODEENVOY_GATEWAY_FILTER_HOOKS_H_
#define MODEENVOY_GATEWAY_FILTER_HOOKS_H_

#include <cstdint>

#include "modeenvoy/export.h"
#include "modeenvoy/gateway/filter.h"

namespace modeenvoy {

// The response hooks of a Filter (filter.h), as bits.
enum ResponseHook : uint32_t {
  kResponseHeadersHook = 1u << 0,   // OnResponseHeaders
  kResponseBodyHook = 1u << 1,      // OnResponseBody
  kResponseEventsHook = 1u << 2,    // OnResponseEvents
  kResponseCompleteHook = 1u << 3,  // OnResponseComplete
  kAllResponseHooks = (1u << 4) - 1,
};

// A Filter that also derives from this declares which response hooks it implements. The
// engine skips the work behind a hook that no filter of the request's chain declares (a
// filter that does not derive from this declares all of them): without kResponseEventsHook
// a stream's events go from the provider's translator to the client with no filter step;
// without kResponseCompleteHook the outcome's usage is not gathered and a response's final
// bytes are not held back; without kResponseHeadersHook / kResponseBodyHook those steps are
// not run. A hook that another filter of the chain declares may still be called on this
// one, so an undeclared hook must keep the default (do nothing, continue).
// Thread safety: response_hooks() is called on the request's loop thread, once per request
// before its request phase; it must not throw.
class MODEENVOY_EXPORT DeclaresResponseHooks {
 public:
  virtual ~DeclaresResponseHooks() = default;
  // ResponseHook bits.
  virtual uint32_t response_hooks() const = 0;
};

// The response hooks `filter` declares: its response_hooks() when it derives from
// DeclaresResponseHooks, else kAllResponseHooks.
inline uint32_t ResponseHooksOf(const Filter& filter) {
  const auto* declared = dynamic_cast<const DeclaresResponseHooks*>(&filter);
  return declared != nullptr ? declared->response_hooks() : kAllResponseHooks;
}

}  // namespace modeenvoy

#endif  // MODEENVOY_GATEWAY_FILTER_HOOKS_H_
