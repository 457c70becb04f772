// lib/gateway/filter.cc: FilterChain, FilterRegistry and small filter helpers.
#include "modeenvoy/gateway/filter.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/builtin_filters.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {

using core_internal::ToAbsl;

LocalReply LocalReplyForError(const absl::Status& status) {
  LocalReply reply;
  reply.status = HttpStatusForStatus(status);
  reply.headers.emplace_back("content-type", "application/json");
  reply.body = OpenAiErrorBody(status);
  return reply;
}

void ApplyHeaderMutation(const HeaderMutation& mutation, HttpHeaders* headers) {
  auto same_name = [&](const std::pair<std::string, std::string>& h) {
    return absl::EqualsIgnoreCase(ToAbsl(h.first), ToAbsl(mutation.name));
  };
  switch (mutation.op) {
    case HeaderMutation::Op::kSet: {
      auto first = std::find_if(headers->begin(), headers->end(), same_name);
      if (first == headers->end()) {
        headers->emplace_back(mutation.name, mutation.value);
        return;
      }
      // Keep the position of the first occurrence, drop the rest.
      first->first = mutation.name;
      first->second = mutation.value;
      headers->erase(std::remove_if(std::next(first), headers->end(), same_name),
                     headers->end());
      return;
    }
    case HeaderMutation::Op::kAdd:
      headers->emplace_back(mutation.name, mutation.value);
      return;
    case HeaderMutation::Op::kRemove:
      headers->erase(std::remove_if(headers->begin(), headers->end(), same_name),
                     headers->end());
      return;
  }
}

// ---------------------------------------------------------------------------------------
// FilterRegistry

FilterRegistry::FilterRegistry(bool with_builtins) {
  if (with_builtins) gateway_internal::RegisterBuiltinFilters(this);
}

absl::Status FilterRegistry::Register(std::string_view type, FilterFactoryBuilder builder) {
  if (type.empty()) return absl::InvalidArgumentError("filter type must not be empty");
  if (builder == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrFormat("filter type \"%s\": builder must not be null", type));
  }
  core_internal::MutexLock lock(&mu_);
  auto [it, inserted] = builders_.try_emplace(std::string(type), std::move(builder));
  if (!inserted) {
    return absl::AlreadyExistsError(
        absl::StrFormat("filter type \"%s\" is already registered", type));
  }
  return absl::OkStatus();
}

bool FilterRegistry::Contains(std::string_view type) const {
  core_internal::MutexLock lock(&mu_);
  return builders_.contains(std::string(type));
}

std::vector<std::string> FilterRegistry::types() const {
  std::vector<std::string> out;
  {
    core_internal::MutexLock lock(&mu_);
    out.reserve(builders_.size());
    for (const auto& [type, builder] : builders_) out.push_back(type);
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<std::unique_ptr<FilterFactory>> FilterRegistry::Build(
    std::string_view config_json, const FilterBuildContext& context) const {
  FilterFactoryBuilder builder;
  {
    core_internal::MutexLock lock(&mu_);
    auto it = builders_.find(std::string(context.type));
    if (it == builders_.end()) {
      return absl::NotFoundError(
          absl::StrFormat("unknown filter type \"%s\"", context.type));
    }
    builder = it->second;  // copied so the builder runs without the lock
  }
  absl::StatusOr<std::unique_ptr<FilterFactory>> factory = builder(config_json, context);
  if (factory.ok() && *factory == nullptr) {
    return absl::InternalError(
        absl::StrFormat("filter type \"%s\": builder returned no factory", context.type));
  }
  return factory;
}

const FilterRegistry& BuiltinFilterRegistry() {
  static const FilterRegistry* const registry = new FilterRegistry(/*with_builtins=*/true);
  return *registry;
}

// ---------------------------------------------------------------------------------------
// FilterChain

class FilterChain::Callbacks final : public FilterCallbacks {
 public:
  Callbacks(FilterChain* chain, size_t index) : chain_(chain), index_(index) {}

  void Continue() override { chain_->OnResume(index_, std::nullopt); }
  void SendLocalReply(LocalReply reply) override {
    chain_->OnResume(index_, std::move(reply));
  }
  EventLoop& event_loop() override { return *chain_->loop_; }

 private:
  FilterChain* const chain_;
  const size_t index_;
};

FilterChain::FilterChain(std::vector<std::unique_ptr<Filter>> filters, RequestContext* ctx,
                         EventLoop* loop)
    : filters_(std::move(filters)), ctx_(ctx), loop_(loop) {
  callbacks_.reserve(filters_.size());
  for (size_t i = 0; i < filters_.size(); ++i) callbacks_.emplace_back(this, i);
}

FilterChain::~FilterChain() { Destroy(); }

bool FilterChain::paused() const {
  return state_ == State::kPaused || state_ == State::kResuming;
}

void FilterChain::RunRequest(absl::AnyInvocable<void(std::optional<LocalReply>)> done) {
  if (state_ != State::kIdle) return;
  done_ = std::move(done);
  RunFrom(0);
}

void FilterChain::RunFrom(size_t index) {
  for (size_t i = index; i < filters_.size(); ++i) {
    state_ = State::kRunning;
    current_ = i;
    early_.reset();
    FilterResult result = filters_[i]->OnRequest(*ctx_, callbacks_[i]);
    if (state_ == State::kDestroyed) return;  // destroyed from inside the filter
    if (result.is_continue()) {
      continued_ = i + 1;
      continue;
    }
    if (result.is_reply()) {
      Finish(std::move(result.reply()));
      return;
    }
    // Paused. A Continue()/SendLocalReply() made before OnRequest returned still resumes
    // asynchronously, like one made later.
    state_ = State::kPaused;
    if (early_.has_value()) {
      std::optional<LocalReply> action = std::move(*early_);
      early_.reset();
      ScheduleResume(std::move(action));
    }
    return;
  }
  continued_ = filters_.size();
  Finish(std::nullopt);
}

void FilterChain::OnResume(size_t index, std::optional<LocalReply> reply) {
  if (index != current_) return;
  if (state_ == State::kRunning) {
    if (!early_.has_value()) early_.emplace(std::move(reply));
    return;
  }
  if (state_ != State::kPaused) return;
  ScheduleResume(std::move(reply));
}

void FilterChain::ScheduleResume(std::optional<LocalReply> reply) {
  state_ = State::kResuming;
  if (resume_timer_ == nullptr) resume_timer_ = loop_->NewTimer();
  resume_timer_->Arm(absl::ZeroDuration(), [this, reply = std::move(reply)]() mutable {
    if (state_ != State::kResuming) return;
    if (reply.has_value()) {
      Finish(std::move(reply));
      return;
    }
    continued_ = current_ + 1;
    RunFrom(current_ + 1);
  });
}

void FilterChain::Finish(std::optional<LocalReply> reply) {
  state_ = State::kDone;
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(reply));  // may destroy the chain: touch nothing afterwards
}

void FilterChain::RunResponseHeaders(ResponseHead& head) {
  for (size_t i = continued_; i-- > 0;) filters_[i]->OnResponseHeaders(*ctx_, head);
}

void FilterChain::RunResponseBody(std::string& body) {
  for (size_t i = continued_; i-- > 0;) filters_[i]->OnResponseBody(*ctx_, body);
}

void FilterChain::RunResponseEvents(std::vector<SseEvent>& events) {
  for (size_t i = continued_; i-- > 0;) filters_[i]->OnResponseEvents(*ctx_, events);
}

void FilterChain::Destroy() {
  if (state_ == State::kDestroyed) return;
  state_ = State::kDestroyed;
  resume_timer_.reset();
  done_ = nullptr;
  for (auto& filter : filters_) filter->OnDestroy();
}

}  // namespace modeenvoy
