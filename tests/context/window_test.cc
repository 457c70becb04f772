#include "modeenvoy/context/window.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "modeenvoy/status.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "tests/tokenizer/rank_file.h"

namespace modeenvoy {
namespace {

// An encoding whose tokens are single bytes, so a message costs, by the chat rules,
// 3 + bytes of the role + bytes of the content (+ bytes of the tool call name and arguments,
// + bytes of a tool_call_id): counts written out by hand below.
std::unique_ptr<Encoding> ByteEncoding(const std::string& name = "bytes") {
  EncodingSpec spec;
  spec.name = name;
  spec.pattern = SplitPattern::kCl100k;
  return *Encoding::Create(spec, tokenizer_test::SmallRankFile({}));
}

int64_t Cost(std::string_view role, std::string_view text) {
  return 3 + static_cast<int64_t>(role.size() + text.size());
}

HistoryEntry Entry(Role role, std::string text, int64_t turn) {
  return HistoryEntry{.message = MakeMessage(role, std::move(text)), .turn = turn,
                      .pinned = false, .summary = false};
}

Message AssistantCalls(const std::vector<std::string>& ids) {
  Message m = MakeMessage(Role::kAssistant);
  for (const std::string& id : ids) {
    ToolCall c;
    c.id = id;
    c.function = FunctionCall{.name = "f", .arguments = "{}", .extra = {}};
    m.tool_calls.push_back(c);
  }
  return m;
}
int64_t CallsCost(size_t n) { return 3 + 9 + static_cast<int64_t>(n) * 3; }  // "f" + "{}"

Message ToolResult(const std::string& id, std::string text) {
  Message m = MakeMessage(Role::kTool, std::move(text));
  m.tool_call_id = id;
  return m;
}
int64_t ResultCost(const std::string& id, std::string_view text) {
  return 3 + 4 + static_cast<int64_t>(id.size() + text.size());
}

// Both answers of FitContext, with counts kept beside the history and without, agree.
void ExpectSameWindow(const absl::StatusOr<WindowResult>& want,
                      const absl::StatusOr<WindowResult>& got, const std::string& where) {
  ASSERT_EQ(want.status(), got.status()) << where;
  if (!want.ok()) return;
  EXPECT_EQ(want->dropped, got->dropped) << where;
  EXPECT_EQ(want->tokens, got->tokens) << where;
  EXPECT_EQ(want->messages, got->messages) << where;
}

class FitContextTest : public ::testing::Test {
 protected:
  // The window as counted afresh, checked against the same window found through
  // HistoryTokenCounts (the fast path a stored session takes).
  absl::StatusOr<WindowResult> Fit(const std::vector<HistoryEntry>& history,
                                   const std::vector<Message>& fresh, int64_t budget) {
    absl::StatusOr<WindowResult> plain =
        FitContext(history, fresh, *enc_, {.budget_tokens = budget}, &cache_);
    HistoryTokenCounts counts;
    for (int round = 0; round < 2; ++round) {  // counting the entries, then reusing the counts
      ExpectSameWindow(plain,
                       FitContext(history, fresh, *enc_,
                                  {.budget_tokens = budget, .history_counts = &counts}, &cache_),
                       absl::StrCat("with history counts, round ", round));
    }
    return plain;
  }
  std::unique_ptr<Encoding> enc_ = ByteEncoding();
  MessageTokenCache cache_{{}};
};

TEST_F(FitContextTest, CountsFollowTheChatRules) {
  EXPECT_EQ(cache_.Count(*enc_, MakeMessage(Role::kUser, "hello")), Cost("user", "hello"));
  EXPECT_EQ(cache_.Count(*enc_, AssistantCalls({"a", "b"})), CallsCost(2));
  EXPECT_EQ(cache_.Count(*enc_, ToolResult("c1", "18C")), ResultCost("c1", "18C"));
}

TEST_F(FitContextTest, KeepsEverythingThatFits) {
  const std::vector<HistoryEntry> h = {Entry(Role::kSystem, "be brief", 1),
                                       Entry(Role::kUser, "one", 1),
                                       Entry(Role::kAssistant, "uno", 1)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "two")};
  const int64_t all = Cost("system", "be brief") + Cost("user", "one") +
                      Cost("assistant", "uno") + Cost("user", "two");
  absl::StatusOr<WindowResult> w = Fit(h, fresh, all);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->messages.size(), 4u);
  EXPECT_TRUE(w->dropped.empty());
  EXPECT_EQ(w->tokens, all);
  EXPECT_EQ(w->messages.back(), fresh[0]);
}

TEST_F(FitContextTest, DropsTheOldestWholeTurnsFirst) {
  const std::vector<HistoryEntry> h = {
      Entry(Role::kSystem, "be brief", 1), Entry(Role::kUser, "one", 1),
      Entry(Role::kAssistant, "uno", 1),   Entry(Role::kUser, "two", 2),
      Entry(Role::kAssistant, "dos", 2),   Entry(Role::kUser, "three", 3),
      Entry(Role::kAssistant, "tres", 3)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "four")};
  // Room for turn 3 and turn 2's user message, but not all of turn 2: turn 2 goes whole.
  const int64_t budget = Cost("system", "be brief") + Cost("user", "three") +
                         Cost("assistant", "tres") + Cost("user", "four") + Cost("user", "two");
  absl::StatusOr<WindowResult> w = Fit(h, fresh, budget);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{1, 2, 3, 4}));
  ASSERT_EQ(w->messages.size(), 4u);
  EXPECT_EQ(w->messages[0], h[0].message);
  EXPECT_EQ(w->messages[1], h[5].message);
  EXPECT_EQ(w->messages[2], h[6].message);
  EXPECT_EQ(w->messages[3], fresh[0]);
  EXPECT_EQ(w->tokens, budget - Cost("user", "two"));
}

TEST_F(FitContextTest, SystemAndPinnedEntriesStayInTheirPlaces) {
  HistoryEntry pinned = Entry(Role::kUser, "my name is Ana", 2);
  pinned.pinned = true;
  const std::vector<HistoryEntry> h = {
      Entry(Role::kUser, "one", 1),       Entry(Role::kAssistant, "uno", 1), pinned,
      Entry(Role::kAssistant, "hi Ana", 2), Entry(Role::kDeveloper, "be formal", 3),
      Entry(Role::kUser, "three", 3),     Entry(Role::kAssistant, "tres", 3)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "four")};
  const int64_t budget =
      Cost("user", "my name is Ana") + Cost("developer", "be formal") + Cost("user", "four");
  absl::StatusOr<WindowResult> w = Fit(h, fresh, budget);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 1, 3, 5, 6}));
  ASSERT_EQ(w->messages.size(), 3u);
  EXPECT_EQ(w->messages[0], pinned.message);
  EXPECT_EQ(w->messages[1], h[4].message);
  EXPECT_EQ(w->messages[2], fresh[0]);
  EXPECT_EQ(w->tokens, budget);
}

// Turn 1's reply calls two tools in parallel; their results arrive with turn 2. Dropping
// turn 1 alone would leave results without their call: turns 1 and 2 go together.
TEST_F(FitContextTest, ToolCallsAreNeverSeparatedFromTheirResults) {
  const std::vector<HistoryEntry> h = {
      Entry(Role::kUser, "weather?", 1),
      {.message = AssistantCalls({"c1", "c2"}), .turn = 1, .pinned = false, .summary = false},
      {.message = ToolResult("c1", "18C"), .turn = 2, .pinned = false, .summary = false},
      {.message = ToolResult("c2", "sunny"), .turn = 2, .pinned = false, .summary = false},
      Entry(Role::kAssistant, "18C, sunny", 2),
      Entry(Role::kUser, "thanks", 3),
      Entry(Role::kAssistant, "bye", 3)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "again")};
  const int64_t turn1 = Cost("user", "weather?") + CallsCost(2);
  const int64_t turn2 =
      ResultCost("c1", "18C") + ResultCost("c2", "sunny") + Cost("assistant", "18C, sunny");
  const int64_t turn3 = Cost("user", "thanks") + Cost("assistant", "bye");
  const int64_t fresh_cost = Cost("user", "again");

  absl::StatusOr<WindowResult> w = Fit(h, fresh, turn2 + turn3 + fresh_cost);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(w->tokens, turn3 + fresh_cost);

  w = Fit(h, fresh, turn1 + turn2 + turn3 + fresh_cost);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->dropped.empty());
}

// The client answers the last reply's tool call: that call stays whatever the budget.
TEST_F(FitContextTest, ACallAnsweredByTheNewMessagesIsKept) {
  const std::vector<HistoryEntry> h = {
      Entry(Role::kUser, "one", 1), Entry(Role::kAssistant, "uno", 1),
      Entry(Role::kUser, "weather?", 2),
      {.message = AssistantCalls({"c1", "c2"}), .turn = 2, .pinned = false, .summary = false}};
  const std::vector<Message> fresh = {ToolResult("c1", "18C"), ToolResult("c2", "sunny")};
  const int64_t needed = CallsCost(2) + ResultCost("c1", "18C") + ResultCost("c2", "sunny");
  absl::StatusOr<WindowResult> w = Fit(h, fresh, needed);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 1, 2}));
  ASSERT_EQ(w->messages.size(), 3u);
  EXPECT_EQ(w->messages[0], h[3].message);
  // One token less: the call and its results do not fit, and none of them may go.
  w = Fit(h, fresh, needed - 1);
  EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(FitContextTest, SummaryIsKeptWhileItFits) {
  const std::vector<HistoryEntry> h = {
      {.message = MakeMessage(Role::kSystem, "earlier: greetings"), .turn = 0, .pinned = false,
       .summary = true},
      Entry(Role::kUser, "one", 1), Entry(Role::kAssistant, "uno", 1),
      Entry(Role::kUser, "two", 2), Entry(Role::kAssistant, "dos", 2)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "three")};
  const int64_t summary = Cost("system", "earlier: greetings");
  const int64_t turn2 = Cost("user", "two") + Cost("assistant", "dos");
  const int64_t fresh_cost = Cost("user", "three");

  absl::StatusOr<WindowResult> w = Fit(h, fresh, summary + turn2 + fresh_cost);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{1, 2}));
  EXPECT_EQ(w->messages[0], h[0].message);

  w = Fit(h, fresh, summary + fresh_cost);  // every turn goes before the summary does
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{1, 2, 3, 4}));
  EXPECT_EQ(w->messages.size(), 2u);

  w = Fit(h, fresh, summary + fresh_cost - 1);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(w->tokens, fresh_cost);
}

TEST_F(FitContextTest, NewMessagesThatDoNotFitAreContextLengthExceeded) {
  const std::vector<HistoryEntry> h = {Entry(Role::kSystem, "be brief", 1),
                                       Entry(Role::kUser, "one", 1)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, std::string(100, 'x'))};
  for (int64_t budget : {int64_t{0}, Cost("user", std::string(100, 'x')),
                         Cost("user", std::string(100, 'x')) + Cost("system", "be brief") - 1}) {
    absl::StatusOr<WindowResult> w = Fit(h, fresh, budget);
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument) << budget;
    EXPECT_EQ(ErrorCode(w.status()), "context_length_exceeded");
    EXPECT_EQ(ErrorParam(w.status()), "messages");
  }
}

TEST_F(FitContextTest, WithoutACacheTheResultIsTheSame) {
  const std::vector<HistoryEntry> h = {Entry(Role::kUser, "one", 1),
                                       Entry(Role::kAssistant, "uno", 1),
                                       Entry(Role::kUser, "two", 2)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "three")};
  const int64_t budget = Cost("user", "two") + Cost("user", "three");
  absl::StatusOr<WindowResult> with = Fit(h, fresh, budget);
  absl::StatusOr<WindowResult> without =
      FitContext(h, fresh, *enc_, {.budget_tokens = budget}, nullptr);
  ASSERT_TRUE(with.ok() && without.ok());
  EXPECT_EQ(with->messages, without->messages);
  EXPECT_EQ(with->dropped, without->dropped);
  EXPECT_EQ(with->tokens, without->tokens);
}

// A long session's second request counts only its new message.
TEST_F(FitContextTest, SecondRequestOfALongSessionCountsOnlyTheNewMessage) {
  std::vector<HistoryEntry> h;
  for (int t = 1; t <= 200; ++t) {
    h.push_back(Entry(Role::kUser, absl::StrCat("question ", t), t));
    h.push_back(Entry(Role::kAssistant, absl::StrCat("answer ", t), t));
  }
  const WindowOptions options = {.budget_tokens = 1 << 20};
  ASSERT_TRUE(FitContext(h, {MakeMessage(Role::kUser, "question 201")}, *enc_, options, &cache_)
                  .ok());
  EXPECT_EQ(cache_.misses(), 401u);
  EXPECT_EQ(cache_.hits(), 0u);
  h.push_back(Entry(Role::kUser, "question 201", 201));
  absl::StatusOr<WindowResult> w =
      FitContext(h, {MakeMessage(Role::kUser, "question 202")}, *enc_, options, &cache_);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(cache_.misses(), 402u);
  EXPECT_EQ(cache_.hits(), 401u);
  EXPECT_EQ(cache_.size(), 402u);
}

// With the counts kept beside a stored history, a long session's next request counts (and
// hashes) only the entries appended since, and the kept counts are the fresh counts.
TEST_F(FitContextTest, KeptCountsMakeTheNextRequestCostItsNewEntriesOnly) {
  std::vector<HistoryEntry> h;
  for (int t = 1; t <= 200; ++t) {
    h.push_back(Entry(Role::kUser, absl::StrCat("question ", t), t));
    h.push_back(Entry(Role::kAssistant, absl::StrCat("answer ", t), t));
  }
  HistoryTokenCounts counts;
  const WindowOptions options = {.budget_tokens = 1 << 20, .history_counts = &counts};
  ASSERT_TRUE(FitContext(h, {MakeMessage(Role::kUser, "question 201")}, *enc_, options, &cache_)
                  .ok());
  EXPECT_EQ(cache_.misses(), 401u);
  // The turn is stored: the new question (counted as a new message: a hit) and the answer.
  h.push_back(Entry(Role::kUser, "question 201", 201));
  h.push_back(Entry(Role::kAssistant, "answer 201", 201));
  absl::StatusOr<WindowResult> w =
      FitContext(h, {MakeMessage(Role::kUser, "question 202")}, *enc_, options, &cache_);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(cache_.misses(), 403u);  // "answer 201" and "question 202"
  EXPECT_EQ(cache_.hits(), 1u);      // "question 201": no lookup for the 400 older entries

  const std::vector<int64_t> kept = counts.Counts(MessageCountingRules(*enc_));
  ASSERT_EQ(kept.size(), h.size());
  for (size_t i = 0; i < h.size(); ++i) {
    const std::string& text = std::get<std::string>(*h[i].message.content);
    EXPECT_EQ(kept[i], Cost(i % 2 == 0 ? "user" : "assistant", text)) << i;
  }
  int64_t all = Cost("user", "question 202");
  for (int64_t c : kept) all += c;
  EXPECT_EQ(w->tokens, all);
  EXPECT_TRUE(counts.Counts("other rules").empty());
}

// The model is part of the count's key: gpt-3.5-turbo-0301 spends 4 tokens per message and
// one less for a name; gpt-4o-2024-08-06 counts as gpt-4o (one cache entry for both).
TEST_F(FitContextTest, TheModelsRulesArePartOfTheKey) {
  Message named = MakeMessage(Role::kUser, "hello");
  named.name = "ana";
  // 3 + "user" + "hello" + "ana" + 1 by default; 4 + ... - 1 on gpt-3.5-turbo-0301.
  EXPECT_EQ(cache_.Count(*enc_, named, {.model = "gpt-4o"}), 3 + 4 + 5 + 3 + 1);
  EXPECT_EQ(cache_.Count(*enc_, named, {.model = "gpt-3.5-turbo-0301"}), 4 + 4 + 5 + 3 - 1);
  EXPECT_EQ(cache_.misses(), 2u);
  EXPECT_EQ(cache_.Count(*enc_, named, {.model = "gpt-4o-2024-08-06"}), 3 + 4 + 5 + 3 + 1);
  EXPECT_EQ(cache_.hits(), 1u);

  const std::vector<HistoryEntry> h = {Entry(Role::kUser, "one", 1),
                                       Entry(Role::kAssistant, "uno", 1)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "two")};
  HistoryTokenCounts counts;
  const int64_t old_rules = 4 * 3 + 4 + 3 + 9 + 3 + 4 + 3;
  absl::StatusOr<WindowResult> w =
      FitContext(h, fresh, *enc_,
                 {.budget_tokens = 1000, .counting = {.model = "gpt-3.5-turbo-0301"},
                  .history_counts = &counts},
                 &cache_);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->tokens, old_rules);
  w = FitContext(h, fresh, *enc_,
                 {.budget_tokens = 1000, .counting = {.model = "gpt-4o"},
                  .history_counts = &counts},
                 &cache_);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->tokens, old_rules - 3);  // one token less per message
}

TEST_F(FitContextTest, WithoutCopiesTheWindowIsTheHistoryLessTheDropped) {
  const std::vector<HistoryEntry> h = {Entry(Role::kUser, "one", 1),
                                       Entry(Role::kAssistant, "uno", 1),
                                       Entry(Role::kUser, "two", 2)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "three")};
  HistoryTokenCounts counts;
  absl::StatusOr<WindowResult> w = FitContext(
      h, fresh, *enc_,
      {.budget_tokens = Cost("user", "two") + Cost("user", "three"), .history_counts = &counts,
       .copy_messages = false},
      &cache_);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_TRUE(w->messages.empty());
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 1}));
  EXPECT_EQ(w->tokens, Cost("user", "two") + Cost("user", "three"));
}

// A pinned tool result appended after its call makes the call (and the call's other
// results) kept: the kept counts' classification is redone, and the window is as counted
// afresh.
TEST_F(FitContextTest, APinnedResultAppendedLaterKeepsItsCall) {
  std::vector<HistoryEntry> h = {
      Entry(Role::kUser, "weather?", 1),
      {.message = AssistantCalls({"c1", "c2"}), .turn = 1, .pinned = false, .summary = false},
      Entry(Role::kUser, "filler", 2), Entry(Role::kAssistant, "ok", 2)};
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "again")};
  HistoryTokenCounts counts;
  const int64_t budget = CallsCost(2) + ResultCost("c1", "18C") + ResultCost("c2", "sunny") +
                         Cost("user", "again");
  auto fit = [&] {
    return FitContext(h, fresh, *enc_, {.budget_tokens = budget, .history_counts = &counts},
                      &cache_);
  };
  ASSERT_TRUE(fit().ok());
  h.push_back({.message = ToolResult("c1", "18C"), .turn = 3, .pinned = true, .summary = false});
  h.push_back({.message = ToolResult("c2", "sunny"), .turn = 3, .pinned = false, .summary = false});
  absl::StatusOr<WindowResult> w = fit();
  ASSERT_TRUE(w.ok()) << w.status();
  // Kept: the call and both results; everything else goes.
  EXPECT_EQ(w->dropped, (std::vector<size_t>{0, 2, 3}));
  EXPECT_EQ(w->tokens, budget);
  ExpectSameWindow(FitContext(h, fresh, *enc_, {.budget_tokens = budget}, nullptr), w, "fresh");
}

// Random conversations (tool calls answered in the same or a later turn, parallel calls,
// pinned, system and summary entries, new messages answering calls), grown turn by turn with
// one HistoryTokenCounts: every window equals the one counted afresh, including windows of
// an older, shorter version of the history whose counts a newer one extended.
TEST_F(FitContextTest, KeptCountsGiveTheSameWindowsAsFreshCountsOnRandomSessions) {
  uint64_t state = 7;  // a fixed linear congruential sequence
  auto next = [&](uint64_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  int windows = 0, dropping = 0, errors = 0;
  for (int session = 0; session < 60; ++session) {
    std::vector<HistoryEntry> h;
    if (next(4) == 0) {
      h.push_back({.message = MakeMessage(Role::kSystem, "earlier: greetings"), .turn = 0,
                   .pinned = false, .summary = true});
    }
    HistoryTokenCounts counts;
    std::vector<std::string> open_calls;  // called, not yet answered
    int call_id = 0;
    for (int turn = 1; turn <= 25; ++turn) {
      std::vector<Message> fresh;
      if (!open_calls.empty() && next(3) != 0) {
        for (const std::string& id : open_calls) fresh.push_back(ToolResult(id, "r" + id));
      } else {
        fresh.push_back(MakeMessage(Role::kUser, std::string(1 + next(30), 'q')));
      }
      if (next(10) == 0 && call_id > 0) {  // an answer to an older call
        fresh.push_back(ToolResult(absl::StrCat("c", next(call_id)), "late"));
      }
      int64_t all = 0;
      for (const HistoryEntry& e : h) all += CountMessageTokens(*enc_, e.message).prompt_tokens;
      for (const Message& m : fresh) all += CountMessageTokens(*enc_, m).prompt_tokens;
      const int64_t budget = static_cast<int64_t>(next(static_cast<uint64_t>(all) + 20));
      const WindowOptions with = {.budget_tokens = budget, .history_counts = &counts};
      absl::StatusOr<WindowResult> want =
          FitContext(h, fresh, *enc_, {.budget_tokens = budget}, nullptr);
      ExpectSameWindow(want, FitContext(h, fresh, *enc_, with, &cache_),
                       absl::StrCat("session ", session, " turn ", turn, " budget ", budget));
      ++windows;
      if (!want.ok()) ++errors;
      if (want.ok() && !want->dropped.empty()) ++dropping;
      if (h.size() > 4 && next(5) == 0) {  // an older version, read after the newer
        std::vector<HistoryEntry> older(h.begin(), h.end() - 3);
        ExpectSameWindow(FitContext(older, fresh, *enc_, {.budget_tokens = budget}, nullptr),
                         FitContext(older, fresh, *enc_, with, &cache_),
                         absl::StrCat("older version, session ", session, " turn ", turn));
      }

      // The turn is stored: the new messages, then the reply (text or tool calls).
      for (Message& m : fresh) {
        h.push_back({.message = std::move(m), .turn = turn, .pinned = next(12) == 0,
                     .summary = false});
      }
      open_calls.clear();
      if (next(8) == 0) {
        h.push_back({.message = MakeMessage(Role::kDeveloper, "be formal"), .turn = turn,
                     .pinned = false, .summary = false});
      }
      if (next(3) == 0) {
        std::vector<std::string> ids;
        for (uint64_t k = 0, n = 1 + next(3); k < n; ++k) {
          ids.push_back(absl::StrCat("c", call_id++));
        }
        h.push_back({.message = AssistantCalls(ids), .turn = turn, .pinned = next(15) == 0,
                     .summary = false});
        if (next(2) == 0) {  // answered within the same turn, else by the next request
          for (const std::string& id : ids) {
            h.push_back({.message = ToolResult(id, "x"), .turn = turn, .pinned = next(10) == 0,
                         .summary = false});
          }
          h.push_back(Entry(Role::kAssistant, "done", turn));
        } else {
          open_calls = ids;
        }
      } else {
        h.push_back(Entry(Role::kAssistant, std::string(1 + next(40), 'a'), turn));
      }
    }
  }
  EXPECT_EQ(windows, 60 * 25);
  // The sessions exercise every branch: windows that drop turns and windows that fail.
  EXPECT_GT(dropping, 300);
  EXPECT_GT(errors, 10);
}

// Windows of one session's versions on many threads share one HistoryTokenCounts.
TEST(HistoryTokenCountsTest, ConcurrentWindowsOfOneSessionAgree) {
  std::unique_ptr<Encoding> enc = ByteEncoding();
  std::vector<HistoryEntry> h;
  for (int t = 1; t <= 120; ++t) {
    h.push_back(Entry(Role::kUser, absl::StrCat("question ", t), t));
    h.push_back(Entry(Role::kAssistant, absl::StrCat("answer ", t), t));
  }
  const std::vector<Message> fresh = {MakeMessage(Role::kUser, "next")};
  MessageTokenCache cache({});
  HistoryTokenCounts counts;
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t len = 2 + static_cast<size_t>(t); len <= h.size(); len += 7) {
        const std::vector<HistoryEntry> version(h.begin(), h.begin() + static_cast<long>(len));
        const int64_t budget = static_cast<int64_t>(len) * 8;
        absl::StatusOr<WindowResult> want =
            FitContext(version, fresh, *enc, {.budget_tokens = budget}, nullptr);
        absl::StatusOr<WindowResult> got = FitContext(
            version, fresh, *enc, {.budget_tokens = budget, .history_counts = &counts}, &cache);
        ExpectSameWindow(want, got, absl::StrCat("thread ", t, " length ", len));
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(counts.Counts(MessageCountingRules(*enc)).size(), h.size());  // 2 + 7 * 34 = 240
}

TEST(MessageTokenCacheTest, TheEncodingIsPartOfTheKey) {
  std::unique_ptr<Encoding> bytes = ByteEncoding("bytes");
  EncodingSpec spec;
  spec.name = "pairs";
  spec.pattern = SplitPattern::kCl100k;
  // "he" and "ll" merge: "hello" is 3 tokens ("he", "ll", "o"), "user" 4.
  std::unique_ptr<Encoding> pairs =
      *Encoding::Create(spec, tokenizer_test::SmallRankFile({"he", "ll"}));
  MessageTokenCache cache({});
  const Message m = MakeMessage(Role::kUser, "hello");
  EXPECT_EQ(cache.Count(*bytes, m), 3 + 4 + 5);
  EXPECT_EQ(cache.Count(*pairs, m), 3 + 4 + 3);
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.Count(*pairs, m), 3 + 4 + 3);
  EXPECT_EQ(cache.hits(), 1u);
  // Any field changes the key.
  Message named = m;
  named.name = "ana";
  EXPECT_EQ(cache.Count(*bytes, named), 3 + 4 + 5 + 3 + 1);
  EXPECT_EQ(cache.misses(), 3u);
}

TEST(MessageTokenCacheTest, StaysWithinItsEntryBound) {
  std::unique_ptr<Encoding> enc = ByteEncoding();
  MessageTokenCache cache({.max_entries = 32});  // 2 per shard
  for (int i = 0; i < 1000; ++i) {
    const std::string text = absl::StrCat("message ", i);
    EXPECT_EQ(cache.Count(*enc, MakeMessage(Role::kUser, text)), Cost("user", text));
  }
  EXPECT_LE(cache.size(), 32u);
  EXPECT_EQ(cache.misses(), 1000u);
}

}  // namespace
}  // namespace modeenvoy
