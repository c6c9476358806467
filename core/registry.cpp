#include "core/registry.h"

#include "core/text.h"

#include <cmath>
#include <sstream>

namespace mixlab {

const char* to_string(ParamType type) {
  switch (type) {
    case ParamType::Integer: return "int";
    case ParamType::Real: return "float";
    case ParamType::Boolean: return "bool";
    case ParamType::Text: return "string";
  }
  return "?";
}

const char* to_string(MixerKind kind) {
  switch (kind) {
    case MixerKind::Sequence: return "sequence";
    case MixerKind::Channel: return "channel";
    case MixerKind::Block: return "block";
  }
  return "?";
}

std::string format_param_value(const ParamValue& value) {
  if (auto i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (auto b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (auto s = std::get_if<std::string>(&value)) return *s;
  std::ostringstream out;
  out << std::get<double>(value);
  return out.str();
}

namespace {
std::string format_number(double x) {
  std::ostringstream out;
  out << x;
  return out.str();
}
}  // namespace

ParamSpec ParamSpec::integer(std::string name, int64_t default_value, std::string doc,
                             std::optional<double> minimum, std::optional<double> maximum) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = ParamType::Integer;
  spec.default_value = default_value;
  spec.doc = std::move(doc);
  spec.minimum = minimum;
  spec.maximum = maximum;
  return spec;
}

ParamSpec ParamSpec::real(std::string name, double default_value, std::string doc,
                          std::optional<double> minimum, std::optional<double> maximum) {
  ParamSpec spec = integer(std::move(name), 0, std::move(doc), minimum, maximum);
  spec.type = ParamType::Real;
  spec.default_value = default_value;
  return spec;
}

ParamSpec ParamSpec::boolean(std::string name, bool default_value, std::string doc) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = ParamType::Boolean;
  spec.default_value = default_value;
  spec.doc = std::move(doc);
  return spec;
}

ParamSpec ParamSpec::text(std::string name, std::string default_value, std::string doc,
                          std::vector<std::string> choices) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = ParamType::Text;
  spec.default_value = std::move(default_value);
  spec.doc = std::move(doc);
  spec.choices = std::move(choices);
  return spec;
}

std::string ParamSpec::range_text() const {
  if (type == ParamType::Text) return choices.empty() ? "any" : "one of " + joined(choices, "|");
  if (type == ParamType::Boolean) return "true|false";
  if (!minimum && !maximum) return "any";
  return "[" + (minimum ? format_number(*minimum) : std::string("-inf")) + ", " +
         (maximum ? format_number(*maximum) : std::string("inf")) + "]";
}

const ParamValue& MixerParams::at(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) throw RegistryError("internal: parameter '" + name + "' was not resolved");
  return it->second;
}
int64_t MixerParams::integer(const std::string& name) const { return std::get<int64_t>(at(name)); }
double MixerParams::real(const std::string& name) const { return std::get<double>(at(name)); }
bool MixerParams::boolean(const std::string& name) const { return std::get<bool>(at(name)); }
const std::string& MixerParams::text(const std::string& name) const {
  return std::get<std::string>(at(name));
}

Registry& Registry::global() {
  static Registry registry;
  return registry;
}

void Registry::add(MixerEntry entry) {
  if (entries_.count(entry.name))
    throw std::logic_error("mixer '" + entry.name + "' is registered twice");
  entries_.emplace(entry.name, std::move(entry));
}

bool Registry::contains(const std::string& name) const { return entries_.count(name) > 0; }

std::vector<std::string> Registry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

const MixerEntry& Registry::at(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    throw RegistryError("unknown mixer '" + name + "'; valid: " + joined(names(), ", "));
  return it->second;
}

namespace {
const ParamSpec& find_spec(const MixerEntry& entry, const std::string& param) {
  for (const auto& spec : entry.params)
    if (spec.name == param) return spec;
  std::vector<std::string> valid;
  for (const auto& spec : entry.params) valid.push_back(spec.name);
  throw RegistryError("unknown parameter '" + param + "' for mixer '" + entry.name + "'; valid: " +
                      (valid.empty() ? std::string("(none)") : joined(valid, ", ")));
}

// Bring a given value to the declared type (an integer is accepted where a real is declared),
// or explain what was expected.
ParamValue coerce(const MixerEntry& entry, const ParamSpec& spec, const ParamValue& given) {
  const std::string where = "parameter '" + spec.name + "' of mixer '" + entry.name + "'";
  ParamValue value = given;
  if (spec.type == ParamType::Real && std::holds_alternative<int64_t>(given))
    value = static_cast<double>(std::get<int64_t>(given));
  if (spec.type == ParamType::Integer && std::holds_alternative<double>(given)) {
    double x = std::get<double>(given);
    if (std::floor(x) == x && std::abs(x) < 9e15) value = static_cast<int64_t>(x);
  }
  const bool type_ok = (spec.type == ParamType::Integer && std::holds_alternative<int64_t>(value)) ||
                       (spec.type == ParamType::Real && std::holds_alternative<double>(value)) ||
                       (spec.type == ParamType::Boolean && std::holds_alternative<bool>(value)) ||
                       (spec.type == ParamType::Text && std::holds_alternative<std::string>(value));
  if (!type_ok)
    throw RegistryError(where + " must be of type " + to_string(spec.type) + ", got '" +
                        format_param_value(given) + "'");
  if (spec.type == ParamType::Integer || spec.type == ParamType::Real) {
    double x = spec.type == ParamType::Integer ? static_cast<double>(std::get<int64_t>(value))
                                               : std::get<double>(value);
    if ((spec.minimum && x < *spec.minimum) || (spec.maximum && x > *spec.maximum) || std::isnan(x))
      throw RegistryError(where + " is " + format_param_value(value) + ", outside the valid range " +
                          spec.range_text());
  }
  if (spec.type == ParamType::Text && !spec.choices.empty()) {
    const auto& s = std::get<std::string>(value);
    bool found = false;
    for (const auto& choice : spec.choices) found = found || choice == s;
    if (!found)
      throw RegistryError(where + " is '" + s + "'; valid: " + joined(spec.choices, ", "));
  }
  return value;
}
}  // namespace

MixerParams Registry::resolve(const std::string& name,
                              const std::map<std::string, ParamValue>& given) const {
  const MixerEntry& entry = at(name);
  MixerParams params;
  for (const auto& spec : entry.params) params.set(spec.name, spec.default_value);
  for (const auto& [param, value] : given) {
    const ParamSpec& spec = find_spec(entry, param);
    params.set(param, coerce(entry, spec, value));
  }
  return params;
}

ParamValue Registry::parse(const std::string& name, const std::string& param,
                           const std::string& text) const {
  const MixerEntry& entry = at(name);
  const ParamSpec& spec = find_spec(entry, param);
  const std::string where = "parameter '" + param + "' of mixer '" + name + "'";
  try {
    switch (spec.type) {
      case ParamType::Integer: {
        size_t used = 0;
        int64_t v = std::stoll(text, &used);
        if (used != text.size()) break;
        return v;
      }
      case ParamType::Real: {
        size_t used = 0;
        double v = std::stod(text, &used);
        if (used != text.size()) break;
        return v;
      }
      case ParamType::Boolean:
        if (text == "true" || text == "1") return true;
        if (text == "false" || text == "0") return false;
        break;
      case ParamType::Text: return text;
    }
  } catch (const std::exception&) {
  }
  throw RegistryError(where + " must be of type " + to_string(spec.type) + ", got '" + text + "'");
}

TokenMixerPtr Registry::create(const std::string& name, const MixerContext& context,
                               const std::map<std::string, ParamValue>& given) const {
  const MixerEntry& entry = at(name);
  MixerParams params = resolve(name, given);
  if (context.d_model <= 0 || context.n_heads <= 0)
    throw RegistryError("mixer '" + name + "': d_model and n_heads must be positive");
  if (entry.validate) entry.validate(context, params);
  return entry.factory(context, params);
}

}  // namespace mixlab
