// core/ab_switch.h: the A/B switches of the decode step (MIXLAB_PDL, MIXLAB_SKINNY_WIDE, ...).
// The reference is the rule docs/gpu.md states: unset, empty or "1" is on; "0" is off; any other
// value is an error naming the variable and the valid values.

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/ab_switch.h"

namespace {

TEST(AbSwitch, UnsetEmptyAndOneAreOnZeroIsOff) {
  EXPECT_TRUE(mixlab::ab_switch_value("MIXLAB_X", nullptr));
  EXPECT_TRUE(mixlab::ab_switch_value("MIXLAB_X", ""));
  EXPECT_TRUE(mixlab::ab_switch_value("MIXLAB_X", "1"));
  EXPECT_FALSE(mixlab::ab_switch_value("MIXLAB_X", "0"));
}

TEST(AbSwitch, AnyOtherValueIsAnErrorNamingTheVariable) {
  for (const char* value : {"off", "false", "00", " 0", "2", "yes"}) {
    try {
      mixlab::ab_switch_value("MIXLAB_PDL", value);
      ADD_FAILURE() << "\"" << value << "\" was accepted";
    } catch (const std::invalid_argument& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("MIXLAB_PDL=\"" + std::string(value) + "\""), std::string::npos) << message;
      EXPECT_NE(message.find("valid values are 0"), std::string::npos) << message;
    }
  }
}

TEST(AbSwitch, ReadsTheProcessEnvironment) {
  const char* name = "MIXLAB_AB_SWITCH_TEST_VARIABLE";
  ::unsetenv(name);
  EXPECT_TRUE(mixlab::ab_switch_on(name));
  ::setenv(name, "0", 1);
  EXPECT_FALSE(mixlab::ab_switch_on(name));
  ::setenv(name, "off", 1);
  EXPECT_THROW(mixlab::ab_switch_on(name), std::invalid_argument);
  ::unsetenv(name);
}

}  // namespace
