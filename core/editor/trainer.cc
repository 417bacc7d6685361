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
// How many iterations an accelerator runs between two reads of the stopping test (reading waits for the
// device to finish; in between the host queues work ahead). The CPU reads it every iteration (free).
constexpr int kDeviceSyncEvery = 8;

// Right-padded rows with the positions that matter.
struct Batch {
  at::Tensor ids;         // [B, T] int64
  at::Tensor q_mask;      // [B, T] float: 1 on the question's tokens
  at::Tensor positions;   // [N] int64: flattened b * T + t of each position that predicts an answer token
  at::Tensor labels;      // [N] int64: the answer token predicted there
  at::Tensor row_count;   // [B] float: answer positions per row (at least 1)
};

Batch MakeBatch(const std::vector<TrainingRow>& rows, c10::Device device) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t t = 1;
  for (const auto& r : rows) t = std::max<int64_t>(t, r.ids.size());
  at::Tensor ids = at::full({n, t}, kPad, at::kLong);
  at::Tensor qm = at::zeros({n, t}, at::kFloat);
  at::Tensor count = at::zeros({n}, at::kFloat);
  std::vector<int64_t> positions, labels;
  auto ia = ids.accessor<int64_t, 2>();
  auto qa = qm.accessor<float, 2>();
  auto ca = count.accessor<float, 1>();
  for (int64_t i = 0; i < n; ++i) {
    const TrainingRow& r = rows[i];
    for (size_t j = 0; j < r.ids.size(); ++j) ia[i][j] = r.ids[j];
    for (int64_t j = r.answer_begin; j < static_cast<int64_t>(r.ids.size()); ++j) {
      positions.push_back(i * t + j - 1);
      labels.push_back(r.ids[j]);
    }
    ca[i] = std::max<int64_t>(1, static_cast<int64_t>(r.ids.size()) - r.answer_begin);
    for (int64_t j = r.q_begin; j < r.q_end; ++j) qa[i][j] = 1;
  }
  return Batch{ids.to(device), qm.to(device), at::tensor(positions, at::kLong).to(device),
               at::tensor(labels, at::kLong).to(device), count.to(device)};
}

// Mean over rows of the mean token cross-entropy on answer positions, or, with `row_weights` ([B], summing
// to 1), their weighted sum. logits [N, V] at b.positions.
at::Tensor AnswerLoss(const at::Tensor& logits, const Batch& b, const at::Tensor& row_weights) {
  at::Tensor logp = at::log_softmax(logits, -1).gather(1, b.labels.unsqueeze(1)).squeeze(1);  // [N]
  // Back on the [B, T] grid (0 elsewhere), so that each row sums in position order.
  at::Tensor grid = at::zeros({b.ids.numel()}, logp.options()).scatter(0, b.positions, logp).view(b.ids.sizes());
  const at::Tensor per_row = -grid.sum(1) / b.row_count;
  return row_weights.defined() ? (per_row * row_weights).sum() : per_row.mean();
}

// TrainingProblem::edit_rows as row weights: each of the edit's rows 1 / edit_rows, each rehearsed row 1,
// over the number of edits. Undefined when there is nothing rehearsed (a plain mean).
at::Tensor EditWeights(size_t rows, size_t edit_rows, c10::Device device) {
  if (edit_rows == 0 || edit_rows >= rows) return {};
  const double edits = 1.0 + static_cast<double>(rows - edit_rows);
  std::vector<float> w(rows, static_cast<float>(1.0 / edits));
  for (size_t i = 0; i < edit_rows; ++i) w[i] = static_cast<float>(1.0 / (static_cast<double>(edit_rows) * edits));
  return at::tensor(w).to(device);
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
  const c10::Device device = model.device();
  Batch b = MakeBatch(p.rows, device);
  const at::Tensor row_weights = EditWeights(p.rows.size(), p.edit_rows, device);

  // Everything that does not depend on the iterate, once per edit: the frozen prefix, the residual
  // stream with the original weight (the iterate adds a(x) tau^T to it), the replayed edit's own Delta.
  LlamaModel::Split split;
  at::Tensor base;  // [B, T, D] h_mid + a W_org^T
  {
    at::NoGradGuard ng;
    split = model.RunToDownProj(b.ids, p.layer);
    base = split.h_mid + at::linear(split.a, p.w_org.to(split.a.scalar_type()));
  }
  const at::Tensor a_all = split.a.to(at::kFloat);
  const at::Tensor maskf = p.mask.to(at::kFloat);
  at::Tensor replay_mask, d_j;
  if (p.replay) {
    at::NoGradGuard ng;
    replay_mask = PromptTokenMask(p.replay->a);
    d_j = DeltaScores(p.replay->a, p.replay->tau_j.unsqueeze(0), replay_mask).mean();
  }

  // The stopping rule runs on the device: after the iteration whose loss is small and flat, the iterate,
  // the reported loss and the count stay as they are. The host reads it every `sync_every` iterations.
  const int sync_every = device.is_cpu() ? 1 : kDeviceSyncEvery;
  const auto dopt = at::TensorOptions().dtype(at::kDouble).device(device);
  at::Tensor stopped = at::zeros({}, dopt.dtype(at::kBool));
  at::Tensor prev_loss = at::full({}, std::numeric_limits<double>::infinity(), dopt);
  at::Tensor last_loss = at::zeros({}, dopt);
  at::Tensor iterations = at::zeros({}, dopt.dtype(at::kLong));

  at::Tensor tau = p.tau;
  for (int it = 0; it < opt.max_iterations; ++it) {
    MOKE_RETURN_IF_ERROR(budget.Check("edit"));
    at::Tensor t = tau.detach().requires_grad_(true);
    at::Tensor logits;
    at::Tensor y;  // [B, T, D] a(x) tau^T: the iterate's change to the edit layer's output
    if (opt.frozen_prefix) {
      y = at::linear(split.a, t.to(split.a.scalar_type()));
      logits = model.RunAbove(base + y, p.layer, b.positions);
    } else {
      DownOverride ov{p.layer, p.w_org + t};
      logits = model.Forward(b.ids, nullptr, &ov);  // the peer's way: the whole model every iteration
      logits = logits.reshape({-1, logits.size(-1)}).index_select(0, b.positions);
    }
    at::Tensor loss = AnswerLoss(logits, b, row_weights);
    if (opt.margin_loss) {
      at::Tensor d_e = y.defined() ? DeltaOfOutputs(y.to(at::kFloat).unsqueeze(1), b.q_mask).mean()
                                   : DeltaScores(a_all, t.unsqueeze(0), b.q_mask).mean();
      at::Tensor d_o = DeltaScores(p.unrelated.a, t.unsqueeze(0), p.unrelated.mask).mean();
      loss = loss + MarginLoss(d_e, d_o, opt.alpha, opt.beta, opt.gamma);
    }
    if (p.replay) {
      at::Tensor d_i = DeltaScores(p.replay->a, t.unsqueeze(0), replay_mask).mean();
      loss = loss + MemoryLoss(d_j, d_i, opt.gamma);
    }
    loss.backward();
    {
      at::NoGradGuard ng;
      const at::Tensor next = (t - opt.lr * t.grad() * maskf).clamp(-opt.clamp, opt.clamp);
      const at::Tensor l = loss.detach().to(at::kDouble);
      tau = at::where(stopped, tau, next);
      last_loss = at::where(stopped, last_loss, l);
      iterations = iterations + at::logical_not(stopped).to(at::kLong);
      stopped = stopped.logical_or(l.le(opt.stop_loss).logical_and((prev_loss - l).abs().le(opt.stop_delta)));
      prev_loss = l;
    }
    if ((it + 1) % sync_every == 0 && stopped.item<bool>()) break;
  }
  TrainedExpert out;
  out.tau = tau;
  const at::Tensor tail = at::stack({last_loss, iterations.to(at::kDouble)}).cpu();  // one read
  out.loss = tail[0].item<double>();
  out.iterations = static_cast<int>(tail[1].item<double>());
  return out;
}

}  // namespace moke
