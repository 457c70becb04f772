// lib/context/gateway/context_filter.cc: the "context" filter (docs/context.md).
//
// Request: session id and metadata from headers or the body's `metadata`, validated; the
// session taken (in-process gate in arrival order, then the store's lease for other
// processes); the record read and its owner checked; the provider request built as history
// + new messages fitted to the target's context window. Response: the reply assembled
// (whole body or chunks, tool-call deltas by index) and appended with compare-and-set while
// OnResponseComplete holds the final bytes, bounded by the store timeout. The record read is
// released before the append (a memory store then extends it in place instead of copying
// the history), and the store lease is renewed every lease_ttl / 3 while the request holds
// it, however long the reply streams.
// Every store call has a timer; a store that fails or is slow never holds a request past
// store_timeout: failure_mode "open" sends it on without context, "closed" answers 503.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/context/gateway/internal.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::context_internal {
namespace {

using Json = nlohmann::ordered_json;

// CAS conflicts retried per append before the write counts as failed.
constexpr int kMaxAppendAttempts = 8;

absl::Status BadField(std::string_view path, std::string_view reason) {
  return InvalidFieldError(path, reason);
}

// Visible ASCII only: the id is echoed in a response header and used in store keys.
bool ValidSessionIdBytes(std::string_view id) {
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}

// A JSON object of strings -> map. `path` names the field in errors.
absl::Status ReadMetadataObject(const Json& value, std::string_view path,
                                std::map<std::string, std::string>* out) {
  if (!value.is_object()) return BadField(path, "must be a JSON object of strings");
  for (auto it = value.begin(); it != value.end(); ++it) {
    if (!it.value().is_string()) {
      return BadField(absl::StrFormat("%s.%s", path, it.key()), "must be a string");
    }
    if (it.key().empty()) return BadField(path, "keys must not be empty");
    (*out)[it.key()] = it.value().get<std::string>();
  }
  return absl::OkStatus();
}

absl::Status ParseMetadataText(std::string_view text, std::string_view path, size_t max_bytes,
                               std::map<std::string, std::string>* out) {
  if (text.size() > max_bytes) {
    return BadField(path, absl::StrFormat("must be at most %d bytes", max_bytes));
  }
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return BadField(path, "invalid JSON");
  return ReadMetadataObject(value, path, out);
}

// Bytes of a message's text (content, refusal, tool-call names and arguments): the measure
// of max_history_bytes.
size_t MessageBytes(const Message& m) {
  size_t n = 0;
  if (m.content.has_value()) {
    if (const auto* text = std::get_if<std::string>(&*m.content)) {
      n += text->size();
    } else {
      for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
        n += p.text.size() + p.refusal.size();
        if (p.image_url.has_value()) n += p.image_url->url.size();
      }
    }
  }
  if (m.refusal.has_value()) n += m.refusal->size();
  for (const ToolCall& c : m.tool_calls) {
    n += c.id.size();
    if (c.function.has_value()) n += c.function->name.size() + c.function->arguments.size();
  }
  return n;
}

std::string ContentText(const Message& m) {
  if (!m.content.has_value()) return "";
  if (const auto* text = std::get_if<std::string>(&*m.content)) return *text;
  std::string out;
  for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) out += p.text;
  return out;
}

// A streamed tool call being assembled from its deltas.
struct ToolCallParts {
  std::string id;
  std::string type = "function";
  std::string name;
  std::string arguments;
};

class ContextFilter final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override;
  FilterStatus OnResponseHeaders(RequestContext& ctx, ResponseHead& head,
                                 FilterCallbacks& callbacks) override;
  FilterStatus OnResponseBody(RequestContext& ctx, ResponseHead& head, std::string& body,
                              FilterCallbacks& callbacks) override;
  FilterStatus OnResponseEvents(RequestContext& ctx, std::vector<SseEvent>& events,
                                FilterCallbacks& callbacks) override;
  FilterStatus OnResponseComplete(RequestContext& ctx, const ResponseOutcome& outcome,
                                  FilterCallbacks& callbacks) override;
  void OnDestroy() override;

 private:
  enum class Phase { kOff, kGate, kLease, kLoad, kReady, kAppend, kDone };

  absl::Status ReadRequest(RequestContext& ctx);
  void TakeGate();
  void OnGateGranted();
  void TakeLease();
  void Load();
  void OnLoaded(absl::StatusOr<std::optional<StoredContext>> got);
  // Builds the provider request from the loaded record. Errors reach the client.
  absl::Status BuildRequest();
  void ApplyGuardrails(const std::map<std::string, std::string>& metadata);
  // The smallest known context window over the attempts the request's plan makes, and the
  // encoding to count with; window 0 when unknown.
  void ResolveWindow(int64_t* window, const Encoding** encoding);
  // The store failed or was too slow while loading: on without context, or 503.
  void StoreUnavailable(const absl::Status& status, std::string_view what);
  // Ends the request phase (from inside OnRequest or later).
  void FinishRequest(std::optional<LocalReply> reply);
  void Append();
  void OnAppended(absl::StatusOr<uint64_t> version);
  void OnReloadedForAppend(absl::StatusOr<std::optional<StoredContext>> got);
  ContextAppend MakeAppend(const ContextRecord* record) const;
  void FinishResponse();
  // Starts folding the dropped entries into a summary (asynchronous; the response does not
  // wait) when a summarizer is configured and enough entries were dropped.
  void MaybeSummarize();
  // Gives the session back: the lease (if held) and the in-process gate.
  void ReleaseSession();
  // Renews the held lease every lease_ttl / 3 until ReleaseSession.
  void ScheduleLeaseRenewal();
  void RenewLease();
  // Store call bounded by store_timeout; `on_timeout` runs when it expires.
  void ArmTimer(absl::AnyInvocable<void()> on_timeout) {
    ArmTimer(config_->store_timeout, std::move(on_timeout));
  }
  void ArmTimer(absl::Duration delay, absl::AnyInvocable<void()> on_timeout);
  void Adopt(StoreHandle handle) {
    if (handle != nullptr) op_ = std::move(handle);
  }
  // Call at the top of each store callback: the op it belongs to has finished.
  void OpDone() {
    if (timer_ != nullptr) timer_->Cancel();
    retired_ = std::move(op_);
  }
  void Log(std::string line) const { config_->log(line); }
  Message AssembledReply() const;

  const ContextConfig* config_ = nullptr;
  RequestContext* ctx_ = nullptr;
  FilterCallbacks* cb_ = nullptr;
  Phase phase_ = Phase::kOff;
  std::string session_id_;
  std::string owner_;
  std::map<std::string, std::string> new_metadata_;
  std::vector<Message> new_messages_;  // the client's messages, as sent
  std::shared_ptr<ContextStore> store_;
  std::shared_ptr<GateWaiter> waiter_;
  bool gate_held_ = false;
  std::string lease_token_;
  bool lease_held_ = false;
  StoreHandle op_;
  StoreHandle retired_;
  std::shared_ptr<DetachedOps> detached_;
  std::unique_ptr<Timer> timer_;
  std::unique_ptr<Timer> lease_retry_;
  std::unique_ptr<Timer> lease_renew_;
  StoreHandle renew_op_;
  StoreHandle renew_retired_;
  absl::Time lease_deadline_;
  std::optional<StoredContext> loaded_;
  std::shared_ptr<const Encoding> encoding_;
  uint64_t version_ = 0;  // expected by the next write; 0: the session does not exist
  bool unavailable_ = false;  // fail-open: this request went on without context
  int64_t turn_ = 0;          // the turn this request appends
  int64_t announced_turn_ = 0;  // the X-Session-Turn sent (0: none)
  std::string disclaimer_;
  // Inside OnRequest / OnResponseComplete: results are returned, not called back.
  bool in_request_ = false;
  std::optional<std::optional<LocalReply>> request_result_;
  bool in_complete_ = false;
  bool complete_done_ = false;
  // Reply assembly.
  std::optional<Message> whole_reply_;
  std::string stream_text_;
  std::string stream_refusal_;
  std::map<int64_t, ToolCallParts> stream_tools_;
  bool disclaimer_sent_ = false;
  int append_attempts_ = 0;
  std::vector<size_t> dropped_;  // history entries windowing left out
  ResponseOutcome outcome_;
};

FilterResult ContextFilter::OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) {
  config_ = EnabledSection(ctx.snapshot);
  if (config_ == nullptr || ctx.chat == nullptr) return FilterResult::Continue();
  ctx_ = &ctx;
  cb_ = &callbacks;
  if (absl::Status st = ReadRequest(ctx); !st.ok()) return FilterResult::Error(st);
  if (session_id_.empty()) {
    phase_ = Phase::kOff;
    return FilterResult::Continue();
  }
  in_request_ = true;
  TakeGate();
  in_request_ = false;
  if (!request_result_.has_value()) return FilterResult::Pause();
  std::optional<LocalReply> reply = std::move(*request_result_);
  if (reply.has_value()) return FilterResult::Reply(std::move(*reply));
  return FilterResult::Continue();
}

absl::Status ContextFilter::ReadRequest(RequestContext& ctx) {
  ChatRequest& chat = *ctx.chat;
  std::string_view header_name = config_->session_header;
  std::optional<std::string_view> header = FindHeader(ctx.request.headers, header_name);
  for (size_t i = 0; !header.has_value() && i < config_->session_header_aliases.size(); ++i) {
    header_name = config_->session_header_aliases[i];
    header = FindHeader(ctx.request.headers, header_name);
  }
  std::optional<std::string_view> meta_header =
      FindHeader(ctx.request.headers, config_->metadata_header);
  Json body_meta;
  bool has_body_meta = false;
  if (chat.metadata.has_value()) {
    body_meta = Json::parse(*chat.metadata, nullptr, /*allow_exceptions=*/false);
    has_body_meta = body_meta.is_object();
  }
  const Json* body_id = has_body_meta && body_meta.contains("session_id")
                            ? &body_meta["session_id"]
                            : nullptr;
  std::string id_field;
  if (header.has_value()) {
    session_id_ = std::string(*header);
    id_field = std::string(header_name);
    if (session_id_.empty()) return BadField(id_field, "must not be empty");
  } else if (body_id != nullptr) {
    id_field = "metadata.session_id";
    if (!body_id->is_string()) return BadField(id_field, "must be a string");
    session_id_ = body_id->get<std::string>();
    if (session_id_.empty()) return BadField(id_field, "must not be empty");
  } else {
    return absl::OkStatus();  // no session: the request passes untouched
  }
  if (session_id_.size() > config_->max_session_id_bytes) {
    return BadField(id_field, absl::StrFormat("must be at most %d bytes (got %d)",
                                              config_->max_session_id_bytes,
                                              session_id_.size()));
  }
  if (!ValidSessionIdBytes(session_id_)) {
    return BadField(id_field, "must be visible ASCII characters (0x21-0x7e)");
  }
  if (meta_header.has_value()) {
    MODEENVOY_RETURN_IF_ERROR(ParseMetadataText(*meta_header, config_->metadata_header,
                                                config_->max_metadata_bytes, &new_metadata_));
  }
  if (has_body_meta && body_meta.contains("context")) {
    const Json& value = body_meta["context"];
    // OpenAI's metadata values are strings, so a client may send the object as JSON text.
    if (value.is_string()) {
      MODEENVOY_RETURN_IF_ERROR(ParseMetadataText(value.get<std::string>(), "metadata.context",
                                                  config_->max_metadata_bytes, &new_metadata_));
    } else {
      if (value.dump().size() > config_->max_metadata_bytes) {
        return BadField("metadata.context",
                        absl::StrFormat("must be at most %d bytes", config_->max_metadata_bytes));
      }
      MODEENVOY_RETURN_IF_ERROR(ReadMetadataObject(value, "metadata.context", &new_metadata_));
    }
  }
  // The gateway's own fields never reach the provider.
  if (has_body_meta) {
    body_meta.erase("session_id");
    body_meta.erase("context");
    if (body_meta.empty()) {
      chat.metadata.reset();
    } else {
      chat.metadata = body_meta.dump();
    }
  }
  new_messages_ = chat.messages;
  owner_ = OwnerOf(ctx);
  ctx.metadata[std::string(kSessionIdKey)] = session_id_;
  for (const auto& [key, value] : new_metadata_) {
    ctx.metadata[absl::StrFormat("%s%s", kMetadataPrefix, key)] = value;
  }
  return absl::OkStatus();
}

void ContextFilter::FinishRequest(std::optional<LocalReply> reply) {
  if (in_request_) {
    request_result_ = std::move(reply);
    return;
  }
  if (reply.has_value()) {
    cb_->SendLocalReply(std::move(*reply));
  } else {
    cb_->Continue();
  }
}

void ContextFilter::TakeGate() {
  phase_ = Phase::kGate;
  absl::StatusOr<std::shared_ptr<LoopStore>> store = config_->stores->EntryFor(cb_->event_loop());
  if (!store.ok()) {
    StoreUnavailable(store.status(), "open the store");
    return;
  }
  store_ = (*store)->store;
  detached_ = (*store)->detached;
  waiter_ = std::make_shared<GateWaiter>();
  waiter_->loop = &cb_->event_loop();
  waiter_->on_grant = [this] { OnGateGranted(); };
  const bool queue = config_->concurrency == ConcurrencyMode::kQueue;
  switch (config_->gate->Acquire(session_id_, waiter_, queue, config_->max_queue)) {
    case SessionGate::Admit::kGranted:
      waiter_->on_grant = nullptr;
      gate_held_ = true;
      TakeLease();
      return;
    case SessionGate::Admit::kQueued:
      // Bounded wait for the requests ahead of this one.
      ArmTimer(config_->queue_timeout, [this] {
        ++config_->counters->queue_timeouts;
        ReleaseSession();
        phase_ = Phase::kDone;
        FinishRequest(LocalReplyForError(WithErrorCode(
            WithHttpStatus(absl::DeadlineExceededError(absl::StrFormat(
                               "Session \"%s\" stayed busy for %s (requests ahead of this one "
                               "did not finish).",
                               session_id_, absl::FormatDuration(config_->queue_timeout))),
                           409),
            "session_busy")));
      });
      return;
    case SessionGate::Admit::kBusy:
    case SessionGate::Admit::kFull:
      ++config_->counters->busy_rejected;
      FinishRequest(LocalReplyForError(WithErrorCode(
          WithHttpStatus(absl::AbortedError(absl::StrFormat(
                             "Session \"%s\" is busy with another request; retry when it "
                             "finished.",
                             session_id_)),
                         409),
          "session_busy")));
      return;
  }
}

void ContextFilter::OnGateGranted() {
  if (timer_ != nullptr) timer_->Cancel();
  gate_held_ = true;
  TakeLease();
}

void ContextFilter::TakeLease() {
  phase_ = Phase::kLease;
  if (lease_token_.empty()) {
    // One token per process (the gate already orders this process's requests), so a
    // lease whose release was lost never blocks the next request of this process.
    lease_token_ = config_->lease_token;
    lease_deadline_ = ctx_->clock->Now() + (config_->concurrency == ConcurrencyMode::kQueue
                                                ? config_->queue_timeout
                                                : absl::ZeroDuration());
  }
  ArmTimer([this] {
    op_.reset();
    StoreUnavailable(absl::DeadlineExceededError(absl::StrFormat(
                         "no answer within %s", absl::FormatDuration(config_->store_timeout))),
                     "lock");
  });
  Adopt(store_->TryLock(session_id_, lease_token_, config_->lease_ttl,
                        [this](absl::StatusOr<bool> got) {
                          OpDone();
                          if (!got.ok()) {
                            StoreUnavailable(got.status(), "lock");
                            return;
                          }
                          if (*got) {
                            lease_held_ = true;
                            ScheduleLeaseRenewal();
                            Load();
                            return;
                          }
                          // Another process holds the session.
                          const absl::Time now = ctx_->clock->Now();
                          if (config_->concurrency == ConcurrencyMode::kReject ||
                              now >= lease_deadline_) {
                            if (config_->concurrency == ConcurrencyMode::kQueue) {
                              ++config_->counters->queue_timeouts;
                            } else {
                              ++config_->counters->busy_rejected;
                            }
                            ReleaseSession();
                            FinishRequest(LocalReplyForError(WithErrorCode(
                                WithHttpStatus(
                                    absl::AbortedError(absl::StrFormat(
                                        "Session \"%s\" is busy with another request; retry "
                                        "when it finished.",
                                        session_id_)),
                                    409),
                                "session_busy")));
                            return;
                          }
                          // Poll for the lease: 20 ms, not past the queue deadline.
                          if (lease_retry_ == nullptr) lease_retry_ = cb_->event_loop().NewTimer();
                          lease_retry_->Arm(std::min(absl::Milliseconds(20), lease_deadline_ - now),
                                            [this] { TakeLease(); });
                        }));
}

void ContextFilter::Load() {
  phase_ = Phase::kLoad;
  ArmTimer([this] {
    op_.reset();
    StoreUnavailable(absl::DeadlineExceededError(absl::StrFormat(
                         "no answer within %s", absl::FormatDuration(config_->store_timeout))),
                     "load");
  });
  Adopt(store_->Get(session_id_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
    OpDone();
    OnLoaded(std::move(got));
  }));
}

void ContextFilter::OnLoaded(absl::StatusOr<std::optional<StoredContext>> got) {
  if (!got.ok()) {
    StoreUnavailable(got.status(), "load");
    return;
  }
  if (got->has_value() && (*got)->record->owner != owner_) {
    // Someone else's session: indistinguishable from one that does not exist.
    ReleaseSession();
    phase_ = Phase::kDone;
    FinishRequest(LocalReplyForError(WithErrorCode(
        absl::NotFoundError(absl::StrFormat("Session \"%s\" not found.", session_id_)),
        "session_not_found")));
    return;
  }
  loaded_ = std::move(*got);
  version_ = loaded_.has_value() ? loaded_->version : 0;
  ++config_->counters->sessions_loaded;
  absl::Status built = BuildRequest();
  if (!built.ok()) {
    ReleaseSession();
    phase_ = Phase::kDone;
    FinishRequest(LocalReplyForError(built));
    return;
  }
  phase_ = Phase::kReady;
  FinishRequest(std::nullopt);
}

void ContextFilter::ApplyGuardrails(const std::map<std::string, std::string>& metadata) {
  std::vector<Message> prompts;
  for (const Guardrail& rule : config_->guardrails) {
    bool match = std::all_of(rule.match.begin(), rule.match.end(), [&](const auto& kv) {
      auto it = metadata.find(kv.first);
      return it != metadata.end() && it->second == kv.second;
    });
    if (!match) continue;
    if (!rule.system_prompt.empty()) prompts.push_back(MakeMessage(Role::kSystem, rule.system_prompt));
    if (!rule.disclaimer.empty()) {
      if (!disclaimer_.empty()) disclaimer_ += "\n";
      disclaimer_ += rule.disclaimer;
    }
  }
  if (!prompts.empty()) {
    std::vector<Message>& messages = ctx_->chat->messages;
    messages.insert(messages.begin(), prompts.begin(), prompts.end());
  }
}

absl::Status ContextFilter::BuildRequest() {
  std::map<std::string, std::string> metadata;
  const std::vector<HistoryEntry>* history = nullptr;
  static const std::vector<HistoryEntry> kEmpty;
  history = loaded_.has_value() ? &loaded_->record->history : &kEmpty;
  if (loaded_.has_value()) metadata = loaded_->record->metadata;
  for (const auto& [k, v] : new_metadata_) metadata[k] = v;
  // Stored metadata routes too (the request's own entries were published already).
  for (const auto& [key, value] : metadata) {
    ctx_->metadata[absl::StrFormat("%s%s", kMetadataPrefix, key)] = value;
  }
  size_t bytes = 0;
  for (const HistoryEntry& e : *history) bytes += MessageBytes(e.message);
  for (const Message& m : new_messages_) bytes += MessageBytes(m);
  if (bytes > config_->max_history_bytes) {
    return BadField("messages", absl::StrFormat(
                                    "session \"%s\": the history would hold %d bytes of text, "
                                    "more than context.max_history_bytes (%d); start a new "
                                    "session or delete this one",
                                    session_id_, bytes, config_->max_history_bytes));
  }
  turn_ = (loaded_.has_value() ? loaded_->record->turn_count : 0) + 1;
  if (!history->empty()) {
    int64_t window = 0;
    const Encoding* encoding = nullptr;
    ResolveWindow(&window, &encoding);
    if (window > 0 && encoding != nullptr) {
      // What the request spends outside its messages: tools and the reply priming.
      ChatRequest outside = *ctx_->chat;
      outside.messages.clear();
      ChatTokenOptions count_options;
      count_options.model = outside.model;
      const int64_t overhead = CountChatTokens(*encoding, outside, count_options).prompt_tokens;
      const int64_t reserve = ctx_->chat->max_completion_tokens.value_or(
          ctx_->chat->max_tokens.value_or(config_->reserve_output_tokens));
      WindowOptions options;
      options.budget_tokens = window - reserve - overhead;
      options.counting.model = outside.model;
      // The counts kept with the stored record: the history's entries are not counted or
      // hashed again, only what was appended since the last window.
      if (loaded_.has_value()) options.history_counts = loaded_->token_counts.get();
      absl::StatusOr<WindowResult> fitted =
          FitContext(*history, new_messages_, *encoding, options, config_->token_cache.get());
      if (!fitted.ok()) return fitted.status();
      ctx_->chat->messages = std::move(fitted->messages);
      dropped_ = std::move(fitted->dropped);
    } else {
      std::vector<Message> all = HistoryMessages(*loaded_->record);
      all.insert(all.end(), new_messages_.begin(), new_messages_.end());
      ctx_->chat->messages = std::move(all);
    }
  }
  ApplyGuardrails(metadata);
  return absl::OkStatus();
}

void ContextFilter::ResolveWindow(int64_t* window, const Encoding** encoding) {
  ResolveContextWindow(*ctx_, cb_->services().Random(), window, &encoding_);
  *encoding = encoding_.get();
}

void ContextFilter::StoreUnavailable(const absl::Status& status, std::string_view what) {
  ++config_->counters->failed_reads;
  Log(absl::StrFormat("context: %s session \"%s\" failed: %s", what, session_id_,
                      status.ToString()));
  ReleaseSession();
  if (config_->failure_mode == FailureMode::kOpen) {
    ++config_->counters->fail_open;
    unavailable_ = true;
    phase_ = Phase::kDone;
    FinishRequest(std::nullopt);
    return;
  }
  phase_ = Phase::kDone;
  FinishRequest(LocalReplyForError(WithErrorCode(
      WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                         "The conversation store is unavailable (%s session \"%s\": %s).", what,
                         session_id_, status.message())),
                     503),
      "context_unavailable")));
}

void ContextFilter::ArmTimer(absl::Duration delay, absl::AnyInvocable<void()> on_timeout) {
  if (timer_ == nullptr) timer_ = cb_->event_loop().NewTimer();
  timer_->Arm(delay, std::move(on_timeout));
}

FilterStatus ContextFilter::OnResponseHeaders(RequestContext& ctx, ResponseHead& head,
                                              FilterCallbacks&) {
  if (config_ == nullptr || session_id_.empty()) return FilterStatus::kContinue;
  head.headers.emplace_back("X-Session-Id", session_id_);
  if (unavailable_) {
    head.headers.emplace_back("X-Context-Status", "unavailable");
  } else if (phase_ == Phase::kReady) {
    // The head goes out before the append: a success names the turn number the append
    // stores the turn under when it succeeds (its failure is logged and counted; a turn
    // stored under a later number after a conflict too), an error the count before it.
    const bool success = head.status >= 200 && head.status < 300;
    if (success) announced_turn_ = turn_;
    head.headers.emplace_back("X-Session-Turn",
                              absl::StrFormat("%d", success ? turn_ : turn_ - 1));
  }
  return FilterStatus::kContinue;
}

FilterStatus ContextFilter::OnResponseBody(RequestContext&, ResponseHead& head,
                                           std::string& body, FilterCallbacks&) {
  if (phase_ != Phase::kReady || head.status < 200 || head.status >= 300) {
    return FilterStatus::kContinue;
  }
  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(body);
  if (!completion.ok() || completion->choices.empty()) return FilterStatus::kContinue;
  whole_reply_ = completion->choices.front().message;
  if (!disclaimer_.empty()) {
    for (ChatChoice& choice : completion->choices) {
      if (!choice.message.content.has_value()) continue;
      if (auto* text = std::get_if<std::string>(&*choice.message.content)) {
        *text = disclaimer_ + "\n\n" + *text;
      }
    }
    body = SerializeChatCompletion(*completion);
  }
  return FilterStatus::kContinue;
}

FilterStatus ContextFilter::OnResponseEvents(RequestContext&, std::vector<SseEvent>& events,
                                             FilterCallbacks&) {
  if (phase_ != Phase::kReady) return FilterStatus::kContinue;
  for (SseEvent& event : events) {
    if (event.data.empty() || event.data == "[DONE]") continue;
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(event.data);
    if (!chunk.ok()) continue;
    bool changed = false;
    for (ChunkChoice& choice : chunk->choices) {
      if (choice.index != 0) continue;  // the conversation continues with choice 0
      const ChatDelta& d = choice.delta;
      if (d.content.has_value()) {
        stream_text_ += *d.content;  // stored as the model wrote it
        if (!disclaimer_.empty() && !disclaimer_sent_) {
          disclaimer_sent_ = true;
          choice.delta.content = disclaimer_ + "\n\n" + *d.content;
          changed = true;
        }
      }
      if (d.refusal.has_value()) stream_refusal_ += *d.refusal;
      for (const ToolCallDelta& t : d.tool_calls) {
        ToolCallParts& parts = stream_tools_[t.index];
        if (t.id.has_value()) parts.id = *t.id;
        if (t.type.has_value()) parts.type = *t.type;
        if (t.function.has_value()) {
          if (t.function->name.has_value()) parts.name += *t.function->name;
          if (t.function->arguments.has_value()) parts.arguments += *t.function->arguments;
        }
      }
    }
    if (changed) event.data = SerializeChatCompletionChunk(*chunk);
  }
  return FilterStatus::kContinue;
}

Message ContextFilter::AssembledReply() const {
  if (whole_reply_.has_value()) return *whole_reply_;
  Message reply = MakeMessage(Role::kAssistant);
  if (!stream_text_.empty() || (stream_tools_.empty() && stream_refusal_.empty())) {
    reply.content = stream_text_;
  }
  if (!stream_refusal_.empty()) reply.refusal = stream_refusal_;
  for (const auto& [index, parts] : stream_tools_) {
    ToolCall call;
    call.id = parts.id;
    call.type = parts.type;
    if (parts.type == "function") call.function = FunctionCall{parts.name, parts.arguments, {}};
    reply.tool_calls.push_back(std::move(call));
  }
  return reply;
}

FilterStatus ContextFilter::OnResponseComplete(RequestContext&, const ResponseOutcome& outcome,
                                               FilterCallbacks&) {
  if (phase_ != Phase::kReady) {
    ReleaseSession();
    return FilterStatus::kContinue;
  }
  outcome_ = outcome;
  const bool success = outcome.error.ok() && outcome.status >= 200 && outcome.status < 300;
  if (!success) {
    // Nothing to keep: the turn did not happen (error, cut stream, client gone).
    phase_ = Phase::kDone;
    ReleaseSession();
    return FilterStatus::kContinue;
  }
  in_complete_ = true;
  Append();
  in_complete_ = false;
  if (complete_done_) return FilterStatus::kContinue;
  return FilterStatus::kPause;
}

ContextAppend ContextFilter::MakeAppend(const ContextRecord* record) const {
  ContextAppend append;
  append.owner = owner_;
  append.now = ctx_->clock->Now();
  append.metadata = new_metadata_;
  append.turns = 1;
  for (const Message& m : new_messages_) {
    append.entries.push_back({.message = m, .turn = turn_});
    if (m.role == Role::kTool && m.tool_call_id.has_value() && record != nullptr) {
      // A result for a call an earlier reply made: the latest invocation with that id.
      for (size_t i = record->tool_calls.size(); i-- > 0;) {
        if (record->tool_calls[i].id == *m.tool_call_id) {
          append.tool_results.emplace_back(i, ContentText(m));
          break;
        }
      }
    }
  }
  Message reply = AssembledReply();
  for (const ToolCall& call : reply.tool_calls) {
    ToolInvocation invocation;
    invocation.turn = turn_;
    invocation.id = call.id;
    if (call.function.has_value()) {
      invocation.name = call.function->name;
      invocation.arguments = call.function->arguments;
    }
    append.tool_calls.push_back(std::move(invocation));
  }
  append.entries.push_back({.message = std::move(reply), .turn = turn_});
  ModelChoice choice;
  choice.turn = turn_;
  choice.model = ctx_->chat->model;
  if (ctx_->route.provider != nullptr) choice.provider = ctx_->route.provider->name;
  if (ctx_->route.model != nullptr) choice.upstream_model = ctx_->route.model->upstream_model;
  choice.usage = outcome_.usage;
  choice.usage_estimated = outcome_.usage_estimated;
  append.model_choice = std::move(choice);
  return append;
}

void ContextFilter::Append() {
  phase_ = Phase::kAppend;
  ++append_attempts_;
  ArmTimer([this] {
    op_.reset();
    OnAppended(absl::DeadlineExceededError(absl::StrFormat(
        "no answer within %s", absl::FormatDuration(config_->store_timeout))));
  });
  ContextAppend append = MakeAppend(loaded_.has_value() ? loaded_->record.get() : nullptr);
  // Let go of the record first: a memory store extends a record nobody holds in place, and
  // copies the whole history of one still held (store.h).
  loaded_.reset();
  Adopt(store_->Append(session_id_, version_, std::move(append),
                       [this](absl::StatusOr<uint64_t> version) {
                         OpDone();
                         OnAppended(std::move(version));
                       }));
}

void ContextFilter::OnAppended(absl::StatusOr<uint64_t> version) {
  if (version.ok()) {
    ++config_->counters->turns_appended;
    version_ = *version;
    if (announced_turn_ != 0 && announced_turn_ != turn_) {
      ++config_->counters->turns_renumbered;
      Log(absl::StrFormat(
          "context: session \"%s\": turn %d (X-Session-Turn) stored as turn %d: another "
          "writer appended while this request held the session (its lease was lost)",
          session_id_, announced_turn_, turn_));
    }
    MaybeSummarize();
    FinishResponse();
    return;
  }
  if (version.status().code() == absl::StatusCode::kAborted &&
      append_attempts_ < kMaxAppendAttempts) {
    // Another writer got there first (another process, or a lease that expired): read
    // the session again and append this turn after theirs.
    ++config_->counters->append_conflicts;
    ArmTimer([this] {
      op_.reset();
      OnAppended(absl::DeadlineExceededError(absl::StrFormat(
          "re-read: no answer within %s", absl::FormatDuration(config_->store_timeout))));
    });
    Adopt(store_->Get(session_id_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
      OpDone();
      OnReloadedForAppend(std::move(got));
    }));
    return;
  }
  ++config_->counters->failed_writes;
  Log(absl::StrFormat("context: append to session \"%s\" (turn %d) failed: %s", session_id_,
                      turn_, version.status().ToString()));
  FinishResponse();
}

void ContextFilter::OnReloadedForAppend(absl::StatusOr<std::optional<StoredContext>> got) {
  if (!got.ok()) {
    OnAppended(got.status());
    return;
  }
  if (got->has_value() && (*got)->record->owner != owner_) {
    OnAppended(absl::FailedPreconditionError("the session now belongs to another owner"));
    return;
  }
  loaded_ = std::move(*got);
  version_ = loaded_.has_value() ? loaded_->version : 0;
  turn_ = (loaded_.has_value() ? loaded_->record->turn_count : 0) + 1;
  Append();
}

void ContextFilter::MaybeSummarize() {
  if (!config_->summarizer.has_value() || dropped_.size() < config_->summarizer->min_dropped_entries ||
      append_attempts_ != 1) {
    return;  // (after a conflict the indices refer to a record that changed)
  }
  const ModelConfig* model = ctx_->snapshot->FindModel(config_->summarizer->model);
  const ProviderConfig* provider =
      model != nullptr ? ctx_->snapshot->FindProvider(model->provider) : nullptr;
  if (provider == nullptr) {
    ++config_->counters->failed_writes;
    Log(absl::StrFormat("context: summarizer model \"%s\" is not a model of this configuration",
                        config_->summarizer->model));
    return;
  }
  SummaryRequest request;
  request.loop = &cb_->event_loop();
  request.store = store_;
  request.counters = config_->counters;
  request.log = config_->log;
  request.session_id = session_id_;
  request.version = version_;
  request.dropped = dropped_;
  request.model = model->name;
  request.upstream_model = model->upstream_model;
  request.provider = *provider;
  StartSummary(cb_->upstream(), std::move(request));
}

void ContextFilter::FinishResponse() {
  phase_ = Phase::kDone;
  ReleaseSession();
  if (in_complete_) {
    complete_done_ = true;
    return;
  }
  cb_->Continue();
}

void ContextFilter::ScheduleLeaseRenewal() {
  if (lease_renew_ == nullptr) lease_renew_ = cb_->event_loop().NewTimer();
  lease_renew_->Arm(config_->lease_ttl / 3, [this] { RenewLease(); });
}

void ContextFilter::RenewLease() {
  if (!lease_held_) return;
  renew_retired_.reset();
  // TryLock with this process's token extends the lease it holds. Not bounded by a timer of
  // its own: the next renewal does not wait for it, and ReleaseSession cancels it.
  StoreHandle handle = store_->TryLock(
      session_id_, lease_token_, config_->lease_ttl, [this](absl::StatusOr<bool> got) {
        renew_retired_ = std::move(renew_op_);  // not destroyed inside its own callback
        if (got.ok() && *got) return;
        ++config_->counters->lease_renewal_failures;
        Log(absl::StrFormat("context: renewing the lease of session \"%s\" failed: %s",
                            session_id_,
                            got.ok() ? "another process holds it (it had expired)"
                                     : got.status().ToString()));
      });
  if (handle != nullptr) renew_op_ = std::move(handle);
  ScheduleLeaseRenewal();
}

void ContextFilter::ReleaseSession() {
  if (lease_retry_ != nullptr) lease_retry_->Cancel();
  if (lease_renew_ != nullptr) lease_renew_->Cancel();
  renew_op_.reset();
  if (lease_held_) {
    lease_held_ = false;
    // Fire and forget, but kept until it completed (a dropped operation may never be
    // sent, and another process would wait for lease_ttl), by the loop's store entry,
    // which destroys it before the store. A lease not released expires after lease_ttl.
    std::weak_ptr<DetachedOps> keeper = detached_;
    EventLoop* loop = &cb_->event_loop();
    const uint64_t id = detached_->Add();
    detached_->Keep(id, store_->Unlock(session_id_, lease_token_,
                                       [keeper, loop, id](absl::StatusOr<bool>) {
                                         // Not from inside its own callback.
                                         loop->Post([keeper, id] {
                                           if (auto ops = keeper.lock()) ops->Done(id);
                                         });
                                       }));
  }
  if (waiter_ != nullptr) {
    waiter_->on_grant = nullptr;
    config_->gate->Release(session_id_, waiter_);
    waiter_ = nullptr;
  }
  gate_held_ = false;
}

void ContextFilter::OnDestroy() {
  if (config_ == nullptr || session_id_.empty()) return;
  if (timer_ != nullptr) timer_->Cancel();
  op_.reset();
  retired_.reset();
  ReleaseSession();
  renew_retired_.reset();
}

class ContextFilterFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override {
    return std::make_unique<ContextFilter>();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<FilterFactory>> BuildContextFilter(std::string_view config_json,
                                                                 const BuildContext&) {
  Json json = Json::parse(config_json, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return InvalidFieldError("", "must be an object");
  if (!json.empty()) {
    return InvalidFieldError(json.begin().key(),
                             "unknown field (the context filter is configured by the "
                             "top-level \"context\" section)");
  }
  return std::unique_ptr<FilterFactory>(std::make_unique<ContextFilterFactory>());
}

}  // namespace modeenvoy::context_internal
