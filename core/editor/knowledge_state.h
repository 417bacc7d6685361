// One published, immutable version of the edited knowledge, and the answering logic over it: the scope
// decision (is this question edited knowledge?) and routing (which expert answers: Eq. 8-9 and Table 5
// of the paper, or the nearest held edit).
//
// Thread-safety: never modified after the editor publishes it; every method is const and safe from any
// thread. Tensors here are never written in place.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

#include "core/editor/editor.h"
#include "core/editor/editor_options.h"
#include "core/editor/expert_bank.h"
#include "core/model/llama_model.h"

namespace moke {

class KnowledgeState {
 public:
  struct Parts {
    std::shared_ptr<const LlamaModel> model;
    EditorOptions options;
    int64_t layer = 0;
    uint64_t version = 0;
    at::Tensor w_org;                // [D, F] float32, the edit layer's original down-projection
    ServedExperts experts;           // MoKE: EMR merges per group (or taus); WISE: its memories
    std::vector<double> thresholds;  // per expert / memory; +inf where it holds nothing
    at::Tensor router_w, router_b;   // [K, F], [K]; undefined for WISE
    // Scope keys (scope_gate = nearest): L2-normalised fingerprints [N, F] of the live edits' questions and
    // their experts; negatives [P, F], fingerprints of known unrelated prompts; the cosine floor.
    at::Tensor keys;
    std::vector<int> key_expert;
    at::Tensor negatives;
    double min_cosine = 1.0;
  };
  explicit KnowledgeState(Parts parts) : p_(std::move(parts)) {}

  uint64_t version() const { return p_.version; }
  const LlamaModel& model() const { return *p_.model; }
  const EditorOptions& options() const { return p_.options; }
  int num_experts() const;
  // tau_k [D, F] of expert k (EMR reconstruction when merged).
  at::Tensor Tau(int64_t k) const;

  // Route a prompt from its activations `a` [1, T, F] (BOS first). With the nearest gate only the
  // fingerprint is computed (no Delta per expert): the cost does not grow with the number of experts.
  Route RouteFromActivations(const at::Tensor& a, std::optional<Routing> routing) const;
  Route RoutePrompt(const std::vector<int64_t>& prompt_ids, std::optional<Routing> routing) const;
  // The down-projection override for a route (none for the original weights).
  std::optional<DownOverride> OverrideFor(const Route& route) const;

 private:
  at::Tensor AllTaus() const;  // [K, D, F]
  Route RouteByDeltas(const at::Tensor& a, std::optional<Routing> routing) const;

  const Parts p_;
};

}  // namespace moke
