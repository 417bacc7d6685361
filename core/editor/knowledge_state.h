// One published, immutable version of the edited knowledge, and the answering logic over it
// (routing, Eq. 8-9 and Table 5 of the paper; or the nearest-edit gate).
//
// Thread-safety: never modified after the editor publishes it; every method is const and safe from
// any thread. Tensors here are never written in place.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

#include "core/editor/editor.h"
#include "core/editor/editor_options.h"
#include "core/experts/expert_math.h"
#include "core/model/llama_model.h"

namespace moke {

class KnowledgeState {
 public:
  std::shared_ptr<const LlamaModel> model;
  EditorOptions options;
  int64_t layer = 0;
  uint64_t version = 0;
  at::Tensor w_org;  // [D, F] float32, the edit layer's original down-projection

  // Experts as served. MoKE with EMR: `emr` holds them, one EMR merge per group of `emr_group`
  // experts (masks are disjoint within a group, so each merge is exact); otherwise `taus` [K, D, F]
  // (W_k - W_org). WISE: `taus` holds the memories (frozen ones and the active one).
  std::vector<EmrExperts> emr;
  int emr_group = 1;
  at::Tensor taus;
  std::vector<double> thresholds;  // per expert / memory; +inf where it holds nothing
  at::Tensor router_w, router_b;   // [K, F], [K]; undefined for WISE

  // Nearest-edit gate: L2-normalised fingerprints [N, F] of the held edits' questions, their experts.
  // A prompt is edited knowledge when its nearest held edit is at cosine >= min_cosine and nearer than
  // every known unrelated prompt; it then goes to that edit's expert.
  at::Tensor fingerprints;
  std::vector<int> fingerprint_expert;
  at::Tensor negatives;  // [P, F] fingerprints of known unrelated prompts (out of scope)
  double min_cosine = 1.0;

  int num_experts() const;
  // tau_k [D, F] of expert k (EMR reconstruction when merged).
  at::Tensor Tau(int64_t k) const;
  at::Tensor AllTaus() const;  // [K, D, F]

  // Route a tokenized prompt. With the nearest-edit gate only the fingerprint is computed (no Delta per
  // expert): the cost of a route does not grow with the number of experts. (BOS first). `a` [1, T, F] is its down-projection input.
  Route RouteFromActivations(const at::Tensor& a, std::optional<Routing> routing) const;
  Route RoutePrompt(const std::vector<int64_t>& prompt_ids, std::optional<Routing> routing) const;
  // The down-projection override for a route (none for the original weights).
  std::optional<DownOverride> OverrideFor(const Route& route) const;
};

// Mean of a [1, T, F] over positions 1..T-1 (BOS excluded), L2-normalised -> [F].
at::Tensor Fingerprint(const at::Tensor& a);

}  // namespace moke
