// Every example in README.md and docs/*.md runs as written (the CPU ones): the test extracts
//   * each command line of a fenced block that starts with `mixlab` or `build/mixlab`
//     (continuation lines joined), and
//   * each spec of a fenced block that is a whole sweep spec (has "name" and "base"), checked
//     with `mixlab sweep SPEC --dry-run`,
// and runs them in order in a scratch folder that has build/ (the binary), experiments/ and a
// small results/q.db and results/quickstart.db for the show and report examples.
//
// Skipped: synopses (optional [..] parts, `...`, placeholders such as SPEC, NAME or <point id>),
// blocks that need a GPU or a cluster (--device cuda, kernel_bench, $SLURM_*); `report` examples
// where gnuplot is not installed (the GPU machine); an example reading a database that an earlier
// example, stopped after kSeconds, had not yet written.
// To stay fast, an example still running after kSeconds is stopped and counts as started: every
// command validates its whole input before working, so a usage or config error shows within that
// time; one that exits earlier must exit with status 0.

#include "tests/run_mixlab.h"
#include "tests/temp_dir.h"

#include "data/corpus.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;
using mixlab::testing::TempDir;

constexpr int kSeconds = 10;

struct Example {
  std::string where;    // "docs/sweeps.md:97"
  std::string command;  // a shell command line, or a spec's text
  bool is_spec = false;
};

bool is_synopsis(const std::string& line) {
  static const std::regex placeholder(R"((^|[\s=/])[A-Z][A-Z_]{1,}([\s.,\]]|$))");
  static const std::regex angle_placeholder(R"(<[a-z ]+>)");
  return line.find(" [") != std::string::npos || line.find("...") != std::string::npos ||
         std::regex_search(line, placeholder) || std::regex_search(line, angle_placeholder);
}

bool needs_gpu_or_cluster(const std::string& text) {
  return text.find("--device cuda") != std::string::npos || text.find("kernel_bench") != std::string::npos ||
         text.find("SLURM") != std::string::npos || text.find("sbatch") != std::string::npos;
}

// The command without leading environment assignments ("OMP_NUM_THREADS=1 build/mixlab ..." is
// an example of `build/mixlab`; the shell still sees the assignments).
std::string without_environment(const std::string& command) {
  static const std::regex assignments(R"(^([A-Za-z_][A-Za-z0-9_]*=\S*\s+)+)");
  return std::regex_replace(command, assignments, "", std::regex_constants::format_first_only);
}

std::vector<Example> examples_in(const fs::path& file, const std::string& name) {
  std::vector<Example> examples;
  std::ifstream in(file);
  std::string line, block, pending;
  std::vector<std::pair<int, std::string>> lines;
  bool inside = false;
  int number = 0, block_start = 0;
  auto finish_block = [&] {
    if (needs_gpu_or_cluster(block)) return;
    const bool spec = block.find("\"name\"") != std::string::npos && block.find("\"base\"") != std::string::npos &&
                      block.find_first_not_of(" \n") == block.find('{');
    if (spec) {
      examples.push_back({name + ":" + std::to_string(block_start), block, true});
      return;
    }
    for (size_t i = 0; i < lines.size(); ++i) {
      std::string command = lines[i].second;
      const int at = lines[i].first;
      while (!command.empty() && command.back() == '\\' && i + 1 < lines.size()) command.pop_back(), command += lines[++i].second;
      const auto comment = command.find("  #");
      if (comment != std::string::npos) command.erase(comment);
      const std::string program = without_environment(command);
      if (program.rfind("mixlab ", 0) != 0 && program.rfind("build/mixlab ", 0) != 0) continue;
      if (is_synopsis(program)) continue;
      examples.push_back({name + ":" + std::to_string(at), command, false});
    }
  };
  while (std::getline(in, line)) {
    ++number;
    if (line.rfind("```", 0) == 0) {
      if (inside) finish_block();
      inside = !inside;
      block.clear();
      lines.clear();
      block_start = number;
      continue;
    }
    if (inside) {
      block += line + "\n";
      lines.emplace_back(number, line);
    }
  }
  return examples;
}

bool gnuplot_installed() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

bool draws_plots(const std::string& command) {
  return command.find("mixlab report") != std::string::npos && command.find("--help") == std::string::npos &&
         command.find("report table") == std::string::npos;
}

// The value of `--db PATH` in a command line, or "".
std::string database_of(const std::string& command) {
  static const std::regex db(R"(--db[ =](\S+))");
  std::smatch match;
  return std::regex_search(command, match, db) ? match[1].str() : std::string();
}

std::vector<Example> all_examples() {
  const fs::path source = MIXLAB_SOURCE_DIR;
  std::vector<Example> all = examples_in(source / "README.md", "README.md");
  std::vector<fs::path> docs;
  for (const auto& entry : fs::directory_iterator(source / "docs"))
    if (entry.path().extension() == ".md") docs.push_back(entry.path());
  std::sort(docs.begin(), docs.end());
  for (const auto& doc : docs)
    for (auto& example : examples_in(doc, "docs/" + doc.filename().string())) all.push_back(example);
  return all;
}

TEST(DocsExamples, EveryCpuExampleRunsAsWritten) {
  const TempDir dir("docs_examples");
  const fs::path source = MIXLAB_SOURCE_DIR;
  const fs::path binary = fs::absolute(MIXLAB_BINARY);
  fs::create_directories(dir.path / "bin");
  fs::create_symlink(binary, dir.path / "bin" / "mixlab");
  fs::create_directory_symlink(binary.parent_path(), dir.path / "build");
  fs::create_directory_symlink(source / "experiments", dir.path / "experiments");
  fs::create_directory_symlink(source / "data", dir.path / "data");
  // The databases the show and report examples read, from a tiny sweep.
  std::ofstream(dir.file("tiny.json")) << R"({"name": "tiny", "base": {"model": {"vocab_size": 64, "d_model": 16,
      "n_heads": 2, "n_layers": 1}, "measure": {"seq_lens": [16, 32], "repeats": 1, "warmup": 0, "phases": ["forward", "forward_backward"]}},
      "points": [{"model": {"pattern": ["attention", "mlp"]}}, {"model": {"pattern": [{"mixer": "swa", "window": 8}, "mlp"]}},
                 {"model": {"pattern": [{"mixer": "checkpoint_attention", "segment_size": 4}, "mlp"]}}]})";
  for (const char* db : {"results/q.db", "results/quickstart.db", "results.db"}) {
    const auto made = testing::run_mixlab(dir.path.string(), "sweep " + dir.file("tiny.json") + " --db " + dir.file(db));
    ASSERT_EQ(made.status, 0) << made.output;
  }

  const auto examples = all_examples();
  EXPECT_GE(examples.size(), 15u);  // the extraction found the examples
  const bool can_plot = gnuplot_installed();
  std::vector<std::string> skipped;
  std::set<std::string> unfinished_databases;  // written by an example that was stopped
  for (const auto& example : examples) {
    std::string command = example.command;
    const std::string database = database_of(command);
    const bool database_unfinished = unfinished_databases.count(database) > 0 &&
                                     !fs::exists(fs::path(database).is_absolute() ? fs::path(database) : dir.path / database);
    if ((!can_plot && draws_plots(command)) || database_unfinished) {
      skipped.push_back(example.where + " (no gnuplot, or its database was not written in time)");
      continue;
    }
    if (example.is_spec) {
      std::ofstream(dir.file("example-spec.json")) << example.command;
      command = "mixlab sweep example-spec.json --dry-run";
    }
    std::ofstream(dir.file("example.sh")) << command << "\n";
    const std::string shell = "cd '" + dir.path.string() + "' && PATH='" + (dir.path / "bin").string() +
                              "':$PATH timeout " + std::to_string(kSeconds) + " sh example.sh > out.txt 2>&1";
    const int raw = std::system(shell.c_str());
    const int status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    std::ifstream out(dir.file("out.txt"));
    const std::string output((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
    // An example that trains on the corpus cannot run where data/fetch_corpus.sh has not been run
    // (the GPU machine has no network): skipped, as plots are without gnuplot.
    if (status != 0 && status != 124 && output.find("no corpus in") != std::string::npos &&
        !fs::is_directory(fs::path(data::default_corpus_dir()) / "docs")) {
      skipped.push_back(example.where + " (no corpus: data/fetch_corpus.sh)");
      continue;
    }
    EXPECT_TRUE(status == 0 || status == 124) << example.where << ": " << example.command << "\nexit " << status
                                              << ":\n" << output;
    if (status == 124 && !database.empty()) unfinished_databases.insert(database);
  }
  for (const auto& where : skipped) std::cout << "skipped " << where << "\n";
}

}  // namespace
}  // namespace mixlab
