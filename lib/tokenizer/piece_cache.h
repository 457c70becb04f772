// lib/tokenizer/piece_cache.h: a per-thread, byte-bounded cache of the tokens of short pieces
// that are not single tokens (words outside the vocabulary recur: in prose and code about
// two thirds of such pieces repeat), so a repeated one costs a probe instead of a merge.
//
// Layout (PieceCacheTable): sets of four entries with a tag word per set, two candidate sets
// per piece, CLOCK replacement within a set; two tables, of 64-byte and 128-byte entries,
// so a short piece with few tokens (most of them) takes half the memory. Entries carry the
// owning vocabulary's id (Vocab::id(), never reused), so encodings used alternately never mix.
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

// One table of the cache: sets of kWays entries of kEntryBytes bytes plus one 8-byte tag word
// per set (kWays 15-bit tags from the key's hash, a CLOCK reference bit each), so a miss
// usually reads one tag word per candidate set and a hit one tag word and one entry. Each
// piece has two candidate sets (Find, Insert). Replacement is CLOCK within a set: a hit
// sets the way's reference bit; an insert sweeps from the set's hand, clearing set bits,
// and takes the first empty way or the first way whose bit was clear.
// An entry holds its owner, length and token count, the piece's bytes from offset 10 and its
// tokens in the entry's last 4 × count bytes (4-aligned), so it holds any piece whose
// length + 4 × tokens is at most kPayload.
template <size_t kEntryBytes>
class PieceCacheTable {
 public:
  static constexpr size_t kWays = 4;
  static constexpr size_t kHeader = 10;  // owner, len, count
  static constexpr size_t kPayload = kEntryBytes - kHeader;

  static constexpr size_t BytesPerSet() { return kWays * sizeof(Entry) + sizeof(uint64_t) + 1; }

  void Allocate(size_t sets) {
    sets_ = sets;
    if (sets == 0) return;
    entries_.reset(new Entry[sets * kWays]);
    tags_.reset(new uint64_t[sets]());
    hands_.reset(new uint8_t[sets]());
  }
  size_t sets() const { return sets_; }
  size_t MemoryUsage() const { return sets_ * BytesPerSet(); }

  // a[0, n) == b[0, n) for n <= 64, inline: a libc memcmp call per hit cost 7% of
  // CountOrdinary's cycles on English prose (perf, o200k_base).
  static bool BytesEqual(const uint8_t* a, const uint8_t* b, size_t n) {
    if (n < 8) return LoadUpTo8(a, n) == LoadUpTo8(b, n);
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (Load8(a + i) != Load8(b + i)) return false;
    }
    return Load8(a + n - 8) == Load8(b + n - 8);
  }

  // Each piece has two candidate sets (from two parts of its hash); a lookup reads the
  // first set's tag word and, on a miss there, the second's.
  const uint32_t* Find(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n,
                       size_t* count) {
    if (sets_ == 0) return nullptr;
    const uint16_t tag = Tag(hash);
    const size_t first = SetOf(hash);
    if (const uint32_t* t = FindIn(first, tag, owner, p, n, count)) return t;
    const size_t second = SecondSetOf(hash);
    if (second == first) return nullptr;
    return FindIn(second, tag, owner, p, n, count);
  }

  // REQUIRES: n + 4 * count <= kPayload. Returns whether an entry was evicted.
  bool Insert(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n, const uint32_t* tokens,
              size_t count) {
    // Of the two candidate sets, one with an empty way (the first if both), else one with
    // an unreferenced way (likewise), else the first ("two choices": sets fill evenly, so
    // the cache fills to its bound before anything is evicted).
    size_t set = SetOf(hash);
    const size_t second = SecondSetOf(hash);
    if (second != set) {
      const uint64_t a = tags_[set], b = tags_[second];
      if (!HasEmpty(a) && (HasEmpty(b) || (!HasUnreferenced(a) && HasUnreferenced(b)))) {
        set = second;
      }
    }
    uint64_t tags = tags_[set];
    size_t way = hands_[set];
    bool evicted = false;
    // CLOCK: at most one sweep clears every reference bit, so the second finds a victim.
    for (;; way = (way + 1) % kWays) {
      const uint16_t t = static_cast<uint16_t>(tags >> (16 * way));
      if (t == 0) break;  // empty
      if (!(t & kRefBit)) {
        evicted = true;
        break;
      }
      tags &= ~(uint64_t{kRefBit} << (16 * way));
    }
    hands_[set] = static_cast<uint8_t>((way + 1) % kWays);
    tags &= ~(uint64_t{0xffff} << (16 * way));
    tags |= uint64_t{Tag(hash)} << (16 * way);
    tags_[set] = tags;
    Entry& e = entries_[set * kWays + way];
    e.owner = owner;
    e.len = static_cast<uint8_t>(n);
    e.count = static_cast<uint8_t>(count);
    std::memcpy(e.bytes(), p, n);
    std::memcpy(e.words + (kWords - count), tokens, count * sizeof(uint32_t));
    return evicted;
  }

 private:
  static constexpr uint16_t kTagMask = 0x7fff;
  static constexpr uint16_t kRefBit = 0x8000;
  // Tag 0 marks an empty way, so real tags are 1..0x7fff.
  static uint16_t Tag(uint64_t hash) {
    const uint16_t t = static_cast<uint16_t>(hash >> 48) & kTagMask;
    return t == 0 ? 1 : t;
  }
  // Bits 16..47 of the hash scaled to [0, sets_) (the tag takes bits 48..62), so any
  // number of sets works and the bound is used whole; the second set from bits 0..31.
  size_t SetOf(uint64_t hash) const {
    return static_cast<size_t>(((hash >> 16) & 0xffffffffu) * sets_ >> 32);
  }
  size_t SecondSetOf(uint64_t hash) const {
    return static_cast<size_t>((hash & 0xffffffffu) * sets_ >> 32);
  }
  // Whether some way of a set with these tags is empty (tag 0) / not referenced since the
  // hand last passed (an empty way counts too).
  static bool HasEmpty(uint64_t tags) {
    for (size_t w = 0; w < kWays; ++w) {
      if (static_cast<uint16_t>(tags >> (16 * w)) == 0) return true;
    }
    return false;
  }
  static bool HasUnreferenced(uint64_t tags) {
    for (size_t w = 0; w < kWays; ++w) {
      if (!(static_cast<uint16_t>(tags >> (16 * w)) & kRefBit)) return true;
    }
    return false;
  }
  const uint32_t* FindIn(size_t set, uint16_t tag, uint64_t owner, const uint8_t* p, size_t n,
                         size_t* count) {
    uint64_t tags = tags_[set];
    for (size_t w = 0; w < kWays; ++w) {
      if ((static_cast<uint16_t>(tags >> (16 * w)) & kTagMask) != tag) continue;
      const Entry& e = entries_[set * kWays + w];
      if (e.owner != owner || e.len != n || !BytesEqual(e.bytes(), p, n)) continue;
      tags |= uint64_t{kRefBit} << (16 * w);
      tags_[set] = tags;
      *count = e.count;
      return e.words + (kWords - e.count);
    }
    return nullptr;
  }

  static constexpr size_t kWords = (kEntryBytes - 12) / 4;
  // No initializers: an entry is only read after Insert wrote it (its way's tag is 0 until
  // then), so allocating a table touches none of its pages.
  struct alignas(64) Entry {
    uint64_t owner;
    uint8_t len;
    uint8_t count;
    uint8_t pad[2];
    uint32_t words[kWords];  // bytes from offset 10 (over pad), tokens at the end
    uint8_t* bytes() { return reinterpret_cast<uint8_t*>(this) + kHeader; }
    const uint8_t* bytes() const { return reinterpret_cast<const uint8_t*>(this) + kHeader; }
  };
  static_assert(sizeof(Entry) == kEntryBytes);

  size_t sets_ = 0;
  std::unique_ptr<Entry[]> entries_;
  std::unique_ptr<uint64_t[]> tags_;
  std::unique_ptr<uint8_t[]> hands_;
};

// The cache: a table of 64-byte entries for pieces whose length + 4 × tokens is at most 54
// (nine in ten of the multi-token pieces of natural text in 18 languages; all but a few of
// English prose and code), and a table of 128-byte entries, a quarter of the bound, for the
// rest. Sizing entries to their contents doubles the pieces a bound holds.
class MODEENVOY_EXPORT PieceCache {
 public:
  // Pieces of up to 54 bytes (18 CJK characters, 27 Cyrillic letters) and 16 tokens: in
  // scripts other than Latin most pieces that need merging are longer than a cache line.
  static constexpr size_t kMaxBytes = 54;
  static constexpr size_t kMaxTokens = 16;
  using SmallTable = PieceCacheTable<64>;
  using LargeTable = PieceCacheTable<128>;
  static_assert(kMaxBytes + 4 * kMaxTokens <= LargeTable::kPayload);
  // Cached pieces are encoded into an ArraySink.
  static_assert(kMaxBytes <= ArraySink::kMaxPiece);

  // A cache of at most `bytes` bytes: a quarter (as many sets as fit) for large entries,
  // the rest for small ones (fewer than one small set's worth means no entries: every Find
  // misses, Insert does nothing).
  explicit PieceCache(size_t bytes);

  // The cache of the calling thread, or nullptr if the bound is below one set (0 disables).
  static PieceCache* ForThread();

  static bool BytesEqual(const uint8_t* a, const uint8_t* b, size_t n) {
    return SmallTable::BytesEqual(a, b, n);
  }

  // Pointer to the cached tokens of [p, p+n) and their number, or nullptr.
  const uint32_t* Find(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n,
                       size_t* count) {
    // A piece of n bytes is small if it has at most (54 - n) / 4 tokens: look there first
    // (where nearly all are) when it can be.
    if (n + 4 <= SmallTable::kPayload) {
      if (const uint32_t* t = small_.Find(owner, hash, p, n, count)) {
        ++stats_.hits;
        return t;
      }
    }
    if (const uint32_t* t = large_.Find(owner, hash, p, n, count)) {
      ++stats_.hits;
      return t;
    }
    ++stats_.misses;
    return nullptr;
  }

  // Remembers the tokens of [p, p+n). Pieces longer than kMaxBytes or of more than
  // kMaxTokens tokens are not cached.
  void Insert(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n, const uint32_t* tokens,
              size_t count);

  size_t MemoryUsage() const {
    return sizeof(PieceCache) + small_.MemoryUsage() + large_.MemoryUsage();
  }
  const PieceCacheStats& stats() const { return stats_; }
  void ResetStats() { stats_ = PieceCacheStats{}; }

 private:
  SmallTable small_;
  LargeTable large_;
  PieceCacheStats stats_;
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_PIECE_CACHE_H_
