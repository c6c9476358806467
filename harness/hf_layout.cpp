#include "harness/hf_layout.h"

#include "core/text.h"

#include <cmath>

namespace mixlab {
namespace {

// "layers.12.mlp.up_proj.weight" -> {12, "mlp.up_proj.weight"}; false for other names.
bool split_layer(const std::string& name, const std::string& prefix, int64_t& index, std::string& rest) {
  if (!starts_with(name, prefix)) return false;
  const auto dot = name.find('.', prefix.size());
  if (dot == std::string::npos) return false;
  try {
    index = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  } catch (const std::logic_error&) {
    return false;
  }
  rest = name.substr(dot + 1);
  return true;
}

bool is_attention(const std::string& mixer) { return mixer == "attention" || mixer == "swa"; }

// The attention stack's mixer ("attention" or "swa") or the mamba stack's ("mamba").
std::string stack_mixer(const ModelConfig& config) { return config.pattern.front().mixer; }

// ---- mixlab name -> HF name
std::string hf_name(const std::string& name, const std::string& architecture) {
  const bool mamba = architecture == "mamba";
  if (name == "embed_tokens.weight") return mamba ? "backbone.embeddings.weight" : "model.embed_tokens.weight";
  if (name == "norm.weight") return mamba ? "backbone.norm_f.weight" : "model.norm.weight";
  if (name == "lm_head.weight") return name;
  int64_t i = 0;
  std::string rest;
  if (!split_layer(name, "layers.", i, rest)) return name;
  if (mamba) {
    if (starts_with(rest, "mamba.")) rest = "mixer." + rest.substr(6);
    return "backbone.layers." + std::to_string(i) + "." + rest;
  }
  const int64_t layer = i / 2;
  if (rest == "norm.weight") rest = i % 2 == 0 ? "input_layernorm.weight" : "post_attention_layernorm.weight";
  else if (starts_with(rest, "attention.")) rest = "self_attn." + rest.substr(10);
  else if (starts_with(rest, "swa.")) rest = "self_attn." + rest.substr(4);
  return "model.layers." + std::to_string(layer) + "." + rest;
}

// ---- HF name -> mixlab name ("" when the name has no mixlab counterpart)
std::string mixlab_name(const std::string& name, const std::string& layout, const std::string& mixer) {
  int64_t l = 0;
  std::string rest;
  if (layout == "mamba") {
    if (name == "backbone.embeddings.weight") return "embed_tokens.weight";
    if (name == "backbone.norm_f.weight") return "norm.weight";
    if (name == "lm_head.weight") return name;
    if (!split_layer(name, "backbone.layers.", l, rest)) return "";
    if (starts_with(rest, "mixer.")) rest = "mamba." + rest.substr(6);
    return "layers." + std::to_string(l) + "." + rest;
  }
  if (name == "model.embed_tokens.weight") return "embed_tokens.weight";
  if (name == "model.norm.weight") return "norm.weight";
  if (name == "lm_head.weight") return name;
  if (!split_layer(name, "model.layers.", l, rest)) return "";
  const std::string attention = "layers." + std::to_string(2 * l) + ".", mlp = "layers." + std::to_string(2 * l + 1) + ".";
  if (rest == "input_layernorm.weight") return attention + "norm.weight";
  if (rest == "post_attention_layernorm.weight") return mlp + "norm.weight";
  if (starts_with(rest, "self_attn.")) return attention + mixer + "." + rest.substr(10);
  if (starts_with(rest, "mlp.")) return mlp + rest;
  return "";
}

const json& require(const json& config, const std::string& key, const std::string& file) {
  if (!config.contains(key) || config[key].is_null()) throw ConfigError(file, key, "is missing");
  return config[key];
}

// A field that must hold `expected` (or be absent) for mixlab to represent the model.
void require_value(const json& config, const std::string& key, const json& expected, const std::string& file,
                   const std::string& why) {
  if (config.contains(key) && !config[key].is_null() && config[key] != expected)
    throw ConfigError(file, key, "is " + config[key].dump() + "; mixlab can only load " + expected.dump() + " (" + why + ")");
}

double rope_theta_of(const json& config) {
  if (config.contains("rope_theta") && config["rope_theta"].is_number()) return config["rope_theta"].get<double>();
  if (config.contains("rope_parameters") && config["rope_parameters"].is_object())
    return config["rope_parameters"].value("rope_theta", 10000.0);
  return 10000.0;
}

json attention_model_from_hf(const json& c, const std::string& file) {
  const std::string type = c["model_type"];
  const int64_t d = require(c, "hidden_size", file).get<int64_t>();
  const int64_t heads = require(c, "num_attention_heads", file).get<int64_t>();
  require_value(c, "num_key_value_heads", heads, file, "mixlab's attention has one K/V head per query head");
  require_value(c, "head_dim", d / heads, file, "head_dim = hidden_size / num_attention_heads in mixlab");
  require_value(c, "hidden_act", "silu", file, "mixlab's MLP is SwiGLU");
  require_value(c, "attention_bias", false, file, "mixlab's attention has no biases");
  require_value(c, "mlp_bias", false, file, "mixlab's MLP has no biases");
  require_value(c, "rope_scaling", json(), file, "mixlab's RoPE is unscaled");
  json attention = {{"mixer", "attention"}, {"rope_theta", rope_theta_of(c)}};
  if (c.value("use_sliding_window", false)) {
    const int64_t layers = require(c, "num_hidden_layers", file).get<int64_t>();
    bool all_sliding = c.value("max_window_layers", 0) == 0;
    if (c.contains("layer_types") && c["layer_types"].is_array())
      all_sliding = c["layer_types"] == json(std::vector<std::string>(layers, "sliding_attention"));
    if (!all_sliding)
      throw ConfigError(file, "max_window_layers", "slides on some layers only; mixlab exports and loads a sliding "
                                                   "window on every layer (max_window_layers 0)");
    attention = {{"mixer", "swa"}, {"window", require(c, "sliding_window", file)}, {"rope_theta", rope_theta_of(c)}};
  }
  return {{"name", type},
          {"vocab_size", require(c, "vocab_size", file)},
          {"d_model", d},
          {"n_heads", heads},
          {"n_layers", require(c, "num_hidden_layers", file)},
          {"pattern", json::array({attention, {{"mixer", "mlp"}, {"hidden", require(c, "intermediate_size", file)}}})},
          {"tie_embeddings", c.value("tie_word_embeddings", false)},
          {"norm_eps", c.value("rms_norm_eps", 1e-6)},
          {"init_std", c.value("initializer_range", 0.02)}};
}

json mamba_model_from_hf(const json& c, const std::string& file) {
  require_value(c, "use_bias", false, file, "mixlab's Mamba projections have no biases");
  require_value(c, "use_conv_bias", true, file, "mixlab's Mamba convolution has a bias");
  require_value(c, "hidden_act", "silu", file, "mixlab's Mamba gate is SiLU");
  const int64_t d = require(c, "hidden_size", file).get<int64_t>();
  json mamba = {{"mixer", "mamba"},
                {"d_state", c.value("state_size", 16)},
                {"d_conv", c.value("conv_kernel", 4)},
                {"expand", c.value("expand", 2.0)}};
  const json rank = c.value("time_step_rank", json("auto"));
  mamba["dt_rank"] = rank.is_number() ? rank.get<int64_t>() : (d + 15) / 16;
  return {{"name", "mamba"},
          {"vocab_size", require(c, "vocab_size", file)},
          {"d_model", d},
          {"n_heads", 1},
          {"n_layers", require(c, "num_hidden_layers", file)},
          {"pattern", json::array({mamba})},
          {"tie_embeddings", c.value("tie_word_embeddings", true)},
          {"norm_eps", c.value("layer_norm_epsilon", 1e-5)},
          {"init_std", c.value("initializer_range", 0.1)}};
}

}  // namespace

std::string hf_architecture(const ModelConfig& config, const std::string& preferred) {
  if (!preferred.empty() && preferred != "qwen2" && preferred != "llama")
    throw ConfigError("--hf-arch", "", "'" + preferred + "' is not an HF architecture mixlab writes; valid: qwen2, llama");
  if (config.embedding != "standard")
    throw ConfigError("model", "embedding", "'" + config.embedding + "' has no Hugging Face layout; use --names mixlab");
  const auto& p = config.pattern;
  if (p.size() == 1 && p[0].mixer == "mamba") return "mamba";
  if (p.size() == 2 && is_attention(p[0].mixer) && p[1].mixer == "mlp") {
    const MixerParams mlp = Registry::global().resolve("mlp", p[1].params);
    if (mlp.text("activation") != "swiglu")
      throw ConfigError("model", "pattern[1].activation", "is " + mlp.text("activation") + "; HF Qwen2/Llama MLPs are SwiGLU");
    if (p[0].mixer == "swa" && preferred == "llama")
      throw ConfigError("--hf-arch", "", "llama has no sliding window; export an swa stack as qwen2");
    return preferred.empty() ? "qwen2" : preferred;
  }
  std::string mixers;
  for (const auto& s : p) mixers += (mixers.empty() ? "" : ", ") + s.mixer;
  throw ConfigError("model", "pattern", "[" + mixers + "] has no Hugging Face layout (only [attention, mlp], "
                                        "[swa, mlp] and [mamba] stacks do); use --names mixlab");
}

TensorMap to_hf_weights(const TensorMap& weights, const ModelConfig& config, const std::string& architecture) {
  TensorMap out;
  for (const auto& [name, tensor] : weights) out[hf_name(name, architecture)] = tensor;
  if (architecture == "qwen2") {  // Qwen2's q/k/v projections carry biases; mixlab's are zero
    for (int64_t layer = 0; layer < config.n_layers; ++layer)
      for (const char* projection : {"q_proj", "k_proj", "v_proj"}) {
        const auto& weight = out.at("model.layers." + std::to_string(layer) + ".self_attn." + projection + ".weight");
        out["model.layers." + std::to_string(layer) + ".self_attn." + projection + ".bias"] =
            torch::zeros({weight.size(0)}, weight.options());
      }
  }
  return out;
}

std::string detect_weight_layout(const TensorMap& tensors) {
  if (tensors.count("backbone.embeddings.weight")) return "mamba";
  if (tensors.count("model.embed_tokens.weight")) return "qwen2";
  return "mixlab";
}

TensorMap from_hf_weights(const TensorMap& tensors, const ModelConfig& config, const std::string& file) {
  const std::string layout = detect_weight_layout(tensors);
  if (layout == "mixlab") return tensors;
  TensorMap out;
  const std::string mixer = stack_mixer(config);
  for (const auto& [name, tensor] : tensors) {
    if (starts_with(name, "model.layers.") && name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0 &&
        name.find(".self_attn.") != std::string::npos) {
      const double largest = tensor.abs().max().item<double>();
      if (largest != 0)
        throw SafetensorsError(file, name, "is non-zero (max |b| = " + std::to_string(largest) +
                                               "); mixlab's attention has no q/k/v biases");
      continue;
    }
    const std::string mapped = mixlab_name(name, layout, mixer);
    out[mapped.empty() ? name : mapped] = tensor;
  }
  const bool tied_copy = config.tie_embeddings && out.count("lm_head.weight") && out.count("embed_tokens.weight") &&
                         torch::equal(out["lm_head.weight"], out["embed_tokens.weight"]);
  if (tied_copy) out.erase("lm_head.weight");
  return out;
}

json hf_config_json(const ModelConfig& config, const TensorMap& weights, const std::string& architecture) {
  json c = {{"vocab_size", config.vocab_size},
            {"hidden_size", config.d_model},
            {"num_hidden_layers", config.n_layers},
            {"tie_word_embeddings", config.tie_embeddings},
            {"initializer_range", config.init_std},
            {"torch_dtype", "float32"},
            {"use_cache", true}};
  if (architecture == "mamba") {
    const auto& x_proj = weights.at("layers.0.mamba.x_proj.weight");  // [R + 2n, E]
    const auto& a_log = weights.at("layers.0.mamba.A_log");            // [E, n]
    const int64_t inner = a_log.size(0), state = a_log.size(1);
    // Hugging Face's MambaConfig holds `expand` as an integer (intermediate = expand · hidden).
    if (inner % config.d_model != 0)
      throw ConfigError("model", "pattern[0].expand",
                        "gives an inner width of " + std::to_string(inner) + " for d_model " + std::to_string(config.d_model) +
                        "; the Hugging Face Mamba layout needs a whole multiple (use an integer expand, or --names mixlab)");
    c.update({{"architectures", json::array({"MambaForCausalLM"})},
              {"model_type", "mamba"},
              {"state_size", state},
              {"expand", inner / config.d_model},
              {"intermediate_size", inner},
              {"conv_kernel", weights.at("layers.0.mamba.conv1d.weight").size(2)},
              {"time_step_rank", x_proj.size(0) - 2 * state},
              {"layer_norm_epsilon", config.norm_eps},
              {"use_bias", false},
              {"use_conv_bias", true},
              {"hidden_act", "silu"},
              {"residual_in_fp32", true}});
    return c;
  }
  const MixerParams attention = Registry::global().resolve(config.pattern[0].mixer, config.pattern[0].params);
  const double theta = attention.real("rope_theta");
  const bool sliding = config.pattern[0].mixer == "swa";
  c.update({{"architectures", json::array({architecture == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM"})},
            {"model_type", architecture},
            {"intermediate_size", weights.at("layers.1.mlp.gate_proj.weight").size(0)},
            {"num_attention_heads", config.n_heads},
            {"num_key_value_heads", config.n_heads},
            {"head_dim", config.d_model / config.n_heads},
            {"hidden_act", "silu"},
            {"max_position_embeddings", 32768},
            {"rms_norm_eps", config.norm_eps},
            {"rope_theta", theta},
            {"rope_scaling", nullptr},
            {"attention_dropout", 0.0}});
  if (architecture == "llama") {
    c.update({{"attention_bias", false}, {"mlp_bias", false}});
  } else {
    c.update({{"use_sliding_window", sliding},
              {"sliding_window", sliding ? json(attention.integer("window")) : json()},
              {"max_window_layers", sliding ? 0 : config.n_layers},
              {"layer_types", std::vector<std::string>(config.n_layers, sliding ? "sliding_attention" : "full_attention")}});
  }
  return c;
}

json model_json_from_hf_config(const json& hf_config, const std::string& file) {
  if (!hf_config.is_object() || !hf_config.contains("model_type"))
    throw ConfigError(file, "model_type", "is missing: not a Hugging Face config.json (nor a mixlab one)");
  const std::string type = hf_config["model_type"].is_string() ? hf_config["model_type"].get<std::string>() : "";
  if (type == "qwen2" || type == "llama") return attention_model_from_hf(hf_config, file);
  if (type == "mamba") return mamba_model_from_hf(hf_config, file);
  throw ConfigError(file, "model_type", "'" + type + "' has no mixlab counterpart; valid: qwen2, llama, mamba");
}

}  // namespace mixlab
