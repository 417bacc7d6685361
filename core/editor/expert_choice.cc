#include "core/editor/expert_choice.h"

#include <ATen/ATen.h>

#include <limits>

#include "core/editor/scope.h"

namespace moke {

namespace {

// Growth: experts that already hold expert_capacity live edits take no new question. Empty: all eligible.
std::vector<bool> EligibleExperts(const EditorOptions& options, const ExpertBank& bank,
                                  const std::vector<HeldEdit>& history, const LiveAfter& live, bool* grow) {
  std::vector<bool> eligible;
  std::vector<int> held(bank.size(), 0);
  for (size_t h = 0; h < history.size(); ++h) {
    if (live(h)) ++held[history[h].expert];
  }
  bool any = false;
  for (int k = 0; k < bank.size(); ++k) {
    eligible.push_back(held[k] < options.expert_capacity);
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

std::vector<size_t> ReplacedEdits(const EditorOptions& options, const std::vector<HeldEdit>& history,
                                  const std::string& question, const FactKey& key) {
  std::vector<size_t> out;
  const ReEditThresholds t{options.reedit_subject_min, options.reedit_relation_min};
  for (size_t h = 0; h < history.size(); ++h) {
    const HeldEdit& e = history[h];
    if (e.superseded) continue;
    const bool same = options.scope_gate == ScopeGate::kFact && options.method == EditMethod::kMoke
                          ? SameFact(*e.key, key, t)
                          : e.question == question;
    if (same) out.push_back(h);
  }
  return out;
}

ExpertChoice ChooseExpert(const EditorOptions& options, const ExpertBank& bank, const std::vector<HeldEdit>& history,
                          const LiveAfter& live, const EditKeys& edit, std::mt19937_64& rng) {
  ExpertChoice c;
  if (options.method == EditMethod::kWise) {
    c.expert = bank.size() - 1;  // the active memory
    return c;
  }
  if (options.scope_gate == ScopeGate::kFact && !live.replaced().empty()) {
    c.previous = live.replaced().back();  // the most recent statement of the fact
    c.expert = history[*c.previous].expert;
    return c;
  }
  std::vector<bool> eligible;
  if (options.expert_capacity > 0) eligible = EligibleExperts(options, bank, history, live, &c.grow);
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
