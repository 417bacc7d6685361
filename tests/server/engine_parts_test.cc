// The engine's parts, without a model: request validation (one message per rule, naming the field and
// the limit), the request index (retries, GetEdit, what a restore rolls back and brings back), the edit
// queue (order, bounds, dropped when the budget ran out) and the version waiters.
#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "core/storage/snapshot_store.h"
#include "gtest/gtest.h"
#include "server/edit_queue.h"
#include "server/request_index.h"
#include "server/request_validation.h"
#include "server/version_waiters.h"

namespace moke::server {
namespace {

using storage::LogRecord;
using storage::LogRecordType;

EditSubmission Edit(const std::string& q, const std::string& a) {
  EditSubmission e;
  e.question = q;
  e.answer = a;
  return e;
}

std::string MessageOf(const absl::Status& s) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  return std::string(s.message());
}

TEST(RequestValidation, OneMessagePerRuleNamingTheFieldAndTheLimit) {
  const RequestLimits limits{32, 16, 8};
  EXPECT_TRUE(ValidateEdit(Edit("Who painted it?", "Anna"), limits).ok());
  EXPECT_TRUE(ValidateEdit(Edit("Qui a peint le café ?", "Zoë"), limits).ok());
  const std::string blank = "is only whitespace or control characters";
  struct Case {
    EditSubmission edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {Edit("", "a"), "question is empty"},
      {Edit("q", ""), "answer is empty"},
      {Edit(" \t\n", "a"), "question " + blank},
      {Edit("q", std::string("\0\0", 2)), "answer " + blank},
      {Edit("q", "\xE3\x80\x80\xC2\xA0\xEF\xBB\xBF"), "answer " + blank},  // U+3000, U+00A0, U+FEFF
      {Edit("q", "caf\xC3"), "answer is not valid UTF-8"},
      {Edit("\xED\xA0\x80", "a"), "question is not valid UTF-8"},  // a UTF-16 surrogate
      {Edit(std::string(33, 'q'), "a"), "question is 33 bytes; the limit is 32 (--max-question-bytes)"},
      {Edit("q", std::string(17, 'a')), "answer is 17 bytes; the limit is 16 (--max-answer-bytes)"},
  };
  EditSubmission e = Edit("q", "a");
  e.request_id = std::string(257, 'r');
  cases.push_back({e, "request_id is 257 bytes; the limit is 256"});
  e = Edit("q", "a");
  e.unrelated.assign(1025, "x");
  cases.push_back({e, "unrelated_prompts has 1025 entries; the limit is 1024"});
  e.unrelated = {"fine", "\xFF"};
  cases.push_back({e, "unrelated_prompts[1] is not valid UTF-8"});
  e.unrelated = {" "};
  cases.push_back({e, "unrelated_prompts[0] " + blank});
  e.unrelated = {std::string(33, 'u')};
  cases.push_back({e, "unrelated_prompts[0] is 33 bytes; the limit is 32 (--max-question-bytes)"});
  e = Edit("q", "a");
  e.paraphrases.assign(17, "p");
  cases.push_back({e, "paraphrases has 17 entries; the limit is 16"});
  e = Edit("q", "a");
  e.subject = "\xE2\x80\x8B";  // a zero-width space
  cases.push_back({e, "subject " + blank});
  for (const Case& c : cases) EXPECT_EQ(MessageOf(ValidateEdit(c.edit, limits)), c.message);

  // The edit log record an edit becomes must fit the reader's limit (16 MiB), whatever the byte limits.
  const RequestLimits big{1u << 20, 16, 8};
  e = Edit("q", "a");
  e.unrelated.assign(15, std::string(1u << 20, 'u'));
  EXPECT_TRUE(ValidateEdit(e, big).ok());
  e.unrelated.push_back(std::string(1u << 20, 'u'));
  EXPECT_NE(MessageOf(ValidateEdit(e, big)).find("as an edit log record; the limit is 16777216"), std::string::npos);

  AskQuery ask{"Who painted it?", 8, 0, std::nullopt, {}};
  EXPECT_TRUE(ValidateAsk(ask, limits).ok());
  ask.max_new_tokens = 9;
  EXPECT_EQ(MessageOf(ValidateAsk(ask, limits)), "max_new_tokens is 9; it must be in [0, 8] (the editor's max_new_tokens)");
  ask.max_new_tokens = -1;
  EXPECT_EQ(MessageOf(ValidateAsk(ask, limits)), "max_new_tokens is -1; it must be in [0, 8] (the editor's max_new_tokens)");
  ask = {"\r\n", 0, 0, std::nullopt, {}};
  EXPECT_EQ(MessageOf(ValidateAsk(ask, limits)), "question " + blank);

  ScoreQuery score{"", "a", 0, std::nullopt, false, {}};
  EXPECT_EQ(MessageOf(ValidateScore(score, limits)), "prompt is empty");
  score.prompt = "p";
  score.answer = std::string(1, '\0');
  EXPECT_EQ(MessageOf(ValidateScore(score, limits)), "answer " + blank);

  EXPECT_EQ(MessageOf(ValidateRetract({"", 0, "", {}}, limits)), "question or edit_id must be given, not both");
  EXPECT_EQ(MessageOf(ValidateRetract({"q", 3, "", {}}, limits)), "question or edit_id must be given, not both");
  EXPECT_TRUE(ValidateRetract({"", 3, "", {}}, limits).ok());
  EXPECT_EQ(MessageOf(ValidateRequestId("")), "request_id is empty");
  EXPECT_TRUE(ValidateRequestId("req-1").ok());
  EXPECT_EQ(MessageOf(ValidateSnapshotName("../edit.log")), "name '../edit.log' is not a snapshot name (snap-<version>.bin)");
  EXPECT_EQ(MessageOf(ValidateSnapshotName("")), "name is empty");
  EXPECT_EQ(MessageOf(ValidateSnapshotName(std::string(41, 's'))), "name is 41 bytes; the limit is 40");
  EXPECT_TRUE(ValidateSnapshotName("snap-12.bin").ok());
  EXPECT_EQ(MessageOf(ValidateListEdits(0, -1)), "limit is -1; it must be >= 0");
  EXPECT_TRUE(ValidateListEdits(0, 0).ok());
}

TEST(RequestValidation, IsBlank) {
  EXPECT_TRUE(IsBlank(""));
  EXPECT_TRUE(IsBlank(std::string("\0 \t\r\n\x7F", 6)));
  EXPECT_TRUE(IsBlank("\xC2\x85\xE2\x80\xA8\xE3\x80\x80"));  // U+0085, U+2028, U+3000
  EXPECT_FALSE(IsBlank(" a "));
  EXPECT_FALSE(IsBlank("\xC3\xA9"));  // é
  EXPECT_FALSE(IsBlank("\xF0\x9F\x98\x80"));  // an emoji
}

LogRecord EditRecord(uint64_t id, uint64_t version, const std::string& rid) {
  LogRecord r;
  r.type = LogRecordType::kEdit;
  r.edit_id = id;
  r.version = version;
  r.question = "q" + std::to_string(id);
  r.answer = "a" + std::to_string(id);
  r.request_id = rid;
  return r;
}

LogRecord RestoreRecord(uint64_t snapshot_version, uint64_t version) {
  LogRecord r;
  r.type = LogRecordType::kRestore;
  r.version = version;
  r.snapshot = storage::SnapshotStore::NameFor(snapshot_version);
  return r;
}

TEST(RequestIndex, RetriesAndGetEdit) {
  RequestIndex index;
  index.Load({EditRecord(1, 1, "r1"), EditRecord(2, 2, "")});
  EXPECT_EQ(index.next_edit_id(), 3u);
  EXPECT_FALSE(index.Resolve(Edit("q9", "a9"))->has_value()) << "no request id: always applied";
  EditSubmission retry = Edit("q1", "a1");
  retry.request_id = "r1";
  absl::StatusOr<std::optional<EditAck>> dup = index.Resolve(retry);
  ASSERT_TRUE(dup.ok() && dup->has_value());
  EXPECT_TRUE((*dup)->duplicate);
  EXPECT_EQ((*dup)->edit_id, 1u);
  EXPECT_EQ((*dup)->version, 1u);
  retry.answer = "other";
  const auto other = index.Resolve(retry);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(other.status().message().find("edit 1 (version 1)"), std::string::npos) << other.status();
  retry.request_id = "r9";
  EXPECT_FALSE(index.Resolve(retry)->has_value());

  EXPECT_EQ(index.Get("r9").status().code(), absl::StatusCode::kNotFound);
  index.MarkPending("r9");
  index.MarkPending("r9");
  EXPECT_EQ(index.Get("r9").status().code(), absl::StatusCode::kUnavailable);
  index.ClearPending("r9");
  EXPECT_EQ(index.Get("r9").status().code(), absl::StatusCode::kUnavailable) << "one try is still queued";
  index.ClearPending("r9");
  EXPECT_EQ(index.Get("r9").status().code(), absl::StatusCode::kNotFound);
  index.Add(EditRecord(3, 3, "r9"));
  ASSERT_TRUE(index.Get("r9").ok());
  EXPECT_EQ(index.Get("r9")->record.version, 3u);
  EXPECT_EQ(index.List(2, 1).edits.at(0).record.edit_id, 2u);
  EXPECT_EQ(index.List(0, 0).total, 3u);
}

std::vector<uint64_t> RolledBack(const RequestIndex& index) {
  std::vector<uint64_t> out;
  for (const EditEntry& e : index.List(0, 1000).edits) out.push_back(e.rolled_back_version);
  return out;
}

// A restore rolls back the edits its snapshot does not hold, and brings back the ones it does, also
// after an earlier restore rolled them back (the held sets are worked out by hand below).
TEST(RequestIndex, RestoresRollBackAndBringBackEdits) {
  RequestIndex index;
  index.Load({EditRecord(1, 1, "r1"), EditRecord(2, 2, "r2"), EditRecord(3, 3, "r3")});
  index.Add(RestoreRecord(1, 4));  // snap-1 holds {1}
  EXPECT_EQ(RolledBack(index), (std::vector<uint64_t>{0, 4, 4}));
  EditSubmission retry = Edit("q2", "a2");
  retry.request_id = "r2";
  const auto rolled = index.Resolve(retry);
  EXPECT_EQ(rolled.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(rolled.status().message().find("rolled back by the restore at version 4"), std::string::npos)
      << rolled.status();
  EXPECT_EQ(index.Get("r2")->rolled_back_version, 4u);

  index.Add(EditRecord(4, 5, "r4"));  // state 5 holds {1, 4}
  index.Add(RestoreRecord(2, 6));     // snap-2 holds {1, 2}
  EXPECT_EQ(RolledBack(index), (std::vector<uint64_t>{0, 0, 4, 6}));
  EXPECT_TRUE(index.Resolve(retry)->has_value()) << "held again: a retry is a duplicate";
  index.Add(RestoreRecord(5, 7));  // snap-5 holds {1, 4}
  EXPECT_EQ(RolledBack(index), (std::vector<uint64_t>{0, 7, 4, 0}));
  index.Add(RestoreRecord(3, 8));  // snap-3 holds {1, 2, 3}
  EXPECT_EQ(RolledBack(index), (std::vector<uint64_t>{0, 0, 0, 8}));

  // Load from the same log gives the same answer.
  RequestIndex again;
  again.Load({EditRecord(1, 1, "r1"), EditRecord(2, 2, "r2"), EditRecord(3, 3, "r3"), RestoreRecord(1, 4),
              EditRecord(4, 5, "r4"), RestoreRecord(2, 6), RestoreRecord(5, 7), RestoreRecord(3, 8)});
  EXPECT_EQ(RolledBack(again), RolledBack(index));
}

TEST(EditQueue, InOrderBoundedAndDropsWhatRanOutOfBudget) {
  EditQueue queue(/*max_edits=*/2, nullptr);
  absl::Status before;
  queue.Push({true, {}, [&](absl::Status s) { before = s; }});
  EXPECT_EQ(before.code(), absl::StatusCode::kUnavailable) << "not started";
  queue.Start();

  std::vector<std::string> ran;  // written by the editor thread, read after Stop()
  absl::Notification entered, release;
  queue.Push({true, {}, [&](absl::Status s) {
                entered.Notify();
                release.WaitForNotification();
                ran.push_back("A " + s.ToString());
              }});
  entered.WaitForNotification();  // the editor thread is busy with A; the queue is empty
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  queue.Push({true, {}, [&](absl::Status s) { ran.push_back("B " + s.ToString()); }});
  queue.Push({true, Budget{Budget::Clock::time_point::max(), cancel},
              [&](absl::Status s) { ran.push_back("C " + std::string(absl::StatusCodeToString(s.code()))); }});
  absl::Status full;
  std::thread::id full_thread;
  queue.Push({true, {}, [&](absl::Status s) {
                full = s;
                full_thread = std::this_thread::get_id();
              }});
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(full_thread, std::this_thread::get_id()) << "a refusal is answered inline";
  EXPECT_EQ(queue.queued_edits(), 2);
  // A snapshot does not count against the edits; its deadline is already past when its turn comes.
  queue.Push({false, Budget{Budget::Clock::now(), nullptr},
              [&](absl::Status s) { ran.push_back("D " + std::string(absl::StatusCodeToString(s.code()))); }});
  cancel->store(true);  // C is cancelled while it waits
  release.Notify();
  queue.Stop();  // runs everything queued
  EXPECT_EQ(ran, (std::vector<std::string>{"A OK", "B OK", "C CANCELLED", "D DEADLINE_EXCEEDED"}));
  absl::Status after;
  queue.Push({false, {}, [&](absl::Status s) { after = s; }});
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable);
}

TEST(VersionWaiters, ReleasedByTheVersionExpiredByTheDeadlineFailedAtStop) {
  using Clock = VersionWaiters::Clock;
  VersionWaiters waiters(/*max_waiters=*/2, std::chrono::minutes(10));
  waiters.AnnounceVersion(3);
  bool inline_ready = false;
  waiters.Wait(3, Clock::time_point::max(), [&] { inline_ready = true; }, [](absl::Status) {});
  EXPECT_TRUE(inline_ready) << "version 3 is published: ready at once";

  std::promise<absl::Status> a, b, c;
  auto wait = [&](uint64_t v, Clock::time_point deadline, std::promise<absl::Status>& p) {
    waiters.Wait(v, deadline, [&p] { p.set_value(absl::OkStatus()); }, [&p](absl::Status s) { p.set_value(s); });
  };
  wait(4, Clock::time_point::max(), a);
  wait(6, Clock::time_point::max(), b);
  absl::Status third;
  waiters.Wait(7, Clock::time_point::max(), [] {}, [&](absl::Status s) { third = s; });
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  waiters.AnnounceVersion(5);
  EXPECT_TRUE(a.get_future().get().ok());
  waiters.AnnounceVersion(2);
  EXPECT_EQ(waiters.version(), 5u) << "versions only grow";
  wait(9, Clock::now(), c);  // its deadline has passed: the expiry thread fails it
  EXPECT_EQ(c.get_future().get().code(), absl::StatusCode::kDeadlineExceeded);
  waiters.Stop();
  EXPECT_EQ(b.get_future().get().code(), absl::StatusCode::kUnavailable);
  absl::Status after;
  waiters.Wait(1, Clock::time_point::max(), [] {}, [&](absl::Status s) { after = s; });
  EXPECT_EQ(after.code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace moke::server
