// Pivot and summary tables, and their Markdown / LaTeX (booktabs) / CSV / HTML renderings.

#include "reports/tables.h"

#include "reports/evidence.h"
#include "reports/queries.h"
#include "reports/text.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace mixlab::reports {

TableFormat parse_table_format(const std::string& name) {
  if (name == "markdown" || name == "md") return TableFormat::markdown;
  if (name == "latex" || name == "tex") return TableFormat::latex;
  if (name == "csv") return TableFormat::csv;
  if (name == "html") return TableFormat::html;
  throw ReportError("unknown table format '" + name + "'; valid formats: markdown, latex, csv, html");
}

const char* extension(TableFormat format) {
  switch (format) {
    case TableFormat::markdown: return "md";
    case TableFormat::latex: return "tex";
    case TableFormat::csv: return "csv";
    case TableFormat::html: return "html";
  }
  return "txt";
}

Table pivot_metric(const std::vector<MetricRow>& rows, const Metric& metric, bool configurations_as_rows) {
  std::set<std::string> labels;
  std::set<int64_t> lengths;
  std::map<std::pair<std::string, int64_t>, TableCell> cells;
  std::set<std::pair<std::string, int64_t>> unresolved;  // below the instrument's resolution: never "best"
  for (const auto& row : rows) {
    labels.insert(row.label);
    lengths.insert(row.seq_len);
    cells[{row.label, row.seq_len}] =
        row.status == "ok" ? TableCell::value(row.value * metric.scale) : TableCell::failure(row.status);
    if (below_resolution(metric, row)) unresolved.insert({row.label, row.seq_len});
  }
  // Bold the best value among the configurations at each length.
  for (int64_t n : lengths) {
    TableCell* best = nullptr;
    for (const auto& label : labels) {
      auto found = cells.find({label, n});
      if (found == cells.end() || found->second.kind != TableCell::Kind::number || unresolved.count({label, n})) continue;
      TableCell& cell = found->second;
      if (!best || (metric.higher_is_better ? cell.number > best->number : cell.number < best->number)) best = &cell;
    }
    if (best && labels.size() > 1) best->best = true;
  }
  Table table;
  table.caption = metric.axis_label();
  const bool per_configuration_only = !metric.scales_with_length;
  std::vector<std::string> label_list(labels.begin(), labels.end());
  std::vector<int64_t> length_list(lengths.begin(), lengths.end());
  auto length_header = [&](int64_t n) { return per_configuration_only ? metric.name : std::to_string(n); };
  if (configurations_as_rows) {
    table.corner = "configuration";
    for (int64_t n : length_list) {
      table.columns.push_back(length_header(n));
      table.csv_columns.push_back(length_header(n));
    }
    for (const auto& label : label_list) {
      table.rows.push_back(label);
      std::vector<TableCell> line;
      for (int64_t n : length_list) line.push_back(cells.count({label, n}) ? cells[{label, n}] : TableCell{});
      table.cells.push_back(line);
    }
  } else {
    table.corner = per_configuration_only ? "metric" : "seq_len";
    for (const auto& label : label_list) {
      table.columns.push_back(label);
      table.csv_columns.push_back(label);
    }
    for (int64_t n : length_list) {
      table.rows.push_back(length_header(n));
      std::vector<TableCell> line;
      for (const auto& label : label_list) line.push_back(cells.count({label, n}) ? cells[{label, n}] : TableCell{});
      table.cells.push_back(line);
    }
  }
  return table;
}

Table training_summary(const std::vector<TrainRow>& train, const std::vector<EvaluationRow>& evaluations) {
  struct Summary {
    int64_t steps = 0, tokens = 0;
    double flops = 0, final_loss = NAN, min_loss = INFINITY;
    std::vector<double> throughput;
    int64_t val_step = -1;
    double val_loss = NAN;
  };
  std::map<std::string, Summary> by_label;
  for (const auto& row : train) {
    Summary& s = by_label[row.label];
    if (row.step >= s.steps) {
      s.steps = row.step;
      s.tokens = row.tokens;
      s.flops = row.flops;
      s.final_loss = row.loss;
    }
    if (std::isfinite(row.loss)) s.min_loss = std::min(s.min_loss, row.loss);
    if (std::isfinite(row.tokens_per_s)) s.throughput.push_back(row.tokens_per_s);
  }
  bool any_validation = false;
  for (const auto& row : evaluations) {
    if (row.task != "text" || row.metric != "loss" || !by_label.count(row.label)) continue;
    Summary& s = by_label[row.label];
    if (row.step >= s.val_step) {
      s.val_step = row.step;
      s.val_loss = row.value;
      any_validation = true;
    }
  }
  Table table;
  table.caption = "Training summary";
  table.corner = "configuration";
  table.columns = {"steps", "tokens", "training FLOPs", "final loss", "min loss", "median tokens/s"};
  table.csv_columns = {"steps", "tokens", "train_flops", "final_loss", "min_loss", "median_tokens_per_s"};
  if (any_validation) {
    table.columns.push_back("val loss");
    table.csv_columns.push_back("val_loss");
  }
  for (auto& [label, s] : by_label) {
    table.rows.push_back(label);
    std::sort(s.throughput.begin(), s.throughput.end());
    const double median = s.throughput.empty() ? NAN : s.throughput[s.throughput.size() / 2];
    std::vector<TableCell> line = {TableCell::value(static_cast<double>(s.steps)), TableCell::value(static_cast<double>(s.tokens)),
                                   TableCell::value(s.flops), TableCell::value(s.final_loss),
                                   std::isfinite(s.min_loss) ? TableCell::value(s.min_loss) : TableCell{},
                                   std::isfinite(median) ? TableCell::value(median) : TableCell{}};
    if (any_validation) line.push_back(std::isfinite(s.val_loss) ? TableCell::value(s.val_loss) : TableCell{});
    table.cells.push_back(line);
  }
  return table;
}

Table evaluation_summary(const std::vector<EvaluationRow>& evaluations) {
  std::map<std::string, int64_t> last_step;  // per label
  for (const auto& row : evaluations)
    if (row.metric != "loss_bucket") last_step[row.label] = std::max(last_step[row.label], row.step);
  // Column key: (task, metric, seq_len), sorted.
  using Key = std::tuple<std::string, std::string, int64_t>;
  std::set<Key> keys;
  std::map<std::pair<std::string, Key>, double> values;
  for (const auto& row : evaluations) {
    if (row.metric == "loss_bucket" || row.step != last_step[row.label]) continue;
    Key key{row.task, row.metric, row.seq_len};
    keys.insert(key);
    values[{row.label, key}] = row.value;
  }
  Table table;
  table.caption = "Evaluations at the last evaluated step";
  table.corner = "configuration";
  for (const auto& [task, metric, n] : keys) {
    table.columns.push_back(task + " " + metric + (n >= 0 ? " @" + format_length(static_cast<double>(n)) : ""));
    table.csv_columns.push_back(task + "_" + metric + (n >= 0 ? "_" + std::to_string(n) : ""));
  }
  for (const auto& [label, step] : last_step) {
    table.rows.push_back(label);
    std::vector<TableCell> line;
    for (const auto& key : keys) {
      auto found = values.find({label, key});
      line.push_back(found == values.end() ? TableCell{} : TableCell::value(found->second));
    }
    table.cells.push_back(line);
  }
  return table;
}

namespace {

// A number for LaTeX: 1.23e+09 becomes $1.23\times10^{9}$.
std::string latex_number(double value) {
  std::string text = format_number(value);
  const auto e = text.find('e');
  if (e == std::string::npos) return text;
  const int exponent = std::stoi(text.substr(e + 1));
  return "$" + text.substr(0, e) + "\\times10^{" + std::to_string(exponent) + "}$";
}

std::string cell_text(const TableCell& cell, TableFormat format) {
  switch (cell.kind) {
    case TableCell::Kind::missing:
      return format == TableFormat::csv ? "" : format == TableFormat::latex ? "--" : "–";
    case TableCell::Kind::failed:
      return format == TableFormat::csv ? cell.text : status_caption(cell.text);
    case TableCell::Kind::text:
      switch (format) {
        case TableFormat::markdown: return markdown_escape(cell.text);
        case TableFormat::latex: return latex_escape(cell.text);
        case TableFormat::csv: return csv_field(cell.text);
        case TableFormat::html: return html_escape(cell.text);
      }
      break;
    case TableCell::Kind::number: {
      if (format == TableFormat::csv) {
        char buffer[64];
        std::snprintf(buffer, sizeof buffer, "%.6g", cell.number);
        return buffer;
      }
      const std::string text = format == TableFormat::latex ? latex_number(cell.number) : format_number(cell.number);
      if (!cell.best) return text;
      if (format == TableFormat::markdown) return "**" + text + "**";
      if (format == TableFormat::latex) return "\\textbf{" + text + "}";
      return "<b>" + text + "</b>";
    }
  }
  return "";
}

}  // namespace

std::string render(const Table& table, TableFormat format) {
  std::ostringstream out;
  const size_t columns = table.columns.size();
  switch (format) {
    case TableFormat::markdown: {
      out << "| " << markdown_escape(table.corner);
      for (const auto& column : table.columns) out << " | " << markdown_escape(column);
      out << " |\n|---";
      for (size_t c = 0; c < columns; ++c) out << "|---:";
      out << "|\n";
      for (size_t r = 0; r < table.rows.size(); ++r) {
        out << "| " << markdown_escape(table.rows[r]);
        for (const auto& cell : table.cells[r]) out << " | " << cell_text(cell, format);
        out << " |\n";
      }
      break;
    }
    case TableFormat::latex: {
      out << "% needs \\usepackage{booktabs}\n\\begin{table}[t]\n\\centering\n\\caption{"
          << latex_escape(table.caption) << "}\n\\begin{tabular}{l" << std::string(columns, 'r') << "}\n\\toprule\n"
          << latex_escape(table.corner);
      for (const auto& column : table.columns) out << " & " << latex_escape(column);
      out << " \\\\\n\\midrule\n";
      for (size_t r = 0; r < table.rows.size(); ++r) {
        out << latex_escape(table.rows[r]);
        for (const auto& cell : table.cells[r]) out << " & " << cell_text(cell, format);
        out << " \\\\\n";
      }
      out << "\\bottomrule\n\\end{tabular}\n\\end{table}\n";
      break;
    }
    case TableFormat::csv: {
      out << csv_field(table.corner);
      for (const auto& column : table.csv_columns) out << "," << csv_field(column);
      out << "\n";
      for (size_t r = 0; r < table.rows.size(); ++r) {
        out << csv_field(table.rows[r]);
        for (const auto& cell : table.cells[r]) out << "," << cell_text(cell, format);
        out << "\n";
      }
      break;
    }
    case TableFormat::html: {
      out << "<table>\n<caption>" << html_escape(table.caption) << "</caption>\n<tr><th>" << html_escape(table.corner) << "</th>";
      for (const auto& column : table.columns) out << "<th>" << html_escape(column) << "</th>";
      out << "</tr>\n";
      for (size_t r = 0; r < table.rows.size(); ++r) {
        out << "<tr><th>" << html_escape(table.rows[r]) << "</th>";
        for (const auto& cell : table.cells[r])
          out << (cell.kind == TableCell::Kind::failed ? "<td class=\"failed\">" : "<td>") << cell_text(cell, format) << "</td>";
        out << "</tr>\n";
      }
      out << "</table>\n";
      break;
    }
  }
  return out.str();
}

namespace {
std::string terminal_cell_text(const TableCell& cell) {
  switch (cell.kind) {
    case TableCell::Kind::missing: return "-";
    case TableCell::Kind::failed: return status_caption(cell.text);
    case TableCell::Kind::text: return cell.text;
    case TableCell::Kind::number: return format_number(cell.number);
  }
  return "";
}
}  // namespace

std::string render_text(const Table& table, const std::vector<bool>& right_aligned) {
  std::vector<std::vector<std::string>> lines;  // [line][column], header first
  lines.push_back({printable_line(table.corner)});
  for (const auto& column : table.columns) lines.back().push_back(printable_line(column));
  for (size_t r = 0; r < table.rows.size(); ++r) {
    lines.push_back({printable_line(table.rows[r])});
    for (const auto& cell : table.cells[r]) lines.back().push_back(printable_line(terminal_cell_text(cell)));
  }
  std::vector<size_t> width(lines.front().size(), 0);
  for (const auto& line : lines)
    for (size_t c = 0; c < line.size() && c < width.size(); ++c) width[c] = std::max(width[c], display_width(line[c]));
  std::ostringstream out;
  for (const auto& line : lines) {
    for (size_t c = 0; c < line.size(); ++c) {
      const std::string pad(width[c] - display_width(line[c]), ' ');
      const bool right = c < right_aligned.size() && right_aligned[c];
      out << (c ? "  " : "") << (right ? pad + line[c] : (c + 1 == line.size() ? line[c] : line[c] + pad));
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace mixlab::reports
