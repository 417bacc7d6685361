#include "server/edit_queue.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace moke::server {

void EditQueue::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (accepting_ || stopping_) return;
    accepting_ = true;
  }
  thread_ = std::thread([this] { Loop(); });
}

void EditQueue::Push(Task task) {
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (!accepting_ || stopping_) {
      refused = absl::UnavailableError("server is not serving (loading or shutting down)");
    } else if (task.is_edit && queued_edits_ >= max_edits_) {
      refused = absl::ResourceExhaustedError(absl::StrCat("edit queue is full (", queued_edits_, " waiting)"));
    } else if (queue_.size() >= static_cast<size_t>(max_edits_) + 16) {
      refused = absl::ResourceExhaustedError("editor queue is full");
    } else {
      if (task.is_edit) ++queued_edits_;
      if (metrics_) metrics_->SetQueueDepth(queued_edits_);
      queue_.push_back({std::move(task), Budget::Clock::now()});
      return;
    }
  }
  task.run(refused);
}

void EditQueue::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

int EditQueue::queued_edits() const {
  absl::MutexLock lock(&mu_);
  return queued_edits_;
}

void EditQueue::Loop() {
  for (;;) {
    Queued q;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &EditQueue::HasTaskOrStopping));
      if (queue_.empty()) return;  // stopping and drained
      q = std::move(queue_.front());
      queue_.pop_front();
      if (q.task.is_edit) --queued_edits_;
      if (metrics_) metrics_->SetQueueDepth(queued_edits_);
    }
    if (metrics_ && q.task.is_edit) {
      metrics_->ObserveQueueWaitSeconds(std::chrono::duration<double>(Budget::Clock::now() - q.enqueued).count());
    }
    absl::Status left = q.task.budget.Check("waiting in the edit queue");
    if (!left.ok()) left = absl::Status(left.code(), absl::StrCat(left.message(), "; nothing was applied"));
    q.task.run(left);
  }
}

}  // namespace moke::server
