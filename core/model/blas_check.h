// Start-up check that fp32 matrix products run at an optimized BLAS's speed. Debian's LibTorch calls
// libblas.so.3, which is netlib's reference BLAS unless OpenBLAS (or BLIS) is installed: ~6 GFLOP/s
// against ~250 on this project's 2-core machine.
#pragma once

#include "absl/status/status.h"

namespace moke {

struct BlasSpeed {
  double gflops = 0;  // best of several fp32 [n x n] x [n x n] products
  int n = 0;
};

BlasSpeed MeasureBlas(int n = 768, int repeats = 5);

// Fails (FAILED_PRECONDITION, with the measured speed and the fix) when fp32 matmul runs below
// `min_gflops`, an order of magnitude under what OpenBLAS gives here.
absl::Status CheckBlasSpeed(double min_gflops = 20.0);

}  // namespace moke
