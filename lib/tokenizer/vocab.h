// lib/tokenizer/vocab.h: the mergeable ranks of an encoding, byte string <-> rank.
//
// One immutable Vocab per loaded encoding, shared by all threads. Lookups of byte strings
// are the hot loop of BPE, so the table is an open-addressing hash whose 16-byte slots carry
// the first eight bytes of the key inline: keys of up to 8 bytes (nearly every lookup during
// a merge) are compared without touching the token byte pool.
#ifndef MODEENVOY_LIB_TOKENIZER_VOCAB_H_
#define MODEENVOY_LIB_TOKENIZER_VOCAB_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

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

class Vocab {
 public:
  // Parses the .tiktoken text format: one "base64(token) SP rank" per line. `source` names
  // the data in error messages. Errors: kDataLoss naming the line for malformed lines,
  // duplicate tokens or ranks, or a missing single-byte token.
  static absl::StatusOr<std::unique_ptr<Vocab>> Parse(std::string_view contents,
                                                      std::string_view source);

  // Rank of the byte string [p, p+len), or kNoRank. REQUIRES: len >= 1.
  uint32_t Find(const uint8_t* p, size_t len) const {
    uint64_t head, h;
    if (len <= 8) {
      head = LoadUpTo8(p, len);
      h = Mix64((head ^ (uint64_t{len} << 56)) * 0x9e3779b97f4a7c15ull);
    } else {
      head = Load8(p);
      h = HashLong(p, len, head);
    }
    size_t i = h >> shift_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.len == len && s.head == head &&
          (len <= 8 || std::memcmp(pool_.data() + offsets_[s.rank] + 8, p + 8, len - 8) == 0)) {
        return s.rank;
      }
      if (s.len == 0) return kNoRank;
      i = (i + 1) & mask_;
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
  size_t MemoryUsage() const;

 private:
  struct Slot {
    uint64_t head;  // first min(len, 8) bytes, little-endian, zero padded
    uint32_t len;   // 0 = empty slot
    uint32_t rank;
  };
  static uint64_t HashLong(const uint8_t* p, size_t len, uint64_t head) {
    uint64_t h = (head ^ (uint64_t{len} << 56)) * 0x9e3779b97f4a7c15ull;
    size_t i = 8;
    for (; i + 8 <= len; i += 8) h = (Mix64(h) ^ Load8(p + i)) * 0x9e3779b97f4a7c15ull;
    if (i < len) h = (Mix64(h) ^ Load8(p + len - 8)) * 0x9e3779b97f4a7c15ull;
    return Mix64(h);
  }
  uint32_t num_slots_by_rank() const { return static_cast<uint32_t>(offsets_.size()) - 1; }
  void Insert(uint32_t rank);

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  std::string pool_;               // token bytes in rank order
  std::vector<uint32_t> offsets_;  // offsets_[r]..offsets_[r+1] in pool_; size max_rank + 2
  size_t size_ = 0;
  uint32_t byte_rank_[256];
  std::vector<uint32_t> pair_rank_;  // 65536 entries: rank of every two-byte string
};

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_VOCAB_H_
