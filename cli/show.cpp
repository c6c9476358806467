// `mixlab show --db results.db [--sweep NAME] [--phase PHASE] [--point ID-PREFIX]`: the sweeps in
// a results database (with provenance), point status counts, failures with their reasons, the
// last training step and evaluations of trained points, and a measurement table.  A filter that
// names nothing in the database is an error (exit 2) naming what is valid.

#include "cli/command.h"
#include "harness/config.h"
#include "harness/show.h"
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
  Store store(o.db, Store::Mode::read_only);  // show never writes, not even the schema
  const ShowFilter filter = resolve_show_filter(store, o.filter);  // before printing anything
  print_sweeps(store, std::cout);
  print_point_summary(store, std::cout, filter);
  print_training(store, std::cout, filter);
  print_evaluations(store, std::cout, filter);
  if (!o.summary_only) print_measurements(store, std::cout, filter);
  return 0;
}

}  // namespace

MIXLAB_REGISTER_COMMAND(show, "summarise a results database: sweeps, point status, failures, training, evaluations, measurements",
                        [](CLI::App& app) -> Action {
                          auto o = std::make_shared<ShowOptions>();
                          app.add_option("--db", o->db, "results database")->required();
                          app.add_option("--sweep", o->filter.sweep_name, "only this sweep name");
                          app.add_option("--phase", o->filter.phase, "only this phase (forward, forward_backward, decode)");
                          add_hidden_alias(app, "--phases", o->filter.phase);
                          app.add_option("--point", o->filter.point_id, "only this point (its id or a unique prefix of it)");
                          app.add_flag("--summary", o->summary_only, "leave out the measurement table");
                          return [o] { return run_show(*o); };
                        });

}  // namespace mixlab::cli
