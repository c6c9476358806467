// LibTorch entry of the cross-entropy row kernels (cross_entropy_rows.cu): which inputs they take
// and the launches.  The reference and the dispatch are harness/cross_entropy_rows.cpp's.  Nothing
// here synchronises with the host (scale stays on the device), so a CUDA graph can capture both.

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "harness/cuda/kernels.h"
#include "harness/cuda/launch.h"

namespace mixlab::cuda {
namespace {

bool logit_element_of(torch::ScalarType dtype, detail::LogitElement& element) {
  switch (dtype) {
    case torch::kFloat: element = detail::LogitElement::f32; return true;
    case torch::kBFloat16: element = detail::LogitElement::bf16; return true;
    case torch::kHalf: element = detail::LogitElement::fp16; return true;
    default: return false;
  }
}

void* current_stream() { return at::cuda::getCurrentCUDAStream().stream(); }

void check_supported(const torch::Tensor& logits, const torch::Tensor& targets, const char* what) {
  TORCH_CHECK(cross_entropy_rows_supported(logits, targets), "harness/cuda/cross_entropy_rows_binding.cpp: ", what,
              ": the kernels take CUDA logits [M, V] (contiguous, float32 / bf16 / fp16, 1 <= M < 2^31) and "
              "targets [M] int64 on the same device; got logits ",
              logits.sizes(), " ", logits.scalar_type(), " on ", logits.device(), ", targets ", targets.sizes(), " ",
              targets.scalar_type(), "; call mixlab::", what, " (harness/cross_entropy_rows.h), which runs the "
              "reference for these");
}

}  // namespace

bool cross_entropy_rows_supported(const torch::Tensor& logits, const torch::Tensor& targets) {
  detail::LogitElement element;
  if (!logits.defined() || !targets.defined() || !logits.is_cuda() || logits.dim() != 2) return false;
  if (!logit_element_of(logits.scalar_type(), element) || !logits.is_contiguous()) return false;
  if (logits.size(0) < 1 || logits.size(0) >= (int64_t{1} << 31) || logits.size(1) < 1) return false;
  return targets.device() == logits.device() && targets.scalar_type() == torch::kInt64 && targets.dim() == 1 &&
         targets.size(0) == logits.size(0);
}

std::pair<torch::Tensor, torch::Tensor> cross_entropy_rows_forward(const torch::Tensor& logits,
                                                                   const torch::Tensor& targets) {
  check_supported(logits, targets, "cross_entropy_rows_forward");
  const c10::cuda::CUDAGuard guard(logits.device());
  detail::LogitElement element;
  logit_element_of(logits.scalar_type(), element);
  const auto y = targets.contiguous();
  auto lse = torch::empty({logits.size(0)}, logits.options().dtype(torch::kFloat));
  auto picked = torch::empty_like(lse);
  detail::cross_entropy_rows_forward(element, logits.data_ptr(), logits.size(0), logits.size(1),
                                     reinterpret_cast<const long long*>(y.data_ptr<int64_t>()), lse.data_ptr<float>(),
                                     picked.data_ptr<float>(), current_stream());
  return {lse, picked};
}

torch::Tensor cross_entropy_rows_backward_(torch::Tensor& logits, const torch::Tensor& targets,
                                           const torch::Tensor& lse, const torch::Tensor& scale) {
  check_supported(logits, targets, "cross_entropy_rows_backward");
  TORCH_CHECK(lse.device() == logits.device() && lse.numel() == logits.size(0) && scale.numel() == 1,
              "harness/cuda/cross_entropy_rows_binding.cpp: cross_entropy_rows_backward: lse [M] and scale [] on "
              "the logits' device expected; got lse ", lse.sizes(), " on ", lse.device(), ", scale ", scale.sizes());
  const c10::cuda::CUDAGuard guard(logits.device());
  detail::LogitElement element;
  logit_element_of(logits.scalar_type(), element);
  const auto y = targets.contiguous();
  const auto lse_f = lse.to(torch::kFloat).contiguous();
  const auto scale_f = scale.to(logits.device(), torch::kFloat).contiguous();
  detail::cross_entropy_rows_backward(element, logits.data_ptr(), logits.size(0), logits.size(1),
                                      reinterpret_cast<const long long*>(y.data_ptr<int64_t>()),
                                      lse_f.data_ptr<float>(), scale_f.data_ptr<float>(), current_stream());
  return logits;
}

}  // namespace mixlab::cuda
