// lib/gateway/gateway.cc: the engine behind Gateway::Handle.
//
// One GatewayRequest per client request: match the endpoint, run the request phase of the
// filter chain, then either the endpoint's local handler or the model call: plan attempts,
// call providers through their dialects, translate back, relay the response through the
// response phase (each step may pause) and render it in the client's dialect.
// The host may destroy the request from inside any ResponseSink call, so every sink call is
// followed by a liveness check (or is the last thing the method does). Filter, dialect and
// codec code may throw: every entry from the host or the upstream client catches, so no
// exception unwinds into libcurl's C frames or the host.
#include "modeenvoy/gateway/gateway.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "lib/core/status_macros.h"
#include "lib/gateway/embeddings_fanout.h"
#include "lib/gateway/routing_internal.h"
#include "lib/gateway/stream_usage.h"
#include "modeenvoy/gateway/endpoint.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/filter_hooks.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/routing.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/gateway/usage.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/embeddings.h"
#include "modeenvoy/protocol/bad_upstream.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/framing.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

// Appends EncodeSseEvent(event)'s bytes to *out; the usual event (data only, on one line)
// without a string of its own.
void AppendSseEvent(const SseEvent& event, std::string* out) {
  const std::string& data = event.data;
  if (event.event.empty() && !event.id.has_value() && !event.retry.has_value() &&
      std::memchr(data.data(), '\n', data.size()) == nullptr &&
      std::memchr(data.data(), '\r', data.size()) == nullptr) {
    out->append("data: ").append(data).append("\n\n");
    return;
  }
  *out += EncodeSseEvent(event);
}

// What a request needs from its gateway; shared so requests may outlive the gateway.
struct Shared {
  const ConfigStore* config;
  EventLoop* loop;
  UpstreamClient* upstream;
  const Clock* clock;
  std::function<uint64_t()> random;
  GatewayOptions limits;
  size_t active = 0;
  uint64_t buffered = 0;  // upstream bytes held by all requests

  // Draws without a lock: one gateway serves one loop thread. Seeded from the services'
  // generator, so runs with injected randomness stay reproducible.
  uint64_t Draw() {
    if (random) return random();
    if (draw_state == 0) draw_state = config->services().Random() | 1;
    uint64_t z = (draw_state += 0x9e3779b97f4a7c15ULL);  // SplitMix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  uint64_t draw_state = 0;
};

// Headers that never reach the client as received: a hop's framing and connection, plus
// Date (the host writes its own). `stripped`: the hop-by-hop ones are gone already (the
// upstream's headers, untouched by filters), only validity and Date are left to check.
void CleanResponseHeaders(HttpHeaders* headers, bool stripped = false) {
  if (!stripped) StripHopByHopHeaders(headers);
  headers->erase(std::remove_if(headers->begin(), headers->end(),
                                [](const std::pair<std::string, std::string>& h) {
                                  return !IsValidHeaderName(h.first) ||
                                         !IsValidHeaderValue(h.second) ||
                                         (h.first.size() == 4 &&
                                          absl::EqualsIgnoreCase(ToAbsl(h.first), "date"));
                                }),
                 headers->end());
}

// True if a Connection header's value names a header that IsHopByHopHeader does not cover
// ("keep-alive", what servers send, names none).
bool NamesMoreHopByHop(std::string_view connection) {
  for (absl::string_view token : absl::StrSplit(ToAbsl(connection), ',')) {
    token = absl::StripAsciiWhitespace(token);
    if (!token.empty() && !IsHopByHopHeader(core_internal::ToStd(token))) return true;
  }
  return false;
}

// Calls one embeddings request fans out to that run at once (provider.h says 8).
constexpr size_t kEmbeddingsFanOutConcurrency = 8;

absl::Status Overloaded(std::string_view what) {
  return WithErrorHeaders(
      WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                         "The gateway is overloaded (%s); retry shortly.", what)),
                     503),
      {{"retry-after", "1"}});
}

class GatewayRequest final : public ActiveRequest,
                             public UpstreamHandler,
                             public gateway_internal::EmbeddingsFanOutHost {
 public:
  GatewayRequest(std::shared_ptr<Shared> shared, ResponseSink* sink)
      : shared_(std::move(shared)), sink_(sink) {
    ++shared_->active;
  }

  ~GatewayRequest() override {
    // Client gone (or normal end): filters get their last hooks, the upstream call is
    // cancelled.
    if (!finished_ && chain_ != nullptr && response_started_ && !complete_ran_) {
      complete_ran_ = true;
      outcome_.error = absl::CancelledError("the client went away");
      outcome_.attempts = ctx_.attempts;
      TakeStreamUsage();
      chain_->RunResponseCompleteNow(outcome_);
    }
    Release();
  }

  void StartGuarded(HttpRequest request) {
    Guard([&] { Start(std::move(request)); });
  }

  // ActiveRequest
  void OnSinkDrained() override {
    if (finished_ || !sink_blocked_) return;
    sink_blocked_ = false;
    Guard([&] { Pump(); });
  }
  bool done() const override { return finished_; }

  // UpstreamHandler
  void OnHeaders(int status, const HttpHeaders& headers) override {
    Guard([&] { HandleHeaders(status, headers); });
  }
  void OnData(std::string_view chunk) override {
    Guard([&] { HandleData(chunk); });
  }
  void OnComplete(absl::Status status) override {
    Guard([&] { HandleComplete(std::move(status)); });
  }

  // EmbeddingsFanOutHost
  bool OnFanOutBytes(uint64_t bytes, uint64_t total) override {
    bool more = false;
    Guard([&] { more = HandleFanOutBytes(bytes, total); });
    return more;
  }
  void OnFanOutDone(gateway_internal::EmbeddingsFanOutResult result) override {
    Guard([&] { HandleFanOutDone(std::move(result)); });
  }

 private:
  // Runs `fn`, turning an exception from component code into a 500 for this request.
  template <typename F>
  void Guard(F&& fn) {
    std::weak_ptr<bool> life = life_;
    std::string what;
    try {
      fn();
      return;
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    if (life.expired() || finished_) return;
    Fail(absl::InternalError(absl::StrFormat("internal error: %s", what)));
  }

  void Start(HttpRequest request);
  void OnRequestPhaseDone(std::optional<LocalReply> reply);
  // A filter's error reply on a model-call endpoint (OpenAI's error body, as
  // FilterResult::Error writes it) in the endpoint's API dialect: an Anthropic or
  // Responses client gets its own error shape for a 401, 403 or 429 too.
  void ReshapeFilterError(LocalReply* reply) const;
  std::unique_ptr<FilterChain> NewChain(std::vector<std::unique_ptr<Filter>> filters);
  // Runs `chain`'s request phase (the filters', or the endpoint `handler`'s), bounded by
  // request_phase_timeout (504); its outcome goes to OnRequestPhaseDone / OnHandlerDone.
  void RunBounded(FilterChain* chain, bool handler);
  void RunLocalHandler();
  void OnHandlerDone(std::optional<LocalReply> reply);
  void PlanAttempts();
  void NextAttempt();
  // RoutingRequest::make_wake: the wake of this request's plan, callable from any thread.
  std::function<void()> PlanWake();
  // The wake, posted to the loop: a waiting plan is asked again.
  void OnPlanWake();
  // Calls attempt_ (after its delay, when NextAttempt armed the backoff timer).
  void StartAttempt();
  // Reports the end of the attempt whose answer goes to the client (once per attempt).
  void ReportAttemptEnd(const absl::Status& status, int http_status);
  void AttemptFailed(const absl::Status& status, int http_status);
  // Attempt::timeout and Attempt::deadline (routing.h). ArmTryTimer runs when a call starts;
  // the per-try timer stops once the answer is handed to the response phase (a whole body,
  // or a stream's 2xx head). The deadline timer is armed once per request, with its first
  // attempt, and stays armed until the request ends.
  void ArmTryTimer();
  void DisarmTryTimer() {
    if (try_timer_ != nullptr) try_timer_->Cancel();
  }
  void OnTryTimeout();
  void ArmDeadlineTimer();
  void OnDeadline();
  // Hedging (AttemptPlan::Hedge, routing.h): the second attempt of a non-streaming chat
  // call, run by a HedgeLeg next to call_. StartHedge asks the plan when hedge_timer_
  // fires; HedgeDone takes the leg's end: a failure while call_ is still out is reported
  // and dropped, anything else makes the leg the request's attempt (AdoptHedge).
  class HedgeLeg;
  void StartHedge();
  void HedgeDone(absl::Status status);
  void AdoptHedge(absl::Status status);
  // Cancels the attempt that lost (the leg, or call_) and reports it as cancelled.
  void CancelHedge();
  void CancelPrimaryForHedge();
  bool HedgeBuffer(uint64_t bytes);
  void DropHedge();
  void HandleHeaders(int status, const HttpHeaders& headers);
  void HandleData(std::string_view chunk);
  void HandleComplete(absl::Status status);
  // Translates frames_ (and, at the `end`, the translator's last events) into queued unified
  // events, counted against the buffer bound; a translation error goes to *status. Returns
  // false when the bound ended the request.
  bool QueueFrames(absl::Status* status, bool end);
  bool QueueNativeFrames(absl::Status* status, bool end);

  // Sends a complete response through the response phase; `render` runs the client
  // dialect's renderer on the body (unified upstream bodies only). Ends the request.
  void SendWhole(ResponseHead head, std::string body, bool render);
  void AfterHeadersWhole(bool render);
  void AfterBodyWhole(bool render);
  void SendError(const absl::Status& status);
  void SendLocal(LocalReply reply);
  // Starts a streamed response (upstream or local events) through the headers step.
  void StartStream(ResponseHead head);
  // Moves queued unified events through the filters and the renderer to the sink.
  void Pump();
  void AfterEvents(bool terminal);
  // Renders [begin, end) (unified events the filters are done with, or that no filter
  // sees) onto out_, or onto held_ from "[DONE]" (or `terminal`) on.
  void RenderEvents(SseEvent* begin, SseEvent* end, bool terminal);
  void StreamEnded();
  void CompleteAndFinish(bool complete);
  // Ends the request at once: error reply if nothing was sent, else a cut stream.
  void Fail(const absl::Status& status);
  // Sends out_ to the sink. Returns false if the request ended.
  bool Flush();
  // Ends the response; `complete` false cuts it short. The sink call is the last action.
  void Finish(bool complete);
  // Drops the filters and the upstream call and leaves the active count, once.
  void Release();
  bool Buffer(uint64_t bytes);
  void Unbuffer();
  void ArmStepTimer();
  void DisarmStepTimer() {
    if (step_timer_ != nullptr) step_timer_->Cancel();
  }
  // A whole reply's usage into the outcome (a stream's comes from TakeStreamUsage()).
  void ParseUsage(std::string_view json);
  // The model the client asked for (the chat's or the embeddings request's).
  const std::string& RequestedModel() const {
    return chat_.has_value() ? chat_->model : embeddings_->model;
  }
  // A 2xx embeddings body: translated, then CompleteEmbeddings.
  void TranslateEmbeddings(std::string body);
  // The unified embeddings answer: usage counted when the provider reported none, rendered
  // in the encoding the client asked for, and sent.
  void CompleteEmbeddings(EmbeddingsResponse response, int http_status, HttpHeaders headers);
  // The attempt's embeddings as calls of at most `per_call` inputs each, built, header-
  // edited and signed (embeddings_->model is the upstream model during the call).
  absl::StatusOr<std::vector<gateway_internal::EmbeddingsSlice>> BuildEmbeddingsSlices(
      const ProviderCall& call, size_t per_call);
  bool HandleFanOutBytes(uint64_t bytes, uint64_t total);
  void HandleFanOutDone(gateway_internal::EmbeddingsFanOutResult result);
  // A stream's usage (reported, else estimated) into the outcome, for OnResponseComplete.
  void TakeStreamUsage();
  // Filters continued from the request phase (response hooks to run).
  bool HasResponseFilters() const { return chain_ != nullptr && chain_->continued() > 0; }
  // One of them declares a response hook in `hook` (ResponseHooksOf, filter_hooks.h): the
  // engine does the work behind a hook only then (the step itself; for
  // kResponseCompleteHook also the outcome's usage and error).
  bool HasResponseHook(uint32_t hook) const {
    return HasResponseFilters() && (response_hooks_ & hook) != 0;
  }
  // A filter threw during a response step: ends the request as Fail() does (a 500 before
  // the status line, a cut stream after). Returns true if it did.
  bool ChainFailed();

  std::shared_ptr<Shared> shared_;
  ResponseSink* const sink_;
  // Expires when this request is destroyed; checked after sink and chain calls.
  std::shared_ptr<bool> life_ = std::make_shared<bool>(true);

  std::shared_ptr<const ConfigSnapshot> snapshot_;
  const EndpointSpec* endpoint_ = nullptr;
  const IngressCodec* codec_ = nullptr;  // model calls only
  std::shared_ptr<const IngressCodec> request_codec_;  // IngressCodec::ForRequest's, if any
  std::optional<ChatRequest> chat_;
  std::optional<EmbeddingsRequest> embeddings_;  // instead of chat_ on embeddings endpoints
  RequestContext ctx_;
  std::unique_ptr<FilterChain> chain_;
  uint32_t response_hooks_ = 0;  // ResponseHooksOf() over chain_'s filters, or'ed
  std::unique_ptr<FilterChain> handler_;  // a local endpoint's handler
  std::unique_ptr<Timer> phase_timer_;
  std::unique_ptr<Timer> step_timer_;

  // Model call.
  std::unique_ptr<AttemptPlan> plan_;
  std::optional<Attempt> attempt_;
  absl::Status last_error_;
  const ProviderDialect* dialect_ = nullptr;
  Framing framing_ = Framing::kJson;
  absl::Time attempt_start_;
  absl::Duration attempt_first_byte_;  // zero until the attempt's response head arrived
  bool attempt_reported_ = false;
  std::unique_ptr<Timer> backoff_timer_;
  bool plan_waiting_ = false;  // the plan's Wait() asked for a wait (backoff_timer_ armed)
  std::unique_ptr<UpstreamCall> call_;
  std::unique_ptr<gateway_internal::EmbeddingsFanOut> fanout_;  // instead of call_, split
  std::unique_ptr<Timer> hedge_timer_;  // armed for attempt_->hedge_after
  std::unique_ptr<Timer> try_timer_;    // armed for attempt_->timeout (ArmTryTimer)
  std::unique_ptr<Timer> deadline_timer_;  // armed for attempt_->deadline (ArmDeadlineTimer)
  std::unique_ptr<HedgeLeg> hedge_;     // the hedged attempt in flight
  bool hedge_asked_ = false;            // AttemptPlan::Hedge() is asked once per request
  uint64_t hedge_buffered_ = 0;         // the leg's share of shared_->buffered
  // The attempt sends the client's body as is and relays the provider's answer bytes.
  bool native_ = false;
  std::string native_body_;  // a native whole answer, while filters see its translation
  // The request as the codec parsed it, kept when native pass-through is possible: it is
  // taken only while no filter changed the request.
  std::optional<ChatRequest> parsed_chat_;
  int upstream_status_ = 0;
  HttpHeaders upstream_headers_;
  std::string body_;  // non-streaming upstream body
  std::unique_ptr<FrameParser> parser_;
  std::unique_ptr<StreamTranslator> translator_;
  std::unique_ptr<StreamTranslator> renderer_;
  std::vector<StreamFrame> frames_;
  std::vector<SseEvent> translated_;  // the dialect's events of one read
  std::vector<SseEvent> rendered_;    // the client dialect's events of one unified event
  gateway_internal::StreamUsage stream_usage_;  // usage out of the stream, given back once

  // Response.
  ResponseHead head_;
  // head_ holds the upstream's headers, hop-by-hop ones stripped (HandleHeaders); without
  // response filters to change them, the commit only checks validity.
  bool head_stripped_ = false;
  std::string whole_body_;
  // Unified events waiting for the filters: queue_[queue_head_..]. A vector, not a deque,
  // so a whole (non-streamed) response allocates nothing for it.
  std::vector<SseEvent> queue_;
  size_t queue_head_ = 0;
  // Native pass-through (IngressCodec::native_dialect): the provider's own bytes that go
  // to the client in place of rendering queue_[i] (native_queue_[i]; empty for events of
  // no frame of their own), the bytes of frames that produced no event yet, and those of
  // the event the filters are working on.
  std::vector<std::string> native_queue_;
  std::string native_pending_;
  std::string native_batch_;
  std::vector<SseEvent> batch_;  // the event the filters are working on
  std::string out_;              // rendered bytes not yet handed to the sink
  std::string held_;             // terminal bytes released after OnResponseComplete
  ResponseOutcome outcome_;
  uint64_t buffered_ = 0;  // this request's share of shared_->buffered
  bool released_ = false;
  bool finished_ = false;
  bool response_started_ = false;  // the response phase began (headers step ran)
  bool committed_ = false;         // the status line reached the sink
  bool streaming_ = false;
  bool upstream_done_ = false;     // no more events will be queued
  bool terminal_seen_ = false;
  bool pumping_ = false;
  bool waiting_filters_ = false;
  bool complete_ran_ = false;
  bool sink_blocked_ = false;
  bool upstream_paused_ = false;
  bool chain_failure_handled_ = false;  // the chain's exception already shaped the response
  // Response steps are numbered; a step whose callback has not run by the time the chain
  // call returns is waiting for a paused filter (and gets the step timer).
  uint64_t step_started_ = 0;
  uint64_t step_done_ = 0;
};

void GatewayRequest::Start(HttpRequest request) {
  ctx_.clock = shared_->clock;
  snapshot_ = shared_->config->Current();
  if (shared_->limits.max_requests_in_flight != 0 &&
      shared_->active > shared_->limits.max_requests_in_flight) {
    SendError(Overloaded("too many requests in flight"));
    return;
  }
  if (snapshot_ == nullptr) {
    SendError(absl::UnavailableError("the gateway has no configuration loaded"));
    return;
  }
  ctx_.snapshot = snapshot_.get();
  EndpointMatch match = snapshot_->endpoints().Match(request.method, request.path,
                                                        &request.headers);
  if (match.endpoint == nullptr) {
    if (!match.allowed_methods.empty()) {
      std::string allow = absl::StrJoin(match.allowed_methods, ", ");
      SendError(WithErrorHeaders(
          WithHttpStatus(absl::InvalidArgumentError(absl::StrFormat(
                             "Method %s is not allowed for %s (allowed: %s)", request.method,
                             request.path, allow)),
                         405),
          {{"allow", allow}}));
      return;
    }
    SendError(absl::NotFoundError(
        absl::StrFormat("Invalid URL (%s %s)", request.method, request.path)));
    return;
  }
  endpoint_ = match.endpoint;
  ctx_.endpoint = endpoint_;
  ctx_.path_params = std::move(match.params);
  ctx_.request = std::move(request);
  if (endpoint_->model_call != nullptr) {
    codec_ = endpoint_->model_call.get();
    if (codec_->operation() == ModelOperation::kEmbeddings) {
      absl::StatusOr<EmbeddingsRequest> parsed = codec_->ParseEmbeddingsRequest(ctx_.request);
      if (!parsed.ok()) {
        SendError(parsed.status());
        return;
      }
      embeddings_ = std::move(*parsed);
      ctx_.embeddings = &*embeddings_;
    } else {
      absl::StatusOr<ChatRequest> parsed = codec_->ParseRequest(ctx_.request);
      if (!parsed.ok()) {
        SendError(parsed.status());
        return;
      }
      chat_ = std::move(*parsed);
      ctx_.chat = &*chat_;
      request_codec_ = codec_->ForRequest(ctx_.request, *chat_);
      if (request_codec_ != nullptr) codec_ = request_codec_.get();
      if (!codec_->native_dialect().empty()) parsed_chat_ = *chat_;
    }
  }
  std::vector<std::unique_ptr<Filter>> filters = snapshot_->CreateFilters();
  if (endpoint_->filter != nullptr && endpoint_->model_call != nullptr) {
    filters.push_back(endpoint_->filter->CreateFilter());
  }
  for (const std::unique_ptr<Filter>& f : filters) response_hooks_ |= ResponseHooksOf(*f);
  chain_ = NewChain(std::move(filters));
  RunBounded(chain_.get(), /*handler=*/false);
}

std::unique_ptr<FilterChain> GatewayRequest::NewChain(
    std::vector<std::unique_ptr<Filter>> filters) {
  return std::make_unique<FilterChain>(
      std::move(filters), &ctx_,
      FilterChain::Environment{.loop = shared_->loop,
                               .upstream = shared_->upstream,
                               .services = &shared_->config->services()});
}

void GatewayRequest::RunBounded(FilterChain* chain, bool handler) {
  std::weak_ptr<bool> life = life_;
  // Captures stay within AnyInvocable's inline storage: no allocation per request.
  chain->RunRequest([this, handler](std::optional<LocalReply> reply) {
    if (phase_timer_ != nullptr) phase_timer_->Cancel();
    Guard([&] {
      if (handler) {
        OnHandlerDone(std::move(reply));
      } else {
        OnRequestPhaseDone(std::move(reply));
      }
    });
  });
  if (life.expired() || finished_ || !chain->paused()) return;
  // A filter (or the endpoint's handler) holds the request: bound the wait.
  if (phase_timer_ == nullptr) phase_timer_ = shared_->loop->NewTimer();
  phase_timer_->Arm(shared_->limits.request_phase_timeout, [this, chain, handler] {
    Guard([&] {
      std::string what =
          handler ? absl::StrFormat("endpoint \"%s\" did not answer", endpoint_->kind)
                  : std::string("a gateway filter did not finish");
      chain->AbortRequest(LocalReplyForError(WithHttpStatus(
          absl::DeadlineExceededError(
              absl::StrFormat("%s within %s", what,
                              absl::FormatDuration(shared_->limits.request_phase_timeout))),
          504)));
    });
  });
}

void GatewayRequest::OnRequestPhaseDone(std::optional<LocalReply> reply) {
  if (!chain_->failed().ok()) {
    chain_failure_handled_ = true;
    SendError(chain_->failed());
    return;
  }
  if (reply.has_value()) {
    if (codec_ != nullptr && reply->status >= 400) ReshapeFilterError(&*reply);
    SendLocal(std::move(*reply));
    return;
  }
  if (endpoint_->local != nullptr) {
    RunLocalHandler();
    return;
  }
  PlanAttempts();
}

void GatewayRequest::ReshapeFilterError(LocalReply* reply) const {
  // Only a body LocalReplyForError wrote (FilterResult::Error) is an error the engine may
  // restate; a filter that wrote its own body keeps it.
  const absl::Status status = StatusFromUpstreamError(reply->status, reply->body);
  if (OpenAiErrorBody(status) != reply->body) return;
  reply->body = codec_->ErrorBody(status);
}

void GatewayRequest::RunLocalHandler() {
  std::vector<std::unique_ptr<Filter>> one;
  one.push_back(endpoint_->local->CreateFilter());
  handler_ = NewChain(std::move(one));
  RunBounded(handler_.get(), /*handler=*/true);
}

void GatewayRequest::OnHandlerDone(std::optional<LocalReply> reply) {
  if (!handler_->failed().ok()) {
    SendError(handler_->failed());
    return;
  }
  if (!reply.has_value()) {
    SendError(absl::InternalError(
        absl::StrFormat("endpoint \"%s\" did not answer", endpoint_->kind)));
    return;
  }
  SendLocal(std::move(*reply));
}

void GatewayRequest::PlanAttempts() {
  if (ctx_.route.model != nullptr && ctx_.route.provider != nullptr) {
    plan_ = SingleAttemptPlan(ctx_.route.model, ctx_.route.provider);  // a filter decided
  } else {
    RoutingRequest request;
    request.model = RequestedModel();
    request.chat = chat_.has_value() ? &*chat_ : nullptr;
    request.embeddings = embeddings_.has_value() ? &*embeddings_ : nullptr;
    request.headers = &ctx_.request.headers;
    request.metadata = &ctx_.metadata;
    request.draw = shared_->Draw();
    request.make_wake = [this] { return PlanWake(); };  // fits std::function: no allocation
    absl::StatusOr<std::unique_ptr<AttemptPlan>> plan = snapshot_->Plan(request);
    if (!plan.ok()) {
      SendError(plan.status());
      return;
    }
    plan_ = std::move(*plan);
  }
  NextAttempt();
}

std::function<void()> GatewayRequest::PlanWake() {
  // Any thread may wake a waiting plan: post, and touch the request on its loop only, while
  // it lives.
  return [loop = shared_->loop, life = std::weak_ptr<bool>(life_), this] {
    loop->Post([life, this] {
      if (!life.expired()) Guard([&] { OnPlanWake(); });
    });
  };
}

void GatewayRequest::OnPlanWake() {
  if (finished_ || !plan_waiting_) return;
  NextAttempt();
}

void GatewayRequest::NextAttempt() {
  // The plan may wait for capacity first (AttemptPlan::Wait): on the backoff timer, up to
  // the longest wait it allows, or until a wake.
  absl::StatusOr<absl::Duration> wait = plan_->Wait();
  if (plan_waiting_) backoff_timer_->Cancel();  // woken, or its timer fired
  plan_waiting_ = wait.ok() && *wait > absl::ZeroDuration();
  if (!wait.ok()) {
    SendError(wait.status());
    return;
  }
  if (plan_waiting_) {
    if (backoff_timer_ == nullptr) backoff_timer_ = shared_->loop->NewTimer();
    backoff_timer_->Arm(*wait, [this] { Guard([&] { NextAttempt(); }); });
    return;
  }
  attempt_ = plan_->Next();
  if (!attempt_.has_value()) {
    SendError(last_error_.ok() ? WithErrorCode(absl::NotFoundError(absl::StrFormat(
                                                   "The model `%s` has no target to serve it.",
                                                   RequestedModel())),
                                               "model_not_found")
                               : last_error_);
    return;
  }
  attempt_reported_ = false;
  attempt_first_byte_ = absl::ZeroDuration();
  ArmDeadlineTimer();
  if (attempt_->delay > absl::ZeroDuration()) {
    // The policy's backoff: wait on the loop; Release() drops the timer with the request.
    if (backoff_timer_ == nullptr) backoff_timer_ = shared_->loop->NewTimer();
    backoff_timer_->Arm(attempt_->delay, [this] { Guard([&] { StartAttempt(); }); });
    return;
  }
  StartAttempt();
}

void GatewayRequest::StartAttempt() {
  ctx_.route = ResolvedRoute{attempt_->model, attempt_->provider,
                             snapshot_->FindRoute(RequestedModel())};
  ++ctx_.attempts;
  const ProviderConfig& provider = *attempt_->provider;
  dialect_ = provider.dialect.get();
  const bool stream = chat_.has_value() && chat_->stream.value_or(false);
  UpstreamRequest req;
  req.timeouts = provider.timeouts;
  // The upstream reports a stream's usage only for a reader: a filter's outcome, the plan
  // (Attempt::wants_usage), or the client's own stream_options (which the dialect sends
  // regardless).
  const ProviderCall call{
      .stream = stream,
      .upstream_model = attempt_->model->upstream_model,
      .client_headers = &ctx_.request.headers,
      .stream_usage = HasResponseHook(kResponseCompleteHook) || attempt_->wants_usage};
  // Serialize with the provider's model name, then restore the public one filters see.
  absl::Status built;
  native_ = false;
  if (chat_.has_value()) built = codec_->CheckAttempt(*chat_, provider.type);
  if (built.ok() && parsed_chat_.has_value() && *chat_ == *parsed_chat_) {
    absl::StatusOr<bool> native = dialect_->BuildNativeRequest(
        codec_->native_dialect(), ctx_.request.body, call, &req);
    if (native.ok()) {
      native_ = *native;
    } else {
      built = native.status();
    }
  }
  if (native_ || !built.ok()) {
    // Built natively (or failed to): nothing to serialize.
  } else if (chat_.has_value()) {
    std::string public_model = std::move(chat_->model);
    chat_->model = attempt_->model->upstream_model;
    built = dialect_->BuildRequest(*chat_, call, &req);
    chat_->model = std::move(public_model);
  } else {
    std::string public_model = std::move(embeddings_->model);
    embeddings_->model = attempt_->model->upstream_model;
    const size_t per_call = dialect_->MaxEmbeddingInputsPerCall(*embeddings_, call);
    if (per_call != 0 && embeddings_->input_count() > per_call) {
      // More inputs than one call takes: one call per slice, merged (embeddings_fanout.h).
      absl::StatusOr<std::vector<gateway_internal::EmbeddingsSlice>> slices =
          BuildEmbeddingsSlices(call, per_call);
      embeddings_->model = std::move(public_model);
      if (!slices.ok()) {
        AttemptFailed(slices.status(), 0);
        return;
      }
      upstream_status_ = 0;
      upstream_headers_.clear();
      body_.clear();
      attempt_start_ = shared_->clock->MonotonicNow();
      fanout_ = std::make_unique<gateway_internal::EmbeddingsFanOut>(
          shared_->upstream, dialect_, attempt_->model->upstream_model, provider.name,
          std::move(*slices), kEmbeddingsFanOutConcurrency, this);
      ArmTryTimer();
      fanout_->Start();
      return;
    }
    built = dialect_->BuildEmbeddingsRequest(*embeddings_, call, &req);
    embeddings_->model = std::move(public_model);
    if (built.code() == absl::StatusCode::kUnimplemented) {
      // The provider has no embeddings API: say which model and provider, as a 400 (the
      // client asked the wrong model), naming `model`.
      built = WithHttpStatus(
          InvalidFieldError("model", absl::StrFormat(
                                         "The model `%s` (provider \"%s\", type \"%s\") "
                                         "does not serve embeddings (%s)",
                                         RequestedModel(), provider.name, provider.type,
                                         built.message())),
          400);
    }
  }
  if (built.ok()) {
    for (const HeaderMutation& m : ctx_.upstream_header_mutations) {
      ApplyHeaderMutation(m, &req.headers);
    }
    built = dialect_->Sign(&req);
  }
  if (!built.ok()) {
    AttemptFailed(built, 0);
    return;
  }
  framing_ = chat_.has_value() ? dialect_->ResponseFraming(stream) : Framing::kJson;
  upstream_status_ = 0;
  upstream_headers_.clear();
  body_.clear();
  attempt_start_ = shared_->clock->MonotonicNow();
  call_ = shared_->upstream->Start(std::move(req), this);
  ArmTryTimer();
  // Hedged: a whole chat answer or a single embeddings call (a split one has returned above).
  if (!stream && !hedge_asked_ && !attempt_->hedge &&
      attempt_->hedge_after < absl::InfiniteDuration()) {
    if (hedge_timer_ == nullptr) hedge_timer_ = shared_->loop->NewTimer();
    hedge_timer_->Arm(attempt_->hedge_after, [this, index = attempt_->index] {
      Guard([&] {
        if (call_ != nullptr && attempt_.has_value() && attempt_->index == index &&
            !attempt_reported_) {
          StartHedge();
        }
      });
    });
  }
}

absl::StatusOr<std::vector<gateway_internal::EmbeddingsSlice>>
GatewayRequest::BuildEmbeddingsSlices(const ProviderCall& call, size_t per_call) {
  const size_t n = embeddings_->input_count();
  std::vector<gateway_internal::EmbeddingsSlice> slices;
  slices.reserve((n + per_call - 1) / per_call);
  for (size_t begin = 0; begin < n; begin += per_call) {
    gateway_internal::EmbeddingsSlice& s = slices.emplace_back();
    s.slice = gateway_internal::SliceEmbeddingsRequest(*embeddings_, begin,
                                                       std::min(per_call, n - begin));
    s.request.timeouts = attempt_->provider->timeouts;
    MODEENVOY_RETURN_IF_ERROR(dialect_->BuildEmbeddingsRequest(s.slice, call, &s.request));
    for (const HeaderMutation& m : ctx_.upstream_header_mutations) {
      ApplyHeaderMutation(m, &s.request.headers);
    }
    MODEENVOY_RETURN_IF_ERROR(dialect_->Sign(&s.request));
  }
  return slices;
}

bool GatewayRequest::HandleFanOutBytes(uint64_t bytes, uint64_t total) {
  if (total > shared_->limits.max_upstream_body_bytes) {
    fanout_.reset();
    Fail(WithHttpStatus(absl::ResourceExhaustedError(absl::StrFormat(
                            "upstream response body exceeds %d bytes",
                            shared_->limits.max_upstream_body_bytes)),
                        502));
    return false;
  }
  if (!Buffer(bytes)) {  // it failed the request
    fanout_.reset();
    return false;
  }
  return true;
}

void GatewayRequest::HandleFanOutDone(gateway_internal::EmbeddingsFanOutResult result) {
  if (finished_) return;
  fanout_.reset();  // it touches nothing of itself after this call (embeddings_fanout.h)
  if (!result.status.ok()) {
    AttemptFailed(result.status, result.http_status);
    return;
  }
  CompleteEmbeddings(std::move(result.response), result.http_status, std::move(result.headers));
}

void GatewayRequest::AttemptFailed(const absl::Status& status, int http_status) {
  call_.reset();
  fanout_.reset();
  Unbuffer();
  AttemptOutcome outcome;
  outcome.status = status;
  outcome.http_status = http_status;
  outcome.failure = ClassifyFailure(status, http_status);
  // A dialect that cannot express the request may still be replaced by another provider.
  if (http_status == 0 && status.code() == absl::StatusCode::kInvalidArgument) {
    outcome.failure = FailureClass::kClientError;
  }
  outcome.retry_after = RetryAfter(ErrorHeaders(status), shared_->clock->Now());
  outcome.latency = shared_->clock->MonotonicNow() - attempt_start_;
  outcome.first_byte_time = attempt_first_byte_;
  attempt_reported_ = true;
  if (hedge_timer_ != nullptr) hedge_timer_->Cancel();
  DisarmTryTimer();
  plan_->Report(*attempt_, outcome);
  last_error_ = status;
  if (hedge_ != nullptr) return;  // the hedged attempt still out carries the request
  NextAttempt();
}

void GatewayRequest::ReportAttemptEnd(const absl::Status& status, int http_status) {
  if (attempt_reported_ || plan_ == nullptr || !attempt_.has_value()) return;
  attempt_reported_ = true;
  AttemptOutcome outcome;
  outcome.status = status;
  outcome.http_status = http_status;
  outcome.failure = ClassifyFailure(status, status.ok() ? http_status : 0);
  outcome.latency = shared_->clock->MonotonicNow() - attempt_start_;
  outcome.first_byte_time = attempt_first_byte_;
  if (status.ok()) {
    if (stream_usage_.started()) {
      if (attempt_->wants_usage) outcome.usage = stream_usage_.Final(&outcome.usage_estimated);
    } else {
      outcome.usage = outcome_.usage;  // a whole answer's, read by ParseUsage before
      outcome.usage_estimated = outcome_.usage_estimated;
    }
  }
  if (hedge_timer_ != nullptr) hedge_timer_->Cancel();
  DisarmTryTimer();
  plan_->Report(*attempt_, outcome);
  if (hedge_ != nullptr) CancelHedge();  // this attempt's answer goes to the client
}

// The hedged attempt of a non-streaming chat call: collects its whole answer next to the
// first attempt's call_, and hands its end to the request (HedgeDone).
class GatewayRequest::HedgeLeg final : public UpstreamHandler {
 public:
  HedgeLeg(GatewayRequest* host, Attempt attempt, absl::Time start)
      : host(host), attempt(attempt), start(start) {}

  void OnHeaders(int status, const HttpHeaders& h) override {
    host->Guard([&] {
      http_status = status;
      headers = h;
      first_byte = host->shared_->clock->MonotonicNow() - start;
    });
  }
  void OnData(std::string_view chunk) override {
    host->Guard([&] {
      if (body.size() + chunk.size() > host->shared_->limits.max_upstream_body_bytes) {
        call.reset();
        host->HedgeDone(WithHttpStatus(
            absl::ResourceExhaustedError(absl::StrFormat(
                "upstream response body exceeds %d bytes",
                host->shared_->limits.max_upstream_body_bytes)),
            502));
        return;
      }
      if (!host->HedgeBuffer(chunk.size())) return;
      body.append(chunk);
    });
  }
  void OnComplete(absl::Status status) override {
    host->Guard([&] { host->HedgeDone(std::move(status)); });  // may destroy this leg
  }

  GatewayRequest* const host;
  const Attempt attempt;
  const absl::Time start;
  int http_status = 0;
  HttpHeaders headers;
  std::string body;
  absl::Duration first_byte;
  std::unique_ptr<UpstreamCall> call;  // last: destroyed (cancelled) first
};

void GatewayRequest::ArmTryTimer() {
  const absl::Duration timeout = attempt_->timeout;
  // A per-try timeout that does not end before the deadline is the deadline's to enforce:
  // one timer, and the 504 that names the request's timeout.
  if (timeout == absl::InfiniteDuration() ||
      (attempt_->deadline != absl::InfiniteFuture() &&
       attempt_start_ + timeout >= attempt_->deadline)) {
    return;
  }
  if (try_timer_ == nullptr) try_timer_ = shared_->loop->NewTimer();
  try_timer_->Arm(std::max(timeout, absl::ZeroDuration()), [this, index = attempt_->index] {
    Guard([&] {
      if (attempt_.has_value() && attempt_->index == index) OnTryTimeout();
    });
  });
}

void GatewayRequest::OnTryTimeout() {
  // Only while the attempt is out and its answer not yet the client's.
  if (finished_ || attempt_reported_ || streaming_ || response_started_ ||
      (call_ == nullptr && fanout_ == nullptr)) {
    return;
  }
  call_.reset();  // cancels the upstream call
  AttemptFailed(
      WithHttpStatus(absl::DeadlineExceededError(absl::StrFormat(
                         "upstream provider \"%s\" did not answer within the per-try "
                         "timeout (%d ms)",
                         attempt_->provider->name, absl::ToInt64Milliseconds(attempt_->timeout))),
                     504),
      0);
}

void GatewayRequest::ArmDeadlineTimer() {
  if (attempt_->deadline == absl::InfiniteFuture() || deadline_timer_ != nullptr) return;
  deadline_timer_ = shared_->loop->NewTimer();
  deadline_timer_->Arm(
      std::max(attempt_->deadline - shared_->clock->MonotonicNow(), absl::ZeroDuration()),
      [this] { Guard([&] { OnDeadline(); }); });
}

void GatewayRequest::OnDeadline() {
  if (finished_ || !attempt_.has_value()) return;
  // A whole answer already in the response phase, or a stream whose upstream ended: the
  // upstream's part is done (response_step_timeout bounds the filters).
  if ((response_started_ && !streaming_) || upstream_done_) return;
  std::string budget = "the request deadline";
  if (attempt_->request_timeout != absl::InfiniteDuration()) {
    budget = absl::StrFormat("the route's request_timeout_ms (%d ms)",
                             absl::ToInt64Milliseconds(attempt_->request_timeout));
  }
  const std::string& provider = attempt_->provider->name;
  if (streaming_) {
    // After the first byte: the stream ends with an error event, as on an upstream failure.
    call_.reset();
    DisarmTryTimer();
    upstream_done_ = true;
    const absl::Status error = WithHttpStatus(
        absl::DeadlineExceededError(absl::StrFormat(
            "The request for `%s` ran out of time: %s passed while upstream provider \"%s\" "
            "was still streaming.",
            RequestedModel(), budget, provider)),
        504);
    ReportAttemptEnd(error, 0);
    outcome_.error = error;
    Pump();
    return;
  }
  const absl::Status error = WithHttpStatus(
      absl::DeadlineExceededError(absl::StrFormat(
          "The request for `%s` ran out of time: %s passed before upstream provider \"%s\" "
          "answered.",
          RequestedModel(), budget, provider)),
      504);
  // Cancel and report whatever is out (a hedged leg first, then the request's attempt); an
  // attempt still waiting its delay was never called: the plan's destruction releases it.
  if (backoff_timer_ != nullptr) backoff_timer_->Cancel();
  plan_waiting_ = false;  // a late wake must not plan another attempt
  if (hedge_timer_ != nullptr) hedge_timer_->Cancel();
  DisarmTryTimer();
  if (hedge_ != nullptr) {
    std::unique_ptr<HedgeLeg> leg = std::move(hedge_);
    leg->call.reset();
    shared_->buffered -= hedge_buffered_;
    hedge_buffered_ = 0;
    AttemptOutcome outcome;
    outcome.status = error;
    outcome.failure = FailureClass::kTimeout;
    outcome.latency = shared_->clock->MonotonicNow() - leg->start;
    outcome.first_byte_time = leg->first_byte;
    plan_->Report(leg->attempt, outcome);
  }
  if ((call_ != nullptr || fanout_ != nullptr) && !attempt_reported_) {
    call_.reset();
    fanout_.reset();
    Unbuffer();
    attempt_reported_ = true;
    AttemptOutcome outcome;
    outcome.status = error;
    outcome.failure = FailureClass::kTimeout;
    outcome.latency = shared_->clock->MonotonicNow() - attempt_start_;
    outcome.first_byte_time = attempt_first_byte_;
    plan_->Report(*attempt_, outcome);
  }
  SendError(error);
}

void GatewayRequest::StartHedge() {
  hedge_asked_ = true;
  std::optional<Attempt> hedge = plan_->Hedge();
  if (!hedge.has_value()) return;
  // Built through the unified model (never natively), as StartAttempt builds a call.
  const ProviderConfig& provider = *hedge->provider;
  const ProviderDialect* dialect = provider.dialect.get();
  UpstreamRequest req;
  req.timeouts = provider.timeouts;
  const ProviderCall call{.stream = false,
                          .upstream_model = hedge->model->upstream_model,
                          .client_headers = &ctx_.request.headers};
  absl::Status built;
  if (chat_.has_value()) {
    built = codec_->CheckAttempt(*chat_, provider.type);
    if (built.ok()) {
      std::string public_model = std::move(chat_->model);
      chat_->model = hedge->model->upstream_model;
      built = dialect->BuildRequest(*chat_, call, &req);
      chat_->model = std::move(public_model);
    }
  } else {
    std::string public_model = std::move(embeddings_->model);
    embeddings_->model = hedge->model->upstream_model;
    const size_t per_call = dialect->MaxEmbeddingInputsPerCall(*embeddings_, call);
    built = per_call != 0 && embeddings_->input_count() > per_call
                ? absl::FailedPreconditionError(
                      "the hedge's provider takes fewer inputs per call than the request has")
                : dialect->BuildEmbeddingsRequest(*embeddings_, call, &req);
    embeddings_->model = std::move(public_model);
  }
  if (built.ok()) {
    for (const HeaderMutation& m : ctx_.upstream_header_mutations) {
      ApplyHeaderMutation(m, &req.headers);
    }
    built = dialect->Sign(&req);
  }
  if (!built.ok()) {
    // This provider cannot take the request: the hedge failed, the first attempt goes on.
    AttemptOutcome outcome;
    outcome.status = built;
    outcome.failure = FailureClass::kClientError;
    plan_->Report(*hedge, outcome);
    return;
  }
  ++ctx_.attempts;
  hedge_ = std::make_unique<HedgeLeg>(this, *hedge, shared_->clock->MonotonicNow());
  hedge_->call = shared_->upstream->Start(std::move(req), hedge_.get());
}

void GatewayRequest::HedgeDone(absl::Status status) {
  if (finished_ || hedge_ == nullptr) return;
  const bool answered = status.ok() && hedge_->http_status >= 200 && hedge_->http_status < 300;
  if (answered || call_ == nullptr) {
    AdoptHedge(std::move(status));  // the winner, or the request's only attempt left
    return;
  }
  // Failed while the first attempt is still out: reported, dropped; the first goes on.
  std::unique_ptr<HedgeLeg> leg = std::move(hedge_);
  AttemptOutcome outcome;
  if (!status.ok()) {
    outcome.status = status;
  } else {
    outcome.status = leg->attempt.provider->dialect->TranslateError(leg->http_status,
                                                                   leg->headers, leg->body);
    if (outcome.status.ok()) outcome.status = absl::UnknownError("upstream error");
    outcome.http_status = leg->http_status;
  }
  outcome.failure = ClassifyFailure(outcome.status, outcome.http_status);
  outcome.retry_after = RetryAfter(ErrorHeaders(outcome.status), shared_->clock->Now());
  outcome.latency = shared_->clock->MonotonicNow() - leg->start;
  outcome.first_byte_time = leg->first_byte;
  shared_->buffered -= hedge_buffered_;
  hedge_buffered_ = 0;
  plan_->Report(leg->attempt, outcome);
}

void GatewayRequest::AdoptHedge(absl::Status status) {
  std::unique_ptr<HedgeLeg> leg = std::move(hedge_);
  if (call_ != nullptr) CancelPrimaryForHedge();
  attempt_ = leg->attempt;
  attempt_reported_ = false;
  ctx_.route = ResolvedRoute{attempt_->model, attempt_->provider,
                             snapshot_->FindRoute(RequestedModel())};
  dialect_ = attempt_->provider->dialect.get();
  framing_ = Framing::kJson;
  native_ = false;
  attempt_start_ = leg->start;
  buffered_ += hedge_buffered_;
  hedge_buffered_ = 0;
  if (leg->http_status != 0) HandleHeaders(leg->http_status, leg->headers);
  attempt_first_byte_ = leg->first_byte;
  body_ = std::move(leg->body);
  HandleComplete(std::move(status));  // may end (and destroy) this request
}

void GatewayRequest::CancelPrimaryForHedge() {
  call_.reset();
  DisarmTryTimer();
  Unbuffer();
  AttemptOutcome outcome;
  outcome.status = absl::CancelledError("the hedged attempt answered first");
  outcome.cancelled = true;
  outcome.latency = shared_->clock->MonotonicNow() - attempt_start_;
  outcome.first_byte_time = attempt_first_byte_;
  attempt_reported_ = true;
  plan_->Report(*attempt_, outcome);
}

void GatewayRequest::CancelHedge() {
  std::unique_ptr<HedgeLeg> leg = std::move(hedge_);
  leg->call.reset();
  shared_->buffered -= hedge_buffered_;
  hedge_buffered_ = 0;
  AttemptOutcome outcome;
  outcome.status = absl::CancelledError("the first attempt answered first");
  outcome.cancelled = true;
  outcome.latency = shared_->clock->MonotonicNow() - leg->start;
  outcome.first_byte_time = leg->first_byte;
  plan_->Report(leg->attempt, outcome);
}

bool GatewayRequest::HedgeBuffer(uint64_t bytes) {
  if (shared_->buffered + bytes > shared_->limits.max_buffered_upstream_bytes) {
    DropHedge();
    call_.reset();
    Fail(Overloaded("too many upstream bytes buffered"));
    return false;
  }
  shared_->buffered += bytes;
  hedge_buffered_ += bytes;
  return true;
}

void GatewayRequest::DropHedge() {
  hedge_.reset();
  shared_->buffered -= hedge_buffered_;
  hedge_buffered_ = 0;
}

void GatewayRequest::HandleHeaders(int status, const HttpHeaders& headers) {
  upstream_status_ = status;
  attempt_first_byte_ = shared_->clock->MonotonicNow() - attempt_start_;
  // Filters never see one hop's headers; the full check runs once, before the status line.
  // Only forwarded headers are copied, unless a Connection header names more to drop.
  upstream_headers_.clear();
  upstream_headers_.reserve(headers.size());
  bool names_more = false;
  for (const auto& h : headers) {
    if (!IsHopByHopHeader(h.first)) {
      upstream_headers_.push_back(h);
    } else if (h.first.size() == 10 && absl::EqualsIgnoreCase(ToAbsl(h.first), "connection")) {
      names_more = names_more || NamesMoreHopByHop(h.second);
    }
  }
  if (names_more) {
    upstream_headers_ = headers;
    StripHopByHopHeaders(&upstream_headers_);
  }
  if (status < 200 || status >= 300 || framing_ == Framing::kJson) return;  // held whole
  // The stream's answer goes to the client from here on: no other attempt is possible, and
  // the per-try timeout must not cut a long generation (the deadline still bounds it).
  DisarmTryTimer();
  absl::StatusOr<std::unique_ptr<FrameParser>> parser = NewFrameParser(framing_);
  if (!parser.ok()) {
    call_.reset();
    AttemptFailed(parser.status(), 0);
    return;
  }
  parser_ = std::move(*parser);
  translator_ = dialect_->NewStreamTranslator();
  renderer_ = native_ ? nullptr : codec_->NewStreamRenderer();
  stream_usage_.Start(&*chat_, attempt_->model->upstream_model,
                      shared_->limits.usage_estimator.get(),
                      HasResponseHook(kResponseCompleteHook) || attempt_->wants_usage,
                      translator_->KeepsUsagePromise());
  // Content-type and length come from the dialect and the renderer, not the upstream.
  upstream_headers_.erase(
      std::remove_if(upstream_headers_.begin(), upstream_headers_.end(),
                     [](const std::pair<std::string, std::string>& h) {
                       return absl::EqualsIgnoreCase(ToAbsl(h.first), "content-type");
                     }),
      upstream_headers_.end());
  upstream_headers_.emplace_back("content-type", "text/event-stream");
  head_stripped_ = true;
  StartStream(ResponseHead{status, std::move(upstream_headers_), true});
}

void GatewayRequest::HandleData(std::string_view chunk) {
  if (finished_) return;
  if (!streaming_) {
    if (body_.size() + chunk.size() > shared_->limits.max_upstream_body_bytes) {
      call_.reset();
      Fail(WithHttpStatus(absl::ResourceExhaustedError(absl::StrFormat(
                              "upstream response body exceeds %d bytes",
                              shared_->limits.max_upstream_body_bytes)),
                          502));
      return;
    }
    if (!Buffer(chunk.size())) return;
    body_.append(chunk);
    return;
  }
  absl::Status s = parser_->Feed(chunk, &frames_);
  if (!QueueFrames(&s, /*end=*/false)) return;
  if (!s.ok()) {
    call_.reset();
    upstream_done_ = true;
    outcome_.error = s;
  }
  Pump();
}

bool GatewayRequest::QueueFrames(absl::Status* status, bool end) {
  if (native_) return QueueNativeFrames(status, end);
  for (StreamFrame& frame : frames_) {
    if (status->ok()) *status = translator_->Translate(std::move(frame), &translated_);
  }
  frames_.clear();
  if (end && status->ok()) *status = translator_->Finish(&translated_);
  stream_usage_.Filter(&translated_);
  // No filter sees the events and nothing waits before them: rendered at once, with no
  // stop in the queue (Pump sends them).
  if (!HasResponseHook(kResponseEventsHook) && committed_ && !pumping_ && !sink_blocked_ &&
      queue_head_ == queue_.size()) {
    RenderEvents(translated_.data(), translated_.data() + translated_.size(), false);
    translated_.clear();
    return true;
  }
  for (SseEvent& e : translated_) {
    if (!Buffer(e.data.size())) return false;
    queue_.push_back(std::move(e));
  }
  translated_.clear();
  return true;
}

bool GatewayRequest::QueueNativeFrames(absl::Status* status, bool end) {
  // Each frame goes to the client as the provider sent it (SSE framing written anew:
  // "event: X\ndata: Y\n\n", Anthropic's own), carried by the last unified event it
  // produced; filters and the usage count see the unified events as usual.
  auto queue = [&]() -> bool {
    stream_usage_.Filter(&translated_);
    for (size_t i = 0; i < translated_.size(); ++i) {
      SseEvent& e = translated_[i];
      if (!Buffer(e.data.size())) return false;
      queue_.push_back(std::move(e));
      native_queue_.emplace_back();
      if (i + 1 == translated_.size()) native_queue_.back().swap(native_pending_);
    }
    translated_.clear();
    return true;
  };
  for (StreamFrame& frame : frames_) {
    if (!status->ok()) break;
    native_pending_ += EncodeSseEvent(frame.data, frame.event);
    *status = translator_->Translate(std::move(frame), &translated_);
    if (!queue()) return false;
  }
  frames_.clear();
  if (end && status->ok()) {
    *status = translator_->Finish(&translated_);
    if (!queue()) return false;
  }
  return true;
}

void GatewayRequest::HandleComplete(absl::Status status) {
  if (finished_) return;
  if (!status.ok()) {
    if (streaming_) {
      call_.reset();
      upstream_done_ = true;
      ReportAttemptEnd(status, 0);  // after the first byte: no other attempt
      outcome_.error = WithHttpStatus(
          absl::UnavailableError(absl::StrFormat("upstream provider \"%s\" failed: %s",
                                                 attempt_->provider->name, status.message())),
          502);
      Pump();
      return;
    }
    AttemptFailed(gateway_internal::UpstreamTransportError(attempt_->provider->name, status), 0);
    return;
  }
  if (streaming_) {
    call_.reset();
    absl::Status s = parser_->Finish(&frames_);
    if (!QueueFrames(&s, /*end=*/true)) return;
    if (!s.ok()) outcome_.error = s;
    ReportAttemptEnd(s.ok() ? s : AsBadUpstreamResponse(s), upstream_status_);
    upstream_done_ = true;
    Pump();
    return;
  }
  call_.reset();
  DisarmTryTimer();
  if (upstream_status_ < 200 || upstream_status_ >= 300) {
    absl::Status error = dialect_->TranslateError(upstream_status_, upstream_headers_, body_);
    if (error.ok()) error = absl::UnknownError("upstream error without a message");
    AttemptFailed(error, upstream_status_);
    return;
  }
  std::string body = std::move(body_);
  body_.clear();
  if (embeddings_.has_value()) {
    TranslateEmbeddings(std::move(body));
    return;
  }
  if (native_) {
    // The client gets the provider's bytes; filters (when there are any) see the
    // translation, as for any provider.
    if (!HasResponseFilters()) {
      if (attempt_->wants_usage) {
        // The plan counts tokens: read them from a translation the client does not get.
        std::string unified = body;
        if (dialect_->TranslateResponse(&unified).ok()) ParseUsage(unified);
      }
      ReportAttemptEnd(absl::OkStatus(), upstream_status_);
      outcome_.attempts = ctx_.attempts;
      head_stripped_ = true;
      SendWhole(ResponseHead{upstream_status_, std::move(upstream_headers_), false},
                std::move(body), /*render=*/false);
      return;
    }
    native_body_ = body;
  }
  if (absl::Status s = dialect_->TranslateResponse(&body); !s.ok()) {
    // An answer that cannot be read is the upstream's failure (502), not the client's.
    AttemptFailed(AsBadUpstreamResponse(std::move(s)), upstream_status_);
    return;
  }
  if (HasResponseHook(kResponseCompleteHook) || attempt_->wants_usage) ParseUsage(body);
  ReportAttemptEnd(absl::OkStatus(), upstream_status_);
  outcome_.attempts = ctx_.attempts;
  head_stripped_ = true;
  SendWhole(ResponseHead{upstream_status_, std::move(upstream_headers_), false}, std::move(body),
            /*render=*/true);
}

void GatewayRequest::TranslateEmbeddings(std::string body) {
  absl::StatusOr<EmbeddingsResponse> response = dialect_->TranslateEmbeddingsResponse(
      *embeddings_,
      ProviderCall{.upstream_model = attempt_->model->upstream_model,
                   .client_headers = &ctx_.request.headers},
      upstream_headers_, body);
  if (!response.ok()) {
    AttemptFailed(response.status(), upstream_status_);
    return;
  }
  CompleteEmbeddings(std::move(*response), upstream_status_, std::move(upstream_headers_));
}

void GatewayRequest::CompleteEmbeddings(EmbeddingsResponse response_value, int http_status,
                                        HttpHeaders headers) {
  const std::string& upstream_model = attempt_->model->upstream_model;
  EmbeddingsResponse* response = &response_value;
  bool estimated = false;
  if (!response->usage.has_value()) {
    // The provider reports no count (Gemini, a Bedrock answer without the token count
    // header): count as usage.h says.
    const UsageEstimator& estimator = *shared_->limits.usage_estimator;
    int64_t tokens = 0;
    for (const std::string& text : embeddings_->texts) {
      tokens += estimator.CompletionTokens(text, upstream_model);
    }
    for (const std::vector<int64_t>& ids : embeddings_->tokens) {
      tokens += static_cast<int64_t>(ids.size());
    }
    EmbeddingsUsage& usage = response->usage.emplace();
    usage.prompt_tokens = tokens;
    usage.total_tokens = tokens;
    usage.extra.emplace_back("estimated", "true");
    // Method names are plain words ("tokenizer", "word_count"): quoting is all they need.
    usage.extra.emplace_back("estimation_method",
                             absl::StrCat("\"", ToAbsl(estimator.method()), "\""));
    estimated = true;
  }
  if (HasResponseHook(kResponseCompleteHook) || attempt_->wants_usage) {
    Usage usage;
    usage.prompt_tokens = response->usage->prompt_tokens;
    usage.total_tokens = response->usage->total_tokens;
    outcome_.usage = std::move(usage);
    outcome_.usage_estimated = estimated;
  }
  ReportAttemptEnd(absl::OkStatus(), http_status);
  std::string out = SerializeEmbeddingsResponse(
      *response, embeddings_->encoding_format.value_or(EmbeddingEncoding::kFloat));
  outcome_.attempts = ctx_.attempts;
  head_stripped_ = true;
  SendWhole(ResponseHead{http_status, std::move(headers), false}, std::move(out),
            /*render=*/true);
}

void GatewayRequest::ParseUsage(std::string_view json) {
  if (json.find("\"usage\"") == std::string_view::npos) return;
  absl::StatusOr<ChatCompletion> parsed = ParseChatCompletion(json);
  if (parsed.ok() && parsed->usage.has_value()) outcome_.usage = std::move(parsed->usage);
}

void GatewayRequest::TakeStreamUsage() {
  if (!stream_usage_.started() || !HasResponseHook(kResponseCompleteHook)) return;
  bool estimated = false;
  if (std::optional<Usage> usage = stream_usage_.Final(&estimated)) {
    outcome_.usage = std::move(usage);
    outcome_.usage_estimated = estimated;
  }
}

bool GatewayRequest::Buffer(uint64_t bytes) {
  if (shared_->buffered + bytes > shared_->limits.max_buffered_upstream_bytes) {
    call_.reset();
    Fail(Overloaded("too many upstream bytes buffered"));
    return false;
  }
  shared_->buffered += bytes;
  buffered_ += bytes;
  return true;
}

void GatewayRequest::Unbuffer() {
  shared_->buffered -= buffered_;
  buffered_ = 0;
}

void GatewayRequest::SendError(const absl::Status& status) {
  LocalReply reply = LocalReplyForError(status);
  if (codec_ != nullptr) reply.body = codec_->ErrorBody(status);
  outcome_.error = status;
  SendLocal(std::move(reply));
}

void GatewayRequest::SendLocal(LocalReply reply) {
  head_stripped_ = false;
  if (!FindHeader(reply.headers, "content-type").has_value()) {
    reply.headers.emplace_back("content-type", reply.events.has_value() ? "text/event-stream"
                                                                          : "application/json");
  }
  // Only OnResponseComplete reads the outcome: parse the reply's error body for it only then.
  if (reply.status >= 400 && outcome_.error.ok() && HasResponseHook(kResponseCompleteHook)) {
    outcome_.error = StatusFromUpstreamError(reply.status, reply.body);
  }
  if (reply.events.has_value()) {
    for (SseEvent& e : *reply.events) queue_.push_back(std::move(e));
    upstream_done_ = true;
    // A local stream on a model-call endpoint is unified; elsewhere it is sent as is.
    renderer_ = codec_ != nullptr ? codec_->NewStreamRenderer() : nullptr;
    StartStream(ResponseHead{reply.status, std::move(reply.headers), true});
    return;
  }
  SendWhole(ResponseHead{reply.status, std::move(reply.headers), false}, std::move(reply.body),
            /*render=*/false);
}

void GatewayRequest::ArmStepTimer() {
  if (step_timer_ == nullptr) step_timer_ = shared_->loop->NewTimer();
  step_timer_->Arm(shared_->limits.response_step_timeout, [this] {
    Guard([&] {
      Fail(WithHttpStatus(absl::DeadlineExceededError(absl::StrFormat(
                              "a gateway filter did not finish its response step within %s",
                              absl::FormatDuration(shared_->limits.response_step_timeout))),
                          504));
    });
  });
}

void GatewayRequest::SendWhole(ResponseHead head, std::string body, bool render) {
  response_started_ = true;
  head_ = std::move(head);
  whole_body_ = std::move(body);
  outcome_.status = head_.status;
  // No filter to show it to: skip the chain's machinery.
  if (!HasResponseHook(kResponseHeadersHook | kResponseBodyHook)) {
    AfterBodyWhole(render);
    return;
  }
  std::weak_ptr<bool> life = life_;
  const uint64_t step = ++step_started_;
  chain_->RunResponseHeaders(head_, [this, render, step, life]() mutable {
    if (life.expired()) return;
    step_done_ = std::max(step_done_, step);
    DisarmStepTimer();
    // A filter answered from its headers hook: the chain already put the reply's status and
    // headers in head_; its body replaces the upstream's before the body step.
    if (std::optional<LocalReply> replaced = chain_->TakeResponseReply()) {
      whole_body_ = std::move(replaced->body);
      render = false;
    }
    Guard([&] {
      if (!ChainFailed()) AfterHeadersWhole(render);
    });
  });
  if (!life.expired() && step_done_ < step && !finished_) ArmStepTimer();
}

void GatewayRequest::AfterHeadersWhole(bool render) {
  if (!HasResponseHook(kResponseBodyHook)) {
    AfterBodyWhole(render);
    return;
  }
  std::weak_ptr<bool> life = life_;
  const uint64_t step = ++step_started_;
  chain_->RunResponseBody(head_, whole_body_, [this, render, step, life]() mutable {
    if (life.expired()) return;
    step_done_ = std::max(step_done_, step);
    DisarmStepTimer();
    if (ChainFailed()) return;
    if (std::optional<LocalReply> replaced = chain_->TakeResponseReply()) {
      head_.status = replaced->status;
      head_.headers = std::move(replaced->headers);
      whole_body_ = std::move(replaced->body);
      render = false;
    }
    Guard([&] { AfterBodyWhole(render); });
  });
  if (!life.expired() && step_done_ < step && !finished_) ArmStepTimer();
}

void GatewayRequest::AfterBodyWhole(bool render) {
  if (render && native_) {
    whole_body_ = std::move(native_body_);
  } else if (render && codec_ != nullptr) {
    if (absl::Status s = codec_->RenderResponse(&whole_body_); !s.ok()) {
      head_.status = HttpStatusForStatus(s);
      head_.headers = {{"content-type", "application/json"}};
      whole_body_ = codec_->ErrorBody(s);
      outcome_.error = s;
    }
  }
  outcome_.status = head_.status;
  CleanResponseHeaders(&head_.headers, head_stripped_ && !HasResponseFilters());
  if (!FindHeader(head_.headers, "content-type").has_value()) {
    head_.headers.emplace_back("content-type", "application/json");
  }
  // The body is the response's final byte: release it after OnResponseComplete.
  held_ = std::move(whole_body_);
  whole_body_.clear();
  CompleteAndFinish(true);
}

void GatewayRequest::StartStream(ResponseHead head) {
  response_started_ = true;
  streaming_ = true;
  head_ = std::move(head);
  outcome_.status = head_.status;
  outcome_.streaming = true;
  auto commit = [this] {
    CleanResponseHeaders(&head_.headers, head_stripped_ && !HasResponseFilters());
    committed_ = true;
    std::weak_ptr<bool> life = life_;
    sink_->SendHeaders(head_.status, head_.headers, /*streaming=*/true);
    if (life.expired() || finished_) return;
    Pump();
  };
  if (!HasResponseHook(kResponseHeadersHook)) {
    commit();
    return;
  }
  std::weak_ptr<bool> life = life_;
  const uint64_t step = ++step_started_;
  waiting_filters_ = true;
  chain_->RunResponseHeaders(head_, [this, commit, step, life] {
    if (life.expired()) return;
    step_done_ = std::max(step_done_, step);
    DisarmStepTimer();
    waiting_filters_ = false;
    Guard([&] {
      if (!ChainFailed()) commit();
    });
  });
  if (life.expired() || finished_ || step_done_ >= step) return;
  ArmStepTimer();
  // No event may pass before the status line: hold the upstream meanwhile.
  if (call_ != nullptr && !upstream_paused_) {
    upstream_paused_ = true;
    call_->Pause();
  }
}

void GatewayRequest::Pump() {
  if (pumping_ || finished_ || !committed_) return;
  pumping_ = true;
  std::weak_ptr<bool> life = life_;
  while (queue_head_ < queue_.size() && !waiting_filters_ && !sink_blocked_) {
    // Nobody to show them to one by one: all at once (a native stream sends each event's
    // provider bytes instead, through AfterEvents).
    if (!HasResponseHook(kResponseEventsHook) && !native_) {
      RenderEvents(queue_.data() + queue_head_, queue_.data() + queue_.size(), false);
      queue_.clear();
      queue_head_ = 0;
      break;
    }
    batch_.clear();
    if (native_) native_batch_ = std::move(native_queue_[queue_head_]);
    batch_.push_back(std::move(queue_[queue_head_++]));
    if (queue_head_ == queue_.size()) {
      queue_.clear();
      native_queue_.clear();
      queue_head_ = 0;
    }
    const bool terminal = batch_.front().data == kSseDoneData;
    if (!HasResponseHook(kResponseEventsHook)) {
      AfterEvents(terminal);
      continue;
    }
    // No usage read here: TakeStreamUsage() gives the outcome the stream's usage.
    waiting_filters_ = true;
    const uint64_t step = ++step_started_;
    chain_->RunResponseEvents(batch_, [this, terminal, step, life] {
      if (life.expired()) return;
      step_done_ = std::max(step_done_, step);
      DisarmStepTimer();
      waiting_filters_ = false;
      Guard([&] {
        if (ChainFailed()) return;
        AfterEvents(terminal);
        if (!pumping_) Pump();  // resumed later: carry on where the loop stopped
      });
    });
    if (life.expired() || finished_) return;
    if (waiting_filters_) {
      ArmStepTimer();
      break;
    }
  }
  pumping_ = false;
  if (!Flush()) return;
  if (finished_) return;
  const bool stalled = waiting_filters_ || sink_blocked_;
  if (call_ != nullptr) {
    if (stalled && !upstream_paused_) {
      upstream_paused_ = true;
      call_->Pause();
    } else if (!stalled && upstream_paused_) {
      upstream_paused_ = false;
      call_->Resume();
    }
  }
  if (!stalled && queue_head_ == queue_.size() && upstream_done_) StreamEnded();
}

void GatewayRequest::AfterEvents(bool terminal) {
  if (native_) {
    // What the filters saw was the translation; the client gets the provider's bytes.
    for (const SseEvent& e : batch_) {
      if (e.data == kSseDoneData) terminal_seen_ = true;
    }
    ((terminal || terminal_seen_) ? held_ : out_) += native_batch_;
    native_batch_.clear();
    batch_.clear();
    if (terminal) terminal_seen_ = true;
    return;
  }
  RenderEvents(batch_.data(), batch_.data() + batch_.size(), terminal);
  batch_.clear();
}

void GatewayRequest::RenderEvents(SseEvent* begin, SseEvent* end, bool terminal) {
  for (SseEvent* e = begin; e != end; ++e) {
    if (e->data == kSseDoneData) terminal_seen_ = true;
    std::string& dest = (terminal || terminal_seen_) ? held_ : out_;
    if (renderer_ == nullptr) {
      AppendSseEvent(*e, &dest);
      continue;
    }
    rendered_.clear();
    absl::Status s = renderer_->Translate(StreamFrame{std::move(e->event), std::move(e->data)},
                                          &rendered_);
    if (!s.ok() && outcome_.error.ok()) outcome_.error = s;
    for (const SseEvent& r : rendered_) AppendSseEvent(r, &dest);
  }
  if (terminal) terminal_seen_ = true;
}

bool GatewayRequest::Flush() {
  Unbuffer();
  for (size_t i = queue_head_; i < queue_.size(); ++i) {  // what still waits stays counted
    const SseEvent& e = queue_[i];
    shared_->buffered += e.data.size();
    buffered_ += e.data.size();
  }
  if (out_.empty()) return true;
  // Sent from a local (the sink may destroy this request), whose buffer then comes back:
  // the next read's events are appended without growing a new string.
  std::string out = std::move(out_);
  out_.clear();
  outcome_.bytes_sent += out.size();
  std::weak_ptr<bool> life = life_;
  bool accepting = sink_->SendBody(out);
  if (life.expired() || finished_) return false;
  if (!accepting) sink_blocked_ = true;
  if (out_.empty()) {
    out.clear();
    out_.swap(out);
  }
  return true;
}

void GatewayRequest::StreamEnded() {
  if (complete_ran_) return;
  if (native_ && outcome_.error.ok()) held_ += native_pending_;  // frames after the end
  native_pending_.clear();
  // A failed stream gets no closing events: its error event ends it.
  if (renderer_ != nullptr && outcome_.error.ok()) {
    std::vector<SseEvent> rendered;
    absl::Status s = renderer_->Finish(&rendered);
    if (!s.ok() && outcome_.error.ok()) outcome_.error = s;
    for (const SseEvent& r : rendered) held_ += EncodeSseEvent(r);
  }
  if (!outcome_.error.ok()) {
    // The stream broke after its first byte: the client learns why in its own dialect.
    if (codec_ != nullptr) {
      for (const SseEvent& e : codec_->StreamErrorEvents(outcome_.error, ctx_)) {
        held_ += EncodeSseEvent(e);
      }
    } else {
      SseEvent error;
      error.data = OpenAiErrorBody(outcome_.error);
      held_ += EncodeSseEvent(error);
    }
  }
  // The body ends normally either way: a broken stream ends in its dialect's terminal error
  // event (what OpenAI and Anthropic send), and cutting the connection after it makes SDKs
  // that read to the end (openai's Responses stream after response.failed) report a
  // connection error instead of the event. The outcome keeps the error for filters and logs.
  CompleteAndFinish(/*complete=*/true);
}

void GatewayRequest::CompleteAndFinish(bool complete) {
  if (complete_ran_) return;
  complete_ran_ = true;
  outcome_.attempts = ctx_.attempts;
  TakeStreamUsage();
  auto release = [this, complete] {
    std::weak_ptr<bool> life = life_;
    if (!committed_) {
      committed_ = true;
      sink_->SendHeaders(head_.status, head_.headers, /*streaming=*/false);
      if (life.expired() || finished_) return;
    }
    if (!held_.empty()) {
      std::string out = std::move(held_);
      held_.clear();
      sink_->SendBody(out);
      if (life.expired() || finished_) return;
    }
    Finish(complete);
  };
  if (!HasResponseHook(kResponseCompleteHook)) {
    release();
    return;
  }
  std::weak_ptr<bool> life = life_;
  const uint64_t step = ++step_started_;
  chain_->RunResponseComplete(outcome_, [this, release, step, life] {
    if (life.expired()) return;
    step_done_ = std::max(step_done_, step);
    DisarmStepTimer();
    Guard([&] {
      if (!ChainFailed()) release();
    });
  });
  if (!life.expired() && step_done_ < step && !finished_) ArmStepTimer();
}

bool GatewayRequest::ChainFailed() {
  if (chain_ == nullptr || chain_failure_handled_ || chain_->failed().ok()) return false;
  chain_failure_handled_ = true;
  Fail(chain_->failed());
  return true;
}

void GatewayRequest::Fail(const absl::Status& status) {
  if (finished_) return;
  call_.reset();
  Unbuffer();
  if (!committed_) {
    // Bypass the chain: it may be the part that failed.
    LocalReply reply = LocalReplyForError(status);
    if (codec_ != nullptr) reply.body = codec_->ErrorBody(status);
    CleanResponseHeaders(&reply.headers);
    committed_ = true;
    std::weak_ptr<bool> life = life_;
    sink_->SendHeaders(reply.status, reply.headers, /*streaming=*/false);
    if (life.expired() || finished_) return;
    sink_->SendBody(reply.body);
    if (life.expired() || finished_) return;
    Finish(true);
    return;
  }
  Finish(false);
}

void GatewayRequest::Finish(bool complete) {
  if (finished_) return;
  finished_ = true;
  Release();
  sink_->Finish(complete);  // may destroy this request
}

void GatewayRequest::Release() {
  if (released_) return;
  released_ = true;
  call_.reset();
  fanout_.reset();
  phase_timer_.reset();
  step_timer_.reset();
  backoff_timer_.reset();
  DropHedge();
  hedge_timer_.reset();
  try_timer_.reset();
  deadline_timer_.reset();
  plan_.reset();  // gives back what the plan holds (a router's in-flight slot)
  Unbuffer();
  if (handler_ != nullptr) handler_->Destroy();
  if (chain_ != nullptr) chain_->Destroy();
  --shared_->active;
}

class GatewayImpl final : public Gateway {
 public:
  explicit GatewayImpl(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {
    // Lends this loop and upstream client to work of the services that belongs to no
    // request (services.h: BackgroundIo, e.g. active health probes) while the gateway lives.
    io_token_ = shared_->config->services().AttachIo({shared_->loop, shared_->upstream});
  }
  ~GatewayImpl() override { shared_->config->services().DetachIo(io_token_); }

  std::unique_ptr<ActiveRequest> Handle(HttpRequest request, ResponseSink* sink) override {
    auto r = std::make_unique<GatewayRequest>(shared_, sink);
    r->StartGuarded(std::move(request));
    return r;
  }

  size_t active_requests() const override { return shared_->active; }

 private:
  std::shared_ptr<Shared> shared_;
  uint64_t io_token_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> NewGateway(GatewayOptions options) {
  if (options.config == nullptr) return absl::InvalidArgumentError("config must not be null");
  if (options.loop == nullptr) return absl::InvalidArgumentError("loop must not be null");
  if (options.upstream == nullptr) return absl::InvalidArgumentError("upstream must not be null");
  if (options.max_upstream_body_bytes == 0) {
    return absl::InvalidArgumentError("max_upstream_body_bytes must be > 0");
  }
  if (options.max_buffered_upstream_bytes < options.max_upstream_body_bytes) {
    return absl::InvalidArgumentError(
        "max_buffered_upstream_bytes must be >= max_upstream_body_bytes");
  }
  if (options.request_phase_timeout <= absl::ZeroDuration() ||
      options.response_step_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("phase timeouts must be > 0");
  }
  if (options.usage_estimator == nullptr) options.usage_estimator = WordCountUsageEstimator();
  auto shared = std::make_shared<Shared>();
  shared->config = options.config;
  shared->loop = options.loop;
  shared->upstream = options.upstream;
  shared->clock = options.clock != nullptr ? options.clock : &options.loop->clock();
  shared->random = std::move(options.random);
  shared->limits = std::move(options);
  return std::unique_ptr<Gateway>(std::make_unique<GatewayImpl>(std::move(shared)));
}

}  // namespace modeenvoy
