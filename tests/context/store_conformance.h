// tests/context/store_conformance.h: one behaviour suite every ContextStore passes.
// The cases are in store_conformance.cc; a store's test file instantiates them with a
// harness that makes fresh stores and runs their loop:
//   INSTANTIATE_TEST_SUITE_P(Redis, StoreConformanceTest, ::testing::Values(&MakeHarness));
// A factory returning null skips the suite with the reason it sets (e.g. no redis-server);
// a skipped test is never counted as passing.
#ifndef MODEENVOY_TESTS_CONTEXT_STORE_CONFORMANCE_H_
#define MODEENVOY_TESTS_CONTEXT_STORE_CONFORMANCE_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "modeenvoy/context/store.h"

namespace modeenvoy::testing {

struct ConformanceStoreOptions {
  size_t max_record_bytes = size_t{1} << 20;
};

class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // A store that sees none of the sessions of the stores made before it.
  virtual std::unique_ptr<ContextStore> NewStore(const ConformanceStoreOptions& options) = 0;
  // Runs the stores' loop until done() (at most a generous bound). Returns done().
  virtual bool RunUntil(absl::FunctionRef<bool()> done) = 0;
};

// Returns null and sets *skip_reason when the store cannot run here.
using HarnessFactory = std::unique_ptr<StoreHarness> (*)(std::string* skip_reason);

class StoreConformanceTest : public ::testing::TestWithParam<HarnessFactory> {
 protected:
  void SetUp() override {
    std::string reason;
    harness_ = GetParam()(&reason);
    if (harness_ == nullptr) GTEST_SKIP() << reason;
    store_ = harness_->NewStore({});
    ASSERT_NE(store_, nullptr);
  }

  // Starts an operation and runs the loop until its callback ran.
  template <typename T, typename Start>
  absl::StatusOr<T> Await(Start start) {
    std::optional<absl::StatusOr<T>> result;
    StoreHandle handle = start([&](absl::StatusOr<T> r) { result.emplace(std::move(r)); });
    if (!harness_->RunUntil([&] { return result.has_value(); })) {
      return absl::InternalError("test: the operation never completed");
    }
    return *std::move(result);
  }

  absl::StatusOr<std::optional<StoredContext>> Get(ContextStore& s, std::string_view id) {
    return Await<std::optional<StoredContext>>(
        [&](auto cb) { return s.Get(id, std::move(cb)); });
  }
  absl::StatusOr<uint64_t> Append(ContextStore& s, std::string_view id, uint64_t version,
                                  ContextAppend append) {
    return Await<uint64_t>(
        [&](auto cb) { return s.Append(id, version, std::move(append), std::move(cb)); });
  }
  absl::StatusOr<uint64_t> Replace(ContextStore& s, std::string_view id, uint64_t version,
                                   ContextRecord record) {
    return Await<uint64_t>(
        [&](auto cb) { return s.Replace(id, version, std::move(record), std::move(cb)); });
  }
  absl::StatusOr<bool> Delete(ContextStore& s, std::string_view id) {
    return Await<bool>([&](auto cb) { return s.Delete(id, std::move(cb)); });
  }
  absl::StatusOr<SessionPage> List(ContextStore& s, std::string_view owner,
                                   std::string_view cursor, size_t limit) {
    return Await<SessionPage>(
        [&](auto cb) { return s.List(owner, cursor, limit, std::move(cb)); });
  }
  absl::StatusOr<bool> TryLock(ContextStore& s, std::string_view id, std::string_view token,
                               absl::Duration ttl) {
    return Await<bool>([&](auto cb) { return s.TryLock(id, token, ttl, std::move(cb)); });
  }
  absl::StatusOr<bool> Unlock(ContextStore& s, std::string_view id, std::string_view token) {
    return Await<bool>([&](auto cb) { return s.Unlock(id, token, std::move(cb)); });
  }

  std::unique_ptr<StoreHarness> harness_;
  std::unique_ptr<ContextStore> store_;
};

}  // namespace modeenvoy::testing

#endif  // MODEENVOY_TESTS_CONTEXT_STORE_CONFORMANCE_H_
