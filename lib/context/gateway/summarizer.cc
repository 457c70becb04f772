// lib/context/gateway/summarizer.cc: folding the turns windowing dropped into one summary
// message, asynchronously, through the gateway's own upstream path to the summarizer
// model's provider (its dialect builds, signs and translates the call).
//
// The job owns itself from Start until it finished (the request that started it is over
// by then). It reads the session, checks that it is still at the version the request
// wrote (otherwise the conversation moved on and a later request summarizes again), asks
// the model, and replaces the record with compare-and-set: the summary entry first, then
// every entry that was not folded. A failure is logged and counted; the conversation is
// untouched.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "lib/context/gateway/internal.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/protocol/chat.h"

namespace modeenvoy::context_internal {
namespace {

constexpr size_t kMaxSummaryResponseBytes = size_t{4} << 20;
constexpr char kInstruction[] =
    "Summarize the earlier part of this conversation for the assistant that continues it. "
    "Keep facts, names, numbers, decisions, tool results and open questions; be concise; "
    "write only the summary.";

std::string Text(const Message& m) {
  std::string out;
  if (m.content.has_value()) {
    if (const auto* text = std::get_if<std::string>(&*m.content)) {
      out = *text;
    } else {
      for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
        if (!out.empty() && !p.text.empty()) out += "\n";
        out += p.text;
      }
    }
  }
  for (const ToolCall& c : m.tool_calls) {
    if (c.function.has_value()) {
      out += absl::StrFormat("%s[call %s(%s)]", out.empty() ? "" : " ", c.function->name,
                             c.function->arguments);
    }
  }
  return out;
}

class SummaryJob final : public UpstreamHandler, public std::enable_shared_from_this<SummaryJob> {
 public:
  explicit SummaryJob(SummaryRequest request) : r_(std::move(request)) {}

  void Start(UpstreamClient& upstream) {
    self_ = shared_from_this();
    upstream_ = &upstream;
    StoreHandle op = r_.store->Get(
        r_.session_id,
        [this](absl::StatusOr<std::optional<StoredContext>> got) { OnRead(std::move(got)); });
    if (op != nullptr) op_ = std::move(op);
  }

  void OnHeaders(int status, const HttpHeaders&) override { status_ = status; }
  void OnData(std::string_view chunk) override {
    if (body_.size() + chunk.size() > kMaxSummaryResponseBytes) {
      Fail(absl::ResourceExhaustedError("the summary answer is too large"));
      return;
    }
    body_.append(chunk);
  }
  void OnComplete(absl::Status status) override {
    if (!status.ok()) {
      Fail(status);
      return;
    }
    if (status_ < 200 || status_ >= 300) {
      Fail(r_.provider.dialect->TranslateError(status_, {}, body_));
      return;
    }
    if (absl::Status st = r_.provider.dialect->TranslateResponse(&body_); !st.ok()) {
      Fail(st);
      return;
    }
    absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(body_);
    if (!completion.ok() || completion->choices.empty()) {
      Fail(completion.ok() ? absl::DataLossError("no choices") : completion.status());
      return;
    }
    std::string summary = Text(completion->choices.front().message);
    if (summary.empty()) {
      Fail(absl::DataLossError("the summary is empty"));
      return;
    }
    Replace(std::move(summary));
  }

 private:
  void OnRead(absl::StatusOr<std::optional<StoredContext>> got) {
    if (!got.ok()) {
      Fail(got.status());
      return;
    }
    if (!got->has_value() || (*got)->version != r_.version) {
      Finish();  // deleted, or written since: nothing to fold now
      return;
    }
    record_ = *(*got)->record;  // a copy to edit: the stored record is shared and immutable
    std::vector<bool> fold(record_.history.size(), false);
    for (size_t i : r_.dropped) {
      if (i < fold.size()) fold[i] = true;
    }
    // An earlier summary is folded into the new one wherever it stands.
    std::string transcript;
    for (size_t i = 0; i < record_.history.size(); ++i) {
      const HistoryEntry& e = record_.history[i];
      if (!fold[i] && !e.summary) continue;
      fold[i] = true;
      transcript += absl::StrFormat("%s: %s\n", e.summary ? "summary" : RoleName(e.message.role),
                                    Text(e.message));
    }
    fold_ = std::move(fold);
    if (transcript.empty()) {
      Finish();
      return;
    }
    ChatRequest chat;
    chat.model = r_.upstream_model;
    chat.messages.push_back(MakeMessage(Role::kSystem, kInstruction));
    chat.messages.push_back(MakeMessage(Role::kUser, transcript));
    UpstreamRequest request;
    request.timeouts = r_.provider.timeouts;
    absl::Status built = r_.provider.dialect->BuildRequest(
        chat, ProviderCall{.stream = false, .upstream_model = r_.upstream_model}, &request);
    if (built.ok()) built = r_.provider.dialect->Sign(&request);
    if (!built.ok()) {
      Fail(built);
      return;
    }
    call_ = upstream_->Start(std::move(request), this);
  }

  void Replace(std::string summary) {
    ContextRecord next = record_;
    next.history.clear();
    HistoryEntry entry;
    entry.message = MakeMessage(Role::kSystem,
                                absl::StrFormat("Summary of the earlier conversation: %s", summary));
    entry.summary = true;
    next.history.push_back(std::move(entry));
    for (size_t i = 0; i < record_.history.size(); ++i) {
      if (!fold_[i]) next.history.push_back(record_.history[i]);
    }
    StoreHandle op = r_.store->Replace(r_.session_id, r_.version, std::move(next),
                                       [this](absl::StatusOr<uint64_t> v) {
                                         if (!v.ok() &&
                                             v.status().code() != absl::StatusCode::kAborted) {
                                           Fail(v.status());
                                           return;
                                         }
                                         // Aborted: a turn was appended meanwhile; a later
                                         // request folds again.
                                         if (v.ok()) ++r_.counters->summaries;
                                         Finish();
                                       });
    if (op != nullptr) op_ = std::move(op);
  }

  void Fail(const absl::Status& status) {
    call_.reset();  // no further callbacks (allowed from inside one)
    if (self_ == nullptr) return;
    ++r_.counters->failed_writes;
    r_.log(absl::StrFormat("context: summarizing session \"%s\" with %s failed: %s", r_.session_id,
                           r_.model, status.ToString()));
    Finish();
  }

  // Drops the self-reference on a later loop round (never while a callback of ours runs).
  void Finish() {
    if (self_ == nullptr) return;
    r_.loop->Post([keep = std::move(self_)] {});
  }

  SummaryRequest r_;
  std::shared_ptr<SummaryJob> self_;
  UpstreamClient* upstream_ = nullptr;
  std::unique_ptr<UpstreamCall> call_;
  StoreHandle op_;
  ContextRecord record_;
  std::vector<bool> fold_;
  int status_ = 0;
  std::string body_;
};

}  // namespace

void StartSummary(UpstreamClient& upstream, SummaryRequest request) {
  std::make_shared<SummaryJob>(std::move(request))->Start(upstream);
}

}  // namespace modeenvoy::context_internal
