// lib/router/complexity.cc: ScorePromptComplexity, one pass over the bytes.
#include "modeenvoy/router/complexity.h"

#include "lib/router/complexity_internal.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string_view>

namespace modeenvoy {
namespace {

enum Category : uint8_t { kNoWord, kCode, kMath, kTask, kStep, kLookup };

// A word of at most kMaxWord letters, lower-cased, packed little-endian into two words and
// mixed once: no per-letter multiply chain on the hot path.
constexpr size_t kMaxWord = 16;
constexpr uint64_t Mix(uint64_t lo, uint64_t hi, size_t len) {
  uint64_t h = (lo ^ (hi * 0x9e3779b97f4a7c15ULL) ^ len) * 0xff51afd7ed558ccdULL;
  return h ^ (h >> 29);
}
constexpr uint64_t HashWord(std::string_view w) {
  uint64_t part[2] = {0, 0};
  for (size_t i = 0; i < w.size(); ++i) {
    part[i / 8] |= uint64_t{static_cast<uint8_t>(w[i] | 0x20)} << (8 * (i % 8));
  }
  return Mix(part[0], part[1], w.size());
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
    {"what", kLookup}, {"who", kLookup}, {"when", kLookup},
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

enum CharClass : uint8_t { kOther, kLetter, kDigit, kSpace, kNewline, kSymbol };
constexpr std::array<uint8_t, 256> BuildClasses() {
  std::array<uint8_t, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kLetter;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kLetter;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit;
  t[' '] = t['\t'] = t['\r'] = kSpace;
  t['\n'] = kNewline;
  for (char c : std::string_view("?,`{};=:-^+*/\\")) t[static_cast<uint8_t>(c)] = kSymbol;
  return t;
}
constexpr std::array<uint8_t, 256> kClass = BuildClasses();

// A quick reject before hashing: bit `len` of entry (first letter, second letter or 26 for
// a one-letter word) is set when some keyword has that shape; most prose words have none.
constexpr std::array<uint32_t, 26 * 27> BuildPrefilter() {
  std::array<uint32_t, 26 * 27> t{};
  for (const Keyword& k : kKeywords) {
    int first = (k.word[0] | 0x20) - 'a';
    int second = k.word.size() > 1 ? (k.word[1] | 0x20) - 'a' : 26;
    t[first * 27 + second] |= uint32_t{1} << k.word.size();
  }
  return t;
}
constexpr std::array<uint32_t, 26 * 27> kPrefilter = BuildPrefilter();

// The bytes of a word [p, p + len), len <= kMaxWord, with 16 readable bytes at p.
uint64_t HashPadded(const char* p, size_t len) {
  static constexpr auto kMasks = [] {
    std::array<std::array<uint64_t, 2>, kMaxWord + 1> m{};
    for (size_t n = 0; n <= kMaxWord; ++n) {
      for (size_t b = 0; b < n; ++b) m[n][b / 8] |= uint64_t{0xff} << (8 * (b % 8));
    }
    return m;
  }();
  uint64_t part[2];
  std::memcpy(part, p, 16);
  const uint64_t lower = 0x2020202020202020ULL;
  return Mix((part[0] | lower) & kMasks[len][0], (part[1] | lower) & kMasks[len][1], len);
}

// The keyword lookup of a word that passed the prefilter (out of line: the minority).
__attribute__((noinline)) void CountKeyword(PromptComplexity& f, const char* s, size_t n,
                                            size_t begin, size_t len) {
  uint64_t h;
  if (begin + 16 <= n) {
    h = HashPadded(s + begin, len);
  } else {
    char padded[16] = {};
    std::memcpy(padded, s + begin, len);
    h = HashPadded(padded, len);
  }
  switch (Lookup(h)) {
    case kCode: ++f.code_words; break;
    case kMath: ++f.math_words; break;
    case kTask: ++f.task_words; break;
    case kStep: ++f.step_markers; break;
    case kLookup: if (f.words == 1) f.lookup_opener = true; break;
    case kNoWord: break;
  }
}

__attribute__((always_inline)) inline void CountWord(PromptComplexity& f, const char* s,
                                                     size_t n, size_t begin, size_t len) {
  ++f.words;
  if (len > kMaxWord) return;
  unsigned first = static_cast<unsigned>((s[begin] | 0x20) - 'a');
  unsigned second = len > 1 ? static_cast<unsigned>((s[begin + 1] | 0x20) - 'a') : 26u;
  if (((kPrefilter[first * 27 + second] >> len) & 1) == 0) return;
  CountKeyword(f, s, n, begin, len);
}

// One byte that is neither a letter nor a space at s[i]; returns where scanning resumes
// (past a multi-byte token such as ``` or ==).
size_t CountSpecial(PromptComplexity& f, const char* s, size_t n, size_t i) {
  const auto cls = [&](size_t j) -> uint8_t {
    return j < n ? kClass[static_cast<uint8_t>(s[j])] : uint8_t{kOther};
  };
  const auto ch = [&](size_t j) -> char { return j < n ? s[j] : '\0'; };
  const auto alnum = [](uint8_t c) { return c == kLetter || c == kDigit; };
  switch (s[i]) {
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': {
      // "1. " / "2) " as the first thing on a line: a numbered instruction.
      size_t b = i;
      while (b > 0 && kClass[static_cast<uint8_t>(s[b - 1])] == kSpace) --b;
      if (b == 0 || s[b - 1] == '\n') {
        size_t j = i;
        while (cls(j) == kDigit) ++j;
        if ((ch(j) == '.' || ch(j) == ')') && ch(j + 1) == ' ') ++f.step_markers;
        return j;
      }
      return i + 1;
    }
    case '?': ++f.questions; break;
    case ',': ++f.commas; break;
    case '`':
      if (ch(i + 1) == '`' && ch(i + 2) == '`') {
        ++f.code_fences;
        return i + 3;
      }
      break;
    case '{': case '}': case ';': ++f.code_symbols; break;
    case '=':
      if (ch(i + 1) == '=' || ch(i + 1) == '>') {
        ++f.code_symbols;
        return i + 2;
      }
      ++f.math_symbols;
      break;
    case ':':
      if (ch(i + 1) == ':') {
        ++f.code_symbols;
        return i + 2;
      }
      break;
    case '-':
      if (ch(i + 1) == '>') {
        ++f.code_symbols;
        return i + 2;
      }
      if (i >= 2 && s[i - 1] == ' ' && ch(i + 1) == ' ' &&
          (kClass[static_cast<uint8_t>(s[i - 2])] == kDigit || cls(i + 2) == kDigit)) {
        ++f.math_symbols;  // a binary minus next to a number: "5x - y = 11"
      }
      break;
    case '^': ++f.math_symbols; break;
    case '+': case '*': case '/':
      // Between operands (x + 2, 3*y, 1/3), not a lone bullet or a path's slash.
      if (i > 0 && (alnum(kClass[static_cast<uint8_t>(s[i - 1])]) || s[i - 1] == ' ' ||
                    s[i - 1] == ')') &&
          (cls(i + 1) == kDigit || (ch(i + 1) == ' ' && alnum(cls(i + 2))))) {
        ++f.math_symbols;
      }
      break;
    case '\\':
      if (cls(i + 1) == kLetter) ++f.math_symbols;  // \frac, \int, \sum
      break;
    default: break;
  }
  return i + 1;
}

#if defined(__SSE2__)
// 16 bytes at a time: bit masks of letters and of bytes worth a look (not a letter, not a
// space or tab, not a byte >= 0x80); words come from the letter mask's edges.
void CountFeatures(PromptComplexity& f, const char* s, size_t n) {
  const __m128i k20 = _mm_set1_epi8(0x20), ka = _mm_set1_epi8('a');
  const __m128i k80 = _mm_set1_epi8(static_cast<char>(0x80));
  const __m128i k26 = _mm_set1_epi8(static_cast<char>(26 ^ 0x80));
  const __m128i space = _mm_set1_epi8(' '), tab = _mm_set1_epi8('\t'), cr = _mm_set1_epi8('\r');
  uint32_t prev_letter = 0;  // bit 0: the byte before the block is a letter
  size_t word_begin = 0, resume = 0;
  for (size_t base = 0; base < n; base += 16) {
    __m128i v;
    uint32_t valid = 0xffff;
    if (base + 16 <= n) {
      v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + base));
    } else {
      alignas(16) char tail[16] = {};
      std::memcpy(tail, s + base, n - base);
      v = _mm_load_si128(reinterpret_cast<const __m128i*>(tail));
      valid = (1u << (n - base)) - 1;
    }
    __m128i t = _mm_xor_si128(_mm_sub_epi8(_mm_or_si128(v, k20), ka), k80);
    uint32_t letters = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmplt_epi8(t, k26))) & valid;
    uint32_t spaces = static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(
        _mm_cmpeq_epi8(v, space), _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, cr)))));
    uint32_t high = static_cast<uint32_t>(_mm_movemask_epi8(v));
    uint32_t special = valid & ~letters & ~spaces & ~high;
    uint32_t shifted = (letters << 1) | prev_letter;
    uint32_t starts = letters & ~shifted, ends = ~letters & shifted & 0xffff;
    if (base + 16 > n) ends &= valid;
    for (uint32_t m = starts | ends; m != 0; m &= m - 1) {
      size_t pos = base + static_cast<size_t>(__builtin_ctz(m));
      if ((starts >> (pos - base)) & 1) {
        word_begin = pos;
      } else {
        CountWord(f, s, n, word_begin, pos - word_begin);
      }
    }
    for (uint32_t m = special; m != 0; m &= m - 1) {
      size_t pos = base + static_cast<size_t>(__builtin_ctz(m));
      if (pos >= resume) resume = CountSpecial(f, s, n, pos);
    }
    prev_letter = (letters >> 15) & 1;
  }
  if (n > 0 && kClass[static_cast<uint8_t>(s[n - 1])] == kLetter) {
    CountWord(f, s, n, word_begin, n - word_begin);
  }
}
#endif

// Byte by byte; the reference the SSE2 version is tested against.
void CountFeaturesScalar(PromptComplexity& f, const char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = kClass[static_cast<uint8_t>(s[i])];
    if (c == kLetter) {
      size_t begin = i;
      while (++i < n && kClass[static_cast<uint8_t>(s[i])] == kLetter) {
      }
      CountWord(f, s, n, begin, i - begin);
    } else if (c == kSpace || static_cast<uint8_t>(s[i]) >= 0x80) {
      ++i;
    } else {
      i = CountSpecial(f, s, n, i);
    }
  }
}

void Score(PromptComplexity& f) {
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
}

}  // namespace

PromptComplexity ScorePromptComplexity(std::string_view text) {
  PromptComplexity f;
#if defined(__SSE2__)
  CountFeatures(f, text.data(), text.size());
#else
  CountFeaturesScalar(f, text.data(), text.size());
#endif
  Score(f);
  return f;
}

namespace router_internal {
PromptComplexity ScorePromptComplexityScalar(std::string_view text) {
  PromptComplexity f;
  CountFeaturesScalar(f, text.data(), text.size());
  Score(f);
  return f;
}
}  // namespace router_internal

}  // namespace modeenvoy
