// Markdown and self-contained HTML renderings of the report page.

#include "reports/document.h"

#include "reports/text.h"

#include <fstream>
#include <sstream>

namespace mixlab::reports {

namespace fs = std::filesystem;

namespace {

std::string read_binary(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

}  // namespace

std::string markdown_document(const std::string& title, const std::vector<Section>& sections) {
  std::ostringstream md;
  md << "# " << markdown_escape(title) << "\n\n";
  for (const auto& section : sections) {
    md << "## " << markdown_escape(section.heading) << "\n\n";
    for (size_t i = 0; i < section.paragraphs.size(); ++i) {
      // Consecutive "- " items form one list; a blank line ends it.
      const bool item = section.paragraphs[i].rfind("- ", 0) == 0;
      const bool next_item = i + 1 < section.paragraphs.size() && section.paragraphs[i + 1].rfind("- ", 0) == 0;
      // Paragraphs are plain text (labels and errors from the database): escaped, one line each.
      const std::string& text = section.paragraphs[i];
      md << (item ? "- " + markdown_escape(text.substr(2)) : markdown_escape(text)) << (item && next_item ? "\n" : "\n\n");
    }
    for (const auto& figure : section.figures)
      md << "![" << markdown_escape(figure.title) << "](plots/" << figure.stem << ".png)  \n"
         << "[SVG](plots/" << figure.stem << ".svg) · [PDF](plots/" << figure.stem << ".pdf) · [gnuplot script](plots/"
         << figure.stem << ".gp)\n\n";
    for (const auto& [table, stem] : section.tables) {
      md << "**" << markdown_escape(table.caption) << "**";
      if (!stem.empty())
        md << " ([CSV](tables/" << stem << ".csv), [LaTeX](tables/" << stem << ".tex))";
      md << "\n\n" << render(table, TableFormat::markdown) << "\n";
    }
  }
  return md.str();
}

std::string html_document(const std::string& title, const std::vector<Section>& sections, const fs::path& out_dir) {
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << html_escape(title)
       << "</title>\n<style>\n"
       << "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\n"
       << "table{border-collapse:collapse;margin:0.5em 0 1.5em 0;font-size:0.9em}\n"
       << "caption{text-align:left;font-weight:bold;padding-bottom:0.3em}\n"
       << "th,td{padding:0.25em 0.7em;border-bottom:1px solid #ccc}td{text-align:right}th{text-align:left}\n"
       << "td.failed{color:#b00}img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}\n"
       << "figcaption{font-size:0.9em;color:#555}\n</style>\n</head>\n<body>\n<h1>" << html_escape(title) << "</h1>\n";
  for (const auto& section : sections) {
    html << "<h2>" << html_escape(section.heading) << "</h2>\n";
    bool in_list = false;
    for (const auto& paragraph : section.paragraphs) {
      const bool item = paragraph.rfind("- ", 0) == 0;
      if (item && !in_list) html << "<ul>\n";
      if (!item && in_list) html << "</ul>\n";
      in_list = item;
      html << (item ? "<li>" : "<p>") << html_escape(item ? paragraph.substr(2) : paragraph) << (item ? "</li>\n" : "</p>\n");
    }
    if (in_list) html << "</ul>\n";
    for (const auto& figure : section.figures) {
      const fs::path png = out_dir / "plots" / (figure.stem + ".png"), svg = out_dir / "plots" / (figure.stem + ".svg");
      html << "<figure>";
      if (fs::exists(png)) {
        html << "<img alt=\"" << html_escape(figure.title) << "\" src=\"data:image/png;base64,"
             << base64_encode(read_binary(png)) << "\">";
      } else if (fs::exists(svg)) {
        // Inline SVG (gnuplot's SVG starts with an XML declaration, which HTML does not take).
        std::string text = read_binary(svg);
        const auto start = text.find("<svg");
        html << (start == std::string::npos ? "" : text.substr(start));
      }
      html << "<figcaption>" << html_escape(figure.title)
           << " (vector versions: plots/" << html_escape(figure.stem) << ".svg, .pdf)</figcaption></figure>\n";
    }
    for (const auto& entry : section.tables) html << render(entry.first, TableFormat::html);
  }
  html << "</body>\n</html>\n";
  return html.str();
}

}  // namespace mixlab::reports
