#pragma once
// The one place where LibTorch 1.13 (Debian's libtorch-dev, CPU) and LibTorch 2.x (the PyTorch
// wheel on the GPU machine) differ for mixlab.  Everything else calls these wrappers.

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#include <initializer_list>
#include <optional>

#ifdef MIXLAB_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#define MIXLAB_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// scaled_dot_product_attention arrived in LibTorch 2.0.
#define MIXLAB_HAS_SDPA MIXLAB_TORCH_AT_LEAST(2, 0)

namespace mixlab::compat {

// Causal softmax attention over q, k, v: [B, H, N, d_h] -> [B, H, N, d_h], scale d_h^-1/2.
// Uses SDPA (flash / cuDNN / memory-efficient back-ends) where LibTorch has it; otherwise an
// explicit masked softmax that builds the N x N score matrix.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v) {
#if MIXLAB_HAS_SDPA
  return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                          /*is_causal=*/true);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;  // [B, H, N, N]
  const int64_t n = q.size(-2);
  auto future = torch::ones({n, n}, q.options().dtype(torch::kBool)).triu(1);
  scores = scores.masked_fill(future, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

inline bool sdpa_available() { return MIXLAB_HAS_SDPA; }

// Softmax attention with the keys where `hidden` is true left out: q: [B, H, M, d_h],
// k, v: [B, H, N, d_h], hidden: bool broadcastable to [B, H, M, N]; scale d_h^-1/2.  One SDPA
// call on CUDA where LibTorch has it (decoding: a few kernels instead of five); otherwise, and on
// the CPU (the reference), scores, mask, softmax and product written out.
inline torch::Tensor masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& hidden) {
#if MIXLAB_HAS_SDPA
  if (q.is_cuda())  // SDPA wants a mask of at least [M, N]: a row of keys [N] becomes [1, N]
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/(hidden.dim() == 1 ? hidden.unsqueeze(0) : hidden).logical_not());
#endif
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  auto scores = torch::matmul(q, k.transpose(-2, -1)).masked_fill(hidden, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores * scale, -1), v);
}

// RMSNorm(x) = x · rsqrt(mean(x²) + eps) · w over the last dimension, statistics in float32
// (float64 for float64 input).  On CUDA, LibTorch >= 2.8's rms_norm: one fused kernel (the
// weight applied before rounding to x's dtype); otherwise, and on the CPU (the reference), the
// composed form.
inline torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
#if MIXLAB_TORCH_AT_LEAST(2, 8)
  if (x.is_cuda()) return at::rms_norm(x, {x.size(-1)}, weight, eps);
#endif
  auto compute = x.scalar_type() == torch::kFloat64 ? x : x.to(torch::kFloat32);
  auto normalised = compute * torch::rsqrt(compute.square().mean(-1, /*keepdim=*/true) + eps);
  return normalised.to(x.scalar_type()) * weight;
}

inline std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

// Mixed precision on CUDA for the lifetime of the guard: matrix products in `dtype` (bf16),
// reductions and losses in float32, as torch.autocast("cuda", dtype) does.  LibTorch 2.4 moved
// the switches to per-device calls.  A disabled guard does nothing (the CPU trains in float32).
class CudaAutocast {
 public:
  explicit CudaAutocast(bool enable, at::ScalarType dtype = at::kBFloat16) : enabled_(enable) {
    if (!enabled_) return;
#if MIXLAB_TORCH_AT_LEAST(2, 4)
    previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
    at::autocast::set_autocast_dtype(at::kCUDA, dtype);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    previous_ = at::autocast::is_enabled();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
#endif
    at::autocast::increment_nesting();
  }
  ~CudaAutocast() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if MIXLAB_TORCH_AT_LEAST(2, 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
    at::autocast::set_enabled(previous_);
#endif
  }
  CudaAutocast(const CudaAutocast&) = delete;
  CudaAutocast& operator=(const CudaAutocast&) = delete;

 private:
  bool enabled_;
  bool previous_ = false;
};

// The dtype CUDA autocast gives a custom op's floating inputs while it is on for CUDA (what
// torch.amp.custom_fwd(cast_inputs=dtype) does); nullopt while it is off.
inline std::optional<at::ScalarType> cuda_autocast_dtype() {
#if MIXLAB_TORCH_AT_LEAST(2, 4)
  if (!at::autocast::is_autocast_enabled(at::kCUDA)) return std::nullopt;
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  if (!at::autocast::is_enabled()) return std::nullopt;
  return at::autocast::get_autocast_gpu_dtype();
#endif
}

// The one dtype an op with several floating inputs computes in, the way autocast treats a custom
// op: CUDA inputs under CUDA autocast take the autocast dtype; otherwise mixed dtypes promote to
// their common type (RoPE in float32 beside a bf16 value projection gives float32).
inline at::ScalarType custom_op_dtype(std::initializer_list<torch::Tensor> inputs) {
  const auto& first = *inputs.begin();
  if (first.is_cuda()) {
    if (const auto autocast = cuda_autocast_dtype()) return *autocast;
  }
  at::ScalarType common = first.scalar_type();
  for (const auto& t : inputs) common = at::promote_types(common, t.scalar_type());
  return common;
}

// The dtype rms_norm(x, weight, eps) returns: x·weight's promoted dtype, under CUDA autocast too
// (measured with LibTorch 2.11: at::rms_norm of bf16 x and w gives bf16 under autocast, of
// float32 x float32).  The fused residual add + RMSNorm kernel
// (harness/cuda/add_rms_norm_binding.cpp) writes this dtype.
inline at::ScalarType rms_norm_dtype(const torch::Tensor& x, const torch::Tensor& weight) {
  return at::promote_types(x.scalar_type(), weight.scalar_type());
}

#ifdef MIXLAB_WITH_CUDA
// Peak-memory statistics of the CUDA caching allocator.  allocated_bytes[0] is the AGGREGATE
// stat in every version; DeviceStats moved namespace in 2.x, hence `auto`.
inline void cuda_reset_peak_memory(int device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
}
inline int64_t cuda_peak_allocated_bytes(int device) {
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return stats.allocated_bytes[0].peak;
}
inline int64_t cuda_allocated_bytes(int device) {  // in use now (as torch.cuda.memory_allocated)
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return stats.allocated_bytes[0].current;
}
#endif

}  // namespace mixlab::compat

// c10d (harness/distributed.cpp defines MIXLAB_C10D_COMPAT before including this file): the
// class that ProcessGroupGloo and ProcessGroupNCCL derive from is c10d::Backend from LibTorch 2.0,
// c10d::ProcessGroup before.  Both declare allreduce / broadcast on a vector of tensors.
#ifdef MIXLAB_C10D_COMPAT
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
namespace mixlab::compat {
#if MIXLAB_TORCH_AT_LEAST(2, 0)
using C10dGroup = c10d::Backend;
#else
using C10dGroup = c10d::ProcessGroup;
#endif
}  // namespace mixlab::compat
#endif
