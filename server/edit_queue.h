// EditQueue: the bounded queue in front of the one editor thread. Every change of the knowledge state
// (an edit, a restore, a snapshot) runs on that thread, one at a time, in the order it was queued.
//
// Contract: Push() calls the task's `run` exactly once:
//   - on the editor thread with OK when the task's turn comes and its budget is not exhausted;
//   - on the editor thread with DEADLINE_EXCEEDED or CANCELLED when its budget ran out while it waited:
//     the task must then change nothing (an edit whose deadline passed in the queue is never applied);
//   - inline, on the caller's thread, with RESOURCE_EXHAUSTED (queue full) or UNAVAILABLE (not started,
//     or stopping).
// Stop() refuses new tasks, lets the thread run every queued one, and joins it.
//
// Thread-safety: Push and queued_edits are safe from any thread; Start and Stop are for the owner.
#pragma once

#include <deque>
#include <functional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "core/common/budget.h"
#include "server/metrics.h"

namespace moke::server {

class EditQueue {
 public:
  struct Task {
    bool is_edit = false;  // edits count against max_edits; restores and snapshots only against the total
    Budget budget;
    std::function<void(absl::Status)> run;
  };

  // At most `max_edits` edits and `max_edits` + 16 tasks in all wait. `metrics` may be null.
  EditQueue(int max_edits, Metrics* metrics) : max_edits_(max_edits), metrics_(metrics) {}
  ~EditQueue() { Stop(); }
  EditQueue(const EditQueue&) = delete;
  EditQueue& operator=(const EditQueue&) = delete;

  void Start();
  void Push(Task task);
  void Stop();  // idempotent
  int queued_edits() const;

 private:
  struct Queued {
    Task task;
    Budget::Clock::time_point enqueued;
  };
  void Loop();
  bool HasTaskOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; }

  const int max_edits_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  bool accepting_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  int queued_edits_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // the editor thread; owner-only
};

}  // namespace moke::server
