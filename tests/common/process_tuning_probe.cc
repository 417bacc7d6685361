// Applies moke::ApplyRuntimeDefaults like moke-server's main() and reports what the process then has.
// Used by process_tuning_test (run it with OMP_DISPLAY_ENV=verbose to see libgomp's own settings).
//   start pid=<pid>                 once per program image (twice when it re-executed itself)
//   environ <NAME>=<value>          the variable as the image started with it (/proc/self/environ),
//                                   which is what library constructors read
//   torch threads <n>               LibTorch (and with it libgomp and the BLAS) is loaded
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include "core/common/process_tuning.h"

int main(int, char** argv) {
  std::printf("start pid=%d\n", static_cast<int>(getpid()));
  std::fflush(stdout);
  if (absl::Status s = moke::ApplyRuntimeDefaults(argv); !s.ok()) std::printf("error %s\n", s.ToString().c_str());
  std::ifstream in("/proc/self/environ", std::ios::binary);
  const std::string env((std::istreambuf_iterator<char>(in)), {});
  for (size_t b = 0; b < env.size();) {
    size_t e = env.find('\0', b);
    if (e == std::string::npos) e = env.size();
    const std::string var = env.substr(b, e - b);
    for (const moke::RuntimeDefault& d : moke::kRuntimeDefaults) {
      if (var.rfind(std::string(d.name) + "=", 0) == 0) std::printf("environ %s\n", var.c_str());
    }
    b = e + 1;
  }
  std::printf("torch threads %d\n", at::get_num_threads());
  return 0;
}
