#include "reports/staged_folder.h"

#include <unistd.h>

#include <string>

namespace mixlab::reports {

namespace fs = std::filesystem;

namespace {
fs::path sibling(const fs::path& path, const std::string& suffix) {
  fs::path name = path.filename().empty() ? path.parent_path().filename() : path.filename();
  fs::path parent = path.filename().empty() ? path.parent_path().parent_path() : path.parent_path();
  return parent / (name.string() + suffix + "-" + std::to_string(::getpid()));
}
}  // namespace

StagedFolder::StagedFolder(fs::path final_path)
    : final_(std::move(final_path)), staging_(sibling(final_, ".partial")) {
  fs::remove_all(staging_);
  fs::create_directories(staging_);
}

StagedFolder::~StagedFolder() {
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(staging_, ignored);
}

void StagedFolder::commit() {
  const fs::path final_dir = final_.filename().empty() ? final_.parent_path() : final_;
  const fs::path old = sibling(final_, ".old");
  const bool replacing = fs::exists(final_dir);
  if (replacing) fs::rename(final_dir, old);
  fs::rename(staging_, final_dir);
  committed_ = true;
  if (replacing) {
    std::error_code ignored;
    fs::remove_all(old, ignored);
  }
}

}  // namespace mixlab::reports
