#include "server/knowledge_server.h"

#include <filesystem>
#include <random>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "server/recovery.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

absl::Status Unavailable() { return absl::UnavailableError("server is not serving (loading or shutting down)"); }

// 16 random hex digits (not a seed of anything: it only tells two server processes apart).
std::string RandomInstanceId() {
  std::random_device rd;
  const uint64_t v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return absl::StrCat(absl::Hex(v, absl::kZeroPad16));
}

// The log record of an applied edit (the only place one is built).
storage::LogRecord EditRecordOf(const EditSubmission& e, const EditResult& r, uint64_t edit_id) {
  storage::LogRecord rec;
  rec.type = storage::LogRecordType::kEdit;
  rec.edit_id = edit_id;
  rec.version = r.version;
  rec.unix_micros = NowMicros();
  rec.question = e.question;
  rec.answer = e.answer;
  rec.request_id = e.request_id;
  rec.unrelated = e.unrelated;
  rec.subject = r.subject;  // the one the edit is keyed on: replay keys it the same way
  rec.paraphrases = e.paraphrases;
  rec.expert = r.expert;
  rec.new_concept = r.new_concept;
  rec.iterations = r.iterations;
  rec.loss = r.loss;
  rec.apply_seconds = r.seconds;
  return rec;
}

// The log record of a restore or a snapshot: the state's version and the snapshot's name.
storage::LogRecord StateRecordOf(storage::LogRecordType type, uint64_t version, const std::string& snapshot) {
  storage::LogRecord rec;
  rec.type = type;
  rec.version = version;
  rec.unix_micros = NowMicros();
  rec.snapshot = snapshot;
  return rec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KnowledgeServer>> KnowledgeServer::Create(EngineOptions options, Metrics* metrics) {
  if (options.data_dir.empty()) return absl::InvalidArgumentError("--data-dir: must not be empty");
  if (options.snapshot_every < 0) return absl::InvalidArgumentError("--snapshot-every: must be >= 0");
  if (options.max_queue < 1) return absl::InvalidArgumentError("--max-queue: must be >= 1");
  if (options.workers < 1 || options.workers > 256) return absl::InvalidArgumentError("--workers: must be in [1, 256]");
  if (options.max_read_queue < 1) return absl::InvalidArgumentError("--max-read-queue: must be >= 1");
  if (options.max_batch < 1 || options.max_batch > 256) return absl::InvalidArgumentError("--max-batch: must be in [1, 256]");
  if (options.batch_window < std::chrono::microseconds(0) || options.batch_window > std::chrono::seconds(1)) {
    return absl::InvalidArgumentError("--batch-window-us: must be in [0, 1000000]");
  }
  if (options.max_question_bytes < 1) return absl::InvalidArgumentError("--max-question-bytes: must be >= 1");
  if (options.max_answer_bytes < 1) return absl::InvalidArgumentError("--max-answer-bytes: must be >= 1");
  return std::unique_ptr<KnowledgeServer>(new KnowledgeServer(std::move(options), metrics));
}

KnowledgeServer::KnowledgeServer(EngineOptions options, Metrics* metrics)
    : options_(std::move(options)),
      limits_{options_.max_question_bytes, options_.max_answer_bytes, options_.editor.max_new_tokens},
      metrics_(metrics),
      queue_(options_.max_queue, metrics),
      instance_id_(RandomInstanceId()) {
  follow_state_.editor = options_.follow;
}

KnowledgeServer::~KnowledgeServer() { Shutdown(false); }

bool KnowledgeServer::serving() const {
  absl::MutexLock lock(&mu_);
  return serving_ && !stopping_;
}

// A follower: no data directory, no log, no editor thread work; version 0 until the Follower publishes.
absl::Status KnowledgeServer::StartFollower() {
  MOKE_RETURN_IF_ERROR(StartReaders());
  {
    absl::MutexLock lock(&mu_);
    followed_ = editor_->Current();
    published_version_ = followed_->version();
    stats_.edit_layer = static_cast<int>(editor_->Stats().edit_layer);
    serving_ = true;
  }
  queue_.Start();  // idle: a follower queues nothing, but Shutdown stops it
  if (metrics_) metrics_->SetServing(true);
  spdlog::info("follower of {}: model loaded; reads wait for the editor's state (min_version) or get version 0",
               options_.follow);
  return absl::OkStatus();
}

absl::Status KnowledgeServer::StartReaders() {
  pool_ = std::make_unique<WorkerPool>(options_.workers, static_cast<size_t>(options_.max_read_queue));
  AskBatcher::Options batch;
  batch.max_batch = options_.max_batch;
  batch.window = options_.batch_window;
  batch.max_waiting = static_cast<size_t>(options_.max_read_queue);
  if (metrics_) batch.on_step = [m = metrics_](int rows) { m->ObserveDecodeBatchRows(rows); };
  MOKE_ASSIGN_OR_RETURN(batcher_, AskBatcher::Create(std::move(batch), editor_->Current()));
  waiters_ = std::make_unique<VersionWaiters>(static_cast<size_t>(options_.max_read_queue), options_.max_version_wait);
  return absl::OkStatus();
}

bool KnowledgeServer::loaded() const {
  absl::MutexLock lock(&mu_);
  return serving_;
}

absl::Status KnowledgeServer::Start() {
  {
    absl::MutexLock lock(&mu_);
    if (serving_ || stopping_) return absl::FailedPreconditionError("Start() called twice");
  }
  const auto t0 = Clock::now();
  MOKE_ASSIGN_OR_RETURN(editor_, Editor::Create(options_.editor));
  spdlog::info("model loaded from {} in {:.2f} s", options_.editor.model_dir, SecondsSince(t0));
  if (follower()) return StartFollower();
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("--data-dir: cannot create ", options_.data_dir, ": ", ec.message()));
  MOKE_ASSIGN_OR_RETURN(storage::SnapshotStore store, storage::SnapshotStore::Open(options_.data_dir + "/snapshots"));
  snapshots_.emplace(std::move(store));
  const std::string log_path = options_.data_dir + "/edit.log";
  if (!std::filesystem::exists(log_path)) spdlog::info("no edit log at {}: a new one starts at version 0", log_path);
  std::vector<storage::LogRecord> records;
  MOKE_ASSIGN_OR_RETURN(log_, storage::EditLog::Open(log_path, &records));
  MOKE_ASSIGN_OR_RETURN(Recovered recovered, Recover(*editor_, *snapshots_, log_path, records));
  edits_since_checkpoint_ = recovered.edits_since_checkpoint;
  index_.Load(records);

  MOKE_RETURN_IF_ERROR(StartReaders());
  AnnounceVersion();
  queue_.Start();
  {
    absl::MutexLock lock(&mu_);
    serving_ = true;
  }
  if (metrics_) metrics_->SetServing(true);
  spdlog::info("serving knowledge version {} ({} records in the log) after {:.2f} s", recovered.version, records.size(),
               SecondsSince(t0));
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
  queue_.Stop();
  if (write_snapshot && editor_ && log_ && !log_failed_ && edits_since_checkpoint_ > 0) {
    absl::StatusOr<storage::SnapshotFile> f = WriteSnapshot();
    if (f.ok()) {
      spdlog::info("shutdown snapshot {} written", f->name);
    } else {
      spdlog::error("shutdown snapshot failed: {}", std::string(f.status().message()));
    }
  }
  if (pool_) pool_->Stop();  // runs the reads already queued
  if (batcher_) batcher_->Stop();  // decodes the answers the workers handed it
  if (waiters_) waiters_->Stop();
}

// ---- Edits, restores, snapshots: queued for the editor thread ----

void KnowledgeServer::SubmitEdit(EditSubmission edit, Done<EditAck> done) {
  if (follower()) return done(FollowerRefusal("EditFact"));
  if (!serving()) return done(Unavailable());
  if (absl::Status s = ValidateEdit(edit, limits_); !s.ok()) return done(s);
  absl::StatusOr<std::optional<EditAck>> seen = index_.Resolve(edit);
  if (!seen.ok()) return done(seen.status());
  if (*seen) return done(**seen);
  if (absl::Status s = edit.budget.Check("edit (before it was queued)"); !s.ok()) return done(s);
  index_.MarkPending(edit.request_id);
  auto e = std::make_shared<const EditSubmission>(std::move(edit));
  queue_.Push({/*is_edit=*/true, e->budget, [this, e, done = std::move(done)](absl::Status turn) {
                 const Done<EditAck> finish = [&](absl::StatusOr<EditAck> r) {
                   index_.ClearPending(e->request_id);  // after RunEdit indexed it: GetEdit never misses it
                   done(std::move(r));
                 };
                 if (turn.ok()) return RunEdit(*e, finish);
                 finish(turn);
               }});
}

void KnowledgeServer::RunEdit(const EditSubmission& e, const Done<EditAck>& done) {
  if (log_failed_) return done(absl::InternalError("the edit log failed earlier; the server refuses edits"));
  // A retry queued behind its first try is answered here.
  absl::StatusOr<std::optional<EditAck>> seen = index_.Resolve(e);
  if (!seen.ok()) return done(seen.status());
  if (*seen) return done(**seen);
  const auto t0 = Clock::now();
  // Applied but not published: readers see it only once it is durable in the log.
  absl::StatusOr<EditResult> r =
      editor_->ApplyEdit({e.question, e.answer, e.unrelated, e.subject, e.paraphrases}, /*publish=*/false, e.budget);
  if (!r.ok()) return done(r.status());
  const storage::LogRecord rec = EditRecordOf(e, *r, index_.next_edit_id());
  if (absl::Status s = AppendToLog(rec); !s.ok()) {
    return done(absl::InternalError(absl::StrCat("edit applied in memory but not durable: ", s.message())));
  }
  editor_->Publish();
  index_.Add(rec);
  AnnounceVersion();
  if (metrics_) {
    metrics_->ObserveEditSeconds(SecondsSince(t0));
    metrics_->CountEditExpert(rec.expert);
  }
  EditAck ack = AckOf(rec, /*duplicate=*/false);
  ack.superseded_edit_id = r->superseded_version ? index_.EditIdOfVersion(r->superseded_version) : 0;
  done(ack);
  ++edits_since_checkpoint_;
  if (options_.snapshot_every > 0 && edits_since_checkpoint_ >= static_cast<uint64_t>(options_.snapshot_every)) {
    absl::StatusOr<storage::SnapshotFile> f = WriteSnapshot();
    if (!f.ok()) spdlog::error("periodic snapshot failed: {}", std::string(f.status().message()));
  }
}

void KnowledgeServer::SubmitRetract(RetractSubmission retract, Done<RetractAck> done) {
  if (follower()) return done(FollowerRefusal("RetractFact"));
  if (!serving()) return done(Unavailable());
  if (absl::Status s = ValidateRetract(retract, limits_); !s.ok()) return done(s);
  auto r = std::make_shared<const RetractSubmission>(std::move(retract));
  queue_.Push({/*is_edit=*/true, r->budget, [this, r, done = std::move(done)](absl::Status turn) {
                 if (!turn.ok()) return done(turn);
                 done(RunRetract(*r));
               }});
}

absl::StatusOr<RetractAck> KnowledgeServer::RunRetract(const RetractSubmission& r) {
  if (log_failed_) return absl::InternalError("the edit log failed earlier; the server refuses retracts");
  if (std::optional<storage::LogRecord> seen = index_.RetractOf(r.request_id)) {  // a retry
    return RetractAck{seen->version, index_.EditIdOfVersion(seen->retracted_version)};
  }
  RetractRequest req{r.question, 0};
  if (r.edit_id != 0) {
    std::optional<uint64_t> v = index_.VersionOfEdit(r.edit_id);
    if (!v) return absl::NotFoundError(absl::StrCat("edit_id ", r.edit_id, ": no such edit"));
    req.version = *v;
  }
  MOKE_ASSIGN_OR_RETURN(RetractResult res, editor_->Retract(req, /*publish=*/false));
  storage::LogRecord rec = StateRecordOf(storage::LogRecordType::kRetract, res.version, "");
  rec.retracted_version = res.retracted_version;
  rec.question = r.question;
  rec.request_id = r.request_id;
  if (absl::Status s = AppendToLog(rec); !s.ok()) {
    return absl::InternalError(absl::StrCat("retracted in memory but not durable: ", s.message()));
  }
  editor_->Publish();
  index_.Add(rec);
  AnnounceVersion();
  ++edits_since_checkpoint_;
  spdlog::info("retracted the fact of version {} (\"{}\") at version {}", res.retracted_version, res.question,
               res.version);
  return RetractAck{res.version, index_.EditIdOfVersion(res.retracted_version)};
}

void KnowledgeServer::SubmitSnapshot(Budget budget, Done<storage::SnapshotFile> done) {
  if (follower()) return done(FollowerRefusal("CreateSnapshot"));
  if (!serving()) return done(Unavailable());
  queue_.Push({/*is_edit=*/false, std::move(budget), [this, done = std::move(done)](absl::Status turn) {
                 if (!turn.ok()) return done(turn);
                 done(WriteSnapshot());
               }});
}

void KnowledgeServer::SubmitRestore(std::string name, Budget budget, Done<uint64_t> done) {
  if (follower()) return done(FollowerRefusal("RestoreSnapshot"));
  if (!serving()) return done(Unavailable());
  if (absl::Status s = ValidateSnapshotName(name); !s.ok()) return done(s);
  if (absl::StatusOr<storage::SnapshotFile> f = snapshots_->Stat(name); !f.ok()) return done(f.status());
  queue_.Push({/*is_edit=*/false, std::move(budget),
               [this, name = std::move(name), done = std::move(done)](absl::Status turn) {
                 if (!turn.ok()) return done(turn);
                 done(RunRestore(name));
               }});
}

absl::StatusOr<uint64_t> KnowledgeServer::RunRestore(const std::string& name) {
  if (log_failed_) return absl::InternalError("the edit log failed earlier; the server refuses restores");
  const std::string path = snapshots_->PathOf(name);
  const uint64_t current = editor_->Current()->version();
  MOKE_ASSIGN_OR_RETURN(const uint64_t held, Editor::SnapshotVersion(path));
  uint64_t named = 0;
  (void)storage::SnapshotStore::IsValidName(name, &named);  // validated when submitted
  if (held != named || held > current) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot ", name, " holds version ", held,
                                                      "; this server's history reaches version ", current,
                                                      ": it is not a snapshot of this history"));
  }
  // A new version above every earlier one: a version number never names two states.
  const uint64_t version = current + 1;
  // Restored but not published (on error the state is unchanged): readers see it once it is durable.
  MOKE_RETURN_IF_ERROR(editor_->RestoreSnapshot(path, version, /*publish=*/false));
  const storage::LogRecord rec = StateRecordOf(storage::LogRecordType::kRestore, version, name);
  if (absl::Status s = AppendToLog(rec); !s.ok()) {
    return absl::InternalError(absl::StrCat("restored in memory but not durable: ", s.message()));
  }
  editor_->Publish();
  AnnounceVersion();
  index_.Add(rec);
  edits_since_checkpoint_ = 0;
  spdlog::info("restored snapshot {} (version {}) as version {}", name, held, version);
  return version;
}

absl::StatusOr<storage::SnapshotFile> KnowledgeServer::WriteSnapshot() {
  if (log_failed_) return absl::InternalError("the edit log failed earlier; no snapshot is recorded");
  const uint64_t v = editor_->Current()->version();
  const std::string name = storage::SnapshotStore::NameFor(v);
  const auto t0 = Clock::now();
  MOKE_RETURN_IF_ERROR(editor_->SaveSnapshot(snapshots_->PathOf(name)));
  MOKE_RETURN_IF_ERROR(AppendToLog(StateRecordOf(storage::LogRecordType::kSnapshot, v, name)));
  edits_since_checkpoint_ = 0;
  spdlog::info("snapshot {} written in {:.2f} s", name, SecondsSince(t0));
  return snapshots_->Stat(name);
}

absl::Status KnowledgeServer::AppendToLog(const storage::LogRecord& record) {
  absl::Status s = log_->Append(record);
  if (!s.ok()) {
    log_failed_ = true;
    spdlog::error("edit log append failed, refusing further edits: {}", std::string(s.message()));
  } else if (metrics_) {
    metrics_->SetEditLogBytes(log_->size_bytes());
  }
  return s;
}

void KnowledgeServer::AnnounceVersion() {
  const uint64_t v = editor_->Current()->version();
  EditorStats stats = editor_->Stats();
  if (metrics_) {
    metrics_->SetVersion(v);
    metrics_->SetEditsApplied(stats.edits_applied);
    metrics_->SetReplayBufferSize(stats.replay_size);
    metrics_->SetMemoryBytes(stats.memory_bytes);
  }
  {
    absl::MutexLock lock(&mu_);
    stats_ = std::move(stats);
    published_version_ = v;
  }
  waiters_->AnnounceVersion(v);
}

// ---- Reads: Ask and Score on the worker pool ----

template <typename Result>
void KnowledgeServer::Read(const absl::Status& valid, uint64_t min_version, const Budget& budget, const char* kind,
                           Compute<Result> compute, Done<Result> done) {
  if (!serving()) return done(Unavailable());
  if (!valid.ok()) return done(valid);
  if (absl::Status s = budget.Check(kind); !s.ok()) return done(s);
  auto shared_done = std::make_shared<Done<Result>>(std::move(done));
  auto work = [this, budget, kind, compute = std::move(compute), shared_done] {
    if (absl::Status s = budget.Check(kind); !s.ok()) return (*shared_done)(s);
    const auto t0 = Clock::now();
    // The latest view: never waits for an edit in progress; the read keeps it to the end.
    compute(CurrentView(), [this, kind, t0, shared_done](absl::StatusOr<Result> r) {
      if (metrics_) metrics_->ObserveAskSeconds(kind, SecondsSince(t0));
      (*shared_done)(std::move(r));
    });
  };
  waiters_->Wait(
      min_version, budget.deadline,
      [this, work = std::move(work), shared_done]() mutable {
        if (!pool_->TrySubmit(std::move(work))) (*shared_done)(absl::ResourceExhaustedError("read queue is full"));
      },
      [shared_done](absl::Status s) { (*shared_done)(std::move(s)); });
}

void KnowledgeServer::SubmitAsk(AskQuery q, Done<AskResult> done) {
  if (options_.max_batch > 1) return SubmitAskStream(std::move(q), nullptr, std::move(done));
  auto ask = [this, q](std::shared_ptr<const KnowledgeView> view, Done<AskResult> finish) {
    absl::StatusOr<AskResult> r = view->Ask(q.question, q.max_new_tokens, q.routing, q.budget);
    if (metrics_ && r.ok()) metrics_->CountAskRoute(r->route.expert);
    finish(std::move(r));
  };
  Read<AskResult>(ValidateAsk(q, limits_), q.min_version, q.budget, "ask", std::move(ask), std::move(done));
}

void KnowledgeServer::SubmitAskStream(AskQuery q, std::function<void(const AskPiece&)> on_piece,
                                      Done<AskResult> done) {
  auto ask = [this, q, on_piece = std::move(on_piece)](std::shared_ptr<const KnowledgeView> view,
                                                        Done<AskResult> finish) {
    batcher_->Ask(std::move(view), q.question, q.max_new_tokens, q.routing, q.budget, on_piece,
                  [this, finish = std::move(finish)](absl::StatusOr<AskResult> r) {
                    if (metrics_ && r.ok()) metrics_->CountAskRoute(r->route.expert);
                    finish(std::move(r));
                  });
  };
  Read<AskResult>(ValidateAsk(q, limits_), q.min_version, q.budget, "ask", std::move(ask), std::move(done));
}

void KnowledgeServer::SubmitScore(ScoreQuery q, Done<ScoreResult> done) {
  auto score = [q](std::shared_ptr<const KnowledgeView> view, Done<ScoreResult> finish) {
    finish(view->Score(q.prompt, q.answer, q.routing, q.original));
  };
  Read<ScoreResult>(ValidateScore(q, limits_), q.min_version, q.budget, "score", std::move(score), std::move(done));
}

// ---- Cheap reads ----

EngineStatus KnowledgeServer::Status() const {
  EngineStatus s;
  s.method = EditMethodName(options_.editor.method);
  s.model = options_.editor.model_dir;
  s.device = options_.editor.device;
  s.queue_depth = queue_.queued_edits();
  s.role = follower() ? "follower" : "editor";
  s.instance_id = instance_id_;
  absl::MutexLock lock(&mu_);
  s.serving = serving_ && !stopping_;
  s.stats = stats_;
  if (follower()) s.follow = follow_state_;
  return s;
}

// ---- Followers ----

std::shared_ptr<const KnowledgeView> KnowledgeServer::CurrentView() const {
  {
    absl::MutexLock lock(&mu_);
    if (follower()) return followed_;
    if (!serving_) return nullptr;
  }
  return editor_->Current();
}

bool KnowledgeServer::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

uint64_t KnowledgeServer::AnnouncedVersion() const {
  absl::MutexLock lock(&mu_);
  return published_version_;
}

uint64_t KnowledgeServer::AwaitVersionChange(uint64_t seen, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto changed = [this, seen]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return published_version_ != seen || stopping_; };
  mu_.AwaitWithTimeout(absl::Condition(&changed), timeout);
  return published_version_;
}

absl::Status KnowledgeServer::FollowerRefusal(const char* what) const {
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": this server follows ", options_.follow, "; send edits (and history or snapshot requests) there"));
}

absl::Status KnowledgeServer::PublishFollowed(std::shared_ptr<const KnowledgeView> view) {
  if (!follower()) return absl::FailedPreconditionError("PublishFollowed: not a follower");
  const uint64_t v = view->version();
  {
    absl::MutexLock lock(&mu_);
    if (!serving_ || stopping_) return Unavailable();
    if (v < published_version_) {
      return absl::FailedPreconditionError(absl::StrCat("the editor is at version ", v, ", below version ",
                                                        published_version_, " served here: its history went back "
                                                        "(a new data directory?); restart this follower to follow it"));
    }
    followed_ = std::move(view);
    published_version_ = v;
    stats_.version = v;
    stats_.num_experts = followed_->num_experts();
  }
  if (metrics_) metrics_->SetVersion(v);
  waiters_->AnnounceVersion(v);
  return absl::OkStatus();
}

void KnowledgeServer::SetFollowState(FollowState state) {
  absl::MutexLock lock(&mu_);
  state.editor = options_.follow;
  follow_state_ = std::move(state);
}

absl::StatusOr<EditList> KnowledgeServer::ListEdits(uint64_t start, int limit) const {
  if (follower()) return FollowerRefusal("ListEdits");
  if (!loaded()) return Unavailable();
  MOKE_RETURN_IF_ERROR(ValidateListEdits(start, limit));
  return index_.List(start, limit);
}

absl::StatusOr<EditEntry> KnowledgeServer::GetEdit(const std::string& request_id) const {
  if (follower()) return FollowerRefusal("GetEdit");
  if (!loaded()) return Unavailable();
  MOKE_RETURN_IF_ERROR(ValidateRequestId(request_id));
  return index_.Get(request_id);
}

absl::StatusOr<std::vector<storage::SnapshotFile>> KnowledgeServer::ListSnapshots() const {
  if (follower()) return FollowerRefusal("ListSnapshots");
  if (!loaded()) return Unavailable();  // snapshots_ is set before serving_ and never changes after
  return snapshots_->List();
}

}  // namespace moke::server
