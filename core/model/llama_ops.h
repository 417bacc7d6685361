// The LLaMA building blocks shared by the one-request forward (llama_model.cc) and the batched decoder
// (batch_decode.cc), so that both compute the same numbers the same way. Include only from .cc files
// (ATen/ATen.h is a heavy header).
#pragma once

#include <ATen/ATen.h>

namespace moke::ops {

// RMSNorm over the last dimension, computed in float32 and returned in x's dtype, times the weight.
inline at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return y.to(x.scalar_type()) * w;
}

// [x1, x2] -> [-x2, x1] over the last dimension (rotary embeddings).
inline at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// Rotary embeddings of heads x [..., hd] at positions whose tables cos, sin broadcast against x.
inline at::Tensor Rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return x * cos + RotateHalf(x) * sin;
}

// silu(gate) * up of the fused product [..., 2 F] (gate first).
inline at::Tensor SwiGlu(const at::Tensor& gate_up) {
  const int64_t f = gate_up.size(-1) / 2;
  return at::silu(gate_up.narrow(-1, 0, f)) * gate_up.narrow(-1, f, f);
}

}  // namespace moke::ops
