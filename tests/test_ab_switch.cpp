// core/ab_switch.h: the A/B switches of the decode step (MIXLAB_PDL, MIXLAB_SKINNY_WIDE, ...).
// The reference is the rule docs/gpu.md states: unset, empty or "1" is on; "0" is off; any other
// value is an error naming the variable and the valid values.  A trial (a change no GPU has measured
// yet) is the other way round: "1" is on; unset, empty or "0" off.

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

TEST(AbTrial, OnlyOneIsOnAndOtherValuesAreErrors) {
  EXPECT_FALSE(mixlab::ab_trial_value("MIXLAB_X", nullptr));
  EXPECT_FALSE(mixlab::ab_trial_value("MIXLAB_X", ""));
  EXPECT_FALSE(mixlab::ab_trial_value("MIXLAB_X", "0"));
  EXPECT_TRUE(mixlab::ab_trial_value("MIXLAB_X", "1"));
  for (const char* value : {"on", "true", "01", "2"}) {
    try {
      mixlab::ab_trial_value("MIXLAB_PROJECTED_STEP", value);
      ADD_FAILURE() << "\"" << value << "\" was accepted";
    } catch (const std::invalid_argument& error) {
      const std::string message = error.what();
      EXPECT_NE(message.find("MIXLAB_PROJECTED_STEP=\"" + std::string(value) + "\""), std::string::npos) << message;
      EXPECT_NE(message.find("valid values are 1"), std::string::npos) << message;
    }
  }
}

TEST(AbTrial, ReadsTheEnvironmentAtEveryCall) {
  const char* name = "MIXLAB_AB_TRIAL_TEST_VARIABLE";
  ::unsetenv(name);
  EXPECT_FALSE(mixlab::ab_trial_on(name));
  ::setenv(name, "1", 1);
  EXPECT_TRUE(mixlab::ab_trial_on(name));
  ::setenv(name, "0", 1);
  EXPECT_FALSE(mixlab::ab_trial_on(name));
  ::unsetenv(name);
}

}  // namespace
