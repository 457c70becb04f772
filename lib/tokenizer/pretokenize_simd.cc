#include "lib/tokenizer/pretokenize_simd.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "lib/core/status_macros.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace modeenvoy::tokenizer_internal {
namespace {

inline uint64_t ValidBits(int n) { return n >= 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1; }

#if defined(__x86_64__) || defined(__i386__)
bool CpuHasAvx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2");
}
#endif

PretokenizeMode BestMode() {
#if defined(__x86_64__) || defined(__i386__)
  return CpuHasAvx2() ? PretokenizeMode::kMasksAvx2 : PretokenizeMode::kMasksSse2;
#else
  return PretokenizeMode::kMasksScalar;
#endif
}

PretokenizeMode Cap(PretokenizeMode mode) {
  const PretokenizeMode best = BestMode();
  if (mode == PretokenizeMode::kMasksAvx2 && best != PretokenizeMode::kMasksAvx2) return best;
  if (mode == PretokenizeMode::kMasksSse2 && best == PretokenizeMode::kMasksScalar) return best;
  return mode;
}

bool ParseMode(std::string_view s, PretokenizeMode* mode) {
  if (s == "off") {
    *mode = PretokenizeMode::kReference;
  } else if (s == "scalar") {
    *mode = PretokenizeMode::kMasksScalar;
  } else if (s == "sse2") {
    *mode = Cap(PretokenizeMode::kMasksSse2);
  } else if (s == "avx2") {
    *mode = Cap(PretokenizeMode::kMasksAvx2);
  } else if (s == "auto") {
    *mode = BestMode();
  } else {
    return false;
  }
  return true;
}

const char* ModeName(PretokenizeMode mode) {
  switch (mode) {
    case PretokenizeMode::kReference:
      return "off";
    case PretokenizeMode::kMasksScalar:
      return "scalar";
    case PretokenizeMode::kMasksSse2:
      return "sse2";
    case PretokenizeMode::kMasksAvx2:
      return "avx2";
  }
  return "off";
}

PretokenizeMode ModeFromEnvironment() {
  const char* v = std::getenv("MODEENVOY_TOKENIZER_SIMD");
  if (v == nullptr) return BestMode();
  const std::string_view s(v);
  PretokenizeMode mode;
  return ParseMode(s, &mode) ? mode : BestMode();
}

std::atomic<int>& ModeSlot() {
  static std::atomic<int> mode{static_cast<int>(ModeFromEnvironment())};
  return mode;
}

}  // namespace

void ClassifyScalar(const uint8_t* p, int n, BlockMasks* m) {
  BlockMasks r{};
  for (int k = 0; k < n; ++k) {
    const uint8_t c = p[k];
    const uint64_t bit = uint64_t{1} << k;
    if (c >= 0x80) {
      r.nonascii |= bit;
      continue;
    }
    const uint8_t f = kAsciiFlags.flags[c];
    if (f & kFlagUpper) r.upper |= bit;
    if (f & kFlagLower) r.lower |= bit;
    if (f & kFlagN) r.digit |= bit;
    if (f & kFlagWs) r.space |= bit;
    if (f & kFlagNl) r.newline |= bit;
    if (c == '/') r.slash |= bit;
  }
  *m = r;
}

#if defined(__x86_64__) || defined(__i386__)

namespace {

// One 16-byte lane of ClassifySse2: the seven masks' 16 bits for x.
struct Lane16 {
  uint32_t upper, lower, digit, space, newline, slash, nonascii;
};

// x in [lo, lo + span] as unsigned bytes.
inline __m128i InRange16(__m128i x, uint8_t lo, uint8_t span) {
  const __m128i t = _mm_sub_epi8(x, _mm_set1_epi8(static_cast<char>(lo)));
  return _mm_cmpeq_epi8(_mm_min_epu8(t, _mm_set1_epi8(static_cast<char>(span))), t);
}

inline Lane16 Classify16(__m128i x) {
  Lane16 r;
  r.upper = static_cast<uint32_t>(_mm_movemask_epi8(InRange16(x, 'A', 25)));
  r.lower = static_cast<uint32_t>(_mm_movemask_epi8(InRange16(x, 'a', 25)));
  r.digit = static_cast<uint32_t>(_mm_movemask_epi8(InRange16(x, '0', 9)));
  const __m128i sp = _mm_or_si128(InRange16(x, 0x09, 4), _mm_cmpeq_epi8(x, _mm_set1_epi8(' ')));
  r.space = static_cast<uint32_t>(_mm_movemask_epi8(sp));
  const __m128i nl = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\n')),
                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\r')));
  r.newline = static_cast<uint32_t>(_mm_movemask_epi8(nl));
  r.slash = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('/'))));
  r.nonascii = static_cast<uint32_t>(_mm_movemask_epi8(x));
  return r;
}

__attribute__((target("avx2"))) inline __m256i InRange32(__m256i x, uint8_t lo, uint8_t span) {
  const __m256i t = _mm256_sub_epi8(x, _mm256_set1_epi8(static_cast<char>(lo)));
  return _mm256_cmpeq_epi8(_mm256_min_epu8(t, _mm256_set1_epi8(static_cast<char>(span))), t);
}

inline uint64_t Bits32(int mask) { return static_cast<uint32_t>(mask); }

}  // namespace

void ClassifySse2(const uint8_t* p, int n, BlockMasks* m) {
  alignas(16) uint8_t buf[64];
  const uint8_t* src = p;
  if (n < 64) {
    std::memset(buf, 0, sizeof(buf));
    std::memcpy(buf, p, static_cast<size_t>(n));
    src = buf;
  }
  BlockMasks r{};
  for (int k = 0; k < 4; ++k) {
    const Lane16 l = Classify16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16 * k)));
    const int s = 16 * k;
    r.upper |= uint64_t{l.upper} << s;
    r.lower |= uint64_t{l.lower} << s;
    r.digit |= uint64_t{l.digit} << s;
    r.space |= uint64_t{l.space} << s;
    r.newline |= uint64_t{l.newline} << s;
    r.slash |= uint64_t{l.slash} << s;
    r.nonascii |= uint64_t{l.nonascii} << s;
  }
  const uint64_t v = ValidBits(n);
  m->upper = r.upper & v;
  m->lower = r.lower & v;
  m->digit = r.digit & v;
  m->space = r.space & v;
  m->newline = r.newline & v;
  m->slash = r.slash & v;
  m->nonascii = r.nonascii & v;
}

__attribute__((target("avx2"))) void ClassifyAvx2(const uint8_t* p, int n, BlockMasks* m) {
  alignas(32) uint8_t buf[64];
  const uint8_t* src = p;
  if (n < 64) {
    std::memset(buf, 0, sizeof(buf));
    std::memcpy(buf, p, static_cast<size_t>(n));
    src = buf;
  }
  BlockMasks r{};
  for (int k = 0; k < 2; ++k) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * k));
    const int s = 32 * k;
    r.upper |= Bits32(_mm256_movemask_epi8(InRange32(x, 'A', 25))) << s;
    r.lower |= Bits32(_mm256_movemask_epi8(InRange32(x, 'a', 25))) << s;
    r.digit |= Bits32(_mm256_movemask_epi8(InRange32(x, '0', 9))) << s;
    const __m256i sp =
        _mm256_or_si256(InRange32(x, 0x09, 4), _mm256_cmpeq_epi8(x, _mm256_set1_epi8(' ')));
    r.space |= Bits32(_mm256_movemask_epi8(sp)) << s;
    const __m256i nl = _mm256_or_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('\n')),
                                       _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\r')));
    r.newline |= Bits32(_mm256_movemask_epi8(nl)) << s;
    r.slash |= Bits32(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('/')))) << s;
    r.nonascii |= Bits32(_mm256_movemask_epi8(x)) << s;
  }
  const uint64_t v = ValidBits(n);
  m->upper = r.upper & v;
  m->lower = r.lower & v;
  m->digit = r.digit & v;
  m->space = r.space & v;
  m->newline = r.newline & v;
  m->slash = r.slash & v;
  m->nonascii = r.nonascii & v;
}

#endif  // x86

PretokenizeMode CurrentPretokenizeMode() {
  return static_cast<PretokenizeMode>(ModeSlot().load(std::memory_order_relaxed));
}

PretokenizeMode SetPretokenizeMode(PretokenizeMode mode) {
  const PretokenizeMode capped = Cap(mode);
  ModeSlot().store(static_cast<int>(capped), std::memory_order_relaxed);
  return capped;
}

ClassifyFn ClassifierFor(PretokenizeMode mode) {
  switch (mode) {
    case PretokenizeMode::kReference:
      return nullptr;
    case PretokenizeMode::kMasksScalar:
      return &ClassifyScalar;
#if defined(__x86_64__) || defined(__i386__)
    case PretokenizeMode::kMasksSse2:
      return &ClassifySse2;
    case PretokenizeMode::kMasksAvx2:
      return &ClassifyAvx2;
#else
    case PretokenizeMode::kMasksSse2:
    case PretokenizeMode::kMasksAvx2:
      return &ClassifyScalar;
#endif
  }
  return nullptr;
}

}  // namespace modeenvoy::tokenizer_internal

namespace modeenvoy {

absl::StatusOr<std::string> SetPretokenizerMode(std::string_view mode) {
  tokenizer_internal::PretokenizeMode m;
  if (!tokenizer_internal::ParseMode(mode, &m)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pretokenizer mode: must be auto, avx2, sse2, scalar or off, got '",
        core_internal::ToAbsl(mode), "'"));
  }
  return std::string(tokenizer_internal::ModeName(tokenizer_internal::SetPretokenizeMode(m)));
}

std::string PretokenizerMode() {
  return tokenizer_internal::ModeName(tokenizer_internal::CurrentPretokenizeMode());
}

}  // namespace modeenvoy
