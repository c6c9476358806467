// Sweep specs: expansion (grid × zip × points), stable ids, ranges, shards, and every validation
// error path (one-line error naming file and JSON path; exit status 2; nothing written).

#include "harness/config.h"
#include "harness/measure.h"
#include "harness/spec.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sys/wait.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

namespace fs = std::filesystem;

const char* kBase = R"({
  "name": "t",
  "base": {"model": {"vocab_size": 32, "d_model": 16, "n_heads": 2, "n_layers": 1,
                     "pattern": [{"mixer": "attention"}, {"mixer": "mlp"}]},
           "measure": {"seq_lens": [8, 16], "phases": ["forward"]}}
})";

json base_spec() { return json::parse(kBase); }

SweepSpec expand(const json& raw) { return expand_spec(raw, "spec.json", "cpu"); }

// The ConfigError of expanding `raw`, checked to name the file and to contain `path` and `words`.
void expect_error(const json& raw, const std::string& path, const std::string& words) {
  try {
    expand(raw);
    FAIL() << "expected a ConfigError at " << path;
  } catch (const ConfigError& error) {
    const std::string message = error.what();
    EXPECT_EQ(message.rfind("spec.json: ", 0), 0u) << message;
    EXPECT_NE(error.path.find(path), std::string::npos) << "path '" << error.path << "' lacks " << path;
    EXPECT_NE(message.find(words), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "one line: " << message;
  }
}

TEST(SpecTest, Sha256MatchesFipsTestVectors) {
  // FIPS 180-4 example vectors.
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(SpecTest, GridTimesZipTimesPoints) {
  json raw = base_spec();
  raw["points"] = json::array({json::object(), {{"model.n_layers", 2}}, {{"model", {{"vocab_size", 64}}}}});
  raw["grid"] = {{"model.d_model", {16, 32}}, {"measure.batch", {1, 2, 3}}};
  raw["zip"] = json::array({{{"model.n_heads", {1, 4}}, {"measure.repeats", {3, 5}}}});
  const SweepSpec spec = expand(raw);
  ASSERT_EQ(spec.points.size(), 3u * 2u * 3u * 2u);
  // Every combination appears exactly once, the zipped axes together.
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>> seen;
  for (const auto& p : spec.points) {
    const auto& m = p.config["model"];
    const auto& s = p.config["measure"];
    const int64_t heads = m["n_heads"].get<int64_t>(), repeats = s["repeats"].get<int64_t>();
    EXPECT_TRUE((heads == 1 && repeats == 3) || (heads == 4 && repeats == 5)) << p.origin;
    seen.insert({m["n_layers"].get<int64_t>(), m["vocab_size"].get<int64_t>(), m["d_model"].get<int64_t>(),
                 s["batch"].get<int64_t>(), heads, repeats});
  }
  std::set<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>> expected;
  for (auto [layers, vocab] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {2, 32}, {1, 64}})
    for (int64_t d : {16, 32})
      for (int64_t b : {1, 2, 3})
        for (auto [h, r] : std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {4, 5}}) expected.insert({layers, vocab, d, b, h, r});
  EXPECT_EQ(seen, expected);
  std::set<std::string> ids;
  for (const auto& p : spec.points) ids.insert(p.id);
  EXPECT_EQ(ids.size(), spec.points.size());
}

TEST(SpecTest, IdsStableAcrossKeyOrderFormattingAndDefaults) {
  const std::string a = R"({"name": "t", "base": {"measure": {"phases": ["forward"], "seq_lens": [8, 16]},
     "model": {"pattern": [{"mixer": "attention"}, "mlp"], "n_layers": 1, "n_heads": 2, "d_model": 16, "vocab_size": 32}}})";
  const std::string b = R"(
  // the same point, written differently
  { "base": { "model": { "vocab_size": 32, "d_model": 16.0, "n_heads": 2, "n_layers": 1,
                         "pattern": [ {"mixer": "attention", "rope_theta": 10000.0}, {"mixer": "mlp"} ] },
              "measure": { "seq_lens": {"from": 8, "to": 16, "times": 2}, "phases": ["forward"], "warmup": 2 } },
    "name": "t" })";
  const auto first = expand(parse_json_text(a, "a.json")).points.at(0);
  json b_json = parse_json_text(b, "b.json");
  b_json["base"]["model"]["d_model"] = 16;  // the strict model parser wants an integer here
  const auto second = expand(b_json).points.at(0);
  EXPECT_EQ(first.id, second.id);
  EXPECT_EQ(first.id.size(), 16u);
  EXPECT_EQ(first.id, sha256_hex(canonical_json(first.config)).substr(0, 16));
  json changed = parse_json_text(a, "a.json");
  changed["base"]["model"]["d_model"] = 32;
  EXPECT_NE(expand(changed).points.at(0).id, first.id);
  // The device is part of the point: a CPU and a GPU run of one spec are different points.
  EXPECT_NE(expand_spec(parse_json_text(a, "a.json"), "a.json", "cuda").points.at(0).id, first.id);
  // Canonical JSON: sorted keys, no whitespace, integral floats as integers.
  EXPECT_EQ(canonical_json(json::parse(R"({"b": 1.0, "a": [2, {"d": 0.5, "c": 3}]})")), R"({"a":[2,{"c":3,"d":0.5}],"b":1})");
}

TEST(SpecTest, DuplicatePointsAreResolvedOnce) {
  json raw = base_spec();
  raw["points"] = json::array({json::object(), {{"model.d_model", 16}}});  // the same config twice
  EXPECT_EQ(expand(raw).points.size(), 1u);
}

TEST(SpecTest, SequenceLengthRanges) {
  EXPECT_EQ(expand_seq_lens(json::parse(R"({"from": 256, "to": 65536, "times": 2})"), "f", "p"),
            (std::vector<int64_t>{256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536}));
  EXPECT_EQ(expand_seq_lens(json::parse(R"({"from": 100, "to": 1000, "times": 3})"), "f", "p"),
            (std::vector<int64_t>{100, 300, 900}));
  EXPECT_EQ(expand_seq_lens(json::parse(R"({"from": 64, "to": 256, "step": 64})"), "f", "p"),
            (std::vector<int64_t>{64, 128, 192, 256}));
  EXPECT_EQ(expand_seq_lens(json::parse("[512, 128]"), "f", "p"), (std::vector<int64_t>{128, 512}));
}

TEST(SpecTest, ShardsPartitionThePoints) {
  json raw = base_spec();
  raw["grid"] = {{"model.d_model", {16, 32, 48}}, {"measure.batch", {1, 2, 3, 4, 5}}};
  const auto spec = expand(raw);
  for (int64_t n : {1, 2, 3, 4, 16}) {
    std::multiset<std::string> all;
    for (int64_t i = 0; i < n; ++i)
      for (const auto& p : shard_points(spec.points, i, n)) all.insert(p.id);
    std::multiset<std::string> whole;
    for (const auto& p : spec.points) whole.insert(p.id);
    EXPECT_EQ(all, whole) << n << " shards";
  }
  EXPECT_EQ(parse_shard("2/5", "--shard"), std::make_pair(int64_t{2}, int64_t{5}));
  for (const char* bad : {"5/5", "-1/2", "1", "a/b", "1/0", "1/2x"}) EXPECT_THROW(parse_shard(bad, "--shard"), ConfigError) << bad;
}

TEST(SpecTest, ValidationErrorsNameFileAndPath) {
  auto with = [](const std::function<void(json&)>& edit) {
    json raw = base_spec();
    edit(raw);
    return raw;
  };
  expect_error(with([](json& r) { r["colour"] = 1; }), "colour", "unknown key; valid: name");
  expect_error(with([](json& r) { r.erase("name"); }), "name", "non-empty string");
  expect_error(with([](json& r) { r["name"] = "a b"; }), "name", "letters, digits");
  expect_error(with([](json& r) { r["base"]["optimizer"] = 1; }), "base.optimizer", "valid: model, measure, train");
  expect_error(with([](json& r) { r["base"]["model"]["depth"] = 3; }), "base.model.depth", "unknown key");
  expect_error(with([](json& r) { r["base"]["model"]["pattern"][0]["mixer"] = "atention"; }), "pattern[0].mixer",
               "unknown mixer 'atention'; valid: ");  // the names follow (additive_conv_attention sorts first)
  expect_error(with([](json& r) { r["base"]["model"]["pattern"][1]["hiden"] = 3; }), "pattern[1]", "hidden");
  expect_error(with([](json& r) { r["base"]["model"]["d_model"] = "wide"; }), "base.model.d_model", "integer");
  expect_error(with([](json& r) { r["base"]["model"]["d_model"] = 0; }), "base.model.d_model", "valid range");
  expect_error(with([](json& r) { r["base"]["model"]["preset"] = "no-such-preset"; }), "base.model.preset",
               "unknown preset");
  expect_error(with([](json& r) { r["base"].erase("model"); }), "base.model", "is missing");
  expect_error(with([](json& r) { r["grid"] = {{"model.d_model", json::array()}}; }), "grid.model.d_model",
               "empty axis");
  expect_error(with([](json& r) { r["grid"] = json::object(); }), "grid", "is empty");
  expect_error(with([](json& r) { r["grid"] = {{"model.d_model", 16}}; }), "grid.model.d_model", "list of values");
  expect_error(with([](json& r) { r["grid"] = {{"d_model", {16}}}; }), "grid.d_model", "must start with one of");
  expect_error(with([](json& r) { r["zip"] = {{"model.d_model", {16, 32}}, {"model.n_heads", {2}}}; }),
               "zip.model", "equally long");
  expect_error(with([](json& r) {
                 r["grid"] = {{"model.d_model", {16}}};
                 r["zip"] = {{"model.d_model", {32}}};
               }),
               "zip.model.d_model", "varied twice");
  expect_error(with([](json& r) { r["points"] = json::array(); }), "points", "empty list");
  expect_error(with([](json& r) { r["points"] = json::array({{{"modle", {}}}}); }), "points[0].modle",
               "must start with one of");
  expect_error(with([](json& r) { r["grid"] = {{"model.d_model", {16, 17}}}; }), "n_heads",
               "model.d_model=17");  // names the grid value that made the point invalid
  expect_error(with([](json& r) { r["base"]["measure"]["repeat"] = 3; }), "base.measure.repeat",
               "valid: seq_lens");
  expect_error(with([](json& r) { r["base"]["measure"]["device"] = "cuda"; }), "base.measure.device", "--device");
  expect_error(with([](json& r) { r["base"]["measure"]["phases"] = {"fwd"}; }), "base.measure.phases[0]",
               "valid: forward, forward_backward, decode");
  expect_error(with([](json& r) { r["base"]["measure"]["seq_lens"] = json::array(); }), "base.measure.seq_lens",
               "empty list");
  expect_error(with([](json& r) { r["base"]["measure"]["seq_lens"] = {{"from", 8}, {"to", 64}, {"times", 1}}; }),
               "base.measure.seq_lens.times", "valid range");
  expect_error(with([](json& r) { r["base"]["measure"]["seq_lens"] = {{"from", 64}, {"to", 8}, {"times", 2}}; }),
               "base.measure.seq_lens.to", "valid range");
  expect_error(with([](json& r) { r["base"]["measure"]["seq_lens"] = {8, 8}; }), "base.measure.seq_lens", "twice");
  expect_error(with([](json& r) { r["base"]["measure"]["batch"] = 0; }), "base.measure.batch", "valid range");
  expect_error(with([](json& r) { r["base"]["measure"]["dtype"] = "fp8"; }), "base.measure.dtype", "valid: auto");
  expect_error(with([](json& r) { r["base"]["measure"].erase("seq_lens"); }), "base.measure.seq_lens", "missing");
  // Malformed JSON names the line and column.
  try {
    parse_json_text("{\n  \"name\": \"t\",\n  \"base\": {,}\n}", "bad.json");
    FAIL();
  } catch (const ConfigError& error) {
    EXPECT_NE(std::string(error.what()).find("bad.json: malformed JSON at line 3"), std::string::npos) << error.what();
  }
}

// The specs shipped in experiments/ expand (those built on presets once the presets exist).
TEST(SpecTest, ShippedSpecsExpand) {
  const std::vector<std::tuple<std::string, std::string, size_t>> shipped = {
      {"quickstart.json", "cpu", 4}, {"scaling.json", "cuda", 16},
      {"paper/scout-decode.json", "cuda", 9}, {"paper/scout-decode-cpu.json", "cpu", 4},
      {"paper/scout-prefill.json", "cuda", 27}};
  for (const auto& [name, device, count] : shipped) {
    const std::string file = std::string(MIXLAB_SOURCE_DIR) + "/experiments/" + name;
    try {
      const SweepSpec spec = load_spec(file, device);
      EXPECT_EQ(spec.points.size(), count) << name;
      for (const auto& p : spec.points) EXPECT_EQ(p.config["measure"]["device"], device);
    } catch (const ConfigError& error) {
      const std::string message = error.what();
      if (message.find("unknown preset") == std::string::npos) ADD_FAILURE() << message;
      else std::cout << "[ skipped  ] " << name << ": its presets are not in this checkout\n";
    }
  }
}

#ifdef MIXLAB_BINARY
// Through the command line: exit status 2, one line on stderr, nothing written.
TEST(SpecTest, CommandLineRejectsBadSpecWritingNothing) {
  const fs::path dir = fs::temp_directory_path() / ("mixlab_spec_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  json raw = base_spec();
  raw["grid"] = {{"model.d_model", json::array()}};
  std::ofstream(dir / "bad.json") << raw.dump(2);
  const std::string db = (dir / "out.db").string();
  const std::string command = std::string(MIXLAB_BINARY) + " sweep " + (dir / "bad.json").string() + " --device cpu --db " +
                              db + " 2>" + (dir / "err.txt").string() + " >/dev/null";
  const int status = std::system(command.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_FALSE(fs::exists(db));
  std::ifstream err(dir / "err.txt");
  std::string line, rest;
  std::getline(err, line);
  EXPECT_NE(line.find("bad.json: at grid.model.d_model: is an empty axis"), std::string::npos) << line;
  EXPECT_FALSE(std::getline(err, rest)) << "more than one line: " << rest;
  // --dry-run prints the resolved points and their count, and writes nothing.
  std::ofstream(dir / "good.json") << base_spec().dump();
  const std::string dry = std::string(MIXLAB_BINARY) + " sweep " + (dir / "good.json").string() +
                          " --device cpu --dry-run --db " + db + " >" + (dir / "dry.txt").string();
  ASSERT_EQ(std::system(dry.c_str()), 0);
  std::ifstream out(dir / "dry.txt");
  std::string text((std::istreambuf_iterator<char>(out)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("1 point (device cpu)"), std::string::npos) << text;
  EXPECT_NE(text.find(expand(base_spec()).points[0].id), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(db));
  fs::remove_all(dir);
}
#endif

}  // namespace
}  // namespace mixlab
