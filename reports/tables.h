#pragma once
// Tables for papers: any metric pivoted configuration × sequence length, and training /
// evaluation summaries, written as Markdown, LaTeX (booktabs) and CSV (and HTML for index.html).
//
// Cells keep why a value is missing: a failed size shows its status (OOM, time budget,
// non-finite) instead of disappearing.  In a metric table the best value of each column
// (lowest latency / memory, highest throughput) is set in bold.

#include "reports/database.h"
#include "reports/metrics.h"

#include <string>
#include <vector>

namespace mixlab::reports {

struct TableCell {
  enum class Kind { missing, number, failed, text };
  Kind kind = Kind::missing;
  double number = 0;
  std::string text;  // the status for `failed`, the content for `text`
  bool best = false;

  static TableCell value(double v) { return {Kind::number, v, "", false}; }
  static TableCell failure(const std::string& status) { return {Kind::failed, 0, status, false}; }
  static TableCell words(const std::string& t) { return {Kind::text, 0, t, false}; }
};

struct Table {
  std::string caption;
  std::string corner;                    // header of the row-name column: "configuration"
  std::vector<std::string> columns;      // displayed column headers
  std::vector<std::string> csv_columns;  // machine-readable headers (raw seq_len); same size
  std::vector<std::string> rows;         // row names (labels or lengths)
  std::vector<std::vector<TableCell>> cells;  // [row][column]
};

enum class TableFormat { markdown, latex, csv, html };
// Throws ReportError listing markdown, latex, csv, html.
TableFormat parse_table_format(const std::string& name);
const char* extension(TableFormat format);  // md, tex, csv, html

// Rows: configurations (sorted by label), columns: sequence lengths — or transposed.
Table pivot_metric(const std::vector<MetricRow>& rows, const Metric& metric, bool configurations_as_rows);

// Per configuration: steps, tokens, training FLOPs, final and minimum training loss, median
// tokens/s, and the last validation loss (evaluations task `text`, metric `loss`) where present.
Table training_summary(const std::vector<TrainRow>& train, const std::vector<EvaluationRow>& evaluations);
// Per configuration × (task, metric, context length) at each configuration's last evaluated
// step; `loss_bucket` rows are left to the position plot.
Table evaluation_summary(const std::vector<EvaluationRow>& evaluations);

std::string render(const Table& table, TableFormat format);

// The table for a terminal (`mixlab show`): a header line (corner, columns) and a line per row,
// columns two spaces apart and padded to their widest cell in characters, right-aligned where
// `right_aligned[c]` (c = 0 is the row-name column), the last left-aligned column unpadded.
// Every cell is made one printable line (no terminal escapes from the database); the caption is
// not printed.
std::string render_text(const Table& table, const std::vector<bool>& right_aligned);

}  // namespace mixlab::reports
