#include "core/editor/expert_choice.h"

#include <ATen/ATen.h>

#include <limits>

#include "core/editor/scope.h"

namespace moke {

namespace {

// The held edit an incoming edit re-edits, by the scope decision over the live edits.
std::optional<size_t> ReEditedFact(const EditorOptions& options, const std::vector<HeldEdit>& history,
                                   const EditKeys& edit) {
  std::vector<size_t> live;
  std::vector<at::Tensor> keys;
  for (size_t h = 0; h < history.size(); ++h) {
    if (history[h].superseded) continue;
    live.push_back(h);
    keys.push_back(history[h].fingerprint);
  }
  if (live.empty()) return std::nullopt;
  const NearestEdit n = NearestHeldEdit(at::stack(keys), edit.negatives, options.nearest_min_cosine, edit.fingerprint);
  if (!n.in_scope) return std::nullopt;
  return live[n.index];
}

// Growth: experts that already hold expert_capacity live edits take no new question. Empty: all eligible.
std::vector<bool> EligibleExperts(const EditorOptions& options, const ExpertBank& bank,
                                  const std::vector<HeldEdit>& history, const std::string& question, bool* grow) {
  std::vector<bool> eligible;
  std::vector<int> live(bank.size(), 0);
  for (const HeldEdit& h : history) {
    if (StaysLive(h, question)) ++live[h.expert];
  }
  bool any = false;
  for (int k = 0; k < bank.size(); ++k) {
    eligible.push_back(live[k] < options.expert_capacity);
    any = any || eligible.back();
  }
  if (!any) {
    if (bank.size() < options.max_experts) {
      *grow = true;
    } else {
      eligible.clear();  // the bank is at its limit: the paper's behaviour (overwrite)
    }
  }
  return eligible;
}

}  // namespace

ExpertChoice ChooseExpert(const EditorOptions& options, const ExpertBank& bank, const std::vector<HeldEdit>& history,
                          const EditKeys& edit, std::mt19937_64& rng) {
  ExpertChoice c;
  if (options.method == EditMethod::kWise) {
    c.expert = bank.size() - 1;  // the active memory
    return c;
  }
  if (options.scope_gate == ScopeGate::kNearest) c.previous = ReEditedFact(options, history, edit);
  if (c.previous) {
    c.expert = history[*c.previous].expert;
    return c;
  }
  std::vector<bool> eligible;
  if (options.expert_capacity > 0) eligible = EligibleExperts(options, bank, history, edit.question, &c.grow);
  if (c.grow) {
    c.expert = bank.size();
    c.new_concept = true;
  } else if (options.activation_selection) {
    at::NoGradGuard ng;
    std::vector<double> de = bank.DeltasOf(edit.a, PromptTokenMask(edit.a));
    std::vector<double> dob = bank.DeltasOf(edit.unrelated.a, edit.unrelated.mask);
    c.expert = SelectExpert(SelectionScores(de, dob), options.select_eps, rng, &c.new_concept, eligible);
  } else {
    // No selection (ablation): every edit is a new concept, a uniformly random eligible expert.
    c.expert = SelectExpert(std::vector<double>(bank.size(), 0.0), std::numeric_limits<double>::infinity(), rng,
                            &c.new_concept, eligible);
  }
  return c;
}

}  // namespace moke
