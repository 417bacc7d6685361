#include "server/recovery.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/common/status_macros.h"
#include "spdlog/spdlog.h"

namespace moke::server {

namespace {

// The snapshot files holding a version the log never reached.
absl::Status CheckSnapshotsAgainstLog(const storage::SnapshotStore& snapshots, const std::string& log_path,
                                      uint64_t log_version) {
  std::vector<std::string> beyond;
  uint64_t highest = 0;
  for (const storage::SnapshotFile& f : snapshots.List()) {
    if (f.version <= log_version) continue;
    beyond.push_back(f.path);
    highest = std::max(highest, f.version);
  }
  if (beyond.empty()) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      "edit log ", log_path, " ends at version ", log_version, ", but ", absl::StrJoin(beyond, ", "),
      " prove that version ", highest,
      " was reached: acknowledged edits are missing from the log (cut or deleted). Refusing to start; put the "
      "whole log back, or move those snapshots out of the folder to accept losing the edits after version ",
      log_version));
}

// Restores snapshot `name` as version `as_version`, once its file is checked to hold the version its name
// says (names come from the log, files from the disk).
absl::Status RestoreChecked(Editor& editor, const storage::SnapshotStore& snapshots, const std::string& name,
                            uint64_t as_version) {
  uint64_t named = 0;
  if (!storage::SnapshotStore::IsValidName(name, &named)) {
    return absl::DataLossError(absl::StrCat("bad snapshot name '", name.substr(0, 64), "' in the log"));
  }
  const std::string path = snapshots.PathOf(name);
  MOKE_ASSIGN_OR_RETURN(uint64_t held, Editor::SnapshotVersion(path));
  if (held != named) return absl::DataLossError(absl::StrCat(path, " holds version ", held, ", not ", named));
  return editor.RestoreSnapshot(path, as_version);
}

}  // namespace

absl::StatusOr<Recovered> Recover(Editor& editor, const storage::SnapshotStore& snapshots, const std::string& log_path,
                                  const std::vector<storage::LogRecord>& records) {
  absl::StatusOr<storage::RecoveryPlan> planned = storage::PlanRecovery(records);
  if (!planned.ok()) return absl::DataLossError(absl::StrCat(log_path, ": ", planned.status().message()));
  const storage::RecoveryPlan& plan = *planned;
  MOKE_RETURN_IF_ERROR(CheckSnapshotsAgainstLog(snapshots, log_path, plan.last_version));

  size_t start = 0;
  bool restored = false;
  for (auto it = plan.checkpoints.rbegin(); it != plan.checkpoints.rend() && !restored; ++it) {
    absl::Status s = it->snapshot == storage::SnapshotStore::NameFor(it->version)
                         ? RestoreChecked(editor, snapshots, it->snapshot, it->version)
                         : absl::DataLossError(absl::StrCat("the log names it for version ", it->version));
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
    absl::Status s = RestoreChecked(editor, snapshots, plan.base_snapshot, plan.base_version);
    if (!s.ok()) {
      return absl::DataLossError(absl::StrCat("cannot restore snapshot ", snapshots.PathOf(plan.base_snapshot),
                                              " that the edit log ", log_path, " was restored to: ", s.message()));
    }
    spdlog::info("restored base snapshot {} as version {}", plan.base_snapshot, plan.base_version);
  } else if (!restored && !plan.checkpoints.empty()) {
    spdlog::warn("no valid snapshot; replaying the whole edit log from version 0");
  }

  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = start; i < plan.edits.size(); ++i) {
    const storage::LogRecord& r = plan.edits[i];
    if (r.type == storage::LogRecordType::kRetract) {
      absl::StatusOr<RetractResult> res = editor.Retract({"", r.retracted_version});
      if (!res.ok() || res->version != r.version) {
        return absl::DataLossError(absl::StrCat(log_path, ": replaying the retract at version ", r.version, " failed: ",
                                                res.ok() ? absl::StrCat("it gave version ", res->version)
                                                         : std::string(res.status().message())));
      }
      continue;
    }
    absl::StatusOr<EditResult> res = editor.ApplyEdit({r.question, r.answer, r.unrelated, r.subject, r.paraphrases});
    if (!res.ok()) {
      return absl::DataLossError(absl::StrCat(log_path, ": replaying edit ", r.edit_id, " failed: ", res.status().message()));
    }
    if (res->version != r.version) {
      return absl::DataLossError(absl::StrCat(log_path, ": replaying edit ", r.edit_id, " gave version ", res->version,
                                              ", the log says ", r.version));
    }
    if (res->expert != r.expert) {
      spdlog::warn("replaying edit {}: expert {} where the log says {}", r.edit_id, res->expert, r.expert);
    }
  }
  if (plan.edits.size() > start) {
    spdlog::info("replayed {} edits from the log in {:.2f} s", plan.edits.size() - start,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const uint64_t version = editor.Current()->version();
  if (version != plan.last_version) {
    return absl::DataLossError(absl::StrCat(log_path, ": recovery ended at version ", version, ", the log at ",
                                            plan.last_version));
  }
  return Recovered{version, plan.edits.size() - start};
}

}  // namespace moke::server
