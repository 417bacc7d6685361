#include "client/bench/plot.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

extern char** environ;

namespace moke::bench {

std::string FindPlotScript(const std::string& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const auto beside = exe.parent_path() / "plot_bench.py";
    if (std::filesystem::exists(beside)) return beside.string();
  }
#ifdef MOKE_BENCH_SOURCE_DIR
  return std::string(MOKE_BENCH_SOURCE_DIR) + "/plot_bench.py";
#else
  return "plot_bench.py";
#endif
}

int RunProcess(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return -1;
}

absl::Status RunPlot(const std::string& script, const std::string& dir, const std::string& out_png) {
  constexpr const char* kPython = "/usr/bin/python3";
  if (access(kPython, X_OK) != 0)
    return absl::FailedPreconditionError("plot skipped: /usr/bin/python3 is not installed");
  if (!std::filesystem::exists(script))
    return absl::FailedPreconditionError(absl::StrCat("plot skipped: the plot script is not at ", script));
  const int rc = RunProcess({kPython, script, "--dir", dir, "--out", out_png});
  if (rc == 3)
    return absl::FailedPreconditionError(
        "plot skipped: matplotlib is not installed for /usr/bin/python3 (apt-get install python3-matplotlib)");
  if (rc != 0) return absl::InternalError(absl::StrCat("plot script ", script, " failed (exit code ", rc, ")"));
  return absl::OkStatus();
}

}  // namespace moke::bench
