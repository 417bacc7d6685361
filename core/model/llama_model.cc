#include "core/model/llama_model.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "core/common/status_macros.h"
#include "core/model/decode_attention.h"
#include "core/model/llama_ops.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"

namespace moke {
namespace fs = std::filesystem;

namespace {

using ops::RmsNorm;

int64_t ReadMeminfoKb(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string k;
  int64_t v = 0;
  std::string unit;
  while (in >> k >> v >> unit) {
    if (k == std::string(key) + ":") return v;
  }
  return -1;
}

int64_t ResidentBytes() {
  std::ifstream in("/proc/self/statm");
  int64_t size = 0, resident = 0;
  in >> size >> resident;
  return resident * 4096;
}

absl::StatusOr<c10::ScalarType> ParseDtype(const std::string& s, bool cuda) {
  if (s == "auto") return cuda ? at::kBFloat16 : at::kFloat;
  if (s == "float32" || s == "fp32") return at::kFloat;
  if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
  if (s == "float16" || s == "fp16") {
    if (!cuda) return absl::InvalidArgumentError("float16 is not implemented on CPU in this LibTorch; use float32");
    return at::kHalf;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype \"", s, "\" (auto, float32, bfloat16, float16)"));
}

c10::ScalarType ToScalarType(DType d) {
  switch (d) {
    case DType::kF32: return at::kFloat;
    case DType::kF16: return at::kHalf;
    case DType::kBF16: return at::kBFloat16;
    default: return at::kFloat;
  }
}

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) absl::StrAppend(&out, i ? ", " : "", s[i]);
  return out + "]";
}

}  // namespace

LlamaModel::LlamaModel() = default;
LlamaModel::~LlamaModel() = default;

c10::Device LlamaModel::device() const { return embed_.device(); }
c10::ScalarType LlamaModel::dtype() const { return embed_.scalar_type(); }
at::TensorOptions LlamaModel::id_options() const { return at::TensorOptions().dtype(at::kLong).device(device()); }

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const LoadOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path dir(options.dir);
  if (!fs::is_directory(dir)) return absl::NotFoundError(absl::StrCat(options.dir, ": not a folder"));
  std::unique_ptr<LlamaModel> model(new LlamaModel());
  MOKE_ASSIGN_OR_RETURN(model->config_, ReadModelConfig((dir / "config.json").string()));
  const ModelConfig& c = model->config_;

  std::string err;
  model->tokenizer_ = Tokenizer::Load((dir / "tokenizer.model").string(), &err);
  if (!model->tokenizer_) return absl::NotFoundError(err);
  if (model->tokenizer_->vocab_size() > c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat((dir / "tokenizer.model").string(), ": ",
                                                   model->tokenizer_->vocab_size(), " pieces, but config.json says vocab_size ",
                                                   c.vocab_size));
  }

  c10::Device device(c10::kCPU);
  bool cuda = false;
  {
    absl::Status st = GuardTorch("device", [&] {
      device = c10::Device(options.device);
      return absl::OkStatus();
    });
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("bad device \"", options.device, "\""));
    cuda = device.is_cuda();
    if (cuda && !at::hasCUDA()) {
      return absl::FailedPreconditionError(
          "--device cuda: this build's LibTorch has no CUDA (or no GPU is visible); rebuild with -DTorch_DIR=<CUDA LibTorch>");
    }
  }
  MOKE_ASSIGN_OR_RETURN(c10::ScalarType dtype, ParseDtype(options.dtype, cuda));

  // Memory check before touching any weight.
  const int64_t elem = dtype == at::kFloat ? 4 : 2;
  const int64_t need = c.NumParameters() * elem;
  int64_t limit = options.memory_limit_bytes;
  if (limit == 0 && !cuda) limit = ReadMeminfoKb("MemAvailable") * 1024;
  if (limit > 0 && need > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(options.dir, ": the weights need ", need, " bytes in ",
                                                     c10::toString(dtype), " but only ", limit, " bytes are available"));
  }

  // Which file holds which tensor.
  std::map<std::string, std::string> where;  // tensor name -> shard file name
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::ifstream in(index);
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = nlohmann::json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(index.string(), ": no \"weight_map\" object"));
    }
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) return absl::InvalidArgumentError(absl::StrCat(index.string(), ": bad entry ", it.key()));
      where[it.key()] = it.value().get<std::string>();
    }
  } else if (!fs::exists(dir / "model.safetensors")) {
    return absl::NotFoundError(absl::StrCat(options.dir, ": neither model.safetensors nor model.safetensors.index.json"));
  }

  std::map<std::string, std::unique_ptr<SafetensorsFile>> shards;
  // `tensor` is the first tensor wanted from `file`, named in the error when the shard is missing.
  auto open_shard = [&](const std::string& file, const std::string& tensor) -> absl::StatusOr<SafetensorsFile*> {
    auto it = shards.find(file);
    if (it != shards.end()) return it->second.get();
    const fs::path p = dir / file;
    if (!fs::exists(p)) {
      return absl::NotFoundError(
          absl::StrCat(p.string(), ": shard named in the index (for tensor \"", tensor, "\") is missing"));
    }
    MOKE_ASSIGN_OR_RETURN(auto f, SafetensorsFile::Open(p.string()));
    SafetensorsFile* raw = f.get();
    shards.emplace(file, std::move(f));
    return raw;
  };

  int64_t weight_bytes = 0;
  // Loads one tensor, checking presence, dtype and shape; copies it to the device and dtype.
  auto load = [&](const std::string& name, std::vector<int64_t> shape) -> absl::StatusOr<at::Tensor> {
    std::string file = "model.safetensors";
    if (!where.empty()) {
      auto it = where.find(name);
      if (it == where.end()) {
        return absl::NotFoundError(absl::StrCat(index.string(), ": missing tensor \"", name, "\""));
      }
      file = it->second;
    }
    MOKE_ASSIGN_OR_RETURN(SafetensorsFile * f, open_shard(file, name));
    auto it = f->tensors().find(name);
    if (it == f->tensors().end()) return absl::NotFoundError(absl::StrCat(f->path(), ": missing tensor \"", name, "\""));
    const TensorInfo& info = it->second;
    if (info.dtype != DType::kF32 && info.dtype != DType::kF16 && info.dtype != DType::kBF16) {
      return absl::InvalidArgumentError(absl::StrCat(f->path(), ": tensor \"", name, "\" has dtype ", DTypeName(info.dtype),
                                                     "; expected F32, F16 or BF16"));
    }
    if (info.shape != shape) {
      return absl::InvalidArgumentError(absl::StrCat(f->path(), ": tensor \"", name, "\" has shape ", ShapeString(info.shape),
                                                     " but config.json implies ", ShapeString(shape)));
    }
    at::Tensor out;
    MOKE_RETURN_IF_ERROR(GuardTorch(name.c_str(), [&] {
      at::Tensor view = at::from_blob(const_cast<uint8_t*>(f->DataOf(info)), shape,
                                      at::TensorOptions().dtype(ToScalarType(info.dtype)));
      out = view.to(device, dtype, /*non_blocking=*/false, /*copy=*/true);
      return absl::OkStatus();
    }));
    weight_bytes += out.numel() * out.element_size();
    return out;
  };

  const int64_t d = c.hidden_size, f = c.intermediate_size, hd = c.head_dim;
  MOKE_ASSIGN_OR_RETURN(model->embed_, load("model.embed_tokens.weight", {c.vocab_size, d}));
  MOKE_ASSIGN_OR_RETURN(model->norm_, load("model.norm.weight", {d}));
  if (c.tie_word_embeddings) {
    model->lm_head_ = model->embed_;
  } else {
    MOKE_ASSIGN_OR_RETURN(model->lm_head_, load("lm_head.weight", {c.vocab_size, d}));
  }
  model->layers_.resize(c.num_hidden_layers);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    Layer& L = model->layers_[l];
    MOKE_ASSIGN_OR_RETURN(L.input_norm, load(p + "input_layernorm.weight", {d}));
    {
      at::Tensor wq, wk, wv, gate, up;
      MOKE_ASSIGN_OR_RETURN(wq, load(p + "self_attn.q_proj.weight", {c.num_attention_heads * hd, d}));
      MOKE_ASSIGN_OR_RETURN(wk, load(p + "self_attn.k_proj.weight", {c.num_key_value_heads * hd, d}));
      MOKE_ASSIGN_OR_RETURN(wv, load(p + "self_attn.v_proj.weight", {c.num_key_value_heads * hd, d}));
      MOKE_RETURN_IF_ERROR(GuardTorch("q, k, v", [&] {
        L.wqkv = at::cat({wq, wk, wv}, 0);
        return absl::OkStatus();
      }));
      MOKE_ASSIGN_OR_RETURN(gate, load(p + "mlp.gate_proj.weight", {f, d}));
      MOKE_ASSIGN_OR_RETURN(up, load(p + "mlp.up_proj.weight", {f, d}));
      MOKE_RETURN_IF_ERROR(GuardTorch("gate, up", [&] {
        L.gate_up = at::cat({gate, up}, 0);
        return absl::OkStatus();
      }));
    }
    MOKE_ASSIGN_OR_RETURN(L.wo, load(p + "self_attn.o_proj.weight", {d, c.num_attention_heads * hd}));
    MOKE_ASSIGN_OR_RETURN(L.post_norm, load(p + "post_attention_layernorm.weight", {d}));
    MOKE_ASSIGN_OR_RETURN(L.down, load(p + "mlp.down_proj.weight", {d, f}));
  }
  MOKE_RETURN_IF_ERROR(GuardTorch("rope tables", [&] {
    at::Tensor inv = at::pow(c.rope_theta, -at::arange(0, hd, 2, at::kDouble) / static_cast<double>(hd));
    at::Tensor pos = at::arange(c.max_position_embeddings, at::kDouble);
    at::Tensor freqs = at::outer(pos, inv);               // [P, hd/2]
    at::Tensor emb = at::cat({freqs, freqs}, -1);         // [P, hd]
    model->rope_cos_ = emb.cos().to(device, dtype);
    model->rope_sin_ = emb.sin().to(device, dtype);
    // Which ids may follow in well-formed UTF-8 (byte-fallback vocabularies only).
    const int64_t v = c.vocab_size;
    std::vector<uint8_t> not_continuation(v, 1), not_start(v, 0);
    bool any_byte = false;
    for (int64_t id = 0; id < v; ++id) {
      const int b = model->tokenizer_->ByteOf(static_cast<int>(id));
      if (b < 0) continue;
      any_byte = true;
      if (b >= 0x80 && b <= 0xBF) not_continuation[id] = 0;
      if ((b >= 0x80 && b <= 0xC1) || b >= 0xF5) not_start[id] = 1;
    }
    if (any_byte) {
      auto as_mask = [&](const std::vector<uint8_t>& m) {
        return at::tensor(std::vector<int64_t>(m.begin(), m.end())).to(at::kBool).to(device);
      };
      model->utf8_barred_ = at::stack({as_mask(not_start), as_mask(not_continuation)});
    }
    return absl::OkStatus();
  }));
  model->stats_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  model->stats_.weight_bytes = weight_bytes;
  model->stats_.num_shards = static_cast<int>(std::max<size_t>(shards.size(), 1));
  shards.clear();  // unmap before measuring the resident set
  model->stats_.resident_bytes = ResidentBytes();
  return model;
}

std::vector<int64_t> LlamaModel::EncodePrompt(const std::string& text) const {
  std::vector<int64_t> ids{config_.bos_token_id};
  for (int t : tokenizer_->Encode(text)) ids.push_back(t);
  return ids;
}

std::vector<int64_t> LlamaModel::EncodeContinuation(const std::string& text) const {
  std::vector<int64_t> ids;
  for (int t : tokenizer_->Encode(text)) ids.push_back(t);
  return ids;
}

std::string LlamaModel::Decode(const std::vector<int64_t>& ids) const {
  std::vector<int> v;
  for (int64_t id : ids) {
    if (id == config_.bos_token_id || id == config_.eos_token_id) continue;
    v.push_back(static_cast<int>(id));
  }
  return tokenizer_->Decode(v);
}

at::Tensor LlamaModel::Embed(const at::Tensor& ids) const { return at::embedding(embed_, ids); }

at::Tensor LlamaModel::Attention(const at::Tensor& h, int64_t layer, KvCache* cache, int64_t pos0) const {
  return h + at::linear(AttentionHeads(h, layer, cache, pos0), layers_[layer].wo);
}

at::Tensor LlamaModel::AttentionHeads(const at::Tensor& h, int64_t layer, KvCache* cache, int64_t pos0) const {
  const Layer& L = layers_[layer];
  const int64_t B = h.size(0), T = h.size(1);
  const int64_t H = config_.num_attention_heads, KV = config_.num_key_value_heads, hd = config_.head_dim;
  at::Tensor x = RmsNorm(h, L.input_norm, config_.rms_norm_eps);
  at::Tensor qkv = at::linear(x, L.wqkv).view({B, T, H + 2 * KV, hd}).transpose(1, 2);  // [B, H + 2 KV, T, hd]
  at::Tensor cos = rope_cos_.narrow(0, pos0, T), sin = rope_sin_.narrow(0, pos0, T);     // [T, hd]
  at::Tensor qk = ops::Rope(qkv.narrow(1, 0, H + KV), cos, sin);  // the query and key heads, rotated together
  at::Tensor q = qk.narrow(1, 0, H);                                // [B, H, T, hd]
  at::Tensor k = qk.narrow(1, H, KV);                               // [B, KV, T, hd]
  at::Tensor v = qkv.narrow(1, H + KV, KV);
  if (cache != nullptr) {
    if (cache->k.size() <= static_cast<size_t>(layer)) {
      cache->k.resize(layers_.size());
      cache->v.resize(layers_.size());
    }
    if (cache->k[layer].defined()) {
      k = at::cat({cache->k[layer], k}, 2);
      v = at::cat({cache->v[layer], v}, 2);
    } else {  // kept as they are: copies of their own, not views holding the query heads too
      k = k.contiguous();
      v = v.contiguous();
    }
    cache->k[layer] = k;
    cache->v[layer] = v;
  }
  const int64_t S = k.size(2), G = H / KV;
  if (T == 1) {  // one new token over a cache: the decode step's attention (BatchDecoder::Step's too)
    return ops::DecodeAttention(q.select(2, 0), k, v, std::vector<int64_t>(B, S)).view({B, 1, H * hd});
  }
  // Grouped-query attention: the G query heads that read one kv head are one [G * T, hd] matrix (head h
  // reads kv head h / G), so the products run per kv head: [B, KV, G * T, S].
  at::Tensor scores = at::matmul(q.reshape({B, KV, G * T, hd}), k.transpose(-2, -1)).view({B, H, T, S}).to(at::kFloat) /
                      std::sqrt(static_cast<double>(hd));
  if (T > 1) {
    at::Tensor mask = at::ones({T, S}, at::TensorOptions().dtype(at::kBool).device(h.device())).triu(S - T + 1);
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  at::Tensor probs = scores.softmax(-1).to(h.scalar_type());
  return at::matmul(probs.view({B, KV, G * T, S}), v).view({B, H, T, hd}).transpose(1, 2).reshape({B, T, H * hd});
}

at::Tensor LlamaModel::MlpInput(const at::Tensor& h_mid, int64_t layer) const {
  const Layer& L = layers_[layer];
  at::Tensor x = RmsNorm(h_mid, L.post_norm, config_.rms_norm_eps);
  return ops::SwiGlu(at::linear(x, L.gate_up));  // [B, T, d_ff]
}

at::Tensor LlamaModel::Head(const at::Tensor& h) const {
  return at::linear(RmsNorm(h, norm_, config_.rms_norm_eps), lm_head_).to(at::kFloat);
}

at::Tensor LlamaModel::Forward(const at::Tensor& ids, KvCache* cache, const DownOverride* override) const {
  const int64_t pos0 = cache ? cache->length : 0;
  TORCH_CHECK(pos0 + ids.size(1) <= config_.max_position_embeddings, "sequence of ", pos0 + ids.size(1),
              " tokens exceeds the context window of ", config_.max_position_embeddings);
  at::Tensor h = Embed(ids);
  for (int64_t l = 0; l < static_cast<int64_t>(layers_.size()); ++l) {
    at::Tensor h_mid = Attention(h, l, cache, pos0);
    const at::Tensor& w =
        (override != nullptr && override->layer == l) ? override->weight : layers_[l].down;
    h = h_mid + at::linear(MlpInput(h_mid, l), w.to(h.scalar_type()));
  }
  if (cache) cache->length = pos0 + ids.size(1);
  return Head(h);
}

LlamaModel::Split LlamaModel::RunToDownProj(const at::Tensor& ids, int64_t layer, KvCache* cache) const {
  TORCH_CHECK(layer >= 0 && layer < static_cast<int64_t>(layers_.size()), "layer ", layer, " out of range");
  TORCH_CHECK(ids.size(1) <= config_.max_position_embeddings, "sequence exceeds the context window");
  at::NoGradGuard no_grad;
  at::Tensor h = Embed(ids);
  for (int64_t l = 0; l < layer; ++l) h = Block(h, l, cache);
  Split s;
  s.h_mid = Attention(h, layer, cache, 0);
  s.a = MlpInput(s.h_mid, layer);
  return s;
}

at::Tensor LlamaModel::RunFromDownProj(const Split& split, int64_t layer, const at::Tensor& down_weight,
                                       const at::Tensor& positions) const {
  return RunAbove(split.h_mid + at::linear(split.a, down_weight.to(split.a.scalar_type())), layer, positions);
}

at::Tensor LlamaModel::RunAbove(const at::Tensor& h_in, int64_t layer, const at::Tensor& positions) const {
  const int64_t last = static_cast<int64_t>(layers_.size()) - 1;
  const int64_t d = config_.hidden_size;
  at::Tensor h = h_in;
  if (!positions.defined()) {
    for (int64_t l = layer + 1; l <= last; ++l) h = Block(h, l);
    return Head(h);
  }
  if (layer == last) return Head(h.reshape({-1, d}).index_select(0, positions));
  for (int64_t l = layer + 1; l < last; ++l) h = Block(h, l);
  // The last layer: keys and values at every position; the output projection, the MLP and the head only
  // at `positions` (nothing above reads the others).
  const at::Tensor heads = AttentionHeads(h, last, nullptr, 0);  // [B, T, H * hd]
  at::Tensor x = h.reshape({-1, d}).index_select(0, positions) +
                 at::linear(heads.reshape({-1, heads.size(-1)}).index_select(0, positions), layers_[last].wo);  // [N, D]
  x = x + at::linear(MlpInput(x, last), layers_[last].down);
  return Head(x);
}

at::Tensor LlamaModel::Block(const at::Tensor& h, int64_t layer, KvCache* cache) const {
  at::Tensor h_mid = Attention(h, layer, cache, 0);
  return h_mid + at::linear(MlpInput(h_mid, layer), layers_[layer].down);
}

const at::Tensor& LlamaModel::down_weight(int64_t layer) const { return layers_.at(layer).down; }

int LlamaModel::Utf8PendingAfter(int pending, int64_t id) const {
  const int byte = tokenizer_->ByteOf(static_cast<int>(id));
  if (byte < 0) return 0;
  if (pending > 0) return pending - 1;
  return byte >= 0xF0 ? 3 : byte >= 0xE0 ? 2 : byte >= 0xC0 ? 1 : 0;
}

LlamaModel::Generation LlamaModel::Generate(const std::vector<int64_t>& prompt_ids, int max_new_tokens,
                                            const DownOverride* override, const Budget& budget,
                                            bool use_cache) const {
  at::InferenceMode guard;
  Generation out;
  const int64_t room = config_.max_position_embeddings - static_cast<int64_t>(prompt_ids.size());
  max_new_tokens = static_cast<int>(std::min<int64_t>(max_new_tokens, std::max<int64_t>(room, 0)));
  if (max_new_tokens <= 0 || prompt_ids.empty()) return out;
  if (budget.exhausted()) {
    out.stop = Stop::kBudget;
    return out;
  }
  KvCache cache;
  std::vector<int64_t> all = prompt_ids;
  at::Tensor logits = Forward(at::tensor(prompt_ids, id_options()).unsqueeze(0), use_cache ? &cache : nullptr, override);
  int pending = 0;  // continuation bytes the current character still needs
  for (int i = 0; i < max_new_tokens; ++i) {
    at::Tensor last = logits.select(1, logits.size(1) - 1)[0];  // [V]
    if (utf8_barred_.defined()) {
      // Greedy over the ids that keep the text well-formed UTF-8: inside a character only its
      // continuation bytes; elsewhere no stray continuation byte or impossible lead byte.
      last = last.masked_fill(utf8_barred_[pending > 0 ? 1 : 0], -std::numeric_limits<float>::infinity());
    }
    const int64_t next = last.argmax(-1).item<int64_t>();
    pending = Utf8PendingAfter(pending, next);
    if (next == config_.eos_token_id || next == config_.bos_token_id) {
      out.stop = Stop::kEndOfSequence;
      break;
    }
    out.tokens.push_back(next);
    all.push_back(next);
    if (i + 1 == max_new_tokens) break;
    if (budget.exhausted()) {
      out.stop = Stop::kBudget;
      break;
    }
    if (use_cache) {
      logits = Forward(at::tensor(std::vector<int64_t>{next}, id_options()).unsqueeze(0), &cache, override);
    } else {
      logits = Forward(at::tensor(all, id_options()).unsqueeze(0), nullptr, override);
    }
  }
  return out;
}

}  // namespace moke
