// Presets (experiments/presets/*.json): every preset parses, and the released SCOUT-paper
// configurations have the parameter counts of docs/weights.md, "Presets".

#include "harness/config.h"
#include "harness/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

json raw_preset(const std::string& name) { return read_json_file(presets_dir() + "/" + name + ".json"); }

// Parameters of the model a config describes, without building the whole model:
//
//   V·d (the embedding; twice when the LM head is untied) + d (final norm)
//   + n_layers · Σ_{sublayers s} ( d (its RMSNorm) + parameters of s built at the model's width )
//
// Each sublayer is built once, at full width, so the count is the modules' own, not a formula
// that could drift from them; CompositionMatchesTheBuiltModel checks the sum itself against
// LanguageModel::parameter_count.
int64_t composed_parameter_count(const ModelConfig& config) {
  torch::NoGradGuard no_grad;
  std::map<std::string, int64_t> counted;  // a sublayer repeated in the pattern is built once
  int64_t per_repeat = 0;
  for (const auto& sublayer : config.pattern) {
    std::string key = sublayer.mixer;
    for (const auto& [param, value] : sublayer.params) key += " " + param + "=" + format_param_value(value);
    if (!counted.count(key)) {
      const MixerContext context{config.d_model, config.n_heads, 0, config.n_layers, config.init_std};
      const auto mixer = Registry::global().create(sublayer.mixer, context, sublayer.params);
      int64_t count = 0;
      for (const auto& p : mixer->parameters()) count += p.numel();
      counted[key] = count;
    }
    per_repeat += config.d_model + counted[key];
  }
  const int64_t embeddings = config.vocab_size * config.d_model * (config.tie_embeddings ? 1 : 2);
  return config.n_layers * per_repeat + config.d_model + embeddings;
}

const std::vector<std::string> kExpectedPresets = {
    "transformer",      "swa",           "mamba",           "samba",
    "scout-swa",        "scout-mamba",   "scout-swa-470m",  "scout-swa-1.57b",
    "scout-mamba-430m", "scout-mamba-1.59b", "qwen2-340m",  "qwen2-1.36b",
    "qwen2-alternate-swa-366m", "mamba-546m", "mamba-1.3b"};

TEST(Presets, TheDocumentedPresetsExist) {
  const auto names = preset_names();
  for (const auto& name : kExpectedPresets)
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
}

TEST(Presets, EveryPresetParses) {
  for (const auto& name : preset_names()) {
    SCOPED_TRACE(name);
    const json raw = raw_preset(name);
    ASSERT_TRUE(raw.contains("description") && raw["description"].is_string());
    EXPECT_GT(raw["description"].get<std::string>().size(), 20u);
    EXPECT_EQ(raw.value("name", ""), name) << "the name field should match the file name";
    try {
      const ModelConfig config = parse_model_config(json{{"preset", name}}, "test");
      EXPECT_EQ(config.name, name);
      EXPECT_EQ(config.pattern.size(), raw["pattern"].size());
    } catch (const ConfigError& error) {
      ADD_FAILURE() << error.what();
    }
  }
}

struct PublishedCount {
  std::string preset;
  double millions;  // docs/weights.md, "Presets"
  int decimals;     // as printed there
};

TEST(Presets, ReleasedConfigurationsHaveThePublishedParameterCounts) {
  const std::vector<PublishedCount> published = {
      {"scout-swa-470m", 469.6, 1},   {"scout-swa-1.57b", 1569.8, 1}, {"scout-mamba-430m", 430.8, 1},
      {"scout-mamba-1.59b", 1592.7, 1}, {"qwen2-340m", 341, 0},       {"qwen2-1.36b", 1364, 0},
      {"qwen2-alternate-swa-366m", 367, 0}, {"mamba-546m", 546, 0},   {"mamba-1.3b", 1335, 0},
  };
  for (const auto& expected : published) {
    SCOPED_TRACE(expected.preset);
    const ModelConfig config = parse_model_config(json{{"preset", expected.preset}}, "test");
    const int64_t count = composed_parameter_count(config);
    const double scale = std::pow(10.0, expected.decimals);
    EXPECT_EQ(std::llround(count / 1e6 * scale), std::llround(expected.millions * scale))
        << expected.preset << " has " << count << " parameters";
  }
}

// The composed count equals the count of the model LanguageModel builds, for every preset's
// pattern at a small width (so that the big presets are built too, shrunk).
TEST(Presets, CompositionMatchesTheBuiltModel) {
  for (const auto& name : preset_names()) {
    SCOPED_TRACE(name);
    json model = raw_preset(name);
    model.erase("description");
    model["vocab_size"] = 50;
    model["d_model"] = 32;
    model["n_heads"] = 2;
    model["n_layers"] = 2;
    for (auto& sublayer : model["pattern"]) {
      if (!sublayer.is_object()) continue;
      if (sublayer.contains("hidden")) sublayer["hidden"] = 40;
      if (sublayer.contains("dt_rank")) sublayer["dt_rank"] = 4;
      if (sublayer.contains("window")) sublayer["window"] = 8;
    }
    const ModelConfig config = parse_model_config(model, name + " (shrunk)");
    LanguageModel built(config);
    EXPECT_EQ(built->parameter_count(), composed_parameter_count(config));
  }
}

}  // namespace
}  // namespace mixlab
