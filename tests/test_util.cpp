// Tunes the allocator as the CLI does (sq::tune_allocator, before any test allocates), and
// removes the temporary directories of a test process whose tests all passed (fresh_path in
// test_util.h records them). Each ctest entry is one process running one test, so a failing
// test keeps exactly its own files; SQ_KEEP_TEST_DIRS=1 keeps everything.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "sliderquant/core/util.h"
#include "test_util.h"

namespace {

// The library code under test runs with the CLI's allocator settings (static initialisation,
// before gtest_main).
[[maybe_unused]] const bool kAllocatorTuned = sq::tune_allocator();

class RemoveFreshPaths : public ::testing::Environment {
 public:
  void TearDown() override {
    const char* keep = std::getenv("SQ_KEEP_TEST_DIRS");
    if ((keep && std::string(keep) == "1") || !::testing::UnitTest::GetInstance()->Passed()) return;
    for (const std::string& d : sq::testing::fresh_paths()) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);  // best effort: a leftover is not a test failure
    }
  }
};

// Registered before main() runs (gtest_main's RUN_ALL_TESTS then owns and calls it).
[[maybe_unused]] const ::testing::Environment* const kRemoveFreshPaths = ::testing::AddGlobalTestEnvironment(new RemoveFreshPaths);

}  // namespace
