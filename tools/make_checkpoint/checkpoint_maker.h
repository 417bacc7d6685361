// Writes a Hugging Face-style LLaMA checkpoint folder of a named (or any) shape with seeded random
// weights: config.json, model.safetensors or sharded model-0000i-of-0000n.safetensors with
// model.safetensors.index.json, and a tokenizer.model copied from a given path. Speed does not depend on
// the weights' values, so such a folder measures the real shape honestly (issue 10). This is the
// project's one checkpoint writer: moke-make-checkpoint, the benchmarks and the model tests
// (tests/model/*) all write their random checkpoints with MakeCheckpoint.
//
// Tensor names are HF's; initial scales keep activations O(1). The numbers come from a counter-based
// generator (SplitMix64 per 1 Mi-element chunk, an Irwin-Hall(4) approximation of a normal), generated
// on all cores and streamed tensor by tensor, so the 7B shape (13.5 GB in bf16) is written in seconds with
// one tensor in memory at a time. The bytes depend only on (shape, dtype, seed): not on the thread count
// nor the shard layout.
//
// No LibTorch here (the tool builds and starts fast). Thread-safety: MakeCheckpoint may run on several
// threads at once for different folders.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/safetensors.h"

namespace moke::tools {

struct CheckpointShape {
  std::string name;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t vocab_size = 0;
  int64_t head_dim = 0;  // 0: hidden_size / num_heads, and "head_dim" is left out of config.json
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;

  int64_t HeadDim() const;
  int64_t NumParameters() const;
};

// The named shapes: "llama2-7b", "llama2-cpu", "tiny" (tests). Unknown names list the known ones.
absl::StatusOr<CheckpointShape> ShapeByName(const std::string& name);
std::vector<std::string> ShapeNames();

struct MakeOptions {
  std::string out_dir;
  CheckpointShape shape;
  DType dtype = DType::kBF16;   // storage dtype (HF LLaMA-2 ships fp16/bf16)
  // 0: max(2, ceil(bytes / max_shard_bytes)); 1: one model.safetensors and no index (HF's layout for
  // small models); n > 1: n shards (at most one per tensor) and model.safetensors.index.json.
  int num_shards = 0;
  int64_t max_shard_bytes = int64_t{2} << 30;
  uint64_t seed = 42;
  std::string tokenizer_model;  // copied to <out>/tokenizer.model (required)
  int threads = 0;              // 0: all hardware threads
  // Where the folder will be loaded: "cpu" checks that the weights fit in memory in float32 (what
  // LlamaModel loads on CPU by default); "cuda" skips the host-memory check (the GPU is checked by the
  // loader on the GPU machine). "none" skips it.
  std::string for_device = "cpu";
  // Test hooks: 0 reads the real value (statvfs of the output folder's file system; MemAvailable).
  int64_t disk_available_bytes = 0;
  int64_t memory_available_bytes = 0;
  bool overwrite = false;
};

struct MakeStats {
  int64_t parameters = 0;
  int64_t file_bytes = 0;  // safetensors data + headers
  int num_shards = 0;
  double seconds = 0;
};

// Bytes the weights take on disk in `dtype` (data only).
int64_t WeightBytes(const CheckpointShape& shape, DType dtype);

// Checks disk and memory, then writes the folder. A shape that does not fit is refused before anything
// is written (RESOURCE_EXHAUSTED, with the bytes needed and the bytes available).
absl::StatusOr<MakeStats> MakeCheckpoint(const MakeOptions& options);

}  // namespace moke::tools
