// One expert's tau = W_k - W_org stored on its mask only (issue 15): the mask, bit-packed, and the values
// at the mask's entries in row-major order, in the storage dtype (the model's). An expert changes only
// the entries of its mask (its gradient is masked), so this is exact: Dense() gives tau back. At the
// LLaMA-2-7B shape an expert with a 0.3 mask takes 27.1 MB of bf16 values + 5.6 MB of bits instead of a
// 180 MB fp32 matrix.
//
// The bits: entry i of the flattened [rows, cols] mask is bit (i % 8) of byte i / 8, least significant
// first (the snapshot's "bits" blobs use the same layout).
//
// Thread-safety: immutable after construction, safe from any thread. The editor and published versions
// share these; a changed expert is a new MaskedTau, never an old one written in place.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace moke {

class MaskedTau {
 public:
  MaskedTau() = default;
  // tau [rows, cols] on `mask` (bool, the same shape and device): keeps tau's entries where the mask is
  // set (the others must be 0 for the round trip to be exact), stored as `dtype`.
  static MaskedTau FromDense(const at::Tensor& tau, const at::Tensor& mask, c10::ScalarType dtype);
  // An expert that has learned nothing yet.
  static MaskedTau Zero(const at::Tensor& mask, c10::ScalarType dtype);
  // From stored parts (snapshots): bits [ceil(rows * cols / 8)] uint8 and values [number of set bits].
  // INVALID_ARGUMENT when the sizes disagree. May throw c10::Error (callers guard).
  static absl::StatusOr<MaskedTau> FromParts(at::Tensor bits, at::Tensor values, int64_t rows, int64_t cols);

  bool defined() const { return values_.defined(); }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t nnz() const;
  const at::Tensor& bits() const { return bits_; }      // [ceil(rows * cols / 8)] uint8
  const at::Tensor& values() const { return values_; }  // [nnz], the storage dtype
  at::Tensor Mask() const;   // [rows, cols] bool
  at::Tensor Dense() const;  // [rows, cols] float32, 0 off the mask
  int64_t StorageBytes() const;  // bits + values

 private:
  at::Tensor bits_, values_;
  int64_t rows_ = 0, cols_ = 0;
};

// Bit-packing of a bool mask (any shape, flattened row-major) into uint8 on the mask's device, and back.
at::Tensor PackMask(const at::Tensor& mask);
at::Tensor UnpackMask(const at::Tensor& bits, int64_t rows, int64_t cols);

}  // namespace moke
