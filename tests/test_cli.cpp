// The command line as a user meets it, through the built binary (MIXLAB_BINARY), output to a
// file as in a Slurm log: usage errors are one line with exit status 2, --version names the
// commit and LibTorch, --set paths mean the same in bench, train and sweep, training logs its
// steps, evaluations and resumption off a terminal, and a trained point goes out with
// `mixlab export` and comes back with --init-from on train and bench.

#include "harness/safetensors.h"
#include "tests/run_mixlab.h"
#include "tests/temp_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

using mixlab::testing::line_count;
using mixlab::testing::run_mixlab;
using mixlab::testing::TempDir;

const std::string kTinyTrain =
    "--preset transformer --set model.d_model=16 --set model.n_heads=2 --set model.n_layers=1 "
    "--set train.data.source=mqar --set train.seq_len=16 --set train.batch_size=2 --set train.eval.examples=8 ";

TEST(Cli, UsageErrorsAreOneLineWithStatusTwo) {
  const TempDir dir("cli_usage");
  for (const std::string args : {"bench --preset transformer --no-such-option --seq 16", "bench --preset transformer",
                                 "sweep", "no-such-command", "train --preset transformer --set train.steps",
                                 "bench --preset transformer --seq 16 --set train.steps=3",
                                 "mixer run swa --random-input 2x8 --out y.safetensors", "export"}) {
    SCOPED_TRACE(args);
    const auto outcome = run_mixlab(dir.path.string(), args);
    EXPECT_EQ(outcome.status, 2) << outcome.output;
    EXPECT_EQ(line_count(outcome.output), 1u) << outcome.output;
  }
  // CLI11's own message is in the line.
  EXPECT_NE(run_mixlab(dir.path.string(), "bench --preset transformer").output.find("--seq is required"),
            std::string::npos);
  EXPECT_NE(run_mixlab(dir.path.string(), "bench --preset transformer --seq 16 --set train.steps=3")
                .output.find("valid: measure.*, model.*"),
            std::string::npos);
}

TEST(Cli, VersionNamesCommitLibTorchAndCuda) {
  const TempDir dir("cli_version");
  const auto outcome = run_mixlab(dir.path.string(), "--version");
  EXPECT_EQ(outcome.status, 0);
  EXPECT_TRUE(std::regex_search(outcome.output, std::regex(R"(^mixlab \S+ \(commit [0-9a-f]{7,}(-dirty)?\), LibTorch \d+\.\d+\.\d+, CUDA )")))
      << outcome.output;
}

TEST(Cli, HelpShowsDefaults) {
  const TempDir dir("cli_help");
  const auto outcome = run_mixlab(dir.path.string(), "train --help");
  EXPECT_EQ(outcome.status, 0);
  EXPECT_NE(outcome.output.find("results/runs"), std::string::npos) << outcome.output;  // --run-root's default
  EXPECT_NE(run_mixlab(dir.path.string(), "bench --help").output.find("auto"), std::string::npos);
}

TEST(Cli, KernelBenchWithoutCudaFails) {
  const TempDir dir("cli_kernel_bench");
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is present";
  const auto outcome = run_mixlab(dir.path.string(), "kernel_bench --quick " + dir.file("k.csv"));
  EXPECT_NE(outcome.status, 0) << outcome.output;
  EXPECT_FALSE(std::filesystem::exists(dir.file("k.csv")));
}

TEST(Cli, SetPathsAreTheSameInSweepWithBaseAsAnAlias) {
  const TempDir dir("cli_set");
  std::ofstream(dir.file("spec.json")) << R"({"name": "s", "base": {"model": {"preset": "transformer"},
      "measure": {"seq_lens": [16], "repeats": 2}}})";
  const auto plain = run_mixlab(dir.path.string(), "sweep " + dir.file("spec.json") + " --dry-run --set measure.repeats=5");
  const auto with_base =
      run_mixlab(dir.path.string(), "sweep " + dir.file("spec.json") + " --dry-run --set base.measure.repeats=5");
  const auto unchanged = run_mixlab(dir.path.string(), "sweep " + dir.file("spec.json") + " --dry-run");
  EXPECT_EQ(plain.status, 0) << plain.output;
  EXPECT_EQ(plain.output, with_base.output);       // the same point id
  EXPECT_NE(plain.output, unchanged.output);       // and the override took
  EXPECT_EQ(run_mixlab(dir.path.string(), "sweep " + dir.file("spec.json") + " --dry-run --set mesure.repeats=5").status, 2);
}

std::string point_id_of(const std::string& train_output) {
  std::smatch match;
  EXPECT_TRUE(std::regex_search(train_output, match, std::regex(R"(\(([0-9a-f]{8,})\), checkpoints in)"))) << train_output;
  return match.size() > 1 ? match[1].str() : "";
}

TEST(Cli, TrainLogsStepsEvaluationsAndResumptionOffATerminal) {
  const TempDir dir("cli_train_log");
  const std::string args = "train " + kTinyTrain + "--set train.steps=6 --set train.log_every=2 --set train.eval.every=3 "
                           "--run-root " + dir.file("runs");
  const auto first = run_mixlab(dir.path.string(), args);
  ASSERT_EQ(first.status, 0) << first.output;
  for (const char* line : {"train step 2/6  loss ", "train step 4/6", "train step 6/6", "eval  step 3/6  mqar/accuracy",
                           "eval  step 6/6"})
    EXPECT_NE(first.output.find(line), std::string::npos) << line << "\n" << first.output;
  EXPECT_TRUE(std::regex_search(first.output, std::regex(R"(train step 2/6  loss \d+\.\d{4}  lr \S+  \d+ tok/s  MFU \d+\.\d%  elapsed \d+:\d\d:\d\d  ETA \d+:\d\d:\d\d)")))
      << first.output;
  // --curves-csv: the same curve as CSV, long format.
  const auto with_csv = run_mixlab(dir.path.string(), args + "-csv --curves-csv " + dir.file("curves.csv"));
  ASSERT_EQ(with_csv.status, 0) << with_csv.output;
  std::ifstream csv(dir.file("curves.csv"));
  const std::string text((std::istreambuf_iterator<char>(csv)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("point_id,label,step,kind,name,value\n", 0), 0u) << text;
  EXPECT_TRUE(std::regex_search(text, std::regex(R"(\n[0-9a-f]+,"[^"]+",6,train,loss,\d)"))) << text;
  EXPECT_TRUE(std::regex_search(text, std::regex(R"(\n[0-9a-f]+,"[^"]+",3,eval,mqar/accuracy,)"))) << text;

  const auto again = run_mixlab(dir.path.string(), args);  // the checkpoint is there: resume
  EXPECT_NE(again.output.find("resumed from step 6/6 (" + dir.file("runs") + "/" + point_id_of(first.output) +
                              "/checkpoint.safetensors)"),
            std::string::npos)
      << again.output;
}

// train.curve_every = 3 records steps 3, 6 and the last: a line every 2 steps becomes a line at
// the first recorded step past each multiple of 2, and the last.
TEST(Cli, SparseCurveLogsAtTheFirstRecordedStepPastEachMultiple) {
  const TempDir dir("cli_sparse_curve");
  const auto run = run_mixlab(dir.path.string(), "train " + kTinyTrain + "--set train.steps=7 --set train.log_every=2 "
                                                 "--set train.curve_every=3 --run-root " + dir.file("runs"));
  ASSERT_EQ(run.status, 0) << run.output;
  for (const char* line : {"train step 3/7  loss ", "train step 6/7  loss ", "train step 7/7  loss "})
    EXPECT_NE(run.output.find(line), std::string::npos) << line << "\n" << run.output;
  for (const char* line : {"train step 2/7", "train step 4/7", "train step 5/7"})
    EXPECT_EQ(run.output.find(line), std::string::npos) << line << "\n" << run.output;
}

TEST(Cli, ExportThenInitFromOnTrainAndBench) {
  const TempDir dir("cli_export");
  const auto trained = run_mixlab(dir.path.string(), "train " + kTinyTrain + "--set train.steps=2 --run-root " + dir.file("runs"));
  ASSERT_EQ(trained.status, 0) << trained.output;
  const std::string run = dir.file("runs") + "/" + point_id_of(trained.output);
  const auto exported = run_mixlab(dir.path.string(), "export " + run + " --names hf --out " + dir.file("hf") + " --reference-logits");
  ASSERT_EQ(exported.status, 0) << exported.output;
  std::ifstream config_file(dir.file("hf/config.json"));
  const auto config = nlohmann::json::parse(config_file);
  EXPECT_EQ(config["model_type"], "qwen2");
  EXPECT_EQ(config["hidden_size"], 16);
  const TensorMap weights = read_safetensors(dir.file("hf/model.safetensors"));
  EXPECT_TRUE(weights.count("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_EQ(read_safetensors(dir.file("hf/reference_logits.safetensors")).at("logits").sizes(),
            torch::IntArrayRef({2, 32, 256}));

  // The exported folder names its own model: bench and train need nothing else.
  const auto bench = run_mixlab(dir.path.string(), "bench --init-from " + dir.file("hf") +
                                                       " --seq 8 --phases forward --repeats 1 --warmup 0");
  EXPECT_EQ(bench.status, 0) << bench.output;
  const auto tuned = run_mixlab(dir.path.string(), "train --init-from " + dir.file("hf") + " --set train.data.source=mqar "
                                "--set train.seq_len=16 --set train.batch_size=2 --set train.eval.examples=8 "
                                "--set train.steps=1 --run-root " + dir.file("runs2"));
  EXPECT_EQ(tuned.status, 0) << tuned.output;
  const auto missing = run_mixlab(dir.path.string(), "bench --init-from " + dir.file("nothing") + " --seq 8");
  EXPECT_EQ(missing.status, 2) << missing.output;
}

TEST(Cli, MixerRunDrawsItsOwnInput) {
  const TempDir dir("cli_random_input");
  const auto outcome = run_mixlab(dir.path.string(), "mixer run swa --set window=4 --d-model 16 --n-heads 2 "
                                                     "--random-input 2,8 --out " + dir.file("y.safetensors"));
  ASSERT_EQ(outcome.status, 0) << outcome.output;
  const TensorMap written = read_safetensors(dir.file("y.safetensors"));
  EXPECT_EQ(written.at("x").sizes(), torch::IntArrayRef({2, 8, 16}));
  EXPECT_EQ(written.at("y").sizes(), torch::IntArrayRef({2, 8, 16}));
  EXPECT_GT(written.at("x").std().item<double>(), 0.5);  // N(0, 1), not zeros
}

}  // namespace
}  // namespace mixlab
