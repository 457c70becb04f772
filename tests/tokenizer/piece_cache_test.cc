// The per-thread piece cache (lib/tokenizer/piece_cache.h): CLOCK replacement, the byte
// bound, what is not stored, and that encoding with it gives the ids encoding without it does.
#include "lib/tokenizer/piece_cache.h"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy::tokenizer_internal {
namespace {

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Hashes that differ in their tag bits (48..62); a one-set cache maps all of them to set 0.
uint64_t HashFor(int i) { return (uint64_t{0x100} + static_cast<uint64_t>(i)) << 48; }

bool Has(PieceCache& cache, std::string_view piece, int i, uint32_t expected_first) {
  size_t n = 0;
  const uint32_t* got = cache.Find(7, HashFor(i), Bytes(piece), piece.size(), &n);
  return got != nullptr && n == 1 && got[0] == expected_first;
}

// Hashes spread over all bits (SplitMix64's finalizer), so pieces land in different sets.
uint64_t SpreadHash(uint64_t i) {
  uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Smallest bound that holds exactly one set of four ways.
size_t OneSetBytes() {
  for (size_t bytes = 64;; bytes += 8) {
    PieceCache probe(bytes);
    size_t n = 0;
    probe.Insert(1, HashFor(0), Bytes("probe"), 5, std::vector<uint32_t>{1}.data(), 1);
    if (probe.Find(1, HashFor(0), Bytes("probe"), 5, &n) != nullptr) return bytes;
  }
}

TEST(PieceCacheTest, ClockEvictsTheFirstUnreferencedEntryFromTheHand) {
  PieceCache cache(OneSetBytes());
  const std::vector<std::string> pieces = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot"};
  const uint32_t tokens[6][1] = {{10}, {11}, {12}, {13}, {14}, {15}};
  // Four frames fill without evicting; the hand is back at frame 0.
  for (int i = 0; i < 4; ++i) {
    cache.Insert(7, HashFor(i), Bytes(pieces[i]), pieces[i].size(), tokens[i], 1);
  }
  EXPECT_EQ(cache.stats().evictions, 0u);
  // No reference bit is set: "echo" replaces "alpha" (frame 0), the hand moves to frame 1.
  cache.Insert(7, HashFor(4), Bytes(pieces[4]), pieces[4].size(), tokens[4], 1);
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_FALSE(Has(cache, pieces[0], 0, 10));
  // A hit on "bravo" (frame 1) gives it a second chance: the next insert clears its bit and
  // takes "charlie" (frame 2) instead.
  EXPECT_TRUE(Has(cache, pieces[1], 1, 11));
  cache.Insert(7, HashFor(5), Bytes(pieces[5]), pieces[5].size(), tokens[5], 1);
  EXPECT_EQ(cache.stats().evictions, 2u);
  EXPECT_FALSE(Has(cache, pieces[2], 2, 12));
  EXPECT_TRUE(Has(cache, pieces[1], 1, 11));
  EXPECT_TRUE(Has(cache, pieces[3], 3, 13));
  EXPECT_TRUE(Has(cache, pieces[4], 4, 14));
  EXPECT_TRUE(Has(cache, pieces[5], 5, 15));
  EXPECT_EQ(cache.stats().inserts, 6u);
}

TEST(PieceCacheTest, StaysWithinItsByteBound) {
  for (size_t bytes : {size_t{128}, size_t{600}, size_t{4096}, size_t{100000},
                       kDefaultPieceCacheBytes, size_t{3} << 20}) {
    PieceCache cache(bytes);
    EXPECT_LE(cache.MemoryUsage(), bytes) << bytes;
    // As many sets as fit: less than one set's worth of the bound is left over.
    if (bytes >= 4096) {
      EXPECT_GT(cache.MemoryUsage(), bytes - 600) << bytes;
    }
  }
  // Below one set the cache holds nothing and never answers.
  PieceCache none(128);
  const uint32_t t[1] = {5};
  none.Insert(1, HashFor(0), Bytes("hello"), 5, t, 1);
  size_t n = 0;
  EXPECT_EQ(none.Find(1, HashFor(0), Bytes("hello"), 5, &n), nullptr);
}

TEST(PieceCacheTest, LongPiecesAndManyTokensAreNotStored) {
  PieceCache cache(1 << 16);
  const std::string long_piece(PieceCache::kMaxBytes + 1, 'x');
  const std::vector<uint32_t> one = {1};
  cache.Insert(1, HashFor(0), Bytes(long_piece), long_piece.size(), one.data(), 1);
  const std::vector<uint32_t> nine(PieceCache::kMaxTokens + 1, 3);
  cache.Insert(1, HashFor(1), Bytes("abcdefghi"), 9, nine.data(), nine.size());
  EXPECT_EQ(cache.stats().inserts, 0u);
  size_t n = 0;
  EXPECT_EQ(cache.Find(1, HashFor(0), Bytes(long_piece), long_piece.size(), &n), nullptr);
  EXPECT_EQ(cache.Find(1, HashFor(1), Bytes("abcdefghi"), 9, &n), nullptr);
}

TEST(PieceCacheTest, EntriesOfAnotherVocabularyOrOtherBytesAreNotReturned) {
  PieceCache cache(1 << 16);
  const uint32_t t[2] = {4, 2};
  cache.Insert(1, HashFor(0), Bytes("hello"), 5, t, 2);
  size_t n = 0;
  EXPECT_EQ(cache.Find(2, HashFor(0), Bytes("hello"), 5, &n), nullptr);  // other owner
  EXPECT_EQ(cache.Find(1, HashFor(0), Bytes("hellp"), 5, &n), nullptr);  // same hash, other bytes
  EXPECT_EQ(cache.Find(1, HashFor(0), Bytes("hell"), 4, &n), nullptr);   // other length
  const uint32_t* got = cache.Find(1, HashFor(0), Bytes("hello"), 5, &n);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(std::vector<uint32_t>(got, got + n), (std::vector<uint32_t>{4, 2}));
}

// Entries are sized to what they hold: the tokens of 10,000 short two-token pieces take
// 80,000 bytes, so a 1 MiB bound keeps more of them than 1 MiB / 128 = 8,192 (the count a
// cache of 128-byte entries could hold at most).
TEST(PieceCacheTest, OneMebibyteHoldsMoreThan8192ShortPieces) {
  PieceCache cache(size_t{1} << 20);
  auto piece_of = [](int i) { return "w" + std::to_string(1000000 + i); };  // 8 bytes
  constexpr int kPieces = 10000;
  for (int i = 0; i < kPieces; ++i) {
    const std::string piece = piece_of(i);
    const uint32_t tokens[2] = {static_cast<uint32_t>(i), 7};
    cache.Insert(1, SpreadHash(i), Bytes(piece), piece.size(), tokens, 2);
  }
  int found = 0;
  for (int i = 0; i < kPieces; ++i) {
    const std::string piece = piece_of(i);
    size_t n = 0;
    const uint32_t* got = cache.Find(1, SpreadHash(i), Bytes(piece), piece.size(), &n);
    if (got == nullptr) continue;
    ASSERT_EQ(n, 2u);
    EXPECT_EQ(got[0], static_cast<uint32_t>(i));
    EXPECT_EQ(got[1], 7u);
    ++found;
  }
  EXPECT_GT(found, 8192);
  EXPECT_LE(cache.MemoryUsage(), size_t{1} << 20);
}

// Each piece may go to either of two sets, so sets fill evenly: 10,000 pieces in the 11,868
// small entries of a 1 MiB cache (2,967 sets, 84% full). With one set per piece, 3.4 pieces
// land per set on average and the Poisson tail beyond four ways loses one piece in eight;
// with two, an insert overflows only when both sets are full, and under 8% are lost.
TEST(PieceCacheTest, TwoCandidateSetsKeepAnAlmostFullCache) {
  PieceCache cache(size_t{1} << 20);
  auto piece_of = [](int i) { return "v" + std::to_string(1000000 + i); };
  constexpr int kPieces = 10000;
  for (int i = 0; i < kPieces; ++i) {
    const std::string piece = piece_of(i);
    const uint32_t tokens[2] = {static_cast<uint32_t>(i), 9};
    cache.Insert(1, SpreadHash(i + 77777), Bytes(piece), piece.size(), tokens, 2);
  }
  int found = 0;
  for (int i = 0; i < kPieces; ++i) {
    const std::string piece = piece_of(i);
    size_t n = 0;
    if (cache.Find(1, SpreadHash(i + 77777), Bytes(piece), piece.size(), &n) != nullptr) ++found;
  }
  EXPECT_GE(found, kPieces * 92 / 100);
}

// Pieces whose bytes and tokens do not fit a small entry (length + 4 × tokens > 54) are kept
// too, and every stored piece comes back with exactly its tokens, at both sides of the line.
TEST(PieceCacheTest, PiecesWithManyTokensAreKept) {
  PieceCache cache(1 << 16);
  struct Case {
    size_t len;
    size_t tokens;
  };
  // 46 + 4 × 2 = 54 (small entry), 47 + 8 = 55, 40 + 4 × 8 = 72, 54 + 4 × 16 = 118 (the most).
  const Case cases[] = {{46, 2}, {47, 2}, {40, 8}, {54, 16}, {6, 12}, {20, 9}};
  int i = 0;
  for (const Case& c : cases) {
    const std::string piece(c.len, static_cast<char>('a' + i));
    std::vector<uint32_t> tokens(c.tokens);
    for (size_t k = 0; k < c.tokens; ++k) tokens[k] = static_cast<uint32_t>(1000 * i + k);
    cache.Insert(3, SpreadHash(i), Bytes(piece), piece.size(), tokens.data(), tokens.size());
    ++i;
  }
  EXPECT_EQ(cache.stats().inserts, 6u);
  i = 0;
  for (const Case& c : cases) {
    const std::string piece(c.len, static_cast<char>('a' + i));
    size_t n = 0;
    const uint32_t* got = cache.Find(3, SpreadHash(i), Bytes(piece), piece.size(), &n);
    ASSERT_NE(got, nullptr) << c.len << " bytes, " << c.tokens << " tokens";
    std::vector<uint32_t> want(c.tokens);
    for (size_t k = 0; k < c.tokens; ++k) want[k] = static_cast<uint32_t>(1000 * i + k);
    EXPECT_EQ(std::vector<uint32_t>(got, got + n), want) << c.len << " bytes";
    ++i;
  }
}

// Restores the default bound however the test ends.
struct DefaultBoundAfter {
  ~DefaultBoundAfter() { SetPieceCacheBytes(kDefaultPieceCacheBytes); }
};

// Many distinct words outside the vocabulary, each repeated: merges, cache hits, evictions.
std::string ManyPieces() {
  std::string text;
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 1500; ++i) {
      text += " zq";
      for (int k = i; k > 0; k /= 7) text += static_cast<char>('a' + k % 7 * 3);
      text += (i % 5 == 0) ? "ückx" : "xv";
      if (i % 11 == 0) text += "\n";
    }
  }
  return text;
}

void ExpectCacheNeverChangesIds(const Encoding& enc, bool check_hit_ratio) {
  DefaultBoundAfter restore;
  const std::string text = ManyPieces();
  SetPieceCacheBytes(0);
  const std::vector<Token> uncached = enc.EncodeOrdinary(text);
  size_t memory = 1;
  ThisThreadPieceCacheStats(&memory);
  EXPECT_EQ(memory, 0u) << "bound 0 allocates no cache";

  // One set of four entries: nearly every stored piece is evicted before it recurs.
  SetPieceCacheBytes(OneSetBytes());
  EXPECT_EQ(enc.EncodeOrdinary(text), uncached);
  EXPECT_EQ(enc.CountOrdinary(text), uncached.size());
  const PieceCacheStats tiny = ThisThreadPieceCacheStats(&memory);
  EXPECT_LE(memory, OneSetBytes());
  EXPECT_GT(tiny.evictions, 1000u);

  SetPieceCacheBytes(kDefaultPieceCacheBytes);
  EXPECT_EQ(enc.EncodeOrdinary(text), uncached);
  ResetThisThreadPieceCacheStats();
  EXPECT_EQ(enc.EncodeOrdinary(text), uncached);  // warm
  const PieceCacheStats warm = ThisThreadPieceCacheStats(&memory);
  EXPECT_LE(memory, kDefaultPieceCacheBytes);
  if (check_hit_ratio) {
    // 1,500 distinct pieces, about 8,000 entries in sets of four: a few sets overflow.
    EXPECT_GE(warm.hits, 17 * (warm.hits + warm.misses) / 20) << warm.hits << " " << warm.misses;
  }
}

TEST(PieceCacheTest, EncodingWithTheCacheGivesTheIdsWithoutIt) {
  for (const char* name : {"cl100k_base", "o200k_base", "p50k_base", "r50k_base"}) {
    std::string skip;
    auto enc = tokenizer_test::LoadForTest(name, &skip);
    if (enc == nullptr) GTEST_SKIP() << skip;
    SCOPED_TRACE(name);
    ExpectCacheNeverChangesIds(*enc, true);
  }
}

TEST(PieceCacheTest, SyntheticVocabularyWithTheCacheGivesTheIdsWithoutIt) {
  // Few tokens: every word is several tokens and goes through the merge and the cache (the
  // longer words are more than eight tokens and bypass it).
  const std::string file = tokenizer_test::SmallRankFile({"zq", " zq", "xv", "ab", "dg"});
  EncodingSpec spec;
  spec.name = "synthetic";
  spec.pattern = SplitPattern::kCl100k;
  auto enc = Encoding::Create(spec, file);
  ASSERT_TRUE(enc.ok()) << enc.status();
  ExpectCacheNeverChangesIds(**enc, false);
}

TEST(PieceCacheTest, BoundIsSettableAndABoundBelowOneSetAllocatesNothing) {
  DefaultBoundAfter restore;
  EXPECT_EQ(PieceCacheBytes(), kDefaultPieceCacheBytes);
  SetPieceCacheBytes(12345);
  EXPECT_EQ(PieceCacheBytes(), 12345u);
  SetPieceCacheBytes(OneSetBytes() - 8);
  EXPECT_EQ(PieceCache::ForThread(), nullptr);
  SetPieceCacheBytes(OneSetBytes());
  ASSERT_NE(PieceCache::ForThread(), nullptr);
  EXPECT_LE(PieceCache::ForThread()->MemoryUsage(), OneSetBytes());
}

}  // namespace
}  // namespace modeenvoy::tokenizer_internal
