// Which expert learns an incoming edit.
//
// MoKE: an edit that restates a held fact (the scope decision; fact gate) goes to the expert that holds
// it; otherwise activation selection (Eq. 2-3) among the experts with room (growth: an expert holds at
// most expert_capacity live edits; when every one is full a new expert is added, up to max_experts, after
// which the paper's overwrite takes over). WISE: the active memory.
//
// Thread-safety: pure function of its inputs; draws from the caller's generator.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <optional>
#include <random>
#include <vector>

#include "core/editor/activations.h"
#include "core/editor/editor_options.h"
#include "core/editor/expert_bank.h"
#include "core/editor/held_edit.h"

namespace moke {

struct ExpertChoice {
  int expert = 0;
  bool new_concept = false;        // no expert recognised the question (Eq. 3's random draw, or growth)
  bool grow = false;               // `expert` is a new one, added at commit
  std::optional<size_t> previous;  // the held fact this edit restates (fact gate)
};

// The held edits an incoming edit replaces: its re-edits. Under the fact gate, every live edit of the
// same fact (scope.h SameFact); under the paper's gate, the same question word for word.
std::vector<size_t> ReplacedEdits(const EditorOptions& options, const std::vector<HeldEdit>& history,
                                  const std::string& question, const FactKey& key);

// The incoming edit as the choice sees it.
struct EditKeys {
  const at::Tensor& a;                 // [1, T, F] the question's activations
  const PaddedActivations& unrelated;  // x_o
};

ExpertChoice ChooseExpert(const EditorOptions& options, const ExpertBank& bank, const std::vector<HeldEdit>& history,
                          const LiveAfter& live, const EditKeys& edit, std::mt19937_64& rng);

}  // namespace moke
