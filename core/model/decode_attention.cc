#include "core/model/decode_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace moke::ops {

namespace {

bool LoopFits(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

}  // namespace

bool DecodeAttentionLoopFits(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  // The loop has no backward: a forward that trains goes to the products.
  const bool grad = q.requires_grad() || k.requires_grad() || v.requires_grad();
  return !grad && LoopFits(q) && LoopFits(k) && LoopFits(v) && q.stride(2) == 1 && k.stride(3) == 1 &&
         v.stride(3) == 1 && k.stride(2) == v.stride(2);
}

at::Tensor DecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::vector<int64_t>& lengths, const at::Tensor& masked) {
  if (DecodeAttentionLoopFits(q, k, v)) return DecodeAttentionLoop(q, k, v, lengths);
  return DecodeAttentionProducts(q, k, v, lengths, masked);
}

at::Tensor DecodeMask(const std::vector<int64_t>& lengths, const at::Device& device) {
  const int64_t n = static_cast<int64_t>(lengths.size());
  const int64_t span = *std::max_element(lengths.begin(), lengths.end());
  const auto ids = at::TensorOptions().dtype(at::kLong).device(device);
  return (at::arange(span, ids).unsqueeze(0) >= at::tensor(lengths, ids).unsqueeze(1)).view({n, 1, 1, span});
}

at::Tensor DecodeAttentionProducts(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const std::vector<int64_t>& lengths, const at::Tensor& masked) {
  const int64_t n = q.size(0), H = q.size(1), hd = q.size(2), KV = k.size(1), G = H / KV;
  TORCH_CHECK(static_cast<int64_t>(lengths.size()) == n && n >= 1 && n <= k.size(0),
              "DecodeAttention: the shapes do not agree");
  const auto [shortest, span] = std::minmax_element(lengths.begin(), lengths.end());
  at::Tensor kk = k.narrow(0, 0, n).narrow(2, 0, *span), vv = v.narrow(0, 0, n).narrow(2, 0, *span);
  // Grouped-query attention as LlamaModel::AttentionHeads computes it: the G query heads of one kv head as
  // one [G, hd] matrix (head h reads kv head h / G), one product per kv head.
  at::Tensor scores = at::matmul(q.reshape({n, KV, G, hd}), kk.transpose(-2, -1)).view({n, H, 1, *span}).to(at::kFloat) /
                      std::sqrt(static_cast<double>(hd));
  if (*shortest < *span) {  // rows of different lengths: past its own, each row's scores are masked
    scores = scores.masked_fill(masked.defined() ? masked : DecodeMask(lengths, q.device()),
                                -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = scores.softmax(-1).to(q.scalar_type());
  return at::matmul(probs.view({n, KV, G, *span}), vv).reshape({n, H * hd});
}

namespace {

// One row's G query heads that read one kv head: out[g] = softmax_t(q[g] . k[t] / scale) v[t] over t < len.
// kHd > 0 fixes the head size at compile time (the inner products unroll); 0 reads it from `hd`.
template <int kHd>
void AttendGroup(const float* const* q, int64_t G, const float* k, const float* v, int64_t t_stride, int64_t len,
                 int64_t hd_runtime, float scale, float* scores, float* const* out) {
  const int64_t hd = kHd > 0 ? kHd : hd_runtime;
  for (int64_t g = 0; g < G; ++g) {
    const float* qg = q[g];
    float* p = scores + g * len;
    float top = -std::numeric_limits<float>::infinity();
    for (int64_t t = 0; t < len; ++t) {
      const float* kt = k + t * t_stride;
      float dot = 0.0f;
      for (int64_t d = 0; d < hd; ++d) dot += qg[d] * kt[d];
      p[t] = dot / scale;
      top = std::max(top, p[t]);
    }
    float sum = 0.0f;
    for (int64_t t = 0; t < len; ++t) {
      p[t] = std::exp(p[t] - top);
      sum += p[t];
    }
    for (int64_t t = 0; t < len; ++t) p[t] /= sum;
  }
  for (int64_t g = 0; g < G; ++g) std::fill(out[g], out[g] + hd, 0.0f);
  for (int64_t t = 0; t < len; ++t) {
    const float* vt = v + t * t_stride;
    for (int64_t g = 0; g < G; ++g) {
      const float w = scores[g * len + t];
      float* o = out[g];
      for (int64_t d = 0; d < hd; ++d) o[d] += w * vt[d];
    }
  }
}

}  // namespace

at::Tensor DecodeAttentionLoop(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::vector<int64_t>& lengths) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 4 && v.sizes() == k.sizes(),
              "DecodeAttention: q must be [n, H, hd], k and v [rows, KV, capacity, hd]");
  TORCH_CHECK(DecodeAttentionLoopFits(q, k, v),
              "DecodeAttention: the loop takes float32 CPU tensors that need no gradient, each head's numbers "
              "adjacent, k and v laid out alike");
  const int64_t n = q.size(0), H = q.size(1), hd = q.size(2);
  const int64_t KV = k.size(1), cap = k.size(2);
  TORCH_CHECK(k.size(3) == hd && H % KV == 0 && n <= k.size(0) && static_cast<int64_t>(lengths.size()) == n,
              "DecodeAttention: the shapes do not agree");
  const int64_t G = H / KV;
  const float scale = static_cast<float>(std::sqrt(static_cast<double>(hd)));
  const float* qp = q.data_ptr<float>();
  const float* kp = k.data_ptr<float>();
  const float* vp = v.data_ptr<float>();
  at::Tensor out = at::empty({n, H * hd}, q.options().memory_format(at::MemoryFormat::Contiguous));
  float* op = out.data_ptr<float>();
  std::vector<float> scores(static_cast<size_t>(G * cap));
  std::vector<const float*> qs(static_cast<size_t>(G));
  std::vector<float*> outs(static_cast<size_t>(G));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = lengths[i];
    TORCH_CHECK(len >= 1 && len <= cap, "DecodeAttention: a row's length is outside its buffer");
    for (int64_t j = 0; j < KV; ++j) {
      for (int64_t g = 0; g < G; ++g) {
        qs[g] = qp + i * q.stride(0) + (j * G + g) * q.stride(1);
        outs[g] = op + (i * H + j * G + g) * hd;
      }
      const float* kj = kp + i * k.stride(0) + j * k.stride(1);
      const float* vj = vp + i * v.stride(0) + j * v.stride(1);
      switch (hd) {  // the head sizes of the small model, of model_benchmark's large one and of LLaMA-2
        case 8:
          AttendGroup<8>(qs.data(), G, kj, vj, k.stride(2), len, hd, scale, scores.data(), outs.data());
          break;
        case 64:
          AttendGroup<64>(qs.data(), G, kj, vj, k.stride(2), len, hd, scale, scores.data(), outs.data());
          break;
        case 128:
          AttendGroup<128>(qs.data(), G, kj, vj, k.stride(2), len, hd, scale, scores.data(), outs.data());
          break;
        default:
          AttendGroup<0>(qs.data(), G, kj, vj, k.stride(2), len, hd, scale, scores.data(), outs.data());
      }
    }
  }
  return out;
}

}  // namespace moke::ops
