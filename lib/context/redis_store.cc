// lib/context/redis_store.cc: the ContextStore in Redis (layout and scripts: redis_store.h).
//
// The parts of a record are stored as the JSON record.h's codec writes for them: a write
// serializes a record holding only the new entries and takes its array elements apart; a
// read assembles the record's JSON from the stored parts around a serialized skeleton and
// parses it with ParseContextRecord, so there is one codec (and one migration path).
#include "modeenvoy/context/redis_store.h"
#include "modeenvoy/status.h"

#include <hiredis/hiredis.h>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lib/context/redis_client.h"
#include "lib/context/record_internal.h"
#include "lib/core/status_macros.h"
#include "modeenvoy/context/record.h"

namespace modeenvoy {
namespace context_internal {
namespace {

using core_internal::ToAbsl;

// ---- scripts -------------------------------------------------------------------------------

// RPUSH in chunks: unpack() of a very long table would overflow Lua's C stack.
constexpr std::string_view kPushHelper = R"lua(
local function push(key, items)
  for s = 1, #items, 500 do
    redis.call('RPUSH', key, unpack(items, s, math.min(s + 499, #items)))
  end
end
)lua";

// KEYS: meta h tc mc. ARGV: expected version, owner, session id, now (ns), ttl (ms, 0 none),
// max bytes, turns, #history, #tool calls, #tool results, #model choices, #metadata pairs,
// schema version, then the items in that order (a tool result is index, text; metadata
// is key, value).
// Returns {0, version, created, owner} | {1, stored version} | {2, bytes} |
// {3, index, stored tool call count, position in tool_results}.
const RedisScript& AppendScript() {
  static const RedisScript* script = new RedisScript(absl::StrCat(ToAbsl(kPushHelper), R"lua(
local ver = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ver ~= tonumber(ARGV[1]) then return {1, ver} end
local nh, ntc, nres = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local nmc, nmd = tonumber(ARGV[11]), tonumber(ARGV[12])
local owner, bytes, md
if ver == 0 then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
  owner = ARGV[2]
  md = '{}'
  bytes = #owner + #md
else
  local m = redis.call('HMGET', KEYS[1], 'owner', 'bytes', 'metadata')
  owner = m[1] or ''
  bytes = tonumber(m[2] or '0')
  md = m[3] or '{}'
end
local i = 14
local h, tc, mc = {}, {}, {}
for j = 1, nh do h[j] = ARGV[i]; bytes = bytes + #ARGV[i]; i = i + 1 end
for j = 1, ntc do tc[j] = ARGV[i]; bytes = bytes + #ARGV[i]; i = i + 1 end
local stored = redis.call('LLEN', KEYS[3])
local updates = {}
for j = 1, nres do
  local idx = tonumber(ARGV[i])
  local result = ARGV[i + 1]
  i = i + 2
  -- Only invocations stored before this append (as the memory store).
  if idx >= stored then return {3, idx, stored, j - 1} end
  local old = updates[idx] or redis.call('LINDEX', KEYS[3], idx)
  local t = cjson.decode(old)
  t['result'] = result
  local new = cjson.encode(t)
  bytes = bytes - #old + #new
  updates[idx] = new
end
for j = 1, nmc do mc[j] = ARGV[i]; bytes = bytes + #ARGV[i]; i = i + 1 end
if nmd > 0 then
  local t = cjson.decode(md)
  for j = 1, nmd do t[ARGV[i]] = ARGV[i + 1]; i = i + 2 end
  local new = cjson.encode(t)
  bytes = bytes - #md + #new
  md = new
end
if bytes > tonumber(ARGV[6]) then return {2, bytes} end
push(KEYS[2], h)
push(KEYS[3], tc)
push(KEYS[4], mc)
for idx, v in pairs(updates) do redis.call('LSET', KEYS[3], idx, v) end
if ver == 0 then
  redis.call('HSET', KEYS[1], 'owner', owner, 'session_id', ARGV[3], 'schema_version', ARGV[13],
             'created', ARGV[4], 'turn_count', 0)
end
redis.call('HSET', KEYS[1], 'version', ver + 1, 'updated', ARGV[4], 'metadata', md,
           'bytes', bytes)
redis.call('HINCRBY', KEYS[1], 'turn_count', ARGV[7])
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ttl) end
end
if ver == 0 then return {0, ver + 1, 1, owner} end
return {0, ver + 1, 0, owner}
)lua"));
  return *script;
}

// KEYS: meta h tc mc. ARGV: expected version, owner ('' keeps the stored one), ttl (ms),
// max bytes, turn_count, created, updated, schema version, metadata JSON, #history,
// #tool calls, #model choices, then the items.
// Returns {0, version, old owner, owner} | {1, stored version} | {2, bytes} | {4}.
const RedisScript& ReplaceScript() {
  static const RedisScript* script = new RedisScript(absl::StrCat(ToAbsl(kPushHelper), R"lua(
local ver = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if ver == 0 then return {4} end
if ver ~= tonumber(ARGV[1]) then return {1, ver} end
local old_owner = redis.call('HGET', KEYS[1], 'owner') or ''
local owner = ARGV[2]
if owner == '' then owner = old_owner end
local md = ARGV[9]
local bytes = #owner + #md
local counts = {tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])}
local lists = {{}, {}, {}}
local i = 13
for li = 1, 3 do
  for j = 1, counts[li] do lists[li][j] = ARGV[i]; bytes = bytes + #ARGV[i]; i = i + 1 end
end
if bytes > tonumber(ARGV[4]) then return {2, bytes} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
for li = 1, 3 do push(KEYS[li + 1], lists[li]) end
redis.call('HSET', KEYS[1], 'version', ver + 1, 'owner', owner, 'schema_version', ARGV[8],
           'created', ARGV[6], 'updated', ARGV[7], 'turn_count', ARGV[5], 'metadata', md,
           'bytes', bytes)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  for k = 1, 4 do redis.call('PEXPIRE', KEYS[k], ttl) end
end
return {0, ver + 1, old_owner, owner}
)lua"));
  return *script;
}

// KEYS: meta h tc mc. Returns nil or {meta as HGETALL, history, tool calls, model choices}.
const RedisScript& GetScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local m = redis.call('HGETALL', KEYS[1])
if #m == 0 then return false end
return {m, redis.call('LRANGE', KEYS[2], 0, -1), redis.call('LRANGE', KEYS[3], 0, -1),
        redis.call('LRANGE', KEYS[4], 0, -1)}
)lua");
  return *script;
}

// KEYS: meta h tc mc lock. Returns {1, owner} when the session existed, else {0, ''}.
const RedisScript& DeleteScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local owner = redis.call('HGET', KEYS[1], 'owner')
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5])
if owner then return {1, owner} end
return {0, ''}
)lua");
  return *script;
}

// KEYS: lock. ARGV: token, ttl (ms). Returns 1 when the caller holds the lease now.
const RedisScript& LockScript() {
  static const RedisScript* script = new RedisScript(R"lua(
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
)lua");
  return *script;
}

// KEYS: lock. ARGV: token. Returns 1 when the token held the lease (now released).
const RedisScript& UnlockScript() {
  static const RedisScript* script = new RedisScript(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
)lua");
  return *script;
}

// KEYS: owner index. ARGV: session id, ttl (ms, 0 none).
const RedisScript& IndexAddScript() {
  static const RedisScript* script = new RedisScript(R"lua(
redis.call('ZADD', KEYS[1], 0, ARGV[1])
local ttl = tonumber(ARGV[2])
if ttl > 0 and redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
)lua");
  return *script;
}

// ---- keys and values -----------------------------------------------------------------------

// '%' and '}' escaped so that "{<escaped>}" is exactly the hash tag and distinct ids stay
// distinct.
std::string EscapeTag(std::string_view id) {
  std::string out;
  out.reserve(id.size());
  for (char c : id) {
    if (c == '%') {
      out += "%25";
    } else if (c == '}') {
      out += "%7D";
    } else {
      out += c;
    }
  }
  return out;
}

struct SessionKeys {
  std::string meta, history, tool_calls, model_choices, lock;
  std::vector<std::string> Parts() const { return {meta, history, tool_calls, model_choices}; }
};

// As the memory store: the error names the field (its param), not just its message.
absl::Status CheckId(std::string_view field, std::string_view id) {
  if (id.empty()) return InvalidFieldError(field, "must not be empty");
  if (id.size() > kMaxSessionIdBytes) {
    return InvalidFieldError(field, absl::StrFormat("longer than %d bytes (%d)",
                                                    kMaxSessionIdBytes, id.size()));
  }
  return absl::OkStatus();
}

std::string_view Text(const redisReply* r) {
  return r->str == nullptr ? std::string_view() : std::string_view(r->str, r->len);
}

struct EncodedParts {
  std::vector<std::string> history, tool_calls, model_choices;
};

// Each element as SerializeContextRecord writes it inside the record (record_internal.h).
EncodedParts EncodeParts(const std::vector<HistoryEntry>& history,
                         const std::vector<ToolInvocation>& tool_calls,
                         const std::vector<ModelChoice>& model_choices) {
  EncodedParts parts;
  parts.history.resize(history.size());
  for (size_t i = 0; i < history.size(); ++i) AppendHistoryEntry(&parts.history[i], history[i]);
  parts.tool_calls.resize(tool_calls.size());
  for (size_t i = 0; i < tool_calls.size(); ++i) {
    AppendToolInvocation(&parts.tool_calls[i], tool_calls[i]);
  }
  parts.model_choices.resize(model_choices.size());
  for (size_t i = 0; i < model_choices.size(); ++i) {
    AppendModelChoice(&parts.model_choices[i], model_choices[i]);
  }
  return parts;
}

std::string MetadataJson(const std::map<std::string, std::string>& metadata) {
  std::string out = "{";
  for (const auto& [key, value] : metadata) {
    if (out.size() > 1) out.push_back(',');
    AppendJsonString(&out, key);
    out.push_back(':');
    AppendJsonString(&out, value);
  }
  out.push_back('}');
  return out;
}

// ---- operations ----------------------------------------------------------------------------

class OpBase {
 public:
  virtual ~OpBase() = default;
  // Drops the callback without running it; stops the timer and the commands in flight.
  virtual void Drop() = 0;
};

using OpRegistry = absl::flat_hash_set<OpBase*>;

template <typename T>
class Op final : public OpBase, public std::enable_shared_from_this<Op<T>> {
 public:
  Op(EventLoop* loop, std::shared_ptr<OpRegistry> registry, StoreCallback<T> done)
      : loop_(loop), registry_(std::move(registry)), done_(std::move(done)) {}

  void Register() { registry_->insert(this); }

  void ArmTimeout(absl::Duration timeout, std::string what) {
    timer_ = loop_->NewTimer();
    timer_->Arm(timeout, [this, timeout, what = std::move(what)] {
      Complete(absl::DeadlineExceededError(absl::StrFormat(
          "%s: no reply within %dms", what, absl::ToInt64Milliseconds(timeout))));
    });
  }

  // The command now in flight for this operation (one at a time, or several for List).
  void Track(RedisCommandHandle command) { commands_.push_back(std::move(command)); }

  bool finished() const { return finished_; }

  // Delivers `result` on the loop (never inline, never inside hiredis).
  void Complete(absl::StatusOr<T> result) {
    if (finished_) return;
    finished_ = true;
    timer_.reset();
    commands_.clear();  // cancels what is still in flight
    loop_->Post([self = this->shared_from_this(), result = std::move(result)]() mutable {
      if (!self->done_) return;
      StoreCallback<T> done = std::move(self->done_);
      self->registry_->erase(self.get());
      done(std::move(result));
    });
  }

  void Drop() override {
    finished_ = true;
    done_ = nullptr;
    timer_.reset();
    commands_.clear();
    registry_->erase(this);
  }

 private:
  EventLoop* const loop_;
  std::shared_ptr<OpRegistry> registry_;
  StoreCallback<T> done_;
  std::unique_ptr<Timer> timer_;
  std::vector<RedisCommandHandle> commands_;
  bool finished_ = false;
};

class OpHandle final : public StoreOperation {
 public:
  explicit OpHandle(std::shared_ptr<OpBase> op) : op_(std::move(op)) {}
  ~OpHandle() override { Cancel(); }
  void Cancel() override {
    if (op_ != nullptr) op_->Drop();
    op_.reset();
  }

 private:
  std::shared_ptr<OpBase> op_;
};

// ---- the store -----------------------------------------------------------------------------

class RedisContextStore final : public ContextStore {
 public:
  RedisContextStore(EventLoop* loop, const RedisContextStoreOptions& options,
                    RedisClientOptions client_options)
      : loop_(loop), options_(options),
        client_(std::make_unique<RedisClient>(loop, std::move(client_options))),
        ops_(std::make_shared<OpRegistry>()) {
    name_ = absl::StrCat("redis ", client_->options().seeds.front().ToString());
  }

  ~RedisContextStore() override {
    std::vector<OpBase*> live(ops_->begin(), ops_->end());
    for (OpBase* op : live) op->Drop();
    client_.reset();
  }

  std::string_view kind() const override { return "redis"; }

  StoreHandle Get(std::string_view session_id,
                  StoreCallback<std::optional<StoredContext>> done) override {
    auto op = NewOp<std::optional<StoredContext>>(std::move(done), "get", session_id);
    if (!Valid(*op, "session_id", session_id)) return Handle(op);
    std::string sid(session_id);
    SessionKeys keys = KeysOf(sid);
    op->Track(client_->Eval(
        GetScript(), keys.Parts(), {},
        [op, sid](absl::StatusOr<const redisReply*> reply) {
          if (!reply.ok()) return op->Complete(reply.status());
          if ((*reply)->type == REDIS_REPLY_NIL) return op->Complete(std::nullopt);
          op->Complete(Assemble(sid, *reply));
        }));
    return Handle(op);
  }

  StoreHandle Append(std::string_view session_id, uint64_t expected_version,
                     ContextAppend append, StoreCallback<uint64_t> done) override {
    auto op = NewOp<uint64_t>(std::move(done), "append", session_id);
    if (!Valid(*op, "session_id", session_id)) return Handle(op);
    if (expected_version == 0 && !Valid(*op, "owner", append.owner)) return Handle(op);
    std::string sid(session_id);
    std::vector<ModelChoice> choices;
    if (append.model_choice.has_value()) choices.push_back(*append.model_choice);
    EncodedParts parts = EncodeParts(append.entries, append.tool_calls, choices);
    std::vector<std::string> args = {
        absl::StrCat(expected_version), append.owner, sid,
        absl::StrCat(absl::ToUnixNanos(append.now)), TtlArg(),
        absl::StrCat(options_.max_record_bytes), absl::StrCat(append.turns),
        absl::StrCat(parts.history.size()), absl::StrCat(parts.tool_calls.size()),
        absl::StrCat(append.tool_results.size()), absl::StrCat(parts.model_choices.size()),
        absl::StrCat(append.metadata.size()), absl::StrCat(kContextSchemaVersion)};
    for (std::string& e : parts.history) args.push_back(std::move(e));
    for (std::string& e : parts.tool_calls) args.push_back(std::move(e));
    for (auto& [index, result] : append.tool_results) {
      args.push_back(absl::StrCat(index));
      args.push_back(std::move(result));
    }
    for (std::string& e : parts.model_choices) args.push_back(std::move(e));
    for (auto& [key, value] : append.metadata) {
      args.push_back(key);
      args.push_back(value);
    }
    SessionKeys keys = KeysOf(sid);
    op->Track(client_->Eval(
        AppendScript(), keys.Parts(), std::move(args),
        [this, op, sid](absl::StatusOr<const redisReply*> reply) {
          if (!reply.ok()) return op->Complete(reply.status());
          const redisReply* r = *reply;
          if (!IsIntArray(r, 2)) return op->Complete(Unexpected(sid, "append", r));
          switch (r->element[0]->integer) {
            case 0: break;
            case 1:
              return op->Complete(absl::AbortedError(absl::StrFormat(
                  "session %s: stored version is %d", sid, r->element[1]->integer)));
            case 2:
              return op->Complete(absl::ResourceExhaustedError(absl::StrFormat(
                  "session %s: record would be %d bytes, over the store's bound of %d",
                  sid, r->element[1]->integer, options_.max_record_bytes)));
            case 3:
              if (r->elements < 4) return op->Complete(Unexpected(sid, "append", r));
              return op->Complete(absl::InvalidArgumentError(absl::StrFormat(
                  "tool_results[%d]: index %d out of range (session %s has %d tool calls)",
                  r->element[3]->integer, r->element[1]->integer, sid,
                  r->element[2]->integer)));
            default:
              return op->Complete(Unexpected(sid, "append", r));
          }
          if (r->elements < 4 || r->element[3]->type != REDIS_REPLY_STRING) {
            return op->Complete(Unexpected(sid, "append", r));
          }
          uint64_t version = static_cast<uint64_t>(r->element[1]->integer);
          bool created = r->element[2]->integer == 1;
          std::string owner(Text(r->element[3]));
          // The owner index, in its own slot. A new session waits for it (a List after a
          // successful create sees the session); later appends re-add it without waiting,
          // which repairs an index a crashed gateway left behind and keeps its TTL.
          RedisCommandHandle index = client_->Eval(
              IndexAddScript(), {OwnerKey(owner)}, {sid, TtlArg()},
              [op, version, created](absl::StatusOr<const redisReply*> added) {
                if (created) op->Complete(version);
              });
          if (created) {
            op->Track(std::move(index));
          } else {
            // Dropping the handle would cancel the callback only; the command still runs.
            op->Complete(version);
          }
        }));
    return Handle(op);
  }

  StoreHandle Replace(std::string_view session_id, uint64_t expected_version,
                      ContextRecord record, StoreCallback<uint64_t> done) override {
    auto op = NewOp<uint64_t>(std::move(done), "replace", session_id);
    if (!Valid(*op, "session_id", session_id)) return Handle(op);
    if (!Valid(*op, "record.owner", record.owner)) return Handle(op);
    std::string sid(session_id);
    if (!record.session_id.empty() && record.session_id != sid) {
      op->Complete(absl::InvalidArgumentError(absl::StrFormat(
          "record.session_id: \"%s\" does not match the session replaced (\"%s\")",
          record.session_id, sid)));
      return Handle(op);
    }
    std::vector<std::string> args = {
        absl::StrCat(expected_version), record.owner, TtlArg(),
        absl::StrCat(options_.max_record_bytes), absl::StrCat(record.turn_count),
        absl::StrCat(absl::ToUnixNanos(record.created)),
        absl::StrCat(absl::ToUnixNanos(record.updated)), absl::StrCat(kContextSchemaVersion),
        MetadataJson(record.metadata)};
    EncodedParts parts = EncodeParts(record.history, record.tool_calls, record.model_choices);
    args.push_back(absl::StrCat(parts.history.size()));
    args.push_back(absl::StrCat(parts.tool_calls.size()));
    args.push_back(absl::StrCat(parts.model_choices.size()));
    for (auto* list : {&parts.history, &parts.tool_calls, &parts.model_choices}) {
      for (std::string& e : *list) args.push_back(std::move(e));
    }
    SessionKeys keys = KeysOf(sid);
    op->Track(client_->Eval(
        ReplaceScript(), keys.Parts(), std::move(args),
        [this, op, sid](absl::StatusOr<const redisReply*> reply) {
          if (!reply.ok()) return op->Complete(reply.status());
          const redisReply* r = *reply;
          if (!IsIntArray(r, 1)) return op->Complete(Unexpected(sid, "replace", r));
          switch (r->element[0]->integer) {
            case 0: break;
            case 1:
              if (r->elements < 2) return op->Complete(Unexpected(sid, "replace", r));
              return op->Complete(absl::AbortedError(absl::StrFormat(
                  "session %s: stored version is %d", sid, r->element[1]->integer)));
            case 2:
              if (r->elements < 2) return op->Complete(Unexpected(sid, "replace", r));
              return op->Complete(absl::ResourceExhaustedError(absl::StrFormat(
                  "session %s: record would be %d bytes, over the store's bound of %d",
                  sid, r->element[1]->integer, options_.max_record_bytes)));
            case 4:
              return op->Complete(absl::NotFoundError(absl::StrCat("session ", sid)));
            default:
              return op->Complete(Unexpected(sid, "replace", r));
          }
          if (r->elements < 4 || r->element[1]->type != REDIS_REPLY_INTEGER ||
              r->element[2]->type != REDIS_REPLY_STRING ||
              r->element[3]->type != REDIS_REPLY_STRING) {
            return op->Complete(Unexpected(sid, "replace", r));
          }
          uint64_t version = static_cast<uint64_t>(r->element[1]->integer);
          std::string old_owner(Text(r->element[2]));
          std::string owner(Text(r->element[3]));
          if (old_owner == owner) return op->Complete(version);
          // The session changed hands: move its index entry (remove, then add).
          op->Track(client_->Command(
              {"ZREM", OwnerKey(old_owner), sid}, OwnerKey(old_owner),
              [this, op, sid, owner, version](absl::StatusOr<const redisReply*>) {
                op->Track(client_->Eval(IndexAddScript(), {OwnerKey(owner)}, {sid, TtlArg()},
                                        [op, version](absl::StatusOr<const redisReply*>) {
                                          op->Complete(version);
                                        }));
              }));
        }));
    return Handle(op);
  }

  StoreHandle Delete(std::string_view session_id, StoreCallback<bool> done) override {
    auto op = NewOp<bool>(std::move(done), "delete", session_id);
    if (!Valid(*op, "session_id", session_id)) return Handle(op);
    std::string sid(session_id);
    SessionKeys keys = KeysOf(sid);
    std::vector<std::string> all = keys.Parts();
    all.push_back(keys.lock);
    op->Track(client_->Eval(
        DeleteScript(), std::move(all), {},
        [this, op, sid](absl::StatusOr<const redisReply*> reply) {
          if (!reply.ok()) return op->Complete(reply.status());
          const redisReply* r = *reply;
          if (!IsIntArray(r, 1) || r->elements < 2 || r->element[1]->type != REDIS_REPLY_STRING) {
            return op->Complete(Unexpected(sid, "delete", r));
          }
          if (r->element[0]->integer == 0) return op->Complete(false);
          std::string owner(Text(r->element[1]));
          op->Track(client_->Command({"ZREM", OwnerKey(owner), sid}, OwnerKey(owner),
                                     [op](absl::StatusOr<const redisReply*> removed) {
                                       // The session is gone either way; a stale index
                                       // entry is skipped by List.
                                       op->Complete(true);
                                     }));
        }));
    return Handle(op);
  }

  StoreHandle List(std::string_view owner, std::string_view cursor, size_t limit,
                   StoreCallback<SessionPage> done) override {
    auto op = NewOp<SessionPage>(std::move(done), "list", owner);
    if (!Valid(*op, "owner", owner)) return Handle(op);
    if (limit < 1 || limit > 1000) {
      op->Complete(absl::InvalidArgumentError(
          absl::StrFormat("limit: must be 1..1000, got %d", limit)));
      return Handle(op);
    }
    auto state = std::make_shared<ListState>();
    state->owner = std::string(owner);
    state->scan_after = std::string(cursor);
    state->limit = limit;
    ListRound(op, state);
    return Handle(op);
  }

  StoreHandle TryLock(std::string_view session_id, std::string_view token, absl::Duration ttl,
                      StoreCallback<bool> done) override {
    auto op = NewOp<bool>(std::move(done), "lock", session_id);
    if (!Valid(*op, "session_id", session_id) || !Valid(*op, "token", token)) {
      return Handle(op);
    }
    if (ttl < absl::Milliseconds(1)) {
      op->Complete(absl::InvalidArgumentError("ttl: must be at least 1ms"));
      return Handle(op);
    }
    int64_t ttl_ms = ttl == absl::InfiniteDuration() ? int64_t{1} << 50
                                                     : absl::ToInt64Milliseconds(ttl);
    return Boolean(op, LockScript(), KeysOf(std::string(session_id)).lock,
                   {std::string(token), absl::StrCat(ttl_ms)});
  }

  StoreHandle Unlock(std::string_view session_id, std::string_view token,
                     StoreCallback<bool> done) override {
    auto op = NewOp<bool>(std::move(done), "unlock", session_id);
    if (!Valid(*op, "session_id", session_id) || !Valid(*op, "token", token)) {
      return Handle(op);
    }
    return Boolean(op, UnlockScript(), KeysOf(std::string(session_id)).lock,
                   {std::string(token)});
  }

 private:
  struct ListState {
    std::string owner;
    std::string scan_after;  // ids <= this were looked at
    size_t limit = 0;
    int rounds = 0;
    SessionPage page;
  };

  template <typename T>
  std::shared_ptr<Op<T>> NewOp(StoreCallback<T> done, std::string_view what,
                               std::string_view subject) {
    auto op = std::make_shared<Op<T>>(loop_, ops_, std::move(done));
    op->Register();
    op->ArmTimeout(options_.operation_timeout,
                   absl::StrFormat("%s: %s %s", name_, what, subject));
    return op;
  }

  template <typename T>
  static StoreHandle Handle(const std::shared_ptr<Op<T>>& op) {
    return std::make_unique<OpHandle>(op);
  }

  template <typename T>
  static bool Valid(Op<T>& op, std::string_view field, std::string_view id) {
    absl::Status status = CheckId(field, id);
    if (status.ok()) return true;
    op.Complete(std::move(status));
    return false;
  }

  StoreHandle Boolean(const std::shared_ptr<Op<bool>>& op, const RedisScript& script,
                      std::string key, std::vector<std::string> args) {
    op->Track(client_->Eval(script, {std::move(key)}, std::move(args),
                            [op](absl::StatusOr<const redisReply*> reply) {
                              if (!reply.ok()) return op->Complete(reply.status());
                              if ((*reply)->type != REDIS_REPLY_INTEGER) {
                                return op->Complete(absl::InternalError(
                                    "redis: lease script answered with a non-integer"));
                              }
                              op->Complete((*reply)->integer == 1);
                            }));
    return Handle(op);
  }

  // One round of List: the next ids of the owner's index, then each one's meta. Ids whose
  // session is gone (or belongs to someone else now) are skipped; rounds continue until
  // the page is full or the index ends.
  void ListRound(std::shared_ptr<Op<SessionPage>> op, std::shared_ptr<ListState> state) {
    size_t want = state->limit - state->page.sessions.size();
    std::string from = state->scan_after.empty() ? "-" : "(" + state->scan_after;
    std::string key = OwnerKey(state->owner);
    op->Track(client_->Command(
        {"ZRANGEBYLEX", key, from, "+", "LIMIT", "0", absl::StrCat(want + 1)}, key,
        [this, op, state, want](absl::StatusOr<const redisReply*> reply) {
          if (!reply.ok()) return op->Complete(reply.status());
          const redisReply* r = *reply;
          if (r->type != REDIS_REPLY_ARRAY) return op->Complete(Unexpected("", "list", r));
          auto ids = std::make_shared<std::vector<std::string>>();
          for (size_t i = 0; i < r->elements && i < want; ++i) {
            ids->emplace_back(Text(r->element[i]));
          }
          bool more = r->elements > want;
          if (ids->empty()) {
            state->page.next_cursor.clear();
            return op->Complete(std::move(state->page));
          }
          // One HMGET per id, pipelined (each to its session's node).
          auto metas = std::make_shared<std::vector<std::optional<SessionSummary>>>(ids->size());
          auto left = std::make_shared<size_t>(ids->size());
          for (size_t i = 0; i < ids->size(); ++i) {
            std::string meta_key = KeysOf((*ids)[i]).meta;
            op->Track(client_->Command(
                {"HMGET", meta_key, "owner", "turn_count", "created", "updated"}, meta_key,
                [this, op, state, ids, metas, left, i,
                 more](absl::StatusOr<const redisReply*> got) {
                  if (op->finished()) return;
                  if (!got.ok()) return op->Complete(got.status());
                  (*metas)[i] = Summary((*ids)[i], state->owner, *got);
                  if (--*left > 0) return;
                  for (auto& summary : *metas) {
                    if (summary.has_value()) state->page.sessions.push_back(*std::move(summary));
                  }
                  state->scan_after = ids->back();
                  bool full = state->page.sessions.size() >= state->limit;
                  if (!more) {
                    state->page.next_cursor.clear();
                    return op->Complete(std::move(state->page));
                  }
                  if (full || ++state->rounds >= 8) {
                    state->page.next_cursor = state->scan_after;
                    return op->Complete(std::move(state->page));
                  }
                  ListRound(op, state);
                }));
          }
        }));
  }

  // The summary of one listed id, or nullopt when its session is gone or not the owner's.
  static std::optional<SessionSummary> Summary(const std::string& id, const std::string& owner,
                                               const redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) return std::nullopt;
    for (size_t i = 0; i < 4; ++i) {
      if (r->element[i]->type != REDIS_REPLY_STRING) return std::nullopt;
    }
    if (Text(r->element[0]) != owner) return std::nullopt;
    SessionSummary summary;
    summary.session_id = id;
    int64_t created = 0, updated = 0;
    if (!absl::SimpleAtoi(ToAbsl(Text(r->element[1])), &summary.turn_count) ||
        !absl::SimpleAtoi(ToAbsl(Text(r->element[2])), &created) ||
        !absl::SimpleAtoi(ToAbsl(Text(r->element[3])), &updated)) {
      return std::nullopt;
    }
    summary.created = absl::FromUnixNanos(created);
    summary.updated = absl::FromUnixNanos(updated);
    return summary;
  }

  static bool IsIntArray(const redisReply* r, size_t min_elements) {
    return r->type == REDIS_REPLY_ARRAY && r->elements >= min_elements &&
           r->element[0]->type == REDIS_REPLY_INTEGER;
  }

  static absl::Status Unexpected(std::string_view sid, std::string_view what,
                                 const redisReply* r) {
    return absl::InternalError(absl::StrFormat(
        "redis: unexpected reply to %s of session %s (type %d)", what, sid, r->type));
  }

  // Builds the record's JSON from the stored parts and parses it with the record codec.
  static absl::StatusOr<StoredContext> Assemble(const std::string& sid, const redisReply* r) {
    auto loss = [&](std::string_view why) {
      return absl::DataLossError(absl::StrFormat("session %s: redis record %s", sid, why));
    };
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) return loss("has an unexpected shape");
    for (size_t i = 0; i < 4; ++i) {
      if (r->element[i]->type != REDIS_REPLY_ARRAY) return loss("has an unexpected shape");
    }
    const redisReply* meta = r->element[0];
    absl::flat_hash_map<std::string_view, std::string_view> fields;
    for (size_t i = 0; i + 1 < meta->elements; i += 2) {
      fields[Text(meta->element[i])] = Text(meta->element[i + 1]);
    }
    auto field = [&](std::string_view name) -> std::optional<std::string_view> {
      auto it = fields.find(name);
      if (it == fields.end()) return std::nullopt;
      return it->second;
    };
    uint64_t version = 0;
    int64_t created = 0, updated = 0, turn_count = 0, schema = 0;
    std::optional<std::string_view> v = field("version"), c = field("created"),
                                    u = field("updated"), t = field("turn_count"),
                                    s = field("schema_version"), o = field("owner"),
                                    md = field("metadata");
    if (!v || !absl::SimpleAtoi(ToAbsl(*v), &version) || version == 0) {
      return loss("meta.version is missing or not a positive integer");
    }
    if (!c || !absl::SimpleAtoi(ToAbsl(*c), &created)) return loss("meta.created is not an integer");
    if (!u || !absl::SimpleAtoi(ToAbsl(*u), &updated)) return loss("meta.updated is not an integer");
    if (!t || !absl::SimpleAtoi(ToAbsl(*t), &turn_count)) {
      return loss("meta.turn_count is not an integer");
    }
    if (!s || !absl::SimpleAtoi(ToAbsl(*s), &schema)) {
      return loss("meta.schema_version is not an integer");
    }
    if (!o) return loss("meta.owner is missing");
    ContextRecord skeleton;
    std::optional<std::string_view> stored_id = field("session_id");
    skeleton.session_id = std::string(stored_id ? *stored_id : std::string_view(sid));
    skeleton.owner = std::string(*o);
    skeleton.turn_count = turn_count;
    skeleton.created = absl::FromUnixNanos(created);
    skeleton.updated = absl::FromUnixNanos(updated);
    // The head ends with the (empty) metadata; the stored metadata and parts follow it.
    std::string json;
    AppendRecordHead(&json, skeleton);
    constexpr std::string_view kEmptyMetadata = "\"metadata\":{},";
    const std::string kSchemaPrefix = absl::StrCat("{\"schema_version\":", kContextSchemaVersion, ",");
    if (!absl::EndsWith(json, ToAbsl(kEmptyMetadata)) || !absl::StartsWith(json, kSchemaPrefix)) {
      return absl::InternalError("record head is not in the layout record_internal.h documents");
    }
    json.resize(json.size() - kEmptyMetadata.size());
    if (schema != kContextSchemaVersion) {
      // Parts written by another schema version: let the codec migrate or refuse them.
      json.replace(0, kSchemaPrefix.size(), absl::StrCat("{\"schema_version\":", schema, ","));
    }
    auto join = [](const redisReply* list) {
      std::string out;
      for (size_t i = 0; i < list->elements; ++i) {
        if (i > 0) out += ',';
        absl::StrAppend(&out, ToAbsl(Text(list->element[i])));
      }
      return out;
    };
    absl::StrAppend(&json, "\"metadata\":",
                    ToAbsl(md ? *md : std::string_view("{}")), ",\"history\":[",
                    join(r->element[1]), "],\"tool_calls\":[", join(r->element[2]),
                    "],\"model_choices\":[", join(r->element[3]), "]}");
    absl::StatusOr<ContextRecord> record = ParseContextRecord(json, sid);
    if (!record.ok()) return record.status();
    return StoredContext{.record = std::make_shared<const ContextRecord>(*std::move(record)),
                         .version = version,
                         .token_counts = nullptr};
  }

  SessionKeys KeysOf(const std::string& sid) const {
    std::string base = absl::StrCat(options_.key_prefix, "{", EscapeTag(sid), "}:");
    return SessionKeys{.meta = base + "meta", .history = base + "h", .tool_calls = base + "tc",
                       .model_choices = base + "mc", .lock = base + "lock"};
  }

  std::string OwnerKey(std::string_view owner) const {
    return absl::StrCat(options_.key_prefix, "owner:{", EscapeTag(owner), "}");
  }

  std::string TtlArg() const {
    if (options_.ttl == absl::InfiniteDuration()) return "0";
    return absl::StrCat(absl::ToInt64Milliseconds(options_.ttl));
  }

  EventLoop* const loop_;
  const RedisContextStoreOptions options_;
  std::string name_;
  std::unique_ptr<RedisClient> client_;
  std::shared_ptr<OpRegistry> ops_;
};

}  // namespace
}  // namespace context_internal

absl::Status ValidateRedisContextStoreOptions(const RedisContextStoreOptions& options) {
  using context_internal::ParseHostPort;
  using context_internal::ParseRedisUrl;
  MODEENVOY_ASSIGN_OR_RETURN(context_internal::RedisUrl url, ParseRedisUrl(options.url, "url"));
  if (options.cluster) {
    if (url.db != 0) {
      return absl::InvalidArgumentError("url: a cluster has only database 0");
    }
    if (!url.address.unix_path.empty()) {
      return absl::InvalidArgumentError("url: a cluster seed must be host:port");
    }
    for (size_t i = 0; i < options.cluster_seed_nodes.size(); ++i) {
      MODEENVOY_RETURN_IF_ERROR(ParseHostPort(options.cluster_seed_nodes[i],
                                              absl::StrFormat("cluster_seed_nodes[%d]", i))
                                    .status());
    }
  } else if (!options.cluster_seed_nodes.empty()) {
    return absl::InvalidArgumentError("cluster_seed_nodes: set without cluster");
  }
  if (options.key_prefix.find_first_of("{}") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "key_prefix: must not contain '{' or '}' (the session id is the hash tag), got '%s'",
        options.key_prefix));
  }
  if (options.ttl < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("ttl: must be at least 1ms");
  }
  auto positive = [](absl::Duration d) { return d > absl::ZeroDuration(); };
  if (!positive(options.connect_timeout)) {
    return absl::InvalidArgumentError("connect_timeout: must be > 0");
  }
  if (!positive(options.operation_timeout)) {
    return absl::InvalidArgumentError("operation_timeout: must be > 0");
  }
  if (!positive(options.reconnect_backoff_min) ||
      options.reconnect_backoff_max < options.reconnect_backoff_min) {
    return absl::InvalidArgumentError(
        "reconnect_backoff_min: must be > 0 and <= reconnect_backoff_max");
  }
  if (options.max_pipelined == 0) {
    return absl::InvalidArgumentError("max_pipelined: must be > 0");
  }
  if (options.max_record_bytes == 0) {
    return absl::InvalidArgumentError("max_record_bytes: must be > 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ContextStore>> NewRedisContextStore(
    EventLoop* loop, const RedisContextStoreOptions& options) {
  using context_internal::ParseHostPort;
  using context_internal::ParseRedisUrl;
  if (loop == nullptr) return absl::InvalidArgumentError("loop: must not be null");
  MODEENVOY_RETURN_IF_ERROR(ValidateRedisContextStoreOptions(options));
  MODEENVOY_ASSIGN_OR_RETURN(context_internal::RedisUrl url, ParseRedisUrl(options.url, "url"));
  context_internal::RedisClientOptions client;
  client.seeds.push_back(url.address);
  client.cluster = options.cluster;
  client.user = url.user;
  client.password = url.password;
  client.db = url.db;
  if (options.cluster) {
    for (size_t i = 0; i < options.cluster_seed_nodes.size(); ++i) {
      MODEENVOY_ASSIGN_OR_RETURN(
          context_internal::RedisAddress seed,
          ParseHostPort(options.cluster_seed_nodes[i],
                        absl::StrFormat("cluster_seed_nodes[%d]", i)));
      client.seeds.push_back(std::move(seed));
    }
  }
  client.connect_timeout = options.connect_timeout;
  client.refresh_timeout = options.operation_timeout;
  client.backoff_min = options.reconnect_backoff_min;
  client.backoff_max = options.reconnect_backoff_max;
  client.max_pipelined = options.max_pipelined;
  client.clock = options.clock != nullptr ? options.clock : &loop->clock();
  if (options.random) {
    client.random = options.random;
  } else {
    auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
    client.random = [engine] { return (*engine)(); };
  }
  return std::unique_ptr<ContextStore>(
      new context_internal::RedisContextStore(loop, options, std::move(client)));
}

}  // namespace modeenvoy
