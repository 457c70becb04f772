// lib/responses_ingress/stored.cc: GET /v1/responses/{id}, DELETE /v1/responses/{id} and
// GET /v1/responses/{id}/input_items over the records the state filter (state.cc) keeps.
//
// Each handler runs after the filter chain (so an auth filter has named the caller), on the
// request's loop, with its store calls bounded by the context section's store_timeout. A
// response of another owner, a context session that is not a response, and a missing id are
// answered alike (404): ids never leak to whoever guesses them.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/responses_ingress/internal.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"

namespace modeenvoy::responses_internal {
namespace {

using core_internal::Json;
using core_internal::ToAbsl;
using core_internal::ToStd;

constexpr int64_t kDefaultLimit = 20;
constexpr int64_t kMaxLimit = 100;
constexpr size_t kMaxIdBytes = 256;

LocalReply JsonReply(std::string body) {
  LocalReply reply;
  reply.status = 200;
  reply.headers.emplace_back("content-type", "application/json");
  reply.body = std::move(body);
  return reply;
}

LocalReply NotFound(std::string_view id) {
  return LocalReplyForError(WithErrorCode(
      absl::NotFoundError(absl::StrFormat("Response with id '%s' not found.", id)),
      "response_not_found"));
}

// Percent-decodes a path segment or query value. nullopt on a malformed escape.
std::optional<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    int value = 0;
    for (int k = 1; k <= 2; ++k) {
      const char c = in[i + k];
      value <<= 4;
      if (c >= '0' && c <= '9') {
        value |= c - '0';
      } else if (c >= 'a' && c <= 'f') {
        value |= c - 'a' + 10;
      } else if (c >= 'A' && c <= 'F') {
        value |= c - 'A' + 10;
      } else {
        return std::nullopt;
      }
    }
    out.push_back(static_cast<char>(value));
    i += 2;
  }
  return out;
}

// Base of the three handlers: finds the store, reads the record (owner-checked), bounds
// each store call.
class StoredHandler : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) final {
    cb_ = &callbacks;
    absl::StatusOr<std::optional<ContextStoreAccess>> access =
        ContextStoreForSnapshot(*ctx.snapshot, callbacks.event_loop());
    if (!access.ok()) return FilterResult::Error(access.status());
    std::optional<std::string> id = PercentDecode(PathParam(ctx.path_params, "id"));
    if (!id.has_value() || id->empty() || id->size() > kMaxIdBytes) {
      return FilterResult::Error(InvalidFieldError(
          "id", absl::StrFormat("must be a response id of 1 to %d bytes", kMaxIdBytes)));
    }
    id_ = std::move(*id);
    // Without a store nothing was kept: every id is unknown.
    if (!access->has_value()) return FilterResult::Reply(NotFound(id_));
    access_ = std::move(**access);
    owner_ = ContextOwnerOf(ctx);
    if (absl::Status s = ReadQuery(ctx.request.path); !s.ok()) return FilterResult::Error(s);
    timer_ = callbacks.event_loop().NewTimer();
    timer_->Arm(access_.timeout, [this] {
      op_.reset();
      Reply(LocalReplyForError(Unavailable(absl::DeadlineExceededError(absl::StrFormat(
          "no answer within %s", absl::FormatDuration(access_.timeout))))));
    });
    in_request_ = true;
    Adopt(access_.store->Get(id_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
      OpDone();
      if (!got.ok()) {
        Reply(LocalReplyForError(Unavailable(got.status())));
        return;
      }
      if (!got->has_value() || (*got)->record->owner != owner_ ||
          !(*got)->record->metadata.contains(std::string(kCompletionKey))) {
        Reply(NotFound(id_));
        return;
      }
      OnRecord(*(*got)->record);
    }));
    in_request_ = false;
    if (result_.has_value()) {
      timer_->Cancel();
      return FilterResult::Reply(std::move(*result_));
    }
    return FilterResult::Pause();
  }

  void OnDestroy() override {
    if (timer_ != nullptr) timer_->Cancel();
    op_.reset();
    retired_.reset();
  }

 protected:
  // Query parameters (none by default: any is an error naming it).
  virtual absl::Status ReadQuery(std::string_view path) {
    size_t q = path.find('?');
    if (q == std::string_view::npos || q + 1 == path.size()) return absl::OkStatus();
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(ToAbsl(path.substr(q + 1)), absl::MaxSplits('=', 1));
    return InvalidFieldError(ToStd(kv.first), "unknown query parameter");
  }
  // The caller's record of a stored response.
  virtual void OnRecord(const ContextRecord& record) = 0;

  // Answers the request (inline or later). Only the first answer counts.
  void Reply(LocalReply reply) {
    if (answered_) return;
    answered_ = true;
    if (timer_ != nullptr) timer_->Cancel();
    if (in_request_) {
      result_ = std::move(reply);
    } else {
      cb_->SendLocalReply(std::move(reply));
    }
  }
  void Adopt(StoreHandle h) {
    if (h != nullptr && !answered_) op_ = std::move(h);
  }
  void OpDone() { retired_ = std::move(op_); }
  absl::Status Unavailable(const absl::Status& status) {
    access_.log(absl::StrFormat("responses: stored response endpoint failed: %s",
                                status.ToString()));
    return WithErrorCode(
        WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                           "The response store is unavailable: %s", status.message())),
                       503),
        "context_unavailable");
  }

  FilterCallbacks* cb_ = nullptr;
  ContextStoreAccess access_;
  std::string owner_;
  std::string id_;

 private:
  std::unique_ptr<Timer> timer_;
  StoreHandle op_;
  StoreHandle retired_;
  bool in_request_ = false;
  bool answered_ = false;
  std::optional<LocalReply> result_;
};

class GetResponse final : public StoredHandler {
 protected:
  void OnRecord(const ContextRecord& record) override {
    auto completion = record.metadata.find(std::string(kCompletionKey));
    auto echo = record.metadata.find(std::string(kEchoKey));
    absl::StatusOr<std::string> body = RenderStoredResponse(
        completion->second, echo == record.metadata.end() ? "{}" : echo->second);
    if (!body.ok()) {
      Reply(LocalReplyForError(Unavailable(body.status())));
      return;
    }
    Reply(JsonReply(*std::move(body)));
  }
};

class DeleteResponse final : public StoredHandler {
 protected:
  void OnRecord(const ContextRecord&) override {
    Adopt(access_.store->Delete(id_, [this](absl::StatusOr<bool> deleted) {
      OpDone();
      if (!deleted.ok()) {
        Reply(LocalReplyForError(Unavailable(deleted.status())));
      } else if (!*deleted) {
        Reply(NotFound(id_));  // gone meanwhile (expired, or deleted by a racing call)
      } else {
        Json body = {{"id", id_}, {"object", "response"}, {"deleted", true}};
        Reply(JsonReply(body.dump()));
      }
    }));
  }
};

class ListInputItems final : public StoredHandler {
 protected:
  absl::Status ReadQuery(std::string_view path) override {
    size_t q = path.find('?');
    if (q == std::string_view::npos) return absl::OkStatus();
    for (absl::string_view pair : absl::StrSplit(ToAbsl(path.substr(q + 1)), '&')) {
      if (pair.empty()) continue;
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(pair, absl::MaxSplits('=', 1));
      const std::string key = PercentDecode(ToStd(kv.first)).value_or(std::string(ToStd(kv.first)));
      std::optional<std::string> value = PercentDecode(ToStd(kv.second));
      if (!value.has_value()) return InvalidFieldError(key, "malformed percent-escape");
      if (key == "limit") {
        if (!absl::SimpleAtoi(*value, &limit_) || limit_ < 1 || limit_ > kMaxLimit) {
          return InvalidFieldError(
              "limit", absl::StrFormat("must be an integer from 1 to %d (got \"%s\")",
                                       kMaxLimit, *value));
        }
      } else if (key == "order") {
        if (*value != "asc" && *value != "desc") {
          return InvalidFieldError(
              "order", absl::StrFormat("must be \"asc\" or \"desc\" (got \"%s\")", *value));
        }
        ascending_ = *value == "asc";
      } else if (key == "after") {
        if (value->empty()) return InvalidFieldError("after", "must be an item id");
        after_ = std::move(*value);
      } else if (key == "include" || key == "include[]") {
        // Extra data of hosted tools' items, which a stored input never has.
      } else {
        return InvalidFieldError(key, "unknown query parameter");
      }
    }
    return absl::OkStatus();
  }

  void OnRecord(const ContextRecord& record) override {
    // The response's own input: the first `inputs` entries of its turn (the last one).
    int64_t inputs = 0;
    auto count = record.metadata.find(std::string(kInputCountKey));
    if (count == record.metadata.end() || !absl::SimpleAtoi(count->second, &inputs) ||
        inputs < 0) {
      Reply(LocalReplyForError(
          Unavailable(absl::DataLossError(absl::StrFormat("response %s: no input count", id_)))));
      return;
    }
    size_t first = record.history.size();
    while (first > 0 && record.history[first - 1].turn == record.turn_count) --first;
    std::vector<Message> messages;
    for (size_t i = first; i < record.history.size() && messages.size() < static_cast<size_t>(inputs);
         ++i) {
      messages.push_back(record.history[i].message);
    }
    absl::StatusOr<Json> items = InputItems(messages, id_);
    if (!items.ok()) {
      Reply(LocalReplyForError(Unavailable(items.status())));
      return;
    }
    std::vector<Json> ordered(items->begin(), items->end());
    if (!ascending_) std::reverse(ordered.begin(), ordered.end());
    size_t start = 0;
    if (!after_.empty()) {
      bool found = false;
      for (size_t i = 0; i < ordered.size() && !found; ++i) {
        if (ordered[i].value("id", "") == after_) {
          start = i + 1;
          found = true;
        }
      }
      if (!found) {
        Reply(LocalReplyForError(InvalidFieldError(
            "after", absl::StrFormat("no item \"%s\" in the input of response %s", after_, id_))));
        return;
      }
    }
    Json data = Json::array();
    for (size_t i = start; i < ordered.size() && data.size() < static_cast<size_t>(limit_); ++i) {
      data.push_back(ordered[i]);
    }
    const bool has_more = start + data.size() < ordered.size();
    Json body = {{"object", "list"},
                 {"data", data},
                 {"first_id", data.empty() ? Json(nullptr) : data.front()["id"]},
                 {"last_id", data.empty() ? Json(nullptr) : data.back()["id"]},
                 {"has_more", has_more}};
    Reply(JsonReply(body.dump()));
  }

 private:
  int64_t limit_ = kDefaultLimit;
  bool ascending_ = false;  // OpenAI's default order is "desc"
  std::string after_;
};

template <typename Handler>
class HandlerFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override { return std::make_unique<Handler>(); }
};

}  // namespace

absl::Status RegisterStoredResponseEndpoints(EndpointRegistry* endpoints) {
  EndpointSpec get;
  get.kind = "responses.get";
  get.method = "GET";
  get.pattern = "/v1/responses/{id}";
  get.local = std::make_shared<HandlerFactory<GetResponse>>();
  MODEENVOY_RETURN_IF_ERROR(endpoints->Register(std::move(get)));
  EndpointSpec del;
  del.kind = "responses.delete";
  del.method = "DELETE";
  del.pattern = "/v1/responses/{id}";
  del.local = std::make_shared<HandlerFactory<DeleteResponse>>();
  MODEENVOY_RETURN_IF_ERROR(endpoints->Register(std::move(del)));
  EndpointSpec items;
  items.kind = "responses.input_items";
  items.method = "GET";
  items.pattern = "/v1/responses/{id}/input_items";
  items.local = std::make_shared<HandlerFactory<ListInputItems>>();
  return endpoints->Register(std::move(items));
}

}  // namespace modeenvoy::responses_internal
