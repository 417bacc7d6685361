// KnowledgeServer: the service's engine, free of gRPC. It wires
//   - request_validation: every request is checked here, once, before anything is queued;
//   - EditQueue: the bounded queue and the one editor thread, which applies edits, restores and snapshots
//     in order and makes each durable (log append + fsync) before it is published or acknowledged;
//   - VersionWaiters: reads that wait for a min_version;
//   - RequestIndex: request ids, the edit list, GetEdit;
//   - recovery: the state rebuilt from the data directory at Start();
//   - a WorkerPool for Ask and Score, which read the latest published KnowledgeView and so never wait for
//     an edit in progress;
//   - an AskBatcher (core/editor/ask_batch.h) that decodes concurrent Asks together (--max-batch > 1) and
//     streams AskStream's tokens: a worker plans the answer (its route), the batcher's decoder thread runs
//     the prompts and the steps.
// The Editor (core) is used by the editor thread alone once serving, except Current(), which any thread
// may call.
//
// Callback contract: every Submit* calls its `done` exactly once, from the editor thread, a worker, the
// waiter thread, or inline (for immediate answers). `done` must be cheap and must not call back into
// Submit*. An error means nothing was applied, except INTERNAL "not durable" after a log failure (the
// server then refuses further edits and restores).
//
// Versions: every applied edit and every restore publishes a new version, above every earlier one, and
// the log records it; a version number never names two states, across restores and restarts.
//
// Follower mode (EngineOptions::follow, docs/scaling.md): the engine loads the model and serves reads
// from the states a Follower (server/follower.h) publishes through PublishFollowed; it never trains, has
// no data directory, and refuses every write and the edit history with FAILED_PRECONDITION naming the
// editor.
//
// Thread-safety: all public methods are safe from any thread after Create.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/editor/ask_batch.h"
#include "core/editor/editor.h"
#include "core/storage/edit_log.h"
#include "core/storage/snapshot_store.h"
#include "server/edit_queue.h"
#include "server/metrics.h"
#include "server/request_index.h"
#include "server/request_validation.h"
#include "server/requests.h"
#include "server/version_waiters.h"
#include "server/worker_pool.h"

namespace moke::server {

struct EngineOptions {
  EditorOptions editor;
  std::string data_dir = "moke-data";
  int snapshot_every = 100;        // 0: only on request and at shutdown
  int max_queue = 64;              // edits waiting for the editor thread
  int workers = 2;                 // Ask/Score threads
  int max_read_queue = 256;        // Asks/Scores waiting for a worker (and, apart, for a version)
  size_t max_question_bytes = 2048;
  size_t max_answer_bytes = 1024;
  // A read with min_version and no deadline waits at most this long.
  std::chrono::milliseconds max_version_wait{30000};
  // Asks decoded together (core/editor/ask_batch.h); 1: each Ask decodes alone on a worker. AskStream
  // always goes through the batched decoder (one row when 1).
  int max_batch = 1;
  // An idle batched decoder waits this long for more Asks before its first step.
  std::chrono::microseconds batch_window{2000};
  // Non-empty: a follower of the editor at this address (no data directory, no writes).
  std::string follow;
};

class KnowledgeServer {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T>)>;

  // Cheap: checks the options and remembers them; nothing is loaded. `metrics` may be null and must
  // outlive the server.
  static absl::StatusOr<std::unique_ptr<KnowledgeServer>> Create(EngineOptions options, Metrics* metrics);
  ~KnowledgeServer();  // Shutdown(false) if still running

  // Loads the model, opens the data directory and recovers the state (server/recovery.h: DATA_LOSS when
  // the log lacks edits that the snapshots prove), then starts the threads. Blocking (seconds). Until it
  // returns OK every Submit* answers UNAVAILABLE.
  absl::Status Start();
  bool serving() const;

  // Stops accepting (new calls get UNAVAILABLE), finishes every queued edit and read, writes a snapshot
  // when `write_snapshot` and the state changed since the last one, and joins the threads. Idempotent.
  void Shutdown(bool write_snapshot);

  // An edit whose budget runs out while it waits in the queue is dropped and never applied; one whose
  // budget runs out during training is abandoned. A request id seen before: the first result, marked
  // duplicate (INVALID_ARGUMENT when the question or answer differ; FAILED_PRECONDITION when a restore
  // rolled that edit back).
  void SubmitEdit(EditSubmission edit, Done<EditAck> done);
  // Checked like every request, then UNIMPLEMENTED: the editor cannot forget a fact yet.
  void SubmitRetract(RetractSubmission retract, Done<RetractAck> done);
  void SubmitAsk(AskQuery query, Done<AskResult> done);
  // As SubmitAsk, through the batched decoder, with every token passed to `on_piece` (on the decoder
  // thread, before `done`) as it is made. A cancelled budget stops the decoding at the next step.
  void SubmitAskStream(AskQuery query, std::function<void(const AskPiece&)> on_piece, Done<AskResult> done);
  void SubmitScore(ScoreQuery query, Done<ScoreResult> done);
  void SubmitSnapshot(Budget budget, Done<storage::SnapshotFile> done);
  // Restores a snapshot of an earlier version as a NEW version (the current one + 1); answers that version.
  void SubmitRestore(std::string name, Budget budget, Done<uint64_t> done);

  // Cheap reads, answered on the caller's thread.
  EngineStatus Status() const;
  absl::StatusOr<EditList> ListEdits(uint64_t start, int limit) const;
  // Whether the edit sent with `request_id` was applied, and at which version (RequestIndex::Get).
  absl::StatusOr<EditEntry> GetEdit(const std::string& request_id) const;
  absl::StatusOr<std::vector<storage::SnapshotFile>> ListSnapshots() const;

  // ---- Followers (docs/scaling.md) ----
  bool follower() const { return !options_.follow.empty(); }
  const std::string& instance_id() const { return instance_id_; }
  // The latest published view (the editor's, or the last state a follower published); null before
  // Start(). Cheap.
  std::shared_ptr<const KnowledgeView> CurrentView() const;
  // The announced version: published and, on an editor, durable (AnnounceVersion runs after the log
  // append also for restores, which CurrentView() may show a moment earlier).
  uint64_t AnnouncedVersion() const;
  // Editor: waits until the announced version differs from `seen`, the engine stops, or `timeout`
  // passes; returns the announced version. For Follow streams.
  uint64_t AwaitVersionChange(uint64_t seen, absl::Duration timeout) const;
  // True once Shutdown() began.
  bool stopping() const;
  // Follower: publishes a state received from the editor: reads that start afterwards use it, reads in
  // progress keep theirs, waiting reads whose min_version it reaches run. FAILED_PRECONDITION for a
  // version below the one published (the editor's history went back: a version never names two states)
  // or when not a follower.
  absl::Status PublishFollowed(std::shared_ptr<const KnowledgeView> view);
  // Follower: what GetStatus reports about the editor.
  void SetFollowState(FollowState state);
  // The refusal of a write on a follower: FAILED_PRECONDITION naming the editor.
  absl::Status FollowerRefusal(const char* what) const;

 private:
  KnowledgeServer(EngineOptions options, Metrics* metrics);

  // The one read path (Ask, AskStream, Score): answers UNAVAILABLE, or `valid` when it is an error;
  // otherwise waits for `min_version`, then runs `compute` on the latest view on a worker, unless the
  // budget ran out. `compute` answers through the Done it is given, then or later (the batched decoder).
  template <typename Result>
  using Compute = std::function<void(std::shared_ptr<const KnowledgeView>, Done<Result>)>;
  template <typename Result>
  void Read(const absl::Status& valid, uint64_t min_version, const Budget& budget, const char* kind,
            Compute<Result> compute, Done<Result> done);

  absl::Status StartReaders();   // the worker pool, the batcher and the version waiters
  absl::Status StartFollower();  // Start() in follower mode, once the model is loaded

  // Editor thread.
  void RunEdit(const EditSubmission& edit, const Done<EditAck>& done);
  absl::StatusOr<uint64_t> RunRestore(const std::string& name);
  absl::StatusOr<RetractAck> RunRetract(const RetractSubmission& retract);
  absl::StatusOr<storage::SnapshotFile> WriteSnapshot();
  absl::Status AppendToLog(const storage::LogRecord& record);  // a failure marks the log failed
  // Tells readers and metrics about the editor's current version (after it changed).
  void AnnounceVersion();
  bool loaded() const;  // Start() finished (true also while shutting down)

  const EngineOptions options_;
  const RequestLimits limits_;
  Metrics* const metrics_;

  // Owned by the editor thread once serving (Start() and Shutdown() use them while it does not run).
  std::unique_ptr<Editor> editor_;
  std::unique_ptr<storage::EditLog> log_;
  std::optional<storage::SnapshotStore> snapshots_;  // set in Start() before serving; then read-only
  uint64_t edits_since_checkpoint_ = 0;
  bool log_failed_ = false;

  EditQueue queue_;
  RequestIndex index_;
  std::unique_ptr<VersionWaiters> waiters_;  // created in Start()
  std::unique_ptr<WorkerPool> pool_;         // created in Start()
  std::unique_ptr<AskBatcher> batcher_;      // created in Start()

  const std::string instance_id_;  // random, made at construction

  mutable absl::Mutex mu_;
  uint64_t published_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<const KnowledgeView> followed_ ABSL_GUARDED_BY(mu_);  // follower: the state served
  FollowState follow_state_ ABSL_GUARDED_BY(mu_);
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  EditorStats stats_ ABSL_GUARDED_BY(mu_);  // cached by the editor thread (Editor::Stats is not thread-safe)
};

}  // namespace moke::server
