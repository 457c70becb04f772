// tests/context/store_conformance.cc: the ContextStore behaviour suite (see the header).
// Expected records are written out by hand from the inputs, never read back from a store.
#include "tests/context/store_conformance.h"

#include <functional>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "modeenvoy/status.h"

namespace modeenvoy::testing {
namespace {

using ::testing::ElementsAre;

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StoreConformanceTest);

const absl::Time kT1 = absl::FromUnixMicros(1'700'000'000'123'456);
const absl::Time kT2 = absl::FromUnixMicros(1'700'000'100'654'321);

HistoryEntry Entry(Role role, std::string text, int64_t turn) {
  return HistoryEntry{.message = MakeMessage(role, std::move(text)), .turn = turn};
}

ToolInvocation Lookup() {
  ToolInvocation t;
  t.turn = 1;
  t.id = "call_1";
  t.name = "lookup";
  t.arguments = R"({"q":"weather"})";
  return t;
}

ModelChoice Choice() {
  Usage usage;
  usage.prompt_tokens = 10;
  usage.completion_tokens = 5;
  usage.total_tokens = 15;
  return ModelChoice{.turn = 1, .model = "gpt-4o", .provider = "openai",
                     .upstream_model = "gpt-4o-2024-08-06", .usage = usage};
}

ContextAppend FirstTurn() {
  ContextAppend a;
  a.owner = "team-a";
  a.entries = {Entry(Role::kUser, "hi", 1), Entry(Role::kAssistant, "hello", 1)};
  a.tool_calls = {Lookup()};
  a.model_choice = Choice();
  a.metadata = {{"lang", "en"}};
  a.turns = 1;
  a.now = kT1;
  return a;
}

ContextRecord FirstTurnRecord(std::string id) {
  ContextRecord r;
  r.session_id = std::move(id);
  r.owner = "team-a";
  r.history = {Entry(Role::kUser, "hi", 1), Entry(Role::kAssistant, "hello", 1)};
  r.metadata = {{"lang", "en"}};
  r.tool_calls = {Lookup()};
  r.model_choices = {Choice()};
  r.turn_count = 1;
  r.created = kT1;
  r.updated = kT1;
  return r;
}

TEST_P(StoreConformanceTest, GetOfAnUnknownSessionIsNullopt) {
  auto got = Get(*store_, "s-none");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreConformanceTest, AppendWithVersionZeroCreatesTheSession) {
  auto v = Append(*store_, "s-1", 0, FirstTurn());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1u);
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->version, 1u);
  EXPECT_EQ(*(*got)->record, FirstTurnRecord("s-1"));
}

TEST_P(StoreConformanceTest, AppendExtendsHistoryStoresToolResultsAndMergesMetadata) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
  ContextAppend second;
  second.entries = {Entry(Role::kUser, "and tomorrow?", 2)};
  second.tool_results = {{0, "sunny"}};
  second.metadata = {{"lang", "fr"}, {"tier", "gold"}};
  second.turns = 1;
  second.now = kT2;
  auto v = Append(*store_, "s-1", 1, std::move(second));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 2u);

  ContextRecord want = FirstTurnRecord("s-1");
  want.history.push_back(Entry(Role::kUser, "and tomorrow?", 2));
  want.tool_calls[0].result = "sunny";
  want.metadata = {{"lang", "fr"}, {"tier", "gold"}};
  want.turn_count = 2;
  want.updated = kT2;
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->version, 2u);
  EXPECT_EQ(*(*got)->record, want);
}

TEST_P(StoreConformanceTest, AStaleVersionIsAbortedAndWritesNothing) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
  ContextAppend late;
  late.entries = {Entry(Role::kUser, "late", 2)};
  late.turns = 1;
  EXPECT_EQ(Append(*store_, "s-1", 7, late).status().code(), absl::StatusCode::kAborted);
  // Creating a session that exists is a stale version too.
  late.owner = "team-a";
  EXPECT_EQ(Append(*store_, "s-1", 0, late).status().code(), absl::StatusCode::kAborted);
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 1u);
  EXPECT_EQ(*(*got)->record, FirstTurnRecord("s-1"));
}

TEST_P(StoreConformanceTest, AppendingToAMissingSessionWithAVersionIsAborted) {
  ContextAppend a = FirstTurn();
  EXPECT_EQ(Append(*store_, "s-missing", 3, a).status().code(), absl::StatusCode::kAborted);
  auto got = Get(*store_, "s-missing");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreConformanceTest, AToolResultIndexOutOfRangeIsInvalidAndWritesNothing) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());  // one tool call
  ContextAppend bad;
  bad.entries = {Entry(Role::kTool, "result", 2)};
  bad.tool_results = {{1, "nope"}};
  bad.turns = 1;
  EXPECT_EQ(Append(*store_, "s-1", 1, bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 1u);
  EXPECT_EQ(*(*got)->record, FirstTurnRecord("s-1"));
}

// "Results for invocations already stored": not for one this same append adds.
TEST_P(StoreConformanceTest, AToolResultForACallOfTheSameAppendIsInvalid) {
  ContextAppend a = FirstTurn();  // adds tool call 0
  a.tool_results = {{0, "too early"}};
  absl::StatusOr<uint64_t> v = Append(*store_, "s-1", 0, a);
  EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(v.status().message(), ::testing::HasSubstr("tool_results[0]"));
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
}

TEST_P(StoreConformanceTest, ReplaceRewritesTheWholeRecord) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
  ContextRecord folded;
  folded.session_id = "s-1";
  folded.owner = "team-a";
  folded.history = {HistoryEntry{.message = MakeMessage(Role::kSystem, "summary: greeted"),
                                 .turn = 0, .summary = true},
                    Entry(Role::kUser, "next", 2)};
  folded.metadata = {{"domain", "weather"}};
  folded.turn_count = 2;
  folded.created = kT1;
  folded.updated = kT2;
  auto v = Replace(*store_, "s-1", 1, folded);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 2u);
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 2u);
  EXPECT_EQ(*(*got)->record, folded);

  EXPECT_EQ(Replace(*store_, "s-1", 1, folded).status().code(), absl::StatusCode::kAborted);
  // A record naming another session is a caller's mistake.
  EXPECT_EQ(Replace(*store_, "s-other", 2, folded).status().code(),
            absl::StatusCode::kInvalidArgument);
  folded.session_id = "s-other";
  EXPECT_EQ(Replace(*store_, "s-other", 1, folded).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(StoreConformanceTest, DeleteErasesAndReportsWhetherTheSessionExisted) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
  auto deleted = Delete(*store_, "s-1");
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_TRUE(*deleted);
  auto got = Get(*store_, "s-1");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());
  deleted = Delete(*store_, "s-1");
  ASSERT_TRUE(deleted.ok());
  EXPECT_FALSE(*deleted);
  // The id can be used again, from version 0.
  EXPECT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
}

TEST_P(StoreConformanceTest, ListPagesAnOwnersSessionsInIdOrder) {
  std::map<std::string, int64_t> turns = {{"s-c", 3}, {"s-a", 1}, {"s-e", 5}, {"s-b", 2},
                                          {"s-d", 4}};
  for (const auto& [id, n] : turns) {
    ContextAppend a;
    a.owner = "o1";
    a.entries = {Entry(Role::kUser, id, 1)};
    a.turns = n;
    a.now = kT1 + absl::Seconds(n);
    ASSERT_TRUE(Append(*store_, id, 0, a).ok());
  }
  ContextAppend other;
  other.owner = "o2";
  other.turns = 1;
  other.now = kT2;
  ASSERT_TRUE(Append(*store_, "s-x", 0, other).ok());

  auto summary = [](std::string id, int64_t n) {
    return SessionSummary{.session_id = std::move(id), .turn_count = n,
                          .created = kT1 + absl::Seconds(n),
                          .updated = kT1 + absl::Seconds(n)};
  };
  auto page = List(*store_, "o1", "", 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->sessions, ElementsAre(summary("s-a", 1), summary("s-b", 2)));
  ASSERT_FALSE(page->next_cursor.empty());
  page = List(*store_, "o1", page->next_cursor, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->sessions, ElementsAre(summary("s-c", 3), summary("s-d", 4)));
  ASSERT_FALSE(page->next_cursor.empty());
  page = List(*store_, "o1", page->next_cursor, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->sessions, ElementsAre(summary("s-e", 5)));
  EXPECT_TRUE(page->next_cursor.empty());

  page = List(*store_, "o2", "", 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(page->sessions, ElementsAre(SessionSummary{.session_id = "s-x", .turn_count = 1,
                                                         .created = kT2, .updated = kT2}));
  page = List(*store_, "nobody", "", 100);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_TRUE(page->sessions.empty());
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_P(StoreConformanceTest, ListSkipsDeletedSessions) {
  for (const char* id : {"s-a", "s-b", "s-c"}) {
    ContextAppend a;
    a.owner = "o1";
    a.turns = 1;
    a.now = kT1;
    ASSERT_TRUE(Append(*store_, id, 0, a).ok());
  }
  ASSERT_TRUE(Delete(*store_, "s-b").ok());
  auto page = List(*store_, "o1", "", 10);
  ASSERT_TRUE(page.ok()) << page.status();
  std::vector<std::string> ids;
  for (const SessionSummary& s : page->sessions) ids.push_back(s.session_id);
  EXPECT_THAT(ids, ElementsAre("s-a", "s-c"));
  EXPECT_TRUE(page->next_cursor.empty());
}

TEST_P(StoreConformanceTest, ALeaseIsExclusiveRenewableAndReleasedOnlyByItsHolder) {
  const absl::Duration ttl = absl::Seconds(30);
  auto got = TryLock(*store_, "s-1", "t1", ttl);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got);
  EXPECT_FALSE(*TryLock(*store_, "s-1", "t2", ttl));
  EXPECT_TRUE(*TryLock(*store_, "s-1", "t1", ttl));  // renewal
  EXPECT_FALSE(*Unlock(*store_, "s-1", "t2"));
  EXPECT_TRUE(*Unlock(*store_, "s-1", "t1"));
  EXPECT_FALSE(*Unlock(*store_, "s-1", "t1"));
  EXPECT_TRUE(*TryLock(*store_, "s-1", "t2", ttl));
}

TEST_P(StoreConformanceTest, DeleteReleasesTheLease) {
  ASSERT_TRUE(Append(*store_, "s-1", 0, FirstTurn()).ok());
  ASSERT_TRUE(*TryLock(*store_, "s-1", "t1", absl::Seconds(30)));
  ASSERT_TRUE(*Delete(*store_, "s-1"));
  EXPECT_TRUE(*TryLock(*store_, "s-1", "t2", absl::Seconds(30)));
}

TEST_P(StoreConformanceTest, InvalidIdsOwnersAndLimitsAreRejected) {
  const std::string too_long(kMaxSessionIdBytes + 1, 'x');
  EXPECT_EQ(Get(*store_, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Get(*store_, too_long).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Get(*store_, std::string(kMaxSessionIdBytes, 'x')).ok());
  ContextAppend ownerless = FirstTurn();
  ownerless.owner = "";
  EXPECT_EQ(Append(*store_, "s-1", 0, ownerless).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(List(*store_, "o1", "", 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(List(*store_, "o1", "", 1001).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(List(*store_, "", "", 10).status().code(), absl::StatusCode::kInvalidArgument);
  // Each names its field (the param of a 400, of a Python ContextValueError).
  EXPECT_EQ(ErrorParam(Get(*store_, "").status()), "session_id");
  EXPECT_EQ(ErrorParam(Get(*store_, too_long).status()), "session_id");
  EXPECT_EQ(ErrorParam(Append(*store_, "s-1", 0, ownerless).status()), "owner");
}

TEST_P(StoreConformanceTest, ARecordOverTheByteBoundIsRefusedAndWritesNothing) {
  std::unique_ptr<ContextStore> small = harness_->NewStore({.max_record_bytes = 2000});
  ContextAppend big = FirstTurn();
  big.entries.push_back(Entry(Role::kUser, std::string(5000, 'b'), 1));
  EXPECT_EQ(Append(*small, "s-big", 0, big).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto got = Get(*small, "s-big");
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(got->has_value());

  ASSERT_TRUE(Append(*small, "s-1", 0, FirstTurn()).ok());
  ContextAppend more;
  more.entries = {Entry(Role::kUser, std::string(5000, 'm'), 2)};
  more.turns = 1;
  EXPECT_EQ(Append(*small, "s-1", 1, more).status().code(),
            absl::StatusCode::kResourceExhausted);
  got = Get(*small, "s-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->version, 1u);
  EXPECT_EQ(*(*got)->record, FirstTurnRecord("s-1"));
}

// Writers that read, append at the version read, and start over on kAborted: whatever the
// interleaving, every turn is stored exactly once and each writer's turns in its order.
TEST_P(StoreConformanceTest, ConcurrentAppendsWithCasRetryLoseNothing) {
  constexpr int kWriters = 8;
  constexpr int kTurns = 10;
  struct Writer {
    int id = 0;
    int next = 0;
    int aborted = 0;
    absl::Status failure;
    StoreHandle op;
  };
  std::vector<Writer> writers(kWriters);
  int finished = 0;
  std::function<void(Writer&)> step = [&](Writer& w) {
    if (w.next == kTurns) {
      ++finished;
      return;
    }
    w.op = store_->Get("s-race", [&](absl::StatusOr<std::optional<StoredContext>> got) {
      if (!got.ok()) {
        w.failure = got.status();
        ++finished;
        return;
      }
      uint64_t version = got->has_value() ? (*got)->version : 0;
      ContextAppend a;
      a.owner = "racers";
      a.entries = {Entry(Role::kUser, absl::StrCat("w", w.id, "-t", w.next), w.next + 1)};
      a.turns = 1;
      w.op = store_->Append("s-race", version, std::move(a), [&](absl::StatusOr<uint64_t> v) {
        if (v.ok()) {
          ++w.next;
        } else if (v.status().code() == absl::StatusCode::kAborted) {
          ++w.aborted;
        } else {
          w.failure = v.status();
          ++finished;
          return;
        }
        step(w);
      });
    });
  };
  for (int i = 0; i < kWriters; ++i) {
    writers[i].id = i;
    step(writers[i]);
  }
  ASSERT_TRUE(harness_->RunUntil([&] { return finished == kWriters; }));
  for (const Writer& w : writers) ASSERT_TRUE(w.failure.ok()) << w.failure;

  auto got = Get(*store_, "s-race");
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status();
  EXPECT_EQ((*got)->version, static_cast<uint64_t>(kWriters * kTurns));
  EXPECT_EQ((*got)->record->turn_count, kWriters * kTurns);
  const std::vector<HistoryEntry>& history = (*got)->record->history;
  ASSERT_EQ(history.size(), static_cast<size_t>(kWriters * kTurns));
  std::vector<int> seen(kWriters, 0);
  for (const HistoryEntry& e : history) {
    const std::string& text = std::get<std::string>(*e.message.content);
    int writer = text[1] - '0';
    ASSERT_GE(writer, 0);
    ASSERT_LT(writer, kWriters);
    EXPECT_EQ(text, absl::StrCat("w", writer, "-t", seen[writer])) << "out of order";
    ++seen[writer];
  }
  for (int i = 0; i < kWriters; ++i) EXPECT_EQ(seen[i], kTurns);
}

}  // namespace
}  // namespace modeenvoy::testing
