#include <atomic>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/clock.h"
#include "modeenvoy/context/record.h"
#include "modeenvoy/context/store.h"

namespace modeenvoy {
namespace {

using ::testing::HasSubstr;

// Synchronous views of the store's operations (the memory store completes inline: the
// handle is null and the callback has run when the call returns).
class MemoryContextStoreTest : public ::testing::Test {
 protected:
  void Make(MemoryContextStoreOptions options) {
    options.clock = &clock_;
    store_ = NewMemoryContextStore(options);
  }

  absl::StatusOr<std::optional<StoredContext>> Get(std::string_view id) {
    std::optional<absl::StatusOr<std::optional<StoredContext>>> out;
    StoreHandle h = store_->Get(id, [&](auto r) { out = std::move(r); });
    EXPECT_EQ(h, nullptr);
    EXPECT_TRUE(out.has_value());
    return *std::move(out);
  }
  absl::StatusOr<uint64_t> Append(std::string_view id, uint64_t expected, ContextAppend a) {
    std::optional<absl::StatusOr<uint64_t>> out;
    StoreHandle h = store_->Append(id, expected, std::move(a), [&](auto r) { out = r; });
    EXPECT_EQ(h, nullptr);
    EXPECT_TRUE(out.has_value());
    return *out;
  }
  absl::StatusOr<uint64_t> Replace(std::string_view id, uint64_t expected, ContextRecord r) {
    std::optional<absl::StatusOr<uint64_t>> out;
    store_->Replace(id, expected, std::move(r), [&](auto v) { out = v; });
    EXPECT_TRUE(out.has_value());
    return *out;
  }
  absl::StatusOr<bool> Delete(std::string_view id) {
    std::optional<absl::StatusOr<bool>> out;
    store_->Delete(id, [&](auto v) { out = v; });
    EXPECT_TRUE(out.has_value());
    return *out;
  }
  absl::StatusOr<SessionPage> List(std::string_view owner, std::string_view cursor,
                                   size_t limit) {
    std::optional<absl::StatusOr<SessionPage>> out;
    store_->List(owner, cursor, limit, [&](auto v) { out = std::move(v); });
    EXPECT_TRUE(out.has_value());
    return *std::move(out);
  }
  absl::StatusOr<bool> TryLock(std::string_view id, std::string_view token, absl::Duration ttl) {
    std::optional<absl::StatusOr<bool>> out;
    store_->TryLock(id, token, ttl, [&](auto v) { out = v; });
    EXPECT_TRUE(out.has_value());
    return *out;
  }
  absl::StatusOr<bool> Unlock(std::string_view id, std::string_view token) {
    std::optional<absl::StatusOr<bool>> out;
    store_->Unlock(id, token, [&](auto v) { out = v; });
    EXPECT_TRUE(out.has_value());
    return *out;
  }

  // One user turn.
  static ContextAppend Turn(std::string owner, std::string text, int64_t turn = 1,
                            absl::Time now = absl::FromUnixSeconds(1700000000)) {
    ContextAppend a;
    a.owner = std::move(owner);
    a.entries.push_back({.message = MakeMessage(Role::kUser, std::move(text)), .turn = turn});
    a.turns = 1;
    a.now = now;
    return a;
  }

  uint64_t VersionOf(std::string_view id) {
    absl::StatusOr<std::optional<StoredContext>> got = Get(id);
    if (!got.ok() || !got->has_value()) return 0;
    return (*got)->version;
  }

  FakeClock clock_;
  std::unique_ptr<ContextStore> store_;
};

TEST_F(MemoryContextStoreTest, AppendWithVersionZeroCreatesTheSession) {
  Make({});
  EXPECT_EQ(store_->kind(), "memory");
  absl::StatusOr<std::optional<StoredContext>> none = Get("s-1");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());

  const absl::Time t = absl::FromUnixSeconds(1700000500);
  ContextAppend a = Turn("team-a", "hi", 1, t);
  a.metadata = {{"language", "de"}};
  absl::StatusOr<uint64_t> v = Append("s-1", 0, std::move(a));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_GE(*v, 1u);

  absl::StatusOr<std::optional<StoredContext>> got = Get("s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  const StoredContext& stored = **got;
  EXPECT_EQ(stored.version, *v);
  EXPECT_EQ(stored.record->session_id, "s-1");
  EXPECT_EQ(stored.record->owner, "team-a");
  EXPECT_EQ(stored.record->schema_version, kContextSchemaVersion);
  ASSERT_EQ(stored.record->history.size(), 1u);
  EXPECT_EQ(stored.record->history[0].message, MakeMessage(Role::kUser, "hi"));
  EXPECT_EQ(stored.record->turn_count, 1);
  EXPECT_EQ(stored.record->created, t);
  EXPECT_EQ(stored.record->updated, t);
  EXPECT_EQ(stored.record->metadata.at("language"), "de");
}

TEST_F(MemoryContextStoreTest, WriteWithAStaleVersionFailsAndChangesNothing) {
  Make({});
  const uint64_t v1 = *Append("s-1", 0, Turn("team-a", "one"));
  // Creating again, or naming a version that is not the stored one, conflicts.
  EXPECT_EQ(Append("s-1", 0, Turn("team-a", "again")).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Append("s-1", v1 + 1000, Turn("", "wrong")).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(Append("s-2", 7, Turn("team-a", "missing")).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_FALSE(Get("s-2")->has_value());

  const absl::StatusOr<uint64_t> v2 = Append("s-1", v1, Turn("", "two", 2));
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_GT(*v2, v1);
  absl::StatusOr<uint64_t> stale = Append("s-1", v1, Turn("", "lost?", 2));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(stale.status().message()), HasSubstr("session s-1"));

  StoredContext stored = **Get("s-1");
  EXPECT_EQ(stored.version, *v2);
  ASSERT_EQ(stored.record->history.size(), 2u);
  EXPECT_EQ(stored.record->history[1].message, MakeMessage(Role::kUser, "two"));
  EXPECT_EQ(stored.record->owner, "team-a");  // later appends' owner is ignored
  EXPECT_EQ(stored.record->turn_count, 2);
}

TEST_F(MemoryContextStoreTest, AppendAddsToolCallsResultsChoicesAndMergesMetadata) {
  Make({});
  ContextAppend first = Turn("team-a", "weather?");
  first.metadata = {{"language", "de"}, {"tier", "gold"}};
  first.tool_calls = {{.turn = 1, .id = "c1", .name = "get_weather", .arguments = "{}", .result = std::nullopt}};
  first.model_choice = ModelChoice{.turn = 1, .model = "gpt-4o", .provider = "openai",
                                   .upstream_model = "gpt-4o", .usage = std::nullopt,
                                   .usage_estimated = true};
  const uint64_t v1 = *Append("s-1", 0, std::move(first));

  ContextAppend second;
  second.tool_results = {{0, "18C"}};
  second.metadata = {{"tier", "silver"}};
  second.entries.push_back({.message = MakeMessage(Role::kAssistant, "18C"), .turn = 2});
  second.now = absl::FromUnixSeconds(1700000999);
  ASSERT_TRUE(Append("s-1", v1, std::move(second)).ok());

  const ContextRecord r = *(*Get("s-1"))->record;
  ASSERT_EQ(r.tool_calls.size(), 1u);
  EXPECT_EQ(r.tool_calls[0].result, "18C");
  EXPECT_EQ(r.metadata, (std::map<std::string, std::string>{{"language", "de"},
                                                             {"tier", "silver"}}));
  ASSERT_EQ(r.model_choices.size(), 1u);
  EXPECT_EQ(r.model_choices[0].model, "gpt-4o");
  EXPECT_EQ(r.created, absl::FromUnixSeconds(1700000000));
  EXPECT_EQ(r.updated, absl::FromUnixSeconds(1700000999));
  EXPECT_EQ(r.turn_count, 1);  // the second append added no turn
}

TEST_F(MemoryContextStoreTest, ToolResultIndexOutOfRangeIsInvalidAndWritesNothing) {
  Make({});
  ContextAppend first = Turn("team-a", "x");
  first.tool_calls = {{.turn = 1, .id = "c1", .name = "f", .arguments = "{}", .result = std::nullopt}};
  const uint64_t v1 = *Append("s-1", 0, std::move(first));

  ContextAppend bad;
  bad.entries.push_back({.message = MakeMessage(Role::kUser, "y"), .turn = 2});
  // Index 1 names the invocation this same append adds: not one already stored.
  bad.tool_calls = {{.turn = 2, .id = "c2", .name = "g", .arguments = "{}", .result = std::nullopt}};
  bad.tool_results = {{0, "ok"}, {1, "too early"}};
  absl::StatusOr<uint64_t> v = Append("s-1", v1, std::move(bad));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("tool_results[1]"));
  const StoredContext stored = **Get("s-1");
  EXPECT_EQ(stored.version, v1);
  EXPECT_EQ(stored.record->history.size(), 1u);
  EXPECT_FALSE(stored.record->tool_calls[0].result.has_value());

  ContextAppend on_new;
  on_new.owner = "team-a";
  on_new.tool_results = {{0, "x"}};
  EXPECT_EQ(Append("s-new", 0, std::move(on_new)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Get("s-new")->has_value());
}

TEST_F(MemoryContextStoreTest, IdsAndOwnersAreChecked) {
  Make({});
  const std::string long_id(kMaxSessionIdBytes + 1, 'x');
  absl::StatusOr<uint64_t> v = Append("", 0, Turn("team-a", "x"));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("session_id"));
  EXPECT_EQ(Get(long_id).status().code(), absl::StatusCode::kInvalidArgument);
  v = Append("s-1", 0, Turn("", "x"));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("owner"));
  EXPECT_TRUE(Append(std::string(kMaxSessionIdBytes, 'y'), 0, Turn("team-a", "x")).ok());
  EXPECT_EQ(List("", "", 10).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(List("team-a", "", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(List("team-a", "", 1001).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Delete("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TryLock("s-1", "", absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TryLock("s-1", "t", absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MemoryContextStoreTest, ReplaceChecksExistenceVersionAndId) {
  Make({});
  ContextRecord r;
  r.session_id = "s-1";
  r.owner = "team-a";
  r.history.push_back({.message = MakeMessage(Role::kSystem, "summary"), .turn = 0,
                       .pinned = false, .summary = true});
  EXPECT_EQ(Replace("s-1", 0, r).status().code(), absl::StatusCode::kNotFound);
  const uint64_t v1 = *Append("s-1", 0, Turn("team-a", "one"));
  EXPECT_EQ(Replace("s-1", v1 + 1, r).status().code(), absl::StatusCode::kAborted);
  ContextRecord other = r;
  other.session_id = "s-2";
  EXPECT_EQ(Replace("s-1", v1, other).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<uint64_t> v2 = Replace("s-1", v1, r);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_GT(*v2, v1);
  EXPECT_EQ(*(*Get("s-1"))->record, r);
}

TEST_F(MemoryContextStoreTest, DeleteErasesAndVersionsAreNeverReused) {
  Make({});
  const uint64_t v1 = *Append("s-1", 0, Turn("team-a", "one"));
  EXPECT_EQ(*Delete("s-1"), true);
  EXPECT_EQ(*Delete("s-1"), false);
  EXPECT_FALSE(Get("s-1")->has_value());
  EXPECT_TRUE(List("team-a", "", 10)->sessions.empty());
  const uint64_t again = *Append("s-1", 0, Turn("team-a", "new"));
  EXPECT_GT(again, v1);
  // A writer that read the old session cannot write into the new one.
  EXPECT_EQ(Append("s-1", v1, Turn("", "old writer")).status().code(),
            absl::StatusCode::kAborted);
}

TEST_F(MemoryContextStoreTest, SessionsExpireWhenNotWrittenForTheTtl) {
  Make({.ttl = absl::Minutes(10)});
  const uint64_t v1 = *Append("s-1", 0, Turn("team-a", "one"));
  clock_.Advance(absl::Minutes(9));
  ASSERT_TRUE(Get("s-1")->has_value());
  ASSERT_TRUE(Append("s-1", v1, Turn("", "two", 2)).ok());  // a write restarts the TTL
  clock_.Advance(absl::Minutes(9));
  EXPECT_TRUE(Get("s-1")->has_value());  // 18 minutes after creation, 9 after the write
  EXPECT_EQ(List("team-a", "", 10)->sessions.size(), 1u);
  clock_.Advance(absl::Minutes(1));  // reads do not
  EXPECT_FALSE(Get("s-1")->has_value());
  EXPECT_TRUE(List("team-a", "", 10)->sessions.empty());
  EXPECT_EQ(*Delete("s-1"), false);
  EXPECT_TRUE(Append("s-1", 0, Turn("team-a", "fresh")).ok());
}

TEST_F(MemoryContextStoreTest, InfiniteTtlNeverExpires) {
  Make({.ttl = absl::InfiniteDuration()});
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "one")).ok());
  clock_.Advance(absl::Hours(24 * 365));
  EXPECT_TRUE(Get("s-1")->has_value());
}

// The byte bound counts serialized records: sizes here come from SerializeContextRecord.
TEST_F(MemoryContextStoreTest, EvictsLeastRecentlyUsedSessionsBeyondTheByteBound) {
  // Four records of equal size (same id length, same content).
  Make({});
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "hello there")).ok());
  const size_t size = SerializeContextRecord(*(*Get("s-1"))->record).size();

  Make({.max_bytes = 3 * size + size / 2, .shards = 1});
  for (const char* id : {"s-1", "s-2", "s-3"}) {
    ASSERT_TRUE(Append(id, 0, Turn("team-a", "hello there")).ok());
  }
  ASSERT_TRUE(Get("s-1")->has_value());  // s-1 is now more recent than s-2
  ASSERT_TRUE(Append("s-4", 0, Turn("team-a", "hello there")).ok());
  EXPECT_TRUE(Get("s-1")->has_value());
  EXPECT_FALSE(Get("s-2")->has_value());
  EXPECT_TRUE(Get("s-3")->has_value());
  EXPECT_TRUE(Get("s-4")->has_value());
  // Evicted sessions leave the owner index too.
  SessionPage page = *List("team-a", "", 10);
  ASSERT_EQ(page.sessions.size(), 3u);
  EXPECT_EQ(page.sessions[1].session_id, "s-3");
}

// Sizes kept across appends of every kind add up to the serialized size exactly: a bound
// of exactly the two records' sizes keeps both, one byte less evicts the older.
TEST_F(MemoryContextStoreTest, ByteAccountingMatchesTheSerializedSizeAcrossAppends) {
  auto build = [&] {
    uint64_t v = *Append("a-1", 0, Turn("team-a", "first session"));
    (void)v;
    v = *Append("b-1", 0, Turn("team-b", "second"));
    ContextAppend more = Turn("", "with a tool", 2, absl::FromUnixSeconds(1700001234));
    more.tool_calls = {{.turn = 2, .id = "c1", .name = "f", .arguments = R"({"q":"\"x\""})", .result = std::nullopt}};
    more.metadata = {{"k", "v"}};
    v = *Append("b-1", v, std::move(more));
    ContextAppend results;
    results.tool_results = {{0, "result with \n newline"}};
    results.metadata = {{"k", "a longer value"}};
    results.model_choice = ModelChoice{.turn = 2, .model = "m", .provider = "p",
                                       .upstream_model = "u", .usage = Usage{1, 2, 3, {}, {}, {}},
                                       .usage_estimated = false};
    results.turns = 10;  // turn_count gets another digit
    results.now = absl::FromUnixSeconds(1700009999) + absl::Nanoseconds(5);
    return Append("b-1", v, std::move(results));
  };
  Make({});
  ASSERT_TRUE(build().ok());
  const size_t a = SerializeContextRecord(*(*Get("a-1"))->record).size();
  const size_t b = SerializeContextRecord(*(*Get("b-1"))->record).size();

  Make({.max_bytes = a + b, .shards = 1});
  ASSERT_TRUE(build().ok());
  EXPECT_TRUE(Get("a-1")->has_value());
  EXPECT_TRUE(Get("b-1")->has_value());

  Make({.max_bytes = a + b - 1, .shards = 1});
  ASSERT_TRUE(build().ok());
  EXPECT_FALSE(Get("a-1")->has_value());
  EXPECT_TRUE(Get("b-1")->has_value());
}

TEST_F(MemoryContextStoreTest, RecordOverTheBoundIsRefusedAndNothingWritten) {
  Make({.max_record_bytes = 400});
  const uint64_t v1 = *Append("s-1", 0, Turn("team-a", "short"));
  absl::StatusOr<uint64_t> v = Append("s-1", v1, Turn("", std::string(500, 'x'), 2));
  EXPECT_EQ(v.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("session s-1"));
  const StoredContext stored = **Get("s-1");
  EXPECT_EQ(stored.version, v1);
  EXPECT_EQ(stored.record->history.size(), 1u);
  EXPECT_EQ(Append("s-2", 0, Turn("team-a", std::string(500, 'x'))).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(Get("s-2")->has_value());
}

TEST_F(MemoryContextStoreTest, LeasesExcludeOthersUntilTheyExpireOrAreReleased) {
  Make({});
  EXPECT_EQ(*TryLock("s-1", "t1", absl::Seconds(30)), true);
  EXPECT_EQ(*TryLock("s-1", "t2", absl::Seconds(30)), false);
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(*TryLock("s-1", "t1", absl::Seconds(30)), true);  // renews until 50 s
  clock_.Advance(absl::Seconds(20));
  EXPECT_EQ(*TryLock("s-1", "t2", absl::Seconds(30)), false);  // 40 s: still t1's
  clock_.Advance(absl::Seconds(10));
  EXPECT_EQ(*TryLock("s-1", "t2", absl::Seconds(30)), true);  // 50 s: t1's expired
  EXPECT_EQ(*Unlock("s-1", "t1"), false);
  EXPECT_EQ(*TryLock("s-1", "t1", absl::Seconds(30)), false);
  EXPECT_EQ(*Unlock("s-1", "t2"), true);
  EXPECT_EQ(*Unlock("s-1", "t2"), false);
  EXPECT_EQ(*TryLock("s-1", "t1", absl::Seconds(30)), true);
  // Delete releases the lease with the session.
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "x")).ok());
  EXPECT_EQ(*Delete("s-1"), true);
  EXPECT_EQ(*TryLock("s-1", "t2", absl::Seconds(30)), true);
}

TEST_F(MemoryContextStoreTest, ListsAnOwnersSessionsInPagesBySessionId) {
  Make({});
  for (const char* id : {"s-4", "s-2", "s-5", "s-1", "s-3"}) {
    ASSERT_TRUE(Append(id, 0, Turn("team-a", "x")).ok());
  }
  for (const char* id : {"s-0", "s-6"}) ASSERT_TRUE(Append(id, 0, Turn("team-b", "x")).ok());
  const uint64_t v = VersionOf("s-2");
  ContextAppend two_turns = Turn("", "y", 2, absl::FromUnixSeconds(1700000042));
  two_turns.turns = 2;
  ASSERT_TRUE(Append("s-2", v, std::move(two_turns)).ok());

  std::vector<std::string> seen;
  std::string cursor;
  std::vector<size_t> page_sizes;
  do {
    absl::StatusOr<SessionPage> page = List("team-a", cursor, 2);
    ASSERT_TRUE(page.ok()) << page.status();
    page_sizes.push_back(page->sessions.size());
    for (const SessionSummary& s : page->sessions) seen.push_back(s.session_id);
    cursor = page->next_cursor;
  } while (!cursor.empty());
  EXPECT_EQ(seen, (std::vector<std::string>{"s-1", "s-2", "s-3", "s-4", "s-5"}));
  EXPECT_EQ(page_sizes, (std::vector<size_t>{2, 2, 1}));

  SessionPage all = *List("team-a", "", 5);
  EXPECT_TRUE(all.next_cursor.empty());  // a full page with nothing after is the last
  ASSERT_EQ(all.sessions.size(), 5u);
  EXPECT_EQ(all.sessions[1], (SessionSummary{"s-2", 3, absl::FromUnixSeconds(1700000000),
                                             absl::FromUnixSeconds(1700000042)}));

  ASSERT_EQ(*Delete("s-5"), true);
  SessionPage four = *List("team-a", "", 4);
  EXPECT_EQ(four.sessions.size(), 4u);
  EXPECT_TRUE(four.next_cursor.empty());

  SessionPage b = *List("team-b", "", 100);
  ASSERT_EQ(b.sessions.size(), 2u);
  EXPECT_EQ(b.sessions[0].session_id, "s-0");
  EXPECT_EQ(b.sessions[1].session_id, "s-6");
  EXPECT_TRUE(List("team-c", "", 100)->sessions.empty());
}

TEST_F(MemoryContextStoreTest, ReplaceWithAnotherOwnerMovesTheSessionInTheIndex) {
  Make({});
  const uint64_t v = *Append("s-1", 0, Turn("team-a", "x"));
  ContextRecord r = *(*Get("s-1"))->record;
  r.owner = "team-b";
  ASSERT_TRUE(Replace("s-1", v, r).ok());
  EXPECT_TRUE(List("team-a", "", 10)->sessions.empty());
  EXPECT_EQ(List("team-b", "", 10)->sessions.size(), 1u);
}

// N writers append to one session with compare-and-set retry loops: every append lands
// exactly once, and each writer's appends keep their order. (Run under TSan too.)
// Get shares the stored record instead of copying it; a record someone holds never changes.
TEST_F(MemoryContextStoreTest, AHeldRecordStaysAsItWasReadWhileTheSessionMovesOn) {
  Make({});
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "one")).ok());
  StoredContext first = **Get("s-1");
  StoredContext again = **Get("s-1");
  EXPECT_EQ(first.record.get(), again.record.get());  // one record, two readers
  ASSERT_NE(first.token_counts, nullptr);
  EXPECT_EQ(first.token_counts, again.token_counts);

  ASSERT_TRUE(Append("s-1", first.version, Turn("team-a", "two", 2)).ok());
  ASSERT_EQ(first.record->history.size(), 1u);  // the readers' record is unchanged
  EXPECT_EQ(first.record->turn_count, 1);
  StoredContext now = **Get("s-1");
  ASSERT_EQ(now.record->history.size(), 2u);
  EXPECT_EQ(now.record->history[1].message, MakeMessage(Role::kUser, "two"));
  // The history only grew: the counts of its entries travel with it.
  EXPECT_EQ(now.token_counts, first.token_counts);

  // Replace may change any entry: the session starts new counts.
  ContextRecord r = *now.record;
  r.history.erase(r.history.begin());
  ASSERT_TRUE(Replace("s-1", now.version, r).ok());
  StoredContext replaced = **Get("s-1");
  EXPECT_EQ(*replaced.record, [&] {
    ContextRecord want = r;
    want.schema_version = kContextSchemaVersion;
    return want;
  }());
  EXPECT_NE(replaced.token_counts, first.token_counts);
  EXPECT_EQ(now.record->history.size(), 2u);
}

// A record no reader holds any more is extended where it is (no copy of the history).
TEST_F(MemoryContextStoreTest, AReleasedRecordIsExtendedInPlace) {
  Make({});
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "one")).ok());
  const ContextRecord* address = nullptr;
  uint64_t version = 0;
  {
    StoredContext got = **Get("s-1");
    address = got.record.get();
    version = got.version;
  }
  ASSERT_TRUE(Append("s-1", version, Turn("team-a", "two", 2)).ok());
  StoredContext got = **Get("s-1");
  EXPECT_EQ(got.record.get(), address);
  EXPECT_EQ(got.record->history.size(), 2u);
}

// Readers on several threads read the histories they hold while writers append: what a
// reader holds never changes under it (run under TSan by make test-tsan).
TEST_F(MemoryContextStoreTest, ReadersOfHeldRecordsRaceNoWriter) {
  Make({.shards = 2});
  ASSERT_TRUE(Append("s-1", 0, Turn("team-a", "0")).ok());
  constexpr int kWriters = 2, kReaders = 3, kAppends = 100;
  // Every thread starts at once, so reads and writes interleave.
  std::atomic<int> waiting{kWriters + kReaders};
  auto start_together = [&waiting] {
    waiting.fetch_sub(1);
    while (waiting.load() > 0) std::this_thread::yield();
  };
  std::atomic<bool> writing{true};  // readers read until the writers are done
  std::vector<std::thread> threads, readers;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([this, w, &start_together] {
      start_together();
      for (int i = 0; i < kAppends; ++i) {
        while (true) {
          const uint64_t version = VersionOf("s-1");
          std::optional<absl::StatusOr<uint64_t>> out;
          store_->Append("s-1", version, Turn("team-a", absl::StrCat(w, ":", i)),
                         [&](auto r) { out = r; });
          if (out->ok()) break;
        }
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    readers.emplace_back([this, &start_together, &writing] {
      start_together();
      size_t last = 0;
      for (int i = 0; i < 200 || writing.load(); ++i) {
        StoredContext got = **Get("s-1");
        const size_t n = got.record->history.size();
        EXPECT_GE(n, last);
        last = n;
        size_t bytes = 0;
        for (const HistoryEntry& e : got.record->history) {
          bytes += std::get<std::string>(*e.message.content).size();
        }
        EXPECT_EQ(got.record->history.size(), n);  // unchanged while read
        EXPECT_GT(bytes, 0u);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  writing.store(false);
  for (std::thread& th : readers) th.join();
  EXPECT_EQ((*Get("s-1"))->record->history.size(), size_t{1 + kWriters * kAppends});
}

TEST_F(MemoryContextStoreTest, ConcurrentAppendsWithRetryLoseNothing) {
  Make({.shards = 4});
  constexpr int kThreads = 8;
  constexpr int kAppends = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kAppends; ++i) {
        while (true) {
          absl::StatusOr<std::optional<StoredContext>> got;
          store_->Get("shared", [&](auto r) { got = std::move(r); });
          ASSERT_TRUE(got.ok());
          const uint64_t version = got->has_value() ? (*got)->version : 0;
          ContextAppend a = Turn("team-a", absl::StrCat(t, ":", i));
          std::optional<absl::StatusOr<uint64_t>> out;
          store_->Append("shared", version, std::move(a), [&](auto r) { out = r; });
          if (out->ok()) break;
          ASSERT_EQ(out->status().code(), absl::StatusCode::kAborted);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const ContextRecord r = *(*Get("shared"))->record;
  ASSERT_EQ(r.history.size(), size_t{kThreads * kAppends});
  EXPECT_EQ(r.turn_count, kThreads * kAppends);
  std::vector<int> next(kThreads, 0);
  for (const HistoryEntry& e : r.history) {
    const std::string& text = std::get<std::string>(*e.message.content);
    const int t = text[0] - '0';
    EXPECT_EQ(text, absl::StrCat(t, ":", next[t]));
    ++next[t];
  }
}

}  // namespace
}  // namespace modeenvoy
