#include "lib/tokenizer/piece_cache.h"

namespace modeenvoy {
namespace {

std::atomic<size_t> g_piece_cache_bytes{kDefaultPieceCacheBytes};
// Bumped by every SetPieceCacheBytes, so threads notice a change with one relaxed load.
std::atomic<uint64_t> g_piece_cache_generation{1};

struct ThreadCache {
  uint64_t generation = 0;
  std::unique_ptr<tokenizer_internal::PieceCache> cache;
};

ThreadCache& ThisThread() {
  thread_local ThreadCache t;
  return t;
}

}  // namespace

void SetPieceCacheBytes(size_t bytes) {
  g_piece_cache_bytes.store(bytes, std::memory_order_relaxed);
  g_piece_cache_generation.fetch_add(1, std::memory_order_release);
}

size_t PieceCacheBytes() { return g_piece_cache_bytes.load(std::memory_order_relaxed); }

PieceCacheStats ThisThreadPieceCacheStats(size_t* memory_bytes) {
  const ThreadCache& t = ThisThread();
  if (memory_bytes != nullptr) *memory_bytes = t.cache ? t.cache->MemoryUsage() : 0;
  return t.cache ? t.cache->stats() : PieceCacheStats{};
}

void ResetThisThreadPieceCacheStats() {
  ThreadCache& t = ThisThread();
  if (t.cache) t.cache->ResetStats();
}

namespace tokenizer_internal {

PieceCache::PieceCache(size_t bytes) {
  const size_t per_set = MemoryFor(1) - MemoryFor(0);
  const size_t sets = bytes < MemoryFor(0) ? 0 : (bytes - MemoryFor(0)) / per_set;
  if (sets == 0) return;  // not even one set: a cache that holds nothing
  sets_ = sets;
  entries_.reset(new Entry[sets * kWays]);
  tags_.reset(new uint64_t[sets]());
  hands_.reset(new uint8_t[sets]());
}

PieceCache* PieceCache::ForThread() {
  ThreadCache& t = ThisThread();
  const uint64_t generation = g_piece_cache_generation.load(std::memory_order_acquire);
  if (t.generation != generation) {
    t.generation = generation;
    const size_t bytes = g_piece_cache_bytes.load(std::memory_order_relaxed);
    t.cache.reset(new PieceCache(bytes));
    if (t.cache->sets_ == 0) t.cache.reset();  // below one set: nothing is allocated
  }
  return t.cache.get();
}

void PieceCache::Insert(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n,
                        const uint32_t* tokens, size_t count) {
  if (sets_ == 0 || n > kMaxBytes || count > kMaxTokens) return;
  const size_t set = SetOf(hash);
  uint64_t tags = tags_[set];
  size_t way = hands_[set];
  // CLOCK: at most one sweep clears every reference bit, so the second finds a victim.
  for (;; way = (way + 1) % kWays) {
    const uint16_t t = static_cast<uint16_t>(tags >> (16 * way));
    if (t == 0) break;  // empty
    if (!(t & kRefBit)) {
      ++stats_.evictions;
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
  std::memcpy(e.bytes, p, n);
  std::memcpy(e.tokens, tokens, count * sizeof(uint32_t));
  ++stats_.inserts;
}

}  // namespace tokenizer_internal
}  // namespace modeenvoy
