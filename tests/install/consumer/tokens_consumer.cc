// A tokenizer-only program, built against an installed modeenvoy by scripts/install_check.sh
// with modeenvoy::tokenizer (CMake) or modeenvoy-tokenizer (pkg-config) alone. The script then
// checks that the executable needs no libcurl: counting tokens must not pull in the gateway.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "modeenvoy/protocol/chat.h"
#include "modeenvoy/tokenizer/chat_tokens.h"
#include "modeenvoy/tokenizer/encoding.h"

namespace {

// A rank file in memory: the 256 single bytes, then "he", "ll", "hell", "hello".
std::string RankFile() {
  std::string out;
  auto line = [&](const std::string& bytes, int rank) {
    out += absl::StrCat(absl::Base64Escape(bytes), " ", rank, "\n");
  };
  for (int b = 0; b < 256; ++b) line(std::string(1, static_cast<char>(b)), b);
  int rank = 256;
  for (const char* merge : {"he", "ll", "hell", "hello"}) line(merge, rank++);
  return out;
}

}  // namespace

int main() {
  modeenvoy::EncodingSpec spec;
  spec.name = "consumer_demo";
  spec.pattern = modeenvoy::SplitPattern::kCl100k;
  spec.special_tokens = {{"<|endoftext|>", 1000}};
  auto enc = modeenvoy::Encoding::Create(spec, RankFile());
  if (!enc.ok()) {
    std::fprintf(stderr, "Encoding::Create failed: %s\n", enc.status().ToString().c_str());
    return 1;
  }
  const std::vector<modeenvoy::Token> ids = (*enc)->EncodeOrdinary("hello hello");
  // "hello" is one token; " hello" is a space then "hello" (no merge for " h").
  const std::vector<modeenvoy::Token> want = {259, 32, 259};
  if (ids != want) {
    std::fprintf(stderr, "unexpected tokens (%zu of them)\n", ids.size());
    return 1;
  }
  auto text = (*enc)->Decode(ids);
  if (!text.ok() || *text != "hello hello") {
    std::fprintf(stderr, "round trip failed\n");
    return 1;
  }

  auto request = modeenvoy::ParseChatRequest(
      R"({"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]})");
  if (!request.ok()) {
    std::fprintf(stderr, "parse failed: %s\n", request.status().ToString().c_str());
    return 1;
  }
  const modeenvoy::ChatTokenCount count = modeenvoy::CountChatTokens(**enc, *request);
  if (count.prompt_tokens <= 1) {
    std::fprintf(stderr, "implausible prompt token count %lld\n",
                 static_cast<long long>(count.prompt_tokens));
    return 1;
  }
  std::printf("tokens consumer ok: %zu tokens, %lld prompt tokens\n", ids.size(),
              static_cast<long long>(count.prompt_tokens));
  return 0;
}
