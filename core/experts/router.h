// The projection router f_p (paper Eq. 7): a linear map from a prompt representation (the mean-pooled,
// L2-normalised input of the edit layer's down-projection) to K expert logits, trained with
// cross-entropy and Adam after each edit.
// Thread-safety: not thread-safe; the editor thread owns the live router and publishes copies.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace moke {

class Router {
 public:
  Router() = default;
  Router(int num_experts, int64_t dim, c10::Device device);
  // probs [N, K] for features [N, F].
  at::Tensor Probs(const at::Tensor& features) const;
  // `steps` Adam steps of CE over (features [N, F], labels [N] int64).
  void Train(const at::Tensor& features, const at::Tensor& labels, int steps, double lr);
  Router Clone() const;
  // Adds one expert (a zero row, zero Adam moments): growth of the expert bank.
  void AddExpert();
  int num_experts() const { return w_.defined() ? static_cast<int>(w_.size(0)) : 0; }
  bool defined() const { return w_.defined(); }

  // State, for snapshots.
  std::vector<at::Tensor> Tensors() const { return {w_, b_, mw_, vw_, mb_, vb_}; }
  void SetTensors(const std::vector<at::Tensor>& t, int64_t step);
  int64_t step() const { return step_; }

 private:
  at::Tensor w_, b_;                 // [K, F], [K]
  at::Tensor mw_, vw_, mb_, vb_;     // Adam moments
  int64_t step_ = 0;
};

}  // namespace moke
