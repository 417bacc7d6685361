// The batched decoder against LlamaModel::Generate, request by request: the same tokens and stops for rows
// that join and leave at different steps, with different down-projection overrides per row, different
// token limits, and budgets that run out in the middle.
#include "core/model/batch_decode.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <map>

#include "tests/testing/paths.h"

namespace moke {
namespace {

class BatchDecodeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = LlamaModel::Load({.dir = testing::DefaultModelDir()});
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = std::move(*m).release();
  }
  static void TearDownTestSuite() { delete model_; }

  // Two overrides of layer 3 that change answers (a seeded perturbation of its down-projection), one of
  // layer 1.
  static std::vector<std::shared_ptr<const DownOverride>> Overrides() {
    at::InferenceMode guard;
    std::vector<std::shared_ptr<const DownOverride>> out;
    const std::pair<int64_t, double> spec[] = {{3, 0.5}, {3, -0.8}, {1, 0.6}};
    int seed = 7;
    for (auto [layer, scale] : spec) {
      at::manual_seed(seed++);
      const at::Tensor& w = model_->down_weight(layer);
      out.push_back(std::make_shared<DownOverride>(DownOverride{layer, w + scale * at::randn(w.sizes())}));
    }
    return out;
  }

  static LlamaModel* model_;
};
LlamaModel* BatchDecodeTest::model_ = nullptr;

const std::vector<std::string>& Prompts() {
  static const std::vector<std::string> p = {
      "Once upon a time", "The cat sat on the mat", "Tom and Sue went to the park", "The sun was hot",
      "One day, a little bird", "Mom made a big cake", "The boy had a red ball", "She liked to sing",
      "The dog ran fast", "It was a rainy day", "There was a tall tree", "The girl found a shiny rock",
      "Ben wanted to fly", "The fish swam in the sea", "A frog jumped", "The car was blue",
      "Grandma told a story", "The baby laughed", "They ate ice cream", "The moon was bright",
      "Lily saw a big red ball in the park.", "What is the capital of France?", "Who wrote Hamlet?",
      "The name of the mother of Leonardo DiCaprio is", "Über den Wolken", "Ça va très bien"};
  return p;
}

struct Job {
  std::vector<int64_t> prompt;
  int max_new = 0;
  std::shared_ptr<const DownOverride> override;
  LlamaModel::Generation alone;
};

// Runs `jobs` through a decoder of `max_rows`, admitting up to `group` new jobs (prefilled together) every
// `join_every` steps when there is room, so that rows join and leave at different steps. Returns each
// job's generation.
std::vector<LlamaModel::Generation> RunBatched(const LlamaModel& m, const std::vector<Job>& jobs, int max_rows,
                                               int join_every, int group, int* max_seen_rows) {
  BatchDecoder decoder(m, max_rows);
  std::vector<LlamaModel::Generation> out(jobs.size());
  size_t next = 0;
  size_t done = 0;
  int step = 0;
  *max_seen_rows = 0;
  while (done < jobs.size()) {
    if (step % join_every == 0) {
      std::vector<BatchDecoder::Request> start;
      std::vector<size_t> which;
      while (next < jobs.size() && decoder.rows() + static_cast<int>(start.size()) < decoder.max_rows() &&
             static_cast<int>(start.size()) < group) {
        start.push_back({jobs[next].prompt, jobs[next].max_new, jobs[next].override, Budget()});
        which.push_back(next++);
      }
      std::vector<DecodeRow> rows = BatchDecoder::Start(m, std::move(start));
      for (size_t k = 0; k < rows.size(); ++k) {
        if (rows[k].finished) {
          out[which[k]] = std::move(rows[k].generation);
          ++done;
        } else {
          decoder.Join(std::move(rows[k]), which[k]);
        }
      }
    }
    *max_seen_rows = std::max(*max_seen_rows, decoder.rows());
    for (BatchDecoder::Event& e : decoder.Step()) {
      if (e.finished) {
        out[e.tag] = std::move(e.generation);
        ++done;
      }
    }
    ++step;
  }
  return out;
}

DecodeRow StartOne(const LlamaModel& m, const std::vector<int64_t>& prompt, int max_new, const Budget& budget) {
  return std::move(BatchDecoder::Start(m, {{prompt, max_new, nullptr, budget}})[0]);
}

TEST_F(BatchDecodeTest, SameTokensAsOneByOneWithDifferentOverridesAndLimits) {
  const auto overrides = Overrides();
  std::vector<Job> jobs;
  const int limits[] = {16, 3, 1, 24, 9, 0, 16, 7};
  for (size_t i = 0; i < Prompts().size(); ++i) {
    Job j;
    j.prompt = model_->EncodePrompt(Prompts()[i]);
    j.max_new = limits[i % 8];
    // Every 4th row the original weights, the others cycle through the overrides.
    if (i % 4 != 0) j.override = overrides[i % overrides.size()];
    j.alone = model_->Generate(j.prompt, j.max_new, j.override.get());
    jobs.push_back(std::move(j));
  }
  // The overrides matter: some answer differs from the original model's.
  int changed = 0;
  for (const Job& j : jobs) {
    if (j.override && model_->Generate(j.prompt, j.max_new).tokens != j.alone.tokens) ++changed;
  }
  EXPECT_GT(changed, 3);

  struct Shape {
    int max_rows, join_every, group;
  };
  for (Shape sh : {Shape{6, 1, 1}, Shape{16, 2, 3}, Shape{3, 3, 2}, Shape{32, 1, 32}}) {
    const int max_rows = sh.max_rows;
    int seen = 0;
    const auto got = RunBatched(*model_, jobs, max_rows, sh.join_every, sh.group, &seen);
    EXPECT_GE(seen, std::min(max_rows, 3)) << "rows really decoded together";
    for (size_t i = 0; i < jobs.size(); ++i) {
      EXPECT_EQ(got[i].tokens, jobs[i].alone.tokens) << Prompts()[i] << " (max_rows " << max_rows << ")";
      EXPECT_EQ(got[i].stop, jobs[i].alone.stop) << Prompts()[i];
    }
  }
}

// Start goes on from a prompt's pass up to a layer (what an Ask's route runs): the same first tokens and
// caches as from the prompt, and the same decodes as Generate. A row whose override is below the prefix's
// layer makes Start run the prompts whole (the prefix was computed with that layer's original weights).
TEST_F(BatchDecodeTest, StartGoesOnFromAPromptPrefix) {
  at::InferenceMode guard;
  const auto overrides = Overrides();
  for (bool low_override : {false, true}) {
    std::vector<BatchDecoder::Request> plain, prefixed;
    std::vector<LlamaModel::Generation> alone;
    for (size_t i = 0; i < 6; ++i) {
      BatchDecoder::Request r;
      r.prompt_ids = model_->EncodePrompt(Prompts()[i]);
      r.max_new_tokens = 12;
      if (i % 3 == 1) r.override = overrides[i % 2];           // layer 3
      if (low_override && i == 2) r.override = overrides[2];  // layer 1
      alone.push_back(model_->Generate(r.prompt_ids, r.max_new_tokens, r.override.get()));
      plain.push_back(r);
      r.prefix.layer = 3;
      r.prefix.split =
          model_->RunToDownProj(at::tensor(r.prompt_ids, model_->id_options()).unsqueeze(0), 3, &r.prefix.cache);
      prefixed.push_back(std::move(r));
    }
    std::vector<DecodeRow> a = BatchDecoder::Start(*model_, std::move(plain));
    std::vector<DecodeRow> b = BatchDecoder::Start(*model_, std::move(prefixed));
    BatchDecoder decoder(*model_, 6);
    std::map<uint64_t, std::vector<int64_t>> tokens;
    for (size_t i = 0; i < b.size(); ++i) {
      EXPECT_EQ(a[i].generation.tokens, b[i].generation.tokens) << Prompts()[i];
      ASSERT_EQ(a[i].cache.k.size(), b[i].cache.k.size());
      for (size_t l = 0; l < a[i].cache.k.size(); ++l) {
        EXPECT_TRUE(at::allclose(a[i].cache.k[l], b[i].cache.k[l], 1e-4, 1e-5)) << Prompts()[i] << " layer " << l;
        EXPECT_TRUE(at::allclose(a[i].cache.v[l], b[i].cache.v[l], 1e-4, 1e-5)) << Prompts()[i] << " layer " << l;
      }
      tokens[i] = b[i].generation.tokens;
      if (!b[i].finished) decoder.Join(std::move(b[i]), i);
    }
    while (decoder.rows() > 0) {
      for (const auto& e : decoder.Step()) {
        if (e.token >= 0) tokens[e.tag].push_back(e.token);
      }
    }
    for (size_t i = 0; i < alone.size(); ++i) {
      EXPECT_EQ(tokens[i], alone[i].tokens) << Prompts()[i] << (low_override ? " (a row overrides layer 1)" : "");
    }
  }
}

TEST_F(BatchDecodeTest, TokenLimitAndEndOfSequenceAndTheContextWindow) {
  // A prompt that leaves room for 2 tokens in the context window stops there, batched or not.
  std::vector<int64_t> long_prompt = model_->EncodePrompt("Once upon a time");
  while (static_cast<int64_t>(long_prompt.size()) < model_->config().max_position_embeddings - 2) {
    long_prompt.push_back(long_prompt[1 + long_prompt.size() % 4]);
  }
  const auto alone = model_->Generate(long_prompt, 10);
  EXPECT_LE(alone.tokens.size(), 2u);
  std::vector<Job> jobs{{long_prompt, 10, nullptr, alone},
                        {model_->EncodePrompt("The dog ran fast"), 64, nullptr,
                         model_->Generate(model_->EncodePrompt("The dog ran fast"), 64)}};
  int seen = 0;
  const auto got = RunBatched(*model_, jobs, 4, 1, 2, &seen);
  EXPECT_EQ(got[0].tokens, alone.tokens);
  EXPECT_EQ(got[1].tokens, jobs[1].alone.tokens);
  EXPECT_EQ(got[1].stop, jobs[1].alone.stop);
}

TEST_F(BatchDecodeTest, ARowWhoseBudgetRunsOutLeavesAndTheOthersCarryOn) {
  const auto p1 = model_->EncodePrompt("Once upon a time"), p2 = model_->EncodePrompt("The sun was hot");
  const auto full1 = model_->Generate(p1, 12), full2 = model_->Generate(p2, 12);
  ASSERT_EQ(full1.tokens.size(), 12u);
  auto flag = std::make_shared<std::atomic<bool>>(false);
  Budget cancellable;
  cancellable.cancelled = flag;

  // Cancelled before it starts: no tokens, stopped by the budget.
  DecodeRow none =
      StartOne(*model_, p1, 12, Budget{Budget::Clock::time_point::max(), std::make_shared<std::atomic<bool>>(true)});
  EXPECT_TRUE(none.finished);
  EXPECT_TRUE(none.generation.tokens.empty());
  EXPECT_EQ(none.generation.stop, LlamaModel::Stop::kBudget);

  BatchDecoder decoder(*model_, 4);
  decoder.Join(StartOne(*model_, p1, 12, cancellable), 1);
  decoder.Join(StartOne(*model_, p2, 12, Budget()), 2);
  std::map<uint64_t, std::vector<int64_t>> streamed;
  streamed[1] = {full1.tokens[0]};
  streamed[2] = {full2.tokens[0]};
  std::map<uint64_t, LlamaModel::Generation> finished;
  for (int step = 0; decoder.rows() > 0; ++step) {
    if (step == 3) flag->store(true);  // the caller cancels after the 4th token
    for (BatchDecoder::Event& e : decoder.Step()) {
      if (e.token >= 0) streamed[e.tag].push_back(e.token);
      if (e.finished) finished[e.tag] = std::move(e.generation);
    }
  }
  // Row 1: its token of step 3 is kept (the budget is checked after a token, before the next forward).
  EXPECT_EQ(finished[1].stop, LlamaModel::Stop::kBudget);
  EXPECT_EQ(finished[1].tokens, std::vector<int64_t>(full1.tokens.begin(), full1.tokens.begin() + 5));
  EXPECT_EQ(finished[2].tokens, full2.tokens);
  EXPECT_EQ(finished[2].stop, full2.stop);
  // The events carry every token as it is made.
  EXPECT_EQ(streamed[1], finished[1].tokens);
  EXPECT_EQ(streamed[2], finished[2].tokens);
}

}  // namespace
}  // namespace moke
