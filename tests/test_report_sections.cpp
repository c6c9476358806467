// The report as a list of sections (reports/sections/sections.h): index.md holds them in the
// documented order (docs/reports.md), the figure sections' tables gathered in "Tables"; and the
// terminal table of `mixlab show` (reports/tables.h, render_text).

#include "reports/report.h"
#include "reports/sections/sections.h"
#include "reports/tables.h"
#include "report_fixture.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <sstream>

namespace mixlab::reports {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

using fixture::slurp;

// The "## " headings of a Markdown page, in order.
std::vector<std::string> headings(const std::string& markdown) {
  std::vector<std::string> found;
  std::istringstream lines(markdown);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("## ", 0) == 0) found.push_back(line.substr(3));
  return found;
}

TEST(ReportSections, PageHoldsTheSectionsInTheirOrderWithTablesAfterTheFigures) {
  MIXLAB_REQUIRE_GNUPLOT();
  fixture::TempDir dir("sections");
  {
    fixture::Fixture db(dir.path("s.db"));
    fixture::fill_scaling_study(db);  // measurements, a training log and evaluations
  }
  ReportOptions options;
  options.db_path = dir.path("s.db");
  options.out_dir = dir.path("report");
  options.formats = {"svg"};
  const ReportResult result = write_report(options);
  const std::string md = slurp(result.index_md);
  EXPECT_EQ(headings(md), (std::vector<std::string>{"Findings", "Cost vs sequence length", "Training", "Evaluations",
                                                    "Quality vs cost", "Fitted exponents and crossovers", "Tables",
                                                    "Provenance"}))
      << md;
  // The training summary is a table of the training section: it is shown under "Tables".
  const size_t tables = md.find("## Tables"), summary = md.find("Training summary");
  ASSERT_NE(summary, std::string::npos) << md;
  EXPECT_GT(summary, tables);
  EXPECT_TRUE(fs::exists(dir.path("report/tables/training_summary.csv")));
  EXPECT_TRUE(fs::exists(dir.path("report/fits.md")));
}

TEST(ReportSections, EachSectionIsListedOnce) {
  std::set<Section (*)(ReportContext&)> makers;
  for (const auto& entry : report_sections()) makers.insert(entry.make);
  EXPECT_EQ(makers.size(), 8u);  // findings, scaling, training, evaluations, recall, quality, fits, provenance
  EXPECT_EQ(report_sections().size(), 8u);
  EXPECT_TRUE(report_sections().back().after_tables);  // provenance closes the page
}

Table two_by_two() {
  Table table;
  table.corner = "label";
  table.columns = {"N", "note"};
  table.rows = {"a·b", "longer"};
  table.cells = {{TableCell::words("8"), TableCell::words("x")}, {TableCell::words("128"), TableCell::words("y\x1b[2J")}};
  return table;
}

// Widths count characters ("a·b" is 3 wide, 4 bytes); right-aligned columns are padded on the
// left; the last left-aligned column is not padded; a control character prints as '?'.
TEST(TerminalTable, AlignsByCharactersAndPrintsNoControlCharacters) {
  EXPECT_EQ(render_text(two_by_two(), {false, true, false}),
            "label     N  note\n"
            "a·b       8  x\n"
            "longer  128  y?[2J\n");
  EXPECT_EQ(render_text(two_by_two(), {}),
            "label   N    note\n"
            "a·b     8    x\n"
            "longer  128  y?[2J\n");
}

}  // namespace mixlab::reports

}  // namespace
