#include "core/storage/snapshot_store.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace moke::storage {

namespace fs = std::filesystem;

absl::StatusOr<SnapshotStore> SnapshotStore::Open(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create snapshot directory ", dir, ": ", ec.message()));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    constexpr std::string_view kTmp = ".tmp";
    if (name.size() <= kTmp.size() || !name.ends_with(kTmp)) continue;
    if (!IsValidName(name.substr(0, name.size() - kTmp.size()))) continue;
    std::error_code rm;
    if (fs::remove(entry.path(), rm)) {
      spdlog::warn("snapshot directory {}: removed {}, left by an interrupted snapshot write", dir, name);
    } else if (rm) {
      return absl::InternalError(
          absl::StrCat("remove stale snapshot temp file ", entry.path().string(), ": ", rm.message()));
    }
  }
  if (ec) return absl::InternalError(absl::StrCat("list snapshot directory ", dir, ": ", ec.message()));
  return SnapshotStore(dir);
}

std::string SnapshotStore::NameFor(uint64_t version) { return absl::StrCat("snap-", version, ".bin"); }

bool SnapshotStore::IsValidName(const std::string& name, uint64_t* version) {
  constexpr std::string_view kPrefix = "snap-", kSuffix = ".bin";
  if (name.size() <= kPrefix.size() + kSuffix.size() || name.size() > 40) return false;
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  if (name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) return false;
  const char* b = name.data() + kPrefix.size();
  const char* e = name.data() + name.size() - kSuffix.size();
  uint64_t v = 0;
  auto [p, err] = std::from_chars(b, e, v);
  if (err != std::errc() || p != e) return false;
  if (NameFor(v) != name) return false;  // no leading zeros or signs
  if (version) *version = v;
  return true;
}

absl::StatusOr<SnapshotFile> SnapshotStore::Stat(const std::string& name) const {
  SnapshotFile f;
  if (!IsValidName(name, &f.version)) return absl::InvalidArgumentError(absl::StrCat("bad snapshot name '", name, "'"));
  f.name = name;
  f.path = PathOf(name);
  std::error_code ec;
  auto size = fs::file_size(f.path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("snapshot ", name, " not found"));
  f.bytes = static_cast<int64_t>(size);
  auto mtime = fs::last_write_time(f.path, ec);
  if (!ec) {
    auto sys = std::chrono::file_clock::to_sys(mtime);
    f.unix_micros = std::chrono::duration_cast<std::chrono::microseconds>(sys.time_since_epoch()).count();
  }
  return f;
}

std::vector<SnapshotFile> SnapshotStore::List() const {
  std::vector<SnapshotFile> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!IsValidName(name)) continue;
    absl::StatusOr<SnapshotFile> f = Stat(name);
    if (f.ok()) out.push_back(*std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const SnapshotFile& a, const SnapshotFile& b) { return a.version < b.version; });
  return out;
}

absl::StatusOr<RecoveryPlan> PlanRecovery(const std::vector<LogRecord>& records) {
  RecoveryPlan plan;
  for (const LogRecord& r : records) {
    switch (r.type) {
      case LogRecordType::kRestore: {
        const uint64_t before = plan.base_version + plan.edits.size();
        uint64_t restored = 0;
        if (!SnapshotStore::IsValidName(r.snapshot, &restored) || restored > before) {
          return absl::DataLossError(absl::StrCat("edit log: restore record of '", r.snapshot.substr(0, 64),
                                                  "' at version ", before, " names no earlier snapshot"));
        }
        if (r.version <= before) {
          return absl::DataLossError(absl::StrCat("edit log: restore record of ", r.snapshot, " has version ", r.version,
                                                  ", not above the version before it (", before, ")"));
        }
        plan = RecoveryPlan{};
        plan.base_snapshot = r.snapshot;
        plan.base_version = r.version;
        break;
      }
      case LogRecordType::kSnapshot: {
        const uint64_t expected = plan.base_version + plan.edits.size();
        if (r.version != expected) {
          return absl::DataLossError(absl::StrCat("edit log: snapshot record ", r.snapshot, " has version ", r.version,
                                                  " where ", expected, " was expected"));
        }
        plan.checkpoints.push_back({r.snapshot, r.version, plan.edits.size()});
        break;
      }
      case LogRecordType::kEdit:
      case LogRecordType::kRetract: {
        const uint64_t expected = plan.base_version + plan.edits.size() + 1;
        if (r.version != expected) {
          return absl::DataLossError(absl::StrCat("edit log: ",
                                                  r.type == LogRecordType::kEdit ? absl::StrCat("edit ", r.edit_id)
                                                                                 : std::string("retract record"),
                                                  " has version ", r.version, " where ", expected, " was expected"));
        }
        plan.edits.push_back(r);
        break;
      }
    }
  }
  plan.last_version = plan.base_version + plan.edits.size();
  return plan;
}

}  // namespace moke::storage
