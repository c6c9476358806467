#pragma once
// Plots through gnuplot (gnuplot-nox, cairo terminals): for each plot a data file NAME.dat (one
// block per configuration), NAME_failed.dat (failed sizes) and a script NAME.gp are written into
// the output folder, then `gnuplot NAME.gp` is run there and its exit status checked.  Each plot
// comes out as NAME.png (for looking), NAME.svg and NAME.pdf (for papers).
//
// Colours: one per configuration, assigned by sorted label over the whole report, so a
// configuration has the same colour (and marker) in every plot.  A failed size (OOM, time
// budget, non-finite, ...) is drawn at its N on the upper edge of the plot in the
// configuration's colour, with an open marker per kind of failure and a black legend entry
// ("OOM") — never silently dropped.  Timing curves carry error bars (± one standard deviation
// of the repeats, NAME.dat columns 3-4) and their repeats as dots (NAME_samples.dat).

#include <string>
#include <utility>
#include <vector>

namespace mixlab::reports {

class ColourMap {
 public:
  explicit ColourMap(std::vector<std::string> labels);  // sorted and de-duplicated here
  std::string colour(const std::string& label) const;   // "#0072B2"; unknown labels get grey
  int marker(const std::string& label) const;           // gnuplot point type (filled shapes)
  int dash(const std::string& label) const;             // 1 for the first 10 labels, then 2, 3, ...

 private:
  int index(const std::string& label) const;
  std::vector<std::string> labels_;
};

struct PlotCurve {
  std::string label;
  std::vector<std::pair<double, double>> points;        // (x, y), drawn in this order
  std::vector<std::pair<double, std::string>> failed;   // (x, status)
  // Optional, per point: the error bar's half-height (the stored standard deviation; NaN: none)
  // and every stored repeat, drawn as small dots of the curve's colour.
  std::vector<double> errors;
  std::vector<std::vector<double>> samples;
};

struct PlotSpec {
  enum class Style { linespoints, lines, points };
  std::string name;  // file stem; sanitised by render_plot
  std::string title, x_label, y_label;
  bool log_x = true, log_y = true;
  bool length_axis = true;  // x is the sequence length: tics at the measured lengths (256, 1k, 4k)
  Style style = Style::linespoints;
  std::vector<PlotCurve> curves;
};

// Writes NAME.dat, NAME_failed.dat (when needed), NAME.gp and, by running gnuplot, one file per
// format ("png", "svg", "pdf").  Returns the image paths.  Throws ReportError when gnuplot is
// missing ("apt-get install gnuplot-nox") or fails (with its messages), or a plot has no data.
std::vector<std::string> render_plot(const PlotSpec& spec, const ColourMap& colours, const std::string& out_dir,
                                     const std::vector<std::string>& formats = {"png", "svg", "pdf"});

// The gnuplot script alone (for tests and for reading): file names are relative to out_dir.
std::string plot_script(const PlotSpec& spec, const ColourMap& colours, const std::vector<std::string>& formats);

}  // namespace mixlab::reports
