#pragma once
// `mixlab show`: the filters checked against the database before anything is printed (a typo is
// an error naming what is valid, never an empty table), point ids given by any unique prefix,
// and the training and evaluation summaries beside the measurement table of harness/sweep.h.

#include "harness/store.h"
#include "harness/sweep.h"

#include <iosfwd>

namespace mixlab {

// Throws ConfigError(db, "--sweep" | "--phase" | "--point", what is valid) for a sweep name the
// database does not hold, a phase that is not one of phase_names(), or a point id prefix that
// matches no point or several; returns the filter with the full point id.
ShowFilter resolve_show_filter(Store& store, const ShowFilter& filter);

// Per trained point: steps, tokens, FLOPs, final training loss, wall time.
void print_training(Store& store, std::ostream& out, const ShowFilter& filter);
// Per point, the last evaluation step's values of each task and metric (position buckets left out).
void print_evaluations(Store& store, std::ostream& out, const ShowFilter& filter);

}  // namespace mixlab
