// `mixlab bench --preset scout-swa --set model.d_model=512 --seq 1024,4096`: an ad-hoc measurement
// without a spec file.  It builds a one-point spec and runs it through the same code path as
// `mixlab sweep` (into an in-memory database unless --db is given), then prints the table.

#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/device.h"
#include "harness/progress.h"
#include "harness/spec.h"
#include "harness/sweep.h"

#include <iostream>
#include <sstream>

namespace mixlab::cli {
namespace {

struct BenchOptions {
  std::string preset;
  std::string model_file;
  std::vector<std::string> sets;
  std::string seq;
  std::string phases;
  int64_t batch = 1;
  std::string device = "auto";
  std::string dtype = "auto";
  int64_t repeats = 10;
  int64_t warmup = 2;
  std::string db = ":memory:";
};

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> items;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, separator))
    if (!item.empty()) items.push_back(item);
  return items;
}

int run_bench(const BenchOptions& o) {
  if (o.preset.empty() == o.model_file.empty())
    throw ConfigError("bench", "", "give exactly one of --preset NAME or --model FILE.json");
  json model = o.preset.empty() ? read_json_file(o.model_file) : json{{"preset", o.preset}};
  if (model.contains("model")) model = model["model"];
  json seq_lens = json::array();
  for (const auto& item : split(o.seq, ',')) {
    try {
      seq_lens.push_back(std::stoll(item));
    } catch (const std::logic_error&) {
      throw ConfigError("--seq", "", "'" + item + "' is not a sequence length; e.g. --seq 1024,4096");
    }
  }
  json measure = {{"seq_lens", seq_lens}, {"batch", o.batch}, {"dtype", o.dtype}, {"repeats", o.repeats},
                  {"warmup", o.warmup}};
  if (!o.phases.empty()) measure["phases"] = split(o.phases, ',');
  json base = {{"model", model}, {"measure", measure}};
  for (const auto& assignment : o.sets) {
    try {
      apply_dotted_set(base, assignment);
    } catch (const ConfigError& error) {
      throw ConfigError("--set", error.path.empty() ? assignment : error.path, error.detail);
    }
  }
  const std::string device = resolve_device_kind(o.device, "--device");
  const SweepSpec spec = expand_spec(json{{"name", "bench"}, {"base", base}}, "bench", device);
  Store store(o.db);
  SweepOptions options;
  options.progress = Progress::stderr_is_terminal();
  options.force = true;
  const SweepSummary summary = run_sweep(spec, store, device, options);
  ShowFilter filter;
  filter.point_id = spec.points.front().id;
  std::cout << spec.points.front().label << "  (" << spec.points.front().id << ", " << device << ", "
            << spec.points.front().config["measure"]["dtype"].get<std::string>() << ")\n";
  if (summary.failed) {
    print_point_summary(store, std::cout, {});
    return 1;
  }
  print_measurements(store, std::cout, filter);
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(bench, "measure one model ad hoc (no spec file) and print a table",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<BenchOptions>();
                          app.add_option("--preset", o->preset, "model preset (experiments/presets/NAME.json)");
                          app.add_option("--model", o->model_file, "explicit model JSON file instead of a preset");
                          app.add_option("--set", o->sets, "override, e.g. model.d_model=512 or measure.repeats=5");
                          app.add_option("--seq", o->seq, "sequence lengths, e.g. 1024,4096")->required();
                          app.add_option("--phases", o->phases, "forward,forward_backward,decode (default all)");
                          app.add_option("--batch", o->batch, "sequences per call")->capture_default_str();
                          app.add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
                          app.add_option("--dtype", o->dtype, "auto, float32, bfloat16, ...")->capture_default_str();
                          app.add_option("--repeats", o->repeats, "timed repeats (at most)")->capture_default_str();
                          app.add_option("--warmup", o->warmup, "untimed warm-up calls")->capture_default_str();
                          app.add_option("--db", o->db, "also keep the rows in this database");
                          return [o] { return run_bench(*o); };
                        });

}  // namespace mixlab::cli
