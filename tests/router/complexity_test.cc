// The prompt-complexity score: its features on hand-counted prompts, and its accuracy on the
// labelled set tests/router/data/complexity_labelled.jsonl (labels by the rubric in
// docs/routing.md, written before the scorer's weights were set).
#include "modeenvoy/router/complexity.h"

#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "lib/router/complexity_internal.h"
#include "nlohmann/json.hpp"

namespace modeenvoy {
namespace {

TEST(PromptComplexityTest, CountsTheFeaturesItIsBuiltFrom) {
  PromptComplexity c = ScorePromptComplexity(
      "1. Debug this?\n2. Then explain why?\n```def f(): return 2^3 + 4```");
  // Counted by hand. Letter runs: Debug this Then explain why def f return.
  EXPECT_EQ(c.words, 8);
  EXPECT_EQ(c.step_markers, 3);   // "1. ", "2. " at line starts, "Then"
  EXPECT_EQ(c.questions, 2);
  EXPECT_EQ(c.code_fences, 2);
  EXPECT_EQ(c.code_words, 2);     // def, return
  EXPECT_EQ(c.task_words, 3);     // debug, explain, why
  EXPECT_EQ(c.math_symbols, 2);   // ^, and the + between operands
  EXPECT_FALSE(c.lookup_opener);  // the first word is "Debug"
}

TEST(PromptComplexityTest, ALookupOpenerCountsOnlyAsTheFirstWord) {
  EXPECT_TRUE(ScorePromptComplexity("What's the capital of Peru?").lookup_opener);
  EXPECT_FALSE(ScorePromptComplexity("Explain what a monad is").lookup_opener);
  EXPECT_FALSE(ScorePromptComplexity("").lookup_opener);
}

TEST(PromptComplexityTest, IsDeterministicAndBounded) {
  std::string text(4000, 'a');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = ' ';
  double a = ScorePromptComplexity(text).score, b = ScorePromptComplexity(text).score;
  EXPECT_EQ(a, b);
  EXPECT_GT(a, 0.0);
  EXPECT_LT(a, 1.0);
  EXPECT_LT(ScorePromptComplexity("").score, 0.5);
  // Non-ASCII bytes are neither letters nor symbols.
  EXPECT_EQ(ScorePromptComplexity("\xc3\xa9t\xc3\xa9").words, 1);
}

void ExpectSame(const PromptComplexity& a, const PromptComplexity& b, const std::string& text) {
  EXPECT_EQ(a.words, b.words) << text;
  EXPECT_EQ(a.code_fences, b.code_fences) << text;
  EXPECT_EQ(a.code_words, b.code_words) << text;
  EXPECT_EQ(a.code_symbols, b.code_symbols) << text;
  EXPECT_EQ(a.math_words, b.math_words) << text;
  EXPECT_EQ(a.math_symbols, b.math_symbols) << text;
  EXPECT_EQ(a.task_words, b.task_words) << text;
  EXPECT_EQ(a.step_markers, b.step_markers) << text;
  EXPECT_EQ(a.questions, b.questions) << text;
  EXPECT_EQ(a.commas, b.commas) << text;
  EXPECT_EQ(a.lookup_opener, b.lookup_opener) << text;
  EXPECT_EQ(a.score, b.score) << text;
}

TEST(PromptComplexityTest, TheSixteenByteScanAgreesWithTheByteByByteOne) {
  // Seeded random texts over an alphabet of every byte class the scan distinguishes, with
  // keywords, across block boundaries and at every length from 0 to 80.
  const std::string pieces[] = {"a", "Z", "def", "return", "Then", "prove", "what", " ", "\t",
                                "\r", "\n", "1. ", "12) ", "7", "```", "`", "==", "=>", "=",
                                "::", ":", "->", "-", " - ", "^", "+", " * ", "/", "\\frac",
                                "?", ",", "{", "}", ";", ")", "\xc3\xa9", "\x80", ".",
                                std::string(1, '\0'), "verylongwordwithmorethansixteen"};
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  for (int round = 0; round < 3000; ++round) {
    std::string text;
    size_t target = next() % 81;
    while (text.size() < target) text += pieces[next() % std::size(pieces)];
    ExpectSame(ScorePromptComplexity(text), router_internal::ScorePromptComplexityScalar(text),
               text);
    if (HasFailure()) break;
  }
}

struct Labelled {
  std::string prompt;
  bool complex = false;
};

std::vector<Labelled> LoadLabelled() {
  std::vector<Labelled> out;
  std::ifstream in(std::string(MODEENVOY_ROUTER_TEST_DATA) + "/complexity_labelled.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out.push_back({j.at("prompt").get<std::string>(), j.at("label").get<std::string>() == "complex"});
  }
  return out;
}

// The documented floor (docs/routing.md, "Prompt complexity"): accuracy on the whole set at
// the 0.5 threshold. Lowering it needs the documentation changed with it.
constexpr double kAccuracyFloor = 0.90;

TEST(PromptComplexityTest, AccuracyOnTheLabelledSetStaysAboveTheDocumentedFloor) {
  std::vector<Labelled> set = LoadLabelled();
  ASSERT_GE(set.size(), 200u) << "tests/router/data/complexity_labelled.jsonl missing or short";
  int correct = 0, tune_correct = 0, tune_n = 0, held_correct = 0, held_n = 0;
  int simple = 0;
  for (size_t i = 0; i < set.size(); ++i) {
    ExpectSame(ScorePromptComplexity(set[i].prompt),
               router_internal::ScorePromptComplexityScalar(set[i].prompt), set[i].prompt);
    bool predicted = ScorePromptComplexity(set[i].prompt).score >= 0.5;
    bool ok = predicted == set[i].complex;
    correct += ok;
    simple += !set[i].complex;
    // Lines with i % 4 < 2 were looked at while setting the weights; the others were not.
    if (i % 4 < 2) {
      ++tune_n;
      tune_correct += ok;
    } else {
      ++held_n;
      held_correct += ok;
    }
    if (!ok) {
      std::cout << "miss (" << (set[i].complex ? "complex" : "simple") << ", line " << i + 1
                << ", " << (i % 4 < 2 ? "tuning" : "held-out") << "): "
                << set[i].prompt.substr(0, 100) << "\n";
    }
  }
  double accuracy = static_cast<double>(correct) / static_cast<double>(set.size());
  std::cout << "accuracy " << correct << "/" << set.size() << " = " << accuracy
            << "; tuning half " << tune_correct << "/" << tune_n << ", held-out half "
            << held_correct << "/" << held_n << "; simple " << simple << ", complex "
            << set.size() - simple << "\n";
  EXPECT_GE(accuracy, kAccuracyFloor);
}

}  // namespace
}  // namespace modeenvoy
