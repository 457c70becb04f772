// lib/protocol/dialects/anthropic.cc: the "anthropic" dialect: the Anthropic Messages API
// (POST /v1/messages), both ways. The mapping, field by field, is in docs/providers.md
// ("## anthropic"); the comments here say why where the mapping is not obvious.
//
// Representations the unified form does not have (documented in docs/providers.md):
//  - thinking: message extra "reasoning_content" (the text) and "thinking_blocks" (the
//    thinking / redacted_thinking blocks verbatim, signature included), accepted back on
//    assistant messages of a later request;
//  - blocks with no unified equivalent (server tools, their results, citations, fallback,
//    compaction, ...): the whole response content verbatim in message extra
//    "anthropic_content" (accepted back on assistant messages), and in streams the raw
//    event in delta extra "anthropic_event".
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/chat_serialize.h"
#include "lib/protocol/dialects/anthropic_request.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/unified_parts.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

constexpr std::string_view kDefaultVersion = "2023-06-01";
constexpr int64_t kDefaultMaxTokens = 4096;

// reasoning_effort -> thinking.budget_tokens (Anthropic's minimum budget is 1024).
std::optional<int64_t> ThinkingBudget(std::string_view effort) {
  if (effort == "minimal" || effort == "low") return 1024;
  if (effort == "medium") return 4096;
  if (effort == "high") return 16384;
  return std::nullopt;
}

std::string_view Msg(const absl::Status& s) { return core_internal::ToStd(s.message()); }

std::string Idx(std::string_view parent, size_t i) {
  return absl::StrCat(core_internal::ToAbsl(parent), "[", i, "]");
}

absl::Status NotSupported(std::string_view path, std::string_view why = {}) {
  std::string reason = "not supported by anthropic";
  if (!why.empty()) absl::StrAppend(&reason, " (", core_internal::ToAbsl(why), ")");
  return InvalidFieldError(path, reason);
}

// A bad stream from the provider: the client sees a 502.
absl::Status BadStream(std::string_view what) {
  return WithHttpStatus(
      absl::InvalidArgumentError(absl::StrCat("anthropic stream: ", core_internal::ToAbsl(what))),
      502);
}

// Anthropic's error types and the HTTP status the API uses for each (an error event inside
// a 200 stream carries only the type).
int HttpStatusForErrorType(std::string_view type) {
  static constexpr std::pair<std::string_view, int> kTypes[] = {
      {"invalid_request_error", 400}, {"authentication_error", 401},
      {"billing_error", 402},         {"permission_error", 403},
      {"not_found_error", 404},       {"request_too_large", 413},
      {"rate_limit_error", 429},      {"api_error", 500},
      {"timeout_error", 504},         {"overloaded_error", 529},
  };
  for (const auto& [name, status] : kTypes) {
    if (name == type) return status;
  }
  return 500;
}

std::string_view ErrorTypeForHttpStatus(int status) {
  switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 503:  // the gateway's own "overloaded, retry shortly"
    case 529: return "overloaded_error";
    default: break;
  }
  return status >= 500 ? "api_error" : "invalid_request_error";
}

// stop_reason -> finish_reason. `*keep` says the raw value is also kept (choice extra
// "stop_reason") because the unified value loses it.
std::string_view FinishReason(std::string_view stop_reason, bool* keep) {
  *keep = false;
  if (stop_reason == "end_turn" || stop_reason == "stop_sequence") return "stop";
  if (stop_reason == "max_tokens") return "length";
  if (stop_reason == "tool_use") return "tool_calls";
  *keep = true;
  if (stop_reason == "refusal") return "content_filter";
  if (stop_reason == "model_context_window_exceeded") return "length";
  return "stop";  // pause_turn and reasons added later
}

std::string_view StopReasonFor(std::string_view finish_reason) {
  if (finish_reason == "length") return "max_tokens";
  if (finish_reason == "tool_calls" || finish_reason == "function_call") return "tool_use";
  if (finish_reason == "content_filter") return "refusal";
  return "end_turn";
}

// ---- Usage ----

struct AnthropicUsage {
  int64_t input = 0;
  int64_t output = 0;
  bool has_input = false;
  bool has_output = false;
  std::optional<int64_t> cache_read;
  std::optional<int64_t> cache_creation;
  std::optional<int64_t> thinking;  // output_tokens_details.thinking_tokens
  // server_tool_use, service_tier, cache_creation, output_tokens_details, iterations, ...
  ExtraFields extra;
  bool seen = false;

  void Merge(const AnthropicUsage& later) {
    // message_delta's usage is cumulative: each member it carries replaces the earlier one.
    seen = true;
    if (later.has_input) input = later.input;
    if (later.has_output) output = later.output;
    if (later.cache_read) cache_read = later.cache_read;
    if (later.cache_creation) cache_creation = later.cache_creation;
    if (later.thinking) thinking = later.thinking;
    for (const auto& [k, v] : later.extra) {
      bool replaced = false;
      for (auto& [k2, v2] : extra) {
        if (k2 == k) {
          v2 = v;
          replaced = true;
        }
      }
      if (!replaced) extra.emplace_back(k, v);
    }
  }
};

// {"thinking_tokens": N, ...} -> N; nullopt when absent or not an integer.
std::optional<int64_t> ThinkingTokens(std::string_view raw) {
  JsonReader r(raw, kMaxJsonDepth);
  if (!r.BeginObject()) return std::nullopt;
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  std::optional<int64_t> out;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    JsonType t;
    std::string_view text;
    int64_t v = 0;
    if (key == "thinking_tokens" && r.Peek(&t) && t == JsonType::kNumber) {
      if (!r.ReadNumber(&text)) break;
      if (NumberToInt64(text, &v)) out = v;
    } else if (!r.SkipValue()) {
      break;
    }
  }
  return out;
}

bool ReadOptionalInt(JsonReader& r, std::optional<int64_t>* out, bool* bad) {
  JsonType t;
  if (!r.Peek(&t)) return false;
  if (t == JsonType::kNull) return r.ReadNull();
  if (t != JsonType::kNumber) {
    *bad = true;
    return r.SkipValue();
  }
  std::string_view text;
  if (!r.ReadNumber(&text)) return false;
  int64_t v = 0;
  if (!NumberToInt64(text, &v)) {
    *bad = true;
    return true;
  }
  *out = v;
  return true;
}

absl::Status ReadUsage(JsonReader& r, std::string_view path, AnthropicUsage* u) {
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false, bad = false;
  std::string scratch;
  std::string_view key;
  u->seen = true;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    std::optional<int64_t> v;
    if (key == "input_tokens") {
      if (!ReadOptionalInt(r, &v, &bad)) break;
      if (v) u->input = *v, u->has_input = true;
    } else if (key == "output_tokens") {
      if (!ReadOptionalInt(r, &v, &bad)) break;
      if (v) u->output = *v, u->has_output = true;
    } else if (key == "cache_read_input_tokens") {
      if (!ReadOptionalInt(r, &u->cache_read, &bad)) break;
    } else if (key == "cache_creation_input_tokens") {
      if (!ReadOptionalInt(r, &u->cache_creation, &bad)) break;
    } else {
      std::string name(key), raw;
      if (!r.CaptureValue(&raw)) break;
      if (name == "output_tokens_details") u->thinking = ThinkingTokens(raw);
      u->extra.emplace_back(std::move(name), std::move(raw));
    }
    if (bad) {
      return InvalidFieldError(
          absl::StrCat(core_internal::ToAbsl(path), ".", core_internal::ToAbsl(key)),
          "expected an integer");
    }
  }
  return r.status();
}

// OpenAI's usage shape: prompt_tokens counts cached and cache-written tokens too.
void AppendUnifiedUsage(std::string* out, const AnthropicUsage& u) {
  const int64_t read = u.cache_read.value_or(0);
  const int64_t creation = u.cache_creation.value_or(0);
  const int64_t prompt = u.input + read + creation;
  JsonObjectWriter w(out);
  w.Key("prompt_tokens");
  AppendJsonInt(out, prompt);
  w.Key("completion_tokens");
  AppendJsonInt(out, u.output);
  w.Key("total_tokens");
  AppendJsonInt(out, prompt + u.output);
  w.Key("prompt_tokens_details");
  out->append("{\"cached_tokens\":");
  AppendJsonInt(out, read);
  out->push_back('}');
  if (u.thinking.has_value()) {
    w.Key("completion_tokens_details");
    out->append("{\"reasoning_tokens\":");
    AppendJsonInt(out, *u.thinking);
    out->push_back('}');
  }
  if (u.cache_creation.has_value()) {
    w.Key("cache_creation_input_tokens");
    AppendJsonInt(out, creation);
  }
  for (const auto& [k, v] : u.extra) {
    if (k == "prompt_tokens" || k == "completion_tokens" || k == "total_tokens" ||
        k == "prompt_tokens_details" || k == "completion_tokens_details") {
      continue;
    }
    w.Key(k);
    out->append(v);
  }
  w.End();
}

// ---- Reading helpers ----

bool ReadStringOrNull(JsonReader& r, std::optional<std::string>* out) {
  JsonType t;
  if (!r.Peek(&t)) return false;
  if (t == JsonType::kNull) return r.ReadNull();
  if (t != JsonType::kString) return r.SkipValue();
  std::string s;
  if (!r.ReadString(&s)) return false;
  *out = std::move(s);
  return true;
}

// One content block of a response, read into its parts; `raw` holds the whole block.
struct Block {
  std::string type;
  std::string text;       // text, thinking
  std::string id, name;   // tool_use
  std::string input;      // tool_use: compact JSON
  std::string signature;  // thinking
  bool has_citations = false;
  std::string raw;
};

absl::Status ParseBlock(std::string_view raw, Block* b) {
  JsonReader r(raw, kMaxJsonDepth);
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "type") {
      ok = r.ReadString(&b->type);
    } else if (key == "text" || key == "thinking") {
      std::optional<std::string> s;
      ok = ReadStringOrNull(r, &s);
      if (s) b->text = std::move(*s);
    } else if (key == "id") {
      std::optional<std::string> s;
      ok = ReadStringOrNull(r, &s);
      if (s) b->id = std::move(*s);
    } else if (key == "name") {
      std::optional<std::string> s;
      ok = ReadStringOrNull(r, &s);
      if (s) b->name = std::move(*s);
    } else if (key == "signature") {
      std::optional<std::string> s;
      ok = ReadStringOrNull(r, &s);
      if (s) b->signature = std::move(*s);
    } else if (key == "input") {
      ok = r.CaptureValue(&b->input);
    } else if (key == "citations") {
      JsonType t;
      ok = r.Peek(&t);
      b->has_citations = ok && t != JsonType::kNull;
      ok = ok && r.SkipValue();
    } else {
      ok = r.SkipValue();
    }
    if (!ok) break;
  }
  return r.status();
}

// Block types the unified message expresses fully (text without citations, tool_use,
// thinking as reasoning_content + thinking_blocks).
bool IsModeled(const Block& b) {
  if (b.type == "text") return !b.has_citations;
  return b.type == "tool_use" || b.type == "thinking" || b.type == "redacted_thinking";
}

// ---- Stream decoder ----

class AnthropicStreamDecoder final : public StreamTranslator {
 public:
  // Its usage-only chunk comes right before "[DONE]", out of the same call, and no other
  // chunk it writes has a usage member.
  bool KeepsUsagePromise() const override { return true; }

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (!failed_.ok()) return failed_;
    absl::Status s = Handle(frame.data, out);
    if (!s.ok()) failed_ = s;
    return s;
  }

  absl::Status Finish(std::vector<SseEvent>* /*out*/) override {
    if (!failed_.ok()) return failed_;
    if (state_ != State::kStopped) {
      failed_ = WithHttpStatus(absl::UnavailableError(
                                   "anthropic stream: ended before message_stop"),
                               502);
      return failed_;
    }
    return absl::OkStatus();
  }

 private:
  enum class State { kBeforeStart, kInMessage, kStopped };
  enum class Kind { kNone, kText, kTool, kThinking, kRedacted, kOther };

  absl::Status Handle(std::string_view data, std::vector<SseEvent>* out) {
    JsonReader r(data, kMaxJsonDepth);
    if (!r.BeginObject()) return BadStream(Msg(r.status()));
    bool first = true, has = false;
    std::string_view key;
    type_.clear();
    index_.reset();
    payload_.clear();
    usage_raw_.clear();
    context_raw_.clear();
    while (r.NextMember(&first, &key, &scratch_, &has) && has) {
      bool ok;
      if (key == "type") {
        ok = r.ReadString(&type_);
      } else if (key == "index") {
        std::string_view num;
        int64_t v = 0;
        ok = r.ReadNumber(&num);
        if (ok && !NumberToInt64(num, &v)) return BadStream("index: expected an integer");
        index_ = v;
      } else if (key == "usage") {
        ok = r.CaptureValue(&usage_raw_);
      } else if (key == "context_management") {  // message_delta: edits the API applied
        ok = r.CaptureValue(&context_raw_);
      } else if (key == "message" || key == "content_block" || key == "delta" ||
                 key == "error") {
        ok = r.CaptureValue(&payload_);
      } else {
        ok = r.SkipValue();
      }
      if (!ok) break;
    }
    if (!r.status().ok() || !r.ExpectEnd()) return BadStream(Msg(r.status()));

    if (type_ == "ping") return absl::OkStatus();
    if (type_ == "error") {
      ErrorInfo(data);
      return error_;
    }
    if (type_ == "message_start") {
      if (state_ != State::kBeforeStart) {
        return BadStream(state_ == State::kInMessage
                             ? "message_start before the previous message's message_stop "
                               "(a duplicated or spliced stream)"
                             : "message_start after message_stop");
      }
      state_ = State::kInMessage;
      return MessageStart(out);
    }
    if (state_ != State::kInMessage) {
      return BadStream(absl::StrCat(core_internal::ToAbsl(type_),
                                    state_ == State::kBeforeStart ? " before message_start"
                                                                  : " after message_stop"));
    }
    if (type_ == "content_block_start") return BlockStart(data, out);
    if (type_ == "content_block_delta") return BlockDelta(data, out);
    if (type_ == "content_block_stop") return BlockStop(data, out);
    if (type_ == "message_delta") return MessageDelta(out);
    if (type_ == "message_stop") return MessageStop(out);
    return absl::OkStatus();  // event types added later are ignored, as Anthropic asks
  }

  void ErrorInfo(std::string_view data) {
    std::string error_type;
    JsonReader r(payload_, kMaxJsonDepth);
    bool first = true, has = false;
    std::string_view key;
    if (r.BeginObject()) {
      while (r.NextMember(&first, &key, &scratch_, &has) && has) {
        if (key == "type") {
          if (!r.ReadString(&error_type)) break;
        } else if (!r.SkipValue()) {
          break;
        }
      }
    }
    error_ = StatusFromUpstreamError(HttpStatusForErrorType(error_type), data);
  }

  void Emit(std::vector<SseEvent>* out, std::string_view delta, std::string_view finish = {},
            std::string_view choice_extra = {}) {
    SseEvent e;
    e.data.reserve(prefix_.size() + delta.size() + 64);
    e.data.append(prefix_);
    e.data.append("[{\"index\":0,\"delta\":");
    e.data.append(delta);
    e.data.append(",\"logprobs\":null,\"finish_reason\":");
    if (finish.empty()) {
      e.data.append("null");
    } else {
      AppendJsonString(&e.data, finish);
    }
    e.data.append(choice_extra);
    e.data.append("}]}");
    out->push_back(std::move(e));
  }

  // A delta with one member whose value is raw JSON (or, with `is_text`, the JSON string
  // of `value`): what Emit(out, "{<name>:<value>}") writes, written straight into the chunk.
  void EmitOne(std::vector<SseEvent>* out, std::string_view name, std::string_view value,
               bool is_text) {
    SseEvent e;
    e.data.reserve(prefix_.size() + name.size() + value.size() + 96);
    e.data.append(prefix_);
    e.data.append("[{\"index\":0,\"delta\":{");
    AppendJsonString(&e.data, name);
    e.data.push_back(':');
    if (is_text) {
      AppendJsonString(&e.data, value);
    } else {
      e.data.append(value);
    }
    e.data.append("},\"logprobs\":null,\"finish_reason\":null}]}");
    out->push_back(std::move(e));
  }

  void EmitMember(std::vector<SseEvent>* out, std::string_view name, std::string_view raw) {
    EmitOne(out, name, raw, /*is_text=*/false);
  }

  void EmitText(std::vector<SseEvent>* out, std::string_view member, std::string_view text) {
    EmitOne(out, member, text, /*is_text=*/true);
  }

  void EmitToolHead(std::vector<SseEvent>* out, const Block& b, std::string_view args) {
    tmp2_.assign("[{\"index\":");
    AppendJsonInt(&tmp2_, tool_index_);
    tmp2_.append(",\"id\":");
    AppendJsonString(&tmp2_, b.id);
    tmp2_.append(",\"type\":\"function\",\"function\":{\"name\":");
    AppendJsonString(&tmp2_, b.name);
    tmp2_.append(",\"arguments\":");
    AppendJsonString(&tmp2_, args);
    tmp2_.append("}}]");
    EmitMember(out, "tool_calls", tmp2_);
  }

  void EmitToolArgs(std::vector<SseEvent>* out, std::string_view args) {
    tmp2_.assign("[{\"index\":");
    AppendJsonInt(&tmp2_, tool_index_);
    tmp2_.append(",\"function\":{\"arguments\":");
    AppendJsonString(&tmp2_, args);
    tmp2_.append("}}]");
    EmitMember(out, "tool_calls", tmp2_);
  }

  absl::Status MessageStart(std::vector<SseEvent>* out) {
    std::string id, model;
    std::string content;
    std::optional<std::string> stop_reason;
    JsonReader r(payload_, kMaxJsonDepth);
    if (!r.BeginObject()) return BadStream("message_start: message must be an object");
    bool first = true, has = false;
    std::string_view key;
    while (r.NextMember(&first, &key, &scratch_, &has) && has) {
      bool ok;
      if (key == "id") {
        ok = r.ReadString(&id);
      } else if (key == "model") {
        ok = r.ReadString(&model);
      } else if (key == "usage") {
        absl::Status s = ReadUsage(r, "message.usage", &usage_);
        if (!s.ok()) return BadStream(Msg(s));
        ok = true;
      } else if (key == "content") {
        ok = r.CaptureValue(&content);
      } else if (key == "stop_reason") {
        ok = ReadStringOrNull(r, &stop_reason);
      } else {
        ok = r.SkipValue();
      }
      if (!ok) break;
    }
    if (!r.status().ok()) return BadStream(Msg(r.status()));
    prefix_.assign("{\"id\":");
    AppendJsonString(&prefix_, id);
    prefix_.append(",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":");
    AppendJsonString(&prefix_, model);
    prefix_.append(",\"choices\":");
    Emit(out, "{\"role\":\"assistant\",\"content\":\"\"}");
    if (stop_reason) stop_reason_ = *stop_reason;
    // Blocks already complete in message_start (programmatic tool calling resumes this way).
    if (!content.empty() && content != "[]") {
      JsonReader c(content, kMaxJsonDepth);
      bool f = true, h = false;
      if (!c.BeginArray()) return BadStream("message_start: content must be an array");
      int64_t i = 0;
      while (c.NextElement(&f, &h) && h) {
        std::string raw;
        if (!c.CaptureValue(&raw)) break;
        Block b;
        MODEENVOY_RETURN_IF_ERROR(ParseBlock(raw, &b));
        if (b.type == "text" && !b.has_citations) {
          if (!b.text.empty()) EmitText(out, "content", b.text);
        } else if (b.type == "tool_use") {
          tool_index_ = next_tool_index_++;
          EmitToolHead(out, b, b.input.empty() ? "{}" : b.input);
        } else {
          std::string event = absl::StrCat(R"({"type":"content_block_start","index":)", i,
                                           R"(,"content_block":)", raw, "}");
          EmitMember(out, "anthropic_event", event);
        }
        ++i;
      }
      if (!c.status().ok()) return BadStream(Msg(c.status()));
    }
    return absl::OkStatus();
  }

  absl::Status BlockStart(std::string_view data, std::vector<SseEvent>* out) {
    if (kind_ != Kind::kNone) return BadStream("content_block_start before content_block_stop");
    if (!index_) return BadStream("content_block_start without index");
    block_index_ = *index_;
    Block b;
    absl::Status s = ParseBlock(payload_, &b);
    if (!s.ok()) return BadStream(Msg(s));
    if (b.type == "text") {  // citations arrive as citations_delta events
      kind_ = Kind::kText;
      if (!b.text.empty()) EmitText(out, "content", b.text);
    } else if (b.type == "tool_use") {
      kind_ = Kind::kTool;
      tool_index_ = next_tool_index_++;
      // The input arrives as input_json_delta events; a start that already holds a
      // non-empty input (programmatic tool calling) has none.
      tool_has_args_ = !b.input.empty() && b.input != "{}";
      EmitToolHead(out, b, tool_has_args_ ? std::string_view(b.input) : std::string_view());
    } else if (b.type == "thinking") {
      kind_ = Kind::kThinking;
      if (!b.text.empty()) EmitText(out, "reasoning_content", b.text);
    } else if (b.type == "redacted_thinking") {
      kind_ = Kind::kRedacted;
      tmp3_.assign("[").append(payload_).append("]");
      EmitMember(out, "thinking_blocks", tmp3_);
    } else {
      kind_ = Kind::kOther;
      EmitMember(out, "anthropic_event", data);
    }
    return absl::OkStatus();
  }

  absl::Status BlockDelta(std::string_view data, std::vector<SseEvent>* out) {
    if (kind_ == Kind::kNone || !index_ || *index_ != block_index_) {
      return BadStream("content_block_delta for a block that is not open");
    }
    // The delta: {"type": ..., "text"|"partial_json"|"thinking"|"signature": ...}.
    std::string_view delta_type, value;
    std::string value_scratch;
    bool text_like = false;
    JsonReader r(payload_, kMaxJsonDepth);
    if (!r.BeginObject()) return BadStream("content_block_delta: delta must be an object");
    bool first = true, has = false;
    std::string_view key;
    std::string type;
    while (r.NextMember(&first, &key, &scratch_, &has) && has) {
      bool ok;
      if (key == "type") {
        ok = r.ReadString(&type);
      } else if (key == "text" || key == "partial_json" || key == "thinking" ||
                 key == "signature") {
        JsonType t;
        ok = r.Peek(&t);
        if (ok && t == JsonType::kString) {
          ok = r.ReadString(&value, &value_scratch);
          text_like = true;
        } else {
          ok = ok && r.SkipValue();
        }
      } else {
        ok = r.SkipValue();
      }
      if (!ok) break;
    }
    if (!r.status().ok()) return BadStream(Msg(r.status()));
    delta_type = type;
    if (kind_ == Kind::kText && delta_type == "text_delta" && text_like) {
      if (!value.empty()) EmitText(out, "content", value);
    } else if (kind_ == Kind::kTool && delta_type == "input_json_delta" && text_like) {
      if (!value.empty()) {
        tool_has_args_ = true;
        EmitToolArgs(out, value);
      }
    } else if (kind_ == Kind::kThinking && delta_type == "thinking_delta" && text_like) {
      if (!value.empty()) EmitText(out, "reasoning_content", value);
    } else if (kind_ == Kind::kThinking && delta_type == "signature_delta" && text_like) {
      tmp3_.assign(R"([{"type":"thinking","thinking":"","signature":)");
      AppendJsonString(&tmp3_, value);
      tmp3_.append("}]");
      EmitMember(out, "thinking_blocks", tmp3_);
    } else {
      // citations, deltas of server tool blocks, compaction, kinds added later.
      EmitMember(out, "anthropic_event", data);
    }
    return absl::OkStatus();
  }

  absl::Status BlockStop(std::string_view data, std::vector<SseEvent>* out) {
    if (kind_ == Kind::kNone || !index_ || *index_ != block_index_) {
      return BadStream("content_block_stop for a block that is not open");
    }
    if (kind_ == Kind::kTool && !tool_has_args_) EmitToolArgs(out, "{}");  // no arguments
    if (kind_ == Kind::kOther) EmitMember(out, "anthropic_event", data);
    kind_ = Kind::kNone;
    return absl::OkStatus();
  }

  absl::Status MessageDelta(std::vector<SseEvent>* out) {
    if (!usage_raw_.empty()) {
      AnthropicUsage later;
      JsonReader u(usage_raw_, kMaxJsonDepth);
      absl::Status s = ReadUsage(u, "usage", &later);
      if (!s.ok()) return BadStream(Msg(s));
      usage_.Merge(later);
    }
    // delta: stop_reason, stop_sequence, and members such as container and stop_details,
    // which are kept in the finish chunk's delta.
    std::optional<std::string> stop_reason;
    delta_extra_.clear();
    JsonReader r(payload_.empty() ? std::string_view("{}") : std::string_view(payload_),
                 kMaxJsonDepth);
    if (!r.BeginObject()) return BadStream("message_delta: delta must be an object");
    bool first = true, has = false;
    std::string_view key;
    while (r.NextMember(&first, &key, &scratch_, &has) && has) {
      bool ok;
      if (key == "stop_reason") {
        ok = ReadStringOrNull(r, &stop_reason);
      } else {
        std::string name(key), raw;
        ok = r.CaptureValue(&raw);
        if (ok && raw != "null") {
          if (!delta_extra_.empty()) delta_extra_.push_back(',');
          AppendJsonString(&delta_extra_, name);
          delta_extra_.push_back(':');
          delta_extra_.append(raw);
        }
      }
      if (!ok) break;
    }
    if (!r.status().ok()) return BadStream(Msg(r.status()));
    if (!context_raw_.empty() && context_raw_ != "null") {
      if (!delta_extra_.empty()) delta_extra_.push_back(',');
      delta_extra_.append("\"context_management\":").append(context_raw_);
    }
    if (stop_reason) stop_reason_ = *stop_reason;
    EmitFinish(out);
    return absl::OkStatus();
  }

  void EmitFinish(std::vector<SseEvent>* out) {
    if (finished_) return;
    finished_ = true;
    bool keep = false;
    std::string_view finish =
        stop_reason_.empty() ? std::string_view("stop") : FinishReason(stop_reason_, &keep);
    std::string choice_extra;
    if (keep) {
      choice_extra = ",\"stop_reason\":";
      AppendJsonString(&choice_extra, stop_reason_);
    }
    Emit(out, absl::StrCat("{", delta_extra_, "}"), finish, choice_extra);
  }

  absl::Status MessageStop(std::vector<SseEvent>* out) {
    if (kind_ != Kind::kNone) return BadStream("message_stop inside a content block");
    EmitFinish(out);
    if (usage_.seen) {
      SseEvent e;
      e.data.append(prefix_);
      e.data.append("[],\"usage\":");
      AppendUnifiedUsage(&e.data, usage_);
      e.data.push_back('}');
      out->push_back(std::move(e));
    }
    SseEvent done;
    done.data = std::string(kSseDoneData);
    out->push_back(std::move(done));
    state_ = State::kStopped;
    return absl::OkStatus();
  }

  State state_ = State::kBeforeStart;
  Kind kind_ = Kind::kNone;
  int64_t block_index_ = -1;
  int64_t tool_index_ = 0;
  int64_t next_tool_index_ = 0;
  bool tool_has_args_ = false;
  bool finished_ = false;
  std::string stop_reason_;
  std::string delta_extra_;
  AnthropicUsage usage_;
  std::string prefix_;  // {"id":..,"object":..,"created":0,"model":..,"choices":
  absl::Status failed_;
  absl::Status error_;
  // Per-event scratch, kept to reuse their capacity.
  std::string type_, payload_, usage_raw_, context_raw_, scratch_, tmp2_, tmp3_;
  std::optional<int64_t> index_;
};

// ---- Request encoding helpers ----

// A field path of the unified request ("messages[3].content[1]"), written out only when an
// error names it: the encoder passes these down instead of building a string per message,
// block and tool call. A child refers to its parent, which must outlive it.
class FieldPath {
 public:
  explicit FieldPath(std::string_view root) : root_(root) {}
  FieldPath(const FieldPath& parent, std::string_view member)
      : parent_(&parent), root_(member) {}
  FieldPath(const FieldPath& parent, size_t index)
      : parent_(&parent), index_(index), is_index_(true) {}

  // The root, then ".member" or "[index]" per level.
  std::string str() const {
    if (parent_ == nullptr) return std::string(root_);
    std::string s = parent_->str();
    if (is_index_) {
      absl::StrAppend(&s, "[", index_, "]");
    } else {
      s.push_back('.');
      s.append(root_);
    }
    return s;
  }

 private:
  const FieldPath* parent_ = nullptr;
  std::string_view root_;  // the root, or the member name of a member child
  size_t index_ = 0;
  bool is_index_ = false;
};

// Appends `extra` members to an open object writer, refusing names already written.
absl::Status AppendExtras(JsonObjectWriter& w, const ExtraFields& extra, const FieldPath& path,
                          std::initializer_list<std::string_view> taken) {
  for (const auto& [name, value] : extra) {
    for (std::string_view t : taken) {
      if (name == t) {
        return InvalidFieldError(FieldPath(path, name).str(),
                                 "conflicts with a field the anthropic dialect writes");
      }
    }
    w.Key(name);
    w.out()->append(value);
  }
  return absl::OkStatus();
}

// "data:<media type>;base64,<data>" -> (media type, data).
bool SplitDataUrl(std::string_view url, std::string_view* media, std::string_view* data) {
  constexpr std::string_view kData = "data:";
  if (url.substr(0, kData.size()) != kData) return false;
  size_t comma = url.find(',');
  if (comma == std::string_view::npos) return false;
  std::string_view head = url.substr(kData.size(), comma - kData.size());
  constexpr std::string_view kBase64 = ";base64";
  if (head.size() < kBase64.size() || head.substr(head.size() - kBase64.size()) != kBase64) {
    return false;
  }
  *media = head.substr(0, head.size() - kBase64.size());
  *data = url.substr(comma + 1);
  return true;
}

absl::Status AppendImage(std::string* out, const ContentPart& part, const FieldPath& path) {
  const ImageUrl& image = *part.image_url;
  if (image.detail.has_value() && *image.detail != "auto") {
    return NotSupported(path.str() + ".image_url.detail", "only \"auto\"");
  }
  if (!image.extra.empty()) {
    return NotSupported(absl::StrCat(path.str(), ".image_url.", image.extra.front().first));
  }
  JsonObjectWriter w(out);
  w.Key("type");
  out->append("\"image\"");
  w.Key("source");
  std::string_view url = image.url;
  std::string_view media, data;
  if (url.substr(0, 8) == "https://") {
    out->append(R"({"type":"url","url":)");
    AppendJsonString(out, url);
    out->push_back('}');
  } else if (SplitDataUrl(url, &media, &data)) {
    if (media != "image/jpeg" && media != "image/png" && media != "image/gif" &&
        media != "image/webp") {
      return InvalidFieldError(
          path.str() + ".image_url.url",
          absl::StrCat("media type \"", core_internal::ToAbsl(media),
                       "\" not supported by anthropic (image/jpeg, image/png, image/gif, "
                       "image/webp)"));
    }
    out->append(R"({"type":"base64","media_type":)");
    AppendJsonString(out, media);
    out->append(R"(,"data":)");
    AppendJsonString(out, data);
    out->push_back('}');
  } else {
    return InvalidFieldError(path.str() + ".image_url.url",
                             "anthropic accepts https URLs and base64 data: URLs only");
  }
  MODEENVOY_RETURN_IF_ERROR(AppendExtras(w, part.extra, path, {"type", "source"}));
  w.End();
  return absl::OkStatus();
}

absl::Status AppendFile(std::string* out, const ContentPart& part, const FieldPath& path) {
  const FileInput& file = *part.file;
  JsonObjectWriter w(out);
  w.Key("type");
  out->append("\"document\"");
  w.Key("source");
  if (file.file_data.has_value()) {
    std::string_view media, data;
    if (!SplitDataUrl(*file.file_data, &media, &data)) {
      return InvalidFieldError(path.str() + ".file.file_data",
                               "anthropic needs a base64 data: URL (data:application/pdf;base64,...)");
    }
    out->append(R"({"type":"base64","media_type":)");
    AppendJsonString(out, media);
    out->append(R"(,"data":)");
    AppendJsonString(out, data);
    out->push_back('}');
  } else {
    out->append(R"({"type":"file","file_id":)");
    AppendJsonString(out, file.file_id.value_or(""));
    out->push_back('}');
  }
  if (file.filename.has_value()) {
    w.Key("title");
    AppendJsonString(out, *file.filename);
  }
  MODEENVOY_RETURN_IF_ERROR(AppendExtras(w, part.extra, path, {"type", "source", "title"}));
  w.End();
  return absl::OkStatus();
}

absl::Status AppendTextBlock(std::string* out, std::string_view text, const ExtraFields& extra,
                             const FieldPath& path) {
  if (extra.empty()) {  // the usual block, written in one piece
    out->append(R"({"type":"text","text":)");
    AppendJsonString(out, text);
    out->push_back('}');
    return absl::OkStatus();
  }
  JsonObjectWriter w(out);
  w.Key("type");
  out->append("\"text\"");
  w.Key("text");
  AppendJsonString(out, text);
  MODEENVOY_RETURN_IF_ERROR(AppendExtras(w, extra, path, {"type", "text"}));
  w.End();
  return absl::OkStatus();
}

// Writes the blocks of one message's content (after a ',' when !*first).
class BlockList {
 public:
  explicit BlockList(std::string* out) : out_(out) {}
  std::string* Next() {
    if (!first_) out_->push_back(',');
    first_ = false;
    return out_;
  }
  bool empty() const { return first_; }
  // Adds "cache_control" to the last block written (a message-level mark).
  void MarkLast(std::string_view cache_control) {
    if (first_) return;
    out_->pop_back();  // the block's '}'
    out_->append(",\"cache_control\":");
    out_->append(cache_control);
    out_->push_back('}');
  }

 private:
  std::string* out_;
  bool first_ = true;
};

// Content of a user, system or tool message as blocks.
absl::Status AppendContentBlocks(BlockList& blocks, const MessageContent& content,
                                 const FieldPath& path) {
  if (const auto* text = std::get_if<std::string>(&content)) {
    if (!text->empty()) {
      MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(blocks.Next(), *text, {}, path));
    }
    return absl::OkStatus();
  }
  const auto& parts = std::get<std::vector<ContentPart>>(content);
  for (size_t i = 0; i < parts.size(); ++i) {
    const ContentPart& part = parts[i];
    const FieldPath p(path, i);
    switch (part.type) {
      case ContentPartType::kText:
        MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(blocks.Next(), part.text, part.extra, p));
        break;
      case ContentPartType::kRefusal:
        MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(blocks.Next(), part.refusal, part.extra, p));
        break;
      case ContentPartType::kImageUrl:
        MODEENVOY_RETURN_IF_ERROR(AppendImage(blocks.Next(), part, p));
        break;
      case ContentPartType::kFile:
        MODEENVOY_RETURN_IF_ERROR(AppendFile(blocks.Next(), part, p));
        break;
      case ContentPartType::kInputAudio:
        return NotSupported(p.str() + ".input_audio");
      case ContentPartType::kOther:
        return NotSupported(p.str() + ".type");
    }
  }
  return absl::OkStatus();
}

const std::string* FindExtra(const ExtraFields& extra, std::string_view name) {
  for (const auto& [k, v] : extra) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Reads {"type":"function","function":{"name":"x"}} -> "x".
absl::StatusOr<std::string> NamedToolChoice(std::string_view object) {
  JsonReader r(object, kMaxJsonDepth);
  std::string name, scratch, type;
  bool first = true, has = false;
  std::string_view key;
  if (!r.BeginObject()) return InvalidFieldError("tool_choice", "expected an object");
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    if (key == "type") {
      if (!r.ReadString(&type)) break;
    } else if (key == "function") {
      bool f2 = true, h2 = false;
      std::string s2;
      if (!r.BeginObject()) break;
      while (r.NextMember(&f2, &key, &s2, &h2) && h2) {
        if (key == "name") {
          if (!r.ReadString(&name)) break;
        } else if (!r.SkipValue()) {
          break;
        }
      }
    } else if (!r.SkipValue()) {
      break;
    }
  }
  if (!r.status().ok()) return InvalidFieldError("tool_choice", Msg(r.status()));
  if (type != "function" || name.empty()) {
    return InvalidFieldError("tool_choice",
                             "anthropic maps only {\"type\":\"function\",\"function\":{\"name\"}}");
  }
  return name;
}

// Splits a comma-separated header value into trimmed, non-empty items, appending new ones.
void AddBetas(std::string_view value, std::vector<std::string>* out) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    bool seen = item.empty();
    for (const std::string& b : *out) seen = seen || b == item;
    if (!seen) out->emplace_back(item);
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
}

struct Options {
  std::string version = std::string(kDefaultVersion);
  std::vector<std::string> beta;
  int64_t default_max_tokens = kDefaultMaxTokens;
};

// ---- Ingress helpers ----

absl::Status IngressError(std::string_view path, std::string_view msg) {
  return InvalidFieldError(path, msg);
}

// ",\"output_tokens_details\":{\"thinking_tokens\":N}" when `usage` reports reasoning tokens.
void AppendThinkingDetails(std::string* out, const Usage& usage) {
  if (!usage.completion_tokens_details || !usage.completion_tokens_details->reasoning_tokens) {
    return;
  }
  out->append(",\"output_tokens_details\":{\"thinking_tokens\":");
  AppendJsonInt(out, *usage.completion_tokens_details->reasoning_tokens);
  out->push_back('}');
}

// ---- Stream encoder (unified chunks -> Anthropic events) ----

// The matched stop sequence a unified answer kept (extra "stop_sequence", a JSON string as
// DecodeResponse and the stream decoder keep it), or null.
const std::string* MatchedStopSequence(const ExtraFields& extra) {
  const std::string* s = FindExtra(extra, "stop_sequence");
  if (s == nullptr || s->empty() || s->front() != '"') return nullptr;
  return s;
}

std::string AnthropicEvent(std::string_view type, std::string_view data) {
  return EncodeSseEvent(data, type);
}

// Reads the members of a JSON object `raw` into (key, raw value) pairs. False when `raw`
// is not an object.
bool ObjectMembers(std::string_view raw, std::vector<std::pair<std::string, std::string>>* out) {
  JsonReader r(raw, kMaxJsonDepth);
  if (!r.BeginObject()) return false;
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    std::string name(key), value;
    if (!r.CaptureValue(&value)) return false;
    out->emplace_back(std::move(name), std::move(value));
  }
  return r.status().ok();
}

// The JSON string value `raw` as text, or nullopt when it is not a string.
std::optional<std::string> StringValue(std::string_view raw) {
  JsonReader r(raw, kMaxJsonDepth);
  JsonType t;
  std::string text;
  if (!r.Peek(&t) || t != JsonType::kString || !r.ReadString(&text)) return std::nullopt;
  return text;
}

// Unified chunks -> Anthropic's event sequence: message_start, ping, then per content block
// content_block_start / content_block_delta... / content_block_stop (text, thinking with its
// signature_delta, redacted_thinking, tool_use with input_json_delta, and the raw events of
// blocks the unified form does not model, from delta extra "anthropic_event"), then
// message_delta (stop_reason, stop_sequence, usage) and message_stop.
class AnthropicStreamEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    // Azure's prompt-filter chunk does not start the message (unified_parts.h).
    if (!started_ && IsUnnamedEmptyChunk(chunk)) return absl::OkStatus();
    if (!started_) {
      started_ = true;
      id_ = chunk.id;
      model_ = chunk.model;
      std::string m = R"({"type":"message_start","message":{"id":)";
      AppendJsonString(&m, id_);
      m.append(R"(,"type":"message","role":"assistant","model":)");
      AppendJsonString(&m, model_);
      // The unified stream reports usage only at its end: message_delta carries the counts.
      m.append(
          R"(,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}})");
      out->append(AnthropicEvent("message_start", m));
      out->append(AnthropicEvent("ping", R"({"type":"ping"})"));
    }
    if (chunk.usage.has_value()) usage_ = chunk.usage;
    for (const ChunkChoice& choice : chunk.choices) {
      if (choice.index != 0) {
        return InvalidFieldError("choices", "anthropic streams one choice");
      }
      const ChatDelta& d = choice.delta;
      for (const auto& [key, value] : d.extra) {
        // "reasoning": Groq's and newer vLLM's name (vLLM may send both: one is read).
        if (key == "reasoning_content" ||
            (key == "reasoning" && FindExtra(d.extra, "reasoning_content") == nullptr)) {
          std::optional<std::string> text = StringValue(value);
          if (text.has_value() && !text->empty()) {
            Open(Kind::kThinking, out, R"({"type":"thinking","thinking":"","signature":""})");
            std::string delta = R"({"type":"thinking_delta","thinking":)";
            AppendJsonString(&delta, *text);
            delta.push_back('}');
            Delta(delta, out);
          }
        } else if (key == "thinking_blocks") {
          MODEENVOY_RETURN_IF_ERROR(ThinkingBlocks(value, out));
        } else if (key == "anthropic_event") {
          MODEENVOY_RETURN_IF_ERROR(RawEvent(value, out));
        } else if (key == "content") {
          ContentParts(value, out);
        } else if (key == "stop_sequence") {
          if (StringValue(value).has_value()) stop_sequence_ = value;
        }
      }
      if (d.content.has_value() && !d.content->empty()) {
        Open(Kind::kText, out, R"({"type":"text","text":""})");
        std::string delta = R"({"type":"text_delta","text":)";
        AppendJsonString(&delta, *d.content);
        delta.push_back('}');
        Delta(delta, out);
      }
      if (d.refusal.has_value() && !d.refusal->empty()) {
        Open(Kind::kText, out, R"({"type":"text","text":""})");
        std::string delta = R"({"type":"text_delta","text":)";
        AppendJsonString(&delta, *d.refusal);
        delta.push_back('}');
        Delta(delta, out);
      }
      for (const ToolCallDelta& tc : d.tool_calls) {
        if (tc.id.has_value() || tc.index != tool_index_ || kind_ != Kind::kTool) {
          std::string block = R"({"type":"tool_use","id":)";
          AppendJsonString(&block, tc.id.value_or(""));
          block.append(R"(,"name":)");
          AppendJsonString(&block,
                           tc.function && tc.function->name ? *tc.function->name : "");
          block.append(R"(,"input":{}})");
          Close(out);
          Open(Kind::kTool, out, block);
          tool_index_ = tc.index;
        }
        if (tc.function && tc.function->arguments && !tc.function->arguments->empty()) {
          std::string delta = R"({"type":"input_json_delta","partial_json":)";
          AppendJsonString(&delta, *tc.function->arguments);
          delta.push_back('}');
          Delta(delta, out);
        }
      }
      if (choice.finish_reason.has_value()) finish_ = *choice.finish_reason;
      if (const std::string* raw = FindExtra(choice.extra, "stop_reason")) {
        if (StringValue(*raw).has_value()) raw_stop_reason_ = *raw;
      }
      if (const std::string* seq = MatchedStopSequence(choice.extra)) stop_sequence_ = *seq;
    }
    return absl::OkStatus();
  }

  void EncodeError(const absl::Status& error, std::string* out) override {
    std::string body = R"({"type":"error","error":{"type":)";
    AppendJsonString(&body, ErrorTypeForHttpStatus(HttpStatusForStatus(error)));
    body.append(R"(,"message":)");
    AppendJsonString(&body, core_internal::ToStd(error.message()));
    body.append("}}");
    out->append(AnthropicEvent("error", body));
  }

  absl::Status Finish(std::string* out) override {
    if (!started_) return absl::FailedPreconditionError("anthropic stream: no chunk encoded");
    Close(out);
    std::string m = R"({"type":"message_delta","delta":{"stop_reason":)";
    if (!raw_stop_reason_.empty()) {
      m.append(raw_stop_reason_);
    } else if (!stop_sequence_.empty() && (finish_.empty() || finish_ == "stop")) {
      m.append("\"stop_sequence\"");
    } else {
      AppendJsonString(&m, StopReasonFor(finish_));
    }
    m.append(R"(,"stop_sequence":)");
    m.append(stop_sequence_.empty() ? std::string_view("null") : stop_sequence_);
    m.append(R"(},"usage":{)");
    if (usage_.has_value()) {
      int64_t cached = usage_->prompt_tokens_details
                           ? usage_->prompt_tokens_details->cached_tokens.value_or(0)
                           : 0;
      int64_t creation = 0;
      if (const std::string* c = FindExtra(usage_->extra, "cache_creation_input_tokens")) {
        NumberToInt64(*c, &creation);
      }
      m.append("\"input_tokens\":");
      AppendJsonInt(&m, usage_->prompt_tokens - cached - creation);
      m.append(",\"cache_creation_input_tokens\":");
      AppendJsonInt(&m, creation);
      m.append(",\"cache_read_input_tokens\":");
      AppendJsonInt(&m, cached);
      m.append(",");
    }
    m.append("\"output_tokens\":");
    AppendJsonInt(&m, usage_ ? usage_->completion_tokens : 0);
    if (usage_) AppendThinkingDetails(&m, *usage_);
    m.append("}}");
    out->append(AnthropicEvent("message_delta", m));
    out->append(AnthropicEvent("message_stop", R"({"type":"message_stop"})"));
    return absl::OkStatus();
  }

 private:
  enum class Kind { kNone, kText, kTool, kThinking, kOther };

  // thinking_blocks of a delta: a signature for the open thinking block (what the decoder
  // makes of signature_delta), whole thinking blocks, or redacted_thinking blocks.
  absl::Status ThinkingBlocks(std::string_view raw, std::string* out) {
    JsonReader r(raw, kMaxJsonDepth);
    bool first = true, has = false;
    if (!r.BeginArray()) return InvalidFieldError("delta.thinking_blocks", "must be an array");
    while (r.NextElement(&first, &has) && has) {
      std::string block;
      if (!r.CaptureValue(&block)) break;
      std::vector<std::pair<std::string, std::string>> members;
      if (!ObjectMembers(block, &members)) {
        return InvalidFieldError("delta.thinking_blocks", "blocks must be objects");
      }
      std::string type, thinking, signature;
      for (const auto& [k, v] : members) {
        std::optional<std::string> text = StringValue(v);
        if (!text) continue;
        if (k == "type") type = *text;
        if (k == "thinking") thinking = *text;
        if (k == "signature") signature = *text;
      }
      if (type == "redacted_thinking") {
        Close(out);
        Open(Kind::kOther, out, block);
        Close(out);
        continue;
      }
      if (type != "thinking") {
        return InvalidFieldError("delta.thinking_blocks.type",
                                 "must be thinking or redacted_thinking");
      }
      if (kind_ != Kind::kThinking || !thinking.empty()) {
        Open(Kind::kThinking, out, R"({"type":"thinking","thinking":"","signature":""})");
      }
      if (!thinking.empty()) {
        std::string delta = R"({"type":"thinking_delta","thinking":)";
        AppendJsonString(&delta, thinking);
        delta.push_back('}');
        Delta(delta, out);
      }
      if (!signature.empty()) {
        std::string delta = R"({"type":"signature_delta","signature":)";
        AppendJsonString(&delta, signature);
        delta.push_back('}');
        Delta(delta, out);
      }
    }
    if (!r.status().ok()) return InvalidFieldError("delta.thinking_blocks", Msg(r.status()));
    return absl::OkStatus();
  }

  // Content streamed as an array of parts (Mistral: {"type":"text","text"} and
  // {"type":"thinking","thinking":[{"type":"text","text"}]}), which the unified delta keeps
  // as extra "content": text and thinking deltas. Parts of other types are not shown.
  void ContentParts(std::string_view raw, std::string* out) {
    JsonReader r(raw, kMaxJsonDepth);
    bool first = true, has = false;
    if (!r.BeginArray()) return;
    while (r.NextElement(&first, &has) && has) {
      std::string part;
      if (!r.CaptureValue(&part)) return;
      std::vector<std::pair<std::string, std::string>> members;
      if (!ObjectMembers(part, &members)) continue;
      std::string type, text, thinking;
      for (const auto& [k, v] : members) {
        if (k == "type") type = StringValue(v).value_or("");
        if (k == "text") text = StringValue(v).value_or("");
        if (k == "thinking") {
          JsonReader t(v, kMaxJsonDepth);
          bool f = true, h = false;
          if (!t.BeginArray()) continue;
          while (t.NextElement(&f, &h) && h) {
            std::string inner;
            if (!t.CaptureValue(&inner)) break;
            std::vector<std::pair<std::string, std::string>> im;
            if (!ObjectMembers(inner, &im)) continue;
            for (const auto& [ik, iv] : im) {
              if (ik == "text") thinking += StringValue(iv).value_or("");
            }
          }
        }
      }
      if (type == "text" && !text.empty()) {
        Open(Kind::kText, out, R"({"type":"text","text":""})");
        std::string delta = R"({"type":"text_delta","text":)";
        AppendJsonString(&delta, text);
        delta.push_back('}');
        Delta(delta, out);
      } else if (type == "thinking" && !thinking.empty()) {
        Open(Kind::kThinking, out, R"({"type":"thinking","thinking":"","signature":""})");
        std::string delta = R"({"type":"thinking_delta","thinking":)";
        AppendJsonString(&delta, thinking);
        delta.push_back('}');
        Delta(delta, out);
      }
    }
  }

  // A raw Anthropic event the decoder kept (server tool blocks, citations, compaction, ...):
  // sent again with the block index of this stream.
  absl::Status RawEvent(std::string_view raw, std::string* out) {
    std::vector<std::pair<std::string, std::string>> members;
    if (!ObjectMembers(raw, &members)) {
      return InvalidFieldError("delta.anthropic_event", "must be an object");
    }
    std::string type;
    for (const auto& [k, v] : members) {
      if (k == "type") type = StringValue(v).value_or("");
    }
    if (type == "content_block_start") {
      Close(out);
      kind_ = Kind::kOther;
    } else if (type == "content_block_delta" || type == "content_block_stop") {
      if (kind_ == Kind::kNone) {
        return InvalidFieldError("delta.anthropic_event", "a block event with no open block");
      }
    } else {
      return absl::OkStatus();  // message-level events are the encoder's own
    }
    std::string e = "{";
    for (const auto& [k, v] : members) {
      if (e.size() > 1) e.push_back(',');
      AppendJsonString(&e, k);
      e.push_back(':');
      if (k == "index") {
        AppendJsonInt(&e, index_);
      } else {
        e.append(v);
      }
    }
    e.push_back('}');
    out->append(AnthropicEvent(type, e));
    if (type == "content_block_stop") {
      kind_ = Kind::kNone;
      ++index_;
    }
    return absl::OkStatus();
  }

  void Open(Kind kind, std::string* out, std::string_view block) {
    if (kind_ == kind && kind != Kind::kTool && kind != Kind::kOther) return;
    Close(out);
    kind_ = kind;
    std::string e = R"({"type":"content_block_start","index":)";
    AppendJsonInt(&e, index_);
    e.append(R"(,"content_block":)");
    e.append(block);
    e.push_back('}');
    out->append(AnthropicEvent("content_block_start", e));
  }
  void Delta(std::string_view delta, std::string* out) {
    std::string e = R"({"type":"content_block_delta","index":)";
    AppendJsonInt(&e, index_);
    e.append(R"(,"delta":)");
    e.append(delta);
    e.push_back('}');
    out->append(AnthropicEvent("content_block_delta", e));
  }
  void Close(std::string* out) {
    if (kind_ == Kind::kNone) return;
    std::string e = R"({"type":"content_block_stop","index":)";
    AppendJsonInt(&e, index_);
    e.push_back('}');
    out->append(AnthropicEvent("content_block_stop", e));
    kind_ = Kind::kNone;
    ++index_;
  }

  bool started_ = false;
  std::string id_, model_, finish_;
  std::string raw_stop_reason_;  // JSON string: the upstream's own stop_reason
  std::string stop_sequence_;    // JSON string, or empty
  Kind kind_ = Kind::kNone;
  int64_t index_ = 0;
  int64_t tool_index_ = -1;
  std::optional<Usage> usage_;
};

class AnthropicDialect final : public Dialect {
 public:
  explicit AnthropicDialect(Options options) : options_(std::move(options)) {}

  std::string_view name() const override { return "anthropic"; }
  std::string_view default_base_url() const override { return "https://api.anthropic.com"; }
  ApiKeyHeader api_key_header() const override { return {"x-api-key", ""}; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override;

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }
  absl::Status DecodeResponse(std::string* body) const override;
  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<AnthropicStreamDecoder>();
  }
  absl::Status DecodeError(int http_status, std::string_view body) const override {
    return StatusFromUpstreamError(http_status, body);
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override;
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override;
  absl::Status EncodeNativeRequest(std::string_view body, const DialectCall& call,
                                   WireRequest* out) const override;
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<AnthropicStreamEncoder>();
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    std::string body = R"({"type":"error","error":{"type":)";
    AppendJsonString(&body, ErrorTypeForHttpStatus(HttpStatusForStatus(status)));
    body.append(R"(,"message":)");
    AppendJsonString(&body, core_internal::ToStd(status.message()));
    body.append("}}");
    return body;
  }

 private:
  absl::Status EncodeBody(const ChatRequest& chat, const DialectCall& call,
                          std::string* out) const;
  // Method, target and headers of every request (the client's version and betas included).
  void AddHeaders(const DialectCall& call, WireRequest* out) const;

  Options options_;
};

// Rough body size, to allocate once: the texts dominate real requests (a guess of 128
// bytes per message made a 1 KB request's body regrow once it was nearly written).
size_t EstimateBodySize(const ChatRequest& chat) {
  size_t n = 256 + chat.model.size();
  for (const Message& m : chat.messages) {
    n += 64;
    if (m.content.has_value()) {
      if (const auto* text = std::get_if<std::string>(&*m.content)) {
        n += text->size() + text->size() / 16;
      } else {
        for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
          n += 64 + part.text.size() + part.text.size() / 16 +
               (part.image_url ? part.image_url->url.size() : 0) +
               (part.file && part.file->file_data ? part.file->file_data->size() : 0);
        }
      }
    }
    for (const ToolCall& c : m.tool_calls) {
      n += 96 + (c.function ? c.function->arguments.size() : 0);
    }
  }
  for (const Tool& t : chat.tools) {
    n += 96 + (t.function && t.function->parameters ? t.function->parameters->size() : 0) +
         (t.function && t.function->description ? t.function->description->size() : 0);
  }
  if (chat.response_format) n += chat.response_format->size();
  return n;
}

absl::Status AnthropicDialect::EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                                             WireRequest* out) const {
  std::string body;
  body.reserve(EstimateBodySize(chat));
  MODEENVOY_RETURN_IF_ERROR(EncodeBody(chat, call, &body));
  out->body = std::move(body);
  AddHeaders(call, out);
  return absl::OkStatus();
}

absl::Status AnthropicDialect::EncodeNativeRequest(std::string_view body,
                                                   const DialectCall& call,
                                                   WireRequest* out) const {
  // Find the top-level "model" value's bytes; stop reading there (the client's body was
  // read whole by DecodeRequest already, and the rest is sent as it is).
  JsonReader r(body, kMaxJsonDepth);
  if (!r.BeginObject()) return InvalidFieldError("body", Msg(r.status()));
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  size_t begin = 0, end = 0;
  bool found = false;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    if (key != "model") {
      if (!r.SkipValue()) break;
      continue;
    }
    JsonType t;
    if (!r.Peek(&t) || t != JsonType::kString) {
      return InvalidFieldError("model", "must be a string");
    }
    begin = r.offset();
    while (begin < body.size() && body[begin] != '"') ++begin;  // past whitespace
    if (!r.SkipValue()) break;
    end = r.offset();
    found = true;
    break;
  }
  if (!r.status().ok()) return InvalidFieldError("body", Msg(r.status()));
  if (!found) return InvalidFieldError("model", "Field required");
  std::string model;
  if (!call.model.empty()) AppendJsonString(&model, call.model);
  if (model.empty() || body.substr(begin, end - begin) == model) {
    out->body.assign(body);
  } else {
    out->body.reserve(body.size() + model.size());
    out->body.assign(body.substr(0, begin)).append(model).append(body.substr(end));
  }
  AddHeaders(call, out);
  return absl::OkStatus();
}

void AnthropicDialect::AddHeaders(const DialectCall& call, WireRequest* out) const {
  out->method = "POST";
  out->target = "/v1/messages";
  out->headers.reserve(out->headers.size() + 4);
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
  // A client that speaks Anthropic (the Messages ingress, Claude Code) names the API version
  // it was written against: that one wins over the configured default.
  std::string_view version = options_.version;
  std::vector<std::string> betas;
  if (call.client_headers != nullptr) {
    for (const auto& [name, value] : *call.client_headers) {
      const absl::string_view n = core_internal::ToAbsl(name);
      if (absl::EqualsIgnoreCase(n, "anthropic-beta")) AddBetas(value, &betas);
      if (absl::EqualsIgnoreCase(n, "anthropic-version") && !value.empty()) version = value;
    }
  }
  out->headers.emplace_back("anthropic-version", version);
  for (const std::string& b : options_.beta) AddBetas(b, &betas);
  if (!betas.empty()) {
    std::string joined;
    for (const std::string& b : betas) {
      if (!joined.empty()) joined.push_back(',');
      joined.append(b);
    }
    out->headers.emplace_back("anthropic-beta", std::move(joined));
  }
}

absl::Status AnthropicDialect::EncodeBody(const ChatRequest& chat, const DialectCall& call,
                                          std::string* out) const {
  // Fields Anthropic has no way to express.
  if (chat.n.has_value() && *chat.n != 1) return NotSupported("n", "one choice per request");
  if (chat.temperature.has_value() && *chat.temperature > 1) {
    return InvalidFieldError("temperature", "must be <= 1 for anthropic (range 0..1)");
  }
  // 0 is the penalties' neutral value (some clients always send it): nothing is lost.
  if (chat.presence_penalty.value_or(0) != 0) return NotSupported("presence_penalty");
  if (chat.frequency_penalty.value_or(0) != 0) return NotSupported("frequency_penalty");
  if (chat.logit_bias) return NotSupported("logit_bias");
  if (chat.logprobs.value_or(false)) return NotSupported("logprobs");
  if (chat.top_logprobs) return NotSupported("top_logprobs");
  if (chat.seed) return NotSupported("seed");
  if (chat.audio) return NotSupported("audio");
  if (chat.modalities) {
    for (size_t i = 0; i < chat.modalities->size(); ++i) {
      if ((*chat.modalities)[i] != "text") return NotSupported(Idx("modalities", i));
    }
  }
  if (chat.prediction) return NotSupported("prediction");
  if (chat.web_search_options) {
    return NotSupported("web_search_options", "declare the web_search tool instead");
  }
  if (chat.functions) return NotSupported("functions", "use tools");
  if (chat.function_call) return NotSupported("function_call", "use tool_choice");
  if (chat.verbosity) return NotSupported("verbosity");
  if (chat.metadata) return NotSupported("metadata", "user is sent as metadata.user_id");
  if (chat.store.value_or(false)) return NotSupported("store");
  // prompt_cache_key (OpenAI's cache routing hint) is not sent: Anthropic caches by
  // cache_control marks, and the answer is the same without it.

  std::optional<int64_t> budget;
  if (chat.reasoning_effort.has_value() && *chat.reasoning_effort != "none") {
    budget = ThinkingBudget(*chat.reasoning_effort);
    if (!budget) {
      return InvalidFieldError("reasoning_effort",
                               "anthropic maps minimal, low, medium, high and none");
    }
    if (FindExtra(chat.extra, "thinking") != nullptr) {
      return InvalidFieldError("thinking", "give either thinking or reasoning_effort");
    }
  }
  int64_t max_tokens = options_.default_max_tokens;
  const char* max_path = nullptr;
  if (chat.max_completion_tokens) {
    max_tokens = *chat.max_completion_tokens;
    max_path = "max_completion_tokens";
  } else if (chat.max_tokens) {
    max_tokens = *chat.max_tokens;
    max_path = "max_tokens";
  }
  if (budget) {
    if (max_path == nullptr) {
      max_tokens += *budget;  // the default is for the answer; thinking comes on top
    } else if (max_tokens <= *budget) {
      return InvalidFieldError(max_path,
                               absl::StrCat("must exceed the thinking budget ", *budget,
                                            " that reasoning_effort \"",
                                            *chat.reasoning_effort, "\" gives"));
    }
  }

  JsonObjectWriter w(out);
  w.Key("model");
  AppendJsonString(out, call.model.empty() ? std::string_view(chat.model) : call.model);
  w.Key("max_tokens");
  AppendJsonInt(out, max_tokens);

  const FieldPath messages_path("messages");
  // system: every system/developer message in order, as one string when that loses
  // nothing, else as text blocks (cache_control marks live on blocks).
  {
    std::vector<size_t> system;
    bool blocks = false;
    for (size_t i = 0; i < chat.messages.size(); ++i) {
      const Message& m = chat.messages[i];
      if (m.role != Role::kSystem && m.role != Role::kDeveloper) continue;
      system.push_back(i);
      if (!m.content || !std::holds_alternative<std::string>(*m.content) || !m.extra.empty()) {
        blocks = true;
      }
    }
    if (system.size() > 1) blocks = true;
    if (!system.empty()) {
      w.Key("system");
      if (!blocks) {
        AppendJsonString(out, std::get<std::string>(*chat.messages[system[0]].content));
      } else {
        out->push_back('[');
        BlockList list(out);
        for (size_t i : system) {
          const Message& m = chat.messages[i];
          const FieldPath path(messages_path, i);
          if (m.name) return NotSupported(path.str() + ".name");
          MODEENVOY_RETURN_IF_ERROR(
              AppendContentBlocks(list, *m.content, FieldPath(path, "content")));
          for (const auto& [k, v] : m.extra) {
            if (k != "cache_control") return NotSupported(FieldPath(path, k).str());
            list.MarkLast(v);
          }
        }
        out->push_back(']');
      }
    }
  }

  w.Key("messages");
  out->push_back('[');
  bool first_message = true;
  bool in_tool_turn = false;  // a user turn of tool_result blocks is open
  BlockList* tool_blocks = nullptr;
  std::optional<BlockList> tool_list;
  auto close_tool_turn = [&]() {
    if (in_tool_turn) out->append("]}");
    in_tool_turn = false;
    tool_list.reset();
    tool_blocks = nullptr;
  };
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    const Message& m = chat.messages[i];
    const FieldPath path(messages_path, i);
    if (m.role == Role::kSystem || m.role == Role::kDeveloper) continue;
    if (m.role == Role::kFunction) return NotSupported(path.str() + ".role", "use tool messages");
    if (m.name) return NotSupported(path.str() + ".name");

    if (m.role == Role::kTool) {
      if (!in_tool_turn) {
        if (!first_message) out->push_back(',');
        first_message = false;
        out->append(R"({"role":"user","content":[)");
        in_tool_turn = true;
        tool_list.emplace(out);
        tool_blocks = &*tool_list;
      }
      std::string* b = tool_blocks->Next();
      JsonObjectWriter tw(b);
      tw.Key("type");
      b->append("\"tool_result\"");
      tw.Key("tool_use_id");
      AppendJsonString(b, m.tool_call_id.value_or(""));
      if (m.content) {
        tw.Key("content");
        if (const auto* text = std::get_if<std::string>(&*m.content)) {
          AppendJsonString(b, *text);
        } else {
          b->push_back('[');
          BlockList inner(b);
          MODEENVOY_RETURN_IF_ERROR(
              AppendContentBlocks(inner, *m.content, FieldPath(path, "content")));
          b->push_back(']');
        }
      }
      for (const auto& [k, v] : m.extra) {
        if (k != "cache_control" && k != "is_error") {
          return NotSupported(FieldPath(path, k).str());
        }
        tw.Key(k);
        b->append(v);
      }
      tw.End();
      continue;
    }
    close_tool_turn();
    if (!first_message) out->push_back(',');
    first_message = false;

    if (m.role == Role::kUser) {
      out->append(R"({"role":"user","content":)");
      const std::string* cache_control = nullptr;
      for (const auto& [k, v] : m.extra) {
        if (k != "cache_control") return NotSupported(FieldPath(path, k).str());
        cache_control = &v;
      }
      if (m.content && std::holds_alternative<std::string>(*m.content) &&
          cache_control == nullptr) {
        AppendJsonString(out, std::get<std::string>(*m.content));
      } else {
        out->push_back('[');
        BlockList list(out);
        if (m.content) {
          MODEENVOY_RETURN_IF_ERROR(
              AppendContentBlocks(list, *m.content, FieldPath(path, "content")));
        }
        if (cache_control != nullptr) list.MarkLast(*cache_control);
        out->push_back(']');
      }
      out->push_back('}');
      continue;
    }

    // Assistant. Plain text stays a string, as Anthropic's own examples send it.
    if (m.extra.empty() && m.tool_calls.empty() && !m.refusal && m.content &&
        std::holds_alternative<std::string>(*m.content) &&
        !std::get<std::string>(*m.content).empty()) {
      out->append(R"({"role":"assistant","content":)");
      AppendJsonString(out, std::get<std::string>(*m.content));
      out->push_back('}');
      continue;
    }
    out->append(R"({"role":"assistant","content":[)");
    BlockList list(out);
    const std::string* verbatim = FindExtra(m.extra, "anthropic_content");
    const std::string* cache_control = nullptr;
    for (const auto& [k, v] : m.extra) {
      if (k == "cache_control") {
        cache_control = &v;
      } else if (k != "thinking_blocks" && k != "anthropic_content" &&
                 k != "reasoning_content") {
        // reasoning_content is the display text of thinking_blocks: sending the blocks back
        // is what Anthropic needs.
        return NotSupported(FieldPath(path, k).str());
      }
    }
    if (verbatim != nullptr) {
      // The response's own content, as DecodeResponse kept it: sent back unchanged.
      JsonType t;
      if (!IsValidJson(*verbatim, &t) || t != JsonType::kArray || *verbatim == "[]") {
        return InvalidFieldError(path.str() + ".anthropic_content", "must be a non-empty array");
      }
      list.Next()->append(std::string_view(*verbatim).substr(1, verbatim->size() - 2));
    } else {
      if (const std::string* thinking = FindExtra(m.extra, "thinking_blocks")) {
        JsonType t;
        if (!IsValidJson(*thinking, &t) || t != JsonType::kArray) {
          return InvalidFieldError(path.str() + ".thinking_blocks", "must be an array");
        }
        if (*thinking != "[]") {
          list.Next()->append(std::string_view(*thinking).substr(1, thinking->size() - 2));
        }
      }
      if (m.content) {
        if (const auto* text = std::get_if<std::string>(&*m.content)) {
          if (!text->empty()) {
            MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(list.Next(), *text, {}, path));
          }
        } else {
          const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
          const FieldPath content_path(path, "content");
          for (size_t k = 0; k < parts.size(); ++k) {
            const ContentPart& part = parts[k];
            const FieldPath p(content_path, k);
            std::string_view text =
                part.type == ContentPartType::kRefusal ? part.refusal : part.text;
            if (part.type != ContentPartType::kText && part.type != ContentPartType::kRefusal) {
              return NotSupported(p.str() + ".type");
            }
            if (text.empty() && part.extra.empty()) continue;
            MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(list.Next(), text, part.extra, p));
          }
        }
      }
      if (m.refusal && !m.refusal->empty()) {
        MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(list.Next(), *m.refusal, {}, path));
      }
      const FieldPath calls_path(path, "tool_calls");
      for (size_t k = 0; k < m.tool_calls.size(); ++k) {
        const ToolCall& tc = m.tool_calls[k];
        const FieldPath p(calls_path, k);
        if (tc.type != "function" || !tc.function) return NotSupported(p.str() + ".type");
        std::string* b = list.Next();
        b->append(R"({"type":"tool_use","id":)");
        AppendJsonString(b, tc.id);
        b->append(R"(,"name":)");
        AppendJsonString(b, tc.function->name);
        b->append(R"(,"input":)");
        std::string_view args = tc.function->arguments;
        size_t lead = args.find_first_not_of(" \t\r\n");
        if (lead == std::string_view::npos) {
          b->append("{}");
        } else {
          // Compact it (arguments come from a model and may carry whitespace), checking in
          // the same pass that it is one JSON object.
          JsonReader r(args, kMaxJsonDepth);
          JsonType t;
          if (!r.Peek(&t) || t != JsonType::kObject || !r.CaptureValue(b) || !r.ExpectEnd()) {
            return InvalidFieldError(p.str() + ".function.arguments",
                                     "must be a JSON object for anthropic (tool_use.input)");
          }
        }
        for (const auto& [ek, ev] : tc.extra) {
          (void)ev;
          return NotSupported(FieldPath(p, ek).str());
        }
        b->push_back('}');
      }
    }
    if (cache_control != nullptr) list.MarkLast(*cache_control);
    if (list.empty()) {
      return InvalidFieldError(path.str() + ".content",
                               "anthropic needs a non-empty assistant turn");
    }
    out->append("]}");
  }
  close_tool_turn();
  out->push_back(']');

  if (chat.stop.has_value()) {
    w.Key("stop_sequences");
    out->push_back('[');
    if (const auto* one = std::get_if<std::string>(&*chat.stop)) {
      AppendJsonString(out, *one);
    } else {
      bool first = true;
      for (const std::string& s : std::get<std::vector<std::string>>(*chat.stop)) {
        if (!first) out->push_back(',');
        first = false;
        AppendJsonString(out, s);
      }
    }
    out->push_back(']');
  }
  if (chat.temperature) {
    w.Key("temperature");
    AppendJsonDouble(out, *chat.temperature);
  }
  if (chat.top_p) {
    w.Key("top_p");
    AppendJsonDouble(out, *chat.top_p);
  }
  if (call.stream) {
    w.Key("stream");
    out->append("true");
  }
  if (chat.user || chat.safety_identifier) {
    w.Key("metadata");
    out->append("{\"user_id\":");
    AppendJsonString(out, chat.user ? *chat.user : *chat.safety_identifier);
    out->push_back('}');
  }
  if (chat.service_tier) {
    w.Key("service_tier");
    if (*chat.service_tier == "auto") {
      out->append("\"auto\"");
    } else if (*chat.service_tier == "default") {
      out->append("\"standard_only\"");
    } else {
      return NotSupported("service_tier", "auto or default");
    }
  }
  if (budget) {
    w.Key("thinking");
    out->append(R"({"type":"enabled","budget_tokens":)");
    AppendJsonInt(out, *budget);
    out->push_back('}');
  }

  if (!chat.tools.empty()) {
    w.Key("tools");
    out->push_back('[');
    const FieldPath tools_path("tools");
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const Tool& tool = chat.tools[i];
      const FieldPath path(tools_path, i);
      if (i > 0) out->push_back(',');
      JsonObjectWriter tw(out);
      if (tool.type == "function") {
        const FunctionDefinition& f = *tool.function;
        tw.Key("name");
        AppendJsonString(out, f.name);
        if (f.description) {
          tw.Key("description");
          AppendJsonString(out, *f.description);
        }
        tw.Key("input_schema");
        out->append(f.parameters ? std::string_view(*f.parameters)
                                 : std::string_view(R"({"type":"object","properties":{}})"));
        if (f.strict) {
          tw.Key("strict");
          out->append(*f.strict ? "true" : "false");
        }
        MODEENVOY_RETURN_IF_ERROR(AppendExtras(tw, f.extra, FieldPath(path, "function"),
                                               {"name", "description", "input_schema", "strict"}));
        MODEENVOY_RETURN_IF_ERROR(AppendExtras(
            tw, tool.extra, path, {"name", "description", "input_schema", "strict", "type"}));
      } else if (tool.type == "custom") {
        return NotSupported(path.str() + ".type");
      } else {
        // An Anthropic tool given as is ({"type":"web_search_20250305","name":...}).
        tw.Key("type");
        AppendJsonString(out, tool.type);
        MODEENVOY_RETURN_IF_ERROR(AppendExtras(tw, tool.extra, path, {"type"}));
      }
      tw.End();
    }
    out->push_back(']');
  }
  const bool no_parallel = chat.parallel_tool_calls.has_value() && !*chat.parallel_tool_calls;
  if (chat.tool_choice.has_value() || no_parallel) {
    std::string_view type = "auto";
    std::string named;
    if (chat.tool_choice) {
      const ToolChoice& choice = *chat.tool_choice;
      if (choice.mode == "none") {
        type = "none";
      } else if (choice.mode == "required") {
        type = "any";
      } else if (choice.mode.empty()) {
        MODEENVOY_ASSIGN_OR_RETURN(named, NamedToolChoice(choice.object));
        type = "tool";
      }
    }
    w.Key("tool_choice");
    out->append("{\"type\":");
    AppendJsonString(out, type);
    if (!named.empty()) {
      out->append(",\"name\":");
      AppendJsonString(out, named);
    }
    if (no_parallel && type != "none") out->append(",\"disable_parallel_tool_use\":true");
    out->push_back('}');
  }

  if (chat.response_format) {
    // {"type":"text"} | {"type":"json_schema","json_schema":{"name","schema","strict"}}.
    std::string type, schema;
    JsonReader r(*chat.response_format, kMaxJsonDepth);
    std::string scratch;
    bool first = true, has = false;
    std::string_view key;
    if (r.BeginObject()) {
      while (r.NextMember(&first, &key, &scratch, &has) && has) {
        if (key == "type") {
          if (!r.ReadString(&type)) break;
        } else if (key == "json_schema") {
          bool f2 = true, h2 = false;
          std::string s2;
          if (!r.BeginObject()) break;
          while (r.NextMember(&f2, &key, &s2, &h2) && h2) {
            if (key == "schema") {
              if (!r.CaptureValue(&schema)) break;
            } else if (!r.SkipValue()) {
              break;
            }
          }
        } else if (!r.SkipValue()) {
          break;
        }
      }
    }
    if (!r.status().ok()) return InvalidFieldError("response_format", Msg(r.status()));
    if (type == "json_schema") {
      if (schema.empty()) {
        return InvalidFieldError("response_format.json_schema.schema", "required by anthropic");
      }
      w.Key("output_config");
      out->append(R"({"format":{"type":"json_schema","schema":)");
      out->append(schema);
      out->append("}}");
    } else if (type != "text") {
      return InvalidFieldError("response_format.type",
                               absl::StrCat("\"", type,
                                            "\" not supported by anthropic (text, json_schema)"));
    }
  }

  MODEENVOY_RETURN_IF_ERROR(AppendExtras(
      w, chat.extra, FieldPath(""),
      {"model", "max_tokens", "system", "messages", "stop_sequences", "temperature", "top_p",
       "stream", "metadata", "service_tier", "tools", "tool_choice", "output_config",
       budget ? "thinking" : "model"}));
  w.End();
  return absl::OkStatus();
}

absl::Status AnthropicDialect::DecodeResponse(std::string* body) const {
  JsonReader r(*body, kMaxJsonDepth);
  if (!r.BeginObject()) return InvalidFieldError("body", Msg(r.status()));
  std::string id, model, type, content_raw;
  std::optional<std::string> stop_reason, stop_sequence;
  AnthropicUsage usage;
  ExtraFields kept;  // container, stop_details, ...
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    bool ok;
    if (key == "id") {
      ok = r.ReadString(&id);
    } else if (key == "model") {
      ok = r.ReadString(&model);
    } else if (key == "type") {
      ok = r.ReadString(&type);
    } else if (key == "content") {
      ok = r.CaptureValue(&content_raw);
    } else if (key == "stop_reason") {
      ok = ReadStringOrNull(r, &stop_reason);
    } else if (key == "stop_sequence") {
      ok = ReadStringOrNull(r, &stop_sequence);
    } else if (key == "usage") {
      MODEENVOY_RETURN_IF_ERROR(ReadUsage(r, "usage", &usage));
      ok = true;
    } else if (key == "role") {
      ok = r.SkipValue();
    } else {
      std::string name(key), raw;
      ok = r.CaptureValue(&raw);
      if (raw != "null") kept.emplace_back(std::move(name), std::move(raw));
    }
    if (!ok) break;
  }
  if (!r.status().ok() || !r.ExpectEnd()) return InvalidFieldError("body", Msg(r.status()));
  if (type == "error") {
    // An error inside a 2xx body: the code comes from its type.
    return StatusFromUpstreamError(0, *body);
  }
  // Some mock servers leave "type" out; a body without content is not a message at all.
  if ((!type.empty() && type != "message") || (type.empty() && content_raw.empty())) {
    return WithHttpStatus(InvalidFieldError("type", "anthropic response is not a message"), 502);
  }

  std::string text, reasoning, thinking_blocks, tool_calls;
  bool unmodeled = false, any_text = false;
  int64_t tool_count = 0;
  if (!content_raw.empty() && content_raw != "null") {
    JsonReader c(content_raw, kMaxJsonDepth);
    bool f = true, h = false;
    if (!c.BeginArray()) return InvalidFieldError("content", "expected an array");
    while (c.NextElement(&f, &h) && h) {
      Block b;
      if (!c.CaptureValue(&b.raw)) break;
      MODEENVOY_RETURN_IF_ERROR(ParseBlock(b.raw, &b));
      if (!IsModeled(b)) unmodeled = true;
      if (b.type == "text") {
        text += b.text;
        any_text = true;
      } else if (b.type == "thinking" || b.type == "redacted_thinking") {
        reasoning += b.text;
        if (!thinking_blocks.empty()) thinking_blocks.push_back(',');
        thinking_blocks += b.raw;
      } else if (b.type == "tool_use") {
        if (tool_count++ > 0) tool_calls.push_back(',');
        tool_calls.append(R"({"id":)");
        AppendJsonString(&tool_calls, b.id);
        tool_calls.append(R"(,"type":"function","function":{"name":)");
        AppendJsonString(&tool_calls, b.name);
        tool_calls.append(R"(,"arguments":)");
        AppendJsonString(&tool_calls, b.input.empty() ? std::string_view("{}") : b.input);
        tool_calls.append("}}");
      }
    }
    if (!c.status().ok()) return InvalidFieldError("content", Msg(c.status()));
  }

  std::string out;
  out.reserve(body->size() + 256);
  JsonObjectWriter w(&out);
  w.Key("id");
  AppendJsonString(&out, id);
  w.Key("object");
  out.append("\"chat.completion\"");
  w.Key("created");
  out.append("0");
  w.Key("model");
  AppendJsonString(&out, model);
  w.Key("choices");
  out.append(R"([{"index":0,"message":{"role":"assistant","content":)");
  if (any_text || tool_count == 0) {
    AppendJsonString(&out, text);
  } else {
    out.append("null");
  }
  if (tool_count > 0) out.append(",\"tool_calls\":[").append(tool_calls).append("]");
  if (!thinking_blocks.empty()) {
    out.append(",\"reasoning_content\":");
    AppendJsonString(&out, reasoning);
    out.append(",\"thinking_blocks\":[").append(thinking_blocks).append("]");
  }
  if (unmodeled) out.append(",\"anthropic_content\":").append(content_raw);
  out.append("},\"logprobs\":null,\"finish_reason\":");
  bool keep = false;
  if (stop_reason) {
    AppendJsonString(&out, FinishReason(*stop_reason, &keep));
  } else {
    out.append("null");
  }
  if (keep) {
    out.append(",\"stop_reason\":");
    AppendJsonString(&out, *stop_reason);
  }
  if (stop_sequence) {
    out.append(",\"stop_sequence\":");
    AppendJsonString(&out, *stop_sequence);
  }
  for (const auto& [k, v] : kept) {
    out.push_back(',');
    AppendJsonString(&out, k);
    out.push_back(':');
    out.append(v);
  }
  out.append("}]");
  if (usage.seen) {
    w.Key("usage");
    AppendUnifiedUsage(&out, usage);
  }
  w.End();
  *body = std::move(out);
  return absl::OkStatus();
}

// ---- Ingress ----
//
// DecodeRequest reads clients' bodies with the one-pass reader of anthropic_request.cc
// (the same mapping); what follows is the checked reader, which a body that reader gives
// up on goes to. It reads the Messages request with the pull parser in two steps per
// object: its members' value texts are collected first (the whole body is checked once,
// syntax and nesting, by the top-level walk), then read in the order the checks are made,
// so the first error reported is the same whatever the member order (model, max_tokens,
// messages, system, then the others), and members of any order map the same way.

// One member of a JSON object: its name and its value's text (a view into the body).
struct RawMember {
  std::string_view key;
  std::string_view raw;
};

// The type of a value text that the top-level walk validated.
JsonType RawType(std::string_view raw) {
  switch (raw.empty() ? 'n' : raw.front()) {
    case '{':
      return JsonType::kObject;
    case '[':
      return JsonType::kArray;
    case '"':
      return JsonType::kString;
    case 't':
    case 'f':
      return JsonType::kBool;
    case 'n':
      return JsonType::kNull;
    default:
      return JsonType::kNumber;
  }
}

// The members of the object `raw` (validated), names checked for repeats. Keys that had
// escapes are kept in `owned_keys`.
class RawObject {
 public:
  absl::Status Read(std::string_view raw, std::string_view path) {
    JsonReader r(raw, kMaxJsonDepth);
    if (!r.BeginObject()) return r.status();
    MemberNameSet names;
    bool first = true;
    std::string scratch;
    for (;;) {
      std::string_view key;
      bool has = false;
      if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
      if (!has) break;
      if (key.data() == scratch.data()) {
        key = *owned_keys_.emplace_back(std::make_unique<std::string>(key));
      }
      if (!names.Insert(key)) {
        return IngressError(core_internal::ChildPath(path, key), "duplicate key");
      }
      JsonType type;
      if (!r.Peek(&type)) return r.status();
      const size_t start = r.offset();
      if (!r.SkipValue()) return r.status();
      members_.push_back({key, raw.substr(start, r.offset() - start)});
    }
    return absl::OkStatus();
  }
  const RawMember* Find(std::string_view key) const {
    for (const RawMember& m : members_) {
      if (m.key == key) return &m;
    }
    return nullptr;
  }
  // The value text of `key`, or an empty view when absent.
  std::string_view Get(std::string_view key) const {
    const RawMember* m = Find(key);
    return m != nullptr ? m->raw : std::string_view();
  }
  const absl::InlinedVector<RawMember, 8>& members() const { return members_; }

 private:
  absl::InlinedVector<RawMember, 8> members_;
  std::vector<std::unique_ptr<std::string>> owned_keys_;
};

// The elements' texts of the array `raw` (validated).
absl::Status RawElements(std::string_view raw, absl::InlinedVector<std::string_view, 8>* out) {
  JsonReader r(raw, kMaxJsonDepth);
  if (!r.BeginArray()) return r.status();
  bool first = true;
  for (;;) {
    bool has = false;
    if (!r.NextElement(&first, &has)) return r.status();
    if (!has) break;
    JsonType type;
    if (!r.Peek(&type)) return r.status();
    const size_t start = r.offset();
    if (!r.SkipValue()) return r.status();
    out->push_back(raw.substr(start, r.offset() - start));
  }
  return absl::OkStatus();
}

// The decoded string `raw` (a string value text), or an error at `path`.
absl::StatusOr<std::string> RawString(std::string_view raw, std::string_view path) {
  if (RawType(raw) != JsonType::kString) return IngressError(path, "must be a string");
  JsonReader r(raw, kMaxJsonDepth);
  std::string out;
  if (!r.ReadString(&out)) return r.status();
  return out;
}

// Compact text of the value `raw` (insignificant whitespace removed, tokens as sent).
std::string RawCompact(std::string_view raw) {
  std::string out;
  JsonReader r(raw, kMaxJsonDepth);
  if (!r.CaptureValue(&out)) return std::string(raw);  // validated: not reached
  return out;
}

// Members of a block other than the modeled ones (cache_control, citations, title, ...)
// travel as part extras, so they reach the provider when it is Anthropic again.
void KeepExtras(const RawObject& block, std::initializer_list<std::string_view> modeled,
                ExtraFields* extra) {
  for (const RawMember& m : block.members()) {
    bool skip = false;
    for (std::string_view name : modeled) skip = skip || m.key == name;
    if (!skip) extra->emplace_back(std::string(m.key), RawCompact(m.raw));
  }
}

// "parent.key".
std::string Dotted(std::string_view parent, std::string_view key) {
  std::string path;
  path.reserve(parent.size() + 1 + key.size());
  path.append(parent).push_back('.');
  path.append(key);
  return path;
}

// The string member `key` of `obj`: "Field required" when absent.
absl::StatusOr<std::string> RequiredString(const RawObject& obj, std::string_view key,
                                           std::string_view parent) {
  const std::string path = Dotted(parent, key);
  const RawMember* m = obj.Find(key);
  if (m == nullptr) return IngressError(path, "Field required");
  return RawString(m->raw, path);
}

// The member `key` of `obj` when it is a string, else "" (as absent).
absl::StatusOr<std::string> StringOrEmpty(const RawObject& obj, std::string_view key) {
  const std::string_view raw = obj.Get(key);
  if (raw.empty() || RawType(raw) != JsonType::kString) return std::string();
  return RawString(raw, key);
}

absl::StatusOr<std::string> BlockType(const RawObject& block) {
  return StringOrEmpty(block, "type");
}

// The "source" object of an image or document block at `p`, with its "type".
absl::Status ReadSource(const RawObject& block, const std::string& p, RawObject* src,
                        std::string* type) {
  const std::string_view raw = block.Get("source");
  if (raw.empty() || RawType(raw) != JsonType::kObject) {
    return IngressError(p + ".source", "Field required (an object)");
  }
  MODEENVOY_RETURN_IF_ERROR(src->Read(raw, p + ".source"));
  const std::string_view t = src->Get("type");
  if (t.empty() || RawType(t) != JsonType::kString) {
    return IngressError(p + ".source.type", "Field required (a string)");
  }
  MODEENVOY_ASSIGN_OR_RETURN(*type, RawString(t, p + ".source.type"));
  return absl::OkStatus();
}

// "data:<media_type>;base64,<data>" from the base64 source `src` at `sp`.
absl::StatusOr<std::string> Base64DataUrl(const RawObject& src, const std::string& sp) {
  MODEENVOY_ASSIGN_OR_RETURN(std::string media, RequiredString(src, "media_type", sp));
  MODEENVOY_ASSIGN_OR_RETURN(std::string data, RequiredString(src, "data", sp));
  return absl::StrCat("data:", media, ";base64,", data);
}

// One block of user, system or tool_result content at `p`. `allow_media`: images and
// documents (not in system).
absl::StatusOr<ContentPart> ReadPart(std::string_view raw, const std::string& p,
                                     bool allow_media) {
  if (RawType(raw) != JsonType::kObject) return IngressError(p, "must be an object");
  RawObject block;
  MODEENVOY_RETURN_IF_ERROR(block.Read(raw, p));
  const std::string_view type_raw = block.Get("type");
  if (type_raw.empty() || RawType(type_raw) != JsonType::kString) {
    return IngressError(p + ".type", "Field required (a string)");
  }
  MODEENVOY_ASSIGN_OR_RETURN(const std::string type, RawString(type_raw, p + ".type"));
  ContentPart part;
  if (type == "text") {
    part.type = ContentPartType::kText;
    MODEENVOY_ASSIGN_OR_RETURN(part.text, RequiredString(block, "text", p));
    KeepExtras(block, {"type", "text"}, &part.extra);
    return part;
  }
  if (type == "image" && allow_media) {
    RawObject src;
    std::string source_type;
    MODEENVOY_RETURN_IF_ERROR(ReadSource(block, p, &src, &source_type));
    const std::string sp = p + ".source";
    ImageUrl image;
    if (source_type == "url") {
      MODEENVOY_ASSIGN_OR_RETURN(image.url, RequiredString(src, "url", sp));
    } else if (source_type == "base64") {
      MODEENVOY_ASSIGN_OR_RETURN(image.url, Base64DataUrl(src, sp));
    } else {
      return IngressError(sp + ".type", "\"" + source_type + "\" is not mapped (url, base64)");
    }
    part.type = ContentPartType::kImageUrl;
    part.image_url = std::move(image);
    KeepExtras(block, {"type", "source"}, &part.extra);
    return part;
  }
  if (type == "document" && allow_media) {
    RawObject src;
    std::string source_type;
    MODEENVOY_RETURN_IF_ERROR(ReadSource(block, p, &src, &source_type));
    const std::string sp = p + ".source";
    FileInput file;
    if (source_type == "base64") {
      MODEENVOY_ASSIGN_OR_RETURN(file.file_data, Base64DataUrl(src, sp));
    } else if (source_type == "file") {
      MODEENVOY_ASSIGN_OR_RETURN(std::string id, RequiredString(src, "file_id", sp));
      file.file_id = std::move(id);
    } else {
      // text, url and content sources have no unified file form.
      return IngressError(sp + ".type", "\"" + source_type + "\" is not mapped (base64, file)");
    }
    const std::string_view title = block.Get("title");
    if (!title.empty() && RawType(title) != JsonType::kNull) {
      MODEENVOY_ASSIGN_OR_RETURN(std::string t, RawString(title, p + ".title"));
      file.filename = std::move(t);
    }
    part.type = ContentPartType::kFile;
    part.file = std::move(file);
    KeepExtras(block, {"type", "source", "title"}, &part.extra);
    return part;
  }
  return IngressError(p + ".type", "block type \"" + type + "\" is not mapped here");
}

// The blocks of the array `raw` at `path`, appended to `parts`.
absl::Status ReadParts(std::string_view raw, const std::string& path,
                       std::vector<ContentPart>* parts, bool allow_media) {
  absl::InlinedVector<std::string_view, 8> blocks;
  MODEENVOY_RETURN_IF_ERROR(RawElements(raw, &blocks));
  parts->reserve(parts->size() + blocks.size());
  for (size_t i = 0; i < blocks.size(); ++i) {
    MODEENVOY_ASSIGN_OR_RETURN(ContentPart part, ReadPart(blocks[i], Idx(path, i), allow_media));
    parts->push_back(std::move(part));
  }
  return absl::OkStatus();
}

// A user turn's content array: its tool_result blocks become tool messages, the other
// blocks one user message after them.
absl::Status ReadUserBlocks(std::string_view raw, const std::string& cpath,
                            std::vector<Message>* out) {
  absl::InlinedVector<std::string_view, 8> blocks;
  MODEENVOY_RETURN_IF_ERROR(RawElements(raw, &blocks));
  std::vector<ContentPart> parts;
  for (size_t k = 0; k < blocks.size(); ++k) {
    const std::string p = Idx(cpath, k);
    if (RawType(blocks[k]) != JsonType::kObject) return IngressError(p, "must be an object");
    RawObject block;
    MODEENVOY_RETURN_IF_ERROR(block.Read(blocks[k], p));
    MODEENVOY_ASSIGN_OR_RETURN(const std::string type, BlockType(block));
    if (type != "tool_result") {
      MODEENVOY_ASSIGN_OR_RETURN(ContentPart part, ReadPart(blocks[k], p, true));
      parts.push_back(std::move(part));
      continue;
    }
    Message tool = MakeMessage(Role::kTool);
    const std::string_view id = block.Get("tool_use_id");
    MODEENVOY_ASSIGN_OR_RETURN(tool.tool_call_id,
                               RawString(id.empty() ? "null" : id, p + ".tool_use_id"));
    if (tool.tool_call_id->empty()) return IngressError(p + ".tool_use_id", "must not be empty");
    const std::string_view tc = block.Get("content");
    if (tc.empty()) {
      tool.content = std::string();
    } else if (RawType(tc) == JsonType::kString) {
      MODEENVOY_ASSIGN_OR_RETURN(tool.content, RawString(tc, p + ".content"));
    } else if (RawType(tc) == JsonType::kArray) {
      std::vector<ContentPart> tparts;
      MODEENVOY_RETURN_IF_ERROR(ReadParts(tc, p + ".content", &tparts, true));
      tool.content = std::move(tparts);
    } else {
      return IngressError(p + ".content", "must be a string or an array");
    }
    if (const RawMember* e = block.Find("is_error")) {
      tool.extra.emplace_back("is_error", RawCompact(e->raw));
    }
    if (const RawMember* c = block.Find("cache_control")) {
      tool.extra.emplace_back("cache_control", RawCompact(c->raw));
    }
    out->push_back(std::move(tool));
  }
  if (!parts.empty()) {
    Message user = MakeMessage(Role::kUser);
    user.content = std::move(parts);
    out->push_back(std::move(user));
  }
  return absl::OkStatus();
}

// An assistant turn's content array: text joined, tool_use blocks as tool calls, thinking
// blocks kept verbatim (the "thinking_blocks" extra).
absl::StatusOr<Message> ReadAssistantBlocks(std::string_view raw, const std::string& cpath) {
  absl::InlinedVector<std::string_view, 8> blocks;
  MODEENVOY_RETURN_IF_ERROR(RawElements(raw, &blocks));
  Message a = MakeMessage(Role::kAssistant);
  std::string text;
  bool has_text = false;
  std::string thinking;  // a JSON array's members, compact
  for (size_t k = 0; k < blocks.size(); ++k) {
    const std::string p = Idx(cpath, k);
    if (RawType(blocks[k]) != JsonType::kObject) return IngressError(p, "must be an object");
    RawObject block;
    MODEENVOY_RETURN_IF_ERROR(block.Read(blocks[k], p));
    MODEENVOY_ASSIGN_OR_RETURN(const std::string type, BlockType(block));
    auto member_string = [&](std::string_view key) -> absl::StatusOr<std::string> {
      const std::string_view v = block.Get(key);
      return RawString(v.empty() ? "null" : v, Dotted(p, key));
    };
    if (type == "text") {
      MODEENVOY_ASSIGN_OR_RETURN(std::string t, member_string("text"));
      text += t;
      has_text = true;
    } else if (type == "tool_use") {
      ToolCall call;
      MODEENVOY_ASSIGN_OR_RETURN(call.id, member_string("id"));
      if (call.id.empty()) return IngressError(Dotted(p, "id"), "must not be empty");
      FunctionCall f;
      MODEENVOY_ASSIGN_OR_RETURN(f.name, member_string("name"));
      if (f.name.empty()) return IngressError(Dotted(p, "name"), "must not be empty");
      const std::string_view input = block.Get("input");
      f.arguments = input.empty() ? std::string("{}") : RawCompact(input);
      call.function = std::move(f);
      a.tool_calls.push_back(std::move(call));
    } else if (type == "thinking" || type == "redacted_thinking") {
      thinking.push_back(thinking.empty() ? '[' : ',');
      thinking += RawCompact(blocks[k]);
    } else {
      return IngressError(p + ".type", "block type \"" + type + "\" not mapped here");
    }
  }
  if (has_text || a.tool_calls.empty()) a.content = std::move(text);
  if (!thinking.empty()) {
    thinking.push_back(']');
    a.extra.emplace_back("thinking_blocks", std::move(thinking));
  }
  return a;
}

// output_config.format of type json_schema, as the unified response_format. False (and
// nothing set) for any other output_config, which then travels as an extra.
bool ReadJsonSchemaFormat(std::string_view raw, ChatRequest* chat) {
  RawObject config;
  if (!config.Read(raw, "output_config").ok()) return false;
  const std::string_view format_raw = config.Get("format");
  if (format_raw.empty() || RawType(format_raw) != JsonType::kObject) return false;
  RawObject format;
  if (!format.Read(format_raw, "output_config.format").ok()) return false;
  absl::StatusOr<std::string> type = StringOrEmpty(format, "type");
  if (!type.ok() || *type != "json_schema") return false;
  const std::string_view schema = format.Get("schema");
  std::string rf = R"({"json_schema":{"name":"output","schema":)";
  rf += schema.empty() ? std::string("{}") : RawCompact(schema);
  rf += R"(},"type":"json_schema"})";
  chat->response_format = std::move(rf);
  return true;
}

// A custom or server tool definition at `p`.
absl::StatusOr<Tool> ReadTool(std::string_view raw, const std::string& p) {
  if (RawType(raw) != JsonType::kObject) return IngressError(p, "must be an object");
  RawObject t;
  MODEENVOY_RETURN_IF_ERROR(t.Read(raw, p));
  Tool tool;
  MODEENVOY_ASSIGN_OR_RETURN(std::string type, StringOrEmpty(t, "type"));
  if (t.Find("type") != nullptr && type != "custom") {
    // A server tool: kept as is.
    tool.type = std::move(type);
    for (const RawMember& m : t.members()) {
      if (m.key == "type") continue;
      // "function" is the unified tool's own member (it would be read as a function tool).
      if (m.key == "function") {
        return IngressError(p + ".function", "not a member of an Anthropic server tool");
      }
      tool.extra.emplace_back(std::string(m.key), RawCompact(m.raw));
    }
    return tool;
  }
  FunctionDefinition f;
  const std::string_view name = t.Get("name");
  MODEENVOY_ASSIGN_OR_RETURN(f.name, RawString(name.empty() ? "null" : name, p + ".name"));
  if (f.name.empty()) return IngressError(p + ".name", "must not be empty");
  if (const RawMember* d = t.Find("description")) {
    MODEENVOY_ASSIGN_OR_RETURN(std::string description, RawString(d->raw, p + ".description"));
    f.description = std::move(description);
  }
  const RawMember* schema = t.Find("input_schema");
  if (schema == nullptr) return IngressError(p + ".input_schema", "Field required");
  f.parameters = RawCompact(schema->raw);
  if (const RawMember* c = t.Find("cache_control")) {
    tool.extra.emplace_back("cache_control", RawCompact(c->raw));
  }
  tool.function = std::move(f);
  return tool;
}

// The checked reader (DecodeMessagesRequestChecked in anthropic_request.h).
absl::StatusOr<ChatRequest> CheckedDecodeRequest(std::string_view request_body) {
  // The whole body, checked once (syntax, UTF-8, nesting), then read member by member.
  RawObject body;
  {
    JsonReader r(request_body, kMaxJsonDepth);
    JsonType top = JsonType::kNull;
    if (!r.Peek(&top)) return r.status();
    const size_t start = r.offset();
    if (!r.SkipValue() || !r.ExpectEnd()) return r.status();
    if (top != JsonType::kObject) return IngressError("body", "must be an object");
    MODEENVOY_RETURN_IF_ERROR(body.Read(request_body.substr(start), ""));
  }
  ChatRequest chat;
  const RawMember* model = body.Find("model");
  if (model == nullptr) return IngressError("model", "Field required");
  MODEENVOY_ASSIGN_OR_RETURN(chat.model, RawString(model->raw, "model"));
  if (chat.model.empty()) return IngressError("model", "must be a non-empty string");
  const RawMember* max_tokens = body.Find("max_tokens");
  if (max_tokens == nullptr) return IngressError("max_tokens", "Field required");
  int64_t max = 0;
  // An integer literal (no fraction or exponent), as Anthropic's validation takes.
  if (RawType(max_tokens->raw) != JsonType::kNumber ||
      max_tokens->raw.find_first_of(".eE") != std::string_view::npos ||
      !NumberToInt64(max_tokens->raw, &max) || max < 1) {
    return IngressError("max_tokens", "must be an integer >= 1");
  }
  chat.max_tokens = max;
  const RawMember* messages = body.Find("messages");
  if (messages == nullptr || RawType(messages->raw) != JsonType::kArray) {
    return IngressError("messages", "Field required (an array)");
  }

  if (const RawMember* system = body.Find("system")) {
    Message m = MakeMessage(Role::kSystem);
    if (RawType(system->raw) == JsonType::kString) {
      MODEENVOY_ASSIGN_OR_RETURN(m.content, RawString(system->raw, "system"));
    } else if (RawType(system->raw) == JsonType::kArray) {
      std::vector<ContentPart> parts;
      MODEENVOY_RETURN_IF_ERROR(ReadParts(system->raw, "system", &parts, false));
      m.content = std::move(parts);
    } else {
      return IngressError("system", "must be a string or an array of text blocks");
    }
    chat.messages.push_back(std::move(m));
  }
  absl::InlinedVector<std::string_view, 8> turns;
  MODEENVOY_RETURN_IF_ERROR(RawElements(messages->raw, &turns));
  if (turns.empty()) return IngressError("messages", "must contain at least one message");
  chat.messages.reserve(chat.messages.size() + turns.size());
  for (size_t i = 0; i < turns.size(); ++i) {
    const std::string path = Idx("messages", i);
    if (RawType(turns[i]) != JsonType::kObject) return IngressError(path, "must be an object");
    RawObject m;
    MODEENVOY_RETURN_IF_ERROR(m.Read(turns[i], path));
    MODEENVOY_ASSIGN_OR_RETURN(const std::string role, StringOrEmpty(m, "role"));
    const bool user = role == "user";
    if (!user && role != "assistant") {
      return IngressError(path + ".role", "must be user or assistant");
    }
    const RawMember* content = m.Find("content");
    if (content == nullptr) return IngressError(path + ".content", "Field required");
    const std::string cpath = path + ".content";
    if (RawType(content->raw) == JsonType::kString) {
      MODEENVOY_ASSIGN_OR_RETURN(std::string text, RawString(content->raw, cpath));
      chat.messages.push_back(
          MakeMessage(user ? Role::kUser : Role::kAssistant, std::move(text)));
      continue;
    }
    if (RawType(content->raw) != JsonType::kArray) {
      return IngressError(cpath, "must be a string or an array");
    }
    if (user) {
      MODEENVOY_RETURN_IF_ERROR(ReadUserBlocks(content->raw, cpath, &chat.messages));
      continue;
    }
    MODEENVOY_ASSIGN_OR_RETURN(Message a, ReadAssistantBlocks(content->raw, cpath));
    chat.messages.push_back(std::move(a));
  }

  for (const RawMember& member : body.members()) {
    const std::string_view k = member.key;
    const std::string_view v = member.raw;
    const JsonType type = RawType(v);
    if (k == "model" || k == "max_tokens" || k == "messages" || k == "system") continue;
    if (k == "stream") {
      if (type != JsonType::kBool) return IngressError("stream", "must be a boolean");
      chat.stream = v == "true";
    } else if (k == "temperature" || k == "top_p") {
      double number = 0;
      if (type != JsonType::kNumber || !NumberToDouble(v, &number)) {
        return IngressError(k, "must be a number");
      }
      (k == "temperature" ? chat.temperature : chat.top_p) = number;
      if (number < 0 || number > 1) {
        return IngressError(k, "must be between 0 and 1");
      }
    } else if (k == "stop_sequences") {
      if (type != JsonType::kArray) return IngressError(k, "must be an array");
      absl::InlinedVector<std::string_view, 8> items;
      MODEENVOY_RETURN_IF_ERROR(RawElements(v, &items));
      std::vector<std::string> stops;
      stops.reserve(items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        MODEENVOY_ASSIGN_OR_RETURN(std::string s, RawString(items[i], Idx(k, i)));
        stops.push_back(std::move(s));
      }
      chat.stop = std::move(stops);
    } else if (k == "metadata") {
      if (type != JsonType::kObject) return IngressError(k, "must be an object");
      RawObject metadata;
      MODEENVOY_RETURN_IF_ERROR(metadata.Read(v, "metadata"));
      for (const RawMember& m : metadata.members()) {
        if (m.key != "user_id") {
          return IngressError(Dotted("metadata", m.key), "Extra inputs are not permitted");
        }
        if (RawType(m.raw) == JsonType::kNull) continue;
        MODEENVOY_ASSIGN_OR_RETURN(std::string user, RawString(m.raw, "metadata.user_id"));
        chat.user = std::move(user);
      }
    } else if (k == "tools") {
      if (type != JsonType::kArray) return IngressError(k, "must be an array");
      absl::InlinedVector<std::string_view, 8> items;
      MODEENVOY_RETURN_IF_ERROR(RawElements(v, &items));
      chat.tools.reserve(items.size());
      for (size_t i = 0; i < items.size(); ++i) {
        MODEENVOY_ASSIGN_OR_RETURN(Tool tool, ReadTool(items[i], Idx(k, i)));
        chat.tools.push_back(std::move(tool));
      }
    } else if (k == "tool_choice") {
      RawObject tc;
      std::string choice_type;
      if (type == JsonType::kObject) {
        MODEENVOY_RETURN_IF_ERROR(tc.Read(v, "tool_choice"));
        MODEENVOY_ASSIGN_OR_RETURN(choice_type, BlockType(tc));
      }
      ToolChoice choice;
      if (choice_type == "auto") {
        choice.mode = "auto";
      } else if (choice_type == "any") {
        choice.mode = "required";
      } else if (choice_type == "none") {
        choice.mode = "none";
      } else if (choice_type == "tool") {
        const std::string_view name = tc.Get("name");
        std::string tool_name;
        if (!name.empty()) {
          MODEENVOY_ASSIGN_OR_RETURN(tool_name, RawString(name, "tool_choice.name"));
        }
        if (tool_name.empty()) {
          return IngressError("tool_choice.name", "required for type \"tool\" (a tool's name)");
        }
        std::string object = R"({"function":{"name":)";
        AppendJsonString(&object, tool_name);
        object += R"(},"type":"function"})";
        choice.object = std::move(object);
      } else {
        return IngressError("tool_choice.type", "must be auto, any, tool or none");
      }
      const std::string_view disable = tc.Get("disable_parallel_tool_use");
      if (!disable.empty() && RawType(disable) != JsonType::kBool) {
        return IngressError("tool_choice.disable_parallel_tool_use", "must be a boolean");
      }
      if (disable == "true") chat.parallel_tool_calls = false;
      chat.tool_choice = std::move(choice);
    } else if (k == "output_config" && type == JsonType::kObject &&
               ReadJsonSchemaFormat(v, &chat)) {
      // chat.response_format set
    } else {
      // Kept as extras: top_k, thinking, ... A name the unified request models is refused
      // (it would be read as that field, e.g. OpenAI's n or verbosity), except service_tier,
      // which both APIs have (a string).
      if (k == "service_tier") {
        if (type != JsonType::kString) return IngressError(k, "must be a string");
      } else if (IsChatRequestMember(k)) {
        return IngressError(k, "not a Messages API member (an OpenAI Chat Completions field)");
      }
      chat.extra.emplace_back(std::string(k), RawCompact(v));  // top_k, thinking, ...
    }
  }
  // A tool choice needs tools, as in the unified request (ValidateChatRequest), which
  // every provider's encoder expects; checked after the members.
  if (chat.tools.empty()) {
    if (chat.tool_choice.has_value() && chat.tool_choice->mode != "none") {
      return IngressError("tool_choice", "only allowed when tools are specified");
    }
    if (chat.parallel_tool_calls.has_value()) {
      return IngressError("tool_choice.disable_parallel_tool_use",
                          "only allowed when tools are specified");
    }
  }
  return chat;
}

absl::StatusOr<ChatRequest> AnthropicDialect::DecodeRequest(const WireRequest& request) const {
  // Clients' bodies are read in one pass; a body that reader gives up on (a bad one above
  // all) is read again by the checked reader, which reports the first error.
  ChatRequest chat;
  if (DecodeMessagesRequestOnePass(request.body, &chat)) return chat;
  return CheckedDecodeRequest(request.body);
}

absl::StatusOr<std::string> AnthropicDialect::EncodeResponse(
    const ChatCompletion& completion) const {
  if (completion.choices.size() != 1) {
    return InvalidFieldError("choices", "anthropic answers with exactly one message");
  }
  const ChatChoice& choice = completion.choices.front();
  const Message& m = choice.message;
  std::string out = R"({"id":)";
  AppendJsonString(&out, completion.id);
  out.append(R"(,"type":"message","role":"assistant","model":)");
  AppendJsonString(&out, completion.model);
  out.append(R"(,"content":[)");
  if (const std::string* verbatim = FindExtra(m.extra, "anthropic_content")) {
    out.append(std::string_view(*verbatim).substr(1, verbatim->size() - 2));
  } else {
    BlockList list(&out);
    const std::string* thinking = FindExtra(m.extra, "thinking_blocks");
    if (thinking != nullptr) {
      if (*thinking != "[]" && thinking->size() > 2) {
        list.Next()->append(std::string_view(*thinking).substr(1, thinking->size() - 2));
      }
    } else if (std::optional<std::string> reasoning = UnifiedReasoningText(m.extra);
               reasoning.has_value() && !reasoning->empty()) {
      // An OpenAI-family provider's reasoning text (DeepSeek, xAI, Mistral: reasoning_content;
      // Groq: reasoning) as a thinking block, as the stream renders it (no signature).
      std::string* b = list.Next();
      b->append(R"({"type":"thinking","thinking":)");
      AppendJsonString(b, *reasoning);
      b->append(R"(,"signature":""})");
    }
    std::string text;
    if (m.content) {
      if (const auto* s = std::get_if<std::string>(&*m.content)) {
        text = *s;
      } else {
        for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
          text += p.type == ContentPartType::kRefusal ? p.refusal : p.text;
        }
      }
    }
    if (m.refusal) text += *m.refusal;
    if (!text.empty()) {
      MODEENVOY_RETURN_IF_ERROR(AppendTextBlock(list.Next(), text, {}, FieldPath("")));
    }
    for (const ToolCall& tc : m.tool_calls) {
      if (!tc.function) return InvalidFieldError("choices[0].message.tool_calls", "not a function");
      std::string* b = list.Next();
      b->append(R"({"type":"tool_use","id":)");
      AppendJsonString(b, tc.id);
      b->append(R"(,"name":)");
      AppendJsonString(b, tc.function->name);
      b->append(R"(,"input":)");
      JsonType t;
      if (tc.function->arguments.empty()) {
        b->append("{}");
      } else if (IsValidJson(tc.function->arguments, &t) && t == JsonType::kObject) {
        JsonReader r(tc.function->arguments, kMaxJsonDepth);
        r.CaptureValue(b);
      } else {
        return InvalidFieldError("choices[0].message.tool_calls.function.arguments",
                                 "not a JSON object");
      }
      b->push_back('}');
    }
  }
  out.append(R"(],"stop_reason":)");
  const std::string* raw_stop = FindExtra(choice.extra, "stop_reason");
  const std::string* stop_sequence = MatchedStopSequence(choice.extra);
  if (raw_stop != nullptr) {
    out.append(*raw_stop);
  } else if (stop_sequence != nullptr && choice.finish_reason.value_or("stop") == "stop") {
    out.append("\"stop_sequence\"");
  } else {
    AppendJsonString(&out, StopReasonFor(choice.finish_reason.value_or("stop")));
  }
  out.append(R"(,"stop_sequence":)");
  out.append(stop_sequence != nullptr ? std::string_view(*stop_sequence) : "null");
  out.append(R"(,"usage":{)");
  if (completion.usage) {
    const Usage& u = *completion.usage;
    int64_t cached = u.prompt_tokens_details ? u.prompt_tokens_details->cached_tokens.value_or(0) : 0;
    int64_t creation = 0;
    if (const std::string* c = FindExtra(u.extra, "cache_creation_input_tokens")) {
      NumberToInt64(*c, &creation);
    }
    out.append("\"input_tokens\":");
    AppendJsonInt(&out, u.prompt_tokens - cached - creation);
    out.append(",\"cache_creation_input_tokens\":");
    AppendJsonInt(&out, creation);
    out.append(",\"cache_read_input_tokens\":");
    AppendJsonInt(&out, cached);
    out.append(",\"output_tokens\":");
    AppendJsonInt(&out, u.completion_tokens);
    AppendThinkingDetails(&out, u);
  } else {
    out.append(R"("input_tokens":0,"output_tokens":0)");
  }
  out.append("}}");
  return out;
}

}  // namespace

absl::StatusOr<ChatRequest> DecodeMessagesRequestChecked(std::string_view body) {
  return CheckedDecodeRequest(body);
}

absl::StatusOr<std::unique_ptr<Dialect>> NewAnthropicDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader reader,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(reader.RejectUnknown({"version", "beta", "default_max_tokens"}));
  Options options;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> version,
                             reader.OptionalString("version"));
  if (version) options.version = std::move(*version);
  MODEENVOY_ASSIGN_OR_RETURN(const core_internal::Json* beta, reader.OptionalArray("beta"));
  if (beta != nullptr) {
    for (size_t i = 0; i < beta->size(); ++i) {
      const core_internal::Json& b = (*beta)[i];
      if (!b.is_string() || b.get<std::string>().empty()) {
        return InvalidFieldError(core_internal::IndexPath("beta", i), "must be a non-empty string");
      }
      options.beta.push_back(b.get<std::string>());
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> max_tokens,
                             reader.OptionalInt("default_max_tokens", 1, 1 << 30));
  if (max_tokens) options.default_max_tokens = *max_tokens;
  return std::make_unique<AnthropicDialect>(std::move(options));
}

}  // namespace modeenvoy::protocol_internal
