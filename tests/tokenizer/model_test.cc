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

namespace modeenvoy {
namespace {

// Values from the vendors' model pages (OpenAI, Anthropic, Google), as listed in model.h.
TEST(ContextWindowForModelTest, KnownFamiliesAndTheirVariants) {
  const std::pair<const char*, int64_t> cases[] = {
      {"gpt-4o", 128000},
      {"gpt-4o-2024-08-06", 128000},
      {"gpt-4o-mini", 128000},
      {"openai/gpt-4o-mini", 128000},
      {"gpt-4.1", 1047576},
      {"gpt-4.1-nano-2025-04-14", 1047576},
      {"gpt-4", 8192},
      {"gpt-4-0613", 8192},
      {"gpt-4-32k", 32768},
      {"gpt-4-turbo-2024-04-09", 128000},
      {"gpt-4-1106-preview", 128000},
      {"gpt-3.5-turbo", 16385},
      {"gpt-3.5-turbo-0613", 4096},
      {"gpt-3.5-turbo-instruct", 4096},
      {"o1", 200000},
      {"o1-mini", 128000},
      {"o3-mini-2025-01-31", 200000},
      {"o4-mini", 200000},
      {"gpt-5-mini", 400000},
      {"ft:gpt-4o-mini-2024-07-18:org::abc", 128000},
      {"claude-3-5-sonnet-20241022", 200000},
      {"claude-3-haiku-20240307", 200000},
      {"claude-sonnet-4-20250514", 200000},
      {"claude-opus-4-1", 200000},
      {"claude-3-5-sonnet@20240620", 200000},
      {"us.anthropic.claude-3-5-sonnet-20240620-v1:0", 200000},
      {"claude-2.0", 100000},
      {"claude-instant-1.2", 100000},
      {"gemini-1.5-pro-002", 2097152},
      {"gemini-1.5-flash", 1048576},
      {"gemini-2.0-flash", 1048576},
      {"gemini-2.5-pro", 1048576},
  };
  for (const auto& [model, window] : cases) {
    absl::StatusOr<int64_t> got = ContextWindowForModel(model);
    ASSERT_TRUE(got.ok()) << model << ": " << got.status();
    EXPECT_EQ(*got, window) << model;
  }
}

TEST(ContextWindowForModelTest, UnknownModelsAreNotFound) {
  for (const char* model : {"llama3", "gpt-4x", "o1x", "", "claude", "my-model"}) {
    EXPECT_EQ(ContextWindowForModel(model).status().code(), absl::StatusCode::kNotFound)
        << model;
  }
}

}  // namespace
}  // namespace modeenvoy
