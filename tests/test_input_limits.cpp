// Limits on what mixlab reads (harness/json_input.h) and on what it allocates or runs from it:
// JSON nesting and number range with the JSON path in the error, UTF-8, checked size products,
// bounded expansions, the time budget between repeats, and a checkpoint write on a full disk
// that fails with an ordinary error instead of aborting the process.

#include "tests/temp_dir.h"
#include "harness/checkpoint.h"
#include "harness/config.h"
#include "harness/json_input.h"
#include "harness/measure.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& error) {
    return error.what();
  }
  return "";
}

TEST(InputLimitsTest, NestingIsBoundedWhateverTheDepth) {
  EXPECT_NO_THROW(parse_json_bounded(nested(kMaxJsonDepth), false));
  EXPECT_NE(error_of([] { parse_json_bounded(nested(kMaxJsonDepth + 1), false); }).find("nested more than 64"),
            std::string::npos);
  // Deep enough to overflow the stack in any recursive walk.
  const std::string message = error_of([] { parse_json_text("{\"a\": [" + nested(200000) + "]}", "deep.json"); });
  EXPECT_EQ(message.rfind("deep.json: at a[0][0]", 0), 0u) << message.substr(0, 200);
}

TEST(InputLimitsTest, ANumberBeyondADoubleNamesItsPath) {
  const std::string message =
      error_of([] { parse_json_text("{\"base\": {\"measure\": {\"seq_lens\": [8, 1e400]}}}", "s.json"); });
  EXPECT_EQ(message.rfind("s.json: at base.measure.seq_lens[1]: number overflow", 0), 0u) << message;
  EXPECT_EQ(parse_json_text("[1e300, -1e300, 18446744073709551616]", "ok.json").size(), 3u);
}

TEST(InputLimitsTest, SyntaxErrorsKeepTheirLineAndColumn) {
  EXPECT_EQ(error_of([] { parse_json_text("{\n  \"a\": ,\n}", "f.json"); }).rfind("f.json: malformed JSON at line 2, column ", 0), 0u);
}

TEST(InputLimitsTest, Utf8IsCheckedByRfc3629) {
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  EXPECT_FALSE(is_valid_utf8("caf\xff"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // a UTF-16 surrogate
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
}

TEST(InputLimitsTest, SetAssignmentsAreCheckedBeforeUse) {
  json spec = json::object();
  EXPECT_NE(error_of([&] { apply_dotted_set(spec, "base.description=caf\xff"); }).find("is not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_dotted_set(spec, "base.x=" + std::string(100, '[')); }).find("nested more than 64"),
            std::string::npos);
  EXPECT_NE(error_of([&] { apply_dotted_set(spec, "base.x=1e999"); }).find("number overflow"), std::string::npos);
  json with_list = {{"pattern", {1, 2}}};
  EXPECT_NE(error_of([&] { set_dotted(with_list, "pattern.99999999999999999999", 3); }).find("far past the end"),
            std::string::npos);
  EXPECT_TRUE(get_dotted(with_list, "pattern.99999999999999999999").is_null());
  apply_dotted_set(spec, "base.note=[not json");  // not JSON at all: taken as a string, as before
  EXPECT_EQ(spec["base"]["note"], "[not json");
}

TEST(InputLimitsTest, CheckedMultiplyReportsOverflow) {
  int64_t product = 0;
  EXPECT_TRUE(checked_multiply(int64_t{1} << 31, int64_t{1} << 31, product));
  EXPECT_EQ(product, int64_t{1} << 62);
  EXPECT_FALSE(checked_multiply(int64_t{1} << 40, int64_t{1} << 40, product));
}

TEST(InputLimitsTest, TheTimeBudgetEndsRepeatsInsideOneMeasurement) {
  MeasureSettings settings;
  settings.warmup = 2;
  settings.repeats = 1000;
  settings.min_repeats = 1000;
  settings.target_seconds = 1e9;
  CallTimer timer(Device{"cpu", "float32"});
  int calls = 0;
  const auto samples = time_repeats([&] { ++calls; }, settings, timer, [&] { return calls >= 5; });
  // Two warm-up calls, then repeats until the budget says stop after the 5th call: 3 samples.
  EXPECT_EQ(calls, 5);
  EXPECT_EQ(samples.size(), 3u);
  // Out of time from the start: still one sample, so the row has a value.
  calls = 0;
  EXPECT_EQ(time_repeats([&] { ++calls; }, settings, timer, [] { return true; }).size(), 1u);
}

// A training checkpoint is written to checkpoint.safetensors.tmp and renamed over the old one.
// With the .tmp a link to /dev/full every write fails with ENOSPC, as on a full disk: the save
// must throw an ordinary error that says so, and leave the previous checkpoint as it was.
TEST(InputLimitsTest, ACheckpointOnAFullDiskFailsWithAnErrorNotAnAbort) {
  mixlab::testing::TempDir dir("full_disk");
  const std::string path = dir.file("checkpoint.safetensors");
  torch::manual_seed(0);
  torch::nn::Linear model(64, 1024);
  FlatAdamW optimizer({{"weight", model->weight}, {"bias", model->bias}}, AdamWSettings{});
  optimizer.set_learning_rate(1e-3);
  model->forward(torch::randn({2, 64})).sum().backward();
  optimizer.step();
  const json model_json = {{"d_model", 64}};
  save_training_checkpoint(path, *model, optimizer, {1, 0.5, "before"}, model_json);
  const auto weights_before = model->weight.detach().clone();

  optimizer.step();  // the model moves on; its next checkpoint hits the full disk
  fs::create_symlink("/dev/full", path + ".tmp");
  const std::string message = error_of([&] { save_training_checkpoint(path, *model, optimizer, {2, 1.0, "after"}, model_json); });
  EXPECT_NE(message.find("No space left on device"), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));  // nothing half-written is left
  const auto kept = read_checkpoint_state(path);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->step, 1);
  EXPECT_EQ(kept->fingerprint, "before");
  torch::nn::Linear reloaded(64, 1024);
  FlatAdamW reloaded_optimizer({{"weight", reloaded->weight}, {"bias", reloaded->bias}}, AdamWSettings{});
  load_training_checkpoint(path, *reloaded, reloaded_optimizer);
  EXPECT_TRUE(torch::equal(reloaded->weight, weights_before));

  // And with room on the disk the same save succeeds and reads back.
  save_training_checkpoint(path, *model, optimizer, {2, 1.0, "after"}, model_json);
  EXPECT_EQ(read_checkpoint_state(path)->step, 2);
  load_training_checkpoint(path, *reloaded, reloaded_optimizer);
  EXPECT_TRUE(torch::equal(reloaded->weight, model->weight));
}

}  // namespace
}  // namespace mixlab
