// modeenvoy-tokens: prints the token ids (or counts) of files or stdin.
//
//   modeenvoy-tokens --encoding o200k_base notes.txt      # the ids of one input, one line
//   echo "hello world" | modeenvoy-tokens --encoding cl100k_base --count
//   modeenvoy-tokens --model gpt-4o --count a.txt b.txt  # "<count> <file>" per file + total
//
// An input that cannot be read is reported and skipped, and the others are still processed
// (exit status 1 at the end, like wc); output that cannot be written stops the program with
// status 1. See kUsage for the rest.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "modeenvoy/tokenizer/encoding.h"
#include "modeenvoy/tokenizer/model.h"

namespace {

constexpr char kUsage[] =
    "usage: modeenvoy-tokens (--encoding NAME | --model MODEL) [--count] [--allow-special]\n"
    "                        [--rank-file PATH] [--] [FILE...]\n"
    "\n"
    "Prints the token ids of each FILE (stdin when none, or for \"-\"), space-separated, one\n"
    "line per input; with several inputs each line starts with \"FILE: \". With --count, the\n"
    "number of tokens instead: \"N\" for one input, \"N FILE\" lines and \"N total\" for several.\n"
    "\n"
    "  -e, --encoding NAME  gpt2 r50k_base p50k_base p50k_edit cl100k_base o200k_base\n"
    "                       o200k_harmony\n"
    "  -m, --model MODEL    the encoding of a model name, as tiktoken.encoding_for_model\n"
    "  -c, --count          print counts instead of ids\n"
    "  --allow-special      encode special-token text (e.g. <|endoftext|>) as the special\n"
    "                       token, like tiktoken's encode(text, allowed_special=\"all\"); by\n"
    "                       default it is ordinary text, like tiktoken's encode_ordinary\n"
    "  --rank-file PATH     the encoding's .tiktoken file; by default\n"
    "                       $MODEENVOY_TOKENIZER_DIR/NAME.tiktoken, then tiktoken's cache\n"
    "                       ($TIKTOKEN_CACHE_DIR, $DATA_GYM_CACHE_DIR or <tmp>/data-gym-cache)\n"
    "  -h, --help           this text\n"
    "\n"
    "Input need not be UTF-8: invalid bytes are tokenized as bytes, as tiktoken does.\n"
    "Exit status: 0 ok; 1 an input or the rank file could not be read (the other inputs are\n"
    "still processed) or the output could not be written; 2 usage error.\n";

[[noreturn]] void UsageError(const std::string& message) {
  std::fprintf(stderr, "modeenvoy-tokens: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

// Writes all of s to stdout, or exits with status 1 naming the error.
void Write(std::string_view s) {
  if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size()) {
    std::fprintf(stderr, "modeenvoy-tokens: write error: %s\n", std::strerror(errno));
    std::exit(1);
  }
}

// Reads all of `file` ("-" is stdin) into *out; on failure prints why and returns false.
bool ReadInput(const std::string& file, std::string* out) {
  std::FILE* f = file == "-" ? stdin : std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "modeenvoy-tokens: %s: %s\n", file.c_str(), std::strerror(errno));
    return false;
  }
  char buf[1 << 16];
  size_t n;
  errno = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const bool ok = std::ferror(f) == 0;
  const int err = errno;
  if (f != stdin) std::fclose(f);
  if (!ok) {
    std::fprintf(stderr, "modeenvoy-tokens: %s: %s\n", file.c_str(),
                 err != 0 ? std::strerror(err) : "read error");
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::string encoding_name, model, rank_file;  // value() refuses empty values
  bool count = false, allow_special = false;
  std::vector<std::string> files;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') {
        UsageError(std::string(arg) + " needs a value");
      }
      *out = argv[++i];
    };
    if (options_done || arg == "-" || arg.empty() || arg[0] != '-') {
      files.emplace_back(arg);
    } else if (arg == "--") {
      options_done = true;
    } else if (arg == "--encoding" || arg == "-e") {
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
      Write(kUsage);
      return std::fflush(stdout) == 0 ? 0 : 1;
    } else {
      UsageError("unknown option " + std::string(arg));
    }
  }
  if (encoding_name.empty() == model.empty()) {
    UsageError("give exactly one of --encoding or --model");
  }
  if (!model.empty()) {
    auto name = modeenvoy::EncodingNameForModel(model);
    if (!name.ok()) {
      std::fprintf(stderr, "modeenvoy-tokens: %s; see --encoding\n",
                   std::string(name.status().message()).c_str());
      return 2;
    }
    encoding_name = *name;
  }
  modeenvoy::EncodingOptions options;
  options.rank_file = rank_file;
  auto enc = modeenvoy::GetEncoding(encoding_name, options);
  if (!enc.ok()) {
    std::fprintf(stderr, "modeenvoy-tokens: %s\n", std::string(enc.status().message()).c_str());
    return enc.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (files.empty()) files.emplace_back("-");
  const bool several = files.size() > 1;
  const modeenvoy::SpecialTokenSet allowed =
      allow_special ? modeenvoy::SpecialTokenSet::All() : modeenvoy::SpecialTokenSet();
  const modeenvoy::SpecialTokenSet disallowed;  // never an error: plain text otherwise
  int status = 0;
  size_t total = 0;
  std::string line;
  std::vector<modeenvoy::Token> ids;
  for (const std::string& file : files) {
    std::string text;
    if (!ReadInput(file, &text)) {
      status = 1;
      continue;
    }
    line.clear();
    if (count) {
      // With nothing disallowed, Count and Encode cannot fail.
      const size_t n = *(*enc)->Count(text, allowed, disallowed);
      total += n;
      line = std::to_string(n);
      if (several) line.append(" ").append(file);
    } else {
      ids = *(*enc)->Encode(text, allowed, disallowed);
      if (several) line.append(file).append(": ");
      for (size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) line.push_back(' ');
        line += std::to_string(ids[i]);
      }
    }
    line.push_back('\n');
    Write(line);
  }
  if (count && several) Write(std::to_string(total) + " total\n");
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::fprintf(stderr, "modeenvoy-tokens: write error: %s\n", std::strerror(errno));
    return 1;
  }
  return status;
}
