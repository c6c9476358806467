// Synthetic recall tasks (data/synthetic.h): deterministic from the seed, solvable from the
// inputs alone (a lookup solver written here scores 100 %), chance level for a random guesser.

#include "data/rng.h"
#include "data/synthetic.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

using namespace mixlab::data;

namespace MIXLAB_UNITY_ID {

TaskSpec spec_for(const std::string& task) {
  TaskSpec spec;
  spec.task = task;
  if (task == "mqar") { spec.seq_len = 64; spec.vocab = 64; spec.num_kv_pairs = 8; }
  if (task == "passkey") { spec.seq_len = 400; spec.vocab = 256; }
  if (task == "copy") { spec.seq_len = 48; spec.vocab = 16; spec.copy_tokens = 8; }
  if (task == "induction") { spec.seq_len = 32; spec.vocab = 20; }
  return spec;
}

// Solvers that read the answer off the inputs, written from each task's definition.
torch::Tensor solve(const TaskSpec& spec, const Batch& batch) {
  auto predictions = torch::zeros_like(batch.inputs);
  const int64_t B = batch.inputs.size(0), L = batch.inputs.size(1);
  auto x = batch.inputs.accessor<int64_t, 2>();
  auto y = predictions.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    if (spec.task == "mqar") {  // key -> value from the context pairs; answer every repeated key
      std::map<int64_t, int64_t> value_of;
      for (int64_t k = 0; k < spec.num_kv_pairs; ++k) value_of[x[b][2 * k]] = x[b][2 * k + 1];
      for (int64_t t = 2 * spec.num_kv_pairs; t < L; ++t)
        if (value_of.count(x[b][t])) y[b][t] = value_of[x[b][t]];
    } else if (spec.task == "passkey") {  // read the digits after "The pass key is "
      std::string text;
      for (int64_t t = 0; t < L; ++t) text += static_cast<char>(x[b][t]);
      const auto at = text.find("The pass key is ") + 16;
      for (int64_t j = 0; j < 5; ++j) y[b][L - 5 + j] = static_cast<unsigned char>(text[at + j]);
    } else if (spec.task == "copy") {  // the non-blank tokens before the marker, in order
      std::vector<int64_t> kept;
      int64_t t = 0;
      for (; x[b][t] != spec.vocab - 1; ++t)
        if (x[b][t] != spec.vocab - 2) kept.push_back(x[b][t]);
      for (size_t j = 0; j < kept.size(); ++j) y[b][t + 1 + j] = kept[j];
    } else {  // induction: the token after the first marker
      for (int64_t t = 0; t < L - 1; ++t)
        if (x[b][t] == spec.vocab - 1) { y[b][L - 1] = x[b][t + 1]; break; }
    }
  }
  return predictions;
}


class SyntheticTasks : public ::testing::TestWithParam<std::string> {};

TEST_P(SyntheticTasks, SameSeedSameBytesOtherSeedOrSplitDiffers) {
  const auto spec = spec_for(GetParam());
  SyntheticTask a(spec), b(spec);
  const auto first = a.batch(7, 0, 0, 16), second = b.batch(7, 0, 0, 16);
  EXPECT_TRUE(torch::equal(first.inputs, second.inputs));
  EXPECT_TRUE(torch::equal(first.targets, second.targets));
  EXPECT_FALSE(torch::equal(first.inputs, a.batch(8, 0, 0, 16).inputs));
  EXPECT_FALSE(torch::equal(first.inputs, a.batch(7, 1, 0, 16).inputs));
  // Example i alone equals row i of a batch that starts earlier.
  const auto alone = a.example(7, 0, 5);
  const auto shifted = a.batch(7, 0, 3, 4);
  for (int64_t t = 0; t < spec.seq_len; ++t) {
    EXPECT_EQ(shifted.inputs[2][t].item<int64_t>(), alone.inputs[t]);
    EXPECT_EQ(shifted.targets[2][t].item<int64_t>(), alone.targets[t]);
  }
}

TEST_P(SyntheticTasks, LookupSolverScoresFullMarksRandomGuesserChance) {
  const auto spec = spec_for(GetParam());
  SyntheticTask task(spec);
  const auto batch = task.batch(3, 1, 0, 400);
  EXPECT_DOUBLE_EQ(task_accuracy(solve(spec, batch), batch), 1.0);
  ASSERT_TRUE(batch.mask.any(1).all().item<bool>()) << "every example asks something";
  // Targets and inputs stay inside the vocabulary.
  EXPECT_GE(batch.inputs.min().item<int64_t>(), 0);
  EXPECT_LT(batch.inputs.max().item<int64_t>(), spec.vocab);
  EXPECT_LT(batch.targets.max().item<int64_t>(), spec.vocab);

  // Uniform guesses over the answer alphabet score ≈ 1/|alphabet| (within 4 standard errors).
  const int64_t alphabet = spec.task == "passkey" ? 10 : spec.vocab;
  const int64_t offset = spec.task == "passkey" ? '0' : 0;
  SplitMix64 rng(99);
  auto guesses = torch::empty_like(batch.inputs);
  auto g = guesses.accessor<int64_t, 2>();
  for (int64_t b = 0; b < guesses.size(0); ++b)
    for (int64_t t = 0; t < guesses.size(1); ++t) g[b][t] = offset + static_cast<int64_t>(rng.below(alphabet));
  const double p = 1.0 / alphabet;
  const double answers = batch.mask.sum().item<double>();
  EXPECT_NEAR(task_accuracy(guesses, batch), p, 4.0 * std::sqrt(p * (1 - p) / answers) + 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Synthetic, SyntheticTasks, ::testing::Values("mqar", "passkey", "copy", "induction"));

TEST(Synthetic, MqarFollowsZoologyLayout) {
  TaskSpec spec = spec_for("mqar");
  spec.random_non_queries = false;
  SyntheticTask task(spec);
  for (int64_t i = 0; i < 50; ++i) {
    const auto ex = task.example(1, 0, i);
    const int64_t K = spec.num_kv_pairs, half = spec.vocab / 2;
    std::set<int64_t> keys, values;
    for (int64_t k = 0; k < K; ++k) {
      keys.insert(ex.inputs[2 * k]);
      values.insert(ex.inputs[2 * k + 1]);
      EXPECT_GE(ex.inputs[2 * k], 1);
      EXPECT_LT(ex.inputs[2 * k], half);
      EXPECT_GE(ex.inputs[2 * k + 1], half);
    }
    EXPECT_EQ(keys.size(), static_cast<size_t>(K)) << "keys distinct";
    EXPECT_EQ(values.size(), static_cast<size_t>(K)) << "values distinct";
    int64_t asked = 0;
    for (int64_t t = 0; t < spec.seq_len; ++t) {
      if (ex.targets[t] != kIgnore) {
        ++asked;
        EXPECT_EQ((t - 2 * K) % 2, 0) << "queries sit at even offsets of the query region";
      } else if (t >= 2 * K) {
        EXPECT_EQ(ex.inputs[t], 0) << "without random fill the query region is zero";
      }
    }
    EXPECT_EQ(asked, K) << "every key asked once";
  }
}

TEST(Synthetic, MqarGapsFavourShortDistances) {  // weights a·i^(a−1), a = 0.01: roughly ∝ 1/i
  TaskSpec spec = spec_for("mqar");
  spec.seq_len = 256;
  spec.num_kv_pairs = 4;
  SyntheticTask task(spec);
  int64_t near = 0, far = 0;
  for (int64_t i = 0; i < 300; ++i) {
    const auto ex = task.example(2, 0, i);
    for (int64_t t = 8; t < 256; ++t)
      if (ex.targets[t] != kIgnore) ((t - 8) / 2 < 16 ? near : far)++;
  }
  // Gap indices 0..15 carry H(16)/H(124) ≈ 63 % of the weight for the first draw.
  EXPECT_GT(near, far);
}

// Zoology's query gaps (arXiv 2312.04927, the MQAR definition): with one pair the gap index g of the
// only query follows p(g) = (g + 1)^(a−1) / Σ_{i=1}^{space} i^(a−1) exactly, space = (L − 2)/2.
TEST(Synthetic, MqarGapOfASinglePairFollowsThePowerLaw) {
  TaskSpec spec = spec_for("mqar");
  spec.seq_len = 64;
  spec.num_kv_pairs = 1;
  SyntheticTask task(spec);
  const int64_t space = 31, n = 20000;
  std::vector<double> expected(space), seen(space, 0.0);
  double total = 0;
  for (int64_t g = 0; g < space; ++g) total += expected[g] = std::pow(g + 1.0, spec.power_a - 1.0);
  for (auto& p : expected) p /= total;
  for (int64_t i = 0; i < n; ++i) {
    const auto ex = task.example(4, 0, i);
    for (int64_t t = 2; t < 64; ++t)
      if (ex.targets[t] != kIgnore) seen[(t - 2) / 2] += 1.0 / n;
  }
  double total_variation = 0;
  for (int64_t g = 0; g < space; ++g) {
    EXPECT_NEAR(seen[g], expected[g], 5 * std::sqrt(expected[g] * (1 - expected[g]) / n)) << "gap " << g;
    total_variation += 0.5 * std::fabs(seen[g] - expected[g]);
  }
  EXPECT_LT(total_variation, 0.03);
  EXPECT_NEAR(expected[0], 0.2447, 5e-4);  // 1 / Σ_{i≤31} i^(−0.99): a quarter of the queries follow the pairs at once
}

TEST(Synthetic, PasskeyDepthPlacesTheNeedle) {
  TaskSpec spec = spec_for("passkey");
  for (double depth : {0.0, 0.5, 1.0}) {
    spec.depth = depth;
    const auto ex = SyntheticTask(spec).example(4, 1, 0);
    std::string text;
    for (auto c : ex.inputs) text += static_cast<char>(c);
    ASSERT_EQ(static_cast<int64_t>(text.size()), spec.seq_len);
    const double where = static_cast<double>(text.find("The pass key is ")) / spec.seq_len;
    if (depth == 0.0) EXPECT_LT(where, 0.45);
    if (depth == 1.0) EXPECT_GT(where, 0.6);
    EXPECT_EQ(text.rfind("What is the pass key? The pass key is "), static_cast<size_t>(spec.seq_len - 42));
  }
}

TEST(Synthetic, BadLayoutsNameTheField) {
  TaskSpec spec = spec_for("mqar");
  spec.num_kv_pairs = 17;  // 4·17 > 64
  try {
    SyntheticTask task(spec);
    FAIL() << "accepted 4·K > L";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("num_kv_pairs"), std::string::npos);
  }
  spec = spec_for("copy");
  spec.copy_tokens = 30;
  EXPECT_THROW(SyntheticTask{spec}, std::invalid_argument);
  spec = spec_for("passkey");
  spec.seq_len = 100;
  EXPECT_THROW(SyntheticTask{spec}, std::invalid_argument);
  spec.task = "sorting";
  EXPECT_THROW(SyntheticTask{spec}, std::invalid_argument);
}

}  // namespace
