#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "modeenvoy/tokenizer/encoding.h"
#include "tests/tokenizer/test_util.h"

namespace modeenvoy {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
namespace fs = std::filesystem;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("modeenvoy-tok-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& contents) {
    const fs::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << contents;
    return p.string();
  }
  fs::path dir_;
};

TEST_F(RegistryTest, UnknownEncodingIsInvalidArgument) {
  auto enc = GetEncoding("cl200k_base");
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(enc.status().message(), HasSubstr("o200k_base"));
}

TEST_F(RegistryTest, MissingFileIsNotFoundNamingEveryPathTried) {
  EncodingOptions options;
  options.tokenizer_dir = (dir_ / "nowhere").string();
  options.tiktoken_cache_dir = (dir_ / "cache").string();
  auto enc = GetEncoding("cl100k_base", options);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(enc.status().message(), HasSubstr((dir_ / "nowhere" / "cl100k_base.tiktoken").string()));
  EXPECT_THAT(enc.status().message(),
              HasSubstr((dir_ / "cache" / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").string()));
}

TEST_F(RegistryTest, MissingExplicitRankFileNamesOnlyThatPath) {
  EncodingOptions options;
  options.rank_file = (dir_ / "missing.tiktoken").string();
  auto enc = GetEncoding("cl100k_base", options);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(enc.status().message(), HasSubstr(options.rank_file));
  // Nothing else is searched, so no advice about the directories that would be.
  EXPECT_THAT(enc.status().message(), Not(HasSubstr("MODEENVOY_TOKENIZER_DIR")));
}

TEST_F(RegistryTest, CorruptFileIsDataLossWithPathAndLine) {
  std::string file = tokenizer_test::SmallRankFile({"ab"});
  file += "@@@@ 300\n";
  const std::string path = Write("r50k_base.tiktoken", file);
  EncodingOptions options;
  options.tokenizer_dir = dir_.string();
  options.verify_sha256 = false;
  auto enc = GetEncoding("r50k_base", options);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(enc.status().message(), HasSubstr(path));
  EXPECT_THAT(enc.status().message(), HasSubstr("line 258"));
}

TEST_F(RegistryTest, HashMismatchIsDataLoss) {
  Write("p50k_base.tiktoken", tokenizer_test::SmallRankFile({"ab"}));
  EncodingOptions options;
  options.tokenizer_dir = dir_.string();
  auto enc = GetEncoding("p50k_base", options);
  ASSERT_FALSE(enc.ok());
  EXPECT_EQ(enc.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(enc.status().message(), HasSubstr("sha256"));
}

TEST_F(RegistryTest, FailedLoadIsRetriedAndSuccessIsShared) {
  EncodingOptions options;
  options.rank_file = (dir_ / "custom.tiktoken").string();
  options.verify_sha256 = false;
  EXPECT_EQ(GetEncoding("gpt2", options).status().code(), absl::StatusCode::kNotFound);
  // gpt2 requires n_vocab 50257: a small file must be rejected as inconsistent.
  Write("custom.tiktoken", tokenizer_test::SmallRankFile({"ab"}));
  EXPECT_EQ(GetEncoding("gpt2", options).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(RegistryTest, ConcurrentFirstCallsShareOneInstance) {
  MODEENVOY_LOAD_OR_SKIP(reference, "cl100k_base");
  EncodingOptions options;
  options.tokenizer_dir = tokenizer_test::TokenizerDir();
  options.tiktoken_cache_dir = dir_.string();  // a distinct key: a fresh load
  std::vector<std::shared_ptr<const Encoding>> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { got[i] = *GetEncoding("cl100k_base", options); });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : got) EXPECT_EQ(e.get(), got[0].get());
  EXPECT_NE(got[0].get(), reference.get());
  EXPECT_EQ(got[0]->EncodeOrdinary("hello world"), reference->EncodeOrdinary("hello world"));
}

TEST_F(RegistryTest, FindsFilesInTiktokenCacheDirectory) {
  const std::string src = tokenizer_test::TokenizerDir() + "/r50k_base.tiktoken";
  if (tokenizer_test::TokenizerDir().empty() || !fs::exists(src)) {
    GTEST_SKIP() << "tokenizer data missing (MODEENVOY_TOKENIZER_DIR/r50k_base.tiktoken)";
  }
  fs::copy_file(src, dir_ / "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4");
  EncodingOptions options;
  options.tokenizer_dir = (dir_ / "empty").string();
  options.tiktoken_cache_dir = dir_.string();
  auto enc = GetEncoding("r50k_base", options);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->n_vocab(), 50257u);
  EXPECT_EQ((*enc)->EncodeOrdinary("hello world"), (std::vector<Token>{31373, 995}));
}

// Sets (or, with nullptr, unsets) an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    had_ = old != nullptr;
    if (had_) old_ = old;
    if (value == nullptr) {
      ::unsetenv(name);
    } else {
      ::setenv(name, value, 1);
    }
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

TEST_F(RegistryTest, DefaultCacheIsInTheTempDirectoryPythonWouldPick) {
  // tiktoken's default cache is tempfile.gettempdir()/data-gym-cache, and gettempdir() skips
  // candidates that are not usable directories: $TMPDIR naming a missing one, $TEMP is next.
  const std::string src = tokenizer_test::TokenizerDir() + "/r50k_base.tiktoken";
  if (tokenizer_test::TokenizerDir().empty() || !fs::exists(src)) {
    GTEST_SKIP() << "tokenizer data missing (MODEENVOY_TOKENIZER_DIR/r50k_base.tiktoken)";
  }
  fs::create_directories(dir_ / "temp" / "data-gym-cache");
  fs::copy_file(src, dir_ / "temp" / "data-gym-cache" / "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4");
  const std::string missing = (dir_ / "no-such-dir").string();
  const std::string temp = (dir_ / "temp").string();
  ScopedEnv cache("TIKTOKEN_CACHE_DIR", nullptr);
  ScopedEnv gym("DATA_GYM_CACHE_DIR", nullptr);
  ScopedEnv tokdir("MODEENVOY_TOKENIZER_DIR", nullptr);
  ScopedEnv tmpdir("TMPDIR", missing.c_str());
  ScopedEnv tempvar("TEMP", temp.c_str());
  auto enc = GetEncoding("r50k_base", EncodingOptions{});
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->EncodeOrdinary("hello world"), (std::vector<Token>{31373, 995}));
}

TEST_F(RegistryTest, TokenizerDirVariableNamingNoDirectoryIsAnErrorNotAFallThrough) {
  // A usable tiktoken cache: before this was an error, a mistyped variable silently
  // loaded this file instead of failing.
  Write("ec7223a39ce59f226a68acc30dc1af2788490e15", tokenizer_test::SmallRankFile({"ab"}));
  EncodingOptions options;
  options.tiktoken_cache_dir = dir_.string();
  options.verify_sha256 = false;
  const std::string missing = (dir_ / "no-such-dir").string();
  {
    ScopedEnv tokdir("MODEENVOY_TOKENIZER_DIR", missing.c_str());
    auto enc = GetEncoding("p50k_edit", options);
    ASSERT_FALSE(enc.ok());
    EXPECT_EQ(enc.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(enc.status().message(), HasSubstr("MODEENVOY_TOKENIZER_DIR=" + missing));
    EXPECT_THAT(enc.status().message(), HasSubstr("no such directory"));
  }
  {
    const std::string file = Write("not-a-dir", "x");
    ScopedEnv tokdir("MODEENVOY_TOKENIZER_DIR", file.c_str());
    auto enc = GetEncoding("p50k_edit", options);
    ASSERT_FALSE(enc.ok());
    EXPECT_EQ(enc.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(enc.status().message(),
                HasSubstr("MODEENVOY_TOKENIZER_DIR=" + file + ": not a directory"));
  }
  {
    // An explicit option wins over the variable, which is then not looked at.
    ScopedEnv tokdir("MODEENVOY_TOKENIZER_DIR", missing.c_str());
    EncodingOptions with_dir = options;
    with_dir.tokenizer_dir = dir_.string();
    auto enc = GetEncoding("p50k_edit", with_dir);
    EXPECT_TRUE(enc.ok()) << enc.status();
  }
  {
    // A directory that exists but lacks the file still falls through to the cache.
    fs::create_directories(dir_ / "empty");
    const std::string empty = (dir_ / "empty").string();
    ScopedEnv tokdir("MODEENVOY_TOKENIZER_DIR", empty.c_str());
    auto enc = GetEncoding("p50k_edit", options);
    ASSERT_TRUE(enc.ok()) << enc.status();
    EXPECT_EQ((*enc)->EncodeOrdinary("abab"), (std::vector<Token>{256, 256}));
  }
}

TEST_F(RegistryTest, LoadEncodingFromFileBuildsCustomEncodings) {
  const std::string path = Write("tiny.tiktoken", tokenizer_test::SmallRankFile({"ab", "abab"}));
  EncodingSpec spec;
  spec.name = "tiny";
  spec.pattern = SplitPattern::kR50k;
  spec.special_tokens = {{"<|end|>", 1000}};
  auto enc = LoadEncodingFromFile(spec, path);
  ASSERT_TRUE(enc.ok()) << enc.status();
  EXPECT_EQ((*enc)->EncodeOrdinary("abab"), (std::vector<Token>{257}));
  EXPECT_EQ((*enc)->n_vocab(), 1001u);
  EXPECT_EQ(*(*enc)->Encode("ab<|end|>", SpecialTokenSet::All()), (std::vector<Token>{256, 1000}));
  spec.special_tokens = {{"<|end|>", 256}};  // collides with the rank of "ab"
  EXPECT_EQ(LoadEncodingFromFile(spec, path).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadEncodingFromFile(spec, (dir_ / "missing").string()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(LoadEncodingFromFile(spec, dir_.string()).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ListEncodingNamesTest, MatchesTiktoken) {
  EXPECT_EQ(ListEncodingNames(),
            (std::vector<std::string>{"gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base",
                                      "o200k_base", "o200k_harmony"}));
  auto spec = GetEncodingSpec("o200k_harmony");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->special_tokens.size(), 2u + 14u + (201088u - 200013u));
}

}  // namespace
}  // namespace modeenvoy
