// lib/protocol/dialects/ollama.cc: the "ollama" dialect: Ollama's native chat API
// (POST /api/chat), answers as one JSON body or NDJSON lines. Self-hosted, so there is no
// default base URL; no authentication unless an API key is configured (then sent as a
// bearer token, as a proxy in front of Ollama expects). The mapping is in
// docs/providers.md ("## ollama").
//
// Decisions the API leaves open (documented there):
//  - Text parts of one message are joined with "\n" (Ollama's content is one string);
//    image parts become the message's `images` (base64 only: a data: URL; an https URL is
//    a 400 naming the part, since Ollama cannot fetch it).
//  - Ollama gives tool calls no ids (older versions) or ids of its own (newer ones): the
//    unified id is Ollama's when present, else "call_" + 16 hex digits of a hash of the
//    call's position, name and arguments, the same in whole and streamed answers. A tool
//    result is sent with `tool_name`, the name of the call its tool_call_id answers.
//  - Unified responses have no id or created from Ollama: the id is "chatcmpl-ollama-" +
//    a hash of the body (of the first line when streamed), created is `created_at`.
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

namespace modeenvoy::protocol_internal {
namespace {

constexpr std::string_view kName = "ollama";

// ---- time: RFC 3339 <-> Unix seconds (civil-from-days, no time zone database) ----

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "2024-01-15T08:13:38.876196Z" (or with an offset) -> Unix seconds; 0 when unreadable.
int64_t ParseRfc3339(std::string_view s) {
  auto num = [&](size_t at, size_t n, int64_t* v) {
    if (at + n > s.size()) return false;
    *v = 0;
    for (size_t i = at; i < at + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      *v = *v * 10 + (s[i] - '0');
    }
    return true;
  };
  int64_t y, mo, d, h, mi, se;
  if (!num(0, 4, &y) || !num(5, 2, &mo) || !num(8, 2, &d) || !num(11, 2, &h) ||
      !num(14, 2, &mi) || !num(17, 2, &se) || mo < 1 || mo > 12 || d < 1 || d > 31) {
    return 0;
  }
  int64_t t = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
              h * 3600 + mi * 60 + se;
  size_t at = 19;
  while (at < s.size() && (s[at] == '.' || (s[at] >= '0' && s[at] <= '9'))) ++at;
  if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    int64_t oh, om;
    if (num(at + 1, 2, &oh) && num(at + 4, 2, &om)) {
      t -= (s[at] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
    }
  }
  return t;
}

std::string FormatRfc3339(int64_t t) {
  int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  int64_t secs = t - days * 86400;
  // civil_from_days
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
                static_cast<long long>(y), m, d, static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60));
  return buf;
}

// ---- one Ollama chat response object (a whole body, or one NDJSON line) ----

struct OllamaToolCall {
  std::string id;         // Ollama's own, newer versions only
  std::string name;
  std::string arguments;  // JSON text (an object's compact text, or a string's content)
};

struct OllamaChat {
  std::string model;
  std::string created_at;
  std::string content;
  std::string thinking;
  std::vector<OllamaToolCall> tool_calls;
  bool done = false;
  std::string done_reason;
  std::optional<int64_t> prompt_eval_count;
  std::optional<int64_t> eval_count;
  std::string durations;  // ",\"total_duration\":N,..." as received, for `extra`
  std::optional<std::string> error;
  bool generate = false;  // an /api/generate answer ("response" instead of "message")

  // Back to the freshly constructed state, the strings keeping their buffers (a stream
  // decoder reads every line into one OllamaChat).
  void Clear() {
    model.clear();
    created_at.clear();
    content.clear();
    thinking.clear();
    tool_calls.clear();
    done = false;
    done_reason.clear();
    prompt_eval_count.reset();
    eval_count.reset();
    durations.clear();
    error.reset();
    generate = false;
  }
};

absl::Status ReadToolCalls(JsonReader& r, std::vector<OllamaToolCall>* out) {
  absl::Status status;
  bool is_null = false;
  if (!PullExpect(r, "message.tool_calls", JsonType::kArray, &is_null, &status)) return status;
  if (is_null) return absl::OkStatus();
  if (!r.BeginArray()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextElement(&first, &has)) return r.status();
    if (!has) break;
    const std::string path = "message.tool_calls[" + std::to_string(out->size()) + "]";
    OllamaToolCall call;
    if (!r.BeginObject()) return r.status();
    bool f1 = true, h1 = false;
    while (true) {
      if (!r.NextMember(&f1, &key, &scratch, &h1)) return r.status();
      if (!h1) break;
      if (key == "id") {
        if (!PullString(r, path + ".id", &call.id, &status)) return status;
      } else if (key == "function") {
        if (!PullExpect(r, path + ".function", JsonType::kObject, &is_null, &status)) {
          return status;
        }
        if (is_null) continue;
        if (!r.BeginObject()) return r.status();
        bool f2 = true, h2 = false;
        while (true) {
          if (!r.NextMember(&f2, &key, &scratch, &h2)) return r.status();
          if (!h2) break;
          if (key == "name") {
            if (!PullString(r, path + ".function.name", &call.name, &status)) return status;
          } else if (key == "arguments") {
            JsonType type;
            if (!r.Peek(&type)) return r.status();
            if (type == JsonType::kString) {
              if (!r.ReadString(&call.arguments)) return r.status();
            } else if (type == JsonType::kNull) {
              if (!r.ReadNull()) return r.status();
            } else if (type == JsonType::kObject) {
              if (!r.CaptureValue(&call.arguments)) return r.status();
            } else {
              return WrongType(path + ".function.arguments", "object", type);
            }
          } else if (!r.SkipValue()) {
            return r.status();
          }
        }
      } else if (!r.SkipValue()) {
        return r.status();
      }
    }
    if (call.arguments.empty()) call.arguments = "{}";  // a call without arguments
    out->push_back(std::move(call));
  }
  return absl::OkStatus();
}

absl::Status ReadOllamaChat(std::string_view text, OllamaChat* out) {
  JsonReader r(text, kMaxJsonDepth);
  absl::Status status;
  if (!r.BeginObject()) return r.status();
  bool first = true, has = false;
  std::string scratch;
  std::string_view key;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return r.status();
    if (!has) break;
    if (key == "model") {
      if (!PullString(r, "model", &out->model, &status)) return status;
    } else if (key == "created_at") {
      if (!PullString(r, "created_at", &out->created_at, &status)) return status;
    } else if (key == "message") {
      bool is_null = false;
      if (!PullExpect(r, "message", JsonType::kObject, &is_null, &status)) return status;
      if (is_null) continue;
      if (!r.BeginObject()) return r.status();
      bool f1 = true, h1 = false;
      while (true) {
        if (!r.NextMember(&f1, &key, &scratch, &h1)) return r.status();
        if (!h1) break;
        if (key == "content") {
          if (!PullString(r, "message.content", &out->content, &status)) return status;
        } else if (key == "thinking") {
          if (!PullString(r, "message.thinking", &out->thinking, &status)) return status;
        } else if (key == "tool_calls") {
          MODEENVOY_RETURN_IF_ERROR(ReadToolCalls(r, &out->tool_calls));
        } else if (!r.SkipValue()) {
          return r.status();
        }
      }
    } else if (key == "done") {
      JsonType type;
      if (!r.Peek(&type)) return r.status();
      if (type != JsonType::kBool) return WrongType("done", "boolean", type);
      if (!r.ReadBool(&out->done)) return r.status();
    } else if (key == "done_reason") {
      if (!PullString(r, "done_reason", &out->done_reason, &status)) return status;
    } else if (key == "prompt_eval_count") {
      if (!PullInt(r, "prompt_eval_count", &out->prompt_eval_count, &status)) return status;
    } else if (key == "eval_count") {
      if (!PullInt(r, "eval_count", &out->eval_count, &status)) return status;
    } else if (key == "total_duration" || key == "load_duration" ||
               key == "prompt_eval_duration" || key == "eval_duration") {
      std::string name(key);
      std::string value;
      if (!r.CaptureValue(&value)) return r.status();
      out->durations.append(",");
      AppendJsonString(&out->durations, name);
      out->durations.append(":").append(value);
    } else if (key == "response") {
      out->generate = true;
      if (!r.SkipValue()) return r.status();
    } else if (key == "error") {
      std::string message;
      JsonType type;
      if (!r.Peek(&type)) return r.status();
      if (type == JsonType::kString) {
        if (!r.ReadString(&message)) return r.status();
      } else if (!r.CaptureValue(&message)) {
        return r.status();
      }
      out->error = std::move(message);
    } else if (!r.SkipValue()) {
      return r.status();
    }
  }
  if (!r.ExpectEnd()) return r.status();
  return absl::OkStatus();
}

std::string ToolCallId(const OllamaToolCall& call, size_t index) {
  if (!call.id.empty()) return call.id;
  std::string key = call.name;
  key.push_back('\0');
  key.append(call.arguments);
  return "call_" + Hex64(Fnv1a(key, index));
}

// tool_calls array members of a whole message, starting at `first_index`; `with_index`
// for stream deltas.
void AppendToolCalls(const std::vector<OllamaToolCall>& calls, size_t first_index,
                     bool with_index, std::string* out) {
  out->push_back('[');
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->push_back('{');
    if (with_index) {
      out->append("\"index\":");
      AppendJsonInt(out, static_cast<int64_t>(first_index + i));
      out->push_back(',');
    }
    out->append("\"id\":");
    AppendJsonString(out, ToolCallId(calls[i], first_index + i));
    out->append(",\"type\":\"function\",\"function\":{\"name\":");
    AppendJsonString(out, calls[i].name);
    out->append(",\"arguments\":");
    AppendJsonString(out, calls[i].arguments);
    out->append("}}");
  }
  out->push_back(']');
}

std::string FinishReason(const OllamaChat& chat, bool had_tool_calls) {
  if (chat.done_reason == "length") return "length";
  if (had_tool_calls) return "tool_calls";
  return "stop";  // "stop", "load", "unload", or none (older versions)
}

std::string UsageOf(const OllamaChat& chat) {
  std::string usage;
  AppendUsage(chat.prompt_eval_count.value_or(0), chat.eval_count.value_or(0), std::nullopt,
              "", &usage);
  return usage;
}

absl::Status StreamError(std::string_view line, const std::string& message) {
  // Ollama reports a failure after the 200 head as an {"error": "..."} line.
  (void)line;
  std::string body = "{\"error\":";
  AppendJsonString(&body, message);
  body.push_back('}');
  return StatusFromUpstreamError(500, body);
}

absl::Status GenerateError() {
  return InvalidFieldError("body",
                           "an /api/generate answer; the ollama dialect speaks /api/chat");
}

class OllamaStreamDecoder final : public StreamTranslator {
 public:
  // Its usage-only chunk comes right before "[DONE]", out of the same call, and no other
  // chunk it writes has a usage member.
  bool KeepsUsagePromise() const override { return true; }

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();  // nothing follows the final line
    OllamaChat& chat = chat_;
    chat.Clear();
    MODEENVOY_RETURN_IF_ERROR(ReadOllamaChat(frame.data, &chat));
    if (chat.error.has_value()) return StreamError(frame.data, *chat.error);
    if (chat.generate) return GenerateError();
    if (!started_) {
      head_.id = "chatcmpl-ollama-" + Hex64(Fnv1a(frame.data));
      head_.created = ParseRfc3339(chat.created_at);
      head_.model = chat.model;
    }
    const bool has_delta = !chat.content.empty() || !chat.thinking.empty() ||
                           !chat.tool_calls.empty();
    if (has_delta || !started_) {
      // The delta is written straight into the chunk.
      SseEvent event;
      std::string& data = event.data;
      data.reserve(200 + head_.id.size() + head_.model.size() + chat.content.size() +
                   chat.thinking.size());
      AppendDeltaChunkHead(head_, &data);
      JsonObjectWriter w(&data);
      if (!started_) {
        w.Key("role");
        data.append("\"assistant\"");
      }
      if (!chat.content.empty() || !started_) {
        w.Key("content");
        AppendJsonString(&data, chat.content);
      }
      if (!chat.thinking.empty()) {
        w.Key("reasoning_content");
        AppendJsonString(&data, chat.thinking);
      }
      if (!chat.tool_calls.empty()) {
        w.Key("tool_calls");
        AppendToolCalls(chat.tool_calls, tool_calls_, /*with_index=*/true, &data);
        tool_calls_ += chat.tool_calls.size();
      }
      w.End();
      AppendDeltaChunkTail("", &data);
      started_ = true;
      out->push_back(std::move(event));
    }
    if (chat.done) {
      done_ = true;
      Emit("{}", FinishReason(chat, tool_calls_ > 0), out);
      if (chat.prompt_eval_count.has_value() || chat.eval_count.has_value()) {
        SseEvent usage;
        AppendUsageChunk(head_, UsageOf(chat), &usage.data);
        out->push_back(std::move(usage));
      }
      SseEvent end;
      end.data = std::string(kSseDoneData);
      out->push_back(std::move(end));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<SseEvent>* /*out*/) override {
    if (!done_) {
      return WithHttpStatus(
          absl::UnavailableError("ollama stream ended before its final \"done\": true line"),
          502);
    }
    return absl::OkStatus();
  }

 private:
  void Emit(std::string_view delta, std::string_view finish, std::vector<SseEvent>* out) {
    SseEvent event;
    AppendDeltaChunk(head_, delta, finish, &event.data);
    out->push_back(std::move(event));
  }

  ChunkHead head_;
  bool started_ = false;
  bool done_ = false;
  size_t tool_calls_ = 0;
  OllamaChat chat_;  // the line being read, kept so its buffers are reused
};

// ---- ingress helpers (nlohmann) ----

using core_internal::Json;

std::string ImageMime(std::string_view b64) {
  if (b64.substr(0, 4) == "/9j/") return "image/jpeg";
  if (b64.substr(0, 6) == "R0lGOD") return "image/gif";
  if (b64.substr(0, 5) == "UklGR") return "image/webp";
  return "image/png";
}

absl::Status NotSupported(std::string_view path) {
  return InvalidFieldError(path, "not supported by ollama");
}

std::string DumpJson(const Json& j) {
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The NDJSON lines of a unified stream, as Ollama writes them.
class OllamaStreamEncoder final : public StreamEncoder {
 public:
  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    if (model_.empty()) model_ = chunk.model;
    if (created_ == 0) created_ = chunk.created;
    if (chunk.usage.has_value()) usage_ = chunk.usage;
    for (const ChunkChoice& choice : chunk.choices) {
      if (choice.index != 0) return InvalidFieldError("choices[].index", "ollama has one choice");
      const ChatDelta& d = choice.delta;
      std::string thinking;
      for (const auto& [name, value] : d.extra) {
        if (name == "reasoning_content" && value.size() > 2 && value.front() == '"') {
          thinking = Json::parse(value).get<std::string>();
        }
      }
      for (const ToolCallDelta& t : d.tool_calls) {
        if (t.index >= static_cast<int64_t>(calls_.size())) calls_.resize(t.index + 1);
        PendingCall& c = calls_[t.index];
        if (t.id) c.id = *t.id;
        if (t.function && t.function->name) c.name += *t.function->name;
        if (t.function && t.function->arguments) c.arguments += *t.function->arguments;
      }
      const std::string content = d.content.value_or("");
      if (!content.empty() || !thinking.empty()) Line(content, thinking, false, out);
      if (choice.finish_reason.has_value()) finish_ = *choice.finish_reason;
    }
    return absl::OkStatus();
  }
  void EncodeError(const absl::Status& error, std::string* out) override {
    Json j = {{"error", std::string(error.message())}};
    out->append(DumpJson(j)).push_back('\n');
  }
  absl::Status Finish(std::string* out) override {
    if (!calls_.empty()) Line("", "", true, out);
    Json j = Json::object();
    j["model"] = model_;
    j["created_at"] = FormatRfc3339(created_);
    j["message"] = {{"role", "assistant"}, {"content", ""}};
    j["done"] = true;
    j["done_reason"] = finish_ == "length" ? "length" : "stop";
    if (usage_.has_value()) {
      j["prompt_eval_count"] = usage_->prompt_tokens;
      j["eval_count"] = usage_->completion_tokens;
    }
    out->append(DumpJson(j)).push_back('\n');
    return absl::OkStatus();
  }

 private:
  struct PendingCall {
    std::string id, name, arguments;
  };
  void Line(const std::string& content, const std::string& thinking, bool with_calls,
            std::string* out) {
    Json j = Json::object();
    j["model"] = model_;
    j["created_at"] = FormatRfc3339(created_);
    Json m = {{"role", "assistant"}, {"content", content}};
    if (!thinking.empty()) m["thinking"] = thinking;
    if (with_calls) {
      Json calls = Json::array();
      for (const PendingCall& c : calls_) {
        Json args = Json::parse(c.arguments.empty() ? "{}" : c.arguments, nullptr, false);
        if (args.is_discarded()) args = Json::object();
        calls.push_back({{"function", {{"name", c.name}, {"arguments", args}}}});
      }
      m["tool_calls"] = std::move(calls);
    }
    j["message"] = std::move(m);
    j["done"] = false;
    out->append(DumpJson(j)).push_back('\n');
  }

  std::string model_;
  int64_t created_ = 0;
  std::string finish_;
  std::optional<Usage> usage_;
  std::vector<PendingCall> calls_;
};

class OllamaDialect final : public Dialect {
 public:
  explicit OllamaDialect(bool think_levels) : think_levels_(think_levels) {}

  std::string_view name() const override { return kName; }
  // Self-hosted: the configuration must name the server.
  std::string_view default_base_url() const override { return {}; }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override;

  // /api/embed (embeddings.h).
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    return EncodeOllamaEmbeddings(request, EmbeddingsModel(request, call), out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& call) const override {
    return DecodeOllamaEmbeddings(body, request, EmbeddingsModel(request, call));
  }

  Framing ResponseFraming(bool stream) const override {
    return stream ? Framing::kNdjson : Framing::kJson;
  }

  absl::Status DecodeResponse(std::string* body) const override {
    OllamaChat chat;
    MODEENVOY_RETURN_IF_ERROR(ReadOllamaChat(*body, &chat));
    if (chat.error.has_value()) return StreamError(*body, *chat.error);
    if (chat.generate) return GenerateError();
    std::string out;
    out.reserve(body->size() + 256);
    out.append("{\"id\":");
    AppendJsonString(&out, "chatcmpl-ollama-" + Hex64(Fnv1a(*body)));
    out.append(",\"object\":\"chat.completion\",\"created\":");
    AppendJsonInt(&out, ParseRfc3339(chat.created_at));
    out.append(",\"model\":");
    AppendJsonString(&out, chat.model);
    out.append(",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    if (chat.content.empty() && !chat.tool_calls.empty()) {
      out.append("null");
    } else {
      AppendJsonString(&out, chat.content);
    }
    if (!chat.thinking.empty()) {
      out.append(",\"reasoning_content\":");
      AppendJsonString(&out, chat.thinking);
    }
    if (!chat.tool_calls.empty()) {
      out.append(",\"tool_calls\":");
      AppendToolCalls(chat.tool_calls, 0, /*with_index=*/false, &out);
    }
    out.append("},\"logprobs\":null,\"finish_reason\":");
    AppendJsonString(&out, FinishReason(chat, !chat.tool_calls.empty()));
    out.append("}],\"usage\":");
    out.append(UsageOf(chat));
    out.append(chat.durations);  // Ollama's timings (nanoseconds), kept as extra members
    out.append("}");
    *body = std::move(out);
    return absl::OkStatus();
  }

  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<OllamaStreamDecoder>();
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override;
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override;
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<OllamaStreamEncoder>();
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    std::string body = "{\"error\":";
    AppendJsonString(&body, std::string(status.message()));
    body.push_back('}');
    return body;
  }

 private:
  absl::Status EncodeMessage(const ChatRequest& chat, size_t i, std::string* b) const;

  const bool think_levels_;
};

// Extra request members Ollama takes inside "options" (its sampler settings) and at the top
// level; any other unknown member is refused by name.
constexpr std::string_view kOptionExtras[] = {
    "top_k", "min_p", "num_ctx", "repeat_penalty", "repeat_last_n", "num_keep", "typical_p",
    "mirostat", "mirostat_tau", "mirostat_eta", "num_gpu", "num_thread"};
constexpr std::string_view kTopLevelExtras[] = {"keep_alive", "think"};

template <size_t N>
bool In(const std::string_view (&list)[N], std::string_view name) {
  for (std::string_view s : list) {
    if (s == name) return true;
  }
  return false;
}

absl::Status OllamaDialect::EncodeMessage(const ChatRequest& chat, size_t i,
                                          std::string* b) const {
  const Message& m = chat.messages[i];
  const std::string path = "messages[" + std::to_string(i) + "]";
  std::string_view role;
  switch (m.role) {
    case Role::kSystem:
    case Role::kDeveloper:
      role = "system";
      break;
    case Role::kUser:
      role = "user";
      break;
    case Role::kAssistant:
      role = "assistant";
      break;
    case Role::kTool:
      role = "tool";
      break;
    case Role::kFunction:
      return InvalidFieldError(path + ".role", "\"function\" is not supported by ollama");
  }
  JsonObjectWriter w(b);
  w.Key("role");
  AppendJsonString(b, role);
  w.Key("content");
  std::vector<std::string_view> images;
  if (!m.content.has_value()) {
    b->append("\"\"");
  } else if (const auto* text = std::get_if<std::string>(&*m.content)) {
    AppendJsonString(b, *text);
  } else {
    const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
    std::string joined;
    bool first_text = true;
    for (size_t j = 0; j < parts.size(); ++j) {
      const ContentPart& p = parts[j];
      const std::string ppath = path + ".content[" + std::to_string(j) + "]";
      switch (p.type) {
        case ContentPartType::kText:
          if (!first_text) joined.push_back('\n');
          first_text = false;
          joined.append(p.text);
          break;
        case ContentPartType::kImageUrl: {
          std::string_view url = p.image_url ? std::string_view(p.image_url->url) : "";
          constexpr std::string_view kMarker = ";base64,";
          size_t at = url.find(kMarker);
          if (url.substr(0, 5) != "data:" || at == std::string_view::npos) {
            return InvalidFieldError(
                ppath + ".image_url.url",
                "ollama accepts only base64 images (a data: URL); it cannot fetch a URL");
          }
          images.push_back(url.substr(at + kMarker.size()));
          break;
        }
        case ContentPartType::kInputAudio:
          return NotSupported(ppath + ".input_audio");
        case ContentPartType::kFile:
          return NotSupported(ppath + ".file");
        case ContentPartType::kRefusal:
          return NotSupported(ppath + ".refusal");
        case ContentPartType::kOther:
          return NotSupported(ppath);
      }
    }
    AppendJsonString(b, joined);
  }
  if (!images.empty()) {
    w.Key("images");
    b->push_back('[');
    for (size_t k = 0; k < images.size(); ++k) {
      if (k > 0) b->push_back(',');
      AppendJsonString(b, images[k]);
    }
    b->push_back(']');
  }
  for (const auto& [name, value] : m.extra) {
    if (name == "reasoning_content" && m.role == Role::kAssistant) {
      w.Key("thinking");
      b->append(value);  // raw JSON string
    }
  }
  if (!m.tool_calls.empty()) {
    w.Key("tool_calls");
    b->push_back('[');
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const ToolCall& tc = m.tool_calls[k];
      const std::string tpath = path + ".tool_calls[" + std::to_string(k) + "]";
      if (tc.type != "function" || !tc.function.has_value()) {
        return InvalidFieldError(tpath + ".type", "only function tool calls are supported by ollama");
      }
      if (k > 0) b->push_back(',');
      b->append("{\"function\":{\"name\":");
      AppendJsonString(b, tc.function->name);
      b->append(",\"arguments\":");
      // Ollama wants the arguments as an object, not a string holding one.
      std::string_view args = tc.function->arguments;
      JsonType type;
      if (args.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        b->append("{}");
      } else if (IsValidJson(args, &type) && type == JsonType::kObject) {
        JsonReader r(args, kMaxJsonDepth);
        if (!r.CaptureValue(b)) return r.status();
      } else {
        return InvalidFieldError(tpath + ".function.arguments",
                                 "must hold a JSON object for ollama");
      }
      b->append("}}");
    }
    b->push_back(']');
  }
  if (m.role == Role::kTool && m.tool_call_id.has_value()) {
    // The name of the call this result answers: the nearest earlier assistant call with
    // this id.
    for (size_t k = i; k-- > 0;) {
      const Message& prev = chat.messages[k];
      if (prev.role != Role::kAssistant) continue;
      bool found = false;
      for (const ToolCall& tc : prev.tool_calls) {
        if (tc.id == *m.tool_call_id && tc.function.has_value()) {
          w.Key("tool_name");
          AppendJsonString(b, tc.function->name);
          found = true;
          break;
        }
      }
      if (found) break;
    }
  }
  w.End();
  return absl::OkStatus();
}

absl::Status OllamaDialect::EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                                          WireRequest* out) const {
  // What Ollama cannot express.
  MODEENVOY_RETURN_IF_ERROR(RejectOneTextChoiceFields(chat, kName));
  bool send_tools = !chat.tools.empty();
  if (chat.tool_choice.has_value()) {
    const ToolChoice& tc = *chat.tool_choice;
    if (tc.mode == "none") {
      send_tools = false;  // the model cannot call what it is not shown
    } else if (tc.mode == "required" || !tc.object.empty()) {
      return InvalidFieldError("tool_choice",
                               "ollama cannot force a tool call; use \"auto\" or \"none\"");
    }
  }
  std::string_view think_extra;
  for (const auto& [name, value] : chat.extra) {
    // Anthropic's: thinking is written as think below; context_management left out.
    if (name == "thinking" || IsAnthropicOnlyMember(name)) continue;
    if (!In(kOptionExtras, name) && !In(kTopLevelExtras, name)) return NotSupported(name);
    if (name == "think") think_extra = value;
  }
  if (!think_extra.empty() && chat.reasoning_effort.has_value()) {
    return InvalidFieldError("think", "give reasoning_effort or think, not both");
  }
  MODEENVOY_ASSIGN_OR_RETURN(const std::optional<ThinkingSetting> thinking,
                             ReadThinking(chat.extra));
  if (thinking.has_value() && (chat.reasoning_effort.has_value() || !think_extra.empty())) {
    return InvalidFieldError("thinking", chat.reasoning_effort.has_value()
                                             ? "give reasoning_effort or thinking, not both"
                                             : "give think or thinking, not both");
  }

  out->method = "POST";
  out->target = "/api/chat";
  out->headers.emplace_back("content-type", "application/json");
  out->headers.emplace_back("accept", call.stream ? "application/x-ndjson" : "application/json");
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
    MODEENVOY_RETURN_IF_ERROR(EncodeMessage(chat, i, &b));
  }
  b.push_back(']');
  // Ollama streams unless told otherwise.
  w.Key("stream");
  b.append(call.stream ? "true" : "false");
  if (send_tools) {
    w.Key("tools");
    b.push_back('[');
    for (size_t i = 0; i < chat.tools.size(); ++i) {
      const Tool& t = chat.tools[i];
      if (t.type != "function" || !t.function.has_value()) {
        return InvalidFieldError("tools[" + std::to_string(i) + "].type",
                                 "only function tools are supported by ollama");
      }
      if (i > 0) b.push_back(',');
      b.append("{\"type\":\"function\",\"function\":{\"name\":");
      AppendJsonString(&b, t.function->name);
      if (t.function->description.has_value()) {
        b.append(",\"description\":");
        AppendJsonString(&b, *t.function->description);
      }
      if (t.function->parameters.has_value()) {
        b.append(",\"parameters\":");
        b.append(*t.function->parameters);
      }
      b.append("}}");
    }
    b.push_back(']');
  }
  if (chat.response_format.has_value()) {
    // {"type":"text"|"json_object"|"json_schema","json_schema":{"name","schema",...}}
    JsonReader r(*chat.response_format, kMaxJsonDepth);
    std::string type, schema, scratch;
    std::string_view key;
    bool first = true, has = false;
    if (!r.BeginObject()) return InvalidFieldError("response_format", "must be an object");
    while (r.NextMember(&first, &key, &scratch, &has) && has) {
      if (key == "type") {
        if (!r.ReadString(&type)) break;
      } else if (key == "json_schema") {
        bool f2 = true, h2 = false;
        if (!r.BeginObject()) break;
        while (r.NextMember(&f2, &key, &scratch, &h2) && h2) {
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
    if (!r.status().ok()) return InvalidFieldError("response_format", std::string(r.status().message()));
    if (type == "json_object") {
      w.Key("format");
      b.append("\"json\"");
    } else if (type == "json_schema") {
      if (schema.empty()) {
        return InvalidFieldError("response_format.json_schema.schema", "is required by ollama");
      }
      w.Key("format");
      b.append(schema);
    } else if (type != "text") {
      return InvalidFieldError("response_format.type",
                               "\"" + type + "\" is not supported by ollama");
    }
  }
  if (chat.reasoning_effort.has_value()) {
    const std::string& e = *chat.reasoning_effort;
    w.Key("think");
    if (e == "none" || e == "minimal") {
      b.append("false");
    } else if (e == "low" || e == "medium" || e == "high") {
      if (think_levels_) {
        AppendJsonString(&b, e);
      } else {
        b.append("true");
      }
    } else {
      return InvalidFieldError("reasoning_effort", "\"" + e + "\" is not supported by ollama");
    }
  }
  if (thinking.has_value()) {
    // Ollama's think is on or off (a level only from reasoning_effort): adaptive is on.
    w.Key("think");
    b.append(thinking->type == ThinkingSetting::Type::kDisabled ? "false" : "true");
  }
  for (const auto& [name, value] : chat.extra) {
    if (In(kTopLevelExtras, name)) {
      w.Key(name);
      b.append(value);
    }
  }
  // Sampler settings go in "options".
  std::string options;
  JsonObjectWriter o(&options);
  bool any = false;
  auto key = [&](std::string_view name) {
    o.Key(name);
    any = true;
  };
  if (chat.temperature.has_value()) {
    key("temperature");
    AppendJsonDouble(&options, *chat.temperature);
  }
  if (chat.top_p.has_value()) {
    key("top_p");
    AppendJsonDouble(&options, *chat.top_p);
  }
  if (chat.seed.has_value()) {
    key("seed");
    AppendJsonInt(&options, *chat.seed);
  }
  if (chat.stop.has_value()) {
    key("stop");
    options.push_back('[');
    if (const auto* one = std::get_if<std::string>(&*chat.stop)) {
      AppendJsonString(&options, *one);
    } else {
      const auto& many = std::get<std::vector<std::string>>(*chat.stop);
      for (size_t i = 0; i < many.size(); ++i) {
        if (i > 0) options.push_back(',');
        AppendJsonString(&options, many[i]);
      }
    }
    options.push_back(']');
  }
  if (chat.max_completion_tokens.has_value() || chat.max_tokens.has_value()) {
    key("num_predict");
    AppendJsonInt(&options, chat.max_completion_tokens.value_or(chat.max_tokens.value_or(0)));
  }
  if (chat.presence_penalty.has_value()) {
    key("presence_penalty");
    AppendJsonDouble(&options, *chat.presence_penalty);
  }
  if (chat.frequency_penalty.has_value()) {
    key("frequency_penalty");
    AppendJsonDouble(&options, *chat.frequency_penalty);
  }
  for (const auto& [name, value] : chat.extra) {
    if (In(kOptionExtras, name)) {
      key(name);
      options.append(value);
    }
  }
  o.End();
  if (any) {
    w.Key("options");
    b.append(options);
  }
  w.End();
  return absl::OkStatus();
}

absl::StatusOr<ChatRequest> OllamaDialect::DecodeRequest(const WireRequest& request) const {
  MODEENVOY_ASSIGN_OR_RETURN(Json body, core_internal::ParseStrictJson(request.body));
  if (!body.is_object()) return InvalidFieldError("body", "must be a JSON object");
  ChatRequest chat;
  auto model = body.find("model");
  if (model == body.end() || !model->is_string() || model->get<std::string>().empty()) {
    return InvalidFieldError("model", "is required");
  }
  chat.model = model->get<std::string>();
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    return InvalidFieldError("messages", "must be a non-empty array");
  }
  // Ids for the tool calls of the history, so tool results can name them.
  std::vector<std::pair<std::string, std::string>> call_ids;  // (name, id), latest last
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& jm = (*messages)[i];
    const std::string path = "messages[" + std::to_string(i) + "]";
    if (!jm.is_object()) return InvalidFieldError(path, "must be an object");
    auto role = jm.find("role");
    if (role == jm.end() || !role->is_string()) return InvalidFieldError(path + ".role", "is required");
    std::optional<Role> r = RoleFromName(role->get<std::string>());
    if (!r.has_value() || *r == Role::kDeveloper || *r == Role::kFunction) {
      return InvalidFieldError(path + ".role",
                               "must be one of system, user, assistant, tool");
    }
    Message m = MakeMessage(*r);
    std::string text;
    if (auto c = jm.find("content"); c != jm.end() && !c->is_null()) {
      if (!c->is_string()) return InvalidFieldError(path + ".content", "must be a string");
      text = c->get<std::string>();
    }
    auto images = jm.find("images");
    if (images != jm.end() && !images->is_null()) {
      if (!images->is_array()) return InvalidFieldError(path + ".images", "must be an array");
      std::vector<ContentPart> parts;
      if (!text.empty()) {
        ContentPart p;
        p.text = text;
        parts.push_back(std::move(p));
      }
      for (size_t k = 0; k < images->size(); ++k) {
        const Json& img = (*images)[k];
        if (!img.is_string()) {
          return InvalidFieldError(path + ".images[" + std::to_string(k) + "]",
                                   "must be a base64 string");
        }
        ContentPart p;
        p.type = ContentPartType::kImageUrl;
        const std::string b64 = img.get<std::string>();
        p.image_url = ImageUrl{"data:" + ImageMime(b64) + ";base64," + b64, std::nullopt, {}};
        parts.push_back(std::move(p));
      }
      m.content = std::move(parts);
    } else if (!text.empty() || *r != Role::kAssistant) {
      m.content = text;
    }
    if (auto th = jm.find("thinking"); th != jm.end() && th->is_string() &&
                                       *r == Role::kAssistant) {
      m.extra.emplace_back("reasoning_content", DumpJson(*th));
    }
    if (auto calls = jm.find("tool_calls"); calls != jm.end() && !calls->is_null()) {
      if (!calls->is_array()) return InvalidFieldError(path + ".tool_calls", "must be an array");
      for (size_t k = 0; k < calls->size(); ++k) {
        const Json& c = (*calls)[k];
        const std::string cpath = path + ".tool_calls[" + std::to_string(k) + "]";
        if (!c.is_object() || !c.contains("function") || !c["function"].is_object() ||
            !c["function"].contains("name") || !c["function"]["name"].is_string()) {
          return InvalidFieldError(cpath + ".function.name", "is required");
        }
        OllamaToolCall oc;
        oc.name = c["function"]["name"].get<std::string>();
        const Json& args = c["function"].value("arguments", Json::object());
        oc.arguments = args.is_string() ? args.get<std::string>() : DumpJson(args);
        if (c.contains("id") && c["id"].is_string()) oc.id = c["id"].get<std::string>();
        ToolCall tc;
        tc.id = ToolCallId(oc, k);
        tc.function = FunctionCall{oc.name, oc.arguments, {}};
        call_ids.emplace_back(oc.name, tc.id);
        m.tool_calls.push_back(std::move(tc));
      }
    }
    if (*r == Role::kTool) {
      std::string name;
      if (auto tn = jm.find("tool_name"); tn != jm.end() && tn->is_string()) name = *tn;
      std::string id = "call_" + (name.empty() ? std::to_string(i) : name);
      for (auto it = call_ids.rbegin(); it != call_ids.rend(); ++it) {
        if (name.empty() || it->first == name) {
          id = it->second;
          break;
        }
      }
      m.tool_call_id = id;
    }
    chat.messages.push_back(std::move(m));
  }
  chat.stream = true;  // Ollama's default
  if (auto s = body.find("stream"); s != body.end() && !s->is_null()) {
    if (!s->is_boolean()) return InvalidFieldError("stream", "must be a boolean");
    chat.stream = s->get<bool>();
  }
  if (auto tools = body.find("tools"); tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return InvalidFieldError("tools", "must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const std::string path = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object() ||
          !t["function"].contains("name") || !t["function"]["name"].is_string()) {
        return InvalidFieldError(path + ".function.name", "is required");
      }
      const Json& f = t["function"];
      Tool tool;
      FunctionDefinition def;
      def.name = f["name"].get<std::string>();
      if (f.contains("description") && f["description"].is_string()) {
        def.description = f["description"].get<std::string>();
      }
      if (f.contains("parameters") && f["parameters"].is_object()) {
        def.parameters = DumpJson(f["parameters"]);
      }
      tool.function = std::move(def);
      chat.tools.push_back(std::move(tool));
    }
  }
  if (auto f = body.find("format"); f != body.end() && !f->is_null()) {
    if (f->is_string() && f->get<std::string>() == "json") {
      chat.response_format = R"({"type":"json_object"})";
    } else if (f->is_object()) {
      chat.response_format =
          R"({"type":"json_schema","json_schema":{"name":"response","schema":)" +
          DumpJson(*f) + "}}";
    } else {
      return InvalidFieldError("format", "must be \"json\" or a JSON schema object");
    }
  }
  if (auto t = body.find("think"); t != body.end() && !t->is_null()) {
    if (t->is_boolean()) {
      chat.reasoning_effort = t->get<bool>() ? "medium" : "none";
    } else if (t->is_string()) {
      chat.reasoning_effort = t->get<std::string>();
    } else {
      return InvalidFieldError("think", "must be a boolean or \"low\", \"medium\", \"high\"");
    }
  }
  if (auto k = body.find("keep_alive"); k != body.end()) {
    chat.extra.emplace_back("keep_alive", DumpJson(*k));
  }
  if (auto o = body.find("options"); o != body.end() && !o->is_null()) {
    if (!o->is_object()) return InvalidFieldError("options", "must be an object");
    for (const auto& item : o->items()) {
      // Named, not structured bindings: clang 14 (the fuzz build) cannot capture those.
      const std::string name = item.key();
      const core_internal::Json& value = item.value();
      const std::string path = "options." + name;
      auto number = [&]() -> absl::StatusOr<double> {
        if (!value.is_number()) return InvalidFieldError(path, "must be a number");
        return value.get<double>();
      };
      if (name == "temperature") {
        MODEENVOY_ASSIGN_OR_RETURN(chat.temperature, number());
      } else if (name == "top_p") {
        MODEENVOY_ASSIGN_OR_RETURN(chat.top_p, number());
      } else if (name == "presence_penalty") {
        MODEENVOY_ASSIGN_OR_RETURN(chat.presence_penalty, number());
      } else if (name == "frequency_penalty") {
        MODEENVOY_ASSIGN_OR_RETURN(chat.frequency_penalty, number());
      } else if (name == "seed" || name == "num_predict") {
        if (!value.is_number_integer()) return InvalidFieldError(path, "must be an integer");
        int64_t v = value.get<int64_t>();
        if (name == "seed") {
          chat.seed = v;
        } else if (v > 0) {
          chat.max_tokens = v;  // -1 and -2 mean "no limit"
        }
      } else if (name == "stop") {
        if (!value.is_array()) return InvalidFieldError(path, "must be an array of strings");
        std::vector<std::string> stops;
        for (const Json& s : value) {
          if (!s.is_string()) return InvalidFieldError(path, "must be an array of strings");
          stops.push_back(s.get<std::string>());
        }
        if (!stops.empty()) chat.stop = std::move(stops);
      } else {
        chat.extra.emplace_back(name, DumpJson(value));
      }
    }
  }
  return chat;
}

absl::StatusOr<std::string> OllamaDialect::EncodeResponse(
    const ChatCompletion& completion) const {
  if (completion.choices.size() > 1) {
    return InvalidFieldError("choices", "ollama answers with one choice");
  }
  Json j = Json::object();
  j["model"] = completion.model;
  j["created_at"] = FormatRfc3339(completion.created);
  Json m = {{"role", "assistant"}, {"content", ""}};
  std::string finish = "stop";
  if (!completion.choices.empty()) {
    const ChatChoice& c = completion.choices[0];
    const Message& msg = c.message;
    if (msg.content.has_value()) {
      if (const auto* s = std::get_if<std::string>(&*msg.content)) {
        m["content"] = *s;
      } else {
        std::string text;
        for (const ContentPart& p : std::get<std::vector<ContentPart>>(*msg.content)) {
          if (p.type == ContentPartType::kText) text += p.text;
        }
        m["content"] = text;
      }
    }
    for (const auto& [name, value] : msg.extra) {
      if (name == "reasoning_content") {
        Json v = Json::parse(value, nullptr, false);
        if (v.is_string()) m["thinking"] = v;
      }
    }
    if (!msg.tool_calls.empty()) {
      Json calls = Json::array();
      for (const ToolCall& tc : msg.tool_calls) {
        if (!tc.function.has_value()) continue;
        Json args = Json::parse(tc.function->arguments.empty() ? "{}" : tc.function->arguments,
                                nullptr, false);
        if (!args.is_object()) args = Json::object();
        calls.push_back({{"function", {{"name", tc.function->name}, {"arguments", args}}}});
      }
      m["tool_calls"] = std::move(calls);
    }
    if (c.finish_reason.value_or("stop") == "length") finish = "length";
  }
  j["message"] = std::move(m);
  j["done_reason"] = finish;
  j["done"] = true;
  if (completion.usage.has_value()) {
    j["prompt_eval_count"] = completion.usage->prompt_tokens;
    j["eval_count"] = completion.usage->completion_tokens;
  }
  return DumpJson(j);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewOllamaDialect(std::string_view options_json) {
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::Json json,
                             core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(core_internal::ObjectReader options,
                             core_internal::ObjectReader::Make(json, ""));
  MODEENVOY_RETURN_IF_ERROR(options.RejectUnknown({"think_levels"}));
  bool think_levels = true;
  if (const core_internal::Json* v = options.Find("think_levels")) {
    if (!v->is_boolean()) return InvalidFieldError("think_levels", "must be a boolean");
    think_levels = v->get<bool>();
  }
  return std::make_unique<OllamaDialect>(think_levels);
}

}  // namespace modeenvoy::protocol_internal
