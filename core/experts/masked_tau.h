// One expert's tau = W_k - W_org stored on its mask only (issue 15): the mask, as a code, and the values
// at the mask's entries in row-major order, in the storage dtype (the model's). An expert changes only
// the entries of its mask (its gradient is masked), so this is exact: Dense() gives tau back.
//
// The mask is a MaskCode and a slot: entry i is on the mask where the code's i-th field equals the slot.
// An expert alone has a 1-bit code (its mask's bits, slot 1). The disjoint masks of a MoKE group share
// one code, the owner of each entry (0: none, k + 1: the group's expert k), at 2 bits per entry for the
// default 3 experts instead of 3 bits of separate masks. At the LLaMA-2-7B shape an expert with a 0.3
// mask then takes 27.1 MB of bf16 values + 3.8 MB, its third of the group's code, instead of a 180 MB
// fp32 matrix.
//
// Packing: field i of a b-bit code (b = 1, 2, 4 or 8) is bits [b * (i % (8 / b)), ...) of byte
// i / (8 / b), least significant first; the 1-bit case is the snapshot's "bits" blob layout.
//
// Thread-safety: immutable after construction, safe from any thread. The editor and published versions
// share these (and experts of a group share their code's storage); a changed expert is a new MaskedTau,
// never an old one written in place.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace moke {

class MaskCode {
 public:
  MaskCode() = default;
  // A single mask [rows, cols] bool: 1 bit per entry, the mask is slot 1.
  static MaskCode OfMask(const at::Tensor& mask);
  // Disjoint masks [n, rows, cols] bool: the owner of each entry; mask k is slot k + 1. The narrowest of
  // 1, 2, 4 or 8 bits that holds n + 1 values (n <= 255).
  static MaskCode OfDisjointMasks(const at::Tensor& masks);

  bool defined() const { return packed_.defined(); }
  int bits() const { return bits_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const at::Tensor& packed() const { return packed_; }  // uint8, on the masks' device
  int64_t bytes() const { return defined() ? packed_.numel() : 0; }
  // The mask of `slot` [rows, cols] bool.
  at::Tensor Mask(int slot) const;
  // Whether two codes are one stored code (shared by experts of a group).
  bool SameStorage(const MaskCode& other) const;

 private:
  static MaskCode Pack(const at::Tensor& fields, int bits);  // fields [rows, cols] uint8, each < 2^bits

  at::Tensor packed_;
  int bits_ = 1;
  int64_t rows_ = 0, cols_ = 0;
};

class MaskedTau {
 public:
  MaskedTau() = default;
  // tau [rows, cols] on `mask` (bool, the same shape and device): keeps tau's entries where the mask is
  // set (the others must be 0 for the round trip to be exact), stored as `dtype`.
  static MaskedTau FromDense(const at::Tensor& tau, const at::Tensor& mask, c10::ScalarType dtype);
  // The same on slot `slot` of a (shared) code.
  static MaskedTau FromDense(const at::Tensor& tau, const MaskCode& code, int slot, c10::ScalarType dtype);
  // An expert that has learned nothing yet.
  static MaskedTau Zero(const MaskCode& code, int slot, c10::ScalarType dtype);
  // From stored parts (snapshots): bits [ceil(rows * cols / 8)] uint8 and values [number of set bits].
  // INVALID_ARGUMENT when the sizes disagree. May throw c10::Error (callers guard).
  static absl::StatusOr<MaskedTau> FromParts(at::Tensor bits, at::Tensor values, int64_t rows, int64_t cols);

  // The same expert on `code`'s slot `slot`, whose mask must be this one's (INVALID_ARGUMENT otherwise):
  // how experts restored one by one come to share their group's code.
  absl::StatusOr<MaskedTau> OnCode(const MaskCode& code, int slot) const;

  bool defined() const { return values_.defined(); }
  int64_t rows() const { return code_.rows(); }
  int64_t cols() const { return code_.cols(); }
  int64_t nnz() const;
  const MaskCode& code() const { return code_; }
  int slot() const { return slot_; }
  at::Tensor bits() const;                              // [ceil(rows * cols / 8)] uint8: the mask's own bits
  const at::Tensor& values() const { return values_; }  // [nnz], the storage dtype
  at::Tensor Mask() const;   // [rows, cols] bool
  at::Tensor Dense() const;  // [rows, cols] float32, 0 off the mask
  int64_t ValueBytes() const;
  int64_t StorageBytes() const;  // values + the whole code (ExpertBank counts a shared code once)

 private:
  MaskCode code_;
  int slot_ = 1;
  at::Tensor values_;
};

// Bit-packing of a bool mask (any shape, flattened row-major) into uint8 on the mask's device, and back.
at::Tensor PackMask(const at::Tensor& mask);
at::Tensor UnpackMask(const at::Tensor& bits, int64_t rows, int64_t cols);

}  // namespace moke
