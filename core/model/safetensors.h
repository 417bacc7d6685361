// A reader of the safetensors format: an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw data. Files are memory-mapped; every range is
// checked against the file before any byte is read. No LibTorch here, so the parser can be fuzzed alone.
//
// Thread-safety: immutable after Open/Parse; safe to read from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace moke {

enum class DType { kF32, kF16, kBF16, kI64, kI32, kU8, kBool };

// Bytes per element of `dtype`.
size_t DTypeSize(DType dtype);
const char* DTypeName(DType dtype);

struct TensorInfo {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  size_t begin = 0;  // byte offset from the start of the data section
  size_t end = 0;
  int64_t NumElements() const;
};

class SafetensorsFile {
 public:
  // Maps `path` and parses its header. Errors name the file and, where it applies, the tensor.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  // Parses an in-memory buffer (not owned; must outlive the result). `origin` names it in errors.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Parse(const uint8_t* data, size_t size,
                                                                const std::string& origin);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return origin_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Pointer to the first byte of tensor `info` (valid while this object lives).
  const uint8_t* DataOf(const TensorInfo& info) const { return data_start_ + info.begin; }

 private:
  SafetensorsFile() = default;
  std::string origin_;
  void* map_ = nullptr;  // owned mmap region, or null for Parse()
  size_t map_size_ = 0;
  const uint8_t* data_start_ = nullptr;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors as a safetensors file (used by the checkpoint maker and by tests that corrupt files).
struct TensorBlob {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::string bytes;
};
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorBlob>& tensors);

}  // namespace moke
