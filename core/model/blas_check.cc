#include "core/model/blas_check.h"

#include <dlfcn.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace moke {

absl::StatusOr<BlasLibrary> IdentifyBlasLibrary(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::NotFoundError(absl::StrCat("cannot load ", path, ": ", err ? err : "unknown error"));
  }
  BlasLibrary blas;
  std::error_code ec;
  blas.path = std::filesystem::canonical(path, ec).string();
  if (ec) blas.path = path;
  if (auto* f = reinterpret_cast<char* (*)()>(dlsym(handle, "openblas_get_config"))) {
    blas.vendor = "OpenBLAS";
    if (const char* c = f()) blas.config = c;
  } else if (auto* g = reinterpret_cast<const char* (*)()>(dlsym(handle, "bli_info_get_version_str"))) {
    blas.vendor = "BLIS";
    if (const char* c = g()) blas.config = absl::StrCat("BLIS ", c);
  } else if (auto* m = reinterpret_cast<void (*)(char*, int)>(dlsym(handle, "MKL_Get_Version_String"))) {
    blas.vendor = "MKL";
    char buf[256] = {};
    m(buf, sizeof(buf) - 1);
    blas.config = buf;
  }
  dlclose(handle);
  return blas;
}

absl::StatusOr<BlasLibrary> LinkedBlas() {
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sgemm == nullptr || dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr || info.dli_fname[0] == '\0') {
    return absl::NotFoundError("no loaded library provides sgemm_ (is LibTorch linked?)");
  }
  return IdentifyBlasLibrary(info.dli_fname);
}

absl::Status CheckBlasLibrary(const BlasLibrary& blas) {
  if (blas.optimized()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "fp32 matrix products go through ", blas.path,
      ", which is not an optimized BLAS (no OpenBLAS, BLIS or MKL entry points): probably the reference BLAS, "
      "about 40x slower. Install an optimized one: apt-get install libopenblas0-pthread (or run scripts/setup)"));
}

absl::Status CheckBlas() {
  absl::StatusOr<BlasLibrary> blas = LinkedBlas();
  if (!blas.ok()) return blas.status();
  return CheckBlasLibrary(*blas);
}

}  // namespace moke
