#pragma once
// Training curves as a CSV file beside the database (`--curves-csv FILE` on train and sweep;
// docs/training.md, "Progress and logs"), one row per value, long format (pandas: pivot on name):
//
//   point_id,label,step,kind,name,value
//   3f2a...,transformer,10,train,loss,3.2101          train_log: loss, lr, tokens, tokens_per_s, elapsed_s, mfu
//   3f2a...,transformer,10,eval,mqar/accuracy,0.15    evaluations (not the per-position buckets)
//
// Written from the database after the run (to FILE.tmp, then renamed), for the given points.

#include "harness/store.h"

#include <string>
#include <vector>

namespace mixlab {

// Returns the number of rows written.
int64_t write_curves_csv(Store& store, const std::vector<std::string>& point_ids, const std::string& path);

}  // namespace mixlab
