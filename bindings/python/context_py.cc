// bindings/python/context_py.cc: shims over include/modeenvoy/context/ for
// bindings/python/modeenvoy/context.py. Records and messages cross as JSON text (the record
// codec and the protocol's message codec do the work, context.py builds the dicts); the GIL
// is released while a store operation or a window runs.
//
// Any ContextStore plugs in through PyContextStore: a store that completes inline (memory)
// needs nothing more; one bound to an event loop (Redis, NewRedis below) comes with a Drive
// that runs its private poll loop until the operation's callback fired. The loop is only
// run from inside a call, which PyContextStore serializes, so a store bound to one loop is
// only ever used on one thread at a time.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bindings/python/register.h"
#include "bindings/python/status_py.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/redis_store.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/context/window.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace py = pybind11;

namespace modeenvoy::python {

// Runs a store's event loop until `done()` returns true; returns done() (false: it gave up,
// e.g. on its timeout).
using Drive = std::function<bool(absl::FunctionRef<bool()> done)>;

// One appended history entry as context.py passes it: (message JSON, pinned, summary).
using EntryIn = std::tuple<std::string, bool, bool>;
// (model, provider, upstream_model, usage JSON or None, usage_estimated).
using ModelChoiceIn =
    std::tuple<std::string, std::string, std::string, std::optional<std::string>, bool>;
// One listed session: (session_id, turn_count, created, updated), times as RFC 3339.
using SummaryOut = std::tuple<std::string, int64_t, std::string, std::string>;

// A ContextStore used synchronously from Python. Thread-safe: calls are serialized.
class PyContextStore {
 public:
  // `drive` may be empty for a store that always completes inline. `keep` (e.g. the
  // store's event loop) is destroyed after the store.
  PyContextStore(std::unique_ptr<ContextStore> store, Drive drive, std::shared_ptr<void> keep)
      : store_(std::move(store)), drive_(std::move(drive)), keep_(std::move(keep)) {}
  ~PyContextStore() {
    store_.reset();
    keep_.reset();
  }

  std::string_view kind() const { return store_->kind(); }

  // (record JSON, version), or nullopt when there is no such session.
  std::optional<std::pair<std::string, uint64_t>> Get(const std::string& session_id) {
    absl::StatusOr<std::optional<StoredContext>> got;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      got = Await<std::optional<StoredContext>>(
          [&](auto done) { return store_->Get(session_id, std::move(done)); });
    }
    std::optional<StoredContext> stored = ValueOrThrow(std::move(got));
    if (!stored.has_value()) return std::nullopt;
    std::string json;
    {
      py::gil_scoped_release release;
      json = SerializeContextRecord(*stored->record);
    }
    return std::make_pair(std::move(json), stored->version);
  }

  // One turn: `entries` appended with the next turn number, the assistant tool calls among
  // them added to the agent state and tool messages recorded as the results of the calls
  // they answer. Without `expected`, the record is read and the append retried on a
  // version conflict; with it, a stored version other than `expected` is kAborted.
  uint64_t Append(const std::string& session_id, const std::vector<EntryIn>& entries,
                  const std::string& owner, std::optional<uint64_t> expected,
                  const std::map<std::string, std::string>& metadata,
                  const std::optional<ModelChoiceIn>& model_choice) {
    absl::StatusOr<uint64_t> version;
    {
      py::gil_scoped_release release;
      version = AppendTurn(session_id, entries, owner, expected, metadata, model_choice);
    }
    return ValueOrThrow(std::move(version));
  }

  bool Delete(const std::string& session_id) {
    absl::StatusOr<bool> existed;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      existed = Await<bool>([&](auto done) { return store_->Delete(session_id, std::move(done)); });
    }
    return ValueOrThrow(std::move(existed));
  }

  std::pair<std::vector<SummaryOut>, std::string> List(const std::string& owner,
                                                       const std::string& cursor,
                                                       int64_t limit) {
    if (limit < 1) ThrowStatus(InvalidFieldError("limit", absl::StrCat("must be >= 1, got ", limit)));
    absl::StatusOr<SessionPage> page;
    {
      py::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mu_);
      page = Await<SessionPage>([&](auto done) {
        return store_->List(owner, cursor, static_cast<size_t>(limit), std::move(done));
      });
    }
    SessionPage p = ValueOrThrow(std::move(page));
    std::vector<SummaryOut> out;
    out.reserve(p.sessions.size());
    for (const SessionSummary& s : p.sessions) {
      out.emplace_back(s.session_id, s.turn_count, Rfc3339(s.created), Rfc3339(s.updated));
    }
    return {std::move(out), std::move(p.next_cursor)};
  }

 private:
  // As the record writes times.
  static std::string Rfc3339(absl::Time t) {
    return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E9SZ", t, absl::UTCTimeZone());
  }

  // Starts an operation and waits for its callback. REQUIRES: mu_ held, GIL released.
  template <typename T, typename Start>
  absl::StatusOr<T> Await(Start start) {
    std::optional<absl::StatusOr<T>> out;
    StoreHandle handle = start([&out](absl::StatusOr<T> v) { out = std::move(v); });
    if (!out.has_value() && !(drive_ && drive_([&] { return out.has_value(); }))) {
      handle.reset();  // cancelled: the callback never runs after `out` is gone
      return absl::DeadlineExceededError(absl::StrCat(
          "the ", std::string(store_->kind()), " context store did not complete the operation"));
    }
    return *std::move(out);
  }

  absl::StatusOr<uint64_t> AppendTurn(const std::string& session_id,
                                      const std::vector<EntryIn>& entries,
                                      const std::string& owner, std::optional<uint64_t> expected,
                                      const std::map<std::string, std::string>& metadata,
                                      const std::optional<ModelChoiceIn>& model_choice) {
    std::vector<HistoryEntry> parsed;
    parsed.reserve(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      const auto& [json, pinned, summary] = entries[i];
      absl::StatusOr<Message> m = ParseMessage(json, absl::StrCat("messages[", i, "]"));
      if (!m.ok()) return m.status();
      parsed.push_back(HistoryEntry{.message = *std::move(m), .turn = 0, .pinned = pinned,
                                    .summary = summary});
    }
    std::optional<ModelChoice> choice;
    if (model_choice.has_value()) {
      const auto& [model, provider, upstream, usage, estimated] = *model_choice;
      choice.emplace();
      choice->model = model;
      choice->provider = provider;
      choice->upstream_model = upstream;
      choice->usage_estimated = estimated;
      if (usage.has_value()) {
        absl::StatusOr<Usage> u = ParseUsage(*usage, "model_choice.usage");
        if (!u.ok()) return u.status();
        choice->usage = *std::move(u);
      }
    }

    std::lock_guard<std::mutex> lock(mu_);
    constexpr int kMaxAttempts = 100;
    for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
      absl::StatusOr<std::optional<StoredContext>> got = Await<std::optional<StoredContext>>(
          [&](auto done) { return store_->Get(session_id, std::move(done)); });
      if (!got.ok()) return got.status();
      const ContextRecord* stored = got->has_value() ? (*got)->record.get() : nullptr;
      const uint64_t version = got->has_value() ? (*got)->version : 0;
      if (expected.has_value() && *expected != version) {
        return absl::AbortedError(absl::StrCat("session ", session_id, ": expected version ",
                                               *expected, ", stored version ", version,
                                               version == 0 ? " (no such session)" : ""));
      }
      if (stored != nullptr && stored->owner != owner) {
        return absl::PermissionDeniedError(
            absl::StrCat("session ", session_id, " belongs to another owner"));
      }
      ContextAppend a = TurnOf(stored, owner, parsed, metadata, choice);
      got = absl::StatusOr<std::optional<StoredContext>>();  // release the record first
      absl::StatusOr<uint64_t> written = Await<uint64_t>([&](auto done) {
        return store_->Append(session_id, version, std::move(a), std::move(done));
      });
      if (written.ok() || expected.has_value() ||
          written.status().code() != absl::StatusCode::kAborted) {
        return written;
      }
    }
    return absl::AbortedError(absl::StrCat("session ", session_id, ": still conflicting after ",
                                           kMaxAttempts, " attempts"));
  }

  static std::string ContentText(const Message& m) {
    if (!m.content.has_value()) return "";
    if (const auto* s = std::get_if<std::string>(&*m.content)) return *s;
    std::string out;
    for (const ContentPart& part : std::get<std::vector<ContentPart>>(*m.content)) {
      if (part.type == ContentPartType::kText) out += part.text;
    }
    return out;
  }

  // The append of one turn after `stored` (null: the session is new). Tool messages answer
  // the latest call with their id not yet answered, as the record's v1 migration reads them.
  static ContextAppend TurnOf(const ContextRecord* stored, const std::string& owner,
                              const std::vector<HistoryEntry>& entries,
                              const std::map<std::string, std::string>& metadata,
                              const std::optional<ModelChoice>& choice) {
    ContextAppend a;
    const int64_t turn = (stored != nullptr ? stored->turn_count : 0) + 1;
    a.owner = owner;
    a.turns = 1;
    a.now = SystemClock().Now();
    a.metadata = metadata;
    std::vector<bool> answered;  // of stored->tool_calls, by this append
    if (stored != nullptr) answered.resize(stored->tool_calls.size(), false);
    for (const HistoryEntry& e : entries) {
      HistoryEntry& entry = a.entries.emplace_back(e);
      entry.turn = turn;
      const Message& m = entry.message;
      for (const ToolCall& call : m.tool_calls) {
        ToolInvocation& inv = a.tool_calls.emplace_back();
        inv.turn = turn;
        inv.id = call.id;
        if (call.function.has_value()) {
          inv.name = call.function->name;
          inv.arguments = call.function->arguments;
        }
      }
      if (m.role != Role::kTool || !m.tool_call_id.has_value()) continue;
      bool found = false;
      for (auto it = a.tool_calls.rbegin(); it != a.tool_calls.rend() && !found; ++it) {
        if (it->id == *m.tool_call_id && !it->result.has_value()) {
          it->result = ContentText(m);
          found = true;
        }
      }
      for (size_t i = answered.size(); i > 0 && !found; --i) {
        const ToolInvocation& inv = stored->tool_calls[i - 1];
        if (inv.id == *m.tool_call_id && !inv.result.has_value() && !answered[i - 1]) {
          a.tool_results.emplace_back(i - 1, ContentText(m));
          answered[i - 1] = true;
          found = true;
        }
      }
    }
    if (choice.has_value()) {
      a.model_choice = *choice;
      a.model_choice->turn = turn;
    }
    return a;
  }

  std::mutex mu_;
  std::unique_ptr<ContextStore> store_;
  Drive drive_;
  std::shared_ptr<void> keep_;
};

namespace {

std::unique_ptr<PyContextStore> NewMemory(size_t max_bytes, size_t max_record_bytes,
                                          std::optional<double> ttl_seconds, int shards) {
  if (max_bytes == 0) ThrowStatus(InvalidFieldError("max_bytes", "must be > 0"));
  if (max_record_bytes == 0) ThrowStatus(InvalidFieldError("max_record_bytes", "must be > 0"));
  if (shards < 1) ThrowStatus(InvalidFieldError("shards", "must be >= 1"));
  MemoryContextStoreOptions options;
  options.max_bytes = max_bytes;
  options.max_record_bytes = max_record_bytes;
  options.shards = shards;
  if (ttl_seconds.has_value()) {
    if (!(*ttl_seconds > 0)) {
      ThrowStatus(InvalidFieldError("ttl_seconds", "must be > 0 (None: never expire)"));
    }
    options.ttl = absl::Seconds(*ttl_seconds);
  } else {
    options.ttl = absl::InfiniteDuration();
  }
  return std::make_unique<PyContextStore>(NewMemoryContextStore(options), Drive(), nullptr);
}

// A Redis (or Redis Cluster) store on a poll loop of its own. Option errors (a malformed
// url, rediss://, a prefix with braces, timeouts <= 0) are kInvalidArgument naming the
// option; an unreachable server is not an error here but the operations' (UNAVAILABLE).
std::unique_ptr<PyContextStore> NewRedis(const std::string& url, const std::string& key_prefix,
                                         std::optional<double> ttl_seconds,
                                         size_t max_record_bytes, double connect_timeout_seconds,
                                         double operation_timeout_seconds, bool cluster,
                                         const std::vector<std::string>& cluster_seed_nodes) {
  RedisContextStoreOptions options;
  options.url = url;
  options.key_prefix = key_prefix;
  options.max_record_bytes = max_record_bytes;
  options.cluster = cluster;
  options.cluster_seed_nodes = cluster_seed_nodes;
  if (ttl_seconds.has_value()) {
    if (!(*ttl_seconds > 0)) {
      ThrowStatus(InvalidFieldError("ttl_seconds", "must be > 0 (None: never expire)"));
    }
    options.ttl = absl::Seconds(*ttl_seconds);
  } else {
    options.ttl = absl::InfiniteDuration();
  }
  if (!(connect_timeout_seconds > 0)) {
    ThrowStatus(InvalidFieldError("connect_timeout", "must be > 0 seconds"));
  }
  if (!(operation_timeout_seconds > 0)) {
    ThrowStatus(InvalidFieldError("operation_timeout", "must be > 0 seconds"));
  }
  options.connect_timeout = absl::Seconds(connect_timeout_seconds);
  options.operation_timeout = absl::Seconds(operation_timeout_seconds);
  if (absl::Status valid = ValidateRedisContextStoreOptions(options); !valid.ok()) {
    // "<option>: <reason>" -> the error's param names the option.
    const std::string text(valid.message());
    const size_t colon = text.find(": ");
    ThrowStatus(colon == std::string::npos
                    ? InvalidFieldError("url", text)
                    : InvalidFieldError(text.substr(0, colon), text.substr(colon + 2)));
  }
  std::shared_ptr<PollEventLoop> loop = NewPollEventLoop();
  absl::StatusOr<std::unique_ptr<ContextStore>> store = NewRedisContextStore(loop.get(), options);
  if (!store.ok()) ThrowStatus(store.status());
  // Every operation completes within the store's own timeouts (a connect, then the
  // operation); the drive's bound only guards against a store that broke that promise.
  const absl::Duration bound = options.connect_timeout + options.operation_timeout +
                               absl::Seconds(1);
  Drive drive = [loop = loop.get(), bound](absl::FunctionRef<bool()> done) {
    return loop->RunUntil(done, bound);
  };
  return std::make_unique<PyContextStore>(*std::move(store), std::move(drive), std::move(loop));
}

// Shared by every fit_context call of the process, so repeated windows of one conversation
// count only their new messages.
MessageTokenCache& TokenCache() {
  static MessageTokenCache* cache = new MessageTokenCache({});
  return *cache;
}

// Windows `history` + `messages` for `model` into `budget` tokens. Returns (indices of the
// history entries dropped, tokens of the window). Models without a known encoding are
// counted with o200k_base, as the gateway does.
std::pair<std::vector<size_t>, int64_t> FitContextShim(const std::vector<std::string>& messages,
                                                       const std::vector<EntryIn>& history,
                                                       std::vector<int64_t> turns,
                                                       const std::string& model,
                                                       int64_t budget) {
  absl::StatusOr<WindowResult> fitted;
  {
    py::gil_scoped_release release;
    fitted = [&]() -> absl::StatusOr<WindowResult> {
      std::vector<Message> fresh;
      fresh.reserve(messages.size());
      for (size_t i = 0; i < messages.size(); ++i) {
        absl::StatusOr<Message> m = ParseMessage(messages[i], absl::StrCat("messages[", i, "]"));
        if (!m.ok()) return m.status();
        fresh.push_back(*std::move(m));
      }
      std::vector<HistoryEntry> entries;
      entries.reserve(history.size());
      for (size_t i = 0; i < history.size(); ++i) {
        const auto& [json, pinned, summary] = history[i];
        absl::StatusOr<Message> m = ParseMessage(json, absl::StrCat("history[", i, "]"));
        if (!m.ok()) return m.status();
        entries.push_back(HistoryEntry{.message = *std::move(m), .turn = turns[i],
                                       .pinned = pinned, .summary = summary});
      }
      absl::StatusOr<std::string> name = EncodingNameForModel(model);
      absl::StatusOr<std::shared_ptr<const Encoding>> enc =
          GetEncoding(name.ok() ? std::string_view(*name) : std::string_view("o200k_base"));
      if (!enc.ok()) return enc.status();
      WindowOptions options;
      options.budget_tokens = budget;
      options.counting.model = model;
      options.copy_messages = false;
      return FitContext(entries, fresh, **enc, options, &TokenCache());
    }();
  }
  WindowResult w = ValueOrThrow(std::move(fitted));
  return {std::move(w.dropped), w.tokens};
}

}  // namespace
}  // namespace modeenvoy::python

void RegisterContext(py::module_& m) {
  using modeenvoy::python::PyContextStore;
  py::class_<PyContextStore>(m, "_ContextStore", "Internal: a context store (see modeenvoy.ContextStore).")
      .def_static("memory", &modeenvoy::python::NewMemory, py::arg("max_bytes"),
                  py::arg("max_record_bytes"), py::arg("ttl_seconds"), py::arg("shards"))
      .def_static("redis", &modeenvoy::python::NewRedis, py::arg("url"), py::arg("key_prefix"),
                  py::arg("ttl_seconds"), py::arg("max_record_bytes"),
                  py::arg("connect_timeout"), py::arg("operation_timeout"), py::arg("cluster"),
                  py::arg("cluster_seed_nodes"))
      .def_property_readonly("kind", [](const PyContextStore& s) { return std::string(s.kind()); })
      .def("get", &PyContextStore::Get, py::arg("session_id"))
      .def("append", &PyContextStore::Append, py::arg("session_id"), py::arg("entries"),
           py::arg("owner"), py::arg("expected_version"), py::arg("metadata"),
           py::arg("model_choice"))
      .def("delete", &PyContextStore::Delete, py::arg("session_id"))
      .def("list", &PyContextStore::List, py::arg("owner"), py::arg("cursor"), py::arg("limit"));
  m.def("_fit_context", &modeenvoy::python::FitContextShim, py::arg("messages"),
        py::arg("history"), py::arg("turns"), py::arg("model"), py::arg("budget"));
  m.def("_context_window_for_model", [](const std::string& model) -> std::optional<int64_t> {
    absl::StatusOr<int64_t> window = modeenvoy::ContextWindowForModel(model);
    if (window.ok()) return *window;
    return std::nullopt;
  });
}
