// lib/context/gateway/config.cc: the `context` section, the long-lived state it holds (the
// store set, the session gate, the counters, the token cache) and the session gate itself.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "lib/context/gateway/internal.h"
#include "lib/core/json_reader.h"
#include "lib/core/mutex.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/gateway.h"
#include "modeenvoy/context/redis_store.h"
#include "modeenvoy/status.h"

namespace modeenvoy {
namespace context_internal {
namespace {

using core_internal::IndexPath;
using core_internal::Json;
using core_internal::ObjectReader;

absl::StatusOr<std::optional<absl::Duration>> OptionalMillis(const ObjectReader& r,
                                                              std::string_view key, int64_t min,
                                                              int64_t max) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> ms, r.OptionalInt(key, min, max));
  if (!ms.has_value()) return std::nullopt;
  return absl::Milliseconds(*ms);
}

absl::Status ReadHeaderName(const ObjectReader& r, std::string_view key, std::string* out) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> name, r.OptionalString(key));
  if (!name.has_value()) return absl::OkStatus();
  MODEENVOY_RETURN_IF_ERROR(core_internal::ValidateHeader(r.PathOf(key), *name, ""));
  *out = std::move(*name);
  return absl::OkStatus();
}

// `session_header_aliases`: header names, each valid, none repeating another or naming the
// session or metadata header.
absl::Status ReadSessionHeaderAliases(const ObjectReader& r, ContextConfig* config) {
  MODEENVOY_ASSIGN_OR_RETURN(const Json* list, r.OptionalArray("session_header_aliases"));
  if (list == nullptr) return absl::OkStatus();
  const std::string base = r.PathOf("session_header_aliases");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = IndexPath(base, i);
    const Json& item = (*list)[i];
    if (!item.is_string()) return InvalidFieldError(path, "must be a string");
    std::string name = item.get<std::string>();
    MODEENVOY_RETURN_IF_ERROR(core_internal::ValidateHeader(path, name, ""));
    if (absl::EqualsIgnoreCase(name, config->session_header)) {
      return InvalidFieldError(path, "repeats session_header");
    }
    if (absl::EqualsIgnoreCase(name, config->metadata_header)) {
      return InvalidFieldError(path, "must differ from metadata_header");
    }
    for (const std::string& seen : config->session_header_aliases) {
      if (absl::EqualsIgnoreCase(name, seen)) {
        return InvalidFieldError(path, absl::StrFormat("repeats \"%s\"", seen));
      }
    }
    config->session_header_aliases.push_back(std::move(name));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> StringMap(const ObjectReader& r) {
  std::map<std::string, std::string> out;
  for (auto it = r.json().begin(); it != r.json().end(); ++it) {
    if (!it.value().is_string()) return InvalidFieldError(r.PathOf(it.key()), "must be a string");
    out.emplace(it.key(), it.value().get<std::string>());
  }
  return out;
}

// The memory store's options ("store" keys besides "type").
absl::StatusOr<MemoryContextStoreOptions> ReadMemoryOptions(const ObjectReader& store) {
  MODEENVOY_RETURN_IF_ERROR(
      store.RejectUnknown({"type", "max_bytes", "max_record_bytes", "ttl_s", "shards"}));
  MemoryContextStoreOptions options;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> max_bytes,
                             store.OptionalInt("max_bytes", 1024, int64_t{1} << 44));
  if (max_bytes.has_value()) options.max_bytes = static_cast<size_t>(*max_bytes);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> record,
                             store.OptionalInt("max_record_bytes", 1024, int64_t{1} << 36));
  if (record.has_value()) options.max_record_bytes = static_cast<size_t>(*record);
  if (options.max_record_bytes > options.max_bytes) {
    return InvalidFieldError(store.PathOf("max_record_bytes"), "must be <= max_bytes");
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> ttl,
                             store.OptionalInt("ttl_s", 0, int64_t{10} * 365 * 86400));
  if (ttl.has_value()) {
    options.ttl = *ttl == 0 ? absl::InfiniteDuration() : absl::Seconds(*ttl);
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> shards, store.OptionalInt("shards", 1, 1024));
  if (shards.has_value()) options.shards = static_cast<int>(*shards);
  return options;
}

absl::Status ReadMillis(const ObjectReader& r, std::string_view key, int64_t min, int64_t max,
                        absl::Duration* out) {
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<absl::Duration> d, OptionalMillis(r, key, min, max));
  if (d.has_value()) *out = *d;
  return absl::OkStatus();
}

// ValidateRedisContextStoreOptions's "<option>: <reason>" as an error naming the config
// field (the options' durations are the section's *_ms / *_s keys).
absl::Status RedisOptionError(const ObjectReader& store, const absl::Status& status) {
  const std::string text(status.message());
  const std::string_view message = text;
  const size_t colon = message.find(": ");
  if (colon == std::string_view::npos) return InvalidFieldError(store.PathOf("url"), message);
  const std::string_view option = message.substr(0, colon);
  const std::string_view base = option.substr(0, option.find('['));
  const std::string_view index = option.substr(base.size());  // "[i]" or empty
  static constexpr std::pair<std::string_view, std::string_view> kKeys[] = {
      {"ttl", "ttl_s"},
      {"connect_timeout", "connect_timeout_ms"},
      {"operation_timeout", "operation_timeout_ms"},
      {"reconnect_backoff_min", "reconnect_backoff_min_ms"},
      {"reconnect_backoff_max", "reconnect_backoff_max_ms"}};
  std::string_view key = base;
  for (const auto& [from, to] : kKeys) {
    if (base == from) key = to;
  }
  std::string path = store.PathOf(key);
  path.append(index.data(), index.size());
  return InvalidFieldError(path, message.substr(colon + 2));
}

// The Redis store's options ("store" keys besides "type"); redis_store.h documents them.
absl::StatusOr<RedisContextStoreOptions> ReadRedisOptions(const ObjectReader& store) {
  MODEENVOY_RETURN_IF_ERROR(store.RejectUnknown(
      {"type", "url", "cluster", "cluster_seed_nodes", "key_prefix", "ttl_s",
       "max_record_bytes", "connect_timeout_ms", "operation_timeout_ms",
       "reconnect_backoff_min_ms", "reconnect_backoff_max_ms", "max_pipelined"}));
  RedisContextStoreOptions options;
  MODEENVOY_ASSIGN_OR_RETURN(options.url, store.RequiredString("url"));
  if (!absl::StartsWith(options.url, "redis://") && !absl::StartsWith(options.url, "unix://") &&
      !absl::StartsWith(options.url, "rediss://")) {  // (rediss: the store says why not)
    return InvalidFieldError(store.PathOf("url"),
                             "must be redis://[[user]:password@]host:port[/db] or unix:///path");
  }
  if (const Json* cluster = store.Find("cluster")) {
    if (!cluster->is_boolean()) return InvalidFieldError(store.PathOf("cluster"), "must be a boolean");
    options.cluster = cluster->get<bool>();
  }
  MODEENVOY_ASSIGN_OR_RETURN(const Json* seeds, store.OptionalArray("cluster_seed_nodes"));
  if (seeds != nullptr) {
    for (size_t i = 0; i < seeds->size(); ++i) {
      if (!(*seeds)[i].is_string()) {
        return InvalidFieldError(IndexPath(store.PathOf("cluster_seed_nodes"), i),
                                 "must be a string (host:port)");
      }
      options.cluster_seed_nodes.push_back((*seeds)[i].get<std::string>());
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> prefix,
                             store.OptionalString("key_prefix", /*non_empty=*/false));
  if (prefix.has_value()) {
    if (prefix->find_first_of("{}") != std::string::npos) {
      return InvalidFieldError(store.PathOf("key_prefix"), "must not contain '{' or '}'");
    }
    options.key_prefix = std::move(*prefix);
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> ttl,
                             store.OptionalInt("ttl_s", 0, int64_t{10} * 365 * 86400));
  if (ttl.has_value()) options.ttl = *ttl == 0 ? absl::InfiniteDuration() : absl::Seconds(*ttl);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> record,
                             store.OptionalInt("max_record_bytes", 1024, int64_t{512} << 20));
  if (record.has_value()) options.max_record_bytes = static_cast<size_t>(*record);
  MODEENVOY_RETURN_IF_ERROR(
      ReadMillis(store, "connect_timeout_ms", 1, 600 * 1000, &options.connect_timeout));
  MODEENVOY_RETURN_IF_ERROR(
      ReadMillis(store, "operation_timeout_ms", 1, 600 * 1000, &options.operation_timeout));
  MODEENVOY_RETURN_IF_ERROR(ReadMillis(store, "reconnect_backoff_min_ms", 1, 3600 * 1000,
                                       &options.reconnect_backoff_min));
  MODEENVOY_RETURN_IF_ERROR(ReadMillis(store, "reconnect_backoff_max_ms", 1, 3600 * 1000,
                                       &options.reconnect_backoff_max));
  if (options.reconnect_backoff_max < options.reconnect_backoff_min) {
    return InvalidFieldError(store.PathOf("reconnect_backoff_max_ms"),
                             "must be >= reconnect_backoff_min_ms");
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> pipelined,
                             store.OptionalInt("max_pipelined", 1, 1 << 20));
  if (pipelined.has_value()) options.max_pipelined = static_cast<size_t>(*pipelined);
  // Everything the store checks when a loop first makes it (the url's host, port and
  // database, cluster seeds, ...) fails the load instead, with the field's path.
  if (absl::Status valid = ValidateRedisContextStoreOptions(options); !valid.ok()) {
    return RedisOptionError(store, valid);
  }
  return options;
}

}  // namespace

std::shared_ptr<Counters> CountersOf(Services& services) {
  return services.State<Counters>("context.metrics",
                                  [] { return std::make_shared<Counters>(); });
}

SessionGate::Admit SessionGate::Acquire(const std::string& session_id,
                                        const std::shared_ptr<GateWaiter>& waiter, bool wait,
                                        size_t max_queue) {
  core_internal::MutexLock lock(&mu_);
  Entry& entry = sessions_[session_id];
  if (entry.holder == nullptr) {
    waiter->state = GateWaiter::State::kGranted;
    entry.holder = waiter;
    return Admit::kGranted;
  }
  if (!wait) return Admit::kBusy;
  if (entry.queue.size() >= max_queue) return Admit::kFull;
  waiter->state = GateWaiter::State::kQueued;
  entry.queue.push_back(waiter);
  return Admit::kQueued;
}

void SessionGate::GrantNextLocked(const std::string& session_id, Entry& entry,
                                  std::vector<std::shared_ptr<GateWaiter>>* granted) {
  entry.holder = nullptr;
  while (!entry.queue.empty()) {
    std::shared_ptr<GateWaiter> next = std::move(entry.queue.front());
    entry.queue.pop_front();
    if (next->state != GateWaiter::State::kQueued) continue;
    next->state = GateWaiter::State::kGranted;
    entry.holder = next;
    granted->push_back(std::move(next));
    return;
  }
  sessions_.erase(session_id);
}

void SessionGate::Release(const std::string& session_id,
                          const std::shared_ptr<GateWaiter>& waiter) {
  std::vector<std::shared_ptr<GateWaiter>> granted;
  {
    core_internal::MutexLock lock(&mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    Entry& entry = it->second;
    if (entry.holder == waiter) {
      waiter->state = GateWaiter::State::kAbandoned;
      GrantNextLocked(session_id, entry, &granted);
    } else if (waiter->state == GateWaiter::State::kQueued) {
      // Left in the queue; skipped when its turn comes (GrantNextLocked).
      waiter->state = GateWaiter::State::kAbandoned;
    }
  }
  // Never run callbacks under the lock: the grant reaches its request on its own loop.
  for (std::shared_ptr<GateWaiter>& next : granted) {
    EventLoop* loop = next->loop;
    loop->Post([next = std::move(next)]() mutable {
      if (next->on_grant) {
        absl::AnyInvocable<void()> fn = std::move(next->on_grant);
        fn();
      }
    });
  }
}

size_t SessionGate::active_sessions() const {
  core_internal::MutexLock lock(&mu_);
  return sessions_.size();
}

void StoreSet::Release(EventLoop& loop) {
  std::shared_ptr<LoopStore> dropped;
  {
    core_internal::MutexLock lock(&mu_);
    if (!per_loop_) return;
    auto it = stores_.find(&loop);
    if (it == stores_.end()) return;
    dropped = std::move(it->second);
    stores_.erase(it);
  }
  // Destroyed here, without the lock: its detached operations, then the store (requests
  // of the loop still holding the store keep it alive until they end; the caller
  // guarantees there are none).
}

absl::StatusOr<std::shared_ptr<LoopStore>> StoreSet::EntryFor(EventLoop& loop) {
  EventLoop* key = per_loop_ ? &loop : nullptr;
  {
    core_internal::MutexLock lock(&mu_);
    auto it = stores_.find(key);
    if (it != stores_.end()) return it->second;
  }
  // Built without the lock (a store may connect); a racing loop's store wins once.
  MODEENVOY_ASSIGN_OR_RETURN(std::shared_ptr<ContextStore> store, factory_(loop));
  if (store == nullptr) return absl::InternalError("context: the store factory returned null");
  auto entry = std::make_shared<LoopStore>();
  entry->store = std::move(store);
  core_internal::MutexLock lock(&mu_);
  return stores_.try_emplace(key, std::move(entry)).first->second;
}

absl::StatusOr<std::shared_ptr<const ConfigSection>> ParseContextSection(
    std::string_view json, const BuildContext& context, const ContextComponentOptions& options) {
  MODEENVOY_ASSIGN_OR_RETURN(Json value, core_internal::ParseStrictJson(json));
  MODEENVOY_ASSIGN_OR_RETURN(ObjectReader r, ObjectReader::Make(value, ""));
  MODEENVOY_RETURN_IF_ERROR(r.RejectUnknown(
      {"enabled", "store", "session_header", "metadata_header", "max_session_id_bytes",
       "session_header_aliases",
       "max_metadata_bytes", "max_history_bytes", "reserve_output_tokens", "concurrency",
       "failure_mode", "store_timeout_ms", "lease_ttl_ms", "summarizer", "guardrails"}));
  auto config = std::make_shared<ContextConfig>();
  if (const Json* enabled = r.Find("enabled")) {
    if (!enabled->is_boolean()) return InvalidFieldError("enabled", "must be a boolean");
    config->enabled = enabled->get<bool>();
  }
  MODEENVOY_RETURN_IF_ERROR(ReadHeaderName(r, "session_header", &config->session_header));
  MODEENVOY_RETURN_IF_ERROR(ReadHeaderName(r, "metadata_header", &config->metadata_header));
  if (absl::EqualsIgnoreCase(config->session_header, config->metadata_header)) {
    return InvalidFieldError("metadata_header", "must differ from session_header");
  }
  MODEENVOY_RETURN_IF_ERROR(ReadSessionHeaderAliases(r, config.get()));
  MODEENVOY_ASSIGN_OR_RETURN(
      std::optional<int64_t> id_bytes,
      r.OptionalInt("max_session_id_bytes", 1, static_cast<int64_t>(kMaxSessionIdBytes)));
  if (id_bytes.has_value()) config->max_session_id_bytes = static_cast<size_t>(*id_bytes);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> meta_bytes,
                             r.OptionalInt("max_metadata_bytes", 2, int64_t{1} << 20));
  if (meta_bytes.has_value()) config->max_metadata_bytes = static_cast<size_t>(*meta_bytes);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> history_bytes,
                             r.OptionalInt("max_history_bytes", 1, int64_t{1} << 36));
  if (history_bytes.has_value()) config->max_history_bytes = static_cast<size_t>(*history_bytes);
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> reserve,
                             r.OptionalInt("reserve_output_tokens", 0, int64_t{1} << 30));
  if (reserve.has_value()) config->reserve_output_tokens = *reserve;

  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> concurrency,
                             r.OptionalObject("concurrency"));
  if (concurrency.has_value()) {
    MODEENVOY_RETURN_IF_ERROR(
        concurrency->RejectUnknown({"mode", "max_queue", "queue_timeout_ms"}));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> mode,
                               concurrency->OptionalString("mode"));
    if (mode.has_value()) {
      if (*mode == "queue") {
        config->concurrency = ConcurrencyMode::kQueue;
      } else if (*mode == "reject") {
        config->concurrency = ConcurrencyMode::kReject;
      } else {
        return InvalidFieldError(concurrency->PathOf("mode"),
                                 absl::StrFormat("must be \"queue\" or \"reject\", not \"%s\"",
                                                 *mode));
      }
    }
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> max_queue,
                               concurrency->OptionalInt("max_queue", 1, 1 << 20));
    if (max_queue.has_value()) config->max_queue = static_cast<size_t>(*max_queue);
    MODEENVOY_ASSIGN_OR_RETURN(
        std::optional<absl::Duration> wait,
        OptionalMillis(*concurrency, "queue_timeout_ms", 1, int64_t{24} * 3600 * 1000));
    if (wait.has_value()) config->queue_timeout = *wait;
    if (config->concurrency == ConcurrencyMode::kReject &&
        (max_queue.has_value() || wait.has_value())) {
      return InvalidFieldError(concurrency->PathOf(max_queue.has_value() ? "max_queue"
                                                                         : "queue_timeout_ms"),
                               "applies to mode \"queue\" only");
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> failure, r.OptionalString("failure_mode"));
  if (failure.has_value()) {
    if (*failure == "open") {
      config->failure_mode = FailureMode::kOpen;
    } else if (*failure == "closed") {
      config->failure_mode = FailureMode::kClosed;
    } else {
      return InvalidFieldError("failure_mode",
                               absl::StrFormat("must be \"open\" or \"closed\", not \"%s\"",
                                               *failure));
    }
  }
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<absl::Duration> store_timeout,
                             OptionalMillis(r, "store_timeout_ms", 1, 600 * 1000));
  if (store_timeout.has_value()) config->store_timeout = *store_timeout;
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<absl::Duration> lease,
                             OptionalMillis(r, "lease_ttl_ms", 100, int64_t{24} * 3600 * 1000));
  if (lease.has_value()) config->lease_ttl = *lease;

  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> summarizer,
                             r.OptionalObject("summarizer"));
  if (summarizer.has_value()) {
    MODEENVOY_RETURN_IF_ERROR(summarizer->RejectUnknown({"model", "trigger"}));
    SummarizerConfig s;
    MODEENVOY_ASSIGN_OR_RETURN(s.model, summarizer->RequiredString("model"));
    MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> trigger,
                               summarizer->OptionalObject("trigger"));
    if (trigger.has_value()) {
      MODEENVOY_RETURN_IF_ERROR(trigger->RejectUnknown({"min_dropped"}));
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<int64_t> min_dropped,
                                 trigger->OptionalInt("min_dropped", 1, 1 << 20));
      if (min_dropped.has_value()) s.min_dropped_entries = static_cast<size_t>(*min_dropped);
    }
    config->summarizer = std::move(s);
  }

  MODEENVOY_ASSIGN_OR_RETURN(const Json* guardrails, r.OptionalArray("guardrails"));
  if (guardrails != nullptr) {
    for (size_t i = 0; i < guardrails->size(); ++i) {
      std::string path = IndexPath("guardrails", i);
      MODEENVOY_ASSIGN_OR_RETURN(ObjectReader g, ObjectReader::Make((*guardrails)[i], path));
      MODEENVOY_RETURN_IF_ERROR(g.RejectUnknown({"match", "system_prompt", "disclaimer"}));
      Guardrail rule;
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> match, g.OptionalObject("match"));
      if (!match.has_value()) return InvalidFieldError(g.PathOf("match"), "is required");
      MODEENVOY_ASSIGN_OR_RETURN(rule.match, StringMap(*match));
      if (rule.match.empty()) return InvalidFieldError(g.PathOf("match"), "must not be empty");
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> prompt,
                                 g.OptionalString("system_prompt"));
      MODEENVOY_ASSIGN_OR_RETURN(std::optional<std::string> disclaimer,
                                 g.OptionalString("disclaimer"));
      if (!prompt.has_value() && !disclaimer.has_value()) {
        return InvalidFieldError(path, "needs \"system_prompt\" or \"disclaimer\"");
      }
      rule.system_prompt = prompt.value_or("");
      rule.disclaimer = disclaimer.value_or("");
      config->guardrails.push_back(std::move(rule));
    }
  }

  // The store: long-lived state found again by its options on every reload.
  MODEENVOY_ASSIGN_OR_RETURN(std::optional<ObjectReader> store, r.OptionalObject("store"));
  std::string store_key = "context.store.memory:{}";
  StoreSet::Factory factory;
  bool per_loop = false;
  if (store.has_value()) {
    MODEENVOY_ASSIGN_OR_RETURN(config->store_type, store->RequiredString("type"));
    store_key = "context.store." + config->store_type + ":" + store->json().dump();
  }
  if (options.store != nullptr) {
    // The host's store replaces the configured one; the section still names its type.
    factory = options.store;
    per_loop = true;
    store_key = "context.store.host";
  } else if (config->store_type == "memory") {
    MemoryContextStoreOptions memory;
    if (store.has_value()) {
      MODEENVOY_ASSIGN_OR_RETURN(memory, ReadMemoryOptions(*store));
    }
    memory.clock = &context.services->clock();
    factory = [memory](EventLoop&) -> absl::StatusOr<std::shared_ptr<ContextStore>> {
      return std::shared_ptr<ContextStore>(NewMemoryContextStore(memory));
    };
  } else if (config->store_type == "redis") {
    MODEENVOY_ASSIGN_OR_RETURN(RedisContextStoreOptions redis, ReadRedisOptions(*store));
    Services* services = context.services;
    redis.random = [services] { return services->Random(); };
    // One store per loop, bound to it and created on its thread by the first request.
    factory = [redis](EventLoop& loop) -> absl::StatusOr<std::shared_ptr<ContextStore>> {
      absl::StatusOr<std::unique_ptr<ContextStore>> made = NewRedisContextStore(&loop, redis);
      if (!made.ok()) return made.status();
      return std::shared_ptr<ContextStore>(*std::move(made));
    };
    per_loop = true;
  } else {
    return InvalidFieldError(
        "store.type",
        absl::StrFormat("unknown store type \"%s\" (known: \"memory\", \"redis\")",
                        config->store_type));
  }
  config->stores = context.services->State<StoreSet>(store_key, [&] {
    return std::make_shared<StoreSet>(std::move(factory), per_loop);
  });
  {
    auto index = context.services->State<StoreSetIndex>(
        "context.store_sets", [] { return std::make_shared<StoreSetIndex>(); });
    core_internal::MutexLock lock(&index->mu);
    index->sets.erase(std::remove_if(index->sets.begin(), index->sets.end(),
                                     [](const std::weak_ptr<StoreSet>& w) { return w.expired(); }),
                      index->sets.end());
    index->sets.push_back(config->stores);
    config->store_index = std::move(index);
  }
  config->gate = context.services->State<SessionGate>(
      "context.gate", [] { return std::make_shared<SessionGate>(); });
  config->counters = CountersOf(*context.services);
  config->token_cache = context.services->State<MessageTokenCache>("context.token_cache", [] {
    return std::make_shared<MessageTokenCache>(MessageTokenCacheOptions{});
  });
  struct LeaseToken {
    std::string token;
  };
  Services& services = *context.services;
  config->lease_token = services.State<LeaseToken>("context.lease_token", [&] {
    auto t = std::make_shared<LeaseToken>();
    t->token = absl::StrFormat("%016x%016x", services.Random(), services.Random());
    return t;
  })->token;
  config->log = options.log;
  if (config->log == nullptr) {
    config->log = [](std::string_view line) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };
  }
  return std::shared_ptr<const ConfigSection>(std::move(config));
}

const ContextConfig* EnabledSection(const ConfigSnapshot* snapshot) {
  if (snapshot == nullptr) return nullptr;
  const auto* config = static_cast<const ContextConfig*>(snapshot->Section("context"));
  if (config == nullptr || !config->enabled) return nullptr;
  return config;
}

std::string OwnerOf(const RequestContext& ctx) {
  auto it = ctx.metadata.find("api_key.name");
  if (it != ctx.metadata.end() && !it->second.empty()) return it->second;
  return "anonymous";
}

}  // namespace context_internal

void ReleaseContextStores(Services& services, EventLoop& loop) {
  auto index = services.State<context_internal::StoreSetIndex>(
      "context.store_sets", [] { return std::make_shared<context_internal::StoreSetIndex>(); });
  std::vector<std::shared_ptr<context_internal::StoreSet>> sets;
  {
    core_internal::MutexLock lock(&index->mu);
    for (const auto& weak : index->sets) {
      if (auto set = weak.lock()) sets.push_back(std::move(set));
    }
  }
  for (const auto& set : sets) set->Release(loop);
}

ContextMetrics ReadContextMetrics(Services& services) {
  std::shared_ptr<context_internal::Counters> c = context_internal::CountersOf(services);
  ContextMetrics m;
  m.sessions_loaded = c->sessions_loaded.load();
  m.turns_appended = c->turns_appended.load();
  m.append_conflicts = c->append_conflicts.load();
  m.failed_writes = c->failed_writes.load();
  m.failed_reads = c->failed_reads.load();
  m.fail_open = c->fail_open.load();
  m.busy_rejected = c->busy_rejected.load();
  m.queue_timeouts = c->queue_timeouts.load();
  m.summaries = c->summaries.load();
  m.turns_renumbered = c->turns_renumbered.load();
  m.lease_renewal_failures = c->lease_renewal_failures.load();
  return m;
}

}  // namespace modeenvoy
