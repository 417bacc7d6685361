// The snapshot file format: "MOKESNAP", a format number, a JSON description, raw blobs, and a 64-bit
// FNV-1a checksum of everything before it. Written atomically (temp file, fsync, rename, fsync of the
// folder). No LibTorch here, so the parser can be fuzzed alone.
//
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moke {

struct SnapshotBlob {
  std::string name;
  std::string kind;  // "f32" (float32 values) or "bits" (bit-packed bool mask)
  std::vector<int64_t> shape;
  std::string bytes;
};

struct SnapshotData {
  std::string meta_json;  // the editor's own description (version, history, options, ...)
  std::vector<SnapshotBlob> blobs;
};

absl::Status WriteSnapshotFile(const std::string& path, const SnapshotData& data);
absl::StatusOr<SnapshotData> ReadSnapshotFile(const std::string& path);
// Parses a whole snapshot held in memory; DATA_LOSS on any inconsistency.
absl::StatusOr<SnapshotData> ParseSnapshot(const uint8_t* data, size_t size, const std::string& origin);
uint64_t Fnv1a64(const uint8_t* data, size_t size, uint64_t h = 1469598103934665603ull);

}  // namespace moke
