// lib/anthropic_ingress/count_tokens.cc: POST /v1/messages/count_tokens.
//
// The route's first target decides: a provider that takes the Messages API natively
// (ProviderDialect::BuildNativeRequest("anthropic", ...)) gets the client's body at its
// /messages/count_tokens URL and its answer goes back as it is; any other provider cannot
// count Anthropic's way, so the gateway counts the prompt itself with the target model's
// tokenizer and says so (x-modeenvoy-token-count: estimate).
#include "lib/anthropic_ingress/count_tokens.h"

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/json_reader.h"
#include "modeenvoy/gateway/config.h"
#include "modeenvoy/gateway/filter.h"
#include "modeenvoy/gateway/provider.h"
#include "modeenvoy/gateway/upstream.h"
#include "modeenvoy/ingress/anthropic.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace anthropic_ingress_internal {
namespace {

using core_internal::Json;

constexpr std::string_view kMessagesSuffix = "/messages";
constexpr std::string_view kCountSuffix = "/count_tokens";

// The members Anthropic's count_tokens takes (the Messages request without max_tokens,
// stream, sampling and metadata). The last four do not change the count made here.
constexpr std::string_view kCountKeys[] = {
    "model",       "messages",           "system",        "tools",        "tool_choice",
    "thinking",    "context_management", "mcp_servers",   "output_config", "output_format"};

// Compact JSON with sorted keys: what the emulator bills for a tool schema or a tool_use
// input (nlohmann::json's dump).
std::string SortedDump(const Json& value) {
  return nlohmann::json::parse(value.dump()).dump();
}

// Text of tool_result content: a string as is, or its text blocks (and nested
// tool_result contents) joined by newlines.
std::string ContentText(const Json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string out;
  if (!content.is_array()) return out;
  for (const Json& block : content) {
    if (!block.is_object()) continue;
    std::string piece;
    const Json* type = block.contains("type") ? &block["type"] : nullptr;
    if (type != nullptr && *type == "text" && block.contains("text") &&
        block["text"].is_string()) {
      piece = block["text"].get<std::string>();
    } else if (type != nullptr && *type == "tool_result" && block.contains("content")) {
      piece = ContentText(block["content"]);
    }
    if (piece.empty()) continue;
    if (!out.empty()) out += "\n";
    out += piece;
  }
  return out;
}

}  // namespace

std::string CountedPromptText(const Json& body) {
  std::string counted;
  auto count = [&](const std::string& text) {
    if (text.empty()) return;
    if (!counted.empty()) counted += "\n";
    counted += text;
  };
  if (body.contains("system")) {
    const Json& system = body["system"];
    if (system.is_string()) {
      count(system.get<std::string>());
    } else if (system.is_array()) {
      for (const Json& b : system) {
        if (b.is_object() && b.contains("text") && b["text"].is_string()) {
          count(b["text"].get<std::string>());
        }
      }
    }
  }
  if (body.contains("tools") && body["tools"].is_array()) {
    for (const Json& t : body["tools"]) {
      if (!t.is_object() || !t.contains("input_schema")) continue;  // server tools
      if (t.contains("name") && t["name"].is_string()) count(t["name"].get<std::string>());
      if (t.contains("description") && t["description"].is_string()) {
        count(t["description"].get<std::string>());
      }
      count(SortedDump(t["input_schema"]));
    }
  }
  if (body.contains("messages") && body["messages"].is_array()) {
    for (const Json& m : body["messages"]) {
      if (!m.is_object() || !m.contains("content")) continue;
      const Json& content = m["content"];
      if (content.is_string()) {
        count(content.get<std::string>());
        continue;
      }
      if (!content.is_array()) continue;
      for (const Json& b : content) {
        if (!b.is_object() || !b.contains("type") || !b["type"].is_string()) continue;
        const std::string type = b["type"].get<std::string>();
        if (type == "text" && b.contains("text") && b["text"].is_string()) {
          count(b["text"].get<std::string>());
        } else if (type == "image" || type == "document") {
          count("image");  // a fixed small cost per attachment
        } else if (type == "tool_use") {
          if (b.contains("name") && b["name"].is_string()) count(b["name"].get<std::string>());
          count(SortedDump(b.contains("input") ? b["input"] : Json::object()));
        } else if (type == "tool_result" && b.contains("content")) {
          count(ContentText(b["content"]));
        }
        // thinking / redacted_thinking: earlier turns' reasoning is not billed again.
      }
    }
  }
  return counted;
}

int64_t CountWords(std::string_view text) {
  int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

TokenCount CountPromptTokens(const Json& body, std::string_view model) {
  const std::string text = CountedPromptText(body);
  absl::StatusOr<std::shared_ptr<const Encoding>> encoding = EncodingForModel(model);
  if (!encoding.ok()) encoding = GetEncoding("o200k_base");
  if (!encoding.ok()) return {CountWords(text), "word_count"};
  return {static_cast<int64_t>((*encoding)->CountOrdinary(text)), "tokenizer"};
}

namespace {

// Checks the request as Anthropic's count_tokens does: the Messages request's own rules
// (the ingress parser's, with field paths) minus max_tokens, which this endpoint does not
// take.
absl::Status ValidateCountRequest(const Json& body, const IngressCodec& codec) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    bool known = false;
    for (std::string_view k : kCountKeys) known = known || it.key() == k;
    if (!known) return InvalidFieldError(it.key(), "Extra inputs are not permitted");
  }
  Json as_messages = body;
  as_messages["max_tokens"] = 1;
  HttpRequest request;
  request.method = "POST";
  request.path = "/v1/messages";
  request.body = as_messages.dump();
  return codec.ParseRequest(request).status();
}

class CountTokens final : public Filter, public UpstreamHandler {
 public:
  FilterResult OnRequest(RequestContext& ctx, FilterCallbacks& callbacks) override {
    callbacks_ = &callbacks;
    const std::shared_ptr<const IngressCodec> codec = AnthropicMessagesCodec();
    absl::StatusOr<Json> parsed = core_internal::ParseStrictJson(ctx.request.body);
    if (!parsed.ok()) return FilterResult::Reply(ErrorReply(parsed.status()));
    const Json& body = *parsed;
    if (!body.is_object()) {
      return FilterResult::Reply(ErrorReply(InvalidFieldError("body", "must be an object")));
    }
    if (!body.contains("model")) {
      return FilterResult::Reply(ErrorReply(InvalidFieldError("model", "Field required")));
    }
    if (!body["model"].is_string()) {
      return FilterResult::Reply(ErrorReply(InvalidFieldError("model", "must be a string")));
    }
    const std::string model = body["model"].get<std::string>();
    // The scope a model call on `model` gets (api_key_auth's per-key "models"): a key may
    // not count on, and so have the gateway's own credentials forwarded for, a model it
    // cannot use. Checked before routing, as the model call is, so an unknown model is a
    // 403 too for a scoped key.
    if (absl::Status allowed = ctx.CheckModelAccess(model); !allowed.ok()) {
      return FilterResult::Reply(ErrorReply(allowed));
    }
    // The route's first target (the weighted policy's first share): the provider that
    // would serve the request's first attempt when no draw says otherwise.
    absl::StatusOr<ResolvedRoute> route = ctx.snapshot->Resolve(model, 0);
    if (!route.ok()) return FilterResult::Reply(ErrorReply(route.status()));
    ctx.route = *route;

    UpstreamRequest upstream;
    const ProviderCall call{.stream = false,
                            .upstream_model = route->model->upstream_model,
                            .client_headers = &ctx.request.headers};
    absl::StatusOr<bool> native = route->provider->dialect->BuildNativeRequest(
        "anthropic", ctx.request.body, call, &upstream);
    if (!native.ok()) return FilterResult::Reply(ErrorReply(native.status()));
    if (*native) {
      // The Messages URL with its count_tokens sibling: ".../v1/messages[?query]".
      const size_t query = upstream.url.find('?');
      std::string_view path = std::string_view(upstream.url).substr(0, query);
      if (path.size() < kMessagesSuffix.size() ||
          path.substr(path.size() - kMessagesSuffix.size()) != kMessagesSuffix) {
        return FilterResult::Reply(ErrorReply(absl::InternalError(
            absl::StrCat("count_tokens: the provider's Messages URL does not end in /messages: ",
                         upstream.url))));
      }
      upstream.url.insert(query == std::string::npos ? upstream.url.size() : query,
                          kCountSuffix);
      upstream.timeouts = route->provider->timeouts;
      call_ = callbacks.upstream().Start(std::move(upstream), this);
      return FilterResult::Pause();
    }

    if (absl::Status s = ValidateCountRequest(body, *codec); !s.ok()) {
      return FilterResult::Reply(ErrorReply(s));
    }
    const TokenCount count = CountPromptTokens(body, route->model->upstream_model);
    LocalReply reply;
    reply.headers.emplace_back("content-type", "application/json");
    reply.headers.emplace_back(kTokenCountHeader, "estimate");
    reply.headers.emplace_back(kTokenCountMethodHeader, std::string(count.method));
    reply.body = absl::StrFormat("{\"input_tokens\":%d}", count.tokens);
    return FilterResult::Reply(std::move(reply));
  }

  void OnDestroy() override { call_.reset(); }

  // UpstreamHandler: the provider's answer, passed through.
  void OnHeaders(int status, const HttpHeaders& headers) override {
    status_ = status;
    headers_ = headers;
  }
  void OnData(std::string_view chunk) override { body_.append(chunk); }
  void OnComplete(absl::Status status) override {
    if (!status.ok()) {
      callbacks_->SendLocalReply(ErrorReply(status));
      return;
    }
    LocalReply reply;
    reply.status = status_;
    for (auto& [name, value] : headers_) {
      if (IsHopByHopHeader(name) || EqualsIgnoreCase(name, "content-length")) continue;
      reply.headers.emplace_back(std::move(name), std::move(value));
    }
    reply.body = std::move(body_);
    callbacks_->SendLocalReply(std::move(reply));
  }

 private:
  static bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      const char x = (a[i] >= 'A' && a[i] <= 'Z') ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
      const char y = (b[i] >= 'A' && b[i] <= 'Z') ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
      if (x != y) return false;
    }
    return true;
  }

  // An error in Anthropic's shape with Anthropic's status.
  static LocalReply ErrorReply(const absl::Status& status) {
    LocalReply reply = LocalReplyForError(status);  // status and retry headers
    reply.body = AnthropicMessagesCodec()->ErrorBody(status);
    return reply;
  }

  FilterCallbacks* callbacks_ = nullptr;
  std::unique_ptr<UpstreamCall> call_;
  int status_ = 0;
  HttpHeaders headers_;
  std::string body_;
};

class CountTokensFactory final : public FilterFactory {
 public:
  std::unique_ptr<Filter> CreateFilter() const override { return std::make_unique<CountTokens>(); }
};

}  // namespace

std::shared_ptr<const FilterFactory> CountTokensEndpoint() {
  return std::make_shared<CountTokensFactory>();
}

}  // namespace anthropic_ingress_internal
}  // namespace modeenvoy
