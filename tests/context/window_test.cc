#include "modeenvoy/context/window.h"

#include <memory>
#include <string>
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

class FitContextTest : public ::testing::Test {
 protected:
  absl::StatusOr<WindowResult> Fit(const std::vector<HistoryEntry>& history,
                                   const std::vector<Message>& fresh, int64_t budget) {
    return FitContext(history, fresh, *enc_, {.budget_tokens = budget}, &cache_);
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
  ASSERT_TRUE(Fit(h, {MakeMessage(Role::kUser, "question 201")}, 1 << 20).ok());
  EXPECT_EQ(cache_.misses(), 401u);
  EXPECT_EQ(cache_.hits(), 0u);
  h.push_back(Entry(Role::kUser, "question 201", 201));
  absl::StatusOr<WindowResult> w = Fit(h, {MakeMessage(Role::kUser, "question 202")}, 1 << 20);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(cache_.misses(), 402u);
  EXPECT_EQ(cache_.hits(), 401u);
  EXPECT_EQ(cache_.size(), 402u);
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
