// lib/router/hash.h: stable hashing and seeded draws for routing decisions.
// absl::Hash is salted per process; consistent hashing must agree across gateway replicas
// and restarts, so keys are hashed with MurmurHash64A (public domain, Austin Appleby).
#ifndef MODEENVOY_LIB_ROUTER_HASH_H_
#define MODEENVOY_LIB_ROUTER_HASH_H_

#include <cstdint>
#include <cstring>
#include <string_view>

namespace modeenvoy::router_internal {

inline uint64_t Murmur64(std::string_view data, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  uint64_t h = seed ^ (data.size() * m);
  const char* p = data.data();
  const char* end = p + (data.size() / 8) * 8;
  for (; p != end; p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  const unsigned char* tail = reinterpret_cast<const unsigned char*>(p);
  switch (data.size() & 7) {
    case 7: h ^= uint64_t{tail[6]} << 48; [[fallthrough]];
    case 6: h ^= uint64_t{tail[5]} << 40; [[fallthrough]];
    case 5: h ^= uint64_t{tail[4]} << 32; [[fallthrough]];
    case 4: h ^= uint64_t{tail[3]} << 24; [[fallthrough]];
    case 3: h ^= uint64_t{tail[2]} << 16; [[fallthrough]];
    case 2: h ^= uint64_t{tail[1]} << 8; [[fallthrough]];
    case 1: h ^= uint64_t{tail[0]}; h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

// SplitMix64 (Steele, Lea, Flood): one step of a seeded sequence; also a 64-bit mixer.
inline uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Uniform in [0, 1) from 53 bits of `x`.
inline double UnitInterval(uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

// Uniform in [0, n) (Lemire's multiply-shift; bias below 2^-32 for the n used here).
inline uint64_t Below(uint64_t x, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(x) * n) >> 64);
}

}  // namespace modeenvoy::router_internal

#endif  // MODEENVOY_LIB_ROUTER_HASH_H_
