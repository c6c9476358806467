#pragma once
// Sweep specs (docs/sweeps.md): a declarative JSON file (comments allowed)
//
//   { "name": "...", "description": "...",
//     "base":   {"model": {...}, "measure": {...}, "train": {...}},
//     "grid":   {"model.d_model": [64, 128], "model.preset": ["transformer", "swa"]},   // cartesian
//     "zip":    {"model.d_model": [64, 128], "model.n_heads": [2, 4]},   // varied together
//               (or a list of such groups, each varied together, groups multiplied)
//     "points": [{"model": {"preset": "mamba"}}, {"model.d_model": 96}] }
//
// Each resolved point is   base ⊕ points[i] ⊕ one grid combination ⊕ one zip row   (⊕: recursive
// merge, dotted keys set one path) with the model preset expanded and every measure default filled
// in: a full config.  Its id is the SHA-256 (first 16 hex) of its canonical JSON (keys sorted, no
// whitespace), so it does not depend on key order or formatting of the spec.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mixlab {

// The most points one spec may expand to (a larger grid is refused before it is expanded).
constexpr int64_t kMaxSweepPoints = 100000;

struct SweepPoint {
  std::string id;              // 16 hex digits
  nlohmann::json config;       // {"model": explicit, "measure": full, "train": as given (if any)}
  std::string label;           // model_label of the model, e.g. "scout-swa S=64"
  std::string mixers;          // comma-separated distinct registry names in the pattern
  std::string origin;          // where it came from, e.g. "points[1] × grid{model.d_model=64}"
};

struct SweepSpec {
  std::string name, description, file;
  nlohmann::json raw;              // the spec as read
  std::vector<SweepPoint> points;  // resolved, duplicates removed, in expansion order
};

// Read, validate and expand a spec file.  device_kind ("cpu"/"cuda") resolves dtype "auto" and is
// recorded in each point's measure section.  Throws ConfigError ("FILE: at PATH: message").
SweepSpec load_spec(const std::string& file, const std::string& device_kind);
SweepSpec expand_spec(const nlohmann::json& raw, const std::string& file, const std::string& device_kind);

// The deterministic slice `index` of `count` (0-based): points k with k mod count == index, in
// expansion order.
std::vector<SweepPoint> shard_points(const std::vector<SweepPoint>& points, int64_t index, int64_t count);
// "i/n" (0 <= i < n); throws ConfigError naming `origin`.
std::pair<int64_t, int64_t> parse_shard(const std::string& text, const std::string& origin);

std::string canonical_json(const nlohmann::json& value);
std::string point_id(const nlohmann::json& config);
std::string sha256_hex(const std::string& bytes);

}  // namespace mixlab
