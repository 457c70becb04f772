// lib/tokenizer/vocab.h: the mergeable ranks of an encoding, byte string <-> rank.
//
// One immutable Vocab per loaded encoding, shared by all threads. Lookups of byte strings
// are the hot loop of BPE. By key length: 1 and 2 bytes index direct arrays; 3 and 4 bytes
// an open-addressing table of 8-byte slots; 5 to 8 bytes (most whole-word pieces of prose)
// an open-addressing table of 12-byte slots holding the whole key, hashed with one
// multiply; longer keys the main open-addressing table, whose 16-byte slots carry the first
// eight key bytes inline so that most mismatches compare without touching the token byte
// pool. The three hash tables are sized to their load factor (not to a power of two) and
// index by multiply-shift range reduction of the hash's top 32 bits (docs/tokenizer.md).
#ifndef MODEENVOY_LIB_TOKENIZER_VOCAB_H_
#define MODEENVOY_LIB_TOKENIZER_VOCAB_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "modeenvoy/export.h"

namespace modeenvoy::tokenizer_internal {

inline constexpr uint32_t kNoRank = 0xffffffffu;

// Packs len (<= 8) bytes at p little-endian into a uint64 without reading outside [p, p+len).
inline uint64_t LoadUpTo8(const uint8_t* p, size_t len) {
  if (len >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + len - 4, 4);
    return uint64_t{lo} | (uint64_t{hi} << ((len - 4) * 8));
  }
  if (len == 0) return 0;
  return uint64_t{p[0]} | (uint64_t{p[len >> 1]} << ((len >> 1) * 8)) |
         (uint64_t{p[len - 1]} << ((len - 1) * 8));
}

inline uint64_t Load8(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline uint64_t Mix64(uint64_t h) {
  h ^= h >> 32;
  h *= 0xd6e8feb86659fd93ull;
  h ^= h >> 32;
  return h;
}

// MODEENVOY_EXPORT here: private to lib/, but exported from a shared build for the tests,
// benchmarks and fuzzers.
// Reads a whole regular file. Errors: kNotFound if it does not exist, kUnavailable if it
// cannot be read or is not a regular file.
MODEENVOY_EXPORT absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

class MODEENVOY_EXPORT Vocab {
 public:
  // Parses the .tiktoken text format: one "base64(token) SP rank" per line. `source` names
  // the data in error messages. Errors: kDataLoss naming the line for malformed lines,
  // duplicate tokens or ranks, or a missing single-byte token.
  static absl::StatusOr<std::unique_ptr<Vocab>> Parse(std::string_view contents,
                                                      std::string_view source);
  // Builds from (rank, token bytes) pairs, as tiktoken's mergeable_ranks. `source` names the
  // data in error messages. Errors: kDataLoss for an empty list, a rank of 2^24 or more, a
  // token of 0 or too many bytes, duplicate tokens or ranks, or a missing single-byte token.
  static absl::StatusOr<std::unique_ptr<Vocab>> FromRanks(
      std::vector<std::pair<uint32_t, std::string>> entries, std::string_view source);
  // Reads and parses the .tiktoken file at `path` (ReadWholeFile's errors, then Parse's).
  static absl::StatusOr<std::unique_ptr<Vocab>> ParseFile(const std::string& path);

  // A key's hash and inline head, computed once so a lookup can be prefetched.
  struct Key {
    uint64_t head;
    uint64_t hash;
  };
  // Keys of up to 8 bytes hash with one multiply (the tables index by the product's top
  // bits; the fold of the top half into the bottom one gives the piece cache, which sets by
  // bits 16..47, bits that depend on every key byte).
  static Key MakeKey(const uint8_t* p, size_t len) {
    if (len <= 8) {
      const uint64_t head = LoadUpTo8(p, len);
      const uint64_t h = (head ^ len) * 0x9e3779b97f4a7c15ull;
      return {head, h ^ (h >> 32)};
    }
    const uint64_t head = Load8(p);
    return {head, HashLong(p, len, head)};
  }
  // MakeKey(p, len) for 1 <= len <= 8 when the 8 bytes at p are readable (p + 8 <= the
  // end of the text): one load masked to the piece instead of LoadUpTo8's two.
  static Key MakeKeyReadable8(const uint8_t* p, size_t len) {
    const uint64_t head = Load8(p) & (~uint64_t{0} >> ((8 - len) * 8));
    const uint64_t h = (head ^ len) * 0x9e3779b97f4a7c15ull;
    return {head, h ^ (h >> 32)};
  }
  // Starts loading the slot FindKeyed(p, len, key) reads first (len >= 2).
  void PrefetchKeyed(const uint8_t* p, size_t len, const Key& key) const {
    if (len == 2) {
      __builtin_prefetch(&pair_rank_[(size_t{p[0]} << 8) | p[1]]);
    } else if (len <= 4) {
      __builtin_prefetch(&short_slots_[Reduce(key.hash, short_cap_)]);
    } else {
      Prefetch(key, len);
    }
  }
  // Find(p, len) with key = MakeKey(p, len) already computed (len >= 1): the 3-4 byte
  // table indexes by the same product as MakeKey's (the top 32 bits of `hash` are those of
  // (key ^ len) * phi), so no length class hashes twice.
  [[gnu::always_inline]] uint32_t FindKeyed(const uint8_t* p, size_t len, const Key& key) const {
    if (len > 4) return Find(p, len, key);
    if (len == 2) return PairRank(p[0], p[1]);
    if (len == 1) return byte_rank_[p[0]];
    const uint32_t k = static_cast<uint32_t>(key.head);
    const uint32_t tag = static_cast<uint32_t>(len) << 24;
    size_t i = Reduce(key.hash, short_cap_);
    for (;;) {
      const ShortSlot& s = short_slots_[i];
      if (s.key == k && (s.len_rank & 0xff000000u) == tag) return s.len_rank & 0x00ffffffu;
      if (s.len_rank == 0) return kNoRank;
      if (++i == short_cap_) i = 0;
    }
  }
  // Starts loading the slot Find(p, len, key) probes first (len >= 5).
  void Prefetch(const Key& key, size_t len) const {
    if (len <= 8) {
      __builtin_prefetch(&mid_slots_[Reduce(key.hash, mid_cap_)]);
    } else {
      __builtin_prefetch(&slots_[Reduce(key.hash, cap_)]);
    }
  }
  // Starts loading what FindShort(p, len) reads first (1 <= len <= 4).
  void PrefetchShort(const uint8_t* p, size_t len) const {
    if (len == 2) {
      __builtin_prefetch(&pair_rank_[(size_t{p[0]} << 8) | p[1]]);
    } else if (len > 2) {
      __builtin_prefetch(
          &short_slots_[ShortSlotIndex(static_cast<uint32_t>(LoadUpTo8(p, len)), len)]);
    }
  }

  // Rank of the byte string [p, p+len), or kNoRank. REQUIRES: len >= 1.
  // Keys of 2 to 4 bytes, the bulk of the lookups while merging, are answered from small
  // tables that stay in L2 cache; longer ones from the main table.
  uint32_t Find(const uint8_t* p, size_t len) const {
    if (len <= 4) return FindShort(p, len);
    return Find(p, len, MakeKey(p, len));
  }
  [[gnu::always_inline]] uint32_t FindShort(const uint8_t* p, size_t len) const {
    if (len == 2) return PairRank(p[0], p[1]);
    if (len == 1) return byte_rank_[p[0]];
    const uint32_t key = static_cast<uint32_t>(LoadUpTo8(p, len));
    const uint32_t tag = static_cast<uint32_t>(len) << 24;
    size_t i = ShortSlotIndex(key, len);
    for (;;) {
      const ShortSlot& s = short_slots_[i];
      if (s.key == key && (s.len_rank & 0xff000000u) == tag) return s.len_rank & 0x00ffffffu;
      if (s.len_rank == 0) return kNoRank;
      if (++i == short_cap_) i = 0;
    }
  }
  // Two independent lookups with overlapping memory latency: *out_a = Find(a, a_len) if
  // do_a (else kNoRank), and *out_b = Find(b, b_len) if do_b.
  void Find2(bool do_a, const uint8_t* a, size_t a_len, uint32_t* out_a, bool do_b,
             const uint8_t* b, size_t b_len, uint32_t* out_b) const {
    Key ka{}, kb{};
    const bool long_a = do_a && a_len > 4, long_b = do_b && b_len > 4;
    if (long_a) {
      ka = MakeKey(a, a_len);
      Prefetch(ka, a_len);
    }
    if (long_b) {
      kb = MakeKey(b, b_len);
      Prefetch(kb, b_len);
    }
    *out_a = !do_a ? kNoRank : long_a ? Find(a, a_len, ka) : FindShort(a, a_len);
    if (do_b) *out_b = long_b ? Find(b, b_len, kb) : FindShort(b, b_len);
  }

  // Same as Find for len >= 5 (the mid and main tables hold only those); `key` is
  // MakeKey(p, len).
  [[gnu::always_inline]] uint32_t Find(const uint8_t* p, size_t len, const Key& key) const {
    if (len <= 8) return FindMid(len, key);
    size_t i = Reduce(key.hash, cap_);
    for (;;) {
      const Slot& s = slots_[i];
      if ((s.len_rank >> 24) == LengthTag(len) && s.head == key.head && TailEquals(s, p, len)) {
        return s.len_rank & 0x00ffffffu;
      }
      if (s.len_rank == 0) return kNoRank;
      if (++i == cap_) i = 0;
    }
  }
  // Find for 5 <= len <= 8: the whole key is in the slot, one compare of 8 bytes and one of
  // the length.
  [[gnu::always_inline]] uint32_t FindMid(size_t len, const Key& key) const {
    const uint32_t tag = static_cast<uint32_t>(len) << 24;
    size_t i = Reduce(key.hash, mid_cap_);
    for (;;) {
      const MidSlot& s = mid_slots_[i];
      uint64_t k;
      std::memcpy(&k, s.key, 8);
      if (k == key.head && (s.len_rank & 0xff000000u) == tag) return s.len_rank & 0x00ffffffu;
      if (s.len_rank == 0) return kNoRank;
      if (++i == mid_cap_) i = 0;
    }
  }

  uint32_t ByteRank(uint8_t b) const { return byte_rank_[b]; }
  uint32_t PairRank(uint8_t a, uint8_t b) const { return pair_rank_[(size_t{a} << 8) | b]; }

  // Bytes of `rank`, or an empty view if no token has that rank.
  std::string_view Bytes(uint32_t rank) const {
    if (rank >= num_slots_by_rank()) return {};
    return std::string_view(pool_.data() + offsets_[rank], offsets_[rank + 1] - offsets_[rank]);
  }
  // Largest rank in the file (ranks may have gaps, as p50k_base's 50256).
  uint32_t max_rank() const { return static_cast<uint32_t>(offsets_.size()) - 2; }
  size_t size() const { return size_; }
  // Unique per Vocab in this process (never 0, never reused): per-thread memos key on it,
  // since a freed Vocab's address can be reused by the next one.
  uint64_t id() const { return id_; }
  size_t MemoryUsage() const;

 private:
  struct Slot {
    uint64_t head;      // first 8 bytes, little-endian
    uint32_t offset;    // of the token's bytes in pool_ (no detour through offsets_)
    uint32_t len_rank;  // LengthTag(len) << 24 | rank; 0 = empty slot (len >= 9 here)
  };
  // 12 bytes, 4-byte aligned: the key as two words so the slot array packs without padding.
  struct MidSlot {
    uint32_t key[2];    // the 5 to 8 bytes, little-endian, zero padded
    uint32_t len_rank;  // len << 24 | rank; 0 = empty slot
  };
  // Multiply-shift range reduction: maps the hash's top 32 bits onto [0, cap).
  static size_t Reduce(uint64_t hash, size_t cap) {
    return static_cast<size_t>(((hash >> 32) * cap) >> 32);
  }
  // A key's length as stored in a slot: lengths from 255 on share the tag 255 (the exact
  // length is then checked in offsets_).
  static uint32_t LengthTag(size_t len) { return len < 255 ? static_cast<uint32_t>(len) : 255; }
  static uint64_t HashLong(const uint8_t* p, size_t len, uint64_t head) {
    uint64_t h = (head ^ (uint64_t{len} << 56)) * 0x9e3779b97f4a7c15ull;
    size_t i = 8;
    for (; i + 8 <= len; i += 8) h = (Mix64(h) ^ Load8(p + i)) * 0x9e3779b97f4a7c15ull;
    if (i < len) h = (Mix64(h) ^ Load8(p + len - 8)) * 0x9e3779b97f4a7c15ull;
    return Mix64(h);
  }
  // Bytes 8..len of the token in slot s equal those of p (REQUIRES: len > 8, and the slot's
  // length tag matches len).
  bool TailEquals(const Slot& s, const uint8_t* p, size_t len) const {
    if (len >= 255) {
      const uint32_t rank = s.len_rank & 0x00ffffffu;
      if (offsets_[rank + 1] - offsets_[rank] != len) return false;
    }
    const auto* t = reinterpret_cast<const uint8_t*>(pool_.data()) + s.offset;
    for (size_t i = 8; i + 8 < len; i += 8) {
      if (Load8(t + i) != Load8(p + i)) return false;
    }
    return Load8(t + len - 8) == Load8(p + len - 8);
  }
  uint32_t num_slots_by_rank() const { return static_cast<uint32_t>(offsets_.size()) - 1; }
  // Places token `rank` (of 5 bytes or more, not yet present; key = MakeKey of its bytes)
  // in the mid or main table.
  void Insert(uint32_t rank, const Key& key);

  size_t ShortSlotIndex(uint32_t key, size_t len) const {
    return Reduce((uint64_t{key} ^ len) * 0x9e3779b97f4a7c15ull, short_cap_);
  }

  struct ShortSlot {
    uint32_t key;       // the 3 or 4 bytes, little-endian
    uint32_t len_rank;  // len << 24 | rank; 0 = empty slot
  };
  std::vector<ShortSlot> short_slots_;
  size_t short_cap_ = 0;
  std::vector<MidSlot> mid_slots_;
  size_t mid_cap_ = 0;
  std::vector<Slot> slots_;
  size_t cap_ = 0;
  std::string pool_;               // token bytes in rank order
  std::vector<uint32_t> offsets_;  // offsets_[r]..offsets_[r+1] in pool_; size max_rank + 2
  size_t size_ = 0;
  uint64_t id_ = 0;
  uint32_t byte_rank_[256];
  std::vector<uint32_t> pair_rank_;  // 65536 entries: rank of every two-byte string
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_VOCAB_H_
