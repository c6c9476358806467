// Every citation in code, comments, specs and docs points at a paper (arXiv id and section) or at
// the project's own docs/, never at notes outside the repository (docs/design.md, "Citations").
// This file spells the forbidden forms, so it is the one file the scan skips.

#include "source_tree.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

const char* const kThisFile = "tests/test_citations.cpp";

struct Forbidden {
  std::regex pattern;
  const char* why;
};

const std::vector<Forbidden>& forbidden_citations() {
  static const std::vector<Forbidden> forms = {
      {std::regex(R"(research/[A-Za-z0-9_*.-]*\.md)"), "a research note outside the repository"},
      {std::regex(R"(\b(scout|mixers|data-and-plots)\.md\b)"), "a research note outside the repository"},
      {std::regex(R"(\bresearch notes?\b)"), "the research notes, which are outside the repository"},
      {std::regex(R"(\b(DESIGN|METHOD|HOPPER)\.md\b)"), "a page outside the repository (the design is docs/design.md)"},
      {std::regex(R"(/work/)"), "a path on the machine that wrote it"},
  };
  return forms;
}

// Text files a reader follows citations from.
bool is_text(const std::string& path) {
  return source_tree::has_extension(path, {".cpp", ".h", ".hpp", ".cu", ".cuh", ".py", ".sh", ".md", ".json",
                                           ".txt", ".cmake", ".gp", ".yml", ".yaml"});
}

// One line per citation that points outside the repository, or at a docs/ page that is not there.
std::vector<std::string> bad_citations(const std::string& file, const std::string& text) {
  static const std::regex docs_page(R"(\bdocs/[A-Za-z0-9_./-]+\.md\b)");
  std::vector<std::string> found;
  std::stringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    const std::string where = file + ":" + std::to_string(number) + ": ";
    std::smatch match;
    for (const auto& form : forbidden_citations())  // the first form that matches names the line
      if (std::regex_search(line, match, form.pattern)) {
        found.push_back(where + "cites \"" + match.str() + "\", " + form.why +
                        ": cite a paper (arXiv id and section) or a page of docs/");
        break;
      }
    for (std::sregex_iterator it(line.begin(), line.end(), docs_page), end; it != end; ++it)
      if (!std::filesystem::exists(source_tree::root() / it->str()))
        found.push_back(where + "cites " + it->str() + ", which is not in the repository");
  }
  return found;
}

TEST(Citations, TheScanNamesFileLineAndCitation) {
  const auto found = bad_citations("mixers/x.cpp",
                                   "// Mamba (arXiv 2312.00752, §3.4); docs/design.md, \"Layout\"\n"
                                   "// the scan (research/" "mixers.md §5.1)\n"
                                   "// see docs/" "nowhere.md\n");
  ASSERT_EQ(found.size(), 2u) << source_tree::lines(found);
  EXPECT_EQ(found[0].rfind("mixers/x.cpp:2: cites \"research/" "mixers.md\"", 0), 0u) << found[0];
  EXPECT_EQ(found[1], "mixers/x.cpp:3: cites docs/" "nowhere.md, which is not in the repository");
  EXPECT_EQ(bad_citations("a.md", "the design (docs/" "DESIGN.md)\n").size(), 2u);  // outside, and not here
}

TEST(Citations, NoneInTheTreePointOutsideTheRepository) {
  std::vector<std::string> found;
  size_t scanned = 0;
  for (const auto& file : source_tree::files()) {
    if (!is_text(file) || file == kThisFile) continue;
    ++scanned;
    const auto in_file = bad_citations(file, source_tree::read(file));
    found.insert(found.end(), in_file.begin(), in_file.end());
  }
  EXPECT_GT(scanned, 200u);  // the walk found the tree
  EXPECT_TRUE(found.empty()) << found.size() << " citations point outside the repository:\n" << source_tree::lines(found);
}

}  // namespace
}  // namespace mixlab
