// Start-up recovery: rebuilds the knowledge state from the data directory (snapshots + edit log).
//
// Refuses to start (DATA_LOSS, naming the files) rather than serve fewer edits than were acknowledged:
//   - when a snapshot on disk holds a version the log never reached (the log was cut or deleted: the
//     acknowledged edits between are gone, and serving would hand their version numbers to new edits);
//   - when the log contradicts itself (versions that go back or skip, see storage::PlanRecovery);
//   - when replaying an edit fails or gives another version than the log says.
// Otherwise restores the newest valid checkpoint of the current lineage (falling back past corrupt
// snapshot files) and replays the edits after it.
//
// Thread-safety: runs on the caller's thread before the server serves; it uses the editor alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/editor/editor.h"
#include "core/storage/edit_log.h"
#include "core/storage/snapshot_store.h"

namespace moke::server {

struct Recovered {
  uint64_t version = 0;                 // the version the log ends at, now published by the editor
  uint64_t edits_since_checkpoint = 0;  // edits replayed after the restored snapshot
};

// `log_path` is for messages; `records` is everything the log holds.
absl::StatusOr<Recovered> Recover(Editor& editor, const storage::SnapshotStore& snapshots, const std::string& log_path,
                                  const std::vector<storage::LogRecord>& records);

}  // namespace moke::server
