#include "core/model/model_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace moke {

int64_t ModelConfig::NumParameters() const {
  const int64_t d = hidden_size, f = intermediate_size, hd = head_dim;
  const int64_t attn = d * num_attention_heads * hd * 2 + d * num_key_value_heads * hd * 2;
  const int64_t per_layer = attn + 3 * d * f + 2 * d;
  return vocab_size * d * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * per_layer + d;
}

absl::StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& origin) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": not a JSON object"));
  }
  ModelConfig c;
  auto get_int = [&](const char* key, int64_t* out, bool required) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) return absl::InvalidArgumentError(absl::StrCat(origin, ": missing \"", key, "\""));
      return absl::OkStatus();
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ": \"", key, "\" must be a non-negative integer"));
    }
    *out = it->get<int64_t>();
    return absl::OkStatus();
  };
  auto get_double = [&](const char* key, double* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number()) return absl::InvalidArgumentError(absl::StrCat(origin, ": \"", key, "\" must be a number"));
    *out = it->get<double>();
    return absl::OkStatus();
  };
  for (auto [key, out] : {std::pair{"hidden_size", &c.hidden_size},
                          std::pair{"intermediate_size", &c.intermediate_size},
                          std::pair{"num_hidden_layers", &c.num_hidden_layers},
                          std::pair{"num_attention_heads", &c.num_attention_heads},
                          std::pair{"vocab_size", &c.vocab_size}}) {
    if (auto s = get_int(key, out, true); !s.ok()) return s;
  }
  c.num_key_value_heads = c.num_attention_heads;
  if (auto s = get_int("num_key_value_heads", &c.num_key_value_heads, false); !s.ok()) return s;
  c.max_position_embeddings = 4096;
  if (auto s = get_int("max_position_embeddings", &c.max_position_embeddings, false); !s.ok()) return s;
  if (auto s = get_int("bos_token_id", &c.bos_token_id, false); !s.ok()) return s;
  if (auto s = get_int("eos_token_id", &c.eos_token_id, false); !s.ok()) return s;
  if (auto s = get_double("rms_norm_eps", &c.rms_norm_eps); !s.ok()) return s;
  if (auto s = get_double("rope_theta", &c.rope_theta); !s.ok()) return s;
  if (auto it = j.find("tie_word_embeddings"); it != j.end() && it->is_boolean()) c.tie_word_embeddings = it->get<bool>();
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string()) c.torch_dtype = it->get<std::string>();
  if (auto it = j.find("hidden_act"); it != j.end() && (!it->is_string() || it->get<std::string>() != "silu")) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": only hidden_act \"silu\" is supported"));
  }
  if (c.hidden_size == 0 || c.intermediate_size == 0 || c.num_hidden_layers == 0 || c.num_attention_heads == 0 ||
      c.vocab_size == 0 || c.num_key_value_heads == 0) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": sizes must be positive"));
  }
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": num_attention_heads must be a multiple of num_key_value_heads"));
  }
  c.head_dim = c.hidden_size / c.num_attention_heads;
  if (auto s = get_int("head_dim", &c.head_dim, false); !s.ok()) return s;
  if (c.head_dim == 0 || c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": head_dim must be positive and even"));
  }
  return c;
}

absl::StatusOr<ModelConfig> ReadModelConfig(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseModelConfig(ss.str(), path);
}

}  // namespace moke
