// Process-level settings a program applies to itself, so that it runs well without tuning by hand:
// the malloc policy, the OpenMP/BLAS runtimes' waiting policy, and the default compute thread count.
//
// First thing in main(), before the program starts threads of its own:
//   const std::string process_settings = moke::ConfigureProcess(argv);  // log it once logging is set up
// and once the model's size is known (the editor, after loading it):
//   at::set_num_threads(moke::ConfigureComputeThreads(options.threads, config.NumParameters()));
//
// Settings the user made (environment variables) always win: each default below is applied only when
// its variable is unset. No LibTorch here (the checkpoint tool uses this too).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace moke {

// ---- Runtime environment (read by libraries when they are loaded) ----

// The variables ApplyRuntimeDefaults sets when unset:
//   OMP_WAIT_POLICY=passive     libgomp's workers sleep between parallel regions instead of spinning
//                               (GOMP_SPINCOUNT 300000 by default) on cores that other work needs
//   OPENBLAS_THREAD_TIMEOUT=4   OpenBLAS's workers wait 2^4 cycles, the minimum, instead of 2^28
//                               (~0.1 s of spinning after every threaded product) before sleeping
struct RuntimeDefault {
  const char* name;
  const char* value;
};
inline constexpr RuntimeDefault kRuntimeDefaults[] = {{"OMP_WAIT_POLICY", "passive"},
                                                      {"OPENBLAS_THREAD_TIMEOUT", "4"}};

// libgomp and OpenBLAS read these variables in their ELF constructors, which run before main() (and
// before an executable's .preinit_array can change the environment that libc hands them), so setenv()
// in main() is too late. So: when any kRuntimeDefaults variable is unset, this sets them and re-executes
// the program (/proc/self/exe, same argv, same pid) so that the runtimes start with them; the new
// image finds them set and returns at once. Returns OK without re-executing when all are set, or when
// the process may use only one CPU (no worker thread ever waits); an error when the re-exec failed
// (the program then goes on with the libraries' defaults). Setting either variable yourself keeps it
// (and OMP_WAIT_POLICY=active, say, with OPENBLAS_THREAD_TIMEOUT set too, avoids the re-exec). Call
// first thing in main(), before the program starts threads of its own. Costs one more program load
// (measured: see process_tuning.cc).
absl::Status ApplyRuntimeDefaults(char** argv);

// ---- malloc ----

// Sets glibc malloc's policy to keep freed memory for reuse instead of handing every large block back
// to the kernel and faulting it in again: an edit's training loop allocates and frees the same
// tensors every iteration. Each option is set only when the user has not set it (MALLOC_*_ or
// GLIBC_TUNABLES glibc.malloc.*):
//   M_MMAP_THRESHOLD 1 GiB  blocks up to 1 GiB come from the heap, not from a fresh mmap (zero-filled
//                           page by page on first touch, unmapped on free)
//   M_TRIM_THRESHOLD 1 GiB  free memory at the top of a heap is returned only past 1 GiB
//   M_TOP_PAD 64 MiB        the heap grows in steps of at least 64 MiB (address space; pages are
//                           committed when touched)
// Cost: the resident size stays near its high-water mark. Returns what it set, for the log. Call first
// thing in main(). (A caching allocator preloaded instead, jemalloc or tcmalloc, crashes: memory is
// allocated on one side of the SentencePiece shim and freed on the other.)
std::string ConfigureAllocator();

// ApplyRuntimeDefaults(argv), then ConfigureAllocator(). Returns one line for the log: the malloc policy,
// the runtime variables' values, and the re-exec's error if it failed.
std::string ConfigureProcess(char** argv);

// ---- Threads ----

// CPUs this process may use: its affinity mask (sched_getaffinity), capped by the CPU quota of its
// cgroup (CgroupCpuLimit, rounded down, at least 1).
int UsableCpus();

// The CPU quota, in CPUs (1.5 = 150 ms per 100 ms), that applies to this process's cgroup: the
// smallest over the cgroup and its ancestors, cgroup v2 (cpu.max) or v1 (cpu.cfs_quota_us /
// cpu.cfs_period_us). nullopt when there is none. Files are read under `root` (tests pass a fake
// tree holding proc/self/cgroup and sys/fs/cgroup/...).
std::optional<double> CgroupCpuLimit(const std::string& root = "/");

// Parsers of the cgroup files: nullopt for "no limit" or for unreadable contents.
std::optional<double> ParseCgroupV2CpuMax(std::string_view cpu_max);                            // "150000 100000"
std::optional<double> ParseCgroupV1Quota(std::string_view quota_us, std::string_view period_us);  // "150000", "100000"

// Models below this many parameters run on one thread: their matrices are too small to split (see
// process_tuning.cc for the measurement that chose it).
inline constexpr int64_t kMultiThreadMinParameters = 20'000'000;

// 1 for a model under kMultiThreadMinParameters, else `usable_cpus` (at least 1).
int ThreadCountFor(int64_t model_parameters, int usable_cpus);
// ThreadCountFor(model_parameters, UsableCpus()).
int DefaultThreadCount(int64_t model_parameters);

// The compute thread count to use, `requested` when > 0 (the "threads" setting) or
// DefaultThreadCount(model_parameters); also sets the BLAS library's own thread pool to it (OpenBLAS,
// BLIS: LibTorch's matrix products run on that pool, not on OpenMP's) unless OPENBLAS_NUM_THREADS /
// BLIS_NUM_THREADS is set. Returns the count, for at::set_num_threads. Not thread-safe: call once, from
// the thread that sets up the model.
int ConfigureComputeThreads(int requested, int64_t model_parameters);

}  // namespace moke
