// tests/context/memory_conformance_test.cc: the memory store runs the store-agnostic suite
// (tests/context/store_conformance.h) that the Redis store runs too.
#include <memory>
#include <string>

#include "modeenvoy/context/store.h"
#include "tests/context/store_conformance.h"

namespace modeenvoy::testing {
namespace {

class MemoryHarness : public StoreHarness {
 public:
  std::unique_ptr<ContextStore> NewStore(const ConformanceStoreOptions& options) override {
    MemoryContextStoreOptions o;
    o.max_record_bytes = options.max_record_bytes;
    return NewMemoryContextStore(o);
  }
  // Every callback already ran inline.
  bool RunUntil(absl::FunctionRef<bool()> done) override { return done(); }
};

std::unique_ptr<StoreHarness> MakeMemoryHarness(std::string*) {
  return std::make_unique<MemoryHarness>();
}

INSTANTIATE_TEST_SUITE_P(Memory, StoreConformanceTest, ::testing::Values(&MakeMemoryHarness));

}  // namespace
}  // namespace modeenvoy::testing
