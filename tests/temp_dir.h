#pragma once
// A temporary folder for one test, removed with everything in it when the test ends.

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <system_error>
#include <thread>

namespace mixlab::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("mixlab_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  // A process a test started and stopped (e.g. after a timeout) may still be writing in the
  // folder while it shuts down: retry for a few seconds, and never throw from a destructor.
  ~TempDir() {
    std::error_code error;
    for (int attempt = 0; attempt < 50; ++attempt) {
      std::filesystem::remove_all(path, error);
      if (!error) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

}  // namespace mixlab::testing
