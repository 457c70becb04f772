// lib/tokenizer/backtrack.h: byte pair encoding of one piece in linear time, by backtracking
// over longest-prefix tokens instead of simulating the merges.
//
// This computes exactly what tiktoken's merge loop computes (bpe.h has that loop), using the
// idea of github/rust-gems' `bpe` crate (Hendrik van Antwerpen, Alexander Neubeck): walk the
// piece left to right, each time taking the longest token that is a prefix of the rest, and
// accept it only if it is "compatible" with the token before it; otherwise try the next
// shorter prefix token, and when none is left, step back one token. Three facts carry it:
//  1. A token sequence in which every adjacent pair (a, b) is compatible, meaning BPE of
//     bytes(a) + bytes(b) alone is [a, b], is the BPE encoding of its text, and the only
//     such sequence. So the search returns the BPE encoding, and any prefix of the sequence
//     it has built is the BPE encoding of that prefix of the text.
//  2. Hence whether position i can be a token boundary does not depend on how the search got
//     there: a dead position is remembered in a bit set and never retried (linear time).
//  3. Compatibility needs no simulation. Merges inside one token's bytes happen in rank order
//     (a token's rank exceeds its parts'), so replaying the merges that built a and b in
//     reverse, always undoing the later one, visits every pair of parts that ever stood on
//     both sides of the boundary; a pair whose concatenation is a token that ranks below the
//     merge that ended it would have merged across the boundary, so (a, b) is incompatible.
//     Which two parts a token was built from (its "split") is fixed per token and found once
//     at load: the last merge of BPE over the token's own bytes.
// Tokens that BPE cannot produce from their own bytes ("unreachable"; none in the published
// files) are left out of the prefix search: tiktoken can only emit them as a whole piece.
#ifndef MODEENVOY_LIB_TOKENIZER_BACKTRACK_H_
#define MODEENVOY_LIB_TOKENIZER_BACKTRACK_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <utility>
#include <vector>

#include "lib/tokenizer/vocab.h"
#include "modeenvoy/export.h"

namespace modeenvoy::tokenizer_internal {

// MODEENVOY_EXPORT here: private to lib/, but exported from a shared build for the tests,
// benchmarks and fuzzers.
class MODEENVOY_EXPORT BacktrackEncoder {
 public:
  // Builds the prefix trie and the token splits of `vocab`, which must outlive the encoder.
  static std::unique_ptr<BacktrackEncoder> Build(const Vocab& vocab);

  // Whether Encode gives tiktoken's result for this vocabulary (else the caller must use the
  // merge loop, MergeSmall and MergeLarge). The argument above needs
  // every token that tiktoken's loop can build from its own bytes to be built from two
  // lower-ranked parts. Published vocabularies are; a rank file where, say, "yz" ranks above
  // "xyz" is not (tiktoken builds xyz by merging y+z first, then x+yz): Build finds such a
  // token by running the merge loop on every token it could not split. Also not usable:
  // ranks above kMaxRank.
  bool usable() const { return usable_; }

  // The largest rank the encoder serves: a rank file with a higher rank (or a trie of over
  // two million slots; o200k_base needs 422 thousand) is not usable().
  static constexpr uint32_t kMaxRank = (uint32_t{1} << 22) - 2;

  // Encodes the piece [p, p+n) (REQUIRES: n >= 1, usable()) into sink, as tiktoken's byte
  // pair merge.
  template <class Sink>
  void Encode(const uint8_t* p, size_t n, Sink& sink) const;

  // Encodes a piece of any length (REQUIRES: n >= 1, usable()) into *out and, if steps is not
  // null, adds the number of candidate tokens tried (each a bounded amount of work: one
  // compatibility check, and a prefix search when accepted) to *steps: tests use it to show
  // linear work.
  void EncodeLong(const uint8_t* p, size_t n, std::vector<uint32_t>* out, size_t* steps) const;

  // For tests and the load report.
  size_t unreachable_tokens() const { return unreachable_; }
  // The two tokens `rank` was merged from; {rank, rank} for single bytes and unreachable
  // tokens.
  std::pair<uint32_t, uint32_t> Split(uint32_t rank) const {
    return {info_[rank].left, info_[rank].right};
  }
  size_t MemoryUsage() const;

 private:
  explicit BacktrackEncoder(const Vocab& vocab) : vocab_(vocab) {}

  // A double-array trie over the bytes of the reachable tokens: the child of node s on byte c
  // is t = base + c if nodes[t].check == s. Free slots have check == kFree. Build lays it out
  // in this form, then packs each slot into the 8 bytes of trie_ (check, base and rank in
  // 21 + 21 + 22 bits): the walk's dependent loads then share cache lines two thirds more
  // often than with 12-byte slots.
  struct Node {
    uint32_t check;
    uint32_t base;
    uint32_t rank;  // the reachable token ending here, or kNoRank
  };
  static constexpr uint32_t kFree = 0xffffffffu;
  static constexpr int kCheckBits = 21, kBaseBits = 21;
  static constexpr uint64_t kCheckMask = (uint64_t{1} << kCheckBits) - 1;
  static constexpr uint64_t kBaseMask = (uint64_t{1} << kBaseBits) - 1;
  static constexpr uint32_t kTrieNoRank = (uint32_t{1} << (64 - kCheckBits - kBaseBits)) - 1;
  static_assert(kMaxRank + 1 == kTrieNoRank);
  // Slots (not counting the two reserved check values) the packed trie can address.
  static constexpr size_t kMaxTrieSlots = kCheckMask - 1;

  struct TokenInfo {
    uint32_t left;    // split: bytes(left) + bytes(right) == bytes(rank)
    uint32_t right;
    uint32_t prefix;  // longest reachable token that is a proper prefix, or kNoRank
    uint32_t len;     // bytes
    // Bit (c & 63) is set if some token is this one's bytes followed by byte c (and maybe
    // more), bit PairBit(c, d) if some token is this one's bytes followed by c, d and maybe
    // more: a boundary pair (x, y) can only be a token if x's masks have y's first bytes.
    // (Two thirds of the probes a compatibility check would make end here.)
    uint64_t next_bytes;
    uint64_t next_pairs;
  };
  static uint64_t PairBit(uint8_t c, uint8_t d) {
    return uint64_t{1} << (((uint32_t{c} << 8 | d) * 2654435761u) >> 26);
  }

  // Longest reachable token that is a prefix of [p, p+n). REQUIRES: n >= 1.
  uint32_t LongestPrefix(const uint8_t* p, size_t n) const {
    // One dependent load per byte: check, base and rank share a slot.
    const uint64_t* trie = trie_.data();
    uint64_t s = 0;
    uint32_t best = kNoRank;
    uint64_t base = (trie[0] >> kCheckBits) & kBaseMask;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t t = base + p[i];
      const uint64_t node = trie[t];
      if ((node & kCheckMask) != s) break;
      s = t;
      base = (node >> kCheckBits) & kBaseMask;
      const auto rank = static_cast<uint32_t>(node >> (kCheckBits + kBaseBits));
      if (rank != kTrieNoRank) best = rank;
    }
    return best;
  }

  // Whether BPE of the bytes of `a` followed by those of `b` is [a, b], given that the two
  // stand at text[-len(a), len(b)) (the bytes are read from the text). `limit` bounds the
  // ranks that may merge at all (kNoRank: every token).
  bool Compatible(const uint8_t* text, uint32_t a, uint32_t b, uint32_t limit) const {
    uint32_t x = a, y = b;
    // Every y starts at text[0].
    const uint64_t byte_bit = uint64_t{1} << (text[0] & 63);
    const uint64_t pair_bit = info_[b].len >= 2 ? PairBit(text[0], text[1]) : 0;
    for (;;) {
      const uint32_t lx = info_[x].len, ly = info_[y].len;
      const bool maybe =
          ly == 1 ? (info_[x].next_bytes & byte_bit) != 0 : (info_[x].next_pairs & pair_bit) != 0;
      const uint32_t r =
          maybe && lx + ly <= max_token_len_ ? vocab_.Find(text - lx, lx + ly) : kNoRank;
      if (r < limit) return false;
      if (x > y) {
        // x was completed last: undo it. The pair ending there ranked above x's merge (a
        // tie goes to x's merge, which is further left).
        limit = x;
        const uint32_t nx = info_[x].right;
        if (nx == x) {
          limit = y + 1;
          const uint32_t ny = info_[y].left;
          if (ny == y) return true;
          y = ny;
        } else {
          x = nx;
        }
      } else {
        // y was completed last. A tie goes to the boundary pair, which is further left.
        limit = y + 1;
        const uint32_t ny = info_[y].left;
        if (ny == y) {
          limit = x;
          const uint32_t nx = info_[x].right;
          if (nx == x) return true;
          x = nx;
        } else {
          y = ny;
        }
      }
    }
  }

  // Compatible(text, a, b, kNoRank), remembered per thread: the same token pairs meet again
  // and again across different words (a direct-mapped table of 4096 pairs, 32 KiB).
  bool CompatiblePair(const uint8_t* text, uint32_t a, uint32_t b) const {
    struct Memo {
      uint64_t owner = 0;  // Vocab::id() (addresses of freed encoders get reused)
      uint64_t entries[4096];
    };
    thread_local Memo memo;
    if (memo.owner != vocab_.id()) {
      memo.owner = vocab_.id();
      std::fill(std::begin(memo.entries), std::end(memo.entries), ~uint64_t{0});
    }
    const uint64_t key = (uint64_t{a} << 24) | b;  // ranks are below 2^24
    uint64_t& e = memo.entries[((key * 0x9e3779b97f4a7c15ull) >> 52)];
    if ((e >> 1) == key) return (e & 1) != 0;
    const bool ok = Compatible(text, a, b, kNoRank);
    e = (key << 1) | (ok ? 1 : 0);
    return ok;
  }

  // The search, over a stack of tokens (empty, back, push_back, pop_back) and a set of n
  // bits, all set (Test, Clear; bit i-1: position i may still end a token). Leaves the
  // encoding in `stack`; returns the number of candidate tokens tried.
  template <class Stack, class Bits>
  size_t Search(const uint8_t* p, size_t n, Stack& stack, Bits& alive) const;

  // Bit sets for Search: one word (pieces up to 64 bytes, kept in a register), or words in
  // memory.
  struct WordBits {
    uint64_t word = ~uint64_t{0};
    bool Test(size_t i) const { return ((word >> i) & 1) != 0; }
    void Clear(size_t i) { word &= ~(uint64_t{1} << i); }
  };
  struct ArrayBits {
    uint64_t* words;
    bool Test(size_t i) const { return ((words[i >> 6] >> (i & 63)) & 1) != 0; }
    void Clear(size_t i) { words[i >> 6] &= ~(uint64_t{1} << (i & 63)); }
  };

  const Vocab& vocab_;
  std::vector<uint64_t> trie_;  // packed Nodes
  std::vector<TokenInfo> info_;  // by rank; gaps have len 0
  uint32_t max_token_len_ = 0;
  size_t unreachable_ = 0;
  bool usable_ = true;
};

template <class Stack, class Bits>
size_t BacktrackEncoder::Search(const uint8_t* p, size_t n, Stack& stack, Bits& alive) const {
  size_t tried = 0;
  size_t pos = 0;
  uint32_t token = LongestPrefix(p, n);
  for (;;) {
    const uint32_t last = stack.empty() ? kNoRank : stack.back();
    for (;;) {
      ++tried;
      const size_t end = pos + info_[token].len;
      if (alive.Test(end - 1) &&
          (stack.empty() || CompatiblePair(p + pos, last, token))) {
        stack.push_back(token);
        pos = end;
        if (pos == n) return tried;
        token = LongestPrefix(p + pos, n - pos);
        break;
      }
      const uint32_t shorter = info_[token].prefix;
      if (shorter != kNoRank) {
        token = shorter;
        continue;
      }
      // No token can start at pos after the tokens before it: pos is dead. Step back. (A
      // single byte is always a candidate at pos 0, so this never empties the stack.)
      alive.Clear(pos - 1);
      stack.pop_back();
      pos -= info_[last].len;
      token = last;
      break;
    }
  }
}

template <class Sink>
void BacktrackEncoder::Encode(const uint8_t* p, size_t n, Sink& sink) const {
  if (n <= 64) {
    // The token stack on the machine stack, the dead-position set in one word.
    struct FixedStack {
      uint32_t tokens[64];
      size_t size = 0;
      bool empty() const { return size == 0; }
      uint32_t back() const { return tokens[size - 1]; }
      void push_back(uint32_t t) { tokens[size++] = t; }
      void pop_back() { --size; }
    } stack;
    WordBits alive;
    Search(p, n, stack, alive);
    for (size_t i = 0; i < stack.size; ++i) sink.Push(stack.tokens[i]);
    return;
  }
  thread_local std::vector<uint32_t> tokens;
  EncodeLong(p, n, &tokens, nullptr);
  for (uint32_t t : tokens) sink.Push(t);
  if (tokens.capacity() > (size_t{1} << 16)) std::vector<uint32_t>().swap(tokens);
}

}  // namespace modeenvoy::tokenizer_internal

#endif  // MODEENVOY_LIB_TOKENIZER_BACKTRACK_H_
