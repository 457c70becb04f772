// examples/common/process.h: process glue shared by the example binaries (proxy, emulator).
//   boost::asio::io_context io;
//   auto signals = modeenvoy::examples::OnStopSignals(io, [&](int) { server->Stop(); });
//   if (!port_file.empty()) RETURN_IF_ERROR(modeenvoy::examples::WritePortFile(port_file, port));
//   io.run();
// Asio is only forward-declared here.
#ifndef MODEENVOY_EXAMPLES_COMMON_PROCESS_H_
#define MODEENVOY_EXAMPLES_COMMON_PROCESS_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace modeenvoy::examples {

// Keeps a signal subscription alive; destroying it unsubscribes (the callback never runs
// afterwards). Thread safety: thread-hostile; destroy on the loop thread or with `io` stopped.
class SignalSubscription {
 public:
  virtual ~SignalSubscription() = default;
};

// Runs `on_signal(signo)` on `io`'s thread each time SIGINT or SIGTERM arrives, instead of
// the default action (termination). Never null.
std::unique_ptr<SignalSubscription> OnStopSignals(boost::asio::io_context& io,
                                                  absl::AnyInvocable<void(int signo)> on_signal);

// Writes "<port>\n" to `path` atomically (a temporary file renamed over it), so a test that
// polls for the file never reads it half-written.
// Errors: kUnavailable (with the errno text) if the file cannot be written or renamed.
absl::Status WritePortFile(std::string_view path, uint16_t port);

}  // namespace modeenvoy::examples

#endif  // MODEENVOY_EXAMPLES_COMMON_PROCESS_H_
