// tests/context/redis_store_test.cc: the Redis store against real redis-server processes
// (tests/context/redis_server.h) on a PollEventLoop. Skipped only when redis-server is not
// installed; scripts/setup.sh installs it, so `make test` runs them.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/context/redis_client.h"
#include "modeenvoy/context/redis_store.h"
#include "modeenvoy/gateway/poll_event_loop.h"
#include "tests/context/redis_server.h"
#include "tests/context/store_conformance.h"

namespace modeenvoy::testing {
namespace {

using context_internal::ParseRedisUrl;
using context_internal::RedisKeySlot;
using context_internal::Sha1Hex;
using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);  // a bound for liveness, never asserted

// One server for the whole binary's conformance run; every store gets its own key prefix.
// A function-local static: stopped (by pid) when the test program exits.
RedisServer* SharedServer(std::string* skip_reason) {
  if (!RedisServer::Installed()) {
    *skip_reason = "redis-server is not installed (scripts/setup.sh installs it)";
    return nullptr;
  }
  static std::unique_ptr<RedisServer> server = [] {
    absl::StatusOr<std::unique_ptr<RedisServer>> started = RedisServer::Start();
    if (!started.ok()) {
      ADD_FAILURE() << started.status();
      return std::unique_ptr<RedisServer>();
    }
    return *std::move(started);
  }();
  return server.get();
}

class RedisHarness : public StoreHarness {
 public:
  explicit RedisHarness(RedisServer* server) : server_(server), loop_(NewPollEventLoop()) {}
  std::unique_ptr<ContextStore> NewStore(const ConformanceStoreOptions& options) override {
    static int stores = 0;
    RedisContextStoreOptions o;
    o.url = server_->url();
    o.key_prefix = absl::StrCat("conf", getpid(), "-", ++stores, ":");
    o.max_record_bytes = options.max_record_bytes;
    o.operation_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<ContextStore>> store = NewRedisContextStore(loop_.get(), o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  bool RunUntil(absl::FunctionRef<bool()> done) override { return loop_->RunUntil(done, kWait); }

 private:
  RedisServer* server_;
  std::unique_ptr<PollEventLoop> loop_;
};

std::unique_ptr<StoreHarness> MakeRedisHarness(std::string* skip_reason) {
  RedisServer* server = SharedServer(skip_reason);
  if (server == nullptr) {
    if (skip_reason->empty()) *skip_reason = "redis-server did not start";
    return nullptr;
  }
  return std::make_unique<RedisHarness>(server);
}

INSTANTIATE_TEST_SUITE_P(Redis, StoreConformanceTest, ::testing::Values(&MakeRedisHarness));

// ---- pure helpers --------------------------------------------------------------------------

TEST(RedisKeySlotTest, MatchesTheClusterSpecification) {
  // The spec's CRC16 check value: CRC16("123456789") = 0x31C3; slot = crc mod 16384.
  EXPECT_EQ(RedisKeySlot("123456789"), 0x31C3 % 16384);
  // Only the hash tag counts; an empty tag means the whole key.
  EXPECT_EQ(RedisKeySlot("{user1000}.following"), RedisKeySlot("user1000"));
  EXPECT_EQ(RedisKeySlot("foo{}{bar}"), RedisKeySlot("foo{}{bar}"));
  EXPECT_NE(RedisKeySlot("foo{}{bar}"), RedisKeySlot("bar"));
  EXPECT_EQ(RedisKeySlot("foo{{bar}}zap"), RedisKeySlot("{bar"));
}

TEST(Sha1HexTest, KnownVectors) {
  EXPECT_EQ(Sha1Hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(Sha1Hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(Sha1Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(ParseRedisUrlTest, ReadsEveryPart) {
  auto u = ParseRedisUrl("redis://alice:s3cret@10.1.2.3:6390/4", "url");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->address.host, "10.1.2.3");
  EXPECT_EQ(u->address.port, 6390);
  EXPECT_EQ(u->user, "alice");
  EXPECT_EQ(u->password, "s3cret");
  EXPECT_EQ(u->db, 4);
  u = ParseRedisUrl("redis://:pw@localhost", "url");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->address.port, 6379);
  EXPECT_EQ(u->user, "");
  EXPECT_EQ(u->password, "pw");
  u = ParseRedisUrl("unix:///run/redis.sock", "url");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->address.unix_path, "/run/redis.sock");
}

TEST(ParseRedisUrlTest, NamesTheFieldInErrors) {
  for (const char* bad : {"http://h:1", "redis://", "redis://h:0", "redis://h:99999",
                          "redis://h:1/x", "unix://relative"}) {
    auto u = ParseRedisUrl(bad, "url");
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(u.status().message(), "url: ")) << u.status();
  }
}

TEST(NewRedisContextStoreTest, RejectsBadOptionsNamingThem) {
  auto loop = NewPollEventLoop();
  auto expect_bad = [&](RedisContextStoreOptions o, std::string_view field) {
    auto store = NewRedisContextStore(loop.get(), o);
    ASSERT_FALSE(store.ok()) << field;
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(store.status().message(), std::string(field)))
        << store.status();
  };
  RedisContextStoreOptions o;
  o.key_prefix = "tenant{a}:";
  expect_bad(o, "key_prefix");
  o = {};
  o.ttl = absl::ZeroDuration();
  expect_bad(o, "ttl");
  o = {};
  o.operation_timeout = absl::ZeroDuration();
  expect_bad(o, "operation_timeout");
  o = {};
  o.reconnect_backoff_min = absl::Seconds(2);
  o.reconnect_backoff_max = absl::Seconds(1);
  expect_bad(o, "reconnect_backoff_min");
  o = {};
  o.max_pipelined = 0;
  expect_bad(o, "max_pipelined");
  o = {};
  o.cluster = true;
  o.cluster_seed_nodes = {"127.0.0.1:7000", "127.0.0.1:port"};
  expect_bad(o, "cluster_seed_nodes[1]");
  o = {};
  o.cluster = true;
  o.url = "redis://127.0.0.1:7000/2";
  expect_bad(o, "url");
}

// ---- against one server --------------------------------------------------------------------

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::Installed()) GTEST_SKIP() << "redis-server is not installed";
    auto server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    loop_ = NewPollEventLoop();
  }

  RedisContextStoreOptions Options() {
    RedisContextStoreOptions o;
    o.url = server_->url();
    o.key_prefix = "t:";
    o.operation_timeout = absl::Seconds(5);
    o.reconnect_backoff_min = absl::Milliseconds(5);
    o.reconnect_backoff_max = absl::Milliseconds(50);
    o.random = [] { return uint64_t{12345}; };
    return o;
  }

  std::unique_ptr<ContextStore> Store(RedisContextStoreOptions o) {
    auto store = NewRedisContextStore(loop_.get(), o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  template <typename T, typename Start>
  absl::StatusOr<T> Await(Start start) {
    std::optional<absl::StatusOr<T>> result;
    StoreHandle handle = start([&](absl::StatusOr<T> r) { result.emplace(std::move(r)); });
    EXPECT_NE(handle, nullptr) << "the redis store never completes inline";
    if (!loop_->RunUntil([&] { return result.has_value(); }, kWait)) {
      return absl::InternalError("test: the operation never completed");
    }
    return *std::move(result);
  }
  absl::StatusOr<std::optional<StoredContext>> Get(ContextStore& s, std::string_view id) {
    return Await<std::optional<StoredContext>>([&](auto cb) { return s.Get(id, std::move(cb)); });
  }
  absl::StatusOr<uint64_t> Append(ContextStore& s, std::string_view id, uint64_t version,
                                  ContextAppend a) {
    return Await<uint64_t>(
        [&](auto cb) { return s.Append(id, version, std::move(a), std::move(cb)); });
  }
  absl::StatusOr<SessionPage> List(ContextStore& s, std::string_view owner) {
    return Await<SessionPage>([&](auto cb) { return s.List(owner, "", 100, std::move(cb)); });
  }

  static ContextAppend Turn(std::string text, std::string owner = "team-a") {
    ContextAppend a;
    a.owner = std::move(owner);
    a.entries = {HistoryEntry{.message = MakeMessage(Role::kUser, std::move(text)), .turn = 1}};
    a.turns = 1;
    a.now = absl::FromUnixSeconds(1700000000);
    return a;
  }

  static ToolInvocation Tool() {
    ToolInvocation t;
    t.turn = 1;
    t.id = "c1";
    t.name = "f";
    t.arguments = "{}";
    return t;
  }

  static ModelChoice Choice() {
    ModelChoice c;
    c.turn = 1;
    c.model = "m";
    c.provider = "p";
    c.upstream_model = "u";
    return c;
  }

  std::vector<std::string> Keys(std::string pattern = "*") {
    auto keys = server_->Call({"KEYS", pattern});
    EXPECT_TRUE(keys.ok()) << keys.status();
    std::vector<std::string> out = keys.ok() ? keys->items : std::vector<std::string>{};
    std::sort(out.begin(), out.end());
    return out;
  }

  std::unique_ptr<RedisServer> server_;
  std::unique_ptr<PollEventLoop> loop_;
};

TEST_F(RedisStoreTest, KeysFollowTheDocumentedLayout) {
  auto store = Store(Options());
  ContextAppend a = Turn("hi");
  a.tool_calls = {Tool()};
  a.model_choice = Choice();
  ASSERT_TRUE(Append(*store, "s-1", 0, a).ok());
  EXPECT_THAT(Keys(), ::testing::ElementsAre("t:owner:{team-a}", "t:{s-1}:h", "t:{s-1}:mc",
                                             "t:{s-1}:meta", "t:{s-1}:tc"));
  auto version = server_->Call({"HGET", "t:{s-1}:meta", "version"});
  ASSERT_TRUE(version.ok());
  EXPECT_EQ(version->text, "1");
  auto owner = server_->Call({"HGET", "t:{s-1}:meta", "owner"});
  EXPECT_EQ(owner->text, "team-a");
  auto created = server_->Call({"HGET", "t:{s-1}:meta", "created"});
  EXPECT_EQ(created->text, "1700000000000000000");
  auto members = server_->Call({"ZRANGE", "t:owner:{team-a}", "0", "-1"});
  EXPECT_THAT(members->items, ::testing::ElementsAre("s-1"));
}

TEST_F(RedisStoreTest, BracesAndPercentInIdsStayInsideOneHashTag) {
  auto store = Store(Options());
  // Without escaping, "}x" would end the tag at once and "a}b" would split it.
  for (const char* id : {"}x", "a}b", "50%}", "{y"}) {
    ASSERT_TRUE(Append(*store, id, 0, Turn(id)).ok()) << id;
    auto got = Get(*store, id);
    ASSERT_TRUE(got.ok() && got->has_value()) << id;
    EXPECT_EQ((*got)->record->session_id, id);
    EXPECT_EQ(std::get<std::string>(*(*got)->record->history[0].message.content), id);
  }
  // Every key of one session hashes to one slot.
  std::vector<std::string> keys = Keys("t:{*");
  ASSERT_FALSE(keys.empty());
  for (const std::string& key : keys) {
    std::string part = key.substr(0, key.rfind(':'));
    EXPECT_EQ(RedisKeySlot(key), RedisKeySlot(part + ":meta")) << key;
  }
  EXPECT_THAT(keys, ::testing::Contains("t:{%7Dx}:meta"));
  EXPECT_THAT(keys, ::testing::Contains("t:{50%25%7D}:meta"));
}

TEST_F(RedisStoreTest, KeyPrefixesIsolateTenants) {
  RedisContextStoreOptions a_options = Options();
  a_options.key_prefix = "tenant-a:";
  RedisContextStoreOptions b_options = Options();
  b_options.key_prefix = "tenant-b:";
  auto a = Store(a_options);
  auto b = Store(b_options);
  ASSERT_TRUE(Append(*a, "s-1", 0, Turn("from a")).ok());
  auto seen = Get(*b, "s-1");
  ASSERT_TRUE(seen.ok());
  EXPECT_FALSE(seen->has_value());
  auto listed = List(*b, "team-a");
  ASSERT_TRUE(listed.ok());
  EXPECT_TRUE(listed->sessions.empty());
  ASSERT_TRUE(Append(*b, "s-1", 0, Turn("from b")).ok());  // its own s-1, version 0
  auto got = Get(*a, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(std::get<std::string>(*(*got)->record->history[0].message.content), "from a");
  for (const std::string& key : Keys()) {
    EXPECT_TRUE(absl::StartsWith(key, "tenant-a:") || absl::StartsWith(key, "tenant-b:"))
        << key;
  }
}

TEST_F(RedisStoreTest, EveryWriteSetsTheTtlOnEveryKey) {
  RedisContextStoreOptions o = Options();
  o.ttl = absl::Seconds(100);
  auto store = Store(o);
  ContextAppend a = Turn("hi");
  a.tool_calls = {Tool()};
  a.model_choice = Choice();
  ASSERT_TRUE(Append(*store, "s-1", 0, a).ok());
  for (const std::string& key : Keys()) {
    auto pttl = server_->Call({"PTTL", key});
    ASSERT_TRUE(pttl.ok());
    EXPECT_GT(pttl->integer, 0) << key;
    EXPECT_LE(pttl->integer, 100000) << key;
  }
  // A later append refreshes the TTL (shortened by hand here, then written again).
  for (const char* part : {"meta", "h", "tc", "mc"}) {
    ASSERT_TRUE(server_->Call({"PEXPIRE", absl::StrCat("t:{s-1}:", part), "5000"}).ok());
  }
  ASSERT_TRUE(Append(*store, "s-1", 1, Turn("again")).ok());
  for (const char* part : {"meta", "h", "tc", "mc"}) {
    auto pttl = server_->Call({"PTTL", absl::StrCat("t:{s-1}:", part)});
    EXPECT_GT(pttl->integer, 5000) << part;
  }
}

TEST_F(RedisStoreTest, AnExpiredSessionIsGoneAndNotListed) {
  RedisContextStoreOptions o = Options();
  o.ttl = absl::Milliseconds(50);
  auto store = Store(o);
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("short-lived")).ok());
  // Wait (bounded) for the server to expire it; no assertion on how long that takes.
  bool gone = false;
  for (int i = 0; i < 400 && !gone; ++i) {
    auto got = Get(*store, "s-1");
    ASSERT_TRUE(got.ok()) << got.status();
    gone = !got->has_value();
    if (!gone) loop_->RunUntil([] { return false; }, absl::Milliseconds(25));
  }
  ASSERT_TRUE(gone);
  auto listed = List(*store, "team-a");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_TRUE(listed->sessions.empty());
}

TEST_F(RedisStoreTest, ScriptsAreSentAgainAfterTheServerForgotThem) {
  auto store = Store(Options());
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("one")).ok());
  ASSERT_TRUE(server_->Call({"SCRIPT", "FLUSH"}).ok());  // the next EVALSHA gets NOSCRIPT
  auto v = Append(*store, "s-1", 1, Turn("two"));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 2u);
  auto got = Get(*store, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->record->history.size(), 2u);
}

TEST_F(RedisStoreTest, AFailingScriptChangesNothing) {
  auto store = Store(Options());
  ContextAppend first = Turn("one");
  first.tool_calls = {Tool()};
  ASSERT_TRUE(Append(*store, "s-1", 0, first).ok());
  auto before_h = server_->Call({"LRANGE", "t:{s-1}:h", "0", "-1"});
  auto before_meta = server_->Call({"HGETALL", "t:{s-1}:meta"});
  // Entries, a metadata change and a valid result, then an out-of-range result: the script
  // checks everything before its first write.
  ContextAppend bad = Turn("two");
  bad.metadata = {{"k", "v"}};
  bad.tool_results = {{0, "ok"}, {3, "out of range"}};
  EXPECT_EQ(Append(*store, "s-1", 1, bad).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server_->Call({"LRANGE", "t:{s-1}:h", "0", "-1"})->items, before_h->items);
  EXPECT_EQ(server_->Call({"HGETALL", "t:{s-1}:meta"})->items, before_meta->items);
  auto tc = server_->Call({"LINDEX", "t:{s-1}:tc", "0"});
  EXPECT_THAT(tc->text, ::testing::Not(HasSubstr("result")));
}

TEST_F(RedisStoreTest, AStoredRecordOfANewerSchemaIsAnErrorNamingTheSession) {
  auto store = Store(Options());
  ASSERT_TRUE(Append(*store, "s-new", 0, Turn("hi")).ok());
  ASSERT_TRUE(server_->Call({"HSET", "t:{s-new}:meta", "schema_version", "99"}).ok());
  auto got = Get(*store, "s-new");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("s-new"));
}

TEST_F(RedisStoreTest, ACorruptEntryIsDataLossNamingTheSession) {
  auto store = Store(Options());
  ASSERT_TRUE(Append(*store, "s-bad", 0, Turn("hi")).ok());
  ASSERT_TRUE(server_->Call({"RPUSH", "t:{s-bad}:h", "{\"message\":"}).ok());
  auto got = Get(*store, "s-bad");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("s-bad"));
  ASSERT_TRUE(server_->Call({"HDEL", "t:{s-bad}:meta", "version"}).ok());
  got = Get(*store, "s-bad");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("s-bad"));
}

TEST_F(RedisStoreTest, AuthAndSelectOnConnect) {
  server_.reset();
  auto server = RedisServer::Start(0, {"--requirepass", "s3cret"});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  server_->set_password("s3cret");
  RedisContextStoreOptions o = Options();
  o.url = absl::StrCat("redis://:s3cret@127.0.0.1:", server_->port(), "/3");
  auto store = Store(o);
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("in db 3")).ok());
  EXPECT_EQ(server_->Call({"DBSIZE"})->integer, 0);  // database 0
  // Call opens a fresh connection per command: a script selects database 3.
  auto in3 = server_->Call({"EVAL", "redis.call('SELECT', 3) return redis.call('EXISTS', KEYS[1])",
                            "1", "t:{s-1}:meta"});
  ASSERT_TRUE(in3.ok());
  EXPECT_EQ(in3->integer, 1);

  RedisContextStoreOptions wrong = Options();
  wrong.url = absl::StrCat("redis://:nope@127.0.0.1:", server_->port());
  auto refused = Store(wrong);
  auto got = Get(*refused, "s-1");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(got.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", server_->port())));
}

// Two stores (two connections, as two gateway processes sharing one Redis) with writers
// racing on one session through CAS retries: every turn lands exactly once, in each
// writer's order.
TEST_F(RedisStoreTest, TwoStoresRacingOnOneSessionLoseNoTurn) {
  auto first = Store(Options());
  auto second = Store(Options());
  constexpr int kWritersPerStore = 4;
  constexpr int kTurns = 15;
  struct Writer {
    ContextStore* store = nullptr;
    int id = 0;
    int next = 0;
    absl::Status failure;
    StoreHandle op;
  };
  std::vector<Writer> writers(2 * kWritersPerStore);
  int finished = 0;
  std::function<void(Writer&)> step = [&](Writer& w) {
    if (w.next == kTurns) {
      ++finished;
      return;
    }
    w.op = w.store->Get("shared", [&](absl::StatusOr<std::optional<StoredContext>> got) {
      if (!got.ok()) {
        w.failure = got.status();
        ++finished;
        return;
      }
      ContextAppend a = Turn(absl::StrCat("w", w.id, "-t", w.next));
      w.op = w.store->Append("shared", got->has_value() ? (*got)->version : 0, std::move(a),
                             [&](absl::StatusOr<uint64_t> v) {
                               if (v.ok()) {
                                 ++w.next;
                               } else if (v.status().code() != absl::StatusCode::kAborted) {
                                 w.failure = v.status();
                                 ++finished;
                                 return;
                               }
                               step(w);
                             });
    });
  };
  for (size_t i = 0; i < writers.size(); ++i) {
    writers[i].store = i % 2 == 0 ? first.get() : second.get();
    writers[i].id = static_cast<int>(i);
    step(writers[i]);
  }
  ASSERT_TRUE(loop_->RunUntil([&] { return finished == static_cast<int>(writers.size()); },
                              kWait));
  for (const Writer& w : writers) ASSERT_TRUE(w.failure.ok()) << w.failure;
  auto got = Get(*first, "shared");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  const auto& history = (*got)->record->history;
  ASSERT_EQ(history.size(), writers.size() * kTurns);
  std::vector<int> seen(writers.size(), 0);
  for (const HistoryEntry& e : history) {
    const std::string& text = std::get<std::string>(*e.message.content);
    int writer = text[1] - '0';
    ASSERT_TRUE(writer >= 0 && writer < static_cast<int>(writers.size())) << text;
    EXPECT_EQ(text, absl::StrCat("w", writer, "-t", seen[writer]));
    ++seen[writer];
  }
  EXPECT_EQ((*got)->version, writers.size() * kTurns);
}

TEST_F(RedisStoreTest, ConnectsOverAUnixSocket) {
  std::string socket_path = absl::StrCat("/tmp/modeenvoy-redis-", getpid(), ".sock");
  server_.reset();
  auto server = RedisServer::Start(0, {"--unixsocket", socket_path, "--unixsocketperm", "700"});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = *std::move(server);
  RedisContextStoreOptions o = Options();
  o.url = "unix://" + socket_path;
  auto store = Store(o);
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("over a socket")).ok());
  EXPECT_EQ(server_->Call({"EXISTS", "t:{s-1}:meta"})->integer, 1);  // the same server
}

TEST_F(RedisStoreTest, SurvivesAServerKilledAndRestartedOnTheSamePort) {
  auto store = Store(Options());
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("before")).ok());
  ASSERT_TRUE(server_->Stop().ok());
  // While it is down every operation fails fast with kUnavailable naming the address.
  for (int i = 0; i < 5; ++i) {
    auto got = Get(*store, "s-1");
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
    EXPECT_THAT(got.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", server_->port())));
  }
  ASSERT_TRUE(server_->Restart().ok());
  // Reconnected after a backoff (bounded wait): the data was not persisted, so the session
  // starts again from version 0.
  absl::StatusOr<uint64_t> v = absl::UnavailableError("not tried");
  for (int i = 0; i < 400 && !v.ok(); ++i) {
    v = Append(*store, "s-1", 0, Turn("after"));
    if (!v.ok()) {
      ASSERT_EQ(v.status().code(), absl::StatusCode::kUnavailable) << v.status();
      loop_->RunUntil([] { return false; }, absl::Milliseconds(10));
    }
  }
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1u);
  auto got = Get(*store, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ(std::get<std::string>(*(*got)->record->history[0].message.content), "after");
}

TEST_F(RedisStoreTest, ConnectionRefusedIsUnavailableAtOnce) {
  int port = FreePort();
  RedisContextStoreOptions o = Options();
  o.url = absl::StrCat("redis://127.0.0.1:", port);
  auto store = Store(o);
  auto got = Get(*store, "s-1");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable) << got.status();
  EXPECT_THAT(got.status().message(), HasSubstr(absl::StrCat("127.0.0.1:", port)));
}

TEST_F(RedisStoreTest, AServerThatNeverAnswersIsDeadlineExceeded) {
  // A listener that accepts (the kernel completes the handshake) and never replies.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 16), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  RedisContextStoreOptions o = Options();
  o.url = absl::StrCat("redis://127.0.0.1:", ntohs(addr.sin_port));
  o.operation_timeout = absl::Milliseconds(100);
  auto store = Store(o);
  auto got = Get(*store, "s-1");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded) << got.status();
  auto v = Append(*store, "s-1", 0, Turn("x"));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kDeadlineExceeded) << v.status();
  close(fd);
}

TEST_F(RedisStoreTest, ACancelledOperationNeverCallsBackAndLaterRepliesStayInOrder) {
  auto store = Store(Options());
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("one")).ok());
  bool cancelled_ran = false;
  StoreHandle cancelled = store->Get("s-1", [&](auto) { cancelled_ran = true; });
  ASSERT_NE(cancelled, nullptr);
  cancelled->Cancel();
  bool dropped_ran = false;
  {
    StoreHandle dropped = store->Append("s-1", 1, Turn("two"),
                                        [&](auto) { dropped_ran = true; });
  }  // destroyed: its write was sent and may apply, its callback never runs
  // The next operation on the same connection gets its own reply, not a cancelled one's.
  auto got = Get(*store, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->version, 2u);
  EXPECT_EQ((*got)->record->history.size(), 2u);
  loop_->RunUntil([] { return false; }, absl::Milliseconds(20));
  EXPECT_FALSE(cancelled_ran);
  EXPECT_FALSE(dropped_ran);
}

TEST_F(RedisStoreTest, DestroyingTheStoreDropsPendingCallbacks) {
  auto store = Store(Options());
  bool ran = false;
  StoreHandle pending = store->Get("s-1", [&](auto) { ran = true; });
  store.reset();
  loop_->RunUntil([] { return false; }, absl::Milliseconds(20));
  EXPECT_FALSE(ran);
  pending.reset();  // safe after the store is gone
}

TEST_F(RedisStoreTest, PipelinesBeyondTheInFlightBound) {
  RedisContextStoreOptions o = Options();
  o.max_pipelined = 2;
  auto store = Store(o);
  ASSERT_TRUE(Append(*store, "s-1", 0, Turn("one")).ok());
  constexpr int kReads = 50;
  int done = 0;
  std::vector<StoreHandle> handles;
  for (int i = 0; i < kReads; ++i) {
    handles.push_back(store->Get("s-1", [&](absl::StatusOr<std::optional<StoredContext>> got) {
      EXPECT_TRUE(got.ok() && got->has_value()) << got.status();
      ++done;
    }));
  }
  ASSERT_TRUE(loop_->RunUntil([&] { return done == kReads; }, kWait));
}

// ---- a three-node cluster ------------------------------------------------------------------

class RedisClusterStoreTest : public RedisStoreTest {
 protected:
  void SetUp() override {
    if (!RedisServer::Installed()) GTEST_SKIP() << "redis-server is not installed";
    auto cluster = RedisCluster::Start();
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    loop_ = NewPollEventLoop();
  }
  RedisContextStoreOptions ClusterOptions() {
    RedisContextStoreOptions o;
    o.cluster = true;
    o.url = cluster_->nodes()[0]->url();
    o.key_prefix = "c:";
    o.operation_timeout = absl::Seconds(5);
    return o;
  }
  std::unique_ptr<RedisCluster> cluster_;
};

TEST_F(RedisClusterStoreTest, SessionsSpreadOverTheNodesAndReadBack) {
  auto store = Store(ClusterOptions());
  constexpr int kSessions = 30;
  for (int i = 0; i < kSessions; ++i) {
    std::string id = absl::StrCat("s-", i);
    auto v = Append(*store, id, 0, Turn(id, "owner-x"));
    ASSERT_TRUE(v.ok()) << id << ": " << v.status();
  }
  for (int i = 0; i < kSessions; ++i) {
    std::string id = absl::StrCat("s-", i);
    auto got = Get(*store, id);
    ASSERT_TRUE(got.ok() && got->has_value()) << id << ": " << got.status();
    EXPECT_EQ(std::get<std::string>(*(*got)->record->history[0].message.content), id);
  }
  for (auto& node : cluster_->nodes()) {
    auto size = node->Call({"DBSIZE"});
    ASSERT_TRUE(size.ok());
    EXPECT_GT(size->integer, 0) << "node " << node->port() << " holds no session";
  }
  auto page = Await<SessionPage>(
      [&](auto cb) { return store->List("owner-x", "", 1000, std::move(cb)); });
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->sessions.size(), static_cast<size_t>(kSessions));
}

TEST_F(RedisClusterStoreTest, FollowsAskDuringAndMovedAfterASlotMigration) {
  auto store = Store(ClusterOptions());
  // Load the slot map (any operation), then move the empty slot of a new session.
  ASSERT_TRUE(Append(*store, "warm-up", 0, Turn("x")).ok());
  const std::string id = "s-migrating";
  int slot = RedisKeySlot("c:{s-migrating}:meta");
  auto source = cluster_->NodeForSlot(slot);
  ASSERT_TRUE(source.ok()) << source.status();
  RedisServer* target = nullptr;
  for (auto& node : cluster_->nodes()) {
    if (node.get() != *source) target = node.get();
  }
  auto source_id = cluster_->NodeId(*source);
  auto target_id = cluster_->NodeId(target);
  ASSERT_TRUE(source_id.ok() && target_id.ok());
  std::string s = absl::StrCat(slot);
  // Migration in progress: the source answers ASK for keys it does not have.
  ASSERT_FALSE(target->Call({"CLUSTER", "SETSLOT", s, "IMPORTING", *source_id})->is_error);
  ASSERT_FALSE((*source)->Call({"CLUSTER", "SETSLOT", s, "MIGRATING", *target_id})->is_error);
  // A one-key script (the lease) follows ASK to the importing node.
  auto locked = Await<bool>([&](auto cb) {
    return store->TryLock(id, "t1", absl::Seconds(30), std::move(cb));
  });
  ASSERT_TRUE(locked.ok()) << locked.status();
  EXPECT_TRUE(*locked);
  // A multi-key script on keys the importing node does not all have is refused while the
  // slot moves (Redis answers TRYAGAIN): retry later.
  auto during = Append(*store, id, 0, Turn("during"));
  EXPECT_EQ(during.status().code(), absl::StatusCode::kUnavailable) << during.status();
  EXPECT_THAT(during.status().message(), HasSubstr("TRYAGAIN"));
  // Finish the migration: every node learns the new owner; the store still maps the slot
  // to the source, which now answers MOVED.
  for (auto& node : cluster_->nodes()) {
    auto r = node->Call({"CLUSTER", "SETSLOT", s, "NODE", *target_id});
    ASSERT_TRUE(r.ok() && !r->is_error) << (r.ok() ? r->text : r.status().ToString());
  }
  EXPECT_EQ(target->Call({"GET", "c:{s-migrating}:lock"})->text, "t1")
      << "the lease was written on the importing node";
  auto next = Append(*store, id, 0, Turn("after"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, 1u);
  EXPECT_EQ(target->Call({"EXISTS", "c:{s-migrating}:meta"})->integer, 1);
  auto got = Get(*store, id);
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->record->history.size(), 1u);
  // The source node sent both redirections (Redis 7 counts error replies by prefix).
  auto errors = (*source)->Call({"INFO", "errorstats"});
  ASSERT_TRUE(errors.ok());
  EXPECT_THAT(errors->text, HasSubstr("errorstat_ASK:count="));
  EXPECT_THAT(errors->text, HasSubstr("errorstat_MOVED:count="));
}

}  // namespace
}  // namespace modeenvoy::testing
