// Process glue for the example binaries (see process.h).
#include "examples/common/process.h"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>  // before Asio: Boost 1.74 uses std::exchange without including it

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "absl/strings/str_format.h"

namespace modeenvoy::examples {
namespace {

class AsioSignalSubscription final : public SignalSubscription {
 public:
  AsioSignalSubscription(boost::asio::io_context& io, absl::AnyInvocable<void(int)> fn)
      : state_(std::make_shared<State>(io, std::move(fn))) {
    Wait(state_);
  }
  ~AsioSignalSubscription() override {
    boost::system::error_code ec;
    state_->signals.cancel(ec);
    state_->alive = false;
  }

 private:
  struct State {
    State(boost::asio::io_context& io, absl::AnyInvocable<void(int)> f)
        : signals(io, SIGINT, SIGTERM), fn(std::move(f)) {}
    boost::asio::signal_set signals;
    absl::AnyInvocable<void(int)> fn;
    bool alive = true;
  };

  static void Wait(const std::shared_ptr<State>& state) {
    state->signals.async_wait([weak = std::weak_ptr<State>(state)](
                                  const boost::system::error_code& ec, int signo) {
      std::shared_ptr<State> s = weak.lock();
      if (ec || s == nullptr || !s->alive) return;
      s->fn(signo);
      if (s->alive) Wait(s);
    });
  }

  std::shared_ptr<State> state_;
};

}  // namespace

std::unique_ptr<SignalSubscription> OnStopSignals(boost::asio::io_context& io,
                                                  absl::AnyInvocable<void(int)> on_signal) {
  return std::make_unique<AsioSignalSubscription>(io, std::move(on_signal));
}

absl::Status WritePortFile(std::string_view path, uint16_t port) {
  const std::string final_path(path);
  const std::string tmp_path = final_path + ".tmp";
  std::FILE* f = std::fopen(tmp_path.c_str(), "w");
  if (f == nullptr) {
    return absl::UnavailableError(
        absl::StrFormat("port file %s: %s", tmp_path, std::strerror(errno)));
  }
  const bool wrote = std::fprintf(f, "%u\n", static_cast<unsigned>(port)) > 0;
  const bool closed = std::fclose(f) == 0;
  if (!wrote || !closed || std::rename(tmp_path.c_str(), final_path.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrFormat("port file %s: %s", final_path, std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace modeenvoy::examples
