#pragma once
// The report page: sections of paragraphs, figures and tables, rendered once to Markdown
// (index.md, linking plots/ and tables/) and once to a self-contained HTML page (index.html:
// PNGs embedded as base64 data URIs, or inline SVG; every name from the database escaped).

#include "reports/tables.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace mixlab::reports {

// The report as sections of paragraphs, images and tables, rendered once to Markdown and once
// to self-contained HTML.
struct Figure {
  std::string title;
  std::string stem;  // plots/<stem>.{png,svg,pdf}
};

struct Section {
  std::string heading;
  std::vector<std::string> paragraphs;  // plain text; bullet lists start with "- "
  std::vector<Figure> figures;
  std::vector<std::pair<Table, std::string>> tables;  // table and its file stem under tables/ ("" = none)
};

std::string markdown_document(const std::string& title, const std::vector<Section>& sections);
// Reads the images from out_dir/plots.
std::string html_document(const std::string& title, const std::vector<Section>& sections,
                          const std::filesystem::path& out_dir);

}  // namespace mixlab::reports
