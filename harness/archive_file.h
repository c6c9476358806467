#pragma once
// Writing a LibTorch archive (a checkpoint) to a file so that no failure can abort the process.
//
// OutputArchive::save_to(filename) writes through a zip writer whose destructor finishes the
// file; when the disk is full that destructor throws and the process dies by std::terminate
// (SIGABRT), leaving the sweep's point `running`.  Here the archive is streamed through a writer
// function that never reports failure to LibTorch: it remembers the first error (errno) instead,
// and after the archive is complete the error is raised as an ordinary exception.  The bytes go
// to PATH.tmp, are flushed and fsync'ed, and PATH.tmp is renamed over PATH, so a crash leaves the
// old file or the new one, never half of one.

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

namespace mixlab {

class ArchiveWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

void save_archive_atomically(torch::serialize::OutputArchive& archive, const std::filesystem::path& path);

}  // namespace mixlab
