#include "harness/graphed_train_step.h"

#include "harness/cuda_graph.h"

#include <ATen/autocast_mode.h>

namespace mixlab {

namespace {

// Autocast's cache of casted weights off for a scope (the capture): see the header.
class AutocastCacheOff {
 public:
  AutocastCacheOff() : was_(at::autocast::is_autocast_cache_enabled()) { at::autocast::set_autocast_cache_enabled(false); }
  ~AutocastCacheOff() { at::autocast::set_autocast_cache_enabled(was_); }
  AutocastCacheOff(const AutocastCacheOff&) = delete;
  AutocastCacheOff& operator=(const AutocastCacheOff&) = delete;

 private:
  bool was_;
};

std::vector<int64_t> key_of(const std::vector<LossInputs>& inputs) {
  std::vector<int64_t> key;
  for (const auto& micro : inputs)
    for (int64_t size : micro.shape()) key.push_back(size);
  return key;
}

}  // namespace

struct GraphedTrainStep::Shape {
  std::vector<LossInputs> inputs;  // static device buffers, rewritten before every replay
  torch::Tensor loss;              // [] the step's loss, rewritten by every replay
  std::unique_ptr<CapturedCall> graph;
};

GraphedTrainStep::GraphedTrainStep(QueueStep queue_step, FlatAdamW& optimizer, torch::Device device)
    : queue_step_(std::move(queue_step)), optimizer_(optimizer), device_(device) {}

GraphedTrainStep::~GraphedTrainStep() = default;

GraphedTrainStep::Shape* GraphedTrainStep::shape_for(const std::vector<LossInputs>& host_inputs) {
  if (!capturable_) return nullptr;  // a capture failed: the step cannot be graphed at all
  const auto key = key_of(host_inputs);
  if (auto found = shapes_.find(key); found != shapes_.end()) return found->second.get();
  if (static_cast<int>(shapes_.size()) >= kMaxShapes) {
    why_not_ = "the number of positions with a target changes from batch to batch (more than " +
               std::to_string(kMaxShapes) + " shapes captured)";
    return nullptr;
  }
  auto shape = std::make_unique<Shape>();
  for (const auto& micro : host_inputs) shape->inputs.push_back(micro.to(device_));
  Shape* raw = shape.get();
  const auto saved = optimizer_.snapshot();
  {
    AutocastCacheOff no_cast_cache;
    shape->graph = std::make_unique<CapturedCall>([this, raw] { raw->loss = queue_step_(raw->inputs); }, /*warmup=*/2);
  }
  optimizer_.restore(saved);  // the warm-up's steps are undone
  if (!shape->graph->captured()) {
    why_not_ = shape->graph->why_not();
    capturable_ = false;
    return nullptr;
  }
  shapes_[key] = std::move(shape);
  return raw;
}

torch::Tensor GraphedTrainStep::replay(const std::vector<LossInputs>& host_inputs) {
  Shape* shape = shape_for(host_inputs);
  if (!shape) return {};
  if (capturable_) why_not_.clear();
  for (size_t m = 0; m < host_inputs.size(); ++m) shape->inputs[m].copy_from(host_inputs[m]);
  shape->graph->replay();
  return shape->loss;
}

}  // namespace mixlab
