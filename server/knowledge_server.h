// KnowledgeServer: the service's engine, free of gRPC. It owns the Editor, the edit log and the snapshot
// directory, and runs
//   - one editor thread, fed by a bounded queue, that applies edits, restores and snapshots in order and
//     makes every edit durable (log append + fsync) before reporting it;
//   - a small worker pool for Ask and Score, which read the latest published KnowledgeView and so never
//     wait for an edit in progress;
//   - a waiter thread that expires reads waiting for a min_version past their deadline.
//
// Callback contract: every Submit* calls its `done` exactly once, from the editor thread, a worker, the
// waiter thread, or inline (for immediate rejections). `done` must be cheap and must not call back into
// Submit*. An error means nothing was applied, except INTERNAL "not durable" after a log failure (the
// server then refuses further edits).
//
// Thread-safety: all public methods are safe from any thread after Create.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/editor/editor.h"
#include "core/storage/edit_log.h"
#include "core/storage/snapshot_store.h"
#include "server/metrics.h"
#include "server/worker_pool.h"

namespace moke::server {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;  // Deadline::max(): none
inline constexpr Deadline kNoDeadline = Deadline::max();

struct EngineOptions {
  EditorOptions editor;
  std::string data_dir = "moke-data";
  int snapshot_every = 100;        // 0: only on request and at shutdown
  int max_queue = 64;              // edits waiting for the editor thread
  int workers = 2;                 // Ask/Score threads
  int max_read_queue = 256;        // Asks/Scores waiting for a worker
  size_t max_question_bytes = 2048;
  size_t max_answer_bytes = 1024;
  // A read with min_version and no deadline waits at most this long.
  std::chrono::milliseconds max_version_wait{30000};
};

struct EditSubmission {
  std::string question;
  std::string answer;
  std::string request_id;
  std::vector<std::string> unrelated;
  Deadline deadline = kNoDeadline;
};

struct EditAck {
  uint64_t version = 0;
  uint64_t edit_id = 0;
  int expert = -1;
  bool new_concept = false;
  bool duplicate = false;
  int iterations = 0;
  double loss = 0;
  double apply_seconds = 0;
};

struct AskQuery {
  std::string question;
  int max_new_tokens = 0;  // 0: the editor's default
  uint64_t min_version = 0;
  std::optional<Routing> routing;
  Deadline deadline = kNoDeadline;
};

struct ScoreQuery {
  std::string prompt;
  std::string answer;
  uint64_t min_version = 0;
  std::optional<Routing> routing;
  bool original = false;
  Deadline deadline = kNoDeadline;
};

struct EngineStatus {
  bool serving = false;
  EditorStats stats;
  std::string method, model, device;
  int queue_depth = 0;
};

struct EditList {
  std::vector<storage::LogRecord> edits;
  uint64_t total = 0;
};

class KnowledgeServer {
 public:
  // Cheap: checks the options and remembers them; nothing is loaded. `metrics` may be null and must
  // outlive the server.
  static absl::StatusOr<std::unique_ptr<KnowledgeServer>> Create(EngineOptions options, Metrics* metrics);
  ~KnowledgeServer();  // Shutdown(false) if still running

  // Loads the model, opens the data directory, restores the newest valid checkpoint and replays the log
  // after it, then starts the threads. Blocking (seconds). Until it returns OK every Submit* answers
  // UNAVAILABLE.
  absl::Status Start();
  bool serving() const;

  // Stops accepting (new calls get UNAVAILABLE), finishes every queued edit and read, writes a snapshot
  // when `write_snapshot` and the state changed since the last one, and joins the threads. Idempotent.
  void Shutdown(bool write_snapshot);

  void SubmitEdit(EditSubmission edit, std::function<void(absl::StatusOr<EditAck>)> done);
  void SubmitAsk(AskQuery query, std::function<void(absl::StatusOr<AskResult>)> done);
  void SubmitScore(ScoreQuery query, std::function<void(absl::StatusOr<ScoreResult>)> done);
  void SubmitSnapshot(Deadline deadline, std::function<void(absl::StatusOr<storage::SnapshotFile>)> done);
  void SubmitRestore(std::string name, Deadline deadline, std::function<void(absl::StatusOr<uint64_t>)> done);

  // Cheap reads, answered on the caller's thread.
  EngineStatus Status() const;
  EditList ListEdits(uint64_t start, int limit) const;
  absl::StatusOr<std::vector<storage::SnapshotFile>> ListSnapshots() const;

  // Checks an edit's text against the limits (length, UTF-8, the editor's own checks). Thread-safe.
  absl::Status ValidateEdit(const EditSubmission& edit) const;

 private:
  struct EditTask {
    EditSubmission edit;
    std::function<void(absl::StatusOr<EditAck>)> done;
  };
  struct SnapshotTask {
    std::function<void(absl::StatusOr<storage::SnapshotFile>)> done;
  };
  struct RestoreTask {
    std::string name;
    std::function<void(absl::StatusOr<uint64_t>)> done;
  };
  struct Task {
    std::variant<EditTask, SnapshotTask, RestoreTask> work;
    Deadline deadline;
    Clock::time_point enqueued;
  };
  struct Waiter {
    uint64_t min_version;
    Deadline deadline;
    std::function<void()> run;                        // dispatch to the pool
    std::function<void(absl::Status)> fail;           // deadline passed / shutdown
  };

  KnowledgeServer(EngineOptions options, Metrics* metrics);
  absl::Status Recover(const std::vector<storage::LogRecord>& records);
  void EditorLoop();
  void WaiterLoop();
  void RunEdit(EditTask& task, Clock::time_point enqueued);
  void RunSnapshot(SnapshotTask& task);
  void RunRestore(RestoreTask& task);
  absl::StatusOr<storage::SnapshotFile> WriteSnapshot();  // editor thread
  void Publish();                                         // editor thread, after the state changed
  // Runs `run` on the pool once `min_version` is published, or fails it at `deadline`.
  void WhenVersion(uint64_t min_version, Deadline deadline, std::function<void()> run,
                   std::function<void(absl::Status)> fail);
  absl::Status EnqueueTask(Task& task, bool is_edit);  // moves `task` only on OK
  bool WaiterWake() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return waiters_changed_ || waiter_stop_; }
  bool HasTaskOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !queue_.empty() || stopping_; }
  static std::optional<EditAck> AckOf(const storage::LogRecord& r, bool duplicate);

  const EngineOptions options_;
  Metrics* const metrics_;

  // Owned by the editor thread once started (Start() uses them before the threads exist).
  std::unique_ptr<Editor> editor_;
  std::unique_ptr<storage::EditLog> log_;
  std::optional<storage::SnapshotStore> snapshots_;
  uint64_t edits_since_checkpoint_ = 0;
  bool log_failed_ = false;

  mutable absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  int queued_edits_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t published_version_ ABSL_GUARDED_BY(mu_) = 0;
  EditorStats stats_ ABSL_GUARDED_BY(mu_);  // cached by the editor thread (Editor::Stats is not thread-safe)
  bool waiter_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<storage::LogRecord> edit_records_ ABSL_GUARDED_BY(mu_);         // every edit in the log
  std::unordered_map<std::string, size_t> by_request_id_ ABSL_GUARDED_BY(mu_);  // -> index in edit_records_
  std::multimap<uint64_t, Waiter> waiters_ ABSL_GUARDED_BY(mu_);               // by min_version
  bool waiters_changed_ ABSL_GUARDED_BY(mu_) = false;

  std::unique_ptr<WorkerPool> pool_;
  std::thread editor_thread_;
  std::thread waiter_thread_;
};

}  // namespace moke::server
