#include "harness/progress.h"

#include <cstdio>

#include <unistd.h>

namespace mixlab {

Progress::Progress(size_t total_points, bool enabled)
    : total_(total_points), enabled_(enabled), started_(std::chrono::steady_clock::now()) {}

bool Progress::stderr_is_terminal() { return isatty(fileno(stderr)) != 0; }

std::string Progress::format_duration(double seconds) {
  const int64_t s = seconds < 0 ? 0 : static_cast<int64_t>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buffer;
}

void Progress::begin_point(size_t index, const std::string& label) {
  index_ = index;
  label_ = label;
  draw("", total_ ? static_cast<double>(index) / static_cast<double>(total_) : 0.0);
}

void Progress::measurement(int64_t seq_len, const std::string& phase, size_t done, size_t count) {
  const double within = count ? static_cast<double>(done) / static_cast<double>(count) : 0.0;
  const double fraction = total_ ? (static_cast<double>(index_) + within) / static_cast<double>(total_) : 0.0;
  draw("N=" + std::to_string(seq_len) + " " + phase + " (" + std::to_string(done + 1) + "/" + std::to_string(count) + ")",
       fraction);
}

// Remaining time is extrapolated from the fraction of the work done so far.  The fraction treats
// every point alike and every measurement of a point alike, so it is rough on a ladder whose
// long sequences dominate; it says "~".
void Progress::draw(const std::string& detail, double fraction_done) {
  if (!enabled_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  std::string line = "[point " + std::to_string(index_ + 1) + "/" + std::to_string(total_) + "] " + label_;
  if (!detail.empty()) line += "  " + detail;
  line += "  elapsed " + format_duration(elapsed);
  if (fraction_done > 0.01) line += "  remaining ~" + format_duration(elapsed * (1.0 - fraction_done) / fraction_done);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void Progress::clear() {
  if (!enabled_ || !drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

}  // namespace mixlab
