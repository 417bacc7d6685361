// A LLaMA-family decoder (RMSNorm, rotary embeddings, SwiGLU MLP, grouped-query attention, KV cache)
// written with LibTorch's ATen API, loaded from a Hugging Face checkpoint folder.
//
// Besides plain forward passes it exposes what knowledge editing needs: the input a(x) of one layer's MLP
// down-projection, and a way to run the rest of the network from there with a replacement
// down-projection weight, so that an edit trains only layers L..end (the frozen prefix is run once).
//
// Thread-safety: immutable after Load. Every const method may be called from many threads at once;
// a KvCache belongs to one caller. Methods other than Load may throw c10::Error on bad tensors; the
// callers in core/ (the Editor) catch it at their boundary.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/common/budget.h"
#include "core/model/model_config.h"
#include "core/model/tokenizer.h"

namespace moke {

struct LoadOptions {
  std::string dir;              // checkpoint folder: config.json, *.safetensors, tokenizer.model
  std::string device = "cpu";   // "cpu" or "cuda" / "cuda:N"
  std::string dtype = "auto";   // "auto" (fp32 on CPU, bf16 on CUDA), "float32", "bfloat16", "float16"
  // Refuse to load when the weights need more than this many bytes; 0 reads the free memory of the
  // device (MemAvailable on CPU).
  int64_t memory_limit_bytes = 0;
};

struct LoadStats {
  double seconds = 0;
  int64_t weight_bytes = 0;    // bytes of weights held by the model
  int64_t resident_bytes = 0;  // process resident set after loading (CPU)
  int num_shards = 0;
};

// Per-request attention cache: one [B, n_kv_heads, S, head_dim] pair per layer.
struct KvCache {
  std::vector<at::Tensor> k, v;
  int64_t length = 0;
};

// Replaces one layer's MLP down-projection weight [d_model, d_ff] for a forward pass.
struct DownOverride {
  int64_t layer = -1;
  at::Tensor weight;
};

class LlamaModel {
 public:
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const LoadOptions& options);
  ~LlamaModel();

  // Decodes rows of many requests in one forward per step (core/model/batch_decode.h); reads the layers.
  friend class BatchDecoder;

  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const LoadStats& load_stats() const { return stats_; }
  c10::Device device() const;
  c10::ScalarType dtype() const;
  // Options (device, int64) for token id tensors.
  at::TensorOptions id_options() const;

  // BOS followed by the tokens of `text`.
  std::vector<int64_t> EncodePrompt(const std::string& text) const;
  // Tokens of `text` as a continuation (SentencePiece dummy prefix, no BOS).
  std::vector<int64_t> EncodeContinuation(const std::string& text) const;
  std::string Decode(const std::vector<int64_t>& ids) const;

  // ids [B, T] int64 -> logits [B, T, V] float32. With a cache, positions continue from cache->length
  // and the cache grows by T. Right padding needs no mask: attention is causal.
  at::Tensor Forward(const at::Tensor& ids, KvCache* cache = nullptr, const DownOverride* override = nullptr) const;

  // The frozen prefix of an edit: layers 0..layer-1 in full, then layer `layer` up to its down-projection.
  struct Split {
    at::Tensor h_mid;  // [B, T, d_model] residual stream after layer `layer`'s attention
    at::Tensor a;      // [B, T, d_ff]    input of layer `layer`'s down-projection
  };
  // Runs without autograd. With `cache`, it keeps the keys and values of layers 0..layer (positions from 0),
  // so that a forward can go on from the Split (BatchDecoder::Start with a PromptPrefix).
  Split RunToDownProj(const at::Tensor& ids, int64_t layer, KvCache* cache = nullptr) const;
  // Logits float32 from a Split, using `down_weight` [d_model, d_ff] for layer `layer`: RunAbove of
  // h_mid + a down_weight^T. Differentiable with respect to `down_weight`.
  at::Tensor RunFromDownProj(const Split& split, int64_t layer, const at::Tensor& down_weight,
                             const at::Tensor& positions = at::Tensor()) const;
  // Logits float32 from the residual stream `h` [B, T, d_model] after layer `layer`: the layers above it
  // and the LM head. [B, T, V] at every position, or [N, V] at `positions` [N] (int64 indices into the
  // flattened B * T positions): the last layer's output projection and MLP and the head then run at
  // those positions only (its attention still reads every position). Differentiable with respect to `h`.
  at::Tensor RunAbove(const at::Tensor& h, int64_t layer, const at::Tensor& positions = at::Tensor()) const;

  // Layer `layer`'s original down-projection weight [d_model, d_ff].
  const at::Tensor& down_weight(int64_t layer) const;

  // Why a generation stopped.
  enum class Stop { kEndOfSequence, kTokenLimit, kBudget };
  struct Generation {
    std::vector<int64_t> tokens;  // the new tokens (without the EOS that ended them)
    Stop stop = Stop::kTokenLimit;
  };
  // Greedy decoding of up to `max_new_tokens` after `prompt_ids` (fewer when the context window is
  // full), over the tokens that keep the text well-formed UTF-8 (a byte-fallback vocabulary could
  // otherwise spell "ü" with a wrong second byte); stops at EOS or BOS, or when `budget` runs out
  // (checked before every step).
  // use_cache=false recomputes the whole sequence each step (for the benchmark).
  Generation Generate(const std::vector<int64_t>& prompt_ids, int max_new_tokens,
                      const DownOverride* override = nullptr, const Budget& budget = Budget(),
                      bool use_cache = true) const;

  // The UTF-8 rule of greedy decoding, shared with BatchDecoder. `pending`: continuation bytes the
  // current character still needs (0: between characters); after taking token `id`, the new count.
  int Utf8PendingAfter(int pending, int64_t id) const;

 private:
  struct Layer {
    at::Tensor input_norm, wo, post_norm, down;
    // The q, k and v projections stored as one [(H + 2 KV) * head_dim, D] matrix, and gate and up as one
    // [2 F, D]: one product each per layer instead of three and two (fewer, larger products: what a
    // small batch on a CPU and every GPU forward gain most from). Loaded from the checkpoint's separate
    // tensors; no copy of them is kept.
    at::Tensor wqkv, gate_up;
  };
  LlamaModel();
  at::Tensor Embed(const at::Tensor& ids) const;
  // h + self-attention of layer `layer` (the residual included).
  at::Tensor Attention(const at::Tensor& h, int64_t layer, KvCache* cache, int64_t pos0) const;
  // The attention heads' output [B, T, H * head_dim], before the output projection.
  at::Tensor AttentionHeads(const at::Tensor& h, int64_t layer, KvCache* cache, int64_t pos0) const;
  // One whole decoder layer; with `cache`, its keys and values are kept (positions from 0).
  at::Tensor Block(const at::Tensor& h, int64_t layer, KvCache* cache = nullptr) const;
  at::Tensor MlpInput(const at::Tensor& h_mid, int64_t layer) const;
  at::Tensor Head(const at::Tensor& h) const;

  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<Layer> layers_;
  at::Tensor embed_, norm_, lm_head_, rope_cos_, rope_sin_;
  // [2, V] bool, with a byte-fallback vocabulary: the ids barred between characters (row 0: stray
  // continuation bytes, impossible lead bytes) and inside one (row 1: all but continuation bytes), so
  // row [pending > 0] masks a step. Undefined when the vocabulary has no byte pieces.
  at::Tensor utf8_barred_;
  LoadStats stats_;
};

}  // namespace moke
