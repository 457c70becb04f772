// lib/core/mutex.h: scoped locks on absl::Mutex that ThreadSanitizer can see.
//
// Debian's Abseil is compiled without TSan: absl::Mutex locks and unlocks with atomics inside
// the prebuilt library, so TSan sees no happens-before edge between a Mutex's critical
// sections and reports every access the Mutex guards as a data race. These scoped locks take
// the absl::Mutex as usual and, in a TSan build only, also tell TSan about the edge
// (__tsan_acquire once locked, __tsan_release before unlocking). Elsewhere they are
// absl::MutexLock and absl::ReaderMutexLock. Use them, and AwaitWithTimeout below, for every
// lock in lib/ and in tests that TSan runs (make test-tsan).
#ifndef MODEENVOY_LIB_CORE_MUTEX_H_
#define MODEENVOY_LIB_CORE_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#define MODEENVOY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MODEENVOY_TSAN 1
#endif
#endif

#if defined(MODEENVOY_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

namespace modeenvoy::core_internal {

inline void TsanAcquire([[maybe_unused]] const absl::Mutex* mu) {
#if defined(MODEENVOY_TSAN)
  __tsan_acquire(const_cast<absl::Mutex*>(mu));
#endif
}

inline void TsanRelease([[maybe_unused]] const absl::Mutex* mu) {
#if defined(MODEENVOY_TSAN)
  __tsan_release(const_cast<absl::Mutex*>(mu));
#endif
}

// Holds *mu exclusively for its lifetime.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(absl::Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
    TsanAcquire(mu_);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() {
    TsanRelease(mu_);
    mu_->Unlock();
  }

 private:
  absl::Mutex* const mu_;
};

// Holds *mu shared for its lifetime. (TSan is told of an acquire and a release on *mu, as
// for MutexLock: readers are then ordered among themselves, so TSan could miss a race
// between two readers that both write, say a mutable cache; nothing in lib/ writes under a
// reader lock.)
class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(absl::Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
    TsanAcquire(mu_);
  }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() {
    TsanRelease(mu_);
    mu_->ReaderUnlock();
  }

 private:
  absl::Mutex* const mu_;
};

// mu->AwaitWithTimeout(absl::Condition(&pred), timeout) for a caller that holds *mu through
// one of the locks above: waits until pred() holds or the timeout passes, and returns pred().
// absl::Mutex may evaluate pred on another thread that holds *mu, and re-takes *mu inside
// Await; each of those points is annotated too.
template <class Pred>
bool AwaitWithTimeout(absl::Mutex* mu, Pred& pred, absl::Duration timeout)
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
  auto annotated = [mu, &pred]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    TsanAcquire(mu);
    const bool met = pred();
    TsanRelease(mu);
    return met;
  };
  TsanRelease(mu);
  const bool met = mu->AwaitWithTimeout(absl::Condition(&annotated), timeout);
  TsanAcquire(mu);
  return met;
}

}  // namespace modeenvoy::core_internal

#endif  // MODEENVOY_LIB_CORE_MUTEX_H_
