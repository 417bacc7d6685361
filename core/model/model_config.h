// The shape of a LLaMA-family decoder, read from a Hugging Face `config.json`.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace moke {

struct ModelConfig {
  int64_t hidden_size = 0;        // d_model
  int64_t intermediate_size = 0;  // d_ff
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  std::string torch_dtype = "float32";

  // Parameter count (weights only), for memory planning.
  int64_t NumParameters() const;
};

// Parses and validates `config.json` text. `origin` names the file in error messages.
absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& origin);
absl::StatusOr<ModelConfig> ReadModelConfig(const std::string& path);

}  // namespace moke
