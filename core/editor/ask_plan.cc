#include "core/editor/ask_plan.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/editor/activations.h"
#include "core/editor/knowledge_state.h"

namespace moke {

std::shared_ptr<const DownOverride> OverrideCache::Get(const KnowledgeState& state, const Route& route) {
  if (route.expert < 0) return nullptr;
  const auto key = std::make_pair(&state, route.expert);
  {
    absl::MutexLock lock(&mu_);
    // The state outlives every request that holds its override, so a live entry is this state's.
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (auto held = it->second.lock()) return held;
    }
  }
  std::optional<DownOverride> made = state.OverrideFor(route);  // outside the lock: a [D, F] sum
  if (!made) return nullptr;
  auto shared = std::make_shared<const DownOverride>(std::move(*made));
  absl::MutexLock lock(&mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {  // forget the unused ones
    it = it->second.expired() ? entries_.erase(it) : std::next(it);
  }
  auto& slot = entries_[key];
  if (auto held = slot.lock()) return held;  // another thread made it meanwhile
  slot = shared;
  return shared;
}

absl::StatusOr<std::vector<int64_t>> QuestionTokens(const LlamaModel& m, const std::string& question) {
  auto ids = m.EncodePrompt(question);
  if (static_cast<int64_t>(ids.size()) >= m.config().max_position_embeddings) {
    return absl::InvalidArgumentError(absl::StrCat("question has ", ids.size(), " tokens; the context window is ",
                                                   m.config().max_position_embeddings));
  }
  return ids;
}

absl::StatusOr<AskPlan> PlanAsk(const KnowledgeState& state, const std::string& question, int max_new_tokens,
                                std::optional<Routing> routing, OverrideCache* overrides, bool keep_prefix) {
  if (max_new_tokens <= 0) max_new_tokens = state.options().max_new_tokens;
  AskPlan plan;
  MOKE_ASSIGN_OR_RETURN(plan.ids, QuestionTokens(state.model(), question));
  // Once per request, kept for every token.
  if (keep_prefix) {
    const LlamaModel& m = state.model();
    plan.prefix.layer = state.layer();
    plan.prefix.split = m.RunToDownProj(at::tensor(plan.ids, m.id_options()).unsqueeze(0), plan.prefix.layer,
                                        &plan.prefix.cache);
    plan.route = state.RouteQuestion(question, PromptActivations{plan.ids, plan.prefix.split.a.to(at::kFloat)}, routing);
  } else {
    plan.route = state.RouteQuestion(question, plan.ids, routing);
  }
  if (overrides != nullptr) {
    plan.override = overrides->Get(state, plan.route);
  } else if (std::optional<DownOverride> ov = state.OverrideFor(plan.route)) {
    plan.override = std::make_shared<const DownOverride>(std::move(*ov));
  }
  // An answer to a held fact ends where its taught answer ends (the edit also teaches the end-of-sequence
  // token, which a small model may not learn through one layer).
  plan.extent = state.AnswerTokensOf(plan.route);
  plan.limit = plan.extent > 0 ? static_cast<int>(std::min<int64_t>(max_new_tokens, plan.extent)) : max_new_tokens;
  return plan;
}

absl::StatusOr<AskResult> FinishAsk(const KnowledgeState& state, AskPlan plan, LlamaModel::Generation g,
                                    const Budget& budget) {
  if (g.stop == LlamaModel::Stop::kBudget) {
    MOKE_RETURN_IF_ERROR(budget.Check("ask"));
    return absl::InternalError("ask: decoding stopped for its budget, but the budget is not spent");
  }
  AskResult out;
  out.version = state.version();
  const bool whole = plan.extent > 0 && static_cast<int64_t>(g.tokens.size()) == plan.extent;
  out.stop = g.stop == LlamaModel::Stop::kEndOfSequence || whole ? AskStop::kEndOfAnswer : AskStop::kTokenLimit;
  out.tokens = std::move(g.tokens);
  out.answer = state.model().Decode(out.tokens);
  out.route = std::move(plan.route);
  return out;
}

}  // namespace moke
