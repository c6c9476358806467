#include "harness/archive_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <unistd.h>

namespace mixlab {

namespace fs = std::filesystem;

void save_archive_atomically(torch::serialize::OutputArchive& archive, const fs::path& path) {
  const fs::path temporary = path.string() + ".tmp";
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(temporary.c_str(), "wb"), &std::fclose);
  if (!file) throw ArchiveWriteError("cannot open " + temporary.string() + " for writing: " + std::strerror(errno));
  int first_error = 0;
  // Reports every byte as written, so LibTorch's writer never throws (see the header).
  auto write = [&](const void* bytes, size_t count) -> size_t {
    if (first_error == 0 && count > 0 && std::fwrite(bytes, 1, count, file.get()) != count) first_error = errno ? errno : EIO;
    return count;
  };
  try {
    archive.save_to(write);
  } catch (const std::exception& error) {
    file.reset();
    fs::remove(temporary);
    const std::string what = error.what();
    throw ArchiveWriteError("cannot write " + temporary.string() + ": " + what.substr(0, what.find('\n')));
  }
  if (first_error == 0 && std::fflush(file.get()) != 0) first_error = errno ? errno : EIO;
  if (first_error == 0 && ::fsync(::fileno(file.get())) != 0 && errno != EINVAL) first_error = errno;
  std::FILE* raw = file.release();
  if (std::fclose(raw) != 0 && first_error == 0) first_error = errno ? errno : EIO;
  if (first_error != 0) {
    std::error_code ignored;
    fs::remove(temporary, ignored);
    throw ArchiveWriteError("cannot write " + temporary.string() + ": " + std::strerror(first_error));
  }
  fs::rename(temporary, path);
}

}  // namespace mixlab
