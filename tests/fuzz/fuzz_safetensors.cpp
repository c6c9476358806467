// libFuzzer target: the safetensors reader (harness/safetensors.h) on arbitrary file contents.
//
// Each input is written to a file and read with read_safetensors_file, exactly as `mixlab mixer
// run --input` and the weight loaders read one.  Every rejection must be a SafetensorsError;
// a signal, a sanitizer report or another exception is a finding.  An accepted file is checked
// against its own header: every tensor's byte size equals numel · element size.
//
// Build and run: scripts/fuzz.sh (a separate build folder, clang with ASan + UBSan).

#include "harness/safetensors.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

std::string scratch_file() {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/mixlab_fuzz_safetensors_" + std::to_string(::getpid()) + ".safetensors";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = scratch_file();
  if (std::FILE* file = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, file);
    std::fclose(file);
  } else {
    std::abort();
  }
  try {
    const auto contents = mixlab::read_safetensors_file(path);
    size_t total = 0;
    for (const auto& [name, tensor] : contents.tensors) total += tensor.numel() * tensor.element_size();
    if (total > size) std::abort();  // the tensors cannot hold more bytes than the file
  } catch (const mixlab::SafetensorsError&) {
  }
  return 0;
}
