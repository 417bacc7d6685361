#include "core/editor/knowledge_state.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/editor/activations.h"
#include "core/editor/ask_plan.h"
#include "core/editor/fact_key.h"
#include "core/editor/scope.h"

namespace moke {

namespace {
// Dense experts scored in one product when routing by Delta (bounds the memory a route needs: at the
// 7B shape one expert is 180 MB dense).
constexpr int64_t kScoreChunkBytes = int64_t{256} << 20;
}  // namespace

int KnowledgeState::num_experts() const { return static_cast<int>(p_.experts.taus.size()); }

at::Tensor KnowledgeState::Tau(int64_t k) const { return p_.experts.taus[k].Dense(); }

KnowledgeState::KnowledgeState(Parts parts) : p_(std::move(parts)) {
  for (const auto& f : p_.facts) fact_ptrs_.push_back(f.get());
}

Route KnowledgeState::RouteQuestion(const std::string& question, const std::vector<int64_t>& ids,
                                    std::optional<Routing> routing) const {
  return RouteQuestion(question, ActivationsOf(*p_.model, p_.layer, ids), routing);
}

Route KnowledgeState::RouteQuestion(const std::string& question, const PromptActivations& p,
                                    std::optional<Routing> routing) const {
  if (num_experts() == 0) return Route{};
  if (p_.options.scope_gate != ScopeGate::kFact || p_.options.method != EditMethod::kMoke) {
    return RouteByDeltas(p.a, routing);
  }
  Route r;
  r.threshold = p_.scope.subject_min;
  const ScopeDecision d = AskedFact(*p_.model, question, p.a, fact_ptrs_, p_.scope);
  r.subject_score = d.match.subject;
  r.relation_score = d.match.relation;
  if (!d.match.span.empty()) r.subject = question.substr(d.match.span.begin, d.match.span.end - d.match.span.begin);
  if (d.index < 0) return r;
  r.fact_version = p_.fact_version[d.index];
  if (!routing) {
    r.expert = p_.fact_expert[d.index];
    return r;
  }
  ScoreExperts(p.a, &r);  // the scope said whether; the requested routing mode says which expert
  r.expert = RankExperts(r, *routing);
  return r;
}

void KnowledgeState::ScoreExperts(const at::Tensor& a, Route* r) const {
  const int k = num_experts();
  // Dense experts a chunk at a time (kScoreChunkBytes of them), each chunk stacked into one product.
  const int64_t dense_bytes = p_.w_org.numel() * 4;
  const int chunk = static_cast<int>(std::max<int64_t>(1, kScoreChunkBytes / std::max<int64_t>(1, dense_bytes)));
  const at::Tensor token_mask = PromptTokenMask(a);
  r->deltas.clear();
  for (int first = 0; first < k; first += chunk) {
    std::vector<at::Tensor> dense;
    for (int i = first; i < std::min(k, first + chunk); ++i) dense.push_back(Tau(i));
    at::Tensor d = DeltaScores(a, at::stack(dense), token_mask)[0].to(at::kDouble).cpu();  // [chunk]
    r->deltas.insert(r->deltas.end(), d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
  }
  if (p_.router_w.defined()) {
    at::Tensor p =
        at::softmax(at::linear(Fingerprint(a).unsqueeze(0), p_.router_w, p_.router_b), -1)[0].to(at::kDouble).cpu();
    r->router_probs.assign(p.data_ptr<double>(), p.data_ptr<double>() + k);
  }
}

int KnowledgeState::RankExperts(const Route& r, Routing mode) const {
  double sum = 0;
  for (double x : r.deltas) sum += x;
  double best = -1;
  int expert = -1;
  for (int i = 0; i < static_cast<int>(r.deltas.size()); ++i) {
    const double act = sum > 0 ? r.deltas[i] / sum : 0;
    const double router = r.router_probs.empty() ? 0 : r.router_probs[i];
    double score = 0;
    switch (mode) {
      case Routing::kRouter: score = router; break;
      case Routing::kActivation: score = act; break;
      case Routing::kActivationRouter:
        score = (1 - p_.options.router_weight) * act + p_.options.router_weight * router;
        break;
    }
    if (score > best) {
      best = score;
      expert = i;
    }
  }
  return expert;
}

// The paper's gate and routing: Delta_i(x) per expert against per-expert thresholds (Eq. 8-9), then the
// router, the activation scores, or their weighted sum (Table 5). WISE: the strongest memory over its own
// threshold (retrieve mode).
Route KnowledgeState::RouteByDeltas(const at::Tensor& a, std::optional<Routing> routing) const {
  Route r;
  const int k = num_experts();
  ScoreExperts(a, &r);
  const std::vector<double>& thresholds = p_.thresholds;
  if (p_.options.method == EditMethod::kWise) {
    double best = -1;
    for (int i = 0; i < k; ++i) {
      if (r.deltas[i] >= thresholds[i] && r.deltas[i] > best) {
        best = r.deltas[i];
        r.expert = i;
        r.threshold = thresholds[i];
      }
    }
    return r;
  }
  // MoKE gate (Eq. 9): edited knowledge when some expert's Delta reaches its threshold.
  bool in_scope = false;
  double gate = std::numeric_limits<double>::infinity();
  for (int i = 0; i < k; ++i) {
    gate = std::min(gate, thresholds[i]);
    if (r.deltas[i] >= thresholds[i]) in_scope = true;
  }
  r.threshold = gate;
  if (in_scope) r.expert = RankExperts(r, routing.value_or(p_.options.routing));
  return r;
}

int64_t KnowledgeState::AnswerTokensOf(const Route& route) const {
  if (route.fact_version == 0 || route.expert < 0) return 0;
  auto it = std::lower_bound(p_.fact_version.begin(), p_.fact_version.end(), route.fact_version);
  if (it == p_.fact_version.end() || *it != route.fact_version) return 0;
  return p_.fact_answer_tokens[it - p_.fact_version.begin()];
}

std::optional<DownOverride> KnowledgeState::OverrideFor(const Route& route) const {
  if (route.expert < 0) return std::nullopt;
  return DownOverride{p_.layer, (p_.w_org + Tau(route.expert)).to(p_.model->dtype())};
}

// ---- KnowledgeView: the public, LibTorch-free face of a state. Byte-level checks (empty text, UTF-8,
// sizes) are the server's; here only what needs the tokenizer.

KnowledgeView::KnowledgeView(std::shared_ptr<const KnowledgeState> state) : state_(std::move(state)) {}

uint64_t KnowledgeView::version() const { return state_->version(); }

int KnowledgeView::num_experts() const { return state_->num_experts(); }

absl::StatusOr<Route> KnowledgeView::RouteOf(const std::string& question, std::optional<Routing> routing) const {
  Route route;
  MOKE_RETURN_IF_ERROR(GuardTorch("route", [&]() -> absl::Status {
    at::InferenceMode guard;
    MOKE_ASSIGN_OR_RETURN(auto ids, QuestionTokens(state_->model(), question));
    route = state_->RouteQuestion(question, ids, routing);
    return absl::OkStatus();
  }));
  return route;
}

absl::StatusOr<AskResult> KnowledgeView::Ask(const std::string& question, int max_new_tokens,
                                             std::optional<Routing> routing, const Budget& budget) const {
  absl::StatusOr<AskResult> out;
  MOKE_RETURN_IF_ERROR(GuardTorch("ask", [&]() -> absl::Status {
    at::InferenceMode guard;
    MOKE_ASSIGN_OR_RETURN(AskPlan plan, PlanAsk(*state_, question, max_new_tokens, routing));
    LlamaModel::Generation g = state_->model().Generate(plan.ids, plan.limit, plan.override.get(), budget);
    out = FinishAsk(*state_, std::move(plan), std::move(g), budget);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ScoreResult> KnowledgeView::Score(const std::string& prompt, const std::string& answer,
                                                 std::optional<Routing> routing, bool original) const {
  ScoreResult out;
  out.version = original ? 0 : state_->version();
  MOKE_RETURN_IF_ERROR(GuardTorch("score", [&] {
    at::InferenceMode guard;
    const LlamaModel& m = state_->model();
    auto ids = m.EncodePrompt(prompt);
    auto ans = m.EncodeContinuation(answer);
    const int64_t p = static_cast<int64_t>(ids.size());
    const int64_t n = static_cast<int64_t>(ans.size());
    if (n == 0) return absl::InvalidArgumentError("answer has no tokens");
    if (p + n > m.config().max_position_embeddings) {
      return absl::InvalidArgumentError("prompt and answer exceed the context window");
    }
    if (!original) out.route = state_->RouteQuestion(prompt, ids, routing);
    auto ov = original ? std::nullopt : state_->OverrideFor(out.route);
    std::vector<int64_t> all = ids;
    all.insert(all.end(), ans.begin(), ans.end());
    at::Tensor logits = m.Forward(at::tensor(all, m.id_options()).unsqueeze(0), nullptr, ov ? &*ov : nullptr)[0];
    at::Tensor pred = logits.narrow(0, p - 1, n);  // [n, V]
    at::Tensor target = at::tensor(ans, m.id_options());
    at::Tensor logp = at::log_softmax(pred, -1).gather(1, target.unsqueeze(1)).squeeze(1);
    at::Tensor argmax = pred.argmax(-1).cpu();
    out.answer_tokens = ans;
    out.argmax_tokens.assign(argmax.data_ptr<int64_t>(), argmax.data_ptr<int64_t>() + n);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) hits += out.argmax_tokens[i] == ans[i];
    out.token_accuracy = static_cast<double>(hits) / n;
    out.log_prob = logp.sum().item<double>();
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace moke
