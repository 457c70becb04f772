// lib/protocol/dialects/gemini.cc: the "gemini" (Google AI Studio, generativelanguage API)
// and "vertex" (Vertex AI) dialects. Both speak generateContent / streamGenerateContent with
// the same body; they differ in the URL, the authentication and a few options. The field
// mapping is documented in docs/providers.md (## gemini, ## vertex).
//
// Egress (EncodeRequest, DecodeResponse, the stream decoder) writes JSON directly and reads
// with the pull parser (lib/protocol/json.h): no DOM on the hot path. Ingress (DecodeRequest,
// EncodeResponse, the stream encoder) uses nlohmann.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "lib/core/json_reader.h"
#include "lib/core/status_macros.h"
#include "lib/protocol/dialects/dialects.h"
#include "lib/protocol/dialects/embeddings.h"
#include "lib/protocol/dialects/thinking.h"
#include "lib/protocol/json.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/protocol/dialect.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/protocol/sse.h"
#include "nlohmann/json.hpp"

namespace modeenvoy::protocol_internal {
namespace {

using core_internal::Json;
using core_internal::ObjectReader;

// Upper bound on one streamed function call's arguments (partialArgs accumulate until the
// call ends), so a peer cannot grow the decoder's state without bound.
constexpr size_t kMaxStreamedArgumentBytes = 8 << 20;

struct GoogleOptions {
  std::string name;  // "gemini" or "vertex"
  bool vertex = false;
  bool json_array_stream = false;  // stream_framing "json_array"
  bool allow_file_uri = false;
  bool openapi_schema = false;     // schema_format "openapi"
  std::string project;             // vertex
  std::string location = "us-central1";
  std::string publisher = "google";
};

std::string Cat(std::initializer_list<std::string_view> parts) {
  size_t n = 0;
  for (std::string_view p : parts) n += p.size();
  std::string out;
  out.reserve(n);
  for (std::string_view p : parts) out.append(p);
  return out;
}

std::string Unsupported(std::string_view what) {
  return Cat({what, " not supported by gemini"});
}

// ---------------------------------------------------------------------------------------
// Small pull-parser helpers.

// Iterates the members of the object at the reader's position: fn(key) must consume the
// value (read or skip) and return false on error. `key` is valid until fn reads the value,
// so fn compares it first.
template <typename Fn>
bool ForEachMember(JsonReader& r, Fn&& fn) {
  if (!r.BeginObject()) return false;
  bool first = true, has = false;
  std::string_view key;
  std::string scratch;
  while (true) {
    if (!r.NextMember(&first, &key, &scratch, &has)) return false;
    if (!has) return true;
    if (!fn(key)) return false;
  }
}

template <typename Fn>
bool ForEachElement(JsonReader& r, Fn&& fn) {
  if (!r.BeginArray()) return false;
  bool first = true, has = false;
  while (true) {
    if (!r.NextElement(&first, &has)) return false;
    if (!has) return true;
    if (!fn()) return false;
  }
}

bool ReadInt(JsonReader& r, int64_t* out) {
  JsonType type;
  if (!r.Peek(&type)) return false;
  if (type != JsonType::kNumber) return r.SkipValue();
  std::string_view text;
  if (!r.ReadNumber(&text)) return false;
  if (!NumberToInt64(text, out)) *out = 0;
  return true;
}

// A string member, or skips any other type.
bool ReadStringLoose(JsonReader& r, std::string* out) {
  JsonType type;
  if (!r.Peek(&type)) return false;
  if (type != JsonType::kString) return r.SkipValue();
  return r.ReadString(out);
}

bool ReadBoolLoose(JsonReader& r, bool* out) {
  JsonType type;
  if (!r.Peek(&type)) return false;
  if (type != JsonType::kBool) return r.SkipValue();
  return r.ReadBool(out);
}

absl::Status BodyError(const JsonReader& r, std::string_view what) {
  if (!r.status().ok()) return r.status();
  return absl::InvalidArgumentError(Cat({"gemini response: ", what}));
}

// ---------------------------------------------------------------------------------------
// Finish reasons and usage.

struct FinishMapping {
  std::string_view reason;  // unified
  bool keep_native;         // also report Gemini's own value (choice extra)
};

FinishMapping MapFinishReason(std::string_view gemini, bool has_tool_calls) {
  if (gemini == "STOP") return {has_tool_calls ? "tool_calls" : "stop", false};
  if (gemini == "MAX_TOKENS") return {"length", false};
  if (gemini == "SAFETY" || gemini == "RECITATION" || gemini == "BLOCKLIST" ||
      gemini == "PROHIBITED_CONTENT" || gemini == "SPII" || gemini == "IMAGE_SAFETY" ||
      gemini == "IMAGE_PROHIBITED_CONTENT" || gemini == "IMAGE_RECITATION" ||
      gemini == "LANGUAGE") {
    return {"content_filter", true};
  }
  // MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS, OTHER, ...: the
  // turn ended without a usable answer of a kind OpenAI has no name for.
  return {has_tool_calls ? "tool_calls" : "stop", true};
}

struct GeminiUsage {
  bool seen = false;  // a usageMetadata with token counts
  int64_t prompt = 0, candidates = 0, thoughts = 0, cached = 0, tool_prompt = 0, total = -1;
};

bool ReadUsage(JsonReader& r, GeminiUsage* u) {
  GeminiUsage got;
  bool counts = false;
  bool ok = ForEachMember(r, [&](std::string_view key) {
    int64_t* field = nullptr;
    if (key == "promptTokenCount") field = &got.prompt;
    else if (key == "candidatesTokenCount") field = &got.candidates;
    else if (key == "thoughtsTokenCount") field = &got.thoughts;
    else if (key == "cachedContentTokenCount") field = &got.cached;
    else if (key == "toolUsePromptTokenCount") field = &got.tool_prompt;
    else if (key == "totalTokenCount") field = &got.total;
    if (field == nullptr) return r.SkipValue();
    counts = true;
    return ReadInt(r, field);
  });
  if (ok && counts) {
    got.seen = true;
    *u = got;  // each report is cumulative: the latest wins
  }
  return ok;
}

// OpenAI's usage shape: prompt_tokens includes cached tokens (Gemini's promptTokenCount
// does too) and the tool-use prompt; completion_tokens includes the thoughts.
void AppendUsage(std::string* out, const GeminiUsage& u) {
  const int64_t prompt = u.prompt + u.tool_prompt;
  const int64_t completion = u.candidates + u.thoughts;
  JsonObjectWriter w(out);
  w.Key("prompt_tokens");
  AppendJsonInt(out, prompt);
  w.Key("completion_tokens");
  AppendJsonInt(out, completion);
  w.Key("total_tokens");
  AppendJsonInt(out, u.total >= 0 ? u.total : prompt + completion);
  w.Key("prompt_tokens_details");
  out->append("{\"cached_tokens\":");
  AppendJsonInt(out, u.cached);
  out->push_back('}');
  w.Key("completion_tokens_details");
  out->append("{\"reasoning_tokens\":");
  AppendJsonInt(out, u.thoughts);
  out->push_back('}');
  w.End();
}

// A thought signature as the unified form carries it (the shape of Google's own
// OpenAI-compatible endpoint): "extra_content": {"google": {"thought_signature": "..."}}.
void AppendSignatureMember(JsonObjectWriter& w, std::string_view signature) {
  w.Key("extra_content");
  w.out()->append("{\"google\":{\"thought_signature\":");
  AppendJsonString(w.out(), signature);
  w.out()->append("}}");
}

// The signature inside a raw "extra_content" value, if any.
std::optional<std::string> SignatureFromExtraContent(std::string_view raw) {
  JsonReader r(raw, kMaxJsonDepth);
  std::optional<std::string> sig;
  ForEachMember(r, [&](std::string_view key) {
    if (key != "google") return r.SkipValue();
    return ForEachMember(r, [&](std::string_view k2) {
      if (k2 != "thought_signature") return r.SkipValue();
      std::string s;
      if (!ReadStringLoose(r, &s)) return false;
      sig = std::move(s);
      return true;
    });
  });
  return sig;
}

std::optional<std::string> SignatureFromExtra(const ExtraFields& extra) {
  for (const auto& [name, value] : extra) {
    if (name == "extra_content") return SignatureFromExtraContent(value);
  }
  return std::nullopt;
}

// Deterministic tool call ids (Gemini sends none): "call_<responseId>_<k>", with the
// candidate's index too when it is not the first ("call_<responseId>_<c>_<k>").
std::string ToolCallId(std::string_view response_id, int64_t candidate, int64_t k) {
  std::string id = Cat({"call_", response_id.empty() ? std::string_view("gemini") : response_id,
                        "_"});
  if (candidate != 0) id.append(std::to_string(candidate)).push_back('_');
  id.append(std::to_string(k));
  return id;
}

// ---------------------------------------------------------------------------------------
// Streamed function call arguments (Vertex/Gemini 3 "partialArgs": {jsonPath, stringValue |
// numberValue | boolValue | nullValue, willContinue}), rebuilt into one JSON object.

struct ArgNode {
  enum class Kind { kUnset, kObject, kArray, kString, kRaw } kind = Kind::kUnset;
  std::vector<std::pair<std::string, std::unique_ptr<ArgNode>>> members;
  std::vector<std::unique_ptr<ArgNode>> items;
  std::string value;  // kString: decoded text; kRaw: JSON text

  ArgNode* Member(std::string_view key) {
    if (kind != Kind::kObject) {
      *this = ArgNode();
      kind = Kind::kObject;
    }
    for (auto& [k, v] : members) {
      if (k == key) return v.get();
    }
    members.emplace_back(std::string(key), std::make_unique<ArgNode>());
    return members.back().second.get();
  }
  ArgNode* Item(size_t index) {
    if (kind != Kind::kArray) {
      *this = ArgNode();
      kind = Kind::kArray;
    }
    while (items.size() <= index) items.push_back(std::make_unique<ArgNode>());
    return items[index].get();
  }
  void Append(std::string* out) const {
    switch (kind) {
      case Kind::kUnset: out->append("null"); return;
      case Kind::kString: AppendJsonString(out, value); return;
      case Kind::kRaw: out->append(value); return;
      case Kind::kObject: {
        JsonObjectWriter w(out);
        for (const auto& [k, v] : members) {
          w.Key(k);
          v->Append(out);
        }
        w.End();
        return;
      }
      case Kind::kArray:
        out->push_back('[');
        for (size_t i = 0; i < items.size(); ++i) {
          if (i > 0) out->push_back(',');
          items[i]->Append(out);
        }
        out->push_back(']');
        return;
    }
  }
};

// Follows "$.a.b[2].c" (also "$['a']") from `root`, creating what is missing. Null for a
// path this reader does not understand.
ArgNode* Walk(ArgNode* root, std::string_view path) {
  if (path.empty() || path[0] != '$') return nullptr;
  size_t i = 1;
  ArgNode* node = root;
  while (i < path.size()) {
    if (path[i] == '.') {
      // (A loop, not find_first_of: that calls memchr over ".[" for every byte.)
      size_t end = i + 1;
      while (end < path.size() && path[end] != '.' && path[end] != '[') ++end;
      if (end == i + 1) return nullptr;
      node = node->Member(path.substr(i + 1, end - i - 1));
      i = end;
    } else if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) return nullptr;
      std::string_view inner = path.substr(i + 1, close - i - 1);
      if (inner.size() >= 2 && (inner[0] == '\'' || inner[0] == '"') &&
          inner.back() == inner[0]) {
        node = node->Member(inner.substr(1, inner.size() - 2));
      } else {
        if (inner.empty() || inner.size() > 6) return nullptr;
        size_t index = 0;
        for (char c : inner) {
          if (c < '0' || c > '9') return nullptr;
          index = index * 10 + static_cast<size_t>(c - '0');
        }
        node = node->Item(index);
      }
      i = close + 1;
    } else {
      return nullptr;
    }
  }
  return node;
}

// ---------------------------------------------------------------------------------------
// One candidate's content as read from a response or a stream chunk.

struct CallPart {
  std::optional<std::string> name;
  std::optional<std::string> id;
  std::optional<std::string> args;  // compact JSON text
  bool will_continue = false;
  // partialArgs entries: (jsonPath, value kind, value text)
  struct Partial {
    std::string path;
    ArgNode::Kind kind = ArgNode::Kind::kUnset;
    std::string value;
    void Reset() {
      path.clear();
      kind = ArgNode::Kind::kUnset;
      value.clear();
    }
  };
  std::vector<Partial> partials;
  std::string signature;

  // Reset() methods put a recycled element back to its freshly constructed state while its
  // strings keep their buffers (see Recycled below); a reader truncates the nested lists.
  void Reset() {
    name.reset();
    id.reset();
    args.reset();
    will_continue = false;
    signature.clear();
  }
};

struct Part {
  enum class Kind { kText, kThought, kCall, kOther } kind = Kind::kOther;
  std::string text;
  std::string signature;  // thoughtSignature of a text part
  CallPart call;

  void Reset() {
    kind = Kind::kOther;
    text.clear();
    signature.clear();
    call.Reset();
  }
};

// The next element of a list being read into `v`, `*used` of whose elements this read has
// filled so far: a recycled element from an earlier read (Reset(), buffers kept) or a new
// one. The reader drops the unused rest with v.resize(*used) when the list ends, so a stream
// decoder that reads every element into the same response allocates nothing once warm.
template <typename T>
T& Recycled(std::vector<T>& v, size_t* used) {
  if (*used < v.size()) {
    v[*used].Reset();
  } else {
    v.emplace_back();
  }
  return v[(*used)++];
}

bool ReadPartial(JsonReader& r, CallPart::Partial* p) {
  return ForEachMember(r, [&](std::string_view key) {
    if (key == "jsonPath") return ReadStringLoose(r, &p->path);
    if (key == "stringValue") {
      p->kind = ArgNode::Kind::kString;
      return ReadStringLoose(r, &p->value);
    }
    if (key == "numberValue" || key == "boolValue" || key == "nullValue") {
      p->kind = ArgNode::Kind::kRaw;
      p->value.clear();
      if (key == "nullValue") {
        p->value = "null";
        return r.SkipValue();
      }
      return r.CaptureValue(&p->value);
    }
    return r.SkipValue();
  });
}

bool ReadFunctionCall(JsonReader& r, CallPart* call) {
  size_t partials = 0;
  const bool ok = ForEachMember(r, [&](std::string_view key) {
    if (key == "name") {
      std::string name;
      if (!ReadStringLoose(r, &name)) return false;
      call->name = std::move(name);
      return true;
    }
    if (key == "id") {
      std::string id;
      if (!ReadStringLoose(r, &id)) return false;
      if (!id.empty()) call->id = std::move(id);
      return true;
    }
    if (key == "args") {
      JsonType type;
      if (!r.Peek(&type)) return false;
      if (type == JsonType::kNull) return r.SkipValue();
      std::string args;
      if (!r.CaptureValue(&args)) return false;
      call->args = std::move(args);
      return true;
    }
    if (key == "willContinue") return ReadBoolLoose(r, &call->will_continue);
    if (key == "partialArgs") {
      return ForEachElement(
          r, [&] { return ReadPartial(r, &Recycled(call->partials, &partials)); });
    }
    return r.SkipValue();
  });
  call->partials.resize(partials);
  return ok;
}

bool ReadPart(JsonReader& r, Part* part) {
  bool thought = false, has_text = false;
  bool ok = ForEachMember(r, [&](std::string_view key) {
    if (key == "text") {
      has_text = true;
      return ReadStringLoose(r, &part->text);
    }
    if (key == "thought") return ReadBoolLoose(r, &thought);
    if (key == "thoughtSignature") return ReadStringLoose(r, &part->signature);
    if (key == "functionCall") {
      part->kind = Part::Kind::kCall;
      return ReadFunctionCall(r, &part->call);
    }
    return r.SkipValue();  // inlineData, executableCode, ...: not in the unified form
  });
  if (part->kind == Part::Kind::kCall) {
    part->call.signature = std::move(part->signature);
    part->signature.clear();
  } else if (has_text) {
    part->kind = thought ? Part::Kind::kThought : Part::Kind::kText;
  }
  return ok;
}

struct Candidate {
  int64_t index = -1;
  std::vector<Part> parts;
  std::string finish_reason;

  void Reset() {
    index = -1;
    finish_reason.clear();
  }
};

bool ReadCandidate(JsonReader& r, Candidate* c) {
  size_t parts = 0;
  const bool ok = ForEachMember(r, [&](std::string_view key) {
    if (key == "index") return ReadInt(r, &c->index);
    if (key == "finishReason") return ReadStringLoose(r, &c->finish_reason);
    if (key == "content") {
      return ForEachMember(r, [&](std::string_view k2) {
        if (k2 != "parts") return r.SkipValue();
        return ForEachElement(r, [&] { return ReadPart(r, &Recycled(c->parts, &parts)); });
      });
    }
    return r.SkipValue();
  });
  c->parts.resize(parts);
  return ok;
}

// A whole generateContent response, or one stream element.
struct GeminiResponse {
  std::vector<Candidate> candidates;
  GeminiUsage usage;
  std::string model_version;
  std::string response_id;
  std::string create_time;
  std::string block_reason;
  std::string block_message;
  std::optional<std::string> error;  // raw {"error":...} object text of an in-stream error

  // Empties the response for the next stream element; the strings keep their buffers, and
  // the candidates stay for ReadResponse to recycle.
  void Clear() {
    usage = GeminiUsage();
    model_version.clear();
    response_id.clear();
    create_time.clear();
    block_reason.clear();
    block_message.clear();
    error.reset();
  }
};

// `ids`: read responseId, modelVersion and createTime (a stream decoder needs them once).
bool ReadResponse(JsonReader& r, GeminiResponse* out, bool ids = true) {
  size_t candidates = 0;
  const bool ok = ForEachMember(r, [&](std::string_view key) {
    if (key == "candidates") {
      return ForEachElement(
          r, [&] { return ReadCandidate(r, &Recycled(out->candidates, &candidates)); });
    }
    if (key == "usageMetadata") return ReadUsage(r, &out->usage);
    if (key == "modelVersion" || key == "responseId" || key == "createTime") {
      if (!ids) return r.SkipValue();
      std::string* field = key == "modelVersion" ? &out->model_version
                           : key == "responseId" ? &out->response_id
                                                 : &out->create_time;
      return ReadStringLoose(r, field);
    }
    if (key == "promptFeedback") {
      return ForEachMember(r, [&](std::string_view k2) {
        if (k2 == "blockReason") return ReadStringLoose(r, &out->block_reason);
        if (k2 == "blockReasonMessage") return ReadStringLoose(r, &out->block_message);
        return r.SkipValue();
      });
    }
    if (key == "error") {
      std::string raw = "{\"error\":";
      if (!r.CaptureValue(&raw)) return false;
      raw.push_back('}');
      out->error = std::move(raw);
      return true;
    }
    return r.SkipValue();
  });
  out->candidates.resize(candidates);
  return ok;
}

int64_t CreatedSeconds(std::string_view create_time) {
  if (create_time.empty()) return 0;
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, std::string(create_time), &t, &err)) return 0;
  return absl::ToUnixSeconds(t);
}

// The unified status of an error object found in a body or a stream.
absl::Status StatusFromGeminiError(std::string_view raw) {
  int64_t code = 0;
  JsonReader r(raw, kMaxJsonDepth);
  ForEachMember(r, [&](std::string_view key) {
    if (key != "error") return r.SkipValue();
    return ForEachMember(r, [&](std::string_view k2) {
      if (k2 == "code") return ReadInt(r, &code);
      return r.SkipValue();
    });
  });
  return StatusFromUpstreamError(code >= 400 && code <= 599 ? static_cast<int>(code) : 500,
                                 raw);
}

absl::Status PromptBlocked(const GeminiResponse& resp) {
  std::string message = Cat({"the prompt was blocked by gemini (blockReason ",
                             resp.block_reason, ")"});
  if (!resp.block_message.empty()) message.append(": ").append(resp.block_message);
  return MarkProviderError(WithErrorCode(
      WithHttpStatus(absl::InvalidArgumentError(message), 400), "content_filter"));
}

// ---------------------------------------------------------------------------------------
// Stream decoding.

SseEvent DataEvent(std::string data) {
  SseEvent event;
  event.data = std::move(data);
  return event;
}

class GeminiStreamDecoder final : public StreamTranslator {
 public:
  // Its usage-only chunk comes right before "[DONE]", out of the same call, and no other
  // chunk it writes has a usage member.
  bool KeepsUsagePromise() const override { return true; }

  absl::Status Translate(StreamFrame frame, std::vector<SseEvent>* out) override {
    if (frame.data.empty()) return absl::OkStatus();
    // One element's reading, in buffers kept across elements (no allocation once warm).
    GeminiResponse& resp = resp_;
    resp.Clear();
    JsonReader r(frame.data, kMaxJsonDepth);
    if (!ReadResponse(r, &resp, /*ids=*/id_.empty() || model_.empty()) || !r.ExpectEnd()) {
      return BodyError(r, "stream element is not an object");
    }
    if (resp.error.has_value()) return StatusFromGeminiError(*resp.error);
    if (!resp.block_reason.empty() && resp.candidates.empty()) return PromptBlocked(resp);
    if (id_.empty() && !resp.response_id.empty()) id_ = std::move(resp.response_id);
    if (model_.empty() && !resp.model_version.empty()) model_ = std::move(resp.model_version);
    if (created_ == 0 && !resp.create_time.empty()) created_ = CreatedSeconds(resp.create_time);
    if (resp.usage.seen) usage_ = resp.usage;

    for (size_t i = 0; i < resp.candidates.size(); ++i) {
      Candidate& c = resp.candidates[i];
      const int64_t index = c.index >= 0 ? c.index : static_cast<int64_t>(i);
      State& st = StateFor(index);
      std::string& content = content_;
      std::string& reasoning = reasoning_;
      std::string& signature = signature_;
      std::vector<std::string>& calls = calls_;  // tool_calls elements
      content.clear();
      reasoning.clear();
      signature.clear();
      calls.clear();
      for (Part& part : c.parts) {
        switch (part.kind) {
          case Part::Kind::kText:
            content += part.text;
            if (!part.signature.empty()) signature.swap(part.signature);
            break;
          case Part::Kind::kThought:
            reasoning += part.text;
            if (!part.signature.empty()) signature.swap(part.signature);
            break;
          case Part::Kind::kCall:
            MODEENVOY_RETURN_IF_ERROR(OnCall(index, st, part.call, &calls));
            break;
          case Part::Kind::kOther:
            break;
        }
      }
      std::optional<FinishMapping> finish;
      if (!c.finish_reason.empty()) {
        CloseCall(st, &calls);
        finish = MapFinishReason(c.finish_reason, st.next_call > 0);
      }
      if (content.empty() && reasoning.empty() && signature.empty() && calls.empty() &&
          !finish.has_value() && st.role_sent) {
        continue;
      }
      std::string chunk;
      chunk.reserve(160 + id_.size() + model_.size() + content.size() + reasoning.size() +
                    signature.size());
      OpenChunk(&chunk);
      chunk.append("{\"index\":");
      AppendJsonInt(&chunk, index);
      chunk.append(",\"delta\":");
      JsonObjectWriter d(&chunk);
      if (!st.role_sent) {
        d.Key("role");
        chunk.append("\"assistant\"");
        st.role_sent = true;
      }
      if (!content.empty()) {
        d.Key("content");
        AppendJsonString(&chunk, content);
      }
      if (!reasoning.empty()) {
        d.Key("reasoning_content");
        AppendJsonString(&chunk, reasoning);
      }
      if (!calls.empty()) {
        d.Key("tool_calls");
        chunk.push_back('[');
        for (size_t k = 0; k < calls.size(); ++k) {
          if (k > 0) chunk.push_back(',');
          chunk.append(calls[k]);
        }
        chunk.push_back(']');
      }
      if (!signature.empty()) AppendSignatureMember(d, signature);
      d.End();
      chunk.append(",\"finish_reason\":");
      if (finish.has_value()) {
        AppendJsonString(&chunk, finish->reason);
        if (finish->keep_native) {
          chunk.append(",\"native_finish_reason\":");
          AppendJsonString(&chunk, c.finish_reason);
        }
      } else {
        chunk.append("null");
      }
      chunk.append("}]}");
      out->push_back(DataEvent(std::move(chunk)));
    }
    return absl::OkStatus();
  }

  absl::Status Finish(std::vector<SseEvent>* out) override {
    // A streamed call whose terminating part never came (the stream ended first).
    for (State& st : states_) {
      std::vector<std::string> calls;
      CloseCall(st, &calls);
      if (calls.empty()) continue;
      std::string chunk;
      OpenChunk(&chunk);
      chunk.append("{\"index\":");
      AppendJsonInt(&chunk, st.index);
      chunk.append(",\"delta\":{\"tool_calls\":[");
      chunk.append(calls[0]);
      chunk.append("]},\"finish_reason\":null}]}");
      out->push_back(DataEvent(std::move(chunk)));
    }
    if (usage_.seen) {
      std::string chunk;
      OpenChunk(&chunk);
      chunk.append("],\"usage\":");
      AppendUsage(&chunk, usage_);
      chunk.push_back('}');
      // OpenChunk left "choices":[ open; the usage chunk has none.
      out->push_back(DataEvent(std::move(chunk)));
    }
    out->push_back(DataEvent(std::string(kSseDone)));
    return absl::OkStatus();
  }

 private:
  static constexpr std::string_view kSseDone = "[DONE]";

  struct State {
    int64_t index = 0;
    bool role_sent = false;
    int64_t next_call = 0;
    // A call streamed with partialArgs, open until its terminating part.
    bool open = false;
    int64_t open_index = 0;
    ArgNode args;
    size_t args_bytes = 0;
    std::optional<std::string> whole_args;  // "args" given in full on a streamed call
  };

  State& StateFor(int64_t index) {
    for (State& s : states_) {
      if (s.index == index) return s;
    }
    states_.emplace_back();
    states_.back().index = index;
    return states_.back();
  }

  void OpenChunk(std::string* chunk) const {
    chunk->append("{\"id\":");
    AppendJsonString(chunk, id_.empty() ? std::string_view("gemini") : std::string_view(id_));
    chunk->append(",\"object\":\"chat.completion.chunk\",\"created\":");
    AppendJsonInt(chunk, created_);
    chunk->append(",\"model\":");
    AppendJsonString(chunk, model_);
    chunk->append(",\"choices\":[");
  }

  // The head of a tool call delta: index, id, type, name; `arguments` when known.
  std::string CallHead(const State& st, int64_t k, const CallPart& call,
                       std::optional<std::string_view> arguments) const {
    std::string out;
    JsonObjectWriter w(&out);
    w.Key("index");
    AppendJsonInt(&out, k);
    w.Key("id");
    AppendJsonString(&out, call.id ? *call.id : ToolCallId(id_, st.index, k));
    w.Key("type");
    out.append("\"function\"");
    w.Key("function");
    out.append("{\"name\":");
    AppendJsonString(&out, call.name.value_or(""));
    out.append(",\"arguments\":");
    AppendJsonString(&out, arguments.value_or(""));
    out.push_back('}');
    if (!call.signature.empty()) AppendSignatureMember(w, call.signature);
    w.End();
    return out;
  }

  absl::Status OnCall(int64_t /*candidate*/, State& st, CallPart& call,
                      std::vector<std::string>* calls) {
    if (call.name.has_value()) {
      CloseCall(st, calls);  // a new call ends a streamed one
      const int64_t k = st.next_call++;
      if (!call.will_continue && call.partials.empty()) {
        // Gemini's usual shape: the whole call in one part.
        calls->push_back(CallHead(st, k, call, call.args ? *call.args : std::string("{}")));
        return absl::OkStatus();
      }
      calls->push_back(CallHead(st, k, call, std::nullopt));
      st.open = true;
      st.open_index = k;
      st.args = ArgNode();
      st.args.kind = ArgNode::Kind::kObject;
      st.args_bytes = 0;
      st.whole_args = call.args;
    } else if (!st.open) {
      return absl::OkStatus();  // an empty terminator with no call open
    }
    for (CallPart::Partial& p : call.partials) {
      ArgNode* node = Walk(&st.args, p.path);
      if (node == nullptr) {
        return absl::InvalidArgumentError(
            Cat({"gemini stream: functionCall.partialArgs.jsonPath: cannot read \"", p.path,
                 "\""}));
      }
      st.args_bytes += p.value.size() + p.path.size();
      if (st.args_bytes > kMaxStreamedArgumentBytes) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "gemini stream: streamed function call arguments exceed %d bytes",
            kMaxStreamedArgumentBytes));
      }
      if (p.kind == ArgNode::Kind::kString && node->kind == ArgNode::Kind::kString) {
        node->value.append(p.value);  // a string continued across parts
      } else if (p.kind != ArgNode::Kind::kUnset) {
        *node = ArgNode();
        node->kind = p.kind;
        node->value = std::move(p.value);
      }
    }
    if (call.args.has_value() && !call.name.has_value()) st.whole_args = call.args;
    if (!call.will_continue && !call.name.has_value()) CloseCall(st, calls);
    return absl::OkStatus();
  }

  // Ends the open streamed call: its arguments in one delta.
  void CloseCall(State& st, std::vector<std::string>* calls) {
    if (!st.open) return;
    st.open = false;
    std::string args;
    if (st.whole_args.has_value() && st.args.members.empty()) {
      args = std::move(*st.whole_args);
    } else {
      st.args.Append(&args);
    }
    st.args = ArgNode();
    st.whole_args.reset();
    std::string out = "{\"index\":";
    AppendJsonInt(&out, st.open_index);
    out.append(",\"function\":{\"arguments\":");
    AppendJsonString(&out, args);
    out.append("}}");
    calls->push_back(std::move(out));
  }

  std::string id_;
  std::string model_;
  int64_t created_ = 0;
  GeminiUsage usage_;
  std::vector<State> states_;
  // Per-element scratch, kept so their buffers are reused.
  GeminiResponse resp_;
  std::string content_, reasoning_, signature_;
  std::vector<std::string> calls_;
};

// ---------------------------------------------------------------------------------------
// Request encoding.

struct ImageTarget {
  enum class Kind { kInline, kFile } kind = Kind::kInline;
  std::string mime;
  std::string data;  // base64 (kInline) or URI (kFile)
};

std::string MimeFromExtension(std::string_view url, std::string_view fallback) {
  size_t q = url.find_first_of("?#");
  std::string_view path = url.substr(0, q);
  size_t dot = path.rfind('.');
  if (dot == std::string_view::npos || path.find('/', dot) != std::string_view::npos) {
    return std::string(fallback);
  }
  std::string ext(path.substr(dot + 1));
  for (char& ch : ext) ch = static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "webp") return "image/webp";
  if (ext == "gif") return "image/gif";
  if (ext == "heic") return "image/heic";
  if (ext == "heif") return "image/heif";
  if (ext == "pdf") return "application/pdf";
  if (ext == "mp3") return "audio/mp3";
  if (ext == "wav") return "audio/wav";
  if (ext == "mp4") return "video/mp4";
  return std::string(fallback);
}

// A data: URL's MIME type and base64 payload. False if it is not a base64 data: URL.
bool SplitDataUrl(std::string_view url, std::string* mime, std::string* data) {
  if (url.substr(0, 5) != "data:") return false;
  size_t comma = url.find(',');
  if (comma == std::string_view::npos) return false;
  std::string_view meta = url.substr(5, comma - 5);
  constexpr std::string_view kBase64 = ";base64";
  if (meta.size() < kBase64.size() || meta.substr(meta.size() - kBase64.size()) != kBase64) {
    return false;
  }
  *mime = std::string(meta.substr(0, meta.size() - kBase64.size()));
  *data = std::string(url.substr(comma + 1));
  return !mime->empty();
}

class RequestEncoder {
 public:
  RequestEncoder(const GoogleOptions& options, const ChatRequest& chat, std::string_view model,
                 std::string* out)
      : options_(options), chat_(chat), model_(model), out_(out) {}

  absl::Status Encode() {
    MODEENVOY_RETURN_IF_ERROR(CheckTopLevel());
    JsonObjectWriter body(out_);
    MODEENVOY_RETURN_IF_ERROR(Contents(body));
    MODEENVOY_RETURN_IF_ERROR(SystemInstruction(body));
    MODEENVOY_RETURN_IF_ERROR(Tools(body));
    MODEENVOY_RETURN_IF_ERROR(GenerationConfig(body));
    for (const auto& [name, value] : chat_.extra) {
      // Gemini-native members a client may send along (checked in CheckTopLevel); thinking
      // is written as thinkingConfig.
      if (name == "thinking" || IsAnthropicOnlyMember(name)) continue;
      body.Key(name);
      out_->append(value);
    }
    body.End();
    return absl::OkStatus();
  }

 private:
  absl::Status CheckTopLevel() {
    if (chat_.logit_bias) return InvalidFieldError("logit_bias", Unsupported("logit_bias"));
    if (chat_.audio) return InvalidFieldError("audio", Unsupported("audio output"));
    if (chat_.prediction) return InvalidFieldError("prediction", Unsupported("prediction"));
    if (chat_.web_search_options) {
      return InvalidFieldError("web_search_options", Unsupported("web_search_options"));
    }
    if (chat_.functions) {
      return InvalidFieldError("functions", Unsupported("the deprecated functions (use tools)"));
    }
    if (chat_.function_call) {
      return InvalidFieldError("function_call",
                               Unsupported("the deprecated function_call (use tool_choice)"));
    }
    if (chat_.verbosity) return InvalidFieldError("verbosity", Unsupported("verbosity"));
    if (chat_.modalities) {
      for (size_t i = 0; i < chat_.modalities->size(); ++i) {
        if ((*chat_.modalities)[i] != "text") {
          return InvalidFieldError(absl::StrFormat("modalities[%d]", i),
                                   Unsupported(Cat({"output modality \"",
                                                    (*chat_.modalities)[i], "\""})));
        }
      }
    }
    if (chat_.parallel_tool_calls == false) {
      return InvalidFieldError("parallel_tool_calls",
                               Unsupported("false (Gemini decides how many calls to make)"));
    }
    if (chat_.top_logprobs && (*chat_.top_logprobs < 0 || *chat_.top_logprobs > 20)) {
      return InvalidFieldError("top_logprobs", "must be 0..20");
    }
    MODEENVOY_ASSIGN_OR_RETURN(thinking_, ReadThinking(chat_.extra));
    if (thinking_.has_value() && chat_.reasoning_effort.has_value()) {
      return InvalidFieldError("thinking", "give reasoning_effort or thinking, not both");
    }
    for (const auto& [name, value] : chat_.extra) {
      if (name != "safetySettings" && name != "cachedContent" && name != "labels" &&
          name != "thinking" && !IsAnthropicOnlyMember(name)) {
        return InvalidFieldError(name, Unsupported(Cat({"the field \"", name,
                                                        "\" (Gemini-native fields passed "
                                                        "through: safetySettings, "
                                                        "cachedContent, labels)"})));
      }
    }
    return absl::OkStatus();
  }

  // systemInstruction: every system and developer message's text, in order.
  absl::Status SystemInstruction(JsonObjectWriter& body) {
    bool any = false;
    for (size_t i = 0; i < chat_.messages.size(); ++i) {
      const Message& m = chat_.messages[i];
      if (m.role != Role::kSystem && m.role != Role::kDeveloper) continue;
      const std::string path = absl::StrFormat("messages[%d]", i);
      MODEENVOY_RETURN_IF_ERROR(CheckMessageExtras(m, path));
      if (m.name) return InvalidFieldError(path + ".name", Unsupported("message names"));
      if (!any) {
        body.Key("systemInstruction");
        out_->append("{\"parts\":[");
      }
      if (!m.content) continue;
      if (const std::string* s = std::get_if<std::string>(&*m.content)) {
        if (any) out_->push_back(',');
        out_->append("{\"text\":");
        AppendJsonString(out_, *s);
        out_->push_back('}');
        any = true;
      } else {
        const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
        for (size_t k = 0; k < parts.size(); ++k) {
          if (parts[k].type != ContentPartType::kText) {
            return InvalidFieldError(absl::StrFormat("%s.content[%d]", path, k),
                                     Unsupported("non-text parts in system messages"));
          }
          if (any) out_->push_back(',');
          out_->append("{\"text\":");
          AppendJsonString(out_, parts[k].text);
          out_->push_back('}');
          any = true;
        }
      }
    }
    if (any) out_->append("]}");
    return absl::OkStatus();
  }

  absl::Status CheckMessageExtras(const Message& m, const std::string& path) {
    for (const auto& [name, value] : m.extra) {
      // reasoning_content: Gemini takes no thought text back (the signature carries the
      // model's state); extra_content: the thought signature, written on the parts.
      if (name == "reasoning_content" || name == "extra_content") continue;
      // cache_control: a prompt-caching hint (Gemini caches by itself); thinking_blocks:
      // another provider's signed thinking, which Gemini cannot take back (its own state
      // travels in the thought signature); is_error on a tool result: the function
      // response's "error" member (ToolResponse).
      if (name == "cache_control" || name == "thinking_blocks") continue;
      if (name == "is_error" && m.role == Role::kTool) continue;
      return InvalidFieldError(Cat({path, ".", name}), Unsupported("this message field"));
    }
    return absl::OkStatus();
  }

  absl::Status Contents(JsonObjectWriter& body) {
    body.Key("contents");
    out_->push_back('[');
    bool any = false;
    bool in_tool_turn = false;  // consecutive tool messages share one user turn
    for (size_t i = 0; i < chat_.messages.size(); ++i) {
      const Message& m = chat_.messages[i];
      const std::string path = absl::StrFormat("messages[%d]", i);
      if (m.role == Role::kSystem || m.role == Role::kDeveloper) continue;
      if (m.role == Role::kFunction) {
        return InvalidFieldError(path + ".role",
                                 Unsupported("the deprecated function role (use tool)"));
      }
      MODEENVOY_RETURN_IF_ERROR(CheckMessageExtras(m, path));
      if (m.name) return InvalidFieldError(path + ".name", Unsupported("message names"));
      if (m.role == Role::kTool) {
        if (!in_tool_turn) {
          if (any) out_->push_back(',');
          out_->append("{\"role\":\"user\",\"parts\":[");
        } else {
          out_->push_back(',');
        }
        MODEENVOY_RETURN_IF_ERROR(ToolResponse(m, path));
        in_tool_turn = true;
        any = true;
        continue;
      }
      if (in_tool_turn) out_->append("]}");
      in_tool_turn = false;
      if (any) out_->push_back(',');
      any = true;
      if (m.role == Role::kUser) {
        out_->append("{\"role\":\"user\",\"parts\":[");
        MODEENVOY_RETURN_IF_ERROR(UserParts(m, path));
      } else {
        out_->append("{\"role\":\"model\",\"parts\":[");
        MODEENVOY_RETURN_IF_ERROR(ModelParts(m, path));
      }
      out_->append("]}");
    }
    if (in_tool_turn) out_->append("]}");
    out_->push_back(']');
    if (!any) return InvalidFieldError("messages", "gemini needs at least one non-system message");
    return absl::OkStatus();
  }

  void TextPart(std::string_view text, bool* first, std::string_view signature = {}) {
    if (!*first) out_->push_back(',');
    *first = false;
    out_->append("{\"text\":");
    AppendJsonString(out_, text);
    if (!signature.empty()) {
      out_->append(",\"thoughtSignature\":");
      AppendJsonString(out_, signature);
    }
    out_->push_back('}');
  }

  absl::Status ImagePart(const ImageUrl& image, const std::string& path, bool* first) {
    std::string mime, data;
    if (!*first) out_->push_back(',');
    *first = false;
    if (SplitDataUrl(image.url, &mime, &data)) {
      out_->append("{\"inlineData\":{\"mimeType\":");
      AppendJsonString(out_, mime);
      out_->append(",\"data\":");
      AppendJsonString(out_, data);
      out_->append("}}");
      return absl::OkStatus();
    }
    const bool gcs = image.url.rfind("gs://", 0) == 0;
    const bool http = image.url.rfind("https://", 0) == 0 || image.url.rfind("http://", 0) == 0;
    if (!gcs && !(http && options_.allow_file_uri)) {
      return InvalidFieldError(
          path + ".image_url.url",
          http ? Cat({"gemini cannot fetch image URLs; send the image as a data: URL, a gs:// "
                      "URI, or set the provider option allow_file_uri (the URL is then sent as "
                      "fileData.fileUri)"})
               : std::string("must be a base64 data: URL, a gs:// URI or an https URL"));
    }
    out_->append("{\"fileData\":{\"mimeType\":");
    AppendJsonString(out_, MimeFromExtension(image.url, "image/jpeg"));
    out_->append(",\"fileUri\":");
    AppendJsonString(out_, image.url);
    out_->append("}}");
    return absl::OkStatus();
  }

  absl::Status UserParts(const Message& m, const std::string& path) {
    bool first = true;
    if (!m.content) return InvalidFieldError(path + ".content", "is required");
    if (const std::string* s = std::get_if<std::string>(&*m.content)) {
      TextPart(*s, &first);
      return absl::OkStatus();
    }
    const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
    for (size_t k = 0; k < parts.size(); ++k) {
      const ContentPart& p = parts[k];
      const std::string ppath = absl::StrFormat("%s.content[%d]", path, k);
      for (const auto& [name, value] : p.extra) {
        if (name == "cache_control") continue;  // a caching hint: Gemini caches by itself
        return InvalidFieldError(Cat({ppath, ".", name}), Unsupported("this content part field"));
      }
      switch (p.type) {
        case ContentPartType::kText:
          TextPart(p.text, &first);
          break;
        case ContentPartType::kImageUrl:
          MODEENVOY_RETURN_IF_ERROR(ImagePart(*p.image_url, ppath, &first));
          break;
        case ContentPartType::kInputAudio: {
          if (!first) out_->push_back(',');
          first = false;
          out_->append("{\"inlineData\":{\"mimeType\":");
          AppendJsonString(out_, p.input_audio->format == "mp3" ? "audio/mp3" : "audio/wav");
          out_->append(",\"data\":");
          AppendJsonString(out_, p.input_audio->data);
          out_->append("}}");
          break;
        }
        case ContentPartType::kFile: {
          std::string mime, data;
          if (!p.file->file_data || !SplitDataUrl(*p.file->file_data, &mime, &data)) {
            return InvalidFieldError(ppath + ".file",
                                     Unsupported("files other than a base64 data: URL in "
                                                 "file_data (file_id cannot be resolved)"));
          }
          if (!first) out_->push_back(',');
          first = false;
          out_->append("{\"inlineData\":{\"mimeType\":");
          AppendJsonString(out_, mime);
          out_->append(",\"data\":");
          AppendJsonString(out_, data);
          out_->append("}}");
          break;
        }
        default:
          return InvalidFieldError(ppath + ".type", Unsupported("this part type in user messages"));
      }
    }
    if (first) return InvalidFieldError(path + ".content", "must not be empty for gemini");
    return absl::OkStatus();
  }

  absl::Status ModelParts(const Message& m, const std::string& path) {
    bool first = true;
    std::optional<std::string> signature = SignatureFromExtra(m.extra);
    std::vector<std::string_view> texts;
    if (m.content) {
      if (const std::string* s = std::get_if<std::string>(&*m.content)) {
        if (!s->empty()) texts.push_back(*s);
      } else {
        const auto& parts = std::get<std::vector<ContentPart>>(*m.content);
        for (size_t k = 0; k < parts.size(); ++k) {
          if (parts[k].type == ContentPartType::kText) {
            texts.push_back(parts[k].text);
          } else if (parts[k].type == ContentPartType::kRefusal) {
            texts.push_back(parts[k].refusal);
          } else {
            return InvalidFieldError(absl::StrFormat("%s.content[%d].type", path, k),
                                     Unsupported("this part type in assistant messages"));
          }
        }
      }
    }
    if (m.refusal && !m.refusal->empty()) texts.push_back(*m.refusal);
    for (size_t k = 0; k < texts.size(); ++k) {
      // The text's signature goes back on its last part, where Gemini put it.
      const bool last = k + 1 == texts.size() && m.tool_calls.empty();
      TextPart(texts[k], &first, last && signature ? std::string_view(*signature) : "");
    }
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const ToolCall& call = m.tool_calls[k];
      const std::string cpath = absl::StrFormat("%s.tool_calls[%d]", path, k);
      if (call.type != "function" || !call.function) {
        return InvalidFieldError(cpath + ".type", Unsupported("custom tool calls"));
      }
      if (!first) out_->push_back(',');
      first = false;
      out_->append("{\"functionCall\":{\"name\":");
      AppendJsonString(out_, call.function->name);
      out_->append(",\"args\":");
      std::string_view args = call.function->arguments;
      JsonType type;
      if (args.find_first_not_of(" \t\r\n") == std::string_view::npos) {
        out_->append("{}");
      } else if (!IsValidJson(args, &type) || type != JsonType::kObject) {
        return InvalidFieldError(cpath + ".function.arguments",
                                 "must be a JSON object for gemini (functionCall.args)");
      } else {
        JsonReader r(args, kMaxJsonDepth);
        r.CaptureValue(out_);
      }
      out_->push_back('}');
      std::optional<std::string> sig = SignatureFromExtra(call.extra);
      if (!sig && k == 0 && texts.empty()) sig = signature;
      if (sig) {
        out_->append(",\"thoughtSignature\":");
        AppendJsonString(out_, *sig);
      }
      out_->push_back('}');
      call_names_.emplace_back(call.id, call.function->name);
    }
    if (first) {
      // An assistant turn with nothing Gemini can hold (e.g. only reasoning_content).
      TextPart("", &first, signature ? std::string_view(*signature) : "");
    }
    return absl::OkStatus();
  }

  absl::Status ToolResponse(const Message& m, const std::string& path) {
    const std::string& id = *m.tool_call_id;
    const std::string* name = nullptr;
    for (const auto& [call_id, call_name] : call_names_) {
      if (call_id == id) name = &call_name;
    }
    if (name == nullptr) {
      return InvalidFieldError(path + ".tool_call_id",
                               Cat({"no earlier assistant tool call has the id \"", id,
                                    "\" (gemini needs the function's name)"}));
    }
    std::string text;
    if (m.content) {
      if (const std::string* s = std::get_if<std::string>(&*m.content)) {
        text = *s;
      } else {
        for (const ContentPart& p : std::get<std::vector<ContentPart>>(*m.content)) {
          if (p.type == ContentPartType::kText) text += p.text;
        }
      }
    }
    bool failed = false;  // Anthropic's tool_result is_error
    for (const auto& [n, v] : m.extra) failed = failed || (n == "is_error" && v == "true");
    out_->append("{\"functionResponse\":{\"name\":");
    AppendJsonString(out_, *name);
    out_->append(",\"response\":");
    JsonType type;
    const bool json = IsValidJson(text, &type);
    if (json && type == JsonType::kObject && !failed) {
      JsonReader r(text, kMaxJsonDepth);
      r.CaptureValue(out_);
    } else {
      // Gemini wants an object: anything else is wrapped, and a function that failed is
      // {"error": details} (Gemini's convention).
      out_->append(failed ? "{\"error\":" : "{\"content\":");
      if (json) {
        JsonReader r(text, kMaxJsonDepth);
        r.CaptureValue(out_);
      } else {
        AppendJsonString(out_, text);
      }
      out_->push_back('}');
    }
    out_->append("}}");
    return absl::OkStatus();
  }

  absl::Status Tools(JsonObjectWriter& body) {
    if (!chat_.tools.empty()) {
      body.Key("tools");
      out_->append("[{\"functionDeclarations\":[");
      for (size_t i = 0; i < chat_.tools.size(); ++i) {
        const Tool& t = chat_.tools[i];
        const std::string path = absl::StrFormat("tools[%d]", i);
        if (t.type != "function" || !t.function) {
          return InvalidFieldError(path + ".type", Unsupported(Cat({"tool type \"", t.type,
                                                                    "\""})));
        }
        for (const auto& [name, value] : t.extra) {
          if (name == "cache_control") continue;  // a caching hint: Gemini caches by itself
          return InvalidFieldError(Cat({path, ".", name}), Unsupported("this tool field"));
        }
        if (!t.function->extra.empty()) {
          return InvalidFieldError(Cat({path, ".function.", t.function->extra.front().first}),
                                   Unsupported("this function field"));
        }
        if (i > 0) out_->push_back(',');
        JsonObjectWriter fn(out_);
        fn.Key("name");
        AppendJsonString(out_, t.function->name);
        if (t.function->description) {
          fn.Key("description");
          AppendJsonString(out_, *t.function->description);
        }
        // `strict` has no Gemini counterpart; the schema is enforced by the model anyway.
        if (t.function->parameters) {
          fn.Key(options_.openapi_schema ? "parameters" : "parametersJsonSchema");
          out_->append(*t.function->parameters);
        }
        fn.End();
      }
      out_->append("]}]");
    }
    if (!chat_.tool_choice) return absl::OkStatus();
    const ToolChoice& choice = *chat_.tool_choice;
    std::string mode, allowed;
    if (choice.mode == "none") {
      mode = "NONE";
    } else if (choice.mode == "auto") {
      mode = "AUTO";
    } else if (choice.mode == "required") {
      mode = "ANY";
    } else if (!choice.object.empty()) {
      JsonReader r(choice.object, kMaxJsonDepth);
      std::string type, name;
      ForEachMember(r, [&](std::string_view key) {
        if (key == "type") return ReadStringLoose(r, &type);
        if (key == "function") {
          return ForEachMember(r, [&](std::string_view k2) {
            if (k2 == "name") return ReadStringLoose(r, &name);
            return r.SkipValue();
          });
        }
        return r.SkipValue();
      });
      if (type != "function" || name.empty()) {
        return InvalidFieldError("tool_choice",
                                 Unsupported("this tool_choice (only a function by name)"));
      }
      mode = "ANY";
      allowed = name;
    } else {
      return InvalidFieldError("tool_choice", Unsupported(Cat({"\"", choice.mode, "\""})));
    }
    body.Key("toolConfig");
    out_->append("{\"functionCallingConfig\":{\"mode\":");
    AppendJsonString(out_, mode);
    if (!allowed.empty()) {
      out_->append(",\"allowedFunctionNames\":[");
      AppendJsonString(out_, allowed);
      out_->push_back(']');
    }
    out_->append("}}");
    return absl::OkStatus();
  }

  absl::Status ThinkingConfig(JsonObjectWriter& gen) {
    const std::string& effort = *chat_.reasoning_effort;
    const bool gemini3 = model_.find("gemini-3") != std::string_view::npos;
    gen.Key("thinkingConfig");
    if (effort == "none") {
      if (gemini3) {
        return InvalidFieldError("reasoning_effort",
                                 "\"none\": gemini 3 models cannot turn thinking off");
      }
      out_->append("{\"thinkingBudget\":0}");
      return absl::OkStatus();
    }
    out_->append("{\"includeThoughts\":true,");
    if (gemini3) {
      // Gemini 3 takes a level; "medium" is the closest it has between low and high.
      if (effort != "minimal" && effort != "low" && effort != "medium" && effort != "high") {
        return InvalidFieldError("reasoning_effort",
                                 Unsupported(Cat({"the effort \"", effort, "\""})));
      }
      out_->append("\"thinkingLevel\":");
      AppendJsonString(out_, effort);
    } else {
      int64_t budget = 0;
      if (effort == "minimal") budget = 512;
      else if (effort == "low") budget = 1024;
      else if (effort == "medium") budget = 8192;
      else if (effort == "high") budget = 24576;
      else return InvalidFieldError("reasoning_effort",
                                    Unsupported(Cat({"the effort \"", effort, "\""})));
      out_->append("\"thinkingBudget\":");
      AppendJsonInt(out_, budget);
    }
    out_->push_back('}');
    return absl::OkStatus();
  }

  // The Anthropic-shaped thinking (thinking.h): enabled is a budget, disabled 0, adaptive
  // Gemini's dynamic thinking (-1). Gemini 3 takes a level (the budget's effort, as the
  // OpenAI family gets it) and cannot turn thinking off; its default is dynamic.
  absl::Status ThinkingConfigFromThinking(JsonObjectWriter& gen) {
    const ThinkingSetting& t = *thinking_;
    const bool gemini3 = model_.find("gemini-3") != std::string_view::npos;
    if (t.type == ThinkingSetting::Type::kDisabled) {
      if (gemini3) {
        return InvalidFieldError("thinking.type",
                                 "\"disabled\": gemini 3 models cannot turn thinking off");
      }
      gen.Key("thinkingConfig");
      out_->append("{\"thinkingBudget\":0}");
      return absl::OkStatus();
    }
    gen.Key("thinkingConfig");
    out_->append("{\"includeThoughts\":true");
    if (gemini3) {
      if (t.type == ThinkingSetting::Type::kEnabled) {
        out_->append(",\"thinkingLevel\":");
        AppendJsonString(out_, *ThinkingEffort(t));
      }
    } else {
      out_->append(",\"thinkingBudget\":");
      AppendJsonInt(out_, t.type == ThinkingSetting::Type::kEnabled ? t.budget_tokens : -1);
    }
    out_->push_back('}');
    return absl::OkStatus();
  }

  absl::Status ResponseFormat(JsonObjectWriter& gen) {
    JsonReader r(*chat_.response_format, kMaxJsonDepth);
    std::string type;
    std::optional<std::string> schema;
    ForEachMember(r, [&](std::string_view key) {
      if (key == "type") return ReadStringLoose(r, &type);
      if (key == "json_schema") {
        return ForEachMember(r, [&](std::string_view k2) {
          if (k2 != "schema") return r.SkipValue();
          std::string s;
          if (!r.CaptureValue(&s)) return false;
          schema = std::move(s);
          return true;
        });
      }
      return r.SkipValue();
    });
    if (type == "text") return absl::OkStatus();
    if (type != "json_object" && type != "json_schema") {
      return InvalidFieldError("response_format.type", Unsupported(Cat({"\"", type, "\""})));
    }
    gen.Key("responseMimeType");
    out_->append("\"application/json\"");
    if (type == "json_schema") {
      if (!schema) {
        return InvalidFieldError("response_format.json_schema.schema",
                                 "is required for gemini");
      }
      gen.Key(options_.openapi_schema ? "responseSchema" : "responseJsonSchema");
      out_->append(*schema);
    }
    return absl::OkStatus();
  }

  absl::Status GenerationConfig(JsonObjectWriter& body) {
    std::string gen_text;
    JsonObjectWriter gen(&gen_text);
    std::string* saved = out_;
    out_ = &gen_text;
    auto number = [&](std::string_view key, double v) {
      gen.Key(key);
      AppendJsonDouble(out_, v);
    };
    auto integer = [&](std::string_view key, int64_t v) {
      gen.Key(key);
      AppendJsonInt(out_, v);
    };
    absl::Status status;
    if (chat_.stop) {
      gen.Key("stopSequences");
      out_->push_back('[');
      if (const std::string* s = std::get_if<std::string>(&*chat_.stop)) {
        AppendJsonString(out_, *s);
      } else {
        const auto& v = std::get<std::vector<std::string>>(*chat_.stop);
        if (v.size() > 5) {
          status = InvalidFieldError("stop", "gemini takes at most 5 stop sequences");
        }
        for (size_t i = 0; i < v.size(); ++i) {
          if (i > 0) out_->push_back(',');
          AppendJsonString(out_, v[i]);
        }
      }
      out_->push_back(']');
    }
    if (chat_.temperature) number("temperature", *chat_.temperature);
    if (chat_.top_p) number("topP", *chat_.top_p);
    if (chat_.n) integer("candidateCount", *chat_.n);
    if (chat_.max_completion_tokens) {
      integer("maxOutputTokens", *chat_.max_completion_tokens);
    } else if (chat_.max_tokens) {
      integer("maxOutputTokens", *chat_.max_tokens);
    }
    if (chat_.presence_penalty) number("presencePenalty", *chat_.presence_penalty);
    if (chat_.frequency_penalty) number("frequencyPenalty", *chat_.frequency_penalty);
    if (chat_.seed) integer("seed", *chat_.seed);
    if (chat_.logprobs == true) {
      gen.Key("responseLogprobs");
      out_->append("true");
      if (chat_.top_logprobs) integer("logprobs", *chat_.top_logprobs);
    }
    if (status.ok() && chat_.response_format) status = ResponseFormat(gen);
    if (status.ok() && chat_.reasoning_effort) status = ThinkingConfig(gen);
    if (status.ok() && thinking_) status = ThinkingConfigFromThinking(gen);
    gen.End();
    out_ = saved;
    MODEENVOY_RETURN_IF_ERROR(status);
    if (gen_text.size() > 2) {
      body.Key("generationConfig");
      out_->append(gen_text);
    }
    return absl::OkStatus();
  }

  const GoogleOptions& options_;
  const ChatRequest& chat_;
  std::string_view model_;
  std::string* out_;
  std::optional<ThinkingSetting> thinking_;  // the "thinking" extra, read by CheckTopLevel
  std::vector<std::pair<std::string, std::string>> call_names_;  // tool call id -> name
};

// ---------------------------------------------------------------------------------------
// Response decoding.

absl::Status DecodeWholeResponse(std::string* body) {
  GeminiResponse resp;
  {
    JsonReader r(*body, kMaxJsonDepth);
    JsonType type;
    if (!r.Peek(&type)) return BodyError(r, "not JSON");
    if (type != JsonType::kObject) return BodyError(r, "expected an object");
    if (!ReadResponse(r, &resp) || !r.ExpectEnd()) return BodyError(r, "unreadable");
  }
  if (resp.error.has_value()) return StatusFromGeminiError(*resp.error);
  if (!resp.block_reason.empty() && resp.candidates.empty()) return PromptBlocked(resp);
  std::string out;
  out.reserve(body->size());
  JsonObjectWriter w(&out);
  w.Key("id");
  AppendJsonString(&out, resp.response_id.empty() ? std::string_view("gemini")
                                                   : std::string_view(resp.response_id));
  w.Key("object");
  out.append("\"chat.completion\"");
  w.Key("created");
  AppendJsonInt(&out, CreatedSeconds(resp.create_time));
  w.Key("model");
  AppendJsonString(&out, resp.model_version);
  w.Key("choices");
  out.push_back('[');
  for (size_t i = 0; i < resp.candidates.size(); ++i) {
    Candidate& c = resp.candidates[i];
    const int64_t index = c.index >= 0 ? c.index : static_cast<int64_t>(i);
    if (i > 0) out.push_back(',');
    std::string content, reasoning, signature;
    std::vector<std::string> calls;
    bool has_text = false;
    for (Part& part : c.parts) {
      if (part.kind == Part::Kind::kText) {
        content += part.text;
        has_text = true;
        if (!part.signature.empty()) signature = part.signature;
      } else if (part.kind == Part::Kind::kThought) {
        reasoning += part.text;
        if (!part.signature.empty()) signature = part.signature;
      } else if (part.kind == Part::Kind::kCall && part.call.name) {
        const int64_t k = static_cast<int64_t>(calls.size());
        std::string call;
        JsonObjectWriter cw(&call);
        cw.Key("id");
        AppendJsonString(&call, part.call.id ? *part.call.id
                                             : ToolCallId(resp.response_id, index, k));
        cw.Key("type");
        call.append("\"function\"");
        cw.Key("function");
        call.append("{\"name\":");
        AppendJsonString(&call, *part.call.name);
        call.append(",\"arguments\":");
        AppendJsonString(&call, part.call.args ? *part.call.args : std::string("{}"));
        call.push_back('}');
        if (!part.call.signature.empty()) AppendSignatureMember(cw, part.call.signature);
        cw.End();
        calls.push_back(std::move(call));
      }
    }
    JsonObjectWriter cw(&out);
    cw.Key("index");
    AppendJsonInt(&out, index);
    cw.Key("message");
    JsonObjectWriter mw(&out);
    mw.Key("role");
    out.append("\"assistant\"");
    mw.Key("content");
    if (has_text || calls.empty()) {
      AppendJsonString(&out, content);
    } else {
      out.append("null");
    }
    if (!reasoning.empty()) {
      mw.Key("reasoning_content");
      AppendJsonString(&out, reasoning);
    }
    if (!calls.empty()) {
      mw.Key("tool_calls");
      out.push_back('[');
      for (size_t k = 0; k < calls.size(); ++k) {
        if (k > 0) out.push_back(',');
        out.append(calls[k]);
      }
      out.push_back(']');
    }
    if (!signature.empty()) AppendSignatureMember(mw, signature);
    mw.End();
    cw.Key("finish_reason");
    if (c.finish_reason.empty()) {
      out.append("null");
    } else {
      FinishMapping f = MapFinishReason(c.finish_reason, !calls.empty());
      AppendJsonString(&out, f.reason);
      if (f.keep_native) {
        cw.Key("native_finish_reason");
        AppendJsonString(&out, c.finish_reason);
      }
    }
    cw.Key("logprobs");
    out.append("null");
    cw.End();
  }
  out.push_back(']');
  if (resp.usage.seen) {
    w.Key("usage");
    AppendUsage(&out, resp.usage);
  }
  w.End();
  *body = std::move(out);
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// Ingress: Gemini requests in, Gemini responses and streams out (nlohmann).

std::string GoogleStatusName(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case absl::StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
    case absl::StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case absl::StatusCode::kNotFound: return "NOT_FOUND";
    case absl::StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case absl::StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case absl::StatusCode::kUnavailable: return "UNAVAILABLE";
    case absl::StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case absl::StatusCode::kCancelled: return "CANCELLED";
    case absl::StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case absl::StatusCode::kAborted: return "ABORTED";
    case absl::StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case absl::StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    default: return "INTERNAL";
  }
}

std::string GoogleErrorBody(const absl::Status& status) {
  Json body = {{"error",
                {{"code", HttpStatusForStatus(status)},
                 {"message", std::string(status.message())},
                 {"status", GoogleStatusName(status)}}}};
  return body.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string GeminiFinishReason(const std::optional<std::string>& reason) {
  if (!reason) return "";
  if (*reason == "length") return "MAX_TOKENS";
  if (*reason == "content_filter") return "SAFETY";
  return "STOP";
}

Json UsageMetadata(const Usage& u) {
  int64_t reasoning = 0, cached = 0;
  if (u.completion_tokens_details && u.completion_tokens_details->reasoning_tokens) {
    reasoning = *u.completion_tokens_details->reasoning_tokens;
  }
  if (u.prompt_tokens_details && u.prompt_tokens_details->cached_tokens) {
    cached = *u.prompt_tokens_details->cached_tokens;
  }
  Json m = {{"promptTokenCount", u.prompt_tokens},
            {"candidatesTokenCount", u.completion_tokens - reasoning},
            {"totalTokenCount", u.total_tokens}};
  if (cached > 0) m["cachedContentTokenCount"] = cached;
  if (reasoning > 0) m["thoughtsTokenCount"] = reasoning;
  return m;
}

std::optional<std::string> ExtraString(const ExtraFields& extra, std::string_view name) {
  for (const auto& [k, v] : extra) {
    if (k != name) continue;
    Json j = Json::parse(v, nullptr, false);
    if (j.is_string()) return j.get<std::string>();
  }
  return std::nullopt;
}

Json ArgsObject(const std::string& arguments) {
  Json args = Json::parse(arguments.empty() ? std::string("{}") : arguments, nullptr, false);
  if (!args.is_object()) args = Json::object();
  return args;
}

class GoogleStreamEncoder final : public StreamEncoder {
 public:
  explicit GoogleStreamEncoder(bool json_array) : json_array_(json_array) {}

  absl::Status Encode(const ChatCompletionChunk& chunk, std::string* out) override {
    Json element = {{"candidates", Json::array()}};
    for (const ChunkChoice& c : chunk.choices) {
      Json parts = Json::array();
      if (auto r = ExtraString(c.delta.extra, "reasoning_content"); r && !r->empty()) {
        parts.push_back({{"text", *r}, {"thought", true}});
      }
      if (c.delta.content && !c.delta.content->empty()) {
        parts.push_back({{"text", *c.delta.content}});
      }
      for (const ToolCallDelta& t : c.delta.tool_calls) {
        if (t.function && t.function->name) {
          pending_.push_back({t.index, *t.function->name, t.function->arguments.value_or("")});
        } else if (t.function && t.function->arguments) {
          for (auto& p : pending_) {
            if (p.index == t.index) p.arguments += *t.function->arguments;
          }
        }
      }
      Json candidate = {{"content", {{"parts", Json::array()}, {"role", "model"}}},
                        {"index", c.index}};
      if (c.finish_reason) {
        // Gemini sends whole calls: the collected ones go out with the finishing element.
        for (const auto& p : pending_) {
          parts.push_back(
              {{"functionCall", {{"name", p.name}, {"args", ArgsObject(p.arguments)}}}});
        }
        pending_.clear();
        candidate["finishReason"] = GeminiFinishReason(c.finish_reason);
      }
      if (parts.empty() && !c.finish_reason) continue;
      if (parts.empty()) parts.push_back({{"text", ""}});
      candidate["content"]["parts"] = std::move(parts);
      element["candidates"].push_back(std::move(candidate));
    }
    if (chunk.usage) element["usageMetadata"] = UsageMetadata(*chunk.usage);
    if (element["candidates"].empty() && !chunk.usage) return absl::OkStatus();
    if (element["candidates"].empty()) element.erase("candidates");
    element["modelVersion"] = chunk.model;
    element["responseId"] = chunk.id;
    Emit(element, out);
    return absl::OkStatus();
  }

  void EncodeError(const absl::Status& error, std::string* out) override {
    Emit(Json::parse(GoogleErrorBody(error)), out);
    if (json_array_) out->append("]");
  }

  absl::Status Finish(std::string* out) override {
    if (json_array_) out->append(started_ ? "]" : "[]");
    return absl::OkStatus();
  }

 private:
  struct PendingCall {
    int64_t index;
    std::string name;
    std::string arguments;
  };

  void Emit(const Json& element, std::string* out) {
    std::string text = element.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (json_array_) {
      out->append(started_ ? "\n,\r\n" : "[");
      out->append(text);
    } else {
      out->append("data: ").append(text).append("\r\n\r\n");
    }
    started_ = true;
  }

  const bool json_array_;
  bool started_ = false;
  std::vector<PendingCall> pending_;
};

absl::Status IngressError(std::string path, std::string_view message) {
  return InvalidFieldError(path, message);
}

// The API reads proto JSON: snake_case member names are accepted as well as camelCase, and a
// single object where a list is expected. Rewrites `j` to camelCase and lists, leaving the
// free-form values (arguments, responses, schemas, labels) untouched.
void NormalizeProtoJson(Json& j) {
  if (j.is_array()) {
    for (Json& e : j) NormalizeProtoJson(e);
    return;
  }
  if (!j.is_object()) return;
  Json out = Json::object();
  for (auto& [key, value] : j.items()) {
    std::string camel;
    for (size_t i = 0; i < key.size(); ++i) {
      if (key[i] == '_' && i + 1 < key.size() && key[i + 1] >= 'a' && key[i + 1] <= 'z') {
        camel.push_back(static_cast<char>(key[++i] - 'a' + 'A'));
      } else {
        camel.push_back(key[i]);
      }
    }
    Json v = std::move(value);
    if (camel != "args" && camel != "response" && camel != "parameters" &&
        camel != "parametersJsonSchema" && camel != "responseSchema" &&
        camel != "responseJsonSchema" && camel != "labels") {
      NormalizeProtoJson(v);
    }
    if ((camel == "parts" || camel == "contents" || camel == "functionDeclarations" ||
         camel == "tools") &&
        v.is_object()) {
      v = Json::array({std::move(v)});
    }
    out[camel] = std::move(v);
  }
  j = std::move(out);
}

// Gemini request (JSON) -> unified ChatRequest. Members of an unexpected JSON type make
// nlohmann throw; DecodeGeminiRequest turns that into kInvalidArgument.
absl::StatusOr<ChatRequest> DecodeGeminiRequestOrThrow(const WireRequest& request, bool vertex) {
  // Model and method from the target: .../models/{model}:{method}[?alt=sse]
  std::string_view target = request.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  size_t models = target.rfind("/models/");
  size_t colon = target.rfind(':');
  if (models == std::string_view::npos || colon == std::string_view::npos || colon < models) {
    return absl::NotFoundError(Cat({"not a generateContent target: ", request.target}));
  }
  if (vertex && target.find("/publishers/") == std::string_view::npos) {
    return absl::NotFoundError(Cat({"not a Vertex AI model target: ", request.target}));
  }
  std::string_view method = target.substr(colon + 1);
  if (method != "generateContent" && method != "streamGenerateContent") {
    return absl::NotFoundError(Cat({"unknown method: ", method}));
  }
  ChatRequest chat;
  chat.model = std::string(target.substr(models + 8, colon - models - 8));
  if (method == "streamGenerateContent") chat.stream = true;
  (void)query;

  Json body = Json::parse(request.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    return IngressError("", "Invalid JSON payload received.");
  }
  NormalizeProtoJson(body);
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader top, ObjectReader::Make(body, ""));
  MODEENVOY_RETURN_IF_ERROR(top.RejectUnknown({"contents", "systemInstruction", "tools",
                                               "toolConfig", "generationConfig",
                                               "safetySettings", "cachedContent", "labels"}));
  const Json* contents = top.Find("contents");
  if (contents == nullptr || !contents->is_array() || contents->empty()) {
    return IngressError("contents", "must not be empty");
  }
  std::vector<std::pair<std::string, std::string>> open_calls;  // name -> id
  int call_seq = 0;
  auto text_of = [](const Json& part) { return part.value("text", std::string()); };
  if (const Json* si = top.Find("systemInstruction"); si != nullptr && si->is_object()) {
    std::string text;
    for (const Json& p : si->value("parts", Json::array())) text += text_of(p);
    chat.messages.push_back(MakeMessage(Role::kSystem, text));
  }
  for (size_t i = 0; i < contents->size(); ++i) {
    const Json& c = (*contents)[i];
    std::string path = absl::StrFormat("contents[%d]", i);
    if (!c.is_object()) return IngressError(path, "must be an object");
    std::string role = c.value("role", std::string("user"));
    if (role != "user" && role != "model") {
      return IngressError(path + ".role", Cat({"Please use a valid role: user, model."}));
    }
    const Json parts = c.value("parts", Json::array());
    if (!parts.is_array() || parts.empty()) {
      return IngressError(path + ".parts", "must not be empty");
    }
    Message m = MakeMessage(role == "user" ? Role::kUser : Role::kAssistant);
    std::vector<ContentPart> content;
    std::string text;
    bool multimodal = false;
    for (size_t k = 0; k < parts.size(); ++k) {
      const Json& p = parts[k];
      std::string ppath = absl::StrFormat("%s.parts[%d]", path, k);
      if (!p.is_object()) return IngressError(ppath, "must be an object");
      if (p.contains("text") && !p.value("thought", false)) {
        ContentPart cp;
        cp.text = text_of(p);
        text += cp.text;
        content.push_back(std::move(cp));
      } else if (p.contains("inlineData") || p.contains("fileData")) {
        multimodal = true;
        ContentPart cp;
        cp.type = ContentPartType::kImageUrl;
        cp.image_url = ImageUrl{};
        if (p.contains("inlineData")) {
          const Json& d = p["inlineData"];
          cp.image_url->url = Cat({"data:", d.value("mimeType", std::string()), ";base64,",
                                   d.value("data", std::string())});
        } else {
          cp.image_url->url = p["fileData"].value("fileUri", std::string());
        }
        content.push_back(std::move(cp));
      } else if (p.contains("functionCall")) {
        const Json& f = p["functionCall"];
        ToolCall call;
        call.id = absl::StrFormat("call_%d", call_seq++);
        call.function = FunctionCall{};
        call.function->name = f.value("name", std::string());
        call.function->arguments = f.value("args", Json::object()).dump();
        open_calls.emplace_back(call.function->name, call.id);
        m.tool_calls.push_back(std::move(call));
      } else if (p.contains("functionResponse")) {
        const Json& f = p["functionResponse"];
        std::string name = f.value("name", std::string());
        Message tool = MakeMessage(Role::kTool, f.value("response", Json::object()).dump());
        for (auto it = open_calls.begin(); it != open_calls.end(); ++it) {
          if (it->first == name) {
            tool.tool_call_id = it->second;
            open_calls.erase(it);
            break;
          }
        }
        if (!tool.tool_call_id) {
          return IngressError(ppath + ".functionResponse.name",
                              "does not answer an earlier functionCall");
        }
        chat.messages.push_back(std::move(tool));
      } else if (!p.contains("thought")) {
        return IngressError(ppath, "unsupported part");
      }
    }
    if (!content.empty() || !m.tool_calls.empty()) {
      if (multimodal) {
        m.content = std::move(content);
      } else if (!content.empty() || m.role == Role::kUser) {
        m.content = text;
      }
      chat.messages.push_back(std::move(m));
    }
  }
  if (const Json* tools = top.Find("tools"); tools != nullptr && tools->is_array()) {
    for (const Json& t : *tools) {
      for (const Json& f : t.value("functionDeclarations", Json::array())) {
        Tool tool;
        tool.function = FunctionDefinition{};
        tool.function->name = f.value("name", std::string());
        if (f.contains("description")) tool.function->description = f["description"];
        if (f.contains("parametersJsonSchema")) {
          tool.function->parameters = f["parametersJsonSchema"].dump();
        } else if (f.contains("parameters")) {
          tool.function->parameters = f["parameters"].dump();
        }
        chat.tools.push_back(std::move(tool));
      }
    }
  }
  if (const Json* tc = top.Find("toolConfig"); tc != nullptr && tc->is_object()) {
    Json fcc = tc->value("functionCallingConfig", Json::object());
    std::string mode = fcc.value("mode", std::string("AUTO"));
    ToolChoice choice;
    if (mode == "NONE") choice.mode = "none";
    else if (mode == "ANY") {
      Json allowed = fcc.value("allowedFunctionNames", Json::array());
      if (allowed.size() == 1 && allowed[0].is_string()) {
        choice.object = Json({{"type", "function"},
                              {"function", {{"name", allowed[0].get<std::string>()}}}})
                            .dump();
      } else {
        choice.mode = "required";
      }
    } else choice.mode = "auto";
    chat.tool_choice = choice;
  }
  if (const Json* g = top.Find("generationConfig"); g != nullptr && g->is_object()) {
    if (g->contains("temperature")) chat.temperature = (*g)["temperature"].get<double>();
    if (g->contains("topP")) chat.top_p = (*g)["topP"].get<double>();
    if (g->contains("maxOutputTokens")) {
      chat.max_completion_tokens = (*g)["maxOutputTokens"].get<int64_t>();
    }
    if (g->contains("candidateCount")) chat.n = (*g)["candidateCount"].get<int64_t>();
    if (g->contains("seed")) chat.seed = (*g)["seed"].get<int64_t>();
    if (g->contains("stopSequences")) {
      chat.stop = (*g)["stopSequences"].get<std::vector<std::string>>();
    }
    if (g->value("responseMimeType", std::string()) == "application/json") {
      const Json* schema = g->contains("responseJsonSchema") ? &(*g)["responseJsonSchema"]
                           : g->contains("responseSchema")  ? &(*g)["responseSchema"]
                                                            : nullptr;
      chat.response_format =
          schema == nullptr
              ? std::string(R"({"type":"json_object"})")
              : Json({{"type", "json_schema"},
                      {"json_schema", {{"name", "response"}, {"schema", *schema}}}})
                    .dump();
    }
  }
  return chat;
}

absl::StatusOr<ChatRequest> DecodeGeminiRequest(const WireRequest& request, bool vertex) {
  try {
    return DecodeGeminiRequestOrThrow(request, vertex);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(Cat({"Invalid JSON payload received: ", e.what()}));
  }
}

absl::StatusOr<std::string> EncodeGeminiResponse(const ChatCompletion& completion) {
  Json candidates = Json::array();
  for (const ChatChoice& c : completion.choices) {
    Json parts = Json::array();
    if (auto r = ExtraString(c.message.extra, "reasoning_content"); r && !r->empty()) {
      parts.push_back({{"text", *r}, {"thought", true}});
    }
    if (c.message.content) {
      if (const std::string* s = std::get_if<std::string>(&*c.message.content)) {
        if (!s->empty() || c.message.tool_calls.empty()) parts.push_back({{"text", *s}});
      } else {
        for (const ContentPart& p : std::get<std::vector<ContentPart>>(*c.message.content)) {
          if (p.type == ContentPartType::kText) parts.push_back({{"text", p.text}});
        }
      }
    }
    if (c.message.refusal) parts.push_back({{"text", *c.message.refusal}});
    for (const ToolCall& t : c.message.tool_calls) {
      if (!t.function) continue;
      Json call = {{"name", t.function->name}, {"args", ArgsObject(t.function->arguments)}};
      parts.push_back({{"functionCall", std::move(call)}});
    }
    if (parts.empty()) parts.push_back({{"text", ""}});
    Json cand = {{"content", {{"parts", std::move(parts)}, {"role", "model"}}},
                 {"finishReason", GeminiFinishReason(c.finish_reason.value_or("stop"))},
                 {"index", c.index}};
    candidates.push_back(std::move(cand));
  }
  Json body = {{"candidates", std::move(candidates)}};
  if (completion.usage) body["usageMetadata"] = UsageMetadata(*completion.usage);
  body["modelVersion"] = completion.model;
  body["responseId"] = completion.id;
  return body.dump(2, ' ', false, Json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------

class GoogleDialect final : public Dialect {
 public:
  explicit GoogleDialect(GoogleOptions options) : options_(std::move(options)) {
    if (options_.vertex) {
      base_url_ = options_.location == "global"
                      ? std::string("https://aiplatform.googleapis.com/v1")
                      : Cat({"https://", options_.location, "-aiplatform.googleapis.com/v1"});
    } else {
      base_url_ = "https://generativelanguage.googleapis.com/v1beta";
    }
  }

  std::string_view name() const override { return options_.name; }
  std::string_view default_base_url() const override { return base_url_; }
  ApiKeyHeader api_key_header() const override {
    if (options_.vertex) return {};  // OAuth bearer token
    return {.name = "x-goog-api-key", .prefix = ""};
  }

  absl::Status EncodeRequest(const ChatRequest& chat, const DialectCall& call,
                             WireRequest* out) const override {
    std::string_view model = call.model.empty() ? std::string_view(chat.model) : call.model;
    if (model.substr(0, 7) == "models/") model.remove_prefix(7);
    if (model.empty() || model.find_first_of("/?#:% \t\r\n") != std::string_view::npos) {
      return InvalidFieldError("model", Cat({"\"", model, "\" is not a gemini model name"}));
    }
    if (options_.vertex && options_.project.empty()) {
      return InvalidFieldError("project", "is required (the vertex provider's Google Cloud "
                                          "project id)");
    }
    out->method = "POST";
    out->target.clear();
    if (options_.vertex) {
      out->target = Cat({"/projects/", options_.project, "/locations/", options_.location,
                         "/publishers/", options_.publisher});
    }
    out->target.append("/models/").append(model);
    if (!call.stream) {
      out->target.append(":generateContent");
    } else if (options_.json_array_stream) {
      out->target.append(":streamGenerateContent");
    } else {
      out->target.append(":streamGenerateContent?alt=sse");
    }
    out->headers.emplace_back("content-type", "application/json");
    out->body.clear();
    out->body.reserve(512);
    return RequestEncoder(options_, chat, model, &out->body).Encode();
  }

  Framing ResponseFraming(bool stream) const override {
    if (!stream) return Framing::kJson;
    return options_.json_array_stream ? Framing::kJsonArray : Framing::kSse;
  }

  absl::Status DecodeResponse(std::string* body) const override {
    return DecodeWholeResponse(body);
  }

  std::unique_ptr<StreamTranslator> NewStreamDecoder() const override {
    return std::make_unique<GeminiStreamDecoder>();
  }

  absl::Status DecodeError(int http_status, std::string_view body) const override {
    return StatusFromUpstreamError(http_status, body);
  }

  // Gemini API batchEmbedContents. Vertex AI embeds through :predict with another body,
  // which is not mapped: the default refusal.
  absl::Status EncodeEmbeddingsRequest(const EmbeddingsRequest& request, const DialectCall& call,
                                       WireRequest* out) const override {
    if (options_.vertex) return Dialect::EncodeEmbeddingsRequest(request, call, out);
    return EncodeGeminiEmbeddings(request, EmbeddingsModel(request, call), out);
  }
  absl::StatusOr<EmbeddingsResponse> DecodeEmbeddingsResponse(
      std::string_view body, const EmbeddingsRequest& request,
      const DialectCall& call) const override {
    if (options_.vertex) return Dialect::DecodeEmbeddingsResponse(body, request, call);
    return DecodeGeminiEmbeddings(body, request, EmbeddingsModel(request, call));
  }
  size_t MaxEmbeddingInputsPerCall(const EmbeddingsRequest& request,
                                   const DialectCall& call) const override {
    if (options_.vertex) return Dialect::MaxEmbeddingInputsPerCall(request, call);
    return kGeminiEmbeddingInputsPerCall;
  }

  absl::StatusOr<ChatRequest> DecodeRequest(const WireRequest& request) const override {
    return DecodeGeminiRequest(request, options_.vertex);
  }
  absl::StatusOr<std::string> EncodeResponse(const ChatCompletion& completion) const override {
    return EncodeGeminiResponse(completion);
  }
  std::unique_ptr<StreamEncoder> NewStreamEncoder() const override {
    return std::make_unique<GoogleStreamEncoder>(options_.json_array_stream);
  }
  std::string EncodeErrorBody(const absl::Status& status) const override {
    return GoogleErrorBody(status);
  }

 private:
  const GoogleOptions options_;
  std::string base_url_;
};

absl::StatusOr<bool> OptionalBool(const ObjectReader& r, std::string_view key) {
  const Json* v = r.Find(key);
  if (v == nullptr) return false;
  if (!v->is_boolean()) return InvalidFieldError(r.PathOf(key), "must be a boolean");
  return v->get<bool>();
}

absl::StatusOr<std::unique_ptr<Dialect>> NewGoogle(std::string_view options_json, bool vertex) {
  MODEENVOY_ASSIGN_OR_RETURN(Json json, core_internal::ParseStrictJson(options_json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(json, ""));
  if (vertex) {
    MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown({"stream_framing", "allow_file_uri",
                                               "schema_format", "project", "location",
                                               "publisher"}));
  } else {
    MODEENVOY_RETURN_IF_ERROR(
        r.RejectUnknown({"stream_framing", "allow_file_uri", "schema_format"}));
  }
  GoogleOptions options;
  options.name = vertex ? "vertex" : "gemini";
  options.vertex = vertex;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> framing,
                             r.OptionalString("stream_framing"));
  if (framing && *framing != "sse" && *framing != "json_array") {
    return InvalidFieldError("stream_framing", "must be \"sse\" or \"json_array\"");
  }
  options.json_array_stream = framing == "json_array";
  MODEENVOY_ASSIGN_OR_RETURN(options.allow_file_uri, OptionalBool(r, "allow_file_uri"));
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> schema, r.OptionalString("schema_format"));
  if (schema && *schema != "json_schema" && *schema != "openapi") {
    return InvalidFieldError("schema_format", "must be \"json_schema\" or \"openapi\"");
  }
  options.openapi_schema = schema == "openapi";
  if (vertex) {
    auto url_safe = [](std::string_view s) {
      return s.find_first_of("/?#% \t\r\n") == std::string_view::npos;
    };
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> project, r.OptionalString("project"));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> location, r.OptionalString("location"));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> publisher,
                               r.OptionalString("publisher"));
    if (project) options.project = *project;
    if (location) options.location = *location;
    if (publisher) options.publisher = *publisher;
    using Field = std::pair<std::string_view, const std::string*>;
    for (auto [key, value] : {Field{"project", &options.project},
                              Field{"location", &options.location},
                              Field{"publisher", &options.publisher}}) {
      if (!url_safe(*value)) return InvalidFieldError(key, "must not contain / ? # % or blanks");
    }
  }
  return std::make_unique<GoogleDialect>(std::move(options));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Dialect>> NewGeminiDialect(std::string_view options_json) {
  return NewGoogle(options_json, /*vertex=*/false);
}

absl::StatusOr<std::unique_ptr<Dialect>> NewVertexDialect(std::string_view options_json) {
  return NewGoogle(options_json, /*vertex=*/true);
}

}  // namespace modeenvoy::protocol_internal
