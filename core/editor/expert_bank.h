// The knowledge experts of the edit layer's down-projection, as the editor trains them.
//
// MoKE: experts come in groups of `num_experts` (group 0 is the initial bank; growth adds experts one at
// a time). A group's masks [num_experts, D, F] are disjoint (with disjoint_masks) and drawn from a seed of
// their own, so expert k's mask is GroupMasks(k / num_experts)[k % num_experts] whenever it is made, and
// each group is served as one exact EMR merge. WISE: one memory per `wise_save_freq` edits, each with a
// Bernoulli mask; the last one is active.
//
// Each expert is tau_k = W_k - W_org [D, F] (float32) with its mask, and the smallest in-scope Delta seen
// while training it (the paper's threshold, x threshold_factor).
//
// Thread-safety: not thread-safe; owned by the editor thread. Tensors handed out are never written in
// place afterwards, so published versions may share them.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "core/editor/editor_options.h"
#include "core/experts/expert_math.h"

namespace moke {

// The experts as readers use them: EMR merges per group (MoKE with use_emr), or the stacked taus.
struct ServedExperts {
  std::vector<EmrExperts> emr;  // one per group of `emr_group` experts
  int emr_group = 1;
  at::Tensor taus;              // [K, D, F] when not merged
};

class ExpertBank {
 public:
  ExpertBank() = default;
  // The initial bank for `options.method` over the original weights `w_org` [D, F] (float32).
  static ExpertBank Create(const EditorOptions& options, at::Tensor w_org);

  int size() const { return static_cast<int>(taus_.size()); }
  int GroupCount() const { return (size() + options_.num_experts - 1) / options_.num_experts; }
  const at::Tensor& w_org() const { return w_org_; }
  const at::Tensor& tau(int k) const { return taus_[k]; }
  const at::Tensor& mask(int k) const { return masks_[k]; }
  // The mask of expert k, also for k == size() (the next expert growth would add).
  at::Tensor MaskOf(int k) const;

  // Delta_i(a) (Eq. 4) for every expert, one at a time (no [K, D, F] stack): [K] on the CPU.
  std::vector<double> DeltasOf(const at::Tensor& a, const at::Tensor& token_mask) const;

  // Stores a trained tau for expert k and notes its in-scope Delta. k == size() adds the expert (growth)
  // with `mask`, which must be MaskOf(k); otherwise `mask` is not used.
  void Store(int k, at::Tensor tau, const at::Tensor& mask, double in_scope_delta);
  // WISE: freezes the active memory and starts a fresh one with a new random mask.
  void StartWiseMemory();

  // Per-expert gate thresholds: factor x the smallest in-scope Delta (+inf for an untrained expert).
  std::vector<double> Thresholds(double factor) const;
  // The serving form. Re-merges only the EMR groups changed since the last call.
  ServedExperts Serve();

  // Storage, for statistics: dense experts, and their EMR form.
  int64_t DenseBytes() const;
  int64_t EmrBytes() const;

  // Snapshot state. min_delta: +inf where nothing was learned.
  const std::vector<double>& min_delta() const { return min_delta_; }
  at::Tensor GroupTaus(int group) const;  // [n <= num_experts, D, F]
  // Replaces every expert; shapes were checked by the caller.
  void Restore(std::vector<at::Tensor> taus, std::vector<at::Tensor> masks, std::vector<double> min_delta);

 private:
  at::Tensor GroupMasks(int group) const;

  EditorOptions options_;
  at::Tensor w_org_;
  std::vector<at::Tensor> taus_, masks_;
  std::vector<double> min_delta_;
  // The EMR merge of each group as last served, and which groups changed since.
  std::vector<EmrExperts> emr_groups_;
  std::vector<bool> emr_dirty_;
};

}  // namespace moke
