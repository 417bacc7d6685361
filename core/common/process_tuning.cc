#include "core/common/process_tuning.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"

namespace moke {
namespace {

bool IsSet(const char* name) { return std::getenv(name) != nullptr; }

std::string_view Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\n");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

// Splits on `sep`, dropping empty pieces.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(sep, b);
    if (e == std::string_view::npos) e = s.size();
    if (e > b) out.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::optional<int64_t> ParseInt(std::string_view s) {
  s = Trim(s);
  int64_t v = 0;
  auto [p, err] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (err != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// `dir` and each of its ancestors up to and including `top` (dir must lie under top).
std::vector<std::string> SelfAndAncestors(std::string dir, const std::string& top) {
  std::vector<std::string> out;
  while (dir.size() >= top.size()) {
    out.push_back(dir);
    if (dir.size() == top.size()) break;
    const size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < top.size()) {
      dir = top;
    } else {
      dir.resize(slash);
    }
  }
  return out;
}

void KeepMin(std::optional<double>* best, std::optional<double> v) {
  if (v && (!*best || *v < **best)) *best = v;
}

}  // namespace

// The re-exec costs one more load of the program's ~340 shared libraries and their initialisers:
// measured with `moke-server --help` on the 2-core build machine at load 15, 0.85 s of CPU (0.6 user,
// 0.25 system) and 2.2 s of wall time per load. Where only one CPU is usable no worker thread ever
// waits, so the variables cannot matter and nothing is re-executed.
absl::Status ApplyRuntimeDefaults(char** argv) {
  if (UsableCpus() <= 1) return absl::OkStatus();
  bool changed = false;
  for (const RuntimeDefault& d : kRuntimeDefaults) {
    if (IsSet(d.name)) continue;
    if (setenv(d.name, d.value, /*overwrite=*/0) != 0) {
      return absl::InternalError(absl::StrCat("setenv ", d.name, ": ", std::strerror(errno)));
    }
    changed = true;
  }
  if (!changed) return absl::OkStatus();
  execv("/proc/self/exe", argv);
  return absl::InternalError(absl::StrCat("re-executing /proc/self/exe to apply OMP_WAIT_POLICY and "
                                          "OPENBLAS_THREAD_TIMEOUT failed: ",
                                          std::strerror(errno), "; the OpenMP and BLAS defaults stay"));
}

// Measured with edit_benchmark on stories260k (MoKE, 3 edits of 70 iterations, frozen prefix, --threads 1)
// on the 2-core build machine at load ~14, two runs each, per edit: glibc's defaults 4.06-4.75 s wall,
// 1.51-1.57 s CPU (the whole run: 12.6-13.6 s of system time, page faults of fresh mmaps); this policy
// 1.78-1.94 s wall, 0.66 s CPU (1.5-1.9 s of system time); the MALLOC_*_ variables (4 GiB,
// 4 GiB, 512 MiB) 1.88-2.25 s wall, 0.64-0.75 s CPU.
std::string ConfigureAllocator() {
  struct Option {
    int param;
    const char* env;      // glibc's environment variable for it
    const char* tunable;  // its GLIBC_TUNABLES name
    int value;
    const char* shown;
  };
  static constexpr Option kOptions[] = {
      {M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", 1 << 30, "mmap_threshold=1GiB"},
      {M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", 1 << 30, "trim_threshold=1GiB"},
      {M_TOP_PAD, "MALLOC_TOP_PAD_", "glibc.malloc.top_pad", 64 << 20, "top_pad=64MiB"},
  };
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  std::string out = "malloc:";
  for (const Option& o : kOptions) {
    if (IsSet(o.env) || (tunables && std::strstr(tunables, o.tunable))) {
      absl::StrAppend(&out, " ", o.tunable, " left to the environment;");
      continue;
    }
    absl::StrAppend(&out, " ", o.shown, mallopt(o.param, o.value) == 1 ? "" : " (refused)", ";");
  }
  out.pop_back();
  return out;
}

std::string ConfigureProcess(char** argv) {
  const absl::Status runtime = ApplyRuntimeDefaults(argv);
  std::string out = ConfigureAllocator();
  for (const RuntimeDefault& d : kRuntimeDefaults) {
    const char* v = std::getenv(d.name);
    absl::StrAppend(&out, "; ", d.name, "=", v ? v : "(unset)");
  }
  if (!runtime.ok()) absl::StrAppend(&out, "; ", runtime.message());
  return out;
}

std::optional<double> ParseCgroupV2CpuMax(std::string_view cpu_max) {
  const std::vector<std::string_view> f = Split(Trim(cpu_max), ' ');
  if (f.empty() || f.size() > 2 || f[0] == "max") return std::nullopt;
  const std::optional<int64_t> quota = ParseInt(f[0]);
  const std::optional<int64_t> period = f.size() == 2 ? ParseInt(f[1]) : std::optional<int64_t>(100000);
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> ParseCgroupV1Quota(std::string_view quota_us, std::string_view period_us) {
  const std::optional<int64_t> quota = ParseInt(quota_us);
  const std::optional<int64_t> period = ParseInt(period_us);
  if (!quota || !period || *quota <= 0 || *period <= 0) return std::nullopt;  // -1: no quota
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

std::optional<double> CgroupCpuLimit(const std::string& root) {
  const std::string base = root == "/" ? "" : root;
  const std::optional<std::string> self = ReadSmallFile(base + "/proc/self/cgroup");
  if (!self) return std::nullopt;
  std::optional<double> limit;
  for (std::string_view line : Split(*self, '\n')) {
    // "hierarchy-id:controllers:path"; the path may contain ':'.
    const size_t a = line.find(':');
    const size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(a + 1, b - a - 1);
    std::string path(line.substr(b + 1));
    if (path == "/") path.clear();
    if (line.substr(0, a) == "0" && controllers.empty()) {  // cgroup v2
      const std::string top = base + "/sys/fs/cgroup";
      for (const std::string& dir : SelfAndAncestors(top + path, top)) {
        if (auto text = ReadSmallFile(dir + "/cpu.max")) KeepMin(&limit, ParseCgroupV2CpuMax(*text));
      }
      continue;
    }
    bool cpu = false;
    for (std::string_view c : Split(controllers, ',')) cpu |= c == "cpu";
    if (!cpu) continue;
    // cgroup v1: the cpu controller is mounted at one of these; inside a container the process's path
    // may be the host's, which does not exist there, and the mount itself is the container's cgroup.
    for (const char* mount : {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
      const std::string top = base + mount;
      for (const std::string& dir : SelfAndAncestors(top + path, top)) {
        auto quota = ReadSmallFile(dir + "/cpu.cfs_quota_us");
        auto period = ReadSmallFile(dir + "/cpu.cfs_period_us");
        if (quota && period) KeepMin(&limit, ParseCgroupV1Quota(*quota, *period));
      }
    }
  }
  return limit;
}

int UsableCpus() {
  int cpus = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = static_cast<int>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  if (const std::optional<double> quota = CgroupCpuLimit()) {
    // Rounded down: a parallel region whose threads outnumber the quota is throttled as a whole.
    cpus = std::min(cpus, std::max(1, static_cast<int>(std::floor(*quota))));
  }
  return cpus;
}

// The cut-off, measured with edit_benchmark (MoKE, 20 iterations per edit; Ask of 8 new tokens) with 1
// and 2 threads for both OpenMP and OpenBLAS, on the 2-core build machine at load 13-16 (two runs each;
// per edit around edit 3, and Ask p50 on unrelated questions):
//   stories260k,  0.3M parameters (d_model 64):  1 thread 0.25-0.52 s, 8-15 ms;  2 threads 0.61-0.93 s, 25-64 ms
//   tiny,         4.2M (d_model 64, vocab 32000): 1 thread 3.6-4.8 s, 23-24 ms;   2 threads 4.2-6.9 s, 33-36 ms
//   llama2-cpu 2 layers, 39M (d_model 512):       1 thread 14.0-19.1 s, 290-390 ms; 2 threads 15.6-21.2 s, 130-365 ms
// With d_model 64 a second thread only costs (1.2-3.7x slower); at 39M it breaks even on edits and
// halved Ask once even on that busy machine, and idle cores favour it more. 20M lies between.
int ThreadCountFor(int64_t model_parameters, int usable_cpus) {
  if (model_parameters < kMultiThreadMinParameters) return 1;
  return std::max(1, usable_cpus);
}

int DefaultThreadCount(int64_t model_parameters) { return ThreadCountFor(model_parameters, UsableCpus()); }

int ConfigureComputeThreads(int requested, int64_t model_parameters) {
  const int n = requested > 0 ? requested : DefaultThreadCount(model_parameters);
  if (!IsSet("OPENBLAS_NUM_THREADS")) {
    if (auto* f = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) f(n);
  }
  if (!IsSet("BLIS_NUM_THREADS")) {
    if (auto* f = reinterpret_cast<void (*)(long)>(dlsym(RTLD_DEFAULT, "bli_thread_set_num_threads"))) f(n);
  }
  return n;
}

}  // namespace moke
