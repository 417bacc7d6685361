// Everything the editor changes, in one place: the expert bank, the router, the edit history, the replay
// buffer, the pool of unrelated prompts, the generator and the version. Editor::Impl owns one; the
// snapshot codec reads and replaces it.
//
// Thread-safety: not thread-safe. Only the editor thread touches it (Editor checks that calls do not
// overlap); readers see published KnowledgeStates, never this.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/editor/augmentation.h"
#include "core/editor/editor_options.h"
#include "core/editor/expert_bank.h"
#include "core/editor/held_edit.h"
#include "core/editor/rehearsal.h"
#include "core/editor/unrelated_pool.h"
#include "core/experts/router.h"
#include "core/model/llama_model.h"

namespace moke {

struct EditorState {
  EditorOptions options;
  std::shared_ptr<const LlamaModel> model;
  int64_t layer = 0;
  ExpertBank bank;
  Router router;  // MoKE only; undefined for WISE
  ReplayBuffer replay;
  std::vector<HeldEdit> history;
  UnrelatedPool pool;
  Augmenter augmenter;
  std::mt19937_64 rng;
  uint64_t version = 0;
};

}  // namespace moke
