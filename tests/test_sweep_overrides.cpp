// `mixlab sweep SPEC --set path=value`: overrides are applied to the spec before validation, so
// they are checked like the file itself and become part of each point's config (and id).

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

namespace MIXLAB_UNITY_ID {

struct Run {
  int status;
  std::string output;
};

Run run_mixlab(const std::string& arguments) {
  const std::string command = std::string(MIXLAB_BINARY) + " " + arguments + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  while (pipe && fgets(buffer.data(), buffer.size(), pipe)) output += buffer.data();
  const int status = pipe ? pclose(pipe) : -1;
  return {WEXITSTATUS(status), output};
}

const std::string kSpec = std::string(MIXLAB_SOURCE_DIR) + "/experiments/quickstart.json";

TEST(SweepOverrides, ChangeEveryPointAndItsId) {
  auto plain = run_mixlab("sweep " + kSpec + " --dry-run");
  auto changed = run_mixlab("sweep " + kSpec + " --dry-run --set base.measure.batch=3");
  ASSERT_EQ(plain.status, 0) << plain.output;
  ASSERT_EQ(changed.status, 0) << changed.output;
  EXPECT_NE(changed.output.find("B=3"), std::string::npos) << changed.output;
  EXPECT_EQ(plain.output.find("B=3"), std::string::npos);
  // Same number of points, different ids (the first 16 hex digits of each line).
  EXPECT_NE(plain.output.find("4 points"), std::string::npos);
  EXPECT_NE(changed.output.find("4 points"), std::string::npos);
  EXPECT_NE(plain.output.substr(plain.output.find('\n') + 1, 16),
            changed.output.substr(changed.output.find('\n') + 1, 16));
}

TEST(SweepOverrides, AreValidatedLikeTheFile) {
  auto bad_type = run_mixlab("sweep " + kSpec + " --dry-run --set base.measure.batch=x");
  EXPECT_EQ(bad_type.status, 2);
  EXPECT_NE(bad_type.output.find("measure.batch: must be an integer"), std::string::npos) << bad_type.output;
  auto bad_path = run_mixlab("sweep " + kSpec + " --dry-run --set points.9.model=1");
  EXPECT_EQ(bad_path.status, 2);
  EXPECT_NE(bad_path.output.find("index 9 is past the end"), std::string::npos) << bad_path.output;
}

}  // namespace
