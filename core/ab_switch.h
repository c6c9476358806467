#pragma once
// A/B switches: an optimisation that is on unless its environment variable says "0".
//
// Each switch is read once, by the first call that asks (the environment a benchmark sets before it
// starts).  Unset, empty or "1" is on; "0" is off; anything else is an error that names the variable,
// so a typo such as MIXLAB_PDL=off does not silently measure the wrong side of an A/B.  The switches
// and what each turns off are listed in docs/gpu.md.

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mixlab {

// Whether the switch `name` is on, from `value` (the variable's text, nullptr when unset).
inline bool ab_switch_value(const char* name, const char* value) {
  if (value == nullptr || value[0] == '\0' || std::string(value) == "1") return true;
  if (std::string(value) == "0") return false;
  throw std::invalid_argument(std::string("environment variable ") + name + "=\"" + value +
                              "\": valid values are 0 (off) and 1 or unset (on)");
}

// Whether the switch `name` is on in this process's environment.  Callers cache it in a static:
//   static const bool enabled = ab_switch_on("MIXLAB_PDL");
inline bool ab_switch_on(const char* name) { return ab_switch_value(name, std::getenv(name)); }

}  // namespace mixlab
