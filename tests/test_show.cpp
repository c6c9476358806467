// `mixlab show`: filters are checked against the database (a typo is an error naming what is
// valid), point ids are accepted by unique prefix, and trained points show their last training
// step and evaluations.

#include "harness/config.h"
#include "harness/show.h"
#include "harness/store.h"
#include "temp_dir.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

// Two points of sweep "s": ab12… measured, ab34… trained and evaluated.
void fill(Store& store) {
  SweepRecord sweep;
  sweep.name = "s";
  const int64_t id = store.begin_sweep(sweep);
  store.start_point({"ab12ffff", "s", "measured one", "attention,mlp", "{}"}, id);
  Measurement m;
  m.phase = "forward";
  m.seq_len = 128;
  m.batch = 1;
  m.status = "ok";
  store.record_measurements({"ab12ffff", "s", "measured one", "attention,mlp", "{}"}, id, sweep, {m}, true);
  store.start_point({"ab34eeee", "s", "trained one", "swa,mlp", "{}"}, id);
  auto records = store.training_records("ab34eeee");
  records->log_step(1, 64, 1e6, 4.5, 1e-3, 100, 0.5);
  records->log_step(2, 128, 2e6, 3.25, 1e-3, 100, 1.0);
  records->log_evaluation(2, "mqar", "accuracy", 0.4375, 64, std::nullopt, "{}");
  records->log_evaluation(2, "mqar", "loss", 2.5, 64, std::nullopt, "{}");
  records->log_evaluation(1, "mqar", "accuracy", 0.125, 64, std::nullopt, "{}");  // an earlier step: not shown
  store.finish_point("ab34eeee");
}

std::string config_error(Store& store, const ShowFilter& filter) {
  try {
    resolve_show_filter(store, filter);
  } catch (const ConfigError& error) {
    return error.what();
  }
  return "";
}

TEST(Show, FiltersThatNameNothingAreErrorsNamingWhatIsValid) {
  Store store(":memory:");
  fill(store);
  EXPECT_NE(config_error(store, {"nosuch", "", ""}).find("no sweep 'nosuch' in this database; sweeps: s"),
            std::string::npos);
  EXPECT_NE(config_error(store, {"", "fwd", ""}).find("valid: forward, forward_backward, decode"), std::string::npos);
  EXPECT_NE(config_error(store, {"", "", "zz"}).find("no point id starts with 'zz'"), std::string::npos);
  EXPECT_NE(config_error(store, {"", "", "ab"}).find("ambiguous: 2 points"), std::string::npos);
  EXPECT_EQ(config_error(store, {"s", "forward", ""}), "");
}

TEST(Show, PointIdPrefixResolvesToTheWholeId) {
  Store store(":memory:");
  fill(store);
  EXPECT_EQ(resolve_show_filter(store, {"", "", "ab3"}).point_id, "ab34eeee");
  EXPECT_EQ(resolve_show_filter(store, {"", "", "ab12ffff"}).point_id, "ab12ffff");
}

TEST(Show, TrainedPointsShowTheirLastStepAndEvaluations) {
  Store store(":memory:");
  fill(store);
  std::ostringstream training, evaluations;
  print_training(store, training, {});
  print_evaluations(store, evaluations, {});
  EXPECT_NE(training.str().find("trained one"), std::string::npos);
  EXPECT_NE(training.str().find("3.2500"), std::string::npos);  // the loss of step 2, not of step 1
  EXPECT_EQ(training.str().find("measured one"), std::string::npos);
  EXPECT_NE(evaluations.str().find("0.4375"), std::string::npos);
  EXPECT_NE(evaluations.str().find("2.5000"), std::string::npos);
  EXPECT_EQ(evaluations.str().find("0.1250"), std::string::npos);
  // A point filter leaves the others out.
  std::ostringstream other;
  print_training(store, other, resolve_show_filter(store, {"", "", "ab1"}));
  EXPECT_EQ(other.str(), "");
}

#ifdef MIXLAB_BINARY
// Through the binary: a bad filter exits 2 with one line on stderr and prints no table.
TEST(Show, BadFilterExitsTwoWithOneLine) {
  mixlab::testing::TempDir dir("show_cli");
  {
    Store store(dir.file("r.db"));
    fill(store);
  }
  const std::string out = dir.file("out.txt"), err = dir.file("err.txt");
  const int status = std::system((std::string(MIXLAB_BINARY) + " show --db " + dir.file("r.db") + " --phase fwd >" +
                                  out + " 2>" + err).c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream e(err), o(out);
  std::stringstream etext, otext;
  etext << e.rdbuf();
  otext << o.rdbuf();
  const std::string message = etext.str();
  EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 1) << message;
  EXPECT_EQ(otext.str(), "");
  const int ok = std::system((std::string(MIXLAB_BINARY) + " show --db " + dir.file("r.db") + " --point ab3 >" + out +
                              " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(ok), 0);
}
#endif

}  // namespace
}  // namespace mixlab
