// lib/protocol/dialects/cohere.cc: the "cohere" dialect: Cohere's v2 chat API
// (POST /v2/chat at https://api.cohere.com, bearer key), answers as one JSON body or SSE
// events (message-start, content-*, tool-plan-delta, tool-call-*, citation-*,
// message-end). The v1 API (chat_history/message, NDJSON streams) is not spoken: a v1 body
// is refused by name. The mapping is in docs/providers.md ("## cohere").
//
// Decisions (documented there):
//  - usage: prompt_tokens/completion_tokens are usage.tokens (what the model processed,
//    Cohere's preamble included, the counts cached_tokens is part of); usage.billed_units
//    is kept in usage as "billed_units".
//  - tool_plan (the model's text before its tool calls) is kept as the message's
//    "tool_plan" (streamed: a delta member "tool_plan") and sent back on assistant messages
//    that carry it; thinking content is reasoning_content; citations are kept whole
//    (message "citations"); streamed citation events are not forwarded.
//  - A tool call streamed without argument deltas gets arguments "{}" at its end; whole
//    answers' "null" or "" arguments become "{}" too (OpenAI clients parse them as JSON).
//  - Cohere's answers name no model and no time: "model" is "" and "created" 0.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/embeddings.h"
#include "lib/protocol/dialects/thinking.h"
#include "lib/protocol/dialects/unified_out.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

using core_internal::Json;

constexpr std::string_view kName = "cohere";

absl::Status NotSupported(std::string_view path) {
  return InvalidFieldError(path, "not supported by cohere");
}

// ---- reading Cohere's answers ----

struct CohereUsage {
  bool present = false;
  std::optional<int64_t> input, output;            // usage.tokens
  std::optional<int64_t> billed_in, billed_out;    // usage.billed_units
  std::string billed_raw;
  std::optional<int64_t> cached;

  std::string Json() const {
    std::string extra;
    if (!billed_raw.empty()) extra = ",\"billed_units\":" + billed_raw;
    std::string out;
    AppendUsage(input.value_or(billed_in.value_or(0)), output.value_or(billed_out.value_or(0)),
                cached, extra, &out);
    return out;
  }
};

struct CohereCall {
  std::string id, name, arguments;
  bool has_arguments = false;
};

// The members of a whole response or of one stream event this dialect reads.
struct CohereEvent {
  std::string type;  // stream events
  std::string id;
  std::optional<int64_t> index;
  // message
  std::string text, thinking;       // content text / thinking (concatenated when whole)
  bool has_text = false, has_thinking = false;
  std::string tool_plan;
  bool has_tool_plan = false;
  std::vector<CohereCall> calls;
  std::string citations;  // raw JSON array
  std::string finish_reason;
  std::string error;
  CohereUsage usage;
  bool v1 = false;  // a v1 body ("text"/"generation_id" at the top)
  bool has_message = false;

  // Back to the freshly constructed state, the strings keeping their buffers (a stream
  // decoder reads every event into one CohereEvent).
  void Clear() {
    type.clear();
    id.clear();
    index.reset();
    text.clear();
    thinking.clear();
    has_text = has_thinking = false;
    tool_plan.clear();
    has_tool_plan = false;
    calls.clear();
    citations.clear();
    finish_reason.clear();
    error.clear();
    usage = CohereUsage();
    v1 = false;
    has_message = false;
  }
};

absl::Status ReadUsage(JsonReader& r, std::string_view path, CohereUsage* u) {
  absl::Status status;
  bool is_null = false;
  if (!PullExpect(r, path, JsonType::kObject, &is_null, &status)) return status;
  if (is_null) return absl::OkStatus();
  u->present = true;
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "tokens" || key == "billed_units") {
      const bool billed = key == "billed_units";
      const std::string sub = std::string(path) + "." + std::string(key);
      std::string raw;
      if (!r.CaptureValue(&raw)) return r.status();
      if (billed) u->billed_raw = raw;
      JsonReader inner(raw, kMaxJsonDepth);
      if (!inner.BeginObject()) return WrongType(sub, "object", JsonType::kNull);
      bool f2 = true, h2 = false;
      while (true) {
        if (!inner.NextMember(&f2, &key, &scratch, &h2)) return inner.status();
        if (!h2) break;
        std::optional<int64_t>* target = nullptr;
        if (key == "input_tokens") target = billed ? &u->billed_in : &u->input;
        if (key == "output_tokens") target = billed ? &u->billed_out : &u->output;
        if (target == nullptr) {
          if (!inner.SkipValue()) return inner.status();
          continue;
        }
        const std::string field = sub + "." + std::string(key);
        // Billed units may be fractional in theory; counts are integers.
        JsonType type;
        if (!inner.Peek(&type)) return inner.status();
        std::string_view text;
        if (type == JsonType::kNumber && inner.ReadNumber(&text)) {
          double d = 0;
          if (!NumberToDouble(text, &d)) return InvalidFieldError(field, "bad number");
          *target = static_cast<int64_t>(d);
        } else if (!PullInt(inner, field, target, &status)) {
          return status;
        }
      }
    } else if (key == "cached_tokens") {
      if (!PullInt(r, std::string(path) + ".cached_tokens", &u->cached, &status)) return status;
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  return absl::OkStatus();
}

// PullString and PullExpect for the field `head` + `tail`, the path spelled out only when
// an error names it (stream events are read on every chunk; their paths are not).
bool PullStringAt(JsonReader& r, std::string_view head, std::string_view tail, std::string* out,
                  absl::Status* status) {
  JsonType type;
  if (r.Peek(&type) && type == JsonType::kString) {
    if (r.ReadString(out)) return true;
    *status = r.status();
    return false;
  }
  return PullString(r, std::string(head).append(tail), out, status);
}

bool PullExpectAt(JsonReader& r, std::string_view head, std::string_view tail, JsonType want,
                  bool* is_null, absl::Status* status) {
  JsonType type;
  if (r.Peek(&type) && type == want) {
    *is_null = false;
    return true;
  }
  return PullExpect(r, std::string(head).append(tail), want, is_null, status);
}

absl::Status ReadCall(JsonReader& r, std::string_view path, CohereCall* call) {
  absl::Status status;
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "id") {
      if (!PullStringAt(r, path, ".id", &call->id, &status)) return status;
    } else if (key == "function") {
      bool is_null = false;
      if (!PullExpectAt(r, path, ".function", JsonType::kObject, &is_null, &status)) {
        return status;
      }
      if (is_null) continue;
      if (!r.BeginObject()) return r.status();
      bool f2 = true, h2 = false;
      while (true) {
        if (!r.NextMember(&f2, &key, &scratch, &h2)) return r.status();
        if (!h2) break;
        if (key == "name") {
          if (!PullStringAt(r, path, ".function.name", &call->name, &status)) return status;
        } else if (key == "arguments") {
          call->has_arguments = true;
          if (!PullStringAt(r, path, ".function.arguments", &call->arguments, &status)) {
            return status;
          }
        } else if (!r.SkipValue()) {
          return r.status();
        }
      }
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  return absl::OkStatus();
}

// One content part: {"type":"text","text"} or {"type":"thinking","thinking"}, at the path
// `head` + `tail` (spelled out only in an error). The text is appended as read.
absl::Status ReadContentPart(JsonReader& r, std::string_view head, std::string_view tail,
                             CohereEvent* ev) {
  absl::Status status;
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch, value;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "text" || key == "thinking") {
      const bool is_text = key == "text";
      std::string& target = is_text ? ev->text : ev->thinking;
      JsonType type;
      std::string_view got;
      if (r.Peek(&type) && type == JsonType::kString) {
        if (!r.ReadString(&got, &value)) return r.status();
        target.append(got);
      } else {  // null (read as ""), or the error naming the path
        const std::string path =
            std::string(head).append(tail).append(is_text ? ".text" : ".thinking");
        if (!PullString(r, path, &value, &status)) return status;
        target += value;
      }
      (is_text ? ev->has_text : ev->has_thinking) = true;
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  return absl::OkStatus();
}

absl::Status ReadMessage(JsonReader& r, std::string_view path, CohereEvent* ev) {
  absl::Status status;
  bool is_null = false;
  if (!PullExpect(r, path, JsonType::kObject, &is_null, &status)) return status;
  if (is_null) return absl::OkStatus();
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "content" || key == "tool_calls") {
      const bool content = key == "content";
      const std::string_view tail = content ? ".content" : ".tool_calls";
      JsonType type;
      if (!r.Peek(&type)) return r.status();
      if (type == JsonType::kString && content) {  // a whole answer's string content
        std::string text;
        if (!r.ReadString(&text)) return r.status();
        ev->text += text;
        ev->has_text = true;
      } else if (type == JsonType::kObject) {  // stream events carry one part
        if (content) {
          MODEENVOY_RETURN_IF_ERROR(ReadContentPart(r, path, tail, ev));
        } else {
          ev->calls.emplace_back();
          MODEENVOY_RETURN_IF_ERROR(
              ReadCall(r, std::string(path).append(tail), &ev->calls.back()));
        }
      } else if (type == JsonType::kArray) {
        if (!r.BeginArray()) return r.status();
        bool f2 = true, h2 = false;
        size_t n = 0;
        while (true) {
          if (!r.NextElement(&f2, &h2)) return r.status();
          if (!h2) break;
          const std::string item =
              std::string(path).append(tail) + "[" + std::to_string(n++) + "]";
          if (content) {
            MODEENVOY_RETURN_IF_ERROR(ReadContentPart(r, item, "", ev));
          } else {
            ev->calls.emplace_back();
            MODEENVOY_RETURN_IF_ERROR(ReadCall(r, item, &ev->calls.back()));
          }
        }
      } else if (type == JsonType::kNull) {
        if (!r.ReadNull()) return r.status();
      } else {
        return WrongType(std::string(path).append(tail), "array", type);
      }
    } else if (key == "tool_plan") {
      std::string plan;
      if (!PullStringAt(r, path, ".tool_plan", &plan, &status)) return status;
      ev->tool_plan += plan;
      ev->has_tool_plan = !plan.empty() || ev->has_tool_plan;
    } else if (key == "citations") {
      std::string raw;
      if (!r.CaptureValue(&raw)) return r.status();
      if (raw != "[]" && raw != "null") ev->citations = std::move(raw);
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  return absl::OkStatus();
}

// Reads a whole response (`path` "") or one stream event (members under "delta").
absl::Status ReadCohere(std::string_view text, CohereEvent* ev) {
  JsonReader r(text, kMaxJsonDepth);
  absl::Status status;
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "type") {
      if (!PullString(r, "type", &ev->type, &status)) return status;
    } else if (key == "id") {
      if (!PullString(r, "id", &ev->id, &status)) return status;
    } else if (key == "index") {
      if (!PullInt(r, "index", &ev->index, &status)) return status;
    } else if (key == "message") {
      ev->has_message = true;
      MODEENVOY_RETURN_IF_ERROR(ReadMessage(r, "message", ev));
    } else if (key == "finish_reason") {
      if (!PullString(r, "finish_reason", &ev->finish_reason, &status)) return status;
    } else if (key == "usage") {
      MODEENVOY_RETURN_IF_ERROR(ReadUsage(r, "usage", &ev->usage));
    } else if (key == "delta") {
      bool is_null = false;
      if (!PullExpect(r, "delta", JsonType::kObject, &is_null, &status)) return status;
      if (is_null) continue;
      if (!r.BeginObject()) return r.status();
      bool f2 = true, h2 = false;
      while (true) {
        if (!r.NextMember(&f2, &key, &scratch, &h2)) return r.status();
        if (!h2) break;
        if (key == "message") {
          MODEENVOY_RETURN_IF_ERROR(ReadMessage(r, "delta.message", ev));
        } else if (key == "finish_reason") {
          if (!PullString(r, "delta.finish_reason", &ev->finish_reason, &status)) return status;
        } else if (key == "usage") {
          MODEENVOY_RETURN_IF_ERROR(ReadUsage(r, "delta.usage", &ev->usage));
        } else if (key == "error") {
          if (!PullString(r, "delta.error", &ev->error, &status)) return status;
        } else if (!r.SkipValue()) {
          return r.status();
        }
      }
    } else if (key == "text" || key == "generation_id" || key == "event_type") {
      ev->v1 = true;
      if (!r.SkipValue()) return r.status();
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  if (!r.ExpectEnd()) return r.status();
  return absl::OkStatus();
}

// A finish reason, or the error Cohere reported with it.
absl::StatusOr<std::string_view> MapFinish(std::string_view reason, std::string_view error) {
  if (reason == "MAX_TOKENS") return "length";
  if (reason == "TOOL_CALL") return "tool_calls";
  if (reason == "ERROR") {
    return WithHttpStatus(
        absl::UnavailableError(error.empty() ? std::string("cohere finished with ERROR")
                                             : std::string(error)),
        500);
  }
  if (reason == "TIMEOUT") {
    return WithHttpStatus(absl::DeadlineExceededError("cohere finished with TIMEOUT"), 504);
  }
  return "stop";  // COMPLETE, STOP_SEQUENCE
}

std::string_view Arguments(const CohereCall& c) {
  // A call without arguments: "", or "null" as Cohere writes it in whole answers.
  if (c.arguments.empty() || c.arguments == "null") return "{}";
  return c.arguments;
}

absl::Status V1Error() {
  return InvalidFieldError("body",
                           "a Cohere v1 chat answer; the cohere dialect speaks the v2 API "
                           "(POST /v2/chat)");
}

class CohereStreamDecoder final : public StreamTranslator {
 public:
  // Its usage-only chunk comes right before "[DONE]", out of the same call, and no other
  // chunk it writes has a usage member.
  bool KeepsUsagePromise() const override { return true; }

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();
    CohereEvent& ev = ev_;
    ev.Clear();
    MODEENVOY_RETURN_IF_ERROR(ReadCohere(frame.data, &ev));
    if (ev.v1) return V1Error();
    std::string_view type = ev.type.empty() ? std::string_view(frame.event) : ev.type;
    if (type == "message-start") {
      head_.id = ev.id;
      Start(out);
    } else if (type == "content-start" || type == "content-delta") {
      if (ev.has_thinking && !ev.thinking.empty()) Text("reasoning_content", ev.thinking, out);
      if (ev.has_text && !ev.text.empty()) Text("content", ev.text, out);
    } else if (type == "tool-plan-delta") {
      if (!ev.tool_plan.empty()) Text("tool_plan", ev.tool_plan, out);
    } else if (type == "tool-call-start" || type == "tool-call-delta") {
      const int64_t index = ev.index.value_or(0);
      if (index < 0 || index > 1024) return InvalidFieldError("index", "out of range");
      if (static_cast<size_t>(index) >= args_seen_.size()) args_seen_.resize(index + 1, false);
      for (const CohereCall& c : ev.calls) {
        const bool head = type == "tool-call-start";
        if (!c.arguments.empty()) args_seen_[index] = true;
        if (!head && c.arguments.empty()) continue;
        delta_.assign("{\"tool_calls\":[{\"index\":");
        AppendJsonInt(&delta_, index);
        if (head) {
          delta_.append(",\"id\":");
          AppendJsonString(&delta_, c.id);
          delta_.append(",\"type\":\"function\",\"function\":{\"name\":");
          AppendJsonString(&delta_, c.name);
          delta_.append(",\"arguments\":");
        } else {
          delta_.append(",\"function\":{\"arguments\":");
        }
        AppendJsonString(&delta_, c.arguments);
        delta_.append("}}]}");
        Emit(delta_, "", out);
      }
    } else if (type == "tool-call-end") {
      const int64_t index = ev.index.value_or(0);
      if (index >= 0 && static_cast<size_t>(index) < args_seen_.size() && !args_seen_[index]) {
        // A call without arguments still needs a JSON object for OpenAI clients.
        args_seen_[index] = true;
        delta_.assign("{\"tool_calls\":[{\"index\":");
        AppendJsonInt(&delta_, index);
        delta_.append(",\"function\":{\"arguments\":\"{}\"}}]}");
        Emit(delta_, "", out);
      }
    } else if (type == "message-end") {
      MODEENVOY_ASSIGN_OR_RETURN(std::string_view finish, MapFinish(ev.finish_reason, ev.error));
      done_ = true;
      Start(out);
      Emit("{}", finish, out);
      if (ev.usage.present) {
        SseEvent usage;
        AppendUsageChunk(head_, ev.usage.Json(), &usage.data);
        out->push_back(std::move(usage));
      }
      SseEvent end;
      end.data = std::string(kSseDoneData);
      out->push_back(std::move(end));
    }
    // content-end, citation-start/-end and unknown events carry nothing to forward.
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<SseEvent>* /*out*/) override {
    if (!done_) {
      return WithHttpStatus(
          absl::UnavailableError("cohere stream ended before its message-end event"), 502);
    }
    return absl::OkStatus();
  }

 private:
  void Start(std::vector<SseEvent>* out) {
    if (started_) return;
    started_ = true;
    Emit(R"({"role":"assistant","content":""})", "", out);
  }
  // A delta of one text member, written straight into the chunk.
  void Text(std::string_view member, std::string_view text, std::vector<SseEvent>* out) {
    Start(out);
    SseEvent event;
    event.data.reserve(160 + head_.id.size() + head_.model.size() + text.size());
    AppendDeltaChunkHead(head_, &event.data);
    event.data.push_back('{');
    AppendJsonString(&event.data, member);
    event.data.push_back(':');
    AppendJsonString(&event.data, text);
    event.data.push_back('}');
    AppendDeltaChunkTail("", &event.data);
    out->push_back(std::move(event));
  }
  void Emit(std::string_view delta, std::string_view finish, std::vector<SseEvent>* out) {
    if (!started_) Start(out);
    SseEvent event;
    AppendDeltaChunk(head_, delta, finish, &event.data);
    out->push_back(std::move(event));
  }

  ChunkHead head_;
  bool started_ = false;
  bool done_ = false;
  std::vector<bool> args_seen_;
  std::string delta_;
  CohereEvent ev_;  // the event being read, kept so its buffers are reused
};

std::string DumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string CohereFinish(std::string_view openai) {
  if (openai == "length") return "MAX_TOKENS";
  if (openai == "tool_calls") return "TOOL_CALL";
  return "COMPLETE";
}

Json CohereUsageJson(const std::optional<Usage>& usage) {
  Json u = Json::object();
  int64_t in = usage ? usage->prompt_tokens : 0, out = usage ? usage->completion_tokens : 0;
  u["billed_units"] = {{"input_tokens", in}, {"output_tokens", out}};
  u["tokens"] = {{"input_tokens", in}, {"output_tokens", out}};
  if (usage && usage->prompt_tokens_details && usage->prompt_tokens_details->cached_tokens) {
    u["cached_tokens"] = *usage->prompt_tokens_details->cached_tokens;
  }
  return u;
}

std::string SseOf(const Json& j) {
  return EncodeSseEvent(DumpJson(j), j.value("type", std::string()));
}

// Unified chunks -> Cohere v2 stream events.
class CohereStreamEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    if (!started_) {
      started_ = true;
      out->append(SseOf({{"id", chunk.id},
                         {"type", "message-start"},
                         {"delta",
                          {{"message",
                            {{"role", "assistant"},
                             {"content", Json::array()},
                             {"tool_plan", ""},
                             {"tool_calls", Json::array()},
                             {"citations", Json::array()}}}}}}));
    }
    if (chunk.usage.has_value()) usage_ = chunk.usage;
    for (const ChunkChoice& choice : chunk.choices) {
      if (choice.index != 0) return InvalidFieldError("choices[].index", "cohere has one choice");
      const ChatDelta& d = choice.delta;
      for (const auto& [name, value] : d.extra) {
        Json v = Json::parse(value, nullptr, false);
        if (!v.is_string() || v.get<std::string>().empty()) continue;
        if (name == "reasoning_content") Content("thinking", v.get<std::string>(), out);
        if (name == "tool_plan") {
          out->append(SseOf({{"type", "tool-plan-delta"},
                             {"delta", {{"message", {{"tool_plan", v}}}}}}));
        }
      }
      if (d.content.has_value() && !d.content->empty()) Content("text", *d.content, out);
      for (const ToolCallDelta& t : d.tool_calls) {
        CloseContent(out);
        if (t.id.has_value() || open_call_ != t.index) {
          CloseCall(out);
          open_call_ = t.index;
          std::string name = t.function && t.function->name ? *t.function->name : "";
          out->append(SseOf(
              {{"type", "tool-call-start"},
               {"index", t.index},
               {"delta",
                {{"message",
                  {{"tool_calls",
                    {{"id", t.id.value_or("")},
                     {"type", "function"},
                     {"function", {{"name", name}, {"arguments", ""}}}}}}}}}}));
        }
        if (t.function && t.function->arguments && !t.function->arguments->empty()) {
          out->append(SseOf(
              {{"type", "tool-call-delta"},
               {"index", t.index},
               {"delta",
                {{"message",
                  {{"tool_calls", {{"function", {{"arguments", *t.function->arguments}}}}}}}}}}));
        }
      }
      if (choice.finish_reason.has_value()) finish_ = *choice.finish_reason;
    }
    return absl::OkStatus();
  }
  void EncodeError(const absl::Status& error, std::string* out) override {
    out->append(SseOf({{"type", "message-end"},
                       {"delta",
                        {{"finish_reason", "ERROR"}, {"error", std::string(error.message())}}}}));
  }
  absl::Status Finish(std::string* out) override {
    CloseContent(out);
    CloseCall(out);
    out->append(SseOf({{"type", "message-end"},
                       {"delta",
                        {{"finish_reason", CohereFinish(finish_)},
                         {"usage", CohereUsageJson(usage_)}}}}));
    return absl::OkStatus();
  }

 private:
  void Content(std::string_view kind, const std::string& text, std::string* out) {
    if (open_kind_ != kind) {
      CloseContent(out);
      CloseCall(out);
      open_kind_ = std::string(kind);
      out->append(SseOf({{"type", "content-start"},
                         {"index", content_index_},
                         {"delta", {{"message", {{"content", {{"type", kind}, {kind, ""}}}}}}}}));
    }
    out->append(SseOf({{"type", "content-delta"},
                       {"index", content_index_},
                       {"delta", {{"message", {{"content", {{kind, text}}}}}}}}));
  }
  void CloseContent(std::string* out) {
    if (open_kind_.empty()) return;
    out->append(SseOf({{"type", "content-end"}, {"index", content_index_}}));
    open_kind_.clear();
    ++content_index_;
  }
  void CloseCall(std::string* out) {
    if (open_call_ < 0) return;
    out->append(SseOf({{"type", "tool-call-end"}, {"index", open_call_}}));
    open_call_ = -1;
  }

  bool started_ = false;
  std::string open_kind_;
  int64_t content_index_ = 0;
  int64_t open_call_ = -1;
  std::string finish_;
  std::optional<Usage> usage_;
};

class CohereDialect final : public Dialect {
 public:
  std::string_view name() const override { return kName; }
  std::string_view default_base_url() const override { return "https://api.cohere.com"; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override;

  // v2 /v2/embed (embeddings.h).
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    return EncodeCohereEmbeddings(request, EmbeddingsModel(request, call), out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& call) const override {
    return DecodeCohereEmbeddings(body, request, EmbeddingsModel(request, call));
  }
  size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& /*request*/,
                                   const DialectCall& /*call*/) const override {
    return kCohereEmbeddingInputsPerCall;
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kSse : Framing::kJson;
  }

  absl::Status DecodeResponse(std::string* body) const override {
    CohereEvent ev;
    MODEENVOY_RETURN_IF_ERROR(ReadCohere(*body, &ev));
    if (ev.v1) return V1Error();
    if (!ev.has_message) {
      return InvalidFieldError("message", "is required (not a Cohere v2 chat answer)");
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::string_view finish, MapFinish(ev.finish_reason, ev.error));
    std::string out;
    out.reserve(body->size() + 128);
    out.append("{\"id\":");
    AppendJsonString(&out, ev.id);
    out.append(",\"object\":\"chat.completion\",\"created\":0,\"model\":\"\",\"choices\":"
               "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (!ev.has_text && !ev.calls.empty()) {
      out.append("null");
    } else {
      AppendJsonString(&out, ev.text);
    }
    if (ev.has_thinking) {
      out.append(",\"reasoning_content\":");
      AppendJsonString(&out, ev.thinking);
    }
    if (ev.has_tool_plan) {
      out.append(",\"tool_plan\":");
      AppendJsonString(&out, ev.tool_plan);
    }
    if (!ev.citations.empty()) out.append(",\"citations\":").append(ev.citations);
    if (!ev.calls.empty()) {
      out.append(",\"tool_calls\":[");
      for (size_t i = 0; i < ev.calls.size(); ++i) {
        if (i > 0) out.push_back(',');
        out.append("{\"id\":");
        AppendJsonString(&out, ev.calls[i].id);
        out.append(",\"type\":\"function\",\"function\":{\"name\":");
        AppendJsonString(&out, ev.calls[i].name);
        out.append(",\"arguments\":");
        AppendJsonString(&out, Arguments(ev.calls[i]));
        out.append("}}");
      }
      out.push_back(']');
    }
    out.append("},\"logprobs\":null,\"finish_reason\":");
    AppendJsonString(&out, finish);
    out.append("}]");
    if (ev.usage.present) out.append(",\"usage\":").append(ev.usage.Json());
    out.append("}");
    *body = std::move(out);
    return absl::OkStatus();
  }

  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<CohereStreamDecoder>();
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override;
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override;
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<CohereStreamEncoder>();
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    std::string body = "{\"id\":";
    const std::string message(status.message());
    AppendJsonString(&body, Hex64(Fnv1a(message)));
    body.append(",\"message\":");
    AppendJsonString(&body, message);
    body.push_back('}');
    return body;
  }
};

// Unknown request members Cohere takes at the top level (passed through); "top_k" is
// sent as Cohere's "k".
constexpr std::string_view kPassThrough[] = {"k", "documents", "citation_options",
                                             "safety_mode", "priority"};

bool PassThrough(std::string_view name) {
  for (std::string_view s : kPassThrough) {
    if (s == name) return true;
  }
  return false;
}

// Text parts (and, for user messages, images) of `content` as Cohere parts.
absl::Status AppendContent(const MessageContent& content, const std::string& path,
                           bool images_ok, std::string* b) {
  if (const auto* text = std::get_if<std::string>(&content)) {
    AppendJsonString(b, *text);
    return absl::OkStatus();
  }
  const auto& parts = std::get<std::vector<ContentPart>>(content);
  b->push_back('[');
  for (size_t j = 0; j < parts.size(); ++j) {
    const ContentPart& p = parts[j];
    const std::string ppath = path + ".content[" + std::to_string(j) + "]";
    if (j > 0) b->push_back(',');
    if (p.type == ContentPartType::kText) {
      b->append("{\"type\":\"text\",\"text\":");
      AppendJsonString(b, p.text);
      b->push_back('}');
    } else if (p.type == ContentPartType::kImageUrl && images_ok && p.image_url.has_value()) {
      b->append("{\"type\":\"image_url\",\"image_url\":{\"url\":");
      AppendJsonString(b, p.image_url->url);
      if (p.image_url->detail.has_value()) {
        b->append(",\"detail\":");
        AppendJsonString(b, *p.image_url->detail);
      }
      b->append("}}");
    } else if (p.type == ContentPartType::kImageUrl) {
      return NotSupported(ppath + ".image_url");
    } else if (p.type == ContentPartType::kInputAudio) {
      return NotSupported(ppath + ".input_audio");
    } else if (p.type == ContentPartType::kFile) {
      return NotSupported(ppath + ".file");
    } else {
      return NotSupported(ppath);
    }
  }
  b->push_back(']');
  return absl::OkStatus();
}

absl::Status EncodeMessage(const Message& m, const std::string& path, std::string* b) {
  JsonObjectWriter w(b);
  w.Key("role");
  switch (m.role) {
    case Role::kSystem:
    case Role::kDeveloper:
      b->append("\"system\"");
      break;
    case Role::kUser:
      b->append("\"user\"");
      break;
    case Role::kAssistant:
      b->append("\"assistant\"");
      break;
    case Role::kTool:
      b->append("\"tool\"");
      break;
    case Role::kFunction:
      return InvalidFieldError(path + ".role", "\"function\" is not supported by cohere");
  }
  if (m.role == Role::kAssistant) {
    std::string_view reasoning, plan;
    for (const auto& [name, value] : m.extra) {
      if (name == "reasoning_content") reasoning = value;
      if (name == "tool_plan") plan = value;
    }
    if (!plan.empty() && plan != "null" && !m.tool_calls.empty()) {
      w.Key("tool_plan");
      b->append(plan);
    }
    if (!m.tool_calls.empty()) {
      w.Key("tool_calls");
      b->push_back('[');
      for (size_t k = 0; k < m.tool_calls.size(); ++k) {
        const ToolCall& tc = m.tool_calls[k];
        if (tc.type != "function" || !tc.function.has_value()) {
          return InvalidFieldError(path + ".tool_calls[" + std::to_string(k) + "].type",
                                   "only function tool calls are supported by cohere");
        }
        if (k > 0) b->push_back(',');
        b->append("{\"id\":");
        AppendJsonString(b, tc.id);
        b->append(",\"type\":\"function\",\"function\":{\"name\":");
        AppendJsonString(b, tc.function->name);
        b->append(",\"arguments\":");
        AppendJsonString(b, tc.function->arguments.empty() ? std::string_view("{}")
                                                           : tc.function->arguments);
        b->append("}}");
      }
      b->push_back(']');
    }
    const bool has_reasoning = !reasoning.empty() && reasoning != "null";
    if (has_reasoning) {
      // [{"type":"thinking","thinking":...}, text parts...]
      w.Key("content");
      b->append("[{\"type\":\"thinking\",\"thinking\":");
      b->append(reasoning);
      b->push_back('}');
      if (m.content.has_value()) {
        std::string rest;
        MODEENVOY_RETURN_IF_ERROR(AppendContent(*m.content, path, false, &rest));
        if (rest.front() == '"') {
          if (rest != "\"\"") b->append(",{\"type\":\"text\",\"text\":").append(rest).append("}");
        } else if (rest.size() > 2) {
          b->push_back(',');
          b->append(rest, 1, rest.size() - 2);
        }
      }
      b->push_back(']');
    } else if (m.content.has_value()) {
      w.Key("content");
      MODEENVOY_RETURN_IF_ERROR(AppendContent(*m.content, path, false, b));
    } else if (m.tool_calls.empty()) {
      w.Key("content");
      b->append("\"\"");
    }
  } else {
    w.Key("content");
    if (m.content.has_value()) {
      MODEENVOY_RETURN_IF_ERROR(AppendContent(*m.content, path, m.role == Role::kUser, b));
    } else {
      b->append("\"\"");
    }
  }
  if (m.role == Role::kTool) {
    w.Key("tool_call_id");
    AppendJsonString(b, m.tool_call_id.value_or(""));
  }
  w.End();
  return absl::OkStatus();
}

absl::Status CohereDialect::EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                                          WireRequest* out) const {
  MODEENVOY_RETURN_IF_ERROR(RejectOneTextChoiceFields(chat, kName));
  for (const auto& [name, value] : chat.extra) {
    if (!PassThrough(name) && name != "top_k" && name != "thinking" &&
        !IsAnthropicOnlyMember(name)) {
      return NotSupported(name);
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(const std::optional<ThinkingSetting> thinking,
                             ReadThinking(chat.extra));
  if (thinking.has_value() && chat.reasoning_effort.has_value()) {
    return InvalidFieldError("thinking", "give reasoning_effort or thinking, not both");
  }
  for (const char* penalty : {"frequency_penalty", "presence_penalty"}) {
    const std::optional<double>& v = std::string_view(penalty) == "frequency_penalty"
                                         ? chat.frequency_penalty
                                         : chat.presence_penalty;
    if (v.has_value() && (*v < 0 || *v > 1)) {
      return InvalidFieldError(penalty, "cohere accepts 0..1");
    }
  }
  if (chat.stop.has_value()) {
    if (const auto* many = std::get_if<std::vector<std::string>>(&*chat.stop);
        many != nullptr && many->size() > 5) {
      return InvalidFieldError("stop", "cohere accepts at most 5 stop sequences");
    }
  }
  // tool_choice: "auto" is Cohere's default; a named function is expressed by offering
  // only that tool and requiring a call.
  std::string_view forced;
  std::string choice;
  bool send_tools = !chat.tools.empty();
  std::string named;
  if (chat.tool_choice.has_value()) {
    const ToolChoice& tc = *chat.tool_choice;
    if (tc.mode == "none") {
      choice = "NONE";
    } else if (tc.mode == "required") {
      choice = "REQUIRED";
    } else if (!tc.object.empty()) {
      MODEENVOY_ASSIGN_OR_RETURN(Json obj, core_internal::ParseStrictJson(tc.object));
      if (obj.is_object() && obj.contains("function") && obj["function"].is_object() &&
          obj["function"].contains("name") && obj["function"]["name"].is_string()) {
        named = obj["function"]["name"].get<std::string>();
      }
      if (named.empty()) return InvalidFieldError("tool_choice", "not supported by cohere");
      forced = named;
      choice = "REQUIRED";
    }
  }

  out->method = "POST";
  out->target = "/v2/chat";
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back("accept", call.stream ? "text/event-stream" : "application/json");
  std::string& b = out->body;
  b.clear();
  b.reserve(256 + chat.messages.size() * 128);
  JsonObjectWriter w(&b);
  w.Key("model");
  AppendJsonString(&b, call.model.empty() ? std::string_view(chat.model) : call.model);
  w.Key("messages");
  b.push_back('[');
  for (size_t i = 0; i < chat.messages.size(); ++i) {
    if (i > 0) b.push_back(',');
    MODEENVOY_RETURN_IF_ERROR(
        EncodeMessage(chat.messages[i], "messages[" + std::to_string(i) + "]", &b));
  }
  b.push_back(']');
  w.Key("stream");
  b.append(call.stream ? "true" : "false");
  if (send_tools) {
    bool strict = false, found = forced.empty();
    w.Key("tools");
    b.push_back('[');
    bool first = true;
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const Tool& t = chat.tools[i];
      if (t.type != "function" || !t.function.has_value()) {
        return InvalidFieldError("tools[" + std::to_string(i) + "].type",
                                 "only function tools are supported by cohere");
      }
      if (!forced.empty() && t.function->name != forced) continue;
      found = true;
      strict = strict || t.function->strict.value_or(false);
      if (!first) b.push_back(',');
      first = false;
      b.append("{\"type\":\"function\",\"function\":{\"name\":");
      AppendJsonString(&b, t.function->name);
      if (t.function->description.has_value()) {
        b.append(",\"description\":");
        AppendJsonString(&b, *t.function->description);
      }
      b.append(",\"parameters\":");
      b.append(t.function->parameters.value_or(R"({"type":"object","properties":{}})"));
      b.append("}}");
    }
    b.push_back(']');
    if (!found) {
      return InvalidFieldError("tool_choice.function.name",
                               "names no tool of the request's tools");
    }
    if (strict) {
      w.Key("strict_tools");
      b.append("true");
    }
  }
  if (!choice.empty()) {
    if (!send_tools) return InvalidFieldError("tool_choice", "needs tools");
    w.Key("tool_choice");
    AppendJsonString(&b, choice);
  }
  if (chat.response_format.has_value()) {
    MODEENVOY_ASSIGN_OR_RETURN(Json rf, core_internal::ParseStrictJson(*chat.response_format));
    const std::string type = rf.is_object() ? rf.value("type", "") : "";
    if (type == "json_object") {
      w.Key("response_format");
      b.append(R"({"type":"json_object"})");
    } else if (type == "json_schema") {
      const Json* schema = nullptr;
      if (rf.contains("json_schema") && rf["json_schema"].is_object() &&
          rf["json_schema"].contains("schema")) {
        schema = &rf["json_schema"]["schema"];
      }
      if (schema == nullptr) {
        return InvalidFieldError("response_format.json_schema.schema", "is required by cohere");
      }
      w.Key("response_format");
      b.append(R"({"type":"json_object","json_schema":)").append(DumpJson(*schema)).append("}");
    } else if (type != "text") {
      return InvalidFieldError("response_format.type",
                               "\"" + type + "\" is not supported by cohere");
    }
  }
  if (chat.stop.has_value()) {
    w.Key("stop_sequences");
    b.push_back('[');
    if (const auto* one = std::get_if<std::string>(&*chat.stop)) {
      AppendJsonString(&b, *one);
    } else {
      const auto& many = std::get<std::vector<std::string>>(*chat.stop);
      for (size_t i = 0; i < many.size(); ++i) {
        if (i > 0) b.push_back(',');
        AppendJsonString(&b, many[i]);
      }
    }
    b.push_back(']');
  }
  if (chat.temperature.has_value()) {
    w.Key("temperature");
    AppendJsonDouble(&b, *chat.temperature);
  }
  if (chat.top_p.has_value()) {
    // Cohere's p is 0.01..0.99: the ends of OpenAI's 0..1 are clamped.
    w.Key("p");
    AppendJsonDouble(&b, std::min(0.99, std::max(0.01, *chat.top_p)));
  }
  if (chat.max_completion_tokens.has_value() || chat.max_tokens.has_value()) {
    w.Key("max_tokens");
    AppendJsonInt(&b, chat.max_completion_tokens.value_or(chat.max_tokens.value_or(0)));
  }
  if (chat.seed.has_value()) {
    w.Key("seed");
    AppendJsonInt(&b, *chat.seed);
  }
  if (chat.frequency_penalty.has_value()) {
    w.Key("frequency_penalty");
    AppendJsonDouble(&b, *chat.frequency_penalty);
  }
  if (chat.presence_penalty.has_value()) {
    w.Key("presence_penalty");
    AppendJsonDouble(&b, *chat.presence_penalty);
  }
  if (chat.reasoning_effort.has_value()) {
    const std::string& e = *chat.reasoning_effort;
    w.Key("thinking");
    if (e == "none") {
      b.append(R"({"type":"disabled"})");
    } else if (e == "minimal" || e == "low" || e == "medium" || e == "high") {
      b.append(R"({"type":"enabled"})");
    } else {
      return InvalidFieldError("reasoning_effort", "\"" + e + "\" is not supported by cohere");
    }
  }
  if (thinking.has_value()) {
    // Anthropic's budget_tokens is Cohere's token_budget; adaptive is enabled without one.
    w.Key("thinking");
    if (thinking->type == ThinkingSetting::Type::kDisabled) {
      b.append(R"({"type":"disabled"})");
    } else if (thinking->type == ThinkingSetting::Type::kAdaptive) {
      b.append(R"({"type":"enabled"})");
    } else {
      b.append(R"({"type":"enabled","token_budget":)");
      AppendJsonInt(&b, thinking->budget_tokens);
      b.push_back('}');
    }
  }
  for (const auto& [name, value] : chat.extra) {
    if (name == "thinking" || IsAnthropicOnlyMember(name)) continue;
    w.Key(name == "top_k" ? std::string_view("k") : std::string_view(name));
    b.append(value);
  }
  w.End();
  return absl::OkStatus();
}

// ---- ingress (nlohmann) ----

absl::Status Bad(std::string_view path, std::string_view msg) {
  return InvalidFieldError(path, msg);
}

absl::StatusOr<MessageContent> ContentFrom(const Json& c, const std::string& path,
                                           std::string* reasoning) {
  if (c.is_string()) return MessageContent(c.get<std::string>());
  if (!c.is_array()) return Bad(path, "must be a string or an array of content parts");
  std::vector<ContentPart> parts;
  for (size_t j = 0; j < c.size(); ++j) {
    const Json& p = c[j];
    const std::string ppath = path + "[" + std::to_string(j) + "]";
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) {
      return Bad(ppath + ".type", "is required");
    }
    const std::string type = p["type"].get<std::string>();
    if (type == "text") {
      if (!p.contains("text") || !p["text"].is_string()) return Bad(ppath + ".text", "is required");
      ContentPart part;
      part.text = p["text"].get<std::string>();
      parts.push_back(std::move(part));
    } else if (type == "image_url") {
      if (!p.contains("image_url") || !p["image_url"].is_object() ||
          !p["image_url"].contains("url") || !p["image_url"]["url"].is_string()) {
        return Bad(ppath + ".image_url.url", "is required");
      }
      ContentPart part;
      part.type = ContentPartType::kImageUrl;
      part.image_url = ImageUrl{p["image_url"]["url"].get<std::string>(), std::nullopt, {}};
      if (p["image_url"].contains("detail") && p["image_url"]["detail"].is_string()) {
        part.image_url->detail = p["image_url"]["detail"].get<std::string>();
      }
      parts.push_back(std::move(part));
    } else if (type == "thinking" && reasoning != nullptr) {
      if (p.contains("thinking") && p["thinking"].is_string()) {
        *reasoning += p["thinking"].get<std::string>();
      }
    } else {
      return Bad(ppath + ".type", "unknown content type \"" + type + "\"");
    }
  }
  return MessageContent(std::move(parts));
}

absl::StatusOr<ChatRequest> CohereDialect::DecodeRequest(const WireRequest& request) const {
  MODEENVOY_ASSIGN_OR_RETURN(Json body, core_internal::ParseStrictJson(request.body));
  if (!body.is_object()) return Bad("body", "must be a JSON object");
  static constexpr std::string_view kKnown[] = {
      "model", "messages", "stream", "tools", "strict_tools", "tool_choice", "response_format",
      "stop_sequences", "temperature", "p", "k", "max_tokens", "seed", "frequency_penalty",
      "presence_penalty", "thinking", "documents", "citation_options", "safety_mode",
      "priority", "logprobs"};
  for (const auto& [name, value] : body.items()) {
    bool known = false;
    for (std::string_view k : kKnown) known = known || k == name;
    if (!known) return Bad(name, "unknown field");
  }
  ChatRequest chat;
  if (!body.contains("model") || !body["model"].is_string() ||
      body["model"].get<std::string>().empty()) {
    return Bad("model", "is required");
  }
  chat.model = body["model"].get<std::string>();
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty()) {
    return Bad("messages", "must be a non-empty array");
  }
  const Json& messages = body["messages"];
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& jm = messages[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!jm.is_object() || !jm.contains("role") || !jm["role"].is_string()) {
      return Bad(path + ".role", "is required");
    }
    const std::string role = jm["role"].get<std::string>();
    Message m;
    if (role == "system") {
      m.role = Role::kSystem;
    } else if (role == "user") {
      m.role = Role::kUser;
    } else if (role == "assistant") {
      m.role = Role::kAssistant;
    } else if (role == "tool") {
      m.role = Role::kTool;
    } else {
      return Bad(path + ".role", "must be one of system, user, assistant, tool");
    }
    std::string reasoning;
    if (jm.contains("content") && !jm["content"].is_null()) {
      MODEENVOY_ASSIGN_OR_RETURN(
          m.content, ContentFrom(jm["content"], path + ".content",
                                 m.role == Role::kAssistant ? &reasoning : nullptr));
      if (const auto* parts = std::get_if<std::vector<ContentPart>>(&*m.content);
          parts != nullptr && parts->empty()) {
        m.content.reset();
      }
    } else if (m.role != Role::kAssistant) {
      return Bad(path + ".content", "is required");
    }
    if (!reasoning.empty()) m.extra.emplace_back("reasoning_content", DumpJson(reasoning));
    if (m.role == Role::kAssistant) {
      if (jm.contains("tool_plan") && jm["tool_plan"].is_string()) {
        m.extra.emplace_back("tool_plan", DumpJson(jm["tool_plan"]));
      }
      if (jm.contains("tool_calls") && jm["tool_calls"].is_array()) {
        for (size_t k = 0; k < jm["tool_calls"].size(); ++k) {
          const Json& c = jm["tool_calls"][k];
          const std::string cpath = path + ".tool_calls[" + std::to_string(k) + "]";
          if (!c.is_object() || !c.contains("id") || !c["id"].is_string()) {
            return Bad(cpath + ".id", "is required");
          }
          if (!c.contains("function") || !c["function"].is_object() ||
              !c["function"].contains("name") || !c["function"]["name"].is_string()) {
            return Bad(cpath + ".function.name", "is required");
          }
          ToolCall tc;
          tc.id = c["id"].get<std::string>();
          const Json& args = c["function"].value("arguments", Json("{}"));
          tc.function = FunctionCall{c["function"]["name"].get<std::string>(),
                                     args.is_string() ? args.get<std::string>() : DumpJson(args),
                                     {}};
          m.tool_calls.push_back(std::move(tc));
        }
      }
      if (!m.content.has_value() && m.tool_calls.empty()) {
        return Bad(path + ".content", "is required");
      }
    }
    if (m.role == Role::kTool) {
      if (!jm.contains("tool_call_id") || !jm["tool_call_id"].is_string()) {
        return Bad(path + ".tool_call_id", "is required");
      }
      m.tool_call_id = jm["tool_call_id"].get<std::string>();
    }
    chat.messages.push_back(std::move(m));
  }
  if (body.contains("stream")) {
    if (!body["stream"].is_boolean()) return Bad("stream", "must be a boolean");
    chat.stream = body["stream"].get<bool>();
  }
  const bool strict = body.value("strict_tools", false);
  if (body.contains("tools") && !body["tools"].is_null()) {
    if (!body["tools"].is_array()) return Bad("tools", "must be an array");
    for (size_t i = 0; i < body["tools"].size(); ++i) {
      const Json& t = body["tools"][i];
      const std::string path = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object() ||
          !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        return Bad(path + ".function.name", "is required");
      }
      FunctionDefinition def;
      def.name = t["function"]["name"].get<std::string>();
      if (t["function"].contains("description") && t["function"]["description"].is_string()) {
        def.description = t["function"]["description"].get<std::string>();
      }
      if (t["function"].contains("parameters")) {
        def.parameters = DumpJson(t["function"]["parameters"]);
      }
      if (strict) def.strict = true;
      Tool tool;
      tool.function = std::move(def);
      chat.tools.push_back(std::move(tool));
    }
  }
  if (body.contains("tool_choice")) {
    const Json& tc = body["tool_choice"];
    if (tc == "REQUIRED") {
      chat.tool_choice = ToolChoice{"required", ""};
    } else if (tc == "NONE") {
      chat.tool_choice = ToolChoice{"none", ""};
    } else {
      return Bad("tool_choice", "must be \"REQUIRED\" or \"NONE\"");
    }
  }
  if (body.contains("response_format") && body["response_format"].is_object()) {
    const Json& rf = body["response_format"];
    const std::string type = rf.value("type", "");
    if (type == "json_object" && rf.contains("json_schema")) {
      chat.response_format = R"({"type":"json_schema","json_schema":{"name":"response","schema":)" +
                             DumpJson(rf["json_schema"]) + "}}";
    } else if (type == "json_object") {
      chat.response_format = R"({"type":"json_object"})";
    } else if (type != "text") {
      return Bad("response_format.type", "must be \"text\" or \"json_object\"");
    }
  }
  if (body.contains("stop_sequences") && body["stop_sequences"].is_array()) {
    std::vector<std::string> stops;
    for (const Json& s : body["stop_sequences"]) {
      if (!s.is_string()) return Bad("stop_sequences", "must be an array of strings");
      stops.push_back(s.get<std::string>());
    }
    if (!stops.empty()) chat.stop = std::move(stops);
  }
  auto number = [&](const char* key, std::optional<double>* out) -> absl::Status {
    if (!body.contains(key) || body[key].is_null()) return absl::OkStatus();
    if (!body[key].is_number()) return Bad(key, "must be a number");
    *out = body[key].get<double>();
    return absl::OkStatus();
  };
  MODEENVOY_RETURN_IF_ERROR(number("temperature", &chat.temperature));
  MODEENVOY_RETURN_IF_ERROR(number("p", &chat.top_p));
  MODEENVOY_RETURN_IF_ERROR(number("frequency_penalty", &chat.frequency_penalty));
  MODEENVOY_RETURN_IF_ERROR(number("presence_penalty", &chat.presence_penalty));
  for (const char* key : {"max_tokens", "seed"}) {
    if (!body.contains(key) || body[key].is_null()) continue;
    if (!body[key].is_number_integer()) return Bad(key, "must be an integer");
    (std::string_view(key) == "seed" ? chat.seed : chat.max_tokens) = body[key].get<int64_t>();
  }
  if (body.contains("thinking") && body["thinking"].is_object()) {
    chat.reasoning_effort =
        body["thinking"].value("type", "") == "disabled" ? "none" : "medium";
  }
  for (const char* key : {"k", "documents", "citation_options", "safety_mode", "priority"}) {
    if (body.contains(key)) chat.extra.emplace_back(key, DumpJson(body[key]));
  }
  return chat;
}

absl::StatusOr<std::string> CohereDialect::EncodeResponse(
    const ChatCompletion& completion) const {
  if (completion.choices.size() > 1) {
    return InvalidFieldError("choices", "cohere answers with one choice");
  }
  Json msg = {{"role", "assistant"}};
  std::string finish = "COMPLETE";
  if (!completion.choices.empty()) {
    const ChatChoice& c = completion.choices[0];
    Json content = Json::array();
    for (const auto& [name, value] : c.message.extra) {
      Json v = Json::parse(value, nullptr, false);
      if (name == "reasoning_content" && v.is_string()) {
        content.push_back({{"type", "thinking"}, {"thinking", v}});
      }
      if (name == "tool_plan" && v.is_string()) msg["tool_plan"] = v;
    }
    if (c.message.content.has_value()) {
      if (const auto* s = std::get_if<std::string>(&*c.message.content)) {
        if (!s->empty()) content.push_back({{"type", "text"}, {"text", *s}});
      } else {
        for (const ContentPart& p : std::get<std::vector<ContentPart>>(*c.message.content)) {
          if (p.type == ContentPartType::kText) {
            content.push_back({{"type", "text"}, {"text", p.text}});
          }
        }
      }
    }
    if (!content.empty()) msg["content"] = std::move(content);
    if (!c.message.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCall& tc : c.message.tool_calls) {
        if (!tc.function.has_value()) continue;
        calls.push_back({{"id", tc.id},
                         {"type", "function"},
                         {"function",
                          {{"name", tc.function->name}, {"arguments", tc.function->arguments}}}});
      }
      msg["tool_calls"] = std::move(calls);
    }
    finish = CohereFinish(c.finish_reason.value_or("stop"));
  }
  Json j = {{"id", completion.id},
            {"message", std::move(msg)},
            {"finish_reason", finish},
            {"usage", CohereUsageJson(completion.usage)}};
  return DumpJson(j);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewCohereDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({}));
  return std::make_unique<CohereDialect>();
}

}  // namespace modeenvoy::protocol_internal
