#include "lib/tokenizer/backtrack.h"

#include <algorithm>
#include <string_view>

#include "lib/tokenizer/bpe.h"

namespace modeenvoy::tokenizer_internal {
namespace {

// Free slots of the double array, as a doubly linked list in slot order, so that placing a
// node's children visits only free slots.
class FreeList {
 public:
  // Slots [0, size) exist; slot 0 (the root) is taken.
  void Grow(size_t size) {
    const size_t old = next_.size();
    if (size <= old) return;
    next_.resize(size);
    prev_.resize(size);
    for (size_t i = old; i < size; ++i) {
      prev_[i] = static_cast<uint32_t>(i - 1);
      next_[i] = static_cast<uint32_t>(i + 1);
    }
    if (old == 0) {
      // Slot 0 is the root: the list starts at 1.
      head_ = 1;
      prev_[1] = kEnd;
    } else if (tail_ == kEnd) {
      head_ = static_cast<uint32_t>(old);
      prev_[old] = kEnd;
    } else {
      next_[tail_] = static_cast<uint32_t>(old);
      prev_[old] = tail_;
    }
    tail_ = static_cast<uint32_t>(size - 1);
    next_[tail_] = kEnd;
  }
  void Take(uint32_t i) {
    const uint32_t p = prev_[i], n = next_[i];
    if (p == kEnd) head_ = n; else next_[p] = n;
    if (n == kEnd) tail_ = p; else prev_[n] = p;
  }
  uint32_t head() const { return head_; }
  uint32_t next(uint32_t i) const { return next_[i]; }
  static constexpr uint32_t kEnd = 0xffffffffu;

 private:
  std::vector<uint32_t> next_, prev_;
  uint32_t head_ = kEnd, tail_ = kEnd;
};

}  // namespace

std::unique_ptr<BacktrackEncoder> BacktrackEncoder::Build(const Vocab& vocab) {
  std::unique_ptr<BacktrackEncoder> enc(new BacktrackEncoder(vocab));
  const uint32_t num_ranks = vocab.max_rank() + 1;
  enc->info_.assign(num_ranks, TokenInfo{0, 0, kNoRank, 0, 0, 0});
  std::vector<uint32_t> sorted;
  sorted.reserve(vocab.size());
  for (uint32_t r = 0; r < num_ranks; ++r) {
    const std::string_view bytes = vocab.Bytes(r);
    if (bytes.empty()) continue;
    enc->info_[r] = TokenInfo{r, r, kNoRank, static_cast<uint32_t>(bytes.size()), 0, 0};
    enc->max_token_len_ = std::max(enc->max_token_len_, static_cast<uint32_t>(bytes.size()));
    sorted.push_back(r);
  }
  std::sort(sorted.begin(), sorted.end(),
            [&](uint32_t a, uint32_t b) { return vocab.Bytes(a) < vocab.Bytes(b); });

  // The trie, over every token for now (the splits below need all of them); children are
  // placed at the first base where all their slots are free.
  std::vector<Node> nodes;
  FreeList free;
  auto grow = [&](size_t size) {
    if (size <= nodes.size()) return;
    size_t cap = std::max<size_t>(nodes.size() * 2, 1024);
    while (cap < size) cap *= 2;
    nodes.resize(cap, Node{kFree, 0, kNoRank});
    free.Grow(cap);
  };
  grow(512);
  nodes[0].check = kFree - 1;  // the root: taken, and no node's parent
  std::vector<uint32_t> node_of(num_ranks, 0);
  struct Range {
    uint32_t node, lo, hi, depth;
    uint32_t ancestor;  // the token of the nearest node above that ends one, or kNoRank
  };
  std::vector<Range> todo = {{0, 0, static_cast<uint32_t>(sorted.size()), 0, kNoRank}};
  uint8_t labels[256];
  uint32_t starts[257];
  while (!todo.empty()) {
    Range range = todo.back();
    todo.pop_back();
    auto bytes = [&](uint32_t i) { return vocab.Bytes(sorted[i]); };
    if (range.lo < range.hi && bytes(range.lo).size() == range.depth) {
      const uint32_t rank = sorted[range.lo];
      nodes[range.node].rank = rank;
      node_of[rank] = range.node;
      enc->info_[rank].prefix = range.ancestor;  // for now over all tokens, reachable or not
      range.ancestor = rank;
      ++range.lo;
    }
    if (range.lo == range.hi) continue;
    int count = 0;
    for (uint32_t i = range.lo; i < range.hi; ++i) {
      const auto c = static_cast<uint8_t>(bytes(i)[range.depth]);
      if (count == 0 || labels[count - 1] != c) {
        labels[count] = c;
        starts[count] = i;
        ++count;
      }
    }
    starts[count] = range.hi;
    if (nodes[range.node].rank != kNoRank) {
      uint64_t& mask = enc->info_[nodes[range.node].rank].next_bytes;
      for (int k = 0; k < count; ++k) mask |= uint64_t{1} << (labels[k] & 63);
    }
    if (range.node != 0) {
      // The token two levels up (if any) continues with (this node's byte, a child's byte).
      const uint32_t parent = nodes[range.node].check;
      if (nodes[parent].rank != kNoRank) {
        const auto c = static_cast<uint8_t>(range.node - nodes[parent].base);
        uint64_t& mask = enc->info_[nodes[parent].rank].next_pairs;
        for (int k = 0; k < count; ++k) mask |= PairBit(c, labels[k]);
      }
    }
    uint32_t base = 0;
    for (uint32_t f = free.head();; f = free.next(f)) {
      if (f == FreeList::kEnd) {  // no room: grow, and retry from the new slots
        const size_t old = nodes.size();
        grow(old * 2);
        f = static_cast<uint32_t>(old);
      }
      if (f < labels[0]) continue;
      base = f - labels[0];
      grow(size_t{base} + 256);
      bool fits = true;
      for (int k = 1; k < count && fits; ++k) fits = nodes[base + labels[k]].check == kFree;
      if (fits) break;
    }
    nodes[range.node].base = base;
    for (int k = 0; k < count; ++k) {
      const uint32_t child = base + labels[k];
      nodes[child].check = range.node;
      free.Take(child);
      todo.push_back({child, starts[k], starts[k + 1], range.depth + 1, range.ancestor});
    }
  }
  // Every base + byte must index a slot: the array ends 256 slots after the last base.
  uint32_t max_base = 0;
  for (const Node& n : nodes) {
    if (n.check != kFree) max_base = std::max(max_base, n.base);
  }
  nodes.resize(size_t{max_base} + 256, Node{kFree, 0, kNoRank});
  nodes.shrink_to_fit();

  // Splits, in rank order (a token's parts rank below it): the longest prefix token t1 such
  // that the rest is a token t2 and BPE of t1 + t2 over ranks below the token stops at
  // [t1, t2]. No such pair: BPE never produces the token from smaller parts. The prefix
  // tokens of a token are the chain of `prefix` links the trie pass left.
  std::vector<bool> reachable(num_ranks, false);
  for (uint32_t r = 0; r < num_ranks; ++r) reachable[r] = enc->info_[r].len == 1;
  for (uint32_t r = 0; r < num_ranks; ++r) {
    const TokenInfo& t = enc->info_[r];
    if (t.len < 2) continue;
    const auto* p = reinterpret_cast<const uint8_t*>(vocab.Bytes(r).data());
    bool found = false;
    for (uint32_t t1 = t.prefix; t1 != kNoRank && !found; t1 = enc->info_[t1].prefix) {
      const uint32_t l1 = enc->info_[t1].len;
      const uint32_t t2 = vocab.Find(p + l1, t.len - l1);
      if (t2 == kNoRank || !reachable[t1] || !reachable[t2]) continue;
      if ((l1 > 1 && t1 > r) || (t.len - l1 > 1 && t2 > r)) continue;
      if (!enc->Compatible(p + l1, t1, t2, r)) continue;
      enc->info_[r].left = t1;
      enc->info_[r].right = t2;
      reachable[r] = true;
      found = true;
    }
    if (!found) {
      ++enc->unreachable_;
      // Unsplittable: fine if tiktoken's loop cannot build it from its bytes either (then
      // only a whole-piece lookup yields it); if it can, this vocabulary breaks the premise.
      std::vector<uint32_t> merged;
      TokenSink sink{&merged};
      if (t.len <= kSmallPieceMax) {
        MergeSmall(vocab, p, t.len, sink);
      } else {
        MergeLarge(vocab, p, t.len, sink);
      }
      if (merged.size() == 1 && merged[0] == r) enc->usable_ = false;
    }
  }
  // Unreachable tokens leave the trie; every token learns its longest reachable prefix.
  for (uint32_t r = 0; r < num_ranks; ++r) {
    if (enc->info_[r].len > 0 && !reachable[r]) nodes[node_of[r]].rank = kNoRank;
  }
  for (uint32_t r = 0; r < num_ranks; ++r) {
    uint32_t& prefix = enc->info_[r].prefix;
    while (prefix != kNoRank && !reachable[prefix]) prefix = enc->info_[prefix].prefix;
  }
  // Pack the trie (see Node). Free slots keep check = kCheckMask, which no node index
  // reaches; the root's check is kCheckMask - 1, no node's parent either.
  if (nodes.size() > kMaxTrieSlots || vocab.max_rank() > kMaxRank) {
    enc->usable_ = false;
    return enc;
  }
  enc->trie_.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const Node& n = nodes[i];
    const uint64_t check = n.check == kFree ? kCheckMask : i == 0 ? kCheckMask - 1 : n.check;
    const uint64_t rank = n.rank == kNoRank ? kTrieNoRank : n.rank;
    enc->trie_[i] = check | (uint64_t{n.base} << kCheckBits) |
                    (rank << (kCheckBits + kBaseBits));
  }
  return enc;
}

void BacktrackEncoder::EncodeLong(const uint8_t* p, size_t n, std::vector<uint32_t>* out,
                                  size_t* steps) const {
  out->clear();
  thread_local std::vector<uint64_t> alive;
  alive.assign((n + 63) / 64, ~uint64_t{0});
  ArrayBits bits{alive.data()};
  const size_t tried = Search(p, n, *out, bits);
  if (steps != nullptr) *steps += tried;
  if (alive.capacity() > (size_t{1} << 12)) std::vector<uint64_t>().swap(alive);
}

size_t BacktrackEncoder::MemoryUsage() const {
  return sizeof(*this) + trie_.capacity() * sizeof(uint64_t) + info_.capacity() * sizeof(TokenInfo);
}

}  // namespace modeenvoy::tokenizer_internal
