// lib/responses_ingress/state.cc: the endpoint filter of POST /v1/responses, the Responses
// API's server-side state on the context store (include/modeenvoy/ingress/responses.h).
//
// Request phase (after the configured filters, so the caller is named): issues the
// gateway's response id ("resp_" + 128 random bits from Services), takes `store` and
// `previous_response_id` out of the request (neither reaches a provider), and for a
// previous_response_id loads that response's record and sends its conversation (windowed
// to the target model) before the new input. Response phase: puts the gateway's id on the
// unified answer (the codec renders every response object and event with it), assembles a
// streamed answer, and on success with `store` writes the record before the final bytes
// go out. A record holds the whole conversation up to and including its response, so a
// continuation costs one read and deleting a response leaves the later ones whole.
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/gateway/services.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/status.h"

namespace modeenvoy::responses_internal {
namespace {

// One streamed tool call being assembled.
struct CallParts {
  std::string id;
  std::string type = "function";
  std::string name;
  std::string arguments;
};

std::string NewResponseId(Services& services) {
  return absl::StrFormat("resp_%016x%016x", services.Random(), services.Random());
}

class StateFilter final : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override {
    if (ctx.chat == nullptr) return FilterResult::Continue();
    cb_ = &callbacks;
    ctx_ = &ctx;
    // The codec parsed this body already (an object whose `store` is a boolean and whose
    // `previous_response_id` is a string or null): the members the filter needs are texts
    // of the echo it keeps for the stored record, so the body is read once more with the
    // pull reader and not parsed into a DOM.
    echo_ = EchoOf(ctx.request.body);
    StateMembers members = StateMembersOf(echo_);
    store_ = members.store;
    if (members.previous_response_id.has_value()) {
      previous_ = std::move(*members.previous_response_id);
      if (previous_.empty()) {
        return FilterResult::Error(
            InvalidFieldError("previous_response_id", "must not be empty"));
      }
    }
    // The gateway's own members never reach a provider.
    ctx.chat->store.reset();
    for (auto it = ctx.chat->extra.begin(); it != ctx.chat->extra.end(); ++it) {
      if (it->first == "previous_response_id") {
        ctx.chat->extra.erase(it);
        break;
      }
    }
    // The input, without the system message `instructions` became (only one with text
    // becomes one): instructions are not carried over to a continuation (as OpenAI's).
    input_ = ctx.chat->messages;
    if (members.instructions && !input_.empty() && input_.front().role == Role::kSystem) {
      input_.erase(input_.begin());
    }
    id_ = NewResponseId(callbacks.services());
    ctx.metadata[std::string(kResponseIdKey)] = id_;

    absl::StatusOr<std::optional<ContextStoreAccess>> access =
        ContextStoreForSnapshot(*ctx.snapshot, callbacks.event_loop());
    if (!access.ok()) {
      // Only a continuation needs the store to answer; a new response is answered anyway
      // and not kept.
      if (!previous_.empty()) return FilterResult::Error(access.status());
      store_ = false;
      return FilterResult::Continue();
    }
    if (!access->has_value()) {
      store_ = false;
      if (previous_.empty()) return FilterResult::Continue();
      return FilterResult::Error(WithHttpStatus(
          InvalidFieldError("previous_response_id",
                            "this gateway has no response store configured (no \"context\" "
                            "section), so it keeps no earlier responses to continue"),
          400));
    }
    access_ = std::move(**access);
    owner_ = ContextOwnerOf(ctx);
    if (previous_.empty()) return FilterResult::Continue();
    in_request_ = true;
    LoadPrevious();
    in_request_ = false;
    if (!request_result_.has_value()) return FilterResult::Pause();
    std::optional<LocalReply> reply = std::move(*request_result_);
    if (reply.has_value()) return FilterResult::Reply(std::move(*reply));
    return FilterResult::Continue();
  }

  FilterStatus OnResponseBody(RequestContext&, ResponseHead& head, std::string& body,
                              FilterCallbacks&) override {
    if (id_.empty() || head.status < 200 || head.status >= 300) return FilterStatus::kContinue;
    absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(body);
    if (!completion.ok()) return FilterStatus::kContinue;  // the codec reports it
    completion->id = id_;
    body = SerializeChatCompletion(*completion);
    completion_ = *std::move(completion);
    return FilterStatus::kContinue;
  }

  FilterStatus OnResponseEvents(RequestContext&, std::vector<SseEvent>& events,
                                FilterCallbacks&) override {
    if (id_.empty()) return FilterStatus::kContinue;
    for (SseEvent& event : events) {
      if (event.data.empty() || event.data == kSseDoneData) continue;
      if (started_ && !store_) return FilterStatus::kContinue;  // nothing more to do
      absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(event.data);
      if (!chunk.ok()) continue;
      if (!started_) {
        // The renderer names the response after the first chunk's id.
        started_ = true;
        created_ = chunk->created;
        model_ = chunk->model;
        chunk->id = id_;
        event.data = SerializeChatCompletionChunk(*chunk);
      }
      if (chunk->usage.has_value()) stream_usage_ = chunk->usage;
      for (const ChunkChoice& choice : chunk->choices) {
        if (choice.index != 0) continue;
        const ChatDelta& d = choice.delta;
        if (d.content.has_value()) text_ += *d.content;
        if (d.refusal.has_value()) refusal_ += *d.refusal;
        for (const ToolCallDelta& t : d.tool_calls) {
          CallParts& parts = calls_[t.index];
          if (t.id.has_value()) parts.id = *t.id;
          if (t.type.has_value()) parts.type = *t.type;
          if (t.function.has_value()) {
            if (t.function->name.has_value()) parts.name += *t.function->name;
            if (t.function->arguments.has_value()) parts.arguments += *t.function->arguments;
          }
        }
        if (choice.finish_reason.has_value()) finish_reason_ = choice.finish_reason;
      }
    }
    return FilterStatus::kContinue;
  }

  FilterStatus OnResponseComplete(RequestContext&, const ResponseOutcome& outcome,
                                  FilterCallbacks&) override {
    const bool success = outcome.error.ok() && outcome.status >= 200 && outcome.status < 300;
    if (!store_ || access_.store == nullptr || !success) return FilterStatus::kContinue;
    if (!completion_.has_value()) {
      if (!started_) return FilterStatus::kContinue;  // nothing answered
      completion_ = AssembledCompletion(outcome);
    }
    in_complete_ = true;
    Store();
    in_complete_ = false;
    if (complete_done_) return FilterStatus::kContinue;
    return FilterStatus::kPause;
  }

  void OnDestroy() override {
    if (timer_ != nullptr) timer_->Cancel();
    op_.reset();
    retired_.reset();
  }

 private:
  void LoadPrevious() {
    ArmTimer([this] {
      op_.reset();
      FinishRequest(LocalReplyForError(StoreError(
          absl::DeadlineExceededError(absl::StrFormat(
              "no answer within %s", absl::FormatDuration(access_.timeout))),
          "reading")));
    });
    StoreHandle h = access_.store->Get(
        previous_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
          retired_ = std::move(op_);
          if (timer_ != nullptr) timer_->Cancel();
          if (!got.ok()) {
            FinishRequest(LocalReplyForError(StoreError(got.status(), "reading")));
            return;
          }
          // Another owner's response, a session that is not a response, and a missing
          // one are answered alike: ids never leak to whoever guesses them.
          if (!got->has_value() || (*got)->record->owner != owner_ ||
              !(*got)->record->metadata.contains(std::string(kCompletionKey))) {
            FinishRequest(LocalReplyForError(WithErrorCode(
                FieldError(absl::StatusCode::kNotFound, "previous_response_id",
                           absl::StrFormat("Previous response with id '%s' not found.",
                                           previous_)),
                "previous_response_not_found")));
            return;
          }
          const ContextRecord& record = *(*got)->record;
          history_ = record.history;
          turns_ = record.turn_count;
          absl::StatusOr<std::vector<Message>> fitted = FitHistoryToRequestModel(
              *ctx_, cb_->services().Random(), history_, ctx_->chat->messages,
              access_.reserve_output_tokens);
          if (!fitted.ok()) {
            FinishRequest(LocalReplyForError(fitted.status()));
            return;
          }
          ctx_->chat->messages = *std::move(fitted);
          FinishRequest(std::nullopt);
        });
    if (h != nullptr && !request_done_) op_ = std::move(h);
  }

  ChatCompletion AssembledCompletion(const ResponseOutcome& outcome) const {
    ChatCompletion c;
    c.id = id_;
    c.created = created_;
    c.model = model_;
    ChatChoice choice;
    Message& m = choice.message;
    if (!text_.empty() || (calls_.empty() && refusal_.empty())) m.content = text_;
    if (!refusal_.empty()) m.refusal = refusal_;
    for (const auto& [index, parts] : calls_) {
      ToolCall call;
      call.id = parts.id;
      call.type = parts.type;
      if (parts.type == "function") call.function = FunctionCall{parts.name, parts.arguments, {}};
      m.tool_calls.push_back(std::move(call));
    }
    choice.finish_reason = finish_reason_;
    c.choices.push_back(std::move(choice));
    c.usage = stream_usage_.has_value() ? stream_usage_ : outcome.usage;
    return c;
  }

  void Store() {
    ContextAppend append;
    append.owner = owner_;
    append.now = ctx_->clock->Now();
    append.turns = turns_ + 1;
    const int64_t turn = turns_ + 1;
    append.entries.reserve(history_.size() + input_.size() + 1);
    for (const HistoryEntry& e : history_) append.entries.push_back(e);
    for (const Message& m : input_) append.entries.push_back({.message = m, .turn = turn});
    if (!completion_->choices.empty()) {
      append.entries.push_back({.message = completion_->choices.front().message, .turn = turn});
    }
    append.metadata[std::string(kCompletionKey)] = SerializeChatCompletion(*completion_);
    append.metadata[std::string(kEchoKey)] = EchoJson(echo_);
    append.metadata[std::string(kInputCountKey)] = absl::StrCat(input_.size());
    if (!previous_.empty()) append.metadata[std::string(kPreviousKey)] = previous_;
    ArmTimer([this] {
      op_.reset();
      Log(absl::StrFormat("responses: storing %s timed out after %s", id_,
                          absl::FormatDuration(access_.timeout)));
      CompleteDone();
    });
    StoreHandle h = access_.store->Append(
        id_, /*expected_version=*/0, std::move(append), [this](absl::StatusOr<uint64_t> v) {
          retired_ = std::move(op_);
          if (timer_ != nullptr) timer_->Cancel();
          // The answer goes out either way; a response that could not be kept is not
          // retrievable (and its continuation a 404), which the log says.
          if (!v.ok()) Log(absl::StrFormat("responses: storing %s failed: %s", id_,
                                           v.status().ToString()));
          CompleteDone();
        });
    if (h != nullptr && !complete_done_) op_ = std::move(h);
  }

  void Log(const std::string& line) {
    if (access_.log != nullptr) {
      access_.log(line);
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

  absl::Status StoreError(const absl::Status& status, std::string_view what) {
    Log(absl::StrFormat("responses: %s %s failed: %s", what, previous_, status.ToString()));
    return WithErrorCode(
        WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                           "The response store is unavailable: %s", status.message())),
                       503),
        "context_unavailable");
  }

  void ArmTimer(absl::AnyInvocable<void()> on_timeout) {
    if (timer_ == nullptr) timer_ = cb_->event_loop().NewTimer();
    timer_->Arm(access_.timeout, std::move(on_timeout));
  }

  void FinishRequest(std::optional<LocalReply> reply) {
    if (request_done_) return;
    request_done_ = true;
    if (in_request_) {
      request_result_ = std::move(reply);
    } else if (reply.has_value()) {
      cb_->SendLocalReply(std::move(*reply));
    } else {
      cb_->Continue();
    }
  }

  void CompleteDone() {
    if (complete_done_) return;
    complete_done_ = true;
    if (!in_complete_) cb_->Continue();
  }

  FilterCallbacks* cb_ = nullptr;
  RequestContext* ctx_ = nullptr;
  ContextStoreAccess access_;  // store null: nothing is kept
  std::string owner_;
  std::string id_;
  bool store_ = true;  // OpenAI's default
  std::string previous_;
  Echo echo_;
  std::vector<Message> input_;
  std::vector<HistoryEntry> history_;  // the previous response's conversation
  int64_t turns_ = 0;
  std::unique_ptr<Timer> timer_;
  StoreHandle op_;
  StoreHandle retired_;
  bool in_request_ = false;
  bool request_done_ = false;
  std::optional<std::optional<LocalReply>> request_result_;
  bool in_complete_ = false;
  bool complete_done_ = false;
  // The answer.
  std::optional<ChatCompletion> completion_;
  bool started_ = false;
  int64_t created_ = 0;
  std::string model_;
  std::string text_;
  std::string refusal_;
  std::map<int64_t, CallParts> calls_;
  std::optional<std::string> finish_reason_;
  std::optional<Usage> stream_usage_;
};

}  // namespace

namespace {
class StateFilterFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override { return std::make_unique<StateFilter>(); }
};
}  // namespace

std::shared_ptr<const FilterFactory> NewStateFilterFactory() {
  return std::make_shared<StateFilterFactory>();
}

}  // namespace modeenvoy::responses_internal
