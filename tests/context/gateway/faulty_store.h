// tests/context/gateway/faulty_store.h: a ContextStore wrapper that injects faults: failing
// operations, operations that never answer, appends held until the test releases them, and
// a hook that runs before each append (to play another writer).
//   FaultyStore store(NewMemoryContextStore({}));
//   store.fail_get = absl::UnavailableError("down");
//   store.hold_appends = true;   ...   store.ReleaseHeld();
// Thread safety: thread-hostile (tests drive it from the loop thread).
#ifndef MODEENVOY_TESTS_CONTEXT_GATEWAY_FAULTY_STORE_H_
#define MODEENVOY_TESTS_CONTEXT_GATEWAY_FAULTY_STORE_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "modeenvoy/context/store.h"

namespace modeenvoy::context_testing {

class FaultyStore final : public ContextStore {
 public:
  explicit FaultyStore(std::unique_ptr<ContextStore> inner) : inner_(std::move(inner)) {}

  // Non-OK: the next operations of that kind fail with it (until reset).
  absl::Status fail_get;
  absl::Status fail_append;
  absl::Status fail_lock;
  // True: Get / Append never answer (their handles record the cancellation).
  bool hang_get = false;
  bool hang_append = false;
  // True: appends wait in held() until ReleaseHeld().
  bool hold_appends = false;
  // Runs before each append reaches the inner store.
  std::function<void(std::string_view session_id)> before_append;

  int gets = 0;
  int appends = 0;
  int cancelled = 0;

  ContextStore& inner() { return *inner_; }
  size_t held() const { return held_.size(); }

  // Performs the held appends, in order.
  void ReleaseHeld() {
    std::vector<std::function<void()>> held = std::move(held_);
    held_.clear();
    for (auto& run : held) run();
  }

  StoreHandle Get(std::string_view session_id,
                  StoreCallback<std::optional<StoredContext>> done) override {
    ++gets;
    if (hang_get) return Hanging();
    if (!fail_get.ok()) {
      done(fail_get);
      return nullptr;
    }
    return inner_->Get(session_id, std::move(done));
  }

  StoreHandle Append(std::string_view session_id, uint64_t expected_version,
                     ContextAppend append, StoreCallback<uint64_t> done) override {
    ++appends;
    if (hang_append) return Hanging();
    if (!fail_append.ok()) {
      done(fail_append);
      return nullptr;
    }
    if (!hold_appends) return Forward(session_id, expected_version, std::move(append), std::move(done));
    auto op = std::make_unique<Op>(this);
    Op* raw = op.get();
    auto state = raw->state;
    auto shared_append = std::make_shared<ContextAppend>(std::move(append));
    auto shared_done = std::make_shared<StoreCallback<uint64_t>>(std::move(done));
    held_.push_back([this, id = std::string(session_id), expected_version, shared_append,
                     shared_done, state] {
      if (state->cancelled) return;
      state->done = true;
      (void)Forward(id, expected_version, std::move(*shared_append), std::move(*shared_done));
    });
    return op;
  }

  StoreHandle Replace(std::string_view session_id, uint64_t expected_version,
                      ContextRecord record, StoreCallback<uint64_t> done) override {
    return inner_->Replace(session_id, expected_version, std::move(record), std::move(done));
  }
  StoreHandle Delete(std::string_view session_id, StoreCallback<bool> done) override {
    return inner_->Delete(session_id, std::move(done));
  }
  StoreHandle List(std::string_view owner, std::string_view cursor, size_t limit,
                   StoreCallback<SessionPage> done) override {
    return inner_->List(owner, cursor, limit, std::move(done));
  }
  StoreHandle TryLock(std::string_view session_id, std::string_view token, absl::Duration ttl,
                      StoreCallback<bool> done) override {
    if (!fail_lock.ok()) {
      done(fail_lock);
      return nullptr;
    }
    return inner_->TryLock(session_id, token, ttl, std::move(done));
  }
  StoreHandle Unlock(std::string_view session_id, std::string_view token,
                     StoreCallback<bool> done) override {
    return inner_->Unlock(session_id, token, std::move(done));
  }
  std::string_view kind() const override { return "faulty"; }

 private:
  struct OpState {
    bool cancelled = false;
    bool done = false;
  };
  class Op final : public StoreOperation {
   public:
    explicit Op(FaultyStore* store) : store_(store), state(std::make_shared<OpState>()) {}
    ~Op() override { Cancel(); }
    void Cancel() override {
      if (state->cancelled || state->done) return;
      state->cancelled = true;
      ++store_->cancelled;
    }
    FaultyStore* store_;
    std::shared_ptr<OpState> state;
  };

  StoreHandle Hanging() { return std::make_unique<Op>(this); }

  StoreHandle Forward(std::string_view session_id, uint64_t expected_version,
                      ContextAppend append, StoreCallback<uint64_t> done) {
    if (before_append) before_append(session_id);
    return inner_->Append(session_id, expected_version, std::move(append), std::move(done));
  }

  std::unique_ptr<ContextStore> inner_;
  std::vector<std::function<void()>> held_;
};

}  // namespace modeenvoy::context_testing

#endif  // MODEENVOY_TESTS_CONTEXT_GATEWAY_FAULTY_STORE_H_
