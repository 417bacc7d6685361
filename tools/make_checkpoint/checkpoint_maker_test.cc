// moke-make-checkpoint: its folders load with LlamaModel::Load; its bytes depend only on (shape, dtype,
// seed); a shape that does not fit is refused with the bytes needed and the bytes available, by the tool
// and by the loader; a missing shard is named.
#include "tools/make_checkpoint/checkpoint_maker.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/model/llama_model.h"
#include "core/model/safetensors.h"
#include "tests/testing/temp_dir.h"

namespace moke::tools {
namespace {

namespace fs = std::filesystem;

std::string Tokenizer() {
  const std::string shared = MOKE_SHARED_DIR "/models/llama2-tokenizer/tokenizer.model";
  return fs::exists(shared) ? shared : std::string(MOKE_DEFAULT_MODEL_DIR) + "/tokenizer.model";
}

using moke::testing::TempDir;

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

MakeOptions Tiny(const std::string& dir) {
  MakeOptions o;
  o.out_dir = dir;
  o.shape = *ShapeByName("tiny");
  o.num_shards = 3;
  o.tokenizer_model = Tokenizer();
  return o;
}

TEST(CheckpointMaker, SevenBHasTheRealParameterCount) {
  auto s = ShapeByName("llama2-7b");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->NumParameters(), 6738415616);  // LLaMA-2-7B
  EXPECT_EQ(WeightBytes(*s, DType::kBF16), 2 * int64_t{6738415616});
  EXPECT_FALSE(ShapeByName("llama2-70b").ok());
}

TEST(CheckpointMaker, OutputLoadsWithLlamaModel) {
  TempDir dir("ckpt");
  auto stats = MakeCheckpoint(Tiny(dir.path()));
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->num_shards, 3);
  for (const char* f : {"config.json", "tokenizer.model", "model.safetensors.index.json", "model-00001-of-00003.safetensors",
                        "model-00003-of-00003.safetensors"}) {
    EXPECT_TRUE(fs::exists(fs::path(dir.path()) / f)) << f;
  }
  auto m = LlamaModel::Load({.dir = dir.path()});
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = (*m)->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.vocab_size, 32000);
  EXPECT_EQ((*m)->load_stats().num_shards, 3);
  EXPECT_EQ((*m)->load_stats().weight_bytes, stats->parameters * 4);  // float32 on CPU
  EXPECT_EQ(c.NumParameters(), stats->parameters);
  auto ids = (*m)->EncodePrompt("The capital of France is");
  at::Tensor logits = (*m)->Forward(at::tensor(ids, (*m)->id_options()).unsqueeze(0));
  EXPECT_EQ(logits.size(2), 32000);
  EXPECT_TRUE(at::isfinite(logits).all().item<bool>());
  // Weights look like the intended distribution (norm weights ~ 1 + 0.1 N(0,1)).
  EXPECT_NEAR((*m)->down_weight(0).std().item<double>(), 0.5 / std::sqrt(172.0), 0.01);
  EXPECT_EQ((*m)->Generate(ids, 4).tokens.size(), 4u);
}

TEST(CheckpointMaker, BytesDependOnlyOnShapeDtypeAndSeed) {
  TempDir a("ckpt_a"), b("ckpt_b"), c("ckpt_c");
  MakeOptions oa = Tiny(a.path()), ob = Tiny(b.path()), oc = Tiny(c.path());
  oa.threads = 1;
  ob.threads = 2;
  oc.seed = 7;
  ASSERT_TRUE(MakeCheckpoint(oa).ok());
  ASSERT_TRUE(MakeCheckpoint(ob).ok());
  ASSERT_TRUE(MakeCheckpoint(oc).ok());
  const std::string f = "model-00002-of-00003.safetensors";
  EXPECT_EQ(Slurp(fs::path(a.path()) / f), Slurp(fs::path(b.path()) / f));
  EXPECT_NE(Slurp(fs::path(a.path()) / f), Slurp(fs::path(c.path()) / f));
}

TEST(CheckpointMaker, TooBigForDiskIsRefusedWithBytes) {
  TempDir dir("ckpt");
  MakeOptions o = Tiny(dir.path());
  o.disk_available_bytes = 1000;
  auto st = MakeCheckpoint(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kResourceExhausted);
  const std::string need = absl::StrCat(WeightBytes(o.shape, DType::kBF16) + (int64_t{1} << 20));
  EXPECT_NE(st.status().message().find(need + " bytes"), std::string::npos) << st.status();
  EXPECT_NE(st.status().message().find("only 1000 bytes"), std::string::npos) << st.status();
  EXPECT_TRUE(fs::is_empty(dir.path()));  // refused before anything is written
}

TEST(CheckpointMaker, SevenBTooBigForMemoryIsRefusedWithBytes) {
  TempDir dir("ckpt");
  MakeOptions o = Tiny(dir.path());
  o.shape = *ShapeByName("llama2-7b");
  o.memory_available_bytes = int64_t{16} << 30;
  auto st = MakeCheckpoint(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.status().message().find("needs 26953662464 bytes"), std::string::npos) << st.status();
  EXPECT_NE(st.status().message().find(absl::StrCat("only ", int64_t{16} << 30, " bytes")), std::string::npos) << st.status();
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(CheckpointMaker, ToolExitsThreeAndPrintsBytes) {
  TempDir dir("ckpt");
  const std::string log = dir.path() + ".log";
  const std::string cmd = absl::StrCat(MOKE_MAKE_CHECKPOINT, " --shape tiny --out ", dir.path(), " --tokenizer ", Tokenizer(),
                                       " --disk-available-bytes 4096 2> ", log);
  const int rc = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(rc));
  EXPECT_EQ(WEXITSTATUS(rc), 3);
  const std::string err = Slurp(log);
  fs::remove(log);
  EXPECT_NE(err.find("only 4096 bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("needs "), std::string::npos) << err;
}

TEST(CheckpointMaker, LoaderRefusesTooBigWithBytes) {
  TempDir dir("ckpt");
  auto stats = MakeCheckpoint(Tiny(dir.path()));
  ASSERT_TRUE(stats.ok());
  auto m = LlamaModel::Load({.dir = dir.path(), .memory_limit_bytes = 1000});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(m.status().message().find(absl::StrCat(stats->parameters * 4)), std::string::npos) << m.status();
  EXPECT_NE(m.status().message().find("1000 bytes"), std::string::npos) << m.status();
}

TEST(CheckpointMaker, MissingShardIsNamed) {
  TempDir dir("ckpt");
  ASSERT_TRUE(MakeCheckpoint(Tiny(dir.path())).ok());
  fs::remove(fs::path(dir.path()) / "model-00002-of-00003.safetensors");
  auto m = LlamaModel::Load({.dir = dir.path()});
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model-00002-of-00003.safetensors"), std::string::npos) << m.status();
}

// One shard is HF's small-model layout: model.safetensors and no index. An explicit head_dim goes into
// config.json and sets the attention projections' shapes: q [H * head_dim, d], k/v [KV * head_dim, d].
TEST(CheckpointMaker, OneShardIsOneFileAndHeadDimIsWritten) {
  TempDir dir("ckpt_one");
  MakeOptions o = Tiny(dir.path());
  o.num_shards = 1;
  o.dtype = DType::kF32;
  o.shape.num_kv_heads = 2;
  o.shape.head_dim = 32;  // H * head_dim = 128 != hidden_size 64
  auto stats = MakeCheckpoint(o);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->num_shards, 1);
  EXPECT_TRUE(fs::exists(fs::path(dir.path()) / "model.safetensors"));
  EXPECT_FALSE(fs::exists(fs::path(dir.path()) / "model.safetensors.index.json"));
  EXPECT_NE(Slurp(fs::path(dir.path()) / "config.json").find("\"head_dim\": 32"), std::string::npos);
  auto file = SafetensorsFile::Open(fs::path(dir.path()) / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().at("model.layers.1.self_attn.q_proj.weight").shape, (std::vector<int64_t>{128, 64}));
  EXPECT_EQ((*file)->tensors().at("model.layers.1.self_attn.k_proj.weight").shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ((*file)->tensors().at("model.layers.1.self_attn.o_proj.weight").shape, (std::vector<int64_t>{64, 128}));
  // 2 layers x (q 128x64 + k, v 64x64 + o 64x128 + gate, up 172x64 + down 64x172 + 2 norms of 64)
  // + embeddings and head 32000x64 each + final norm 64.
  const int64_t layer = 128 * 64 + 2 * 64 * 64 + 64 * 128 + 3 * 172 * 64 + 2 * 64;
  EXPECT_EQ(stats->parameters, 2 * layer + 2 * 32000 * 64 + 64);
  auto m = LlamaModel::Load({.dir = dir.path()});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ((*m)->load_stats().num_shards, 1);
  EXPECT_EQ((*m)->config().NumParameters(), stats->parameters);
}

TEST(CheckpointMaker, OddHeadDimIsRefused) {
  TempDir dir("ckpt_odd");
  MakeOptions o = Tiny(dir.path());
  o.shape.head_dim = 15;
  auto st = MakeCheckpoint(o);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("head_dim 15"), std::string::npos) << st.status();
}

}  // namespace
}  // namespace moke::tools
