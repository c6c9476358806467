#pragma once
// A one-line progress display for long sweeps: point k of n, the current sequence length and
// phase, elapsed time and an estimate of the time remaining.  Redrawn in place on standard error
// when it is a terminal; silent otherwise (logs and Slurm output stay clean).

#include <chrono>
#include <cstdint>
#include <string>

namespace mixlab {

class Progress {
 public:
  Progress(size_t total_points, bool enabled);
  static bool stderr_is_terminal();

  void begin_point(size_t index, const std::string& label);  // index: 0-based
  // One measurement of the current point: `done` of `count` measurements are finished.
  void measurement(int64_t seq_len, const std::string& phase, size_t done, size_t count);
  void clear();  // erase the line (before printing something else)

  // "1:05", "2:03:04"
  static std::string format_duration(double seconds);

 private:
  void draw(const std::string& detail, double fraction_done);
  size_t total_;
  bool enabled_;
  size_t index_ = 0;
  std::string label_;
  std::chrono::steady_clock::time_point started_;
  bool drawn_ = false;
};

}  // namespace mixlab
