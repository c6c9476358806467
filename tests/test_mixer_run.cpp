// `mixlab mixer run` end to end through the built binary (MIXLAB_BINARY): weights written with
// --weights-out and read back with --weights-in reproduce an in-process forward with the same
// weights; the seed fixes the initial weights; bad input is one line and exit status 2.

#include "harness/safetensors.h"
#include "core/registry.h"
#include "tests/run_mixlab.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/wait.h>
#include <unistd.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

std::string scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / ("mixlab_mixer_run_" + std::to_string(getpid()) + "_" + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

using mixlab::testing::line_count;
using mixlab::testing::run_mixlab;

struct Case {
  std::string name;
  std::map<std::string, ParamValue> params;
  std::string sets;  // the same parameters as --set arguments
};

TEST(MixerRun, WeightsOutThenInMatchAnInProcessForward) {
  const std::string dir = scratch_dir();
  const int64_t d_model = 16, heads = 2;
  torch::manual_seed(11);
  const auto x = torch::randn({2, 7, d_model}, torch::kFloat64);
  write_safetensors(dir + "/x.safetensors", {{"x", x}});

  const std::vector<Case> cases = {
      {"attention", {{"rope_theta", 500.0}}, "--set rope_theta=500"},
      {"mlp", {{"hidden", int64_t{24}}, {"activation", std::string("starrelu")}},
       "--set hidden=24 --set activation=starrelu"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string common = "mixer run " + c.name + " " + c.sets + " --d-model 16 --heads 2 --dtype float64 "
                               "--input '" + dir + "/x.safetensors'";
    const std::string weights = dir + "/" + c.name + ".weights.safetensors";
    const auto first = run_mixlab(dir, common + " --seed 3 --weights-out '" + weights + "' --output '" + dir + "/y1.safetensors'");
    ASSERT_EQ(first.status, 0) << first.output;
    // A different seed, but the weights from the file: the seed must not matter.
    const auto second = run_mixlab(dir, common + " --seed 77 --weights-in '" + weights + "' --output '" + dir + "/y2.safetensors'");
    ASSERT_EQ(second.status, 0) << second.output;
    // The same entry with seed 4 and no weights file: different weights, different y.
    const auto third = run_mixlab(dir, common + " --seed 4 --output '" + dir + "/y3.safetensors'");
    ASSERT_EQ(third.status, 0) << third.output;

    // In process: a differently seeded instance, the saved weights loaded strictly.
    torch::manual_seed(1234);
    auto mixer = Registry::global().create(c.name, MixerContext{d_model, heads}, c.params);
    mixer->to(torch::kFloat64);
    load_module_weights(*mixer, weights);
    torch::NoGradGuard no_grad;
    const auto expected = mixer->forward(x);

    const auto y1 = read_safetensors_file(dir + "/y1.safetensors");
    const auto y2 = read_safetensors(dir + "/y2.safetensors").at("y");
    const auto y3 = read_safetensors(dir + "/y3.safetensors").at("y");
    EXPECT_EQ(y1.tensors.at("y").scalar_type(), torch::kFloat64);
    EXPECT_EQ(y1.tensors.at("y").sizes(), x.sizes());
    EXPECT_TRUE(torch::allclose(y1.tensors.at("y"), expected, /*rtol=*/0, /*atol=*/1e-12));
    EXPECT_TRUE(torch::allclose(y2, expected, 0, 1e-12));
    EXPECT_GT((y3 - expected).abs().max().item<double>(), 1e-6) << "seed 4 should give other weights";
    EXPECT_EQ(y1.metadata.at("mixer"), c.name);
    EXPECT_EQ(y1.metadata.at("seed"), "3");

    // The weights the binary saved are the ones the same seed gives in process.
    torch::manual_seed(3);
    auto seeded = Registry::global().create(c.name, MixerContext{d_model, heads}, c.params);
    seeded->to(torch::kFloat64);
    const auto saved = read_safetensors(weights);
    const auto mine = module_weights(*seeded);
    ASSERT_EQ(saved.size(), mine.size());
    for (const auto& [name, tensor] : mine) EXPECT_TRUE(torch::equal(saved.at(name), tensor)) << name;
  }
}

TEST(MixerRun, BadInputIsOneLineAndExitStatus2) {
  const std::string dir = scratch_dir();
  write_safetensors(dir + "/x.safetensors", {{"x", torch::randn({1, 4, 16})}});
  write_safetensors(dir + "/z.safetensors", {{"z", torch::randn({1, 4, 16})}});
  write_safetensors(dir + "/narrow.safetensors", {{"x", torch::randn({1, 4, 8})}});
  { std::ofstream(dir + "/junk.safetensors") << "not a safetensors file at all"; }
  const std::string tail = " --d-model 16 --heads 2 --output '" + dir + "/y.safetensors'";
  const std::string x = " --input '" + dir + "/x.safetensors'";
  struct Bad {
    std::string args, expected;
  };
  const std::vector<Bad> cases = {
      {"mixer run mlp --set hiden=3" + x + tail, "unknown parameter 'hiden' for mixer 'mlp'; valid: hidden"},
      {"mixer run mlp --set hidden=wide" + x + tail, "must be of type int"},
      {"mixer run mlp --set hidden" + x + tail, "expected key=value"},
      {"mixer run no_such_mixer" + x + tail, "unknown mixer 'no_such_mixer'"},
      {"mixer run mlp --input '" + dir + "/z.safetensors'" + tail, "at x: missing"},
      {"mixer run mlp --input '" + dir + "/narrow.safetensors'" + tail,
       "at x: has shape [1, 4, 8], expected [batch, seq, 16]"},
      {"mixer run mlp" + x + " --weights-in '" + dir + "/junk.safetensors'" + tail, "junk.safetensors: header length"},
      {"mixer run mlp" + x + " --weights-in '" + dir + "/absent.safetensors'" + tail, "no such file"},
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(bad.args);
    const auto outcome = run_mixlab(dir, bad.args);
    EXPECT_EQ(outcome.status, 2);
    EXPECT_EQ(line_count(outcome.output), 1u) << outcome.output;
    EXPECT_NE(outcome.output.find(bad.expected), std::string::npos) << outcome.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/y.safetensors"));
  // Both weights options at once is a usage error.
  const auto both = run_mixlab(dir, "mixer run mlp" + x + tail + " --weights-in a --weights-out b");
  EXPECT_NE(both.status, 0);
}

// Weights saved for one configuration do not load into another: a strict shape error.
TEST(MixerRun, WeightsOfAnotherShapeAreRefused) {
  const std::string dir = scratch_dir();
  write_safetensors(dir + "/x.safetensors", {{"x", torch::randn({1, 4, 16})}});
  const std::string x = " --input '" + dir + "/x.safetensors' --output '" + dir + "/y.safetensors' --d-model 16";
  ASSERT_EQ(run_mixlab(dir, "mixer run mlp --set hidden=24" + x + " --weights-out '" + dir + "/w.safetensors'").status, 0);
  const auto outcome = run_mixlab(dir, "mixer run mlp --set hidden=32" + x + " --weights-in '" + dir + "/w.safetensors'");
  EXPECT_EQ(outcome.status, 2);
  EXPECT_NE(outcome.output.find("at down_proj.weight: shape mismatch: the module expects [16, 32], the file has [16, 24]"), std::string::npos)
      << outcome.output;
}

}  // namespace
}  // namespace mixlab
