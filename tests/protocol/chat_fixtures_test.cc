// Round trips of the chat model over every recorded OpenAI-format fixture: parsing
// succeeds, Parse(Serialize(x)) == x, and nothing is lost, which is checked by comparing
// the original and the re-serialized JSON as values (nlohmann), nulls aside.
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/protocol/chat.h"
#include "nlohmann/json.hpp"
#include "tests/protocol/fixtures.h"

namespace modeenvoy {
namespace {

namespace fs = std::filesystem;
using protocol_test::ChunkLines;
using protocol_test::ListFiles;
using protocol_test::ReadFile;

// Null members are absent in the model (and response fields OpenAI always sends are
// written as null), so compare with null members removed at every level.
nlohmann::json DropNulls(const nlohmann::json& j) {
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (!it.value().is_null()) out[it.key()] = DropNulls(it.value());
    }
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& e : j) out.push_back(DropNulls(e));
    return out;
  }
  return j;
}

// Every member of `original` is in `written` with an equal value; `written` may add
// members the model always writes (defaults such as "index":0 or "object").
void ExpectContains(const nlohmann::json& written, const nlohmann::json& original,
                    const std::string& path) {
  if (original.is_object()) {
    ASSERT_TRUE(written.is_object()) << path;
    for (auto it = original.begin(); it != original.end(); ++it) {
      ASSERT_TRUE(written.contains(it.key())) << path << "." << it.key() << " lost";
      ExpectContains(written[it.key()], it.value(), path + "." + it.key());
    }
  } else if (original.is_array()) {
    ASSERT_TRUE(written.is_array()) << path;
    ASSERT_EQ(written.size(), original.size()) << path;
    for (size_t i = 0; i < original.size(); ++i) {
      ExpectContains(written[i], original[i], path + "[" + std::to_string(i) + "]");
    }
  } else {
    EXPECT_EQ(written, original) << path;
  }
}

void ExpectNothingLost(const std::string& original, const std::string& written, bool exact) {
  ASSERT_TRUE(nlohmann::json::accept(written)) << written;
  const nlohmann::json a = DropNulls(nlohmann::json::parse(original));
  nlohmann::json b = DropNulls(nlohmann::json::parse(written));
  // A request always has "model" and "messages"; Kong's client requests omit the model.
  for (const char* always : {"model", "messages"}) {
    if (exact && !a.contains(always) && b.contains(always) &&
        (b[always] == "" || b[always] == nlohmann::json::array())) {
      b.erase(always);
    }
  }
  if (exact) {
    EXPECT_EQ(b, a) << "original:\n" << original << "\nwritten:\n" << written;
  } else {
    ExpectContains(b, a, "");
  }
}

class ChatFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::optional<fs::path> dir = protocol_test::FixturesDir();
    if (!dir) GTEST_SKIP() << "fixtures not found (set MODEENVOY_FIXTURES_DIR)";
    dir_ = *dir;
  }

  std::vector<fs::path> RequestFiles() const {
    const fs::path kong = dir_ / "kong/spec/fixtures/ai-proxy";
    std::vector<fs::path> files;
    for (const char* provider : {"openai", "anthropic", "cohere", "huggingface", "mistral",
                                 "gemini", "llama2"}) {
      for (const fs::path& f : ListFiles(kong / provider / "llm-v1-chat/requests", ".json")) {
        files.push_back(f);
      }
    }
    for (const char* f : {"unit/requests/llm-v1-chat.json",
                          "unit/expected-requests/openai/llm-v1-chat.json",
                          "unit/expected-requests/azure/llm-v1-chat.json",
                          "unit/expected-requests/mistral/openai/llm-v1-chat.json",
                          "native/target/target-openai-complete.json",
                          "native/target/target-openai-complete-stream.json",
                          "llama2/ollama/chat-stream.json"}) {
      if (fs::exists(kong / f)) files.push_back(kong / f);
    }
    return files;
  }

  std::vector<fs::path> CompletionFiles() const {
    std::vector<fs::path> files;
    for (const std::string& d : protocol_test::OpenAiChatResponseDirs()) {
      for (const fs::path& f :
           ListFiles(dir_ / d, ".json", {"error", "transcription"})) {
        files.push_back(f);
      }
    }
    const fs::path kong = dir_ / "kong/spec/fixtures/ai-proxy";
    for (const char* f : {"openai/llm-v1-chat/responses/good.json",
                          "mistral/llm-v1-chat/responses/good.json",
                          "unit/real-responses/openai/llm-v1-chat.json",
                          "unit/real-responses/azure/llm-v1-chat.json"}) {
      if (fs::exists(kong / f)) files.push_back(kong / f);
    }
    // Kong's translators turn every provider's answer into this OpenAI-format body.
    std::error_code ec;
    for (const auto& entry :
         fs::recursive_directory_iterator(kong / "unit/expected-responses", ec)) {
      if (entry.path().filename() == "llm-v1-chat.json") files.push_back(entry.path());
    }
    return files;
  }

  std::vector<fs::path> ChunkFiles() const {
    std::vector<fs::path> files;
    for (const std::string& d : protocol_test::OpenAiChatResponseDirs()) {
      for (const fs::path& f : ListFiles(dir_ / d, ".chunks.txt")) files.push_back(f);
    }
    return files;
  }

  fs::path dir_;
};

TEST_F(ChatFixtureTest, RequestsRoundTripLosslessly) {
  const std::vector<fs::path> files = RequestFiles();
  ASSERT_GE(files.size(), 20u);
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const std::string json = ReadFile(file);
    absl::StatusOr<ChatRequest> first = ParseChatRequest(json, {.validate = false});
    ASSERT_TRUE(first.ok()) << first.status();
    const std::string wire = SerializeChatRequest(*first);
    absl::StatusOr<ChatRequest> second = ParseChatRequest(wire, {.validate = false});
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(*first, *second);
    EXPECT_EQ(SerializeChatRequest(*second), wire);
    ExpectNothingLost(json, wire, /*exact=*/true);

    // Kong's client requests leave "model" to the route; with one they are valid, except
    // the deliberately bad ones.
    ChatRequest routed = *first;
    if (routed.model.empty()) routed.model = "gpt-4o";
    absl::Status valid = ValidateChatRequest(routed);
    if (file.filename() == "bad_request.json") {
      EXPECT_EQ(valid.message(), "messages: must not be empty");
      EXPECT_THAT(first->extra, ::testing::ElementsAre(::testing::Key("segassem")));
    } else {
      EXPECT_TRUE(valid.ok()) << valid;
      EXPECT_TRUE(first->extra.empty()) << first->extra[0].first;
    }
  }
}

TEST_F(ChatFixtureTest, CompletionsRoundTripLosslessly) {
  const std::vector<fs::path> files = CompletionFiles();
  ASSERT_GE(files.size(), 20u);
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const std::string json = ReadFile(file);
    absl::StatusOr<ChatCompletion> first = ParseChatCompletion(json);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->choices.empty());
    const std::string wire = SerializeChatCompletion(*first);
    absl::StatusOr<ChatCompletion> second = ParseChatCompletion(wire);
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(*first, *second);
    EXPECT_EQ(SerializeChatCompletion(*second), wire);
    ExpectNothingLost(json, wire, /*exact=*/false);
  }
}

TEST_F(ChatFixtureTest, StreamChunksRoundTripLosslessly) {
  const std::vector<fs::path> files = ChunkFiles();
  ASSERT_GE(files.size(), 10u);
  size_t chunks = 0;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    for (const std::string& line : ChunkLines(ReadFile(file))) {
      absl::StatusOr<ChatCompletionChunk> first = ParseChatCompletionChunk(line);
      ASSERT_TRUE(first.ok()) << first.status() << "\n" << line;
      const std::string wire = SerializeChatCompletionChunk(*first);
      absl::StatusOr<ChatCompletionChunk> second = ParseChatCompletionChunk(wire);
      ASSERT_TRUE(second.ok()) << second.status();
      ASSERT_EQ(*first, *second) << line;
      ASSERT_EQ(SerializeChatCompletionChunk(*second), wire);
      ExpectNothingLost(line, wire, /*exact=*/false);
      ++chunks;
    }
  }
  EXPECT_GT(chunks, 3000u);
}

TEST_F(ChatFixtureTest, OpenAiStreamCarriesTheRecordedText) {
  const fs::path file = dir_ / "vercel-ai/packages/openai/src/chat/__fixtures__/openai-text.chunks.txt";
  const fs::path whole = dir_ / "vercel-ai/packages/openai/src/chat/__fixtures__/openai-text.json";
  std::string text;
  std::optional<Usage> usage;
  std::string finish;
  for (const std::string& line : ChunkLines(ReadFile(file))) {
    absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(line);
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    for (const ChunkChoice& c : chunk->choices) {
      text += c.delta.content.value_or("");
      if (c.finish_reason) finish = *c.finish_reason;
    }
    if (chunk->usage) usage = chunk->usage;
  }
  EXPECT_EQ(finish, "stop");
  EXPECT_GT(text.size(), 1000u);
  absl::StatusOr<ChatCompletion> completion = ParseChatCompletion(ReadFile(whole));
  ASSERT_TRUE(completion.ok());
  EXPECT_EQ(completion->usage->completion_tokens_details->reasoning_tokens, 0);
  EXPECT_EQ(completion->choices[0].finish_reason, "stop");
}

TEST_F(ChatFixtureTest, KongStreamFrame) {
  const fs::path frame =
      dir_ / "kong/spec/fixtures/ai-proxy/unit/real-stream-frames/openai/llm-v1-chat.txt";
  if (!fs::exists(frame)) GTEST_SKIP() << "no Kong stream frame";
  std::string line = ChunkLines(ReadFile(frame)).at(0);
  ASSERT_EQ(line.rfind("data: ", 0), 0u);
  line.erase(0, 6);
  absl::StatusOr<ChatCompletionChunk> chunk = ParseChatCompletionChunk(line);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_EQ(chunk->choices[0].delta.content, "the answer");
  ExpectNothingLost(line, SerializeChatCompletionChunk(*chunk), /*exact=*/false);
}

}  // namespace
}  // namespace modeenvoy
