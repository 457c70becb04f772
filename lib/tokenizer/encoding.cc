#include "modeenvoy/tokenizer/encoding.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "lib/core/status_macros.h"
#include "lib/tokenizer/backtrack.h"
#include "lib/tokenizer/bpe.h"
#include "lib/tokenizer/piece_cache.h"
#include "lib/tokenizer/pretokenize.h"
#include "lib/tokenizer/pretokenize_simd.h"
#include "lib/tokenizer/regex_splitter.h"
#include "lib/core/sha256.h"
#include "lib/tokenizer/vocab.h"

namespace modeenvoy {
namespace {

using core_internal::ToAbsl;
using tokenizer_internal::BacktrackEncoder;
using tokenizer_internal::PieceCache;
using tokenizer_internal::RegexSplitter;
using tokenizer_internal::kNoRank;
using tokenizer_internal::Vocab;

// Finds the leftmost occurrence of any of a set of strings (the longest one at that
// position). Special tokens are few and start with '<', so a memchr on the first byte plus
// a hash probe per distinct length is all it takes.
class StringSetMatcher {
 public:
  StringSetMatcher() = default;
  explicit StringSetMatcher(const std::vector<std::string_view>& strings) {
    for (std::string_view s : strings) {
      if (s.empty()) continue;
      set_.insert(std::string(s));
      first_[static_cast<uint8_t>(s[0])] = true;
      if (std::find(lengths_.begin(), lengths_.end(), s.size()) == lengths_.end()) {
        lengths_.push_back(s.size());
      }
    }
    std::sort(lengths_.rbegin(), lengths_.rend());
    int distinct_first = 0;
    for (int b = 0; b < 256; ++b) {
      if (first_[b]) {
        ++distinct_first;
        single_first_ = static_cast<char>(b);
      }
    }
    use_memchr_ = distinct_first == 1;
  }
  bool empty() const { return set_.empty(); }

  // Returns the position of the first match at or after `from` and its length, or npos.
  std::pair<size_t, size_t> Find(std::string_view text, size_t from) const {
    if (set_.empty()) return {std::string_view::npos, 0};
    const size_t n = text.size();
    size_t i = from;
    while (i < n) {
      if (use_memchr_) {
        const void* hit = std::memchr(text.data() + i, single_first_, n - i);
        if (hit == nullptr) break;
        i = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
      } else if (!first_[static_cast<uint8_t>(text[i])]) {
        ++i;
        continue;
      }
      for (size_t len : lengths_) {
        if (len <= n - i && set_.contains(ToAbsl(text.substr(i, len)))) return {i, len};
      }
      ++i;
    }
    return {std::string_view::npos, 0};
  }

 private:
  absl::flat_hash_set<std::string> set_;
  std::vector<size_t> lengths_;
  bool first_[256] = {};
  bool use_memchr_ = false;
  char single_first_ = 0;
};

// Maximal-subpart replacement of ill-formed UTF-8 with U+FFFD, as CPython's "replace".
void AppendUtf8Replacing(std::string_view in, std::string* out) {
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  out->reserve(out->size() + n);
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = p[i];
    if (b0 < 0x80) {
      out->push_back(static_cast<char>(b0));
      ++i;
      continue;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xbf;  // bounds for the second byte
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2;
      if (b0 == 0xe0) lo = 0xa0;
      if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3;
      if (b0 == 0xf0) lo = 0x90;
      if (b0 == 0xf4) hi = 0x8f;
    } else {
      out->append("\xef\xbf\xbd");
      ++i;
      continue;
    }
    size_t k = 1;
    for (; k <= need && i + k < n; ++k) {
      const uint8_t b = p[i + k];
      const uint8_t l = k == 1 ? lo : 0x80;
      const uint8_t h = k == 1 ? hi : 0xbf;
      if (b < l || b > h) break;
    }
    if (k == need + 1) {
      out->append(in.data() + i, need + 1);
      i += need + 1;
    } else {
      out->append("\xef\xbf\xbd");
      i += k;
    }
  }
}

template <class F>
void ParallelFor(size_t n, int num_threads, const F& f) {
  const size_t workers = std::min<size_t>(n, num_threads > 1 ? static_cast<size_t>(num_threads) : 1);
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (;;) {
      const size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      f(i);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(workers - 1);
  for (size_t t = 1; t < workers; ++t) {
    try {
      threads.emplace_back(run);
    } catch (...) {
      break;  // out of threads: the calling thread does the remaining work
    }
  }
  run();
  for (std::thread& t : threads) t.join();
}

}  // namespace

struct Encoding::Impl {
  std::unique_ptr<Vocab> vocab;
  std::unique_ptr<BacktrackEncoder> bpe;  // refers to *vocab
  absl::flat_hash_map<std::string, Token> special_encoder;
  absl::flat_hash_map<Token, std::string> special_decoder;
  std::vector<std::string_view> special_strings;
  StringSetMatcher all_specials;
  std::unique_ptr<RegexSplitter> regex;  // SplitPattern::kRegex only
};

SpecialTokenSet::SpecialTokenSet(std::initializer_list<std::string_view> tokens) {
  tokens_.reserve(tokens.size());
  for (std::string_view t : tokens) tokens_.emplace_back(t);
}

Encoding::Encoding(EncodingSpec spec) : spec_(std::move(spec)), impl_(new Impl) {}
Encoding::~Encoding() = default;

absl::StatusOr<std::unique_ptr<Encoding>> Encoding::Create(EncodingSpec spec,
                                                           std::string_view rank_file_contents) {
  if (!spec.expected_sha256.empty()) {
    const std::string actual = core_internal::Sha256Hex(rank_file_contents);
    if (actual != spec.expected_sha256) {
      return absl::DataLossError(absl::StrFormat(
          "rank file for %s has sha256 %s, expected %s (corrupt or a different file)",
          spec.name, actual, spec.expected_sha256));
    }
  }
  const std::string source = spec.name.empty() ? std::string("rank file") : spec.name;
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Vocab> vocab, Vocab::Parse(rank_file_contents, source));
  return Finish(std::move(spec), std::move(vocab));
}

absl::StatusOr<std::unique_ptr<Encoding>> Encoding::CreateFromRanks(
    EncodingSpec spec, std::vector<std::pair<std::string, Token>> ranks) {
  std::vector<std::pair<uint32_t, std::string>> entries;
  entries.reserve(ranks.size());
  for (auto& [bytes, rank] : ranks) entries.emplace_back(rank, std::move(bytes));
  ranks.clear();
  const std::string source =
      absl::StrCat(spec.name.empty() ? std::string("encoding") : spec.name, ": mergeable_ranks");
  MODEENVOY_ASSIGN_OR_RETURN(std::unique_ptr<Vocab> vocab,
                             Vocab::FromRanks(std::move(entries), source));
  spec.expected_sha256.clear();
  return Finish(std::move(spec), std::move(vocab));
}

absl::StatusOr<std::unique_ptr<Encoding>> Encoding::Finish(EncodingSpec spec,
                                                           std::unique_ptr<Vocab> vocab) {
  std::unique_ptr<RegexSplitter> regex;
  if (spec.pattern == SplitPattern::kRegex) {
    const SplitPattern builtin = BuiltinSplitPattern(spec.regex);
    if (builtin != SplitPattern::kRegex) {
      spec.pattern = builtin;  // the hand-written splitter: same pieces, no regex engine
    } else {
      MODEENVOY_ASSIGN_OR_RETURN(regex, RegexSplitter::Compile(spec.regex));
    }
  }
  if (spec.pattern != SplitPattern::kRegex) spec.regex.clear();
  std::unique_ptr<Encoding> enc(new Encoding(std::move(spec)));
  Impl& impl = *enc->impl_;
  Token max_value = vocab->max_rank();
  for (const auto& [text, id] : enc->spec_.special_tokens) {
    if (text.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: special token with id %d is empty", enc->spec_.name, id));
    }
    if (!vocab->Bytes(id).empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: special token '%s' has id %d, which is a mergeable rank", enc->spec_.name, text, id));
    }
    if (!impl.special_encoder.emplace(text, id).second) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: special token '%s' listed twice", enc->spec_.name, text));
    }
    impl.special_decoder.emplace(id, text);  // the first string wins for shared ids
    max_value = std::max(max_value, id);
  }
  for (const auto& [text, id] : enc->spec_.special_tokens) impl.special_strings.push_back(text);
  impl.all_specials = StringSetMatcher(impl.special_strings);
  if (enc->spec_.explicit_n_vocab != 0) {
    const size_t total = vocab->size() + enc->spec_.special_tokens.size();
    if (total != enc->spec_.explicit_n_vocab || max_value + 1 != enc->spec_.explicit_n_vocab) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: expected n_vocab %d, the rank file and special tokens give %d tokens, max id %d",
          enc->spec_.name, enc->spec_.explicit_n_vocab, total, max_value));
    }
  }
  enc->max_token_value_ = max_value;
  impl.bpe = BacktrackEncoder::Build(*vocab);
  impl.vocab = std::move(vocab);
  impl.regex = std::move(regex);
  return enc;
}

std::string_view Encoding::regex() const {
  return spec_.pattern == SplitPattern::kRegex ? std::string_view(spec_.regex)
                                               : SplitPatternRegex(spec_.pattern);
}

bool Encoding::IsSpecialToken(Token token) const {
  return impl_->special_decoder.contains(token);
}

size_t Encoding::MemoryUsage() const {
  size_t bytes = sizeof(*this) + sizeof(Impl) + impl_->vocab->MemoryUsage() +
                 impl_->bpe->MemoryUsage();
  for (const auto& [text, id] : spec_.special_tokens) bytes += 2 * (text.capacity() + 48);
  return bytes;
}

namespace {

// ASCII pieces up to this many bytes go to the scan merge (see EncodePiece).
constexpr size_t kScanMergeAsciiMax = 12;

// Whether [p, p+n) is all ASCII. REQUIRES: 1 <= n <= 16.
inline bool ShortIsAscii(const uint8_t* p, size_t n) {
  const size_t k = n < 8 ? n : 8;
  const uint64_t bits = tokenizer_internal::LoadUpTo8(p, k) |
                        tokenizer_internal::LoadUpTo8(p + n - k, k);
  return (bits & 0x8080808080808080ull) == 0;
}

// Byte pair encoding of a piece that is not itself a token (REQUIRES: n >= 2). Which
// algorithm is faster depends on the text (bench/tokenizer, docs/tokenizer.md): short ASCII
// pieces (English words, identifiers) need few merges whose lookups stay in the small rank
// tables, so the scan merge wins up to 12 bytes; pieces in other scripts need a merge per
// UTF-8 byte, and the backtracking encoder wins from 5 bytes on. A vocabulary the
// backtracking encoder cannot serve (BacktrackEncoder::usable()) gets the merge loop only.
template <class Sink>
void EncodePiece(const Vocab& vocab, const BacktrackEncoder& bpe, const uint8_t* p, size_t n,
                 Sink& sink) {
  const bool scan = n <= 4 || (n <= kScanMergeAsciiMax && ShortIsAscii(p, n));
  if (!scan && bpe.usable()) {
    bpe.Encode(p, n, sink);
  } else if (n <= tokenizer_internal::kSmallPieceMax) {
    tokenizer_internal::MergeSmall(vocab, p, n, sink);
  } else {
    tokenizer_internal::MergeLarge(vocab, p, n, sink);
  }
}

// Length of the longest well-formed UTF-8 prefix of `in` (Rust's Utf8Error::valid_up_to):
// no overlong forms, surrogates or code points above U+10FFFF.
size_t ValidUtf8Prefix(std::string_view in) {
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b0 = p[i];
    if (b0 < 0x80) {
      ++i;
      continue;
    }
    size_t need;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2;
      if (b0 == 0xe0) lo = 0xa0;
      if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3;
      if (b0 == 0xf0) lo = 0x90;
      if (b0 == 0xf4) hi = 0x8f;
    } else {
      return i;
    }
    if (i + need >= n) return i;  // truncated
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k <= need; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return i;
    }
    i += need + 1;
  }
  return n;
}

// One piece, as tiktoken encodes a regex match: its rank if it is a token, else its merge.
template <class Sink>
void EncodeOnePiece(const Vocab& vocab, const BacktrackEncoder& bpe, const uint8_t* p, size_t n,
                    Sink& sink) {
  if (n == 0) return;
  if (n == 1) {
    sink.Push(vocab.ByteRank(*p));
    return;
  }
  const uint32_t rank = vocab.Find(p, n);
  if (rank != kNoRank) {
    sink.Push(rank);
  } else {
    EncodePiece(vocab, bpe, p, n, sink);
  }
}

}  // namespace

template <class F>
void Encoding::ForEachPiece(std::string_view text, const F& f) const {
  const auto* const begin = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = begin + text.size();
  auto loop = [&](auto next_piece) {
    for (const uint8_t* p = begin; p < end;) {
      const uint8_t* q = next_piece(p, end);
      f(static_cast<size_t>(p - begin), static_cast<size_t>(q - begin));
      p = q;
    }
  };
  using tokenizer_internal::NextCl100kPiece;
  using tokenizer_internal::NextO200kPiece;
  using tokenizer_internal::NextR50kPiece;
  switch (spec_.pattern) {
    case SplitPattern::kCl100k:
      loop([](const uint8_t* a, const uint8_t* b) { return NextCl100kPiece<true>(a, b); });
      break;
    case SplitPattern::kLlama3:
      loop([](const uint8_t* a, const uint8_t* b) { return NextCl100kPiece<false>(a, b); });
      break;
    case SplitPattern::kO200k:
      loop([](const uint8_t* a, const uint8_t* b) { return NextO200kPiece(a, b); });
      break;
    case SplitPattern::kR50k:
      loop([](const uint8_t* a, const uint8_t* b) { return NextR50kPiece(a, b); });
      break;
    case SplitPattern::kRegex:
      impl_->regex->ForEachMatch(text, [&](size_t b, size_t e) { f(b, e); });
      break;
  }
}

template <class Sink>
void Encoding::EncodeRegexTo(std::string_view text, Sink& sink) const {
  const Vocab& vocab = *impl_->vocab;
  const BacktrackEncoder& bpe = *impl_->bpe;
  const auto* base = reinterpret_cast<const uint8_t*>(text.data());
  impl_->regex->ForEachMatch(text, [&](size_t b, size_t e) {
    EncodeOnePiece(vocab, bpe, base + b, e - b, sink);
  });
}

std::vector<Token> Encoding::EncodeBytes(std::string_view bytes) const {
  const size_t valid = ValidUtf8Prefix(bytes);
  if (valid == bytes.size()) return EncodeOrdinary(bytes);
  // tiktoken's CoreBPE::_encode_bytes (src/py.rs) and _increase_last_piece_token_len.
  const std::string_view text = bytes.substr(0, valid);
  std::vector<Token> tokens = EncodeOrdinary(text);
  const Vocab& vocab = *impl_->vocab;
  size_t last_begin = 0, last_end = 0;
  ForEachPiece(text, [&](size_t b, size_t e) {
    last_begin = b;
    last_end = e;
  });
  tokenizer_internal::CountSink last;
  EncodeOnePiece(vocab, *impl_->bpe,
                 reinterpret_cast<const uint8_t*>(text.data()) + last_begin, last_end - last_begin,
                 last);
  size_t last_len = last.count;
  auto all_space = [&](Token t) {
    const std::string_view b = vocab.Bytes(t);  // empty for special ids: not whitespace
    if (b.empty()) return false;
    for (char c : b) {
      if (c != ' ' && c != '\n' && c != '\t') return false;
    }
    return true;
  };
  if (last_len > 0 && all_space(tokens[tokens.size() - last_len])) {
    while (last_len < tokens.size() && all_space(tokens[tokens.size() - last_len - 1])) ++last_len;
  }
  std::string unstable;
  if (!tokens.empty() && last_len > 0) {
    for (size_t i = tokens.size() - last_len; i < tokens.size(); ++i) {
      const std::string_view b = vocab.Bytes(tokens[i]);
      unstable.append(b.data(), b.size());
    }
    tokens.resize(tokens.size() - last_len);
  }
  unstable.append(bytes.data() + valid, bytes.size() - valid);
  const auto* u = reinterpret_cast<const uint8_t*>(unstable.data());
  tokenizer_internal::TokenSink sink{&tokens};
  if (unstable.size() == 1) {
    sink.Push(vocab.ByteRank(u[0]));
  } else {
    const uint32_t rank = vocab.Find(u, unstable.size());
    if (rank != kNoRank) {
      sink.Push(rank);
    } else if (unstable.size() <= tokenizer_internal::kSmallPieceMax) {
      tokenizer_internal::MergeSmall(vocab, u, unstable.size(), sink);
    } else {
      tokenizer_internal::MergeLarge(vocab, u, unstable.size(), sink);
    }
  }
  return tokens;
}

template <class Sink>
void Encoding::EncodeOrdinaryTo(std::string_view text, Sink& sink) const {
  const Vocab& vocab = *impl_->vocab;
  const BacktrackEncoder& bpe = *impl_->bpe;
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const uint8_t* const end = p + text.size();
  // Pieces are cut a batch ahead of their lookups so the hash-table slots (megabytes, not
  // cache-resident) can be prefetched while earlier pieces are looked up.
  constexpr int kBatch = 64;
  struct Pending {
    const uint8_t* p;
    uint32_t len;
    Vocab::Key key;
  };
  // The piece cache is fetched on the first piece that needs it (one thread-local lookup
  // and generation check per call, not per piece); nullptr after that means disabled.
  PieceCache* cache = nullptr;
  bool cache_fetched = false;
  auto piece_cache = [&]() -> PieceCache* {
    if (!cache_fetched) {
      cache = PieceCache::ForThread();
      cache_fetched = true;
    }
    return cache;
  };
  // Counting needs no rank for a piece that is one token, and every one-byte piece is one:
  // those are counted as they are cut, without a batch entry or a table read.
  constexpr bool kCounting = std::is_same_v<Sink, tokenizer_internal::CountSink>;
  auto run = [&](auto next_piece) {
    // Local copies, so the cursor, the end and the counter (or vector pointer) stay in
    // registers across the splitter's out-of-line calls.
    Sink out = sink;
    const uint8_t* cur = p;
    const uint8_t* const stop = end;
    Pending batch[kBatch];
    while (cur < stop) {
      int count = 0;
      while (count < kBatch && cur < stop) {
        const uint8_t* q = next_piece(cur, stop);
        const uint32_t len = static_cast<uint32_t>(q - cur);
        if constexpr (kCounting) {
          if (len == 1) {
            out.Push(0);
            cur = q;
            continue;
          }
        }
        Pending& piece = batch[count++];
        piece.p = cur;
        piece.len = len;
        // A piece with 8 bytes of text from its start keys with one masked load.
        piece.key = len <= 8 && stop - cur >= 8 ? Vocab::MakeKeyReadable8(cur, len)
                                                : Vocab::MakeKey(cur, len);
        if (len > 1) vocab.PrefetchKeyed(cur, len, piece.key);
        cur = q;
      }
      for (int i = 0; i < count; ++i) {
        const Pending& piece = batch[i];
        const uint32_t rank = vocab.FindKeyed(piece.p, piece.len, piece.key);
        if (rank != kNoRank) {
          out.Push(rank);
        } else if (piece.len > 4 && piece.len <= PieceCache::kMaxBytes && piece_cache() != nullptr) {
          size_t n;
          const uint32_t* hit = cache->Find(vocab.id(), piece.key.hash, piece.p, piece.len, &n);
          if (hit != nullptr) {
            for (size_t k = 0; k < n; ++k) out.Push(hit[k]);
          } else {
            tokenizer_internal::ArraySink merged;
            EncodePiece(vocab, bpe, piece.p, piece.len, merged);
            for (size_t k = 0; k < merged.count; ++k) out.Push(merged.tokens[k]);
            cache->Insert(vocab.id(), piece.key.hash, piece.p, piece.len, merged.tokens, merged.count);
          }
        } else {
          EncodePiece(vocab, bpe, piece.p, piece.len, out);
        }
      }
    }
    sink = out;
    p = cur;
  };
  // Lambdas, not function pointers: each run() instance gets its splitter inlined. The
  // block-classified splitter (pretokenize_simd.h) cuts the same pieces as the reference one.
  using tokenizer_internal::MaskSplitter;
  using tokenizer_internal::NextCl100kPiece;
  using tokenizer_internal::NextO200kPiece;
  using tokenizer_internal::NextR50kPiece;
  const tokenizer_internal::ClassifyFn classify =
      tokenizer_internal::ClassifierFor(tokenizer_internal::CurrentPretokenizeMode());
  auto run_masks = [&](auto splitter) {
    run([&splitter](const uint8_t* a, const uint8_t* b) { return splitter.Next(a, b); });
  };
  switch (spec_.pattern) {
    case SplitPattern::kCl100k:
      if (classify != nullptr) {
        run_masks(MaskSplitter<SplitPattern::kCl100k>(classify));
      } else {
        run([](const uint8_t* a, const uint8_t* b) { return NextCl100kPiece<true>(a, b); });
      }
      break;
    case SplitPattern::kLlama3:
      if (classify != nullptr) {
        run_masks(MaskSplitter<SplitPattern::kLlama3>(classify));
      } else {
        run([](const uint8_t* a, const uint8_t* b) { return NextCl100kPiece<false>(a, b); });
      }
      break;
    case SplitPattern::kO200k:
      if (classify != nullptr) {
        run_masks(MaskSplitter<SplitPattern::kO200k>(classify));
      } else {
        run([](const uint8_t* a, const uint8_t* b) { return NextO200kPiece(a, b); });
      }
      break;
    case SplitPattern::kR50k:
      if (classify != nullptr) {
        run_masks(MaskSplitter<SplitPattern::kR50k>(classify));
      } else {
        run([](const uint8_t* a, const uint8_t* b) { return NextR50kPiece(a, b); });
      }
      break;
    case SplitPattern::kRegex:
      EncodeRegexTo(text, sink);
      break;
  }
}

std::vector<Token> Encoding::EncodeOrdinary(std::string_view text) const {
  std::vector<Token> out;
  out.reserve(text.size() / 4 + 4);
  tokenizer_internal::TokenSink sink{&out};
  EncodeOrdinaryTo(text, sink);
  return out;
}

void Encoding::EncodeOrdinaryInto(std::string_view text, std::vector<Token>* out) const {
  tokenizer_internal::TokenSink sink{out};
  EncodeOrdinaryTo(text, sink);
}

size_t Encoding::CountOrdinary(std::string_view text) const {
  tokenizer_internal::CountSink sink;
  EncodeOrdinaryTo(text, sink);
  return sink.count;
}

template <class Sink>
absl::Status Encoding::EncodeTo(std::string_view text, const SpecialTokenSet& allowed,
                                const SpecialTokenSet& disallowed, Sink& sink) const {
  const Impl& impl = *impl_;
  // Allowed special tokens of this encoding (other strings can never match tiktoken's
  // special-token regex, so they are irrelevant).
  std::vector<std::string_view> allowed_list;
  if (allowed.all()) {
    allowed_list = impl.special_strings;
  } else {
    for (const std::string& s : allowed.tokens()) {
      if (impl.special_encoder.contains(s)) allowed_list.push_back(s);
    }
  }
  // Disallowed check over the whole text, as tiktoken does before encoding.
  if (disallowed.all()) {
    if (allowed_list.empty()) {
      const auto [pos, len] = impl.all_specials.Find(text, 0);
      if (pos != std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "text contains the disallowed special token '%s' at byte %d; allow it to encode it "
            "as a special token, or remove it from the disallowed set to encode it as text",
            ToAbsl(text.substr(pos, len)), pos));
      }
    } else if (allowed_list.size() < impl.special_strings.size()) {
      std::vector<std::string_view> rest;
      for (std::string_view s : impl.special_strings) {
        if (std::find(allowed_list.begin(), allowed_list.end(), s) == allowed_list.end()) {
          rest.push_back(s);
        }
      }
      const auto [pos, len] = StringSetMatcher(rest).Find(text, 0);
      if (pos != std::string_view::npos) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "text contains the disallowed special token '%s' at byte %d; allow it to encode it "
            "as a special token, or remove it from the disallowed set to encode it as text",
            ToAbsl(text.substr(pos, len)), pos));
      }
    }
  } else if (!disallowed.tokens().empty()) {
    std::vector<std::string_view> list(disallowed.tokens().begin(), disallowed.tokens().end());
    const auto [pos, len] = StringSetMatcher(list).Find(text, 0);
    if (pos != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "text contains the disallowed special token '%s' at byte %d; allow it to encode it "
          "as a special token, or remove it from the disallowed set to encode it as text",
          ToAbsl(text.substr(pos, len)), pos));
    }
  }
  if (allowed_list.empty()) {
    EncodeOrdinaryTo(text, sink);
    return absl::OkStatus();
  }
  const StringSetMatcher local(allowed_list);
  const StringSetMatcher& matcher =
      allowed_list.size() == impl.special_strings.size() ? impl.all_specials : local;
  size_t start = 0;
  for (;;) {
    const auto [pos, len] = matcher.Find(text, start);
    const size_t seg_end = pos == std::string_view::npos ? text.size() : pos;
    EncodeOrdinaryTo(text.substr(start, seg_end - start), sink);
    if (pos == std::string_view::npos) break;
    sink.Push(impl.special_encoder.find(ToAbsl(text.substr(pos, len)))->second);
    start = pos + len;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Token>> Encoding::Encode(std::string_view text,
                                                    const SpecialTokenSet& allowed_special,
                                                    const SpecialTokenSet& disallowed_special) const {
  std::vector<Token> out;
  out.reserve(text.size() / 4 + 4);
  tokenizer_internal::TokenSink sink{&out};
  MODEENVOY_RETURN_IF_ERROR(EncodeTo(text, allowed_special, disallowed_special, sink));
  return out;
}

absl::StatusOr<size_t> Encoding::Count(std::string_view text,
                                       const SpecialTokenSet& allowed_special,
                                       const SpecialTokenSet& disallowed_special) const {
  tokenizer_internal::CountSink sink;
  MODEENVOY_RETURN_IF_ERROR(EncodeTo(text, allowed_special, disallowed_special, sink));
  return sink.count;
}

absl::StatusOr<std::vector<std::vector<Token>>> Encoding::EncodeBatch(
    absl::Span<const std::string_view> texts, const SpecialTokenSet& allowed_special,
    const SpecialTokenSet& disallowed_special, int num_threads) const {
  std::vector<std::vector<Token>> out(texts.size());
  std::vector<absl::Status> status(texts.size());
  ParallelFor(texts.size(), num_threads, [&](size_t i) {
    tokenizer_internal::TokenSink sink{&out[i]};
    status[i] = EncodeTo(texts[i], allowed_special, disallowed_special, sink);
  });
  for (size_t i = 0; i < texts.size(); ++i) {
    if (!status[i].ok()) {
      return absl::Status(status[i].code(),
                          absl::StrCat("texts[", i, "]: ", status[i].message()));
    }
  }
  return out;
}

std::vector<std::vector<Token>> Encoding::EncodeOrdinaryBatch(
    absl::Span<const std::string_view> texts, int num_threads) const {
  std::vector<std::vector<Token>> out(texts.size());
  ParallelFor(texts.size(), num_threads, [&](size_t i) { out[i] = EncodeOrdinary(texts[i]); });
  return out;
}

std::vector<size_t> Encoding::CountOrdinaryBatch(absl::Span<const std::string_view> texts,
                                                 int num_threads) const {
  std::vector<size_t> out(texts.size());
  ParallelFor(texts.size(), num_threads, [&](size_t i) { out[i] = CountOrdinary(texts[i]); });
  return out;
}

absl::StatusOr<std::string_view> Encoding::DecodeSingleTokenBytes(Token token) const {
  std::string_view bytes = impl_->vocab->Bytes(token);
  if (!bytes.empty()) return bytes;
  auto it = impl_->special_decoder.find(token);
  if (it != impl_->special_decoder.end()) return std::string_view(it->second);
  return absl::InvalidArgumentError(
      absl::StrFormat("token %d is not in the vocabulary of %s", token, spec_.name));
}

absl::StatusOr<std::string> Encoding::DecodeBytes(absl::Span<const Token> tokens) const {
  std::string out;
  const Vocab& vocab = *impl_->vocab;
  out.reserve(tokens.size() * 4);
  for (Token t : tokens) {
    std::string_view bytes = vocab.Bytes(t);
    if (bytes.empty()) {
      MODEENVOY_ASSIGN_OR_RETURN(bytes, DecodeSingleTokenBytes(t));
    }
    out.append(bytes.data(), bytes.size());
  }
  return out;
}

absl::StatusOr<std::string> Encoding::Decode(absl::Span<const Token> tokens) const {
  MODEENVOY_ASSIGN_OR_RETURN(std::string bytes, DecodeBytes(tokens));
  std::string out;
  AppendUtf8Replacing(bytes, &out);
  return out;
}

absl::StatusOr<Token> Encoding::EncodeSingleToken(std::string_view bytes) const {
  if (!bytes.empty()) {
    const uint32_t rank =
        impl_->vocab->Find(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    if (rank != kNoRank) return rank;
  }
  auto it = impl_->special_encoder.find(ToAbsl(bytes));
  if (it != impl_->special_encoder.end()) return it->second;
  return absl::NotFoundError(absl::StrFormat("%s has no token for these %d bytes", spec_.name,
                                             bytes.size()));
}

}  // namespace modeenvoy
