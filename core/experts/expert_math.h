// The equations of MoKE (Cheng et al., ACL 2025) on plain tensors, so each one can be unit-tested on
// tiny inputs. Shapes are in the comments; K experts, D = d_model, F = d_ff, B rows, T tokens.
// Thread-safety: pure functions.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <vector>

namespace moke {

// Delta_i(x) (Eq. 4): || a(x) tau_i^T ||_2 per token, averaged over the tokens where token_mask is 1.
// a [B, T, F], taus [K, D, F] (tau_i = W_i - W_org), token_mask [B, T] (float 0/1) -> [B, K].
// Differentiable in taus.
at::Tensor DeltaScores(const at::Tensor& a, const at::Tensor& taus, const at::Tensor& token_mask);
// The same from the experts' changes to the layer output, out [B, K, T, D] = a tau^T (float32) -> [B, K].
at::Tensor DeltaOfOutputs(const at::Tensor& out, const at::Tensor& token_mask);

// Activation selection score (Eq. 2): S_i = (Delta_i(x_e) - Delta_i(x_o)) / Delta_i(x_e); 0 where
// Delta_i(x_e) is 0 (an empty expert recognises nothing).
std::vector<double> SelectionScores(const std::vector<double>& delta_edit, const std::vector<double>& delta_other);

// Expert for an edit (Eq. 3): argmax_i S_i if max S_i > eps, else a uniformly random expert (a new
// concept). Sets *new_concept accordingly. With `eligible` non-empty only the experts marked true are
// candidates (growth: full experts are not); -1 when none is. With every expert eligible the draw is
// the same as with `eligible` empty.
int SelectExpert(const std::vector<double>& scores, double eps, std::mt19937_64& rng, bool* new_concept,
                 const std::vector<bool>& eligible = {});

// Margin loss (Eq. 5) for the trained expert: d_e, d_o scalars (Delta on the edit and on unrelated input).
at::Tensor MarginLoss(const at::Tensor& d_e, const at::Tensor& d_o, double alpha, double beta, double gamma);
// Memory loss (Eq. 6): keeps a replayed edit x_m in its own expert j: max(0, gamma - (d_j - d_i)).
at::Tensor MemoryLoss(const at::Tensor& d_j, const at::Tensor& d_i, double gamma);

// K disjoint masks [K, D, F] (bool) each covering `ratio` of the entries, drawn from a seeded permutation.
at::Tensor DisjointMasks(int k, double ratio, int64_t rows, int64_t cols, uint64_t seed);
// One Bernoulli(ratio) mask [rows, cols] (bool), seeded (WISE's random gradient mask).
at::Tensor BernoulliMask(double ratio, int64_t rows, int64_t cols, uint64_t seed);

// EMR merging (REFERENCE section 6): taus [K, D, F] -> one unified delta, K masks and K rescalers.
struct EmrExperts {
  at::Tensor unified;  // [D, F]
  at::Tensor masks;    // [K, D, F] bool
  at::Tensor lambdas;  // [K] float
  // tau_k as EMR reconstructs it: lambda_k * M_k * unified. [D, F]
  at::Tensor Expert(int64_t k) const;
  // All K reconstructed taus [K, D, F].
  at::Tensor All() const;
  int64_t StorageBytes() const;  // unified (fp32) + bit-packed masks + scalars
};
EmrExperts EmrMerge(const at::Tensor& taus);

}  // namespace moke
