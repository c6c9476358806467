// The process finds libstdc++'s functions in libstdc++ itself, not in the copies a LibTorch
// wheel exports (CMakeLists.txt, mixlab_libstdcxx_first; pytorch/pytorch issue 133437).  Under
// LibTorch 2.11 those copies crashed every test that made a temporary folder.  On Debian's
// LibTorch 1.13 there are no such copies; on the GPU machine this test guards the link order.

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace MIXLAB_UNITY_ID {

// The shared object that holds the definition the dynamic linker bound `function` to.
std::string defining_object(void* function) {
  Dl_info info{};
  if (dladdr(function, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return info.dli_fname;
}

TEST(RuntimeLinking, FilesystemFunctionsAreBoundToLibstdcxx) {
  using RemoveAll = std::uintmax_t (*)(const std::filesystem::path&);
  using TempDirectoryPath = std::filesystem::path (*)();
  const RemoveAll remove_all = &std::filesystem::remove_all;
  const TempDirectoryPath temp_directory_path = &std::filesystem::temp_directory_path;
  for (void* function : {reinterpret_cast<void*>(remove_all), reinterpret_cast<void*>(temp_directory_path)}) {
    const std::string object = defining_object(function);
    EXPECT_NE(object.find("libstdc++"), std::string::npos)
        << "a std::filesystem function is bound to " << object << ", not to libstdc++";
  }
}

}  // namespace
