// A fresh, empty folder under the system temp dir for one test, removed with everything in it on
// destruction. Names carry the tag, the process id and a counter, so tests running at once (ctest -j)
// never share a folder. Not thread-safe: make TempDirs on one thread.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"

namespace moke::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    static int counter = 0;
    path_ = (std::filesystem::temp_directory_path() / absl::StrCat("moke_", tag, "_", ::getpid(), "_", counter++))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace moke::testing
