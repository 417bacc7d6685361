#include "core/experts/router.h"

#include <ATen/ATen.h>

#include <cmath>

namespace moke {

Router::Router(int num_experts, int64_t dim, c10::Device device) {
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  w_ = at::zeros({num_experts, dim}, opts);
  b_ = at::zeros({num_experts}, opts);
  mw_ = at::zeros_like(w_);
  vw_ = at::zeros_like(w_);
  mb_ = at::zeros_like(b_);
  vb_ = at::zeros_like(b_);
}

at::Tensor Router::Probs(const at::Tensor& features) const {
  return at::softmax(at::linear(features.to(at::kFloat), w_, b_), -1);
}

void Router::Train(const at::Tensor& features, const at::Tensor& labels, int steps, double lr) {
  const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
  at::Tensor x = features.to(at::kFloat);
  for (int s = 0; s < steps; ++s) {
    at::Tensor w = w_.detach().requires_grad_(true);
    at::Tensor b = b_.detach().requires_grad_(true);
    at::Tensor loss = at::cross_entropy_loss(at::linear(x, w, b), labels);
    loss.backward();
    ++step_;
    at::NoGradGuard no_grad;
    const double c1 = 1 - std::pow(b1, static_cast<double>(step_)), c2 = 1 - std::pow(b2, static_cast<double>(step_));
    auto adam = [&](at::Tensor& p, at::Tensor& m, at::Tensor& v, const at::Tensor& g) {
      m.mul_(b1).add_(g, 1 - b1);
      v.mul_(b2).addcmul_(g, g, 1 - b2);
      p = p - lr * (m / c1) / ((v / c2).sqrt() + eps);
    };
    adam(w_, mw_, vw_, w.grad());
    adam(b_, mb_, vb_, b.grad());
  }
}

Router Router::Clone() const {
  Router r;
  r.w_ = w_.clone();
  r.b_ = b_.clone();
  r.mw_ = mw_.clone();
  r.vw_ = vw_.clone();
  r.mb_ = mb_.clone();
  r.vb_ = vb_.clone();
  r.step_ = step_;
  return r;
}

void Router::AddExpert() {
  auto row = [](const at::Tensor& t) { return at::cat({t, at::zeros({1, t.size(1)}, t.options())}, 0); };
  auto one = [](const at::Tensor& t) { return at::cat({t, at::zeros({1}, t.options())}, 0); };
  w_ = row(w_);
  mw_ = row(mw_);
  vw_ = row(vw_);
  b_ = one(b_);
  mb_ = one(mb_);
  vb_ = one(vb_);
}

void Router::SetTensors(const std::vector<at::Tensor>& t, int64_t step) {
  w_ = t[0];
  b_ = t[1];
  mw_ = t[2];
  vw_ = t[3];
  mb_ = t[4];
  vb_ = t[5];
  step_ = step;
}

}  // namespace moke
