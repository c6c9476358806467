#include "harness/training_hook.h"

#include <memory>

namespace mixlab {
namespace {
std::unique_ptr<TrainingHook>& slot() {
  static std::unique_ptr<TrainingHook> hook;
  return hook;
}
}  // namespace

void register_training_hook(TrainingHook hook) { slot() = std::make_unique<TrainingHook>(std::move(hook)); }
const TrainingHook* training_hook() { return slot().get(); }

}  // namespace mixlab
