#include "lib/tokenizer/vocab.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"

namespace modeenvoy::tokenizer_internal {
namespace {

using core_internal::ToAbsl;

// Tokens are at most this long in every published file (128); the bound only guards memory.
constexpr size_t kMaxTokenBytes = 1 << 16;
// Ranks beyond this are rejected so a corrupt file cannot make us allocate gigabytes.
constexpr uint32_t kMaxRank = 1u << 24;

constexpr int8_t kB64Invalid = -1;
struct B64Table {
  int8_t v[256];
  constexpr B64Table() : v{} {
    for (int i = 0; i < 256; ++i) v[i] = kB64Invalid;
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) v[static_cast<uint8_t>(alphabet[i])] = static_cast<int8_t>(i);
  }
};
constexpr B64Table kB64{};

// Standard base64 with '=' padding (what tiktoken writes and Python's b64decode accepts).
bool DecodeBase64(std::string_view in, std::string* out) {
  out->clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (in.size() >= 2 && in[in.size() - 2] == '=') ++pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const int8_t d = kB64.v[static_cast<uint8_t>(in[i])];
    if (d == kB64Invalid) return false;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero (canonical encoding).
  return (acc & ((1u << bits) - 1)) == 0;
}

absl::Status LineError(std::string_view source, size_t line, std::string_view what) {
  return absl::DataLossError(absl::StrFormat("%s: line %d: %s", ToAbsl(source), line, ToAbsl(what)));
}

}  // namespace

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) return absl::UnavailableError(absl::StrCat(path, ": not a regular file"));
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat(path, ": ", std::strerror(errno)));
  std::string data;
  data.resize(static_cast<size_t>(st.st_size));
  const size_t got = data.empty() ? 0 : std::fread(data.data(), 1, data.size(), f);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed || got != data.size()) {
    return absl::UnavailableError(absl::StrCat(path, ": read failed"));
  }
  return data;
}

absl::StatusOr<std::unique_ptr<Vocab>> Vocab::ParseFile(const std::string& path) {
  MODEENVOY_ASSIGN_OR_RETURN(std::string contents, ReadWholeFile(path));
  return Parse(contents, path);
}

absl::StatusOr<std::unique_ptr<Vocab>> Vocab::Parse(std::string_view contents,
                                                    std::string_view source) {
  std::vector<std::pair<uint32_t, std::string>> entries;
  entries.reserve(contents.size() / 12 + 1);
  size_t line_no = 0;
  size_t pos = 0;
  std::string token;
  while (pos < contents.size()) {
    size_t eol = contents.find('\n', pos);
    if (eol == std::string_view::npos) eol = contents.size();
    std::string_view line = contents.substr(pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return LineError(source, line_no, "expected '<base64> <rank>'");
    std::string_view b64 = line.substr(0, sp);
    std::string_view rank_text = line.substr(sp + 1);
    if (rank_text.empty() || rank_text.size() > 9) {
      return LineError(source, line_no, "rank is not a number below 2^24");
    }
    uint32_t rank = 0;
    for (char c : rank_text) {
      if (c < '0' || c > '9') return LineError(source, line_no, "rank is not a decimal number");
      rank = rank * 10 + static_cast<uint32_t>(c - '0');
    }
    if (rank >= kMaxRank) return LineError(source, line_no, "rank is not a number below 2^24");
    if (!DecodeBase64(b64, &token)) return LineError(source, line_no, "invalid base64 token");
    if (token.empty() || token.size() > kMaxTokenBytes) {
      return LineError(source, line_no, "token length out of range");
    }
    entries.emplace_back(rank, token);
  }
  return FromRanks(std::move(entries), source);
}

absl::StatusOr<std::unique_ptr<Vocab>> Vocab::FromRanks(
    std::vector<std::pair<uint32_t, std::string>> entries, std::string_view source) {
  if (entries.empty()) return absl::DataLossError(absl::StrCat(ToAbsl(source), ": no tokens"));
  for (const auto& [rank, bytes] : entries) {
    if (rank >= kMaxRank) {
      return absl::DataLossError(
          absl::StrFormat("%s: rank %d is not below 2^24", ToAbsl(source), rank));
    }
    if (bytes.empty() || bytes.size() > kMaxTokenBytes) {
      return absl::DataLossError(absl::StrFormat("%s: token of rank %d has %d bytes (1 to %d allowed)",
                                                 ToAbsl(source), rank, bytes.size(), kMaxTokenBytes));
    }
  }

  static std::atomic<uint64_t> next_id{1};
  auto vocab = std::unique_ptr<Vocab>(new Vocab());
  vocab->id_ = next_id.fetch_add(1, std::memory_order_relaxed);
  uint32_t max_rank = 0;
  size_t pool_bytes = 0;
  for (const auto& [rank, bytes] : entries) {
    max_rank = std::max(max_rank, rank);
    pool_bytes += bytes.size();
  }
  // Place tokens by rank; detect duplicate ranks.
  std::vector<int64_t> line_of_rank(size_t{max_rank} + 1, -1);
  for (size_t i = 0; i < entries.size(); ++i) {
    const uint32_t rank = entries[i].first;
    if (line_of_rank[rank] >= 0) {
      return absl::DataLossError(absl::StrFormat("%s: rank %d appears twice", ToAbsl(source), rank));
    }
    line_of_rank[rank] = static_cast<int64_t>(i);
  }
  if (pool_bytes > 0xffffffffu) {
    return absl::DataLossError(absl::StrCat(ToAbsl(source), ": tokens hold over 4 GiB"));
  }
  vocab->pool_.reserve(pool_bytes);
  vocab->offsets_.resize(size_t{max_rank} + 2);
  for (uint32_t r = 0; r <= max_rank; ++r) {
    vocab->offsets_[r] = static_cast<uint32_t>(vocab->pool_.size());
    if (line_of_rank[r] >= 0) vocab->pool_ += entries[static_cast<size_t>(line_of_rank[r])].second;
  }
  vocab->offsets_[size_t{max_rank} + 1] = static_cast<uint32_t>(vocab->pool_.size());
  vocab->size_ = entries.size();

  // Tokens of 1 and 2 bytes live in direct tables, 3 and 4 bytes in the short table, 5 to 8
  // bytes in the mid table, longer ones in the main table; each structure sees only its
  // lengths, which keeps the tables that miss cache small.
  auto duplicate = [&](uint32_t r, uint32_t other) {
    return absl::DataLossError(absl::StrFormat("%s: line %d: token duplicates the one of rank %d",
                                               ToAbsl(source), line_of_rank[r] + 1, other));
  };
  std::fill(std::begin(vocab->byte_rank_), std::end(vocab->byte_rank_), kNoRank);
  vocab->pair_rank_.assign(65536, kNoRank);
  size_t short_count = 0, mid_count = 0, long_count = 0;
  for (uint32_t r = 0; r <= max_rank; ++r) {
    if (line_of_rank[r] < 0) continue;
    std::string_view bytes = vocab->Bytes(r);
    const auto* bp = reinterpret_cast<const uint8_t*>(bytes.data());
    if (bytes.size() == 1) {
      if (vocab->byte_rank_[bp[0]] != kNoRank) return duplicate(r, vocab->byte_rank_[bp[0]]);
      vocab->byte_rank_[bp[0]] = r;
    } else if (bytes.size() == 2) {
      uint32_t& slot = vocab->pair_rank_[(size_t{bp[0]} << 8) | bp[1]];
      if (slot != kNoRank) return duplicate(r, slot);
      slot = r;
    } else if (bytes.size() <= 4) {
      ++short_count;
    } else if (bytes.size() <= 8) {
      ++mid_count;
    } else {
      ++long_count;
    }
  }
  for (int b = 0; b < 256; ++b) {
    if (vocab->byte_rank_[b] == kNoRank) {
      return absl::DataLossError(
          absl::StrFormat("%s: no token for the single byte 0x%02x", ToAbsl(source), b));
    }
  }

  // Table sizes: any capacity works (Reduce maps hashes onto it), so each is sized to its
  // load factor: 0.7 for the short and mid tables, whose keys are whole in the slot, 0.6 for
  // the main one, whose misses may read the byte pool.
  auto capacity = [](size_t count, size_t num, size_t den) {
    return std::max<size_t>(16, count * den / num + 1);
  };
  vocab->short_cap_ = capacity(short_count, 7, 10);
  vocab->short_slots_.assign(vocab->short_cap_, ShortSlot{0, 0});
  vocab->mid_cap_ = capacity(mid_count, 7, 10);
  vocab->mid_slots_.assign(vocab->mid_cap_, MidSlot{{0, 0}, 0});
  static_assert(sizeof(MidSlot) == 12);
  vocab->cap_ = capacity(long_count, 6, 10);
  vocab->slots_.assign(vocab->cap_, Slot{0, 0, 0});
  static_assert(sizeof(Slot) == 16);
  for (uint32_t r = 0; r <= max_rank; ++r) {
    if (line_of_rank[r] < 0) continue;
    std::string_view bytes = vocab->Bytes(r);
    const auto* bp = reinterpret_cast<const uint8_t*>(bytes.data());
    if (bytes.size() <= 2) continue;
    if (bytes.size() <= 4) {
      const uint32_t found = vocab->FindShort(bp, bytes.size());
      if (found != kNoRank) return duplicate(r, found);
      const uint32_t key = static_cast<uint32_t>(LoadUpTo8(bp, bytes.size()));
      size_t i = vocab->ShortSlotIndex(key, bytes.size());
      while (vocab->short_slots_[i].len_rank != 0) {
        if (++i == vocab->short_cap_) i = 0;
      }
      vocab->short_slots_[i] = ShortSlot{key, static_cast<uint32_t>(bytes.size()) << 24 | r};
      continue;
    }
    const Key key = MakeKey(bp, bytes.size());
    const uint32_t found = vocab->Find(bp, bytes.size(), key);
    if (found != kNoRank) return duplicate(r, found);
    vocab->Insert(r, key);
  }
  return vocab;
}

void Vocab::Insert(uint32_t rank, const Key& key) {
  const size_t len = Bytes(rank).size();
  if (len <= 8) {
    size_t i = Reduce(key.hash, mid_cap_);
    while (mid_slots_[i].len_rank != 0) {
      if (++i == mid_cap_) i = 0;
    }
    MidSlot& s = mid_slots_[i];
    std::memcpy(s.key, &key.head, 8);
    s.len_rank = static_cast<uint32_t>(len) << 24 | rank;
    return;
  }
  size_t i = Reduce(key.hash, cap_);
  while (slots_[i].len_rank != 0) {
    if (++i == cap_) i = 0;
  }
  slots_[i] = Slot{key.head, offsets_[rank], LengthTag(len) << 24 | rank};
}

size_t Vocab::MemoryUsage() const {
  return sizeof(*this) + slots_.capacity() * sizeof(Slot) + pool_.capacity() +
         offsets_.capacity() * sizeof(uint32_t) + pair_rank_.capacity() * sizeof(uint32_t) +
         short_slots_.capacity() * sizeof(ShortSlot) + mid_slots_.capacity() * sizeof(MidSlot);
}

}  // namespace modeenvoy::tokenizer_internal
