// tests/protocol/fixtures.h: access to the recorded provider fixtures for protocol tests.
#ifndef MODEENVOY_TESTS_PROTOCOL_FIXTURES_H_
#define MODEENVOY_TESTS_PROTOCOL_FIXTURES_H_

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace modeenvoy::protocol_test {

// The fixtures root: MODEENVOY_FIXTURES_DIR, else the build's default location; nullopt
// when neither names an existing directory.
inline std::optional<std::filesystem::path> FixturesDir() {
  const char* dir = std::getenv("MODEENVOY_FIXTURES_DIR");
#ifdef MODEENVOY_DEFAULT_FIXTURES_DIR
  if (dir == nullptr || *dir == '\0') dir = MODEENVOY_DEFAULT_FIXTURES_DIR;
#endif
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return std::nullopt;
  return std::filesystem::path(dir);
}

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Regular files directly in `dir` whose name ends with `suffix`, sorted; files whose name
// contains any of `exclude` are skipped. A missing directory gives an empty list.
inline std::vector<std::filesystem::path> ListFiles(const std::filesystem::path& dir,
                                                    std::string_view suffix,
                                                    std::vector<std::string> exclude = {}) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name.size() < suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    bool skip = false;
    for (const std::string& word : exclude) skip = skip || name.find(word) != std::string::npos;
    if (!skip) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Non-empty lines of a .chunks.txt file (one SSE data payload per line).
inline std::vector<std::string> ChunkLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Folders (relative to the fixtures root) holding OpenAI Chat Completions format
// responses (*.json) and streams (*.chunks.txt) from OpenAI and compatible providers.
inline const std::vector<std::string>& OpenAiChatResponseDirs() {
  static const std::vector<std::string> dirs = {
      "vercel-ai/packages/openai/src/chat/__fixtures__",
      "vercel-ai/packages/openai-compatible/src/chat/__fixtures__",
      "vercel-ai/packages/deepseek/src/chat/__fixtures__",
      "vercel-ai/packages/groq/src/__fixtures__",
      "vercel-ai/packages/mistral/src/__fixtures__",
      "vercel-ai/packages/xai/src/__fixtures__",
  };
  return dirs;
}

}  // namespace modeenvoy::protocol_test

#endif  // MODEENVOY_TESTS_PROTOCOL_FIXTURES_H_
