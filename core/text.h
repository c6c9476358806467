#pragma once
// Small text helpers shared by error messages and listings.
#include <cstddef>
#include <string>
#include <vector>

namespace mixlab {

inline bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// items[0] + separator + items[1] + ...; "" for no items.
inline std::string joined(const std::vector<std::string>& items, const std::string& separator = ", ") {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

// The first at_most items joined by ", ", then how many were left out: "a, b, ... and 3 more".
inline std::string joined_at_most(const std::vector<std::string>& items, size_t at_most) {
  if (items.size() <= at_most) return joined(items);
  const std::string rest = "... and " + std::to_string(items.size() - at_most) + " more";
  if (at_most == 0) return rest;
  const std::vector<std::string> shown(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(at_most));
  return joined(shown) + ", " + rest;
}

}  // namespace mixlab
