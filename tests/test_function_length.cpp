// No function outside a CUDA kernel is longer than 120 lines (issue 12): every *.cpp and *.h of
// the source tree is read with tests/function_spans.h, *.cu and *.cuh (the kernels) are not.
// Files that other work will split keep an entry in kLongFunctionsAllowed, with the reason; the
// test lists what they hold, so that the list stays honest.

#include "tests/function_spans.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;
using testing::function_spans;

constexpr int kMaxFunctionLines = 120;

// Path prefixes (relative to the source root) that may hold longer functions, and why.
const std::map<std::string, std::string> kLongFunctionsAllowed = {
    // Empty since issue 12 split the report, `show`, the sweep runner and training into parts.
};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The source files below `root`: *.cpp and *.h, not under build folders or hidden ones.
std::vector<fs::path> source_files(const fs::path& root) {
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name.rfind('.', 0) == 0 || name.rfind("build", 0) == 0)) {
      it.disable_recursion_pending();
      continue;
    }
    const auto extension = it->path().extension();
    if (it->is_regular_file() && (extension == ".cpp" || extension == ".h")) files.push_back(it->path());
  }
  return files;
}

const std::string* allowance(const std::string& relative) {
  for (const auto& [prefix, reason] : kLongFunctionsAllowed)
    if (relative.rfind(prefix, 0) == 0) return &reason;
  return nullptr;
}

// The text of numbered source lines (the comments in the test below give the numbers).
std::string joined_lines(const std::vector<std::string>& text) {
  std::string joined;
  for (const auto& line : text) joined += line + "\n";
  return joined;
}

TEST(FunctionLength, ScannerMeasuresFunctionsNotScopes) {
  std::vector<std::string> text = {
      "#define BODY() { return 1; }",            // 1  a macro: not code
      "namespace mixlab {",                      // 2
      "class Point : public Base {",             // 3
      " public:",                                // 4
      "  Point(int x) : x_{x}, y_(0) {",         // 5  a constructor with braced members
      "    check();",                            // 6
      "  }",                                     // 7  Point: 5..7
      "  int x_ = 0;",                           // 8
      "};",                                      // 9
      "// void commented() { }",                 // 10 a comment: not code
      "int long_one(const std::string& s)",      // 11
      "{",                                       // 12
      "  const char* brace = \"{\";",             // 13 braces in literals
      "  char c = '}';",                         // 14
      "  auto raw = R\"x({ \" })x\";",           // 15
      "  auto add = [](int a) { return a; };",   // 16 a lambda belongs to its function
  };
  for (int i = 0; i < 115; ++i) text.push_back("  if (s.empty()) { add(1'000); }");  // 17..131
  text.push_back("}");                                                                // 132
  text.push_back("const int table[] = {1, 2, 3};");                                   // 133
  text.push_back("TEST(Suite, Name) { EXPECT_TRUE(true); }");                         // 134
  text.push_back("}  // namespace mixlab");                                           // 135
  const auto spans = function_spans(joined_lines(text));
  ASSERT_EQ(spans.size(), 3u);
  EXPECT_EQ(spans[0].first_line, 5);
  EXPECT_EQ(spans[0].lines, 3);
  EXPECT_EQ(spans[0].signature.rfind("Point(int x)", 0), 0u) << spans[0].signature;
  EXPECT_EQ(spans[1].first_line, 11);
  EXPECT_EQ(spans[1].lines, 122);
  EXPECT_EQ(spans[1].signature, "int long_one(const std::string& s)");
  EXPECT_EQ(spans[2].first_line, 134);
  EXPECT_EQ(spans[2].lines, 1);
}

TEST(FunctionLength, NoFunctionOutsideTheAllowListIsLongerThan120Lines) {
  const fs::path root = MIXLAB_SOURCE_DIR;
  std::vector<std::string> offenders, allowed;
  size_t files = 0, functions = 0;
  for (const auto& path : source_files(root)) {
    ++files;
    const std::string relative = fs::relative(path, root).generic_string();
    for (const auto& span : function_spans(read_text(path))) {
      ++functions;
      if (span.lines <= kMaxFunctionLines) continue;
      const std::string where = relative + ":" + std::to_string(span.first_line) + " (" +
                                std::to_string(span.lines) + " lines) " + span.signature.substr(0, 80);
      if (const auto* reason = allowance(relative)) allowed.push_back(where + "  [allowed: " + *reason + "]");
      else offenders.push_back(where);
    }
  }
  EXPECT_GT(files, 100u);  // the tree was found
  EXPECT_GT(functions, 1000u);
  for (const auto& line : allowed) std::cout << "long function, " << line << "\n";
  std::string list;
  for (const auto& line : offenders) list += "\n  " + line;
  EXPECT_TRUE(offenders.empty()) << "functions longer than " << kMaxFunctionLines
                                 << " lines (split them, or name the file in kLongFunctionsAllowed with the reason):"
                                 << list;
  for (const auto& [prefix, reason] : kLongFunctionsAllowed)
    EXPECT_TRUE(fs::exists(root / prefix)) << "kLongFunctionsAllowed names " << prefix << ", which does not exist";
}

}  // namespace
}  // namespace mixlab
