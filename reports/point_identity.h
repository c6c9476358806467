#pragma once
// What makes two points one configuration.  A point's "train" object also says how its steps ran
// and how densely its curve was recorded; those change no number the point reports, so a point's
// id, its run's fingerprint (harness/spec.cpp, harness/train.cpp) and the reports' grouping of
// configurations (reports/recall_figure.cpp) are all made without them:
//
//   training_identity(train) = train without "execution" (eager or CUDA graphs) and "curve_every"
//                              (a train_log row every k steps)
//
// Here, not in harness/, because the reports build without LibTorch and harness/ may include
// reports/ (not the other way round).

#include <nlohmann/json.hpp>

namespace mixlab {

inline nlohmann::json training_identity(const nlohmann::json& train) {
  nlohmann::json identity = train;
  if (identity.is_object()) {
    identity.erase("execution");
    identity.erase("curve_every");
  }
  return identity;
}

}  // namespace mixlab
