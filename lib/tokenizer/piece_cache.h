// lib/tokenizer/piece_cache.h: a per-thread, byte-bounded cache of the tokens of short pieces
// that are not single tokens (words outside the vocabulary recur: in prose and code about
// two thirds of such pieces repeat), so a repeated one costs a probe instead of a merge.
//
// Layout: sets of kWays 128-byte entries plus one 8-byte tag word per set (kWays 15-bit tags
// from the key's hash, a CLOCK reference bit each), so a miss usually reads one tag word and
// a hit one tag word and one entry. Replacement is CLOCK within a set: a hit sets the way's
// reference bit; an insert sweeps from the set's hand, clearing set bits, and takes the first
// empty way or the first way whose bit was clear. Entries carry the owning vocabulary's id
// (Vocab::id(), never reused), so encodings used alternately never mix.
//
// A cache never changes a result: an entry is only returned when its owner, length and bytes
// equal the piece's, and its tokens are the merge of exactly those bytes.
//
// The byte bound (SetPieceCacheBytes, default kDefaultPieceCacheBytes) is per thread and
// counts everything the cache allocates; it is read when a thread first encodes and again
// after every change (a thread whose bound changed drops its cache and starts a new one).
// Thread safety: each thread owns its cache; the bound is an atomic.
#ifndef MODEENVOY_LIB_TOKENIZER_PIECE_CACHE_H_
#define MODEENVOY_LIB_TOKENIZER_PIECE_CACHE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "lib/tokenizer/bpe.h"  // ArraySink
#include "lib/tokenizer/vocab.h"  // Load8, LoadUpTo8
#include "modeenvoy/export.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace modeenvoy::tokenizer_internal {

class MODEENVOY_EXPORT PieceCache {
 public:
  // Pieces of up to 54 bytes (18 CJK characters, 27 Cyrillic letters) and 16 tokens: in
  // scripts other than Latin most pieces that need merging are longer than a cache line.
  static constexpr size_t kMaxBytes = 54;
  static constexpr size_t kMaxTokens = 16;
  static constexpr size_t kWays = 4;
  // Cached pieces are encoded into an ArraySink.
  static_assert(kMaxBytes <= ArraySink::kMaxPiece);

  // A cache of at most `bytes` bytes (as many sets as fit; fewer than one set's worth means
  // no entries: every Find misses, Insert does nothing).
  explicit PieceCache(size_t bytes);

  // The cache of the calling thread, or nullptr if the bound is below one set (0 disables).
  static PieceCache* ForThread();

  // a[0, n) == b[0, n) for n <= kMaxBytes, inline: a libc memcmp call per hit cost 7% of
  // CountOrdinary's cycles on English prose (perf, o200k_base).
  static bool BytesEqual(const uint8_t* a, const uint8_t* b, size_t n) {
    if (n < 8) return LoadUpTo8(a, n) == LoadUpTo8(b, n);
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (Load8(a + i) != Load8(b + i)) return false;
    }
    return Load8(a + n - 8) == Load8(b + n - 8);
  }

  // Pointer to the cached tokens of [p, p+n) and their number, or nullptr.
  const uint32_t* Find(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n,
                       size_t* count) {
    if (sets_ == 0) return nullptr;
    const size_t set = SetOf(hash);
    const uint16_t tag = Tag(hash);
    uint64_t tags = tags_[set];
    for (size_t w = 0; w < kWays; ++w) {
      if ((static_cast<uint16_t>(tags >> (16 * w)) & kTagMask) != tag) continue;
      const Entry& e = entries_[set * kWays + w];
      if (e.owner != owner || e.len != n || !BytesEqual(e.bytes, p, n)) continue;
      tags |= uint64_t{kRefBit} << (16 * w);
      tags_[set] = tags;
      ++stats_.hits;
      *count = e.count;
      return e.tokens;
    }
    ++stats_.misses;
    return nullptr;
  }

  // Remembers the tokens of [p, p+n). Pieces longer than kMaxBytes or of more than
  // kMaxTokens tokens are not cached.
  void Insert(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n, const uint32_t* tokens,
              size_t count);

  size_t MemoryUsage() const { return MemoryFor(sets_); }
  const PieceCacheStats& stats() const { return stats_; }
  void ResetStats() { stats_ = PieceCacheStats{}; }

 private:
  static constexpr uint16_t kTagMask = 0x7fff;
  static constexpr uint16_t kRefBit = 0x8000;
  // Tag 0 marks an empty way, so real tags are 1..0x7fff.
  static uint16_t Tag(uint64_t hash) {
    const uint16_t t = static_cast<uint16_t>(hash >> 48) & kTagMask;
    return t == 0 ? 1 : t;
  }
  // Bits 16..47 of the hash scaled to [0, sets_) (the tag takes bits 48..62), so any
  // number of sets works and the bound is used whole.
  size_t SetOf(uint64_t hash) const {
    return static_cast<size_t>(((hash >> 16) & 0xffffffffu) * sets_ >> 32);
  }
  static size_t MemoryFor(size_t sets) {
    return sizeof(PieceCache) + sets * (kWays * sizeof(Entry) + sizeof(uint64_t) + 1);
  }

  struct alignas(64) Entry {
    uint64_t owner = 0;
    uint8_t len = 0;
    uint8_t count = 0;
    uint8_t bytes[kMaxBytes];
    uint32_t tokens[kMaxTokens];
  };
  static_assert(sizeof(Entry) == 128);

  size_t sets_ = 0;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<uint64_t[]> tags_;
  std::unique_ptr<uint8_t[]> hands_;
  PieceCacheStats stats_;
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_PIECE_CACHE_H_
