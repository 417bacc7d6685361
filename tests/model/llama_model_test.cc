#include "core/model/llama_model.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>

#include "nlohmann/json.hpp"
#include "tests/testing/paths.h"

namespace moke {
namespace {

class LlamaModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LlamaModel::Load({.dir = testing::DefaultModelDir()});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m).release();
    std::ifstream in(testing::DefaultModelDir() + "/reference.json");
    ref_ = new nlohmann::json(nlohmann::json::parse(in));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ref_;
  }
  static LlamaModel* model_;
  static nlohmann::json* ref_;
};
LlamaModel* LlamaModelTest::model_ = nullptr;
nlohmann::json* LlamaModelTest::ref_ = nullptr;

TEST_F(LlamaModelTest, ConfigMatchesFolder) {
  const ModelConfig& c = model_->config();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.NumParameters(), 260032);
}

TEST_F(LlamaModelTest, TokenizerMatchesReference) {
  for (auto it = (*ref_)["encode"].begin(); it != (*ref_)["encode"].end(); ++it) {
    EXPECT_EQ(model_->EncodePrompt(it.key()), it.value().get<std::vector<int64_t>>()) << it.key();
  }
}

TEST_F(LlamaModelTest, LastLogitsMatchReference) {
  auto ids = (*ref_)["prompt_ids"].get<std::vector<int64_t>>();
  at::InferenceMode guard;
  at::Tensor logits = model_->Forward(at::tensor(ids).unsqueeze(0));
  auto want = (*ref_)["last_logits"].get<std::vector<float>>();
  at::Tensor w = at::tensor(want);
  at::Tensor got = logits[0][ids.size() - 1];
  EXPECT_LT((got - w).abs().max().item<float>(), 1e-3);
  EXPECT_EQ(got.argmax().item<int64_t>(), 432);
}

TEST_F(LlamaModelTest, DownProjInputMatchesReference) {
  auto ids = (*ref_)["prompt_ids"].get<std::vector<int64_t>>();
  for (auto it = (*ref_)["down_proj_input_a_x_last_token"].begin(); it != (*ref_)["down_proj_input_a_x_last_token"].end(); ++it) {
    const int64_t layer = std::stoll(it.key());
    auto split = model_->RunToDownProj(at::tensor(ids).unsqueeze(0), layer);
    at::Tensor got = split.a[0][ids.size() - 1];
    at::Tensor want = at::tensor(it.value().get<std::vector<float>>());
    EXPECT_LT((got - want).abs().max().item<float>(), 1e-3) << "layer " << layer;
  }
}

TEST_F(LlamaModelTest, SplitForwardEqualsFullForward) {
  auto ids = model_->EncodePrompt("Lily saw a big red ball in the park.");
  at::Tensor t = at::tensor(ids).unsqueeze(0);
  at::Tensor full = model_->Forward(t);
  for (int64_t layer : {0, 3, 4}) {
    auto split = model_->RunToDownProj(t, layer);
    at::Tensor from = model_->RunFromDownProj(split, layer, model_->down_weight(layer));
    EXPECT_LT((full - from).abs().max().item<float>(), 1e-4) << layer;
  }
}

// The edit path's forward: logits only at chosen positions of a right-padded batch (the last layer's
// output projection, MLP and head run there alone) equal the full forward's at those positions, and so
// do the gradients of the edit layer's down-projection weight.
TEST_F(LlamaModelTest, LogitsAtPositionsEqualFullLogitsThereWithGradients) {
  auto a = model_->EncodePrompt("Lily saw a big red ball in the park.");
  auto b = model_->EncodePrompt("Tom ran home.");
  const int64_t t = static_cast<int64_t>(a.size());
  at::Tensor ids = at::zeros({2, t}, at::kLong);
  ids[0].copy_(at::tensor(a));
  ids[1].narrow(0, 0, static_cast<int64_t>(b.size())).copy_(at::tensor(b));
  const at::Tensor positions = at::tensor(std::vector<int64_t>{3, t - 2, t + 1, t + 4});  // rows 0, 0, 1, 1
  for (int64_t layer : {2, 3, 4}) {  // 4 is the last layer: the head alone then
    auto split = model_->RunToDownProj(ids, layer);
    at::Tensor w1 = model_->down_weight(layer).clone().requires_grad_(true);
    at::Tensor w2 = model_->down_weight(layer).clone().requires_grad_(true);
    at::Tensor full = model_->RunFromDownProj(split, layer, w1);
    full = full.reshape({-1, full.size(-1)}).index_select(0, positions);
    at::Tensor at_pos = model_->RunFromDownProj(split, layer, w2, positions);
    ASSERT_EQ(at_pos.sizes(), full.sizes());
    EXPECT_LT((full - at_pos).abs().max().item<float>(), 1e-4) << layer;
    const at::Tensor g = at::randn(full.sizes());
    (full * g).sum().backward();
    (at_pos * g).sum().backward();
    EXPECT_LT((w1.grad() - w2.grad()).abs().max().item<float>(), 1e-4 * (1 + w1.grad().abs().max().item<float>())) << layer;
  }
}

TEST_F(LlamaModelTest, GreedyMatchesReferenceWithAndWithoutCache) {
  auto want = (*ref_)["greedy_from_bos"]["ids"].get<std::vector<int64_t>>();
  auto got = model_->Generate({1}, static_cast<int>(want.size())).tokens;
  EXPECT_EQ(got, want);
  auto slow = model_->Generate({1}, 20, nullptr, Budget(), /*use_cache=*/false).tokens;
  EXPECT_EQ(slow, std::vector<int64_t>(want.begin(), want.begin() + 20));
  EXPECT_EQ(model_->Decode(got), (*ref_)["greedy_from_bos"]["text"].get<std::string>());
}

TEST_F(LlamaModelTest, OverrideChangesOnlyWithDifferentWeight) {
  auto ids = model_->EncodePrompt("Once upon a time");
  at::Tensor t = at::tensor(ids).unsqueeze(0);
  at::Tensor base = model_->Forward(t);
  DownOverride same{3, model_->down_weight(3)};
  EXPECT_TRUE(at::allclose(model_->Forward(t, nullptr, &same), base));
  DownOverride zero{3, at::zeros_like(model_->down_weight(3))};
  EXPECT_GT((model_->Forward(t, nullptr, &zero) - base).abs().max().item<float>(), 1e-2);
}

}  // namespace
}  // namespace moke
