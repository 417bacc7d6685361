// Runs the plotting script (plot_bench.py, /usr/bin/python3 + matplotlib) on a run's output folder.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace moke::bench {

// Finds plot_bench.py: `explicit_path` when set, else next to the running executable, else in the
// source tree (compile-time path).
std::string FindPlotScript(const std::string& explicit_path);

// Runs `/usr/bin/python3 SCRIPT --dir DIR --out DIR/bench.png`. FAILED_PRECONDITION when python3 or
// matplotlib is missing (the caller warns and goes on), INTERNAL when the script fails.
absl::Status RunPlot(const std::string& script, const std::string& dir, const std::string& out_png);

// Runs argv[0] with arguments (no shell); returns the exit code, or -1 when it could not be started.
int RunProcess(const std::vector<std::string>& argv);

}  // namespace moke::bench
