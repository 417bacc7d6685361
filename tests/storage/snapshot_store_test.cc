// Snapshot names and the start-up recovery plan (which checkpoint to restore, which edits to replay).
// The end-to-end fallback past a corrupt snapshot file is in tests/server/crash_test.cc.
#include "core/storage/snapshot_store.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace moke::storage {
namespace {

LogRecord Edit(uint64_t id, uint64_t version) {
  LogRecord r;
  r.type = LogRecordType::kEdit;
  r.edit_id = id;
  r.version = version;
  r.question = "q" + std::to_string(id);
  r.answer = "a";
  return r;
}
LogRecord Marker(LogRecordType t, uint64_t version) {
  LogRecord r;
  r.type = t;
  r.version = version;
  r.snapshot = SnapshotStore::NameFor(version);
  return r;
}

TEST(SnapshotStore, Names) {
  uint64_t v = 0;
  EXPECT_EQ(SnapshotStore::NameFor(12), "snap-12.bin");
  EXPECT_TRUE(SnapshotStore::IsValidName("snap-12.bin", &v));
  EXPECT_EQ(v, 12u);
  EXPECT_TRUE(SnapshotStore::IsValidName("snap-0.bin"));
  for (const char* bad : {"snap-.bin", "snap-01.bin", "snap--1.bin", "snap-1.bin.tmp", "../snap-1.bin", "snap-1/x.bin",
                          "snap-1a.bin", "", "snap-99999999999999999999999.bin"}) {
    EXPECT_FALSE(SnapshotStore::IsValidName(bad)) << bad;
  }
}

TEST(SnapshotStore, ListSortsByVersionAndSkipsOthers) {
  const std::string dir = std::filesystem::temp_directory_path() / ("moke_snap_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto store = SnapshotStore::Open(dir);
  ASSERT_TRUE(store.ok());
  for (const char* n : {"snap-10.bin", "snap-2.bin", "snap-3.bin.tmp", "other"}) std::ofstream(dir + "/" + n) << "x";
  auto list = store->List();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "snap-2.bin");
  EXPECT_EQ(list[1].version, 10u);
  EXPECT_EQ(list[1].bytes, 1);
  EXPECT_GT(list[1].unix_micros, 0);
  EXPECT_FALSE(store->Stat("snap-5.bin").ok());
  std::filesystem::remove_all(dir);
}

// A kill between creating snap-N.bin.tmp and renaming it leaves the temp file; Open (at start-up)
// removes exactly those, and nothing else.
TEST(SnapshotStore, OpenRemovesTempFilesOfInterruptedWrites) {
  const std::string dir = std::filesystem::temp_directory_path() / ("moke_snap_tmp_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::vector<std::string> stale = {SnapshotStore::TempNameFor(3), "snap-12.bin.tmp"};
  const std::vector<std::string> kept = {"snap-3.bin", "snap-01.bin.tmp", "notes.tmp", "snap-4.bin.tmp.keep", ".tmp"};
  for (const auto& n : stale) std::ofstream(dir + "/" + n) << "partial";
  for (const auto& n : kept) std::ofstream(dir + "/" + n) << "x";
  ASSERT_TRUE(SnapshotStore::Open(dir).ok());
  for (const auto& n : stale) EXPECT_FALSE(std::filesystem::exists(dir + "/" + n)) << n;
  for (const auto& n : kept) EXPECT_TRUE(std::filesystem::exists(dir + "/" + n)) << n;
  EXPECT_EQ(SnapshotStore::TempNameFor(3), "snap-3.bin.tmp");
  std::filesystem::remove_all(dir);
}

TEST(PlanRecovery, NoSnapshotsReplaysEverything) {
  auto plan = PlanRecovery({Edit(1, 1), Edit(2, 2)});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->base_snapshot.empty());
  EXPECT_TRUE(plan->checkpoints.empty());
  EXPECT_EQ(plan->edits.size(), 2u);
}

TEST(PlanRecovery, CheckpointsInOrderForFallback) {
  auto plan = PlanRecovery({Edit(1, 1), Edit(2, 2), Marker(LogRecordType::kSnapshot, 2), Edit(3, 3), Edit(4, 4),
                            Marker(LogRecordType::kSnapshot, 4), Edit(5, 5)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->checkpoints.size(), 2u);
  EXPECT_EQ(plan->checkpoints[1].snapshot, "snap-4.bin");
  EXPECT_EQ(plan->checkpoints[1].edits_before, 4u);  // newest: replay edit 5 only
  EXPECT_EQ(plan->checkpoints[0].edits_before, 2u);  // fallback: replay 3, 4, 5
  EXPECT_EQ(plan->edits.size(), 5u);                 // last resort: version 0 and all five
}

// A restore of snap-2 after version 3 is version 4: a new version above every earlier one.
LogRecord Restore(const std::string& snapshot, uint64_t version) {
  LogRecord r;
  r.type = LogRecordType::kRestore;
  r.version = version;
  r.snapshot = snapshot;
  return r;
}

TEST(PlanRecovery, RestoreStartsANewLineage) {
  auto plan = PlanRecovery({Edit(1, 1), Edit(2, 2), Marker(LogRecordType::kSnapshot, 2), Edit(3, 3),
                            Restore("snap-2.bin", 4), Edit(4, 5), Marker(LogRecordType::kSnapshot, 5), Edit(5, 6)});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->base_snapshot, "snap-2.bin");
  EXPECT_EQ(plan->base_version, 4u);
  ASSERT_EQ(plan->checkpoints.size(), 1u);
  EXPECT_EQ(plan->checkpoints[0].snapshot, "snap-5.bin");
  EXPECT_EQ(plan->checkpoints[0].edits_before, 1u);
  ASSERT_EQ(plan->edits.size(), 2u);
  EXPECT_EQ(plan->edits[0].edit_id, 4u);
  EXPECT_EQ(plan->last_version, 6u);
}

// Versions never go back: a restore that reuses a version (the old behaviour), or names a snapshot of a
// version the log never reached, is refused.
TEST(PlanRecovery, RestoreMustMoveTheVersionForward) {
  for (const auto& bad : std::vector<std::vector<LogRecord>>{
           {Edit(1, 1), Edit(2, 2), Edit(3, 3), Restore("snap-1.bin", 1), Edit(4, 2)},
           {Edit(1, 1), Edit(2, 2), Restore("snap-1.bin", 2)},
           {Edit(1, 1), Restore("snap-6.bin", 2)},
           {Edit(1, 1), Restore("../edit.log", 2)}}) {
    auto plan = PlanRecovery(bad);
    ASSERT_FALSE(plan.ok());
    EXPECT_EQ(plan.status().code(), absl::StatusCode::kDataLoss) << plan.status();
  }
  auto empty = PlanRecovery({});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->last_version, 0u);
}

TEST(PlanRecovery, VersionGapIsDataLoss) {
  auto plan = PlanRecovery({Edit(1, 1), Edit(2, 3)});
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace moke::storage
