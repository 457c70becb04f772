// include/modeenvoy/context/redis_store.h: a ContextStore in Redis (or Redis Cluster),
// non-blocking on the host's event loop.
//   modeenvoy::RedisContextStoreOptions options;
//   options.url = "redis://:secret@10.0.0.5:6379/2";
//   options.key_prefix = "tenant-a:";
//   absl::StatusOr<std::unique_ptr<modeenvoy::ContextStore>> store =
//       modeenvoy::NewRedisContextStore(&loop, options);
//   if (!store.ok()) return store.status();            // a bad URL or option
//   handle = (*store)->Get("s-1", [](auto got) { ... }); // runs later, on `loop`
//
// Key layout (P = key_prefix, S = the session id with '%' and '}' written as %25 and %7D so
// that `{S}` is always the whole hash tag; the other bytes are kept as they are):
//   P{S}:meta   hash: version, owner, session_id, schema_version, created, updated (Unix
//               nanoseconds), turn_count, metadata (a JSON object), bytes (the record's size)
//   P{S}:h      list: one history entry per element, as JSON (record.h's codec)
//   P{S}:tc     list: one tool invocation per element, as JSON
//   P{S}:mc     list: one model choice per element, as JSON
//   P{S}:lock   string: the lease holder's token, with the lease's expiry (PX)
//   P owner:{O} sorted set (score 0) of the session ids owner O created, in bytewise order
// The hash tag puts one session's keys in one Redis Cluster slot, so every write of a
// session is one Lua script on one node: Append checks the version, RPUSHes the parts,
// updates stored tool results (LSET), merges metadata, bumps version, turn_count and
// updated, and refreshes the TTL of every key, or changes nothing; Replace rewrites the
// parts the same way; Get reads every part with one script. Scripts run by EVALSHA and are
// sent again with EVAL when a node answers NOSCRIPT (restart, failover, new node).
// The owner index lives in its owner's own slot and is updated in a second step, after the
// session's script succeeded: a session created or deleted in that window may be missing
// from (or still be in) a concurrent List for one round trip, and a gateway that dies in
// between leaves the index behind the session. List therefore reads each listed session and
// skips ids whose session no longer exists (deleted, expired, never finished); Delete
// removes the index entry after the session. The index key's TTL is refreshed when a
// session is added to it.
// Record size: `bytes` counts the stored JSON of every part plus owner and metadata, which
// is what max_record_bytes bounds (the serialized record is a few dozen bytes larger).
//
// Failure modes (the store never blocks the loop and no operation waits past its timeout):
//  - kUnavailable "redis <address>: <reason>": the connection is down (refused, reset,
//    AUTH or SELECT refused, not established within connect_timeout) or was lost while the
//    operation was in flight, or the node answered LOADING, BUSY, TRYAGAIN (a multi-key
//    script on a slot being migrated), CLUSTERDOWN, MASTERDOWN or READONLY. After a failure
//    the store reconnects with exponential backoff (reconnect_backoff_min doubling up to
//    reconnect_backoff_max, each delay drawn uniformly from [delay/2, delay] with `random`);
//    operations arriving while it waits fail at once with the reason and the time to the
//    next attempt, never queue.
//  - kDeadlineExceeded: no reply within operation_timeout (a stalled server, a long script).
//    The late reply is read and dropped in order, and the connection is kept; a write whose
//    reply timed out may have been applied (read the version again).
//  - kInternal "redis <address>: <error>": any other error reply (a bug, or a server too old
//    for the scripts: Redis >= 4 is needed for multi-field HSET).
//  - kUnavailable after too many cluster redirections (MOVED/ASK more than 5 times).
//  - kDataLoss for a stored record that does not parse, naming the session.
// Cluster: the slot map comes from CLUSTER SLOTS on a seed node and is refreshed on every
// MOVED; ASK is followed with ASKING once. One connection per node.
// Beyond store.h: Replace refuses (kInvalidArgument) a record whose session_id names
// another session or whose owner is empty, as the memory store does. A host name in `url`
// is resolved by a blocking getaddrinfo() when (re)connecting: prefer IP addresses.
// Thread safety: thread-hostile. Create, use and destroy the store on its loop's thread.
// Destroying the store drops every pending callback without running it.
#ifndef MODEENVOY_CONTEXT_REDIS_STORE_H_
#define MODEENVOY_CONTEXT_REDIS_STORE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/context/store.h"
#include "modeenvoy/event_loop.h"
#include "modeenvoy/export.h"

namespace modeenvoy {

struct RedisContextStoreOptions {
  // "redis://[[user]:password@]host:port[/db]" (port defaults to 6379, db to 0) or
  // "unix:///path/to/redis.sock". In cluster mode the first seed node (db must be 0).
  std::string url = "redis://127.0.0.1:6379";
  // Redis Cluster: discover the slot map and route each key to its master.
  bool cluster = false;
  // More seed nodes ("host:port") tried after the url's when discovering the cluster.
  std::vector<std::string> cluster_seed_nodes;
  // Prepended to every key (a tenant's namespace). Must not contain '{' or '}' (the hash
  // tag must be the session id's).
  std::string key_prefix = "modeenvoy:ctx:";
  // Sessions not written for this long expire (every key of a session gets this TTL again
  // on each write). absl::InfiniteDuration(): never. REQUIRES: >= 1ms.
  absl::Duration ttl = absl::Hours(24);
  // Append and Replace refuse a record larger than this (kResourceExhausted).
  size_t max_record_bytes = size_t{4} << 20;
  // REQUIRES: > 0.
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration operation_timeout = absl::Seconds(2);
  // REQUIRES: 0 < min <= max.
  absl::Duration reconnect_backoff_min = absl::Milliseconds(50);
  absl::Duration reconnect_backoff_max = absl::Seconds(5);
  // Commands sent on one connection before their replies arrived; more wait in order.
  // REQUIRES: > 0.
  size_t max_pipelined = 1024;
  // Uniform 64-bit draws for backoff jitter. Null: a generator seeded from
  // std::random_device.
  std::function<uint64_t()> random;
  // Used for the time to the next reconnect reported in errors. Not owned; null means the
  // loop's clock(). Timeouts and backoff run on the loop's timers.
  const Clock* clock = nullptr;
};

// Creates a store bound to `loop` (not owned; must outlive the store) and starts connecting
// (without waiting). Operations complete on `loop`, never inline; handles are never null.
// Errors: kInvalidArgument naming the option (url, key_prefix, cluster_seed_nodes[i], ...)
// for a malformed or out-of-range option. An unreachable server is not an error here: the
// operations report it.
MODEENVOY_EXPORT absl::StatusOr<std::unique_ptr<ContextStore>> NewRedisContextStore(
    EventLoop* loop, const RedisContextStoreOptions& options);

// The checks NewRedisContextStore makes on `options`, without a loop and without
// connecting (a configuration loader calls it so that a bad option fails the load, not the
// first request). Errors: kInvalidArgument "<option>: <reason>", the option named as in
// RedisContextStoreOptions (url, cluster_seed_nodes[i], key_prefix, ttl, ...). A
// "rediss://" url (TLS) is refused: this store speaks plain TCP or a Unix socket only.
MODEENVOY_EXPORT absl::Status ValidateRedisContextStoreOptions(
    const RedisContextStoreOptions& options);

}  // namespace modeenvoy

#endif  // MODEENVOY_CONTEXT_REDIS_STORE_H_
