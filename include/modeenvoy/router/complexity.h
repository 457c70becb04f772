// include/modeenvoy/router/complexity.h: a deterministic prompt-complexity score.
//
// Tiered routing sends easy prompts to a cheap model and hard ones to a strong model. The
// score here is built from surface features only (length, code fences and code words,
// math notation and math words, multi-step instruction markers, task and analysis verbs,
// question count, short-lookup openers), so it is cheap (one pass over the bytes, no
// allocation, no tokenizer) and repeatable: the same text always scores the same.
//
//   modeenvoy::PromptComplexity c = modeenvoy::ScorePromptComplexity(last_user_message);
//   bool hard = c.score >= 0.5;   // the default "complex" threshold
//
// docs/routing.md ("Prompt complexity") lists the features and weights, the rubric of the
// labelled set tests/router/data/complexity_labelled.jsonl and the measured accuracy.
#ifndef MODEENVOY_ROUTER_COMPLEXITY_H_
#define MODEENVOY_ROUTER_COMPLEXITY_H_

#include <string_view>

#include "modeenvoy/export.h"

namespace modeenvoy {

// The score and the feature counts it was computed from (each count is capped where the
// weight applies, see docs/routing.md).
struct PromptComplexity {
  double score = 0;        // in (0, 1); >= 0.5 means "complex"
  int words = 0;           // runs of ASCII letters
  int code_fences = 0;     // ``` markers
  int code_words = 0;      // def, return, std, async, SELECT, ... (as whole words)
  int code_symbols = 0;    // { } ; == => :: -> and similar
  int math_words = 0;      // derivative, integral, probability, prove, eigenvalues, ...
  int math_symbols = 0;    // ^ = + * / between digits or letters, \frac and the like
  int task_words = 0;      // implement, design, debug, refactor, compare, derive, ...
  int step_markers = 0;    // "step", "first", "then", "finally", numbered list lines
  int questions = 0;       // '?' characters
  int commas = 0;
  bool lookup_opener = false;  // starts like a lookup or small talk: what/who/translate/hi...
};

// Scores `prompt` (UTF-8; non-ASCII bytes count as neither letters nor symbols).
// Thread safety: thread-safe (pure function). Never fails; an empty prompt scores low.
MODEENVOY_EXPORT PromptComplexity ScorePromptComplexity(std::string_view prompt);

}  // namespace modeenvoy

#endif  // MODEENVOY_ROUTER_COMPLEXITY_H_
