// A fixed pool of threads with a bounded task queue, for the read path (Ask, Score).
//
// Thread-safety: every method is safe from any thread. TrySubmit never blocks: it returns false when the
// queue is full or the pool is stopping, and then the task has not been taken (the caller still owns the
// work of answering). Stop() runs every task already queued, then joins the threads.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace moke::server {

class WorkerPool {
 public:
  WorkerPool(int threads, size_t max_queue);
  ~WorkerPool();
  bool TrySubmit(std::function<void()> task);
  void Stop();
  size_t queued() const;

 private:
  void Loop();
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !tasks_.empty(); }
  const size_t max_queue_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace moke::server
