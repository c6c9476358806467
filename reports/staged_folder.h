#pragma once
// A folder written in full or not at all: the report is written into a sibling staging folder
// (OUT.partial-PID) that replaces OUT only when everything is in it, so a killed or failed
// `mixlab report` leaves the previous report (or none), never half of one.

#include <filesystem>

namespace mixlab::reports {

class StagedFolder {
 public:
  explicit StagedFolder(std::filesystem::path final_path);
  ~StagedFolder();  // removes the staging folder unless committed; never throws
  StagedFolder(const StagedFolder&) = delete;
  StagedFolder& operator=(const StagedFolder&) = delete;

  const std::filesystem::path& staging() const { return staging_; }
  // Moves the staging folder to the final path, replacing what was there.
  void commit();

 private:
  std::filesystem::path final_, staging_;
  bool committed_ = false;
};

}  // namespace mixlab::reports
