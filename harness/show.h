#pragma once
// `mixlab show` (and the summary of `mixlab bench`): a results database as terminal tables.  The
// queries are the reports' (reports/queries.h), the tables the reports' renderer
// (reports/tables.h, render_text).  Filters are checked against the database before anything is
// printed (a typo is an error naming what is valid, never an empty table); point ids are given by
// any unique prefix.

#include "harness/store.h"
#include "reports/queries.h"

#include <iosfwd>

namespace mixlab {

using reports::ShowFilter;

// Throws ConfigError(db, "--sweep" | "--phase" | "--point", what is valid) for a sweep name the
// database does not hold, a phase that is not one of phase_names(), or a point id prefix that
// matches no point or several; returns the filter with the full point id.
ShowFilter resolve_show_filter(Store& store, const ShowFilter& filter);

// Every sweep with its provenance (device, LibTorch, commit, host, shard).
void print_sweeps(Store& store, std::ostream& out);
// Point status counts per sweep, failed points with their errors, measurements that did not succeed.
void print_point_summary(Store& store, std::ostream& out, const ShowFilter& filter);
// Per trained point: steps, tokens, FLOPs, final training loss, wall time.
void print_training(Store& store, std::ostream& out, const ShowFilter& filter);
// Per point, the last evaluation step's values of each task and metric (position buckets left out).
void print_evaluations(Store& store, std::ostream& out, const ShowFilter& filter);
// One line per measurement: latency and its spread, throughput, FLOPs, memory, state, parameters.
void print_measurements(Store& store, std::ostream& out, const ShowFilter& filter);

}  // namespace mixlab
