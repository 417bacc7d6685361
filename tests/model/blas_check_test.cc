// The BLAS check identifies libraries by what they export, never by timing (a timing bar fails on a
// busy machine): the real reference BLAS and the real OpenBLAS are told apart, and the library this
// process's matrix products use is the one the dynamic loader mapped for them.
#include "core/model/blas_check.h"

#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace moke {
namespace {

// Debian's file names (scripts/setup installs both packages: libblas3, libopenblas0-pthread).
constexpr char kReferenceBlas[] = "/usr/lib/x86_64-linux-gnu/blas/libblas.so.3";
constexpr char kOpenBlas[] = "/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3";

TEST(BlasCheckTest, ReferenceBlasIsRefusedWithTheFix) {
  ASSERT_TRUE(std::filesystem::exists(kReferenceBlas)) << "install libblas3 (scripts/setup)";
  absl::StatusOr<BlasLibrary> ref = IdentifyBlasLibrary(kReferenceBlas);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_FALSE(ref->optimized());
  EXPECT_EQ(ref->vendor, "");
  EXPECT_EQ(ref->path, std::filesystem::canonical(kReferenceBlas).string());
  absl::Status st = CheckBlasLibrary(*ref);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr(ref->path));
  EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("libopenblas0-pthread"));
}

TEST(BlasCheckTest, OpenBlasIsRecognisedThroughItsForwardingLibblas) {
  ASSERT_TRUE(std::filesystem::exists(kOpenBlas)) << "install libopenblas0-pthread (scripts/setup)";
  absl::StatusOr<BlasLibrary> ob = IdentifyBlasLibrary(kOpenBlas);
  ASSERT_TRUE(ob.ok()) << ob.status();
  EXPECT_EQ(ob->vendor, "OpenBLAS");
  EXPECT_THAT(ob->config, ::testing::StartsWith("OpenBLAS "));
  EXPECT_TRUE(CheckBlasLibrary(*ob).ok());
}

TEST(BlasCheckTest, MissingLibraryIsNotFound) {
  EXPECT_EQ(IdentifyBlasLibrary("/nonexistent/libblas.so.3").status().code(), absl::StatusCode::kNotFound);
}

// The library behind this process's sgemm_ is mapped into it (cross-checked in /proc/self/maps), and
// it is the optimized one scripts/setup installs: a process on the reference BLAS fails here.
TEST(BlasCheckTest, LinkedBlasIsTheMappedOptimizedLibrary) {
  at::Tensor c = at::mm(at::ones({8, 8}), at::ones({8, 8}));  // LibTorch is loaded and multiplies
  EXPECT_EQ(c[0][0].item<float>(), 8.0f);
  absl::StatusOr<BlasLibrary> blas = LinkedBlas();
  ASSERT_TRUE(blas.ok()) << blas.status();
  std::ifstream maps("/proc/self/maps");
  const std::string text((std::istreambuf_iterator<char>(maps)), {});
  EXPECT_THAT(text, ::testing::HasSubstr(" " + blas->path + "\n")) << "LinkedBlas named a file that is not mapped";
  EXPECT_TRUE(CheckBlas().ok()) << CheckBlas() << "\n(update-alternatives --display libblas.so.3-x86_64-linux-gnu)";
  std::printf("[ blas ] %s: %s (%s)\n", blas->path.c_str(), blas->vendor.c_str(), blas->config.c_str());
}

}  // namespace
}  // namespace moke
