#include "server/knowledge_server.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

absl::Status Unavailable() { return absl::UnavailableError("server is not serving (loading or shutting down)"); }

}  // namespace

absl::StatusOr<std::unique_ptr<KnowledgeServer>> KnowledgeServer::Create(EngineOptions options, Metrics* metrics) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: must not be empty");
  if (options.snapshot_every < 0) return absl::InvalidArgumentError("--snapshot-every: must be >= 0");
  if (options.max_queue < 1) return absl::InvalidArgumentError("--max-queue: must be >= 1");
  if (options.workers < 1 || options.workers > 256) return absl::InvalidArgumentError("--workers: must be in [1, 256]");
  if (options.max_read_queue < 1) return absl::InvalidArgumentError("--max-read-queue: must be >= 1");
  if (options.max_question_bytes < 1) return absl::InvalidArgumentError("--max-question-bytes: must be >= 1");
  if (options.max_answer_bytes < 1) return absl::InvalidArgumentError("--max-answer-bytes: must be >= 1");
  return std::unique_ptr<KnowledgeServer>(new KnowledgeServer(std::move(options), metrics));
}

KnowledgeServer::KnowledgeServer(EngineOptions options, Metrics* metrics)
    : options_(std::move(options)), metrics_(metrics) {}

KnowledgeServer::~KnowledgeServer() { Shutdown(false); }

bool KnowledgeServer::serving() const {
  absl::MutexLock lock(&mu_);
  return serving_ && !stopping_;
}

absl::Status KnowledgeServer::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (serving_ || stopping_) return absl::FailedPreconditionError("Start() called twice");
  }
  const auto t0 = Clock::now();
  MOKE_ASSIGN_OR_RETURN(editor_, Editor::Create(options_.editor));
  spdlog::info("model loaded from {} in {:.2f} s", options_.editor.model_dir, SecondsSince(t0));
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("--data-dir: cannot create ", options_.data_dir, ": ", ec.message()));
  MOKE_ASSIGN_OR_RETURN(storage::SnapshotStore store, storage::SnapshotStore::Open(options_.data_dir + "/snapshots"));
  snapshots_.emplace(std::move(store));
  std::vector<storage::LogRecord> records;
  MOKE_ASSIGN_OR_RETURN(log_, storage::EditLog::Open(options_.data_dir + "/edit.log", &records));
  MOKE_RETURN_IF_ERROR(Recover(records));

  {
    absl::MutexLock lock(&mu_);
    for (const storage::LogRecord& r : records) {
      if (r.type != storage::LogRecordType::kEdit) continue;
      edit_records_.push_back(r);
      if (!r.request_id.empty()) by_request_id_.emplace(r.request_id, edit_records_.size() - 1);
    }
  }
  pool_ = std::make_unique<WorkerPool>(options_.workers, static_cast<size_t>(options_.max_read_queue));
  Publish();
  {
    absl::MutexLock lock(&mu_);
    serving_ = true;
  }
  editor_thread_ = std::thread([this] { EditorLoop(); });
  waiter_thread_ = std::thread([this] { WaiterLoop(); });
  if (metrics_) {
    metrics_->SetServing(true);
    metrics_->SetEditLogBytes(log_->size_bytes());
  }
  spdlog::info("serving knowledge version {} ({} edits in the log) after {:.2f} s", editor_->Current()->version(),
               records.size(), SecondsSince(t0));
  return absl::OkStatus();
}

absl::Status KnowledgeServer::Recover(const std::vector<storage::LogRecord>& records) {
  MOKE_ASSIGN_OR_RETURN(storage::RecoveryPlan plan, storage::PlanRecovery(records));
  size_t start = 0;
  bool restored = false;
  for (auto it = plan.checkpoints.rbegin(); it != plan.checkpoints.rend() && !restored; ++it) {
    const std::string path = snapshots_->PathOf(it->snapshot);
    absl::StatusOr<uint64_t> v = storage::SnapshotStore::IsValidName(it->snapshot)
                                     ? Editor::SnapshotVersion(path)
                                     : absl::StatusOr<uint64_t>(absl::DataLossError("bad snapshot name in the log"));
    if (v.ok() && *v != it->version) {
      v = absl::DataLossError(absl::StrCat("holds version ", *v, ", the log expects ", it->version));
    }
    absl::Status s = v.ok() ? editor_->RestoreSnapshot(path) : v.status();
    if (!s.ok()) {
      spdlog::warn("snapshot {} refused ({}); falling back to the previous one", it->snapshot, std::string(s.message()));
      continue;
    }
    start = it->edits_before;
    restored = true;
    spdlog::info("restored snapshot {} (version {})", it->snapshot, it->version);
  }
  if (!restored && !plan.base_snapshot.empty()) {
    // The lineage starts at a RestoreSnapshot: its base cannot be rebuilt from this lineage's edits.
    absl::Status s = editor_->RestoreSnapshot(snapshots_->PathOf(plan.base_snapshot));
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("cannot restore snapshot ", plan.base_snapshot,
                                              " that the edit log was restored to: ", s.message()));
    }
    spdlog::info("restored base snapshot {} (version {})", plan.base_snapshot, plan.base_version);
  } else if (!restored && !plan.checkpoints.empty()) {
    spdlog::warn("no valid snapshot; replaying the whole edit log from version 0");
  }
  const auto t0 = Clock::now();
  for (size_t i = start; i < plan.edits.size(); ++i) {
    const storage::LogRecord& r = plan.edits[i];
    absl::StatusOr<EditResult> res = editor_->ApplyEdit({r.question, r.answer, r.unrelated});
    if (!res.ok()) {
      return absl::DataLossError(absl::StrCat("replaying edit ", r.edit_id, " failed: ", res.status().message()));
    }
    if (res->version != r.version) {
      return absl::DataLossError(absl::StrCat("replaying edit ", r.edit_id, " gave version ", res->version,
                                              ", the log says ", r.version));
    }
    if (res->expert != r.expert) {
      spdlog::warn("replaying edit {}: expert {} where the log says {}", r.edit_id, res->expert, r.expert);
    }
  }
  if (plan.edits.size() > start) {
    spdlog::info("replayed {} edits from the log in {:.2f} s", plan.edits.size() - start, SecondsSince(t0));
  }
  edits_since_checkpoint_ = plan.edits.size() - start;
  return absl::OkStatus();
}

void KnowledgeServer::Shutdown(bool write_snapshot) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    shut_down_ = true;
    stopping_ = true;  // new submissions: UNAVAILABLE; the editor thread drains the queue and exits
  }
  if (metrics_) metrics_->SetServing(false);
  if (editor_thread_.joinable()) editor_thread_.join();
  if (write_snapshot && editor_ && log_ && !log_failed_ && edits_since_checkpoint_ > 0) {
    absl::StatusOr<storage::SnapshotFile> f = WriteSnapshot();
    if (f.ok()) {
      spdlog::info("shutdown snapshot {} written", f->name);
    } else {
      spdlog::error("shutdown snapshot failed: {}", std::string(f.status().message()));
    }
  }
  if (pool_) pool_->Stop();  // runs the reads already queued
  {
    absl::MutexLock lock(&mu_);
    waiter_stop_ = true;
  }
  if (waiter_thread_.joinable()) waiter_thread_.join();
}

absl::Status KnowledgeServer::ValidateEdit(const EditSubmission& edit) const {
  if (edit.question.empty()) return absl::InvalidArgumentError("question is empty");
  if (edit.answer.empty()) return absl::InvalidArgumentError("answer is empty");
  if (edit.question.size() > options_.max_question_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("question is ", edit.question.size(), " bytes; the limit is ", options_.max_question_bytes));
  }
  if (edit.answer.size() > options_.max_answer_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("answer is ", edit.answer.size(), " bytes; the limit is ", options_.max_answer_bytes));
  }
  if (!IsValidUtf8(edit.question)) return absl::InvalidArgumentError("question is not valid UTF-8");
  if (!IsValidUtf8(edit.answer)) return absl::InvalidArgumentError("answer is not valid UTF-8");
  if (edit.request_id.size() > 256) return absl::InvalidArgumentError("request_id is longer than 256 bytes");
  if (!IsValidUtf8(edit.request_id)) return absl::InvalidArgumentError("request_id is not valid UTF-8");
  if (editor_) return editor_->ValidateEdit({edit.question, edit.answer});
  return absl::OkStatus();
}

std::optional<EditAck> KnowledgeServer::AckOf(const storage::LogRecord& r, bool duplicate) {
  EditAck a;
  a.version = r.version;
  a.edit_id = r.edit_id;
  a.expert = r.expert;
  a.new_concept = r.new_concept;
  a.duplicate = duplicate;
  a.iterations = r.iterations;
  a.loss = r.loss;
  a.apply_seconds = r.apply_seconds;
  return a;
}

absl::Status KnowledgeServer::EnqueueTask(Task& task, bool is_edit) {
  absl::MutexLock lock(&mu_);
  if (!serving_ || stopping_) return Unavailable();
  if (is_edit && queued_edits_ >= options_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrCat("edit queue is full (", queued_edits_, " waiting)"));
  }
  if (queue_.size() >= static_cast<size_t>(options_.max_queue) + 16) {
    return absl::ResourceExhaustedError("editor queue is full");
  }
  queue_.push_back(std::move(task));
  if (is_edit) ++queued_edits_;
  if (metrics_) metrics_->SetQueueDepth(queued_edits_);
  return absl::OkStatus();
}

void KnowledgeServer::SubmitEdit(EditSubmission edit, std::function<void(absl::StatusOr<EditAck>)> done) {
  if (!serving()) return done(Unavailable());
  if (absl::Status s = ValidateEdit(edit); !s.ok()) return done(s);
  if (Clock::now() >= edit.deadline) return done(absl::DeadlineExceededError("deadline passed before the edit was queued"));
  if (!edit.request_id.empty()) {
    std::optional<EditAck> dup;
    {
      absl::MutexLock lock(&mu_);
      if (auto it = by_request_id_.find(edit.request_id); it != by_request_id_.end()) {
        dup = AckOf(edit_records_[it->second], true);
      }
    }
    if (dup) return done(*dup);
  }
  const Deadline deadline = edit.deadline;
  Task task{EditTask{std::move(edit), std::move(done)}, deadline, Clock::now()};
  if (absl::Status s = EnqueueTask(task, true); !s.ok()) std::get<EditTask>(task.work).done(s);
}

void KnowledgeServer::SubmitSnapshot(Deadline deadline,
                                     std::function<void(absl::StatusOr<storage::SnapshotFile>)> done) {
  Task task{SnapshotTask{std::move(done)}, deadline, Clock::now()};
  if (absl::Status s = EnqueueTask(task, false); !s.ok()) std::get<SnapshotTask>(task.work).done(s);
}

void KnowledgeServer::SubmitRestore(std::string name, Deadline deadline,
                                    std::function<void(absl::StatusOr<uint64_t>)> done) {
  if (!storage::SnapshotStore::IsValidName(name)) {
    return done(absl::InvalidArgumentError(absl::StrCat("bad snapshot name '", name.substr(0, 64),
                                                        "' (expected snap-<version>.bin)")));
  }
  if (!serving()) return done(Unavailable());
  if (absl::StatusOr<storage::SnapshotFile> f = snapshots_->Stat(name); !f.ok()) return done(f.status());
  Task task{RestoreTask{std::move(name), std::move(done)}, deadline, Clock::now()};
  if (absl::Status s = EnqueueTask(task, false); !s.ok()) std::get<RestoreTask>(task.work).done(s);
}

void KnowledgeServer::SubmitAsk(AskQuery q, std::function<void(absl::StatusOr<AskResult>)> done) {
  if (!serving()) return done(Unavailable());
  if (q.question.empty()) return done(absl::InvalidArgumentError("question is empty"));
  if (q.question.size() > options_.max_question_bytes) {
    return done(absl::InvalidArgumentError(
        absl::StrCat("question is ", q.question.size(), " bytes; the limit is ", options_.max_question_bytes)));
  }
  if (!IsValidUtf8(q.question)) return done(absl::InvalidArgumentError("question is not valid UTF-8"));
  if (q.max_new_tokens < 0 || q.max_new_tokens > options_.editor.max_new_tokens) {
    return done(absl::InvalidArgumentError(absl::StrCat("max_new_tokens must be in [0, ", options_.editor.max_new_tokens, "]")));
  }
  if (Clock::now() >= q.deadline) return done(absl::DeadlineExceededError("deadline passed before the ask was queued"));
  auto shared_done = std::make_shared<std::function<void(absl::StatusOr<AskResult>)>>(std::move(done));
  const uint64_t min_version = q.min_version;
  const Deadline deadline = q.deadline;
  auto compute = [this, q = std::move(q), shared_done] {
    if (Clock::now() >= q.deadline) return (*shared_done)(absl::DeadlineExceededError("deadline passed in the read queue"));
    const auto t0 = Clock::now();
    std::shared_ptr<const KnowledgeView> view = editor_->Current();  // never waits for an edit in progress
    absl::StatusOr<AskResult> r = view->Ask(q.question, q.max_new_tokens, q.routing);
    if (metrics_) {
      metrics_->ObserveAskSeconds("ask", SecondsSince(t0));
      if (r.ok()) metrics_->CountAskRoute(r->route.expert);
    }
    (*shared_done)(std::move(r));
  };
  WhenVersion(
      min_version, deadline,
      [this, compute = std::move(compute), shared_done]() mutable {
        if (!pool_->TrySubmit(std::move(compute))) (*shared_done)(absl::ResourceExhaustedError("read queue is full"));
      },
      [shared_done](absl::Status s) { (*shared_done)(std::move(s)); });
}

void KnowledgeServer::SubmitScore(ScoreQuery q, std::function<void(absl::StatusOr<ScoreResult>)> done) {
  if (!serving()) return done(Unavailable());
  if (q.prompt.empty()) return done(absl::InvalidArgumentError("prompt is empty"));
  if (q.answer.empty()) return done(absl::InvalidArgumentError("answer is empty"));
  if (q.prompt.size() > options_.max_question_bytes || q.answer.size() > options_.max_answer_bytes) {
    return done(absl::InvalidArgumentError(absl::StrCat("prompt or answer too long (limits ", options_.max_question_bytes,
                                                        " and ", options_.max_answer_bytes, " bytes)")));
  }
  if (!IsValidUtf8(q.prompt)) return done(absl::InvalidArgumentError("prompt is not valid UTF-8"));
  if (!IsValidUtf8(q.answer)) return done(absl::InvalidArgumentError("answer is not valid UTF-8"));
  if (Clock::now() >= q.deadline) return done(absl::DeadlineExceededError("deadline passed before the score was queued"));
  auto shared_done = std::make_shared<std::function<void(absl::StatusOr<ScoreResult>)>>(std::move(done));
  const uint64_t min_version = q.min_version;
  const Deadline deadline = q.deadline;
  auto compute = [this, q = std::move(q), shared_done] {
    if (Clock::now() >= q.deadline) return (*shared_done)(absl::DeadlineExceededError("deadline passed in the read queue"));
    const auto t0 = Clock::now();
    std::shared_ptr<const KnowledgeView> view = editor_->Current();
    absl::StatusOr<ScoreResult> r = view->Score(q.prompt, q.answer, q.routing, q.original);
    if (metrics_) metrics_->ObserveAskSeconds("score", SecondsSince(t0));
    (*shared_done)(std::move(r));
  };
  WhenVersion(
      min_version, deadline,
      [this, compute = std::move(compute), shared_done]() mutable {
        if (!pool_->TrySubmit(std::move(compute))) (*shared_done)(absl::ResourceExhaustedError("read queue is full"));
      },
      [shared_done](absl::Status s) { (*shared_done)(std::move(s)); });
}

void KnowledgeServer::WhenVersion(uint64_t min_version, Deadline deadline, std::function<void()> run,
                                  std::function<void(absl::Status)> fail) {
  {
    absl::MutexLock lock(&mu_);
    if (published_version_ < min_version) {
      if (waiters_.size() >= static_cast<size_t>(options_.max_read_queue)) {
        fail(absl::ResourceExhaustedError("too many reads waiting for a version"));
        return;
      }
      const Deadline cap = Clock::now() + options_.max_version_wait;
      waiters_.emplace(min_version, Waiter{min_version, std::min(deadline, cap), std::move(run), std::move(fail)});
      waiters_changed_ = true;
      return;
    }
  }
  run();
}

void KnowledgeServer::Publish() {
  const uint64_t v = editor_->Current()->version();
  EditorStats stats = editor_->Stats();
  if (metrics_) {
    metrics_->SetVersion(v);
    metrics_->SetEditsApplied(stats.edits_applied);
    metrics_->SetReplayBufferSize(stats.replay_size);
    metrics_->SetMemoryBytes(stats.memory_bytes);
    if (log_) metrics_->SetEditLogBytes(log_->size_bytes());
  }
  std::vector<Waiter> ready;
  {
    absl::MutexLock lock(&mu_);
    published_version_ = v;
    stats_ = std::move(stats);
    auto end = waiters_.upper_bound(v);
    for (auto it = waiters_.begin(); it != end; ++it) ready.push_back(std::move(it->second));
    waiters_.erase(waiters_.begin(), end);
  }
  for (Waiter& w : ready) w.run();
}

void KnowledgeServer::WaiterLoop() {
  for (;;) {
    std::vector<Waiter> expired;
    bool stop = false;
    {
      absl::MutexLock lock(&mu_);
      Deadline earliest = kNoDeadline;
      for (const auto& [v, w] : waiters_) earliest = std::min(earliest, w.deadline);
      waiters_changed_ = false;
      const absl::Duration timeout = earliest == kNoDeadline
                                         ? absl::Seconds(3600)
                                         : absl::FromChrono(earliest - Clock::now()) + absl::Milliseconds(1);
      mu_.AwaitWithTimeout(absl::Condition(this, &KnowledgeServer::WaiterWake), timeout);
      stop = waiter_stop_;
      const auto now = Clock::now();
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if (stop || it->second.deadline <= now) {
          expired.push_back(std::move(it->second));
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Waiter& w : expired) {
      w.fail(stop ? Unavailable()
                  : absl::DeadlineExceededError(absl::StrCat("version ", w.min_version, " was not published in time")));
    }
    if (stop) return;
  }
}

void KnowledgeServer::EditorLoop() {
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &KnowledgeServer::HasTaskOrStopping));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      if (std::holds_alternative<EditTask>(task.work)) --queued_edits_;
      if (metrics_) metrics_->SetQueueDepth(queued_edits_);
    }
    const bool late = Clock::now() >= task.deadline;
    const absl::Status late_status = absl::DeadlineExceededError("deadline passed in the edit queue; nothing applied");
    if (auto* e = std::get_if<EditTask>(&task.work)) {
      if (metrics_) metrics_->ObserveQueueWaitSeconds(SecondsSince(task.enqueued));
      if (late) {
        e->done(late_status);
      } else {
        RunEdit(*e, task.enqueued);
      }
    } else if (auto* s = std::get_if<SnapshotTask>(&task.work)) {
      if (late) {
        s->done(late_status);
      } else {
        RunSnapshot(*s);
      }
    } else if (auto* r = std::get_if<RestoreTask>(&task.work)) {
      if (late) {
        r->done(late_status);
      } else {
        RunRestore(*r);
      }
    }
  }
}

void KnowledgeServer::RunEdit(EditTask& task, Clock::time_point /*enqueued*/) {
  if (log_failed_) return task.done(absl::InternalError("the edit log failed earlier; the server refuses edits"));
  const EditSubmission& e = task.edit;
  uint64_t next_id;
  std::optional<EditAck> dup;
  {
    absl::MutexLock lock(&mu_);
    if (!e.request_id.empty()) {
      if (auto it = by_request_id_.find(e.request_id); it != by_request_id_.end()) {
        dup = AckOf(edit_records_[it->second], true);
      }
    }
    next_id = edit_records_.size() + 1;
  }
  if (dup) return task.done(*dup);
  const auto t0 = Clock::now();
  // Applied but not yet published: readers see it only once it is durable in the log.
  absl::StatusOr<EditResult> r = editor_->ApplyEdit({e.question, e.answer, e.unrelated}, /*publish=*/false);
  if (!r.ok()) return task.done(r.status());
  storage::LogRecord rec;
  rec.type = storage::LogRecordType::kEdit;
  rec.edit_id = next_id;
  rec.version = r->version;
  rec.unix_micros = NowMicros();
  rec.question = e.question;
  rec.answer = e.answer;
  rec.request_id = e.request_id;
  rec.unrelated = e.unrelated;
  rec.expert = r->expert;
  rec.new_concept = r->new_concept;
  rec.iterations = r->iterations;
  rec.loss = r->loss;
  rec.apply_seconds = r->seconds;
  if (absl::Status s = log_->Append(rec); !s.ok()) {
    log_failed_ = true;
    spdlog::error("edit log append failed, refusing further edits: {}", std::string(s.message()));
    return task.done(absl::InternalError(absl::StrCat("edit applied in memory but not durable: ", s.message())));
  }
  editor_->Publish();
  {
    absl::MutexLock lock(&mu_);
    edit_records_.push_back(rec);
    if (!rec.request_id.empty()) by_request_id_.emplace(rec.request_id, edit_records_.size() - 1);
  }
  Publish();
  if (metrics_) {
    metrics_->ObserveEditSeconds(SecondsSince(t0));
    metrics_->CountEditExpert(rec.expert);
  }
  task.done(*AckOf(rec, false));
  ++edits_since_checkpoint_;
  if (options_.snapshot_every > 0 && edits_since_checkpoint_ >= static_cast<uint64_t>(options_.snapshot_every)) {
    absl::StatusOr<storage::SnapshotFile> f = WriteSnapshot();
    if (!f.ok()) spdlog::error("periodic snapshot failed: {}", std::string(f.status().message()));
  }
}

absl::StatusOr<storage::SnapshotFile> KnowledgeServer::WriteSnapshot() {
  if (log_failed_) return absl::InternalError("the edit log failed earlier; no snapshot is recorded");
  const uint64_t v = editor_->Current()->version();
  const std::string name = storage::SnapshotStore::NameFor(v);
  const auto t0 = Clock::now();
  MOKE_RETURN_IF_ERROR(editor_->SaveSnapshot(snapshots_->PathOf(name)));
  storage::LogRecord rec;
  rec.type = storage::LogRecordType::kSnapshot;
  rec.version = v;
  rec.unix_micros = NowMicros();
  rec.snapshot = name;
  if (absl::Status s = log_->Append(rec); !s.ok()) {
    log_failed_ = true;
    return s;
  }
  edits_since_checkpoint_ = 0;
  spdlog::info("snapshot {} written in {:.2f} s", name, SecondsSince(t0));
  return snapshots_->Stat(name);
}

void KnowledgeServer::RunSnapshot(SnapshotTask& task) { task.done(WriteSnapshot()); }

void KnowledgeServer::RunRestore(RestoreTask& task) {
  if (log_failed_) return task.done(absl::InternalError("the edit log failed earlier; the server refuses restores"));
  const std::string path = snapshots_->PathOf(task.name);
  if (absl::Status s = editor_->RestoreSnapshot(path); !s.ok()) return task.done(s);  // state unchanged
  const uint64_t v = editor_->Current()->version();
  storage::LogRecord rec;
  rec.type = storage::LogRecordType::kRestore;
  rec.version = v;
  rec.unix_micros = NowMicros();
  rec.snapshot = task.name;
  if (absl::Status s = log_->Append(rec); !s.ok()) {
    log_failed_ = true;
    spdlog::error("edit log append failed, refusing further edits: {}", std::string(s.message()));
    Publish();
    return task.done(absl::InternalError(absl::StrCat("restored in memory but not durable: ", s.message())));
  }
  edits_since_checkpoint_ = 0;
  Publish();
  spdlog::info("restored snapshot {} (version {})", task.name, v);
  task.done(v);
}

EngineStatus KnowledgeServer::Status() const {
  EngineStatus s;
  s.method = EditMethodName(options_.editor.method);
  s.model = options_.editor.model_dir;
  s.device = options_.editor.device;
  absl::MutexLock lock(&mu_);
  s.serving = serving_ && !stopping_;
  s.stats = stats_;
  s.queue_depth = queued_edits_;
  return s;
}

EditList KnowledgeServer::ListEdits(uint64_t start, int limit) const {
  EditList out;
  if (limit <= 0) limit = 100;
  limit = std::min(limit, 1000);
  absl::MutexLock lock(&mu_);
  out.total = edit_records_.size();
  for (uint64_t i = start == 0 ? 0 : start - 1; i < edit_records_.size() && static_cast<int>(out.edits.size()) < limit;
       ++i) {
    out.edits.push_back(edit_records_[i]);
  }
  return out;
}

absl::StatusOr<std::vector<storage::SnapshotFile>> KnowledgeServer::ListSnapshots() const {
  {
    absl::MutexLock lock(&mu_);
    if (!serving_) return Unavailable();  // snapshots_ is set before serving_ and never changes after
  }
  return snapshots_->List();
}

}  // namespace moke::server
