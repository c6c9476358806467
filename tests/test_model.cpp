// The language model assembled from a block pattern, and model configs read from JSON.

#include "harness/config.h"
#include "harness/flop_counter.h"
#include "harness/model.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

ModelConfig tiny_transformer() {
  return parse_model_config(json::parse(R"({
    "vocab_size": 50, "d_model": 16, "n_heads": 2, "n_layers": 3,
    "pattern": [{"mixer": "attention"}, {"mixer": "mlp", "hidden": 24}]})"), "test");
}

TEST(Model, ForwardShapeAndParameterCount) {
  LanguageModel model(tiny_transformer());
  auto tokens = torch::randint(0, 50, {2, 9}, torch::kLong);
  auto logits = model->forward(tokens);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 9, 50}));
  // embedding 50·16 (tied head); per layer: 2 norms of 16, attention 4·16², mlp 3·16·24; final norm 16.
  const int64_t expected = 50 * 16 + 3 * (2 * 16 + 4 * 16 * 16 + 3 * 16 * 24) + 16;
  EXPECT_EQ(model->parameter_count(), expected);
  EXPECT_EQ(model->embedding_parameter_count(), 50 * 16);
}

TEST(Model, UntiedHeadAddsItsWeights) {
  auto config = tiny_transformer();
  config.tie_embeddings = false;
  LanguageModel model(config);
  EXPECT_EQ(model->embedding_parameter_count(), 2 * 50 * 16);
}

TEST(Model, StepDecodingEqualsForward) {
  torch::manual_seed(3);
  LanguageModel model(tiny_transformer());
  model->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 50, {2, 7}, torch::kLong);
  auto logits = model->forward(tokens);
  ASSERT_TRUE(model->has_step());
  auto states = model->initial_states(2, torch::TensorOptions().dtype(torch::kFloat64));
  for (int64_t t = 0; t < 7; ++t) {
    auto step_logits = model->step(tokens.select(1, t), states);
    EXPECT_TRUE(torch::allclose(step_logits, logits.select(1, t), 1e-9, 1e-9)) << "t=" << t;
  }
}

TEST(Model, CostMatchesCountedMatrixProducts) {
  LanguageModel model(tiny_transformer());
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 50, {2, 9}, torch::kLong);
  FlopCounter counter;
  model->forward(tokens);
  EXPECT_NEAR(counter.matmul_flops(), model->cost(CostShape{2, 9, 4}).matmul_flops, 1e-6);
}

TEST(Model, CausalLanguageModel) {
  torch::manual_seed(5);
  LanguageModel model(tiny_transformer());
  model->to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  auto tokens = torch::randint(0, 50, {1, 12}, torch::kLong);
  auto changed = tokens.clone();
  changed.narrow(1, 6, 6).random_(0, 50);
  auto a = model->forward(tokens).narrow(1, 0, 6), b = model->forward(changed).narrow(1, 0, 6);
  EXPECT_TRUE(torch::allclose(a, b, 1e-12, 1e-12));
}

std::string config_error(const std::string& text) {
  try {
    parse_model_config(parse_json_text(text, "spec.json"), "spec.json");
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

// model.embedding_dropout zeroes embedding elements while training only: in eval the model equals
// the same weights without it; in training two forwards differ from each other and from it.
TEST(Model, EmbeddingDropoutActsOnlyWhileTraining) {
  auto with = tiny_transformer();
  with.embedding_dropout = 0.5;
  torch::manual_seed(3);
  LanguageModel dropped(with);
  torch::manual_seed(3);
  LanguageModel plain(tiny_transformer());
  const auto tokens = torch::randint(0, 50, {2, 9}, torch::kLong);
  dropped->eval();
  plain->eval();
  EXPECT_TRUE(torch::equal(dropped->forward(tokens), plain->forward(tokens)));
  dropped->train();
  plain->train();
  const auto first = dropped->forward(tokens), second = dropped->forward(tokens), reference = plain->forward(tokens);
  EXPECT_FALSE(torch::allclose(first, second));
  EXPECT_FALSE(torch::allclose(first, reference));
  EXPECT_TRUE(torch::equal(reference, plain->forward(tokens))) << "no dropout: training forwards are deterministic";
  EXPECT_NE(config_error(R"({"d_model": 16, "embedding_dropout": 1, "pattern": ["mlp"]})")
                .find("at model.embedding_dropout: is 1, which drops every embedding; valid: [0, 1)"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"d_model": 16, "embedding_dropout": -0.1, "pattern": ["mlp"]})")
                .find("at model.embedding_dropout: is outside the valid range"),
            std::string::npos);
}

TEST(ModelConfig, ErrorsNameTheFileThePathAndTheValidChoices) {
  EXPECT_EQ(config_error(R"({"d_model": 16, "pattern": [{"mixer": "atention"}]})").rfind(
                "spec.json: at model.pattern[0].mixer: unknown mixer 'atention'; valid: ", 0), 0u);
  EXPECT_NE(config_error(R"({"d_modle": 16, "pattern": ["mlp"]})").find("at model.d_modle: unknown key"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"d_model": "big", "pattern": ["mlp"]})").find("at model.d_model: must be an integer"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"d_model": 16, "pattern": [{"mixer": "mlp", "hiden": 3}]})")
                .find("at model.pattern[0]: unknown parameter 'hiden' for mixer 'mlp'; valid: hidden"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"d_model": 16, "pattern": []})").find("at model.pattern: must be a non-empty list"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"d_model": 18, "n_heads": 4, "pattern": ["mlp"]})").find("divisible"),
            std::string::npos);
  EXPECT_NE(config_error(R"({"preset": "no-such-preset"})").find("unknown preset 'no-such-preset'"),
            std::string::npos);
  // A name longer than the file system allows is an unknown preset, not a file-system exception.
  const std::string long_name(5000, 'x');
  EXPECT_NE(config_error("{\"preset\": \"" + long_name + "\"}").find("unknown preset"), std::string::npos);
  EXPECT_NE(config_error(R"({"preset": "../presets/transformer"})").find("unknown preset"), std::string::npos);
  EXPECT_NE(config_error("{\"d_model\": 16,\n \"pattern\": [}").find("malformed JSON at line 2"), std::string::npos);
}

TEST(ModelConfig, CommentsMixerParamsAndDottedSets) {
  auto model = parse_json_text(R"({
    // a comment
    "d_model": 16, "n_heads": 2,
    "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}, {"mixer": "mlp"}],
    "mixer_params": {"mlp": {"hidden": 40}} /* applies to every mlp */ })", "x.json");
  apply_dotted_set(model, "pattern.0.rope_theta=1000000");
  apply_dotted_set(model, "n_layers=3");
  auto config = parse_model_config(model, "x.json");
  EXPECT_EQ(config.n_layers, 3);
  EXPECT_EQ(std::get<int64_t>(config.pattern[1].params.at("hidden")), 40);
  EXPECT_EQ(std::get<int64_t>(config.pattern[2].params.at("hidden")), 40);
  EXPECT_DOUBLE_EQ(std::get<int64_t>(config.pattern[0].params.at("rope_theta")), 1e6);
}

// The shipped specs write sublayers as strings; mixer_params applies to them as to objects, and
// sublayers of other mixers keep their short form.
TEST(ModelConfig, MixerParamsApplyToStringSublayers) {
  const json model = json::parse(R"({"d_model": 16, "n_heads": 2, "pattern": ["attention", "mlp"],
                                     "mixer_params": {"mlp": {"hidden": 24}}})");
  const json resolved = resolve_model_json(model, "x.json", "model");
  EXPECT_EQ(resolved["pattern"][0], json("attention"));
  EXPECT_EQ(resolved["pattern"][1], json::parse(R"({"mixer": "mlp", "hidden": 24})"));
  const auto config = parse_model_config(model, "x.json");
  EXPECT_EQ(std::get<int64_t>(config.pattern[1].params.at("hidden")), 24);
  // A mixer the pattern does not use is still an error.
  const json unused = json::parse(R"({"d_model": 16, "n_heads": 2, "pattern": ["attention", "mlp"],
                                      "mixer_params": {"swa": {"window": 4}}})");
  EXPECT_THROW(resolve_model_json(unused, "x.json", "model"), ConfigError);
}


TEST(ModelLabel, NamesPresetsAndOtherwiseTheTokenMixers) {
  EXPECT_EQ(model_label(json::parse(R"({"name": "scout-swa", "pattern": [{"mixer": "swa", "window": 64},
      {"mixer": "mlp"}, {"mixer": "checkpoint_attention", "segment_size": 16}]})")), "scout-swa W=64 S=16");
  EXPECT_EQ(model_label(json::parse(R"({"pattern": [{"mixer": "fft_conv"}, "mlp", {"mixer": "fft_conv"}]})")),
            "fft_conv");
  EXPECT_EQ(model_label(json::parse(R"({"pattern": [{"mixer": "mamba"}, "mlp", {"mixer": "swa", "window": 8}]})")),
            "mamba+swa W=8");
  EXPECT_EQ(model_label(json::parse(R"({"pattern": [{"mixer": "checkpoint_attention", "summary": "mean"},
      {"mixer": "fft_conv", "num_filters": 4, "dynamic": true}]})")), "checkpoint_attention+fft_conv summary=mean K=4");
  EXPECT_EQ(model_label(json::parse(R"({"pattern": [{"mixer": "checkpoint_attention", "summary": "token"},
      {"mixer": "fft_conv", "num_filters": 1}]})")), "checkpoint_attention+fft_conv");  // defaults unnamed
}

}  // namespace
}  // namespace mixlab
