// What an Ask decodes, decided once from the question before any token (the route, the expert's
// down-projection override, the answer's length limit), and what its decode means as an AskResult. One
// place for both, shared by KnowledgeView::Ask (one request on the caller's thread) and AskBatcher (many
// requests decoded together), so that both answer the same.
//
// Thread-safety: PlanAsk and FinishAsk are pure functions of an immutable state; OverrideCache is
// thread-safe. PlanAsk and FinishAsk may throw c10::Error: call them inside GuardTorch.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/editor/editor.h"
#include "core/model/batch_decode.h"
#include "core/model/llama_model.h"

namespace moke {

class KnowledgeState;

struct AskPlan {
  std::vector<int64_t> ids;                      // BOS, then the question's tokens
  Route route;                                   // decided once, kept for every token
  std::shared_ptr<const DownOverride> override;  // the route's expert (W_org + tau_k); null: none
  int64_t extent = 0;                            // the held answer's length in tokens (0: not a held fact)
  int limit = 0;                                 // new tokens at most: max_new_tokens, or the extent if fewer
  PromptPrefix prefix;                           // with keep_prefix: the route's pass, for the decoder to go on from
};

// Shares one override tensor among the requests routed to the same expert of the same state (so that a
// batch multiplies them together, and the sum W_org + tau_k is made once). Holds nothing alive: an entry
// lives as long as some request uses it.
class OverrideCache {
 public:
  std::shared_ptr<const DownOverride> Get(const KnowledgeState& state, const Route& route);

 private:
  absl::Mutex mu_;
  std::map<std::pair<const KnowledgeState*, int>, std::weak_ptr<const DownOverride>> entries_ ABSL_GUARDED_BY(mu_);
};

// The question's tokens; INVALID_ARGUMENT when they leave no room in the context window.
absl::StatusOr<std::vector<int64_t>> QuestionTokens(const LlamaModel& model, const std::string& question);

// max_new_tokens <= 0: the editor's default. `overrides` (optional) shares override tensors. keep_prefix:
// the prompt's pass up to the edit layer is run whether or not the route needs it, and kept in the plan
// (BatchDecoder::Start goes on from it); the route is the same either way.
absl::StatusOr<AskPlan> PlanAsk(const KnowledgeState& state, const std::string& question, int max_new_tokens,
                                std::optional<Routing> routing, OverrideCache* overrides = nullptr,
                                bool keep_prefix = false);

// The answer of a finished decode of `plan`; CANCELLED / DEADLINE_EXCEEDED when `budget` stopped it.
absl::StatusOr<AskResult> FinishAsk(const KnowledgeState& state, AskPlan plan, LlamaModel::Generation generation,
                                    const Budget& budget);

}  // namespace moke
