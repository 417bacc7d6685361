// The scope decision on small synthetic keys (cosines worked out by hand).
#include "core/editor/scope.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

namespace moke {
namespace {

at::Tensor Unit(std::vector<float> v) {
  at::Tensor t = at::tensor(v);
  return t / t.norm();
}

TEST(NearestHeldEdit, NoKeysIsNeverInScope) {
  const NearestEdit n = NearestHeldEdit(at::Tensor(), at::Tensor(), 0.0, Unit({1, 0}));
  EXPECT_EQ(n.index, -1);
  EXPECT_FALSE(n.in_scope);
  EXPECT_EQ(n.cosine, 0.0);
  const NearestEdit empty = NearestHeldEdit(at::zeros({0, 2}), at::Tensor(), 0.0, Unit({1, 0}));
  EXPECT_EQ(empty.index, -1);
  EXPECT_FALSE(empty.in_scope);
}

TEST(NearestHeldEdit, PicksTheNearestKeyAndAppliesTheFloor) {
  // Keys at 0 deg, 90 deg and 30 deg; the query at 20 deg: nearest is the 30 deg key, cos 10 deg.
  const double d = M_PI / 180;
  at::Tensor keys = at::stack({Unit({1, 0}), Unit({0, 1}), Unit({float(std::cos(30 * d)), float(std::sin(30 * d))})});
  at::Tensor q = Unit({float(std::cos(20 * d)), float(std::sin(20 * d))});
  NearestEdit n = NearestHeldEdit(keys, at::Tensor(), 0.98, q);
  EXPECT_EQ(n.index, 2);
  EXPECT_NEAR(n.cosine, std::cos(10 * d), 1e-6);
  EXPECT_TRUE(n.in_scope);  // cos 10 deg = 0.985 >= 0.98
  n = NearestHeldEdit(keys, at::Tensor(), 0.99, q);
  EXPECT_EQ(n.index, 2);
  EXPECT_FALSE(n.in_scope) << "below the floor";
}

TEST(NearestHeldEdit, ANearerNegativeTakesThePromptOutOfScope) {
  at::Tensor keys = at::stack({Unit({1, 0, 0})});
  at::Tensor q = Unit({1, 1, 0});                          // cos 0.707 to the key
  at::Tensor far_negative = at::stack({Unit({0, 0, 1})});  // cos 0 to the query
  at::Tensor near_negative = at::stack({Unit({0, 0, 1}), Unit({1, 2, 0})});  // cos 0.949 to the query
  EXPECT_TRUE(NearestHeldEdit(keys, far_negative, 0.5, q).in_scope);
  const NearestEdit n = NearestHeldEdit(keys, near_negative, 0.5, q);
  EXPECT_FALSE(n.in_scope);
  EXPECT_EQ(n.index, 0) << "the nearest key is still reported";
  EXPECT_NEAR(n.cosine, std::sqrt(0.5), 1e-6);
}

TEST(NearestHeldEdit, ATieWithANegativeIsOutOfScope) {
  at::Tensor keys = at::stack({Unit({1, 0})});
  at::Tensor negatives = at::stack({Unit({1, 0})});
  EXPECT_FALSE(NearestHeldEdit(keys, negatives, 0.0, Unit({1, 0})).in_scope);
}

}  // namespace
}  // namespace moke
