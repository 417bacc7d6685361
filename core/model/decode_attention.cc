#include "core/model/decode_attention.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace moke::ops {

namespace {

bool LoopFits(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

}  // namespace

at::Tensor DecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::vector<int64_t>& lengths) {
  if (LoopFits(q) && LoopFits(k) && LoopFits(v) && q.stride(2) == 1 && k.stride(3) == 1 && v.stride(3) == 1) {
    return DecodeAttentionLoop(q, k, v, lengths);
  }
  return DecodeAttentionProducts(q, k, v, lengths);
}

at::Tensor DecodeAttentionProducts(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const std::vector<int64_t>& lengths) {
  const int64_t n = q.size(0), H = q.size(1), hd = q.size(2), KV = k.size(1), G = H / KV;
  TORCH_CHECK(static_cast<int64_t>(lengths.size()) == n && n <= k.size(0), "DecodeAttention: the shapes do not agree");
  const int64_t span = *std::max_element(lengths.begin(), lengths.end());
  const auto ids = at::TensorOptions().dtype(at::kLong).device(q.device());
  at::Tensor masked = (at::arange(span, ids).unsqueeze(0) >= at::tensor(lengths, ids).unsqueeze(1)).view({n, 1, 1, span});
  at::Tensor kk = k.narrow(0, 0, n).narrow(2, 0, span), vv = v.narrow(0, 0, n).narrow(2, 0, span);
  // Grouped-query attention as LlamaModel::AttentionHeads computes it: the G query heads of one kv head as
  // one [G, hd] matrix (head h reads kv head h / G), one product per kv head.
  at::Tensor scores = at::matmul(q.reshape({n, KV, G, hd}), kk.transpose(-2, -1)).view({n, H, 1, span}).to(at::kFloat) /
                      std::sqrt(static_cast<double>(hd));
  scores = scores.masked_fill(masked, -std::numeric_limits<float>::infinity());
  at::Tensor probs = scores.softmax(-1).to(q.scalar_type());
  return at::matmul(probs.view({n, KV, G, span}), vv).reshape({n, H * hd});
}

at::Tensor DecodeAttentionLoop(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::vector<int64_t>& lengths) {
  TORCH_CHECK(LoopFits(q) && LoopFits(k) && LoopFits(v),
              "DecodeAttention: q, k and v must be float32 on the CPU");
  TORCH_CHECK(q.dim() == 3 && k.dim() == 4 && v.sizes() == k.sizes() && q.stride(2) == 1 && k.stride(3) == 1 &&
                  v.stride(3) == 1,
              "DecodeAttention: q must be [n, H, hd], k and v [rows, KV, capacity, hd], each head's numbers adjacent");
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
  std::vector<float> p(static_cast<size_t>(cap));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = lengths[i];
    TORCH_CHECK(len >= 1 && len <= cap, "DecodeAttention: a row's length is outside its buffer");
    for (int64_t h = 0; h < H; ++h) {
      const float* qh = qp + i * q.stride(0) + h * q.stride(1);
      const float* kh = kp + i * k.stride(0) + (h / G) * k.stride(1);
      const float* vh = vp + i * v.stride(0) + (h / G) * v.stride(1);
      float top = -std::numeric_limits<float>::infinity();
      for (int64_t t = 0; t < len; ++t) {
        const float* kt = kh + t * k.stride(2);
        float dot = 0.0f;
        for (int64_t d = 0; d < hd; ++d) dot += qh[d] * kt[d];
        p[t] = dot / scale;
        top = std::max(top, p[t]);
      }
      float sum = 0.0f;
      for (int64_t t = 0; t < len; ++t) {
        p[t] = std::exp(p[t] - top);
        sum += p[t];
      }
      float* o = op + (i * H + h) * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t t = 0; t < len; ++t) {
        const float w = p[t] / sum;
        const float* vt = vh + t * v.stride(2);
        for (int64_t d = 0; d < hd; ++d) o[d] += w * vt[d];
      }
    }
  }
  return out;
}

}  // namespace moke::ops
