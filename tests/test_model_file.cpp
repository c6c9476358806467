// Models in and out (harness/model_file.h, harness/hf_layout.h, harness/checkpoint.h):
//   * the Hugging Face names are the ones transformers' modeling files give their modules
//     (Qwen2ForCausalLM: model.layers.N.self_attn.q_proj.weight ...; MambaForCausalLM:
//     backbone.layers.N.mixer.in_proj.weight ...), written out here by hand from those files;
//   * mixlab -> file -> mixlab gives bit-equal logits, in both namings, for attention, SWA and
//     Mamba stacks, and a folder with only an HF config.json (no mixlab metadata) loads too;
//   * checkpoints keep AdamW's state by parameter name: a model and optimiser built afresh (other
//     addresses) continue exactly as the saved ones would.

#include "harness/checkpoint.h"
#include "harness/config.h"
#include "harness/hf_layout.h"
#include "harness/model_file.h"
#include "harness/safetensors.h"
#include "tests/temp_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;
using mixlab::testing::TempDir;

json small_model(const std::string& preset) {
  json model = {{"preset", preset}, {"vocab_size", 48}, {"d_model", 16}, {"n_layers", 2}};
  if (preset != "mamba") model["n_heads"] = 2;
  return resolve_model_json(model, "test");
}

// Built as a sweep point builds it: from the model object, then its init_from loaded.
LanguageModel build(const json& model_json, uint64_t seed) {
  torch::manual_seed(seed);
  LanguageModel model(parse_model_config(model_json, "test"));
  load_initial_weights(*model, model_json);
  return model;
}

torch::Tensor logits_of(LanguageModel& model) {
  torch::manual_seed(99);
  const auto tokens = torch::randint(model->config().vocab_size, {2, 12}, torch::kInt64);  // [2, 12]
  torch::NoGradGuard no_grad;
  return model->forward(tokens);  // [2, 12, vocab]
}

std::set<std::string> names_of(const TensorMap& tensors) {
  std::set<std::string> names;
  for (const auto& item : tensors) names.insert(item.first);
  return names;
}

TEST(HfLayout, Qwen2NamesAreTransformersNames) {
  LanguageModel model = build(small_model("transformer"), 1);
  const TensorMap hf = to_hf_weights(module_weights(*model), model->config(), "qwen2");
  // Qwen2ForCausalLM (transformers/models/qwen2/modeling_qwen2.py): model.embed_tokens,
  // model.layers[i].{input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
  // mlp.{gate,up,down}_proj}, model.norm; q/k/v have biases, o_proj none; lm_head tied here.
  std::set<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight"};
  for (const std::string layer : {"model.layers.0.", "model.layers.1."}) {
    for (const char* name : {"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
                             "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
                             "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
                             "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"})
      expected.insert(layer + name);
  }
  EXPECT_EQ(names_of(hf), expected);
  EXPECT_EQ(hf.at("model.layers.1.self_attn.k_proj.bias").sizes(), torch::IntArrayRef({16}));
  EXPECT_EQ(hf.at("model.layers.1.mlp.down_proj.weight").sizes(), torch::IntArrayRef({16, 48}));  // [d, I]
  EXPECT_TRUE(torch::equal(hf.at("model.layers.1.self_attn.o_proj.weight"),
                           module_weights(*model).at("layers.2.attention.o_proj.weight")));
  const json config = hf_config_json(model->config(), module_weights(*model), "qwen2");
  EXPECT_EQ(config["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(config["intermediate_size"], 48);
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["use_sliding_window"], false);
}

TEST(HfLayout, MambaNamesAreTransformersNames) {
  LanguageModel model = build(small_model("mamba"), 1);
  const TensorMap hf = to_hf_weights(module_weights(*model), model->config(), "mamba");
  // MambaForCausalLM (transformers/models/mamba/modeling_mamba.py): backbone.embeddings,
  // backbone.layers[i].{norm, mixer.{in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj}},
  // backbone.norm_f.
  std::set<std::string> expected = {"backbone.embeddings.weight", "backbone.norm_f.weight"};
  for (const std::string layer : {"backbone.layers.0.", "backbone.layers.1."})
    for (const char* name : {"norm.weight", "mixer.in_proj.weight", "mixer.conv1d.weight", "mixer.conv1d.bias",
                             "mixer.x_proj.weight", "mixer.dt_proj.weight", "mixer.dt_proj.bias", "mixer.A_log",
                             "mixer.D", "mixer.out_proj.weight"})
      expected.insert(layer + name);
  EXPECT_EQ(names_of(hf), expected);
  const json config = hf_config_json(model->config(), module_weights(*model), "mamba");
  EXPECT_EQ(config["architectures"][0], "MambaForCausalLM");
  EXPECT_EQ(config["intermediate_size"], 32);  // E = expand·d
  EXPECT_EQ(config["time_step_rank"], 1);      // ⌈16/16⌉
  EXPECT_EQ(config["conv_kernel"], 4);
  // transformers' MambaConfig holds expand as an integer and rejects 2.0 (transformers 5.17).
  EXPECT_TRUE(config["expand"].is_number_integer()) << config["expand"];
  EXPECT_EQ(config["expand"], 2);
}

TEST(HfLayout, MambaWithAFractionalExpandIsRefusedByName) {
  json model_json = small_model("mamba");
  model_json["pattern"][0]["expand"] = 1.5;  // E = 24 for d = 16: no integer HF expand
  LanguageModel model = build(model_json, 1);
  try {
    hf_config_json(model->config(), module_weights(*model), "mamba");
    FAIL() << "a fractional expand was exported";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("expand"), std::string::npos) << error.what();
  }
}

// Export with `names`, load into a model built from another seed, compare logits.
void expect_round_trip(const std::string& preset, const std::string& names, const std::string& arch = "qwen2") {
  SCOPED_TRACE(preset + " / " + names + " / " + arch);
  const TempDir dir("model_file_" + preset + "_" + names + "_" + arch);
  const json model_json = small_model(preset);
  LanguageModel original = build(model_json, 1);
  export_model(*original, model_json, dir.file("out"), {names, arch, "float32"});
  json reload_json = model_json_of(dir.file("out"));
  EXPECT_EQ(reload_json, model_json);
  LanguageModel fresh = build(reload_json, 2);
  const auto before = logits_of(fresh);
  ASSERT_FALSE(torch::equal(before, logits_of(original)));  // another seed, other weights
  reload_json["init_from"] = dir.file("out");
  LanguageModel loaded = build(reload_json, 2);
  EXPECT_TRUE(torch::equal(logits_of(loaded), logits_of(original)));
}

TEST(ModelFile, RoundTripGivesEqualLogits) {
  for (const std::string names : {"mixlab", "hf"}) {
    expect_round_trip("transformer", names);
    expect_round_trip("swa", names);
    expect_round_trip("mamba", names);
  }
  expect_round_trip("transformer", "hf", "llama");
  expect_round_trip("scout-swa", "mixlab");  // a pattern with no HF layout still round-trips by mixlab name
}

// A folder as transformers' save_pretrained would leave it: HF names, an HF config.json, no
// mixlab metadata anywhere.
void write_foreign_folder(const LanguageModel& model, const std::string& arch, const std::string& dir) {
  fs::create_directories(dir);
  const TensorMap weights = module_weights(*model);
  write_safetensors(dir + "/model.safetensors", to_hf_weights(weights, model->config(), arch), {{"format", "pt"}});
  std::ofstream(dir + "/config.json") << hf_config_json(model->config(), weights, arch).dump(2);
}

TEST(ModelFile, HuggingFaceFolderWithoutMixlabMetadataLoads) {
  for (const std::string preset : {"transformer", "swa", "mamba"}) {
    SCOPED_TRACE(preset);
    const TempDir dir("model_file_foreign_" + preset);
    const json model_json = small_model(preset);
    LanguageModel original = build(model_json, 3);
    const std::string arch = hf_architecture(original->config());
    write_foreign_folder(original, arch, dir.file("hf"));
    json translated = model_json_of(dir.file("hf"));
    translated["init_from"] = dir.file("hf");
    LanguageModel loaded = build(translated, 4);
    EXPECT_EQ(loaded->parameter_count(), original->parameter_count());
    EXPECT_TRUE(torch::equal(logits_of(loaded), logits_of(original)));
  }
}

TEST(ModelFile, WhatMixlabCannotRepresentIsRefusedByName) {
  const TempDir dir("model_file_refused");
  LanguageModel model = build(small_model("transformer"), 1);
  TensorMap hf = to_hf_weights(module_weights(*model), model->config(), "qwen2");
  hf["model.layers.1.self_attn.v_proj.bias"] = torch::full({16}, 0.5);
  write_safetensors(dir.file("biased.safetensors"), hf);
  try {
    load_model_file(*model, dir.file("biased.safetensors"));
    FAIL() << "a non-zero bias was accepted";
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("model.layers.1.self_attn.v_proj.bias"), std::string::npos) << error.what();
  }
  // Grouped K/V heads in an HF config, and a mixed pattern asked for an HF layout.
  json config = hf_config_json(model->config(), module_weights(*model), "qwen2");
  config["num_key_value_heads"] = 1;
  EXPECT_THROW(model_json_from_hf_config(config, "config.json"), ConfigError);
  LanguageModel samba = build(small_model("samba"), 1);
  EXPECT_THROW(hf_architecture(samba->config()), ConfigError);
}

// ---------------------------------------------------------------- checkpoints

struct TrainingRun {
  LanguageModel model;
  std::unique_ptr<FlatAdamW> optimizer;
};

TrainingRun make_run(const json& model_json, uint64_t seed) {
  TrainingRun run{build(model_json, seed), nullptr};
  std::vector<std::pair<std::string, torch::Tensor>> parameters;
  for (const auto& item : run.model->named_parameters()) parameters.emplace_back(item.key(), item.value());
  run.optimizer = std::make_unique<FlatAdamW>(parameters, AdamWSettings{});
  run.optimizer->set_learning_rate(1e-2);
  return run;
}

void train_step(TrainingRun& run, int64_t step) {
  torch::manual_seed(1000 + step);
  const auto tokens = torch::randint(run.model->config().vocab_size, {2, 9}, torch::kInt64);
  run.optimizer->zero_grad();
  const auto logits = run.model->forward(tokens.narrow(1, 0, 8));
  torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), tokens.narrow(1, 1, 8).reshape({-1}))
      .backward();
  run.optimizer->step();
}

TEST(Checkpoint, OptimizerStateIsKeptByParameterName) {
  const TempDir dir("checkpoint_by_name");
  const json model_json = small_model("transformer");
  TrainingRun saved = make_run(model_json, 5);
  for (int64_t step = 1; step <= 3; ++step) train_step(saved, step);
  save_training_checkpoint(dir.file("checkpoint.safetensors"), *saved.model, *saved.optimizer, {3, 1.5, "fp"},
                           model_json);

  // The file names every moment after its parameter.
  const TensorMap stored = read_safetensors(dir.file("checkpoint.safetensors"));
  EXPECT_EQ(stored.at("optimizer.step.layers.0.attention.q_proj.weight").item<int64_t>(), 3);
  EXPECT_EQ(stored.at("optimizer.exp_avg_sq.norm.weight").sizes(), torch::IntArrayRef({16}));

  TrainingRun resumed = make_run(model_json, 6);  // other weights, other addresses, empty optimiser
  const CheckpointState state = load_training_checkpoint(dir.file("checkpoint.safetensors"), *resumed.model,
                                                         *resumed.optimizer);
  EXPECT_EQ(state.step, 3);
  EXPECT_EQ(state.fingerprint, "fp");
  train_step(saved, 4);
  train_step(resumed, 4);
  const TensorMap a = module_weights(*saved.model), b = module_weights(*resumed.model);
  for (const auto& [name, tensor] : a) EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;

  // The checkpoint is a model file too: export reads its weights by name.
  const TensorMap weights = read_model_weights(dir.file("checkpoint.safetensors"), saved.model->config());
  EXPECT_EQ(names_of(weights), names_of(module_weights(*saved.model)));
  EXPECT_EQ(model_json_of(dir.path.string() + "/checkpoint.safetensors"), model_json);
}

}  // namespace
}  // namespace mixlab
