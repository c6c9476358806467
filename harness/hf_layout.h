#pragma once
// The Hugging Face `transformers` layouts of the mixlab models that have one (docs/weights.md,
// "Hugging Face layouts"): weight names and config.json, both directions.
//
//   mixlab pattern                 HF architecture        config.json model_type
//   [attention, mlp(swiglu)] × L   Qwen2ForCausalLM       qwen2   (q/k/v biases written as zeros)
//                                  LlamaForCausalLM       llama   (attention_bias false)
//   [swa W, mlp(swiglu)] × L       Qwen2ForCausalLM       qwen2   (use_sliding_window, window W)
//   [mamba] × L                    MambaForCausalLM       mamba
//
// Names (l = HF layer, i = mixlab sublayer index; attention stacks i = 2l, 2l+1, Mamba i = l):
//
//   mixlab                          qwen2 / llama                                 mamba
//   embed_tokens.weight             model.embed_tokens.weight                     backbone.embeddings.weight
//   layers.<2l>.norm.weight         model.layers.<l>.input_layernorm.weight       (mamba: layers.<l>.norm.weight
//   layers.<2l>.attention.q_proj.*  model.layers.<l>.self_attn.q_proj.*            -> backbone.layers.<l>.norm.weight,
//   layers.<2l+1>.norm.weight       model.layers.<l>.post_attention_layernorm.*    layers.<l>.mamba.X
//   layers.<2l+1>.mlp.gate_proj.*   model.layers.<l>.mlp.gate_proj.*               -> backbone.layers.<l>.mixer.X)
//   norm.weight                     model.norm.weight                             backbone.norm_f.weight
//   lm_head.weight (untied only)    lm_head.weight                                lm_head.weight
//
// Both blocks compute h + Sublayer(RMSNorm(h)) with RMSNorm(x) = x·rsqrt(mean(x²)+eps)·w in
// float32, RoPE in the rotate-half convention (attention/rope.h), SwiGLU down(silu(gate x)·up x):
// the same function as mixlab's LanguageModel (harness/model.h), so equal weights give equal logits.

#include "harness/config.h"
#include "harness/safetensors.h"

#include <string>

namespace mixlab {

// "qwen2", "llama" or "mamba" for `config` (`preferred` picks qwen2 or llama for attention
// stacks; "" means qwen2).  A pattern with no HF counterpart raises ConfigError saying why.
std::string hf_architecture(const ModelConfig& config, const std::string& preferred = "");

// mixlab weights (module_weights of a LanguageModel) -> the HF layout of `architecture`.
TensorMap to_hf_weights(const TensorMap& weights, const ModelConfig& config, const std::string& architecture);

// Which layout a file's names are in: "mixlab", "qwen2" (also Llama: the same names without
// biases) or "mamba".
std::string detect_weight_layout(const TensorMap& tensors);

// HF-layout tensors (qwen2/llama or mamba) -> mixlab names for `config`.  Zero q/k/v biases are
// dropped; a non-zero bias (which mixlab's attention cannot represent) is an error naming it;
// an lm_head equal to the embedding of a tied model is dropped.  Names that map to nothing are
// kept as they are, so that the strict load reports them.
TensorMap from_hf_weights(const TensorMap& tensors, const ModelConfig& config, const std::string& file);

// config.json of the HF architecture for `config` (shapes read from `weights`, mixlab names).
json hf_config_json(const ModelConfig& config, const TensorMap& weights, const std::string& architecture);

// The mixlab model object (explicit, as parse_model_config takes it) of an HF config.json
// (model_type qwen2, llama or mamba).  Anything mixlab's blocks cannot represent (grouped KV
// heads, biases, rope scaling, another activation, a layer-dependent window) is a ConfigError
// naming the field.
json model_json_from_hf_config(const json& hf_config, const std::string& file);

}  // namespace mixlab
