// modeenvoy-tokens: prints the token ids (or counts) of files or stdin.
//
//   modeenvoy-tokens --encoding o200k_base notes.txt      # ids, one line per file
//   echo "hello world" | modeenvoy-tokens --encoding cl100k_base --count
//   modeenvoy-tokens --model gpt-4o --count a.txt b.txt  # "<count> <file>" per file + total
//
// Rank files are found as by modeenvoy::GetEncoding: --rank-file, $MODEENVOY_TOKENIZER_DIR,
// or tiktoken's cache ($TIKTOKEN_CACHE_DIR). Special-token text is encoded as plain text
// unless --allow-special is given. Exit status: 0 ok, 1 runtime error, 2 usage error.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace {

constexpr char kUsage[] =
    "usage: modeenvoy-tokens (--encoding NAME | --model MODEL) [--count] [--allow-special]\n"
    "                        [--rank-file PATH] [FILE...]\n"
    "Prints the token ids of each FILE (stdin when none), space-separated, one line per input;\n"
    "with --count, the number of tokens instead (\"<count> <file>\" lines and a total when\n"
    "several files are given). Encodings: gpt2 r50k_base p50k_base p50k_edit cl100k_base\n"
    "o200k_base o200k_harmony.\n";

bool ReadAll(std::FILE* f, std::string* out) {
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  return std::ferror(f) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string encoding_name, model, rank_file;
  bool count = false, allow_special = false;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) {
        std::cerr << "modeenvoy-tokens: " << arg << " needs a value\n" << kUsage;
        std::exit(2);
      }
      *out = argv[++i];
    };
    if (arg == "--encoding" || arg == "-e") {
      value(&encoding_name);
    } else if (arg == "--model" || arg == "-m") {
      value(&model);
    } else if (arg == "--rank-file") {
      value(&rank_file);
    } else if (arg == "--count" || arg == "-c") {
      count = true;
    } else if (arg == "--allow-special") {
      allow_special = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (arg == "-") {
      files.emplace_back("-");
    } else if (arg.size() > 1 && arg[0] == '-') {
      std::cerr << "modeenvoy-tokens: unknown option " << arg << "\n" << kUsage;
      return 2;
    } else {
      files.emplace_back(arg);
    }
  }
  if (encoding_name.empty() == model.empty()) {
    std::cerr << "modeenvoy-tokens: give exactly one of --encoding or --model\n" << kUsage;
    return 2;
  }
  if (!model.empty()) {
    auto name = modeenvoy::EncodingNameForModel(model);
    if (!name.ok()) {
      std::cerr << "modeenvoy-tokens: " << name.status().message() << "\n";
      return 2;
    }
    encoding_name = *name;
  }
  modeenvoy::EncodingOptions options;
  options.rank_file = rank_file;
  auto enc = modeenvoy::GetEncoding(encoding_name, options);
  if (!enc.ok()) {
    std::cerr << "modeenvoy-tokens: " << enc.status().message() << "\n";
    return enc.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (files.empty()) files.emplace_back("-");
  const modeenvoy::SpecialTokenSet allowed =
      allow_special ? modeenvoy::SpecialTokenSet::All() : modeenvoy::SpecialTokenSet();
  const modeenvoy::SpecialTokenSet disallowed;  // never an error: plain text otherwise
  size_t total = 0;
  std::string out;
  for (const std::string& file : files) {
    std::string text;
    std::FILE* f = file == "-" ? stdin : std::fopen(file.c_str(), "rb");
    if (f == nullptr) {
      std::cerr << "modeenvoy-tokens: " << file << ": " << std::strerror(errno) << "\n";
      return 1;
    }
    const bool ok = ReadAll(f, &text);
    if (f != stdin) std::fclose(f);
    if (!ok) {
      std::cerr << "modeenvoy-tokens: " << file << ": read error\n";
      return 1;
    }
    if (count) {
      const size_t n = *(*enc)->Count(text, allowed, disallowed);
      total += n;
      out = std::to_string(n);
      if (files.size() > 1) out += " " + file;
    } else {
      const std::vector<modeenvoy::Token> ids = *(*enc)->Encode(text, allowed, disallowed);
      out.clear();
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) out.push_back(' ');
        out += std::to_string(ids[i]);
      }
    }
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  if (count && files.size() > 1) std::printf("%zu total\n", total);
  return std::fflush(stdout) == 0 ? 0 : 1;
}
