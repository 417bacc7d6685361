// ops::DecodeAttention, the attention of one new token per row over its cached keys and values: a case
// worked out by hand, then the CPU loop against LibTorch's products on the decoder's own buffer layout
// (rows of different lengths, stale numbers past each row's end), and the errors of bad shapes.
#include "core/model/decode_attention.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace moke::ops {
namespace {

// One query head, one kv head, hd 2. Row 0 has one position: its value comes back whatever the score.
// Row 1 has two, with scores 0 and ln 3 after the 1/sqrt(2) scale: weights 1/4 and 3/4.
TEST(DecodeAttentionTest, WorkedByHand) {
  at::Tensor q = at::tensor({1.0f, 0.0f, 1.0f, 0.0f}).view({2, 1, 2});
  const float s = static_cast<float>(std::sqrt(2.0) * std::log(3.0));
  at::Tensor k = at::tensor({5.0f, 5.0f, 0.0f, 0.0f, 0.0f, 0.0f, s, 0.0f}).view({2, 1, 2, 2});
  at::Tensor v = at::tensor({7.0f, -1.0f, 99.0f, 99.0f, 4.0f, 0.0f, 0.0f, 8.0f}).view({2, 1, 2, 2});
  for (const at::Tensor& out : {DecodeAttention(q, k, v, {1, 2}), DecodeAttentionLoop(q, k, v, {1, 2})}) {
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 2}));
    EXPECT_FLOAT_EQ(out[0][0].item<float>(), 7.0f);
    EXPECT_FLOAT_EQ(out[0][1].item<float>(), -1.0f);
    EXPECT_NEAR(out[1][0].item<float>(), 1.0f, 1e-6);
    EXPECT_NEAR(out[1][1].item<float>(), 6.0f, 1e-6);
  }
  at::Tensor products = DecodeAttentionProducts(q, k, v, {1, 2});
  EXPECT_TRUE(at::allclose(products, DecodeAttentionLoop(q, k, v, {1, 2}), 1e-6, 1e-6));
}

// The decoder's buffer: [2, rows, KV, capacity, hd], 8 query heads over 4 kv heads, 5 of 7 rows in use,
// lengths 1..capacity; numbers past each row's end are large (the loop must not read them, the products
// mask them), and the query is a view into a fused q/k/v product as in the decoder's step.
TEST(DecodeAttentionTest, LoopEqualsProductsOnTheDecodersLayout) {
  // hd 8, 64 and 128 take the unrolled loops, 12 the general one.
  for (const int64_t hd : {8, 64, 128, 12}) {
    SCOPED_TRACE(hd);
    at::manual_seed(3);
    const int64_t rows = 7, n = 5, H = 8, KV = 4, cap = 12;
    at::Tensor kv = at::randn({2, rows, KV, cap, hd});
    const std::vector<int64_t> lengths = {1, 12, 5, 9, 2};
    for (int64_t i = 0; i < n; ++i) kv.select(1, i).narrow(2, lengths[i], cap - lengths[i]).fill_(1e4);
    at::Tensor qkv = at::randn({n, H + 2 * KV, hd}) / std::sqrt(static_cast<double>(hd) / 8);
    at::Tensor q = qkv.narrow(1, 0, H);
    ASSERT_FALSE(q.is_contiguous());
    at::Tensor loop = DecodeAttentionLoop(q, kv.select(0, 0), kv.select(0, 1), lengths);
    at::Tensor products = DecodeAttentionProducts(q, kv.select(0, 0), kv.select(0, 1), lengths);
    ASSERT_EQ(loop.sizes(), (std::vector<int64_t>{n, H * hd}));
    EXPECT_TRUE(at::allclose(loop, products, 1e-5, 1e-5)) << (loop - products).abs().max().item<float>();
    // A mask made once per step by the caller gives the same numbers.
    at::Tensor mask = DecodeMask(lengths, at::kCPU);
    ASSERT_EQ(mask.sizes(), (std::vector<int64_t>{n, 1, 1, cap}));
    EXPECT_TRUE(mask[0][0][0][1].item<bool>());
    EXPECT_FALSE(mask[2][0][0][4].item<bool>());
    EXPECT_TRUE(mask[2][0][0][5].item<bool>());
    EXPECT_TRUE(at::equal(DecodeAttentionProducts(q, kv.select(0, 0), kv.select(0, 1), lengths, mask), products));
    // The last row reads only its own two positions: changing another row's numbers leaves it alone.
    at::Tensor before = loop[4].clone();
    kv.select(1, 3).fill_(-2.0f);
    EXPECT_TRUE(at::equal(DecodeAttentionLoop(q, kv.select(0, 0), kv.select(0, 1), lengths)[4], before));
  }
}

TEST(DecodeAttentionTest, DispatchesOtherDtypesToTheProducts) {
  at::manual_seed(5);
  at::Tensor q = at::randn({2, 4, 4}, at::kDouble);
  at::Tensor k = at::randn({2, 2, 6, 4}, at::kDouble), v = at::randn({2, 2, 6, 4}, at::kDouble);
  at::Tensor out = DecodeAttention(q, k, v, {3, 6});
  EXPECT_EQ(out.scalar_type(), at::kDouble);
  at::Tensor loop = DecodeAttentionLoop(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), {3, 6});
  EXPECT_TRUE(at::allclose(out.to(at::kFloat), loop, 1e-5, 1e-5));
}

// A forward that trains (a query that requires a gradient) goes to the products, which have a backward.
TEST(DecodeAttentionTest, AGradientGoesThroughTheProducts) {
  at::manual_seed(9);
  at::Tensor q = at::randn({2, 4, 8}).requires_grad_(true);
  at::Tensor k = at::randn({2, 2, 6, 8}), v = at::randn({2, 2, 6, 8});
  EXPECT_FALSE(DecodeAttentionLoopFits(q, k, v));
  EXPECT_TRUE(DecodeAttentionLoopFits(q.detach(), k, v));
  at::Tensor out = DecodeAttention(q, k, v, {6, 6});
  out.sum().backward();
  ASSERT_TRUE(q.grad().defined());
  EXPECT_GT(q.grad().abs().sum().item<float>(), 0.0f);
}

TEST(DecodeAttentionTest, BadShapesAreRefused) {
  at::Tensor q = at::randn({2, 4, 4});
  at::Tensor k = at::randn({2, 2, 6, 4}), v = at::randn({2, 2, 6, 4});
  EXPECT_THROW(DecodeAttentionLoop(q, k, v, {3}), c10::Error);              // one length for two rows
  EXPECT_THROW(DecodeAttentionLoop(q, k, v, {3, 7}), c10::Error);           // past the buffer
  EXPECT_THROW(DecodeAttentionLoop(q, k, v, {0, 2}), c10::Error);           // a row with nothing to read
  EXPECT_THROW(DecodeAttentionLoop(q, k.narrow(3, 0, 2), v, {3, 3}), c10::Error);  // head sizes differ
  EXPECT_THROW(DecodeAttentionLoop(q.to(at::kDouble), k, v, {3, 3}), c10::Error);  // not float32
  EXPECT_THROW(DecodeAttentionLoop(q.transpose(1, 2), k, v, {3, 3}), c10::Error);  // a head's numbers apart
}

}  // namespace
}  // namespace moke::ops
