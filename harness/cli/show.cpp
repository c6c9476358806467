// `mixlab show --db results.db [--sweep NAME] [--phase PHASE] [--point ID]`: the sweeps in a
// results database (with provenance), point status counts, failures with their reasons, and a
// measurement table.

#include "harness/cli/command.h"
#include "harness/config.h"
#include "harness/sweep.h"

#include <filesystem>
#include <iostream>

namespace mixlab::cli {
namespace {

struct ShowOptions {
  std::string db;
  ShowFilter filter;
  bool summary_only = false;
};

int run_show(const ShowOptions& o) {
  if (!std::filesystem::exists(o.db)) throw ConfigError(o.db, "", "no such results database");
  Store store(o.db);
  print_sweeps(store, std::cout);
  print_point_summary(store, std::cout, o.filter);
  if (!o.summary_only) print_measurements(store, std::cout, o.filter);
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(show, "summarise a results database: sweeps, point status, failures, measurements",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<ShowOptions>();
                          app.add_option("--db", o->db, "results database")->required();
                          app.add_option("--sweep", o->filter.sweep_name, "only this sweep name");
                          app.add_option("--phase", o->filter.phase, "only this phase (forward, forward_backward, decode)");
                          add_hidden_alias(app, "--phases", o->filter.phase);
                          app.add_option("--point", o->filter.point_id, "only this point id");
                          app.add_flag("--summary", o->summary_only, "leave out the measurement table");
                          return [o] { return run_show(*o); };
                        });

}  // namespace mixlab::cli
