#include "core/experts/masked_tau.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"

namespace moke {

namespace {

// Packs `fields` (uint8, any shape, each < 2^bits) row-major, 8 / bits fields per byte.
at::Tensor PackFields(const at::Tensor& fields, int bits) {
  const int per = 8 / bits;
  const int64_t n = fields.numel(), nb = (n + per - 1) / per;
  at::Tensor flat = at::zeros({nb * per}, fields.options().dtype(at::kByte));
  flat.narrow(0, 0, n).copy_(fields.reshape({-1}));
  const at::Tensor f = flat.view({nb, per});
  at::Tensor packed = f.select(1, 0).clone();
  for (int j = 1; j < per; ++j) packed.add_(f.select(1, j).mul(1 << (j * bits)));  // disjoint bits: add is or
  return packed;
}

// The first n fields of a b-bit packed code, flat uint8.
at::Tensor UnpackFields(const at::Tensor& packed, int bits, int64_t n) {
  const at::Tensor shifts = at::arange(0, 8, bits, packed.options().dtype(at::kByte));
  return at::bitwise_right_shift(packed.unsqueeze(1), shifts).bitwise_and((1 << bits) - 1).view({-1}).narrow(0, 0, n);
}

}  // namespace

at::Tensor PackMask(const at::Tensor& mask) { return PackFields(mask.to(at::kByte), 1); }

at::Tensor UnpackMask(const at::Tensor& bits, int64_t rows, int64_t cols) {
  return UnpackFields(bits, 1, rows * cols).to(at::kBool).view({rows, cols});
}

MaskCode MaskCode::Pack(const at::Tensor& fields, int bits) {
  MaskCode c;
  c.bits_ = bits;
  c.rows_ = fields.size(0);
  c.cols_ = fields.size(1);
  c.packed_ = PackFields(fields, bits);
  return c;
}

MaskCode MaskCode::OfMask(const at::Tensor& mask) { return Pack(mask.to(at::kByte), 1); }

MaskCode MaskCode::OfDisjointMasks(const at::Tensor& masks) {
  const int64_t n = masks.size(0);
  const int bits = n + 1 <= 2 ? 1 : n + 1 <= 4 ? 2 : n + 1 <= 16 ? 4 : 8;
  at::Tensor owners = at::zeros({masks.size(1), masks.size(2)}, masks.options().dtype(at::kByte));
  for (int64_t k = 0; k < n; ++k) owners.masked_fill_(masks[k], k + 1);
  return Pack(owners, bits);
}

at::Tensor MaskCode::Mask(int slot) const {
  return UnpackFields(packed_, bits_, rows_ * cols_).eq(slot).view({rows_, cols_});
}

bool MaskCode::SameStorage(const MaskCode& other) const {
  return defined() && other.defined() && packed_.is_same(other.packed_);
}

MaskedTau MaskedTau::FromDense(const at::Tensor& tau, const at::Tensor& mask, c10::ScalarType dtype) {
  return FromDense(tau, MaskCode::OfMask(mask), 1, dtype);
}

MaskedTau MaskedTau::FromDense(const at::Tensor& tau, const MaskCode& code, int slot, c10::ScalarType dtype) {
  MaskedTau m;
  m.code_ = code;
  m.slot_ = slot;
  m.values_ = tau.detach().masked_select(code.Mask(slot)).to(dtype);
  return m;
}

MaskedTau MaskedTau::Zero(const MaskCode& code, int slot, c10::ScalarType dtype) {
  MaskedTau m;
  m.code_ = code;
  m.slot_ = slot;
  m.values_ = at::zeros({code.Mask(slot).sum().item<int64_t>()}, code.packed().options().dtype(dtype));
  return m;
}

absl::StatusOr<MaskedTau> MaskedTau::FromParts(at::Tensor bits, at::Tensor values, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0 || bits.scalar_type() != at::kByte || bits.dim() != 1 || values.dim() != 1 ||
      bits.numel() != (rows * cols + 7) / 8) {
    return absl::InvalidArgumentError(absl::StrCat("mask bits do not fit a [", rows, ", ", cols, "] matrix"));
  }
  const at::Tensor mask = UnpackMask(bits, rows, cols);
  const int64_t set = mask.sum().item<int64_t>();
  if (set != values.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("the mask has ", set, " entries but ", values.numel(), " values"));
  }
  MaskedTau m;
  m.code_ = MaskCode::OfMask(mask);
  m.values_ = std::move(values);
  return m;
}

absl::StatusOr<MaskedTau> MaskedTau::OnCode(const MaskCode& code, int slot) const {
  if (code.rows() != rows() || code.cols() != cols() || !at::equal(code.Mask(slot), Mask())) {
    return absl::InvalidArgumentError(absl::StrCat("slot ", slot, " of the code is not this expert's mask"));
  }
  MaskedTau m = *this;
  m.code_ = code;
  m.slot_ = slot;
  return m;
}

int64_t MaskedTau::nnz() const { return values_.defined() ? values_.numel() : 0; }

at::Tensor MaskedTau::bits() const {
  return code_.bits() == 1 && slot_ == 1 ? code_.packed() : PackMask(Mask());
}

at::Tensor MaskedTau::Mask() const { return code_.Mask(slot_); }

at::Tensor MaskedTau::Dense() const {
  return at::zeros({rows(), cols()}, values_.options().dtype(at::kFloat)).masked_scatter_(Mask(), values_.to(at::kFloat));
}

int64_t MaskedTau::ValueBytes() const {
  return defined() ? values_.numel() * static_cast<int64_t>(values_.element_size()) : 0;
}

int64_t MaskedTau::StorageBytes() const { return defined() ? ValueBytes() + code_.bytes() : 0; }

}  // namespace moke
