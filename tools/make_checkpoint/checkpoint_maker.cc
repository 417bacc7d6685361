#include "tools/make_checkpoint/checkpoint_maker.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace moke::tools {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kChunk = int64_t{1} << 20;  // elements per generator stream

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Round-to-nearest-even float -> bfloat16 / IEEE half.
uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFF + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
uint16_t ToF16(float f) {
  // Values here are small (|x| < ~10), normal range only; subnormals flush to zero.
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = static_cast<int32_t>((u >> 23) & 0xFF) - 127 + 15;
  uint32_t mant = u & 0x7FFFFF;
  if (exp <= 0) return static_cast<uint16_t>(sign);
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7C00);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
  return static_cast<uint16_t>(h);
}

// One tensor to write: name, shape, and the distribution mean + std * N(0,1).
struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  double mean = 0, std = 1;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
};

// The tensors in HF naming and order. Scales keep activations O(1) and logits spread by several units,
// so greedy decoding has clear winners.
std::vector<Spec> Specs(const CheckpointShape& s) {
  const int64_t d = s.hidden_size, f = s.intermediate_size, hd = s.HeadDim();
  const double sd = std::sqrt(static_cast<double>(d));
  std::vector<Spec> out;
  out.push_back({"model.embed_tokens.weight", {s.vocab_size, d}, 0, 1.0});
  for (int64_t l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    out.push_back({p + "input_layernorm.weight", {d}, 1.0, 0.1});
    out.push_back({p + "self_attn.q_proj.weight", {s.num_heads * hd, d}, 0, 1.5 / sd});
    out.push_back({p + "self_attn.k_proj.weight", {s.num_kv_heads * hd, d}, 0, 1.5 / sd});
    out.push_back({p + "self_attn.v_proj.weight", {s.num_kv_heads * hd, d}, 0, 1.0 / sd});
    out.push_back({p + "self_attn.o_proj.weight", {d, s.num_heads * hd}, 0,
                   0.5 / std::sqrt(static_cast<double>(s.num_heads * hd))});
    out.push_back({p + "post_attention_layernorm.weight", {d}, 1.0, 0.1});
    out.push_back({p + "mlp.gate_proj.weight", {f, d}, 0, 1.0 / sd});
    out.push_back({p + "mlp.up_proj.weight", {f, d}, 0, 1.0 / sd});
    out.push_back({p + "mlp.down_proj.weight", {d, f}, 0, 0.5 / std::sqrt(static_cast<double>(f))});
  }
  out.push_back({"model.norm.weight", {d}, 1.0, 0.1});
  if (!s.tie_word_embeddings) out.push_back({"lm_head.weight", {s.vocab_size, d}, 0, 3.0 / sd});
  return out;
}

// Fills `out` (numel elements of `elem` bytes) with tensor `index`'s values, chunks spread over threads.
void Generate(const Spec& spec, uint64_t seed, uint64_t index, DType dtype, int threads, char* out) {
  const int64_t n = spec.numel();
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (int64_t c; (c = next.fetch_add(1)) < chunks;) {
      uint64_t state = seed * 0xD1342543DE82EF95ULL ^ (index + 1) * 0x9E3779B97F4A7C15ULL ^
                       static_cast<uint64_t>(c) * 0xC2B2AE3D27D4EB4FULL;
      SplitMix64(state);
      const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      for (int64_t i = b; i < e; ++i) {
        const uint64_t r = SplitMix64(state);
        // Irwin-Hall(4): four 16-bit uniforms, centred; variance 1/3, so times sqrt(3) is ~N(0,1).
        double s = -2.0;
        for (int k = 0; k < 4; ++k) s += (static_cast<double>((r >> (16 * k)) & 0xFFFF) + 0.5) / 65536.0;
        const float v = static_cast<float>(spec.mean + spec.std * s * 1.7320508075688772);
        switch (dtype) {
          case DType::kF32: std::memcpy(out + 4 * i, &v, 4); break;
          case DType::kBF16: {
            const uint16_t h = ToBf16(v);
            std::memcpy(out + 2 * i, &h, 2);
            break;
          }
          default: {
            const uint16_t h = ToF16(v);
            std::memcpy(out + 2 * i, &h, 2);
            break;
          }
        }
      }
    }
  };
  const int nt = static_cast<int>(std::min<int64_t>(threads, chunks));
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

int64_t ReadMemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string k, unit;
  int64_t v = 0;
  while (in >> k >> v >> unit) {
    if (k == "MemAvailable:") return v * 1024;
  }
  return -1;
}

int64_t DiskAvailable(const fs::path& dir) {
  fs::path p = fs::absolute(dir);
  while (!p.empty() && !fs::exists(p)) p = p.parent_path();
  struct statvfs sv;
  if (::statvfs(p.c_str(), &sv) != 0) return -1;
  return static_cast<int64_t>(sv.f_bavail) * static_cast<int64_t>(sv.f_frsize);
}

std::string GiB(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / double(int64_t{1} << 30));
  return buf;
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path.string(), ": write failed"));
  return absl::OkStatus();
}

}  // namespace

int64_t CheckpointShape::HeadDim() const { return head_dim > 0 ? head_dim : hidden_size / std::max<int64_t>(1, num_heads); }

int64_t CheckpointShape::NumParameters() const {
  int64_t n = 0;
  for (const Spec& s : Specs(*this)) n += s.numel();
  return n;
}

std::vector<std::string> ShapeNames() { return {"llama2-7b", "llama2-cpu", "tiny"}; }

absl::StatusOr<CheckpointShape> ShapeByName(const std::string& name) {
  CheckpointShape s;
  s.name = name;
  if (name == "llama2-7b") {
    s.hidden_size = 4096, s.intermediate_size = 11008, s.num_layers = 32, s.num_heads = 32, s.num_kv_heads = 32;
    s.vocab_size = 32000, s.max_position_embeddings = 4096;
  } else if (name == "llama2-cpu") {
    // LLaMA-2-7B's proportions (d_ff / d_model = 2.6875, head_dim 64 here, untied head, same vocabulary
    // and tokenizer) at 1/8 of the width; 4 layers keep an edit stream within a few minutes on 2 cores.
    s.hidden_size = 512, s.intermediate_size = 1376, s.num_layers = 4, s.num_heads = 8, s.num_kv_heads = 8;
    s.vocab_size = 32000, s.max_position_embeddings = 4096;
  } else if (name == "tiny") {
    s.hidden_size = 64, s.intermediate_size = 172, s.num_layers = 2, s.num_heads = 4, s.num_kv_heads = 4;
    s.vocab_size = 32000, s.max_position_embeddings = 512;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown shape \"", name, "\" (known: ", absl::StrJoin(ShapeNames(), ", "), ")"));
  }
  return s;
}

int64_t WeightBytes(const CheckpointShape& shape, DType dtype) {
  return shape.NumParameters() * static_cast<int64_t>(DTypeSize(dtype));
}

absl::StatusOr<MakeStats> MakeCheckpoint(const MakeOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const CheckpointShape& s = o.shape;
  if (s.hidden_size <= 0 || s.intermediate_size <= 0 || s.num_layers <= 0 || s.num_heads <= 0 ||
      s.num_kv_heads <= 0 || s.vocab_size <= 0 || s.head_dim < 0 ||
      (s.head_dim == 0 && s.hidden_size % s.num_heads != 0) || s.HeadDim() % 2 != 0 ||
      s.num_heads % s.num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat("shape \"", s.name, "\" is inconsistent (hidden_size ", s.hidden_size,
                                                   ", heads ", s.num_heads, ", kv heads ", s.num_kv_heads, ", head_dim ",
                                                   s.HeadDim(), ")"));
  }
  if (o.dtype != DType::kF32 && o.dtype != DType::kBF16 && o.dtype != DType::kF16) {
    return absl::InvalidArgumentError("dtype must be float32, bfloat16 or float16");
  }
  if (o.out_dir.empty()) return absl::InvalidArgumentError("no output folder given");
  if (o.tokenizer_model.empty() || !fs::is_regular_file(o.tokenizer_model)) {
    return absl::NotFoundError(absl::StrCat("tokenizer \"", o.tokenizer_model, "\": no such file (pass --tokenizer)"));
  }
  const fs::path out(o.out_dir);
  if (fs::exists(out) && !fs::is_empty(out) && !o.overwrite) {
    return absl::AlreadyExistsError(absl::StrCat(o.out_dir, ": exists and is not empty (pass --overwrite)"));
  }

  const std::vector<Spec> specs = Specs(s);
  MakeStats stats;
  stats.parameters = s.NumParameters();
  const int64_t data_bytes = WeightBytes(s, o.dtype);

  // ---- Fits? Checked before anything is written. ----
  const int64_t disk_need = data_bytes + (int64_t{1} << 20);  // + headers, config, tokenizer (< 1 MiB)
  const int64_t disk_have = o.disk_available_bytes > 0 ? o.disk_available_bytes : DiskAvailable(out);
  if (disk_have >= 0 && disk_need > disk_have) {
    return absl::ResourceExhaustedError(absl::StrCat("shape \"", s.name, "\" (", stats.parameters, " parameters in ",
                                                     DTypeName(o.dtype), ") needs ", disk_need, " bytes (", GiB(disk_need),
                                                     ") on disk but only ", disk_have, " bytes (", GiB(disk_have),
                                                     ") are available under ", o.out_dir));
  }
  if (o.for_device == "cpu") {
    const int64_t mem_need = stats.parameters * 4;  // LlamaModel loads float32 on CPU ("auto")
    const int64_t mem_have = o.memory_available_bytes > 0 ? o.memory_available_bytes : ReadMemAvailable();
    if (mem_have >= 0 && mem_need > mem_have) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "shape \"", s.name, "\" needs ", mem_need, " bytes (", GiB(mem_need), ") of memory to load in float32 on CPU but only ",
          mem_have, " bytes (", GiB(mem_have), ") are available (MemAvailable); pass --for-device cuda to write it for a GPU"));
    }
  } else if (o.for_device != "cuda" && o.for_device != "none") {
    return absl::InvalidArgumentError(absl::StrCat("--for-device \"", o.for_device, "\" (cpu, cuda, none)"));
  }

  // ---- Shard layout: contiguous runs of tensors, about equal bytes. ----
  const int64_t elem = static_cast<int64_t>(DTypeSize(o.dtype));
  int shards = o.num_shards > 0 ? o.num_shards
                                : static_cast<int>(std::max<int64_t>(2, (data_bytes + o.max_shard_bytes - 1) / o.max_shard_bytes));
  shards = static_cast<int>(std::min<int64_t>(shards, static_cast<int64_t>(specs.size())));
  std::vector<std::vector<size_t>> parts(shards);
  {
    const double per = static_cast<double>(data_bytes) / shards;
    int64_t acc = 0;
    for (size_t i = 0; i < specs.size(); ++i) {
      int k = std::min<int>(shards - 1, static_cast<int>(acc / per));
      // Keep every shard non-empty: leave at least one tensor for each remaining shard.
      k = std::max<int>(k, shards - static_cast<int>(specs.size() - i));
      parts[k].push_back(i);
      acc += specs[i].numel() * elem;
    }
  }

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) return absl::InternalError(absl::StrCat(o.out_dir, ": ", ec.message()));
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string n = e.path().filename().string();
    if (n.ends_with(".safetensors") || n == "model.safetensors.index.json") fs::remove(e.path(), ec);
  }
  fs::copy_file(o.tokenizer_model, out / "tokenizer.model", fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat(o.tokenizer_model, ": ", ec.message()));

  const char* torch_dtype = o.dtype == DType::kF32 ? "float32" : o.dtype == DType::kF16 ? "float16" : "bfloat16";
  nlohmann::json config = {
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
      {"initializer_range", 0.02},
      {"tie_word_embeddings", s.tie_word_embeddings},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"pad_token_id", 0},
      {"torch_dtype", torch_dtype},
      {"moke_random_checkpoint", {{"shape", s.name}, {"seed", o.seed}, {"generator", "splitmix64-irwinhall4"}}},
  };
  if (s.head_dim > 0) config["head_dim"] = s.head_dim;
  if (auto st = WriteText(out / "config.json", config.dump(2)); !st.ok()) return st;

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  nlohmann::json index = {{"metadata", {{"total_size", data_bytes}}}, {"weight_map", nlohmann::json::object()}};
  std::vector<char> buf;
  for (int k = 0; k < shards; ++k) {
    char name[64];
    if (shards == 1) {
      std::snprintf(name, sizeof(name), "model.safetensors");
    } else {
      std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", k + 1, shards);
    }
    // Header: every offset is known from the shapes, so the data streams after it.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    header["__metadata__"] = {{"format", "pt"}};
    int64_t off = 0;
    for (size_t i : parts[k]) {
      const int64_t bytes = specs[i].numel() * elem;
      header[specs[i].name] = {{"dtype", DTypeName(o.dtype)}, {"shape", specs[i].shape}, {"data_offsets", {off, off + bytes}}};
      off += bytes;
      index["weight_map"][specs[i].name] = name;
    }
    std::string h = header.dump();
    while (h.size() % 8 != 0) h.push_back(' ');
    const fs::path path = out / name;
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), &std::fclose);
    if (!f) return absl::InternalError(absl::StrCat(path.string(), ": cannot create: ", std::strerror(errno)));
    uint8_t len[8];
    for (int b = 0; b < 8; ++b) len[b] = static_cast<uint8_t>((static_cast<uint64_t>(h.size()) >> (8 * b)) & 0xFF);
    bool ok = std::fwrite(len, 1, 8, f.get()) == 8 && std::fwrite(h.data(), 1, h.size(), f.get()) == h.size();
    for (size_t i : parts[k]) {
      if (!ok) break;
      const int64_t bytes = specs[i].numel() * elem;
      buf.resize(static_cast<size_t>(bytes));
      Generate(specs[i], o.seed, i, o.dtype, threads, buf.data());
      ok = std::fwrite(buf.data(), 1, buf.size(), f.get()) == buf.size();
    }
    if (!ok || std::fflush(f.get()) != 0) {
      return absl::InternalError(absl::StrCat(path.string(), ": write failed: ", std::strerror(errno)));
    }
    stats.file_bytes += 8 + static_cast<int64_t>(h.size()) + off;
  }
  if (shards > 1) {
    if (auto st = WriteText(out / "model.safetensors.index.json", index.dump(2)); !st.ok()) return st;
  }
  stats.num_shards = shards;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace moke::tools
