// lib/router/gateway/probes.cc: the active health probes of the "router" policy (probes.h).
#include "lib/router/gateway/probes.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::router_gateway_internal {
namespace {

// "scheme://host[:port]" of an absolute URL.
std::string Origin(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  size_t path = url.find('/', scheme + 3);
  return std::string(url.substr(0, path));
}

// The probe request of `target`, built by its dialect as a real call is.
absl::Status BuildProbe(const ProbeTarget& target, absl::Duration timeout, UpstreamRequest* out) {
  ChatRequest chat;
  chat.model = target.upstream_model;
  Message m;
  m.role = Role::kUser;
  m.content = std::string("ping");
  chat.messages.push_back(std::move(m));
  chat.max_tokens = 1;
  out->timeouts = target.timeouts;
  out->timeouts.first_byte = timeout;
  out->timeouts.total = timeout;
  MODEENVOY_RETURN_IF_ERROR(target.dialect->BuildRequest(
      chat, ProviderCall{.stream = false, .upstream_model = target.upstream_model}, out));
  if (target.get) {
    out->method = "GET";
    out->url = Origin(out->url) + target.path;
    out->body.clear();
    out->headers.erase(std::remove_if(out->headers.begin(), out->headers.end(),
                                      [](const std::pair<std::string, std::string>& h) {
                                        return absl::EqualsIgnoreCase(core_internal::ToAbsl(h.first), "content-type");
                                      }),
                       out->headers.end());
  }
  return target.dialect->Sign(out);
}

}  // namespace

class ProbeRunner::Core final : public std::enable_shared_from_this<Core> {
 public:
  Core(Router* router, Services* services) : router_(router), services_(services) {}

  // Services::WatchIo's callback (under the services' I/O lock).
  void OnIo(BackgroundIo io) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (io.loop == io_.loop && io.upstream == io_.upstream) return;
    TeardownLocked(/*post=*/false);  // on the detaching loop's thread (services.h)
    io_ = io;
    const uint64_t epoch = ++epoch_;
    if (io_.loop == nullptr) return;
    // Jittered start: many processes (or routers) starting together do not probe together.
    absl::Duration bound = absl::ZeroDuration();
    if (targets_ != nullptr) {
      for (const auto& [id, t] : *targets_) bound = std::max(bound, t.jitter);
    }
    const double u = bound > absl::ZeroDuration()
                         ? static_cast<double>(services_->Random() >> 11) * 0x1.0p-53
                         : 0.0;
    io_.loop->Post([weak = weak_from_this(), epoch, delay = bound * u] {
      if (std::shared_ptr<Core> core = weak.lock()) core->Begin(epoch, delay);
    });
  }

  void SetTargets(std::shared_ptr<const ProbeTable> targets) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    targets_ = std::move(targets);
    if (io_.loop == nullptr) return;
    io_.loop->Post([weak = weak_from_this(), epoch = epoch_] {
      if (std::shared_ptr<Core> core = weak.lock()) core->Schedule(epoch);
    });
  }

  std::optional<ProbeRecord> Record(std::string_view id) const ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (targets_ == nullptr || !targets_->contains(core_internal::ToAbsl(id))) {
      return std::nullopt;
    }
    auto it = records_.find(core_internal::ToAbsl(id));
    return it == records_.end() ? ProbeRecord{} : it->second;
  }

  // The runner is going away: its loop objects are destroyed on the loop.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    ++epoch_;
    TeardownLocked(/*post=*/true);
    io_ = {};
  }

 private:
  class Probe;

  void Begin(uint64_t epoch, absl::Duration delay) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (epoch != epoch_ || io_.loop == nullptr) return;
    timer_ = io_.loop->NewTimer();
    timer_->Arm(delay, [weak = weak_from_this(), epoch] {
      if (std::shared_ptr<Core> core = weak.lock()) core->Schedule(epoch);
    });
  }

  // Sends the probes due now and arms the timer for the next. Loop thread.
  void Schedule(uint64_t epoch) ABSL_LOCKS_EXCLUDED(mu_) {
    core_internal::MutexLock lock(&mu_);
    if (epoch != epoch_ || io_.loop == nullptr || timer_ == nullptr) return;
    const absl::Time now = services_->clock().MonotonicNow();
    for (const HealthProbe& probe : router_->DueProbes(now)) StartLocked(probe, now);
    ArmLocked(now);
  }

  void ArmLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (timer_ == nullptr) return;
    const absl::Time next = router_->NextProbeDue();
    if (next == absl::InfiniteFuture()) {
      timer_->Cancel();
      return;
    }
    const absl::Duration delay =
        next == absl::InfinitePast() ? absl::ZeroDuration() : std::max(absl::ZeroDuration(), next - now);
    timer_->Arm(delay, [weak = weak_from_this(), epoch = epoch_] {
      if (std::shared_ptr<Core> core = weak.lock()) core->Schedule(epoch);
    });
  }

  void StartLocked(const HealthProbe& hp, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Finish(uint64_t epoch, const std::string& id, bool ok, std::string error)
      ABSL_LOCKS_EXCLUDED(mu_);
  void RecordLocked(const std::string& id, bool ok, std::string error, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ProbeRecord& r = records_[id];
    ++r.sent;
    r.last_at = now;
    r.last_ok = ok;
    r.last_error = std::move(error);
  }

  // Drops the timer and the probes in flight (abandoned in the router). `post`: destroy
  // them on the loop (the caller may be on another thread), else here.
  void TeardownLocked(bool post) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Router* const router_;
  Services* const services_;
  mutable absl::Mutex mu_;
  BackgroundIo io_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;  // +1 per I/O change: stale callbacks do nothing
  std::shared_ptr<const ProbeTable> targets_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Timer> timer_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Probe>> in_flight_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ProbeRecord> records_ ABSL_GUARDED_BY(mu_);
};

// One probe in flight: its upstream call and its timeout.
class ProbeRunner::Core::Probe final : public UpstreamHandler {
 public:
  Probe(std::weak_ptr<Core> core, uint64_t epoch, std::string id)
      : core_(std::move(core)), epoch_(epoch), id_(std::move(id)) {}

  void OnHeaders(int status, const HttpHeaders&) override { status_ = status; }
  void OnData(std::string_view) override {}
  void OnComplete(absl::Status status) override {
    if (!status.ok()) {
      Done(false, std::string(status.message()));
    } else if (status_ < 200 || status_ >= 300) {
      Done(false, absl::StrFormat("HTTP %d", status_));
    } else {
      Done(true, "");
    }
  }
  void TimedOut(absl::Duration timeout) {
    call.reset();
    Done(false, absl::StrFormat("probe timeout after %dms", absl::ToInt64Milliseconds(timeout)));
  }

  std::unique_ptr<Timer> timeout_timer;
  std::unique_ptr<UpstreamCall> call;  // last: destroyed (cancelled) first

 private:
  void Done(bool ok, std::string error) {
    if (done_) return;
    done_ = true;
    if (std::shared_ptr<Core> core = core_.lock()) core->Finish(epoch_, id_, ok, std::move(error));
  }

  std::weak_ptr<Core> core_;
  const uint64_t epoch_;
  const std::string id_;
  int status_ = 0;
  bool done_ = false;
};

void ProbeRunner::Core::StartLocked(const HealthProbe& hp, absl::Time now) {
  const ProbeTarget* target = nullptr;
  if (targets_ != nullptr) {
    auto it = targets_->find(hp.deployment_id);
    if (it != targets_->end()) target = &it->second;
  }
  if (target == nullptr) {
    // Configured in the router but not (yet) in the targets: try again an interval later.
    (void)router_->AbandonProbe(hp.deployment_id);
    return;
  }
  UpstreamRequest request;
  if (absl::Status built = BuildProbe(*target, hp.check.timeout, &request); !built.ok()) {
    RecordLocked(hp.deployment_id, false,
                 absl::StrFormat("provider \"%s\" cannot build the probe: %s", target->provider,
                                 built.message()),
                 now);
    (void)router_->ReportProbe(hp.deployment_id, false);
    return;
  }
  auto probe = std::make_unique<Probe>(weak_from_this(), epoch_, hp.deployment_id);
  Probe* raw = probe.get();
  probe->timeout_timer = io_.loop->NewTimer();
  probe->timeout_timer->Arm(hp.check.timeout,
                            [raw, timeout = hp.check.timeout] { raw->TimedOut(timeout); });
  probe->call = io_.upstream->Start(std::move(request), raw);
  in_flight_[hp.deployment_id] = std::move(probe);
}

void ProbeRunner::Core::Finish(uint64_t epoch, const std::string& id, bool ok,
                               std::string error) {
  core_internal::MutexLock lock(&mu_);
  if (epoch != epoch_) return;
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  // The probe is inside one of its own callbacks: destroyed on a later loop iteration.
  io_.loop->Post([done = std::move(it->second)] {});
  in_flight_.erase(it);
  const absl::Time now = services_->clock().MonotonicNow();
  RecordLocked(id, ok, std::move(error), now);
  (void)router_->ReportProbe(id, ok);  // kNotFound: a reload removed the deployment
  ArmLocked(now);
}

void ProbeRunner::Core::TeardownLocked(bool post) {
  for (auto& [id, probe] : in_flight_) (void)router_->AbandonProbe(id);
  if (post && io_.loop != nullptr && (timer_ != nullptr || !in_flight_.empty())) {
    io_.loop->Post([timer = std::move(timer_), probes = std::move(in_flight_)] {});
  }
  timer_.reset();
  in_flight_.clear();
}

ProbeRunner::ProbeRunner(Router* router, Services* services)
    : core_(std::make_shared<Core>(router, services)) {
  watch_ = services->WatchIo([core = core_.get()](BackgroundIo io) { core->OnIo(io); });
}

ProbeRunner::~ProbeRunner() {
  watch_.reset();  // no OnIo after this
  core_->Shutdown();
}

void ProbeRunner::SetTargets(std::shared_ptr<const ProbeTable> targets) {
  core_->SetTargets(std::move(targets));
}

std::optional<ProbeRecord> ProbeRunner::Record(std::string_view id) const {
  return core_->Record(id);
}

}  // namespace modeenvoy::router_gateway_internal
