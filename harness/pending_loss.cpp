#include "harness/pending_loss.h"

#ifdef MIXLAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#endif

namespace mixlab {

#ifdef MIXLAB_WITH_CUDA
struct PendingLoss::Event {
  at::cuda::CUDAEvent event;
};
#else
struct PendingLoss::Event {};
#endif

PendingLoss::PendingLoss(const torch::Tensor& loss) {
  const auto wide = loss.detach().to(torch::kFloat64).reshape({});
#ifdef MIXLAB_WITH_CUDA
  if (wide.is_cuda()) {
    host_ = torch::empty({}, torch::TensorOptions().dtype(torch::kFloat64).pinned_memory(true));
    host_.copy_(wide, /*non_blocking=*/true);
    ready_ = std::make_unique<Event>();
    ready_->event.record(at::cuda::getCurrentCUDAStream());
    return;
  }
#endif
  host_ = wide.device().is_cpu() ? wide.clone() : wide.cpu();
}

PendingLoss::~PendingLoss() = default;
PendingLoss::PendingLoss(PendingLoss&&) noexcept = default;
PendingLoss& PendingLoss::operator=(PendingLoss&&) noexcept = default;

double PendingLoss::value() {
#ifdef MIXLAB_WITH_CUDA
  if (ready_) ready_->event.synchronize();
#endif
  return host_.item<double>();
}

}  // namespace mixlab
