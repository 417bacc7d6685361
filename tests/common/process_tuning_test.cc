// Process settings: the cgroup and affinity readings that choose the thread count (fed fake cgroup
// trees), the malloc policy's effect on where a large block comes from, the BLAS pool size, and the
// OpenMP waiting policy as libgomp itself reports it in a program that applied the defaults.
#include "core/common/process_tuning.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <sched.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace moke {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CgroupParse, V2CpuMax) {
  EXPECT_EQ(ParseCgroupV2CpuMax("150000 100000\n"), 1.5);
  EXPECT_EQ(ParseCgroupV2CpuMax("200000 100000"), 2.0);
  EXPECT_EQ(ParseCgroupV2CpuMax("50000 200000"), 0.25);
  EXPECT_EQ(ParseCgroupV2CpuMax("max 100000\n"), std::nullopt);
  EXPECT_EQ(ParseCgroupV2CpuMax("max"), std::nullopt);
  for (const char* bad : {"", "\n", "abc 100000", "100000 0", "0 100000", "-5 100000", "1 2 3", "1.5 100000"}) {
    EXPECT_EQ(ParseCgroupV2CpuMax(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(CgroupParse, V1Quota) {
  EXPECT_EQ(ParseCgroupV1Quota("50000\n", "100000\n"), 0.5);
  EXPECT_EQ(ParseCgroupV1Quota("400000", "100000"), 4.0);
  EXPECT_EQ(ParseCgroupV1Quota("-1\n", "100000\n"), std::nullopt);  // no quota
  EXPECT_EQ(ParseCgroupV1Quota("x", "100000"), std::nullopt);
  EXPECT_EQ(ParseCgroupV1Quota("100000", "0"), std::nullopt);
}

// A fake root holding proc/self/cgroup and sys/fs/cgroup/... files.
class FakeRoot {
 public:
  FakeRoot() {
    root_ = fs::temp_directory_path() / ("moke_cgroup_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~FakeRoot() { fs::remove_all(root_); }
  void Write(const std::string& rel, const std::string& content) {
    const fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  std::string path() const { return root_.string(); }

 private:
  fs::path root_;
};

// Fake cgroup trees: the files each holds (path under the root: content) and the limit they give.
TEST(CgroupCpuLimit, FakeTrees) {
  struct Case {
    const char* what;
    std::map<std::string, std::string> files;
    std::optional<double> limit;
  };
  const Case cases[] = {
      {"v2: the tightest of the cgroup and its ancestors",
       {{"proc/self/cgroup", "0::/kubepods/pod1/ctr\n"},
        {"sys/fs/cgroup/cpu.max", "max 100000\n"},
        {"sys/fs/cgroup/kubepods/cpu.max", "800000 100000\n"},
        {"sys/fs/cgroup/kubepods/pod1/cpu.max", "300000 100000\n"},
        {"sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n"}},
       3.0},
      {"v2 inside a container's cgroup namespace",
       {{"proc/self/cgroup", "0::/\n"}, {"sys/fs/cgroup/cpu.max", "150000 100000\n"}},
       1.5},
      {"v1: the cpu controller's cgroup, under an unlimited root",
       {{"proc/self/cgroup", "11:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"},
        {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n"},
        {"sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"},
        {"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "200000\n"},
        {"sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n"}},
       2.0},
      // In a container the process's v1 path is the host's; the mount is the container's own cgroup.
      {"v1: the host's path is not visible, the mount's own quota applies",
       {{"proc/self/cgroup", "4:cpuacct,cpu:/docker/0123abcd\n"},
        {"sys/fs/cgroup/cpu/cpu.cfs_quota_us", "100000\n"},
        {"sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"}},
       1.0},
  };
  for (const Case& c : cases) {
    FakeRoot r;
    for (const auto& [path, content] : c.files) r.Write(path, content);
    EXPECT_EQ(CgroupCpuLimit(r.path()), c.limit) << c.what;
  }
}

TEST(CgroupCpuLimit, NoQuotaOrNoFiles) {
  FakeRoot r;
  EXPECT_EQ(CgroupCpuLimit(r.path()), std::nullopt);  // no proc/self/cgroup
  r.Write("proc/self/cgroup", "0::/user.slice\n");
  EXPECT_EQ(CgroupCpuLimit(r.path()), std::nullopt);  // no cpu.max anywhere
  r.Write("sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuLimit(r.path()), std::nullopt);
  r.Write("proc/self/cgroup", "3:memory:/x\n");  // v1 without the cpu controller
  EXPECT_EQ(CgroupCpuLimit(r.path()), std::nullopt);
}

TEST(Threads, CountFromModelSizeAndCpus) {
  EXPECT_EQ(ThreadCountFor(260'000, 16), 1);  // stories260k
  EXPECT_EQ(ThreadCountFor(kMultiThreadMinParameters - 1, 16), 1);
  EXPECT_EQ(ThreadCountFor(kMultiThreadMinParameters, 16), 16);
  EXPECT_EQ(ThreadCountFor(6'700'000'000, 2), 2);
  EXPECT_EQ(ThreadCountFor(6'700'000'000, 0), 1);
}

int AffinityCount() {
  cpu_set_t set;
  CPU_ZERO(&set);
  EXPECT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  return CPU_COUNT(&set);
}

// Restricts the calling thread to the first CPU of its affinity mask.
void PinThisThreadToOneCpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  int first = 0;
  while (!CPU_ISSET(first, &set)) ++first;
  CPU_ZERO(&set);
  CPU_SET(first, &set);
  ASSERT_EQ(sched_setaffinity(0, sizeof(set), &set), 0);
}

TEST(Threads, UsableCpusFollowsTheAffinityMask) {
  const int all = AffinityCount();
  ASSERT_GE(all, 1);
  const int usable = UsableCpus();
  EXPECT_GE(usable, 1);
  EXPECT_LE(usable, all);
  if (const auto quota = CgroupCpuLimit(); quota && *quota >= 1) {
    EXPECT_LE(usable, static_cast<int>(*quota));
  }
  // A thread pinned to one CPU may use one.
  int pinned = -1;
  std::thread t([&] {
    PinThisThreadToOneCpu();
    pinned = UsableCpus();
  });
  t.join();
  EXPECT_EQ(pinned, 1);
  EXPECT_EQ(DefaultThreadCount(6'700'000'000), usable);
  EXPECT_EQ(DefaultThreadCount(260'000), 1);
}

TEST(Threads, ConfigureComputeThreadsSetsTheBlasPool) {
  if (std::getenv("OPENBLAS_NUM_THREADS")) GTEST_SKIP() << "OPENBLAS_NUM_THREADS is set: the pool is the user's";
  auto* get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  ASSERT_NE(get, nullptr) << "OpenBLAS is not loaded (scripts/setup installs libopenblas0-pthread)";
  const int before = get();
  EXPECT_EQ(ConfigureComputeThreads(0, 260'000), 1);  // a small model: one thread
  EXPECT_EQ(get(), 1);
  EXPECT_EQ(ConfigureComputeThreads(0, 6'700'000'000), UsableCpus());
  EXPECT_EQ(get(), UsableCpus());
  EXPECT_EQ(ConfigureComputeThreads(1, 6'700'000'000), 1);  // the "threads" setting wins
  EXPECT_EQ(get(), 1);
  reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))(before);
}

// With glibc's defaults a 64 MiB block is always a fresh mmap (the dynamic threshold stops at 32 MiB),
// faulted in page by page and unmapped on free; under the policy it comes from the heap, and the heap
// keeps it when it is freed.
TEST(Allocator, LargeBlocksComeFromAndStayInTheHeap) {
  for (const char* v : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"}) {
    if (std::getenv(v)) GTEST_SKIP() << v << " is set: the policy is the user's";
  }
  const std::string policy = ConfigureAllocator();
  EXPECT_EQ(policy, "malloc: mmap_threshold=1GiB; trim_threshold=1GiB; top_pad=64MiB");
  constexpr size_t kBlock = 64u << 20;
  const struct mallinfo2 before = mallinfo2();
  char* p = static_cast<char*>(std::malloc(kBlock));
  ASSERT_NE(p, nullptr);
  std::memset(p, 1, kBlock);
  const struct mallinfo2 during = mallinfo2();
  EXPECT_EQ(during.hblkhd, before.hblkhd) << "the block was mmapped";
  EXPECT_GE(during.arena, before.arena + kBlock) << "the block is not in the heap";
  std::free(p);
  const struct mallinfo2 after = mallinfo2();
  EXPECT_EQ(after.arena, during.arena) << "the heap was trimmed after the free";
  // The same block again: served from the kept memory, the heap does not grow.
  p = static_cast<char*>(std::malloc(kBlock));
  EXPECT_EQ(mallinfo2().arena, during.arena);
  std::free(p);
}

// Runs the probe with `env` added to this process's environment minus the runtime defaults' names;
// returns its stdout and stderr.
std::string RunProbe(const std::map<std::string, std::string>& env) {
  std::vector<std::string> vars;
  for (char** e = environ; *e; ++e) {
    const std::string v = *e;
    bool drop = v.rfind("OMP_DISPLAY_ENV=", 0) == 0;
    for (const RuntimeDefault& d : kRuntimeDefaults) drop |= v.rfind(std::string(d.name) + "=", 0) == 0;
    if (!drop) vars.push_back(v);
  }
  for (const auto& [k, v] : env) vars.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& v : vars) envp.push_back(v.data());
  envp.push_back(nullptr);
  const std::string out = (fs::temp_directory_path() / ("moke_tuning_probe_" + std::to_string(::getpid()))).string();
  std::string bin = MOKE_TUNING_PROBE;
  char* argv[] = {bin.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  fs::remove(out);
  return text;
}

std::vector<std::string> Matches(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t b = 0;
  while ((b = text.find(prefix, b)) != std::string::npos) {
    const size_t e = text.find('\n', b);
    out.push_back(text.substr(b + prefix.size(), e - b - prefix.size()));
    b = e;
  }
  return out;
}

// libgomp reads OMP_WAIT_POLICY in its constructor, before main(): the program re-executes itself with
// the variable set, and libgomp (asked through OMP_DISPLAY_ENV) then spins 0 times instead of 300000.
TEST(RuntimeDefaults, LibgompRunsPassiveInTheReexecutedImage) {
  const std::string out = RunProbe({{"OMP_DISPLAY_ENV", "verbose"}});
  if (UsableCpus() <= 1) {  // the probe inherits this process's CPUs: no worker waits, nothing to re-exec for
    EXPECT_EQ(Matches(out, "start pid=").size(), 1u) << out;
    EXPECT_EQ(Matches(out, "GOMP_SPINCOUNT = "), std::vector<std::string>{"'300000'"}) << out;
    return;
  }
  const std::vector<std::string> starts = Matches(out, "start pid=");
  ASSERT_EQ(starts.size(), 2u) << out;
  EXPECT_EQ(starts[0], starts[1]) << "the re-exec keeps the process";
  const std::vector<std::string> spin = Matches(out, "GOMP_SPINCOUNT = ");
  ASSERT_EQ(spin.size(), 2u) << out;
  EXPECT_EQ(spin[0], "'300000'") << "libgomp's default in the first image";
  EXPECT_EQ(spin[1], "'0'") << out;
  EXPECT_THAT(out, HasSubstr("environ OMP_WAIT_POLICY=passive\n"));
  EXPECT_THAT(out, HasSubstr("environ OPENBLAS_THREAD_TIMEOUT=4\n"));
  EXPECT_THAT(out, Not(HasSubstr("error")));
}

// A process pinned to one CPU never has a worker thread waiting: no re-exec, the environment unchanged.
TEST(RuntimeDefaults, OneUsableCpuNeedsNoReexec) {
  std::string out;
  std::thread t([&] {  // the probe inherits this thread's affinity mask
    PinThisThreadToOneCpu();
    out = RunProbe({});
  });
  t.join();
  EXPECT_EQ(Matches(out, "start pid=").size(), 1u) << out;
  EXPECT_THAT(out, Not(HasSubstr("environ "))) << out;
}

TEST(RuntimeDefaults, TheUsersSettingsWinAndNeedNoReexec) {
  const std::string out = RunProbe(
      {{"OMP_DISPLAY_ENV", "verbose"}, {"OMP_WAIT_POLICY", "active"}, {"OPENBLAS_THREAD_TIMEOUT", "10"}});
  EXPECT_EQ(Matches(out, "start pid=").size(), 1u) << out;
  EXPECT_EQ(Matches(out, "GOMP_SPINCOUNT = "), std::vector<std::string>{"'30000000000'"}) << out;
  EXPECT_THAT(out, HasSubstr("environ OMP_WAIT_POLICY=active\n"));
  EXPECT_THAT(out, HasSubstr("environ OPENBLAS_THREAD_TIMEOUT=10\n"));
}

}  // namespace
}  // namespace moke
