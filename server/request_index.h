// RequestIndex: what the edit log says about edits, kept in memory so that reads of the history never
// wait for the editor thread: request id -> edit (retries, GetEdit), the edit list (ListEdits), which
// edits a restore rolled back, and which request ids are queued right now.
//
// It changes only after a record is durable in the log (Add), or at start-up from the whole log (Load),
// so it never reports an edit that a restart would lose.
//
// Thread-safety: every method is safe from any thread (one mutex, held briefly).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/storage/edit_log.h"
#include "server/requests.h"

namespace moke::server {

// The acknowledgement of an edit record.
EditAck AckOf(const storage::LogRecord& record, bool duplicate);

class RequestIndex {
 public:
  // Start-up, before any Add: every record of the log, in order (kSnapshot records are skipped).
  void Load(const std::vector<storage::LogRecord>& records);
  // A kEdit, kRestore or kRetract record that is now durable in the log (kSnapshot: ignored).
  void Add(const storage::LogRecord& record);
  // The edit id the next applied edit gets (1-based position among the log's edits).
  uint64_t next_edit_id() const;
  // The version edit `edit_id` made (nullopt: no such edit), and the edit that made `version` (0: none).
  std::optional<uint64_t> VersionOfEdit(uint64_t edit_id) const;
  uint64_t EditIdOfVersion(uint64_t version) const;
  // The retract record applied with `request_id` (a retried RetractFact answers with it).
  std::optional<storage::LogRecord> RetractOf(const std::string& request_id) const;

  // What a new edit with `edit.request_id` means. nullopt: apply it (no id, or a new one). An ack with
  // duplicate = true: that id was applied with the same question and answer and is still held; nothing
  // is to be applied. INVALID_ARGUMENT: the id was used by an edit with another question or answer (the
  // message names that edit). FAILED_PRECONDITION: its edit was applied and then rolled back by a
  // restore (the message names both; send it with a new id to apply it again).
  absl::StatusOr<std::optional<EditAck>> Resolve(const EditSubmission& edit) const;

  // Request ids of edits that are queued or being applied (a count per id: retries may overlap).
  void MarkPending(const std::string& request_id);
  void ClearPending(const std::string& request_id);

  // GetEdit: the edit applied with `request_id`. NOT_FOUND: none was, and none is queued (an edit that
  // is not in the queue is never applied later). UNAVAILABLE: one is queued or being applied; ask again.
  absl::StatusOr<EditEntry> Get(const std::string& request_id) const;
  // ListEdits: up to `limit` (0: 100; at most 1000) edits from edit id `start` (0: the first).
  EditList List(uint64_t start, int limit) const;

 private:
  // An edit set as one flag per edit (by edit id - 1); missing entries are false.
  using HeldSet = std::vector<bool>;
  struct RestorePoint {
    uint64_t version;  // the restore's own (new) version
    HeldSet held;      // the edits held right after it
  };
  void AddLocked(const storage::LogRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The edits the state of `version` held (version: one this log reached).
  HeldSet HeldAt(uint64_t version) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  std::vector<EditEntry> edits_ ABSL_GUARDED_BY(mu_);  // by edit id - 1
  std::vector<RestorePoint> restores_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, size_t> by_request_id_ ABSL_GUARDED_BY(mu_);  // -> index in edits_
  std::unordered_map<std::string, int> pending_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<std::string, storage::LogRecord> retracts_ ABSL_GUARDED_BY(mu_);  // by request id
};

}  // namespace moke::server
