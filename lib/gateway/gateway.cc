// lib/gateway/gateway.cc: the engine behind Gateway::Handle.
//
// One GatewayRequest per client request: parse, run the request phase of the filter chain,
// resolve the route, call the provider, relay the response through the response phase.
// The host may destroy the request from inside any ResponseSink call, so every sink call is
// followed by a liveness check (or is the last thing the method does).
#include "modeenvoy/gateway/gateway.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;

constexpr std::string_view kChatPath = "/v1/chat/completions";
constexpr std::string_view kModelsPath = "/v1/models";

// Headers that describe one hop's connection or framing; the host sets its own.
bool IsHopByHop(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
      "proxy-authenticate", "proxy-authorization", "content-length", "date"};
  for (std::string_view h : kNames) {
    // Runs for every upstream response header: compare only names of the same length.
    if (name.size() == h.size() && absl::EqualsIgnoreCase(ToAbsl(name), ToAbsl(h))) return true;
  }
  return false;
}

bool IsEventStream(const HttpHeaders& headers) {
  std::optional<std::string_view> ct = FindHeader(headers, "content-type");
  return ct.has_value() && absl::StartsWithIgnoreCase(
                               absl::StripLeadingAsciiWhitespace(ToAbsl(*ct)), "text/event-stream");
}

// SplitMix64: cheap, well-mixed draws for weighted routing when the host injects none.
class SplitMix {
 public:
  SplitMix() : state_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

// What a request needs from its gateway; shared so requests may outlive the gateway.
struct Shared {
  const ConfigStore* config;
  EventLoop* loop;
  UpstreamClient* upstream;
  const Clock* clock;
  std::function<uint64_t()> random;
  uint64_t max_upstream_body_bytes;
  SplitMix fallback_random;
  size_t active = 0;

  uint64_t Draw() { return random ? random() : fallback_random.Next(); }
};

class GatewayRequest final : public ActiveRequest, public UpstreamHandler {
 public:
  GatewayRequest(std::shared_ptr<Shared> shared, ResponseSink* sink)
      : shared_(std::move(shared)), sink_(sink) {
    ++shared_->active;
  }

  ~GatewayRequest() override {
    // Client gone (or normal end): filters get OnDestroy, the upstream call is cancelled.
    Release();
  }

  void Start(HttpRequest request);

  // ActiveRequest
  void OnSinkDrained() override {
    if (finished_ || !sink_blocked_) return;
    sink_blocked_ = false;
    if (call_ != nullptr) call_->Resume();
  }
  bool done() const override { return finished_; }

  // UpstreamHandler
  void OnHeaders(int status, const HttpHeaders& headers) override;
  void OnData(std::string_view chunk) override;
  void OnComplete(absl::Status status) override;

 private:
  void OnRequestPhaseDone(std::optional<LocalReply> reply);
  void StartUpstream();
  void ServeModelList();
  // Sends a complete non-streaming response through the response phase; ends the request.
  void SendWhole(ResponseHead head, std::string body);
  void SendError(const absl::Status& status) {
    LocalReply reply = LocalReplyForError(status);
    SendWhole(ResponseHead{reply.status, std::move(reply.headers), false},
              std::move(reply.body));
  }
  // Relays `events` (parsed from the upstream stream). Returns false if the request ended.
  bool RelayEvents();
  // Ends the response; `complete` false cuts it short. The sink call is the last action.
  void Finish(bool complete);
  // Drops the filters and the upstream call and leaves the active count, once.
  void Release();
  absl::Status UpstreamFailure(const absl::Status& status) const;

  std::shared_ptr<Shared> shared_;
  ResponseSink* const sink_;
  // Expires when this request is destroyed; checked after sink calls.
  std::shared_ptr<bool> life_ = std::make_shared<bool>(true);

  std::shared_ptr<const ConfigSnapshot> snapshot_;
  std::optional<ChatRequest> chat_;
  RequestContext ctx_;
  std::string resolved_for_;  // chat model name the current ctx_.route was resolved from
  std::unique_ptr<FilterChain> chain_;
  std::unique_ptr<UpstreamCall> call_;

  bool released_ = false;
  bool finished_ = false;
  bool headers_sent_ = false;
  bool streaming_ = false;
  bool sink_blocked_ = false;
  int upstream_status_ = 0;
  HttpHeaders upstream_headers_;
  std::string body_;  // non-streaming upstream body
  SseParser parser_;
  std::vector<SseEvent> events_;
};

void GatewayRequest::Start(HttpRequest request) {
  snapshot_ = shared_->config->Current();
  std::string_view path = request.path;
  if (size_t q = path.find_first_of("?#"); q != std::string_view::npos) path = path.substr(0, q);
  const bool is_chat = request.method == "POST" && path == kChatPath;
  const bool is_models = request.method == "GET" && path == kModelsPath;
  ctx_.clock = shared_->clock;
  ctx_.snapshot = snapshot_.get();
  if (!is_chat && !is_models) {
    SendError(absl::NotFoundError(
        absl::StrFormat("Invalid URL (%s %s)", request.method, request.path)));
    return;
  }
  if (snapshot_ == nullptr) {
    SendError(absl::UnavailableError("the gateway has no configuration loaded"));
    return;
  }
  ctx_.endpoint = is_chat ? Endpoint::kChatCompletions : Endpoint::kListModels;
  ctx_.request = std::move(request);
  if (is_chat) {
    absl::StatusOr<ChatRequest> parsed = ParseChatRequest(ctx_.request.body);
    if (!parsed.ok()) {
      SendError(parsed.status());
      return;
    }
    chat_ = std::move(*parsed);
    ctx_.chat = &*chat_;
    if (absl::StatusOr<ResolvedRoute> route = snapshot_->Resolve(chat_->model, shared_->Draw());
        route.ok()) {
      ctx_.route = *route;
    }
    resolved_for_ = chat_->model;
  }
  chain_ = std::make_unique<FilterChain>(snapshot_->CreateFilters(), &ctx_, shared_->loop);
  chain_->RunRequest(
      [this](std::optional<LocalReply> reply) { OnRequestPhaseDone(std::move(reply)); });
}

void GatewayRequest::OnRequestPhaseDone(std::optional<LocalReply> reply) {
  if (reply.has_value()) {
    bool has_type = FindHeader(reply->headers, "content-type").has_value();
    if (!has_type) reply->headers.emplace_back("content-type", "application/json");
    SendWhole(ResponseHead{reply->status, std::move(reply->headers), false},
              std::move(reply->body));
    return;
  }
  if (ctx_.endpoint == Endpoint::kListModels) {
    ServeModelList();
    return;
  }
  if (ctx_.route.model == nullptr || chat_->model != resolved_for_) {
    absl::StatusOr<ResolvedRoute> route = snapshot_->Resolve(chat_->model, shared_->Draw());
    if (!route.ok()) {
      SendError(route.status());
      return;
    }
    ctx_.route = *route;
  }
  StartUpstream();
}

void GatewayRequest::ServeModelList() {
  nlohmann::ordered_json data = nlohmann::ordered_json::array();
  for (const std::string& name : snapshot_->ServedModelNames()) {
    const ModelConfig* model = snapshot_->FindModel(name);
    data.push_back({{"id", name},
                    {"object", "model"},
                    {"created", 0},
                    {"owned_by", model != nullptr ? model->provider : std::string("modeenvoy")}});
  }
  nlohmann::ordered_json body = {{"object", "list"}, {"data", std::move(data)}};
  SendWhole(ResponseHead{200, {{"content-type", "application/json"}}, false}, body.dump());
}

void GatewayRequest::StartUpstream() {
  const ProviderConfig& provider = *ctx_.route.provider;
  const bool stream = chat_->stream.value_or(false);
  UpstreamRequest req;
  req.method = "POST";
  req.url = provider.base_url + std::string(kChatPath.substr(3));  // base_url ends in /v1
  req.headers.emplace_back("content-type", "application/json");
  req.headers.emplace_back("accept", stream ? "text/event-stream" : "application/json");
  if (!provider.api_key.empty()) {
    req.headers.emplace_back("authorization", "Bearer " + provider.api_key);
  }
  for (const auto& [name, value] : provider.headers) {
    ApplyHeaderMutation({HeaderMutation::Op::kSet, name, value}, &req.headers);
  }
  for (const HeaderMutation& m : ctx_.upstream_header_mutations) {
    ApplyHeaderMutation(m, &req.headers);
  }
  // Serialize with the provider's model name, then restore the public one filters see.
  std::string public_model = std::move(chat_->model);
  chat_->model = ctx_.route.model->upstream_model;
  req.body = SerializeChatRequest(*chat_);
  chat_->model = std::move(public_model);
  req.timeouts = provider.timeouts;
  call_ = shared_->upstream->Start(std::move(req), this);
}

void GatewayRequest::OnHeaders(int status, const HttpHeaders& headers) {
  upstream_status_ = status;
  upstream_headers_.clear();
  for (const auto& h : headers) {
    if (!IsHopByHop(h.first)) upstream_headers_.push_back(h);
  }
  if (status < 200 || status >= 300 || !IsEventStream(headers)) return;  // held whole
  streaming_ = true;
  ResponseHead head{status, std::move(upstream_headers_), true};
  chain_->RunResponseHeaders(head);
  headers_sent_ = true;
  sink_->SendHeaders(head.status, head.headers, /*streaming=*/true);  // may destroy `this`
}

void GatewayRequest::OnData(std::string_view chunk) {
  if (finished_) return;
  if (!streaming_) {
    if (body_.size() + chunk.size() > shared_->max_upstream_body_bytes) {
      call_.reset();
      SendError(WithHttpStatus(
          absl::ResourceExhaustedError(absl::StrFormat(
              "upstream response body exceeds %d bytes", shared_->max_upstream_body_bytes)),
          502));
      return;
    }
    body_.append(chunk);
    return;
  }
  if (absl::Status s = parser_.Feed(chunk, &events_); !s.ok()) {
    call_.reset();
    Finish(false);
    return;
  }
  RelayEvents();
}

bool GatewayRequest::RelayEvents() {
  if (events_.empty()) return true;
  std::string out;
  std::vector<SseEvent> produced;
  for (SseEvent& event : events_) {
    produced.clear();
    produced.push_back(std::move(event));
    chain_->RunResponseEvents(produced);
    for (const SseEvent& e : produced) out += EncodeSseEvent(e);
  }
  events_.clear();
  if (out.empty()) return true;
  std::weak_ptr<bool> life = life_;
  bool accepting = sink_->SendBody(out);
  if (life.expired() || finished_) return false;
  if (!accepting && !sink_blocked_) {
    sink_blocked_ = true;
    if (call_ != nullptr) call_->Pause();
  }
  return true;
}

void GatewayRequest::OnComplete(absl::Status status) {
  if (finished_) return;
  if (!status.ok()) {
    if (headers_sent_) {
      Finish(false);
    } else {
      SendError(UpstreamFailure(status));
    }
    return;
  }
  if (streaming_) {
    if (absl::Status s = parser_.Finish(&events_); !s.ok()) {
      Finish(false);
      return;
    }
    if (!RelayEvents()) return;
    Finish(true);
    return;
  }
  if (upstream_status_ < 200 || upstream_status_ >= 300) {
    SendError(StatusFromUpstreamError(upstream_status_, body_));
    return;
  }
  SendWhole(ResponseHead{upstream_status_, std::move(upstream_headers_), false},
            std::move(body_));
}

absl::Status GatewayRequest::UpstreamFailure(const absl::Status& status) const {
  std::string message = absl::StrFormat("upstream provider \"%s\" failed: %s",
                                        ctx_.route.provider->name, status.message());
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return WithHttpStatus(absl::DeadlineExceededError(message), 504);
  }
  return WithHttpStatus(absl::UnavailableError(message), 502);
}

void GatewayRequest::SendWhole(ResponseHead head, std::string body) {
  if (chain_ != nullptr) {
    chain_->RunResponseHeaders(head);
    chain_->RunResponseBody(body);
  }
  headers_sent_ = true;
  std::weak_ptr<bool> life = life_;
  sink_->SendHeaders(head.status, head.headers, /*streaming=*/false);
  if (life.expired() || finished_) return;
  sink_->SendBody(body);
  if (life.expired() || finished_) return;
  Finish(true);
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
  if (chain_ != nullptr) chain_->Destroy();
  --shared_->active;
}

class GatewayImpl final : public Gateway {
 public:
  explicit GatewayImpl(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  std::unique_ptr<ActiveRequest> Handle(HttpRequest request, ResponseSink* sink) override {
    auto r = std::make_unique<GatewayRequest>(shared_, sink);
    r->Start(std::move(request));
    return r;
  }

  size_t active_requests() const override { return shared_->active; }

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Gateway>> NewGateway(GatewayOptions options) {
  if (options.config == nullptr) return absl::InvalidArgumentError("config must not be null");
  if (options.loop == nullptr) return absl::InvalidArgumentError("loop must not be null");
  if (options.upstream == nullptr) return absl::InvalidArgumentError("upstream must not be null");
  if (options.max_upstream_body_bytes == 0) {
    return absl::InvalidArgumentError("max_upstream_body_bytes must be > 0");
  }
  auto shared = std::make_shared<Shared>();
  shared->config = options.config;
  shared->loop = options.loop;
  shared->upstream = options.upstream;
  shared->clock = options.clock != nullptr ? options.clock : &options.loop->clock();
  shared->random = std::move(options.random);
  shared->max_upstream_body_bytes = options.max_upstream_body_bytes;
  return std::unique_ptr<Gateway>(std::make_unique<GatewayImpl>(std::move(shared)));
}

}  // namespace modeenvoy
