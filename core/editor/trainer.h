// Training one expert on one edit (paper Eq. 5-6): SGD on tau = W_i - W_org, the gradient masked to the
// expert's mask, each entry clamped to +-clamp, early stop on a small and flat loss. The layers below the
// edit layer run once per edit (the frozen prefix); each iteration runs layers L..end only.
//
// Thread-safety: a pure function of its inputs (the model is immutable).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/budget.h"
#include "core/editor/activations.h"
#include "core/editor/augmentation.h"
#include "core/editor/editor_options.h"
#include "core/model/llama_model.h"

namespace moke {

// An edit replayed from another expert j for the memory loss (Eq. 6).
struct ReplayedEdit {
  at::Tensor a;      // [1, T, F]
  at::Tensor tau_j;  // [D, F] its expert's tau
};

struct TrainingProblem {
  const LlamaModel* model = nullptr;
  int64_t layer = 0;
  const EditorOptions* options = nullptr;
  at::Tensor w_org;  // [D, F] float32
  at::Tensor tau;    // [D, F] the expert's current tau (the start)
  at::Tensor mask;   // [D, F] bool, the entries the expert may change
  std::vector<TrainingRow> rows;     // the edit's rows, then rehearsed ones (one row per rehearsed edit)
  // How many of `rows` are the edit's own (its bare and augmented rows); the rest are rehearsed edits.
  // With rehearsed rows the loss is a mean over edits, not rows: the edit's rows together weigh as much as
  // one rehearsed edit's row, so that the edit's augmented copies do not outvote the edits it must keep.
  // 0: every row is the edit's (a plain mean over rows).
  size_t edit_rows = 0;
  PaddedActivations unrelated;       // x_o for the margin loss
  std::optional<ReplayedEdit> replay;
};

struct TrainedExpert {
  at::Tensor tau;  // [D, F]
  int iterations = 0;
  double loss = 0;
};

// Runs the optimisation; INVALID_ARGUMENT when a row does not fit the context window, the budget's
// status when it runs out (checked every iteration). May throw c10::Error (callers guard).
absl::StatusOr<TrainedExpert> TrainExpert(const TrainingProblem& problem, const Budget& budget);

}  // namespace moke
