// lib/context/gateway/endpoints.cc: GET/DELETE /v1/sessions/{id} and GET /v1/sessions.
//
// Each handler runs after the filter chain (so api_key_auth has named the caller), on the
// request's loop, with the store call bounded by the section's store_timeout. A session of
// another owner is answered exactly like a missing one (404 session_not_found): ids never
// leak to whoever guesses them.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "lib/context/gateway/internal.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/status.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::context_internal {
namespace {

using Json = nlohmann::ordered_json;
using core_internal::ToAbsl;
using core_internal::ToStd;

constexpr size_t kDefaultListLimit = 20;
constexpr size_t kMaxListLimit = 100;

LocalReply JsonReply(int status, std::string body) {
  LocalReply reply;
  reply.status = status;
  reply.headers.emplace_back("content-type", "application/json");
  reply.body = std::move(body);
  return reply;
}

LocalReply NotFound(std::string_view id) {
  return LocalReplyForError(WithErrorCode(
      absl::NotFoundError(absl::StrFormat("Session \"%s\" not found.", id)),
      "session_not_found"));
}

// Percent-decodes a path segment or query value ("%2F" -> "/", "+" kept). Errors on a
// malformed escape.
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
      char c = in[i + k];
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

// Base of the three handlers: finds the section and the store, bounds one store call.
class SessionHandler : public Filter {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) final {
    config_ = EnabledSection(ctx.snapshot);
    if (config_ == nullptr) {
      return FilterResult::Error(WithErrorCode(
          absl::NotFoundError("Sessions are not enabled on this gateway (no \"context\" "
                              "section)."),
          "sessions_disabled"));
    }
    cb_ = &callbacks;
    owner_ = OwnerOf(ctx);
    absl::StatusOr<std::shared_ptr<ContextStore>> store = config_->stores->For(callbacks.event_loop());
    if (!store.ok()) return FilterResult::Error(Unavailable(store.status()));
    store_ = *std::move(store);
    timer_ = callbacks.event_loop().NewTimer();
    timer_->Arm(config_->store_timeout, [this] {
      op_.reset();
      Reply(LocalReplyForError(Unavailable(absl::DeadlineExceededError(absl::StrFormat(
          "no answer within %s", absl::FormatDuration(config_->store_timeout))))));
    });
    in_request_ = true;
    Start(ctx);
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
  virtual void Start(RequestContext& ctx) = 0;

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
    if (h != nullptr) op_ = std::move(h);
  }
  void OpDone() { retired_ = std::move(op_); }
  absl::Status Unavailable(const absl::Status& status) {
    ++config_->counters->failed_reads;
    config_->log(absl::StrFormat("context: session endpoint failed: %s", status.ToString()));
    return WithErrorCode(
        WithHttpStatus(absl::UnavailableError(absl::StrFormat(
                           "The conversation store is unavailable: %s", status.message())),
                       503),
        "context_unavailable");
  }
  // The {id} path parameter, decoded; replies 400 and returns nullopt when unusable.
  std::optional<std::string> SessionIdParam(const RequestContext& ctx) {
    std::optional<std::string> id = PercentDecode(PathParam(ctx.path_params, "id"));
    if (!id.has_value() || id->empty() || id->size() > config_->max_session_id_bytes) {
      Reply(LocalReplyForError(InvalidFieldError(
          "id", absl::StrFormat("must be a session id of 1 to %d bytes",
                                config_->max_session_id_bytes))));
      return std::nullopt;
    }
    return id;
  }

  const ContextConfig* config_ = nullptr;
  FilterCallbacks* cb_ = nullptr;
  std::string owner_;
  std::shared_ptr<ContextStore> store_;
  StoreHandle op_;
  StoreHandle retired_;

 private:
  std::unique_ptr<Timer> timer_;
  bool in_request_ = false;
  bool answered_ = false;
  std::optional<LocalReply> result_;
};

class GetSession final : public SessionHandler {
 protected:
  void Start(RequestContext& ctx) override {
    std::optional<std::string> id = SessionIdParam(ctx);
    if (!id.has_value()) return;
    id_ = std::move(*id);
    Adopt(store_->Get(id_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
      OpDone();
      if (!got.ok()) {
        Reply(LocalReplyForError(Unavailable(got.status())));
      } else if (!got->has_value() || (*got)->record->owner != owner_) {
        Reply(NotFound(id_));
      } else {
        Reply(JsonReply(200, SerializeContextRecord(*(*got)->record)));
      }
    }));
  }

 private:
  std::string id_;
};

class DeleteSession final : public SessionHandler {
 protected:
  void Start(RequestContext& ctx) override {
    std::optional<std::string> id = SessionIdParam(ctx);
    if (!id.has_value()) return;
    id_ = std::move(*id);
    // Read first: only the owner may erase it, and another owner's id answers 404.
    Adopt(store_->Get(id_, [this](absl::StatusOr<std::optional<StoredContext>> got) {
      OpDone();
      if (!got.ok()) {
        Reply(LocalReplyForError(Unavailable(got.status())));
        return;
      }
      if (!got->has_value() || (*got)->record->owner != owner_) {
        Reply(NotFound(id_));
        return;
      }
      Adopt(store_->Delete(id_, [this](absl::StatusOr<bool> deleted) {
        OpDone();
        if (!deleted.ok()) {
          ++config_->counters->failed_writes;
          Reply(LocalReplyForError(Unavailable(deleted.status())));
        } else if (!*deleted) {
          Reply(NotFound(id_));  // gone meanwhile (expired, or deleted by a racing call)
        } else {
          Json body = {{"id", id_}, {"object", "session.deleted"}, {"deleted", true}};
          Reply(JsonReply(200, body.dump()));
        }
      }));
    }));
  }

 private:
  std::string id_;
};

class ListSessions final : public SessionHandler {
 protected:
  void Start(RequestContext& ctx) override {
    size_t limit = kDefaultListLimit;
    std::string after;
    std::string_view path = ctx.request.path;
    size_t q = path.find('?');
    if (q != std::string_view::npos) {
      for (absl::string_view pair : absl::StrSplit(ToAbsl(path.substr(q + 1)), '&')) {
        if (pair.empty()) continue;
        std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
        std::optional<std::string> value = PercentDecode(ToStd(kv.second));
        if (!value.has_value()) {
          Reply(LocalReplyForError(InvalidFieldError(ToStd(kv.first), "malformed percent-escape")));
          return;
        }
        if (kv.first == "limit") {
          int64_t n = 0;
          if (!absl::SimpleAtoi(*value, &n) || n < 1 || n > static_cast<int64_t>(kMaxListLimit)) {
            Reply(LocalReplyForError(InvalidFieldError(
                "limit", absl::StrFormat("must be an integer from 1 to %d", kMaxListLimit))));
            return;
          }
          limit = static_cast<size_t>(n);
        } else if (kv.first == "after") {
          after = std::move(*value);
        } else if (kv.first == "order") {
          if (*value != "asc") {
            Reply(LocalReplyForError(
                InvalidFieldError("order", "only \"asc\" (by session id) is supported")));
            return;
          }
        } else {
          Reply(LocalReplyForError(InvalidFieldError(ToStd(kv.first), "unknown query parameter")));
          return;
        }
      }
    }
    // Sessions are listed by id, so the last id of a page is where the next one starts.
    Adopt(store_->List(owner_, after, limit, [this](absl::StatusOr<SessionPage> page) {
      OpDone();
      if (!page.ok()) {
        Reply(LocalReplyForError(Unavailable(page.status())));
        return;
      }
      Json data = Json::array();
      for (const SessionSummary& s : page->sessions) {
        data.push_back({{"id", s.session_id},
                        {"object", "session"},
                        {"turn_count", s.turn_count},
                        {"created_at", absl::ToUnixSeconds(s.created)},
                        {"updated_at", absl::ToUnixSeconds(s.updated)}});
      }
      Json body = {{"object", "list"},
                   {"data", data},
                   {"first_id", page->sessions.empty() ? Json(nullptr)
                                                        : Json(page->sessions.front().session_id)},
                   {"last_id", page->sessions.empty() ? Json(nullptr)
                                                       : Json(page->sessions.back().session_id)},
                   {"has_more", !page->next_cursor.empty()}};
      Reply(JsonReply(200, body.dump()));
    }));
  }
};

template <typename Handler>
class HandlerFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override { return std::make_unique<Handler>(); }
};

}  // namespace

absl::Status RegisterSessionEndpoints(EndpointRegistry* endpoints) {
  EndpointSpec get;
  get.kind = "sessions.get";
  get.method = "GET";
  get.pattern = "/v1/sessions/{id}";
  get.local = std::make_shared<HandlerFactory<GetSession>>();
  MODEENVOY_RETURN_IF_ERROR(endpoints->Register(std::move(get)));
  EndpointSpec del;
  del.kind = "sessions.delete";
  del.method = "DELETE";
  del.pattern = "/v1/sessions/{id}";
  del.local = std::make_shared<HandlerFactory<DeleteSession>>();
  MODEENVOY_RETURN_IF_ERROR(endpoints->Register(std::move(del)));
  EndpointSpec list;
  list.kind = "sessions.list";
  list.method = "GET";
  list.pattern = "/v1/sessions";
  list.local = std::make_shared<HandlerFactory<ListSessions>>();
  return endpoints->Register(std::move(list));
}

}  // namespace modeenvoy::context_internal
