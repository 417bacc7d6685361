#include "server/request_index.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/storage/snapshot_store.h"

namespace moke::server {

EditAck AckOf(const storage::LogRecord& r, bool duplicate) {
  EditAck a;
  a.version = r.version;
  a.edit_id = r.edit_id;
  a.subject = r.subject;
  a.expert = r.expert;
  a.new_concept = r.new_concept;
  a.duplicate = duplicate;
  a.iterations = r.iterations;
  a.loss = r.loss;
  a.apply_seconds = r.apply_seconds;
  return a;
}

void RequestIndex::Load(const std::vector<storage::LogRecord>& records) {
  absl::MutexLock lock(&mu_);
  for (const storage::LogRecord& r : records) AddLocked(r);
}

void RequestIndex::Add(const storage::LogRecord& record) {
  absl::MutexLock lock(&mu_);
  AddLocked(record);
}

void RequestIndex::AddLocked(const storage::LogRecord& r) {
  switch (r.type) {
    case storage::LogRecordType::kEdit:
      edits_.push_back({r, 0});
      if (!r.request_id.empty()) by_request_id_[r.request_id] = edits_.size() - 1;
      break;
    case storage::LogRecordType::kRestore: {
      uint64_t restored = 0;
      (void)storage::SnapshotStore::IsValidName(r.snapshot, &restored);  // PlanRecovery / the writer checked it
      HeldSet held = HeldAt(restored);
      held.resize(edits_.size(), false);
      for (size_t i = 0; i < edits_.size(); ++i) {
        uint64_t& rolled_back = edits_[i].rolled_back_version;
        if (held[i]) {
          rolled_back = 0;
        } else if (rolled_back == 0) {
          rolled_back = r.version;
        }
      }
      restores_.push_back({r.version, std::move(held)});
      break;
    }
    case storage::LogRecordType::kSnapshot:
      break;
    case storage::LogRecordType::kRetract:
      if (!r.request_id.empty()) retracts_[r.request_id] = r;
      break;
  }
}

RequestIndex::HeldSet RequestIndex::HeldAt(uint64_t version) const {
  const RestorePoint* base = nullptr;
  for (const RestorePoint& p : restores_) {
    if (p.version > version) break;
    base = &p;
  }
  HeldSet held = base ? base->held : HeldSet{};
  // Edits come in version order; the ones after the base restore up to `version` are held.
  for (size_t i = held.size(); i < edits_.size() && edits_[i].record.version <= version; ++i) held.push_back(true);
  return held;
}

std::optional<storage::LogRecord> RequestIndex::RetractOf(const std::string& request_id) const {
  if (request_id.empty()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = retracts_.find(request_id);
  if (it == retracts_.end()) return std::nullopt;
  return it->second;
}

std::optional<uint64_t> RequestIndex::VersionOfEdit(uint64_t edit_id) const {
  absl::MutexLock lock(&mu_);
  if (edit_id == 0 || edit_id > edits_.size()) return std::nullopt;
  return edits_[edit_id - 1].record.version;
}

uint64_t RequestIndex::EditIdOfVersion(uint64_t version) const {
  absl::MutexLock lock(&mu_);
  // Edits are in version order; a restore may repeat none (versions only go up).
  auto it = std::lower_bound(edits_.begin(), edits_.end(), version,
                             [](const EditEntry& e, uint64_t v) { return e.record.version < v; });
  return it != edits_.end() && it->record.version == version ? it->record.edit_id : 0;
}

uint64_t RequestIndex::next_edit_id() const {
  absl::MutexLock lock(&mu_);
  return edits_.size() + 1;
}

absl::StatusOr<std::optional<EditAck>> RequestIndex::Resolve(const EditSubmission& edit) const {
  if (edit.request_id.empty()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  auto it = by_request_id_.find(edit.request_id);
  if (it == by_request_id_.end()) return std::nullopt;
  const EditEntry& e = edits_[it->second];
  if (e.record.question != edit.question || e.record.answer != edit.answer) {
    return absl::InvalidArgumentError(absl::StrCat("request_id '", edit.request_id, "' was used by edit ",
                                                   e.record.edit_id, " (version ", e.record.version,
                                                   ") with another question or answer; use a new request_id"));
  }
  if (e.rolled_back_version != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "request_id '", edit.request_id, "': edit ", e.record.edit_id, " was applied at version ", e.record.version,
        " and rolled back by the restore at version ", e.rolled_back_version,
        "; send it with a new request_id to apply it again"));
  }
  return AckOf(e.record, /*duplicate=*/true);
}

void RequestIndex::MarkPending(const std::string& request_id) {
  if (request_id.empty()) return;
  absl::MutexLock lock(&mu_);
  ++pending_[request_id];
}

void RequestIndex::ClearPending(const std::string& request_id) {
  if (request_id.empty()) return;
  absl::MutexLock lock(&mu_);
  auto it = pending_.find(request_id);
  if (it != pending_.end() && --it->second == 0) pending_.erase(it);
}

absl::StatusOr<EditEntry> RequestIndex::Get(const std::string& request_id) const {
  absl::MutexLock lock(&mu_);
  if (auto it = by_request_id_.find(request_id); it != by_request_id_.end()) return edits_[it->second];
  if (pending_.count(request_id)) {
    return absl::UnavailableError(absl::StrCat("the edit with request_id '", request_id,
                                               "' is queued or being applied; ask again"));
  }
  return absl::NotFoundError(absl::StrCat("no edit with request_id '", request_id,
                                          "' was applied, and none is queued"));
}

EditList RequestIndex::List(uint64_t start, int limit) const {
  EditList out;
  if (limit <= 0) limit = 100;
  limit = std::min(limit, 1000);
  absl::MutexLock lock(&mu_);
  out.total = edits_.size();
  for (uint64_t i = start == 0 ? 0 : start - 1; i < edits_.size() && static_cast<int>(out.edits.size()) < limit; ++i) {
    out.edits.push_back(edits_[i]);
  }
  return out;
}

}  // namespace moke::server
