#pragma once
// The registry of token mixers, channel mixers and blocks.
//
// Each entry is registered by its own .cpp with a RegisterMixer<Type> object (core/register_mixer.h);
// nothing else needs to change for a new mixer to appear in `mixlab list`, in specs and in the
// registry-wide tests.

#include "core/token_mixer.h"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace mixlab {

enum class ParamType { Integer, Real, Boolean, Text };
const char* to_string(ParamType type);

using ParamValue = std::variant<int64_t, double, bool, std::string>;
std::string format_param_value(const ParamValue& value);

// One typed, documented parameter of a registry entry.
struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Integer;
  ParamValue default_value = int64_t{0};
  std::optional<double> minimum;     // inclusive, for Integer and Real
  std::optional<double> maximum;     // inclusive, for Integer and Real
  std::vector<std::string> choices;  // for Text: the allowed values (empty = any)
  std::string doc;

  // Fluent builders so that entries read like a table.
  static ParamSpec integer(std::string name, int64_t default_value, std::string doc,
                           std::optional<double> minimum = std::nullopt,
                           std::optional<double> maximum = std::nullopt);
  static ParamSpec real(std::string name, double default_value, std::string doc,
                        std::optional<double> minimum = std::nullopt,
                        std::optional<double> maximum = std::nullopt);
  static ParamSpec boolean(std::string name, bool default_value, std::string doc);
  static ParamSpec text(std::string name, std::string default_value, std::string doc,
                        std::vector<std::string> choices = {});
  std::string range_text() const;  // "[1, 65536]", "one of a|b", "any"
};

// Validated parameter values of one entry (every parameter present, types checked).
class MixerParams {
 public:
  int64_t integer(const std::string& name) const;
  double real(const std::string& name) const;
  bool boolean(const std::string& name) const;
  const std::string& text(const std::string& name) const;
  const std::map<std::string, ParamValue>& values() const { return values_; }
  void set(const std::string& name, ParamValue value) { values_[name] = std::move(value); }

 private:
  const ParamValue& at(const std::string& name) const;
  std::map<std::string, ParamValue> values_;
};

// Model-level facts a mixer may need.
struct MixerContext {
  int64_t d_model = 64;
  int64_t n_heads = 4;
  int64_t layer_index = 0;  // which repeat of the block pattern (0-based)
  int64_t n_layers = 1;
  double init_std = 0.02;   // N(0, init_std) for linear weights, as SCOUT/HF initialise
};

enum class MixerKind {
  Sequence,  // mixes along the sequence (attention, SSMs, convolutions)
  Channel,   // mixes channels only, position by position (the MLP)
  Block,     // a whole block that replaces mixer and MLP (Gated CNN)
};
const char* to_string(MixerKind kind);

struct MixerEntry {
  std::string name;
  std::string description;  // one line
  MixerKind kind = MixerKind::Sequence;
  std::vector<ParamSpec> params;
  std::function<TokenMixerPtr(const MixerContext&, const MixerParams&)> factory;
  // Extra checks across parameters and the context (e.g. "d_model divisible by n_heads");
  // throw RegistryError with a clear message.
  std::function<void(const MixerContext&, const MixerParams&)> validate;
};

// Raised for unknown names, unknown parameters, wrong types and out-of-range values.  The
// message names the valid choices.
class RegistryError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Registry {
 public:
  static Registry& global();

  void add(MixerEntry entry);
  bool contains(const std::string& name) const;
  const MixerEntry& at(const std::string& name) const;  // throws RegistryError listing names
  std::vector<std::string> names() const;                // sorted

  // Fill defaults, check names, types and ranges.
  MixerParams resolve(const std::string& name, const std::map<std::string, ParamValue>& given) const;
  // Parse a command-line string ("64", "true", "swa") as the declared type of `param`.
  ParamValue parse(const std::string& name, const std::string& param, const std::string& text) const;

  TokenMixerPtr create(const std::string& name, const MixerContext& context,
                       const std::map<std::string, ParamValue>& given = {}) const;

 private:
  std::map<std::string, MixerEntry> entries_;
};

}  // namespace mixlab
