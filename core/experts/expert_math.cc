#include "core/experts/expert_math.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <numeric>

namespace moke {

at::Tensor DeltaScores(const at::Tensor& a, const at::Tensor& taus, const at::Tensor& token_mask) {
  // [B, T, F] x [K, D, F] -> [B, K, T, D]
  return DeltaOfOutputs(at::einsum("btf,kdf->bktd", {a.to(taus.scalar_type()), taus}), token_mask);
}

at::Tensor DeltaOfOutputs(const at::Tensor& out, const at::Tensor& token_mask) {
  at::Tensor norms = out.pow(2).sum(-1).clamp_min(1e-20).sqrt();  // [B, K, T]
  at::Tensor m = token_mask.to(norms.scalar_type()).unsqueeze(1);   // [B, 1, T]
  return (norms * m).sum(-1) / m.sum(-1).clamp_min(1.0);             // [B, K]
}

std::vector<double> SelectionScores(const std::vector<double>& delta_edit, const std::vector<double>& delta_other) {
  std::vector<double> s(delta_edit.size(), 0.0);
  for (size_t i = 0; i < s.size(); ++i) {
    if (delta_edit[i] > 1e-12) s[i] = (delta_edit[i] - delta_other[i]) / delta_edit[i];
  }
  return s;
}

int SelectExpert(const std::vector<double>& scores, double eps, std::mt19937_64& rng, bool* new_concept,
                 const std::vector<bool>& eligible) {
  std::vector<int> candidates;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (eligible.empty() || (i < eligible.size() && eligible[i])) candidates.push_back(static_cast<int>(i));
  }
  if (candidates.empty()) return -1;
  int best = candidates[0];
  for (int i : candidates) {
    if (scores[i] > scores[best]) best = i;
  }
  if (scores[best] > eps) {
    *new_concept = false;
    return best;
  }
  *new_concept = true;
  std::uniform_int_distribution<int> pick(0, static_cast<int>(candidates.size()) - 1);
  return candidates[pick(rng)];
}

at::Tensor MarginLoss(const at::Tensor& d_e, const at::Tensor& d_o, double alpha, double beta, double gamma) {
  return at::relu(beta - d_e) + at::relu(d_o - alpha) + at::relu(gamma - (d_e - d_o));
}

at::Tensor MemoryLoss(const at::Tensor& d_j, const at::Tensor& d_i, double gamma) {
  return at::relu(gamma - (d_j - d_i));
}

at::Tensor DisjointMasks(int k, double ratio, int64_t rows, int64_t cols, uint64_t seed) {
  const int64_t n = rows * cols;
  std::vector<int64_t> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  const int64_t per = static_cast<int64_t>(ratio * static_cast<double>(n));
  at::Tensor masks = at::zeros({k, n}, at::kBool);
  auto acc = masks.accessor<bool, 2>();
  for (int i = 0; i < k; ++i) {
    for (int64_t j = i * per; j < (i + 1) * per && j < n; ++j) acc[i][perm[j]] = true;
  }
  return masks.view({k, rows, cols});
}

at::Tensor BernoulliMask(double ratio, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution coin(ratio);
  at::Tensor m = at::zeros({rows * cols}, at::kBool);
  auto acc = m.accessor<bool, 1>();
  for (int64_t j = 0; j < rows * cols; ++j) acc[j] = coin(rng);
  return m.view({rows, cols});
}

at::Tensor EmrExperts::Expert(int64_t k) const { return lambdas[k] * masks[k].to(unified.scalar_type()) * unified; }

at::Tensor EmrExperts::All() const {
  return lambdas.view({-1, 1, 1}) * masks.to(unified.scalar_type()) * unified.unsqueeze(0);
}

int64_t EmrExperts::StorageBytes() const {
  return unified.numel() * 4 + masks.size(0) * ((unified.numel() + 7) / 8) + lambdas.numel() * 4;
}

EmrExperts EmrMerge(const at::Tensor& taus) {
  at::NoGradGuard no_grad;
  EmrExperts e;
  at::Tensor g = at::sign(taus.sum(0));                               // [D, F]
  at::Tensor agree = (at::sign(taus) == g.unsqueeze(0)) & (taus != 0);  // [K, D, F]
  at::Tensor mag = (taus.abs() * agree.to(taus.scalar_type())).amax(0); // [D, F]
  e.unified = g * mag;
  e.masks = (taus * e.unified.unsqueeze(0)) > 0;
  const int64_t k = taus.size(0);
  at::Tensor num = taus.abs().view({k, -1}).sum(1);
  at::Tensor den = (e.masks.to(taus.scalar_type()) * e.unified.abs().unsqueeze(0)).view({k, -1}).sum(1);
  e.lambdas = at::where(den > 0, num / den.clamp_min(1e-30), at::zeros_like(num));
  return e;
}

}  // namespace moke
