// gnuplot driver: data files, a script per plot, and the gnuplot run with its exit status checked.

#include "reports/plots.h"

#include "reports/database.h"
#include "reports/queries.h"
#include "reports/text.h"

#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace mixlab::reports {

namespace fs = std::filesystem;

// ------------------------------------------------------------------ colours

namespace {
// Okabe–Ito (colour-blind safe, yellow left out) followed by four more distinct colours.
const char* const kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                "#56B4E9", "#000000", "#8C564B", "#7F7F7F", "#BCBD22"};
constexpr int kPaletteSize = sizeof(kPalette) / sizeof(kPalette[0]);
// Filled circle, square, up triangle, diamond, down triangle, pentagon.
const int kMarkers[] = {7, 5, 9, 13, 11, 15};
constexpr int kMarkerCount = sizeof(kMarkers) / sizeof(kMarkers[0]);

// Failure markers: open or line shapes, none of them used for measured points.
struct FailureKind {
  const char* status;
  int point_type;
};
const FailureKind kFailureKinds[] = {{"oom", 2}, {"time_budget", 8}, {"nonfinite", 12}, {"unsupported", 3}, {"error", 1}};

int failure_kind(const std::string& status) {
  for (int i = 0; i < 4; ++i)
    if (status == kFailureKinds[i].status) return i;
  return 4;  // error and anything unexpected
}
}  // namespace

ColourMap::ColourMap(std::vector<std::string> labels) : labels_(std::move(labels)) {
  std::sort(labels_.begin(), labels_.end());
  labels_.erase(std::unique(labels_.begin(), labels_.end()), labels_.end());
}

int ColourMap::index(const std::string& label) const {
  auto found = std::lower_bound(labels_.begin(), labels_.end(), label);
  return found != labels_.end() && *found == label ? static_cast<int>(found - labels_.begin()) : -1;
}

std::string ColourMap::colour(const std::string& label) const {
  const int i = index(label);
  return i < 0 ? "#999999" : kPalette[i % kPaletteSize];
}

int ColourMap::marker(const std::string& label) const {
  const int i = index(label);
  return kMarkers[(i < 0 ? 0 : i) % kMarkerCount];
}

int ColourMap::dash(const std::string& label) const {
  const int i = index(label);
  return i < 0 ? 1 : 1 + i / kPaletteSize;
}

// ------------------------------------------------------------------ the script

namespace {

struct Range {
  double low, high;
};

std::string number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.10g", value);
  return buffer;
}

// The y range: data padded by 6% of its extent (log or linear); failure markers sit on `high`.
Range y_range(const PlotSpec& spec) {
  double low = INFINITY, high = -INFINITY;
  auto include = [&](double y) {
    if (std::isfinite(y) && (!spec.log_y || y > 0)) {
      low = std::min(low, y);
      high = std::max(high, y);
    }
  };
  for (const auto& curve : spec.curves) {
    for (const auto& point : curve.points) include(point.second);
    for (const auto& repeats : curve.samples)
      for (double y : repeats) include(y);
  }
  if (!std::isfinite(low)) return spec.log_y ? Range{1, 10} : Range{0, 1};
  if (spec.log_y) {
    const double pad = std::max(1.15, std::pow(high / low, 0.06));
    return {low / pad, high * pad};
  }
  const double span = high > low ? high - low : std::max(std::fabs(high), 1.0);
  return {low - 0.06 * span, high + 0.08 * span};
}

Range x_range(const PlotSpec& spec) {
  double low = INFINITY, high = -INFINITY;
  for (const auto& curve : spec.curves) {
    for (const auto& point : curve.points) low = std::min(low, point.first), high = std::max(high, point.first);
    for (const auto& failed : curve.failed) low = std::min(low, failed.first), high = std::max(high, failed.first);
  }
  if (!std::isfinite(low)) return {1, 2};
  if (spec.log_x) {
    if (low == high) return {low / 2, high * 2};
    const double pad = std::max(1.08, std::pow(high / low, 0.04));
    return {low / pad, high * pad};
  }
  const double span = high > low ? high - low : 1.0;
  return {low - 0.04 * span, high + 0.04 * span};
}

// Tics for a log axis over [low, high]: powers of ten for wide ranges, 1-2-5 or 1…9 multiples
// for narrow ones, so that even a range inside one decade gets at least two labelled tics.
// Labels are plain numbers between 1e-3 and 1e5, else m×10^{k} (gnuplot enhanced text).
std::string log_tics(double low, double high) {
  const double decades = std::log10(high / low);
  std::vector<double> mantissas = {1};
  if (decades <= 0.5) mantissas = {1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5};
  else if (decades <= 1.2) mantissas = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  else if (decades <= 2.5) mantissas = {1, 2, 5};
  const int first = static_cast<int>(std::floor(std::log10(low))), last = static_cast<int>(std::ceil(std::log10(high)));
  const int stride = decades > 8 ? static_cast<int>(std::ceil(decades / 8)) : 1;
  std::vector<std::pair<double, int>> tics;  // value, exponent
  for (int k = first; k <= last; ++k) {
    if ((k - first) % stride) continue;
    for (double m : mantissas) {
      const double value = m * std::pow(10.0, k);
      if (value >= low && value <= high) tics.emplace_back(value, k);
    }
  }
  const bool plain = !tics.empty() && tics.front().first >= 1e-3 && tics.back().first < 1e5;
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < tics.size(); ++i) {
    const auto [value, k] = tics[i];
    char label[64];
    const double mantissa = value / std::pow(10.0, k);
    if (plain) std::snprintf(label, sizeof label, "%g", value);
    else if (std::fabs(mantissa - 1) < 1e-9) std::snprintf(label, sizeof label, "10^{%d}", k);
    else std::snprintf(label, sizeof label, "%g×10^{%d}", mantissa, k);
    out << (i ? ", " : "") << "'" << label << "' " << number(value);
  }
  out << ")";
  return tics.size() >= 2 ? out.str() : "";
}

std::string terminal(const std::string& format) {
  if (format == "png") return "pngcairo size 1000,600 enhanced font 'DejaVu Sans,11'";
  if (format == "svg") return "svg size 1000,600 dynamic enhanced font 'DejaVu Sans,11'";
  if (format == "pdf") return "pdfcairo size 6.5in,3.9in enhanced font 'DejaVu Sans,9'";
  throw ReportError("unknown plot format '" + format + "'; valid formats: png, svg, pdf");
}

bool has_error_bars(const PlotSpec& spec) {
  for (const auto& curve : spec.curves)
    for (double e : curve.errors)
      if (std::isfinite(e) && e > 0) return true;
  return false;
}

bool has_samples(const PlotCurve& curve) {
  for (const auto& list : curve.samples)
    if (!list.empty()) return true;
  return false;
}

// The error bar of point i as (low, high): y ∓ sd, the low end kept above 0 on a log axis.
std::pair<double, double> error_bar(const PlotSpec& spec, const PlotCurve& curve, size_t i) {
  const double y = curve.points[i].second;
  const double e = i < curve.errors.size() && std::isfinite(curve.errors[i]) ? curve.errors[i] : 0.0;
  const double low = spec.log_y && y - e <= 0 ? y / 10 : y - e;
  return {low, y + e};
}

// NAME.dat: one block per curve with measured points (gnuplot `index i`, see script_text),
// blocks separated by two blank lines; rows "x y" or, with error bars, "x y y_low y_high".
// gnuplot counts only blocks that hold data, so a configuration without a measured point gets
// no block (it is named in the legend by a keyentry instead).
std::string data_text(const PlotSpec& spec) {
  const bool errors = has_error_bars(spec);
  std::ostringstream out;
  out << "# " << spec.title << ": x y" << (errors ? " y_low y_high (± one standard deviation)" : "")
      << ", one block per configuration with measured points\n";
  bool first = true;
  for (const auto& curve : spec.curves) {
    if (curve.points.empty()) continue;
    if (!first) out << "\n\n";
    first = false;
    out << "# " << printable_line(curve.label) << "\n";  // a newline in a label would start a data line
    for (size_t i = 0; i < curve.points.size(); ++i) {
      out << number(curve.points[i].first) << " " << number(curve.points[i].second);
      if (errors) {
        const auto [low, high] = error_bar(spec, curve, i);
        out << " " << number(low) << " " << number(high);
      }
      out << "\n";
    }
  }
  return out.str();
}

// NAME_samples.dat: one block per curve with stored repeats, rows "x repeat".
std::string samples_text(const PlotSpec& spec) {
  std::ostringstream out;
  out << "# " << spec.title << ": every timed repeat, x value, one block per configuration with repeats\n";
  bool first = true;
  for (const auto& curve : spec.curves) {
    if (!has_samples(curve)) continue;
    if (!first) out << "\n\n";
    first = false;
    out << "# " << printable_line(curve.label) << "\n";
    for (size_t i = 0; i < curve.samples.size() && i < curve.points.size(); ++i)
      for (double y : curve.samples[i])
        if (!spec.log_y || y > 0) out << number(curve.points[i].first) << " " << number(y) << "\n";
  }
  return out.str();
}

// NAME_failed.dat: one block per failure kind present, rows "x colour" (colour as 0xRRGGBB).
// Markers of different configurations at the same N are spread a little along x.
std::string failed_text(const PlotSpec& spec, const ColourMap& colours, std::vector<int>& kinds_present) {
  std::map<int, std::vector<std::pair<double, long>>> by_kind;
  const double count = static_cast<double>(spec.curves.size());
  for (size_t i = 0; i < spec.curves.size(); ++i) {
    const auto& curve = spec.curves[i];
    const long rgb = std::stol(colours.colour(curve.label).substr(1), nullptr, 16);
    const double offset = 0.035 * (static_cast<double>(i) - (count - 1) / 2);
    for (const auto& [x, status] : curve.failed)
      by_kind[failure_kind(status)].emplace_back(spec.log_x ? x * std::pow(2.0, offset) : x, rgb);
  }
  std::ostringstream out;
  out << "# failed sizes: x colour(0xRRGGBB), one block per kind of failure\n";
  bool first = true;
  for (const auto& [kind, rows] : by_kind) {
    kinds_present.push_back(kind);
    if (!first) out << "\n\n";
    first = false;
    out << "# " << kFailureKinds[kind].status << "\n";
    for (const auto& [x, rgb] : rows) out << number(x) << " " << rgb << "\n";
  }
  return out.str();
}

std::string with_clause(PlotSpec::Style style, const std::string& colour, int marker, int dash) {
  std::ostringstream out;
  switch (style) {
    case PlotSpec::Style::linespoints:
      out << "with linespoints lw 2 pt " << marker << " ps 1.1";
      break;
    case PlotSpec::Style::lines:
      out << "with lines lw 2";
      break;
    case PlotSpec::Style::points:
      out << "with points pt " << marker << " ps 1.8";
      break;
  }
  out << " dt " << dash << " lc rgb '" << colour << "'";
  return out.str();
}

// Error bars joined by lines (or bare, for a points plot), in the curve's colour and marker.
std::string error_with_clause(PlotSpec::Style style, const ColourMap& colours, const std::string& label) {
  std::ostringstream out;
  out << (style == PlotSpec::Style::points ? "with yerrorbars" : "with yerrorlines lw 2") << " pt "
      << colours.marker(label) << " ps 1.1 dt " << colours.dash(label) << " lc rgb '" << colours.colour(label) << "'";
  return out.str();
}

std::string script_text(const PlotSpec& spec, const ColourMap& colours, const std::vector<std::string>& formats,
                        const std::string& stem, const std::vector<int>& failure_kinds) {
  const Range xr = x_range(spec), yr = y_range(spec);
  std::ostringstream gp;
  gp << "# Written by `mixlab report`.  Run: gnuplot " << stem << ".gp\n"
     << "# Data: " << stem << ".dat (one block per configuration)"
     << (has_error_bars(spec) ? ", error bars ± one standard deviation; " + stem + "_samples.dat: the repeats" : "")
     << (failure_kinds.empty() ? "" : ", " + stem + "_failed.dat (failed sizes, drawn on the upper edge)") << "\n"
     << "set encoding utf8\n"
     << "set terminal " << terminal(formats.front()) << "\n"
     << "set output " << gnuplot_quote(stem + "." + formats.front()) << "\n"
     << "set title " << gnuplot_quote(spec.title) << " noenhanced\n"
     << "set xlabel " << gnuplot_quote(spec.x_label) << " noenhanced\n"
     << "set ylabel " << gnuplot_quote(spec.y_label) << " noenhanced\n"
     << "set key outside right top box opaque spacing 1.2\n"
     << "set grid xtics ytics lc rgb '#dddddd'\n"
     << "set border 3 lw 1.2\nset tics nomirror\n";
  if (spec.log_x) gp << (spec.length_axis ? "set logscale x 2\n" : "set logscale x 10\n");
  if (spec.log_y) {
    const std::string tics = log_tics(yr.low, yr.high);
    gp << "set logscale y 10\n" << (tics.empty() ? "" : "set ytics " + tics + "\n");
  }
  if (spec.length_axis) {
    std::set<double> lengths;
    for (const auto& curve : spec.curves) {
      for (const auto& point : curve.points) lengths.insert(point.first);
      for (const auto& failed : curve.failed) lengths.insert(failed.first);
    }
    gp << "set xtics (";
    bool first = true;
    for (double n : lengths) {
      gp << (first ? "" : ", ") << "'" << format_length(n) << "' " << number(n);
      first = false;
    }
    gp << ")\n";
  } else if (spec.log_x) {
    const std::string tics = log_tics(xr.low, xr.high);
    if (!tics.empty()) gp << "set xtics " << tics << "\n";
  }
  gp << "set xrange [" << number(xr.low) << ":" << number(xr.high) << "]\n"
     << "set yrange [" << number(yr.low) << ":" << number(yr.high) << "]\n"
     << "y_top = " << number(yr.high) << "  # failed sizes are drawn here, on the upper edge\n";
  std::vector<std::string> clauses;
  int block = 0;         // the data block of the next curve with points (data_text skips empty curves)
  int sample_block = 0;  // likewise in NAME_samples.dat
  const bool errors = has_error_bars(spec);
  for (const auto& curve : spec.curves) {
    const std::string with =
        with_clause(spec.style, colours.colour(curve.label), colours.marker(curve.label), colours.dash(curve.label));
    if (curve.points.empty()) {
      clauses.push_back("keyentry " + with + " title " + gnuplot_quote(curve.label + " (no measured point)") + " noenhanced");
    } else if (errors) {
      clauses.push_back(gnuplot_quote(stem + ".dat") + " index " + std::to_string(block++) + " using 1:2:3:4 " +
                        error_with_clause(spec.style, colours, curve.label) + " title " + gnuplot_quote(curve.label) +
                        " noenhanced");
    } else {
      clauses.push_back(gnuplot_quote(stem + ".dat") + " index " + std::to_string(block++) + " using 1:2 " + with +
                        " title " + gnuplot_quote(curve.label) + " noenhanced");
    }
    if (has_samples(curve))
      clauses.push_back(gnuplot_quote(stem + "_samples.dat") + " index " + std::to_string(sample_block++) +
                        " using 1:2 with points pt 7 ps 0.3 lc rgb '" + colours.colour(curve.label) + "' notitle");
  }
  for (size_t block = 0; block < failure_kinds.size(); ++block) {
    const FailureKind& kind = kFailureKinds[failure_kinds[block]];
    clauses.push_back(gnuplot_quote(stem + "_failed.dat") + " index " + std::to_string(block) +
                      " using 1:(y_top):2 with points pt " + std::to_string(kind.point_type) +
                      " ps 2.2 lw 2 lc rgb variable notitle");
    clauses.push_back("keyentry with points pt " + std::to_string(kind.point_type) + " ps 2.2 lw 2 lc rgb 'black' title " +
                      gnuplot_quote(status_caption(kind.status)) + " noenhanced");
  }
  gp << "plot ";
  for (size_t i = 0; i < clauses.size(); ++i) gp << (i ? ", \\\n     " : "") << clauses[i];
  gp << "\n";
  for (size_t i = 1; i < formats.size(); ++i)
    gp << "set output\nset terminal " << terminal(formats[i]) << "\nset output " << gnuplot_quote(stem + "." + formats[i])
       << "\nreplot\n";
  gp << "set output\n";
  return gp.str();
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw ReportError(path.string() + ": cannot write");
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Runs `gnuplot SCRIPT` in `dir`, stdout and stderr to LOG; returns the exit status (127: not found).
int run_gnuplot(const fs::path& dir, const std::string& script, const std::string& log) {
  const pid_t child = fork();
  if (child < 0) throw ReportError("cannot start gnuplot: fork failed");
  if (child == 0) {
    if (chdir(dir.c_str()) != 0) _exit(126);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    execlp("gnuplot", "gnuplot", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

std::string plot_script(const PlotSpec& spec, const ColourMap& colours, const std::vector<std::string>& formats) {
  std::vector<int> kinds;
  failed_text(spec, colours, kinds);
  return script_text(spec, colours, formats, sanitize_filename(spec.name), kinds);
}

std::vector<std::string> render_plot(const PlotSpec& spec, const ColourMap& colours, const std::string& out_dir,
                                     const std::vector<std::string>& formats) {
  const std::string stem = sanitize_filename(spec.name);
  if (formats.empty()) throw ReportError("plot " + stem + ": no output format asked for");
  if (spec.curves.empty()) throw ReportError("plot " + stem + ": no data to plot");
  const fs::path dir(out_dir);
  fs::create_directories(dir);
  std::vector<int> kinds;
  const std::string failed = failed_text(spec, colours, kinds);
  write_file(dir / (stem + ".dat"), data_text(spec));
  if (std::any_of(spec.curves.begin(), spec.curves.end(), has_samples))
    write_file(dir / (stem + "_samples.dat"), samples_text(spec));
  if (!kinds.empty()) write_file(dir / (stem + "_failed.dat"), failed);
  write_file(dir / (stem + ".gp"), script_text(spec, colours, formats, stem, kinds));
  const std::string log = stem + ".gnuplot.log";
  const int status = run_gnuplot(dir, stem + ".gp", log);
  if (status == 127)
    throw ReportError("gnuplot not found on PATH; install it (Debian: apt-get install gnuplot-nox)");
  std::vector<std::string> images;
  for (const auto& format : formats) {
    const fs::path image = dir / (stem + "." + format);
    if (status == 0 && (!fs::exists(image) || fs::file_size(image) == 0))
      throw ReportError((dir / (stem + ".gp")).string() + ": gnuplot wrote no " + format + " output");
    images.push_back(image.string());
  }
  if (status != 0)
    throw ReportError((dir / (stem + ".gp")).string() + ": gnuplot exited with status " + std::to_string(status) + ":\n" +
                      read_file(dir / log));
  // A clean script makes gnuplot print nothing: any message is a warning about this plot, kept
  // beside it (NAME.gnuplot.log) and said on stderr.
  const std::string messages = read_file(dir / log);
  if (messages.empty()) {
    fs::remove(dir / log);
  } else {
    std::cerr << "mixlab report: gnuplot warned on " << (dir / (stem + ".gp")).string() << " (see " << log
              << "): " << messages.substr(0, messages.find('\n')) << "\n";
  }
  return images;
}

}  // namespace mixlab::reports
