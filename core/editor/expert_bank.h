// The knowledge experts of the edit layer's down-projection, as the editor trains them.
//
// MoKE: experts come in groups of `num_experts` (group 0 is the initial bank; growth adds experts one at
// a time). A group's masks [num_experts, D, F] are disjoint (with disjoint_masks) and drawn from a seed of
// their own, so expert k's mask is GroupMasks(k / num_experts)[k % num_experts] whenever it is made. WISE:
// one memory per `wise_save_freq` edits, each with a Bernoulli mask; the last one is active.
//
// Each expert is tau_k = W_k - W_org stored on its mask only, in the model's dtype (MaskedTau), with the
// smallest in-scope Delta seen while training it (the paper's threshold, x threshold_factor). The experts
// of a group with disjoint masks share one mask code (the owner of each entry). Dense [D, F] forms exist
// only while one is needed (the expert being trained, a Delta score).
//
// Thread-safety: not thread-safe; owned by the editor thread. Experts handed out are never written in
// place afterwards, so published versions share them.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "core/editor/editor_options.h"
#include "core/experts/expert_math.h"
#include "core/experts/masked_tau.h"

namespace moke {

// The experts as readers use them, expert k at index k. With disjoint masks the paper's EMR merge of a
// group is exact (the merged group is the sum of its experts' taus, every rescaler 1), so these are the
// editor's own experts; with overlapping masks and use_emr they are the EMR reconstructions (each on its
// expert's mask).
struct ServedExperts {
  std::vector<MaskedTau> taus;
};

// Puts experts [first, first + count) of `taus`, one group with disjoint masks, onto one shared code
// (expert first + i on slot i + 1): `code` when given; else a code two of them share already (the group's,
// when one changed expert arrives alone: one mask compared, no code built), unless it does not hold the
// others' masks; else one made from their masks. Values are untouched; an expert whose mask the code does
// not give back (masks that overlap) keeps its own code. Exact either way.
void ShareGroupCode(std::vector<MaskedTau>* taus, int first, int count, const MaskCode* code = nullptr);

class ExpertBank {
 public:
  ExpertBank() = default;
  // The initial bank for `options.method` over the original weights `w_org` [D, F] (float32); experts are
  // stored as `dtype` (the model's).
  static ExpertBank Create(const EditorOptions& options, at::Tensor w_org, c10::ScalarType dtype);

  int size() const { return static_cast<int>(taus_.size()); }
  int GroupCount() const { return (size() + options_.num_experts - 1) / options_.num_experts; }
  const at::Tensor& w_org() const { return w_org_; }
  c10::ScalarType dtype() const { return dtype_; }
  // tau_k [D, F] float32, built from the stored form.
  at::Tensor tau(int k) const { return taus_[k].Dense(); }
  const MaskedTau& stored(int k) const { return taus_[k]; }
  // The mask of expert k [D, F] bool, also for k == size() (the next expert growth would add).
  at::Tensor MaskOf(int k) const;

  // Delta_i(a) (Eq. 4) for every expert, one at a time (no [K, D, F] stack): [K] on the CPU.
  std::vector<double> DeltasOf(const at::Tensor& a, const at::Tensor& token_mask) const;

  // Stores a trained tau [D, F] for expert k (0 off MaskOf(k)), and notes its in-scope Delta.
  // k == size() adds the expert (growth).
  void Store(int k, const at::Tensor& tau, double in_scope_delta);
  // WISE: freezes the active memory and starts a fresh one with a new random mask.
  void StartWiseMemory();

  // Per-expert gate thresholds: factor x the smallest in-scope Delta (+inf for an untrained expert).
  std::vector<double> Thresholds(double factor) const;
  // The serving form. Re-merges only the EMR groups changed since the last call (overlapping masks).
  ServedExperts Serve();

  // Bytes the experts take: their values, and each mask code once (a group's experts share theirs).
  int64_t StorageBytes() const;

  // Snapshot state. min_delta: +inf where nothing was learned.
  const std::vector<double>& min_delta() const { return min_delta_; }
  // Replaces every expert; shapes were checked by the caller. The experts of a MoKE group with disjoint
  // masks come to share one code again (snapshots store each expert's own mask).
  void Restore(std::vector<MaskedTau> taus, std::vector<double> min_delta);

 private:
  struct Slot {
    MaskCode code;
    int slot = 1;
  };
  at::Tensor GroupMasks(int group) const;  // [num_experts, D, F] bool
  // Where the masks of a group's experts are: one shared code (disjoint masks) or one code each.
  std::vector<Slot> GroupSlots(int group) const;
  // Expert k's code and slot, also for k == size() (the next expert growth would add).
  Slot SlotOf(int k) const;

  EditorOptions options_;
  at::Tensor w_org_;
  c10::ScalarType dtype_ = c10::ScalarType::Float;
  std::vector<MaskedTau> taus_;
  std::vector<double> min_delta_;
  // The mask codes of the last group drawn for growth (drawing one is a permutation of D x F entries).
  mutable int pending_group_ = -1;
  mutable std::vector<Slot> pending_;
  // EMR over overlapping masks: the reconstructions as last served, and which groups changed since.
  std::vector<MaskedTau> emr_served_;
  std::vector<bool> emr_dirty_;
};

}  // namespace moke
