#include "core/editor/trainer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/common/status_macros.h"
#include "core/experts/expert_math.h"

namespace moke {

namespace {

constexpr int64_t kPad = 0;

// Right-padded rows with the positions that matter.
struct Batch {
  at::Tensor ids;         // [B, T] int64
  at::Tensor label_mask;  // [B, T] float: 1 where the position predicts an answer token (shifted)
  at::Tensor labels;      // [B, T] int64: the answer token predicted at that position
  at::Tensor q_mask;      // [B, T] float: 1 on the question's tokens
};

Batch MakeBatch(const std::vector<TrainingRow>& rows, c10::Device device) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t t = 1;
  for (const auto& r : rows) t = std::max<int64_t>(t, r.ids.size());
  at::Tensor ids = at::full({n, t}, kPad, at::kLong);
  at::Tensor lm = at::zeros({n, t}, at::kFloat);
  at::Tensor lb = at::zeros({n, t}, at::kLong);
  at::Tensor qm = at::zeros({n, t}, at::kFloat);
  auto ia = ids.accessor<int64_t, 2>();
  auto la = lm.accessor<float, 2>();
  auto ba = lb.accessor<int64_t, 2>();
  auto qa = qm.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const TrainingRow& r = rows[i];
    for (size_t j = 0; j < r.ids.size(); ++j) ia[i][j] = r.ids[j];
    for (int64_t j = r.answer_begin; j < static_cast<int64_t>(r.ids.size()); ++j) {
      la[i][j - 1] = 1;
      ba[i][j - 1] = r.ids[j];
    }
    for (int64_t j = r.q_begin; j < r.q_end; ++j) qa[i][j] = 1;
  }
  return Batch{ids.to(device), lm.to(device), lb.to(device), qm.to(device)};
}

// Mean over rows of the mean token cross-entropy on answer positions. logits [B, T, V].
at::Tensor AnswerLoss(const at::Tensor& logits, const Batch& b) {
  at::Tensor logp = at::log_softmax(logits, -1).gather(2, b.labels.unsqueeze(2)).squeeze(2);  // [B, T]
  at::Tensor per_row = -(logp * b.label_mask).sum(1) / b.label_mask.sum(1).clamp_min(1.0);
  return per_row.mean();
}

}  // namespace

absl::StatusOr<TrainedExpert> TrainExpert(const TrainingProblem& p, const Budget& budget) {
  const LlamaModel& model = *p.model;
  const EditorOptions& opt = *p.options;
  for (const TrainingRow& r : p.rows) {
    if (static_cast<int64_t>(r.ids.size()) > model.config().max_position_embeddings) {
      return absl::InvalidArgumentError("question and answer exceed the context window");
    }
  }
  Batch b = MakeBatch(p.rows, model.device());
  LlamaModel::Split split;
  {
    at::NoGradGuard ng;
    split = model.RunToDownProj(b.ids, p.layer);  // the frozen prefix: once per edit
  }
  const at::Tensor a_all = split.a.to(at::kFloat);
  const at::Tensor maskf = p.mask.to(at::kFloat);
  at::Tensor replay_mask, replay_tau_j;
  if (p.replay) {
    replay_mask = PromptTokenMask(p.replay->a);
    replay_tau_j = p.replay->tau_j.unsqueeze(0);
  }

  TrainedExpert out;
  at::Tensor tau = p.tau;
  double prev_loss = std::numeric_limits<double>::infinity();
  int it = 0;
  for (; it < opt.max_iterations; ++it) {
    MOKE_RETURN_IF_ERROR(budget.Check("edit"));
    at::Tensor t = tau.detach().requires_grad_(true);
    at::Tensor w = p.w_org + t;
    at::Tensor logits;
    if (opt.frozen_prefix) {
      logits = model.RunFromDownProj(split, p.layer, w);
    } else {
      DownOverride ov{p.layer, w};
      logits = model.Forward(b.ids, nullptr, &ov);  // the peer's way: the whole model every iteration
    }
    at::Tensor loss = AnswerLoss(logits, b);
    if (opt.margin_loss) {
      at::Tensor d_e = DeltaScores(a_all, t.unsqueeze(0), b.q_mask).mean();
      at::Tensor d_o = DeltaScores(p.unrelated.a, t.unsqueeze(0), p.unrelated.mask).mean();
      loss = loss + MarginLoss(d_e, d_o, opt.alpha, opt.beta, opt.gamma);
    }
    if (p.replay) {
      at::Tensor d_j;
      {
        at::NoGradGuard ng;
        d_j = DeltaScores(p.replay->a, replay_tau_j, replay_mask).mean();
      }
      at::Tensor d_i = DeltaScores(p.replay->a, t.unsqueeze(0), replay_mask).mean();
      loss = loss + MemoryLoss(d_j, d_i, opt.gamma);
    }
    loss.backward();
    out.loss = loss.item<double>();
    {
      at::NoGradGuard ng;
      tau = (t - opt.lr * t.grad() * maskf).clamp(-opt.clamp, opt.clamp).detach();
    }
    if (out.loss <= opt.stop_loss && std::abs(prev_loss - out.loss) <= opt.stop_delta) {
      ++it;
      break;
    }
    prev_loss = out.loss;
  }
  out.tau = tau;
  out.iterations = it;
  return out;
}

}  // namespace moke
