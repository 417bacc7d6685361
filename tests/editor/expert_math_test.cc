#include "core/experts/expert_math.h"
#include "core/experts/masked_tau.h"
#include "core/experts/router.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace moke {
namespace {

TEST(DeltaScores, MatchesHandComputedNorms) {
  // One row, two tokens, F = 2, D = 2, two experts.
  at::Tensor a = at::tensor({1.0f, 0.0f, 0.0f, 2.0f}).view({1, 2, 2});
  // tau_0 = [[1, 0], [0, 1]] -> a tau^T rows: [1, 0] (norm 1), [0, 2] (norm 2): mean 1.5
  // tau_1 = [[0, 3], [4, 0]] -> rows: [0, 4] (norm 4), [6, 0] (norm 6): mean 5
  at::Tensor taus = at::tensor({1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 3.0f, 4.0f, 0.0f}).view({2, 2, 2});
  at::Tensor mask = at::ones({1, 2});
  at::Tensor d = DeltaScores(a, taus, mask);
  EXPECT_NEAR(d[0][0].item<float>(), 1.5f, 1e-5);
  EXPECT_NEAR(d[0][1].item<float>(), 5.0f, 1e-5);
  // Masking out the second token leaves the first token's norms.
  at::Tensor m1 = at::tensor({1.0f, 0.0f}).view({1, 2});
  at::Tensor d1 = DeltaScores(a, taus, m1);
  EXPECT_NEAR(d1[0][0].item<float>(), 1.0f, 1e-5);
  EXPECT_NEAR(d1[0][1].item<float>(), 4.0f, 1e-5);
}

TEST(SelectionScores, Equation2) {
  auto s = SelectionScores({4.0, 2.0, 0.0}, {1.0, 2.0, 0.5});
  EXPECT_DOUBLE_EQ(s[0], 0.75);  // (4 - 1) / 4
  EXPECT_DOUBLE_EQ(s[1], 0.0);   // (2 - 2) / 2
  EXPECT_DOUBLE_EQ(s[2], 0.0);   // empty expert
}

TEST(SelectExpert, ArgmaxAboveEpsElseSeededRandom) {
  std::mt19937_64 rng(7);
  bool fresh = true;
  EXPECT_EQ(SelectExpert({0.1, 0.5, 0.4}, 0.35, rng, &fresh), 1);
  EXPECT_FALSE(fresh);
  std::mt19937_64 r1(3), r2(3);
  bool f1 = false, f2 = false;
  const int e1 = SelectExpert({0.1, 0.2, 0.3}, 0.35, r1, &f1);
  const int e2 = SelectExpert({0.1, 0.2, 0.3}, 0.35, r2, &f2);
  EXPECT_TRUE(f1);
  EXPECT_EQ(e1, e2);  // same seed, same choice
  std::set<int> seen;
  std::mt19937_64 r3(11);
  for (int i = 0; i < 200; ++i) seen.insert(SelectExpert({0.0, 0.0, 0.0}, 0.35, r3, &f1));
  EXPECT_EQ(seen.size(), 3u);  // uniform over all experts
}

TEST(SelectExpert, OnlyEligibleExpertsAreCandidates) {
  std::mt19937_64 rng(5);
  bool fresh = true;
  // The best expert (1) is full: the best eligible one above eps wins.
  EXPECT_EQ(SelectExpert({0.4, 0.9, 0.5}, 0.35, rng, &fresh, {true, false, true}), 2);
  EXPECT_FALSE(fresh);
  // Below eps: a random eligible expert, never an ineligible one.
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) seen.insert(SelectExpert({0.9, 0.1, 0.0, 0.2}, 0.35, rng, &fresh, {false, true, false, true}));
  EXPECT_EQ(seen, (std::set<int>{1, 3}));
  EXPECT_TRUE(fresh);
  // None eligible: -1 (the caller grows the bank).
  EXPECT_EQ(SelectExpert({0.9, 0.9}, 0.35, rng, &fresh, {false, false}), -1);
  // All eligible draws exactly as no eligibility list (the paper's behaviour is unchanged).
  std::mt19937_64 r1(9), r2(9);
  bool f1, f2;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(SelectExpert({0.1, 0.2, 0.3}, 0.35, r1, &f1), SelectExpert({0.1, 0.2, 0.3}, 0.35, r2, &f2, {true, true, true}));
  }
}

TEST(Losses, MarginAndMemoryHingesByHand) {
  // alpha 5, beta 20, gamma 10; d_e 12, d_o 7: (20-12) + (7-5) + (10-5) = 15
  EXPECT_NEAR(MarginLoss(at::tensor(12.0), at::tensor(7.0), 5, 20, 10).item<double>(), 15.0, 1e-9);
  // satisfied margins give 0
  EXPECT_NEAR(MarginLoss(at::tensor(25.0), at::tensor(1.0), 5, 20, 10).item<double>(), 0.0, 1e-9);
  // memory: gamma 10, d_j 8, d_i 3 -> 10 - 5 = 5; d_j 30, d_i 3 -> 0
  EXPECT_NEAR(MemoryLoss(at::tensor(8.0), at::tensor(3.0), 10).item<double>(), 5.0, 1e-9);
  EXPECT_NEAR(MemoryLoss(at::tensor(30.0), at::tensor(3.0), 10).item<double>(), 0.0, 1e-9);
}

TEST(Masks, DisjointWithRequestedRatio) {
  at::Tensor m = DisjointMasks(3, 0.3, 10, 20, 5);
  ASSERT_EQ(m.sizes(), (std::vector<int64_t>{3, 10, 20}));
  EXPECT_EQ(m.sum(0).max().item<int64_t>(), 1);  // no entry in two masks
  for (int i = 0; i < 3; ++i) EXPECT_EQ(m[i].sum().item<int64_t>(), 60);
  EXPECT_TRUE(at::equal(m, DisjointMasks(3, 0.3, 10, 20, 5)));
  EXPECT_FALSE(at::equal(m, DisjointMasks(3, 0.3, 10, 20, 6)));
  at::Tensor b = BernoulliMask(0.2, 100, 100, 1);
  EXPECT_NEAR(b.to(at::kFloat).mean().item<float>(), 0.2f, 0.02f);
}

TEST(Emr, DisjointSupportsReconstructExactly) {
  at::Tensor masks = DisjointMasks(3, 0.3, 8, 12, 9);
  at::Tensor taus = at::randn({3, 8, 12}) * masks.to(at::kFloat);
  EmrExperts e = EmrMerge(taus);
  EXPECT_TRUE(at::allclose(e.All(), taus, 1e-6, 1e-7));
  for (int k = 0; k < 3; ++k) EXPECT_NEAR(e.lambdas[k].item<float>(), 1.0f, 1e-5);
  EXPECT_LT(e.StorageBytes(), 3 * 8 * 12 * 4);
}

TEST(Emr, OverlappingExampleByHand) {
  // Two experts on two entries: tau_0 = [2, -1], tau_1 = [1, 3].
  // sign(sum) = [+, +]; magnitudes agreeing: entry 0 max(2, 1) = 2; entry 1 only tau_1 agrees: 3.
  // unified = [2, 3]; M_0 = [1, 0], M_1 = [1, 1]; lambda_0 = 3 / 2; lambda_1 = 4 / 5.
  at::Tensor taus = at::tensor({2.0f, -1.0f, 1.0f, 3.0f}).view({2, 1, 2});
  EmrExperts e = EmrMerge(taus);
  EXPECT_TRUE(at::allclose(e.unified, at::tensor({2.0f, 3.0f}).view({1, 2})));
  EXPECT_NEAR(e.lambdas[0].item<float>(), 1.5f, 1e-6);
  EXPECT_NEAR(e.lambdas[1].item<float>(), 0.8f, 1e-6);
  EXPECT_TRUE(at::allclose(e.Expert(0), at::tensor({3.0f, 0.0f}).view({1, 2})));
}

TEST(Emr, DisjointMergeIsTheExpertsThemselves) {
  // With disjoint masks every rescaler is exactly 1 and each reconstruction is its tau to the bit, so
  // serving the experts directly is serving their EMR merge.
  at::Tensor masks = DisjointMasks(3, 0.3, 16, 40, 3);
  at::Tensor taus = at::randn({3, 16, 40}) * masks.to(at::kFloat);
  EmrExperts e = EmrMerge(taus);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(e.lambdas[k].item<float>(), 1.0f);
    EXPECT_TRUE(at::equal(e.Expert(k), taus[k])) << k;
  }
}

TEST(MaskedTau, BitsByHand) {
  // Row-major entries 0, 3, 5, 6 and 9 set: byte 0 = 1 + 8 + 32 + 64 = 105, byte 1 = 2.
  at::Tensor m = at::zeros({2, 5}, at::kBool);
  for (int i : {0, 3, 5, 6, 9}) m.view({-1})[i] = true;
  at::Tensor bits = PackMask(m);
  ASSERT_EQ(bits.numel(), 2);
  EXPECT_EQ(bits[0].item<int64_t>(), 105);
  EXPECT_EQ(bits[1].item<int64_t>(), 2);
  EXPECT_TRUE(at::equal(UnpackMask(bits, 2, 5), m));
  at::Tensor big = BernoulliMask(0.5, 7, 13, 4);
  EXPECT_TRUE(at::equal(UnpackMask(PackMask(big), 7, 13), big));
}

TEST(MaskedTau, StoresOnlyTheMaskAndGivesTauBackExactly) {
  at::Tensor mask = DisjointMasks(3, 0.3, 10, 20, 5)[1];  // 60 of 200 entries
  at::Tensor tau = at::randn({10, 20}) * mask.to(at::kFloat);
  MaskedTau e = MaskedTau::FromDense(tau, mask, at::kFloat);
  EXPECT_EQ(e.nnz(), 60);
  EXPECT_EQ(e.StorageBytes(), 25 + 60 * 4);  // ceil(200 / 8) bytes of bits + 60 fp32 values
  EXPECT_TRUE(at::equal(e.Dense(), tau));
  EXPECT_TRUE(at::equal(e.Mask(), mask));
  // In bf16: 2 bytes a value, each the bf16 rounding of tau's.
  MaskedTau h = MaskedTau::FromDense(tau, mask, at::kBFloat16);
  EXPECT_EQ(h.StorageBytes(), 25 + 60 * 2);
  EXPECT_TRUE(at::equal(h.Dense(), tau.to(at::kBFloat16).to(at::kFloat)));
  MaskedTau z = MaskedTau::Zero(MaskCode::OfMask(mask), 1, at::kFloat);
  EXPECT_EQ(z.nnz(), 60);
  EXPECT_EQ(z.Dense().abs().sum().item<float>(), 0.0f);
}

TEST(MaskCode, DisjointMasksShareOneCodeByHand) {
  // Owners of the 10 entries of a [2, 5] matrix among 3 disjoint masks (0: none): 2 bits each, four a byte.
  const std::vector<int64_t> owner = {1, 0, 2, 3, 0, 0, 1, 0, 0, 2};
  at::Tensor masks = at::zeros({3, 2, 5}, at::kBool);
  for (int i = 0; i < 10; ++i) {
    if (owner[i] > 0) masks[owner[i] - 1].view({-1})[i] = true;
  }
  const MaskCode code = MaskCode::OfDisjointMasks(masks);
  EXPECT_EQ(code.bits(), 2);
  ASSERT_EQ(code.bytes(), 3);
  EXPECT_EQ(code.packed()[0].item<int64_t>(), 1 + (2 << 4) + (3 << 6));  // fields 0-3: 1, 0, 2, 3
  EXPECT_EQ(code.packed()[1].item<int64_t>(), 1 << 4);                   // fields 4-7: 0, 0, 1, 0
  EXPECT_EQ(code.packed()[2].item<int64_t>(), 2 << 2);                   // fields 8-9: 0, 2
  for (int k = 0; k < 3; ++k) EXPECT_TRUE(at::equal(code.Mask(k + 1), masks[k])) << k;
  // Wider codes: 4 bits for 5 masks, 8 bits for 20.
  for (int n : {5, 20}) {
    at::Tensor many = DisjointMasks(n, 1.0 / n, 7, 13, 3);
    const MaskCode c = MaskCode::OfDisjointMasks(many);
    EXPECT_EQ(c.bits(), n == 5 ? 4 : 8);
    EXPECT_EQ(c.bytes(), (7 * 13 * c.bits() + 7) / 8);
    for (int k = 0; k < n; ++k) EXPECT_TRUE(at::equal(c.Mask(k + 1), many[k])) << n << " " << k;
  }
}

TEST(MaskedTau, ExpertsOfAGroupShareTheirCode) {
  at::Tensor masks = DisjointMasks(3, 0.3, 10, 20, 5);  // 60 of 200 entries each
  const MaskCode code = MaskCode::OfDisjointMasks(masks);
  EXPECT_EQ(code.bytes(), 50);  // 200 entries x 2 bits, against 3 x 25 bytes of separate bits
  at::Tensor tau = at::randn({10, 20}) * masks[2].to(at::kFloat);
  MaskedTau e = MaskedTau::FromDense(tau, code, 3, at::kFloat);
  EXPECT_TRUE(e.code().SameStorage(code));
  EXPECT_EQ(e.ValueBytes(), 60 * 4);
  EXPECT_EQ(e.StorageBytes(), 50 + 60 * 4);
  EXPECT_TRUE(at::equal(e.Dense(), tau));
  EXPECT_TRUE(at::equal(e.bits(), PackMask(masks[2])));  // the snapshot's form: its own mask's bits
  // An expert stored alone moves onto the shared code with the same values; onto another slot it cannot.
  MaskedTau alone = MaskedTau::FromDense(tau, masks[2], at::kFloat);
  EXPECT_FALSE(alone.code().SameStorage(code));
  auto moved = alone.OnCode(code, 3);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_TRUE(moved->code().SameStorage(code));
  EXPECT_TRUE(at::equal(moved->Dense(), tau));
  EXPECT_EQ(alone.OnCode(code, 1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MaskedTau, PartsMustAgree) {
  at::Tensor mask = DisjointMasks(2, 0.25, 4, 6, 1)[0];  // 6 of 24 entries
  at::Tensor bits = PackMask(mask);
  auto ok = MaskedTau::FromParts(bits, at::arange(6, at::kFloat), 4, 6);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(at::equal(ok->Dense().masked_select(mask), at::arange(6, at::kFloat)));
  EXPECT_FALSE(MaskedTau::FromParts(bits, at::arange(5, at::kFloat), 4, 6).ok());  // one value short
  EXPECT_FALSE(MaskedTau::FromParts(bits, at::arange(6, at::kFloat), 5, 6).ok());  // bits of another shape
}

}  // namespace
}  // namespace moke

namespace moke {
namespace {

TEST(Router, AddExpertKeepsTheOldLogitsAndLearnsTheNewClass) {
  Router r(2, 3, c10::Device(c10::kCPU));
  at::Tensor x = at::eye(3);
  r.Train(x.narrow(0, 0, 2), at::tensor({0, 1}, at::kLong), 30, 0.1);
  at::Tensor before = r.Probs(x.narrow(0, 0, 2));
  r.AddExpert();
  EXPECT_EQ(r.num_experts(), 3);
  at::Tensor after = r.Probs(x.narrow(0, 0, 2));
  // A zero logit for the new expert: the old experts' odds are unchanged.
  EXPECT_NEAR((after[0][0] / after[0][1]).item<double>(), (before[0][0] / before[0][1]).item<double>(), 1e-4);
  r.Train(x, at::tensor({0, 1, 2}, at::kLong), 60, 0.1);
  at::Tensor best = r.Probs(x).argmax(-1);
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(best[i].item<int64_t>(), i);
}

}  // namespace
}  // namespace moke
