// lib/gateway/filter.cc: FilterChain, FilterRegistry and small filter helpers.
#include "modeenvoy/gateway/filter.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/builtin_filters.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/error.h"

namespace modeenvoy {

using core_internal::ToAbsl;

namespace {

constexpr std::string_view kErrorHeadersUrl = "modeenvoy.dev/error-headers";

// Header lists travel in a status payload as "name\0value\0..." pairs.
std::string EncodeHeaders(const HttpHeaders& headers) {
  std::string out;
  for (const auto& [name, value] : headers) {
    out.append(name);
    out.push_back('\0');
    out.append(value);
    out.push_back('\0');
  }
  return out;
}

}  // namespace

absl::Status RequestContext::CheckModelAccess(std::string_view model) const {
  if (model_scope == nullptr || model_scope->models.contains(core_internal::ToAbsl(model))) {
    return absl::OkStatus();
  }
  return WithErrorCode(absl::PermissionDeniedError(absl::StrFormat(
                           "%s is not allowed to use model \"%s\".", model_scope->principal,
                           model)),
                       "model_not_allowed");
}

absl::Status WithErrorHeaders(absl::Status status, const HttpHeaders& headers) {
  if (status.ok()) return status;
  HttpHeaders valid;
  for (const auto& h : headers) {
    if (IsValidHeaderName(h.first) && IsValidHeaderValue(h.second)) valid.push_back(h);
  }
  status.SetPayload(ToAbsl(kErrorHeadersUrl), absl::Cord(EncodeHeaders(valid)));
  return status;
}

HttpHeaders ErrorHeaders(const absl::Status& status) {
  HttpHeaders out;
  absl::optional<absl::Cord> payload = status.GetPayload(ToAbsl(kErrorHeadersUrl));
  if (!payload.has_value()) return out;
  std::string flat(*payload);
  std::string_view rest = flat;
  while (!rest.empty()) {
    size_t a = rest.find('\0');
    if (a == std::string_view::npos) break;
    size_t b = rest.find('\0', a + 1);
    if (b == std::string_view::npos) break;
    out.emplace_back(std::string(rest.substr(0, a)), std::string(rest.substr(a + 1, b - a - 1)));
    rest.remove_prefix(b + 1);
  }
  return out;
}

LocalReply LocalReplyForError(const absl::Status& status) {
  LocalReply reply;
  reply.status = HttpStatusForStatus(status);
  reply.headers.emplace_back("content-type", "application/json");
  for (auto& h : ErrorHeaders(status)) reply.headers.push_back(std::move(h));
  reply.body = OpenAiErrorBody(status);
  return reply;
}

bool ApplyHeaderMutation(const HeaderMutation& mutation, HttpHeaders* headers) {
  if (!IsValidHeaderName(mutation.name) ||
      (mutation.op != HeaderMutation::Op::kRemove && !IsValidHeaderValue(mutation.value))) {
    return false;
  }
  auto same_name = [&](const std::pair<std::string, std::string>& h) {
    return absl::EqualsIgnoreCase(ToAbsl(h.first), ToAbsl(mutation.name));
  };
  switch (mutation.op) {
    case HeaderMutation::Op::kSet: {
      auto first = std::find_if(headers->begin(), headers->end(), same_name);
      if (first == headers->end()) {
        headers->emplace_back(mutation.name, mutation.value);
        return true;
      }
      // Keep the position of the first occurrence, drop the rest.
      first->first = mutation.name;
      first->second = mutation.value;
      headers->erase(std::remove_if(std::next(first), headers->end(), same_name),
                     headers->end());
      return true;
    }
    case HeaderMutation::Op::kAdd:
      headers->emplace_back(mutation.name, mutation.value);
      return true;
    case HeaderMutation::Op::kRemove:
      headers->erase(std::remove_if(headers->begin(), headers->end(), same_name),
                     headers->end());
      return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// FilterRegistry

FilterRegistry::FilterRegistry(bool with_builtins) : NamedRegistry("filter type") {
  if (with_builtins) gateway_internal::RegisterBuiltinFilters(this);
}

absl::StatusOr<std::unique_ptr<FilterFactory>> FilterRegistry::Build(
    std::string_view config_json, const BuildContext& context) const {
  std::optional<FilterFactoryBuilder> builder = Find(context.type);
  if (!builder.has_value()) {
    return absl::NotFoundError(absl::StrFormat("unknown filter type \"%s\"", context.type));
  }
  absl::StatusOr<std::unique_ptr<FilterFactory>> factory = (*builder)(config_json, context);
  if (factory.ok() && *factory == nullptr) {
    return absl::InternalError(
        absl::StrFormat("filter type \"%s\": builder returned no factory", context.type));
  }
  return factory;
}

// ---------------------------------------------------------------------------------------
// FilterChain

class FilterChain::Callbacks final : public FilterCallbacks {
 public:
  Callbacks(FilterChain* chain, size_t index) : chain_(chain), index_(index) {}

  void Continue() override { Resume(std::nullopt); }
  void SendLocalReply(LocalReply reply) override { Resume(std::move(reply)); }
  EventLoop& event_loop() override { return *chain_->env_.loop; }
  UpstreamClient& upstream() override { return *chain_->env_.upstream; }
  Services& services() override { return *chain_->env_.services; }

 private:
  void Resume(std::optional<LocalReply> reply) {
    if (chain_->response_done_ != nullptr) {
      chain_->OnResponseResume(index_, std::move(reply));
    } else {
      chain_->OnResume(index_, std::move(reply));
    }
  }
  FilterChain* const chain_;
  const size_t index_;
};

FilterChain::FilterChain(std::vector<std::unique_ptr<Filter>> filters, RequestContext* ctx,
                         Environment env)
    : filters_(std::move(filters)), ctx_(ctx), env_(env), broken_(filters_.size(), false) {
  callbacks_.reserve(filters_.size());
  for (size_t i = 0; i < filters_.size(); ++i) callbacks_.emplace_back(this, i);
}

FilterChain::~FilterChain() { Destroy(); }

bool FilterChain::paused() const {
  return state_ == State::kPaused || state_ == State::kResuming;
}

void FilterChain::NoteException(const char* what) {
  if (failed_.ok()) {
    failed_ = absl::InternalError(absl::StrFormat("a filter failed: %s", what));
  }
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
    std::optional<FilterResult> result;
    try {
      result.emplace(filters_[i]->OnRequest(*ctx_, callbacks_[i]));
    } catch (const std::exception& e) {
      NoteException(e.what());
    } catch (...) {
      NoteException("unknown exception");
    }
    if (state_ == State::kDestroyed) return;  // destroyed from inside the filter
    if (!result.has_value()) {
      broken_[i] = true;
      Finish(LocalReplyForError(failed_));
      return;
    }
    if (result->is_continue()) {
      continued_ = i + 1;
      continue;
    }
    if (result->is_reply()) {
      Finish(std::move(result->reply()));
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
  if (resume_timer_ == nullptr) resume_timer_ = env_.loop->NewTimer();
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

void FilterChain::AbortRequest(LocalReply reply) {
  if (state_ != State::kPaused && state_ != State::kResuming) return;
  if (resume_timer_ != nullptr) resume_timer_->Cancel();
  Finish(std::move(reply));
}

void FilterChain::Finish(std::optional<LocalReply> reply) {
  state_ = State::kDone;
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(reply));  // may destroy the chain: touch nothing afterwards
}

void FilterChain::RunResponseHeaders(ResponseHead& head, absl::AnyInvocable<void()> done) {
  head_ = &head;
  StartResponse(Step::kHeaders, std::move(done));
}

void FilterChain::RunResponseBody(ResponseHead& head, std::string& body,
                                  absl::AnyInvocable<void()> done) {
  head_ = &head;
  body_ = &body;
  StartResponse(Step::kBody, std::move(done));
}

void FilterChain::RunResponseEvents(std::vector<SseEvent>& events,
                                    absl::AnyInvocable<void()> done) {
  events_ = &events;
  StartResponse(Step::kEvents, std::move(done));
}

void FilterChain::RunResponseComplete(const ResponseOutcome& outcome,
                                      absl::AnyInvocable<void()> done) {
  outcome_ = &outcome;
  StartResponse(Step::kComplete, std::move(done));
}

void FilterChain::RunResponseCompleteNow(const ResponseOutcome& outcome) {
  if (state_ == State::kDestroyed) return;
  outcome_ = &outcome;
  step_ = Step::kComplete;
  for (size_t i = continued_; i-- > 0;) {
    if (!broken_[i]) (void)CallResponse(i);
  }
  outcome_ = nullptr;
}

std::optional<LocalReply> FilterChain::TakeResponseReply() {
  std::optional<LocalReply> r = std::move(response_reply_);
  response_reply_.reset();
  return r;
}

void FilterChain::StartResponse(Step step, absl::AnyInvocable<void()> done) {
  if (state_ == State::kDestroyed) return;
  step_ = step;
  response_done_ = std::move(done);
  ResponseFrom(continued_);
}

FilterStatus FilterChain::CallResponse(size_t i) {
  try {
    switch (step_) {
      case Step::kHeaders:
        return filters_[i]->OnResponseHeaders(*ctx_, *head_, callbacks_[i]);
      case Step::kBody:
        return filters_[i]->OnResponseBody(*ctx_, *head_, *body_, callbacks_[i]);
      case Step::kEvents:
        return filters_[i]->OnResponseEvents(*ctx_, *events_, callbacks_[i]);
      case Step::kComplete:
        return filters_[i]->OnResponseComplete(*ctx_, *outcome_, callbacks_[i]);
    }
  } catch (const std::exception& e) {
    NoteException(e.what());
    broken_[i] = true;
  } catch (...) {
    NoteException("unknown exception");
    broken_[i] = true;
  }
  return FilterStatus::kContinue;
}

// Runs filters end-1 down to 0.
void FilterChain::ResponseFrom(size_t end) {
  for (size_t i = end; i-- > 0;) {
    if (broken_[i]) continue;
    response_index_ = i;
    response_running_ = true;
    response_early_ = false;
    FilterStatus status = CallResponse(i);
    response_running_ = false;
    if (state_ == State::kDestroyed) return;
    if (status == FilterStatus::kContinue) continue;
    response_paused_ = true;
    if (response_early_) {
      response_early_ = false;
      OnResponseResume(i, std::nullopt);
    }
    return;
  }
  auto done = std::move(response_done_);
  response_done_ = nullptr;
  head_ = nullptr;
  body_ = nullptr;
  events_ = nullptr;
  outcome_ = nullptr;
  if (done) done();  // may destroy the chain
}

void FilterChain::OnResponseResume(size_t index, std::optional<LocalReply> reply) {
  if (index != response_index_) return;
  if (reply.has_value() && (step_ == Step::kHeaders || step_ == Step::kBody) &&
      head_ != nullptr && !head_->streaming) {
    // The reply replaces the response for the filters still to run in this step.
    head_->status = reply->status;
    head_->headers = reply->headers;
    if (step_ == Step::kBody && body_ != nullptr) *body_ = reply->body;
    response_reply_ = std::move(reply);
  }
  if (response_running_) {
    response_early_ = true;
    return;
  }
  if (!response_paused_) return;
  response_paused_ = false;
  if (resume_timer_ == nullptr) resume_timer_ = env_.loop->NewTimer();
  resume_timer_->Arm(absl::ZeroDuration(), [this] {
    if (state_ == State::kDestroyed || response_done_ == nullptr) return;
    ResponseFrom(response_index_);
  });
}

void FilterChain::Destroy() {
  if (state_ == State::kDestroyed) return;
  state_ = State::kDestroyed;
  resume_timer_.reset();
  done_ = nullptr;
  response_done_ = nullptr;
  for (auto& filter : filters_) {
    try {
      filter->OnDestroy();
    } catch (...) {
      // Nothing is left to answer; the other filters still get their OnDestroy.
    }
  }
}

}  // namespace modeenvoy
