// Compares the C++ decoder with tests/reference/llama_reference.py, an independent float64 forward pass
// run under Debian's /usr/bin/python3 (python3-torch, python3-numpy): on the embedded small model and on
// random checkpoints of other shapes written here (untied head, GQA ratios 1 and 4, an explicit
// head_dim, two shards with an index, BF16 and F16 storage). Also compares the C++ tokenizer with
// python3-sentencepiece on the LLaMA-2 tokenizer.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/model/llama_model.h"
#include "nlohmann/json.hpp"
#include "tests/testing/paths.h"
#include "tests/testing/temp_dir.h"
#include "tools/make_checkpoint/checkpoint_maker.h"

namespace moke {
namespace {

using nlohmann::json;
using testing::TempDir;

constexpr char kPython[] = "/usr/bin/python3";
constexpr double kMaxLogitDiff = 1e-3;

std::string ReferenceScript() { return testing::SourceDir() + "/tests/reference/llama_reference.py"; }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Empty when /usr/bin/python3 can import what the reference needs; otherwise why not.
std::string PythonMissing(const std::string& modules) {
  if (!std::filesystem::exists(kPython)) return std::string(kPython) + " is not installed";
  const std::string cmd = std::string(kPython) + " -c 'import " + modules + "' >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    return std::string(kPython) + " cannot import " + modules +
           " (apt-get install python3-torch python3-numpy python3-sentencepiece)";
  }
  return "";
}

#define REQUIRE_PYTHON(modules)                                            \
  do {                                                                     \
    if (std::string why = PythonMissing(modules); !why.empty()) {          \
      GTEST_SKIP() << "skipped: " << why;                                  \
    }                                                                      \
  } while (0)

// Runs the reference script's `sub` command on `request`; returns its JSON output.
json RunReference(const std::string& sub, const std::string& args, const json& request) {
  TempDir io("ref_io");
  const std::string in = io / "in.json", out = io / "out.json", err = io / "err.txt";
  std::ofstream(in) << request.dump();
  const std::string cmd = std::string(kPython) + " '" + ReferenceScript() + "' " + sub + " " + args + " --input '" +
                          in + "' --output '" + out + "' 2>'" + err + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd << "\n" << Slurp(err);
  if (rc != 0) return json();
  return json::parse(Slurp(out));
}

struct Comparison {
  double max_logit_diff = 0;
  int prompts = 0;
  int greedy_tokens = 0;
};

// Checks every prompt's logits (all positions), per-position argmax and greedy continuation.
Comparison CompareWithReference(const LlamaModel& model, const std::string& dir,
                                const std::vector<std::vector<int64_t>>& prompts, int max_new_tokens) {
  Comparison cmp;
  json ref = RunReference("forward", "--model '" + dir + "'", {{"prompts", prompts}, {"max_new_tokens", max_new_tokens}});
  if (ref.is_null()) return cmp;
  EXPECT_EQ(ref["results"].size(), prompts.size());
  at::InferenceMode guard;
  for (size_t i = 0; i < prompts.size() && i < ref["results"].size(); ++i) {
    const auto& r = ref["results"][i];
    const auto& ids = prompts[i];
    at::Tensor logits = model.Forward(at::tensor(ids, model.id_options()).unsqueeze(0))[0];  // [T, V]
    std::vector<std::vector<double>> all = r["all_logits"].get<std::vector<std::vector<double>>>();
    EXPECT_EQ(static_cast<int64_t>(all.size()), logits.size(0));
    if (static_cast<int64_t>(all.size()) != logits.size(0)) return cmp;
    std::vector<double> flat;
    for (const auto& row : all) flat.insert(flat.end(), row.begin(), row.end());
    at::Tensor want = at::tensor(flat, at::kDouble).view({logits.size(0), logits.size(1)});
    const double diff = (logits.to(at::kDouble) - want).abs().max().item<double>();
    cmp.max_logit_diff = std::max(cmp.max_logit_diff, diff);
    EXPECT_LT(diff, kMaxLogitDiff) << "prompt " << i;
    // The last position on its own, as the reference reports it.
    at::Tensor last = at::tensor(r["last_logits"].get<std::vector<double>>(), at::kDouble);
    EXPECT_LT((logits[-1].to(at::kDouble) - last).abs().max().item<double>(), kMaxLogitDiff) << "prompt " << i;
    at::Tensor am = logits.argmax(-1).contiguous();
    std::vector<int64_t> got_argmax(am.data_ptr<int64_t>(), am.data_ptr<int64_t>() + am.numel());
    EXPECT_EQ(got_argmax, r["argmax"].get<std::vector<int64_t>>()) << "prompt " << i;
    const auto want_greedy = r["greedy"].get<std::vector<int64_t>>();
    EXPECT_EQ(model.Generate(ids, max_new_tokens).tokens, want_greedy)
        << "prompt " << i << " (smallest top-1/top-2 gap in the reference: " << r["greedy_margin"] << ")";
    cmp.greedy_tokens += static_cast<int>(want_greedy.size());
    ++cmp.prompts;
  }
  std::cout << "[ reference ] " << dir << ": " << cmp.prompts << " prompts, max |logit diff| " << cmp.max_logit_diff
            << ", " << cmp.greedy_tokens << " reference greedy tokens compared\n";
  return cmp;
}

std::vector<std::vector<int64_t>> Tokenize(const LlamaModel& model, const std::vector<std::string>& texts) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& t : texts) out.push_back(model.EncodePrompt(t));
  return out;
}

const std::vector<std::string> kPrompts = {
    "Once upon a time",
    "Lily saw a big red ball in the park.",
    "The dog ran",
    "Tom and Sue were friends. They liked to play with their 3 toys",
    "Café, naïve — 42!",
};

TEST(ReferenceCompareTest, SmallModelMatchesIndependentForward) {
  REQUIRE_PYTHON("torch, numpy");
  const std::string dir = testing::DefaultModelDir();
  auto model = LlamaModel::Load({.dir = dir});
  ASSERT_TRUE(model.ok()) << model.status();
  Comparison c = CompareWithReference(**model, dir, Tokenize(**model, kPrompts), 24);
  EXPECT_EQ(c.prompts, static_cast<int>(kPrompts.size()));
  EXPECT_GT(c.greedy_tokens, 60);  // the small model writes on; EOS right away would prove little
  RecordProperty("max_logit_diff", std::to_string(c.max_logit_diff));
}

// Right-padded batches give each row the logits it gets alone (attention is causal).
TEST(ReferenceCompareTest, SmallModelBatchRowsMatchReference) {
  REQUIRE_PYTHON("torch, numpy");
  const std::string dir = testing::DefaultModelDir();
  auto model = LlamaModel::Load({.dir = dir});
  ASSERT_TRUE(model.ok()) << model.status();
  auto prompts = Tokenize(**model, {"Once upon a time", "Lily saw a big red ball in the park."});
  json ref = RunReference("forward", "--model '" + dir + "'", {{"prompts", prompts}, {"max_new_tokens", 0}});
  ASSERT_FALSE(ref.is_null());
  const int64_t T = std::max(prompts[0].size(), prompts[1].size());
  std::vector<int64_t> padded;
  for (auto p : prompts) {
    p.resize(T, 0);
    padded.insert(padded.end(), p.begin(), p.end());
  }
  at::InferenceMode guard;
  at::Tensor logits = (*model)->Forward(at::tensor(padded, (*model)->id_options()).view({2, T}));  // [2, T, V]
  for (int b = 0; b < 2; ++b) {
    const int64_t n = static_cast<int64_t>(prompts[b].size());
    at::Tensor last = at::tensor(ref["results"][b]["last_logits"].get<std::vector<double>>(), at::kDouble);
    EXPECT_LT((logits[b][n - 1].to(at::kDouble) - last).abs().max().item<double>(), kMaxLogitDiff) << "row " << b;
  }
}

struct RandomCase {
  const char* name;
  tools::MakeOptions spec;  // out_dir and tokenizer_model are filled in by the test
  int max_new_tokens;
};

// A small float32 checkpoint in one file; each case changes what it tests.
RandomCase Case(const char* name, int max_new_tokens) {
  RandomCase c{name, {}, max_new_tokens};
  c.spec.shape.name = name;
  c.spec.shape.vocab_size = 512;
  c.spec.shape.max_position_embeddings = 256;
  c.spec.dtype = DType::kF32;
  c.spec.num_shards = 1;
  return c;
}

void PrintTo(const RandomCase& c, std::ostream* os) { *os << c.name; }

class RandomCheckpointCompareTest : public ::testing::TestWithParam<RandomCase> {};

TEST_P(RandomCheckpointCompareTest, MatchesIndependentForward) {
  REQUIRE_PYTHON("torch, numpy");
  TempDir dir(GetParam().name);
  tools::MakeOptions spec = GetParam().spec;
  spec.out_dir = dir.path();
  spec.tokenizer_model = testing::DefaultModelDir() + "/tokenizer.model";
  auto written = tools::MakeCheckpoint(spec);
  ASSERT_TRUE(written.ok()) << written.status();
  auto model = LlamaModel::Load({.dir = dir.path(), .dtype = "float32"});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->load_stats().num_shards, std::max(spec.num_shards, 1));
  EXPECT_EQ((*model)->config().NumParameters() * 4, (*model)->load_stats().weight_bytes);
  Comparison c = CompareWithReference(**model, dir.path(), Tokenize(**model, kPrompts), GetParam().max_new_tokens);
  EXPECT_EQ(c.prompts, static_cast<int>(kPrompts.size()));
}

RandomCase UntiedGqa4Bf16TwoShards() {
  RandomCase c = Case("untied_gqa4_bf16_2shards", 10);
  c.spec.shape.hidden_size = 64;
  c.spec.shape.intermediate_size = 144;
  c.spec.shape.num_layers = 3;
  c.spec.shape.num_heads = 8;
  c.spec.shape.num_kv_heads = 2;  // 4 query heads per kv head
  c.spec.shape.vocab_size = 600;  // more rows than the tokenizer has pieces
  c.spec.shape.rope_theta = 500000.0;
  c.spec.shape.rms_norm_eps = 1e-6;
  c.spec.shape.tie_word_embeddings = false;
  c.spec.dtype = DType::kBF16;
  c.spec.num_shards = 2;
  c.spec.seed = 7;
  return c;
}

RandomCase TiedMhaF16HeadDim() {
  RandomCase c = Case("tied_mha_f16_headdim", 24);
  c.spec.shape.hidden_size = 48;
  c.spec.shape.intermediate_size = 96;
  c.spec.shape.num_layers = 2;
  c.spec.shape.num_heads = 4;
  c.spec.shape.num_kv_heads = 4;  // plain multi-head attention
  c.spec.shape.head_dim = 16;     // H * head_dim = 64 != hidden_size
  c.spec.shape.max_position_embeddings = 32;  // the longer prompts run into the context window
  c.spec.shape.tie_word_embeddings = true;
  c.spec.dtype = DType::kF16;
  c.spec.seed = 11;
  return c;
}

RandomCase UntiedGqa1F32ThreeShards() {
  RandomCase c = Case("untied_f32_3shards", 16);
  c.spec.shape.hidden_size = 32;
  c.spec.shape.intermediate_size = 88;
  c.spec.shape.num_layers = 4;
  c.spec.shape.num_heads = 2;
  c.spec.shape.num_kv_heads = 2;
  c.spec.num_shards = 3;
  c.spec.seed = 3;
  return c;
}

INSTANTIATE_TEST_SUITE_P(Shapes, RandomCheckpointCompareTest,
                         ::testing::Values(UntiedGqa4Bf16TwoShards(), TiedMhaF16HeadDim(), UntiedGqa1F32ThreeShards()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ReferenceCompareTest, TokenizerMatchesPythonSentencepieceOnLlama2) {
  MOKE_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  REQUIRE_PYTHON("sentencepiece");
  const std::string path = testing::SharedDir() + "/models/llama2-tokenizer/tokenizer.model";
  std::string err;
  auto tok = Tokenizer::Load(path, &err);
  ASSERT_NE(tok, nullptr) << err;
  EXPECT_EQ(tok->vocab_size(), 32000);
  const std::vector<std::string> texts = {
      "Hello world",
      "The capital of France is Paris.",
      "In 1969, 3 astronauts flew 384,400 km.",  // digits are split one by one
      "  two  spaces and a\ttab\nnewline",
      "Zürich, São Paulo, Москва, 東京, 🙂",      // byte fallback for the emoji
      "naïve café résumé",
      "",
  };
  json ref = RunReference("tokenize", "--tokenizer '" + path + "'", {{"texts", texts}});
  ASSERT_FALSE(ref.is_null());
  EXPECT_EQ(ref["vocab_size"].get<int>(), tok->vocab_size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto want = ref["ids"][i].get<std::vector<int>>();
    EXPECT_EQ(tok->Encode(texts[i]), want) << texts[i];
    EXPECT_EQ(tok->Decode(want), ref["decoded"][i].get<std::string>()) << texts[i];
  }
  // Digits really are split: "1969" is four pieces.
  EXPECT_EQ(tok->Encode("1969").size(), 5u);  // dummy-prefix "▁" + 4 digits
}

}  // namespace
}  // namespace moke
