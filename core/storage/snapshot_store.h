// The snapshot directory (<data_dir>/snapshots/snap-<version>.bin) and the start-up recovery plan.
//
// Snapshot files are written by the editor (atomically: "<name>.tmp", fsync, rename); this class names,
// lists and validates names, and at Open removes the temp files an interrupted write left behind.
// Thread-safe after Open: it holds no mutable state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/storage/edit_log.h"

namespace moke::storage {

struct SnapshotFile {
  std::string name;  // "snap-12.bin"
  std::string path;
  uint64_t version = 0;  // from the name
  int64_t bytes = 0;
  int64_t unix_micros = 0;  // modification time
};

class SnapshotStore {
 public:
  // Creates `dir` if missing and deletes the temp files of interrupted snapshot writes in it
  // (TempNameFor(v): a kill between creating and renaming one leaves it, and nothing else would ever
  // remove it). Call at start-up, before anything writes a snapshot into `dir`.
  static absl::StatusOr<SnapshotStore> Open(const std::string& dir);

  static std::string NameFor(uint64_t version);
  // The temp file a snapshot is written to before its rename: NameFor(version) + ".tmp".
  static std::string TempNameFor(uint64_t version) { return NameFor(version) + ".tmp"; }
  // True for "snap-<digits>.bin" (no path separators: names from clients are safe to join).
  static bool IsValidName(const std::string& name, uint64_t* version = nullptr);
  std::string PathOf(const std::string& name) const { return dir_ + "/" + name; }
  // Snapshot files by ascending version (temp files and other names are skipped).
  std::vector<SnapshotFile> List() const;
  absl::StatusOr<SnapshotFile> Stat(const std::string& name) const;
  const std::string& dir() const { return dir_; }

 private:
  explicit SnapshotStore(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// What start-up must do, derived from the log alone. The current lineage is everything after the last
// kRestore record (or the whole log). Its state = base + the lineage's edits. `checkpoints` are the
// lineage's kSnapshot records, oldest first; each holds the state after `edits_before` lineage edits.
// ("Edits" here are the records that make a new version by changing what is held: kEdit and kRetract.)
// Start-up tries the newest checkpoint whose file is valid and replays the edits after it; failing all,
// it restores `base_snapshot` (empty: the unedited version 0) and replays every lineage edit.
struct RecoveryPlan {
  struct Checkpoint {
    std::string snapshot;
    uint64_t version = 0;
    size_t edits_before = 0;
  };
  std::string base_snapshot;  // empty: version 0
  uint64_t base_version = 0;
  std::vector<Checkpoint> checkpoints;
  std::vector<LogRecord> edits;  // the lineage's kEdit and kRetract records, in order
  uint64_t last_version = 0;     // the version the log ends at (0: an empty log)
};

// Versions never go back: an edit is the previous version + 1, a restore a new version above every
// earlier one (it names a snapshot of an earlier version), a snapshot record the current version.
// DATA_LOSS, naming the record, when the log breaks that.
absl::StatusOr<RecoveryPlan> PlanRecovery(const std::vector<LogRecord>& records);

}  // namespace moke::storage
