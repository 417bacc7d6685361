// A fresh folder under the temp dir for one test, removed by the destructor.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace moke::testing {

class TempDir {
 public:
  // `tag` names the folder; the process id and a counter keep folders of parallel tests apart.
  explicit TempDir(const std::string& tag) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace moke::testing
