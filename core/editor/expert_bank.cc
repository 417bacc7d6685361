#include "core/editor/expert_bank.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

namespace moke {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

ExpertBank ExpertBank::Create(const EditorOptions& options, at::Tensor w_org) {
  ExpertBank bank;
  bank.options_ = options;
  bank.w_org_ = std::move(w_org);
  if (options.method == EditMethod::kMoke) {
    at::Tensor m = bank.GroupMasks(0);
    for (int i = 0; i < options.num_experts; ++i) {
      bank.taus_.push_back(at::zeros_like(bank.w_org_));
      bank.masks_.push_back(m[i]);
    }
  } else {
    bank.taus_.push_back(at::zeros_like(bank.w_org_));
    bank.masks_.push_back(
        BernoulliMask(options.wise_mask_ratio, bank.w_org_.size(0), bank.w_org_.size(1), options.seed)
            .to(bank.w_org_.device()));
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
  if (k < size()) return masks_[k];
  return GroupMasks(k / options_.num_experts)[k % options_.num_experts];
}

at::Tensor ExpertBank::GroupTaus(int group) const {
  const int first = group * options_.num_experts, n = std::min(options_.num_experts, size() - first);
  return at::stack(std::vector<at::Tensor>(taus_.begin() + first, taus_.begin() + first + n));
}

std::vector<double> ExpertBank::DeltasOf(const at::Tensor& a, const at::Tensor& token_mask) const {
  std::vector<double> out;
  for (const auto& t : taus_) out.push_back(DeltaScores(a, t.unsqueeze(0), token_mask).mean().item<double>());
  return out;
}

void ExpertBank::Store(int k, at::Tensor tau, const at::Tensor& mask, double in_scope_delta) {
  if (k == size()) {
    masks_.push_back(mask);
    taus_.push_back(tau);
    min_delta_.push_back(kInf);
  }
  taus_[k] = std::move(tau);
  const size_t group = static_cast<size_t>(k / options_.num_experts);
  if (group < emr_dirty_.size()) emr_dirty_[group] = true;
  min_delta_[k] = std::min(min_delta_[k], in_scope_delta);
}

void ExpertBank::StartWiseMemory() {
  taus_.push_back(at::zeros_like(w_org_));
  masks_.push_back(BernoulliMask(options_.wise_mask_ratio, w_org_.size(0), w_org_.size(1), options_.seed + taus_.size())
                       .to(w_org_.device()));
  min_delta_.push_back(kInf);
}

std::vector<double> ExpertBank::Thresholds(double factor) const {
  std::vector<double> t(min_delta_.size());
  for (size_t i = 0; i < min_delta_.size(); ++i) t[i] = factor * min_delta_[i];
  return t;
}

ServedExperts ExpertBank::Serve() {
  ServedExperts s;
  if (options_.method == EditMethod::kMoke && options_.use_emr) {
    emr_groups_.resize(GroupCount());
    emr_dirty_.resize(GroupCount(), true);
    for (int i = 0; i < GroupCount(); ++i) {
      if (!emr_dirty_[i]) continue;
      emr_groups_[i] = EmrMerge(GroupTaus(i));
      emr_dirty_[i] = false;
    }
    s.emr_group = options_.num_experts;
    s.emr = emr_groups_;  // shares the unchanged groups' tensors with earlier versions (never written)
  } else {
    s.taus = at::stack(taus_);
  }
  return s;
}

int64_t ExpertBank::DenseBytes() const { return int64_t{size()} * w_org_.numel() * 4; }

int64_t ExpertBank::EmrBytes() const {
  const int64_t df = w_org_.numel();
  return int64_t{GroupCount()} * df * 4 + size() * ((df + 7) / 8) + size() * 4;
}

void ExpertBank::Restore(std::vector<at::Tensor> taus, std::vector<at::Tensor> masks, std::vector<double> min_delta) {
  taus_ = std::move(taus);
  masks_ = std::move(masks);
  min_delta_ = std::move(min_delta);
  emr_groups_.clear();
  emr_dirty_.clear();
}

}  // namespace moke
