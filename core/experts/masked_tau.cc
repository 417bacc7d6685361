#include "core/experts/masked_tau.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace moke {

at::Tensor PackMask(const at::Tensor& mask) {
  const int64_t n = mask.numel(), nb = (n + 7) / 8;
  at::Tensor flat = at::zeros({nb * 8}, mask.options().dtype(at::kByte));
  flat.narrow(0, 0, n).copy_(mask.reshape({-1}));
  const at::Tensor m8 = flat.view({nb, 8});
  at::Tensor bits = m8.select(1, 0).clone();
  for (int j = 1; j < 8; ++j) bits.add_(m8.select(1, j).mul(1 << j));  // distinct bits: add is or
  return bits;
}

at::Tensor UnpackMask(const at::Tensor& bits, int64_t rows, int64_t cols) {
  const at::Tensor shifts = at::arange(8, bits.options().dtype(at::kByte));
  return at::bitwise_right_shift(bits.unsqueeze(1), shifts)
      .bitwise_and(1)
      .view({-1})
      .narrow(0, 0, rows * cols)
      .to(at::kBool)
      .view({rows, cols});
}

MaskedTau MaskedTau::FromDense(const at::Tensor& tau, const at::Tensor& mask, c10::ScalarType dtype) {
  MaskedTau m;
  m.rows_ = tau.size(0);
  m.cols_ = tau.size(1);
  m.bits_ = PackMask(mask);
  m.values_ = tau.detach().masked_select(mask).to(dtype);
  return m;
}

MaskedTau MaskedTau::Zero(const at::Tensor& mask, c10::ScalarType dtype) {
  MaskedTau m;
  m.rows_ = mask.size(0);
  m.cols_ = mask.size(1);
  m.bits_ = PackMask(mask);
  m.values_ = at::zeros({mask.sum().item<int64_t>()}, mask.options().dtype(dtype));
  return m;
}

absl::StatusOr<MaskedTau> MaskedTau::FromParts(at::Tensor bits, at::Tensor values, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || bits.scalar_type() != at::kByte || bits.dim() != 1 || values.dim() != 1 ||
      bits.numel() != (rows * cols + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat("mask bits do not fit a [", rows, ", ", cols, "] matrix"));
  }
  const int64_t set = UnpackMask(bits, rows, cols).sum().item<int64_t>();
  if (set != values.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("the mask has ", set, " entries but ", values.numel(), " values"));
  }
  MaskedTau m;
  m.rows_ = rows;
  m.cols_ = cols;
  m.bits_ = std::move(bits);
  m.values_ = std::move(values);
  return m;
}

int64_t MaskedTau::nnz() const { return values_.defined() ? values_.numel() : 0; }

at::Tensor MaskedTau::Mask() const { return UnpackMask(bits_, rows_, cols_); }

at::Tensor MaskedTau::Dense() const {
  return at::zeros({rows_, cols_}, values_.options().dtype(at::kFloat)).masked_scatter_(Mask(), values_.to(at::kFloat));
}

int64_t MaskedTau::StorageBytes() const {
  return defined() ? bits_.numel() + values_.numel() * static_cast<int64_t>(values_.element_size()) : 0;
}

}  // namespace moke
