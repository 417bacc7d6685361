// KnowledgeServer driven directly, without gRPC, with the real Editor on models/stories260k: edits and
// read-your-writes, request ids (retry, other content, GetEdit), an edit whose budget runs out while it
// waits in the queue, a restart from the log in the same data dir, snapshot + restore as a new version
// (and a restart after it), and start-up refusing a log that lacks edits the snapshots prove.
//
// Synchronisation is by callbacks and notifications, never by sleeping: the one test that needs the
// editor thread busy holds it inside an edit's completion callback until the test releases it.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "server/knowledge_server.h"
#include "tests/testing/paths.h"
#include "tests/testing/sync_call.h"
#include "tests/testing/temp_dir.h"

namespace moke::server {
namespace {

using moke::testing::SyncCall;

EngineOptions Options(const std::string& data_dir) {
  EngineOptions o;
  o.editor.model_dir = moke::testing::DefaultModelDir();
  // Durability and versions are under test here, not edit quality: short training, few prefixes.
  o.editor.threads = 1;
  o.editor.max_iterations = 10;
  o.editor.num_prefixes = 1;
  o.data_dir = data_dir;
  o.snapshot_every = 0;
  o.max_queue = 4;
  return o;
}

std::unique_ptr<KnowledgeServer> StartEngine(const std::string& data_dir, absl::Status* start = nullptr) {
  auto engine = KnowledgeServer::Create(Options(data_dir), nullptr);
  EXPECT_TRUE(engine.ok()) << engine.status();
  absl::Status s = (*engine)->Start();
  if (start) {
    *start = s;
  } else {
    EXPECT_TRUE(s.ok()) << s;
  }
  return std::move(engine).value();
}

EditSubmission Submission(const std::string& q, const std::string& a, const std::string& rid = "",
                          Budget budget = {}) {
  EditSubmission e;
  e.question = q;
  e.answer = a;
  e.request_id = rid;
  e.budget = std::move(budget);
  return e;
}

absl::StatusOr<EditAck> Edit(KnowledgeServer& engine, EditSubmission e) {
  return SyncCall<EditAck>([&](auto done) { engine.SubmitEdit(std::move(e), done); });
}
absl::StatusOr<EditAck> Edit(KnowledgeServer& engine, const std::string& q, const std::string& a,
                             const std::string& rid = "") {
  return Edit(engine, Submission(q, a, rid));
}

absl::StatusOr<AskResult> Ask(KnowledgeServer& engine, const std::string& q, uint64_t min_version = 0,
                              Budget budget = {}) {
  return SyncCall<AskResult>(
      [&](auto done) { engine.SubmitAsk({q, 8, min_version, std::nullopt, std::move(budget)}, done); });
}

absl::StatusOr<uint64_t> Restore(KnowledgeServer& engine, const std::string& name) {
  return SyncCall<uint64_t>([&](auto done) { engine.SubmitRestore(name, {}, done); });
}

absl::StatusOr<storage::SnapshotFile> Snapshot(KnowledgeServer& engine) {
  return SyncCall<storage::SnapshotFile>([&](auto done) { engine.SubmitSnapshot({}, done); });
}

uint64_t Version(const KnowledgeServer& engine) { return engine.Status().stats.version; }

TEST(Engine, EditsReadYourWritesAndRequestIds) {
  moke::testing::TempDir dir("moke_engine_edits");
  auto engine = StartEngine(dir.path());
  ASSERT_TRUE(engine->serving());
  EXPECT_EQ(Version(*engine), 0u);

  // An Ask for version 1 submitted before the edit waits for it, and is answered at version 1.
  std::promise<absl::StatusOr<AskResult>> waiting;
  engine->SubmitAsk({"The queen of the sea is", 8, 1, std::nullopt, {}},
                    [&](absl::StatusOr<AskResult> r) { waiting.set_value(std::move(r)); });
  const absl::StatusOr<EditAck> first = Edit(*engine, "The queen of the sea is", "Anna", "req-1");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version, 1u);
  EXPECT_EQ(first->edit_id, 1u);
  EXPECT_FALSE(first->duplicate);
  const absl::StatusOr<AskResult> waited = waiting.get_future().get();
  ASSERT_TRUE(waited.ok()) << waited.status();
  EXPECT_EQ(waited->version, 1u);

  // Retry: the first result, nothing applied. Same id, other content: refused, naming the first edit.
  const absl::StatusOr<EditAck> retry = Edit(*engine, "The queen of the sea is", "Anna", "req-1");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate);
  EXPECT_EQ(retry->edit_id, 1u);
  const absl::StatusOr<EditAck> reused = Edit(*engine, "The queen of the sea is", "Lucy", "req-1");
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(reused.status().message().find("edit 1 (version 1)"), std::string::npos) << reused.status();
  EXPECT_EQ(Version(*engine), 1u);

  const absl::StatusOr<EditEntry> got = engine->GetEdit("req-1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->record.version, 1u);
  EXPECT_EQ(got->record.answer, "Anna");
  EXPECT_EQ(engine->GetEdit("req-2").status().code(), absl::StatusCode::kNotFound);

  // Checked at the edge: nothing reaches the editor.
  EXPECT_EQ(Edit(*engine, " ", "x").status().code(), absl::StatusCode::kInvalidArgument);
  EditSubmission many = Submission("Who painted the door?", "Mia");
  many.unrelated.assign(1025, "Once upon a time");
  const absl::StatusOr<EditAck> refused = Edit(*engine, many);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("the limit is 1024"), std::string::npos) << refused.status();
  EXPECT_EQ(Version(*engine), 1u);
  EXPECT_EQ(engine->ListEdits(0, 0)->total, 1u);
  engine->Shutdown(false);
  EXPECT_EQ(Edit(*engine, "q", "a").status().code(), absl::StatusCode::kUnavailable);
}

TEST(Engine, DeadlinePassedOrCancelledMeansNeverApplied) {
  moke::testing::TempDir dir("moke_engine_deadline");
  auto engine = StartEngine(dir.path());
  const Budget::Clock::time_point past = Budget::Clock::now() - std::chrono::seconds(1);

  const absl::StatusOr<EditAck> late = Edit(*engine, Submission("The wizard lives in", "Paris", "late-1", {past, nullptr}));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Ask(*engine, "The wizard lives in", 0, {past, nullptr}).status().code(),
            absl::StatusCode::kDeadlineExceeded);

  // Hold the editor thread inside edit A's completion; queue B (deadline) and C (cancellation) behind it.
  absl::Notification a_done, release;
  engine->SubmitEdit(Submission("The wizard lives in", "Paris", "a"), [&](absl::StatusOr<EditAck> r) {
    EXPECT_TRUE(r.ok()) << r.status();
    a_done.Notify();
    release.WaitForNotification();
  });
  a_done.WaitForNotification();
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  std::promise<absl::StatusOr<EditAck>> b, c;
  engine->SubmitEdit(Submission("The knight is called", "Gawen", "c", {Budget::Clock::time_point::max(), cancel}),
                     [&](absl::StatusOr<EditAck> r) { c.set_value(std::move(r)); });
  EXPECT_EQ(engine->GetEdit("c").status().code(), absl::StatusCode::kUnavailable) << "queued: ask again";
  EXPECT_EQ(engine->Status().queue_depth, 1);
  // B's deadline passes while it waits (or, on a slow machine, before it is queued: the same outcome).
  const Budget::Clock::time_point soon = Budget::Clock::now() + std::chrono::milliseconds(1);
  engine->SubmitEdit(Submission("The dragon is called", "Smok", "b", {soon, nullptr}),
                     [&](absl::StatusOr<EditAck> r) { b.set_value(std::move(r)); });
  cancel->store(true);
  while (Budget::Clock::now() < soon) {
  }  // a wait on the clock, not a sleep
  release.Notify();
  EXPECT_EQ(b.get_future().get().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(c.get_future().get().status().code(), absl::StatusCode::kCancelled);
  // Dropped, and never applied later: GetEdit says so for good.
  EXPECT_EQ(engine->GetEdit("b").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->GetEdit("c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(engine->GetEdit("late-1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Version(*engine), 1u);
  EXPECT_EQ(engine->ListEdits(0, 0)->total, 1u);
}

TEST(Engine, RestartReplaysTheLogInTheSameDataDir) {
  moke::testing::TempDir dir("moke_engine_restart");
  std::vector<std::string> questions = {"The queen of the sea is", "The wizard lives in", "The dragon is called"};
  std::vector<std::vector<int64_t>> before;
  {
    auto engine = StartEngine(dir.path());
    ASSERT_TRUE(Edit(*engine, questions[0], "Anna", "r0").ok());
    ASSERT_TRUE(Edit(*engine, questions[1], "Paris", "r1").ok());
    ASSERT_TRUE(Edit(*engine, questions[2], "Smok").ok());
    for (const auto& q : questions) before.push_back(Ask(*engine, q)->tokens);
    engine->Shutdown(/*write_snapshot=*/false);  // the log alone
  }
  auto engine = StartEngine(dir.path());
  EXPECT_EQ(Version(*engine), 3u);
  const absl::StatusOr<EditList> list = engine->ListEdits(0, 0);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->total, 3u);
  EXPECT_EQ(list->edits[1].record.answer, "Paris");
  for (size_t i = 0; i < questions.size(); ++i) {
    EXPECT_EQ(Ask(*engine, questions[i])->tokens, before[i]) << "replay is deterministic: " << questions[i];
  }
  const absl::StatusOr<EditAck> retry = Edit(*engine, questions[1], "Paris", "r1");
  ASSERT_TRUE(retry.ok());
  EXPECT_TRUE(retry->duplicate) << "request ids survive the restart";
  EXPECT_EQ(retry->version, 2u);
  const absl::StatusOr<EditAck> next = Edit(*engine, "The knight is called", "Gawen");
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->version, 4u);
  EXPECT_EQ(next->edit_id, 4u);
}

absl::StatusOr<RetractAck> Retract(KnowledgeServer& engine, RetractSubmission r) {
  return SyncCall<RetractAck>([&](auto done) { engine.SubmitRetract(std::move(r), done); });
}

// The scope keys (subject, paraphrases) and retracts are logged and replayed: after a restart the same
// questions route the same way, and a retracted fact stays forgotten.
TEST(Engine, ScopeKeysAndRetractsSurviveARestart) {
  moke::testing::TempDir dir("moke_engine_retract");
  const std::string q = "The name of the mother of Leonardo DiCaprio is";
  const std::string alias = "The name of the mother of Leo DiCaprio is";
  const std::string kept = "The name of the spouse of Ron DeSantis is";
  std::vector<int64_t> unedited;
  {
    auto engine = StartEngine(dir.path());
    unedited = Ask(*engine, q)->tokens;
    EditSubmission e = Submission(q, "Anna", "m1");
    e.subject = "Leonardo DiCaprio";
    e.paraphrases = {"Who is the mother of Leonardo DiCaprio?"};
    const absl::StatusOr<EditAck> first = Edit(*engine, std::move(e));
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(first->subject, "Leonardo DiCaprio");
    const absl::StatusOr<EditAck> second = Edit(*engine, kept, "Casey");
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->subject, "Ron DeSantis") << "found by the server";
    EXPECT_EQ(Ask(*engine, alias)->route.expert, first->expert);
    // Unknown question or edit id: NOT_FOUND, nothing applied.
    EXPECT_EQ(Retract(*engine, {"What is the capital of Peru?", 0, "", {}}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Retract(*engine, {"", 99, "", {}}).status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Version(*engine), 2u);
    const absl::StatusOr<RetractAck> gone = Retract(*engine, {alias, 0, "x1", {}});
    ASSERT_TRUE(gone.ok()) << gone.status();
    EXPECT_EQ(gone->version, 3u);
    EXPECT_EQ(gone->retracted_edit_id, first->edit_id);
    const absl::StatusOr<RetractAck> again = Retract(*engine, {alias, 0, "x1", {}});
    ASSERT_TRUE(again.ok()) << again.status() << ": a retry with the same request id answers the first result";
    EXPECT_EQ(again->version, 3u);
    EXPECT_EQ(Version(*engine), 3u);
    const absl::StatusOr<AskResult> after = Ask(*engine, q);
    EXPECT_EQ(after->route.expert, -1);
    EXPECT_EQ(after->tokens, unedited);
    engine->Shutdown(/*write_snapshot=*/false);  // the log alone
  }
  auto engine = StartEngine(dir.path());
  EXPECT_EQ(Version(*engine), 3u);
  const absl::StatusOr<AskResult> q_after = Ask(*engine, q);
  EXPECT_EQ(q_after->route.expert, -1) << "the retract was replayed";
  EXPECT_EQ(q_after->tokens, unedited);
  EXPECT_GE(Ask(*engine, kept)->route.expert, 0) << "the other fact is held";
  EXPECT_EQ(Ask(*engine, kept)->route.subject, "Ron DeSantis");
}

TEST(Engine, RestoreIsANewVersionAndSurvivesARestart) {
  moke::testing::TempDir dir("moke_engine_restore");
  const std::string q1 = "The queen of the sea is", q2 = "The wizard lives in";
  std::vector<int64_t> q2_at_1, q2_at_3, q2_at_5;
  {
    auto engine = StartEngine(dir.path());
    ASSERT_TRUE(Edit(*engine, q1, "Anna", "r1").ok());
    q2_at_1 = Ask(*engine, q2)->tokens;
    const absl::StatusOr<storage::SnapshotFile> snap1 = Snapshot(*engine);
    ASSERT_TRUE(snap1.ok()) << snap1.status();
    EXPECT_EQ(snap1->name, "snap-1.bin");
    ASSERT_TRUE(Edit(*engine, q2, "Paris", "r2").ok());
    ASSERT_TRUE(Edit(*engine, q2, "Rome", "r3").ok());
    q2_at_3 = Ask(*engine, q2)->tokens;
    ASSERT_TRUE(Snapshot(*engine).ok());  // snap-3

    // Restore snap-1: version 4, not 1; readers waiting for version 3 get 4, without edits 2 and 3.
    const absl::StatusOr<uint64_t> restored = Restore(*engine, "snap-1.bin");
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ(*restored, 4u);
    const absl::StatusOr<AskResult> after = Ask(*engine, q2, 3);
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->version, 4u);
    EXPECT_EQ(after->tokens, q2_at_1);
    // A retry of a rolled-back edit says so (it is not a duplicate of something served).
    const absl::StatusOr<EditAck> retry = Edit(*engine, q2, "Paris", "r2");
    EXPECT_EQ(retry.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_NE(retry.status().message().find("rolled back by the restore at version 4"), std::string::npos)
        << retry.status();
    EXPECT_EQ(engine->GetEdit("r2")->rolled_back_version, 4u);
    EXPECT_EQ(engine->GetEdit("r1")->rolled_back_version, 0u);
    const absl::StatusOr<EditAck> next = Edit(*engine, "The dragon is called", "Smok", "r4");
    ASSERT_TRUE(next.ok());
    EXPECT_EQ(next->version, 5u);
    // A snapshot of a version this history never reached is refused.
    std::filesystem::copy_file(dir.path() + "/snapshots/snap-1.bin", dir.path() + "/snapshots/snap-50.bin");
    EXPECT_EQ(Restore(*engine, "snap-50.bin").status().code(), absl::StatusCode::kFailedPrecondition);
    std::filesystem::remove(dir.path() + "/snapshots/snap-50.bin");
    EXPECT_EQ(Restore(*engine, "snap-2.bin").status().code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(Version(*engine), 5u);
    q2_at_5 = Ask(*engine, q2)->tokens;
    engine->Shutdown(false);
  }
  // The restart honours the restore record: the same version 5, the same answers, the same flags.
  auto engine = StartEngine(dir.path());
  EXPECT_EQ(Version(*engine), 5u);
  EXPECT_EQ(Ask(*engine, q2)->tokens, q2_at_5);
  EXPECT_EQ(engine->GetEdit("r3")->rolled_back_version, 4u);
  // Restoring snap-3 brings edits 2 and 3 back, as version 6.
  const absl::StatusOr<uint64_t> back = Restore(*engine, "snap-3.bin");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, 6u);
  EXPECT_EQ(Ask(*engine, q2)->tokens, q2_at_3);
  EXPECT_EQ(engine->GetEdit("r2")->rolled_back_version, 0u);
  EXPECT_EQ(engine->GetEdit("r4")->rolled_back_version, 6u);
}

// Start-up refuses, naming the files, when snapshots prove versions the log does not hold.
TEST(Engine, StartRefusesALogShorterThanTheSnapshotsProve) {
  moke::testing::TempDir dir("moke_engine_short_log");
  const std::string log = dir.path() + "/edit.log";
  std::string first_record_log;
  {
    auto engine = StartEngine(dir.path());
    ASSERT_TRUE(Edit(*engine, "The queen of the sea is", "Anna").ok());
    std::ifstream in(log, std::ios::binary);
    first_record_log.assign(std::istreambuf_iterator<char>(in), {});
    ASSERT_TRUE(Edit(*engine, "The wizard lives in", "Paris").ok());
    ASSERT_TRUE(Edit(*engine, "The dragon is called", "Smok").ok());
    ASSERT_TRUE(Snapshot(*engine).ok());  // snap-3
    engine->Shutdown(false);
  }
  // The log cut back to its first edit (at a record boundary: it parses cleanly).
  std::ofstream(log, std::ios::binary | std::ios::trunc) << first_record_log;
  absl::Status start;
  auto cut = StartEngine(dir.path(), &start);
  EXPECT_EQ(start.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(start.message().find("edit.log ends at version 1"), std::string::npos) << start;
  EXPECT_NE(start.message().find("snap-3.bin"), std::string::npos) << start;
  EXPECT_FALSE(cut->serving());
  cut.reset();
  // The log deleted.
  std::filesystem::remove(log);
  auto deleted = StartEngine(dir.path(), &start);
  EXPECT_EQ(start.code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(start.message().find("ends at version 0"), std::string::npos) << start;
  deleted.reset();
  // Moving the snapshot away is the operator's way to accept the loss.
  std::filesystem::rename(dir.path() + "/snapshots/snap-3.bin", dir.path() + "/snap-3.bin.moved");
  auto accepted = StartEngine(dir.path());
  EXPECT_TRUE(accepted->serving());
  EXPECT_EQ(Version(*accepted), 0u);
}

}  // namespace
}  // namespace moke::server
