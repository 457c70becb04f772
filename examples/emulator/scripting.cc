// Provider-neutral emulator logic (see scripting.h).
#include "examples/emulator/scripting.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/str_format.h"

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

std::string TruncateToTokens(std::string_view text, int64_t max_tokens,
                             const TokenCounter& count) {
  if (max_tokens < 0 || count(text) <= max_tokens) return std::string(text);
  std::vector<size_t> starts = WordStarts(text);
  std::string_view best;
  for (size_t k = 1; k < starts.size(); ++k) {
    std::string_view prefix = text.substr(0, starts[k]);
    // Trailing whitespace belongs to the next word.
    while (!prefix.empty() && IsSpace(prefix.back())) prefix.remove_suffix(1);
    if (count(prefix) > max_tokens) break;
    best = prefix;
  }
  return std::string(best);
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

const ProviderDialect* FindDialect(const Request& request,
                                   const std::vector<std::unique_ptr<ProviderDialect>>& dialects) {
  for (const auto& d : dialects) {
    if (d->Match(request) != Route::kNone) return d.get();
  }
  return nullptr;
}

ResponsePlan PlanResponse(const Request& request,
                          const std::vector<std::unique_ptr<ProviderDialect>>& dialects,
                          const EmulatorOptions& options, const Headers& queued,
                          uint64_t sequence) {
  const ProviderDialect* dialect = FindDialect(request, dialects);
  if (dialect == nullptr) {
    const ProviderDialect& first = *dialects.front();
    return ErrorPlan(first, first.MakeError(ErrorCause::kUnknownRoute, 404, request));
  }
  ReplyControls controls = options.defaults;
  absl::Status parsed = ApplyControlHeaders(request.headers, &controls);
  if (parsed.ok()) parsed = ApplyControlHeaders(queued, &controls);

  auto with_timing = [&](ResponsePlan plan) {
    plan.first_byte_latency = controls.first_byte_latency;
    plan.part_interval = controls.chunk_interval;
    plan.fail = controls.fail;
    plan.stall = controls.stall;
    Headers common = dialect->ResponseHeaders(sequence);
    plan.headers.insert(plan.headers.end(), common.begin(), common.end());
    return plan;
  };

  if (!parsed.ok()) {
    ApiError e = dialect->MakeError(ErrorCause::kInjected, 400, request);
    e.type = "invalid_request_error";
    e.message = std::string(parsed.message());
    e.param = ControlHeaderOf(parsed);
    e.code = std::nullopt;
    return with_timing(ErrorPlan(*dialect, e));
  }
  if (!options.api_key.empty() && dialect->ApiKey(request) != options.api_key) {
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
    plan.parts.push_back(dialect->RenderModels(options.models));
    return with_timing(std::move(plan));
  }

  TokenCounter counter = options.count_tokens ? options.count_tokens : TokenCounter(CountWords);
  ScriptContext ctx{controls, counter, ClockOrSystem(options.clock), sequence,
                    options.system_fingerprint};
  auto scripted = dialect->Script(request, ctx);
  if (auto* error = std::get_if<ApiError>(&scripted)) {
    return with_timing(ErrorPlan(*dialect, *error));
  }
  const ScriptedReply& reply = std::get<ScriptedReply>(scripted);
  ResponsePlan plan;
  if (reply.stream) {
    plan.streaming = true;
    plan.headers.emplace_back("content-type", std::string(dialect->stream_content_type()));
    plan.parts = dialect->RenderStream(reply);
  } else {
    plan.headers.emplace_back("content-type", std::string(dialect->whole_content_type()));
    plan.parts.push_back(dialect->RenderWhole(reply));
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
  return dialects;
}

}  // namespace modeenvoy::emulator
