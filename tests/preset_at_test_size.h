#pragma once
// A preset at test size, for the tests that run every preset on CUDA: d_model 128 with 2 heads
// (head dim 64, so the attention kernels run), at most 2 repeats of the pattern, vocabulary 256,
// MLP hidden 256, windows at most 32 (so that they bind at sequence length 64); everything else
// as the preset says.

#include "harness/config.h"

#include <algorithm>
#include <string>

namespace mixlab::testing {

inline ModelConfig preset_at_test_size(const std::string& name) {
  const std::string file = "experiments/presets/" + name + ".json";
  json model = resolve_model_json(json{{"preset", name}}, file);
  model["vocab_size"] = 256;
  model["d_model"] = 128;
  model["n_heads"] = 2;
  model["n_layers"] = std::min<int64_t>(model.value("n_layers", 2), 2);
  for (auto& sublayer : model["pattern"]) {
    if (!sublayer.is_object()) continue;
    if (sublayer.contains("hidden")) sublayer["hidden"] = 256;
    if (sublayer.contains("window")) sublayer["window"] = std::min<int64_t>(sublayer["window"].get<int64_t>(), 32);
  }
  return parse_model_config(model, file);
}

}  // namespace mixlab::testing
