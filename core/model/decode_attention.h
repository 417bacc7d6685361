// Attention of one new token per row over each row's cached keys and values, as one loop on the CPU
// (issue 17). A decode step needs exactly this at every layer. Written with LibTorch's batched matmul it
// becomes one small GEMM per row and kv head (64 calls per layer at 16 rows of the small model, each with
// its dispatch and packing, plus the mask, scale and softmax ops), which made the attention the largest
// part of a batched step. Here it is one pass over the numbers, with no allocation but the output.
//
// Numbers: grouped-query attention as LlamaModel::AttentionHeads computes it for many tokens (query head h
// reads kv head h / G, scores divided by sqrt(hd), softmax in float32), summed in another order, so the
// results agree to float32 rounding, not bit for bit.
//
// Thread-safety: a pure function of its arguments.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace moke::ops {

// q [n, H, hd]; k and v [rows >= n, KV, capacity, hd] (row i's kv head j at positions 0..lengths[i]-1).
// Returns [n, H * hd] in q's dtype: for each row and query head, the softmax of q . k / sqrt(hd) over the
// row's positions, times their values. Float32 on the CPU goes to DecodeAttentionLoop, the rest to
// DecodeAttentionProducts. `masked`: optional, DecodeMask(lengths) on q's device, for a caller that calls
// this for every layer of a step (the products need it when the rows' lengths differ; made once, it is
// one copy to the device per step instead of one per layer).
at::Tensor DecodeAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           const std::vector<int64_t>& lengths, const at::Tensor& masked = at::Tensor());

// Whether DecodeAttention takes these tensors to the loop (float32 on the CPU, laid out as the loop reads
// them, and none of them requiring a gradient: the loop has no backward).
bool DecodeAttentionLoopFits(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// [n, 1, 1, span] bool on `device`: true past each row's length (span: the longest).
at::Tensor DecodeMask(const std::vector<int64_t>& lengths, const at::Device& device);

// The two ways, public for the tests and model_benchmark, which compare them.
// One loop over the numbers: float32 CPU tensors only; any strides for the outer dimensions, but within a
// head its hd numbers must be adjacent, and k and v must be laid out alike.
at::Tensor DecodeAttentionLoop(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const std::vector<int64_t>& lengths);
// LibTorch's batched products over the longest row's span, the rest masked: any device and dtype.
at::Tensor DecodeAttentionProducts(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const std::vector<int64_t>& lengths, const at::Tensor& masked = at::Tensor());

}  // namespace moke::ops
