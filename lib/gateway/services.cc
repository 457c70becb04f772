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

class Services::IoWatchImpl final : public IoWatch {
 public:
  IoWatchImpl(Services* services, uint64_t id) : services_(services), id_(id) {}
  ~IoWatchImpl() override { services_->Unwatch(id_); }

 private:
  Services* const services_;
  const uint64_t id_;
};

BackgroundIo Services::CurrentIo() const {
  return attached_.empty() ? BackgroundIo{} : attached_.front().second;
}

void Services::NotifyIo(BackgroundIo before) {
  BackgroundIo now = CurrentIo();
  if (now.loop == before.loop && now.upstream == before.upstream) return;
  for (auto& [id, fn] : watchers_) fn(now);
}

uint64_t Services::AttachIo(BackgroundIo io) {
  core_internal::MutexLock lock(&io_mu_);
  BackgroundIo before = CurrentIo();
  const uint64_t token = ++next_io_id_;
  attached_.emplace_back(token, io);
  NotifyIo(before);
  return token;
}

void Services::DetachIo(uint64_t token) {
  core_internal::MutexLock lock(&io_mu_);
  BackgroundIo before = CurrentIo();
  for (auto it = attached_.begin(); it != attached_.end(); ++it) {
    if (it->first == token) {
      attached_.erase(it);
      break;
    }
  }
  NotifyIo(before);
}

BackgroundIo Services::io() const {
  core_internal::MutexLock lock(&io_mu_);
  return CurrentIo();
}

std::unique_ptr<IoWatch> Services::WatchIo(std::function<void(BackgroundIo)> on_change) {
  core_internal::MutexLock lock(&io_mu_);
  const uint64_t id = ++next_io_id_;
  on_change(CurrentIo());
  watchers_.emplace_back(id, std::move(on_change));
  return std::make_unique<IoWatchImpl>(this, id);
}

void Services::Unwatch(uint64_t id) {
  std::function<void(BackgroundIo)> dropped;  // destroyed outside the lock
  core_internal::MutexLock lock(&io_mu_);
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    if (it->first == id) {
      dropped = std::move(it->second);
      watchers_.erase(it);
      break;
    }
  }
}

}  // namespace modeenvoy
