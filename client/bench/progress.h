// A progress bar on stderr: "edits [#######.......]  14/30  1.9/s  ETA 0:08". On a terminal it redraws
// one line; otherwise it prints a line at every 10% so that logs stay short.
//
// Thread-compatible: one thread updates a Progress.
#pragma once

#include <chrono>
#include <string>

namespace moke::bench {

class Progress {
 public:
  // `enabled` false prints nothing.
  Progress(std::string label, int total, bool enabled);
  ~Progress();
  void Update(int done);
  void Finish();

  // "1:05" / "1:02:03".
  static std::string FormatDuration(double seconds);

 private:
  std::string label_;
  int total_;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace moke::bench
