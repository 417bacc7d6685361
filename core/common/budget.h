// A caller's budget for one piece of core work (an edit's training, an answer's decoding): a deadline
// and a cancellation flag. Long loops in core/ call Check() once per step and stop with the status it
// returns; the work is then abandoned and nothing of it is published.
//
// Thread-safety: a Budget is a value; the flag it points to may be set from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace moke {

struct Budget {
  using Clock = std::chrono::steady_clock;
  Clock::time_point deadline = Clock::time_point::max();  // max: none
  std::shared_ptr<const std::atomic<bool>> cancelled;     // null: cannot be cancelled

  static Budget Unlimited() { return {}; }

  bool exhausted() const {
    return (cancelled && cancelled->load(std::memory_order_relaxed)) ||
           (deadline != Clock::time_point::max() && Clock::now() >= deadline);
  }
  // OK while there is budget left; CANCELLED or DEADLINE_EXCEEDED naming `what` otherwise.
  absl::Status Check(const char* what) const {
    if (cancelled && cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError(std::string(what) + ": cancelled by the caller");
    }
    if (deadline != Clock::time_point::max() && Clock::now() >= deadline) {
      return absl::DeadlineExceededError(std::string(what) + ": the caller's deadline passed");
    }
    return absl::OkStatus();
  }
};

}  // namespace moke
