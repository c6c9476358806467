// core/text.h: the list helpers that error messages use, against strings written out by hand.

#include "core/text.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

TEST(Text, JoinedPutsTheSeparatorOnlyBetweenItems) {
  EXPECT_EQ(joined({}), "");
  EXPECT_EQ(joined({"a"}), "a");
  EXPECT_EQ(joined({"a", "b", "c"}), "a, b, c");
  EXPECT_EQ(joined({"x", "y"}, "|"), "x|y");
}

TEST(Text, JoinedAtMostCountsWhatItLeavesOut) {
  EXPECT_EQ(joined_at_most({"a", "b"}, 2), "a, b");
  EXPECT_EQ(joined_at_most({"a", "b", "c", "d", "e"}, 2), "a, b, ... and 3 more");
  EXPECT_EQ(joined_at_most({"a"}, 0), "... and 1 more");
  EXPECT_EQ(joined_at_most({}, 0), "");
}

TEST(Text, StartsWith) {
  EXPECT_TRUE(starts_with("layers.12.mlp", "layers."));
  EXPECT_TRUE(starts_with("abc", ""));
  EXPECT_FALSE(starts_with("ab", "abc"));
  EXPECT_FALSE(starts_with("xabc", "abc"));
}

}  // namespace
}  // namespace mixlab
