// `mixlab bench --preset scout-swa --set model.d_model=512 --seq 1024,4096`: an ad-hoc measurement
// without a spec file.  It builds a one-point spec and runs it through the same code path as
// `mixlab sweep` (into an in-memory database unless --db is given), then prints the table.

#include "cli/command.h"
#include "cli/set_option.h"
#include "harness/config.h"
#include "harness/device.h"
#include "harness/model_file.h"
#include "harness/progress.h"
#include "harness/spec.h"
#include "harness/show.h"
#include "harness/sweep.h"

#include <iostream>
#include <sstream>

namespace mixlab::cli {
namespace {

struct BenchOptions {
  std::string preset;
  std::string model_file;
  std::string init_from;
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
  const int given = !o.preset.empty() + !o.model_file.empty();
  if (given > 1 || (given == 0 && o.init_from.empty()))
    throw ConfigError("bench", "", "give one of --preset NAME, --config FILE.json or --init-from MODEL");
  json model = !o.preset.empty() ? json{{"preset", o.preset}}
               : !o.model_file.empty() ? read_json_file(o.model_file)
                                       : model_json_of(o.init_from);  // the file's own model
  if (model.contains("model")) model = model["model"];
  if (!o.init_from.empty()) model["init_from"] = o.init_from;
  json seq_lens = json::array();
  for (const auto& item : split(o.seq, ',')) {
    const ConfigError bad("--seq", "", "'" + item + "' is not a sequence length; e.g. --seq 1024,4096");
    size_t used = 0;
    try {
      seq_lens.push_back(std::stoll(item, &used));
    } catch (const std::logic_error&) {
      throw bad;
    }
    if (used != item.size()) throw bad;  // "12x" or "4k": stoll would read a prefix
  }
  json measure = {{"seq_lens", seq_lens}, {"batch", o.batch}, {"dtype", o.dtype}, {"repeats", o.repeats},
                  {"warmup", o.warmup}};
  if (!o.phases.empty()) measure["phases"] = split(o.phases, ',');
  json base = {{"model", model}, {"measure", measure}};
  apply_section_sets(base, o.sets, {"model", "measure"}, "mixlab bench", " (bench measures; mixlab train trains)");
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
                          app.add_option("--config", o->model_file, "explicit model JSON file instead of a preset");
                          add_hidden_alias(app, "--model", o->model_file);
                          app.add_option("--init-from", o->init_from,
                                         "load the weights of a model file or folder (mixlab or HF names; without "
                                         "--preset/--config its config.json gives the model)");
                          app.add_option("--set", o->sets,
                                         "override, e.g. model.d_model=512 or measure.repeats=5 (base. accepted)");
                          app.add_option("--seq", o->seq, "sequence lengths, e.g. 1024,4096")->required();
                          app.add_option("--phases", o->phases, "forward,forward_backward,decode (default all)");
                          add_hidden_alias(app, "--phase", o->phases);
                          app.add_option("--batch", o->batch, "sequences per call")->capture_default_str();
                          app.add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
                          app.add_option("--dtype", o->dtype, "auto, float32, bfloat16, ...")->capture_default_str();
                          app.add_option("--repeats", o->repeats, "timed repeats (at most)")->capture_default_str();
                          app.add_option("--warmup", o->warmup, "untimed warm-up calls")->capture_default_str();
                          app.add_option("--db", o->db, "also keep the rows in this database");
                          return [o] { return run_bench(*o); };
                        });

}  // namespace mixlab::cli
