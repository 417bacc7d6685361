// Which BLAS library this process's fp32 matrix products go through, by identity rather than by speed.
//
// Debian's LibTorch calls sgemm_ from libblas.so.3, which is netlib's reference BLAS (~6 GFLOP/s on this
// project's 2-core machine) unless an optimized one is installed as that alternative (OpenBLAS: ~250).
// Timing a product cannot tell the two apart on a busy machine (at load 8 on 2 cores OpenBLAS measured
// 15 GFLOP/s); asking the loaded library what it is can.
//
// Thread-safe: the functions only read the dynamic loader's state (dlopen/dlsym/dladdr).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace moke {

struct BlasLibrary {
  std::string path;    // the library file (symbolic links resolved)
  std::string vendor;  // "OpenBLAS", "BLIS" or "MKL"; empty: none of them (the reference BLAS)
  std::string config;  // the library's description of itself, when it has one (openblas_get_config())
  bool optimized() const { return !vendor.empty(); }
};

// Identifies the shared library at `path` (loading it RTLD_LOCAL if it is not loaded) by the functions
// optimized BLAS libraries export: openblas_get_config, bli_info_get_version_str, MKL_Get_Version_String
// (in the library or the libraries it depends on: Debian's OpenBLAS libblas.so.3 forwards to
// libopenblas.so.0). NOT_FOUND when the file cannot be loaded.
absl::StatusOr<BlasLibrary> IdentifyBlasLibrary(const std::string& path);

// The library that this process's sgemm_ (what LibTorch calls) comes from, identified as above.
// NOT_FOUND when no loaded library exports sgemm_.
absl::StatusOr<BlasLibrary> LinkedBlas();

// OK for an optimized BLAS; FAILED_PRECONDITION naming the library and the fix otherwise.
absl::Status CheckBlasLibrary(const BlasLibrary& blas);

// CheckBlasLibrary(LinkedBlas()).
absl::Status CheckBlas();

}  // namespace moke
