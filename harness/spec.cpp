#include "harness/spec.h"

#include "core/text.h"

#include "harness/point_labels.h"

#include "harness/config.h"
#include "harness/json_input.h"
#include "harness/measure.h"
#include "harness/train_config.h"
#include "core/registry.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <set>

namespace mixlab {

// ------------------------------------------------------------------------------ SHA-256
//
// FIPS 180-4, §6.2: the message is padded with a 1 bit, zeros and its 64-bit length to a multiple
// of 512 bits; each block is expanded to 64 words W_t and compressed into the eight state words
// with Σ0, Σ1 (big sigmas), σ0, σ1 (small sigmas), Ch and Maj.

namespace {

constexpr std::array<uint32_t, 64> kRoundConstants = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::string message = bytes;
  const uint64_t bit_length = static_cast<uint64_t>(bytes.size()) * 8;
  message.push_back(static_cast<char>(0x80));
  while (message.size() % 64 != 56) message.push_back('\0');
  for (int i = 7; i >= 0; --i) message.push_back(static_cast<char>((bit_length >> (8 * i)) & 0xff));

  for (size_t block = 0; block < message.size(); block += 64) {
    std::array<uint32_t, 64> w{};
    for (int t = 0; t < 16; ++t)
      for (int b = 0; b < 4; ++b)
        w[t] = (w[t] << 8) | static_cast<uint8_t>(message[block + 4 * t + b]);
    for (int t = 16; t < 64; ++t) {
      const uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
      const uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    auto [a, b, c, d, e, f, g, hh] = h;
    for (int t = 0; t < 64; ++t) {
      const uint32_t big_s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const uint32_t choose = (e & f) ^ (~e & g);
      const uint32_t t1 = hh + big_s1 + choose + kRoundConstants[t] + w[t];
      const uint32_t big_s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
      const uint32_t t2 = big_s0 + majority;
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint32_t word : h)
    for (int shift = 28; shift >= 0; shift -= 4) out.push_back(digits[(word >> shift) & 0xf]);
  return out;
}

// ------------------------------------------------------------------------------ ids

namespace {
// Integral floats (64.0) become integers, so that 64 and 64.0 name the same configuration.
json canonical_numbers(const json& value) {
  if (value.is_object()) {
    json out = json::object();
    for (auto it = value.begin(); it != value.end(); ++it) out[it.key()] = canonical_numbers(it.value());
    return out;
  }
  if (value.is_array()) {
    json out = json::array();
    for (const auto& item : value) out.push_back(canonical_numbers(item));
    return out;
  }
  if (value.is_number_float()) {
    const double x = value.get<double>();
    if (std::isfinite(x) && std::floor(x) == x && std::fabs(x) < 9e15) return static_cast<int64_t>(x);
  }
  return value;
}
}  // namespace

// nlohmann::json keeps object keys sorted; dump() without indent writes no whitespace.
std::string canonical_json(const json& value) { return canonical_numbers(value).dump(); }

std::string point_id(const json& config) { return sha256_hex(canonical_json(config)).substr(0, 16); }

// ------------------------------------------------------------------------------ expansion

namespace {

const std::vector<std::string> kSpecKeys = {"name", "description", "base", "grid", "zip", "points"};
const std::vector<std::string> kSectionKeys = {"model", "measure", "train", "label"};

bool is_section(const std::string& key) {
  return std::find(kSectionKeys.begin(), kSectionKeys.end(), key) != kSectionKeys.end();
}

// A dotted path must start at a section: model.x, measure.x, train.x (or a whole section).
void check_dotted_path(const std::string& dotted, const std::string& file, const std::string& path) {
  const std::string head = dotted.substr(0, dotted.find('.'));
  if (!is_section(head))
    throw ConfigError(file, path, "'" + dotted + "' must start with one of: " + joined(kSectionKeys) +
                                      " (e.g. \"model.d_model\")");
  if (dotted.find("..") != std::string::npos || dotted.back() == '.')
    throw ConfigError(file, path, "'" + dotted + "' is not a dotted path");
}

// Apply an overlay whose keys are sections ({"model": {...}}) or dotted paths ("model.d_model").
void apply_overlay(json& config, const json& overlay, const std::string& file, const std::string& path) {
  for (auto it = overlay.begin(); it != overlay.end(); ++it) {
    const std::string where = path + "." + it.key();
    check_dotted_path(it.key(), file, where);
    if (it.key() == "label") {
      // The point's display name (not part of its configuration or id).
      if (!it.value().is_string() || it.value().get<std::string>().empty())
        throw ConfigError(file, where, "must be a non-empty string, e.g. \"baseline\"");
      config["label"] = it.value();
    } else if (it.key().find('.') == std::string::npos) {
      json section = config.contains(it.key()) ? config[it.key()] : json::object();
      merge_json(section, it.value());
      config[it.key()] = section;
    } else {
      try {
        set_dotted(config, it.key(), it.value());
      } catch (const ConfigError& error) {
        throw ConfigError(file, where, error.detail);
      }
    }
  }
}

struct Axis {
  std::string path;        // dotted
  std::string json_path;   // where it is written in the spec, for errors
  json values;             // non-empty list
};

// One group of axes that vary together (a zip group) or one grid axis.
struct AxisGroup {
  std::vector<Axis> axes;
  size_t size() const { return axes.front().values.size(); }
};

std::vector<Axis> read_axes(const json& object, const std::string& file, const std::string& path) {
  if (!object.is_object())
    throw ConfigError(file, path, "must be an object {\"dotted.path\": [values...]}");
  if (object.empty()) throw ConfigError(file, path, "is empty; give at least one axis or leave it out");
  std::vector<Axis> axes;
  for (auto it = object.begin(); it != object.end(); ++it) {
    const std::string where = path + "." + it.key();
    check_dotted_path(it.key(), file, where);
    if (!it.value().is_array()) throw ConfigError(file, where, "must be a list of values, got " + it.value().dump());
    if (it.value().empty()) throw ConfigError(file, where, "is an empty axis; give at least one value");
    axes.push_back({it.key(), where, it.value()});
  }
  return axes;
}

std::string describe(const std::vector<std::pair<std::string, json>>& settings) {
  std::string out;
  for (const auto& [path, value] : settings) out += (out.empty() ? "" : ", ") + path + "=" + value.dump();
  return out;
}

// The explicit model with every sublayer as {"mixer": NAME, param: value...} and all registry
// defaults filled in, so that writing a default or leaving it out gives the same id.
json normalised_model(const json& model_in, const std::string& file, const std::string& path) {
  json model = resolve_model_json(model_in, file, path);
  parse_model_config(model, file, path);  // strict validation
  json pattern = json::array();
  for (const auto& item : model["pattern"]) {
    const std::string mixer = item.is_string() ? item.get<std::string>() : item["mixer"].get<std::string>();
    std::map<std::string, ParamValue> given;
    if (item.is_object())
      for (auto it = item.begin(); it != item.end(); ++it)
        if (it.key() != "mixer") given[it.key()] = param_value_from_json(it.value(), file, path);
    json sublayer = {{"mixer", mixer}};
    const MixerParams params = Registry::global().resolve(mixer, given);
    for (const auto& [name, value] : params.values())
      std::visit([&](const auto& v) { sublayer[name] = v; }, value);
    pattern.push_back(sublayer);
  }
  model["pattern"] = pattern;
  return model;
}

SweepPoint resolve_point(const json& config, const std::string& file, const std::string& where,
                         const std::string& device_kind) {
  for (auto it = config.begin(); it != config.end(); ++it)
    if (!is_section(it.key()))
      throw ConfigError(file, where + "." + it.key(), "unknown section; valid: " + joined(kSectionKeys));
  if (!config.contains("model"))
    throw ConfigError(file, where + ".model", "is missing; give {\"preset\": NAME, ...} or an explicit model");
  SweepPoint point;
  json resolved = json::object();
  resolved["model"] = normalised_model(config["model"], file, where + ".model");
  resolved["measure"] = resolve_measure_json(config.value("measure", json::object()), device_kind, file, where + ".measure");
  if (config.contains("train")) {
    if (!config["train"].is_object()) throw ConfigError(file, where + ".train", "must be an object");
    parse_train_config(config["train"], file, where + ".train");
    resolved["train"] = config["train"];
  }
  point.config = resolved;
  json identity = resolved;
  if (identity.contains("train")) identity["train"] = training_identity(identity["train"]);
  point.id = point_id(identity);
  if (config.contains("label")) {
    if (!config["label"].is_string() || config["label"].get<std::string>().empty())
      throw ConfigError(file, where + ".label", "must be a non-empty string, e.g. \"baseline\"");
    point.label = config["label"].get<std::string>();
  } else {
    point.label = model_label(resolved["model"]);
    // A preset with overrides says so: "qwen2-340m d=64 L=2", not "qwen2-340m".
    if (config["model"].is_object() && config["model"].contains("preset"))
      point.label += preset_override_text(
          normalised_model(json{{"preset", config["model"]["preset"]}}, file, where + ".model.preset"), resolved["model"]);
  }
  // Points that train name their data set, so "transformer · corpus" and "transformer · mqar"
  // stay apart in curves and tables.
  const json source = get_dotted(resolved, "train.data.source");
  if (source.is_string() && !config.contains("label")) point.label += " · " + source.get<std::string>();
  std::vector<std::string> mixers;
  for (const auto& sublayer : resolved["model"]["pattern"]) {
    const std::string name = sublayer["mixer"].get<std::string>();
    if (std::find(mixers.begin(), mixers.end(), name) == mixers.end()) mixers.push_back(name);
  }
  point.mixers = joined(mixers);
  point.mixers.erase(std::remove(point.mixers.begin(), point.mixers.end(), ' '), point.mixers.end());
  return point;
}

// The axes of `grid` (each axis a group of its own) and `zip` (one group, an object, or several,
// a list of objects); an axis path may be varied once.
std::vector<AxisGroup> read_axis_groups(const json& raw, const std::string& file) {
  std::vector<AxisGroup> groups;
  std::set<std::string> axis_paths;
  auto remember = [&](const Axis& axis) {
    if (!axis_paths.insert(axis.path).second)
      throw ConfigError(file, axis.json_path, "'" + axis.path + "' is varied twice (grid and zip, or two zip groups)");
  };
  if (raw.contains("grid"))
    for (auto& axis : read_axes(raw["grid"], file, "grid")) {
      remember(axis);
      groups.push_back({{axis}});
    }
  if (raw.contains("zip")) {
    std::vector<std::pair<json, std::string>> zip_groups;
    if (raw["zip"].is_array()) {
      if (raw["zip"].empty()) throw ConfigError(file, "zip", "is an empty list of zip groups");
      for (size_t i = 0; i < raw["zip"].size(); ++i) zip_groups.push_back({raw["zip"][i], "zip[" + std::to_string(i) + "]"});
    } else {
      zip_groups.push_back({raw["zip"], "zip"});
    }
    for (const auto& [object, where] : zip_groups) {
      AxisGroup group{read_axes(object, file, where)};
      for (const auto& axis : group.axes) {
        remember(axis);
        if (axis.values.size() != group.size())
          throw ConfigError(file, axis.json_path, "has " + std::to_string(axis.values.size()) +
                                                      " values but " + group.axes.front().json_path + " has " +
                                                      std::to_string(group.size()) + "; zipped axes must be equally long");
      }
      groups.push_back(group);
    }
  }
  return groups;
}

// The explicit points, each an overlay on base with where it stands in the spec; none means the
// base alone.
std::vector<std::pair<json, std::string>> read_point_overlays(const json& raw, const std::string& file) {
  std::vector<std::pair<json, std::string>> overlays;
  if (raw.contains("points")) {
    if (!raw["points"].is_array()) throw ConfigError(file, "points", "must be a list of objects");
    if (raw["points"].empty()) throw ConfigError(file, "points", "is an empty list; give at least one point or leave it out");
    for (size_t i = 0; i < raw["points"].size(); ++i) {
      const std::string where = "points[" + std::to_string(i) + "]";
      if (!raw["points"][i].is_object()) throw ConfigError(file, where, "must be an object");
      overlays.push_back({raw["points"][i], where});
    }
  } else {
    overlays.push_back({json::object(), "base"});
  }
  return overlays;
}

}  // namespace

SweepSpec expand_spec(const json& raw, const std::string& file, const std::string& device_kind) {
  if (!raw.is_object()) throw ConfigError(file, "", "a sweep spec must be a JSON object");
  for (auto it = raw.begin(); it != raw.end(); ++it)
    if (std::find(kSpecKeys.begin(), kSpecKeys.end(), it.key()) == kSpecKeys.end())
      throw ConfigError(file, it.key(), "unknown key; valid: " + joined(kSpecKeys));
  SweepSpec spec;
  spec.file = file;
  spec.raw = raw;
  if (!raw.contains("name") || !raw["name"].is_string() || raw["name"].get<std::string>().empty())
    throw ConfigError(file, "name", "must be a non-empty string naming the study");
  spec.name = raw["name"].get<std::string>();
  for (char ch : spec.name)
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
      throw ConfigError(file, "name", "'" + spec.name + "' may use only letters, digits, '-', '_' and '.'");
  if (raw.contains("description")) {
    if (!raw["description"].is_string()) throw ConfigError(file, "description", "must be a string");
    spec.description = raw["description"].get<std::string>();
  }
  json base = json::object();
  if (raw.contains("base")) {
    if (!raw["base"].is_object()) throw ConfigError(file, "base", "must be an object with model, measure, train");
    for (auto it = raw["base"].begin(); it != raw["base"].end(); ++it)
      if (!is_section(it.key())) throw ConfigError(file, "base." + it.key(), "unknown key; valid: " + joined(kSectionKeys));
    base = raw["base"];
  }

  const std::vector<AxisGroup> groups = read_axis_groups(raw, file);
  const auto overlays = read_point_overlays(raw, file);

  // points × grid × zip, checked before anything is expanded.
  int64_t expanded = static_cast<int64_t>(overlays.size());
  for (const auto& group : groups)
    if (!checked_multiply(expanded, static_cast<int64_t>(group.size()), expanded) || expanded > kMaxSweepPoints)
      throw ConfigError(file, raw.contains("grid") ? "grid" : "zip",
                        "the spec expands to more than " + std::to_string(kMaxSweepPoints) +
                            " points (points x grid x zip); split it into several sweeps");

  std::set<std::string> seen;
  for (const auto& [overlay, where] : overlays) {
    json with_point = base;
    apply_overlay(with_point, overlay, file, where);
    // Odometer over the groups: index[g] picks row index[g] of group g.
    std::vector<size_t> index(groups.size(), 0);
    while (true) {
      json config = with_point;
      std::vector<std::pair<std::string, json>> settings;
      for (size_t g = 0; g < groups.size(); ++g)
        for (const auto& axis : groups[g].axes) {
          const json& value = axis.values[index[g]];
          try {
            set_dotted(config, axis.path, value);
          } catch (const ConfigError& error) {
            throw ConfigError(file, axis.json_path, error.detail);
          }
          settings.push_back({axis.path, value});
        }
      const std::string origin = settings.empty() ? where : where + " with " + describe(settings);
      SweepPoint point;
      try {
        point = resolve_point(config, file, where, device_kind);
      } catch (const ConfigError& error) {
        if (settings.empty()) throw;
        throw ConfigError(error.file, error.path, error.detail + " (in the point with " + describe(settings) + ")");
      }
      point.origin = origin;
      if (seen.insert(point.id).second) spec.points.push_back(std::move(point));
      size_t g = 0;
      for (; g < groups.size(); ++g) {
        if (++index[g] < groups[g].size()) break;
        index[g] = 0;
      }
      if (g == groups.size()) break;
    }
  }
  make_labels_unique(spec.points);
  return spec;
}

SweepSpec load_spec(const std::string& file, const std::string& device_kind) {
  return expand_spec(read_json_file(file), file, device_kind);
}

std::vector<SweepPoint> shard_points(const std::vector<SweepPoint>& points, int64_t index, int64_t count) {
  std::vector<SweepPoint> slice;
  for (size_t k = 0; k < points.size(); ++k)
    if (static_cast<int64_t>(k % static_cast<size_t>(count)) == index) slice.push_back(points[k]);
  return slice;
}

std::pair<int64_t, int64_t> parse_shard(const std::string& text, const std::string& origin) {
  const auto slash = text.find('/');
  auto bad = [&] {
    return ConfigError(origin, "", "shard '" + text + "' must be i/n with 0 <= i < n, e.g. 0/4");
  };
  if (slash == std::string::npos) throw bad();
  int64_t i = 0, n = 0;
  try {
    size_t used_i = 0, used_n = 0;
    i = std::stoll(text.substr(0, slash), &used_i);
    n = std::stoll(text.substr(slash + 1), &used_n);
    if (used_i != slash || used_n != text.size() - slash - 1) throw bad();
  } catch (const std::logic_error&) {
    throw bad();
  }
  if (n < 1 || i < 0 || i >= n) throw bad();
  return {i, n};
}

}  // namespace mixlab
