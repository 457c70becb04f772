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
  if (bytes <= sizeof(PieceCache)) return;
  const size_t budget = bytes - sizeof(PieceCache);
  // Large entries get a quarter, small ones what is left (so less than one small set's
  // worth of the bound goes unused).
  const size_t large_sets = budget / 4 / LargeTable::BytesPerSet();
  const size_t small_sets = (budget - large_sets * LargeTable::BytesPerSet()) /
                            SmallTable::BytesPerSet();
  if (small_sets == 0) return;  // not even one set: a cache that holds nothing
  small_.Allocate(small_sets);
  large_.Allocate(large_sets);
}

PieceCache* PieceCache::ForThread() {
  ThreadCache& t = ThisThread();
  const uint64_t generation = g_piece_cache_generation.load(std::memory_order_acquire);
  if (t.generation != generation) {
    t.generation = generation;
    const size_t bytes = g_piece_cache_bytes.load(std::memory_order_relaxed);
    t.cache.reset(new PieceCache(bytes));
    if (t.cache->small_.sets() == 0) t.cache.reset();  // below one set: nothing is allocated
  }
  return t.cache.get();
}

void PieceCache::Insert(uint64_t owner, uint64_t hash, const uint8_t* p, size_t n,
                        const uint32_t* tokens, size_t count) {
  if (small_.sets() == 0 || n > kMaxBytes || count > kMaxTokens) return;
  bool evicted;
  if (n + 4 * count <= SmallTable::kPayload) {
    evicted = small_.Insert(owner, hash, p, n, tokens, count);
  } else if (large_.sets() != 0) {
    evicted = large_.Insert(owner, hash, p, n, tokens, count);
  } else {
    return;
  }
  ++stats_.inserts;
  if (evicted) ++stats_.evictions;
}

}  // namespace tokenizer_internal
}  // namespace modeenvoy
