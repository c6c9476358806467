// y = x Wᵀ + b on a few rows (core/cuda/skinny_linear.cuh, the kernel): the launch with y rounded
// to bf16 and the bias added as the store.

#include "core/cuda/skinny_linear.cuh"

namespace mixlab::cuda::detail {
namespace {

// y[row, o] = bf16(sum + b[o]);  y: [rows, out] contiguous.
struct StoreWithBias {
  const __nv_bfloat16* bias;  // [out] or null
  __nv_bfloat16* y;
  long long out;
  __device__ void operator()(long long row, long long o, float sum) const {
    if (bias) sum += __bfloat162float(bias[o]);
    y[row * out + o] = __float2bfloat16(sum);
  }
};

}  // namespace

void skinny_linear_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias, void* y,
                        void* stream) {
  const StoreWithBias store{static_cast<const __nv_bfloat16*>(bias), static_cast<__nv_bfloat16*>(y), shape.out};
  launch_skinny_linear("skinny_linear", shape, x, weight, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
