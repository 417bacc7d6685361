// What the edit layer sees of a prompt: its tokens and the input a(x) of the layer's MLP down-projection
// (the paper's a(x), d_ff wide), with the token mask and the pooled fingerprint every score uses.
// One place for "tokenize, run to the edit layer, to float" and for "BOS carries no information".
//
// Thread-safety: pure functions over an immutable model.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/model/llama_model.h"

namespace moke {

struct PromptActivations {
  std::vector<int64_t> ids;  // BOS, then the prompt's tokens
  at::Tensor a;              // [1, T, F] float32, no autograd history
};

// Runs `text` up to layer `layer`'s down-projection (no autograd).
PromptActivations ActivationsOf(const LlamaModel& model, int64_t layer, const std::string& text);
PromptActivations ActivationsOf(const LlamaModel& model, int64_t layer, const std::vector<int64_t>& ids);

// [1, T] float: 1 on every position except BOS (position 0); all ones for a lone token.
at::Tensor PromptTokenMask(const at::Tensor& a);

// Right-pads [1, T_i, F] activations into [N, T, F] with a token mask [N, T] that skips BOS and padding.
struct PaddedActivations {
  at::Tensor a;     // [N, T, F]
  at::Tensor mask;  // [N, T]
};
PaddedActivations PadActivations(const std::vector<at::Tensor>& list);

// Mean of a [1, T, F] over positions 1..T-1 (BOS excluded; all of them for T = 1), L2-normalised -> [F].
at::Tensor Fingerprint(const at::Tensor& a);

}  // namespace moke
