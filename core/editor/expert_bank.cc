#include "core/editor/expert_bank.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <unordered_set>

namespace moke {

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

void ShareGroupCode(std::vector<MaskedTau>* taus, int first, int count, const MaskCode* code) {
  std::vector<MaskedTau>& t = *taus;
  // Every expert onto `c`; false when some mask is not where `c` says.
  auto onto = [&](const MaskCode& c) {
    bool all = true;
    for (int i = 0; i < count; ++i) {
      if (t[first + i].code().SameStorage(c) && t[first + i].slot() == i + 1) continue;
      auto moved = t[first + i].OnCode(c, i + 1);
      if (moved.ok()) {
        t[first + i] = *std::move(moved);
      } else {
        all = false;
      }
    }
    return all;
  };
  if (code != nullptr) {
    onto(*code);
    return;
  }
  auto shared_already = [&]() -> std::optional<MaskCode> {
    for (int i = 0; i < count; ++i) {
      for (int j = i + 1; j < count; ++j) {
        if (t[first + i].code().SameStorage(t[first + j].code())) return t[first + i].code();
      }
    }
    return std::nullopt;
  };
  if (std::optional<MaskCode> held = shared_already(); held && onto(*held)) return;
  std::vector<at::Tensor> masks;
  for (int k = first; k < first + count; ++k) masks.push_back(t[k].Mask());
  onto(MaskCode::OfDisjointMasks(at::stack(masks)));
}

ExpertBank ExpertBank::Create(const EditorOptions& options, at::Tensor w_org, c10::ScalarType dtype) {
  ExpertBank bank;
  bank.options_ = options;
  bank.w_org_ = std::move(w_org);
  bank.dtype_ = dtype;
  if (options.method == EditMethod::kMoke) {
    for (const Slot& s : bank.GroupSlots(0)) bank.taus_.push_back(MaskedTau::Zero(s.code, s.slot, dtype));
  } else {
    bank.taus_.push_back(MaskedTau::Zero(
        MaskCode::OfMask(BernoulliMask(options.wise_mask_ratio, bank.w_org_.size(0), bank.w_org_.size(1), options.seed)
                             .to(bank.w_org_.device())),
        1, dtype));
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

std::vector<ExpertBank::Slot> ExpertBank::GroupSlots(int group) const {
  const at::Tensor m = GroupMasks(group);
  std::vector<Slot> slots;
  if (options_.disjoint_masks) {
    const MaskCode shared = MaskCode::OfDisjointMasks(m);
    for (int i = 0; i < options_.num_experts; ++i) slots.push_back({shared, i + 1});
  } else {
    for (int i = 0; i < options_.num_experts; ++i) slots.push_back({MaskCode::OfMask(m[i]), 1});
  }
  return slots;
}

ExpertBank::Slot ExpertBank::SlotOf(int k) const {
  if (k < size()) return {taus_[k].code(), taus_[k].slot()};
  const int group = k / options_.num_experts;
  if (group != pending_group_) {
    pending_ = GroupSlots(group);
    pending_group_ = group;
  }
  return pending_[k % options_.num_experts];
}

at::Tensor ExpertBank::MaskOf(int k) const {
  const Slot s = SlotOf(k);
  return s.code.Mask(s.slot);
}

std::vector<double> ExpertBank::DeltasOf(const at::Tensor& a, const at::Tensor& token_mask) const {
  std::vector<at::Tensor> d;
  for (const auto& t : taus_) d.push_back(DeltaScores(a, t.Dense().unsqueeze(0), token_mask).mean());
  const at::Tensor all = at::stack(d).to(at::kDouble).cpu();  // one read from the device
  return std::vector<double>(all.data_ptr<double>(), all.data_ptr<double>() + all.numel());
}

void ExpertBank::Store(int k, const at::Tensor& tau, double in_scope_delta) {
  const Slot s = SlotOf(k);
  MaskedTau stored = MaskedTau::FromDense(tau, s.code, s.slot, dtype_);
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
      MaskCode::OfMask(BernoulliMask(options_.wise_mask_ratio, w_org_.size(0), w_org_.size(1), options_.seed + taus_.size() + 1)
                           .to(w_org_.device())),
      1, dtype_));
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
    std::vector<at::Tensor> dense;
    for (int k = first; k < first + count; ++k) dense.push_back(taus_[k].Dense());
    const EmrExperts e = EmrMerge(at::stack(dense));
    for (int i = 0; i < count; ++i) {
      const MaskedTau& own = taus_[first + i];
      emr_served_[first + i] = MaskedTau::FromDense(e.Expert(i), own.code(), own.slot(), dtype_);
    }
    emr_dirty_[g] = false;
  }
  s.taus = emr_served_;
  return s;
}

int64_t ExpertBank::StorageBytes() const {
  int64_t n = 0;
  std::unordered_set<const void*> codes;
  for (const auto& t : taus_) {
    n += t.ValueBytes();
    if (codes.insert(t.code().packed().unsafeGetTensorImpl()).second) n += t.code().bytes();
  }
  return n;
}

void ExpertBank::Restore(std::vector<MaskedTau> taus, std::vector<double> min_delta) {
  taus_ = std::move(taus);
  min_delta_ = std::move(min_delta);
  pending_group_ = -1;
  pending_.clear();
  emr_served_.clear();
  emr_dirty_.clear();
  if (options_.method != EditMethod::kMoke || !options_.disjoint_masks) return;
  // Each group's experts onto one code: a full group's from its experts' masks; the last group, if growth
  // has not filled it, drawn again so that the experts growth adds later share it too. An expert whose
  // mask is not where the code says (a snapshot made with other masks) keeps its own code: exact either way.
  const int n = options_.num_experts;
  for (int g = 0; g < GroupCount(); ++g) {
    const int first = g * n, count = std::min(n, size() - first);
    if (count == n) {
      ShareGroupCode(&taus_, first, count);
      continue;
    }
    pending_ = GroupSlots(g);  // disjoint: one code, slot i + 1 for expert i
    pending_group_ = g;
    ShareGroupCode(&taus_, first, count, &pending_[0].code);
  }
}

}  // namespace moke
