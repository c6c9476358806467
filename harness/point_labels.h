#pragma once
// Point labels a reader can tell apart (docs/sweeps.md, "Labels").
//
//   label(p) = spec label, if the point sets one
//            | model_label(model) ⊕ preset overrides ⊕ " · " data source   otherwise
//
// then, within a sweep, every group of points that share a label gets the settings that vary
// inside the group appended ("transformer d=512 mlp.expand=4"), and a label still shared after
// that (two settings written alike) the first 6 characters of the point id.

#include "harness/spec.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mixlab {

// " d=64 L=2": the settings in which `resolved_model` differs from `preset_model` (both
// normalised: every sublayer an object with its parameters filled in).  Parameters model_label
// shows already (W=, S=, n=, k=) are left out.
std::string preset_override_text(const nlohmann::json& preset_model, const nlohmann::json& resolved_model);

// The short name of a config path as labels show it: model.d_model -> d, model.n_layers -> L,
// model.n_heads -> heads, model.pattern[i].expand -> mlp.expand (the sublayer's mixer),
// train.lr -> lr, train.data.num_kv_pairs -> data.num_kv_pairs, measure.dtype -> dtype.
std::string label_name(const std::string& path, const nlohmann::json& config);

// Makes every label unique within `points` as described above.
void make_labels_unique(std::vector<SweepPoint>& points);

}  // namespace mixlab
