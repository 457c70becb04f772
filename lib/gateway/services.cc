// lib/gateway/services.cc
#include "modeenvoy/gateway/services.h"

#include <memory>
#include <random>
#include <string>
#include <utility>

#include "lib/core/mutex.h"

namespace modeenvoy {

Services::Services(ServicesOptions options)
    : clock_(&ClockOrSystem(options.clock)), random_(std::move(options.random)) {
  std::random_device rd;
  random_state_ = (uint64_t{rd()} << 32) ^ rd();
}

Services::~Services() = default;

uint64_t Services::Random() {
  if (random_) return random_();
  uint64_t z;
  {
    core_internal::MutexLock lock(&mu_);
    z = (random_state_ += 0x9e3779b97f4a7c15ULL);  // SplitMix64
  }
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::shared_ptr<void> Services::StateImpl(std::string_view name, std::type_index type,
                                          absl::FunctionRef<std::shared_ptr<void>()> create) {
  {
    core_internal::MutexLock lock(&mu_);
    auto it = states_.find(std::string(name));
    if (it != states_.end()) {
      if (std::shared_ptr<void> live = it->second.state.lock()) {
        return it->second.type == type ? live : nullptr;
      }
    }
  }
  std::shared_ptr<void> made = create();  // user code: outside the lock
  core_internal::MutexLock lock(&mu_);
  Entry& entry = states_[std::string(name)];
  if (std::shared_ptr<void> live = entry.state.lock()) {  // another builder won the race
    return entry.type == type ? live : nullptr;
  }
  entry.type = type;
  entry.state = made;
  // Drop entries whose state died, so the map stays as small as the live set.
  for (auto it = states_.begin(); it != states_.end();) {
    if (it->second.state.expired()) {
      states_.erase(it++);
    } else {
      ++it;
    }
  }
  return made;
}

size_t Services::live_states() const {
  core_internal::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [name, entry] : states_) n += entry.state.expired() ? 0 : 1;
  return n;
}

}  // namespace modeenvoy
