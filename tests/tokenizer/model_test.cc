#include "modeenvoy/tokenizer/model.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy {
namespace {

TEST(EncodingNameForModelTest, CurrentOpenAiModels) {
  const std::pair<const char*, const char*> cases[] = {
      {"gpt-4o", "o200k_base"},           {"gpt-4o-mini", "o200k_base"},
      {"gpt-4o-2024-08-06", "o200k_base"}, {"chatgpt-4o-latest", "o200k_base"},
      {"gpt-4.1", "o200k_base"},          {"gpt-4.1-nano", "o200k_base"},
      {"gpt-5", "o200k_base"},            {"gpt-5-mini", "o200k_base"},
      {"gpt-5.1", "o200k_base"},          {"o1", "o200k_base"},
      {"o1-mini", "o200k_base"},          {"o3", "o200k_base"},
      {"o3-mini-2025-01-31", "o200k_base"}, {"o4-mini", "o200k_base"},
      {"gpt-4", "cl100k_base"},           {"gpt-4-turbo", "cl100k_base"},
      {"gpt-4-0613", "cl100k_base"},      {"gpt-3.5-turbo", "cl100k_base"},
      {"gpt-35-turbo-16k", "cl100k_base"}, {"text-embedding-3-small", "cl100k_base"},
      {"text-embedding-ada-002", "cl100k_base"}, {"text-davinci-003", "p50k_base"},
      {"code-davinci-edit-001", "p50k_edit"}, {"davinci", "r50k_base"},
      {"gpt2", "gpt2"},                   {"gpt-oss-120b", "o200k_harmony"},
      {"ft:gpt-4o-mini:org::abc", "o200k_base"}, {"ft:gpt-3.5-turbo:org::x", "cl100k_base"},
      {"openai/gpt-4o", "o200k_base"},    {"azure/gpt-35-turbo", "cl100k_base"},
      // Fine-tuned gpt-4.1 and gpt-4.5 use their base model's o200k_base; tiktoken 0.14's
      // first-match prefix "ft:gpt-4" says cl100k_base.
      {"ft:gpt-4.1-2025-04-14:org::x", "o200k_base"}, {"ft:gpt-4.1-mini-2025-04-14:o::y", "o200k_base"},
      {"ft:gpt-4.5-preview:o::x", "o200k_base"}, {"ft:gpt-4-0613:org::x", "cl100k_base"},
  };
  for (const auto& [model, encoding] : cases) {
    auto name = EncodingNameForModel(model);
    ASSERT_TRUE(name.ok()) << model << ": " << name.status();
    EXPECT_EQ(*name, encoding) << model;
  }
}

TEST(EncodingNameForModelTest, UnknownModelIsNotFound) {
  auto name = EncodingNameForModel("claude-3-5-sonnet");
  EXPECT_EQ(name.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(EncodingNameForModel("").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(EncodingNameForModel("vendor/").status().code(), absl::StatusCode::kNotFound);
}

TEST(EncodingForModelTest, ReturnsTheSharedEncoding) {
  MODEENVOY_LOAD_OR_SKIP(o200k, "o200k_base");
  EncodingOptions options;
  options.tokenizer_dir = tokenizer_test::TokenizerDir();
  auto enc = EncodingForModel("gpt-4.1-mini", options);
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->get(), o200k.get());
}

}  // namespace
}  // namespace modeenvoy
