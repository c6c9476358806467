// y = x Wᵀ + b on a few rows (core/cuda/skinny_linear.cuh, the kernel): the launch with y rounded
// to bf16 and the bias added as the store; and y = r + (x Wᵀ + b), the residual added in the store.

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

// y[row, o] = bf16(r[row, o] + bf16(sum + b[o])): the residual add as the store, rounded as
// skinny_linear then at::add round.  r, y: [rows, out] contiguous; y may be r (each element is read
// and written by one thread).
struct StoreAddedToResidual {
  const __nv_bfloat16* bias;  // [out] or null
  const __nv_bfloat16* residual;
  __nv_bfloat16* y;
  long long out;
  __device__ void operator()(long long row, long long o, float sum) const {
    if (bias) sum += __bfloat162float(bias[o]);
    const float branch = __bfloat162float(__float2bfloat16(sum));
    y[row * out + o] = __float2bfloat16(__bfloat162float(residual[row * out + o]) + branch);
  }
};

}  // namespace

void skinny_linear_add_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias,
                            const void* residual, void* y, void* stream) {
  const StoreAddedToResidual store{static_cast<const __nv_bfloat16*>(bias), static_cast<const __nv_bfloat16*>(residual),
                                   static_cast<__nv_bfloat16*>(y), shape.out};
  launch_skinny_linear("skinny_linear_add", shape, x, weight, store, static_cast<cudaStream_t>(stream));
}

void skinny_linear_bf16(const SkinnyLinearShape& shape, const void* x, const void* weight, const void* bias, void* y,
                        void* stream) {
  const StoreWithBias store{static_cast<const __nv_bfloat16*>(bias), static_cast<__nv_bfloat16*>(y), shape.out};
  launch_skinny_linear("skinny_linear", shape, x, weight, store, static_cast<cudaStream_t>(stream));
}

}  // namespace mixlab::cuda::detail
