// Provider-neutral emulator logic (see scripting.h).
#include "examples/emulator/scripting.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <utility>
#include <variant>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"
#include "modeenvoy/protocol/error.h"
#include "modeenvoy/tokenizer/model.h"

namespace modeenvoy::emulator {
namespace {

using json = nlohmann::json;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

absl::Status BadControl(std::string_view header, std::string_view expected,
                        std::string_view value) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s: expected %s, got '%s'", header, expected, value));
}

// Parses an integer in [lo, hi].
bool ParseInt(std::string_view text, int64_t lo, int64_t hi, int64_t* out) {
  text = Trim(text);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) return false;
  *out = v;
  return true;
}

constexpr int64_t kMaxMillis = 24LL * 3600 * 1000;

absl::Status ParseMillis(std::string_view header, std::string_view value, absl::Duration* out) {
  int64_t ms = 0;
  if (!ParseInt(value, 0, kMaxMillis, &ms)) {
    return BadControl(header, "milliseconds in [0, 86400000]", value);
  }
  *out = absl::Milliseconds(ms);
  return absl::OkStatus();
}

absl::Status ApplyOne(std::string_view name, std::string_view value, ReplyControls* c) {
  int64_t n = 0;
  if (name == "x-emulator-latency-ms") return ParseMillis(name, value, &c->first_byte_latency);
  if (name == "x-emulator-chunk-interval-ms") {
    return ParseMillis(name, value, &c->chunk_interval);
  }
  if (name == "x-emulator-chunks") {
    if (!ParseInt(value, 0, 100000, &n)) {
      return BadControl(name, "an integer in [0, 100000]", value);
    }
    c->chunks = static_cast<int>(n);
    return absl::OkStatus();
  }
  if (name == "x-emulator-reply") {
    c->reply = std::string(value);
    return absl::OkStatus();
  }
  if (name == "x-emulator-status") {
    if (!ParseInt(value, 0, 599, &n) || (n != 0 && n < 400)) {
      return BadControl(name, "0 or an HTTP error status in [400, 599]", value);
    }
    c->status = static_cast<int>(n);
    return absl::OkStatus();
  }
  if (name == "x-emulator-error-type") {
    c->error_type = std::string(value);
    return absl::OkStatus();
  }
  if (name == "x-emulator-error-message") {
    c->error_message = std::string(value);
    return absl::OkStatus();
  }
  if (name == "x-emulator-error-code") {
    c->error_code = std::string(value);
    return absl::OkStatus();
  }
  if (name == "x-emulator-retry-after") {
    if (!ParseInt(value, 0, 86400, &n)) return BadControl(name, "seconds in [0, 86400]", value);
    c->retry_after_seconds = static_cast<int>(n);
    return absl::OkStatus();
  }
  if (name == "x-emulator-fail") {
    std::string v = Lower(Trim(value));
    if (v == "none" || v.empty()) c->fail = FailMode::kNone;
    else if (v == "reset") c->fail = FailMode::kReset;
    else if (v == "reset-mid") c->fail = FailMode::kResetMid;
    else if (v == "stall") c->fail = FailMode::kStall;
    else if (v == "stall-mid") c->fail = FailMode::kStallMid;
    else if (v == "stall-first-byte") c->fail = FailMode::kStallFirstByte;
    else {
      return BadControl(name, "one of none, reset, reset-mid, stall, stall-mid, stall-first-byte",
                        value);
    }
    return absl::OkStatus();
  }
  if (name == "x-emulator-script") {
    auto script = ParseScript(value);
    if (!script.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: %s", name, script.status().message()));
    }
    c->script = *std::move(script);
    return absl::OkStatus();
  }
  if (name == "x-emulator-stall-ms") {
    if (Lower(Trim(value)) == "forever") {
      c->stall = absl::InfiniteDuration();
      return absl::OkStatus();
    }
    return ParseMillis(name, value, &c->stall);
  }
  return absl::InvalidArgumentError(absl::StrFormat("%s: unknown emulator control", name));
}

// Byte length of the UTF-8 code point starting with `lead` (1 for invalid bytes).
size_t CodePointLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if ((lead & 0xE0) == 0xC0) return 2;
  if ((lead & 0xF0) == 0xE0) return 3;
  if ((lead & 0xF8) == 0xF0) return 4;
  return 1;
}

// Start offsets of the code points of `text`.
std::vector<size_t> CodePointStarts(std::string_view text) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < text.size();) {
    starts.push_back(i);
    i += std::min(CodePointLength(static_cast<unsigned char>(text[i])), text.size() - i);
  }
  return starts;
}

// Start offsets of the words of `text`; a word owns the whitespace before it.
std::vector<size_t> WordStarts(std::string_view text) {
  std::vector<size_t> starts;
  if (text.empty()) return starts;
  starts.push_back(0);
  for (size_t i = 1; i < text.size(); ++i) {
    if (IsSpace(text[i]) && !IsSpace(text[i - 1])) starts.push_back(i);
  }
  return starts;
}

// Groups the units starting at `starts` into `groups` nearly equal runs.
std::vector<std::string> Group(std::string_view text, const std::vector<size_t>& starts,
                               size_t groups) {
  std::vector<std::string> out;
  const size_t units = starts.size();
  groups = std::min(groups, units);
  for (size_t g = 0; g < groups; ++g) {
    size_t first = g * units / groups;
    size_t last = (g + 1) * units / groups;  // exclusive
    size_t begin = starts[first];
    size_t end = last < units ? starts[last] : text.size();
    out.emplace_back(text.substr(begin, end - begin));
  }
  return out;
}

uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

json SchemaValue(const json& schema, int depth) {
  if (!schema.is_object() || depth > 8) return json::object();
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty()) {
    return (*e)[0];
  }
  std::string type;
  if (auto t = schema.find("type"); t != schema.end()) {
    if (t->is_string()) type = t->get<std::string>();
    else if (t->is_array() && !t->empty() && (*t)[0].is_string()) type = (*t)[0].get<std::string>();
  }
  if (type.empty() && schema.contains("properties")) type = "object";
  if (type == "string") return "example";
  if (type == "integer" || type == "number") return 1;
  if (type == "boolean") return true;
  if (type == "array") return json::array();
  if (type == "null") return nullptr;
  json out = json::object();
  auto props = schema.find("properties");
  auto req = schema.find("required");
  if (props == schema.end() || !props->is_object() || req == schema.end() || !req->is_array()) {
    return out;
  }
  for (const json& name : *req) {
    if (!name.is_string()) continue;
    auto p = props->find(name.get<std::string>());
    out[name.get<std::string>()] = p != props->end() ? SchemaValue(*p, depth + 1) : json("example");
  }
  return out;
}

ResponsePlan ErrorPlan(const ProviderDialect& dialect, const ApiError& error) {
  ResponsePlan plan;
  plan.status = error.status;
  plan.headers.emplace_back("content-type", std::string(dialect.whole_content_type()));
  plan.headers.insert(plan.headers.end(), error.headers.begin(), error.headers.end());
  plan.parts.push_back(dialect.RenderError(error));
  return plan;
}


// ---- Script parsing ----

// A short rendering of a JSON value for error messages.
std::string Shown(const json& v) {
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

absl::Status Bad(std::string_view path, std::string_view expected, const json& got) {
  return InvalidFieldError(path, absl::StrFormat("expected %s, got %s", expected, Shown(got)));
}

std::string Join(std::string_view prefix, std::string_view field) {
  return prefix.empty() ? std::string(field) : absl::StrFormat("%s.%s", prefix, field);
}

absl::Status GetString(const json& v, std::string_view path, std::string* out) {
  if (!v.is_string()) return Bad(path, "a string", v);
  *out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status GetInt(const json& v, std::string_view path, int64_t lo, int64_t hi, int64_t* out) {
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi ||
      (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi))) {
    return Bad(path, absl::StrFormat("an integer in [%d, %d]", lo, hi), v);
  }
  *out = v.get<int64_t>();
  return absl::OkStatus();
}

absl::Status GetMillis(const json& v, std::string_view path, absl::Duration* out) {
  int64_t ms = 0;
  absl::Status s = GetInt(v, path, 0, kMaxMillis, &ms);
  if (s.ok()) *out = absl::Milliseconds(ms);
  return s;
}

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Response headers a script may not set: the server owns framing and content type.
bool IsReservedHeader(std::string_view lower) {
  for (std::string_view r : {"content-length", "transfer-encoding", "connection", "content-type",
                             "keep-alive", "upgrade", "trailer", "te"}) {
    if (lower == r) return true;
  }
  return false;
}

// `fields` lists the members the object at `path` may have.
absl::Status CheckFields(const json& obj, std::string_view path,
                         std::initializer_list<std::string_view> fields) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
      return InvalidFieldError(Join(path, key), "unknown script field");
    }
  }
  return absl::OkStatus();
}

// {status, type, message, code, param, retry_after}; `status_required` for "error".
absl::Status ParseError(const json& v, std::string_view path, bool status_required,
                        ScriptedError* out) {
  if (!v.is_object()) return Bad(path, "an object", v);
  absl::Status s = CheckFields(v, path, {"status", "type", "message", "code", "param",
                                         "retry_after"});
  if (!s.ok()) return s;
  if (auto it = v.find("status"); it != v.end()) {
    int64_t status = 0;
    s = GetInt(*it, Join(path, "status"), 400, 599, &status);
    if (!s.ok()) return s;
    out->status = static_cast<int>(status);
  } else if (status_required) {
    return InvalidFieldError(Join(path, "status"), "required");
  }
  struct Text {
    const char* name;
    std::optional<std::string>* field;
  } texts[] = {{"type", &out->type}, {"message", &out->message}, {"code", &out->code},
               {"param", &out->param}};
  for (const Text& t : texts) {
    auto it = v.find(t.name);
    if (it == v.end()) continue;
    std::string value;
    s = GetString(*it, Join(path, t.name), &value);
    if (!s.ok()) return s;
    *t.field = std::move(value);
  }
  if (auto it = v.find("retry_after"); it != v.end()) {
    int64_t seconds = 0;
    s = GetInt(*it, Join(path, "retry_after"), 0, 86400, &seconds);
    if (!s.ok()) return s;
    out->retry_after_seconds = static_cast<int>(seconds);
  }
  return absl::OkStatus();
}

absl::Status ParseToolCalls(const json& v, std::string_view path,
                            std::vector<ScriptedToolCall>* out) {
  if (!v.is_array() || v.empty() || v.size() > 128) {
    return Bad(path, "an array of 1 to 128 tool calls", v);
  }
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = absl::StrFormat("%s[%d]", path, i);
    const json& c = v[i];
    if (!c.is_object()) return Bad(at, "an object", c);
    absl::Status s = CheckFields(c, at, {"name", "arguments", "id"});
    if (!s.ok()) return s;
    ScriptedToolCall call;
    auto name = c.find("name");
    if (name == c.end()) return InvalidFieldError(Join(at, "name"), "required");
    s = GetString(*name, Join(at, "name"), &call.name);
    if (!s.ok()) return s;
    if (call.name.empty()) return InvalidFieldError(Join(at, "name"), "must not be empty");
    call.arguments = "{}";
    if (auto args = c.find("arguments"); args != c.end()) {
      json parsed = *args;
      if (args->is_string()) {
        const std::string& text = args->get_ref<const std::string&>();
        parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
      }
      if (!parsed.is_object()) {
        return Bad(Join(at, "arguments"), "a JSON object or a string holding one", *args);
      }
      call.arguments = parsed.dump(-1, ' ', false, json::error_handler_t::replace);
    }
    if (auto id = c.find("id"); id != c.end()) {
      std::string value;
      s = GetString(*id, Join(at, "id"), &value);
      if (!s.ok()) return s;
      if (value.empty()) return InvalidFieldError(Join(at, "id"), "must not be empty");
      call.id = std::move(value);
    }
    out->push_back(std::move(call));
  }
  return absl::OkStatus();
}

constexpr std::string_view kStepFields[] = {
    "reply",      "reply_tokens",  "tool_calls", "refusal",    "reasoning",
    "reasoning_tokens", "cached_tokens", "finish_reason", "error", "interrupt",
    "latency_ms", "chunk_interval_ms", "chunks", "headers"};

bool IsStepField(std::string_view key) {
  return std::find(std::begin(kStepFields), std::end(kStepFields), key) != std::end(kStepFields);
}

absl::Status ParseStep(const json& v, std::string_view path, ScriptStep* step) {
  if (!v.is_object()) return Bad(path.empty() ? "script" : path, "an object", v);
  for (const auto& [key, value] : v.items()) {
    if (!IsStepField(key)) return InvalidFieldError(Join(path, key), "unknown script field");
  }
  absl::Status s;
  auto field = [&](const char* name) -> const json* {
    auto it = v.find(name);
    return it == v.end() ? nullptr : &*it;
  };
  auto text = [&](const char* name, std::optional<std::string>* out) {
    if (const json* f = field(name); f != nullptr && s.ok()) {
      std::string value;
      s = GetString(*f, Join(path, name), &value);
      if (s.ok()) *out = std::move(value);
    }
  };
  auto integer = [&](const char* name, int64_t lo, int64_t hi, std::optional<int64_t>* out) {
    if (const json* f = field(name); f != nullptr && s.ok()) {
      int64_t value = 0;
      s = GetInt(*f, Join(path, name), lo, hi, &value);
      if (s.ok()) *out = value;
    }
  };
  auto millis = [&](const char* name, std::optional<absl::Duration>* out) {
    if (const json* f = field(name); f != nullptr && s.ok()) {
      absl::Duration d;
      s = GetMillis(*f, Join(path, name), &d);
      if (s.ok()) *out = d;
    }
  };
  text("reply", &step->reply);
  integer("reply_tokens", 1, 100000, &step->reply_tokens);
  text("refusal", &step->refusal);
  text("reasoning", &step->reasoning);
  integer("reasoning_tokens", 0, 10000000, &step->reasoning_tokens);
  integer("cached_tokens", 0, 10000000, &step->cached_tokens);
  text("finish_reason", &step->finish_reason);
  millis("latency_ms", &step->latency);
  millis("chunk_interval_ms", &step->chunk_interval);
  std::optional<int64_t> chunks;
  integer("chunks", 0, 100000, &chunks);
  if (!s.ok()) return s;
  if (chunks.has_value()) step->chunks = static_cast<int>(*chunks);
  if (step->finish_reason.has_value()) {
    static constexpr std::string_view kReasons[] = {"stop", "length", "tool_calls",
                                                    "content_filter", "function_call"};
    if (std::find(std::begin(kReasons), std::end(kReasons), *step->finish_reason) ==
        std::end(kReasons)) {
      return Bad(Join(path, "finish_reason"),
                 "one of stop, length, tool_calls, content_filter, function_call",
                 json(*step->finish_reason));
    }
  }
  if (const json* f = field("tool_calls")) {
    step->tool_calls.emplace();
    s = ParseToolCalls(*f, Join(path, "tool_calls"), &*step->tool_calls);
    if (!s.ok()) return s;
  }
  if (const json* f = field("error")) {
    step->error.emplace();
    s = ParseError(*f, Join(path, "error"), /*status_required=*/true, &*step->error);
    if (!s.ok()) return s;
  }
  if (const json* f = field("interrupt")) {
    const std::string at = Join(path, "interrupt");
    if (!f->is_object()) return Bad(at, "an object", *f);
    s = CheckFields(*f, at, {"after_chunks", "reset", "error"});
    if (!s.ok()) return s;
    StreamInterrupt interrupt;
    auto after = f->find("after_chunks");
    if (after == f->end()) return InvalidFieldError(Join(at, "after_chunks"), "required");
    s = GetInt(*after, Join(at, "after_chunks"), 0, 1000000, &interrupt.after_chunks);
    if (!s.ok()) return s;
    auto reset = f->find("reset");
    auto error = f->find("error");
    if (reset != f->end() && !(reset->is_boolean() && reset->get<bool>())) {
      return Bad(Join(at, "reset"), "true", *reset);
    }
    if ((reset != f->end()) == (error != f->end())) {
      return InvalidFieldError(at, "needs exactly one of \"reset\": true or \"error\"");
    }
    interrupt.reset = reset != f->end();
    if (error != f->end()) {
      s = ParseError(*error, Join(at, "error"), /*status_required=*/false, &interrupt.error);
      if (!s.ok()) return s;
    }
    step->interrupt = interrupt;
  }
  if (const json* f = field("headers")) {
    const std::string at = Join(path, "headers");
    if (!f->is_object()) return Bad(at, "an object of header names to strings", *f);
    for (const auto& [name, value] : f->items()) {
      const std::string hp = Join(at, name);
      std::string lower = Lower(name);
      if (lower.empty() || !std::all_of(lower.begin(), lower.end(), IsTokenChar)) {
        return InvalidFieldError(hp, "not a valid header name");
      }
      if (IsReservedHeader(lower)) {
        return InvalidFieldError(hp, "set by the emulator itself; a script cannot");
      }
      if (!value.is_string()) return Bad(hp, "a string", value);
      const std::string& v = value.get_ref<const std::string&>();
      if (v.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return InvalidFieldError(hp, "header values cannot hold CR, LF or NUL");
      }
      step->headers.emplace_back(lower, v);
    }
  }
  // Fields that cannot go together.
  auto has = [&](const char* name) { return v.contains(name); };
  if (has("reply") && has("reply_tokens")) {
    return InvalidFieldError(Join(path, "reply_tokens"), "cannot be combined with reply");
  }
  if (has("refusal")) {
    for (const char* other : {"reply", "reply_tokens", "tool_calls"}) {
      if (has(other)) {
        return InvalidFieldError(Join(path, "refusal"),
                                 absl::StrFormat("cannot be combined with %s", other));
      }
    }
  }
  if (has("error")) {
    for (const auto& [key, value] : v.items()) {
      if (key != "error" && key != "latency_ms" && key != "headers") {
        return InvalidFieldError(Join(path, "error"),
                                 absl::StrFormat("cannot be combined with %s (an error "
                                                 "answers instead of the model)",
                                                 key));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view Request::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

bool Request::HasHeader(std::string_view lower_name) const {
  for (const auto& h : headers) {
    if (h.first == lower_name) return true;
  }
  return false;
}

absl::Status ApplyControlHeaders(const Headers& headers, ReplyControls* controls) {
  for (const auto& [raw_name, value] : headers) {
    std::string name = Lower(raw_name);
    if (name.rfind("x-emulator-", 0) != 0) continue;
    absl::Status s = ApplyOne(name, value, controls);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string ControlHeaderOf(const absl::Status& status) {
  std::string_view m(status.message().data(), status.message().size());
  size_t colon = m.find(':');
  return colon == std::string_view::npos ? std::string() : std::string(m.substr(0, colon));
}

int64_t CountWords(std::string_view text) {
  int64_t words = 0;
  bool in_word = false;
  for (char c : text) {
    bool space = IsSpace(c);
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  return words;
}

std::string ReplyText(const ReplyControls& controls, std::string_view echo) {
  if (controls.reply.has_value()) return *controls.reply;
  if (!Trim(echo).empty()) return std::string(Trim(echo));
  return "OK";
}

absl::StatusOr<std::shared_ptr<const Script>> ParseScript(std::string_view json_text) {
  json doc = json::parse(json_text.begin(), json_text.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded()) return absl::InvalidArgumentError("script: not valid JSON");
  if (!doc.is_object()) return Bad("script", "a JSON object", doc);
  auto script = std::make_shared<Script>();
  if (auto id = doc.find("id"); id != doc.end()) {
    if (!id->is_string() || id->get_ref<const std::string&>().empty() ||
        id->get_ref<const std::string&>().size() > 256) {
      return Bad("id", "a string of 1 to 256 characters", *id);
    }
    script->id = id->get<std::string>();
  }
  auto steps = doc.find("steps");
  if (steps == doc.end()) {
    json step = doc;
    step.erase("id");
    script->steps.emplace_back();
    absl::Status s = ParseStep(step, "", &script->steps.back());
    if (!s.ok()) return s;
    return std::shared_ptr<const Script>(std::move(script));
  }
  for (const auto& [key, value] : doc.items()) {
    if (key != "id" && key != "steps") {
      return InvalidFieldError(key, IsStepField(key) ? "belongs inside steps[] when steps is "
                                                       "given"
                                                     : "unknown script field");
    }
  }
  if (script->id.empty()) {
    return InvalidFieldError("id", "required with steps (it keys the attempt counter)");
  }
  if (!steps->is_array() || steps->empty() || steps->size() > 1000) {
    return Bad("steps", "an array of 1 to 1000 steps", *steps);
  }
  for (size_t i = 0; i < steps->size(); ++i) {
    script->steps.emplace_back();
    absl::Status s =
        ParseStep((*steps)[i], absl::StrFormat("steps[%d]", i), &script->steps.back());
    if (!s.ok()) return s;
  }
  return std::shared_ptr<const Script>(std::move(script));
}

absl::StatusOr<std::optional<std::string>> TakeDirective(std::string* text) {
  constexpr std::string_view kDirective = "@emulator";
  std::optional<std::string> found;
  std::string kept;
  std::string_view rest(*text);
  bool first_line = true;
  bool removed = false;
  while (true) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    std::string_view trimmed = Trim(line);
    const bool directive =
        trimmed.rfind(kDirective, 0) == 0 &&
        (trimmed.size() == kDirective.size() || IsSpace(trimmed[kDirective.size()]) ||
         trimmed[kDirective.size()] == '{');
    if (directive) {
      if (found.has_value()) {
        return absl::InvalidArgumentError("more than one @emulator directive line");
      }
      found = std::string(Trim(trimmed.substr(kDirective.size())));
      removed = true;
    } else {
      if (!first_line) kept += '\n';
      kept += line;
      first_line = false;
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  if (removed) *text = std::move(kept);
  return found;
}

const ScriptStep& StepFor(const Script& script, uint64_t attempt) {
  return script.steps[std::min<uint64_t>(attempt, script.steps.size() - 1)];
}

UsageCounting UsageCounting::Words() { return UsageCounting(); }

UsageCounting UsageCounting::Tokenizer(EncodingOptions options) {
  UsageCounting counting;
  counting.words_ = false;
  counting.options_ = std::move(options);
  return counting;
}

absl::StatusOr<UsageCounting> UsageCounting::Resolve(UsageCountingMode mode,
                                                     const EncodingOptions& options) {
  if (mode == UsageCountingMode::kWords) return Words();
  absl::StatusOr<std::shared_ptr<const Encoding>> probe = GetEncoding("o200k_base", options);
  if (probe.ok()) return Tokenizer(options);
  if (mode == UsageCountingMode::kTokenizer) return probe.status();
  return Words();
}

absl::StatusOr<TextCounter> UsageCounting::ForModel(std::string_view model) const {
  if (words_) return TextCounter{};
  absl::StatusOr<std::shared_ptr<const Encoding>> encoding = EncodingForModel(model, options_);
  if (encoding.status().code() == absl::StatusCode::kNotFound &&
      !EncodingNameForModel(model).ok()) {
    encoding = GetEncoding("o200k_base", options_);  // a model tiktoken does not know
  }
  if (!encoding.ok()) return encoding.status();
  return TextCounter{*std::move(encoding)};
}

int64_t TextCounter::Count(std::string_view text) const {
  if (encoding == nullptr) return CountWords(text);
  return static_cast<int64_t>(encoding->CountOrdinary(text));
}

std::string TextCounter::name() const {
  return encoding == nullptr ? std::string("words") : encoding->name();
}

std::string TextCounter::Truncate(std::string_view text, int64_t max_tokens) const {
  if (max_tokens < 0 || Count(text) <= max_tokens) return std::string(text);
  if (encoding != nullptr) {
    // Ordinary tokens partition the bytes, so the first k tokens are a prefix of `text`.
    std::vector<Token> tokens = encoding->EncodeOrdinary(text);
    std::vector<size_t> ends;  // byte offset after each token
    size_t offset = 0;
    for (Token t : tokens) {
      absl::StatusOr<std::string_view> bytes = encoding->DecodeSingleTokenBytes(t);
      offset += bytes.ok() ? bytes->size() : 0;
      ends.push_back(offset);
    }
    for (int64_t k = std::min<int64_t>(max_tokens, static_cast<int64_t>(ends.size())); k > 0;
         --k) {
      size_t end = ends[static_cast<size_t>(k - 1)];
      while (end > 0 && end < text.size() &&
             (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
        --end;  // never inside a code point
      }
      std::string_view prefix = text.substr(0, end);
      if (Count(prefix) <= max_tokens) return std::string(prefix);
    }
    return std::string();
  }
  std::vector<size_t> starts = WordStarts(text);
  std::string_view best;
  for (size_t k = 1; k < starts.size(); ++k) {
    std::string_view prefix = text.substr(0, starts[k]);
    // Trailing whitespace belongs to the next word.
    while (!prefix.empty() && IsSpace(prefix.back())) prefix.remove_suffix(1);
    if (Count(prefix) > max_tokens) break;
    best = prefix;
  }
  return std::string(best);
}

std::string LongText(int64_t tokens, const TextCounter& counter) {
  // Each is one token with and without a leading space in o200k_base, cl100k_base,
  // p50k_base and r50k_base (checked with tiktoken), and one word.
  static constexpr std::string_view kWords[] = {
      "the",  "of",    "and",  "to",    "in",   "is",    "that", "for",  "it",    "with",
      "as",   "was",   "on",   "be",    "at",   "by",    "this", "had",  "not",   "are",
      "but",  "from",  "or",   "have",  "an",   "they",  "which", "one", "you",   "were",
      "her",  "all",   "she",  "there", "would", "their", "we",  "him",  "been",  "has",
      "when", "who",   "will", "more",  "no",   "if",    "out",  "so",   "said",  "what",
      "up",   "its",   "about", "into", "than", "them",  "can",  "only", "other", "new",
      "some", "could", "time", "these"};
  std::string text;
  uint64_t state = 0x5EED;
  for (int64_t i = 0; i < tokens; ++i) {
    if (i > 0) text += ' ';
    text += kWords[SplitMix(state) % std::size(kWords)];
  }
  // The words above make this exact; keep the contract even if an encoding disagrees.
  while (!text.empty() && counter.Count(text) > tokens) {
    size_t space = text.rfind(' ');
    text.resize(space == std::string::npos ? 0 : space);
  }
  return text;
}

std::vector<std::string> SplitPieces(std::string_view text, int chunks) {
  if (text.empty()) return {};
  std::vector<size_t> words = WordStarts(text);
  if (chunks <= 0) return Group(text, words, words.size());
  if (words.size() >= static_cast<size_t>(chunks)) {
    return Group(text, words, static_cast<size_t>(chunks));
  }
  return Group(text, CodePointStarts(text), static_cast<size_t>(chunks));
}

std::vector<std::string> SplitFragments(std::string_view text, size_t size) {
  std::vector<std::string> out;
  size = std::max<size_t>(size, 1);
  size_t i = 0;
  while (i < text.size()) {
    size_t end = std::min(text.size(), i + size);
    while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
    out.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return out;
}

std::string MakeId(std::string_view prefix, size_t length, uint64_t seed) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id(prefix);
  uint64_t state = seed;
  for (size_t i = 0; i < length; ++i) id.push_back(kAlphabet[SplitMix(state) % 62]);
  return id;
}

uint64_t HashBytes(std::string_view bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x100000001b3ULL);
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t SplitMix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::vector<float> EmulatedEmbedding(std::string_view text, int64_t dims) {
  const uint64_t h = HashBytes(text);
  std::vector<double> x(static_cast<size_t>(dims));
  double sum = 0;
  for (int64_t i = 0; i < dims; ++i) {
    const uint64_t z = SplitMix64(h + static_cast<uint64_t>(i + 1) * 0x9E3779B97F4A7C15ULL);
    x[i] = 2.0 * (static_cast<double>(z >> 11) * 0x1.0p-53) - 1.0;
    sum += x[i] * x[i];
  }
  const double norm = std::sqrt(sum);
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(x[i] / norm);
  return out;
}

std::string FloatArrayJson(const std::vector<float>& values) {
  std::string out;
  out.reserve(values.size() * 13 + 2);
  out.push_back('[');
  char buf[32];
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out.push_back(',');
    auto [ptr, ec] = std::to_chars(buf, buf + sizeof(buf), values[i]);
    out.append(buf, ec == std::errc() ? static_cast<size_t>(ptr - buf) : 0);
  }
  out.push_back(']');
  return out;
}

std::vector<PlannedCall> PlanToolCalls(std::string_view last_user_text,
                                       const std::vector<std::string>& tool_names,
                                       ToolChoice choice, std::string_view named) {
  std::vector<PlannedCall> lines;
  if (tool_names.empty() || choice == ToolChoice::kNone) return lines;
  size_t pos = 0;
  while (pos <= last_user_text.size()) {
    size_t nl = last_user_text.find('\n', pos);
    std::string_view line = Trim(last_user_text.substr(
        pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? last_user_text.size() + 1 : nl + 1;
    if (line.rfind("call ", 0) != 0) continue;
    line = Trim(line.substr(5));
    size_t name_end = 0;
    while (name_end < line.size() && !IsSpace(line[name_end]) && line[name_end] != '{') {
      ++name_end;
    }
    std::string name(line.substr(0, name_end));
    if (std::find(tool_names.begin(), tool_names.end(), name) == tool_names.end()) continue;
    PlannedCall call{name, std::nullopt};
    std::string_view args = Trim(line.substr(name_end));
    if (!args.empty()) {
      json parsed = json::parse(args.begin(), args.end(), nullptr, /*allow_exceptions=*/false);
      if (parsed.is_object()) call.arguments = parsed.dump();
    }
    lines.push_back(std::move(call));
  }
  switch (choice) {
    case ToolChoice::kNamed: {
      for (PlannedCall& call : lines) {
        if (call.name == named) return {std::move(call)};
      }
      return {PlannedCall{std::string(named), std::nullopt}};
    }
    case ToolChoice::kRequired:
      if (lines.empty()) lines.push_back(PlannedCall{tool_names.front(), std::nullopt});
      return lines;
    default:
      return lines;
  }
}

std::string ArgumentsFromSchema(const json& schema) {
  json v = SchemaValue(schema, 0);
  if (!v.is_object()) v = json::object();
  return v.dump();
}

std::string ArgumentsFromSchemaText(std::string_view schema_json) {
  if (schema_json.empty()) return "{}";
  json schema = json::parse(schema_json.begin(), schema_json.end(), nullptr,
                            /*allow_exceptions=*/false);
  return ArgumentsFromSchema(schema);
}

absl::StatusOr<ScriptedReply> ComposeReply(const ParsedRequest& request, const ScriptStep* step,
                                           const ReplyControls& controls,
                                           const TextCounter& counter,
                                           const ProviderDialect& dialect) {
  ScriptedReply r;
  r.id = request.id;
  r.model = request.model;
  r.created = request.created;
  r.choices = request.choices;
  r.stream = request.stream;
  r.include_usage = request.include_usage;
  r.system_fingerprint = request.system_fingerprint;
  r.seed = request.seed;
  r.extra = request.extra;
  r.prompt_tokens = request.prompt_tokens;
  static const ScriptStep kUnscripted;
  const ScriptStep& s = step != nullptr ? *step : kUnscripted;
  const int chunks = s.chunks.value_or(controls.chunks);

  // What the message holds: scripted text, calls or refusal, else the built-in rules.
  const bool scripted_answer =
      s.reply.has_value() || s.reply_tokens.has_value() || s.tool_calls.has_value() ||
      s.refusal.has_value();
  std::vector<PlannedCall> planned;
  if (s.tool_calls.has_value()) {
    for (const ScriptedToolCall& c : *s.tool_calls) planned.push_back({c.name, c.arguments});
  } else if (!scripted_answer) {
    planned = PlanToolCalls(request.last_user, request.tool_names, request.tool_choice,
                            request.named_tool);
  }
  for (size_t i = 0; i < planned.size(); ++i) {
    ToolCall call;
    const bool scripted_id = s.tool_calls.has_value() && (*s.tool_calls)[i].id.has_value();
    call.id = scripted_id ? *(*s.tool_calls)[i].id : dialect.ToolCallId(request.seed + 1 + i);
    call.name = planned[i].name;
    if (planned[i].arguments.has_value()) {
      call.arguments = *planned[i].arguments;
    } else {
      auto it = std::find(request.tool_names.begin(), request.tool_names.end(), call.name);
      size_t idx = static_cast<size_t>(it - request.tool_names.begin());
      call.arguments = idx < request.tool_schemas.size()
                           ? ArgumentsFromSchemaText(request.tool_schemas[idx])
                           : "{}";
    }
    r.tool_calls.push_back(std::move(call));
  }

  std::string text;
  if (s.reply.has_value()) {
    text = *s.reply;
  } else if (s.reply_tokens.has_value()) {
    text = LongText(*s.reply_tokens, counter);
  } else if (!scripted_answer && planned.empty()) {
    text = ReplyText(controls, request.echo);
    if (!controls.reply.has_value()) {
      // Structured output: answer with JSON of the requested shape.
      if (request.format == OutputFormat::kJsonObject) {
        text = json{{"reply", request.echo}}.dump(-1, ' ', false, json::error_handler_t::replace);
      } else if (request.format == OutputFormat::kJsonSchema) {
        text = ArgumentsFromSchemaText(request.format_schema);
      }
    }
  }

  // Reasoning comes first and spends the max_tokens budget first, as reasoning models do.
  r.reasoning = s.reasoning.value_or("");
  r.reasoning_tokens = s.reasoning_tokens.value_or(counter.Count(r.reasoning));
  bool cut = false;
  int64_t budget = request.max_tokens;
  if (budget >= 0 && r.reasoning_tokens > budget) {
    if (!s.reasoning_tokens.has_value()) r.reasoning = counter.Truncate(r.reasoning, budget);
    r.reasoning_tokens = s.reasoning_tokens.has_value() ? budget : counter.Count(r.reasoning);
    cut = true;
    text.clear();
    budget = 0;
  } else if (budget >= 0) {
    budget -= r.reasoning_tokens;
  }
  if (!cut) {
    std::string shortened = counter.Truncate(text, budget);
    cut = shortened.size() < text.size();
    text = std::move(shortened);
  }
  r.text = std::move(text);
  r.text_pieces = SplitPieces(r.text, chunks);
  r.reasoning_pieces = SplitPieces(r.reasoning, 0);

  int64_t completion = counter.Count(r.text) + r.reasoning_tokens;
  for (const ToolCall& c : r.tool_calls) {
    completion += counter.Count(c.name) + counter.Count(c.arguments);
  }
  if (s.refusal.has_value()) {
    r.refusal = *s.refusal;
    r.refusal_pieces = SplitPieces(*r.refusal, chunks);
    completion += counter.Count(*r.refusal);
  }
  r.completion_tokens = completion * r.choices;
  r.reasoning_tokens *= r.choices;

  if (s.cached_tokens.has_value()) {
    if (*s.cached_tokens > r.prompt_tokens) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cached_tokens: %d exceeds the request's %d prompt tokens",
                          *s.cached_tokens, r.prompt_tokens));
    }
    r.cached_tokens = *s.cached_tokens;
  }
  if (s.finish_reason.has_value()) {
    r.finish_reason = *s.finish_reason;
  } else if (!r.tool_calls.empty()) {
    r.finish_reason = "tool_calls";
  } else if (cut) {
    r.finish_reason = "length";
  } else {
    r.finish_reason = "stop";
  }
  if (r.stream) r.interrupt = s.interrupt;
  return r;
}

const ProviderDialect* FindDialect(const Request& request,
                                   const std::vector<std::unique_ptr<ProviderDialect>>& dialects) {
  for (const auto& d : dialects) {
    if (d->Match(request) != Route::kNone) return d.get();
  }
  return nullptr;
}

ResponsePlan PlanResponse(const Request& request, const PlanContext& ctx,
                          const Headers& queued, uint64_t sequence) {
  const ProviderDialect* dialect = FindDialect(request, ctx.dialects);
  if (dialect == nullptr) {
    const ProviderDialect& first = *ctx.dialects.front();
    return ErrorPlan(first, first.MakeError(ErrorCause::kUnknownRoute, 404, request));
  }
  ReplyControls controls = ctx.options.defaults;
  absl::Status parsed = ApplyControlHeaders(request.headers, &controls);
  if (parsed.ok()) parsed = ApplyControlHeaders(queued, &controls);

  Headers extra_headers;  // a script's, and how usage was counted
  auto with_timing = [&](ResponsePlan plan) {
    plan.first_byte_latency = controls.first_byte_latency;
    plan.part_interval = controls.chunk_interval;
    if (plan.fail == FailMode::kNone) plan.fail = controls.fail;
    plan.stall = controls.stall;
    Headers common = dialect->ResponseHeaders(sequence);
    plan.headers.insert(plan.headers.end(), common.begin(), common.end());
    plan.headers.insert(plan.headers.end(), extra_headers.begin(), extra_headers.end());
    return plan;
  };
  auto invalid = [&](const absl::Status& status, std::optional<std::string> param) {
    ApiError e = dialect->MakeError(ErrorCause::kInjected, 400, request);
    e.type = "invalid_request_error";
    e.message = std::string(status.message());
    e.param = std::move(param);
    e.code = std::nullopt;
    return with_timing(ErrorPlan(*dialect, e));
  };

  if (!parsed.ok()) return invalid(parsed, ControlHeaderOf(parsed));
  if (!ctx.options.api_key.empty() && dialect->ApiKey(request) != ctx.options.api_key) {
    return with_timing(
        ErrorPlan(*dialect, dialect->MakeError(ErrorCause::kUnauthorized, 401, request)));
  }
  if (controls.status != 0) {
    ApiError e = dialect->MakeError(ErrorCause::kInjected, controls.status, request);
    if (!controls.error_type.empty()) e.type = controls.error_type;
    if (!controls.error_message.empty()) e.message = controls.error_message;
    if (!controls.error_code.empty()) e.code = controls.error_code;
    if (controls.status == 429 || controls.status == 503) {
      e.headers.emplace_back("retry-after", std::to_string(controls.retry_after_seconds));
    }
    return with_timing(ErrorPlan(*dialect, e));
  }
  if (dialect->Match(request) == Route::kListModels) {
    ResponsePlan plan;
    plan.headers.emplace_back("content-type", std::string(dialect->whole_content_type()));
    plan.parts.push_back(dialect->RenderModelsFor(request, ctx.options.models));
    return with_timing(std::move(plan));
  }

  auto scripted_error_plan = [&](const ScriptedError& scripted) {
    ApiError e = dialect->MakeError(ErrorCause::kInjected, scripted.status, request);
    if (scripted.type) e.type = *scripted.type;
    if (scripted.message) e.message = *scripted.message;
    if (scripted.code) e.code = *scripted.code;
    if (scripted.param) e.param = *scripted.param;
    if (scripted.retry_after_seconds.has_value()) {
      e.headers.emplace_back("retry-after", std::to_string(*scripted.retry_after_seconds));
    } else if (e.status == 429 || e.status == 503) {
      e.headers.emplace_back("retry-after", std::to_string(controls.retry_after_seconds));
    }
    return with_timing(ErrorPlan(*dialect, e));
  };

  const std::string model = dialect->Model(request);
  absl::StatusOr<TextCounter> counter = ctx.counting.ForModel(model);
  if (!counter.ok()) {
    ApiError e = dialect->MakeError(ErrorCause::kInjected, 500, request);
    e.message = absl::StrFormat("emulator: cannot count tokens for model '%s': %s", model,
                                counter.status().message());
    return with_timing(ErrorPlan(*dialect, e));
  }
  extra_headers.emplace_back("x-emulator-token-counter", counter->name());
  ScriptContext sctx{*counter, ctx.clock, sequence, ctx.options.system_fingerprint};
  if (dialect->Match(request) == Route::kEmbeddings) {
    // Embeddings: the header script's (or a queued one's) error, latency and headers apply;
    // the answer itself is always the deterministic vectors.
    auto ask = dialect->ParseEmbeddings(request, sctx);
    if (auto* error = std::get_if<ApiError>(&ask)) return with_timing(ErrorPlan(*dialect, *error));
    if (controls.script != nullptr) {
      const Script& script = *controls.script;
      const ScriptStep& step = StepFor(script, script.id.empty() ? 0 : ctx.next_attempt(script.id));
      if (step.latency.has_value()) controls.first_byte_latency = *step.latency;
      extra_headers.insert(extra_headers.end(), step.headers.begin(), step.headers.end());
      if (step.error.has_value()) return scripted_error_plan(*step.error);
    }
    const EmbeddingsAsk& e = std::get<EmbeddingsAsk>(ask);
    std::vector<std::vector<float>> vectors;
    vectors.reserve(e.texts.size());
    for (const std::string& text : e.texts) vectors.push_back(EmulatedEmbedding(text, e.dimensions));
    ResponsePlan plan;
    plan.headers.emplace_back("content-type", std::string(dialect->whole_content_type()));
    plan.headers.insert(plan.headers.end(), e.headers.begin(), e.headers.end());
    plan.parts.push_back(dialect->RenderEmbeddings(e, vectors));
    return with_timing(std::move(plan));
  }
  auto request_parsed = dialect->Parse(request, sctx);
  if (auto* error = std::get_if<ApiError>(&request_parsed)) {
    return with_timing(ErrorPlan(*dialect, *error));
  }
  const ParsedRequest& preq = std::get<ParsedRequest>(request_parsed);

  // The script: the header's (or a queued one), else the prompt's directive.
  if (controls.script != nullptr && preq.directive != nullptr) {
    return invalid(absl::InvalidArgumentError(
                       "x-emulator-script: the request also has an @emulator directive in "
                       "its prompt; send one or the other"),
                   "x-emulator-script");
  }
  const Script* script =
      controls.script != nullptr ? controls.script.get() : preq.directive.get();
  const std::string script_param =
      controls.script != nullptr ? "x-emulator-script" : preq.directive_param;
  const ScriptStep* step = nullptr;
  if (script != nullptr) {
    step = &StepFor(*script, script->id.empty() ? 0 : ctx.next_attempt(script->id));
    if (step->latency.has_value()) controls.first_byte_latency = *step->latency;
    if (step->chunk_interval.has_value()) controls.chunk_interval = *step->chunk_interval;
    extra_headers.insert(extra_headers.end(), step->headers.begin(), step->headers.end());
  }

  // A scripted error, or an interrupted whole response answered as the error it became.
  const ScriptedError* scripted_error = nullptr;
  if (step != nullptr && step->error.has_value()) scripted_error = &*step->error;
  if (step != nullptr && step->interrupt.has_value() && !step->interrupt->reset &&
      !preq.stream) {
    scripted_error = &step->interrupt->error;
  }
  if (scripted_error != nullptr) return scripted_error_plan(*scripted_error);

  absl::StatusOr<ScriptedReply> reply = ComposeReply(preq, step, controls, *counter, *dialect);
  if (!reply.ok()) {
    return invalid(absl::InvalidArgumentError(
                       absl::StrFormat("%s: %s", script_param, reply.status().message())),
                   script_param);
  }
  ResponsePlan plan;
  if (reply->stream) {
    plan.streaming = true;
    plan.headers.emplace_back("content-type", dialect->StreamContentType(*reply));
    plan.parts = dialect->RenderStream(*reply);
    if (reply->interrupt.has_value() && reply->interrupt->reset) {
      plan.fail = FailMode::kResetMid;
      plan.fail_at = plan.parts.size();  // every event rendered, then the reset
    }
  } else {
    plan.headers.emplace_back("content-type", std::string(dialect->whole_content_type()));
    plan.parts.push_back(dialect->RenderWhole(*reply));
    if (step != nullptr && step->interrupt.has_value() && step->interrupt->reset) {
      plan.fail = FailMode::kResetMid;  // half the body, then the reset
    }
  }
  return with_timing(std::move(plan));
}

ResponsePlan PlanHttpError(ErrorCause cause, int status, const Request& request,
                           const std::vector<std::unique_ptr<ProviderDialect>>& dialects) {
  const ProviderDialect& first = *dialects.front();
  ResponsePlan plan = ErrorPlan(first, first.MakeError(cause, status, request));
  plan.close = true;
  return plan;
}

std::string RenderStatsJson(const EmulatorStats& stats) {
  auto render = [](const RecordedRequest& r) {
    json headers = json::object();
    for (const auto& [name, value] : r.headers) {
      if (headers.contains(name)) {
        headers[name] = headers[name].get<std::string>() + ", " + value;
      } else {
        headers[name] = value;
      }
    }
    return json{{"method", r.method}, {"target", r.target}, {"headers", headers},
                {"body", json(r.body)}};
  };
  json recent = json::array();
  for (const RecordedRequest& r : stats.recent) recent.push_back(render(r));
  json out = {{"connections", stats.connections},
              {"requests", stats.requests},
              {"aborted", stats.aborted},
              {"last_request", stats.recent.empty() ? json(nullptr) : render(stats.recent.back())},
              {"recent", recent}};
  // Bodies are bytes: invalid UTF-8 is replaced rather than failing the dump.
  return out.dump(2, ' ', false, json::error_handler_t::replace);
}

absl::Status ParseQueuedControls(std::string_view body, Headers* headers, int* times) {
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return absl::InvalidArgumentError("body: expected a JSON object");
  *times = 1;
  if (auto t = doc.find("times"); t != doc.end()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 1 || t->get<int64_t>() > 1000000) {
      return absl::InvalidArgumentError("times: expected an integer in [1, 1000000]");
    }
    *times = static_cast<int>(t->get<int64_t>());
  }
  headers->clear();
  auto h = doc.find("headers");
  if (h == doc.end() || !h->is_object()) {
    return absl::InvalidArgumentError("headers: expected an object of x-emulator-* headers");
  }
  for (const auto& [name, value] : h->items()) {
    std::string lower = Lower(name);
    if (lower.rfind("x-emulator-", 0) != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("headers.%s: not an x-emulator-* control", name));
    }
    headers->emplace_back(lower, value.is_string() ? value.get<std::string>() : value.dump());
  }
  ReplyControls probe;
  return ApplyControlHeaders(*headers, &probe);
}

ResponsePlan PlanJson(int status, std::string body) {
  ResponsePlan plan;
  plan.status = status;
  plan.headers.emplace_back("content-type", "application/json");
  plan.parts.push_back(std::move(body));
  return plan;
}

std::vector<std::unique_ptr<ProviderDialect>> DefaultDialects() {
  std::vector<std::unique_ptr<ProviderDialect>> dialects;
  dialects.push_back(NewOpenAiDialect());  // first: its errors answer unknown routes
  dialects.push_back(NewAnthropicDialect());
  dialects.push_back(NewOpenAiResponsesDialect());
  dialects.push_back(NewBedrockDialect());
  dialects.push_back(NewOllamaDialect());
  dialects.push_back(NewCohereDialect());
  dialects.push_back(NewKserveDialect());
  dialects.push_back(NewAzureDialect());
  dialects.push_back(NewGeminiDialect());
  return dialects;
}

}  // namespace modeenvoy::emulator
