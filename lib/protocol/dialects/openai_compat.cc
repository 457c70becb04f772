// lib/protocol/dialects/openai_compat.cc: what the OpenAI-compatible dialects share: the
// request body with include_usage, and the stream decoder that fixes the family's quirks.
#include "lib/protocol/dialects/openai_compat.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "lib/core/json_scan.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/chat_serialize.h"
#include "lib/protocol/dialects/thinking.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/bad_upstream.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"

namespace modeenvoy::protocol_internal {
namespace {

constexpr std::string_view kChunkObject = "chat.completion.chunk";

// Bounds on the decoder's state: choices tracked and tool calls remembered per stream.
constexpr int64_t kMaxChoices = 128;
constexpr size_t kMaxToolCalls = 4096;

using core_internal::IsJsonSpaceByte;
using core_internal::MemberValue;
using core_internal::QuoteScanner;

// ---- The family's quirks as data ----

// OpenAI's service tiers: the only values its clients read (the openai SDK's
// ChatCompletion.service_tier is a Literal of these).
constexpr std::string_view kOpenAiServiceTiers[] = {"auto", "default", "flex", "scale",
                                                    "priority"};

// Another server's service tier does not stay in "service_tier" (an OpenAI client would
// refuse the whole answer); it moves to the member named here for the server that uses it,
// in whole bodies and stream chunks alike. A tier no row names moves to
// kOtherServiceTierMember.
struct ForeignServiceTier {
  std::string_view tier;
  std::string_view member;
};
constexpr ForeignServiceTier kForeignServiceTiers[] = {
    {"on_demand", "x_groq_service_tier"},    // Groq's default tier
    {"performance", "x_groq_service_tier"},  // Groq's
};
constexpr std::string_view kOtherServiceTierMember = "x_service_tier";

// Where the text of "thinking" content parts (Mistral's reasoning models) goes: the member
// the family uses for reasoning (DeepSeek and xAI send it; the other dialects write it).
constexpr std::string_view kReasoningMember = "reasoning_content";

bool IsOpenAiServiceTier(std::string_view tier) {
  for (std::string_view t : kOpenAiServiceTiers) {
    if (t == tier) return true;
  }
  return false;
}

std::string_view ForeignServiceTierMember(std::string_view tier) {
  for (const ForeignServiceTier& row : kForeignServiceTiers) {
    if (row.tier == tier) return row.member;
  }
  return kOtherServiceTierMember;
}

ExtraFields::iterator FindExtraMember(ExtraFields* extra, std::string_view name) {
  for (auto it = extra->begin(); it != extra->end(); ++it) {
    if (it->first == name) return it;
  }
  return extra->end();
}

void SetExtraMember(ExtraFields* extra, std::string_view name, std::string raw_json) {
  auto it = FindExtraMember(extra, name);
  if (it != extra->end()) {
    it->second = std::move(raw_json);
  } else {
    extra->emplace_back(std::string(name), std::move(raw_json));
  }
}

// Moves a service tier OpenAI's clients cannot read to its member in `extra`. True if moved.
bool MoveForeignServiceTier(std::optional<std::string>* tier, ExtraFields* extra) {
  if (!tier->has_value() || IsOpenAiServiceTier(**tier)) return false;
  std::string value;
  AppendJsonString(&value, **tier);
  SetExtraMember(extra, ForeignServiceTierMember(**tier), std::move(value));
  tier->reset();
  return true;
}

// Text and reasoning read from content parts; nullopt where no part of that kind came.
struct SplitParts {
  std::optional<std::string> text;
  std::optional<std::string> reasoning;
};

// Reads an array of content parts as Mistral sends them: {"type":"text","text":...} and,
// when `thinking` is true, {"type":"thinking","thinking":[text parts]}. False for anything
// else (another type, another member, not an array): such content stays as sent.
bool ReadContentParts(JsonReader& r, bool thinking, SplitParts* out) {
  bool first = true, has = false;
  if (!r.BeginArray()) return false;
  std::string scratch;
  while (r.NextElement(&first, &has) && has) {
    if (!r.BeginObject()) return false;
    std::string type, text;
    bool has_text = false, member_first = true, member_has = false;
    std::optional<SplitParts> inner;
    std::string_view key;
    while (r.NextMember(&member_first, &key, &scratch, &member_has) && member_has) {
      if (key == "type" && type.empty()) {
        if (!r.ReadString(&type)) return false;
      } else if (key == "text" && !has_text) {
        if (!r.ReadString(&text)) return false;
        has_text = true;
      } else if (key == "thinking" && thinking && !inner.has_value()) {
        if (!ReadContentParts(r, /*thinking=*/false, &inner.emplace())) return false;
      } else {
        return false;
      }
    }
    if (!r.status().ok()) return false;
    if (type == "text" && has_text && !inner.has_value()) {
      if (!out->text.has_value()) out->text.emplace();
      out->text->append(text);
    } else if (type == "thinking" && inner.has_value() && !has_text) {
      if (!out->reasoning.has_value()) out->reasoning.emplace();
      if (inner->text.has_value()) out->reasoning->append(*inner->text);
    } else {
      return false;
    }
  }
  return r.status().ok();
}

bool SplitContentParts(std::string_view parts_json, SplitParts* out) {
  JsonReader r(parts_json, kMaxJsonDepth);
  return ReadContentParts(r, /*thinking=*/true, out) && r.ExpectEnd();
}

// The same parts as ParseChatCompletion keeps them in a message: "text" as kText, a
// "thinking" part as kOther with its members in `extra`.
bool SplitParsedParts(const std::vector<ContentPart>& parts, SplitParts* out) {
  for (const ContentPart& part : parts) {
    if (part.type == ContentPartType::kText && part.extra.empty()) {
      if (!out->text.has_value()) out->text.emplace();
      out->text->append(part.text);
      continue;
    }
    if (part.type != ContentPartType::kOther || part.extra.size() != 2) return false;
    const std::string* type = nullptr;
    const std::string* thinking = nullptr;
    for (const auto& [name, value] : part.extra) {
      if (name == "type") type = &value;
      if (name == "thinking") thinking = &value;
    }
    if (type == nullptr || thinking == nullptr || *type != "\"thinking\"") return false;
    JsonReader r(*thinking, kMaxJsonDepth);
    SplitParts inner;
    if (!ReadContentParts(r, /*thinking=*/false, &inner) || !r.ExpectEnd()) return false;
    if (!out->reasoning.has_value()) out->reasoning.emplace();
    if (inner.text.has_value()) out->reasoning->append(*inner.text);
  }
  return true;
}

// Puts split parts where OpenAI's clients read them: the text as the content string (none:
// no content), the reasoning in kReasoningMember of `extra`. False (nothing changed) when
// `extra` already has that member: the parts then stay as sent rather than overwrite it.
bool PlaceSplitParts(SplitParts parts, std::optional<std::string>* content, ExtraFields* extra) {
  if (parts.reasoning.has_value() && FindExtraMember(extra, kReasoningMember) != extra->end()) {
    return false;
  }
  *content = std::move(parts.text);
  if (parts.reasoning.has_value()) {
    std::string value;
    AppendJsonString(&value, *parts.reasoning);
    extra->emplace_back(std::string(kReasoningMember), std::move(value));
  }
  return true;
}

// A message whose content is an array of text and thinking parts, normalized. True if changed.
bool NormalizeMessageParts(Message* message) {
  if (!message->content.has_value()) return false;
  const auto* parts = std::get_if<std::vector<ContentPart>>(&*message->content);
  SplitParts split;
  if (parts == nullptr || !SplitParsedParts(*parts, &split)) return false;
  std::optional<std::string> text;
  ExtraFields extra = message->extra;
  if (!PlaceSplitParts(std::move(split), &text, &extra)) return false;
  if (text.has_value()) {
    message->content = std::move(*text);
  } else {
    message->content.reset();
  }
  message->extra = std::move(extra);
  return true;
}

// A delta whose content came as an array (kept in extra "content"), normalized. True if
// changed.
bool NormalizeDeltaParts(ChatDelta* delta) {
  auto it = FindExtraMember(&delta->extra, "content");
  SplitParts split;
  if (it == delta->extra.end() || !SplitContentParts(it->second, &split)) return false;
  ExtraFields extra = delta->extra;
  extra.erase(extra.begin() + (it - delta->extra.begin()));
  if (!PlaceSplitParts(std::move(split), &delta->content, &extra)) return false;
  delta->extra = std::move(extra);
  return true;
}

// The status for a 2xx body that is not an answer: the upstream failed (502), which is not
// the provider's own error; `why` names the field path or the JSON error.
absl::Status NotAnAnswer(absl::string_view why) {
  return BadUpstreamResponse(core_internal::ToStd(
      absl::StrCat("the upstream's 2xx body is not a Chat Completions answer: ", why)));
}

// True unless the JSON string at `v` (its opening quote) is one of OpenAI's service tiers,
// compared in place (a tier with an escape is no match, which only costs the slow path).
// Out of line: Marks runs on every chunk and most have OpenAI's tier or none.
[[gnu::noinline]] bool ForeignServiceTierValue(const char* v, const char* end) {
  ++v;
  for (std::string_view tier : kOpenAiServiceTiers) {
    if (static_cast<size_t>(end - v) > tier.size() &&
        std::memcmp(v, tier.data(), tier.size()) == 0 && v[tier.size()] == '"') {
      return false;
    }
  }
  return true;
}

// One tool call of one choice, as the decoder has seen it.
struct SeenCall {
  std::string id;
  std::string name;
  int64_t provider_index = 0;
  int64_t index = 0;  // the unified (dense) index
};

struct ChoiceState {
  std::vector<SeenCall> calls;
  bool finished = false;
};

// What Marks() found in a chunk.
constexpr unsigned kUsageMark = 1;         // a "usage" object
constexpr unsigned kFinishMark = 2;        // a string "finish_reason"
constexpr unsigned kEmptyChoicesMark = 4;  // "choices":[]
constexpr unsigned kOtherMark = 8;         // tool calls, x_groq, an error, a quirk to fix

class OpenAiStreamDecoder final : public StreamTranslator {
 public:
  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (done_) return absl::OkStatus();  // nothing counts after [DONE]
    if (frame.data == kSseDoneData) {
      Close(out);
      return absl::OkStatus();
    }
    const unsigned marks = Marks(frame.data);
    // Most chunks need nothing; a finish and the usage-only chunk need a narrow read.
    if (marks == 0 || (marks == kFinishMark && RecordFinishes(frame.data))) {
      return Pass(&frame, out);
    }
    if (marks == (kUsageMark | kEmptyChoicesMark) && HoldUsageOnly(&frame.data)) {
      return absl::OkStatus();
    }
    return Fix(std::move(frame), out);
  }

  absl::Status Finish(std::vector<SseEvent>* out) override {
    if (!done_) Close(out);
    return absl::OkStatus();
  }

  // Usage is taken off every chunk (Fix) and given back only by Close, with "[DONE]".
  bool KeepsUsagePromise() const override { return true; }

 private:
  // The held usage (if any), then "[DONE]".
  void Close(std::vector<SseEvent>* out) {
    done_ = true;
    if (usage_event_.has_value()) {
      SseEvent event;
      event.data = std::move(*usage_event_);
      out->push_back(std::move(event));
      usage_event_.reset();
    }
    SseEvent done;
    done.data = std::string(kSseDoneData);
    out->push_back(std::move(done));
  }

  absl::Status Fix(StreamFrame frame, std::vector<SseEvent>* out) {
    absl::StatusOr<ChatCompletionChunk> parsed = ParseChatCompletionChunk(frame.data);
    if (!parsed.ok()) {
      // An error event of another shape (e.g. {"error":"text"}) still is an error.
      if (frame.data.find("\"error\"") != std::string::npos) {
        return StatusFromUpstreamError(200, frame.data);
      }
      return parsed.status();
    }
    ChatCompletionChunk& chunk = *parsed;
    if (chunk.choices.empty() && (chunk.object == "error" || HasExtra(chunk.extra, "error"))) {
      return StatusFromUpstreamError(200, frame.data);
    }
    const bool tier_moved = MoveForeignServiceTier(&chunk.service_tier, &chunk.extra);
    bool changed = tier_moved;
    std::optional<Usage> usage = std::move(chunk.usage);
    if (usage.has_value()) {
      chunk.usage.reset();
      changed = true;
    } else if (const std::string* groq = FindExtra(chunk.extra, "x_groq")) {
      usage = GroqUsage(*groq);
    }
    if (chunk.choices.empty()) {
      if (!usage.has_value()) {
        // e.g. Azure's prompt_filter_results, which its model router sends with "object":""
        // and others with no object, id or model: written again with the members every
        // client's chunk type requires (a missing "object" parses as the default one).
        chunk.object = std::string(kChunkObject);
        SseEvent event;
        event.event = std::move(frame.event);
        event.data = SerializeChatCompletionChunk(chunk);
        out->push_back(std::move(event));
        return absl::OkStatus();
      }
      // A usage-only chunk: held as sent (or as fixed), for the end.
      if (tier_moved) {
        chunk.usage = std::move(usage);
        usage_event_ = SerializeChatCompletionChunk(chunk);
      } else {
        usage_event_ = std::move(frame.data);
      }
      return absl::OkStatus();
    }
    if (usage.has_value()) HoldUsage(chunk, std::move(*usage));
    for (ChunkChoice& choice : chunk.choices) {
      MODEENVOY_RETURN_IF_ERROR(FixChoice(&choice, &changed));
    }
    if (!changed) return Pass(&frame, out);
    SseEvent event;
    event.event = std::move(frame.event);
    event.data = SerializeChatCompletionChunk(chunk);
    out->push_back(std::move(event));
    return absl::OkStatus();
  }

  // Moves *frame's strings into a new event at the end of *out, built in place (no
  // SseEvent of its own to move in and destroy).
  static absl::Status Pass(StreamFrame* frame, std::vector<SseEvent>* out) {
    SseEvent& event = out->emplace_back();
    event.event = std::move(frame->event);
    event.data = std::move(frame->data);
    return absl::OkStatus();
  }

  static const std::string* FindExtra(const ExtraFields& extra, std::string_view name) {
    for (const auto& [key, value] : extra) {
      if (key == name) return &value;
    }
    return nullptr;
  }
  static bool HasExtra(const ExtraFields& extra, std::string_view name) {
    return FindExtra(extra, name) != nullptr;
  }

  // Groq's {"id":...,"usage":{...}} as a Usage, if it has one.
  static std::optional<Usage> GroqUsage(const std::string& x_groq) {
    if (x_groq.find("\"usage\"") == std::string::npos) return std::nullopt;
    // x_groq is raw JSON of an object; read it as a chunk to reach its "usage" member.
    absl::StatusOr<ChatCompletionChunk> wrapped = ParseChatCompletionChunk(x_groq);
    if (!wrapped.ok() || !wrapped->usage.has_value()) return std::nullopt;
    return std::move(wrapped->usage);
  }

  // Keeps `usage` (the latest wins) as a usage-only chunk with `chunk`'s envelope.
  void HoldUsage(const ChatCompletionChunk& chunk, Usage usage) {
    ChatCompletionChunk only;
    only.id = chunk.id;
    only.created = chunk.created;
    only.model = chunk.model;
    only.system_fingerprint = chunk.system_fingerprint;
    only.service_tier = chunk.service_tier;
    only.usage = std::move(usage);
    usage_event_ = SerializeChatCompletionChunk(only);
  }

  absl::Status FixChoice(ChunkChoice* choice, bool* changed) {
    if (choice->index < 0 || choice->index >= kMaxChoices) {
      return InvalidFieldError("choices[].index", "out of range");
    }
    if (static_cast<size_t>(choice->index) >= choices_.size()) {
      choices_.resize(static_cast<size_t>(choice->index) + 1);
    }
    ChoiceState& state = choices_[static_cast<size_t>(choice->index)];
    if (NormalizeDeltaParts(&choice->delta)) *changed = true;
    if (choice->finish_reason.has_value()) {
      if (choice->finish_reason->empty() || state.finished) {
        choice->finish_reason.reset();
        *changed = true;
      } else {
        state.finished = true;
      }
    }
    for (ToolCallDelta& delta : choice->delta.tool_calls) {
      MODEENVOY_RETURN_IF_ERROR(FixToolCall(&state, &delta, changed));
    }
    return absl::OkStatus();
  }

  absl::Status FixToolCall(ChoiceState* state, ToolCallDelta* delta, bool* changed) {
    SeenCall* call = nullptr;
    const bool has_id = delta->id.has_value() && !delta->id->empty();
    if (has_id) {
      for (SeenCall& c : state->calls) {
        if (c.id == *delta->id) call = &c;
      }
    } else {
      // No id: the latest call the provider gave this index, else the latest call.
      for (SeenCall& c : state->calls) {
        if (c.provider_index == delta->index) call = &c;
      }
      if (call == nullptr && !state->calls.empty()) call = &state->calls.back();
    }
    if (call == nullptr) {  // a new call
      if (++tool_calls_ > kMaxToolCalls) {
        return InvalidFieldError("choices[].delta.tool_calls", "too many tool calls");
      }
      SeenCall seen;
      if (has_id) seen.id = *delta->id;
      seen.provider_index = delta->index;
      seen.index = static_cast<int64_t>(state->calls.size());
      if (delta->function.has_value() && delta->function->name.has_value()) {
        seen.name = *delta->function->name;
      }
      if (delta->index != seen.index) {
        delta->index = seen.index;
        *changed = true;
      }
      if (!delta->type.has_value() && delta->function.has_value()) {
        delta->type = "function";
        *changed = true;
      }
      state->calls.push_back(std::move(seen));
      return absl::OkStatus();
    }
    // A later delta of a known call: only the new arguments (and a name not sent yet).
    if (delta->index != call->index) {
      delta->index = call->index;
      *changed = true;
    }
    if (delta->id.has_value()) {
      delta->id.reset();
      *changed = true;
    }
    if (delta->type.has_value()) {
      delta->type.reset();
      *changed = true;
    }
    if (delta->function.has_value() && delta->function->name.has_value()) {
      std::string& name = *delta->function->name;
      if (call->name.empty() && !name.empty()) {
        call->name = name;
      } else {
        delta->function->name.reset();
        *changed = true;
      }
    }
    return absl::OkStatus();
  }

  // What in `data` may need fixing (0: nothing): a "usage" object, "tool_calls", "x_groq",
  // a string "finish_reason", an empty "choices" array, an "error" member,
  // "object":"error", a "content" array or a "service_tier" OpenAI does not have. Keys are
  // found at every '"' (lib/core/json_scan.h says why that finds keys only); a false
  // positive only costs a slower path.
  // A stream's chunks mostly repeat one envelope ("id", "object", "created", "model", ...)
  // before "choices": when a chunk starts with the bytes of a clean chunk's envelope (up to
  // and including its `"choices":[`), the scan starts at that "choices" key (whose
  // empty-array check reads past the envelope). The quotes before it need no second look:
  // a check that starts there and reads past the envelope has met the '"' opening
  // "choices", which no name it compares holds, so the same bytes gave the same answer.
  // Past the envelope, a chunk of the latest clean chunk's shape (MatchesShape) needs no
  // scan at all.
  unsigned Marks(std::string_view data) {
    const char* begin = data.data();
    const char* end = begin + data.size();
    const char* from = begin;
    if (!envelope_.empty() && data.size() > envelope_.size() &&
        std::memcmp(begin, envelope_.data(), envelope_.size()) == 0) {
      from = begin + envelope_choices_;
      if (!shape_.empty() && MatchesShape(from, end)) return 0;
    }
    const char* choices_key = nullptr;  // the quote opening the first "choices":[ key
    const char* choices_open = nullptr;  // just after its '['
    unsigned marks = 0;
    QuoteScanner quotes(from, end);
    for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
      const char* v = nullptr;
      switch (*p) {  // the first letter rules out most keys and every value
        case 'u':
          if ((v = MemberValue(p, end, "usage")) != nullptr && *v == '{') marks |= kUsageMark;
          break;
        case 't':
          if (MemberValue(p, end, "tool_calls") != nullptr) marks |= kOtherMark;
          break;
        case 'x':
          if (MemberValue(p, end, "x_groq") != nullptr) marks |= kOtherMark;
          break;
        case 'f':
          if ((v = MemberValue(p, end, "finish_reason")) != nullptr && *v == '"') {
            marks |= kFinishMark;
          }
          break;
        case 'c':
          // "choices" and "content" (every chunk has both) told apart by their second
          // byte, so each costs one comparison.
          if (end - p < 2) break;
          if (p[1] == 'h') {
            if ((v = MemberValue(p, end, "choices")) != nullptr && *v == '[') {
              ++v;
              if (choices_key == nullptr) {
                choices_key = p - 1;
                choices_open = v;
              }
              while (v < end && IsJsonSpaceByte(*v)) ++v;
              if (v < end && *v == ']') marks |= kEmptyChoicesMark;
            }
          } else if (p[1] == 'o' && (v = MemberValue(p, end, "content")) != nullptr &&
                     *v == '[') {
            marks |= kOtherMark;  // content parts (Mistral's reasoning models)
          }
          break;
        case 's':
          // "service_tier" with a value OpenAI's clients cannot read (not
          // "system_fingerprint", told apart by the second byte).
          if (end - p >= 2 && p[1] == 'e' &&
              (v = MemberValue(p, end, "service_tier")) != nullptr && *v == '"' &&
              ForeignServiceTierValue(v, end)) {
            marks |= kOtherMark;
          }
          break;
        case 'e':
          if (MemberValue(p, end, "error") != nullptr) marks |= kOtherMark;
          break;
        case 'o':
          if ((v = MemberValue(p, end, "object")) != nullptr && end - v >= 7 &&
              std::memcmp(v, "\"error\"", 7) == 0) {
            marks |= kOtherMark;
          }
          break;
        default:
          break;
      }
    }
    if (marks == 0 && from == begin && choices_key != nullptr) {  // clean: keep its envelope
      // Its shape is not kept: a new envelope comes with a stream's first chunk, whose
      // shape (OpenAI's role chunk) the content chunks after it do not have. The next
      // clean chunk with this envelope keeps its own.
      envelope_.assign(begin, choices_open);
      envelope_choices_ = static_cast<size_t>(choices_key - begin);
      shape_.clear();
      shape_cuts_.clear();
    } else if (marks == 0 && from != begin) {  // clean, with the envelope: a new shape
      KeepShape(from, end);
    }
    return marks;
  }

  // The position of the '"' ending the JSON string whose content starts at p, or end.
  static const char* StringEnd(const char* p, const char* end) {
    while (p < end) {
      if (*p == '"') return p;
      if (*p == '\\' && end - p < 2) return end;
      p += *p == '\\' ? 2 : 1;
    }
    return end;
  }

  // Keeps the shape of a clean chunk's [p, end) (from the quote opening its "choices" key):
  // its bytes with the content of every string value cut out, except "object"'s (Marks
  // reads that one). Keys, numbers, literals, brackets and the quotes stay.
  void KeepShape(const char* p, const char* end) {
    shape_.clear();
    shape_cuts_.clear();
    std::string_view key;
    const char* run = p;  // the bytes from here on are not in shape_ yet
    while (p < end) {
      if (*p != '"') {
        ++p;
        continue;
      }
      const char* open = p + 1;
      const char* close = StringEnd(open, end);
      if (close == end) {  // not JSON: no shape
        shape_.clear();
        shape_cuts_.clear();
        return;
      }
      const char* after = close + 1;
      while (after < end && IsJsonSpaceByte(*after)) ++after;
      if (after < end && *after == ':') {
        key = std::string_view(open, static_cast<size_t>(close - open));
      } else if (key != "object") {
        shape_.append(run, open);
        shape_cuts_.push_back(shape_.size());
        run = close;
      }
      p = close + 1;
    }
    shape_.append(run, end);
  }

  // True if [p, end) is the kept shape with any string contents in its cuts. Such a chunk
  // has the clean chunk's keys, value types, brackets, "object" and literals, and differs
  // only inside string values, where no key is (lib/core/json_scan.h): Marks would find
  // what it found in the clean chunk, nothing.
  bool MatchesShape(const char* p, const char* end) const {
    size_t done = 0;
    for (size_t cut : shape_cuts_) {
      const size_t n = cut - done;
      if (static_cast<size_t>(end - p) < n || std::memcmp(p, shape_.data() + done, n) != 0) {
        return false;
      }
      p = StringEnd(p + n, end);
      if (p == end) return false;
      done = cut;
    }
    const size_t n = shape_.size() - done;
    return static_cast<size_t>(end - p) == n && std::memcmp(p, shape_.data() + done, n) == 0;
  }

  // A chunk whose only mark is a string finish_reason: reads each choice's index and
  // finish_reason (no other value is decoded) and records the finishes. False, having
  // changed nothing, when Fix must look: a finish_reason to drop (empty, or a second one
  // for its choice), an index out of range, or text the reader refuses (Fix says why).
  bool RecordFinishes(std::string_view data) {
    JsonReader r(data, kMaxJsonDepth);
    bool first = true, has = false;
    std::string_view key;
    std::string scratch;
    absl::InlinedVector<int64_t, 2> finished;
    if (!r.BeginObject()) return false;
    while (r.NextMember(&first, &key, &scratch, &has) && has) {
      if (key != "choices") {
        if (!r.SkipValue()) return false;
        continue;
      }
      bool first_choice = true, has_choice = false;
      if (!r.BeginArray()) return false;
      while (r.NextElement(&first_choice, &has_choice) && has_choice) {
        int64_t index = 0;
        bool finish = false;
        bool first_member = true, has_member = false;
        if (!r.BeginObject()) return false;
        while (r.NextMember(&first_member, &key, &scratch, &has_member) && has_member) {
          JsonType type;
          if (key == "index") {
            std::string_view number;
            if (!r.ReadNumber(&number) || !NumberToInt64(number, &index)) return false;
          } else if (key == "finish_reason" && r.Peek(&type) && type == JsonType::kString) {
            std::string_view reason;
            if (!r.ReadString(&reason, &scratch) || reason.empty()) return false;
            finish = true;
          } else if (!r.SkipValue()) {
            return false;
          }
        }
        if (!r.status().ok()) return false;
        if (!finish) continue;
        if (index < 0 || index >= kMaxChoices) return false;
        const size_t i = static_cast<size_t>(index);
        if (i < choices_.size() && choices_[i].finished) return false;
        if (std::find(finished.begin(), finished.end(), index) != finished.end()) return false;
        finished.push_back(index);
      }
    }
    if (!r.status().ok() || !r.ExpectEnd()) return false;
    for (int64_t index : finished) {
      const size_t i = static_cast<size_t>(index);
      if (i >= choices_.size()) choices_.resize(i + 1);
      choices_[i].finished = true;
    }
    return true;
  }

  // A chunk whose only marks are a "usage" object and an empty "choices" array: held as
  // sent when it is one (valid JSON whose top-level "choices" is empty and "usage" an
  // object): what Fix would do, without decoding a value. The usage's members are read
  // where usage is read (the gateway parses this chunk when a client or a filter wants the
  // usage, and drops it unread otherwise). False when Fix must look.
  bool HoldUsageOnly(std::string* data) {
    JsonReader r(*data, kMaxJsonDepth);
    bool first = true, has = false, choices = false, usage = false;
    std::string_view key;
    std::string scratch;
    if (!r.BeginObject()) return false;
    while (r.NextMember(&first, &key, &scratch, &has) && has) {
      JsonType type;
      if (key == "choices") {
        bool first_choice = true, has_choice = false;
        if (!r.BeginArray() || !r.NextElement(&first_choice, &has_choice) || has_choice) {
          return false;
        }
        choices = true;
      } else if (key == "usage" && r.Peek(&type) && type == JsonType::kObject) {
        if (!r.SkipValue()) return false;
        usage = true;
      } else if (!r.SkipValue()) {
        return false;
      }
    }
    if (!r.status().ok() || !r.ExpectEnd() || !choices || !usage) return false;
    usage_event_ = std::move(*data);
    return true;
  }

  bool done_ = false;
  std::optional<std::string> usage_event_;
  std::vector<ChoiceState> choices_;
  size_t tool_calls_ = 0;
  // The envelope of the latest clean chunk, up to and including `"choices":[`, and the
  // offset of the quote opening its "choices" key (Marks).
  std::string envelope_;
  size_t envelope_choices_ = 0;
  // The shape of the latest clean chunk with that envelope, from its "choices" key on
  // (KeepShape): shape_ its bytes with string contents cut out, shape_cuts_ where they
  // were. Empty: none.
  std::string shape_;
  std::vector<size_t> shape_cuts_;
};

}  // namespace

namespace {

std::string RequestBody(const ChatRequest& chat, std::string_view model, bool stream,
                        bool stream_usage, bool usage_read) {
  const bool replace_model = !model.empty() && model != chat.model;
  const bool want_usage = stream && stream_usage && usage_read;
  const bool usage_set = chat.stream_options.has_value() &&
                         chat.stream_options->include_usage.value_or(false);
  // A server that rejects stream_options (stream_usage false) gets none, not even the
  // client's: the gateway then estimates the usage.
  const bool drop_options = !stream_usage && chat.stream_options.has_value();
  if (!replace_model && !drop_options && (!want_usage || usage_set)) {
    return SerializeChatRequest(chat);
  }
  if (!replace_model && !drop_options && !chat.stream_options.has_value()) {
    // The common case: splice the member in rather than copy the request.
    std::string body = SerializeChatRequest(chat);
    constexpr std::string_view kMember = "\"stream_options\":{\"include_usage\":true}";
    if (body.size() >= 2 && body.front() == '{') {
      body.insert(1, body.size() == 2 ? std::string(kMember) : std::string(kMember) + ",");
    }
    return body;
  }
  // The engine's common case (the upstream model differs from the public one): written in
  // place, not on a copy of the request.
  ChatRequestOverrides overrides;
  if (replace_model) overrides.model = model;
  overrides.drop_stream_options = drop_options;
  overrides.include_usage = want_usage;
  return SerializeChatRequest(chat, overrides);
}

}  // namespace

absl::StatusOr<std::string> OpenAiRequestBody(const ChatRequest& chat, std::string_view model,
                                              bool stream, bool stream_usage, bool usage_read) {
  MODEENVOY_ASSIGN_OR_RETURN(const std::optional<ThinkingSetting> thinking,
                             ReadThinking(chat.extra));
  const bool anthropic_only = std::any_of(chat.extra.begin(), chat.extra.end(), [](const auto& m) {
    return IsAnthropicOnlyMember(m.first);
  });
  if (!thinking.has_value() && !anthropic_only) {
    return RequestBody(chat, model, stream, stream_usage, usage_read);
  }
  // Anthropic's thinking and context_management (Claude Code sends both) are unknown
  // arguments to OpenAI, which refuses them: thinking goes as reasoning_effort instead,
  // unless the client gave one (that wins); context_management is left out. A copy, made
  // only for such a request.
  ChatRequest mapped = chat;
  std::erase_if(mapped.extra, [](const auto& member) {
    return member.first == "thinking" || IsAnthropicOnlyMember(member.first);
  });
  if (thinking.has_value() && !mapped.reasoning_effort.has_value()) {
    if (std::optional<std::string_view> effort = ThinkingEffort(*thinking)) {
      mapped.reasoning_effort = std::string(*effort);
    }
  }
  return RequestBody(mapped, model, stream, stream_usage, usage_read);
}

namespace {

// True when [p, end) holds no '{' or '['. Two memchr scans (vectorized) rather than a byte
// loop: the envelope before "choices" is a hundred bytes or more in every answer.
bool NoOpenBracket(const char* p, const char* end) {
  const size_t n = static_cast<size_t>(end - p);
  return std::memchr(p, '{', n) == nullptr && std::memchr(p, '[', n) == nullptr;
}

// True when `body` is an answer that passes as sent, found without parsing it: an object
// ('{' to '}') with a top-level "choices" array, and no "error" key, "content" array,
// "service_tier" OpenAI does not have, or \u escape (the one other way to write a key)
// anywhere. One quote scan for keys, as the stream decoder's (lib/core/json_scan.h says why
// it finds keys only). "choices" counts as top-level when no '{' or '[' comes between the
// body's opening brace and its key (an answer's envelope before it is scalars: id, object,
// created, model); a bracket there, even inside a string, only costs the reader. False
// sends the body to the reader (DecodeOpenAiResponse), which decides exactly: an answer
// that needs fixing, an error object, or no answer at all.
bool PlainAnswer(std::string_view body) {
  const char* begin = body.data();
  const char* end = begin + body.size();
  const char* first = begin;
  while (first < end && IsJsonSpaceByte(*first)) ++first;
  const char* last = end;
  while (last > first && IsJsonSpaceByte(last[-1])) --last;
  if (last - first < 2 || *first != '{' || last[-1] != '}') return false;
  if (body.find("\\u") != std::string_view::npos) return false;
  bool choices = false;
  // Only quotes followed by c, s or e are visited: a tenth of an answer's quotes.
  QuoteScanner quotes(begin, end, 'c', 's', 'e');
  for (const char* p = quotes.Next(); p != end; p = quotes.Next()) {
    const char* v = nullptr;
    switch (*p) {
      case 'c':
        // "choices", "content" told apart from "created", "completion_tokens", ... by
        // their second and third bytes, so each costs one comparison.
        if (end - p < 3) break;
        if (p[1] == 'h') {
          if (!choices && (v = MemberValue(p, end, "choices")) != nullptr && *v == '[') {
            if (!NoOpenBracket(first + 1, p)) return false;  // maybe nested: the reader tells
            choices = true;
          }
        } else if (p[1] == 'o' && p[2] == 'n' &&
                   (v = MemberValue(p, end, "content")) != nullptr && *v == '[') {
          return false;  // content parts, or logprobs' "content" (the reader tells)
        }
        break;
      case 's':
        if (end - p >= 2 && p[1] == 'e' &&
            (v = MemberValue(p, end, "service_tier")) != nullptr && *v == '"' &&
            ForeignServiceTierValue(v, end)) {
          return false;
        }
        break;
      case 'e':
        if (MemberValue(p, end, "error") != nullptr) return false;
        break;
      default:
        break;
    }
  }
  return choices;
}

// True when `json` (the text of an answer's "choices") has a "content" member whose value is
// an array: a byte scan for '[' (rare in an answer, unlike '"'), each checked backwards for
// `"content" :`. Far cheaper than walking the members with the reader. Inside a string a
// quote is escaped, so only a key ends in `"content"` + ':'; a false positive (logprobs' own
// "content" array, or a key ending in an escaped quote + `content"`) only costs the slow
// path, which then changes nothing.
bool HasContentArray(std::string_view json) {
  constexpr std::string_view kKey = "\"content\"";
  const char* begin = json.data();
  const char* end = begin + json.size();
  for (const char* p = begin;
       (p = static_cast<const char*>(std::memchr(p, '[', static_cast<size_t>(end - p)))) !=
       nullptr;
       ++p) {
    const char* q = p;
    while (q > begin && IsJsonSpaceByte(q[-1])) --q;
    if (q == begin || q[-1] != ':') continue;
    --q;
    while (q > begin && IsJsonSpaceByte(q[-1])) --q;
    if (static_cast<size_t>(q - begin) >= kKey.size() &&
        std::memcmp(q - kKey.size(), kKey.data(), kKey.size()) == 0) {
      return true;
    }
  }
  return false;
}

// Parses, fixes and re-serializes an answer the scan found a quirk in.
absl::Status FixOpenAiResponse(std::string* body) {
  absl::StatusOr<ChatCompletion> parsed = ParseChatCompletion(*body);
  if (!parsed.ok()) return NotAnAnswer(parsed.status().message());
  bool changed = MoveForeignServiceTier(&parsed->service_tier, &parsed->extra);
  for (ChatChoice& choice : parsed->choices) {
    if (NormalizeMessageParts(&choice.message)) changed = true;
  }
  if (changed) *body = SerializeChatCompletion(*parsed);
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeOpenAiResponse(std::string* body) {
  if (PlainAnswer(*body)) return absl::OkStatus();  // most answers: one quote scan
  // The rest: one pass of the reader over the top-level members; inside "choices" a byte
  // scan for content arrays. An answer without quirks is not changed.
  JsonReader r(*body, kMaxJsonDepth);
  JsonType type;
  if (!r.Peek(&type)) return NotAnAnswer(r.status().message());
  if (type != JsonType::kObject) {
    return NotAnAnswer(absl::StrCat("body: expected an object, got ",
                                    core_internal::ToAbsl(JsonTypeName(type))));
  }
  bool first = true, has = false, choices = false, error = false, fix = false;
  std::string_view key;
  std::string scratch;
  if (!r.BeginObject()) return NotAnAnswer(r.status().message());
  while (r.NextMember(&first, &key, &scratch, &has) && has) {
    // Only the members that matter are looked at before being skipped (a Peek each costs).
    if (key == "choices" || key == "error" || key == "service_tier") {
      if (!r.Peek(&type)) break;
      if (key == "choices" && type == JsonType::kArray) {
        choices = true;
        const size_t start = r.offset();
        if (!r.SkipValue()) break;
        if (HasContentArray(std::string_view(*body).substr(start, r.offset() - start))) {
          fix = true;
        }
        continue;
      }
      if (key == "error") error = type != JsonType::kNull;
      if (key == "service_tier" && type == JsonType::kString) {
        std::string_view tier;
        if (!r.ReadString(&tier, &scratch)) break;
        if (!IsOpenAiServiceTier(tier)) fix = true;
        continue;
      }
    }
    if (!r.SkipValue()) break;
  }
  if (!r.ExpectEnd()) return NotAnAnswer(r.status().message());
  if (error && !choices) return StatusFromUpstreamError(200, *body);
  if (!choices) return NotAnAnswer("choices: missing (an answer has a \"choices\" array)");
  return fix ? FixOpenAiResponse(body) : absl::OkStatus();
}

std::unique_ptr<StreamTranslator> NewOpenAiStreamDecoder() {
  return std::make_unique<OpenAiStreamDecoder>();
}

}  // namespace modeenvoy::protocol_internal
