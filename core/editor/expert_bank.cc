#include "core/editor/expert_bank.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

namespace moke {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

ExpertBank ExpertBank::Create(const EditorOptions& options, at::Tensor w_org, c10::ScalarType dtype) {
  ExpertBank bank;
  bank.options_ = options;
  bank.w_org_ = std::move(w_org);
  bank.dtype_ = dtype;
  if (options.method == EditMethod::kMoke) {
    at::Tensor m = bank.GroupMasks(0);
    for (int i = 0; i < options.num_experts; ++i) bank.taus_.push_back(MaskedTau::Zero(m[i], dtype));
  } else {
    bank.taus_.push_back(MaskedTau::Zero(
        BernoulliMask(options.wise_mask_ratio, bank.w_org_.size(0), bank.w_org_.size(1), options.seed).to(bank.w_org_.device()),
        dtype));
  }
  bank.min_delta_.assign(bank.taus_.size(), kInf);
  return bank;
}

at::Tensor ExpertBank::GroupMasks(int group) const {
  const int64_t d = w_org_.size(0), f = w_org_.size(1);
  const uint64_t seed = options_.seed + 7919ull * static_cast<uint64_t>(group);
  if (options_.disjoint_masks) {
    return DisjointMasks(options_.num_experts, options_.mask_ratio, d, f, seed).to(w_org_.device());
  }
  std::vector<at::Tensor> m;
  for (int i = 0; i < options_.num_experts; ++i) m.push_back(BernoulliMask(options_.mask_ratio, d, f, seed + 1 + i));
  return at::stack(m).to(w_org_.device());
}

at::Tensor ExpertBank::MaskOf(int k) const {
  if (k < size()) return taus_[k].Mask();
  const int group = k / options_.num_experts;
  if (group != pending_group_) {
    const at::Tensor m = GroupMasks(group);
    pending_bits_.clear();
    for (int i = 0; i < options_.num_experts; ++i) pending_bits_.push_back(PackMask(m[i]));
    pending_group_ = group;
  }
  return UnpackMask(pending_bits_[k % options_.num_experts], w_org_.size(0), w_org_.size(1));
}

std::vector<double> ExpertBank::DeltasOf(const at::Tensor& a, const at::Tensor& token_mask) const {
  std::vector<at::Tensor> d;
  for (const auto& t : taus_) d.push_back(DeltaScores(a, t.Dense().unsqueeze(0), token_mask).mean());
  const at::Tensor all = at::stack(d).to(at::kDouble).cpu();  // one read from the device
  return std::vector<double>(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
}

void ExpertBank::Store(int k, const at::Tensor& tau, const at::Tensor& mask, double in_scope_delta) {
  MaskedTau stored = MaskedTau::FromDense(tau, mask, dtype_);
  if (k == size()) {
    taus_.push_back(std::move(stored));
    min_delta_.push_back(kInf);
  } else {
    taus_[k] = std::move(stored);
  }
  const size_t group = static_cast<size_t>(k / options_.num_experts);
  if (group < emr_dirty_.size()) emr_dirty_[group] = true;
  min_delta_[k] = std::min(min_delta_[k], in_scope_delta);
}

void ExpertBank::StartWiseMemory() {
  taus_.push_back(MaskedTau::Zero(
      BernoulliMask(options_.wise_mask_ratio, w_org_.size(0), w_org_.size(1), options_.seed + taus_.size() + 1)
          .to(w_org_.device()),
      dtype_));
  min_delta_.push_back(kInf);
}

std::vector<double> ExpertBank::Thresholds(double factor) const {
  std::vector<double> t(min_delta_.size());
  for (size_t i = 0; i < min_delta_.size(); ++i) t[i] = factor * min_delta_[i];
  return t;
}

ServedExperts ExpertBank::Serve() {
  ServedExperts s;
  if (options_.method != EditMethod::kMoke || !options_.use_emr || options_.disjoint_masks) {
    s.taus = taus_;  // shares every expert (never written in place)
    return s;
  }
  // EMR over overlapping masks: the merge changes the experts; re-merge the groups changed since.
  const int n = options_.num_experts;
  emr_served_.resize(size());
  emr_dirty_.resize(GroupCount(), true);
  for (int g = 0; g < GroupCount(); ++g) {
    if (!emr_dirty_[g]) continue;
    const int first = g * n, count = std::min(n, size() - first);
    std::vector<at::Tensor> dense, masks;
    for (int k = first; k < first + count; ++k) {
      dense.push_back(taus_[k].Dense());
      masks.push_back(taus_[k].Mask());
    }
    const EmrExperts e = EmrMerge(at::stack(dense));
    for (int i = 0; i < count; ++i) emr_served_[first + i] = MaskedTau::FromDense(e.Expert(i), masks[i], dtype_);
    emr_dirty_[g] = false;
  }
  s.taus = emr_served_;
  return s;
}

int64_t ExpertBank::StorageBytes() const {
  int64_t n = 0;
  for (const auto& t : taus_) n += t.StorageBytes();
  return n;
}

void ExpertBank::Restore(std::vector<MaskedTau> taus, std::vector<double> min_delta) {
  taus_ = std::move(taus);
  min_delta_ = std::move(min_delta);
  pending_group_ = -1;
  pending_bits_.clear();
  emr_served_.clear();
  emr_dirty_.clear();
}

}  // namespace moke
