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

#include "core/editor/activations.h"
#include "core/editor/editor.h"
#include "core/editor/editor_options.h"
#include "core/editor/expert_bank.h"
#include "core/editor/scope.h"
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
    ServedExperts experts;           // MoKE: the experts; WISE: its memories
    std::vector<double> thresholds;  // per expert / memory; +inf where it holds nothing
    at::Tensor router_w, router_b;   // [K, F], [K]; undefined for WISE
    // The fact gate: the live edits' scope keys, their experts and versions, and its thresholds.
    std::vector<std::shared_ptr<const FactKey>> facts;
    std::vector<int> fact_expert;
    std::vector<uint64_t> fact_version;   // ascending
    std::vector<int64_t> fact_answer_tokens;
    ScopeThresholds scope;
  };
  explicit KnowledgeState(Parts parts);

  uint64_t version() const { return p_.version; }
  int64_t layer() const { return p_.layer; }
  // Everything it holds (state_delta.h compares and rebuilds states from these).
  const Parts& parts() const { return p_; }
  const LlamaModel& model() const { return *p_.model; }
  const EditorOptions& options() const { return p_.options; }
  int num_experts() const;
  // tau_k [D, F] float32 of expert k, built from its stored form.
  at::Tensor Tau(int64_t k) const;

  // Route a question. The fact gate decides whether it asks a held fact (scope.h) and then answers with
  // that fact's expert, or with the expert an explicit `routing` mode ranks first; the paper's gate
  // compares Delta_i with per-expert thresholds (Eq. 8-9) and ranks by the routing mode (Table 5).
  // `ids`: the question's prompt tokens (LlamaModel::EncodePrompt), which the caller has already.
  Route RouteQuestion(const std::string& question, const std::vector<int64_t>& ids,
                      std::optional<Routing> routing) const;
  Route RouteQuestion(const std::string& question, const PromptActivations& p, std::optional<Routing> routing) const;
  // The taught answer's length in tokens of the fact a route was matched to (0: none).
  int64_t AnswerTokensOf(const Route& route) const;
  // The down-projection override for a route (none for the original weights).
  std::optional<DownOverride> OverrideFor(const Route& route) const;

 private:
  // Fills r->deltas and r->router_probs for activations `a` [1, T, F].
  void ScoreExperts(const at::Tensor& a, Route* r) const;
  // The expert `mode` ranks first from r's scores.
  int RankExperts(const Route& r, Routing mode) const;
  Route RouteByDeltas(const at::Tensor& a, std::optional<Routing> routing) const;

  const Parts p_;
  std::vector<const FactKey*> fact_ptrs_;  // p_.facts, for DecideScope
};

}  // namespace moke
