#include "core/editor/knowledge_state.h"

#include <ATen/ATen.h>

#include <limits>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"

namespace moke {

at::Tensor Fingerprint(const at::Tensor& a) {
  const int64_t t = a.size(1);
  at::Tensor pooled = t > 1 ? a[0].narrow(0, 1, t - 1).mean(0) : a[0].mean(0);
  pooled = pooled.to(at::kFloat);
  return pooled / pooled.norm().clamp_min(1e-12);
}

int KnowledgeState::num_experts() const {
  if (!emr.empty()) {
    int n = 0;
    for (const auto& g : emr) n += static_cast<int>(g.lambdas.size(0));
    return n;
  }
  return taus.defined() ? static_cast<int>(taus.size(0)) : 0;
}

at::Tensor KnowledgeState::Tau(int64_t k) const {
  return emr.empty() ? taus[k] : emr[k / emr_group].Expert(k % emr_group);
}

at::Tensor KnowledgeState::AllTaus() const {
  if (emr.empty()) return taus;
  std::vector<at::Tensor> all;
  for (const auto& g : emr) all.push_back(g.All());
  return at::cat(all, 0);
}

Route KnowledgeState::RouteFromActivations(const at::Tensor& a, std::optional<Routing> routing) const {
  Route r;
  const int k = num_experts();
  if (k == 0) return r;
  if (options.scope_gate == ScopeGate::kNearest && options.method == EditMethod::kMoke) {
    r.threshold = min_cosine;
    if (!fingerprints.defined() || fingerprints.size(0) == 0) return r;
    at::Tensor f = Fingerprint(a);
    at::Tensor cos = at::mv(fingerprints, f);
    const int64_t best = cos.argmax().item<int64_t>();
    const double c = cos[best].item<double>();
    const double nearest_negative = negatives.defined() ? at::mv(negatives, f).max().item<double>() : -1.0;
    r.nearest_cosine = c;
    if (c >= min_cosine && c > nearest_negative) r.expert = fingerprint_expert[best];
    return r;
  }

  at::Tensor mask = at::ones({1, a.size(1)}, at::TensorOptions().dtype(at::kFloat).device(a.device()));
  if (a.size(1) > 1) mask.index_put_({0, 0}, 0.0);  // BOS carries no information about the prompt
  at::Tensor d = DeltaScores(a, AllTaus(), mask)[0].to(at::kDouble).cpu();  // [K]
  r.deltas.assign(d.data_ptr<double>(), d.data_ptr<double>() + k);
  if (router_w.defined()) {
    at::Tensor p = at::softmax(at::linear(Fingerprint(a).unsqueeze(0), router_w, router_b), -1)[0].to(at::kDouble).cpu();
    r.router_probs.assign(p.data_ptr<double>(), p.data_ptr<double>() + k);
  }

  if (options.method == EditMethod::kWise) {
    // Retrieve mode: the strongest memory above its own threshold.
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
  if (!in_scope) return r;
  const Routing mode = routing.value_or(options.routing);
  double sum = 0;
  for (double x : r.deltas) sum += x;
  double best = -1;
  for (int i = 0; i < k; ++i) {
    const double act = sum > 0 ? r.deltas[i] / sum : 0;
    const double router = r.router_probs.empty() ? 0 : r.router_probs[i];
    double score = 0;
    switch (mode) {
      case Routing::kRouter: score = router; break;
      case Routing::kActivation: score = act; break;
      case Routing::kActivationRouter: score = (1 - options.router_weight) * act + options.router_weight * router; break;
    }
    if (score > best) {
      best = score;
      r.expert = i;
    }
  }
  return r;
}

Route KnowledgeState::RoutePrompt(const std::vector<int64_t>& prompt_ids, std::optional<Routing> routing) const {
  at::Tensor ids = at::tensor(prompt_ids, model->id_options()).unsqueeze(0);
  return RouteFromActivations(model->RunToDownProj(ids, layer).a, routing);
}

std::optional<DownOverride> KnowledgeState::OverrideFor(const Route& route) const {
  if (route.expert < 0) return std::nullopt;
  return DownOverride{layer, (w_org + Tau(route.expert)).to(model->dtype())};
}

// ---- KnowledgeView: the public, LibTorch-free face of a state. ----

KnowledgeView::KnowledgeView(std::shared_ptr<const KnowledgeState> state) : state_(std::move(state)) {}

uint64_t KnowledgeView::version() const { return state_->version; }

absl::StatusOr<Route> KnowledgeView::RouteOf(const std::string& question, std::optional<Routing> routing) const {
  if (question.empty()) return absl::InvalidArgumentError("question is empty");
  if (!IsValidUtf8(question)) return absl::InvalidArgumentError("question is not valid UTF-8");
  Route route;
  MOKE_RETURN_IF_ERROR(GuardTorch("route", [&] {
    at::InferenceMode guard;
    auto ids = state_->model->EncodePrompt(question);
    if (static_cast<int64_t>(ids.size()) > state_->model->config().max_position_embeddings) {
      return absl::InvalidArgumentError("question is longer than the context window");
    }
    route = state_->RoutePrompt(ids, routing);
    return absl::OkStatus();
  }));
  return route;
}

absl::StatusOr<AskResult> KnowledgeView::Ask(const std::string& question, int max_new_tokens,
                                             std::optional<Routing> routing, const Budget& budget) const {
  if (question.empty()) return absl::InvalidArgumentError("question is empty");
  if (!IsValidUtf8(question)) return absl::InvalidArgumentError("question is not valid UTF-8");
  if (max_new_tokens <= 0) max_new_tokens = state_->options.max_new_tokens;
  AskResult out;
  out.version = state_->version;
  MOKE_RETURN_IF_ERROR(GuardTorch("ask", [&] {
    at::InferenceMode guard;
    const LlamaModel& m = *state_->model;
    auto ids = m.EncodePrompt(question);
    if (static_cast<int64_t>(ids.size()) >= m.config().max_position_embeddings) {
      return absl::InvalidArgumentError(absl::StrCat("question has ", ids.size(), " tokens; the context window is ",
                                                     m.config().max_position_embeddings));
    }
    out.route = state_->RoutePrompt(ids, routing);  // once per request, kept for every token
    auto ov = state_->OverrideFor(out.route);
    LlamaModel::Generation g = m.Generate(ids, max_new_tokens, ov ? &*ov : nullptr, budget);
    if (g.stop == LlamaModel::Stop::kBudget) return budget.Check("ask");
    out.tokens = std::move(g.tokens);
    out.stop = g.stop == LlamaModel::Stop::kEndOfSequence ? AskStop::kEndOfAnswer : AskStop::kTokenLimit;
    out.answer = m.Decode(out.tokens);
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<ScoreResult> KnowledgeView::Score(const std::string& prompt, const std::string& answer,
                                                 std::optional<Routing> routing, bool original) const {
  if (prompt.empty() || answer.empty()) return absl::InvalidArgumentError("prompt and answer must be non-empty");
  if (!IsValidUtf8(prompt) || !IsValidUtf8(answer)) return absl::InvalidArgumentError("text is not valid UTF-8");
  ScoreResult out;
  out.version = original ? 0 : state_->version;
  MOKE_RETURN_IF_ERROR(GuardTorch("score", [&] {
    at::InferenceMode guard;
    const LlamaModel& m = *state_->model;
    auto ids = m.EncodePrompt(prompt);
    auto ans = m.EncodeContinuation(answer);
    const int64_t p = static_cast<int64_t>(ids.size());
    if (p + static_cast<int64_t>(ans.size()) > m.config().max_position_embeddings) {
      return absl::InvalidArgumentError("prompt and answer exceed the context window");
    }
    if (!original) out.route = state_->RoutePrompt(ids, routing);
    auto ov = original ? std::nullopt : state_->OverrideFor(out.route);
    std::vector<int64_t> all = ids;
    all.insert(all.end(), ans.begin(), ans.end());
    at::Tensor logits = m.Forward(at::tensor(all, m.id_options()).unsqueeze(0), nullptr, ov ? &*ov : nullptr)[0];
    const int64_t n = static_cast<int64_t>(ans.size());
    at::Tensor pred = logits.narrow(0, p - 1, n);                  // [n, V]
    at::Tensor target = at::tensor(ans, m.id_options());
    at::Tensor logp = at::log_softmax(pred, -1).gather(1, target.unsqueeze(1)).squeeze(1);
    at::Tensor argmax = pred.argmax(-1).cpu();
    out.answer_tokens = ans;
    out.argmax_tokens.assign(argmax.data_ptr<int64_t>(), argmax.data_ptr<int64_t>() + n);
    int64_t hits = 0;
    for (int64_t i = 0; i < n; ++i) hits += out.argmax_tokens[i] == ans[i];
    out.token_accuracy = n ? static_cast<double>(hits) / n : 0;
    out.log_prob = logp.sum().item<double>();
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace moke
