// VersionWaiters: the published knowledge version, and the reads waiting for it (read-your-writes: an
// Ask or Score with min_version waits until that version is published).
//
// Contract: Wait() calls exactly one of its callbacks, once:
//   - `ready`: inline when the version is already published, otherwise from the thread that announces it;
//   - `fail`: RESOURCE_EXHAUSTED inline when max_waiters already wait; DEADLINE_EXCEEDED from the expiry
//     thread when the deadline (capped at max_wait from now) passes first; UNAVAILABLE at Stop().
// Callbacks must be cheap (hand the work to a pool) and must not call back into this class.
//
// Thread-safety: every method is safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/common/budget.h"

namespace moke::server {

class VersionWaiters {
 public:
  using Clock = Budget::Clock;
  // Starts the expiry thread.
  VersionWaiters(size_t max_waiters, std::chrono::milliseconds max_wait);
  ~VersionWaiters();  // Stop()
  VersionWaiters(const VersionWaiters&) = delete;
  VersionWaiters& operator=(const VersionWaiters&) = delete;

  void Wait(uint64_t min_version, Clock::time_point deadline, std::function<void()> ready,
            std::function<void(absl::Status)> fail);
  // Makes `version` the published one and runs the waiters it satisfies. Versions only grow: an older
  // number is ignored.
  void AnnounceVersion(uint64_t version);
  uint64_t version() const;
  // Fails every waiter with UNAVAILABLE and joins the thread. Idempotent; Wait() afterwards fails at once.
  void Stop();

 private:
  struct Waiter {
    uint64_t min_version;
    Clock::time_point deadline;
    std::function<void()> ready;
    std::function<void(absl::Status)> fail;
  };
  void ExpiryLoop();
  bool Wake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changed_ || stop_; }

  const size_t max_waiters_;
  const std::chrono::milliseconds max_wait_;
  mutable absl::Mutex mu_;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::multimap<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);  // by min_version
  bool changed_ ABSL_GUARDED_BY(mu_) = false;                     // a waiter came: recompute the wake time
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace moke::server
