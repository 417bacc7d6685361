#include "core/model/blas_check.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace moke {

BlasSpeed MeasureBlas(int n, int repeats) {
  at::InferenceMode guard;
  at::Tensor a = at::randn({n, n}), b = at::randn({n, n});
  at::Tensor c = at::mm(a, b);  // warm-up
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    c = at::mm(a, b);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return BlasSpeed{2.0 * n * n * n / best / 1e9, n};
}

absl::Status CheckBlasSpeed(double min_gflops) {
  BlasSpeed s = MeasureBlas();
  if (s.gflops < min_gflops) {
    return absl::FailedPreconditionError(absl::StrCat(
        "fp32 matrix products run at ", static_cast<int>(s.gflops), " GFLOP/s (", s.n, "x", s.n,
        "), under the ", static_cast<int>(min_gflops),
        " expected: libblas.so.3 is probably the reference BLAS. Install an optimized one: "
        "apt-get install libopenblas0-pthread (or run scripts/setup)"));
  }
  return absl::OkStatus();
}

}  // namespace moke
