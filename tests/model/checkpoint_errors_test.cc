// Every broken checkpoint folder gives one error status that names the file (and the tensor, where one
// is at fault), never a crash. The folders are written here, in a temp dir: a tiny valid random
// checkpoint, then one thing broken per test.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/model/llama_model.h"
#include "core/model/safetensors.h"
#include "nlohmann/json.hpp"
#include "tests/testing/paths.h"
#include "tests/testing/temp_dir.h"
#include "tools/make_checkpoint/checkpoint_maker.h"

namespace moke {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::TempDir;

class CheckpointErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spec_.out_dir = dir_.path();
    spec_.shape = {.name = "ckpt_errors", .hidden_size = 16, .intermediate_size = 32, .num_layers = 2, .num_heads = 2,
                   .num_kv_heads = 1, .vocab_size = 512, .max_position_embeddings = 256};
    spec_.dtype = DType::kF32;
    spec_.seed = 1;
    spec_.tokenizer_model = testing::DefaultModelDir() + "/tokenizer.model";
  }
  // Writes the valid checkpoint (one model.safetensors, or shards with an index) and checks that it loads.
  void WriteValid(int shards = 1) {
    spec_.num_shards = shards;
    auto written = tools::MakeCheckpoint(spec_);
    ASSERT_TRUE(written.ok()) << written.status();
    ASSERT_EQ(written->num_shards, shards);
    auto m = Load();
    ASSERT_TRUE(m.ok()) << "the unbroken checkpoint must load: " << m.status();
  }
  absl::StatusOr<std::unique_ptr<LlamaModel>> Load(int64_t memory_limit = 0) {
    return LlamaModel::Load({.dir = dir_.path(), .memory_limit_bytes = memory_limit});
  }
  std::string Read(const std::string& rel) {
    std::ifstream in(dir_ / rel, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void Write(const std::string& rel, const std::string& bytes) {
    std::ofstream(dir_ / rel, std::ios::binary | std::ios::trunc) << bytes;
  }
  // Rewrites config.json through `edit`.
  template <typename F>
  void EditConfig(F edit) {
    nlohmann::json c = nlohmann::json::parse(Read("config.json"));
    edit(c);
    Write("config.json", c.dump());
  }
  // Rewrites model.safetensors with tensor `name` replaced by `blob` (or dropped when blob.name is empty).
  void ReplaceTensor(const std::string& name, const TensorBlob& blob) {
    auto file = SafetensorsFile::Open(dir_ / "model.safetensors");
    ASSERT_TRUE(file.ok()) << file.status();
    std::vector<TensorBlob> out;
    for (const auto& [n, info] : (*file)->tensors()) {
      if (n == name) {
        if (!blob.name.empty()) out.push_back(blob);
        continue;
      }
      const char* p = reinterpret_cast<const char*>((*file)->DataOf(info));
      out.push_back({n, info.dtype, info.shape, std::string(p, info.end - info.begin)});
    }
    file->reset();
    ASSERT_TRUE(WriteSafetensors(dir_ / "model.safetensors", out).ok());
  }

  tools::MakeOptions spec_;
  TempDir dir_{"ckpt_errors"};
};

void ExpectError(const absl::StatusOr<std::unique_ptr<LlamaModel>>& m, absl::StatusCode code,
                 const std::vector<std::string>& parts) {
  ASSERT_FALSE(m.ok()) << "a broken checkpoint loaded";
  EXPECT_EQ(m.status().code(), code) << m.status();
  for (const auto& p : parts) EXPECT_THAT(std::string(m.status().message()), HasSubstr(p));
  // One line, not a backtrace.
  EXPECT_EQ(std::string(m.status().message()).find('\n'), std::string::npos) << m.status();
}

TEST_F(CheckpointErrorsTest, MissingFolder) {
  const std::string missing = dir_ / "no_such_folder";
  ExpectError(LlamaModel::Load({.dir = missing}), absl::StatusCode::kNotFound, {missing});
}

TEST_F(CheckpointErrorsTest, MissingConfig) {
  WriteValid();
  fs::remove(dir_ / "config.json");
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "config.json"});
}

TEST_F(CheckpointErrorsTest, ConfigNotJson) {
  WriteValid();
  Write("config.json", "{\"hidden_size\": 16,");
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "config.json", "not a JSON object"});
}

TEST_F(CheckpointErrorsTest, ConfigMissingKey) {
  WriteValid();
  EditConfig([](nlohmann::json& c) { c.erase("intermediate_size"); });
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "config.json", "intermediate_size"});
}

TEST_F(CheckpointErrorsTest, ConfigWrongType) {
  WriteValid();
  EditConfig([](nlohmann::json& c) { c["num_hidden_layers"] = "two"; });
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "config.json", "num_hidden_layers"});
}

TEST_F(CheckpointErrorsTest, ConfigHeadsNotMultipleOfKvHeads) {
  WriteValid();
  EditConfig([](nlohmann::json& c) { c["num_key_value_heads"] = 3; });
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "config.json", "num_key_value_heads"});
}

TEST_F(CheckpointErrorsTest, TruncatedSafetensors) {
  WriteValid();
  std::string bytes = Read("model.safetensors");
  Write("model.safetensors", bytes.substr(0, bytes.size() - 100));
  // The last tensor in the file (the header is sorted by name) no longer fits.
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "truncated"});
  auto m = Load();
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("tensor \""));
}

TEST_F(CheckpointErrorsTest, SafetensorsShorterThanHeaderLength) {
  WriteValid();
  Write("model.safetensors", "abc");
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "truncated"});
}

TEST_F(CheckpointErrorsTest, HeaderLengthBeyondFile) {
  WriteValid();
  std::string bytes = Read("model.safetensors");
  const uint64_t len = bytes.size();  // 8 + header + data > size - 8
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((len >> (8 * i)) & 0xff);
  Write("model.safetensors", bytes);
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "header length"});
}

TEST_F(CheckpointErrorsTest, HeaderLengthHuge) {
  WriteValid();
  std::string bytes = Read("model.safetensors");
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(0xff);
  Write("model.safetensors", bytes);
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "header length"});
}

TEST_F(CheckpointErrorsTest, HeaderNotJson) {
  WriteValid();
  std::string bytes = Read("model.safetensors");
  bytes[8] = '[';  // '{' becomes '[': the header no longer parses as an object
  bytes[9] = '#';
  Write("model.safetensors", bytes);
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "not a JSON object"});
}

TEST_F(CheckpointErrorsTest, WrongDtypeI32) {
  WriteValid();
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  ReplaceTensor(name, {name, DType::kI32, {32, 16}, std::string(32 * 16 * 4, '\0')});
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", name, "I32"});
}

TEST_F(CheckpointErrorsTest, UnknownDtype) {
  WriteValid();
  std::string bytes = Read("model.safetensors");
  const size_t at = bytes.find("\"F32\"");
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 5, "\"F99\"");
  Write("model.safetensors", bytes);
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors", "F99", "tensor \""});
}

TEST_F(CheckpointErrorsTest, MissingTensor) {
  WriteValid();
  const std::string name = "model.layers.0.self_attn.k_proj.weight";
  ReplaceTensor(name, {});
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "model.safetensors", name});
}

TEST_F(CheckpointErrorsTest, MissingUntiedHead) {
  WriteValid();
  ReplaceTensor("lm_head.weight", {});
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "model.safetensors", "lm_head.weight"});
}

TEST_F(CheckpointErrorsTest, ShapeMismatchWithConfig) {
  WriteValid();
  const std::string name = "model.layers.1.mlp.down_proj.weight";
  ReplaceTensor(name, {name, DType::kF32, {16, 31}, std::string(16 * 31 * 4, '\0')});
  ExpectError(Load(), absl::StatusCode::kInvalidArgument,
              {dir_ / "model.safetensors", name, "[16, 31]", "[16, 32]", "config.json"});
}

TEST_F(CheckpointErrorsTest, ConfigSaysMoreLayersThanStored) {
  WriteValid();
  EditConfig([](nlohmann::json& c) { c["num_hidden_layers"] = 3; });
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "model.safetensors", "model.layers.2."});
}

TEST_F(CheckpointErrorsTest, NoWeightsAtAll) {
  WriteValid();
  fs::remove(dir_ / "model.safetensors");
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_.path(), "model.safetensors"});
}

TEST_F(CheckpointErrorsTest, MissingShardNamedInIndex) {
  WriteValid(/*shards=*/2);
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  // Names the shard and the first tensor that lives in it.
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "model-00002-of-00002.safetensors", "tensor \""});
}

TEST_F(CheckpointErrorsTest, IndexNamesTensorTheShardLacks) {
  WriteValid(/*shards=*/2);
  nlohmann::json index = nlohmann::json::parse(Read("model.safetensors.index.json"));
  const std::string name = "model.norm.weight";
  const std::string was = index["weight_map"][name];
  index["weight_map"][name] = was == "model-00001-of-00002.safetensors" ? "model-00002-of-00002.safetensors"
                                                                        : "model-00001-of-00002.safetensors";
  Write("model.safetensors.index.json", index.dump());
  ExpectError(Load(), absl::StatusCode::kNotFound, {index["weight_map"][name].get<std::string>(), name});
}

TEST_F(CheckpointErrorsTest, IndexNotJson) {
  WriteValid(/*shards=*/2);
  Write("model.safetensors.index.json", "weight_map: nope");
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "model.safetensors.index.json", "weight_map"});
}

TEST_F(CheckpointErrorsTest, IndexLacksTensor) {
  WriteValid(/*shards=*/2);
  nlohmann::json index = nlohmann::json::parse(Read("model.safetensors.index.json"));
  index["weight_map"].erase("model.layers.0.mlp.gate_proj.weight");
  Write("model.safetensors.index.json", index.dump());
  ExpectError(Load(), absl::StatusCode::kNotFound,
              {dir_ / "model.safetensors.index.json", "model.layers.0.mlp.gate_proj.weight"});
}

TEST_F(CheckpointErrorsTest, MissingTokenizer) {
  WriteValid();
  fs::remove(dir_ / "tokenizer.model");
  ExpectError(Load(), absl::StatusCode::kNotFound, {dir_ / "tokenizer.model"});
}

TEST_F(CheckpointErrorsTest, CorruptTokenizer) {
  WriteValid();
  Write("tokenizer.model", "this is not a sentencepiece model");
  auto m = Load();
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr(dir_ / "tokenizer.model"));
}

TEST_F(CheckpointErrorsTest, TokenizerLargerThanVocab) {
  WriteValid();
  EditConfig([](nlohmann::json& c) { c["vocab_size"] = 100; });
  ExpectError(Load(), absl::StatusCode::kInvalidArgument, {dir_ / "tokenizer.model", "vocab_size"});
}

TEST_F(CheckpointErrorsTest, MemoryLimitRefusedBeforeLoading) {
  WriteValid();
  auto ok = Load();
  ASSERT_TRUE(ok.ok()) << ok.status();
  const int64_t need = (*ok)->config().NumParameters() * 4;
  EXPECT_EQ(need, (*ok)->load_stats().weight_bytes);
  // The exact need still loads; one byte less is refused with the number of bytes needed.
  EXPECT_TRUE(Load(need).ok());
  ExpectError(Load(need - 1), absl::StatusCode::kResourceExhausted, {dir_.path(), std::to_string(need)});
  // Refused before any weight is read: a corrupt weights file does not change the answer.
  Write("model.safetensors", "garbage");
  ExpectError(Load(need - 1), absl::StatusCode::kResourceExhausted, {std::to_string(need)});
}

TEST_F(CheckpointErrorsTest, BadLoadOptions) {
  WriteValid();
  ExpectError(LlamaModel::Load({.dir = dir_.path(), .dtype = "int8"}), absl::StatusCode::kInvalidArgument, {"int8"});
  ExpectError(LlamaModel::Load({.dir = dir_.path(), .device = "tpu:7"}), absl::StatusCode::kInvalidArgument,
              {"tpu:7"});
}

}  // namespace
}  // namespace moke
