// lib/gateway/stream_usage.cc: usage taken out of unified streams, given back once, and
// estimated when the provider reported none.
#include "lib/gateway/stream_usage.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "lib/core/json_scan.h"
#include "lib/core/utf8.h"
#include "modeenvoy/gateway/usage.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int64_t CountWords(std::string_view text) {
  int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    const bool space = IsSpace(c);
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

class WordCount final : public UsageEstimator {
 public:
  std::string_view method() const override { return "word_count"; }
  int64_t PromptTokens(const ChatRequest& chat, std::string_view /*model*/) const override {
    int64_t n = 3;
    for (const Message& m : chat.messages) {
      n += 4;
      if (!m.content.has_value()) continue;
      if (const auto* text = std::get_if<std::string>(&*m.content)) {
        n += CountWords(*text);
      } else {
        for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
          n += CountWords(part.text) + CountWords(part.refusal);
        }
      }
      for (const ToolCall& call : m.tool_calls) {
        if (call.function.has_value()) n += 1 + CountWords(call.function->arguments);
      }
    }
    return n;
  }
  int64_t CompletionTokens(std::string_view text, std::string_view /*model*/) const override {
    return CountWords(text);
  }
};

}  // namespace

std::shared_ptr<const UsageEstimator> WordCountUsageEstimator() {
  static const std::shared_ptr<const UsageEstimator>* const estimator =
      new std::shared_ptr<const UsageEstimator>(std::make_shared<WordCount>());
  return *estimator;
}

namespace gateway_internal {
namespace {

using core_internal::MemberValue;
using core_internal::QuoteScanner;

// True if `data` has a "usage" member whose value is an object (keys found at every '"':
// lib/core/json_scan.h says why a key is never matched inside a value).
bool HasUsageObject(std::string_view data) {
  const char* end = data.data() + data.size();
  QuoteScanner quotes(data.data(), end, 'u');
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
    const char* v = MemberValue(p, end, "usage");
    if (v != nullptr && *v == '{') return true;
  }
  return false;
}

// True if `data` has a "choices" member whose value is an empty array (a usage-only chunk).
bool HasEmptyChoices(std::string_view data) {
  const char* end = data.data() + data.size();
  QuoteScanner quotes(data.data(), end, 'c');
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
    const char* v = MemberValue(p, end, "choices");
    if (v == nullptr || *v != '[') continue;
    ++v;
    while (v < end && core_internal::IsJsonSpaceByte(*v)) ++v;
    return v < end && *v == ']';
  }
  return false;
}

// A raw JSON string value without its quotes (escapes kept: close enough for counting).
std::string_view Unquoted(std::string_view raw) {
  if (raw.size() >= 2 && raw.front() == '"' && raw.back() == '"') {
    return raw.substr(1, raw.size() - 2);
  }
  return {};
}

// Reads 4 hex digits at p (p + 4 <= end); -1 if they are not.
int32_t Hex4(const char* p) {
  int32_t v = 0;
  for (int i = 0; i < 4; ++i) {
    char c = p[i];
    int d = c >= '0' && c <= '9' ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

// Decodes the JSON string whose content starts at p (after the opening quote) onto *out;
// returns the position after the closing quote (end if unterminated).
const char* DecodeString(const char* p, const char* end, std::string* out) {
  while (p < end) {
    const char* q = p;
    while (q < end && *q != '"' && *q != '\\') ++q;
    out->append(p, q);
    if (q == end) return end;
    if (*q == '"') return q + 1;
    if (q + 1 == end) return end;
    const char e = q[1];
    p = q + 2;
    switch (e) {
      case 'n': out->push_back('\n'); break;
      case 't': out->push_back('\t'); break;
      case 'r': out->push_back('\r'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'u': {
        int32_t cp = end - p >= 4 ? Hex4(p) : -1;
        if (cp < 0) break;
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
          int32_t low = Hex4(p + 2);
          if (low >= 0xDC00 && low < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            p += 6;
          }
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD;
        core_internal::AppendUtf8(out, static_cast<uint32_t>(cp));
        break;
      }
      default: out->push_back(e); break;  // '"', '\\', '/'
    }
  }
  return end;
}

// Appends what a chunk generated (the string values of content, refusal,
// reasoning_content, reasoning, a tool call's name and arguments) to *text without parsing
// the chunk: keys are found at every '"' as in HasUsageObject.
void AppendGeneratedText(std::string_view data, std::string* text) {
  const char* end = data.data() + data.size();
  QuoteScanner quotes(data.data(), end);
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
    auto is = [&](std::string_view k) {
      return static_cast<size_t>(end - p) > k.size() && p[k.size()] == '"' &&
             std::memcmp(p, k.data(), k.size()) == 0;
    };
    std::string_view key;
    switch (*p) {  // the first letter rules out most keys and every value
      case 'c':
        if (is("content")) key = "content";
        break;
      case 'r':
        if (is("reasoning_content")) {
          key = "reasoning_content";
        } else if (is("reasoning")) {
          key = "reasoning";
        } else if (is("refusal")) {
          key = "refusal";
        }
        break;
      case 'a':
        if (is("arguments")) key = "arguments";
        break;
      case 'n':
        if (is("name")) key = "name";
        break;
      default:
        break;
    }
    if (key.empty()) continue;
    const char* v = p + key.size() + 1;
    while (v < end && IsSpace(*v)) ++v;
    if (v == end || *v != ':') continue;
    ++v;
    while (v < end && IsSpace(*v)) ++v;
    if (v == end || *v != '"') continue;
    quotes.SkipTo(DecodeString(v + 1, end, text));
    if (key == "name") text->push_back(' ');
  }
}

}  // namespace

void StreamUsage::Start(const ChatRequest* chat, std::string model,
                        const UsageEstimator* estimator, bool track, bool promised) {
  chat_ = chat;
  promised_ = promised;
  model_ = std::move(model);
  estimator_ = estimator;
  wants_ = chat->stream_options.has_value() &&
           chat->stream_options->include_usage.value_or(false);
  track_ = track || wants_;
}

void StreamUsage::Filter(std::vector<SseEvent>* events) {
  if (chat_ == nullptr) return;
  size_t first_special = events->size();
  for (size_t i = 0; i < events->size(); ++i) {
    const std::string& data = (*events)[i].data;
    // A translator that keeps the usage promise puts usage only on the event right before
    // "[DONE]" (in the same batch): no other event needs a look.
    const bool special =
        promised_ ? data == kSseDoneData ||
                        (i + 1 < events->size() && (*events)[i + 1].data == kSseDoneData)
                  : data == kSseDoneData || HasUsageObject(data);
    if (special) {
      first_special = i;
      break;
    }
    if (track_ && !usage_.has_value()) Take((*events)[i], nullptr);
  }
  if (first_special == events->size()) return;
  scratch_.clear();
  for (size_t i = 0; i < events->size(); ++i) {
    if (i < first_special) {
      scratch_.push_back(std::move((*events)[i]));
    } else {
      Take((*events)[i], &scratch_);
    }
  }
  events->swap(scratch_);
  scratch_.clear();
}

// With `out` null: only reads the chunk's text (tracking). Else appends what the client
// gets for `event`.
void StreamUsage::Take(SseEvent& event, std::vector<SseEvent>* out) {
  if (event.data == kSseDoneData) {
    if (out == nullptr || done_) return;
    done_ = true;
    if (wants_) {
      if (!usage_event_.has_value() && !usage_.has_value()) {
        ChatCompletionChunk chunk;
        chunk.id = id_;
        chunk.created = created_;
        chunk.model = chunk_model_;
        chunk.usage = Estimate();
        usage_event_ = SerializeChatCompletionChunk(chunk);
      }
      if (usage_event_.has_value()) {
        SseEvent usage;
        usage.data = std::move(*usage_event_);
        usage_event_.reset();
        out->push_back(std::move(usage));
      }
    }
    out->push_back(std::move(event));
    return;
  }
  const bool has_usage = out != nullptr && HasUsageObject(event.data);
  // Once usage came, the text is not needed: a stream cut short later keeps that usage.
  const bool tracking = track_ && !usage_.has_value();
  if (!has_usage && !tracking) {
    if (out != nullptr) out->push_back(std::move(event));
    return;
  }
  if (has_usage && !track_ && !wants_ && HasEmptyChoices(event.data)) {
    return;  // a usage-only chunk nobody reads: dropped unparsed
  }
  if (!has_usage && !id_.empty()) {  // the envelope is known: read the text cheaply
    // Before the last event of a promised stream, its usage will most likely come: the
    // bytes are kept and read only if it does not.
    if (promised_ && out == nullptr) {
      Keep(event.data);
    } else {
      ReadKept();  // the text in the order it came
      AppendGeneratedText(event.data, &text_);
    }
    if (out != nullptr) out->push_back(std::move(event));
    return;
  }
  absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(event.data);
  if (!chunk.ok()) {  // not ours to judge: the client gets it as it came
    if (out != nullptr) out->push_back(std::move(event));
    return;
  }
  if (!chunk->id.empty()) id_ = chunk->id;
  if (!chunk->model.empty()) chunk_model_ = chunk->model;
  if (chunk->created != 0) created_ = chunk->created;
  if (tracking) {
    for (const ChunkChoice& choice : chunk->choices) {
      const ChatDelta& d = choice.delta;
      if (d.content.has_value()) text_ += *d.content;
      if (d.refusal.has_value()) text_ += *d.refusal;
      for (const auto& [key, value] : d.extra) {
        if (key == "reasoning_content" || key == "reasoning") text_ += Unquoted(value);
      }
      for (const ToolCallDelta& call : d.tool_calls) {
        if (!call.function.has_value()) continue;
        if (call.function->name.has_value()) text_.append(*call.function->name).push_back(' ');
        if (call.function->arguments.has_value()) text_ += *call.function->arguments;
      }
    }
  }
  if (!has_usage || !chunk->usage.has_value()) {
    if (out != nullptr) out->push_back(std::move(event));
    return;
  }
  usage_ = std::move(chunk->usage);
  chunk->usage.reset();
  kept_ = std::string();  // their text is not needed any more
  kept_ends_ = std::vector<size_t>();
  if (chunk->choices.empty()) {
    usage_event_ = std::move(event.data);  // kept as the provider's dialect wrote it
    return;
  }
  ChatCompletionChunk only;
  only.id = chunk->id;
  only.created = chunk->created;
  only.model = chunk->model;
  only.system_fingerprint = chunk->system_fingerprint;
  only.usage = usage_;
  usage_event_ = SerializeChatCompletionChunk(only);
  event.data = SerializeChatCompletionChunk(*chunk);
  out->push_back(std::move(event));
}

void StreamUsage::Keep(std::string_view data) {
  if (kept_.size() + data.size() > kKeptBytesBound) ReadKept();
  if (data.size() > kKeptBytesBound) {
    AppendGeneratedText(data, &text_);
    return;
  }
  kept_.append(data);
  kept_ends_.push_back(kept_.size());
}

void StreamUsage::ReadKept() {
  // One event at a time: a malformed one cannot shift how the next one is read.
  size_t begin = 0;
  for (size_t end : kept_ends_) {
    AppendGeneratedText(std::string_view(kept_).substr(begin, end - begin), &text_);
    begin = end;
  }
  kept_.clear();
  kept_ends_.clear();
}

Usage StreamUsage::Estimate() {
  ReadKept();
  Usage usage;
  usage.prompt_tokens = estimator_->PromptTokens(*chat_, model_);
  usage.completion_tokens = estimator_->CompletionTokens(text_, model_);
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  usage.extra.emplace_back("estimated", "true");
  std::string method = "\"";
  method += estimator_->method();  // a plain identifier
  method += "\"";
  usage.extra.emplace_back("estimation_method", std::move(method));
  return usage;
}

std::optional<Usage> StreamUsage::Final(bool* estimated) {
  *estimated = false;
  if (usage_.has_value()) return usage_;
  if (chat_ == nullptr || !track_) return std::nullopt;
  *estimated = true;
  return Estimate();
}

}  // namespace gateway_internal
}  // namespace modeenvoy
