// SCONE contextual input embeddings (harness/scone.h), on synthetic data: the f-gram table against
// brute-force counting, the embedding rule (E[x_t] without a match; a function of the matched
// window alone with one), and the model contract (causal, step = forward, cost = counted products).

#include "harness/config.h"
#include "harness/flop_counter.h"
#include "harness/model.h"
#include "harness/scone.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <map>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// Random tokens in [0, 20) with the trigram 1 2 3 planted every 7 positions.
torch::Tensor synthetic_corpus(int64_t rows, int64_t length, uint64_t seed) {
  torch::manual_seed(seed);
  auto tokens = torch::randint(4, 20, {rows, length}, torch::kLong);
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t t = b; t + 3 <= length; t += 7)
      for (int64_t i = 0; i < 3; ++i) tokens[b][t + i] = i + 1;
  return tokens;
}

TEST(Scone, FgramTableKeepsTheMostFrequentNgrams) {
  auto corpus = synthetic_corpus(2, 60, 1);
  auto table = FgramTable::from_corpus(corpus, 3, 6, 2);
  // Brute force: count every 2- and 3-gram, rank by (count desc, tokens asc), keep 6 seen ≥ 2 times.
  std::map<std::vector<int64_t>, int64_t> counts;
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t n = 2; n <= 3; ++n)
      for (int64_t t = 0; t + n <= 60; ++t) {
        std::vector<int64_t> g;
        for (int64_t i = 0; i < n; ++i) g.push_back(corpus[b][t + i].item<int64_t>());
        counts[g]++;
      }
  std::vector<std::pair<int64_t, std::vector<int64_t>>> ranked;
  for (auto& [g, c] : counts) if (c >= 2) ranked.push_back({-c, g});
  std::sort(ranked.begin(), ranked.end());
  std::set<std::vector<int64_t>> expected;
  for (size_t i = 0; i < std::min<size_t>(6, ranked.size()); ++i) expected.insert(ranked[i].second);
  EXPECT_EQ(table.fgrams(), expected);
  EXPECT_TRUE(table.contains({1, 2, 3}));

  auto matches = table.longest_match(corpus);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 60; ++t) {
      int64_t longest = 0;
      for (int64_t n = 2; n <= std::min<int64_t>(3, t + 1); ++n) {
        std::vector<int64_t> suffix;
        for (int64_t i = t - n + 1; i <= t; ++i) suffix.push_back(corpus[b][i].item<int64_t>());
        if (expected.count(suffix)) longest = n;
      }
      EXPECT_EQ(matches[b][t].item<int64_t>(), longest) << b << "," << t;
    }

  const std::string file = ::testing::TempDir() + "/scone_fgrams.txt";
  table.save(file);
  EXPECT_EQ(FgramTable::load(file, 3).fgrams(), table.fgrams());
  std::remove(file.c_str());
}

LanguageModel scone_model() {
  auto config = parse_model_config(json::parse(R"({
    "vocab_size": 20, "d_model": 16, "n_heads": 2, "n_layers": 1,
    "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}],
    "embedding": "scone", "embedding_params": {"max_n": 3, "fgram_layers": 1}})"), "test");
  torch::manual_seed(2);
  LanguageModel model(config);
  model->scone()->set_table(FgramTable::from_corpus(synthetic_corpus(4, 80, 3), 3, 8));
  model->to(torch::kFloat64);
  return model;
}

TEST(Scone, EmbeddingRule) {
  auto model = scone_model();
  auto* scone = model->scone();
  ASSERT_NE(scone, nullptr);
  auto tokens = synthetic_corpus(2, 30, 9);
  auto embedded = scone->forward(tokens);
  auto plain = model->named_parameters()["embed_tokens.weight"].index({tokens});
  auto matches = scone->table().longest_match(tokens);
  ASSERT_GT(scone->matched_fraction(), 0.0);
  ASSERT_LT(scone->matched_fraction(), 1.0);
  std::map<std::vector<int64_t>, torch::Tensor> seen;  // f-gram -> its embedding
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 30; ++t) {
      const int64_t n = matches[b][t].item<int64_t>();
      if (n == 0) {
        EXPECT_TRUE(torch::equal(embedded[b][t], plain[b][t])) << b << "," << t;
        continue;
      }
      EXPECT_FALSE(torch::allclose(embedded[b][t], plain[b][t])) << b << "," << t;
      std::vector<int64_t> fgram;
      for (int64_t i = t - n + 1; i <= t; ++i) fgram.push_back(tokens[b][i].item<int64_t>());
      // A function of the f-gram alone: the same f-gram elsewhere, or embedded on its own, gives the same vector.
      auto alone = scone->forward(tokens[b].narrow(0, t - n + 1, n).unsqueeze(0))[0][n - 1];
      EXPECT_TRUE(torch::allclose(embedded[b][t], alone, 1e-12, 1e-12)) << b << "," << t;
      if (seen.count(fgram)) EXPECT_TRUE(torch::allclose(embedded[b][t], seen[fgram], 1e-12, 1e-12));
      seen[fgram] = embedded[b][t];
    }
}

TEST(Scone, ModelIsCausalDecodesLikeForwardAndCostsWhatItRuns) {
  auto model = scone_model();
  auto tokens = synthetic_corpus(2, 24, 11);
  {
    torch::NoGradGuard no_grad;
    FlopCounter counter;
    auto logits = model->forward(tokens);
    EXPECT_NEAR(counter.matmul_flops(), model->cost(CostShape{2, 24, 8}).matmul_flops, 1e-6);
    auto states = model->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
    for (int64_t t = 0; t < 24; ++t)
      EXPECT_TRUE(torch::allclose(model->step(tokens.select(1, t), states), logits.select(1, t), 1e-9, 1e-9)) << t;
    EXPECT_EQ(states.back().bytes(), 2 * 2 * 8);  // the last max_n − 1 = 2 tokens per sequence
    auto changed = tokens.clone();
    changed.narrow(1, 12, 12).fill_(1);
    auto logits2 = model->forward(changed);
    EXPECT_TRUE(torch::allclose(logits.narrow(1, 0, 12), logits2.narrow(1, 0, 12), 1e-12, 1e-12));
  }
  auto loss = model->forward(tokens).square().mean();
  loss.backward();
  for (const auto& item : model->named_parameters())
    if (item.key().find("fgram_model") != std::string::npos)
      EXPECT_TRUE(item.value().grad().defined() && item.value().grad().abs().sum().item<double>() > 0) << item.key();
  EXPECT_GT(model->embedding_parameter_count(), 20 * 16);
}

TEST(Scone, ConfigErrorsNameThePath) {
  auto parse = [](const std::string& text) { parse_model_config(json::parse(text), "spec.json"); };
  try {
    parse(R"({"pattern": [{"mixer": "mlp"}], "embedding": "bag"})");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("model.embedding"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("scone"), std::string::npos);
  }
  auto config = parse_model_config(json::parse(R"({"pattern": [{"mixer": "mlp"}], "embedding": "scone",
                                                   "embedding_params": {"max_m": 3}})"), "spec.json");
  EXPECT_THROW(LanguageModel model(config), RegistryError);
}


// The inference-time table: T[f] = A_F(f) for every f-gram, precomputed; an eval-mode forward then
// reads it instead of running A_F, gives the same embeddings and logits, and cost() drops A_F's work.
TEST(Scone, InferenceTableServesWhatAfComputes) {
  auto training_path = scone_model();
  auto config = parse_model_config(json::parse(R"({
    "vocab_size": 20, "d_model": 16, "n_heads": 2, "n_layers": 1,
    "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}],
    "embedding": "scone", "embedding_params": {"max_n": 3, "fgram_layers": 1, "inference_table": true}})"), "test");
  torch::manual_seed(2);
  LanguageModel model(config);
  model->scone()->set_table(FgramTable::from_corpus(synthetic_corpus(4, 80, 3), 3, 8));
  model->to(torch::kFloat64);
  model->eval();
  training_path->eval();
  auto* scone = model->scone();
  ASSERT_TRUE(scone->uses_inference_table());
  // Every row is A_F over that f-gram alone (the training path's rule), in V_f's order.
  const auto& table = scone->inference_table();
  ASSERT_EQ(table.size(0), scone->table().size());
  int64_t row = 0;
  for (const auto& fgram : scone->table().fgrams()) {
    auto alone = training_path->scone()->forward(torch::tensor(fgram, torch::kLong).unsqueeze(0))[0].select(0, fgram.size() - 1);
    EXPECT_TRUE(torch::allclose(table[row++], alone, 1e-12, 1e-12)) << row;
  }
  torch::NoGradGuard no_grad;
  auto tokens = synthetic_corpus(2, 24, 11);
  EXPECT_TRUE(torch::allclose(model->forward(tokens), training_path->forward(tokens), 1e-12, 1e-12));
  EXPECT_GT(scone->matched_fraction(), 0.0);
  auto states = model->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
  auto logits = model->forward(tokens);
  for (int64_t t = 0; t < 24; ++t)
    EXPECT_TRUE(torch::allclose(model->step(tokens.select(1, t), states), logits.select(1, t), 1e-9, 1e-9)) << t;
  // A lookup issues no A_F products; the training path still pays them.
  FlopCounter counter;
  model->forward(tokens);
  EXPECT_NEAR(counter.matmul_flops(), model->cost(CostShape{2, 24, 8}).matmul_flops, 1e-6);
  EXPECT_LT(model->cost(CostShape{2, 24, 8}).flops, training_path->cost(CostShape{2, 24, 8}).flops);
  EXPECT_DOUBLE_EQ(scone->inference_table_bytes(8), scone->table().size() * 16.0 * 8);
  // Changed weights make the table stale: it is rebuilt from them.
  auto before = table.clone();
  model->named_parameters()["scone.fgram_model.1.mlp.down_proj.weight"].mul_(2.0);
  EXPECT_GT((scone->inference_table() - before).abs().max().item<double>(), 1e-6);
  model->train();
  EXPECT_FALSE(scone->uses_inference_table()) << "training runs A_F";
}

}  // namespace
}  // namespace mixlab
