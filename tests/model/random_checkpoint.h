// Writes a randomly initialised LLaMA checkpoint folder (config.json, safetensors shards, optional
// index, tokenizer.model copied from the embedded model) for tests and benchmarks. Every random number
// comes from `seed`, so the same spec always gives the same bytes.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace moke::testing {

struct RandomCheckpointSpec {
  int64_t hidden_size = 32;
  int64_t intermediate_size = 64;
  int64_t num_layers = 2;
  int64_t num_heads = 4;
  int64_t num_kv_heads = 2;
  int64_t head_dim = 0;  // 0: hidden_size / num_heads, and "head_dim" is left out of config.json
  int64_t vocab_size = 512;
  int64_t max_position_embeddings = 256;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-5;
  bool tie_word_embeddings = false;
  DType dtype = DType::kF32;  // how the weights are stored
  int num_shards = 1;         // > 1: model-0000i-of-0000n.safetensors plus model.safetensors.index.json
  uint64_t seed = 1;
  std::string tokenizer_model;  // copied to <dir>/tokenizer.model when non-empty
};

// One tensor of the checkpoint, as stored.
inline TensorBlob MakeBlob(const std::string& name, const at::Tensor& t, DType dtype) {
  at::ScalarType st = dtype == DType::kF32 ? at::kFloat : dtype == DType::kF16 ? at::kHalf : at::kBFloat16;
  at::Tensor c = t.to(st).contiguous();
  TensorBlob b;
  b.name = name;
  b.dtype = dtype;
  b.shape = c.sizes().vec();
  b.bytes.assign(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return b;
}

// The tensors of a random checkpoint, in HF naming. Scales keep activations O(1) and logits spread by
// several units, so greedy decoding has clear winners.
inline std::vector<TensorBlob> RandomTensors(const RandomCheckpointSpec& s) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(s.seed);
  const int64_t d = s.hidden_size, f = s.intermediate_size;
  const int64_t hd = s.head_dim > 0 ? s.head_dim : d / s.num_heads;
  auto randn = [&](std::vector<int64_t> shape, double std) {
    return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  auto norm = [&](int64_t n) { return 1.0 + randn({n}, 0.1); };
  std::vector<TensorBlob> out;
  out.push_back(MakeBlob("model.embed_tokens.weight", randn({s.vocab_size, d}, 1.0), s.dtype));
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    out.push_back(MakeBlob(p + "input_layernorm.weight", norm(d), s.dtype));
    out.push_back(MakeBlob(p + "self_attn.q_proj.weight", randn({s.num_heads * hd, d}, 1.5 / std::sqrt(d)), s.dtype));
    out.push_back(MakeBlob(p + "self_attn.k_proj.weight", randn({s.num_kv_heads * hd, d}, 1.5 / std::sqrt(d)), s.dtype));
    out.push_back(MakeBlob(p + "self_attn.v_proj.weight", randn({s.num_kv_heads * hd, d}, 1.0 / std::sqrt(d)), s.dtype));
    out.push_back(MakeBlob(p + "self_attn.o_proj.weight", randn({d, s.num_heads * hd}, 0.5 / std::sqrt(s.num_heads * hd)),
                           s.dtype));
    out.push_back(MakeBlob(p + "post_attention_layernorm.weight", norm(d), s.dtype));
    out.push_back(MakeBlob(p + "mlp.gate_proj.weight", randn({f, d}, 1.0 / std::sqrt(d)), s.dtype));
    out.push_back(MakeBlob(p + "mlp.up_proj.weight", randn({f, d}, 1.0 / std::sqrt(d)), s.dtype));
    out.push_back(MakeBlob(p + "mlp.down_proj.weight", randn({d, f}, 0.5 / std::sqrt(f)), s.dtype));
  }
  out.push_back(MakeBlob("model.norm.weight", norm(d), s.dtype));
  if (!s.tie_word_embeddings) {
    out.push_back(MakeBlob("lm_head.weight", randn({s.vocab_size, d}, 3.0 / std::sqrt(d)), s.dtype));
  }
  return out;
}

inline nlohmann::json RandomConfigJson(const RandomCheckpointSpec& s) {
  nlohmann::json c = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", s.hidden_size},
      {"intermediate_size", s.intermediate_size},
      {"num_hidden_layers", s.num_layers},
      {"num_attention_heads", s.num_heads},
      {"num_key_value_heads", s.num_kv_heads},
      {"vocab_size", s.vocab_size},
      {"max_position_embeddings", s.max_position_embeddings},
      {"rms_norm_eps", s.rms_norm_eps},
      {"rope_theta", s.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", s.tie_word_embeddings},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", s.dtype == DType::kF32 ? "float32" : s.dtype == DType::kF16 ? "float16" : "bfloat16"},
  };
  if (s.head_dim > 0) c["head_dim"] = s.head_dim;
  return c;
}

inline absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

// Writes the folder `dir` (created if needed).
inline absl::Status WriteRandomCheckpoint(const std::string& dir, const RandomCheckpointSpec& s) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir, ": ", ec.message()));
  if (auto st = WriteText(dir + "/config.json", RandomConfigJson(s).dump(2)); !st.ok()) return st;
  if (!s.tokenizer_model.empty()) {
    fs::copy_file(s.tokenizer_model, dir + "/tokenizer.model", fs::copy_options::overwrite_existing, ec);
    if (ec) return absl::InternalError(absl::StrCat(s.tokenizer_model, ": ", ec.message()));
  }
  std::vector<TensorBlob> all = RandomTensors(s);
  if (s.num_shards <= 1) return WriteSafetensors(dir + "/model.safetensors", all);
  // Contiguous runs of tensors per shard; the index maps each name to its file.
  nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
  size_t total = 0;
  const size_t per = (all.size() + s.num_shards - 1) / s.num_shards;
  for (int i = 0; i < s.num_shards; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", i + 1, s.num_shards);
    std::vector<TensorBlob> part;
    for (size_t k = i * per; k < std::min(all.size(), (i + 1) * per); ++k) {
      index["weight_map"][all[k].name] = name;
      total += all[k].bytes.size();
      part.push_back(std::move(all[k]));
    }
    if (auto st = WriteSafetensors(dir + "/" + name, part); !st.ok()) return st;
  }
  index["metadata"]["total_size"] = total;
  return WriteText(dir + "/model.safetensors.index.json", index.dump(2));
}

// A fresh folder under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() /
             absl::StrCat("moke_", tag, "_", ::getpid(), "_", counter++))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace moke::testing
