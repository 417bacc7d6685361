// The start-up BLAS check: passes with the optimized BLAS this machine has (OpenBLAS as libblas.so.3),
// and MeasureBlas reports numbers that agree with an independent timing of the same product.
#include "core/model/blas_check.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>

namespace moke {
namespace {

TEST(BlasSpeedTest, CheckPassesWithOptimizedBlas) {
  absl::Status st = CheckBlasSpeed();
  EXPECT_TRUE(st.ok()) << st << "\n(is libblas.so.3 OpenBLAS? update-alternatives --display "
                                "libblas.so.3-x86_64-linux-gnu)";
}

TEST(BlasSpeedTest, CheckFailsWithMessageWhenBarIsOutOfReach) {
  // No 2-core machine multiplies fp32 matrices at 10^6 GFLOP/s: the failure path and its advice.
  absl::Status st = CheckBlasSpeed(1e6);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("GFLOP/s"));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("libopenblas0-pthread"));
}

TEST(BlasSpeedTest, MeasureBlasAgreesWithIndependentTiming) {
  const int n = 384;
  BlasSpeed s = MeasureBlas(n, 5);
  EXPECT_EQ(s.n, n);
  // Plausible: above the reference BLAS's ~6 GFLOP/s, below anything a CPU of this class can do.
  EXPECT_GT(s.gflops, 20.0);
  EXPECT_LT(s.gflops, 5000.0);
  // Time the same product here (best of 8, like MeasureBlas): the two must agree within a factor of 20
  // whatever else the machine is doing; a MeasureBlas that timed nothing would be off by far more.
  at::InferenceMode guard;
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::Tensor c = at::mm(a, b);
  double best = 1e30;
  for (int i = 0; i < 8; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const double mine = 2.0 * n * n * n / best / 1e9;
  EXPECT_LT(mine, s.gflops * 20) << "independent " << mine << " vs MeasureBlas " << s.gflops;
  EXPECT_GT(mine, s.gflops / 20) << "independent " << mine << " vs MeasureBlas " << s.gflops;
  std::cout << "[ blas ] MeasureBlas(" << n << "): " << s.gflops << " GFLOP/s; independent mean " << mine
            << " GFLOP/s\n";
}

}  // namespace
}  // namespace moke
