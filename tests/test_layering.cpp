// The folders depend on each other one way (README.md, "Layout"; docs/design.md, "Layout and what
// each folder may use").  The layout table in README.md is the one allowed table: a row names a
// folder, what it holds and the folders it may use (`core/`, …, or "every folder above").  These
// tests read every `#include "folder/..."` line of every C++ / CUDA source, check each against
// the table, check that the folder graph has no cycle, and that every source folder has a row.

#include "source_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

struct LayoutRow {
  std::string folder;             // "harness"
  std::set<std::string> may_use;  // {"core", "data", ...}; the folder itself is always allowed
};
using LayoutTable = std::vector<LayoutRow>;  // in the README's order, bottom layer first
using FolderGraph = std::map<std::string, std::set<std::string>>;

std::vector<std::string> split_cells(const std::string& line) {  // "| a | b |" -> {"a", "b"}
  std::vector<std::string> cells;
  std::stringstream in(line.substr(line.find('|') + 1));
  for (std::string cell; std::getline(in, cell, '|');) cells.push_back(cell);
  return cells;
}

std::set<std::string> backticked_folders(const std::string& cell) {  // "`core/`, LibTorch" -> {"core"}
  static const std::regex folder("`([a-z_]+)/`");
  std::set<std::string> folders;
  for (std::sregex_iterator it(cell.begin(), cell.end(), folder), end; it != end; ++it) folders.insert((*it)[1]);
  return folders;
}

// The table under "## Layout": | `folder/` | holds | may use |.
LayoutTable parse_layout_table(const std::string& readme) {
  LayoutTable table;
  const auto section = readme.find("\n## Layout\n");
  if (section == std::string::npos) return table;
  std::stringstream in(readme.substr(section + 1));
  std::string line;
  std::getline(in, line);  // the heading
  while (std::getline(in, line) && line.rfind("## ", 0) != 0) {
    if (line.rfind("|", 0) != 0) continue;
    const auto cells = split_cells(line);
    if (cells.size() < 3) continue;
    const auto folder = backticked_folders(cells[0]);
    if (folder.size() != 1) continue;  // the header and separator rows
    LayoutRow row{*folder.begin(), backticked_folders(cells[2])};
    if (cells[2].find("every folder above") != std::string::npos)
      for (const auto& above : table) row.may_use.insert(above.folder);
    table.push_back(row);
  }
  return table;
}

struct Include {
  std::string file;    // "harness/sweep.cpp"
  int line = 0;        // 1-based
  std::string target;  // "reports/text.h"
};

// The `#include "folder/..."` lines of one file whose first component is one of `folders`.
std::vector<Include> folder_includes(const std::string& file, const std::string& text,
                                     const std::set<std::string>& folders) {
  static const std::regex include_line(R"re(^\s*#\s*include\s*"([^"]+)")re");
  std::vector<Include> includes;
  std::stringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    std::smatch match;
    if (!std::regex_search(line, match, include_line)) continue;
    if (folders.count(source_tree::top_folder(match[1]))) includes.push_back({file, number, match[1]});
  }
  return includes;
}

std::string join_folders(const std::set<std::string>& folders) {
  std::string text;
  for (const auto& folder : folders) text += (text.empty() ? "" : ", ") + folder + "/";
  return text.empty() ? "no other folder" : text;
}

// One line per include the table does not allow, naming the file, the line and the include.
std::vector<std::string> layering_violations(const LayoutTable& table, const std::vector<Include>& includes) {
  std::map<std::string, std::set<std::string>> allowed;
  for (const auto& row : table) allowed[row.folder] = row.may_use;
  std::vector<std::string> violations;
  for (const auto& include : includes) {
    const std::string from = source_tree::top_folder(include.file), to = source_tree::top_folder(include.target);
    if (from == to || allowed[from].count(to)) continue;
    violations.push_back(include.file + ":" + std::to_string(include.line) + " includes \"" + include.target +
                         "\", but " + from + "/ may use " + join_folders(allowed[from]) +
                         " (README.md, \"Layout\")");
  }
  return violations;
}

// A cycle of the graph as "a -> b -> a", or "" when there is none (depth-first search).
std::string find_cycle(const FolderGraph& graph) {
  std::map<std::string, int> colour;  // 0 unseen, 1 on the current path, 2 done
  std::vector<std::string> path;
  std::string cycle;
  std::function<bool(const std::string&)> visit = [&](const std::string& folder) {
    colour[folder] = 1;
    path.push_back(folder);
    const auto edges = graph.find(folder);
    if (edges != graph.end())
      for (const auto& next : edges->second) {
        if (next == folder) continue;
        if (colour[next] == 1) {
          for (auto it = std::find(path.begin(), path.end(), next); it != path.end(); ++it) cycle += *it + " -> ";
          cycle += next;
          return true;
        }
        if (colour[next] == 0 && visit(next)) return true;
      }
    path.pop_back();
    colour[folder] = 2;
    return false;
  };
  for (const auto& [folder, edges] : graph)
    if (colour[folder] == 0 && visit(folder)) return cycle;
  return "";
}

// The top-level folders that hold C++ or CUDA sources.
std::set<std::string> source_folders(const std::vector<std::string>& files) {
  std::set<std::string> folders;
  for (const auto& file : files)
    if (source_tree::is_source(file) && !source_tree::top_folder(file).empty())
      folders.insert(source_tree::top_folder(file));
  return folders;
}

std::vector<Include> every_include(const std::vector<std::string>& files, const std::set<std::string>& folders) {
  std::vector<Include> includes;
  for (const auto& file : files) {
    if (!source_tree::is_source(file)) continue;
    const auto found = folder_includes(file, source_tree::read(file), folders);
    includes.insert(includes.end(), found.begin(), found.end());
  }
  return includes;
}

TEST(Layering, TheCheckNamesABackEdgeAndACycle) {
  const std::string readme =
      "# x\n\n## Layout\n\n| folder | holds | may use |\n|---|---|---|\n"
      "| `core/` | the contract | LibTorch |\n| `mixers/` | mixers | `core/`, LibTorch |\n"
      "| `cli/` | commands | every folder above |\n\n## Next\n| `late/` | not in the table | `core/` |\n";
  const LayoutTable table = parse_layout_table(readme);
  ASSERT_EQ(table.size(), 3u);
  EXPECT_EQ(table[1].may_use, (std::set<std::string>{"core"}));
  EXPECT_EQ(table[2].may_use, (std::set<std::string>{"core", "mixers"}));

  const auto includes = folder_includes("core/registry.h",
                                        "#include \"core/token_mixer.h\"\n  # include \"mixers/mamba.h\"\n"
                                        "#include <torch/torch.h>\n#include \"elsewhere/x.h\"\n",
                                        {"core", "mixers", "cli"});
  ASSERT_EQ(includes.size(), 2u);
  const auto violations = layering_violations(table, includes);
  ASSERT_EQ(violations.size(), 1u);
  EXPECT_EQ(violations[0].rfind("core/registry.h:2 includes \"mixers/mamba.h\", but core/ may use no other folder", 0), 0u)
      << violations[0];

  EXPECT_EQ(find_cycle({{"a", {"b"}}, {"b", {"c"}}, {"c", {"a"}}}), "a -> b -> c -> a");
  EXPECT_EQ(find_cycle({{"a", {"a", "b"}}, {"b", {"c"}}, {"c", {}}}), "");
}

class LayeringOfTheTree : public ::testing::Test {
 protected:
  void SetUp() override {
    files_ = source_tree::files();
    folders_ = source_folders(files_);
    table_ = parse_layout_table(source_tree::read("README.md"));
    ASSERT_FALSE(table_.empty()) << "README.md has no layout table under \"## Layout\"";
  }
  std::vector<std::string> files_;
  std::set<std::string> folders_;
  LayoutTable table_;
};

TEST_F(LayeringOfTheTree, EverySourceFolderIsInTheLayoutTable) {
  std::set<std::string> in_table;
  for (const auto& row : table_) in_table.insert(row.folder);
  for (const auto& folder : folders_)
    EXPECT_TRUE(in_table.count(folder)) << folder << "/ holds sources but has no row in README.md's layout table";
  EXPECT_TRUE(folders_.count("core") && folders_.count("cli") && folders_.count("harness"));
}

TEST_F(LayeringOfTheTree, EveryIncludeFollowsTheLayoutTable) {
  const auto includes = every_include(files_, folders_);
  EXPECT_GT(includes.size(), 300u);  // the walk found the tree
  const auto violations = layering_violations(table_, includes);
  EXPECT_TRUE(violations.empty()) << source_tree::lines(violations);
}

TEST_F(LayeringOfTheTree, FolderGraphHasNoCycle) {
  FolderGraph observed, allowed;
  for (const auto& include : every_include(files_, folders_))
    observed[source_tree::top_folder(include.file)].insert(source_tree::top_folder(include.target));
  for (const auto& row : table_) allowed[row.folder] = row.may_use;
  EXPECT_EQ(find_cycle(observed), "");
  EXPECT_EQ(find_cycle(allowed), "");
  // The edges issue 12 removed: mixers/ and attention/ reach each other through core/ only.
  EXPECT_FALSE(observed["mixers"].count("attention"));
  EXPECT_FALSE(observed["attention"].count("mixers"));
}

}  // namespace
}  // namespace mixlab
