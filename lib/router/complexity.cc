// lib/router/complexity.cc: ScorePromptComplexity, one pass over the bytes.
#include "modeenvoy/router/complexity.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace modeenvoy {
namespace {

enum Category : uint8_t { kNoWord, kCode, kMath, kTask, kStep, kLookup };

constexpr uint64_t HashStep(uint64_t h, char c) {
  return (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ULL;
}
constexpr uint64_t kHashSeed = 0xcbf29ce484222325ULL;
constexpr uint64_t HashWord(std::string_view w) {
  uint64_t h = kHashSeed;
  for (char c : w) h = HashStep(h, c);
  return h;
}

struct Keyword {
  std::string_view word;
  Category category;
};

// Whole lower-case words. Lookup openers count only as the prompt's first word.
constexpr Keyword kKeywords[] = {
    // code
    {"def", kCode}, {"return", kCode}, {"import", kCode}, {"include", kCode}, {"const", kCode},
    {"func", kCode}, {"fn", kCode}, {"struct", kCode}, {"std", kCode}, {"async", kCode},
    {"await", kCode}, {"lambda", kCode}, {"null", kCode}, {"void", kCode}, {"printf", kCode},
    {"println", kCode}, {"main", kCode}, {"python", kCode}, {"javascript", kCode},
    {"typescript", kCode}, {"java", kCode}, {"rust", kCode}, {"golang", kCode}, {"sql", kCode},
    {"query", kCode}, {"bash", kCode}, {"script", kCode}, {"regex", kCode}, {"api", kCode},
    {"json", kCode}, {"docker", kCode}, {"kubernetes", kCode}, {"manifest", kCode},
    {"terraform", kCode}, {"stack", kCode}, {"trace", kCode}, {"segmentation", kCode},
    {"deadlock", kCode}, {"thread", kCode}, {"memory", kCode}, {"index", kCode},
    {"indexes", kCode}, {"schema", kCode}, {"database", kCode}, {"algorithm", kCode},
    {"complexity", kCode}, {"tests", kCode}, {"test", kCode}, {"unit", kCode},
    {"middleware", kCode}, {"component", kCode}, {"workflow", kCode}, {"contract", kCode},
    {"parser", kCode}, {"tokenizer", kCode}, {"class", kCode}, {"function", kCode},
    {"code", kCode}, {"bug", kCode}, {"bugs", kCode}, {"exception", kCode},
    // math
    {"derivative", kMath}, {"integral", kMath}, {"integration", kMath}, {"equation", kMath},
    {"equations", kMath}, {"matrix", kMath}, {"eigenvalues", kMath}, {"eigenvectors", kMath},
    {"determinant", kMath}, {"inverse", kMath}, {"probability", kMath}, {"expected", kMath},
    {"prove", kMath}, {"proof", kMath}, {"theorem", kMath}, {"induction", kMath},
    {"formula", kMath}, {"solutions", kMath}, {"variance", kMath}, {"covariance", kMath},
    {"correlation", kMath}, {"hessian", kMath}, {"gradient", kMath}, {"minimum", kMath},
    {"maximum", kMath}, {"series", kMath}, {"irrational", kMath}, {"primes", kMath},
    {"interest", kMath}, {"calculation", kMath}, {"math", kMath}, {"mathematically", kMath},
    // tasks that take reasoning or a structured deliverable
    {"implement", kTask}, {"design", kTask}, {"debug", kTask}, {"refactor", kTask},
    {"optimize", kTask}, {"compare", kTask}, {"analyze", kTask}, {"analyse", kTask},
    {"derive", kTask}, {"solve", kTask}, {"compute", kTask}, {"calculate", kTask},
    {"evaluate", kTask}, {"review", kTask}, {"plan", kTask}, {"migrate", kTask},
    {"migration", kTask}, {"diagnose", kTask}, {"detailed", kTask}, {"trade", kTask},
    {"offs", kTask}, {"tradeoffs", kTask}, {"pros", kTask}, {"cons", kTask},
    {"recommendation", kTask}, {"recommend", kTask}, {"architecture", kTask},
    {"why", kTask}, {"explain", kTask}, {"essay", kTask}, {"persuasive", kTask},
    {"template", kTask}, {"outline", kTask}, {"checklist", kTask}, {"fix", kTask},
    {"fixes", kTask}, {"extend", kTask}, {"identify", kTask}, {"measure", kTask},
    {"verify", kTask}, {"handle", kTask}, {"handling", kTask}, {"risks", kTask},
    {"considering", kTask}, {"consider", kTask}, {"including", kTask}, {"discuss", kTask},
    // multi-step markers
    {"step", kStep}, {"steps", kStep}, {"first", kStep}, {"then", kStep}, {"finally", kStep},
    {"next", kStep}, {"afterwards", kStep}, {"each", kStep}, {"also", kStep},
    // lookup and small-talk openers
    {"what", kLookup}, {"whats", kLookup}, {"who", kLookup}, {"when", kLookup},
    {"where", kLookup}, {"which", kLookup}, {"translate", kLookup}, {"define", kLookup},
    {"hi", kLookup}, {"hello", kLookup}, {"hey", kLookup}, {"thanks", kLookup},
    {"thank", kLookup}, {"name", kLookup}, {"spell", kLookup}, {"convert", kLookup},
    {"is", kLookup}, {"how", kLookup}, {"give", kLookup}, {"tell", kLookup},
    {"say", kLookup}, {"good", kLookup}, {"can", kLookup},
};

constexpr int kTableSize = 1024;  // power of two, well over twice the keyword count
struct Slot {
  uint64_t hash = 0;
  Category category = kNoWord;
};
constexpr std::array<Slot, kTableSize> BuildTable() {
  std::array<Slot, kTableSize> table{};
  for (const Keyword& k : kKeywords) {
    uint64_t h = HashWord(k.word);
    size_t i = h & (kTableSize - 1);
    while (table[i].category != kNoWord) i = (i + 1) & (kTableSize - 1);
    table[i] = {h, k.category};
  }
  return table;
}
constexpr std::array<Slot, kTableSize> kTable = BuildTable();
static_assert(sizeof(kKeywords) / sizeof(kKeywords[0]) * 2 < kTableSize);

Category Lookup(uint64_t h) {
  size_t i = h & (kTableSize - 1);
  while (kTable[i].category != kNoWord) {
    if (kTable[i].hash == h) return kTable[i].category;
    i = (i + 1) & (kTableSize - 1);
  }
  return kNoWord;
}

bool IsAlpha(unsigned char c) { return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(unsigned char c) { return IsAlpha(c) || IsDigit(c); }

}  // namespace

PromptComplexity ScorePromptComplexity(std::string_view text) {
  PromptComplexity f;
  const size_t n = text.size();
  const auto at = [&](size_t i) -> unsigned char {
    return i < n ? static_cast<unsigned char>(text[i]) : 0;
  };
  bool line_start = true;  // only spaces since the last newline
  size_t i = 0;
  while (i < n) {
    unsigned char c = at(i);
    if (IsAlpha(c)) {
      uint64_t h = kHashSeed;
      size_t begin = i;
      while (i < n && (IsAlpha(at(i)) || at(i) == '\'')) {
        if (at(i) != '\'') h = HashStep(h, static_cast<char>(at(i) | 0x20));
        ++i;
      }
      ++f.words;
      switch (i - begin > 16 ? kNoWord : Lookup(h)) {
        case kCode: ++f.code_words; break;
        case kMath: ++f.math_words; break;
        case kTask: ++f.task_words; break;
        case kStep: ++f.step_markers; break;
        case kLookup: if (f.words == 1) f.lookup_opener = true; break;
        case kNoWord: break;
      }
      line_start = false;
      continue;
    }
    if (IsDigit(c)) {
      if (line_start) {
        // "1." / "2)" at a line's start: a numbered instruction.
        size_t j = i;
        while (IsDigit(at(j))) ++j;
        if ((at(j) == '.' || at(j) == ')') && at(j + 1) == ' ') ++f.step_markers;
      }
      line_start = false;
      ++i;
      continue;
    }
    switch (c) {
      case '\n': line_start = true; ++i; continue;
      case ' ': case '\t': case '\r': ++i; continue;
      case '?': ++f.questions; break;
      case ',': ++f.commas; break;
      case '`':
        if (at(i + 1) == '`' && at(i + 2) == '`') {
          ++f.code_fences;
          i += 3;
          line_start = false;
          continue;
        }
        break;
      case '{': case '}': case ';': ++f.code_symbols; break;
      case '=':
        if (at(i + 1) == '=' || at(i + 1) == '>') {
          ++f.code_symbols;
          ++i;
        } else {
          ++f.math_symbols;
        }
        break;
      case ':':
        if (at(i + 1) == ':') { ++f.code_symbols; ++i; }
        break;
      case '-':
        if (at(i + 1) == '>') {
          ++f.code_symbols;
          ++i;
        } else if (i >= 2 && text[i - 1] == ' ' && at(i + 1) == ' ' &&
                   (IsDigit(static_cast<unsigned char>(text[i - 2])) || IsDigit(at(i + 2)))) {
          ++f.math_symbols;  // a binary minus next to a number: "5x - y = 11"
        }
        break;
      case '^': ++f.math_symbols; break;
      case '+': case '*': case '/':
        // Between operands (x + 2, 3*y, 1/3), not a lone bullet or a path's slash.
        if ((i > 0 && (IsAlnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == ' ' ||
                       text[i - 1] == ')')) &&
            (IsDigit(at(i + 1)) || (at(i + 1) == ' ' && IsAlnum(at(i + 2))))) {
          ++f.math_symbols;
        }
        break;
      case '\\':
        if (IsAlpha(at(i + 1))) ++f.math_symbols;  // \frac, \int, \sum
        break;
      default: break;
    }
    line_start = false;
    ++i;
  }

  // A logistic model over capped features; the weights are documented in docs/routing.md.
  auto cap = [](int v, int max) { return static_cast<double>(v < max ? v : max); };
  double z = -3.0;
  z += 0.55 * std::log2(1.0 + f.words);
  z += 1.5 * cap(f.code_fences, 2);
  z += 0.45 * cap(f.code_words, 6);
  z += 0.25 * cap(f.code_symbols, 8);
  z += 0.7 * cap(f.math_words, 4);
  z += 0.35 * cap(f.math_symbols, 6);
  z += 0.8 * cap(f.task_words, 5);
  z += 0.5 * cap(f.step_markers, 5);
  z += 0.6 * cap(f.questions > 1 ? f.questions - 1 : 0, 3);
  z += 0.15 * cap(f.commas, 8);
  z -= f.lookup_opener ? 1.2 : 0.0;
  f.score = 1.0 / (1.0 + std::exp(-z));
  return f;
}

}  // namespace modeenvoy
