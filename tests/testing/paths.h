// Where tests find the embedded model and the shared data.
#pragma once

#include <filesystem>
#include <string>

namespace moke::testing {

inline std::string DefaultModelDir() { return MOKE_DEFAULT_MODEL_DIR; }
inline std::string SharedDir() { return MOKE_SHARED_DIR; }
inline bool HaveShared(const std::string& rel) { return std::filesystem::exists(SharedDir() + "/" + rel); }
inline std::string SourceDir() { return MOKE_SOURCE_DIR; }

}  // namespace moke::testing

// Skips the current test when ../shared (or a file in it) is absent.
#define MOKE_REQUIRE_SHARED(rel)                                                         \
  do {                                                                                   \
    if (!::moke::testing::HaveShared(rel)) GTEST_SKIP() << "skipped: ../shared/" << rel \
                                                        << " is not here";               \
  } while (0)
